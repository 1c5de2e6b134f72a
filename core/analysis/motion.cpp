// Offsets read as motion: see motion.h.
#include "core/analysis/motion.h"

#include "core/common/json_file.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace deformscope::analysis {

using model::Layer;
using model::LayerKind;

namespace {

// The frames a layer's offsets (or grid) derive from.
std::vector<int> offsetFrames(const model::LayerGraph& g, const Layer& l) {
    const int src = l.isSampler() ? l.grid_source : l.offset_source;
    if (src < 0)
        return {};
    return g.layers()[size_t(src)].frames;
}

bool canAlign(const Layer& l) {
    if (l.movesSamples())
        return true;
    return l.isSampler() && l.sampler.layout == model::SamplerInfo::Layout::Spatial && l.sampler.rows == 1;
}

} // namespace

std::vector<int> alignmentLayers(const model::LayerGraph& g) {
    std::vector<int> found;
    if (g.inputCount() < 2)
        return found;
    for (const Layer& l : g.layers()) {
        if (!canAlign(l) || l.frames.size() != 1)
            continue;
        for (int f : offsetFrames(g, l))
            if (f != l.frames.front()) {
                found.push_back(l.index);
                break;
            }
    }
    return found;
}

std::vector<std::vector<int>> branchGroups(const model::LayerGraph& g) {
    std::map<std::pair<std::vector<int>, std::vector<int>>, std::vector<int>> bySource;
    for (const Layer& l : g.layers())
        if (l.movesSamples())
            bySource[{l.inputs, l.frames}].push_back(l.index);
    std::vector<std::vector<int>> groups;
    for (const auto& [source, members] : bySource)
        if (members.size() > 1)
            groups.push_back(members);
    std::sort(groups.begin(), groups.end());
    return groups;
}

