// ERF metrics, object metrics and the JSON of every result.
#include "core/analysis/analysis.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

namespace deformscope::analysis {

using Json = nlohmann::ordered_json;

ErfMetrics erfMetrics(const at::Tensor& mapIn, std::array<double, 2> nodeXY, std::array<double, 2> rf) {
    ErfMetrics m;
    const at::Tensor map = mapIn.detach().to(at::kCPU, at::kDouble).abs().contiguous();
    const int64_t H = map.size(0), W = map.size(1);
    m.mass = map.sum().item<double>();

    // Theoretical RF box around the node, clipped to the image.
    const auto clipped = [](double c, double r, int64_t n) {
        const double lo = std::max(-0.5, c - r / 2), hi = std::min(double(n) - 0.5, c + r / 2);
        return std::max(0.0, hi - lo);
    };
    m.rfAreaPixels = clipped(nodeXY[1], rf[0], H) * clipped(nodeXY[0], rf[1], W);
    if (!(m.mass > 0))
        return m;

    // Fewest pixels holding each fraction of the mass.
    const at::Tensor sorted = std::get<0>(map.flatten().sort(0, /*descending=*/true));
    const at::Tensor cum = sorted.cumsum(0) / m.mass;
    for (size_t i = 0; i < m.areaFractions.size(); ++i) {
        const at::Tensor target = at::full({1}, m.areaFractions[i] - 1e-12, cum.options());
        m.areaPixels[i] = std::min<int64_t>(at::searchsorted(cum, target).item<int64_t>() + 1, H * W);
    }
    m.area90ToRf = m.rfAreaPixels > 0 ? double(m.areaPixels[1]) / m.rfAreaPixels : 0;

    // Centroid and spread.
    const at::Tensor ys = at::arange(H, map.options()).view({H, 1});
    const at::Tensor xs = at::arange(W, map.options()).view({1, W});
    const double cx = (map * xs).sum().item<double>() / m.mass, cy = (map * ys).sum().item<double>() / m.mass;
    m.centroid = {cx, cy};
    const double vx = (map * (xs - cx).pow(2)).sum().item<double>() / m.mass;
    const double vy = (map * (ys - cy).pow(2)).sum().item<double>() / m.mass;
    m.spread = {std::sqrt(vx), std::sqrt(vy)};
    m.radialSpread = std::sqrt(vx + vy);

    // RepLKNet's high-contribution area ratio, with squares centred on the node.
    at::Tensor t = at::log10(1 + map);
    t = t / t.max();
    const double total = t.sum().item<double>();
    const at::Tensor integral = at::pad(t.cumsum(0).cumsum(1), {1, 0, 1, 0});
    const auto I = integral.accessor<double, 2>();
    const int64_t ny = std::clamp<int64_t>(std::llround(nodeXY[1]), 0, H - 1);
    const int64_t nx = std::clamp<int64_t>(std::llround(nodeXY[0]), 0, W - 1);
    const int64_t maxHalf = std::min({ny, nx, H - 1 - ny, W - 1 - nx});
    for (size_t k = 0; k < m.highContributionThresholds.size(); ++k) {
        for (int64_t h = 0; h <= maxHalf; ++h) {
            const int64_t y0 = ny - h, y1 = ny + h + 1, x0 = nx - h, x1 = nx + h + 1;
            const double s = I[y1][x1] - I[y0][x1] - I[y1][x0] + I[y0][x0];
            if (s / total > m.highContributionThresholds[k]) {
                m.highContributionSide[k] = 2 * h + 1;
                m.highContributionRatio[k] = double((2 * h + 1) * (2 * h + 1)) / double(H * W);
                break;
            }
        }
    }
    return m;
}

ObjectMetrics objectMetrics(const at::Tensor& objectIn, const ErfResult* erf, const SamplingTrace* sampling,
                            const SaliencyResult* saliency) {
    ObjectMetrics m;
    const at::Tensor object = objectIn.detach().to(at::kCPU).ne(0);
    const int64_t H = object.size(0), W = object.size(1);
    m.objectPixels = object.sum().item<int64_t>();
    const auto inside = object.accessor<bool, 2>();
    if (erf && erf->map.defined()) {
        const at::Tensor map = erf->map.to(at::kDouble).abs();
        const double mass = map.sum().item<double>();
        m.erfMassInside = mass > 0 ? (map * object).sum().item<double>() / mass : 0;
    }
    if (sampling && !sampling->points.empty()) {
        double total = 0, in = 0;
        int64_t count = 0;
        for (const SamplingPoint& p : sampling->points) {
            const int64_t x = std::llround(p.x), y = std::llround(p.y);
            const bool hit = p.inside && x >= 0 && y >= 0 && x < W && y < H && inside[y][x];
            total += p.weight;
            if (hit) {
                in += p.weight;
                ++count;
            }
        }
        m.samplingWeightInside = total > 0 ? in / total : 0;
        m.samplingPointsInside = double(count) / double(sampling->points.size());
    }
    if (saliency && saliency->mask.defined()) {
        const at::Tensor kept = saliency->mask.to(at::kCPU).ne(0);
        const int64_t area = kept.sum().item<int64_t>();
        m.saliencyAreaInside = area > 0 ? double((kept & object).sum().item<int64_t>()) / double(area) : 0;
    }
    return m;
}

// ---- JSON ------------------------------------------------------------------------

namespace {
template <typename T, size_t N>
Json arrayOf(const std::array<T, N>& a) {
    Json j = Json::array();
    for (const T& v : a)
        j.push_back(v);
    return j;
}
Json orNull(double v) { return v < 0 ? Json() : Json(v); }
} // namespace

Json toJson(const Node& node) {
    Json j = Json::object({{"layer", node.layer}, {"fy", node.fy}, {"fx", node.fx}, {"response", node.response.toString()}});
    if (node.allBins)
        j["all_bins"] = true;
    return j;
}

double weightedSpread(const SamplingTrace& trace) {
    double w = 0, sx = 0, sy = 0;
    for (const SamplingPoint& p : trace.points)
        if (p.level == trace.levels) {
            w += p.weight;
            sx += p.weight * p.x;
            sy += p.weight * p.y;
        }
    if (!(w > 0))
        return 0;
    const double cx = sx / w, cy = sy / w;
    double spread = 0;
    for (const SamplingPoint& p : trace.points)
        if (p.level == trace.levels)
            spread += p.weight * ((p.x - cx) * (p.x - cx) + (p.y - cy) * (p.y - cy));
    return std::sqrt(spread / w);
}

int64_t uniquePoints(const SamplingTrace& trace, int level) {
    std::set<std::tuple<int64_t, int64_t, int>> seen;
    for (const SamplingPoint& p : trace.points)
        if (level == 0 || p.level == level)
            seen.insert({std::llround(p.x * 1000.0), std::llround(p.y * 1000.0), p.input});
    return int64_t(seen.size());
}

Json toJson(const SamplingTrace& trace) {
    Json levels = Json::array();
    double total = 0;
    for (const SamplingPoint& p : trace.points)
        total += p.weight;
    for (int l = 1; l <= trace.levels; ++l) {
        int64_t count = 0, inside = 0;
        double weight = 0, insideWeight = 0;
        for (const SamplingPoint& p : trace.points)
            if (p.level == l) {
                ++count;
                inside += p.inside ? 1 : 0;
                weight += p.weight;
                insideWeight += p.inside ? p.weight : 0;
            }
        levels.push_back(Json::object({{"level", l},
                                       {"layers", size_t(l - 1) < trace.levelLayers.size() ? trace.levelLayers[size_t(l - 1)] : ""},
                                       {"points", count},
                                       {"unique_points", uniquePoints(trace, l)},
                                       {"inside", inside},
                                       {"weight_sum", weight},
                                       // The level's share of the trace's weight, and the share of its own weight inside the image.
                                       {"weight_share", orNull(total > 0 ? weight / total : -1.0)},
                                       {"inside_weight_share", orNull(weight > 0 ? insideWeight / weight : -1.0)}}));
    }
    Json notes = Json::array();
    for (const auto& n : trace.notes)
        notes.push_back(n);
    const double spread = weightedSpread(trace);
    return Json::object({{"points", int64_t(trace.points.size())},
                         {"unique_points", uniquePoints(trace)},
                         {"levels", trace.levels},
                         {"per_level", levels},
                         {"weighted_spread_px", spread},
                         {"seconds", trace.seconds},
                         {"notes", notes}});
}

Json toJson(const ErfMetrics& m) {
    Json areas = Json::object();
    for (size_t i = 0; i < m.areaFractions.size(); ++i) {
        const int pct = int(std::lround(m.areaFractions[i] * 100));
        areas["area" + std::to_string(pct) + "_px"] = m.areaPixels[i];
    }
    Json hc = Json::array();
    for (size_t i = 0; i < m.highContributionThresholds.size(); ++i)
        hc.push_back(Json::object({{"threshold", m.highContributionThresholds[i]},
                                   {"side_px", m.highContributionSide[i] < 0 ? Json() : Json(m.highContributionSide[i])},
                                   {"area_ratio", orNull(m.highContributionRatio[i])}}));
    Json j = Json::object({{"mass", m.mass}});
    for (const auto& [k, v] : areas.items())
        j[k] = v;
    j["centroid_xy"] = arrayOf(m.centroid);
    j["spread_xy"] = arrayOf(m.spread);
    j["radial_spread_px"] = m.radialSpread;
    j["rf_area_px"] = m.rfAreaPixels;
    j["area90_to_rf"] = m.area90ToRf;
    j["high_contribution"] = hc;
    return j;
}

Json toJson(const SaliencyResult& r) {
    return Json::object({{"epsilon", r.epsilon},
                         {"error", r.error},
                         {"within_bound", r.withinBound},
                         {"area_px", r.areaPixels},
                         {"area_fraction", r.areaFraction},
                         {"forwards", r.forwards},
                         {"evaluator_calls", r.evaluatorCalls},
                         {"seconds", r.seconds},
                         {"cancelled", r.cancelled},
                         {"note", r.note}});
}

Json toJson(const ObjectMetrics& m) {
    return Json::object({{"object_px", m.objectPixels},
                         {"erf_mass_inside", orNull(m.erfMassInside)},
                         {"sampling_weight_inside", orNull(m.samplingWeightInside)},
                         {"sampling_points_inside", orNull(m.samplingPointsInside)},
                         {"saliency_area_inside", orNull(m.saliencyAreaInside)}});
}

} // namespace deformscope::analysis
