// The sample segmentation network, built directly as TorchScript.
//
// LibTorch cannot script C++ nn::Modules, so buildModel() assembles
// torch::jit::Modules by hand: parameters registered on each layer, forward
// methods compiled from TorchScript source. The result is an ordinary
// TorchScript model: it trains from C++, saves with Module::save, and loads in
// the app and in Python (its deformable layers call torchvision::deform_conv2d,
// which buildModel() makes sure is registered: it calls
// deformscope::ops::registerOperators()).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace deformscope::samples {

// The three variants differ only in block1..block3 (64→64, 3×3): a plain conv,
// a DCNv1 (offsets) or a DCNv2 (offsets + sigmoid modulation) layer.
enum class Variant { Regular, DCNv1, DCNv2 };

std::string variantName(Variant v); // "regular", "dcn_v1", "dcn_v2"
// Inverse of variantName; throws std::invalid_argument for an unknown name.
Variant variantFromName(const std::string& name);

// Input normalisation the models were trained with: (image - mean) / std on an
// RGB image in [0, 1]. The model files' metadata carries the same numbers.
constexpr std::array<double, 3> kMean = {0.5, 0.5, 0.5};
constexpr std::array<double, 3> kStd = {0.25, 0.25, 0.25};

// [3,H,W] or [N,3,H,W] float in [0, 1] → normalised float32, same shape.
at::Tensor normalizeImage(const at::Tensor& image);

// The network, fully convolutional (input [N,3,H,W], H and W multiples of 8;
// output logits [N,4,H,W]):
//   stem  3→16 s1 · down1 16→32 s2 · conv2 32→32 · down2 32→48 s2 · conv3 48→48 ·
//   down3 48→64 s2 · block1..3 64→64 · head 1×1 64→4 · bilinear ×8
// all 3×3 with padding 1 and ReLU except the head. Top-level submodules are named
// exactly as above; each has `weight` and `bias`; a deformable block also has a
// submodule `offset` (3×3 conv, 64→18 for DCNv1, 64→27 = 18 offsets + 9 mask
// logits for DCNv2) whose weight and bias start at zero, so training starts from
// the regular network. Other weights: Kaiming normal (fan-in, ReLU gain) from a
// generator seeded per layer by (seed, layer), so every variant built with the
// same seed shares the same initial weights in the layers it has in common.
// The module starts in training mode.
torch::jit::Module buildModel(Variant variant, uint64_t seed);

// True for the parameters of the offset convs: qualified names such as
// "block1.offset.weight" (as model.named_parameters() spells them).
bool isOffsetParameter(const std::string& qualifiedName);

// Runs `model` (built here or loaded from a file) up to block3 on a normalised
// batch [N,3,H,W] and returns, for each deformable block in order, the output of
// its offset conv: [N, 18, h, w] offsets (dy, dx per tap, in feature-map pixels)
// for DCNv1, [N, 27, h, w] offsets then mask logits for DCNv2. Empty for the
// regular variant. Runs without gradients.
std::vector<at::Tensor> offsetConvOutputs(const torch::jit::Module& model, const at::Tensor& input);

} // namespace deformscope::samples
