#include "ui/analysis_figure/report_figures.h"

#include "core/analysis/contours.h"
#include "core/analysis/scale_map.h"
#include "ui/figure/plot.h"

#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace deformscope::figure {

namespace {
std::string inDir(const std::string& dir, const std::string& name) {
    return (std::filesystem::path(dir) / name).string();
}
} // namespace

NodeResults nodeResultsOf(const report::Run& r, const common::AnalysisRequest& rq) {
    NodeResults c;
    c.title = r.name;
    c.session = r.session.get();
    c.node = r.node;
    c.sampling = r.sampling;
    c.erf = r.erf;
    c.saliency = r.saliency;
    c.kernel = r.kernel;
    c.object = r.object;
    c.objectMetrics = r.objectMetrics;
    c.roi = r.roi;
    c.colormap = common::name(rq.colormap);
    c.logScale = rq.logScale;
    return c;
}

std::string footerOf(const report::Run& r, const common::AnalysisRequest& rq) {
    std::ostringstream f;
    const auto c = r.session->nodeCentre(r.node);
    const bool roiLayer = r.session->layer(r.node.layer).isRoiPool();
    if (roiLayer && (r.node.allBins || r.node.response.kind == common::Response::Kind::ClassScore))
        f << "node: the whole RoI (every bin of " << r.node.layer << "), response "
          << (r.node.response.kind == common::Response::Kind::Sum ? "sum (its pooled features)"
                                                                 : r.node.response.toString());
    else if (roiLayer)
        f << "node: bin (" << r.node.fy << ", " << r.node.fx << ") of " << r.node.layer << ", centre (" << c[0] << ", "
          << c[1] << ") px, response " << r.node.response.toString();
    else
        f << "node " << r.node.layer << " (" << r.node.fx << ", " << r.node.fy << "), centre (" << c[0] << ", " << c[1]
          << ") px, response " << r.node.response.toString();
    if (r.roi)
        f << "; RoI (" << (*r.roi)[0] << ", " << (*r.roi)[1] << ") – (" << (*r.roi)[2] << ", " << (*r.roi)[3] << ") px";
    if (rq.what.saliency)
        f << "; saliency ε = " << rq.epsilon << ", baseline " << rq.baseline.toString();
    if (rq.what.sampling)
        f << "; " << rq.levels << " levels through " << common::name(rq.through) << ", " << common::name(rq.reading)
          << " offsets";
    return f.str();
}

std::vector<std::string> writeFigures(const std::vector<const report::Run*>& runs, const common::AnalysisRequest& rq,
                                      const std::string& dir, const std::string& base, const std::string& title) {
    if (!rq.figures || runs.empty())
        return {};
    ensureGuiApplication();
    std::vector<NodeResults> columns;
    for (const report::Run* r : runs)
        columns.push_back(nodeResultsOf(*r, rq));
    const Figure fig = analysisFigure(columns, title, footerOf(*runs.front(), rq), rq.overlays);
    std::vector<std::string> written;
    for (const char* ext : {".png", ".svg", ".pdf"}) {
        const std::string name = base + ext;
        const std::string error = saveFigure(fig, inDir(dir, name));
        if (!error.empty())
            throw std::runtime_error(error);
        written.push_back(name);
    }
    return written;
}

Figure erfAverageFigure(const analysis::ErfAverageResult& result, const model::LoadedModel& m,
                        const model::LayerGraph& g, const std::string& folder, bool isSigned, bool logScale) {
    Panel p;
    p.title = report::stemOf(m.path()) + ", " + std::to_string(result.images) + " images";
    const at::Tensor map = result.map.contiguous();
    Heat h;
    h.height = int(map.size(0));
    h.width = int(map.size(1));
    h.values.assign(map.data_ptr<float>(), map.data_ptr<float>() + map.numel());
    h.log = logScale;
    h.isSigned = isSigned;
    h.colormap = isSigned ? "coolwarm" : "inferno";
    h.opacity = 1.0;
    analysis::ContourOptions contours;
    contours.isSigned = isSigned;
    h.contours = analysis::massContours(h.values, h.width, h.height, contours);
    p.heat = std::move(h);
    if (const model::Layer* l = g.find(result.node.layer)) {
        p.node = std::array<double, 2>{l->start[1] + double(result.node.fx) * l->jump[1],
                                       l->start[0] + double(result.node.fy) * l->jump[0]};
        p.nodeCell = {l->jump[1], l->jump[0]};
    }
    std::ostringstream c1;
    c1.precision(3);
    c1 << "90 % mass: " << result.metrics.areaPixels[1] << " px; high-contribution ratio (t=0.5): "
       << result.metrics.highContributionRatio[2];
    p.caption.push_back(c1.str());
    Figure fig;
    fig.title = "average ERF — " + result.node.layer;
    fig.footer = "node " + result.node.layer + " (" + std::to_string(result.node.fx) + ", " +
                 std::to_string(result.node.fy) + "), response " + result.node.response.toString() + ", " + folder;
    fig.panels.push_back(std::move(p));
    return fig;
}

std::vector<std::string> writeErfAverageFigures(const Figure& fig, const std::string& dir) {
    return writeNamedFigures(fig, dir, "erf_average");
}

