// The grid all models share: the first model's metadata input size; else the
// image's size rounded down to a multiple of every open model's total stride
// (their least common multiple, at least one stride); before any image is open
// the layer lists are computed for 224 x 224. Each model's image is loaded with
// its own normalisation on that grid (report::prepareRun with the request's
// inputSize = grid), so exports match `deformscope-cli compare --input-size H W`
// (or no --input-size when the metadata sizes agree).
#include "ui/engine/model_cache.h"

#include "ui/engine/engine.h"
#include "ui/engine/views.h"
#include "ui/analysis_figure/analysis_figure.h"

#include <ATen/ATen.h>

#include <QFileInfo>

#include <cmath>
#include <numeric>
#include <stdexcept>

namespace deformscope::ui {

namespace {

// Before any image is open, layer lists are computed for this grid (when the
// first model's metadata has no input size).
constexpr std::array<int64_t, 2> kDefaultGrid{224, 224};

// Runs `body`; a failure is rethrown as std::runtime_error naming `context` (the file it concerns).
template <typename Body>
auto within(const std::string& context, Body body) {
    try {
        return body();
    } catch (const std::exception& e) {
        throw std::runtime_error(describeFailure(context, e));
    }
}

// Throws when the captured forward's output has NaN or Inf.
void checkFinite(const report::Run& r, const std::string& image) {
    const at::Tensor out = r.session->capture().output;
    if (out.defined() && out.is_floating_point() && !at::isfinite(out.detach()).all().item<bool>())
        throw report::UsageError(r.model.path() + ": the model's output contains NaN or Inf on " + image +
                                 " (broken weights, or an input the model cannot handle)");
}

// The request every model's image is prepared with: the shared grid.
common::AnalysisRequest gridRequest(std::array<int64_t, 2> grid) {
    common::AnalysisRequest rq;
    rq.inputSize = grid;
    return rq;
}

} // namespace

std::array<int64_t, 2> ModelCache::gridFor(const std::vector<OpenModel>& ms,
                                           std::optional<std::array<int64_t, 2>> image) const {
    if (!ms.empty())
        if (const auto& s = ms.front().model.metadata().inputSize)
            return *s;
    if (!image)
        return kDefaultGrid;
    if (ms.empty())
        return *image;
    int64_t stride = 1;
    for (const OpenModel& m : ms)
        stride = std::lcm(stride, m.stride);
    return {std::max(stride, (*image)[0] / stride * stride), std::max(stride, (*image)[1] / stride * stride)};
}

bool ModelCache::fits(const std::vector<OpenModel>& ms, const report::InputSource& inputs) {
    const auto given = int64_t(inputs.video.empty() ? inputs.images.size() : inputs.frames.size());
    for (const OpenModel& m : ms)
        if (m.model.inputCount() != given)
            return false;
    return true;
}

void ModelCache::prepare(std::vector<OpenModel>& ms, const report::InputSource& inputs, std::array<int64_t, 2> g,
                         std::string& context) const {
    for (OpenModel& m : ms) {
        context = m.model.path();
        report::Run r = report::prepareRun(m.model, inputs, gridRequest(g));
        checkFinite(r, inputs.describe());
        r.name = m.name;
        m.info = modelInfo(m.model, r.session->graph(), m.name);
        m.run = std::move(r);
    }
    context.clear();
}

void ModelCache::openModels(const QStringList& paths, const QString& deviceName) {
    if (paths.isEmpty())
        throw report::UsageError("no model file given");
    const c10::Device dev = report::resolveDevice(deviceName.trimmed().isEmpty() ? std::string("cpu")
                                                                                 : ss(deviceName.trimmed()));
    std::vector<OpenModel> ms;
    for (const QString& p : paths) {
        within(ss(p), [&] {
            OpenModel m;
            m.model = model::LoadedModel::load(ss(p), dev);
            const model::LayerGraph g = model::layerGraph(m.model, m.model.metadata().inputSize.value_or(kDefaultGrid));
            m.stride = totalStride(g);
            m.info = modelInfo(m.model, g, report::stemOf(ss(p)));
            ms.push_back(std::move(m));
        });
    }
    // Unique column names, as compare names its folders.
    std::vector<report::Run> stems(ms.size());
    std::vector<report::Run*> names;
    for (size_t i = 0; i < ms.size(); ++i) {
        stems[i].name = report::stemOf(ms[i].model.path());
        names.push_back(&stems[i]);
    }
    report::uniqueNames(names);
    for (size_t i = 0; i < ms.size(); ++i) {
        ms[i].name = stems[i].name;
        ms[i].info.name = qs(ms[i].name);
    }
    const auto image = hasImage() ? std::optional<std::array<int64_t, 2>>(m_originalSize) : std::nullopt;
    const std::array<int64_t, 2> g = gridFor(ms, image);
    std::string context;
    try {
        // Models taking another number of frames than the open image(s) give open without them
        // (their layer lists only); opening a frame pair or an image then prepares it.
        if (hasImage() && fits(ms, m_inputs))
            prepare(ms, m_inputs, g, context);
        else
            for (OpenModel& m : ms)
                if (m.info.inputH != g[0] || m.info.inputW != g[1]) {
                    context = m.model.path();
                    m.info = modelInfo(m.model, model::layerGraph(m.model, g), m.name);
                }
    } catch (const std::exception& e) {
        throw std::runtime_error(describeFailure(context, e));
    }
    // Every file loaded: replace the open models.
    m_models = std::move(ms);
    m_device = dev;
    m_grid = g;
}

void ModelCache::openImage(const QString& pathText) {
    const std::string path = ss(pathText);
    const report::InputSource inputs = report::InputSource::fromText(path);
    const std::array<int64_t, 2> size = within(inputs.describe(), [&] {
        const imaging::InputImage img = inputs.video.empty() ? imaging::loadFrames(inputs.images)
                                                             : imaging::loadVideoFrames(inputs.video, inputs.frames);
        const int64_t frames = int64_t(inputs.video.empty() ? inputs.images.size() : inputs.frames.size());
        return std::array<int64_t, 2>{img.originalHeight, img.originalWidth / std::max<int64_t>(frames, 1)};
    });
    std::vector<OpenModel> ms = m_models; // prepared on copies: a failure keeps the open image
    const std::array<int64_t, 2> g = gridFor(ms, size);
    std::string context;
    try {
        prepare(ms, inputs, g, context);
    } catch (const std::exception& e) {
        throw std::runtime_error(describeFailure(context, e));
    }
    m_models = std::move(ms);
    m_imagePath = path;
    m_inputs = inputs;
    m_originalSize = size;
    m_grid = g;
}

void ModelCache::setInputSettings(const QString& modelPath, const InputSettings& in) {
    const std::string context = ss(modelPath);
    OpenModel* om = nullptr;
    for (OpenModel& m : m_models)
        if (qs(m.model.path()) == modelPath)
            om = &m;
    if (!om)
        throw report::UsageError(context + ": is not an open model");
    for (int c = 0; c < 3; ++c)
        if (!(in.std[c] > 0) || !std::isfinite(in.mean[c]) || !std::isfinite(in.std[c]))
            throw report::UsageError(context + ": input settings: every std must be a positive number");
    if ((in.inputH > 0) != (in.inputW > 0) || in.inputH < 0 || in.inputW < 0)
        throw report::UsageError(context + ": input settings: give both sides of the input size, or neither");
    const model::ModelMetadata before = om->model.metadata();
    model::ModelMetadata md = before;
    for (int c = 0; c < 3; ++c) {
        md.mean[size_t(c)] = in.mean[c];
        md.std[size_t(c)] = in.std[c];
    }
    md.colorOrder = in.bgr ? "BGR" : "RGB";
    md.inputSize = in.inputH > 0 ? std::optional<std::array<int64_t, 2>>(std::array<int64_t, 2>{in.inputH, in.inputW})
                                 : std::nullopt;
    om->model.setMetadata(md);
    if (!hasImage() || !fits(m_models, m_inputs)) {
        om->info = within(context, [&] {
            return modelInfo(om->model, model::layerGraph(om->model, gridFor(m_models, std::nullopt)), om->name);
        });
        return;
    }
    std::vector<OpenModel> ms = m_models;
    const std::array<int64_t, 2> g = gridFor(ms, m_originalSize);
    std::string failing;
    try {
        prepare(ms, m_inputs, g, failing);
    } catch (const std::exception& e) {
        om->model.setMetadata(before); // keep what worked before
        throw std::runtime_error(describeFailure(failing.empty() ? context : failing, e));
    }
    m_models = std::move(ms);
    m_grid = g;
}

std::vector<ModelInfo> ModelCache::infos() const {
    std::vector<ModelInfo> v;
    for (const OpenModel& m : m_models)
        v.push_back(m.info);
    return v;
}

std::vector<report::Run*> ModelCache::runs() {
    std::vector<report::Run*> v;
    for (OpenModel& m : m_models)
        if (m.run)
            v.push_back(&*m.run);
    return v;
}

ModelCache::Picture ModelCache::picture() const {
    if (m_models.empty() || !m_models.front().run) {
        const imaging::InputImage img = m_inputs.video.empty() ? imaging::loadFrames(m_inputs.images)
                                                               : imaging::loadVideoFrames(m_inputs.video, m_inputs.frames);
        return {toQImage(fromRgbTensor(img.rgb)), 1.0, 1.0};
    }
    const report::Run& r = *m_models.front().run;
    return {toQImage(figure::inputImage(*r.session)), double(r.image.originalWidth) / double(r.image.width),
            double(r.image.originalHeight) / double(r.image.height)};
}

const model::LoadedModel* ModelCache::findModel(const QString& path) const {
    if (path.isEmpty())
        return nullptr;
    for (const OpenModel& m : m_models)
        if (qs(m.model.path()) == path || QFileInfo(qs(m.model.path())).canonicalFilePath() == QFileInfo(path).canonicalFilePath())
            return &m.model;
    return nullptr;
}

} // namespace deformscope::ui
