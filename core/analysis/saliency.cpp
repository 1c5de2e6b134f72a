// The error-bounded saliency search (saliency.h; ../shared/reference/DCN.md §3).
//
// Outline (see searchSaliency's comment in the header for the contract):
//  1. ε ≤ 0: the whole image, evaluated once.
//  2. Level 0: a grid of near-square cells over the search box. With an
//     importance map, the cells are ranked by importance and the shortest
//     passing prefix of the ranking is found by a batched bracket search
//     (several prefix lengths per evaluator call); its cells' single removals are
//     then measured. Without one, the single removals of every cell from the
//     box are measured (occlusion). Either way the first batch holds the box
//     alone: when it misses the bound the search widens to the whole grid.
//  3. Elimination, at every level: the measured single-removal effects Δᵢ
//     (response vectors) form a linear surrogate r(M∖S) ≈ r(M) + Σ_{i∈S} Δᵢ; a
//     greedy path over it (each step removes the cell that leaves the smallest
//     surrogate error, so opposite effects may cancel) proposes nested removal
//     sets, of which a batch of lengths around the surrogate's largest feasible
//     one is evaluated; the largest length that meets the bound is accepted.
//     When nothing passes, the stale Δ on the proposed path are re-measured.
//  4. Refinement: the level-l cells are halved (down to minCell); the kept
//     cells on the region's boundary become candidates whose Δ are first
//     estimated from their measured ancestor's Δ (shared out by importance, or
//     by area), then eliminated as in 3, with newly exposed boundary cells joining.
//  5. The final mask is evaluated alone; should it miss the bound (a
//     non-deterministic evaluator), earlier accepted masks, then the whole image,
//     are tried the same way.
#include "core/analysis/saliency.h"
#include "core/analysis/saliency_internal.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

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

int64_t coarseCellSide(int64_t h, int64_t w, int64_t coarseCells) {
    const int64_t longer = std::max<int64_t>(1, std::max(h, w));
    const int64_t n = std::max<int64_t>(1, coarseCells);
    return std::max<int64_t>(1, (longer + n - 1) / n);
}

std::vector<std::vector<int64_t>> axisLevels(int64_t begin, int64_t end, int64_t cell, int64_t minCell) {
    const int64_t len = end - begin;
    if (len <= 0)
        throw std::invalid_argument("axisLevels: empty range");
    cell = std::max<int64_t>(1, cell);
    minCell = std::max<int64_t>(1, minCell);
    const int64_t n = std::max<int64_t>(1, (len + cell - 1) / cell);
    std::vector<std::vector<int64_t>> levels(1);
    for (int64_t i = 0; i <= n; ++i)
        levels[0].push_back(begin + i * len / n);
    while (true) {
        const std::vector<int64_t>& cur = levels.back();
        std::vector<int64_t> next{cur.front()};
        bool split = false;
        for (size_t i = 0; i + 1 < cur.size(); ++i) {
            const int64_t a = cur[i], b = cur[i + 1];
            if (b - a >= 2 * minCell) {
                next.push_back(a + (b - a + 1) / 2);
                split = true;
            }
            next.push_back(b);
        }
        if (!split)
            break;
        levels.push_back(std::move(next));
    }
    return levels;
}

GreedyPath greedyRemovalPath(const at::Tensor& deltasIn, const at::Tensor& e0In) {
    GreedyPath path;
    const at::Tensor deltas = deltasIn.to(at::kCPU, at::kDouble).contiguous();
    const at::Tensor e0 = e0In.to(at::kCPU, at::kDouble).reshape({-1}).contiguous();
    const int64_t n = deltas.size(0);
    if (n == 0)
        return path;
    const int64_t D = deltas.size(1);
    const at::Tensor g0 = deltas.mv(e0);                    // Δᵢ · e
    const at::Tensor sq = deltas.mul(deltas).sum(1);        // ‖Δᵢ‖²
    const double e2start = e0.dot(e0).item<double>();
    std::vector<double> g(g0.data_ptr<double>(), g0.data_ptr<double>() + n);
    const double* d2 = sq.data_ptr<double>();
    path.single.resize(n);
    for (int64_t i = 0; i < n; ++i)
        path.single[i] = std::sqrt(std::max(0.0, e2start + 2 * g[i] + d2[i]));
    // With a Gram matrix each step is O(n); without (many candidates), O(n·D).
    const bool gram = n <= 2048;
    at::Tensor G;
    if (gram)
        G = deltas.mm(deltas.t()).contiguous();
    const double* Gp = gram ? G.data_ptr<double>() : nullptr;
    std::vector<char> used(n, 0);
    double e2 = e2start;
    for (int64_t step = 0; step < n; ++step) {
        int64_t best = -1;
        double bestVal = std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < n; ++i) {
            if (used[i])
                continue;
            const double v = e2 + 2 * g[i] + d2[i];
            if (best < 0 || v < bestVal) {
                best = i;
                bestVal = v;
            }
        }
        used[best] = 1;
        path.order.push_back(best);
        e2 = std::max(0.0, bestVal);
        if (gram) {
            const double* row = Gp + best * n;
            for (int64_t i = 0; i < n; ++i)
                g[i] += row[i];
        } else {
            const at::Tensor col = deltas.mv(deltas[best]);
            const double* c = col.data_ptr<double>();
            for (int64_t i = 0; i < n; ++i)
                g[i] += c[i];
        }
    }
    (void)D;
    // The path's errors, recomputed from cumulative sums (no cancellation error).
    const at::Tensor idx = at::from_blob(path.order.data(), {n}, at::kLong).clone();
    const at::Tensor cum = deltas.index_select(0, idx).cumsum(0) + e0.unsqueeze(0);
    const at::Tensor norms = cum.norm(2, {1}).contiguous();
    path.error.assign(norms.data_ptr<double>(), norms.data_ptr<double>() + n);
    return path;
}

} // namespace saliency_detail

