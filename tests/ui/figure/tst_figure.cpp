// Tests of ui_figure: colour maps, what paintPanel() puts at known pixels
// (points, heat maps, the contours and outlines it is given, the offset field's
// arrows and modulation map at the target's scale), the three file formats,
// single panels, error paths and determinism — and of core/analysis's mass
// regions, contours and region outlines (core_contours), which the renderer
// draws. Runs on the offscreen platform (QTEST_MAIN makes a QGuiApplication:
// text needs fonts).
//
// DEFORMSCOPE_FIGURE_EXAMPLE=<dir> also writes the example figure (3 × 3 panels
// of made-up but plausible data) as example.png, .svg and .pdf into <dir>.
#include "core/analysis/contours.h"
#include "ui/figure/figure.h"

#include <QBuffer>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QImage>
#include <QPainter>
#include <QRegularExpression>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <functional>

using namespace deformscope::figure;
namespace analysis = deformscope::analysis;

namespace {

QRgb qrgbOf(uint32_t c) { return qRgb(int((c >> 16) & 0xff), int((c >> 8) & 0xff), int(c & 0xff)); }

QString hex(QRgb c) { return QStringLiteral("#%1").arg(c & 0xffffff, 6, 16, QLatin1Char('0')); }

// Largest per-channel difference.
int channelDistance(QRgb a, QRgb b)
{
    return std::max({std::abs(qRed(a) - qRed(b)), std::abs(qGreen(a) - qGreen(b)), std::abs(qBlue(a) - qBlue(b))});
}

Image uniformImage(int w, int h, uint8_t r, uint8_t g, uint8_t b)
{
    Image im;
    im.width = w;
    im.height = h;
    im.rgb.resize(size_t(w) * h * 3);
    for (size_t i = 0; i < im.rgb.size(); i += 3)
        im.rgb[i] = r, im.rgb[i + 1] = g, im.rgb[i + 2] = b;
    return im;
}

// A panel of an opaque width × height heat map without contours, value(x, y),
// over a uniform background of colour (r, g, b).
Panel heatPanel(int width, int height, uint8_t r, uint8_t g, uint8_t b, const std::function<float(int, int)>& value)
{
    Panel p;
    p.background = uniformImage(width, height, r, g, b);
    Heat heat;
    heat.width = width, heat.height = height;
    heat.values.resize(size_t(width) * height);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            heat.values[size_t(y) * width + x] = value(x, y);
    heat.opacity = 1;
    p.heat = heat;
    return p;
}

// A 64 × 48 panel with a deformable layer's field: 12 × 16 cells of 4 px
// centred at 4·f, 3 × 3 taps of dilation 2, every offset (+3, 0), mask 0.8
// (cell (1, 1): 0.2), anchored on the node's cell `anchor` (fx, fy).
Panel fieldPanel(std::array<int, 2> anchor)
{
    Panel p;
    p.background = uniformImage(64, 48, 90, 100, 110);
    OffsetField& f = p.offsets;
    f.featureH = 12, f.featureW = 16, f.taps = 9;
    f.start = {0, 0};
    f.jump = {4, 4};
    f.anchor = anchor;
    for (int fy = 0; fy < 12; ++fy)
        for (int fx = 0; fx < 16; ++fx) {
            for (int t = 0; t < 9; ++t)
                f.arrows.push_back(
                    OffsetArrow{float(4 * fx + (t % 3 - 1) * 2), float(4 * fy + (t / 3 - 1) * 2), 3.0f, 0.0f, 0.8f});
            f.modulation.push_back(fx == 1 && fy == 1 ? 0.2 : 0.8);
        }
    return p;
}

// A 20 × 20 panel of colour (200, 100, 50) whose saliency mask keeps the left half.
Panel halfKeptPanel()
{
    Panel p;
    p.background = uniformImage(20, 20, 200, 100, 50);
    p.mask.assign(400, 0);
    for (int y = 0; y < 20; ++y)
        for (int x = 0; x < 10; ++x)
            p.mask[size_t(y) * 20 + x] = 1;
    return p;
}

// The 64 × 48 field panel painted at `scale` pixels per image pixel.
QImage renderField(const Panel& panel, int scale)
{
    QImage image(64 * scale, 48 * scale, QImage::Format_RGB32);
    image.fill(Qt::white);
    QPainter painter(&image);
    paintPanel(painter, panel, QRectF(0, 0, 64 * scale, 48 * scale));
    painter.end();
    return image;
}

// The colour at image point (x, y) of a panel painted at `scale` pixels per image pixel.
QRgb at(const QImage& image, double x, double y, double scale)
{
    return image.pixel(int(std::floor((x + 0.5) * scale)), int(std::floor((y + 0.5) * scale)));
}

// A file's bytes (empty when it cannot be read).
QByteArray readFile(const QString& path)
{
    QFile in(path);
    return in.open(QIODevice::ReadOnly) ? in.readAll() : QByteArray();
}

// Paints one panel into a white image of the target's size.
QImage renderPanel(const Panel& panel, int size)
{
    QImage image(size, size, QImage::Format_RGB32);
    image.fill(Qt::white);
    QPainter painter(&image);
    paintPanel(painter, panel, QRectF(0, 0, size, size));
    painter.end();
    return image;
}

double signedArea(const analysis::Polygon& poly)
{
    double a = 0;
    for (size_t i = 0; i < poly.size(); ++i) {
        const auto& p = poly[i];
        const auto& q = poly[(i + 1) % poly.size()];
        a += p[0] * q[1] - q[0] * p[1];
    }
    return a / 2; // > 0: clockwise on screen (y down)
}

// A small deterministic generator for the example's made-up data.
struct Lcg {
    uint64_t state;
    double uniform()
    {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return double(state >> 11) / double(1ULL << 53);
    }
    double normal() { return std::sqrt(-2 * std::log(1 - uniform())) * std::cos(6.283185307179586 * uniform()); }
};

// 3 × 3 panels: rows sampling / ERF / saliency, columns regular / DCNv1 /
// DCNv2, on a 96 × 96 image of a bright ellipse on a gradient.
Figure makeExampleFigure()
{
    const int W = 96, H = 96;
    const double ox = 50, oy = 46, ax = 26, ay = 18; // the object: an ellipse
    auto onObject = [&](double x, double y) {
        return ((x - ox) / ax) * ((x - ox) / ax) + ((y - oy) / ay) * ((y - oy) / ay) <= 1;
    };
    Image bg;
    bg.width = W, bg.height = H;
    bg.rgb.resize(size_t(W) * H * 3);
    std::vector<uint8_t> object(size_t(W) * H);
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
            const bool in = onObject(x, y);
            object[size_t(y) * W + x] = in;
            const double t = (x + y) / double(W + H);
            const double tex = 8 * std::sin(x * 0.9) * std::sin(y * 0.7);
            uint8_t* px = &bg.rgb[(size_t(y) * W + x) * 3];
            if (in) {
                px[0] = uint8_t(std::clamp(200 + tex, 0.0, 255.0));
                px[1] = uint8_t(std::clamp(196 + tex, 0.0, 255.0));
                px[2] = uint8_t(std::clamp(184 + tex, 0.0, 255.0));
            } else {
                px[0] = uint8_t(std::clamp(60 + 90 * t + tex, 0.0, 255.0));
                px[1] = uint8_t(std::clamp(90 + 80 * t + tex, 0.0, 255.0));
                px[2] = uint8_t(std::clamp(120 + 60 * (1 - t) + tex, 0.0, 255.0));
            }
        }
    const double nx = 44, ny = 44; // the node

