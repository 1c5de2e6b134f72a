#include "core/ops/checks/op_checks.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

namespace deformscope::ops::checks {

bool OpUnderTest::takesPart(const OpArgs& args, int i) const {
    return (i != 3 || usesFourth) && args[i].defined() && args[i].numel() > 0;
}

double relativeError(const at::Tensor& a, const at::Tensor& b) {
    TORCH_CHECK(a.sizes() == b.sizes(), "relativeError: shapes differ: ", a.sizes(), " vs ", b.sizes());
    if (a.numel() == 0)
        return 0.0;
    const at::Tensor x = a.detach().to(at::kCPU, at::kDouble);
    const at::Tensor y = b.detach().to(at::kCPU, at::kDouble);
    return ((x - y).abs() / (1 + y.abs())).max().item<double>();
}

at::Tensor randomLike(const at::Tensor& like, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randn(like.sizes(), gen, at::TensorOptions().dtype(at::kDouble)).to(like.options());
}

OpArgs referenceGradients(const OpUnderTest& op, const at::Tensor& grad, const OpArgs& args) {
    at::AutoGradMode enable(true);
    OpArgs leaves = args;
    std::vector<at::Tensor> wrt;
    for (int i = 0; i < 5; ++i) {
        if (op.takesPart(args, i)) {
            leaves[i] = args[i].detach().clone().requires_grad_(true);
            wrt.push_back(leaves[i]);
        }
    }
    const at::Tensor out = op.reference(leaves);
    const auto grads = torch::autograd::grad({out}, wrt, {grad}, false, false, /*allow_unused=*/true);
    OpArgs result;
    size_t next = 0;
    for (int i = 0; i < 5; ++i) {
        const at::Tensor g = op.takesPart(args, i) ? grads[next++] : at::Tensor();
        result[i] = g.defined() ? g : at::zeros_like(args[i]);
    }
    return result;
}

double ReferenceComparison::worst() const {
    return std::max(forward, *std::max_element(grads.begin(), grads.end()));
}

ReferenceComparison compareWithReference(const OpUnderTest& op, const OpArgs& ours, uint64_t gradSeed) {
    auto exact = [](const at::Tensor& t) { return t.defined() ? t.to(at::kCPU, at::kDouble) : t; };
    OpArgs ref;
    std::transform(ours.begin(), ours.end(), ref.begin(), exact);

    ReferenceComparison r;
    const at::Tensor expected = op.reference(ref);
    r.forward = relativeError(op.forward(ours), expected);

    const at::Tensor gradOurs = randomLike(expected, gradSeed).to(ours[0].options());
    const OpArgs expectedGrads = referenceGradients(op, exact(gradOurs), ref);
    const OpArgs actualGrads = op.backward(gradOurs, ours);
    for (int i = 0; i < 5; ++i)
        r.grads[i] = (i == 3 && !op.usesFourth) ? 0.0 : relativeError(actualGrads[i], expectedGrads[i]);
    return r;
}

std::string describe(const std::array<const char*, 5>& names, const ReferenceComparison& c) {
    std::ostringstream t;
    t.precision(3);
    t << "forward " << c.forward << ", grad";
    for (int i = 0; i < 5; ++i)
        t << (i ? ", " : " ") << names[i] << " " << c.grads[i];
    return t.str();
}

double finiteDifferenceError(const OpUnderTest& op, const OpArgs& args, uint64_t seed, int64_t maxPerTensor) {
    const at::Tensor out = op.forward(args);
    const at::Tensor R = randomLike(out, seed + 7);
    const OpArgs analytic = op.backward(R, args);
    auto loss = [&] { return (op.forward(args) * R).sum().item<double>(); };

    double worst = 0;
    for (int a = 0; a < 5; ++a)
        if (op.takesPart(args, a))
            worst = std::max(worst, centralDifferenceError(args[a], analytic[a], loss, maxPerTensor));
    return worst;
}

double centralDifferenceError(const at::Tensor& arg, const at::Tensor& analytic, const std::function<double()>& loss,
                              int64_t maxPerTensor) {
    constexpr double h = 1e-6;
    const at::Tensor grad = analytic.to(at::kCPU, at::kDouble).contiguous().view({-1});
    at::Tensor flat = arg.view({-1});
    const int64_t n = flat.numel();
    const int64_t step = std::max<int64_t>(1, n / maxPerTensor);
    double worst = 0;
    for (int64_t i = 0; i < n; i += step) {
        const double original = flat[i].item<double>();
        flat[i].fill_(original + h);
        const double plus = loss();
        flat[i].fill_(original - h);
        const double minus = loss();
        flat[i].fill_(original);
        const double fd = (plus - minus) / (2 * h);
        const double an = grad[i].item<double>();
        worst = std::max(worst, std::abs(fd - an) / (1 + std::abs(an)));
    }
    return worst;
}

OpArgs backwardWith(const OpUnderTest& op, const at::Tensor& grad, const OpArgs& args, BackwardMode mode) {
    const BackwardMode before = backwardMode();
    setBackwardMode(mode);
    OpArgs g = op.backward(grad, args);
    setBackwardMode(before);
    return g;
}

bool bitIdentical(const OpArgs& a, const OpArgs& b) {
    for (int i = 0; i < 5; ++i)
        if (!at::equal(a[i], b[i]))
            return false;
    return true;
}

double worstRelativeError(const OpArgs& a, const OpArgs& b) {
    double worst = 0;
    for (int i = 0; i < 5; ++i)
        worst = std::max(worst, relativeError(a[i], b[i]));
    return worst;
}

std::array<double, 6> float32Errors(const OpUnderTest& op, const OpArgs& args64, const OpArgs& args32,
                                    uint64_t gradSeed) {
    const at::Tensor o64 = op.forward(args64);
    const at::Tensor R = randomLike(o64, gradSeed);
    const OpArgs g64 = op.backward(R, args64);
    const OpArgs g32 = op.backward(R.to(args32[0].device(), at::kFloat), args32);
    std::array<double, 6> e{relativeError(op.forward(args32), o64)};
    for (int i = 0; i < 5; ++i)
        e[i + 1] = relativeError(g32[i], g64[i]);
    return e;
}

std::string referenceProblem(const OpUnderTest& op, const ReferenceComparison& r, double tolerance) {
    std::ostringstream t;
    if (!(r.forward < tolerance))
        t << "forward error " << r.forward << "; ";
    for (int i = 0; i < 5; ++i)
        if (!(r.grads[i] < tolerance))
            t << "grad " << op.names[i] << " error " << r.grads[i] << "; ";
    return t.str();
}

std::string autogradProblem(const OpUnderTest& op, const OpArgs& args,
                            const std::function<at::Tensor(const at::Tensor&)>& gradFor) {
    OpArgs leaves;
    for (int i = 0; i < 5; ++i)
        leaves[i] = args[i].clone().requires_grad_(true);
    const at::Tensor out = op.forward(leaves);
    if (!out.requires_grad())
        return "the forward op's output does not require grad";
    const at::Tensor R = gradFor(out);
    (out * R).sum().backward();
    const OpArgs expected = op.backward(R, args);
    std::string problems;
    for (int i = 0; i < 5; ++i) {
        const at::Tensor& got = leaves[i].grad();
        if (i == 3 && !op.usesFourth) {
            if (got.defined())
                problems += std::string(op.names[i]) + ": the unused placeholder got a gradient; ";
        } else if (!got.defined() || !at::allclose(got, expected[i])) {
            problems += std::string(op.names[i]) + ": autograd differs from the backward op; ";
        }
    }
    return problems;
}

std::string threadCountProblem(const OpUnderTest& op, const OpArgs& args, const at::Tensor& grad,
                               const std::vector<int>& sameAcrossRuns, const std::vector<int>& sameAcrossThreads) {
    const int threads = at::get_num_threads();
    const OpArgs a = op.backward(grad, args);
    const OpArgs b = op.backward(grad, args);
    at::set_num_threads(1);
    const OpArgs c = op.backward(grad, args);
    at::set_num_threads(threads);
    std::string problems;
    for (int i : sameAcrossRuns)
        if (!at::equal(a[i], b[i]))
            problems += std::string(op.names[i]) + " differs between two runs; ";
    for (int i : sameAcrossThreads)
        if (!at::equal(a[i], c[i]))
            problems += std::string(op.names[i]) + " differs on one thread; ";
    return problems;
}

std::string emptyBatchProblem(const OpUnderTest& op, const OpArgs& args, const std::vector<int64_t>& outputSizes) {
    const OpArgs none = imagesOf(args, 0, 0);
    const at::Tensor out = op.forward(none);
    if (out.sizes().vec() != outputSizes)
        return "output of an empty batch has shape " + c10::str(out.sizes());
    const OpArgs g = op.backward(at::zeros_like(out), none);
    if (g[0].size(0) != 0)
        return "input gradient of an empty batch has shape " + c10::str(g[0].sizes());
    if (!at::equal(g[1], at::zeros_like(args[1])))
        return "weight gradient of an empty batch is not zero";
    return {};
}

std::string nonContiguousProblem(const OpUnderTest& op, const OpArgs& args) {
    const OpArgs strided = transposedStorage(args);
    if (strided[0].is_contiguous())
        return "the transposed input is contiguous";
    return at::equal(op.forward(args), op.forward(strided)) ? "" : "non-contiguous arguments change the output";
}

OpArgs imagesOf(const OpArgs& args, int64_t first, int64_t count) {
    OpArgs out = args;
    for (int i : {0, 2, 3, 4})
        if (args[i].defined() && args[i].dim() == 4)
            out[i] = args[i].narrow(0, first, count);
    return out;
}

OpArgs transposedStorage(const OpArgs& args) {
    OpArgs out = args;
    for (at::Tensor& t : out)
        if (t.defined() && t.dim() == 4)
            t = t.transpose(2, 3).contiguous().transpose(2, 3);
    return out;
}

const char* offsetKindName(OffsetKind kind) {
    static const char* kinds[] = {"random", "away-from-kinks", "zero", "integer", "exact-borders"};
    return kinds[static_cast<int>(kind)];
}

at::Tensor makeOffsets(OffsetKind kind, int64_t N, int64_t taps, int64_t A, int64_t B,
                       const std::function<double(int64_t, int64_t, int64_t, int64_t)>& base, const double extent[2],
                       double scale, int64_t shift_y, int64_t shift_x, at::Generator& gen) {
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    at::Tensor baseT = at::empty({1, taps, 2, A, B}, opts);
    auto acc = baseT.accessor<double, 5>();
    for (int64_t k = 0; k < taps; ++k)
        for (int64_t axis = 0; axis < 2; ++axis)
            for (int64_t a = 0; a < A; ++a)
                for (int64_t b = 0; b < B; ++b)
                    acc[0][k][axis][a][b] = base(k, axis, a, b);
    const std::vector<int64_t> shape = {N, taps, 2, A, B};
    at::Tensor off;
    switch (kind) {
    case OffsetKind::Random:
        off = at::randn(shape, gen, opts) * scale;
        break;
    case OffsetKind::AwayFromKinks: {
        // The integer part of the moved position from a scaled normal, its
        // fractional part in [0.15, 0.85]: no read sits near a corner switch or
        // the -1 / extent border.
        const at::Tensor whole = (baseT + at::randn(shape, gen, opts) * scale).floor();
        off = whole + 0.15 + 0.7 * at::rand(shape, gen, opts) - baseT;
        break;
    }
    case OffsetKind::Zero:
        off = at::zeros(shape, opts);
        break;
    case OffsetKind::Integer:
        off = at::zeros(shape, opts);
        off.select(2, 0).fill_(double(shift_y));
        off.select(2, 1).fill_(double(shift_x));
        break;
    case OffsetKind::ExactBorders: {
        // Move every read to one of: -1 (zero by the rule), the extent (zero), the
        // last row/column, -0.5 (half faded), or leave it, chosen at random per read.
        const at::Tensor choice = at::randint(0, 5, shape, gen, opts.dtype(at::kLong));
        at::Tensor extentT = at::empty({1, 1, 2, 1, 1}, opts);
        extentT.view({2}).copy_(at::tensor({extent[0], extent[1]}, opts));
        const at::Tensor full = baseT.expand(shape);
        at::Tensor target = full.clone();
        target = at::where(choice == 0, at::full_like(full, -1.0), target);
        target = at::where(choice == 1, extentT.expand(shape), target);
        target = at::where(choice == 2, extentT.expand(shape) - 1.0, target);
        target = at::where(choice == 3, at::full_like(full, -0.5), target);
        off = target - baseT;
        break;
    }
    }
    return off.reshape({N, 2 * taps, A, B}).contiguous();
}

at::Tensor referenceBilinearRead(const at::Tensor& values, const at::Tensor& y, const at::Tensor& x) {
    const int64_t B = values.size(0), C = values.size(1), Hg = values.size(2), Wg = values.size(3);
    const int64_t M = y.size(1);
    const at::Tensor inside = (y > -1) & (y < Hg) & (x > -1) & (x < Wg);
    const at::Tensor y0 = y.detach().floor();
    const at::Tensor x0 = x.detach().floor();
    const at::Tensor ly = y - y0;
    const at::Tensor lx = x - x0;
    const at::Tensor flat = values.reshape({B, C, Hg * Wg});
    at::Tensor out = at::zeros({B, C, M}, values.options());
    for (int dy = 0; dy <= 1; ++dy) {
        for (int dx = 0; dx <= 1; ++dx) {
            const at::Tensor yc = y0 + dy;
            const at::Tensor xc = x0 + dx;
            const at::Tensor w = (dy ? ly : 1 - ly) * (dx ? lx : 1 - lx);
            const at::Tensor valid = inside & (yc >= 0) & (yc <= Hg - 1) & (xc >= 0) & (xc <= Wg - 1);
            const at::Tensor index = (yc.clamp(0, Hg - 1) * Wg + xc.clamp(0, Wg - 1)).to(at::kLong);
            const at::Tensor v = flat.gather(2, index.unsqueeze(1).expand({B, C, M}));
            out = out + v * at::where(valid, w, at::zeros_like(w)).unsqueeze(1);
        }
    }
    return out;
}

} // namespace deformscope::ops::checks
