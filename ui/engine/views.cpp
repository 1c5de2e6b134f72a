#include "ui/engine/views.h"

#include "core/analysis/offset_field.h"
#include "core/report/video.h"
#include "ui/analysis_figure/analysis_figure.h"
#include "ui/analysis_figure/report_figures.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace deformscope::ui {

QString qs(const std::string& s) { return QString::fromStdString(s); }
std::string ss(const QString& s) { return s.toStdString(); }

namespace {

QString number(double v, int digits) { return QString::number(v, 'f', digits); }

QString duration(double seconds) {
    return seconds < 1 ? QString::number(seconds * 1e3, 'f', 0) + " ms" : QString::number(seconds, 'f', 1) + " s";
}

} // namespace

QImage toQImage(const figure::Image& img) {
    QImage q(img.width, img.height, QImage::Format_RGB888);
    for (int y = 0; y < img.height; ++y)
        std::copy_n(img.rgb.data() + size_t(y) * size_t(img.width) * 3, size_t(img.width) * 3, q.scanLine(y));
    return q;
}

figure::Image fromRgbTensor(const at::Tensor& rgbHwc) {
    const at::Tensor t = rgbHwc.to(at::kCPU).contiguous();
    figure::Image img;
    img.height = int(t.size(0));
    img.width = int(t.size(1));
    img.rgb.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
    return img;
}

// The network's total stride: the largest jump of any layer (at least 1).
int64_t totalStride(const model::LayerGraph& g) {
    double s = 1;
    for (const model::Layer& l : g.layers())
        s = std::max({s, l.jump[0], l.jump[1]});
    return std::max<int64_t>(1, std::llround(s));
}

