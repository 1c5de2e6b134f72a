#include "core/ops/checks/selftest.h"

#include "core/ops/checks/deform_kernel2d_checks.h"
#include "core/ops/deform_conv2d.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace deformscope::ops::checks {
namespace {

at::Tensor randomLike(const at::Tensor& like, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randn(like.sizes(), gen, at::TensorOptions().dtype(at::kDouble)).to(like.options());
}

// sum(out * R) in float64.
double projectedLoss(const CaseTensors& t, const at::Tensor& R, const DeformConv2dParams& p) {
    return (deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, p) * R).sum().item<double>();
}

} // namespace

double ReferenceComparison::worst() const {
    return std::max(forward, *std::max_element(grads.begin(), grads.end()));
}

ReferenceComparison compareWithReference(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                         const at::Device& device) {
    const CaseTensors ours = makeCase(spec, seed, dtype, device);
    // The reference reads exactly the values our op reads (already rounded to
    // `dtype`): in half or bfloat16 an offset's rounding alone can move a sample
    // across an integer, where the bilinear slope jumps, and that is not an error
    // of the kernels (bfloat16's offset gradient was 0.47 off against unrounded values).
    auto exact = [](const at::Tensor& t) { return t.defined() ? t.to(at::kCPU, at::kDouble) : t; };
    CaseTensors ref = ours;
    ref.input = exact(ours.input);
    ref.weight = exact(ours.weight);
    ref.offset = exact(ours.offset);
    ref.mask = exact(ours.mask);
    ref.bias = exact(ours.bias);
    const DeformConv2dParams& p = spec.params;

    ReferenceComparison r;
    const at::Tensor expected = referenceForward(ref.input, ref.weight, ref.offset, ref.mask, ref.bias, p);
    const at::Tensor actual = deformConv2d(ours.input, ours.weight, ours.offset, ours.mask, ours.bias, p);
    r.forward = relativeError(actual, expected);

    const at::Tensor gradOurs = randomLike(expected, seed + 1).to(device, dtype);
    const at::Tensor gradRef = exact(gradOurs);
    const auto expectedGrads = referenceBackward(gradRef, ref.input, ref.weight, ref.offset, ref.mask, ref.bias, p);
    const auto actualGrads = deformConv2dBackward(gradOurs, ours.input, ours.weight, ours.offset, ours.mask, ours.bias, p);
    r.grads[0] = relativeError(std::get<0>(actualGrads), std::get<0>(expectedGrads));
    r.grads[1] = relativeError(std::get<1>(actualGrads), std::get<1>(expectedGrads));
    r.grads[2] = relativeError(std::get<2>(actualGrads), std::get<2>(expectedGrads));
    r.grads[3] = p.use_mask ? relativeError(std::get<3>(actualGrads), std::get<3>(expectedGrads)) : 0.0;
    r.grads[4] = relativeError(std::get<4>(actualGrads), std::get<4>(expectedGrads));
    return r;
}

double finiteDifferenceError(const CaseSpec& spec, uint64_t seed, const at::Device& device, int64_t maxPerTensor) {
    CaseTensors t = makeCase(spec, seed, at::kDouble, device);
    const DeformConv2dParams& p = spec.params;
    const at::Tensor out = deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, p);
    const at::Tensor R = randomLike(out, seed + 7);
    const auto analytic = deformConv2dBackward(R, t.input, t.weight, t.offset, t.mask, t.bias, p);
    const at::Tensor grads[5] = {std::get<0>(analytic), std::get<1>(analytic), std::get<2>(analytic),
                                 std::get<3>(analytic), std::get<4>(analytic)};
    at::Tensor* args[5] = {&t.input, &t.weight, &t.offset, &t.mask, &t.bias};

    constexpr double h = 1e-6;
    double worst = 0;
    for (int a = 0; a < 5; ++a) {
        at::Tensor& arg = *args[a];
        if (arg.numel() == 0 || (a == 3 && !p.use_mask))
            continue;
        const at::Tensor grad = grads[a].to(at::kCPU).contiguous();
        const int64_t n = arg.numel();
        const int64_t step = std::max<int64_t>(1, n / maxPerTensor);
        for (int64_t i = 0; i < n; i += step) {
            at::Tensor flat = arg.view({-1});
            const double original = flat[i].item<double>();
            flat[i].fill_(original + h);
            const double plus = projectedLoss(t, R, p);
            flat[i].fill_(original - h);
            const double minus = projectedLoss(t, R, p);
            flat[i].fill_(original);
            const double fd = (plus - minus) / (2 * h);
            const double an = grad.view({-1})[i].item<double>();
            worst = std::max(worst, std::abs(fd - an) / (1 + std::abs(an)));
        }
    }
    return worst;
}

double zeroOffsetConvError(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    CaseSpec s = spec;
    s.offsets = OffsetKind::Zero;
    CaseTensors t = makeCase(s, seed, dtype, device);
    if (s.params.use_mask)
        t.mask.fill_(1.0);
    const DeformConv2dParams& p = s.params;
    const at::Tensor ours = deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, p);
    const at::Tensor conv = at::conv2d(t.input, t.weight, t.bias.numel() ? t.bias : at::Tensor(),
                                       std::vector<int64_t>{p.stride_h, p.stride_w}, std::vector<int64_t>{p.pad_h, p.pad_w},
                                       std::vector<int64_t>{p.dilation_h, p.dilation_w}, p.groups);
    return relativeError(ours, conv);
}

