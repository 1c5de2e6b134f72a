// The linear surrogate's searches: the greedy removal path the refinement levels
// follow and the beam searches that propose coarse states, both on effect vectors
// alone (no evaluator). They return candidates ranked by the surrogate's error;
// the search evaluates every one it adopts.
#include "core/analysis/saliency_internal.h"
#include "core/analysis/saliency_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <unordered_set>

namespace deformscope::analysis::saliency_detail {

namespace {
uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
} // namespace

std::vector<uint64_t> zobristKeys(size_t n, uint64_t seed) {
    std::vector<uint64_t> keys(n);
    for (auto& z : keys)
        z = splitmix64(seed);
    return keys;
}

GreedyPath greedyRemovalPath(const at::Tensor& deltasIn, const at::Tensor& e0In) {
    GreedyPath path;
    const at::Tensor deltas = deltasIn.to(at::kCPU, at::kDouble).contiguous();
    const at::Tensor e0 = e0In.to(at::kCPU, at::kDouble).reshape({-1}).contiguous();
    const int64_t n = deltas.size(0);
    if (n == 0)
        return path;
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
    // The path's errors, recomputed from cumulative sums (no cancellation error).
    const at::Tensor idx = at::from_blob(path.order.data(), {n}, at::kLong).clone();
    const at::Tensor cum = deltas.index_select(0, idx).cumsum(0) + e0.unsqueeze(0);
    const at::Tensor norms = cum.norm(2, {1}).contiguous();
    path.error.assign(norms.data_ptr<double>(), norms.data_ptr<double>() + n);
    return path;
}

std::vector<std::vector<uint8_t>> beamSearch(const at::Tensor& gIn, const at::Tensor& eIn, const std::vector<uint8_t>& start,
                                             bool add, double tau, int64_t width, int64_t perDepth) {
    std::vector<std::vector<uint8_t>> found;
    const at::Tensor g = gIn.to(at::kCPU, at::kDouble).contiguous();
    const at::Tensor e = eIn.to(at::kCPU, at::kDouble).reshape({-1}).contiguous();
    const int64_t n = g.size(0);
    if (static_cast<int64_t>(start.size()) != n)
        throw std::invalid_argument("beamSearch: start has the wrong length");
    width = std::max<int64_t>(1, width);
    const double tau2 = tau * tau;
    const double sgn = add ? 1.0 : -1.0;
    const uint8_t from = add ? 0 : 1; // the flag an item must have to be flipped
    const std::vector<uint64_t> zob = zobristKeys(static_cast<size_t>(n), 0x5a11e9c7ULL);

    struct State {
        std::vector<uint8_t> z;
        std::vector<double> h; // gᵢ · residual
        double e2 = 0;
        uint64_t hash = 0;
    };
    State s0;
    s0.z = start;
    const double e2start = e.dot(e).item<double>();
    if (add && e2start <= tau2) {
        found.push_back(start);
        return found;
    }
    if (n == 0)
        return found;
    const at::Tensor Qt = g.mm(g.t()).contiguous();
    const double* Q = Qt.data_ptr<double>();
    const at::Tensor h0 = g.mv(e).contiguous();
    s0.h.assign(h0.data_ptr<double>(), h0.data_ptr<double>() + n);
    s0.e2 = e2start;
    for (int64_t i = 0; i < n; ++i)
        if (start[i])
            s0.hash ^= zob[i];
    std::vector<State> beam;
    beam.push_back(std::move(s0));

    struct Child {
        double e2;
        int32_t state;
        int32_t item;
    };
    std::vector<Child> children;
    std::unordered_set<uint64_t> seen;
    for (int64_t depth = 0; depth < n; ++depth) {
        children.clear();
        for (size_t si = 0; si < beam.size(); ++si) {
            const State& st = beam[si];
            for (int64_t c = 0; c < n; ++c)
                if (st.z[c] == from)
                    children.push_back({st.e2 + 2 * sgn * st.h[c] + Q[c * n + c], static_cast<int32_t>(si), static_cast<int32_t>(c)});
        }
        if (children.empty())
            break;
        auto less = [](const Child& a, const Child& b) {
            return a.e2 < b.e2 || (a.e2 == b.e2 && (a.state < b.state || (a.state == b.state && a.item < b.item)));
        };
        // Sorted lazily: the best 4·width first, the rest only when duplicates leave the beam short.
        size_t sorted = std::min(children.size(), static_cast<size_t>(4 * width));
        std::partial_sort(children.begin(), children.begin() + static_cast<std::ptrdiff_t>(sorted), children.end(), less);
        seen.clear();
        std::vector<State> next;
        int64_t feasibleHere = 0;
        for (size_t k = 0; k < children.size() && static_cast<int64_t>(next.size()) < width; ++k) {
            if (k == sorted) {
                std::sort(children.begin() + static_cast<std::ptrdiff_t>(sorted), children.end(), less);
                sorted = children.size();
            }
            const Child& ch = children[k];
            const State& parent = beam[ch.state];
            const uint64_t hash = parent.hash ^ zob[ch.item];
            if (!seen.insert(hash).second)
                continue;
            State st;
            st.z = parent.z;
            st.z[ch.item] = from ^ 1;
            st.h = parent.h;
            const double* q = Q + static_cast<int64_t>(ch.item) * n;
            for (int64_t i = 0; i < n; ++i)
                st.h[i] += sgn * q[i];
            st.e2 = std::max(0.0, ch.e2);
            st.hash = hash;
            if (st.e2 <= tau2 && feasibleHere < perDepth) {
                found.push_back(st.z);
                ++feasibleHere;
            }
            next.push_back(std::move(st));
        }
        if (add && feasibleHere > 0)
            break;
        beam = std::move(next);
    }
    return found;
}

} // namespace deformscope::analysis::saliency_detail
