// The coarse start of the saliency search (stages "prefix" and "rank"): the
// first mask on the coarse grid, the shortest passing prefix of the cells ranked
// by importance or, without an importance map, the box with every single-cell
// removal from it measured (the surrogate the coarse search starts from). The box
// is evaluated in the first batch: if it misses the bound the start returns
// Start::BoxFailed with a note; otherwise it adopts a mask unless stopped first.
#include "core/analysis/saliency_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <span>

namespace deformscope::analysis::saliency_detail {

// The shortest prefix of `ranked` (cells, most important first) that, kept
// alone, meets the bound: a batched bracket search over prefix lengths (several
// per evaluator call; the error is not monotone in the length: the smallest
// evaluated length that passes and whose bracket below failed wins). With
// `fullKnown` the whole list is the current mask (known to pass); otherwise it is
// evaluated in the first batch (the box check). Makes the winner the current mask.
Start Search::shortestPrefix(const std::vector<int64_t>& ranked, bool fullKnown, int64_t budgetEnd) {
    const int64_t N = static_cast<int64_t>(ranked.size());
    std::vector<int64_t> rankPos(grid_.cells, std::numeric_limits<int64_t>::max());
    for (int64_t i = 0; i < N; ++i)
        rankPos[ranked[i]] = i;
    const at::Tensor pos = at::tensor(rankPos, at::kLong);
    auto prefixFlags = [&](int64_t L) {
        std::vector<uint8_t> f(grid_.cells);
        for (int64_t c = 0; c < grid_.cells; ++c)
            f[c] = rankPos[c] < L ? 1 : 0;
        return f;
    };
    struct Eval {
        bool pass;
        double err;
        at::Tensor resp;
    };
    std::map<int64_t, Eval> done;
    if (fullKnown)
        done[N] = {true, errM_, rM_};
    const int64_t B = o_.batchSize;
    std::vector<int64_t> lengths;
    {
        const int64_t top = fullKnown ? N - 1 : N; // lengths 0..top to try
        const int64_t k = std::min<int64_t>({B, top + 1, batches_.budgetLeft(budgetEnd)});
        if (k <= 0)
            return Start::Stopped;
        if (k == top + 1) {
            for (int64_t L = 0; L <= top; ++L)
                lengths.push_back(L);
        } else if (k == 1) {
            lengths.push_back(top);
        } else {
            for (int64_t i = 0; i < k; ++i)
                lengths.push_back(i * top / (k - 1));
        }
    }
    bool first = true;
    int64_t hi = -1;
    while (!lengths.empty()) {
        std::sort(lengths.begin(), lengths.end());
        lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
        const at::Tensor Ls = at::tensor(lengths, at::kLong);
        const at::Tensor keep = pos.unsqueeze(0) < Ls.unsqueeze(1); // [B, cells]
        at::Tensor resp;
        std::vector<double> err;
        if (!evaluate(keep, resp, err))
            return Start::Stopped;
        for (size_t i = 0; i < lengths.size(); ++i) {
            done[lengths[i]] = {err[i] <= o_.epsilon, err[i], resp[static_cast<int64_t>(i)]};
            evaluated_.insert(hashOf(prefixFlags(lengths[i])));
        }
        if (first && !fullKnown) {
            first = false;
            auto it = done.find(N);
            if (it != done.end() && !it->second.pass) {
                noteBoxMissed(it->second.err);
                return Start::BoxFailed;
            }
        }
        hi = -1;
        for (const auto& [L, e] : done)
            if (e.pass) {
                hi = L;
                break;
            }
        if (hi < 0) // the box was not evaluated (tiny cap) and nothing passed
            return Start::Stopped;
        int64_t lo = -1;
        for (const auto& [L, e] : done)
            if (L < hi)
                lo = L;
        lengths.clear();
        const int64_t k = hi - lo <= 1 ? 0 : std::min<int64_t>({B, hi - lo - 1, batches_.budgetLeft(budgetEnd)});
        for (int64_t i = 1; i <= k; ++i)
            lengths.push_back(std::clamp<int64_t>(lo + (i * (hi - lo) + (k + 1) / 2) / (k + 1), lo + 1, hi - 1));
    }
    if (!(fullKnown && hi == N)) {
        kept_ = prefixFlags(hi);
        accept(done[hi].resp, done[hi].err);
    }
    return batches_.stopped() ? Start::Stopped : Start::Ok;
}

// Importance ranking of the coarse cells; the shortest passing prefix.
Start Search::startWithImportance() {
    batches_.setStage("prefix", 0.0, 0.2);
    std::vector<int64_t> order(grid_.cells);
    std::iota(order.begin(), order.end(), 0);
    grid_.sortByImportance(order);
    const Start s = shortestPrefix(order, false, std::numeric_limits<int64_t>::max());
    return s == Start::Stopped && !history_.empty() ? Start::Ok : s;
}

// No importance: the box alone plus the single removal of every cell from it,
// which is the surrogate at the box.
Start Search::startWithOcclusion(Model& model) {
    batches_.setStage("rank", 0.0, 0.2);
    const int64_t N = grid_.cells;
    std::fill(kept_.begin(), kept_.end(), 1);
    const std::vector<uint8_t> boxFlags = kept_;
    std::vector<int64_t> all(N);
    std::iota(all.begin(), all.end(), 0);
    at::Tensor rBox;
    int64_t next = 0;
    bool boxDone = false;
    std::vector<at::Tensor> rows;
    while (next < N) {
        const int64_t k = std::min<int64_t>(o_.batchSize, batches_.budgetLeft());
        if (k <= 0)
            break;
        const int64_t lead = boxDone ? 0 : 1; // the box itself leads the first batch
        const std::span<const int64_t> cells(all.data() + next, static_cast<size_t>(std::min<int64_t>(k - lead, N - next)));
        at::Tensor resp;
        std::vector<double> err;
        if (!evaluate(flipKeep(boxFlags, cells, lead), resp, err))
            return Start::Stopped;
        if (!boxDone) {
            boxDone = true;
            if (!(err[0] <= o_.epsilon)) {
                noteBoxMissed(err[0]);
                return Start::BoxFailed;
            }
            accept(resp[0], err[0]);
            rBox = rM_.clone();
            evaluated_.insert(hashOf(kept_));
        }
        takeFlips(boxFlags, rBox, cells, resp, err, lead, rows);
        model.cells.insert(model.cells.end(), cells.begin(), cells.end());
        next += static_cast<int64_t>(cells.size());
    }
    if (!boxDone)
        return Start::Stopped;
    model.G = rows.empty() ? at::zeros({0, D_}, at::kDouble) : at::stack(rows);
    model.anchor = boxFlags;
    model.eAnchor = rBox - ref_;
    model.fresh = true;
    return batches_.stopped() ? Start::Stopped : Start::Ok;
}

void Search::noteBoxMissed(double err) {
    notes_.push_back((boxIsGrid_ ? "the whole image" : "the box alone") + std::string(" missed the bound (error ") +
                     shortNumber(err) + ")");
}

} // namespace deformscope::analysis::saliency_detail
