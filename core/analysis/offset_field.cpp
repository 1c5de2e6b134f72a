// A deformable layer's offset field from the session's captured forward
// (offset_field.h). Called on the thread that owns the session: the GUI engine's
// worker, or the CLI's figure code through ui/analysis_figure.
#include "core/analysis/offset_field.h"

#include "core/analysis/analysis.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace deformscope::analysis {
namespace {

// A grid_sample sampler's reads as arrows: from each output position's centre (a
// query's reference position, or the pixel itself for flow warping) to where each
// grid row and point reads the value map, in input-image pixels.
OffsetField samplerField(const AnalysisSession& session, const model::Layer& l, OffsetField field) {
    const model::LayerTensors& t = session.capture().tensors[size_t(l.index)];
    if (!t.grid.defined())
        return field;
    const model::SamplerInfo& si = l.sampler;
    const at::Tensor grid = t.grid.detach().to(at::kCPU, at::kDouble).contiguous();
    const auto g = grid.accessor<double, 4>();
    const bool queries = si.layout == model::SamplerInfo::Layout::Queries;
    const int64_t rows = std::min<int64_t>(grid.size(0), si.rows), points = queries ? grid.size(2) : 1;
    const int64_t Ho = l.feature_size[0], Wo = l.feature_size[1];
    // The value map's frame: the layer it comes from, or the image.
    std::array<double, 2> vJump{1, 1}, vStart{0, 0};
    if (!l.inputs.empty()) {
        const model::Layer& v = session.graph().layers()[size_t(l.inputs.back())];
        vJump = v.jump;
        vStart = v.start;
    }
    // The attention/mask weights of the reads (DCNv3's softmax mask, deformable attention's weights).
    const bool weighted = queries && t.mask.defined() && t.mask.dim() == 3;
    const at::Tensor mask =
        weighted ? t.mask.detach().to(at::kCPU, at::kDouble).contiguous() : at::zeros({1, 1, 1}, at::kDouble);
    const auto mk = mask.accessor<double, 3>();
    // Several input frames side by side: drawn on the frame the layer reads.
    const double shift = double(l.frames.empty() ? 0 : l.frames.front()) * double(session.frameSize()[1]);
    field.featureH = int(Ho);
    field.featureW = int(Wo);
    field.taps = int(rows * points);
    field.modulated = weighted;
    field.arrows.reserve(size_t(Ho * Wo * rows * points));
    for (int64_t fy = 0; fy < Ho; ++fy)
        for (int64_t fx = 0; fx < Wo; ++fx) {
            double peak = 0; // Σ over rows of the largest weight among the row's points
            for (int64_t b = 0; b < rows; ++b) {
                double largest = 0;
                for (int64_t p = 0; p < points; ++p) {
                    const auto [a, c] = si.gridEntry(fy, fx, p, Wo);
                    OffsetArrow arrow;
                    arrow.y = float(l.start[0] + double(fy) * l.jump[0]);
                    arrow.x = float(l.start[1] + double(fx) * l.jump[1] + shift);
                    if (a < grid.size(1) && c < grid.size(2)) {
                        const double ry = vStart[0] + si.pixelOf(g[b][a][c][1], si.valueSize[0]) * vJump[0];
                        const double rx = vStart[1] + si.pixelOf(g[b][a][c][0], si.valueSize[1]) * vJump[1] + shift;
                        arrow.dy = float(ry - double(arrow.y));
                        arrow.dx = float(rx - double(arrow.x));
                        if (weighted && a < mask.size(1) && c < mask.size(2)) {
                            arrow.modulation = float(mk[b][a][c]);
                            largest = std::max(largest, double(arrow.modulation));
                        }
                    }
                    field.arrows.push_back(arrow);
                }
                peak += largest;
            }
            if (weighted)
                field.meanModulation.push_back(rows > 0 ? peak / double(rows) : 0.0);
        }
    return field;
}

} // namespace

