// Tests of core_imaging: every case writes its own small synthetic images into a
// QTemporaryDir (with writeImage, or with OpenCV directly where the point is to
// check the file-level channel order independently), loads them and compares
// exact values: channel order, normalisation arithmetic, resizing, pixel formats,
// coordinate mapping, class maps, ownership, and the error messages.
#include "core/imaging/image.h"
#include "core/imaging/pil_resize.h"

#include <ATen/ATen.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <QtTest/QtTest>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>

#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>

using namespace deformscope::imaging;

namespace {

using Stats = std::array<double, 3>;

std::string pathIn(const QTemporaryDir& dir, const QString& name) {
    return dir.filePath(name).toStdString();
}

// What the pipeline must produce for a value v of RGB channel s: (v / divisor -
// mean[s]) / std[s], in double, rounded once to float.
float expectedValue(double v, double divisor, int s, const Normalization& norm) {
    return static_cast<float>((v / divisor - norm.mean[s]) / norm.std[s]);
}

// The normalised [1, 3, H, W] tensor the pipeline must produce from an [H, W, 3]
// image (any dtype) with values / divisor in [0, 1].
at::Tensor expectedTensor(const at::Tensor& hwc, double divisor, const Normalization& norm) {
    const at::Tensor src = hwc.to(at::kDouble).contiguous();
    const int64_t h = src.size(0), w = src.size(1);
    at::Tensor out = at::empty({1, 3, h, w}, at::kFloat);
    auto in = src.accessor<double, 3>();
    auto o = out.accessor<float, 4>();
    for (int c = 0; c < 3; ++c) {
        const int s = norm.bgr ? 2 - c : c;
        for (int64_t y = 0; y < h; ++y)
            for (int64_t x = 0; x < w; ++x)
                o[0][c][y][x] = expectedValue(in[y][x][s], divisor, s, norm);
    }
    return out;
}

// An [h, w, 3] uint8 image in which nearby values differ in every channel and
// every value 0..255 occurs.
at::Tensor patternImage(int64_t h, int64_t w) {
    const at::Tensor i = at::arange(h * w * 3, at::kLong).reshape({h, w, 3});
    return ((i * 37 + i / 3 * 11) % 256).to(at::kByte);
}

std::string describeDifference(const at::Tensor& actual, const at::Tensor& expected) {
    std::ostringstream s;
    s << "actual " << actual.scalar_type() << actual.sizes() << ", expected " << expected.scalar_type()
      << expected.sizes();
    if (actual.sizes() == expected.sizes())
        s << ", max |difference| "
          << (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>();
    return s.str();
}

#define COMPARE_TENSORS(actual, expected)                                                                    \
    QVERIFY2(at::equal((actual), (expected)), describeDifference((actual), (expected)).c_str())

// The message of the std::runtime_error `f` throws; empty when it throws none.
QString runtimeErrorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::runtime_error& e) {
        return QString::fromUtf8(e.what());
    }
    return {};
}

bool writeEmptyFile(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::WriteOnly);
}

bool writeTextFile(const QString& path, const QByteArray& text) {
    QFile f(path);
    return f.open(QIODevice::WriteOnly) && f.write(text) == text.size();
}

// Leftovers of writeImage's temporary files (".<name>.tmp-<random>").
QStringList temporaryFiles(const QString& folder) {
    QStringList found;
    for (const QString& name : QDir(folder).entryList(QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot))
        if (name.contains(QLatin1String(".tmp-")))
            found << name;
    return found;
}

QList<qint64> shapeOf(const at::Tensor& t) {
    QList<qint64> shape;
    for (int64_t size : t.sizes())
        shape << size;
    return shape;
}

InputImage sized(int64_t h0, int64_t w0, int64_t h, int64_t w) {
    InputImage image;
    image.originalHeight = h0;
    image.originalWidth = w0;
    image.height = h;
    image.width = w;
    return image;
}

} // namespace

Q_DECLARE_METATYPE(at::ScalarType)
Q_DECLARE_METATYPE(Stats)

