#include "core/report/study.h"

#include "core/analysis/scale_map.h"
#include "core/common/atomic_file.h"
#include "core/common/json_file.h"
#include "core/imaging/image.h"
#include "core/report/report.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <cmath>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>
#include <type_traits>

namespace deformscope::report {

namespace {
using common::Json;

Json orNull(double v) { return std::isfinite(v) ? Json(v) : Json(); }
} // namespace

std::vector<MaskObject> maskObjects(const at::Tensor& idsIn, int64_t minPixels) {
    if (idsIn.dim() != 2)
        throw UsageError("a mask must be [H, W] ids, got " + c10::str(idsIn.sizes()));
    const at::Tensor ids = idsIn.to(at::kCPU, at::kLong).contiguous();
    const int64_t H = ids.size(0), W = ids.size(1);
    const auto id = ids.accessor<int64_t, 2>();
    std::vector<int64_t> seen(size_t(H * W), 0);
    std::map<int64_t, std::vector<MaskObject>> byLabel;
    std::deque<int64_t> queue;
    for (int64_t y0 = 0; y0 < H; ++y0)
        for (int64_t x0 = 0; x0 < W; ++x0) {
            const int64_t label = id[y0][x0];
            if (label == 0 || seen[size_t(y0 * W + x0)])
                continue;
            std::vector<int64_t> members;
            seen[size_t(y0 * W + x0)] = 1;
            queue.push_back(y0 * W + x0);
            while (!queue.empty()) {
                const int64_t p = queue.front();
                queue.pop_front();
                members.push_back(p);
                const int64_t y = p / W, x = p % W;
                for (int64_t dy = -1; dy <= 1; ++dy)
                    for (int64_t dx = -1; dx <= 1; ++dx) {
                        const int64_t yy = y + dy, xx = x + dx;
                        if (yy < 0 || xx < 0 || yy >= H || xx >= W || seen[size_t(yy * W + xx)] || id[yy][xx] != label)
                            continue;
                        seen[size_t(yy * W + xx)] = 1;
                        queue.push_back(yy * W + xx);
                    }
            }
            if (int64_t(members.size()) < std::max<int64_t>(minPixels, 1))
                continue;
            MaskObject o;
            o.label = label;
            o.pixels = int64_t(members.size());
            o.mask = at::zeros({H, W}, at::kBool);
            auto m = o.mask.accessor<bool, 2>();
            double cx = 0, cy = 0;
            for (int64_t p : members) {
                m[p / W][p % W] = true;
                cx += double(p % W);
                cy += double(p / W);
            }
            cx /= double(members.size());
            cy /= double(members.size());
            double best = std::numeric_limits<double>::infinity();
            for (int64_t p : members) { // the member nearest the centroid (first in row-major order on ties)
                const double d = (double(p % W) - cx) * (double(p % W) - cx) + (double(p / W) - cy) * (double(p / W) - cy);
                if (d < best) {
                    best = d;
                    o.middle = {p % W, p / W};
                }
            }
            byLabel[label].push_back(std::move(o));
        }
    std::vector<MaskObject> out;
    for (auto& [label, objects] : byLabel) {
        std::stable_sort(objects.begin(), objects.end(),
                         [](const MaskObject& a, const MaskObject& b) { return a.pixels > b.pixels; });
        for (MaskObject& o : objects)
            out.push_back(std::move(o));
    }
    return out;
}

const std::vector<StudyMeasure>& studyMeasures() {
    static const std::vector<StudyMeasure> measures{
        {"erf_radius50_px", [](const StudyRow& r) { return r.erfRadius50Px; }},
        {"erf_radius90_px", [](const StudyRow& r) { return r.erfRadius90Px; }},
        {"saliency_size_px", [](const StudyRow& r) { return r.saliencySizePx; }},
        {"sampling_spread_px", [](const StudyRow& r) { return r.samplingSpreadPx; }},
    };
    return measures;
}

std::vector<StudyRow> studyImage(const model::LoadedModel& model, const std::string& modelName,
                                 const std::string& imagePath, const std::string& maskPath, int64_t imageIndex,
                                 const common::AnalysisRequest& request, int64_t minObjectPixels,
                                 const std::function<bool()>& keepGoing) {
    at::Tensor ids;
    try {
        ids = imaging::readMask(maskPath);
    } catch (const std::exception& e) {
        throw UsageError(e.what());
    }
    Run run = prepareRun(model, imagePath, request);
    if (ids.size(0) != run.image.originalHeight || ids.size(1) != run.image.originalWidth)
        throw UsageError(maskPath + ": the mask is " + std::to_string(ids.size(1)) + " x " +
                         std::to_string(ids.size(0)) + " but its image " + imagePath + " is " +
                         std::to_string(run.image.originalWidth) + " x " + std::to_string(run.image.originalHeight));
    const std::vector<MaskObject> objects = maskObjects(ids, minObjectPixels);
    std::vector<StudyRow> rows;
    for (size_t k = 0; k < objects.size(); ++k) {
        const MaskObject& o = objects[k];
        common::AnalysisRequest rq = request;
        rq.at = common::Location{common::Grid::Original, double(o.middle[0]), double(o.middle[1])};
        rq.object.kind = common::ObjectRegion::Kind::None;
        analyseNode(run, rq, [&](const analysis::SaliencyProgress&) { return !keepGoing || keepGoing(); });
        if (keepGoing && !keepGoing())
            break; // cancelled: the caller drops this image
        const at::Tensor inside =
            at::upsample_nearest2d(o.mask.to(at::kFloat).view({1, 1, ids.size(0), ids.size(1)}),
                                   {run.image.height, run.image.width})[0][0]
                .gt(0.5);
        const analysis::ObjectMetrics om =
            analysis::objectMetrics(inside, run.erf ? &*run.erf : nullptr, run.sampling ? &*run.sampling : nullptr,
                                    run.saliency ? &*run.saliency : nullptr);
        StudyRow r;
        r.model = modelName;
        r.imageIndex = imageIndex;
        r.image = std::filesystem::path(imagePath).filename().string();
        r.object = int64_t(k);
        r.label = o.label;
        r.layer = run.node.layer;
        r.fx = run.node.fx;
        r.fy = run.node.fy;
        const std::array<double, 2> centre = run.session->nodeCentre(run.node);
        r.centreX = centre[0];
        r.centreY = centre[1];
        r.objectAreaPx = om.objectPixels;
        r.objectSizePx = std::sqrt(double(om.objectPixels));
        if (run.erf) {
            r.erfArea50Px = run.erf->metrics.areaPixels[0];
            r.erfArea90Px = run.erf->metrics.areaPixels[1];
            const std::vector<double> radii = analysis::massRadii(run.erf->map.abs(), centre, {0.5, 0.9});
            r.erfRadius50Px = radii[0];
            r.erfRadius90Px = radii[1];
            r.erfMassInside = om.erfMassInside;
        }
        if (run.saliency) {
            r.saliencyAreaPx = run.saliency->areaPixels;
            r.saliencySizePx = std::sqrt(double(run.saliency->areaPixels));
            r.saliencyInside = om.saliencyAreaInside;
        }
        if (run.sampling) {
            r.samplingPoints = int64_t(run.sampling->points.size());
            r.samplingUnique = analysis::uniquePoints(*run.sampling, run.sampling->levels);
            r.samplingSpreadPx = analysis::weightedSpread(*run.sampling);
            r.samplingPointsInside = om.samplingPointsInside;
        }
        rows.push_back(std::move(r));
    }
    return rows;
}

namespace {

// The columns of study.csv and the keys of a row in result.json, in one place.
// Row: StudyRow or const StudyRow; visit(key, field) gets the field by (const) reference.
template <typename Row, typename Visit>
void eachField(Row& r, Visit&& visit) {
    visit("model", r.model);
    visit("image_index", r.imageIndex);
    visit("image", r.image);
    visit("object", r.object);
    visit("label", r.label);
    visit("layer", r.layer);
    visit("fx", r.fx);
    visit("fy", r.fy);
    visit("centre_x", r.centreX);
    visit("centre_y", r.centreY);
    visit("object_area_px", r.objectAreaPx);
    visit("object_size_px", r.objectSizePx);
    visit("erf_area50_px", r.erfArea50Px);
    visit("erf_area90_px", r.erfArea90Px);
    visit("erf_radius50_px", r.erfRadius50Px);
    visit("erf_radius90_px", r.erfRadius90Px);
    visit("erf_mass_inside", r.erfMassInside);
    visit("saliency_area_px", r.saliencyAreaPx);
    visit("saliency_size_px", r.saliencySizePx);
    visit("saliency_inside", r.saliencyInside);
    visit("sampling_points", r.samplingPoints);
    visit("sampling_unique_points", r.samplingUnique);
    visit("sampling_spread_px", r.samplingSpreadPx);
    visit("sampling_points_inside", r.samplingPointsInside);
}

std::string csvText(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos)
        return s;
    std::string q = "\"";
    for (char c : s)
        q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

} // namespace

std::string studyCsv(const std::vector<StudyRow>& rows) {
    std::ostringstream csv;
    csv.precision(17);
    bool first = true;
    const StudyRow blank;
    eachField(blank, [&](const char* key, const auto&) {
        csv << (first ? "" : ",") << key;
        first = false;
    });
    csv << '\n';
    for (const StudyRow& r : rows) {
        first = true;
        eachField(r, [&](const char*, const auto& v) {
            csv << (first ? "" : ",");
            first = false;
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string>)
                csv << csvText(v);
            else if constexpr (std::is_same_v<T, double>) {
                if (v != -1 && std::isfinite(v)) // -1: not computed; left empty like NaN
                    csv << v;
            } else
                csv << (v == -1 ? std::string() : std::to_string(v));
        });
        csv << '\n';
    }
    return csv.str();
}

