// analyze, compare, erf-average: the analyses of core/analysis from the command
// line, writing data (JSON, .npy, .csv) and, in builds with Qt, figures through
// ui/figure (PNG, SVG, PDF).
#include "app/cli/commands.h"
#include "app/cli/options.h"

#include "core/analysis/analysis.h"
#include "core/common/atomic_file.h"
#include "core/common/json.h"
#include "core/common/npy.h"
#include "core/model/model.h"

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/imaging/image.h"
#endif
#ifdef DEFORMSCOPE_WITH_FIGURES
#include "ui/analysis_figure/analysis_figure.h"
#endif

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <sstream>

namespace deformscope::cli {

namespace {

namespace fs = std::filesystem;
using analysis::AnalysisError;
using common::Json;

// Bad usage or input: exit code 2 with this message.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::stringstream in(s);
    std::string part;
    while (std::getline(in, part, sep))
        parts.push_back(part);
    return parts;
}

std::vector<double> numbers(const std::string& option, const std::string& text, size_t count) {
    std::vector<double> v;
    for (const std::string& p : split(text, ',')) {
        try {
            size_t used = 0;
            v.push_back(std::stod(p, &used));
            if (used != p.size())
                throw std::invalid_argument(p);
        } catch (const std::exception&) {
            throw UsageError(option + " '" + text + "': expected " + std::to_string(count) + " comma-separated numbers");
        }
    }
    if (v.size() != count)
        throw UsageError(option + " '" + text + "': expected " + std::to_string(count) + " comma-separated numbers");
    return v;
}

std::string stemOf(const std::string& path) { return fs::path(path).stem().string(); }

void writeText(const fs::path& path, const std::string& text) { common::writeFileAtomically(path.string(), text); }

void makeDirectory(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
        throw UsageError(dir.string() + ": cannot create the folder" + (ec ? " (" + ec.message() + ")" : ""));
}

// ---- settings shared by analyze and compare ---------------------------------------

struct Settings {
    std::vector<std::string> models;
    std::string image;
    std::string layer; // empty: the model's suggested layer
    std::optional<std::array<double, 2>> pixel; // original image x, y; default: the centre
    bool sampling = true, erf = true, saliency = true;
    analysis::Response response;
    analysis::SamplingOptions samplingOptions;
    analysis::ErfOptions erfOptions;
    analysis::SaliencyOptions saliencyOptions = [] {
        analysis::SaliencyOptions o;
        o.batchSize = 0; // by device
        return o;
    }();
    analysis::Baseline baseline;
    std::optional<std::array<double, 4>> objectBox; // original image x0, y0, x1, y1
    std::string objectMask;
    bool autoObject = true;
    std::optional<std::array<int64_t, 2>> inputSize;
    std::string device = "cpu";
    std::string out;
    bool figures = true;
    std::string colormap = "inferno";
    bool logScale = false;
};

const std::map<std::string, int> kAnalysisArity = {
    {"--model", 1},    {"--models", -1},     {"--image", 1},      {"--layer", 1},      {"--pixel", 1},
    {"--what", 1},     {"--response", 1},    {"--levels", 1},     {"--reading", 1},    {"--signed", 0},
    {"--epsilon", 1},  {"--baseline", 1},    {"--object", 1},     {"--object-mask", 1}, {"--no-object", 0},
    {"--input-size", 2}, {"--device", 1},    {"--out", 1},        {"--no-figures", 0}, {"--colormap", 1},
    {"--log", 0},      {"--min-cell", 1},    {"--batch", 1},      {"--forwards", 1}};

// parse() with one variadic option: "--models A B C" takes every following non-option.
std::string parseWithList(const std::vector<std::string>& args, Options& o) {
    std::map<std::string, int> arity;
    for (const auto& [k, v] : kAnalysisArity)
        if (v >= 0)
            arity[k] = v;
    std::vector<std::string> rest;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--models") {
            while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0)
                o.values["--models"].push_back(args[++i]);
            continue;
        }
        rest.push_back(args[i]);
    }
    return parse(rest, arity, o);
}

