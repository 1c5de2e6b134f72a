// The saliency bound and its final check: relative errors against the
// reference, and the result a search returns, whose mask is evaluated alone
// (the whole image for ε ≤ 0; the last adopted mask, falling back to earlier
// ones and then the whole image when a fresh evaluation misses the bound). A
// result's error always comes from an evaluation of its own mask, except when
// the search was cancelled (then from the batch that verified it, or 0 for the
// unevaluated whole image).
#include "core/analysis/saliency.h"
#include "core/analysis/saliency_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace deformscope::analysis {

at::Tensor relativeErrors(const at::Tensor& responses, const at::Tensor& reference) {
    if (!responses.defined() || !reference.defined())
        throw std::invalid_argument("relativeErrors: responses and reference must be defined");
    const at::Tensor ref = reference.detach().to(at::kCPU, at::kDouble).reshape({-1});
    at::Tensor r = responses.detach().to(at::kCPU, at::kDouble);
    const int64_t rows = r.dim() <= 1 ? 1 : r.size(0);
    if (rows == 0)
        return at::zeros({0}, at::kDouble);
    r = r.reshape({rows, -1});
    if (r.size(1) != ref.numel()) {
        std::ostringstream s;
        s << "relativeErrors: responses have " << r.size(1) << " values per row but the reference has "
          << ref.numel();
        throw std::invalid_argument(s.str());
    }
    const double refNorm = ref.norm().item<double>();
    const at::Tensor err = (r - ref.unsqueeze(0)).norm(2, {1});
    return refNorm > 0 ? err / refNorm : err;
}

namespace saliency_detail {

std::string shortNumber(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

namespace {

SaliencyResult resultFor(const at::Tensor& mask, double error, double epsilon) {
    SaliencyResult res;
    res.epsilon = epsilon;
    res.mask = mask;
    res.areaPixels = mask.sum().item<int64_t>();
    res.areaFraction = static_cast<double>(res.areaPixels) / static_cast<double>(mask.numel());
    res.error = error;
    res.withinBound = error <= epsilon;
    return res;
}

} // namespace

SaliencyResult verifyWholeImage(Batches& batches, double epsilon, const std::string& note, std::vector<std::string>& notes) {
    const at::Tensor whole = wholeMask(batches.height(), batches.width());
    notes.push_back(note);
    batches.setStage("verify", 0.95, 0.05);
    double err = 0;
    if (batches.evaluateAlone(whole, err)) {
        SaliencyResult res = resultFor(whole, err, epsilon);
        res.withinBound = err <= std::max(epsilon, 0.0) + 1e-5; // ε ≤ 0: float rounding
        return res;
    }
    SaliencyResult res = resultFor(whole, 0.0, epsilon); // by definition of the reference; not evaluated (cancelled)
    res.withinBound = true;
    res.cancelled = true;
    notes.push_back("cancelled: the whole image, not evaluated");
    return res;
}

SaliencyResult verifyFinal(Batches& batches, const std::vector<Accepted>& history, double epsilon,
                           std::vector<std::string>& notes) {
    const at::Tensor whole = wholeMask(batches.height(), batches.width());
    if (batches.capHit())
        notes.push_back("stopped at the cap of " + std::to_string(batches.maxForwards()) + " masks");
    if (batches.cancelled()) {
        SaliencyResult res;
        if (history.empty()) {
            res = resultFor(whole, 0.0, epsilon);
            notes.push_back("cancelled before any mask was verified: the whole image (not evaluated)");
        } else {
            res = resultFor(history.back().mask, history.back().error, epsilon);
            notes.push_back("cancelled: the smallest mask verified so far (in its batch; no fresh check)");
        }
        res.cancelled = true;
        return res;
    }
    // Fresh, single evaluations: the final mask, then earlier ones, then the whole image.
    batches.setStage("verify", 0.95, 0.05);
    std::vector<Accepted> tries;
    for (auto it = history.rbegin(); it != history.rend() && tries.size() < 3; ++it)
        tries.push_back(*it);
    tries.push_back({whole, 0.0});
    SaliencyResult res;
    for (size_t i = 0; i < tries.size(); ++i) {
        double err = 0;
        if (!batches.evaluateAlone(tries[i].mask, err)) {
            res = resultFor(tries[i].mask, tries[i].error, epsilon);
            res.cancelled = true;
            notes.push_back("cancelled during the final check: the last mask verified in its batch");
            return res;
        }
        res = resultFor(tries[i].mask, err, epsilon);
        if (res.withinBound)
            break;
        if (i + 1 < tries.size())
            notes.push_back("fresh check of " + std::string(i == 0 ? "the final mask" : "a fallback mask") + " gave error " +
                            shortNumber(err) + " > ε (non-deterministic evaluator?); fell back");
        else
            notes.push_back("the whole image misses the bound (error " + shortNumber(err) +
                            "): the reference does not match the evaluator");
    }
    return res;
}

} // namespace saliency_detail
} // namespace deformscope::analysis
