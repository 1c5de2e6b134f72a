// The building blocks the sample networks are assembled from (network.cpp,
// align.cpp): TorchScript modules with registered parameters and forward
// methods compiled from source. Internal to the recipe.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace torch::jit {
struct Module;
struct CompilationUnit;
} // namespace torch::jit

namespace deformscope::samples::detail {

// A per-layer seed from the model seed and the layer's index (SplitMix64 mix).
uint64_t mixSeed(uint64_t seed, uint64_t layer);

// An empty module of class __torch__.deformscope.samples.<className> in `cu`, in training mode.
torch::jit::Module newModule(const std::shared_ptr<torch::jit::CompilationUnit>& cu, const std::string& className);

// Registers `value` as a trainable parameter `name`.
void addParameter(torch::jit::Module& m, const std::string& name, at::Tensor value);

// weight [out, in, k, k] Kaiming-normal (fan-in; gain √2 before a ReLU, 1 otherwise)
// from a generator seeded with `seed`, or zero; bias zero.
void addConvParameters(torch::jit::Module& m, int64_t in, int64_t out, int64_t k, bool relu, bool zero,
                       uint64_t seed);

// An ordinary conv layer (class Conv2d): forward(x) = [relu](conv2d(x, weight,
// bias, stride, padding = dilation * (k / 2), dilation)).
torch::jit::Module convLayer(const std::shared_ptr<torch::jit::CompilationUnit>& cu, int64_t in, int64_t out,
                             int64_t k, int64_t stride, bool relu, bool zero, uint64_t seed, int64_t dilation = 1);

// A 3×3, stride 1, padding 1 deformable block with ReLU (class DeformConv2dV1/V2):
// torchvision::deform_conv2d with offsets (and, modulated, a sigmoid mask) from its
// zero-initialised 3×3 conv submodule `offset`.
torch::jit::Module deformableBlock(const std::shared_ptr<torch::jit::CompilationUnit>& cu, int64_t channels,
                                   bool modulated, uint64_t seed);

} // namespace deformscope::samples::detail
