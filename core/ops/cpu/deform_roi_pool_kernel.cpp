// CPU kernels for deform_roi_pool (see ../deform_roi_pool_kernels.h).
//
//   forward             one task per (RoI, channel): it owns that output plane
//   offset/mask grads   one task per RoI: for every bin it sums over the
//                       channels and the bin's reads in order
//   input gradient      one task per (image, channel): it owns that gradient
//                       plane and walks the image's RoIs in increasing index
// Every task owns what it writes, so every result is bit-identical for any
// thread count. A bin's reads are recomputed per channel (their number varies
// per RoI with an adaptive grid, so there is no fixed-size plan to share).
// Arithmetic in at::opmath_type<scalar_t> (float for Half/BFloat16).
#include "core/ops/deform_roi_pool_kernels.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <vector>

namespace deformscope::ops::detail {
namespace {


template <typename scalar_t>
void forwardTyped(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                  const RoiPoolGeometry& g, at::Tensor& output) {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* rp = rois.const_data_ptr<scalar_t>();
    const scalar_t* op = g.use_offset ? offset.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* mp = g.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* out = output.data_ptr<scalar_t>();
    const int64_t P = g.bins();

    at::parallel_for(0, g.rois * g.channels, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t k = task / g.channels;
            const int64_t c = task % g.channels;
            for (int64_t i = 0; i < g.pooled_h; ++i) {
                for (int64_t j = 0; j < g.pooled_w; ++j) {
                    const RoiBin<acc_t> bin = roiBin<acc_t>(g, rp, op, k, i, j);
                    const scalar_t* plane = in + (bin.image * g.channels + c) * g.pixels();
                    acc_t value = binSum(bin, plane, g) / bin.count;
                    if (mp)
                        value *= static_cast<acc_t>(mp[k * P + i * g.pooled_w + j]);
                    out[task * P + i * g.pooled_w + j] = static_cast<scalar_t>(value);
                }
            }
        }
    });
}

template <typename scalar_t>
void backwardTyped(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& rois,
                   const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& roi_order,
                   const at::Tensor& image_starts, const RoiPoolGeometry& g, at::Tensor& grad_input,
                   at::Tensor& grad_offset, at::Tensor& grad_mask) {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* rp = rois.const_data_ptr<scalar_t>();
    const scalar_t* op = g.use_offset ? offset.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* mp = g.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* gout = grad_output.const_data_ptr<scalar_t>();
    const int64_t P = g.bins();
    const int64_t HW = g.pixels();
    const int64_t C = g.channels;

    // Offset and mask gradients: one task per RoI.
    scalar_t* goff = g.use_offset ? grad_offset.data_ptr<scalar_t>() : nullptr;
    scalar_t* gmask = g.use_mask ? grad_mask.data_ptr<scalar_t>() : nullptr;
    if (goff || gmask) {
        at::parallel_for(0, g.rois, 1, [&](int64_t begin, int64_t end) {
            for (int64_t k = begin; k < end; ++k) {
                for (int64_t q = 0; q < P; ++q) {
                    const int64_t i = q / g.pooled_w, j = q % g.pooled_w;
                    const RoiBin<acc_t> bin = roiBin<acc_t>(g, rp, op, k, i, j);
                    const acc_t m = mp ? static_cast<acc_t>(mp[k * P + q]) : acc_t(1);
                    acc_t ay, ax, am;
                    roiBinGradients(bin, in, gout, g, k, q, ay, ax, am);
                    if (goff) {
                        // Channel 0 moves x, channel 1 moves y.
                        goff[2 * k * P + q] = static_cast<scalar_t>(ax * m / bin.count * bin.offset_scale_x);
                        goff[(2 * k + 1) * P + q] = static_cast<scalar_t>(ay * m / bin.count * bin.offset_scale_y);
                    }
                    if (gmask)
                        gmask[k * P + q] = static_cast<scalar_t>(am);
                }
            }
        });
    }

    // Input gradient: one task per (image, channel) over the image's RoIs in order.
    const int64_t* order = roi_order.const_data_ptr<int64_t>();
    const int64_t* starts = image_starts.const_data_ptr<int64_t>();
    scalar_t* gin = grad_input.data_ptr<scalar_t>();
    at::parallel_for(0, g.batch * C, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(static_cast<size_t>(HW));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / C;
            const int64_t c = task % C;
            if (starts[b] == starts[b + 1])
                continue; // no RoI on this image: the plane stays zero
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t n = starts[b]; n < starts[b + 1]; ++n) {
                const int64_t k = order[n];
                for (int64_t q = 0; q < P; ++q) {
                    const RoiBin<acc_t> bin = roiBin<acc_t>(g, rp, op, k, q / g.pooled_w, q % g.pooled_w);
                    const acc_t m = mp ? static_cast<acc_t>(mp[k * P + q]) : acc_t(1);
                    const acc_t factor = static_cast<acc_t>(gout[(k * C + c) * P + q]) * m / bin.count;
                    forEachRoiRead(bin, g, [&](const RoiRead<acc_t>& r) {
                        for (int corner = 0; corner < 4; ++corner)
                            acc[r.index(corner, g.width)] += r.weight(corner) * factor;
                    });
                }
            }
            scalar_t* dst = gin + task * HW;
            for (int64_t p = 0; p < HW; ++p)
                dst[p] = static_cast<scalar_t>(acc[p]);
        }
    });
}

void forwardCpu(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                const RoiPoolGeometry& g, at::Tensor& output) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_roi_pool_forward_cpu",
                                    [&] { forwardTyped<scalar_t>(input, rois, offset, mask, g, output); });
}

void backwardCpu(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& rois,
                 const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& roi_order,
                 const at::Tensor& image_starts, const RoiPoolGeometry& g, bool /*deterministic: always*/,
                 at::Tensor& grad_input, at::Tensor& grad_offset, at::Tensor& grad_mask) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_roi_pool_backward_cpu", [&] {
                                        backwardTyped<scalar_t>(grad_output, input, rois, offset, mask, roi_order,
                                                                image_starts, g, grad_input, grad_offset, grad_mask);
                                    });
}

} // namespace

RoiPoolKernels cpuRoiPoolKernels() {
    return {&forwardCpu, &backwardCpu};
}

} // namespace deformscope::ops::detail