double integerShiftConvError(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    CaseSpec s = spec;
    s.offsets = OffsetKind::Integer;
    CaseTensors t = makeCase(s, seed, dtype, device);
    if (s.params.use_mask)
        t.mask.fill_(1.0);
    const DeformConv2dParams& p = s.params;
    const at::Tensor ours = deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, p);

    // Shifting every tap by (a, b) reads the zero-extended input at y + a, x + b:
    // pad generously, crop the window the shifted grid covers, convolve without padding.
    const int64_t margin = std::max({std::abs(s.shift_y), std::abs(s.shift_x)}) + std::max(p.pad_h, p.pad_w) + 1;
    const at::Tensor padded = at::constant_pad_nd(t.input, {margin, margin, margin, margin}, 0.0);
    const int64_t spanH = (s.outH() - 1) * p.stride_h + p.dilation_h * (s.kernel_h - 1) + 1;
    const int64_t spanW = (s.outW() - 1) * p.stride_w + p.dilation_w * (s.kernel_w - 1) + 1;
    const at::Tensor window = padded.narrow(2, margin - p.pad_h + s.shift_y, spanH)
                                  .narrow(3, margin - p.pad_w + s.shift_x, spanW);
    const at::Tensor conv = at::conv2d(window, t.weight, t.bias.numel() ? t.bias : at::Tensor(),
                                       std::vector<int64_t>{p.stride_h, p.stride_w}, std::vector<int64_t>{0, 0},
                                       std::vector<int64_t>{p.dilation_h, p.dilation_w}, p.groups);
    return relativeError(ours, conv);
}

