// Device-agnostic half of deform_kernel2d: argument checks, chunking of the
// batch and the bias. The sampling kernels live in cpu/ and cuda/.
#include "core/ops/deform_kernel2d.h"

#include "core/ops/deform_conv2d.h"
#include "core/ops/deform_kernel2d_kernels.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace deformscope::ops {
namespace {

std::string shapeString(const std::vector<int64_t>& dims) {
    std::ostringstream s;
    s << '[';
    for (size_t i = 0; i < dims.size(); ++i)
        s << (i ? ", " : "") << dims[i];
    s << ']';
    return s.str();
}

void checkShape(const at::Tensor& t, const char* name, const std::vector<int64_t>& expected, const char* layout) {
    TORCH_CHECK(t.sizes().vec() == expected, "deform_kernel2d: ", name, " must have shape ", layout, " = ",
                shapeString(expected), ", got ", shapeString(t.sizes().vec()));
}

void checkTensor(const at::Tensor& t, const char* name, const at::Tensor& input) {
    TORCH_CHECK(t.defined(), "deform_kernel2d: ", name, " is an undefined tensor");
    TORCH_CHECK(t.device() == input.device(), "deform_kernel2d: ", name, " is on ", t.device(), " but input is on ",
                input.device(), "; all tensors must be on one device");
    TORCH_CHECK(t.scalar_type() == input.scalar_type(), "deform_kernel2d: ", name, " has dtype ", t.scalar_type(),
                " but input has dtype ", input.scalar_type(), "; all tensors must have one floating-point dtype");
}

bool hasBias(const at::Tensor& bias) {
    return bias.defined() && bias.numel() > 0;
}

// Validates every argument and returns the full-batch geometry.
detail::DeformKernelGeometry checkedGeometry(const at::Tensor& input, const at::Tensor& weight,
                                             const at::Tensor& kernel_offset, const at::Tensor& offset,
                                             const at::Tensor& bias, const DeformKernel2dParams& p) {
    TORCH_CHECK(input.defined(), "deform_kernel2d: input is an undefined tensor");
    TORCH_CHECK(at::isFloatingType(input.scalar_type()),
                "deform_kernel2d: input must be a floating-point tensor, got dtype ", input.scalar_type());
    TORCH_CHECK(input.dim() == 4, "deform_kernel2d: input must be 4-D [N, C, H, W], got shape ",
                shapeString(input.sizes().vec()));
    checkTensor(weight, "weight", input);
    checkTensor(kernel_offset, "kernel_offset", input);
    if (p.use_offset)
        checkTensor(offset, "offset", input);
    if (hasBias(bias))
        checkTensor(bias, "bias", input);

    TORCH_CHECK(p.kernel_h > 0 && p.kernel_w > 0, "deform_kernel2d: kernel size must be positive, got (",
                p.kernel_h, ", ", p.kernel_w, ")");
    TORCH_CHECK(p.stride_h > 0 && p.stride_w > 0, "deform_kernel2d: stride must be positive, got (", p.stride_h,
                ", ", p.stride_w, ")");
    TORCH_CHECK(p.dilation_h > 0 && p.dilation_w > 0, "deform_kernel2d: dilation must be positive, got (",
                p.dilation_h, ", ", p.dilation_w, ")");
    TORCH_CHECK(p.pad_h >= 0 && p.pad_w >= 0, "deform_kernel2d: padding must be non-negative, got (", p.pad_h,
                ", ", p.pad_w, ")");

    const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
    TORCH_CHECK(weight.dim() == 4, "deform_kernel2d: weight must be 4-D [C, 1, Sh, Sw] (a depthwise scope kernel), "
                "got shape ", shapeString(weight.sizes().vec()));
    TORCH_CHECK(weight.size(1) == 1, "deform_kernel2d: weight must be depthwise [C, 1, Sh, Sw], got shape ",
                shapeString(weight.sizes().vec()), " (", weight.size(1), " input channels per kernel, expected 1)");
    TORCH_CHECK(weight.size(0) == C, "deform_kernel2d: weight has ", weight.size(0), " kernels but input has C=", C,
                " channels; the operator is depthwise, one scope kernel per channel");
    const int64_t Sh = weight.size(2), Sw = weight.size(3);
    TORCH_CHECK(Sh >= p.kernel_h && Sw >= p.kernel_w, "deform_kernel2d: the scope kernel ", Sh, " x ", Sw,
                " (weight's last two dims) is smaller than the kernel size ", p.kernel_h, " x ", p.kernel_w);

    const int64_t Ho = (H + 2 * p.pad_h - (p.dilation_h * (p.kernel_h - 1) + 1)) / p.stride_h + 1;
    const int64_t Wo = (W + 2 * p.pad_w - (p.dilation_w * (p.kernel_w - 1) + 1)) / p.stride_w + 1;
    TORCH_CHECK(Ho > 0 && Wo > 0, "deform_kernel2d: output would be empty (", Ho, " x ", Wo, ") for input ", H,
                " x ", W, ", kernel ", p.kernel_h, " x ", p.kernel_w, ", padding (", p.pad_h, ", ", p.pad_w,
                "), dilation (", p.dilation_h, ", ", p.dilation_w, "), stride (", p.stride_h, ", ", p.stride_w, ")");

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
        checkShape(offset, "offset", local, "[N, 2*kh*kw, Ho, Wo]");
    }
    if (hasBias(bias))
        checkShape(bias, "bias", {C}, "[C]");

