// The refinement levels of the saliency search (stages "refine <cell>px"):
// on each finer grid, kept cells on the region's boundary are removed along a
// greedy path over their (measured, or estimated and calibrated) effects, in
// batches of nested removal sets and single removals. Only the largest evaluated
// removal set that meets the bound is adopted, so the current mask stays verified.
#include "core/analysis/saliency_internal.h"
#include "core/analysis/saliency_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

namespace deformscope::analysis::saliency_detail {

namespace {

// A removal candidate of the elimination.
struct Cand {
    at::Tensor delta;   // [D] double: r(M without the cell) − r(M), measured or estimated
    bool fresh = false; // measured against the current M
};
using CandMap = std::map<int64_t, Cand>;

} // namespace

// Δ ownership across levels: a measured effect covers its cell's pixels until a
// finer cell under it is measured; an unmeasured cell's estimate is its owner's
// effect shared out by weight (importance, or area).
void Search::registerOwner(int64_t cell, const at::Tensor& delta) {
    const int64_t row = static_cast<int64_t>(ownerDelta_.size());
    ownerDelta_.push_back(delta);
    ownerWeight_.push_back(grid_.shareWeight[cell]);
    ownerPix_.slice(0, grid_.y0(cell), grid_.y1(cell)).slice(1, grid_.x0(cell), grid_.x1(cell)).fill_(row);
}

at::Tensor Search::estimateDelta(int64_t cell) const {
    const int64_t owner = ownerPix_.accessor<int64_t, 2>()[grid_.y0(cell)][grid_.x0(cell)];
    if (owner < 0 || ownerWeight_[owner] <= 0)
        return at::zeros({D_}, at::kDouble);
    return ownerDelta_[owner] * (grid_.shareWeight[cell] / ownerWeight_[owner]);
}

// Kept cells with a 4-neighbour (in the cell grid) that is not kept or off the grid.
std::vector<int64_t> Search::boundaryCells() const {
    std::vector<int64_t> out;
    const int64_t ny = grid_.ny, nx = grid_.nx;
    auto keptAt = [&](int64_t i, int64_t j) { return i >= 0 && j >= 0 && i < ny && j < nx && kept_[i * nx + j]; };
    for (int64_t i = 0; i < ny; ++i)
        for (int64_t j = 0; j < nx; ++j)
            if (kept_[i * nx + j] && (!keptAt(i - 1, j) || !keptAt(i + 1, j) || !keptAt(i, j - 1) || !keptAt(i, j + 1)))
                out.push_back(i * nx + j);
    return out;
}

// Removal of boundary cells at a refinement level. Each evaluator call holds
// (a) nested removal sets: lengths of a greedy path over the cells' effects,
// around the surrogate's largest feasible length p*, and (b) single removals of
// cells not measured yet, those the surrogate calls cheapest first. Unmeasured
// cells start from an estimate: their measured ancestor's effect shared out by
// importance (or area), scaled by how such estimates compared with the single
// removals measured at this level so far. The largest passing length is
// accepted; the next cell, when its removal on top was measured to fail, is kept
// for the rest of the level; each chunk between evaluated lengths gets its
// measured total effect (calibration). New boundary cells join as the region
// shrinks; the level ends when nothing is predicted to go and everything is
// measured, or its budget is spent.
void Search::eliminate(int64_t budgetEnd) {
    CandMap cands;
    const int64_t B = o_.batchSize;
    const double tauAbs = o_.epsilon * scale_;
    std::vector<uint8_t> blocked(grid_.cells, 0), measured(grid_.cells, 0), calibrated(grid_.cells, 0);
    std::map<int64_t, at::Tensor> raw; // first estimates of the cells
    double sxy = 0, sxx = 0;           // measured vs estimated effect norms
    auto left = [&] { return batches_.budgetLeft(budgetEnd); };
    while (!batches_.stopped() && left() > 0) {
        for (int64_t c : boundaryCells())
            if (!cands.count(c)) {
                raw[c] = estimateDelta(c);
                cands[c] = {raw[c], false};
            }
        const double alpha = sxx > 0 ? std::clamp(sxy / sxx, 0.1, 100.0) : 1.0;
        std::vector<int64_t> list;
        int64_t unmeasuredCount = 0;
        for (const auto& [c, info] : cands)
            if (kept_[c] && !blocked[c]) {
                list.push_back(c);
                unmeasuredCount += measured[c] ? 0 : 1;
            }
        const int64_t n = static_cast<int64_t>(list.size());
        if (n == 0)
            break;
        std::vector<at::Tensor> rows;
        rows.reserve(n);
        for (int64_t c : list)
            rows.push_back(measured[c] || calibrated[c] ? cands[c].delta : raw[c] * alpha);
        const GreedyPath path = greedyRemovalPath(at::stack(rows), rM_ - ref_);
        int64_t pStar = 0;
        for (int64_t j = 0; j < n; ++j)
            if (path.error[j] <= tauAbs)
                pStar = j + 1;
        if (pStar == 0 && unmeasuredCount == 0)
            break; // every cell measured, nothing predicted to go

        const int64_t slots = std::min<int64_t>(B, left());
        const int64_t first = list[path.order[0]];
        const bool known1 = cands[first].fresh;
        // (a) Path lengths around p*: p*, p*±1, p*±2, p*−3, p*+3, p*−5, …; at most
        // half the slots while unmeasured cells remain.
        std::set<int64_t> Lset;
        if (pStar > 0) {
            const int64_t maxLengths = unmeasuredCount > 0 ? std::max<int64_t>(1, (slots + 1) / 2) : slots;
            const int64_t from = known1 ? 2 : 1, upTo = std::min(n, pStar + pStar / 2 + 2);
            auto add = [&](int64_t L) {
                if (L >= from && L <= upTo && static_cast<int64_t>(Lset.size()) < maxLengths)
                    Lset.insert(L);
            };
            if (!known1)
                add(1);
            add(pStar);
            for (int64_t k = 1; static_cast<int64_t>(Lset.size()) < maxLengths; k = std::max(k + 1, (k * 3) / 2)) {
                if (pStar + k > upTo && pStar - k < from)
                    break;
                add(pStar - k);
                add(pStar + k);
            }
        }
        const std::vector<int64_t> lengths(Lset.begin(), Lset.end());
        // (b) Single removals of unmeasured cells, the cheapest-looking first.
        std::vector<int64_t> singles;
        {
            std::vector<int64_t> idx;
            for (int64_t i = 0; i < n; ++i)
                if (!measured[list[i]])
                    idx.push_back(i);
            std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return path.single[a] < path.single[b]; });
            for (size_t i = 0; i < idx.size() && static_cast<int64_t>(lengths.size() + singles.size()) < slots; ++i)
                singles.push_back(list[idx[i]]);
        }
        if (lengths.empty() && singles.empty() && !(pStar > 0 && known1))
            break;
        at::Tensor resp;
        std::vector<double> err;
        const int64_t nl = static_cast<int64_t>(lengths.size()), ns = static_cast<int64_t>(singles.size());
        if (nl + ns > 0) {
            std::vector<int64_t> posv(grid_.cells, std::numeric_limits<int64_t>::max());
            for (int64_t j = 0; j < n; ++j)
                posv[list[path.order[j]]] = j;
            const at::Tensor pos = at::tensor(posv, at::kLong);
            at::Tensor keep = flagsTensor(kept_).unsqueeze(0).repeat({nl + ns, 1});
            if (nl > 0)
                keep.slice(0, 0, nl).logical_and_(pos.unsqueeze(0) >= at::tensor(lengths, at::kLong).unsqueeze(1));
            for (int64_t i = 0; i < ns; ++i)
                keep[nl + i][singles[i]] = false;
            if (!evaluate(keep, resp, err))
                break;
        }
        for (int64_t i = 0; i < ns; ++i) {
            const int64_t c = singles[i];
            const at::Tensor delta = resp[nl + i] - rM_;
            const double e = raw.count(c) ? raw[c].norm().item<double>() : 0.0;
            if (e > 0) {
                sxy += e * delta.norm().item<double>();
                sxx += e * e;
            }
            cands[c] = {delta, true};
            measured[c] = 1;
            registerOwner(c, delta);
        }
        // Calibrate: each chunk between consecutive evaluated lengths gets its
        // measured total effect, shared out by weight.
        int64_t prevL = 0;
        at::Tensor prevR = rM_;
        for (int64_t i = 0; i < nl; ++i) {
            const int64_t L = lengths[i];
            at::Tensor predicted = at::zeros({D_}, at::kDouble);
            double wsum = 0;
            for (int64_t j = prevL; j < L; ++j) {
                predicted += rows[path.order[j]];
                wsum += grid_.shareWeight[list[path.order[j]]];
            }
            const at::Tensor diff = (resp[i] - prevR) - predicted;
            for (int64_t j = prevL; j < L; ++j) {
                const int64_t c = list[path.order[j]];
                const double share = wsum > 0 ? grid_.shareWeight[c] / wsum : 1.0 / static_cast<double>(L - prevL);
                cands[c].delta = rows[path.order[j]] + diff * share;
                calibrated[c] = 1;
                if (prevL == 0 && L == 1) {
                    cands[c].fresh = true;
                    measured[c] = 1;
                }
            }
            prevL = L;
            prevR = resp[i];
        }
        int64_t t = 0, tRow = -1;
        for (int64_t i = 0; i < nl; ++i)
            if (err[i] <= o_.epsilon && lengths[i] > t) {
                t = lengths[i];
                tRow = i;
            }
        // Only evaluated masks are adopted: a single removal known only through the
        // surrogate (anchor response + measured delta) is not, since the anchor's
        // response may itself be a batch measurement of another state.
        if (pStar == 0)
            continue;
        // The next cell's removal on top of the accepted ones was measured and failed: keep it.
        const bool nextMeasured = std::find(lengths.begin(), lengths.end(), t + 1) != lengths.end() ||
                                  (t == 0 && known1 && path.error[0] > tauAbs);
        if (nextMeasured && t < n)
            blocked[list[path.order[t]]] = 1;
        if (t > 0) {
            const at::Tensor r = resp[tRow];
            const double e = err[tRow];
            for (int64_t j = 0; j < t; ++j) {
                kept_[list[path.order[j]]] = 0;
                cands.erase(list[path.order[j]]);
            }
            for (auto& [c, info] : cands)
                info.fresh = false;
            accept(r, e);
        }
    }
}

} // namespace deformscope::analysis::saliency_detail
