// The request's field table: each setting's command-line option, JSON key,
// help and conversions (request.h's RequestField), and the request's JSON form.
#include "core/common/request.h"

#include "core/common/request_text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace deformscope::common {

using detail::number;
using detail::numbers;

namespace {

using Json = nlohmann::ordered_json;

// What a JSON value of the wrong kind is told.
std::string expectedType(const Json& j, const char* what) {
    return std::string("expected ") + what + ", got " + j.type_name();
}

// A field's names and help; `values` command-line words (0: a flag).
RequestField field(std::string option, std::string key, std::string valueName, std::string help, int values = 1) {
    RequestField f;
    f.option = std::move(option);
    f.key = std::move(key);
    f.valueName = std::move(valueName);
    f.help = std::move(help);
    f.values = values;
    return f;
}

// A field whose value is one word read by `parse` into member `M`, written
// as JSON by `write`.
template <typename T>
RequestField valueField(std::string option, std::string key, std::string valueName, std::string help,
                        T AnalysisRequest::*member, std::function<std::optional<T>(std::string_view)> parse,
                        std::function<Json(const T&)> write, std::string expected) {
    RequestField f = field(std::move(option), key, std::move(valueName), std::move(help));
    f.read = [member, parse, expected](AnalysisRequest& r, const std::vector<std::string>& words) -> std::string {
        const auto v = parse(words.at(0));
        if (!v)
            return expected;
        r.*member = *v;
        return {};
    };
    f.toJson = [member, write, key](const AnalysisRequest& r, Json& j) { j[key] = write(r.*member); };
    f.fromJson = [member, parse, key, expected](AnalysisRequest& r, const Json& json) -> std::string {
        // Numbers and booleans arrive as such; everything else as its text form.
        const Json& j = json.at(key);
        std::optional<T> v;
        if (j.is_string())
            v = parse(j.get<std::string>());
        else if (j.is_number() || j.is_boolean())
            v = parse(j.dump());
        if (!v)
            return "expected " + expected;
        r.*member = *v;
        return {};
    };
    return f;
}

template <typename T>
std::optional<T> wholeNumber(std::string_view text) {
    if (auto v = number<T>(text))
        return v;
    // JSON may write a whole number as 400.0 — or as 5000000000000000, beyond T: converting
    // that would be undefined (tools/fuzz found it), so it is refused like any bad value.
    if (const auto d = number<double>(text); d && std::isfinite(*d) && *d == std::floor(*d) && std::abs(*d) < 9e15 &&
                                              *d >= double(std::numeric_limits<T>::min()) &&
                                              *d <= double(std::numeric_limits<T>::max()))
        return static_cast<T>(*d);
    return std::nullopt;
}

// A boolean member set by a flag (`value` when the flag is given) and written
// to JSON under `key`.
RequestField flagField(std::string option, std::string key, std::string help, bool AnalysisRequest::*member,
                       bool value) {
    RequestField f = field(std::move(option), key, "", std::move(help), 0);
    f.read = [member, value](AnalysisRequest& r, const std::vector<std::string>&) -> std::string {
        r.*member = value;
        return {};
    };
    f.toJson = [member, key](const AnalysisRequest& r, Json& j) { j[key] = r.*member; };
    f.fromJson = [member, key](AnalysisRequest& r, const Json& json) -> std::string {
        const Json& j = json.at(key);
        if (!j.is_boolean())
            return expectedType(j, "true or false");
        r.*member = j.get<bool>();
        return {};
    };
    return f;
}

std::optional<Grid> gridFromJson(const Json& j) {
    if (!j.is_string())
        return std::nullopt;
    if (j.get<std::string>() == "original")
        return Grid::Original;
    if (j.get<std::string>() == "input")
        return Grid::Input;
    return std::nullopt;
}

// A box's JSON form (the object region's and the RoI's): {"box": [x0, y0, x1, y1], "grid": ...}.
Json boxToJson(const Box& b) {
    return Json::object({{"box", Json::array({b.x0, b.y0, b.x1, b.y1})}, {"grid", name(b.grid)}});
}
// The same read back (the grid defaults to the original image); nullopt when it is not one.
std::optional<Box> boxFromJson(const Json& o) {
    if (!o.is_object() || !o.contains("box") || !o["box"].is_array() || o["box"].size() != 4)
        return std::nullopt;
    for (const Json& v : o["box"])
        if (!v.is_number())
            return std::nullopt;
    const auto grid = o.contains("grid") ? gridFromJson(o["grid"]) : std::optional<Grid>(Grid::Original);
    if (!grid)
        return std::nullopt;
    const Json& b = o["box"];
    return Box{*grid, b[0].get<double>(), b[1].get<double>(), b[2].get<double>(), b[3].get<double>()};
}

Json objectToJson(const ObjectRegion& o) {
    switch (o.kind) {
    case ObjectRegion::Kind::Auto: return "auto";
    case ObjectRegion::Kind::None: return "none";
    case ObjectRegion::Kind::Mask: return Json::object({{"mask", o.maskFile}});
    case ObjectRegion::Kind::Box: break;
    }
    return boxToJson(o.box);
}

std::vector<RequestField> makeFields() {
    std::vector<RequestField> fields;
    using R = AnalysisRequest;

    // What to compute. JSON: the three analyses as booleans (the keys sessions
    // have always had) and the kernel view's mode.
    {
        RequestField f = field("--what", "what", "LIST",
                               "the analyses: sampling, erf, saliency, kernel, motion (default: the first three, and the "
                               "kernel view where the node has a Deformable Kernel layer at or below it; motion: a video "
                               "model's offsets read as motion)");
        f.read = [](R& r, const std::vector<std::string>& words) -> std::string {
            const auto a = Analyses::parse(words.at(0));
            if (!a)
                return Analyses::kFormat;
            r.what = *a;
            return {};
        };
        f.toJson = [](const R& r, Json& j) {
            j["sampling"] = r.what.sampling;
            j["erf"] = r.what.erf;
            j["saliency"] = r.what.saliency;
            j["kernel"] = r.what.kernel == Analyses::Kernel::Off        ? "off"
                          : r.what.kernel == Analyses::Kernel::Required ? "required"
                                                                         : "if_available";
            j["motion"] = r.what.motion;
        };
        f.fromJson = [](R& r, const Json& j) -> std::string {
            std::string problem;
            auto flag = [&](const char* key, bool& out) {
                if (!j.contains(key))
                    return;
                if (j.at(key).is_boolean())
                    out = j.at(key).get<bool>();
                else
                    problem += std::string(problem.empty() ? "" : "; ") + key + ": " + expectedType(j.at(key), "true or false");
            };
            flag("sampling", r.what.sampling);
            flag("erf", r.what.erf);
            flag("saliency", r.what.saliency);
            flag("motion", r.what.motion);
            if (j.contains("kernel")) {
                const Json& k = j.at("kernel");
                const std::string v = k.is_string() ? k.get<std::string>() : "";
                if (v == "off")
                    r.what.kernel = Analyses::Kernel::Off;
                else if (v == "if_available")
                    r.what.kernel = Analyses::Kernel::IfAvailable;
                else if (v == "required")
                    r.what.kernel = Analyses::Kernel::Required;
                else
                    problem += std::string(problem.empty() ? "" : "; ") + "kernel: expected off, if_available or required";
            }
            return problem;
        };
        fields.push_back(std::move(f));
    }
    fields.push_back(valueField<std::string>(
        "--layer", "layer", "NAME", "the node's layer (default: the model's suggested layer)", &R::layer,
        [](std::string_view t) { return std::optional<std::string>(std::string(t)); },
        [](const std::string& s) { return Json(s); }, "a layer name"));
    {
        // --pixel x,y is on the original image; the GUI's clicks are on the input grid.
        RequestField f = field("--pixel", "at", "x,y",
                               "the node's position in the original image's pixels (default: the image's centre)");
        f.read = [](R& r, const std::vector<std::string>& words) -> std::string {
            const auto p = numbers(words.at(0), 2);
            if (!p)
                return "2 comma-separated numbers";
            r.at = Location{Grid::Original, (*p)[0], (*p)[1]};
            return {};
        };
        f.toJson = [](const R& r, Json& j) {
            j["at"] = r.at ? Json::object({{"x", r.at->x}, {"y", r.at->y}, {"grid", name(r.at->grid)}}) : Json();
        };
        f.fromJson = [](R& r, const Json& j) -> std::string {
            const Json& a = j.at("at");
            if (a.is_null()) {
                r.at.reset();
                return {};
            }
            const auto grid = a.is_object() && a.contains("grid") ? gridFromJson(a["grid"]) : std::optional<Grid>(Grid::Original);
            if (!a.is_object() || !a.contains("x") || !a.contains("y") || !a["x"].is_number() || !a["y"].is_number() || !grid)
                return "expected {\"x\": X, \"y\": Y, \"grid\": \"original\" or \"input\"} or null";
            r.at = Location{*grid, a["x"].get<double>(), a["y"].get<double>()};
            return {};
        };
        fields.push_back(std::move(f));
    }
    {
        RequestField f = field("--roi", "roi", "x0,y0,x1,y1",
                               "RoI-head models: the region of interest, original image pixels (edges) (default: "
                               "the whole image)");
        f.read = [](R& r, const std::vector<std::string>& words) -> std::string {
            const auto b = numbers(words.at(0), 4);
            if (!b)
                return "4 comma-separated numbers";
            r.roi = Box{Grid::Original, (*b)[0], (*b)[1], (*b)[2], (*b)[3]};
            return {};
        };
        f.toJson = [](const R& r, Json& j) { j["roi"] = r.roi ? boxToJson(*r.roi) : Json(); };
        f.fromJson = [](R& r, const Json& j) -> std::string {
            const Json& o = j.at("roi");
            if (o.is_null()) {
                r.roi.reset();
                return {};
            }
            const auto box = boxFromJson(o);
            if (!box)
                return "expected null or {\"box\": [x0, y0, x1, y1], \"grid\": \"original\" or \"input\"}";
            r.roi = *box;
            return {};
        };
        fields.push_back(std::move(f));
    }
    {
        RequestField f = field("--bin", "bin", "i,j",
                               "RoI-head models: the bin of the RoI pooling layer that is the node, row i and column "
                               "j (default: the whole RoI, every bin)");
        f.read = [](R& r, const std::vector<std::string>& words) -> std::string {
            const auto b = numbers(words.at(0), 2);
            if (!b || (*b)[0] != std::floor((*b)[0]) || (*b)[1] != std::floor((*b)[1]) || (*b)[0] < 0 || (*b)[1] < 0 ||
                (*b)[0] > 1e6 || (*b)[1] > 1e6)
                return "2 comma-separated whole numbers ≥ 0";
            r.bin = std::array<int64_t, 2>{int64_t((*b)[0]), int64_t((*b)[1])};
            return {};
        };
        f.toJson = [](const R& r, Json& j) { j["bin"] = r.bin ? Json::array({(*r.bin)[0], (*r.bin)[1]}) : Json(); };
        f.fromJson = [](R& r, const Json& j) -> std::string {
            const Json& b = j.at("bin");
            if (b.is_null()) {
                r.bin.reset();
                return {};
            }
            if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
                b[0].get<int64_t>() < 0 || b[1].get<int64_t>() < 0)
                return "expected null or [i, j] (whole numbers ≥ 0)";
            r.bin = std::array<int64_t, 2>{b[0].get<int64_t>(), b[1].get<int64_t>()};
            return {};
        };
        fields.push_back(std::move(f));
    }
    fields.push_back(valueField<Response>(
        "--response", "response", "R", "what the node responds with: sum, channel:N or class:K", &R::response,
        &Response::parse, [](const Response& v) { return Json(v.toString()); }, Response::kFormat));
    fields.push_back(valueField<int>(
        "--levels", "levels", "N", "sampling levels to trace (1 to 8)", &R::levels, &wholeNumber<int>,
        [](const int& v) { return Json(v); }, "a whole number from 1 to 8"));
    fields.push_back(valueField<OffsetReading>(
        "--reading", "offset_reading", "MODE", "how offsets are read at a point: bilinear or nearest", &R::reading,
        [](std::string_view t) -> std::optional<OffsetReading> {
            if (t == "nearest")
                return OffsetReading::Nearest;
            if (t == "bilinear")
                return OffsetReading::Bilinear;
            return std::nullopt;
        },
        [](const OffsetReading& v) { return Json(name(v)); }, "nearest or bilinear"));
    fields.push_back(valueField<TraceThrough>(
        "--through", "through", "LAYERS",
        "which layers the sampling trace spawns points at: all (every k×k conv on the way) or deformable (the "
        "deformable layers and samplers only, as the DCN papers draw it)",
        &R::through,
        [](std::string_view t) -> std::optional<TraceThrough> {
            if (t == "all")
                return TraceThrough::All;
            if (t == "deformable")
                return TraceThrough::Deformable;
            return std::nullopt;
        },
        [](const TraceThrough& v) { return Json(name(v)); }, "all or deformable"));
    fields.push_back(flagField("--signed", "signed_erf", "the signed ERF (sum over colours) instead of magnitudes",
                               &R::signedErf, true));
    fields.push_back(valueField<double>(
        "--epsilon", "epsilon", "E", "the saliency region's relative error bound (0 to 10)", &R::epsilon,
        &number<double>, [](const double& v) { return Json(v); }, "a number from 0 to 10"));
    fields.push_back(valueField<Baseline>(
        "--baseline", "baseline", "B", "what replaces the image outside the region: zero, blur or blur:SIGMA",
        &R::baseline, &Baseline::parse, [](const Baseline& v) { return Json(v.toString()); }, Baseline::kFormat));
    fields.push_back(valueField<int64_t>(
        "--forwards", "forwards", "N", "the saliency search's budget of masked forwards (1 to 100000)", &R::forwards,
        &wholeNumber<int64_t>, [](const int64_t& v) { return Json(v); },
        "a whole number of masked forwards from 1 to 100000"));
    fields.push_back(valueField<int64_t>(
        "--batch", "batch", "B", "masks per forward in the saliency search (1 to 1024; default: by device)",
        &R::batch, &wholeNumber<int64_t>, [](const int64_t& v) { return Json(v); }, "a whole number from 1 to 1024"));
    fields.push_back(valueField<int64_t>(
        "--min-cell", "min_cell", "PX", "the saliency refinement's smallest cell side, pixels (≥ 1)", &R::minCell,
        &wholeNumber<int64_t>, [](const int64_t& v) { return Json(v); }, "a whole number of pixels ≥ 1"));
    {
        RequestField f = field("--object", "object", "x0,y0,x1,y1",
                               "the object box in original image pixels (edges) for the object metrics (default: the "
                               "image's <name>_mask.png when there is one)");
        f.read = [](R& r, const std::vector<std::string>& words) -> std::string {
            const auto b = numbers(words.at(0), 4);
            if (!b)
                return "4 comma-separated numbers";
            r.object.kind = ObjectRegion::Kind::Box;
            r.object.box = Box{Grid::Original, (*b)[0], (*b)[1], (*b)[2], (*b)[3]};
            return {};
        };
        f.toJson = [](const R& r, Json& j) { j["object"] = objectToJson(r.object); };
        f.fromJson = [](R& r, const Json& j) -> std::string {
            const Json& o = j.at("object");
            const char* expected = "expected \"auto\", \"none\", {\"mask\": FILE} or {\"box\": [x0, y0, x1, y1], "
                                   "\"grid\": \"original\" or \"input\"}";
            if (o.is_string() && (o.get<std::string>() == "auto" || o.get<std::string>() == "none")) {
                r.object = ObjectRegion{};
                r.object.kind = o.get<std::string>() == "auto" ? ObjectRegion::Kind::Auto : ObjectRegion::Kind::None;
                return {};
            }
            if (o.is_object() && o.contains("mask") && o["mask"].is_string()) {
                r.object = ObjectRegion{ObjectRegion::Kind::Mask, {}, o["mask"].get<std::string>()};
                return {};
            }
            if (const auto box = boxFromJson(o)) {
                r.object = ObjectRegion{ObjectRegion::Kind::Box, *box, {}};
                return {};
            }
            return expected;
        };
        fields.push_back(std::move(f));
    }
    auto textField = [](std::string option, std::string key, std::string valueName, std::string help,
                        std::string AnalysisRequest::*member) {
        return valueField<std::string>(
            std::move(option), std::move(key), std::move(valueName), std::move(help), member,
            [](std::string_view t) { return std::optional<std::string>(std::string(t)); },
            [](const std::string& s) { return Json(s); }, "text");
    };
    fields.push_back(textField("--motion-layer", "motion_layer", "NAME",
                               "--what motion: the alignment layer whose offsets are read as motion (default: the last)",
                               &R::motionLayer));
    fields.push_back(valueField<double>(
        "--motion-alarm-px", "motion_alarm_px", "PX",
        "--what motion: the alarm threshold on the mean offset magnitude, pixels (BasicSR warns above 50)",
        &R::motionAlarmPx, &number<double>, [](const double& v) { return Json(v); }, "a number of pixels above 0"));
    fields.push_back(textField("--true-motion", "true_motion", "FILE",
                               "--what motion: the true motion, a [2, H, W] .npy (dx, dy) on the model's input grid",
                               &R::trueMotion));
    fields.push_back(textField("--propagate", "propagate", "FILE",
                               "a label of the reference frame to carry to the support frame: a mask image, or a JSON "
                               "file {\"keypoints\": [[x, y], ...]} (original image pixels)",
                               &R::propagate));
    fields.push_back(textField("--propagate-truth", "propagate_truth", "FILE",
                               "the support frame's own label (same kind as --propagate) to score the propagation",
                               &R::propagateTruth));
    {
        // Command-line spellings of the object region (its JSON is the "object" field's).
        RequestField f = field("--object-mask", "", "FILE",
                               "the object as a mask image the size of the original image (nonzero = object)");
        f.read = [](R& r, const std::vector<std::string>& words) -> std::string {
            r.object = ObjectRegion{ObjectRegion::Kind::Mask, {}, words.at(0)};
            return {};
        };
        fields.push_back(std::move(f));
        RequestField none = field("--no-object", "", "", "no object metrics, even when the image has a <name>_mask.png", 0);
        none.read = [](R& r, const std::vector<std::string>&) -> std::string {
            r.object = ObjectRegion{};
            r.object.kind = ObjectRegion::Kind::None;
            return {};
        };
        fields.push_back(std::move(none));
    }
    {
        RequestField f = field("--input-size", "input_size", "H W",
                               "resize the image to H x W for the model (default: the model's metadata size, else the "
                               "image's own)",
                               2);
        f.read = [](R& r, const std::vector<std::string>& words) -> std::string {
            const auto h = number<int64_t>(words.at(0)), w = number<int64_t>(words.at(1));
            if (!h || !w)
                return "two whole numbers H W";
            r.inputSize = std::array<int64_t, 2>{*h, *w};
            return {};
        };
        f.toJson = [](const R& r, Json& j) {
            j["input_size"] = r.inputSize ? Json::array({(*r.inputSize)[0], (*r.inputSize)[1]}) : Json();
        };
        f.fromJson = [](R& r, const Json& j) -> std::string {
            const Json& s = j.at("input_size");
            if (s.is_null()) {
                r.inputSize.reset();
                return {};
            }
            if (!s.is_array() || s.size() != 2 || !s[0].is_number_integer() || !s[1].is_number_integer())
                return "expected [H, W] (whole numbers) or null";
            r.inputSize = std::array<int64_t, 2>{s[0].get<int64_t>(), s[1].get<int64_t>()};
            return {};
        };
        fields.push_back(std::move(f));
    }
    fields.push_back(valueField<DeviceSpec>(
        "--device", "device", "D", "where to run: cpu, cuda or cuda:N", &R::device, &DeviceSpec::parse,
        [](const DeviceSpec& v) { return Json(v.toString()); }, DeviceSpec::kFormat));
    fields.push_back(flagField("--no-figures", "figures", "write the data only, no figures", &R::figures, false));
    fields.push_back(valueField<Colormap>(
        "--colormap", "colormap", "NAME", "the heat maps' colour map: " + colormapNames(), &R::colormap,
        &parseColormap, [](const Colormap& v) { return Json(name(v)); }, "one of " + colormapNames()));
    fields.push_back(flagField("--log", "log_scale", "draw the ERF on a log scale", &R::logScale, true));
    fields.push_back(valueField<Overlays>(
        "--overlay", "overlays", "LIST",
        "what the figure draws: sampling, offsets, modulation, erf, saliency (default: sampling,erf,saliency)",
        &R::overlays, &Overlays::parse, [](const Overlays& v) { return Json(v.toString()); }, Overlays::kFormat));
    return fields;
}

} // namespace

