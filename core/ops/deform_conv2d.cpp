// Device-agnostic half of deform_conv2d: argument checks, chunking of the batch,
// and the GEMMs. The sampling kernels live in cpu/ and cuda/.
#include "core/ops/deform_conv2d.h"

#include "core/ops/deform_conv2d_kernels.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <string>
#include <vector>

namespace deformscope::ops {
namespace {

std::atomic<BackwardMode> g_backwardMode{BackwardMode::Deterministic};

std::string shapeString(const std::vector<int64_t>& dims) {
    std::ostringstream s;
    s << '[';
    for (size_t i = 0; i < dims.size(); ++i)
        s << (i ? ", " : "") << dims[i];
    s << ']';
    return s.str();
}

// Checks that `t` has exactly `expected` as shape; `layout` names the dims.
void checkShape(const at::Tensor& t, const char* name, const std::vector<int64_t>& expected, const char* layout) {
    TORCH_CHECK(t.sizes().vec() == expected, "deform_conv2d: ", name, " must have shape ", layout, " = ",
                shapeString(expected), ", got ", shapeString(t.sizes().vec()));
}

void checkTensor(const at::Tensor& t, const char* name, const at::Tensor& input) {
    TORCH_CHECK(t.defined(), "deform_conv2d: ", name, " is an undefined tensor");
    TORCH_CHECK(t.device() == input.device(), "deform_conv2d: ", name, " is on ", t.device(), " but input is on ",
                input.device(), "; all tensors must be on one device");
    TORCH_CHECK(t.scalar_type() == input.scalar_type(), "deform_conv2d: ", name, " has dtype ", t.scalar_type(),
                " but input has dtype ", input.scalar_type(), "; all tensors must have one floating-point dtype");
}

// Validates every argument and returns the full-batch geometry.
detail::DeformGeometry checkedGeometry(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                                       const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p) {
    TORCH_CHECK(input.defined(), "deform_conv2d: input is an undefined tensor");
    TORCH_CHECK(at::isFloatingType(input.scalar_type()), "deform_conv2d: input must be a floating-point tensor, got dtype ",
                input.scalar_type());
    TORCH_CHECK(input.dim() == 4, "deform_conv2d: input must be 4-D [N, C, H, W], got shape ",
                shapeString(input.sizes().vec()));
    checkTensor(weight, "weight", input);
    checkTensor(offset, "offset", input);
    if (p.use_mask)
        checkTensor(mask, "mask", input);
    if (bias.defined() && bias.numel() > 0)
        checkTensor(bias, "bias", input);

    TORCH_CHECK(p.stride_h > 0 && p.stride_w > 0, "deform_conv2d: stride must be positive, got (", p.stride_h, ", ",
                p.stride_w, ")");
    TORCH_CHECK(p.dilation_h > 0 && p.dilation_w > 0, "deform_conv2d: dilation must be positive, got (",
                p.dilation_h, ", ", p.dilation_w, ")");
    TORCH_CHECK(p.pad_h >= 0 && p.pad_w >= 0, "deform_conv2d: padding must be non-negative, got (", p.pad_h, ", ",
                p.pad_w, ")");
    TORCH_CHECK(p.groups > 0, "deform_conv2d: groups must be positive, got ", p.groups);
    TORCH_CHECK(p.offset_groups > 0, "deform_conv2d: offset_groups must be positive, got ", p.offset_groups);

    const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
    TORCH_CHECK(weight.dim() == 4, "deform_conv2d: weight must be 4-D [Cout, C/groups, kh, kw], got shape ",
                shapeString(weight.sizes().vec()));
    const int64_t Cout = weight.size(0), kh = weight.size(2), kw = weight.size(3);
    TORCH_CHECK(kh > 0 && kw > 0, "deform_conv2d: weight has an empty kernel, shape ", shapeString(weight.sizes().vec()));
    TORCH_CHECK(C % p.groups == 0, "deform_conv2d: input channels C=", C, " are not divisible by groups=", p.groups);
    TORCH_CHECK(Cout % p.groups == 0, "deform_conv2d: output channels Cout=", Cout, " are not divisible by groups=",
                p.groups);
    TORCH_CHECK(C % p.offset_groups == 0, "deform_conv2d: input channels C=", C,
                " are not divisible by offset_groups=", p.offset_groups);
    checkShape(weight, "weight", {Cout, C / p.groups, kh, kw}, "[Cout, C/groups, kh, kw]");

    const int64_t Ho = (H + 2 * p.pad_h - (p.dilation_h * (kh - 1) + 1)) / p.stride_h + 1;
    const int64_t Wo = (W + 2 * p.pad_w - (p.dilation_w * (kw - 1) + 1)) / p.stride_w + 1;
    TORCH_CHECK(Ho > 0 && Wo > 0, "deform_conv2d: output would be empty (", Ho, " x ", Wo, ") for input ", H, " x ", W,
                ", kernel ", kh, " x ", kw, ", padding (", p.pad_h, ", ", p.pad_w, "), dilation (", p.dilation_h,
                ", ", p.dilation_w, "), stride (", p.stride_h, ", ", p.stride_w, ")");

    const int64_t K = kh * kw;
    TORCH_CHECK(offset.dim() == 4, "deform_conv2d: offset must be 4-D [N, 2*offset_groups*kh*kw, Ho, Wo] = ",
                shapeString({N, 2 * p.offset_groups * K, Ho, Wo}), ", got ", shapeString(offset.sizes().vec()));
    TORCH_CHECK(offset.size(0) == N, "deform_conv2d: offset has batch ", offset.size(0), " but input has batch ", N);
    checkShape(offset, "offset", {N, 2 * p.offset_groups * K, Ho, Wo}, "[N, 2*offset_groups*kh*kw, Ho, Wo]");
    if (p.use_mask) {
        if (mask.dim() == 4)
            TORCH_CHECK(mask.size(0) == N, "deform_conv2d: mask has batch ", mask.size(0), " but input has batch ", N);
        checkShape(mask, "mask", {N, p.offset_groups * K, Ho, Wo}, "[N, offset_groups*kh*kw, Ho, Wo]");
    }
    if (bias.defined() && bias.numel() > 0)
        checkShape(bias, "bias", {Cout}, "[Cout]");

    detail::DeformGeometry g;
    g.batch = N;
    g.channels = C;
    g.height = H;
    g.width = W;
    g.out_h = Ho;
    g.out_w = Wo;
    g.kernel_h = kh;
    g.kernel_w = kw;
    g.stride_h = p.stride_h;
    g.stride_w = p.stride_w;
    g.pad_h = p.pad_h;
    g.pad_w = p.pad_w;
    g.dilation_h = p.dilation_h;
    g.dilation_w = p.dilation_w;
    g.offset_groups = p.offset_groups;
    g.use_mask = p.use_mask;
    return g;
}

detail::DeviceKernels kernelsFor(const at::Device& device) {
    if (device.is_cpu())
        return detail::cpuKernels();
#ifdef DEFORMSCOPE_WITH_CUDA
    if (device.is_cuda())
        return detail::cudaKernels();
    constexpr const char* kBuilt = "cpu, cuda";
#else
    constexpr const char* kBuilt = "cpu (built without CUDA)";
#endif
    TORCH_CHECK(false, "deform_conv2d: no kernel for device ", device, "; this build supports ", kBuilt);
}

// Images per chunk: as many as keep the column buffer under a fixed element
// budget, at least one. Any batch size works; the last chunk may be smaller.
int64_t imagesPerChunk(const detail::DeformGeometry& g, const at::Device& device) {
    const int64_t budget = device.is_cpu() ? (int64_t{1} << 25) : (int64_t{1} << 28);
    const int64_t perImage = std::max<int64_t>(1, g.channels * g.taps() * g.outPlane());
    return std::max<int64_t>(1, std::min<int64_t>(g.batch, budget / perImage));
}

struct Chunk {
    int64_t first;
    detail::DeformGeometry geom;
    at::Tensor input, offset, mask;
};

// Splits contiguous full-batch tensors into chunks of whole images (views, no copies).
std::vector<Chunk> chunks(const detail::DeformGeometry& g, const at::Tensor& input, const at::Tensor& offset,
                          const at::Tensor& mask) {
    std::vector<Chunk> out;
    const int64_t step = imagesPerChunk(g, input.device());
    for (int64_t n0 = 0; n0 < g.batch; n0 += step) {
        Chunk c;
        c.first = n0;
        c.geom = g;
        c.geom.batch = std::min(step, g.batch - n0);
        c.input = input.narrow(0, n0, c.geom.batch);
        c.offset = offset.narrow(0, n0, c.geom.batch);
        c.mask = g.use_mask ? mask.narrow(0, n0, c.geom.batch) : mask;
        out.push_back(std::move(c));
    }
    return out;
}

at::Tensor im2col(const detail::DeviceKernels& k, const Chunk& c) {
    auto columns = at::empty({c.geom.channels * c.geom.taps(), c.geom.batch * c.geom.outPlane()}, c.input.options());
    k.im2col(c.input, c.offset, c.mask, c.geom, columns);
    return columns;
}

at::Tensor maskOrPlaceholder(const at::Tensor& mask, const at::Tensor& input, bool use_mask) {
    // Without a mask the kernels never read it; an empty tensor keeps pointers valid.
    return use_mask ? mask.contiguous() : at::empty({0}, input.options());
}

} // namespace

void setBackwardMode(BackwardMode mode) {
    g_backwardMode.store(mode);
}

BackwardMode backwardMode() {
    return g_backwardMode.load();
}

bool deterministicBackwardInEffect() {
    return backwardMode() == BackwardMode::Deterministic || at::globalContext().deterministicAlgorithms();
}

at::Tensor deformConv2dForwardImpl(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                                   const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p) {
    const detail::DeformGeometry g = checkedGeometry(input, weight, offset, mask, bias, p);
    const int64_t Cout = weight.size(0);
    auto out = at::empty({g.batch, Cout, g.out_h, g.out_w}, input.options());
    if (g.batch == 0 || Cout == 0)
        return out;
    if (g.channels == 0)
        return bias.numel() > 0 ? out.copy_(bias.view({1, Cout, 1, 1}).expand_as(out)) : out.zero_();

    const auto kernels = kernelsFor(input.device());
    const at::Tensor in = input.contiguous();
    const at::Tensor off = offset.contiguous();
    const at::Tensor msk = maskOrPlaceholder(mask, input, p.use_mask);
    const int64_t groupRows = g.channels / p.groups * g.taps();
    const at::Tensor w = weight.contiguous().view({p.groups, Cout / p.groups, groupRows});

    for (const Chunk& c : chunks(g, in, off, msk)) {
        const at::Tensor columns = im2col(kernels, c);
        const int64_t n = c.geom.batch * c.geom.outPlane();
        // [groups, Cout/groups, Cg*K] x [groups, Cg*K, B*P] -> [Cout, B, Ho, Wo]
        const at::Tensor res = at::bmm(w, columns.view({p.groups, groupRows, n}));
        out.narrow(0, c.first, c.geom.batch).copy_(res.view({Cout, c.geom.batch, g.out_h, g.out_w}).transpose(0, 1));
    }
    if (bias.defined() && bias.numel() > 0)
        out.add_(bias.view({1, Cout, 1, 1}));
    return out;
}

DeformConv2dGrads deformConv2dBackwardImpl(const at::Tensor& grad_output, const at::Tensor& input,
                                           const at::Tensor& weight, const at::Tensor& offset,
                                           const at::Tensor& mask, const at::Tensor& bias,
                                           const DeformConv2dParams& p) {
    const detail::DeformGeometry g = checkedGeometry(input, weight, offset, mask, bias, p);
    const int64_t Cout = weight.size(0);
    checkTensor(grad_output, "grad_output", input);
    checkShape(grad_output, "grad_output", {g.batch, Cout, g.out_h, g.out_w}, "[N, Cout, Ho, Wo]");

    const at::Tensor in = input.contiguous();
    const at::Tensor off = offset.contiguous();
    const at::Tensor msk = maskOrPlaceholder(mask, input, p.use_mask);
    const at::Tensor gout = grad_output.contiguous();

    at::Tensor grad_input = at::zeros_like(in);
    at::Tensor grad_weight = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    at::Tensor grad_offset = at::zeros_like(off);
    // Without a mask the gradient has the shape of whatever placeholder was passed.
    at::Tensor grad_mask = p.use_mask ? at::zeros_like(msk) : at::zeros_like(mask);
    at::Tensor grad_bias = (bias.defined() && bias.numel() > 0) ? gout.sum({0, 2, 3}) : at::zeros_like(bias);
    if (g.batch == 0 || Cout == 0 || g.channels == 0)
        return {grad_input, grad_weight, grad_offset, grad_mask, grad_bias};

    const auto kernels = kernelsFor(input.device());
    const bool deterministic = deterministicBackwardInEffect();
    const int64_t groupRows = g.channels / p.groups * g.taps();
    const at::Tensor w = weight.contiguous().view({p.groups, Cout / p.groups, groupRows});
    at::Tensor gw = grad_weight.view({p.groups, Cout / p.groups, groupRows});

    for (const Chunk& c : chunks(g, in, off, msk)) {
        const int64_t n = c.geom.batch * c.geom.outPlane();
        // grad_output chunk as [groups, Cout/groups, B*P] (column order b*P + p, as in im2col)
        const at::Tensor go = gout.narrow(0, c.first, c.geom.batch).transpose(0, 1).reshape({p.groups, Cout / p.groups, n});
        const at::Tensor grad_columns = at::bmm(w.transpose(1, 2), go).view({g.channels * g.taps(), n});

        at::Tensor gi = grad_input.narrow(0, c.first, c.geom.batch);
        at::Tensor goff = grad_offset.narrow(0, c.first, c.geom.batch);
        at::Tensor gm = p.use_mask ? grad_mask.narrow(0, c.first, c.geom.batch) : grad_mask;
        kernels.columnsBackward(grad_columns, c.input, c.offset, c.mask, c.geom, deterministic, gi, goff, gm);

        const at::Tensor columns = im2col(kernels, c);
        gw.baddbmm_(go, columns.view({p.groups, groupRows, n}).transpose(1, 2));
    }
    return {grad_input, grad_weight, grad_offset, grad_mask, grad_bias};
}

namespace {

using ForwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const at::Tensor&, c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt,
                              c10::SymInt, c10::SymInt, c10::SymInt, bool);
using BackwardSig = DeformConv2dGrads(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                      const at::Tensor&, const at::Tensor&, c10::SymInt, c10::SymInt, c10::SymInt,
                                      c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt, bool);

} // namespace

at::Tensor deformConv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                        const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::deform_conv2d", "")
                               .typed<ForwardSig>();
    const at::Tensor m = mask.defined() ? mask : at::empty({0}, input.options());
    const at::Tensor b = bias.defined() ? bias : at::empty({0}, input.options());
    return op.call(input, weight, offset, m, b, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w,
                   p.groups, p.offset_groups, p.use_mask);
}

DeformConv2dGrads deformConv2dBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                       const at::Tensor& weight, const at::Tensor& offset, const at::Tensor& mask,
                                       const at::Tensor& bias, const DeformConv2dParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::_deform_conv2d_backward", "")
                               .typed<BackwardSig>();
    const at::Tensor m = mask.defined() ? mask : at::empty({0}, input.options());
    const at::Tensor b = bias.defined() ? bias : at::empty({0}, input.options());
    return op.call(grad_output, input, weight, offset, m, b, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h,
                   p.dilation_w, p.groups, p.offset_groups, p.use_mask);
}

} // namespace deformscope::ops
