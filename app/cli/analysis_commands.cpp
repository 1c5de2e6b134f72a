// analyze, compare, sweep, scale-map, erf-average: the analyses of core/analysis from the command
// line, through the pipeline core/report shares with the GUI: data (JSON, .npy,
// .csv) and, in builds with Qt, figures through ui/analysis_figure (PNG, SVG, PDF).
// What to compute is one common::AnalysisRequest, read from the options by
// RequestOptions and checked by its validate().
#include "app/cli/commands.h"

#include "core/analysis/analysis.h"
#include "core/analysis/scale_map.h"
#include "core/common/atomic_file.h"
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "core/model/model.h"
#include "core/report/inputs.h"

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/imaging/image.h"
#include "core/report/report.h"
#include "core/report/scale_map_data.h"
#endif
#ifdef DEFORMSCOPE_WITH_FIGURES
#include "ui/analysis_figure/analysis_figure.h"
#include "ui/analysis_figure/report_figures.h"
#include "ui/analysis_figure/sweep_report.h"
#include "ui/figure/plot.h"
#endif

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <ostream>
#include <sstream>
#include <exception>
#include <thread>

namespace deformscope::cli {

namespace {

// What each command does, for its --help and the tool's list of commands.
constexpr const char* kAnalyzeHelp =
    "one node's sampling points, effective receptive field and error-bounded saliency region (and a "
    "Deformable Kernel layer's resampled kernel): DIR/result.json, erf.npy, saliency_mask.npy, sampling.csv, "
    "kernel_scope.npy and analysis.png/.svg/.pdf";
constexpr const char* kCompareHelp =
    "the same node in several models: one grid figure DIR/compare.png/.svg/.pdf (rows sampling, ERF, "
    "saliency, resampled kernel; one column per model), DIR/compare.json and each model's data in DIR/<model>/";
constexpr const char* kScaleMapHelp =
    "the ERF radius (50 % and 90 % of its mass) of every node of a G x G grid over a layer, many nodes per "
    "backward pass: DIR/scale_map.npy [2, G, G] (float32, input pixels), result.json, scale_map.png/.svg/.pdf";
constexpr const char* kSweepHelp =
    "the same node (--pixel, on the object) at several input sizes in several models (DCNv2's Figs. 4/5): per model "
    "and size the ERF's 50 %/90 % areas and mass radii, the object's area and their ratio (and the saliency region's "
    "with --what erf,saliency): DIR/sweep.csv, result.json and sweep.png/.svg/.pdf (rows models, columns sizes)";
constexpr const char* kMergeHelp =
    "combines erf-average parts (erf-average --shard K/N on several machines) into the average over all their "
    "images: DIR/erf_average.npy, result.json, erf_average.png/.svg/.pdf as one run writes them; or study parts "
    "(study --shard K/N) into the study of all their images";
constexpr const char* kErfAverageHelp =
    "the ERF of one node (default: the layer's centre) averaged over a folder of images (RepLKNet's protocol): "
    "DIR/erf_average.npy, result.json, erf_average.png/.svg/.pdf";


namespace fs = std::filesystem;
using common::Json;
using report::UsageError;

// The inputs of analyze and compare; the analysis settings are the request's options.
struct AnalysisInputs {
    std::string model;
    std::vector<std::string> models;
    std::vector<std::string> images; // one per input frame, in forward's order
    std::string video, frames;       // or frames of a video: --video FILE --frames t,u
    std::string out;
    std::unique_ptr<RequestOptions> request;
};

#ifdef DEFORMSCOPE_WITH_IMAGING

using report::Run;

// The model's inputs the options name: --image (repeated) or --video with --frames.
report::InputSource inputSource(const AnalysisInputs& in) {
    report::InputSource s;
    if (!in.video.empty() && !in.images.empty())
        throw UsageError("give either --image (once per input frame) or --video FILE --frames t,u, not both");
    if (in.video.empty() && in.images.empty())
        throw UsageError("no input: give --image FILE (once per input frame, in forward's order) or --video FILE --frames t,u");
    if (!in.video.empty()) {
        if (in.frames.empty())
            throw UsageError("--video needs --frames t,u (the frame numbers, counted from 0, one per input)");
        s.video = in.video;
        s.frames = wholeNumbers("--frames", in.frames, 0);
        return s;
    }
    if (!in.frames.empty())
        throw UsageError("--frames is for --video; with images, give --image once per input frame");
    s.images = in.images;
    return s;
}

Run analyseOne(const std::string& modelPath, const report::InputSource& inputs, const common::AnalysisRequest& rq,
               std::ostream& err) {
    Run r = report::prepareRun(modelPath, inputs, rq);
    int64_t lastReported = -1;
    report::analyseNode(r, rq, [&](const analysis::SaliencyProgress& p) {
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
std::vector<std::string> writeFigures(const std::vector<const Run*>& runs, const common::AnalysisRequest& rq,
                                      const std::string& dir, const std::string& base, const std::string& title,
                                      std::ostream& err) {
#ifdef DEFORMSCOPE_WITH_FIGURES
    (void)err;
    return figure::writeFigures(runs, rq, dir, base, title);
#else
    (void)runs;
    (void)dir;
    (void)base;
    (void)title;
    if (rq.figures)
        err << "note: this build has no Qt (DEFORMSCOPE_CORE_ONLY): data only, no figures\n";
    return {};
#endif
}

#endif // DEFORMSCOPE_WITH_IMAGING

[[maybe_unused]] void requireImaging() {
#ifndef DEFORMSCOPE_WITH_IMAGING
    throw UsageError("this build has no image support (built with DEFORMSCOPE_CORE_ONLY)");
#endif
}

int runAnalyze(const AnalysisInputs& in, Io& io) {
    return guarded("analyze", io.err, [&]() -> int {
        // --out is taken first: a second run into the same folder refuses at once.
        const auto folder = outputFolder(in.out, io);
        const common::AnalysisRequest rq = in.request->request();
        requireImaging();
#ifdef DEFORMSCOPE_WITH_IMAGING
        std::ostream& out = io.out;
        const Run r = analyseOne(in.model, inputSource(in), rq, io.err);
        const auto figures = writeFigures({&r}, rq, folder->path(), "analysis", report::analyzeTitle(r), io.err);
        const Json doc = report::writeData(r, rq, folder->path(), figures);
        folder->commit();
        out << "analysed " << r.name << " at " << r.node.layer << " (" << r.node.fx << ", " << r.node.fy << ") into "
            << in.out << "\n";
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
        if (r.motion) {
            const report::MotionReport& m = *r.motion;
            out << "  motion: " << m.field.layer << ", mean |offset| " << m.field.meanOffsetPx << " px, diversity "
                << m.field.offsetDiversityPx << " px, EPE vs DIS flow " << m.vsFlow.epePx << " px, cosine "
                << m.vsFlow.cosine;
            if (m.vsTruth)
                out << ", EPE vs truth " << m.vsTruth->epePx << " px (DIS flow: " << m.flowVsTruth->epePx << " px)";
            out << (m.field.alarm ? "  ALARM: offsets implausibly large" : "") << "\n";
            if (m.iouReads >= 0)
                out << "  propagation: IoU " << m.iouReads << " through the reads, " << m.iouFlow << " through the flow\n";
            if (m.distanceReads >= 0)
                out << "  propagation: mean distance " << m.distanceReads << " px through the reads, " << m.distanceFlow
                    << " px through the flow\n";
        }
        if (r.kernel)
            out << "  kernel: " << r.kernel->layer << " (" << r.kernel->fx << ", " << r.kernel->fy << "), "
                << r.kernel->kernel[0] << "x" << r.kernel->kernel[1] << " taps from a " << r.kernel->scope[0] << "x"
                << r.kernel->scope[1] << " scope, mean shift " << r.kernel->meanShift << " cells\n";
        for (const auto& n : doc.at("notes"))
            out << "note: " << n.get<std::string>() << "\n";
        if (r.kernel)
            for (const auto& n : r.kernel->notes)
                out << "note: " << n << "\n";
        return r.saliency && !r.saliency->withinBound ? 1 : 0;
#else
        (void)rq;
        return 2;
#endif
    });
}

int runCompare(const AnalysisInputs& in, Io& io) {
    return guarded("compare", io.err, [&]() -> int {
        // --out is taken first: a second run into the same folder refuses at once.
        const auto folder = outputFolder(in.out, io);
        const common::AnalysisRequest rq = in.request->request();
        requireImaging();
#ifdef DEFORMSCOPE_WITH_IMAGING
        std::ostream& out = io.out;
        std::vector<Run> runs;
        runs.reserve(in.models.size());
        // --what kernel: the models with a DK layer get the kernel view; at least one must have one.
        common::AnalysisRequest each = rq;
        if (each.what.kernel == common::Analyses::Kernel::Required)
            each.what.kernel = common::Analyses::Kernel::IfAvailable;
        for (const std::string& m : in.models) {
            io.err << "compare: " << m << "\n";
            runs.push_back(analyseOne(m, inputSource(in), each, io.err));
        }
        if (rq.what.kernel == common::Analyses::Kernel::Required &&
            std::none_of(runs.begin(), runs.end(), [](const Run& r) { return r.kernel.has_value(); }))
            throw UsageError("--what kernel: none of the models has a Deformable Kernel layer at or below the layer analysed");
        std::vector<Run*> named;
        for (Run& r : runs)
            named.push_back(&r);
        report::uniqueNames(named);
        std::vector<const Run*> ptrs(named.begin(), named.end());
        const auto figures = writeFigures(ptrs, rq, folder->path(), "compare", report::compareTitle(ptrs), io.err);
        const Json models = report::writeCompareData(ptrs, rq, folder->path(), figures);
        folder->commit();
        bool bounded = true;
        for (const Run& r : runs)
            bounded = bounded && (!r.saliency || r.saliency->withinBound);
        out << "compared " << runs.size() << " models into " << in.out << ":";
        for (const auto& f : figures)
            out << ' ' << f;
        out << " compare.json\n";
        out << "  model            ERF 90% px   sampling spread px   saliency area   in object (ERF / sampling / saliency)\n";
        for (size_t i = 0; i < runs.size(); ++i) {
            const Json& m = models.at(i);
            auto num = [&](const char* section, const char* key) -> std::string {
                if (!m.contains(section) || !m.at(section).contains(key) || !m.at(section).at(key).is_number())
                    return "-";
                std::ostringstream t;
                t.precision(3);
                t << m.at(section).at(key).get<double>();
                return t.str();
            };
            out << "  " << runs[i].name << std::string(std::max<size_t>(1, 17 - runs[i].name.size()), ' ')
                << num("erf", "area90_px") << "   " << num("sampling", "weighted_spread_px") << "   "
                << num("saliency", "area_fraction") << "   " << num("object", "erf_mass_inside") << " / "
                << num("object", "sampling_weight_inside") << " / " << num("object", "saliency_area_inside") << "\n";
        }
        return bounded ? 0 : 1;
#else
        (void)rq;
        return 2;
#endif
    });
}

struct ScaleMapInputs {
    std::string model, image, out;
    int64_t grid = 32, batch = 16;
    std::unique_ptr<RequestOptions> request; // --layer, --response, --input-size, --device, --no-figures
};

int runScaleMap(const ScaleMapInputs& in, Io& io) {
    return guarded("scale-map", io.err, [&]() -> int {
        // --out is taken first: a second run into the same folder refuses at once.
        const auto folder = outputFolder(in.out, io);
        const common::AnalysisRequest rq = in.request->request();
        requireImaging();
#ifdef DEFORMSCOPE_WITH_IMAGING
        Run run = report::prepareRun(in.model, in.image, rq);
        analysis::ScaleMapOptions options;
        options.layer = rq.layer.empty() ? report::defaultLayer(run.model, run.session->graph()) : rq.layer;
        options.grid = in.grid;
        options.batch = in.batch;
        options.response = rq.response;
        int64_t shown = 0;
        const analysis::ScaleMapResult result = analysis::scaleMap(*run.session, options, [&](int64_t done, int64_t total) {
            if (done - shown >= total / 8 || done == total) {
                shown = done;
                io.err << "scale-map: " << done << "/" << total << " nodes\n";
            }
            return true;
        });
        std::vector<std::string> figures;
#ifdef DEFORMSCOPE_WITH_FIGURES
        if (rq.figures)
            figures = figure::writeNamedFigures(figure::scaleMapFigure(result, run), folder->path(), "scale_map");
#else
        if (rq.figures)
            io.err << "note: this build has no Qt (DEFORMSCOPE_CORE_ONLY): data only, no figures\n";
#endif
        report::writeScaleMapData(result, run, in.model, in.image, folder->path(), figures);
        folder->commit();
        io.out << "mapped the ERF radius of " << result.grid[0] << " x " << result.grid[1] << " nodes of "
               << result.layer << " in " << result.passes << " passes into " << in.out << " (" << result.seconds
               << " s)\n";
        return 0;
#else
        (void)rq;
        return 2;
#endif
    });
}

struct SweepInputs {
    std::vector<std::string> models;
    std::string image, sizes = "256,384,512,768,1024", out, accuracy;
    CLI::Option* what = nullptr; // given: its analyses; not given: the ERF alone (saliency at 1024² takes minutes)
    std::unique_ptr<RequestOptions> request;
};

int runSweep(const SweepInputs& in, Io& io) {
    return guarded("sweep", io.err, [&]() -> int {
        // --out is taken first: a second run into the same folder refuses at once.
        const auto folder = outputFolder(in.out, io);
        common::AnalysisRequest rq = in.request->request();
        requireImaging();
        const std::vector<int64_t> sizes = wholeNumbers("--sizes", in.sizes, 8);
        if (sizes.empty())
            throw UsageError("--sizes '" + in.sizes + "': expected sizes in pixels, e.g. 256,384,512");
#ifdef DEFORMSCOPE_WITH_IMAGING
        if (!in.what || in.what->count() == 0)
            rq.what = common::Analyses{};
        rq.what.erf = true;
        rq.what.sampling = false;
        rq.what.saliency = rq.what.saliency && in.what && in.what->count() > 0;
        rq.what.kernel = common::Analyses::Kernel::Off;
        rq.what.motion = false;
#ifdef DEFORMSCOPE_WITH_FIGURES
        figure::SweepSpec spec;
        std::vector<model::LoadedModel> models;
        for (const std::string& path : in.models) {
            models.push_back(model::LoadedModel::load(path, report::resolveDevice(rq.device)));
            spec.names.push_back(report::stemOf(path));
        }
        for (const model::LoadedModel& m : models)
            spec.models.push_back(&m);
        spec.modelPaths = in.models;
        spec.image = in.image;
        spec.sizes = sizes;
        spec.accuracyFolder = in.accuracy;
        if (!in.accuracy.empty())
            spec.accuracyImages = report::listImages(in.accuracy).files;
        spec.request = rq;
        spec.dir = folder->path();
        figure::writeSweep(spec, {}, [&](const std::string& line) { io.err << "sweep: " << line << "\n"; });
        folder->commit();
#else
        throw UsageError("sweep draws its figures with Qt: this build has none");
#endif
        io.out << "swept " << in.models.size() << " models over " << sizes.size() << " sizes into " << in.out << "\n";
        return 0;
#else
        (void)rq;
        return 2;
#endif
    });
}

#ifdef DEFORMSCOPE_WITH_IMAGING
// Completes an erf-average result folder so `merge` can combine it with others: the sum of the
// maps (erf_sum.npy, float64) and which part of how many it is, in result.json.
void writeMergeablePart(const std::string& dir, Json doc, const at::Tensor& sum, bool isSigned, int64_t shard,
                        int64_t shards) {
    common::writeNpy((fs::path(dir) / "erf_sum.npy").string(), sum.to(at::kDouble));
    doc["sum_file"] = "erf_sum.npy";
    doc["signed"] = isSigned;
    doc["shard"] = Json::object({{"index", shard}, {"count", shards}});
    common::writeJsonFile((fs::path(dir) / "result.json").string(), doc);
}
#endif

#ifdef DEFORMSCOPE_WITH_IMAGING
// An average's map, metrics (and RepLKNet's ratios under that protocol) from the sum of its
// result.images maps, at result.node of `layer`: how workers' and merged parts' sums end.
void averageFromSum(analysis::ErfAverageResult& result, const at::Tensor& sum, const model::Layer& layer) {
    result.map = (sum / double(result.images)).to(at::kFloat);
    result.metrics = analysis::erfMetrics(result.map, {layer.start[1] + double(result.node.fx) * layer.jump[1],
                                                       layer.start[0] + double(result.node.fy) * layer.jump[0]},
                                          layer.rf);
    if (result.protocol == analysis::ErfProtocol::RepLKNet)
        result.replknetAreas = analysis::replknetAreaRatios(result.map);
}
#endif

struct ErfAverageInputs {
    std::string model, images, out, node, shard, protocol = "deformscope", devices;
    int64_t limit = 0, batch = 8;
    std::unique_ptr<RequestOptions> request; // --layer, --response, --input-size, --signed, --device, --no-figures, --log
};

int runErfAverage(const ErfAverageInputs& in, Io& io) {
    return guarded("erf-average", io.err, [&]() -> int {
        // --out is taken first: a second run into the same folder refuses at once.
        const auto folder = outputFolder(in.out, io);
        const common::AnalysisRequest rq = in.request->request();
        requireImaging();
#ifdef DEFORMSCOPE_WITH_IMAGING
        const bool replknet = in.protocol == "replknet";
        // RepLKNet's script averages over its first 50 images (--num_images) unless told otherwise.
        report::ImageFolder images = report::listImages(in.images, in.limit > 0 ? in.limit : replknet ? 50 : 0);
        // A shard: every N-th image from the K-th of the sorted list, the same split on every machine.
        const auto [shard, shards] = parseShard(in.shard);
        if (shards > 1) {
            std::vector<std::string> mine;
            for (size_t i = size_t(shard - 1); i < images.files.size(); i += size_t(shards))
                mine.push_back(images.files[i]);
            if (mine.empty())
                throw UsageError("--shard " + in.shard + ": no image falls in this part (" +
                                 std::to_string(images.files.size()) + " images)");
            images.files = mine;
        }
        const model::LoadedModel m = model::LoadedModel::load(in.model, report::resolveDevice(rq.device));
        // RepLKNet's protocol resizes every image to 1024 x 1024 (--input-size changes that).
        const std::array<int64_t, 2> size =
            replknet ? rq.inputSize.value_or(std::array<int64_t, 2>{1024, 1024})
                     : report::erfAverageInputSize(m, images.files, rq.inputSize);
        report::checkMemory(m, size, in.images, in.batch);
        const model::LayerGraph g = model::layerGraph(m, size);
        analysis::ErfAverageOptions options;
        options.layer = rq.layer.empty() ? report::defaultLayer(m, g) : rq.layer;
        if (!in.node.empty()) {
            const std::vector<int64_t> p = wholeNumbers("--node", in.node, 0);
            if (p.size() != 2)
                throw UsageError("--node '" + in.node + "': expected fy,fx (two whole numbers)");
            options.node = std::array<int64_t, 2>{p[0], p[1]};
        }
        options.response = rq.response;
        options.batchSize = in.batch;
        options.isSigned = rq.signedErf;
        if (replknet) {
            if (rq.signedErf || rq.response.kind != common::Response::Kind::Sum)
                throw UsageError("--protocol replknet fixes the response and the map (relu of every channel at the "
                                 "node, summed; the positive part of the gradient): drop --response / --signed");
            options.protocol = analysis::ErfProtocol::RepLKNet;
        }
        int64_t lastBatch = -1;
        const std::vector<c10::Device> devices = workerDevices(in.devices, rq.device);
        analysis::ErfAverageResult result;
        if (devices.size() <= 1) {
            result = report::averageErfOver(m, images.files, size, options, [&](int64_t done, int64_t total) {
                if (done / options.batchSize != lastBatch || done == total) {
                    lastBatch = done / options.batchSize;
                    io.err << "erf-average: " << done << "/" << total << " images\n";
                }
                return true;
            });
        } else {
            // One worker per device, worker w on every W-th image; their sums added (the same images
            // and metrics as one worker, the map equal to float precision).
            io.err << "erf-average: " << devices.size() << " workers\n";
            const size_t workers = std::min(devices.size(), images.files.size());
            std::vector<analysis::ErfAverageResult> parts(workers);
            std::vector<std::exception_ptr> errors(workers);
            std::vector<std::thread> threads;
            for (size_t w = 0; w < workers; ++w)
                threads.emplace_back([&, w] {
                    try {
                        std::vector<std::string> files;
                        for (size_t i = w; i < images.files.size(); i += workers)
                            files.push_back(images.files[i]);
                        const model::LoadedModel mw = model::LoadedModel::load(in.model, devices[w]);
                        parts[w] = report::averageErfOver(mw, files, size, options);
                    } catch (...) {
                        errors[w] = std::current_exception();
                    }
                });
            for (std::thread& t : threads)
                t.join();
            for (const std::exception_ptr& e : errors)
                if (e)
                    std::rethrow_exception(e);
            at::Tensor sum;
            result = parts.front();
            result.images = 0;
            result.skipped.clear();
            for (const analysis::ErfAverageResult& p : parts) {
                const at::Tensor s = p.map.to(at::kDouble) * double(p.images);
                sum = sum.defined() ? sum + s : s;
                result.images += p.images;
                result.skipped.insert(result.skipped.end(), p.skipped.begin(), p.skipped.end());
                result.seconds = std::max(result.seconds, p.seconds);
            }
            std::sort(result.skipped.begin(), result.skipped.end()); // image order, as one worker lists them
            averageFromSum(result, sum, *g.find(result.node.layer));
            io.err << "erf-average: " << result.images << "/" << images.files.size() << " images\n";
        }
        std::vector<std::string> figures;
#ifdef DEFORMSCOPE_WITH_FIGURES
        if (rq.figures)
            figures = figure::writeErfAverageFigures(
                figure::erfAverageFigure(result, m, g, in.images, options.isSigned, rq.logScale), folder->path());
#else
        if (rq.figures)
            io.err << "note: this build has no Qt (DEFORMSCOPE_CORE_ONLY): data only, no figures\n";
#endif
        // The sum of the maps is the mean times the images.
        writeMergeablePart(folder->path(),
                           report::writeErfAverageData(result, m, in.images, size, images.masks, folder->path(), figures),
                           result.map.to(at::kDouble) * double(result.images), options.isSigned, shard, shards);
        folder->commit();
        for (const analysis::ReplknetArea& a : result.replknetAreas) {
            io.out << "RepLKNet area ratio at threshold " << a.threshold << ": ";
            if (a.sideLength > 0)
                io.out << a.areaRatio << " (square side " << a.sideLength << ")\n";
            else
                io.out << "none (no centred square holds that share)\n";
        }
        io.out << "averaged the ERF of " << result.node.layer << " (" << result.node.fx << ", " << result.node.fy
               << ") over " << result.images << " images into " << in.out << " (" << result.seconds << " s)\n";
        for (const auto& sk : result.skipped)
            io.out << "skipped: " << sk << "\n";
        return 0;
#else
        (void)rq;
        return 2;
#endif
    });
}

struct MergeInputs {
    std::vector<std::string> inputs;
    std::string out;
    bool noFigures = false;
};

// Combines erf-average parts (--shard K/N runs, or runs over different folders of the same model and node) into
// the average over all their images.
int runMerge(const MergeInputs& in, Io& io) {
    return guarded("merge", io.err, [&]() -> int {
        requireImaging();
        // Study parts (study --shard K/N) have their own merge.
        if (!in.inputs.empty()) {
            const fs::path firstJson = fs::path(in.inputs.front()) / "result.json";
            if (fs::exists(firstJson) && common::readJsonFile(firstJson.string()).value("format", "") == "deformscope-study/1")
                return mergeStudy(in.inputs, in.out, in.noFigures, io);
        }
#ifdef DEFORMSCOPE_WITH_IMAGING
        at::Tensor sum;
        int64_t images = 0;
        Json first;
        std::vector<std::string> skipped;
        ShardParts parts(/*wholeRunsAdd=*/true);
        for (const std::string& dir : in.inputs) {
            const std::string jsonPath = (fs::path(dir) / "result.json").string();
            if (!fs::exists(jsonPath))
                throw UsageError(dir + ": no result.json (not an erf-average output folder)");
            const Json doc = common::readJsonFile(jsonPath);
            if (!doc.contains("sum_file") || !doc.contains("shard"))
                throw UsageError(jsonPath + ": not an erf-average result that can be merged (no sum_file / shard; "
                                            "written by an older DeformScope?)");
            if (first.is_null())
                first = doc;
            parts.add(dir, jsonPath, doc, first, in.inputs.front(),
                      {"model", "node", "input_size", "signed", "protocol"}, "average");
            const at::Tensor s = common::readNpy((fs::path(dir) / doc.at("sum_file").get<std::string>()).string())
                                     .to(at::kDouble);
            sum = sum.defined() ? sum + s : s;
            images += doc.at("images").get<int64_t>();
            for (const Json& sk : doc.at("skipped"))
                skipped.push_back(sk.get<std::string>());
        }
        parts.requireComplete();
        const std::string modelPath = first.at("model").get<std::string>();
        const model::LoadedModel m = model::LoadedModel::load(modelPath);
        const std::array<int64_t, 2> size{first.at("input_size").at(0).get<int64_t>(),
                                          first.at("input_size").at(1).get<int64_t>()};
        const model::LayerGraph g = model::layerGraph(m, size);
        analysis::ErfAverageResult result;
        const Json& node = first.at("node");
        result.node.layer = node.at("layer").get<std::string>();
        result.node.fy = node.at("fy").get<int64_t>();
        result.node.fx = node.at("fx").get<int64_t>();
        result.node.response = common::Response::parse(node.at("response").get<std::string>()).value_or(common::Response{});
        result.images = images;
        result.skipped = skipped;
        const model::Layer* l = g.find(result.node.layer);
        if (!l)
            throw UsageError(modelPath + " has no layer '" + result.node.layer + "'");
        if (first.value("protocol", "deformscope") == "replknet")
            result.protocol = analysis::ErfProtocol::RepLKNet;
        averageFromSum(result, sum, *l);
        const bool isSigned = first.at("signed").get<bool>();
        const auto folder = outputFolder(in.out, io);
        std::vector<std::string> figures;
#ifdef DEFORMSCOPE_WITH_FIGURES
        if (!in.noFigures)
            figures = figure::writeErfAverageFigures(
                figure::erfAverageFigure(result, m, g, first.at("images_folder").get<std::string>(), isSigned, false),
                folder->path());
#endif
        Json doc = report::writeErfAverageData(result, m, first.at("images_folder").get<std::string>(), size,
                                               first.at("masks_skipped").get<int64_t>(), folder->path(), figures);
        doc["merged_from"] = in.inputs;
        writeMergeablePart(folder->path(), doc, sum, isSigned, 1, 1);
        folder->commit();
        io.out << "merged " << in.inputs.size() << " parts (" << images << " images) into " << in.out << "\n";
        return 0;
#else
        return 2;
#endif
    });
}

void addAnalysisInputs(CLI::App* sub, AnalysisInputs& in, bool compare) {
    if (compare)
        sub->add_option("--models", in.models, "the model files, one column each")->required()->type_name("A B C ...");
    else
        addRequired(sub, "--model", in.model, "M", "the model file");
    sub->add_option("--image", in.images,
                    "the image; a model with several input frames takes one --image per frame, in forward's order")
        ->type_name("I");
    sub->add_option("--video", in.video, "a video (OpenCV reads it) whose --frames are the model's inputs")->type_name("FILE");
    sub->add_option("--frames", in.frames, "the video's frames, one per input, counted from 0")->type_name("t,u[,...]");
    addRequired(sub, "--out", in.out, "DIR", "the folder to write into");
    in.request = std::make_unique<RequestOptions>(*sub);
}

} // namespace

void addAnalysisCommands(CLI::App& app, Commands& commands) {
    {
        auto [sub, in] = addCommand<AnalysisInputs>(app, commands, "analyze", kAnalyzeHelp, runAnalyze);
        addAnalysisInputs(sub, *in, false);
    }
    {
        auto [sub, in] = addCommand<AnalysisInputs>(app, commands, "compare", kCompareHelp, runCompare);
        addAnalysisInputs(sub, *in, true);
    }
    {
        auto [sub, in] = addCommand<ScaleMapInputs>(app, commands, "scale-map", kScaleMapHelp, runScaleMap);
        addRequired(sub, "--model", in->model, "M", "the model file");
        addRequired(sub, "--image", in->image, "I", "the image");
        addRequired(sub, "--out", in->out, "DIR", "the folder to write into");
        sub->add_option("--grid", in->grid, "nodes per side of the grid over the layer (1 to 256; at most the layer's size)")
            ->type_name("G")
            ->check(CLI::Range(int64_t{1}, int64_t{256}));
        sub->add_option("--batch", in->batch, "nodes per forward/backward pass (1 to 1024)")
            ->type_name("B")
            ->check(CLI::Range(int64_t{1}, int64_t{1024}));
        in->request = std::make_unique<RequestOptions>(
            *sub, std::vector<std::string>{"--layer", "--response", "--input-size", "--device", "--no-figures"});
    }
    {
        auto [sub, in] = addCommand<SweepInputs>(app, commands, "sweep", kSweepHelp, runSweep);
        sub->add_option("--models", in->models, "the model files, one row each")->required()->type_name("A B C ...");
        addRequired(sub, "--image", in->image, "I", "the image");
        addRequired(sub, "--out", in->out, "DIR", "the folder to write into");
        sub->add_option("--sizes", in->sizes, "the square input sizes, pixels")->type_name("256,384,...");
        sub->add_option("--accuracy", in->accuracy,
                        "a folder of images with <name>_mask.png class maps: the segmentation accuracy at each size "
                        "(DCNv2's Fig. 4)")
            ->type_name("DIR");
        in->request = std::make_unique<RequestOptions>(
            *sub, std::vector<std::string>{"--layer", "--pixel", "--response", "--what", "--epsilon", "--baseline",
                                           "--forwards", "--min-cell", "--object", "--object-mask", "--no-object",
                                           "--device", "--no-figures", "--colormap", "--log"});
        in->what = sub->get_option("--what");
    }
    auto [sub, in] = addCommand<ErfAverageInputs>(app, commands, "erf-average", kErfAverageHelp, runErfAverage);
    addRequired(sub, "--model", in->model, "M", "the model file");
    addRequired(sub, "--images", in->images, "DIR", "a folder of images (*_mask images are left out)");
    addRequired(sub, "--out", in->out, "DIR", "the folder to write into");
    sub->add_option("--node", in->node, "the node's feature position (default: the layer's centre)")->type_name("fy,fx");
    sub->add_option("--limit", in->limit, "use at most N images (default: all; 50 with --protocol replknet)")
        ->type_name("N")
        ->check(wholeAtLeast(1, "--limit"));
    sub->add_option("--devices", in->devices,
                    "one worker per device, each on every W-th image, their sums added (default: every GPU with "
                    "--device cuda, else the one --device)")
        ->type_name("D1,D2,...");
    sub->add_option("--protocol", in->protocol,
                    "deformscope (|gradient| summed over channels, the model's preprocessing) or replknet (RepLKNet's "
                    "erf script exactly: PIL bicubic resize to 1024 x 1024, ImageNet mean/std, relu'd response and "
                    "gradient, their area ratios at 0.2/0.3/0.5/0.99 in result.json)")
        ->type_name("P")
        ->check(CLI::IsMember({"deformscope", "replknet"}));
    sub->add_option("--batch", in->batch, "images per forward/backward (1 to 1024)")
        ->type_name("B")
        ->check(CLI::Range(int64_t{1}, int64_t{1024}));
    sub->add_option("--shard", in->shard,
                    "average part K of N of the (sorted) images: every N-th from the K-th; `merge` combines the parts")
        ->type_name("K/N");
    in->request = std::make_unique<RequestOptions>(
        *sub, std::vector<std::string>{"--layer", "--response", "--input-size", "--signed", "--device", "--no-figures",
                                       "--log"});
    auto [merge, mi] = addCommand<MergeInputs>(app, commands, "merge", kMergeHelp, runMerge);
    merge->add_option("--inputs", mi->inputs, "the erf-average or study output folders (every --shard K/N part)")
        ->required()
        ->type_name("DIR ...");
    addRequired(merge, "--out", mi->out, "DIR", "the folder to write into");
    merge->add_flag("--no-figures", mi->noFigures, "write the data only");
}

} // namespace deformscope::cli
