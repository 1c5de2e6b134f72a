// Layout and painting of figures, and writing them as PNG, SVG or PDF.
//
// All sizes are in the figure's units (points; pixels of a PNG at scale 1) and
// derive from Figure::panelSize, so a figure scaled into a paper's column keeps
// its proportions. Text is measured on a 72-dpi reference device and drawn with
// fonts corrected for the painter's device, so layout, PNG, SVG and PDF agree.
#include "ui/figure/figure.h"

#include "ui/figure/contours.h"

#include <QBuffer>
#include <QCoreApplication>
#include <QFileInfo>
#include <QFont>
#include <QFontMetricsF>
#include <QGuiApplication>
#include <QImage>
#include <QImageWriter>
#include <QLineF>
#include <QMarginsF>
#include <QPageLayout>
#include <QPageSize>
#include <QPaintEngine>
#include <QPainter>
#include <QPainterPath>
#include <QPainterPathStroker>
#include <QPdfWriter>
#include <QSaveFile>
#include <QSvgGenerator>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace deformscope::figure {
namespace {

// ---------------------------------------------------------------- basics

QColor rgbColor(uint32_t c, double alpha = 1.0)
{
    QColor q(int((c >> 16) & 0xff), int((c >> 8) & 0xff), int(c & 0xff));
    q.setAlphaF(float(std::clamp(alpha, 0.0, 1.0)));
    return q;
}

QString qs(const std::string& s) { return QString::fromStdString(s); }

struct Grid {
    int width = 0, height = 0;
    bool valid() const { return width > 0 && height > 0; }
    size_t count() const { return size_t(width) * size_t(height); }
};

bool validImage(const Image& im)
{
    return im.width > 0 && im.height > 0 && im.rgb.size() == size_t(im.width) * size_t(im.height) * 3;
}

bool validHeat(const std::optional<Heat>& heat)
{
    return heat && heat->width > 0 && heat->height > 0
        && heat->values.size() == size_t(heat->width) * size_t(heat->height);
}

// The panel's image grid: the background's, else the heat map's, else the
// extent of the points; invalid when the panel has nothing to place on a grid.
Grid gridOf(const Panel& p)
{
    if (p.background.width > 0 && p.background.height > 0)
        return {p.background.width, p.background.height};
    if (validHeat(p.heat))
        return {p.heat->width, p.heat->height};
    double w = 0, h = 0;
    for (const Point& pt : p.points)
        if (pt.inside && std::isfinite(pt.x) && std::isfinite(pt.y)) {
            w = std::max(w, pt.x + 0.5);
            h = std::max(h, pt.y + 0.5);
        }
    if (w > 0 && h > 0)
        return {int(std::ceil(w)), int(std::ceil(h))};
    return {};
}

bool isBlank(const Panel& p)
{
    return !gridOf(p).valid() && p.title.empty() && p.caption.empty();
}

bool isVectorDevice(const QPainter& painter)
{
    const QPaintEngine* engine = painter.paintEngine();
    return engine && (engine->type() == QPaintEngine::SVG || engine->type() == QPaintEngine::Pdf);
}

// A 72-dpi device to measure text on: one figure unit is one point.
const QPaintDevice* referenceDevice()
{
    static const QImage device = [] {
        QImage image(1, 1, QImage::Format_RGB32);
        image.setDotsPerMeterX(2835); // 72 dpi
        image.setDotsPerMeterY(2835);
        return image;
    }();
    return &device;
}

QFont makeFont(double size, bool bold = false)
{
    QFont font;
    font.setFamilies({QStringLiteral("Helvetica"), QStringLiteral("Arial"), QStringLiteral("Liberation Sans"),
        QStringLiteral("DejaVu Sans")});
    font.setStyleHint(QFont::SansSerif);
    font.setPointSizeF(size);
    font.setBold(bold);
    font.setHintingPreference(QFont::PreferNoHinting);
    return font;
}

// The font that draws `font` at its size in figure units on the painter's device.
QFont onDevice(QFont font, const QPainter& painter)
{
    const int dpi = painter.device() ? painter.device()->logicalDpiY() : 72;
    if (dpi > 0 && dpi != 72)
        font.setPointSizeF(font.pointSizeF() * 72.0 / dpi);
    return font;
}

QFontMetricsF metrics(const QFont& font) { return QFontMetricsF(font, referenceDevice()); }

// A pen line with a darker halo under it, so it reads on any background.
void strokeWithHalo(QPainter& p, const QPainterPath& path, const QColor& color, double width,
    const QList<qreal>& dashes = {}, double haloAlpha = 0.55)
{
    QPen halo(QColor(0, 0, 0, int(255 * haloAlpha)), width * 2.2, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin);
    p.setBrush(Qt::NoBrush);
    p.setPen(halo);
    p.drawPath(path);
    QPen pen(color, width, Qt::SolidLine, dashes.isEmpty() ? Qt::SquareCap : Qt::FlatCap, Qt::MiterJoin);
    if (!dashes.isEmpty())
        pen.setDashPattern(dashes);
    p.setPen(pen);
    p.drawPath(path);
}

QList<qreal> contourDashes(size_t index)
{
    switch (index % 3) {
    case 0: return {};
    case 1: return {3.5, 2.0};
    default: return {1.0, 1.6};
    }
}

QPainterPath outlinePath(const std::vector<QPolygonF>& loops, const QRectF& target, double sx, double sy)
{
    QPainterPath path;
    for (const QPolygonF& loop : loops) {
        QPolygonF mapped;
        mapped.reserve(loop.size());
        for (const QPointF& v : loop)
            mapped << QPointF(target.left() + v.x() * sx, target.top() + v.y() * sy);
        path.addPolygon(mapped);
        path.closeSubpath();
    }
    return path;
}

// ---------------------------------------------------------------- heat maps

struct HeatScale {
    double max = 0; // largest value (largest |v| when signed)
};

HeatScale heatScale(const Heat& heat)
{
    HeatScale s;
    for (float v : heat.values)
        if (std::isfinite(v))
            s.max = std::max(s.max, heat.isSigned ? double(std::fabs(v)) : double(v));
    return s;
}

// Position in the colour map of value v.
double heatPosition(const Heat& heat, const HeatScale& s, double v)
{
    if (!std::isfinite(v) || !(s.max > 0))
        return heat.isSigned ? 0.5 : 0.0;
    double r = v / s.max; // in [-1, 1]
    if (!heat.isSigned)
        r = std::max(r, 0.0);
    if (heat.log) {
        static const double top = std::log10(1001.0);
        r = std::copysign(std::log10(1.0 + std::fabs(r) * 1000.0) / top, r);
    }
    return heat.isSigned ? 0.5 + 0.5 * r : r;
}

uint32_t contourColor(const std::string& colormapName)
{
    if (colormapName == "gray" || colormapName == "grey")
        return 0x00b4ff;
    if (colormapName == "coolwarm")
        return 0x202020;
    return 0xffffff;
}

// A tick label: 3 significant digits, a true minus sign (U+2212).
QString formatValue(double v)
{
    if (v == 0)
        return QStringLiteral("0");
    const double a = std::fabs(v);
    QString text = a >= 0.01 && a < 10000 ? QString::number(v, 'g', 3) : QString::number(v, 'e', 1);
    return text.replace(QLatin1Char('-'), QChar(0x2212));
}

// ---------------------------------------------------------------- the panel raster

// Background, greyed under a heat map, the heat map blended over it, and the
// area outside a saliency mask dimmed: one raster, sampled nearest from each
// layer at the finest grid among them.
QImage panelRaster(const Panel& p, Grid grid)
{
    const bool heat = validHeat(p.heat);
    const bool mask = p.mask.size() == grid.count();
    Grid r = grid;
    if (heat) {
        r.width = std::max(r.width, p.heat->width);
        r.height = std::max(r.height, p.heat->height);
    }
    QImage image(r.width, r.height, QImage::Format_RGB888);
    const bool bg = validImage(p.background);
    HeatScale scale;
    if (heat)
        scale = heatScale(*p.heat);
    const double opacity = heat ? std::clamp(p.heat->opacity, 0.0, 1.0) : 0.0;
    for (int y = 0; y < r.height; ++y) {
        uchar* line = image.scanLine(y);
        const int gy = int(int64_t(y) * grid.height / r.height);
        for (int x = 0; x < r.width; ++x) {
            const int gx = int(int64_t(x) * grid.width / r.width);
            double c[3] = {189, 189, 189}; // neutral grey
            if (bg) {
                const uint8_t* src = &p.background.rgb[(size_t(gy) * grid.width + gx) * 3];
                c[0] = src[0], c[1] = src[1], c[2] = src[2];
            }
            if (heat) {
                const double l = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
                const int hx = int(int64_t(x) * p.heat->width / r.width);
                const int hy = int(int64_t(y) * p.heat->height / r.height);
                const double v = p.heat->values[size_t(hy) * p.heat->width + hx];
                const uint32_t h = colormap(p.heat->colormap, heatPosition(*p.heat, scale, v));
                const double hc[3] = {double((h >> 16) & 0xff), double((h >> 8) & 0xff), double(h & 0xff)};
                for (int k = 0; k < 3; ++k)
                    c[k] = (1 - opacity) * l + opacity * hc[k];
            }
            if (mask && p.mask[size_t(gy) * grid.width + gx] == 0)
                for (double& v : c)
                    v *= 0.3;
            for (int k = 0; k < 3; ++k)
                line[x * 3 + k] = uchar(std::clamp(std::lround(c[k]), 0L, 255L));
        }
    }
    return image;
}

void drawRaster(QPainter& painter, const QImage& image, const QRectF& target)
{
    painter.setRenderHint(QPainter::SmoothPixmapTransform, false);
    painter.setRenderHint(QPainter::LosslessImageRendering, true); // PDF: Flate, not JPEG
    if (!isVectorDevice(painter)) {
        painter.drawImage(target, image);
        return;
    }
    // PDF and SVG viewers smooth images they upscale; blow the pixels up first
    // (nearest, an integer factor) so every viewer shows them as squares.
    const int longer = std::max(image.width(), image.height());
    const int factor = std::clamp(1024 / std::max(longer, 1), 1, 8);
    if (factor == 1)
        painter.drawImage(target, image);
    else
        painter.drawImage(target,
            image.scaled(image.width() * factor, image.height() * factor, Qt::IgnoreAspectRatio,
                Qt::FastTransformation));
}

// ---------------------------------------------------------------- points

void drawPoints(QPainter& painter, const Panel& panel, const QRectF& target, double sx, double sy, double unit)
{
    if (panel.points.empty())
        return;
    double maxWeight = 0;
    for (const Point& p : panel.points)
        if (std::isfinite(p.weight))
            maxWeight = std::max(maxWeight, p.weight);
    auto relative = [&](const Point& p) {
        if (!(maxWeight > 0))
            return 1.0;
        return std::isfinite(p.weight) ? std::clamp(p.weight / maxWeight, 0.0, 1.0) : 0.0;
    };
    std::vector<size_t> order(panel.points.size());
    std::iota(order.begin(), order.end(), size_t(0));
    // Light points first, so heavy ones stay on top; at equal weight the
    // deeper levels go under the node's own taps.
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const double wa = relative(panel.points[a]), wb = relative(panel.points[b]);
        if (wa != wb)
            return wa < wb;
        return panel.points[a].level > panel.points[b].level;
    });
    const double rMax = 4.2 * unit, rMin = 0.9 * unit;
    const QRectF frame = target;
    QPainterPath framePath;
    framePath.addRect(frame);
    for (size_t i : order) {
        const Point& p = panel.points[i];
        if (!std::isfinite(p.x) || !std::isfinite(p.y))
            continue;
        const double w = relative(p), s = std::sqrt(w);
        const double radius = rMin + (rMax - rMin) * s; // area grows with the weight
        const QPointF c(target.left() + (p.x + 0.5) * sx, target.top() + (p.y + 0.5) * sy);
        const QRectF box(c.x() - radius, c.y() - radius, 2 * radius, 2 * radius);
        const double reach = radius + unit;
        if (!frame.adjusted(-reach, -reach, reach, reach).contains(c))
            continue;
        const QColor color = rgbColor(levelColor(p.level));
        const bool crossesFrame = !frame.contains(box.adjusted(-unit, -unit, unit, unit));
        if (p.inside) {
            QColor fill = color;
            fill.setAlphaF(float(0.45 + 0.55 * s));
            QColor edge = color.darker(190);
            edge.setAlphaF(float(0.35 + 0.65 * s));
            const double edgeWidth = std::max(0.25 * unit, 0.12 * radius);
            if (!crossesFrame) {
                painter.setPen(QPen(edge, edgeWidth));
                painter.setBrush(fill);
                painter.drawEllipse(c, radius - edgeWidth / 2, radius - edgeWidth / 2);
            } else {
                QPainterPath disc;
                disc.addEllipse(c, radius, radius);
                painter.setPen(Qt::NoPen);
                painter.setBrush(fill);
                painter.drawPath(disc.intersected(framePath));
            }
        } else {
            // Hollow: a ring, clipped to the frame by geometry (SVG has no clip here).
            const double width = std::max(0.5 * unit, 0.22 * radius);
            QPainterPath circle;
            circle.addEllipse(c, radius - width / 2, radius - width / 2);
            QColor ring = color;
            ring.setAlphaF(float(0.6 + 0.4 * s));
            if (!crossesFrame) {
                painter.setBrush(Qt::NoBrush);
                painter.setPen(QPen(ring, width));
                painter.drawPath(circle);
            } else {
                QPainterPathStroker stroker;
                stroker.setWidth(width);
                painter.setPen(Qt::NoPen);
                painter.setBrush(ring);
                painter.drawPath(stroker.createStroke(circle).intersected(framePath));
            }
        }
    }
}

