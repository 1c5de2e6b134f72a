// The one figure renderer (QPainter → PNG / SVG / PDF). The CLI's figures and
// the GUI's export both come from here, and the GUI canvas draws its overlays
// with paintPanel(), so screen and paper agree. Plain data in; Qt Gui only
// (works on the offscreen platform). Nothing here computes an analysis: the
// numbers come from core/analysis and are only drawn.
//
// Text needs fonts, so a QGuiApplication must exist (QT_QPA_PLATFORM=offscreen
// where there is no display); saveFigure() says so instead of crashing. The
// functions are reentrant: any thread may render into its own QImage, PDF or SVG.
// Coordinates given in image pixels (points, boxes, the node) put pixel centres
// at integers: pixel (i, j) covers [i − ½, i + ½] × [j − ½, j + ½]. Data that
// does not fit its grid (a mask of the wrong size, say) is skipped, never fatal.
#pragma once

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
    std::vector<double> contours{0.5, 0.9};  // mass fractions: outline the smallest region holding each (mass = |v| when signed)
    double contourSmoothing = 2.0;           // Gaussian σ (heat pixels) applied to the mass before contouring; 0: none
};

struct Panel {
    std::string title;                       // above the panel
    Image background;                        // may be empty (then a neutral grey of its width × height, else of the heat map's grid)
    std::vector<Point> points;
    int levels = 0;                          // number of levels for the colour legend (0: from points)
    std::optional<Heat> heat;
    std::vector<uint8_t> mask;               // saliency: width·height of the background, 1 = kept; dims the rest and outlines it
    std::optional<std::array<double, 4>> objectBox; // x0, y0, x1, y1 in image pixels, the box's edges (dashed outline)
    std::vector<uint8_t> objectMask;         // or an object mask on the image grid (dashed outline)
    // Moves from (x0, y0) to (x1, y1) in image pixels: a white line from a small
    // white ring at the start (e.g. a Deformable Kernel tap from its base grid
    // position to where it reads the scope kernel).
    std::vector<std::array<double, 4>> moves;
    std::optional<std::array<double, 2>> node; // x, y of the node's centre in image pixels (a cross)
    std::array<double, 2> nodeCell{0, 0};    // w, h of the node's feature cell in image pixels (a square), 0: none
    std::vector<std::string> caption;        // lines of metrics under the panel
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
// Paints one panel's image and overlays into `target` (the image's rectangle):
// the GUI canvas calls this with its zoomed rectangle. Image pixels are drawn
// unsmoothed (nearest); overlays are vectors, clipped to `target` (points
// exactly; Qt's SVG output has no clipping, so there a line may overhang the
// frame by its width), with line widths that scale with the target's size
// (1 at 256 × 256). Looks: points are discs in their level colour, area and
// opacity growing with weight, light ones under heavy ones, rings when outside;
// heat-map contours white (blue on gray, dark on coolwarm), solid / dashed /
// dotted per fraction; the saliency region's outline solid white with the rest
// dimmed to 30 %; the object dashed yellow; the node a green cross and cell
// square. Lines carry a dark halo so they read on any image. The painter's
// state is restored.
void paintPanel(QPainter& painter, const Panel& panel, const QRectF& target);

// Writes the figure; the format comes from the suffix (.png, .svg, .pdf, any
// case). PNG is rendered at `pngScale` × the figure size (ceil(w·scale) ×
// ceil(h·scale) pixels, its DPI set so it prints at the PDF's size), 0 < scale ≤ 16.
// Writes atomically (a temporary next to it, then rename): on failure nothing is
// left behind and an existing file is untouched. Returns "" on success, else
// "<path>: <what went wrong>".
std::string saveFigure(const Figure& figure, const std::string& path, double pngScale = 2.0);

// Colour of a colour map at t ∈ [0, 1] (clamped), as 0xRRGGBB: matplotlib's tables
// (also "plasma"), linearly interpolated. Unknown names give inferno.
uint32_t colormap(const std::string& name, double t);
// Level colours used for sampling points (level 1 first, repeating after 8;
// grey below 1), as 0xRRGGBB.
uint32_t levelColor(int level);

} // namespace deformscope::figure
