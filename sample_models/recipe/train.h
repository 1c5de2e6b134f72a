// The training recipe of the sample models: CPU, fixed seeds, synthetic data.
//
// train() runs AdamW with a linear warm-up and a cosine decay on pixel
// cross-entropy at input resolution, on samples generated on the fly from
// training seeds in [0, 10^6), then measures the model on held-out seeds
// (10^9 + i, disjoint from training). The same config gives the same model.
// Not thread-safe with respect to the model it trains; the caller owns the model.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace deformscope::samples {

// First seed of the held-out images; training seeds are below 10^6.
constexpr uint64_t kHeldOutSeedBase = 1000000000ULL;
constexpr uint64_t kTrainSeedRange = 1000000ULL;

// The defaults are the settings the shipped sample models were trained with.
struct TrainConfig {
    int64_t steps = 2500;           // optimiser steps
    int64_t batch = 8;              // images per step
    int64_t size = 128;             // image side (pixels)
    double lr = 2e-3;               // peak learning rate
    uint64_t seed = 1;              // torch::manual_seed and the training-sample seeds
    int64_t evalImages = 256;       // held-out images measured after training (0: skip)
    double weightDecay = 1e-4;      // AdamW, on conv weights only (not biases, not offset convs)
    double offsetLrScale = 0.1;     // learning-rate multiplier of the offset convs (as in the DCN papers)
    int64_t warmupSteps = 100;      // linear warm-up, then cosine decay to lr * minLrScale
    double minLrScale = 0.02;
};

struct EvalResult {
    double pixelAccuracy = 0;
    double meanIoU = 0;                // mean over the 4 classes
    std::vector<double> classIoU;      // per class id
    int64_t images = 0;
};

struct TrainReport {
    std::vector<double> losses;        // training loss of every step
    double heldOutPixelAccuracy = 0;
    double heldOutMeanIoU = 0;
    std::vector<double> heldOutClassIoU;
    double seconds = 0;                // wall time of the training steps (data generation included, evaluation not)
    double evalSeconds = 0;
};

// Learning-rate factor at `step` (0-based): a linear warm-up over
// min(warmupSteps, steps / 10) steps, then a cosine decay to minLrScale.
double scheduleFactor(int64_t steps, int64_t warmupSteps, double minLrScale, int64_t step);

// Seed of training sample `index` (step * batch + b) for a config seed.
uint64_t trainingSeed(uint64_t configSeed, int64_t index);

// A batch of generated samples: images normalised ([N,3,S,S]) and masks ([N,S,S] int64).
void makeBatch(const std::vector<uint64_t>& seeds, int64_t size, at::Tensor& images, at::Tensor& masks);

// Trains `model` (from buildModel) in place and leaves it in eval mode.
// progress(step, loss) is called after every step (step counts from 1). Throws
// std::invalid_argument for non-positive steps, batch or lr, or a size that is
// not a multiple of 8 of at least 16; std::runtime_error if the loss stops being finite.
TrainReport train(torch::jit::Module& model, const TrainConfig& config,
                  const std::function<void(int64_t step, double loss)>& progress = {});

// Pixel accuracy and IoU of `model` on held-out images kHeldOutSeedBase + first
// .. + first + images - 1, at `size`, in eval mode and without gradients (the
// module's training flag is restored afterwards).
EvalResult evaluate(torch::jit::Module& model, int64_t images, int64_t size = 128, uint64_t first = 0);

} // namespace deformscope::samples