    Figure f;
    f.title = "Where the node at (44, 44) of head.conv3 looks";
    f.rows = 3;
    f.cols = 3;
    f.rowLabels = {"sampling locations", "effective receptive field", "saliency region"};
    f.colLabels = {"regular conv", "DCNv1", "DCNv2"};
    f.footer = "Image shapes_017.png, 96 \u00d7 96; node (44, 44) of head.conv3, feature cell 8 \u00d7 8 px; "
               "3 levels of sampling points (9 + 81 + 729); ERF = |\u2202y/\u2202x| summed over channels; "
               "saliency: smallest region keeping the response within 5 %.";
    f.panelSize = 200;

    for (int row = 0; row < 3; ++row)
        for (int m = 0; m < 3; ++m) {
            Panel p;
            p.background = bg;
            Lcg rng{uint64_t(1234 + m)};
            if (row == 0) {
                // Level k: 3 × 3 taps around each level k−1 point; deformable
                // models stretch the taps towards the object's extent.
                struct P { double x, y, w; };
                std::vector<P> parents{{nx, ny, 1.0}};
                const double spacing[3] = {8, 5, 3};
                for (int level = 1; level <= 3; ++level) {
                    std::vector<P> next;
                    for (const P& q : parents)
                        for (int j = -1; j <= 1; ++j)
                            for (int i = -1; i <= 1; ++i) {
                                double dx = i * spacing[level - 1], dy = j * spacing[level - 1];
                                if (m > 0) {
                                    dx = dx * (1.9 - 0.25 * level) + 2.2 * rng.normal();
                                    dy = dy * (1.5 - 0.15 * level) + 2.2 * rng.normal();
                                }
                                const double x = q.x + dx, y = q.y + dy;
                                double w = q.w * (0.5 + rng.uniform()) / 9;
                                if (m == 2)
                                    w *= onObject(x, y) ? 1.6 : 0.12; // modulation
                                next.push_back({x, y, w});
                                Point pt;
                                pt.x = x, pt.y = y, pt.level = level, pt.weight = w;
                                pt.inside = x >= -0.5 && y >= -0.5 && x <= W - 0.5 && y <= H - 0.5;
                                p.points.push_back(pt);
                            }
                    parents = next;
                }
                p.levels = 3;
                p.objectBox = std::array<double, 4>{ox - ax, oy - ay, ox + ax, oy + ay};
                p.caption = {QStringLiteral("%1 points, spread %2 px").arg(p.points.size())
                                 .arg(m == 0 ? 14.2 : m == 1 ? 27.9 : 24.6).toStdString()};
            } else if (row == 1) {
                Heat heat;
                heat.width = W, heat.height = H;
                heat.values.resize(size_t(W) * H);
                const double sxx = m == 0 ? 7 : m == 1 ? 14 : 16, syy = m == 0 ? 7 : m == 1 ? 12 : 10;
                for (int y = 0; y < H; ++y)
                    for (int x = 0; x < W; ++x) {
                        double v = std::exp(-0.5 * ((x - nx) * (x - nx) / (sxx * sxx) + (y - ny) * (y - ny) / (syy * syy)));
                        if (m == 2 && !onObject(x, y))
                            v *= 0.25;
                        heat.values[size_t(y) * W + x] = float(v * 3.2e-3 * (1 + 0.15 * std::sin(x * 1.3 + y)));
                    }
                heat.contours = analysis::massContours(heat.values, W, H); // 50 % / 90 %, as for an ERF
                p.heat = heat;
                p.caption = {m == 0 ? "50 % of mass in 310 px\u00b2" : m == 1 ? "50 % of mass in 1,046 px\u00b2"
                                                                              : "50 % of mass in 884 px\u00b2"};
            } else {
                p.mask.assign(size_t(W) * H, 0);
                const double r = m == 0 ? 11 : m == 1 ? 19 : 16;
                for (int y = 0; y < H; ++y)
                    for (int x = 0; x < W; ++x) {
                        bool keep = (x - nx) * (x - nx) + (y - ny) * (y - ny) <= r * r;
                        if (m == 2)
                            keep = keep && onObject(x, y);
                        p.mask[size_t(y) * W + x] = keep;
                    }
                p.objectMask = object;
                p.caption = {m == 0 ? "kept 4.1 % of the image" : m == 1 ? "kept 12.3 % of the image"
                                                                         : "kept 8.8 % of the image",
                    "response within 5 %"};
            }
            p.node = std::array<double, 2>{nx, ny};
            p.nodeCell = {8, 8};
            f.panels.push_back(p);
        }
    return f;
}

} // namespace

