// The regular grid of a 2-D convolution that both operators deform: the part of
// DeformGeometry (deform_conv2d_kernels.h) and DeformKernelGeometry
// (deform_kernel2d_kernels.h) that the two share, and the unmoved image
// position of every tap on it. Plain data with host/device member functions, so
// the CUDA kernels take it by value (host_device.h).
#pragma once

#include "core/ops/conv_window.h"
#include "core/ops/host_device.h"

#include <cstdint>

namespace deformscope::ops::detail {

// Output extent of a convolution along one axis (torchvision's and at::conv2d's formula).
DEFORMSCOPE_HOST_DEVICE int64_t convOutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                                               int64_t dilation) {
    return (in + 2 * pad - (dilation * (kernel - 1) + 1)) / stride + 1;
}

// Geometry of one chunk of images:
//   input   [batch, channels, height, width]
//   output  [batch, *, out_h, out_w], position p = oy*out_w + ox
//   taps    K = kernel_h * kernel_w, tap k = i*kernel_w + j
// Tap k at output position p reads the image at
//   y = oy*stride_h - pad_h + i*dilation_h + dy,   x = ox*stride_w - pad_w + j*dilation_w + dx
// for the tap's learned offset (dy, dx) (0 where an operator has none).
struct SamplingGrid : ConvWindow {
    int64_t batch = 0;
    int64_t channels = 0;
    int64_t height = 0;
    int64_t width = 0;
    int64_t out_h = 0;
    int64_t out_w = 0;
    int64_t kernel_h = 0;
    int64_t kernel_w = 0;

    DEFORMSCOPE_HOST_DEVICE int64_t taps() const { return kernel_h * kernel_w; }
    DEFORMSCOPE_HOST_DEVICE int64_t outPlane() const { return out_h * out_w; }
    DEFORMSCOPE_HOST_DEVICE int64_t pixels() const { return height * width; }

    // The unmoved row of tap row i at output row oy, and the column of tap
    // column j at output column ox: exact integers. Every kernel converts them to
    // its arithmetic type and only then adds the offset, as torchvision does.
    DEFORMSCOPE_HOST_DEVICE int64_t tapRow(int64_t oy, int64_t i) const {
        return oy * stride_h - pad_h + i * dilation_h;
    }
    DEFORMSCOPE_HOST_DEVICE int64_t tapCol(int64_t ox, int64_t j) const {
        return ox * stride_w - pad_w + j * dilation_w;
    }

    // The image position of tap k at output position p moved by (dy, dx).
    template <typename T>
    DEFORMSCOPE_HOST_DEVICE void tapPosition(int64_t k, int64_t p, T dy, T dx, T& y, T& x) const {
        const int64_t oy = p / out_w;
        const int64_t ox = p - oy * out_w;
        const int64_t i = k / kernel_w;
        const int64_t j = k - i * kernel_w;
        y = static_cast<T>(tapRow(oy, i)) + dy;
        x = static_cast<T>(tapCol(ox, j)) + dx;
    }
};

} // namespace deformscope::ops::detail
