// The engine's jobs. Each public method queues one job (JobQueue) and returns
// its id; the job's body runs on the worker thread against the ModelCache and
// reports through the signals. A running analysis reads its JobToken between
// models and in every saliency progress callback: superseded, it returns
// without delivering; cancelled, it delivers the best verified regions so far.
#include "ui/engine/engine.h"

#include "core/analysis/analysis.h"
#include "core/common/json_file.h"
#include "core/ops/checks/selftest.h"
#include "core/report/report.h"
#include "core/report/scale_map_data.h"
#include "core/report/study.h"
#include "ui/analysis_figure/sweep_report.h"
#include "core/analysis/scale_map.h"
#include "ui/analysis_figure/analysis_figure.h"
#include "ui/analysis_figure/report_figures.h"
#include "ui/engine/job_queue.h"
#include "ui/engine/model_cache.h"
#include "ui/engine/views.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QElapsedTimer>

#include <algorithm>

namespace deformscope::ui {

struct Engine::Impl {
    explicit Impl(Engine* engine) : q(engine) {}

    Engine* q;

    // Touched only by the worker thread (job bodies).
    ModelCache cache;
    std::vector<report::Run> lastRuns; // the last delivered click, for exportResults (copies share sessions)
    common::AnalysisRequest lastRequest;

    JobQueue queue; // last: destroyed first, so no job runs while the state above goes

    // Queues `body` as job `id`; anything it throws becomes failed(id, message).
    uint64_t submit(Job::Kind kind, std::function<void(uint64_t, JobToken&)> body) {
        Job job;
        job.id = queue.nextId();
        job.kind = kind;
        job.body = [this, id = job.id, body = std::move(body)](JobToken& token) {
            try {
                body(id, token);
            } catch (const std::exception& e) {
                Q_EMIT q->failed(id, qs(describeFailure("", e)));
            } catch (...) {
                Q_EMIT q->failed(id, QStringLiteral("unexpected error"));
            }
        };
        const uint64_t id = job.id;
        queue.submit(std::move(job));
        return id;
    }

    void emitImage(uint64_t id) {
        const ModelCache::Picture p = cache.picture();
        Q_EMIT q->imageOpened(id, qs(cache.imagePath()), p.image, p.scaleX, p.scaleY);
    }

    // The models' layer lists, then the image prepared for them when one is open.
    void emitModels(uint64_t id) {
        Q_EMIT q->modelsOpened(id, cache.infos());
        if (cache.hasImage())
            emitImage(id);
    }

