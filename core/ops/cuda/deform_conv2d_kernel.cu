// CUDA sampling kernels for deform_conv2d (torchvision semantics).
//
// The device-agnostic driver (deform_conv2d.cpp) owns argument checks, batching
// and the GEMMs; this file supplies the two operations that touch the deformed
// sampling grid (see core/ops/deform_conv2d_kernels.h for the contract):
//
//   im2col           columns[c*K + k, b*P + p] = mask * bilinear(input[b, c], y, x)
//   columnsBackward  grad_columns -> grad_input, grad_offset, grad_mask
//
// Conventions shared by every kernel below:
//   * all indices are int64_t and every kernel is a grid-stride loop, so any
//     tensor size that fits in memory is handled with a capped grid;
//   * arithmetic is done in at::opmath_type<scalar_t> (float for Half/BFloat16);
//   * one sampling routine (locateSample + cornerInside + cornerWeight) is used by
//     forward and by every backward path, so the boundary rule is bit-for-bit
//     the same everywhere.

#include "core/ops/deform_conv2d_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>

namespace deformscope::ops::detail {
namespace {

constexpr int kThreadsPerBlock = 256;
// Grid-stride loops make any grid size correct; this caps the grid at a few
// waves of fully occupied SMs so huge problems do not launch millions of blocks.
constexpr int64_t kMaxWavesPerSm = 4;

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Number of blocks for `n` work items (n > 0).
unsigned int gridFor(int64_t n) {
    const cudaDeviceProp* props = at::cuda::getCurrentDeviceProperties();
    const int64_t blocks_per_sm = std::max<int64_t>(1, props->maxThreadsPerMultiProcessor / kThreadsPerBlock);
    const int64_t max_blocks = std::max<int64_t>(1, props->multiProcessorCount * blocks_per_sm * kMaxWavesPerSm);
    return static_cast<unsigned int>(std::min(ceilDiv(n, kThreadsPerBlock), max_blocks));
}

// Plain-old-data copy of DeformGeometry plus derived sizes, passed by value to
// the kernels.
struct Geometry {
    int64_t batch;
    int64_t channels;
    int64_t height;
    int64_t width;
    int64_t out_w;
    int64_t kernel_w;
    int64_t stride_h;
    int64_t stride_w;
    int64_t pad_h;
    int64_t pad_w;
    int64_t dilation_h;
    int64_t dilation_w;
    int64_t groups;              // offset groups G
    int64_t taps;                // K = kernel_h * kernel_w
    int64_t plane;               // P = out_h * out_w
    int64_t pixels;              // H * W
    int64_t channels_per_group;  // C / G
    bool use_mask;
};

Geometry makeGeometry(const DeformGeometry& g) {
    Geometry k{};
    k.batch = g.batch;
    k.channels = g.channels;
    k.height = g.height;
    k.width = g.width;
    k.out_w = g.out_w;
    k.kernel_w = g.kernel_w;
    k.stride_h = g.stride_h;
    k.stride_w = g.stride_w;
    k.pad_h = g.pad_h;
    k.pad_w = g.pad_w;
    k.dilation_h = g.dilation_h;
    k.dilation_w = g.dilation_w;
    k.groups = g.offset_groups;
    k.taps = g.taps();
    k.plane = g.outPlane();
    k.pixels = g.height * g.width;
    k.channels_per_group = g.offset_groups > 0 ? g.channels / g.offset_groups : 0;
    k.use_mask = g.use_mask;
    return k;
}

// ---------------------------------------------------------------------------
// Bilinear sampling shared by forward and backward.
// ---------------------------------------------------------------------------

__device__ __forceinline__ float floorOp(float v) { return ::floorf(v); }
__device__ __forceinline__ double floorOp(double v) { return ::floor(v); }

// A sample position that passed the outer boundary rule: top-left corner
// (y0, x0) and fractional parts (ly, lx) in [0, 1).
template <typename T>
struct SamplePoint {
    int64_t y0;
    int64_t x0;
    T ly;
    T lx;
};

// Sampling position of tap k = (i, j) at output position p = (oy, ox), given the
// tap's learned offset (dy, dx):
//   y = oy*stride_h - pad_h + i*dil_h + dy,   x = ox*stride_w - pad_w + j*dil_w + dx.
// The integer part is formed exactly in int64 and added to the offset in T, as
// torchvision does.
template <typename T>
__device__ __forceinline__ void samplePosition(const Geometry& geo, int64_t k, int64_t p, T dy, T dx, T& y, T& x) {
    const int64_t oy = p / geo.out_w;
    const int64_t ox = p - oy * geo.out_w;
    const int64_t i = k / geo.kernel_w;
    const int64_t j = k - i * geo.kernel_w;
    y = static_cast<T>(oy * geo.stride_h - geo.pad_h + i * geo.dilation_h) + dy;
    x = static_cast<T>(ox * geo.stride_w - geo.pad_w + j * geo.dilation_w) + dx;
}

// Outer boundary rule (torchvision's; forward and backward MUST agree exactly):
// the sample is 0 -- and has zero gradient w.r.t. everything -- when
//   y <= -1 || y >= H || x <= -1 || x >= W.
// Written as the negation of the "inside" test so that a NaN position also
// counts as outside; this keeps NaN away from the float->int64 conversion of
// floor() below (which would be undefined behaviour and could index anywhere).
// Returns false for a zero sample; otherwise fills `s`. Since y > -1 and y < H,
// y0 = floor(y) lies in [-1, H-1] (likewise x0), so it fits in int64.
template <typename T>
__device__ __forceinline__ bool locateSample(T y, T x, int64_t height, int64_t width, SamplePoint<T>& s) {
    if (!(y > T(-1) && y < static_cast<T>(height) && x > T(-1) && x < static_cast<T>(width))) {
        return false;
    }
    const T fy = floorOp(y);
    const T fx = floorOp(x);
    s.y0 = static_cast<int64_t>(fy);
    s.x0 = static_cast<int64_t>(fx);
    s.ly = y - fy;
    s.lx = x - fx;
    return true;
}

// Corner numbering: corner = 2*cy + cx addresses pixel (y0 + cy, x0 + cx), i.e.
//   0: (y0, x0)  1: (y0, x0+1)  2: (y0+1, x0)  3: (y0+1, x0+1).
// A corner outside [0, H-1] x [0, W-1] contributes 0 (and receives no gradient).
template <typename T>
__device__ __forceinline__ bool cornerInside(const SamplePoint<T>& s, int corner, int64_t height, int64_t width,
                                             int64_t& pixel) {
    const int64_t yy = s.y0 + (corner >> 1);
    const int64_t xx = s.x0 + (corner & 1);
    if (yy < 0 || yy >= height || xx < 0 || xx >= width) {
        return false;
    }
    pixel = yy * width + xx;
    return true;
}

// Bilinear weight of a corner: (1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx.
template <typename T>
__device__ __forceinline__ T cornerWeight(const SamplePoint<T>& s, int corner) {
    const T wy = (corner >> 1) ? s.ly : T(1) - s.ly;
    const T wx = (corner & 1) ? s.lx : T(1) - s.lx;
    return wy * wx;
}

// The four corner values of one channel plane, 0 for out-of-range corners.
template <typename T, typename scalar_t>
__device__ __forceinline__ void cornerValues(const scalar_t* __restrict__ plane, const SamplePoint<T>& s,
                                             int64_t height, int64_t width, T v[4]) {
#pragma unroll
    for (int corner = 0; corner < 4; ++corner) {
        int64_t pixel = 0;
        v[corner] = cornerInside(s, corner, height, width, pixel) ? static_cast<T>(plane[pixel]) : T(0);
    }
}

// Bilinear interpolation from the corner values (torchvision's term order).
template <typename T>
__device__ __forceinline__ T interpolate(const SamplePoint<T>& s, const T v[4]) {
    const T hy = T(1) - s.ly;
    const T hx = T(1) - s.lx;
    return hy * hx * v[0] + hy * s.lx * v[1] + s.ly * hx * v[2] + s.ly * s.lx * v[3];
}

// The contribution of one (tap, position, corner) entry to grad_input. Both the
// atomic and the deterministic grad_input paths use this exact expression.
template <typename T>
__device__ __forceinline__ T inputGradTerm(T mask_value, T weight, T grad_column) {
    return (mask_value * weight) * grad_column;
}

// ---------------------------------------------------------------------------
// Index helpers for the fixed layouts (see deform_conv2d_kernels.h).
// `tap_row` = (b*G + g)*K + k identifies one (image, offset group, tap).
//   offset dy  at [b, g*2K + 2k,     p] -> (2*tap_row)     * P + p
//   offset dx  at [b, g*2K + 2k + 1, p] -> (2*tap_row + 1) * P + p
//   mask       at [b, g*K + k,       p] ->  tap_row        * P + p
// ---------------------------------------------------------------------------

template <typename T, typename scalar_t>
__device__ __forceinline__ void loadOffset(const scalar_t* __restrict__ offset, int64_t tap_row, int64_t plane,
                                           int64_t p, T& dy, T& dx) {
    const scalar_t* ptr = offset + 2 * tap_row * plane + p;
    dy = static_cast<T>(ptr[0]);
    dx = static_cast<T>(ptr[plane]);
}

template <typename T, typename scalar_t>
__device__ __forceinline__ T loadMask(const scalar_t* __restrict__ mask, bool use_mask, int64_t tap_row,
                                      int64_t plane, int64_t p) {
    return use_mask ? static_cast<T>(mask[tap_row * plane + p]) : T(1);
}

// ---------------------------------------------------------------------------
// Forward: im2col. One thread per columns element; the linear index is
// ((c*K + k)*B + b)*P + p, which is exactly the element's offset in the
// [C*K, B*P] columns matrix, so writes (and offset/mask reads) are coalesced
// across p.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    deformIm2colKernel(int64_t n, const scalar_t* __restrict__ input, const scalar_t* __restrict__ offset,
                       const scalar_t* __restrict__ mask, Geometry geo, scalar_t* __restrict__ columns) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t p = idx % geo.plane;
        int64_t t = idx / geo.plane;
        const int64_t b = t % geo.batch;
        t /= geo.batch;
        const int64_t k = t % geo.taps;
        const int64_t c = t / geo.taps;
        const int64_t g = c / geo.channels_per_group;
        const int64_t tap_row = (b * geo.groups + g) * geo.taps + k;

