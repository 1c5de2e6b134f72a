// Tests of ui_canvas on hand-made ClickViews: what Canvas paints at known
// pixels of grab() under zoom and pan (sampling points by level and weight,
// the ERF heat map and its colour map and scale, the saliency region, offset
// arrows, the modulation map, the empty state), that the exported view is
// what the canvas shows (composeView + saveView), what mouse, wheel and keys
// emit and do to the view, ComparisonView's columns, synchronised view,
// metrics table and error columns, and CanvasOverlays' JSON. Offscreen widgets.
#include "core/analysis/contours.h"
#include "ui/canvas/canvas.h"
#include "ui/canvas/comparison_view.h"
#include "ui/canvas/overlays.h"
#include "ui/canvas/view_panel.h"
#include "tests/ui/pixels.h"

#include <QApplication>
#include <QJsonDocument>
#include <QMouseEvent>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QWheelEvent>

#include <cmath>
#include <memory>

using namespace deformscope;
using namespace deformscope::ui;
using deformscope::test::differingPixels;

namespace {

constexpr int W = 64, H = 48;
const QColor kBg(90, 100, 110);

QColor fromRgb(uint32_t c) { return QColor(int((c >> 16) & 0xff), int((c >> 8) & 0xff), int(c & 0xff)); }

int distance(const QColor& a, const QColor& b)
{
    return std::max({std::abs(a.red() - b.red()), std::abs(a.green() - b.green()), std::abs(a.blue() - b.blue())});
}

QString str(const QColor& c) { return c.name(); }

QImage makeImage()
{
    QImage image(W, H, QImage::Format_RGB888);
    image.fill(kBg);
    return image;
}

figure::Image makeBackground()
{
    figure::Image im;
    im.width = W;
    im.height = H;
    im.rgb.resize(size_t(W) * H * 3);
    for (size_t i = 0; i < im.rgb.size(); i += 3)
        im.rgb[i] = uint8_t(kBg.red()), im.rgb[i + 1] = uint8_t(kBg.green()), im.rgb[i + 2] = uint8_t(kBg.blue());
    return im;
}

struct Parts {
    bool sampling = false, erf = false, saliency = false, offsets = false, modulation = false;
    QString error;
};

Parts only(bool Parts::*part)
{
    Parts p;
    p.*part = true;
    return p;
}

Parts failing(const QString& error)
{
    Parts p;
    p.error = error;
    return p;
}

// The node: feature (6, 8) of a stride-4 layer, centred at (32, 24).
ColumnView makeColumn(const QString& model, const QString& kind, const Parts& parts)
{
    ColumnView c;
    c.model = model;
    c.layer = QStringLiteral("block3.conv");
    c.layerKind = kind;
    c.fy = 6;
    c.fx = 8;
    c.response = QStringLiteral("sum");
    c.nodeCentre = QPointF(32, 24);
    c.nodeCell = QSizeF(4, 4);
    c.receptiveField = QRectF(16, 8, 33, 33);
    c.error = parts.error;
    if (parts.sampling) {
        c.hasSampling = true;
        c.sampling.background = makeBackground();
        c.sampling.points = {
            figure::Point{12, 10, 1, 1.0, true},
            figure::Point{44, 36, 2, 1.0, true},
            figure::Point{52, 12, 3, 0.01, true}, // light: shaded unless weight shading is off
        };
        c.levels = 3;
    }
    if (parts.erf) {
        c.hasErf = true;
        figure::Heat heat;
        heat.width = W;
        heat.height = H;
        heat.values.assign(size_t(W) * H, 0.001f);
        for (int y = 27; y <= 33; ++y) // a 7 × 7 hot spot around (50, 30)
            for (int x = 47; x <= 53; ++x)
                heat.values[size_t(y) * W + x] = 1.0f;
        heat.contours = analysis::massContours(heat.values, W, H); // 50 % / 90 %, as core gives an ERF's
        c.erf.background = makeBackground();
        c.erf.heat = heat;
    }
    if (parts.saliency) {
        c.hasSaliency = true;
        c.saliency.background = makeBackground();
        c.saliency.mask.assign(size_t(W) * H, 0);
        for (int y = 4; y < 24; ++y) // kept: x in [4, 28), y in [4, 24)
            for (int x = 4; x < 28; ++x)
                c.saliency.mask[size_t(y) * W + x] = 1;
    }
    if (parts.offsets || parts.modulation) {
        // 12 × 16 cells, 3 × 3 taps of dilation 2 around 4·f, every offset (+3, 0).
        c.featureH = 12;
        c.featureW = 16;
        c.taps = 9;
        c.hasModulation = parts.modulation;
        if (parts.modulation)
            c.modulation.assign(size_t(c.featureH) * size_t(c.featureW), 0.8); // each cell's mean mask value
        for (int fy = 0; fy < c.featureH; ++fy)
            for (int fx = 0; fx < c.featureW; ++fx)
                for (int t = 0; t < 9; ++t) {
                    OffsetArrow a;
                    a.x = float(4 * fx + (t % 3 - 1) * 2);
                    a.y = float(4 * fy + (t / 3 - 1) * 2);
                    a.dx = 3;
                    a.dy = 0;
                    a.modulation = parts.modulation ? 0.8f : 1.0f;
                    c.offsets.push_back(a);
                }
    }
    c.seconds = 0.25;
    c.timing = QStringLiteral("sampling 24 ms \u00b7 ERF 48 ms");
    return c;
}

std::shared_ptr<ClickView> makeClick(const Parts& parts)
{
    auto v = std::make_shared<ClickView>();
    v->id = 7;
    v->image = makeImage();
    v->background = makeBackground();
    v->click = QPointF(32, 24);
    v->columns.push_back(makeColumn(QStringLiteral("dcn_v2"), QStringLiteral("dcn_v2"), parts));
    return v;
}

// Everything off but what a test looks at.
CanvasOverlays nothing()
{
    CanvasOverlays o;
    o.sampling = o.erf = o.erfContours = o.saliencyOutline = o.saliencyMasked = o.object = o.modulation = false;
    o.offsets = CanvasOverlays::Offsets::Off;
    return o;
}

// Shows `click`'s first column on a 400 × 300 canvas with `overlays`, at
// zoom 5 panned to `pan`.
void showAt(Canvas& canvas, std::shared_ptr<ClickView> click, const CanvasOverlays& overlays, const QPointF& pan)
{
    canvas.resize(400, 300);
    canvas.setOverlays(overlays);
    canvas.setColumn(std::move(click), 0);
    canvas.setZoom(5);
    canvas.setPan(pan);
}

// The image alone on a 400 × 300 canvas at `zoom`, panned to `pan`.
void showImageAt(Canvas& canvas, double zoom, const QPointF& pan)
{
    canvas.resize(400, 300);
    canvas.setImage(makeImage());
    canvas.setZoom(zoom);
    canvas.setPan(pan);
}

// Three columns showing the image in a shown 1200 × 700 comparison; false when it is never exposed.
bool showThreeColumns(ComparisonView& view)
{
    view.resize(1200, 700);
    view.setColumnCount(3);
    view.setImage(makeImage());
    view.show();
    return QTest::qWaitForWindowExposed(&view);
}

QColor pixelAt(Canvas& canvas, const QPointF& imagePoint)
{
    const QImage grab = canvas.grab().toImage();
    const QPointF w = canvas.imageToWidget(imagePoint);
    return grab.pixelColor(int(std::floor(w.x())), int(std::floor(w.y())));
}

void sendMouse(QWidget* w, QEvent::Type type, const QPointF& pos, Qt::MouseButton button, Qt::MouseButtons buttons,
    Qt::KeyboardModifiers modifiers = Qt::NoModifier)
{
    QMouseEvent e(type, pos, w->mapToGlobal(pos), button, buttons, modifiers);
    QCoreApplication::sendEvent(w, &e);
}

void drag(QWidget* w, const QPointF& from, const QPointF& to, Qt::MouseButton button,
    Qt::KeyboardModifiers modifiers = Qt::NoModifier)
{
    sendMouse(w, QEvent::MouseButtonPress, from, button, button, modifiers);
    sendMouse(w, QEvent::MouseMove, (from + to) / 2, Qt::NoButton, button, modifiers);
    sendMouse(w, QEvent::MouseMove, to, Qt::NoButton, button, modifiers);
    sendMouse(w, QEvent::MouseButtonRelease, to, button, Qt::NoButton, modifiers);
}

void wheel(QWidget* w, const QPointF& pos, int delta)
{
    QWheelEvent e(pos, w->mapToGlobal(pos), QPoint(), QPoint(0, delta), Qt::NoButton, Qt::NoModifier, Qt::NoScrollPhase,
        false);
    QCoreApplication::sendEvent(w, &e);
}

bool near(const QPointF& a, const QPointF& b, double eps = 1e-6)
{
    return std::fabs(a.x() - b.x()) < eps && std::fabs(a.y() - b.y()) < eps;
}

} // namespace

