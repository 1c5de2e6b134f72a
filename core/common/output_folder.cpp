#include "core/common/output_folder.h"

#include "core/common/atomic_file.h"
#include "core/common/json_file.h"
#include "core/common/sha256.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <ftw.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace deformscope::common {
namespace fs = std::filesystem;

namespace {

// The staging folders and locks of the OutputFolders alive, for the interrupt handler
// (plain C strings: the handler must not allocate).
constexpr int kMaxLive = 8;
struct Live {
    char staging[4096];
    char lock[4096];
    volatile sig_atomic_t used;
};
Live g_live[kMaxLive];

int registerLive(const std::string& staging, const std::string& lock) {
    for (int i = 0; i < kMaxLive; ++i)
        if (!g_live[i].used) {
            std::snprintf(g_live[i].staging, sizeof g_live[i].staging, "%s", staging.c_str());
            std::snprintf(g_live[i].lock, sizeof g_live[i].lock, "%s", lock.c_str());
            g_live[i].used = 1;
            return i;
        }
    return -1;
}

void unregisterLive(const std::string& lock) {
    for (int i = 0; i < kMaxLive; ++i)
        if (g_live[i].used && lock == g_live[i].lock)
            g_live[i].used = 0;
}

// rm -r with libc's nftw (not std::filesystem::remove_all: LibTorch's libraries export an
// older build of it that the dynamic linker may bind instead, and which crashes here).
int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }
void removeTree(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0)
        return;
    ::nftw(path.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
}

bool processAlive(long pid) {
    return pid > 0 && (pid == long(getpid()) || fs::exists("/proc/" + std::to_string(pid)));
}

long pidIn(const std::string& lock) {
    std::ifstream f(lock);
    long pid = 0;
    f >> pid;
    return pid;
}

// Removes DIR.partial-<pid> folders left by processes that are gone.
void clearStale(const fs::path& target) {
    std::error_code ec;
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    const std::string prefix = target.filename().string() + ".partial-";
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) != 0)
            continue;
        long pid = 0;
        try {
            pid = std::stol(name.substr(prefix.size()));
        } catch (const std::exception&) {
            continue;
        }
        if (!processAlive(pid))
            removeTree(entry.path().string());
    }
}

} // namespace

OutputFolder::OutputFolder(std::string target, std::vector<std::string> commandLine, std::string version)
    : m_target(std::move(target)), m_command(std::move(commandLine)), m_version(std::move(version)) {
    while (m_target.size() > 1 && m_target.back() == '/')
        m_target.pop_back();
    const fs::path t(m_target);
    std::error_code ec;
    if (fs::exists(t, ec) && !fs::is_directory(t, ec))
        throw std::runtime_error(m_target + ": is a file, not a folder (--out names the folder to write into)");
    const fs::path parent = t.parent_path().empty() ? fs::path(".") : t.parent_path();
    if (!fs::exists(parent, ec))
        fs::create_directories(parent, ec);
    if (!fs::is_directory(parent, ec))
        throw std::runtime_error(m_target + ": cannot create its folder " + parent.string());
    // The lock: created exclusively; a lock of a process that is gone is taken over.
    m_lock = m_target + ".lock";
    for (int attempt = 0; attempt < 2; ++attempt) {
        const int fd = ::open(m_lock.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) {
            const std::string pid = std::to_string(getpid()) + "\n";
            [[maybe_unused]] const auto written = ::write(fd, pid.data(), pid.size());
            ::close(fd);
            break;
        }
        if (errno != EEXIST)
            throw std::runtime_error(m_target + ": cannot write beside it (" + std::strerror(errno) + ")");
        const long holder = pidIn(m_lock);
        if (processAlive(holder) && attempt == 0)
            throw std::runtime_error(m_target + ": another run (process " + std::to_string(holder) +
                                     ") is writing into this folder; wait for it to finish or choose another --out");
        fs::remove(m_lock, ec); // stale
        if (attempt == 1)
            throw std::runtime_error(m_target + ": cannot take its lock file " + m_lock);
    }
    clearStale(t);
    m_staging = m_target + ".partial-" + std::to_string(getpid());
    removeTree(m_staging);
    if (!fs::create_directory(m_staging, ec)) {
        fs::remove(m_lock, ec);
        throw std::runtime_error(m_target + ": cannot create " + m_staging + " (" + ec.message() + ")");
    }
    registerLive(m_staging, m_lock);
}

OutputFolder::~OutputFolder() {
    std::error_code ec;
    if (!m_committed)
        removeTree(m_staging);
    fs::remove(m_lock, ec);
    unregisterLive(m_lock);
}

void OutputFolder::commit() {
    using Json = nlohmann::ordered_json;
    Json files = Json::array();
    std::vector<fs::path> found;
    for (const auto& e : fs::recursive_directory_iterator(m_staging))
        if (e.is_regular_file())
            found.push_back(e.path());
    std::sort(found.begin(), found.end());
    for (const fs::path& p : found)
        files.push_back(Json::object({{"file", fs::relative(p, m_staging).generic_string()},
                                      {"bytes", int64_t(fs::file_size(p))},
                                      {"sha256", sha256File(p.string())}}));
    Json manifest = Json::object({{"format", "deformscope-manifest/1"},
                                  {"version", m_version},
                                  {"command", m_command},
                                  {"files", files}});
    writeFileAtomically((fs::path(m_staging) / "manifest.json").string(), jsonText(manifest));
    // The swap: the earlier set aside, the new one in, the earlier one removed.
    std::error_code ec;
    const std::string old = m_target + ".old-" + std::to_string(getpid());
    const bool had = fs::exists(m_target, ec);
    if (had) {
        fs::rename(m_target, old, ec);
        if (ec)
            throw std::runtime_error(m_target + ": cannot replace it (" + ec.message() + ")");
    }
    fs::rename(m_staging, m_target, ec);
    if (ec) {
        if (had)
            fs::rename(old, m_target, ec);
        throw std::runtime_error(m_target + ": cannot put the new files in place (" + ec.message() + ")");
    }
    m_committed = true;
    if (had)
        removeTree(old);
}

namespace {
void onInterrupt(int signal) {
    for (int i = 0; i < kMaxLive; ++i)
        if (g_live[i].used) {
            // rm -r of a folder is not async-signal-safe in general; unlink of its files is: the
            // staging folders hold files only one level deep or are cleared by the next run.
            ::unlink(g_live[i].lock);
        }
    std::signal(signal, SIG_DFL);
    _exit(128 + signal);
}
} // namespace

void installInterruptCleanup() {
    std::signal(SIGINT, onInterrupt);
    std::signal(SIGTERM, onInterrupt);
}

} // namespace deformscope::common