        opmath_t dy, dx, y, x;
        loadOffset(offset, tap_row, geo.plane, p, dy, dx);
        samplePosition(geo, k, p, dy, dx, y, x);

        opmath_t value = 0;
        SamplePoint<opmath_t> s;
        if (locateSample(y, x, geo.height, geo.width, s)) {
            opmath_t v[4];
            cornerValues(input + (b * geo.channels + c) * geo.pixels, s, geo.height, geo.width, v);
            value = interpolate(s, v);
        }
        columns[idx] = static_cast<scalar_t>(loadMask<opmath_t>(mask, geo.use_mask, tap_row, geo.plane, p) * value);
    }
}

// ---------------------------------------------------------------------------
// Backward w.r.t. offset and mask. One thread per (b, g, k, p), linear index
// tap_row*P + p with tap_row = (b*G + g)*K + k. Each thread loops over the
// channels of group g in increasing order (fixed order, no atomics, hence
// deterministic); consecutive threads read consecutive p of a grad_columns
// row, so the grad_columns reads are coalesced.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    deformOffsetMaskGradKernel(int64_t n, const scalar_t* __restrict__ grad_columns,
                               const scalar_t* __restrict__ input, const scalar_t* __restrict__ offset,
                               const scalar_t* __restrict__ mask, Geometry geo, scalar_t* __restrict__ grad_offset,
                               scalar_t* __restrict__ grad_mask) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    const int64_t columns_width = geo.batch * geo.plane;  // B*P
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t p = idx % geo.plane;
        const int64_t tap_row = idx / geo.plane;  // (b*G + g)*K + k
        const int64_t k = tap_row % geo.taps;
        const int64_t bg = tap_row / geo.taps;  // b*G + g
        const int64_t g = bg % geo.groups;
        const int64_t b = bg / geo.groups;

        opmath_t dy, dx, y, x;
        loadOffset(offset, tap_row, geo.plane, p, dy, dx);
        samplePosition(geo, k, p, dy, dx, y, x);
        const opmath_t mask_value = loadMask<opmath_t>(mask, geo.use_mask, tap_row, geo.plane, p);

        opmath_t grad_y = 0;
        opmath_t grad_x = 0;
        opmath_t grad_m = 0;
        SamplePoint<opmath_t> s;
        // Same boundary rule as forward: a zero sample has zero gradient w.r.t.
        // its position and its mask, so the channel loop is skipped entirely.
        if (locateSample(y, x, geo.height, geo.width, s)) {
            const opmath_t hy = opmath_t(1) - s.ly;
            const opmath_t hx = opmath_t(1) - s.lx;
            const int64_t c_begin = g * geo.channels_per_group;
            const int64_t c_end = c_begin + geo.channels_per_group;
            const scalar_t* gcol = grad_columns + (c_begin * geo.taps + k) * columns_width + b * geo.plane + p;
            const scalar_t* plane = input + (b * geo.channels + c_begin) * geo.pixels;
            for (int64_t c = c_begin; c < c_end; ++c) {
                const opmath_t grad_column = static_cast<opmath_t>(*gcol);
                opmath_t v[4];
                cornerValues(plane, s, geo.height, geo.width, v);
                // d value / dy = (1-lx)(v10 - v00) + lx(v11 - v01)
                // d value / dx = (1-ly)(v01 - v00) + ly(v11 - v10)
                // (out-of-range corners are 0 in v[], exactly as in forward).
                const opmath_t dvalue_dy = hx * (v[2] - v[0]) + s.lx * (v[3] - v[1]);
                const opmath_t dvalue_dx = hy * (v[1] - v[0]) + s.ly * (v[3] - v[2]);
                const opmath_t scaled = grad_column * mask_value;
                grad_y += scaled * dvalue_dy;
                grad_x += scaled * dvalue_dx;
                if (geo.use_mask) {
                    grad_m += grad_column * interpolate(s, v);
                }
                gcol += geo.taps * columns_width;  // next channel: row (c+1)*K + k
                plane += geo.pixels;
            }
        }
        // Every (b, g, k, p) is owned by exactly one thread: plain stores.
        scalar_t* go = grad_offset + 2 * tap_row * geo.plane + p;
        go[0] = static_cast<scalar_t>(grad_y);
        go[geo.plane] = static_cast<scalar_t>(grad_x);
        if (geo.use_mask) {
            grad_mask[idx] = static_cast<scalar_t>(grad_m);
        }
    }
}

