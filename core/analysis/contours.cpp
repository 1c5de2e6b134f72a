// Mass thresholds, Gaussian smoothing, region outlines and mass contours
// (contours.h). Pure functions without LibTorch; any thread may call them —
// ui/analysis_figure for ERF panels, ui/figure for mask outlines.
#include "core/analysis/contours.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>

namespace deformscope::analysis {
namespace {

float mass(float v) { return std::isfinite(v) && v > 0 ? v : 0.0f; }

} // namespace

double massThreshold(const std::vector<float>& values, double fraction)
{
    constexpr double none = std::numeric_limits<double>::infinity();
    if (!(fraction > 0))
        return none;
    std::vector<float> sorted;
    sorted.reserve(values.size());
    double total = 0;
    for (float v : values) {
        const float m = mass(v);
        if (m > 0) {
            sorted.push_back(m);
            total += m;
        }
    }
    if (sorted.empty() || !(total > 0))
        return none;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    if (fraction >= 1)
        return sorted.back();
    const double goal = fraction * total;
    double sum = 0;
    for (float v : sorted) {
        sum += v;
        if (sum >= goal)
            return v;
    }
    return sorted.back(); // rounding left the sum a hair short of the goal
}

std::vector<uint8_t> massRegion(const std::vector<float>& values, double fraction)
{
    const double t = massThreshold(values, fraction);
    std::vector<uint8_t> region(values.size(), 0);
    for (size_t i = 0; i < values.size(); ++i) {
        const float m = mass(values[i]);
        region[i] = m > 0 && m >= t ? 1 : 0;
    }
    return region;
}

std::vector<Polygon> regionOutline(const std::vector<uint8_t>& region, int width, int height)
{
    std::vector<Polygon> loops;
    if (width <= 0 || height <= 0 || region.size() != size_t(width) * size_t(height))
        return loops;
    // Directed boundary edges between grid vertices (x, y), x ≤ width, y ≤ height,
    // each pixel's edges going clockwise on screen so edges shared by two kept
    // pixels never appear. Directions: 0 = +x, 1 = +y, 2 = −x, 3 = −y.
    const int stride = width + 1;
    std::vector<uint8_t> out(size_t(stride) * size_t(height + 1), 0);
    auto kept = [&](int x, int y) {
        return x >= 0 && y >= 0 && x < width && y < height && region[size_t(y) * width + x] != 0;
    };
    auto vertex = [&](int x, int y) { return size_t(y) * stride + x; };
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            if (!kept(x, y))
                continue;
            if (!kept(x, y - 1))
                out[vertex(x, y)] |= 1;
            if (!kept(x + 1, y))
                out[vertex(x + 1, y)] |= 2;
            if (!kept(x, y + 1))
                out[vertex(x + 1, y + 1)] |= 4;
            if (!kept(x - 1, y))
                out[vertex(x, y + 1)] |= 8;
        }
    const int step[4] = {1, stride, -1, -stride};
    auto point = [&](size_t v) { return std::array<double, 2>{double(v % stride), double(v / stride)}; };
    for (size_t start = 0; start < out.size(); ++start) {
        while (out[start] != 0) {
            // At a vertex where two regions touch diagonally, turning right
            // (towards the kept side) keeps each region's loop to itself.
            int d = 0;
            while (!(out[start] & (1 << d)))
                ++d;
            Polygon loop{point(start)};
            size_t v = start;
            for (;;) {
                out[v] &= uint8_t(~(1 << d));
                v = size_t(std::ptrdiff_t(v) + step[d]);
                if (v == start)
                    break;
                int next = -1;
                for (int turn : {1, 0, 3}) {
                    const int c = (d + turn) % 4;
                    if (out[v] & (1 << c)) {
                        next = c;
                        break;
                    }
                }
                if (next < 0)
                    break; // cannot happen on a consistent edge set; leave the loop open
                if (next != d)
                    loop.push_back(point(v));
                d = next;
            }
            loops.push_back(std::move(loop));
        }
    }
    return loops;
}

std::vector<float> gaussianSmoothed(const std::vector<float>& v, int width, int height, double sigma)
{
    if (!(sigma > 0) || width <= 0 || height <= 0 || v.size() != size_t(width) * size_t(height))
        return v;
    const int r = std::max(1, int(std::ceil(3 * sigma)));
    std::vector<double> k(size_t(2 * r + 1));
    double sum = 0;
    for (int i = -r; i <= r; ++i)
        sum += k[size_t(i + r)] = std::exp(-0.5 * i * i / (sigma * sigma));
    for (double& x : k)
        x /= sum;
    std::vector<float> tmp(v.size()), out(v.size());
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            double acc = 0;
            for (int i = -r; i <= r; ++i)
                acc += k[size_t(i + r)] * double(mass(v[size_t(y) * size_t(width) + size_t(std::clamp(x + i, 0, width - 1))]));
            tmp[size_t(y) * size_t(width) + size_t(x)] = float(acc);
        }
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            double acc = 0;
            for (int i = -r; i <= r; ++i)
                acc += k[size_t(i + r)] * tmp[size_t(std::clamp(y + i, 0, height - 1)) * size_t(width) + size_t(x)];
            out[size_t(y) * size_t(width) + size_t(x)] = float(acc);
        }
    return out;
}

std::vector<MassContour> massContours(const std::vector<float>& values, int width, int height,
                                      const ContourOptions& options)
{
    std::vector<MassContour> contours;
    if (width <= 0 || height <= 0 || values.size() != size_t(width) * size_t(height))
        return contours;
    std::vector<float> m = values;
    if (options.isSigned)
        for (float& v : m)
            v = std::fabs(v);
    m = gaussianSmoothed(m, width, height, options.smoothing);
    for (double fraction : options.fractions) {
        MassContour c;
        c.fraction = fraction;
        if (fraction > 0 && fraction <= 1) {
            c.loops = regionOutline(massRegion(m, fraction), width, height);
            for (Polygon& loop : c.loops) // pixel edges -> pixel centres at integers
                for (auto& p : loop)
                    p = {p[0] - 0.5, p[1] - 0.5};
        }
        contours.push_back(std::move(c));
    }
    return contours;
}

} // namespace deformscope::analysis