Figure scaleMapFigure(const analysis::ScaleMapResult& result, const report::Run& run) {
    const int64_t rows = result.grid[0], cols = result.grid[1];
    const auto size = run.session->inputSize(); // H, W
    const model::Layer& l = run.session->layer(result.layer);
    // Each node's value over the pixels nearer its centre than any other grid node's (the grid's cells).
    std::vector<int64_t> rowOf(static_cast<size_t>(size[0])), colOf(static_cast<size_t>(size[1]));
    auto nearest = [](const std::vector<int64_t>& f, double start, double jump, int64_t px) {
        size_t best = 0;
        for (size_t i = 1; i < f.size(); ++i)
            if (std::abs(start + double(f[i]) * jump - double(px)) < std::abs(start + double(f[best]) * jump - double(px)))
                best = i;
        return int64_t(best);
    };
    for (int64_t y = 0; y < size[0]; ++y)
        rowOf[size_t(y)] = nearest(result.fy, l.start[0], l.jump[0], y);
    for (int64_t x = 0; x < size[1]; ++x)
        colOf[size_t(x)] = nearest(result.fx, l.start[1], l.jump[1], x);
    Figure fig;
    fig.title = "ERF radius over " + result.layer + " — " + run.name;
    fig.cols = int(result.fractions.size());
    for (size_t f = 0; f < result.fractions.size(); ++f) {
        const at::Tensor r = result.radii[int64_t(f)].contiguous();
        const auto a = r.accessor<double, 2>();
        Panel p;
        const int pct = int(std::lround(result.fractions[f] * 100));
        p.title = "radius holding " + std::to_string(pct) + " % of the ERF";
        p.background = inputImage(*run.session);
        Heat h;
        h.height = int(size[0]);
        h.width = int(size[1]);
        h.values.resize(size_t(size[0] * size[1]));
        for (int64_t y = 0; y < size[0]; ++y)
            for (int64_t x = 0; x < size[1]; ++x)
                h.values[size_t(y * size[1] + x)] = float(a[rowOf[size_t(y)]][colOf[size_t(x)]]);
        h.colormap = "viridis";
        h.opacity = 0.7;
        p.heat = std::move(h);
        const at::Tensor flat = r.flatten();
        std::ostringstream c;
        c.precision(3);
        c << "min " << flat.min().item<double>() << " px, median " << flat.median().item<double>() << " px, max "
          << flat.max().item<double>() << " px";
        p.caption.push_back(c.str());
        p.caption.push_back("colour: 0 to the largest radius (" + std::to_string(rows) + " x " + std::to_string(cols) +
                            " nodes)");
        fig.panels.push_back(std::move(p));
    }
    fig.footer = "layer " + result.layer + ", " + std::to_string(rows) + " x " + std::to_string(cols) +
                 " nodes, response " + result.response.toString() + "; radius: the smallest disc around the node's "
                 "centre holding that share of Σ|∂response/∂pixel|";
    return fig;
}

std::vector<std::string> writeNamedFigures(const Figure& fig, const std::string& dir, const std::string& base) {
    ensureGuiApplication();
    std::vector<std::string> written;
    for (const char* ext : {".png", ".svg", ".pdf"}) {
        const std::string name = base + ext;
        const std::string error = saveFigure(fig, inDir(dir, name));
        if (!error.empty())
            throw std::runtime_error(error);
        written.push_back(name);
    }
    return written;
}

std::vector<std::string> writeStudyFigures(const std::vector<report::StudyRow>& rows,
                                           const std::vector<std::string>& names, const std::string& dir,
                                           std::vector<std::string>* problems) {
    ensureGuiApplication();
    struct Scatter {
        const char* measure;
        const char* base;
        const char* label;
    };
    const nlohmann::ordered_json table = report::studyTable(rows, names);
    std::vector<std::string> written;
    for (const Scatter& sc : {Scatter{"erf_radius90_px", "study_erf", "ERF radius, 90 % of the mass (px)"},
                              Scatter{"saliency_size_px", "study_saliency", "sqrt(saliency region area) (px)"},
                              Scatter{"sampling_spread_px", "study_sampling", "sampling points' weighted spread (px)"}}) {
        double (*value)(const report::StudyRow&) = nullptr;
        for (const report::StudyMeasure& me : report::studyMeasures())
            if (std::string(me.name) == sc.measure)
                value = me.value;
        LinePlot plot;
        plot.joined = false;
        plot.title = std::string(sc.label) + " against object size";
        plot.xLabel = "sqrt(object area) (px)";
        plot.yLabel = sc.label;
        bool any = false;
        for (size_t k = 0; k < names.size(); ++k) {
            PlotSeries series;
            std::ostringstream name;
            name << names[k];
            const nlohmann::ordered_json& m = table.at(k).at("measures");
            if (m.contains(sc.measure) && m.at(sc.measure).at("spearman").at("r").is_number()) {
                name.precision(2);
                name << std::fixed << " (rho " << m.at(sc.measure).at("spearman").at("r").get<double>() << ")";
            }
            series.name = name.str();
            for (const report::StudyRow& r : rows)
                if (r.model == names[k] && value(r) >= 0) {
                    series.x.push_back(r.objectSizePx);
                    series.y.push_back(value(r));
                    any = true;
                }
            plot.series.push_back(std::move(series));
        }
        if (!any)
            continue;
        plot.footer = "one point per object and model; study.csv has the numbers, result.json the correlations";
        for (const char* ext : {".png", ".svg", ".pdf"}) {
            const std::string file = std::string(sc.base) + ext;
            const std::string error = saveLinePlot(plot, (std::filesystem::path(dir) / file).string());
            if (!error.empty()) {
                if (problems)
                    problems->push_back(error);
                break;
            }
            written.push_back(file);
        }
    }
    return written;
}

} // namespace deformscope::figure