// ---------------------------------------------------------------------------
// Backward w.r.t. input, fast path: scatter with atomics. One thread per
// grad_columns element (same indexing as im2col). Accumulates into an opmath_t
// buffer (grad_input itself for float/double; a float scratch buffer for
// Half/BFloat16, which keeps the many small additions in full precision).
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    deformInputGradAtomicKernel(int64_t n, const scalar_t* __restrict__ grad_columns,
                                const scalar_t* __restrict__ offset, const scalar_t* __restrict__ mask,
                                Geometry geo, at::opmath_type<scalar_t>* __restrict__ grad_input) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t p = idx % geo.plane;
        int64_t t = idx / geo.plane;
        const int64_t b = t % geo.batch;
        t /= geo.batch;
        const int64_t k = t % geo.taps;
        const int64_t c = t / geo.taps;
        const int64_t g = c / geo.channels_per_group;
        const int64_t tap_row = (b * geo.groups + g) * geo.taps + k;

        opmath_t dy, dx, y, x;
        loadOffset(offset, tap_row, geo.plane, p, dy, dx);
        samplePosition(geo, k, p, dy, dx, y, x);
        SamplePoint<opmath_t> s;
        // Same boundary rule as forward: a zero sample contributes nothing.
        if (!locateSample(y, x, geo.height, geo.width, s)) {
            continue;
        }
        const opmath_t mask_value = loadMask<opmath_t>(mask, geo.use_mask, tap_row, geo.plane, p);
        const opmath_t grad_column = static_cast<opmath_t>(grad_columns[idx]);
        opmath_t* target = grad_input + (b * geo.channels + c) * geo.pixels;
