// Writing a file so that readers never see it half-written: the bytes go to a
// temporary file in the target's folder, are flushed to disk, and the temporary
// is renamed over the target (atomic on POSIX). A failure leaves an existing
// file untouched and no temporary behind.
#pragma once

#include <string>
#include <string_view>

namespace deformscope::common {

// Throws std::runtime_error "<path>: <problem>" ("has no file name", "folder "…"
// does not exist", "cannot write there: "…" is not a folder", "is a directory",
// "cannot create a file in "…" (<reason>)", "could not write N bytes (disk full?)",
// "cannot replace the file (<reason>)").
void writeFileAtomically(const std::string& path, std::string_view bytes);

} // namespace deformscope::common
