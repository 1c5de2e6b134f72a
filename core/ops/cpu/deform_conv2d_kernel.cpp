// CPU sampling kernels for deform_conv2d (see ../deform_conv2d_kernels.h).
//
// Both kernels first build a "sampling plan": for every (image, offset group,
// tap, output position) the four bilinear corners of its sample — flat plane
// index and weight, with the boundary rule already applied. Every channel of
// the offset group reuses that plan, so the per-channel work is 4 loads and 4
// multiply-adds. All loops run under at::parallel_for and every task writes a
// disjoint slice of its output (no atomics), so results do not depend on the
// thread count or scheduling.
#include "core/ops/deform_conv2d_kernels.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <cmath>
#include <vector>

namespace deformscope::ops::detail {
namespace {

// The four bilinear corners of one sample. Corners outside the image get
// index 0 and zero weights, so callers can read them without branching.
template <typename acc_t>
struct Corners {
    int64_t idx[4] = {0, 0, 0, 0};
    acc_t w[4] = {0, 0, 0, 0};  // bilinear weights
    acc_t wy[4] = {0, 0, 0, 0}; // d w / d y
    acc_t wx[4] = {0, 0, 0, 0}; // d w / d x
};

// torchvision's boundary rule, shared by forward and backward so they cannot
// disagree: a sample at y <= -1, y >= H, x <= -1 or x >= W is 0 and has zero
// gradient; otherwise corners outside [0,H-1]x[0,W-1] count as 0. Written as
// "not inside" so that a NaN position is a zero sample too, never an index.
template <typename acc_t>
inline Corners<acc_t> cornersAt(acc_t y, acc_t x, int64_t height, int64_t width) {
    Corners<acc_t> c;
    if (!(y > acc_t(-1) && y < acc_t(height) && x > acc_t(-1) && x < acc_t(width)))
        return c;
    const acc_t yf = std::floor(y);
    const acc_t xf = std::floor(x);
    const int64_t y0 = static_cast<int64_t>(yf);
    const int64_t x0 = static_cast<int64_t>(xf);
    const acc_t ly = y - yf;
    const acc_t lx = x - xf;
    const acc_t hy = acc_t(1) - ly;
    const acc_t hx = acc_t(1) - lx;
    const int64_t ys[4] = {y0, y0, y0 + 1, y0 + 1};
    const int64_t xs[4] = {x0, x0 + 1, x0, x0 + 1};
    const acc_t w[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
    const acc_t wy[4] = {-hx, -lx, hx, lx};
    const acc_t wx[4] = {-hy, hy, -ly, ly};
    for (int j = 0; j < 4; ++j) {
        if (ys[j] < 0 || ys[j] >= height || xs[j] < 0 || xs[j] >= width)
            continue;
        c.idx[j] = ys[j] * width + xs[j];
        c.w[j] = w[j];
        c.wy[j] = wy[j];
        c.wx[j] = wx[j];
    }
    return c;
}

// Plan entries ordered [b][g][k][p], p = oy*out_w + ox.
template <typename scalar_t, typename acc_t>
std::vector<Corners<acc_t>> buildPlan(const scalar_t* offset, const scalar_t* mask, const DeformGeometry& g,
                                      std::vector<acc_t>* masks) {
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const int64_t G = g.offset_groups;
    const int64_t rows = g.batch * G * K;
    std::vector<Corners<acc_t>> plan(static_cast<size_t>(rows * P));
    if (masks)
        masks->assign(static_cast<size_t>(rows * P), acc_t(1));
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
            const int64_t k = row % K;
            const int64_t bg = row / K; // b*G + g
            const int64_t i = k / g.kernel_w;
            const int64_t j = k % g.kernel_w;
            // offset channels for (b, g, k): dy at 2k, dx at 2k+1 within the group's 2K block
            const scalar_t* dy = offset + (bg * 2 * K + 2 * k) * P;
            const scalar_t* dx = dy + P;
            const scalar_t* m = (g.use_mask && mask) ? mask + (bg * K + k) * P : nullptr;
            Corners<acc_t>* out = plan.data() + row * P;
            for (int64_t oy = 0; oy < g.out_h; ++oy) {
                const acc_t base_y = acc_t(oy * g.stride_h - g.pad_h + i * g.dilation_h);
                for (int64_t ox = 0; ox < g.out_w; ++ox) {
                    const int64_t p = oy * g.out_w + ox;
                    const acc_t base_x = acc_t(ox * g.stride_w - g.pad_w + j * g.dilation_w);
                    out[p] = cornersAt<acc_t>(base_y + acc_t(dy[p]), base_x + acc_t(dx[p]), g.height, g.width);
                    if (m && masks)
                        (*masks)[row * P + p] = acc_t(m[p]);
                }
            }
        }
    });
    return plan;
}

