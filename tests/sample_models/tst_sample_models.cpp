// The sample models: the synthetic generator, the network built as TorchScript,
// the training recipe (a tiny run inside the test), and the shipped model files.
#include "core/ops/registration.h"
#include "sample_models/recipe/analysis.h"
#include "sample_models/recipe/export.h"
#include "sample_models/recipe/network.h"
#include "sample_models/recipe/roi_head.h"
#include "core/model/capture.h"
#include "core/model/model.h"
#include "sample_models/recipe/synthetic.h"
#include "sample_models/recipe/train.h"

#ifdef DEFORMSCOPE_TEST_WITH_IMAGING
#include "core/imaging/image.h"
#endif

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QJsonArray>
#include <QtCore/QJsonDocument>
#include <QtCore/QJsonObject>
#include <QtCore/QProcess>
#include <QtCore/QTemporaryDir>
#include <QtTest/QtTest>

#include <cmath>
#include <set>
#include <sstream>

using namespace deformscope;
using samples::Variant;

namespace {

const QString kModelsDir = QStringLiteral(DEFORMSCOPE_SAMPLE_MODELS_DIR);
const QString kImagesDir = QStringLiteral(DEFORMSCOPE_SAMPLE_IMAGES_DIR);

QJsonObject readJson(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return QJsonDocument::fromJson(f.readAll()).object();
}

QJsonObject trainingReport(const QString& variant) {
    const QJsonArray variants = readJson(kModelsDir + "/training.json").value("variants").toArray();
    for (const QJsonValue& v : variants)
        if (v.toObject().value("variant").toString() == variant)
            return v.toObject();
    return {};
}

torch::jit::Module module(const torch::jit::Module& m, const char* name) {
    return m.attr(name).toModule();
}

Variant variantOf(const QString& name) {
    return samples::variantFromName(name.toStdString());
}

// One data row per variant: regular, dcn_v1, dcn_v2, dk.
void allVariants() {
    QTest::addColumn<QString>("variant");
    for (Variant v : samples::kAllVariants) {
        const std::string name = samples::variantName(v);
        QTest::newRow(name.c_str()) << QString::fromStdString(name);
    }
}

// (4 + 4√2) / 9: the mean distance of a 3×3 grid's taps from its centre, in grid steps.
const double kGridSpread = (4.0 + 4.0 * std::sqrt(2.0)) / 9.0;

} // namespace

