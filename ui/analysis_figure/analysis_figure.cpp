#include "ui/analysis_figure/analysis_figure.h"

#include "core/analysis/contours.h"
#include "core/analysis/offset_field.h"

#include <ATen/ATen.h>

#include <QGuiApplication>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <tuple>
#include <utility>

namespace deformscope::figure {

namespace {

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

std::string percent(double v) { return v < 0 ? "n/a" : fixed(100 * v, 1) + " %"; }

// A trace's points as the figure draws them: each position (to 1e-3 px) of a level once, with
// the summed weight of the points there; beyond `budget` positions only the heaviest, so an
// SVG or PDF of a backbone's trace stays a few megabytes. `unique` gets the positions found.
std::vector<Point> drawnPoints(const analysis::SamplingTrace& trace, size_t budget, size_t& unique) {
    std::map<std::tuple<int64_t, int64_t, int>, size_t> at;
    std::vector<Point> merged;
    for (const analysis::SamplingPoint& s : trace.points) {
        const auto key = std::make_tuple(std::llround(s.x * 1000.0), std::llround(s.y * 1000.0), s.level);
        const auto [it, added] = at.emplace(key, merged.size());
        if (added)
            merged.push_back(Point{s.x, s.y, s.level, s.weight, s.inside});
        else
            merged[it->second].weight += s.weight;
    }
    unique = merged.size();
    if (merged.size() > budget) {
        std::stable_sort(merged.begin(), merged.end(), [](const Point& a, const Point& b) { return a.weight > b.weight; });
        merged.resize(budget);
    }
    return merged;
}

std::string thousands(size_t n) {
    std::string digits = std::to_string(n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0)
            out += ',';
        out += digits[i];
    }
    return out;
}

void decorate(Panel& p, const NodeResults& r) {
    p.background = inputImage(*r.session);
    p.title = r.title;
    const auto c = r.session->nodeCentre(r.node);
    p.node = std::array<double, 2>{c[0], c[1]};
    const model::Layer& l = r.session->layer(r.node.layer);
    p.nodeCell = {l.jump[1], l.jump[0]};
    if (r.object.defined()) {
        const at::Tensor o = r.object.to(at::kCPU).ne(0).to(at::kByte).contiguous();
        p.objectMask.assign(o.data_ptr<uint8_t>(), o.data_ptr<uint8_t>() + o.numel());
    }
    if (r.roi) {
        // The pixels whose centres lie in the box, outlined (cyan, solid).
        const auto size = r.session->inputSize();
        const int64_t H = size[0], W = size[1];
        const auto& b = *r.roi;
        LabelOutline box;
        box.mask.assign(size_t(H * W), 0);
        for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x)
                box.mask[size_t(y * W + x)] = double(x) + 0.5 > b[0] && double(x) + 0.5 < b[2] + 1e-9 &&
                                              double(y) + 0.5 > b[1] && double(y) + 0.5 < b[3] + 1e-9;
        box.color = 0x00e5ff;
        p.labels.push_back(std::move(box));
        // The head's output reads every bin: there is no one node position to mark.
        if (l.isRoiPool() && (r.node.allBins || r.node.response.kind == common::Response::Kind::ClassScore)) {
            p.node.reset();
            p.nodeCell = {0, 0};
        }
    }
}

} // namespace

Image inputImage(const analysis::AnalysisSession& session) {
    const model::ModelMetadata& meta = session.model().metadata();
    at::Tensor x = session.input()[0].to(at::kCPU, at::kDouble); // [3, H, W], normalised
    const at::Tensor mean = at::tensor({meta.mean[0], meta.mean[1], meta.mean[2]}, at::kDouble).view({3, 1, 1});
    const at::Tensor std = at::tensor({meta.std[0], meta.std[1], meta.std[2]}, at::kDouble).view({3, 1, 1});
    if (meta.colorOrder == "BGR")
        x = x.flip(0); // back to RGB; mean/std are given in RGB order
    const at::Tensor rgb =
        (x * std + mean).clamp(0, 1).mul(255).round().to(at::kByte).permute({1, 2, 0}).contiguous();
    Image img;
    img.height = int(rgb.size(0));
    img.width = int(rgb.size(1));
    img.rgb.assign(rgb.data_ptr<uint8_t>(), rgb.data_ptr<uint8_t>() + rgb.numel());
    return img;
}

