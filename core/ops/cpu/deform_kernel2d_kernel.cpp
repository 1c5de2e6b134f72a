// CPU kernels for deform_kernel2d (see ../deform_kernel2d_kernels.h).
//
// Both passes first build two "sampling plans" for the chunk: for every
// (image, tap, position) the four bilinear corners of its image sample, and for
// every (image, tap, kernel position) — one per output position in local mode,
// one per image in global mode — the four corners of its scope sample, each as a
// flat index and weights with the boundary rule already applied. Every channel
// reuses both plans. All loops run under at::parallel_for and every task writes
// a disjoint slice of its output in a fixed order (no atomics), so the results
// do not depend on the thread count or on scheduling.
#include "core/ops/deform_kernel2d_kernels.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace deformscope::ops::detail {
namespace {

// The four bilinear corners of one sample. Corners outside the grid get index 0
// and zero weights, so callers can read them without branching.
template <typename acc_t>
struct Corners {
    int64_t idx[4] = {0, 0, 0, 0};
    acc_t w[4] = {0, 0, 0, 0};  // bilinear weights
    acc_t wy[4] = {0, 0, 0, 0}; // d w / d y
    acc_t wx[4] = {0, 0, 0, 0}; // d w / d x

    template <typename scalar_t>
    acc_t sample(const scalar_t* plane) const {
        return w[0] * acc_t(plane[idx[0]]) + w[1] * acc_t(plane[idx[1]]) + w[2] * acc_t(plane[idx[2]]) +
               w[3] * acc_t(plane[idx[3]]);
    }
    // value, d value / dy, d value / dx
    template <typename scalar_t>
    void sampleWithGrad(const scalar_t* plane, acc_t& v, acc_t& dy, acc_t& dx) const {
        const acc_t v0 = acc_t(plane[idx[0]]), v1 = acc_t(plane[idx[1]]);
        const acc_t v2 = acc_t(plane[idx[2]]), v3 = acc_t(plane[idx[3]]);
        v = w[0] * v0 + w[1] * v1 + w[2] * v2 + w[3] * v3;
        dy = wy[0] * v0 + wy[1] * v1 + wy[2] * v2 + wy[3] * v3;
        dx = wx[0] * v0 + wx[1] * v1 + wx[2] * v2 + wx[3] * v3;
    }
};

// torchvision's boundary rule, shared by forward and backward and by both the
// image and the scope-kernel sampling, so they cannot disagree: a sample at
// y <= -1, y >= extent_y, x <= -1 or x >= extent_x is 0 and has zero gradient;
// otherwise corners outside the grid count as 0. Written as "not inside" so that
// a NaN position is a zero sample too, never an index.
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

// Image plan, entries ordered [b][k][p] (p = oy*out_w + ox).
template <typename scalar_t, typename acc_t>
std::vector<Corners<acc_t>> imagePlan(const scalar_t* offset, const DeformKernelGeometry& g) {
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    std::vector<Corners<acc_t>> plan(static_cast<size_t>(g.batch * K * P));
    at::parallel_for(0, g.batch * K, 1, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) { // row = b*K + k
            const int64_t k = row % K;
            const int64_t i = k / g.kernel_w;
            const int64_t j = k % g.kernel_w;
            // offset channels of (b, k): dy at 2k, dx at 2k+1
            const scalar_t* dy = g.use_offset ? offset + 2 * row * P : nullptr;
            const scalar_t* dx = g.use_offset ? dy + P : nullptr;
            Corners<acc_t>* out = plan.data() + row * P;
            for (int64_t oy = 0; oy < g.out_h; ++oy) {
                const acc_t base_y = acc_t(oy * g.stride_h - g.pad_h + i * g.dilation_h);
                for (int64_t ox = 0; ox < g.out_w; ++ox) {
                    const int64_t p = oy * g.out_w + ox;
                    const acc_t base_x = acc_t(ox * g.stride_w - g.pad_w + j * g.dilation_w);
                    out[p] = dy ? cornersAt<acc_t>(base_y + acc_t(dy[p]), base_x + acc_t(dx[p]), g.height, g.width)
                                : cornersAt<acc_t>(base_y, base_x, g.height, g.width);
                }
            }
        }
    });
    return plan;
}