Settings settingsFrom(Options& o, bool compare) {
    Settings s;
    if (!o.positional.empty())
        throw UsageError("unexpected argument '" + o.positional[0] + "'");
    if (compare) {
        s.models = o.values["--models"];
        if (s.models.empty())
            throw UsageError("--models needs at least one model file");
    } else {
        if (!o.values.count("--model"))
            throw UsageError("--model is required");
        s.models = {o.values["--model"][0]};
    }
    for (const char* required : {"--image", "--out"})
        if (!o.values.count(required))
            throw UsageError(std::string(required) + " is required");
    s.image = o.values["--image"][0];
    s.out = o.values["--out"][0];
    auto value = [&](const char* k) -> const std::string* { return o.values.count(k) ? &o.values[k][0] : nullptr; };
    if (auto v = value("--layer"))
        s.layer = *v;
    if (auto v = value("--pixel")) {
        const auto p = numbers("--pixel", *v, 2);
        s.pixel = std::array<double, 2>{p[0], p[1]};
    }
    if (auto v = value("--what")) {
        s.sampling = s.erf = s.saliency = false;
        for (const std::string& w : split(*v, ',')) {
            if (w == "sampling")
                s.sampling = true;
            else if (w == "erf")
                s.erf = true;
            else if (w == "saliency")
                s.saliency = true;
            else
                throw UsageError("--what '" + *v + "': expected a comma-separated list of sampling, erf, saliency");
        }
    }
    try {
        if (auto v = value("--response"))
            s.response = analysis::Response::parse(*v);
        if (auto v = value("--baseline"))
            s.baseline = analysis::Baseline::parse(*v);
    } catch (const AnalysisError& e) {
        throw UsageError(e.what());
    }
    if (auto v = value("--levels")) {
        int64_t n = 0;
        if (!positiveInt(*v, n) || n > 8)
            throw UsageError("--levels '" + *v + "': expected a whole number from 1 to 8");
        s.samplingOptions.levels = int(n);
    }
    if (auto v = value("--reading")) {
        if (*v == "nearest")
            s.samplingOptions.reading = analysis::OffsetReading::Nearest;
        else if (*v == "bilinear")
            s.samplingOptions.reading = analysis::OffsetReading::Bilinear;
        else
            throw UsageError("--reading '" + *v + "': expected nearest or bilinear");
    }
    s.erfOptions.isSigned = o.flags.count("--signed") > 0;
    if (auto v = value("--epsilon")) {
        const double e = numbers("--epsilon", *v, 1)[0];
        if (!(e >= 0 && e < 10))
            throw UsageError("--epsilon '" + *v + "': expected a number from 0 to 10");
        s.saliencyOptions.epsilon = e;
    }
    if (auto v = value("--min-cell")) {
        int64_t n = 0;
        if (!positiveInt(*v, n))
            throw UsageError("--min-cell '" + *v + "': expected a whole number of pixels ≥ 1");
        s.saliencyOptions.minCell = n;
    }
    if (auto v = value("--batch")) {
        int64_t n = 0;
        if (!positiveInt(*v, n) || n > 1024)
            throw UsageError("--batch '" + *v + "': expected a whole number from 1 to 1024");
        s.saliencyOptions.batchSize = n;
    }
    if (auto v = value("--forwards")) {
        int64_t n = 0;
        if (!positiveInt(*v, n) || n > 100000)
            throw UsageError("--forwards '" + *v + "': expected a whole number of masked forwards from 1 to 100000");
        s.saliencyOptions.targetForwards = n;
        s.saliencyOptions.maxForwards = std::max(s.saliencyOptions.maxForwards, n);
    }
    if (auto v = value("--object")) {
        const auto b = numbers("--object", *v, 4);
        if (!(b[2] > b[0] && b[3] > b[1]))
            throw UsageError("--object '" + *v + "': expected x0,y0,x1,y1 with x1 > x0 and y1 > y0");
        s.objectBox = std::array<double, 4>{b[0], b[1], b[2], b[3]};
    }
    if (auto v = value("--object-mask"))
        s.objectMask = *v;
    s.autoObject = !o.flags.count("--no-object");
    if (o.values.count("--input-size")) {
        int64_t h = 0, w = 0;
        if (!positiveInt(o.values["--input-size"][0], h) || !positiveInt(o.values["--input-size"][1], w))
            throw UsageError("--input-size takes two whole numbers H W");
        s.inputSize = std::array<int64_t, 2>{h, w};
    }
    if (auto v = value("--device"))
        s.device = *v;
    s.figures = !o.flags.count("--no-figures");
    if (auto v = value("--colormap"))
        s.colormap = *v;
    s.logScale = o.flags.count("--log") > 0;
    return s;
}

std::string defaultLayer(const model::LoadedModel& m, const model::LayerGraph& g) {
    if (!m.metadata().suggestedLayer.empty() && g.find(m.metadata().suggestedLayer))
        return m.metadata().suggestedLayer;
    const model::Layer* best = nullptr;
    for (const model::Layer& l : g.layers())
        if (l.deformable() || (!best && l.kind == model::LayerKind::Conv))
            best = &l;
    for (const model::Layer& l : g.layers())
        if (!best || (!best->deformable() && l.kind == model::LayerKind::Conv))
            best = &l;
    if (!best)
        throw UsageError(m.path() + ": has no conv-like layer to analyse");
    return best->name;
}

#ifdef DEFORMSCOPE_WITH_IMAGING

// ---- one model on one image ----------------------------------------------------------

struct Run {
    std::string name;
    model::LoadedModel model;
    imaging::InputImage image;
    std::unique_ptr<analysis::AnalysisSession> session;
    analysis::Node node;
    std::array<double, 2> pixel{0, 0};   // original image x, y
    std::array<double, 2> inputXY{0, 0}; // the same on the input grid
    std::optional<analysis::SamplingTrace> sampling;
    std::optional<analysis::ErfResult> erf;
    std::optional<analysis::SaliencyResult> saliency;
    at::Tensor object; // [H, W] uint8 on the input grid, or undefined
    std::string objectSource;
    std::optional<analysis::ObjectMetrics> objectMetrics;
    std::vector<std::string> notes;
};

