#include "ui/analysis_figure/sweep_report.h"

#include "core/analysis/scale_map.h"
#include "core/common/atomic_file.h"
#include "core/common/json_file.h"
#include "core/imaging/image.h"
#include "core/report/report.h"
#include "ui/analysis_figure/report_figures.h"
#include "ui/figure/plot.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

namespace deformscope::figure {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

// Segmentation accuracy of `model` at input size s × s over `images` (each with a <stem>_mask.png of class ids):
// pixel accuracy and the mean IoU over the classes present in a mask or a prediction (the masks resized to the
// input grid by nearest neighbour; the prediction the argmax over the output's channels, at the input's size).
std::pair<double, double> segmentationAccuracy(const model::LoadedModel& model, const std::vector<std::string>& images,
                                               int64_t s) {
    at::NoGradGuard noGrad;
    int64_t correct = 0, total = 0;
    std::map<int64_t, std::pair<int64_t, int64_t>> classes; // id -> (intersection, union)
    for (const std::string& file : images) {
        const fs::path mask = fs::path(file).parent_path() / (fs::path(file).stem().string() + "_mask.png");
        if (!fs::exists(mask))
            continue;
        const imaging::InputImage in =
            imaging::loadImage(file, imaging::InputSize{s, s}, report::normalizationOf(model.metadata()));
        at::Tensor out = model.forward(in.tensor).detach().to(at::kCPU, at::kFloat);
        if (out.dim() != 4)
            throw report::UsageError(model.path() + ": --accuracy needs a dense output [N, classes, H, W], got " +
                             c10::str(out.sizes()));
        if (out.size(2) != s || out.size(3) != s)
            out = at::upsample_bilinear2d(out, {s, s}, false);
        const at::Tensor pred = out[0].argmax(0);
        const at::Tensor truth =
            at::upsample_nearest2d(imaging::readMask(mask.string()).to(at::kFloat).unsqueeze(0).unsqueeze(0), {s, s})[0][0]
                .to(at::kLong);
        correct += (pred == truth).sum().item<int64_t>();
        total += s * s;
        for (int64_t c = 0; c < out.size(1); ++c) {
            const at::Tensor p = pred == c, t = truth == c;
            auto& [inter, uni] = classes[c];
            inter += (p & t).sum().item<int64_t>();
            uni += (p | t).sum().item<int64_t>();
        }
    }
    if (total == 0)
        throw report::UsageError("--accuracy: no image with a <name>_mask.png among the " + std::to_string(images.size()) +
                         " images");
    double iou = 0;
    int present = 0;
    for (const auto& [c, iu] : classes)
        if (iu.second > 0) {
            iou += double(iu.first) / double(iu.second);
            ++present;
        }
    return {double(correct) / double(total), present ? iou / present : 0.0};
}

} // namespace