class TestCanvas : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void mapping();
    void samplingPointsAtZoomAndPan_data();
    void samplingPointsAtZoomAndPan();
    void samplingLevelsAndWeights();
    void erfHeatMap();
    void erfContoursAloneOnTheImage();
    void saliencyRegion();
    void offsetArrows();
    void modulationMap();
    void objectBox();
    void viewExportIsWhatTheCanvasShows_data();
    void viewExportIsWhatTheCanvasShows();
    void emptyState();
    void clickEmitsNode();
    void dragIsNotAClick();
    void arrowKeysStep();
    void shiftDragDrawsBox();
    void wheelZoomKeepsPointFixed();
    void zoomKeys();
    void hover();
    void comparisonColumns();
    void kernelInsetForDkColumns();
    void comparisonSyncedView();
    void comparisonClickOnce();
    void overlaysJson();
};

void TestCanvas::mapping()
{
    Canvas canvas;
    canvas.resize(400, 300);
    canvas.setImage(makeImage());
    QVERIFY(canvas.hasImage());
    QVERIFY(canvas.isFitted());
    // Fitted: the whole image with a margin, centred.
    QCOMPARE(canvas.zoom(), std::min((400 - 24) / 64.0, (300 - 24) / 48.0));
    QVERIFY(near(canvas.imageRect().center(), QPointF(200, 150)));
    canvas.setZoom(5);
    canvas.setPan(QPointF(-23, 17));
    QVERIFY(!canvas.isFitted());
    QCOMPARE(canvas.zoom(), 5.0);
    QVERIFY(near(canvas.pan(), QPointF(-23, 17)));
    // Pixel centres at integers: pixel (0, 0) spans the first 5 × 5 widget pixels after the pan.
    QVERIFY(near(canvas.imageToWidget(QPointF(0, 0)), QPointF(-23 + 2.5, 17 + 2.5)));
    QVERIFY(near(canvas.imageToWidget(QPointF(-0.5, -0.5)), QPointF(-23, 17)));
    QVERIFY(near(canvas.widgetToImage(QPointF(100, 80)), QPointF((100 + 23) / 5.0 - 0.5, (80 - 17) / 5.0 - 0.5)));
    QVERIFY(near(canvas.widgetToImage(canvas.imageToWidget(QPointF(12.25, -3))), QPointF(12.25, -3)));
    canvas.setView(2, QPointF(10, 20));
    QVERIFY(near(canvas.viewCentre(), QPointF(10, 20)));
}

void TestCanvas::samplingPointsAtZoomAndPan_data()
{
    QTest::addColumn<double>("zoom");
    QTest::addColumn<QPointF>("pan");
    QTest::newRow("zoom 5") << 5.0 << QPointF(-23, 17);
    QTest::newRow("zoom 12, panned (markers scaled down)") << 12.0 << QPointF(-90, -90);
    QTest::newRow("zoom 2.5 (markers scaled up)") << 2.5 << QPointF(100, 80);
}

void TestCanvas::samplingPointsAtZoomAndPan()
{
    QFETCH(double, zoom);
    QFETCH(QPointF, pan);
    Canvas canvas;
    canvas.resize(500, 400);
    CanvasOverlays o = nothing();
    o.sampling = true;
    canvas.setOverlays(o);
    canvas.setColumn(makeClick(only(&Parts::sampling)), 0);
    canvas.setZoom(zoom);
    canvas.setPan(pan);
    QCOMPARE(canvas.zoom(), zoom);
    QVERIFY(near(canvas.pan(), pan));

    const QImage grab = canvas.grab().toImage();
    // The level-1 point at (12, 10): widget pan + (p + ½)·zoom, in its level colour.
    const QPoint p1(int(std::floor(pan.x() + 12.5 * zoom)), int(std::floor(pan.y() + 10.5 * zoom)));
    const QPoint p2(int(std::floor(pan.x() + 44.5 * zoom)), int(std::floor(pan.y() + 36.5 * zoom)));
    QVERIFY2(distance(grab.pixelColor(p1), fromRgb(figure::levelColor(1))) <= 3, qPrintable(str(grab.pixelColor(p1))));
    QVERIFY2(distance(grab.pixelColor(p2), fromRgb(figure::levelColor(2))) <= 3, qPrintable(str(grab.pixelColor(p2))));
    // Between them: the image.
    const QPoint between(int(std::floor(pan.x() + 28.5 * zoom)), int(std::floor(pan.y() + 14.5 * zoom)));
    QVERIFY2(distance(grab.pixelColor(between), kBg) <= 1, qPrintable(str(grab.pixelColor(between))));

    // Sampling off: gone.
    o.sampling = false;
    canvas.setOverlays(o);
    const QImage off = canvas.grab().toImage();
    QVERIFY2(distance(off.pixelColor(p1), kBg) <= 1, qPrintable(str(off.pixelColor(p1))));
    QVERIFY2(distance(off.pixelColor(p2), kBg) <= 1, qPrintable(str(off.pixelColor(p2))));
}

