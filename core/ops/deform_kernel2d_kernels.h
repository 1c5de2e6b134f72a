// Internal interface between the device-agnostic deform_kernel2d driver
// (deform_kernel2d.cpp) and the per-device kernels (cpu/, cuda/).
//
// The driver owns argument checks, batching and the bias; a device supplies the
// forward and backward of the bias-free operator for one chunk of images.
// Callers guarantee that every tensor is contiguous, on the kernel's device, of
// one floating dtype and shaped as documented below. Kernels never throw for
// shapes (the driver checked them) but do check CUDA launch errors.
#pragma once

#include "core/ops/op_support.h"
#include "core/ops/sampling_grid.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace deformscope::ops::detail {

// Geometry of one chunk of images processed together (the grid: sampling_grid.h).
//   input          [batch, channels, height, width]
//   weight         [channels, 1, scope_h, scope_w]
//   kernel_offset  [batch, 2K, out_h, out_w] when local_kernel, else [batch, 2K, 1, 1]
//   offset         [batch, 2K, out_h, out_w] (read only when use_offset)
//   output         [batch, channels, out_h, out_w]
// (K = kernel_h * kernel_w, tap k = i*kernel_w + j, channel 2k is dy, 2k+1 is dx.)
// Tap k at output (oy, ox) reads
//   the scope at  ky = scopeRow(i) + dky,  kx = scopeCol(j) + dkx
//   the image at  SamplingGrid::tapPosition moved by (dy, dx) when use_offset
// and contributes W_c(ky, kx) * x_c(y, x). Both reads are bilinear under
// torchvision's boundary rule (bilinear.h), which forward and backward apply
// identically.
struct DeformKernelGeometry : SamplingGrid {
    int64_t scope_h = 0;
    int64_t scope_w = 0;
    bool local_kernel = true; // kernel_offset per output position (else one per image)
    bool use_offset = false;

    DEFORMSCOPE_HOST_DEVICE int64_t scopeSize() const { return scope_h * scope_w; }
    // Positions per kernel_offset channel: out_h*out_w (local) or 1 (global).
    DEFORMSCOPE_HOST_DEVICE int64_t kernelOffsetPlane() const { return local_kernel ? outPlane() : 1; }
    // The tap's base position in the scope, i + (scope_h - kernel_h)/2 (exact in
    // double; the kernels round it to their arithmetic type, then add the offset).
    DEFORMSCOPE_HOST_DEVICE double scopeRow(int64_t i) const { return double(i) + 0.5 * double(scope_h - kernel_h); }
    DEFORMSCOPE_HOST_DEVICE double scopeCol(int64_t j) const { return double(j) + 0.5 * double(scope_w - kernel_w); }
};

// output[b, c, p] = Σ_k W_c(ky, kx) · x_c(y, x)   (no bias). `output` is
// preallocated; every element is written.
using DkForwardFn = void (*)(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                             const at::Tensor& offset, const DeformKernelGeometry& geom, at::Tensor& output);

// Given grad_output [B, C, Ho, Wo], writes
//   grad_input          [B, C, H, W]   (zero-filled by the caller; the kernel writes it)
//   grad_weight         [C, 1, Sh, Sw] ACCUMULATED into (the driver calls once per chunk of images)
//   grad_kernel_offset  shaped like kernel_offset (zero-filled; written)
//   grad_offset         [B, 2K, Ho, Wo] when use_offset (zero-filled; written), else untouched
// When `deterministic` is true the result must be bit-identical across runs; the
// CPU is always deterministic. The CUDA kernels honour it for grad_input and are
// always deterministic for the other gradients.
using DkBackwardFn = void (*)(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                              const at::Tensor& kernel_offset, const at::Tensor& offset,
                              const DeformKernelGeometry& geom, bool deterministic, at::Tensor& grad_input,
                              at::Tensor& grad_weight, at::Tensor& grad_kernel_offset, at::Tensor& grad_offset);

using DeformKernelKernels = KernelTable<DkForwardFn, DkBackwardFn>;

// Defined in cpu/deform_kernel2d_kernel.cpp, and in cuda/deform_kernel2d_kernel.cu
// when the build has CUDA.
DeformKernelKernels cpuDeformKernelKernels();
DeformKernelKernels cudaDeformKernelKernels();

} // namespace deformscope::ops::detail