class TestFigure : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void colormapTables_data();
    void colormapTables();
    void colormapInterpolates();
    void levelColorsDistinct();
    void massThreshold();
    void massRegionWithTies();
    void regionOutline_data();
    void regionOutline();
    void pointHasLevelColour();
    void heavyPointOnTop();
    void outsidePointIsHollow();
    void moveIsALineFromARing();
    void heatColours();
    void heatLogScale();
    void contourOnRegionBoundary();
    void massContoursOnTheGrid();
    void maskDimsOutside();
    void maskOutlineWithoutDimming();
    void offsetArrowsAtTheTargetScale();
    void modulationMapCells();
    void legendNamesTheOffsetField();
    void savePanelCutsThePage();
    void paintPanelRestoresPainter();
    void fontsRender();
    void savePng();
    void saveSvg();
    void savePdf();
    void saveErrors_data();
    void saveErrors();
    void failedSaveKeepsExistingFile();
    void blankCells();
    void deterministicPng();
    void exampleFigure();

private:
    QTemporaryDir m_dir;
    QString path(const QString& name) const { return m_dir.filePath(name); }
};

void TestFigure::colormapTables_data()
{
    QTest::addColumn<QString>("name");
    QTest::addColumn<uint>("low");
    QTest::addColumn<uint>("high");
    // First and last entries of matplotlib's tables.
    QTest::newRow("inferno") << "inferno" << 0x000004u << 0xfcffa4u;
    QTest::newRow("viridis") << "viridis" << 0x440154u << 0xfde725u;
    QTest::newRow("magma") << "magma" << 0x000004u << 0xfcfdbfu;
    QTest::newRow("plasma") << "plasma" << 0x0d0887u << 0xf0f921u;
    QTest::newRow("gray") << "gray" << 0x000000u << 0xffffffu;
    QTest::newRow("coolwarm") << "coolwarm" << 0x3b4cc0u << 0xb40426u;
    QTest::newRow("unknown is inferno") << "jet" << 0x000004u << 0xfcffa4u;
}

void TestFigure::colormapTables()
{
    QFETCH(QString, name);
    QFETCH(uint, low);
    QFETCH(uint, high);
    const std::string n = name.toStdString();
    QCOMPARE(colormap(n, 0.0), low);
    QCOMPARE(colormap(n, 1.0), high);
    QCOMPARE(colormap(n, -3.0), low); // clamped
    QCOMPARE(colormap(n, 7.0), high);
    QCOMPARE(colormap(n, std::nan("")), low);
}

void TestFigure::colormapInterpolates()
{
    // Entries 127 and 128 of viridis are #21908d and #21918c; halfway lies between.
    const QRgb mid = qrgbOf(colormap("viridis", 0.5));
    QVERIFY2(channelDistance(mid, qRgb(0x21, 0x91, 0x8c)) <= 1, qPrintable(hex(mid)));
    // coolwarm's middle anchor is the neutral grey.
    QCOMPARE(colormap("coolwarm", 0.5), 0xddddddu);
    QCOMPARE(colormap("gray", 0.5), 0x808080u);
    // Monotone luminance for the perceptual maps.
    for (const char* name : {"inferno", "viridis", "magma"}) {
        double previous = -1;
        for (int i = 0; i <= 20; ++i) {
            const QRgb c = qrgbOf(colormap(name, i / 20.0));
            const double l = 0.299 * qRed(c) + 0.587 * qGreen(c) + 0.114 * qBlue(c);
            QVERIFY2(l > previous - 0.5, name);
            previous = l;
        }
    }
}

void TestFigure::levelColorsDistinct()
{
    for (int a = 1; a <= 8; ++a)
        for (int b = a + 1; b <= 8; ++b)
            QVERIFY2(channelDistance(qrgbOf(levelColor(a)), qrgbOf(levelColor(b))) >= 64,
                qPrintable(QStringLiteral("levels %1 and %2").arg(a).arg(b)));
    QCOMPARE(levelColor(9), levelColor(1)); // cycles
    QVERIFY(levelColor(0) != levelColor(1));
}

void TestFigure::massThreshold()
{
    // 10 × 10: one pixel of 50, four of 10, the rest 0.1: total 99.5.
    std::vector<float> v(100, 0.1f);
    v[44] = 50;
    v[43] = v[45] = v[34] = v[54] = 10;
    QCOMPARE(analysis::massThreshold(v, 0.5), 50.0); // 50 ≥ 49.75
    QCOMPARE(analysis::massThreshold(v, 0.9), 10.0); // 90 ≥ 89.55
    std::vector<uint8_t> half = analysis::massRegion(v, 0.5), most = analysis::massRegion(v, 0.9);
    QCOMPARE(std::count(half.begin(), half.end(), 1), 1L);
    QCOMPARE(half[44], uint8_t(1));
    QCOMPARE(std::count(most.begin(), most.end(), 1), 5L);
    for (int i : {43, 44, 45, 34, 54})
        QCOMPARE(most[size_t(i)], uint8_t(1));
    // All of the mass: every positive pixel; none: nothing.
    const std::vector<uint8_t> all = analysis::massRegion(v, 1.0);
    QCOMPARE(std::count(all.begin(), all.end(), 1), 100L);
    QVERIFY(std::isinf(analysis::massThreshold(v, 0.0)));
    QVERIFY(std::isinf(analysis::massThreshold(std::vector<float>(9, 0.0f), 0.5)));
    // Negative and non-finite values carry no mass.
    std::vector<float> odd{-100.0f, std::nanf(""), 1.0f, 3.0f};
    QCOMPARE(analysis::massThreshold(odd, 0.7), 3.0);
    QCOMPARE(analysis::massThreshold(odd, 0.8), 1.0);
    const std::vector<uint8_t> r = analysis::massRegion(odd, 0.8);
    QCOMPARE(r, (std::vector<uint8_t>{0, 0, 1, 1}));
}

