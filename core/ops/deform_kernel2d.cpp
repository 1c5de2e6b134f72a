// Device-agnostic half of deform_kernel2d: argument checks, chunking of the
// batch and the bias. The sampling kernels live in cpu/ and cuda/.
#include "core/ops/deform_kernel2d.h"

#include "core/ops/deform_conv2d.h"
#include "core/ops/deform_kernel2d_kernels.h"
#include "core/ops/op_support.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <vector>

namespace deformscope::ops {
namespace {

constexpr const char* kOp = "deform_kernel2d";

// Validates every argument and returns the full-batch geometry.
detail::DeformKernelGeometry checkedGeometry(const at::Tensor& input, const at::Tensor& weight,
                                             const at::Tensor& kernel_offset, const at::Tensor& offset,
                                             const at::Tensor& bias, const DeformKernel2dParams& p) {
    using detail::shapeString;
    detail::checkInput(kOp, input);
    detail::checkTensors(kOp, input,
                         {{weight, "weight"}, {kernel_offset, "kernel_offset"}, {offset, "offset", p.use_offset},
                          {bias, "bias", detail::hasBias(bias)}});

    TORCH_CHECK(p.kernel_h > 0 && p.kernel_w > 0, "deform_kernel2d: kernel size must be positive, got (",
                p.kernel_h, ", ", p.kernel_w, ")");
    detail::checkWindow(kOp, p);

    const int64_t N = input.size(0), C = input.size(1);
    TORCH_CHECK(weight.dim() == 4, "deform_kernel2d: weight must be 4-D [C, 1, Sh, Sw] (a depthwise scope kernel), "
                "got shape ", shapeString(weight.sizes().vec()));
    TORCH_CHECK(weight.size(1) == 1, "deform_kernel2d: weight must be depthwise [C, 1, Sh, Sw], got shape ",
                shapeString(weight.sizes().vec()), " (", weight.size(1), " input channels per kernel, expected 1)");
    TORCH_CHECK(weight.size(0) == C, "deform_kernel2d: weight has ", weight.size(0), " kernels but input has C=", C,
                " channels; the operator is depthwise, one scope kernel per channel");
    const int64_t Sh = weight.size(2), Sw = weight.size(3);
    TORCH_CHECK(Sh >= p.kernel_h && Sw >= p.kernel_w, "deform_kernel2d: the scope kernel ", Sh, " x ", Sw,
                " (weight's last two dims) is smaller than the kernel size ", p.kernel_h, " x ", p.kernel_w);

    detail::DeformKernelGeometry g;
    static_cast<detail::SamplingGrid&>(g) =
        detail::convolutionGrid(kOp, input, p.kernel_h, p.kernel_w, p);
    const int64_t Ho = g.out_h, Wo = g.out_w;

    const int64_t K = p.kernel_h * p.kernel_w;
    const std::vector<int64_t> local = {N, 2 * K, Ho, Wo};
    const std::vector<int64_t> global = {N, 2 * K, 1, 1};
    const std::vector<int64_t> ko = kernel_offset.sizes().vec();
    TORCH_CHECK(ko == local || ko == global, "deform_kernel2d: kernel_offset must have shape [N, 2*kh*kw, Ho, Wo] = ",
                shapeString(local), " (local: one kernel per position) or [N, 2*kh*kw, 1, 1] = ", shapeString(global),
                " (global: one kernel per image), got ", shapeString(ko));
    if (p.use_offset) {
        if (offset.dim() == 4)
            TORCH_CHECK(offset.size(0) == N, "deform_kernel2d: offset has batch ", offset.size(0),
                        " but input has batch ", N);
        detail::checkShape(kOp, offset, "offset", local, "[N, 2*kh*kw, Ho, Wo]");
    }
    if (detail::hasBias(bias))
        detail::checkShape(kOp, bias, "bias", {C}, "[C]");

    g.scope_h = Sh;
    g.scope_w = Sw;
    g.local_kernel = ko == local; // a 1x1 output is both; treat it as local
    g.use_offset = p.use_offset;
    return g;
}

detail::DeformKernelKernels kernelsFor(const at::Device& device) {
    return detail::kernelsFor(kOp, device, &detail::cpuDeformKernelKernels,
                              DEFORMSCOPE_IF_CUDA(&detail::cudaDeformKernelKernels));
}

// Images per chunk: as many as keep the per-sample scratch (the CPU's sampling
// plans, the CUDA backward's sort keys) under a fixed number of (image, tap,
// position) samples, at least one.
int64_t imagesPerChunk(const detail::DeformKernelGeometry& g, const at::Device& device) {
    const int64_t budget = device.is_cpu() ? (int64_t{1} << 18) : (int64_t{1} << 22);
    return detail::imagesPerChunk(g.batch, g.taps() * g.outPlane(), budget);
}

} // namespace

at::Tensor deformKernel2dForwardImpl(const at::Tensor& input, const at::Tensor& weight,
                                     const at::Tensor& kernel_offset, const at::Tensor& offset,
                                     const at::Tensor& bias, const DeformKernel2dParams& p) {
    const detail::DeformKernelGeometry g = checkedGeometry(input, weight, kernel_offset, offset, bias, p);
    at::Tensor out = at::empty({g.batch, g.channels, g.out_h, g.out_w}, input.options());
    if (out.numel() == 0)
        return out;
    if (g.height * g.width == 0) {
        // Every sample lies outside an empty image.
        out.zero_();
    } else {
        const auto kernels = kernelsFor(input.device());
        const at::Tensor in = input.contiguous();
        const at::Tensor w = weight.contiguous();
        const at::Tensor ko = kernel_offset.contiguous();
        const at::Tensor off = detail::contiguousOrPlaceholder(offset, input, p.use_offset);
        const int64_t step = imagesPerChunk(g, input.device());
        detail::forEachChunk(g, step, [&](int64_t n0, const detail::DeformKernelGeometry& c) {
            at::Tensor o = out.narrow(0, n0, c.batch);
            kernels.forward(in.narrow(0, n0, c.batch), w, ko.narrow(0, n0, c.batch),
                            p.use_offset ? off.narrow(0, n0, c.batch) : off, c, o);
        });
    }
    detail::addBias(out, bias);
    return out;
}

DeformKernel2dGrads deformKernel2dBackwardImpl(const at::Tensor& grad_output, const at::Tensor& input,
                                               const at::Tensor& weight, const at::Tensor& kernel_offset,
                                               const at::Tensor& offset, const at::Tensor& bias,
                                               const DeformKernel2dParams& p) {
    const detail::DeformKernelGeometry g = checkedGeometry(input, weight, kernel_offset, offset, bias, p);
    detail::checkGradOutput(kOp, grad_output, input, {g.batch, g.channels, g.out_h, g.out_w}, "[N, C, Ho, Wo]");

    const at::Tensor in = input.contiguous();
    const at::Tensor w = weight.contiguous();
    const at::Tensor ko = kernel_offset.contiguous();
    const at::Tensor off = detail::contiguousOrPlaceholder(offset, input, p.use_offset);
    const at::Tensor gout = grad_output.contiguous();

    at::Tensor grad_input = at::zeros_like(in);
    at::Tensor grad_weight = at::zeros_like(w);
    at::Tensor grad_kernel_offset = at::zeros_like(ko);
    // Without image offsets the gradient has the shape of whatever placeholder was passed.
    at::Tensor grad_offset = p.use_offset ? at::zeros_like(off) : at::zeros_like(offset);
    // No weight or bias gradient wanted (ParameterGradsUnneeded, e.g. an ERF): zeros, and the
    // CPU kernel skips the scope kernel's gradient.
    const bool parameters = !detail::ParameterGradsUnneeded::active();
    at::Tensor grad_bias = parameters || !bias.defined() ? detail::biasGrad(gout, bias) : at::zeros_like(bias);
    if (gout.numel() == 0 || g.height * g.width == 0)
        return {grad_input, grad_weight, grad_kernel_offset, grad_offset, grad_bias};

    const auto kernels = kernelsFor(input.device());
    const bool deterministic = deterministicBackwardInEffect();
    const int64_t step = imagesPerChunk(g, input.device());
    detail::forEachChunk(g, step, [&](int64_t n0, const detail::DeformKernelGeometry& c) {
        at::Tensor gi = grad_input.narrow(0, n0, c.batch);
        at::Tensor gko = grad_kernel_offset.narrow(0, n0, c.batch);
        at::Tensor goff = p.use_offset ? grad_offset.narrow(0, n0, c.batch) : grad_offset;
        kernels.backward(gout.narrow(0, n0, c.batch), in.narrow(0, n0, c.batch), w, ko.narrow(0, n0, c.batch),
                         p.use_offset ? off.narrow(0, n0, c.batch) : off, c, deterministic, gi, grad_weight, gko,
                         goff);
    });
    return {grad_input, grad_weight, grad_kernel_offset, grad_offset, grad_bias};
}

namespace {

using ForwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const at::Tensor&, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                              int64_t, bool);
using BackwardSig = DeformKernel2dGrads(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, bool);

} // namespace

at::Tensor deformKernel2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                          const at::Tensor& offset, const at::Tensor& bias, const DeformKernel2dParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::deform_kernel2d", "")
                               .typed<ForwardSig>();
    TORCH_CHECK(input.defined(), "deform_kernel2d: input is an undefined tensor");
    return op.call(input, weight, kernel_offset, detail::orEmpty(offset, input), detail::orEmpty(bias, input),
                   p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.kernel_h, p.kernel_w,
                   p.use_offset);
}

DeformKernel2dGrads deformKernel2dBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                           const at::Tensor& weight, const at::Tensor& kernel_offset,
                                           const at::Tensor& offset, const at::Tensor& bias,
                                           const DeformKernel2dParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::_deform_kernel2d_backward", "")
                               .typed<BackwardSig>();
    TORCH_CHECK(input.defined(), "deform_kernel2d: input is an undefined tensor");
    return op.call(grad_output, input, weight, kernel_offset, detail::orEmpty(offset, input),
                   detail::orEmpty(bias, input), p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w,
                   p.kernel_h, p.kernel_w, p.use_offset);
}

} // namespace deformscope::ops
