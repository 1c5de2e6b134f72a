// Device-agnostic half of deform_roi_pool: argument checks, the RoIs grouped by
// image for the input gradient, and the calls through the dispatcher. The
// kernels live in cpu/ and cuda/.
#include "core/ops/deform_roi_pool.h"

#include "core/ops/deform_conv2d.h"
#include "core/ops/deform_roi_pool_kernels.h"
#include "core/ops/op_support.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <vector>

namespace deformscope::ops {
namespace {

constexpr const char* kOp = "deform_roi_pool";

// An empty (or undefined) offset means no offsets: RoIAlign.
bool hasOffset(const at::Tensor& offset) {
    return offset.defined() && offset.numel() > 0;
}

// Every RoI's batch index, truncated as the kernels truncate it, must name an
// image: a wrong one would read another image's memory (mmcv does not check).
// On CUDA this reads two numbers back to the host.
void checkBatchIndices(const at::Tensor& rois, int64_t batch) {
    if (rois.size(0) == 0)
        return;
    const at::Tensor index = rois.select(1, 0).to(at::kDouble);
    const double lo = index.min().item<double>();
    const double hi = index.max().item<double>();
    // Written so that a NaN fails: truncation maps (-1, batch) onto [0, batch).
    TORCH_CHECK(lo > -1.0 && hi < static_cast<double>(batch), "deform_roi_pool: rois[:, 0] (the batch index) must lie in "
                "[0, N) = [0, ", batch, ") for input of batch N=", batch, ", got values from ", lo, " to ", hi);
}

// Validates every argument and returns the geometry.
detail::RoiPoolGeometry checkedGeometry(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                                        const at::Tensor& mask, const DeformRoiPoolParams& p) {
    using detail::shapeString;
    detail::checkInput(kOp, input);
    const bool useOffset = hasOffset(offset);
    detail::checkTensors(kOp, input, {{rois, "rois"}, {offset, "offset", useOffset}, {mask, "mask", p.use_mask}});

    TORCH_CHECK(p.pooled_height > 0 && p.pooled_width > 0,
                "deform_roi_pool: pooled size (pooled_height, pooled_width) must be positive, got (", p.pooled_height,
                ", ", p.pooled_width, ")");
    TORCH_CHECK(std::isfinite(p.spatial_scale) && p.spatial_scale > 0,
                "deform_roi_pool: spatial_scale must be positive and finite, got ", p.spatial_scale);
    TORCH_CHECK(std::isfinite(p.gamma), "deform_roi_pool: gamma must be finite, got ", p.gamma);
    TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5,
                "deform_roi_pool: rois must have shape [K, 5] (batch_index, x1, y1, x2, y2), got ",
                shapeString(rois.sizes().vec()));

    const int64_t K = rois.size(0);
    const std::vector<int64_t> binShape2 = {K, 2, p.pooled_height, p.pooled_width};
    const std::vector<int64_t> binShape1 = {K, 1, p.pooled_height, p.pooled_width};
    if (useOffset)
        detail::checkShape(kOp, offset, "offset", binShape2, "[K, 2, pooled_height, pooled_width]");
    if (p.use_mask)
        detail::checkShape(kOp, mask, "mask", binShape1, "[K, 1, pooled_height, pooled_width]");
    checkBatchIndices(rois, input.size(0));

    detail::RoiPoolGeometry g;
    g.batch = input.size(0);
    g.channels = input.size(1);
    g.height = input.size(2);
    g.width = input.size(3);
    g.rois = K;
    g.pooled_h = p.pooled_height;
    g.pooled_w = p.pooled_width;
    g.spatial_scale = p.spatial_scale;
    g.sampling_ratio = p.sampling_ratio;
    g.gamma = p.gamma;
    g.use_offset = useOffset;
    g.use_mask = p.use_mask;
    return g;
}

detail::RoiPoolKernels kernelsFor(const at::Device& device) {
    return detail::kernelsFor(kOp, device, &detail::cpuRoiPoolKernels,
                              DEFORMSCOPE_IF_CUDA(&detail::cudaRoiPoolKernels));
}

} // namespace

