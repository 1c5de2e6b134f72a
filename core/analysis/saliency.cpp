// The error-bounded saliency search (saliency.h; ../shared/reference/DCN.md §3).
//
// The search only asks the evaluator for the responses of batches of masks; every
// mask it adopts was evaluated and met the bound (‖r − r(I)‖ ≤ ε‖r(I)‖). This file
// validates the problem, keeps the current mask and runs the stages in order; each
// stage has its own file (in brackets), sharing saliency_search.h.
//
//  1. ε ≤ 0: the whole image, evaluated once [saliency_verify.cpp].
//  2. Coarse grid over the search box (near-square cells, about coarseCells along
//     the longer side) [saliency_grid.cpp], start point [saliency_start.cpp]:
//     - with an importance map: the cells ranked by importance, and the shortest
//       passing prefix of the ranking by a batched bracket search (evenly spaced
//       prefix lengths per call, then the bracket below the smallest passing one);
//     - without: the box plus every single-cell removal from it (occlusion).
//     The first batch holds the box alone; if it misses the bound the search
//     widens to the whole grid (and says so in the note).
//  3. Coarse search on a linear surrogate [saliency_prune.cpp; its beam searches,
//     and the greedy path of 4, in saliency_surrogate.cpp]: flipping each cell of
//     the frontier (all cells when few; else the kept ones and their neighbours)
//     at an anchor gives its effect gᵢ on the response vector, and
//     r(state) ≈ r(anchor) ± Σ gᵢ.
//     Beam searches on the surrogate (adding cells from none, removing them from
//     all, removing them from the anchor; the residual norm drives the beams, so
//     opposite effects can cancel) propose states predicted to pass with less
//     area; a batch of them spread over the areas found is evaluated and the
//     smallest passing one adopted, keeping the surrogate (re-anchored on the
//     measured response). When a batch fails, the surrogate is re-measured at
//     the best mask, or, when it was fresh there already, at the failing proposal
//     closest to the bound (re-linearisation); two such failures in a row end it.
//  4. Refinement [saliency_refine.cpp]: cells are halved (while their side is
//     ≥ 2·minCell); at each level the kept cells on the region's boundary are
//     removal candidates. Each call holds lengths of a greedy removal path
//     (nested sets, around the surrogate's largest feasible length) plus single
//     removals of candidates not measured yet; unmeasured candidates start from
//     their measured ancestor's effect shared out by importance (or area), scaled
//     by how such estimates compared with the measurements so far; evaluated
//     chunks calibrate the effects; the largest passing length is adopted; newly
//     exposed boundary cells join.
//  5. Budget: targetForwards plans the search (about half for the coarse grid,
//     the rest shared by the levels; Search::run below); maxForwards is a hard
//     cap (every evaluator call is counted in saliency_batches.cpp). The final
//     mask is evaluated alone; should it miss the bound (a non-deterministic
//     evaluator), the previously adopted masks, then the whole image, are tried
//     the same way [saliency_verify.cpp].
#include "core/analysis/saliency.h"
#include "core/analysis/saliency_internal.h"
#include "core/analysis/saliency_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <string>

