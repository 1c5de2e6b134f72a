// The desktop app with a video model (tests/python/make_video.py): a frame pair
// opens side by side, a click on either frame picks the same node, and the
// alignment layer's points are drawn on the support frame; the motion overlay
// and a label carried from one frame to the other; the bundled sample pair.
#include "core/report/report.h"
#include "ui/app/app_settings.h"
#include "ui/app/main_window.h"
#include "ui/app/video_dialog.h"
#include "ui/canvas/canvas.h"
#include "ui/canvas/view_panel.h"

#include <QApplication>
#include <QSignalSpy>
#include <QSlider>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTest>

#include <QAction>

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

using namespace deformscope::ui;
namespace report = deformscope::report;

namespace {

bool waitFor(QSignalSpy& spy, int count = 1, int ms = 120000) {
    for (int waited = 0; spy.count() < count && waited < ms; waited += 50)
        QTest::qWait(50);
    return spy.count() >= count;
}

QString video(const char* name) { return QStringLiteral(DEFORMSCOPE_VIDEO_FIXTURE_DIR "/") + QString::fromUtf8(name); }

const Metric* metric(const ColumnView& c, const char* key) {
    for (const Metric& m : c.metrics)
        if (m.key == QLatin1String(key))
            return &m;
    return nullptr;
}

// A window shown, analysing the sampling points of one level only.
std::unique_ptr<MainWindow> samplingWindow(AppSettings* settings) {
    auto w = std::make_unique<MainWindow>(settings);
    auto a = w->analysisSettings();
    a.what.saliency = false;
    a.what.erf = false;
    a.levels = 1;
    w->setAnalysisSettings(a);
    w->resize(1200, 700);
    w->show();
    return w;
}

// Such a window on translate.pt and the square pair, layer align.
std::unique_ptr<MainWindow> squarePairWindow(AppSettings* settings) {
    auto w = samplingWindow(settings);
    QSignalSpy models(w.get(), &MainWindow::modelsShown);
    QSignalSpy image(w.get(), &MainWindow::imageShown);
    w->openModels({video("translate.pt")});
    if (!waitFor(models)) {
        qWarning("the model did not open: %s", qPrintable(w->errorText()));
        return nullptr;
    }
    w->openFrames({video("square_a.png"), video("square_b.png")});
    if (!waitFor(image)) {
        qWarning("the frame pair did not open: %s", qPrintable(w->errorText()));
        return nullptr;
    }
    w->setComparison(false);
    w->setLayer(QStringLiteral("align"));
    return w;
}

} // namespace

class TestVideoWindow : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    std::unique_ptr<AppSettings> m_settings;