Json toJson(const StudyRow& r) {
    Json j = Json::object();
    eachField(r, [&](const char* key, const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>)
            j[key] = v;
        else if constexpr (std::is_same_v<T, double>)
            j[key] = v == -1 ? Json() : orNull(v);
        else
            j[key] = v == -1 ? Json() : Json(v);
    });
    return j;
}

StudyRow studyRowFromJson(const Json& j) {
    StudyRow r;
    eachField(r, [&](const char* key, auto& target) {
        using T = std::decay_t<decltype(target)>;
        if (!j.contains(key))
            throw UsageError(std::string("a study row has no '") + key + "' (written by another version?)");
        const Json& v = j.at(key);
        if constexpr (std::is_same_v<T, std::string>)
            target = v.get<std::string>();
        else if constexpr (std::is_same_v<T, double>)
            target = v.is_null() ? -1.0 : v.get<double>();
        else
            target = v.is_null() ? T(-1) : v.get<T>();
    });
    return r;
}

void sortStudyRows(std::vector<StudyRow>& rows, const std::vector<std::string>& models) {
    auto modelRank = [&](const std::string& m) {
        return int64_t(std::find(models.begin(), models.end(), m) - models.begin());
    };
    std::stable_sort(rows.begin(), rows.end(), [&](const StudyRow& a, const StudyRow& b) {
        return std::tuple(a.imageIndex, a.object, modelRank(a.model)) <
               std::tuple(b.imageIndex, b.object, modelRank(b.model));
    });
}

