// A build without CUDA: no device memory to ask about.
#include "core/ops/device_memory.h"

namespace deformscope::ops {

std::optional<int64_t> freeDeviceMemory(const c10::Device&) { return std::nullopt; }

} // namespace deformscope::ops
