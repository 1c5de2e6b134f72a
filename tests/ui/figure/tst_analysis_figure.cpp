// Tests of ui_analysis_figure and the core functions it draws from, on the
// sample models and sample_01.png: core's offset field is the captured offsets
// in image pixels with DCNv2's mean mask per cell, the ERF panel carries core's
// mass contours, and analysisFigure draws each overlay in its analysis's row —
// the default is the CLI's figure, the offset field and modulation map join the
// sampling row, a row with nothing to draw is left out. Offscreen platform.
//
// DEFORMSCOPE_FIGURE_EXAMPLE=<dir> also writes overlays.png/.svg/.pdf (the three
// samples with every overlay on) into <dir>, to look at.
#include "core/analysis/analysis.h"
#include "core/analysis/contours.h"
#include "core/analysis/offset_field.h"
#include "core/imaging/image.h"
#include "core/model/model.h"
#include "ui/analysis_figure/analysis_figure.h"
#include "tests/ui/pixels.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QImage>
#include <QPainter>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <memory>
#include <vector>

using namespace deformscope;
using deformscope::test::differingPixels;

namespace {

std::string sample(const std::string& path) { return std::string(DEFORMSCOPE_SOURCE_DIR) + "/" + path; }

analysis::AnalysisSession sampleSession(const std::string& model) {
    const auto m = model::LoadedModel::load(sample("sample_models/" + model));
    imaging::Normalization norm;
    norm.mean = m.metadata().mean;
    norm.std = m.metadata().std;
    const auto img = imaging::loadImage(sample("resources/samples/sample_01.png"), std::array<int64_t, 2>{128, 128}, norm);
    return analysis::AnalysisSession(m, img.tensor);
}

// One column per sample model: the node of block3 under (58, 46) with its sampling trace and ERF.
struct Samples {
    std::vector<std::unique_ptr<analysis::AnalysisSession>> sessions;
    std::vector<figure::NodeResults> columns;

    Samples() {
        for (const char* name : {"regular", "dcn_v1", "dcn_v2"}) {
            sessions.push_back(std::make_unique<analysis::AnalysisSession>(sampleSession(std::string(name) + ".pt")));
            const analysis::AnalysisSession& s = *sessions.back();
            figure::NodeResults r;
            r.title = name;
            r.session = &s;
            r.node = s.nodeAt("block3", 58, 46);
            r.sampling = s.sampling(r.node);
            r.erf = s.erf(r.node);
            columns.push_back(std::move(r));
        }
    }
};

const Samples& samples() {
    static const Samples s;
    return s;
}

QImage render(const figure::Figure& f) {
    const QSizeF size = figure::figureSize(f);
    QImage image(size.toSize(), QImage::Format_RGB32);
    image.fill(Qt::white);
    QPainter painter(&image);
    figure::paintFigure(painter, f);
    return image;
}

} // namespace

