// analyze, compare, erf-average: the analyses of core/analysis from the command
// line, through the pipeline core/report shares with the GUI: data (JSON, .npy,
// .csv) and, in builds with Qt, figures through ui/analysis_figure (PNG, SVG, PDF).
#include "app/cli/commands.h"
#include "app/cli/options.h"

#include "core/analysis/analysis.h"
#include "core/common/json.h"
#include "core/common/npy.h"
#include "core/model/model.h"
#include "core/report/settings.h"

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/imaging/image.h"
#include "core/report/report.h"
#endif
#ifdef DEFORMSCOPE_WITH_FIGURES
#include "ui/analysis_figure/analysis_figure.h"
#include "ui/analysis_figure/report_figures.h"
#endif

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>

namespace deformscope::cli {

namespace {

namespace fs = std::filesystem;
using analysis::AnalysisError;
using common::Json;
// Bad usage or input: exit code 2 with this message.
using report::UsageError;
using report::Settings;
using report::defaultLayer;
using report::makeDirectory;
using report::stemOf;
using report::writeText;


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
        s.sampling = s.erf = s.saliency = s.kernel = false;
        for (const std::string& w : split(*v, ',')) {
            if (w == "sampling")
                s.sampling = true;
            else if (w == "erf")
                s.erf = true;
            else if (w == "saliency")
                s.saliency = true;
            else if (w == "kernel")
                s.kernel = s.kernelRequired = true;
            else
                throw UsageError("--what '" + *v + "': expected a comma-separated list of sampling, erf, saliency, kernel");
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

#ifdef DEFORMSCOPE_WITH_IMAGING

// ---- one model on one image ----------------------------------------------------------

using report::Run;

Run analyseOne(const std::string& modelPath, const Settings& s, const c10::Device& device, std::ostream& err) {
    Run r = report::prepareRun(modelPath, s, device);
    int64_t lastReported = -1;
    report::analyseNode(r, s, std::nullopt, [&](const analysis::SaliencyProgress& p) {
        const int64_t pct = int64_t(p.fraction * 10);
        if (pct != lastReported) {
            lastReported = pct;
            err << "  " << r.name << " saliency: " << p.stage << ", " << p.forwards << " forwards\n";
        }
        return true;
    });
    return r;
}

// Writes <base>.png/.svg/.pdf; returns the file names written, or notes why not.
std::vector<std::string> writeFigures(const std::vector<const Run*>& runs, const Settings& s, const fs::path& dir,
                                      const std::string& base, const std::string& title, std::ostream& err) {
#ifdef DEFORMSCOPE_WITH_FIGURES
    (void)err;
    return figure::writeFigures(runs, s, dir.string(), base, title);
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
    "           [--what sampling,erf,saliency,kernel] [--response sum|channel:N|class:K] [--levels 3]\n"
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
        makeDirectory(dir.string());
        const auto figures = writeFigures({&r}, s, dir, "analysis", report::analyzeTitle(r), err);
        const Json doc = report::writeData(r, s, dir.string(), figures);
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
        if (r.kernel)
            out << "  kernel: " << r.kernel->layer << " (" << r.kernel->fx << ", " << r.kernel->fy << "), "
                << r.kernel->kernel[0] << "x" << r.kernel->kernel[1] << " taps from a " << r.kernel->scope[0] << "x"
                << r.kernel->scope[1] << " scope, mean shift " << r.kernel->meanShift << " cells\n";
        for (const auto& n : doc.at("notes").asArray())
            out << "note: " << n.asString() << "\n";
        if (r.kernel)
            for (const auto& n : r.kernel->notes)
                out << "note: " << n << "\n";
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
        runs.reserve(s.models.size());
        // --what kernel: the models with a DK layer get the kernel view; at least one must have one.
        Settings each = s;
        each.kernelRequired = false;
        for (const std::string& m : s.models) {
            err << "compare: " << m << "\n";
            runs.push_back(analyseOne(m, each, *device, err));
        }
        if (s.kernelRequired && std::none_of(runs.begin(), runs.end(), [](const Run& r) { return r.kernel.has_value(); }))
            throw UsageError("--what kernel: none of the models has a Deformable Kernel layer at or below the layer analysed");
        std::vector<Run*> named;
        for (Run& r : runs)
            named.push_back(&r);
        report::uniqueNames(named);
        const fs::path dir(s.out);
        makeDirectory(dir.string());
        std::vector<const Run*> ptrs;
        for (const Run& r : runs)
            ptrs.push_back(&r);
        const auto figures = writeFigures(ptrs, s, dir, "compare", report::compareTitle(ptrs), err);
        const Json models = report::writeCompareData(ptrs, s, dir.string(), figures);
        bool bounded = true;
        for (const Run& r : runs)
            bounded = bounded && (!r.saliency || r.saliency->withinBound);
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
        int64_t limit = 0;
        if (o.values.count("--limit") && !positiveInt(o.values["--limit"][0], limit))
            throw UsageError("--limit takes a whole number ≥ 1");
        const report::ImageFolder images = report::listImages(folder, limit);
        const std::vector<std::string>& files = images.files;
        auto device = resolveDevice(o.values.count("--device") ? o.values["--device"][0] : "cpu", err, "erf-average");
        if (!device)
            return 2;
        const model::LoadedModel m = model::LoadedModel::load(o.values["--model"][0], *device);
        analysis::ErfAverageOptions options;
        std::optional<std::array<int64_t, 2>> requestedSize;
        if (o.values.count("--input-size")) {
            int64_t h = 0, w = 0;
            if (!positiveInt(o.values["--input-size"][0], h) || !positiveInt(o.values["--input-size"][1], w))
                throw UsageError("--input-size takes two whole numbers H W");
            requestedSize = std::array<int64_t, 2>{h, w};
        }
        const std::array<int64_t, 2> size = report::erfAverageInputSize(m, files, requestedSize);
        if (o.values.count("--layer"))
            options.layer = o.values["--layer"][0];
        else {
            const model::LayerGraph g = model::layerGraph(m, size);
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
        int64_t lastBatch = -1;
        const analysis::ErfAverageResult result =
            report::averageErfOver(m, files, size, options, [&](int64_t done, int64_t total) {
                if (done / options.batchSize != lastBatch || done == total) {
                    lastBatch = done / options.batchSize;
                    err << "erf-average: " << done << "/" << total << " images\n";
                }
                return true;
            });
        const fs::path dir(o.values["--out"][0]);
        makeDirectory(dir.string());
        std::vector<std::string> figures;
#ifdef DEFORMSCOPE_WITH_FIGURES
        if (!o.flags.count("--no-figures")) {
            const model::LayerGraph g = model::layerGraph(m, size);
            figures = figure::writeErfAverageFigures(
                figure::erfAverageFigure(result, m, g, folder, options.isSigned, o.flags.count("--log") > 0),
                dir.string());
        }
#else
        if (!o.flags.count("--no-figures"))
            err << "note: this build has no Qt (DEFORMSCOPE_CORE_ONLY): data only, no figures\n";
#endif
        report::writeErfAverageData(result, m, folder, size, images.masks, dir.string(), figures);
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
