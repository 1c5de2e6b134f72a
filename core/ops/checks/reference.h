// A slow, obvious float64 reference of deform_conv2d written directly from the
// formula in reference/DCN.md (bilinear sampling with torchvision's boundary
// rule, then a sum over taps and channels), built from differentiable ATen ops
// so that autograd supplies its five gradients. For checking kernels only.
// Also: random test cases shared by the tests and the self-test.
#pragma once

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

// How the offsets of a random case are drawn.
enum class OffsetKind {
    Random,        // normal * offset_scale (some samples leave the image when the scale is large)
    AwayFromKinks, // like Random, but every sample's fractional part is in [0.15, 0.85] (finite differences)
    Zero,
    Integer,       // every tap shifted by the same integers (shift_y, shift_x)
    ExactBorders,  // samples land exactly on -1, H (and W) and on the last row/column
};

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

// Largest |a - b| / (1 + |b|) over all elements (0 for two empty tensors).
double relativeError(const at::Tensor& a, const at::Tensor& b);

} // namespace deformscope::ops::checks