void TestFigure::massRegionWithTies()
{
    // A flat 4 × 4 block holding all the mass: any fraction keeps the whole block.
    std::vector<float> v(64, 0.0f);
    for (int y = 2; y < 6; ++y)
        for (int x = 2; x < 6; ++x)
            v[size_t(y) * 8 + x] = 1.0f;
    const std::vector<uint8_t> r = analysis::massRegion(v, 0.3);
    QCOMPARE(std::count(r.begin(), r.end(), 1), 16L);
}

void TestFigure::regionOutline_data()
{
    QTest::addColumn<int>("width");
    QTest::addColumn<int>("height");
    QTest::addColumn<QString>("pattern"); // rows of '#' (kept) and '.'
    QTest::addColumn<int>("loops");
    QTest::addColumn<int>("vertices"); // over all loops
    QTest::addColumn<double>("area");  // Σ signed area: the kept pixel count

    QTest::newRow("single pixel") << 3 << 3 << "... .#. ..." << 1 << 4 << 1.0;
    QTest::newRow("full grid") << 2 << 2 << "## ##" << 1 << 4 << 4.0;
    QTest::newRow("L shape") << 3 << 3 << "#.. #.. ###" << 1 << 6 << 5.0;
    QTest::newRow("ring with a hole") << 3 << 3 << "### #.# ###" << 2 << 8 << 8.0;
    QTest::newRow("diagonal touch") << 2 << 2 << "#. .#" << 2 << 8 << 2.0;
    QTest::newRow("two blobs") << 5 << 1 << "##.##" << 2 << 8 << 4.0;
    QTest::newRow("empty") << 4 << 4 << ".... .... .... ...." << 0 << 0 << 0.0;
}

void TestFigure::regionOutline()
{
    QFETCH(int, width);
    QFETCH(int, height);
    QFETCH(QString, pattern);
    QFETCH(int, loops);
    QFETCH(int, vertices);
    QFETCH(double, area);
    const QString cells = QString(pattern).remove(QLatin1Char(' '));
    QCOMPARE(cells.size(), width * height);
    std::vector<uint8_t> region(size_t(width) * height);
    for (int i = 0; i < cells.size(); ++i)
        region[size_t(i)] = cells[i] == QLatin1Char('#');
    const std::vector<analysis::Polygon> out = analysis::regionOutline(region, width, height);
    QCOMPARE(int(out.size()), loops);
    int n = 0;
    double a = 0;
    for (const analysis::Polygon& poly : out) {
        n += int(poly.size());
        a += signedArea(poly);
        for (const auto& v : poly) { // on the pixel-edge lattice, inside the grid
            QCOMPARE(v[0], std::round(v[0]));
            QVERIFY(v[0] >= 0 && v[0] <= width && v[1] >= 0 && v[1] <= height);
        }
    }
    QCOMPARE(n, vertices);
    QCOMPARE(a, area);
    QVERIFY(analysis::regionOutline(region, width + 1, height).empty()); // wrong size: nothing
}

void TestFigure::pointHasLevelColour()
{
    Panel p;
    p.background = uniformImage(32, 32, 128, 128, 128);
    Point pt;
    pt.x = 10, pt.y = 20, pt.level = 2, pt.weight = 1;
    p.points.push_back(pt);
    const QImage image = renderPanel(p, 320); // 10 pixels per image pixel: centre (105, 205)
    QCOMPARE(hex(image.pixel(105, 205)), hex(qrgbOf(levelColor(2))));
    QCOMPARE(hex(image.pixel(140, 205)), hex(qRgb(128, 128, 128))); // well away from it
}

void TestFigure::heavyPointOnTop()
{
    Panel p;
    p.background = uniformImage(32, 32, 128, 128, 128);
    Point heavy, light;
    heavy.x = light.x = 16, heavy.y = light.y = 16;
    heavy.level = 1, heavy.weight = 5;
    light.level = 3, light.weight = 1;
    p.points = {heavy, light}; // light one last in the list, still drawn first
    const QImage image = renderPanel(p, 320);
    QCOMPARE(hex(image.pixel(165, 165)), hex(qrgbOf(levelColor(1))));
}

void TestFigure::outsidePointIsHollow()
{
    Panel p;
    p.background = uniformImage(32, 32, 128, 128, 128);
    Point pt;
    pt.x = 10, pt.y = 10, pt.level = 1, pt.weight = 1, pt.inside = false;
    p.points.push_back(pt);
    const QImage image = renderPanel(p, 512); // unit 2: ring radius about 8 px around (168, 168)
    QCOMPARE(hex(image.pixel(168, 168)), hex(qRgb(128, 128, 128)));
    bool ring = false;
    for (int dx = 4; dx <= 10; ++dx)
        ring = ring || channelDistance(image.pixel(168 + dx, 168), qrgbOf(levelColor(1))) <= 40;
    QVERIFY(ring);
}

void TestFigure::moveIsALineFromARing()
{
    // A Deformable Kernel tap's move: white line from a ring at the base (hollow) to the read position.
    Panel p;
    p.background = uniformImage(32, 32, 128, 128, 128);
    p.moves.push_back({4, 16, 24, 16}); // horizontal along image row 16: screen y 330 at 20 px per pixel
    const QImage image = renderPanel(p, 640);  // unit 2.5: a 2.25 px line, ring radius 5.5 px around (90, 330)
    QVERIFY(channelDistance(image.pixel(290, 330), qRgb(255, 255, 255)) <= 40); // on the line
    QVERIFY(channelDistance(image.pixel(290, 350), qRgb(128, 128, 128)) <= 10); // off it
    QVERIFY(channelDistance(image.pixel(90, 330), qRgb(128, 128, 128)) <= 10);  // the ring's inside stays clear
    QVERIFY(channelDistance(image.pixel(600, 330), qRgb(128, 128, 128)) <= 10); // past the end
    Panel none = p;
    none.moves.clear();
    QVERIFY(channelDistance(renderPanel(none, 640).pixel(290, 330), qRgb(128, 128, 128)) <= 10);
}

