// CPU sampling kernels for deform_conv2d (see ../deform_conv2d_kernels.h).
//
// Both kernels first build the chunk's image sampling plan (sampling_plan.h):
// for every (image, offset group, tap, output position) the four bilinear
// corners of its sample, boundary rule applied. Every channel of the offset
// group reuses that plan, so the per-channel work is 4 loads and 4 multiply-adds.
#include "core/ops/cpu/sampling_plan.h"
#include "core/ops/deform_conv2d_kernels.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <vector>

namespace deformscope::ops::detail {
namespace {

// Plan rows are (b*G + g)*K + k, the same numbering as offset's and mask's channels.
template <typename scalar_t, typename acc_t>
SamplingPlan<acc_t> conv2dPlan(const at::Tensor& offset, const DeformGeometry& g) {
    return imagePlan<scalar_t, acc_t>(offset.const_data_ptr<scalar_t>(), g.batch * g.offset_groups * g.taps(), g);
}

template <typename scalar_t>
void im2colTyped(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                 const DeformGeometry& g, at::Tensor& columns) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const int64_t HW = g.pixels();
    const int64_t cols = g.batch * P;

    const auto plan = conv2dPlan<scalar_t, acc_t>(offset, g);
    const scalar_t* msk = g.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* col = columns.data_ptr<scalar_t>();

    // One task per (channel, image): it writes the K rows of that channel for that image.
    at::parallel_for(0, g.channels * g.batch, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t c = task / g.batch;
            const int64_t b = task % g.batch;
            const int64_t grp = c / g.channelsPerGroup();
            const scalar_t* plane = in + (b * g.channels + c) * HW;
            for (int64_t k = 0; k < K; ++k) {
                const int64_t row = (b * g.offset_groups + grp) * K + k;
                const BilinearCorners<acc_t>* s = plan.data() + row * P;
                const scalar_t* m = msk ? msk + row * P : nullptr;
                scalar_t* dst = col + (c * K + k) * cols + b * P;
                for (int64_t p = 0; p < P; ++p) {
                    acc_t v = s[p].value(plane);
                    if (m)
                        v *= acc_t(m[p]);
                    dst[p] = static_cast<scalar_t>(v);
                }
            }
        }
    });
}

template <typename scalar_t>
void columnsBackwardTyped(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                          const at::Tensor& mask, const DeformGeometry& g, at::Tensor& grad_input,
                          at::Tensor& grad_offset, at::Tensor& grad_mask) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const int64_t HW = g.pixels();
    const int64_t G = g.offset_groups;
    const int64_t channels_per_group = g.channelsPerGroup();
    const int64_t cols = g.batch * P;

    const auto plan = conv2dPlan<scalar_t, acc_t>(offset, g);
    const scalar_t* msk = g.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* gcol = grad_columns.const_data_ptr<scalar_t>();

    // grad_input: the read (b, c, k, p) receives grad_columns * mask.
    scatterInputGrad<scalar_t, acc_t>(
        plan, g, G,
        [&](int64_t b, int64_t c, int64_t k) {
            const scalar_t* src = gcol + (c * K + k) * cols + b * P;
            const scalar_t* m = msk ? msk + ((b * G + c / channels_per_group) * K + k) * P : nullptr;
            return [src, m](int64_t p) {
                acc_t v = acc_t(src[p]);
                if (m)
                    v *= acc_t(m[p]);
                return v;
            };
        },
        grad_input.data_ptr<scalar_t>());

    // grad_offset / grad_mask: one task per (image, group, tap, block of
    // positions) sums over the group's channels in a fixed order.
    scalar_t* goff = grad_offset.data_ptr<scalar_t>();
    scalar_t* gmask = g.use_mask ? grad_mask.data_ptr<scalar_t>() : nullptr;
    forPositionBlocks<acc_t, 3>(g.batch * G * K, P, [&](int64_t row, int64_t p0, int64_t n, auto& scratch) {
        // row = (b*G + grp)*K + k
        acc_t* ay = scratch[0].data();
        acc_t* ax = scratch[1].data();
        acc_t* am = scratch[2].data();
        const int64_t k = row % K;
        const int64_t bg = row / K;
        const int64_t b = bg / G;
        const int64_t grp = bg % G;
        const BilinearCorners<acc_t>* s = plan.data() + row * P + p0;
        for (int64_t c = grp * channels_per_group; c < (grp + 1) * channels_per_group; ++c) {
            const scalar_t* plane = in + (b * g.channels + c) * HW;
            const scalar_t* src = gcol + (c * K + k) * cols + b * P + p0;
            for (int64_t q = 0; q < n; ++q) {
                // Positions the gradient does not reach (most of them, for one node's
                // gradient) contribute nothing: their bilinear reads are skipped.
                const acc_t gc = acc_t(src[q]);
                if (gc == acc_t(0))
                    continue;
                acc_t v, dy, dx;
                s[q].valueWithGrad(plane, v, dy, dx);
                ay[q] += gc * dy;
                ax[q] += gc * dx;
                am[q] += gc * v;
            }
        }
        const scalar_t* m = msk ? msk + row * P + p0 : nullptr;
        scalar_t* gy = goff + 2 * row * P + p0;
        scalar_t* gx = gy + P;
        for (int64_t q = 0; q < n; ++q) {
            const acc_t scale = m ? acc_t(m[q]) : acc_t(1);
            gy[q] = static_cast<scalar_t>(scale * ay[q]);
            gx[q] = static_cast<scalar_t>(scale * ax[q]);
        }
        if (gmask) {
            scalar_t* gm = gmask + row * P + p0;
            for (int64_t q = 0; q < n; ++q)
                gm[q] = static_cast<scalar_t>(am[q]);
        }
    });
}

void im2colCpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const DeformGeometry& g,
               at::Tensor& columns) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_conv2d_im2col_cpu",
                                    [&] { im2colTyped<scalar_t>(input, offset, mask, g, columns); });
}

void columnsBackwardCpu(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                        const at::Tensor& mask, const DeformGeometry& g, bool /*deterministic: always*/,
                        at::Tensor& grad_input, at::Tensor& grad_offset, at::Tensor& grad_mask) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_conv2d_columns_backward_cpu", [&] {
                                        columnsBackwardTyped<scalar_t>(grad_columns, input, offset, mask, g,
                                                                       grad_input, grad_offset, grad_mask);
                                    });
}

} // namespace

DeviceKernels cpuKernels() {
    return {&im2colCpu, &columnsBackwardCpu};
}

} // namespace deformscope::ops::detail