OffsetField offsetField(const AnalysisSession& session, const std::string& layer)
{
    const model::Layer& l = session.layer(layer);
    OffsetField field;
    field.layer = l.name;
    field.start = l.start;
    field.jump = l.jump;
    if (size_t(l.index) >= session.capture().tensors.size())
        return field;
    if (l.isSampler())
        return samplerField(session, l, std::move(field));
    if (!l.deformable())
        return field;
    const model::LayerTensors& t = session.capture().tensors[size_t(l.index)];
    if (!t.offset.defined())
        return field;
    const at::Tensor off = t.offset.detach()[0].to(at::kCPU, at::kFloat).contiguous(); // [2·G·K, Ho, Wo]
    const at::Tensor mask = t.mask.defined() ? t.mask.detach()[0].to(at::kCPU, at::kFloat).contiguous() : at::Tensor();
    const int64_t kw = l.kernel[1], K = l.kernel[0] * kw;
    const int64_t taps = off.size(0) / 2, Ho = off.size(1), Wo = off.size(2);
    // Tap t of position f samples the layer's input at f·stride − pad + tap·dilation
    // (+ offset), mapped to input-image pixels through the input's jump and start
    // (the output's jump / stride, its start shifted back by the kernel's reach).
    std::array<double, 2> inJump{}, inStart{};
    for (int a = 0; a < 2; ++a) {
        inJump[a] = l.jump[a] / double(l.stride[a]);
        inStart[a] = l.start[a] - ((double(l.kernel[a]) - 1) * double(l.dilation[a]) / 2 - double(l.padding[a])) * inJump[a];
    }
    // Several input frames side by side: drawn on the frame the layer reads (an alignment
    // layer's taps on the support frame).
    const double shift = double(l.frames.empty() ? 0 : l.frames.front()) * double(session.frameSize()[1]);
    field.featureH = int(Ho);
    field.featureW = int(Wo);
    field.taps = int(taps);
    field.modulated = mask.defined();
    field.arrows.reserve(size_t(Ho * Wo * taps));
    if (field.modulated)
        field.meanModulation.reserve(size_t(Ho * Wo));
    const float* o = off.data_ptr<float>();
    const float* m = mask.defined() ? mask.data_ptr<float>() : nullptr;
    for (int64_t fy = 0; fy < Ho; ++fy)
        for (int64_t fx = 0; fx < Wo; ++fx) {
            double sum = 0;
            for (int64_t tap = 0; tap < taps; ++tap) {
                const int64_t k = tap % K, ky = k / kw, kx = k % kw;
                const double py = double(fy * l.stride[0] - l.padding[0] + ky * l.dilation[0]);
                const double px = double(fx * l.stride[1] - l.padding[1] + kx * l.dilation[1]);
                OffsetArrow a;
                a.x = float(inStart[1] + px * inJump[1] + shift);
                a.y = float(inStart[0] + py * inJump[0]);
                a.dy = float(o[((2 * tap) * Ho + fy) * Wo + fx] * inJump[0]);
                a.dx = float(o[((2 * tap + 1) * Ho + fy) * Wo + fx] * inJump[1]);
                a.modulation = m ? m[(tap * Ho + fy) * Wo + fx] : 1.0f;
                sum += std::isfinite(a.modulation) ? double(a.modulation) : 0.0;
                field.arrows.push_back(a);
            }
            if (field.modulated)
                field.meanModulation.push_back(taps > 0 ? sum / double(taps) : 0.0);
        }
    return field;
}

std::string offsetFieldLayer(const AnalysisSession& session, const std::string& layer) {
    const auto& layers = session.graph().layers();
    std::vector<int> queue{session.layer(layer).index};
    std::vector<bool> seen(layers.size(), false);
    for (size_t i = 0; i < queue.size(); ++i) { // breadth first: the nearest one
        const model::Layer& l = layers[size_t(queue[i])];
        if (l.deformable() || l.isSampler())
            return l.name;
        for (int in : l.inputs)
            if (in >= 0 && !seen[size_t(in)]) {
                seen[size_t(in)] = true;
                queue.push_back(in);
            }
    }
    return {};
}

} // namespace deformscope::analysis
