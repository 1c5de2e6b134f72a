// Autograd kernels of the operators (registered for DispatchKey::Autograd by
// registration.cpp): one implementation, instantiated for DeformConv2dOp and
// DeformKernel2dOp (operators.h), and deform_roi_pool's.
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

struct RoiPoolAutogradKernels {
    // deform_roi_pool under autograd: gradients for the input, for the offset
    // when it is not empty and for the mask when use_mask; none for the RoIs.
    static at::Tensor forward(const RoiPoolTensors& t, const DeformRoiPoolParams& p);
    // The backward op under autograd: computes the gradients, and refuses to be
    // differentiated again (double backward is not supported).
    static DeformRoiPoolGrads backward(const at::Tensor& grad, const RoiPoolTensors& t,
                                       const DeformRoiPoolParams& p);
};

} // namespace deformscope::ops::detail
