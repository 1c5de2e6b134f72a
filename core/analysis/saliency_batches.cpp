// The saliency search's access to its evaluator: masks built in batches from
// kept-cell flags, the evaluator's answer checked and turned into relative
// errors, progress and cancellation reported before every call, and every mask
// counted against the hard cap and the stage's budget. Nothing else in the
// search calls the evaluator, so the forward counts and the progress sequence
// are exactly what happens here.
#include "core/analysis/saliency_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace deformscope::analysis::saliency_detail {

void invalidProblem(const std::string& what) {
    throw std::invalid_argument("searchSaliency: " + what);
}

Batches::Batches(const SaliencyProblem& problem, int64_t maxForwards, const SaliencyProgressFn& progress)
    : p_(problem), progress_(progress), maxForwards_(maxForwards) {
    if (!p_.evaluate)
        invalidProblem("the problem has no evaluator");
    if (p_.height <= 0 || p_.width <= 0)
        invalidProblem("the mask grid is empty (height " + std::to_string(p_.height) + ", width " + std::to_string(p_.width) +
                       ")");
    H_ = p_.height;
    W_ = p_.width;
    if (!p_.reference.defined() || p_.reference.numel() == 0)
        invalidProblem("the reference response is empty");
    ref_ = p_.reference.detach().to(at::kCPU, at::kDouble).reshape({-1}).contiguous();
    D_ = ref_.numel();
    if (!at::isfinite(ref_).all().item<bool>())
        invalidProblem("the reference response has non-finite values");
    const double refNorm = ref_.norm().item<double>();
    scale_ = refNorm > 0 ? refNorm : 1.0;
}

int64_t Batches::budgetLeft(int64_t budgetEnd) {
    const int64_t room = std::max<int64_t>(0, maxForwards_ - forwards_);
    if (room == 0)
        capHit_ = true;
    return std::min(room, budgetEnd - forwards_);
}

void Batches::setStage(std::string name, double base, double span) {
    stage_ = std::move(name);
    stageBase_ = base;
    stageSpan_ = span;
    stageCalls_ = 0;
}

double Batches::fraction() {
    const double f = stageBase_ + stageSpan_ * (1.0 - 1.0 / (1.0 + 0.25 * static_cast<double>(stageCalls_)));
    lastFraction_ = std::clamp(f, lastFraction_, 1.0); // never goes back
    return lastFraction_;
}

bool Batches::report() {
    if (!progress_)
        return true;
    SaliencyProgress pr;
    pr.forwards = forwards_;
    pr.fraction = fraction();
    pr.stage = stage_;
    if (!progress_(pr)) {
        cancelled_ = true;
        return false;
    }
    return true;
}

bool Batches::evaluate(const Grid& grid, const at::Tensor& keep, at::Tensor& resp, std::vector<double>& err) {
    // Cell `grid.cells` is the outside of the box: never kept.
    const int64_t B = keep.size(0);
    const at::Tensor ext = at::cat({keep, at::zeros({B, 1}, at::kBool)}, 1).to(p_.device);
    return evaluateMasks(ext.index_select(1, grid.cellOfPixel).to(at::kFloat).view({B, 1, H_, W_}), resp, err);
}

bool Batches::evaluateAlone(const at::Tensor& mask, double& err) {
    at::Tensor resp;
    std::vector<double> errs;
    if (!evaluateMasks(mask.to(p_.device).to(at::kFloat).view({1, 1, H_, W_}), resp, errs))
        return false;
    err = errs[0];
    return true;
}

bool Batches::evaluateMasks(const at::Tensor& masks, at::Tensor& resp, std::vector<double>& err) {
    if (!report())
        return false;
    const int64_t B = masks.size(0);
    const at::Tensor out = p_.evaluate(masks);
    if (!out.defined() || out.numel() != B * D_) {
        std::ostringstream m;
        m << "the evaluator returned " << (out.defined() ? out.sizes() : at::IntArrayRef{}) << " for " << B
          << " masks; expected [" << B << ", " << D_ << "] (D from the reference)";
        invalidProblem(m.str());
    }
    resp = out.detach().to(at::kCPU, at::kDouble).reshape({B, D_}).contiguous();
    forwards_ += B;
    ++calls_;
    ++stageCalls_;
    const at::Tensor e = relativeErrors(resp, ref_).contiguous();
    err.assign(e.data_ptr<double>(), e.data_ptr<double>() + B);
    for (double& v : err)
        if (std::isnan(v))
            v = std::numeric_limits<double>::infinity(); // a NaN response never meets the bound
    return true;
}

} // namespace deformscope::analysis::saliency_detail