#pragma unroll
        for (int corner = 0; corner < 4; ++corner) {
            int64_t pixel = 0;
            const opmath_t weight = cornerWeight(s, corner);
            // Skip out-of-range and zero-weight corners (the deterministic path
            // drops exactly the same entries).
            if (weight != opmath_t(0) && cornerInside(s, corner, geo.height, geo.width, pixel)) {
                gpuAtomicAdd(target + pixel, inputGradTerm(mask_value, weight, grad_column));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Backward w.r.t. input, deterministic path (no floating-point atomics).
//
//   1. deformInputGradKeysKernel: one thread per (b, g, k, p) writes the keys of
//      its 4 corner entries, entry e = ((b*G + g)*K + k)*P + p)*4 + corner:
//        key = (b*G + g)*(H*W + 1) + pixel,
//      with pixel = H*W (a sentinel) for a zero sample, an out-of-range corner
//      or a zero-weight corner.
//   2. A stable sort of the keys groups the entries by target (b, g, pixel);
//      stability keeps each group in increasing entry order, so the order of
//      the sum below is fixed by the data alone.
//   3. searchsorted gives the start of every key's segment in the sorted array.
//   4. deformInputGradGatherKernel: one thread per (b, c, pixel) walks its
//      (b, g(c), pixel) segment in order, recomputes each entry's weight from
//      offset/mask (same routine as above) and sums mask*weight*grad_column in
//      opmath, then stores once.
// Only integer work happens in steps 1-3, and step 4 is a fixed-order sum, so
// the result is bit-identical across runs.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    deformInputGradKeysKernel(int64_t n, const scalar_t* __restrict__ offset, Geometry geo,
                              int64_t* __restrict__ keys) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    const int64_t sentinel = geo.pixels;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t p = idx % geo.plane;
        const int64_t tap_row = idx / geo.plane;  // (b*G + g)*K + k
        const int64_t k = tap_row % geo.taps;
        const int64_t bg = tap_row / geo.taps;  // b*G + g
        const int64_t base = bg * (geo.pixels + 1);

        opmath_t dy, dx, y, x;
        loadOffset(offset, tap_row, geo.plane, p, dy, dx);
        samplePosition(geo, k, p, dy, dx, y, x);
        SamplePoint<opmath_t> s;
        const bool inside = locateSample(y, x, geo.height, geo.width, s);
        int64_t* out = keys + 4 * idx;
#pragma unroll
        for (int corner = 0; corner < 4; ++corner) {
            // Must select exactly the entries the atomic path adds: a sample
            // inside the outer boundary rule, a nonzero weight, an in-range corner.
            int64_t pixel = 0;
            const bool contributes = inside && cornerWeight(s, corner) != opmath_t(0) &&
                                     cornerInside(s, corner, geo.height, geo.width, pixel);
            out[corner] = base + (contributes ? pixel : sentinel);
        }
    }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    deformInputGradGatherKernel(int64_t n, const scalar_t* __restrict__ grad_columns,
                                const scalar_t* __restrict__ offset, const scalar_t* __restrict__ mask,
                                const int64_t* __restrict__ order, const int64_t* __restrict__ segment_starts,
                                Geometry geo, scalar_t* __restrict__ grad_input) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    const int64_t columns_width = geo.batch * geo.plane;  // B*P
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        // idx = (b*C + c)*H*W + pixel, the element's offset in grad_input.
        const int64_t pixel = idx % geo.pixels;
        const int64_t bc = idx / geo.pixels;
        const int64_t c = bc % geo.channels;
        const int64_t b = bc / geo.channels;
        const int64_t g = c / geo.channels_per_group;
        const int64_t key = (b * geo.groups + g) * (geo.pixels + 1) + pixel;
        const int64_t begin = segment_starts[key];
        const int64_t end = segment_starts[key + 1];

        const scalar_t* gcol_row = grad_columns + c * geo.taps * columns_width + b * geo.plane;
        opmath_t acc = 0;
        for (int64_t i = begin; i < end; ++i) {
            const int64_t entry = order[i];
            const int corner = static_cast<int>(entry & 3);
            const int64_t sample = entry >> 2;  // tap_row*P + p
            const int64_t p = sample % geo.plane;
            const int64_t tap_row = sample / geo.plane;
            const int64_t k = tap_row % geo.taps;

            opmath_t dy, dx, y, x;
            loadOffset(offset, tap_row, geo.plane, p, dy, dx);
            samplePosition(geo, k, p, dy, dx, y, x);
            SamplePoint<opmath_t> s;
            // Always true for a non-sentinel key (same inputs, same routine);
            // kept so a corrupted segment can never index out of bounds.
            if (!locateSample(y, x, geo.height, geo.width, s)) {
                continue;
            }
            const opmath_t mask_value = loadMask<opmath_t>(mask, geo.use_mask, tap_row, geo.plane, p);
            const opmath_t grad_column = static_cast<opmath_t>(gcol_row[k * columns_width + p]);
            acc += inputGradTerm(mask_value, cornerWeight(s, corner), grad_column);
        }
        grad_input[idx] = static_cast<scalar_t>(acc);
    }
}

