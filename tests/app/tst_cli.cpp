// Tests of deformscope-cli as a user runs it: exit codes and what it prints.
#include "core/common/json.h"
#include "core/common/npy.h"

#include <ATen/ATen.h>

#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QProcess>
#include <QtCore/QTemporaryDir>
#include <QtTest/QtTest>

namespace {

struct Run {
    int exitCode = -1;
    QString out, err;
};

Run cli(const QStringList& args) {
    QProcess p;
    p.start(QStringLiteral(DEFORMSCOPE_CLI), args);
    Run r;
    if (!p.waitForFinished(600000))
        return r;
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = QString::fromUtf8(p.readAllStandardOutput());
    r.err = QString::fromUtf8(p.readAllStandardError());
    return r;
}

QString fixture(const char* name) {
    return QDir(QStringLiteral(DEFORMSCOPE_MODEL_FIXTURE_DIR)).filePath(QString::fromUtf8(name));
}

using deformscope::common::Json;

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
        QCOMPARE(j.at("input_size").at(1).asInt(), int64_t{96});
        const Json& layers = j.at("layers");
        QCOMPARE(layers.size(), size_t{13});
        for (size_t i = 0; i < layers.size(); ++i)
            for (const char* key : {"name", "kind", "kernel", "stride", "padding", "dilation", "groups", "offset_groups",
                                    "feature_size", "jump", "start", "rf", "inputs"})
                QVERIFY2(layers.at(i).contains(key), key);
        const Json& v1 = layers.at(6);
        QCOMPARE(v1.at("name").asString(), std::string("layer2.conv2"));
        QCOMPARE(v1.at("kind").asString(), std::string("dcn_v1"));
        QCOMPARE(v1.at("feature_size").at(0).asInt(), int64_t{8});
        QCOMPARE(v1.at("feature_size").at(1).asInt(), int64_t{12});
        QCOMPARE(v1.at("offset_source").asString(), std::string("layer2.offset"));
        QCOMPARE(j.at("metadata").at("suggested_layer").asString(), std::string("layer3.conv2"));
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
        QCOMPARE(doc.at("layer").at("kind").asString(), std::string("dcn_v2"));
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
};

QTEST_GUILESS_MAIN(TestCli)
#include "tst_cli.moc"