OffsetField offsetField(const NodeResults& r) {
    // The node's layer's field, or that of the nearest deformable layer or sampler below it.
    const std::string layer = analysis::offsetFieldLayer(*r.session, r.node.layer);
    analysis::OffsetField f = layer.empty() ? analysis::OffsetField{} : analysis::offsetField(*r.session, layer);
    OffsetField out;
    out.featureH = f.featureH;
    out.featureW = f.featureW;
    out.taps = f.taps;
    out.arrows = std::move(f.arrows);
    out.modulation = std::move(f.meanModulation);
    out.start = {f.start[1], f.start[0]};
    out.jump = {f.jump[1], f.jump[0]};
    out.anchor = {int(r.node.fx), int(r.node.fy)};
    if (!layer.empty() && layer != r.node.layer) { // the node's centre on that layer's grid
        const auto centre = r.session->nodeCentre(r.node);
        out.anchor = {int(std::lround((centre[0] - f.start[1]) / f.jump[1])), int(std::lround((centre[1] - f.start[0]) / f.jump[0]))};
    }
    return out;
}

Panel samplingPanel(const NodeResults& r, const Overlays& overlays, size_t pointBudget) {
    Panel p;
    decorate(p, r);
    if (r.sampling && overlays.sampling) {
        size_t unique = 0;
        p.points = drawnPoints(*r.sampling, pointBudget, unique);
        p.levels = r.sampling->levels;
        p.caption.push_back(std::to_string(r.sampling->points.size()) + " points (" + std::to_string(unique) +
                            " unique), " + std::to_string(r.sampling->levels) + " levels");
        if (unique > p.points.size())
            p.caption.push_back("drawn: the heaviest " + thousands(p.points.size()) + " of " + thousands(unique) +
                                " positions");
        if (r.objectMetrics && r.objectMetrics->samplingWeightInside >= 0)
            p.caption.push_back("weight in object: " + percent(r.objectMetrics->samplingWeightInside));
    }
    if (overlays.offsets || overlays.modulation) {
        p.offsets = offsetField(r);
        p.arrows = overlays.offsets ? Arrows::PerTap : Arrows::None;
        p.modulationMap = overlays.modulation;
        const std::string below = analysis::offsetFieldLayer(*r.session, r.node.layer);
        if (!p.offsets.hasArrows())
            p.caption.push_back("no offsets: " + r.node.layer + " is not deformable");
        else if (below != r.node.layer)
            p.caption.push_back("offsets of " + below + ", below the node");
        else if (overlays.modulation && !p.offsets.hasModulation())
            p.caption.push_back("no modulation map: " + r.node.layer + " has no mask");
    }
    return p;
}

