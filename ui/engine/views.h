// From core's results to the plain data the widgets show (ui/view/view_data.h):
// a model's layer list, one click's column, the input image as a QImage, and
// failure messages that name the file. Worker thread only (it reads sessions);
// nothing here keeps state. The numbers are core's: nothing is recomputed.
#pragma once

#include "core/common/request.h"
#include "core/report/report.h"
#include "ui/view/view_data.h"

#include <QImage>

#include <exception>
#include <string>

namespace deformscope::ui {

QString qs(const std::string& s);
std::string ss(const QString& s);

QImage toQImage(const figure::Image& image);
figure::Image fromRgbTensor(const at::Tensor& rgbHwc);

ModelInfo modelInfo(const model::LoadedModel& model, const model::LayerGraph& graph, const std::string& name);

// One model's column of a click: its node, the figure panels of its analyses
// (ui/analysis_figure, as the CLI's figures), the layer's offset field and the
// metrics the comparison table shows.
ColumnView columnView(const report::Run& run, const common::AnalysisRequest& request, double seconds);

// The object box a click's metrics used, in input-grid pixel edges: the
// request's box, else the bounding box of the run's object mask; null when none.
QRectF objectBoxOf(const common::AnalysisRequest& request, const report::Run& run);

// "<context>: <problem>" for a failure, without LibTorch's backtraces; CUDA out
// of memory gets advice. `context` is the file the failure concerns ("" if none).
std::string describeFailure(const std::string& context, const std::exception& e);

// The network's total stride: the largest jump of any layer (at least 1).
int64_t totalStride(const model::LayerGraph& graph);

} // namespace deformscope::ui
