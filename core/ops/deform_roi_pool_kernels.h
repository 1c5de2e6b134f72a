// Internal interface between the device-agnostic deform_roi_pool driver
// (deform_roi_pool.cpp) and the per-device kernels (cpu/, cuda/), and the
// arithmetic both devices share: where an RoI's bins and reads lie, and
// RoIAlign's bilinear read (mmcv's bilinear_interpolate). Compiled by the host
// compiler and by nvcc (host_device.h), so the CPU tests run exactly the
// arithmetic the GPU runs.
//
// The driver owns argument checks; a device supplies the forward and the
// backward. Callers guarantee that every tensor is contiguous, on the kernel's
// device, of one floating dtype (roi_order and image_starts: int64) and shaped
// as documented below, that every RoI's batch index lies in [0, batch), and
// that height * width > 0. Kernels never throw for shapes but do check CUDA
// launch errors.
#pragma once

#include "core/ops/host_device.h"
#include "core/ops/op_support.h"

#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>

namespace deformscope::ops::detail {

// Geometry and scalars of one call:
//   input   [batch, channels, height, width]
//   rois    [rois, 5]
//   offset  [rois, 2, pooled_h, pooled_w] (read only when use_offset)
//   mask    [rois, 1, pooled_h, pooled_w] (read only when use_mask)
//   output  [rois, channels, pooled_h, pooled_w]
struct RoiPoolGeometry {
    int64_t batch = 0;
    int64_t channels = 0;
    int64_t height = 0;
    int64_t width = 0;
    int64_t rois = 0;
    int64_t pooled_h = 0;
    int64_t pooled_w = 0;
    double spatial_scale = 1.0;
    int64_t sampling_ratio = 0;
    double gamma = 0.1;
    bool use_offset = false;
    bool use_mask = false;

    DEFORMSCOPE_HOST_DEVICE int64_t bins() const { return pooled_h * pooled_w; }
    DEFORMSCOPE_HOST_DEVICE int64_t pixels() const { return height * width; }
};

// One bin of one RoI in arithmetic type T, as mmcv's kernel computes it:
// read (iy, ix) of the bin lies at (sampleY(iy), sampleX(ix)).
template <typename T>
struct RoiBin {
    int64_t image = 0; // the RoI's batch index
    T y0 = 0;          // the bin's top edge: shifted start_y + i * bin_h
    T x0 = 0;          // its left edge
    T bin_h = 0;
    T bin_w = 0;
    int64_t grid_h = 0; // reads per axis (0 for an adaptive grid over an RoI of size <= 0)
    int64_t grid_w = 0;
    T count = 1;        // max(grid_h * grid_w, 1): the average's divisor
    T offset_scale_y = 0; // gamma * roi_h: d y / d offset[k, 1, i, j]
    T offset_scale_x = 0; // gamma * roi_w: d x / d offset[k, 0, i, j]

