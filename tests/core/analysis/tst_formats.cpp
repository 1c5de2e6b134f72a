// One network (a DCNv1 and a DCNv2 in residual blocks with batch norm, a flow warp
// through grid_sample, a 1x1 head; tests/python/make_formats.py) written as
// TorchScript, as a torch.export archive and as ONNX (torch.onnx's two exporters,
// opsets 22 and 19, weights inline and as external data): DeformScope reads them all
// the same — the layer list, the forward output (and PyTorch's eager output,
// onnxruntime's for ONNX), the sampling points and the ERF — and refuses damaged or
// unsupported files with the file and the reason.
#include "core/analysis/analysis.h"
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "core/model/capture.h"
#include "core/model/model.h"

#include <ATen/ATen.h>

#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <string>

using namespace deformscope;
using namespace deformscope::analysis;

namespace {

std::string fixture(const std::string& file) { return std::string(DEFORMSCOPE_FORMAT_FIXTURE_DIR) + "/" + file; }

Node theNode() {
    const common::Json e = common::readJsonFile(fixture("formats_expect.json")).at("node");
    Node n;
    n.layer = e.at("layer").get<std::string>();
    n.fy = e.at("y").get<int64_t>();
    n.fx = e.at("x").get<int64_t>();
    n.response.kind = Response::Kind::Channel;
    n.response.index = e.at("channel").get<int64_t>();
    return n;
}

double relativeL1(const at::Tensor& a, const at::Tensor& b) {
    return (a.to(at::kDouble) - b.to(at::kDouble)).abs().sum().item<double>() /
           std::max(b.to(at::kDouble).abs().sum().item<double>(), 1e-30);
}

// The CLI's message and exit code for a file.
std::pair<int, QString> cliInfo(const std::string& file) {
    QProcess p;
    p.start(QStringLiteral(DEFORMSCOPE_CLI), {QStringLiteral("info"), QString::fromStdString(fixture(file))});
    p.waitForFinished(120000);
    return {p.exitCode(), QString::fromUtf8(p.readAllStandardError() + p.readAllStandardOutput())};
}

// Why the ONNX file cannot be tested here (nullptr: it can): the ONNX files need an
// ONNX-enabled build and the exporter in the fixture's Python (tools/bootstrap installs
// both; formats_expect.json says whether they were written).
const char* onnxMissing(const QString& file) {
    if (!file.endsWith(QStringLiteral(".onnx")))
        return nullptr;
#ifndef DEFORMSCOPE_WITH_ONNX
    return "built without ONNX support (libonnx-dev, libprotobuf-dev)";
#endif
    if (!common::readJsonFile(fixture("formats_expect.json")).value("onnx", false))
        return "the fixture's Python has no onnx/onnxscript/onnxruntime: no ONNX files were written";
    return nullptr;
}

} // namespace