namespace {

LayerInfo layerInfo(const model::Layer& l) {
    LayerInfo i;
    i.name = qs(l.name);
    i.kind = QString::fromLatin1(model::kindName(l.kind));
    i.op = qs(l.op);
    if (l.isSampler()) {
        const model::SamplerInfo& s = l.sampler;
        i.detail = QStringLiteral("%1 reads %2×%3 · %4 point(s) × %5 row(s) per output%6 · %7, padding %8%9")
                       .arg(s.layout == model::SamplerInfo::Layout::Queries ? QStringLiteral("each query")
                                                                             : QStringLiteral("each pixel"))
                       .arg(s.valueSize[0]).arg(s.valueSize[1]).arg(s.points).arg(s.rows)
                       .arg(s.levels > 1 ? QStringLiteral(" · level %1 of %2").arg(s.level).arg(s.levels) : QString())
                       .arg(qs(s.interpolation)).arg(qs(s.padding))
                       .arg(s.alignCorners ? QStringLiteral(", align_corners") : QString());
    } else if (!l.reason.empty()) {
        i.detail = (l.kind == model::LayerKind::UnrecognisedSampler ? QStringLiteral("not understood: ")
                                                                     : QStringLiteral("read as: ")) + qs(l.reason);
    }
    i.kernelH = int(l.kernel[0]);
    i.kernelW = int(l.kernel[1]);
    i.strideH = int(l.stride[0]);
    i.strideW = int(l.stride[1]);
    i.featureH = int(l.feature_size[0]);
    i.featureW = int(l.feature_size[1]);
    i.inChannels = l.in_channels;
    i.outChannels = l.out_channels;
    i.jumpY = l.jump[0];
    i.jumpX = l.jump[1];
    i.startY = l.start[0];
    i.startX = l.start[1];
    i.rfH = l.rf[0];
    i.rfW = l.rf[1];
    return i;
}

// A metric row of the comparison table (value < 0: not computed, shown as n/a).
void addMetric(ColumnView& c, const char* key, const char* label, double value, const QString& text) {
    c.metrics.push_back(
        Metric{QString::fromLatin1(key), QString::fromUtf8(label), value, value < 0 ? QStringLiteral("n/a") : text});
}

// A label on one frame's grid ([H, W], > ½ inside) as a mask on the side-by-side grid.
figure::LabelOutline frameLabel(const at::Tensor& label, int64_t frame, int64_t frames, uint32_t color, bool dashed) {
    const at::Tensor inside = label.to(at::kCPU).gt(0.5).to(at::kByte);
    const int64_t H = inside.size(0), W = inside.size(1);
    at::Tensor canvas = at::zeros({H, W * frames}, at::kByte);
    canvas.narrow(1, frame * W, W).copy_(inside);
    canvas = canvas.contiguous();
    figure::LabelOutline o;
    o.mask.assign(canvas.data_ptr<uint8_t>(), canvas.data_ptr<uint8_t>() + canvas.numel());
    o.color = color;
    o.dashed = dashed;
    return o;
}

// The motion part of a column: the colour-wheel tint, the label outlines or
// markers, the metrics and a legend note.
void addMotion(const report::Run& r, ColumnView& c) {
    const report::MotionReport& m = *r.motion;
    const int64_t frames = r.session->frames();
    const int64_t H = m.field.mean.size(1), W = m.field.mean.size(2);
    const auto& names = r.session->graph().inputNames();
    const std::string reference = names.at(size_t(m.field.reference)), support = names.at(size_t(m.field.support));
    c.hasMotion = true;
    c.motionLayer = qs(m.field.layer);
    c.motionScalePx = report::motionColourScale(m);
    at::Tensor rgba = at::zeros({H, W * frames, 4}, at::kByte);
    auto paint = [&](const at::Tensor& field, int64_t frame) {
        at::Tensor part = rgba.narrow(1, frame * W, W);
        part.narrow(2, 0, 3).copy_(report::motionColours(field, c.motionScalePx));
        part.select(2, 3).fill_(170);
    };
    paint(m.flow, m.field.support);
    paint(m.field.mean, m.field.reference);
    rgba = rgba.contiguous();
    c.motionTint.width = int(W * frames);
    c.motionTint.height = int(H);
    c.motionTint.rgba.assign(rgba.data_ptr<uint8_t>(), rgba.data_ptr<uint8_t>() + rgba.numel());
    c.notes << QStringLiteral("motion: %1's offsets as motion over %2 | OpenCV DIS flow %2 → %3 over %3 "
                              "(one colour wheel, full colour at %4 px); mean |offset| %5 px, diversity %6 px%7")
                   .arg(c.motionLayer, qs(reference), qs(support))
                   .arg(c.motionScalePx, 0, 'f', 1)
                   .arg(m.field.meanOffsetPx, 0, 'f', 2)
                   .arg(m.field.offsetDiversityPx, 0, 'f', 2)
                   .arg(m.field.alarm ? QStringLiteral(" — ALARM: above %1 px").arg(m.field.alarmThresholdPx)
                                      : QString());
    for (const std::string& n : m.field.notes)
        c.notes << qs(n);
    auto add = [&](const char* key, const char* label, double value, int digits) {
        addMetric(c, key, label, value, number(value, digits));
    };
    add("motion_epe_flow", "offset motion EPE vs flow (px)", m.vsFlow.epePx, 2);
    add("motion_cosine_flow", "offset motion cosine vs flow", m.vsFlow.cosine, 3);
    add("motion_mean_offset", "mean |offset| (px)", m.field.meanOffsetPx, 2);
    add("motion_diversity", "offset diversity (px)", m.field.offsetDiversityPx, 2);
    if (m.vsTruth)
        add("motion_epe_truth", "offset motion EPE vs truth (px)", m.vsTruth->epePx, 2);

    if (m.propagateKind == "mask") {
        if (m.labelSupport.defined()) // first: under the propagated ones it scores
            c.labels.push_back(frameLabel(m.labelSupport, m.field.support, frames, kLabelTruthColor, true));
        c.labels.push_back(frameLabel(m.labelReference, m.field.reference, frames, kLabelGivenColor, false));
        c.labels.push_back(frameLabel(m.byFlow, m.field.support, frames, kLabelFlowColor, true));
        c.labels.push_back(frameLabel(m.byReads, m.field.support, frames, kLabelReadsColor, false));
        add("propagation_iou_reads", "label IoU through the reads", m.iouReads, 3);
        add("propagation_iou_flow", "label IoU through the flow", m.iouFlow, 3);
    } else if (m.propagateKind == "keypoints") {
        auto mark = [&](const std::vector<std::array<double, 2>>& points, int64_t frame, uint32_t color) {
            for (const auto& p : points)
                c.markers.push_back(figure::Marker{p[0] + double(frame * W), p[1], color});
        };
        mark(m.pointsSupport, m.field.support, kLabelTruthColor);
        mark(m.points, m.field.reference, kLabelGivenColor);
        mark(m.pointsByFlow, m.field.support, kLabelFlowColor);
        mark(m.pointsByReads, m.field.support, kLabelReadsColor);
        add("propagation_distance_reads", "keypoint distance through the reads (px)", m.distanceReads, 2);
        add("propagation_distance_flow", "keypoint distance through the flow (px)", m.distanceFlow, 2);
    }
    if (!m.propagateKind.empty())
        c.notes << QStringLiteral("label: given on %1 (green), carried to %2 by the reads (magenta) and by the flow "
                                  "(cyan, dashed)%3")
                       .arg(qs(reference), qs(support),
                            m.labelSupport.defined() || !m.pointsSupport.empty()
                                ? QStringLiteral("; %1's own label orange, dashed").arg(qs(support))
                                : QString());
}

} // namespace

