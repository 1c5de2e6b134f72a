// CUDA kernels for deform_kernel2d (Deformable Kernels; semantics in
// core/ops/deform_kernel2d.h, contract in core/ops/deform_kernel2d_kernels.h).
//
//   forward               one thread per output (b, c, p), summing its K taps
//   offset gradients      one thread per (b, k, p), summing the channels in order
//                         (global kernel offsets: then a fixed-order block
//                         reduction over the positions)
//   weight gradient       fixed-order two-stage reduction (per block of samples,
//                         then over the blocks): always deterministic
//   input gradient        deterministic (sort by target pixel, then a fixed-order
//                         gather), or floating-point atomics in BackwardMode::Atomic
//
// Conventions shared by every kernel below:
//   * all indices are int64_t; elementwise kernels are grid-stride loops with a
//     capped grid, so any size that fits in memory is handled;
//   * arithmetic is done in at::opmath_type<scalar_t> (float for Half/BFloat16);
//   * one sampling routine (locateSample + cornerInside + cornerWeight) serves
//     the image and the scope kernel, in forward and in every backward path, so
//     the boundary rule is bit-for-bit the same everywhere.

#include "core/ops/deform_kernel2d_kernels.h"

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
constexpr int64_t kMaxWavesPerSm = 4;
// Rounds of kThreadsPerBlock samples handled by one block of the weight-gradient reduction.
constexpr int64_t kWeightGradRounds = 16;

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Number of blocks for `n` work items of a grid-stride kernel (n > 0).
unsigned int gridFor(int64_t n) {
    const cudaDeviceProp* props = at::cuda::getCurrentDeviceProperties();
    const int64_t blocks_per_sm = std::max<int64_t>(1, props->maxThreadsPerMultiProcessor / kThreadsPerBlock);
    const int64_t max_blocks = std::max<int64_t>(1, props->multiProcessorCount * blocks_per_sm * kMaxWavesPerSm);
    return static_cast<unsigned int>(std::min(ceilDiv(n, kThreadsPerBlock), max_blocks));
}

// Plain-old-data copy of DeformKernelGeometry plus derived sizes, passed by value.
struct Geometry {
    int64_t batch;
    int64_t channels;
    int64_t height;
    int64_t width;
    int64_t out_w;
    int64_t kernel_w;
    int64_t scope_h;
    int64_t scope_w;
    int64_t stride_h;
    int64_t stride_w;
    int64_t pad_h;
    int64_t pad_w;
    int64_t dilation_h;
    int64_t dilation_w;
    int64_t taps;     // K
    int64_t plane;    // P = out_h * out_w
    int64_t pixels;   // H * W
    int64_t scope;    // S = scope_h * scope_w
    int64_t ko_plane; // Q: P (local kernel offsets) or 1 (global)
    bool global_kernel; // one kernel offset per image (kernel_offset [N, 2K, 1, 1])
    double half_y;    // (scope_h - kernel_h) / 2: the scope position of tap row 0
    double half_x;
    bool use_offset;
};

Geometry makeGeometry(const DeformKernelGeometry& g) {
    Geometry k{};
    k.batch = g.batch;
    k.channels = g.channels;
    k.height = g.height;
    k.width = g.width;
    k.out_w = g.out_w;
    k.kernel_w = g.kernel_w;
    k.scope_h = g.scope_h;
    k.scope_w = g.scope_w;
    k.stride_h = g.stride_h;
    k.stride_w = g.stride_w;
    k.pad_h = g.pad_h;
    k.pad_w = g.pad_w;
    k.dilation_h = g.dilation_h;
    k.dilation_w = g.dilation_w;
    k.taps = g.taps();
    k.plane = g.outPlane();
    k.pixels = g.height * g.width;
    k.scope = g.scopeSize();
    k.ko_plane = g.kernelOffsetPlane();
    k.global_kernel = !g.local_kernel;
    k.half_y = g.baseY(0);
    k.half_x = g.baseX(0);
    k.use_offset = g.use_offset;
    return k;
}

// ---------------------------------------------------------------------------
// Bilinear sampling shared by the image and the scope kernel, forward and backward.
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

