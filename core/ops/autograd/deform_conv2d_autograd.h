// Autograd kernels for deform_conv2d (registered for DispatchKey::Autograd).
#pragma once

#include "core/ops/deform_conv2d.h"

namespace deformscope::ops::detail {

at::Tensor deformConv2dAutograd(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                                const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                                int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t groups,
                                int64_t offset_groups, bool use_mask);

// The backward op under autograd: computes the gradients, and refuses to be
// differentiated again (double backward is not supported).
DeformConv2dGrads deformConv2dBackwardAutograd(const at::Tensor& grad, const at::Tensor& input,
                                               const at::Tensor& weight, const at::Tensor& offset,
                                               const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h,
                                               int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                               int64_t dilation_w, int64_t groups, int64_t offset_groups,
                                               bool use_mask);

} // namespace deformscope::ops::detail
