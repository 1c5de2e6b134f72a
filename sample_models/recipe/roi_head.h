// The RoI sample models (DCNv2's Fig. 2): a tiny detector head on a trained sample
// backbone that classifies the shape in a box.
//
// forward(x, rois): x [N, 3, H, W] normalised as the segmentation samples (H, W
// multiples of 8), rois [K, 5] (batch index, x0, y0, x1, y1) in input pixel edges;
// returns logits [K, 3] over disc, square, triangle. The trunk is the segmentation
// model's up to block3 (stem … down3, block1..3: stride 8, 64 channels), copied from
// the trained file and frozen; the head is:
//   Regular: pool = deform_roi_pool without offsets (RoIAlign, mmcv's coordinates)
//   DCNv1:   offset_pool (the same plain RoIAlign) → offset_fc1 (3136→64, ReLU) →
//            offset_fc2 (64→2·7·7, zero at the start) → pool = deform_roi_pool with
//            those offsets, gamma 0.1 (mmcv's DeformRoIPoolPack)
//   DCNv2:   the same with offset_fc2 → 3·7·7, the last 49 sigmoid modulation logits
//            (mmcv's ModulatedDeformRoIPoolPack; modulation 0.5 at the start)
// then fc1 (3136→128, ReLU) and fc2 (128→3). All pools: 7×7 bins, spatial scale 1/8,
// sampling ratio 2, deformscope::deform_roi_pool. Module names are as above, so
// the RoI pooling layer is `pool` (the metadata's suggested layer).
#pragma once

#include "sample_models/recipe/network.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace deformscope::samples {

constexpr int64_t kRoiBins = 7;
constexpr int64_t kRoiClasses = 3; // disc, square, triangle (SampleClass − 1)

// The head on `trained` (a segmentation sample of the same variant: Regular, DCNv1 or
// DCNv2), its trunk parameters copied and frozen. Throws std::invalid_argument for
// another variant or a model without the trunk.
torch::jit::Module buildRoiModel(Variant variant, const torch::jit::Module& trained, uint64_t seed);

// "roi_regular", "roi_dcn_v1", "roi_dcn_v2".
std::string roiModelName(Variant variant);

// A box around one visible object of a synthetic image: input pixel edges and its class (0..2).
struct RoiBox {
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    int64_t cls = 0;
};
// The boxes of an image's objects: the bounding boxes of their visible pixels (at least
// `minPixels`), by instance.
std::vector<RoiBox> objectBoxes(const at::Tensor& instances, const at::Tensor& mask, int64_t minPixels = 16);

struct RoiTrainConfig {
    int64_t images = 1200;   // training images (features computed once: the trunk is frozen)
    int64_t steps = 1500;
    int64_t batch = 64;      // boxes per step
    double lr = 1e-3;        // Adam; cosine schedule
    double jitter = 0.15;    // each box edge moved by up to this fraction of the box's size
    int64_t evalImages = 200;
    int64_t size = 128;
    uint64_t seed = 1;
};

struct RoiTrainReport {
    double seconds = 0;
    std::vector<double> loss;  // every 50 steps
    double heldOutAccuracy = 0;
    int64_t heldOutBoxes = 0;
};

// Trains the head (the trunk stays frozen). `log` gets a line now and then.
RoiTrainReport trainRoiModel(torch::jit::Module& model, const RoiTrainConfig& config,
                             const std::function<void(const std::string&)>& log = {});
// Box classification accuracy on held-out images kHeldOutSeedBase + 0 .. images − 1 (exact boxes).
double evaluateRoiModel(torch::jit::Module& model, int64_t images, int64_t size, int64_t* boxes = nullptr);

// deformscope.json of a RoI sample: input size, normalisation, class names, roi_input "rois",
// suggested layer "pool", and `training` (what trainRoiModel reported) when given.
std::string roiMetadataJson(Variant variant, int64_t inputSize = 128, const std::string& trainingJson = {});

} // namespace deformscope::samples
