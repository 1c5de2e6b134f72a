#include "core/ops/checks/deform_kernel2d_checks.h"

#include "core/ops/deform_conv2d.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace deformscope::ops::checks {

ReferenceComparison compareDkWithReference(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                           const at::Device& device) {
    return compareWithReference(deformKernel2dUnderTest(spec.params), argsOf(makeDkCase(spec, seed, dtype, device)),
                                seed + 1);
}

double dkFiniteDifferenceError(const DkCaseSpec& spec, uint64_t seed, const at::Device& device,
                               int64_t maxPerTensor) {
    return finiteDifferenceError(deformKernel2dUnderTest(spec.params),
                                 argsOf(makeDkCase(spec, seed, at::kDouble, device)), seed, maxPerTensor);
}

double dkWindowConvError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    DkCaseSpec s = spec;
    s.kernel_offsets = OffsetKind::Integer;
    s.params.use_offset = false;
    const DeformKernel2dParams& p = s.params;
    TORCH_CHECK((s.scope_h - p.kernel_h) % 2 == 0 && (s.scope_w - p.kernel_w) % 2 == 0,
                "dkWindowConvError: needs integer tap base positions (scope - kernel even)");
    const DkCaseTensors t = makeDkCase(s, seed, dtype, device);
    const at::Tensor ours = deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, p);

    // Tap (i, j) reads scope cell (i + (Sh-kh)/2 + shift_y, j + (Sw-kw)/2 + shift_x),
    // 0 outside the scope: crop that window from the zero-extended scope.
    const int64_t margin = std::max(std::abs(s.kernel_shift_y), std::abs(s.kernel_shift_x)) + 1;
    const at::Tensor padded = at::constant_pad_nd(t.weight, {margin, margin, margin, margin}, 0.0);
    const at::Tensor window = padded.narrow(2, margin + (s.scope_h - p.kernel_h) / 2 + s.kernel_shift_y, p.kernel_h)
                                  .narrow(3, margin + (s.scope_w - p.kernel_w) / 2 + s.kernel_shift_x, p.kernel_w)
                                  .contiguous();
    const at::Tensor conv = at::conv2d(t.input, window, t.bias.numel() > 0 ? t.bias : at::Tensor(),
                                       std::vector<int64_t>{p.stride_h, p.stride_w},
                                       std::vector<int64_t>{p.pad_h, p.pad_w},
                                       std::vector<int64_t>{p.dilation_h, p.dilation_w}, s.channels);
    return relativeError(ours, conv);
}

double dkDeformConvError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    DkCaseSpec s = spec;
    s.kernel_offsets = OffsetKind::Zero;
    s.scope_h = s.params.kernel_h;
    s.scope_w = s.params.kernel_w;
    s.params.use_offset = true;
    const DeformKernel2dParams& p = s.params;
    const DkCaseTensors t = makeDkCase(s, seed, dtype, device);
    const at::Tensor ours = deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, p);
    DeformConv2dParams q;
    static_cast<ConvWindow&>(q) = p;
    q.groups = s.channels;
    q.offset_groups = 1;
    q.use_mask = false;
    const at::Tensor dcn = deformConv2d(t.input, t.weight, t.offset, at::Tensor(), t.bias, q);
    return relativeError(ours, dcn);
}

double dkGlobalEqualsLocalError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                const at::Device& device) {
    DkCaseSpec s = spec;
    s.global = true;
    const OpUnderTest op = deformKernel2dUnderTest(s.params);
    const OpArgs global = argsOf(makeDkCase(s, seed, dtype, device));
    OpArgs local = global;
    local[2] = global[2].expand({s.batch, global[2].size(1), s.outH(), s.outW()}).contiguous();
    const at::Tensor outGlobal = op.forward(global);
    const at::Tensor outLocal = op.forward(local);
    const at::Tensor R = randomLike(outLocal, seed + 3);
    const OpArgs gg = op.backward(R, global);
    const OpArgs gl = op.backward(R, local);
    double worst = relativeError(outGlobal, outLocal);
    for (int i = 0; i < 5; ++i) {
        if (i == 3 && !op.usesFourth)
            continue;
        const at::Tensor expected = i == 2 ? gl[i].sum({2, 3}, /*keepdim=*/true) : gl[i];
        worst = std::max(worst, relativeError(gg[i], expected));
    }
    return worst;
}