// The object region on the input grid, from --object, --object-mask or the image's <stem>_mask.png.
void findObject(Run& r, const Settings& s) {
    const int64_t H = r.image.height, W = r.image.width;
    if (s.objectBox) {
        const auto& b = *s.objectBox;
        const auto p0 = imaging::originalToInput(r.image, b[0] - 0.5, b[1] - 0.5);
        const auto p1 = imaging::originalToInput(r.image, b[2] - 0.5, b[3] - 0.5);
        const at::Tensor xs = at::arange(W, at::kDouble).view({1, W}), ys = at::arange(H, at::kDouble).view({H, 1});
        r.object = ((xs >= p0[0]) & (xs < p1[0]) & (ys >= p0[1]) & (ys < p1[1])).to(at::kByte);
        r.objectSource = "box";
        return;
    }
    std::string maskPath = s.objectMask;
    if (maskPath.empty() && s.autoObject) {
        const fs::path img(s.image);
        const fs::path sibling = img.parent_path() / (img.stem().string() + "_mask.png");
        if (fs::exists(sibling))
            maskPath = sibling.string();
    }
    if (maskPath.empty())
        return;
    at::Tensor ids;
    try {
        ids = imaging::readMask(maskPath);
    } catch (const std::exception& e) {
        throw UsageError(e.what());
    }
    if (ids.size(0) != r.image.originalHeight || ids.size(1) != r.image.originalWidth)
        throw UsageError(maskPath + ": the mask is " + std::to_string(ids.size(1)) + " x " + std::to_string(ids.size(0)) +
                         " but the image is " + std::to_string(r.image.originalWidth) + " x " +
                         std::to_string(r.image.originalHeight));
    // The object under the clicked pixel (its id); on background, every labelled pixel.
    const int64_t px = std::clamp<int64_t>(std::llround(r.pixel[0]), 0, ids.size(1) - 1);
    const int64_t py = std::clamp<int64_t>(std::llround(r.pixel[1]), 0, ids.size(0) - 1);
    const int64_t id = ids[py][px].item<int64_t>();
    at::Tensor object = id != 0 ? ids.eq(id) : ids.ne(0);
    r.objectSource = maskPath + (id != 0 ? " (id " + std::to_string(id) + ", under the node)" : " (every labelled pixel: the node is on background)");
    if (object.size(0) != H || object.size(1) != W)
        object = at::upsample_nearest2d(object.to(at::kFloat).view({1, 1, object.size(0), object.size(1)}), {H, W})[0][0].gt(0.5);
    r.object = object.to(at::kByte).contiguous();
}

Run analyseOne(const std::string& modelPath, const Settings& s, const c10::Device& device, std::ostream& err) {
    Run r;
    r.name = stemOf(modelPath);
    r.model = model::LoadedModel::load(modelPath, device);
    for (const std::string& n : r.model.notes())
        r.notes.push_back(n);
    imaging::Normalization norm;
    norm.mean = r.model.metadata().mean;
    norm.std = r.model.metadata().std;
    norm.bgr = r.model.metadata().colorOrder == "BGR";
    try {
        r.image = imaging::loadImage(s.image, s.inputSize ? s.inputSize : r.model.metadata().inputSize, norm);
    } catch (const std::exception& e) {
        throw UsageError(e.what());
    }
    r.session = std::make_unique<analysis::AnalysisSession>(r.model, r.image.tensor);
    const std::string layer = s.layer.empty() ? defaultLayer(r.model, r.session->graph()) : s.layer;
    if (!r.session->graph().find(layer))
        throw UsageError(modelPath + " has no layer '" + layer + "'; its layers are: " + r.session->graph().names());
    r.pixel = s.pixel.value_or(std::array<double, 2>{(double(r.image.originalWidth) - 1) / 2,
                                                       (double(r.image.originalHeight) - 1) / 2});
    if (r.pixel[0] < -0.5 || r.pixel[1] < -0.5 || r.pixel[0] > double(r.image.originalWidth) - 0.5 ||
        r.pixel[1] > double(r.image.originalHeight) - 0.5)
        throw UsageError("--pixel " + std::to_string(r.pixel[0]) + "," + std::to_string(r.pixel[1]) + " is outside " +
                         s.image + " (" + std::to_string(r.image.originalWidth) + " x " +
                         std::to_string(r.image.originalHeight) + ")");
    r.inputXY = imaging::originalToInput(r.image, r.pixel[0], r.pixel[1]);
    r.node = r.session->nodeAt(layer, r.inputXY[0], r.inputXY[1], s.response);
    try {
        r.session->validate(r.node);
    } catch (const AnalysisError& e) {
        throw UsageError(e.what());
    }
    if (s.sampling)
        r.sampling = r.session->sampling(r.node, s.samplingOptions);
    if (s.erf)
        r.erf = r.session->erf(r.node, s.erfOptions);
    if (s.saliency) {
        int64_t lastReported = -1;
        r.saliency = r.session->saliency(r.node, s.saliencyOptions, s.baseline, [&](const analysis::SaliencyProgress& p) {
            const int64_t pct = int64_t(p.fraction * 10);
            if (pct != lastReported) {
                lastReported = pct;
                err << "  " << r.name << " saliency: " << p.stage << ", " << p.forwards << " forwards\n";
            }
            return true;
        });
    }
    findObject(r, s);
    if (r.object.defined())
        r.objectMetrics = analysis::objectMetrics(r.object, r.erf ? &*r.erf : nullptr,
                                                  r.sampling ? &*r.sampling : nullptr,
                                                  r.saliency ? &*r.saliency : nullptr);
    return r;
}