class TestSampleModels : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() {
        ops::registerOperators();
        at::manual_seed(0);
    }

    // ---- synthetic data ------------------------------------------------------

    void generatorIsDeterministicPerSeed() {
        const auto a = samples::generateSample(42), b = samples::generateSample(42), c = samples::generateSample(43);
        QVERIFY(at::equal(a.image, b.image));
        QVERIFY(at::equal(a.mask, b.mask));
        QVERIFY(!at::equal(a.image, c.image));
        QCOMPARE(a.image.sizes().vec(), (std::vector<int64_t>{3, 128, 128}));
        QCOMPARE(a.image.scalar_type(), at::kFloat);
        QCOMPARE(a.mask.sizes().vec(), (std::vector<int64_t>{128, 128}));
        QCOMPARE(a.mask.scalar_type(), at::kLong);
        QCOMPARE(samples::classNames(), (std::vector<std::string>{"background", "disc", "square", "triangle"}));
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, samples::generateSample(1, 8));
    }

    void generatorCoversClassesAndSizes() {
        std::set<int64_t> classes, counts;
        double smallest = 1e9, largest = 0;
        int rotatedSquares = 0, axisSquares = 0;
        for (uint64_t seed = 0; seed < 300; ++seed) {
            const auto s = samples::generateSample(seed);
            QVERIFY(s.image.min().item<float>() >= 0.0f && s.image.max().item<float>() <= 1.0f);
            QVERIFY(s.mask.min().item<int64_t>() >= 0 && s.mask.max().item<int64_t>() < samples::kNumClasses);
            counts.insert(static_cast<int64_t>(s.objects.size()));
            for (const auto& o : s.objects) {
                classes.insert(o.cls);
                smallest = std::min(smallest, o.size);
                largest = std::max(largest, o.size);
                QVERIFY(o.size >= 8.0 && o.size <= 96.0);
                // Every object is visible: the smaller ones are drawn on top.
                QVERIFY2((s.mask == o.cls).any().item<bool>(), qPrintable(QString("seed %1").arg(seed)));
                if (o.cls == samples::kSquare)
                    (o.angle == 0.0 ? axisSquares : rotatedSquares) += 1;
            }
            for (int64_t k = 1; k < samples::kNumClasses; ++k) {
                bool drawn = false;
                for (const auto& o : s.objects)
                    drawn = drawn || o.cls == k;
                QVERIFY(drawn || !(s.mask == k).any().item<bool>());
            }
        }
        QCOMPARE(classes, (std::set<int64_t>{1, 2, 3}));
        QCOMPARE(counts, (std::set<int64_t>{1, 2, 3}));
        QVERIFY2(smallest < 10.0 && largest > 85.0, qPrintable(QString("sizes %1..%2").arg(smallest).arg(largest)));
        QVERIFY(rotatedSquares > 10 && axisSquares > 10);
    }

    void objectAreasMatchRequestedSizes() {
        int checked = 0;
        for (uint64_t seed = 0; seed < 400; ++seed) {
            const auto s = samples::generateSample(seed);
            if (s.objects.size() != 1 || !s.objects[0].fullyInside)
                continue;
            const auto& o = s.objects[0];
            const double pixels = (s.mask == o.cls).sum().item<double>();
            // Area up to pixelisation of the outline (about one pixel per unit of perimeter / 4).
            const double tolerance = 0.05 * o.expectedArea + o.size;
            QVERIFY2(std::abs(pixels - o.expectedArea) <= tolerance,
                     qPrintable(QString("seed %1: class %2 size %3: %4 pixels, expected %5")
                                    .arg(seed).arg(o.cls).arg(o.size).arg(pixels).arg(o.expectedArea)));
            QCOMPARE((s.mask != 0).sum().item<double>(), pixels); // nothing else drawn
            ++checked;
        }
        QVERIFY(checked > 40);
    }

    void objectSizesScaleWithImageSize() {
        for (uint64_t seed = 0; seed < 50; ++seed) {
            const auto s = samples::generateSample(seed, 64);
            QCOMPARE(s.image.sizes().vec(), (std::vector<int64_t>{3, 64, 64}));
            for (const auto& o : s.objects)
                QVERIFY(o.size >= 4.0 && o.size <= 48.0);
        }
    }

    // ---- network -----------------------------------------------------------

    void modelRunsAndGradientsReachOffsets_data() { allVariants(); }
    void modelRunsAndGradientsReachOffsets() {
        QFETCH(QString, variant);
        const Variant v = variantOf(variant);
        QCOMPARE(QString::fromStdString(samples::variantName(v)), variant);
        torch::jit::Module model = samples::buildModel(v, 7);

        std::vector<std::string> children;
        for (const auto& c : model.named_children())
            children.push_back(c.name);
        QCOMPARE(children, (std::vector<std::string>{"stem", "down1", "conv2", "down2", "conv3", "down3", "block1",
                                                     "block2", "block3", "head"}));
        for (const char* block : {"block1", "block2", "block3"}) {
            const torch::jit::Module b = module(model, block);
            QCOMPARE(b.hasattr("kernel_offset"), v == Variant::DK);
            QCOMPARE(b.hasattr("pointwise"), v == Variant::DK);
            if (v == Variant::DK) {
                // Depthwise-separable: the 5x5 scope kernel, zero kernel offsets, a 1x1 conv 64->64.
                QCOMPARE(b.attr("weight").toTensor().sizes().vec(), (std::vector<int64_t>{64, 1, 5, 5}));
                QCOMPARE(b.attr("bias").toTensor().sizes().vec(), (std::vector<int64_t>{64}));
                const at::Tensor ko = module(b, "kernel_offset").attr("weight").toTensor();
                QCOMPARE(ko.sizes().vec(), (std::vector<int64_t>{18, 64, 3, 3}));
                QVERIFY(at::equal(ko, at::zeros_like(ko)));
                QCOMPARE(module(b, "pointwise").attr("weight").toTensor().sizes().vec(),
                         (std::vector<int64_t>{64, 64, 1, 1}));
                // The scope kernel is Kaiming normal for fan-in 9, gain 1, over the whole scope.
                const double stdev = b.attr("weight").toTensor().std().item<double>();
                QVERIFY2(std::abs(stdev - 1.0 / 3.0) < 0.03, qPrintable(QString("scope std %1").arg(stdev)));
                continue;
            }
            QCOMPARE(b.attr("weight").toTensor().sizes().vec(), (std::vector<int64_t>{64, 64, 3, 3}));
            QCOMPARE(b.hasattr("offset"), v != Variant::Regular);
            if (v != Variant::Regular) {
                const at::Tensor w = module(b, "offset").attr("weight").toTensor();
                QCOMPARE(w.size(0), v == Variant::DCNv1 ? int64_t(18) : int64_t(27));
                QVERIFY(at::equal(w, at::zeros_like(w)));
            }
        }
        // The same seed gives the same shared weights in every variant.
        torch::jit::Module regular = samples::buildModel(Variant::Regular, 7);
        for (const char* name : {"stem", "down3", "block2", "head"})
            if (v != Variant::DK || std::string(name) != "block2") // DK's blocks have their own shapes
                QVERIFY(at::equal(module(model, name).attr("weight").toTensor(),
                                  module(regular, name).attr("weight").toTensor()));

        const at::Tensor x = at::randn({2, 3, 128, 128});
        const at::Tensor y = model.forward({x}).toTensor();
        QCOMPARE(y.sizes().vec(), (std::vector<int64_t>{2, 4, 128, 128}));
        // With zero offsets (and mask 0.5 for DCNv2) the deformable net is the regular
        // net, with block outputs halved for DCNv2.
        if (v == Variant::DCNv1)
            QVERIFY(at::allclose(y, regular.forward({x}).toTensor(), 1e-4, 1e-4));
        // With zero kernel offsets a DK block is a depthwise conv with the scope's centre
        // 3x3, then the pointwise conv and ReLU.
        if (v == Variant::DK) {
            at::NoGradGuard noGrad;
            torch::jit::Module b = module(model, "block2");
            const at::Tensor in = at::randn({2, 64, 16, 16});
            const at::Tensor w = b.attr("weight").toTensor().slice(2, 1, 4).slice(3, 1, 4);
            const at::Tensor dw = at::conv2d(in, w, b.attr("bias").toTensor(), 1, 1, 1, 64);
            const torch::jit::Module pw = module(b, "pointwise");
            const at::Tensor expected =
                at::relu(at::conv2d(dw, pw.attr("weight").toTensor(), pw.attr("bias").toTensor()));
            QVERIFY(at::allclose(b.forward({in}).toTensor(), expected, 1e-4, 1e-5));
        }

        (y * at::randn_like(y)).sum().backward();
        for (const auto& p : model.named_parameters()) {
            QVERIFY2(p.value.grad().defined(), p.name.c_str());
            if (samples::isOffsetParameter(p.name) && p.name.ends_with(".weight"))
                QVERIFY2(p.value.grad().abs().sum().item<double>() > 0, p.name.c_str());
        }

        // The graph calls torchvision's operator, so Python loads the file with torchvision.
        std::ostringstream code;
        code << *model.get_method("forward").graph();
        for (const auto& c : model.named_modules())
            if (c.value.find_method("forward"))
                code << *c.value.get_method("forward").graph();
        const bool dcn = v == Variant::DCNv1 || v == Variant::DCNv2;
        QCOMPARE(code.str().find("torchvision::deform_conv2d") != std::string::npos, dcn);
        QCOMPARE(code.str().find("deformscope::deform_kernel2d") != std::string::npos, v == Variant::DK);
        // Offset parameters (reduced learning rate, no weight decay) are exactly the offset convs'.
        for (const auto& p : model.named_parameters())
            QCOMPARE(samples::isOffsetParameter(p.name), p.name.find("offset.") != std::string::npos);
    }

    void samplingSpreadOfUntrainedBlocksIsTheGrid() {
        // Zero offsets, mask 1 (regular, DCNv1) or a uniform 0.5 (DCNv2): the 3x3 grid at
        // stride 8, whose taps lie 8 * (4 * 1 + 4 * sqrt(2)) / 9 px from the centre on average.
        const double grid = 8.0 * kGridSpread;
        for (Variant v : samples::kAllVariants) {
            const auto spread = samples::samplingSpread(samples::buildModel(v, 5), 3);
            QCOMPARE(spread.size(), size_t(3));
            for (const auto& s : spread) {
                QCOMPARE(s.positionsBackground + s.positionsSmall + s.positionsMedium + s.positionsLarge,
                         int64_t(3 * 16 * 16));
                QVERIFY(s.positionsBackground > 0);
                for (double d : {s.background, s.small, s.medium, s.large})
                    QVERIFY2(d == 0.0 || std::abs(d - grid) < 1e-4,
                             qPrintable(QString("%1 %2: spread %3 px, the grid's %4 px (mean |offset| %5, mean mask %6)")
                                            .arg(QString::fromStdString(samples::variantName(v)))
                                            .arg(QString::fromStdString(s.block))
                                            .arg(d, 0, 'g', 12)
                                            .arg(grid, 0, 'g', 12)
                                            .arg(s.meanAbsOffset)
                                            .arg(s.meanMask)));
                QCOMPARE(s.meanAbsOffset, 0.0);
                QVERIFY(std::abs(s.meanMask - (v == Variant::DCNv2 ? 0.5 : 1.0)) < 1e-6);
                // DK: zero kernel offsets, every tap on the scope's centre 3x3.
                QCOMPARE(s.deformableKernel, v == Variant::DK);
                QCOMPARE(s.meanAbsKernelOffset, 0.0);
                if (v == Variant::DK)
                    for (double d : {s.kernelBackground, s.kernelSmall, s.kernelMedium, s.kernelLarge})
                        QVERIFY(d == 0.0 || std::abs(d - kGridSpread) < 1e-5);
            }
        }
    }

    void savedModelCarriesMetadata_data() {
        QTest::addColumn<QString>("variant");
        QTest::newRow("dcn_v2") << "dcn_v2";
        QTest::newRow("dk") << "dk";
    }
    void savedModelCarriesMetadata() {
        QFETCH(QString, variant);
        const Variant v = variantOf(variant);
        torch::jit::Module model = samples::buildModel(v, 3);
        if (v == Variant::DK) { // non-zero kernel offsets, so the saved file must reproduce them
            at::NoGradGuard noGrad;
            module(module(model, "block3"), "kernel_offset").attr("weight").toTensor().normal_(0.0, 0.05);
        }
        model.eval();
        QTemporaryDir dir;
        const std::string path = (dir.path() + "/m.pt").toStdString();
        samples::saveModel(model, path, samples::modelMetadataJson(v));
        QVERIFY(!QFile::exists(dir.path() + "/m.pt.tmp"));
        torch::jit::ExtraFilesMap extra{{samples::kMetadataFile, ""}};
        torch::jit::Module loaded = torch::jit::load(path, c10::nullopt, extra);
        const QJsonObject meta = QJsonDocument::fromJson(QByteArray::fromStdString(extra[samples::kMetadataFile])).object();
        QCOMPARE(meta.value("variant").toString(), variant);
        QCOMPARE(meta.value("suggested_layer").toString(), QString("block3"));
        at::NoGradGuard noGrad;
        const at::Tensor x = at::randn({1, 3, 64, 64});
        QVERIFY(at::allclose(loaded.forward({x}).toTensor(), model.forward({x}).toTensor()));
    }

    // ---- training recipe ---------------------------------------------------

    void shortTrainingLowersLoss_data() { allVariants(); }
    void shortTrainingLowersLoss() {
        QFETCH(QString, variant);
        torch::jit::Module model = samples::buildModel(variantOf(variant), 1);
        samples::TrainConfig c;
        c.steps = 30;
        c.batch = 4;
        c.size = 64;
        c.lr = 3e-3;
        c.evalImages = 8;
        int64_t calls = 0;
        const auto report = samples::train(model, c, [&](int64_t step, double) { QCOMPARE(step, ++calls); });
        QCOMPARE(calls, int64_t(30));
        QCOMPARE(report.losses.size(), size_t(30));
        double first = 0, last = 0;
        for (int i = 0; i < 5; ++i) {
            first += report.losses[i] / 5;
            last += report.losses[report.losses.size() - 1 - i] / 5;
        }
        QVERIFY2(last < first, qPrintable(QString("loss %1 -> %2").arg(first).arg(last)));
        QVERIFY(report.heldOutPixelAccuracy > 0.0 && report.heldOutPixelAccuracy <= 1.0);
        QVERIFY(report.seconds > 0.0);
        // The offsets move away from zero.
        if (variant != "regular") {
            const char* conv = variant == "dk" ? "kernel_offset" : "offset";
            const at::Tensor w = module(module(model, "block3"), conv).attr("weight").toTensor();
            QVERIFY(w.abs().max().item<double>() > 0.0);
        }
    }

    void trainRejectsBadConfig() {
        torch::jit::Module model = samples::buildModel(Variant::Regular, 1);
        samples::TrainConfig c;
        c.steps = 0;
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, samples::train(model, c));
        c.steps = 1;
        c.size = 60;
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, samples::train(model, c));
    }

    void cliTrainSamplesTinyRun() {
        QTemporaryDir dir;
        QProcess p;
        p.start(QStringLiteral(DEFORMSCOPE_CLI), {"train-samples", "--out", dir.path(), "--variants", "dcn_v1,dk",
                                                  "--steps", "4", "--batch", "2", "--size", "32", "--images", "2",
                                                  "--eval-images", "4"});
        QVERIFY(p.waitForFinished(120000));
        const QString out = QString::fromUtf8(p.readAllStandardOutput());
        QVERIFY2(p.exitCode() == 0, qPrintable(out + QString::fromUtf8(p.readAllStandardError())));
        QVERIFY(out.contains("| dcn_v1 |"));
        QVERIFY(out.contains("| dk |"));
        QVERIFY(QFile::exists(dir.path() + "/dcn_v1.pt"));
        QVERIFY(QFile::exists(dir.path() + "/dk.pt"));
        const QJsonObject report = readJson(dir.path() + "/training.json");
        QCOMPARE(report.value("settings").toObject().value("steps").toInt(), 4);
        const QJsonArray variants = report.value("variants").toArray();
        QCOMPARE(variants.size(), 2);
        QCOMPARE(variants[1].toObject().value("variant").toString(), QString("dk"));
        QCOMPARE(variants[1].toObject().value("file").toString(), QString("dk.pt"));
        // DK blocks report where their taps read the scope kernel; the DCN blocks do not.
        const QJsonObject dkBlock = variants[1].toObject().value("sampling_spread").toArray()[2].toObject();
        QCOMPARE(dkBlock.value("kernel_reach_cells").toArray().size(), 4);
        QVERIFY(dkBlock.contains("mean_abs_kernel_offset_cells"));
        QCOMPARE(dkBlock.value("mean_abs_offset_px").toDouble(), 0.0);
        QVERIFY(!variants[0].toObject().value("sampling_spread").toArray()[2].toObject().contains("kernel_reach_cells"));
        if (samples::canWriteImages()) {
            QVERIFY(QFile::exists(dir.path() + "/images/sample_02.png"));
            QVERIFY(QFile::exists(dir.path() + "/images/sample_02_mask.png"));
        }
        for (const char* file : {"/dcn_v1.pt", "/dk.pt"}) {
            torch::jit::Module loaded = torch::jit::load((dir.path() + file).toStdString());
            QCOMPARE(loaded.forward({at::zeros({1, 3, 32, 32})}).toTensor().size(1), int64_t(4));
        }
    }

    void cliTrainSamplesBadUsage_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("no out") << QStringList{"train-samples"} << "--out DIR is required";
        QTest::newRow("bad variant") << QStringList{"train-samples", "--out", "x", "--variants", "dcn_v3"}
                                     << "unknown variant 'dcn_v3'";
        QTest::newRow("bad steps") << QStringList{"train-samples", "--out", "x", "--steps", "-3"}
                                   << "--steps must be a positive integer";
        QTest::newRow("bad size") << QStringList{"train-samples", "--out", "x", "--size", "100"}
                                  << "--size must be a multiple of 8";
        QTest::newRow("missing value") << QStringList{"train-samples", "--out"} << "needs a value";
        QTest::newRow("unknown option") << QStringList{"train-samples", "--fast"} << "unexpected argument '--fast'";
    }
    void cliTrainSamplesBadUsage() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        QProcess p;
        p.start(QStringLiteral(DEFORMSCOPE_CLI), args);
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 2);
        const QString err = QString::fromUtf8(p.readAllStandardError());
        QVERIFY2(err.contains(message), qPrintable(err));
    }

    // ---- the shipped models --------------------------------------------------

    void shippedModelsLoadAndPerform_data() { allVariants(); }
    void shippedModelsLoadAndPerform() {
        QFETCH(QString, variant);
        const QString path = kModelsDir + "/" + variant + ".pt";
        QVERIFY2(QFile::exists(path), qPrintable(path));
        QVERIFY(QFileInfo(path).size() < 5 * 1024 * 1024);

        torch::jit::ExtraFilesMap extra{{samples::kMetadataFile, ""}};
        torch::jit::Module model = torch::jit::load(path.toStdString(), c10::nullopt, extra);
        model.eval();
        const QJsonObject meta = QJsonDocument::fromJson(QByteArray::fromStdString(extra[samples::kMetadataFile])).object();
        QCOMPARE(meta.value("format").toString(), QString("deformscope-model/1"));
        QCOMPARE(meta.value("task").toString(), QString("segmentation"));
        QCOMPARE(meta.value("variant").toString(), variant);
        QCOMPARE(meta.value("suggested_layer").toString(), QString("block3"));
        QCOMPARE(meta.value("color_order").toString(), QString("RGB"));
        QCOMPARE(meta.value("input_size").toArray(), (QJsonArray{128, 128}));
        QCOMPARE(meta.value("class_names").toArray(), (QJsonArray{"background", "disc", "square", "triangle"}));
        for (int c = 0; c < 3; ++c) {
            QCOMPARE(meta.value("mean").toArray().at(c).toDouble(), samples::kMean[c]);
            QCOMPARE(meta.value("std").toArray().at(c).toDouble(), samples::kStd[c]);
        }
        QVERIFY(!meta.value("description").toString().isEmpty());

        // Held-out accuracy close to what training.json and MODELS.md report.
        const QJsonObject reported = trainingReport(variant);
        QCOMPARE(reported.value("file").toString(), variant + ".pt");
        const double reportedAccuracy = reported.value("held_out_pixel_accuracy").toDouble();
        QVERIFY2(reportedAccuracy > 0.5, "training.json reports no accuracy for this variant");
        // The file's own training record is the one training.json reports, with the shipped recipe.
        const QJsonObject training = meta.value("training").toObject();
        QCOMPARE(training.value("held_out_pixel_accuracy").toDouble(), reportedAccuracy);
        QCOMPARE(training.value("held_out_mean_iou").toDouble(), reported.value("held_out_mean_iou").toDouble());
        const QJsonObject settings = readJson(kModelsDir + "/training.json").value("settings").toObject();
        for (const char* key : {"steps", "batch", "seed", "held_out_images"})
            QCOMPARE(training.value(key).toInt(), settings.value(key).toInt());
        QFile card(kModelsDir + "/MODELS.md");
        QVERIFY(card.open(QIODevice::ReadOnly));
        const QString cardText = QString::fromUtf8(card.readAll());
        QVERIFY2(cardText.contains(QString::number(reportedAccuracy, 'f', 4)),
                 "MODELS.md does not state the accuracy training.json reports");
        QVERIFY2(cardText.contains("`" + variant + ".pt`"), "MODELS.md does not list the file");
        const auto measured = samples::evaluate(model, 16);
        QVERIFY2(measured.pixelAccuracy >= reportedAccuracy - 0.05,
                 qPrintable(QString("measured %1, reported %2").arg(measured.pixelAccuracy).arg(reportedAccuracy)));

#ifdef DEFORMSCOPE_TEST_WITH_IMAGING
        // A shipped sample image, through the app's own loading path.
        imaging::Normalization norm;
        norm.mean = samples::kMean;
        norm.std = samples::kStd;
        const auto input = imaging::loadImage((kImagesDir + "/sample_01.png").toStdString(), imaging::InputSize{128, 128}, norm);
        const at::Tensor truth = imaging::readMask((kImagesDir + "/sample_01_mask.png").toStdString());
        at::NoGradGuard noGrad;
        const at::Tensor logits = model.forward({input.tensor}).toTensor();
        QCOMPARE(logits.sizes().vec(), (std::vector<int64_t>{1, 4, 128, 128}));
        const double accuracy = (logits.argmax(1)[0] == truth).to(at::kDouble).mean().item<double>();
        QVERIFY2(accuracy > 0.75, qPrintable(QString("accuracy on sample_01: %1").arg(accuracy)));
#else
        QSKIP("built without core_imaging: the sample image part is not checked");
#endif
    }

    void shippedRoiModelsLoadAndPerform_data() {
        QTest::addColumn<int>("variant");
        QTest::newRow("roi_regular") << int(Variant::Regular);
        QTest::newRow("roi_dcn_v1") << int(Variant::DCNv1);
        QTest::newRow("roi_dcn_v2") << int(Variant::DCNv2);
    }
    void shippedRoiModelsLoadAndPerform() {
        QFETCH(int, variant);
        const Variant v = Variant(variant);
        const QString name = QString::fromStdString(samples::roiModelName(v));
        const QString path = kModelsDir + "/" + name + ".pt";
        QVERIFY2(QFile::exists(path), qPrintable(path));
        QVERIFY(QFileInfo(path).size() < 5 * 1024 * 1024);
        // The app reads it as a RoI head: forward(image, rois), a RoI pooling layer `pool`.
        const auto loaded = deformscope::model::LoadedModel::load(path.toStdString());
        QCOMPARE(QString::fromStdString(loaded.roiInput()), QStringLiteral("rois"));
        QCOMPARE(loaded.inputCount(), int64_t{1});
        const auto graph = deformscope::model::layerGraph(loaded, {128, 128});
        const auto* pool = graph.find("pool");
        QVERIFY(pool);
        QCOMPARE(pool->kind, v == Variant::Regular ? deformscope::model::LayerKind::RoiPool
                                                   : deformscope::model::LayerKind::DeformRoiPool);
        QCOMPARE(pool->use_mask, v == Variant::DCNv2);
        QCOMPARE(pool->feature_size, (std::array<int64_t, 2>{samples::kRoiBins, samples::kRoiBins}));
        QCOMPARE(QString::fromStdString(loaded.metadata().suggestedLayer), QStringLiteral("pool"));
        // Its record agrees with roi_training.json and MODELS.md, and the accuracy holds.
        torch::jit::ExtraFilesMap extra{{samples::kMetadataFile, ""}};
        torch::jit::Module model = torch::jit::load(path.toStdString(), c10::nullopt, extra);
        const QJsonObject meta = QJsonDocument::fromJson(QByteArray::fromStdString(extra[samples::kMetadataFile])).object();
        QCOMPARE(meta.value("task").toString(), QStringLiteral("roi classification"));
        QCOMPARE(meta.value("class_names").toArray(), (QJsonArray{"disc", "square", "triangle"}));
        QJsonObject reported;
        for (const QJsonValue& m : readJson(kModelsDir + "/roi_training.json").value("models").toArray())
            if (m.toObject().value("name").toString() == name)
                reported = m.toObject();
        const double accuracy = reported.value("held_out_box_accuracy").toDouble();
        QVERIFY2(accuracy > 0.6, "roi_training.json reports no accuracy for this model");
        QCOMPARE(meta.value("training").toObject().value("held_out_box_accuracy").toDouble(), accuracy);
        QFile card(kModelsDir + "/MODELS.md");
        QVERIFY(card.open(QIODevice::ReadOnly));
        const QString cardText = QString::fromUtf8(card.readAll());
        QVERIFY2(cardText.contains(QString::number(accuracy, 'f', 4)), "MODELS.md does not state the box accuracy");
        QVERIFY2(cardText.contains("`" + name + ".pt`"), "MODELS.md does not list the file");
        int64_t boxes = 0;
        const double measured = samples::evaluateRoiModel(model, 40, 128, &boxes);
        QVERIFY2(boxes > 40 && measured >= accuracy - 0.12,
                 qPrintable(QString("measured %1 on %2 boxes, reported %3").arg(measured).arg(boxes).arg(accuracy)));
    }

    void shippedModelSetIsComplete() {
        // Every variant has its file and its training.json entry, and nothing else is shipped
        // (align.pt, the alignment sample, is tested in tst_align_sample).
        QStringList expected, reported;
        for (Variant v : samples::kAllVariants)
            expected << QString::fromStdString(samples::variantName(v)) + ".pt";
        expected << QString::fromStdString(samples::variantName(Variant::Align)) + ".pt";
        // The RoI heads (DCNv2's Fig. 2), listed in roi_training.json.
        for (Variant v : {Variant::Regular, Variant::DCNv1, Variant::DCNv2})
            expected << QString::fromStdString(samples::roiModelName(v)) + ".pt";
        for (const QJsonValue& v : readJson(kModelsDir + "/training.json").value("variants").toArray())
            reported << v.toObject().value("file").toString();
        for (const QJsonValue& v : readJson(kModelsDir + "/roi_training.json").value("models").toArray())
            reported << v.toObject().value("file").toString();
        QStringList files = QDir(kModelsDir).entryList({"*.pt"}, QDir::Files, QDir::Name);
        expected.sort();
        reported.sort();
        QCOMPARE(files, expected);
        QCOMPARE(reported, expected);
    }

    void shippedSampleImagesMatchGenerator() {
#ifdef DEFORMSCOPE_TEST_WITH_IMAGING
        const QJsonArray list = readJson(kImagesDir + "/samples.json").value("images").toArray();
        QVERIFY(list.size() >= 4);
        for (const QJsonValue& v : list) {
            const QJsonObject o = v.toObject();
            const auto sample = samples::generateSample(static_cast<uint64_t>(o.value("seed").toDouble()));
            const QString image = kImagesDir + "/" + o.value("image").toString();
            const QString mask = kImagesDir + "/" + o.value("mask").toString();
            const at::Tensor rgb = imaging::loadImage(image.toStdString()).rgb;
            const at::Tensor expected = (sample.image * 255.0).round().to(at::kByte).permute({1, 2, 0});
            QVERIFY2(at::equal(rgb, expected), qPrintable(image));
            QVERIFY2(at::equal(imaging::readMask(mask.toStdString()), sample.mask), qPrintable(mask));
        }
#else
        QSKIP("built without core_imaging");
#endif
    }

    void shippedDeformableLayersLearnedOffsets_data() {
        QTest::addColumn<QString>("variant");
        QTest::newRow("dcn_v1") << "dcn_v1";
        QTest::newRow("dcn_v2") << "dcn_v2";
        QTest::newRow("dk") << "dk";
    }
    void shippedDeformableLayersLearnedOffsets() {
        QFETCH(QString, variant);
        torch::jit::Module model = torch::jit::load((kModelsDir + "/" + variant + ".pt").toStdString());
        model.eval();
        at::NoGradGuard noGrad;
        at::Tensor x, truth;
        samples::makeBatch({samples::kHeldOutSeedBase, samples::kHeldOutSeedBase + 1}, 128, x, truth);
        const auto outputs = samples::offsetConvOutputs(model, x);
        QCOMPARE(outputs.size(), size_t(3));
        for (size_t i = 0; i < outputs.size(); ++i) {
            const at::Tensor offsets = outputs[i].slice(1, 0, 18);
            // Mean |Δp| in feature-map pixels (8 image pixels each); for DK, mean |Δk| in scope cells.
            const double mean = offsets.abs().mean().item<double>();
            QVERIFY2(mean > 0.05, qPrintable(QString("block%1: mean |offset| %2").arg(i + 1).arg(mean)));
            if (variant == "dcn_v2") {
                const at::Tensor mask = at::sigmoid(outputs[i].slice(1, 18, 27));
                QVERIFY2(mask.std().item<double>() > 0.02, qPrintable(QString("block%1: mask is flat").arg(i + 1)));
            }
        }
    }
};

QTEST_GUILESS_MAIN(TestSampleModels)
#include "tst_sample_models.moc"
