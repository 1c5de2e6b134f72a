// Tests of the GUI's engine (ui/engine): requests posted from this (the GUI)
// thread with queued invocations, results received through queued signals, on
// the bundled sample models; the export is checked against deformscope-cli.
#include "ui/engine/engine.h"

#include "core/analysis/analysis.h"
#include "core/common/json_file.h"
#include "tests/support/json_compare.h"
#include "core/common/npy.h"
#include "core/imaging/image.h"
#include "core/model/capture.h"
#include "core/model/model.h"

#include <ATen/ATen.h>
#include <torch/script.h>

#include <QtCore/QDir>
#include <QtCore/QElapsedTimer>
#include <QtCore/QFile>
#include <QtCore/QFileInfo>
#include <QtCore/QProcess>
#include <QtCore/QTemporaryDir>
#include <QtGui/QImage>
#include <QtTest/QtTest>

#include <cmath>
#include <functional>
#include <set>

using deformscope::common::Json;
using namespace deformscope::ui;

namespace {

QString sampleModel(const char* name) {
    return QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/sample_models/" + QString::fromUtf8(name);
}
QString sampleImage(const char* name) {
    return QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples/" + QString::fromUtf8(name);
}
QStringList samples() { return {sampleModel("regular.pt"), sampleModel("dcn_v1.pt"), sampleModel("dcn_v2.pt")}; }

std::string readAll(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll().toStdString();
}

// Everything the engine sends back, received on this thread (queued connections).
struct Received {
    std::vector<std::pair<uint64_t, std::vector<ModelInfo>>> models;
    std::vector<std::pair<uint64_t, QImage>> images;
    std::vector<double> imageScale;
    std::vector<ClickViewPtr> results;
    std::vector<std::pair<uint64_t, QString>> failures;
    std::vector<std::pair<uint64_t, QStringList>> exports;
    std::vector<std::tuple<uint64_t, QString, int, bool>> averages;
    std::vector<std::tuple<uint64_t, QString, int, int, bool>> studies; // id, figure, objects, images, cancelled
    std::vector<std::tuple<uint64_t, QString, QString, bool>> figures;  // id, title, png, cancelled
    std::vector<std::pair<uint64_t, double>> progress;
};

// A submitted click.
struct Click {
    uint64_t id = 0;
};

class Harness {
public:
    Harness() : engine(std::make_unique<Engine>()) {
        Engine* e = engine.get();
        QObject::connect(e, &Engine::modelsOpened, &receiver,
                         [this](uint64_t id, const std::vector<ModelInfo>& m) { got.models.push_back({id, m}); });
        QObject::connect(e, &Engine::imageOpened, &receiver,
                         [this](uint64_t id, const QString&, const QImage& img, double sx, double) {
                             got.images.push_back({id, img});
                             got.imageScale.push_back(sx);
                         });
        QObject::connect(e, &Engine::resultReady, &receiver, [this](const ClickViewPtr& r) { got.results.push_back(r); });
        QObject::connect(e, &Engine::failed, &receiver,
                         [this](uint64_t id, const QString& message) { got.failures.push_back({id, message}); });
        QObject::connect(e, &Engine::exported, &receiver,
                         [this](uint64_t id, const QStringList& files) { got.exports.push_back({id, files}); });
        QObject::connect(e, &Engine::erfAveraged, &receiver,
                         [this](uint64_t id, const QString& fig, int n, bool c) { got.averages.push_back({id, fig, n, c}); });
        QObject::connect(e, &Engine::studied, &receiver, [this](uint64_t id, const QString& fig, int n, int i, bool c) {
            got.studies.push_back({id, fig, n, i, c});
        });
        QObject::connect(e, &Engine::figureWritten, &receiver,
                         [this](uint64_t id, const QString& t, const QString& png, bool c) {
                             got.figures.push_back({id, t, png, c});
                         });
        QObject::connect(e, &Engine::progress, &receiver,
                         [this](uint64_t id, double f, const QString&) { got.progress.push_back({id, f}); });
    }

    uint64_t openModels(const QStringList& paths) { return engine->openModels(paths, QStringLiteral("cpu")); }
    uint64_t openImage(const QString& path) { return engine->openImage(path); }
    // A click at input-grid (x, y): sampling and ERF, and the saliency search with `forwards` if asked.
    Click analyze(double x, double y, bool saliency = false, int forwards = 60) {
        deformscope::common::AnalysisRequest r;
        r.at = deformscope::common::Location{deformscope::common::Grid::Input, x, y};
        r.what.saliency = saliency;
        r.forwards = forwards;
        return Click{engine->analyze(r)};
    }
    uint64_t exportTo(const QString& dir) {
        ExportRequest r;
        r.directory = dir;
        return engine->exportResults(r);
    }

