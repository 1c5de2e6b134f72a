// paintPanel and its painters: the panel raster (background, heat map, tint,
// dimmed mask), outlines and label outlines, moves, markers, points, the node, the modulation map and the offset
// arrows. Called by paintFigure (layout.cpp) for every panel and by the GUI
// canvas (ui/canvas) for its view, on whichever thread owns the painter.
#include "ui/figure/figure.h"

#include "ui/figure/figure_internal.h"

#include <QImage>
#include <QLineF>
#include <QPaintEngine>
#include <QPainter>
#include <QPainterPath>
#include <QPainterPathStroker>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace deformscope::figure {

bool OffsetField::hasArrows() const
{
    return featureH > 0 && featureW > 0 && taps > 0
        && arrows.size() == size_t(featureH) * size_t(featureW) * size_t(taps);
}

bool OffsetField::hasModulation() const
{
    return featureH > 0 && featureW > 0 && modulation.size() == size_t(featureH) * size_t(featureW);
}

namespace detail {

QColor rgbColor(uint32_t c, double alpha)
{
    QColor q(int((c >> 16) & 0xff), int((c >> 8) & 0xff), int(c & 0xff));
    q.setAlphaF(float(std::clamp(alpha, 0.0, 1.0)));
    return q;
}

bool validImage(const Image& im)
{
    return im.width > 0 && im.height > 0 && im.rgb.size() == size_t(im.width) * size_t(im.height) * 3;
}

bool validHeat(const std::optional<Heat>& heat)
{
    return heat && heat->width > 0 && heat->height > 0
        && heat->values.size() == size_t(heat->width) * size_t(heat->height);
}

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

double heatMax(const Heat& heat)
{
    double max = 0;
    for (float v : heat.values)
        if (std::isfinite(v))
            max = std::max(max, heat.isSigned ? double(std::fabs(v)) : double(v));
    return max;
}

QList<qreal> contourDashes(size_t index)
{
    switch (index % 3) {
    case 0: return {};
    case 1: return {3.5, 2.0};
    default: return {1.0, 1.6};
    }
}

void strokeWithHalo(QPainter& p, const QPainterPath& path, const QColor& color, double width,
    const QList<qreal>& dashes, double haloAlpha)
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

} // namespace detail