ModelInfo modelInfo(const model::LoadedModel& m, const model::LayerGraph& g, const std::string& name) {
    ModelInfo info;
    info.path = qs(m.path());
    info.name = qs(name);
    info.description = qs(m.metadata().description);
    info.device = qs(m.device().str());
    info.suggestedLayer = qs(report::defaultLayer(m, g));
    info.inputH = int(g.inputSize()[0]);
    info.inputW = int(g.inputSize()[1]);
    for (const std::string& c : m.metadata().classNames)
        info.classNames << qs(c);
    for (const std::string& n : m.notes())
        info.notes << qs(n);
    for (const model::Layer& l : g.layers())
        info.layers.push_back(layerInfo(l));
    const model::ModelMetadata& md = m.metadata();
    info.hasMetadata = md.fromFile;
    for (int c = 0; c < 3; ++c) {
        info.mean[c] = md.mean[size_t(c)];
        info.std[c] = md.std[size_t(c)];
    }
    info.bgr = md.colorOrder == "BGR";
    info.metadataInputH = md.inputSize ? int((*md.inputSize)[0]) : 0;
    info.metadataInputW = md.inputSize ? int((*md.inputSize)[1]) : 0;
    for (const std::string& n : m.inputNames())
        info.inputs << qs(n);
    if (m.inputCount() > 1)
        info.notes << QStringLiteral("%1 input frames (%2): open them with File > Open Frame Pair or Open Video")
                          .arg(m.inputCount())
                          .arg(info.inputs.join(QStringLiteral(", ")));
    return info;
}

std::string describeFailure(const std::string& context, const std::exception& e) {
    if (const auto* oom = dynamic_cast<const c10::OutOfMemoryError*>(&e)) {
        std::string first = oom->what_without_backtrace();
        if (const size_t nl = first.find('\n'); nl != std::string::npos)
            first.resize(nl);
        return (context.empty() ? std::string() : context + ": ") + "the GPU ran out of memory (" + first +
               "); try the CPU, a smaller image or input size, or fewer saliency masks per batch";
    }
    const auto* c = dynamic_cast<const c10::Error*>(&e);
    const std::string message = c ? c->what_without_backtrace() : e.what();
    if (context.empty() || message.find(context) != std::string::npos)
        return message;
    return context + ": " + message;
}

