// What the files of the saliency search share: the cell grid, the evaluator's
// batches, the final check and the Search whose stages they implement
// (saliency.cpp describes the algorithm and runs the stages). Internal to
// core_saliency: everything here assumes a problem Search's constructor validated.
#pragma once

#include "core/analysis/saliency.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

namespace deformscope::analysis::saliency_detail {

// "searchSaliency: <what>" as std::invalid_argument: the search's one way of refusing a problem.
[[noreturn]] void invalidProblem(const std::string& what);

// %.4g, for errors quoted in the result's note.
std::string shortNumber(double v);

// n pseudo-random 64-bit keys from `seed` (splitmix64): Zobrist hashing of sets of cells.
std::vector<uint64_t> zobristKeys(size_t n, uint64_t seed);

// ---- grid (saliency_grid.cpp) ----------------------------------------------------

// One level of the nested cell grid over the search box.
struct Grid {
    std::vector<int64_t> yb, xb; // segment boundaries (absolute pixels)
    int64_t ny = 0, nx = 0, cells = 0;
    int64_t side = 0;            // the largest segment length
    int64_t H = 0, W = 0;        // the mask grid it lies on
    at::Tensor cellOfPixel;      // [H·W] int64 on the device; `cells` outside the box
    at::Tensor cellOfPixelCpu;
    std::vector<int64_t> area;       // pixels per cell
    std::vector<double> rankWeight;  // importance per cell (ranking)
    std::vector<double> shareWeight; // importance (+ a little area) per cell: shares of a parent's Δ
    int64_t y0(int64_t c) const { return yb[c / nx]; }
    int64_t y1(int64_t c) const { return yb[c / nx + 1]; }
    int64_t x0(int64_t c) const { return xb[c % nx]; }
    int64_t x1(int64_t c) const { return xb[c % nx + 1]; }

    // Pixels kept by per-cell flags.
    int64_t areaOf(const std::vector<uint8_t>& flags) const;
    // The [H, W] uint8 CPU mask of per-cell flags (nothing outside the box).
    at::Tensor pixelMask(const std::vector<uint8_t>& flags) const;
    // Stable sort of `cells`, the most important (rankWeight) first.
    void sortByImportance(std::vector<int64_t>& cells) const;
};

// The importance map summed over rectangles (an integral image, [H+1, W+1]
// double CPU), or undefined when the problem has no importance map.
struct ImportanceSums {
    at::Tensor integral;
    double meanAbs = 0; // mean |importance| per pixel
};

// The grid with the given segment boundaries on an H × W mask grid; its pixel
// map lives on `device` (and on the CPU).
Grid makeGrid(const std::vector<int64_t>& yb, const std::vector<int64_t>& xb, int64_t H, int64_t W, c10::Device device,
              const ImportanceSums& importance);

// Per-cell flags as a bool tensor [cells] (CPU).
at::Tensor flagsTensor(const std::vector<uint8_t>& flags);

// The [H, W] uint8 CPU mask that keeps everything.
at::Tensor wholeMask(int64_t H, int64_t W);

// ---- batches (saliency_batches.cpp) ------------------------------------------------

// Every evaluator call of one search goes through here: the masks built from
// kept-cell flags, the check of what the evaluator answers, the errors against
// the reference, progress and cancellation before each call, and the count of
// masks against the hard cap (maxForwards) and a stage's budget.
class Batches {
public:
    // Validates the evaluator's side of the problem (an evaluator, a non-empty
    // grid, a non-empty finite reference); throws std::invalid_argument.
    Batches(const SaliencyProblem& problem, int64_t maxForwards, const SaliencyProgressFn& progress);

    int64_t height() const { return H_; }
    int64_t width() const { return W_; }
    int64_t responseSize() const { return D_; }
    const at::Tensor& reference() const { return ref_; } // [D] double CPU
    double scale() const { return scale_; }              // ‖reference‖, or 1 when it is 0 (absolute errors)

    // One evaluator call on the masks of `keep` ([B, grid.cells] bool, kept
    // flags per cell). Reports progress first; false: cancelled, nothing
    // evaluated. resp: [B, D] double CPU; err: relative errors (NaN: ∞).
    bool evaluate(const Grid& grid, const at::Tensor& keep, at::Tensor& resp, std::vector<double>& err);
    // The same for one [H, W] mask (any integer or float type, CPU).
    bool evaluateAlone(const at::Tensor& mask, double& err);

    // Masks that may still be evaluated before `budgetEnd` (a forward count);
    // notes the hard cap when that is what stops.
    int64_t budgetLeft(int64_t budgetEnd = std::numeric_limits<int64_t>::max());
    bool stopped() const { return cancelled_ || capHit_; }
    bool cancelled() const { return cancelled_; }
    bool capHit() const { return capHit_; }
    int64_t forwards() const { return forwards_; }
    int64_t calls() const { return calls_; }
    int64_t maxForwards() const { return maxForwards_; }

    // The stage reported from now on, and the span of the overall fraction it
    // fills (asymptotically, by its evaluator calls).
    void setStage(std::string name, double base, double span);

private:
    bool evaluateMasks(const at::Tensor& masks, at::Tensor& resp, std::vector<double>& err);
    bool report();
    double fraction();

    const SaliencyProblem& p_;
    const SaliencyProgressFn& progress_;
    int64_t maxForwards_ = 0;
    int64_t H_ = 0, W_ = 0, D_ = 0;
    at::Tensor ref_;
    double scale_ = 1;

