// What a canvas shows, as plain data: one click's column composed under the
// user's overlays into the single figure::Panel that figure::paintPanel draws,
// and the export of that view through the same renderer. Pure functions (no
// widget, no state): the Canvas (GUI thread) and the main window's export call
// them, and any thread may.
#pragma once

#include "ui/canvas/overlays.h"
#include "ui/figure/figure.h"
#include "ui/view/view_data.h"

#include <QImage>
#include <QRect>
#include <QRectF>
#include <QString>

#include <optional>

namespace deformscope::ui {

// Marker and line sizes on screen: the figure's rule (one unit per 256 pixels of
// the image rectangle), bounded so that points stay readable when zoomed out and
// do not balloon when zoomed in. Views and their exports use it; figures do not.
inline constexpr figure::UnitRange kScreenUnits{0.9, 2.2};

// An image as the renderer's RGB grid (empty for a null image).
figure::Image toFigureImage(const QImage& image);
// The input-grid image a click is shown on: its `background`, else its `image`.
figure::Image clickBackground(const ClickView& click);

// The colour of the ERF's contours drawn without its heat map: chosen against the image
// (white on a dark image, deep blue on a light one).
uint32_t contourColorAgainst(const figure::Image& image);

// The panel for column `column` of `click` (null, or a column out of range or
// with an error: the background alone) on `background`, with what `overlays`
// switches on: sampling points (shown levels, optional weight shading), the ERF
// heat map (colour map, log scale, mass contours), the saliency region (outline
// and/or masked image), the node, the object (the click's box, else the
// panels' object mask), the node layer's offset arrows and modulation map, and
// for video models the motion tint and the propagated label's outlines or markers.
figure::Panel composeView(const figure::Image& background, const ClickView* click, int column,
                          const CanvasOverlays& overlays);

// The same panel without the ERF's mass contours (the draft a canvas draws while
// the user zooms or pans); nullopt when the panel has none.
std::optional<figure::Panel> withoutContours(const figure::Panel& panel);

// The pixels a view of `imageRect` (the image's rectangle in widget pixels)
// shows in a widget of `widgetSize`: those of their intersection that the image
// covers whole. The canvas draws the panel there and nowhere else, and culls
// offset arrows by it, as an export of the view does.
QRect visibleRect(const QRectF& imageRect, const QSize& widgetSize);

// Writes the view a canvas shows of `panel` — the image drawn into `imageRect`
// (widget pixels), cut to `visible` (visibleRect) — with kScreenUnits: PNG at
// one pixel per widget pixel, or SVG / PDF by the suffix. Returns "" or the
// error ("<path>: <what went wrong>").
QString saveView(const figure::Panel& panel, const QRectF& imageRect, const QRect& visible, const QString& path);

} // namespace deformscope::ui
