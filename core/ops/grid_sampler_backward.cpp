#include "core/ops/grid_sampler_backward.h"

#include <ATen/ATen.h>
#include <ATen/ops/grid_sampler_2d_backward_cpu_dispatch.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <mutex>

namespace deformscope::ops {

namespace {

// Below this many output positions the dense kernel is as fast as finding the reached ones.
constexpr int64_t kMinPositions = 1024;

} // namespace

std::tuple<at::Tensor, at::Tensor> sparseGridSampler2dBackward(const at::Tensor& gradOutput, const at::Tensor& input,
                                                               const at::Tensor& grid, int64_t interpolationMode,
                                                               int64_t paddingMode, bool alignCorners,
                                                               std::array<bool, 2> outputMask) {
    auto dense = [&] {
        return at::cpu::grid_sampler_2d_backward(gradOutput, input, grid, interpolationMode, paddingMode, alignCorners,
                                                 outputMask);
    };
    if (gradOutput.dim() != 4 || grid.dim() != 4 || grid.size(3) != 2)
        return dense(); // ATen's kernel gives the shape errors
    const int64_t N = grid.size(0), Ho = grid.size(1), Wo = grid.size(2), L = Ho * Wo;
    const int64_t C = gradOutput.size(1);
    if (L < kMinPositions || gradOutput.size(0) != N || gradOutput.size(2) != Ho || gradOutput.size(3) != Wo)
        return dense();
    // The output positions any image or channel has a non-zero gradient at (NaN counts).
    const at::Tensor reached = gradOutput.ne(0).any(1).any(0).reshape({L}).nonzero().squeeze(1);
    const int64_t M = reached.numel();
    if (M * 4 > L)
        return dense();
    // As ATen's kernel: the grid's gradient always allocated (here zeros), the input's when asked.
    at::Tensor gradInput;
    const at::Tensor gradGrid = at::zeros(grid.sizes(), grid.options().memory_format(at::MemoryFormat::Contiguous));
    if (M == 0) {
        if (outputMask[0])
            gradInput = at::zeros(input.sizes(), input.options().memory_format(at::MemoryFormat::Contiguous));
        return {gradInput, gradGrid};
    }
    // The reached positions as one row of M: [N, C, 1, M] and [N, 1, M, 2], in ascending
    // order, so the input's gradient accumulates the same terms in the same order.
    const at::Tensor go = gradOutput.reshape({N, C, L}).index_select(2, reached).unsqueeze(2);
    const at::Tensor g = grid.reshape({N, L, 2}).index_select(1, reached).unsqueeze(1);
    auto [gi, gg] =
        at::cpu::grid_sampler_2d_backward(go, input, g, interpolationMode, paddingMode, alignCorners, outputMask);
    if (outputMask[1])
        gradGrid.view({N, L, 2}).index_copy_(1, reached, gg.reshape({N, M, 2}));
    return {outputMask[0] ? gi : gradInput, gradGrid};
}

void registerSparseGridSamplerBackward() {
    static std::once_flag once;
    std::call_once(once, [] {
        // For benchmarks against ATen's kernel in the same run (docs/benchmarks.md).
        if (const char* dense = std::getenv("DEFORMSCOPE_DENSE_GRID_SAMPLER"); dense && std::string(dense) == "1")
            return;
        // Replacing ATen's kernel makes the dispatcher warn once; the replacement is
        // intended and exact, so the warning is kept off the user's terminal.
        struct Quiet : c10::WarningHandler {
            void process(const c10::Warning&) override {}
        } quiet;
        c10::WarningUtils::WarningHandlerGuard guard(&quiet);
        static auto lib =
            std::make_unique<torch::Library>(torch::Library::IMPL, "aten", c10::DispatchKey::CPU, __FILE__, __LINE__);
        lib->impl("grid_sampler_2d_backward", TORCH_FN(sparseGridSampler2dBackward));
    });
}

} // namespace deformscope::ops
