// CUDA kernels for deform_roi_pool (semantics in core/ops/deform_roi_pool.h,
// contract in core/ops/deform_roi_pool_kernels.h): a direct port of the CPU
// kernels (cpu/deform_roi_pool_kernel.cpp), through the same shared arithmetic
// (roiBin, locateRoiRead, roiSlopes), one thread where the CPU has one task:
//
//   forward               one thread per output (k, c, i, j)
//   offset/mask grads     one thread per bin (k, i, j), summing the channels and
//                         the bin's reads in order (always deterministic)
//   input gradient        BackwardMode::Deterministic (the default): one thread
//                         per (image, channel) plane walking the image's RoIs in
//                         increasing index, as the CPU task does (fixed order;
//                         parallel over N*C only, so slow for many RoIs);
//                         BackwardMode::Atomic: one thread per (k, c, i, j)
//                         scattering its reads with floating-point atomics, as
//                         mmcv's kernel does.
// Reduced-precision inputs accumulate the input gradient in an opmath scratch
// buffer. Arithmetic is done in at::opmath_type<scalar_t>.
//
// UNVERIFIED ON A GPU: this file compiles with nvcc, but the machine it was
// written on has no GPU, so none of it has run. tst_deform_roi_pool's CUDA rows
// (CUDA against the float64 reference and against the CPU, both backward
// modes) and `deformscope-cli selftest --device cuda` are the checks to run on
// the first machine with one.

#include "core/ops/cuda/sampling_kernels.cuh"
#include "core/ops/deform_roi_pool_kernels.h"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>

#include <type_traits>

namespace deformscope::ops::detail {
namespace {

// The call's tensors and geometry, by value to every kernel.
template <typename scalar_t_>
struct RoiSource {
    using scalar_t = scalar_t_;
    using opmath_t = at::opmath_type<scalar_t>;

    RoiPoolGeometry geo;
    const scalar_t* __restrict__ input;
    const scalar_t* __restrict__ rois;
    const scalar_t* __restrict__ offset;      // null without offsets
    const scalar_t* __restrict__ mask;        // null without use_mask
    const scalar_t* __restrict__ grad_output; // backward only

    __device__ __forceinline__ RoiBin<opmath_t> bin(int64_t k, int64_t q) const {
        return roiBin<opmath_t>(geo, rois, offset, k, q / geo.pooled_w, q % geo.pooled_w);
    }
    __device__ __forceinline__ opmath_t modulation(int64_t k, int64_t q) const {
        return mask ? static_cast<opmath_t>(mask[k * geo.bins() + q]) : opmath_t(1);
    }
};

template <typename scalar_t>
RoiSource<scalar_t> makeSource(const RoiPoolGeometry& g, const at::Tensor& input, const at::Tensor& rois,
                               const at::Tensor& offset, const at::Tensor& mask, const at::Tensor* grad_output) {
    return {g,
            input.const_data_ptr<scalar_t>(),
            rois.const_data_ptr<scalar_t>(),
            g.use_offset ? offset.const_data_ptr<scalar_t>() : nullptr,
            g.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr,
            grad_output ? grad_output->const_data_ptr<scalar_t>() : nullptr};
}

// idx = (k*C + c)*P + q.
template <typename scalar_t>
__global__ void roiForwardKernel(int64_t n, RoiSource<scalar_t> src, scalar_t* __restrict__ output) {
    using opmath_t = at::opmath_type<scalar_t>;
    const RoiPoolGeometry& g = src.geo;
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        const int64_t P = g.bins();
        const int64_t q = idx % P;
        const int64_t c = (idx / P) % g.channels;
        const int64_t k = idx / (P * g.channels);
        const RoiBin<opmath_t> bin = src.bin(k, q);
        const scalar_t* plane = src.input + (bin.image * g.channels + c) * g.pixels();
        const opmath_t sum = binSum(bin, plane, g);
        output[idx] = static_cast<scalar_t>(sum / bin.count * src.modulation(k, q));
    }
}

// idx = k*P + q: the bin's offset and mask gradients, channels in order.
template <typename scalar_t>
__global__ void roiOffsetMaskGradKernel(int64_t n, RoiSource<scalar_t> src, scalar_t* __restrict__ grad_offset,
                                        scalar_t* __restrict__ grad_mask) {
    using opmath_t = at::opmath_type<scalar_t>;
    const RoiPoolGeometry& g = src.geo;
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        const int64_t P = g.bins();
        const int64_t q = idx % P;
        const int64_t k = idx / P;
        const RoiBin<opmath_t> bin = src.bin(k, q);
        const opmath_t m = src.modulation(k, q);
        opmath_t ay, ax, am;
        roiBinGradients(bin, src.input, src.grad_output, g, k, q, ay, ax, am);
        if (grad_offset) {
            grad_offset[2 * k * P + q] = static_cast<scalar_t>(ax * m / bin.count * bin.offset_scale_x);
            grad_offset[(2 * k + 1) * P + q] = static_cast<scalar_t>(ay * m / bin.count * bin.offset_scale_y);
        }
        if (grad_mask)
            grad_mask[k * P + q] = static_cast<scalar_t>(am);
    }
}

