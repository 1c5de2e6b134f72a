#include "sample_models/recipe/analysis.h"

#include "sample_models/recipe/network.h"
#include "sample_models/recipe/synthetic.h"
#include "sample_models/recipe/train.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <array>
#include <cmath>

namespace deformscope::samples {

std::vector<SamplingSpread> samplingSpread(const torch::jit::Module& model, int64_t images, int64_t size) {
    const char* names[] = {"block1", "block2", "block3"};
    std::vector<SamplingSpread> result(3);
    std::vector<std::array<double, 4>> sums(3, {0, 0, 0, 0});
    std::vector<std::array<double, 4>> kernelSums(3, {0, 0, 0, 0});
    std::vector<double> maskSums(3, 0), offsetSums(3, 0), kernelOffsetSums(3, 0);
    std::vector<int64_t> maskCounts(3, 0), offsetCounts(3, 0), kernelOffsetCounts(3, 0);
    const double scale = static_cast<double>(size) / 128.0;
    // Deformable Kernels blocks: offsetConvOutputs gives their kernel-space offsets.
    std::vector<bool> dk(3, false);
    for (size_t b = 0; b < 3; ++b) {
        dk[b] = model.attr(names[b]).toModule().hasattr("kernel_offset");
        result[b].deformableKernel = dk[b];
    }
    // Grid position of tap k = (i, j): (i - 1, j - 1), relative to the centre (of
    // the 3×3 image grid, and of the scope kernel for DK).
    const at::Tensor grid = at::tensor({-1.f, -1.f, -1.f, 0.f, -1.f, 1.f, 0.f, -1.f, 0.f, 0.f, 0.f, 1.f,
                                        1.f, -1.f, 1.f, 0.f, 1.f, 1.f}).view({9, 2, 1, 1});

    for (int64_t i = 0; i < images; ++i) {
        const SyntheticSample s = generateSample(kHeldOutSeedBase + static_cast<uint64_t>(i), size);
        const at::Tensor x = normalizeImage(s.image).unsqueeze(0);
        std::vector<at::Tensor> outputs = offsetConvOutputs(model, x);
        const int64_t h = size / 8, w = size / 8, stride = 8;
        // Regular blocks: zero offsets, unit mask.
        while (outputs.size() < 3)
            outputs.push_back(at::zeros({1, 18, h, w}));
        // Bucket of every feature position, from the object under its centre pixel.
        const at::Tensor centres = s.instances.slice(0, 0, size, stride).slice(1, 0, size, stride).contiguous();
        const auto inst = centres.accessor<int64_t, 2>();
        for (size_t b = 0; b < 3; ++b) {
            const at::Tensor out = outputs[b][0];                          // [C, h, w]
            // DK samples the image on the grid: zero image offsets.
            const at::Tensor offsets = dk[b] ? at::zeros({9, 2, h, w}) : out.slice(0, 0, 18).view({9, 2, h, w});
            at::Tensor mask = out.size(0) == 27 ? at::sigmoid(out.slice(0, 18, 27)) : at::ones({9, h, w});
            const at::Tensor distance = (offsets + grid).pow(2).sum(1).sqrt() * stride; // [9, h, w] image px
            const at::Tensor spread = ((distance * mask).sum(0) / mask.sum(0)).contiguous();
            const auto sp = spread.accessor<float, 2>();
            // DK: mean distance of the resampled taps from the scope's centre, in scope cells.
            at::Tensor reach = at::zeros({h, w});
            if (dk[b]) {
                const at::Tensor kernelOffsets = out.slice(0, 0, 18).view({9, 2, h, w});
                reach = (kernelOffsets + grid).pow(2).sum(1).sqrt().mean(0).contiguous();
                kernelOffsetSums[b] += kernelOffsets.abs().sum().item<double>();
                kernelOffsetCounts[b] += kernelOffsets.numel();
            }
            const auto re = reach.accessor<float, 2>();
            for (int64_t fy = 0; fy < h; ++fy)
                for (int64_t fx = 0; fx < w; ++fx) {
                    const int64_t k = inst[fy][fx];
                    int bucket = 0;
                    if (k > 0) {
                        const double objectSize = s.objects[static_cast<size_t>(k - 1)].size / scale;
                        bucket = objectSize < kSmallObjectBelow ? 1 : objectSize < kLargeObjectFrom ? 2 : 3;
                    }
                    sums[b][bucket] += sp[fy][fx];
                    kernelSums[b][bucket] += re[fy][fx];
                    (bucket == 0   ? result[b].positionsBackground
                     : bucket == 1 ? result[b].positionsSmall
                     : bucket == 2 ? result[b].positionsMedium
                                   : result[b].positionsLarge) += 1;
                }
            maskSums[b] += mask.sum().item<double>();
            maskCounts[b] += mask.numel();
            offsetSums[b] += offsets.abs().sum().item<double>() * stride;
            offsetCounts[b] += offsets.numel();
        }
    }
    for (size_t b = 0; b < 3; ++b) {
        SamplingSpread& r = result[b];
        r.block = names[b];
        auto mean = [](double sum, int64_t n) { return n > 0 ? sum / static_cast<double>(n) : 0.0; };
        r.background = mean(sums[b][0], r.positionsBackground);
        r.small = mean(sums[b][1], r.positionsSmall);
        r.medium = mean(sums[b][2], r.positionsMedium);
        r.large = mean(sums[b][3], r.positionsLarge);
        r.meanMask = mean(maskSums[b], maskCounts[b]);
        r.meanAbsOffset = mean(offsetSums[b], offsetCounts[b]);
        if (dk[b]) {
            r.kernelBackground = mean(kernelSums[b][0], r.positionsBackground);
            r.kernelSmall = mean(kernelSums[b][1], r.positionsSmall);
            r.kernelMedium = mean(kernelSums[b][2], r.positionsMedium);
            r.kernelLarge = mean(kernelSums[b][3], r.positionsLarge);
            r.meanAbsKernelOffset = mean(kernelOffsetSums[b], kernelOffsetCounts[b]);
        }
    }
    return result;
}

} // namespace deformscope::samples
