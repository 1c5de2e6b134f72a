// libFuzzer target: the header dict of a .npy file (core/common/npy_header.h), the part of
// readNpy that reads text the file's writer chose. Malformed headers must be
// std::invalid_argument, never a crash.
#include "core/common/npy_header.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        (void)deformscope::common::parseNpyHeader(std::string_view(reinterpret_cast<const char*>(data), size));
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
