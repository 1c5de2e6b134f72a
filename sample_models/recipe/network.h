// The sample segmentation network, built directly as TorchScript.
//
// LibTorch cannot script C++ nn::Modules, so buildModel() assembles
// torch::jit::Modules by hand: parameters registered on each layer, forward
// methods compiled from TorchScript source. The result is an ordinary
// TorchScript model: it trains from C++, saves with Module::save, and loads in
// the app and in Python (its DCN layers call torchvision::deform_conv2d, its DK
// layers deformscope::deform_kernel2d, which buildModel() makes sure are
// registered: it calls deformscope::ops::registerOperators(); Python needs
// torchvision or DeformScope's operator library for the former, the library for
// the latter).
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

// The four variants differ only in block1..block3 (64→64, 3×3 receptive field):
// a plain conv, a DCNv1 (offsets) or a DCNv2 (offsets + sigmoid modulation)
// layer, or a depthwise-separable Deformable Kernels block (DK: a depthwise 3×3
// deform_kernel2d with a 5×5 scope and per-position kernel offsets, then a 1×1
// conv; DK is a depthwise operator, hence the pointwise conv that mixes channels).
// Align is another network altogether: the two-frame alignment sample
// (align.h), trained only when asked for by name.
enum class Variant { Regular, DCNv1, DCNv2, DK, Align };

std::string variantName(Variant v); // "regular", "dcn_v1", "dcn_v2", "dk", "align"
// Inverse of variantName; throws std::invalid_argument for an unknown name.
Variant variantFromName(const std::string& name);

// Input normalisation the models were trained with: (image - mean) / std on an
// RGB image in [0, 1]. The model files' metadata carries the same numbers.
constexpr std::array<double, 3> kMean = {0.5, 0.5, 0.5};
constexpr std::array<double, 3> kStd = {0.25, 0.25, 0.25};

// [3,H,W] or [N,3,H,W] float in [0, 1] → normalised float32, same shape.
at::Tensor normalizeImage(const at::Tensor& image);

// The segmentation variants, in the order train-samples uses by default
// (Variant::Align is not among them: it is trained only when named).
constexpr std::array<Variant, 4> kAllVariants = {Variant::Regular, Variant::DCNv1, Variant::DCNv2, Variant::DK};

// The DK blocks' scope: the depthwise kernel [64, 1, kDkScope, kDkScope] from
// which each position's 3×3 kernel is resampled.
constexpr int64_t kDkScope = 5;

// The network, fully convolutional (input [N,3,H,W], H and W multiples of 8;
// output logits [N,4,H,W]):
//   stem  3→16 s1 · down1 16→32 s2 · conv2 32→32 · down2 32→48 s2 · conv3 48→48 ·
//   down3 48→64 s2 · block1..3 64→64 · head 1×1 64→4 · bilinear ×8
// all 3×3 with padding 1 and ReLU except the head. Top-level submodules are named
// exactly as above; each has `weight` and `bias`; a deformable block also has a
// submodule `offset` (3×3 conv, 64→18 for DCNv1, 64→27 = 18 offsets + 9 mask
// logits for DCNv2) whose weight and bias start at zero, so training starts from
// the regular network. A DK block (Variant::DK) instead has `weight` [64, 1, 5, 5]
// (the depthwise scope kernel) and `bias` [64], a submodule `kernel_offset`
// (3×3 conv 64→18: Δy, Δx in scope cells for each of the 9 taps, zero at the
// start, so every tap starts on the centre 3×3 of the scope) and a submodule
// `pointwise` (1×1 conv 64→64); forward(x) = relu(pointwise(deform_kernel2d(x)))
// with no nonlinearity between the depthwise and the pointwise conv. Its scope
// kernel is Kaiming normal with fan-in 9 and gain 1 over the whole 5×5 scope
// (every resampled kernel has 9 taps, and no ReLU follows it), the pointwise conv
// Kaiming normal with fan-in 64 and ReLU gain.
// Other weights: Kaiming normal (fan-in, ReLU gain) from a generator seeded per
// layer by (seed, layer), so every variant built with the same seed shares the
// same initial weights in the layers it has in common.
// The module starts in training mode. Variant::Align gives buildAlignModel(seed)
// (align.h) instead.
torch::jit::Module buildModel(Variant variant, uint64_t seed);

// True for the parameters of the offset convs: qualified names such as
// "block1.offset.weight" or, for DK, "block1.kernel_offset.weight" (as
// model.named_parameters() spells them). The recipe gives them a reduced
// learning rate and no weight decay.
bool isOffsetParameter(const std::string& qualifiedName);

// Runs `model` (built here or loaded from a file) up to block3 on a normalised
// batch [N,3,H,W] and returns, for each deformable block in order, the output of
// its offset conv: [N, 18, h, w] offsets (dy, dx per tap, in feature-map pixels)
// for DCNv1, [N, 27, h, w] offsets then mask logits for DCNv2, and for DK the
// output of its `kernel_offset` conv: [N, 18, h, w] kernel-space offsets (dy, dx
// per tap, in cells of the scope kernel; DK samples the image on the regular
// grid). Empty for the regular variant. Runs without gradients. Segmentation
// variants only (not Variant::Align).
std::vector<at::Tensor> offsetConvOutputs(const torch::jit::Module& model, const at::Tensor& input);

} // namespace deformscope::samples