// Outer boundary rule (torchvision's; forward and backward MUST agree exactly):
// the sample is 0 -- with zero gradient w.r.t. everything -- when
//   y <= -1 || y >= height || x <= -1 || x >= width.
// Written as the negation of "inside" so that a NaN position is outside too and
// never reaches the float->int64 conversion below.
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

// corner = 2*cy + cx addresses (y0 + cy, x0 + cx). A corner outside the grid
// contributes 0 and receives no gradient.
template <typename T>
__device__ __forceinline__ bool cornerInside(const SamplePoint<T>& s, int corner, int64_t height, int64_t width,
                                             int64_t& index) {
    const int64_t yy = s.y0 + (corner >> 1);
    const int64_t xx = s.x0 + (corner & 1);
    if (yy < 0 || yy >= height || xx < 0 || xx >= width) {
        return false;
    }
    index = yy * width + xx;
    return true;
}

template <typename T>
__device__ __forceinline__ T cornerWeight(const SamplePoint<T>& s, int corner) {
    const T wy = (corner >> 1) ? s.ly : T(1) - s.ly;
    const T wx = (corner & 1) ? s.lx : T(1) - s.lx;
    return wy * wx;
}

template <typename T, typename scalar_t>
__device__ __forceinline__ void cornerValues(const scalar_t* __restrict__ grid, const SamplePoint<T>& s,
                                             int64_t height, int64_t width, T v[4]) {
#pragma unroll
    for (int corner = 0; corner < 4; ++corner) {
        int64_t index = 0;
        v[corner] = cornerInside(s, corner, height, width, index) ? static_cast<T>(grid[index]) : T(0);
    }
}

template <typename T>
__device__ __forceinline__ T interpolate(const SamplePoint<T>& s, const T v[4]) {
    const T hy = T(1) - s.ly;
    const T hx = T(1) - s.lx;
    return hy * hx * v[0] + hy * s.lx * v[1] + s.ly * hx * v[2] + s.ly * s.lx * v[3];
}

// Value and its derivatives d/dy, d/dx (out-of-range corners are 0 in v[]).
template <typename T>
__device__ __forceinline__ void interpolateWithGrad(const SamplePoint<T>& s, const T v[4], T& value, T& dy, T& dx) {
    const T hy = T(1) - s.ly;
    const T hx = T(1) - s.lx;
    value = hy * hx * v[0] + hy * s.lx * v[1] + s.ly * hx * v[2] + s.ly * s.lx * v[3];
    dy = hx * (v[2] - v[0]) + s.lx * (v[3] - v[1]);
    dx = hy * (v[1] - v[0]) + s.ly * (v[3] - v[2]);
}

// Bilinear read of `grid` at (y, x) with the boundary rule (0 outside).
template <typename T, typename scalar_t>
__device__ __forceinline__ T sampleGrid(const scalar_t* __restrict__ grid, T y, T x, int64_t height, int64_t width) {
    SamplePoint<T> s;
    if (!locateSample(y, x, height, width, s)) {
        return T(0);
    }
    T v[4];
    cornerValues(grid, s, height, width, v);
    return interpolate(s, v);
}

// ---------------------------------------------------------------------------
// Positions. `row` = b*K + k identifies one (image, tap).
//   image offset dy at [b, 2k, p]  -> 2*row*P + p,  dx at + P
//   kernel offset dy at [b, 2k, q] -> 2*row*Q + q,  dx at + Q  (q = p local, 0 global)
// ---------------------------------------------------------------------------

// Image position of tap k at output p: the integer part is formed exactly in
// int64 and the offset added in T (torchvision's order).
template <typename T, typename scalar_t>
__device__ __forceinline__ void imagePosition(const Geometry& geo, const scalar_t* __restrict__ offset, int64_t row,
                                              int64_t k, int64_t p, T& y, T& x) {
    const int64_t oy = p / geo.out_w;
    const int64_t ox = p - oy * geo.out_w;
    const int64_t i = k / geo.kernel_w;
    const int64_t j = k - i * geo.kernel_w;
    y = static_cast<T>(oy * geo.stride_h - geo.pad_h + i * geo.dilation_h);
    x = static_cast<T>(ox * geo.stride_w - geo.pad_w + j * geo.dilation_w);
    if (geo.use_offset) {
        const scalar_t* ptr = offset + 2 * row * geo.plane + p;
        y += static_cast<T>(ptr[0]);
        x += static_cast<T>(ptr[geo.plane]);
    }
}