// ---------------------------------------------------------------- layout

struct Fonts {
    QFont title, label, panelTitle, caption, legend, small, footer;
};

struct RowMetrics {
    double titleH = 0, imageH = 0, barH = 0, captionH = 0;
    double total() const { return titleH + imageH + barH + captionH; }
};

struct Layout {
    double base = 11;  // the body text size; everything else is relative to it
    double width = 0, height = 0;
    Fonts fonts;
    double titleY = -1, legendY = -1, colLabelY = -1, footerY = -1;
    double legendH = 0, footerH = 0;
    double gridLeft = 0, rowLabelW = 0;
    bool rotatedRowLabels = false;
    std::vector<double> colX, colW;
    std::vector<double> rowY;
    std::vector<RowMetrics> rows;
    int levels = 0;
    bool anyOutside = false;
    bool anyPoints = false;
};

const Panel* panelAt(const Figure& f, int row, int col)
{
    if (row < 0 || col < 0 || row >= f.rows || col >= f.cols)
        return nullptr;
    const size_t i = size_t(row) * size_t(f.cols) + size_t(col);
    if (i >= f.panels.size() || isBlank(f.panels[i]))
        return nullptr;
    return &f.panels[i];
}

double panelSizeOf(const Figure& f)
{
    return std::isfinite(f.panelSize) && f.panelSize > 0 ? std::clamp(f.panelSize, 16.0, 8192.0) : 256.0;
}

