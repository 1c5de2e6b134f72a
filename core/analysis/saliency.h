// Error-bounded saliency region (DCNv2; ../shared/reference/DCN.md §3): the
// smallest kept region M such that, with everything else replaced by a baseline,
//     ‖r(I⊙M + B⊙(1−M)) − r(I)‖ ≤ ε · ‖r(I)‖.
//
// The search here knows nothing about models: it asks an evaluator for the
// responses of batches of masks. analysis/session.h supplies the evaluator that
// masks the image and runs the model; tests supply small synthetic ones.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>

namespace deformscope::analysis {

struct SaliencyOptions {
    double epsilon = 0.1;   // relative error bound; ε ≤ 0 asks for the exact response: the whole image
    int64_t coarseCells = 16; // the first grid has about this many cells along the search box's longer side
    int64_t minCell = 2;      // refinement halves cells while their side is ≥ 2·minCell (pixels), so it stops at
                              // cells of minCell … 2·minCell − 1; ≥ the coarse cell side: no refinement
    int64_t batchSize = 16;   // masks per evaluator call (at most); AnalysisSession::saliency: 0 = by device (4 on CPU, 32 on CUDA)
    int64_t maxForwards = 4000; // hard cap on masks evaluated before the final check
    int64_t targetForwards = 400; // soft budget the search plans with: about half for the coarse grid (at least the
                                  // occlusion pass when there is no importance map), the rest shared by the
                                  // refinement levels; a level stops when its share is spent. More: smaller regions
                                  // (on a 256×256 synthetic net the search settles at about 900–1100 masks)
};

// Reported between evaluator calls. Return false from the callback to cancel.
struct SaliencyProgress {
    int64_t forwards = 0;   // masks evaluated so far
    double fraction = 0;    // rough overall progress in [0, 1]
    std::string stage;      // "prefix" (importance ranking) or "rank" (occlusion), "prune" (coarse search),
                            // "refine <cell>px", "verify"
};
using SaliencyProgressFn = std::function<bool(const SaliencyProgress&)>;

struct SaliencyProblem {
    int64_t height = 0, width = 0;          // mask grid = the model's input grid
    // Responses of a batch of masks: masks is [B, 1, H, W] float (1 = keep the
    // image, 0 = baseline), on any device; returns [B, D] float (D ≥ 1) on the CPU.
    std::function<at::Tensor(const at::Tensor& masks)> evaluate;
    at::Tensor reference;                   // [D]: r(I), the full image's response
    at::Tensor importance;                  // [H, W] ≥ 0 (e.g. |∂r/∂I ⊙ (I − B)| summed over colours); may be undefined
    // Where the search may keep pixels: {y0, x0, y1, x1} half-open; outside it
    // everything is baseline. Default: the whole grid. (Analyses pass the
    // node's theoretical receptive field, outside which nothing can matter.)
    std::array<int64_t, 4> box{0, 0, 0, 0};
    c10::Device device = c10::Device(c10::kCPU); // where masks are built
};

struct SaliencyResult {
    at::Tensor mask;          // [H, W] uint8 on the CPU, 1 = kept
    int64_t areaPixels = 0;
    double areaFraction = 0;  // kept pixels / (H·W)
    double error = 0;         // relative error of the final mask, from its own fresh evaluation (when cancelled:
                              // from the batch that verified it; 0 for the whole image when nothing was evaluated)
    double epsilon = 0;
    bool withinBound = false; // error ≤ ε (ε ≤ 0: error ≤ 1e-5, float rounding); false only when the evaluator
                              // disagrees with the reference (see note), not because of cancellation or the cap
    int64_t forwards = 0;     // masks evaluated, the final check included
    int64_t evaluatorCalls = 0;
    double seconds = 0;
    bool cancelled = false;   // then mask is the best verified mask so far (the whole image if none)
    std::string note;         // e.g. "ε = 0: the whole image" or "box alone missed the bound; searched the whole image"
};

// Relative error ‖r − ref‖ / ‖ref‖ per row of `responses` ([B, D] vs [D]); when
// ‖ref‖ = 0, the absolute error. Returns [B] double on the CPU; throws
// std::invalid_argument when D differs.
at::Tensor relativeErrors(const at::Tensor& responses, const at::Tensor& reference);

// The search. Throws std::invalid_argument on an inconsistent problem (sizes,
// missing evaluator, an evaluator answering the wrong shape). Never returns a
// mask whose fresh evaluation was not done, except when cancelled (then the mask
// was verified in a batch, or is the whole image). The search keeps nothing
// outside `box` unless the box alone misses the bound (then it searches the whole
// grid and says so in `note`). Algorithm: saliency.cpp's opening comment.
SaliencyResult searchSaliency(const SaliencyProblem& problem, const SaliencyOptions& options,
                              const SaliencyProgressFn& progress = {});

} // namespace deformscope::analysis