// Scope position of tap k = (i, j) for output p: (i + half_y + dky, j + half_x + dkx),
// the base formed in double (exact) and rounded to T, as on the CPU.
template <typename T, typename scalar_t>
__device__ __forceinline__ void scopePosition(const Geometry& geo, const scalar_t* __restrict__ kernel_offset,
                                              int64_t row, int64_t k, int64_t p, T& ky, T& kx) {
    const int64_t i = k / geo.kernel_w;
    const int64_t j = k - i * geo.kernel_w;
    const int64_t q = geo.global_kernel ? 0 : p;
    const scalar_t* ptr = kernel_offset + 2 * row * geo.ko_plane + q;
    ky = static_cast<T>(static_cast<double>(i) + geo.half_y) + static_cast<T>(ptr[0]);
    kx = static_cast<T>(static_cast<double>(j) + geo.half_x) + static_cast<T>(ptr[geo.ko_plane]);
}

// ---------------------------------------------------------------------------
// Forward: one thread per output element, idx = (b*C + c)*P + p.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkForwardKernel(int64_t n, const scalar_t* __restrict__ input, const scalar_t* __restrict__ weight,
                    const scalar_t* __restrict__ kernel_offset, const scalar_t* __restrict__ offset, Geometry geo,
                    scalar_t* __restrict__ output) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t p = idx % geo.plane;
        const int64_t bc = idx / geo.plane;
        const int64_t c = bc % geo.channels;
        const int64_t b = bc / geo.channels;
        const scalar_t* plane = input + bc * geo.pixels;
        const scalar_t* scope = weight + c * geo.scope;
        opmath_t acc = 0;
        for (int64_t k = 0; k < geo.taps; ++k) {
            const int64_t row = b * geo.taps + k;
            opmath_t ky, kx, y, x;
            scopePosition(geo, kernel_offset, row, k, p, ky, kx);
            imagePosition(geo, offset, row, k, p, y, x);
            acc += sampleGrid(scope, ky, kx, geo.scope_h, geo.scope_w) * sampleGrid(plane, y, x, geo.height, geo.width);
        }
        output[idx] = static_cast<scalar_t>(acc);
    }
}

// ---------------------------------------------------------------------------
// Offset gradients: one thread per (b, k, p), idx = row*P + p. Loops over the
// channels in increasing order (fixed order, plain stores: deterministic).
// Local kernel offsets are stored straight into grad_kernel_offset; global ones
// go to `per_position` [B*K*2, P] (opmath) and are reduced by dkReduceRowsKernel.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkOffsetGradKernel(int64_t n, const scalar_t* __restrict__ grad_output, const scalar_t* __restrict__ input,
                       const scalar_t* __restrict__ weight, const scalar_t* __restrict__ kernel_offset,
                       const scalar_t* __restrict__ offset, Geometry geo, scalar_t* __restrict__ grad_kernel_offset,
                       at::opmath_type<scalar_t>* __restrict__ per_position, scalar_t* __restrict__ grad_offset) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t p = idx % geo.plane;
        const int64_t row = idx / geo.plane; // b*K + k
        const int64_t k = row % geo.taps;
        const int64_t b = row / geo.taps;

        opmath_t ky, kx, y, x;
        scopePosition(geo, kernel_offset, row, k, p, ky, kx);
        imagePosition(geo, offset, row, k, p, y, x);
        opmath_t g_ky = 0, g_kx = 0, g_y = 0, g_x = 0;
        SamplePoint<opmath_t> sk, si;
        // Same boundary rule as forward: if either read is a zero sample, the
        // product and all four position gradients are 0.
        if (locateSample(ky, kx, geo.scope_h, geo.scope_w, sk) && locateSample(y, x, geo.height, geo.width, si)) {
            const scalar_t* go = grad_output + b * geo.channels * geo.plane + p;
            const scalar_t* plane = input + b * geo.channels * geo.pixels;
            const scalar_t* scope = weight;
            for (int64_t c = 0; c < geo.channels; ++c) {
                opmath_t wv4[4], xv4[4];
                cornerValues(scope, sk, geo.scope_h, geo.scope_w, wv4);
                cornerValues(plane, si, geo.height, geo.width, xv4);
                opmath_t wv, wdy, wdx, xv, xdy, xdx;
                interpolateWithGrad(sk, wv4, wv, wdy, wdx);
                interpolateWithGrad(si, xv4, xv, xdy, xdx);
                const opmath_t gq = static_cast<opmath_t>(*go);
                g_ky += gq * xv * wdy;
                g_kx += gq * xv * wdx;
                g_y += gq * wv * xdy;
                g_x += gq * wv * xdx;
                go += geo.plane;
                plane += geo.pixels;
                scope += geo.scope;
            }
        }
        if (geo.global_kernel) {
            opmath_t* pp = per_position + 2 * row * geo.plane + p;
            pp[0] = g_ky;
            pp[geo.plane] = g_kx;
        } else {
            scalar_t* gk = grad_kernel_offset + 2 * row * geo.plane + p;
            gk[0] = static_cast<scalar_t>(g_ky);
            gk[geo.plane] = static_cast<scalar_t>(g_kx);
        }
        if (geo.use_offset) {
            scalar_t* gi = grad_offset + 2 * row * geo.plane + p;
            gi[0] = static_cast<scalar_t>(g_y);
            gi[geo.plane] = static_cast<scalar_t>(g_x);
        }
    }
}

