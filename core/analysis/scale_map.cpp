#include "core/analysis/scale_map.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace deformscope::analysis {

namespace {

// Squared distances of every pixel of an H × W grid to (cx, cy), flattened row-major.
at::Tensor squaredDistances(int64_t h, int64_t w, double cx, double cy) {
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor dy = at::arange(h, opts) - cy, dx = at::arange(w, opts) - cx;
    return (dy.square().view({h, 1}) + dx.square().view({1, w})).reshape({-1});
}

// massRadii for maps [B, H, W] with their centres, as [F, B].
at::Tensor radiiOf(const at::Tensor& maps, const std::vector<std::array<double, 2>>& centres,
                   const std::vector<double>& fractions) {
    const int64_t B = maps.size(0), H = maps.size(1), W = maps.size(2);
    std::vector<at::Tensor> d2;
    for (const auto& c : centres)
        d2.push_back(squaredDistances(H, W, c[0], c[1]));
    const at::Tensor dist2 = at::stack(d2);                                    // [B, HW]
    const at::Tensor mass = maps.reshape({B, H * W}).to(at::kDouble).abs();   // [B, HW]
    const auto [sorted, order] = dist2.sort(1);
    const at::Tensor cumulative = mass.gather(1, order).cumsum(1);            // mass within each distance
    const at::Tensor total = cumulative.select(1, H * W - 1);
    std::vector<at::Tensor> rows;
    for (double f : fractions) {
        // The first pixel (in distance order) at which the cumulative mass reaches f of the total;
        // ties in distance count together, so the radius is that pixel's distance.
        const at::Tensor reached = cumulative >= (total * f).unsqueeze(1) - 1e-12 * total.unsqueeze(1);
        const at::Tensor first = reached.to(at::kLong).argmax(1);
        at::Tensor r = sorted.gather(1, first.unsqueeze(1)).squeeze(1).sqrt();
        rows.push_back(at::where(total > 0, r, at::zeros_like(r)));
    }
    return at::stack(rows);
}

} // namespace

std::vector<double> massRadii(const at::Tensor& map, std::array<double, 2> centre, const std::vector<double>& fractions) {
    const at::Tensor r = radiiOf(map.unsqueeze(0), {centre}, fractions);
    std::vector<double> out;
    for (int64_t i = 0; i < r.size(0); ++i)
        out.push_back(r[i][0].item<double>());
    return out;
}

std::vector<int64_t> gridPositions(int64_t size, int64_t count) {
    std::vector<int64_t> out;
    if (count >= size) {
        for (int64_t i = 0; i < size; ++i)
            out.push_back(i);
        return out;
    }
    for (int64_t i = 0; i < count; ++i)
        out.push_back(std::min<int64_t>(size - 1, int64_t(std::floor((double(i) + 0.5) * double(size) / double(count)))));
    return out;
}

ScaleMapResult scaleMap(const AnalysisSession& session, const ScaleMapOptions& options,
                        const std::function<bool(int64_t, int64_t)>& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    if (options.grid < 1)
        throw AnalysisError("the grid needs at least 1 node per side, got " + std::to_string(options.grid));
    if (options.batch < 1)
        throw AnalysisError("the batch needs at least 1 node, got " + std::to_string(options.batch));
    if (options.fractions.empty())
        throw AnalysisError("no mass fractions to measure the ERF radius at");
    for (double f : options.fractions)
        if (!(f > 0 && f <= 1))
            throw AnalysisError("mass fraction " + std::to_string(f) + " is not in (0, 1]");
    if (session.frames() > 1)
        throw AnalysisError("the scale map is for models with one input image (this one takes " +
                            std::to_string(session.frames()) + ")");
    const model::Layer& l = session.layer(options.layer);
    ScaleMapResult result;
    result.layer = l.name;
    result.response = options.response;
    result.fractions = options.fractions;
    result.fy = gridPositions(l.feature_size[0], options.grid);
    result.fx = gridPositions(l.feature_size[1], options.grid);
    const int64_t rows = int64_t(result.fy.size()), cols = int64_t(result.fx.size());
    result.grid = {rows, cols};
    if (rows < options.grid || cols < options.grid)
        result.notes.push_back(l.name + " is " + std::to_string(l.feature_size[0]) + " x " +
                               std::to_string(l.feature_size[1]) + ": every node of it is mapped (" +
                               std::to_string(rows) + " x " + std::to_string(cols) + ")");
    std::vector<Node> nodes;
    for (int64_t fy : result.fy)
        for (int64_t fx : result.fx) {
            nodes.push_back(Node{l.name, fy, fx, options.response});
            result.centres.push_back(session.nodeCentre(nodes.back()));
        }
    const int64_t total = int64_t(nodes.size());
    const int64_t F = int64_t(options.fractions.size());
    result.radii = at::zeros({F, rows, cols}, at::kDouble);
    result.mass = at::zeros({rows, cols}, at::kDouble);
    auto radiiFlat = result.radii.view({F, rows * cols});
    auto massFlat = result.mass.view({rows * cols});
    for (int64_t start = 0; start < total; start += options.batch) {
        const int64_t n = std::min(options.batch, total - start);
        const std::vector<Node> batch(nodes.begin() + start, nodes.begin() + start + n);
        const std::vector<ErfResult> erfs = session.erfBatch(batch, {}, /*metrics=*/false);
        std::vector<at::Tensor> maps;
        for (const ErfResult& e : erfs)
            maps.push_back(e.map);
        const at::Tensor stacked = at::stack(maps);
        const std::vector<std::array<double, 2>> centres(result.centres.begin() + start,
                                                         result.centres.begin() + start + n);
        radiiFlat.narrow(1, start, n).copy_(radiiOf(stacked, centres, options.fractions));
        massFlat.narrow(0, start, n).copy_(stacked.to(at::kDouble).abs().sum({1, 2}));
        ++result.passes;
        if (progress && !progress(start + n, total))
            throw AnalysisError("the scale map was cancelled");
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
}

} // namespace deformscope::analysis
