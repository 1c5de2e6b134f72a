// The numeric checks of both operators, written once. An operator is seen
// through OpUnderTest — its five tensor arguments in schema order, how to run
// its forward and backward ops, and its slow float64 reference — and every
// check here (against the reference, by finite differences, determinism, CUDA
// against float64) is a function of that. selftest.h and
// deform_kernel2d_checks.h build the two operators' OpUnderTest and their
// cases; `deformscope-cli selftest` and the Qt tests run the checks.
// Every function that runs an operator needs registerOperators() first; none
// throws for a failed comparison — it returns the error for the caller to judge.
#pragma once

#include "core/ops/deform_conv2d.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

namespace deformscope::ops::checks {

// An operator's five tensor arguments (or gradients), in its schema's order:
// deform_conv2d (input, weight, offset, mask, bias), deform_kernel2d (input,
// weight, kernel_offset, offset, bias).
using OpArgs = std::array<at::Tensor, 5>;

struct OpUnderTest {
    std::array<const char*, 5> names;
    // Whether the fourth tensor takes part (use_mask, use_offset); otherwise
    // it is a placeholder without a gradient.
    bool usesFourth = true;
    std::function<at::Tensor(const OpArgs&)> forward;                         // our op
    std::function<OpArgs(const at::Tensor& grad, const OpArgs&)> backward;    // our backward op
    std::function<at::Tensor(const OpArgs&)> reference;                       // differentiable, for float64

