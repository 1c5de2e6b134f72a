// A sparse CPU backward for ATen's grid_sampler_2d (F.grid_sample).
//
// A node's gradient reaches a handful of a grid_sample's output positions (one
// query's points of a DCNv3 or deformable-attention core, a few pixels of a flow
// warp), but ATen's CPU backward visits every output position. Each output
// position's gradient is independent of the others (its grid entry's gradient, and
// its share of the input's gradient), so the backward of the reached positions
// alone is the same computation with the zero terms left out: this kernel gathers
// the positions with a non-zero gradient into a 1 × M grid, runs ATen's own CPU
// kernel on it and scatters the grid's gradient back. It takes over when at most a
// quarter of the positions are reached; otherwise it is ATen's kernel unchanged.
#pragma once

#include <array>
#include <cstdint>
#include <tuple>

namespace at {
class Tensor;
}

namespace deformscope::ops {

// Installs the sparse backward as the CPU kernel of aten::grid_sampler_2d_backward
// in this process. Idempotent and thread-safe. Called by the application's model
// loading, not by the Python extension (deformscope_ops leaves ATen's kernels alone
// in a user's Python process). DEFORMSCOPE_DENSE_GRID_SAMPLER=1 in the environment
// keeps ATen's kernel (for benchmarks against it).
void registerSparseGridSamplerBackward();

// The kernel itself: the arguments and results of at::grid_sampler_2d_backward on
// CPU tensors (the tests hold it to ATen's own kernel, at::cpu::grid_sampler_2d_backward).
std::tuple<at::Tensor, at::Tensor> sparseGridSampler2dBackward(const at::Tensor& gradOutput, const at::Tensor& input,
                                                               const at::Tensor& grid, int64_t interpolationMode,
                                                               int64_t paddingMode, bool alignCorners,
                                                               std::array<bool, 2> outputMask);

} // namespace deformscope::ops