    detail::DeformKernelGeometry g;
    g.batch = N;
    g.channels = C;
    g.height = H;
    g.width = W;
    g.out_h = Ho;
    g.out_w = Wo;
    g.kernel_h = p.kernel_h;
    g.kernel_w = p.kernel_w;
    g.scope_h = Sh;
    g.scope_w = Sw;
    g.stride_h = p.stride_h;
    g.stride_w = p.stride_w;
    g.pad_h = p.pad_h;
    g.pad_w = p.pad_w;
    g.dilation_h = p.dilation_h;
    g.dilation_w = p.dilation_w;
    g.local_kernel = ko == local; // a 1x1 output is both; treat it as local
    g.use_offset = p.use_offset;
    return g;
}

detail::DeformKernelKernels kernelsFor(const at::Device& device) {
    if (device.is_cpu())
        return detail::cpuDeformKernelKernels();
#ifdef DEFORMSCOPE_WITH_CUDA
    if (device.is_cuda())
        return detail::cudaDeformKernelKernels();
    constexpr const char* kBuilt = "cpu, cuda";
#else
    constexpr const char* kBuilt = "cpu (built without CUDA)";
#endif
    TORCH_CHECK(false, "deform_kernel2d: no kernel for device ", device, "; this build supports ", kBuilt);
}

// Images per chunk: as many as keep the per-sample scratch (the CPU's sampling
// plans, the CUDA backward's sort keys) under a fixed number of (image, tap,
// position) samples, at least one.
int64_t imagesPerChunk(const detail::DeformKernelGeometry& g, const at::Device& device) {
    const int64_t budget = device.is_cpu() ? (int64_t{1} << 18) : (int64_t{1} << 22);
    const int64_t perImage = std::max<int64_t>(1, g.taps() * g.outPlane());
    return std::max<int64_t>(1, std::min<int64_t>(g.batch, budget / perImage));
}

// Without image offsets the kernels never read `offset`; an empty tensor keeps pointers valid.
at::Tensor offsetOrPlaceholder(const at::Tensor& offset, const at::Tensor& input, bool use_offset) {
    return use_offset ? offset.contiguous() : at::empty({0}, input.options());
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
        const at::Tensor off = offsetOrPlaceholder(offset, input, p.use_offset);
        const int64_t step = imagesPerChunk(g, input.device());
        for (int64_t n0 = 0; n0 < g.batch; n0 += step) {
            detail::DeformKernelGeometry c = g;
            c.batch = std::min(step, g.batch - n0);
            at::Tensor o = out.narrow(0, n0, c.batch);
            kernels.forward(in.narrow(0, n0, c.batch), w, ko.narrow(0, n0, c.batch),
                            p.use_offset ? off.narrow(0, n0, c.batch) : off, c, o);
        }
    }
    if (hasBias(bias))
        out.add_(bias.view({1, g.channels, 1, 1}));
    return out;
}

