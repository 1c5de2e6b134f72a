#include "core/ops/autograd/deform_kernel2d_autograd.h"

#include <torch/autograd.h>

namespace deformscope::ops::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

DeformKernel2dParams paramsOf(int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                              int64_t dilation_w, int64_t kernel_h, int64_t kernel_w, bool use_offset) {
    return {stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, kernel_h, kernel_w, use_offset};
}

void saveParams(AutogradContext* ctx, const DeformKernel2dParams& p) {
    ctx->saved_data["stride_h"] = p.stride_h;
    ctx->saved_data["stride_w"] = p.stride_w;
    ctx->saved_data["pad_h"] = p.pad_h;
    ctx->saved_data["pad_w"] = p.pad_w;
    ctx->saved_data["dilation_h"] = p.dilation_h;
    ctx->saved_data["dilation_w"] = p.dilation_w;
    ctx->saved_data["kernel_h"] = p.kernel_h;
    ctx->saved_data["kernel_w"] = p.kernel_w;
    ctx->saved_data["use_offset"] = p.use_offset;
}

DeformKernel2dParams loadParams(AutogradContext* ctx) {
    auto i = [&](const char* key) { return ctx->saved_data[key].toInt(); };
    return {i("stride_h"), i("stride_w"), i("pad_h"), i("pad_w"), i("dilation_h"), i("dilation_w"), i("kernel_h"),
            i("kernel_w"), ctx->saved_data["use_offset"].toBool()};
}

class DeformKernel2dFunction : public torch::autograd::Function<DeformKernel2dFunction> {
public:
    static variable_list forward(AutogradContext* ctx, const torch::autograd::Variable& input,
                                 const torch::autograd::Variable& weight,
                                 const torch::autograd::Variable& kernel_offset,
                                 const torch::autograd::Variable& offset, const torch::autograd::Variable& bias,
                                 const DeformKernel2dParams& p) {
        at::AutoDispatchBelowADInplaceOrView guard;
        at::Tensor out = deformKernel2dForwardImpl(input, weight, kernel_offset, offset, bias, p);
        ctx->save_for_backward({input, weight, kernel_offset, offset, bias});
        saveParams(ctx, p);
        return {out};
    }

    static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
        const auto saved = ctx->get_saved_variables();
        const DeformKernel2dParams p = loadParams(ctx);
        auto [gi, gw, gko, goff, gb] = deformKernel2dBackwardAutograd(
            grad_output[0], saved[0], saved[1], saved[2], saved[3], saved[4], p.stride_h, p.stride_w, p.pad_h,
            p.pad_w, p.dilation_h, p.dilation_w, p.kernel_h, p.kernel_w, p.use_offset);
        // Without image offsets the offset placeholder gets no gradient.
        return {gi, gw, gko, p.use_offset ? goff : at::Tensor(), gb, at::Tensor()};
    }
};

class DeformKernel2dBackwardFunction : public torch::autograd::Function<DeformKernel2dBackwardFunction> {
public:
    static variable_list forward(AutogradContext* /*ctx*/, const torch::autograd::Variable& grad,
                                 const torch::autograd::Variable& input, const torch::autograd::Variable& weight,
                                 const torch::autograd::Variable& kernel_offset,
                                 const torch::autograd::Variable& offset, const torch::autograd::Variable& bias,
                                 const DeformKernel2dParams& p) {
        at::AutoDispatchBelowADInplaceOrView guard;
        auto [gi, gw, gko, goff, gb] = deformKernel2dBackwardImpl(grad, input, weight, kernel_offset, offset, bias, p);
        return {gi, gw, gko, goff, gb};
    }

    static variable_list backward(AutogradContext* /*ctx*/, const variable_list& /*grad_output*/) {
        TORCH_CHECK(false, "deform_kernel2d: double backward (gradients of gradients) is not supported");
    }
};

} // namespace

at::Tensor deformKernel2dAutograd(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                                  const at::Tensor& offset, const at::Tensor& bias, int64_t stride_h,
                                  int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                  int64_t dilation_w, int64_t kernel_h, int64_t kernel_w, bool use_offset) {
    return DeformKernel2dFunction::apply(input, weight, kernel_offset, offset, bias,
                                         paramsOf(stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, kernel_h,
                                                  kernel_w, use_offset))[0];
}

DeformKernel2dGrads deformKernel2dBackwardAutograd(const at::Tensor& grad, const at::Tensor& input,
                                                   const at::Tensor& weight, const at::Tensor& kernel_offset,
                                                   const at::Tensor& offset, const at::Tensor& bias,
                                                   int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                                   int64_t dilation_h, int64_t dilation_w, int64_t kernel_h,
                                                   int64_t kernel_w, bool use_offset) {
    auto r = DeformKernel2dBackwardFunction::apply(grad, input, weight, kernel_offset, offset, bias,
                                                   paramsOf(stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                                                            kernel_h, kernel_w, use_offset));
    return {r[0], r[1], r[2], r[3], r[4]};
}

} // namespace deformscope::ops::detail