    // Waits (processing events) until `done` or the timeout.
    static bool wait(const std::function<bool()>& done, int ms = 120000) { return QTest::qWaitFor(done, ms); }
    bool failedWith(uint64_t id) const {
        for (const auto& f : got.failures)
            if (f.first == id)
                return true;
        return false;
    }
    QString failure(uint64_t id) const {
        for (const auto& f : got.failures)
            if (f.first == id)
                return f.second;
        return {};
    }
    // The click's complete result (the last delivery, partial false); nullptr before it.
    ClickViewPtr result(uint64_t id) const {
        for (const auto& r : got.results)
            if (r->id == id && !r->partial)
                return r;
        return nullptr;
    }
    // Every delivery for the click, in order (partial ones first).
    std::vector<ClickViewPtr> deliveries(uint64_t id) const {
        std::vector<ClickViewPtr> out;
        for (const auto& r : got.results)
            if (r->id == id)
                out.push_back(r);
        return out;
    }
    // Opens the models (default: the three samples) and sample_01 and waits for both.
    bool openSamples(const QStringList& models = samples()) {
        const uint64_t m = openModels(models);
        const uint64_t i = openImage(sampleImage("sample_01.png"));
        return wait([&] {
            return failedWith(m) || failedWith(i) || (!got.images.empty() && got.images.back().first == i);
        }) && !failedWith(m) && !failedWith(i);
    }

    QObject receiver; // lives on this thread: the connections above are queued
    Received got;
    std::unique_ptr<Engine> engine;
};

// JSON equality ignoring timings ("seconds") and how the node was asked for
// ("request": the GUI clicks on the input grid, the CLI names an original pixel):
// numbers exactly, everything else exactly.
bool sameJson(const Json& a, const Json& b, const std::string& where, QString& why) {
    std::string problem;
    const bool same = deformscope::tests::sameJson(a, b, {"seconds", "request"}, problem, where);
    why = QString::fromStdString(problem);
    return same;
}

// The session the engine builds for a sample model on sample_01 (128 × 128), made directly.
deformscope::analysis::AnalysisSession sampleSession(const QString& modelPath) {
    const auto m = deformscope::model::LoadedModel::load(modelPath.toStdString());
    deformscope::imaging::Normalization norm;
    norm.mean = m.metadata().mean;
    norm.std = m.metadata().std;
    const auto img = deformscope::imaging::loadImage(sampleImage("sample_01.png").toStdString(),
                                                     std::array<int64_t, 2>{128, 128}, norm);
    return deformscope::analysis::AnalysisSession(m, img.tensor);
}

const Metric* metric(const ColumnView& c, const char* key) {
    for (const Metric& m : c.metrics)
        if (m.key == QLatin1String(key))
            return &m;
    return nullptr;
}

} // namespace

