// CUDA kernels for deform_kernel2d (Deformable Kernels; semantics in
// core/ops/deform_kernel2d.h, contract in core/ops/deform_kernel2d_kernels.h).
//
//   forward               one thread per output (b, c, p), summing its K taps
//   offset gradients      one thread per (b, k, p), summing the channels in order
//                         (global kernel offsets: then a fixed-order block
//                         reduction over the positions)
//   weight gradient       fixed-order two-stage reduction (per block of samples,
//                         then over the blocks): always deterministic
//   input gradient        the shared scatter of sampling_kernels.cuh:
//                         deterministic (sort by target pixel, then a fixed-order
//                         gather), or floating-point atomics in BackwardMode::Atomic
//
// Every image and scope read goes through DkSource and the bilinear arithmetic of
// ../bilinear.h, in forward and in every backward path, so the boundary rule is
// bit-for-bit the same everywhere and the same as on the CPU. Arithmetic is done
// in at::opmath_type<scalar_t> (float for Half/BFloat16).

#include "core/ops/cuda/sampling_kernels.cuh"
#include "core/ops/deform_kernel2d_kernels.h"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>

namespace deformscope::ops::detail {
namespace {

// Rounds of kThreadsPerBlock samples handled by one block of the weight-gradient reduction.
constexpr int64_t kWeightGradRounds = 16;

// The chunk's tensors and geometry, by value to every kernel; the Source of the
// shared input-gradient kernels (sampling_kernels.cuh). A row = b*K + k is one
// (image, tap):
//   image offset dy at [b, 2k, p]  -> 2*row*P + p,  dx at + P
//   kernel offset dy at [b, 2k, q] -> 2*row*Q + q,  dx at + Q  (q = p local, 0 global)
template <typename scalar_t_>
struct DkSource {
    using scalar_t = scalar_t_;
    using opmath_t = at::opmath_type<scalar_t>;

    DeformKernelGeometry geo;
    int64_t groups;             // 1: the image offsets have one group
    int64_t channels_per_group; // C
    const scalar_t* __restrict__ input;
    const scalar_t* __restrict__ weight;
    const scalar_t* __restrict__ kernel_offset;
    const scalar_t* __restrict__ offset;      // null without use_offset
    const scalar_t* __restrict__ grad_output; // backward only

    // The image read of (row, p): the tap's grid position, moved by the image
    // offset when there is one.
    __device__ __forceinline__ bool imageRead(int64_t row, int64_t p, BilinearPoint<opmath_t>& s) const {
        const int64_t P = geo.outPlane();
        opmath_t dy = 0, dx = 0;
        if (offset) {
            const scalar_t* ptr = offset + 2 * row * P + p;
            dy = static_cast<opmath_t>(ptr[0]);
            dx = static_cast<opmath_t>(ptr[P]);
        }
        opmath_t y, x;
        geo.tapPosition(row % geo.taps(), p, dy, dx, y, x);
        return locateSample(y, x, geo.height, geo.width, s);
    }

    // The scope read of (row, p): the tap's base position in the scope (exact in
    // double, rounded to opmath_t) moved by its kernel offset.
    __device__ __forceinline__ bool scopeRead(int64_t row, int64_t p, BilinearPoint<opmath_t>& s) const {
        const int64_t k = row % geo.taps();
        const int64_t Q = geo.kernelOffsetPlane();
        const scalar_t* ptr = kernel_offset + 2 * row * Q + (geo.local_kernel ? p : 0);
        const opmath_t ky = static_cast<opmath_t>(geo.scopeRow(k / geo.kernel_w)) + static_cast<opmath_t>(ptr[0]);
        const opmath_t kx = static_cast<opmath_t>(geo.scopeCol(k % geo.kernel_w)) + static_cast<opmath_t>(ptr[Q]);
        return locateSample(ky, kx, geo.scope_h, geo.scope_w, s);
    }

    // x_c(y, x) and W_c(ky, kx) of (row, p): 0 for a read outside its grid.
    __device__ __forceinline__ opmath_t imageValue(int64_t b, int64_t c, int64_t row, int64_t p) const {
        BilinearPoint<opmath_t> s;
        if (!imageRead(row, p, s))
            return opmath_t(0);
        opmath_t v[4];
        cornerValues(input + (b * geo.channels + c) * geo.pixels(), s, geo.height, geo.width, v);
        return interpolate(s, v);
    }
    __device__ __forceinline__ opmath_t kernelValue(int64_t c, int64_t row, int64_t p) const {
        BilinearPoint<opmath_t> s;
        if (!scopeRead(row, p, s))
            return opmath_t(0);
        opmath_t v[4];
        cornerValues(weight + c * geo.scopeSize(), s, geo.scope_h, geo.scope_w, v);
        return interpolate(s, v);
    }

