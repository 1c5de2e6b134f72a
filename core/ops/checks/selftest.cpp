#include "core/ops/checks/selftest.h"

#include "core/ops/checks/deform_kernel2d_checks.h"
#include "core/ops/checks/deform_roi_pool_checks.h"
#include "core/ops/deform_conv2d.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace deformscope::ops::checks {
namespace {

const std::array<const char*, 5> kArgNames = {"input", "weight", "offset", "mask", "bias"};

// The case with `kind` offsets and a unit mask, and our op's output on it.
struct UnitMaskCase {
    CaseSpec spec;
    CaseTensors t;
    at::Tensor ours;
};

UnitMaskCase unitMaskCase(const CaseSpec& spec, OffsetKind kind, uint64_t seed, at::ScalarType dtype,
                          const at::Device& device) {
    UnitMaskCase c{spec, {}, {}};
    c.spec.offsets = kind;
    c.t = makeCase(c.spec, seed, dtype, device);
    if (c.spec.params.use_mask)
        c.t.mask.fill_(1.0);
    c.ours = deformConv2d(c.t.input, c.t.weight, c.t.offset, c.t.mask, c.t.bias, c.spec.params);
    return c;
}

// at::conv2d with the case's weight, bias, stride, dilation and groups.
at::Tensor conv2dOf(const at::Tensor& input, const UnitMaskCase& c, std::vector<int64_t> padding) {
    const DeformConv2dParams& p = c.spec.params;
    return at::conv2d(input, c.t.weight, c.t.bias.numel() ? c.t.bias : at::Tensor(),
                      std::vector<int64_t>{p.stride_h, p.stride_w}, padding,
                      std::vector<int64_t>{p.dilation_h, p.dilation_w}, p.groups);
}

} // namespace

ReferenceComparison compareWithReference(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                         const at::Device& device) {
    return compareWithReference(deformConv2dUnderTest(spec.params), argsOf(makeCase(spec, seed, dtype, device)),
                                seed + 1);
}

double finiteDifferenceError(const CaseSpec& spec, uint64_t seed, const at::Device& device, int64_t maxPerTensor) {
    return finiteDifferenceError(deformConv2dUnderTest(spec.params),
                                 argsOf(makeCase(spec, seed, at::kDouble, device)), seed, maxPerTensor);
}

double zeroOffsetConvError(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    const UnitMaskCase c = unitMaskCase(spec, OffsetKind::Zero, seed, dtype, device);
    return relativeError(c.ours, conv2dOf(c.t.input, c, {c.spec.params.pad_h, c.spec.params.pad_w}));
}

double integerShiftConvError(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    const UnitMaskCase c = unitMaskCase(spec, OffsetKind::Integer, seed, dtype, device);
    const CaseSpec& s = c.spec;
    const DeformConv2dParams& p = s.params;
    // Shifting every tap by (a, b) reads the zero-extended input at y + a, x + b:
    // pad generously, crop the window the shifted grid covers, convolve without padding.
    const int64_t margin = std::max({std::abs(s.shift_y), std::abs(s.shift_x)}) + std::max(p.pad_h, p.pad_w) + 1;
    const at::Tensor padded = at::constant_pad_nd(c.t.input, {margin, margin, margin, margin}, 0.0);
    const int64_t spanH = (s.outH() - 1) * p.stride_h + p.dilation_h * (s.kernel_h - 1) + 1;
    const int64_t spanW = (s.outW() - 1) * p.stride_w + p.dilation_w * (s.kernel_w - 1) + 1;
    const at::Tensor window = padded.narrow(2, margin - p.pad_h + s.shift_y, spanH)
                                  .narrow(3, margin - p.pad_w + s.shift_x, spanW);
    return relativeError(c.ours, conv2dOf(window, c, {0, 0}));
}

std::string errorMessageOf(const std::function<void()>& call) {
    try {
        call();
    } catch (const c10::Error& e) {
        return e.what_without_backtrace();
    }
    return {};
}

std::string badInputProblem(const BadInputCase& bad) {
    const std::string message = errorMessageOf(bad.call);
    if (message.empty())
        return "no c10::Error thrown (expected '" + bad.expectedMessage + "')";
    if (message.find(bad.expectedMessage) == std::string::npos)
        return "expected '" + bad.expectedMessage + "', got '" + message + "'";
    return {};
}