// Writes result.json, erf.npy, saliency_mask.npy, sampling.csv into `dir`; returns the JSON.
Json writeData(const Run& r, const Settings& s, const fs::path& dir, const std::vector<std::string>& figures) {
    makeDirectory(dir);
    const model::Layer& l = r.session->layer(r.node.layer);
    const auto centre = r.session->nodeCentre(r.node);
    Json doc = Json::object();
    doc["model"] = r.model.path();
    doc["model_name"] = r.name;
    doc["image"] = s.image;
    doc["device"] = r.model.device().str();
    doc["original_size"] = Json::array({r.image.originalHeight, r.image.originalWidth});
    doc["input_size"] = Json::array({r.image.height, r.image.width});
    doc["coordinates"] = "x, y on the model's input grid (pixel centres at integers) unless named original";
    doc["pixel"] = Json::object({{"original_xy", Json::array({r.pixel[0], r.pixel[1]})},
                                 {"input_xy", Json::array({r.inputXY[0], r.inputXY[1]})}});
    Json node = analysis::toJson(r.node);
    node["kind"] = model::kindName(l.kind);
    node["centre_xy"] = Json::array({centre[0], centre[1]});
    node["feature_size"] = Json::array({l.feature_size[0], l.feature_size[1]});
    node["jump"] = Json::array({l.jump[0], l.jump[1]});
    node["rf"] = Json::array({l.rf[0], l.rf[1]});
    const at::Tensor response = r.session->response(r.node).to(at::kDouble);
    node["response_norm"] = response.norm().item<double>();
    if (response.numel() == 1)
        node["response_value"] = response.item<double>();
    doc["node"] = node;

    Json files = Json::array();
    if (r.sampling) {
        std::ostringstream csv;
        csv.precision(9);
        csv << "x,y,level,weight,inside,modulation,layer,parent,tap\n";
        const auto& layers = r.session->graph().layers();
        for (const analysis::SamplingPoint& p : r.sampling->points)
            csv << p.x << ',' << p.y << ',' << p.level << ',' << p.weight << ',' << (p.inside ? 1 : 0) << ','
                << p.modulation << ',' << layers[size_t(p.layer)].name << ',' << p.parent << ',' << p.tap << '\n';
        writeText(dir / "sampling.csv", csv.str());
        Json j = analysis::toJson(*r.sampling);
        j["file"] = "sampling.csv";
        j["levels_requested"] = s.samplingOptions.levels;
        j["reading"] = s.samplingOptions.reading == analysis::OffsetReading::Nearest ? "nearest" : "bilinear";
        j["weight_sum"] = [&] {
            double w = 0;
            for (const auto& p : r.sampling->points)
                w += p.weight;
            return w;
        }();
        doc["sampling"] = j;
        files.push_back("sampling.csv");
    }
    if (r.erf) {
        common::writeNpy((dir / "erf.npy").string(), r.erf->map.to(at::kFloat).contiguous());
        Json j = analysis::toJson(r.erf->metrics);
        j["file"] = "erf.npy";
        j["signed"] = s.erfOptions.isSigned;
        j["seconds"] = r.erf->seconds;
        j["sum"] = r.erf->map.to(at::kDouble).sum().item<double>();
        doc["erf"] = j;
        files.push_back("erf.npy");
    }
    if (r.saliency) {
        common::writeNpy((dir / "saliency_mask.npy").string(), r.saliency->mask.to(at::kByte).contiguous());
        Json j = analysis::toJson(*r.saliency);
        j["file"] = "saliency_mask.npy";
        j["baseline"] = s.baseline.toString();
        doc["saliency"] = j;
        files.push_back("saliency_mask.npy");
    }
    if (r.objectMetrics) {
        Json j = analysis::toJson(*r.objectMetrics);
        j["source"] = r.objectSource;
        doc["object"] = j;
    }
    Json figs = Json::array();
    for (const auto& f : figures)
        figs.push_back(f);
    doc["figures"] = figs;
    doc["files"] = files;
    Json notes = Json::array();
    for (const auto& n : r.notes)
        notes.push_back(n);
    for (const auto& n : r.session->capture().notes)
        notes.push_back(n);
    doc["notes"] = notes;
    writeText(dir / "result.json", doc.dump(2) + "\n");
    return doc;
}

std::string footerOf(const Run& r, const Settings& s) {
    std::ostringstream f;
    const auto c = r.session->nodeCentre(r.node);
    f << "node " << r.node.layer << " (" << r.node.fx << ", " << r.node.fy << "), centre (" << c[0] << ", " << c[1]
      << ") px, response " << r.node.response.toString();
    if (s.saliency)
        f << "; saliency ε = " << s.saliencyOptions.epsilon << ", baseline " << s.baseline.toString();
    if (s.sampling)
        f << "; " << s.samplingOptions.levels << " levels, "
          << (s.samplingOptions.reading == analysis::OffsetReading::Nearest ? "nearest" : "bilinear") << " offsets";
    return f.str();
}

// Writes <base>.png/.svg/.pdf; returns the file names written, or notes why not.
std::vector<std::string> writeFigures(const std::vector<const Run*>& runs, const Settings& s, const fs::path& dir,
                                      const std::string& base, const std::string& title, std::ostream& err) {
#ifdef DEFORMSCOPE_WITH_FIGURES
    (void)err;
    if (!s.figures)
        return {};
    figure::ensureGuiApplication();
    std::vector<figure::NodeResults> columns;
    for (const Run* r : runs) {
        figure::NodeResults c;
        c.title = r->name;
        c.session = r->session.get();
        c.node = r->node;
        c.sampling = r->sampling;
        c.erf = r->erf;
        c.saliency = r->saliency;
        c.object = r->object;
        c.objectMetrics = r->objectMetrics;
        c.colormap = s.colormap;
        c.logScale = s.logScale;
        columns.push_back(std::move(c));
    }
    const figure::Figure fig = figure::analysisFigure(columns, title, footerOf(*runs.front(), s));
    std::vector<std::string> written;
    for (const char* ext : {".png", ".svg", ".pdf"}) {
        const std::string name = base + ext;
        const std::string error = figure::saveFigure(fig, (dir / name).string());
        if (!error.empty())
            throw std::runtime_error(error);
        written.push_back(name);
    }
    return written;
#else
    (void)runs;
    (void)dir;
    (void)base;
    (void)title;
    if (s.figures)
        err << "note: this build has no Qt (DEFORMSCOPE_CORE_ONLY): data only, no figures\n";
    return {};
#endif
}