// out[r] = Σ_{p < length} rows[r*length + p], one block per row: each thread sums
// a fixed stride of the row in order, then a fixed shared-memory tree. Deterministic.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkReduceRowsKernel(const at::opmath_type<scalar_t>* __restrict__ rows, int64_t length,
                       scalar_t* __restrict__ out) {
    using opmath_t = at::opmath_type<scalar_t>;
    __shared__ opmath_t partial[kThreadsPerBlock];
    const int64_t r = blockIdx.x;
    const opmath_t* src = rows + r * length;
    opmath_t acc = 0;
    for (int64_t p = threadIdx.x; p < length; p += kThreadsPerBlock) {
        acc += src[p];
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int width = kThreadsPerBlock / 2; width > 0; width /= 2) {
        if (static_cast<int>(threadIdx.x) < width) {
            partial[threadIdx.x] += partial[threadIdx.x + width];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        out[r] = static_cast<scalar_t>(partial[0]);
    }
}

// ---------------------------------------------------------------------------
// Weight gradient, stage 1. Samples e = row*P + p (row = b*K + k) of channel c
// contribute gout[b,c,p] * x_c(b,k,p) * cornerWeight to 4 scope cells. Block
// (c, chunk) handles samples [chunk*L, chunk*L + L), L = kWeightGradRounds *
// kThreadsPerBlock, in rounds: every thread publishes its sample's 4 (cell, value)
// pairs in shared memory, then the owner of each cell (thread s mod blockDim)
// adds the pairs for its cell in publication order into partials[(c*chunks +
// chunk)*S + s]. No atomics: the order of every sum is fixed.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkWeightGradPartialKernel(const scalar_t* __restrict__ grad_output, const scalar_t* __restrict__ input,
                              const scalar_t* __restrict__ kernel_offset, const scalar_t* __restrict__ offset,
                              Geometry geo, int64_t chunks, at::opmath_type<scalar_t>* __restrict__ partials) {
    using opmath_t = at::opmath_type<scalar_t>;
    __shared__ int64_t cells[4 * kThreadsPerBlock];
    __shared__ opmath_t values[4 * kThreadsPerBlock];
    const int64_t c = blockIdx.x / chunks;
    const int64_t chunk = blockIdx.x % chunks;
    const int64_t samples = geo.batch * geo.taps * geo.plane;
    opmath_t* partial = partials + static_cast<int64_t>(blockIdx.x) * geo.scope;
    for (int64_t s = threadIdx.x; s < geo.scope; s += kThreadsPerBlock) {
        partial[s] = 0;
    }
    const int64_t first = chunk * kWeightGradRounds * kThreadsPerBlock;
    for (int64_t round = 0; round < kWeightGradRounds; ++round) {
        const int64_t round_first = first + round * kThreadsPerBlock;
        if (round_first >= samples) {
            break; // uniform across the block
        }
        const int64_t e = round_first + threadIdx.x;
#pragma unroll
        for (int corner = 0; corner < 4; ++corner) {
            cells[4 * threadIdx.x + corner] = -1;
            values[4 * threadIdx.x + corner] = 0;
        }
        if (e < samples) {
            const int64_t p = e % geo.plane;
            const int64_t row = e / geo.plane;
            const int64_t k = row % geo.taps;
            const int64_t b = row / geo.taps;
            opmath_t ky, kx;
            scopePosition(geo, kernel_offset, row, k, p, ky, kx);
            SamplePoint<opmath_t> sk;
            if (locateSample(ky, kx, geo.scope_h, geo.scope_w, sk)) {
                opmath_t y, x;
                imagePosition(geo, offset, row, k, p, y, x);
                const int64_t bc = b * geo.channels + c;
                const opmath_t g = static_cast<opmath_t>(grad_output[bc * geo.plane + p]) *
                                   sampleGrid(input + bc * geo.pixels, y, x, geo.height, geo.width);
#pragma unroll
                for (int corner = 0; corner < 4; ++corner) {
                    int64_t cell = 0;
                    const opmath_t w = cornerWeight(sk, corner);
                    if (w != opmath_t(0) && cornerInside(sk, corner, geo.scope_h, geo.scope_w, cell)) {
                        cells[4 * threadIdx.x + corner] = cell;
                        values[4 * threadIdx.x + corner] = w * g;
                    }
                }
            }
        }
        __syncthreads();
        for (int64_t s = threadIdx.x; s < geo.scope; s += kThreadsPerBlock) {
            opmath_t acc = partial[s];
            for (int i = 0; i < 4 * kThreadsPerBlock; ++i) {
                if (cells[i] == s) {
                    acc += values[i];
                }
            }
            partial[s] = acc;
        }
        __syncthreads();
    }
}