DeformKernel2dGrads deformKernel2dBackwardImpl(const at::Tensor& grad_output, const at::Tensor& input,
                                               const at::Tensor& weight, const at::Tensor& kernel_offset,
                                               const at::Tensor& offset, const at::Tensor& bias,
                                               const DeformKernel2dParams& p) {
    const detail::DeformKernelGeometry g = checkedGeometry(input, weight, kernel_offset, offset, bias, p);
    checkTensor(grad_output, "grad_output", input);
    checkShape(grad_output, "grad_output", {g.batch, g.channels, g.out_h, g.out_w}, "[N, C, Ho, Wo]");

    const at::Tensor in = input.contiguous();
    const at::Tensor w = weight.contiguous();
    const at::Tensor ko = kernel_offset.contiguous();
    const at::Tensor off = offsetOrPlaceholder(offset, input, p.use_offset);
    const at::Tensor gout = grad_output.contiguous();

    at::Tensor grad_input = at::zeros_like(in);
    at::Tensor grad_weight = at::zeros_like(w);
    at::Tensor grad_kernel_offset = at::zeros_like(ko);
    // Without image offsets the gradient has the shape of whatever placeholder was passed.
    at::Tensor grad_offset = p.use_offset ? at::zeros_like(off) : at::zeros_like(offset);
    at::Tensor grad_bias = hasBias(bias) ? gout.sum({0, 2, 3}) : at::zeros_like(bias);
    if (gout.numel() == 0 || g.height * g.width == 0)
        return {grad_input, grad_weight, grad_kernel_offset, grad_offset, grad_bias};

    const auto kernels = kernelsFor(input.device());
    const bool deterministic = deterministicBackwardInEffect();
    const int64_t step = imagesPerChunk(g, input.device());
    for (int64_t n0 = 0; n0 < g.batch; n0 += step) {
        detail::DeformKernelGeometry c = g;
        c.batch = std::min(step, g.batch - n0);
        at::Tensor gi = grad_input.narrow(0, n0, c.batch);
        at::Tensor gko = grad_kernel_offset.narrow(0, n0, c.batch);
        at::Tensor goff = p.use_offset ? grad_offset.narrow(0, n0, c.batch) : grad_offset;
        kernels.backward(gout.narrow(0, n0, c.batch), in.narrow(0, n0, c.batch), w, ko.narrow(0, n0, c.batch),
                         p.use_offset ? off.narrow(0, n0, c.batch) : off, c, deterministic, gi, grad_weight, gko,
                         goff);
    }
    return {grad_input, grad_weight, grad_kernel_offset, grad_offset, grad_bias};
}

namespace {

using ForwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const at::Tensor&, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                              int64_t, bool);
using BackwardSig = DeformKernel2dGrads(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, bool);

at::Tensor orEmpty(const at::Tensor& t, const at::Tensor& input) {
    return t.defined() ? t : at::empty({0}, input.options());
}

} // namespace

at::Tensor deformKernel2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                          const at::Tensor& offset, const at::Tensor& bias, const DeformKernel2dParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::deform_kernel2d", "")
                               .typed<ForwardSig>();
    TORCH_CHECK(input.defined(), "deform_kernel2d: input is an undefined tensor");
    return op.call(input, weight, kernel_offset, orEmpty(offset, input), orEmpty(bias, input), p.stride_h,
                   p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.kernel_h, p.kernel_w, p.use_offset);
}

DeformKernel2dGrads deformKernel2dBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                           const at::Tensor& weight, const at::Tensor& kernel_offset,
                                           const at::Tensor& offset, const at::Tensor& bias,
                                           const DeformKernel2dParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::_deform_kernel2d_backward", "")
                               .typed<BackwardSig>();
    TORCH_CHECK(input.defined(), "deform_kernel2d: input is an undefined tensor");
    return op.call(grad_output, input, weight, kernel_offset, orEmpty(offset, input), orEmpty(bias, input),
                   p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.kernel_h, p.kernel_w,
                   p.use_offset);
}

} // namespace deformscope::ops
