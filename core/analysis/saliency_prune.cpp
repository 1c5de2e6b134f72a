// The coarse search of the saliency search (stage "prune"): a linear surrogate
// measured by single-cell flips at an anchor, beam searches on it proposing
// smaller states, and batches of proposals evaluated, re-measuring the surrogate
// when a batch fails. Only evaluated states that meet the bound become the
// current mask, and none is evaluated twice (the set of evaluated states).
#include "core/analysis/saliency_internal.h"
#include "core/analysis/saliency_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <span>
#include <unordered_set>

namespace deformscope::analysis::saliency_detail {

// Kept flags of a batch: `lead` rows of `anchor` itself, then one row per cell
// of `cells` with that cell flipped.
at::Tensor Search::flipKeep(const std::vector<uint8_t>& anchor, std::span<const int64_t> cells, int64_t lead) const {
    const int64_t k = static_cast<int64_t>(cells.size());
    at::Tensor keep = flagsTensor(anchor).unsqueeze(0).repeat({lead + k, 1});
    for (int64_t i = 0; i < k; ++i)
        keep[lead + i][cells[i]] = anchor[cells[i]] ? false : true;
    return keep;
}

// The surrogate's rows from a batch made by flipKeep (G: the response with the
// cell kept minus without, whichever way it was flipped); every flipped state is
// recorded as evaluated and offered as the current mask.
void Search::takeFlips(const std::vector<uint8_t>& anchor, const at::Tensor& rAnchor, std::span<const int64_t> cells,
                       const at::Tensor& resp, const std::vector<double>& err, int64_t lead, std::vector<at::Tensor>& rows) {
    for (size_t i = 0; i < cells.size(); ++i) {
        const int64_t c = cells[i], row = lead + static_cast<int64_t>(i);
        rows.push_back(anchor[c] ? rAnchor - resp[row] : resp[row] - rAnchor);
        std::vector<uint8_t> f = anchor;
        f[c] ^= 1;
        record(f, resp[row], err[row]);
    }
}

// The cells a model at `state` flips: all when few; else the kept cells and
// their 8-neighbours, the most important first, at most `limit`.
std::vector<int64_t> Search::frontier(const std::vector<uint8_t>& state, int64_t limit) const {
    const int64_t N = grid_.cells, ny = grid_.ny, nx = grid_.nx;
    std::vector<int64_t> keptCells, ring;
    if (N <= 4 * o_.batchSize || std::none_of(state.begin(), state.end(), [](uint8_t v) { return v != 0; })) {
        for (int64_t c = 0; c < N; ++c)
            (state[c] ? keptCells : ring).push_back(c);
    } else {
        for (int64_t i = 0; i < ny; ++i)
            for (int64_t j = 0; j < nx; ++j) {
                const int64_t c = i * nx + j;
                if (state[c]) {
                    keptCells.push_back(c);
                    continue;
                }
                bool near = false;
                for (int64_t di = -1; di <= 1 && !near; ++di)
                    for (int64_t dj = -1; dj <= 1 && !near; ++dj) {
                        const int64_t a = i + di, b = j + dj;
                        near = a >= 0 && b >= 0 && a < ny && b < nx && state[a * nx + b];
                    }
                if (near)
                    ring.push_back(c);
            }
    }
    grid_.sortByImportance(keptCells);
    grid_.sortByImportance(ring);
    std::vector<int64_t> out;
    // Kept cells first (removals are what shrink the region), but leave some room for additions.
    const int64_t keptTake = std::min<int64_t>(static_cast<int64_t>(keptCells.size()), std::max<int64_t>(limit - limit / 4, limit - static_cast<int64_t>(ring.size())));
    out.insert(out.end(), keptCells.begin(), keptCells.begin() + std::max<int64_t>(0, keptTake));
    for (int64_t c : ring)
        if (static_cast<int64_t>(out.size()) < limit)
            out.push_back(c);
    std::sort(out.begin(), out.end());
    return out;
}

// Measures the surrogate at `anchor` (flags per cell, response rAnchor) over
// its frontier: one mask per cell, that cell flipped.
bool Search::measureModel(Model& model, std::vector<uint8_t> anchor, at::Tensor rAnchor, int64_t limit) {
    const std::vector<int64_t> cells = frontier(anchor, limit);
    if (cells.empty())
        return false;
    std::vector<at::Tensor> rows;
    size_t next = 0;
    while (next < cells.size()) {
        const int64_t k = std::min<int64_t>({o_.batchSize, batches_.budgetLeft(), static_cast<int64_t>(cells.size() - next)});
        if (k <= 0)
            return false;
        const std::span<const int64_t> batch(cells.data() + next, static_cast<size_t>(k));
        at::Tensor resp;
        std::vector<double> err;
        if (!evaluate(flipKeep(anchor, batch, 0), resp, err))
            return false;
        takeFlips(anchor, rAnchor, batch, resp, err, 0, rows);
        next += batch.size();
    }
    model.cells = cells;
    model.G = at::stack(rows);
    model.anchor = anchor;
    model.eAnchor = rAnchor.reshape({-1}) - ref_;
    model.fresh = true;
    return true;
}

// States the surrogate predicts to meet the bound with a smaller area than the
// current mask and not evaluated yet: from beam searches adding cells from none
// (of the model's), removing them from all, and removing them from the anchor.
// At most `slots`, spread over the areas found (one per area first, smallest and
// largest included), then more per area.
std::vector<std::vector<uint8_t>> Search::proposals(const Model& model, int64_t slots) {
    std::vector<std::vector<uint8_t>> out;
    const int64_t n = static_cast<int64_t>(model.cells.size());
    if (n == 0 || slots <= 0)
        return out;
    const double tau = o_.epsilon * scale_;
    std::vector<uint8_t> zA(n);
    for (int64_t i = 0; i < n; ++i)
        zA[i] = model.anchor[model.cells[i]];
    const at::Tensor zAt = at::tensor(std::vector<double>(zA.begin(), zA.end()), at::kDouble);
    const at::Tensor eNone = model.eAnchor - zAt.matmul(model.G); // none of the model's cells kept
    const at::Tensor eAll = eNone + model.G.sum(0);
    const int64_t width = std::clamp<int64_t>((int64_t{1} << 21) / std::max<int64_t>(1, n * n), 8, 64);
    std::vector<std::vector<uint8_t>> pool;
    for (auto&& v : saliency_detail::beamSearch(model.G, eNone, std::vector<uint8_t>(n, 0), true, tau, width, 4))
        pool.push_back(std::move(v));
    for (auto&& v : saliency_detail::beamSearch(model.G, eAll, std::vector<uint8_t>(n, 1), false, tau, width, 4))
        pool.push_back(std::move(v));
    for (auto&& v : saliency_detail::beamSearch(model.G, model.eAnchor, zA, false, tau, width, 4))
        pool.push_back(std::move(v));
    if (pool.empty())
        return out;
    // Exact surrogate errors, areas, duplicates and evaluated states out.
    const int64_t bestArea = keptArea();
    std::vector<double> zflat;
    zflat.reserve(pool.size() * n);
    for (const auto& z : pool)
        zflat.insert(zflat.end(), z.begin(), z.end());
    const at::Tensor Z = at::from_blob(zflat.data(), {static_cast<int64_t>(pool.size()), n}, at::kDouble);
    const at::Tensor pe = (Z.matmul(model.G) + eNone.unsqueeze(0)).norm(2, {1}).contiguous();
    const double* pep = pe.data_ptr<double>();
    struct Prop {
        int64_t area;
        double err;
        std::vector<uint8_t> state;
    };
    std::map<int64_t, std::vector<Prop>> byArea;
    std::unordered_set<uint64_t> taken;
    for (size_t p = 0; p < pool.size(); ++p) {
        if (!(pep[p] <= tau * (1 + 1e-9)))
            continue;
        std::vector<uint8_t> state = model.anchor;
        for (int64_t i = 0; i < n; ++i)
            state[model.cells[i]] = pool[p][i];
        const int64_t area = grid_.areaOf(state);
        const uint64_t h = hashOf(state);
        if (area >= bestArea || evaluated_.count(h) || !taken.insert(h).second)
            continue;
        byArea[area].push_back({area, pep[p], std::move(state)});
    }
    if (byArea.empty())
        return out;
    std::vector<int64_t> areas;
    for (auto& [a, v] : byArea) {
        std::stable_sort(v.begin(), v.end(), [](const Prop& x, const Prop& y) { return x.err < y.err; });
        areas.push_back(a);
    }
    if (static_cast<int64_t>(areas.size()) > slots) {
        std::vector<int64_t> spread;
        for (int64_t i = 0; i < slots; ++i)
            spread.push_back(areas[slots == 1 ? 0 : (i * (static_cast<int64_t>(areas.size()) - 1) + (slots - 1) / 2) / (slots - 1)]);
        spread.erase(std::unique(spread.begin(), spread.end()), spread.end());
        areas = spread;
    }
    for (size_t rank = 0; static_cast<int64_t>(out.size()) < slots; ++rank) {
        bool any = false;
        for (int64_t a : areas) {
            auto& v = byArea[a];
            if (rank < v.size() && static_cast<int64_t>(out.size()) < slots) {
                out.push_back(v[rank].state);
                any = true;
            }
        }
        if (!any)
            break;
    }
    return out;
}

// Model-guided search on the coarse grid: propose from the surrogate, verify a
// batch, move to the smallest passing mask (keeping the surrogate, re-anchored);
// when a batch fails, re-measure the surrogate (at the best mask, or — when it
// was fresh already — at the failing proposal closest to the bound).
void Search::coarseSearch(Model& model, int64_t budgetEnd) {
    const int64_t B = o_.batchSize;
    int64_t freshFails = 0;
    auto left = [&] { return batches_.budgetLeft(budgetEnd); };
    // Measures the surrogate at `anchor` when the budget leaves room for it and a batch of proposals.
    auto remeasure = [&](const std::vector<uint8_t>& anchor, const at::Tensor& r) {
        const int64_t l = left();
        return l > B + 4 && measureModel(model, anchor, r, l - B);
    };
    while (!batches_.stopped() && left() > 0) {
        if (model.G.size(0) > 0) {
            const auto props = proposals(model, std::min(B, left()));
            if (props.empty() && model.fresh && model.anchor == kept_)
                break; // the surrogate at the best mask has nothing smaller to offer
            if (!props.empty()) {
                at::Tensor keep = at::empty({static_cast<int64_t>(props.size()), grid_.cells}, at::kBool);
                for (size_t i = 0; i < props.size(); ++i)
                    keep[static_cast<int64_t>(i)].copy_(flagsTensor(props[i]));
                at::Tensor resp;
                std::vector<double> err;
                if (!evaluate(keep, resp, err))
                    return;
                int64_t best = -1, bestArea = keptArea(), closest = 0;
                for (size_t i = 0; i < props.size(); ++i) {
                    evaluated_.insert(hashOf(props[i]));
                    const int64_t a = grid_.areaOf(props[i]);
                    if (err[i] <= o_.epsilon && (a < bestArea || (best >= 0 && a == bestArea && err[i] < err[best]))) {
                        best = static_cast<int64_t>(i);
                        bestArea = a;
                    }
                    if (err[i] < err[closest])
                        closest = static_cast<int64_t>(i);
                }
                if (best >= 0) {
                    kept_ = props[best];
                    accept(resp[best], err[best]);
                    // Keep G; re-anchor it on the measured response of the new mask.
                    model.anchor = kept_;
                    model.eAnchor = rM_ - ref_;
                    model.fresh = false;
                    freshFails = 0;
                    continue;
                }
                if (model.fresh) {
                    if (++freshFails >= 2)
                        break;
                    // Re-linearise at the failing proposal closest to the bound.
                    if (!remeasure(props[closest], resp[closest]))
                        break;
                    continue;
                }
            }
        }
        // No surrogate yet, or one re-anchored since it was measured that proposes
        // nothing or fails: measure it afresh at the best mask.
        if (!remeasure(kept_, rM_))
            break;
    }
}

} // namespace deformscope::analysis::saliency_detail
