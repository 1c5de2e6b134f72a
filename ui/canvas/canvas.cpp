// The canvas: view transform, interaction, and the composition of one click's
// results into a figure::Panel that figure::paintPanel draws into the zoomed
// image rectangle. The offset arrows and the modulation map are the canvas's
// own, drawn on top.
#include "ui/canvas/canvas.h"

#include "ui/figure/contours.h"

#include <QFocusEvent>
#include <QFont>
#include <QFontMetricsF>
#include <QKeyEvent>
#include <QLineF>
#include <QLinearGradient>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QResizeEvent>
#include <QTimer>
#include <QWheelEvent>

#include <algorithm>
#include <cmath>

namespace deformscope::ui {
namespace {

const QColor kBackdrop(0x1b, 0x1c, 0x1f);   // around the image
const QColor kFrame(0x3a, 0x3c, 0x42);      // hairline around the image
const QColor kHint(0x9a, 0x9d, 0xa6);       // empty-state text
const QColor kArrow(0x00, 0xe5, 0xff);      // offset arrows
const QColor kBox(0xff, 0xe1, 0x19);        // object box (the figure's object colour)
constexpr double kClickSlop = 4.0;          // px a click may move and still be a click
constexpr double kFitMargin = 12.0;         // px around a fitted image
constexpr int kSettleMs = 160;               // a gesture has ended after this long without a change
constexpr double kZoomStep = 1.189207115002721; // 2^¼
const char* const kModulationMap = "viridis";
constexpr int kModulationAlpha = 128;       // of 255: the image and points stay readable under it

QColor rgbColor(uint32_t c, double alpha = 1.0)
{
    QColor q(int((c >> 16) & 0xff), int((c >> 8) & 0xff), int(c & 0xff));
    q.setAlphaF(float(std::clamp(alpha, 0.0, 1.0)));
    return q;
}

figure::Image toFigureImage(const QImage& source)
{
    figure::Image out;
    if (source.isNull())
        return out;
    const QImage rgb = source.convertToFormat(QImage::Format_RGB888);
    out.width = rgb.width();
    out.height = rgb.height();
    out.rgb.resize(size_t(out.width) * size_t(out.height) * 3);
    for (int y = 0; y < out.height; ++y)
        std::copy_n(rgb.constScanLine(y), size_t(out.width) * 3, out.rgb.begin() + ptrdiff_t(size_t(y) * out.width * 3));
    return out;
}

bool validImage(const figure::Image& im)
{
    return im.width > 0 && im.height > 0 && im.rgb.size() == size_t(im.width) * size_t(im.height) * 3;
}

// Marker and line size on screen, in the figure's units (1 = its 256-px panel):
// the figure's own rule (grows with the image rectangle), bounded so that points
// stay readable when zoomed out and do not balloon when zoomed in.
double screenUnit(const QRectF& target)
{
    const double natural = std::sqrt(target.width() * target.height()) / 256.0;
    return std::clamp(natural, 0.9, 2.2);
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
    m_imageW = validImage(m_background) ? m_background.width : 0;
    m_imageH = validImage(m_background) ? m_background.height : 0;
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
    if (!click) {
        clear();
        return;
    }
    if (click != m_click || !validImage(m_background)) {
        if (validImage(click->background)
            && (click->image.isNull()
                || (click->image.width() == click->background.width && click->image.height() == click->background.height)))
            setBackground(click->background);
        else
            setBackground(toFigureImage(click->image));
    }
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
    m_panel = figure::Panel{};
    m_draftPanel.reset();
    m_outline.clear();
    if (!hasImage()) {
        m_modulation = QImage();
        invalidate();
        return;
    }
    m_panel.background = m_background;
    const size_t pixels = size_t(m_imageW) * size_t(m_imageH);
    const ColumnView* col = nullptr;
    if (m_click && m_column >= 0 && size_t(m_column) < m_click->columns.size())
        col = &m_click->columns[size_t(m_column)];
    if (col && col->error.isEmpty()) {
        const CanvasOverlays& o = m_overlays;
        if (o.sampling && col->hasSampling) {
            for (figure::Point p : col->sampling.points) {
                if (!o.levelShown(p.level))
                    continue;
                if (!o.weightShading)
                    p.weight = 1;
                m_panel.points.push_back(p);
            }
            m_panel.levels = col->levels;
        }
        if (o.erf && col->hasErf && col->erf.heat) {
            figure::Heat heat = *col->erf.heat;
            heat.colormap = o.erfColormap.toStdString();
            heat.log = o.erfLog;
            if (!o.erfContours)
                heat.contours.clear();
            m_panel.heat = std::move(heat);
        }
        if (col->hasSaliency && col->saliency.mask.size() == pixels) {
            const std::vector<uint8_t>& mask = col->saliency.mask;
            if (o.saliencyOutline && o.saliencyMasked) {
                m_panel.mask = mask; // the figure's look: dimmed outside, outlined
            } else if (o.saliencyMasked) {
                // The masked image alone: dim the background where the region
                // leaves it out (by the figure's factor), no outline.
                for (size_t i = 0; i < pixels; ++i)
                    if (mask[i] == 0)
                        for (int k = 0; k < 3; ++k) {
                            uint8_t& c = m_panel.background.rgb[i * 3 + size_t(k)];
                            c = uint8_t(std::lround(c * 0.3));
                        }
            } else if (o.saliencyOutline) {
                m_outline = figure::detail::regionOutline(mask, m_imageW, m_imageH);
            }
        }
        if (std::isfinite(col->nodeCentre.x()) && std::isfinite(col->nodeCentre.y())
            && (col->hasSampling || col->hasErf || col->hasSaliency || !col->nodeCentre.isNull())) {
            m_panel.node = std::array<double, 2>{col->nodeCentre.x(), col->nodeCentre.y()};
            m_panel.nodeCell = {col->nodeCell.width(), col->nodeCell.height()};
        }
        if (o.object && m_click) {
            const QRectF b = m_click->objectBox.normalized();
            if (!m_click->objectBox.isNull()) {
                // ClickView's box is in pixel edges; the figure's in centre coordinates.
                m_panel.objectBox = std::array<double, 4>{b.left() - 0.5, b.top() - 0.5, b.right() - 0.5, b.bottom() - 0.5};
            } else {
                for (const figure::Panel* p : {&col->sampling, &col->erf, &col->saliency})
                    if (p->objectMask.size() == pixels) {
                        m_panel.objectMask = p->objectMask;
                        break;
                    }
            }
        }
    }
    if (m_panel.heat && !m_panel.heat->contours.empty()) {
        m_draftPanel = m_panel;
        m_draftPanel->heat->contours.clear();
    }
    rebuildModulation();
    invalidate();
}

void Canvas::rebuildModulation()
{
    m_modulation = QImage();
    if (!m_click || m_column < 0 || size_t(m_column) >= m_click->columns.size())
        return;
    const ColumnView& col = m_click->columns[size_t(m_column)];
    if (!col.hasModulation || !col.error.isEmpty() || col.featureH <= 0 || col.featureW <= 0 || col.taps <= 0
        || col.offsets.size() != size_t(col.featureH) * size_t(col.featureW) * size_t(col.taps))
        return;
    QImage map(col.featureW, col.featureH, QImage::Format_ARGB32);
    for (int fy = 0; fy < col.featureH; ++fy) {
        QRgb* line = reinterpret_cast<QRgb*>(map.scanLine(fy));
        for (int fx = 0; fx < col.featureW; ++fx) {
            const OffsetArrow* a = &col.offsets[(size_t(fy) * size_t(col.featureW) + size_t(fx)) * size_t(col.taps)];
            double sum = 0;
            for (int t = 0; t < col.taps; ++t)
                sum += std::isfinite(a[t].modulation) ? double(a[t].modulation) : 0.0;
            const uint32_t c = figure::colormap(kModulationMap, std::clamp(sum / col.taps, 0.0, 1.0));
            line[fx] = qRgba(int((c >> 16) & 0xff), int((c >> 8) & 0xff), int(c & 0xff), kModulationAlpha);
        }
    }
    m_modulation = map;
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

// ---------------------------------------------------------------- input

QRectF Canvas::snappedBox(const QPointF& a, const QPointF& b) const
{
    // Centre coordinates -> edges, then whole pixels: the pixels whose centres the drag covers.
    const double x0 = std::clamp(std::round(std::min(a.x(), b.x()) + 0.5), 0.0, double(m_imageW));
    const double x1 = std::clamp(std::round(std::max(a.x(), b.x()) + 0.5), 0.0, double(m_imageW));
    const double y0 = std::clamp(std::round(std::min(a.y(), b.y()) + 0.5), 0.0, double(m_imageH));
    const double y1 = std::clamp(std::round(std::max(a.y(), b.y()) + 0.5), 0.0, double(m_imageH));
    return QRectF(QPointF(x0, y0), QPointF(x1, y1));
}

void Canvas::updateCursor()
{
    if (m_drag == Drag::Pan)
        setCursor(Qt::ClosedHandCursor);
    else if (m_spaceHeld)
        setCursor(Qt::OpenHandCursor);
    else
        setCursor(Qt::CrossCursor);
}

void Canvas::wheelEvent(QWheelEvent* event)
{
    if (!hasImage()) {
        event->ignore();
        return;
    }
    const QPoint delta = event->angleDelta();
    const int d = delta.y() != 0 ? delta.y() : delta.x();
    if (d == 0) {
        event->ignore();
        return;
    }
    beginInteraction();
    setZoom(m_zoom * std::pow(2.0, d / 480.0), event->position()); // one notch: 2^¼
    event->accept();
}

void Canvas::mousePressEvent(QMouseEvent* event)
{
    if (m_drag != Drag::None) { // a second button during a drag: ignore it
        event->accept();
        return;
    }
    m_pressPos = m_lastPos = event->position();
    m_dragButton = event->button();
    if (event->button() == Qt::LeftButton) {
        if (m_spaceHeld)
            m_drag = Drag::Pan;
        else if (hasImage() && (m_objectTool || (event->modifiers() & Qt::ShiftModifier))) {
            m_drag = Drag::Box;
            m_boxStart = m_boxEnd = widgetToImage(event->position());
        } else
            m_drag = Drag::Click;
    } else if (event->button() == Qt::MiddleButton || event->button() == Qt::RightButton) {
        m_drag = Drag::Pan;
    } else {
        m_dragButton = Qt::NoButton;
        QWidget::mousePressEvent(event);
        return;
    }
    updateCursor();
    event->accept();
}

void Canvas::mouseMoveEvent(QMouseEvent* event)
{
    const QPointF pos = event->position();
    const bool moved = QLineF(pos, m_pressPos).length() > kClickSlop;
    switch (m_drag) {
    case Drag::Click:
        if (moved) { // past the click threshold: a left drag pans
            m_drag = Drag::Pan;
            updateCursor();
            beginInteraction();
            panBy(pos - m_pressPos);
        }
        break;
    case Drag::Pan:
        beginInteraction();
        panBy(pos - m_lastPos);
        break;
    case Drag::Box:
        m_boxEnd = widgetToImage(pos);
        update();
        break;
    case Drag::None:
        break;
    }
    m_lastPos = pos;

    const QPointF p = widgetToImage(pos);
    if (insideImage(p)) {
        m_hovering = true;
        Q_EMIT hovered(p);
    } else if (m_hovering) {
        m_hovering = false;
        Q_EMIT hoverLeft();
    }
    event->accept();
}

void Canvas::mouseReleaseEvent(QMouseEvent* event)
{
    if (event->button() != m_dragButton || m_drag == Drag::None) {
        QWidget::mouseReleaseEvent(event);
        return;
    }
    const Drag drag = m_drag;
    m_drag = Drag::None;
    m_dragButton = Qt::NoButton;
    const QPointF pos = event->position();
    const bool moved = QLineF(pos, m_pressPos).length() > kClickSlop;
    if (drag == Drag::Click || (drag == Drag::Box && !moved)) {
        // A click (also a Shift-click that drew no box) selects the node under it.
        const QPointF p = widgetToImage(drag == Drag::Box ? m_pressPos : pos);
        if (insideImage(p))
            Q_EMIT nodeClicked(p);
    } else if (drag == Drag::Box) {
        m_boxEnd = widgetToImage(pos);
        const QRectF box = snappedBox(m_boxStart, m_boxEnd);
        update();
        if (box.width() >= 1 && box.height() >= 1)
            Q_EMIT objectBoxDrawn(box);
    }
    updateCursor();
    event->accept();
}

void Canvas::keyPressEvent(QKeyEvent* event)
{
    const bool ctrl = event->modifiers() & Qt::ControlModifier;
    const int key = event->key();
    if (ctrl && (key == Qt::Key_Equal || key == Qt::Key_Plus)) {
        beginInteraction(); // keys repeat: a gesture too
        zoomIn();
    } else if (ctrl && (key == Qt::Key_Minus || key == Qt::Key_Underscore)) {
        beginInteraction();
        zoomOut();
    } else if (ctrl && key == Qt::Key_0) {
        fitToWindow();
    } else if (key == Qt::Key_Left || key == Qt::Key_Right || key == Qt::Key_Up || key == Qt::Key_Down) {
        Q_EMIT stepNode(key == Qt::Key_Up ? -1 : key == Qt::Key_Down ? 1 : 0,
            key == Qt::Key_Left ? -1 : key == Qt::Key_Right ? 1 : 0);
    } else if (key == Qt::Key_Space) {
        if (!event->isAutoRepeat()) {
            m_spaceHeld = true;
            updateCursor();
        }
    } else if (key == Qt::Key_Escape && m_drag == Drag::Box) {
        m_drag = Drag::None;
        m_dragButton = Qt::NoButton;
        update();
    } else {
        QWidget::keyPressEvent(event);
        return;
    }
    event->accept();
}

void Canvas::keyReleaseEvent(QKeyEvent* event)
{
    if (event->key() == Qt::Key_Space && !event->isAutoRepeat()) {
        m_spaceHeld = false;
        updateCursor();
        event->accept();
        return;
    }
    QWidget::keyReleaseEvent(event);
}

void Canvas::leaveEvent(QEvent* event)
{
    if (m_hovering) {
        m_hovering = false;
        Q_EMIT hoverLeft();
    }
    QWidget::leaveEvent(event);
}

void Canvas::focusOutEvent(QFocusEvent* event)
{
    m_spaceHeld = false; // the key release goes elsewhere
    updateCursor();
    QWidget::focusOutEvent(event);
}

void Canvas::changeEvent(QEvent* event)
{
    if (event->type() == QEvent::FontChange || event->type() == QEvent::PaletteChange)
        invalidate();
    QWidget::changeEvent(event);
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
    paintPanelScaled(painter, m_interacting && m_draftPanel ? *m_draftPanel : m_panel, target);
    if (!m_outline.empty()) {
        // Outline alone (no dimming): the figure's outline style, drawn here.
        const double unit = screenUnit(target);
        QPainterPath path;
        for (const QPolygonF& loop : m_outline) {
            QPolygonF mapped;
            for (const QPointF& v : loop)
                mapped << imageToWidget(v - QPointF(0.5, 0.5));
            path.addPolygon(mapped);
            path.closeSubpath();
        }
        painter.save();
        painter.setClipRect(target);
        painter.setRenderHint(QPainter::Antialiasing, true);
        painter.setBrush(Qt::NoBrush);
        painter.setPen(QPen(QColor(0, 0, 0, 140), 1.3 * unit * 2.2, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin));
        painter.drawPath(path);
        painter.setPen(QPen(Qt::white, 1.3 * unit, Qt::SolidLine, Qt::SquareCap, Qt::MiterJoin));
        painter.drawPath(path);
        painter.restore();
    }
    if (m_overlays.modulation)
        paintModulation(painter);
    if (m_overlays.offsets != CanvasOverlays::Offsets::Off)
        paintOffsets(painter);
    paintHud(painter);
}

void Canvas::paintPanelScaled(QPainter& painter, const figure::Panel& panel, const QRectF& target) const
{
    // figure::paintPanel sizes its markers and lines from the target (1 unit on
    // a 256-px panel, clamped to [0.35, 4]). Painting under a scale s into
    // target / s gives markers of screenUnit() on screen at any zoom, while the
    // image still lands exactly in `target`.
    const double natural = std::sqrt(target.width() * target.height()) / 256.0;
    const double wanted = screenUnit(target);
    if (std::fabs(natural - wanted) < 1e-9) {
        figure::paintPanel(painter, panel, target);
        return;
    }
    const double s = wanted < natural ? wanted / 4.0 : wanted / 0.35;
    painter.save();
    painter.scale(s, s);
    figure::paintPanel(painter, panel, QRectF(target.topLeft() / s, target.size() / s));
    painter.restore();
}

void Canvas::paintModulation(QPainter& painter) const
{
    if (m_modulation.isNull() || !m_click)
        return;
    const ColumnView& col = m_click->columns[size_t(m_column)];
    const double jx = col.nodeCell.width() > 0 ? col.nodeCell.width() : 1.0;
    const double jy = col.nodeCell.height() > 0 ? col.nodeCell.height() : 1.0;
    // Feature f is centred at start + f·jump; its cell spans ±jump/2.
    const double startX = col.nodeCentre.x() - col.fx * jx, startY = col.nodeCentre.y() - col.fy * jy;
    const QRectF cells(imageToWidget(QPointF(startX - jx / 2, startY - jy / 2)),
        imageToWidget(QPointF(startX + (col.featureW - 0.5) * jx, startY + (col.featureH - 0.5) * jy)));
    painter.save();
    painter.setClipRect(imageRect());
    painter.setRenderHint(QPainter::SmoothPixmapTransform, false);
    painter.drawImage(cells, m_modulation);
    painter.restore();
}

void Canvas::paintOffsets(QPainter& painter) const
{
    if (!m_click || m_column < 0 || size_t(m_column) >= m_click->columns.size())
        return;
    const ColumnView& col = m_click->columns[size_t(m_column)];
    const int H = col.featureH, W = col.featureW, T = col.taps;
    if (!col.error.isEmpty() || H <= 0 || W <= 0 || T <= 0 || col.offsets.size() != size_t(H) * size_t(W) * size_t(T))
        return;
    const bool perTap = m_overlays.offsets == CanvasOverlays::Offsets::PerTap;
    // Thin the cells so neighbouring arrows stay apart on screen; the kept
    // cells are anchored on the node's, so they do not shimmer while panning.
    const double jx = col.nodeCell.width() > 0 ? col.nodeCell.width() : 1.0;
    const double jy = col.nodeCell.height() > 0 ? col.nodeCell.height() : 1.0;
    const double spacing = std::max(1e-6, std::min(jx, jy) * m_zoom);
    const double wanted = perTap ? 44.0 : 16.0;
    const int stride = std::max(1, int(std::ceil(wanted / spacing)));
    const int fy0 = ((col.fy % stride) + stride) % stride, fx0 = ((col.fx % stride) + stride) % stride;

    const QRectF visible = QRectF(rect()).adjusted(-8, -8, 8, 8);
    const double unit = screenUnit(imageRect());
    QPainterPath shafts, heads;
    QPainterPath dots;
    const double dotR = 1.1 * unit;
    auto addArrow = [&](double x, double y, double dx, double dy) {
        const QPointF a = imageToWidget(QPointF(x, y)), b = imageToWidget(QPointF(x + dx, y + dy));
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
    for (int fy = fy0; fy < H; fy += stride)
        for (int fx = fx0; fx < W; fx += stride) {
            const OffsetArrow* a = &col.offsets[(size_t(fy) * size_t(W) + size_t(fx)) * size_t(T)];
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
    painter.save();
    painter.setClipRect(imageRect());
    painter.setRenderHint(QPainter::Antialiasing, true);
    const double w = 1.1 * unit;
    painter.setBrush(Qt::NoBrush);
    painter.setPen(QPen(QColor(0, 0, 0, 150), w * 2.4, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin));
    painter.drawPath(shafts);
    painter.drawPath(heads);
    painter.setPen(QPen(kArrow, w, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin));
    painter.drawPath(shafts);
    painter.drawPath(heads);
    painter.setPen(QPen(QColor(0, 0, 0, 150), 0.8 * unit));
    painter.setBrush(kArrow.darker(130));
    painter.drawPath(dots);
    painter.restore();
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
    if (m_overlays.modulation && !m_modulation.isNull()) {
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
            g.setColorAt(i / 8.0, rgbColor(figure::colormap(kModulationMap, i / 8.0)));
        painter.fillRect(bar, g);
        painter.drawText(QRectF(bar.right() + pad, r.top(), fm.horizontalAdvance(QStringLiteral("1")) + 2, h),
            Qt::AlignVCenter, QStringLiteral("1"));
    }

    // Notes, top left: an error for this column, a cancelled search.
    if (m_click && m_column >= 0 && size_t(m_column) < m_click->columns.size()) {
        const ColumnView& col = m_click->columns[size_t(m_column)];
        if (!col.error.isEmpty())
            chip(QPointF(8, 8), fm.elidedText(col.error, Qt::ElideRight, std::max(40, width() - 40)),
                QColor(0xff, 0x8a, 0x80), false);
        else if (m_click->cancelled)
            chip(QPointF(8, 8), tr("search cancelled \u2014 best verified region shown"), QColor(0xff, 0xd5, 0x80), false);
    }
    painter.restore();
}

} // namespace deformscope::ui
