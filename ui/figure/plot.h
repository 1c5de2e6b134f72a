// Line plots (e.g. a ratio against input size, one line per model), drawn and saved
// by the figure renderer's own PNG / SVG / PDF writer (saveFigure's).
#pragma once

#include <string>
#include <vector>

namespace deformscope::figure {

struct PlotSeries {
    std::string name;          // the legend's entry
    std::vector<double> x, y;  // the points, joined in order; non-finite or (log axis) non-positive y are skipped
};

struct LinePlot {
    std::string title, xLabel, yLabel;
    bool logY = false;         // a log10 y axis, ticks at powers of ten (and 2, 5 between)
    bool joined = true;        // false: a scatter plot (markers only, not joined; the legend shows a marker)
    std::vector<PlotSeries> series;
    std::string footer;        // small print under the plot
};

// Saves the plot at `path` (.png, .svg or .pdf); "" on success, else "<path>: <what went wrong>".
std::string saveLinePlot(const LinePlot& plot, const std::string& path);

} // namespace deformscope::figure
