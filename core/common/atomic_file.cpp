#include "core/common/atomic_file.h"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <stdexcept>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace deformscope::common {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
    throw std::runtime_error(path + ": " + problem);
}

std::string randomSuffix() {
    thread_local std::mt19937_64 engine{std::random_device{}()};
    std::ostringstream s;
    s << std::hex << engine();
    return s.str();
}

} // namespace

void writeFileAtomically(const std::string& path, std::string_view bytes) { writeFileAtomically(path, {bytes}); }

void writeFileAtomically(const std::string& path, std::initializer_list<std::string_view> parts) {
    const fs::path target(path);
    if (!target.has_filename())
        fail(path, "has no file name");
    const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::error_code ec;
    const fs::file_status folderStatus = fs::status(folder, ec);
    if (folderStatus.type() == fs::file_type::not_found)
        fail(path, "folder \"" + folder.string() + "\" does not exist");
    if (folderStatus.type() != fs::file_type::directory)
        fail(path, "cannot write there: \"" + folder.string() + "\" is not a folder");
    if (fs::is_directory(target, ec))
        fail(path, "is a directory");

    // Built with += : GCC 12 warns falsely (-Wrestrict) about "." + std::string.
    std::string tempName(1, '.');
    tempName += target.filename().string();
    tempName += ".tmp-";
    tempName += randomSuffix();
    const fs::path temp = folder / tempName;
    std::FILE* f = std::fopen(temp.c_str(), "wb");
    if (!f) {
        const int err = errno;
        fail(path, "cannot create a file in \"" + folder.string() + "\" (" +
                       std::error_code(err, std::generic_category()).message() + ")");
    }
    size_t total = 0;
    bool ok = true;
    for (std::string_view bytes : parts) {
        total += bytes.size();
        ok = ok && (bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
    }
    ok = std::fflush(f) == 0 && ok;
#if defined(__unix__) || defined(__APPLE__)
    // On disk before the rename, so that a power cut cannot leave the new name on empty data.
    ok = ::fsync(::fileno(f)) == 0 && ok;
#endif
    ok = std::fclose(f) == 0 && ok;
    if (!ok) {
        fs::remove(temp, ec);
        fail(path, "could not write " + std::to_string(total) + " bytes (disk full?)");
    }
    fs::rename(temp, target, ec);
    if (ec) {
        std::error_code ignored;
        fs::remove(temp, ignored);
        fail(path, "cannot replace the file (" + ec.message() + ")");
    }
}

} // namespace deformscope::common
