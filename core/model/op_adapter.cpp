#include "core/model/op_adapter.h"

#include "core/common/json_file.h"
#include "core/model/metadata.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <stdexcept>

namespace deformscope::model {
namespace {

int position(const nlohmann::json& j, const char* key, int fallback, const std::string& where) {
    if (!j.contains(key))
        return fallback;
    const auto& v = j.at(key);
    if (v.is_null())
        return -1;
    if (!v.is_number_integer() || v.get<int>() < 0)
        throw std::runtime_error(where + ": \"" + key + "\" must be an argument position (a whole number >= 0) or null");
    return v.get<int>();
}

std::vector<int> positions(const nlohmann::json& j, const char* key, const std::string& where) {
    if (!j.contains(key))
        return {};
    const auto& v = j.at(key);
    std::vector<int> out;
    if (v.is_number_integer())
        out.push_back(v.get<int>());
    else if (v.is_array() && (v.size() == 1 || v.size() == 2))
        for (const auto& x : v) {
            if (!x.is_number_integer())
                throw std::runtime_error(where + ": \"" + key + "\" must list argument positions");
            out.push_back(x.get<int>());
        }
    else
        throw std::runtime_error(where + ": \"" + key +
                                 "\" must be one argument position (an int or int[2] argument) or two (two int arguments)");
    for (int p : out)
        if (p < 0)
            throw std::runtime_error(where + ": \"" + key + "\" positions must be >= 0");
    return out;
}

} // namespace

OpAdapter OpAdapter::fromJson(const nlohmann::json& j, const std::string& where) {
    if (!j.is_object() || !j.contains("op") || !j.at("op").is_string() ||
        j.at("op").get<std::string>().find("::") == std::string::npos)
        throw std::runtime_error(where + ": each custom_ops entry needs \"op\": \"namespace::name\"");
    OpAdapter a;
    a.op = j.at("op").get<std::string>();
    const std::string at = where + " (custom op " + a.op + ")";
    a.input = position(j, "input", 0, at);
    a.weight = position(j, "weight", 1, at);
    a.offset = position(j, "offset", 2, at);
    a.mask = position(j, "mask", -1, at);
    if (a.input < 0 || a.weight < 0 || a.offset < 0)
        throw std::runtime_error(at + ": \"input\", \"weight\" and \"offset\" are required argument positions");
    const std::string layout = j.value("offset_layout", std::string("torchvision"));
    if (layout != "torchvision" && layout != "planar")
        throw std::runtime_error(at + ": \"offset_layout\" must be \"torchvision\" (y, x per tap) or \"planar\" "
                                      "(all rows, then all columns), not \"" + layout + "\"");
    a.planar = layout == "planar";
    a.stride = positions(j, "stride", at);
    a.padding = positions(j, "padding", at);
    a.dilation = positions(j, "dilation", at);
    a.groups = position(j, "groups", -1, at);
    a.offsetGroups = position(j, "offset_groups", -1, at);
    return a;
}

namespace {

// Adds the adapters under "custom_ops" of a deformscope.json object (a side file's or
// the model's); an operator already declared keeps its first adapter.
void addAdapters(OpDeclarations& d, const nlohmann::json& j, const std::string& where) {
    if (!j.is_object() || !j.contains("custom_ops"))
        return;
    if (!j.at("custom_ops").is_array())
        throw std::runtime_error(where + ": \"custom_ops\" must be a list of adapters");
    for (const auto& e : j.at("custom_ops")) {
        OpAdapter a = OpAdapter::fromJson(e, where);
        bool known = false;
        for (const OpAdapter& x : d.adapters)
            known = known || x.op == a.op; // the side file's wins
        if (!known)
            d.adapters.push_back(std::move(a));
    }
}

} // namespace

std::string sideFileOf(const std::string& modelPath) {
    std::filesystem::path p(modelPath);
    return (p.parent_path() / (p.stem().string() + ".deformscope.json")).string();
}

OpDeclarations readSideFile(const std::string& modelPath) {
    OpDeclarations d;
    const std::string side = sideFileOf(modelPath);
    std::error_code ec;
    if (!std::filesystem::exists(side, ec))
        return d;
    d.sideFile = side;
    common::Json j;
    try {
        j = common::readJsonFile(side);
    } catch (const std::exception& e) {
        throw std::runtime_error(side + ": " + e.what());
    }
    if (!j.is_object())
        throw std::runtime_error(side + ": expected a JSON object");
    if (j.contains("libraries")) {
        const auto& libs = j.at("libraries");
        if (!libs.is_array())
            throw std::runtime_error(side + ": \"libraries\" must be a list of shared-library paths");
        for (const auto& l : libs) {
            if (!l.is_string())
                throw std::runtime_error(side + ": \"libraries\" must be a list of shared-library paths");
            std::filesystem::path p(l.get<std::string>());
            if (p.is_relative())
                p = std::filesystem::path(side).parent_path() / p;
            d.libraries.push_back(p.string());
        }
    }
    addAdapters(d, nlohmann::json(j), side);
    if (ModelMetadata::holdsAny(j))
        d.sideMetadata = j.dump();
    return d;
}

void addEmbeddedAdapters(OpDeclarations& d, const std::string& embeddedJson, const std::string& where) {
    if (embeddedJson.empty())
        return;
    const auto j = nlohmann::json::parse(embeddedJson, nullptr, false);
    if (!j.is_discarded())
        addAdapters(d, j, where);
}

} // namespace deformscope::model