#endif // DEFORMSCOPE_WITH_IMAGING

template <typename Body>
int guarded(const char* command, const char* usage, std::ostream& err, Body body) {
    try {
        return body();
    } catch (const UsageError& e) {
        err << "deformscope-cli " << command << ": " << e.what() << "\n" << usage;
        return 2;
    } catch (const model::ModelError& e) {
        err << "deformscope-cli " << command << ": " << e.what() << "\n";
        return 2;
    } catch (const AnalysisError& e) {
        err << "deformscope-cli " << command << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        err << "deformscope-cli " << command << ": " << e.what() << "\n";
        return 1;
    }
}

constexpr const char* kAnalyzeUsage =
    "usage: deformscope-cli analyze --model M --image I --out DIR [--layer L] [--pixel x,y]\n"
    "           [--what sampling,erf,saliency] [--response sum|channel:N|class:K] [--levels 3]\n"
    "           [--reading bilinear|nearest] [--signed] [--epsilon 0.1] [--baseline zero|blur[:SIGMA]]\n"
    "           [--min-cell PX] [--batch B] [--forwards N] [--object x0,y0,x1,y1 | --object-mask FILE | --no-object]\n"
    "           [--input-size H W] [--device cpu|cuda] [--no-figures] [--colormap NAME] [--log]\n";
constexpr const char* kCompareUsage =
    "usage: deformscope-cli compare --models A B C ... --image I --out DIR [--layer L] [--pixel x,y]\n"
    "           [the other options of analyze]\n";
constexpr const char* kErfAverageUsage =
    "usage: deformscope-cli erf-average --model M --images DIR --out DIR [--layer L] [--node fy,fx]\n"
    "           [--response sum|channel:N] [--limit N] [--batch B] [--input-size H W] [--signed]\n"
    "           [--device cpu|cuda] [--no-figures] [--log]\n";

} // namespace

int runAnalyze(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    return guarded("analyze", kAnalyzeUsage, err, [&]() -> int {
        Options o;
        if (const std::string e = parseWithList(args, o); !e.empty())
            throw UsageError(e);
        if (o.values.count("--models"))
            throw UsageError("analyze takes one --model; use compare for several");
        const Settings s = settingsFrom(o, false);
#ifndef DEFORMSCOPE_WITH_IMAGING
        (void)out;
        throw UsageError("this build has no image support (built with DEFORMSCOPE_CORE_ONLY)");
#else
        auto device = resolveDevice(s.device, err, "analyze");
        if (!device)
            return 2;
        const Run r = analyseOne(s.models[0], s, *device, err);
        const fs::path dir(s.out);
        makeDirectory(dir);
        const auto figures = writeFigures({&r}, s, dir, "analysis", r.name + " — " + r.node.layer, err);
        const Json doc = writeData(r, s, dir, figures);
        out << "analysed " << r.name << " at " << r.node.layer << " (" << r.node.fx << ", " << r.node.fy << ") into "
            << s.out << "\n";
        if (r.sampling)
            out << "  sampling: " << r.sampling->points.size() << " points in " << r.sampling->levels << " levels, "
                << r.sampling->seconds * 1e3 << " ms\n";
        if (r.erf)
            out << "  ERF: 90 % of the mass in " << r.erf->metrics.areaPixels[1] << " px, " << r.erf->seconds * 1e3
                << " ms\n";
        if (r.saliency)
            out << "  saliency: " << r.saliency->areaFraction * 100 << " % of the image, error " << r.saliency->error
                << " (ε " << r.saliency->epsilon << "), " << r.saliency->forwards << " forwards, "
                << r.saliency->seconds << " s\n";
        for (const auto& n : doc.at("notes").asArray())
            out << "note: " << n.asString() << "\n";
        return r.saliency && !r.saliency->withinBound ? 1 : 0;
#endif
    });
}

