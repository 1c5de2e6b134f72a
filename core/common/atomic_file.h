// The one way DeformScope writes a file (data, JSON, CSV, figures, sessions,
// models), so that readers never see it half-written: the bytes go to a
// temporary file with a unique name in the target's folder, are flushed to
// disk, and the temporary is renamed over the target (atomic on POSIX). Two
// writers of one folder, or of one file, never share a temporary; the last
// rename wins. A failure leaves an existing file untouched and no temporary
// behind. Thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace deformscope::common {

// Throws std::runtime_error "<path>: <problem>" ("has no file name", "folder "…"
// does not exist", "cannot write there: "…" is not a folder", "is a directory",
// "cannot create a file in "…" (<reason>)", "could not write N bytes (disk full?)",
// "cannot replace the file (<reason>)").
void writeFileAtomically(const std::string& path, std::string_view bytes);
// The same with the file's bytes given in parts, written one after the other
// (a header and a tensor's data, say, without copying them into one buffer).
void writeFileAtomically(const std::string& path, std::initializer_list<std::string_view> parts);

} // namespace deformscope::common
