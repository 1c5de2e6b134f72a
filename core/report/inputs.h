// What the analyses of a node are asked to do and where the results go: the
// settings the CLI's `analyze` and `compare` parse from their options and the
// GUI's engine fills from a click. Part of core_report; this header and its
// functions need no OpenCV, so core-only builds (no imaging) use them too.
// Plain data; the functions share no state (any thread).
#pragma once

#include "core/analysis/analysis.h"
#include "core/model/layer_graph.h"
#include "core/model/model.h"

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace deformscope::report {

// Bad usage or input a user can fix (a missing file, a layer the model lacks, a
// pixel off the image, ...): the message names the file or option and the
// problem. The CLI maps it to exit code 2 (and prints its usage).
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Settings shared by analyze and compare.
struct Settings {
    std::vector<std::string> models;
    std::string image;
    std::string layer; // empty: the model's suggested layer
    std::optional<std::array<double, 2>> pixel; // original image x, y; default: the centre
    bool sampling = true, erf = true, saliency = true;
    // The Deformable Kernel view: made whenever the node has a DK layer at or
    // below it; kernelRequired (--what names kernel) makes its absence an error.
    bool kernel = true, kernelRequired = false;
    analysis::Response response;
    analysis::SamplingOptions samplingOptions;
    analysis::ErfOptions erfOptions;
    analysis::SaliencyOptions saliencyOptions = [] {
        analysis::SaliencyOptions o;
        o.batchSize = 0; // by device
        return o;
    }();
    analysis::Baseline baseline;
    std::optional<std::array<double, 4>> objectBox; // original image x0, y0, x1, y1 (pixel i spans [i, i + 1])
    std::string objectMask;
    bool autoObject = true; // use the image's <stem>_mask.png when there is one
    std::optional<std::array<int64_t, 2>> inputSize; // H, W; none: the model's metadata size, else the image's own
    std::string device = "cpu";
    std::string out;
    bool figures = true;
    std::string colormap = "inferno";
    bool logScale = false;
};

// The layer to analyse when none is named: the metadata's suggested layer when
// the graph has it, else the last deformable layer, else the last convolution.
// Throws UsageError when the graph has no conv-like layer.
std::string defaultLayer(const model::LoadedModel& m, const model::LayerGraph& g);

// The file name without folder and extension: a model's name in folders and titles.
std::string stemOf(const std::string& path);

// Creates `dir` (and its parents); throws UsageError "<dir>: cannot create the folder (...)".
void makeDirectory(const std::string& dir);

// Writes `text` to `path` atomically; throws std::runtime_error naming the path.
void writeText(const std::string& path, const std::string& text);

} // namespace deformscope::report