// Stage 2: grad_weight[c, s] += Σ_chunk partials[(c*chunks + chunk)*S + s], in
// chunk order. One thread per (c, s).
template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkWeightGradFinishKernel(int64_t n, const at::opmath_type<scalar_t>* __restrict__ partials, int64_t chunks,
                             int64_t scope, scalar_t* __restrict__ grad_weight) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t s = idx % scope;
        const int64_t c = idx / scope;
        opmath_t acc = 0;
        for (int64_t chunk = 0; chunk < chunks; ++chunk) {
            acc += partials[(c * chunks + chunk) * scope + s];
        }
        grad_weight[idx] = static_cast<scalar_t>(static_cast<opmath_t>(grad_weight[idx]) + acc);
    }
}

// ---------------------------------------------------------------------------
// Input gradient. Sample (b, c, k, p) adds cornerWeight * (gout[b,c,p] * W_c(b,k,p))
// to input pixel corner of x[b, c]. Both paths below use inputGradTerm and drop
// exactly the same entries (zero sample, zero weight, corner out of range).
// ---------------------------------------------------------------------------

template <typename T>
__device__ __forceinline__ T inputGradTerm(T corner_weight, T grad_times_kernel) {
    return corner_weight * grad_times_kernel;
}

// gout[b,c,p] * W_c at the scope position of (row, p).
template <typename scalar_t>
__device__ __forceinline__ at::opmath_type<scalar_t> gradTimesKernel(const Geometry& geo,
                                                                     const scalar_t* __restrict__ grad_output,
                                                                     const scalar_t* __restrict__ weight,
                                                                     const scalar_t* __restrict__ kernel_offset,
                                                                     int64_t b, int64_t c, int64_t row, int64_t k,
                                                                     int64_t p) {
    using opmath_t = at::opmath_type<scalar_t>;
    opmath_t ky, kx;
    scopePosition(geo, kernel_offset, row, k, p, ky, kx);
    const opmath_t wv = sampleGrid(weight + c * geo.scope, ky, kx, geo.scope_h, geo.scope_w);
    return static_cast<opmath_t>(grad_output[(b * geo.channels + c) * geo.plane + p]) * wv;
}