    // mmcv's order of operations: y0 + ((iy + 0.5) * bin_h) / grid_h.
    DEFORMSCOPE_HOST_DEVICE T sampleY(int64_t iy) const {
        return y0 + static_cast<T>(static_cast<float>(iy) + 0.5f) * bin_h / static_cast<T>(grid_h);
    }
    DEFORMSCOPE_HOST_DEVICE T sampleX(int64_t ix) const {
        return x0 + static_cast<T>(static_cast<float>(ix) + 0.5f) * bin_w / static_cast<T>(grid_w);
    }
};

// Reads per axis of a bin: sampling_ratio when positive, else mmcv's
// ceilf(roi_size / pooled): the quotient rounded to float in every dtype. A
// non-positive (or NaN) quotient gives 0 reads (mmcv's loops do not run then
// either; its divisor is then irrelevant since the bin pools 0).
template <typename T>
DEFORMSCOPE_HOST_DEVICE int64_t roiGridSize(int64_t sampling_ratio, T roi_size, int64_t pooled) {
    if (sampling_ratio > 0)
        return sampling_ratio;
    const float q = static_cast<float>(roi_size / static_cast<T>(pooled));
    if (!(q > 0.0f))
        return 0;
    return static_cast<int64_t>(::ceilf(q));
}

// Bin (i, j) of RoI k. `offset` is null without offsets.
template <typename T, typename scalar_t>
DEFORMSCOPE_HOST_DEVICE RoiBin<T> roiBin(const RoiPoolGeometry& g, const scalar_t* __restrict__ rois,
                                         const scalar_t* __restrict__ offset, int64_t k, int64_t i, int64_t j) {
    const scalar_t* roi = rois + 5 * k;
    const T scale = static_cast<T>(g.spatial_scale);
    RoiBin<T> b;
    b.image = static_cast<int64_t>(static_cast<T>(roi[0])); // truncated, as mmcv's int conversion
    // No rounding, no minimum size (mmcv >= 1.0): the 0.5 aligns pixel centres.
    T start_x = static_cast<T>(roi[1]) * scale - static_cast<T>(0.5);
    T start_y = static_cast<T>(roi[2]) * scale - static_cast<T>(0.5);
    const T end_x = static_cast<T>(roi[3]) * scale - static_cast<T>(0.5);
    const T end_y = static_cast<T>(roi[4]) * scale - static_cast<T>(0.5);
    const T roi_w = end_x - start_x;
    const T roi_h = end_y - start_y;
    b.bin_h = roi_h / static_cast<T>(g.pooled_h);
    b.bin_w = roi_w / static_cast<T>(g.pooled_w);
    b.grid_h = roiGridSize(g.sampling_ratio, roi_h, g.pooled_h);
    b.grid_w = roiGridSize(g.sampling_ratio, roi_w, g.pooled_w);
    const T gamma = static_cast<T>(g.gamma);
    b.offset_scale_x = gamma * roi_w;
    b.offset_scale_y = gamma * roi_h;
    if (offset) {
        // The whole bin moves by the RoI's size times its normalised offset.
        const int64_t P = g.bins();
        const scalar_t* o = offset + 2 * k * P + i * g.pooled_w + j;
        start_x += b.offset_scale_x * static_cast<T>(o[0]);
        start_y += b.offset_scale_y * static_cast<T>(o[P]);
    }
    b.y0 = start_y + static_cast<T>(i) * b.bin_h;
    b.x0 = start_x + static_cast<T>(j) * b.bin_w;
    const int64_t n = b.grid_h * b.grid_w;
    b.count = static_cast<T>(n > 1 ? n : 1);
    return b;
}

// RoIAlign's bilinear read at (y, x) of a height x width plane, after its range
// test: the clamped corner rows/columns and fractional parts. Corner order,
// everywhere: 0 (y_low, x_low), 1 (y_low, x_high), 2 (y_high, x_low),
// 3 (y_high, x_high), and every sum over the corners runs in that order.
template <typename T>
struct RoiRead {
    int64_t y_low = 0, y_high = 0, x_low = 0, x_high = 0;
    T ly = 0, lx = 0;
    bool flat_y = false; // y was clamped (y <= 0 or y >= height-1): the read does not change with y
    bool flat_x = false;

