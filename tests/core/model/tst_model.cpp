// Tests of core/model against a model made by real PyTorch + torchvision
// (tests/python/make_fixture.py): loading, the layer graph, the run-time
// capture, metadata, and the errors users meet.
#include "core/model/capture.h"
#include "core/model/model.h"

#include <ATen/ATen.h>
#include <torch/script.h>

#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtTest/QtTest>

using namespace deformscope::model;

namespace {

QString fixture(const char* name) {
    return QDir(QStringLiteral(DEFORMSCOPE_MODEL_FIXTURE_DIR)).filePath(QString::fromUtf8(name));
}

std::string path(const char* name) {
    return fixture(name).toStdString();
}

// A buffer of fixture_data.pt: what Python computed.
at::Tensor pythonTensor(const char* name) {
    static torch::jit::Module data = torch::jit::load(path("fixture_data.pt"));
    return data.attr(name).toTensor();
}

std::string joinNames(const LayerGraph& g, const std::vector<int>& indices) {
    std::string s;
    for (int i : indices)
        s += (s.empty() ? "" : ",") + g.layers()[static_cast<size_t>(i)].name;
    return s;
}

double maxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
    return (a.detach().cpu().to(at::kDouble) - b.detach().cpu().to(at::kDouble)).abs().max().item<double>();
}

std::string messageOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const ModelError& e) {
        return e.what();
    }
    return "(no ModelError)";
}

} // namespace

