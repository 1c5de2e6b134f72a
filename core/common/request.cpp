#include "core/common/request.h"

#include "core/common/request_text.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace deformscope::common {

using detail::number;
using detail::shortest;
using detail::splitOn;

namespace {
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

namespace {

// Reads a comma-separated list of names, setting the flag of each listed one;
// false (flags unspecified) when a name is not in `names`.
bool readNames(std::string_view text, std::initializer_list<std::pair<std::string_view, bool*>> names) {
    for (std::string_view w : splitOn(text, ',')) {
        auto it = std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.first == w; });
        if (it == names.end())
            return false;
        *it->second = true;
    }
    return true;
}

// The names whose flag is on, comma-separated, in the given order.
std::string listNames(std::initializer_list<std::pair<const char*, bool>> names) {
    std::string s;
    for (const auto& [n, on] : names)
        if (on) {
            if (!s.empty())
                s += ',';
            s += n;
        }
    return s;
}

} // namespace

std::optional<Analyses> Analyses::parse(std::string_view text) {
    Analyses a{false, false, false, Kernel::Off, false};
    bool kernel = false;
    if (!readNames(text, {{"sampling", &a.sampling}, {"erf", &a.erf}, {"saliency", &a.saliency}, {"kernel", &kernel},
                          {"motion", &a.motion}}))
        return std::nullopt;
    a.kernel = kernel ? Kernel::Required : Kernel::Off;
    return a;
}

std::string Analyses::toString() const {
    return listNames({{"sampling", sampling}, {"erf", erf}, {"saliency", saliency}, {"kernel", kernel == Kernel::Required},
                      {"motion", motion}});
}

std::optional<Overlays> Overlays::parse(std::string_view text) {
    Overlays o{false, false, false, false, false};
    if (!readNames(text, {{"sampling", &o.sampling}, {"offsets", &o.offsets}, {"modulation", &o.modulation},
                          {"erf", &o.erf}, {"saliency", &o.saliency}}))
        return std::nullopt;
    return o;
}

std::string Overlays::toString() const {
    return listNames({{"sampling", sampling}, {"offsets", offsets}, {"modulation", modulation}, {"erf", erf},
                      {"saliency", saliency}});
}

const char* name(Grid grid) { return grid == Grid::Input ? "input" : "original"; }

const char* name(OffsetReading reading) { return reading == OffsetReading::Nearest ? "nearest" : "bilinear"; }
const char* name(TraceThrough through) { return through == TraceThrough::All ? "all" : "deformable"; }

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
    if (!what.sampling && !what.erf && !what.saliency && what.kernel == Analyses::Kernel::Off && !what.motion)
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
    if (!(motionAlarmPx > 0 && motionAlarmPx < 1e6))
        problem("--motion-alarm-px", shortest(motionAlarmPx), "a number of pixels above 0");
    if (!propagateTruth.empty() && propagate.empty())
        problem("--propagate-truth", propagateTruth, "--propagate FILE as well (the label to carry)");
    // A box (the object region's, the RoI's): four finite numbers, not empty.
    auto boxProblems = [&](const char* option, const Box& b) {
        const std::string text = shortest(b.x0) + "," + shortest(b.y0) + "," + shortest(b.x1) + "," + shortest(b.y1);
        if (!(std::isfinite(b.x0) && std::isfinite(b.y0) && std::isfinite(b.x1) && std::isfinite(b.y1)))
            problem(option, text, "four finite numbers x0,y0,x1,y1");
        else if (!(b.x1 > b.x0 && b.y1 > b.y0))
            problem(option, text, "x0,y0,x1,y1 with x1 > x0 and y1 > y0");
    };
    if (object.kind == ObjectRegion::Kind::Box)
        boxProblems("--object", object.box);
    if (roi)
        boxProblems("--roi", *roi);
    if (object.kind == ObjectRegion::Kind::Mask && object.maskFile.empty())
        problem("--object-mask", "", "a mask image file");
    if (inputSize && ((*inputSize)[0] < 1 || (*inputSize)[1] < 1))
        problem("--input-size", std::to_string((*inputSize)[0]) + " " + std::to_string((*inputSize)[1]),
                "two whole numbers H W ≥ 1");
    if (device.kind == DeviceSpec::Kind::Cuda && device.index < -1)
        problem("--device", device.toString(), DeviceSpec::kFormat);
    return problems;
}

} // namespace deformscope::common
