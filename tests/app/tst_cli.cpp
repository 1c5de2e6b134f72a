// Tests of deformscope-cli as a user runs it: exit codes and what it prints.
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "tests/support/cli_run.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>

#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QFileInfo>
#include <QtCore/QProcess>
#include <QtCore/QTemporaryDir>
#include <QtTest/QtTest>

namespace {

using Run = deformscope::test::CliRun;
using deformscope::test::cli;

QString fixture(const char* name) {
    return QDir(QStringLiteral(DEFORMSCOPE_MODEL_FIXTURE_DIR)).filePath(QString::fromUtf8(name));
}

using deformscope::common::Json;

QString sample(const char* name) {
    return QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/sample_models/" + QString::fromUtf8(name);
}
QString sampleImage(const char* name) {
    return QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples/" + QString::fromUtf8(name);
}
std::string readAll(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll().toStdString();
}

} // namespace

class TestCli : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void selftestPassesAndPrintsTable() {
        const Run r = cli({"selftest", "--device", "cpu"});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("PASS   cpu"));
        QVERIFY(!r.out.contains("FAIL"));
        QVERIFY(r.out.contains(QRegularExpression("\\n\\d+ passed, 0 failed\\n")));
        QVERIFY(r.out.contains("finite differences"));
        QVERIFY(r.out.contains("zero offsets, unit mask == conv2d"));
    }

    void benchPrintsTimesForNamedShapes() {
        const Run r = cli({"bench", "--shapes", "tiny", "--repeat", "1"});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains(QRegularExpression("\\| tiny \\| 2,8,8,16x16,3x3 \\| fwd \\| [0-9.]+ \\| [0-9.]+ \\|")));
        QVERIFY(r.out.contains("| fwd+bwd |"));
    }

    void infoPrintsTheLayerTable() {
        const Run r = cli({"info", fixture("fixture_model.pt")});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("13 conv-like layers for a 48 x 48 input (from the model's metadata)"));
        QVERIFY(r.out.contains(QRegularExpression("layer3\\.conv2 +dcn_v2 +3 +1 +1 +1 +1 +16>16 +6x6 +8 +0 +79")));
        QVERIFY(r.out.contains("offsets<-layer3.offset_mask  mask<-layer3.offset_mask"));
    }

    void infoJsonHasTheDocumentedFields() {
        const Run r = cli({"info", fixture("fixture_model.pt"), "--json", "--input-size", "64", "96"});
        QCOMPARE(r.exitCode, 0);
        const Json j = Json::parse(r.out.toStdString());
        QCOMPARE(j.at("input_size").at(1).get<int64_t>(), int64_t{96});
        const Json& layers = j.at("layers");
        QCOMPARE(layers.size(), size_t{13});
        for (size_t i = 0; i < layers.size(); ++i)
            for (const char* key : {"name", "kind", "kernel", "stride", "padding", "dilation", "groups", "offset_groups",
                                    "feature_size", "jump", "start", "rf", "inputs"})
                QVERIFY2(layers.at(i).contains(key), key);
        const Json& v1 = layers.at(6);
        QCOMPARE(v1.at("name").get<std::string>(), std::string("layer2.conv2"));
        QCOMPARE(v1.at("kind").get<std::string>(), std::string("dcn_v1"));
        QCOMPARE(v1.at("feature_size").at(0).get<int64_t>(), int64_t{8});
        QCOMPARE(v1.at("feature_size").at(1).get<int64_t>(), int64_t{12});
        QCOMPARE(v1.at("offset_source").get<std::string>(), std::string("layer2.offset"));
        QCOMPARE(j.at("metadata").at("suggested_layer").get<std::string>(), std::string("layer3.conv2"));
    }

    void captureWritesNpyFiles() {
        QTemporaryDir dir;
        const Run r = cli({"capture", "--model", fixture("fixture_model.pt"), "--image", fixture("fixture_image.png"),
                           "--layer", "layer3.conv2", "--out", dir.path()});
        QCOMPARE(r.exitCode, 0);
        QVERIFY2(r.out.contains("captured layer3.conv2 (dcn_v2)"), qPrintable(r.out + r.err));
        auto npy = [&](const char* name) { return deformscope::common::readNpy(dir.filePath(name).toStdString()); };
        // The image is resized to the metadata's 48 x 48: layer3 runs at 6 x 6.
        QCOMPARE(npy("input.npy").sizes().vec(), (std::vector<int64_t>{1, 16, 6, 6}));
        QCOMPARE(npy("output.npy").sizes().vec(), (std::vector<int64_t>{1, 16, 6, 6}));
        QCOMPARE(npy("offset.npy").sizes().vec(), (std::vector<int64_t>{1, 18, 6, 6}));
        const at::Tensor mask = npy("mask.npy");
        QCOMPARE(mask.sizes().vec(), (std::vector<int64_t>{1, 9, 6, 6}));
        QVERIFY(mask.min().item<double>() >= 0 && mask.max().item<double>() <= 1); // a sigmoid
        QFile f(dir.filePath("capture.json"));
        QVERIFY(f.open(QIODevice::ReadOnly));
        const Json doc = Json::parse(f.readAll().toStdString());
        QCOMPARE(doc.at("layer").at("kind").get<std::string>(), std::string("dcn_v2"));
        QCOMPARE(doc.at("files").size(), size_t{4});
    }

    void captureOfDcnV1HasNoMask() {
        QTemporaryDir dir;
        const Run r = cli({"capture", "--model", fixture("fixture_model.pt"), "--image", fixture("fixture_image.png"),
                           "--layer", "layer2.conv2", "--out", dir.path()});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("is DCNv1: it has no mask"));
        QVERIFY(QFile::exists(dir.filePath("offset.npy")));
        QVERIFY(!QFile::exists(dir.filePath("mask.npy")));
    }

    void badUsageExitsWithTwo_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("no command") << QStringList{} << "usage: deformscope-cli";
        QTest::newRow("unknown command") << QStringList{"frobnicate"} << "unknown command 'frobnicate'";
        QTest::newRow("selftest bad device") << QStringList{"selftest", "--device", "tpu"} << "--device must be cpu, cuda or all";
        QTest::newRow("bench unknown shape") << QStringList{"bench", "--shapes", "huge"} << "unknown shape 'huge'";
        QTest::newRow("bench bad repeat") << QStringList{"bench", "--repeat", "zero"} << "--repeat must be a positive integer";
        QTest::newRow("bench unknown option") << QStringList{"bench", "--fast"} << "unexpected argument '--fast'";
        QTest::newRow("info without model") << QStringList{"info"} << "give exactly one MODEL file";
        QTest::newRow("info missing model") << QStringList{"info", "/nonexistent/m.pt"} << "/nonexistent/m.pt: no such file";
        QTest::newRow("info bad size") << QStringList{"info", fixture("fixture_model.pt"), "--input-size", "0", "4"}
                                       << "--input-size needs two positive integers";
        QTest::newRow("info too small") << QStringList{"info", fixture("fixture_model.pt"), "--input-size", "4", "4"}
                                        << "smaller than the network's total stride (8)";
        QTest::newRow("info unknown device") << QStringList{"info", fixture("fixture_model.pt"), "--device", "tpu"}
                                             << "info: device 'tpu' is not available (have: cpu";
        QTest::newRow("info not a model") << QStringList{"info", fixture("not_a_model.pt")} << "not a TorchScript model";
        QTest::newRow("capture missing option") << QStringList{"capture", "--model", fixture("fixture_model.pt")}
                                                << "--image is required";
        QTest::newRow("capture unknown layer")
            << QStringList{"capture", "--model", fixture("fixture_model.pt"), "--image", fixture("fixture_image.png"),
                           "--layer", "nope", "--out", QDir::tempPath() + "/ds-capture-unused"}
            << "has no layer 'nope'; its layers are: stem, pool, layer1.conv1";
        QTest::newRow("capture bad image")
            << QStringList{"capture", "--model", fixture("fixture_model.pt"), "--image", fixture("not_a_model.pt"),
                           "--layer", "stem", "--out", QDir::tempPath() + "/ds-capture-unused"}
            << "not_a_model.pt: is not an image";
    }
    void badUsageExitsWithTwo() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        const Run r = cli(args);
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains(message), qPrintable(r.err));
    }

    // ---- analyze / compare / erf-average ---------------------------------------------

    void analyzeWritesFilesThatAgreeWithResultJson() {
        QTemporaryDir dir;
        const QString out = dir.filePath("a");
        const Run r = cli({"analyze", "--model", sample("dcn_v2.pt"), "--image", sampleImage("sample_01.png"),
                           "--pixel", "58,46", "--min-cell", "8", "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json doc = Json::parse(readAll(out + "/result.json"));
        QCOMPARE(doc.at("node").at("layer").get<std::string>(), std::string("block3"));
        QCOMPARE(doc.at("node").at("fx").get<int64_t>(), int64_t{7});
        QCOMPARE(doc.at("node").at("fy").get<int64_t>(), int64_t{6});
        const int64_t H = doc.at("input_size").at(0).get<int64_t>(), W = doc.at("input_size").at(1).get<int64_t>();

        // erf.npy: H×W float32 on the input grid; its sum and 90 % area are the JSON's.
        const at::Tensor erf = deformscope::common::readNpy((out + "/erf.npy").toStdString());
        QCOMPARE(erf.sizes().vec(), (std::vector<int64_t>{H, W}));
        QCOMPARE(erf.scalar_type(), at::kFloat);
        const double sum = erf.to(at::kDouble).sum().item<double>();
        QVERIFY(std::abs(sum - doc.at("erf").at("sum").get<double>()) <= 1e-6 * sum);
        const at::Tensor sorted = std::get<0>(erf.to(at::kDouble).flatten().sort(0, true)).cumsum(0) / sum;
        const int64_t area90 = (sorted < 0.9 - 1e-12).sum().item<int64_t>() + 1;
        QCOMPARE(doc.at("erf").at("area90_px").get<int64_t>(), area90);

        // saliency_mask.npy: its area is the JSON's, and the bound holds.
        const at::Tensor mask = deformscope::common::readNpy((out + "/saliency_mask.npy").toStdString());
        QCOMPARE(mask.sizes().vec(), (std::vector<int64_t>{H, W}));
        const Json& sal = doc.at("saliency");
        QCOMPARE(mask.to(at::kLong).sum().item<int64_t>(), sal.at("area_px").get<int64_t>());
        QVERIFY(std::abs(sal.at("area_fraction").get<double>() - double(sal.at("area_px").get<int64_t>()) / double(H * W)) < 1e-12);
        QVERIFY(sal.at("error").get<double>() <= sal.at("epsilon").get<double>());
        QVERIFY(sal.at("within_bound").get<bool>());
        QVERIFY(sal.at("forwards").get<int64_t>() > 0);

        // sampling.csv: one row per point, the per-level counts of the JSON, inside = within the image.
        const QStringList lines = QString::fromStdString(readAll(out + "/sampling.csv")).split('\n', Qt::SkipEmptyParts);
        QCOMPARE(lines.front(),
                 QString("x,y,level,weight,inside,modulation,layer,parent,tap,kernel_weight,kind,feature_level,row,input"));
        // Every point names its layer's kind and its input (one image: 0); result.json counts them per layer.
        QVERIFY2(lines.at(1).endsWith(QStringLiteral(",dcn_v2,0,0,0")), qPrintable(lines.at(1)));
        int64_t byLayer = 0;
        for (const auto& l : doc.at("sampling").at("by_layer"))
            byLayer += l.at("points").get<int64_t>();
        QCOMPARE(byLayer, doc.at("sampling").at("points").get<int64_t>());
        const Json& sampling = doc.at("sampling");
        QCOMPARE(int64_t(lines.size() - 1), sampling.at("points").get<int64_t>());
        std::map<int, int64_t> perLevel;
        for (int i = 1; i < lines.size(); ++i) {
            const QStringList f = lines[i].split(',');
            QCOMPARE(f.size(), 14);
            QCOMPARE(f[13], QStringLiteral("0"));
            QVERIFY(f[9].isEmpty());   // DCN points carry no Deformable-Kernel weight
            QVERIFY(f[10] == QStringLiteral("dcn_v2") || f[10] == QStringLiteral("conv"));
            QCOMPARE(f[11], QStringLiteral("0")); // no feature levels outside deformable attention
            const double x = f[0].toDouble(), y = f[1].toDouble();
            const bool inside = x >= -0.5 && x < W - 0.5 && y >= -0.5 && y < H - 0.5;
            QCOMPARE(f[4].toInt(), inside ? 1 : 0);
            QVERIFY(f[3].toDouble() >= 0);
            perLevel[f[2].toInt()]++;
        }
        const Json& levels = sampling.at("per_level");
        QCOMPARE(levels.size(), size_t{3});
        QCOMPARE(perLevel[1], int64_t{9});
        for (size_t i = 0; i < levels.size(); ++i)
            QCOMPARE(perLevel[int(i) + 1], levels.at(i).at("points").get<int64_t>());

        // The object came from the sample's ground truth, and the figures are real files.
        QVERIFY(doc.at("object").at("source").get<std::string>().find("sample_01_mask.png") != std::string::npos);
        QCOMPARE(doc.at("figures").size(), size_t{3});
        QVERIFY(readAll(out + "/analysis.png").rfind("\x89PNG\r\n\x1a\n", 0) == 0);
        QVERIFY(readAll(out + "/analysis.svg").find("<svg") != std::string::npos);
        const std::string pdf = readAll(out + "/analysis.pdf");
        QVERIFY(pdf.rfind("%PDF-", 0) == 0 && pdf.find("%%EOF") != std::string::npos);
    }

    void aHugeTraceStaysASmallFigureWithItsUniqueCounts() {
        // Eight levels through every 3×3 of the fixture's residual blocks: far more points than a
        // figure can hold. result.json counts unique points per level; the SVG and PDF draw each
        // position once, the heaviest 12,000 at most, say so, and stay under 5 MB.
        QTemporaryDir dir;
        const QString out = dir.filePath("huge");
        const Run r = cli({"analyze", "--model", fixture("fixture_model.pt"), "--image", fixture("fixture_image.png"),
                           "--layer", "layer3.conv2", "--what", "sampling", "--levels", "8", "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json doc = Json::parse(readAll(out + "/result.json"));
        const Json& sampling = doc.at("sampling");
        QCOMPARE(sampling.at("through").get<std::string>(), std::string("all"));
        const int64_t unique = sampling.at("unique_points").get<int64_t>();
        QVERIFY2(unique > 12000, std::to_string(unique).c_str());
        QVERIFY(unique < sampling.at("points").get<int64_t>());
        double shares = 0;
        for (const Json& l : sampling.at("per_level")) {
            QVERIFY(l.at("unique_points").get<int64_t>() <= l.at("points").get<int64_t>());
            shares += l.at("weight_share").get<double>();
            const double inside = l.at("inside_weight_share").get<double>();
            QVERIFY(inside >= 0 && inside <= 1 + 1e-12);
        }
        QVERIFY(std::abs(shares - 1) < 1e-9);
        const std::string svg = readAll(out + "/analysis.svg"), pdf = readAll(out + "/analysis.pdf");
        QVERIFY2(svg.size() < 5u * 1024 * 1024, std::to_string(svg.size()).c_str());
        QVERIFY2(pdf.size() < 5u * 1024 * 1024, std::to_string(pdf.size()).c_str());
        QVERIFY(svg.find("drawn: the heaviest 12,000 of") != std::string::npos);
    }

    void scaleMapWritesTheRadiusOfEveryNode() {
        // scale-map: scale_map.npy [2, G, G] float32 (50 % and 90 % mass radii, input pixels), result.json
        // naming the grid and summarising the radii, and the figure.
        QTemporaryDir dir;
        const QString out = dir.filePath("scale");
        const Run r = cli({"scale-map", "--model", sample("dcn_v2.pt"), "--image", sampleImage("sample_01.png"),
                           "--layer", "block3", "--grid", "8", "--batch", "16", "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const at::Tensor map = deformscope::common::readNpy((out + "/scale_map.npy").toStdString());
        QCOMPARE(map.sizes().vec(), (std::vector<int64_t>{2, 8, 8}));
        QCOMPARE(map.scalar_type(), at::kFloat);
        QVERIFY((map[0] <= map[1]).all().item<bool>());
        QVERIFY((map > 0).all().item<bool>());
        const Json doc = Json::parse(readAll(out + "/result.json"));
        QCOMPARE(doc.at("layer").get<std::string>(), std::string("block3"));
        QCOMPARE(doc.at("grid").at(0).get<int64_t>(), int64_t{8});
        QCOMPARE(doc.at("fy").size(), size_t{8});
        QCOMPARE(doc.at("passes").get<int64_t>(), int64_t{4});
        const double max90 = doc.at("radii").at(1).at("max_px").get<double>();
        QVERIFY(std::abs(max90 - map[1].max().item<double>()) < 1e-3);
        QCOMPARE(doc.at("figures").size(), size_t{3});
        QVERIFY(readAll(out + "/scale_map.png").rfind("\x89PNG\r\n\x1a\n", 0) == 0);
        // A layer that does not exist: exit 2 naming it.
        const Run bad = cli({"scale-map", "--model", sample("dcn_v2.pt"), "--image", sampleImage("sample_01.png"),
                             "--layer", "nope", "--out", out});
        QCOMPARE(bad.exitCode, 2);
        QVERIFY2(bad.err.contains("nope"), qPrintable(bad.err));
    }

    void sweepGivesTheErfAtEverySize() {
        // Three 5×5 box filters, no nonlinearity: at every input size the ERF is the box filter's
        // third power (13 × 13), so its 90 % area is the same number of pixels, while the
        // object (a box given in original pixels) grows with the size squared.
        QTemporaryDir dir;
        const QString out = dir.filePath("sweep");
        const Run r = cli({"sweep", "--models", fixture("linear_stack.pt"), fixture("fixture_model.pt"), "--image",
                           fixture("fixture_image.png"), "--pixel", "40,32", "--object", "20,16,60,48", "--sizes",
                           "48,96", "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        // The analytic 90 % area: the fewest pixels of the separable (1+z+…+z⁴)³ ⊗ itself holding 90 %.
        std::vector<double> c{1};
        for (int i = 0; i < 3; ++i) {
            std::vector<double> next(c.size() + 4, 0);
            for (size_t a = 0; a < c.size(); ++a)
                for (size_t b = 0; b < 5; ++b)
                    next[a + b] += c[a];
            c = next;
        }
        std::vector<double> w;
        for (double a : c)
            for (double b : c)
                w.push_back(a * b);
        std::sort(w.begin(), w.end(), std::greater<>());
        const double total = std::accumulate(w.begin(), w.end(), 0.0);
        int64_t area90 = 0;
        for (double acc = 0; acc < 0.9 * total - 1e-9 * total; acc += w[size_t(area90++)]) {
        }
        const Json doc = Json::parse(readAll(out + "/result.json"));
        const Json& rows = doc.at("rows");
        QCOMPARE(rows.size(), size_t{4}); // 2 models x 2 sizes
        const Json& small = rows.at(0);
        const Json& large = rows.at(1);
        QCOMPARE(small.at("size").get<int64_t>(), int64_t{48});
        QCOMPARE(small.at("erf_area90_px").get<int64_t>(), area90);
        QCOMPARE(large.at("erf_area90_px").get<int64_t>(), area90);
        QCOMPARE(large.at("erf_radius90_px").get<double>(), small.at("erf_radius90_px").get<double>());
        const double objects = double(large.at("object_area_px").get<int64_t>()) /
                               double(small.at("object_area_px").get<int64_t>());
        QVERIFY2(std::abs(objects - 4) < 0.1, std::to_string(objects).c_str());
        QVERIFY(std::abs(small.at("erf90_to_object").get<double>() / large.at("erf90_to_object").get<double>() - objects) < 1e-9);
        QCOMPARE(small.at("saliency_area_px").get<int64_t>(), int64_t{-1}); // the ERF alone unless --what asks
        const QStringList csv = QString::fromStdString(readAll(out + "/sweep.csv")).split('\n', Qt::SkipEmptyParts);
        QCOMPARE(csv.size(), 5);
        QVERIFY(csv.at(0).startsWith(QStringLiteral("model,size,layer,fx,fy,")));
        // The Fig. 5-style grid and the plot of the ratio against size.
        QCOMPARE(doc.at("figures").size(), size_t{6});
        QVERIFY(readAll(out + "/sweep_ratio.svg").find("<svg") != std::string::npos);
        QVERIFY(readAll(out + "/sweep_ratio.pdf").rfind("%PDF-", 0) == 0);
    }

    void sweepMeasuresAccuracyOnTheSampleData() {
        // --accuracy DIR: the segmentation accuracy of each model at each size over the sample
        // images (class-id masks); at the training size the samples score as their model card says
        // (held-out pixel accuracy about 0.98).
        QTemporaryDir data;
        for (const char* n : {"sample_01", "sample_02", "sample_03"})
            for (const QString& suffix : {QStringLiteral(".png"), QStringLiteral("_mask.png")})
                QVERIFY(QFile::copy(QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples/" + n + suffix,
                                    data.filePath(QString::fromUtf8(n) + suffix)));
        QTemporaryDir dir;
        const QString out = dir.filePath("sweep");
        const Run r = cli({"sweep", "--models", sample("regular.pt"), sample("dcn_v2.pt"), "--image",
                           sampleImage("sample_01.png"), "--pixel", "58,46", "--sizes", "128,256", "--accuracy",
                           data.path(), "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json doc = Json::parse(readAll(out + "/result.json"));
        for (const Json& row : doc.at("rows")) {
            const double accuracy = row.at("pixel_accuracy").get<double>(), iou = row.at("mean_iou").get<double>();
            QVERIFY(accuracy >= 0 && accuracy <= 1 && iou >= 0 && iou <= 1);
            if (row.at("size").get<int64_t>() == 128)
                QVERIFY2(accuracy > 0.9, std::to_string(accuracy).c_str());
        }
        QVERIFY(readAll(out + "/sweep_accuracy.svg").find("<svg") != std::string::npos);
        QVERIFY(QString::fromStdString(readAll(out + "/sweep.csv")).section('\n', 0, 0).endsWith(",pixel_accuracy,mean_iou"));
    }

    void threeShardsMergedEqualOneRun() {
        // erf-average --shard K/3 on three "machines", then merge: the same images, map (to float
        // precision) and integer metrics as one run over the folder; a missing part is named, exit 2.
        QTemporaryDir dir;
        const QStringList common{"--model", sample("dcn_v2.pt"), "--images",
                                 QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples", "--layer", "block3"};
        const Run all = cli(QStringList{"erf-average"} + common + QStringList{"--out", dir.filePath("all")});
        QVERIFY2(all.exitCode == 0, qPrintable(all.err));
        QStringList parts;
        for (int k = 1; k <= 3; ++k) {
            parts << dir.filePath(QString("part%1").arg(k));
            const Run r = cli(QStringList{"erf-average"} + common +
                              QStringList{"--shard", QString("%1/3").arg(k), "--out", parts.back(), "--no-figures"});
            QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        }
        const Run merged = cli(QStringList{"merge", "--inputs"} + parts + QStringList{"--out", dir.filePath("merged")});
        QVERIFY2(merged.exitCode == 0, qPrintable(merged.err));
        const Json a = Json::parse(readAll(dir.filePath("all/result.json")));
        const Json b = Json::parse(readAll(dir.filePath("merged/result.json")));
        QVERIFY(a.at("images").get<int64_t>() > 3);
        QCOMPARE(b.at("images").get<int64_t>(), a.at("images").get<int64_t>());
        for (const char* k : {"area50_px", "area90_px", "area99_px"})
            QCOMPARE(b.at("metrics").at(k).get<int64_t>(), a.at("metrics").at(k).get<int64_t>());
        const at::Tensor ma = deformscope::common::readNpy(dir.filePath("all/erf_average.npy").toStdString());
        const at::Tensor mb = deformscope::common::readNpy(dir.filePath("merged/erf_average.npy").toStdString());
        QVERIFY(((ma - mb).abs().sum() / ma.abs().sum()).item<double>() < 1e-6);
        QVERIFY(readAll(dir.filePath("merged/erf_average.png")).rfind("\x89PNG", 0) == 0);
        const Run missing = cli({"merge", "--inputs", parts[0], parts[2], "--out", dir.filePath("bad")});
        QCOMPARE(missing.exitCode, 2);
        QVERIFY2(missing.err.contains("parts missing: 2/3"), qPrintable(missing.err));
    }

    void saliencyAdoptsOnlyEvaluatedMasks() {
        // A case where adopting a mask known only through the search's linear surrogate
        // made every fresh check fail (the whole image came back): DCNv2, 256 x 256, centre.
        QTemporaryDir dir;
        const QString out = dir.filePath("s");
        const Run r = cli({"analyze", "--model", sample("dcn_v2.pt"), "--image", sampleImage("sample_01.png"),
                           "--input-size", "256", "256", "--pixel", "63.5,63.5", "--what", "saliency", "--no-figures",
                           "--no-object", "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json sal = Json::parse(readAll(out + "/result.json")).at("saliency");
        QVERIFY2(sal.at("note").get<std::string>().find("fell back") == std::string::npos, sal.at("note").get<std::string>().c_str());
        QVERIFY(sal.at("area_fraction").get<double>() < 0.5);
        QVERIFY(sal.at("error").get<double>() <= 0.1);
    }

    void compareWritesOneGridAndEachModelsData() {
        QTemporaryDir dir;
        const QString out = dir.filePath("c");
        const Run r = cli({"compare", "--models", sample("regular.pt"), sample("dcn_v1.pt"), sample("dcn_v2.pt"),
                           "--image", sampleImage("sample_03.png"), "--pixel", "50,33", "--what", "sampling,erf",
                           "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json doc = Json::parse(readAll(out + "/compare.json"));
        QCOMPARE(doc.at("models").size(), size_t{3});
        for (const char* name : {"regular", "dcn_v1", "dcn_v2"}) {
            const Json one = Json::parse(readAll(out + "/" + name + "/result.json"));
            QCOMPARE(one.at("model_name").get<std::string>(), std::string(name));
            QVERIFY(QFile::exists(out + "/" + name + "/erf.npy"));
            QVERIFY(!QFile::exists(out + "/" + name + "/saliency_mask.npy"));
        }
        for (const char* f : {"/compare.png", "/compare.svg", "/compare.pdf"})
            QVERIFY(QFileInfo(out + f).size() > 1000);
        QVERIFY(r.out.contains("regular") && r.out.contains("dcn_v2"));
    }

    void erfAverageOverAFolder() {
        QTemporaryDir dir;
        const QString out = dir.filePath("e");
        const Run r = cli({"erf-average", "--model", sample("regular.pt"), "--images",
                           QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples", "--limit", "3", "--batch", "2",
                           "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        QVERIFY(r.err.contains("erf-average: 3/3 images"));
        const Json doc = Json::parse(readAll(out + "/result.json"));
        QCOMPARE(doc.at("images").get<int64_t>(), int64_t{3});
        QCOMPARE(doc.at("node").at("layer").get<std::string>(), std::string("block3"));
        QCOMPARE(doc.at("node").at("fx").get<int64_t>(), int64_t{8}); // the centre of block3's 16 × 16 map
        const at::Tensor map = deformscope::common::readNpy((out + "/erf_average.npy").toStdString());
        QCOMPARE(map.sizes().vec(), (std::vector<int64_t>{128, 128}));
        QVERIFY(std::abs(map.to(at::kDouble).abs().sum().item<double>() - doc.at("metrics").at("mass").get<double>()) <
                1e-6 * doc.at("metrics").at("mass").get<double>());
        QVERIFY(QFileInfo(out + "/erf_average.png").size() > 1000);
    }

    void kernelViewExportsLikeTheOtherViews() {
        QTemporaryDir dir;
        const QString out = dir.filePath("k");
        // A DK layer's own node, one channel: the view of that channel, in result.json, kernel_scope.npy and the figure.
        const Run r = cli({"analyze", "--model", sample("dk.pt"), "--image", sampleImage("sample_01.png"), "--layer",
                           "block2", "--pixel", "40,70", "--response", "channel:5", "--what", "kernel", "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        QVERIFY(r.out.contains("kernel: block2 (5, 9), 3x3 taps from a 5x5 scope"));
        const Json doc = Json::parse(readAll(out + "/result.json"));
        QVERIFY(!doc.contains("erf") && !doc.contains("sampling") && !doc.contains("saliency"));
        const Json& k = doc.at("kernel");
        QCOMPARE(k.at("layer").get<std::string>(), std::string("block2"));
        QCOMPARE(k.at("channel").get<int64_t>(), int64_t{5});
        QCOMPARE(k.at("taps").size(), size_t{9});
        for (const Json& t : k.at("taps")) {
            const int tap = int(t.at("tap").get<int64_t>());
            QCOMPARE(t.at("base_yx").at(0).get<double>(), double(tap / 3 + 1));
            QCOMPARE(t.at("base_yx").at(1).get<double>(), double(tap % 3 + 1));
            QVERIFY(std::abs(t.at("sampled_yx").at(0).get<double>() - t.at("base_yx").at(0).get<double>() -
                             t.at("offset_yx").at(0).get<double>()) < 1e-9);
            QVERIFY(t.at("weight").get<double>() >= 0);
        }
        const at::Tensor scope = deformscope::common::readNpy((out + "/kernel_scope.npy").toStdString());
        QCOMPARE(scope.sizes().vec(), (std::vector<int64_t>{5, 5}));
        for (int64_t i = 0; i < 5; ++i)
            for (int64_t j = 0; j < 5; ++j)
                QVERIFY(std::abs(scope[i][j].item<double>() - k.at("scope_weight").at(size_t(i)).at(size_t(j)).get<double>()) < 1e-6);
        QVERIFY(readAll(out + "/analysis.svg").find("resampled kernel") != std::string::npos);
        QVERIFY(readAll(out + "/analysis.pdf").rfind("%PDF-", 0) == 0);

        // compare: the DK model's column has the view, the others say they have none; its data is in its folder.
        const QString cmp = dir.filePath("c");
        const Run c = cli({"compare", "--models", sample("regular.pt"), sample("dk.pt"), "--image",
                           sampleImage("sample_01.png"), "--what", "erf,kernel", "--out", cmp});
        QVERIFY2(c.exitCode == 0, qPrintable(c.err));
        QVERIFY(QFile::exists(cmp + "/dk/kernel_scope.npy") && !QFile::exists(cmp + "/regular/kernel_scope.npy"));
        const Json models = Json::parse(readAll(cmp + "/compare.json")).at("models");
        QVERIFY(!models.at(0).contains("kernel"));
        QCOMPARE(models.at(1).at("kernel").at("layer").get<std::string>(), std::string("block3"));
        const std::string svg = readAll(cmp + "/compare.svg");
        QVERIFY(svg.find("resampled kernel") != std::string::npos && svg.find("no Deformable Kernel layer") != std::string::npos);

        // Asked for where there is no DK layer: exit 2 naming the model and the problem.
        const Run none = cli({"analyze", "--model", sample("dcn_v2.pt"), "--image", sampleImage("sample_01.png"),
                              "--what", "kernel", "--out", dir.filePath("n")});
        QCOMPARE(none.exitCode, 2);
        QVERIFY2(none.err.contains("dcn_v2.pt: layer 'block3' has no Deformable Kernel layer"), qPrintable(none.err));
        const Run noneAtAll = cli({"compare", "--models", sample("regular.pt"), sample("dcn_v1.pt"), "--image",
                                   sampleImage("sample_01.png"), "--what", "kernel", "--out", dir.filePath("m")});
        QCOMPARE(noneAtAll.exitCode, 2);
        QVERIFY(noneAtAll.err.contains("none of the models has a Deformable Kernel layer"));
    }

    void analysisInputErrorsExitWith2() {
        QTemporaryDir dir;
        const QString out = dir.filePath("x");
        const QString model = sample("regular.pt"), image = sampleImage("sample_01.png");
        struct Case {
            QStringList args;
            const char* message;
        };
        const Case cases[] = {
            {{"--pixel", "500,10"}, "is outside"},
            {{"--layer", "nope"}, "has no layer 'nope'; its layers are: stem,"},
            {{"--what", "erf,cats"}, "--what 'erf,cats'"},
            {{"--response", "channel:99"}, "channel 99 does not exist"},
            {{"--response", "sideways"}, "response 'sideways'"},
            {{"--pixel", "1;2"}, "--pixel '1;2'"},
            {{"--object-mask", fixture("missing_mask.png")}, "missing_mask.png: does not exist"},
        };
        for (const Case& c : cases) {
            const Run r = cli(QStringList{"analyze", "--model", model, "--image", image, "--what", "erf", "--out", out} + c.args);
            QVERIFY2(r.exitCode == 2, qPrintable(c.args.join(' ') + ": " + r.err));
            QVERIFY2(r.err.contains(c.message), qPrintable(r.err));
        }
        const Run missing = cli({"analyze", "--model", model, "--image", fixture("nothing.png"), "--out", out});
        QCOMPARE(missing.exitCode, 2);
        QVERIFY(missing.err.contains("nothing.png: does not exist"));
        const Run badModel = cli({"compare", "--models", model, fixture("not_a_model.pt"), "--image", image, "--out", out});
        QCOMPARE(badModel.exitCode, 2);
        QVERIFY(badModel.err.contains("not_a_model.pt"));
        const Run noImages = cli({"erf-average", "--model", model, "--images", dir.path(), "--out", out});
        QCOMPARE(noImages.exitCode, 2);
        QVERIFY(noImages.err.contains("has no images"));
    }

    // Every option is checked before any work, and every problem is named at once
    // with the option, the value and what is allowed.
    void everyBadValueIsNamedBeforeAnyWork() {
        QTemporaryDir dir;
        const Run r = cli({"analyze", "--model", sample("regular.pt"), "--image", sampleImage("sample_01.png"), "--out",
                           dir.filePath("x"), "--levels", "9", "--colormap", "bogus", "--epsilon", "-1", "--pixel",
                           "nan,3", "--overlay", "arrows"});
        QCOMPARE(r.exitCode, 2);
        for (const char* message : {"--colormap 'bogus': expected one of inferno, viridis, magma, plasma, gray, coolwarm",
                                    "--overlay 'arrows': expected a comma-separated list of sampling, offsets, modulation",
                                    "--levels '9': expected a whole number from 1 to 8",
                                    "--epsilon '-1': expected a number from 0 to 10",
                                    "--pixel 'nan,3': expected two finite numbers x,y"})
            QVERIFY2(r.err.contains(QString::fromUtf8(message)), qPrintable(r.err));
        QVERIFY(!QDir(dir.filePath("x")).exists()); // nothing was run
        // Exclusive spellings of one setting are refused by the parser.
        const Run both = cli({"analyze", "--model", sample("regular.pt"), "--image", sampleImage("sample_01.png"),
                              "--out", dir.filePath("x"), "--object", "1,1,5,5", "--no-object"});
        QCOMPARE(both.exitCode, 2);
        QVERIFY2(both.err.contains("excludes"), qPrintable(both.err));
    }

    // The tool and each command print their generated help and exit 0.
    void helpListsCommandsAndOptions() {
        const Run tool = cli({"--help"});
        QCOMPARE(tool.exitCode, 0);
        for (const char* command : {"selftest", "info", "capture", "analyze", "compare", "erf-average", "bench"})
            QVERIFY2(tool.out.contains(QString::fromUtf8(command)), command);
        const Run analyze = cli({"analyze", "--help"});
        QCOMPARE(analyze.exitCode, 0);
        for (const char* option : {"--model", "--what", "--levels", "--epsilon", "--baseline", "--object-mask",
                                   "--input-size", "--colormap", "--overlay"})
            QVERIFY2(analyze.out.contains(QString::fromUtf8(option)), option);
    }

    // --overlay reaches the figure: the offset field and the modulation map are
    // drawn in the sampling row, and result.json records what was asked.
    void overlaysDrawTheOffsetFieldInTheFigure() {
        QTemporaryDir dir;
        const QStringList common{"analyze", "--model", sample("dcn_v2.pt"), "--image", sampleImage("sample_01.png"),
                                 "--pixel", "58,46", "--what", "sampling", "--no-object"};
        const Run plain = cli(common + QStringList{"--out", dir.filePath("plain")});
        const Run arrows = cli(common + QStringList{"--out", dir.filePath("arrows"), "--overlay", "sampling,offsets,modulation"});
        QVERIFY2(plain.exitCode == 0 && arrows.exitCode == 0, qPrintable(plain.err + arrows.err));
        const Json doc = Json::parse(readAll(dir.filePath("arrows/result.json")));
        QCOMPARE(doc.at("request").at("overlays").get<std::string>(), std::string("sampling,offsets,modulation"));
        // The same points; the arrows and the modulation map add to the drawing.
        QCOMPARE(readAll(dir.filePath("plain/sampling.csv")), readAll(dir.filePath("arrows/sampling.csv")));
        const std::string a = readAll(dir.filePath("plain/analysis.svg")), b = readAll(dir.filePath("arrows/analysis.svg"));
        QVERIFY2(b.size() > a.size() + 1000, qPrintable(QString::number(a.size()) + " vs " + QString::number(b.size())));
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "tst_cli.moc"
