// The dense ERF-size map: where in the image a layer looks wide and where narrow.
//
// For every node of a G × G grid over a layer's feature map, the radii of the
// smallest discs centred on the node's centre that hold 50 % and 90 % of its
// effective receptive field's mass (Σ_colours |∂response/∂pixel|). The ERFs are
// computed `batch` nodes per pass (AnalysisSession::erfBatch: on the CPU one forward
// and a backward per node through the kept graph; on a GPU one forward and one
// backward of the image repeated `batch` times), so a 32 × 32 grid at batch 16
// costs 64 forwards.
#pragma once

#include "core/analysis/analysis.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace deformscope::analysis {

// The radii (input pixels) of the smallest discs centred on `centre` (x, y, in
// input-image coordinates, pixel centres at integers) holding each fraction of the
// mass of `map` ([H, W], values ≥ 0): the distance of the pixel at which the
// mass of the pixels nearer (ties included) first reaches the fraction. 0 for an
// all-zero map.
std::vector<double> massRadii(const at::Tensor& map, std::array<double, 2> centre, const std::vector<double>& fractions);

struct ScaleMapOptions {
    std::string layer;                 // the layer whose nodes are mapped
    int64_t grid = 32;                 // G: nodes per side (at most the feature map's size)
    Response response;                 // each node's response
    int64_t batch = 16;                // nodes per pass (16 to 32 fastest on a CPU: docs/benchmarks.md)
    std::vector<double> fractions{0.5, 0.9};
};

struct ScaleMapResult {
    std::string layer;
    Response response;
    std::array<int64_t, 2> grid{0, 0};  // rows, columns actually used
    std::vector<int64_t> fy, fx;         // the feature positions of the grid's rows and columns
    std::vector<std::array<double, 2>> centres; // each node's centre (x, y), row-major over the grid
    std::vector<double> fractions;
    at::Tensor radii;                    // [F, rows, cols] double on the CPU: massRadii of each node's ERF
    at::Tensor mass;                     // [rows, cols] double: each ERF's total mass
    int64_t passes = 0;                  // batched forward/backward passes
    double seconds = 0;
    std::vector<std::string> notes;
};

// The grid's positions along a feature axis of `size`: `count` positions spread
// evenly (cell centres), or every position when count ≥ size.
std::vector<int64_t> gridPositions(int64_t size, int64_t count);

// The map; `progress(done, total)` after each pass, false cancels (AnalysisError).
ScaleMapResult scaleMap(const AnalysisSession& session, const ScaleMapOptions& options,
                        const std::function<bool(int64_t, int64_t)>& progress = {});

} // namespace deformscope::analysis
