// One model's view of the input image: the image, zoomed and panned, with the
// overlays of one click's results for that model — the panel composeView
// (ui/canvas/view_panel.h) makes of them, drawn by figure::paintPanel, the very
// drawing an export of the view writes (saveView). GUI thread only. It draws
// what it is given (ui/view/view_data.h) plus its own interaction marks (the
// rubber band, the HUD) and reports what the user does with the mouse and keys
// as signals in input-grid coordinates; it never computes an analysis.
//
// Coordinates: input grid, pixel centres at integers (pixel (i, j) covers
// [i − ½, i + ½] × [j − ½, j + ½], as figure.h). Boxes (objectBoxDrawn,
// ClickView::objectBox) are in pixel edges: pixel (i, j) covers [i, i+1] × [j, j+1].
// A view is a zoom (widget pixels per image pixel, logical pixels) and a pan
// (the widget position of the image's top-left corner).
//
// Mouse and keys: a left click on the image (press and release within a few
// pixels) emits nodeClicked; the wheel zooms about the cursor; Ctrl+= / Ctrl++,
// Ctrl+-, Ctrl+0 (fit); dragging with the middle or right button, with
// Space + left, or with the left button past the click threshold pans; Shift +
// left drag (any left drag with setObjectTool(true)) draws a box that snaps to
// whole pixels and emits objectBoxDrawn (Esc cancels it); arrow keys emit stepNode.
#pragma once

#include "ui/canvas/overlays.h"
#include "ui/figure/figure.h"
#include "ui/view/view_data.h"

#include <QImage>
#include <QPointF>
#include <QRect>
#include <QRectF>
#include <QString>
#include <QWidget>

#include <optional>
#include <vector>

class QTimer;

namespace deformscope::ui {

class Canvas : public QWidget {
    Q_OBJECT
public:
    explicit Canvas(QWidget* parent = nullptr);
    ~Canvas() override;

    // The input-grid image before any result; drops the shown results. A null
    // image clears the canvas (the empty-state hint). Keeps the view when the
    // size is unchanged, else fits the new image.
    void setImage(const QImage& image);
    // Shows column `column` of `click` (its image is click->image, or
    // click->background). A column out of range shows the image without
    // results; a null click clears the canvas.
    void setColumn(ClickViewPtr click, int column);
    // No image, no results: the empty-state hint.
    void clear();
    // The shown results belong to an older click while a newer one is computed: the
    // canvas is dimmed and says so, until the next setColumn.
    void setStale(bool stale);
    bool isStale() const { return m_stale; }

    bool hasImage() const { return m_imageW > 0 && m_imageH > 0; }
    QSize imageSize() const { return {m_imageW, m_imageH}; }
    ClickViewPtr click() const { return m_click; }
    int column() const { return m_column; }

    void setOverlays(const CanvasOverlays& overlays);
    const CanvasOverlays& overlays() const { return m_overlays; }

    // With the object tool on, any left drag draws an object box (as Shift does).
    void setObjectTool(bool on);
    bool objectTool() const { return m_objectTool; }

    // The view. setZoom keeps the image point under `anchor` (widget
    // coordinates; default: the widget's centre) in place. The zoom is clamped
    // to [minZoom(), maxZoom()].
    double zoom() const { return m_zoom; }
    QPointF pan() const { return m_pan; }
    void setZoom(double zoom);
    void setZoom(double zoom, const QPointF& anchor);
    void setPan(const QPointF& pan);
    void panBy(const QPointF& delta);
    // Sets zoom and pan so that input-grid point `imageCentre` sits at the
    // widget's centre. `interactive`: part of a continuous gesture (another
    // column's drag or wheel), drawn as a draft until it settles.
    void setView(double zoom, const QPointF& imageCentre, bool interactive = false);
    QPointF viewCentre() const; // the input-grid point at the widget's centre
    void zoomIn();              // × 2^¼ about the centre
    void zoomOut();
    // Fits the whole image with a small margin, centred; the view then follows
    // resizes until the user zooms or pans. `zoom` > 0 uses that zoom instead of
    // this canvas's own fitting one (a comparison fits all columns alike).
    void fitToWindow(double zoom = 0);
    double fitZoom() const; // the zoom fitToWindow() would choose
    bool isFitted() const { return m_fitted; }
    // True while the user is zooming or panning (and for a moment after): the
    // canvas then draws a draft without the ERF's mass contours, whose outline
    // can be slow to stroke on a large, noisy heat map; the full drawing follows
    // when the gesture settles.
    bool isInteracting() const { return m_interacting; }
    static constexpr double minZoom() { return 1.0 / 32; }
    static constexpr double maxZoom() { return 256.0; }

