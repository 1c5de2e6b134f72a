// A small JSON value type for DeformScope's metadata and settings files.
//
// Json holds one RFC 8259 value: null, a boolean, a number, a string, an array
// or an object. Objects keep their members in insertion order, so the files we
// write read the way they were built. A Json is a plain value (copyable,
// movable, no shared state): distinct objects may be used from distinct threads
// freely; one object needs external locking only while someone modifies it.
// Every failure — malformed text, a wrong type, a missing key — throws
// JsonError with a message meant for the user.
#pragma once

#include <ATen/core/ATen_fwd.h>
#include <c10/util/ArrayRef.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace deformscope::common {

// Thrown by Json::parse (the message starts with "line L, column C: ") and by
// the accessors on a wrong type or a missing key.
class JsonError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Json {
public:
    enum class Type { Null, Bool, Number, String, Array, Object };

    using Array = std::vector<Json>;
    // Members in insertion order; keys are unique (see operator[] and parse()).
    using Object = std::vector<std::pair<std::string, Json>>;

    // ---- construction -------------------------------------------------------

    Json() = default;  // null
    Json(std::nullptr_t) {}
    Json(bool value) : value_(value) {}
    // Every integer type (int, int64_t, size_t, ...) is stored exactly; an
    // unsigned value above INT64_MAX becomes the nearest double.
    template <std::integral T>
        requires(!std::same_as<T, bool>)
    Json(T value) {
        if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(int64_t)) {
            if (value > static_cast<T>(std::numeric_limits<int64_t>::max())) {
                value_ = static_cast<double>(value);
                return;
            }
        }
        value_ = static_cast<int64_t>(value);
    }
    Json(double value) : value_(value) {}  // NaN and infinities dump as null
    Json(const char* value) : value_(std::string(value)) {}
    Json(std::string value) : value_(std::move(value)) {}
    Json(std::string_view value) : value_(std::string(value)) {}
    // A pointer other than a C string would otherwise silently become a bool.
    template <typename T>
        requires(!std::same_as<std::remove_cv_t<T>, char>)
    Json(T*) = delete;

    static Json array(std::initializer_list<Json> items = {});
    // Json::object({{"epoch", 3}, {"loss", 0.25}}); a repeated key keeps its
    // first position and its last value.
    static Json object(std::initializer_list<std::pair<std::string, Json>> members = {});

    // ---- text ---------------------------------------------------------------

    // Parses one complete JSON text (surrounding whitespace allowed). Strings
    // must be UTF-8; \uXXXX escapes, surrogate pairs included, become UTF-8.
    // Integers that fit int64 are stored exactly, other numbers as double;
    // "-0" is stored as the double -0.0 so that its sign survives. A repeated
    // object key keeps its first position and its last value. Nesting is
    // limited to 512 levels. Throws JsonError "line L, column C: <problem>"
    // (columns count characters, from 1).
    static Json parse(std::string_view text);

    // indent >= 0: one member or element per line, indented by `indent` spaces
    // per level; indent < 0: compact, on one line. Doubles are written in the
    // shortest form that reads back to the same double, with ".0" added to an
    // integral one so that it stays a double; NaN and infinities as null.
    // Non-ASCII text is written as UTF-8; quotes, backslashes and control
    // characters are escaped. No trailing newline.
    std::string dump(int indent = 2) const;

    // ---- type ---------------------------------------------------------------

    Type type() const;
    // "null", "a boolean", "a number", "a string", "an array", "an object"
    static const char* typeName(Type type);

    bool isNull() const { return std::holds_alternative<std::monostate>(value_); }
    bool isBool() const { return std::holds_alternative<bool>(value_); }
    bool isNumber() const { return isInteger() || std::holds_alternative<double>(value_); }
    // Stored as an int64 (parsed from integer text or built from an integer).
    bool isInteger() const { return std::holds_alternative<int64_t>(value_); }
    bool isString() const { return std::holds_alternative<std::string>(value_); }
    bool isArray() const { return std::holds_alternative<Array>(value_); }
    bool isObject() const { return std::holds_alternative<Object>(value_); }

    // ---- accessors: each throws JsonError "expected X, got Y" on a wrong type

    bool asBool() const;
    // An int64, or a double with an integral value inside the int64 range.
    int64_t asInt() const;
    double asDouble() const;  // any number
    // For iteration: for (const Json& x : j.asArray()),
    // for (const auto& [key, value] : j.asObject()). On a temporary (e.g.
    // Json::parse(text).asArray()) these return the contents by value, so that
    // a range-for over them does not dangle.
    const std::string& asString() const&;
    std::string asString() &&;
    const Array& asArray() const&;
    Array& asArray() &;
    Array asArray() &&;
    const Object& asObject() const&;
    Object& asObject() &;
    Object asObject() &&;

    // Number of elements of an array or members of an object; throws otherwise.
    std::size_t size() const;

    // ---- arrays -------------------------------------------------------------

    // Appends to an array; a null value becomes an empty array first.
    void push_back(Json value);
    // Throws JsonError when this is not an array or the index is out of range.
    const Json& at(std::size_t index) const;
    Json& at(std::size_t index);

    // ---- objects (member lookup is linear: objects here are small) ----------

    // The member's value, appended as null if absent. A null value becomes an
    // empty object first; any other non-object throws JsonError.
    Json& operator[](std::string key);
    // j[0] would otherwise compile as j[std::string(nullptr)]: use at(index).
    template <std::integral T>
    Json& operator[](T index) = delete;
    // Throws JsonError "missing key 'x'" when absent, or when this is not an object.
    const Json& at(std::string_view key) const;
    Json& at(std::string_view key);
    // The member's value, or nullptr when absent or when this is not an object.
    const Json* find(std::string_view key) const;
    Json* find(std::string_view key);
    bool contains(std::string_view key) const { return find(key) != nullptr; }

    // Same type and value. Numbers compare by value (1 == 1.0, and -0.0 == 0);
    // objects compare their members regardless of order.
    friend bool operator==(const Json& a, const Json& b);

private:
    [[noreturn]] void throwTypeError(const char* expected) const;

    std::variant<std::monostate, bool, int64_t, double, std::string, Array, Object> value_;
};

// [2, 3, 4] from a tensor's sizes.
Json fromShape(at::IntArrayRef shape);
// An array of integers (integral doubles accepted) as int64s; throws JsonError
// naming the first offending element otherwise.
std::vector<int64_t> toInt64Vector(const Json& json);

} // namespace deformscope::common