MotionField motionField(const AnalysisSession& session, const std::string& name, double alarmThresholdPx) {
    const model::LayerGraph& g = session.graph();
    const auto aligned = alignmentLayers(g);
    std::string names;
    for (int i : aligned)
        names += (names.empty() ? "" : ", ") + g.layers()[size_t(i)].name;
    if (aligned.empty())
        throw AnalysisError(session.model().path() +
                            ": no alignment layer (a deformable layer or flow warp reading one input frame with offsets "
                            "computed from another): motion needs a model with several inputs that aligns them" +
                            (g.inputCount() < 2 ? std::string(" (this model has one input)") : std::string()));
    int index = aligned.back();
    if (!name.empty()) {
        const Layer* l = g.find(name);
        if (!l || std::find(aligned.begin(), aligned.end(), l->index) == aligned.end())
            throw AnalysisError("layer '" + name + "' is not an alignment layer of " + session.model().path() +
                                " (its alignment layers: " + names + ")");
        index = l->index;
    }
    const Layer& l = g.layers()[size_t(index)];
    const model::LayerTensors& t = session.capture().tensors[size_t(index)];
    MotionField m;
    m.layer = l.name;
    m.support = l.frames.front();
    for (int f : offsetFrames(g, l))
        if (f != m.support) {
            m.reference = f;
            break;
        }
    m.alarmThresholdPx = alarmThresholdPx;
    m.start = l.start;
    m.jump = l.jump;
    const auto cpu = at::TensorOptions().dtype(at::kFloat);
    const int64_t Ho = l.feature_size[0], Wo = l.feature_size[1];
    // One step on the layer's input grid in input pixels.
    const std::array<double, 2> step{l.jump[0] / double(std::max<int64_t>(l.stride[0], 1)),
                                     l.jump[1] / double(std::max<int64_t>(l.stride[1], 1))};
    const auto ys = at::arange(Ho, cpu).view({1, Ho, 1}), xs = at::arange(Wo, cpu).view({1, 1, Wo});
    at::Tensor dx, dy, readX, readY, weight;
    if (l.isSampler()) {
        // Flow warping: output (y, x) reads the grid's position; its motion is that minus (y, x).
        const at::Tensor grid = t.grid.detach()[0].to(at::kCPU, at::kDouble); // [Ho, Wo, 2]
        const auto& si = l.sampler;
        at::Tensor px = grid.select(2, 0).clone(), py = grid.select(2, 1).clone();
        auto a = px.accessor<double, 2>(), b = py.accessor<double, 2>();
        for (int64_t y = 0; y < Ho; ++y)
            for (int64_t x = 0; x < Wo; ++x) {
                a[y][x] = si.pixelOf(a[y][x], si.valueSize[1]);
                b[y][x] = si.pixelOf(b[y][x], si.valueSize[0]);
            }
        // Value-map pixels -> input pixels (a flow warp's value map lies on its output's grid).
        readX = (px.to(at::kFloat) * float(step[1]) + float(l.start[1])).unsqueeze(0);
        readY = (py.to(at::kFloat) * float(step[0]) + float(l.start[0])).unsqueeze(0);
        dx = readX - (xs * float(l.jump[1]) + float(l.start[1]));
        dy = readY - (ys * float(l.jump[0]) + float(l.start[0]));
        weight = at::ones({1, Ho, Wo}, cpu);
    } else {
        if (!t.offset.defined())
            throw AnalysisError("layer '" + l.name + "': its offsets were not captured");
        const int64_t K = l.kernel[0] * l.kernel[1], G = std::max<int64_t>(l.offset_groups, 1);
        const at::Tensor off = t.offset.detach()[0].to(at::kCPU, at::kFloat).reshape({G * K, 2, Ho, Wo});
        dy = off.select(1, 0) * float(step[0]);
        dx = off.select(1, 1) * float(step[1]);
        // Where each point reads, input pixels: the regular tap plus its offset.
        const at::Tensor ky = at::arange(l.kernel[0], cpu).repeat_interleave(l.kernel[1]).repeat({G}).view({G * K, 1, 1});
        const at::Tensor kx = at::arange(l.kernel[1], cpu).repeat({l.kernel[0]}).repeat({G}).view({G * K, 1, 1});
        const double cy = double(l.kernel[0] - 1) / 2, cx = double(l.kernel[1] - 1) / 2;
        readY = ys * float(l.jump[0]) + float(l.start[0]) + (ky - float(cy)) * float(double(l.dilation[0]) * step[0]) + dy;
        readX = xs * float(l.jump[1]) + float(l.start[1]) + (kx - float(cx)) * float(double(l.dilation[1]) * step[1]) + dx;
        weight = l.use_mask && t.mask.defined() ? t.mask.detach()[0].to(at::kCPU, at::kFloat).reshape({G * K, Ho, Wo})
                                                : at::ones({G * K, Ho, Wo}, cpu);
    }
    m.points = at::stack({dx, dy}, 1).contiguous(); // [P, 2, Ho, Wo]
    m.reads = at::stack({readX.expand_as(dx), readY.expand_as(dy)}, 1).contiguous();
    m.readWeights = weight.contiguous();
    at::Tensor mean = m.points.mean(0); // [2, Ho, Wo]
    const auto frame = session.frameSize();
    if (Ho != frame[0] || Wo != frame[1] || l.start[0] != 0 || l.start[1] != 0) {
        m.notes.push_back("the layer's " + std::to_string(Wo) + " x " + std::to_string(Ho) +
                          " output grid is resized bilinearly to the frame's " + std::to_string(frame[1]) + " x " +
                          std::to_string(frame[0]));
        mean = at::upsample_bilinear2d(mean.unsqueeze(0), {frame[0], frame[1]}, false)[0];
    }
    m.mean = mean.contiguous();
    m.meanOffsetPx = m.points.abs().mean().item<double>();
    const at::Tensor centred = m.points - m.points.mean(0, true);
    m.offsetDiversityPx = centred.pow(2).sum(1).mean(0).sqrt().mean().item<double>();
    m.alarm = m.meanOffsetPx > alarmThresholdPx;
    if (m.alarm)
        m.notes.push_back("the mean offset magnitude " + std::to_string(m.meanOffsetPx) + " px is above " +
                          std::to_string(alarmThresholdPx) + " px: implausibly large for alignment (BasicSR warns the same)");
    return m;
}

