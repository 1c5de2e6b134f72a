#include "core/common/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>
#include <tuple>

namespace deformscope::common {

namespace {

constexpr int kMaxDepth = 512;

// ---- UTF-8 ------------------------------------------------------------------

void appendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// Length of the well-formed UTF-8 sequence starting at s[0], or 0 if it is not
// one (overlong forms, surrogates and code points above U+10FFFF are rejected,
// as RFC 3629 requires).
std::size_t utf8SequenceLength(std::string_view s) {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const auto cont = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
    const unsigned char c = b(0);
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2))
            return 0;
        if (c == 0xE0 && b(1) < 0xA0)
            return 0;  // overlong
        if (c == 0xED && b(1) >= 0xA0)
            return 0;  // UTF-16 surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3))
            return 0;
        if (c == 0xF0 && b(1) < 0x90)
            return 0;  // overlong
        if (c == 0xF4 && b(1) >= 0x90)
            return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}

// ---- parser -----------------------------------------------------------------

// Recursive descent over one JSON text, with positions kept as byte offsets
// and turned into line and column only when reporting an error.
class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    Json parseDocument() {
        skipWhitespace();
        Json value = parseValue(0);
        skipWhitespace();
        if (pos_ != text_.size())
            fail("expected end of input after the value");
        return value;
    }