QSizeF displaySize(const Figure& f, const Panel& p)
{
    const Grid g = gridOf(p);
    const double size = panelSizeOf(f);
    if (!g.valid())
        return {size, size};
    const double s = size / std::max(g.width, g.height);
    return {g.width * s, g.height * s};
}

// Size of the colour-bar strip under a heat map.
double barStripHeight(const Layout& l, size_t contours)
{
    const double ls = metrics(l.fonts.small).lineSpacing();
    const double bar = 0.5 * l.base + 0.2 * l.base + ls;
    return 0.45 * l.base + std::max(bar, double(contours) * ls);
}

QString levelLabel(int level) { return QStringLiteral("level %1").arg(level); }

// Legend items: (marker kind, colour, text); kind 0 = filled, 1 = hollow.
struct LegendItem {
    int kind = 0;
    uint32_t color = 0;
    QString text;
};

std::vector<LegendItem> legendItems(const Layout& l)
{
    std::vector<LegendItem> items;
    for (int level = 1; level <= l.levels; ++level)
        items.push_back({0, levelColor(level), levelLabel(level)});
    if (l.anyOutside)
        items.push_back({1, 0x808080, QStringLiteral("outside the image")});
    items.push_back({2, 0, QStringLiteral("marker area \u221d weight")});
    return items;
}

double legendWidth(const Layout& l, const std::vector<LegendItem>& items)
{
    const QFontMetricsF fm = metrics(l.fonts.legend);
    double w = 0;
    for (const LegendItem& item : items) {
        if (item.kind != 2)
            w += 1.1 * l.base;
        w += fm.horizontalAdvance(item.text) + 1.2 * l.base;
    }
    return std::max(0.0, w - 1.2 * l.base);
}

