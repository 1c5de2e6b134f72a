// The data files of the dense ERF-size map (analysis/scale_map.h) in the CLI's
// `scale-map` layout, written by the CLI and the GUI's engine alike.
#pragma once

#include "core/analysis/scale_map.h"
#include "core/report/report.h"

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace deformscope::report {

// Writes dir/scale_map.npy ([F, rows, cols] float32, input pixels) and dir/result.json
// (the grid, the radii's min / median / mean / max per fraction, `figures`); returns
// the document. `modelPath` and `imagePath` are recorded as given.
nlohmann::ordered_json writeScaleMapData(const analysis::ScaleMapResult& result, const Run& run,
                                         const std::string& modelPath, const std::string& imagePath,
                                         const std::string& dir, const std::vector<std::string>& figures);

} // namespace deformscope::report