Json studyTable(const std::vector<StudyRow>& rows, const std::vector<std::string>& models) {
    auto corr = [](const analysis::Correlation& c) {
        return Json::object({{"r", orNull(c.r)}, {"ci95", Json::array({orNull(c.low), orNull(c.high)})}});
    };
    Json table = Json::array();
    for (const std::string& m : models) {
        Json measures = Json::object();
        int64_t objects = 0;
        for (const StudyRow& r : rows)
            objects += r.model == m;
        for (const StudyMeasure& measure : studyMeasures()) {
            std::vector<double> x, y;
            for (const StudyRow& r : rows)
                if (r.model == m && measure.value(r) >= 0) {
                    x.push_back(r.objectSizePx);
                    y.push_back(measure.value(r));
                }
            if (x.empty())
                continue;
            const analysis::Correlation p = analysis::pearson(x, y), s = analysis::spearman(x, y);
            measures[measure.name] = Json::object(
                {{"n", p.n}, {"pearson", corr(p)}, {"spearman", corr(s)}, {"slope", orNull(analysis::slope(x, y))}});
        }
        table.push_back(Json::object({{"model", m}, {"objects", objects}, {"against", "object_size_px"},
                                      {"measures", measures}}));
    }
    return table;
}

std::string maskOf(const std::string& image, const std::string& masks) {
    namespace fs = std::filesystem;
    const std::string stem = fs::path(image).stem().string();
    const fs::path dir = masks.empty() ? fs::path(image).parent_path() : fs::path(masks);
    for (const fs::path& p : {dir / (stem + "_mask.png"), dir / (stem + ".png")})
        if (fs::is_regular_file(p) && (!masks.empty() || p.filename() != fs::path(image).filename()))
            return p.string();
    return {};
}