    int64_t forwards_ = 0, calls_ = 0;
    bool cancelled_ = false, capHit_ = false;
    std::string stage_;
    double stageBase_ = 0, stageSpan_ = 0;
    int64_t stageCalls_ = 0;
    double lastFraction_ = 0;
};

// ---- verification (saliency_verify.cpp) --------------------------------------------

// A mask the search adopted, with the error its batch measured.
struct Accepted {
    at::Tensor mask; // [H, W] uint8 CPU
    double error = 0;
};

// The result for ε ≤ 0 (or a search that found nothing): the whole image,
// evaluated once. Adds `note` (and, when cancelled, why nothing was evaluated).
SaliencyResult verifyWholeImage(Batches& batches, double epsilon, const std::string& note, std::vector<std::string>& notes);

// The result of a search that adopted `history` (oldest first): the last mask,
// evaluated alone; should it miss the bound, up to two earlier ones, then the
// whole image. When the search was cancelled, the last adopted mask (or the
// whole image) without a fresh check. Adds what happened to `notes`.
SaliencyResult verifyFinal(Batches& batches, const std::vector<Accepted>& history, double epsilon,
                           std::vector<std::string>& notes);

// ---- the search --------------------------------------------------------------------

// The linear surrogate of the coarse stage: r(state) ≈ r(anchor) + Σ over the
// model's cells whose flag differs from the anchor of ±G (G = the response with
// the cell kept minus without, measured by flipping it at the anchor).
struct Model {
    std::vector<int64_t> cells;  // grid cells it may flip; the others stay as at the anchor
    at::Tensor G;                // [n, D] double
    std::vector<uint8_t> anchor; // kept flags of every grid cell at the anchor
    at::Tensor eAnchor;          // [D] double: r(anchor) − R
    bool fresh = false;          // G measured at this anchor
};

// How the coarse start went: a mask adopted, the box alone missed the bound, or
// cancelled / out of budget with nothing adopted.
enum class Start { Ok, BoxFailed, Stopped };

// One search: the state every stage works on (the grid, the current mask and
// its response, the masks adopted, the states evaluated) and the stages.
// Invariant: once a mask is adopted, the current mask was evaluated (in some
// batch) and met the bound.
class Search {
public:
    // Validates the problem and the options; throws std::invalid_argument.
    Search(const SaliencyProblem& problem, const SaliencyOptions& options, const SaliencyProgressFn& progress);

    SaliencyResult run();

private:
    void validate(const SaliencyProblem& problem);
    // The current mask (saliency.cpp).
    void accept(const at::Tensor& resp, double err);
    void offer(const std::vector<uint8_t>& state, const at::Tensor& resp, double err);
    void record(const std::vector<uint8_t>& state, const at::Tensor& resp, double err);
    uint64_t hashOf(const std::vector<uint8_t>& flags) const;
    int64_t keptArea() const { return grid_.areaOf(kept_); }
    bool evaluate(const at::Tensor& keep, at::Tensor& resp, std::vector<double>& err) {
        return batches_.evaluate(grid_, keep, resp, err);
    }
    // Coarse start (saliency_start.cpp).
    Start shortestPrefix(const std::vector<int64_t>& ranked, bool fullKnown, int64_t budgetEnd);
    Start startWithImportance();
    Start startWithOcclusion(Model& model);
    void noteBoxMissed(double err);
    // Coarse search on the surrogate (saliency_prune.cpp).
    at::Tensor flipKeep(const std::vector<uint8_t>& anchor, std::span<const int64_t> cells, int64_t lead) const;
    void takeFlips(const std::vector<uint8_t>& anchor, const at::Tensor& rAnchor, std::span<const int64_t> cells,
                   const at::Tensor& resp, const std::vector<double>& err, int64_t lead, std::vector<at::Tensor>& rows);
    std::vector<int64_t> frontier(const std::vector<uint8_t>& state, int64_t limit) const;
    bool measureModel(Model& model, std::vector<uint8_t> anchor, at::Tensor rAnchor, int64_t limit);
    std::vector<std::vector<uint8_t>> proposals(const Model& model, int64_t slots);
    void coarseSearch(Model& model, int64_t budgetEnd);
    // Refinement levels (saliency_refine.cpp).
    void registerOwner(int64_t cell, const at::Tensor& delta);
    at::Tensor estimateDelta(int64_t cell) const;
    std::vector<int64_t> boundaryCells() const;
    void eliminate(int64_t budgetEnd);

    using Clock = std::chrono::steady_clock;
    SaliencyOptions o_;
    Batches batches_;
    Clock::time_point t0_;

    int64_t H_ = 0, W_ = 0, D_ = 0;
    at::Tensor ref_;       // [D] double CPU
    double scale_ = 1;     // ‖ref‖, or 1 when it is 0 (absolute errors)
    std::array<int64_t, 4> box_{};
    bool boxIsGrid_ = true;
    at::Tensor importance_; // [H, W] double CPU or undefined
    ImportanceSums sums_;
    c10::Device device_ = c10::Device(c10::kCPU);
    std::vector<std::string> notes_;

    Grid grid_;
    std::vector<uint8_t> kept_; // the current (best verified) mask, per grid cell
    at::Tensor rM_;             // [D] double: its response
    double errM_ = 0;
    std::vector<Accepted> history_;
    std::vector<uint64_t> zobrist_;          // per coarse cell, for the set of evaluated states
    std::unordered_set<uint64_t> evaluated_; // coarse states evaluated so far

    at::Tensor ownerPix_; // [H, W] int64 CPU: row of the Δ that covers the pixel, −1: none
    std::vector<at::Tensor> ownerDelta_;
    std::vector<double> ownerWeight_;
};

} // namespace deformscope::analysis::saliency_detail
