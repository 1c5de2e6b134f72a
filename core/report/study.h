// The dataset study: does the receptive field adapt to the object? Over a folder of
// images with object masks, every object (a connected region of one id in the
// mask) gets the analyses of the node at its middle, and per model the
// receptive-field sizes are correlated with the objects' sizes (Pearson and
// Spearman, 95 % intervals). Shared by `deformscope-cli study` / `merge` and the GUI.
// Part of core_report's imaging half (DEFORMSCOPE_REPORT_WITH_IMAGING).
#pragma once

#include "core/analysis/statistics.h"
#include "core/common/request.h"
#include "core/model/model.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace deformscope::report {

// One object of a mask: the pixels of one connected (8-neighbour) region of one
// non-zero id. mask: [H, W] bool; label: the id; middle: the object's pixel
// nearest to its centroid (x, y; a concave object's centroid can lie outside it).
struct MaskObject {
    int64_t label = 0;
    at::Tensor mask;
    int64_t pixels = 0;
    std::array<int64_t, 2> middle{0, 0};
};
// The objects of an id map ([H, W] integer, 0 = background), largest first within an
// id, ids ascending; regions under `minPixels` are left out.
std::vector<MaskObject> maskObjects(const at::Tensor& ids, int64_t minPixels);

// One model's numbers for one object (areas and radii in input-grid pixels; -1 /
// NaN where the analysis was not asked for).
struct StudyRow {
    std::string model;           // the model file's stem
    int64_t imageIndex = 0;      // in the sorted image list of the whole study (shards keep it)
    std::string image;           // the image's file name
    int64_t object = 0;          // the object's index in its image (maskObjects' order)
    int64_t label = 0;           // its id in the mask
    std::string layer;
    int64_t fx = 0, fy = 0;      // the node
    double centreX = 0, centreY = 0; // the node's centre, input grid
    int64_t objectAreaPx = 0;
    double objectSizePx = 0;     // sqrt(object area)
    int64_t erfArea50Px = -1, erfArea90Px = -1;
    double erfRadius50Px = -1, erfRadius90Px = -1;
    double erfMassInside = -1;
    int64_t saliencyAreaPx = -1;
    double saliencySizePx = -1;  // sqrt(saliency area)
    double saliencyInside = -1;
    int64_t samplingPoints = -1, samplingUnique = -1;
    double samplingSpreadPx = -1; // weighted spread of the deepest level's points
    double samplingPointsInside = -1;
};

// The receptive-field measures the study correlates with objectSizePx (name, getter).
struct StudyMeasure {
    const char* name;
    double (*value)(const StudyRow&);
};
const std::vector<StudyMeasure>& studyMeasures();

// The analyses of every object of `imagePath` (its id map `maskPath`) for `model`:
// one captured forward, then one node per object (request.at set to the object's
// middle, request.object ignored: the object is the region itself). keepGoing() is
// asked during saliency searches and after each object; false stops early (the rows
// are then incomplete).
std::vector<StudyRow> studyImage(const model::LoadedModel& model, const std::string& modelName,
                                 const std::string& imagePath, const std::string& maskPath, int64_t imageIndex,
                                 const common::AnalysisRequest& request, int64_t minObjectPixels,
                                 const std::function<bool()>& keepGoing = {});

// study.csv: a header and one line per row.
std::string studyCsv(const std::vector<StudyRow>& rows);
// Rows <-> JSON objects (the keys are study.csv's columns), for result.json and `merge`.
nlohmann::ordered_json toJson(const StudyRow& row);
StudyRow studyRowFromJson(const nlohmann::ordered_json& j);

// Per model (in `models`' order) and measure: n, Pearson's and Spearman's r with their
// 95 % intervals and the least-squares slope, between the measure and objectSizePx over the model's rows (rows
// with a measure < 0 left out). The rows must be in the study's order
// (imageIndex, object, model) for results that do not depend on sharding.
nlohmann::ordered_json studyTable(const std::vector<StudyRow>& rows, const std::vector<std::string>& models);

// Sorts rows into the study's order: imageIndex, object, then the order of `models`.
void sortStudyRows(std::vector<StudyRow>& rows, const std::vector<std::string>& models);

// The mask of `image`: <stem>_mask.png next to it, or in the folder `masks` <stem>_mask.png
// or <stem>.png; "" when there is none.
std::string maskOf(const std::string& image, const std::string& masks);

struct StudyOptions {
    std::string images;              // the folder of images (listImages: sorted, *_mask files left out)
    std::string masks;               // "": <stem>_mask.png next to each image
    int64_t limit = 0;               // at most this many images of the sorted list (0: all)
    int64_t shard = 1, shards = 1;   // this run's part: every shards-th image from the shard-th
    int64_t minObjectPixels = 16;
    bool allowEmpty = false;         // no object found is a result (a worker's part), not an error
};

struct StudyRun {
    std::vector<StudyRow> rows;      // in the study's order (sortStudyRows)
    std::vector<std::string> skipped; // "<image>: <why>" for images without a mask
    int64_t images = 0;              // listed (the whole study, all shards)
    int64_t used = 0;                // this part's images with a mask
    bool cancelled = false;
};

// progress(done, total, what): after each image of this part (and during a saliency
// search, done unchanged); returning false cancels (the rows so far are kept).
using StudyProgress = std::function<bool(int64_t, int64_t, const std::string&)>;

// The study of `options.images` for `models` (names: unique, one per model) with the
// analyses of `request` (kernel view and motion off). Throws UsageError when the folder
// has no images, the shard has none, the masks folder does not exist, or no object is found.
StudyRun runStudy(const std::vector<const model::LoadedModel*>& models, const std::vector<std::string>& names,
                  const StudyOptions& options, const common::AnalysisRequest& request,
                  const StudyProgress& progress = {});

// runStudy with one worker thread per device (models loaded on each; `devices` from
// workerDevices): worker w of W studies every W-th image of this part, so the rows,
// sorted, are exactly one worker's. progress(done, total, image) sums the workers'
// progress (called from their threads, one at a time); false stops every worker.
StudyRun runStudyOnDevices(const std::vector<std::string>& modelPaths, const std::vector<std::string>& names,
                           const std::vector<c10::Device>& devices, const StudyOptions& options,
                           const common::AnalysisRequest& request, const StudyProgress& progress = {});

// result.json's fields that describe a run (format, models, folders, counts, request, shard).
nlohmann::ordered_json studyHeader(const std::vector<std::string>& modelPaths, const std::vector<std::string>& names,
                                   const StudyOptions& options, const StudyRun& run,
                                   const common::AnalysisRequest& request);
inline constexpr const char* kStudyFormat = "deformscope-study/1";

// Writes dir/study.csv and dir/result.json: `header` plus the rows (sorted), the table
// (studyTable), "data" and `figures`. Returns the document written.
nlohmann::ordered_json writeStudyData(const std::string& dir, nlohmann::ordered_json header,
                                      std::vector<StudyRow> rows, const std::vector<std::string>& names,
                                      const std::vector<std::string>& figures);

} // namespace deformscope::report