StudyRun runStudy(const std::vector<const model::LoadedModel*>& models, const std::vector<std::string>& names,
                  const StudyOptions& options, const common::AnalysisRequest& requestIn,
                  const StudyProgress& progress) {
    namespace fs = std::filesystem;
    common::AnalysisRequest request = requestIn;
    request.what.kernel = common::Analyses::Kernel::Off;
    request.what.motion = false;
    if (models.empty() || models.size() != names.size())
        throw UsageError("a study needs at least one model (and one name per model)");
    if (!options.masks.empty() && !fs::is_directory(options.masks))
        throw UsageError(options.masks + ": --masks is not a folder");
    const ImageFolder all = listImages(options.images, options.limit);
    StudyRun out;
    out.images = int64_t(all.files.size());
    std::vector<int64_t> mine; // indices into the whole sorted list
    for (int64_t i = options.shard - 1; i < int64_t(all.files.size()); i += std::max<int64_t>(options.shards, 1))
        mine.push_back(i);
    if (mine.empty())
        throw UsageError("shard " + std::to_string(options.shard) + "/" + std::to_string(options.shards) +
                         ": no image falls in this part (" + std::to_string(all.files.size()) + " images)");
    const int64_t total = int64_t(mine.size());
    for (int64_t j = 0; j < total; ++j) {
        const std::string& image = all.files[size_t(mine[size_t(j)])];
        const std::string name = fs::path(image).filename().string();
        if (progress && !progress(j, total, name)) {
            out.cancelled = true;
            break;
        }
        const std::string mask = maskOf(image, options.masks);
        if (mask.empty()) {
            out.skipped.push_back(image + ": no mask (" +
                                  (options.masks.empty() ? std::string("<name>_mask.png next to it")
                                                         : options.masks + "/<name>_mask.png or <name>.png") +
                                  ")");
            continue;
        }
        std::vector<StudyRow> found;
        for (size_t k = 0; k < models.size(); ++k) {
            std::vector<StudyRow> r = studyImage(*models[k], names[k], image, mask, mine[size_t(j)], request,
                                                 options.minObjectPixels, [&] {
                                                     return !progress || progress(j, total, name);
                                                 });
            found.insert(found.end(), r.begin(), r.end());
        }
        if (progress && !progress(j, total, name)) { // cancelled inside: this image is incomplete
            out.cancelled = true;
            break;
        }
        out.rows.insert(out.rows.end(), found.begin(), found.end());
        ++out.used;
    }
    if (progress && !out.cancelled)
        progress(total, total, std::string());
    if (out.rows.empty() && !out.cancelled && !options.allowEmpty)
        throw UsageError(options.images + ": no object found in the masks of " + std::to_string(total) +
                         " images (objects of at least " + std::to_string(options.minObjectPixels) + " px; " +
                         std::to_string(out.skipped.size()) + " images without a mask)");
    sortStudyRows(out.rows, names);
    return out;
}