class TestImaging : public QObject {
    Q_OBJECT

private Q_SLOTS:
    // A pure-red pixel, written by OpenCV as BGR (0, 0, 255), is channel 0 of the
    // tensor, or channel 2 for a BGR model; `rgb` is RGB either way.
    void channelOrder_data() {
        QTest::addColumn<bool>("bgr");
        QTest::addColumn<int>("redChannel");
        QTest::newRow("rgb model") << false << 0;
        QTest::newRow("bgr model") << true << 2;
    }
    void channelOrder() {
        QFETCH(bool, bgr);
        QFETCH(int, redChannel);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = pathIn(dir, "red.png");
        QVERIFY(cv::imwrite(path, cv::Mat(3, 4, CV_8UC3, cv::Scalar(0, 0, 255))));

        Normalization norm;
        norm.bgr = bgr;
        const InputImage image = loadImage(path, std::nullopt, norm);
        QCOMPARE(shapeOf(image.tensor), (QList<qint64>{1, 3, 3, 4}));
        for (int c = 0; c < 3; ++c) {
            const int s = bgr ? 2 - c : c; // the RGB channel tensor channel c shows
            const float want = expectedValue(c == redChannel ? 255 : 0, 255.0, s, norm);
            QVERIFY2(at::equal(image.tensor[0][c], at::full({3, 4}, want, at::kFloat)),
                     qPrintable(QStringLiteral("channel %1").arg(c)));
        }
        const at::Tensor red = at::tensor({255, 0, 0}, at::kByte).expand({3, 4, 3});
        COMPARE_TENSORS(image.rgb, red);
    }

