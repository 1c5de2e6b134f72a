// The engine's implementation. How it keeps its promises (engine.h):
//  - Every public slot only queues a job (Impl::enqueue) and returns; runJobs()
//    runs the jobs in order on the engine's thread. A running analysis calls
//    pump() (before each model, between saliency batches, before delivering),
//    which delivers only the queued slot calls addressed to the engine: they just
//    queue more jobs, and analyze() raises m_latestAnalysis. So a newer click
//    supersedes a running one at its next batch, and older queued clicks are
//    dropped when their turn comes; neither delivers anything.
//  - cancel() sets m_cancel, read by the saliency and ERF-average callbacks; it
//    is cleared when the next analysis or ERF average starts.
//  - The input grid all models share: the first model's metadata input_size;
//    else the image's size rounded down to a multiple of every open model's
//    total stride (their least common multiple, at least one stride); before any
//    image is open the layer lists are computed for 224 x 224. Each model's image
//    is loaded with its own normalisation on that grid (report::prepareRun with
//    Settings::inputSize = grid), so exports match `deformscope-cli compare
//    --input-size H W` (or no --input-size when the metadata sizes agree).
//  - openModels() also emits imageOpened when an image is open (it was
//    re-prepared for the new models, perhaps on a new grid), and openImage()
//    emits modelsOpened again first when the grid changed (new layer lists).
#include "ui/engine/engine.h"

#include "core/analysis/analysis.h"
#include "core/analysis/offset_field.h"
#include "core/common/json.h"
#include "core/imaging/image.h"
#include "core/model/capture.h"
#include "core/ops/checks/selftest.h"
#include "core/report/report.h"
#include "ui/analysis_figure/analysis_figure.h"
#include "ui/analysis_figure/report_figures.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QMetaObject>

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <functional>
#include <numeric>
#include <sstream>

