// libFuzzer target: the analysis request's JSON form (a session's "analysis", result.json's
// "request"), read over the defaults and validated. Bad input must give problems, never a
// crash or undefined behaviour (built with AddressSanitizer and UBSan by tools/fuzz).
#include "core/common/request.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto json = nlohmann::ordered_json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded())
        return 0;
    std::vector<std::string> problems;
    const deformscope::common::AnalysisRequest r = deformscope::common::requestFromJson(json, {}, problems);
    (void)r.validate();
    (void)deformscope::common::toJson(r).dump();
    return 0;
}