// Deterministic input gradient: idx = b*C + c owns plane `acc + idx*H*W`
// (zero-filled) and walks the RoIs of image b in order.
template <typename scalar_t>
__global__ void roiInputGradPlaneKernel(int64_t n, RoiSource<scalar_t> src, const int64_t* __restrict__ order,
                                        const int64_t* __restrict__ starts, at::opmath_type<scalar_t>* __restrict__ acc) {
    using opmath_t = at::opmath_type<scalar_t>;
    const RoiPoolGeometry& g = src.geo;
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        const int64_t P = g.bins();
        const int64_t b = idx / g.channels;
        const int64_t c = idx % g.channels;
        opmath_t* plane = acc + idx * g.pixels();
        for (int64_t e = starts[b]; e < starts[b + 1]; ++e) {
            const int64_t k = order[e];
            for (int64_t q = 0; q < P; ++q) {
                const RoiBin<opmath_t> bin = src.bin(k, q);
                const opmath_t factor =
                    static_cast<opmath_t>(src.grad_output[(k * g.channels + c) * P + q]) * src.modulation(k, q) /
                    bin.count;
                forEachRoiRead(bin, g, [&](const RoiRead<opmath_t>& r) {
                    DEFORMSCOPE_UNROLL
                    for (int corner = 0; corner < 4; ++corner)
                        plane[r.index(corner, g.width)] += r.weight(corner) * factor;
                });
            }
        }
    }
}

// Atomic input gradient (mmcv's scatter): idx = (k*C + c)*P + q.
template <typename scalar_t>
__global__ void roiInputGradAtomicKernel(int64_t n, RoiSource<scalar_t> src, at::opmath_type<scalar_t>* __restrict__ acc) {
    using opmath_t = at::opmath_type<scalar_t>;
    const RoiPoolGeometry& g = src.geo;
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        const int64_t P = g.bins();
        const int64_t q = idx % P;
        const int64_t c = (idx / P) % g.channels;
        const int64_t k = idx / (P * g.channels);
        const RoiBin<opmath_t> bin = src.bin(k, q);
        const opmath_t factor = static_cast<opmath_t>(src.grad_output[idx]) * src.modulation(k, q) / bin.count;
        opmath_t* plane = acc + (bin.image * g.channels + c) * g.pixels();
        forEachRoiRead(bin, g, [&](const RoiRead<opmath_t>& r) {
            DEFORMSCOPE_UNROLL
            for (int corner = 0; corner < 4; ++corner)
                gpuAtomicAdd(plane + r.index(corner, g.width), r.weight(corner) * factor);
        });
    }
}

// ---------------------------------------------------------------------------
// Host entry points.
// ---------------------------------------------------------------------------

void forwardCuda(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                 const RoiPoolGeometry& geom, at::Tensor& output) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    const int64_t n = geom.rois * geom.channels * geom.bins();
    if (n == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "deform_roi_pool_forward_cuda", [&] {
            roiForwardKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
                n, makeSource<scalar_t>(geom, input, rois, offset, mask, nullptr), output.mutable_data_ptr<scalar_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
}

void backwardCuda(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& rois,
                  const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& roi_order,
                  const at::Tensor& image_starts, const RoiPoolGeometry& geom, bool deterministic,
                  at::Tensor& grad_input, at::Tensor& grad_offset, at::Tensor& grad_mask) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    // Nothing read: the zero-filled outputs are the answer.
    if (geom.rois * geom.channels * geom.bins() == 0 || geom.pixels() == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "deform_roi_pool_backward_cuda", [&] {
            using opmath_t = at::opmath_type<scalar_t>;
            const RoiSource<scalar_t> src = makeSource<scalar_t>(geom, input, rois, offset, mask, &grad_output);

            if (geom.use_offset || geom.use_mask) {
                const int64_t bins = geom.rois * geom.bins();
                roiOffsetMaskGradKernel<scalar_t><<<gridFor(bins), kThreadsPerBlock, 0, stream>>>(
                    bins, src, geom.use_offset ? grad_offset.mutable_data_ptr<scalar_t>() : nullptr,
                    geom.use_mask ? grad_mask.mutable_data_ptr<scalar_t>() : nullptr);
                C10_CUDA_KERNEL_LAUNCH_CHECK();
            }

            // float and double accumulate in grad_input (zero-filled) directly.
            at::Tensor accumulator =
                std::is_same_v<scalar_t, opmath_t>
                    ? grad_input
                    : at::zeros(grad_input.sizes(), grad_input.options().dtype(at::toOpMathType(input.scalar_type())));
            if (deterministic) {
                const int64_t planes = geom.batch * geom.channels;
                roiInputGradPlaneKernel<scalar_t><<<gridFor(planes), kThreadsPerBlock, 0, stream>>>(
                    planes, src, roi_order.const_data_ptr<int64_t>(), image_starts.const_data_ptr<int64_t>(),
                    accumulator.mutable_data_ptr<opmath_t>());
            } else {
                const int64_t n = geom.rois * geom.channels * geom.bins();
                roiInputGradAtomicKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
                    n, src, accumulator.mutable_data_ptr<opmath_t>());
            }
            C10_CUDA_KERNEL_LAUNCH_CHECK();
            if constexpr (!std::is_same_v<scalar_t, opmath_t>) {
                grad_input.copy_(accumulator);
            }
        });
}

} // namespace

RoiPoolKernels cudaRoiPoolKernels() { return {&forwardCuda, &backwardCuda}; }

} // namespace deformscope::ops::detail