void TestFigure::heatColours()
{
    Panel p = heatPanel(16, 16, 30, 200, 90,
        [](int x, int y) { return float(std::exp(-((x - 5) * (x - 5) + (y - 9) * (y - 9)) / 8.0) - 0.001); });
    QImage image = renderPanel(p, 160); // 10 px per heat pixel
    QCOMPARE(hex(image.pixel(55, 95)), hex(qrgbOf(colormap("inferno", 1.0)))); // the hottest pixel
    QCOMPARE(hex(image.pixel(155, 5)), hex(qrgbOf(colormap("inferno", 0.0)))); // negative: bottom

    // Half opacity: half the colour, half the greyed background.
    p.heat->opacity = 0.5;
    p.heat->colormap = "viridis";
    image = renderPanel(p, 160);
    const double grey = 0.299 * 30 + 0.587 * 200 + 0.114 * 90;
    const QRgb top = qrgbOf(colormap("viridis", 1.0));
    const QRgb expected = qRgb(int(std::lround(0.5 * grey + 0.5 * qRed(top))),
        int(std::lround(0.5 * grey + 0.5 * qGreen(top))), int(std::lround(0.5 * grey + 0.5 * qBlue(top))));
    QVERIFY2(channelDistance(image.pixel(55, 95), expected) <= 1, qPrintable(hex(image.pixel(55, 95))));

    // Signed: the most negative value gets the map's bottom, zero its middle.
    p.heat->isSigned = true;
    p.heat->opacity = 1;
    p.heat->colormap = "coolwarm";
    std::fill(p.heat->values.begin(), p.heat->values.end(), 0.0f);
    p.heat->values[0] = -2.0f;
    p.heat->values[1] = 1.0f;
    image = renderPanel(p, 160);
    QCOMPARE(hex(image.pixel(5, 5)), hex(qrgbOf(colormap("coolwarm", 0.0))));
    QCOMPARE(hex(image.pixel(15, 5)), hex(qrgbOf(colormap("coolwarm", 0.75))));
    QCOMPARE(hex(image.pixel(85, 85)), hex(qrgbOf(colormap("coolwarm", 0.5))));
}

void TestFigure::heatLogScale()
{
    const float values[4] = {1000.0f, 1.0f, 0.0f, 100.0f};
    Panel p = heatPanel(4, 1, 0, 0, 0, [&](int x, int) { return values[x]; });
    p.heat->log = true;
    QImage image(400, 100, QImage::Format_RGB32);
    image.fill(Qt::white);
    QPainter painter(&image);
    paintPanel(painter, p, QRectF(0, 0, 400, 100));
    painter.end();
    const double top = std::log10(1001.0);
    QCOMPARE(hex(image.pixel(50, 50)), hex(qrgbOf(colormap("inferno", 1.0))));
    QCOMPARE(hex(image.pixel(150, 50)), hex(qrgbOf(colormap("inferno", std::log10(2.0) / top))));
    QCOMPARE(hex(image.pixel(250, 50)), hex(qrgbOf(colormap("inferno", 0.0))));
    QCOMPARE(hex(image.pixel(350, 50)), hex(qrgbOf(colormap("inferno", std::log10(101.0) / top))));
}

void TestFigure::contourOnRegionBoundary()
{
    // All the mass in columns 2..5 of rows 2..5: the 50 % region is that block,
    // its left edge at x = 2 heat pixels = 128 px of a 512 px panel (unit 2: a
    // 2 px white line over 127..129).
    Panel p = heatPanel(8, 8, 0, 0, 0, [](int x, int y) { return x >= 2 && x < 6 && y >= 2 && y < 6 ? 1.0f : 0.0f; });
    const QImage plain = renderPanel(p, 512);
    QCOMPARE(hex(plain.pixel(127, 256)), hex(qrgbOf(colormap("inferno", 0.0))));
    QCOMPARE(hex(plain.pixel(128, 256)), hex(qrgbOf(colormap("inferno", 1.0))));
    p.heat->contours = analysis::massContours(p.heat->values, 8, 8, {{0.5}, 0.0}); // unsmoothed: the exact pixel boundary
    const QImage contoured = renderPanel(p, 512);
    QCOMPARE(hex(contoured.pixel(127, 256)), hex(qRgb(255, 255, 255)));
    QCOMPARE(hex(contoured.pixel(128, 256)), hex(qRgb(255, 255, 255)));
    QCOMPARE(hex(contoured.pixel(64, 256)), hex(plain.pixel(64, 256)));   // away from it
    QCOMPARE(hex(contoured.pixel(256, 256)), hex(plain.pixel(256, 256))); // inside it
}

void TestFigure::massContoursOnTheGrid()
{
    // The 4 × 4 block of contourOnRegionBoundary, unsmoothed: one square whose
    // corners are the block's pixel edges, in pixel-centre coordinates.
    std::vector<float> v(64, 0.0f);
    for (int y = 2; y < 6; ++y)
        for (int x = 2; x < 6; ++x)
            v[size_t(y) * 8 + x] = 1.0f;
    const auto exact = analysis::massContours(v, 8, 8, {{0.5, 1.5}, 0.0});
    QCOMPARE(exact.size(), size_t(2));
    QCOMPARE(exact[0].fraction, 0.5);
    QCOMPARE(exact[0].loops.size(), size_t(1));
    const analysis::Polygon square{{1.5, 1.5}, {5.5, 1.5}, {5.5, 5.5}, {1.5, 5.5}};
    QCOMPARE(exact[0].loops[0], square);
    QVERIFY(exact[1].loops.empty()); // 150 % of the mass: no such region
    // Signed: the mass is |v|, so a negative block is outlined alike.
    std::vector<float> negative = v;
    for (float& x : negative)
        x = -x;
    QVERIFY(analysis::massContours(negative, 8, 8, {{0.5}, 0.0})[0].loops.empty());
    QCOMPARE(analysis::massContours(negative, 8, 8, {{0.5}, 0.0, true})[0].loops[0], square);
    // Smoothing (the default σ = 2) spreads the mass: the 90 % region grows past the block.
    const auto smooth = analysis::massContours(v, 8, 8);
    QCOMPARE(smooth.size(), size_t(2));
    double area = 0;
    for (const analysis::Polygon& loop : smooth[1].loops)
        area += signedArea(loop);
    QVERIFY2(area > 16, qPrintable(QString::number(area)));
    QCOMPARE(analysis::gaussianSmoothed(v, 8, 8, 0.0), v);
    QVERIFY(analysis::massContours(v, 8, 7).empty()); // wrong size: nothing
}

