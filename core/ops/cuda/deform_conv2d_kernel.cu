// CUDA sampling kernels for deform_conv2d (torchvision semantics).
//
// The device-agnostic driver (deform_conv2d.cpp) owns argument checks, batching
// and the GEMMs; this file supplies the two operations that touch the deformed
// sampling grid (see core/ops/deform_conv2d_kernels.h for the contract):
//
//   im2col           columns[c*K + k, b*P + p] = bilinear(input[b, c], y, x) * mask
//   columnsBackward  grad_columns -> grad_input, grad_offset, grad_mask
//
// Every read goes through Conv2dSource::imageRead and the bilinear arithmetic of
// ../bilinear.h, in forward and in every backward path, so the boundary rule is
// bit-for-bit the same everywhere and the same as on the CPU. Arithmetic is done
// in at::opmath_type<scalar_t> (float for Half/BFloat16).

#include "core/ops/cuda/sampling_kernels.cuh"
#include "core/ops/deform_conv2d_kernels.h"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>

namespace deformscope::ops::detail {
namespace {

// The chunk's tensors and geometry, by value to every kernel; the Source of the
// shared input-gradient kernels (sampling_kernels.cuh). Layouts
// (deform_conv2d_kernels.h), with row = (b*G + g)*K + k one (image, offset group, tap):
//   offset dy at [b, g*2K + 2k,     p] -> (2*row)     * P + p
//   offset dx at [b, g*2K + 2k + 1, p] -> (2*row + 1) * P + p
//   mask       at [b, g*K + k,       p] ->  row        * P + p
//   columns    at [c*K + k, b*P + p]   -> ((c*K + k)*B + b)*P + p
template <typename scalar_t_>
struct Conv2dSource {
    using scalar_t = scalar_t_;
    using opmath_t = at::opmath_type<scalar_t>;

    DeformGeometry geo;
    int64_t groups;
    int64_t channels_per_group;
    const scalar_t* __restrict__ input;
    const scalar_t* __restrict__ offset;
    const scalar_t* __restrict__ mask;         // null without use_mask
    const scalar_t* __restrict__ grad_columns; // backward only

    // The image read of (row, p): the tap's grid position moved by its offset.
    __device__ __forceinline__ bool imageRead(int64_t row, int64_t p, BilinearPoint<opmath_t>& s) const {
        const int64_t P = geo.outPlane();
        const scalar_t* ptr = offset + 2 * row * P + p;
        opmath_t y, x;
        geo.tapPosition(row % geo.taps(), p, static_cast<opmath_t>(ptr[0]), static_cast<opmath_t>(ptr[P]), y, x);
        return locateSample(y, x, geo.height, geo.width, s);
    }

    __device__ __forceinline__ opmath_t maskAt(int64_t row, int64_t p) const {
        return mask ? static_cast<opmath_t>(mask[row * geo.outPlane() + p]) : opmath_t(1);
    }

    // Column element idx of im2col, in the order (c, k, b, p): consecutive
    // threads take consecutive p, so column writes and offset/mask reads coalesce.
    __device__ __forceinline__ void atomicEntry(int64_t idx, int64_t& b, int64_t& c, int64_t& row, int64_t& p) const {
        p = idx % geo.outPlane();
        int64_t t = idx / geo.outPlane();
        b = t % geo.batch;
        t /= geo.batch;
        const int64_t k = t % geo.taps();
        c = t / geo.taps();
        row = (b * groups + c / channels_per_group) * geo.taps() + k;
    }

    // The gradient arriving at read (b, c, row, p): grad_columns * mask.
    __device__ __forceinline__ opmath_t factor(int64_t b, int64_t c, int64_t row, int64_t p) const {
        const int64_t P = geo.outPlane();
        const int64_t k = row % geo.taps();
        opmath_t v = static_cast<opmath_t>(grad_columns[((c * geo.taps() + k) * geo.batch + b) * P + p]);
        if (mask)
            v *= maskAt(row, p);
        return v;
    }
};

template <typename scalar_t>
Conv2dSource<scalar_t> makeSource(const DeformGeometry& g, const at::Tensor& input, const at::Tensor& offset,
                                  const at::Tensor& mask, const at::Tensor* grad_columns) {
    return {g, g.offset_groups, g.channelsPerGroup(), dataOrNull<scalar_t>(&input), dataOrNull<scalar_t>(&offset),
            dataOrNull<scalar_t>(&mask, g.use_mask), dataOrNull<scalar_t>(grad_columns)};
}

// ---------------------------------------------------------------------------
// Forward: im2col. One thread per columns element; the linear index is
// ((c*K + k)*B + b)*P + p, exactly the element's offset in the [C*K, B*P]
// columns matrix.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    deformIm2colKernel(int64_t n, Conv2dSource<scalar_t> src, scalar_t* __restrict__ columns) {
    using opmath_t = at::opmath_type<scalar_t>;
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        int64_t b, c, row, p;
        src.atomicEntry(idx, b, c, row, p);
        opmath_t value = 0;
        BilinearPoint<opmath_t> s;
        if (src.imageRead(row, p, s)) {
            opmath_t v[4];
            cornerValues(src.input + (b * src.geo.channels + c) * src.geo.pixels(), s, src.geo.height,
                         src.geo.width, v);
            value = interpolate(s, v);
        }
        columns[idx] = static_cast<scalar_t>(value * src.maskAt(row, p));
    }
}