namespace {

using Clock = std::chrono::steady_clock;
using saliency_detail::GreedyPath;

std::string fmt(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

// One level of the nested cell grid over the search box.
struct Grid {
    std::vector<int64_t> yb, xb; // segment boundaries (absolute pixels)
    int64_t ny = 0, nx = 0, cells = 0;
    int64_t side = 0;            // the largest segment length
    at::Tensor cellOfPixel;      // [H·W] int64 on the device; `cells` outside the box
    at::Tensor cellOfPixelCpu;
    std::vector<double> rankWeight;  // importance per cell (ranking)
    std::vector<double> shareWeight; // importance (+ a little area) per cell: shares of a parent's Δ
    int64_t y0(int64_t c) const { return yb[c / nx]; }
    int64_t y1(int64_t c) const { return yb[c / nx + 1]; }
    int64_t x0(int64_t c) const { return xb[c % nx]; }
    int64_t x1(int64_t c) const { return xb[c % nx + 1]; }
};

struct Cand {
    at::Tensor delta; // [D] double: r(M without the cell) − r(M)
    bool fresh = false; // measured against the current M
};
using CandMap = std::map<int64_t, Cand>;

struct Accepted {
    at::Tensor mask; // [H, W] uint8 CPU
    double error = 0;
};

enum class Start { Ok, BoxFailed, Stopped };

class Search {
public:
    Search(const SaliencyProblem& problem, const SaliencyOptions& options, const SaliencyProgressFn& progress)
        : p_(problem), o_(options), progress_(progress), t0_(Clock::now()) {
        validate();
    }

    SaliencyResult run();

private:
    void validate();
    // Evaluator access.
    bool report();
    bool evaluate(const at::Tensor& masks, at::Tensor& resp, std::vector<double>& err);
    int64_t room() const { return std::max<int64_t>(0, o_.maxForwards - forwards_); }
    bool stopped() const { return cancelled_ || capHit_; }
    void setStage(std::string name, double base, double span) {
        if (std::getenv("SALIENCY_DEBUG"))
            std::fprintf(stderr, "[saliency] %s done at %lld fwd, %lld calls; next %s\n", stage_.c_str(),
                         static_cast<long long>(forwards_), static_cast<long long>(calls_), name.c_str());
        stage_ = std::move(name);
        stageBase_ = base;
        stageSpan_ = span;
        stageCalls_ = 0;
    }
    double fraction() {
        const double f = stageBase_ + stageSpan_ * (1.0 - 1.0 / (1.0 + 0.25 * static_cast<double>(stageCalls_)));
        lastFraction_ = std::clamp(f, lastFraction_, 1.0); // never goes back
        return lastFraction_;
    }
    // Grid and masks.
    Grid makeGrid(const std::vector<int64_t>& yb, const std::vector<int64_t>& xb) const;
    at::Tensor masksFromKeep(const at::Tensor& keep) const;
    at::Tensor keptTensor() const;
    at::Tensor pixelMask() const;
    at::Tensor wholeMask() const { return at::ones({H_, W_}, at::kByte); }
    void accept(const at::Tensor& resp, double err);
    // Δ ownership across levels.
    void registerOwner(int64_t cell, const at::Tensor& delta);
    at::Tensor estimateDelta(int64_t cell) const;
    // Stages.
    Start startWithImportance(CandMap& cands);
    Start startWithOcclusion(CandMap& cands);
    bool probe(const std::vector<int64_t>& cells, CandMap& cands);
    void eliminate(CandMap& cands, bool coarse);
    std::vector<int64_t> boundaryCells() const;
    SaliencyResult finish();
    SaliencyResult wholeImageResult(const std::string& note);

    const SaliencyProblem& p_;
    SaliencyOptions o_;
    const SaliencyProgressFn& progress_;
    Clock::time_point t0_;

    int64_t H_ = 0, W_ = 0, D_ = 0;
    at::Tensor ref_;       // [D] double CPU
    double scale_ = 1;     // ‖ref‖, or 1 when it is 0 (absolute errors)
    std::array<int64_t, 4> box_{};
    bool boxIsGrid_ = true;
    at::Tensor importance_; // [H, W] double CPU or undefined
    at::Tensor integral_;   // [H+1, W+1] double CPU
    double meanImportance_ = 0;

    int64_t forwards_ = 0, calls_ = 0;
    bool cancelled_ = false, capHit_ = false;
    std::string stage_;
    double stageBase_ = 0, stageSpan_ = 0;
    int64_t stageCalls_ = 0;
    double lastFraction_ = 0;
    std::vector<std::string> notes_;

    Grid grid_;
    std::vector<uint8_t> kept_;
    at::Tensor rM_; // [D] double: r(current M)
    double errM_ = 0;
    std::vector<Accepted> history_;

    at::Tensor ownerPix_; // [H, W] int64 CPU: row of the Δ that covers the pixel, −1: none
    std::vector<at::Tensor> ownerDelta_;
    std::vector<double> ownerWeight_;
};

void Search::validate() {
    auto fail = [](const std::string& what) { throw std::invalid_argument("searchSaliency: " + what); };
    if (!p_.evaluate)
        fail("the problem has no evaluator");
    if (p_.height <= 0 || p_.width <= 0)
        fail("the mask grid is empty (height " + std::to_string(p_.height) + ", width " + std::to_string(p_.width) + ")");
    H_ = p_.height;
    W_ = p_.width;
    if (!p_.reference.defined() || p_.reference.numel() == 0)
        fail("the reference response is empty");
    ref_ = p_.reference.detach().to(at::kCPU, at::kDouble).reshape({-1}).contiguous();
    D_ = ref_.numel();
    if (!at::isfinite(ref_).all().item<bool>())
        fail("the reference response has non-finite values");
    const double refNorm = ref_.norm().item<double>();
    scale_ = refNorm > 0 ? refNorm : 1.0;
    if (p_.importance.defined()) {
        const auto s = p_.importance.sizes();
        if (p_.importance.dim() != 2 || s[0] != H_ || s[1] != W_) {
            std::ostringstream m;
            m << "importance has shape " << s << "; expected [" << H_ << ", " << W_ << "]";
            fail(m.str());
        }
        importance_ = p_.importance.detach().to(at::kCPU, at::kDouble).contiguous();
        if (!at::isfinite(importance_).all().item<bool>())
            fail("importance has non-finite values");
    }
    const auto& b = p_.box;
    if (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0) {
        box_ = {0, 0, H_, W_};
    } else {
        if (b[0] < 0 || b[1] < 0 || b[2] > H_ || b[3] > W_ || b[0] >= b[2] || b[1] >= b[3]) {
            std::ostringstream m;
            m << "box {" << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3]
              << "} is empty or outside the " << H_ << "x" << W_ << " grid (expected 0 <= y0 < y1 <= height, 0 <= x0 < x1 <= width)";
            fail(m.str());
        }
        box_ = b;
    }
    boxIsGrid_ = box_[0] == 0 && box_[1] == 0 && box_[2] == H_ && box_[3] == W_;
    if (o_.coarseCells < 1)
        fail("options.coarseCells must be >= 1");
    if (o_.minCell < 1)
        fail("options.minCell must be >= 1");
    if (o_.batchSize < 1)
        fail("options.batchSize must be >= 1");
    if (o_.maxForwards < 1)
        fail("options.maxForwards must be >= 1");
    if (!std::isfinite(o_.epsilon))
        fail("options.epsilon must be finite");
    if (importance_.defined()) {
        integral_ = at::zeros({H_ + 1, W_ + 1}, at::kDouble);
        integral_.slice(0, 1).slice(1, 1).copy_(importance_.cumsum(0).cumsum(1));
        meanImportance_ = importance_.abs().mean().item<double>();
    }
}

bool Search::report() {
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

bool Search::evaluate(const at::Tensor& masks, at::Tensor& resp, std::vector<double>& err) {
    if (!report())
        return false;
    const int64_t B = masks.size(0);
    const at::Tensor out = p_.evaluate(masks);
    if (!out.defined() || out.numel() != B * D_) {
        std::ostringstream m;
        m << "searchSaliency: the evaluator returned " << (out.defined() ? out.sizes() : at::IntArrayRef{})
          << " for " << B << " masks; expected [" << B << ", " << D_ << "] (D from the reference)";
        throw std::invalid_argument(m.str());
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

Grid Search::makeGrid(const std::vector<int64_t>& yb, const std::vector<int64_t>& xb) const {
    Grid g;
    g.yb = yb;
    g.xb = xb;
    g.ny = static_cast<int64_t>(yb.size()) - 1;
    g.nx = static_cast<int64_t>(xb.size()) - 1;
    g.cells = g.ny * g.nx;
    std::vector<int64_t> rowSeg(H_, -1), colSeg(W_, -1);
    for (int64_t i = 0; i < g.ny; ++i) {
        g.side = std::max(g.side, yb[i + 1] - yb[i]);
        for (int64_t y = yb[i]; y < yb[i + 1]; ++y)
            rowSeg[y] = i;
    }
    for (int64_t j = 0; j < g.nx; ++j) {
        g.side = std::max(g.side, xb[j + 1] - xb[j]);
        for (int64_t x = xb[j]; x < xb[j + 1]; ++x)
            colSeg[x] = j;
    }
    const at::Tensor r = at::tensor(rowSeg, at::kLong).view({H_, 1});
    const at::Tensor c = at::tensor(colSeg, at::kLong).view({1, W_});
    const at::Tensor valid = r.ge(0).logical_and(c.ge(0));
    g.cellOfPixelCpu = at::where(valid, r * g.nx + c, at::full({}, g.cells, at::kLong)).reshape({-1}).contiguous();
    g.cellOfPixel = g.cellOfPixelCpu.to(p_.device);

    const at::Tensor Y = at::tensor(yb, at::kLong), X = at::tensor(xb, at::kLong);
    const at::Tensor area = (Y.slice(0, 1) - Y.slice(0, 0, -1)).view({-1, 1}) * (X.slice(0, 1) - X.slice(0, 0, -1)).view({1, -1});
    const at::Tensor areaD = area.to(at::kDouble).reshape({-1}).contiguous();
    at::Tensor rank, share;
    if (importance_.defined()) {
        const at::Tensor S = integral_.index_select(0, Y).index_select(1, X); // [ny+1, nx+1]
        const at::Tensor sums = (S.slice(0, 1).slice(1, 1) - S.slice(0, 0, -1).slice(1, 1) - S.slice(0, 1).slice(1, 0, -1) +
                                 S.slice(0, 0, -1).slice(1, 0, -1))
                                    .reshape({-1})
                                    .contiguous();
        rank = sums;
        const double tiny = 1e-6 * (meanImportance_ > 0 ? meanImportance_ : 1.0);
        share = (sums.clamp_min(0) + areaD * tiny).contiguous();
    } else {
        rank = areaD;
        share = areaD;
    }
    g.rankWeight.assign(rank.data_ptr<double>(), rank.data_ptr<double>() + g.cells);
    g.shareWeight.assign(share.data_ptr<double>(), share.data_ptr<double>() + g.cells);
    return g;
}

at::Tensor Search::keptTensor() const {
    return at::from_blob(const_cast<uint8_t*>(kept_.data()), {grid_.cells}, at::kByte).to(at::kBool);
}

at::Tensor Search::masksFromKeep(const at::Tensor& keep) const {
    const int64_t B = keep.size(0);
    const at::Tensor ext = at::cat({keep, at::zeros({B, 1}, at::kBool)}, 1).to(p_.device);
    return ext.index_select(1, grid_.cellOfPixel).to(at::kFloat).view({B, 1, H_, W_});
}

at::Tensor Search::pixelMask() const {
    const at::Tensor ext = at::cat({keptTensor(), at::zeros({1}, at::kBool)}).to(at::kByte);
    return ext.index_select(0, grid_.cellOfPixelCpu).view({H_, W_}).contiguous();
}

void Search::accept(const at::Tensor& resp, double err) {
    rM_ = resp.to(at::kDouble).reshape({-1}).clone();
    errM_ = err;
    history_.push_back({pixelMask(), err});
}

void Search::registerOwner(int64_t cell, const at::Tensor& delta) {
    const int64_t row = static_cast<int64_t>(ownerDelta_.size());
    ownerDelta_.push_back(delta);
    ownerWeight_.push_back(grid_.shareWeight[cell]);
    ownerPix_.slice(0, grid_.y0(cell), grid_.y1(cell)).slice(1, grid_.x0(cell), grid_.x1(cell)).fill_(row);
}

at::Tensor Search::estimateDelta(int64_t cell) const {
    const int64_t owner = ownerPix_[grid_.y0(cell)][grid_.x0(cell)].item<int64_t>();
    if (owner < 0 || ownerWeight_[owner] <= 0)
        return at::zeros({D_}, at::kDouble);
    return ownerDelta_[owner] * (grid_.shareWeight[cell] / ownerWeight_[owner]);
}

// Importance ranking; the shortest prefix that meets the bound, by a batched
// bracket search; then the single removals of its cells.
Start Search::startWithImportance(CandMap& cands) {
    setStage("prefix", 0.0, 0.25);
    const int64_t N = grid_.cells;
    std::vector<int64_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return grid_.rankWeight[a] > grid_.rankWeight[b]; });
    std::vector<int64_t> rankPos(N);
    for (int64_t i = 0; i < N; ++i)
        rankPos[order[i]] = i;
    const at::Tensor pos = at::tensor(rankPos, at::kLong);

    struct Eval {
        bool pass;
        double err;
        at::Tensor resp;
    };
    std::map<int64_t, Eval> done;
    const int64_t B = o_.batchSize;
    std::vector<int64_t> lengths;
    {
        const int64_t k = std::min<int64_t>({B, N + 1, room()});
        if (k <= 0) {
            capHit_ = true;
            return Start::Stopped;
        }
        if (k == N + 1) {
            for (int64_t L = 0; L <= N; ++L)
                lengths.push_back(L);
        } else if (k == 1) {
            lengths.push_back(N);
        } else {
            for (int64_t i = 0; i < k; ++i)
                lengths.push_back(i * N / (k - 1));
        }
    }
    bool first = true;
    while (true) {
        std::sort(lengths.begin(), lengths.end());
        lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
        const at::Tensor Ls = at::tensor(lengths, at::kLong);
        const at::Tensor keep = pos.unsqueeze(0) < Ls.unsqueeze(1); // [B, N]
        at::Tensor resp;
        std::vector<double> err;
        if (!evaluate(masksFromKeep(keep), resp, err))
            return Start::Stopped;
        for (size_t i = 0; i < lengths.size(); ++i)
            done[lengths[i]] = {err[i] <= o_.epsilon, err[i], resp[static_cast<int64_t>(i)]};
        if (first) {
            first = false;
            auto it = done.find(N);
            if (it != done.end() && !it->second.pass) {
                notes_.push_back((boxIsGrid_ ? "the whole image" : "the box alone") + std::string(" missed the bound (error ") +
                                 fmt(it->second.err) + ")");
                return Start::BoxFailed;
            }
        }
        int64_t hi = -1;
        for (const auto& [L, e] : done)
            if (e.pass) {
                hi = L;
                break;
            }
        if (hi < 0) { // the box was not evaluated (tiny cap) and nothing passed
            capHit_ = true;
            return Start::Stopped;
        }
        int64_t lo = -1;
        for (const auto& [L, e] : done)
            if (L < hi)
                lo = L;
        if (hi - lo <= 1) {
            for (int64_t c = 0; c < N; ++c)
                kept_[c] = rankPos[c] < hi ? 1 : 0;
            accept(done[hi].resp, done[hi].err);
            break;
        }
        const int64_t gap = hi - lo - 1; // untested lengths strictly between
        const int64_t k = std::min<int64_t>({B, gap, room()});
        if (k <= 0) {
            for (int64_t c = 0; c < N; ++c)
                kept_[c] = rankPos[c] < hi ? 1 : 0;
            accept(done[hi].resp, done[hi].err);
            capHit_ = true;
            return Start::Stopped;
        }
        lengths.clear();
        for (int64_t i = 1; i <= k; ++i)
            lengths.push_back(lo + (i * (hi - lo) + (k + 1) / 2) / (k + 1));
        for (int64_t& L : lengths)
            L = std::clamp<int64_t>(L, lo + 1, hi - 1);
    }
    // The single removals of the kept cells.
    setStage("prune", 0.25, 0.25);
    std::vector<int64_t> keptCells;
    for (int64_t c = 0; c < N; ++c)
        if (kept_[c])
            keptCells.push_back(c);
    probe(keptCells, cands);
    return stopped() ? Start::Stopped : Start::Ok;
}

// No importance: the box alone plus the single removal of every cell from it.
Start Search::startWithOcclusion(CandMap& cands) {
    setStage("rank", 0.0, 0.25);
    const int64_t N = grid_.cells;
    std::fill(kept_.begin(), kept_.end(), 1);
    const int64_t B = o_.batchSize;
    int64_t next = 0;
    bool boxDone = false;
    while (next < N) {
        const int64_t k = std::min<int64_t>(B, room());
        if (k <= 0 || (!boxDone && k < 1)) {
            capHit_ = true;
            break;
        }
        const int64_t extra = boxDone ? 0 : 1;
        const int64_t n = std::min<int64_t>(k - extra, N - next);
        at::Tensor keep = keptTensor().unsqueeze(0).repeat({n + extra, 1});
        for (int64_t i = 0; i < n; ++i)
            keep[extra + i][next + i] = false;
        at::Tensor resp;
        std::vector<double> err;
        if (!evaluate(masksFromKeep(keep), resp, err))
            return Start::Stopped;
        if (!boxDone) {
            boxDone = true;
            if (!(err[0] <= o_.epsilon)) {
                notes_.push_back((boxIsGrid_ ? "the whole image" : "the box alone") + std::string(" missed the bound (error ") +
                                 fmt(err[0]) + ")");
                return Start::BoxFailed;
            }
            accept(resp[0], err[0]);
        }
        for (int64_t i = 0; i < n; ++i) {
            const int64_t c = next + i;
            const at::Tensor delta = resp[extra + i] - rM_;
            cands[c] = {delta, true};
            registerOwner(c, delta);
        }
        next += n;
    }
    if (!boxDone)
        return Start::Stopped;
    // Cells whose single removal was not measured (cap): estimated as harmless;
    // the verification batches will correct that.
    for (int64_t c = 0; c < N; ++c)
        if (!cands.count(c))
            cands[c] = {at::zeros({D_}, at::kDouble), false};
    return stopped() ? Start::Stopped : Start::Ok;
}

// Measures the single removals of `cells` from the current mask (batched).
bool Search::probe(const std::vector<int64_t>& cells, CandMap& cands) {
    size_t next = 0;
    while (next < cells.size()) {
        const int64_t k = std::min<int64_t>({o_.batchSize, room(), static_cast<int64_t>(cells.size() - next)});
        if (k <= 0) {
            capHit_ = true;
            return false;
        }
        at::Tensor keep = keptTensor().unsqueeze(0).repeat({k, 1});
        for (int64_t i = 0; i < k; ++i)
            keep[i][cells[next + i]] = false;
        at::Tensor resp;
        std::vector<double> err;
        if (!evaluate(masksFromKeep(keep), resp, err))
            return false;
        for (int64_t i = 0; i < k; ++i) {
            const int64_t c = cells[next + i];
            const at::Tensor delta = resp[i] - rM_;
            cands[c] = {delta, true};
            registerOwner(c, delta);
        }
        next += k;
    }
    return true;
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

void Search::eliminate(CandMap& cands, bool coarse) {
    const int64_t B = o_.batchSize;
    const double tauAbs = o_.epsilon * scale_;
    std::vector<uint8_t> blocked(grid_.cells, 0);
    while (!stopped()) {
        if (!coarse)
            for (int64_t c : boundaryCells())
                if (!cands.count(c))
                    cands[c] = {estimateDelta(c), false};
        std::vector<int64_t> list;
        for (const auto& [c, info] : cands)
            if (kept_[c] && !blocked[c])
                list.push_back(c);
        const int64_t n = static_cast<int64_t>(list.size());
        if (n == 0)
            break;
        std::vector<at::Tensor> rows;
        rows.reserve(n);
        for (int64_t c : list)
            rows.push_back(cands[c].delta);
        const GreedyPath path = saliency_detail::greedyRemovalPath(at::stack(rows), rM_ - ref_);
        int64_t pStar = 0;
        for (int64_t j = 0; j < n; ++j)
            if (path.error[j] <= tauAbs)
                pStar = j + 1;
        if (pStar == 0) {
            // Nothing predicted to pass: re-measure the stale candidates that look cheapest.
            std::vector<int64_t> stale;
            for (int64_t i = 0; i < n; ++i)
                if (!cands[list[i]].fresh)
                    stale.push_back(i);
            if (stale.empty())
                break; // every single removal measured against M fails, and no combination is predicted to pass
            std::stable_sort(stale.begin(), stale.end(), [&](int64_t a, int64_t b) { return path.single[a] < path.single[b]; });
            std::vector<int64_t> cells;
            for (int64_t i = 0; i < std::min<int64_t>(B, static_cast<int64_t>(stale.size())); ++i)
                cells.push_back(list[stale[i]]);
            probe(cells, cands);
            continue;
        }
        // Verify a batch of path lengths around the predicted largest feasible one.
        const int64_t first = list[path.order[0]];
        const bool known1 = cands[first].fresh;
        const int64_t slots = std::min<int64_t>(B, room());
        const int64_t hiL = std::min<int64_t>(n, std::max<int64_t>(pStar + 2, static_cast<int64_t>(std::ceil(1.5 * pStar)) + 1));
        std::set<int64_t> Lset;
        if (slots > 0) {
            const int64_t from = known1 ? 2 : 1;
            if (hiL - from + 1 <= slots) {
                for (int64_t L = from; L <= hiL; ++L)
                    Lset.insert(L);
            } else {
                if (!known1)
                    Lset.insert(1);
                const int64_t free = slots - static_cast<int64_t>(Lset.size());
                const int64_t k1 = std::max<int64_t>(1, hiL > pStar ? (free * 2 + 2) / 3 : free);
                for (int64_t i = 1; i <= k1; ++i)
                    Lset.insert(std::max<int64_t>(from, (pStar * i + k1 / 2) / k1));
                const int64_t k2 = slots - static_cast<int64_t>(Lset.size());
                for (int64_t i = 1; i <= k2 && hiL > pStar; ++i)
                    Lset.insert(pStar + ((hiL - pStar) * i + k2 / 2) / k2);
                while (static_cast<int64_t>(Lset.size()) > slots)
                    Lset.erase(std::prev(Lset.end(), 2)); // keep the longest; drop from just below it
            }
        }
        if (Lset.empty() && !known1) {
            capHit_ = true;
            break;
        }
        const std::vector<int64_t> lengths(Lset.begin(), Lset.end());
        at::Tensor resp;
        std::vector<double> err;
        if (!lengths.empty()) {
            std::vector<int64_t> posv(grid_.cells, std::numeric_limits<int64_t>::max());
            for (int64_t j = 0; j < n; ++j)
                posv[list[path.order[j]]] = j;
            const at::Tensor pos = at::tensor(posv, at::kLong);
            const at::Tensor Ls = at::tensor(lengths, at::kLong);
            const at::Tensor keep = keptTensor().unsqueeze(0).logical_and(pos.unsqueeze(0) >= Ls.unsqueeze(1));
            if (!evaluate(masksFromKeep(keep), resp, err))
                break;
        }
        int64_t t = 0, tRow = -1;
        for (size_t i = 0; i < lengths.size(); ++i) {
            if (lengths[i] == 1) { // the first candidate's single removal, now measured
                const at::Tensor delta = resp[static_cast<int64_t>(i)] - rM_;
                cands[first] = {delta, true};
                registerOwner(first, delta);
            }
            if (err[i] <= o_.epsilon && lengths[i] > t) {
                t = lengths[i];
                tRow = static_cast<int64_t>(i);
            }
        }
        if (t == 0 && known1 && path.error[0] <= tauAbs)
            t = 1;
        if (t > 0) {
            at::Tensor r;
            double e;
            if (tRow >= 0) {
                r = resp[tRow];
                e = err[tRow];
            } else {
                r = rM_ + cands[first].delta;
                e = path.error[0] / scale_;
            }
            for (int64_t j = 0; j < t; ++j) {
                kept_[list[path.order[j]]] = 0;
                cands.erase(list[path.order[j]]);
            }
            for (auto& [c, info] : cands)
                info.fresh = false;
            accept(r, e);
            continue;
        }
        // Nothing passed: re-measure the stale candidates on the proposed path;
        // when all are fresh already, the surrogate is wrong there: block the first.
        std::vector<int64_t> stale;
        for (int64_t j = 0; j < std::max<int64_t>(pStar, 1) && static_cast<int64_t>(stale.size()) < B; ++j)
            if (!cands[list[path.order[j]]].fresh)
                stale.push_back(list[path.order[j]]);
        if (stale.empty())
            blocked[first] = 1;
        else
            probe(stale, cands);
    }
}

SaliencyResult Search::wholeImageResult(const std::string& note) {
    SaliencyResult res;
    res.epsilon = o_.epsilon;
    res.mask = wholeMask();
    res.areaPixels = H_ * W_;
    res.areaFraction = 1.0;
    notes_.push_back(note);
    setStage("verify", 0.95, 0.05);
    at::Tensor resp;
    std::vector<double> err;
    if (evaluate(at::ones({1, 1, H_, W_}, at::TensorOptions().dtype(at::kFloat).device(p_.device)), resp, err)) {
        res.error = err[0];
        res.withinBound = err[0] <= o_.epsilon;
    } else {
        res.error = 0; // by definition of the reference; not evaluated (cancelled)
        res.withinBound = true;
        res.cancelled = true;
        notes_.push_back("cancelled: the whole image, not evaluated");
    }
    return res;
}

SaliencyResult Search::finish() {
    SaliencyResult res;
    res.epsilon = o_.epsilon;
    auto fill = [&](const at::Tensor& mask, double error) {
        res.mask = mask;
        res.areaPixels = mask.sum().item<int64_t>();
        res.areaFraction = static_cast<double>(res.areaPixels) / static_cast<double>(H_ * W_);
        res.error = error;
        res.withinBound = error <= o_.epsilon;
    };
    if (capHit_)
        notes_.push_back("stopped at the cap of " + std::to_string(o_.maxForwards) + " masks");
    if (cancelled_) {
        res.cancelled = true;
        if (history_.empty()) {
            fill(wholeMask(), 0.0);
            notes_.push_back("cancelled before any mask was verified: the whole image (not evaluated)");
        } else {
            fill(history_.back().mask, history_.back().error);
            notes_.push_back("cancelled: the smallest mask verified so far (in its batch; no fresh check)");
        }
        return res;
    }
    // Fresh, single evaluations: the final mask, then earlier ones, then the whole image.
    setStage("verify", 0.95, 0.05);
    std::vector<Accepted> tries;
    for (auto it = history_.rbegin(); it != history_.rend() && tries.size() < 3; ++it)
        tries.push_back(*it);
    tries.push_back({wholeMask(), 0.0});
    for (size_t i = 0; i < tries.size(); ++i) {
        const at::Tensor m = tries[i].mask.to(p_.device).to(at::kFloat).view({1, 1, H_, W_});
        at::Tensor resp;
        std::vector<double> err;
        if (!evaluate(m, resp, err)) {
            res.cancelled = true;
            const Accepted& a = history_.empty() ? Accepted{wholeMask(), 0.0} : tries[i];
            fill(a.mask, a.error);
            notes_.push_back("cancelled during the final check: the last mask verified in its batch");
            return res;
        }
        fill(tries[i].mask, err[0]);
        if (res.withinBound)
            break;
        if (i + 1 < tries.size())
            notes_.push_back("fresh check of " + std::string(i == 0 ? "the final mask" : "a fallback mask") +
                             " gave error " + fmt(err[0]) + " > ε (non-deterministic evaluator?); fell back");
        else
            notes_.push_back("the whole image misses the bound (error " + fmt(err[0]) + "): the reference does not match the evaluator");
    }
    return res;
}

SaliencyResult Search::run() {
    SaliencyResult res;
    if (o_.epsilon <= 0) {
        res = wholeImageResult("ε ≤ 0: the whole image");
    } else {
        for (int attempt = 0; attempt < 2; ++attempt) {
            const int64_t bh = box_[2] - box_[0], bw = box_[3] - box_[1];
            const int64_t cell = saliency_detail::coarseCellSide(bh, bw, o_.coarseCells);
            const auto ylevels = saliency_detail::axisLevels(box_[0], box_[2], cell, std::max(o_.minCell, int64_t{1}));
            const auto xlevels = saliency_detail::axisLevels(box_[1], box_[3], cell, std::max(o_.minCell, int64_t{1}));
            grid_ = makeGrid(ylevels[0], xlevels[0]);
            kept_.assign(grid_.cells, 0);
            history_.clear();
            ownerPix_ = at::full({H_, W_}, -1, at::kLong);
            ownerDelta_.clear();
            ownerWeight_.clear();
            CandMap cands;
            const Start s = importance_.defined() ? startWithImportance(cands) : startWithOcclusion(cands);
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
            setStage("prune", 0.25, 0.25);
            eliminate(cands, true);
            const size_t levels = std::max(ylevels.size(), xlevels.size());
            for (size_t l = 1; l < levels && !stopped(); ++l) {
                const at::Tensor pix = pixelMask();
                grid_ = makeGrid(ylevels[std::min(l, ylevels.size() - 1)], xlevels[std::min(l, xlevels.size() - 1)]);
                const at::Tensor keptCells = at::cat({at::zeros({grid_.cells}, at::kByte), at::zeros({1}, at::kByte)})
                                                 .index_put_({grid_.cellOfPixelCpu}, pix.reshape({-1}))
                                                 .slice(0, 0, grid_.cells)
                                                 .contiguous();
                kept_.assign(keptCells.data_ptr<uint8_t>(), keptCells.data_ptr<uint8_t>() + grid_.cells);
                const double span = 0.45 / static_cast<double>(levels - 1);
                setStage("refine " + std::to_string(grid_.side) + "px", 0.5 + span * static_cast<double>(l - 1), span);
                CandMap fine;
                eliminate(fine, false);
            }
            break;
        }
        res = finish();
    }
    res.forwards = forwards_;
    res.evaluatorCalls = calls_;
    res.seconds = std::chrono::duration<double>(Clock::now() - t0_).count();
    std::string note;
    for (const auto& n : notes_)
        note += (note.empty() ? "" : "; ") + n;
    res.note = note;
    return res;
}

} // namespace

SaliencyResult searchSaliency(const SaliencyProblem& problem, const SaliencyOptions& options,
                              const SaliencyProgressFn& progress) {
    Search search(problem, options, progress);
    return search.run();
}

} // namespace deformscope::analysis
