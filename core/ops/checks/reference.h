// A slow, obvious float64 reference of deform_conv2d written directly from the
// formula in reference/DCN.md (bilinear sampling with torchvision's boundary
// rule, then a sum over taps and channels), built from differentiable ATen ops
// so that autograd supplies its five gradients. For checking kernels only.
// Also: random test cases shared by the tests and the self-test, and the
// operator as the generic checks (op_checks.h) see it.
#pragma once

#include "core/ops/checks/op_checks.h"
#include "core/ops/deform_conv2d.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace deformscope::ops::checks {

at::Tensor referenceForward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                            const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p);

// Gradients of sum(referenceForward(...) * grad_output) by autograd, in the
// order (input, weight, offset, mask, bias); mask's is zero without use_mask.
DeformConv2dGrads referenceBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                    const at::Tensor& weight, const at::Tensor& offset, const at::Tensor& mask,
                                    const at::Tensor& bias, const DeformConv2dParams& p);

struct CaseSpec {
    int64_t batch = 2;
    int64_t channels = 4;
    int64_t height = 7;
    int64_t width = 6;
    int64_t out_channels = 4;
    int64_t kernel_h = 3;
    int64_t kernel_w = 3;
    DeformConv2dParams params;
    OffsetKind offsets = OffsetKind::Random;
    double offset_scale = 1.5;
    int64_t shift_y = 0; // OffsetKind::Integer
    int64_t shift_x = 0;
    bool bias = true;

    int64_t outH() const;
    int64_t outW() const;
    std::string describe() const;
};

struct CaseTensors {
    at::Tensor input, weight, offset, mask, bias;
};

// Deterministic for a given seed; created in float64 on the CPU, then converted.
CaseTensors makeCase(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device);

// Cases the self-test and the tests share.
// N1 C2 5x5 Cout2, padding 1, offsets away from the kinks, no mask: finite differences.
CaseSpec finiteDifferenceCase();
// N`batch` C=Cout=`channels` size x size, mask, padding 1, offsets * 3: many
// reads collide on the same pixels (atomics would reorder their sums).
CaseSpec collidingCase(int64_t batch, int64_t channels, int64_t size);

// deform_conv2d with parameters `p` for the generic checks, and a case's tensors as its arguments.
OpUnderTest deformConv2dUnderTest(const DeformConv2dParams& p);
OpArgs argsOf(const CaseTensors& t);

} // namespace deformscope::ops::checks