// Scope plan, entries ordered [b][k][q] with q < kernelOffsetPlane() (q = p in
// local mode, q = 0 in global mode); indices are into one channel's Sh*Sw scope.
template <typename scalar_t, typename acc_t>
std::vector<Corners<acc_t>> scopePlan(const scalar_t* kernel_offset, const DeformKernelGeometry& g) {
    const int64_t K = g.taps();
    const int64_t Q = g.kernelOffsetPlane();
    std::vector<Corners<acc_t>> plan(static_cast<size_t>(g.batch * K * Q));
    at::parallel_for(0, g.batch * K, 1, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
            const int64_t k = row % K;
            const acc_t base_y = acc_t(g.baseY(k / g.kernel_w));
            const acc_t base_x = acc_t(g.baseX(k % g.kernel_w));
            const scalar_t* dy = kernel_offset + 2 * row * Q;
            const scalar_t* dx = dy + Q;
            Corners<acc_t>* out = plan.data() + row * Q;
            for (int64_t q = 0; q < Q; ++q)
                out[q] = cornersAt<acc_t>(base_y + acc_t(dy[q]), base_x + acc_t(dx[q]), g.scope_h, g.scope_w);
        }
    });
    return plan;
}

template <typename scalar_t>
void forwardTyped(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                  const at::Tensor& offset, const DeformKernelGeometry& g, at::Tensor& output) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const int64_t HW = g.height * g.width;
    const int64_t S = g.scopeSize();
    const int64_t Q = g.kernelOffsetPlane();

    const auto img = imagePlan<scalar_t, acc_t>(g.use_offset ? offset.const_data_ptr<scalar_t>() : nullptr, g);
    const auto ker = scopePlan<scalar_t, acc_t>(kernel_offset.const_data_ptr<scalar_t>(), g);
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* wt = weight.const_data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();

    // One task per (image, channel): it owns that output plane.
    at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(static_cast<size_t>(P));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / g.channels;
            const int64_t c = task % g.channels;
            const scalar_t* plane = in + task * HW;
            const scalar_t* scope = wt + c * S;
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t k = 0; k < K; ++k) {
                const Corners<acc_t>* s = img.data() + (b * K + k) * P;
                const Corners<acc_t>* kc = ker.data() + (b * K + k) * Q;
                if (!g.local_kernel) {
                    const acc_t wv = kc[0].sample(scope);
                    for (int64_t p = 0; p < P; ++p)
                        acc[p] += wv * s[p].sample(plane);
                } else {
                    for (int64_t p = 0; p < P; ++p)
                        acc[p] += kc[p].sample(scope) * s[p].sample(plane);
                }
            }
            scalar_t* dst = out + task * P;
            for (int64_t p = 0; p < P; ++p)
                dst[p] = static_cast<scalar_t>(acc[p]);
        }
    });
}

