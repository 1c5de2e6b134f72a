// The canvas: the view transform, what it shows (the panel composed by
// ui/canvas/view_panel.h and drawn by figure::paintPanel) and its own marks (the
// rubber band, the HUD). GUI thread only; mouse and keys are in canvas_input.cpp.
#include "ui/canvas/canvas.h"

#include "ui/canvas/view_panel.h"

#include <QFont>
#include <QFontMetricsF>
#include <QLinearGradient>
#include <QPainter>
#include <QResizeEvent>
#include <QTimer>

#include <algorithm>
#include <cmath>

namespace deformscope::ui {
namespace {

const QColor kBackdrop(0x1b, 0x1c, 0x1f);   // around the image
const QColor kFrame(0x3a, 0x3c, 0x42);      // hairline around the image
const QColor kHint(0x9a, 0x9d, 0xa6);       // empty-state text
const QColor kBox(0xff, 0xe1, 0x19);        // object box (the figure's object colour)
constexpr double kFitMargin = 12.0;         // px around a fitted image
constexpr int kSettleMs = 160;               // a gesture has ended after this long without a change
constexpr double kZoomStep = 1.189207115002721; // 2^¼

QColor rgbColor(uint32_t c)
{
    return QColor(int((c >> 16) & 0xff), int((c >> 8) & 0xff), int(c & 0xff));
}

QFont uiFont(double pointSize, bool bold = false)
{
    QFont font;
    font.setPointSizeF(pointSize);
    font.setBold(bold);
    return font;
}

} // namespace

Canvas::Canvas(QWidget* parent) : QWidget(parent)
{
    setFocusPolicy(Qt::StrongFocus);
    setMouseTracking(true);
    setAttribute(Qt::WA_OpaquePaintEvent);
    setAutoFillBackground(false);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    m_settle = new QTimer(this);
    m_settle->setSingleShot(true);
    m_settle->setInterval(kSettleMs);
    connect(m_settle, &QTimer::timeout, this, [this] {
        m_interacting = false;
        if (m_draftPanel)
            invalidate();
    });
    updateCursor();
}

Canvas::~Canvas() = default;

// ---------------------------------------------------------------- content

void Canvas::setBackground(figure::Image background)
{
    const bool sameSize = background.width == m_imageW && background.height == m_imageH;
    m_background = std::move(background);
    const bool valid = m_background.width > 0 && m_background.height > 0
        && m_background.rgb.size() == size_t(m_background.width) * size_t(m_background.height) * 3;
    m_imageW = valid ? m_background.width : 0;
    m_imageH = valid ? m_background.height : 0;
    if (!sameSize || m_fitted)
        fitToWindow();
}

void Canvas::setImage(const QImage& image)
{
    m_click.reset();
    m_column = -1;
    setBackground(toFigureImage(image));
    rebuildPanel();
}

void Canvas::setColumn(ClickViewPtr click, int column)
{
    m_stale = false;
    if (!click) {
        clear();
        return;
    }
    if (click != m_click || !hasImage())
        setBackground(clickBackground(*click));
    m_click = std::move(click);
    m_column = column;
    rebuildPanel();
}

void Canvas::clear()
{
    m_click.reset();
    m_column = -1;
    setBackground({});
    rebuildPanel();
}

void Canvas::setOverlays(const CanvasOverlays& overlays)
{
    if (overlays == m_overlays)
        return;
    m_overlays = overlays;
    rebuildPanel();
}

void Canvas::setObjectTool(bool on)
{
    m_objectTool = on;
    updateCursor();
}

void Canvas::beginInteraction()
{
    m_interacting = true;
    m_settle->start();
}

void Canvas::rebuildPanel()
{
    m_panel = composeView(m_background, m_click.get(), m_column, m_overlays);
    m_draftPanel = withoutContours(m_panel);
    invalidate();
}

void Canvas::setHudShown(bool shown)
{
    if (shown == m_hudShown)
        return;
    m_hudShown = shown;
    invalidate();
}

QRect Canvas::viewRect() const
{
    return hasImage() ? visibleRect(imageRect(), size()) : QRect();
}

// ---------------------------------------------------------------- view

QPointF Canvas::widgetToImage(const QPointF& w) const
{
    return {(w.x() - m_pan.x()) / m_zoom - 0.5, (w.y() - m_pan.y()) / m_zoom - 0.5};
}

QPointF Canvas::imageToWidget(const QPointF& p) const
{
    return {m_pan.x() + (p.x() + 0.5) * m_zoom, m_pan.y() + (p.y() + 0.5) * m_zoom};
}

QRectF Canvas::imageRect() const
{
    return {m_pan.x(), m_pan.y(), m_imageW * m_zoom, m_imageH * m_zoom};
}

QPointF Canvas::viewCentre() const
{
    return widgetToImage(QPointF(width() / 2.0, height() / 2.0));
}

bool Canvas::insideImage(const QPointF& p) const
{
    return hasImage() && p.x() >= -0.5 && p.y() >= -0.5 && p.x() < m_imageW - 0.5 && p.y() < m_imageH - 0.5;
}

double Canvas::fitZoom() const
{
    if (!hasImage())
        return 1;
    const double w = std::max(1.0, width() - 2 * kFitMargin), h = std::max(1.0, height() - 2 * kFitMargin);
    return std::clamp(std::min(w / m_imageW, h / m_imageH), minZoom(), maxZoom());
}

void Canvas::applyView(double zoom, const QPointF& pan, bool byUser)
{
    zoom = std::clamp(std::isfinite(zoom) ? zoom : 1.0, minZoom(), maxZoom());
    QPointF p = std::isfinite(pan.x()) && std::isfinite(pan.y()) ? pan : m_pan;
    if (hasImage()) {
        // Keep some of the image on screen, so it can never be panned out of reach.
        const double keep = std::min({32.0, m_imageW * zoom, m_imageH * zoom});
        p.setX(std::clamp(p.x(), keep - m_imageW * zoom, std::max(keep - m_imageW * zoom, width() - keep)));
        p.setY(std::clamp(p.y(), keep - m_imageH * zoom, std::max(keep - m_imageH * zoom, height() - keep)));
    }
    if (byUser)
        m_fitted = false;
    if (zoom == m_zoom && p == m_pan)
        return;
    m_zoom = zoom;
    m_pan = p;
    invalidate();
    Q_EMIT viewChanged(m_zoom, m_pan);
}

void Canvas::setZoom(double zoom) { setZoom(zoom, QPointF(width() / 2.0, height() / 2.0)); }

void Canvas::setZoom(double zoom, const QPointF& anchor)
{
    zoom = std::clamp(std::isfinite(zoom) ? zoom : m_zoom, minZoom(), maxZoom());
    const QPointF under = widgetToImage(anchor);
    applyView(zoom, anchor - QPointF((under.x() + 0.5) * zoom, (under.y() + 0.5) * zoom), true);
}

void Canvas::setPan(const QPointF& pan) { applyView(m_zoom, pan, true); }

void Canvas::panBy(const QPointF& delta) { applyView(m_zoom, m_pan + delta, true); }

void Canvas::setView(double zoom, const QPointF& imageCentre, bool interactive)
{
    if (interactive)
        beginInteraction();
    zoom = std::clamp(std::isfinite(zoom) ? zoom : m_zoom, minZoom(), maxZoom());
    const QPointF centre(width() / 2.0, height() / 2.0);
    applyView(zoom, centre - QPointF((imageCentre.x() + 0.5) * zoom, (imageCentre.y() + 0.5) * zoom), true);
}

void Canvas::zoomIn() { setZoom(m_zoom * kZoomStep); }

void Canvas::zoomOut() { setZoom(m_zoom / kZoomStep); }

void Canvas::fitToWindow(double zoom)
{
    m_fitted = true;
    const double z = zoom > 0 && std::isfinite(zoom) ? std::clamp(zoom, minZoom(), maxZoom()) : fitZoom();
    applyView(z, QPointF((width() - m_imageW * z) / 2.0, (height() - m_imageH * z) / 2.0), false);
}

void Canvas::resizeEvent(QResizeEvent* event)
{
    if (m_fitted) {
        fitToWindow();
    } else if (event->oldSize().isValid()) {
        // Keep the image point at the centre where it was.
        const QPointF oldCentre(event->oldSize().width() / 2.0, event->oldSize().height() / 2.0);
        const QPointF c = widgetToImage(oldCentre);
        const QPointF centre(width() / 2.0, height() / 2.0);
        applyView(m_zoom, centre - QPointF((c.x() + 0.5) * m_zoom, (c.y() + 0.5) * m_zoom), false);
    }
    invalidate();
}

// ---------------------------------------------------------------- painting

void Canvas::invalidate()
{
    m_cacheValid = false;
    update();
}

void Canvas::paintEvent(QPaintEvent*)
{
    const qreal dpr = devicePixelRatioF();
    const QSize pixels(int(std::ceil(width() * dpr)), int(std::ceil(height() * dpr)));
    if (!m_cacheValid || m_cache.size() != pixels || m_cache.devicePixelRatio() != dpr) {
        m_cache = QImage(pixels, QImage::Format_ARGB32_Premultiplied);
        m_cache.setDevicePixelRatio(dpr);
        QPainter cache(&m_cache);
        paintContent(cache);
        m_cacheValid = true;
    }
    QPainter painter(this);
    painter.drawImage(QPointF(0, 0), m_cache);
    if (m_drag == Drag::Box) {
        // The rubber band, snapped to the pixels it will select.
        const QRectF box = snappedBox(m_boxStart, m_boxEnd);
        const QRectF r(imageToWidget(box.topLeft() - QPointF(0.5, 0.5)), imageToWidget(box.bottomRight() - QPointF(0.5, 0.5)));
        painter.setRenderHint(QPainter::Antialiasing, true);
        QColor fill = kBox;
        fill.setAlpha(40);
        painter.fillRect(r, fill);
        painter.setPen(QPen(QColor(0, 0, 0, 150), 3));
        painter.drawRect(r);
        QPen pen(kBox, 1.5, Qt::DashLine);
        painter.setPen(pen);
        painter.drawRect(r);
        const QString size = QStringLiteral("%1 × %2").arg(box.width()).arg(box.height());
        painter.setFont(uiFont(8.5));
        const QFontMetricsF fm(painter.font());
        const QRectF label(r.left(), r.bottom() + 4, fm.horizontalAdvance(size) + 10, fm.height() + 4);
        painter.fillRect(label, QColor(0, 0, 0, 170));
        painter.setPen(kBox);
        painter.drawText(label, Qt::AlignCenter, size);
    }
}

void Canvas::setStale(bool stale)
{
    if (stale == m_stale)
        return;
    m_stale = stale;
    m_cacheValid = false;
    update();
}

void Canvas::paintContent(QPainter& painter)
{
    painter.fillRect(QRectF(0, 0, width(), height()), kBackdrop);
    if (!hasImage()) {
        paintEmpty(painter);
        return;
    }
    const QRectF target = imageRect();
    painter.setRenderHint(QPainter::Antialiasing, false);
    painter.setPen(QPen(kFrame, 1));
    painter.setBrush(Qt::NoBrush);
    painter.drawRect(target.adjusted(-1, -1, 0, 0));
    painter.save();
    painter.setClipRect(viewRect()); // as an export of this view: its page cuts and culls alike
    figure::paintPanel(painter, m_interacting && m_draftPanel ? *m_draftPanel : m_panel, target, kScreenUnits);
    painter.restore();
    if (m_hudShown)
        paintHud(painter);
}

void Canvas::paintEmpty(QPainter& painter) const
{
    painter.save();
    painter.setRenderHint(QPainter::Antialiasing, true);
    const QRectF frame = QRectF(rect()).adjusted(16, 16, -16, -16);
    if (frame.width() > 40 && frame.height() > 40) {
        QPen pen(QColor(0x45, 0x47, 0x4d), 1.5, Qt::DashLine);
        painter.setPen(pen);
        painter.setBrush(Qt::NoBrush);
        painter.drawRoundedRect(frame, 10, 10);
    }
    QFont font = uiFont(11.5);
    painter.setFont(font);
    painter.setPen(kHint);
    painter.drawText(frame.adjusted(12, 12, -12, -12), Qt::AlignCenter | Qt::TextWordWrap,
        tr("Open a model and an image \u2014 or drop them here"));
    painter.restore();
}

void Canvas::paintHud(QPainter& painter) const
{
    painter.save();
    painter.setRenderHint(QPainter::Antialiasing, true);
    painter.setFont(uiFont(8.5));
    const QFontMetricsF fm(painter.font());
    const double pad = 6, h = fm.height() + 4;
    auto chip = [&](const QPointF& at, const QString& text, const QColor& color, bool alignRight) {
        const double w = fm.horizontalAdvance(text) + 2 * pad;
        QRectF r(alignRight ? at.x() - w : at.x(), at.y(), w, h);
        painter.setPen(Qt::NoPen);
        painter.setBrush(QColor(0, 0, 0, 160));
        painter.drawRoundedRect(r, 4, 4);
        painter.setPen(color);
        painter.drawText(r, Qt::AlignCenter, text);
        return r;
    };
    // Zoom, bottom right.
    const QString zoom = m_zoom >= 1 ? QStringLiteral("%1 %").arg(std::lround(m_zoom * 100))
                                     : QStringLiteral("%1 %").arg(m_zoom * 100, 0, 'g', 3);
    chip(QPointF(width() - 8, height() - 8 - h), zoom, QColor(0xd0, 0xd2, 0xd8), true);

    // The modulation map's scale, bottom left.
    if (m_panel.modulationMap && m_panel.offsets.hasModulation()) {
        const QString label = tr("modulation 0");
        const double barW = 72;
        const QRectF r(8, height() - 8 - h, fm.horizontalAdvance(label) + barW + fm.horizontalAdvance(QStringLiteral("1")) + 4 * pad, h);
        painter.setPen(Qt::NoPen);
        painter.setBrush(QColor(0, 0, 0, 160));
        painter.drawRoundedRect(r, 4, 4);
        painter.setPen(QColor(0xd0, 0xd2, 0xd8));
        painter.drawText(QRectF(r.left() + pad, r.top(), fm.horizontalAdvance(label), h), Qt::AlignVCenter, label);
        const QRectF bar(r.left() + 2 * pad + fm.horizontalAdvance(label), r.top() + 4, barW, h - 8);
        QLinearGradient g(bar.topLeft(), bar.topRight());
        for (int i = 0; i <= 8; ++i)
            g.setColorAt(i / 8.0, rgbColor(figure::colormap(figure::kModulationColormap, i / 8.0)));
        painter.fillRect(bar, g);
        painter.drawText(QRectF(bar.right() + pad, r.top(), fm.horizontalAdvance(QStringLiteral("1")) + 2, h),
            Qt::AlignVCenter, QStringLiteral("1"));
    }

    // The legend, top right: one row per overlay shown, in its colours (not on a canvas too
    // small to leave the image visible under it).
    if (width() >= 300 && height() >= 220) {
        double y = 8;
        // One rounded row of (dot, text) parts, right-aligned, with `room` more pixels at its
        // end; returns that room's rectangle.
        auto row = [&](const std::vector<std::pair<QString, QColor>>& parts, double room = 0) {
            double w = 2 * pad + room;
            for (const auto& [text, color] : parts)
                w += fm.horizontalAdvance(text) + (color.isValid() ? h * 0.7 : 0) + 6;
            const QRectF r(width() - 8 - w, y, w, h);
            painter.setPen(Qt::NoPen);
            painter.setBrush(QColor(0, 0, 0, 160));
            painter.drawRoundedRect(r, 4, 4);
            double x = r.left() + pad;
            for (const auto& [text, color] : parts) {
                if (color.isValid()) {
                    painter.setPen(Qt::NoPen);
                    painter.setBrush(color);
                    painter.drawEllipse(QPointF(x + h * 0.3, r.center().y()), h * 0.22, h * 0.22);
                    x += h * 0.7;
                }
                painter.setPen(QColor(0xd0, 0xd2, 0xd8));
                painter.drawText(QRectF(x, r.top(), fm.horizontalAdvance(text) + 2, h), Qt::AlignVCenter, text);
                x += fm.horizontalAdvance(text) + 6;
            }
            y = r.bottom() + 4;
            return QRectF(x, r.top(), r.right() - pad - x, h);
        };
        if (!m_panel.points.empty()) {
            int levels = m_panel.levels;
            for (const figure::Point& p : m_panel.points)
                levels = std::max(levels, p.level);
            std::vector<std::pair<QString, QColor>> parts{{tr("sampling points, level"), QColor()}};
            for (int l = 1; l <= std::min(levels, 8); ++l)
                if (m_overlays.levelShown(l))
                    parts.push_back({QString::number(l), rgbColor(figure::levelColor(l))});
            row(parts);
        }
        if (m_panel.heat && !m_panel.heat->contours.empty()) {
            const uint32_t rgb = figure::contourColor(*m_panel.heat); // as paintPanel draws them
            QStringList fractions;
            const QStringList dashes{QStringLiteral("solid"), QStringLiteral("dashed"), QStringLiteral("dotted")};
            for (size_t i = 0; i < m_panel.heat->contours.size(); ++i)
                fractions << QStringLiteral("%1 % %2").arg(std::lround(100 * m_panel.heat->contours[i].fraction))
                                                     .arg(dashes[int(std::min<size_t>(i, 2))]);
            row({{tr("ERF mass:"), QColor()}, {fractions.join(QStringLiteral(", ")), rgbColor(rgb)}});
        }
        if (m_panel.heat && m_panel.heat->map) {
            // The ERF's colour bar: 0 to the node's largest gradient.
            const double barW = 72;
            const QString max = tr("max");
            const QRectF free = row({{tr("ERF 0"), QColor()}}, barW + 4 + fm.horizontalAdvance(max));
            const QRectF bar(free.left(), free.top() + 4, barW, h - 8);
            QLinearGradient g(bar.topLeft(), bar.topRight());
            for (int i = 0; i <= 8; ++i)
                g.setColorAt(i / 8.0, rgbColor(figure::colormap(m_panel.heat->colormap, i / 8.0)));
            painter.fillRect(bar, g);
            painter.setPen(QColor(0xd0, 0xd2, 0xd8));
            painter.drawText(QRectF(bar.right() + 4, free.top(), fm.horizontalAdvance(max) + 2, h), Qt::AlignVCenter, max);
        }
        if (!m_panel.mask.empty())
            row({{tr("saliency region (outline)"), QColor(Qt::white)}});
        if (m_panel.objectBox || !m_panel.objectMask.empty())
            row({{tr("object (dashed)"), kBox}});
    }

    // Notes, top left: results of an older click, an error for this column, a saliency
    // search still running or cancelled.
    double top = 8;
    if (m_stale && m_click) {
        painter.fillRect(QRectF(0, 0, width(), height()), QColor(0x10, 0x11, 0x14, 110));
        top = chip(QPointF(8, top), tr("updating \u2014 showing the previous click"), QColor(0xd0, 0xd2, 0xd8), false)
                  .bottom() + 4;
    }
    if (m_click && m_column >= 0 && size_t(m_column) < m_click->columns.size()) {
        const ColumnView& col = m_click->columns[size_t(m_column)];
        const bool saliencyShown = m_overlays.saliencyOutline || m_overlays.saliencyMasked;
        if (!col.error.isEmpty())
            chip(QPointF(8, top), fm.elidedText(col.error, Qt::ElideRight, std::max(40, width() - 40)),
                QColor(0xff, 0x8a, 0x80), false);
        else if (col.saliencyCancelled)
            chip(QPointF(8, top), tr("saliency search cancelled \u2014 no region shown"), QColor(0xff, 0xd5, 0x80), false);
        else if (col.saliencyPending && saliencyShown)
            chip(QPointF(8, top), tr("saliency region: searching\u2026"), QColor(0xd0, 0xd2, 0xd8), false);
        // Video models: what the motion tint's two halves are, and the label colours.
        double y = height() - 8 - h;
        if (m_panel.modulationMap && m_panel.offsets.hasModulation())
            y -= h + 4;
        if (!m_panel.labels.empty() || !m_panel.markers.empty()) {
            auto shown = [&](uint32_t color) {
                return std::any_of(m_panel.labels.begin(), m_panel.labels.end(),
                           [&](const figure::LabelOutline& l) { return l.color == color; })
                    || std::any_of(m_panel.markers.begin(), m_panel.markers.end(),
                           [&](const figure::Marker& mk) { return mk.color == color; });
            };
            double x = 8;
            for (const auto& [text, color] : std::initializer_list<std::pair<QString, uint32_t>>{
                     {tr("label given"), kLabelGivenColor}, {tr("carried by the reads"), kLabelReadsColor},
                     {tr("by the flow (dashed)"), kLabelFlowColor}, {tr("the frame's own label"), kLabelTruthColor}})
                if (shown(color))
                    x = chip(QPointF(x, y), text, rgbColor(color), false).right() + 4;
            y -= h + 4;
        }
        if (m_panel.tint && col.hasMotion)
            chip(QPointF(8, y),
                tr("motion: %1's offsets (reference frame) | DIS optical flow (support frame) \u00b7 full colour at %2 px")
                    .arg(col.motionLayer)
                    .arg(col.motionScalePx, 0, 'f', 1),
                QColor(0xd0, 0xd2, 0xd8), false);
    }
    painter.restore();
}


} // namespace deformscope::ui
