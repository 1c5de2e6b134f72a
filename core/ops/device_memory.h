// How much memory a device can still give: the CUDA driver's free memory plus what
// LibTorch's caching allocator holds reserved but unused (it hands that out first).
// For the memory estimate before an analysis (core/report/inputs.h, checkMemory).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>

namespace deformscope::ops {

// Bytes `device` (a CUDA device) can still allocate; nullopt for the CPU, a build without
// CUDA or when the driver does not answer.
std::optional<int64_t> freeDeviceMemory(const c10::Device& device);

} // namespace deformscope::ops