Panel erfPanel(const NodeResults& r) {
    Panel p;
    decorate(p, r);
    if (!r.erf)
        return p;
    const at::Tensor m = r.erf->map.to(at::kCPU, at::kFloat).contiguous();
    Heat h;
    h.height = int(m.size(0));
    h.width = int(m.size(1));
    h.values.assign(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
    h.colormap = r.colormap;
    h.log = r.logScale;
    h.isSigned = m.min().item<float>() < 0;
    if (h.isSigned && r.colormap == "inferno")
        h.colormap = "coolwarm";
    analysis::ContourOptions contours;
    contours.isSigned = h.isSigned;
    h.contours = analysis::massContours(h.values, h.width, h.height, contours);
    p.heat = std::move(h);
    const analysis::ErfMetrics& mt = r.erf->metrics;
    p.caption.push_back("90 % mass: " + std::to_string(mt.areaPixels[1]) + " px (" + fixed(mt.area90ToRf, 2) +
                        " of RF)");
    p.caption.push_back("spread " + fixed(mt.radialSpread, 1) + " px");
    if (r.objectMetrics && r.objectMetrics->erfMassInside >= 0)
        p.caption.push_back("mass in object: " + percent(r.objectMetrics->erfMassInside));
    return p;
}

Panel saliencyPanel(const NodeResults& r) {
    Panel p;
    decorate(p, r);
    if (!r.saliency || !r.saliency->mask.defined())
        return p;
    const at::Tensor m = r.saliency->mask.to(at::kCPU).ne(0).to(at::kByte).contiguous();
    p.mask.assign(m.data_ptr<uint8_t>(), m.data_ptr<uint8_t>() + m.numel());
    p.caption.push_back("area " + percent(r.saliency->areaFraction) + ", error " + fixed(r.saliency->error, 3) +
                        " (ε " + fixed(r.saliency->epsilon, 2) + ")");
    if (r.objectMetrics && r.objectMetrics->saliencyAreaInside >= 0)
        p.caption.push_back("area in object: " + percent(r.objectMetrics->saliencyAreaInside));
    return p;
}

Panel kernelPanel(const NodeResults& r) {
    Panel p;
    p.title = r.title;
    if (!r.kernel || !r.kernel->scopeWeight.defined()) {
        p.caption.push_back("no Deformable Kernel layer");
        return p;
    }
    const analysis::KernelView& k = *r.kernel;
    const at::Tensor m = k.scopeWeight.to(at::kCPU, at::kFloat).contiguous();
    Heat h;
    h.height = int(m.size(0));
    h.width = int(m.size(1));
    h.values.assign(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
    h.colormap = "viridis";
    h.opacity = 1.0;
    p.heat = std::move(h);
    for (const analysis::KernelTap& t : k.taps) {
        p.moves.push_back({t.baseX, t.baseY, t.x, t.y});
        p.points.push_back(Point{t.x, t.y, 1, t.weight, true});
    }
    p.levels = 1;
    p.caption.push_back(k.layer + " (" + std::to_string(k.fx) + ", " + std::to_string(k.fy) + "), " +
                        std::to_string(k.kernel[0]) + "×" + std::to_string(k.kernel[1]) + " from " +
                        std::to_string(k.scope[0]) + "×" + std::to_string(k.scope[1]) +
                        (k.global ? ", global offsets" : ""));
    p.caption.push_back("mean tap shift " + fixed(k.meanShift, 2) + " cells" +
                        (k.channel >= 0 ? ", channel " + std::to_string(k.channel) : std::string(", |W| mean over channels")));
    return p;
}

Figure analysisFigure(const std::vector<NodeResults>& columns, const std::string& title, const std::string& footer,
                      const Overlays& overlays) {
    Figure f;
    f.title = title;
    f.footer = footer;
    f.cols = int(columns.size());
    if (columns.empty())
        return f;
    const NodeResults& first = columns.front();
    std::vector<std::vector<Panel>> rows; // rows[r][c]
    auto row = [&](Panel (*make)(const NodeResults&)) {
        std::vector<Panel> panels;
        for (const NodeResults& c : columns)
            panels.push_back(make(c));
        return panels;
    };
    // The sampling row: its points, and the node layer's offset field where some column has one to draw.
    const bool points = first.sampling && overlays.sampling;
    if (points || overlays.offsets || overlays.modulation) {
        std::vector<Panel> panels;
        for (const NodeResults& c : columns)
            panels.push_back(samplingPanel(c, overlays, kFigurePointBudget / std::max<size_t>(columns.size(), 1)));
        const bool field = std::any_of(panels.begin(), panels.end(), [&](const Panel& p) {
            return (overlays.offsets && p.offsets.hasArrows()) || (overlays.modulation && p.offsets.hasModulation());
        });
        if (points || field) {
            std::string label = points ? "sampling points" : "";
            const std::pair<bool, const char*> shown[] = {{overlays.offsets, "offset field"}, {overlays.modulation, "modulation"}};
            for (const auto& [on, name] : shown)
                if (field && on)
                    label += (label.empty() ? "" : ", ") + std::string(name);
            rows.push_back(std::move(panels));
            f.rowLabels.push_back(label);
        }
    }
    if (first.erf && overlays.erf) {
        rows.push_back(row(&erfPanel));
        f.rowLabels.push_back("effective receptive field");
    }
    if (first.saliency && overlays.saliency) {
        rows.push_back(row(&saliencyPanel));
        f.rowLabels.push_back("saliency region");
    }
    if (std::any_of(columns.begin(), columns.end(), [](const NodeResults& c) { return c.kernel.has_value(); })) {
        rows.push_back(row(&kernelPanel));
        f.rowLabels.push_back("resampled kernel");
    }
    f.rows = int(rows.size());
    for (const NodeResults& c : columns)
        f.colLabels.push_back(c.title);
    for (std::vector<Panel>& panels : rows)
        for (Panel& p : panels) {
            if (columns.size() > 1)
                p.title.clear(); // the column label says it
            f.panels.push_back(std::move(p));
        }
    if (columns.size() == 1) {
        f.colLabels.clear();
        f.cols = int(rows.size());
        f.rows = 1;
        for (size_t i = 0; i < f.panels.size(); ++i)
            f.panels[i].title = f.rowLabels[i];
        f.rowLabels.clear();
    }
    return f;
}

void ensureGuiApplication() {
    if (QGuiApplication::instance())
        return;
    if (!std::getenv("QT_QPA_PLATFORM"))
        setenv("QT_QPA_PLATFORM", "offscreen", 0);
    // Qt's note that XDG_RUNTIME_DIR is unset (it then uses /tmp/runtime-<user>) is noise on a terminal.
    static const QtMessageHandler previous = qInstallMessageHandler(
        [](QtMsgType type, const QMessageLogContext& context, const QString& message) {
            if (message.startsWith(QLatin1String("QStandardPaths: XDG_RUNTIME_DIR")))
                return;
            if (previous)
                previous(type, context, message);
        });
    static int argc = 1;
    static char name[] = "deformscope";
    static char* argv[] = {name, nullptr};
    static QGuiApplication app(argc, argv);
}

} // namespace deformscope::figure
