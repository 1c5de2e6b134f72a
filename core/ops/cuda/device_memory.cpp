// Compiled only with CUDA (DEFORMSCOPE_WITH_CUDA); device_memory_none.cpp otherwise.
#include "core/ops/device_memory.h"

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

namespace deformscope::ops {

std::optional<int64_t> freeDeviceMemory(const c10::Device& device) {
    if (!device.is_cuda())
        return std::nullopt;
    const c10::DeviceIndex index = device.has_index() ? device.index() : c10::DeviceIndex(0);
    c10::cuda::CUDAGuard guard(index);
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
        (void)cudaGetLastError(); // clear it: the analysis reports its own errors
        return std::nullopt;
    }
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    const int64_t cached = stats.reserved_bytes[all].current - stats.allocated_bytes[all].current;
    return int64_t(free) + std::max<int64_t>(0, cached);
}

} // namespace deformscope::ops
