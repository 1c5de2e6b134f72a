// Autograd kernels for deform_kernel2d (registered for DispatchKey::Autograd).
#pragma once

#include "core/ops/deform_kernel2d.h"

namespace deformscope::ops::detail {

at::Tensor deformKernel2dAutograd(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                                  const at::Tensor& offset, const at::Tensor& bias, int64_t stride_h,
                                  int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                  int64_t dilation_w, int64_t kernel_h, int64_t kernel_w, bool use_offset);

// The backward op under autograd: computes the gradients, and refuses to be
// differentiated again (double backward is not supported).
DeformKernel2dGrads deformKernel2dBackwardAutograd(const at::Tensor& grad, const at::Tensor& input,
                                                   const at::Tensor& weight, const at::Tensor& kernel_offset,
                                                   const at::Tensor& offset, const at::Tensor& bias,
                                                   int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                                   int64_t dilation_h, int64_t dilation_w, int64_t kernel_h,
                                                   int64_t kernel_w, bool use_offset);

} // namespace deformscope::ops::detail