private Q_SLOTS:
    void aSecondClickKeepsTheMotionFieldAndTheFlows() {
        // The motion field and both flows depend on the frames, the layer and the alarm
        // threshold only: a second click on the same frames (the GUI's run) keeps them;
        // a new threshold computes them again.
        const std::string dir = DEFORMSCOPE_VIDEO_FIXTURE_DIR;
        report::InputSource inputs;
        inputs.images = {dir + "/square_a.png", dir + "/square_b.png"};
        deformscope::common::AnalysisRequest rq;
        rq.what.saliency = false;
        rq.what.motion = true;
        report::Run r = report::prepareRun(dir + "/translate.pt", inputs, rq);
        rq.at = deformscope::common::Location{deformscope::common::Grid::Original, 20, 25};
        report::analyseNode(r, rq);
        report::analyseMotion(r, rq);
        QVERIFY(r.motion);
        const report::MotionReport first = *r.motion;
        rq.at = deformscope::common::Location{deformscope::common::Grid::Original, 30, 14};
        report::analyseNode(r, rq);
        report::analyseMotion(r, rq);
        QVERIFY(r.motion->flow.is_same(first.flow));
        QVERIFY(r.motion->farneback.is_same(first.farneback));
        QVERIFY(r.motion->field.mean.is_same(first.field.mean));
        QCOMPARE(r.motion->vsFlow.epePx, first.vsFlow.epePx);
        rq.motionAlarmPx = 1;
        report::analyseMotion(r, rq);
        QVERIFY(!r.motion->flow.is_same(first.flow));
        QVERIFY(r.motion->flow.equal(first.flow));
        QVERIFY(r.motion->field.alarm); // a mean |offset| of 2.5 px is above the new 1 px threshold
    }

    void initTestCase() {
        QVERIFY(m_dir.isValid());
        m_settings = std::make_unique<AppSettings>(m_dir.filePath(QStringLiteral("settings.ini")));
    }

    void aFramePairOpensSideBySideAndAClickReadsTheSupportFrame() {
        auto w = std::make_unique<MainWindow>(m_settings.get());
        auto a = w->analysisSettings();
        a.what.saliency = false;
        a.levels = 1;
        w->setAnalysisSettings(a);
        w->resize(1200, 700);
        w->show();
        QSignalSpy image(w.get(), &MainWindow::imageShown);
        // A single image first: the model opens (its layer list), the pair comes next.
        w->start({video("translate.pt")}, video("square_a.png"), std::nullopt);
        QTest::qWait(500);
        QVERIFY(!w->models().empty());
        QCOMPARE(w->models()[0].inputs, (QStringList{"reference", "support"}));
        const int before = image.count();
        w->openFrames({video("square_a.png"), video("square_b.png")});
        QVERIFY(waitFor(image, before + 1));
        w->setComparison(false);
        w->setLayer(QStringLiteral("align"));
        QTest::qWait(50);
        // A click on the reference frame, then the same place on the support frame: one node.
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(25, 20));
        QVERIFY(waitFor(result));
        ClickViewPtr r = w->result();
        QVERIFY(r && !r->columns.empty());
        const ColumnView& c = r->columns[0];
        QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
        QCOMPARE(c.fx, 25);
        QCOMPARE(c.fy, 20);
        // The 9 taps lie on the support frame (x ≥ 48 on the side-by-side grid), moved by (−3, 2).
        int onSupport = 0;
        for (const auto& p : c.sampling.points)
            if (p.level == 1 && p.x >= 48 - 0.5) {
                ++onSupport;
                QVERIFY(p.x >= 48 + 25 - 1 - 3 - 1e-3 && p.x <= 48 + 25 + 1 - 3 + 1e-3);
            }
        QCOMPARE(onSupport, 9);
        w->selectPoint(QPointF(48 + 25, 20));
        QVERIFY(waitFor(result, result.count() + 1));
        r = w->result();
        QCOMPARE(r->columns[0].fx, 25);
        QCOMPARE(r->columns[0].fy, 20);
    }

    void theMotionOverlayAndAPropagatedLabel() {
        auto w = squarePairWindow(m_settings.get());
        QVERIFY(w);
        QVERIFY(w->canvas()->imageSize() == QSize(96, 48));
        w->openLabel(video("square_a_mask.png"));
        w->openLabel(video("square_b_mask.png"), true);
        CanvasOverlays o = w->overlays();
        o.motion = true;
        o.labels = true;
        w->setOverlays(o);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(25, 20));
        QVERIFY(waitFor(result));
        const ColumnView& c = w->result()->columns.at(0);
        QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
        QVERIFY(c.hasMotion);
        QCOMPARE(c.motionLayer, QStringLiteral("align"));
        // The offsets are (−3, 2) everywhere: mean |offset| 2.5 px, no spread between taps.
        QVERIFY(metric(c, "motion_mean_offset") && std::abs(metric(c, "motion_mean_offset")->value - 2.5) < 1e-3);
        QVERIFY(metric(c, "motion_diversity") && metric(c, "motion_diversity")->value < 1e-3);
        QVERIFY(metric(c, "motion_epe_flow") && metric(c, "motion_epe_flow")->value >= 0);
        // The square's mask travels with the translation through the layer's reads.
        const Metric* iou = metric(c, "propagation_iou_reads");
        QVERIFY(iou);
        QVERIFY2(iou->value > 0.95, qPrintable(iou->text));
        QVERIFY(metric(c, "propagation_iou_flow") && metric(c, "propagation_iou_flow")->value >= 0);
        // Drawn: the tint over both frames (the reference frame's pixel coloured by the
        // offsets' direction, the support frame's by DIS flow), four outlines.
        const deformscope::figure::Panel& p = w->canvas()->composedPanel();
        QVERIFY(p.tint);
        QCOMPARE(p.tint->width, 96);
        QCOMPARE(p.tint->height, 48);
        const uint8_t* ref = &p.tint->rgba[size_t(20 * 96 + 25) * 4];
        QVERIFY(ref[3] > 0);
        QVERIFY(!(ref[0] == ref[1] && ref[1] == ref[2])); // saturated: the field is not zero there
        QCOMPARE(p.labels.size(), size_t(4));
        // The given label lies on the reference frame, the carried ones on the support frame.
        auto columnsOf = [](const deformscope::figure::LabelOutline& l) {
            int lo = 96, hi = -1;
            for (int i = 0; i < int(l.mask.size()); ++i)
                if (l.mask[size_t(i)]) {
                    lo = std::min(lo, i % 96);
                    hi = std::max(hi, i % 96);
                }
            return std::pair<int, int>(lo, hi);
        };
        // In drawing order: the support frame's own label, the given one, by the flow, by the reads.
        QCOMPARE(p.labels[0].color, kLabelTruthColor);
        QCOMPARE(columnsOf(p.labels[0]), std::make_pair(48 + 15, 48 + 30));
        QCOMPARE(p.labels[1].color, kLabelGivenColor);
        QCOMPARE(columnsOf(p.labels[1]), std::make_pair(18, 33));
        QCOMPARE(p.labels[3].color, kLabelReadsColor);
        QCOMPARE(columnsOf(p.labels[3]), std::make_pair(48 + 15, 48 + 30));
        // A session keeps the labels and the overlay; a window opened from it shows them.
        const QString sessionPath = m_dir.filePath(QStringLiteral("labels.dsession"));
        QVERIFY(w->saveSessionTo(sessionPath));
        {
            auto again = std::make_unique<MainWindow>(m_settings.get());
            again->resize(1200, 700);
            again->show();
            QSignalSpy restored(again.get(), &MainWindow::sessionRestored);
            again->openSession(sessionPath);
            QVERIFY(waitFor(restored));
            QCOMPARE(QString::fromStdString(again->analysisSettings().propagate), video("square_a_mask.png"));
            QCOMPARE(QString::fromStdString(again->analysisSettings().propagateTruth), video("square_b_mask.png"));
            QVERIFY(again->result() && again->result()->columns.at(0).hasMotion);
            QCOMPARE(again->result()->columns.at(0).labels.size(), size_t(4));
        }
        // Overlays off: neither is drawn.
        o.motion = false;
        o.labels = false;
        w->setOverlays(o);
        QVERIFY(!w->canvas()->composedPanel().tint);
        QVERIFY(w->canvas()->composedPanel().labels.empty());
    }

    void aBadLabelCostsANoteNotTheClick() {
        auto w = squarePairWindow(m_settings.get());
        QVERIFY(w);
        const QString missing = m_dir.filePath(QStringLiteral("no_such_label.png"));
        w->openLabel(missing);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(25, 20));
        QVERIFY(waitFor(result));
        const ColumnView& c = w->result()->columns.at(0);
        QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
        QVERIFY(c.hasSampling);
        QVERIFY(!c.hasMotion);
        QVERIFY2(c.notes.join('\n').contains(QStringLiteral("motion not shown")) &&
                     c.notes.join('\n').contains(QStringLiteral("no_such_label.png")),
                 qPrintable(c.notes.join('\n')));
        // A support label without the reference label: refused with a message.
        w.reset();
        auto fresh = squarePairWindow(m_settings.get());
        QVERIFY(fresh);
        QSignalSpy error(fresh.get(), &MainWindow::errorShown);
        fresh->openLabel(video("square_b_mask.png"), true);
        QCOMPARE(error.count(), 1);
        QVERIFY(fresh->analysisSettings().propagateTruth.empty());
    }

    // Keypoints as the label: markers where they were given and where the reads carry
    // them on the support frame ((20, 20) moves by (−3, 2)), with their distance.
    void keypointsTravelAsMarkers() {
        QFile a(m_dir.filePath(QStringLiteral("a.json"))), b(m_dir.filePath(QStringLiteral("b.json")));
        QVERIFY(a.open(QIODevice::WriteOnly) && b.open(QIODevice::WriteOnly));
        a.write(R"({"keypoints": [[20, 20]]})");
        b.write(R"({"keypoints": [[17, 22]]})");
        a.close();
        b.close();
        auto w = squarePairWindow(m_settings.get());
        QVERIFY(w);
        w->openLabel(a.fileName());
        w->openLabel(b.fileName(), true);
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(25, 20));
        QVERIFY(waitFor(result));
        const ColumnView& c = w->result()->columns.at(0);
        QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
        QVERIFY(c.labels.empty());
        bool given = false, carried = false;
        for (const auto& m : c.markers) {
            if (m.color == kLabelGivenColor)
                given = std::abs(m.x - 20) < 1e-6 && std::abs(m.y - 20) < 1e-6;
            if (m.color == kLabelReadsColor)
                carried = std::abs(m.x - (48 + 17)) < 1e-3 && std::abs(m.y - 22) < 1e-3;
        }
        QVERIFY(given && carried);
        const Metric* d = metric(c, "propagation_distance_reads");
        QVERIFY(d && d->value < 1e-3);
        QVERIFY(!w->canvas()->composedPanel().markers.empty());
    }

    void theSampleVideoOpensWithItsLabels() {
        const QString root = QStringLiteral(DEFORMSCOPE_SOURCE_DIR);
        auto w = samplingWindow(m_settings.get());
        w->setSampleVideo(root + "/sample_models/align.pt",
                          {root + "/resources/samples/pair_01_a.png", root + "/resources/samples/pair_01_b.png"},
                          {root + "/resources/samples/pair_01_a_mask.png", root + "/resources/samples/pair_01_b_mask.png"});
        auto* action = w->findChild<QAction*>(QStringLiteral("openSampleVideoAction"));
        QVERIFY(action && action->isEnabled());
        QSignalSpy image(w.get(), &MainWindow::imageShown);
        action->trigger();
        QVERIFY(waitFor(image));
        QVERIFY(w->overlays().motion);
        QCOMPARE(QString::fromStdString(w->analysisSettings().propagate), root + "/resources/samples/pair_01_a_mask.png");
        QCOMPARE(QString::fromStdString(w->analysisSettings().propagateTruth), root + "/resources/samples/pair_01_b_mask.png");
        w->setComparison(false);
        w->setLayer(QStringLiteral("align"));
        QSignalSpy result(w.get(), &MainWindow::resultShown);
        w->selectPoint(QPointF(64, 64));
        QVERIFY(waitFor(result));
        const ColumnView& c = w->result()->columns.at(0);
        QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
        QVERIFY(c.hasMotion);
        const Metric* iou = metric(c, "propagation_iou_reads");
        QVERIFY(iou && iou->value > 0);
        QVERIFY(metric(c, "motion_epe_truth") == nullptr); // no true motion is given in the GUI
        QCOMPARE(c.labels.size(), size_t(4));
    }

    void theVideoDialogKeepsBothFramesInTheVideo() {
        VideoFramesDialog d(QStringLiteral("/tmp/clip.mp4"), 10);
        auto* slider = d.findChild<QSlider*>(QStringLiteral("frameSlider"));
        auto* step = d.findChild<QSpinBox*>(QStringLiteral("frameStep"));
        QVERIFY(slider && step);
        step->setValue(3);
        QCOMPARE(slider->maximum(), 6); // t + 3 ≤ 9
        slider->setValue(6);
        QCOMPARE(d.inputsText(), QStringLiteral("/tmp/clip.mp4\nframes:6,9"));
        QCOMPARE(inputsDisplayName(d.inputsText()), QStringLiteral("clip.mp4 (frames 6, 9)"));
    }
};

QTEST_MAIN(TestVideoWindow)
#include "tst_video_window.moc"
