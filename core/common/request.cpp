#include "core/common/request.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

namespace deformscope::common {

namespace {

using Json = nlohmann::ordered_json;

std::vector<std::string_view> splitOn(std::string_view text, char sep) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
        const size_t end = text.find(sep, start);
        parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        if (end == std::string_view::npos)
            return parts;
        start = end + 1;
    }
}

// The whole of `text` as a number (no sign for unsigned reads, no spaces).
template <typename T>
std::optional<T> number(std::string_view text) {
    T v{};
    if (text.empty())
        return std::nullopt;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return v;
}

// "a,b,c": exactly `count` numbers.
std::optional<std::vector<double>> numbers(std::string_view text, size_t count) {
    std::vector<double> v;
    for (std::string_view p : splitOn(text, ',')) {
        const auto d = number<double>(p);
        if (!d)
            return std::nullopt;
        v.push_back(*d);
    }
    if (v.size() != count)
        return std::nullopt;
    return v;
}

// The shortest text that reads back as the same double.
std::string shortest(double v) {
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

constexpr const char* kColormaps[] = {"inferno", "viridis", "magma", "plasma", "gray", "coolwarm"};

} // namespace

// ---- value types -------------------------------------------------------------------

std::optional<Response> Response::parse(std::string_view text) {
    if (text == "sum")
        return Response{};
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos)
        return std::nullopt;
    const std::string_view head = text.substr(0, colon);
    const auto index = number<int64_t>(text.substr(colon + 1));
    if ((head != "channel" && head != "class") || !index || *index < 0)
        return std::nullopt;
    return Response{head == "channel" ? Kind::Channel : Kind::ClassScore, *index};
}

std::string Response::toString() const {
    switch (kind) {
    case Kind::Sum: return "sum";
    case Kind::Channel: return "channel:" + std::to_string(index);
    case Kind::ClassScore: return "class:" + std::to_string(index);
    }
    return "sum";
}

std::optional<Baseline> Baseline::parse(std::string_view text) {
    if (text == "zero")
        return Baseline{};
    if (text == "blur")
        return Baseline{Kind::Blur};
    if (text.substr(0, 5) == "blur:") {
        const auto sigma = number<double>(text.substr(5));
        if (sigma && *sigma > 0 && *sigma < 1e4)
            return Baseline{Kind::Blur, *sigma};
    }
    return std::nullopt;
}

std::string Baseline::toString() const {
    if (kind == Kind::Zero)
        return "zero";
    std::ostringstream s;
    s << "blur:" << sigma; // the form result.json has always had
    return s.str();
}

std::optional<DeviceSpec> DeviceSpec::parse(std::string_view text) {
    if (text == "cpu")
        return DeviceSpec{};
    if (text == "cuda")
        return DeviceSpec{Kind::Cuda, -1};
    if (text.substr(0, 5) == "cuda:")
        if (const auto i = number<int>(text.substr(5)); i && *i >= 0)
            return DeviceSpec{Kind::Cuda, *i};
    return std::nullopt;
}

std::string DeviceSpec::toString() const {
    if (kind == Kind::Cpu)
        return "cpu";
    return index < 0 ? "cuda" : "cuda:" + std::to_string(index);
}

std::optional<Analyses> Analyses::parse(std::string_view text) {
    Analyses a{false, false, false, Kernel::Off};
    for (std::string_view w : splitOn(text, ',')) {
        if (w == "sampling")
            a.sampling = true;
        else if (w == "erf")
            a.erf = true;
        else if (w == "saliency")
            a.saliency = true;
        else if (w == "kernel")
            a.kernel = Kernel::Required;
        else
            return std::nullopt;
    }
    return a;
}

std::string Analyses::toString() const {
    std::string s;
    auto add = [&](bool on, const char* n) {
        if (on)
            s += (s.empty() ? "" : ",") + std::string(n);
    };
    add(sampling, "sampling");
    add(erf, "erf");
    add(saliency, "saliency");
    add(kernel == Kernel::Required, "kernel");
    return s;
}

std::optional<Overlays> Overlays::parse(std::string_view text) {
    Overlays o{false, false, false, false, false};
    for (std::string_view w : splitOn(text, ',')) {
        if (w == "sampling")
            o.sampling = true;
        else if (w == "offsets")
            o.offsets = true;
        else if (w == "modulation")
            o.modulation = true;
        else if (w == "erf")
            o.erf = true;
        else if (w == "saliency")
            o.saliency = true;
        else
            return std::nullopt;
    }
    return o;
}