class TestAnalysisFigure : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void offsetFieldIsTheCapture() {
        const analysis::AnalysisSession& s = *samples().sessions[2]; // DCNv2
        const model::Layer& l = s.layer("block3");
        const analysis::OffsetField f = analysis::offsetField(s, "block3");
        QCOMPARE(f.layer, std::string("block3"));
        QCOMPARE(f.featureH, int(l.feature_size[0]));
        QCOMPARE(f.featureW, int(l.feature_size[1]));
        QCOMPARE(f.taps, 9);
        QVERIFY(f.modulated);
        QCOMPARE(f.arrows.size(), size_t(f.featureH) * size_t(f.featureW) * 9);
        QCOMPARE(f.meanModulation.size(), size_t(f.featureH) * size_t(f.featureW));
        // The centre tap (4) of the node's position sits on the node's centre; its
        // offset is the captured one times the layer input's jump; the cell's
        // modulation is the mean of its taps' mask values.
        const analysis::Node node = s.nodeAt("block3", 58, 46);
        const size_t cell = size_t(node.fy) * size_t(f.featureW) + size_t(node.fx);
        const analysis::OffsetArrow& a = f.arrows[cell * 9 + 4];
        const auto centre = s.nodeCentre(node);
        QVERIFY(std::abs(a.x - centre[0]) < 1e-4 && std::abs(a.y - centre[1]) < 1e-4);
        const model::LayerTensors& t = s.capture().tensors[size_t(l.index)];
        const at::Tensor off = t.offset.detach().to(at::kCPU);
        const double inJump = l.jump[1] / double(l.stride[1]);
        QVERIFY(std::abs(a.dx - off[0][9][node.fy][node.fx].item<double>() * inJump) < 1e-4);
        QVERIFY(std::abs(a.dy - off[0][8][node.fy][node.fx].item<double>() * inJump) < 1e-4);
        const at::Tensor mask = t.mask.detach().to(at::kCPU, at::kDouble);
        QVERIFY(std::abs(a.modulation - mask[0][4][node.fy][node.fx].item<double>()) < 1e-6);
        QVERIFY(std::abs(f.meanModulation[cell] - mask[0].select(1, node.fy).select(1, node.fx).mean().item<double>()) < 1e-6);
        QCOMPARE(f.start, l.start);
        QCOMPARE(f.jump, l.jump);

        // The figure's field: the same arrows, cells in x, y order, anchored on the node.
        const figure::OffsetField g = figure::offsetField(samples().columns[2]);
        QVERIFY(g.hasArrows() && g.hasModulation());
        QCOMPARE(g.arrows.size(), f.arrows.size());
        QCOMPARE(g.arrows[cell * 9 + 4].dx, a.dx);
        QCOMPARE(g.modulation, f.meanModulation);
        QCOMPARE(g.start, (std::array<double, 2>{l.start[1], l.start[0]}));
        QCOMPARE(g.anchor, (std::array<int, 2>{int(node.fx), int(node.fy)}));

