#include "core/ops/autograd/deform_conv2d_autograd.h"

#include <torch/autograd.h>

namespace deformscope::ops::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

DeformConv2dParams paramsOf(int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                            int64_t dilation_w, int64_t groups, int64_t offset_groups, bool use_mask) {
    return {stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, offset_groups, use_mask};
}

void saveParams(AutogradContext* ctx, const DeformConv2dParams& p) {
    ctx->saved_data["stride_h"] = p.stride_h;
    ctx->saved_data["stride_w"] = p.stride_w;
    ctx->saved_data["pad_h"] = p.pad_h;
    ctx->saved_data["pad_w"] = p.pad_w;
    ctx->saved_data["dilation_h"] = p.dilation_h;
    ctx->saved_data["dilation_w"] = p.dilation_w;
    ctx->saved_data["groups"] = p.groups;
    ctx->saved_data["offset_groups"] = p.offset_groups;
    ctx->saved_data["use_mask"] = p.use_mask;
}

DeformConv2dParams loadParams(AutogradContext* ctx) {
    auto i = [&](const char* key) { return ctx->saved_data[key].toInt(); };
    return {i("stride_h"), i("stride_w"), i("pad_h"), i("pad_w"), i("dilation_h"), i("dilation_w"), i("groups"),
            i("offset_groups"), ctx->saved_data["use_mask"].toBool()};
}

class DeformConv2dFunction : public torch::autograd::Function<DeformConv2dFunction> {
public:
    static variable_list forward(AutogradContext* ctx, const torch::autograd::Variable& input,
                                 const torch::autograd::Variable& weight, const torch::autograd::Variable& offset,
                                 const torch::autograd::Variable& mask, const torch::autograd::Variable& bias,
                                 const DeformConv2dParams& p) {
        at::AutoDispatchBelowADInplaceOrView guard;
        at::Tensor out = deformConv2dForwardImpl(input, weight, offset, mask, bias, p);
        ctx->save_for_backward({input, weight, offset, mask, bias});
        saveParams(ctx, p);
        return {out};
    }

    static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
        const auto saved = ctx->get_saved_variables();
        const DeformConv2dParams p = loadParams(ctx);
        auto [gi, gw, goff, gm, gb] =
            deformConv2dBackwardAutograd(grad_output[0], saved[0], saved[1], saved[2], saved[3], saved[4], p.stride_h,
                                         p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.groups,
                                         p.offset_groups, p.use_mask);
        // Without a mask the mask input gets no gradient, as in torchvision.
        return {gi, gw, goff, p.use_mask ? gm : at::Tensor(), gb, at::Tensor()};
    }
};

class DeformConv2dBackwardFunction : public torch::autograd::Function<DeformConv2dBackwardFunction> {
public:
    static variable_list forward(AutogradContext* /*ctx*/, const torch::autograd::Variable& grad,
                                 const torch::autograd::Variable& input, const torch::autograd::Variable& weight,
                                 const torch::autograd::Variable& offset, const torch::autograd::Variable& mask,
                                 const torch::autograd::Variable& bias, const DeformConv2dParams& p) {
        at::AutoDispatchBelowADInplaceOrView guard;
        auto [gi, gw, goff, gm, gb] = deformConv2dBackwardImpl(grad, input, weight, offset, mask, bias, p);
        return {gi, gw, goff, gm, gb};
    }

    static variable_list backward(AutogradContext* /*ctx*/, const variable_list& /*grad_output*/) {
        TORCH_CHECK(false, "deform_conv2d: double backward (gradients of gradients) is not supported");
    }
};

} // namespace

at::Tensor deformConv2dAutograd(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                                const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                                int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t groups,
                                int64_t offset_groups, bool use_mask) {
    return DeformConv2dFunction::apply(input, weight, offset, mask, bias,
                                       paramsOf(stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups,
                                                offset_groups, use_mask))[0];
}

DeformConv2dGrads deformConv2dBackwardAutograd(const at::Tensor& grad, const at::Tensor& input,
                                               const at::Tensor& weight, const at::Tensor& offset,
                                               const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h,
                                               int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                               int64_t dilation_w, int64_t groups, int64_t offset_groups,
                                               bool use_mask) {
    auto r = DeformConv2dBackwardFunction::apply(grad, input, weight, offset, mask, bias,
                                                 paramsOf(stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                                                          groups, offset_groups, use_mask));
    return {r[0], r[1], r[2], r[3], r[4]};
}

} // namespace deformscope::ops::detail