    // The other direction, checked with OpenCV: writeImage takes RGB.
    void writeImageTakesRgb() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = pathIn(dir, "red.png");
        writeImage(path, at::tensor({255, 0, 0}, at::kByte).expand({2, 5, 3}));
        const cv::Mat read = cv::imread(path, cv::IMREAD_UNCHANGED);
        QCOMPARE(read.type(), CV_8UC3);
        QCOMPARE(read.at<cv::Vec3b>(1, 4), cv::Vec3b(0, 0, 255)); // OpenCV's BGR
    }

    // Every value 0..255 in every channel, several normalisations: exactly
    // float((v / 255 - mean) / std), for the file and the in-memory path alike.
    void normalisationArithmetic_data() {
        QTest::addColumn<Stats>("mean");
        QTest::addColumn<Stats>("stdDev");
        QTest::addColumn<bool>("bgr");
        QTest::newRow("imagenet") << Stats{0.485, 0.456, 0.406} << Stats{0.229, 0.224, 0.225} << false;
        QTest::newRow("imagenet bgr") << Stats{0.485, 0.456, 0.406} << Stats{0.229, 0.224, 0.225} << true;
        QTest::newRow("half") << Stats{0.5, 0.5, 0.5} << Stats{0.5, 0.5, 0.5} << false;
        QTest::newRow("identity") << Stats{0, 0, 0} << Stats{1, 1, 1} << false;
        QTest::newRow("distinct, negative std, bgr") << Stats{0.1, 0.7, -0.3} << Stats{0.3, -2.0, 0.07} << true;
    }
    void normalisationArithmetic() {
        QFETCH(Stats, mean);
        QFETCH(Stats, stdDev);
        QFETCH(bool, bgr);
        const Normalization norm{mean, stdDev, bgr};
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = pathIn(dir, "pattern.png");
        const at::Tensor pixels = patternImage(16, 24);
        writeImage(path, pixels);

        const InputImage image = loadImage(path, std::nullopt, norm);
        QCOMPARE(image.height, 16);
        QCOMPARE(image.width, 24);
        QCOMPARE(image.originalHeight, 16);
        QCOMPARE(image.originalWidth, 24);
        QCOMPARE(image.tensor.scalar_type(), at::kFloat);
        QVERIFY(image.tensor.is_contiguous());
        QVERIFY(image.tensor.device().is_cpu());
        COMPARE_TENSORS(image.tensor, expectedTensor(pixels, 255.0, norm));
        COMPARE_TENSORS(image.rgb, pixels);

        const InputImage fromMemory = fromRgb(pixels, std::nullopt, norm);
        COMPARE_TENSORS(fromMemory.tensor, image.tensor);
        COMPARE_TENSORS(fromMemory.rgb, pixels);
    }

    // Resizing to an input size: the shape, the original kept for display, and a
    // constant image stays constant, whichever interpolation is used.
    void resize_data() {
        QTest::addColumn<int>("h0");
        QTest::addColumn<int>("w0");
        QTest::addColumn<int>("h");
        QTest::addColumn<int>("w");
        QTest::newRow("shrink (area)") << 40 << 60 << 20 << 30;
        QTest::newRow("shrink, odd factor") << 37 << 53 << 11 << 7;
        QTest::newRow("enlarge (linear)") << 10 << 20 << 25 << 35;
        QTest::newRow("one side grows") << 30 << 10 << 15 << 40;
        QTest::newRow("same size") << 12 << 9 << 12 << 9;
        QTest::newRow("to 1x1") << 9 << 13 << 1 << 1;
        QTest::newRow("from 1x1") << 1 << 1 << 5 << 4;
    }
    void resize() {
        QFETCH(int, h0);
        QFETCH(int, w0);
        QFETCH(int, h);
        QFETCH(int, w);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = pathIn(dir, "constant.png");
        const std::array<int, 3> colour{10, 128, 250};
        const at::Tensor pixels = at::tensor({colour[0], colour[1], colour[2]}, at::kByte).expand({h0, w0, 3});
        writeImage(path, pixels);

        const Normalization norm;
        const InputImage image = loadImage(path, InputSize{h, w}, norm);
        QCOMPARE(shapeOf(image.tensor), (QList<qint64>{1, 3, h, w}));
        QCOMPARE(image.height, h);
        QCOMPARE(image.width, w);
        QCOMPARE(image.originalHeight, h0);
        QCOMPARE(image.originalWidth, w0);
        COMPARE_TENSORS(image.rgb, pixels);
        for (int c = 0; c < 3; ++c) {
            const float want = expectedValue(colour[c], 255.0, c, norm);
            const double worst = (image.tensor[0][c] - want).abs().max().item<double>();
            QVERIFY2(worst < 1e-5, qPrintable(QStringLiteral("channel %1 differs by %2").arg(c).arg(worst)));
        }
        COMPARE_TENSORS(fromRgb(pixels, InputSize{h, w}, norm).tensor, image.tensor);
    }

    // Shrinking averages every source pixel (INTER_AREA): 8 columns -> 2, each
    // output the mean of four columns 0, 0, 0, 255. Bilinear would read only two
    // of them and give 0.
    void shrinkingAverages() {
        const at::Tensor row = at::tensor({0, 0, 0, 255, 0, 0, 0, 255}, at::kByte);
        const at::Tensor pixels = row.reshape({1, 8, 1}).expand({1, 8, 3}).contiguous();
        const Normalization norm{{0, 0, 0}, {1, 1, 1}, false};
        const InputImage image = fromRgb(pixels, InputSize{1, 2}, norm);
        const double worst = (image.tensor - 0.25).abs().max().item<double>();
        QVERIFY2(worst < 1e-6, qPrintable(QStringLiteral("differs from 0.25 by %1").arg(worst)));
    }

    // Grey, alpha, 16-bit, float and other containers: the decoded RGB values,
    // scaled by the bit depth, and the 8-bit display copy.
    void pixelFormats_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<int>("cvType");
        QTest::addColumn<QList<double>>("stored");  // channel values as OpenCV stores them (B, G, R, A)
        QTest::addColumn<QList<double>>("rgb");     // expected R, G, B before scaling
        QTest::addColumn<double>("divisor");
        QTest::addColumn<QList<int>>("display"); // expected `rgb` (uint8)
        QTest::newRow("grey 8-bit png") << "g8.png" << CV_8UC1 << QList<double>{77} << QList<double>{77, 77, 77}
                                        << 255.0 << QList<int>{77, 77, 77};
        QTest::newRow("rgba 8-bit png, alpha 0")
            << "rgba8.png" << CV_8UC4 << QList<double>{30, 60, 90, 0} << QList<double>{90, 60, 30} << 255.0
            << QList<int>{90, 60, 30};
        QTest::newRow("rgba 8-bit png, alpha 128")
            << "rgba8b.png" << CV_8UC4 << QList<double>{200, 1, 254, 128} << QList<double>{254, 1, 200} << 255.0
            << QList<int>{254, 1, 200};
        QTest::newRow("rgb 16-bit png")
            << "rgb16.png" << CV_16UC3 << QList<double>{1000, 30000, 65535} << QList<double>{65535, 30000, 1000}
            << 65535.0 << QList<int>{255, 117, 4};
        QTest::newRow("grey 16-bit png") << "g16.png" << CV_16UC1 << QList<double>{40000}
                                         << QList<double>{40000, 40000, 40000} << 65535.0 << QList<int>{156, 156, 156};
        QTest::newRow("rgba 16-bit png")
            << "rgba16.png" << CV_16UC4 << QList<double>{100, 200, 300, 65535} << QList<double>{300, 200, 100}
            << 65535.0 << QList<int>{1, 1, 0};
        QTest::newRow("rgb 8-bit bmp") << "rgb8.bmp" << CV_8UC3 << QList<double>{3, 2, 1} << QList<double>{1, 2, 3}
                                       << 255.0 << QList<int>{1, 2, 3};
        QTest::newRow("rgb 8-bit tiff") << "rgb8.tif" << CV_8UC3 << QList<double>{11, 22, 33}
                                        << QList<double>{33, 22, 11} << 255.0 << QList<int>{33, 22, 11};
        QTest::newRow("rgb 16-bit tiff")
            << "rgb16.tiff" << CV_16UC3 << QList<double>{0, 65535, 257} << QList<double>{257, 65535, 0} << 65535.0
            << QList<int>{1, 255, 0};
        QTest::newRow("rgb float32 tiff")
            << "rgbf.tif" << CV_32FC3 << QList<double>{1.0, double(0.2f), 0.25} << QList<double>{0.25, double(0.2f), 1.0}
            << 1.0 << QList<int>{64, 51, 255};
    }
    void pixelFormats() {
        QFETCH(QString, file);
        QFETCH(int, cvType);
        QFETCH(QList<double>, stored);
        QFETCH(QList<double>, rgb);
        QFETCH(double, divisor);
        QFETCH(QList<int>, display);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = pathIn(dir, file);
        cv::Scalar value;
        for (int i = 0; i < stored.size(); ++i)
            value[i] = stored[i];
        // Uncompressed TIFF: OpenCV's default for float RGB is the lossy SGILOG (LogLuv).
        const std::vector<int> params{cv::IMWRITE_TIFF_COMPRESSION, 1};
        QVERIFY(cv::imwrite(path, cv::Mat(3, 5, cvType, value), params));

        const Normalization norm;
        const InputImage image = loadImage(path, std::nullopt, norm);
        QCOMPARE(shapeOf(image.tensor), (QList<qint64>{1, 3, 3, 5}));
        for (int c = 0; c < 3; ++c) {
            const float want = expectedValue(rgb[c], divisor, c, norm);
            QVERIFY2(at::equal(image.tensor[0][c], at::full({3, 5}, want, at::kFloat)),
                     qPrintable(QStringLiteral("channel %1: got %2, expected %3")
                                    .arg(c)
                                    .arg(image.tensor[0][c][0][0].item<float>(), 0, 'g', 9)
                                    .arg(want, 0, 'g', 9)));
        }
        const at::Tensor wantDisplay = at::tensor({display[0], display[1], display[2]}, at::kByte).expand({3, 5, 3});
        COMPARE_TENSORS(image.rgb, wantDisplay);
    }

    // originalToInput: pixel centres, edges to edges; inputToOriginal inverts it.
    void coordinateMapping_data() {
        QTest::addColumn<int>("h0");
        QTest::addColumn<int>("w0");
        QTest::addColumn<int>("h");
        QTest::addColumn<int>("w");
        QTest::addColumn<double>("x");
        QTest::addColumn<double>("y");
        QTest::addColumn<double>("xIn");
        QTest::addColumn<double>("yIn");
        QTest::newRow("same size") << 10 << 20 << 10 << 20 << 3.0 << 7.0 << 3.0 << 7.0;
        QTest::newRow("halve") << 100 << 100 << 50 << 50 << 10.0 << 0.0 << 4.75 << -0.25;
        QTest::newRow("double") << 8 << 8 << 16 << 16 << 0.0 << 7.0 << 0.5 << 14.5;
        QTest::newRow("top-left edge") << 480 << 640 << 224 << 224 << -0.5 << -0.5 << -0.5 << -0.5;
        QTest::newRow("bottom-right edge") << 480 << 640 << 224 << 224 << 639.5 << 479.5 << 223.5 << 223.5;
        QTest::newRow("x and y scale differently") << 30 << 40 << 60 << 10 << 19.5 << 14.5 << 4.5 << 29.5;
        QTest::newRow("fractional") << 7 << 3 << 5 << 11 << 1.25 << 2.75 << 5.916666666666667 << 1.8214285714285716;
    }
    void coordinateMapping() {
        QFETCH(int, h0);
        QFETCH(int, w0);
        QFETCH(int, h);
        QFETCH(int, w);
        QFETCH(double, x);
        QFETCH(double, y);
        QFETCH(double, xIn);
        QFETCH(double, yIn);
        const InputImage image = sized(h0, w0, h, w);
        const auto [gotX, gotY] = originalToInput(image, x, y);
        QVERIFY2(std::abs(gotX - xIn) < 1e-12, qPrintable(QString::number(gotX, 'g', 17)));
        QVERIFY2(std::abs(gotY - yIn) < 1e-12, qPrintable(QString::number(gotY, 'g', 17)));
        const auto [backX, backY] = inputToOriginal(image, gotX, gotY);
        QVERIFY(std::abs(backX - x) < 1e-9);
        QVERIFY(std::abs(backY - y) < 1e-9);
        // And the other way round, from the input side.
        const auto [origX, origY] = inputToOriginal(image, xIn, yIn);
        const auto [againX, againY] = originalToInput(image, origX, origY);
        QVERIFY(std::abs(againX - xIn) < 1e-9);
        QVERIFY(std::abs(againY - yIn) < 1e-9);
    }

    void coordinateMappingFromLoadedImage() {
        const InputImage image = fromRgb(patternImage(48, 64), InputSize{24, 16});
        const auto [x, y] = originalToInput(image, 63.5, 47.5); // bottom-right corner
        QCOMPARE(x, 15.5);
        QCOMPARE(y, 23.5);
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, originalToInput(InputImage{}, 0, 0));
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, inputToOriginal(InputImage{}, 0, 0));
    }

    // Class maps of every integer dtype, written and read back unchanged as int64.
    void maskRoundTrip_data() {
        QTest::addColumn<at::ScalarType>("dtype");
        QTest::addColumn<QString>("file");
        QTest::newRow("int64 png") << at::kLong << "mask.png";
        QTest::newRow("int32 png") << at::kInt << "mask.png";
        QTest::newRow("int16 png") << at::kShort << "mask.png";
        QTest::newRow("uint8 png") << at::kByte << "mask.png";
        QTest::newRow("bool png") << at::kBool << "mask.png";
        QTest::newRow("int64 bmp") << at::kLong << "mask.bmp";
        QTest::newRow("int64 tiff") << at::kLong << "mask.TIFF";
    }
    void maskRoundTrip() {
        QFETCH(at::ScalarType, dtype);
        QFETCH(QString, file);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = pathIn(dir, file);
        at::Tensor ids = (at::arange(19 * 23, at::kLong).reshape({19, 23}) * 7) % 256; // 0..255, 0 and 255 included
        if (dtype == at::kBool)
            ids = ids % 2;
        const at::Tensor written = ids.to(dtype);
        writeImage(path, written);
        const at::Tensor read = readMask(path);
        QCOMPARE(read.scalar_type(), at::kLong);
        COMPARE_TENSORS(read, ids);
        QVERIFY(temporaryFiles(dir.path()).isEmpty());
    }

    // 16-bit grey files keep ids above 255; grey stored as RGB reads as grey.
    void readMaskFormats() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string wide = pathIn(dir, "wide.png");
        cv::Mat ids16(2, 3, CV_16UC1);
        const uint16_t values[] = {0, 1, 255, 256, 40000, 65535};
        for (int i = 0; i < 6; ++i)
            ids16.at<uint16_t>(i / 3, i % 3) = values[i];
        QVERIFY(cv::imwrite(wide, ids16));
        COMPARE_TENSORS(readMask(wide), at::tensor({0, 1, 255, 256, 40000, 65535}, at::kLong).reshape({2, 3}));

        const std::string greyAsRgb = pathIn(dir, "grey-as-rgb.png");
        const at::Tensor grey = at::arange(12, at::kByte).reshape({3, 4});
        writeImage(greyAsRgb, grey.unsqueeze(2).expand({3, 4, 3}));
        COMPARE_TENSORS(readMask(greyAsRgb), grey.to(at::kLong));

        const std::string colour = pathIn(dir, "colour.png");
        writeImage(colour, patternImage(3, 4));
        QCOMPARE(runtimeErrorOf([&] { readMask(colour); }),
                 QString::fromStdString(colour + ": is a colour image, not a class map (grey values as ids)"));
    }

    // RGB images round-trip exactly through PNG, from non-contiguous tensors too;
    // JPEG writes something of the right size; an existing file is replaced.
    void rgbRoundTrip() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string png = pathIn(dir, "image.png");
        const at::Tensor pixels = patternImage(20, 30);
        writeImage(png, pixels);
        COMPARE_TENSORS(loadImage(png).rgb, pixels);

        const at::Tensor transposed = pixels.transpose(0, 1); // [30, 20, 3], not contiguous
        QVERIFY(!transposed.is_contiguous());
        writeImage(png, transposed); // replaces the file
        COMPARE_TENSORS(loadImage(png).rgb, transposed.contiguous());

        const std::string jpg = pathIn(dir, "image.JPG");
        writeImage(jpg, pixels);
        const InputImage fromJpeg = loadImage(jpg);
        QCOMPARE(shapeOf(fromJpeg.rgb), shapeOf(pixels));
        QVERIFY(temporaryFiles(dir.path()).isEmpty());
    }

    // writeImage must not modify its argument (it swaps RGB to BGR internally).
    void writeImageLeavesInputAlone() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const at::Tensor pixels = patternImage(4, 5);
        const at::Tensor before = pixels.clone();
        writeImage(pathIn(dir, "x.png"), pixels);
        COMPARE_TENSORS(pixels, before);
    }

    // fromRgb copies: later changes to the caller's tensor do not reach the result.
    void fromRgbOwnsItsData() {
        at::Tensor pixels = patternImage(6, 7);
        const at::Tensor before = pixels.clone();
        const InputImage image = fromRgb(pixels);
        const at::Tensor tensorBefore = image.tensor.clone();
        pixels.fill_(0);
        COMPARE_TENSORS(image.rgb, before);
        COMPARE_TENSORS(image.tensor, tensorBefore);

        // Any strides are accepted.
        const at::Tensor wide = patternImage(7, 6).transpose(0, 1);
        COMPARE_TENSORS(fromRgb(wide).rgb, wide.contiguous());
    }

    void badArguments() {
        const at::Tensor good = patternImage(4, 4);
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, fromRgb(at::Tensor()));
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, fromRgb(good.to(at::kFloat)));
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, fromRgb(good.select(2, 0)));
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, fromRgb(at::zeros({4, 4, 4}, at::kByte)));
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, fromRgb(at::zeros({0, 4, 3}, at::kByte)));
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, fromRgb(good, InputSize{0, 4}));
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, fromRgb(good, InputSize{4, -1}));
        Normalization zeroStd;
        zeroStd.std[1] = 0;
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, fromRgb(good, std::nullopt, zeroStd));
    }

    // Reading: each failure OpenCV would report as "empty" gets its own message,
    // for images and masks alike.
    void readErrors_data() {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("problem");
        QTest::newRow("missing file") << "missing" << "does not exist";
        QTest::newRow("zero-byte file") << "empty" << "is empty (0 bytes)";
        QTest::newRow("text file named .png") << "text" << "is not an image OpenCV can read";
        QTest::newRow("truncated png") << "truncated" << "is not an image OpenCV can read";
        QTest::newRow("directory") << "directory" << "is a directory, not an image";
    }
    void readErrors() {
        QFETCH(QString, kind);
        QFETCH(QString, problem);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString file = dir.filePath(QStringLiteral("bad.png"));
        if (kind == QLatin1String("empty")) {
            QVERIFY(writeEmptyFile(file));
        } else if (kind == QLatin1String("text")) {
            QVERIFY(writeTextFile(file, "this is not an image\n"));
        } else if (kind == QLatin1String("truncated")) {
            writeImage(file.toStdString(), patternImage(8, 8));
            QFile f(file);
            QVERIFY(f.open(QIODevice::ReadOnly));
            const QByteArray head = f.read(20); // the signature, not a whole header
            f.close();
            QVERIFY(writeTextFile(file, head));
        } else if (kind == QLatin1String("directory")) {
            QVERIFY(QDir(dir.path()).mkdir(QStringLiteral("bad.png")));
        }
        const QString expected = file + QStringLiteral(": ") + problem;
        QCOMPARE(runtimeErrorOf([&] { loadImage(file.toStdString()); }), expected);
        QCOMPARE(runtimeErrorOf([&] { readMask(file.toStdString()); }), expected);
    }

    // Writing: "<path>: <problem>", and no temporary file left behind.
    void writeErrors_data() {
        QTest::addColumn<QString>("name");       // relative to the temporary folder
        QTest::addColumn<QString>("contentKind"); // what to write
        QTest::addColumn<QString>("problem");     // a fragment of the message
        QTest::newRow("folder is a file") << "plain.txt/out.png" << "rgb" << "is not a folder";
        QTest::newRow("folder does not exist") << "no/such/folder/out.png" << "rgb" << "does not exist";
        QTest::newRow("target is a directory") << "sub.png" << "rgb" << "is a directory";
        QTest::newRow("read-only folder") << "readonly/out.png" << "rgb" << "cannot create a file";
        QTest::newRow("unknown extension") << "out.xyz" << "rgb" << "unsupported extension";
        QTest::newRow("no extension") << "out" << "rgb" << "unsupported extension";
        QTest::newRow("float image") << "out.png" << "float" << "expected [H, W, 3] uint8 RGB";
        QTest::newRow("four channels") << "out.png" << "rgba" << "expected [H, W, 3] uint8 RGB";
        QTest::newRow("empty image") << "out.png" << "empty" << "cannot write an image of shape";
        QTest::newRow("class id 256") << "out.png" << "id256" << "values must lie in 0..255";
        QTest::newRow("negative class id") << "out.png" << "negative" << "values must lie in 0..255";
        QTest::newRow("class map as jpeg") << "out.jpg" << "ids" << "needs a lossless format";
    }
    void writeErrors() {
        QFETCH(QString, name);
        QFETCH(QString, contentKind);
        QFETCH(QString, problem);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        QVERIFY(writeTextFile(dir.filePath(QStringLiteral("plain.txt")), "text"));
        QVERIFY(QDir(dir.path()).mkdir(QStringLiteral("sub.png")));
        if (name.startsWith(QLatin1String("readonly/"))) {
            const QString folder = dir.filePath(QStringLiteral("readonly"));
            QVERIFY(QDir(dir.path()).mkdir(QStringLiteral("readonly")));
            QVERIFY(QFile::setPermissions(folder, QFile::ReadOwner | QFile::ExeOwner));
            const bool stillWritable = writeEmptyFile(folder + QStringLiteral("/probe"));
            if (stillWritable) {
                QFile::setPermissions(folder, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
                QSKIP("permissions are not enforced for this user (root?)");
            }
        }
        at::Tensor content;
        if (contentKind == QLatin1String("rgb"))
            content = patternImage(4, 4);
        else if (contentKind == QLatin1String("float"))
            content = at::zeros({4, 4, 3}, at::kFloat);
        else if (contentKind == QLatin1String("rgba"))
            content = at::zeros({4, 4, 4}, at::kByte);
        else if (contentKind == QLatin1String("empty"))
            content = at::zeros({0, 4, 3}, at::kByte);
        else if (contentKind == QLatin1String("id256"))
            content = at::full({4, 4}, 256, at::kLong);
        else if (contentKind == QLatin1String("negative"))
            content = at::full({4, 4}, -1, at::kInt);
        else
            content = at::ones({4, 4}, at::kLong);

        const QString path = dir.filePath(name);
        const QString message = runtimeErrorOf([&] { writeImage(path.toStdString(), content); });
        QVERIFY2(message.startsWith(path + QStringLiteral(": ")), qPrintable(message));
        QVERIFY2(message.contains(problem), qPrintable(message));
        QVERIFY(temporaryFiles(dir.path()).isEmpty());
        QFile::setPermissions(dir.filePath(QStringLiteral("readonly")),
                              QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
    }

    // A failed write leaves the existing file as it was.
    void failedWriteKeepsOldFile() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = pathIn(dir, "keep.png");
        const at::Tensor ids = at::arange(6, at::kLong).reshape({2, 3});
        writeImage(path, ids);
        QVERIFY(!runtimeErrorOf([&] { writeImage(path, ids + 300); }).isEmpty());
        COMPARE_TENSORS(readMask(path), ids);
        QVERIFY(temporaryFiles(dir.path()).isEmpty());
    }

    // RepLKNet's protocol prepares images as torchvision does on PIL images: Pillow's bicubic
    // resize must be reproduced bit for bit. tests/python/make_fixture.py wrote Pillow's own
    // results (pil_bicubic_HxW.png) of fixture_image.png (64 x 80): shrinking, growing, both.
    void bicubicLikePil_data() {
        QTest::addColumn<int>("height");
        QTest::addColumn<int>("width");
        QTest::newRow("shrink 32x40") << 32 << 40;
        QTest::newRow("shrink by 2.7") << 23 << 29;
        QTest::newRow("grow 1024x1024") << 1024 << 1024;
        QTest::newRow("rows grow, columns shrink") << 131 << 50;
        QTest::newRow("columns only") << 64 << 57;
    }
    void bicubicLikePil() {
        QFETCH(int, height);
        QFETCH(int, width);
        const std::string dir = DEFORMSCOPE_MODEL_FIXTURE_DIR;
        const at::Tensor source = loadImage(dir + "/fixture_image.png").rgb;
        const at::Tensor pil =
            loadImage(dir + "/pil_bicubic_" + std::to_string(height) + "x" + std::to_string(width) + ".png").rgb;
        const at::Tensor ours = resizeBicubicLikePil(source, {height, width});
        QCOMPARE(ours.sizes().vec(), pil.sizes().vec());
        const int64_t differing = ours.ne(pil).sum().item<int64_t>();
        QVERIFY2(differing == 0, qPrintable(QString("%1 of %2 values differ from Pillow's").arg(differing).arg(pil.numel())));
        // And the tensor torchvision's ToTensor + Normalize make of it: float32 (v / 255 - mean) / std.
        const at::Tensor t = toTensorLikeTorchvision(ours, Normalization{});
        QCOMPARE(t.sizes().vec(), (std::vector<int64_t>{1, 3, height, width}));
        const float v = float(ours[0][0][1].item<uint8_t>());
        QCOMPARE(t[0][1][0][0].item<float>(), (v / 255.0f - 0.456f) / 0.224f);
        bool refused = false;
        try {
            resizeBicubicLikePil(source, {0, 4});
        } catch (const std::invalid_argument&) {
            refused = true;
        }
        QVERIFY(refused);
    }
};

QTEST_GUILESS_MAIN(TestImaging)
#include "tst_imaging.moc"
