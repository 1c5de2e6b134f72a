// The alignment sample (Variant::Align, align.pt): a small two-frame alignment
// network in the manner of EDVR's and PoseWarper's alignment, built directly as
// TorchScript like the segmentation samples (network.h), trained on pairs of
// synthetic frames whose true motion is known (synthetic.h, generatePair).
//
//   forward(reference [N,3,H,W], support [N,3,H,W]) -> [N,3,H,W]
//
// Both inputs normalised like the other samples ((x - 0.5) / 0.25, RGB); every
// layer has stride 1, so the offsets are in input pixels; H, W any size.
//   feat     conv1 3→16, conv2 16→32 (3×3, ReLU); shared: run on both frames
//   motion   the offset predictor. First a fixed (parameter-free) matching cost:
//            for each displacement d in [-6, 6]² (169) the squared difference
//            |reference(p) - support(p + d)|² over RGB, averaged over a 5×5 window
//            ("fine") and, separately, summed over 5², 9², 17², 33² and 65²
//            window averages ("fused", reaching object interiors); each gives a
//            softmax over d (exp(-10 · cost)), hence an estimate (dy, dx) and its
//            confidence (the largest probability). Then 3×3 convs with ReLU on
//            cat([f_ref, f_sup, both estimates and confidences]) (70 channels):
//            conv1 70→24, conv2..conv5 24→24 with dilation 2, 4, 8, 16, conv6
//            24→24; output cat([conv6's 24 channels, fine (dy, dx), fused (dy, dx)])
//   align    DCNv2 3×3, 32→32, stride 1, padding 1, dilation 1, ReLU, on f_sup;
//            its submodule `offset` (3×3 conv 28→27 on motion's output, weight
//            and bias zero at the start) gives 18 offsets (dy, dx per tap,
//            torchvision's layout) and 9 mask logits (mask = sigmoid)
//   recon    conv1 32→16 (ReLU), conv2 16→3: frame `reference` rebuilt from
//            the aligned support features alone (normalised space)
// At reference position p, tap k of `align` reads the support features at
// p + grid_k + offset_k, so the mean offset over the 9 taps is the motion of p
// from the reference to the support frame (offsetMotion below).
// The model also has a method forward_with_offsets(reference, support) →
// (output, output of align.offset [N, 27, H, W]), which training uses.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace deformscope::samples {

constexpr int64_t kAlignFeatures = 32;     // channels of feat and align
constexpr int64_t kAlignMotionWidth = 24;  // channels of motion's convs
constexpr int64_t kAlignSearchRadius = 6;  // the matching cost's displacements: [-6, 6]² px

// The network above; weights Kaiming normal (fan-in; ReLU gain before a ReLU,
// 1 before recon's output) from generators seeded per layer by (seed, layer);
// align.offset zero (offsets 0, mask 0.5), biases zero. Starts in training mode.
torch::jit::Module buildAlignModel(uint64_t seed);

// The motion the offsets say: the mean over the 9 taps of the offsets in the
// output of align.offset ([N, 27 or 18, H, W], torchvision's (dy, dx) per tap),
// as [N, 2, H, W] in (dx, dy) order, image pixels.
at::Tensor offsetMotion(const at::Tensor& offsetConvOutput);

// Pairs cut for training or evaluation: frames normalised [N,3,S,S], the true
// motion [N,2,S,S] (dx, dy), `objects` [N,S,S] float 1 on the pixels of frame A
// that belong to an object (all objects move), 0 elsewhere, and `objectSize`
// [N,S,S] the size (px) of the object at each pixel, 0 on the background.
struct AlignBatch {
    at::Tensor reference, support, motion, objects, objectSize; // reference / support normalised
    at::Tensor referenceRgb, supportRgb;                         // the same frames, [N, 3, H, W] in [0, 1]
};

// generatePair(seed, pairSize) for every seed, then a crop of side `crop` (at
// most pairSize); crop == pairSize: the whole pair. A smaller crop is centred on
// one of the pair's objects, jittered by up to ±crop/4 and kept inside the frame
// (object and jitter drawn from the seed), so that every crop has moving pixels.
AlignBatch makeAlignBatch(const std::vector<uint64_t>& seeds, int64_t pairSize, int64_t crop);

