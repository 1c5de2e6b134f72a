#include "core/report/report.h"

#include "core/common/json.h"
#include "core/common/npy.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

namespace deformscope::report {

namespace {
namespace fs = std::filesystem;
using analysis::AnalysisError;
using common::Json;

std::string inDir(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }
} // namespace

// ---- one model on one image ----------------------------------------------------------

Run prepareRun(const std::string& modelPath, const Settings& s, const c10::Device& device) {
    return prepareRun(model::LoadedModel::load(modelPath, device), s);
}

Run prepareRun(const model::LoadedModel& m, const Settings& s) {
    Run r;
    r.name = stemOf(m.path());
    r.model = m;
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
    r.session = std::make_shared<analysis::AnalysisSession>(r.model, r.image.tensor);
    return r;
}

void findObject(Run& r, const Settings& s) {
    r.object = at::Tensor();
    r.objectSource.clear();
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

void analyseNode(Run& r, const Settings& s, std::optional<std::array<double, 2>> inputPoint,
                 const analysis::SaliencyProgressFn& progress) {
    r.sampling.reset();
    r.erf.reset();
    r.saliency.reset();
    r.kernel.reset();
    r.objectMetrics.reset();
    r.object = at::Tensor();
    r.objectSource.clear();
    const std::string layer = s.layer.empty() ? defaultLayer(r.model, r.session->graph()) : s.layer;
    if (!r.session->graph().find(layer))
        throw UsageError(r.model.path() + " has no layer '" + layer + "'; its layers are: " + r.session->graph().names());
    if (inputPoint) {
        const auto& p = *inputPoint;
        if (!(p[0] >= -0.5 && p[1] >= -0.5 && p[0] <= double(r.image.width) - 0.5 && p[1] <= double(r.image.height) - 0.5))
            throw UsageError("point " + std::to_string(p[0]) + "," + std::to_string(p[1]) + " is outside the input grid of " +
                             s.image + " (" + std::to_string(r.image.width) + " x " + std::to_string(r.image.height) + ")");
        r.inputXY = p;
        r.pixel = imaging::inputToOriginal(r.image, p[0], p[1]);
    } else {
        r.pixel = s.pixel.value_or(std::array<double, 2>{(double(r.image.originalWidth) - 1) / 2,
                                                           (double(r.image.originalHeight) - 1) / 2});
        if (r.pixel[0] < -0.5 || r.pixel[1] < -0.5 || r.pixel[0] > double(r.image.originalWidth) - 0.5 ||
            r.pixel[1] > double(r.image.originalHeight) - 0.5)
            throw UsageError("--pixel " + std::to_string(r.pixel[0]) + "," + std::to_string(r.pixel[1]) + " is outside " +
                             s.image + " (" + std::to_string(r.image.originalWidth) + " x " +
                             std::to_string(r.image.originalHeight) + ")");
        r.inputXY = imaging::originalToInput(r.image, r.pixel[0], r.pixel[1]);
    }
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
    if (s.saliency)
        r.saliency = r.session->saliency(r.node, s.saliencyOptions, s.baseline, progress);
    if (s.kernel && (s.kernelRequired || !r.session->kernelLayer(r.node).empty())) {
        try {
            r.kernel = r.session->kernel(r.node);
        } catch (const AnalysisError& e) {
            throw UsageError(r.model.path() + ": " + e.what());
        }
    }
    findObject(r, s);
    if (r.object.defined())
        r.objectMetrics = analysis::objectMetrics(r.object, r.erf ? &*r.erf : nullptr,
                                                  r.sampling ? &*r.sampling : nullptr,
                                                  r.saliency ? &*r.saliency : nullptr);
}

// ---- data files ----------------------------------------------------------------------

Json writeData(const Run& r, const Settings& s, const std::string& dirPath, const std::vector<std::string>& figures) {
    const fs::path dir(dirPath);
    makeDirectory(dirPath);
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
        // kernel_weight: Deformable Kernel taps only (the resampled kernel's mean |weight|), else empty.
        csv << "x,y,level,weight,inside,modulation,layer,parent,tap,kernel_weight\n";
        const auto& layers = r.session->graph().layers();
        for (const analysis::SamplingPoint& p : r.sampling->points)
            csv << p.x << ',' << p.y << ',' << p.level << ',' << p.weight << ',' << (p.inside ? 1 : 0) << ','
                << p.modulation << ',' << layers[size_t(p.layer)].name << ',' << p.parent << ',' << p.tap << ','
                << (std::isnan(p.kernelWeight) ? std::string() : std::to_string(p.kernelWeight)) << '\n';
        writeText((dir / "sampling.csv").string(), csv.str());
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
    if (r.kernel) {
        common::writeNpy((dir / "kernel_scope.npy").string(), r.kernel->scopeWeight.to(at::kFloat).contiguous());
        Json j = analysis::toJson(*r.kernel);
        j["file"] = "kernel_scope.npy";
        doc["kernel"] = j;
        files.push_back("kernel_scope.npy");
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
    writeText((dir / "result.json").string(), doc.dump(2) + "\n");
    return doc;
}

void uniqueNames(std::vector<Run*>& runs) {
    std::set<std::string> names;
    for (Run* r : runs) {
        std::string name = r->name;
        for (int i = 2; names.count(name); ++i)
            name = r->name + "_" + std::to_string(i);
        names.insert(name);
        r->name = name;
    }
}

Json writeCompareData(const std::vector<const Run*>& runs, const Settings& s, const std::string& dirPath,
                      const std::vector<std::string>& figures) {
    const fs::path dir(dirPath);
    Json models = Json::array();
    for (const Run* r : runs) {
        const Json doc = writeData(*r, s, (dir / r->name).string(), {});
        Json summary = Json::object({{"name", r->name}, {"folder", r->name}, {"node", doc.at("node")}});
        for (const char* k : {"sampling", "erf", "saliency", "kernel", "object"})
            if (const Json* v = doc.find(k))
                summary[k] = *v;
        models.push_back(summary);
    }
    Json figs = Json::array();
    for (const auto& f : figures)
        figs.push_back(f);
    writeText((dir / "compare.json").string(),
              Json::object({{"image", s.image}, {"models", models}, {"figures", figs}}).dump(2) + "\n");
    return models;
}

std::string analyzeTitle(const Run& r) { return r.name + " — " + r.node.layer; }

std::string compareTitle(const std::vector<const Run*>& runs) {
    return runs.empty() ? std::string("layer") : "layer " + runs.front()->node.layer;
}

// ---- erf-average ---------------------------------------------------------------------

ImageFolder listImages(const std::string& folder, int64_t limit) {
    if (!fs::is_directory(folder))
        throw UsageError(folder + ": is not a folder of images");
    ImageFolder result;
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
            ++result.masks;
            continue;
        }
        result.files.push_back(entry.path().string());
    }
    std::sort(result.files.begin(), result.files.end());
    if (limit > 0 && int64_t(result.files.size()) > limit)
        result.files.resize(size_t(limit));
    if (result.files.empty())
        throw UsageError(folder + ": has no images (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp)");
    return result;
}

std::array<int64_t, 2> erfAverageInputSize(const model::LoadedModel& m, const std::vector<std::string>& files,
                                           std::optional<std::array<int64_t, 2>> inputSize) {
    std::optional<std::array<int64_t, 2>> size = m.metadata().inputSize;
    if (inputSize)
        size = inputSize;
    if (!size) { // every image must come out the same size: the first image's
        try {
            const imaging::InputImage first = imaging::loadImage(files.at(0));
            size = std::array<int64_t, 2>{first.height, first.width};
        } catch (const std::exception& e) {
            throw UsageError(e.what());
        }
    }
    return *size;
}

analysis::ErfAverageResult averageErfOver(const model::LoadedModel& m, const std::vector<std::string>& files,
                                          std::array<int64_t, 2> size, const analysis::ErfAverageOptions& options,
                                          const std::function<bool(int64_t, int64_t)>& progress) {
    imaging::Normalization norm;
    norm.mean = m.metadata().mean;
    norm.std = m.metadata().std;
    norm.bgr = m.metadata().colorOrder == "BGR";
    return analysis::averageErf(
        m, int64_t(files.size()),
        [&](int64_t i) { return imaging::loadImage(files[size_t(i)], size, norm).tensor; },
        [&](int64_t i) { return files[size_t(i)]; }, options, progress);
}

Json writeErfAverageData(const analysis::ErfAverageResult& result, const model::LoadedModel& m,
                         const std::string& folder, std::array<int64_t, 2> size, int64_t masks, const std::string& dir,
                         const std::vector<std::string>& figures) {
    makeDirectory(dir);
    common::writeNpy(inDir(dir, "erf_average.npy"), result.map);
    Json doc = analysis::toJson(result);
    doc["model"] = m.path();
    doc["images_folder"] = folder;
    doc["input_size"] = Json::array({size[0], size[1]});
    doc["file"] = "erf_average.npy";
    doc["masks_skipped"] = masks;
    Json figs = Json::array();
    for (const auto& f : figures)
        figs.push_back(f);
    doc["figures"] = figs;
    writeText(inDir(dir, "result.json"), doc.dump(2) + "\n");
    return doc;
}

} // namespace deformscope::report
