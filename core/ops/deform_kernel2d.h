// Deformable Kernels (DK, Dai et al., ICLR 2020): a depthwise convolution whose
// kernel is resampled, per image or per output position, from a larger "scope"
// kernel at learned kernel-space offsets — optionally combined with DCN-style
// image-space offsets, as the paper combines them.
//
// deformKernel2d() and deformKernel2dBackward() call the registered operators
// through the dispatcher (autograd included); call registerOperators()
// (registration.h) once first. The *Impl functions are the device-dispatching
// kernels behind the operators. All functions are thread-safe; bad arguments
// throw c10::Error naming the argument, its expected and its actual shape.
//
// Operator schemas (namespace `deformscope`, so torch.ops.deformscope.* in Python):
//
//   deform_kernel2d(Tensor input, Tensor weight, Tensor kernel_offset, Tensor offset,
//                   Tensor bias, int stride_h, int stride_w, int pad_h, int pad_w,
//                   int dilation_h, int dilation_w, int kernel_h, int kernel_w,
//                   bool use_offset) -> Tensor
//   _deform_kernel2d_backward(Tensor grad, Tensor input, Tensor weight,
//                   Tensor kernel_offset, Tensor offset, Tensor bias, <same ints>,
//                   bool use_offset) -> (Tensor, Tensor, Tensor, Tensor, Tensor)
//     returning the gradients w.r.t. (input, weight, kernel_offset, offset, bias).
//
// Arguments (C channels, taps K = kernel_h * kernel_w, k = i*kernel_w + j):
//   input          [N, C, H, W]
//   weight         [C, 1, Sh, Sw]   the depthwise scope kernel, Sh >= kernel_h, Sw >= kernel_w
//   kernel_offset  [N, 2K, Ho, Wo]  local mode: one kernel per output position, or
//                  [N, 2K, 1, 1]    global mode: one kernel per image (broadcast over positions);
//                  channel 2k is Δy (rows of the scope), 2k+1 is Δx (columns), as torchvision's offsets
//   offset         [N, 2K, Ho, Wo]  image-space offsets in torchvision's layout (one offset group),
//                  read only when use_offset; otherwise ignored (pass an empty tensor) and Δp = 0
//   bias           [C], or an empty tensor for none
// Output [N, C, Ho, Wo], Ho = (H + 2*pad_h - dilation_h*(kernel_h-1) - 1)/stride_h + 1 (Wo alike):
//
//   y[n,c,p0] = bias[c] + Σ_k  W_c(q_k + Δk(n,p0)) · x[n,c](p0·stride − pad + p_k·dil + Δp_k(n,p0))
//
//   q_k = (i + (Sh−kernel_h)/2, j + (Sw−kernel_w)/2): tap k's base position in the scope,
//         centred (fractional when Sh−kernel_h is odd);
//   W_c(·): bilinear interpolation of weight[c, 0] at a (row, column) position in the scope;
//   x[n,c](·): bilinear interpolation of input[n, c].
// Both interpolations use torchvision's boundary rule: a sample at y <= −1, y >= extent,
// x <= −1 or x >= extent is 0 (with zero gradient w.r.t. its position); otherwise a
// bilinear corner outside the grid counts as 0. With zero kernel offsets, no image
// offsets and Sh = kernel_h, Sw = kernel_w the operator is exactly a depthwise conv2d
// (groups = C). Kernel offsets are not clamped to the scope: a tap pushed outside it
// fades to 0 like an image sample leaving the image.
//
// Gradients: the CPU backward is always deterministic. On CUDA the weight and
// kernel-offset gradients are always computed in a fixed order (bit-identical
// across runs); the input gradient follows deform_conv2d's setting
// (setBackwardMode / deterministicBackwardInEffect in deform_conv2d.h):
// deterministic by default, floating-point atomics in BackwardMode::Atomic.
// Double backward is not supported. dtypes: float, double, half, bfloat16.
#pragma once

#include "core/ops/conv_window.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace deformscope::ops {

// Members in the schema's order: stride, padding, dilation (ConvWindow), then these.
struct DeformKernel2dParams : ConvWindow {
    int64_t kernel_h = 3;
    int64_t kernel_w = 3;
    bool use_offset = false;
};

// (grad_input, grad_weight, grad_kernel_offset, grad_offset, grad_bias). Without
// use_offset grad_offset is zeros shaped like the offset placeholder; without a
// bias grad_bias is zeros shaped like the (empty) bias.
using DeformKernel2dGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Undefined `offset` or `bias` tensors are accepted here and passed on as empty ones.
at::Tensor deformKernel2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                          const at::Tensor& offset, const at::Tensor& bias, const DeformKernel2dParams& p);

DeformKernel2dGrads deformKernel2dBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                           const at::Tensor& weight, const at::Tensor& kernel_offset,
                                           const at::Tensor& offset, const at::Tensor& bias,
                                           const DeformKernel2dParams& p);

// Kernels behind the operators: no autograd, dispatch on the input's device.
at::Tensor deformKernel2dForwardImpl(const at::Tensor& input, const at::Tensor& weight,
                                     const at::Tensor& kernel_offset, const at::Tensor& offset,
                                     const at::Tensor& bias, const DeformKernel2dParams& p);

DeformKernel2dGrads deformKernel2dBackwardImpl(const at::Tensor& grad_output, const at::Tensor& input,
                                               const at::Tensor& weight, const at::Tensor& kernel_offset,
                                               const at::Tensor& offset, const at::Tensor& bias,
                                               const DeformKernel2dParams& p);

} // namespace deformscope::ops