private:
    // Line and column (characters, not bytes) of `at`, both from 1.
    [[noreturn]] void failAt(std::size_t at, const std::string& problem) const {
        std::size_t line = 1, column = 1;
        for (std::size_t i = 0; i < at && i < text_.size(); ++i) {
            const unsigned char c = static_cast<unsigned char>(text_[i]);
            if (c == '\n') {
                ++line;
                column = 1;
            } else if ((c & 0xC0) != 0x80) {
                ++column;
            }
        }
        throw JsonError("line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + problem);
    }
    // "expected X" gains ", got end of input" when the text ran out.
    [[noreturn]] void fail(const std::string& expected) const {
        failAt(pos_, pos_ >= text_.size() ? expected + ", got end of input" : expected);
    }

    bool atEnd() const { return pos_ >= text_.size(); }
    char peek() const { return atEnd() ? '\0' : text_[pos_]; }

    void skipWhitespace() {
        while (!atEnd()) {
            const char c = text_[pos_];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                return;
            ++pos_;
        }
    }

    bool consumeLiteral(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word)
            return false;
        pos_ += word.size();
        return true;
    }

    Json parseValue(int depth) {
        switch (peek()) {
        case '{':
            return parseObject(depth + 1);
        case '[':
            return parseArray(depth + 1);
        case '"':
            return Json(parseString());
        case 't':
            if (consumeLiteral("true"))
                return Json(true);
            break;
        case 'f':
            if (consumeLiteral("false"))
                return Json(false);
            break;
        case 'n':
            if (consumeLiteral("null"))
                return Json();
            break;
        default:
            if (peek() == '-' || (peek() >= '0' && peek() <= '9'))
                return parseNumber();
        }
        fail("expected a value");
    }

    void checkDepth(int depth) const {
        if (depth > kMaxDepth)
            failAt(pos_, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    }

    Json parseObject(int depth) {
        checkDepth(depth);
        ++pos_;  // '{'
        Json result = Json::object();
        skipWhitespace();
        if (peek() == '}') {
            ++pos_;
            return result;
        }
        for (;;) {
            skipWhitespace();
            if (peek() != '"')
                fail("expected a string key in object");
            std::string key = parseString();
            skipWhitespace();
            if (peek() != ':')
                fail("expected ':' after object key");
            ++pos_;
            skipWhitespace();
            result[std::move(key)] = parseValue(depth);
            skipWhitespace();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == '}') {
                ++pos_;
                return result;
            }
            fail("expected ',' or '}' in object");
        }
    }

    Json parseArray(int depth) {
        checkDepth(depth);
        ++pos_;  // '['
        Json result = Json::array();
        Json::Array& items = result.asArray();
        skipWhitespace();
        if (peek() == ']') {
            ++pos_;
            return result;
        }
        for (;;) {
            skipWhitespace();
            items.push_back(parseValue(depth));
            skipWhitespace();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == ']') {
                ++pos_;
                return result;
            }
            fail("expected ',' or ']' in array");
        }
    }

    // Four hex digits after "\u" at pos_; throws at the escape's start otherwise.
    uint32_t parseHex4(std::size_t escapeStart) {
        uint32_t value = 0;
        for (int i = 0; i < 4; ++i, ++pos_) {
            const char c = peek();
            value <<= 4;
            if (c >= '0' && c <= '9')
                value |= static_cast<uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f')
                value |= static_cast<uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                value |= static_cast<uint32_t>(c - 'A' + 10);
            else
                failAt(escapeStart, "expected 4 hex digits after \\u");
        }
        return value;
    }

    std::string parseString() {
        const std::size_t start = pos_;
        ++pos_;  // opening quote
        std::string out;
        for (;;) {
            if (atEnd())
                failAt(start, "unterminated string");
            const char c = text_[pos_];
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (static_cast<unsigned char>(c) < 0x20)
                failAt(pos_, "unescaped control character in string");
            if (c != '\\') {
                const std::size_t n = utf8SequenceLength(text_.substr(pos_));
                if (n == 0)
                    failAt(pos_, "invalid UTF-8 in string");
                out.append(text_.substr(pos_, n));
                pos_ += n;
                continue;
            }
            const std::size_t escapeStart = pos_;
            ++pos_;
            if (atEnd())
                failAt(start, "unterminated string");
            const char e = text_[pos_++];
            switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                uint32_t cp = parseHex4(escapeStart);
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    failAt(escapeStart, "unpaired low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    // A high surrogate must be followed by "\u" and a low one.
                    const std::size_t lowStart = pos_;
                    if (!consumeLiteral("\\u"))
                        failAt(escapeStart, "unpaired high surrogate in \\u escape");
                    const uint32_t low = parseHex4(lowStart);
                    if (low < 0xDC00 || low > 0xDFFF)
                        failAt(escapeStart, "unpaired high surrogate in \\u escape");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                appendUtf8(out, cp);
                break;
            }
            default:
                failAt(escapeStart, std::string("invalid escape '\\") + printable(e) + "' in string");
            }
        }
    }

    static std::string printable(char c) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7F)
            return std::string(1, c);
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02X", u);
        return buf;
    }

    // RFC 8259: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    Json parseNumber() {
        const std::size_t start = pos_;
        const auto digits = [&] {
            const std::size_t from = pos_;
            while (!atEnd() && text_[pos_] >= '0' && text_[pos_] <= '9')
                ++pos_;
            return pos_ - from;
        };
        const bool negative = peek() == '-';
        if (negative)
            ++pos_;
        const std::size_t intStart = pos_;
        if (peek() == '0')
            ++pos_;  // a leading zero stands alone: "01" ends the number after "0"
        else if (digits() == 0)
            fail("expected a digit in number");
        const std::size_t intEnd = pos_;
        bool integral = true;
        if (peek() == '.') {
            ++pos_;
            integral = false;
            if (digits() == 0)
                fail("expected a digit after '.' in number");
        }
        if (peek() == 'e' || peek() == 'E') {
            ++pos_;
            integral = false;
            if (peek() == '+' || peek() == '-')
                ++pos_;
            if (digits() == 0)
                fail("expected a digit in the exponent of number");
        }
        const std::string_view number = text_.substr(start, pos_ - start);
        const char* first = number.data();
        const char* last = number.data() + number.size();

        // "-0" would lose its sign as an integer: keep it as the double -0.0.
        const bool negativeZero = negative && intEnd - intStart == 1 && text_[intStart] == '0';
        if (integral && !negativeZero) {
            int64_t value = 0;
            const auto [ptr, ec] = std::from_chars(first, last, value);
            if (ec == std::errc() && ptr == last)
                return Json(value);
            // Out of the int64 range: fall through to the nearest double.
        }
        double value = 0.0;
        const auto [ptr, ec] = std::from_chars(first, last, value);
        if (ec == std::errc() && ptr == last)
            return Json(value);
        if (ec == std::errc::result_out_of_range) {
            if (decimalMagnitude(number) > 0)
                failAt(start, "number too large for a double");
            return Json(negative ? -0.0 : 0.0);  // underflow: as close to zero as it gets
        }
        failAt(start, "invalid number");
    }

    // Decimal exponent of the leading non-zero digit of a syntactically valid
    // number (e.g. 3 for "1234.5", -2 for "0.01", 400 for "1e400"). Only its
    // sign matters: it tells overflow from underflow. The number has a
    // non-zero digit, since zero never overflows or underflows.
    static int64_t decimalMagnitude(std::string_view number) {
        const auto isDigit = [&](std::size_t i) { return i < number.size() && number[i] >= '0' && number[i] <= '9'; };
        std::size_t i = number.front() == '-' ? 1 : 0;
        int64_t lead = 0;
        bool found = false;
        const std::size_t intStart = i;
        while (isDigit(i))
            ++i;
        // Decimal place of the digit being looked at: 0 for units, -1 for tenths.
        int64_t place = static_cast<int64_t>(i - intStart) - 1;
        for (std::size_t k = intStart; k < i && !found; ++k, --place)
            if (number[k] != '0') {
                found = true;
                lead = place;
            }
        if (i < number.size() && number[i] == '.') {
            ++i;
            for (place = -1; isDigit(i); ++i, --place)
                if (!found && number[i] != '0') {
                    found = true;
                    lead = place;
                }
        }
        int64_t exponent = 0;
        if (i < number.size() && (number[i] == 'e' || number[i] == 'E')) {
            ++i;
            const bool negativeExponent = number[i] == '-';
            if (number[i] == '+' || number[i] == '-')
                ++i;
            for (; isDigit(i); ++i)  // clamped: only the sign of the result matters
                exponent = std::min<int64_t>(exponent * 10 + (number[i] - '0'), int64_t{1} << 40);
            if (negativeExponent)
                exponent = -exponent;
        }
        return lead + exponent;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

// ---- writer -----------------------------------------------------------------

void dumpString(std::string& out, std::string_view s) {
    out += '"';
    for (const char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                out += buf;
            } else {
                out += c;
            }
        }
    }
    out += '"';
}