ColumnView columnView(const report::Run& r, const common::AnalysisRequest& s, double seconds) {
    const analysis::AnalysisSession& session = *r.session;
    const model::Layer& l = session.layer(r.node.layer);
    ColumnView c;
    c.model = qs(r.name);
    c.layer = qs(r.node.layer);
    c.layerKind = QString::fromLatin1(model::kindName(l.kind));
    c.fy = int(r.node.fy);
    c.fx = int(r.node.fx);
    c.response = qs(r.node.response.toString());
    const auto centre = session.nodeCentre(r.node);
    c.nodeCentre = QPointF(centre[0], centre[1]);
    c.nodeCell = QSizeF(l.jump[1], l.jump[0]);
    const auto rf = session.receptiveFieldBox(r.node); // y0, x0, y1, x1, half-open pixel indices
    c.receptiveField = QRectF(double(rf[1]) - 0.5, double(rf[0]) - 0.5, double(rf[3] - rf[1]), double(rf[2] - rf[0]));

    const figure::NodeResults nr = figure::nodeResultsOf(r, s);
    c.hasSampling = r.sampling.has_value();
    c.hasErf = r.erf.has_value();
    // A cancelled search's best verified region so far is no answer (at first it is the
    // whole image, "error 0"): the column says "cancelled" instead of showing it.
    c.saliencyCancelled = r.saliency && r.saliency->cancelled;
    c.hasSaliency = r.saliency.has_value() && !c.saliencyCancelled;
    if (c.hasSampling) {
        c.sampling = figure::samplingPanel(nr);
        c.levels = r.sampling->levels;
    }
    if (c.hasErf)
        c.erf = figure::erfPanel(nr);
    if (c.hasSaliency)
        c.saliency = figure::saliencyPanel(nr);
    c.hasKernel = r.kernel.has_value();
    if (c.hasKernel)
        c.kernel = figure::kernelPanel(nr);

    // The chosen layer's offset field and modulation map, as core computes them.
    const std::string fieldLayer = analysis::offsetFieldLayer(session, r.node.layer);
    analysis::OffsetField field = fieldLayer.empty() ? analysis::OffsetField{} : analysis::offsetField(session, fieldLayer);
    c.featureH = field.featureH;
    c.featureW = field.featureW;
    c.taps = field.taps;
    c.offsets = std::move(field.arrows);
    c.hasModulation = field.modulated;
    c.modulation = std::move(field.meanModulation);

    // The comparison's numbers (value < 0: not computed).
    auto add = [&](const char* key, const char* label, double value, const QString& text) {
        addMetric(c, key, label, value, text);
    };
    const analysis::ObjectMetrics obj = r.objectMetrics.value_or(analysis::ObjectMetrics{});
    auto pct = [](double v) { return QString::number(100 * v, 'f', 1) + " %"; };
    if (r.erf) {
        const analysis::ErfMetrics& m = r.erf->metrics;
        add("erf_area50", "ERF 50 % area (px)", double(m.areaPixels[0]), QString::number(m.areaPixels[0]));
        add("erf_area90", "ERF 90 % area (px)", double(m.areaPixels[1]), QString::number(m.areaPixels[1]));
        add("erf_area90_rf", "ERF 90 % area / RF", m.area90ToRf, number(m.area90ToRf, 2));
    } else {
        add("erf_area50", "ERF 50 % area (px)", -1, {});
        add("erf_area90", "ERF 90 % area (px)", -1, {});
        add("erf_area90_rf", "ERF 90 % area / RF", -1, {});
    }
    add("erf_inside", "ERF mass in object", obj.erfMassInside, pct(obj.erfMassInside));
    double spread = -1;
    if (r.sampling)
        spread = analysis::weightedSpread(*r.sampling);
    add("sampling_spread", "sampling spread (px)", spread, number(spread, 1));
    add("sampling_inside", "sampling weight in object", obj.samplingWeightInside, pct(obj.samplingWeightInside));
    const bool region = c.hasSaliency; // a finished search's region
    add("saliency_area", "saliency area (of the image)", region ? r.saliency->areaFraction : -1,
        region ? pct(r.saliency->areaFraction) : QString());
    add("saliency_inside", "saliency area in object", region ? obj.saliencyAreaInside : -1,
        region ? pct(obj.saliencyAreaInside) : QString());
    add("saliency_forwards", "saliency forwards", r.saliency ? double(r.saliency->forwards) : -1,
        r.saliency ? QString::number(r.saliency->forwards) : QString());
    add("saliency_error", "saliency error (relative)", region ? r.saliency->error : -1,
        region ? number(r.saliency->error, 3) : QString());
    add("kernel_shift", "DK mean tap shift (scope cells)", r.kernel ? r.kernel->meanShift : -1,
        r.kernel ? number(r.kernel->meanShift, 2) : QString());

    if (r.motion)
        addMotion(r, c);
    for (const std::string& n : r.notes)
        c.notes << qs(n);
    if (r.sampling)
        for (const std::string& n : r.sampling->notes)
            c.notes << qs(n);
    if (r.kernel)
        for (const std::string& n : r.kernel->notes)
            c.notes << qs(n);
    if (r.saliency && !r.saliency->note.empty())
        c.notes << qs(r.saliency->note);
    if (c.saliencyCancelled)
        c.notes << QStringLiteral("saliency search cancelled after %1 forwards: no region is shown")
                       .arg(r.saliency->forwards);
    c.seconds = seconds;
    QStringList timing;
    if (r.sampling)
        timing << "sampling " + duration(r.sampling->seconds);
    if (r.erf)
        timing << "ERF " + duration(r.erf->seconds);
    if (r.saliency)
        timing << "saliency " + duration(r.saliency->seconds) + " (" + QString::number(r.saliency->forwards) + " forwards)";
    c.timing = timing.join(QStringLiteral(" · "));
    return c;
}


QRectF objectBoxOf(const common::AnalysisRequest& request, const report::Run& run) {
    if (request.object.kind == common::ObjectRegion::Kind::Box && request.object.box.grid == common::Grid::Input) {
        const common::Box& b = request.object.box;
        return QRectF(QPointF(b.x0, b.y0), QPointF(b.x1, b.y1));
    }
    if (!run.object.defined())
        return {};
    const at::Tensor nz = run.object.nonzero(); // [N, 2] (y, x)
    if (nz.size(0) == 0)
        return {};
    const at::Tensor lo = std::get<0>(nz.min(0)), hi = std::get<0>(nz.max(0));
    const double y0 = double(lo[0].item<int64_t>()), x0 = double(lo[1].item<int64_t>());
    const double y1 = double(hi[0].item<int64_t>()), x1 = double(hi[1].item<int64_t>());
    return QRectF(x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1);
}

} // namespace deformscope::ui