    DEFORMSCOPE_HOST_DEVICE int64_t index(int corner, int64_t width) const {
        return ((corner >> 1) ? y_high : y_low) * width + ((corner & 1) ? x_high : x_low);
    }
    // (1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx
    DEFORMSCOPE_HOST_DEVICE T weight(int corner) const {
        const T wy = (corner >> 1) ? ly : T(1) - ly;
        const T wx = (corner & 1) ? lx : T(1) - lx;
        return wy * wx;
    }
};

// The range test and the clamping. Returns false for a read that is 0 with
// zero gradient: y < -1, y > height, x < -1 or x > width (a NaN too; written
// as the negation of "inside" so that NaN never reaches the integer
// conversion). -1 and height themselves are inside, as in mmcv.
template <typename T>
DEFORMSCOPE_HOST_DEVICE bool locateRoiRead(T y, T x, int64_t height, int64_t width, RoiRead<T>& r) {
    if (!(y >= T(-1) && y <= static_cast<T>(height) && x >= T(-1) && x <= static_cast<T>(width)))
        return false;
    r.flat_y = r.flat_x = false;
    if (y <= T(0)) {
        y = T(0);
        r.flat_y = true;
    }
    if (x <= T(0)) {
        x = T(0);
        r.flat_x = true;
    }
    r.y_low = static_cast<int64_t>(y); // y >= 0: truncation is floor
    r.x_low = static_cast<int64_t>(x);
    if (r.y_low >= height - 1) {
        r.y_high = r.y_low = height - 1;
        y = static_cast<T>(r.y_low);
        r.flat_y = true;
    } else {
        r.y_high = r.y_low + 1;
    }
    if (r.x_low >= width - 1) {
        r.x_high = r.x_low = width - 1;
        x = static_cast<T>(r.x_low);
        r.flat_x = true;
    } else {
        r.x_high = r.x_low + 1;
    }
    r.ly = y - static_cast<T>(r.y_low);
    r.lx = x - static_cast<T>(r.x_low);
    return true;
}

template <typename T, typename scalar_t>
DEFORMSCOPE_HOST_DEVICE void roiCornerValues(const scalar_t* __restrict__ plane, const RoiRead<T>& r, int64_t width,
                                             T v[4]) {
    DEFORMSCOPE_UNROLL
    for (int corner = 0; corner < 4; ++corner)
        v[corner] = static_cast<T>(plane[r.index(corner, width)]);
}

// w0*v0 + w1*v1 + w2*v2 + w3*v3 (mmcv's order).
template <typename T>
DEFORMSCOPE_HOST_DEVICE T roiInterpolate(const RoiRead<T>& r, const T v[4]) {
    return r.weight(0) * v[0] + r.weight(1) * v[1] + r.weight(2) * v[2] + r.weight(3) * v[3];
}

// The derivatives of the read w.r.t. y and x: 0 along a clamped axis, else the
// bilinear slope at the clamped position of the other axis.
template <typename T>
DEFORMSCOPE_HOST_DEVICE void roiSlopes(const RoiRead<T>& r, const T v[4], T& dy, T& dx) {
    dy = r.flat_y ? T(0) : (T(1) - r.lx) * (v[2] - v[0]) + r.lx * (v[3] - v[1]);
    dx = r.flat_x ? T(0) : (T(1) - r.ly) * (v[1] - v[0]) + r.ly * (v[3] - v[2]);
}

// visit(r) for each of the bin's reads that lands on the map (locateRoiRead), rows
// then columns: the one walk over a bin's samples that the forward and every
// gradient share.
template <typename T, typename Visit>
DEFORMSCOPE_HOST_DEVICE void forEachRoiRead(const RoiBin<T>& bin, const RoiPoolGeometry& g, Visit&& visit) {
    for (int64_t iy = 0; iy < bin.grid_h; ++iy) {
        const T y = bin.sampleY(iy);
        for (int64_t ix = 0; ix < bin.grid_w; ++ix) {
            RoiRead<T> r;
            if (locateRoiRead(y, bin.sampleX(ix), g.height, g.width, r))
                visit(r);
        }
    }
}

// Σ over the bin's reads of the read of `plane` (0 for reads outside it).
template <typename acc_t, typename scalar_t>
DEFORMSCOPE_HOST_DEVICE acc_t binSum(const RoiBin<acc_t>& bin, const scalar_t* plane, const RoiPoolGeometry& g) {
    acc_t sum = 0;
    forEachRoiRead(bin, g, [&](const RoiRead<acc_t>& r) {
        acc_t v[4];
        roiCornerValues(plane, r, g.width, v);
        sum += roiInterpolate(r, v);
    });
    return sum;
}

// The offset and mask gradients of bin q of RoI k (CPU and CUDA alike): over the
// channels, ay / ax = Σ_c grad_output · Σ_reads d read / dy (dx) and am = Σ_c
// grad_output · (the unmodulated pooled value). The caller scales ay and ax by
// m / count · offset_scale (the bin's modulation, its read count, gamma · RoI size).
template <typename T, typename scalar_t>
DEFORMSCOPE_HOST_DEVICE void roiBinGradients(const RoiBin<T>& bin, const scalar_t* __restrict__ input,
                                             const scalar_t* __restrict__ grad_output, const RoiPoolGeometry& g,
                                             int64_t k, int64_t q, T& ay, T& ax, T& am) {
    const int64_t P = g.bins();
    ay = ax = am = T(0);
    for (int64_t c = 0; c < g.channels; ++c) {
        const scalar_t* plane = input + (bin.image * g.channels + c) * g.pixels();
        const T go = static_cast<T>(grad_output[(k * g.channels + c) * P + q]);
        T sum = 0, sy = 0, sx = 0;
        forEachRoiRead(bin, g, [&](const RoiRead<T>& r) {
            T v[4];
            roiCornerValues(plane, r, g.width, v);
            T dy, dx;
            roiSlopes(r, v, dy, dx);
            sum += roiInterpolate(r, v);
            sy += dy;
            sx += dx;
        });
        // d out / d (sum, sy, sx) = m / count; d pooled / d m = sum / count.
        am += go * (sum / bin.count);
        ay += go * sy;
        ax += go * sx;
    }
}

// output[k, c, i, j] for every element (`output` preallocated).
using RoiForwardFn = void (*)(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                              const at::Tensor& mask, const RoiPoolGeometry& geom, at::Tensor& output);

// Given grad_output [K, C, ph, pw], writes
//   grad_input   [N, C, H, W]    (zero-filled by the caller)
//   grad_offset  [K, 2, ph, pw]  when use_offset (zero-filled), else untouched
//   grad_mask    [K, 1, ph, pw]  when use_mask (zero-filled), else untouched
// roi_order [K] lists the RoIs grouped by image, in increasing index within an
// image; the RoIs of image b are roi_order[image_starts[b] .. image_starts[b+1]).
// The deterministic input gradient walks them in that order per (image, channel).
// When `deterministic` is true the result must be bit-identical across runs; the
// CPU is always deterministic, CUDA honours it for grad_input and is always
// deterministic for the others.
using RoiBackwardFn = void (*)(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& rois,
                               const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& roi_order,
                               const at::Tensor& image_starts, const RoiPoolGeometry& geom, bool deterministic,
                               at::Tensor& grad_input, at::Tensor& grad_offset, at::Tensor& grad_mask);

using RoiPoolKernels = KernelTable<RoiForwardFn, RoiBackwardFn>;

// Defined in cpu/deform_roi_pool_kernel.cpp, and in cuda/deform_roi_pool_kernel.cu
// when the build has CUDA.
RoiPoolKernels cpuRoiPoolKernels();
RoiPoolKernels cudaRoiPoolKernels();

} // namespace deformscope::ops::detail