// std::to_chars, unlike printf, ignores the C locale (a Qt application sets it
// from the environment, where the decimal point may be a comma).
void dumpDouble(std::string& out, double value) {
    if (!std::isfinite(value)) {
        out += "null";
        return;
    }
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);  // shortest round-trip form
    std::string_view text(buf, static_cast<std::size_t>(end - buf));
    out += text;
    if (text.find_first_of(".e") == std::string_view::npos)
        out += ".0";  // keep it a double when read back
}

void newline(std::string& out, int indent, int depth) {
    if (indent < 0)
        return;
    out += '\n';
    out.append(static_cast<std::size_t>(indent) * static_cast<std::size_t>(depth), ' ');
}

void dumpValue(std::string& out, const Json& j, int indent, int depth) {
    switch (j.type()) {
    case Json::Type::Null:
        out += "null";
        return;
    case Json::Type::Bool:
        out += j.asBool() ? "true" : "false";
        return;
    case Json::Type::Number:
        if (j.isInteger())
            out += std::to_string(j.asInt());
        else
            dumpDouble(out, j.asDouble());
        return;
    case Json::Type::String:
        dumpString(out, j.asString());
        return;
    case Json::Type::Array: {
        const Json::Array& items = j.asArray();
        if (items.empty()) {
            out += "[]";
            return;
        }
        out += '[';
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (i > 0)
                out += ',';
            newline(out, indent, depth + 1);
            dumpValue(out, items[i], indent, depth + 1);
        }
        newline(out, indent, depth);
        out += ']';
        return;
    }
    case Json::Type::Object: {
        const Json::Object& members = j.asObject();
        if (members.empty()) {
            out += "{}";
            return;
        }
        out += '{';
        for (std::size_t i = 0; i < members.size(); ++i) {
            if (i > 0)
                out += ',';
            newline(out, indent, depth + 1);
            dumpString(out, members[i].first);
            out += indent < 0 ? ":" : ": ";
            dumpValue(out, members[i].second, indent, depth + 1);
        }
        newline(out, indent, depth);
        out += '}';
        return;
    }
    }
}