// Atomic path: one thread per (b, c, k, p), idx = ((b*C + c)*K + k)*P + p.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkInputGradAtomicKernel(int64_t n, const scalar_t* __restrict__ grad_output, const scalar_t* __restrict__ weight,
                            const scalar_t* __restrict__ kernel_offset, const scalar_t* __restrict__ offset,
                            Geometry geo, at::opmath_type<scalar_t>* __restrict__ grad_input) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t p = idx % geo.plane;
        int64_t t = idx / geo.plane;
        const int64_t k = t % geo.taps;
        const int64_t bc = t / geo.taps;
        const int64_t c = bc % geo.channels;
        const int64_t b = bc / geo.channels;
        const int64_t row = b * geo.taps + k;
        opmath_t y, x;
        imagePosition(geo, offset, row, k, p, y, x);
        SamplePoint<opmath_t> si;
        if (!locateSample(y, x, geo.height, geo.width, si)) {
            continue;
        }
        const opmath_t gw = gradTimesKernel(geo, grad_output, weight, kernel_offset, b, c, row, k, p);
        opmath_t* target = grad_input + bc * geo.pixels;
#pragma unroll
        for (int corner = 0; corner < 4; ++corner) {
            int64_t pixel = 0;
            const opmath_t w = cornerWeight(si, corner);
            if (w != opmath_t(0) && cornerInside(si, corner, geo.height, geo.width, pixel)) {
                gpuAtomicAdd(target + pixel, inputGradTerm(w, gw));
            }
        }
    }
}

// Deterministic path, as in deform_conv2d's kernel:
//   1. keys: one thread per (b, k, p) writes the keys of its 4 corner entries,
//      entry = (row*P + p)*4 + corner, key = b*(H*W + 1) + pixel (pixel = H*W,
//      a sentinel, for entries that contribute nothing);
//   2. a stable sort groups entries by (b, pixel) in increasing entry order;
//   3. searchsorted finds each key's segment;
//   4. gather: one thread per (b, c, pixel) walks its segment in order and sums.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkInputGradKeysKernel(int64_t n, const scalar_t* __restrict__ offset, Geometry geo, int64_t* __restrict__ keys) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    const int64_t sentinel = geo.pixels;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        const int64_t p = idx % geo.plane;
        const int64_t row = idx / geo.plane;
        const int64_t k = row % geo.taps;
        const int64_t b = row / geo.taps;
        const int64_t base = b * (geo.pixels + 1);
        opmath_t y, x;
        imagePosition(geo, offset, row, k, p, y, x);
        SamplePoint<opmath_t> si;
        const bool inside = locateSample(y, x, geo.height, geo.width, si);
        int64_t* out = keys + 4 * idx;
#pragma unroll
        for (int corner = 0; corner < 4; ++corner) {
            int64_t pixel = 0;
            const bool contributes = inside && cornerWeight(si, corner) != opmath_t(0) &&
                                     cornerInside(si, corner, geo.height, geo.width, pixel);
            out[corner] = base + (contributes ? pixel : sentinel);
        }
    }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkInputGradGatherKernel(int64_t n, const scalar_t* __restrict__ grad_output, const scalar_t* __restrict__ weight,
                            const scalar_t* __restrict__ kernel_offset, const scalar_t* __restrict__ offset,
                            const int64_t* __restrict__ order, const int64_t* __restrict__ segment_starts,
                            Geometry geo, scalar_t* __restrict__ grad_input) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
        // idx = (b*C + c)*H*W + pixel, the element's offset in grad_input.
        const int64_t pixel = idx % geo.pixels;
        const int64_t bc = idx / geo.pixels;
        const int64_t c = bc % geo.channels;
        const int64_t b = bc / geo.channels;
        const int64_t key = b * (geo.pixels + 1) + pixel;
        const int64_t begin = segment_starts[key];
        const int64_t end = segment_starts[key + 1];
        opmath_t acc = 0;
        for (int64_t i = begin; i < end; ++i) {
            const int64_t entry = order[i];
            const int corner = static_cast<int>(entry & 3);
            const int64_t sample = entry >> 2; // row*P + p
            const int64_t p = sample % geo.plane;
            const int64_t row = sample / geo.plane;
            const int64_t k = row % geo.taps;
            opmath_t y, x;
            imagePosition(geo, offset, row, k, p, y, x);
            SamplePoint<opmath_t> si;
            // Always true for a non-sentinel key (same inputs, same routine);
            // kept so a corrupted segment can never index out of bounds.
            if (!locateSample(y, x, geo.height, geo.width, si)) {
                continue;
            }
            const opmath_t gw = gradTimesKernel(geo, grad_output, weight, kernel_offset, b, c, row, k, p);
            acc += inputGradTerm(cornerWeight(si, corner), gw);
        }
        grad_input[idx] = static_cast<scalar_t>(acc);
    }
}

