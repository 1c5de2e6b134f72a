// What the CUDA kernels of deform_conv2d and deform_kernel2d share besides the
// bilinear arithmetic (../bilinear.h): launch sizing, and the input gradient.
//
// Both operators form the input gradient the same way: every image read
// (b, c, row, p) — row = (b*G + g)*K + k, G offset groups (1 for
// deform_kernel2d), g the group of channel c — scatters factor(b, c, row, p)
// times each corner's bilinear weight onto the corners of input[b, c]. An
// operator describes its reads and factors with a Source (below); the kernels
// here do the scatter, either with floating-point atomics (fast, order not
// fixed) or deterministically (bit-identical across runs):
//
//   1. inputGradKeysKernel: one thread per (row, p) writes the keys of its 4
//      corner entries, entry e = (row*P + p)*4 + corner:
//        key = (row / K)*(H*W + 1) + pixel,
//      with pixel = H*W (a sentinel) for an entry that contributes nothing.
//   2. A stable sort of the keys groups the entries by target (b, g, pixel);
//      stability keeps each group in increasing entry order, so the order of
//      the sum below is fixed by the data alone.
//   3. searchsorted gives the start of every key's segment in the sorted array.
//   4. inputGradGatherKernel: one thread per (b, c, pixel) walks its
//      (b, g(c), pixel) segment in order, recomputes each entry's weight and
//      factor with the same Source and sums them in opmath, then stores once.
// Only integer work happens in steps 1-3 and step 4 is a fixed-order sum.
//
// A Source is a plain struct passed by value to the kernels, with
//   scalar_t, opmath_t                           the tensors' and the arithmetic's types
//   geo                                          a SamplingGrid (batch, channels, H, W, K, P)
//   groups, channels_per_group                   G and C/G
//   bool imageRead(row, p, BilinearPoint&)       locateSample of the read's image position
//   opmath_t factor(b, c, row, p)                the gradient arriving at the read
//   void atomicEntry(idx, b, c, row, p)          the atomic kernel's thread -> read order
// all __device__ (imageRead and factor also serve the operator's own kernels).
#pragma once

#include "core/ops/bilinear.h"
#include "core/ops/sampling_grid.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>

namespace deformscope::ops::detail {

constexpr int kThreadsPerBlock = 256;
// Grid-stride loops make any grid size correct; this caps the grid at a few
// waves of fully occupied SMs so huge problems do not launch millions of blocks.
constexpr int64_t kMaxWavesPerSm = 4;

inline int64_t ceilDiv(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

// Number of blocks for `n` work items of a grid-stride kernel (n > 0).
inline unsigned int gridFor(int64_t n) {
    const cudaDeviceProp* props = at::cuda::getCurrentDeviceProperties();
    const int64_t blocks_per_sm = std::max<int64_t>(1, props->maxThreadsPerMultiProcessor / kThreadsPerBlock);
    const int64_t max_blocks = std::max<int64_t>(1, props->multiProcessorCount * blocks_per_sm * kMaxWavesPerSm);
    return static_cast<unsigned int>(std::min(ceilDiv(n, kThreadsPerBlock), max_blocks));
}

// Grid-stride loop over [0, n): all indices are int64_t, so any tensor size that
// fits in memory is handled with a capped grid.
#define DEFORMSCOPE_CUDA_LOOP(idx, n)                                                                             \
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < (n);                    \
         idx += static_cast<int64_t>(blockDim.x) * gridDim.x)

// A pointer to `t`'s data, or null for a tensor the kernels do not read.
template <typename scalar_t>
const scalar_t* dataOrNull(const at::Tensor* t, bool used = true) {
    return (t && used) ? t->const_data_ptr<scalar_t>() : nullptr;
}

// idx = (b*C + c)*inner + r  ->  (b, c, r): the layout of every [B, C, ...] tensor.
__device__ __forceinline__ void splitImageChannel(int64_t idx, int64_t inner, int64_t channels, int64_t& b,
                                                  int64_t& c, int64_t& r) {
    r = idx % inner;
    const int64_t bc = idx / inner;
    c = bc % channels;
    b = bc / channels;
}

// The entries a read scatters to: corners inside the image with a nonzero
// weight. The atomic and the deterministic paths select exactly these.
template <typename T>
__device__ __forceinline__ bool contributes(const BilinearPoint<T>& s, int corner, int64_t height, int64_t width,
                                            int64_t& pixel) {
    return cornerWeight(s, corner) != T(0) && cornerInside(s, corner, height, width, pixel);
}

// Atomic path: one thread per read in the Source's order; accumulates into an
// opmath_t buffer.
template <class Source>
__global__ void __launch_bounds__(kThreadsPerBlock)
    inputGradAtomicKernel(int64_t n, Source src, typename Source::opmath_t* __restrict__ grad_input) {
    using opmath_t = typename Source::opmath_t;
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        int64_t b, c, row, p;
        src.atomicEntry(idx, b, c, row, p);
        BilinearPoint<opmath_t> s;
        // Same boundary rule as forward: a zero read contributes nothing.
        if (!src.imageRead(row, p, s))
            continue;
        const opmath_t factor = src.factor(b, c, row, p);
        opmath_t* target = grad_input + (b * src.geo.channels + c) * src.geo.pixels();
        DEFORMSCOPE_UNROLL
        for (int corner = 0; corner < 4; ++corner) {
            int64_t pixel = 0;
            if (contributes(s, corner, src.geo.height, src.geo.width, pixel))
                gpuAtomicAdd(target + pixel, cornerWeight(s, corner) * factor);
        }
    }
}

