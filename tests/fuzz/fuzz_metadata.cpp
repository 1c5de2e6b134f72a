// libFuzzer target: a model's deformscope.json (core/model/metadata.h). Every malformed
// file must be a std::runtime_error naming the key, never a crash.
#include "core/model/metadata.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const auto m = deformscope::model::ModelMetadata::parse(std::string(reinterpret_cast<const char*>(data), size));
        (void)m.toJson().dump();
    } catch (const std::runtime_error&) {
    }
    return 0;
}
