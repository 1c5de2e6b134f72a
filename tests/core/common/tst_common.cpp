// Tests of core_common and core_npy: the analysis request (its text and JSON
// forms, validation, old session files), JSON files, the atomic writer, and
// .npy files (every dtype and shape, strides, header layout, atomic writes, and
// files that must be refused).
//
// Escaped quotes are spelled in ordinary string literals: moc 6.4 mis-lexes a
// raw string holding \" and then silently generates nothing for the class.
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "core/common/npy_header.h"
#include "core/common/request.h"

#include <ATen/ATen.h>

#include <QtTest/QtTest>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using deformscope::common::AnalysisRequest;
using deformscope::common::Json;
using deformscope::common::readNpy;
using deformscope::common::RequestField;
using deformscope::common::requestFromJson;
using deformscope::common::writeNpy;

using Shape = std::vector<int64_t>;
Q_DECLARE_METATYPE(at::ScalarType)
Q_DECLARE_METATYPE(Shape)

namespace {

// Reads `words` with the request field of command-line option `option` into
// `r`: what the field says is expected ("" when they were read).
QString readField(const QString& option, const QStringList& words, AnalysisRequest& r) {
    std::vector<std::string> w;
    for (const QString& x : words)
        w.push_back(x.toStdString());
    for (const RequestField& f : deformscope::common::requestFields())
        if (f.option == option.toStdString())
            return QString::fromStdString(f.read(r, w));
    return QStringLiteral("<no field for ") + option + QLatin1Char('>');
}

// The message of the std::runtime_error `f` throws.
template <typename F>
QString runtimeErrorOf(F&& f) {
    try {
        f();
    } catch (const std::runtime_error& e) {
        return QString::fromUtf8(e.what());
    }
    return QStringLiteral("<no std::runtime_error thrown>");
}

QString qs(const std::string& s) {
    return QString::fromStdString(s);
}

QByteArray bytesOf(const std::string& s) {
    return QByteArray(s.data(), static_cast<qsizetype>(s.size()));
}

bool sameBits(const double a, const double b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

// Distinct, deterministic values of every dtype, negatives included where the
// dtype has them.
at::Tensor sampleTensor(at::ScalarType type, const Shape& shape) {
    const int64_t n = c10::multiply_integers(shape);
    at::Tensor base = at::arange(n, at::kDouble);
    at::Tensor values;
    switch (type) {
    case at::kBool: values = base.remainder(3).eq(0); break;
    case at::kByte: values = base.mul(37).remainder(256); break;
    case at::kChar: values = base.mul(37).remainder(256).sub(128); break;
    case at::kShort: values = base.mul(7919).remainder(65536).sub(32768); break;
    case at::kInt: values = base.mul(104729).sub(2000000000); break;
    case at::kLong: values = base.mul(1e12).sub(9e15); break;
    default: values = base.mul(0.37).sub(5).sin().mul(100); break;
    }
    return values.to(type).reshape(shape);
}

// Same dtype, shape and bytes (NaN payloads and -0.0 included).
bool identical(const at::Tensor& a, const at::Tensor& b) {
    if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes())
        return false;
    const at::Tensor ca = a.cpu().contiguous(), cb = b.cpu().contiguous();
    return ca.nbytes() == 0 || std::memcmp(ca.const_data_ptr(), cb.const_data_ptr(), ca.nbytes()) == 0;
}

QByteArray readFile(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

void writeFile(const QString& path, const QByteArray& bytes) {
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
    QCOMPARE(f.write(bytes), bytes.size());
}

// A hand-made .npy file: magic, version, header length, the dict padded to 64
// bytes, then `data`.
QByteArray npyFile(const QByteArray& dict, const QByteArray& data, char major = 1) {
    const int lengthBytes = major == 1 ? 2 : 4;
    QByteArray header = dict;
    const qsizetype unpadded = 6 + 2 + lengthBytes + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header.append('\n');
    QByteArray out("\x93NUMPY", 6);
    out.append(major).append('\0');
    for (int i = 0; i < lengthBytes; ++i)
        out.append(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
    return out + header + data;
}

QByteArray floatBytes(std::initializer_list<float> values) {
    QByteArray out;
    for (const float v : values)
        out.append(reinterpret_cast<const char*>(&v), sizeof v);
    return out;
}

} // namespace

class TestCommon : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { QVERIFY(dir_.isValid()); }

    // ---- the analysis request ------------------------------------------------------

    // The command-line text of every field reads into the typed value and back.
    void requestFieldsRead_data() {
        QTest::addColumn<QString>("option");
        QTest::addColumn<QStringList>("words");
        QTest::addColumn<QString>("json"); // the field's JSON after reading, compact
        QTest::newRow("what") << "--what" << QStringList{"erf,kernel"}
                              << R"({"sampling":false,"erf":true,"saliency":false,"kernel":"required"})";
        QTest::newRow("layer") << "--layer" << QStringList{"block3"} << R"({"layer":"block3"})";
        QTest::newRow("pixel") << "--pixel" << QStringList{"58,46.5"} << R"({"at":{"x":58.0,"y":46.5,"grid":"original"}})";
        QTest::newRow("response") << "--response" << QStringList{"channel:12"} << R"({"response":"channel:12"})";
        QTest::newRow("levels") << "--levels" << QStringList{"2"} << R"({"levels":2})";
        QTest::newRow("reading") << "--reading" << QStringList{"nearest"} << R"({"offset_reading":"nearest"})";
        QTest::newRow("signed") << "--signed" << QStringList{} << R"({"signed_erf":true})";
        QTest::newRow("epsilon") << "--epsilon" << QStringList{"0.05"} << R"({"epsilon":0.05})";
        QTest::newRow("baseline") << "--baseline" << QStringList{"blur:4"} << R"({"baseline":"blur:4"})";
        QTest::newRow("forwards") << "--forwards" << QStringList{"800"} << R"({"forwards":800})";
        QTest::newRow("batch") << "--batch" << QStringList{"16"} << R"({"batch":16})";
        QTest::newRow("min cell") << "--min-cell" << QStringList{"3"} << R"({"min_cell":3})";
        QTest::newRow("object box") << "--object" << QStringList{"1,2,30,40"}
                                    << R"({"object":{"box":[1.0,2.0,30.0,40.0],"grid":"original"}})";
        QTest::newRow("object mask") << "--object-mask" << QStringList{"m.png"} << R"({"object":{"mask":"m.png"}})";
        QTest::newRow("roi") << "--roi" << QStringList{"2,32,64,92"}
                             << R"({"roi":{"box":[2.0,32.0,64.0,92.0],"grid":"original"}})";
        QTest::newRow("bin") << "--bin" << QStringList{"3,1"} << R"({"bin":[3,1]})";
        QTest::newRow("no object") << "--no-object" << QStringList{} << R"({"object":"none"})";
        QTest::newRow("input size") << "--input-size" << QStringList{"96", "128"} << R"({"input_size":[96,128]})";
        QTest::newRow("device") << "--device" << QStringList{"cuda:1"} << R"({"device":"cuda:1"})";
        QTest::newRow("no figures") << "--no-figures" << QStringList{} << R"({"figures":false})";
        QTest::newRow("colormap") << "--colormap" << QStringList{"viridis"} << R"({"colormap":"viridis"})";
        QTest::newRow("log") << "--log" << QStringList{} << R"({"log_scale":true})";
        QTest::newRow("overlay") << "--overlay" << QStringList{"offsets,modulation,erf"}
                                 << R"({"overlays":"offsets,modulation,erf"})";
    }
    void requestFieldsRead() {
        QFETCH(QString, option);
        QFETCH(QStringList, words);
        QFETCH(QString, json);
        AnalysisRequest r;
        QCOMPARE(readField(option, words, r), QString());
        QCOMPARE(r.validate(), std::vector<std::string>{});
        const Json all = toJson(r);
        const Json expected = Json::parse(json.toStdString());
        for (const auto& [key, value] : expected.items())
            QCOMPARE(qs(all.at(key).dump()), qs(value.dump()));
        // Its JSON reads back to the same request.
        std::vector<std::string> problems;
        QVERIFY(requestFromJson(all, AnalysisRequest{}, problems) == r);
        QVERIFY(problems.empty());
    }

    // Text that is not a value of the field names what is expected.
    void requestFieldsRefuseBadText_data() {
        QTest::addColumn<QString>("option");
        QTest::addColumn<QStringList>("words");
        QTest::addColumn<QString>("expected");
        QTest::newRow("what") << "--what" << QStringList{"erf,cats"} << "a comma-separated list of sampling, erf, saliency, kernel";
        QTest::newRow("pixel") << "--pixel" << QStringList{"1;2"} << "2 comma-separated numbers";
        QTest::newRow("response") << "--response" << QStringList{"sideways"} << "sum, channel:N or class:K";
        QTest::newRow("negative channel") << "--response" << QStringList{"channel:-1"} << "sum, channel:N or class:K";
        QTest::newRow("levels") << "--levels" << QStringList{"two"} << "a whole number from 1 to 8";
        QTest::newRow("reading") << "--reading" << QStringList{"cubic"} << "nearest or bilinear";
        QTest::newRow("baseline") << "--baseline" << QStringList{"blur:-1"} << "zero, blur or blur:SIGMA";
        QTest::newRow("colormap") << "--colormap" << QStringList{"bogus"} << "one of inferno, viridis, magma, plasma, gray, coolwarm";
        QTest::newRow("device") << "--device" << QStringList{"tpu"} << "cpu, cuda or cuda:N";
        QTest::newRow("overlay") << "--overlay" << QStringList{"arrows"} << "sampling, offsets, modulation, erf, saliency";
        QTest::newRow("input size") << "--input-size" << QStringList{"a", "4"} << "two whole numbers H W";
    }
    void requestFieldsRefuseBadText() {
        QFETCH(QString, option);
        QFETCH(QStringList, words);
        QFETCH(QString, expected);
        AnalysisRequest r;
        const QString why = readField(option, words, r);
        QVERIFY2(why.contains(expected), qPrintable(why));
        QVERIFY(r == AnalysisRequest{}); // nothing changed
    }

    // validate() returns every problem at once, each naming the option, the value and the range.
    void requestValidateListsEveryProblem() {
        AnalysisRequest r;
        QVERIFY(r.validate().empty());
        r.levels = 9;
        r.epsilon = -0.5;
        r.forwards = 0;
        r.at = deformscope::common::Location{deformscope::common::Grid::Original, std::nan(""), 3};
        r.object.kind = deformscope::common::ObjectRegion::Kind::Box;
        r.object.box = {deformscope::common::Grid::Original, 10, 10, 5, 20};
        r.inputSize = std::array<int64_t, 2>{0, 64};
        const std::vector<std::string> problems = r.validate();
        QCOMPARE(problems.size(), size_t{6});
        QCOMPARE(qs(problems[0]), QStringLiteral("--pixel 'nan,3': expected two finite numbers x,y"));
        QCOMPARE(qs(problems[1]), QStringLiteral("--levels '9': expected a whole number from 1 to 8"));
        QCOMPARE(qs(problems[2]), QStringLiteral("--epsilon '-0.5': expected a number from 0 to 10"));
        QCOMPARE(qs(problems[3]), QStringLiteral("--forwards '0': expected a whole number of masked forwards from 1 to 100000"));
        QCOMPARE(qs(problems[4]), QStringLiteral("--object '10,10,5,20': expected x0,y0,x1,y1 with x1 > x0 and y1 > y0"));
        QCOMPARE(qs(problems[5]), QStringLiteral("--input-size '0 64': expected two whole numbers H W ≥ 1"));
    }

    // The analysis block of a session written before the request existed opens
    // with the same meaning; keys a newer version adds are ignored; bad values are named.
    void requestReadsOldSessionSettings() {
        const Json old = Json::parse(R"({"response": "class:2", "sampling": true, "erf": false, "saliency": true,
            "levels": 4, "offset_reading": "nearest", "signed_erf": true, "epsilon": 0.2, "baseline": "blur:3",
            "forwards": 250.0, "some_future_key": [1, 2]})");
        std::vector<std::string> problems;
        const AnalysisRequest r = requestFromJson(old, AnalysisRequest{}, problems);
        QVERIFY(problems.empty());
        QCOMPARE(r.response.toString(), std::string("class:2"));
        QVERIFY(r.what.sampling && !r.what.erf && r.what.saliency);
        QVERIFY(r.what.kernel == deformscope::common::Analyses::Kernel::IfAvailable);
        QCOMPARE(r.levels, 4);
        QVERIFY(r.reading == deformscope::common::OffsetReading::Nearest);
        QVERIFY(r.signedErf);
        QCOMPARE(r.epsilon, 0.2);
        QCOMPARE(r.baseline.toString(), std::string("blur:3"));
        QCOMPARE(r.forwards, int64_t{250});

        const Json bad = Json::parse(R"({"levels": "many", "epsilon": 0.3, "forwards": 0, "device": 7})");
        const AnalysisRequest partly = requestFromJson(bad, AnalysisRequest{}, problems);
        QCOMPARE(problems.size(), size_t{3});
        QVERIFY2(problems[0].find("levels: expected a whole number from 1 to 8") == 0, problems[0].c_str());
        QVERIFY2(problems[1].find("forwards: --forwards '0': expected a whole number of masked forwards") == 0,
                 problems[1].c_str());
        QVERIFY2(problems[2].find("device: expected cpu, cuda or cuda:N") == 0, problems[2].c_str());
        QCOMPARE(partly.levels, 3); // bad keys keep their defaults, good ones are read
        // A whole number beyond the field's type (tools/fuzz found 5e15 converted to int: undefined).
        std::vector<std::string> overflow;
        const AnalysisRequest big =
            requestFromJson(Json::parse(R"({"levels": 5000000000000000, "batch": 1e300})"), AnalysisRequest{}, overflow);
        QCOMPARE(overflow.size(), size_t{2});
        QVERIFY2(overflow[0].find("levels: expected a whole number from 1 to 8") == 0, overflow[0].c_str());
        QCOMPARE(big.levels, 3);
        QCOMPARE(partly.forwards, int64_t{400});
        QCOMPARE(partly.epsilon, 0.3);
    }

