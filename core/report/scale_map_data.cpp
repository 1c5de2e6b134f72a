#include "core/report/scale_map_data.h"

#include "core/common/json_file.h"
#include "core/common/npy.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>

namespace deformscope::report {

nlohmann::ordered_json writeScaleMapData(const analysis::ScaleMapResult& result, const Run& run,
                                         const std::string& modelPath, const std::string& imagePath,
                                         const std::string& dir, const std::vector<std::string>& figures) {
    using Json = nlohmann::ordered_json;
    namespace fs = std::filesystem;
    makeDirectory(dir);
    common::writeNpy((fs::path(dir) / "scale_map.npy").string(), result.radii.to(at::kFloat).contiguous());
    Json fractions = Json::array(), stats = Json::array();
    for (size_t f = 0; f < result.fractions.size(); ++f) {
        const at::Tensor r = result.radii[int64_t(f)].flatten();
        fractions.push_back(result.fractions[f]);
        stats.push_back(Json::object({{"fraction", result.fractions[f]},
                                      {"min_px", r.min().item<double>()},
                                      {"median_px", r.median().item<double>()},
                                      {"mean_px", r.mean().item<double>()},
                                      {"max_px", r.max().item<double>()}}));
    }
    Json notes = Json::array();
    for (const std::string& n : result.notes)
        notes.push_back(n);
    const Json doc = Json::object({{"format", "deformscope-scale-map/1"},
                                   {"model", modelPath},
                                   {"image", imagePath},
                                   {"input_size", Json::array({run.session->inputSize()[0], run.session->inputSize()[1]})},
                                   {"layer", result.layer},
                                   {"response", result.response.toString()},
                                   {"grid", Json::array({result.grid[0], result.grid[1]})},
                                   {"fy", result.fy},
                                   {"fx", result.fx},
                                   {"fractions", fractions},
                                   {"radii", stats},
                                   {"data", "scale_map.npy"},
                                   {"layout", "[fraction, row, column]: input pixels; row i is feature row fy[i], "
                                              "column j feature column fx[j]"},
                                   {"passes", result.passes},
                                   {"seconds", result.seconds},
                                   {"figures", figures},
                                   {"notes", notes}});
    common::writeJsonFile((fs::path(dir) / "result.json").string(), doc);
    return doc;
}

} // namespace deformscope::report