std::string describeNumber(double value) {
    std::string out;
    dumpDouble(out, value);
    return out;
}

} // namespace

// ---- construction -------------------------------------------------------------

Json Json::array(std::initializer_list<Json> items) {
    Json result;
    result.value_ = Array(items);
    return result;
}

Json Json::object(std::initializer_list<std::pair<std::string, Json>> members) {
    Json result;
    result.value_ = Object();
    for (const auto& [key, value] : members)
        result[key] = value;
    return result;
}

Json Json::parse(std::string_view text) {
    return Parser(text).parseDocument();
}

std::string Json::dump(int indent) const {
    std::string out;
    dumpValue(out, *this, indent, 0);
    return out;
}

// ---- type and accessors ---------------------------------------------------------

Json::Type Json::type() const {
    switch (value_.index()) {
    case 0: return Type::Null;
    case 1: return Type::Bool;
    case 2:
    case 3: return Type::Number;
    case 4: return Type::String;
    case 5: return Type::Array;
    default: return Type::Object;
    }
}

const char* Json::typeName(Type type) {
    switch (type) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
    }
    return "an unknown type";
}

void Json::throwTypeError(const char* expected) const {
    throw JsonError(std::string("expected ") + expected + ", got " + typeName(type()));
}

bool Json::asBool() const {
    if (const bool* b = std::get_if<bool>(&value_))
        return *b;
    throwTypeError("a boolean");
}

int64_t Json::asInt() const {
    if (const int64_t* i = std::get_if<int64_t>(&value_))
        return *i;
    if (const double* d = std::get_if<double>(&value_)) {
        // [-2^63, 2^63): both bounds are exact doubles.
        constexpr double kLimit = 9223372036854775808.0;
        if (std::trunc(*d) == *d && *d >= -kLimit && *d < kLimit)
            return static_cast<int64_t>(*d);
        throw JsonError("expected an integer, got " + describeNumber(*d));
    }
    throwTypeError("an integer");
}

double Json::asDouble() const {
    if (const double* d = std::get_if<double>(&value_))
        return *d;
    if (const int64_t* i = std::get_if<int64_t>(&value_))
        return static_cast<double>(*i);
    throwTypeError("a number");
}

const std::string& Json::asString() const& {
    if (const std::string* s = std::get_if<std::string>(&value_))
        return *s;
    throwTypeError("a string");
}

std::string Json::asString() && {
    return std::move(const_cast<std::string&>(std::as_const(*this).asString()));
}

const Json::Array& Json::asArray() const& {
    if (const Array* a = std::get_if<Array>(&value_))
        return *a;
    throwTypeError("an array");
}

Json::Array& Json::asArray() & {
    return const_cast<Array&>(std::as_const(*this).asArray());
}

Json::Array Json::asArray() && {
    return std::move(static_cast<Json&>(*this).asArray());
}

const Json::Object& Json::asObject() const& {
    if (const Object* o = std::get_if<Object>(&value_))
        return *o;
    throwTypeError("an object");
}

Json::Object& Json::asObject() & {
    return const_cast<Object&>(std::as_const(*this).asObject());
}

Json::Object Json::asObject() && {
    return std::move(static_cast<Json&>(*this).asObject());
}

std::size_t Json::size() const {
    if (const Array* a = std::get_if<Array>(&value_))
        return a->size();
    if (const Object* o = std::get_if<Object>(&value_))
        return o->size();
    throwTypeError("an array or an object");
}