class TestModel : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() {
        if (!QFile::exists(fixture("fixture_model.pt")))
            QFAIL("fixture missing: run through ctest (the model_fixture test writes it with Python)");
    }

    void loadsWithMetadata() {
        const LoadedModel m = LoadedModel::load(path("fixture_model.pt"));
        QVERIFY(m.metadata().fromFile);
        QVERIFY(m.metadata().inputSize.has_value());
        QCOMPARE((*m.metadata().inputSize)[0], int64_t{48});
        QCOMPARE(m.metadata().classNames.size(), size_t{5});
        QCOMPARE(m.metadata().suggestedLayer, std::string("layer3.conv2"));
        QVERIFY(m.notes().empty());
    }

    void withoutMetadataUsesDefaultsAndSaysSo() {
        const LoadedModel m = LoadedModel::load(path("no_metadata.pt"));
        QVERIFY(!m.metadata().fromFile);
        QVERIFY(!m.metadata().inputSize.has_value());
        QCOMPARE(m.metadata().mean[0], 0.485);
        QCOMPARE(m.metadata().std[2], 0.225);
        QCOMPARE(m.notes().size(), size_t{1});
        QVERIFY(m.notes()[0].find("using defaults") != std::string::npos);
    }

    // The known structure of FixtureNet at 48 x 48, worked out by hand from make_fixture.py.
    void layerGraphMatchesKnownStructure_data() {
        QTest::addColumn<QString>("name");
        QTest::addColumn<QString>("kind");
        QTest::addColumn<int>("kernel");
        QTest::addColumn<int>("stride");
        QTest::addColumn<int>("padding");
        QTest::addColumn<int>("outChannels");
        QTest::addColumn<int>("feature");
        QTest::addColumn<double>("jump");
        QTest::addColumn<double>("start");
        QTest::addColumn<double>("rf");
        QTest::addColumn<QString>("inputs");
        QTest::addColumn<QString>("offsetSource");
        QTest::addColumn<QString>("maskSource");
        auto row = [](const char* n, const char* kind, int k, int s, int p, int cout, int f, double jump, double start,
                      double rf, const char* inputs, const char* off = "", const char* mask = "") {
            QTest::newRow(n) << QString(n) << QString(kind) << k << s << p << cout << f << jump << start << rf
                             << QString(inputs) << QString(off) << QString(mask);
        };
        row("stem", "conv", 3, 2, 1, 8, 24, 2, 0, 3, "");
        row("pool", "pool", 3, 2, 1, 8, 12, 4, 0, 7, "stem");
        row("layer1.conv1", "conv", 3, 1, 1, 8, 12, 4, 0, 15, "pool");
        row("layer1.conv2", "conv", 3, 1, 1, 8, 12, 4, 0, 23, "layer1.conv1");
        row("layer2.conv1", "conv", 3, 2, 1, 16, 6, 8, 0, 31, "pool,layer1.conv2"); // residual: identity + conv2
        row("layer2.offset", "conv", 3, 1, 1, 18, 6, 8, 0, 47, "layer2.conv1");
        row("layer2.conv2", "dcn_v1", 3, 1, 1, 16, 6, 8, 0, 47, "layer2.conv1", "layer2.offset");
        row("layer2.shortcut", "conv", 1, 2, 0, 16, 6, 8, 0, 23, "pool,layer1.conv2");
        row("layer3.conv1", "conv", 3, 1, 1, 16, 6, 8, 0, 63, "layer2.conv2,layer2.shortcut");
        row("layer3.offset_mask", "conv", 3, 1, 1, 27, 6, 8, 0, 79, "layer3.conv1");
        row("layer3.conv2", "dcn_v2", 3, 1, 1, 16, 6, 8, 0, 79, "layer3.conv1", "layer3.offset_mask", "layer3.offset_mask");
        row("classifier", "conv", 1, 1, 0, 5, 6, 8, 0, 79, "layer2.conv2,layer2.shortcut,layer3.conv2");
        // bilinear x8, align_corners=False: output 0 sits at input -0.4375, i.e. image 8 * -0.4375 = -3.5
        row("interpolate", "upsample", 1, 1, 0, 5, 48, 1, -3.5, 87, "classifier");
    }
    void layerGraphMatchesKnownStructure() {
        static const LayerGraph g = layerGraph(LoadedModel::load(path("fixture_model.pt")), {48, 48});
        QCOMPARE(g.layers().size(), size_t{13});
        QFETCH(QString, name);
        const Layer* l = g.find(name.toStdString());
        QVERIFY2(l, qPrintable("no layer " + name + " in " + QString::fromStdString(g.names())));
        QFETCH(QString, kind);
        QFETCH(int, kernel);
        QFETCH(int, stride);
        QFETCH(int, padding);
        QFETCH(int, outChannels);
        QFETCH(int, feature);
        QFETCH(double, jump);
        QFETCH(double, start);
        QFETCH(double, rf);
        QFETCH(QString, inputs);
        QFETCH(QString, offsetSource);
        QFETCH(QString, maskSource);
        QCOMPARE(QString(kindName(l->kind)), kind);
        QCOMPARE(l->kernel, (std::array<int64_t, 2>{kernel, kernel}));
        QCOMPARE(l->stride, (std::array<int64_t, 2>{stride, stride}));
        QCOMPARE(l->padding, (std::array<int64_t, 2>{padding, padding}));
        QCOMPARE(l->dilation, (std::array<int64_t, 2>{1, 1}));
        QCOMPARE(l->out_channels, int64_t{outChannels});
        QCOMPARE(l->feature_size, (std::array<int64_t, 2>{feature, feature}));
        QCOMPARE(l->jump, (std::array<double, 2>{jump, jump}));
        QCOMPARE(l->start, (std::array<double, 2>{start, start}));
        QCOMPARE(l->rf, (std::array<double, 2>{rf, rf}));
        QCOMPARE(QString::fromStdString(joinNames(g, l->inputs)), inputs);
        QCOMPARE(QString::fromStdString(l->offset_source >= 0 ? g.layers()[l->offset_source].name : ""), offsetSource);
        QCOMPARE(QString::fromStdString(l->mask_source >= 0 ? g.layers()[l->mask_source].name : ""), maskSource);
    }

    void runTimeValuesOfDeformableLayers() {
        const LayerGraph g = layerGraph(LoadedModel::load(path("fixture_model.pt")), {48, 48});
        const Layer* v1 = g.find("layer2.conv2");
        const Layer* v2 = g.find("layer3.conv2");
        QVERIFY(v1 && v2);
        QCOMPARE(v1->offset_groups, int64_t{1});
        QCOMPARE(v1->groups, int64_t{1});
        QVERIFY(!v1->use_mask);
        QVERIFY(v2->use_mask);
        QCOMPARE(v2->op, std::string("torchvision::deform_conv2d"));
    }

    void featureSizesFollowTheInput() {
        const LayerGraph g = layerGraph(LoadedModel::load(path("fixture_model.pt")), {64, 96});
        QCOMPARE(g.find("layer3.conv2")->feature_size, (std::array<int64_t, 2>{8, 12}));
        QCOMPARE(g.find("interpolate")->feature_size, (std::array<int64_t, 2>{64, 96}));
    }

    void outputAndCapturedTensorsEqualPython() {
        const LoadedModel m = LoadedModel::load(path("fixture_model.pt"));
        const Capture c = captureForward(m, pythonTensor("input"));
        QVERIFY(maxAbsDiff(c.output, pythonTensor("output")) < 1e-5);
        const LayerTensors& l2 = c.tensors[static_cast<size_t>(c.graph.find("layer2.conv2")->index)];
        QVERIFY(maxAbsDiff(l2.input, pythonTensor("layer2_input")) < 1e-5);
        QVERIFY(maxAbsDiff(l2.offset, pythonTensor("layer2_offset")) < 1e-5);
        QVERIFY(!l2.mask.defined()); // DCNv1: no mask captured
        const LayerTensors& l3 = c.tensors[static_cast<size_t>(c.graph.find("layer3.conv2")->index)];
        QVERIFY(maxAbsDiff(l3.input, pythonTensor("layer3_input")) < 1e-5);
        QVERIFY(maxAbsDiff(l3.offset, pythonTensor("layer3_offset")) < 1e-5);
        QVERIFY(maxAbsDiff(l3.mask, pythonTensor("layer3_mask")) < 1e-5);
        QVERIFY(maxAbsDiff(l3.output, pythonTensor("layer3_output")) < 1e-5);
        // The offsets are not trivially zero, so the comparison means something.
        QVERIFY(pythonTensor("layer3_offset").abs().max().item<double>() > 0.1);
    }

    void badModelsGiveClearErrors_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("expected");
        QTest::newRow("missing file") << "does_not_exist.pt" << "does_not_exist.pt: no such file";
        QTest::newRow("not TorchScript") << "not_a_model.pt" << "not_a_model.pt: not a TorchScript model";
        QTest::newRow("state_dict") << "state_dict.pt" << "state_dict.pt: a PyTorch archive but not a TorchScript model";
        QTest::newRow("truncated archive") << "truncated.pt" << "truncated.pt: the model archive is truncated or corrupt";
        QTest::newRow("unregistered operator") << "mmcv_op.pt"
                                               << "uses the operator mmcv::modulated_deform_conv2d, which no loaded library provides";
        QTest::newRow("inputs declared wrongly") << "three_declared.pt"
                                                 << "forward takes 2 inputs (x, y) but its deformscope.json declares 3 inputs";
        QTest::newRow("a directory") << "" << "is a directory, not a model file";
    }
    void badModelsGiveClearErrors() {
        QFETCH(QString, file);
        QFETCH(QString, expected);
        const std::string message = messageOf([&] { LoadedModel::load(fixture(file.toUtf8().constData()).toStdString()); });
        QVERIFY2(message.find(expected.toStdString()) != std::string::npos, message.c_str());
    }

    // forward(x, y): two input frames, named after forward's arguments, fed side by side.
    void severalInputsAreFrames() {
        const LoadedModel m = LoadedModel::load(path("two_inputs.pt"));
        QCOMPARE(m.inputCount(), int64_t{2});
        QCOMPARE(m.inputNames(), (std::vector<std::string>{"x", "y"}));
        QVERIFY(m.inputForm() == LoadedModel::InputForm::Arguments);
        const Capture c = captureForward(m, at::zeros({1, 3, 16, 32}));
        QCOMPARE(c.graph.inputSize(), (std::array<int64_t, 2>{16, 16}));
        QCOMPARE(c.graph.inputNames(), (std::vector<std::string>{"x", "y"}));
        const std::string odd = messageOf([&] { captureForward(m, at::zeros({1, 3, 16, 31})); });
        QVERIFY2(odd.find("must lie side by side") != std::string::npos, odd.c_str());
    }

    void tupleAndDictOutputsUseTheFirstTensor_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("note");
        QTest::newRow("tuple") << "tuple_output.pt" << "forward returned a tuple; using its first tensor, output[0] [1, 4, 16, 16]";
        QTest::newRow("dict") << "dict_output.pt" << "forward returned a dict; using its first tensor, output[\"out\"] [1, 4, 16, 16]";
    }
    void tupleAndDictOutputsUseTheFirstTensor() {
        QFETCH(QString, file);
        QFETCH(QString, note);
        const Capture c = captureForward(LoadedModel::load(fixture(file.toUtf8().constData()).toStdString()),
                                         at::zeros({1, 3, 16, 16}));
        QCOMPARE(c.output.sizes().vec(), (std::vector<int64_t>{1, 4, 16, 16}));
        QCOMPARE(c.notes.size(), size_t{1});
        QCOMPARE(QString::fromStdString(c.notes[0]), note);
    }

    void inputSmallerThanTotalStrideIsRefused() {
        const LoadedModel m = LoadedModel::load(path("fixture_model.pt"));
        const std::string message = messageOf([&] { captureForward(m, at::zeros({1, 3, 6, 6})); });
        QVERIFY2(message.find("the input (6 x 6) is smaller than the network's total stride (8)") != std::string::npos,
                 message.c_str());
        QVERIFY(messageOf([&] { captureForward(m, at::zeros({1, 3, 8, 8})); }) == "(no ModelError)");
    }

    void badMetadataIsReported_data() {
        QTest::addColumn<QString>("json");
        QTest::addColumn<QString>("expected");
        QTest::newRow("not JSON") << "{input_size" << "line 1";
        QTest::newRow("negative size") << R"({"input_size": [0, 4]})" << "'input_size' must be [height, width]";
        QTest::newRow("short mean") << R"({"mean": [0.5, 0.5]})" << "'mean' must be an array of 3 numbers";
        QTest::newRow("zero std") << R"({"std": [1, 0, 1]})" << "'std' values must be positive";
        QTest::newRow("colour order") << R"({"color_order": "RGBA"})" << "'color_order' must be \"RGB\" or \"BGR\"";
    }
    void badMetadataIsReported() {
        QFETCH(QString, json);
        QFETCH(QString, expected);
        std::string message;
        try {
            ModelMetadata::parse(json.toStdString());
        } catch (const std::exception& e) {
            message = e.what();
        }
        QVERIFY2(message.find(expected.toStdString()) != std::string::npos, message.c_str());
    }

    // The shipped sample models (sample_models/MODELS.md): three variants that differ only
    // in block1..3. Expected geometry worked out by hand for a 128 x 128 input.
    void sampleModelLayerTables_data() {
        QTest::addColumn<QString>("variant");
        QTest::addColumn<QString>("blockKind");
        QTest::newRow("regular") << "regular" << "conv";
        QTest::newRow("dcn_v1") << "dcn_v1" << "dcn_v1";
        QTest::newRow("dcn_v2") << "dcn_v2" << "dcn_v2";
    }
    void sampleModelLayerTables() {
        QFETCH(QString, variant);
        QFETCH(QString, blockKind);
        const std::string file = std::string(DEFORMSCOPE_SOURCE_DIR) + "/sample_models/" + variant.toStdString() + ".pt";
        const LoadedModel m = LoadedModel::load(file);
        QVERIFY(m.metadata().fromFile);
        QCOMPARE(*m.metadata().inputSize, (std::array<int64_t, 2>{128, 128}));
        QCOMPARE(m.metadata().suggestedLayer, std::string("block3"));
        const LayerGraph g = layerGraph(m, {128, 128});
        const bool deformable = blockKind != "conv";
        // name, kind, stride, feature size, jump, rf (kernel 3, padding 1 except head)
        struct Row { std::string name, kind; int64_t stride, feature; double jump, rf; };
        std::vector<Row> rows = {{"stem", "conv", 1, 128, 1, 3},   {"down1", "conv", 2, 64, 2, 5},
                                 {"conv2", "conv", 1, 64, 2, 9},   {"down2", "conv", 2, 32, 4, 13},
                                 {"conv3", "conv", 1, 32, 4, 21},  {"down3", "conv", 2, 16, 8, 29}};
        for (int b = 1; b <= 3; ++b) {
            const std::string block = "block" + std::to_string(b);
            if (deformable) // the offset conv runs first, on the same input, and sees as far
                rows.push_back({block + ".offset", "conv", 1, 16, 8, 29 + 16.0 * b});
            rows.push_back({block, blockKind.toStdString(), 1, 16, 8, 29 + 16.0 * b});
        }
        rows.push_back({"head", "conv", 1, 16, 8, 77});
        QCOMPARE(g.layers().size(), rows.size() + 1); // + the final upsample
        for (size_t i = 0; i < rows.size(); ++i) {
            const Layer& l = g.layers()[i];
            QCOMPARE(l.name, rows[i].name);
            QCOMPARE(std::string(kindName(l.kind)), rows[i].kind);
            QCOMPARE(l.stride[0], rows[i].stride);
            QCOMPARE(l.feature_size[0], rows[i].feature);
            QCOMPARE(l.jump[0], rows[i].jump);
            QCOMPARE(l.rf[0], rows[i].rf);
            QCOMPARE(l.start[0], 0.0);
            if (l.deformable()) {
                QCOMPARE(g.layers()[l.offset_source].name, l.name + ".offset");
                QCOMPARE(l.use_mask, blockKind == "dcn_v2");
                if (l.use_mask)
                    QCOMPARE(g.layers()[l.mask_source].name, l.name + ".offset");
            }
        }
        const Layer& up = g.layers().back();
        QCOMPARE(std::string(kindName(up.kind)), std::string("upsample"));
        QCOMPARE(up.feature_size, (std::array<int64_t, 2>{128, 128}));
        QCOMPARE(up.jump[0], 1.0);
        QCOMPARE(up.start[0], -3.5); // x8 bilinear: output 0 sits at input -0.4375 = image -3.5
        QCOMPARE(up.rf[0], 85.0);
    }

    // Receptive-field arithmetic on single layers fed by the image, worked out by hand.
    void receptiveFieldArithmetic_data() {
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("kernel");
        QTest::addColumn<int>("stride");
        QTest::addColumn<int>("padding");
        QTest::addColumn<int>("dilation");
        QTest::addColumn<double>("jump");
        QTest::addColumn<double>("start");
        QTest::addColumn<double>("rf");
        const int conv = int(LayerKind::Conv), transposed = int(LayerKind::ConvTranspose);
        // output i reads 2i - 1 .. 2i + 1: centre 2i
        QTest::newRow("conv k3 s2 p1") << conv << 3 << 2 << 1 << 1 << 2.0 << 0.0 << 3.0;
        // output i reads i .. i + 2: centre i + 1
        QTest::newRow("conv k3 s1 p0") << conv << 3 << 1 << 0 << 1 << 1.0 << 1.0 << 3.0;
        // output i reads i - 2, i, i + 2 (dilation 2, padding 2): centre i, extent 5
        QTest::newRow("conv k3 d2 p2") << conv << 3 << 1 << 2 << 2 << 1.0 << 0.0 << 5.0;
        // outputs 0..5 are fed by inputs centred at -0.5, 0.5, 0.5, 1.5, 1.5, 2.5: best line -0.25 + 0.5 o;
        // each output is fed by at most two neighbouring inputs: rf 2
        QTest::newRow("conv_transpose k4 s2 p1") << transposed << 4 << 2 << 1 << 1 << 0.5 << -0.25 << 2.0;
        // k3 s2 p1: odd outputs are fed by two neighbouring inputs, even ones by one; centres 0, 0.5, 1, ...
        QTest::newRow("conv_transpose k3 s2 p1") << transposed << 3 << 2 << 1 << 1 << 0.5 << 0.0 << 2.0;
    }
    void receptiveFieldArithmetic() {
        QFETCH(int, kind);
        QFETCH(int, kernel);
        QFETCH(int, stride);
        QFETCH(int, padding);
        QFETCH(int, dilation);
        QFETCH(double, jump);
        QFETCH(double, start);
        QFETCH(double, rf);
        Layer l;
        l.kind = LayerKind(kind);
        l.kernel = {kernel, kernel};
        l.stride = {stride, stride};
        l.padding = {padding, padding};
        l.dilation = {dilation, dilation};
        computeReceptiveField(l, {});
        QCOMPARE(l.jump[0], jump);
        QCOMPARE(l.start[0], start);
        QCOMPARE(l.rf[1], rf);
    }

    void metadataParsesEveryField() {
        const ModelMetadata m = ModelMetadata::parse(
            R"({"input_size": [128, 96], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "color_order": "BGR",
                "class_names": ["bg", "cat"], "suggested_layer": "block3", "task": "segmentation", "extra": 1})");
        QVERIFY(m.fromFile);
        QCOMPARE(*m.inputSize, (std::array<int64_t, 2>{128, 96}));
        QCOMPARE(m.mean[2], 0.3);
        QCOMPARE(m.std[1], 0.25);
        QCOMPARE(m.colorOrder, std::string("BGR"));
        QCOMPARE(m.classNames, (std::vector<std::string>{"bg", "cat"}));
        QCOMPARE(m.suggestedLayer, std::string("block3"));
    }
};

QTEST_GUILESS_MAIN(TestModel)
#include "tst_model.moc"
