// Device-agnostic half of deform_conv2d: argument checks, chunking of the batch,
// and the GEMMs. The sampling kernels live in cpu/ and cuda/.
#include "core/ops/deform_conv2d.h"

#include "core/ops/deform_conv2d_kernels.h"
#include "core/ops/op_support.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <atomic>
#include <optional>
#include <vector>

namespace deformscope::ops {
namespace {

constexpr const char* kOp = "deform_conv2d";

std::atomic<BackwardMode> g_backwardMode{BackwardMode::Deterministic};

// Validates every argument and returns the full-batch geometry.
detail::DeformGeometry checkedGeometry(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                                       const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p) {
    using detail::checkShape;
    using detail::shapeString;
    detail::checkInput(kOp, input);
    detail::checkTensors(kOp, input,
                         {{weight, "weight"}, {offset, "offset"}, {mask, "mask", p.use_mask},
                          {bias, "bias", detail::hasBias(bias)}});
    detail::checkWindow(kOp, p);
    TORCH_CHECK(p.groups > 0, "deform_conv2d: groups must be positive, got ", p.groups);
    TORCH_CHECK(p.offset_groups > 0, "deform_conv2d: offset_groups must be positive, got ", p.offset_groups);

    const int64_t N = input.size(0), C = input.size(1);
    TORCH_CHECK(weight.dim() == 4, "deform_conv2d: weight must be 4-D [Cout, C/groups, kh, kw], got shape ",
                shapeString(weight.sizes().vec()));
    const int64_t Cout = weight.size(0), kh = weight.size(2), kw = weight.size(3);
    TORCH_CHECK(kh > 0 && kw > 0, "deform_conv2d: weight has an empty kernel, shape ", shapeString(weight.sizes().vec()));
    TORCH_CHECK(C % p.groups == 0, "deform_conv2d: input channels C=", C, " are not divisible by groups=", p.groups);
    TORCH_CHECK(Cout % p.groups == 0, "deform_conv2d: output channels Cout=", Cout, " are not divisible by groups=",
                p.groups);
    TORCH_CHECK(C % p.offset_groups == 0, "deform_conv2d: input channels C=", C,
                " are not divisible by offset_groups=", p.offset_groups);
    checkShape(kOp, weight, "weight", {Cout, C / p.groups, kh, kw}, "[Cout, C/groups, kh, kw]");

    detail::DeformGeometry g;
    static_cast<detail::SamplingGrid&>(g) = detail::convolutionGrid(kOp, input, kh, kw, p);
    g.offset_groups = p.offset_groups;
    g.use_mask = p.use_mask;
    const int64_t Ho = g.out_h, Wo = g.out_w;

    const int64_t K = kh * kw;
    TORCH_CHECK(offset.dim() == 4, "deform_conv2d: offset must be 4-D [N, 2*offset_groups*kh*kw, Ho, Wo] = ",
                shapeString({N, 2 * p.offset_groups * K, Ho, Wo}), ", got ", shapeString(offset.sizes().vec()));
    TORCH_CHECK(offset.size(0) == N, "deform_conv2d: offset has batch ", offset.size(0), " but input has batch ", N);
    checkShape(kOp, offset, "offset", {N, 2 * p.offset_groups * K, Ho, Wo}, "[N, 2*offset_groups*kh*kw, Ho, Wo]");
    if (p.use_mask) {
        if (mask.dim() == 4)
            TORCH_CHECK(mask.size(0) == N, "deform_conv2d: mask has batch ", mask.size(0), " but input has batch ", N);
        checkShape(kOp, mask, "mask", {N, p.offset_groups * K, Ho, Wo}, "[N, offset_groups*kh*kw, Ho, Wo]");
    }
    if (detail::hasBias(bias))
        checkShape(kOp, bias, "bias", {Cout}, "[Cout]");
    return g;
}

detail::DeviceKernels kernelsFor(const at::Device& device) {
    return detail::kernelsFor(kOp, device, &detail::cpuKernels, DEFORMSCOPE_IF_CUDA(&detail::cudaKernels));
}

struct Chunk {
    int64_t first;
    detail::DeformGeometry geom;
    at::Tensor input, offset, mask;
};

// Splits contiguous full-batch tensors into chunks of whole images (views, no
// copies), as many images each as keep the column buffer under a fixed element
// budget.
std::vector<Chunk> chunks(const detail::DeformGeometry& g, const at::Tensor& input, const at::Tensor& offset,
                          const at::Tensor& mask) {
    const int64_t budget = input.device().is_cpu() ? (int64_t{1} << 25) : (int64_t{1} << 28);
    const int64_t step = detail::imagesPerChunk(g.batch, g.channels * g.taps() * g.outPlane(), budget);
    std::vector<Chunk> out;
    detail::forEachChunk(g, step, [&](int64_t first, const detail::DeformGeometry& c) {
        out.push_back({first, c, input.narrow(0, first, c.batch), offset.narrow(0, first, c.batch),
                       g.use_mask ? mask.narrow(0, first, c.batch) : mask});
    });
    return out;
}

at::Tensor im2col(const detail::DeviceKernels& k, const Chunk& c) {
    auto columns = at::empty({c.geom.channels * c.geom.taps(), c.geom.batch * c.geom.outPlane()}, c.input.options());
    k.forward(c.input, c.offset, c.mask, c.geom, columns);
    return columns;
}

// The output positions a backward's gradient reaches, as a box [y0, y1) x [x0, x1)
// of the output plane, when it covers at most a quarter of the plane (one node's
// gradient, as an ERF or a sampling trace asks, reaches a handful); else none.
struct OutputBox {
    int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};
std::optional<OutputBox> reachedBox(const at::Tensor& grad_output) { // [B, Cout, Ho, Wo]
    const int64_t Ho = grad_output.size(2), Wo = grad_output.size(3);
    const at::Tensor reached = grad_output.ne(0).any(1).any(0); // [Ho, Wo]
    const at::Tensor rows = reached.any(1).nonzero(), cols = reached.any(0).nonzero();
    OutputBox b;
    if (rows.numel() > 0) {
        b.y0 = rows.min().item<int64_t>();
        b.y1 = rows.max().item<int64_t>() + 1;
        b.x0 = cols.min().item<int64_t>();
        b.x1 = cols.max().item<int64_t>() + 1;
    }
    if ((b.y1 - b.y0) * (b.x1 - b.x0) * 4 > Ho * Wo)
        return std::nullopt;
    return b;
}

// The part of `t` ([B, *, out_h, out_w] of `g`'s output plane, any view that
// reshapes so) at the positions of `box`: a view.
at::Tensor inBox(const at::Tensor& t, const detail::DeformGeometry& g, const OutputBox& box) {
    return t.view({g.batch, -1, g.out_h, g.out_w}).narrow(2, box.y0, box.y1 - box.y0).narrow(3, box.x0, box.x1 - box.x0);
}

// The chunk restricted to the output positions of `box`: the same reads of the
// whole input (the grid shifted by the box's origin), the offsets and mask of
// those positions.
Chunk restrictedTo(const Chunk& c, const OutputBox& box) {
    Chunk r = c;
    r.geom.out_h = box.y1 - box.y0;
    r.geom.out_w = box.x1 - box.x0;
    r.geom.pad_h = c.geom.pad_h - box.y0 * c.geom.stride_h;
    r.geom.pad_w = c.geom.pad_w - box.x0 * c.geom.stride_w;
    r.offset = inBox(c.offset, c.geom, box).contiguous();
    if (c.geom.use_mask)
        r.mask = inBox(c.mask, c.geom, box).contiguous();
    return r;
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
    const at::Tensor msk = detail::contiguousOrPlaceholder(mask, input, p.use_mask);
    const int64_t groupRows = g.channels / p.groups * g.taps();
    const at::Tensor w = weight.contiguous().view({p.groups, Cout / p.groups, groupRows});

    for (const Chunk& c : chunks(g, in, off, msk)) {
        const at::Tensor columns = im2col(kernels, c);
        const int64_t n = c.geom.batch * c.geom.outPlane();
        // [groups, Cout/groups, Cg*K] x [groups, Cg*K, B*P] -> [Cout, B, Ho, Wo]
        const at::Tensor res = at::bmm(w, columns.view({p.groups, groupRows, n}));
        out.narrow(0, c.first, c.geom.batch).copy_(res.view({Cout, c.geom.batch, g.out_h, g.out_w}).transpose(0, 1));
    }
    detail::addBias(out, bias);
    return out;
}

DeformConv2dGrads deformConv2dBackwardImpl(const at::Tensor& grad_output, const at::Tensor& input,
                                           const at::Tensor& weight, const at::Tensor& offset,
                                           const at::Tensor& mask, const at::Tensor& bias,
                                           const DeformConv2dParams& p) {
    const detail::DeformGeometry g = checkedGeometry(input, weight, offset, mask, bias, p);
    const int64_t Cout = weight.size(0);
    detail::checkGradOutput(kOp, grad_output, input, {g.batch, Cout, g.out_h, g.out_w}, "[N, Cout, Ho, Wo]");

    const at::Tensor in = input.contiguous();
    const at::Tensor off = offset.contiguous();
    const at::Tensor msk = detail::contiguousOrPlaceholder(mask, input, p.use_mask);
    const at::Tensor gout = grad_output.contiguous();

    at::Tensor grad_input = at::zeros_like(in);
    at::Tensor grad_weight = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    at::Tensor grad_offset = at::zeros_like(off);
    // Without a mask the gradient has the shape of whatever placeholder was passed.
    at::Tensor grad_mask = p.use_mask ? at::zeros_like(msk) : at::zeros_like(mask);
    const bool parameters = !detail::ParameterGradsUnneeded::active();
    at::Tensor grad_bias = parameters || !bias.defined() ? detail::biasGrad(gout, bias) : at::zeros_like(bias);
    if (g.batch == 0 || Cout == 0 || g.channels == 0)
        return {grad_input, grad_weight, grad_offset, grad_mask, grad_bias};

    const auto kernels = kernelsFor(input.device());
    const bool deterministic = deterministicBackwardInEffect();
    const int64_t groupRows = g.channels / p.groups * g.taps();
    const at::Tensor w = weight.contiguous().view({p.groups, Cout / p.groups, groupRows});
    at::Tensor gw = grad_weight.view({p.groups, Cout / p.groups, groupRows});

    for (const Chunk& whole : chunks(g, in, off, msk)) {
        at::Tensor gout_c = gout.narrow(0, whole.first, whole.geom.batch);
        at::Tensor gi = grad_input.narrow(0, whole.first, whole.geom.batch);
        at::Tensor goff = grad_offset.narrow(0, whole.first, whole.geom.batch);
        at::Tensor gm = p.use_mask ? grad_mask.narrow(0, whole.first, whole.geom.batch) : grad_mask;
        // A gradient that reaches few output positions: the backward of those alone
        // (positions it does not reach contribute exactly nothing to any gradient).
        // (CPU only: the CUDA kernels have not run with a shifted grid.)
        const std::optional<OutputBox> box = in.device().is_cpu() ? reachedBox(gout_c) : std::nullopt;
        const Chunk c = box ? restrictedTo(whole, *box) : whole;
        if (box && c.geom.outPlane() == 0)
            continue; // no gradient reaches this chunk: every gradient of it stays zero
        at::Tensor goffBox = goff, gmBox = gm;
        if (box) {
            gout_c = inBox(gout_c, whole.geom, *box);
            goffBox = at::zeros_like(c.offset);
            gmBox = p.use_mask ? at::zeros_like(c.mask) : gm;
        }
        const int64_t n = c.geom.batch * c.geom.outPlane();
        // grad_output chunk as [groups, Cout/groups, B*P] (column order b*P + p, as in im2col)
        const at::Tensor go = gout_c.transpose(0, 1).reshape({p.groups, Cout / p.groups, n});
        const at::Tensor grad_columns = at::bmm(w.transpose(1, 2), go).view({g.channels * g.taps(), n});
        kernels.backward(grad_columns, c.input, c.offset, c.mask, c.geom, deterministic, gi, goffBox, gmBox);
        if (box) {
            inBox(goff, whole.geom, *box).copy_(goffBox);
            if (p.use_mask)
                inBox(gm, whole.geom, *box).copy_(gmBox);
        }

        if (!parameters)
            continue;
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
    return op.call(input, weight, offset, detail::orEmpty(mask, input), detail::orEmpty(bias, input), p.stride_h,
                   p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.groups, p.offset_groups, p.use_mask);
}

DeformConv2dGrads deformConv2dBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                       const at::Tensor& weight, const at::Tensor& offset, const at::Tensor& mask,
                                       const at::Tensor& bias, const DeformConv2dParams& p) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::_deform_conv2d_backward", "")
                               .typed<BackwardSig>();
    return op.call(grad_output, input, weight, offset, detail::orEmpty(mask, input), detail::orEmpty(bias, input),
                   p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.groups, p.offset_groups,
                   p.use_mask);
}

} // namespace deformscope::ops
