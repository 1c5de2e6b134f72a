// Internal to ui_figure: the helpers its painters (panel.cpp), its layout
// (layout.cpp) and its file output (output.cpp) share. Pure functions, any thread.
#pragma once

#include "ui/figure/figure.h"

#include <QColor>
#include <QList>
#include <QString>

#include <functional>
#include <optional>

class QPainter;
class QPainterPath;
class QSizeF;

namespace deformscope::figure::detail {

QColor rgbColor(uint32_t c, double alpha = 1.0);
inline QString qs(const std::string& s) { return QString::fromStdString(s); }

// Saves whatever `paint` draws on a page of `size` (points) at `path`, as saveFigure does
// (format by suffix, PNG at scale 2, the one atomic writer); "" or "<path>: <problem>".
std::string saveDrawing(const QSizeF& size, const std::string& title, const std::function<void(QPainter&)>& paint,
                        const std::string& path);

// A panel's image grid; invalid when the panel has nothing to place on a grid.
struct Grid {
    int width = 0, height = 0;
    bool valid() const { return width > 0 && height > 0; }
    size_t count() const { return size_t(width) * size_t(height); }
};

bool validImage(const Image& im);
bool validHeat(const std::optional<Heat>& heat);
// The background's grid, else the heat map's, else the extent of the points.
Grid gridOf(const Panel& p);
// No grid, no title and no caption: a cell left blank.
bool isBlank(const Panel& p);

// The largest value of a heat map (largest |v| when signed): the colour map's top.
double heatMax(const Heat& heat);
// Dash pattern of the contour at `index` (solid, dashed, dotted, repeating).
QList<qreal> contourDashes(size_t index);

// A pen line with a darker halo under it, so it reads on any background.
void strokeWithHalo(QPainter& p, const QPainterPath& path, const QColor& color, double width,
                    const QList<qreal>& dashes = {}, double haloAlpha = 0.55);

// Offset arrows and the modulation map (their colours, also for the legend).
inline constexpr uint32_t kArrowColor = 0x00e5ff;
inline constexpr int kModulationAlpha = 128; // of 255: the image and points stay readable under it

} // namespace deformscope::figure::detail