    void analyze(uint64_t id, common::AnalysisRequest rq, JobToken& token, int onlyModel) {
        const std::vector<report::Run*> runs = cache.runs();
        if (cache.infos().empty())
            throw report::UsageError("no model is open");
        if (!cache.hasImage() || runs.empty())
            throw report::UsageError("no image is open");
        QElapsedTimer total;
        total.start();
        rq.inputSize = cache.grid();
        rq.device = common::DeviceSpec::parse(cache.device().str()).value_or(common::DeviceSpec{});
        report::checkRequest(rq);
        auto view = std::make_shared<ClickView>();
        view->id = id;
        const ModelCache::Picture picture = cache.picture();
        view->background = figure::inputImage(*runs.front()->session);
        view->image = picture.image;
        view->scaleX = picture.scaleX;
        view->scaleY = picture.scaleY;
        view->click = rq.at ? QPointF(rq.at->x, rq.at->y) : QPointF();
        const size_t n = runs.size();
        // Two passes: every model's sampling points and ERF first, delivered at once as a
        // partial result (well under a second), then every model's saliency search, each
        // column updated as its search ends. A newer click stops either pass.
        const bool saliency = rq.what.saliency;
        std::vector<report::Run> delivered;
        std::vector<size_t> deliveredRun, deliveredColumn; // index into runs and into view->columns
        for (size_t i = 0; i < n; ++i) {
            if (token.superseded)
                return; // a newer click came in
            report::Run& r = *runs[i];
            if (onlyModel >= 0 && size_t(onlyModel) != i) { // the single view: its model alone
                ColumnView c;
                c.model = qs(r.name);
                c.skipped = true;
                view->columns.push_back(std::move(c));
                continue;
            }
            QElapsedTimer timer;
            timer.start();
            // Motion and label propagation: for models with an alignment layer, after the
            // node's analyses, so that a bad label file costs a note, not the column.
            // A RoI head runs on its region of interest: a new box is a new captured forward.
            if (r.model.takesRois()) {
                const std::array<double, 4> whole{0, 0, double(r.image.width), double(r.image.height)};
                const std::array<double, 4> want =
                    rq.roi ? std::array<double, 4>{rq.roi->x0, rq.roi->y0, rq.roi->x1, rq.roi->y1} : whole;
                if (!r.roi || *r.roi != want) {
                    common::AnalysisRequest prepare;
                    prepare.inputSize = rq.inputSize;
                    prepare.roi = rq.roi;
                    try {
                        const std::string name = r.name;
                        r = report::prepareRun(r.model, cache.inputs(), prepare);
                        r.name = name;
                    } catch (const std::exception& e) {
                        ColumnView c;
                        c.model = qs(r.name);
                        c.error = qs(describeFailure(r.model.path(), e));
                        view->columns.push_back(std::move(c));
                        continue;
                    }
                }
            }
            common::AnalysisRequest nodeRequest = rq;
            nodeRequest.what.motion = false;
            nodeRequest.what.saliency = false;
            nodeRequest.propagate.clear();
            nodeRequest.propagateTruth.clear();
            const bool motion = rq.what.motion || !rq.propagate.empty();
            try {
                report::analyseNode(r, nodeRequest);
                if (token.superseded)
                    return;
                if (r.erf && !at::isfinite(r.erf->map).all().item<bool>())
                    throw report::UsageError(r.model.path() + ": the effective receptive field has NaN or Inf values");
                // (An ordinary one-frame model in the comparison gets none, silently; a video
                // model without an alignment layer gets motionField's message.)
                std::string motionNote;
                if (motion && r.session->frames() > 1) {
                    try {
                        report::analyseMotion(r, rq);
                    } catch (const std::exception& e) {
                        motionNote = "motion not shown: " + describeFailure({}, e);
                    }
                }
                view->columns.push_back(columnView(r, rq, double(timer.nsecsElapsed()) * 1e-9));
                ColumnView& c = view->columns.back();
                if (!motionNote.empty())
                    c.notes << qs(motionNote);
                c.saliencyPending = saliency;
                if (saliency)
                    for (Metric& metric : c.metrics)
                        if (metric.key.startsWith(QLatin1String("saliency_")))
                            metric.text = QStringLiteral("computing…");
                delivered.push_back(r);
                deliveredRun.push_back(i);
                deliveredColumn.push_back(view->columns.size() - 1);
            } catch (const std::exception& e) {
                ColumnView c;
                c.model = qs(r.name);
                c.error = qs(describeFailure(r.model.path(), e));
                view->columns.push_back(std::move(c));
            }
        }
        if (token.superseded)
            return;
        if (delivered.empty()) { // every model failed: one message
            Q_EMIT q->failed(id, view->columns.empty() ? QStringLiteral("nothing to analyse") : view->columns.front().error);
            return;
        }
        view->objectBox = objectBoxOf(rq, delivered.front());
        if (saliency) {
            view->partial = true;
            view->seconds = double(total.nsecsElapsed()) * 1e-9;
            Q_EMIT q->resultReady(std::make_shared<const ClickView>(*view));
            const size_t m = delivered.size();
            for (size_t k = 0; k < m; ++k) {
                if (token.superseded)
                    return;
                report::Run& r = *runs[deliveredRun[k]];
                ColumnView& column = view->columns[deliveredColumn[k]];
                QElapsedTimer timer;
                timer.start();
                try {
                    report::analyseSaliency(r, rq, [&](const analysis::SaliencyProgress& p) {
                        if (token.stop())
                            return false;
                        Q_EMIT q->progress(id, (double(k) + std::clamp(p.fraction, 0.0, 1.0)) / double(m),
                                           qs(r.name + ": saliency " + p.stage + ", " + std::to_string(p.forwards) +
                                              " forwards"));
                        return true;
                    });
                    if (token.superseded)
                        return;
                    const QStringList notes = column.notes; // the first pass's (motion) notes
                    const double seconds = column.seconds + double(timer.nsecsElapsed()) * 1e-9;
                    column = columnView(r, rq, seconds);
                    for (const QString& note : notes)
                        if (!column.notes.contains(note))
                            column.notes << note;
                    view->cancelled = view->cancelled || column.saliencyCancelled;
                    delivered[k] = r;
                } catch (const std::exception& e) {
                    column.saliencyPending = false;
                    column.notes << qs("saliency not shown: " + describeFailure(r.model.path(), e));
                }
                if (k + 1 < m) { // the columns done so far, the others still searching
                    view->seconds = double(total.nsecsElapsed()) * 1e-9;
                    Q_EMIT q->resultReady(std::make_shared<const ClickView>(*view));
                }
            }
            if (token.superseded)
                return;
            view->partial = false;
        }
        view->seconds = double(total.nsecsElapsed()) * 1e-9;
        lastRuns = std::move(delivered);
        lastRequest = rq;
        Q_EMIT q->resultReady(std::const_pointer_cast<const ClickView>(view));
    }