// ---------------------------------------------------------------------------
// Host entry points.
// ---------------------------------------------------------------------------

template <typename scalar_t>
const scalar_t* offsetPointer(const at::Tensor& offset, const Geometry& geo) {
    return geo.use_offset ? offset.const_data_ptr<scalar_t>() : nullptr;
}

void forwardCuda(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                 const at::Tensor& offset, const DeformKernelGeometry& geom, at::Tensor& output) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    const Geometry geo = makeGeometry(geom);
    const int64_t n = geo.batch * geo.channels * geo.plane;
    if (n == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_kernel2d_forward_cuda", [&] {
                                        dkForwardKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
                                            n, input.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
                                            kernel_offset.const_data_ptr<scalar_t>(),
                                            offsetPointer<scalar_t>(offset, geo), geo,
                                            output.mutable_data_ptr<scalar_t>());
                                        C10_CUDA_KERNEL_LAUNCH_CHECK();
                                    });
}

template <typename scalar_t>
void inputGradAtomic(const at::Tensor& grad_output, const at::Tensor& weight, const at::Tensor& kernel_offset,
                     const at::Tensor& offset, const Geometry& geo, at::Tensor& grad_input, cudaStream_t stream) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t n = geo.batch * geo.channels * geo.taps * geo.plane;
    // Reduced-precision inputs accumulate in an opmath scratch buffer; float and
    // double accumulate in grad_input directly (zero-filled by the caller).
    at::Tensor accumulator = std::is_same_v<scalar_t, opmath_t>
                                 ? grad_input
                                 : at::zeros(grad_input.sizes(),
                                             grad_input.options().dtype(at::toOpMathType(grad_input.scalar_type())));
    dkInputGradAtomicKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
        n, grad_output.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
        kernel_offset.const_data_ptr<scalar_t>(), offsetPointer<scalar_t>(offset, geo), geo,
        accumulator.mutable_data_ptr<opmath_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if constexpr (!std::is_same_v<scalar_t, opmath_t>) {
        grad_input.copy_(accumulator);
    }
}