    // The atomic input-gradient thread order: idx = ((b*C + c)*K + k)*P + p.
    __device__ __forceinline__ void atomicEntry(int64_t idx, int64_t& b, int64_t& c, int64_t& row, int64_t& p) const {
        p = idx % geo.outPlane();
        int64_t t = idx / geo.outPlane();
        const int64_t k = t % geo.taps();
        const int64_t bc = t / geo.taps();
        c = bc % geo.channels;
        b = bc / geo.channels;
        row = b * geo.taps() + k;
    }

    // The gradient arriving at the image read (b, c, row, p): gout[b, c, p] * W_c.
    __device__ __forceinline__ opmath_t factor(int64_t b, int64_t c, int64_t row, int64_t p) const {
        return static_cast<opmath_t>(grad_output[(b * geo.channels + c) * geo.outPlane() + p]) * kernelValue(c, row, p);
    }
};

template <typename scalar_t>
DkSource<scalar_t> makeSource(const DeformKernelGeometry& g, const at::Tensor& input, const at::Tensor& weight,
                              const at::Tensor& kernel_offset, const at::Tensor& offset,
                              const at::Tensor* grad_output) {
    return {g, 1, g.channels, dataOrNull<scalar_t>(&input), dataOrNull<scalar_t>(&weight),
            dataOrNull<scalar_t>(&kernel_offset), dataOrNull<scalar_t>(&offset, g.use_offset),
            dataOrNull<scalar_t>(grad_output)};
}

// ---------------------------------------------------------------------------
// Forward: one thread per output element, idx = (b*C + c)*P + p.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    dkForwardKernel(int64_t n, DkSource<scalar_t> src, scalar_t* __restrict__ output) {
    using opmath_t = at::opmath_type<scalar_t>;
    const int64_t P = src.geo.outPlane();
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        int64_t b, c, p;
        splitImageChannel(idx, P, src.geo.channels, b, c, p);
        opmath_t acc = 0;
        for (int64_t k = 0; k < src.geo.taps(); ++k) {
            const int64_t row = b * src.geo.taps() + k;
            acc += src.kernelValue(c, row, p) * src.imageValue(b, c, row, p);
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
    dkOffsetGradKernel(int64_t n, DkSource<scalar_t> src, scalar_t* __restrict__ grad_kernel_offset,
                       at::opmath_type<scalar_t>* __restrict__ per_position, scalar_t* __restrict__ grad_offset) {
    using opmath_t = at::opmath_type<scalar_t>;
    const DeformKernelGeometry& geo = src.geo;
    const int64_t P = geo.outPlane();
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        const int64_t p = idx % P;
        const int64_t row = idx / P; // b*K + k
        const int64_t b = row / geo.taps();

        opmath_t g_ky = 0, g_kx = 0, g_y = 0, g_x = 0;
        BilinearPoint<opmath_t> sk, si;
        // Same boundary rule as forward: if either read is a zero read, the
        // product and all four position gradients are 0.
        if (src.scopeRead(row, p, sk) && src.imageRead(row, p, si)) {
            const scalar_t* go = src.grad_output + b * geo.channels * P + p;
            const scalar_t* plane = src.input + b * geo.channels * geo.pixels();
            const scalar_t* scope = src.weight;
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
                go += P;
                plane += geo.pixels();
                scope += geo.scopeSize();
            }
        }
        if (per_position) {
            opmath_t* pp = per_position + 2 * row * P + p;
            pp[0] = g_ky;
            pp[P] = g_kx;
        } else {
            scalar_t* gk = grad_kernel_offset + 2 * row * P + p;
            gk[0] = static_cast<scalar_t>(g_ky);
            gk[P] = static_cast<scalar_t>(g_kx);
        }
        if (grad_offset) {
            scalar_t* gi = grad_offset + 2 * row * P + p;
            gi[0] = static_cast<scalar_t>(g_y);
            gi[P] = static_cast<scalar_t>(g_x);
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
    dkWeightGradPartialKernel(DkSource<scalar_t> src, int64_t chunks,
                              at::opmath_type<scalar_t>* __restrict__ partials) {
    using opmath_t = at::opmath_type<scalar_t>;
    __shared__ int64_t cells[4 * kThreadsPerBlock];
    __shared__ opmath_t values[4 * kThreadsPerBlock];
    const DeformKernelGeometry& geo = src.geo;
    const int64_t S = geo.scopeSize();
    const int64_t c = blockIdx.x / chunks;
    const int64_t chunk = blockIdx.x % chunks;
    const int64_t samples = geo.batch * geo.taps() * geo.outPlane();
    opmath_t* partial = partials + static_cast<int64_t>(blockIdx.x) * S;
    for (int64_t s = threadIdx.x; s < S; s += kThreadsPerBlock) {
        partial[s] = 0;
    }
    const int64_t first = chunk * kWeightGradRounds * kThreadsPerBlock;
    for (int64_t round = 0; round < kWeightGradRounds; ++round) {
        const int64_t round_first = first + round * kThreadsPerBlock;
        if (round_first >= samples) {
            break; // uniform across the block
        }
        const int64_t e = round_first + threadIdx.x;
        DEFORMSCOPE_UNROLL
        for (int corner = 0; corner < 4; ++corner) {
            cells[4 * threadIdx.x + corner] = -1;
            values[4 * threadIdx.x + corner] = 0;
        }
        if (e < samples) {
            const int64_t p = e % geo.outPlane();
            const int64_t row = e / geo.outPlane();
            const int64_t b = row / geo.taps();
            BilinearPoint<opmath_t> sk;
            if (src.scopeRead(row, p, sk)) {
                const opmath_t g =
                    static_cast<opmath_t>(src.grad_output[(b * geo.channels + c) * geo.outPlane() + p]) *
                    src.imageValue(b, c, row, p);
                DEFORMSCOPE_UNROLL
                for (int corner = 0; corner < 4; ++corner) {
                    int64_t cell = 0;
                    if (contributes(sk, corner, geo.scope_h, geo.scope_w, cell)) {
                        cells[4 * threadIdx.x + corner] = cell;
                        values[4 * threadIdx.x + corner] = cornerWeight(sk, corner) * g;
                    }
                }
            }
        }
        __syncthreads();
        for (int64_t s = threadIdx.x; s < S; s += kThreadsPerBlock) {
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
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
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
// Host entry points.
// ---------------------------------------------------------------------------

void forwardCuda(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                 const at::Tensor& offset, const DeformKernelGeometry& geom, at::Tensor& output) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    const int64_t n = geom.batch * geom.channels * geom.outPlane();
    if (n == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "deform_kernel2d_forward_cuda", [&] {
            dkForwardKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
                n, makeSource<scalar_t>(geom, input, weight, kernel_offset, offset, nullptr),
                output.mutable_data_ptr<scalar_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
}

void backwardCuda(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                  const at::Tensor& kernel_offset, const at::Tensor& offset, const DeformKernelGeometry& geom,
                  bool deterministic, at::Tensor& grad_input, at::Tensor& grad_weight, at::Tensor& grad_kernel_offset,
                  at::Tensor& grad_offset) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    // Nothing sampled: the zero-filled outputs (and untouched grad_weight) are the answer.
    if (geom.batch * geom.channels * geom.taps() * geom.outPlane() == 0 || geom.pixels() == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "deform_kernel2d_backward_cuda", [&] {
            using opmath_t = at::opmath_type<scalar_t>;
            const DkSource<scalar_t> src =
                makeSource<scalar_t>(geom, input, weight, kernel_offset, offset, &grad_output);
            const auto opmath_options = input.options().dtype(at::toOpMathType(input.scalar_type()));
            const int64_t samples = geom.batch * geom.taps() * geom.outPlane();

            // Offset gradients (kernel and image).
            const bool global = !geom.local_kernel;
            at::Tensor per_position = global ? at::empty({2 * samples}, opmath_options) : at::Tensor();
            dkOffsetGradKernel<scalar_t><<<gridFor(samples), kThreadsPerBlock, 0, stream>>>(
                samples, src, global ? nullptr : grad_kernel_offset.mutable_data_ptr<scalar_t>(),
                global ? per_position.mutable_data_ptr<opmath_t>() : nullptr,
                geom.use_offset ? grad_offset.mutable_data_ptr<scalar_t>() : nullptr);
            C10_CUDA_KERNEL_LAUNCH_CHECK();
            if (global) {
                const int64_t rows = 2 * geom.batch * geom.taps();
                dkReduceRowsKernel<scalar_t><<<static_cast<unsigned int>(rows), kThreadsPerBlock, 0, stream>>>(
                    per_position.const_data_ptr<opmath_t>(), geom.outPlane(),
                    grad_kernel_offset.mutable_data_ptr<scalar_t>());
                C10_CUDA_KERNEL_LAUNCH_CHECK();
            }

            // Weight gradient (always deterministic).
            const int64_t chunks = ceilDiv(samples, kWeightGradRounds * kThreadsPerBlock);
            at::Tensor partials = at::empty({geom.channels * chunks * geom.scopeSize()}, opmath_options);
            dkWeightGradPartialKernel<scalar_t>
                <<<static_cast<unsigned int>(geom.channels * chunks), kThreadsPerBlock, 0, stream>>>(
                    src, chunks, partials.mutable_data_ptr<opmath_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();
            const int64_t cells = geom.channels * geom.scopeSize();
            dkWeightGradFinishKernel<scalar_t><<<gridFor(cells), kThreadsPerBlock, 0, stream>>>(
                cells, partials.const_data_ptr<opmath_t>(), chunks, geom.scopeSize(),
                grad_weight.mutable_data_ptr<scalar_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();

            // Input gradient.
            if (deterministic) {
                inputGradDeterministic(src, grad_input, stream);
            } else {
                // One thread per read (b, c, k, p).
                inputGradAtomic(src, geom.batch * geom.channels * geom.taps() * geom.outPlane(), grad_input, stream);
            }
        });
}

} // namespace

DeformKernelKernels cudaDeformKernelKernels() { return {&forwardCuda, &backwardCuda}; }

} // namespace deformscope::ops::detail
