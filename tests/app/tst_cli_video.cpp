// deformscope-cli with video models (tests/python/make_video.py): several
// --image, a video's --frames, --what motion against the known motion,
// --propagate, and the bad inputs a user makes, each a clear message and exit 2.
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "tests/support/cli_run.h"
#include "core/imaging/image.h"

#include <ATen/ATen.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <fstream>

#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QProcess>
#include <QtCore/QTemporaryDir>
#include <QtTest/QtTest>

namespace {

using deformscope::common::Json;

using Run = deformscope::test::CliRun;
using deformscope::test::cli;

QString video(const char* name) { return QDir(QStringLiteral(DEFORMSCOPE_VIDEO_FIXTURE_DIR)).filePath(QString::fromUtf8(name)); }
QString sampleImage(const char* name) {
    return QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/resources/samples/" + QString::fromUtf8(name);
}

Json result(const QString& dir) { return deformscope::common::readJsonFile((dir + "/result.json").toStdString()); }

} // namespace

class TestCliVideo : public QObject {
    Q_OBJECT

private Q_SLOTS:
    // Two images, in forward's order: points on the support frame (sampling.csv's
    // input column), one ERF map per input, motion equal to the known translation,
    // a square mask carried to the moved square.
    void analyzeAFramePairWithMotionAndPropagation() {
        QTemporaryDir tmp;
        const QString out = tmp.filePath("pair");
        const Run r = cli({"analyze", "--model", video("translate.pt"), "--image", video("square_a.png"), "--image",
                           video("square_b.png"), "--layer", "align", "--pixel", "25,20", "--what", "sampling,erf,motion",
                           "--levels", "1", "--true-motion", video("square_motion.npy"), "--propagate",
                           video("square_a_mask.png"), "--propagate-truth", video("square_b_mask.png"), "--out", out});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err + r.out));
        QVERIFY2(r.out.contains("motion: align"), qPrintable(r.out));
        const Json doc = result(out);
        QCOMPARE(doc.at("inputs").size(), size_t(2));
        QCOMPARE(doc.at("inputs").at(1).at("name").get<std::string>(), std::string("support"));
        // Level-1 points of the alignment layer lie on the support frame, at grid + (2, −3).
        QFile csv(out + "/sampling.csv");
        QVERIFY(csv.open(QIODevice::ReadOnly));
        const QStringList header = QString::fromUtf8(csv.readLine()).trimmed().split(',');
        QCOMPARE(header.last(), QString("input"));
        int onSupport = 0;
        while (!csv.atEnd()) {
            const QStringList f = QString::fromUtf8(csv.readLine()).trimmed().split(',');
            if (f[6] == "align") {
                QCOMPARE(f.last(), QString("1"));
                const int tap = f[8].toInt();
                QVERIFY(std::abs(f[0].toDouble() - (25 + tap % 3 - 1 - 3)) < 1e-4);
                QVERIFY(std::abs(f[1].toDouble() - (20 + tap / 3 - 1 + 2)) < 1e-4);
                ++onSupport;
            }
        }
        QCOMPARE(onSupport, 9);
        // Each frame's own mask (square_a_mask.png, square_b_mask.png beside the frames) is the
        // object on that frame: the points reading the moved square lie inside it.
        const Json& object = doc.at("object");
        QVERIFY2(object.at("source").get<std::string>().find("square_b_mask.png") != std::string::npos, object.dump().c_str());
        QCOMPARE(object.at("sampling_weight_inside").get<double>(), 1.0);
        QCOMPARE(object.at("object_px").get<int64_t>(), int64_t(2 * 16 * 16));
        const at::Tensor erf = deformscope::common::readNpy((out + "/erf.npy").toStdString());
        QCOMPARE(erf.sizes().vec(), (std::vector<int64_t>{2, 48, 48}));
        QCOMPARE(doc.at("erf").at("inputs").size(), size_t(2));
        // Offsets hard-wired to the translation: the reference frame gets no gradient.
        QVERIFY(doc.at("erf").at("inputs").at(1).at("mass_share").get<double>() > 0.999);
        const Json& m = doc.at("motion");
        QVERIFY(m.at("epe_vs_truth_px").get<double>() < 1e-4);
        QVERIFY(m.at("epe_vs_flow_px").get<double>() < 1.5);
        QVERIFY(m.at("cosine_vs_flow").get<double>() > 0.9);
        QCOMPARE(m.at("alarm").get<bool>(), false);
        QVERIFY(std::abs(m.at("mean_offset_px").get<double>() - 2.5) < 1e-4);
        const at::Tensor motion = deformscope::common::readNpy((out + "/motion.npy").toStdString());
        QCOMPARE(motion.sizes().vec(), (std::vector<int64_t>{2, 48, 48}));
        QVERIFY(at::allclose(motion[0], at::full({48, 48}, -3.0f), 1e-5, 1e-5));
        QVERIFY(QFile::exists(out + "/flow.npy") && QFile::exists(out + "/motion.png") && QFile::exists(out + "/flow.png"));
        const Json& p = doc.at("propagation");
        QVERIFY2(p.at("iou_reads").get<double>() > 0.95, p.dump().c_str());
        QVERIFY(p.at("iou_flow").get<double>() > 0.5);
        // The alarm threshold is an option.
        const Run alarm = cli({"analyze", "--model", video("translate.pt"), "--image", video("square_a.png"), "--image",
                               video("square_b.png"), "--what", "motion", "--motion-alarm-px", "1", "--no-figures",
                               "--out", tmp.filePath("alarm")});
        QVERIFY2(alarm.exitCode == 0, qPrintable(alarm.err));
        QVERIFY(alarm.out.contains("ALARM"));
        QCOMPARE(result(tmp.filePath("alarm")).at("motion").at("alarm").get<bool>(), true);
    }

    // Keypoints travel with the reads: (20, 20) moves by (−3, 2).
    void keypointsTravelWithTheReads() {
        QTemporaryDir tmp;
        std::ofstream(tmp.filePath("a.json").toStdString()) << R"({"keypoints": [[20, 20], [30, 25]]})";
        std::ofstream(tmp.filePath("b.json").toStdString()) << R"({"keypoints": [[17, 22], [27, 27]]})";
        const Run r = cli({"analyze", "--model", video("translate.pt"), "--image", video("square_a.png"), "--image",
                           video("square_b.png"), "--what", "sampling", "--propagate", tmp.filePath("a.json"),
                           "--propagate-truth", tmp.filePath("b.json"), "--no-figures", "--out", tmp.filePath("kp")});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json doc = result(tmp.filePath("kp"));
        const Json& p = doc.at("propagation");
        QCOMPARE(p.at("kind").get<std::string>(), std::string("keypoints"));
        QVERIFY2(p.at("distance_reads_px").get<double>() < 1e-3, p.dump().c_str());
    }

    // A video's frames are the inputs; a frame past its end is refused with its length.
    void videoFramesAreInputs() {
        QTemporaryDir tmp;
        const std::string path = tmp.filePath("clip.avi").toStdString();
        {
            const at::Tensor a = deformscope::imaging::loadImage(video("square_a.png").toStdString()).rgb;
            const at::Tensor b = deformscope::imaging::loadImage(video("square_b.png").toStdString()).rgb;
            cv::VideoWriter writer(path, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10, cv::Size(48, 48));
            QVERIFY(writer.isOpened());
            for (const at::Tensor& f : {a, b, a, b}) {
                cv::Mat rgb(48, 48, CV_8UC3, f.data_ptr()), bgr;
                cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
                writer.write(bgr);
            }
        }
        const Run r = cli({"analyze", "--model", video("translate.pt"), "--video", QString::fromStdString(path),
                           "--frames", "2,3", "--what", "sampling,motion", "--no-figures", "--out", tmp.filePath("v")});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json doc = result(tmp.filePath("v"));
        QVERIFY(doc.at("inputs").at(1).at("image").get<std::string>().find("#3") != std::string::npos);
        const Run past = cli({"analyze", "--model", video("translate.pt"), "--video", QString::fromStdString(path),
                              "--frames", "0,7", "--out", tmp.filePath("past")});
        QCOMPARE(past.exitCode, 2);
        QVERIFY2(past.err.contains("frame 7 is past the end of the video (it has 4 frames"), qPrintable(past.err));
    }

    // The mistakes: too few images, frames of different sizes, motion on a model without alignment.
    void badInputsExitTwoWithAClearMessage() {
        QTemporaryDir tmp;
        const Run one = cli({"analyze", "--model", video("two_input.pt"), "--image", video("square_a.png"), "--out",
                             tmp.filePath("one")});
        QCOMPARE(one.exitCode, 2);
        QVERIFY2(one.err.contains("takes 2 input frames (reference, support) but 1 images were given"), qPrintable(one.err));
        const Run sizes = cli({"analyze", "--model", video("two_input.pt"), "--image", video("square_a.png"), "--image",
                               sampleImage("sample_01.png"), "--out", tmp.filePath("sizes")});
        QCOMPARE(sizes.exitCode, 2);
        QVERIFY2(sizes.err.contains("the frames of a model's inputs must have one size"), qPrintable(sizes.err));
        QVERIFY2(sizes.err.contains("sample_01.png"), qPrintable(sizes.err));
        const Run motion = cli({"analyze", "--model", QStringLiteral(DEFORMSCOPE_SOURCE_DIR) + "/sample_models/dcn_v2.pt",
                                "--image", sampleImage("sample_01.png"), "--what", "motion", "--out", tmp.filePath("m")});
        QCOMPARE(motion.exitCode, 2);
        QVERIFY2(motion.err.contains("no alignment layer"), qPrintable(motion.err));
    }

    // info lists the inputs, the alignment layer and PoseWarper's branches.
    void infoListsInputsAndBranches() {
        const Run r = cli({"info", video("two_input.pt")});
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        QVERIFY2(r.out.contains("inputs: 2 frames (reference, support), arguments"), qPrintable(r.out));
        QVERIFY2(r.out.contains("alignment layer: align reads support"), qPrintable(r.out));
        const Run s = cli({"info", video("stacked.pt"), "--json"});
        QVERIFY2(s.exitCode == 0, qPrintable(s.err));
        const Json j = Json::parse(s.out.toStdString());
        QCOMPARE(j.at("inputs").at("form").get<std::string>(), std::string("stacked on channels"));
        const Run b = cli({"info", video("multi_branch.pt"), "--json"});
        QVERIFY2(b.exitCode == 0, qPrintable(b.err));
        QCOMPARE(Json::parse(b.out.toStdString()).at("branches").at(0).size(), size_t(5));
    }
};

QTEST_APPLESS_MAIN(TestCliVideo)
#include "tst_cli_video.moc"
