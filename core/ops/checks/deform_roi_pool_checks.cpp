#include "core/ops/checks/deform_roi_pool_checks.h"

#include "core/ops/checks/op_checks.h"
#include "core/ops/deform_conv2d.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

namespace deformscope::ops::checks {
namespace {

constexpr std::array<const char*, 3> kGradNames = {"input", "offset", "mask"};

bool takesPart(const at::Tensor& t) {
    return t.defined() && t.numel() > 0;
}

std::array<at::Tensor, 3> asArray(const DeformRoiPoolGrads& g) {
    return {std::get<0>(g), std::get<1>(g), std::get<2>(g)};
}

// The tensors finite differences perturb: index into (input, offset, mask).
std::array<bool, 3> perturbed(const RoiPoolCaseTensors& t, const DeformRoiPoolParams& p) {
    return {true, takesPart(t.offset), p.use_mask && takesPart(t.mask)};
}

using Forward = std::function<at::Tensor(const RoiPoolCaseTensors&)>;
using Backward = std::function<DeformRoiPoolGrads(const at::Tensor&, const RoiPoolCaseTensors&)>;

double finiteDifferences(const Forward& forward, const Backward& backward, RoiPoolCaseTensors t,
                         const DeformRoiPoolParams& p, uint64_t seed, int64_t maxPerTensor) {
    const at::Tensor out = forward(t);
    const at::Tensor R = randomLike(out, seed + 7);
    const auto analytic = asArray(backward(R, t));
    auto loss = [&] { return (forward(t).to(at::kDouble) * R.to(at::kDouble)).sum().item<double>(); };
    at::Tensor* args[3] = {&t.input, &t.offset, &t.mask};
    const auto parts = perturbed(t, p);

    double worst = 0;
    for (int a = 0; a < 3; ++a)
        if (parts[a])
            worst = std::max(worst, centralDifferenceError(*args[a], analytic[a], loss, maxPerTensor));
    return worst;
}

DeformRoiPoolGrads backwardWithMode(const at::Tensor& grad, const RoiPoolCaseTensors& t, const DeformRoiPoolParams& p,
                                    BackwardMode mode) {
    const BackwardMode before = backwardMode();
    setBackwardMode(mode);
    DeformRoiPoolGrads g = deformRoiPoolBackward(grad, t.input, t.rois, t.offset, t.mask, p);
    setBackwardMode(before);
    return g;
}

double worstOf(const std::array<at::Tensor, 3>& a, const std::array<at::Tensor, 3>& b) {
    double worst = 0;
    for (int i = 0; i < 3; ++i)
        worst = std::max(worst, relativeError(a[i], b[i]));
    return worst;
}

} // namespace

double RoiPoolComparison::worst() const {
    return std::max(forward, *std::max_element(grads.begin(), grads.end()));
}

std::string RoiPoolComparison::describe() const {
    std::ostringstream t;
    t.precision(3);
    t << "forward " << forward << ", grad";
    for (int i = 0; i < 3; ++i)
        t << (i ? ", " : " ") << kGradNames[i] << " " << grads[i];
    return t.str();
}

RoiPoolComparison compareRoiPoolWithReference(const RoiPoolCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                              const at::Device& device) {
    const DeformRoiPoolParams& p = spec.params;
    const RoiPoolCaseTensors t = makeRoiPoolCase(spec, seed, dtype, device);
    RoiPoolComparison r;
    // The reference reads exactly the (possibly rounded) values our op reads.
    const at::Tensor expected = roiPoolReferenceForward(t.input, t.rois, t.offset, t.mask, p);
    r.forward = relativeError(deformRoiPool(t.input, t.rois, t.offset, t.mask, p), expected);

    const at::Tensor grad = randomLike(expected, seed + 1).to(t.input.options());
    const auto want = asArray(roiPoolReferenceBackward(grad, t.input, t.rois, t.offset, t.mask, p));
    const auto got = asArray(deformRoiPoolBackward(grad, t.input, t.rois, t.offset, t.mask, p));
    const auto parts = perturbed(t, p);
    for (int i = 0; i < 3; ++i)
        r.grads[i] = parts[i] ? relativeError(got[i], want[i]) : 0.0;
    return r;
}

double roiPoolFiniteDifferenceError(const RoiPoolCaseSpec& spec, uint64_t seed, const at::Device& device,
                                    int64_t maxPerTensor) {
    const DeformRoiPoolParams p = spec.params;
    return finiteDifferences(
        [p](const RoiPoolCaseTensors& t) { return deformRoiPool(t.input, t.rois, t.offset, t.mask, p); },
        [p](const at::Tensor& g, const RoiPoolCaseTensors& t) {
            return deformRoiPoolBackward(g, t.input, t.rois, t.offset, t.mask, p);
        },
        makeRoiPoolCase(spec, seed, at::kDouble, device), p, seed, maxPerTensor);
}

double roiPoolReferenceFiniteDifferenceError(const RoiPoolCaseSpec& spec, uint64_t seed, int64_t maxPerTensor) {
    const DeformRoiPoolParams p = spec.params;
    return finiteDifferences(
        [p](const RoiPoolCaseTensors& t) { return roiPoolReferenceForward(t.input, t.rois, t.offset, t.mask, p); },
        [p](const at::Tensor& g, const RoiPoolCaseTensors& t) {
            return roiPoolReferenceBackward(g, t.input, t.rois, t.offset, t.mask, p);
        },
        makeRoiPoolCase(spec, seed, at::kDouble, at::kCPU), p, seed, maxPerTensor);
}

double roiPoolNeutralArgumentsError(const RoiPoolCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                    const at::Device& device) {
    RoiPoolCaseSpec s = spec;
    s.offsets = false;
    s.params.use_mask = false;
    const RoiPoolCaseTensors t = makeRoiPoolCase(s, seed, dtype, device);
    const DeformRoiPoolParams plain = s.params;
    DeformRoiPoolParams masked = plain;
    masked.use_mask = true;
    const auto opts = t.input.options();
    const int64_t K = t.rois.size(0), ph = plain.pooled_height, pw = plain.pooled_width;
    const at::Tensor zeros = at::zeros({K, 2, ph, pw}, opts);
    const at::Tensor ones = at::ones({K, 1, ph, pw}, opts);

    const at::Tensor base = deformRoiPool(t.input, t.rois, at::Tensor(), at::Tensor(), plain);
    const at::Tensor R = randomLike(base, seed + 2);
    const at::Tensor gBase = std::get<0>(deformRoiPoolBackward(R, t.input, t.rois, at::Tensor(), at::Tensor(), plain));
    double worst = 0;
    auto compare = [&](const at::Tensor& offset, const at::Tensor& mask, const DeformRoiPoolParams& p) {
        const at::Tensor out = deformRoiPool(t.input, t.rois, offset, mask, p);
        const at::Tensor g = std::get<0>(deformRoiPoolBackward(R, t.input, t.rois, offset, mask, p));
        worst = std::max({worst, at::equal(out, base) ? 0.0 : std::max(relativeError(out, base), 1e-300),
                          at::equal(g, gBase) ? 0.0 : std::max(relativeError(g, gBase), 1e-300)});
    };
    compare(zeros, at::Tensor(), plain);
    compare(at::Tensor(), ones, masked);
    compare(zeros, ones, masked);
    return worst;
}

std::string roiPoolAutogradProblem(const RoiPoolCaseSpec& spec, uint64_t seed, const at::Device& device) {
    at::AutoGradMode enable(true);
    const DeformRoiPoolParams& p = spec.params;
    const RoiPoolCaseTensors t = makeRoiPoolCase(spec, seed, at::kDouble, device);
    const auto parts = perturbed(t, p);
    const at::Tensor input = t.input.clone().requires_grad_(true);
    const at::Tensor rois = t.rois.clone().requires_grad_(true);
    const at::Tensor offset = t.offset.clone().requires_grad_(true);
    const at::Tensor mask = t.mask.clone().requires_grad_(true);
    const at::Tensor out = deformRoiPool(input, rois, offset, mask, p);
    const at::Tensor R = randomLike(out, seed + 3);
    out.backward(R);
    const auto expected = asArray(deformRoiPoolBackward(R, t.input, t.rois, t.offset, t.mask, p));
    const at::Tensor* leaves[3] = {&input, &offset, &mask};
    std::string problems;
    if (rois.grad().defined())
        problems += "rois got a gradient; ";
    for (int i = 0; i < 3; ++i) {
        const at::Tensor g = leaves[i]->grad();
        if (!parts[i]) {
            if (g.defined())
                problems += std::string(kGradNames[i]) + " does not take part but got a gradient; ";
            continue;
        }
        if (!g.defined())
            problems += std::string(kGradNames[i]) + " got no gradient; ";
        else if (!at::allclose(g, expected[i], 1e-12, 1e-12))
            problems += std::string(kGradNames[i]) + ": autograd differs from the backward op; ";
    }
    return problems;
}

std::array<double, 2> roiPoolBackwardModeErrors(const RoiPoolCaseSpec& spec, uint64_t seed,
                                                const at::Device& device) {
    const DeformRoiPoolParams& p = spec.params;
    const RoiPoolCaseTensors t = makeRoiPoolCase(spec, seed, at::kFloat, device);
    const at::Tensor R = randomLike(deformRoiPool(t.input, t.rois, t.offset, t.mask, p), seed + 4);
    const auto a = asArray(backwardWithMode(R, t, p, BackwardMode::Deterministic));
    const auto b = asArray(backwardWithMode(R, t, p, BackwardMode::Deterministic));
    const auto c = asArray(backwardWithMode(R, t, p, BackwardMode::Atomic));
    bool identical = true;
    for (int i = 0; i < 3; ++i)
        identical = identical && at::equal(a[i], b[i]);
    return {identical ? 0.0 : std::max(worstOf(a, b), 1e-300), worstOf(c, a)};
}

std::vector<BadInputCase> roiPoolBadInputCases(const at::Device& device) {
    RoiPoolCaseSpec spec; // N2 C3 9x11, K6, pooled 3x4
    spec.offsets = true;
    spec.params.use_mask = true;
    const RoiPoolCaseTensors t = makeRoiPoolCase(spec, 11, at::kFloat, device);
    const DeformRoiPoolParams p = spec.params;
    const auto opts = t.input.options();
    auto run = [](const RoiPoolCaseTensors& x, const DeformRoiPoolParams& q) {
        deformRoiPool(x.input, x.rois, x.offset, x.mask, q);
    };
    auto with = [&](auto&& edit) {
        RoiPoolCaseTensors x = t;
        edit(x);
        return x;
    };
    auto batchIndex = [&](double value) {
        return with([&, value](auto& x) {
            x.rois = x.rois.clone();
            x.rois[2][0].fill_(value);
        });
    };

    std::vector<BadInputCase> cases;
    auto add = [&](std::string name, std::string message, RoiPoolCaseTensors x, DeformRoiPoolParams q) {
        cases.push_back({std::move(name), std::move(message), [=] { run(x, q); }});
    };
    add("3-D input", "deform_roi_pool: input must be 4-D [N, C, H, W], got shape [3, 9, 11]",
        with([](auto& x) { x.input = x.input[0]; }), p);
    add("non-floating input", "input must be a floating-point tensor, got dtype Long",
        with([](auto& x) { x.input = x.input.to(at::kLong); }), p);
    add("rois with 4 columns", "rois must have shape [K, 5] (batch_index, x1, y1, x2, y2), got [6, 4]",
        with([](auto& x) { x.rois = x.rois.narrow(1, 1, 4); }), p);
    add("1-D rois", "rois must have shape [K, 5] (batch_index, x1, y1, x2, y2), got [5]",
        with([](auto& x) { x.rois = x.rois[0]; }), p);
    add("3-D rois", "rois must have shape [K, 5] (batch_index, x1, y1, x2, y2), got [1, 6, 5]",
        with([](auto& x) { x.rois = x.rois.unsqueeze(0); }), p);
    add("rois dtype", "rois has dtype Double but input has dtype Float",
        with([](auto& x) { x.rois = x.rois.to(at::kDouble); }), p);
    add("batch index too large", "rois[:, 0] (the batch index) must lie in [0, N) = [0, 2) for input of batch N=2, "
        "got values from 0 to 2", batchIndex(2.0), p);
    add("negative batch index", "rois[:, 0] (the batch index) must lie in [0, N) = [0, 2)", batchIndex(-1.0), p);
    add("NaN batch index", "rois[:, 0] (the batch index) must lie in [0, N)",
        batchIndex(std::numeric_limits<double>::quiet_NaN()), p);
    add("offset shape", "offset must have shape [K, 2, pooled_height, pooled_width] = [6, 2, 3, 4], got [6, 2, 4, 3]",
        with([&](auto& x) { x.offset = at::zeros({6, 2, 4, 3}, opts); }), p);
    add("offset for another number of RoIs",
        "offset must have shape [K, 2, pooled_height, pooled_width] = [6, 2, 3, 4], got [5, 2, 3, 4]",
        with([&](auto& x) { x.offset = at::zeros({5, 2, 3, 4}, opts); }), p);
    add("offset with one channel", "got [6, 1, 3, 4]", with([&](auto& x) { x.offset = at::zeros({6, 1, 3, 4}, opts); }),
        p);
    add("offset dtype", "offset has dtype Half but input has dtype Float",
        with([](auto& x) { x.offset = x.offset.to(at::kHalf); }), p);
    add("mask shape", "mask must have shape [K, 1, pooled_height, pooled_width] = [6, 1, 3, 4], got [6, 2, 3, 4]",
        with([&](auto& x) { x.mask = at::zeros({6, 2, 3, 4}, opts); }), p);
    add("use_mask without a mask", "mask must have shape [K, 1, pooled_height, pooled_width] = [6, 1, 3, 4], got [0]",
        with([&](auto& x) { x.mask = at::empty({0}, opts); }), p);
    DeformRoiPoolParams q = p;
    q.pooled_height = 0;
    add("zero pooled height", "pooled size (pooled_height, pooled_width) must be positive, got (0, 4)", t, q);
    q = p;
    q.pooled_width = -2;
    add("negative pooled width", "pooled size (pooled_height, pooled_width) must be positive, got (3, -2)", t, q);
    q = p;
    q.spatial_scale = 0;
    add("zero spatial_scale", "spatial_scale must be positive and finite, got 0", t, q);
    q.spatial_scale = std::numeric_limits<double>::quiet_NaN();
    add("NaN spatial_scale", "spatial_scale must be positive and finite, got nan", t, q);
    q = p;
    q.gamma = std::numeric_limits<double>::infinity();
    add("infinite gamma", "gamma must be finite, got inf", t, q);
    cases.push_back({"grad_output shape",
                     "grad_output must have shape [K, C, pooled_height, pooled_width] = [6, 3, 3, 4], got [6, 3, 4, 3]",
                     [=] { deformRoiPoolBackward(at::zeros({6, 3, 4, 3}, opts), t.input, t.rois, t.offset, t.mask, p); }});
    // A tensor on another device must be named, not read from the wrong memory.
    // The meta device exists in every build, so the check runs without a GPU too.
    const at::Device other = device.is_cuda() ? at::Device(at::kCPU) : at::Device(at::kMeta);
    const std::string otherName = other.str(), here = device.str();
    add("rois on another device", "rois is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.rois = x.rois.to(other); }), p);
    add("offset on another device", "offset is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.offset = x.offset.to(other); }), p);
    add("mask on another device", "mask is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.mask = x.mask.to(other); }), p);
    return cases;
}

namespace {

// The fixed table the self-test runs: one case per feature the op must get right.
std::vector<RoiPoolCaseSpec> selfTestCases() {
    std::vector<RoiPoolCaseSpec> cases;
    auto add = [&](auto&& edit) {
        RoiPoolCaseSpec s;
        edit(s);
        cases.push_back(s);
    };
    add([](RoiPoolCaseSpec& s) { s.placement = RoiPlacement::Inside; });                                   // RoIAlign
    add([](RoiPoolCaseSpec& s) { s.offsets = true; });                                                     // DCNv1
    add([](RoiPoolCaseSpec& s) { s.offsets = true; s.params.use_mask = true; s.offset_scale = 3.0; });     // DCNv2
    add([](RoiPoolCaseSpec& s) { s.params.sampling_ratio = 0; s.offsets = true; s.placement = RoiPlacement::Mixed; });
    add([](RoiPoolCaseSpec& s) { s.params.sampling_ratio = 1; s.params.pooled_height = s.params.pooled_width = 2; s.params.spatial_scale = 0.25; s.params.gamma = 0.5; s.offsets = true; s.params.use_mask = true; s.placement = RoiPlacement::Mixed; });
    add([](RoiPoolCaseSpec& s) { s.batch = 3; s.rois = 9; s.height = 1; s.width = 5; s.offsets = true; s.params.use_mask = true; });
    return cases;
}

RoiPoolCaseSpec finiteDifferenceCase(int64_t samplingRatio) {
    RoiPoolCaseSpec s;
    s.rois = 4;
    s.offsets = true;
    s.params.use_mask = true;
    s.params.gamma = 0.3; // offsets move reads across the borders into the clamped bands
    s.params.sampling_ratio = samplingRatio;
    s.awayFromKinks = true;
    return s;
}

} // namespace

std::vector<NamedCheck> deformRoiPoolSelfChecks(const at::Device& d) {
    std::vector<NamedCheck> checks;
    auto referenceRow = [](std::string name, double tolerance, std::function<RoiPoolComparison()> compare) {
        return NamedCheck{std::move(name), tolerance, [compare](std::string& detail) {
                              const RoiPoolComparison c = compare();
                              detail = c.describe();
                              return c.worst();
                          }};
    };
    const auto cases = selfTestCases();
    for (size_t i = 0; i < cases.size(); ++i) {
        const RoiPoolCaseSpec spec = cases[i];
        checks.push_back(referenceRow("deform_roi_pool float64 vs reference: " + spec.describe(), 1e-10,
                                      [=] { return compareRoiPoolWithReference(spec, 800 + i, at::kDouble, d); }));
    }
    checks.push_back(referenceRow("deform_roi_pool float32 vs float64 reference", 1e-4,
                                  [=] { return compareRoiPoolWithReference(cases[2], 810, at::kFloat, d); }));
    for (int64_t ratio : {0, 2}) {
        const RoiPoolCaseSpec fd = finiteDifferenceCase(ratio);
        checks.push_back(errorCheck("deform_roi_pool finite differences (float64, sampling_ratio " +
                                        std::to_string(ratio) + "): input, offset, mask",
                                    1e-6, [=] { return roiPoolFiniteDifferenceError(fd, 820 + ratio, d); }));
    }
    if (d.is_cpu()) {
        const RoiPoolCaseSpec fd = finiteDifferenceCase(0);
        checks.push_back(errorCheck("deform_roi_pool reference: finite differences of its forward == its backward",
                                    1e-6, [=] { return roiPoolReferenceFiniteDifferenceError(fd, 830); }));
    }
    checks.push_back(errorCheck("deform_roi_pool zero offsets, unit mask == plain RoIAlign (bit for bit)", 0.0,
                                [=] { return roiPoolNeutralArgumentsError(cases[1], 840, at::kFloat, d); }));
    for (const BadInputCase& bad : roiPoolBadInputCases(d))
        checks.push_back(badInputCheck("deform_roi_pool bad input raises: " + bad.name, bad));
    if (!d.is_cuda())
        return checks;

    checks.push_back(referenceRow("deform_roi_pool half vs float64 reference", 5e-3,
                                  [=] { return compareRoiPoolWithReference(cases[2], 850, at::kHalf, d); }));
    checks.push_back(referenceRow("deform_roi_pool bfloat16 vs float64 reference", 3e-2,
                                  [=] { return compareRoiPoolWithReference(cases[2], 851, at::kBFloat16, d); }));
    RoiPoolCaseSpec big = cases[2];
    big.channels = 32;
    big.rois = 64;
    big.height = big.width = 40;
    checks.push_back(referenceRow("deform_roi_pool cuda float32 vs float64 reference (64 RoIs, 32 channels)", 1e-4,
                                  [=] { return compareRoiPoolWithReference(big, 860, at::kFloat, d); }));
    checks.push_back(errorCheck("deform_roi_pool deterministic backward is bit-identical (2 runs)", 0.0,
                                [=] { return roiPoolBackwardModeErrors(big, 861, d)[0]; }));
    checks.push_back(errorCheck("deform_roi_pool atomic backward == deterministic backward (float32)", 1e-5,
                                [=] { return roiPoolBackwardModeErrors(big, 861, d)[1]; }));
    return checks;
}

} // namespace deformscope::ops::checks
