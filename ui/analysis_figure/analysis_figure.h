// From analysis results to figure panels: the one mapping the CLI's figures and
// the GUI's views share (ui/figure draws them). Nothing is recomputed here.
#pragma once

#include "core/analysis/analysis.h"
#include "ui/figure/figure.h"

#include <optional>
#include <string>
#include <vector>

namespace deformscope::figure {

// What one column of a figure shows: a model's results for one node.
struct NodeResults {
    std::string title;                        // e.g. the model's name
    const analysis::AnalysisSession* session = nullptr;
    analysis::Node node;
    std::optional<analysis::SamplingTrace> sampling;
    std::optional<analysis::ErfResult> erf;
    std::optional<analysis::SaliencyResult> saliency;
    std::optional<analysis::KernelView> kernel; // Deformable Kernel models only
    at::Tensor object;                        // [H, W] on the input grid, or undefined
    std::optional<analysis::ObjectMetrics> objectMetrics;
    // RoI-head models: the region of interest, x0, y0, x1, y1 in input-grid pixel edges
    // (outlined in cyan); a node that is the head's output (every bin) gets no node cross.
    std::optional<std::array<double, 4>> roi;
    std::string colormap = "inferno";
    bool logScale = false;
};

// Which overlays a figure draws, each in its analysis's row: the sampling points,
// the node layer's offset field (an arrow per tap) and its modulation map
// (DCNv2) in the sampling row, the ERF heat map with its mass contours in the
// ERF row, the kept region in the saliency row. The default is the figure the
// CLI has always drawn (sampling points, ERF, saliency region). The request's
// type (core/common/request.h), so `--overlay` reaches the figure unchanged.
using Overlays = common::Overlays;

// The model's input, de-normalised back to RGB (the figure's background).
Image inputImage(const analysis::AnalysisSession& session);

// The node layer's offset field (core/analysis's offsetField on r.session),
// anchored on the node's cell; empty for a layer that is not deformable.
OffsetField offsetField(const NodeResults& r);

// The most sampling points one figure draws over all its columns (each a few hundred
// bytes of SVG): a trace's points are drawn once per position and level with their
// summed weight, and beyond the budget a column draws its heaviest positions and says so.
inline constexpr size_t kFigurePointBudget = 12000;

// The node's sampling row: its points (overlays.sampling; at most `pointBudget`
// positions), the offset field's arrows (overlays.offsets) and modulation map
// (overlays.modulation).
Panel samplingPanel(const NodeResults& r, const Overlays& overlays = {}, size_t pointBudget = kFigurePointBudget);
// The ERF heat map (r.colormap, r.logScale) with its 50 % / 90 % mass contours.
Panel erfPanel(const NodeResults& r);
Panel saliencyPanel(const NodeResults& r);
// The Deformable Kernel view on the scope grid (one cell per scope weight): the
// scope's |W| as a heat map, each tap a ring at its base position with a line
// to a disc where it reads (disc area ∝ its resampled weight). Without a kernel
// view: a blank panel saying there is no DK layer.
Panel kernelPanel(const NodeResults& r);

// One column per entry and one row per analysis with something to draw under
// `overlays`: sampling (the first column has a trace and its points are on, or
// some column has an offset field and its arrows or modulation map are on), ERF
// and saliency (the first column has the analysis and its overlay is on), plus
// the resampled kernel when any column has a kernel view: DCNv2's Figure 1
// layout. `footer` goes under it. The default overlays give the CLI's figure.
Figure analysisFigure(const std::vector<NodeResults>& columns, const std::string& title, const std::string& footer,
                      const Overlays& overlays = {});

// Makes sure a QGuiApplication exists (the offscreen platform unless one is set)
// so that figures can be painted from a command-line program.
void ensureGuiApplication();

} // namespace deformscope::figure