void TestCanvas::samplingLevelsAndWeights()
{
    Canvas canvas;
    CanvasOverlays o = nothing();
    o.sampling = true;
    showAt(canvas, makeClick(only(&Parts::sampling)), o, QPointF(-23, 17));
    const QColor l1 = fromRgb(figure::levelColor(1)), l2 = fromRgb(figure::levelColor(2)), l3 = fromRgb(figure::levelColor(3));
    QVERIFY(distance(pixelAt(canvas, QPointF(12, 10)), l1) <= 3);
    QVERIFY(distance(pixelAt(canvas, QPointF(44, 36)), l2) <= 3);
    // The light level-3 point (weight 1 % of the largest) is drawn faint and small.
    const QColor faint = pixelAt(canvas, QPointF(52, 12));
    QVERIFY2(distance(faint, l3) > 20 && distance(faint, kBg) > 20, qPrintable(str(faint)));

    o.setLevelShown(2, false);
    QVERIFY(!o.levelShown(2) && o.levelShown(1) && o.levelShown(3));
    canvas.setOverlays(o);
    QVERIFY(distance(pixelAt(canvas, QPointF(12, 10)), l1) <= 3);
    QVERIFY(distance(pixelAt(canvas, QPointF(44, 36)), kBg) <= 1);
    QVERIFY(distance(pixelAt(canvas, QPointF(52, 12)), faint) <= 1);
    QCOMPARE(canvas.composedPanel().points.size(), size_t(2));

    // Weight shading off: every point at full strength.
    o.weightShading = false;
    canvas.setOverlays(o);
    QVERIFY2(distance(pixelAt(canvas, QPointF(52, 12)), l3) <= 3, qPrintable(str(pixelAt(canvas, QPointF(52, 12)))));
}

void TestCanvas::erfHeatMap()
{
    Canvas canvas;
    CanvasOverlays o = nothing();
    showAt(canvas, makeClick(only(&Parts::erf)), o, QPointF(-40, 9));
    const QPointF hot(50, 30), cold(10, 40);
    QVERIFY(distance(pixelAt(canvas, hot), kBg) <= 1); // ERF off: the image
    QVERIFY(distance(pixelAt(canvas, cold), kBg) <= 1);

    // The figure's blend: grey (luminance) under the map at opacity 0.75.
    const double lum = 0.299 * kBg.red() + 0.587 * kBg.green() + 0.114 * kBg.blue();
    auto blend = [&](const char* map, double t) {
        const QColor h = fromRgb(figure::colormap(map, t));
        return QColor(int(std::lround(0.25 * lum + 0.75 * h.red())), int(std::lround(0.25 * lum + 0.75 * h.green())),
            int(std::lround(0.25 * lum + 0.75 * h.blue())));
    };
    o.erf = true;
    o.erfContours = true;
    canvas.setOverlays(o);
    QVERIFY2(distance(pixelAt(canvas, hot), blend("inferno", 1.0)) <= 2, qPrintable(str(pixelAt(canvas, hot))));
    QVERIFY2(distance(pixelAt(canvas, cold), blend("inferno", 0.001)) <= 2, qPrintable(str(pixelAt(canvas, cold))));

    o.erfColormap = QStringLiteral("viridis");
    canvas.setOverlays(o);
    QVERIFY2(distance(pixelAt(canvas, hot), blend("viridis", 1.0)) <= 2, qPrintable(str(pixelAt(canvas, hot))));

    // Log scale lifts the faint tail: log10(1 + 0.001·1000) / log10(1001).
    o.erfLog = true;
    canvas.setOverlays(o);
    QVERIFY2(distance(pixelAt(canvas, cold), blend("viridis", std::log10(2.0) / std::log10(1001.0))) <= 2,
        qPrintable(str(pixelAt(canvas, cold))));

    // Contours: a white line somewhere around the spot; none without them.
    auto whiteNearSpot = [&] {
        const QImage g = canvas.grab().toImage();
        const QRectF r(canvas.imageToWidget(QPointF(42, 22)), canvas.imageToWidget(QPointF(58, 38)));
        for (int y = int(r.top()); y < int(r.bottom()); ++y)
            for (int x = int(r.left()); x < int(r.right()); ++x)
                if (g.pixelColor(x, y).lightness() > 245 && g.pixelColor(x, y).saturation() < 30)
                    return true;
        return false;
    };
    o.erfColormap = QStringLiteral("inferno"); // its top is pale yellow, not white
    o.erfLog = false;
    canvas.setOverlays(o);
    QVERIFY(whiteNearSpot());
    QVERIFY(!canvas.composedPanel().heat->contours.empty());
    // While zooming, a draft without contours; the full drawing once the gesture settles.
    wheel(&canvas, canvas.imageToWidget(hot), 120);
    QVERIFY(canvas.isInteracting());
    QVERIFY(!whiteNearSpot());
    QTRY_VERIFY(!canvas.isInteracting());
    QVERIFY(whiteNearSpot());
    o.erfContours = false;
    canvas.setOverlays(o);
    QVERIFY(!whiteNearSpot());
}

// A new user's first view: the image with two overlays, the sampling points and the ERF's
// contours, the contours drawn on the image itself (not greyed, not tinted) in a colour
// chosen against it.
void TestCanvas::erfContoursAloneOnTheImage()
{
    const CanvasOverlays defaults;
    QVERIFY(defaults.sampling && defaults.erfContours);
    QVERIFY(!defaults.erf && !defaults.saliencyOutline && !defaults.saliencyMasked);

    Canvas canvas;
    CanvasOverlays o = nothing();
    o.erfContours = true;
    showAt(canvas, makeClick(only(&Parts::erf)), o, QPointF(-40, 9));
    const figure::Panel& panel = canvas.composedPanel();
    QVERIFY(panel.heat && !panel.heat->map && !panel.heat->contours.empty());
    QCOMPARE(panel.heat->contourRgb, uint32_t(0xffffff)); // the test image is dark
    // Away from the lines the image is itself, in its colours.
    QVERIFY2(distance(pixelAt(canvas, QPointF(50, 30)), kBg) <= 1, qPrintable(str(pixelAt(canvas, QPointF(50, 30)))));
    QVERIFY2(distance(pixelAt(canvas, QPointF(10, 40)), kBg) <= 1, qPrintable(str(pixelAt(canvas, QPointF(10, 40)))));
    const QImage g = canvas.grab().toImage();
    const QRectF r(canvas.imageToWidget(QPointF(40, 20)), canvas.imageToWidget(QPointF(60, 40)));
    int white = 0;
    for (int y = int(r.top()); y < int(r.bottom()); ++y)
        for (int x = int(r.left()); x < int(r.right()); ++x)
            white += g.pixelColor(x, y).lightness() > 245 ? 1 : 0;
    QVERIFY2(white > 20, qPrintable(QString::number(white)));
    // On a light image the lines turn deep blue.
    figure::Image light = makeBackground();
    std::fill(light.rgb.begin(), light.rgb.end(), uint8_t(230));
    QCOMPARE(contourColorAgainst(light), uint32_t(0x1038c8));
    QCOMPARE(contourColorAgainst(makeBackground()), uint32_t(0xffffff));
    // With the heat map on, the map's own contour colour again.
    o.erf = true;
    canvas.setOverlays(o);
    QVERIFY(canvas.composedPanel().heat->map && canvas.composedPanel().heat->contourRgb == 0);
}