    // The default request's JSON holds every field with its default.
    void requestDefaultJson() {
        const Json j = toJson(AnalysisRequest{});
        QCOMPARE(qs(j.dump()),
                 QStringLiteral(R"({"sampling":true,"erf":true,"saliency":true,"kernel":"if_available","motion":false,)"
                                R"("layer":"","at":null,"roi":null,"bin":null,)"
                                R"("response":"sum","levels":3,"offset_reading":"bilinear","through":"all","signed_erf":false,)"
                                R"("epsilon":0.1,)"
                                R"("baseline":"zero","forwards":400,"batch":0,"min_cell":2,"object":"auto",)"
                                R"("motion_layer":"","motion_alarm_px":50.0,"true_motion":"","propagate":"",)"
                                R"("propagate_truth":"","input_size":null,)"
                                R"("device":"cpu","figures":true,"colormap":"inferno","log_scale":false,)"
                                R"("overlays":"sampling,erf,saliency"})"));
    }

    // ---- JSON files ---------------------------------------------------------------

    void jsonTextIsTheFilesForm() {
        Json j = Json::object({{"b", 1.0}, {"a", std::nan("")}, {"text", std::string("caf\xc3\xa9 \xff")}});
        // Members keep their order, integral doubles stay doubles, NaN is null, bad UTF-8 is replaced.
        QCOMPARE(qs(deformscope::common::jsonText(j)),
                 QStringLiteral("{\n  \"b\": 1.0,\n  \"a\": null,\n  \"text\": \"caf\u00e9 \ufffd\"\n}\n"));
    }