class TestFormats : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void everyFormatReadsAsTheTorchScriptFile_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("format");
        QTest::newRow("torch.export") << "net.pt2" << "torch.export (.pt2), schema 8.";
        QTest::newRow("ONNX, torch.onnx (dynamo), opset 22") << "net.onnx" << "ONNX, opset 22, IR version ";
        QTest::newRow("ONNX, TorchScript-based exporter, opset 19") << "net_opset19.onnx" << "ONNX, opset 19, ";
        QTest::newRow("ONNX, external data") << "external.onnx" << "ONNX, opset 22, ";
    }
    void everyFormatReadsAsTheTorchScriptFile() {
        QFETCH(QString, file);
        QFETCH(QString, format);
        if (const char* why = onnxMissing(file))
            QSKIP(why);
        const model::LoadedModel ts = model::LoadedModel::load(fixture("net.pt"));
        const model::LoadedModel pt2 = model::LoadedModel::load(fixture(file.toStdString()));
        QCOMPARE(ts.format(), std::string("TorchScript"));
        QVERIFY2(pt2.format().rfind(format.toStdString(), 0) == 0, pt2.format().c_str());
        // The metadata travels in the archive's extra files, ONNX's metadata_props.
        QVERIFY(pt2.metadata().fromFile);
        QCOMPARE(pt2.metadata().suggestedLayer, std::string("head"));
        QCOMPARE(pt2.inputNames(), ts.inputNames());

        const at::Tensor x = common::readNpy(fixture("net_input.npy")).to(at::kFloat);
        const at::Tensor eager = common::readNpy(fixture("net_output.npy")).to(at::kFloat);
        const at::Tensor yTs = ts.forward(x).detach(), yPt2 = pt2.forward(x).detach();
        QVERIFY2(relativeL1(yPt2, eager) < 1e-5, std::to_string(relativeL1(yPt2, eager)).c_str());
        QVERIFY2(relativeL1(yTs, eager) < 1e-5, std::to_string(relativeL1(yTs, eager)).c_str());
        if (file.endsWith(QStringLiteral(".onnx"))) { // onnxruntime's output: a second reference
            const at::Tensor ort = common::readNpy(fixture("net_ort_output.npy")).to(at::kFloat);
            QVERIFY2(relativeL1(yPt2, ort) < 1e-5, std::to_string(relativeL1(yPt2, ort)).c_str());
        }

        const AnalysisSession a(ts, x), b(pt2, x);
        // The same layers, named as in PyTorch, with the same kinds, geometry and wiring.
        const QStringList la = QString::fromStdString(a.graph().toTable()).split(QLatin1Char('\n'));
        const QStringList lb = QString::fromStdString(b.graph().toTable()).split(QLatin1Char('\n'));
        QCOMPARE(lb.size(), la.size());
        for (qsizetype i = 0; i < la.size(); ++i)
            QVERIFY2(la[i] == lb[i], qPrintable(QStringLiteral("TorchScript: ") + la[i] + QStringLiteral("\n") + file +
                                                QStringLiteral(": ") + lb[i]));
        const common::Json kinds = common::readJsonFile(fixture("formats_expect.json")).at("layers");
        for (const auto& [name, kind] : kinds.items()) {
            const model::Layer* l = b.graph().find(name);
            QVERIFY2(l, name.c_str());
            QCOMPARE(std::string(model::kindName(l->kind)), kind.get<std::string>());
        }
        // Sampling points: the same positions; weights to float precision.
        const Node node = theNode();
        const SamplingTrace ta = a.sampling(node), tb = b.sampling(node);
        QCOMPARE(tb.points.size(), ta.points.size());
        QVERIFY(ta.points.size() > 100);
        double maxWeight = 0;
        for (const SamplingPoint& p : ta.points)
            maxWeight = std::max(maxWeight, p.weight);
        for (size_t i = 0; i < ta.points.size(); ++i) {
            const SamplingPoint &p = ta.points[i], &q = tb.points[i];
            QCOMPARE(q.level, p.level);
            QCOMPARE(b.graph().layers()[size_t(q.layer)].name, a.graph().layers()[size_t(p.layer)].name);
            QCOMPARE(q.x, p.x);
            QCOMPARE(q.y, p.y);
            QVERIFY(std::abs(q.weight - p.weight) <= 1e-5 * maxWeight);
        }
        // ERF: ≤ 1e-5 relative L1.
        const at::Tensor ea = a.erf(node).map, eb = b.erf(node).map;
        QVERIFY2(relativeL1(eb, ea) < 1e-5, std::to_string(relativeL1(eb, ea)).c_str());
    }

    void everyOnnxOperatorMatchesOnnxruntime_data() {
        QTest::addColumn<QString>("name");
        for (const char* name : {"opset11", "opset13", "opset17", "opset19", "opset22"})
            QTest::newRow(name) << name;
    }
    void everyOnnxOperatorMatchesOnnxruntime() {
        // tests/python/make_onnx_ops.py: one network through 43 of the 81 translated operators
        // (convolutions, pools, Resize, Pad, Split, Slice, attention, Gemm, GridSample,
        // DeformConv, LayerNormalization, ...), exported at five opsets by both exporters:
        // DeformScope's forward equals onnxruntime's and PyTorch's.
        QFETCH(QString, name);
        const std::string file = "ops_" + name.toStdString();
        if (const char* why = onnxMissing(QString::fromStdString(file + ".onnx")))
            QSKIP(why);
        const model::LoadedModel m = model::LoadedModel::load(fixture(file + ".onnx"));
        const at::Tensor x = common::readNpy(fixture("ops_input.npy")).to(at::kFloat);
        const at::Tensor y = m.forward(x).detach();
        const at::Tensor ort = common::readNpy(fixture(file + "_ort.npy")).to(at::kFloat);
        const at::Tensor eager = common::readNpy(fixture(file + "_eager.npy")).to(at::kFloat);
        QCOMPARE(y.sizes().vec(), ort.sizes().vec());
        QVERIFY2(relativeL1(y, ort) < 1e-5, std::to_string(relativeL1(y, ort)).c_str());
        QVERIFY2(relativeL1(y, eager) < 1e-5, std::to_string(relativeL1(y, eager)).c_str());
        // The layers as the module traced to TorchScript lists them (names and geometry): a
        // convolution the exporter fused with its batch norm keeps the convolution's name.
        const model::LoadedModel ts = model::LoadedModel::load(fixture(file + ".pt"));
        const AnalysisSession a(ts, x), b(m, x);
        QCOMPARE(b.graph().toTable(), a.graph().toTable());
        QVERIFY(b.graph().find("conv1") && !b.graph().find("bn1"));
    }

    void damagedOrUnsupportedArchivesAreRefusedClearly_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("says");
        QTest::newRow("truncated") << "bad_truncated.pt2" << "a damaged .pt2 archive, truncated";
        QTest::newRow("not an archive") << "bad_not_an_archive.pt2" << "not a torch.export archive";
        QTest::newRow("newer schema") << "bad_newer_schema.pt2" << "written with torch.export schema 99.";
        QTest::newRow("unregistered op") << "bad_unregistered.pt2" << "calls torchvision::roi_pool, an operator not registered here";
        QTest::newRow("size beyond any tensor")
            << "bad_huge_size.pt2" << ": a size, stride or offset beyond any tensor (the archive is damaged)";
        QTest::newRow("dtype not a whole number")
            << "bad_float_dtype.pt2" << "does not follow the torch.export schema (expected a whole number (32-bit), found 1e+30)";
        QTest::newRow("truncated ONNX") << "bad_truncated.onnx" << "not an ONNX model, or a damaged one (truncated";
        QTest::newRow("protobuf, not ONNX") << "bad_not_onnx.onnx" << "a protobuf file that is not an ONNX model";
        QTest::newRow("newer opset") << "bad_newer_opset.onnx" << "uses ONNX opset 23, newer than the opsets DeformScope reads (7 to 22)";
        QTest::newRow("unsupported operator")
            << "bad_unsupported.onnx" << "node pick (TopK): operator TopK is not supported. DeformScope translates: Abs, Add,";
        QTest::newRow("external data missing")
            << "bad_missing_data.onnx" << "initialiser stem.weight: its data is in bad_missing_data.onnx.data, which is not in the model's folder";
        QTest::newRow("external data outside the folder")
            << "bad_escaping_data.onnx" << "initialiser stem.weight: its external data location \"../external.onnx.data\" leaves the model's folder";
        QTest::newRow("external data at an absolute path")
            << "bad_absolute_data.onnx" << "external.onnx.data\" leaves the model's folder (ONNX allows only a path relative";
        QTest::newRow("dimensions overflowing")
            << "bad_overflow_dims.onnx" << ": dimensions whose product overflows (the file is damaged)";
    }
    void damagedOrUnsupportedArchivesAreRefusedClearly() {
        QFETCH(QString, file);
        QFETCH(QString, says);
        if (const char* why = onnxMissing(file))
            QSKIP(why);
        try {
            model::LoadedModel::load(fixture(file.toStdString()));
            QFAIL("loaded");
        } catch (const model::ModelError& e) {
            const QString what = QString::fromStdString(e.what());
            QVERIFY2(what.startsWith(QString::fromStdString(fixture(file.toStdString())) + QStringLiteral(": ")),
                     e.what());
            QVERIFY2(what.contains(says), e.what());
        }
        const auto [code, text] = cliInfo(file.toStdString());
        QCOMPARE(code, 2);
        QVERIFY2(text.contains(says), qPrintable(text));
    }

    void dynamicShapesRunAtAnySize() {
        // Exported with a dynamic height and width: the symbolic sizes are read from the
        // tensors at run time, so the program runs at the export size and at others.
        const model::LoadedModel dynamic = model::LoadedModel::load(fixture("dynamic.pt2"));
        const model::LoadedModel fixed = model::LoadedModel::load(fixture("net.pt2"));
        const at::Tensor x = common::readNpy(fixture("net_input.npy")).to(at::kFloat);
        const at::Tensor eager = common::readNpy(fixture("net_output.npy")).to(at::kFloat);
        QVERIFY(relativeL1(dynamic.forward(x).detach(), eager) < 1e-5);
        const at::Tensor other = at::rand({1, 3, 32, 36});
        const at::Tensor y = dynamic.forward(other).detach();
        QCOMPARE(y.sizes().vec(), (std::vector<int64_t>{1, 4, 32, 36}));
        const AnalysisSession a(fixed, x), b(dynamic, x);
        QCOMPARE(b.graph().toTable(), a.graph().toTable());
        const AnalysisSession small(dynamic, other);
        QCOMPARE(small.graph().find("layer1.1.dcn")->feature_size, (std::array<int64_t, 2>{32, 36}));
    }

    void aDynamicOnnxGraphRunsAtAnySize() {
        // Exported with a dynamic height and width: Shape, Gather, Concat, Range... are
        // computed when the model runs; the layers read the same at the export size and
        // another; a static graph takes its input size from its input.
        if (const char* why = onnxMissing(QStringLiteral("dynamic.onnx")))
            QSKIP(why);
        const model::LoadedModel dynamic = model::LoadedModel::load(fixture("dynamic.onnx"));
        const model::LoadedModel fixed = model::LoadedModel::load(fixture("net.pt2"));
        QVERIFY(!dynamic.metadata().inputSize);
        const at::Tensor x = common::readNpy(fixture("net_input.npy")).to(at::kFloat);
        const at::Tensor eager = common::readNpy(fixture("net_output.npy")).to(at::kFloat);
        QVERIFY(relativeL1(dynamic.forward(x).detach(), eager) < 1e-5);
        const at::Tensor other = at::rand({1, 3, 32, 56});
        QCOMPARE(dynamic.forward(other).sizes().vec(), (std::vector<int64_t>{1, 4, 32, 56}));
        const AnalysisSession a(fixed, x), b(dynamic, x);
        QCOMPARE(b.graph().toTable(), a.graph().toTable());
        const AnalysisSession small(dynamic, other);
        QCOMPARE(small.graph().find("warp")->feature_size, (std::array<int64_t, 2>{32, 56}));
        // The same ERF at another size as the .pt2 exported with dynamic shapes.
        const model::LoadedModel dynamicPt2 = model::LoadedModel::load(fixture("dynamic.pt2"));
        const AnalysisSession c(dynamicPt2, other);
        const Node node = theNode();
        QVERIFY(relativeL1(small.erf(node).map, c.erf(node).map) < 1e-5);

        // Without metadata, a static graph's input gives the input size.
        const model::LoadedModel plain = model::LoadedModel::load(fixture("nometa.onnx"));
        QVERIFY(!plain.metadata().fromFile);
        QVERIFY(plain.metadata().inputSize.has_value());
        QCOMPARE(*plain.metadata().inputSize, (std::array<int64_t, 2>{40, 48}));
        bool said = false;
        for (const std::string& n : plain.notes())
            said = said || n.find("the ONNX graph's input size 40x48") != std::string::npos;
        QVERIFY(said);
    }

    void aStaticOnnxGraphAtAnotherSizeSaysSo() {
        // net.onnx was exported at 40 x 48 and its flow warp's grid folded into a constant: at
        // another size the message names the file, the graph's size and the way out; exit 2.
        if (const char* why = onnxMissing(QStringLiteral("net.onnx")))
            QSKIP(why);
        const model::LoadedModel m = model::LoadedModel::load(fixture("net.onnx"));
        try {
            m.forward(at::rand({1, 3, 64, 64}));
            QFAIL("ran");
        } catch (const model::ModelError& e) {
            QVERIFY2(std::string(e.what()).rfind(fixture("net.onnx") + ": the ONNX graph was exported for a 40 x 48 "
                                                                       "input (its input's fixed size) and does not run "
                                                                       "at 64 x 64 (",
                                                 0) == 0,
                     e.what());
            QVERIFY2(std::string(e.what()).find("use --input-size 40 48") != std::string::npos, e.what());
        }
        QProcess p;
        p.start(QStringLiteral(DEFORMSCOPE_CLI), {QStringLiteral("info"), QString::fromStdString(fixture("net.onnx")),
                                                  QStringLiteral("--input-size"), QStringLiteral("64"),
                                                  QStringLiteral("64")});
        p.waitForFinished(120000);
        QCOMPARE(p.exitCode(), 2);
        QVERIFY(QString::fromUtf8(p.readAllStandardError()).contains(QStringLiteral("exported for a 40 x 48 input")));
    }

    void theBundledSampleReadsAsItsTorchScript_data() {
        QTest::addColumn<QString>("file");
        QTest::newRow(".pt2") << "dcn_v2.pt2";
        QTest::newRow("ONNX") << "dcn_v2.onnx";
    }
    void theBundledSampleReadsAsItsTorchScript() {
        // sample_models/dcn_v2.pt2 and dcn_v2.onnx (sample_models/export_pt2.py, export_onnx.py
        // from dcn_v2.pt): same metadata, layers, output, sampling points and ERF.
        QFETCH(QString, file);
#ifndef DEFORMSCOPE_WITH_ONNX
        if (file.endsWith(QStringLiteral(".onnx")))
            QSKIP("built without ONNX support (libonnx-dev, libprotobuf-dev)");
#endif
        const std::string dir = std::string(DEFORMSCOPE_SOURCE_DIR) + "/sample_models/";
        const model::LoadedModel ts = model::LoadedModel::load(dir + "dcn_v2.pt");
        const model::LoadedModel pt2 = model::LoadedModel::load(dir + file.toStdString());
        QCOMPARE(pt2.metadata().toJson().dump(), ts.metadata().toJson().dump());
        const at::Tensor x = at::rand({1, 3, 128, 128});
        QVERIFY(relativeL1(pt2.forward(x).detach(), ts.forward(x).detach()) < 1e-5);
        const AnalysisSession a(ts, x), b(pt2, x);
        QCOMPARE(b.graph().toTable(), a.graph().toTable());
        Node node;
        node.layer = "block3";
        node.fy = 9;
        node.fx = 6;
        const SamplingTrace ta = a.sampling(node), tb = b.sampling(node);
        QCOMPARE(tb.points.size(), ta.points.size());
        for (size_t i = 0; i < ta.points.size(); ++i) {
            QCOMPARE(tb.points[i].x, ta.points[i].x);
            QCOMPARE(tb.points[i].y, ta.points[i].y);
        }
        QVERIFY(relativeL1(b.erf(node).map, a.erf(node).map) < 1e-5);
    }

    void aSideFileGivesTheInputSettingsOfAnArchiveWithout() {
        // dynamic.pt2 was saved without extra files: <model>.deformscope.json next to it
        // gives its input settings; a wrong value there names the side file.
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string model = dir.filePath(QStringLiteral("net.pt2")).toStdString();
        QVERIFY(QFile::copy(QString::fromStdString(fixture("dynamic.pt2")), QString::fromStdString(model)));
        QCOMPARE(model::LoadedModel::load(model).metadata().fromFile, false);
        const QString side = dir.filePath(QStringLiteral("net.deformscope.json"));
        auto write = [&](const QByteArray& text) {
            QFile f(side);
            QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
            f.write(text);
        };
        write(R"({"input_size": [32, 36], "suggested_layer": "layer1.1.dcn"})");
        const model::LoadedModel m = model::LoadedModel::load(model);
        QVERIFY(m.metadata().fromFile);
        QCOMPARE(m.metadata().inputSize.value(), (std::array<int64_t, 2>{32, 36}));
        QCOMPARE(m.metadata().suggestedLayer, std::string("layer1.1.dcn"));
        bool said = false;
        for (const std::string& n : m.notes())
            said = said || n.find("net.deformscope.json") != std::string::npos;
        QVERIFY(said);
        write(R"({"input_size": "large"})");
        try {
            model::LoadedModel::load(model);
            QFAIL("loaded");
        } catch (const model::ModelError& e) {
            QVERIFY2(std::string(e.what()).rfind(side.toStdString() + ": ", 0) == 0, e.what());
            QVERIFY2(std::string(e.what()).find("input_size") != std::string::npos, e.what());
        }
    }

    void infoSaysTheFormat_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("format");
        QTest::newRow(".pt2") << "net.pt2" << "format: torch.export (.pt2), schema 8.";
        QTest::newRow("ONNX") << "net_opset19.onnx" << "format: ONNX, opset 19, IR version 9, written by pytorch 2.";
    }
    void infoSaysTheFormat() {
        QFETCH(QString, file);
        QFETCH(QString, format);
        if (const char* why = onnxMissing(file))
            QSKIP(why);
        const auto [code, text] = cliInfo(file.toStdString());
        QCOMPARE(code, 0);
        QVERIFY2(text.contains(format), qPrintable(text));
        QVERIFY(text.contains(QStringLiteral("layer1.1.dcn")));
    }
};

QTEST_APPLESS_MAIN(TestFormats)
#include "tst_formats.moc"