void TestCanvas::saliencyRegion()
{
    Canvas canvas;
    CanvasOverlays o = nothing();
    showAt(canvas, makeClick(only(&Parts::saliency)), o, QPointF(20, 10));
    const QPointF inside(10, 8), outside(50, 40);
    const QColor dim(int(std::lround(kBg.red() * 0.3)), int(std::lround(kBg.green() * 0.3)), int(std::lround(kBg.blue() * 0.3)));
    // The region's left edge (pixel edge x = 4) halfway down it (y = 14).
    const QPointF edge = canvas.imageToWidget(QPointF(3.5, 14));
    auto whiteAtEdge = [&] {
        const QImage g = canvas.grab().toImage();
        for (int x = int(edge.x()) - 2; x <= int(edge.x()) + 2; ++x)
            if (g.pixelColor(x, int(edge.y())).lightness() > 180) // a 1.4-px white line, antialiased
                return true;
        return false;
    };
    QVERIFY(distance(pixelAt(canvas, outside), kBg) <= 1);
    QVERIFY(!whiteAtEdge());

    o.saliencyMasked = o.saliencyOutline = true; // the figure's look
    canvas.setOverlays(o);
    QVERIFY2(distance(pixelAt(canvas, outside), dim) <= 1, qPrintable(str(pixelAt(canvas, outside))));
    QVERIFY(distance(pixelAt(canvas, inside), kBg) <= 1);
    QVERIFY(whiteAtEdge());

    o.saliencyOutline = false; // masked image only
    canvas.setOverlays(o);
    QVERIFY(distance(pixelAt(canvas, outside), dim) <= 1);
    QVERIFY(distance(pixelAt(canvas, inside), kBg) <= 1);
    QVERIFY(!whiteAtEdge());

    o.saliencyOutline = true; // outline only
    o.saliencyMasked = false;
    canvas.setOverlays(o);
    QVERIFY(distance(pixelAt(canvas, outside), kBg) <= 1);
    QVERIFY(whiteAtEdge());
}

void TestCanvas::offsetArrows()
{
    Canvas canvas;
    CanvasOverlays o = nothing();
    showAt(canvas, makeClick(only(&Parts::offsets)), o, QPointF(20, 10));
    const QColor arrow(0x00, 0xe5, 0xff);
    // Cell (3, 2) is centred at (8, 12): its top-left tap sits at (6, 10) and
    // points to (9, 10); its mean arrow goes from (8, 12) to (11, 12).
    const QPointF tapShaft(7.5, 10), meanShaft(9.5, 12);
    QVERIFY(distance(pixelAt(canvas, tapShaft), kBg) <= 1);
    QVERIFY(distance(pixelAt(canvas, meanShaft), kBg) <= 1);

    o.offsets = CanvasOverlays::Offsets::PerTap;
    canvas.setOverlays(o);
    QVERIFY2(distance(pixelAt(canvas, tapShaft), arrow) <= 40, qPrintable(str(pixelAt(canvas, tapShaft))));
    QVERIFY2(distance(pixelAt(canvas, meanShaft), arrow) <= 40, qPrintable(str(pixelAt(canvas, meanShaft))));
    // Thinned: at 20 px per cell only every third cell is drawn (cell (3, 3) is not).
    QVERIFY2(distance(pixelAt(canvas, QPointF(13.5, 12)), kBg) <= 1, qPrintable(str(pixelAt(canvas, QPointF(13.5, 12)))));

    o.offsets = CanvasOverlays::Offsets::Mean;
    canvas.setOverlays(o);
    QVERIFY2(distance(pixelAt(canvas, meanShaft), arrow) <= 40, qPrintable(str(pixelAt(canvas, meanShaft))));
    QVERIFY2(distance(pixelAt(canvas, QPointF(13.5, 12)), arrow) <= 40, qPrintable(str(pixelAt(canvas, QPointF(13.5, 12)))));
    QVERIFY2(distance(pixelAt(canvas, tapShaft), arrow) > 100, qPrintable(str(pixelAt(canvas, tapShaft))));
}

void TestCanvas::modulationMap()
{
    Canvas canvas;
    CanvasOverlays o = nothing();
    showAt(canvas, makeClick(only(&Parts::modulation)), o, QPointF(20, 10));
    const QPointF cell(20, 36);
    QVERIFY(distance(pixelAt(canvas, cell), kBg) <= 1);
    o.modulation = true;
    canvas.setOverlays(o);
    // viridis(0.8) at alpha 128/255 over the image.
    const QColor m = fromRgb(figure::colormap("viridis", 0.8));
    const double a = 128 / 255.0;
    const QColor expected(int(std::lround(kBg.red() * (1 - a) + m.red() * a)),
        int(std::lround(kBg.green() * (1 - a) + m.green() * a)), int(std::lround(kBg.blue() * (1 - a) + m.blue() * a)));
    QVERIFY2(distance(pixelAt(canvas, cell), expected) <= 3, qPrintable(str(pixelAt(canvas, cell)) + " vs " + str(expected)));

    // No map for a column without modulation (DCNv1).
    canvas.setColumn(makeClick(only(&Parts::offsets)), 0);
    QVERIFY(distance(pixelAt(canvas, cell), kBg) <= 1);
}

