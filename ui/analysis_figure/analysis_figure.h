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
    std::string colormap = "inferno";
    bool logScale = false;
};

// The model's input, de-normalised back to RGB (the figure's background).
Image inputImage(const analysis::AnalysisSession& session);

Panel samplingPanel(const NodeResults& r);
Panel erfPanel(const NodeResults& r);
Panel saliencyPanel(const NodeResults& r);
// The Deformable Kernel view on the scope grid (one cell per scope weight): the
// scope's |W| as a heat map, each tap a ring at its base position with a line
// to a disc where it reads (disc area ∝ its resampled weight). Without a kernel
// view: a blank panel saying there is no DK layer.
Panel kernelPanel(const NodeResults& r);

// One row per analysis present in the first column (sampling, ERF, saliency),
// plus the resampled kernel when any column has a kernel view; one column per entry: DCNv2's Figure 1 layout. `footer` goes under it.
Figure analysisFigure(const std::vector<NodeResults>& columns, const std::string& title, const std::string& footer);

// Makes sure a QGuiApplication exists (the offscreen platform unless one is set)
// so that figures can be painted from a command-line program.
void ensureGuiApplication();

} // namespace deformscope::figure