// A flow estimator for the comparison: frames A and B as [H, W, 3] uint8 RGB ->
// [2, H, W] float (dx, dy) with A(x) ≈ B(x + flow(x)).
using FlowEstimator = std::function<at::Tensor(const at::Tensor& rgbA, const at::Tensor& rgbB)>;

// The defaults are the settings the shipped align.pt was trained with.
struct AlignConfig {
    int64_t steps = 400;         // optimiser steps
    int64_t batch = 4;           // pairs per step
    int64_t crop = 64;           // training crop side, cut from pairs generated at pairSize
    int64_t pairSize = 128;      // side of the generated pairs (object sizes 8..96 px at 128)
    double lr = 2e-3;            // peak learning rate (AdamW)
    double weightDecay = 1e-4;   // on conv weights (not biases, not align.offset)
    double offsetLrScale = 1.0;  // learning-rate factor of align.offset (its output is supervised)
    double motionWeight = 1.0;   // λ of the motion term of the loss (below)
    uint64_t seed = 1;           // torch::manual_seed and the training pairs' seeds
    int64_t warmupSteps = 100;   // linear warm-up, then cosine decay to lr * minLrScale
    double minLrScale = 0.02;
    int64_t evalPairs = 256;     // held-out pairs measured after training (0: skip)
    int64_t evalSize = 128;      // their side
    FlowEstimator evalFlow;      // given: the held-out pairs score this flow too (the CLI: OpenCV's DIS)
};

// Held-out end-point errors (image px) of offsetMotion against the true motion.
struct AlignEval {
    int64_t pairs = 0;
    double epeAll = 0;         // over every pixel of frame A
    double epeObjects = 0;     // over the pixels of the (moving) objects
    double epeBackground = 0;  // over the (still) background
    double epeSmall = 0, epeMedium = 0, epeLarge = 0; // objects < 24, 24..48, >= 48 px (analysis.h's buckets)
    double zeroMotionEpeObjects = 0; // what predicting no motion would score on the objects (mean |truth|)
    double objectFraction = 0;       // share of the pixels that belong to objects
    double reconL1 = 0;        // mean |output - reference| (normalised space)
    // The same EPEs of an optical flow estimated from the two frames (when a flow
    // estimator was given, e.g. OpenCV's DIS: the CLI passes core/imaging's), else -1.
    double flowEpeAll = -1, flowEpeObjects = -1, flowEpeBackground = -1;
    double flowEpeSmall = -1, flowEpeMedium = -1, flowEpeLarge = -1;
};

struct AlignReport {
    std::vector<double> losses;        // per step: the loss
    std::vector<double> reconLosses;   // per step: its reconstruction L1
    std::vector<double> motionLosses;  // per step: its motion term (mean EPE on the objects, px)
    AlignEval heldOut;
    double seconds = 0;     // wall time of the training steps (data generation included, evaluation not)
    double evalSeconds = 0;
};

// Trains `model` (from buildAlignModel) in place and leaves it in eval mode, on
// pairs with seeds trainingSeed(config.seed, step * batch + b) (train.h). Per step
// loss = mean |output - reference| + motionWeight * mean over object pixels of
// |offsetMotion - true motion| (Euclidean). progress(step, loss, its
// reconstruction term, its motion term) after every step.
// Throws std::invalid_argument for a bad config, std::runtime_error if the loss
// stops being finite.
AlignReport trainAlign(torch::jit::Module& model, const AlignConfig& config,
                       const std::function<void(int64_t step, double loss, double recon, double motion)>& progress = {});

// Held-out pairs kHeldOutSeedBase + first .. + pairs - 1 at `size`, in eval mode
// without gradients (the training flag is restored); with `flow`, its EPEs on the
// same pairs and pixels too.
AlignEval evaluateAlign(torch::jit::Module& model, int64_t pairs, int64_t size = 128, uint64_t first = 0,
                        const FlowEstimator& flow = {});

} // namespace deformscope::samples