// ---------------------------------------------------------------------------
// Backward w.r.t. offset and mask. One thread per (row, p), linear index
// row*P + p. Each thread loops over the channels of group g in increasing order
// (fixed order, no atomics, hence deterministic); consecutive threads read
// consecutive p of a grad_columns row, so the grad_columns reads are coalesced.
// ---------------------------------------------------------------------------

template <typename scalar_t>
__global__ void __launch_bounds__(kThreadsPerBlock)
    deformOffsetMaskGradKernel(int64_t n, Conv2dSource<scalar_t> src, scalar_t* __restrict__ grad_offset,
                               scalar_t* __restrict__ grad_mask) {
    using opmath_t = at::opmath_type<scalar_t>;
    const DeformGeometry& geo = src.geo;
    const int64_t P = geo.outPlane();
    const int64_t columns_width = geo.batch * P; // B*P
    DEFORMSCOPE_CUDA_LOOP(idx, n) {
        const int64_t p = idx % P;
        const int64_t row = idx / P; // (b*G + g)*K + k
        const int64_t k = row % geo.taps();
        const int64_t bg = row / geo.taps(); // b*G + g
        const int64_t g = bg % src.groups;
        const int64_t b = bg / src.groups;

        opmath_t grad_y = 0;
        opmath_t grad_x = 0;
        opmath_t grad_m = 0;
        BilinearPoint<opmath_t> s;
        // Same boundary rule as forward: a zero read has zero gradient w.r.t.
        // its position and its mask, so the channel loop is skipped entirely.
        if (src.imageRead(row, p, s)) {
            const int64_t c_begin = g * src.channels_per_group;
            const int64_t c_end = c_begin + src.channels_per_group;
            const scalar_t* gcol = src.grad_columns + (c_begin * geo.taps() + k) * columns_width + b * P + p;
            const scalar_t* plane = src.input + (b * geo.channels + c_begin) * geo.pixels();
            for (int64_t c = c_begin; c < c_end; ++c) {
                const opmath_t grad_column = static_cast<opmath_t>(*gcol);
                opmath_t v[4];
                cornerValues(plane, s, geo.height, geo.width, v);
                opmath_t value, dvalue_dy, dvalue_dx;
                interpolateWithGrad(s, v, value, dvalue_dy, dvalue_dx);
                grad_y += grad_column * dvalue_dy;
                grad_x += grad_column * dvalue_dx;
                grad_m += grad_column * value;
                gcol += geo.taps() * columns_width; // next channel: row (c+1)*K + k
                plane += geo.pixels();
            }
        }
        // Every (row, p) is owned by exactly one thread: plain stores. The mask
        // scales the position gradient once, after the channel sum.
        const opmath_t mask_value = src.maskAt(row, p);
        scalar_t* go = grad_offset + 2 * row * P + p;
        go[0] = static_cast<scalar_t>(mask_value * grad_y);
        go[P] = static_cast<scalar_t>(mask_value * grad_x);
        if (grad_mask) {
            grad_mask[idx] = static_cast<scalar_t>(grad_m);
        }
    }
}

// ---------------------------------------------------------------------------
// Host entry points.
// ---------------------------------------------------------------------------

void im2colCuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                const DeformGeometry& geom, at::Tensor& columns) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    const int64_t n = geom.channels * geom.taps() * geom.batch * geom.outPlane();
    // offset_groups > channels only for geometry the driver rejects; bail out
    // rather than divide by zero on the device.
    if (n == 0 || geom.channelsPerGroup() == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_conv2d_im2col_cuda", [&] {
                                        deformIm2colKernel<scalar_t><<<gridFor(n), kThreadsPerBlock, 0, stream>>>(
                                            n, makeSource<scalar_t>(geom, input, offset, mask, nullptr),
                                            columns.mutable_data_ptr<scalar_t>());
                                        C10_CUDA_KERNEL_LAUNCH_CHECK();
                                    });
}

void columnsBackwardCuda(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                         const at::Tensor& mask, const DeformGeometry& geom, bool deterministic,
                         at::Tensor& grad_input, at::Tensor& grad_offset, at::Tensor& grad_mask) {
    const c10::cuda::CUDAGuard device_guard(input.device());
    // With no channels, taps, positions or images nothing is sampled and the
    // zero-filled outputs are already the answer.
    if (geom.batch * geom.channels * geom.taps() * geom.outPlane() == 0 || geom.pixels() == 0 ||
        geom.channelsPerGroup() == 0) {
        return;
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "deform_conv2d_columns_backward_cuda",
        [&] {
            const Conv2dSource<scalar_t> src = makeSource<scalar_t>(geom, input, offset, mask, &grad_columns);
            const int64_t samples = geom.batch * geom.offset_groups * geom.taps() * geom.outPlane();
            deformOffsetMaskGradKernel<scalar_t><<<gridFor(samples), kThreadsPerBlock, 0, stream>>>(
                samples, src, grad_offset.mutable_data_ptr<scalar_t>(),
                geom.use_mask ? grad_mask.mutable_data_ptr<scalar_t>() : nullptr);
            C10_CUDA_KERNEL_LAUNCH_CHECK();

            if (deterministic) {
                inputGradDeterministic(src, grad_input, stream);
            } else {
                // One thread per grad_columns element, in im2col's order.
                inputGradAtomic(src, grad_columns.numel(), grad_input, stream);
            }
        });
}

} // namespace

DeviceKernels cudaKernels() { return {&im2colCuda, &columnsBackwardCuda}; }

} // namespace deformscope::ops::detail
