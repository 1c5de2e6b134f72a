// CPU kernels for deform_kernel2d (see ../deform_kernel2d_kernels.h).
//
// Both passes first build two sampling plans for the chunk (sampling_plan.h):
// for every (image, tap, position) the four bilinear corners of its image read,
// and for every (image, tap, kernel position) — one per output position in local
// mode, one per image in global mode — the four corners of its scope read. Every
// channel reuses both plans.
#include "core/ops/cpu/sampling_plan.h"
#include "core/ops/deform_kernel2d_kernels.h"
#include "core/ops/op_support.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <vector>

namespace deformscope::ops::detail {
namespace {

// Scope plan, entries ordered [b][k][q] with q < kernelOffsetPlane() (q = p in
// local mode, q = 0 in global mode); indices are into one channel's Sh*Sw scope.
template <typename scalar_t, typename acc_t>
SamplingPlan<acc_t> scopePlan(const scalar_t* kernel_offset, const DeformKernelGeometry& g) {
    const int64_t K = g.taps();
    const int64_t Q = g.kernelOffsetPlane();
    SamplingPlan<acc_t> plan(static_cast<size_t>(g.batch * K * Q));
    at::parallel_for(0, g.batch * K, 1, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
            const int64_t k = row % K;
            const acc_t base_y = acc_t(g.scopeRow(k / g.kernel_w));
            const acc_t base_x = acc_t(g.scopeCol(k % g.kernel_w));
            const scalar_t* dy = kernel_offset + 2 * row * Q;
            const scalar_t* dx = dy + Q;
            BilinearCorners<acc_t>* out = plan.data() + row * Q;
            for (int64_t q = 0; q < Q; ++q)
                out[q] = cornersAt<acc_t>(base_y + acc_t(dy[q]), base_x + acc_t(dx[q]), g.scope_h, g.scope_w);
        }
    });
    return plan;
}

// Both plans of a chunk: the image plan's rows are b*K + k (one offset group).
template <typename scalar_t>
struct Plans {
    using acc_t = at::opmath_type<scalar_t>;
    SamplingPlan<acc_t> image;
    SamplingPlan<acc_t> scope;

    Plans(const at::Tensor& kernel_offset, const at::Tensor& offset, const DeformKernelGeometry& g)
        : image(imagePlan<scalar_t, acc_t>(g.use_offset ? offset.const_data_ptr<scalar_t>() : nullptr,
                                           g.batch * g.taps(), g)),
          scope(scopePlan<scalar_t, acc_t>(kernel_offset.const_data_ptr<scalar_t>(), g)) {}
};