template <class Source>
__global__ void __launch_bounds__(kThreadsPerBlock)
    inputGradKeysKernel(int64_t n, Source src, int64_t* __restrict__ keys) {
    using opmath_t = typename Source::opmath_t;
    const int64_t plane = src.geo.outPlane();
    const int64_t sentinel = src.geo.pixels();
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        const int64_t p = idx % plane;
        const int64_t row = idx / plane; // (b*G + g)*K + k
        const int64_t base = (row / src.geo.taps()) * (sentinel + 1);
        BilinearPoint<opmath_t> s;
        const bool inside = src.imageRead(row, p, s);
        int64_t* out = keys + 4 * idx;
        DEFORMSCOPE_UNROLL
        for (int corner = 0; corner < 4; ++corner) {
            int64_t pixel = 0;
            out[corner] = base + ((inside && contributes(s, corner, src.geo.height, src.geo.width, pixel)) ? pixel
                                                                                                          : sentinel);
        }
    }
}

template <class Source>
__global__ void __launch_bounds__(kThreadsPerBlock)
    inputGradGatherKernel(int64_t n, Source src, const int64_t* __restrict__ order,
                          const int64_t* __restrict__ segment_starts,
                          typename Source::scalar_t* __restrict__ grad_input) {
    using opmath_t = typename Source::opmath_t;
    const int64_t pixels = src.geo.pixels();
    const int64_t plane = src.geo.outPlane();
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        // idx = (b*C + c)*H*W + pixel, the element's offset in grad_input.
        int64_t b, c, pixel;
        splitImageChannel(idx, pixels, src.geo.channels, b, c, pixel);
        const int64_t key = (b * src.groups + c / src.channels_per_group) * (pixels + 1) + pixel;
        const int64_t end = segment_starts[key + 1];
        opmath_t acc = 0;
        for (int64_t i = segment_starts[key]; i < end; ++i) {
            const int64_t entry = order[i];
            const int corner = static_cast<int>(entry & 3);
            const int64_t sample = entry >> 2; // row*P + p
            const int64_t p = sample % plane;
            const int64_t row = sample / plane;
            BilinearPoint<opmath_t> s;
            // Always true for a non-sentinel key (same inputs, same routine);
            // kept so a corrupted segment can never index out of bounds.
            if (!src.imageRead(row, p, s))
                continue;
            acc += cornerWeight(s, corner) * src.factor(b, c, row, p);
        }
        grad_input[idx] = static_cast<typename Source::scalar_t>(acc);
    }
}

// grad_input (zero-filled by the caller) from `reads` reads in the Source's
// atomic order. Reduced-precision inputs accumulate in an opmath scratch buffer;
// float and double accumulate in grad_input directly.
template <class Source>
void inputGradAtomic(const Source& src, int64_t reads, at::Tensor& grad_input, cudaStream_t stream) {
    using scalar_t = typename Source::scalar_t;
    using opmath_t = typename Source::opmath_t;
    at::Tensor accumulator = std::is_same_v<scalar_t, opmath_t>
                                 ? grad_input
                                 : at::zeros(grad_input.sizes(),
                                             grad_input.options().dtype(at::toOpMathType(grad_input.scalar_type())));
    inputGradAtomicKernel<Source><<<gridFor(reads), kThreadsPerBlock, 0, stream>>>(
        reads, src, accumulator.mutable_data_ptr<opmath_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if constexpr (!std::is_same_v<scalar_t, opmath_t>) {
        grad_input.copy_(accumulator);
    }
}

// grad_input (every element written) by sort and fixed-order gather.
template <class Source>
void inputGradDeterministic(const Source& src, at::Tensor& grad_input, cudaStream_t stream) {
    const SamplingGrid& g = src.geo;
    const int64_t samples = g.batch * src.groups * g.taps() * g.outPlane(); // (row, p)
    const int64_t segments = g.batch * src.groups * (g.pixels() + 1);       // (b, g, pixel or sentinel)
    const auto index_options = grad_input.options().dtype(at::kLong);

    at::Tensor keys = at::empty({4 * samples}, index_options);
    inputGradKeysKernel<Source><<<gridFor(samples), kThreadsPerBlock, 0, stream>>>(
        samples, src, keys.mutable_data_ptr<int64_t>());
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
    inputGradGatherKernel<Source><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
        n, src, order.const_data_ptr<int64_t>(), segment_starts.const_data_ptr<int64_t>(),
        grad_input.mutable_data_ptr<typename Source::scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}

} // namespace deformscope::ops::detail
