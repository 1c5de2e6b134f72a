// The figure's layout (rows, columns, titles, legend, colour bars, captions,
// footer) and paintFigure, which draws it with paintPanel for every panel.
//
// All sizes are in the figure's units (points; pixels of a PNG at scale 1) and
// derive from Figure::panelSize, so a figure scaled into a paper's column keeps
// its proportions. Text is measured on a 72-dpi reference device and drawn with
// fonts corrected for the painter's device, so layout, PNG, SVG and PDF agree.
// Called by output.cpp (saveFigure) and by anyone painting a figure, on the
// thread that owns the painter.
#include "ui/figure/figure.h"

#include "ui/figure/figure_internal.h"

#include <QFont>
#include <QFontMetricsF>
#include <QImage>
#include <QLinearGradient>
#include <QPainter>
#include <QPainterPath>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace deformscope::figure {
namespace {

using namespace detail;

// ---------------------------------------------------------------- text

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

// A tick label: 3 significant digits, a true minus sign (U+2212).
QString formatValue(double v)
{
    if (v == 0)
        return QStringLiteral("0");
    const double a = std::fabs(v);
    QString text = a >= 0.01 && a < 10000 ? QString::number(v, 'g', 3) : QString::number(v, 'e', 1);
    return text.replace(QLatin1Char('-'), QChar(0x2212));
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
    Arrows arrows = Arrows::None; // the first panel's that draws offset arrows
    bool anyModulation = false;
    bool legend() const { return anyPoints || arrows != Arrows::None || anyModulation; }
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

// Legend items: a marker (none for a note) and its text.
struct LegendItem {
    enum class Marker { Filled, Hollow, Note, Arrow, Ramp };
    Marker marker = Marker::Filled;
    uint32_t color = 0;
    QString text;
};

std::vector<LegendItem> legendItems(const Layout& l)
{
    using M = LegendItem::Marker;
    std::vector<LegendItem> items;
    for (int level = 1; level <= l.levels; ++level)
        items.push_back({M::Filled, levelColor(level), levelLabel(level)});
    if (l.anyOutside)
        items.push_back({M::Hollow, 0x808080, QStringLiteral("outside the image")});
    if (l.anyPoints)
        items.push_back({M::Note, 0, QStringLiteral("marker area \u221d weight")});
    if (l.arrows != Arrows::None)
        items.push_back({M::Arrow, kArrowColor,
            l.arrows == Arrows::PerTap ? QStringLiteral("offset per tap") : QStringLiteral("mean offset of the taps")});
    if (l.anyModulation)
        items.push_back({M::Ramp, 0, QStringLiteral("modulation 0 \u2192 1")});
    return items;
}

// Width of an item's marker (with its gap), in units of the base size.
double markerWidth(const LegendItem& item)
{
    switch (item.marker) {
    case LegendItem::Marker::Note: return 0;
    case LegendItem::Marker::Arrow:
    case LegendItem::Marker::Ramp: return 2.0;
    default: return 1.1;
    }
}

double legendWidth(const Layout& l, const std::vector<LegendItem>& items)
{
    const QFontMetricsF fm = metrics(l.fonts.legend);
    double w = 0;
    for (const LegendItem& item : items)
        w += markerWidth(item) * l.base + fm.horizontalAdvance(item.text) + 1.2 * l.base;
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
                if (l.arrows == Arrows::None && p->arrows != Arrows::None && p->offsets.hasArrows())
                    l.arrows = p->arrows;
                l.anyModulation = l.anyModulation || (p->modulationMap && p->offsets.hasModulation());
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
    if (l.legend()) {
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
    if (l.legend()) {
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
    using M = LegendItem::Marker;
    for (const LegendItem& item : items) {
        const double markerW = 1.6 * l.base; // arrows and ramps
        if (item.marker == M::Filled) {
            const QColor c = rgbColor(item.color);
            p.setPen(QPen(c.darker(190), 0.12 * r));
            p.setBrush(c);
            p.drawEllipse(QPointF(x + r, cy), r, r);
        } else if (item.marker == M::Hollow) {
            p.setPen(QPen(rgbColor(item.color), 0.25 * r));
            p.setBrush(Qt::NoBrush);
            p.drawEllipse(QPointF(x + r, cy), r * 0.88, r * 0.88);
        } else if (item.marker == M::Arrow) {
            QPainterPath arrow;
            arrow.moveTo(x, cy);
            arrow.lineTo(x + markerW, cy);
            arrow.moveTo(x + markerW - 0.45 * l.base, cy - 0.25 * l.base);
            arrow.lineTo(x + markerW, cy);
            arrow.lineTo(x + markerW - 0.45 * l.base, cy + 0.25 * l.base);
            strokeWithHalo(p, arrow, rgbColor(item.color), 0.1 * l.base);
        } else if (item.marker == M::Ramp) {
            const QRectF ramp(x, cy - 0.3 * l.base, markerW, 0.6 * l.base);
            QLinearGradient g(ramp.topLeft(), ramp.topRight());
            for (int i = 0; i <= 8; ++i)
                g.setColorAt(i / 8.0, rgbColor(colormap(kModulationColormap, i / 8.0)));
            p.fillRect(ramp, g);
        }
        x += markerWidth(item) * l.base;
        const double w = fm.horizontalAdvance(item.text);
        p.setPen(item.marker == M::Note ? QColor(0x55, 0x55, 0x55) : QColor(0x22, 0x22, 0x22));
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
    const double max = heatMax(heat);
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
        const double frac = heat.contours[i].fraction;
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

} // namespace deformscope::figure