template <typename scalar_t>
void im2colTyped(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                 const DeformGeometry& g, at::Tensor& columns) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const int64_t HW = g.height * g.width;
    const int64_t channels_per_group = g.channels / g.offset_groups;
    const int64_t cols = g.batch * P;

    std::vector<acc_t> masks;
    const auto plan = buildPlan<scalar_t, acc_t>(offset.const_data_ptr<scalar_t>(),
                                                 g.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr, g,
                                                 g.use_mask ? &masks : nullptr);
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* col = columns.data_ptr<scalar_t>();

    // One task per (channel, image): it writes the K rows of that channel for that image.
    at::parallel_for(0, g.channels * g.batch, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t c = task / g.batch;
            const int64_t b = task % g.batch;
            const int64_t grp = c / channels_per_group;
            const scalar_t* plane = in + (b * g.channels + c) * HW;
            for (int64_t k = 0; k < K; ++k) {
                const int64_t row = (b * g.offset_groups + grp) * K + k;
                const Corners<acc_t>* s = plan.data() + row * P;
                const acc_t* m = g.use_mask ? masks.data() + row * P : nullptr;
                scalar_t* dst = col + (c * K + k) * cols + b * P;
                for (int64_t p = 0; p < P; ++p) {
                    const Corners<acc_t>& e = s[p];
                    acc_t v = e.w[0] * acc_t(plane[e.idx[0]]) + e.w[1] * acc_t(plane[e.idx[1]]) +
                              e.w[2] * acc_t(plane[e.idx[2]]) + e.w[3] * acc_t(plane[e.idx[3]]);
                    if (m)
                        v *= m[p];
                    dst[p] = static_cast<scalar_t>(v);
                }
            }
        }
    });
}

