// Deformable convolution (DCNv1 / DCNv2) with torchvision's conventions.
//
// deformConv2d() and deformConv2dBackward() call the registered operators
// through the dispatcher, so they work on every device the ops were built for
// and get autograd; call registerOperators() (registration.h) once first. The
// *Impl functions are the device-dispatching kernels behind the operators.
// All functions are thread-safe; failures throw c10::Error with a message that
// names the offending argument and its expected and actual shape.
#pragma once

#include "core/ops/conv_window.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace deformscope::ops {

// Members in the schema's order: stride, padding, dilation (ConvWindow), then these.
struct DeformConv2dParams : ConvWindow {
    int64_t groups = 1;
    int64_t offset_groups = 1;
    bool use_mask = false;
};

// (grad_input, grad_weight, grad_offset, grad_mask, grad_bias)
using DeformConv2dGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// input [N, C, H, W]; weight [Cout, C/groups, kh, kw];
// offset [N, 2*offset_groups*kh*kw, Ho, Wo] (dy, dx interleaved per tap);
// mask [N, offset_groups*kh*kw, Ho, Wo] when use_mask (otherwise ignored, may be empty);
// bias [Cout] or an empty tensor for none. Returns [N, Cout, Ho, Wo].
at::Tensor deformConv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                        const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p);

DeformConv2dGrads deformConv2dBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                       const at::Tensor& weight, const at::Tensor& offset,
                                       const at::Tensor& mask, const at::Tensor& bias,
                                       const DeformConv2dParams& p);

// Kernels behind the operators: no autograd, dispatch on the input's device.
at::Tensor deformConv2dForwardImpl(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                                   const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p);

DeformConv2dGrads deformConv2dBackwardImpl(const at::Tensor& grad_output, const at::Tensor& input,
                                           const at::Tensor& weight, const at::Tensor& offset,
                                           const at::Tensor& mask, const at::Tensor& bias,
                                           const DeformConv2dParams& p);

// How the CUDA backward accumulates the input gradient. Deterministic (the
// default) gives bit-identical gradients for identical inputs; Atomic scatters
// with floating-point atomics and is faster. The CPU backward is always
// deterministic. at::globalContext().setDeterministicAlgorithms(true) forces
// Deterministic regardless of this setting.
enum class BackwardMode { Deterministic, Atomic };

void setBackwardMode(BackwardMode mode);
BackwardMode backwardMode();
bool deterministicBackwardInEffect();

} // namespace deformscope::ops