int runCompare(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    return guarded("compare", kCompareUsage, err, [&]() -> int {
        Options o;
        if (const std::string e = parseWithList(args, o); !e.empty())
            throw UsageError(e);
        if (o.values.count("--model"))
            throw UsageError("compare takes --models A B C ...");
        const Settings s = settingsFrom(o, true);
#ifndef DEFORMSCOPE_WITH_IMAGING
        (void)out;
        throw UsageError("this build has no image support (built with DEFORMSCOPE_CORE_ONLY)");
#else
        auto device = resolveDevice(s.device, err, "compare");
        if (!device)
            return 2;
        std::vector<Run> runs;
        std::set<std::string> names;
        for (const std::string& m : s.models) {
            err << "compare: " << m << "\n";
            runs.push_back(analyseOne(m, s, *device, err));
            std::string name = runs.back().name;
            for (int i = 2; names.count(name); ++i)
                name = runs.back().name + "_" + std::to_string(i);
            names.insert(name);
            runs.back().name = name;
        }
        const fs::path dir(s.out);
        makeDirectory(dir);
        std::vector<const Run*> ptrs;
        for (const Run& r : runs)
            ptrs.push_back(&r);
        const auto figures = writeFigures(ptrs, s, dir, "compare", "layer " + runs.front().node.layer, err);
        Json models = Json::array();
        bool bounded = true;
        for (const Run& r : runs) {
            const Json doc = writeData(r, s, dir / r.name, {});
            Json summary = Json::object({{"name", r.name}, {"folder", r.name}, {"node", doc.at("node")}});
            for (const char* k : {"sampling", "erf", "saliency", "object"})
                if (const Json* v = doc.find(k))
                    summary[k] = *v;
            models.push_back(summary);
            bounded = bounded && (!r.saliency || r.saliency->withinBound);
        }
        Json figs = Json::array();
        for (const auto& f : figures)
            figs.push_back(f);
        writeText(dir / "compare.json",
                  Json::object({{"image", s.image}, {"models", models}, {"figures", figs}}).dump(2) + "\n");
        out << "compared " << runs.size() << " models into " << s.out << ":";
        for (const auto& f : figures)
            out << ' ' << f;
        out << " compare.json\n";
        out << "  model            ERF 90% px   sampling spread px   saliency area   in object (ERF / sampling / saliency)\n";
        for (size_t i = 0; i < runs.size(); ++i) {
            const Json& m = models.at(i);
            auto num = [&](const char* section, const char* key) -> std::string {
                const Json* sec = m.find(section);
                const Json* v = sec ? sec->find(key) : nullptr;
                if (!v || v->isNull())
                    return "-";
                std::ostringstream t;
                t.precision(3);
                t << v->asDouble();
                return t.str();
            };
            out << "  " << runs[i].name << std::string(std::max<size_t>(1, 17 - runs[i].name.size()), ' ')
                << num("erf", "area90_px") << "   " << num("sampling", "weighted_spread_px") << "   "
                << num("saliency", "area_fraction") << "   " << num("object", "erf_mass_inside") << " / "
                << num("object", "sampling_weight_inside") << " / " << num("object", "saliency_area_inside") << "\n";
        }
        return bounded ? 0 : 1;
#endif
    });
}