FieldComparison compareFields(const at::Tensor& a, const at::Tensor& b, const at::Tensor& region) {
    const at::Tensor fa = a.to(at::kCPU, at::kDouble), fb = b.to(at::kCPU, at::kDouble);
    if (fa.dim() != 3 || fa.size(0) != 2 || fa.sizes() != fb.sizes())
        throw AnalysisError("compareFields: two [2, H, W] fields of one size are needed, got " + c10::str(fa.sizes()) +
                            " and " + c10::str(fb.sizes()));
    const at::Tensor epe = (fa - fb).pow(2).sum(0).sqrt();
    const at::Tensor na = fa.pow(2).sum(0).sqrt(), nb = fb.pow(2).sum(0).sqrt();
    const at::Tensor moving = (na > 0.05) & (nb > 0.05);
    const at::Tensor cosine = (fa * fb).sum(0) / (na * nb).clamp_min(1e-12);
    auto meanOver = [](const at::Tensor& v, const at::Tensor& where) {
        const double n = where.sum().item<double>();
        return n > 0 ? v.masked_select(where).sum().item<double>() / n : std::nan("");
    };
    FieldComparison c;
    const at::Tensor all = at::ones_like(moving);
    c.epePx = meanOver(epe, all);
    c.cosine = meanOver(cosine, moving);
    if (region.defined()) {
        const at::Tensor inside = region.to(at::kCPU).ne(0);
        if (inside.sizes() != epe.sizes())
            throw AnalysisError("compareFields: the region is " + c10::str(inside.sizes()) + ", the fields " +
                                c10::str(epe.sizes()));
        c.epeInsidePx = meanOver(epe, inside);
        c.cosineInside = meanOver(cosine, moving & inside);
    }
    return c;
}

namespace {

// Bilinear splat of `values` [N] with `weights` [N] at (x, y) [N] onto an H × W grid: Σ w·v and Σ w.
std::pair<at::Tensor, at::Tensor> splat(const at::Tensor& x, const at::Tensor& y, const at::Tensor& values,
                                        const at::Tensor& weights, int64_t H, int64_t W) {
    at::Tensor num = at::zeros({H * W}, at::kDouble), den = at::zeros({H * W}, at::kDouble);
    const at::Tensor x0 = x.floor(), y0 = y.floor();
    const at::Tensor ax = x - x0, ay = y - y0;
    for (int dyc = 0; dyc < 2; ++dyc)
        for (int dxc = 0; dxc < 2; ++dxc) {
            const at::Tensor cx = x0 + dxc, cy = y0 + dyc;
            const at::Tensor w = weights * (dxc ? ax : 1 - ax) * (dyc ? ay : 1 - ay);
            const at::Tensor ok = (cx >= 0) & (cx < W) & (cy >= 0) & (cy < H) & (w > 0);
            const at::Tensor idx = (cy * double(W) + cx).masked_select(ok).to(at::kLong);
            num.index_add_(0, idx, (w * values).masked_select(ok));
            den.index_add_(0, idx, w.masked_select(ok));
        }
    return {num.view({H, W}), den.view({H, W})};
}

// The label [H, W] read at the reference positions of the layer's output grid.
at::Tensor labelAtOutputs(const MotionField& m, const at::Tensor& label) {
    const int64_t Ho = m.reads.size(2), Wo = m.reads.size(3), H = label.size(0), W = label.size(1);
    const at::Tensor ys = (at::arange(Ho, at::kDouble) * m.jump[0] + m.start[0]).round().clamp(0, H - 1).to(at::kLong);
    const at::Tensor xs = (at::arange(Wo, at::kDouble) * m.jump[1] + m.start[1]).round().clamp(0, W - 1).to(at::kLong);
    return label.to(at::kDouble).index_select(0, ys).index_select(1, xs); // [Ho, Wo]
}

} // namespace

