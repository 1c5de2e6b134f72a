#include "core/ops/autograd/autograd_kernels.h"
#include "core/ops/op_support.h"

#include <torch/autograd.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace deformscope::ops::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;

void saveScalars(AutogradContext* ctx, const OpScalars& s) {
    ctx->saved_data["ints"] = std::vector<int64_t>(s.ints.begin(), s.ints.end());
    ctx->saved_data["flag"] = s.flag;
}

OpScalars loadScalars(AutogradContext* ctx) {
    const std::vector<int64_t> ints = ctx->saved_data["ints"].toIntVector();
    OpScalars s{};
    std::copy(ints.begin(), ints.end(), s.ints.begin());
    s.flag = ctx->saved_data["flag"].toBool();
    return s;
}

template <class Op>
class ForwardFunction : public torch::autograd::Function<ForwardFunction<Op>> {
public:
    static variable_list forward(AutogradContext* ctx, const Variable& t0, const Variable& t1, const Variable& t2,
                                 const Variable& t3, const Variable& t4, const OpScalars& s) {
        at::AutoDispatchBelowADInplaceOrView guard;
        at::Tensor out = DirectKernels<Op>::forward({t0, t1, t2, t3, t4}, s);
        ctx->save_for_backward({t0, t1, t2, t3, t4});
        saveScalars(ctx, s);
        return {out};
    }

    static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
        const auto saved = ctx->get_saved_variables();
        const OpScalars s = loadScalars(ctx);
        // deform_conv2d(input, weight, offset, mask, bias) and deform_kernel2d(input, weight,
        // kernel_offset, offset, bias): no weight or bias gradient wanted (e.g. an ERF) spares
        // their work in the backward (op_support.h).
        const bool parameters = ctx->needs_input_grad(1) || ctx->needs_input_grad(4);
        ParameterGradsUnneeded skip(!parameters);
        auto [g0, g1, g2, g3, g4] =
            AutogradKernels<Op>::backward(grad_output[0], {saved[0], saved[1], saved[2], saved[3], saved[4]}, s);
        // The fourth tensor gets no gradient when the flag leaves it out (a
        // placeholder), as in torchvision; nor do the scalars.
        return {g0, g1, g2, s.flag ? g3 : at::Tensor(), g4, at::Tensor()};
    }
};

template <class Op>
class BackwardFunction : public torch::autograd::Function<BackwardFunction<Op>> {
public:
    static variable_list forward(AutogradContext* /*ctx*/, const Variable& grad, const Variable& t0,
                                 const Variable& t1, const Variable& t2, const Variable& t3, const Variable& t4,
                                 const OpScalars& s) {
        at::AutoDispatchBelowADInplaceOrView guard;
        auto [g0, g1, g2, g3, g4] = DirectKernels<Op>::backward(grad, {t0, t1, t2, t3, t4}, s);
        return {g0, g1, g2, g3, g4};
    }

    static variable_list backward(AutogradContext* /*ctx*/, const variable_list& /*grad_output*/) {
        TORCH_CHECK(false, Op::kName, ": double backward (gradients of gradients) is not supported");
    }
};

void saveParams(AutogradContext* ctx, const DeformRoiPoolParams& p) {
    ctx->saved_data["ints"] = std::vector<int64_t>{p.pooled_height, p.pooled_width, p.sampling_ratio};
    ctx->saved_data["spatial_scale"] = p.spatial_scale;
    ctx->saved_data["gamma"] = p.gamma;
    ctx->saved_data["use_mask"] = p.use_mask;
}

DeformRoiPoolParams loadParams(AutogradContext* ctx) {
    const std::vector<int64_t> ints = ctx->saved_data["ints"].toIntVector();
    DeformRoiPoolParams p;
    p.pooled_height = ints[0];
    p.pooled_width = ints[1];
    p.sampling_ratio = ints[2];
    p.spatial_scale = ctx->saved_data["spatial_scale"].toDouble();
    p.gamma = ctx->saved_data["gamma"].toDouble();
    p.use_mask = ctx->saved_data["use_mask"].toBool();
    return p;
}

class RoiPoolForwardFunction : public torch::autograd::Function<RoiPoolForwardFunction> {
public:
    static variable_list forward(AutogradContext* ctx, const Variable& input, const Variable& rois,
                                 const Variable& offset, const Variable& mask, const DeformRoiPoolParams& p) {
        at::AutoDispatchBelowADInplaceOrView guard;
        at::Tensor out = DirectRoiPoolKernels::forward({input, rois, offset, mask}, p);
        ctx->save_for_backward({input, rois, offset, mask});
        saveParams(ctx, p);
        return {out};
    }

    static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
        const auto saved = ctx->get_saved_variables();
        const DeformRoiPoolParams p = loadParams(ctx);
        auto [gi, goff, gmask] =
            RoiPoolAutogradKernels::backward(grad_output[0], {saved[0], saved[1], saved[2], saved[3]}, p);
        // An empty offset (RoIAlign) and an unused mask are placeholders without
        // a gradient, as the RoIs and the scalars.
        const bool offsetTakesPart = saved[2].defined() && saved[2].numel() > 0;
        return {gi, at::Tensor(), offsetTakesPart ? goff : at::Tensor(), p.use_mask ? gmask : at::Tensor(),
                at::Tensor()};
    }
};

class RoiPoolBackwardFunction : public torch::autograd::Function<RoiPoolBackwardFunction> {
public:
    static variable_list forward(AutogradContext* /*ctx*/, const Variable& grad, const Variable& input,
                                 const Variable& rois, const Variable& offset, const Variable& mask,
                                 const DeformRoiPoolParams& p) {
        at::AutoDispatchBelowADInplaceOrView guard;
        auto [gi, goff, gmask] = DirectRoiPoolKernels::backward(grad, {input, rois, offset, mask}, p);
        return {gi, goff, gmask};
    }

    static variable_list backward(AutogradContext* /*ctx*/, const variable_list& /*grad_output*/) {
        TORCH_CHECK(false, DeformRoiPoolOp::kName, ": double backward (gradients of gradients) is not supported");
    }
};

} // namespace

template <class Op>
at::Tensor AutogradKernels<Op>::forward(const OpTensors& t, const OpScalars& s) {
    return ForwardFunction<Op>::apply(t[0], t[1], t[2], t[3], t[4], s)[0];
}

template <class Op>
typename Op::Grads AutogradKernels<Op>::backward(const at::Tensor& grad, const OpTensors& t, const OpScalars& s) {
    const auto r = BackwardFunction<Op>::apply(grad, t[0], t[1], t[2], t[3], t[4], s);
    return {r[0], r[1], r[2], r[3], r[4]};
}

template struct AutogradKernels<DeformConv2dOp>;
template struct AutogradKernels<DeformKernel2dOp>;

at::Tensor RoiPoolAutogradKernels::forward(const RoiPoolTensors& t, const DeformRoiPoolParams& p) {
    return RoiPoolForwardFunction::apply(t[0], t[1], t[2], t[3], p)[0];
}

DeformRoiPoolGrads RoiPoolAutogradKernels::backward(const at::Tensor& grad, const RoiPoolTensors& t,
                                                    const DeformRoiPoolParams& p) {
    const auto r = RoiPoolBackwardFunction::apply(grad, t[0], t[1], t[2], t[3], p);
    return {r[0], r[1], r[2]};
}

} // namespace deformscope::ops::detail