int runErfAverage(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    return guarded("erf-average", kErfAverageUsage, err, [&]() -> int {
        Options o;
        if (const std::string e = parse(args,
                                        {{"--model", 1}, {"--images", 1}, {"--out", 1}, {"--layer", 1}, {"--node", 1},
                                         {"--response", 1}, {"--limit", 1}, {"--batch", 1}, {"--input-size", 2},
                                         {"--signed", 0}, {"--device", 1}, {"--no-figures", 0}, {"--log", 0}},
                                        o);
            !e.empty())
            throw UsageError(e);
        if (!o.positional.empty())
            throw UsageError("unexpected argument '" + o.positional[0] + "'");
        for (const char* required : {"--model", "--images", "--out"})
            if (!o.values.count(required))
                throw UsageError(std::string(required) + " is required");
#ifndef DEFORMSCOPE_WITH_IMAGING
        (void)out;
        throw UsageError("this build has no image support (built with DEFORMSCOPE_CORE_ONLY)");
#else
        const std::string folder = o.values["--images"][0];
        if (!fs::is_directory(folder))
            throw UsageError(folder + ": is not a folder of images");
        std::vector<std::string> files;
        int64_t masks = 0;
        for (const auto& entry : fs::directory_iterator(folder)) {
            if (!entry.is_regular_file())
                continue;
            std::string ext = entry.path().extension().string();
            std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
            static const std::set<std::string> images = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"};
            if (!images.count(ext))
                continue;
            const std::string stem = entry.path().stem().string();
            if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, "_mask") == 0) {
                ++masks;
                continue;
            }
            files.push_back(entry.path().string());
        }
        std::sort(files.begin(), files.end());
        if (o.values.count("--limit")) {
            int64_t n = 0;
            if (!positiveInt(o.values["--limit"][0], n))
                throw UsageError("--limit takes a whole number ≥ 1");
            if (int64_t(files.size()) > n)
                files.resize(size_t(n));
        }
        if (files.empty())
            throw UsageError(folder + ": has no images (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp)");
        auto device = resolveDevice(o.values.count("--device") ? o.values["--device"][0] : "cpu", err, "erf-average");
        if (!device)
            return 2;
        const model::LoadedModel m = model::LoadedModel::load(o.values["--model"][0], *device);
        analysis::ErfAverageOptions options;
        std::optional<std::array<int64_t, 2>> size = m.metadata().inputSize;
        if (o.values.count("--input-size")) {
            int64_t h = 0, w = 0;
            if (!positiveInt(o.values["--input-size"][0], h) || !positiveInt(o.values["--input-size"][1], w))
                throw UsageError("--input-size takes two whole numbers H W");
            size = std::array<int64_t, 2>{h, w};
        }
        if (!size) { // every image must come out the same size: the first image's
            try {
                const imaging::InputImage first = imaging::loadImage(files.front());
                size = std::array<int64_t, 2>{first.height, first.width};
            } catch (const std::exception& e) {
                throw UsageError(e.what());
            }
        }
        if (o.values.count("--layer"))
            options.layer = o.values["--layer"][0];
        else {
            const model::LayerGraph g = model::layerGraph(m, *size);
            options.layer = defaultLayer(m, g);
        }
        if (o.values.count("--node")) {
            const auto p = numbers("--node", o.values["--node"][0], 2);
            options.node = std::array<int64_t, 2>{int64_t(p[0]), int64_t(p[1])};
        }
        try {
            if (o.values.count("--response"))
                options.response = analysis::Response::parse(o.values["--response"][0]);
        } catch (const AnalysisError& e) {
            throw UsageError(e.what());
        }
        if (o.values.count("--batch")) {
            int64_t n = 0;
            if (!positiveInt(o.values["--batch"][0], n) || n > 1024)
                throw UsageError("--batch takes a whole number from 1 to 1024");
            options.batchSize = n;
        }
        options.isSigned = o.flags.count("--signed") > 0;
        imaging::Normalization norm;
        norm.mean = m.metadata().mean;
        norm.std = m.metadata().std;
        norm.bgr = m.metadata().colorOrder == "BGR";
        int64_t lastBatch = -1;
        const analysis::ErfAverageResult result = analysis::averageErf(
            m, int64_t(files.size()), [&](int64_t i) { return imaging::loadImage(files[size_t(i)], size, norm).tensor; },
            [&](int64_t i) { return files[size_t(i)]; }, options,
            [&](int64_t done, int64_t total) {
                if (done / options.batchSize != lastBatch || done == total) {
                    lastBatch = done / options.batchSize;
                    err << "erf-average: " << done << "/" << total << " images\n";
                }
                return true;
            });
        const fs::path dir(o.values["--out"][0]);
        makeDirectory(dir);
        common::writeNpy((dir / "erf_average.npy").string(), result.map);
        std::vector<std::string> figures;
#ifdef DEFORMSCOPE_WITH_FIGURES
        if (!o.flags.count("--no-figures")) {
            figure::ensureGuiApplication();
            figure::Panel p;
            p.title = stemOf(m.path()) + ", " + std::to_string(result.images) + " images";
            const at::Tensor map = result.map.contiguous();
            figure::Heat h;
            h.height = int(map.size(0));
            h.width = int(map.size(1));
            h.values.assign(map.data_ptr<float>(), map.data_ptr<float>() + map.numel());
            h.log = o.flags.count("--log") > 0;
            h.isSigned = options.isSigned;
            h.colormap = options.isSigned ? "coolwarm" : "inferno";
            h.opacity = 1.0;
            p.heat = std::move(h);
            const model::LayerGraph g = model::layerGraph(m, *size);
            const model::Layer& l = *g.find(result.node.layer);
            p.node = std::array<double, 2>{l.start[1] + double(result.node.fx) * l.jump[1],
                                           l.start[0] + double(result.node.fy) * l.jump[0]};
            p.nodeCell = {l.jump[1], l.jump[0]};
            std::ostringstream c1;
            c1.precision(3);
            c1 << "90 % mass: " << result.metrics.areaPixels[1] << " px; high-contribution ratio (t=0.5): "
               << result.metrics.highContributionRatio[2];
            p.caption.push_back(c1.str());
            figure::Figure fig;
            fig.title = "average ERF — " + result.node.layer;
            fig.footer = "node " + result.node.layer + " (" + std::to_string(result.node.fx) + ", " +
                         std::to_string(result.node.fy) + "), response " + result.node.response.toString() + ", " +
                         folder;
            fig.panels.push_back(std::move(p));
            for (const char* ext : {".png", ".svg", ".pdf"}) {
                const std::string name = std::string("erf_average") + ext;
                const std::string error = figure::saveFigure(fig, (dir / name).string());
                if (!error.empty())
                    throw std::runtime_error(error);
                figures.push_back(name);
            }
        }
#else
        if (!o.flags.count("--no-figures"))
            err << "note: this build has no Qt (DEFORMSCOPE_CORE_ONLY): data only, no figures\n";
#endif
        Json doc = analysis::toJson(result);
        doc["model"] = m.path();
        doc["images_folder"] = folder;
        doc["input_size"] = Json::array({(*size)[0], (*size)[1]});
        doc["file"] = "erf_average.npy";
        doc["masks_skipped"] = masks;
        Json figs = Json::array();
        for (const auto& f : figures)
            figs.push_back(f);
        doc["figures"] = figs;
        writeText(dir / "result.json", doc.dump(2) + "\n");
        out << "averaged the ERF of " << result.node.layer << " (" << result.node.fx << ", " << result.node.fy
            << ") over " << result.images << " images into " << dir.string() << " (" << result.seconds << " s)\n";
        for (const auto& sk : result.skipped)
            out << "skipped: " << sk << "\n";
        return 0;
#endif
    });
}

} // namespace deformscope::cli

