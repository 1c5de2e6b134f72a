// Checks of deform_kernel2d (Deformable Kernels): a slow, obvious float64
// reference written directly from the formula in deform_kernel2d.h (bilinear
// reads of the scope kernel and of the image, both with torchvision's boundary
// rule, multiplied and summed over taps) out of differentiable ATen ops, so that
// autograd supplies its five gradients (deform_kernel2d_reference.cpp); random
// cases; the operator's invariants and bad inputs; and its self-test rows
// (deform_kernel2d_checks.cpp). The checks themselves are op_checks.h's, shared
// with deform_conv2d. For checking kernels only. Every function that runs the
// operator needs registerOperators() first; none throws for a failed
// comparison — it returns the error for the caller to judge.
#pragma once

#include "core/ops/checks/reference.h"
#include "core/ops/checks/selftest.h"
#include "core/ops/deform_kernel2d.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace deformscope::ops::checks {

at::Tensor dkReferenceForward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                              const at::Tensor& offset, const at::Tensor& bias, const DeformKernel2dParams& p);

// Gradients of sum(dkReferenceForward(...) * grad_output) by autograd, in the order
// (input, weight, kernel_offset, offset, bias); offset's is zero without use_offset.
DeformKernel2dGrads dkReferenceBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& weight, const at::Tensor& kernel_offset,
                                        const at::Tensor& offset, const at::Tensor& bias,
                                        const DeformKernel2dParams& p);

// A random deform_kernel2d case. Offsets of either kind are drawn as OffsetKind
// says (reference.h), relative to the grid they move: kernel offsets move taps in
// the scope (extent scope_h x scope_w, base positions possibly fractional), image
// offsets move samples in the image. AwayFromKinks puts every absolute position's
// fractional part in [0.15, 0.85]; ExactBorders puts them on -1, the extent, the
// last row/column, -0.5 or leaves them.
struct DkCaseSpec {
    int64_t batch = 2;
    int64_t channels = 3;
    int64_t height = 7;
    int64_t width = 6;
    int64_t scope_h = 5;
    int64_t scope_w = 5;
    DeformKernel2dParams params; // kernel 3x3, stride 1, no padding, no image offsets
    bool global = false;         // kernel_offset [N, 2K, 1, 1] instead of [N, 2K, Ho, Wo]
    OffsetKind kernel_offsets = OffsetKind::Random;
    double kernel_offset_scale = 1.0;
    int64_t kernel_shift_y = 0; // OffsetKind::Integer
    int64_t kernel_shift_x = 0;
    OffsetKind offsets = OffsetKind::Random; // image offsets, when params.use_offset
    double offset_scale = 1.5;
    int64_t shift_y = 0;
    int64_t shift_x = 0;
    bool bias = true;

    int64_t outH() const;
    int64_t outW() const;
    std::string describe() const;
};

struct DkCaseTensors {
    at::Tensor input, weight, kernel_offset, offset, bias; // offset and bias may be empty
};

// Deterministic for a given seed; created in float64 on the CPU, then converted.
DkCaseTensors makeDkCase(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device);

// Cases the self-test and the tests share.
// N1 C2 5x5, scope 4x5 (fractional base rows), padding 1, both kinds of offsets
// away from the kinks, no image offsets: finite differences.
DkCaseSpec dkFiniteDifferenceCase();
// N`batch` C`channels` size x size, image offsets * 3, padding 1, local or
// global kernel offsets: many reads collide on the same pixels and scope cells.
DkCaseSpec dkCollidingCase(bool global, int64_t batch, int64_t channels, int64_t size);

// deform_kernel2d with parameters `p` for the generic checks, and a case's tensors as its arguments.
OpUnderTest deformKernel2dUnderTest(const DeformKernel2dParams& p);
OpArgs argsOf(const DkCaseTensors& t);

// op_checks.h's compareWithReference on makeDkCase(spec, seed, dtype, device)
// (incoming gradient seed + 1); grads are (input, weight, kernel_offset, offset, bias).
ReferenceComparison compareDkWithReference(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                           const at::Device& device);

// op_checks.h's finiteDifferenceError on the case in float64. Use
// OffsetKind::AwayFromKinks for both offsets.
double dkFiniteDifferenceError(const DkCaseSpec& spec, uint64_t seed, const at::Device& device,
                               int64_t maxPerTensor = 64);

// Every tap moved by the same integers (kernel_shift_y, kernel_shift_x), no
// image offsets, against at::conv2d (groups = C) with the correspondingly placed
// window of the zero-extended scope kernel. Needs scope_h - kernel_h and
// scope_w - kernel_w even (integer base positions); with a zero shift and
// scope == kernel this is "DK without offsets is a depthwise conv2d".
double dkWindowConvError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device);

// Zero kernel offsets, scope == kernel, image offsets on: against deform_conv2d
// with groups = C and one offset group (DK + DCN reduces to depthwise DCN).
double dkDeformConvError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device);

// Global kernel offsets against the same offsets broadcast to local ones:
// forward and every gradient (the global kernel-offset gradient must equal the
// local one summed over positions).
double dkGlobalEqualsLocalError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                const at::Device& device);

// Calls with one bad argument, and a fragment each message must contain.
std::vector<BadInputCase> dkBadInputCases(const at::Device& device);

// The deform_kernel2d rows of `deformscope-cli selftest` for one device: the
// reference, finite differences, the invariants and the bad inputs everywhere;
// on CUDA also CUDA against the CPU, half/bfloat16 and the deterministic backward.
std::vector<NamedCheck> deformKernel2dSelfChecks(const at::Device& device);

} // namespace deformscope::ops::checks
