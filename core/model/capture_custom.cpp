// Custom operators in a captured forward: read through a declared adapter
// (op_adapter.h) as deformable convolutions, or listed as unrecognised samplers.
#include "core/model/capture_internal.h"
#include "core/model/op_adapter.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <set>

namespace deformscope::model::detail {

std::array<int64_t, 2> pairOf(const c10::IValue& v, int64_t fallback) {
    if (v.isInt())
        return {v.toInt(), v.toInt()};
    if (v.isList()) {
        std::vector<int64_t> l;
        for (const c10::IValue& x : v.toListRef())
            l.push_back(x.isInt() ? x.toInt() : x.toSymInt().guard_int(__FILE__, __LINE__));
        if (l.size() == 1)
            return {l[0], l[0]};
        if (l.size() >= 2)
            return {l[l.size() - 2], l[l.size() - 1]};
    }
    return {fallback, fallback};
}

// The pair an adapter's positions name: one argument (an int or int[2]) or two ints.
std::array<int64_t, 2> adaptedPair(const OpEvent& e, const std::vector<int>& at, int64_t fallback) {
    if (at.size() == 1 && size_t(at[0]) < e.inputs.size())
        return pairOf(e.inputs[size_t(at[0])], fallback);
    if (at.size() == 2 && size_t(std::max(at[0], at[1])) < e.inputs.size())
        return {intOf(e.inputs[size_t(at[0])]), intOf(e.inputs[size_t(at[1])])};
    return {fallback, fallback};
}

// A custom operator read through its declared adapter as a deformable convolution;
// false (with `why`) when its arguments do not fit the declaration.
bool describeAdapted(const OpEvent& e, const OpAdapter& a, Layer& l, std::string& why) {
    const at::Tensor* in = tensorArg(e, size_t(a.input));
    const at::Tensor* w = tensorArg(e, size_t(a.weight));
    const at::Tensor* off = tensorArg(e, size_t(a.offset));
    const at::Tensor* out = firstOutput(e);
    if (!in || !w || !off || !out || in->dim() != 4 || w->dim() != 4 || off->dim() != 4 || out->dim() != 4) {
        why = "its declared input, weight and offset arguments (" + std::to_string(a.input) + ", " +
              std::to_string(a.weight) + ", " + std::to_string(a.offset) + ") are not all 4-D tensors";
        return false;
    }
    l.op = e.op;
    l.kernel = {w->size(2), w->size(3)};
    const int64_t K = l.kernel[0] * l.kernel[1];
    if (off->size(1) % (2 * K) != 0) {
        why = "its offsets have " + std::to_string(off->size(1)) + " channels, not a multiple of 2 x " +
              std::to_string(K) + " taps";
        return false;
    }
    l.in_channels = in->size(1);
    l.out_channels = out->size(1);
    l.input_size = {in->size(2), in->size(3)};
    l.feature_size = {out->size(2), out->size(3)};
    l.stride = adaptedPair(e, a.stride, 1);
    l.padding = adaptedPair(e, a.padding, 0);
    l.dilation = adaptedPair(e, a.dilation, 1);
    l.groups = a.groups >= 0 && size_t(a.groups) < e.inputs.size() ? intOf(e.inputs[size_t(a.groups)]) : 1;
    l.offset_groups = off->size(1) / (2 * K);
    const at::Tensor* mask = a.mask >= 0 ? tensorArg(e, size_t(a.mask)) : nullptr;
    l.use_mask = mask && mask->defined() && mask->dim() == 4;
    l.kind = l.use_mask ? LayerKind::DcnV2 : LayerKind::DcnV1;
    l.reason = std::string("custom operator read through its declared adapter (") +
               (a.planar ? "planar" : "torchvision") + " offsets)";
    return true;
}

// Offsets in torchvision's layout (y, x per tap) from a declared layout.
at::Tensor torchvisionOffsets(const at::Tensor& off, bool planar) {
    if (!planar)
        return off;
    const int64_t half = off.size(1) / 2;
    return at::stack({off.narrow(1, 0, half), off.narrow(1, half, half)}, 2)
        .reshape({off.size(0), off.size(1), off.size(2), off.size(3)});
}

// A custom operator (not ATen's, TorchScript's, torchvision's or ours) mapping a
// feature map to a feature map: it may sample anywhere, so it is listed as an
// unrecognised sampler rather than looked through as if it were pointwise.
bool isCustomOp(const OpEvent& e) {
    static const std::set<std::string> known = {"aten", "prim", "torchvision", "deformscope", "quantized", "_caffe2",
                                                "profiler", "cuda", "_quantized", "internal", "debugprims", "prims"};
    const auto sep = e.op.find("::");
    if (sep == std::string::npos || known.count(e.op.substr(0, sep)))
        return false;
    const at::Tensor* in = tensorArg(e, 0);
    const at::Tensor* out = firstOutput(e);
    return in && out && in->dim() == 4 && out->dim() == 4;
}

Layer unrecognisedCustomOp(const OpEvent& e, const std::string& why) {
    const at::Tensor& in = *tensorArg(e, 0);
    const at::Tensor& out = *firstOutput(e);
    Layer l;
    l.kind = LayerKind::UnrecognisedSampler;
    l.op = e.op;
    l.reason = "custom operator " + e.op + " " + why;
    l.in_channels = in.size(1);
    l.out_channels = out.size(1);
    l.input_size = {in.size(2), in.size(3)};
    l.feature_size = {out.size(2), out.size(3)};
    return l;
}

const OpAdapter* adapterFor(const LoadedModel& model, const std::string& op) {
    for (const OpAdapter& a : model.adapters())
        if (a.op == op)
            return &a;
    return nullptr;
}

} // namespace deformscope::model::detail