template <typename scalar_t>
void forwardTyped(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                  const at::Tensor& offset, const DeformKernelGeometry& g, at::Tensor& output) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const Plans<scalar_t> plans(kernel_offset, offset, g);
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* wt = weight.const_data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();

    // One task per (image, channel): it owns that output plane.
    at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(static_cast<size_t>(P));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / g.channels;
            const int64_t c = task % g.channels;
            const scalar_t* plane = in + task * g.pixels();
            const scalar_t* scope = wt + c * g.scopeSize();
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t k = 0; k < K; ++k) {
                const BilinearCorners<acc_t>* s = plans.image.data() + (b * K + k) * P;
                const BilinearCorners<acc_t>* kc = plans.scope.data() + (b * K + k) * g.kernelOffsetPlane();
                if (!g.local_kernel) {
                    const acc_t wv = kc[0].value(scope);
                    for (int64_t p = 0; p < P; ++p)
                        acc[p] += wv * s[p].value(plane);
                } else {
                    for (int64_t p = 0; p < P; ++p)
                        acc[p] += kc[p].value(scope) * s[p].value(plane);
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
    const int64_t HW = g.pixels();
    const int64_t S = g.scopeSize();
    const int64_t Q = g.kernelOffsetPlane();
    const int64_t C = g.channels;

    const Plans<scalar_t> plans(kernel_offset, offset, g);
    const SamplingPlan<acc_t>& img = plans.image;
    const SamplingPlan<acc_t>& ker = plans.scope;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* wt = weight.const_data_ptr<scalar_t>();
    const scalar_t* gout = grad_output.const_data_ptr<scalar_t>();

    // grad_input: the image read (b, c, k, p) receives grad_output * W_c(scope read).
    scatterInputGrad<scalar_t, acc_t>(
        img, g, 1,
        [&](int64_t b, int64_t c, int64_t k) {
            const scalar_t* scope = wt + c * S;
            const scalar_t* go = gout + (b * C + c) * P;
            const BilinearCorners<acc_t>* kc = ker.data() + (b * K + k) * Q;
            const bool local = g.local_kernel;
            const acc_t wglobal = local ? acc_t(0) : kc[0].value(scope);
            return [=](int64_t p) { return acc_t(go[p]) * (local ? kc[p].value(scope) : wglobal); };
        },
        grad_input.data_ptr<scalar_t>());

    // grad_weight: one task per channel owns its scope kernel and walks the
    // chunk's images, taps and positions in order; the result is added to what
    // earlier chunks left there. Skipped (left zero) when no parameter gradient is wanted.
    scalar_t* gw = grad_weight.data_ptr<scalar_t>();
    at::parallel_for(0, ParameterGradsUnneeded::active() ? 0 : C, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(static_cast<size_t>(S));
        for (int64_t c = begin; c < end; ++c) {
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t b = 0; b < g.batch; ++b) {
                const scalar_t* plane = in + (b * C + c) * HW;
                const scalar_t* go = gout + (b * C + c) * P;
                for (int64_t k = 0; k < K; ++k) {
                    const BilinearCorners<acc_t>* s = img.data() + (b * K + k) * P;
                    const BilinearCorners<acc_t>* kc = ker.data() + (b * K + k) * Q;
                    if (!g.local_kernel) {
                        // One scope read for the whole image: sum first, scatter once.
                        acc_t sum = 0;
                        for (int64_t p = 0; p < P; ++p)
                            sum += acc_t(go[p]) * s[p].value(plane);
                        kc[0].scatter(acc.data(), sum);
                    } else {
                        for (int64_t p = 0; p < P; ++p)
                            kc[p].scatter(acc.data(), acc_t(go[p]) * s[p].value(plane));
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
    std::vector<acc_t> perPosition; // global mode: [b][k][2][P]
    if (!g.local_kernel)
        perPosition.assign(static_cast<size_t>(g.batch * K * 2 * P), acc_t(0));
    scalar_t* gko = grad_kernel_offset.data_ptr<scalar_t>();
    scalar_t* goff = g.use_offset ? grad_offset.data_ptr<scalar_t>() : nullptr;
    forPositionBlocks<acc_t, 4>(g.batch * K, P, [&](int64_t row, int64_t p0, int64_t n, auto& scratch) {
        // row = b*K + k
        acc_t* aky = scratch[0].data();
        acc_t* akx = scratch[1].data();
        acc_t* ay = scratch[2].data();
        acc_t* ax = scratch[3].data();
        const int64_t b = row / K;
        const BilinearCorners<acc_t>* s = img.data() + row * P + p0;
        const BilinearCorners<acc_t>* kc = ker.data() + row * Q + (g.local_kernel ? p0 : 0);
        for (int64_t c = 0; c < C; ++c) {
            const scalar_t* plane = in + (b * C + c) * HW;
            const scalar_t* scope = wt + c * S;
            const scalar_t* go = gout + (b * C + c) * P + p0;
            acc_t wv = 0, wdy = 0, wdx = 0;
            if (!g.local_kernel)
                kc[0].valueWithGrad(scope, wv, wdy, wdx);
            for (int64_t q = 0; q < n; ++q) {
                if (g.local_kernel)
                    kc[q].valueWithGrad(scope, wv, wdy, wdx);
                acc_t xv, xdy, xdx;
                s[q].valueWithGrad(plane, xv, xdy, xdx);
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
            std::copy_n(aky, n, py);
            std::copy_n(akx, n, px);
        }
        if (goff) {
            scalar_t* gy = goff + 2 * row * P + p0;
            scalar_t* gx = gy + P;
            for (int64_t q = 0; q < n; ++q) {
                gy[q] = static_cast<scalar_t>(ay[q]);
                gx[q] = static_cast<scalar_t>(ax[q]);
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