namespace {

using namespace detail;

bool isVectorDevice(const QPainter& painter)
{
    const QPaintEngine* engine = painter.paintEngine();
    return engine && (engine->type() == QPaintEngine::SVG || engine->type() == QPaintEngine::Pdf);
}

// Loops of grid coordinates mapped into `target` at (sx, sy) per grid pixel;
// `shift` is ½ for coordinates with pixel centres at integers, 0 for pixel edges.
QPainterPath outlinePath(const std::vector<analysis::Polygon>& loops, const QRectF& target, double sx, double sy,
    double shift)
{
    QPainterPath path;
    for (const analysis::Polygon& loop : loops) {
        QPolygonF mapped;
        mapped.reserve(qsizetype(loop.size()));
        for (const auto& v : loop)
            mapped << QPointF(target.left() + (v[0] + shift) * sx, target.top() + (v[1] + shift) * sy);
        path.addPolygon(mapped);
        path.closeSubpath();
    }
    return path;
}

// Position in the colour map of value v, for a map whose largest value is `top`.
double heatPosition(const Heat& heat, double top, double v)
{
    if (!std::isfinite(v) || !(top > 0))
        return heat.isSigned ? 0.5 : 0.0;
    double r = v / top; // in [-1, 1]
    if (!heat.isSigned)
        r = std::max(r, 0.0);
    if (heat.log) {
        static const double logTop = std::log10(1001.0);
        r = std::copysign(std::log10(1.0 + std::fabs(r) * 1000.0) / logTop, r);
    }
    return heat.isSigned ? 0.5 + 0.5 * r : r;
}

// ---------------------------------------------------------------- the panel raster

// Background, greyed under a heat map, the heat map blended over it, and the
// area outside a saliency mask dimmed: one raster, sampled nearest from each
// layer at the finest grid among them.
QImage panelRaster(const Panel& p, Grid grid)
{
    const bool heat = validHeat(p.heat);
    const bool mask = p.maskDims && p.mask.size() == grid.count();
    const bool tint = p.tint && p.tint->width == grid.width && p.tint->height == grid.height &&
        p.tint->rgba.size() == grid.count() * 4;
    Grid r = grid;
    if (heat) {
        r.width = std::max(r.width, p.heat->width);
        r.height = std::max(r.height, p.heat->height);
    }
    QImage image(r.width, r.height, QImage::Format_RGB888);
    const bool bg = validImage(p.background);
    const double top = heat ? heatMax(*p.heat) : 0.0;
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
            if (heat && p.heat->map) {
                const double l = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
                const int hx = int(int64_t(x) * p.heat->width / r.width);
                const int hy = int(int64_t(y) * p.heat->height / r.height);
                const double v = p.heat->values[size_t(hy) * p.heat->width + hx];
                const uint32_t h = colormap(p.heat->colormap, heatPosition(*p.heat, top, v));
                const double hc[3] = {double((h >> 16) & 0xff), double((h >> 8) & 0xff), double(h & 0xff)};
                for (int k = 0; k < 3; ++k)
                    c[k] = (1 - opacity) * l + opacity * hc[k];
            }
            if (tint) { // over the heat map: switched on, it is what the user looks at
                const uint8_t* t = &p.tint->rgba[(size_t(gy) * grid.width + gx) * 4];
                const double a = t[3] / 255.0;
                for (int k = 0; k < 3; ++k)
                    c[k] = (1 - a) * c[k] + a * t[k];
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
// ---------------------------------------------------------------- offset field

// The rectangle the cells cover (cell f spans start + f·jump ± jump / 2), in target coordinates.
QRectF cellsRect(const OffsetField& f, const QRectF& target, double sx, double sy)
{
    const double jx = f.jump[0] > 0 ? f.jump[0] : 1.0, jy = f.jump[1] > 0 ? f.jump[1] : 1.0;
    auto map = [&](double x, double y) { return QPointF(target.left() + (x + 0.5) * sx, target.top() + (y + 0.5) * sy); };
    return QRectF(map(f.start[0] - jx / 2, f.start[1] - jy / 2),
        map(f.start[0] + (f.featureW - 0.5) * jx, f.start[1] + (f.featureH - 0.5) * jy));
}

void drawModulation(QPainter& painter, const OffsetField& f, const QRectF& target, double sx, double sy)
{
    QImage map(f.featureW, f.featureH, QImage::Format_ARGB32);
    for (int fy = 0; fy < f.featureH; ++fy) {
        QRgb* line = reinterpret_cast<QRgb*>(map.scanLine(fy));
        for (int fx = 0; fx < f.featureW; ++fx) {
            const double m = f.modulation[size_t(fy) * size_t(f.featureW) + size_t(fx)];
            const uint32_t c = colormap(kModulationColormap, std::isfinite(m) ? std::clamp(m, 0.0, 1.0) : 0.0);
            line[fx] = qRgba(int((c >> 16) & 0xff), int((c >> 8) & 0xff), int(c & 0xff), kModulationAlpha);
        }
    }
    drawRaster(painter, map, cellsRect(f, target, sx, sy));
}

// Arrows of every `stride`-th cell counted from the node's, so that drawn cells
// stay `wanted` units apart at this scale and do not shimmer while panning.
void drawArrows(QPainter& painter, const OffsetField& f, Arrows mode, const QRectF& target, double sx, double sy,
    double unit)
{
    const bool perTap = mode == Arrows::PerTap;
    const double jx = f.jump[0] > 0 ? f.jump[0] : 1.0, jy = f.jump[1] > 0 ? f.jump[1] : 1.0;
    const double spacing = std::max(1e-6, std::min(jx * sx, jy * sy));
    const double wanted = perTap ? 44.0 : 16.0;
    const int stride = std::max(1, int(std::ceil(wanted / spacing)));
    const int fy0 = ((f.anchor[1] % stride) + stride) % stride, fx0 = ((f.anchor[0] % stride) + stride) % stride;

    const QRectF visible = painter.clipBoundingRect().adjusted(-8, -8, 8, 8);
    QPainterPath shafts, heads, dots;
    const double dotR = 1.1 * unit;
    auto map = [&](double x, double y) { return QPointF(target.left() + (x + 0.5) * sx, target.top() + (y + 0.5) * sy); };
    auto addArrow = [&](double x, double y, double dx, double dy) {
        const QPointF a = map(x, y), b = map(x + dx, y + dy);
        if (!visible.contains(a) && !visible.contains(b))
            return;
        dots.addEllipse(a, dotR, dotR);
        const QLineF line(a, b);
        const double len = line.length();
        if (len < 2.0)
            return;
        shafts.moveTo(a);
        shafts.lineTo(b);
        const double head = std::min(len * 0.45, 5.0 * unit);
        const QPointF u = (b - a) / len, n(-u.y(), u.x());
        heads.moveTo(b - u * head + n * head * 0.5);
        heads.lineTo(b);
        heads.lineTo(b - u * head - n * head * 0.5);
    };
    const int T = f.taps;
    for (int fy = fy0; fy < f.featureH; fy += stride)
        for (int fx = fx0; fx < f.featureW; fx += stride) {
            const OffsetArrow* a = &f.arrows[(size_t(fy) * size_t(f.featureW) + size_t(fx)) * size_t(T)];
            if (perTap) {
                for (int t = 0; t < T; ++t)
                    if (std::isfinite(a[t].dx) && std::isfinite(a[t].dy))
                        addArrow(a[t].x, a[t].y, a[t].dx, a[t].dy);
            } else {
                double x = 0, y = 0, dx = 0, dy = 0;
                int n = 0;
                for (int t = 0; t < T; ++t)
                    if (std::isfinite(a[t].dx) && std::isfinite(a[t].dy)) {
                        x += a[t].x, y += a[t].y, dx += a[t].dx, dy += a[t].dy;
                        ++n;
                    }
                if (n > 0)
                    addArrow(x / n, y / n, dx / n, dy / n);
            }
        }
    const QColor arrow = rgbColor(kArrowColor);
    const double w = 1.1 * unit;
    painter.setBrush(Qt::NoBrush);
    painter.setPen(QPen(QColor(0, 0, 0, 150), w * 2.4, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin));
    painter.drawPath(shafts);
    painter.drawPath(heads);
    painter.setPen(QPen(arrow, w, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin));
    painter.drawPath(shafts);
    painter.drawPath(heads);
    painter.setPen(QPen(QColor(0, 0, 0, 150), 0.8 * unit));
    painter.setBrush(arrow.darker(130));
    painter.drawPath(dots);
}

// ---------------------------------------------------------------- regions, moves, the node

void drawRegions(QPainter& painter, const Panel& panel, Grid grid, const QRectF& target, double sx, double sy,
    double unit)
{
    if (validHeat(panel.heat)) {
        const Heat& heat = *panel.heat;
        const double hx = target.width() / heat.width, hy = target.height() / heat.height;
        for (size_t i = 0; i < heat.contours.size(); ++i) {
            const analysis::MassContour& c = heat.contours[i];
            if (c.fraction > 0 && c.fraction <= 1 && !c.loops.empty())
                strokeWithHalo(painter, outlinePath(c.loops, target, hx, hy, 0.5),
                    rgbColor(contourColor(heat)), 1.0 * unit,
                    contourDashes(i), 0.45);
        }
    }
    if (panel.mask.size() == grid.count()) {
        const auto loops = analysis::regionOutline(panel.mask, grid.width, grid.height);
        if (!loops.empty())
            strokeWithHalo(painter, outlinePath(loops, target, sx, sy, 0), Qt::white, 1.3 * unit);
    }
    for (const LabelOutline& label : panel.labels) {
        if (label.mask.size() != grid.count())
            continue;
        const auto loops = analysis::regionOutline(label.mask, grid.width, grid.height);
        if (!loops.empty())
            strokeWithHalo(painter, outlinePath(loops, target, sx, sy, 0), rgbColor(label.color), 1.5 * unit,
                label.dashed ? QList<qreal>{3.0, 2.0} : QList<qreal>{});
    }
    const QColor objectColor = rgbColor(0xffe119);
    const QList<qreal> objectDashes{4.0, 2.5};
    if (panel.objectMask.size() == grid.count()) {
        const auto loops = analysis::regionOutline(panel.objectMask, grid.width, grid.height);
        if (!loops.empty())
            strokeWithHalo(painter, outlinePath(loops, target, sx, sy, 0), objectColor, 1.3 * unit, objectDashes);
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
}

void drawMoves(QPainter& painter, const Panel& panel, const QRectF& target, double sx, double sy, double unit)
{
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
}

void drawMarkers(QPainter& painter, const Panel& panel, const QRectF& target, double sx, double sy, double unit)
{
    for (const Marker& m : panel.markers) {
        if (!std::isfinite(m.x) || !std::isfinite(m.y))
            continue;
        const QPointF c(target.left() + (m.x + 0.5) * sx, target.top() + (m.y + 0.5) * sy);
        const double r = 4.0 * unit;
        QPainterPath path;
        path.moveTo(c.x(), c.y() - r);
        path.lineTo(c.x() + r, c.y());
        path.lineTo(c.x(), c.y() + r);
        path.lineTo(c.x() - r, c.y());
        path.closeSubpath();
        strokeWithHalo(painter, path, rgbColor(m.color), 1.4 * unit, {}, 0.7);
    }
}

void drawNode(QPainter& painter, const Panel& panel, const QRectF& target, double sx, double sy, double unit)
{
    if (!panel.node || !std::isfinite((*panel.node)[0]) || !std::isfinite((*panel.node)[1]))
        return;
    const QPointF c(target.left() + ((*panel.node)[0] + 0.5) * sx, target.top() + ((*panel.node)[1] + 0.5) * sy);
    QPainterPath path;
    const double arm = 5.5 * unit;
    path.moveTo(c.x() - arm, c.y());
    path.lineTo(c.x() + arm, c.y());
    path.moveTo(c.x(), c.y() - arm);
    path.lineTo(c.x(), c.y() + arm);
    const double cw = panel.nodeCell[0] * sx, ch = panel.nodeCell[1] * sy;
    if (cw > 0 && ch > 0 && std::isfinite(cw) && std::isfinite(ch))
        path.addRect(QRectF(c.x() - cw / 2, c.y() - ch / 2, cw, ch));
    strokeWithHalo(painter, path, rgbColor(0x00ff66), 1.3 * unit, {}, 0.7);
}

} // namespace

void paintPanel(QPainter& painter, const Panel& panel, const QRectF& target, const UnitRange& units)
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
    const double unit = std::clamp(std::sqrt(target.width() * target.height()) / 256.0, units.minUnit, units.maxUnit);

    drawRegions(painter, panel, grid, target, sx, sy, unit);
    drawMoves(painter, panel, target, sx, sy, unit);
    drawMarkers(painter, panel, target, sx, sy, unit);
    drawPoints(painter, panel, target, sx, sy, unit);
    drawNode(painter, panel, target, sx, sy, unit);
    if (panel.modulationMap && panel.offsets.hasModulation())
        drawModulation(painter, panel.offsets, target, sx, sy);
    if (panel.arrows != Arrows::None && panel.offsets.hasArrows())
        drawArrows(painter, panel.offsets, panel.arrows, target, sx, sy, unit);
    painter.restore();
}

uint32_t contourColor(const Heat& heat)
{
    if (heat.contourRgb)
        return heat.contourRgb;
    if (heat.colormap == "gray" || heat.colormap == "grey")
        return 0x00b4ff;
    if (heat.colormap == "coolwarm")
        return 0x202020;
    return 0xffffff;
}

} // namespace deformscope::figure