void TestFigure::maskDimsOutside()
{
    Panel p = halfKeptPanel();
    const QImage image = renderPanel(p, 400); // unit 1.5625: a 2 px outline
    QCOMPARE(hex(image.pixel(80, 200)), hex(qRgb(200, 100, 50)));
    QCOMPARE(hex(image.pixel(320, 200)), hex(qRgb(60, 30, 15)));
    // The outline runs along x = 200: white there.
    QCOMPARE(hex(image.pixel(199, 200)), hex(qRgb(255, 255, 255)));
    QCOMPARE(hex(image.pixel(200, 200)), hex(qRgb(255, 255, 255)));
    // A mask of the wrong size is ignored.
    p.mask.assign(10, 0);
    const QImage ignored = renderPanel(p, 400);
    QCOMPARE(hex(ignored.pixel(320, 200)), hex(qRgb(200, 100, 50)));
}

void TestFigure::maskOutlineWithoutDimming()
{
    Panel p = halfKeptPanel();
    p.maskDims = false;
    const QImage image = renderPanel(p, 400);
    QCOMPARE(hex(image.pixel(320, 200)), hex(qRgb(200, 100, 50))); // nothing dimmed
    QCOMPARE(hex(image.pixel(199, 200)), hex(qRgb(255, 255, 255))); // still outlined
    QCOMPARE(hex(image.pixel(200, 200)), hex(qRgb(255, 255, 255)));
}

void TestFigure::offsetArrowsAtTheTargetScale()
{
    const QRgb arrow = qRgb(0x00, 0xe5, 0xff), grey = qRgb(90, 100, 110);
    // Cell (fx 2, fy 3) is centred at (8, 12): its top-left tap at (6, 10)
    // points to (9, 10); cell (3, 3)'s middle tap at (12, 12) to (15, 12).
    Panel p = fieldPanel({8, 6});
    QCOMPARE(hex(at(renderField(p, 5), 7.5, 10, 5)), hex(grey)); // arrows off
    p.arrows = Arrows::PerTap;
    // 5 px per image pixel: cells 20 px apart, every third drawn counted from
    // the node's (fx 8 → 2, 5, 8, …; fy 6 → 0, 3, 6, …).
    QImage image = renderField(p, 5);
    QVERIFY2(channelDistance(at(image, 7.5, 10, 5), arrow) <= 40, qPrintable(hex(at(image, 7.5, 10, 5))));
    QCOMPARE(hex(at(image, 13.5, 12, 5)), hex(grey));
    // 15 px per image pixel: cells 60 px apart, every one drawn.
    image = renderField(p, 15);
    QVERIFY(channelDistance(at(image, 7.5, 10, 15), arrow) <= 40);
    QVERIFY2(channelDistance(at(image, 13.5, 12, 15), arrow) <= 40, qPrintable(hex(at(image, 13.5, 12, 15))));
    // The kept cells follow the node: anchored on fx 9, cell 3 is drawn and cell 2 is not.
    Panel q = fieldPanel({9, 6});
    q.arrows = Arrows::PerTap;
    image = renderField(q, 5);
    QCOMPARE(hex(at(image, 7.5, 10, 5)), hex(grey));
    QVERIFY(channelDistance(at(image, 13.5, 12, 5), arrow) <= 40);
    // Mean: one arrow per cell (cell 2 from (8, 12) to (11, 12)); 20 px apart is past the 16 wanted: every cell.
    p.arrows = Arrows::Mean;
    image = renderField(p, 5);
    QVERIFY(channelDistance(at(image, 9.5, 12, 5), arrow) <= 40);
    QVERIFY(channelDistance(at(image, 13.5, 12, 5), arrow) <= 40);
    QCOMPARE(hex(at(image, 7.5, 10, 5)), hex(grey)); // no tap arrows
    // An offset field that does not fit its size is not drawn.
    p.offsets.arrows.pop_back();
    QCOMPARE(hex(at(renderField(p, 5), 9.5, 12, 5)), hex(grey));
}

void TestFigure::modulationMapCells()
{
    Panel p = fieldPanel({8, 6});
    auto blend = [](double m) { // viridis(m) at alpha 128 / 255 over the grey image
        const QRgb c = qrgbOf(colormap("viridis", m));
        const double a = 128 / 255.0;
        return qRgb(int(std::lround(90 * (1 - a) + qRed(c) * a)), int(std::lround(100 * (1 - a) + qGreen(c) * a)),
            int(std::lround(110 * (1 - a) + qBlue(c) * a)));
    };
    QCOMPARE(hex(at(renderField(p, 5), 20, 24, 5)), hex(qRgb(90, 100, 110))); // off
    p.modulationMap = true;
    const QImage image = renderField(p, 5);
    QVERIFY2(channelDistance(at(image, 20, 24, 5), blend(0.8)) <= 2, qPrintable(hex(at(image, 20, 24, 5))));
    QVERIFY2(channelDistance(at(image, 4, 4, 5), blend(0.2)) <= 2, qPrintable(hex(at(image, 4, 4, 5))));
    // Without modulation values (DCNv1): no map.
    p.offsets.modulation.clear();
    QCOMPARE(hex(at(renderField(p, 5), 20, 24, 5)), hex(qRgb(90, 100, 110)));
}

void TestFigure::legendNamesTheOffsetField()
{
    // A panel with nothing but the offset field still gets a legend: the arrow and the modulation scale.
    Figure f;
    f.panels.push_back(fieldPanel({8, 6}));
    const double bare = panelImageRect(f, 0, 0).top();
    f.panels[0].arrows = Arrows::Mean;
    f.panels[0].modulationMap = true;
    QVERIFY(panelImageRect(f, 0, 0).top() > bare);
    const QString file = path(QStringLiteral("legend.svg"));
    QCOMPARE(QString::fromStdString(saveFigure(f, file.toStdString())), QString());
    const QByteArray svg = readFile(file);
    QVERIFY(!svg.isEmpty());
    QVERIFY(svg.contains("mean offset of the taps"));
    QVERIFY(svg.contains("modulation"));
}