void TestCanvas::objectBox()
{
    Canvas canvas;
    CanvasOverlays o = nothing();
    auto click = makeClick(Parts{});
    click->objectBox = QRectF(QPointF(10, 6), QPointF(30, 20)); // pixel edges
    showAt(canvas, click, o, QPointF(20, 10));
    QVERIFY(!canvas.composedPanel().objectBox);
    o.object = true;
    canvas.setOverlays(o);
    QVERIFY(canvas.composedPanel().objectBox);
    const auto b = *canvas.composedPanel().objectBox; // the figure's: centre coordinates of the edges
    QCOMPARE(b[0], 9.5);
    QCOMPARE(b[1], 5.5);
    QCOMPARE(b[2], 29.5);
    QCOMPARE(b[3], 19.5);
    // Dashed yellow on the box's left edge somewhere between its top and bottom.
    const QImage g = canvas.grab().toImage();
    const QPointF top = canvas.imageToWidget(QPointF(9.5, 5.5)), bottom = canvas.imageToWidget(QPointF(9.5, 19.5));
    bool yellow = false;
    for (int y = int(top.y()) + 2; y < int(bottom.y()) - 2 && !yellow; ++y)
        for (int x = int(top.x()) - 1; x <= int(top.x()) + 1; ++x)
            if (g.pixelColor(x, y).red() > 150 && g.pixelColor(x, y).green() > 120 && g.pixelColor(x, y).blue() < 80)
                yellow = true; // #ffe119, antialiased over its dark halo
    QVERIFY(yellow);
}

void TestCanvas::viewExportIsWhatTheCanvasShows_data()
{
    QTest::addColumn<double>("zoom"); // 0: fitted
    QTest::addColumn<QPointF>("pan");
    QTest::addColumn<int>("offsets"); // CanvasOverlays::Offsets
    QTest::newRow("fitted, per tap") << 0.0 << QPointF() << int(CanvasOverlays::Offsets::PerTap);
    QTest::newRow("zoom 5, cut by the widget, mean") << 5.0 << QPointF(-23, 17) << int(CanvasOverlays::Offsets::Mean);
    QTest::newRow("zoom 2.5, per tap") << 2.5 << QPointF(100, 80) << int(CanvasOverlays::Offsets::PerTap);
}

void TestCanvas::viewExportIsWhatTheCanvasShows()
{
    // Every overlay on, the offset field and modulation map included: the canvas
    // (without its HUD) and the view written through saveView agree pixel for pixel.
    QFETCH(double, zoom);
    QFETCH(QPointF, pan);
    QFETCH(int, offsets);
    CanvasOverlays o;
    o.offsets = CanvasOverlays::Offsets(offsets);
    o.modulation = true;
    Parts every;
    every.sampling = every.erf = every.saliency = every.offsets = every.modulation = true;
    auto click = makeClick(every);
    click->objectBox = QRectF(40, 20, 20, 20);
    Canvas canvas;
    canvas.resize(400, 300);
    canvas.setOverlays(o);
    canvas.setColumn(click, 0);
    if (zoom > 0) {
        canvas.setZoom(zoom);
        canvas.setPan(pan);
    }
    canvas.setHudShown(false);
    const QRect view = canvas.viewRect();
    QVERIFY(!view.isEmpty());
    const QImage shown = canvas.grab().toImage().copy(view);

    QTemporaryDir dir;
    const QString file = dir.filePath(QStringLiteral("view.png"));
    const figure::Panel panel = composeView(clickBackground(*click), click.get(), 0, o);
    QCOMPARE(saveView(panel, canvas.imageRect(), view, file), QString());
    const QImage exported(file);
    QCOMPARE(exported.size(), shown.size());
    const int limit = shown.width() * shown.height() / 10000;
    QVERIFY2(differingPixels(shown, exported) <= limit, qPrintable(QString::number(differingPixels(shown, exported))));

    // The comparison sees the offset field: a view exported without it differs.
    figure::Panel noArrows = panel;
    noArrows.arrows = figure::Arrows::None;
    QCOMPARE(saveView(noArrows, canvas.imageRect(), view, file), QString());
    QVERIFY(differingPixels(shown, QImage(file)) > 10 * (limit + 1));
}

void TestCanvas::emptyState()
{
    Canvas canvas;
    canvas.resize(400, 300);
    QVERIFY(!canvas.hasImage());
    const QImage g = canvas.grab().toImage();
    // Dark backdrop with the hint text (light pixels) in the middle band.
    QVERIFY(g.pixelColor(5, 5).lightness() < 50);
    int light = 0;
    for (int y = 100; y < 200; ++y)
        for (int x = 0; x < 400; ++x)
            light += g.pixelColor(x, y).lightness() > 110;
    QVERIFY2(light > 50, qPrintable(QString::number(light)));
    canvas.setImage(makeImage());
    QVERIFY(distance(canvas.grab().toImage().pixelColor(200, 150), kBg) <= 1);
    canvas.clear();
    QVERIFY(!canvas.hasImage());
    QVERIFY(distance(canvas.grab().toImage().pixelColor(200, 150), kBg) > 1);
}

void TestCanvas::clickEmitsNode()
{
    Canvas canvas;
    canvas.resize(400, 300);
    canvas.setImage(makeImage());
    canvas.show();
    QVERIFY(QTest::qWaitForWindowExposed(&canvas));
    canvas.setZoom(4);
    canvas.setPan(QPointF(-10, 7));
    QSignalSpy spy(&canvas, &Canvas::nodeClicked);
    QTest::mouseClick(&canvas, Qt::LeftButton, Qt::NoModifier, QPoint(150, 120));
    QCOMPARE(spy.count(), 1);
    const QPointF p = spy.at(0).at(0).toPointF();
    QVERIFY2(near(p, QPointF((150 + 10) / 4.0 - 0.5, (120 - 7) / 4.0 - 0.5)), qPrintable(QStringLiteral("%1, %2").arg(p.x()).arg(p.y())));
    // A click beside the image selects nothing.
    QTest::mouseClick(&canvas, Qt::LeftButton, Qt::NoModifier, QPoint(2, 2));
    QCOMPARE(spy.count(), 1);
    // The right button pans and never clicks.
    QTest::mouseClick(&canvas, Qt::RightButton, Qt::NoModifier, QPoint(150, 120));
    QCOMPARE(spy.count(), 1);
}

void TestCanvas::dragIsNotAClick()
{
    Canvas canvas;
    showImageAt(canvas, 4, QPointF(-10, 7));
    QSignalSpy spy(&canvas, &Canvas::nodeClicked);
    // 12 px: a drag, which pans by as much.
    drag(&canvas, QPointF(150, 120), QPointF(162, 120), Qt::LeftButton);
    QCOMPARE(spy.count(), 0);
    QVERIFY(near(canvas.pan(), QPointF(2, 7)));
    // A 2-px tremble is still a click, at the release point.
    drag(&canvas, QPointF(150, 120), QPointF(151, 121), Qt::LeftButton);
    QCOMPARE(spy.count(), 1);
    QVERIFY(near(spy.at(0).at(0).toPointF(), canvas.widgetToImage(QPointF(151, 121))));
    // Middle and right drags pan too; Space + left drag pans.
    drag(&canvas, QPointF(150, 120), QPointF(140, 100), Qt::MiddleButton);
    QVERIFY(near(canvas.pan(), QPointF(-8, -13)));
    drag(&canvas, QPointF(150, 120), QPointF(155, 125), Qt::RightButton);
    QVERIFY(near(canvas.pan(), QPointF(-3, -8)));
    QTest::keyPress(&canvas, Qt::Key_Space);
    drag(&canvas, QPointF(150, 120), QPointF(152, 120), Qt::LeftButton); // even a short one
    QTest::keyRelease(&canvas, Qt::Key_Space);
    QVERIFY(near(canvas.pan(), QPointF(-1, -8)));
    QCOMPARE(spy.count(), 1);
}

