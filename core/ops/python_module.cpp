// Entry point of the shared library that Python loads with
// torch.ops.load_library(): registration runs when the library is loaded.
// (This file is only in the shared library, never in the static core_ops, so
// the static initialiser is always linked.)
#include "core/ops/registration.h"

namespace {
const bool g_registered = [] {
    deformscope::ops::registerOperators();
    return true;
}();
} // namespace