// ---- arrays -----------------------------------------------------------------------

void Json::push_back(Json value) {
    if (isNull())
        value_ = Array();
    asArray().push_back(std::move(value));
}

const Json& Json::at(std::size_t index) const {
    const Array& items = asArray();
    if (index >= items.size())
        throw JsonError("index " + std::to_string(index) + " out of range for an array of size " +
                        std::to_string(items.size()));
    return items[index];
}

Json& Json::at(std::size_t index) {
    return const_cast<Json&>(std::as_const(*this).at(index));
}

// ---- objects ----------------------------------------------------------------------

Json& Json::operator[](std::string key) {
    if (isNull())
        value_ = Object();
    Object& members = asObject();
    for (auto& [k, v] : members)
        if (k == key)
            return v;
    // Built in place: moving a temporary null Json here trips a false
    // -Wmaybe-uninitialized in GCC 12's std::variant.
    members.emplace_back(std::piecewise_construct, std::forward_as_tuple(std::move(key)), std::forward_as_tuple());
    return members.back().second;
}

const Json* Json::find(std::string_view key) const {
    const Object* members = std::get_if<Object>(&value_);
    if (!members)
        return nullptr;
    for (const auto& [k, v] : *members)
        if (k == key)
            return &v;
    return nullptr;
}

Json* Json::find(std::string_view key) {
    return const_cast<Json*>(std::as_const(*this).find(key));
}

const Json& Json::at(std::string_view key) const {
    if (!isObject())
        throw JsonError("missing key '" + std::string(key) + "': expected an object, got " + typeName(type()));
    if (const Json* value = find(key))
        return *value;
    throw JsonError("missing key '" + std::string(key) + "'");
}

Json& Json::at(std::string_view key) {
    return const_cast<Json&>(std::as_const(*this).at(key));
}

// ---- comparison ---------------------------------------------------------------------

bool operator==(const Json& a, const Json& b) {
    if (a.type() != b.type())
        return false;
    switch (a.type()) {
    case Json::Type::Null:
        return true;
    case Json::Type::Bool:
        return a.asBool() == b.asBool();
    case Json::Type::Number:
        if (a.isInteger() && b.isInteger())
            return a.asInt() == b.asInt();
        if (!a.isInteger() && !b.isInteger())
            return a.asDouble() == b.asDouble();
        {
            // One int64, one double: equal only when the double is that exact
            // integer (comparing as doubles would round large int64s).
            const Json& i = a.isInteger() ? a : b;
            const double d = (a.isInteger() ? b : a).asDouble();
            constexpr double kLimit = 9223372036854775808.0;
            return std::trunc(d) == d && d >= -kLimit && d < kLimit && static_cast<int64_t>(d) == i.asInt();
        }
    case Json::Type::String:
        return a.asString() == b.asString();
    case Json::Type::Array:
        return a.asArray() == b.asArray();
    case Json::Type::Object: {
        if (a.size() != b.size())
            return false;
        for (const auto& [key, value] : a.asObject()) {
            const Json* other = b.find(key);
            if (!other || !(*other == value))
                return false;
        }
        return true;
    }
    }
    return false;
}

// ---- helpers ----------------------------------------------------------------------

Json fromShape(at::IntArrayRef shape) {
    Json result = Json::array();
    for (const int64_t d : shape)
        result.push_back(d);
    return result;
}

std::vector<int64_t> toInt64Vector(const Json& json) {
    if (!json.isArray())
        throw JsonError(std::string("expected an array of integers, got ") + Json::typeName(json.type()));
    std::vector<int64_t> result;
    result.reserve(json.size());
    for (std::size_t i = 0; i < json.size(); ++i) {
        try {
            result.push_back(json.at(i).asInt());
        } catch (const JsonError& e) {
            throw JsonError("element " + std::to_string(i) + " of an array of integers: " + e.what());
        }
    }
    return result;
}

} // namespace deformscope::common
