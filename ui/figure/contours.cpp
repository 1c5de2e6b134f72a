#include "ui/figure/contours.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace deformscope::figure::detail {
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

std::vector<QPolygonF> regionOutline(const std::vector<uint8_t>& region, int width, int height)
{
    std::vector<QPolygonF> loops;
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
    auto point = [&](size_t v) { return QPointF(double(v % stride), double(v / stride)); };
    for (size_t start = 0; start < out.size(); ++start) {
        while (out[start] != 0) {
            // At a vertex where two regions touch diagonally, turning right
            // (towards the kept side) keeps each region's loop to itself.
            int d = 0;
            while (!(out[start] & (1 << d)))
                ++d;
            QPolygonF loop;
            loop << point(start);
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
                    loop << point(v);
                d = next;
            }
            loops.push_back(loop);
        }
    }
    return loops;
}

} // namespace deformscope::figure::detail