    void jsonFilesRoundTripAndNameTheFile() {
        const std::string path = dir_.filePath("doc.json").toStdString();
        const Json j = Json::object({{"x", Json::array({1, 2.5, "three"})}, {"y", nullptr}});
        deformscope::common::writeJsonFile(path, j);
        QVERIFY(deformscope::common::readJsonFile(path) == j);
        writeFile(dir_.filePath("broken.json"), "{\"x\": [1, 2,\n ]}");
        const QString message = runtimeErrorOf([&] { deformscope::common::readJsonFile(dir_.filePath("broken.json").toStdString()); });
        QVERIFY2(message.startsWith(dir_.filePath("broken.json") + ": parse error at line 2, column 2"), qPrintable(message));
        // A number beyond a double's range is a std::runtime_error naming the source, like a syntax error
        // (tools/fuzz found it escaping as nlohmann's out_of_range).
        const QString overflow = runtimeErrorOf([&] { deformscope::common::parseJson("{\"a\": 1e99999}", "meta.json"); });
        QVERIFY2(overflow.startsWith("meta.json: number overflow"), qPrintable(overflow));
        // The .npy header parser alone (tools/fuzz's npy_header target): shapes and every malformed form.
        const auto h = deformscope::common::parseNpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
        QVERIFY(h.descr == "<f4" && !h.fortranOrder && h.shape == (std::vector<int64_t>{2, 3}));
        for (const char* bad : {"", "{", "{'descr': '<f4'}", "{'descr': '<f4', 'fortran_order': Maybe, 'shape': ()}",
                                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
                                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}"})
            QVERIFY_THROWS_EXCEPTION(std::invalid_argument, deformscope::common::parseNpyHeader(bad));
        QVERIFY(runtimeErrorOf([&] { deformscope::common::readJsonFile(dir_.filePath("none.json").toStdString()); })
                    .endsWith("none.json: cannot be read"));
    }

    // ---- the atomic writer -----------------------------------------------------------

    // Writers of one file never share a temporary: each write lands whole, and nothing is left behind.
    void concurrentWritersNeverMixTheirFiles() {
        const QString path = dir_.filePath("shared.npy");
        std::atomic<int> failures{0};
        auto writer = [&](float value) {
            for (int i = 0; i < 40; ++i) {
                try {
                    writeNpy(path.toStdString(), at::full({256, 256}, value));
                } catch (const std::exception&) {
                    ++failures;
                }
            }
        };
        writeNpy(path.toStdString(), at::zeros({256, 256}));
        std::thread a(writer, 1.0f), b(writer, 2.0f);
        int torn = 0, unreadable = 0;
        for (int i = 0; i < 40; ++i) { // a reader sees one whole file or another, never a mix
            try {
                const at::Tensor t = readNpy(path.toStdString());
                torn += t.numel() != 256 * 256 || !t.eq(t.flatten()[0]).all().item<bool>();
            } catch (const std::exception&) {
                ++unreadable;
            }
        }
        a.join();
        b.join();
        QCOMPARE(torn, 0);
        QCOMPARE(unreadable, 0);
        QCOMPARE(failures.load(), 0);
        QCOMPARE(leftovers(), QStringList());
    }

    // ---- .npy -------------------------------------------------------------------

    // Every dtype in 0-d, 1-d, 3-d and empty shapes: written with the right
    // header, aligned, and read back bit for bit.
    void npyRoundTrip_data() {
        QTest::addColumn<at::ScalarType>("type");
        QTest::addColumn<Shape>("shape");
        QTest::addColumn<QByteArray>("descr");
        QTest::addColumn<QByteArray>("shapeText");
        const struct {
            at::ScalarType type;
            const char* name;
            const char* descr;
        } types[] = {
            {at::kFloat, "float32", "<f4"}, {at::kDouble, "float64", "<f8"}, {at::kHalf, "float16", "<f2"},
            {at::kLong, "int64", "<i8"},    {at::kInt, "int32", "<i4"},      {at::kShort, "int16", "<i2"},
            {at::kChar, "int8", "|i1"},     {at::kByte, "uint8", "|u1"},     {at::kBool, "bool", "|b1"},
        };
        const struct {
            Shape shape;
            const char* text;
        } shapes[] = {
            {{}, "()"}, {{5}, "(5,)"}, {{2, 3, 4}, "(2, 3, 4)"}, {{0}, "(0,)"}, {{3, 0, 2}, "(3, 0, 2)"},
            {{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},
             "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2)"},
        };
        for (const auto& t : types)
            for (const auto& s : shapes)
                QTest::addRow("%s %s", t.name, s.text) << t.type << s.shape << QByteArray(t.descr) << QByteArray(s.text);
    }
    void npyRoundTrip() {
        QFETCH(at::ScalarType, type);
        QFETCH(Shape, shape);
        QFETCH(QByteArray, descr);
        QFETCH(QByteArray, shapeText);
        const QString path = dir_.filePath("roundtrip.npy");
        const at::Tensor t = sampleTensor(type, shape);
        writeNpy(path.toStdString(), t);

        const QByteArray bytes = readFile(path);
        QVERIFY(bytes.startsWith(QByteArray("\x93NUMPY\x01\x00", 8)));
        const int headerLength = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
        const int dataOffset = 10 + headerLength;
        QCOMPARE(dataOffset % 64, 0);
        QCOMPARE(bytes[dataOffset - 1], '\n');
        QCOMPARE(qsizetype(dataOffset + t.nbytes()), bytes.size());
        const QByteArray dict = bytes.mid(10, headerLength).trimmed();
        QCOMPARE(dict, "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shapeText + ", }");
        QVERIFY(!QFile::exists(path + ".tmp"));

        const at::Tensor back = readNpy(path.toStdString());
        QVERIFY(back.device().is_cpu());
        QVERIFY(back.is_contiguous());
        QVERIFY(identical(back, t));
    }

    // The exact header NumPy itself writes for a float32 (2, 3) array.
    void npyExactHeader() {
        const QString path = dir_.filePath("header.npy");
        writeNpy(path.toStdString(), at::zeros({2, 3}, at::kFloat));
        const QByteArray bytes = readFile(path);
        const QByteArray dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        const QByteArray expected = QByteArray("\x93NUMPY\x01\x00\x76\x00", 10) + dict +
                                    QByteArray(128 - 10 - dict.size() - 1, ' ') + '\n';
        QCOMPARE(bytes.left(128), expected);
        QCOMPARE(bytes.size(), 128 + 24);
    }

    // Float specials keep their bits: NaN, infinities, -0.0, subnormals.
    void npyFloatSpecials() {
        const float inf = std::numeric_limits<float>::infinity();
        const at::Tensor t = at::tensor({std::nanf(""), inf, -inf, -0.0f, 1e-40f, FLT_MAX});
        const QString path = dir_.filePath("specials.npy");
        writeNpy(path.toStdString(), t);
        QVERIFY(identical(readNpy(path.toStdString()), t));
    }

    void npyBFloat16BecomesFloat32() {
        const at::Tensor t = at::linspace(-3, 3, 7, at::kFloat).to(at::kBFloat16).reshape({7, 1});
        const QString path = dir_.filePath("bf16.npy");
        writeNpy(path.toStdString(), t);
        QVERIFY(readFile(path).contains("'descr': '<f4'"));
        const at::Tensor back = readNpy(path.toStdString());
        QCOMPARE(back.scalar_type(), at::kFloat);
        QVERIFY(identical(back, t.to(at::kFloat)));
    }

    // Strided views are written in logical (C) order.
    void npyNonContiguous_data() {
        QTest::addColumn<QString>("kind");
        QTest::newRow("transposed") << "transposed";
        QTest::newRow("every other column") << "step";
        QTest::newRow("expanded (stride 0)") << "expanded";
        QTest::newRow("permuted 3-d") << "permuted";
        QTest::newRow("channels_last") << "channels_last";
        QTest::newRow("storage offset") << "offset";
    }
    void npyNonContiguous() {
        QFETCH(QString, kind);
        const at::Tensor base = at::arange(120, at::kFloat).reshape({2, 3, 4, 5});
        at::Tensor t;
        if (kind == "transposed") t = base.reshape({12, 10}).t();
        else if (kind == "step") t = base.reshape({12, 10}).slice(1, 1, 10, 2);
        else if (kind == "expanded") t = at::arange(3, at::kLong).expand({4, 3});
        else if (kind == "permuted") t = base[0].permute({2, 0, 1});
        else if (kind == "channels_last") t = base.contiguous(at::MemoryFormat::ChannelsLast);
        else t = base.reshape({120}).slice(0, 7, 20);
        QVERIFY(!t.is_contiguous() || t.storage_offset() != 0 || kind == "channels_last");
        const QString path = dir_.filePath("strided.npy");
        writeNpy(path.toStdString(), t);
        const at::Tensor back = readNpy(path.toStdString());
        QVERIFY(back.is_contiguous());
        QVERIFY(identical(back, t.contiguous()));
    }

    void npyFromCuda() {
        if (!at::hasCUDA())
            QSKIP("no CUDA device");
        const at::Tensor t = at::arange(24, at::kFloat).reshape({2, 3, 4}).to(at::kCUDA).transpose(0, 2);
        const QString path = dir_.filePath("cuda.npy");
        writeNpy(path.toStdString(), t);
        QVERIFY(identical(readNpy(path.toStdString()), t.cpu()));
    }

    // The result owns its memory: it outlives the file and can be written to.
    void npyResultOwnsData() {
        const QString path = dir_.filePath("owned.npy");
        writeNpy(path.toStdString(), at::ones({4}, at::kDouble));
        at::Tensor back = readNpy(path.toStdString());
        QVERIFY(QFile::remove(path));
        back.add_(1);
        QVERIFY(identical(back, at::full({4}, 2.0, at::kDouble)));
    }

    // A finished write replaces the old file; a refused one leaves it as it was
    // and leaves no .tmp behind.
    void npyAtomicReplace() {
        const QString path = dir_.filePath("atomic.npy");
        writeNpy(path.toStdString(), at::ones({3}, at::kInt));
        writeNpy(path.toStdString(), at::zeros({2, 2}, at::kDouble));
        QVERIFY(identical(readNpy(path.toStdString()), at::zeros({2, 2}, at::kDouble)));

        const QString message = runtimeErrorOf([&] { writeNpy(path.toStdString(), at::ones({2}, at::kComplexFloat)); });
        QCOMPARE(message, path + ": cannot write dtype ComplexFloat (supported: float32, float64, float16, "
                                 "bfloat16, int64, int32, int16, int8, uint8, bool)");
        QVERIFY(identical(readNpy(path.toStdString()), at::zeros({2, 2}, at::kDouble)));
        QCOMPARE(leftovers(), QStringList());
    }

    void npyWriteErrors() {
        const QString missingDir = dir_.filePath("no-such-dir/x.npy");
        QCOMPARE(runtimeErrorOf([&] { writeNpy(missingDir.toStdString(), at::ones({2})); }),
                 missingDir + ": folder \"" + dir_.filePath("no-such-dir") + "\" does not exist");

        // A directory in the way: refused before anything is written.
        const QString isDir = dir_.filePath("a-directory");
        QVERIFY(QDir(dir_.path()).mkpath("a-directory/inside"));
        QCOMPARE(runtimeErrorOf([&] { writeNpy(isDir.toStdString(), at::ones({2})); }), isDir + ": is a directory");
        QCOMPARE(leftovers(), QStringList());

        const QString path = dir_.filePath("undefined.npy");
        QCOMPARE(runtimeErrorOf([&] { writeNpy(path.toStdString(), at::Tensor()); }),
                 path + ": cannot write an undefined tensor");
        QVERIFY(!QFile::exists(path));
    }

    // Files written elsewhere that are still valid: other key order, double
    // quotes, version 2.0, Python 2's long suffix, bool bytes other than 0/1.
    void npyReadsOtherWriters() {
        const QString path = dir_.filePath("other.npy");
        writeFile(path, npyFile("{\"shape\": (2L, 1L), 'fortran_order': False, 'descr': '<f4'}",
                                floatBytes({1.5f, -2.0f}), 2));
        QVERIFY(identical(readNpy(path.toStdString()), at::tensor({1.5f, -2.0f}).reshape({2, 1})));

        writeFile(path, npyFile("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", QByteArray("\x00\x02\x01", 3)));
        QVERIFY(identical(readNpy(path.toStdString()), at::tensor({0, 1, 1}).to(at::kBool)));

        // Trailing bytes after the data are ignored, as np.load does.
        writeFile(path, npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", floatBytes({3.f, 4.f})));
        QVERIFY(identical(readNpy(path.toStdString()), at::tensor({3.f})));
    }

    // Files that must be refused, with the file's name and the problem.
    void npyReadErrors_data() {
        QTest::addColumn<QByteArray>("content");
        QTest::addColumn<QString>("message");
        const QByteArray dict23 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        const QByteArray valid = npyFile(dict23, QByteArray(24, '\0'));
        QTest::newRow("truncated data") << valid.left(valid.size() - 4)
                                        << "truncated data: expected 24 bytes, found 20";
        QTest::newRow("no data") << valid.left(128) << "truncated data: expected 24 bytes, found 0";
        QTest::newRow("truncated header") << valid.left(40) << "truncated header: expected 118 bytes, found 30";
        QTest::newRow("magic only") << valid.left(7) << "truncated header";
        QTest::newRow("no header length") << valid.left(9) << "truncated header";
        QTest::newRow("empty file") << QByteArray() << "not a .npy file (it does not start with \\x93NUMPY)";
        QTest::newRow("text file") << QByteArray("hello, world\n") << "not a .npy file (it does not start with \\x93NUMPY)";
        QByteArray version9 = valid;
        version9[6] = 9;
        QTest::newRow("version 9") << version9 << "unsupported .npy format version 9.0";
        QTest::newRow("fortran order")
            << npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", QByteArray(24, '\0'))
            << "fortran_order True is not supported; save a C-order array (np.ascontiguousarray)";
        QTest::newRow("big-endian")
            << npyFile("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", QByteArray(24, '\0'))
            << "big-endian data ('>f4') is not supported; convert with arr.astype('<f4')";
        QTest::newRow("complex")
            << npyFile("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", QByteArray(16, '\0'))
            << "unsupported dtype '<c8' (supported: <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 |b1)";
        QTest::newRow("structured")
            << npyFile("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", QByteArray(8, '\0'))
            << "malformed header (expected a quoted string at offset 10): "
               "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }";
        QTest::newRow("missing shape")
            << npyFile("{'descr': '<f4', 'fortran_order': False, }", QByteArray(4, '\0'))
            << "malformed header (missing key 'shape'): {'descr': '<f4', 'fortran_order': False, }";
        QTest::newRow("unknown key")
            << npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", QByteArray(4, '\0'))
            << "malformed header (unexpected key 'x'): {'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}";
        QTest::newRow("negative dimension")
            << npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", QByteArray(4, '\0'))
            << "malformed header (expected a non-negative integer in 'shape' at offset 51): "
               "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }";
        QTest::newRow("bad fortran_order")
            << npyFile("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", QByteArray(4, '\0'))
            << "malformed header (expected True or False for 'fortran_order'): "
               "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }";
        QTest::newRow("huge shape, no data")
            << npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", QByteArray())
            << "truncated data: expected 4000000000000 bytes, found 0";
        QTest::newRow("shape overflows")
            << npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", QByteArray())
            << "shape too large";
    }
    void npyReadErrors() {
        QFETCH(QByteArray, content);
        QFETCH(QString, message);
        const QString path = dir_.filePath("bad.npy");
        writeFile(path, content);
        QCOMPARE(runtimeErrorOf([&] { readNpy(path.toStdString()); }), path + ": " + message);
    }

    void npyMissingFile() {
        const QString path = dir_.filePath("missing.npy");
        QCOMPARE(runtimeErrorOf([&] { readNpy(path.toStdString()); }),
                 path + ": cannot open for reading: No such file or directory");
    }

private:
    // Temporaries the atomic writer left in the test folder (it must leave none).
    QStringList leftovers() const {
        return QDir(dir_.path()).entryList(QStringList{QStringLiteral(".*.tmp-*")}, QDir::Files | QDir::Hidden);
    }

    QTemporaryDir dir_;
};

QTEST_GUILESS_MAIN(TestCommon)
#include "tst_common.moc"