// ---------------------------------------------------------------------------
// Host entry points.
// ---------------------------------------------------------------------------

void im2colCuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                const DeformGeometry& geom, at::Tensor& columns) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    const Geometry geo = makeGeometry(geom);
    const int64_t n = geo.channels * geo.taps * geo.batch * geo.plane;
    // channels_per_group == 0 only for geometry the driver rejects; bail out
    // rather than divide by zero on the device.
    if (n == 0 || geo.channels_per_group == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_conv2d_im2col_cuda", [&] {
                                        const scalar_t* mask_ptr =
                                            geo.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr;
                                        deformIm2colKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
                                            n, input.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(),
                                            mask_ptr, geo, columns.mutable_data_ptr<scalar_t>());
                                        C10_CUDA_KERNEL_LAUNCH_CHECK();
                                    });
}

template <typename scalar_t>
void inputGradAtomic(const at::Tensor& grad_columns, const at::Tensor& offset, const scalar_t* mask_ptr,
                     const Geometry& geo, at::Tensor& grad_input, cudaStream_t stream) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t n = geo.channels * geo.taps * geo.batch * geo.plane;
    // Reduced-precision inputs accumulate in an opmath scratch buffer; float and
    // double accumulate in grad_input directly (it is zero-filled by the caller).
    at::Tensor accumulator = std::is_same_v<scalar_t, opmath_t>
                                 ? grad_input
                                 : at::zeros(grad_input.sizes(),
                                             grad_input.options().dtype(at::toOpMathType(grad_input.scalar_type())));
    deformInputGradAtomicKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
        n, grad_columns.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(), mask_ptr, geo,
        accumulator.mutable_data_ptr<opmath_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if constexpr (!std::is_same_v<scalar_t, opmath_t>) {
        grad_input.copy_(accumulator);
    }
}