std::string errorMessageOf(const std::function<void()>& call) {
    try {
        call();
    } catch (const c10::Error& e) {
        return e.what_without_backtrace();
    }
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

std::vector<CheckResult> runSelfTest(const std::vector<at::Device>& devices,
                                     const std::function<void(const CheckResult&)>& onResult) {
    std::vector<CheckResult> results;
    auto report = [&](const at::Device& d, std::string name, double error, double tolerance, std::string detail = {}) {
        CheckResult r{std::move(name), d.str(), error <= tolerance, error, tolerance, std::move(detail)};
        if (onResult)
            onResult(r);
        results.push_back(std::move(r));
    };
    // A check that throws fails with the exception's message instead of stopping the run.
    // A check may describe its parts (e.g. the error of each gradient) in `detail`.
    std::string detail;
    auto guarded = [&](const at::Device& d, const std::string& name, double tolerance, const std::function<double()>& f) {
        try {
            detail.clear();
            const double error = f();
            report(d, name, error, tolerance, detail);
        } catch (const std::exception& e) {
            CheckResult r{name, d.str(), false, 0, tolerance, std::string("threw: ") + e.what()};
            if (onResult)
                onResult(r);
            results.push_back(std::move(r));
        }
    };

    for (const at::Device& d : devices) {
        const auto cases = selfTestCases();
        for (size_t i = 0; i < cases.size(); ++i) {
            guarded(d, "float64 vs reference: " + cases[i].describe(), 1e-10,
                    [&] { return compareWithReference(cases[i], 100 + i, at::kDouble, d).worst(); });
        }
        guarded(d, "float32 vs float64 reference", 1e-4,
                [&] { return compareWithReference(cases[1], 200, at::kFloat, d).worst(); });
        CaseSpec fd;
        fd.params.use_mask = true;
        fd.params.pad_h = fd.params.pad_w = 1;
        fd.offsets = OffsetKind::AwayFromKinks;
        fd.batch = 1;
        fd.height = fd.width = 5;
        fd.channels = fd.out_channels = 2;
        guarded(d, "finite differences (float64): input, weight, offset, mask, bias", 1e-6,
                [&] { return finiteDifferenceError(fd, 300, d); });
        CaseSpec inv;
        inv.params.use_mask = true;
        inv.params.pad_h = inv.params.pad_w = 1;
        inv.params.stride_h = 2;
        inv.params.groups = 2;
        guarded(d, "zero offsets, unit mask == conv2d (float32)", 1e-5,
                [&] { return zeroOffsetConvError(inv, 400, at::kFloat, d); });
        inv.shift_y = 2;
        inv.shift_x = -1;
        guarded(d, "integer offsets == shifted conv2d (float64)", 1e-12,
                [&] { return integerShiftConvError(inv, 401, at::kDouble, d); });
        for (const BadInputCase& bad : badInputCases(d)) {
            const std::string message = errorMessageOf(bad.call);
            const bool ok = message.find(bad.expectedMessage) != std::string::npos;
            report(d, "bad input raises: " + bad.name, ok ? 0.0 : 1.0, 0.0,
                   ok ? std::string() : "expected '" + bad.expectedMessage + "', got '" + message + "'");
        }
        // Deformable Kernels: reference, gradients, invariants, bad inputs; on CUDA also CUDA vs CPU.
        for (const NamedCheck& check : deformKernel2dSelfChecks(d))
            guarded(d, check.name, check.tolerance, check.run);

        if (!d.is_cuda())
            continue;
        auto parts = [](const ReferenceComparison& c) {
            std::ostringstream t;
            t.precision(3);
            t << "forward " << c.forward << ", grad input " << c.grads[0] << ", weight " << c.grads[1] << ", offset "
              << c.grads[2] << ", mask " << c.grads[3] << ", bias " << c.grads[4];
            return t.str();
        };
        guarded(d, "half vs float64 reference", 3e-2, [&] {
            const ReferenceComparison c = compareWithReference(cases[1], 500, at::kHalf, d);
            detail = parts(c);
            return c.worst();
        });
        guarded(d, "bfloat16 vs float64 reference", 1.5e-1, [&] {
            const ReferenceComparison c = compareWithReference(cases[1], 501, at::kBFloat16, d);
            detail = parts(c);
            return c.worst();
        });

        // Many samples collide on the same pixels: atomics would reorder the sums.
        CaseSpec big;
        big.batch = 3;
        big.channels = big.out_channels = 32;
        big.height = big.width = 40;
        big.params.use_mask = true;
        big.params.pad_h = big.params.pad_w = 1;
        big.offset_scale = 3.0;
        const CaseTensors cpu = makeCase(big, 600, at::kFloat, at::kCPU);
        const CaseTensors gpu = makeCase(big, 600, at::kFloat, d);
        const DeformConv2dParams& p = big.params;
        // CUDA and CPU float32 against the float64 CPU result on the same values: CUDA must
        // meet the float32 tolerance (summation orders differ, so CUDA != CPU bit for bit).
        guarded(d, "cuda float32 vs float64 on a colliding case (forward and gradients)", 1e-4, [&] {
            const CaseTensors ref = makeCase(big, 600, at::kDouble, at::kCPU);
            const at::Tensor o64 = deformConv2d(ref.input, ref.weight, ref.offset, ref.mask, ref.bias, p);
            const at::Tensor R = randomLike(o64, 601);
            const auto g64 = deformConv2dBackward(R, ref.input, ref.weight, ref.offset, ref.mask, ref.bias, p);
            auto errors = [&](const CaseTensors& c) {
                const at::Tensor o = deformConv2d(c.input, c.weight, c.offset, c.mask, c.bias, p);
                const auto g = deformConv2dBackward(R.to(c.input.device(), at::kFloat), c.input, c.weight, c.offset,
                                                    c.mask, c.bias, p);
                return std::array<double, 6>{relativeError(o, o64), relativeError(std::get<0>(g), std::get<0>(g64)),
                                             relativeError(std::get<1>(g), std::get<1>(g64)),
                                             relativeError(std::get<2>(g), std::get<2>(g64)),
                                             relativeError(std::get<3>(g), std::get<3>(g64)),
                                             relativeError(std::get<4>(g), std::get<4>(g64))};
            };
            const auto eg = errors(gpu), ec = errors(cpu);
            std::ostringstream t;
            t.precision(3);
            t << "cuda (cpu) vs float64: forward " << eg[0] << " (" << ec[0] << "), grad input " << eg[1] << " (" << ec[1]
              << "), weight " << eg[2] << " (" << ec[2] << "), offset " << eg[3] << " (" << ec[3] << "), mask " << eg[4]
              << " (" << ec[4] << "), bias " << eg[5] << " (" << ec[5] << ")";
            detail = t.str();
            return *std::max_element(eg.begin(), eg.end());
        });
        const at::Tensor R = randomLike(deformConv2d(gpu.input, gpu.weight, gpu.offset, gpu.mask, gpu.bias, p), 602);
        auto backwardWith = [&](BackwardMode mode) {
            const BackwardMode before = backwardMode();
            setBackwardMode(mode);
            auto g = deformConv2dBackward(R, gpu.input, gpu.weight, gpu.offset, gpu.mask, gpu.bias, p);
            setBackwardMode(before);
            return g;
        };
        guarded(d, "deterministic backward is bit-identical (2 runs)", 0.0, [&] {
            const auto a = backwardWith(BackwardMode::Deterministic);
            const auto b = backwardWith(BackwardMode::Deterministic);
            const bool same = at::equal(std::get<0>(a), std::get<0>(b)) && at::equal(std::get<1>(a), std::get<1>(b)) &&
                              at::equal(std::get<2>(a), std::get<2>(b)) && at::equal(std::get<3>(a), std::get<3>(b)) &&
                              at::equal(std::get<4>(a), std::get<4>(b));
            return same ? 0.0 : 1.0;
        });
        guarded(d, "atomic backward == deterministic backward (float32)", 1e-5, [&] {
            const auto a = backwardWith(BackwardMode::Atomic);
            const auto b = backwardWith(BackwardMode::Deterministic);
            return relativeError(std::get<0>(a), std::get<0>(b));
        });
    }
    return results;
}

} // namespace deformscope::ops::checks
