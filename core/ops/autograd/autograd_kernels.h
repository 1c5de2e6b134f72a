// Autograd kernels of both operators (registered for DispatchKey::Autograd by
// registration.cpp): one implementation, instantiated for DeformConv2dOp and
// DeformKernel2dOp (operators.h).
#pragma once

#include "core/ops/operators.h"

namespace deformscope::ops::detail {

template <class Op>
struct AutogradKernels {
    // The forward op under autograd: its backward calls the backward op's
    // autograd kernel below.
    static at::Tensor forward(const OpTensors& t, const OpScalars& s);
    // The backward op under autograd: computes the gradients, and refuses to be
    // differentiated again (double backward is not supported).
    static typename Op::Grads backward(const at::Tensor& grad, const OpTensors& t, const OpScalars& s);
};

extern template struct AutogradKernels<DeformConv2dOp>;
extern template struct AutogradKernels<DeformKernel2dOp>;

} // namespace deformscope::ops::detail