template <typename scalar_t>
void backwardTyped(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                   const at::Tensor& kernel_offset, const at::Tensor& offset, const DeformKernelGeometry& g,
                   at::Tensor& grad_input, at::Tensor& grad_weight, at::Tensor& grad_kernel_offset,
                   at::Tensor& grad_offset) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const int64_t HW = g.height * g.width;
    const int64_t S = g.scopeSize();
    const int64_t Q = g.kernelOffsetPlane();
    const int64_t C = g.channels;

    const auto img = imagePlan<scalar_t, acc_t>(g.use_offset ? offset.const_data_ptr<scalar_t>() : nullptr, g);
    const auto ker = scopePlan<scalar_t, acc_t>(kernel_offset.const_data_ptr<scalar_t>(), g);
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* wt = weight.const_data_ptr<scalar_t>();
    const scalar_t* gout = grad_output.const_data_ptr<scalar_t>();

    // grad_input: one task per (image, channel) owns its input plane, so the
    // scatter to the image corners needs no atomics.
    scalar_t* gin = grad_input.data_ptr<scalar_t>();
    at::parallel_for(0, g.batch * C, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(static_cast<size_t>(HW));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / C;
            const int64_t c = task % C;
            const scalar_t* scope = wt + c * S;
            const scalar_t* go = gout + task * P;
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t k = 0; k < K; ++k) {
                const Corners<acc_t>* s = img.data() + (b * K + k) * P;
                const Corners<acc_t>* kc = ker.data() + (b * K + k) * Q;
                const acc_t wglobal = g.local_kernel ? acc_t(0) : kc[0].sample(scope);
                for (int64_t p = 0; p < P; ++p) {
                    const acc_t v = acc_t(go[p]) * (g.local_kernel ? kc[p].sample(scope) : wglobal);
                    const Corners<acc_t>& e = s[p];
                    acc[e.idx[0]] += e.w[0] * v;
                    acc[e.idx[1]] += e.w[1] * v;
                    acc[e.idx[2]] += e.w[2] * v;
                    acc[e.idx[3]] += e.w[3] * v;
                }
            }
            scalar_t* dst = gin + task * HW;
            for (int64_t q = 0; q < HW; ++q)
                dst[q] = static_cast<scalar_t>(acc[q]);
        }
    });

    // grad_weight: one task per channel owns its scope kernel and walks the
    // chunk's images, taps and positions in order; the result is added to what
    // earlier chunks left there.
    scalar_t* gw = grad_weight.data_ptr<scalar_t>();
    at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(static_cast<size_t>(S));
        for (int64_t c = begin; c < end; ++c) {
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t b = 0; b < g.batch; ++b) {
                const scalar_t* plane = in + (b * C + c) * HW;
                const scalar_t* go = gout + (b * C + c) * P;
                for (int64_t k = 0; k < K; ++k) {
                    const Corners<acc_t>* s = img.data() + (b * K + k) * P;
                    const Corners<acc_t>* kc = ker.data() + (b * K + k) * Q;
                    if (!g.local_kernel) {
                        // One scope sample for the whole image: sum first, scatter once.
                        acc_t sum = 0;
                        for (int64_t p = 0; p < P; ++p)
                            sum += acc_t(go[p]) * s[p].sample(plane);
                        for (int j = 0; j < 4; ++j)
                            acc[kc[0].idx[j]] += kc[0].w[j] * sum;
                    } else {
                        for (int64_t p = 0; p < P; ++p) {
                            const acc_t v = acc_t(go[p]) * s[p].sample(plane);
                            const Corners<acc_t>& e = kc[p];
                            acc[e.idx[0]] += e.w[0] * v;
                            acc[e.idx[1]] += e.w[1] * v;
                            acc[e.idx[2]] += e.w[2] * v;
                            acc[e.idx[3]] += e.w[3] * v;
                        }
                    }
                }
            }
            scalar_t* dst = gw + c * S;
            for (int64_t q = 0; q < S; ++q)
                dst[q] = static_cast<scalar_t>(acc_t(dst[q]) + acc[q]);
        }
    });

    // grad_kernel_offset and grad_offset: one task per (image, tap, block of
    // positions) sums over the channels in a fixed order. In global mode the
    // per-position kernel-offset terms go to a scratch row and are summed over
    // the positions afterwards, again in order.
    constexpr int64_t kBlock = 1024;
    const int64_t blocks = (P + kBlock - 1) / kBlock;
    std::vector<acc_t> perPosition; // global mode: [b][k][2][P]
    if (!g.local_kernel)
        perPosition.assign(static_cast<size_t>(g.batch * K * 2 * P), acc_t(0));
    scalar_t* gko = grad_kernel_offset.data_ptr<scalar_t>();
    scalar_t* goff = g.use_offset ? grad_offset.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, g.batch * K * blocks, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> aky(kBlock), akx(kBlock), ay(kBlock), ax(kBlock);
        for (int64_t task = begin; task < end; ++task) {
            const int64_t blk = task % blocks;
            const int64_t row = task / blocks; // b*K + k
            const int64_t b = row / K;
            const int64_t p0 = blk * kBlock;
            const int64_t n = std::min(kBlock, P - p0);
            std::fill_n(aky.begin(), n, acc_t(0));
            std::fill_n(akx.begin(), n, acc_t(0));
            std::fill_n(ay.begin(), n, acc_t(0));
            std::fill_n(ax.begin(), n, acc_t(0));
            const Corners<acc_t>* s = img.data() + row * P + p0;
            const Corners<acc_t>* kc = ker.data() + row * Q + (g.local_kernel ? p0 : 0);
            for (int64_t c = 0; c < C; ++c) {
                const scalar_t* plane = in + (b * C + c) * HW;
                const scalar_t* scope = wt + c * S;
                const scalar_t* go = gout + (b * C + c) * P + p0;
                acc_t wv = 0, wdy = 0, wdx = 0;
                if (!g.local_kernel)
                    kc[0].sampleWithGrad(scope, wv, wdy, wdx);
                for (int64_t q = 0; q < n; ++q) {
                    if (g.local_kernel)
                        kc[q].sampleWithGrad(scope, wv, wdy, wdx);
                    acc_t xv, xdy, xdx;
                    s[q].sampleWithGrad(plane, xv, xdy, xdx);
                    const acc_t gq = acc_t(go[q]);
                    aky[q] += gq * xv * wdy;
                    akx[q] += gq * xv * wdx;
                    ay[q] += gq * wv * xdy;
                    ax[q] += gq * wv * xdx;
                }
            }
            if (g.local_kernel) {
                scalar_t* gy = gko + 2 * row * P + p0;
                scalar_t* gx = gy + P;
                for (int64_t q = 0; q < n; ++q) {
                    gy[q] = static_cast<scalar_t>(aky[q]);
                    gx[q] = static_cast<scalar_t>(akx[q]);
                }
            } else {
                acc_t* py = perPosition.data() + 2 * row * P + p0;
                acc_t* px = py + P;
                std::copy_n(aky.begin(), n, py);
                std::copy_n(akx.begin(), n, px);
            }
            if (goff) {
                scalar_t* gy = goff + 2 * row * P + p0;
                scalar_t* gx = gy + P;
                for (int64_t q = 0; q < n; ++q) {
                    gy[q] = static_cast<scalar_t>(ay[q]);
                    gx[q] = static_cast<scalar_t>(ax[q]);
                }
            }
        }
    });
    if (!g.local_kernel) {
        // grad_kernel_offset [b, 2k + a, 0, 0] = Σ_p perPosition[b][k][a][p], in order.
        at::parallel_for(0, g.batch * K * 2, 1, [&](int64_t begin, int64_t end) {
            for (int64_t r = begin; r < end; ++r) {
                const acc_t* src = perPosition.data() + r * P;
                acc_t sum = 0;
                for (int64_t p = 0; p < P; ++p)
                    sum += src[p];
                gko[r] = static_cast<scalar_t>(sum);
            }
        });
    }
}

void forwardCpu(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                const at::Tensor& offset, const DeformKernelGeometry& g, at::Tensor& output) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_kernel2d_forward_cpu",
                                    [&] { forwardTyped<scalar_t>(input, weight, kernel_offset, offset, g, output); });
}

void backwardCpu(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                 const at::Tensor& kernel_offset, const at::Tensor& offset, const DeformKernelGeometry& g,
                 bool /*deterministic: always*/, at::Tensor& grad_input, at::Tensor& grad_weight,
                 at::Tensor& grad_kernel_offset, at::Tensor& grad_offset) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "deform_kernel2d_backward_cpu", [&] {
                                        backwardTyped<scalar_t>(grad_output, input, weight, kernel_offset, offset, g,
                                                                grad_input, grad_weight, grad_kernel_offset,
                                                                grad_offset);
                                    });
}

} // namespace

DeformKernelKernels cpuDeformKernelKernels() {
    return {&forwardCpu, &backwardCpu};
}

} // namespace deformscope::ops::detail