class TestEngine : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void devicesStartWithCpu() {
        const QStringList d = Engine::devices();
        QVERIFY(!d.isEmpty());
        QCOMPARE(d.front(), QStringLiteral("cpu"));
        for (int i = 1; i < d.size(); ++i)
            QCOMPARE(d[i], QStringLiteral("cuda:%1").arg(i - 1));
    }

    void openingTheSamplesListsTheirLayers() {
        Harness h;
        const uint64_t id = h.openModels(samples());
        QVERIFY(Harness::wait([&] { return !h.got.models.empty() || h.failedWith(id); }));
        QVERIFY2(!h.failedWith(id), qPrintable(h.failure(id)));
        QCOMPARE(h.got.models.front().first, id);
        const std::vector<ModelInfo>& infos = h.got.models.front().second;
        QCOMPARE(infos.size(), size_t{3});
        const char* names[] = {"regular", "dcn_v1", "dcn_v2"};
        for (size_t i = 0; i < 3; ++i) {
            const ModelInfo& info = infos[i];
            QCOMPARE(info.name, QString::fromLatin1(names[i]));
            QCOMPARE(info.suggestedLayer, QStringLiteral("block3"));
            QCOMPARE(info.inputH, 128);
            QCOMPARE(info.inputW, 128);
            QCOMPARE(info.device, QStringLiteral("cpu"));
            // The layer list is the model's graph for that grid, in execution order.
            const auto m = deformscope::model::LoadedModel::load(samples()[int(i)].toStdString());
            const auto graph = deformscope::model::layerGraph(m, {128, 128});
            QCOMPARE(info.layers.size(), graph.layers().size());
            int deformable = 0;
            for (size_t k = 0; k < info.layers.size(); ++k) {
                QCOMPARE(info.layers[k].name.toStdString(), graph.layers()[k].name);
                QCOMPARE(info.layers[k].kind, QString::fromLatin1(deformscope::model::kindName(graph.layers()[k].kind)));
                QCOMPARE(info.layers[k].featureH, int(graph.layers()[k].feature_size[0]));
                QCOMPARE(info.layers[k].jumpX, graph.layers()[k].jump[1]);
                deformable += info.layers[k].kind.startsWith(QLatin1String("dcn")) ? 1 : 0;
            }
            QCOMPARE(deformable, i == 0 ? 0 : 3); // block1-3 are deformable in dcn_v1 / dcn_v2
        }
        QVERIFY(infos[2].layers.size() > 3);
    }

    void aClickGivesEachModelsNodeAndPanels() {
        Harness h;
        QVERIFY(h.openSamples());
        QCOMPARE(h.got.images.back().second.size(), QSize(128, 128));
        QCOMPARE(h.got.imageScale.back(), 1.0);
        const Click rq = h.analyze(58, 46);
        QVERIFY(Harness::wait([&] { return h.result(rq.id) || h.failedWith(rq.id); }));
        QVERIFY2(!h.failedWith(rq.id), qPrintable(h.failure(rq.id)));
        const ClickViewPtr v = h.result(rq.id);
        QCOMPARE(v->columns.size(), size_t{3});
        QCOMPARE(v->image.size(), QSize(128, 128));
        QVERIFY(!v->cancelled);
        for (int i = 0; i < 3; ++i) {
            const ColumnView& c = v->columns[size_t(i)];
            QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
            // The node is the session's nodeAt for the clicked input-grid point.
            const deformscope::analysis::AnalysisSession session = sampleSession(samples()[i]);
            const auto node = session.nodeAt("block3", 58, 46);
            QCOMPARE(c.layer, QStringLiteral("block3"));
            QCOMPARE(c.fy, int(node.fy));
            QCOMPARE(c.fx, int(node.fx));
            const auto centre = session.nodeCentre(node);
            QCOMPARE(c.nodeCentre, QPointF(centre[0], centre[1]));
            // Panels: points, heat map, the background on the input grid.
            QVERIFY(c.hasSampling && c.hasErf && !c.hasSaliency);
            QVERIFY(c.sampling.points.size() >= 9);
            QCOMPARE(c.sampling.background.width, 128);
            QVERIFY(c.erf.heat.has_value());
            QCOMPARE(c.erf.heat->values.size(), size_t(128 * 128));
            QVERIFY(c.erf.objectMask.size() == size_t(128 * 128)); // sample_01_mask.png
            QVERIFY(metric(c, "erf_area90") && metric(c, "erf_area90")->value > 0);
            QVERIFY(metric(c, "erf_area50")->value < metric(c, "erf_area90")->value);
            QVERIFY(metric(c, "sampling_spread")->value > 0);
            QVERIFY(metric(c, "erf_inside")->value >= 0 && metric(c, "erf_inside")->value <= 1);
            QVERIFY(metric(c, "saliency_area")->value < 0); // not asked for
            QVERIFY(c.timing.contains(QLatin1String("ERF")));
            // Offsets of the chosen layer: only the deformable ones, with the capture's values.
            const deformscope::model::Layer& l = session.layer("block3");
            if (i == 0) {
                QVERIFY(c.offsets.empty());
                continue;
            }
            QCOMPARE(c.featureH, int(l.feature_size[0]));
            QCOMPARE(c.taps, 9);
            QCOMPARE(c.offsets.size(), size_t(c.featureH * c.featureW * 9));
            QCOMPARE(c.hasModulation, i == 2);
            // The centre tap (4) of the node's position sits on the node's centre; its offset is the
            // captured one times the layer input's jump.
            const OffsetArrow& a = c.offsets[size_t((c.fy * c.featureW + c.fx) * 9 + 4)];
            QVERIFY(std::abs(a.x - centre[0]) < 1e-4 && std::abs(a.y - centre[1]) < 1e-4);
            const at::Tensor off = session.capture().tensors[size_t(l.index)].offset.detach().to(at::kCPU);
            const double inJump = l.jump[1] / double(l.stride[1]);
            QVERIFY(std::abs(a.dx - off[0][9][c.fy][c.fx].item<double>() * inJump) < 1e-4);
            QVERIFY(std::abs(a.dy - off[0][8][c.fy][c.fx].item<double>() * inJump) < 1e-4);
            if (i == 2) {
                const at::Tensor mask = session.capture().tensors[size_t(l.index)].mask.detach().to(at::kCPU);
                QVERIFY(std::abs(a.modulation - mask[0][4][c.fy][c.fx].item<double>()) < 1e-6);
            }
        }
        // The object region (from the mask) is reported, and DCNv2's node differs from regular's in its metrics.
        QVERIFY(!v->objectBox.isNull());
    }

    void aDkColumnCarriesItsResampledKernel() {
        Harness h;
        QVERIFY(h.openSamples({sampleModel("regular.pt"), sampleModel("dk.pt")}));
        const Click rq = h.analyze(40, 70);
        QVERIFY(Harness::wait([&] { return h.result(rq.id) || h.failedWith(rq.id); }));
        QVERIFY2(!h.failedWith(rq.id), qPrintable(h.failure(rq.id)));
        const ClickViewPtr v = h.result(rq.id);
        QCOMPARE(v->columns.size(), size_t{2});
        const ColumnView& regular = v->columns[0];
        const ColumnView& dk = v->columns[1];
        QVERIFY(!regular.hasKernel);
        QVERIFY(metric(regular, "kernel_shift")->value < 0);
        QVERIFY2(dk.error.isEmpty(), qPrintable(dk.error));
        QCOMPARE(dk.layerKind, QStringLiteral("dk"));
        QVERIFY(dk.hasKernel);
        // The panel is core's kernel view of the same node: 5 × 5 scope map, 9 taps moving from base to read position.
        const deformscope::analysis::AnalysisSession session = sampleSession(sampleModel("dk.pt"));
        const deformscope::analysis::KernelView k = session.kernel(session.nodeAt("block3", 40, 70));
        QVERIFY(dk.kernel.heat.has_value());
        QCOMPARE(dk.kernel.heat->width, 5);
        QCOMPARE(dk.kernel.heat->height, 5);
        QCOMPARE(dk.kernel.points.size(), size_t{9});
        QCOMPARE(dk.kernel.moves.size(), size_t{9});
        for (size_t t = 0; t < 9; ++t) {
            QVERIFY(std::abs(dk.kernel.points[t].x - k.taps[t].x) < 1e-6 && std::abs(dk.kernel.points[t].y - k.taps[t].y) < 1e-6);
            QVERIFY(std::abs(dk.kernel.points[t].weight - k.taps[t].weight) < 1e-6);
            QCOMPARE(dk.kernel.moves[t][0], k.taps[t].baseX);
            QCOMPARE(dk.kernel.moves[t][1], k.taps[t].baseY);
        }
        QVERIFY(std::abs(metric(dk, "kernel_shift")->value - k.meanShift) < 1e-9);
        QVERIFY(!dk.kernel.caption.empty() && dk.kernel.caption[0].find("block3") == 0);
    }

    void rapidClicksDeliverOnlyTheLast() {
        Harness h;
        QVERIFY(h.openSamples());
        std::vector<Click> clicks;
        for (int i = 0; i < 5; ++i)
            clicks.push_back(h.analyze(20 + 15 * i, 40));
        const uint64_t last = clicks.back().id;
        QVERIFY(Harness::wait([&] { return h.result(last) || h.failedWith(last); }));
        QVERIFY2(!h.failedWith(last), qPrintable(h.failure(last)));
        QTest::qWait(300); // nothing else arrives
        QCOMPARE(h.got.results.size(), size_t{1});
        QCOMPARE(h.got.results.front()->id, last);
        QCOMPARE(h.got.results.front()->click, QPointF(80, 40));
    }

    void aNewClickStopsARunningSaliencySearch() {
        Harness h;
        QVERIFY(h.openSamples());
        const Click slow = h.analyze(58, 46, true, 20000);
        QVERIFY(Harness::wait([&] { return !h.got.progress.empty() || h.failedWith(slow.id); }));
        QElapsedTimer t;
        t.start();
        const Click fast = h.analyze(30, 30);
        QVERIFY(Harness::wait([&] { return h.result(fast.id) || h.failedWith(fast.id); }, 30000));
        QVERIFY2(t.elapsed() < 20000, qPrintable(QString::number(t.elapsed())));
        QTest::qWait(300);
        // The superseded search delivered its sampling and ERF (partial) and nothing more.
        QVERIFY(!h.result(slow.id));
        for (const ClickViewPtr& r : h.deliveries(slow.id))
            QVERIFY(r->partial);
        QCOMPARE(h.deliveries(fast.id).size(), size_t{1});
        QCOMPARE(h.got.results.back()->id, fast.id);
        QVERIFY(!h.failedWith(slow.id));
    }

    // Sampling points and ERF arrive first, for every model, while the saliency searches
    // run; then each column as its search ends; the last delivery is complete.
    void samplingAndErfArriveBeforeTheSaliencySearches() {
        Harness h;
        QVERIFY(h.openSamples());
        QElapsedTimer t;
        t.start();
        const Click rq = h.analyze(58, 46, true, 400);
        qint64 firstAt = -1;
        QVERIFY(Harness::wait([&] {
            if (firstAt < 0 && !h.deliveries(rq.id).empty())
                firstAt = t.elapsed();
            return h.result(rq.id) || h.failedWith(rq.id);
        }));
        QVERIFY2(!h.failedWith(rq.id), qPrintable(h.failure(rq.id)));
        const qint64 lastAt = t.elapsed();
        const std::vector<ClickViewPtr> all = h.deliveries(rq.id);
        QVERIFY2(all.size() >= 2, qPrintable(QString::number(all.size())));
        const ClickViewPtr first = all.front();
        QVERIFY(first->partial);
        QCOMPARE(first->columns.size(), size_t{3});
        for (const ColumnView& c : first->columns) {
            QVERIFY(c.hasSampling && c.hasErf);
            QVERIFY(c.saliencyPending && !c.hasSaliency);
            QCOMPARE(metric(c, "saliency_area")->text, QStringLiteral("computing…"));
        }
        // Columns fill in order: in each later partial delivery, a prefix has its region.
        for (size_t k = 1; k + 1 < all.size(); ++k) {
            QVERIFY(all[k]->partial);
            QVERIFY(all[k]->columns[k - 1].hasSaliency);
        }
        const ClickViewPtr last = all.back();
        QVERIFY(!last->partial && !last->cancelled);
        for (const ColumnView& c : last->columns) {
            QVERIFY(c.hasSampling && c.hasErf && c.hasSaliency && !c.saliencyPending);
            QCOMPARE(c.saliency.mask.size(), size_t(128 * 128));
            QVERIFY(metric(c, "saliency_area")->value > 0);
        }
        QVERIFY(firstAt < lastAt);
        qInfo("sampling + ERF of 3 models after %lld ms; saliency regions complete after %lld ms", firstAt, lastAt);
    }

    void cancelStopsASaliencySearch() {
        Harness h;
        QVERIFY(h.openSamples());
        const int budget = 20000;
        const Click rq = h.analyze(58, 46, true, budget);
        QVERIFY(Harness::wait([&] { return !h.got.progress.empty() || h.failedWith(rq.id); }));
        QElapsedTimer t;
        t.start();
        h.engine->cancel();
        QVERIFY(Harness::wait([&] { return h.result(rq.id) || h.failedWith(rq.id); }, 30000));
        QVERIFY2(!h.failedWith(rq.id), qPrintable(h.failure(rq.id)));
        QVERIFY2(t.elapsed() < 10000, qPrintable(QString::number(t.elapsed())));
        const ClickViewPtr v = h.result(rq.id);
        QVERIFY(v->cancelled);
        QCOMPARE(v->columns.size(), size_t{3});
        // The cancelled search shows "cancelled" and what it cost, not its best region so far
        // (at first the whole image, "100 %, error 0.000"); the other analyses are all there.
        const ColumnView& c = v->columns.front();
        QVERIFY(c.saliencyCancelled && !c.hasSaliency && !c.saliencyPending);
        QVERIFY(c.hasSampling && c.hasErf);
        const double forwards = metric(c, "saliency_forwards")->value;
        QVERIFY2(forwards >= 0 && forwards < 200, qPrintable(QString::number(forwards)));
        QCOMPARE(metric(c, "saliency_area")->text, QStringLiteral("n/a"));
        QCOMPARE(metric(c, "saliency_error")->text, QStringLiteral("n/a"));
        QVERIFY(c.notes.join(' ').contains(QLatin1String("saliency search cancelled after")));
        // The models after it were never searched: cancelled too.
        for (const ColumnView& other : v->columns)
            QVERIFY(other.saliencyCancelled || other.hasSaliency);
        // The next request runs normally again.
        const Click next = h.analyze(58, 46, true, 20);
        QVERIFY(Harness::wait([&] { return h.result(next.id) || h.failedWith(next.id); }));
        QVERIFY(h.result(next.id) && !h.result(next.id)->cancelled);
    }

    void exportIsTheClisCompare() {
        Harness h;
        QVERIFY(h.openSamples());
        const Click rq = h.analyze(58, 46, true, 60);
        QVERIFY(Harness::wait([&] { return h.result(rq.id) || h.failedWith(rq.id); }));
        QVERIFY2(!h.failedWith(rq.id), qPrintable(h.failure(rq.id)));
        QTemporaryDir tmp;
        const QString gui = tmp.filePath("gui"), cli = tmp.filePath("cli");
        const uint64_t ex = h.exportTo(gui);
        QVERIFY(Harness::wait([&] { return !h.got.exports.empty() || h.failedWith(ex); }));
        QVERIFY2(!h.failedWith(ex), qPrintable(h.failure(ex)));
        QCOMPARE(h.got.exports.front().first, ex);
        const QStringList files = h.got.exports.front().second;
        for (const char* f : {"compare.png", "compare.svg", "compare.pdf", "compare.json", "dcn_v2/result.json",
                              "dcn_v2/erf.npy", "dcn_v2/saliency_mask.npy", "regular/sampling.csv"}) {
            const QString path = QDir::cleanPath(gui + "/" + f);
            QVERIFY2(files.contains(path), f);
            QVERIFY2(QFileInfo(path).size() > 0, f);
        }

        // The CLI on the same node: the engine's click (58, 46) on the 128 x 128 grid is
        // original pixel (58, 46) of the 128 x 128 sample.
        QProcess p;
        p.start(QStringLiteral(DEFORMSCOPE_CLI),
                QStringList{"compare", "--models"} + samples() +
                    QStringList{"--image", sampleImage("sample_01.png"), "--pixel", "58,46", "--forwards", "60", "--out", cli});
        QVERIFY(p.waitForFinished(300000));
        QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());

        QString why;
        for (const char* name : {"regular", "dcn_v1", "dcn_v2"}) {
            const QString a = gui + "/" + name, b = cli + "/" + name;
            const Json ja = Json::parse(readAll(a + "/result.json")), jb = Json::parse(readAll(b + "/result.json"));
            QVERIFY2(sameJson(ja, jb, name, why), qPrintable(why));
            QVERIFY(ja.at("saliency").at("forwards").get<int64_t>() > 0);
            QCOMPARE(readAll(a + "/sampling.csv"), readAll(b + "/sampling.csv"));
            for (const char* npy : {"/erf.npy", "/saliency_mask.npy"}) {
                const at::Tensor x = deformscope::common::readNpy((a + npy).toStdString());
                const at::Tensor y = deformscope::common::readNpy((b + npy).toStdString());
                QVERIFY(x.equal(y));
            }
        }
        QVERIFY2(sameJson(Json::parse(readAll(gui + "/compare.json")), Json::parse(readAll(cli + "/compare.json")),
                          "compare.json", why),
                 qPrintable(why));
        const QImage pa(gui + "/compare.png"), pb(cli + "/compare.png");
        QVERIFY(!pa.isNull());
        QCOMPARE(pa.size(), pb.size());
        QVERIFY(pa.convertToFormat(QImage::Format_ARGB32) == pb.convertToFormat(QImage::Format_ARGB32));
        QVERIFY(readAll(gui + "/compare.svg").find("<svg") != std::string::npos);
        QVERIFY(readAll(gui + "/compare.pdf").rfind("%PDF-", 0) == 0);
    }

    void aBadModelFileFailsAndKeepsTheOpenModels() {
        Harness h;
        QVERIFY(h.openSamples());
        QTemporaryDir tmp;
        const QString bad = tmp.filePath("broken.pt");
        {
            QFile f(bad);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("this is a text file, not a TorchScript model\n");
        }
        const uint64_t id = h.openModels({sampleModel("regular.pt"), bad});
        QVERIFY(Harness::wait([&] { return h.failedWith(id); }));
        QVERIFY2(h.failure(id).contains(bad), qPrintable(h.failure(id)));
        QCOMPARE(h.got.models.size(), size_t{1}); // only the first, successful open
        const Click rq = h.analyze(58, 46);
        QVERIFY(Harness::wait([&] { return h.result(rq.id) || h.failedWith(rq.id); }));
        QVERIFY2(h.result(rq.id), qPrintable(h.failure(rq.id)));
        QCOMPARE(h.result(rq.id)->columns.size(), size_t{3});
    }

    void aModelWithNanOutputIsReported() {
        // A convolution whose weights are NaN: every output is NaN.
        QTemporaryDir tmp;
        const QString path = tmp.filePath("nan_net.pt");
        {
            auto cu = std::make_shared<torch::jit::CompilationUnit>();
            torch::jit::Module net(c10::QualifiedName("__torch__.NanNet"), cu, true);
            net.register_attribute("training", c10::BoolType::get(), false);
            net.register_parameter("w", at::full({4, 3, 3, 3}, std::nan("")), false);
            net.define("def forward(self, x):\n    return torch.conv2d(x, self.w, None, [1, 1], [1, 1], [1, 1], 1)\n");
            net.save(path.toStdString());
        }
        Harness h;
        QVERIFY(h.openSamples());
        const uint64_t id = h.openModels({sampleModel("regular.pt"), path});
        QVERIFY(Harness::wait([&] { return h.failedWith(id) || h.got.models.size() > 1; }));
        QVERIFY2(h.failure(id).contains(path) && h.failure(id).contains(QLatin1String("NaN")), qPrintable(h.failure(id)));
        const Click rq = h.analyze(10, 10);
        QVERIFY(Harness::wait([&] { return h.result(rq.id) || h.failedWith(rq.id); }));
        QVERIFY(h.result(rq.id) && h.result(rq.id)->columns.size() == 3);
    }

    void aMissingImageFailsWithItsPath() {
        Harness h;
        QVERIFY(h.openSamples());
        const QString missing = QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples/no_such_image.png";
        const uint64_t id = h.openImage(missing);
        QVERIFY(Harness::wait([&] { return h.failedWith(id); }));
        QVERIFY2(h.failure(id).contains(missing) && h.failure(id).contains(QLatin1String("does not exist")),
                 qPrintable(h.failure(id)));
        // The previous image stays open.
        const Click rq = h.analyze(58, 46);
        QVERIFY(Harness::wait([&] { return h.result(rq.id) || h.failedWith(rq.id); }));
        QVERIFY2(h.result(rq.id), qPrintable(h.failure(rq.id)));
    }

    void erfAverageWritesTheClisLayout() {
        Harness h;
        const uint64_t m = h.openModels({sampleModel("regular.pt")});
        QVERIFY(Harness::wait([&] { return !h.got.models.empty() || h.failedWith(m); }));
        QTemporaryDir tmp;
        ErfAverageRequest rq;
        rq.model = sampleModel("regular.pt");
        rq.folder = QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples";
        rq.limit = 3;
        rq.outDirectory = tmp.filePath("avg");
        const uint64_t id = h.engine->averageErf(rq);
        QVERIFY(Harness::wait([&] { return !h.got.averages.empty() || h.failedWith(id); }));
        QVERIFY2(!h.failedWith(id), qPrintable(h.failure(id)));
        QCOMPARE(std::get<2>(h.got.averages.front()), 3);
        QVERIFY(!std::get<3>(h.got.averages.front()));
        QVERIFY(QFileInfo(std::get<1>(h.got.averages.front())).size() > 1000);
        const Json doc = Json::parse(readAll(rq.outDirectory + "/result.json"));
        QCOMPARE(doc.at("node").at("layer").get<std::string>(), std::string("block3"));
        QCOMPARE(doc.at("node").at("fx").get<int64_t>(), int64_t{8});
        const at::Tensor map = deformscope::common::readNpy((rq.outDirectory + "/erf_average.npy").toStdString());
        QCOMPARE(map.sizes().vec(), (std::vector<int64_t>{128, 128}));
        QVERIFY(!h.got.progress.empty());
    }

    // The GUI's study is the CLI's: the same study.csv for the same folder and models.
    void studyWritesTheClisLayout() {
        Harness h;
        const uint64_t m = h.openModels({sampleModel("regular.pt"), sampleModel("dcn_v2.pt")});
        QVERIFY(Harness::wait([&] { return !h.got.models.empty() || h.failedWith(m); }));
        QTemporaryDir tmp;
        StudyRequest rq;
        rq.folder = QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples";
        rq.limit = 3;
        rq.outDirectory = tmp.filePath("study");
        const uint64_t id = h.engine->study(rq);
        QVERIFY(Harness::wait([&] { return !h.got.studies.empty() || h.failedWith(id); }));
        QVERIFY2(!h.failedWith(id), qPrintable(h.failure(id)));
        const auto [sid, figure, objects, images, cancelled] = h.got.studies.front();
        QCOMPARE(sid, id);
        QCOMPARE(images, 3);
        QVERIFY(objects >= 3 && !cancelled);
        QVERIFY(QFileInfo(figure).size() > 1000);
        const Json doc = Json::parse(readAll(rq.outDirectory + "/result.json"));
        QCOMPARE(doc.at("format").get<std::string>(), std::string("deformscope-study/1"));
        QCOMPARE(doc.at("rows").size(), size_t(2 * objects));
        QCOMPARE(doc.at("table").size(), size_t{2});
        QVERIFY(!h.got.progress.empty());

        QProcess p;
        p.start(QStringLiteral(DEFORMSCOPE_CLI),
                {QStringLiteral("study"), QStringLiteral("--models"), sampleModel("regular.pt"), sampleModel("dcn_v2.pt"),
                 QStringLiteral("--images"), rq.folder, QStringLiteral("--limit"), QStringLiteral("3"),
                 QStringLiteral("--what"), QStringLiteral("sampling,erf"), QStringLiteral("--no-figures"),
                 QStringLiteral("--out"), tmp.filePath("cli")});
        QVERIFY(p.waitForFinished(300000));
        QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
        QCOMPARE(readAll(tmp.filePath("cli/study.csv")), readAll(rq.outDirectory + "/study.csv"));
    }

    // The GUI's sweep (at the last click) and ERF-size map are the CLI's `sweep` and `scale-map`.
    void sweepAndScaleMapAreTheClis() {
        Harness h;
        const uint64_t m = h.openModels({sampleModel("regular.pt"), sampleModel("dcn_v2.pt")});
        QVERIFY(Harness::wait([&] { return !h.got.models.empty() || h.failedWith(m); }));
        const uint64_t i = h.openImage(sampleImage("sample_01.png"));
        QVERIFY(Harness::wait([&] { return !h.got.images.empty() || h.failedWith(i); }));
        const Click c = h.analyze(58, 46);
        QVERIFY(Harness::wait([&] { return h.result(c.id) || h.failedWith(c.id); }));
        QTemporaryDir tmp;
        SweepRequest sw;
        sw.sizes = {64, 128};
        sw.outDirectory = tmp.filePath("sweep");
        const uint64_t s = h.engine->sweep(sw);
        QVERIFY(Harness::wait([&] { return !h.got.figures.empty() || h.failedWith(s); }));
        QVERIFY2(!h.failedWith(s), qPrintable(h.failure(s)));
        QCOMPARE(std::get<0>(h.got.figures.front()), s);
        QVERIFY(QFileInfo(std::get<2>(h.got.figures.front())).size() > 1000);
        QVERIFY(!std::get<3>(h.got.figures.front()));

        ScaleMapRequest sm;
        sm.model = sampleModel("dcn_v2.pt");
        sm.grid = 4;
        sm.outDirectory = tmp.filePath("map");
        const uint64_t id = h.engine->scaleMap(sm);
        QVERIFY(Harness::wait([&] { return h.got.figures.size() == 2 || h.failedWith(id); }));
        QVERIFY2(!h.failedWith(id), qPrintable(h.failure(id)));
        QVERIFY(QFileInfo(std::get<2>(h.got.figures.back())).size() > 1000);
        const at::Tensor map = deformscope::common::readNpy((sm.outDirectory + "/scale_map.npy").toStdString());
        QCOMPARE(map.sizes().vec(), (std::vector<int64_t>{2, 4, 4}));

        for (const auto& [command, extra] :
             {std::pair<QString, QStringList>{"sweep", {"--models", sampleModel("regular.pt"), sampleModel("dcn_v2.pt"),
                                                        "--pixel", "58,46", "--sizes", "64,128"}},
              {"scale-map", {"--model", sampleModel("dcn_v2.pt"), "--grid", "4"}}}) {
            QProcess p;
            p.start(QStringLiteral(DEFORMSCOPE_CLI), QStringList{command} + extra +
                                                         QStringList{"--image", sampleImage("sample_01.png"),
                                                                     "--no-figures", "--out", tmp.filePath("cli_" + command)});
            QVERIFY(p.waitForFinished(300000));
            QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
        }
        QCOMPARE(readAll(tmp.filePath("cli_sweep/sweep.csv")), readAll(sw.outDirectory + "/sweep.csv"));
        QVERIFY(at::equal(deformscope::common::readNpy(tmp.filePath("cli_scale-map/scale_map.npy").toStdString()), map));
    }

    // A RoI box (GUI: Analysis > Draw RoI Box) is the RoI heads' input: with no point the node is
    // the whole RoI (every bin's reads, the box outlined), as the CLI's `analyze --roi`; a click in
    // the box picks the bin under it; another box is a new forward.
    void roiBoxIsTheHeadsInput() {
        Harness h;
        const uint64_t m = h.openModels({sampleModel("roi_regular.pt"), sampleModel("roi_dcn_v2.pt")});
        QVERIFY(Harness::wait([&] { return !h.got.models.empty() || h.failedWith(m); }));
        QVERIFY2(!h.failedWith(m), qPrintable(h.failure(m)));
        const uint64_t i = h.openImage(sampleImage("sample_02.png"));
        QVERIFY(Harness::wait([&] { return !h.got.images.empty() || h.failedWith(i); }));
        deformscope::common::AnalysisRequest r;
        r.what.saliency = false;
        r.levels = 2;
        r.through = deformscope::common::TraceThrough::Deformable;
        r.roi = deformscope::common::Box{deformscope::common::Grid::Input, 2, 32, 64, 92};
        const uint64_t whole = h.engine->analyze(r);
        QVERIFY(Harness::wait([&] { return h.result(whole) || h.failedWith(whole); }));
        QVERIFY2(!h.failedWith(whole), qPrintable(h.failure(whole)));
        const ClickViewPtr v = h.result(whole);
        QCOMPARE(int(v->columns.size()), 2);
        for (const ColumnView& c : v->columns) {
            QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
            QCOMPARE(c.response, QStringLiteral("sum")); // the whole RoI: its pooled features
            QCOMPARE(c.layer, QStringLiteral("pool"));
            QVERIFY(!c.sampling.labels.empty()); // the RoI outlined
            QVERIFY(!c.sampling.node);           // no one node position
        }
        QCOMPARE(v->columns[0].layerKind, QStringLiteral("roi_pool"));
        QCOMPARE(v->columns[1].layerKind, QStringLiteral("deform_roi_pool"));
        // The regular head's 49 bins x 4 reads, all in the box (no offsets). The trunk centres
        // feature i at 8·i (its receptive field's centre), RoIAlign's convention at 8·i + 3.5: the
        // reads lie 3.5 px up and left of where the box's arithmetic puts them.
        QCOMPARE(int(v->columns[0].sampling.points.size()), 49 * 4);
        for (const auto& p : v->columns[0].sampling.points)
            QVERIFY(p.x > 2 - 4 && p.x < 64 - 3 && p.y > 32 - 4 && p.y < 92 - 3);
        // The same as the CLI's analyze --roi (on the input grid = the original here: 128 x 128).
        QTemporaryDir tmp;
        QProcess p;
        p.start(QStringLiteral(DEFORMSCOPE_CLI),
                {"analyze", "--model", sampleModel("roi_dcn_v2.pt"), "--image", sampleImage("sample_02.png"), "--roi",
                 "2,32,64,92", "--what", "sampling", "--levels", "2", "--through", "deformable", "--no-figures", "--out",
                 tmp.filePath("cli")});
        QVERIFY(p.waitForFinished(300000));
        QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
        const Json cli = Json::parse(readAll(tmp.filePath("cli/result.json")));
        QCOMPARE(QString::fromStdString(cli["node"]["response"].get<std::string>()), v->columns[1].response);
        QCOMPARE(cli["sampling"]["points"].get<int>(), int(v->columns[1].sampling.points.size()));

        // A click in the box: the bin under it.
        r.at = deformscope::common::Location{deformscope::common::Grid::Input, 6, 34};
        const uint64_t bin = h.engine->analyze(r);
        QVERIFY(Harness::wait([&] { return h.result(bin) || h.failedWith(bin); }));
        for (const ColumnView& c : h.result(bin)->columns) {
            QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
            QCOMPARE(c.response, QStringLiteral("sum"));
            QCOMPARE(c.fy, 0);
            QCOMPARE(c.fx, 0);
        }
        QCOMPARE(int(h.result(bin)->columns[0].sampling.points.size()), 4);
        // Another box: a new forward, the bins where the new box is.
        r.at.reset();
        r.roi = deformscope::common::Box{deformscope::common::Grid::Input, 66, 63, 126, 123};
        const uint64_t moved = h.engine->analyze(r);
        QVERIFY(Harness::wait([&] { return h.result(moved) || h.failedWith(moved); }));
        for (const auto& pt : h.result(moved)->columns[0].sampling.points)
            QVERIFY(pt.x > 66 - 4 && pt.x < 126 - 3 && pt.y > 63 - 4 && pt.y < 123 - 3);
    }

    // Cancel stops a study (here one with saliency searches) and keeps what was done.
    void studyCancels() {
        Harness h;
        const uint64_t m = h.openModels({sampleModel("dcn_v2.pt")});
        QVERIFY(Harness::wait([&] { return !h.got.models.empty() || h.failedWith(m); }));
        QTemporaryDir tmp;
        StudyRequest rq;
        rq.folder = QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples";
        rq.saliency = true;
        rq.outDirectory = tmp.filePath("study");
        const uint64_t id = h.engine->study(rq);
        QVERIFY(Harness::wait([&] { return !h.got.progress.empty() || h.failedWith(id); }));
        h.engine->cancel();
        QElapsedTimer t;
        t.start();
        QVERIFY(Harness::wait([&] { return !h.got.studies.empty() || h.failedWith(id); }, 60000));
        QVERIFY2(!h.failedWith(id), qPrintable(h.failure(id)));
        QVERIFY(std::get<4>(h.got.studies.front()));      // cancelled
        QVERIFY(std::get<3>(h.got.studies.front()) < 8); // not every one of the 8 images
        QVERIFY2(t.elapsed() < 30000, qPrintable(QString("cancel took %1 ms").arg(t.elapsed())));
        const Json doc = Json::parse(readAll(rq.outDirectory + "/result.json"));
        QVERIFY(doc.at("cancelled").get<bool>());
    }
};

QTEST_MAIN(TestEngine)
#include "tst_engine.moc"
