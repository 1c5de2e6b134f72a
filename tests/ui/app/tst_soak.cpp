// Long use of the desktop app, offscreen: 1,000 clicks, driven like a user (mouse clicks on
// the canvas at image positions), across the three sample models and two images (the
// second opened half way, then the first again), each click waiting for its result.
// Checked: every click gets its own result, in order (ids increasing, none dropped or
// repeated, the click's point in the result), no column fails, and the resident memory
// after click 1,000 is within 5 % of what it was after click 100 (the caches and the
// allocator have settled by then). The figures are printed (docs/reliability.md).
// SOAK_CLICKS in the environment changes the count (at least 200).
#include "ui/app/app_settings.h"
#include "ui/app/main_window.h"
#include "ui/canvas/canvas.h"
#include "ui/canvas/comparison_view.h"

#include <QElapsedTimer>
#include <QFile>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <cstdio>
#include <memory>
#include <unistd.h>

using namespace deformscope::ui;

namespace {

const QString kSource = QStringLiteral(DEFORMSCOPE_SOURCE_DIR);

// Resident set size in bytes (/proc/self/statm).
double residentBytes() {
    QFile f(QStringLiteral("/proc/self/statm"));
    if (!f.open(QIODevice::ReadOnly))
        return 0;
    const QList<QByteArray> parts = f.readAll().split(' ');
    return parts.size() > 1 ? parts[1].toDouble() * double(sysconf(_SC_PAGESIZE)) : 0;
}

bool waitFor(QSignalSpy& spy, int count, int ms = 120000) {
    QElapsedTimer t;
    t.start();
    while (spy.count() < count && t.elapsed() < ms)
        spy.wait(100);
    return spy.count() >= count;
}

} // namespace

class TestSoak : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

private Q_SLOTS:
    void thousandClicksHoldMemoryAndOrder() {
        const int clicks = std::max(200, qEnvironmentVariableIsSet("SOAK_CLICKS") ? qEnvironmentVariableIntValue("SOAK_CLICKS") : 1000);
        AppSettings settings(m_dir.filePath(QStringLiteral("settings.ini")));
        MainWindow w(&settings);
        deformscope::common::AnalysisRequest a = w.analysisSettings();
        a.what.saliency = false; // sampling and ERF per click: the interactive analyses
        w.setAnalysisSettings(a);
        w.resize(1400, 800);
        w.show();
        w.setComparison(true); // every model analyses each click; the clicks go to each model's canvas in turn
        const QStringList models{kSource + "/sample_models/regular.pt", kSource + "/sample_models/dcn_v1.pt",
                                 kSource + "/sample_models/dcn_v2.pt"};
        const QStringList images{kSource + "/resources/samples/sample_01.png",
                                 kSource + "/resources/samples/sample_02.png"};
        QSignalSpy shown(&w, &MainWindow::imageShown);
        w.start(models, images[0], std::nullopt);
        QVERIFY(waitFor(shown, 1));
        // Results counted and the last one kept (a QSignalSpy would keep every result alive).
        // Every 100th click also searches the saliency region: its sampling points and ERF
        // must arrive first (a partial result of the same click), then the whole.
        int results = 0, partials = 0;
        uint64_t partialId = 0;
        QObject::connect(&w, &MainWindow::partialResultShown, [&](const ClickViewPtr& r) {
            ++partials;
            partialId = r->id;
        });
        ClickViewPtr last;
        QObject::connect(&w, &MainWindow::resultShown, [&](const ClickViewPtr& r) {
            ++results;
            last = r;
        });
        uint64_t lastId = 0;
        double rss100 = 0, rssMax = 0;
        QElapsedTimer timer;
        timer.start();
        for (int i = 0; i < clicks; ++i) {
            if (i == clicks / 2 || i == 3 * clicks / 4) { // another image, then the first again
                const int before = shown.count();
                w.openImage(images[i == clicks / 2 ? 1 : 0]);
                QVERIFY(waitFor(shown, before + 1));
            }
            // A walk over the image: every position of a 13 x 11 lattice in turn.
            const QPointF p(4.5 + double((i * 7) % 13) * 9.5, 3.5 + double((i * 5) % 11) * 11.0);
            const int before = results;
            const bool saliency = i % 100 == 0;
            deformscope::common::AnalysisRequest settings = w.analysisSettings();
            settings.what.saliency = saliency;
            settings.forwards = 40;
            w.setAnalysisSettings(settings);
            Canvas* canvas = w.comparisonView()->canvas(i % 3);
            // Where the click lands, before any result can change the view.
            const QPointF clicked = canvas->widgetToImage(canvas->imageToWidget(p).toPoint());
            QTest::mouseClick(canvas, Qt::LeftButton, Qt::NoModifier, canvas->imageToWidget(p).toPoint());
            QVERIFY2(QTest::qWaitFor([&] { return results > before; }, 120000),
                     qPrintable(QString("click %1 got no result").arg(i)));
            QTest::qWait(1); // a second result for one click would arrive here
            const ClickViewPtr r = last;
            QVERIFY(r);
            QVERIFY2(r->id > lastId, qPrintable(QString("click %1: result %2 after %3").arg(i).arg(r->id).arg(lastId)));
            lastId = r->id;
            QCOMPARE(results, before + 1); // exactly one (complete) result per click
            if (saliency) {
                QCOMPARE(partialId, r->id);
                QVERIFY(r->columns[0].hasSaliency && !r->partial);
            }
            QCOMPARE(int(r->columns.size()), 3);
            for (const ColumnView& c : r->columns)
                QVERIFY2(c.error.isEmpty(), qPrintable(c.error));
            QVERIFY(std::abs(r->click.x() - clicked.x()) < 1e-6 && std::abs(r->click.y() - clicked.y()) < 1e-6);
            const double rss = residentBytes();
            if (i + 1 == 100)
                rss100 = rss;
            if (i + 1 > 100)
                rssMax = std::max(rssMax, rss);
        }
        const double rssEnd = residentBytes();
        const double growth = (rssEnd - rss100) / rss100;
        std::printf("soak: %d clicks in %.1f s (%.1f ms per click), resident %.1f MB after click 100, %.1f MB after "
                    "click %d (%+.2f %%), peak after click 100 %.1f MB; %d partial results\n",
                    clicks, double(timer.elapsed()) / 1e3, double(timer.elapsed()) / clicks, rss100 / 1e6, rssEnd / 1e6,
                    clicks, growth * 100, rssMax / 1e6, partials);
        QVERIFY(partials >= clicks / 100); // the saliency clicks' sampling and ERF came first
        QVERIFY2(growth < 0.05, qPrintable(QString("resident memory grew %1 % after click 100").arg(growth * 100)));
    }
};

QTEST_MAIN(TestSoak)
#include "tst_soak.moc"