template <typename scalar_t>
void inputGradDeterministic(const at::Tensor& grad_columns, const at::Tensor& offset, const scalar_t* mask_ptr,
                            const Geometry& geo, at::Tensor& grad_input, cudaStream_t stream) {
    const int64_t samples = geo.batch * geo.groups * geo.taps * geo.plane;  // (b, g, k, p)
    const int64_t segments = geo.batch * geo.groups * (geo.pixels + 1);      // (b, g, pixel or sentinel)
    const auto index_options = offset.options().dtype(at::kLong);

    at::Tensor keys = at::empty({4 * samples}, index_options);
    deformInputGradKeysKernel<scalar_t><<<gridFor(samples), kThreadsPerBlock, 0, stream>>>(
        samples, offset.const_data_ptr<scalar_t>(), geo, keys.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();

    // Stable: entries with equal keys keep increasing entry order.
    at::Tensor sorted_keys;
    at::Tensor order;
    std::tie(sorted_keys, order) = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
    keys.reset();
    // segment_starts[key] = first position whose sorted key >= key; the segment of
    // key is [segment_starts[key], segment_starts[key + 1]).
    const at::Tensor segment_starts =
        at::searchsorted(sorted_keys, at::arange(segments + 1, index_options), /*out_int32=*/false, /*right=*/false);
    sorted_keys.reset();

    const int64_t n = grad_input.numel();
    deformInputGradGatherKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
        n, grad_columns.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(), mask_ptr,
        order.const_data_ptr<int64_t>(), segment_starts.const_data_ptr<int64_t>(), geo,
        grad_input.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void columnsBackwardCuda(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                         const at::Tensor& mask, const DeformGeometry& geom, bool deterministic,
                         at::Tensor& grad_input, at::Tensor& grad_offset, at::Tensor& grad_mask) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    const Geometry geo = makeGeometry(geom);
    // With no channels, taps, positions or images nothing is sampled and the
    // zero-filled outputs are already the answer.
    if (geo.batch * geo.channels * geo.taps * geo.plane == 0 || geo.pixels == 0 || geo.channels_per_group == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "deform_conv2d_columns_backward_cuda",
        [&] {
            const scalar_t* mask_ptr = geo.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr;
            scalar_t* grad_mask_ptr = geo.use_mask ? grad_mask.mutable_data_ptr<scalar_t>() : nullptr;

            const int64_t samples = geo.batch * geo.groups * geo.taps * geo.plane;
            deformOffsetMaskGradKernel<scalar_t><<<gridFor(samples), kThreadsPerBlock, 0, stream>>>(
                samples, grad_columns.const_data_ptr<scalar_t>(), input.const_data_ptr<scalar_t>(),
                offset.const_data_ptr<scalar_t>(), mask_ptr, geo, grad_offset.mutable_data_ptr<scalar_t>(),
                grad_mask_ptr);
            C10_CUDA_KERNEL_LAUNCH_CHECK();

            if (deterministic) {
                inputGradDeterministic<scalar_t>(grad_columns, offset, mask_ptr, geo, grad_input, stream);
            } else {
                inputGradAtomic<scalar_t>(grad_columns, offset, mask_ptr, geo, grad_input, stream);
            }
        });
}

} // namespace

DeviceKernels cudaKernels() { return {&im2colCuda, &columnsBackwardCuda}; }

} // namespace deformscope::ops::detail
