// Bilinear reads with torchvision's boundary rule: the one definition behind the
// CPU and CUDA kernels of deform_conv2d and deform_kernel2d, for the forward
// value and for every backward term (the corner weights that scatter a gradient
// onto the input or the scope kernel, and the derivatives w.r.t. the read
// position). Compiled by the host compiler and by nvcc (host_device.h).
//
// The boundary rule (torchvision's; forward and backward must agree exactly):
//   a read at y <= -1 || y >= height || x <= -1 || x >= width is 0, and so is
//   its gradient w.r.t. the position and everything else; otherwise it is the
//   bilinear combination of the 4 corners around (y, x), a corner outside
//   [0, height-1] x [0, width-1] counting as 0 and receiving no gradient.
//   locateSample is the only place that applies the first half, cornerInside
//   the only place that applies the second.
//
// Corner numbering, everywhere: corner = 2*cy + cx addresses (y0 + cy, x0 + cx),
//   0: (y0, x0)   1: (y0, x0+1)   2: (y0+1, x0)   3: (y0+1, x0+1),
// and every sum over the corners runs in that order (combine).
//
// The devices drop an out-of-grid corner in two ways, through the same
// functions: the CUDA kernels read it as the value 0 (cornerValues), the CPU
// sampling plans (BilinearCorners) give it weight 0 and index 0 so that their
// channel loops need no branch.
#pragma once

#include "core/ops/host_device.h"

#include <cmath>
#include <cstdint>

namespace deformscope::ops::detail {

DEFORMSCOPE_HOST_DEVICE float floorOf(float v) {
    return ::floorf(v);
}

DEFORMSCOPE_HOST_DEVICE double floorOf(double v) {
    return ::floor(v);
}

// A read that passed the boundary rule: its top-left corner (y0, x0) and the
// fractional parts (ly, lx) in [0, 1).
template <typename T>
struct BilinearPoint {
    int64_t y0;
    int64_t x0;
    T ly;
    T lx;
};

// The boundary rule's first half. Returns false for a read that is 0 (with zero
// gradient); otherwise fills `s`. Written as the negation of "inside" so that a
// NaN position is a zero read too and never reaches the float->int64
// conversion (undefined behaviour, an index anywhere). Since y > -1 and
// y < height, y0 = floor(y) lies in [-1, height-1] (likewise x0).
template <typename T>
DEFORMSCOPE_HOST_DEVICE bool locateSample(T y, T x, int64_t height, int64_t width, BilinearPoint<T>& s) {
    if (!(y > T(-1) && y < static_cast<T>(height) && x > T(-1) && x < static_cast<T>(width)))
        return false;
    const T fy = floorOf(y);
    const T fx = floorOf(x);
    s.y0 = static_cast<int64_t>(fy);
    s.x0 = static_cast<int64_t>(fx);
    s.ly = y - fy;
    s.lx = x - fx;
    return true;
}

// The boundary rule's second half: whether `corner` lies in the grid, and then
// its flat row-major index.
template <typename T>
DEFORMSCOPE_HOST_DEVICE bool cornerInside(const BilinearPoint<T>& s, int corner, int64_t height, int64_t width,
                                          int64_t& index) {
    const int64_t yy = s.y0 + (corner >> 1);
    const int64_t xx = s.x0 + (corner & 1);
    if (yy < 0 || yy >= height || xx < 0 || xx >= width)
        return false;
    index = yy * width + xx;
    return true;
}

// Bilinear weight of a corner: (1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx. The
// weight that forward multiplies the corner's value by is the weight that
// backward scatters the read's gradient with.
template <typename T>
DEFORMSCOPE_HOST_DEVICE T cornerWeight(const BilinearPoint<T>& s, int corner) {
    const T wy = (corner >> 1) ? s.ly : T(1) - s.ly;
    const T wx = (corner & 1) ? s.lx : T(1) - s.lx;
    return wy * wx;
}

// d cornerWeight / dy: -(1-lx), -lx, 1-lx, lx.
template <typename T>
DEFORMSCOPE_HOST_DEVICE T cornerWeightDy(const BilinearPoint<T>& s, int corner) {
    const T wx = (corner & 1) ? s.lx : T(1) - s.lx;
    return (corner >> 1) ? wx : -wx;
}

// d cornerWeight / dx: -(1-ly), 1-ly, -ly, ly.
template <typename T>
DEFORMSCOPE_HOST_DEVICE T cornerWeightDx(const BilinearPoint<T>& s, int corner) {
    const T wy = (corner >> 1) ? s.ly : T(1) - s.ly;
    return (corner & 1) ? wy : -wy;
}

// Σ_corner w[corner] * v[corner], in corner order: the summation order of every
// bilinear value and position derivative on every device.
template <typename T>
DEFORMSCOPE_HOST_DEVICE T combine(const T w[4], const T v[4]) {
    return w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3];
}