    void exportResults(uint64_t id, const ExportRequest& rq) {
        if (lastRuns.empty())
            throw report::UsageError("nothing to export: no click has been analysed yet");
        if (rq.directory.isEmpty())
            throw report::UsageError("no folder to export into");
        const std::string dir = ss(rq.directory);
        try {
            report::makeDirectory(dir);
            common::AnalysisRequest s = lastRequest;
            s.figures = rq.figures;
            std::vector<const report::Run*> runs;
            for (const report::Run& r : lastRuns)
                if (rq.models.isEmpty() || rq.models.contains(qs(r.name)))
                    runs.push_back(&r);
            if (runs.empty())
                throw report::UsageError("none of the models to export (" + ss(rq.models.join(QStringLiteral(", "))) +
                                         ") is in the last click");
            QStringList files;
            const QDir out(rq.directory);
            const bool single = runs.size() == 1;
            const auto figures = figure::writeFigures(runs, s, dir, single ? "analysis" : "compare",
                                                      single ? report::analyzeTitle(*runs.front()) : report::compareTitle(runs));
            for (const std::string& f : figures)
                files << out.filePath(qs(f));
            if (rq.data && single) {
                const common::Json doc = report::writeData(*runs.front(), s, dir, figures);
                files << out.filePath(QStringLiteral("result.json"));
                for (const common::Json& f : doc.at("files"))
                    files << out.filePath(qs(f.get<std::string>()));
            } else if (rq.data) {
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
            for (QString& f : files)
                f = QDir::cleanPath(f);
            Q_EMIT q->exported(id, files);
        } catch (const std::exception& e) {
            throw std::runtime_error(describeFailure(dir, e));
        }
    }

    void averageErf(uint64_t id, const ErfAverageRequest& rq, JobToken& token) {
        try {
            const model::LoadedModel* om = cache.findModel(rq.model);
            if (!om)
                throw report::UsageError(ss(rq.model) + ": is not an open model");
            if (rq.outDirectory.isEmpty())
                throw report::UsageError("no output folder for the averaged ERF");
            const std::string folder = ss(rq.folder);
            const report::ImageFolder images = report::listImages(folder, std::max(0, rq.limit));
            const model::LoadedModel& m = *om;
            const std::array<int64_t, 2> size = report::erfAverageInputSize(m, images.files);
            const model::LayerGraph g = model::layerGraph(m, size);
            analysis::ErfAverageOptions options;
            options.layer = rq.layer.isEmpty() ? report::defaultLayer(m, g) : ss(rq.layer);
            if (!g.find(options.layer))
                throw report::UsageError(m.path() + " has no layer '" + options.layer + "'; its layers are: " + g.names());
            const analysis::ErfAverageResult result =
                report::averageErfOver(m, images.files, size, options, [&](int64_t done, int64_t total) {
                    if (token.stop())
                        return false;
                    Q_EMIT q->progress(id, total > 0 ? double(done) / double(total) : 0.0,
                                       QStringLiteral("ERF average: %1/%2 images").arg(done).arg(total));
                    return true;
                });
            const std::string dir = ss(rq.outDirectory);
            report::makeDirectory(dir);
            const std::vector<std::string> figures = figure::writeErfAverageFigures(
                figure::erfAverageFigure(result, m, g, folder, options.isSigned, false), dir);
            report::writeErfAverageData(result, m, folder, size, images.masks, dir, figures);
            Q_EMIT q->erfAveraged(id, QDir(rq.outDirectory).filePath(QStringLiteral("erf_average.png")),
                                  int(result.images), result.cancelled);
        } catch (const std::exception& e) {
            throw std::runtime_error(describeFailure(ss(rq.model), e));
        }
    }

    void study(uint64_t id, const StudyRequest& rq, JobToken& token) {
        if (cache.infos().empty())
            throw report::UsageError("no model is open: the study runs every open model");
        if (rq.outDirectory.isEmpty())
            throw report::UsageError("no output folder for the study");
        std::vector<const model::LoadedModel*> models;
        std::vector<std::string> names, paths;
        for (const ModelInfo& info : cache.infos()) {
            const model::LoadedModel* m = cache.findModel(info.path);
            if (!m)
                continue;
            models.push_back(m);
            names.push_back(ss(info.name));
            paths.push_back(ss(info.path));
        }
        report::StudyOptions options;
        options.images = ss(rq.folder);
        options.masks = ss(rq.masks);
        options.limit = std::max(0, rq.limit);
        common::AnalysisRequest request;
        request.layer = ss(rq.layer);
        request.what.saliency = rq.saliency;
        request.device = common::DeviceSpec::parse(cache.device().str()).value_or(common::DeviceSpec{});
        const report::StudyRun run = report::runStudy(
            models, names, options, request, [&](int64_t done, int64_t total, const std::string& image) {
                if (token.stop())
                    return false;
                Q_EMIT q->progress(id, total > 0 ? double(done) / double(total) : 0.0,
                                   done < total ? QStringLiteral("Study: image %1/%2 (%3)")
                                                      .arg(done + 1)
                                                      .arg(total)
                                                      .arg(qs(image))
                                                : QStringLiteral("Study: writing"));
                return true;
            });
        const std::string dir = ss(rq.outDirectory);
        report::makeDirectory(dir);
        const std::vector<std::string> figures = figure::writeStudyFigures(run.rows, names, dir);
        report::writeStudyData(dir, report::studyHeader(paths, names, options, run, request), run.rows, names, figures);
        const bool haveErf = std::find(figures.begin(), figures.end(), "study_erf.png") != figures.end();
        Q_EMIT q->studied(id, haveErf ? QDir(rq.outDirectory).filePath(QStringLiteral("study_erf.png")) : QString(),
                          int(run.rows.size() / models.size()), int(run.used), run.cancelled);
    }

    void sweep(uint64_t id, const SweepRequest& rq, JobToken& token) {
        const std::vector<report::Run*> runs = cache.runs();
        if (cache.infos().empty() || !cache.hasImage() || runs.empty())
            throw report::UsageError("open the models and an image first: the sweep re-runs the image's node at "
                                     "each size");
        if (rq.outDirectory.isEmpty())
            throw report::UsageError("no output folder for the sweep");
        if (rq.sizes.isEmpty())
            throw report::UsageError("no input sizes for the sweep");
        figure::SweepSpec spec;
        for (const ModelInfo& info : cache.infos())
            if (const model::LoadedModel* m = cache.findModel(info.path)) {
                spec.models.push_back(m);
                spec.names.push_back(ss(info.name));
                spec.modelPaths.push_back(ss(info.path));
            }
        spec.image = cache.imagePath();
        for (int s : rq.sizes) {
            if (s < 8)
                throw report::UsageError("a sweep size must be at least 8 px, got " + std::to_string(s));
            spec.sizes.push_back(s);
        }
        common::AnalysisRequest request;
        request.what.saliency = false;
        request.device = common::DeviceSpec::parse(cache.device().str()).value_or(common::DeviceSpec{});
        if (rq.atLastClick && !lastRuns.empty()) {
            // The last click's node: its pixel on the original image, its layer and response.
            request.layer = lastRuns.front().node.layer;
            request.response = lastRequest.response;
            request.at = common::Location{common::Grid::Original, lastRuns.front().pixel[0], lastRuns.front().pixel[1]};
        }
        spec.request = request;
        spec.dir = ss(rq.outDirectory);
        const figure::SweepOutcome out =
            figure::writeSweep(spec, [&](int64_t done, int64_t total, const std::string& what) {
                if (token.stop())
                    return false;
                Q_EMIT q->progress(id, total > 0 ? double(done) / double(total) : 0.0,
                                   QStringLiteral("Sweep: %1").arg(qs(what)));
                return true;
            });
        Q_EMIT q->figureWritten(id, QStringLiteral("ERF against input size"),
                                QDir(rq.outDirectory).filePath(QStringLiteral("sweep.png")), out.cancelled);
    }

    void scaleMap(uint64_t id, const ScaleMapRequest& rq, JobToken& token) {
        report::Run* run = nullptr;
        for (report::Run* r : cache.runs())
            if (qs(r->model.path()) == rq.model)
                run = r;
        if (!run)
            throw report::UsageError(ss(rq.model) + ": not an open model with the image prepared");
        if (rq.outDirectory.isEmpty())
            throw report::UsageError("no output folder for the ERF-size map");
        analysis::ScaleMapOptions options;
        options.layer = rq.layer.isEmpty() ? report::defaultLayer(run->model, run->session->graph()) : ss(rq.layer);
        options.grid = std::max(1, rq.grid);
        bool cancelled = false;
        analysis::ScaleMapResult result;
        try {
            result = analysis::scaleMap(*run->session, options, [&](int64_t done, int64_t total) {
                if (token.stop()) {
                    cancelled = true;
                    return false;
                }
                Q_EMIT q->progress(id, total > 0 ? double(done) / double(total) : 0.0,
                                   QStringLiteral("ERF-size map: %1/%2 nodes").arg(done).arg(total));
                return true;
            });
        } catch (const analysis::AnalysisError&) {
            if (!cancelled)
                throw;
            Q_EMIT q->figureWritten(id, QStringLiteral("ERF-size map"), QString(), true); // nothing to show
            return;
        }
        const std::string dir = ss(rq.outDirectory);
        report::makeDirectory(dir);
        const std::vector<std::string> figures =
            figure::writeNamedFigures(figure::scaleMapFigure(result, *run), dir, "scale_map");
        report::writeScaleMapData(result, *run, run->model.path(), cache.imagePath(), dir, figures);
        Q_EMIT q->figureWritten(id, QStringLiteral("ERF size of every node of %1").arg(qs(result.layer)),
                                QDir(rq.outDirectory).filePath(QStringLiteral("scale_map.png")), cancelled);
    }
};

// ---- Engine ------------------------------------------------------------------------

Engine::Engine() : d(std::make_unique<Impl>(this)) {
    qRegisterMetaType<uint64_t>("uint64_t");
    qRegisterMetaType<std::vector<deformscope::ui::ModelInfo>>("std::vector<deformscope::ui::ModelInfo>");
    qRegisterMetaType<deformscope::ui::ClickViewPtr>("deformscope::ui::ClickViewPtr");
}

Engine::~Engine() = default;

uint64_t Engine::openModels(const QStringList& paths, const QString& device) {
    return d->submit(Job::Kind::Other, [this, paths, device](uint64_t id, JobToken&) {
        d->cache.openModels(paths, device);
        d->emitModels(id);
    });
}

uint64_t Engine::openImage(const QString& path) {
    return d->submit(Job::Kind::Other, [this, path](uint64_t id, JobToken&) {
        const std::array<int64_t, 2> before = d->cache.grid();
        const bool hadLists = !d->cache.infos().empty();
        d->cache.openImage(path);
        if (hadLists && d->cache.grid() != before)
            Q_EMIT modelsOpened(id, d->cache.infos()); // the layer lists for the new grid
        d->emitImage(id);
    });
}

uint64_t Engine::analyze(const common::AnalysisRequest& request, int onlyModel) {
    return d->submit(Job::Kind::Analysis, [this, request, onlyModel](uint64_t id, JobToken& token) {
        d->analyze(id, request, token, onlyModel);
    });
}

uint64_t Engine::exportResults(const ExportRequest& request) {
    return d->submit(Job::Kind::Other, [this, request](uint64_t id, JobToken&) { d->exportResults(id, request); });
}

uint64_t Engine::sweep(const SweepRequest& request) {
    return d->submit(Job::Kind::Other, [this, request](uint64_t id, JobToken& token) { d->sweep(id, request, token); });
}

uint64_t Engine::scaleMap(const ScaleMapRequest& request) {
    return d->submit(Job::Kind::Other,
                     [this, request](uint64_t id, JobToken& token) { d->scaleMap(id, request, token); });
}

uint64_t Engine::study(const StudyRequest& request) {
    return d->submit(Job::Kind::Other, [this, request](uint64_t id, JobToken& token) { d->study(id, request, token); });
}

uint64_t Engine::averageErf(const ErfAverageRequest& request) {
    return d->submit(Job::Kind::Other,
                     [this, request](uint64_t id, JobToken& token) { d->averageErf(id, request, token); });
}

uint64_t Engine::setInputSettings(const QString& modelPath, const InputSettings& settings) {
    return d->submit(Job::Kind::Other, [this, modelPath, settings](uint64_t id, JobToken&) {
        d->cache.setInputSettings(modelPath, settings);
        d->emitModels(id);
    });
}

void Engine::cancel() { d->queue.cancelRunning(); }

QStringList Engine::devices() {
    QStringList names;
    for (const at::Device& dev : ops::checks::availableDevices())
        names << (dev.is_cuda() ? QStringLiteral("cuda:%1").arg(int(dev.has_index() ? dev.index() : 0)) : qs(dev.str()));
    return names;
}

} // namespace deformscope::ui
