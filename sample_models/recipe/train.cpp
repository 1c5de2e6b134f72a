#include "sample_models/recipe/train.h"

#include "sample_models/recipe/network.h"
#include "sample_models/recipe/synthetic.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <future>
#include <numbers>
#include <stdexcept>

namespace deformscope::samples {
namespace {

double seconds(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

double lrFactor(const TrainConfig& c, int64_t step) {
    return scheduleFactor(c.steps, c.warmupSteps, c.minLrScale, step);
}

std::vector<uint64_t> stepSeeds(const TrainConfig& c, int64_t step) {
    std::vector<uint64_t> seeds;
    for (int64_t b = 0; b < c.batch; ++b)
        seeds.push_back(trainingSeed(c.seed, step * c.batch + b));
    return seeds;
}

struct Batch {
    at::Tensor images, masks;
};

Batch generateBatch(const std::vector<uint64_t>& seeds, int64_t size) {
    Batch b;
    makeBatch(seeds, size, b.images, b.masks);
    return b;
}

} // namespace

double scheduleFactor(int64_t steps, int64_t warmupSteps, double minLrScale, int64_t step) {
    const int64_t warmup = std::min(warmupSteps, steps / 10);
    if (step < warmup)
        return static_cast<double>(step + 1) / static_cast<double>(warmup);
    const double t = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, steps - warmup));
    return minLrScale + (1.0 - minLrScale) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
}

uint64_t trainingSeed(uint64_t configSeed, int64_t index) {
    // A different stretch of [0, 10^6) per config seed; wraps around.
    return (configSeed * 7919ULL * 1000ULL + static_cast<uint64_t>(index)) % kTrainSeedRange;
}

void makeBatch(const std::vector<uint64_t>& seeds, int64_t size, at::Tensor& images, at::Tensor& masks) {
    std::vector<at::Tensor> im, ma;
    for (uint64_t s : seeds) {
        SyntheticSample sample = generateSample(s, size);
        im.push_back(sample.image);
        ma.push_back(sample.mask);
    }
    images = normalizeImage(at::stack(im));
    masks = at::stack(ma);
}

TrainReport train(torch::jit::Module& model, const TrainConfig& c,
                  const std::function<void(int64_t step, double loss)>& progress) {
    if (c.steps <= 0 || c.batch <= 0 || c.size < 16 || c.size % 8 != 0 || !(c.lr > 0))
        throw std::invalid_argument("train: steps, batch and lr must be positive and size a multiple of 8, >= 16");
    torch::manual_seed(c.seed);
    torch::AutoGradMode grad(true);

    // Three groups: conv weights (decayed), biases (not), offset convs (own lr, not decayed).
    std::vector<at::Tensor> weights, biases, offsets;
    for (const auto& p : model.named_parameters(true)) {
        if (isOffsetParameter(p.name))
            offsets.push_back(p.value);
        else if (p.name.size() >= 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0)
            biases.push_back(p.value);
        else
            weights.push_back(p.value);
    }
    using torch::optim::AdamWOptions;
    std::vector<torch::optim::OptimizerParamGroup> groups;
    std::vector<double> baseLr;
    groups.emplace_back(weights, std::make_unique<AdamWOptions>(AdamWOptions(c.lr).weight_decay(c.weightDecay)));
    baseLr.push_back(c.lr);
    groups.emplace_back(biases, std::make_unique<AdamWOptions>(AdamWOptions(c.lr).weight_decay(0)));
    baseLr.push_back(c.lr);
    if (!offsets.empty()) {
        const double lr = c.lr * c.offsetLrScale;
        groups.emplace_back(offsets, std::make_unique<AdamWOptions>(AdamWOptions(lr).weight_decay(0)));
        baseLr.push_back(lr);
    }
    torch::optim::AdamW optimizer(groups, AdamWOptions(c.lr));

    TrainReport report;
    model.train();
    const auto start = std::chrono::steady_clock::now();
    // Samples for the next step are generated on a second thread while this one trains.
    std::future<Batch> next = std::async(std::launch::async, generateBatch, stepSeeds(c, 0), c.size);
    for (int64_t step = 0; step < c.steps; ++step) {
        Batch batch = next.get();
        if (step + 1 < c.steps)
            next = std::async(std::launch::async, generateBatch, stepSeeds(c, step + 1), c.size);
        const double factor = lrFactor(c, step);
        for (size_t g = 0; g < optimizer.param_groups().size(); ++g)
            optimizer.param_groups()[g].options().set_lr(baseLr[g] * factor);

        optimizer.zero_grad();
        const at::Tensor logits = model.forward({batch.images}).toTensor();
        const at::Tensor loss = at::cross_entropy_loss(logits, batch.masks);
        loss.backward();
        optimizer.step();
        const double value = loss.item<double>();
        if (!std::isfinite(value))
            throw std::runtime_error("train: the loss became " + std::to_string(value) + " at step " +
                                     std::to_string(step + 1));
        report.losses.push_back(value);
        if (progress)
            progress(step + 1, value);
    }
    report.seconds = seconds(start);

    if (c.evalImages > 0) {
        const auto evalStart = std::chrono::steady_clock::now();
        const EvalResult r = evaluate(model, c.evalImages, c.size);
        report.heldOutPixelAccuracy = r.pixelAccuracy;
        report.heldOutMeanIoU = r.meanIoU;
        report.heldOutClassIoU = r.classIoU;
        report.evalSeconds = seconds(evalStart);
    }
    model.eval();
    return report;
}

EvalResult evaluate(torch::jit::Module& model, int64_t images, int64_t size, uint64_t first) {
    const bool wasTraining = model.is_training();
    model.eval();
    torch::NoGradGuard noGrad;
    at::Tensor confusion = at::zeros({kNumClasses * kNumClasses}, at::kLong); // [truth * K + predicted]
    constexpr int64_t kChunk = 16;
    for (int64_t i = 0; i < images; i += kChunk) {
        std::vector<uint64_t> seeds;
        for (int64_t j = i; j < std::min(images, i + kChunk); ++j)
            seeds.push_back(kHeldOutSeedBase + first + static_cast<uint64_t>(j));
        at::Tensor x, truth;
        makeBatch(seeds, size, x, truth);
        const at::Tensor predicted = model.forward({x}).toTensor().argmax(1);
        confusion += at::bincount((truth * kNumClasses + predicted).flatten(), {}, kNumClasses * kNumClasses);
    }
    model.train(wasTraining);

    const at::Tensor cm = confusion.view({kNumClasses, kNumClasses}).to(at::kDouble);
    EvalResult r;
    r.images = images;
    const double total = cm.sum().item<double>();
    r.pixelAccuracy = total > 0 ? cm.diagonal().sum().item<double>() / total : 0.0;
    double iouSum = 0;
    for (int64_t k = 0; k < kNumClasses; ++k) {
        const double tp = cm[k][k].item<double>();
        const double denom = cm[k].sum().item<double>() + cm.select(1, k).sum().item<double>() - tp;
        const double iou = denom > 0 ? tp / denom : 0.0;
        r.classIoU.push_back(iou);
        iouSum += iou;
    }
    r.meanIoU = iouSum / static_cast<double>(kNumClasses);
    return r;
}

} // namespace deformscope::samples