// The four corner values of a row-major height x width grid, 0 for a corner
// outside it.
template <typename T, typename scalar_t>
DEFORMSCOPE_HOST_DEVICE void cornerValues(const scalar_t* __restrict__ grid, const BilinearPoint<T>& s,
                                          int64_t height, int64_t width, T v[4]) {
    DEFORMSCOPE_UNROLL
    for (int corner = 0; corner < 4; ++corner) {
        int64_t index = 0;
        v[corner] = cornerInside(s, corner, height, width, index) ? static_cast<T>(grid[index]) : T(0);
    }
}

// The bilinear value from the corner values.
template <typename T>
DEFORMSCOPE_HOST_DEVICE T interpolate(const BilinearPoint<T>& s, const T v[4]) {
    const T w[4] = {cornerWeight(s, 0), cornerWeight(s, 1), cornerWeight(s, 2), cornerWeight(s, 3)};
    return combine(w, v);
}

// The bilinear value and its derivatives w.r.t. the read position.
template <typename T>
DEFORMSCOPE_HOST_DEVICE void interpolateWithGrad(const BilinearPoint<T>& s, const T v[4], T& value, T& dy, T& dx) {
    const T w[4] = {cornerWeight(s, 0), cornerWeight(s, 1), cornerWeight(s, 2), cornerWeight(s, 3)};
    const T wy[4] = {cornerWeightDy(s, 0), cornerWeightDy(s, 1), cornerWeightDy(s, 2), cornerWeightDy(s, 3)};
    const T wx[4] = {cornerWeightDx(s, 0), cornerWeightDx(s, 1), cornerWeightDx(s, 2), cornerWeightDx(s, 3)};
    value = combine(w, v);
    dy = combine(wy, v);
    dx = combine(wx, v);
}

// A bilinear read of a row-major height x width grid at (y, x), boundary rule included.
template <typename T, typename scalar_t>
DEFORMSCOPE_HOST_DEVICE T bilinearRead(const scalar_t* __restrict__ grid, T y, T x, int64_t height, int64_t width) {
    BilinearPoint<T> s;
    if (!locateSample(y, x, height, width, s))
        return T(0);
    T v[4];
    cornerValues(grid, s, height, width, v);
    return interpolate(s, v);
}

// A read prepared once and replayed for many channels (the CPU sampling plans):
// the flat index, the weight and the weight's derivatives of each corner. An
// out-of-grid corner, and every corner of a read that is 0 by the boundary rule,
// has index 0 and weights 0, so a channel loop reads all four without branching.
template <typename T>
struct BilinearCorners {
    int64_t idx[4] = {0, 0, 0, 0};
    T w[4] = {0, 0, 0, 0};  // cornerWeight
    T wy[4] = {0, 0, 0, 0}; // cornerWeightDy
    T wx[4] = {0, 0, 0, 0}; // cornerWeightDx

    template <typename scalar_t>
    DEFORMSCOPE_HOST_DEVICE void values(const scalar_t* grid, T v[4]) const {
        v[0] = T(grid[idx[0]]);
        v[1] = T(grid[idx[1]]);
        v[2] = T(grid[idx[2]]);
        v[3] = T(grid[idx[3]]);
    }
    template <typename scalar_t>
    DEFORMSCOPE_HOST_DEVICE T value(const scalar_t* grid) const {
        T v[4];
        values(grid, v);
        return combine(w, v);
    }
    // value, d value / dy, d value / dx
    template <typename scalar_t>
    DEFORMSCOPE_HOST_DEVICE void valueWithGrad(const scalar_t* grid, T& value, T& dy, T& dx) const {
        T v[4];
        values(grid, v);
        value = combine(w, v);
        dy = combine(wy, v);
        dx = combine(wx, v);
    }
    // acc[corner] += weight * g for the four corners, in corner order.
    DEFORMSCOPE_HOST_DEVICE void scatter(T* acc, T g) const {
        acc[idx[0]] += w[0] * g;
        acc[idx[1]] += w[1] * g;
        acc[idx[2]] += w[2] * g;
        acc[idx[3]] += w[3] * g;
    }
};

template <typename T>
DEFORMSCOPE_HOST_DEVICE BilinearCorners<T> cornersAt(T y, T x, int64_t height, int64_t width) {
    BilinearCorners<T> c;
    BilinearPoint<T> s;
    if (!locateSample(y, x, height, width, s))
        return c;
    for (int corner = 0; corner < 4; ++corner) {
        int64_t index = 0;
        if (!cornerInside(s, corner, height, width, index))
            continue;
        c.idx[corner] = index;
        c.w[corner] = cornerWeight(s, corner);
        c.wy[corner] = cornerWeightDy(s, corner);
        c.wx[corner] = cornerWeightDx(s, corner);
    }
    return c;
}

} // namespace deformscope::ops::detail
