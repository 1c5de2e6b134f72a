// Text helpers of the request's parsing (request.cpp, request_fields.cpp):
// internal to core/common. Pure functions of their arguments.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deformscope::common::detail {

// `text` split at every `sep` (empty parts kept).
inline std::vector<std::string_view> splitOn(std::string_view text, char sep) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
        const size_t end = text.find(sep, start);
        parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        if (end == std::string_view::npos)
            return parts;
        start = end + 1;
    }
}

// The whole of `text` as a number (no sign for unsigned reads, no spaces).
template <typename T>
std::optional<T> number(std::string_view text) {
    T v{};
    if (text.empty())
        return std::nullopt;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return v;
}

// "a,b,c": exactly `count` numbers.
inline std::optional<std::vector<double>> numbers(std::string_view text, size_t count) {
    std::vector<double> v;
    for (std::string_view p : splitOn(text, ',')) {
        const auto d = number<double>(p);
        if (!d)
            return std::nullopt;
        v.push_back(*d);
    }
    if (v.size() != count)
        return std::nullopt;
    return v;
}

// The shortest text that reads back as the same double.
inline std::string shortest(double v) {
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

} // namespace deformscope::common::detail
