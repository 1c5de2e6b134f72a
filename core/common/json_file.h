// JSON as DeformScope reads and writes it (nlohmann-json, members in insertion
// order): the text form every result file uses, atomic writing, and parse
// errors that name the file. Thread-safe; no shared state.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace deformscope::common {

using Json = nlohmann::ordered_json;

// The text of `json`: two-space indentation, UTF-8 (bytes that are not UTF-8
// become U+FFFD instead of failing), doubles in the shortest form that reads
// back the same, NaN and infinities as null; a final newline.
std::string jsonText(const Json& json);

// Writes jsonText(json) to `path` atomically (writeFileAtomically).
void writeJsonFile(const std::string& path, const Json& json);

// Parses `text`; throws std::runtime_error "<source>: line L, column C: <problem>".
Json parseJson(std::string_view text, const std::string& source);

// Reads and parses a file; throws std::runtime_error "<path>: <problem>".
Json readJsonFile(const std::string& path);

} // namespace deformscope::common
