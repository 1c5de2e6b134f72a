// The CPU kernels' sampling plans, shared by deform_conv2d and deform_kernel2d.
//
// A plan holds, for every (row, output position) of a chunk, the
// BilinearCorners (bilinear.h) of the image read that position makes: computed
// once, then replayed for every channel that shares the row's offsets. A row is
// one (image, offset group, tap): (b*G + g)*K + k, with G = 1 for
// deform_kernel2d. Every loop runs under at::parallel_for and every task writes a
// disjoint slice of its output in a fixed order (no atomics), so the results do
// not depend on the thread count or on scheduling.
#pragma once

#include "core/ops/bilinear.h"
#include "core/ops/sampling_grid.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace deformscope::ops::detail {

template <typename acc_t>
using SamplingPlan = std::vector<BilinearCorners<acc_t>>;

// The image plan of `rows` rows, entries ordered [row][p]. Row r reads its
// offsets (dy at channel 2r, dx at 2r + 1, each a plane of out_h*out_w) from
// `offset`, or reads the unmoved grid when `offset` is null.
template <typename scalar_t, typename acc_t>
SamplingPlan<acc_t> imagePlan(const scalar_t* offset, int64_t rows, const SamplingGrid& g) {
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    SamplingPlan<acc_t> plan(static_cast<size_t>(rows * P));
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
            const int64_t k = row % K;
            const int64_t i = k / g.kernel_w;
            const int64_t j = k % g.kernel_w;
            const scalar_t* dy = offset ? offset + 2 * row * P : nullptr;
            const scalar_t* dx = offset ? dy + P : nullptr;
            BilinearCorners<acc_t>* out = plan.data() + row * P;
            for (int64_t oy = 0; oy < g.out_h; ++oy) {
                const acc_t base_y = acc_t(g.tapRow(oy, i));
                for (int64_t ox = 0; ox < g.out_w; ++ox) {
                    const int64_t p = oy * g.out_w + ox;
                    const acc_t base_x = acc_t(g.tapCol(ox, j));
                    out[p] = dy ? cornersAt<acc_t>(base_y + acc_t(dy[p]), base_x + acc_t(dx[p]), g.height, g.width)
                                : cornersAt<acc_t>(base_y, base_x, g.height, g.width);
                }
            }
        }
    });
    return plan;
}

// The input gradient of a chunk: grad_input[b, c] += Σ_k Σ_p (corner weights of
// row (b*G + g(c))*K + k, position p) * factor(p), where
// tapFactors(b, c, k) returns that tap's factor(p) (the gradient arriving at
// the read). One task per (image, channel) owns the input plane, so the scatter
// to the corners needs no atomics; it accumulates in acc_t and adds the sum to
// what grad_input holds.
template <typename scalar_t, typename acc_t, typename TapFactors>
void scatterInputGrad(const SamplingPlan<acc_t>& plan, const SamplingGrid& g, int64_t groups,
                      const TapFactors& tapFactors, scalar_t* grad_input) {
    const int64_t K = g.taps();
    const int64_t P = g.outPlane();
    const int64_t HW = g.pixels();
    const int64_t channels_per_group = g.channels / groups;
    at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> acc(static_cast<size_t>(HW));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / g.channels;
            const int64_t c = task % g.channels;
            const int64_t grp = c / channels_per_group;
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t k = 0; k < K; ++k) {
                const BilinearCorners<acc_t>* s = plan.data() + ((b * groups + grp) * K + k) * P;
                const auto factor = tapFactors(b, c, k);
                for (int64_t p = 0; p < P; ++p) {
                    // A zero factor adds exactly nothing: skipped, which makes the
                    // gradient of one node (an ERF: zero almost everywhere) cheap.
                    const acc_t f = factor(p);
                    if (f != acc_t(0))
                        s[p].scatter(acc.data(), f);
                }
            }
            scalar_t* dst = grad_input + task * HW;
            for (int64_t q = 0; q < HW; ++q)
                dst[q] = static_cast<scalar_t>(acc_t(dst[q]) + acc[q]);
        }
    });
}

// The position-gradient passes: fn(row, p0, n, scratch) for every row in
// [0, rows) and every block [p0, p0 + n) of at most kPositionBlock of the P
// output positions, one task per (row, block). `scratch` holds kScratch
// accumulators of the block, zero-filled for each call.
constexpr int64_t kPositionBlock = 1024;

template <typename acc_t, size_t kScratch, typename Fn>
void forPositionBlocks(int64_t rows, int64_t P, const Fn& fn) {
    const int64_t blocks = (P + kPositionBlock - 1) / kPositionBlock;
    at::parallel_for(0, rows * blocks, 1, [&](int64_t begin, int64_t end) {
        std::array<std::vector<acc_t>, kScratch> scratch;
        for (auto& s : scratch)
            s.resize(kPositionBlock);
        for (int64_t task = begin; task < end; ++task) {
            const int64_t row = task / blocks;
            const int64_t p0 = (task % blocks) * kPositionBlock;
            const int64_t n = std::min(kPositionBlock, P - p0);
            for (auto& s : scratch)
                std::fill_n(s.begin(), n, acc_t(0));
            fn(row, p0, n, scratch);
        }
    });
}

} // namespace deformscope::ops::detail