at::Tensor propagateByReads(const MotionField& m, const at::Tensor& label, std::array<int64_t, 2> size) {
    const int64_t P = m.reads.size(0);
    const at::Tensor values = labelAtOutputs(m, label).unsqueeze(0).expand({P, -1, -1}).reshape({-1});
    const at::Tensor x = m.reads.select(1, 0).to(at::kDouble).reshape({-1}), y = m.reads.select(1, 1).to(at::kDouble).reshape({-1});
    const auto [num, den] = splat(x, y, values, m.readWeights.to(at::kDouble).reshape({-1}), size[0], size[1]);
    return (num / den.clamp_min(1e-12)).where(den > 1e-9, at::zeros_like(num)).to(at::kFloat);
}

at::Tensor propagateByFlow(const at::Tensor& flow, const at::Tensor& label) {
    const int64_t H = label.size(0), W = label.size(1);
    const at::Tensor f = flow.to(at::kCPU, at::kDouble);
    const at::Tensor xs = at::arange(W, at::kDouble).view({1, W}).expand({H, W}), ys = at::arange(H, at::kDouble).view({H, 1}).expand({H, W});
    const auto [num, den] = splat((xs + f[0]).reshape({-1}), (ys + f[1]).reshape({-1}),
                                  label.to(at::kDouble).reshape({-1}), at::ones({H * W}, at::kDouble), H, W);
    return (num / den.clamp_min(1e-12)).where(den > 1e-9, at::zeros_like(num)).to(at::kFloat);
}

std::vector<std::array<double, 2>> propagatePointsByReads(const MotionField& m,
                                                          const std::vector<std::array<double, 2>>& points) {
    const int64_t Ho = m.reads.size(2), Wo = m.reads.size(3);
    const auto reads = m.reads.to(at::kDouble).contiguous();
    const auto weights = m.readWeights.to(at::kDouble).contiguous();
    const auto r = reads.accessor<double, 4>();
    const auto w = weights.accessor<double, 3>();
    std::vector<std::array<double, 2>> out;
    for (const auto& p : points) {
        const int64_t fy = std::clamp<int64_t>(std::llround((p[1] - m.start[0]) / m.jump[0]), 0, Ho - 1);
        const int64_t fx = std::clamp<int64_t>(std::llround((p[0] - m.start[1]) / m.jump[1]), 0, Wo - 1);
        double sx = 0, sy = 0, sw = 0;
        for (int64_t k = 0; k < reads.size(0); ++k) {
            sx += w[k][fy][fx] * r[k][0][fy][fx];
            sy += w[k][fy][fx] * r[k][1][fy][fx];
            sw += w[k][fy][fx];
        }
        // The reads are centred on the output position; the keypoint keeps its own place relative to it.
        const double ox = p[0] - (m.start[1] + double(fx) * m.jump[1]), oy = p[1] - (m.start[0] + double(fy) * m.jump[0]);
        out.push_back(sw > 0 ? std::array<double, 2>{sx / sw + ox, sy / sw + oy} : p);
    }
    return out;
}

std::vector<std::array<double, 2>> propagatePointsByFlow(const at::Tensor& flow,
                                                         const std::vector<std::array<double, 2>>& points) {
    const at::Tensor f = flow.to(at::kCPU, at::kDouble).contiguous();
    const auto a = f.accessor<double, 3>();
    std::vector<std::array<double, 2>> out;
    for (const auto& p : points) {
        const int64_t y = std::clamp<int64_t>(std::llround(p[1]), 0, f.size(1) - 1);
        const int64_t x = std::clamp<int64_t>(std::llround(p[0]), 0, f.size(2) - 1);
        out.push_back({p[0] + a[0][y][x], p[1] + a[1][y][x]});
    }
    return out;
}

nlohmann::ordered_json toJson(const MotionField& m) {
    using Json = common::Json;
    return Json::object({{"layer", m.layer},
                         {"reference_input", m.reference},
                         {"support_input", m.support},
                         {"points", m.points.defined() ? m.points.size(0) : 0},
                         {"mean_offset_px", m.meanOffsetPx},
                         {"offset_diversity_px", m.offsetDiversityPx},
                         {"alarm", m.alarm},
                         {"alarm_threshold_px", m.alarmThresholdPx},
                         {"notes", m.notes}});
}

} // namespace deformscope::analysis
