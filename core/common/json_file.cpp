#include "core/common/json_file.h"

#include "core/common/atomic_file.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace deformscope::common {

std::string jsonText(const Json& json) {
    return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

void writeJsonFile(const std::string& path, const Json& json) { writeFileAtomically(path, jsonText(json)); }

Json parseJson(std::string_view text, const std::string& source) {
    try {
        return Json::parse(text.begin(), text.end());
    } catch (const Json::parse_error& e) {
        // nlohmann's text: "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ...".
        std::string what = e.what();
        if (const size_t at = what.find("parse error"); at != std::string::npos)
            what = what.substr(at);
        throw std::runtime_error(source + ": " + what);
    } catch (const Json::exception& e) {
        // A number too large for a double, ... (found by tests/fuzz/fuzz_metadata.cpp):
        // "[json.exception.out_of_range.406] number overflow parsing '...'".
        std::string what = e.what();
        if (const size_t at = what.find("] "); at != std::string::npos)
            what = what.substr(at + 2);
        if (what.size() > 200)
            what = what.substr(0, 200) + "...";
        throw std::runtime_error(source + ": " + what);
    }
}

Json readJsonFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(path + ": cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    return parseJson(text.str(), path);
}

} // namespace deformscope::common
