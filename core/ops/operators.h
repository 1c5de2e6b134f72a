// The operators as the dispatcher sees them, for the one registration path
// (registration.cpp) and the autograd paths (autograd/autograd_kernels.cpp).
//
// deform_conv2d's and deform_kernel2d's schemas have the same form: five tensors, then stride, padding and
// dilation (six ints), two ints of the operator's own, and a bool; the forward
// returns a tensor, the backward (with the incoming gradient first) five. The
// ints and the bool are the members of the operator's Params in order, and the
// bool says whether the fourth tensor takes part (deform_conv2d's mask,
// deform_kernel2d's image offsets); when it does not, it gets no gradient.
#pragma once

#include "core/ops/deform_conv2d.h"
#include "core/ops/deform_kernel2d.h"
#include "core/ops/deform_roi_pool.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace deformscope::ops::detail {

struct DeformConv2dOp {
    using Params = DeformConv2dParams;
    using Grads = DeformConv2dGrads;
    static constexpr const char* kName = "deform_conv2d";
    static constexpr const char* kBackwardName = "_deform_conv2d_backward";
    // torchvision's schemas, character for character (torchvision >= 0.16).
    static constexpr const char* kSchema =
        "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, "
        "SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, "
        "SymInt offset_groups, bool use_mask) -> Tensor";
    static constexpr const char* kBackwardSchema =
        "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
        "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, "
        "SymInt groups, SymInt offset_groups, bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)";
    static constexpr auto forward = &deformConv2dForwardImpl;
    static constexpr auto backward = &deformConv2dBackwardImpl;
};

struct DeformKernel2dOp {
    using Params = DeformKernel2dParams;
    using Grads = DeformKernel2dGrads;
    static constexpr const char* kName = "deform_kernel2d";
    static constexpr const char* kBackwardName = "_deform_kernel2d_backward";
    // Ours only (deform_kernel2d.h documents the arguments); no standard schema exists.
    static constexpr const char* kSchema =
        "deform_kernel2d(Tensor input, Tensor weight, Tensor kernel_offset, Tensor offset, Tensor bias, int stride_h, "
        "int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int kernel_h, int kernel_w, "
        "bool use_offset) -> Tensor";
    static constexpr const char* kBackwardSchema =
        "_deform_kernel2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor kernel_offset, Tensor offset, "
        "Tensor bias, int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int kernel_h, "
        "int kernel_w, bool use_offset) -> (Tensor, Tensor, Tensor, Tensor, Tensor)";
    static constexpr auto forward = &deformKernel2dForwardImpl;
    static constexpr auto backward = &deformKernel2dBackwardImpl;
};

// An operator call's tensors and its scalars (the eight ints and the bool).
using OpTensors = std::array<at::Tensor, 5>;
struct OpScalars {
    std::array<int64_t, 8> ints;
    bool flag;
};

template <class Op>
typename Op::Params paramsOf(const OpScalars& s) {
    const auto& i = s.ints;
    return {{i[0], i[1], i[2], i[3], i[4], i[5]}, i[6], i[7], s.flag};
}

// The device kernels behind an operator, without autograd.
template <class Op>
struct DirectKernels {
    static at::Tensor forward(const OpTensors& t, const OpScalars& s) {
        return Op::forward(t[0], t[1], t[2], t[3], t[4], paramsOf<Op>(s));
    }
    static typename Op::Grads backward(const at::Tensor& grad, const OpTensors& t, const OpScalars& s) {
        return Op::backward(grad, t[0], t[1], t[2], t[3], t[4], paramsOf<Op>(s));
    }
};

// The dispatcher's unboxed signatures of the forward and the backward op,
// forwarding to Kernels (DirectKernels, or AutogradKernels in
// autograd/autograd_kernels.h).
template <class Op, class Kernels>
at::Tensor forwardEntry(const at::Tensor& t0, const at::Tensor& t1, const at::Tensor& t2, const at::Tensor& t3,
                        const at::Tensor& t4, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                        int64_t dilation_h, int64_t dilation_w, int64_t own0, int64_t own1, bool flag) {
    return Kernels::forward({t0, t1, t2, t3, t4},
                            {{stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, own0, own1}, flag});
}