StudyRun runStudyOnDevices(const std::vector<std::string>& modelPaths, const std::vector<std::string>& names,
                           const std::vector<c10::Device>& devices, const StudyOptions& options,
                           const common::AnalysisRequest& request, const StudyProgress& progress) {
    if (devices.empty())
        throw UsageError("a study needs at least one device");
    const int64_t workers = int64_t(devices.size());
    // Worker w takes the images i of this part (i = shard - 1 mod shards) with
    // i = shard - 1 + w * shards mod shards * workers: a shard of shards * workers.
    const int64_t listed = int64_t(listImages(options.images, options.limit).files.size());
    std::vector<StudyOptions> parts;
    for (int64_t w = 0; w < workers; ++w) {
        StudyOptions o = options;
        o.shard = options.shard + w * options.shards;
        o.shards = options.shards * workers;
        o.allowEmpty = true;
        if (o.shard - 1 < listed) // a worker past the list's end gets nothing
            parts.push_back(o);
    }
    if (parts.empty())
        throw UsageError("shard " + std::to_string(options.shard) + "/" + std::to_string(options.shards) +
                         ": no image falls in this part (" + std::to_string(listed) + " images)");
    std::vector<StudyRun> runs(parts.size());
    std::vector<std::exception_ptr> errors(parts.size());
    std::vector<int64_t> done(parts.size(), 0), total(parts.size(), 0);
    std::mutex lock;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (size_t w = 0; w < parts.size(); ++w)
        threads.emplace_back([&, w] {
            try {
                std::vector<model::LoadedModel> models;
                for (const std::string& path : modelPaths)
                    models.push_back(model::LoadedModel::load(path, devices[w]));
                std::vector<const model::LoadedModel*> pointers;
                for (const model::LoadedModel& m : models)
                    pointers.push_back(&m);
                runs[w] = runStudy(pointers, names, parts[w], request,
                                   [&](int64_t d, int64_t t, const std::string& image) {
                                       if (stop)
                                           return false;
                                       std::lock_guard<std::mutex> guard(lock);
                                       done[w] = d;
                                       total[w] = t;
                                       int64_t sd = 0, st = 0;
                                       for (size_t k = 0; k < parts.size(); ++k) {
                                           sd += done[k];
                                           st += total[k];
                                       }
                                       if (progress && !progress(std::min(sd, st), st, image))
                                           stop = true;
                                       return !stop.load();
                                   });
            } catch (...) {
                errors[w] = std::current_exception();
                stop = true;
            }
        });
    for (std::thread& t : threads)
        t.join();
    for (const std::exception_ptr& e : errors)
        if (e)
            std::rethrow_exception(e);
    StudyRun out;
    out.images = listed;
    for (StudyRun& r : runs) {
        out.rows.insert(out.rows.end(), r.rows.begin(), r.rows.end());
        out.skipped.insert(out.skipped.end(), r.skipped.begin(), r.skipped.end());
        out.used += r.used;
        out.cancelled = out.cancelled || r.cancelled;
    }
    sortStudyRows(out.rows, names);
    std::sort(out.skipped.begin(), out.skipped.end());
    if (out.rows.empty() && !out.cancelled && !options.allowEmpty)
        throw UsageError(options.images + ": no object found in the masks of this part's images (objects of at "
                         "least " + std::to_string(options.minObjectPixels) + " px; " +
                         std::to_string(out.skipped.size()) + " images without a mask)");
    return out;
}

Json studyHeader(const std::vector<std::string>& modelPaths, const std::vector<std::string>& names,
                 const StudyOptions& options, const StudyRun& run, const common::AnalysisRequest& request) {
    Json skipped = Json::array();
    for (const std::string& s : run.skipped)
        skipped.push_back(s);
    return Json::object({{"format", kStudyFormat},
                         {"models", modelPaths},
                         {"model_names", names},
                         {"images_folder", options.images},
                         {"masks_folder", options.masks.empty() ? Json() : Json(options.masks)},
                         {"images", run.images},
                         {"images_used", run.used},
                         {"skipped", skipped},
                         {"min_object_px", options.minObjectPixels},
                         {"cancelled", run.cancelled},
                         {"request", common::toJson(request)},
                         {"shard", Json::object({{"index", options.shard}, {"count", options.shards}})}});
}

Json writeStudyData(const std::string& dir, Json doc, std::vector<StudyRow> rows,
                    const std::vector<std::string>& names, const std::vector<std::string>& figures) {
    namespace fs = std::filesystem;
    sortStudyRows(rows, names);
    makeDirectory(dir);
    common::writeFileAtomically((fs::path(dir) / "study.csv").string(), studyCsv(rows));
    Json rowsJson = Json::array();
    for (const StudyRow& r : rows)
        rowsJson.push_back(toJson(r));
    doc["table"] = studyTable(rows, names);
    doc["data"] = "study.csv";
    doc["figures"] = figures;
    doc["rows"] = rowsJson;
    common::writeJsonFile((fs::path(dir) / "result.json").string(), doc);
    return doc;
}

} // namespace deformscope::report
