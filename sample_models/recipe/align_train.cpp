// Training and held-out evaluation of the alignment sample (align.h).
#include "sample_models/recipe/align.h"

#include "sample_models/recipe/analysis.h"
#include "sample_models/recipe/network.h"
#include "sample_models/recipe/synthetic.h"
#include "sample_models/recipe/train.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <stdexcept>

namespace deformscope::samples {
namespace {

double seconds(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Where the crop of a pair starts: centred on one of its objects, jittered by up
// to ±crop/4, inside the frame; the object and the jitter are drawn from the seed.
std::pair<int64_t, int64_t> cropOrigin(uint64_t seed, const SyntheticPair& pair, int64_t pairSize, int64_t crop) {
    if (crop >= pairSize)
        return {0, 0};
    uint64_t z = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    const auto& o = pair.a.objects[static_cast<size_t>(z % pair.a.objects.size())];
    const int64_t spread = crop / 2 + 1; // jitter in [-crop/4, crop/4]
    const int64_t jy = static_cast<int64_t>((z >> 16) % static_cast<uint64_t>(spread)) - crop / 4;
    const int64_t jx = static_cast<int64_t>((z >> 40) % static_cast<uint64_t>(spread)) - crop / 4;
    const int64_t room = pairSize - crop;
    return {std::clamp<int64_t>(static_cast<int64_t>(o.cy) - crop / 2 + jy, 0, room),
            std::clamp<int64_t>(static_cast<int64_t>(o.cx) - crop / 2 + jx, 0, room)};
}

// Per-pixel end-point error [N, H, W] of the offsets' motion against the truth;
// `eps` inside the root keeps its gradient finite at zero error (training).
at::Tensor endPointError(const at::Tensor& om, const at::Tensor& truth, double eps) {
    return (offsetMotion(om) - truth).pow(2).sum(1).add(eps).sqrt();
}

} // namespace

AlignBatch makeAlignBatch(const std::vector<uint64_t>& seeds, int64_t pairSize, int64_t crop) {
    if (crop < 16 || crop > pairSize)
        throw std::invalid_argument("makeAlignBatch: the crop must be from 16 to the pair's size");
    std::vector<at::Tensor> ref, sup, motion, objects, sizes;
    for (uint64_t s : seeds) {
        SyntheticPair p = generatePair(s, pairSize);
        at::Tensor objectSize = at::zeros({pairSize, pairSize}, at::kFloat);
        for (size_t k = 0; k < p.a.objects.size(); ++k)
            objectSize.masked_fill_(p.a.instances == static_cast<int64_t>(k) + 1, p.a.objects[k].size);
        const auto [y0, x0] = cropOrigin(s, p, pairSize, crop);
        auto cut = [&, y0 = y0, x0 = x0](const at::Tensor& t) {
            return t.slice(-2, y0, y0 + crop).slice(-1, x0, x0 + crop);
        };
        ref.push_back(cut(p.a.image));
        sup.push_back(cut(p.b));
        motion.push_back(cut(p.motion));
        objects.push_back(cut(p.a.instances > 0).to(at::kFloat));
        sizes.push_back(cut(objectSize));
    }
    AlignBatch b;
    b.referenceRgb = at::stack(ref);
    b.supportRgb = at::stack(sup);
    b.reference = normalizeImage(b.referenceRgb);
    b.support = normalizeImage(b.supportRgb);
    b.motion = at::stack(motion);
    b.objects = at::stack(objects);
    b.objectSize = at::stack(sizes);
    return b;
}

AlignReport trainAlign(torch::jit::Module& model, const AlignConfig& c,
                       const std::function<void(int64_t step, double loss, double recon, double motion)>& progress) {
    if (c.steps <= 0 || c.batch <= 0 || c.crop < 16 || c.crop > c.pairSize || !(c.lr > 0) || c.motionWeight < 0)
        throw std::invalid_argument("trainAlign: steps, batch and lr must be positive, the crop from 16 to the "
                                    "pair size, the motion weight not negative");
    torch::manual_seed(c.seed);
    torch::AutoGradMode grad(true);

    // Three groups: conv weights (decayed), biases (not), align.offset (own lr, not decayed).
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
    const std::vector<double> baseLr = {c.lr, c.lr, c.lr * c.offsetLrScale};
    groups.emplace_back(weights, std::make_unique<AdamWOptions>(AdamWOptions(c.lr).weight_decay(c.weightDecay)));
    groups.emplace_back(biases, std::make_unique<AdamWOptions>(AdamWOptions(c.lr).weight_decay(0)));
    groups.emplace_back(offsets, std::make_unique<AdamWOptions>(AdamWOptions(baseLr[2]).weight_decay(0)));
    torch::optim::AdamW optimizer(groups, AdamWOptions(c.lr));

    auto seedsOf = [&](int64_t step) {
        std::vector<uint64_t> seeds;
        for (int64_t b = 0; b < c.batch; ++b)
            seeds.push_back(trainingSeed(c.seed, step * c.batch + b));
        return seeds;
    };
    AlignReport report;
    model.train();
    const auto start = std::chrono::steady_clock::now();
    // Pairs for the next step are generated on a second thread while this one trains.
    std::future<AlignBatch> next = std::async(std::launch::async, makeAlignBatch, seedsOf(0), c.pairSize, c.crop);
    for (int64_t step = 0; step < c.steps; ++step) {
        const AlignBatch batch = next.get();
        if (step + 1 < c.steps)
            next = std::async(std::launch::async, makeAlignBatch, seedsOf(step + 1), c.pairSize, c.crop);
        const double factor = scheduleFactor(c.steps, c.warmupSteps, c.minLrScale, step);
        for (size_t g = 0; g < optimizer.param_groups().size(); ++g)
            optimizer.param_groups()[g].options().set_lr(baseLr[g] * factor);

        optimizer.zero_grad();
        const auto out = model.get_method("forward_with_offsets")({batch.reference, batch.support}).toTuple();
        const at::Tensor recon = (out->elements()[0].toTensor() - batch.reference).abs().mean();
        const at::Tensor epe = endPointError(out->elements()[1].toTensor(), batch.motion, 1e-8);
        const at::Tensor motion = (epe * batch.objects).sum() / batch.objects.sum().clamp_min(1.0);
        const at::Tensor loss = recon + c.motionWeight * motion;
        loss.backward();
        optimizer.step();
        const double value = loss.item<double>();
        if (!std::isfinite(value))
            throw std::runtime_error("trainAlign: the loss became " + std::to_string(value) + " at step " +
                                     std::to_string(step + 1));
        report.losses.push_back(value);
        report.reconLosses.push_back(recon.item<double>());
        report.motionLosses.push_back(motion.item<double>());
        if (progress)
            progress(step + 1, value, report.reconLosses.back(), report.motionLosses.back());
    }
    report.seconds = seconds(start);

    if (c.evalPairs > 0) {
        const auto evalStart = std::chrono::steady_clock::now();
        report.heldOut = evaluateAlign(model, c.evalPairs, c.evalSize, 0, c.evalFlow);
        report.evalSeconds = seconds(evalStart);
    }
    model.eval();
    return report;
}

AlignEval evaluateAlign(torch::jit::Module& model, int64_t pairs, int64_t size, uint64_t first,
                        const FlowEstimator& flow) {
    const bool wasTraining = model.is_training();
    model.eval();
    torch::NoGradGuard noGrad;
    // Sums of the EPE and pixel counts: all, objects, background, small, medium, large; zero motion; recon.
    double sum[6] = {}, count[6] = {}, zeroSum = 0, reconSum = 0, flowSum[6] = {};
    constexpr int64_t kChunk = 4; // the matching cost holds 3 x 169 values per pixel
    for (int64_t i = 0; i < pairs; i += kChunk) {
        std::vector<uint64_t> seeds;
        for (int64_t j = i; j < std::min(pairs, i + kChunk); ++j)
            seeds.push_back(kHeldOutSeedBase + first + static_cast<uint64_t>(j));
        const double n = static_cast<double>(seeds.size());
        const AlignBatch b = makeAlignBatch(seeds, size, size);
        const auto out = model.get_method("forward_with_offsets")({b.reference, b.support}).toTuple();
        const at::Tensor epe = endPointError(out->elements()[1].toTensor(), b.motion, 0.0).to(at::kDouble);
        reconSum += (out->elements()[0].toTensor() - b.reference).abs().mean().item<double>() * n;
        const double scale = static_cast<double>(size) / 128.0;
        const at::Tensor masks[6] = {at::ones_like(b.objects), b.objects, 1.0 - b.objects,
                                     b.objects * (b.objectSize < kSmallObjectBelow * scale),
                                     b.objects * (b.objectSize >= kSmallObjectBelow * scale) *
                                         (b.objectSize < kLargeObjectFrom * scale),
                                     b.objects * (b.objectSize >= kLargeObjectFrom * scale)};
        at::Tensor flowEpe;
        if (flow) {
            std::vector<at::Tensor> flows;
            for (int64_t j = 0; j < b.referenceRgb.size(0); ++j)
                flows.push_back(flow(imageBytes(b.referenceRgb[j]), imageBytes(b.supportRgb[j])).to(at::kFloat));
            flowEpe = (at::stack(flows) - b.motion).pow(2).sum(1).sqrt().to(at::kDouble);
        }
        for (int k = 0; k < 6; ++k) {
            sum[k] += (epe * masks[k]).sum().item<double>();
            count[k] += masks[k].sum().item<double>();
            if (flow)
                flowSum[k] += (flowEpe * masks[k]).sum().item<double>();
        }
        zeroSum += (b.motion.pow(2).sum(1).sqrt() * b.objects).sum().item<double>();
    }
    model.train(wasTraining);
    auto mean = [](double s, double n) { return n > 0 ? s / n : 0.0; };
    AlignEval r;
    r.pairs = pairs;
    r.epeAll = mean(sum[0], count[0]);
    r.epeObjects = mean(sum[1], count[1]);
    r.epeBackground = mean(sum[2], count[2]);
    r.epeSmall = mean(sum[3], count[3]);
    r.epeMedium = mean(sum[4], count[4]);
    r.epeLarge = mean(sum[5], count[5]);
    r.zeroMotionEpeObjects = mean(zeroSum, count[1]);
    r.objectFraction = mean(count[1], count[0]);
    r.reconL1 = mean(reconSum, static_cast<double>(pairs));
    if (flow) {
        r.flowEpeAll = mean(flowSum[0], count[0]);
        r.flowEpeObjects = mean(flowSum[1], count[1]);
        r.flowEpeBackground = mean(flowSum[2], count[2]);
        r.flowEpeSmall = mean(flowSum[3], count[3]);
        r.flowEpeMedium = mean(flowSum[4], count[4]);
        r.flowEpeLarge = mean(flowSum[5], count[5]);
    }
    return r;
}

} // namespace deformscope::samples