std::vector<BadInputCase> dkBadInputCases(const at::Device& device) {
    DkCaseSpec spec; // N2 C3 7x6, k3x3, scope 5x5 -> 5x4 output
    spec.params.use_offset = true;
    const DkCaseTensors t = makeDkCase(spec, 11, at::kFloat, device);
    const DeformKernel2dParams p = spec.params;
    const auto opts = t.input.options();
    auto run = [](const DkCaseTensors& x, const DeformKernel2dParams& q) {
        deformKernel2d(x.input, x.weight, x.kernel_offset, x.offset, x.bias, q);
    };
    auto with = [&](auto&& edit) {
        DkCaseTensors x = t;
        edit(x);
        return x;
    };

    std::vector<BadInputCase> cases;
    auto add = [&](std::string name, std::string message, DkCaseTensors x, DeformKernel2dParams q) {
        cases.push_back({std::move(name), std::move(message), [=] { run(x, q); }});
    };
    add("3-D input", "input must be 4-D [N, C, H, W], got shape [3, 7, 6]", with([](auto& x) { x.input = x.input[0]; }), p);
    add("non-floating input", "input must be a floating-point tensor, got dtype Long",
        with([](auto& x) { x.input = x.input.to(at::kLong); }), p);
    add("3-D weight", "weight must be 4-D [C, 1, Sh, Sw]", with([](auto& x) { x.weight = x.weight[0]; }), p);
    add("non-depthwise weight", "weight must be depthwise [C, 1, Sh, Sw], got shape [3, 3, 5, 5]",
        with([&](auto& x) { x.weight = at::zeros({3, 3, 5, 5}, opts); }), p);
    add("weight channel mismatch", "weight has 4 kernels but input has C=3 channels",
        with([&](auto& x) { x.weight = at::zeros({4, 1, 5, 5}, opts); }), p);
    add("scope smaller than kernel", "the scope kernel 2 x 5 (weight's last two dims) is smaller than the kernel size 3 x 3",
        with([&](auto& x) { x.weight = at::zeros({3, 1, 2, 5}, opts); }), p);
    add("wrong kernel_offset channels",
        "kernel_offset must have shape [N, 2*kh*kw, Ho, Wo] = [2, 18, 5, 4] (local: one kernel per position) or "
        "[N, 2*kh*kw, 1, 1] = [2, 18, 1, 1] (global: one kernel per image), got [2, 16, 5, 4]",
        with([&](auto& x) { x.kernel_offset = at::zeros({2, 16, 5, 4}, opts); }), p);
    add("wrong kernel_offset spatial size", "got [2, 18, 2, 2]",
        with([&](auto& x) { x.kernel_offset = at::zeros({2, 18, 2, 2}, opts); }), p);
    add("3-D kernel_offset", "kernel_offset must have shape [N, 2*kh*kw, Ho, Wo] = [2, 18, 5, 4]",
        with([&](auto& x) { x.kernel_offset = at::zeros({18, 5, 4}, opts); }), p);
    add("kernel_offset batch", "got [1, 18, 1, 1]",
        with([&](auto& x) { x.kernel_offset = at::zeros({1, 18, 1, 1}, opts); }), p);
    add("wrong offset channels", "offset must have shape [N, 2*kh*kw, Ho, Wo] = [2, 18, 5, 4], got [2, 16, 5, 4]",
        with([&](auto& x) { x.offset = at::zeros({2, 16, 5, 4}, opts); }), p);
    add("offset batch", "offset has batch 3 but input has batch 2",
        with([&](auto& x) { x.offset = at::zeros({3, 18, 5, 4}, opts); }), p);
    add("use_offset without offsets", "offset must have shape [N, 2*kh*kw, Ho, Wo] = [2, 18, 5, 4], got [0]",
        with([&](auto& x) { x.offset = at::empty({0}, opts); }), p);
    add("wrong bias shape", "bias must have shape [C] = [3], got [5]",
        with([&](auto& x) { x.bias = at::zeros({5}, opts); }), p);
    add("mixed dtypes", "weight has dtype Double but input has dtype Float",
        with([](auto& x) { x.weight = x.weight.to(at::kDouble); }), p);
    add("kernel_offset dtype", "kernel_offset has dtype Half but input has dtype Float",
        with([](auto& x) { x.kernel_offset = x.kernel_offset.to(at::kHalf); }), p);
    DeformKernel2dParams q = p;
    q.kernel_h = 0;
    add("non-positive kernel size", "kernel size must be positive, got (0, 3)", t, q);
    q = p;
    q.stride_w = 0;
    add("zero stride", "stride must be positive, got (1, 0)", t, q);
    q = p;
    q.kernel_h = q.kernel_w = 9;
    add("kernel larger than padded input", "output would be empty",
        with([&](auto& x) { x.weight = at::zeros({3, 1, 9, 9}, opts); }), q);
    cases.push_back({"grad_output shape", "grad_output must have shape [N, C, Ho, Wo] = [2, 3, 5, 4], got [2, 3, 4, 4]",
                     [=] {
                         deformKernel2dBackward(at::zeros({2, 3, 4, 4}, opts), t.input, t.weight, t.kernel_offset,
                                                t.offset, t.bias, p);
                     }});
    // A tensor on another device must be named, not read from the wrong memory.
    // The meta device exists in every build, so the check runs without a GPU too.
    const at::Device other = device.is_cuda() ? at::Device(at::kCPU) : at::Device(at::kMeta);
    const std::string otherName = other.str(), here = device.str();
    add("kernel_offset on another device", "kernel_offset is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.kernel_offset = x.kernel_offset.to(other); }), p);
    add("weight on another device", "weight is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.weight = x.weight.to(other); }), p);
    add("offset on another device", "offset is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.offset = x.offset.to(other); }), p);
    return cases;
}

namespace {

// The fixed table the self-test runs: one case per feature the op must get right.
std::vector<DkCaseSpec> selfTestCases() {
    std::vector<DkCaseSpec> cases;
    auto add = [&](auto&& edit) {
        DkCaseSpec s;
        edit(s);
        cases.push_back(s);
    };
    add([](DkCaseSpec& s) { s.params.pad_h = s.params.pad_w = 1; });
    add([](DkCaseSpec& s) { s.global = true; s.params.pad_h = s.params.pad_w = 1; });
    add([](DkCaseSpec& s) { s.params.use_offset = true; s.params.pad_h = s.params.pad_w = 1; });
    add([](DkCaseSpec& s) { s.global = true; s.params.use_offset = true; s.scope_h = 4; s.scope_w = 6; });
    add([](DkCaseSpec& s) { s.params.stride_h = s.params.stride_w = 2; s.params.dilation_h = s.params.dilation_w = 2; s.params.pad_h = s.params.pad_w = 2; s.height = s.width = 9; s.params.use_offset = true; });
    add([](DkCaseSpec& s) { s.params.kernel_w = 1; s.scope_h = 3; s.scope_w = 4; s.kernel_offset_scale = 3.0; s.params.pad_h = 1; });
    add([](DkCaseSpec& s) { s.kernel_offsets = OffsetKind::ExactBorders; s.offsets = OffsetKind::ExactBorders; s.params.use_offset = true; s.params.pad_h = s.params.pad_w = 1; });
    add([](DkCaseSpec& s) { s.batch = 5; s.channels = 2; s.height = s.width = 4; s.params.kernel_h = s.params.kernel_w = 1; s.scope_h = s.scope_w = 3; s.bias = false; });
    return cases;
}

} // namespace

std::vector<NamedCheck> deformKernel2dSelfChecks(const at::Device& d) {
    std::vector<NamedCheck> checks;
    const auto cases = selfTestCases();
    for (size_t i = 0; i < cases.size(); ++i) {
        const DkCaseSpec spec = cases[i];
        checks.push_back(referenceCheck("deform_kernel2d float64 vs reference: " + spec.describe(), 1e-10,
                                        [=] { return compareDkWithReference(spec, 700 + i, at::kDouble, d); }));
    }
    checks.push_back(referenceCheck("deform_kernel2d float32 vs float64 reference", 1e-4,
                                    [=] { return compareDkWithReference(cases[2], 710, at::kFloat, d); }));
    DkCaseSpec fd = dkFiniteDifferenceCase();
    fd.params.use_offset = true;
    checks.push_back(errorCheck("deform_kernel2d finite differences (float64): input, weight, kernel_offset, offset, bias",
                                1e-6, [=] { return dkFiniteDifferenceError(fd, 720, d); }));
    fd.global = true;
    checks.push_back(errorCheck("deform_kernel2d finite differences, global kernel offsets (float64)", 1e-6,
                                [=] { return dkFiniteDifferenceError(fd, 721, d); }));
    DkCaseSpec inv;
    inv.scope_h = inv.scope_w = 3;
    inv.params.pad_h = inv.params.pad_w = 1;
    inv.params.stride_h = 2;
    checks.push_back(errorCheck("deform_kernel2d zero offsets, scope == kernel == depthwise conv2d (float32)", 1e-5,
                                [=] { return dkWindowConvError(inv, 730, at::kFloat, d); }));
    DkCaseSpec shifted = inv;
    shifted.scope_h = shifted.scope_w = 5;
    shifted.kernel_shift_y = 1;
    shifted.kernel_shift_x = -2;
    checks.push_back(errorCheck("deform_kernel2d integer kernel offsets == conv2d with the scope window (float64)",
                                1e-12, [=] { return dkWindowConvError(shifted, 731, at::kDouble, d); }));
    checks.push_back(
        errorCheck("deform_kernel2d zero kernel offsets + image offsets == depthwise deform_conv2d (float64)", 1e-12,
                   [=] { return dkDeformConvError(inv, 732, at::kDouble, d); }));
    const DkCaseSpec global = cases[2];
    checks.push_back(errorCheck("deform_kernel2d global kernel offsets == broadcast local ones (float64)", 1e-12,
                                [=] { return dkGlobalEqualsLocalError(global, 733, at::kDouble, d); }));
    for (const BadInputCase& bad : dkBadInputCases(d))
        checks.push_back(badInputCheck("deform_kernel2d bad input raises: " + bad.name, bad));
    if (!d.is_cuda())
        return checks;

    const OpUnderTest op = deformKernel2dUnderTest(cases[2].params);
    checks.push_back(referenceCheck("deform_kernel2d half vs float64 reference", 5e-3,
                                    [=] { return compareDkWithReference(cases[2], 740, at::kHalf, d); }, op.names));
    checks.push_back(referenceCheck("deform_kernel2d bfloat16 vs float64 reference", 3e-2,
                                    [=] { return compareDkWithReference(cases[2], 741, at::kBFloat16, d); },
                                    op.names));
    // Many samples collide on the same pixels and scope cells.
    for (bool isGlobal : {false, true}) {
        DkCaseSpec big = dkCollidingCase(isGlobal, 3, 32, 40);
        big.kernel_offset_scale = 1.5;
        const std::string mode = isGlobal ? "global" : "local";
        checks.push_back(float32VsFloat64Check(
            "deform_kernel2d cuda float32 vs float64 (" + mode + ", colliding case, forward and gradients)",
            deformKernel2dUnderTest(big.params),
            [big](at::ScalarType dtype, const at::Device& device) { return argsOf(makeDkCase(big, 750, dtype, device)); },
            d, 751));
    }
    const DkCaseSpec det = dkCollidingCase(false, 3, 32, 40);
    const OpUnderTest detOp = deformKernel2dUnderTest(det.params);
    auto detArgs = [det, d] { return argsOf(makeDkCase(det, 760, at::kFloat, d)); };
    checks.push_back(
        deterministicBackwardCheck("deform_kernel2d deterministic backward is bit-identical (2 runs)", detOp, detArgs, 761));
    checks.push_back(
        atomicBackwardCheck("deform_kernel2d atomic backward == deterministic backward (float32)", detOp, detArgs, 761));
    return checks;
}

} // namespace deformscope::ops::checks