namespace deformscope::ui {

namespace {

namespace fs = std::filesystem;

QString qs(const std::string& s) { return QString::fromStdString(s); }
std::string ss(const QString& s) { return s.toStdString(); }

// Before any image is open, layer lists are computed for this grid (when the
// first model's metadata has no input size).
constexpr std::array<int64_t, 2> kDefaultGrid{224, 224};

QString number(double v, int digits) { return QString::number(v, 'f', digits); }

QString duration(double seconds) {
    return seconds < 1 ? QString::number(seconds * 1e3, 'f', 0) + " ms" : QString::number(seconds, 'f', 1) + " s";
}

QImage toQImage(const figure::Image& img) {
    QImage q(img.width, img.height, QImage::Format_RGB888);
    for (int y = 0; y < img.height; ++y)
        std::copy_n(img.rgb.data() + size_t(y) * size_t(img.width) * 3, size_t(img.width) * 3, q.scanLine(y));
    return q;
}

figure::Image fromRgbTensor(const at::Tensor& rgbHwc) {
    const at::Tensor t = rgbHwc.to(at::kCPU).contiguous();
    figure::Image img;
    img.height = int(t.size(0));
    img.width = int(t.size(1));
    img.rgb.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
    return img;
}

// The device named by the GUI, if this build and machine have it.
c10::Device parseDevice(const QString& name) {
    const std::vector<at::Device> devices = ops::checks::availableDevices();
    const std::string n = ss(name.trimmed().isEmpty() ? QStringLiteral("cpu") : name.trimmed());
    for (const at::Device& d : devices)
        if ((n == "cuda" && d.is_cuda()) || d.str() == n)
            return d;
    std::string message = "device '";
    message += n;
    message += "' is not available (have:";
    for (const at::Device& d : devices) {
        message += ' ';
        message += d.str();
    }
    message += ')';
    throw report::UsageError(message);
}

// The network's total stride: the largest jump of any layer (at least 1).
int64_t totalStride(const model::LayerGraph& g) {
    double s = 1;
    for (const model::Layer& l : g.layers())
        s = std::max({s, l.jump[0], l.jump[1]});
    return std::max<int64_t>(1, std::llround(s));
}

LayerInfo layerInfo(const model::Layer& l) {
    LayerInfo i;
    i.name = qs(l.name);
    i.kind = QString::fromLatin1(model::kindName(l.kind));
    i.op = qs(l.op);
    i.kernelH = int(l.kernel[0]);
    i.kernelW = int(l.kernel[1]);
    i.strideH = int(l.stride[0]);
    i.strideW = int(l.stride[1]);
    i.featureH = int(l.feature_size[0]);
    i.featureW = int(l.feature_size[1]);
    i.inChannels = l.in_channels;
    i.outChannels = l.out_channels;
    i.jumpY = l.jump[0];
    i.jumpX = l.jump[1];
    i.startY = l.start[0];
    i.startX = l.start[1];
    i.rfH = l.rf[0];
    i.rfW = l.rf[1];
    return i;
}

ModelInfo modelInfo(const model::LoadedModel& m, const model::LayerGraph& g, const std::string& name) {
    ModelInfo info;
    info.path = qs(m.path());
    info.name = qs(name);
    info.description = qs(m.metadata().description);
    info.device = qs(m.device().str());
    info.suggestedLayer = qs(report::defaultLayer(m, g));
    info.inputH = int(g.inputSize()[0]);
    info.inputW = int(g.inputSize()[1]);
    for (const std::string& c : m.metadata().classNames)
        info.classNames << qs(c);
    for (const std::string& n : m.notes())
        info.notes << qs(n);
    for (const model::Layer& l : g.layers())
        info.layers.push_back(layerInfo(l));
    const model::ModelMetadata& md = m.metadata();
    info.hasMetadata = md.fromFile;
    for (int c = 0; c < 3; ++c) {
        info.mean[c] = md.mean[size_t(c)];
        info.std[c] = md.std[size_t(c)];
    }
    info.bgr = md.colorOrder == "BGR";
    info.metadataInputH = md.inputSize ? int((*md.inputSize)[0]) : 0;
    info.metadataInputW = md.inputSize ? int((*md.inputSize)[1]) : 0;
    return info;
}

// A message for failed(): "<file>: <problem>", without LibTorch's backtraces.
std::string describe(const std::exception& e) {
    if (const auto* c = dynamic_cast<const c10::Error*>(&e))
        return c->what_without_backtrace();
    return e.what();
}

std::string withContext(const std::string& context, const std::string& message) {
    if (context.empty() || message.find(context) != std::string::npos)
        return message;
    return context + ": " + message;
}

std::string outOfMemory(const std::string& context, const c10::OutOfMemoryError& e) {
    std::string first = e.what_without_backtrace();
    if (const size_t nl = first.find('\n'); nl != std::string::npos)
        first.resize(nl);
    return (context.empty() ? std::string() : context + ": ") +
           "the GPU ran out of memory (" + first +
           "); try the CPU, a smaller image or input size, or fewer saliency masks per batch";
}

// Throws when the captured forward's output has NaN or Inf.
void checkFinite(const report::Run& r, const std::string& image) {
    const at::Tensor out = r.session->capture().output;
    if (out.defined() && out.is_floating_point() && !at::isfinite(out.detach()).all().item<bool>())
        throw report::UsageError(r.model.path() + ": the model's output contains NaN or Inf on " + image +
                                 " (broken weights, or an input the model cannot handle)");
}

} // namespace

// ---- the worker's state (touched only on the engine's thread) ------------------------

struct Engine::Impl {
    explicit Impl(Engine* engine) : q(engine) {}

    Engine* q;

    struct OpenModel {
        model::LoadedModel model;
        std::string name;                   // unique column name (compare's rule)
        int64_t stride = 1;                 // total stride
        std::optional<report::Run> run;     // prepared for the current image on the shared grid
        ModelInfo info;
    };
    std::vector<OpenModel> models;
    c10::Device device{c10::kCPU};
    std::string imagePath;                  // the open image ("" when none)
    std::array<int64_t, 2> originalSize{0, 0}; // H, W of the open image
    std::array<int64_t, 2> grid{0, 0};      // the shared input grid of the prepared runs

    // The last delivered click, for exportResults (copies share their sessions).
    std::vector<report::Run> lastRuns;
    report::Settings lastSettings;
    bool haveLast = false;

    // Requests are queued here by the slots and run by runJobs(), so that a
    // running analysis can take in newer requests (pump()) without running them.
    struct Job {
        bool analysis = false;
        std::function<void()> run;
    };
    std::deque<Job> jobs;
    bool running = false;
    bool runScheduled = false;

    void enqueue(Job job) {
        jobs.push_back(std::move(job));
        if (!runScheduled) {
            runScheduled = true;
            QMetaObject::invokeMethod(q, [this] { runJobs(); }, Qt::QueuedConnection);
        }
    }

    void runJobs() {
        runScheduled = false;
        if (running)
            return; // a nested pump(): the outer loop runs what was queued
        running = true;
        while (!jobs.empty() && !QThread::currentThread()->isInterruptionRequested()) {
            Job job = std::move(jobs.front());
            jobs.pop_front();
            job.run();
        }
        running = false;
    }

    // Takes in requests posted since the running one started: they are only
    // queued (the slots do nothing else), and analysis requests raise the newest id.
    void pump() { QCoreApplication::sendPostedEvents(q, QEvent::MetaCall); }