void TestCanvas::arrowKeysStep()
{
    Canvas canvas;
    canvas.setImage(makeImage());
    QSignalSpy spy(&canvas, &Canvas::stepNode);
    QTest::keyClick(&canvas, Qt::Key_Left);
    QTest::keyClick(&canvas, Qt::Key_Right);
    QTest::keyClick(&canvas, Qt::Key_Up);
    QTest::keyClick(&canvas, Qt::Key_Down);
    QCOMPARE(spy.count(), 4);
    const int expected[4][2] = {{0, -1}, {0, 1}, {-1, 0}, {1, 0}};
    for (int i = 0; i < 4; ++i) {
        QCOMPARE(spy.at(i).at(0).toInt(), expected[i][0]);
        QCOMPARE(spy.at(i).at(1).toInt(), expected[i][1]);
    }
}

void TestCanvas::shiftDragDrawsBox()
{
    Canvas canvas;
    showImageAt(canvas, 4, QPointF(-10, 7));
    QSignalSpy boxes(&canvas, &Canvas::objectBoxDrawn);
    QSignalSpy clicks(&canvas, &Canvas::nodeClicked);
    // (55, 50) is image (15.75, 10.25); (170, 131) is (44.5, 30.5): the pixels
    // whose centres lie between are x 16..44, y 11..30, i.e. edges [16, 45] × [11, 31].
    drag(&canvas, QPointF(55, 50), QPointF(170, 131), Qt::LeftButton, Qt::ShiftModifier);
    QCOMPARE(boxes.count(), 1);
    QCOMPARE(boxes.at(0).at(0).toRectF(), QRectF(QPointF(16, 11), QPointF(45, 31)));
    QCOMPARE(clicks.count(), 0);
    QVERIFY(near(canvas.pan(), QPointF(-10, 7))); // no pan
    // Dragged backwards and past the image: the same normalised box, clipped.
    drag(&canvas, QPointF(399, 299), QPointF(55, 50), Qt::LeftButton, Qt::ShiftModifier);
    QCOMPARE(boxes.count(), 2);
    QCOMPARE(boxes.at(1).at(0).toRectF(), QRectF(QPointF(16, 11), QPointF(64, 48)));
    // The object tool: without Shift.
    canvas.setObjectTool(true);
    drag(&canvas, QPointF(55, 50), QPointF(170, 131), Qt::LeftButton);
    QCOMPARE(boxes.count(), 3);
    QCOMPARE(boxes.at(2).at(0).toRectF(), QRectF(QPointF(16, 11), QPointF(45, 31)));
    // Esc during the drag cancels it.
    sendMouse(&canvas, QEvent::MouseButtonPress, QPointF(55, 50), Qt::LeftButton, Qt::LeftButton);
    sendMouse(&canvas, QEvent::MouseMove, QPointF(170, 131), Qt::NoButton, Qt::LeftButton);
    QTest::keyClick(&canvas, Qt::Key_Escape);
    sendMouse(&canvas, QEvent::MouseButtonRelease, QPointF(170, 131), Qt::LeftButton, Qt::NoButton);
    QCOMPARE(boxes.count(), 3);
    QCOMPARE(clicks.count(), 0);
}

void TestCanvas::wheelZoomKeepsPointFixed()
{
    Canvas canvas;
    showImageAt(canvas, 3, QPointF(15, -4));
    QSignalSpy views(&canvas, &Canvas::viewChanged);
    const QPointF at(123, 77);
    const QPointF before = canvas.widgetToImage(at);
    wheel(&canvas, at, 120);
    QVERIFY(std::fabs(canvas.zoom() - 3 * std::pow(2.0, 0.25)) < 1e-9);
    QVERIFY(near(canvas.widgetToImage(at), before, 1e-9));
    QCOMPARE(views.count(), 1);
    wheel(&canvas, at, -240);
    QVERIFY(std::fabs(canvas.zoom() - 3 * std::pow(2.0, -0.25)) < 1e-9);
    QVERIFY(near(canvas.widgetToImage(at), before, 1e-9));
    QVERIFY(!canvas.isFitted());
}

void TestCanvas::zoomKeys()
{
    Canvas canvas;
    canvas.resize(400, 300);
    canvas.setImage(makeImage());
    const double fit = canvas.zoom();
    const QPointF centre = canvas.viewCentre();
    QTest::keyClick(&canvas, Qt::Key_Equal, Qt::ControlModifier);
    QVERIFY(std::fabs(canvas.zoom() - fit * std::pow(2.0, 0.25)) < 1e-9);
    QVERIFY(near(canvas.viewCentre(), centre, 1e-9)); // about the centre
    QTest::keyClick(&canvas, Qt::Key_Minus, Qt::ControlModifier);
    QTest::keyClick(&canvas, Qt::Key_Minus, Qt::ControlModifier);
    QVERIFY(std::fabs(canvas.zoom() - fit * std::pow(2.0, -0.25)) < 1e-9);
    QVERIFY(!canvas.isFitted());
    QTest::keyClick(&canvas, Qt::Key_0, Qt::ControlModifier);
    QVERIFY(canvas.isFitted());
    QCOMPARE(canvas.zoom(), fit);
    // A fitted canvas follows resizes.
    canvas.show();
    QVERIFY(QTest::qWaitForWindowExposed(&canvas));
    canvas.resize(800, 600);
    QCOMPARE(canvas.zoom(), std::min((800 - 24) / 64.0, (600 - 24) / 48.0));
}

void TestCanvas::hover()
{
    Canvas canvas;
    showImageAt(canvas, 4, QPointF(-10, 7));
    QSignalSpy moves(&canvas, &Canvas::hovered), left(&canvas, &Canvas::hoverLeft);
    sendMouse(&canvas, QEvent::MouseMove, QPointF(150, 120), Qt::NoButton, Qt::NoButton);
    QCOMPARE(moves.count(), 1);
    QVERIFY(near(moves.at(0).at(0).toPointF(), QPointF(39.5, 27.75)));
    sendMouse(&canvas, QEvent::MouseMove, QPointF(2, 2), Qt::NoButton, Qt::NoButton); // off the image
    QCOMPARE(left.count(), 1);
    QCOMPARE(moves.count(), 1);
}

