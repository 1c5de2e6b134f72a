// Internal to ui_figure (and its tests): mass regions of a heat map and the
// pixel-exact outline of a binary region. Pure functions, any thread.
#pragma once

#include <QPolygonF>

#include <cstdint>
#include <vector>

namespace deformscope::figure::detail {

// The value t such that {v ≥ t} is the smallest threshold region holding at
// least `fraction` of the total mass Σ max(v, 0) (non-finite values count as 0).
// Ties at t are all included, so the region can hold a little more. Returns
// +inf when there is no positive mass or fraction ≤ 0.
double massThreshold(const std::vector<float>& values, double fraction);

// 1 where v ≥ massThreshold(values, fraction) and v > 0, else 0.
std::vector<uint8_t> massRegion(const std::vector<float>& values, double fraction);

// The boundary of {region ≠ 0} on a width × height grid as closed polygons in
// pixel-edge coordinates (pixel (x, y) covers [x, x+1] × [y, y+1]), one vertex
// per corner (collinear runs merged), clockwise on screen (y down) for outer
// boundaries and anticlockwise for holes. Regions touching only at a corner
// come out as separate polygons. The last vertex is not repeated. Returns
// nothing when region.size() ≠ width · height.
std::vector<QPolygonF> regionOutline(const std::vector<uint8_t>& region, int width, int height);

} // namespace deformscope::figure::detail
