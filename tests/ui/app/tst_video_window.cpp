// The desktop app with a video model (tests/python/make_video.py): a frame pair
// opens side by side, a click on either frame picks the same node, and the
// alignment layer's points are drawn on the support frame.
#include "ui/app/app_settings.h"
#include "ui/app/main_window.h"
#include "ui/app/video_dialog.h"

#include <QApplication>
#include <QSignalSpy>
#include <QSlider>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTest>

#include <memory>

using namespace deformscope::ui;

namespace {

bool waitFor(QSignalSpy& spy, int count = 1, int ms = 120000) {
    for (int waited = 0; spy.count() < count && waited < ms; waited += 50)
        QTest::qWait(50);
    return spy.count() >= count;
}

QString video(const char* name) { return QStringLiteral(DEFORMSCOPE_VIDEO_FIXTURE_DIR "/") + QString::fromUtf8(name); }

} // namespace

class TestVideoWindow : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    std::unique_ptr<AppSettings> m_settings;

private Q_SLOTS:
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