template <typename scalar_t>
void inputGradDeterministic(const at::Tensor& grad_output, const at::Tensor& weight, const at::Tensor& kernel_offset,
                            const at::Tensor& offset, const Geometry& geo, at::Tensor& grad_input,
                            cudaStream_t stream) {
    const int64_t samples = geo.batch * geo.taps * geo.plane;   // (b, k, p)
    const int64_t segments = geo.batch * (geo.pixels + 1);     // (b, pixel or sentinel)
    const auto index_options = grad_output.options().dtype(at::kLong);

    at::Tensor keys = at::empty({4 * samples}, index_options);
    dkInputGradKeysKernel<scalar_t><<<gridFor(samples), kThreadsPerBlock, 0, stream>>>(
        samples, offsetPointer<scalar_t>(offset, geo), geo, keys.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();

    at::Tensor sorted_keys;
    at::Tensor order;
    std::tie(sorted_keys, order) = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
    keys.reset();
    const at::Tensor segment_starts =
        at::searchsorted(sorted_keys, at::arange(segments + 1, index_options), /*out_int32=*/false, /*right=*/false);
    sorted_keys.reset();

    const int64_t n = grad_input.numel();
    dkInputGradGatherKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
        n, grad_output.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
        kernel_offset.const_data_ptr<scalar_t>(), offsetPointer<scalar_t>(offset, geo),
        order.const_data_ptr<int64_t>(), segment_starts.const_data_ptr<int64_t>(), geo,
        grad_input.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void backwardCuda(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                  const at::Tensor& kernel_offset, const at::Tensor& offset, const DeformKernelGeometry& geom,
                  bool deterministic, at::Tensor& grad_input, at::Tensor& grad_weight, at::Tensor& grad_kernel_offset,
                  at::Tensor& grad_offset) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    const Geometry geo = makeGeometry(geom);
    // Nothing sampled: the zero-filled outputs (and untouched grad_weight) are the answer.
    if (geo.batch * geo.channels * geo.taps * geo.plane == 0 || geo.pixels == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "deform_kernel2d_backward_cuda", [&] {
            using opmath_t = at::opmath_type<scalar_t>;
            const auto opmath_options = input.options().dtype(at::toOpMathType(input.scalar_type()));
            const int64_t samples = geo.batch * geo.taps * geo.plane;

            // Offset gradients (kernel and image).
            const bool global = geo.global_kernel;
            at::Tensor per_position = global ? at::empty({2 * samples}, opmath_options) : at::Tensor();
            dkOffsetGradKernel<scalar_t><<<gridFor(samples), kThreadsPerBlock, 0, stream>>>(
                samples, grad_output.const_data_ptr<scalar_t>(), input.const_data_ptr<scalar_t>(),
                weight.const_data_ptr<scalar_t>(), kernel_offset.const_data_ptr<scalar_t>(),
                offsetPointer<scalar_t>(offset, geo), geo,
                global ? nullptr : grad_kernel_offset.mutable_data_ptr<scalar_t>(),
                global ? per_position.mutable_data_ptr<opmath_t>() : nullptr,
                geo.use_offset ? grad_offset.mutable_data_ptr<scalar_t>() : nullptr);
            C10_CUDA_KERNEL_LAUNCH_CHECK();
            if (global) {
                const int64_t rows = 2 * geo.batch * geo.taps;
                dkReduceRowsKernel<scalar_t><<<static_cast<unsigned int>(rows), kThreadsPerBlock, 0, stream>>>(
                    per_position.const_data_ptr<opmath_t>(), geo.plane,
                    grad_kernel_offset.mutable_data_ptr<scalar_t>());
                C10_CUDA_KERNEL_LAUNCH_CHECK();
            }

            // Weight gradient (always deterministic).
            const int64_t chunks = ceilDiv(samples, kWeightGradRounds * kThreadsPerBlock);
            at::Tensor partials = at::empty({geo.channels * chunks * geo.scope}, opmath_options);
            dkWeightGradPartialKernel<scalar_t>
                <<<static_cast<unsigned int>(geo.channels * chunks), kThreadsPerBlock, 0, stream>>>(
                    grad_output.const_data_ptr<scalar_t>(), input.const_data_ptr<scalar_t>(),
                    kernel_offset.const_data_ptr<scalar_t>(), offsetPointer<scalar_t>(offset, geo), geo, chunks,
                    partials.mutable_data_ptr<opmath_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();
            const int64_t cells = geo.channels * geo.scope;
            dkWeightGradFinishKernel<scalar_t><<<gridFor(cells), kThreadsPerBlock, 0, stream>>>(
                cells, partials.const_data_ptr<opmath_t>(), chunks, geo.scope,
                grad_weight.mutable_data_ptr<scalar_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();

            // Input gradient.
            if (deterministic) {
                inputGradDeterministic<scalar_t>(grad_output, weight, kernel_offset, offset, geo, grad_input, stream);
            } else {
                inputGradAtomic<scalar_t>(grad_output, weight, kernel_offset, offset, geo, grad_input, stream);
            }
        });
}

} // namespace

DeformKernelKernels cudaDeformKernelKernels() { return {&forwardCuda, &backwardCuda}; }

} // namespace deformscope::ops::detail
