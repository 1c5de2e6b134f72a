#include "core/report/report.h"

#include "core/common/atomic_file.h"
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "core/imaging/pil_resize.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>
#include <sstream>

namespace deformscope::report {

namespace {
namespace fs = std::filesystem;
using analysis::AnalysisError;
using common::Json;

std::string inDir(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

Json stringArray(const std::vector<std::string>& items) {
    Json a = Json::array();
    for (const std::string& s : items)
        a.push_back(s);
    return a;
}
} // namespace

imaging::Normalization normalizationOf(const model::ModelMetadata& md) {
    imaging::Normalization norm;
    norm.mean = md.mean;
    norm.std = md.std;
    norm.bgr = md.colorOrder == "BGR";
    return norm;
}

// ---- one model on one image ----------------------------------------------------------

Run prepareRun(const std::string& modelPath, const std::string& image, const common::AnalysisRequest& rq) {
    return prepareRun(model::LoadedModel::load(modelPath, resolveDevice(rq.device)), image, rq);
}

Run prepareRun(const model::LoadedModel& m, const std::string& image, const common::AnalysisRequest& rq) {
    InputSource inputs;
    inputs.images = {image};
    return prepareRun(m, inputs, rq);
}

Run prepareRun(const std::string& modelPath, const InputSource& inputs, const common::AnalysisRequest& rq) {
    return prepareRun(model::LoadedModel::load(modelPath, resolveDevice(rq.device)), inputs, rq);
}

Run prepareRun(const model::LoadedModel& m, const InputSource& inputs, const common::AnalysisRequest& rq) {
    Run r;
    r.name = stemOf(m.path());
    r.model = m;
    r.framePaths = inputs.frameNames();
    r.imagePath = r.framePaths.empty() ? std::string() : r.framePaths.front();
    if (!inputs.video.empty())
        r.imagePath = inputs.video;
    for (const std::string& n : r.model.notes())
        r.notes.push_back(n);
    const int64_t I = m.inputCount();
    const int64_t given = int64_t(inputs.video.empty() ? inputs.images.size() : inputs.frames.size());
    if (given != I) {
        std::string names;
        for (const auto& n : m.inputNames())
            names += (names.empty() ? "" : ", ") + n;
        throw UsageError(m.path() + " takes " + std::to_string(I) + (I == 1 ? " input" : " input frames") + " (" + names +
                         ") but " + std::to_string(given) + (inputs.video.empty() ? " images were" : " video frames were") +
                         " given (" + inputs.describe() + ")" +
                         (I > 1 ? ": give --image once per input, in forward's order, or --video FILE --frames "
                                  "t,u" : ""));
    }
    const auto size = rq.inputSize ? rq.inputSize : r.model.metadata().inputSize;
    // A size known before loading is checked before the image is resized to it.
    if (size)
        checkMemory(r.model, *size, inputs.describe());
    try {
        r.image = inputs.video.empty()
                      ? imaging::loadFrames(inputs.images, size, normalizationOf(r.model.metadata()))
                      : imaging::loadVideoFrames(inputs.video, inputs.frames, size, normalizationOf(r.model.metadata()));
    } catch (const c10::Error& e) {
        // LibTorch's allocator: one line, no backtrace, and what to do.
        std::string m = e.what_without_backtrace();
        m = m.substr(0, m.find('\n'));
        if (m.find("allocate") != std::string::npos)
            throw UsageError(inputs.describe() + ": not enough memory to load it" +
                             (size ? " at " + std::to_string((*size)[1]) + " x " + std::to_string((*size)[0]) : std::string()) +
                             " (" + m.substr(m.rfind("] ") == std::string::npos ? 0 : m.rfind("] ") + 2) +
                             "): give --input-size H W");
        throw UsageError(inputs.describe() + ": " + m);
    } catch (const std::exception& e) {
        throw UsageError(e.what());
    }
    if (!size)
        checkMemory(r.model, {r.image.height, r.image.width / std::max<int64_t>(1, I)}, inputs.describe());
    if ((rq.roi || rq.bin) && !r.model.takesRois())
        throw UsageError(std::string(rq.roi ? "--roi" : "--bin") + " needs a model with a RoI head (forward(image, rois), "
                         "or roi_input in its " + model::kMetadataFile + "); " + m.path() + " takes no regions of interest");
    if (r.model.takesRois()) {
        // Pixel edges on the original image -> edges on the input grid (through the pixel centres).
        std::array<double, 4> box{0, 0, double(r.image.width), double(r.image.height)};
        if (rq.roi && rq.roi->grid == common::Grid::Input) {
            box = {rq.roi->x0, rq.roi->y0, rq.roi->x1, rq.roi->y1};
        } else if (rq.roi) {
            const auto p0 = imaging::originalToInput(r.image, rq.roi->x0 - 0.5, rq.roi->y0 - 0.5);
            const auto p1 = imaging::originalToInput(r.image, rq.roi->x1 - 0.5, rq.roi->y1 - 0.5);
            box = {p0[0] + 0.5, p0[1] + 0.5, p1[0] + 0.5, p1[1] + 0.5};
        } else {
            r.notes.push_back("no --roi: the region of interest is the whole image");
        }
        try {
            r.model = r.model.withRois(at::tensor({box[0], box[1], box[2], box[3]}, at::kDouble));
        } catch (const model::ModelError& e) {
            throw UsageError(e.what());
        }
        r.roi = box;
    }
    r.session = std::make_shared<analysis::AnalysisSession>(r.model, r.image.tensor);
    return r;
}

void findObject(Run& r, const common::AnalysisRequest& rq) {
    using Kind = common::ObjectRegion::Kind;
    r.object = at::Tensor();
    r.objectSource.clear();
    const int64_t H = r.image.height, W = r.image.width;
    if (rq.object.kind == Kind::None)
        return;
    if (rq.object.kind == Kind::Box) {
        // Edges -> input-grid positions (pixel centres at integers); the input grid's box is used as given.
        const common::Box& b = rq.object.box;
        const bool input = b.grid == common::Grid::Input;
        const auto p0 = input ? std::array<double, 2>{b.x0 - 0.5, b.y0 - 0.5}
                              : imaging::originalToInput(r.image, b.x0 - 0.5, b.y0 - 0.5);
        const auto p1 = input ? std::array<double, 2>{b.x1 - 0.5, b.y1 - 0.5}
                              : imaging::originalToInput(r.image, b.x1 - 0.5, b.y1 - 0.5);
        const at::Tensor xs = at::arange(W, at::kDouble).view({1, W}), ys = at::arange(H, at::kDouble).view({H, 1});
        r.object = ((xs >= p0[0]) & (xs < p1[0]) & (ys >= p0[1]) & (ys < p1[1])).to(at::kByte);
        r.objectSource = "box";
        return;
    }
    const int64_t frames = r.session->frames();
    // Auto: each frame's own <name>_mask.png ("" where there is none; the same ids
    // name the same object in every frame, as a labelled pair has it).
    std::vector<std::string> frameMasks;
    if (rq.object.kind == Kind::Auto) {
        const bool perFrame = frames > 1 && r.framePaths.size() == size_t(frames);
        for (const std::string& image : perFrame ? r.framePaths : std::vector<std::string>{r.imagePath}) {
            const fs::path img(image);
            const fs::path sibling = img.parent_path() / (img.stem().string() + "_mask.png");
            frameMasks.push_back(fs::exists(sibling) ? sibling.string() : std::string());
        }
    }
    std::string sources = rq.object.kind == Kind::Mask ? rq.object.maskFile : std::string();
    at::Tensor ids;
    try {
        if (frameMasks.size() > 1) {
            // One mask per frame, side by side (zeros for a frame without one).
            const int64_t W0 = r.image.originalWidth / frames, H0 = r.image.originalHeight;
            ids = at::zeros({H0, W0 * frames}, at::kLong);
            for (size_t i = 0; i < frameMasks.size(); ++i) {
                if (frameMasks[i].empty())
                    continue;
                const at::Tensor m = imaging::readMask(frameMasks[i]);
                if (m.size(0) != H0 || m.size(1) != W0)
                    throw UsageError(frameMasks[i] + ": the mask is " + std::to_string(m.size(1)) + " x " +
                                     std::to_string(m.size(0)) + " but each frame is " + std::to_string(W0) + " x " +
                                     std::to_string(H0));
                ids.narrow(1, int64_t(i) * W0, W0).copy_(m);
                sources += (sources.empty() ? "" : " + ") + frameMasks[i];
            }
        } else {
            if (frameMasks.size() == 1)
                sources = frameMasks[0];
            if (!sources.empty())
                ids = imaging::readMask(sources);
        }
    } catch (const std::exception& e) {
        throw UsageError(e.what());
    }
    if (sources.empty())
        return; // no mask given or found
    // Several frames: a mask of one frame (--object-mask) is the first (reference) frame's.
    if (frames > 1 && ids.size(0) == r.image.originalHeight && ids.size(1) * frames == r.image.originalWidth)
        ids = at::cat({ids, at::zeros({ids.size(0), ids.size(1) * (frames - 1)}, ids.options())}, 1);
    if (ids.size(0) != r.image.originalHeight || ids.size(1) != r.image.originalWidth)
        throw UsageError(sources + ": the mask is " + std::to_string(ids.size(1)) + " x " + std::to_string(ids.size(0)) +
                         " but the image is " + std::to_string(r.image.originalWidth) + " x " +
                         std::to_string(r.image.originalHeight));
    // The object under the clicked pixel (its id); on background, every labelled pixel.
    const int64_t px = std::clamp<int64_t>(std::llround(r.pixel[0]), 0, ids.size(1) - 1);
    const int64_t py = std::clamp<int64_t>(std::llround(r.pixel[1]), 0, ids.size(0) - 1);
    const int64_t id = ids[py][px].item<int64_t>();
    at::Tensor object = id != 0 ? ids.eq(id) : ids.ne(0);
    r.objectSource = sources + (id != 0 ? " (id " + std::to_string(id) + ", under the node)" : " (every labelled pixel: the node is on background)");
    if (object.size(0) != H || object.size(1) != W)
        object = at::upsample_nearest2d(object.to(at::kFloat).view({1, 1, object.size(0), object.size(1)}), {H, W})[0][0].gt(0.5);
    r.object = object.to(at::kByte).contiguous();
}

void analyseNode(Run& r, const common::AnalysisRequest& rq, const analysis::SaliencyProgressFn& progress) {
    r.sampling.reset();
    r.erf.reset();
    r.saliency.reset();
    r.kernel.reset();
    r.objectMetrics.reset();
    r.object = at::Tensor();
    r.objectSource.clear();
    const std::string layer = rq.layer.empty() ? defaultLayer(r.model, r.session->graph()) : rq.layer;
    if (!r.session->graph().find(layer))
        throw UsageError(r.model.path() + " has no layer '" + layer + "'; its layers are: " + r.session->graph().names());
    if (rq.at && rq.at->grid == common::Grid::Input) {
        const double x = rq.at->x, y = rq.at->y;
        if (!(x >= -0.5 && y >= -0.5 && x <= double(r.image.width) - 0.5 && y <= double(r.image.height) - 0.5))
            throw UsageError("point " + std::to_string(x) + "," + std::to_string(y) + " is outside the input grid of " +
                             r.imagePath + " (" + std::to_string(r.image.width) + " x " + std::to_string(r.image.height) + ")");
        r.inputXY = {x, y};
        r.pixel = imaging::inputToOriginal(r.image, x, y);
    } else {
        // Default: the centre of the (first) frame.
        r.pixel = rq.at ? std::array<double, 2>{rq.at->x, rq.at->y}
                        : std::array<double, 2>{(double(r.image.originalWidth / r.session->frames()) - 1) / 2,
                                                (double(r.image.originalHeight) - 1) / 2};
        if (!(r.pixel[0] >= -0.5 && r.pixel[1] >= -0.5 && r.pixel[0] <= double(r.image.originalWidth) - 0.5 &&
              r.pixel[1] <= double(r.image.originalHeight) - 0.5))
            throw UsageError("--pixel " + std::to_string(r.pixel[0]) + "," + std::to_string(r.pixel[1]) + " is outside " +
                             r.imagePath + " (" + std::to_string(r.image.originalWidth) + " x " +
                             std::to_string(r.image.originalHeight) + ")");
        r.inputXY = imaging::originalToInput(r.image, r.pixel[0], r.pixel[1]);
    }
    r.node = r.session->nodeAt(layer, r.inputXY[0], r.inputXY[1], rq.response);
    const model::Layer& nodeLayer = r.session->layer(layer);
    if (rq.bin && !nodeLayer.isRoiPool()) {
        std::string roiLayers;
        for (const model::Layer& x : r.session->graph().layers())
            if (x.isRoiPool())
                roiLayers += (roiLayers.empty() ? "" : ", ") + x.name;
        throw UsageError("--bin picks a bin of a RoI pooling layer, but '" + layer + "' is a " +
                         model::kindName(nodeLayer.kind) + " layer" +
                         (roiLayers.empty() ? std::string(" (the model has none)") : " (its RoI pooling layers: " + roiLayers + ")"));
    }
    if (nodeLayer.isRoiPool()) {
        const int64_t ph = nodeLayer.feature_size[0], pw = nodeLayer.feature_size[1];
        if (rq.bin) {
            if ((*rq.bin)[0] >= ph || (*rq.bin)[1] >= pw)
                throw UsageError("--bin " + std::to_string((*rq.bin)[0]) + "," + std::to_string((*rq.bin)[1]) + " is off '" +
                                 layer + "', whose bins are " + std::to_string(ph) + " rows x " + std::to_string(pw) +
                                 " columns (i from 0 to " + std::to_string(ph - 1) + ", j from 0 to " +
                                 std::to_string(pw - 1) + ")");
            r.node.fy = (*rq.bin)[0];
            r.node.fx = (*rq.bin)[1];
        } else if (!rq.at) {
            // The whole RoI: every bin (the response reads all of them; drawn at the centre bin).
            r.node.fy = ph / 2;
            r.node.fx = pw / 2;
            r.node.allBins = true;
        }
        const auto c = r.session->frameCentre(r.node);
        r.inputXY = c;
        r.pixel = imaging::inputToOriginal(r.image, c[0], c[1]);
    }
    try {
        r.session->validate(r.node);
    } catch (const AnalysisError& e) {
        throw UsageError(e.what());
    }
    if (rq.what.sampling)
        r.sampling = r.session->sampling(r.node, samplingOptions(rq));
    if (rq.what.erf) {
        r.erf = r.session->erf(r.node, erfOptions(rq));
        if (!at::isfinite(r.erf->map).all().item<bool>())
            throw UsageError(r.model.path() + ": the gradient of the node's response holds NaN or Inf (the effective "
                             "receptive field cannot be computed; a layer's backward overflows on this input)");
    }
    if (rq.what.saliency)
        r.saliency = r.session->saliency(r.node, saliencyOptions(rq), rq.baseline, progress);
    using Kernel = common::Analyses::Kernel;
    if (rq.what.kernel == Kernel::Required ||
        (rq.what.kernel == Kernel::IfAvailable && !r.session->kernelLayer(r.node).empty())) {
        try {
            r.kernel = r.session->kernel(r.node);
        } catch (const AnalysisError& e) {
            throw UsageError(r.model.path() + ": " + e.what());
        }
    }
    findObject(r, rq);
    if (r.object.defined())
        r.objectMetrics = analysis::objectMetrics(r.object, r.erf ? &*r.erf : nullptr,
                                                  r.sampling ? &*r.sampling : nullptr,
                                                  r.saliency ? &*r.saliency : nullptr);
    r.motion.reset();
    if (rq.what.motion || !rq.propagate.empty())
        analyseMotion(r, rq);
}

void analyseSaliency(Run& r, const common::AnalysisRequest& rq, const analysis::SaliencyProgressFn& progress) {
    r.saliency = r.session->saliency(r.node, saliencyOptions(rq), rq.baseline, progress);
    if (r.object.defined())
        r.objectMetrics = analysis::objectMetrics(r.object, r.erf ? &*r.erf : nullptr,
                                                  r.sampling ? &*r.sampling : nullptr, &*r.saliency);
}

// ---- data files ----------------------------------------------------------------------

namespace {

// result.json's "roi": the box on both grids, the node's bin (null: the head's output,
// every bin), and per bin of the RoI pooling layer traced, where its reads fall (the
// weighted centre of its own reads) and where its traced points at the deepest level
// fall (DCNv2's "effective bin locations").
Json roiJson(const Run& r, const model::Layer& l) {
    const auto& box = *r.roi;
    const auto o0 = imaging::inputToOriginal(r.image, box[0] - 0.5, box[1] - 0.5);
    const auto o1 = imaging::inputToOriginal(r.image, box[2] - 0.5, box[3] - 0.5);
    Json j = Json::object({{"box", Json::array({box[0], box[1], box[2], box[3]})},
                           {"box_original", Json::array({o0[0] + 0.5, o0[1] + 0.5, o1[0] + 0.5, o1[1] + 0.5})}});
    if (!l.isRoiPool()) {
        j["layer"] = Json();
        return j;
    }
    j["layer"] = l.name;
    j["kind"] = model::kindName(l.kind);
    j["bins"] = Json::array({l.feature_size[0], l.feature_size[1]});
    const bool whole = r.node.allBins || r.node.response.kind == common::Response::Kind::ClassScore;
    j["bin"] = whole ? Json() : Json::array({r.node.fy, r.node.fx});
    if (!r.sampling)
        return j;
    // Each point's bin: its level-1 ancestor's (points come level by level: parents first).
    const auto& pts = r.sampling->points;
    std::vector<int> binOf(pts.size(), -1);
    int deepest = 0;
    for (size_t i = 0; i < pts.size(); ++i) {
        const auto& p = pts[i];
        binOf[i] = p.parent < 0 ? (p.layer == l.index ? p.group : -1) : binOf[size_t(p.parent)];
        deepest = std::max(deepest, p.level);
    }
    const int64_t bins = l.feature_size[0] * l.feature_size[1];
    struct Acc { double w = 0, x = 0, y = 0; int64_t n = 0; };
    std::vector<Acc> own(static_cast<size_t>(bins)), deep(static_cast<size_t>(bins));
    for (size_t i = 0; i < pts.size(); ++i) {
        const int b = binOf[i];
        if (b < 0 || b >= bins)
            continue;
        const auto& p = pts[i];
        for (Acc* a : {pts[i].level == 1 ? &own[size_t(b)] : nullptr, pts[i].level == deepest ? &deep[size_t(b)] : nullptr}) {
            if (!a)
                continue;
            a->w += p.weight;
            a->x += p.weight * p.x;
            a->y += p.weight * p.y;
            a->n += 1;
        }
    }
    auto centre = [](const Acc& a) {
        return a.w > 0 ? Json::array({a.x / a.w, a.y / a.w}) : Json();
    };
    Json list = Json::array();
    for (int64_t b = 0; b < bins; ++b) {
        if (own[size_t(b)].n == 0)
            continue;
        list.push_back(Json::object({{"bin", Json::array({b / l.feature_size[1], b % l.feature_size[1]})},
                                     {"reads", own[size_t(b)].n},
                                     {"weight", own[size_t(b)].w},
                                     {"reads_centre_xy", centre(own[size_t(b)])},
                                     {"deepest_level", deepest},
                                     {"deepest_points", deep[size_t(b)].n},
                                     {"deepest_centre_xy", centre(deep[size_t(b)])}}));
    }
    j["bin_locations"] = list;
    return j;
}

} // namespace

Json writeData(const Run& r, const common::AnalysisRequest& rq, const std::string& dirPath,
               const std::vector<std::string>& figures) {
    const fs::path dir(dirPath);
    makeDirectory(dirPath);
    const model::Layer& l = r.session->layer(r.node.layer);
    const auto centre = r.session->nodeCentre(r.node);
    Json doc = Json::object();
    doc["model"] = r.model.path();
    doc["model_name"] = r.name;
    doc["image"] = r.imagePath;
    const auto& inputNames = r.session->graph().inputNames();
    const int64_t frames = r.session->frames(), frameW = r.session->frameSize()[1];
    if (frames > 1) {
        Json inputs = Json::array();
        for (size_t i = 0; i < inputNames.size(); ++i)
            inputs.push_back(Json::object({{"name", inputNames[i]},
                                           {"image", i < r.framePaths.size() ? Json(r.framePaths[i]) : Json()}}));
        doc["inputs"] = inputs;
        doc["layout"] = "the frames side by side on one input grid: frame i holds x in [i·W, (i+1)·W), W = " +
                        std::to_string(frameW) + "; sampling.csv gives x within its frame (column input)";
    }
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
    if (r.roi)
        doc["roi"] = roiJson(r, l);

    Json files = Json::array();
    // A data file and its section of result.json (the analysis's numbers, the file's name, then `extra`).
    auto section = [&](const char* key, const char* file, Json numbers) -> Json& {
        numbers["file"] = file;
        files.push_back(file);
        doc[key] = std::move(numbers);
        return doc[key];
    };
    if (r.sampling) {
        std::ostringstream csv;
        csv.precision(9);
        // kernel_weight: Deformable Kernel taps only (the resampled kernel's mean |weight|), else empty.
        // kind: the kind of the layer whose tap or read it is; feature_level: the level a deformable
        // attention read (0 otherwise); row: the offset group, or a sampler's grid row (head, group).
        // input: the input frame the point lies on (x is within that frame).
        csv << "x,y,level,weight,inside,modulation,layer,parent,tap,kernel_weight,kind,feature_level,row,input\n";
        const auto& layers = r.session->graph().layers();
        // Points per (layer, kind, feature level), for result.json.
        std::map<std::tuple<int, int>, int64_t> perLayer;
        std::vector<std::pair<int64_t, double>> perInput(size_t(frames), {0, 0.0});
        for (const analysis::SamplingPoint& p : r.sampling->points) {
            const model::Layer& pl = layers[size_t(p.layer)];
            auto& counted = perInput[size_t(std::clamp<int64_t>(p.input, 0, frames - 1))];
            counted.first += 1;
            counted.second += p.weight;
            csv << p.x - double(p.input * frameW) << ',' << p.y << ',' << p.level << ',' << p.weight << ',' << (p.inside ? 1 : 0) << ','
                << p.modulation << ',' << pl.name << ',' << p.parent << ',' << p.tap << ','
                << (std::isnan(p.kernelWeight) ? std::string() : std::to_string(p.kernelWeight)) << ','
                << model::kindName(pl.kind) << ',' << p.featureLevel << ',' << p.group << ',' << p.input << '\n';
            ++perLayer[{p.layer, p.featureLevel}];
        }
        common::writeFileAtomically((dir / "sampling.csv").string(), csv.str());
        Json& j = section("sampling", "sampling.csv", analysis::toJson(*r.sampling));
        Json byLayer = Json::array();
        for (const auto& [key, count] : perLayer) {
            const model::Layer& pl = layers[size_t(std::get<0>(key))];
            byLayer.push_back(Json::object({{"layer", pl.name}, {"kind", model::kindName(pl.kind)},
                                            {"feature_level", std::get<1>(key)}, {"points", count}}));
        }
        j["by_layer"] = byLayer;
        if (frames > 1) {
            Json byInput = Json::array();
            for (size_t i = 0; i < perInput.size(); ++i)
                byInput.push_back(Json::object({{"input", inputNames[i]}, {"points", perInput[i].first},
                                                {"weight_sum", perInput[i].second}}));
            j["by_input"] = byInput;
        }
        j["levels_requested"] = rq.levels;
        j["reading"] = common::name(rq.reading);
        j["through"] = common::name(rq.through);
        double weight = 0;
        for (const auto& p : r.sampling->points)
            weight += p.weight;
        j["weight_sum"] = weight;
    }
    if (r.erf) {
        // Several frames: one map per input, [I, H, W].
        const at::Tensor map = frames > 1 ? r.erf->map.view({r.erf->map.size(0), frames, frameW}).permute({1, 0, 2})
                                          : r.erf->map;
        common::writeNpy((dir / "erf.npy").string(), map.to(at::kFloat).contiguous());
        Json& j = section("erf", "erf.npy", analysis::toJson(r.erf->metrics));
        if (frames > 1) {
            Json perInput = Json::array();
            for (size_t i = 0; i < r.erf->inputs.size(); ++i) {
                Json m = analysis::toJson(r.erf->inputs[i]);
                m["input"] = inputNames[i];
                m["mass_share"] = r.erf->inputShare[i];
                perInput.push_back(m);
            }
            j["inputs"] = perInput;
        }
        j["signed"] = rq.signedErf;
        j["seconds"] = r.erf->seconds;
        j["sum"] = r.erf->map.to(at::kDouble).sum().item<double>();
    }
    if (r.saliency) {
        common::writeNpy((dir / "saliency_mask.npy").string(), r.saliency->mask.to(at::kByte).contiguous());
        section("saliency", "saliency_mask.npy", analysis::toJson(*r.saliency))["baseline"] = rq.baseline.toString();
    }
    if (r.kernel) {
        common::writeNpy((dir / "kernel_scope.npy").string(), r.kernel->scopeWeight.to(at::kFloat).contiguous());
        section("kernel", "kernel_scope.npy", analysis::toJson(*r.kernel));
    }
    if (r.objectMetrics) {
        Json j = analysis::toJson(*r.objectMetrics);
        j["source"] = r.objectSource;
        doc["object"] = j;
    }
    writeMotion(r, dirPath, doc, files);
    doc["figures"] = stringArray(figures);
    doc["files"] = files;
    Json notes = stringArray(r.notes);
    for (const auto& n : r.session->capture().notes)
        notes.push_back(n);
    doc["notes"] = notes;
    doc["request"] = common::toJson(rq);
    common::writeJsonFile((dir / "result.json").string(), doc);
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

Json writeCompareData(const std::vector<const Run*>& runs, const common::AnalysisRequest& rq,
                      const std::string& dirPath, const std::vector<std::string>& figures) {
    const fs::path dir(dirPath);
    Json models = Json::array();
    for (const Run* r : runs) {
        const Json doc = writeData(*r, rq, (dir / r->name).string(), {});
        Json summary = Json::object({{"name", r->name}, {"folder", r->name}, {"node", doc.at("node")}});
        for (const char* k : {"sampling", "erf", "saliency", "kernel", "object"})
            if (doc.contains(k))
                summary[k] = doc.at(k);
        models.push_back(summary);
    }
    const std::string image = runs.empty() ? std::string() : runs.front()->imagePath;
    common::writeJsonFile((dir / "compare.json").string(),
                          Json::object({{"image", image}, {"models", models}, {"figures", stringArray(figures)},
                                        {"request", common::toJson(rq)}}));
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
    const bool replknet = options.protocol == analysis::ErfProtocol::RepLKNet;
    // RepLKNet's script prepares images as torchvision's ImageNet pipeline does (PIL's bicubic
    // resize, ImageNet mean and std), whatever the model's metadata says.
    const imaging::Normalization norm = replknet ? imaging::Normalization{} : normalizationOf(m.metadata());
    return analysis::averageErf(
        m, int64_t(files.size()),
        [&](int64_t i) {
            return replknet ? imaging::loadImageLikeTorchvision(files[size_t(i)], size, norm).tensor
                            : imaging::loadImage(files[size_t(i)], size, norm).tensor;
        },
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
    doc["figures"] = stringArray(figures);
    common::writeJsonFile(inDir(dir, "result.json"), doc);
    return doc;
}

} // namespace deformscope::report