Layout computeLayout(const Figure& f)
{
    Layout l;
    const int rows = std::max(f.rows, 0), cols = std::max(f.cols, 0);
    const double size = panelSizeOf(f);
    const double b = std::clamp(size * 0.045, 6.0, 48.0);
    l.base = b;
    l.fonts.title = makeFont(1.4 * b, true);
    l.fonts.label = makeFont(1.1 * b, true);
    l.fonts.panelTitle = makeFont(b);
    l.fonts.legend = makeFont(0.9 * b);
    l.fonts.small = makeFont(0.72 * b);
    l.fonts.footer = makeFont(0.75 * b);
    const double margin = 0.8 * b, gapX = 0.8 * b, gapY = 1.0 * b;

    // Columns and rows.
    l.colW.assign(size_t(cols), 0);
    l.rows.assign(size_t(rows), {});
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
            if (const Panel* p = panelAt(f, r, c)) {
                const QSizeF d = displaySize(f, *p);
                l.colW[size_t(c)] = std::max(l.colW[size_t(c)], d.width());
                l.rows[size_t(r)].imageH = std::max(l.rows[size_t(r)].imageH, d.height());
                for (const Point& pt : p->points) {
                    l.anyPoints = true;
                    l.levels = std::max(l.levels, pt.level);
                    l.anyOutside = l.anyOutside || !pt.inside;
                }
                if (p->levels > 0 && !p->points.empty())
                    l.levels = std::max(l.levels, p->levels);
            }
    for (double& w : l.colW)
        if (w <= 0)
            w = size;
    for (RowMetrics& m : l.rows)
        if (m.imageH <= 0)
            m.imageH = size;

    // Captions: one size for the whole figure, small enough that the lines fit
    // their columns (down to 80 %; longer lines are elided when drawn).
    double captionScale = 1.0;
    {
        const QFontMetricsF fm = metrics(makeFont(0.85 * b));
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c)
                if (const Panel* p = panelAt(f, r, c))
                    for (const std::string& line : p->caption) {
                        const double w = fm.horizontalAdvance(qs(line));
                        if (w > 0)
                            captionScale = std::min(captionScale, l.colW[size_t(c)] / w);
                    }
    }
    captionScale = std::max(captionScale, 0.8);
    l.fonts.caption = makeFont(0.85 * b * captionScale);

    const double titleLine = metrics(l.fonts.panelTitle).lineSpacing();
    const double captionLine = metrics(l.fonts.caption).lineSpacing();
    for (int r = 0; r < rows; ++r) {
        RowMetrics& m = l.rows[size_t(r)];
        size_t lines = 0, contours = 0;
        bool title = false, heat = false;
        for (int c = 0; c < cols; ++c)
            if (const Panel* p = panelAt(f, r, c)) {
                title = title || !p->title.empty();
                lines = std::max(lines, p->caption.size());
                if (validHeat(p->heat)) {
                    heat = true;
                    contours = std::max(contours, p->heat->contours.size());
                }
            }
        m.titleH = title ? titleLine + 0.25 * b : 0;
        m.barH = heat ? barStripHeight(l, contours) : 0;
        m.captionH = lines ? 0.35 * b + double(lines) * captionLine : 0;
    }

    // Row labels: plain when short, else rotated to read bottom-up.
    double labelW = 0;
    bool anyRowLabel = false;
    const QFontMetricsF labelFm = metrics(l.fonts.label);
    for (int r = 0; r < rows && r < int(f.rowLabels.size()); ++r)
        if (!f.rowLabels[size_t(r)].empty()) {
            anyRowLabel = true;
            labelW = std::max(labelW, labelFm.horizontalAdvance(qs(f.rowLabels[size_t(r)])));
        }
    if (anyRowLabel) {
        l.rotatedRowLabels = labelW > 3.5 * b;
        l.rowLabelW = (l.rotatedRowLabels ? labelFm.lineSpacing() : labelW) + 0.6 * b;
    }

    const double gridW = std::accumulate(l.colW.begin(), l.colW.end(), 0.0) + gapX * std::max(cols - 1, 0);
    const double contentW = l.rowLabelW + gridW;
    double innerW = contentW;
    if (!f.title.empty())
        innerW = std::max(innerW, metrics(l.fonts.title).horizontalAdvance(qs(f.title)));
    std::vector<LegendItem> legend;
    if (l.anyPoints) {
        legend = legendItems(l);
        innerW = std::max(innerW, legendWidth(l, legend));
    }
    l.width = std::ceil(2 * margin + innerW);
    const double left = margin + (innerW - contentW) / 2;
    l.gridLeft = left + l.rowLabelW;
    l.colX.resize(size_t(cols));
    double x = l.gridLeft;
    for (int c = 0; c < cols; ++c) {
        l.colX[size_t(c)] = x;
        x += l.colW[size_t(c)] + gapX;
    }

    double y = margin;
    if (!f.title.empty()) {
        l.titleY = y;
        y += metrics(l.fonts.title).lineSpacing() + 0.4 * b;
    }
    if (l.anyPoints) {
        l.legendY = y;
        l.legendH = std::max(metrics(l.fonts.legend).lineSpacing(), 0.9 * b);
        y += l.legendH + 0.5 * b;
    }
    bool anyColLabel = false;
    for (int c = 0; c < cols && c < int(f.colLabels.size()); ++c)
        anyColLabel = anyColLabel || !f.colLabels[size_t(c)].empty();
    if (anyColLabel) {
        l.colLabelY = y;
        y += labelFm.lineSpacing() + 0.25 * b;
    }
    l.rowY.resize(size_t(rows));
    for (int r = 0; r < rows; ++r) {
        l.rowY[size_t(r)] = y;
        y += l.rows[size_t(r)].total() + (r + 1 < rows ? gapY : 0);
    }
    if (!f.footer.empty()) {
        y += 0.8 * b;
        l.footerY = y;
        l.footerH = metrics(l.fonts.footer)
                        .boundingRect(QRectF(0, 0, l.width - 2 * margin, 1e6), Qt::TextWordWrap | Qt::AlignLeft,
                            qs(f.footer))
                        .height();
        y += l.footerH;
    }
    l.height = std::ceil(y + margin);
    return l;
}