std::vector<BadInputCase> badInputCases(const at::Device& device) {
    CaseSpec spec; // N2 C4 7x6, 3x3, Cout 4 -> 5x4 output
    spec.params.use_mask = true;
    const CaseTensors t = makeCase(spec, 11, at::kFloat, device);
    const DeformConv2dParams p = spec.params;
    const auto opts = t.input.options();

    std::vector<BadInputCase> cases;
    cases.push_back({"wrong offset channels", "offset must have shape [N, 2*offset_groups*kh*kw, Ho, Wo] = [2, 18, 5, 4], got [2, 16, 5, 4]",
                     [=] { deformConv2d(t.input, t.weight, at::zeros({2, 16, 5, 4}, opts), t.mask, t.bias, p); }});
    cases.push_back({"mismatched batch", "offset has batch 3 but input has batch 2",
                     [=] { deformConv2d(t.input, t.weight, at::zeros({3, 18, 5, 4}, opts), t.mask, t.bias, p); }});
    cases.push_back({"wrong offset spatial size", "offset must have shape [N, 2*offset_groups*kh*kw, Ho, Wo] = [2, 18, 5, 4], got [2, 18, 7, 6]",
                     [=] { deformConv2d(t.input, t.weight, at::zeros({2, 18, 7, 6}, opts), t.mask, t.bias, p); }});
    cases.push_back({"wrong mask shape", "mask must have shape [N, offset_groups*kh*kw, Ho, Wo] = [2, 9, 5, 4], got [2, 18, 5, 4]",
                     [=] { deformConv2d(t.input, t.weight, t.offset, at::zeros({2, 18, 5, 4}, opts), t.bias, p); }});
    cases.push_back({"mask batch", "mask has batch 1 but input has batch 2",
                     [=] { deformConv2d(t.input, t.weight, t.offset, at::zeros({1, 9, 5, 4}, opts), t.bias, p); }});
    cases.push_back({"wrong weight channels", "weight must have shape [Cout, C/groups, kh, kw] = [4, 4, 3, 3], got [4, 3, 3, 3]",
                     [=] { deformConv2d(t.input, at::zeros({4, 3, 3, 3}, opts), t.offset, t.mask, t.bias, p); }});
    cases.push_back({"wrong bias shape", "bias must have shape [Cout] = [4], got [5]",
                     [=] { deformConv2d(t.input, t.weight, t.offset, t.mask, at::zeros({5}, opts), p); }});
    cases.push_back({"3-D input", "input must be 4-D [N, C, H, W], got shape [4, 7, 6]",
                     [=] { deformConv2d(t.input[0], t.weight, t.offset, t.mask, t.bias, p); }});
    cases.push_back({"non-floating input", "input must be a floating-point tensor, got dtype Long",
                     [=] { deformConv2d(t.input.to(at::kLong), t.weight, t.offset, t.mask, t.bias, p); }});
    cases.push_back({"mixed dtypes", "weight has dtype Double but input has dtype Float",
                     [=] { deformConv2d(t.input, t.weight.to(at::kDouble), t.offset, t.mask, t.bias, p); }});
    cases.push_back({"groups not dividing channels", "input channels C=4 are not divisible by groups=3", [=] {
                         DeformConv2dParams q = p;
                         q.groups = 3;
                         deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, q);
                     }});
    cases.push_back({"kernel larger than padded input", "output would be empty", [=] {
                         deformConv2d(t.input, at::zeros({4, 4, 9, 9}, opts), t.offset, t.mask, t.bias, p);
                     }});
    if (device.is_cuda()) {
        // torchvision checks only the input's device and then reads host memory from
        // the GPU (an illegal memory access); we name the tensor instead.
        cases.push_back({"offset on another device", "offset is on cpu but input is on cuda",
                         [=] { deformConv2d(t.input, t.weight, t.offset.cpu(), t.mask, t.bias, p); }});
        cases.push_back({"weight on another device", "weight is on cpu but input is on cuda",
                         [=] { deformConv2d(t.input, t.weight.cpu(), t.offset, t.mask, t.bias, p); }});
    }
    return cases;
}

std::vector<at::Device> availableDevices() {
    std::vector<at::Device> devices = {at::Device(at::kCPU)};
#ifdef DEFORMSCOPE_WITH_CUDA
    if (at::hasCUDA())
        for (int i = 0; i < static_cast<int>(at::getNumGPUs()); ++i)
            devices.emplace_back(at::kCUDA, static_cast<c10::DeviceIndex>(i));
#endif
    return devices;
}