    // Widget (logical pixels) <-> input grid (pixel centres at integers).
    QPointF widgetToImage(const QPointF& widget) const;
    QPointF imageToWidget(const QPointF& image) const;
    // The widget rectangle the image covers at the current view.
    QRectF imageRect() const;

    // The panel the canvas paints with figure::paintPanel for the current
    // click, column and overlays (composeView's, the same an export gets).
    const figure::Panel& composedPanel() const { return m_panel; }

    // The HUD (zoom, the modulation map's scale, notes): on by default; off,
    // the canvas shows the view alone, as saveView writes it.
    void setHudShown(bool shown);
    bool hudShown() const { return m_hudShown; }
    // The widget pixels the view covers (visibleRect: the image rectangle cut
    // to the widget, whole pixels); empty without an image.
    QRect viewRect() const;

    QSize sizeHint() const override { return {480, 400}; }
    QSize minimumSizeHint() const override { return {120, 100}; }

Q_SIGNALS:
    void nodeClicked(QPointF inputGridXY);
    void hovered(QPointF inputGridXY);  // while the pointer is over the image
    void hoverLeft();                   // the pointer left the image (or the widget)
    void stepNode(int dy, int dx);      // arrow keys
    void objectBoxDrawn(QRectF inputGridEdges);
    // Any change of zoom or pan, by the user or through the setters.
    void viewChanged(double zoom, QPointF pan);

protected:
    void paintEvent(QPaintEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    void keyReleaseEvent(QKeyEvent* event) override;
    void leaveEvent(QEvent* event) override;
    void focusOutEvent(QFocusEvent* event) override;
    void changeEvent(QEvent* event) override;

private:
    enum class Drag { None, Click, Pan, Box };

    void setBackground(figure::Image background);
    void rebuildPanel();
    void applyView(double zoom, const QPointF& pan, bool byUser);
    bool insideImage(const QPointF& imagePoint) const;
    QRectF snappedBox(const QPointF& a, const QPointF& b) const; // input-grid edges, whole pixels, clipped
    void updateCursor();
    void invalidate();

    void paintContent(QPainter& painter);
    void beginInteraction();
    void paintEmpty(QPainter& painter) const;
    void paintHud(QPainter& painter) const;

    // What is shown.
    figure::Image m_background;     // the same, for the figure renderer
    int m_imageW = 0, m_imageH = 0;
    ClickViewPtr m_click;
    bool m_stale = false;
    int m_column = -1;
    CanvasOverlays m_overlays;
    figure::Panel m_panel;          // composed from the above (composeView)
    std::optional<figure::Panel> m_draftPanel; // the same without mass contours, when it has any
    bool m_objectTool = false;
    bool m_hudShown = true;

    // The view.
    double m_zoom = 1;
    QPointF m_pan;
    bool m_fitted = true;

    // Interaction.
    Drag m_drag = Drag::None;
    Qt::MouseButton m_dragButton = Qt::NoButton;
    QPointF m_pressPos, m_lastPos;
    QPointF m_boxStart, m_boxEnd;   // input grid, while drawing a box
    bool m_spaceHeld = false;
    bool m_interacting = false;
    QTimer* m_settle = nullptr;     // ends m_interacting
    bool m_hovering = false;

    // The last rendering (widget size × device pixel ratio); repaints that change
    // nothing but the rubber band reuse it.
    QImage m_cache;
    bool m_cacheValid = false;
};

} // namespace deformscope::ui
