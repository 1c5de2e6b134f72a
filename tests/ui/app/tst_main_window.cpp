// The desktop app's main window on the offscreen platform: the samples fill the
// layer list, a click gives the right node with its overlays drawn, rapid clicks
// deliver only the last result, Cancel stops a saliency search, export writes
// what the CLI writes and the views as the canvases show them (offset field and
// modulation map included), a bad model leaves the window usable, sessions round-trip.
#include "ui/app/input_settings_dialog.h"
#include "ui/app/main_window.h"
#include "ui/canvas/canvas.h"
#include "ui/canvas/comparison_view.h"
#include "ui/canvas/kernel_inset.h"
#include "ui/canvas/view_panel.h"
#include "tests/ui/pixels.h"

#include <QApplication>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QMessageBox>
#include <QPushButton>
#include <QDockWidget>
#include <QMenuBar>
#include <QTextBrowser>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QImage>
#include <QLabel>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QTableWidget>
#include <QTreeWidget>

#include <cmath>
#include <memory>

using namespace deformscope::ui;
namespace figure = deformscope::figure;
using deformscope::test::differingPixels;

namespace {

const QString kSource = QStringLiteral(DEFORMSCOPE_SOURCE_DIR);
QStringList sampleModels() {
    return {kSource + QStringLiteral("/sample_models/regular.pt"), kSource + QStringLiteral("/sample_models/dcn_v1.pt"),
            kSource + QStringLiteral("/sample_models/dcn_v2.pt")};
}
QString sampleImage() { return kSource + QStringLiteral("/resources/samples/sample_01.png"); }

// Waits for `spy` to hold at least `count` signals.
bool waitFor(QSignalSpy& spy, int count = 1, int ms = 120000) {
    QElapsedTimer t;
    t.start();
    while (spy.count() < count && t.elapsed() < ms)
        spy.wait(200);
    return spy.count() >= count;
}

// A JSON value without its timings ("seconds" keys), which differ from run to run.
QJsonValue withoutTimings(const QJsonValue& v) {
    if (v.isObject()) {
        QJsonObject o;
        const QJsonObject in = v.toObject();
        for (auto it = in.begin(); it != in.end(); ++it)
            if (it.key() != QLatin1String("seconds"))
                o.insert(it.key(), withoutTimings(it.value()));
        return o;
    }
    if (v.isArray()) {
        QJsonArray a;
        for (const QJsonValue& x : v.toArray())
            a.append(withoutTimings(x));
        return a;
    }
    return v;
}

// Reads a JSON file's object.
QJsonObject readJson(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return QJsonDocument::fromJson(f.readAll()).object();
}

} // namespace

class TestMainWindow : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    std::unique_ptr<AppSettings> m_settings;

    // A window with the three samples (or `models`) and sample_01 loaded; saliency off unless asked.
    std::unique_ptr<MainWindow> loadedWindow(bool saliency = false, const QStringList& models = sampleModels()) {
        auto w = std::make_unique<MainWindow>(m_settings.get());
        deformscope::common::AnalysisRequest a = w->analysisSettings();
        a.what.saliency = saliency;
        a.forwards = 60;
        w->setAnalysisSettings(a);
        w->resize(1400, 800);
        w->show();
        QSignalSpy image(w.get(), &MainWindow::imageShown);
        w->start(models, sampleImage(), std::nullopt);
        if (!waitFor(image))
            return nullptr;
        return w;
    }