SweepOutcome writeSweep(const SweepSpec& spec, const std::function<bool(int64_t, int64_t, const std::string&)>& progress,
                        const std::function<void(const std::string&)>& notes) {
    ensureGuiApplication();
    SweepOutcome outcome;
    common::AnalysisRequest rq = spec.request;
    rq.what.erf = true;
    rq.what.sampling = false;
    rq.what.kernel = common::Analyses::Kernel::Off;
    rq.what.motion = false;
    const std::vector<int64_t>& sizes = spec.sizes;
    const int64_t total = int64_t(spec.models.size() * sizes.size());
    int64_t done = 0;
        report::makeDirectory(spec.dir);
        std::ostringstream csv;
        csv.precision(9);
        csv << "model,size,layer,fx,fy,centre_x,centre_y,object_area_px,erf_area50_px,erf_area90_px,"
               "erf_radius50_px,erf_radius90_px,erf90_to_object,saliency_area_px,saliency_to_object,pixel_accuracy,"
               "mean_iou\n";
        const std::vector<std::string>& accuracyImages = spec.accuracyImages;
        Json rows = Json::array();
        LinePlot accuracyPlot;
        accuracyPlot.title = "segmentation accuracy against input size";
        accuracyPlot.xLabel = "input size (px, square)";
        accuracyPlot.yLabel = "pixel accuracy";
        LinePlot ratioPlot;
        ratioPlot.title = "ERF (90 % area) / object area against input size";
        ratioPlot.xLabel = "input size (px, square)";
        ratioPlot.yLabel = "90 % ERF area / object area";
        ratioPlot.logY = true;
        Figure fig;
        fig.rows = int(spec.modelPaths.size());
        fig.cols = int(sizes.size());
        fig.title = "ERF against input size";
        for (int64_t s : sizes)
            fig.colLabels.push_back(std::to_string(s) + " x " + std::to_string(s));
        for (size_t mi = 0; mi < spec.models.size() && !outcome.cancelled; ++mi) {
            const model::LoadedModel& m = *spec.models[mi];
            const std::string& name = spec.names[mi];
            fig.rowLabels.push_back(name);
            ratioPlot.series.push_back({name, {}, {}});
            accuracyPlot.series.push_back({name, {}, {}});
            for (int64_t s : sizes) {
                if (progress && !progress(done, total, name + " at " + std::to_string(s) + " x " + std::to_string(s))) {
                    outcome.cancelled = true;
                    break;
                }
                ++done;
                common::AnalysisRequest at = rq;
                at.inputSize = std::array<int64_t, 2>{s, s};
                report::Run run = report::prepareRun(m, spec.image, at);
                run.name = name;
                report::analyseNode(run, at);
                const analysis::ErfMetrics& e = run.erf->metrics;
                const auto centre = run.session->nodeCentre(run.node);
                const std::vector<double> radii = analysis::massRadii(run.erf->map, centre, {0.5, 0.9});
                const int64_t object = run.object.defined() ? run.object.sum().item<int64_t>() : -1;
                const int64_t saliency = run.saliency ? run.saliency->areaPixels : -1;
                auto ratio = [&](double v) { return object > 0 && v >= 0 ? v / double(object) : -1.0; };
                std::pair<double, double> accuracy{-1, -1};
                if (!accuracyImages.empty())
                    accuracy = segmentationAccuracy(m, accuracyImages, s);
                auto orEmpty = [](double v) { return v < 0 ? std::string() : std::to_string(v); };
                csv << name << ',' << s << ',' << run.node.layer << ',' << run.node.fx << ',' << run.node.fy << ','
                    << centre[0] << ',' << centre[1] << ',' << object << ',' << e.areaPixels[0] << ','
                    << e.areaPixels[1] << ',' << radii[0] << ',' << radii[1] << ',' << ratio(double(e.areaPixels[1]))
                    << ',' << saliency << ',' << ratio(double(saliency)) << ',' << orEmpty(accuracy.first) << ','
                    << orEmpty(accuracy.second) << '\n';
                rows.push_back(Json::object({{"model", name},
                                             {"size", s},
                                             {"layer", run.node.layer},
                                             {"fx", run.node.fx},
                                             {"fy", run.node.fy},
                                             {"object_area_px", object},
                                             {"erf_area50_px", e.areaPixels[0]},
                                             {"erf_area90_px", e.areaPixels[1]},
                                             {"erf_radius50_px", radii[0]},
                                             {"erf_radius90_px", radii[1]},
                                             {"erf90_to_object", ratio(double(e.areaPixels[1]))},
                                             {"saliency_area_px", saliency},
                                             {"saliency_to_object", ratio(double(saliency))},
                                             {"pixel_accuracy", accuracy.first < 0 ? Json() : Json(accuracy.first)},
                                             {"mean_iou", accuracy.second < 0 ? Json() : Json(accuracy.second)}}));
                if (notes)
                    notes(name + " at " + std::to_string(s) + " x " + std::to_string(s) + ": 90 % of the ERF in " +
                          std::to_string(e.areaPixels[1]) + " px" +
                          (object > 0 ? ", object " + std::to_string(object) + " px" : std::string()));
                ratioPlot.series.back().x.push_back(double(s));
                ratioPlot.series.back().y.push_back(ratio(double(e.areaPixels[1])));
                accuracyPlot.series.back().x.push_back(double(s));
                accuracyPlot.series.back().y.push_back(accuracy.first < 0 ? std::nan("") : accuracy.first);
                if (rq.figures) {
                    Panel p = erfPanel(nodeResultsOf(run, rq));
                    p.title.clear(); // the row and column labels say it
                    if (object > 0) {
                        std::ostringstream r;
                        r.precision(3);
                        r << "90 % area / object: " << ratio(double(e.areaPixels[1]));
                        p.caption.push_back(r.str());
                    }
                    fig.panels.push_back(std::move(p));
                }
            }
        }
        common::writeFileAtomically((fs::path(spec.dir) / "sweep.csv").string(), csv.str());
        std::vector<std::string>& figures = outcome.figures;
        std::ostringstream footer;
        footer << "node of " << (rq.layer.empty() ? std::string("the suggested layer") : rq.layer) << " at ";
        if (rq.at)
            footer << "pixel " << rq.at->x << "," << rq.at->y;
        else
            footer << "the image's centre";
        footer << " of " << spec.image << ", response " << rq.response.toString();
        fig.footer = footer.str() + "; the ERF's 50 % / 90 % mass contours, the object dashed";
        if (rq.figures) {
            figures = writeNamedFigures(fig, spec.dir, "sweep");
            ratioPlot.footer = footer.str() + "; sweep.csv has the numbers";
            accuracyPlot.footer = "over the " + std::to_string(accuracyImages.size()) + " images of " + spec.accuracyFolder +
                                  " (masks: <name>_mask.png, class ids)";
            for (const auto& [plot, base] : {std::pair<const LinePlot*, std::string>{&ratioPlot, "sweep_ratio"},
                                             {&accuracyPlot, "sweep_accuracy"}}) {
                if (plot == &accuracyPlot && accuracyImages.empty())
                    continue;
                for (const char* ext : {".png", ".svg", ".pdf"}) {
                    const std::string name = base + ext;
                    const std::string error = saveLinePlot(*plot, (fs::path(spec.dir) / name).string());
                    if (!error.empty()) {
                        if (notes)
                            notes(error); // e.g. no object: nothing to plot
                        break;
                    }
                    figures.push_back(name);
                }
            }
        }
        Json sizesJson = Json::array();
        for (int64_t s : sizes)
            sizesJson.push_back(s);
        common::writeJsonFile((fs::path(spec.dir) / "result.json").string(),
                              Json::object({{"format", "deformscope-sweep/1"},
                                            {"image", spec.image},
                                            {"models", spec.modelPaths},
                                            {"sizes", sizesJson},
                                            {"rows", rows},
                                            {"data", "sweep.csv"},
                                            {"figures", figures}}));
    if (progress && !outcome.cancelled)
        progress(total, total, std::string());
    outcome.rows = int64_t(rows.size());
    return outcome;
}

} // namespace deformscope::figure