QRectF imageRect(const Figure& f, const Layout& l, int row, int col)
{
    const Panel* p = panelAt(f, row, col);
    if (!p)
        return {};
    const QSizeF d = displaySize(f, *p);
    const RowMetrics& m = l.rows[size_t(row)];
    const double x = l.colX[size_t(col)] + (l.colW[size_t(col)] - d.width()) / 2;
    const double y = l.rowY[size_t(row)] + m.titleH + (m.imageH - d.height()) / 2;
    return {x, y, d.width(), d.height()};
}

// ---------------------------------------------------------------- decorations

void drawLegend(QPainter& p, const Layout& l)
{
    const std::vector<LegendItem> items = legendItems(l);
    const QFont font = onDevice(l.fonts.legend, p);
    const QFontMetricsF fm = metrics(l.fonts.legend);
    double x = (l.width - legendWidth(l, items)) / 2;
    const double cy = l.legendY + l.legendH / 2;
    const double r = 0.36 * l.base;
    p.setFont(font);
    for (const LegendItem& item : items) {
        if (item.kind == 0) {
            const QColor c = rgbColor(item.color);
            p.setPen(QPen(c.darker(190), 0.12 * r));
            p.setBrush(c);
            p.drawEllipse(QPointF(x + r, cy), r, r);
            x += 1.1 * l.base;
        } else if (item.kind == 1) {
            p.setPen(QPen(rgbColor(item.color), 0.25 * r));
            p.setBrush(Qt::NoBrush);
            p.drawEllipse(QPointF(x + r, cy), r * 0.88, r * 0.88);
            x += 1.1 * l.base;
        }
        const double w = fm.horizontalAdvance(item.text);
        p.setPen(item.kind == 2 ? QColor(0x55, 0x55, 0x55) : QColor(0x22, 0x22, 0x22));
        p.drawText(QRectF(x, l.legendY, w + l.base, l.legendH), Qt::AlignLeft | Qt::AlignVCenter, item.text);
        x += w + 1.2 * l.base;
    }
}

void drawColorBar(QPainter& p, const Layout& l, const Heat& heat, const QRectF& image, double top)
{
    const double b = l.base;
    const double barW = std::clamp(0.42 * image.width(), 4.0 * b, image.width());
    const QRectF bar(image.left(), top + 0.35 * b, barW, 0.5 * b);
    QImage ramp(256, 1, QImage::Format_RGB888);
    for (int i = 0; i < 256; ++i) {
        const uint32_t c = colormap(heat.colormap, i / 255.0);
        uchar* px = ramp.scanLine(0) + 3 * i;
        px[0] = uchar(c >> 16), px[1] = uchar(c >> 8), px[2] = uchar(c);
    }
    p.save();
    p.setRenderHint(QPainter::SmoothPixmapTransform, true);
    p.setRenderHint(QPainter::LosslessImageRendering, true);
    p.drawImage(bar, ramp);
    p.restore();
    p.setPen(QPen(QColor(0x40, 0x40, 0x40), 0.05 * b));
    p.setBrush(Qt::NoBrush);
    p.drawRect(bar);

    // Ticks: 0 and the maximum (±max for a signed map), "log" when the map is.
    const QFont small = onDevice(l.fonts.small, p);
    const QFontMetricsF fm = metrics(l.fonts.small);
    p.setFont(small);
    p.setPen(QColor(0x33, 0x33, 0x33));
    const double max = heatScale(heat).max;
    const double ty = bar.bottom() + 0.15 * b, th = fm.lineSpacing();
    const double tw = 0.5 * barW;
    if (heat.isSigned) {
        p.drawText(QRectF(bar.left(), ty, tw, th), Qt::AlignLeft | Qt::AlignTop, formatValue(-max));
        p.drawText(QRectF(bar.center().x() - tw / 2, ty, tw, th), Qt::AlignHCenter | Qt::AlignTop,
            heat.log ? QStringLiteral("0 (log)") : QStringLiteral("0"));
        p.drawText(QRectF(bar.right() - tw, ty, tw, th), Qt::AlignRight | Qt::AlignTop, formatValue(max));
    } else {
        p.drawText(QRectF(bar.left(), ty, tw, th), Qt::AlignLeft | Qt::AlignTop, QStringLiteral("0"));
        if (heat.log)
            p.drawText(QRectF(bar.center().x() - tw / 2, ty, tw, th), Qt::AlignHCenter | Qt::AlignTop,
                QStringLiteral("log"));
        p.drawText(QRectF(bar.right() - tw, ty, tw, th), Qt::AlignRight | Qt::AlignTop, formatValue(max));
    }

    // Contour key, one line each, to the right of the bar.
    double x = bar.right() + 0.9 * b;
    double y = top + 0.35 * b;
    const double lineLen = 1.6 * b;
    for (size_t i = 0; i < heat.contours.size(); ++i) {
        const double frac = heat.contours[i];
        if (!(frac > 0 && frac <= 1))
            continue;
        const double cy = y + th / 2;
        QPen pen(QColor(0x22, 0x22, 0x22), 0.09 * b, Qt::SolidLine, Qt::FlatCap);
        const QList<qreal> dashes = contourDashes(i);
        if (!dashes.isEmpty())
            pen.setDashPattern(dashes);
        p.setPen(pen);
        p.drawLine(QPointF(x, cy), QPointF(x + lineLen, cy));
        p.setPen(QColor(0x33, 0x33, 0x33));
        const QString text = QStringLiteral("%1% of mass").arg(QString::number(frac * 100, 'g', 3));
        p.drawText(QRectF(x + lineLen + 0.35 * b, y, image.right() - x, th), Qt::AlignLeft | Qt::AlignVCenter, text);
        y += th;
    }
}

