// Tests of core_common: JSON text in and out (round trips, numbers, order,
// error positions, type errors) and .npy files (every dtype and shape, strides,
// header layout, atomic writes, and files that must be refused).
//
// Escaped quotes are spelled in ordinary string literals: moc 6.4 mis-lexes a
// raw string holding \" and then silently generates nothing for the class.
#include "core/common/json.h"
#include "core/common/npy.h"

#include <ATen/ATen.h>

#include <QtTest/QtTest>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

using deformscope::common::fromShape;
using deformscope::common::Json;
using deformscope::common::JsonError;
using deformscope::common::readNpy;
using deformscope::common::toInt64Vector;
using deformscope::common::writeNpy;

using Shape = std::vector<int64_t>;
Q_DECLARE_METATYPE(at::ScalarType)
Q_DECLARE_METATYPE(Shape)

namespace {

// The message of the JsonError `f` throws; fails the test when it throws none.
template <typename F>
QString jsonErrorOf(F&& f) {
    try {
        f();
    } catch (const JsonError& e) {
        return QString::fromUtf8(e.what());
    }
    return QStringLiteral("<no JsonError thrown>");
}

// The message of the std::runtime_error `f` throws (JsonError is not expected here).
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

    // ---- JSON -------------------------------------------------------------------

    // Parsing `input` and dumping it compactly gives `compact`; the compact and
    // pretty forms parse back to the same value.
    void jsonRoundTrip_data() {
        QTest::addColumn<QByteArray>("input");
        QTest::addColumn<QByteArray>("compact");
        QTest::newRow("null") << QByteArray("null") << QByteArray("null");
        QTest::newRow("true") << QByteArray("true") << QByteArray("true");
        QTest::newRow("false") << QByteArray(" false ") << QByteArray("false");
        QTest::newRow("nested") << QByteArray(R"( {"a" : [1, 2.5, -3e2, true, null], "b": {"c": "d", "e": [[]]}} )")
                                << QByteArray(R"({"a":[1,2.5,-300.0,true,null],"b":{"c":"d","e":[[]]}})");
        QTest::newRow("empty containers") << QByteArray(R"({"a":[],"b":{}, "c": [{}]})")
                                          << QByteArray(R"({"a":[],"b":{},"c":[{}]})");
        QTest::newRow("deep") << QByteArray("[[[[[[[[1]]]]]]]]") << QByteArray("[[[[[[[[1]]]]]]]]");
        QTest::newRow("whitespace") << QByteArray(" \t\r\n[ 1 ,\n\t2\r\n] \n") << QByteArray("[1,2]");
        QTest::newRow("unicode escapes") << QByteArray(R"("\u00e9\u4E2D\u0041")")
                                         << QByteArray("\"\xC3\xA9\xE4\xB8\xAD" "A\"");
        QTest::newRow("surrogate pair") << QByteArray(R"(["\ud83d\ude00", "x\uD834\uDD1Ey"])")
                                        << QByteArray("[\"\xF0\x9F\x98\x80\",\"x\xF0\x9D\x84\x9Ey\"]");
        QTest::newRow("raw utf-8") << QByteArray("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"")
                                   << QByteArray("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
        QTest::newRow("escapes") << QByteArray("\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\"")
                                 << QByteArray("\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\"");
        QTest::newRow("control escapes") << QByteArray(R"("\u0001\u001f\u007f")")
                                         << QByteArray("\"\\u0001\\u001f\x7F\"");
        QTest::newRow("exponents") << QByteArray("[1e3, 1E-2, 2.5e+10, -1.5e-300, 0.1, 1e0, 5E+0]")
                                   << QByteArray("[1000.0,0.01,2.5e+10,-1.5e-300,0.1,1.0,5.0]");
        QTest::newRow("big ints") << QByteArray("[9223372036854775807, -9223372036854775808, 0, -1]")
                                  << QByteArray("[9223372036854775807,-9223372036854775808,0,-1]");
        QTest::newRow("beyond int64") << QByteArray("[9223372036854775808, -9223372036854775809]")
                                      << QByteArray("[9223372036854775808.0,-9223372036854775808.0]");
        QTest::newRow("negative zero") << QByteArray("[-0, -0.0, 0, 0.0, -0e5]")
                                       << QByteArray("[-0.0,-0.0,0,0.0,-0.0]");
        QTest::newRow("underflow to zero") << QByteArray("[1e-400, -1e-400]") << QByteArray("[0.0,-0.0]");
        QTest::newRow("duplicate key keeps first place, last value")
            << QByteArray(R"({"a":1,"b":2,"a":3})") << QByteArray(R"({"a":3,"b":2})");
    }
    void jsonRoundTrip() {
        QFETCH(QByteArray, input);
        QFETCH(QByteArray, compact);
        const Json value = Json::parse(input.toStdString());
        QCOMPARE(bytesOf(value.dump(-1)), compact);
        QCOMPARE(bytesOf(Json::parse(compact.toStdString()).dump(-1)), compact);
        QCOMPARE(bytesOf(Json::parse(value.dump(2)).dump(-1)), compact);
        QVERIFY(Json::parse(value.dump(4)) == value);
    }

    // Doubles dump in a form that parses back to the same bits and stays a double.
    void jsonDoublesRoundTrip_data() {
        QTest::addColumn<double>("value");
        QTest::newRow("0.1") << 0.1;
        QTest::newRow("0.1+0.2") << 0.1 + 0.2;
        QTest::newRow("1/3") << 1.0 / 3.0;
        QTest::newRow("-2.5e-8") << -2.5e-8;
        QTest::newRow("123456789.125") << 123456789.125;
        QTest::newRow("2^53+2") << 9007199254740994.0;
        QTest::newRow("1e22") << 1e22;
        QTest::newRow("DBL_MAX") << DBL_MAX;
        QTest::newRow("DBL_MIN") << DBL_MIN;
        QTest::newRow("subnormal") << 1e-310;
        QTest::newRow("denorm_min") << std::numeric_limits<double>::denorm_min();
        QTest::newRow("-0.0") << -0.0;
        QTest::newRow("3.0") << 3.0;
    }
    void jsonDoublesRoundTrip() {
        QFETCH(double, value);
        const std::string text = Json(value).dump();
        const Json back = Json::parse(text);
        QVERIFY2(!back.isInteger(), text.c_str());
        QVERIFY2(sameBits(back.asDouble(), value), text.c_str());
    }

    void jsonNumbers() {
        const Json max = Json::parse("9223372036854775807");
        QVERIFY(max.isInteger());
        QCOMPARE(max.asInt(), std::numeric_limits<int64_t>::max());
        QCOMPARE(Json::parse("-9223372036854775808").asInt(), std::numeric_limits<int64_t>::min());

        const Json beyond = Json::parse("9223372036854775808");
        QVERIFY(beyond.isNumber() && !beyond.isInteger());
        QCOMPARE(beyond.asDouble(), 9223372036854775808.0);

        QVERIFY(Json::parse("1.5").isNumber());
        QCOMPARE(Json::parse("2.0").asInt(), int64_t{2});  // integral doubles convert
        QCOMPARE(Json::parse("-4e2").asInt(), int64_t{-400});
        QCOMPARE(Json::parse("7").asDouble(), 7.0);
        QCOMPARE(Json::parse("2.5e-3").asDouble(), 0.0025);

        const Json negativeZero = Json::parse("-0");
        QVERIFY(!negativeZero.isInteger());
        QVERIFY(std::signbit(negativeZero.asDouble()));
        QCOMPARE(negativeZero.asInt(), int64_t{0});
        QVERIFY(!std::signbit(Json::parse("0").asDouble()));

        // Built from C++ values: integers stay exact, huge unsigned ones become doubles.
        QVERIFY(Json(3).isInteger());
        QVERIFY(Json(std::size_t{3}).isInteger());
        QVERIFY(Json(int64_t{1} << 62).isInteger());
        QVERIFY(!Json(std::numeric_limits<uint64_t>::max()).isInteger());
        QCOMPARE(Json(std::numeric_limits<uint64_t>::max()).asDouble(), 18446744073709551615.0);
        QVERIFY(!Json(3.0).isInteger());
        QCOMPARE(qs(Json(3.0).dump()), QString("3.0"));
        QCOMPARE(qs(Json(-7).dump()), QString("-7"));
    }

    void jsonNonFiniteDumpsAsNull() {
        const double inf = std::numeric_limits<double>::infinity();
        const Json a = Json::array({std::nan(""), inf, -inf, 1.5});
        QCOMPARE(qs(a.dump(-1)), QString("[null,null,null,1.5]"));
    }

    void jsonPrettyDump() {
        Json j = Json::object();
        j["name"] = "dcn \"v2\"";
        j["shape"] = fromShape({2, 3});
        j["empty"] = Json::object();
        j["list"] = Json::array();
        j["nested"]["ok"] = true;
        QCOMPARE(qs(j.dump()),
                 QString("{\n"
                             "  \"name\": \"dcn \\\"v2\\\"\",\n"
                             "  \"shape\": [\n"
                             "    2,\n"
                             "    3\n"
                             "  ],\n"
                             "  \"empty\": {},\n"
                             "  \"list\": [],\n"
                             "  \"nested\": {\n"
                             "    \"ok\": true\n"
                             "  }\n"
                             "}"));
        QCOMPARE(qs(j.dump(-1)),
                 QString("{\"name\":\"dcn \\\"v2\\\"\",\"shape\":[2,3],\"empty\":{},\"list\":[],\"nested\":{\"ok\":true}}"));
        QCOMPARE(qs(Json::array({1, 2}).dump(0)), QString("[\n1,\n2\n]"));
        QCOMPARE(qs(Json::array({1, Json::array({2})}).dump(4)), QString("[\n    1,\n    [\n        2\n    ]\n]"));
    }

    void jsonInsertionOrder() {
        Json built;
        built["zeta"] = 1;
        built["alpha"] = 2;
        built["mid"] = 3;
        built["alpha"] = 4;  // an existing key keeps its place
        QCOMPARE(qs(built.dump(-1)), QString(R"({"zeta":1,"alpha":4,"mid":3})"));

        const Json parsed = Json::parse(R"({"z": 1, "a": 2, "m": 3, "b": 4})");
        QStringList keys;
        for (const auto& [key, value] : parsed.asObject())
            keys << QString::fromStdString(key);
        QCOMPARE(keys, QStringList({"z", "a", "m", "b"}));
        QCOMPARE(qs(parsed.dump(-1)), QString(R"({"z":1,"a":2,"m":3,"b":4})"));

        const Json literal = Json::object({{"b", 1}, {"a", 2}, {"b", 3}});
        QCOMPARE(qs(literal.dump(-1)), QString(R"({"b":3,"a":2})"));
    }

    void jsonBuildingAndAccess() {
        Json j;
        QVERIFY(j.isNull());
        j["config"]["lr"] = 0.01;  // null becomes an object, members are created on demand
        j["config"]["name"] = std::string("dcn");
        j["config"]["tag"] = std::string_view("v1");
        j["layers"].push_back(3);  // null becomes an array
        j["layers"].push_back("conv");
        j["layers"].push_back(Json::array({true, nullptr}));
        QVERIFY(j.isObject());
        QCOMPARE(j.size(), std::size_t{2});
        QCOMPARE(j.at("config").at("lr").asDouble(), 0.01);
        QCOMPARE(qs(j.at("config").at("name").asString()), QString("dcn"));
        QCOMPARE(qs(j.at("config").at("tag").asString()), QString("v1"));
        QCOMPARE(j.at("layers").size(), std::size_t{3});
        QCOMPARE(j.at("layers").at(0).asInt(), int64_t{3});
        QVERIFY(j.at("layers").at(2).at(1).isNull());
        QVERIFY(j.contains("layers"));
        QVERIFY(!j.contains("missing"));
        QVERIFY(j.find("missing") == nullptr);
        QVERIFY(Json(1).find("x") == nullptr);  // not an object: nothing to find
        QCOMPARE(qs(j.find("config")->at("name").asString()), QString("dcn"));
        j.at("layers").at(0) = 5;
        QCOMPARE(j.at("layers").at(0).asInt(), int64_t{5});

        int64_t sum = 0;  // iterating a temporary's array is safe: asArray() && returns it by value
        for (const Json& x : Json::parse("[1, 2, 3.0]").asArray())
            sum += x.asInt();
        QCOMPARE(sum, int64_t{6});

        QCOMPARE(Json::typeName(Json::Type::Object), "an object");
        QVERIFY(Json(true).type() == Json::Type::Bool);
        QVERIFY(Json("s").isString());
        QVERIFY(Json(2.5).type() == Json::Type::Number);
    }

    void jsonEquality() {
        QVERIFY(Json(1) == Json(1.0));
        QVERIFY(Json(-0.0) == Json(0));
        QVERIFY(!(Json(1) == Json("1")));
        QVERIFY(!(Json(1) == Json(true)));
        QVERIFY(!(Json(int64_t{9007199254740993}) == Json(9007199254740992.0)));  // no rounding to double
        QVERIFY(Json::parse(R"({"a":1,"b":[1,2]})") == Json::parse(R"({"b":[1,2],"a":1})"));
        QVERIFY(!(Json::parse("[1,2]") == Json::parse("[2,1]")));
        QVERIFY(!(Json::parse(R"({"a":1})") == Json::parse(R"({"a":1,"b":2})")));
        QVERIFY(Json() == Json(nullptr));
    }

    void jsonShapeHelpers() {
        QCOMPARE(qs(fromShape({2, 3, 4}).dump(-1)), QString("[2,3,4]"));
        QCOMPARE(qs(fromShape({}).dump(-1)), QString("[]"));
        QCOMPARE(toInt64Vector(Json::parse("[2, 3.0, -1]")), std::vector<int64_t>({2, 3, -1}));
        QCOMPARE(toInt64Vector(fromShape(at::IntArrayRef{5, 6})), std::vector<int64_t>({5, 6}));
        QCOMPARE(jsonErrorOf([] { toInt64Vector(Json::parse("[1, \"x\"]")); }),
                 QString("element 1 of an array of integers: expected an integer, got a string"));
        QCOMPARE(jsonErrorOf([] { toInt64Vector(Json::parse("[1, 1.5]")); }),
                 QString("element 1 of an array of integers: expected an integer, got 1.5"));
        QCOMPARE(jsonErrorOf([] { toInt64Vector(Json::parse("{}")); }),
                 QString("expected an array of integers, got an object"));
    }

    // Malformed text: the exact message, with the line and column (in characters) of the problem.
    void jsonParseErrors_data() {
        QTest::addColumn<QByteArray>("text");
        QTest::addColumn<QString>("message");
        auto row = [](const char* name, const QByteArray& text, const char* message) {
            QTest::newRow(name) << text << QString::fromUtf8(message);
        };
        row("empty", "", "line 1, column 1: expected a value, got end of input");
        row("only whitespace", " \n  ", "line 2, column 3: expected a value, got end of input");
        row("missing comma in object", "{\n  \"a\": 1,\n  \"b\": 2\n  \"c\": 3\n}",
            "line 4, column 3: expected ',' or '}' in object");
        row("unclosed object", "{\"a\": 1", "line 1, column 8: expected ',' or '}' in object, got end of input");
        row("missing colon", "{\"a\" 1}", "line 1, column 6: expected ':' after object key");
        row("unquoted key", "{a: 1}", "line 1, column 2: expected a string key in object");
        row("trailing comma in object", "{\"a\": 1,}", "line 1, column 9: expected a string key in object");
        row("unclosed array", "[1, 2", "line 1, column 6: expected ',' or ']' in array, got end of input");
        row("missing comma in array", "[1 2]", "line 1, column 4: expected ',' or ']' in array");
        row("trailing comma in array", "[1,]", "line 1, column 4: expected a value");
        row("bad literal", "[tru]", "line 1, column 2: expected a value");
        row("NaN", "NaN", "line 1, column 1: expected a value");
        row("single quotes", "'a'", "line 1, column 1: expected a value");
        row("leading plus", "+1", "line 1, column 1: expected a value");
        row("two values", "1 2", "line 1, column 3: expected end of input after the value");
        row("leading zero", "01", "line 1, column 2: expected end of input after the value");
        row("lone minus", "-", "line 1, column 2: expected a digit in number, got end of input");
        row("minus letter", "[-x]", "line 1, column 3: expected a digit in number");
        row("bare point", "1.", "line 1, column 3: expected a digit after '.' in number, got end of input");
        row("point without integer", ".5", "line 1, column 1: expected a value");
        row("empty exponent", "[1e]", "line 1, column 4: expected a digit in the exponent of number");
        row("overflow", "[0, 1e400]", "line 1, column 5: number too large for a double");
        row("unterminated string", "[\"abc", "line 1, column 2: unterminated string");
        row("unterminated escape", "\"abc\\", "line 1, column 1: unterminated string");
        row("bad escape", "\"a\\qb\"", "line 1, column 3: invalid escape '\\q' in string");
        row("short unicode escape", "\"\\u12G4\"", "line 1, column 2: expected 4 hex digits after \\u");
        row("lone high surrogate", "\"\\ud800\"", "line 1, column 2: unpaired high surrogate in \\u escape");
        row("high surrogate then letter", "\"\\ud800\\u0041\"",
            "line 1, column 2: unpaired high surrogate in \\u escape");
        row("lone low surrogate", "\"x\\udc00\"", "line 1, column 3: unpaired low surrogate in \\u escape");
        row("raw tab in string", "\"a\tb\"", "line 1, column 3: unescaped control character in string");
        row("raw newline in string", "[\"a\nb\"]", "line 1, column 4: unescaped control character in string");
        row("invalid utf-8", "\"ab\xFF\"", "line 1, column 4: invalid UTF-8 in string");
        row("overlong utf-8", "\"\xC0\xAF\"", "line 1, column 2: invalid UTF-8 in string");
        row("utf-8 surrogate", "\"\xED\xA0\x80\"", "line 1, column 2: invalid UTF-8 in string");
        row("columns count characters", "{\n  \"\xC3\xA9\xE4\xB8\xAD\": tru\n}", "line 2, column 9: expected a value");
        row("too deep", QByteArray(600, '['), "line 1, column 513: nesting deeper than 512 levels");
    }
    void jsonParseErrors() {
        QFETCH(QByteArray, text);
        QFETCH(QString, message);
        QCOMPARE(jsonErrorOf([&] { Json::parse(text.toStdString()); }), message);
        // JsonError is a std::runtime_error, so generic handlers catch it too.
        QVERIFY_THROWS_EXCEPTION(std::runtime_error, Json::parse(text.toStdString()));
    }

    void jsonMaximumDepthParses() {
        const QByteArray deep = QByteArray(512, '[') + QByteArray(512, ']');
        QCOMPARE(bytesOf(Json::parse(deep.toStdString()).dump(-1)), deep);
    }

    // Wrong types and missing keys: the exact message.
    void jsonTypeErrors_data() {
        QTest::addColumn<QByteArray>("json");
        QTest::addColumn<QString>("access");
        QTest::addColumn<QString>("message");
        auto row = [](const char* json, const char* access, const char* message) {
            QTest::addRow("%s on %s", access, json) << QByteArray(json) << QString(access) << QString(message);
        };
        row("\"x\"", "asDouble", "expected a number, got a string");
        row("\"x\"", "asInt", "expected an integer, got a string");
        row("2.5", "asInt", "expected an integer, got 2.5");
        row("1e19", "asInt", "expected an integer, got 1e+19");
        row("1", "asString", "expected a string, got a number");
        row("null", "asBool", "expected a boolean, got null");
        row("0", "asBool", "expected a boolean, got a number");
        row("{}", "asArray", "expected an array, got an object");
        row("[]", "asObject", "expected an object, got an array");
        row("true", "size", "expected an array or an object, got a boolean");
        row("{\"a\": 1}", "at key", "missing key 'b'");
        row("[1]", "at key", "missing key 'b': expected an object, got an array");
        row("[1]", "at index", "index 1 out of range for an array of size 1");
        row("{\"b\": 1}", "at index", "expected an array, got an object");
        row("[]", "operator[]", "expected an object, got an array");
        row("{}", "push_back", "expected an array, got an object");
    }
    void jsonTypeErrors() {
        QFETCH(QByteArray, json);
        QFETCH(QString, access);
        QFETCH(QString, message);
        Json j = Json::parse(json.toStdString());
        const Json& c = j;
        const QString actual = jsonErrorOf([&] {
            if (access == "asDouble") c.asDouble();
            else if (access == "asInt") c.asInt();
            else if (access == "asString") c.asString();
            else if (access == "asBool") c.asBool();
            else if (access == "asArray") c.asArray();
            else if (access == "asObject") c.asObject();
            else if (access == "size") c.size();
            else if (access == "at key") c.at("b");
            else if (access == "at index") c.at(1);
            else if (access == "operator[]") j["b"];
            else if (access == "push_back") j.push_back(1);
            else QFAIL("unknown access");
        });
        QCOMPARE(actual, message);
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
        QVERIFY(!QFile::exists(path + ".tmp"));
    }

    void npyWriteErrors() {
        const QString missingDir = dir_.filePath("no-such-dir/x.npy");
        QCOMPARE(runtimeErrorOf([&] { writeNpy(missingDir.toStdString(), at::ones({2})); }),
                 missingDir + ": cannot open for writing: No such file or directory");

        // A directory in the way: the .tmp file is written, the rename fails, the .tmp goes.
        const QString isDir = dir_.filePath("a-directory");
        QVERIFY(QDir(dir_.path()).mkpath("a-directory/inside"));
        QCOMPARE(runtimeErrorOf([&] { writeNpy(isDir.toStdString(), at::ones({2})); }),
                 isDir + ": cannot replace the file: Is a directory");
        QVERIFY(!QFile::exists(isDir + ".tmp"));

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
    QTemporaryDir dir_;
};

QTEST_GUILESS_MAIN(TestCommon)
#include "tst_common.moc"
