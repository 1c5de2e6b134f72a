// What a model file says about its input: the optional TorchScript extra file
// `deformscope.json`. Without it, documented defaults apply (native image size,
// RGB in [0,1] normalised with ImageNet mean/std) and `fromFile` is false.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace deformscope::model {

struct ModelMetadata {
    std::optional<std::array<int64_t, 2>> inputSize; // H, W; none: the image's own size
    std::array<double, 3> mean{0.485, 0.456, 0.406};  // per RGB channel, applied to [0,1] values
    std::array<double, 3> std{0.229, 0.224, 0.225};
    std::string colorOrder = "RGB"; // or "BGR"
    std::vector<std::string> classNames;
    std::string suggestedLayer;
    std::string task;
    std::string description;
    // Several input frames (video models): "inputs": [{"name": ...}, ...] names a
    // forward that takes one tensor per frame (or, with one forward argument, the
    // frames stacked); "frames": T says one tensor holds T frames stacked, on the
    // channels ([N, T·3, H, W], "frame_layout": "channels") or on a time axis
    // ([N, T, 3, H, W], "frame_layout": "time"; without the key it is tried when
    // the channel layout fails). Empty / 0: not declared.
    std::vector<std::string> inputNames;
    int64_t frames = 0;
    std::string frameLayout; // "", "channels" or "time"
    // RoI-head models (forward(image, rois)): "roi_input" names the forward argument
    // that takes the regions of interest, [K, 5] rows (batch index, x0, y0, x1, y1) in
    // input-image pixel edges (torchvision's and mmcv's layout). Without the key, an
    // argument named "rois" is taken as that argument. "" : not declared.
    std::string roiInput;
    bool fromFile = false;

    // Parses deformscope.json. Unknown keys are ignored; a present key with a
    // wrong type or value throws std::runtime_error naming the key.
    static ModelMetadata parse(const std::string& jsonText);
    // Whether a JSON object holds any key parse reads (a side file may hold only
    // custom operators).
    static bool holdsAny(const nlohmann::ordered_json& object);
    nlohmann::ordered_json toJson() const;
};

// The name of the extra file inside the TorchScript archive.
inline constexpr const char* kMetadataFile = "deformscope.json";

} // namespace deformscope::model