private Q_SLOTS:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        m_settings = std::make_unique<AppSettings>(m_dir.filePath(QStringLiteral("settings.ini")));
    }

    void loadingTheSamplesFillsTheLayerList() {
        auto w = loadedWindow();
        QVERIFY(w);
        QCOMPARE(int(w->models().size()), 3);
        QTreeWidget* list = w->layerList();
        QCOMPARE(list->topLevelItemCount(), int(w->models()[0].layers.size()));
        QVERIFY(list->topLevelItemCount() >= 5);
        // The suggested layer is selected; the DCNv2 model's list shows DCNv2 badges.
        QCOMPARE(w->currentLayer(), w->models()[0].suggestedLayer);
        QVERIFY(list->currentItem());
        QCOMPARE(list->currentItem()->text(0), w->currentLayer());
        auto* modelBox = w->findChild<QComboBox*>(QStringLiteral("modelBox"));
        QVERIFY(modelBox);
        modelBox->setCurrentIndex(2);
        bool dcnBadge = false;
        for (int i = 0; i < list->topLevelItemCount(); ++i)
            dcnBadge = dcnBadge || list->topLevelItem(i)->text(1).trimmed() == QLatin1String("DCNv2");
        QVERIFY(dcnBadge);
    }

    void samplerModelsShowTheirKindsAndTraceThroughThem() {
        // Models written with grid_sample cores and a hand-written sampler
        // (tests/python/make_samplers.py), side by side.
        const QString dir = QStringLiteral(DEFORMSCOPE_SAMPLER_FIXTURE_DIR);
        auto w = loadedWindow(false, {dir + QStringLiteral("/dcn_v3.pt"), dir + QStringLiteral("/deform_attn.pt"),
                                      dir + QStringLiteral("/unrecognised.pt")});
        QVERIFY(w);
        QCOMPARE(int(w->models().size()), 3);
        // Each model's list marks its sampler with a badge and says in the tooltip what it reads, or why not.
        auto* modelBox = w->findChild<QComboBox*>(QStringLiteral("modelBox"));
        QVERIFY(modelBox);
        const char* badges[] = {"DCNv3", "DefAttn", "?Sampler"};
        const char* tips[] = {"each query reads", "level 1 of 2", "not understood"};
        for (int m = 0; m < 3; ++m) {
            modelBox->setCurrentIndex(m);
            QTreeWidget* list = w->layerList();
            bool found = false;
            for (int i = 0; i < list->topLevelItemCount(); ++i) {
                QTreeWidgetItem* item = list->topLevelItem(i);
                if (item->text(1).trimmed() == QLatin1String(badges[m]) && item->toolTip(0).contains(QLatin1String(tips[m])))
                    found = true;
            }
            QVERIFY2(found, badges[m]);
        }
        // A click on the layer reading the samplers traces through them in every column.
        modelBox->setCurrentIndex(0);
        w->setLayer(QStringLiteral("head"));
        QTest::qWait(50);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(16, 16));
        QVERIFY(waitFor(result));
        ClickViewPtr r = w->result();
        for (int tries = 0; tries < 20 && r && r->columns.size() == 3 && r->columns[0].fx != 16; ++tries) {
            QVERIFY(waitFor(result, result.count() + 1));
            r = w->result();
        }
        QVERIFY(r);
        QCOMPARE(int(r->columns.size()), 3);
        for (const ColumnView& c : r->columns) {
            QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
            QVERIFY(c.hasSampling && !c.sampling.points.empty());
        }
        // The DCNv3 column's offset field is its sampler's reads; the unrecognised one says how it was traced.
        QVERIFY(!r->columns[0].offsets.empty());
        QVERIFY(r->columns[2].notes.join(QLatin1Char(' ')).contains(QLatin1String("gradient footprint")));
    }

    void aClickGivesTheNodeUnderItWithItsOverlays() {
        auto w = loadedWindow();
        QVERIFY(w);
        w->setComparison(false);
        Canvas* canvas = w->canvas();
        QTest::qWait(50);
        const QImage before = canvas->grab().toImage();
        const QPointF p(40.2, 71.7); // input grid
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        QTest::mouseClick(canvas, Qt::LeftButton, Qt::NoModifier, canvas->imageToWidget(p).toPoint());
        QVERIFY(waitFor(result));
        const ClickViewPtr r = w->result();
        QVERIFY(r);
        QCOMPARE(int(r->columns.size()), 3);
        // The node is the layer's feature position whose centre is nearest the click.
        const LayerInfo* layer = nullptr;
        for (const LayerInfo& l : w->models()[0].layers)
            if (l.name == w->currentLayer())
                layer = &l;
        QVERIFY(layer);
        const QPointF clicked = canvas->widgetToImage(canvas->imageToWidget(p).toPoint());
        // The single view analyses its model (the first) alone.
        QVERIFY(r->columns[1].skipped && r->columns[2].skipped);
        for (const ColumnView& c : r->columns) {
            if (c.skipped)
                continue;
            QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
            QCOMPARE(c.fx, int(std::lround((clicked.x() - layer->startX) / layer->jumpX)));
            QCOMPARE(c.fy, int(std::lround((clicked.y() - layer->startY) / layer->jumpY)));
            QVERIFY(c.hasSampling && !c.sampling.points.empty());
            QVERIFY(c.hasErf && c.erf.heat.has_value());
        }
        // The overlays are drawn: the canvas changed where the node's points are.
        QTest::qWait(50);
        const QImage after = canvas->grab().toImage();
        QCOMPARE(after.size(), before.size());
        const ColumnView& c0 = r->columns[0];
        int changed = 0;
        for (const auto& pt : c0.sampling.points) {
            const QPoint q = canvas->imageToWidget(QPointF(pt.x, pt.y)).toPoint();
            if (after.rect().contains(q) && after.pixel(q) != before.pixel(q))
                ++changed;
        }
        QVERIFY2(changed > int(c0.sampling.points.size()) / 2, qPrintable(QString::number(changed)));
        // Switching the sampling and ERF overlays off brings the plain image back at those points.
        CanvasOverlays o = w->overlays();
        o.sampling = false;
        o.erf = false;
        o.saliencyOutline = false;
        o.saliencyMasked = false;
        w->setOverlays(o);
        QTest::qWait(50);
        const QImage off = canvas->grab().toImage();
        int restored = 0;
        for (const auto& pt : c0.sampling.points) {
            const QPoint q = canvas->imageToWidget(QPointF(pt.x, pt.y)).toPoint();
            if (off.rect().contains(q) && off.pixel(q) != after.pixel(q))
                ++restored;
        }
        QVERIFY(restored > changed / 2);
    }

    // With the saliency search on, a click's sampling points and ERF are shown first and
    // the regions after; what is shown meanwhile for an older click is marked stale.
    void resultsArriveProgressivelyAndOlderOnesAreMarkedStale() {
        auto w = loadedWindow(true);
        QVERIFY(w);
        w->setComparison(false);
        Canvas* canvas = w->canvas();
        QSignalSpy partial(w.get(), &MainWindow::partialResultShown);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(58, 46));
        QVERIFY(waitFor(partial));
        const ClickViewPtr first = partial.at(0).at(0).value<ClickViewPtr>();
        QVERIFY(first->partial && result.isEmpty());
        QVERIFY(first->columns[0].hasSampling && first->columns[0].hasErf && first->columns[0].saliencyPending);
        QVERIFY(w->busy()); // the searches go on, with their progress
        QCOMPARE(w->result(), first);
        QVERIFY(!canvas->isStale());
        QVERIFY(waitFor(result));
        QVERIFY(!w->result()->partial && w->result()->columns[0].hasSaliency && !w->busy());
        // A new click: the shown results are the previous click's until its own arrive.
        const ClickViewPtr before = w->result();
        partial.clear();
        result.clear();
        w->selectPoint(QPointF(30, 30));
        QVERIFY(canvas->isStale() && w->comparisonView()->canvas(0)->isStale());
        QCOMPARE(w->result(), before);
        QVERIFY(waitFor(partial));
        QVERIFY(!canvas->isStale());
        QVERIFY(waitFor(result));
    }

    // A held arrow key (auto-repeat) moves the node at once, one feature per press; the
    // engine drops the steps it had no time for, so the results catch up with the last.
    void aHeldArrowKeyCoalescesToTheLatestNode() {
        auto w = loadedWindow();
        QVERIFY(w);
        w->setComparison(false);
        Canvas* canvas = w->canvas();
        const LayerInfo* layer = nullptr;
        for (const LayerInfo& l : w->models()[0].layers)
            if (l.name == w->currentLayer())
                layer = &l;
        QVERIFY(layer && layer->featureW >= 12);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(layer->startX, layer->startY + 4 * layer->jumpY)); // feature (fx 0, fy 4)
        QVERIFY(waitFor(result));
        result.clear();
        canvas->setFocus();
        const int presses = 10;
        for (int i = 0; i < presses; ++i)
            QTest::keyPress(canvas, Qt::Key_Right, Qt::NoModifier);
        QCOMPARE(*w->requestedNode(), QPointF(layer->startX + presses * layer->jumpX, layer->startY + 4 * layer->jumpY));
        QVERIFY(QTest::qWaitFor([&] { return w->result() && w->result()->columns[0].fx == presses; }, 60000));
        QTest::qWait(500);
        QVERIFY2(result.size() < presses / 2, qPrintable(QString::number(result.size())));
        QCOMPARE(w->result()->columns[0].fy, 4);
        QVERIFY(!canvas->isStale());
        // Node positions are written (x, y), named, in every label.
        QVERIFY2(w->comparisonView()->columnTiming(0).startsWith(QStringLiteral("node (fx %1, fy 4)").arg(presses)),
                 qPrintable(w->comparisonView()->columnTiming(0)));
        QTest::mouseMove(canvas, canvas->imageToWidget(*w->requestedNode()).toPoint());
        auto* hover = w->findChild<QLabel*>(QStringLiteral("hoverLabel"));
        QVERIFY(hover);
        QVERIFY2(hover->text().contains(QStringLiteral("(fx %1, fy 4)").arg(presses)), qPrintable(hover->text()));
    }

    // Ctrl+O adds models to the comparison; Replace Models is its own action.
    void ctrlOAddsModelsToTheComparison() {
        const QStringList two = sampleModels().mid(0, 2);
        auto w = loadedWindow(false, two);
        QVERIFY(w);
        QCOMPARE(int(w->models().size()), 2);
        auto* add = w->findChild<QAction*>(QStringLiteral("addModelsAction"));
        auto* replace = w->findChild<QAction*>(QStringLiteral("replaceModelsAction"));
        QVERIFY(add && replace);
        QCOMPARE(add->shortcut(), QKeySequence(QKeySequence::Open));
        QVERIFY(replace->shortcut().isEmpty());
        QSignalSpy shown(w.get(), &MainWindow::modelsShown);
        w->addModels({sampleModels()[2], two[0]}); // one new, one already open
        QVERIFY(waitFor(shown));
        QCOMPARE(int(w->models().size()), 3);
        QCOMPARE(w->models()[2].name, QStringLiteral("dcn_v2"));
        w->addModels({two[1]}); // nothing new: nothing reloaded
        QTest::qWait(300);
        QCOMPARE(shown.size(), 1);
        w->openModels({two[1]}); // Replace: only that one
        QVERIFY(waitFor(shown, 2));
        QCOMPARE(int(w->models().size()), 1);
    }

    // View has a toggle for each dock and the tool bar: a closed dock comes back.
    void aClosedDockComesBackFromTheViewMenu() {
        auto w = loadedWindow();
        QVERIFY(w);
        QMenu* view = nullptr;
        for (QAction* a : w->menuBar()->actions())
            if (a->text().remove(QLatin1Char('&')) == QLatin1String("View"))
                view = a->menu();
        QVERIFY(view);
        for (QDockWidget* dock : w->findChildren<QDockWidget*>()) {
            QVERIFY2(view->actions().contains(dock->toggleViewAction()), qPrintable(dock->windowTitle()));
            dock->close();
            QVERIFY(!dock->isVisible());
            dock->toggleViewAction()->trigger();
            QVERIFY(dock->isVisible());
        }
        QVERIFY(w->findChildren<QDockWidget*>().size() >= 2);
    }

    // Help lists every shortcut and what each overlay means, with the README; About the versions.
    void helpAndAboutSayWhatANewUserNeeds() {
        auto w = loadedWindow();
        QVERIFY(w);
        w->findChild<QAction*>(QStringLiteral("helpAction"))->trigger();
        auto* help = w->findChild<QDialog*>(QStringLiteral("helpDialog"));
        QVERIFY(help && help->isVisible() && !help->isModal());
        const QString text = help->findChild<QTextBrowser*>()->toPlainText();
        for (const char* words : {"Add Models", "Ctrl+O", "Export", "Arrow keys", "Shift+drag", "Sampling points",
                                  "effective receptive field", "Saliency region", "README.md"})
            QVERIFY2(text.contains(QLatin1String(words)), words);
        w->findChild<QAction*>(QStringLiteral("aboutAction"))->trigger();
        auto* about = w->findChild<QDialog*>(QStringLiteral("aboutDialog"));
        QVERIFY(about && about->isVisible());
        const QString versions = about->findChild<QTextBrowser*>()->toPlainText();
        for (const char* words : {"DeformScope", "LibTorch", "2.11.", "Qt", "6.", "OpenCV", "4.", "CUDA"})
            QVERIFY2(versions.contains(QLatin1String(words)), qPrintable(versions));
    }

    void theTraceCanGoThroughTheDeformableLayersOnly() {
        // Analysis > Trace through: "deformable layers only" reaches the request (and the
        // session); a click traces each column so, its caption counting unique points.
        auto w = loadedWindow();
        QVERIFY(w);
        auto* through = w->findChild<QComboBox*>(QStringLiteral("throughBox"));
        QVERIFY(through);
        QVERIFY(w->analysisSettings().through == deformscope::common::TraceThrough::All);
        through->setCurrentIndex(1);
        QVERIFY(w->analysisSettings().through == deformscope::common::TraceThrough::Deformable);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(64, 64));
        QVERIFY(waitFor(result));
        const ClickViewPtr r = w->result();
        QVERIFY(r);
        QCOMPARE(int(r->columns.size()), 3);
        for (const ColumnView& c : r->columns) {
            QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
            QVERIFY(!c.sampling.caption.empty());
            QVERIFY2(QString::fromStdString(c.sampling.caption.front()).contains(QStringLiteral(" unique)")),
                     c.sampling.caption.front().c_str());
            // The regular sample has no deformable layer: traced through its convolutions, and told so.
            const QString says = &c == &r->columns[0] ? QStringLiteral("no deformable layer")
                                                      : QStringLiteral("deformable layers and samplers only");
            QVERIFY2(c.notes.join(QLatin1Char('\n')).contains(says), qPrintable(c.notes.join(QLatin1Char('\n'))));
        }
    }

    void theDkSampleJoinsAsAFourthColumnWithItsKernel() {
        auto w = std::make_unique<MainWindow>(m_settings.get());
        deformscope::common::AnalysisRequest a = w->analysisSettings();
        a.what.saliency = false;
        w->setAnalysisSettings(a);
        w->resize(1600, 800);
        w->show();
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->start(sampleModels() << kSource + QStringLiteral("/sample_models/dk.pt"), sampleImage(), QPointF(40, 70));
        QVERIFY(waitFor(result));
        const ClickViewPtr r = w->result();
        QVERIFY(r);
        QCOMPARE(int(r->columns.size()), 4);
        ComparisonView* view = w->comparisonView();
        QCOMPARE(view->columnCount(), 4);
        QCOMPARE(view->columnTitle(3), QStringLiteral("dk"));
        QCOMPARE(view->columnBadge(3), QStringLiteral("DK"));
        // Only the DK column shows the resampled kernel, with the DK layer's caption.
        for (int i = 0; i < 3; ++i)
            QVERIFY(!view->kernelInset(i)->isVisible());
        QVERIFY(view->kernelInset(3)->isVisible());
        QVERIFY(view->kernelInset(3)->caption().contains(QStringLiteral("block3")));
        QVERIFY(r->columns[3].hasKernel && r->columns[3].kernel.points.size() == 9);
        // The single view shows it for the DK model only.
        w->setComparison(false);
        auto* modelBox = w->findChild<QComboBox*>(QStringLiteral("modelBox"));
        QVERIFY(modelBox);
        modelBox->setCurrentIndex(3);
        QVERIFY(w->singleKernelInset()->isVisible());
        QVERIFY(w->singleKernelInset()->caption().contains(QStringLiteral("block3")));
        modelBox->setCurrentIndex(1);
        QVERIFY(!w->singleKernelInset()->isVisible());
    }

    void rapidClicksDeliverOnlyTheLastResult() {
        auto w = loadedWindow();
        QVERIFY(w);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        const QPointF last(100, 20);
        w->selectPoint(QPointF(10, 10));
        w->selectPoint(QPointF(60, 60));
        w->selectPoint(QPointF(30, 90));
        w->selectPoint(last);
        QVERIFY(waitFor(result));
        QTest::qWait(1500); // anything older would have arrived by now
        QCOMPARE(result.count(), 1);
        const ClickViewPtr r = qvariant_cast<ClickViewPtr>(result.at(0).at(0));
        QCOMPARE(r->click, last);
    }

    void cancelStopsASaliencySearch() {
        auto w = loadedWindow(true);
        QVERIFY(w);
        deformscope::common::AnalysisRequest a = w->analysisSettings();
        a.forwards = 100000;
        a.epsilon = 0.01;
        w->setAnalysisSettings(a);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        QElapsedTimer t;
        t.start();
        w->selectPoint(QPointF(58, 46));
        QTest::qWait(1500);
        w->cancelAnalysis();
        QVERIFY(waitFor(result, 1, 60000));
        const ClickViewPtr r = w->result();
        QVERIFY(r->cancelled);
        QVERIFY2(t.elapsed() < 30000, "the search did not stop soon after Cancel");
        for (const ColumnView& c : r->columns)
            if (c.hasSaliency)
                QVERIFY(!c.saliency.mask.empty());
    }

    void exportWritesWhatTheCliWrites() {
        auto w = loadedWindow(true);
        QVERIFY(w);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectImagePixel(QPointF(58, 46));
        QVERIFY(waitFor(result));
        QSignalSpy exported(w.get(), &MainWindow::exportFinished);
        const QString dir = m_dir.filePath(QStringLiteral("export"));
        w->exportTo(dir);
        QVERIFY(waitFor(exported));
        for (const char* f : {"compare.png", "compare.svg", "compare.pdf", "compare.json"})
            QVERIFY2(QFile::exists(dir + QLatin1Char('/') + QLatin1String(f)), f);
        QVERIFY(QImage(dir + QStringLiteral("/compare.png")).width() > 100);
        // The single view exports its model alone, as `analyze` lays it out.
        w->setComparison(false);
        QSignalSpy exportedOne(w.get(), &MainWindow::exportFinished);
        const QString one = m_dir.filePath(QStringLiteral("export-one"));
        w->exportTo(one);
        QVERIFY(waitFor(exportedOne));
        for (const char* f : {"analysis.png", "analysis.svg", "analysis.pdf", "result.json", "erf.npy", "sampling.csv"})
            QVERIFY2(QFile::exists(one + QLatin1Char('/') + QLatin1String(f)), f);
        QCOMPARE(readJson(one + QStringLiteral("/result.json")).value(QStringLiteral("model_name")).toString(),
                 QStringLiteral("regular"));
        w->setComparison(true);
        QFile svg(dir + QStringLiteral("/compare.svg"));
        QVERIFY(svg.open(QIODevice::ReadOnly));
        QVERIFY(svg.readAll().contains("<svg"));
        QFile pdf(dir + QStringLiteral("/compare.pdf"));
        QVERIFY(pdf.open(QIODevice::ReadOnly));
        QVERIFY(pdf.read(5) == "%PDF-");

        // The CLI, same node and settings.
        const QString cliDir = m_dir.filePath(QStringLiteral("cli"));
        QProcess cli;
        cli.start(QStringLiteral(DEFORMSCOPE_CLI),
                  {QStringLiteral("compare"), QStringLiteral("--models"), sampleModels()[0], sampleModels()[1],
                   sampleModels()[2], QStringLiteral("--image"), sampleImage(), QStringLiteral("--pixel"),
                   QStringLiteral("58,46"), QStringLiteral("--forwards"), QStringLiteral("60"), QStringLiteral("--out"), cliDir});
        QVERIFY(cli.waitForFinished(300000));
        QVERIFY2(cli.exitCode() == 0, cli.readAllStandardError().constData());
        const QImage ours(dir + QStringLiteral("/compare.png")), theirs(cliDir + QStringLiteral("/compare.png"));
        QCOMPARE(ours.size(), theirs.size());
        QVERIFY(ours == theirs);
        for (const QString& model : {QStringLiteral("regular"), QStringLiteral("dcn_v1"), QStringLiteral("dcn_v2")}) {
            const QJsonObject a = readJson(dir + QLatin1Char('/') + model + QStringLiteral("/result.json"));
            const QJsonObject b = readJson(cliDir + QLatin1Char('/') + model + QStringLiteral("/result.json"));
            QVERIFY(!a.isEmpty());
            for (const char* key : {"pixel", "node", "erf", "sampling", "saliency", "object"})
                QCOMPARE(withoutTimings(a.value(QLatin1String(key))), withoutTimings(b.value(QLatin1String(key))));
            QVERIFY(a.value(QStringLiteral("saliency")).toObject().value(QStringLiteral("area_fraction")).toDouble() > 0);
        }
    }

    void theExportedViewIsWhatTheCanvasShows() {
        // A real click through the engine on the DCNv2 sample with its offset
        // field and modulation map on: the single view's canvas (without its
        // HUD) and the view.png that the window's export writes agree in all but
        // at most 1 pixel in 10,000.
        auto w = loadedWindow();
        QVERIFY(w);
        w->setComparison(false);
        auto* modelBox = w->findChild<QComboBox*>(QStringLiteral("modelBox"));
        QVERIFY(modelBox);
        modelBox->setCurrentIndex(2);
        const CanvasOverlays saved = w->overlays();
        CanvasOverlays o = saved;
        o.offsets = CanvasOverlays::Offsets::PerTap;
        o.modulation = true;
        w->setOverlays(o);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectImagePixel(QPointF(58, 46));
        QVERIFY(waitFor(result));
        Canvas* canvas = w->canvas();
        QCOMPARE(canvas->column(), 2);
        QCOMPARE(canvas->click()->columns[2].layerKind, QStringLiteral("dcn_v2"));
        const figure::Panel& panel = canvas->composedPanel();
        QVERIFY(panel.arrows == figure::Arrows::PerTap && panel.offsets.hasArrows());
        QVERIFY(panel.modulationMap && panel.offsets.hasModulation());
        canvas->setZoom(4); // zoomed in, the image cut by the widget, edges between pixels
        canvas->setPan(QPointF(10.5, -30.25));
        canvas->setHudShown(false);
        const QRect view = canvas->viewRect();
        QVERIFY(view.width() > 200 && view.height() > 200);
        const QImage shown = canvas->grab().toImage().copy(view);

        QSignalSpy exported(w.get(), &MainWindow::exportFinished);
        const QString dir = m_dir.filePath(QStringLiteral("export-view"));
        w->exportTo(dir, true, false);
        QVERIFY(waitFor(exported));
        const QString file = dir + QStringLiteral("/view.png");
        QVERIFY2(exported.at(0).at(0).toStringList().contains(file), qPrintable(exported.at(0).at(0).toStringList().join(' ')));
        const QImage written(file);
        QCOMPARE(written.size(), shown.size());
        const int limit = shown.width() * shown.height() / 10000;
        const int differing = differingPixels(shown, written);
        QVERIFY2(differing >= 0 && differing <= limit, qPrintable(QStringLiteral("%1 pixels differ").arg(differing)));

        // The comparison sees the offset field: the same view without its arrows differs.
        figure::Panel noArrows = panel;
        noArrows.arrows = figure::Arrows::None;
        const QString bare = m_dir.filePath(QStringLiteral("view-without-arrows.png"));
        QCOMPARE(saveView(noArrows, canvas->imageRect(), view, bare), QString());
        QVERIFY(differingPixels(shown, QImage(bare)) > 10 * (limit + 1));

        // The comparison view writes each column's view beside its data (the
        // views are written when the export starts: grab what it shows then).
        QSignalSpy comparison(w.get(), &MainWindow::resultShown);
        w->setComparison(true); // the single view analysed its model alone: the others now
        QVERIFY(waitFor(comparison));
        QTest::qWait(200);
        Canvas* column = w->comparisonView()->canvas(2);
        column->setHudShown(false);
        const QImage columnShown = column->grab().toImage().copy(column->viewRect());
        QSignalSpy exportedAll(w.get(), &MainWindow::exportFinished);
        const QString all = m_dir.filePath(QStringLiteral("export-views"));
        w->exportTo(all, true, false);
        QVERIFY(waitFor(exportedAll));
        for (const char* model : {"regular", "dcn_v1", "dcn_v2"})
            QVERIFY2(QFile::exists(all + QLatin1Char('/') + QLatin1String(model) + QStringLiteral("/view.png")), model);
        const QImage columnWritten(all + QStringLiteral("/dcn_v2/view.png"));
        QCOMPARE(columnWritten.size(), columnShown.size());
        QVERIFY(differingPixels(columnShown, columnWritten) <= columnShown.width() * columnShown.height() / 10000);
        w->setOverlays(saved);
    }

    void anExportedModelOpensBesideTheTorchScriptModels_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("damaged");
        QTest::newRow("torch.export") << "dcn_v2.pt2" << "damaged .pt2 archive";
        QTest::newRow("ONNX") << "dcn_v2.onnx" << "not an ONNX model, or a damaged one";
    }
    void anExportedModelOpensBesideTheTorchScriptModels() {
        // The sample DCNv2 as a torch.export archive or an ONNX file next to the TorchScript
        // samples: listed with its layers and badges, traced on a click like the others.
        QFETCH(QString, file);
        QFETCH(QString, damaged);
#ifndef DEFORMSCOPE_WITH_ONNX
        if (file.endsWith(QStringLiteral(".onnx")))
            QSKIP("built without ONNX support (libonnx-dev, libprotobuf-dev)");
#endif
        const QString pt2 = QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + QStringLiteral("/sample_models/") + file;
        QStringList models = sampleModels();
        models.append(pt2);
        auto w = loadedWindow(false, models);
        QVERIFY(w);
        QCOMPARE(int(w->models().size()), 4);
        QCOMPARE(w->models()[3].layers.size(), w->models()[2].layers.size());
        auto* modelBox = w->findChild<QComboBox*>(QStringLiteral("modelBox"));
        QVERIFY(modelBox);
        modelBox->setCurrentIndex(3);
        QTreeWidget* list = w->layerList();
        bool dcnBadge = false;
        for (int i = 0; i < list->topLevelItemCount(); ++i)
            dcnBadge = dcnBadge || (list->topLevelItem(i)->text(0) == QLatin1String("block3") &&
                                    list->topLevelItem(i)->text(1).trimmed() == QLatin1String("DCNv2"));
        QVERIFY(dcnBadge);
        modelBox->setCurrentIndex(0);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(64, 64));
        QVERIFY(waitFor(result));
        ClickViewPtr r = w->result();
        for (int tries = 0; tries < 20 && r && r->columns.size() != 4; ++tries) {
            QVERIFY(waitFor(result, result.count() + 1));
            r = w->result();
        }
        QVERIFY(r);
        QCOMPARE(int(r->columns.size()), 4);
        // The archive's column traces the same points as dcn_v2.pt's.
        QVERIFY2(r->columns[3].error.isEmpty(), qPrintable(r->columns[3].error));
        QCOMPARE(r->columns[3].sampling.points.size(), r->columns[2].sampling.points.size());
        QVERIFY(!r->columns[3].sampling.points.empty());

        // A damaged archive: an error naming it; the four models stay.
        const QString bad = m_dir.filePath(QStringLiteral("cut.") + QFileInfo(file).suffix());
        {
            QFile in(pt2), out(bad);
            QVERIFY(in.open(QIODevice::ReadOnly) && out.open(QIODevice::WriteOnly));
            out.write(in.read(in.size() / 2));
        }
        QSignalSpy error(w.get(), &MainWindow::errorShown);
        w->openModels({bad});
        QVERIFY(waitFor(error));
        QVERIFY2(w->errorText().contains(bad) && w->errorText().contains(damaged),
                 qPrintable(w->errorText()));
        QCOMPARE(int(w->models().size()), 4);
    }

    void aBadModelShowsAnErrorAndLeavesTheWindowUsable() {
        auto w = loadedWindow();
        QVERIFY(w);
        const QString bad = m_dir.filePath(QStringLiteral("broken.pt"));
        {
            QFile f(bad);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("this is not a TorchScript archive\n");
        }
        QSignalSpy error(w.get(), &MainWindow::errorShown);
        w->openModels({bad});
        QVERIFY(waitFor(error));
        QVERIFY2(w->errorText().contains(bad), qPrintable(w->errorText()));
        QCOMPARE(int(w->models().size()), 3); // what the user had is kept
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(64, 64));
        QVERIFY(waitFor(result));
        QCOMPARE(int(w->result()->columns.size()), 3);

        QSignalSpy error2(w.get(), &MainWindow::errorShown);
        w->openImage(m_dir.filePath(QStringLiteral("missing.png")));
        QVERIFY(waitFor(error2));
        QVERIFY(w->errorText().contains(QStringLiteral("missing.png")));
        QVERIFY(!w->result() || w->result()->columns.size() == 3);
    }

    void aModelWithoutMetadataAsksForItsInputSettings() {
        MainWindow w(m_settings.get());
        deformscope::common::AnalysisRequest a = w.analysisSettings();
        a.what.saliency = false;
        w.setAnalysisSettings(a);
        w.show();
        const QString model = QStringLiteral(DEFORMSCOPE_MODEL_FIXTURE_DIR) + QStringLiteral("/no_metadata.pt");
        QSignalSpy image(&w, &MainWindow::imageShown);
        w.start({model}, sampleImage(), QPointF(40, 40));
        QVERIFY(waitFor(image));
        QVERIFY(!w.models()[0].hasMetadata);
        auto* dialog = w.findChild<InputSettingsDialog*>();
        QVERIFY2(dialog, "no input-settings dialog for a model without metadata");
        // ImageNet prefilled; the user asks for a 64 × 64 input and BGR.
        QCOMPARE(dialog->settings().mean[0], 0.485);
        QCOMPARE(dialog->settings().std[2], 0.225);
        InputSettings s = dialog->settings();
        s.inputH = 64;
        s.inputW = 64;
        s.bgr = true;
        dialog->setSettings(s);
        dialog->accept();
        // The click is analysed again on the new 64 × 64 grid.
        QElapsedTimer t;
        t.start();
        while (!(w.result() && w.result()->image.width() == 64) && t.elapsed() < 60000)
            QTest::qWait(50);
        QVERIFY(w.result());
        QCOMPARE(w.models()[0].inputH, 64);
        QCOMPARE(w.models()[0].metadataInputH, 64);
        QVERIFY(w.models()[0].bgr);
        QCOMPARE(w.result()->image.width(), 64);
        // It is asked once per file: reopening does not ask again.
        QTest::qWait(100);
        QVERIFY(!w.findChild<InputSettingsDialog*>());
    }

    // The single view analyses its model alone and lists its metrics; the comparison, or
    // another model, is analysed when shown.
    void theSingleViewAnalysesItsModelAndShowsItsMetrics() {
        auto w = loadedWindow();
        QVERIFY(w);
        w->setComparison(false);
        auto* modelBox = w->findChild<QComboBox*>(QStringLiteral("modelBox"));
        modelBox->setCurrentIndex(1);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(58, 46));
        QVERIFY(waitFor(result));
        const ClickViewPtr single = w->result();
        QCOMPARE(single->columns.size(), size_t{3});
        QVERIFY(single->columns[0].skipped && single->columns[2].skipped);
        QVERIFY(!single->columns[1].skipped && single->columns[1].hasSampling && single->columns[1].hasErf);
        auto* metrics = w->findChild<QTableWidget*>(QStringLiteral("singleMetrics"));
        QVERIFY(metrics && metrics->isVisible());
        QCOMPARE(metrics->rowCount(), int(single->columns[1].metrics.size()));
        QCOMPARE(metrics->item(0, 0)->text(), single->columns[1].metrics[0].label);
        QCOMPARE(metrics->item(0, 1)->text(), single->columns[1].metrics[0].text);
        // Another model in the single view: analysed for it.
        modelBox->setCurrentIndex(2);
        QVERIFY(waitFor(result, 2));
        QVERIFY(!w->result()->columns[2].skipped && w->result()->columns[0].skipped);
        // The comparison: every model.
        w->setComparison(true);
        QVERIFY(waitFor(result, 3));
        for (const ColumnView& c : w->result()->columns)
            QVERIFY(!c.skipped && c.hasSampling);
    }

    // Export makes the folders it needs, writes one subfolder per export named after the
    // model (or "compare"), layer and node, and asks before replacing one.
    void exportWritesASubfolderPerExportAndAsksBeforeReplacing() {
        auto w = loadedWindow();
        QVERIFY(w);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(58, 46));
        QVERIFY(waitFor(result));
        const ColumnView& c = w->result()->columns[0];
        const QString name = QStringLiteral("compare_%1_fx%2_fy%3").arg(c.layer).arg(c.fx).arg(c.fy);
        QCOMPARE(w->exportFolderName(), name);
        const QString parent = m_dir.filePath(QStringLiteral("exports/not/yet/there"));
        QSignalSpy exported(w.get(), &MainWindow::exportFinished);
        w->exportUnder(parent, true, true);
        QVERIFY(waitFor(exported));
        const QString folder = parent + QLatin1Char('/') + name;
        QVERIFY(QFileInfo::exists(folder + QStringLiteral("/compare.json")));
        QVERIFY(QFileInfo::exists(folder + QStringLiteral("/dcn_v2/result.json")));
        // The same node again: asked first; No keeps the folder as it was.
        QFile marker(folder + QStringLiteral("/mine.txt"));
        QVERIFY(marker.open(QIODevice::WriteOnly));
        marker.close();
        w->exportUnder(parent, true, true);
        auto* question = w->findChild<QMessageBox*>(QStringLiteral("overwriteQuestion"));
        QVERIFY(question && question->isVisible());
        question->button(QMessageBox::No)->click();
        QTest::qWait(500);
        QCOMPARE(exported.size(), 1);
        QVERIFY(QFileInfo::exists(folder + QStringLiteral("/mine.txt")));
        // Yes replaces the earlier set (nothing of it stays beside the new one).
        w->exportUnder(parent, true, true);
        question = w->findChild<QMessageBox*>(QStringLiteral("overwriteQuestion"));
        QVERIFY(question);
        question->button(QMessageBox::Yes)->click();
        QVERIFY(waitFor(exported, 2));
        QVERIFY(!QFileInfo::exists(folder + QStringLiteral("/mine.txt")));
        QVERIFY(QFileInfo::exists(folder + QStringLiteral("/compare.json")));
        // The single view names its model.
        w->setComparison(false);
        const int current = w->findChild<QComboBox*>(QStringLiteral("modelBox"))->currentIndex();
        QVERIFY(w->exportFolderName().startsWith(w->result()->columns[size_t(current)].model + QLatin1Char('_')));
    }

    // The response menu names the model's classes; picking one asks for that class's score.
    void theResponseMenuListsClassNames() {
        auto w = loadedWindow();
        QVERIFY(w);
        auto* box = w->findChild<QComboBox*>(QStringLiteral("responseBox"));
        QVERIFY(box);
        QStringList items;
        for (int i = 0; i < box->count(); ++i)
            items << box->itemText(i);
        const QStringList names = w->models()[0].classNames;
        QVERIFY(names.size() >= 2);
        QCOMPARE(items.size(), names.size() + 1);
        QCOMPARE(items[0], QStringLiteral("sum"));
        QCOMPARE(items[2], QStringLiteral("class:1 (%1)").arg(names[1]));
        box->setCurrentIndex(2);
        Q_EMIT box->textActivated(box->currentText());
        QCOMPARE(QString::fromStdString(w->analysisSettings().response.toString()), QStringLiteral("class:1"));
        // Shown again as the named item (sessions and settings hold "class:1").
        w->setAnalysisSettings(w->analysisSettings());
        QCOMPARE(box->currentIndex(), 2);
    }

    // Analysis > Input Settings on a model with deformscope.json describes that metadata
    // (not "it has no deformscope.json") and restores its values, not ImageNet's.
    void theInputSettingsDialogReadsTheModelsMetadata() {
        auto w = loadedWindow(false, {sampleModels()[2]});
        QVERIFY(w);
        QVERIFY(w->models()[0].hasMetadata);
        w->editInputSettings(0);
        auto* dialog = w->findChild<InputSettingsDialog*>();
        QVERIFY(dialog);
        const QString intro = dialog->findChild<QLabel*>(QStringLiteral("inputSettingsIntro"))->text();
        QVERIFY2(intro.contains(QLatin1String("deformscope.json</tt> says")) && !intro.contains(QLatin1String("does not say")),
                 qPrintable(intro));
        QCOMPARE(dialog->settings().mean[0], w->models()[0].mean[0]);
        QCOMPARE(dialog->settings().inputH, 128); // the samples' metadata input size
        InputSettings changed = dialog->settings();
        changed.mean[0] = 0.1;
        changed.inputH = changed.inputW = 0;
        dialog->setSettings(changed);
        dialog->findChild<QDialogButtonBox*>()->button(QDialogButtonBox::RestoreDefaults)->click();
        QCOMPARE(dialog->settings().mean[0], w->models()[0].mean[0]);
        QCOMPARE(dialog->settings().inputH, 128);
        dialog->reject();
    }

    // A session file written before the analysis settings became the one request
    // type opens with the same meaning, and a value out of range keeps its default.
    void anOldSessionFileOpensWithItsSettings() {
        const QString path = m_dir.filePath(QStringLiteral("old.dsession"));
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(R"({"format": "deformscope-session/1", "models": ["/m/regular.pt"], "image": "/i/sample_01.png",
            "device": "cpu", "layer": "block2", "node": [40, 50], "object_box": [10, 12, 30, 20],
            "roi_box": [2, 32, 62, 60],
            "comparison": false, "current_model": 0,
            "analysis": {"response": "channel:2", "sampling": true, "erf": false, "saliency": true, "levels": 4,
                         "offset_reading": "nearest", "signed_erf": true, "epsilon": 0.2, "baseline": "blur:3",
                         "forwards": 250},
            "overlays": {"offsets": "mean", "erfColormap": "viridis"}})");
        f.close();
        QString error;
        const std::optional<Session> s = loadSession(path, &error);
        QVERIFY2(s, qPrintable(error));
        const deformscope::common::AnalysisRequest& a = s->analysis;
        QCOMPARE(a.response.toString(), std::string("channel:2"));
        QVERIFY(a.what.sampling && !a.what.erf && a.what.saliency);
        QCOMPARE(a.levels, 4);
        QVERIFY(a.reading == deformscope::common::OffsetReading::Nearest);
        QVERIFY(a.through == deformscope::common::TraceThrough::All); // not in old sessions: the default
        QVERIFY(a.signedErf);
        QCOMPARE(a.epsilon, 0.2);
        QCOMPARE(a.baseline.toString(), std::string("blur:3"));
        QCOMPARE(a.forwards, int64_t{250});
        QCOMPARE(s->layer, QStringLiteral("block2"));
        QCOMPARE(*s->node, QPointF(40, 50));
        QCOMPARE(s->objectBox, QRectF(10, 12, 30, 20));
        QCOMPARE(s->overlays.erfColormap, QStringLiteral("viridis"));
        // The click's request: the settings at the node, the box on the input grid, the overlays' colour map.
        const deformscope::common::AnalysisRequest click = clickRequest(a, s->layer, *s->node, s->objectBox, s->overlays);
        QVERIFY(click.at && click.at->grid == deformscope::common::Grid::Input && click.at->x == 40);
        QVERIFY(click.object.kind == deformscope::common::ObjectRegion::Kind::Box && click.object.box.x1 == 40);
        QVERIFY(click.colormap == deformscope::common::Colormap::Viridis);
        QVERIFY(click.validate().empty());
        QVERIFY(!click.roi); // no RoI box given
        // A RoI box: the region of interest on the input grid; just drawn, the node is the head's
        // output (no point); a click in it keeps the point (the bin under it).
        QCOMPARE(s->roiBox, QRectF(2, 32, 62, 60));
        const auto drawn = clickRequest(a, s->layer, *s->node, s->objectBox, s->overlays, s->roiBox, true);
        QVERIFY(!drawn.at && drawn.roi && drawn.roi->grid == deformscope::common::Grid::Input);
        QCOMPARE(drawn.roi->x1, 64.0);
        QCOMPARE(drawn.roi->y1, 92.0);
        const auto clicked = clickRequest(a, s->layer, *s->node, s->objectBox, s->overlays, s->roiBox, false);
        QVERIFY(clicked.at && clicked.roi && clicked.at->x == 40);
        QVERIFY(drawn.validate().empty() && clicked.validate().empty());

        QStringList problems;
        const deformscope::common::AnalysisRequest clamped =
            analysisFromJson(QJsonDocument::fromJson(R"({"levels": 12, "epsilon": 0.5})").object(), &problems);
        QCOMPARE(clamped.levels, 3);
        QCOMPARE(clamped.epsilon, 0.5);
        QCOMPARE(problems.size(), 1);
        QVERIFY2(problems[0].startsWith(QStringLiteral("levels: --levels '12'")), qPrintable(problems[0]));

        // The click and the device are the session's own fields: in a hand-edited file's
        // settings they are left out, so the session saves and reads back as it opened
        // (found by the session fuzzer, tests/fuzz/fuzz_session.cpp).
        const QByteArray edited = R"({"format": "deformscope-session/1", "models": ["/m/regular.pt"], "device": "cpu",
            "layer": "block2", "analysis": {"levels": 2, "device": "cuda:0", "layer": "head", "at": [3, 4]}})";
        QString problem;
        const std::optional<Session> e = parseSession(edited, &problem);
        QVERIFY2(e, qPrintable(problem));
        QCOMPARE(e->analysis.levels, 2);
        QVERIFY(e->analysis.layer.empty() && !e->analysis.at);
        QVERIFY(e->analysis.device == deformscope::common::AnalysisRequest{}.device);
        const std::optional<Session> again = parseSession(QJsonDocument(e->toJson()).toJson(), &problem);
        QVERIFY(again && *again == *e);
        // A box that is not four numbers, or has no size, is no box (found by the fuzzer: a box
        // [2, "a", "b", "c"] was read as 2, 0, 0, 0 and lost on saving); a model that is not a
        // path is refused, named.
        const std::optional<Session> boxes = parseSession(R"({"format": "deformscope-session/1", "models": ["/m/a.pt"],
            "roi_box": [2, "a", "b", "c"], "object_box": [3, 4, 0, 0]})", &problem);
        QVERIFY(boxes && boxes->roiBox.isNull() && boxes->objectBox.isNull());
        QVERIFY(!parseSession(R"({"format": "deformscope-session/1", "models": ["/m/a.pt", 10]})", &problem));
        QCOMPARE(problem, QStringLiteral("models[1] is not a model file's path"));
    }

    void aSessionSavesAndRestoresUnchanged() {
        auto w = loadedWindow();
        QVERIFY(w);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->setLayer(w->models()[0].layers[w->models()[0].layers.size() / 2].name);
        w->selectPoint(QPointF(77, 33));
        QVERIFY(waitFor(result));
        CanvasOverlays o = w->overlays();
        o.erfLog = !o.erfLog;
        o.erfColormap = QStringLiteral("viridis");
        w->setOverlays(o);
        w->setComparison(false);
        const QString path = m_dir.filePath(QStringLiteral("s.dsession"));
        QVERIFY(w->saveSessionTo(path));
        const Session saved = w->session();

        MainWindow restored(m_settings.get());
        QSignalSpy done(&restored, &MainWindow::sessionRestored);
        restored.openSession(path);
        QVERIFY(waitFor(done));
        QCOMPARE(QJsonDocument(restored.session().toJson()).toJson(), QJsonDocument(saved.toJson()).toJson());
        QVERIFY(restored.session() == saved);
        QVERIFY(restored.result());

        // A broken session file is reported and changes nothing.
        const QString broken = m_dir.filePath(QStringLiteral("broken.dsession"));
        {
            QFile f(broken);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("{ not json");
        }
        restored.openSession(broken);
        QVERIFY(restored.errorText().contains(broken));
        QVERIFY(restored.session() == saved);
    }
};

QTEST_MAIN(TestMainWindow)
#include "tst_main_window.moc"