void TestCanvas::kernelInsetForDkColumns()
{
    ComparisonView view;
    view.resize(900, 700);
    view.setColumnCount(2, {QStringLiteral("regular"), QStringLiteral("dk")});
    view.setImage(makeImage());
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QVERIFY(!view.kernelInset(0)->isVisible() && !view.kernelInset(1)->isVisible() && !view.kernelInset(2));

    auto click = std::make_shared<ClickView>();
    click->image = makeImage();
    click->background = makeBackground();
    click->columns.push_back(makeColumn(QStringLiteral("regular"), QStringLiteral("conv"), only(&Parts::sampling)));
    click->columns.push_back(makeColumn(QStringLiteral("dk"), QStringLiteral("dk"), only(&Parts::sampling)));
    ColumnView& dk = click->columns[1];
    dk.hasKernel = true;
    figure::Heat heat; // a 5 × 5 scope: zero everywhere but the top-left weight
    heat.width = heat.height = 5;
    heat.values.assign(25, 0.f);
    heat.values[0] = 1.f;
    heat.colormap = "viridis";
    heat.opacity = 1;
    heat.contours.clear();
    dk.kernel.heat = heat;
    dk.kernel.points.push_back(figure::Point{2, 2, 1, 1, true});
    dk.kernel.moves.push_back({3, 3, 2, 2});
    dk.kernel.caption = {"block3 (4, 5), 3×3 from 5×5"};
    view.setClick(click);

    QVERIFY(!view.kernelInset(0)->isVisible());
    KernelInset* inset = view.kernelInset(1);
    QVERIFY(inset->isVisible());
    QVERIFY(inset->caption().contains(QStringLiteral("block3 (4, 5)")));
    // What it paints: the scope map (viridis top at the top-left cell, bottom elsewhere) and the tap's disc.
    const QImage shot = inset->view()->grab().toImage();
    const QRect r = shot.rect();
    const int cell = (std::min(r.width(), r.height()) - 6) / 5;
    const QPoint origin((r.width() - 5 * cell) / 2, (r.height() - 5 * cell) / 2);
    auto at = [&](double cx, double cy) { return QColor(shot.pixel(origin + QPoint(int((cx + 0.5) * cell), int((cy + 0.5) * cell)))); };
    auto rgb = [](uint32_t c) { return QColor(QRgb(0xff000000u | c)); };
    QVERIFY(distance(at(0, 0), rgb(figure::colormap("viridis", 1))) <= 3);
    QVERIFY(distance(at(4, 0), rgb(figure::colormap("viridis", 0))) <= 3);
    QVERIFY(distance(at(2, 2), rgb(figure::levelColor(1))) <= 40);

    // A new image drops the results, the inset too.
    view.setImage(makeImage());
    QVERIFY(!inset->isVisible());
}

void TestCanvas::comparisonColumns()
{
    ComparisonView view;
    view.resize(1200, 700);
    view.setColumnCount(3, {QStringLiteral("regular"), QStringLiteral("dcn_v1"), QStringLiteral("dcn_v2")});
    QCOMPARE(view.columnCount(), 3);
    QCOMPARE(view.columnTitle(1), QStringLiteral("dcn_v1"));
    QVERIFY(view.canvas(2) && !view.canvas(3));
    view.setImage(makeImage());
    for (int i = 0; i < 3; ++i)
        QVERIFY(view.canvas(i)->hasImage());
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));

    auto click = std::make_shared<ClickView>();
    click->image = makeImage();
    click->background = makeBackground();
    click->click = QPointF(32, 24);
    click->seconds = 1.5;
    click->columns.push_back(makeColumn(QStringLiteral("regular"), QStringLiteral("conv"), only(&Parts::sampling)));
    click->columns.push_back(makeColumn(QStringLiteral("dcn_v1"), QStringLiteral("dcn_v1"), only(&Parts::sampling)));
    click->columns.push_back(makeColumn(QStringLiteral("dcn_v2"), QStringLiteral("dcn_v2"),
        failing(QStringLiteral("CUDA out of memory while tracing block3"))));
    click->columns[0].metrics = {{QStringLiteral("erf_area90"), QStringLiteral("ERF 90 % area (px)"), 812, QStringLiteral("812")},
        {QStringLiteral("saliency_area"), QStringLiteral("saliency area"), 0.12, QStringLiteral("12.0 %")}};
    click->columns[1].metrics = {{QStringLiteral("saliency_area"), QStringLiteral("saliency area"), 0.08, QStringLiteral("8.0 %")},
        {QStringLiteral("sampling_spread"), QStringLiteral("sampling spread (px)"), 6.25, QStringLiteral("6.3")}};
    click->columns[1].timing = QStringLiteral("sampling 31 ms");
    view.setClick(click);

    QCOMPARE(view.columnCount(), 3);
    QCOMPARE(view.columnBadge(0), QStringLiteral("Conv")); // as the layer list names it (ui/view/kind_badge.h)
    QCOMPARE(view.columnBadge(1), QStringLiteral("DCNv1"));
    QVERIFY(view.columnTiming(1).contains(QStringLiteral("sampling 31 ms")));
    // The error column shows its message instead of a canvas.
    QVERIFY(view.columnShowsError(2));
    QCOMPARE(view.columnError(2), QStringLiteral("CUDA out of memory while tracing block3"));
    QVERIFY(!view.canvas(2)->isVisible());
    QVERIFY(view.canvas(0)->isVisible() && !view.columnShowsError(0));

    // Metrics: one row per key in order of first appearance, one column per model.
    QTableWidget* t = view.metricsTable();
    QCOMPARE(t->rowCount(), 3);
    QCOMPARE(t->columnCount(), 3);
    QCOMPARE(t->verticalHeaderItem(0)->text(), QStringLiteral("ERF 90 % area (px)"));
    QCOMPARE(t->verticalHeaderItem(1)->text(), QStringLiteral("saliency area"));
    QCOMPARE(t->verticalHeaderItem(2)->text(), QStringLiteral("sampling spread (px)"));
    QCOMPARE(t->horizontalHeaderItem(2)->text(), QStringLiteral("dcn_v2"));
    QCOMPARE(t->item(0, 0)->text(), QStringLiteral("812"));
    QCOMPARE(t->item(1, 0)->text(), QStringLiteral("12.0 %"));
    QCOMPARE(t->item(1, 1)->text(), QStringLiteral("8.0 %"));
    QCOMPARE(t->item(2, 1)->text(), QStringLiteral("6.3"));
    QCOMPARE(t->item(0, 1)->text(), QStringLiteral("\u2014")); // absent

    // The shared overlays reach every canvas: the level-1 point shows, then goes.
    Canvas* c1 = view.canvas(1);
    QVERIFY(distance(pixelAt(*c1, QPointF(12, 10)), fromRgb(figure::levelColor(1))) <= 3);
    const CanvasOverlays o = nothing();
    view.setOverlays(o);
    for (int i = 0; i < 3; ++i)
        QVERIFY(view.canvas(i)->overlays() == o);
    QVERIFY(distance(pixelAt(*c1, QPointF(12, 10)), kBg) <= 1);

    // DEFORMSCOPE_CANVAS_SCREENSHOT=<file.png>: a picture of the view with every overlay on, to look at.
    const QByteArray shot = qgetenv("DEFORMSCOPE_CANVAS_SCREENSHOT");
    if (!shot.isEmpty()) {
        CanvasOverlays all;
        all.offsets = CanvasOverlays::Offsets::PerTap;
        all.modulation = true;
        auto full = std::make_shared<ClickView>(*click);
        Parts every;
        every.sampling = every.erf = every.saliency = every.offsets = every.modulation = true;
        full->columns[1] = makeColumn(QStringLiteral("dcn_v1"), QStringLiteral("dcn_v1"), every);
        full->columns[1].metrics = click->columns[1].metrics;
        full->objectBox = QRectF(40, 20, 20, 20);
        view.setClick(full);
        view.setOverlays(all);
        QTest::qWait(50); // let the layouts settle
        QVERIFY(view.grab().save(QString::fromLocal8Bit(shot)));
        view.setClick(click);
        view.setOverlays(o);
    }

    // A later click with two models: two columns.
    auto two = std::make_shared<ClickView>(*click);
    two->columns.pop_back();
    view.setClick(two);
    QCOMPARE(view.columnCount(), 2);
    QVERIFY(view.canvas(1)->overlays() == o);
    QVERIFY(!view.columnShowsError(1));
}

