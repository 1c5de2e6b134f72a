// The one analysis and export pipeline of a node, shared by the CLI (`analyze`,
// `compare`, `erf-average`) and the GUI's engine, so an export from the GUI is
// the CLI's output for the same node and settings.
//
//   prepareRun   model + image (on the model's grid) + AnalysisSession (the captured forward)
//   analyseNode  the node under a point, its sampling trace / ERF / saliency, object metrics
//   writeData    result.json, erf.npy, saliency_mask.npy, sampling.csv of one model
//   writeCompareData  the per-model folders and compare.json of `compare`
// Figures are drawn in ui/analysis_figure (report_figures.h), not here: no Qt.
//
// What to compute is one common::AnalysisRequest (core/common/request.h).
// Needs core_imaging (OpenCV), so it exists only in builds with imaging (not
// DEFORMSCOPE_CORE_ONLY); inputs.h is the part core-only builds have too.
// Failures a user can fix throw UsageError; a model that cannot be loaded or run
// throws model::ModelError; others std::exception. A Run is used from one thread
// at a time (its session is shared between copies: copies are cheap, and one
// Run's session may serve many clicks).
#pragma once

#include "core/analysis/analysis.h"
#include "core/imaging/image.h"
#include "core/model/model.h"
#include "core/common/request.h"
#include "core/report/inputs.h"
#include "core/report/video.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace deformscope::report {

// One model on one image, and (after analyseNode) its results for one node.
struct Run {
    std::string name; // the model file's stem (compare makes it unique: uniqueNames)
    model::LoadedModel model;
    std::string imagePath;              // the (first) image
    std::vector<std::string> framePaths; // every input frame's image (a video's as FILE#N)
    imaging::InputImage image;          // several frames: side by side (imaging::sideBySide)
    std::shared_ptr<analysis::AnalysisSession> session;
    analysis::Node node;
    std::array<double, 2> pixel{0, 0};   // original image x, y
    std::array<double, 2> inputXY{0, 0}; // the same on the input grid
    // RoI-head models: the region of interest the model was given, x0, y0, x1, y1 in input-grid
    // pixel edges (request.roi, else the whole image); nullopt for other models.
    std::optional<std::array<double, 4>> roi;
    std::optional<analysis::SamplingTrace> sampling;
    std::optional<analysis::ErfResult> erf;
    std::optional<analysis::SaliencyResult> saliency;
    std::optional<analysis::KernelView> kernel;
    std::optional<MotionReport> motion; // --what motion / --propagate (video.h)
    // The last motion report, kept across analyseNode's clearing: a later click on the
    // same run reuses its field and flows (they do not depend on the node).
    std::optional<MotionReport> motionKept;
    at::Tensor object; // [H, W] uint8 on the input grid, or undefined
    std::string objectSource;
    std::optional<analysis::ObjectMetrics> objectMetrics;
    std::vector<std::string> notes;
};

// How `model`'s metadata says images are normalised.
imaging::Normalization normalizationOf(const model::ModelMetadata& metadata);

// Loads the model on the request's device (resolveDevice), then prepareRun.
Run prepareRun(const std::string& modelPath, const std::string& image, const common::AnalysisRequest& request);
// Loads `image` for `model` (its normalisation; resized to request.inputSize,
// else the metadata's input size) and runs the captured forward. Throws UsageError
// for an image that cannot be read ("<path>: <problem>"), model::ModelError.
Run prepareRun(const model::LoadedModel& model, const std::string& image, const common::AnalysisRequest& request);
// The same with the model's input frames (video.h): as many images as the model
// has inputs, or frames of a video; UsageError when their number or sizes are
// wrong, a frame is past the video's end, ...
Run prepareRun(const model::LoadedModel& model, const InputSource& inputs, const common::AnalysisRequest& request);
Run prepareRun(const std::string& modelPath, const InputSource& inputs, const common::AnalysisRequest& request);

// The node is at request.at (on the original image or the input grid; default:
// the image's centre). Clears the run's previous results, picks the node of
// request.layer (default: defaultLayer) nearest to that point, runs the
// analyses the request asks for (the saliency search reporting to `progress`,
// which cancels it by returning false), finds the object region (findObject)
// and its metrics. Throws UsageError for an unknown layer, a point off the
// image, a bad response, a bad object mask, a required kernel view without a
// DK layer. The request is expected to be valid (checkRequest).
void analyseNode(Run& run, const common::AnalysisRequest& request, const analysis::SaliencyProgressFn& progress = {});
// The saliency search alone for the node analyseNode found (run with what.saliency off
// first, so the GUI shows the sampling points and the ERF while the search runs), then
// the object metrics again with its region.
void analyseSaliency(Run& run, const common::AnalysisRequest& request, const analysis::SaliencyProgressFn& progress = {});

// The object region on the input grid into run.object / run.objectSource, from
// request.object: a box, a mask file or (Auto) the image's <stem>_mask.png: the
// object under run.pixel, or every labelled pixel when that is background.
// Leaves run.object undefined when there is none.
void findObject(Run& run, const common::AnalysisRequest& request);

// Writes result.json, erf.npy, saliency_mask.npy, sampling.csv, kernel_scope.npy (what the run has)
// into `dir`, listing `figures` (file names) in the JSON; returns the JSON.
// result.json records the request too (its "request" key), so the files can be made again.
nlohmann::ordered_json writeData(const Run& run, const common::AnalysisRequest& request, const std::string& dir,
                                 const std::vector<std::string>& figures);

// compare: makes the runs' names unique (name, name_2, name_3, ...), in order.
void uniqueNames(std::vector<Run*>& runs);
// compare: writeData of each run into dir/<name>/, then dir/compare.json listing
// `figures`; returns compare.json's "models" array (one summary per run).
nlohmann::ordered_json writeCompareData(const std::vector<const Run*>& runs, const common::AnalysisRequest& request,
                                        const std::string& dir, const std::vector<std::string>& figures);

// Figure titles and base names of the two layouts.
std::string analyzeTitle(const Run& run);                   // "<name> — <layer>"
std::string compareTitle(const std::vector<const Run*>& runs); // "layer <layer of the first>"

// ---- erf-average ---------------------------------------------------------------------

struct ImageFolder {
    std::vector<std::string> files; // images, sorted, without the *_mask files, at most `limit`
    int64_t masks = 0;              // *_mask images left out
};
// The images of `folder` (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp); limit 0: all.
// Throws UsageError when it is not a folder or has no images.
ImageFolder listImages(const std::string& folder, int64_t limit = 0);

// The grid every image is resized to: `inputSize` when given, else the model's
// metadata size, else the first image's size. Throws UsageError when the first
// image cannot be read.
std::array<int64_t, 2> erfAverageInputSize(const model::LoadedModel& model, const std::vector<std::string>& files,
                                           std::optional<std::array<int64_t, 2>> inputSize = std::nullopt);
// analysis::averageErf over `files` (each loaded for the model at `inputSize`);
// `progress(done, total)` returning false cancels.
analysis::ErfAverageResult averageErfOver(const model::LoadedModel& model, const std::vector<std::string>& files,
                                          std::array<int64_t, 2> inputSize, const analysis::ErfAverageOptions& options,
                                          const std::function<bool(int64_t, int64_t)>& progress = {});
// Writes erf_average.npy and result.json into `dir` (created); returns the JSON.
nlohmann::ordered_json writeErfAverageData(const analysis::ErfAverageResult& result, const model::LoadedModel& model,
                                 const std::string& folder, std::array<int64_t, 2> inputSize, int64_t masks,
                                 const std::string& dir, const std::vector<std::string>& figures);

} // namespace deformscope::report