void TestFigure::savePanelCutsThePage()
{
    // A 400 × 300 "widget" with the panel painted into (−12.5, 7.25, 320, 240):
    // the file holds its page (30, 20, 200, 150), pixel for pixel.
    Panel p = fieldPanel({8, 6});
    p.arrows = Arrows::PerTap;
    p.modulationMap = true;
    const QRectF target(-12.5, 7.25, 320, 240);
    const QRect page(30, 20, 200, 150);
    const UnitRange units{0.9, 2.2};
    QImage widget(400, 300, QImage::Format_RGB32);
    widget.fill(Qt::white);
    {
        QPainter painter(&widget);
        painter.setClipRect(page);
        paintPanel(painter, p, target, units);
    }
    const QString file = path(QStringLiteral("panel.png"));
    QCOMPARE(QString::fromStdString(savePanel(p, target, page, file.toStdString(), units)), QString());
    const QImage saved(file);
    QCOMPARE(saved.size(), page.size());
    QCOMPARE(saved.convertToFormat(QImage::Format_RGB32), widget.copy(page));
    for (const char* suffix : {"svg", "pdf"}) {
        const QString vector = path(QStringLiteral("panel.") + QLatin1String(suffix));
        QCOMPARE(QString::fromStdString(savePanel(p, target, page, vector.toStdString())), QString());
        QVERIFY(QFileInfo(vector).size() > 1000);
    }
    // Nothing to draw: refused, nothing written.
    const QString empty = path(QStringLiteral("empty.png"));
    QVERIFY(!savePanel(Panel{}, target, page, empty.toStdString()).empty());
    QVERIFY(!savePanel(p, target, QRect(30, 20, 0, 150), empty.toStdString()).empty());
    QVERIFY(!QFile::exists(empty));
}

void TestFigure::paintPanelRestoresPainter()
{
    Panel p;
    p.background = uniformImage(8, 8, 10, 20, 30);
    p.points = {Point{}};
    p.node = std::array<double, 2>{3, 3};
    QImage image(64, 64, QImage::Format_RGB32);
    QPainter painter(&image);
    const QPen pen(Qt::red, 3);
    painter.setPen(pen);
    painter.translate(2, 3);
    paintPanel(painter, p, QRectF(0, 0, 32, 32));
    QCOMPARE(painter.pen(), pen);
    QCOMPARE(painter.transform(), QTransform::fromTranslate(2, 3));
    QVERIFY(!painter.hasClipping());
}

void TestFigure::fontsRender()
{
    // Text drawn on the offscreen platform: a title must leave dark pixels.
    Figure f;
    f.title = "MMMMMMMM";
    f.panels.resize(1);
    f.panels[0].background = uniformImage(8, 8, 255, 255, 255);
    const QSizeF size = figureSize(f);
    QImage image(size.toSize(), QImage::Format_RGB32);
    image.fill(Qt::white);
    QPainter painter(&image);
    paintFigure(painter, f);
    painter.end();
    const QRectF panel = panelImageRect(f, 0, 0);
    int dark = 0;
    for (int y = 0; y < int(panel.top()) - 2; ++y)
        for (int x = 0; x < image.width(); ++x)
            dark += qGray(image.pixel(x, y)) < 100;
    QVERIFY2(dark > 50, "no text drawn: are fonts installed (fonts-dejavu-core)?");
}

void TestFigure::savePng()
{
    Figure f;
    f.title = "png";
    f.rows = 1, f.cols = 2;
    f.colLabels = {"a", "b"};
    f.rowLabels = {"sampling"};
    f.panels.resize(2);
    for (Panel& p : f.panels) {
        p.background = uniformImage(40, 30, 128, 128, 128);
        p.caption = {"caption line"};
    }
    Point pt;
    pt.x = 12, pt.y = 7, pt.level = 3, pt.weight = 2;
    f.panels[1].points.push_back(pt);
    const QString file = path(QStringLiteral("figure.png"));
    QCOMPARE(QString::fromStdString(saveFigure(f, file.toStdString(), 2.0)), QString());
    QImage image(file);
    QVERIFY(!image.isNull());
    const QSizeF size = figureSize(f);
    QCOMPARE(size.width(), std::ceil(size.width()));
    QCOMPARE(image.size(), QSize(int(2 * size.width()), int(2 * size.height())));
    QCOMPARE(image.dotsPerMeterX(), int(std::lround(144 / 0.0254))); // prints at the PDF's size
    // The point, through panelImageRect: 40 × 30 image, panel size 256.
    const QRectF rect = panelImageRect(f, 0, 1);
    QCOMPARE(rect.width(), 256.0);
    QCOMPARE(rect.height(), 192.0);
    const QPointF at = rect.topLeft() + QPointF((pt.x + 0.5) * rect.width() / 40, (pt.y + 0.5) * rect.height() / 30);
    QCOMPARE(hex(image.pixel((2 * at).toPoint())), hex(qrgbOf(levelColor(3))));
    // The other panel's image pixels are the background.
    const QPointF grey = panelImageRect(f, 0, 0).center() * 2;
    QCOMPARE(hex(image.pixel(grey.toPoint())), hex(qRgb(128, 128, 128)));
    QVERIFY(panelImageRect(f, 0, 0).right() < rect.left());
}

void TestFigure::saveSvg()
{
    Figure f = makeExampleFigure();
    const QString file = path(QStringLiteral("figure.svg"));
    QCOMPARE(QString::fromStdString(saveFigure(f, file.toStdString())), QString());
    QSvgRenderer renderer(file);
    QVERIFY(renderer.isValid());
    const QSizeF size = figureSize(f);
    QCOMPARE(renderer.viewBoxF(), QRectF(QPointF(0, 0), size));
    const QByteArray svg = readFile(file);
    QVERIFY(!svg.isEmpty());
    QCOMPARE(svg.count("<image "), qsizetype(9 + 3)); // a raster per panel and per colour bar
    QCOMPARE(svg.count("image-rendering:pixelated"), qsizetype(9)); // the panels' pixels, not the colour bars
    QCOMPARE(svg.count("data:image/png"), qsizetype(9 + 3));       // lossless
    QVERIFY(svg.count("<path") + svg.count("<ellipse") + svg.count("<circle") > 819 * 3); // points are vectors
    QVERIFY(svg.contains("effective receptive field"));                                  // text is text
    QVERIFY(svg.contains("stroke-dasharray"));                                           // dashed object outline
}

