// Internal interface between the device-agnostic deform_conv2d driver
// (deform_conv2d.cpp) and the per-device sampling kernels (cpu/, cuda/).
//
// The driver owns argument checks, batching, and the GEMMs; a device supplies
// only the two operations that touch the deformed sampling grid. Callers
// guarantee that every tensor is contiguous, on the device the kernel is for,
// of one floating dtype, and shaped as documented below. Kernels never throw for
// shapes (the driver checked them) but do check CUDA launch errors.
#pragma once

#include "core/ops/op_support.h"
#include "core/ops/sampling_grid.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace deformscope::ops::detail {

// Geometry of one chunk of images processed together (the grid: sampling_grid.h).
//   input   [batch, channels, height, width]
//   offset  [batch, 2 * offset_groups * K, out_h, out_w]  (K = kernel_h * kernel_w)
//           channel g*2K + 2k is dy (rows), g*2K + 2k + 1 is dx (cols), tap k = i*kernel_w + j
//   mask    [batch, offset_groups * K, out_h, out_w]       (only read when use_mask)
//   columns [channels * K, batch * out_h * out_w]           row c*K + k, column b*out_h*out_w + oy*out_w + ox
// Offset group g covers channels [g*C/G, (g+1)*C/G). Tap k of offset group g
// reads SamplingGrid::tapPosition moved by its offset, bilinearly under
// torchvision's boundary rule (bilinear.h), which forward and backward apply
// identically.
struct DeformGeometry : SamplingGrid {
    int64_t offset_groups = 1;
    bool use_mask = false;

    // C/G; 0 for offset_groups <= 0, which the driver rejects before any kernel runs.
    DEFORMSCOPE_HOST_DEVICE int64_t channelsPerGroup() const {
        return offset_groups > 0 ? channels / offset_groups : 0;
    }
};

// columns[c*K + k, b*P + p] = mask(b, g(c), k, p) * bilinear(input[b, c], y, x)
// (mask factor only when use_mask). `columns` is preallocated [C*K, B*P]; every
// element is written.
using Im2ColFn = void (*)(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                          const DeformGeometry& geom, at::Tensor& columns);

// Given grad_columns = dLoss/dcolumns ([C*K, B*P]), writes
//   grad_input  [B, C, H, W]      = sum over taps/positions of mask * bilinear weight * grad_columns
//   grad_offset [B, 2GK, P]        = sum_c grad_columns * mask * d bilinear(input[c]) / d(y or x)
//   grad_mask   [B, GK, P]         = sum_c grad_columns * bilinear(input[c])   (only when use_mask)
// All three outputs are preallocated and zero-filled by the caller. When
// `deterministic` is true the result must be bit-identical across runs (no
// floating-point atomics); otherwise the kernel may use atomics for speed.
using ColumnsBackwardFn = void (*)(const at::Tensor& grad_columns, const at::Tensor& input,
                                   const at::Tensor& offset, const at::Tensor& mask,
                                   const DeformGeometry& geom, bool deterministic, at::Tensor& grad_input,
                                   at::Tensor& grad_offset, at::Tensor& grad_mask);

// forward: im2col, backward: columnsBackward.
using DeviceKernels = KernelTable<Im2ColFn, ColumnsBackwardFn>;

// Defined in cpu/deform_conv2d_kernel.cpp, and in cuda/deform_conv2d_kernel.cu
// when the build has CUDA.
DeviceKernels cpuKernels();
DeviceKernels cudaKernels();

} // namespace deformscope::ops::detail