std::vector<at::Device> cudaDevices() {
    std::vector<at::Device> cuda;
    for (const at::Device& d : availableDevices())
        if (d.is_cuda())
            cuda.push_back(d);
    return cuda;
}

NamedCheck referenceCheck(std::string name, double tolerance, std::function<ReferenceComparison()> compare,
                          std::array<const char*, 5> describeWith) {
    return {std::move(name), tolerance, [compare, describeWith](std::string& detail) {
                const ReferenceComparison c = compare();
                if (describeWith[0])
                    detail = describe(describeWith, c);
                return c.worst();
            }};
}

NamedCheck errorCheck(std::string name, double tolerance, std::function<double()> error) {
    return {std::move(name), tolerance, [error](std::string&) { return error(); }};
}

NamedCheck badInputCheck(std::string name, BadInputCase bad) {
    return {std::move(name), 0.0, [bad](std::string& detail) {
                detail = badInputProblem(bad);
                return detail.empty() ? 0.0 : 1.0;
            }};
}

NamedCheck float32VsFloat64Check(std::string name, const OpUnderTest& op,
                                 std::function<OpArgs(at::ScalarType, const at::Device&)> makeArgs,
                                 const at::Device& device, uint64_t gradSeed) {
    return {std::move(name), 1e-4, [=](std::string& detail) {
                const OpArgs args64 = makeArgs(at::kDouble, at::kCPU);
                const auto eg = float32Errors(op, args64, makeArgs(at::kFloat, device), gradSeed);
                const auto ec = float32Errors(op, args64, makeArgs(at::kFloat, at::kCPU), gradSeed);
                std::ostringstream t;
                t.precision(3);
                t << device.str() << " (cpu) vs float64: forward " << eg[0] << " (" << ec[0] << "), grad";
                for (int i = 0; i < 5; ++i)
                    t << (i ? ", " : " ") << op.names[i] << " " << eg[i + 1] << " (" << ec[i + 1] << ")";
                detail = t.str();
                return *std::max_element(eg.begin(), eg.end());
            }};
}

NamedCheck deterministicBackwardCheck(std::string name, const OpUnderTest& op, std::function<OpArgs()> makeArgs,
                                      uint64_t gradSeed) {
    return {std::move(name), 0.0, [=](std::string&) {
                const OpArgs args = makeArgs();
                const at::Tensor R = randomLike(op.forward(args), gradSeed);
                const OpArgs a = backwardWith(op, R, args, BackwardMode::Deterministic);
                const OpArgs b = backwardWith(op, R, args, BackwardMode::Deterministic);
                return bitIdentical(a, b) ? 0.0 : 1.0;
            }};
}

NamedCheck atomicBackwardCheck(std::string name, const OpUnderTest& op, std::function<OpArgs()> makeArgs,
                               uint64_t gradSeed) {
    return {std::move(name), 1e-5, [=](std::string&) {
                const OpArgs args = makeArgs();
                const at::Tensor R = randomLike(op.forward(args), gradSeed);
                return worstRelativeError(backwardWith(op, R, args, BackwardMode::Atomic),
                                          backwardWith(op, R, args, BackwardMode::Deterministic));
            }};
}

namespace {

// The fixed table the self-test runs: one case per feature the op must get right.
std::vector<CaseSpec> selfTestCases() {
    std::vector<CaseSpec> cases;
    auto add = [&](auto&& edit) {
        CaseSpec s;
        edit(s);
        cases.push_back(s);
    };
    add([](CaseSpec& s) { s.params.pad_h = s.params.pad_w = 1; });
    add([](CaseSpec& s) { s.params.use_mask = true; s.params.pad_h = s.params.pad_w = 1; });
    add([](CaseSpec& s) { s.params.stride_h = s.params.stride_w = 2; s.params.dilation_h = s.params.dilation_w = 2; s.params.pad_h = s.params.pad_w = 2; s.height = s.width = 9; });
    add([](CaseSpec& s) { s.params.groups = 2; s.params.offset_groups = 2; s.params.use_mask = true; });
    add([](CaseSpec& s) { s.params.offset_groups = 4; s.params.use_mask = true; s.kernel_h = 3; s.kernel_w = 1; s.params.pad_h = 1; });
    add([](CaseSpec& s) { s.kernel_h = s.kernel_w = 5; s.params.pad_h = s.params.pad_w = 2; s.batch = 3; s.offset_scale = 4.0; });
    add([](CaseSpec& s) { s.kernel_h = s.kernel_w = 1; s.batch = 37; s.channels = 2; s.out_channels = 3; s.height = s.width = 4; });
    add([](CaseSpec& s) { s.offsets = OffsetKind::ExactBorders; s.params.use_mask = true; s.params.pad_h = s.params.pad_w = 1; });
    return cases;
}

} // namespace