template <class Op, class Kernels>
typename Op::Grads backwardEntry(const at::Tensor& grad, const at::Tensor& t0, const at::Tensor& t1,
                                 const at::Tensor& t2, const at::Tensor& t3, const at::Tensor& t4, int64_t stride_h,
                                 int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                 int64_t dilation_w, int64_t own0, int64_t own1, bool flag) {
    return Kernels::backward(grad, {t0, t1, t2, t3, t4},
                             {{stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, own0, own1}, flag});
}

// deform_roi_pool has a form of its own: four tensors (input, rois, offset,
// mask), then the members of DeformRoiPoolParams in order; the backward
// returns three gradients (input, offset, mask). The offset takes part when it
// is not empty, the mask when use_mask; the RoIs never get a gradient.
struct DeformRoiPoolOp {
    using Params = DeformRoiPoolParams;
    using Grads = DeformRoiPoolGrads;
    static constexpr const char* kName = "deform_roi_pool";
    static constexpr const char* kBackwardName = "_deform_roi_pool_backward";
    // Ours (deform_roi_pool.h documents the arguments), with mmcv's semantics;
    // mmcv's own op takes the offset as an optional input and has no mask.
    static constexpr const char* kSchema =
        "deform_roi_pool(Tensor input, Tensor rois, Tensor offset, Tensor mask, int pooled_height, "
        "int pooled_width, float spatial_scale, int sampling_ratio, float gamma, bool use_mask) -> Tensor";
    static constexpr const char* kBackwardSchema =
        "_deform_roi_pool_backward(Tensor grad, Tensor input, Tensor rois, Tensor offset, Tensor mask, "
        "int pooled_height, int pooled_width, float spatial_scale, int sampling_ratio, float gamma, "
        "bool use_mask) -> (Tensor, Tensor, Tensor)";
    static constexpr auto forward = &deformRoiPoolForwardImpl;
    static constexpr auto backward = &deformRoiPoolBackwardImpl;
};

// deform_roi_pool's tensors: (input, rois, offset, mask).
using RoiPoolTensors = std::array<at::Tensor, 4>;

// deform_roi_pool's device kernels, without autograd.
struct DirectRoiPoolKernels {
    static at::Tensor forward(const RoiPoolTensors& t, const DeformRoiPoolParams& p) {
        return DeformRoiPoolOp::forward(t[0], t[1], t[2], t[3], p);
    }
    static DeformRoiPoolGrads backward(const at::Tensor& grad, const RoiPoolTensors& t,
                                       const DeformRoiPoolParams& p) {
        return DeformRoiPoolOp::backward(grad, t[0], t[1], t[2], t[3], p);
    }
};

// deform_roi_pool's unboxed signatures, forwarding to Kernels
// (DirectRoiPoolKernels, or RoiPoolAutogradKernels in autograd/autograd_kernels.h).
template <class Kernels>
at::Tensor roiPoolForwardEntry(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                               const at::Tensor& mask, int64_t pooled_height, int64_t pooled_width,
                               double spatial_scale, int64_t sampling_ratio, double gamma, bool use_mask) {
    return Kernels::forward({input, rois, offset, mask},
                            {pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma, use_mask});
}

template <class Kernels>
DeformRoiPoolGrads roiPoolBackwardEntry(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
                                        const at::Tensor& offset, const at::Tensor& mask, int64_t pooled_height,
                                        int64_t pooled_width, double spatial_scale, int64_t sampling_ratio,
                                        double gamma, bool use_mask) {
    return Kernels::backward(grad, {input, rois, offset, mask},
                             {pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma, use_mask});
}

} // namespace deformscope::ops::detail
