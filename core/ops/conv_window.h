// Stride, padding and dilation of a 2-D convolution window, named as
// torchvision's deform_conv2d names them: what both operators' parameters
// (DeformConv2dParams, DeformKernel2dParams) and their kernels' grid
// (detail::SamplingGrid) have in common.
#pragma once

#include <cstdint>

namespace deformscope::ops {

struct ConvWindow {
    int64_t stride_h = 1;
    int64_t stride_w = 1;
    int64_t pad_h = 0;
    int64_t pad_w = 0;
    int64_t dilation_h = 1;
    int64_t dilation_w = 1;
};

} // namespace deformscope::ops
