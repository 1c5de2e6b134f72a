// SHA-256 (FIPS 180-4) of bytes and of files, as lowercase hex: the checksums
// manifest.json records for every file an output folder holds.
#pragma once

#include <string>
#include <string_view>

namespace deformscope::common {

std::string sha256Hex(std::string_view bytes);
// Reads the file in blocks; throws std::runtime_error "<path>: cannot read it" when it cannot.
std::string sha256File(const std::string& path);

} // namespace deformscope::common
