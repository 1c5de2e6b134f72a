// The canvas's mouse, wheel and key handling: clicks select a node, drags pan
// or draw the object box, the wheel and keys zoom and step. GUI thread only
// (Qt's event handlers); the view and the painting are in canvas.cpp.
#include "ui/canvas/canvas.h"

#include <QFocusEvent>
#include <QKeyEvent>
#include <QLineF>
#include <QMouseEvent>
#include <QWheelEvent>

#include <algorithm>
#include <cmath>

namespace deformscope::ui {
namespace {

constexpr double kClickSlop = 4.0; // px a click may move and still be a click

} // namespace

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

} // namespace deformscope::ui