std::vector<NamedCheck> deformConv2dSelfChecks(const at::Device& d) {
    std::vector<NamedCheck> checks;
    const auto cases = selfTestCases();
    for (size_t i = 0; i < cases.size(); ++i) {
        const CaseSpec spec = cases[i];
        checks.push_back(referenceCheck("float64 vs reference: " + spec.describe(), 1e-10,
                                        [=] { return compareWithReference(spec, 100 + i, at::kDouble, d); }));
    }
    checks.push_back(referenceCheck("float32 vs float64 reference", 1e-4,
                                    [=] { return compareWithReference(cases[1], 200, at::kFloat, d); }));
    CaseSpec fd = finiteDifferenceCase();
    fd.params.use_mask = true;
    checks.push_back(errorCheck("finite differences (float64): input, weight, offset, mask, bias", 1e-6,
                                [=] { return finiteDifferenceError(fd, 300, d); }));
    CaseSpec inv;
    inv.params.use_mask = true;
    inv.params.pad_h = inv.params.pad_w = 1;
    inv.params.stride_h = 2;
    inv.params.groups = 2;
    checks.push_back(errorCheck("zero offsets, unit mask == conv2d (float32)", 1e-5,
                                [=] { return zeroOffsetConvError(inv, 400, at::kFloat, d); }));
    inv.shift_y = 2;
    inv.shift_x = -1;
    checks.push_back(errorCheck("integer offsets == shifted conv2d (float64)", 1e-12,
                                [=] { return integerShiftConvError(inv, 401, at::kDouble, d); }));
    for (const BadInputCase& bad : badInputCases(d))
        checks.push_back(badInputCheck("bad input raises: " + bad.name, bad));
    if (!d.is_cuda())
        return checks;

    checks.push_back(referenceCheck("half vs float64 reference", 3e-2,
                                    [=] { return compareWithReference(cases[1], 500, at::kHalf, d); }, kArgNames));
    checks.push_back(referenceCheck("bfloat16 vs float64 reference", 1.5e-1,
                                    [=] { return compareWithReference(cases[1], 501, at::kBFloat16, d); },
                                    kArgNames));
    const CaseSpec big = collidingCase(3, 32, 40);
    const OpUnderTest op = deformConv2dUnderTest(big.params);
    auto bigArgs = [big](at::ScalarType dtype, const at::Device& device) {
        return argsOf(makeCase(big, 600, dtype, device));
    };
    auto onDevice = [=] { return bigArgs(at::kFloat, d); };
    checks.push_back(float32VsFloat64Check("cuda float32 vs float64 on a colliding case (forward and gradients)", op,
                                           bigArgs, d, 601));
    checks.push_back(deterministicBackwardCheck("deterministic backward is bit-identical (2 runs)", op, onDevice, 602));
    checks.push_back(atomicBackwardCheck("atomic backward == deterministic backward (float32)", op, onDevice, 602));
    return checks;
}

std::vector<CheckResult> runSelfTest(const std::vector<at::Device>& devices,
                                     const std::function<void(const CheckResult&)>& onResult) {
    std::vector<CheckResult> results;
    // A check that throws fails with the exception's message instead of stopping the run.
    auto run = [&](const at::Device& d, const NamedCheck& check) {
        CheckResult r{check.name, d.str(), false, 0, check.tolerance, {}};
        try {
            r.error = check.run(r.detail);
            r.passed = r.error <= check.tolerance;
        } catch (const std::exception& e) {
            r.error = 0;
            r.detail = std::string("threw: ") + e.what();
        }
        if (onResult)
            onResult(r);
        results.push_back(std::move(r));
    };
    for (const at::Device& d : devices) {
        for (const NamedCheck& check : deformConv2dSelfChecks(d))
            run(d, check);
        // Deformable Kernels: reference, gradients, invariants, bad inputs; on CUDA also CUDA vs CPU.
        for (const NamedCheck& check : deformKernel2dSelfChecks(d))
            run(d, check);
        // Deformable RoI pooling: reference, gradients, invariants, bad inputs; on CUDA also the backward modes.
        for (const NamedCheck& check : deformRoiPoolSelfChecks(d))
            run(d, check);
    }
    return results;
}

} // namespace deformscope::ops::checks