void drawCaption(QPainter& p, const Layout& l, const Panel& panel, double x, double width, double top)
{
    const QFont font = onDevice(l.fonts.caption, p);
    const QFontMetricsF fm = metrics(l.fonts.caption);
    p.setFont(font);
    p.setPen(QColor(0x22, 0x22, 0x22));
    double y = top;
    for (const std::string& line : panel.caption) {
        const QString text = fm.elidedText(qs(line), Qt::ElideRight, width + 0.01);
        p.drawText(QRectF(x - l.base, y, width + 2 * l.base, fm.lineSpacing()), Qt::AlignHCenter | Qt::AlignTop, text);
        y += fm.lineSpacing();
    }
}

} // namespace

// ---------------------------------------------------------------- public

// Separable Gaussian blur (σ in pixels, edges clamped) of a width × height grid.
static std::vector<float> smoothed(const std::vector<float>& v, int width, int height, double sigma) {
    const int r = std::max(1, int(std::ceil(3 * sigma)));
    std::vector<double> k(size_t(2 * r + 1));
    double sum = 0;
    for (int i = -r; i <= r; ++i)
        sum += k[size_t(i + r)] = std::exp(-0.5 * i * i / (sigma * sigma));
    for (double& x : k)
        x /= sum;
    auto at = [](const std::vector<float>& g, int x, int y, int w) {
        const float f = g[size_t(y) * size_t(w) + size_t(x)];
        return std::isfinite(f) ? std::max(0.0, double(f)) : 0.0;
    };
    std::vector<float> tmp(v.size()), out(v.size());
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            double acc = 0;
            for (int i = -r; i <= r; ++i)
                acc += k[size_t(i + r)] * at(v, std::clamp(x + i, 0, width - 1), y, width);
            tmp[size_t(y) * size_t(width) + size_t(x)] = float(acc);
        }
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            double acc = 0;
            for (int i = -r; i <= r; ++i)
                acc += k[size_t(i + r)] * tmp[size_t(std::clamp(y + i, 0, height - 1)) * size_t(width) + size_t(x)];
            out[size_t(y) * size_t(width) + size_t(x)] = float(acc);
        }
    return out;
}

void paintPanel(QPainter& painter, const Panel& panel, const QRectF& target)
{
    const Grid grid = gridOf(panel);
    if (!grid.valid() || !target.isValid())
        return;
    painter.save();
    painter.setRenderHint(QPainter::Antialiasing, true);
    drawRaster(painter, panelRaster(panel, grid), target);
    painter.setClipRect(target, Qt::IntersectClip);

    const double sx = target.width() / grid.width, sy = target.height() / grid.height;
    // Line widths and marker sizes follow the target: 1 unit on a 256-point panel.
    const double unit = std::clamp(std::sqrt(target.width() * target.height()) / 256.0, 0.35, 4.0);

    if (validHeat(panel.heat)) {
        const Heat& heat = *panel.heat;
        std::vector<float> mass = heat.values;
        if (heat.isSigned)
            for (float& v : mass)
                v = std::fabs(v);
        // Pixel-level maps (gradients) are speckled: contour a lightly smoothed copy.
        if (heat.contourSmoothing > 0)
            mass = smoothed(mass, heat.width, heat.height, heat.contourSmoothing);
        const double hx = target.width() / heat.width, hy = target.height() / heat.height;
        for (size_t i = 0; i < heat.contours.size(); ++i) {
            const double frac = heat.contours[i];
            if (!(frac > 0 && frac <= 1))
                continue;
            const auto loops = detail::regionOutline(detail::massRegion(mass, frac), heat.width, heat.height);
            if (!loops.empty())
                strokeWithHalo(painter, outlinePath(loops, target, hx, hy), rgbColor(contourColor(heat.colormap)),
                    1.0 * unit, contourDashes(i), 0.45);
        }
    }
    if (panel.mask.size() == grid.count()) {
        const auto loops = detail::regionOutline(panel.mask, grid.width, grid.height);
        if (!loops.empty())
            strokeWithHalo(painter, outlinePath(loops, target, sx, sy), Qt::white, 1.3 * unit);
    }
    const QColor objectColor = rgbColor(0xffe119);
    const QList<qreal> objectDashes{4.0, 2.5};
    if (panel.objectMask.size() == grid.count()) {
        const auto loops = detail::regionOutline(panel.objectMask, grid.width, grid.height);
        if (!loops.empty())
            strokeWithHalo(painter, outlinePath(loops, target, sx, sy), objectColor, 1.3 * unit, objectDashes);
    }
    if (panel.objectBox) {
        const auto& b = *panel.objectBox;
        if (std::all_of(b.begin(), b.end(), [](double v) { return std::isfinite(v); })) {
            QRectF box(QPointF(target.left() + (std::min(b[0], b[2]) + 0.5) * sx,
                           target.top() + (std::min(b[1], b[3]) + 0.5) * sy),
                QPointF(target.left() + (std::max(b[0], b[2]) + 0.5) * sx,
                    target.top() + (std::max(b[1], b[3]) + 0.5) * sy));
            box = box.intersected(target);
            if (!box.isEmpty()) {
                QPainterPath path;
                path.addRect(box);
                strokeWithHalo(painter, path, objectColor, 1.3 * unit, objectDashes);
            }
        }
    }

    for (const auto& m : panel.moves) {
        if (!std::all_of(m.begin(), m.end(), [](double v) { return std::isfinite(v); }))
            continue;
        const QPointF a(target.left() + (m[0] + 0.5) * sx, target.top() + (m[1] + 0.5) * sy);
        const QPointF b(target.left() + (m[2] + 0.5) * sx, target.top() + (m[3] + 0.5) * sy);
        QPainterPath path;
        const double r = 2.2 * unit;
        path.addEllipse(a, r, r);
        const QLineF line(a, b);
        if (line.length() > r) // from the ring's edge
            path.moveTo(line.pointAt(r / line.length()));
        else
            path.moveTo(a);
        path.lineTo(b);
        strokeWithHalo(painter, path, Qt::white, 0.9 * unit, {}, 0.5);
    }
    drawPoints(painter, panel, target, sx, sy, unit);

    if (panel.node && std::isfinite((*panel.node)[0]) && std::isfinite((*panel.node)[1])) {
        const QPointF c(target.left() + ((*panel.node)[0] + 0.5) * sx, target.top() + ((*panel.node)[1] + 0.5) * sy);
        const QColor green = rgbColor(0x00ff66);
        QPainterPath path;
        const double arm = 5.5 * unit;
        path.moveTo(c.x() - arm, c.y());
        path.lineTo(c.x() + arm, c.y());
        path.moveTo(c.x(), c.y() - arm);
        path.lineTo(c.x(), c.y() + arm);
        const double cw = panel.nodeCell[0] * sx, ch = panel.nodeCell[1] * sy;
        if (cw > 0 && ch > 0 && std::isfinite(cw) && std::isfinite(ch))
            path.addRect(QRectF(c.x() - cw / 2, c.y() - ch / 2, cw, ch));
        strokeWithHalo(painter, path, green, 1.3 * unit, {}, 0.7);
    }
    painter.restore();
}