const std::vector<RequestField>& requestFields() {
    static const std::vector<RequestField> fields = makeFields();
    return fields;
}

std::string readOption(AnalysisRequest& request, std::string_view option, const std::vector<std::string>& words) {
    std::string text;
    for (const std::string& w : words)
        text += (text.empty() ? "" : " ") + w;
    for (const RequestField& f : requestFields())
        if (f.option == option) {
            if (words.size() != size_t(f.values))
                return std::string(option) + " '" + text + "': expected " + std::to_string(f.values) + " value" +
                       (f.values == 1 ? "" : "s");
            AnalysisRequest attempt = request;
            if (const std::string why = f.read(attempt, words); !why.empty())
                return std::string(option) + " '" + text + "': expected " + why;
            request = std::move(attempt);
            return {};
        }
    return "unknown option '" + std::string(option) + "'";
}

Json toJson(const AnalysisRequest& request) {
    Json j = Json::object();
    for (const RequestField& f : requestFields())
        if (f.toJson)
            f.toJson(request, j);
    return j;
}

AnalysisRequest requestFromJson(const Json& json, const AnalysisRequest& base, std::vector<std::string>& problems) {
    AnalysisRequest r = base;
    if (!json.is_object()) {
        problems.push_back(std::string("the analysis settings: expected an object, got ") + json.type_name());
        return r;
    }
    for (const RequestField& f : requestFields()) {
        if (!f.fromJson)
            continue;
        // The "what" field reads several keys of its own; the others one key.
        const bool present = f.key == "what" ? (json.contains("sampling") || json.contains("erf") ||
                                                json.contains("saliency") || json.contains("kernel") ||
                                                json.contains("motion"))
                                             : json.contains(f.key);
        if (!present)
            continue;
        AnalysisRequest attempt = r;
        std::string why = f.fromJson(attempt, json);
        if (why.empty()) { // a value of the right kind can still be out of range
            const std::vector<std::string> now = attempt.validate(), was = r.validate();
            for (const std::string& p : now)
                if (std::find(was.begin(), was.end(), p) == was.end()) {
                    why = p;
                    break;
                }
        }
        if (!why.empty())
            problems.push_back((f.key == "what" ? std::string() : f.key + ": ") + why);
        else
            r = std::move(attempt);
    }
    return r;
}

} // namespace deformscope::common