template <typename scalar_t>
void columnsBackwardTyped(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                          const at::Tensor& mask, const DeformGeometry& g, at::Tensor& grad_input,
                          at::Tensor& grad_offset, at::Tensor& grad_mask) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const int64_t HW = g.height * g.width;
    const int64_t G = g.offset_groups;
    const int64_t channels_per_group = g.channels / G;
    const int64_t cols = g.batch * P;

    std::vector<acc_t> masks;
    const auto plan = buildPlan<scalar_t, acc_t>(offset.const_data_ptr<scalar_t>(),
                                                 g.use_mask ? mask.const_data_ptr<scalar_t>() : nullptr, g,
                                                 g.use_mask ? &masks : nullptr);
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* gcol = grad_columns.const_data_ptr<scalar_t>();

    // grad_input: one task per (image, channel) owns its output plane, so the
    // scatter to corners needs no atomics. Accumulate in acc_t, store once.
    scalar_t* gin = grad_input.data_ptr<scalar_t>();
    at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(static_cast<size_t>(HW));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / g.channels;
            const int64_t c = task % g.channels;
            const int64_t grp = c / channels_per_group;
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t k = 0; k < K; ++k) {
                const int64_t row = (b * G + grp) * K + k;
                const Corners<acc_t>* s = plan.data() + row * P;
                const acc_t* m = g.use_mask ? masks.data() + row * P : nullptr;
                const scalar_t* src = gcol + (c * K + k) * cols + b * P;
                for (int64_t p = 0; p < P; ++p) {
                    acc_t v = acc_t(src[p]);
                    if (m)
                        v *= m[p];
                    const Corners<acc_t>& e = s[p];
                    acc[e.idx[0]] += e.w[0] * v;
                    acc[e.idx[1]] += e.w[1] * v;
                    acc[e.idx[2]] += e.w[2] * v;
                    acc[e.idx[3]] += e.w[3] * v;
                }
            }
            scalar_t* dst = gin + task * HW;
            for (int64_t q = 0; q < HW; ++q)
                dst[q] = static_cast<scalar_t>(acc_t(dst[q]) + acc[q]);
        }
    });

    // grad_offset / grad_mask: one task per (image, group, tap, block of
    // positions) sums over the group's channels in a fixed order.
    constexpr int64_t kBlock = 1024;
    const int64_t blocks = (P + kBlock - 1) / kBlock;
    scalar_t* goff = grad_offset.data_ptr<scalar_t>();
    scalar_t* gmask = g.use_mask ? grad_mask.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, g.batch * G * K * blocks, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> ay(kBlock), ax(kBlock), am(kBlock);
        for (int64_t task = begin; task < end; ++task) {
            const int64_t blk = task % blocks;
            const int64_t row = task / blocks; // (b*G + grp)*K + k
            const int64_t k = row % K;
            const int64_t bg = row / K;
            const int64_t b = bg / G;
            const int64_t grp = bg % G;
            const int64_t p0 = blk * kBlock;
            const int64_t n = std::min(kBlock, P - p0);
            std::fill_n(ay.begin(), n, acc_t(0));
            std::fill_n(ax.begin(), n, acc_t(0));
            std::fill_n(am.begin(), n, acc_t(0));
            const Corners<acc_t>* s = plan.data() + row * P + p0;
            for (int64_t c = grp * channels_per_group; c < (grp + 1) * channels_per_group; ++c) {
                const scalar_t* plane = in + (b * g.channels + c) * HW;
                const scalar_t* src = gcol + (c * K + k) * cols + b * P + p0;
                for (int64_t q = 0; q < n; ++q) {
                    const Corners<acc_t>& e = s[q];
                    const acc_t v0 = acc_t(plane[e.idx[0]]);
                    const acc_t v1 = acc_t(plane[e.idx[1]]);
                    const acc_t v2 = acc_t(plane[e.idx[2]]);
                    const acc_t v3 = acc_t(plane[e.idx[3]]);
                    const acc_t gc = acc_t(src[q]);
                    ay[q] += gc * (e.wy[0] * v0 + e.wy[1] * v1 + e.wy[2] * v2 + e.wy[3] * v3);
                    ax[q] += gc * (e.wx[0] * v0 + e.wx[1] * v1 + e.wx[2] * v2 + e.wx[3] * v3);
                    am[q] += gc * (e.w[0] * v0 + e.w[1] * v1 + e.w[2] * v2 + e.w[3] * v3);
                }
            }
            const acc_t* m = g.use_mask ? masks.data() + row * P + p0 : nullptr;
            scalar_t* gy = goff + (bg * 2 * K + 2 * k) * P + p0;
            scalar_t* gx = gy + P;
            for (int64_t q = 0; q < n; ++q) {
                const acc_t scale = m ? m[q] : acc_t(1);
                gy[q] = static_cast<scalar_t>(scale * ay[q]);
                gx[q] = static_cast<scalar_t>(scale * ax[q]);
            }
            if (gmask) {
                scalar_t* gm = gmask + (bg * K + k) * P + p0;
                for (int64_t q = 0; q < n; ++q)
                    gm[q] = static_cast<scalar_t>(am[q]);
            }
        }
    });
}

void im2colCpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const DeformGeometry& g,
               at::Tensor& columns) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_conv2d_im2col_cpu",
                                    [&] { im2colTyped<scalar_t>(input, offset, mask, g, columns); });
}

void columnsBackwardCpu(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                        const at::Tensor& mask, const DeformGeometry& g, bool /*deterministic: always*/,
                        at::Tensor& grad_input, at::Tensor& grad_offset, at::Tensor& grad_mask) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_conv2d_columns_backward_cpu", [&] {
                                        columnsBackwardTyped<scalar_t>(grad_columns, input, offset, mask, g,
                                                                       grad_input, grad_offset, grad_mask);
                                    });
}

} // namespace

DeviceKernels cpuKernels() {
    return {&im2colCpu, &columnsBackwardCpu};
}

} // namespace deformscope::ops::detail
