// Internals of the saliency search (saliency_grid.cpp, saliency_surrogate.cpp),
// exposed for its tests only.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace deformscope::analysis::saliency_detail {

// Side of the coarse cells: about `coarseCells` cells along the longer side of
// an h × w box (at least 1 pixel).
int64_t coarseCellSide(int64_t h, int64_t w, int64_t coarseCells);

// Nested partitions of the pixel range [begin, end) along one axis, as segment
// boundaries (first = begin, last = end). Level 0 has ceil(len / cell) segments
// of near-equal length (they differ by at most 1); each next level halves every
// segment of length ≥ 2·minCell (the first half gets the extra pixel). Levels
// stop when nothing splits, so the last level's segments are all < 2·minCell
// (or the coarse ones, when they already are).
std::vector<std::vector<int64_t>> axisLevels(int64_t begin, int64_t end, int64_t cell, int64_t minCell);

// The greedy removal path of the linear surrogate: starting from the error
// vector e0 ([D]), each step removes the candidate i (rows of deltas, [n, D],
// the change of the response when i alone is removed) that leaves the smallest
// ‖e0 + Σ deltas‖. order: the n candidates in removal order; error[j]: the
// surrogate's error norm after the first j + 1 removals; single[i]: the
// surrogate's error norm after removing i alone (= ‖e0 + deltas[i]‖).
struct GreedyPath {
    std::vector<int64_t> order;
    std::vector<double> error;
    std::vector<double> single;
};
GreedyPath greedyRemovalPath(const at::Tensor& deltas, const at::Tensor& e0);

// Beam search on the linear surrogate over n items with effects g ([n, D]):
// from the state `start` (one flag per item) with residual e0 ([D]), each step
// sets one more item (add = true: residual += gᵢ) or clears one (add = false:
// residual −= gᵢ), keeping the `width` states with the smallest residual norm
// per depth (duplicates merged). Returns the states whose residual norm is
// ≤ tau: with add, those of the first depth that has any (the start itself when
// it qualifies); without, up to `perDepth` per depth (smallest first), every depth.
std::vector<std::vector<uint8_t>> beamSearch(const at::Tensor& g, const at::Tensor& e0, const std::vector<uint8_t>& start,
                                             bool add, double tau, int64_t width, int64_t perDepth);

} // namespace deformscope::analysis::saliency_detail