void TestCanvas::comparisonSyncedView()
{
    ComparisonView view;
    QVERIFY(showThreeColumns(view));
    Canvas* a = view.canvas(0);
    Canvas* b = view.canvas(1);
    Canvas* c = view.canvas(2);
    // Fitted columns share one zoom even where their widths differ by a pixel.
    QCOMPARE(a->zoom(), b->zoom());
    QCOMPARE(a->zoom(), c->zoom());
    QVERIFY(a->isFitted() && b->isFitted() && c->isFitted());
    a->setZoom(3);
    QCOMPARE(b->zoom(), 3.0);
    QCOMPARE(c->zoom(), 3.0);
    QVERIFY(near(b->viewCentre(), a->viewCentre(), 1e-9));
    // Wheel on the middle one zooms all about the same image point.
    const QPointF at(100, 90);
    const QPointF under = b->widgetToImage(at);
    wheel(b, at, 240);
    QVERIFY(std::fabs(b->zoom() - 3 * std::sqrt(2.0)) < 1e-9);
    QCOMPARE(a->zoom(), b->zoom());
    QCOMPARE(c->zoom(), b->zoom());
    QVERIFY(near(b->widgetToImage(at), under, 1e-9));
    // The others keep the same image point at their centres (columns may differ by a pixel in width).
    QVERIFY(near(a->viewCentre(), b->viewCentre(), 1e-9));
    QVERIFY(near(a->widgetToImage(at), under, 0.5 / a->zoom() + 1e-9));
    // Pan one, all follow; fit one, all fit.
    drag(c, QPointF(100, 100), QPointF(130, 110), Qt::MiddleButton);
    QVERIFY(near(a->viewCentre(), c->viewCentre(), 1e-9));
    QVERIFY(near(a->pan(), c->pan(), 1e-6));
    QTest::keyClick(b, Qt::Key_0, Qt::ControlModifier);
    QVERIFY(a->isFitted() && b->isFitted() && c->isFitted());
    QCOMPARE(a->zoom(), b->zoom());
    QCOMPARE(c->zoom(), b->zoom());
}

void TestCanvas::comparisonClickOnce()
{
    ComparisonView view;
    QVERIFY(showThreeColumns(view));
    QSignalSpy spy(&view, &ComparisonView::nodeClicked);
    Canvas* b = view.canvas(1);
    const QPoint at(b->width() / 2 + 7, b->height() / 2 - 5);
    const QPointF expected = b->widgetToImage(at);
    QTest::mouseClick(b, Qt::LeftButton, Qt::NoModifier, at);
    QCOMPARE(spy.count(), 1);
    QVERIFY(near(spy.at(0).at(0).toPointF(), expected));
    QSignalSpy boxes(&view, &ComparisonView::objectBoxDrawn);
    drag(view.canvas(2), QPointF(at), QPointF(at) + QPointF(60, 40), Qt::LeftButton, Qt::ShiftModifier);
    QCOMPARE(boxes.count(), 1);
    QCOMPARE(spy.count(), 1);
}

void TestCanvas::overlaysJson()
{
    const CanvasOverlays defaults;
    QVERIFY(CanvasOverlays::fromJson(QJsonObject()) == defaults);
    QVERIFY(CanvasOverlays::fromJson(defaults.toJson()) == defaults);

    CanvasOverlays o;
    o.sampling = false;
    o.setLevelShown(2, false);
    o.setLevelShown(7, false);
    o.weightShading = false;
    o.offsets = CanvasOverlays::Offsets::PerTap;
    o.modulation = true;
    o.erf = false;
    o.erfColormap = QStringLiteral("viridis");
    o.erfLog = true;
    o.erfContours = false;
    o.saliencyOutline = false;
    o.saliencyMasked = false;
    o.object = false;
    QVERIFY(o != defaults);
    // Through text, as settings and sessions store it.
    const QByteArray text = QJsonDocument(o.toJson()).toJson();
    const CanvasOverlays back = CanvasOverlays::fromJson(QJsonDocument::fromJson(text).object());
    QVERIFY(back == o);
    QVERIFY(!back.levelShown(2) && back.levelShown(3) && !back.levelShown(7) && back.levelShown(8));
    QVERIFY(back.levelShown(12)); // deeper levels follow level 8
    QCOMPARE(o.toJson().value(QStringLiteral("offsets")).toString(), QStringLiteral("per_tap"));
    o.offsets = CanvasOverlays::Offsets::Mean;
    QVERIFY(CanvasOverlays::fromJson(o.toJson()) == o);
    // Each field matters to ==.
    CanvasOverlays d = defaults;
    d.erfContours = false;
    QVERIFY(d != defaults);
    // Mistyped values keep the defaults.
    QJsonObject bad;
    bad.insert(QStringLiteral("erf"), QStringLiteral("yes"));
    bad.insert(QStringLiteral("levels"), 3);
    bad.insert(QStringLiteral("offsets"), QStringLiteral("sideways"));
    QVERIFY(CanvasOverlays::fromJson(bad) == defaults);
}

QTEST_MAIN(TestCanvas)
#include "tst_canvas.moc"