    bool superseded(uint64_t id) {
        return id < q->m_latestAnalysis.load() || QThread::currentThread()->isInterruptionRequested();
    }

    // Runs `body`; anything it throws becomes failed(id, message).
    template <typename Body>
    void guarded(uint64_t id, const std::string& context, Body body) {
        try {
            body();
        } catch (const c10::OutOfMemoryError& e) {
            Q_EMIT q->failed(id, qs(outOfMemory(context, e)));
        } catch (const std::exception& e) {
            Q_EMIT q->failed(id, qs(withContext(context, describe(e))));
        } catch (...) {
            Q_EMIT q->failed(id, qs(withContext(context, "unexpected error")));
        }
    }

    // The grid all models share: the first model's metadata input size; else the
    // image's size rounded down to a multiple of every model's total stride (at
    // least one stride); before any image is open, 224 × 224.
    std::array<int64_t, 2> gridFor(const std::vector<OpenModel>& ms, std::optional<std::array<int64_t, 2>> image) const {
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

    report::Settings imageSettings(const std::string& path, std::array<int64_t, 2> g) const {
        report::Settings s;
        s.image = path;
        s.inputSize = g;
        s.device = device.str();
        return s;
    }

    // Prepares `path` for every model of `ms` (captured forward each); fills their
    // runs and infos. Throws naming the file that failed; `ms` is then partly done.
    void prepare(std::vector<OpenModel>& ms, const std::string& path, std::array<int64_t, 2> g, std::string& context) {
        for (OpenModel& m : ms) {
            context = m.model.path();
            report::Run r = report::prepareRun(m.model, imageSettings(path, g));
            checkFinite(r, path);
            r.name = m.name;
            m.info = modelInfo(m.model, r.session->graph(), m.name);
            m.run = std::move(r);
        }
        context.clear();
    }

    std::array<int64_t, 2> imageSize(const std::string& path, std::string& context) {
        context = path;
        const imaging::InputImage img = imaging::loadImage(path);
        context.clear();
        return {img.originalHeight, img.originalWidth};
    }

    void emitImage(uint64_t id) {
        if (models.empty() || !models.front().run) {
            const imaging::InputImage img = imaging::loadImage(imagePath);
            Q_EMIT q->imageOpened(id, qs(imagePath), toQImage(fromRgbTensor(img.rgb)), 1.0, 1.0);
            return;
        }
        const report::Run& r = *models.front().run;
        const QImage image = toQImage(figure::inputImage(*r.session));
        Q_EMIT q->imageOpened(id, qs(imagePath), image, double(r.image.originalWidth) / double(r.image.width),
                              double(r.image.originalHeight) / double(r.image.height));
    }

    std::vector<ModelInfo> infos() const {
        std::vector<ModelInfo> v;
        for (const OpenModel& m : models)
            v.push_back(m.info);
        return v;
    }

    // ---- the requests -----------------------------------------------------------------

    void openModels(uint64_t id, const QStringList& paths, const QString& deviceName) {
        std::string context;
        guarded(id, context, [&] {
            if (paths.isEmpty())
                throw report::UsageError("no model file given");
            const c10::Device dev = parseDevice(deviceName);
            std::vector<OpenModel> ms;
            std::vector<report::Run*> names;
            std::vector<report::Run> stems(size_t(paths.size()));
            for (const QString& p : paths) {
                context = ss(p);
                OpenModel m;
                m.model = model::LoadedModel::load(ss(p), dev);
                const auto size = m.model.metadata().inputSize.value_or(kDefaultGrid);
                const model::LayerGraph g = model::layerGraph(m.model, size);
                m.stride = totalStride(g);
                m.info = modelInfo(m.model, g, report::stemOf(ss(p)));
                ms.push_back(std::move(m));
            }
            // Unique column names, as compare names its folders.
            for (size_t i = 0; i < ms.size(); ++i) {
                stems[i].name = report::stemOf(ms[i].model.path());
                names.push_back(&stems[i]);
            }
            report::uniqueNames(names);
            for (size_t i = 0; i < ms.size(); ++i) {
                ms[i].name = stems[i].name;
                ms[i].info.name = qs(ms[i].name);
            }
            context.clear();
            const std::optional<std::array<int64_t, 2>> image =
                imagePath.empty() ? std::nullopt : std::optional<std::array<int64_t, 2>>(originalSize);
            const std::array<int64_t, 2> g = gridFor(ms, image);
            if (!imagePath.empty())
                prepare(ms, imagePath, g, context);
            else
                for (OpenModel& m : ms)
                    if (m.info.inputH != g[0] || m.info.inputW != g[1]) {
                        context = m.model.path();
                        m.info = modelInfo(m.model, model::layerGraph(m.model, g), m.name);
                    }
            context.clear();
            // Every file loaded: replace the open models.
            models = std::move(ms);
            device = dev;
            grid = g;
            Q_EMIT q->modelsOpened(id, infos());
            if (!imagePath.empty())
                emitImage(id);
        });
    }

    void openImage(uint64_t id, const QString& pathText) {
        std::string context;
        guarded(id, context, [&] {
            const std::string path = ss(pathText);
            const std::array<int64_t, 2> size = imageSize(path, context);
            std::vector<OpenModel> ms = models; // prepared on copies: a failure keeps the open image
            const std::array<int64_t, 2> g = gridFor(ms, size);
            prepare(ms, path, g, context);
            // The layer lists were computed for another grid: send them again.
            const bool gridChanged = !models.empty() && (models.front().info.inputH != int(g[0]) ||
                                                         models.front().info.inputW != int(g[1]));
            models = std::move(ms);
            imagePath = path;
            originalSize = size;
            grid = g;
            if (gridChanged)
                Q_EMIT q->modelsOpened(id, infos()); // the layer lists for the new grid
            emitImage(id);
        });
    }

    void setInputSettings(uint64_t id, const QString& modelPath, const InputSettings& in) {
        std::string context = ss(modelPath);
        guarded(id, context, [&] {
            OpenModel* om = nullptr;
            for (OpenModel& m : models)
                if (qs(m.model.path()) == modelPath)
                    om = &m;
            if (!om)
                throw report::UsageError("is not an open model");
            for (int c = 0; c < 3; ++c)
                if (!(in.std[c] > 0) || !std::isfinite(in.mean[c]) || !std::isfinite(in.std[c]))
                    throw report::UsageError("input settings: every std must be a positive number");
            if ((in.inputH > 0) != (in.inputW > 0) || in.inputH < 0 || in.inputW < 0)
                throw report::UsageError("input settings: give both sides of the input size, or neither");
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
            if (!imagePath.empty()) {
                bool ok = false;
                guarded(id, context, [&] {
                    std::vector<OpenModel> ms = models;
                    const std::array<int64_t, 2> g = gridFor(ms, originalSize);
                    prepare(ms, imagePath, g, context);
                    models = std::move(ms);
                    grid = g;
                    ok = true;
                });
                if (!ok) { // keep what worked before
                    om->model.setMetadata(before);
                    return;
                }
                Q_EMIT q->modelsOpened(id, infos());
                emitImage(id);
            } else {
                om->info = modelInfo(om->model, model::layerGraph(om->model, gridFor(models, std::nullopt)), om->name);
                Q_EMIT q->modelsOpened(id, infos());
            }
        });
    }

    report::Settings settingsOf(const AnalysisRequest& rq) const {
        report::Settings s = imageSettings(imagePath, grid);
        s.layer = ss(rq.layer);
        s.sampling = rq.sampling;
        s.erf = rq.erf;
        s.saliency = rq.saliency;
        try {
            s.response = analysis::Response::parse(ss(rq.response));
            s.baseline = analysis::Baseline::parse(ss(rq.baseline));
        } catch (const analysis::AnalysisError& e) {
            throw report::UsageError(e.what());
        }
        if (rq.levels < 1 || rq.levels > 8)
            throw report::UsageError("sampling levels " + std::to_string(rq.levels) + ": expected 1 to 8");
        s.samplingOptions.levels = rq.levels;
        s.samplingOptions.reading = rq.bilinearOffsets ? analysis::OffsetReading::Bilinear : analysis::OffsetReading::Nearest;
        s.erfOptions.isSigned = rq.signedErf;
        if (!(rq.epsilon >= 0 && rq.epsilon < 10))
            throw report::UsageError("epsilon " + std::to_string(rq.epsilon) + ": expected a number from 0 to 10");
        s.saliencyOptions.epsilon = rq.epsilon;
        if (rq.forwards < 1 || rq.forwards > 100000)
            throw report::UsageError("saliency budget " + std::to_string(rq.forwards) + ": expected 1 to 100000 forwards");
        // As the CLI's --forwards: the soft budget, and the hard cap at least that.
        s.saliencyOptions.targetForwards = rq.forwards;
        s.saliencyOptions.maxForwards = std::max<int64_t>(s.saliencyOptions.maxForwards, rq.forwards);
        s.colormap = ss(rq.colormap);
        s.logScale = rq.logErf;
        if (!rq.objectBox.isNull() && !models.empty() && models.front().run) {
            // Input-grid pixel edges -> the CLI's --object (original image, pixel i spans [i, i + 1]).
            const imaging::InputImage& img = models.front().run->image;
            const auto p0 = imaging::inputToOriginal(img, rq.objectBox.left(), rq.objectBox.top());
            const auto p1 = imaging::inputToOriginal(img, rq.objectBox.right(), rq.objectBox.bottom());
            s.objectBox = std::array<double, 4>{p0[0] + 0.5, p0[1] + 0.5, p1[0] + 0.5, p1[1] + 0.5};
        }
        return s;
    }

    ColumnView column(const report::Run& r, const report::Settings& s, double seconds) const {
        const analysis::AnalysisSession& session = *r.session;
        const model::Layer& l = session.layer(r.node.layer);
        ColumnView c;
        c.model = qs(r.name);
        c.layer = qs(r.node.layer);
        c.layerKind = QString::fromLatin1(model::kindName(l.kind));
        c.fy = int(r.node.fy);
        c.fx = int(r.node.fx);
        c.response = qs(r.node.response.toString());
        const auto centre = session.nodeCentre(r.node);
        c.nodeCentre = QPointF(centre[0], centre[1]);
        c.nodeCell = QSizeF(l.jump[1], l.jump[0]);
        const auto rf = session.receptiveFieldBox(r.node); // y0, x0, y1, x1, half-open pixel indices
        c.receptiveField = QRectF(double(rf[1]) - 0.5, double(rf[0]) - 0.5, double(rf[3] - rf[1]), double(rf[2] - rf[0]));

        figure::NodeResults nr;
        nr.title = r.name;
        nr.session = r.session.get();
        nr.node = r.node;
        nr.sampling = r.sampling;
        nr.erf = r.erf;
        nr.saliency = r.saliency;
        nr.kernel = r.kernel;
        nr.object = r.object;
        nr.objectMetrics = r.objectMetrics;
        nr.colormap = s.colormap;
        nr.logScale = s.logScale;
        c.hasSampling = r.sampling.has_value();
        c.hasErf = r.erf.has_value();
        c.hasSaliency = r.saliency.has_value();
        if (c.hasSampling) {
            c.sampling = figure::samplingPanel(nr);
            c.levels = r.sampling->levels;
        }
        if (c.hasErf)
            c.erf = figure::erfPanel(nr);
        if (c.hasSaliency)
            c.saliency = figure::saliencyPanel(nr);
        c.hasKernel = r.kernel.has_value();
        if (c.hasKernel)
            c.kernel = figure::kernelPanel(nr);

        // The chosen layer's offset field and modulation map, as core computes them.
        analysis::OffsetField field = analysis::offsetField(session, r.node.layer);
        c.featureH = field.featureH;
        c.featureW = field.featureW;
        c.taps = field.taps;
        c.offsets = std::move(field.arrows);
        c.hasModulation = field.modulated;
        c.modulation = std::move(field.meanModulation);

        // The comparison's numbers (value < 0: not computed).
        auto add = [&](const char* key, const char* label, double value, const QString& text) {
            c.metrics.push_back(Metric{QString::fromLatin1(key), QString::fromUtf8(label), value, value < 0 ? QStringLiteral("n/a") : text});
        };
        const analysis::ObjectMetrics obj = r.objectMetrics.value_or(analysis::ObjectMetrics{});
        auto pct = [](double v) { return QString::number(100 * v, 'f', 1) + " %"; };
        if (r.erf) {
            const analysis::ErfMetrics& m = r.erf->metrics;
            add("erf_area50", "ERF 50 % area (px)", double(m.areaPixels[0]), QString::number(m.areaPixels[0]));
            add("erf_area90", "ERF 90 % area (px)", double(m.areaPixels[1]), QString::number(m.areaPixels[1]));
            add("erf_area90_rf", "ERF 90 % area / RF", m.area90ToRf, number(m.area90ToRf, 2));
        } else {
            add("erf_area50", "ERF 50 % area (px)", -1, {});
            add("erf_area90", "ERF 90 % area (px)", -1, {});
            add("erf_area90_rf", "ERF 90 % area / RF", -1, {});
        }
        add("erf_inside", "ERF mass in object", obj.erfMassInside, pct(obj.erfMassInside));
        double spread = -1;
        if (r.sampling)
            spread = analysis::toJson(*r.sampling).at("weighted_spread_px").asDouble();
        add("sampling_spread", "sampling spread (px)", spread, number(spread, 1));
        add("sampling_inside", "sampling weight in object", obj.samplingWeightInside, pct(obj.samplingWeightInside));
        add("saliency_area", "saliency area (of the image)", r.saliency ? r.saliency->areaFraction : -1,
            r.saliency ? pct(r.saliency->areaFraction) : QString());
        add("saliency_inside", "saliency area in object", obj.saliencyAreaInside, pct(obj.saliencyAreaInside));
        add("saliency_forwards", "saliency forwards", r.saliency ? double(r.saliency->forwards) : -1,
            r.saliency ? QString::number(r.saliency->forwards) : QString());
        add("saliency_error", "saliency error (relative)", r.saliency ? r.saliency->error : -1,
            r.saliency ? number(r.saliency->error, 3) : QString());
        add("kernel_shift", "DK mean tap shift (scope cells)", r.kernel ? r.kernel->meanShift : -1,
            r.kernel ? number(r.kernel->meanShift, 2) : QString());

        for (const std::string& n : r.notes)
            c.notes << qs(n);
        if (r.sampling)
            for (const std::string& n : r.sampling->notes)
                c.notes << qs(n);
        if (r.kernel)
            for (const std::string& n : r.kernel->notes)
                c.notes << qs(n);
        if (r.saliency && !r.saliency->note.empty())
            c.notes << qs(r.saliency->note);
        if (r.saliency && r.saliency->cancelled)
            c.notes << QStringLiteral("saliency search cancelled: the best verified region so far");
        c.seconds = seconds;
        QStringList timing;
        if (r.sampling)
            timing << "sampling " + duration(r.sampling->seconds);
        if (r.erf)
            timing << "ERF " + duration(r.erf->seconds);
        if (r.saliency)
            timing << "saliency " + duration(r.saliency->seconds) + " (" + QString::number(r.saliency->forwards) + " forwards)";
        c.timing = timing.join(QStringLiteral(" · "));
        return c;
    }

    void analyze(const AnalysisRequest& rq) {
        if (superseded(rq.id))
            return; // a newer click came in before this one started
        q->m_cancel = false;
        std::string context;
        guarded(rq.id, context, [&] {
            if (models.empty())
                throw report::UsageError("no model is open");
            if (imagePath.empty() || !models.front().run)
                throw report::UsageError("no image is open");
            QElapsedTimer total;
            total.start();
            const report::Settings s = settingsOf(rq);
            auto view = std::make_shared<ClickView>();
            view->id = rq.id;
            const report::Run& first = *models.front().run;
            view->background = figure::inputImage(*first.session);
            view->image = toQImage(view->background);
            view->scaleX = double(first.image.originalWidth) / double(first.image.width);
            view->scaleY = double(first.image.originalHeight) / double(first.image.height);
            view->click = rq.point;
            const size_t n = models.size();
            std::vector<report::Run> delivered;
            bool cancelled = false;
            for (size_t i = 0; i < n; ++i) {
                pump();
                if (superseded(rq.id))
                    return;
                report::Run& r = *models[i].run;
                context = r.model.path();
                QElapsedTimer timer;
                timer.start();
                try {
                    report::analyseNode(r, s, std::array<double, 2>{rq.point.x(), rq.point.y()},
                                        [&](const analysis::SaliencyProgress& p) {
                                            pump();
                                            if (superseded(rq.id))
                                                return false;
                                            if (q->m_cancel.load()) {
                                                cancelled = true;
                                                return false;
                                            }
                                            Q_EMIT q->progress(rq.id, (double(i) + std::clamp(p.fraction, 0.0, 1.0)) / double(n),
                                                               qs(r.name + ": saliency " + p.stage + ", " +
                                                                  std::to_string(p.forwards) + " forwards"));
                                            return true;
                                        });
                    if (superseded(rq.id))
                        return;
                    if (r.erf && !at::isfinite(r.erf->map).all().item<bool>())
                        throw report::UsageError(r.model.path() + ": the effective receptive field has NaN or Inf values");
                    view->columns.push_back(column(r, s, double(timer.nsecsElapsed()) * 1e-9));
                    cancelled = cancelled || (r.saliency && r.saliency->cancelled);
                    delivered.push_back(r);
                } catch (const c10::OutOfMemoryError& e) {
                    ColumnView c;
                    c.model = qs(r.name);
                    c.error = qs(outOfMemory(context, e));
                    view->columns.push_back(std::move(c));
                } catch (const std::exception& e) {
                    ColumnView c;
                    c.model = qs(r.name);
                    c.error = qs(withContext(context, describe(e)));
                    view->columns.push_back(std::move(c));
                }
            }
            context.clear();
            pump();
            if (superseded(rq.id))
                return;
            if (delivered.empty()) { // every model failed: one message
                Q_EMIT q->failed(rq.id, view->columns.empty() ? QStringLiteral("nothing to analyse") : view->columns.front().error);
                return;
            }
            // The object region the metrics used (input grid, pixel edges).
            if (!rq.objectBox.isNull()) {
                view->objectBox = rq.objectBox;
            } else if (delivered.front().object.defined()) {
                const at::Tensor nz = delivered.front().object.nonzero(); // [N, 2] (y, x)
                if (nz.size(0) > 0) {
                    const at::Tensor lo = std::get<0>(nz.min(0)), hi = std::get<0>(nz.max(0));
                    const double y0 = double(lo[0].item<int64_t>()), x0 = double(lo[1].item<int64_t>());
                    const double y1 = double(hi[0].item<int64_t>()), x1 = double(hi[1].item<int64_t>());
                    view->objectBox = QRectF(x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1);
                }
            }
            view->cancelled = cancelled;
            view->seconds = double(total.nsecsElapsed()) * 1e-9;
            lastRuns = std::move(delivered);
            lastSettings = s;
            haveLast = true;
            Q_EMIT q->resultReady(std::const_pointer_cast<const ClickView>(view));
        });
    }

    void exportResults(const ExportRequest& rq) {
        guarded(rq.id, ss(rq.directory), [&] {
            if (!haveLast || lastRuns.empty())
                throw report::UsageError("nothing to export: no click has been analysed yet");
            if (rq.directory.isEmpty())
                throw report::UsageError("no folder to export into");
            const std::string dir = ss(rq.directory);
            report::makeDirectory(dir);
            report::Settings s = lastSettings;
            s.figures = rq.figures;
            s.out = dir;
            std::vector<const report::Run*> runs;
            for (const report::Run& r : lastRuns)
                if (rq.models.isEmpty() || rq.models.contains(qs(r.name)))
                    runs.push_back(&r);
            if (runs.empty())
                throw report::UsageError("none of the models to export (" + ss(rq.models.join(QStringLiteral(", "))) +
                                         ") is in the last click");
            QStringList files;
            const QDir out(rq.directory);
            auto dataFiles = [&](const common::Json& doc) {
                files << out.filePath(QStringLiteral("result.json"));
                for (const common::Json& f : doc.at("files").asArray())
                    files << out.filePath(qs(f.asString()));
            };
            if (runs.size() == 1) {
                const auto figures = figure::writeFigures(runs, s, dir, "analysis", report::analyzeTitle(*runs.front()));
                for (const std::string& f : figures)
                    files << out.filePath(qs(f));
                if (rq.data)
                    dataFiles(report::writeData(*runs.front(), s, dir, figures));
            } else {
                const auto figures = figure::writeFigures(runs, s, dir, "compare", report::compareTitle(runs));
                for (const std::string& f : figures)
                    files << out.filePath(qs(f));
                if (rq.data) {
                    report::writeCompareData(runs, s, dir, figures);
                    files << out.filePath(QStringLiteral("compare.json"));
                    for (const report::Run* r : runs) {
                        const QDir m(out.filePath(qs(r->name)));
                        files << m.filePath(QStringLiteral("result.json"));
                        if (r->sampling)
                            files << m.filePath(QStringLiteral("sampling.csv"));
                        if (r->erf)
                            files << m.filePath(QStringLiteral("erf.npy"));
                        if (r->saliency)
                            files << m.filePath(QStringLiteral("saliency_mask.npy"));
                    }
                }
            }
            for (QString& f : files)
                f = QDir::cleanPath(f);
            Q_EMIT q->exported(rq.id, files);
        });
    }

    void averageErf(const ErfAverageRequest& rq) {
        q->m_cancel = false;
        guarded(rq.id, ss(rq.model), [&] {
            const OpenModel* om = nullptr;
            for (const OpenModel& m : models)
                if (qs(m.model.path()) == rq.model ||
                    QFileInfo(qs(m.model.path())).canonicalFilePath() == QFileInfo(rq.model).canonicalFilePath())
                    om = &m;
            if (!om || rq.model.isEmpty())
                throw report::UsageError(ss(rq.model) + ": is not an open model");
            if (rq.outDirectory.isEmpty())
                throw report::UsageError("no output folder for the averaged ERF");
            const std::string folder = ss(rq.folder);
            const report::ImageFolder images = report::listImages(folder, std::max(0, rq.limit));
            const model::LoadedModel& m = om->model;
            const std::array<int64_t, 2> size = report::erfAverageInputSize(m, images.files);
            const model::LayerGraph g = model::layerGraph(m, size);
            analysis::ErfAverageOptions options;
            options.layer = rq.layer.isEmpty() ? report::defaultLayer(m, g) : ss(rq.layer);
            if (!g.find(options.layer))
                throw report::UsageError(m.path() + " has no layer '" + options.layer + "'; its layers are: " + g.names());
            const analysis::ErfAverageResult result =
                report::averageErfOver(m, images.files, size, options, [&](int64_t done, int64_t total) {
                    if (q->m_cancel.load() || QThread::currentThread()->isInterruptionRequested())
                        return false;
                    Q_EMIT q->progress(rq.id, total > 0 ? double(done) / double(total) : 0.0,
                                       QStringLiteral("ERF average: %1/%2 images").arg(done).arg(total));
                    return true;
                });
            const std::string dir = ss(rq.outDirectory);
            report::makeDirectory(dir);
            const std::vector<std::string> figures = figure::writeErfAverageFigures(
                figure::erfAverageFigure(result, m, g, folder, options.isSigned, false), dir);
            report::writeErfAverageData(result, m, folder, size, images.masks, dir, figures);
            Q_EMIT q->erfAveraged(rq.id, QDir(rq.outDirectory).filePath(QStringLiteral("erf_average.png")),
                                  int(result.images), result.cancelled);
        });
    }
};

// ---- Engine ------------------------------------------------------------------------

namespace {
void registerMetaTypes() {
    qRegisterMetaType<uint64_t>("uint64_t");
    qRegisterMetaType<deformscope::ui::AnalysisRequest>("deformscope::ui::AnalysisRequest");
    qRegisterMetaType<deformscope::ui::ExportRequest>("deformscope::ui::ExportRequest");
    qRegisterMetaType<deformscope::ui::ErfAverageRequest>("deformscope::ui::ErfAverageRequest");
    qRegisterMetaType<deformscope::ui::InputSettings>("deformscope::ui::InputSettings");
    qRegisterMetaType<std::vector<deformscope::ui::ModelInfo>>("std::vector<deformscope::ui::ModelInfo>");
    qRegisterMetaType<deformscope::ui::ClickViewPtr>("deformscope::ui::ClickViewPtr");
}
} // namespace

Engine::Engine() : d(std::make_unique<Impl>(this)) {}

Engine::~Engine() = default;

std::unique_ptr<Engine, void (*)(Engine*)> Engine::start() {
    registerMetaTypes();
    auto* thread = new QThread;
    thread->setObjectName(QStringLiteral("DeformScope engine"));
    auto* engine = new Engine;
    engine->moveToThread(thread);
    // Destroyed on its own thread when the thread finishes (QThread runs deferred deletes then).
    QObject::connect(thread, &QThread::finished, engine, &QObject::deleteLater);
    thread->start();
    return {engine, [](Engine* e) {
                if (!e)
                    return;
                QThread* t = e->thread();
                e->m_latestAnalysis = UINT64_MAX; // every request is superseded
                e->m_cancel = true;
                t->requestInterruption();
                t->quit();
                t->wait();
                delete t;
            }};
}

uint64_t Engine::nextId() { return ++m_lastId; }

void Engine::cancel() { m_cancel = true; }

QStringList Engine::devices() {
    QStringList names;
    for (const at::Device& d : ops::checks::availableDevices())
        names << (d.is_cuda() ? QStringLiteral("cuda:%1").arg(int(d.has_index() ? d.index() : 0)) : qs(d.str()));
    return names;
}

void Engine::openModels(uint64_t id, const QStringList& paths, const QString& device) {
    d->enqueue({false, [this, id, paths, device] { d->openModels(id, paths, device); }});
}

void Engine::openImage(uint64_t id, const QString& path) {
    d->enqueue({false, [this, id, path] { d->openImage(id, path); }});
}

void Engine::analyze(const AnalysisRequest& request) {
    // Newer clicks supersede older ones, also while one of them runs (it takes in this request through pump()).
    uint64_t latest = m_latestAnalysis.load();
    while (request.id > latest && !m_latestAnalysis.compare_exchange_weak(latest, request.id)) {
    }
    d->enqueue({true, [this, request] { d->analyze(request); }});
}

void Engine::exportResults(const ExportRequest& request) {
    d->enqueue({false, [this, request] { d->exportResults(request); }});
}

void Engine::averageErf(const ErfAverageRequest& request) {
    d->enqueue({false, [this, request] { d->averageErf(request); }});
}

void Engine::setInputSettings(uint64_t id, const QString& modelPath, const InputSettings& settings) {
    d->enqueue({false, [this, id, modelPath, settings] { d->setInputSettings(id, modelPath, settings); }});
}

} // namespace deformscope::ui
