#include "core/model/metadata.h"

#include "core/common/json_file.h"

#include <stdexcept>

namespace deformscope::model {
namespace {

using common::Json;

[[noreturn]] void bad(const char* key, const std::string& expected, const Json& got) {
    throw std::runtime_error(std::string("'") + key + "' must be " + expected + ", got " +
                             got.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::array<double, 3> triple(const Json& j, const char* key) {
    if (!j.is_array() || j.size() != 3 || !j[0].is_number() || !j[1].is_number() || !j[2].is_number())
        bad(key, "an array of 3 numbers", j);
    return {j[0].get<double>(), j[1].get<double>(), j[2].get<double>()};
}

std::string text(const Json& j, const char* key) {
    if (!j.is_string())
        bad(key, "a string", j);
    return j.get<std::string>();
}

} // namespace

bool ModelMetadata::holdsAny(const Json& object) {
    static const char* keys[] = {"input_size", "mean",        "std",    "color_order", "class_names", "suggested_layer",
                                 "task",       "description", "inputs", "frames",      "frame_layout",
                                 "roi_input"};
    if (!object.is_object())
        return false;
    for (const char* k : keys)
        if (object.contains(k))
            return true;
    return false;
}

ModelMetadata ModelMetadata::parse(const std::string& jsonText) {
    const Json root = common::parseJson(jsonText, kMetadataFile);
    if (!root.is_object())
        throw std::runtime_error("the top level must be a JSON object");
    ModelMetadata m;
    m.fromFile = true;
    if (root.contains("input_size")) {
        const Json& size = root["input_size"];
        if (!size.is_array() || size.size() != 2 || !size[0].is_number_integer() || !size[1].is_number_integer() ||
            size[0].get<int64_t>() <= 0 || size[1].get<int64_t>() <= 0)
            bad("input_size", "[height, width] with positive integers", size);
        m.inputSize = std::array<int64_t, 2>{size[0].get<int64_t>(), size[1].get<int64_t>()};
    }
    if (root.contains("mean"))
        m.mean = triple(root["mean"], "mean");
    if (root.contains("std")) {
        m.std = triple(root["std"], "std");
        for (double v : m.std)
            if (!(v > 0))
                throw std::runtime_error("'std' values must be positive, got " +
                                         root["std"].dump(-1, ' ', false, Json::error_handler_t::replace));
    }
    if (root.contains("color_order")) {
        m.colorOrder = text(root["color_order"], "color_order");
        if (m.colorOrder != "RGB" && m.colorOrder != "BGR")
            bad("color_order", "\"RGB\" or \"BGR\"", root["color_order"]);
    }
    if (root.contains("class_names")) {
        const Json& names = root["class_names"];
        if (!names.is_array())
            bad("class_names", "an array of strings", names);
        for (const Json& n : names)
            m.classNames.push_back(text(n, "class_names"));
    }
    if (root.contains("suggested_layer"))
        m.suggestedLayer = text(root["suggested_layer"], "suggested_layer");
    if (root.contains("task"))
        m.task = text(root["task"], "task");
    if (root.contains("description"))
        m.description = text(root["description"], "description");
    if (root.contains("inputs")) {
        const Json& inputs = root["inputs"];
        if (!inputs.is_array() || inputs.empty())
            bad("inputs", "an array of objects with a \"name\"", inputs);
        for (const Json& i : inputs) {
            if (i.is_string()) {
                m.inputNames.push_back(i.get<std::string>());
                continue;
            }
            if (!i.is_object() || !i.contains("name") || !i["name"].is_string() || i["name"].get<std::string>().empty())
                bad("inputs", "an array of objects with a \"name\"", inputs);
            m.inputNames.push_back(i["name"].get<std::string>());
        }
    }
    if (root.contains("frames")) {
        const Json& f = root["frames"];
        if (!f.is_number_integer() || f.get<int64_t>() < 1 || f.get<int64_t>() > 64)
            bad("frames", "a whole number of frames from 1 to 64", f);
        m.frames = f.get<int64_t>();
    }
    if (root.contains("frame_layout")) {
        m.frameLayout = text(root["frame_layout"], "frame_layout");
        if (m.frameLayout != "channels" && m.frameLayout != "time")
            bad("frame_layout", "\"channels\" or \"time\"", root["frame_layout"]);
    }
    if (root.contains("roi_input"))
        m.roiInput = text(root["roi_input"], "roi_input");
    if (m.frames > 0 && !m.inputNames.empty() && int64_t(m.inputNames.size()) != m.frames)
        throw std::runtime_error("'frames' (" + std::to_string(m.frames) + ") and 'inputs' (" +
                                 std::to_string(m.inputNames.size()) + " names) disagree");
    return m;
}

Json ModelMetadata::toJson() const {
    Json j = Json::object();
    j["from_file"] = fromFile;
    j["input_size"] = inputSize ? Json::array({(*inputSize)[0], (*inputSize)[1]}) : Json();
    j["mean"] = Json::array({mean[0], mean[1], mean[2]});
    j["std"] = Json::array({std[0], std[1], std[2]});
    j["color_order"] = colorOrder;
    j["class_names"] = classNames;
    j["suggested_layer"] = suggestedLayer;
    j["task"] = task;
    j["description"] = description;
    if (!inputNames.empty())
        j["inputs"] = inputNames;
    if (frames > 0)
        j["frames"] = frames;
    if (!frameLayout.empty())
        j["frame_layout"] = frameLayout;
    if (!roiInput.empty())
        j["roi_input"] = roiInput;
    return j;
}

} // namespace deformscope::model
