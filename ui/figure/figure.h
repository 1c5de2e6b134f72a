// The one figure renderer (QPainter → PNG / SVG / PDF). The CLI's figures and
// the GUI's export both come from here, and the GUI canvas draws every overlay
// with paintPanel(), so screen and paper agree. Plain data in; Qt Gui only
// (works on the offscreen platform), plus core/analysis's plain contour and
// offset-field types. Nothing here computes an analysis: the numbers (mass
// contours, offset fields, modulation) come from core/analysis and are only drawn.
//
// Text needs fonts, so a QGuiApplication must exist (QT_QPA_PLATFORM=offscreen
// where there is no display); saveFigure() says so instead of crashing. The
// functions are reentrant: any thread may render into its own QImage, PDF or SVG.
// Coordinates given in image pixels (points, boxes, the node, contours, arrows)
// put pixel centres at integers: pixel (i, j) covers [i − ½, i + ½] × [j − ½, j + ½].
// Data that does not fit its grid (a mask of the wrong size, say) is skipped, never fatal.
#pragma once

#include "core/analysis/contours.h"
#include "core/analysis/offset_field.h"

#include <QRect>
#include <QRectF>
#include <QSizeF>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

class QPainter;

namespace deformscope::figure {

// An RGB image, row-major, 3 bytes per pixel (the model's input grid). With
// rgb empty but a size, it is a neutral grey grid of that size.
struct Image {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;
};

// One traced sampling point, in input-image pixel coordinates (pixel centres
// at integers). level 1 = the node's own layer's taps, 2 = their taps, ...
struct Point {
    double x = 0, y = 0;
    int level = 1;
    double weight = 1; // contribution, ≥ 0; drawn relative to the panel's largest
    bool inside = true; // false: outside the image (drawn hollow, clipped to the panel frame)
};

// A heat map on the image grid (e.g. the ERF), values ≥ 0 unless signed.
struct Heat {
    int width = 0, height = 0;
    std::vector<float> values;               // width·height, row-major
    std::string colormap = "inferno";        // "inferno", "viridis", "magma", "gray", "coolwarm" (for signed)
    bool log = false;                        // draw log10(1 + v / max · 1000) instead of v / max
    bool isSigned = false;                   // diverging map centred at 0
    double opacity = 0.75;                   // over the background image
    // Mass contours on the heat map's grid (pixel centres at integers), as
    // core/analysis's massContours gives them: drawn solid / dashed / dotted in
    // order, keyed by their fraction under the colour bar.
    std::vector<analysis::MassContour> contours;
    bool map = true;          // false: only the contours are drawn (the GUI's contours-only overlay)
    uint32_t contourRgb = 0;  // 0x00rrggbb; 0: by the colour map (white, blue on gray, dark on coolwarm)
};

// One tap of a deformable layer at one output position (image pixels): its
// regular sampling position (x, y), its offset (dx, dy) and modulation.
using OffsetArrow = analysis::OffsetArrow;

// The node layer's offset field on the panel's image grid (core/analysis's
// offsetField, with the cell geometry in x, y order and the node's cell).
struct OffsetField {
    int featureH = 0, featureW = 0, taps = 0;
    std::vector<OffsetArrow> arrows;   // featureH·featureW·taps, row-major over (fy, fx, tap)
    std::vector<double> modulation;    // featureH·featureW mean mask values (DCNv2), else empty
    std::array<double, 2> start{0, 0}; // x, y: cell (fy, fx) is centred at start + f·jump ...
    std::array<double, 2> jump{1, 1};  // ... and spans ± jump / 2
    std::array<int, 2> anchor{0, 0};   // fx, fy of the node's cell: thinning always keeps its column and row
    bool hasArrows() const;            // arrows fit featureH·featureW·taps (> 0)
    bool hasModulation() const;        // modulation fits featureH·featureW (> 0)
};

// The modulation map's colour map (its cells at alpha 128 of 255 over the image).
inline constexpr const char* kModulationColormap = "viridis";

// How the offset field's arrows are drawn: each tap's offset from its regular
// position, or one arrow per cell (the mean position and offset of its taps).
enum class Arrows { None, PerTap, Mean };

// A colour image laid over the background on its grid (e.g. an offset field read
// as motion, colour-wheel coded): each pixel blended at its own alpha.
struct Tint {
    int width = 0, height = 0;
    std::vector<uint8_t> rgba; // width·height·4, row-major; alpha 0: the background shows
};

// A label region outlined in its colour (e.g. a mask of one video frame and where
// it was propagated on the next): a mask on the background's grid, 1 = inside.
struct LabelOutline {
    std::vector<uint8_t> mask;
    uint32_t color = 0xffffff; // 0xRRGGBB
    bool dashed = false;
};

// A labelled point (e.g. a keypoint and where it was propagated), image pixels.
struct Marker {
    double x = 0, y = 0;
    uint32_t color = 0xffffff;
};

struct Panel {
    std::string title;                       // above the panel
    Image background;                        // may be empty (then a neutral grey of its width × height, else of the heat map's grid)
    std::vector<Point> points;
    int levels = 0;                          // number of levels for the colour legend (0: from points)
    std::optional<Heat> heat;
    std::vector<uint8_t> mask;               // saliency: width·height of the background, 1 = kept; dims the rest and outlines it
    bool maskDims = true;                    // false: the mask's outline alone, nothing dimmed
    std::optional<std::array<double, 4>> objectBox; // x0, y0, x1, y1 in image pixels, the box's edges (dashed outline)
    std::vector<uint8_t> objectMask;         // or an object mask on the image grid (dashed outline)
    // Moves from (x0, y0) to (x1, y1) in image pixels: a white line from a small
    // white ring at the start (e.g. a Deformable Kernel tap from its base grid
    // position to where it reads the scope kernel).
    std::vector<std::array<double, 4>> moves;
    std::optional<std::array<double, 2>> node; // x, y of the node's centre in image pixels (a cross)
    std::array<double, 2> nodeCell{0, 0};    // w, h of the node's feature cell in image pixels (a square), 0: none
    std::vector<std::string> caption;        // lines of metrics under the panel
    // The node layer's offset field: arrows (`arrows`) and the modulation map
    // (`modulationMap`: each cell's mean mask value in viridis at alpha ½, DCNv2
    // only), over everything else. Arrows are thinned so that drawn cells stay
    // about 44 (per tap) or 16 (mean) units apart at the target's scale, keeping
    // the node's cell; the same target size gives the same arrows everywhere.
    OffsetField offsets;
    Arrows arrows = Arrows::None;
    bool modulationMap = false;
    // A colour tint over the background and heat map (under the dimmed mask and
    // every line); label outlines (solid or dashed, in their colour) with the
    // other outlines, and markers (diamonds) under the points.
    std::optional<Tint> tint;
    std::vector<LabelOutline> labels;
    std::vector<Marker> markers;
};

// A grid of panels: rows × cols, row-major; missing panels are left blank.
struct Figure {
    std::string title;
    int rows = 1, cols = 1;
    std::vector<std::string> rowLabels, colLabels;
    std::vector<Panel> panels;
    std::string footer;                       // e.g. the node and settings, small print
    double panelSize = 256;                   // longer side of each panel's image, in points/pixels; text scales with it
};

// The figure's size in its own units (pixels for PNG at scale 1, points for SVG/PDF),
// whole numbers.
QSizeF figureSize(const Figure& figure);
// Where paintFigure() puts the image of panel (row, col), in the figure's units;
// empty for a cell outside the grid or without a panel.
QRectF panelImageRect(const Figure& figure, int row, int col);
// Paints the whole figure with its top-left at (0, 0) in the painter's coordinates.
void paintFigure(QPainter& painter, const Figure& figure);
// How line widths and marker sizes follow the target: one unit is
// sqrt(target area) / 256 (1 on a 256 × 256 panel), clamped to [minUnit,
// maxUnit]. Figures use the default; the GUI canvas keeps markers readable at
// any zoom with a narrower range (ui/canvas/view_panel.h).
struct UnitRange {
    double minUnit = 0.35, maxUnit = 4.0;
};

// Paints one panel's image and overlays into `target` (the image's rectangle):
// the GUI canvas calls this with its zoomed rectangle. Image pixels are drawn
// unsmoothed (nearest); overlays are vectors, clipped to `target` (points
// exactly; Qt's SVG output has no clipping, so there a line may overhang the
// frame by its width), with line widths that scale with the target's size
// (`units`). Looks: points are discs in their level colour, area and opacity
// growing with weight, light ones under heavy ones, rings when outside;
// heat-map contours white (blue on gray, dark on coolwarm), solid / dashed /
// dotted per fraction; the saliency region's outline solid white with the rest
// dimmed to 30 %; the object dashed yellow; the node a green cross and cell
// square; then the modulation map and cyan offset arrows (a dot at the regular
// position). Lines carry a dark halo so they read on any image. Arrows with
// both ends outside the painter's clip (when it has one) are skipped. The
// painter's state is restored.
void paintPanel(QPainter& painter, const Panel& panel, const QRectF& target, const UnitRange& units = {});

// Writes the figure; the format comes from the suffix (.png, .svg, .pdf, any
// case). PNG is rendered at `pngScale` × the figure size (ceil(w·scale) ×
// ceil(h·scale) pixels, its DPI set so it prints at the PDF's size), 0 < scale ≤ 16.
// Writes atomically (a temporary next to it, then rename): on failure nothing is
// left behind and an existing file is untouched. Returns "" on success, else
// "<path>: <what went wrong>".
std::string saveFigure(const Figure& figure, const std::string& path, double pngScale = 2.0);

// Writes the `page` rectangle (whole units, top-left ≥ 0) of the plane on which
// `panel` is painted into `target` by paintPanel with `units` — e.g. what a GUI
// canvas shows of a zoomed image (target and page in widget pixels). PNG at one
// pixel per unit, rasterised in the plane's own pixel grid so that it matches a
// widget painted alike pixel for pixel; SVG or PDF by the suffix. Atomic,
// errors as saveFigure.
std::string savePanel(const Panel& panel, const QRectF& target, const QRect& page, const std::string& path,
                      const UnitRange& units = {});

// Colour of a colour map at t ∈ [0, 1] (clamped), as 0xRRGGBB: matplotlib's tables
// (also "plasma"), linearly interpolated. Unknown names give inferno.
uint32_t colormap(const std::string& name, double t);
// The colour paintPanel draws a heat map's contours in, as 0xRRGGBB: heat.contourRgb when
// set, else by its colour map (white; blue on gray, dark on coolwarm).
uint32_t contourColor(const Heat& heat);
// Level colours used for sampling points (level 1 first, repeating after 8;
// grey below 1), as 0xRRGGBB.
uint32_t levelColor(int level);

} // namespace deformscope::figure