namespace deformscope::analysis {
namespace saliency_detail {

Search::Search(const SaliencyProblem& problem, const SaliencyOptions& options, const SaliencyProgressFn& progress)
    : o_(options), batches_(problem, options.maxForwards, progress), t0_(Clock::now()) {
    validate(problem);
}

// The evaluator's side (evaluator, grid, reference) is Batches' to check; the rest is here.
void Search::validate(const SaliencyProblem& p) {
    H_ = batches_.height();
    W_ = batches_.width();
    D_ = batches_.responseSize();
    ref_ = batches_.reference();
    scale_ = batches_.scale();
    device_ = p.device;
    if (p.importance.defined()) {
        const auto s = p.importance.sizes();
        if (p.importance.dim() != 2 || s[0] != H_ || s[1] != W_) {
            std::ostringstream m;
            m << "importance has shape " << s << "; expected [" << H_ << ", " << W_ << "]";
            invalidProblem(m.str());
        }
        importance_ = p.importance.detach().to(at::kCPU, at::kDouble).contiguous();
        if (!at::isfinite(importance_).all().item<bool>())
            invalidProblem("importance has non-finite values");
    }
    const auto& b = p.box;
    if (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0) {
        box_ = {0, 0, H_, W_};
    } else {
        if (b[0] < 0 || b[1] < 0 || b[2] > H_ || b[3] > W_ || b[0] >= b[2] || b[1] >= b[3]) {
            std::ostringstream m;
            m << "box {" << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3] << "} is empty or outside the " << H_ << "x"
              << W_ << " grid (expected 0 <= y0 < y1 <= height, 0 <= x0 < x1 <= width)";
            invalidProblem(m.str());
        }
        box_ = b;
    }
    boxIsGrid_ = box_[0] == 0 && box_[1] == 0 && box_[2] == H_ && box_[3] == W_;
    if (o_.coarseCells < 1)
        invalidProblem("options.coarseCells must be >= 1");
    if (o_.minCell < 1)
        invalidProblem("options.minCell must be >= 1");
    if (o_.batchSize < 1)
        invalidProblem("options.batchSize must be >= 1");
    if (o_.maxForwards < 1)
        invalidProblem("options.maxForwards must be >= 1");
    if (!std::isfinite(o_.epsilon))
        invalidProblem("options.epsilon must be finite");
    if (importance_.defined()) {
        sums_.integral = at::zeros({H_ + 1, W_ + 1}, at::kDouble);
        sums_.integral.slice(0, 1).slice(1, 1).copy_(importance_.cumsum(0).cumsum(1));
        sums_.meanAbs = importance_.abs().mean().item<double>();
    }
}

// Makes kept_ (as the caller just set it) the current mask, with the response
// measured for it; every adopted mask joins the history the final check falls back on.
void Search::accept(const at::Tensor& resp, double err) {
    rM_ = resp.to(at::kDouble).reshape({-1}).clone();
    errM_ = err;
    history_.push_back({grid_.pixelMask(kept_), err});
}

// A measured state that meets the bound with less area than the current mask
// becomes the current mask.
void Search::offer(const std::vector<uint8_t>& state, const at::Tensor& resp, double err) {
    if (err <= o_.epsilon && grid_.areaOf(state) < keptArea()) {
        kept_ = state;
        accept(resp, err);
    }
}

// An evaluated state: never proposed again, and offered as the current mask.
void Search::record(const std::vector<uint8_t>& state, const at::Tensor& resp, double err) {
    evaluated_.insert(hashOf(state));
    offer(state, resp, err);
}

uint64_t Search::hashOf(const std::vector<uint8_t>& flags) const {
    uint64_t h = 0;
    for (size_t c = 0; c < flags.size() && c < zobrist_.size(); ++c)
        if (flags[c])
            h ^= zobrist_[c];
    return h;
}

SaliencyResult Search::run() {
    SaliencyResult res;
    if (o_.epsilon <= 0) {
        res = verifyWholeImage(batches_, o_.epsilon, "ε ≤ 0: the whole image", notes_);
    } else {
        const int64_t target = std::max<int64_t>(o_.targetForwards, 1);
        for (int attempt = 0; attempt < 2; ++attempt) {
            const int64_t bh = box_[2] - box_[0], bw = box_[3] - box_[1];
            const int64_t cell = coarseCellSide(bh, bw, o_.coarseCells);
            const auto ylevels = axisLevels(box_[0], box_[2], cell, o_.minCell);
            const auto xlevels = axisLevels(box_[1], box_[3], cell, o_.minCell);
            grid_ = makeGrid(ylevels[0], xlevels[0], H_, W_, device_, sums_);
            kept_.assign(grid_.cells, 0);
            history_.clear();
            evaluated_.clear();
            zobrist_ = zobristKeys(static_cast<size_t>(grid_.cells), 0x0dcb2e5aULL);
            ownerPix_ = at::full({H_, W_}, -1, at::kLong);
            ownerDelta_.clear();
            ownerWeight_.clear();
            Model model;
            model.G = at::zeros({0, D_}, at::kDouble);
            const Start s = importance_.defined() ? startWithImportance() : startWithOcclusion(model);
            if (s == Start::BoxFailed) {
                if (!boxIsGrid_) {
                    notes_.back() += "; searched the whole image";
                    box_ = {0, 0, H_, W_};
                    boxIsGrid_ = true;
                    continue;
                }
                history_.clear();
                break;
            }
            if (s == Start::Stopped)
                break;
            // Coarse stage: about half the planned forwards (at least the occlusion and two batches).
            batches_.setStage("prune", 0.2, 0.3);
            const int64_t coarseEnd = std::max<int64_t>(target / 2, grid_.cells + 1 + 2 * o_.batchSize);
            coarseSearch(model, coarseEnd);
            // Seed the refinement's estimates with the surrogate's removal effects.
            for (size_t i = 0; i < model.cells.size(); ++i)
                if (kept_[model.cells[i]])
                    registerOwner(model.cells[i], -model.G[static_cast<int64_t>(i)]);
            const size_t levels = std::max(ylevels.size(), xlevels.size());
            for (size_t l = 1; l < levels && !batches_.stopped(); ++l) {
                const at::Tensor pix = grid_.pixelMask(kept_);
                grid_ = makeGrid(ylevels[std::min(l, ylevels.size() - 1)], xlevels[std::min(l, xlevels.size() - 1)], H_, W_, device_,
                                 sums_);
                const at::Tensor keptCells = at::zeros({grid_.cells + 1}, at::kByte)
                                                 .index_put_({grid_.cellOfPixelCpu}, pix.reshape({-1}))
                                                 .slice(0, 0, grid_.cells)
                                                 .contiguous();
                kept_.assign(keptCells.data_ptr<uint8_t>(), keptCells.data_ptr<uint8_t>() + grid_.cells);
                const double span = 0.45 / static_cast<double>(levels - 1);
                batches_.setStage("refine " + std::to_string(grid_.side) + "px", 0.5 + span * static_cast<double>(l - 1), span);
                const int64_t share = (target - batches_.forwards()) / static_cast<int64_t>(levels - l);
                const int64_t levelEnd = batches_.forwards() + std::max<int64_t>(share, 2 * o_.batchSize);
                eliminate(levelEnd);
            }
            break;
        }
        res = verifyFinal(batches_, history_, o_.epsilon, notes_);
    }
    res.forwards = batches_.forwards();
    res.evaluatorCalls = batches_.calls();
    res.seconds = std::chrono::duration<double>(Clock::now() - t0_).count();
    std::string note;
    for (const auto& n : notes_)
        note += (note.empty() ? "" : "; ") + n;
    res.note = note;
    return res;
}

} // namespace saliency_detail

SaliencyResult searchSaliency(const SaliencyProblem& problem, const SaliencyOptions& options, const SaliencyProgressFn& progress) {
    saliency_detail::Search search(problem, options, progress);
    return search.run();
}

} // namespace deformscope::analysis