    // Whether argument i takes part in a call with `args`: has a gradient to
    // check and elements to perturb (an empty bias does not).
    bool takesPart(const OpArgs& args, int i) const;
};

// An OpUnderTest from an operator's entry points (deformConv2d and
// deformConv2dBackward through the dispatcher, or deform_kernel2d's) and its
// reference, all called with parameters `p`.
template <class Params, class Grads>
OpUnderTest opUnderTest(std::array<const char*, 5> names, bool usesFourth, const Params& p,
                        at::Tensor (*forward)(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                              const at::Tensor&, const at::Tensor&, const Params&),
                        Grads (*backward)(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                          const at::Tensor&, const at::Tensor&, const Params&),
                        at::Tensor (*reference)(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&, const at::Tensor&, const Params&)) {
    OpUnderTest op;
    op.names = names;
    op.usesFourth = usesFourth;
    op.forward = [=](const OpArgs& a) { return forward(a[0], a[1], a[2], a[3], a[4], p); };
    op.backward = [=](const at::Tensor& grad, const OpArgs& a) {
        const Grads g = backward(grad, a[0], a[1], a[2], a[3], a[4], p);
        return OpArgs{std::get<0>(g), std::get<1>(g), std::get<2>(g), std::get<3>(g), std::get<4>(g)};
    };
    op.reference = [=](const OpArgs& a) { return reference(a[0], a[1], a[2], a[3], a[4], p); };
    return op;
}

// Largest |a - b| / (1 + |b|) over all elements (0 for two empty tensors).
double relativeError(const at::Tensor& a, const at::Tensor& b);

// A standard normal tensor shaped like `like`, deterministic for the seed.
at::Tensor randomLike(const at::Tensor& like, uint64_t seed);

// Gradients of sum(op.reference(args) * grad) by autograd; zeros for an
// argument that does not take part.
OpArgs referenceGradients(const OpUnderTest& op, const at::Tensor& grad, const OpArgs& args);

// Relative errors (see relativeError) of our op against the float64 reference:
// the forward and the five gradients.
struct ReferenceComparison {
    double forward = 0;
    std::array<double, 5> grads{};
    double worst() const;
};

// Our op on `ours` (any dtype and device) against the reference on exactly the
// values our op reads (converted to float64 on the CPU): in half or bfloat16 an
// offset's rounding alone can move a sample across an integer, where the
// bilinear slope jumps, and that is not an error of the kernels. The incoming
// gradient is randomLike(output, gradSeed).
ReferenceComparison compareWithReference(const OpUnderTest& op, const OpArgs& ours, uint64_t gradSeed);

// "forward e, grad input e, weight e, ..." with the operator's argument names.
std::string describe(const std::array<const char*, 5>& names, const ReferenceComparison& c);

// Central finite differences in float64 of sum(out * R), R = randomLike(out,
// seed + 7), with respect to up to `maxPerTensor` elements of each argument that
// takes part, against our backward. Returns the worst |fd - analytic| / (1 +
// |analytic|). `args` must be float64 with every read away from the bilinear
// kinks (OffsetKind::AwayFromKinks); they are perturbed in place and restored.
double finiteDifferenceError(const OpUnderTest& op, const OpArgs& args, uint64_t seed, int64_t maxPerTensor);

// The worst |fd - analytic| / (1 + |analytic|) over up to maxPerTensor elements of `arg`
// (a float64 CPU tensor, perturbed in place by ±1e-6 and restored): fd the central
// difference of loss(). Shared by every operator's finite-difference check.
double centralDifferenceError(const at::Tensor& arg, const at::Tensor& analytic, const std::function<double()>& loss,
                              int64_t maxPerTensor);

// Our backward op with `mode` in effect (the previous mode is restored).
OpArgs backwardWith(const OpUnderTest& op, const at::Tensor& grad, const OpArgs& args, BackwardMode mode);

// Whether all five tensors are equal bit for bit.
bool bitIdentical(const OpArgs& a, const OpArgs& b);

// The largest relativeError over the five pairs.
double worstRelativeError(const OpArgs& a, const OpArgs& b);

// Our op in float32 on `args32` (any device) against our op in float64 on the
// CPU (`args64`, the same values): relative errors of the forward and of the
// five gradients, for the incoming gradient randomLike(float64 output, gradSeed).
std::array<double, 6> float32Errors(const OpUnderTest& op, const OpArgs& args64, const OpArgs& args32,
                                    uint64_t gradSeed);

// Properties both operators must have, for the tests: each returns "" when
// the property holds, otherwise what is wrong.

// Every forward error and gradient error of `r` below `tolerance`.
std::string referenceProblem(const OpUnderTest& op, const ReferenceComparison& r, double tolerance);

// Autograd through the forward op (incoming gradient gradFor(output)) gives the
// backward op's gradients (at::allclose); an argument that does not take part
// gets no gradient at all.
std::string autogradProblem(const OpUnderTest& op, const OpArgs& args,
                            const std::function<at::Tensor(const at::Tensor&)>& gradFor);

// The backward op run twice gives bit-identical gradients `sameAcrossRuns`, and
// run again on one thread bit-identical gradients `sameAcrossThreads`.
std::string threadCountProblem(const OpUnderTest& op, const OpArgs& args, const at::Tensor& grad,
                               const std::vector<int>& sameAcrossRuns, const std::vector<int>& sameAcrossThreads);

// A batch of no images: an output of `outputSizes` (batch 0) and gradients
// of no images, the weight's zero.
std::string emptyBatchProblem(const OpUnderTest& op, const OpArgs& args, const std::vector<int64_t>& outputSizes);

// The same values in non-contiguous storage give the same output, bit for bit.
std::string nonContiguousProblem(const OpUnderTest& op, const OpArgs& args);

// The arguments of images [first, first + count): every 4-D argument but the
// weight (index 1) holds one slice per image.
OpArgs imagesOf(const OpArgs& args, int64_t first, int64_t count);

// The same values in transposed (non-contiguous) storage: every 4-D argument.
OpArgs transposedStorage(const OpArgs& args);

// How the offsets of a random case are drawn.
enum class OffsetKind {
    Random,        // normal * scale (some reads leave the grid when the scale is large)
    AwayFromKinks, // like Random, but every read's fractional part is in [0.15, 0.85] (finite differences)
    Zero,
    Integer,       // every tap shifted by the same integers (shift_y, shift_x)
    ExactBorders,  // reads land exactly on -1, the extent, the last row/column, -0.5, or stay
};

// "random", "away-from-kinks", ... (the case descriptions' words).
const char* offsetKindName(OffsetKind kind);

// Offsets [N, 2*taps, A, B] (dy, dx interleaved per tap) for taps whose unmoved
// positions are base(tap, axis, a, b) (axis 0: rows, 1: columns) in a grid of
// extent[axis], drawn as `kind` says, from `gen`.
at::Tensor makeOffsets(OffsetKind kind, int64_t N, int64_t taps, int64_t A, int64_t B,
                       const std::function<double(int64_t, int64_t, int64_t, int64_t)>& base, const double extent[2],
                       double scale, int64_t shift_y, int64_t shift_x, at::Generator& gen);

// The reference's bilinear read, written from the formula rather than from the
// kernels' bilinear.h: values [B, C, Hg, Wg] read at positions y, x [B, M] ->
// [B, C, M], with torchvision's boundary rule (0 when y <= -1, y >= Hg,
// x <= -1 or x >= Wg; otherwise corners outside the grid count as 0).
// Differentiable in all three.
at::Tensor referenceBilinearRead(const at::Tensor& values, const at::Tensor& y, const at::Tensor& x);

} // namespace deformscope::ops::checks
