#include "core/model/metadata.h"

#include "core/common/json.h"

#include <stdexcept>

namespace deformscope::model {
namespace {

std::array<double, 3> triple(const common::Json& j, const char* key) {
    if (!j.isArray() || j.size() != 3)
        throw std::runtime_error(std::string("'") + key + "' must be an array of 3 numbers");
    return {j.at(0).asDouble(), j.at(1).asDouble(), j.at(2).asDouble()};
}

} // namespace

ModelMetadata ModelMetadata::parse(const std::string& jsonText) {
    const common::Json root = common::Json::parse(jsonText);
    if (!root.isObject())
        throw std::runtime_error("the top level must be a JSON object");
    ModelMetadata m;
    m.fromFile = true;
    if (const common::Json* size = root.find("input_size")) {
        if (!size->isArray() || size->size() != 2 || size->at(0).asInt() <= 0 || size->at(1).asInt() <= 0)
            throw std::runtime_error("'input_size' must be [height, width] with positive integers");
        m.inputSize = std::array<int64_t, 2>{size->at(0).asInt(), size->at(1).asInt()};
    }
    if (const common::Json* mean = root.find("mean"))
        m.mean = triple(*mean, "mean");
    if (const common::Json* sd = root.find("std")) {
        m.std = triple(*sd, "std");
        for (double v : m.std)
            if (!(v > 0))
                throw std::runtime_error("'std' values must be positive");
    }
    if (const common::Json* order = root.find("color_order")) {
        m.colorOrder = order->asString();
        if (m.colorOrder != "RGB" && m.colorOrder != "BGR")
            throw std::runtime_error("'color_order' must be \"RGB\" or \"BGR\", got \"" + m.colorOrder + "\"");
    }
    if (const common::Json* names = root.find("class_names")) {
        if (!names->isArray())
            throw std::runtime_error("'class_names' must be an array of strings");
        for (size_t i = 0; i < names->size(); ++i)
            m.classNames.push_back(names->at(i).asString());
    }
    if (const common::Json* layer = root.find("suggested_layer"))
        m.suggestedLayer = layer->asString();
    if (const common::Json* task = root.find("task"))
        m.task = task->asString();
    if (const common::Json* d = root.find("description"))
        m.description = d->asString();
    return m;
}

common::Json ModelMetadata::toJson() const {
    using common::Json;
    Json j = Json::object();
    j["from_file"] = Json(fromFile);
    if (inputSize) {
        Json s = Json::array();
        s.push_back(Json((*inputSize)[0]));
        s.push_back(Json((*inputSize)[1]));
        j["input_size"] = s;
    } else {
        j["input_size"] = Json();
    }
    Json mn = Json::array(), sd = Json::array();
    for (int c = 0; c < 3; ++c) {
        mn.push_back(Json(mean[c]));
        sd.push_back(Json(std[c]));
    }
    j["mean"] = mn;
    j["std"] = sd;
    j["color_order"] = Json(colorOrder);
    Json names = Json::array();
    for (const std::string& n : classNames)
        names.push_back(Json(n));
    j["class_names"] = names;
    j["suggested_layer"] = Json(suggestedLayer);
    j["task"] = Json(task);
    j["description"] = Json(description);
    return j;
}

} // namespace deformscope::model