void TestFigure::savePdf()
{
    const Figure f = makeExampleFigure();
    const QString file = path(QStringLiteral("figure.pdf"));
    QCOMPARE(QString::fromStdString(saveFigure(f, file.toStdString())), QString());
    const QByteArray pdf = readFile(file);
    QVERIFY(!pdf.isEmpty());
    QVERIFY(pdf.startsWith("%PDF-"));
    QVERIFY(pdf.trimmed().endsWith("%%EOF"));
    QVERIFY(!pdf.contains("/DCTDecode")); // images lossless, not JPEG
    // One page of exactly the figure's size, in points.
    const QSizeF size = figureSize(f);
    const QRegularExpression box(QStringLiteral("/MediaBox\\s*\\[\\s*0\\s+0\\s+([0-9.]+)\\s+([0-9.]+)\\s*\\]"));
    const QRegularExpressionMatch m = box.match(QString::fromLatin1(pdf));
    QVERIFY(m.hasMatch());
    QCOMPARE(m.captured(1).toDouble(), size.width());
    QCOMPARE(m.captured(2).toDouble(), size.height());
}

void TestFigure::saveErrors_data()
{
    QTest::addColumn<QString>("name");
    QTest::addColumn<QString>("problem");
    QTest::newRow("unknown suffix") << "figure.bmp" << "unknown format";
    QTest::newRow("no suffix") << "figure" << "no file suffix";
    QTest::newRow("missing directory") << "no/such/dir/figure.png" << "cannot write";
    QTest::newRow("missing directory pdf") << "no/such/dir/figure.pdf" << "cannot write";
}

void TestFigure::saveErrors()
{
    QFETCH(QString, name);
    QFETCH(QString, problem);
    QTemporaryDir dir;
    const QString file = dir.filePath(name);
    Figure f;
    f.panels.resize(1);
    f.panels[0].background = uniformImage(4, 4, 1, 2, 3);
    const QString error = QString::fromStdString(saveFigure(f, file.toStdString()));
    QVERIFY2(error.startsWith(file + QStringLiteral(": ")), qPrintable(error));
    QVERIFY2(error.contains(problem), qPrintable(error));
    QCOMPARE(QDir(dir.path()).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden), QStringList());

    // A figure without cells and a silly PNG scale are refused too.
    Figure empty;
    empty.rows = 0;
    const QString png = dir.filePath(QStringLiteral("x.png"));
    QVERIFY(QString::fromStdString(saveFigure(empty, png.toStdString())).startsWith(png + QStringLiteral(": ")));
    QVERIFY(!saveFigure(f, png.toStdString(), 0.0).empty());
    QVERIFY(!saveFigure(f, png.toStdString(), std::nan("")).empty());
    QVERIFY(!QFile::exists(png));
}

void TestFigure::failedSaveKeepsExistingFile()
{
    QTemporaryDir dir;
    const QString file = dir.filePath(QStringLiteral("keep.png"));
    {
        QFile f(file);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("old");
    }
    Figure empty;
    empty.cols = 0;
    QVERIFY(!saveFigure(empty, file.toStdString()).empty());
    QFile f(file);
    QVERIFY(f.open(QIODevice::ReadOnly));
    QCOMPARE(f.readAll(), QByteArray("old"));
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden).size(), 1);
}

void TestFigure::blankCells()
{
    // 2 × 2 with three panels: the fourth cell is blank, and so is an empty panel.
    Figure f;
    f.rows = 2, f.cols = 2;
    f.panels.resize(3);
    f.panels[0].background = uniformImage(10, 10, 9, 9, 9);
    f.panels[2].background = uniformImage(10, 20, 9, 9, 9); // portrait
    QVERIFY(panelImageRect(f, 0, 1).isEmpty());
    QVERIFY(panelImageRect(f, 1, 1).isEmpty());
    QVERIFY(panelImageRect(f, 2, 0).isEmpty());
    QCOMPARE(panelImageRect(f, 1, 0).size(), QSizeF(128, 256));
    QCOMPARE(QString::fromStdString(saveFigure(f, path(QStringLiteral("blank.png")).toStdString(), 1.0)), QString());
}

void TestFigure::deterministicPng()
{
    const Figure f = makeExampleFigure();
    const QString a = path(QStringLiteral("a.png")), b = path(QStringLiteral("b.png"));
    QCOMPARE(QString::fromStdString(saveFigure(f, a.toStdString(), 1.0)), QString());
    QCOMPARE(QString::fromStdString(saveFigure(f, b.toStdString(), 1.0)), QString());
    QFile fa(a), fb(b);
    QVERIFY(fa.open(QIODevice::ReadOnly) && fb.open(QIODevice::ReadOnly));
    const QByteArray da = fa.readAll();
    QVERIFY(da.size() > 1000);
    QVERIFY(da == fb.readAll());
}

void TestFigure::exampleFigure()
{
    const Figure f = makeExampleFigure();
    QString dir = qEnvironmentVariable("DEFORMSCOPE_FIGURE_EXAMPLE");
    if (dir.isEmpty())
        dir = m_dir.path();
    for (const char* suffix : {"png", "svg", "pdf"}) {
        const QString file = QDir(dir).filePath(QStringLiteral("example.") + QLatin1String(suffix));
        QCOMPARE(QString::fromStdString(saveFigure(f, file.toStdString(), 2.0)), QString());
        QVERIFY(QFileInfo(file).size() > 1000);
    }
}

QTEST_MAIN(TestFigure)
#include "tst_figure.moc"