std::string Overlays::toString() const {
    std::string s;
    auto add = [&](bool on, const char* n) {
        if (on)
            s += (s.empty() ? "" : ",") + std::string(n);
    };
    add(sampling, "sampling");
    add(offsets, "offsets");
    add(modulation, "modulation");
    add(erf, "erf");
    add(saliency, "saliency");
    return s;
}

const char* name(Grid grid) { return grid == Grid::Input ? "input" : "original"; }

const char* name(OffsetReading reading) { return reading == OffsetReading::Nearest ? "nearest" : "bilinear"; }

const char* name(Colormap colormap) { return kColormaps[static_cast<int>(colormap)]; }

std::optional<Colormap> parseColormap(std::string_view text) {
    for (int i = 0; i < int(std::size(kColormaps)); ++i)
        if (text == kColormaps[i])
            return static_cast<Colormap>(i);
    return std::nullopt;
}

std::string colormapNames() {
    std::string s;
    for (const char* n : kColormaps)
        s += (s.empty() ? "" : ", ") + std::string(n);
    return s;
}

// ---- validate ----------------------------------------------------------------------

std::vector<std::string> AnalysisRequest::validate() const {
    std::vector<std::string> problems;
    auto problem = [&](const std::string& option, const std::string& value, const std::string& expected) {
        problems.push_back(option + " '" + value + "': expected " + expected);
    };
    if (!what.sampling && !what.erf && !what.saliency && what.kernel == Analyses::Kernel::Off)
        problem("--what", what.toString(), Analyses::kFormat);
    if (at && !(std::isfinite(at->x) && std::isfinite(at->y)))
        problem("--pixel", shortest(at->x) + "," + shortest(at->y), "two finite numbers x,y");
    if (response.index < 0)
        problem("--response", response.toString(), Response::kFormat);
    if (levels < 1 || levels > 8)
        problem("--levels", std::to_string(levels), "a whole number from 1 to 8");
    if (!(epsilon >= 0 && epsilon < 10))
        problem("--epsilon", shortest(epsilon), "a number from 0 to 10");
    if (baseline.kind == Baseline::Kind::Blur && !(baseline.sigma > 0 && baseline.sigma < 1e4))
        problem("--baseline", baseline.toString(), Baseline::kFormat);
    if (forwards < 1 || forwards > 100000)
        problem("--forwards", std::to_string(forwards), "a whole number of masked forwards from 1 to 100000");
    if (batch < 0 || batch > 1024)
        problem("--batch", std::to_string(batch), "a whole number from 1 to 1024");
    if (minCell < 1)
        problem("--min-cell", std::to_string(minCell), "a whole number of pixels ≥ 1");
    if (object.kind == ObjectRegion::Kind::Box) {
        const Box& b = object.box;
        const std::string text = shortest(b.x0) + "," + shortest(b.y0) + "," + shortest(b.x1) + "," + shortest(b.y1);
        if (!(std::isfinite(b.x0) && std::isfinite(b.y0) && std::isfinite(b.x1) && std::isfinite(b.y1)))
            problem("--object", text, "four finite numbers x0,y0,x1,y1");
        else if (!(b.x1 > b.x0 && b.y1 > b.y0))
            problem("--object", text, "x0,y0,x1,y1 with x1 > x0 and y1 > y0");
    }
    if (object.kind == ObjectRegion::Kind::Mask && object.maskFile.empty())
        problem("--object-mask", "", "a mask image file");
    if (inputSize && ((*inputSize)[0] < 1 || (*inputSize)[1] < 1))
        problem("--input-size", std::to_string((*inputSize)[0]) + " " + std::to_string((*inputSize)[1]),
                "two whole numbers H W ≥ 1");
    if (device.kind == DeviceSpec::Kind::Cuda && device.index < -1)
        problem("--device", device.toString(), DeviceSpec::kFormat);
    return problems;
}

// ---- the field table ---------------------------------------------------------------