QSizeF figureSize(const Figure& figure)
{
    const Layout l = computeLayout(figure);
    return {l.width, l.height};
}

QRectF panelImageRect(const Figure& figure, int row, int col)
{
    const Layout l = computeLayout(figure);
    return imageRect(figure, l, row, col);
}

void paintFigure(QPainter& painter, const Figure& figure)
{
    const Layout l = computeLayout(figure);
    const double b = l.base;
    painter.save();
    painter.setRenderHint(QPainter::Antialiasing, true);
    painter.setRenderHint(QPainter::TextAntialiasing, true);
    painter.fillRect(QRectF(0, 0, l.width, l.height), Qt::white);

    if (l.titleY >= 0) {
        painter.setFont(onDevice(l.fonts.title, painter));
        painter.setPen(QColor(0x11, 0x11, 0x11));
        painter.drawText(QRectF(0, l.titleY, l.width, metrics(l.fonts.title).lineSpacing()),
            Qt::AlignHCenter | Qt::AlignTop, qs(figure.title));
    }
    if (l.legendY >= 0)
        drawLegend(painter, l);

    const QFontMetricsF labelFm = metrics(l.fonts.label);
    painter.setFont(onDevice(l.fonts.label, painter));
    painter.setPen(QColor(0x11, 0x11, 0x11));
    if (l.colLabelY >= 0)
        for (int c = 0; c < figure.cols && c < int(figure.colLabels.size()); ++c)
            painter.drawText(QRectF(l.colX[size_t(c)] - 0.4 * b, l.colLabelY, l.colW[size_t(c)] + 0.8 * b,
                                 labelFm.lineSpacing()),
                Qt::AlignHCenter | Qt::AlignTop, qs(figure.colLabels[size_t(c)]));
    for (int r = 0; r < figure.rows && r < int(figure.rowLabels.size()); ++r) {
        const QString text = qs(figure.rowLabels[size_t(r)]);
        if (text.isEmpty())
            continue;
        const RowMetrics& m = l.rows[size_t(r)];
        const double cy = l.rowY[size_t(r)] + m.titleH + m.imageH / 2;
        const double right = l.gridLeft - 0.6 * b;
        if (l.rotatedRowLabels) {
            painter.save();
            painter.translate(right - labelFm.lineSpacing(), cy);
            painter.rotate(-90);
            painter.drawText(QRectF(-m.imageH / 2 - 2 * b, 0, m.imageH + 4 * b, labelFm.lineSpacing()),
                Qt::AlignHCenter | Qt::AlignTop, text);
            painter.restore();
        } else {
            painter.drawText(QRectF(0, cy - labelFm.lineSpacing() / 2, right, labelFm.lineSpacing()),
                Qt::AlignRight | Qt::AlignVCenter, text);
        }
    }

    for (int r = 0; r < figure.rows; ++r)
        for (int c = 0; c < figure.cols; ++c) {
            const Panel* p = panelAt(figure, r, c);
            if (!p)
                continue;
            const RowMetrics& m = l.rows[size_t(r)];
            const double x = l.colX[size_t(c)], w = l.colW[size_t(c)], top = l.rowY[size_t(r)];
            if (!p->title.empty()) {
                painter.setFont(onDevice(l.fonts.panelTitle, painter));
                painter.setPen(QColor(0x11, 0x11, 0x11));
                const QFontMetricsF fm = metrics(l.fonts.panelTitle);
                painter.drawText(QRectF(x - 0.4 * b, top, w + 0.8 * b, fm.lineSpacing()),
                    Qt::AlignHCenter | Qt::AlignTop, fm.elidedText(qs(p->title), Qt::ElideRight, w + 0.8 * b));
            }
            const QRectF image = imageRect(figure, l, r, c);
            if (gridOf(*p).valid()) {
                paintPanel(painter, *p, image);
                painter.setPen(QPen(QColor(0x55, 0x55, 0x55), 0.05 * b));
                painter.setBrush(Qt::NoBrush);
                painter.drawRect(image);
            }
            if (validHeat(p->heat))
                drawColorBar(painter, l, *p->heat, image, top + m.titleH + m.imageH);
            if (!p->caption.empty())
                drawCaption(painter, l, *p, x, w, top + m.titleH + m.imageH + m.barH + 0.35 * b);
        }

    if (l.footerY >= 0) {
        painter.setFont(onDevice(l.fonts.footer, painter));
        painter.setPen(QColor(0x55, 0x55, 0x55));
        const double margin = 0.8 * b;
        painter.drawText(QRectF(margin, l.footerY, l.width - 2 * margin, l.footerH + b),
            Qt::TextWordWrap | Qt::AlignLeft | Qt::AlignTop, qs(figure.footer));
    }
    painter.restore();
}

