// Deformable RoI pooling (DCNv1 §2.2, DCNv2 §3.1) with mmcv's semantics
// (mmcv.ops.DeformRoIPool, DeformRoIPoolPack, ModulatedDeformRoIPoolPack):
// every bin of a pooled_height x pooled_width grid over a region of interest
// is moved by a learned offset scaled by the RoI's size, averages bilinear
// reads of the feature map, and (DCNv2) is multiplied by a learned modulation.
//
// deformRoiPool() and deformRoiPoolBackward() call the registered operators
// through the dispatcher (autograd included); call registerOperators()
// (registration.h) once first. The *Impl functions are the device-dispatching
// kernels behind the operators. All functions are thread-safe; bad arguments
// throw c10::Error naming the argument, its expected and its actual shape.
//
// Operator schemas (namespace `deformscope`, so torch.ops.deformscope.* in Python):
//
//   deform_roi_pool(Tensor input, Tensor rois, Tensor offset, Tensor mask, int pooled_height,
//                   int pooled_width, float spatial_scale, int sampling_ratio, float gamma,
//                   bool use_mask) -> Tensor
//   _deform_roi_pool_backward(Tensor grad, Tensor input, Tensor rois, Tensor offset, Tensor mask,
//                   <same scalars>) -> (Tensor, Tensor, Tensor)
//     returning the gradients w.r.t. (input, offset, mask); the RoIs get none.
//
// Arguments (K regions of interest):
//   input   [N, C, H, W]  the feature map
//   rois    [K, 5]        (batch_index, x1, y1, x2, y2) in image coordinates (the feature map's
//                         coordinates divided by spatial_scale); batch_index is truncated to an
//                         integer and must lie in [0, N)
//   offset  [K, 2, ph, pw] normalised bin offsets, channel 0 moving bins along x (columns),
//                         channel 1 along y (rows), as mmcv; an empty tensor (numel() == 0) means
//                         no offsets: plain RoIAlign with mmcv's (aligned) coordinates
//   mask    [K, 1, ph, pw] the per-bin modulation, read only when use_mask (else pass an empty tensor)
// Output [K, C, ph, pw]. For RoI k, channel c and bin (i, j), all arithmetic as in mmcv's kernel:
//
//   b = int(rois[k, 0])
//   start_x = x1*spatial_scale − 0.5,  end_x = x2*spatial_scale − 0.5   (y alike; no rounding and,
//   roi_w   = end_x − start_x,         roi_h = end_y − start_y           as in mmcv >= 1.0, no
//   bin_w   = roi_w / pw,              bin_h = roi_h / ph                minimum RoI size)
//   grid_w  = sampling_ratio > 0 ? sampling_ratio : ceil(roi_w / pw)   (grid_h alike; mmcv's ceilf,
//             so the quotient is rounded to float first in every dtype)
//   start_x += gamma * roi_w * offset[k, 0, i, j],  start_y += gamma * roi_h * offset[k, 1, i, j]
//   y(iy) = start_y + i*bin_h + (iy + 0.5) * bin_h / grid_h,   x(ix) alike
//   out[k, c, i, j] = m * Σ_{iy < grid_h, ix < grid_w} read(input[b, c], y(iy), x(ix)) / max(grid_h*grid_w, 1)
//   with m = mask[k, 0, i, j] when use_mask, else 1.
// spatial_scale and gamma are used as given, converted to the arithmetic type
// (mmcv's launcher takes them as float, which differs from this only in
// float64, e.g. gamma 0.1 -> 0.100000001490116).
//
// read() is RoIAlign's bilinear read (mmcv's bilinear_interpolate), NOT the
// boundary rule of deform_conv2d: a read at y < −1, y > H, x < −1 or x > W is 0;
// otherwise y <= 0 is clamped to 0 and y >= H−1 to H−1 (x alike), and the four
// corners around the clamped position are interpolated. So a read between −1
// and 0, or between H−1 and H, takes the border row's value (no fade to 0).
//
// Gradients are the exact derivatives of the forward above:
//   input   every read's corner weights * m / count * grad_output (mmcv's grad_input)
//   offset  Σ_c Σ_reads d read / dx * gamma * roi_w * m / count * grad_output (channel 0; y alike).
//           d read / dx is 0 where x is clamped (x <= 0 or x >= W−1) or the read is 0, and is taken
//           with the clamped y. mmcv's CUDA backward agrees inside the feature map (0 < x < W−1 and
//           0 < y < H−1) but differs in the clamped bands, where it evaluates the bilinear slope
//           at the unclamped coordinate; ours matches finite differences of the forward there.
//   mask    Σ_c (the unmodulated pooled value) * grad_output (as autograd of mmcv's `d * mask`)
// The CPU backward is deterministic. On CUDA the offset and mask gradients are
// computed in a fixed order; the input gradient follows deform_conv2d's
// setting (setBackwardMode / deterministicBackwardInEffect in deform_conv2d.h):
// a fixed-order gather per (image, channel) by default, floating-point atomics
// (mmcv's scatter) in BackwardMode::Atomic. Double backward is not supported.
// dtypes: float, double, half, bfloat16 (arithmetic in float for the last two).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace deformscope::ops {

// Members in the schema's order. mmcv's defaults for spatial_scale, sampling_ratio and gamma.
struct DeformRoiPoolParams {
    int64_t pooled_height = 7;
    int64_t pooled_width = 7;
    double spatial_scale = 1.0;
    int64_t sampling_ratio = 0; // <= 0: adaptive, ceil(roi size / pooled size) reads per bin and axis
    double gamma = 0.1;
    bool use_mask = false;
};

// (grad_input, grad_offset, grad_mask). Without offsets grad_offset is the
// (empty) offset placeholder's shape; without use_mask grad_mask is zeros
// shaped like the mask placeholder.
using DeformRoiPoolGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

// Undefined `offset` or `mask` tensors are accepted here and passed on as empty ones.
at::Tensor deformRoiPool(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                         const at::Tensor& mask, const DeformRoiPoolParams& p);

DeformRoiPoolGrads deformRoiPoolBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                                         const DeformRoiPoolParams& p);

// Kernels behind the operators: no autograd, dispatch on the input's device.
at::Tensor deformRoiPoolForwardImpl(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                                    const at::Tensor& mask, const DeformRoiPoolParams& p);

DeformRoiPoolGrads deformRoiPoolBackwardImpl(const at::Tensor& grad_output, const at::Tensor& input,
                                             const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                                             const DeformRoiPoolParams& p);

} // namespace deformscope::ops