        // DCNv1: arrows, no modulation; a regular conv: nothing; an unknown layer: an error.
        const analysis::OffsetField v1 = analysis::offsetField(*samples().sessions[1], "block3");
        QVERIFY(!v1.empty() && !v1.modulated && v1.meanModulation.empty());
        const analysis::OffsetField regular = analysis::offsetField(*samples().sessions[0], "block3");
        QVERIFY(regular.empty() && regular.featureH == 0 && !regular.modulated);
        QVERIFY_THROWS_EXCEPTION(analysis::AnalysisError, analysis::offsetField(s, "no_such_layer"));
    }

    void erfPanelCarriesCoreContours() {
        const figure::NodeResults& r = samples().columns[2];
        const figure::Panel p = figure::erfPanel(r);
        QVERIFY(p.heat.has_value());
        const at::Tensor m = r.erf->map.to(at::kCPU, at::kFloat).contiguous();
        const std::vector<float> values(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
        const auto expected = analysis::massContours(values, 128, 128); // 50 % / 90 %, σ = 2
        QCOMPARE(p.heat->contours.size(), size_t(2));
        QCOMPARE(p.heat->contours[0].fraction, 0.5);
        QCOMPARE(p.heat->contours[1].fraction, 0.9);
        QVERIFY(!p.heat->contours[0].loops.empty());
        for (size_t i = 0; i < 2; ++i)
            QCOMPARE(p.heat->contours[i].loops, expected[i].loops);
    }

    void defaultOverlaysAreTheCliFigure() {
        const figure::Figure f = figure::analysisFigure(samples().columns, "t", "f");
        QCOMPARE(f.rows, 2); // no saliency computed
        QCOMPARE(f.cols, 3);
        QCOMPARE(f.rowLabels, (std::vector<std::string>{"sampling points", "effective receptive field"}));
        for (const figure::Panel& p : f.panels) {
            QVERIFY(p.arrows == figure::Arrows::None && !p.modulationMap && !p.offsets.hasArrows());
            QCOMPARE(p.caption.empty(), false);
        }
        QVERIFY(!f.panels[0].points.empty());
        QVERIFY(f.panels[3].heat.has_value());
    }

    void overlaysChooseTheRows() {
        const auto& columns = samples().columns;
        figure::Overlays all;
        all.offsets = all.modulation = true;
        figure::Figure f = figure::analysisFigure(columns, "t", "f", all);
        QCOMPARE(f.rows, 2);
        QCOMPARE(f.rowLabels.front(), std::string("sampling points, offset field, modulation"));
        const figure::Panel &regular = f.panels[0], &v1 = f.panels[1], &v2 = f.panels[2];
        QVERIFY(!v2.points.empty() && v2.arrows == figure::Arrows::PerTap && v2.modulationMap);
        QVERIFY(v2.offsets.hasArrows() && v2.offsets.hasModulation());
        QVERIFY(v1.offsets.hasArrows() && !v1.offsets.hasModulation());
        QCOMPARE(v1.caption.back(), std::string("no modulation map: block3 has no mask"));
        QVERIFY(!regular.offsets.hasArrows());
        QCOMPARE(regular.caption.back(), std::string("no offsets: block3 is not deformable"));

        // The offset field alone: one row, the sampling row without points.
        figure::Overlays arrows;
        arrows.sampling = arrows.erf = arrows.saliency = false;
        arrows.offsets = true;
        f = figure::analysisFigure(columns, "t", "f", arrows);
        QCOMPARE(f.rows, 1);
        QCOMPARE(f.rowLabels, (std::vector<std::string>{"offset field"}));
        QVERIFY(f.panels[2].points.empty() && f.panels[2].offsets.hasArrows());

        // A row with nothing to draw is left out: a regular conv has no offset field.
        const std::vector<figure::NodeResults> regularOnly{columns[0]};
        arrows.erf = true;
        f = figure::analysisFigure(regularOnly, "t", "f", arrows);
        QCOMPARE(f.rows, 1);
        QCOMPARE(f.cols, 1); // one column: the rows become panels side by side
        QCOMPARE(f.panels[0].title, std::string("effective receptive field"));
        figure::Overlays none;
        none.sampling = none.erf = none.saliency = false;
        QCOMPARE(figure::analysisFigure(columns, "t", "f", none).rows, 0);
    }

    void theFigureDrawsTheOverlays() {
        const auto& columns = samples().columns;
        figure::Overlays all;
        all.offsets = all.modulation = true;
        const figure::Figure plain = figure::analysisFigure(columns, "overlays", "footer");
        const figure::Figure drawn = figure::analysisFigure(columns, "overlays", "footer", all);
        const QImage a = render(plain), b = render(drawn);
        // The DCNv2 sampling panel changes (arrows and the modulation map over it);
        // the ERF row carries no offset overlay.
        auto crop = [](const QImage& image, const QRectF& r) { return image.copy(r.toAlignedRect()); };
        QVERIFY(differingPixels(crop(a, figure::panelImageRect(plain, 0, 2)), crop(b, figure::panelImageRect(drawn, 0, 2))) > 1000);
        for (int c = 0; c < 3; ++c) {
            const figure::Panel& erf = drawn.panels[size_t(3 + c)];
            QVERIFY(erf.heat && erf.arrows == figure::Arrows::None && !erf.modulationMap && !erf.offsets.hasArrows());
        }

        QString dir = qEnvironmentVariable("DEFORMSCOPE_FIGURE_EXAMPLE");
        QTemporaryDir tmp;
        if (dir.isEmpty())
            dir = tmp.path();
        for (const char* suffix : {"png", "svg", "pdf"}) {
            const QString file = QDir(dir).filePath(QStringLiteral("overlays.") + QLatin1String(suffix));
            QCOMPARE(QString::fromStdString(figure::saveFigure(drawn, file.toStdString())), QString());
        }
    }
};

QTEST_MAIN(TestAnalysisFigure)
#include "tst_analysis_figure.moc"
