// The figures of core/report's layouts: `analyze` (analysis.png/.svg/.pdf),
// `compare` (compare.*) and `erf-average` (erf_average.*), drawn with ui/figure.
// The CLI and the GUI's engine both write their figures here, so an export from
// the GUI is the CLI's figure. Any thread (each call paints its own images); a
// QGuiApplication must exist (ensureGuiApplication makes one for the CLI).
#pragma once

#include "core/report/report.h"
#include "core/report/study.h"

namespace deformscope::analysis {
struct ScaleMapResult;
}
#include "ui/analysis_figure/analysis_figure.h"
#include "ui/figure/figure.h"

#include <string>
#include <vector>

namespace deformscope::figure {

// A run's results for one column of a figure: its session, node, analyses, object, and the
// request's colour map and scale (the CLI's figures and the GUI's views draw the same).
NodeResults nodeResultsOf(const report::Run& run, const common::AnalysisRequest& request);

// "node <layer> (fx, fy), centre (x, y) px, response ...; saliency ε = ...; N levels, ... offsets":
// the small print under a figure of `run`'s node with `settings`.
std::string footerOf(const report::Run& run, const common::AnalysisRequest& request);

// Writes <dir>/<base>.png/.svg/.pdf of the runs' node (one column per run) and
// returns the file names written; nothing (an empty list) when request.figures
// is off. request.overlays says what the figure draws (analysisFigure).
// Creates the QGuiApplication if there is none. Throws std::runtime_error
// "<path>: <what went wrong>" when a file cannot be written.
std::vector<std::string> writeFigures(const std::vector<const report::Run*>& runs, const common::AnalysisRequest& request,
                                      const std::string& dir, const std::string& base, const std::string& title);

// The figure of an averaged ERF (`graph` is the model's layer graph for the map's grid).
Figure erfAverageFigure(const analysis::ErfAverageResult& result, const model::LoadedModel& model,
                        const model::LayerGraph& graph, const std::string& folder, bool isSigned, bool logScale);

// Writes <dir>/erf_average.png/.svg/.pdf; returns the names written. Throws like writeFigures.
std::vector<std::string> writeErfAverageFigures(const Figure& figure, const std::string& dir);

// The dense ERF-size map of `run`'s image: one panel per mass fraction, each node's radius
// over its cell of the image (the pixels nearest its centre).
Figure scaleMapFigure(const analysis::ScaleMapResult& result, const report::Run& run);

// Writes <dir>/<base>.png/.svg/.pdf; returns the names written. Throws like writeFigures.
std::vector<std::string> writeNamedFigures(const Figure& figure, const std::string& dir, const std::string& base);

// The dataset study's scatter plots (one point per object and model, the legend with
// Spearman's rho): <dir>/study_erf (ERF 90 % radius), study_saliency, study_sampling
// (.png/.svg/.pdf), each only when its measure was computed. Returns the names written;
// a plot that cannot be written is left out and its problem appended to `problems`.
std::vector<std::string> writeStudyFigures(const std::vector<report::StudyRow>& rows,
                                           const std::vector<std::string>& names, const std::string& dir,
                                           std::vector<std::string>* problems = nullptr);

} // namespace deformscope::figure
