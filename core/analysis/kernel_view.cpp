// The Deformable Kernel view: the resampled kernel behind a node (analysis.h).
#include "core/analysis/analysis_internal.h"

#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <cmath>
#include <set>

namespace deformscope::analysis::detail {

using model::Layer;
using model::LayerKind;

int kernelViewLayer(const std::vector<Layer>& layers, int start) {
    if (start < 0 || start >= int(layers.size()))
        return -1;
    std::set<int> seen;
    std::vector<int> stack{start};
    int best = -1;
    while (!stack.empty()) {
        const int i = stack.back();
        stack.pop_back();
        if (i < 0 || !seen.insert(i).second)
            continue;
        const Layer& l = layers[size_t(i)];
        if (l.kind == LayerKind::Dk) {
            if (i == start)
                return i;
            best = std::max(best, i);
            continue; // the nearest DK layer on this path: do not look below it
        }
        for (int g : l.inputs)
            stack.push_back(g);
    }
    return best;
}

KernelView kernelView(const model::Capture& capture, int index, int64_t fy, int64_t fx, int64_t channel) {
    const Layer& l = capture.graph.layers().at(size_t(index));
    const model::LayerTensors& t = capture.tensors.at(size_t(index));
    if (!t.weight.defined())
        throw AnalysisError("the captured forward kept no scope weight for DK layer '" + l.name + "'");

    KernelView v;
    v.layer = l.name;
    v.fy = fy;
    v.fx = fx;
    v.channel = channel;
    v.scope = l.scope;
    v.kernel = {l.kernel[0], l.kernel[1]};
    v.global = l.global_kernel_offsets;

    const at::Tensor w = t.weight.detach().to(at::kCPU, at::kDouble); // [C, 1, Sh, Sw]
    const int64_t C = w.size(0);
    if (v.channel >= C)
        throw AnalysisError("channel " + std::to_string(v.channel) + " is out of range for '" + l.name + "' (" +
                            std::to_string(C) + " channels)");
    const at::Tensor mag = w.abs().select(1, 0); // [C, Sh, Sw]
    v.scopeWeight = (v.channel >= 0 ? mag[v.channel] : mag.mean(0)).to(at::kFloat).contiguous();

    const at::Tensor iy = at::full({1}, v.fy, at::kLong), ix = at::full({1}, v.fx, at::kLong);
    const at::Tensor eff = dkEffectiveKernel(l, t, iy, ix)[0].to(at::kCPU).abs(); // [C, K]
    const at::Tensor tapWeight = v.channel >= 0 ? eff[v.channel] : eff.mean(0);   // [K]
    const int64_t kh = l.kernel[0], kw = l.kernel[1], K = kh * kw;
    const at::Tensor koff = dkKernelOffsets(l, t, iy, ix, at::TensorOptions().dtype(at::kDouble).device(at::kCPU))[0]; // [K, 2]
    if (!t.kernelOffset.defined())
        v.notes.push_back("'" + l.name + "' has no kernel offsets: its taps read the regular grid");
    const auto kacc = koff.accessor<double, 2>();
    const auto wacc = tapWeight.accessor<double, 1>();
    const double Sh = double(l.scope[0]), Sw = double(l.scope[1]);
    double shift = 0;
    for (int64_t k = 0; k < K; ++k) {
        KernelTap tap;
        tap.tap = int(k);
        tap.baseY = double(k / kw) + (Sh - double(kh)) / 2;
        tap.baseX = double(k % kw) + (Sw - double(kw)) / 2;
        tap.y = tap.baseY + kacc[k][0];
        tap.x = tap.baseX + kacc[k][1];
        tap.inside = tap.y > -1 && tap.y < Sh && tap.x > -1 && tap.x < Sw;
        tap.weight = wacc[k];
        shift += std::hypot(kacc[k][0], kacc[k][1]);
        v.taps.push_back(tap);
    }
    v.meanShift = K > 0 ? shift / double(K) : 0;
    return v;
}

} // namespace deformscope::analysis::detail

namespace deformscope::analysis {

nlohmann::ordered_json toJson(const KernelView& v) {
    using Json = nlohmann::ordered_json;
    Json taps = Json::array();
    for (const KernelTap& t : v.taps)
        taps.push_back(Json::object({{"tap", t.tap},
                                     {"base_yx", Json::array({t.baseY, t.baseX})},
                                     {"sampled_yx", Json::array({t.y, t.x})},
                                     {"offset_yx", Json::array({t.y - t.baseY, t.x - t.baseX})},
                                     {"weight", t.weight},
                                     {"inside", t.inside}}));
    Json scope = Json::array();
    if (v.scopeWeight.defined()) {
        const at::Tensor s = v.scopeWeight.to(at::kDouble).contiguous();
        const auto a = s.accessor<double, 2>();
        for (int64_t i = 0; i < s.size(0); ++i) {
            Json row = Json::array();
            for (int64_t j = 0; j < s.size(1); ++j)
                row.push_back(a[i][j]);
            scope.push_back(row);
        }
    }
    Json notes = Json::array();
    for (const auto& n : v.notes)
        notes.push_back(n);
    return Json::object({{"layer", v.layer},
                         {"position", Json::object({{"fx", v.fx}, {"fy", v.fy}})},
                         {"centre_xy", Json::array({v.centre[0], v.centre[1]})},
                         {"scope", Json::array({v.scope[0], v.scope[1]})},
                         {"kernel", Json::array({v.kernel[0], v.kernel[1]})},
                         {"global_offsets", v.global},
                         {"channel", v.channel},
                         {"coordinates", "scope cells (y, x): scope weight (i, j) at (i, j)"},
                         {"scope_weight", scope},
                         {"taps", taps},
                         {"mean_shift", v.meanShift},
                         {"notes", notes},
                         {"seconds", v.seconds}});
}

} // namespace deformscope::analysis
