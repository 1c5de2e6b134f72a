// Mass contours of a heat map (an ERF's 50 % / 90 % outlines) and the outline
// of a binary region, as plain polygons: what a view draws, computed once here
// instead of at paint time. Pure functions of their arguments, any thread.
//
// Plain C++ without LibTorch (its own target, core_contours), so the renderer
// (ui/figure, which outlines saliency and object masks with regionOutline) and
// tests without a model can link it. Grids are row-major, width × height.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace deformscope::analysis {

// A closed loop of vertices (x, y); the last vertex is not repeated.
using Polygon = std::vector<std::array<double, 2>>;

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
// come out as separate polygons. Returns nothing when region.size() ≠ width · height.
std::vector<Polygon> regionOutline(const std::vector<uint8_t>& region, int width, int height);

// Separable Gaussian blur (σ in pixels, kernel radius max(1, ⌈3σ⌉), edges
// clamped) of max(v, 0) (non-finite values count as 0). σ ≤ 0 or a grid of the
// wrong size: the values unchanged.
std::vector<float> gaussianSmoothed(const std::vector<float>& values, int width, int height, double sigma);

// How a heat map's mass is outlined: the figures' and the GUI's choice.
struct ContourOptions {
    std::vector<double> fractions{0.5, 0.9}; // outline the smallest region holding each fraction of the mass
    double smoothing = 2.0;                  // Gaussian σ (grid pixels) applied to the mass first; 0: the exact pixels
    bool isSigned = false;                   // mass = |v| (a signed map), else max(v, 0)
};

// One fraction's outline.
struct MassContour {
    double fraction = 0;
    std::vector<Polygon> loops; // on the map's grid with pixel centres at integers (edges at k − ½); empty: nothing to outline
};

// The mass contours of a width × height map: one entry per requested fraction,
// in order (a fraction outside (0, 1] gets an entry without loops). Pixel-level
// maps (gradients) are speckled, so the mass is lightly smoothed before the
// threshold (options.smoothing). Nothing when values.size() ≠ width · height.
std::vector<MassContour> massContours(const std::vector<float>& values, int width, int height,
                                      const ContourOptions& options = {});

} // namespace deformscope::analysis