namespace {

// QSvgGenerator marks unsmoothed images with SVG 1.1's image-rendering=
// "optimizeSpeed", which browsers take as a hint only; add CSS `pixelated`,
// which they honour, so upscaled pixels stay square.
QByteArray markImagesPixelated(const QByteArray& svg)
{
    QByteArray out;
    out.reserve(svg.size() + 4096);
    qsizetype from = 0;
    for (;;) {
        const qsizetype at = svg.indexOf("<image ", from);
        const qsizetype end = at < 0 ? -1 : svg.indexOf('>', at);
        if (end < 0)
            break;
        out.append(svg.constData() + from, at - from);
        const QByteArray tag = svg.mid(at, end - at);
        if (tag.contains("image-rendering=\"optimizeSpeed\""))
            out.append("<image style=\"image-rendering:pixelated\" ").append(tag.constData() + 7, tag.size() - 7);
        else
            out.append(tag);
        from = end;
    }
    out.append(svg.constData() + from, svg.size() - from);
    return out;
}

std::string renderTo(const Figure& figure, const QString& format, double pngScale, QByteArray& bytes)
{
    const QSizeF size = figureSize(figure);
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    if (format == QLatin1String("png")) {
        const int w = int(std::ceil(size.width() * pngScale - 1e-6));
        const int h = int(std::ceil(size.height() * pngScale - 1e-6));
        if (double(w) * h > 400e6)
            return QStringLiteral("the PNG would be %1 × %2 pixels; lower the scale").arg(w).arg(h).toStdString();
        QImage image(w, h, QImage::Format_RGB32);
        if (image.isNull())
            return "cannot allocate the image";
        const int dpm = int(std::lround(72.0 * pngScale / 0.0254));
        image.setDotsPerMeterX(dpm);
        image.setDotsPerMeterY(dpm);
        image.fill(Qt::white);
        {
            QPainter painter(&image);
            painter.scale(pngScale, pngScale);
            paintFigure(painter, figure);
        }
        QImageWriter writer(&buffer, "png");
        if (!writer.write(image.convertToFormat(QImage::Format_RGB888)))
            return "cannot encode PNG: " + writer.errorString().toStdString();
    } else if (format == QLatin1String("svg")) {
        QSvgGenerator generator;
        generator.setOutputDevice(&buffer);
        generator.setSize(QSize(int(size.width()), int(size.height())));
        generator.setViewBox(QRectF(QPointF(0, 0), size));
        generator.setResolution(72);
        generator.setTitle(qs(figure.title));
        generator.setDescription(QStringLiteral("DeformScope figure"));
        QPainter painter;
        if (!painter.begin(&generator))
            return "cannot start the SVG generator";
        paintFigure(painter, figure);
        painter.end();
        buffer.close();
        bytes = markImagesPixelated(bytes);
    } else {
        QPdfWriter writer(&buffer);
        writer.setResolution(72);
        writer.setCreator(QStringLiteral("DeformScope"));
        writer.setTitle(qs(figure.title));
        const QPageSize page(size, QPageSize::Point, QString(), QPageSize::ExactMatch);
        if (!writer.setPageLayout(
                QPageLayout(page, QPageLayout::Portrait, QMarginsF(0, 0, 0, 0), QPageLayout::Point)))
            return "cannot set the PDF page size";
        QPainter painter;
        if (!painter.begin(&writer))
            return "cannot start the PDF writer";
        paintFigure(painter, figure);
        painter.end();
    }
    return {};
}

} // namespace

std::string saveFigure(const Figure& figure, const std::string& path, double pngScale)
{
    const QString file = qs(path);
    auto fail = [&](const std::string& what) { return (path.empty() ? std::string("(no path)") : path) + ": " + what; };
    if (path.empty())
        return fail("no file name given");
    const QString suffix = QFileInfo(file).suffix().toLower();
    if (suffix != QLatin1String("png") && suffix != QLatin1String("svg") && suffix != QLatin1String("pdf"))
        return fail(suffix.isEmpty() ? std::string("no file suffix; use .png, .svg or .pdf")
                                     : "unknown format \"." + suffix.toStdString() + "\"; use .png, .svg or .pdf");
    if (!qobject_cast<QGuiApplication*>(QCoreApplication::instance()))
        return fail("drawing a figure needs a QGuiApplication (QT_QPA_PLATFORM=offscreen where there is no display)");
    if (figure.rows < 1 || figure.cols < 1)
        return fail("empty figure: rows and cols must be at least 1");
    if (suffix == QLatin1String("png") && !(std::isfinite(pngScale) && pngScale > 0 && pngScale <= 16))
        return fail("PNG scale " + std::to_string(pngScale) + " is not in (0, 16]");

    QSaveFile out(file);
    // Open first: a missing or unwritable directory is reported before any rendering.
    if (!out.open(QIODevice::WriteOnly))
        return fail("cannot write: " + out.errorString().toStdString());
    QByteArray bytes;
    const std::string error = renderTo(figure, suffix, pngScale, bytes);
    if (!error.empty()) {
        out.cancelWriting();
        return fail(error);
    }
    if (out.write(bytes) != bytes.size()) {
        const std::string why = out.errorString().toStdString();
        out.cancelWriting();
        return fail("cannot write: " + why);
    }
    if (!out.commit())
        return fail("cannot write: " + out.errorString().toStdString());
    return {};
}

} // namespace deformscope::figure