namespace deformscope::cli {

// Per-click timings of the analyses on a model at a given input size: the
// captured forward once, then several clicks (sampling trace, ERF, saliency),
// reported as medians. Synthetic input: a fixed-seed random image.
int runBenchAnalyses(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    constexpr const char* usage =
        "usage: deformscope-cli bench-analyses --models A B ... [--sizes 256,512] [--layer L] [--clicks N]\n"
        "           [--saliency-clicks N] [--epsilon 0.1] [--device cpu|cuda] [--json FILE]\n";
    return guarded("bench-analyses", usage, err, [&]() -> int {
        Options o;
        std::vector<std::string> rest;
        for (size_t i = 0; i < args.size(); ++i) {
            if (args[i] == "--models") {
                while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0)
                    o.values["--models"].push_back(args[++i]);
                continue;
            }
            rest.push_back(args[i]);
        }
        if (const std::string e = parse(rest,
                                        {{"--sizes", 1}, {"--layer", 1}, {"--clicks", 1}, {"--saliency-clicks", 1},
                                         {"--epsilon", 1}, {"--device", 1}, {"--json", 1}},
                                        o);
            !e.empty())
            throw UsageError(e);
        if (o.values["--models"].empty())
            throw UsageError("--models needs at least one model file");
        std::vector<int64_t> sizes;
        for (const std::string& t : split(o.values.count("--sizes") ? o.values["--sizes"][0] : "256,512", ',')) {
            int64_t n = 0;
            if (!positiveInt(t, n))
                throw UsageError("--sizes takes comma-separated whole numbers");
            sizes.push_back(n);
        }
        int64_t clicks = 5, salClicks = 1;
        if (o.values.count("--clicks") && !positiveInt(o.values["--clicks"][0], clicks))
            throw UsageError("--clicks takes a whole number ≥ 1");
        if (o.values.count("--saliency-clicks") && !(o.values["--saliency-clicks"][0] == "0" ||
                                                     positiveInt(o.values["--saliency-clicks"][0], salClicks)))
            throw UsageError("--saliency-clicks takes a whole number ≥ 0");
        if (o.values.count("--saliency-clicks") && o.values["--saliency-clicks"][0] == "0")
            salClicks = 0;
        analysis::SaliencyOptions salOptions;
        salOptions.batchSize = 0; // by device, as analyze does
        if (o.values.count("--epsilon"))
            salOptions.epsilon = numbers("--epsilon", o.values["--epsilon"][0], 1)[0];
        auto device = resolveDevice(o.values.count("--device") ? o.values["--device"][0] : "cpu", err, "bench-analyses");
        if (!device)
            return 2;
        auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v.empty() ? 0.0 : v[v.size() / 2];
        };
        auto sync = [&]() {
            if (device->is_cuda())
                at::empty({1}, at::TensorOptions().device(*device)).cpu(); // waits for the stream
        };
        Json rows = Json::array();
        out << "| model | input | forward ms | sampling ms | ERF ms | saliency s | saliency forwards | saliency area | "
               "saliency error |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
        for (const std::string& path : o.values["--models"]) {
            const model::LoadedModel m = model::LoadedModel::load(path, *device);
            for (int64_t size : sizes) {
                auto gen = at::detail::createCPUGenerator(1234);
                const at::Tensor x = at::randn({1, 3, size, size}, gen);
                // Warm-up, then the timed forward (the cached forward every click of this image uses).
                { analysis::AnalysisSession warm(m, x); }
                sync();
                const auto t0 = std::chrono::steady_clock::now();
                analysis::AnalysisSession s(m, x);
                sync();
                const double forward = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                const std::string layer = o.values.count("--layer") ? o.values["--layer"][0] : defaultLayer(m, s.graph());
                std::vector<double> tSampling, tErf, tSal, fwd, area, errs;
                for (int64_t c = 0; c < clicks + 1; ++c) {
                    // Clicks spread over the image (the first one is a warm-up).
                    const double fx = double(size) * (0.2 + 0.6 * double(c % 4) / 3), fy = double(size) * (0.3 + 0.1 * double(c % 5));
                    const analysis::Node node = s.nodeAt(layer, fx, fy);
                    auto t = std::chrono::steady_clock::now();
                    const auto trace = s.sampling(node);
                    sync();
                    const double ts = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
                    t = std::chrono::steady_clock::now();
                    const auto erf = s.erf(node);
                    sync();
                    const double te = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
                    if (c > 0) {
                        tSampling.push_back(ts);
                        tErf.push_back(te);
                    }
                    if (c > 0 && c <= salClicks) {
                        const auto sal = s.saliency(node, salOptions);
                        tSal.push_back(sal.seconds);
                        fwd.push_back(double(sal.forwards));
                        area.push_back(sal.areaFraction);
                        errs.push_back(sal.error);
                    }
                }
                const std::string name = stemOf(path);
                out << "| " << name << " | " << size << "x" << size << " | " << forward * 1e3 << " | "
                    << median(tSampling) * 1e3 << " | " << median(tErf) * 1e3 << " | ";
                if (tSal.empty())
                    out << "- | - | - | - |\n";
                else
                    out << median(tSal) << " | " << median(fwd) << " | " << median(area) << " | " << median(errs)
                        << " |\n";
                out.flush();
                rows.push_back(Json::object({{"model", name},
                                             {"size", size},
                                             {"device", device->str()},
                                             {"layer", layer},
                                             {"forward_ms", forward * 1e3},
                                             {"sampling_ms", median(tSampling) * 1e3},
                                             {"erf_ms", median(tErf) * 1e3},
                                             {"saliency_s", tSal.empty() ? Json() : Json(median(tSal))},
                                             {"saliency_forwards", fwd.empty() ? Json() : Json(median(fwd))},
                                             {"saliency_area", area.empty() ? Json() : Json(median(area))},
                                             {"clicks", clicks}}));
            }
        }
        if (o.values.count("--json"))
            writeText(o.values["--json"][0], rows.dump(2) + "\n");
        return 0;
    });
}

} // namespace deformscope::cli
