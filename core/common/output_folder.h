// `--out DIR` as one unit. A command writes its files into a fresh staging folder
// beside the target (DIR.partial-<pid>); commit() adds manifest.json (every file with
// its size and SHA-256, the command line, DeformScope's version) and then puts the
// folder in place of DIR, removing the files of an earlier run only at that moment. So:
//   - a rerun replaces the earlier set (no stale file from it stays next to the new ones);
//   - a failure, an exception or Ctrl-C leaves the earlier set exactly as it was (the
//     staging folder is removed; one left by a killed process is cleared by the next run);
//   - two runs into one folder never mix: the second refuses while the first holds the
//     lock file DIR.lock (its pid inside; a lock whose process is gone is taken over).
// Not thread-safe; one per command run.
#pragma once

#include <string>
#include <vector>

namespace deformscope::common {

class OutputFolder {
public:
    // Takes the lock and creates the staging folder. Throws std::runtime_error naming
    // `target` (another run holds it, its parent folder does not exist, it is a file, ...).
    OutputFolder(std::string target, std::vector<std::string> commandLine, std::string version);
    ~OutputFolder(); // without commit(): removes the staging folder, releases the lock
    OutputFolder(const OutputFolder&) = delete;
    OutputFolder& operator=(const OutputFolder&) = delete;

    // Where to write now.
    const std::string& path() const { return m_staging; }
    const std::string& target() const { return m_target; }
    // manifest.json, then the swap. Throws std::runtime_error when the folder cannot be
    // put in place (the earlier set then stays).
    void commit();

private:
    std::string m_target, m_staging, m_lock;
    std::vector<std::string> m_command;
    std::string m_version;
    bool m_committed = false;
};

// Stops the process on SIGINT/SIGTERM the way an exception would not: removes the
// staging folders and lock files of the OutputFolders alive, then exits with 130.
// Installed once by the CLI's main.
void installInterruptCleanup();

} // namespace deformscope::common