at::Tensor deformRoiPoolForwardImpl(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                                    const at::Tensor& mask, const DeformRoiPoolParams& p) {
    const detail::RoiPoolGeometry g = checkedGeometry(input, rois, offset, mask, p);
    at::Tensor out = at::empty({g.rois, g.channels, g.pooled_h, g.pooled_w}, input.options());
    if (out.numel() == 0)
        return out;
    if (g.pixels() == 0) {
        // Every read lies outside an empty feature map.
        out.zero_();
        return out;
    }
    const at::Tensor off = detail::contiguousOrPlaceholder(offset, input, g.use_offset);
    const at::Tensor msk = detail::contiguousOrPlaceholder(mask, input, g.use_mask);
    kernelsFor(input.device()).forward(input.contiguous(), rois.contiguous(), off, msk, g, out);
    return out;
}

DeformRoiPoolGrads deformRoiPoolBackwardImpl(const at::Tensor& grad_output, const at::Tensor& input,
                                             const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                                             const DeformRoiPoolParams& p) {
    const detail::RoiPoolGeometry g = checkedGeometry(input, rois, offset, mask, p);
    detail::checkGradOutput(kOp, grad_output, input, {g.rois, g.channels, g.pooled_h, g.pooled_w},
                            "[K, C, pooled_height, pooled_width]");

    const at::Tensor in = input.contiguous();
    const at::Tensor r = rois.contiguous();
    const at::Tensor off = detail::contiguousOrPlaceholder(offset, input, g.use_offset);
    const at::Tensor msk = detail::contiguousOrPlaceholder(mask, input, g.use_mask);
    const at::Tensor gout = grad_output.contiguous();

    at::Tensor grad_input = at::zeros_like(in);
    // Without offsets or a mask the gradient has the shape of whatever placeholder was passed.
    at::Tensor grad_offset = g.use_offset ? at::zeros_like(off) : at::zeros_like(detail::orEmpty(offset, input));
    at::Tensor grad_mask = g.use_mask ? at::zeros_like(msk) : at::zeros_like(detail::orEmpty(mask, input));
    if (gout.numel() == 0 || g.pixels() == 0)
        return {grad_input, grad_offset, grad_mask};

    // The RoIs grouped by image (stable: increasing RoI index within an image),
    // so that the input gradient of each image can be summed in a fixed order.
    const at::Tensor image = r.select(1, 0).to(at::kLong); // truncation, as the kernels' conversion
    const at::Tensor order = std::get<1>(at::sort(image, /*stable=*/true, /*dim=*/0, /*descending=*/false));
    const at::Tensor starts =
        at::searchsorted(image.index_select(0, order), at::arange(g.batch + 1, image.options()),
                         /*out_int32=*/false, /*right=*/false);

    kernelsFor(input.device())
        .backward(gout, in, r, off, msk, order.contiguous(), starts.contiguous(), g, deterministicBackwardInEffect(),
                  grad_input, grad_offset, grad_mask);
    return {grad_input, grad_offset, grad_mask};
}

namespace {

using ForwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                              int64_t, double, int64_t, double, bool);
using BackwardSig = DeformRoiPoolGrads(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                       const at::Tensor&, int64_t, int64_t, double, int64_t, double, bool);

} // namespace

at::Tensor deformRoiPool(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                         const at::Tensor& mask, const DeformRoiPoolParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::deform_roi_pool", "")
                               .typed<ForwardSig>();
    TORCH_CHECK(input.defined(), "deform_roi_pool: input is an undefined tensor");
    return op.call(input, rois, detail::orEmpty(offset, input), detail::orEmpty(mask, input), p.pooled_height,
                   p.pooled_width, p.spatial_scale, p.sampling_ratio, p.gamma, p.use_mask);
}

DeformRoiPoolGrads deformRoiPoolBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                                         const DeformRoiPoolParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::_deform_roi_pool_backward", "")
                               .typed<BackwardSig>();
    TORCH_CHECK(input.defined(), "deform_roi_pool: input is an undefined tensor");
    return op.call(grad_output, input, rois, detail::orEmpty(offset, input), detail::orEmpty(mask, input),
                   p.pooled_height, p.pooled_width, p.spatial_scale, p.sampling_ratio, p.gamma, p.use_mask);
}

} // namespace deformscope::ops