namespace {

// What a JSON value of the wrong kind is told.
std::string expectedType(const Json& j, const char* what) {
    return std::string("expected ") + what + ", got " + j.type_name();
}

// A field whose value is one word read by `parse` into member `M`, written
// as JSON by `write`.
template <typename T>
RequestField valueField(std::string option, std::string key, std::string valueName, std::string help,
                        T AnalysisRequest::*member, std::function<std::optional<T>(std::string_view)> parse,
                        std::function<Json(const T&)> write, std::string expected) {
    RequestField f;
    f.option = std::move(option);
    f.key = key;
    f.valueName = std::move(valueName);
    f.help = std::move(help);
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
    // JSON may write a whole number as 400.0.
    if (const auto d = number<double>(text); d && std::isfinite(*d) && *d == std::floor(*d) &&
                                              std::abs(*d) < 9e15)
        return static_cast<T>(*d);
    return std::nullopt;
}

// A boolean member set by a flag (`value` when the flag is given) and written
// to JSON under `key`.
RequestField flagField(std::string option, std::string key, std::string help, bool AnalysisRequest::*member,
                       bool value) {
    RequestField f;
    f.option = std::move(option);
    f.key = key;
    f.help = std::move(help);
    f.values = 0;
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

Json objectToJson(const ObjectRegion& o) {
    switch (o.kind) {
    case ObjectRegion::Kind::Auto: return "auto";
    case ObjectRegion::Kind::None: return "none";
    case ObjectRegion::Kind::Mask: return Json::object({{"mask", o.maskFile}});
    case ObjectRegion::Kind::Box: break;
    }
    return Json::object({{"box", Json::array({o.box.x0, o.box.y0, o.box.x1, o.box.y1})}, {"grid", name(o.box.grid)}});
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

std::vector<RequestField> makeFields() {
    std::vector<RequestField> fields;
    using R = AnalysisRequest;

    // What to compute. JSON: the three analyses as booleans (the keys sessions
    // have always had) and the kernel view's mode.
    {
        RequestField f;
        f.option = "--what";
        f.key = "what";
        f.valueName = "LIST";
        f.help = "the analyses: sampling, erf, saliency, kernel (default: the first three, and the kernel view "
                 "where the node has a Deformable Kernel layer at or below it)";
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
        RequestField f;
        f.option = "--pixel";
        f.key = "at";
        f.valueName = "x,y";
        f.help = "the node's position in the original image's pixels (default: the image's centre)";
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
        RequestField f;
        f.option = "--object";
        f.key = "object";
        f.valueName = "x0,y0,x1,y1";
        f.help = "the object box in original image pixels (edges) for the object metrics "
                 "(default: the image's <name>_mask.png when there is one)";
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
            if (o.is_object() && o.contains("box") && o["box"].is_array() && o["box"].size() == 4) {
                const auto grid = o.contains("grid") ? gridFromJson(o["grid"]) : std::optional<Grid>(Grid::Original);
                for (const Json& v : o["box"])
                    if (!v.is_number())
                        return expected;
                if (!grid)
                    return expected;
                const Json& b = o["box"];
                r.object = ObjectRegion{ObjectRegion::Kind::Box,
                                        Box{*grid, b[0].get<double>(), b[1].get<double>(), b[2].get<double>(), b[3].get<double>()},
                                        {}};
                return {};
            }
            return expected;
        };
        fields.push_back(std::move(f));
    }
    {
        // Command-line spellings of the object region (its JSON is the "object" field's).
        RequestField f;
        f.option = "--object-mask";
        f.valueName = "FILE";
        f.help = "the object as a mask image the size of the original image (nonzero = object)";
        f.read = [](R& r, const std::vector<std::string>& words) -> std::string {
            r.object = ObjectRegion{ObjectRegion::Kind::Mask, {}, words.at(0)};
            return {};
        };
        fields.push_back(std::move(f));
        RequestField none;
        none.option = "--no-object";
        none.help = "no object metrics, even when the image has a <name>_mask.png";
        none.values = 0;
        none.read = [](R& r, const std::vector<std::string>&) -> std::string {
            r.object = ObjectRegion{};
            r.object.kind = ObjectRegion::Kind::None;
            return {};
        };
        fields.push_back(std::move(none));
    }
    {
        RequestField f;
        f.option = "--input-size";
        f.key = "input_size";
        f.valueName = "H W";
        f.help = "resize the image to H x W for the model (default: the model's metadata size, else the image's own)";
        f.values = 2;
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
                                                json.contains("saliency") || json.contains("kernel"))
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
