#include "sample_models/recipe/roi_head.h"

#include "sample_models/recipe/export.h"
#include "sample_models/recipe/layers.h"
#include "sample_models/recipe/synthetic.h"
#include "sample_models/recipe/train.h"

#include "core/common/json_file.h"
#include "core/model/script.h"
#include "core/ops/registration.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numbers>
#include <stdexcept>

namespace deformscope::samples {

using namespace detail;
using torch::jit::Module;

namespace {

constexpr int64_t kTrunkChannels = 64;
constexpr int64_t kPooled = kTrunkChannels * kRoiBins * kRoiBins; // 3136
constexpr const char* kTrunk[] = {"stem", "down1", "conv2", "down2", "conv3", "down3", "block1", "block2", "block3"};

// A fully connected layer (class Linear): weight [out, in] Kaiming normal (fan-in) or zero, bias zero.
Module linearLayer(const std::shared_ptr<torch::jit::CompilationUnit>& cu, int64_t in, int64_t out, bool relu,
                   bool zero, uint64_t seed) {
    Module m = newModule(cu, "Linear");
    at::Tensor w = at::zeros({out, in}, at::kFloat);
    if (!zero) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        w.normal_(0.0, (relu ? std::sqrt(2.0) : 1.0) / std::sqrt(double(in)), gen);
    }
    addParameter(m, "weight", w);
    addParameter(m, "bias", at::zeros({out}, at::kFloat));
    model::defineScript(m, std::string("def forward(self, x):\n    return ") +
                               (relu ? "torch.relu(torch.linear(x, self.weight, self.bias))"
                                     : "torch.linear(x, self.weight, self.bias)") +
                               "\n");
    return m;
}

// deform_roi_pool with 7×7 bins, scale 1/8, ratio 2, gamma 0.1 (class RoIPool / DeformRoIPool).
Module roiPool(const std::shared_ptr<torch::jit::CompilationUnit>& cu, bool deformable, bool modulated) {
    Module m = newModule(cu, !deformable ? "RoIPool" : (modulated ? "ModulatedDeformRoIPool" : "DeformRoIPool"));
    const std::string args = std::to_string(kRoiBins) + ", " + std::to_string(kRoiBins) + ", 0.125, 2, 0.1, ";
    if (!deformable)
        model::defineScript(m, "def forward(self, f, rois):\n"
                               "    e = torch.zeros([0], dtype=f.dtype, device=f.device)\n"
                               "    return torch.ops.deformscope.deform_roi_pool(f, rois, e, e, " + args + "False)\n");
    else
        model::defineScript(m, "def forward(self, f, rois, offset, mask):\n"
                               "    return torch.ops.deformscope.deform_roi_pool(f, rois, offset, mask, " + args +
                                   (modulated ? "True" : "False") + ")\n");
    return m;
}

} // namespace

std::string roiModelName(Variant variant) { return "roi_" + variantName(variant); }

Module buildRoiModel(Variant variant, const Module& trained, uint64_t seed) {
    if (variant != Variant::Regular && variant != Variant::DCNv1 && variant != Variant::DCNv2)
        throw std::invalid_argument("RoI sample models exist for regular, dcn_v1 and dcn_v2, not " + variantName(variant));
    ops::registerOperators();
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    Module net = newModule(cu, "RoINet");
    const int64_t channels[][3] = {{3, 16, 1}, {16, 32, 2}, {32, 32, 1}, {32, 48, 2}, {48, 48, 1}, {48, 64, 2}};
    for (int i = 0; i < 6; ++i)
        net.register_module(kTrunk[i], convLayer(cu, channels[i][0], channels[i][1], 3, channels[i][2], true, false, 0));
    for (int i = 6; i < 9; ++i)
        net.register_module(kTrunk[i], variant == Variant::Regular
                                           ? convLayer(cu, 64, 64, 3, 1, true, false, 0)
                                           : deformableBlock(cu, 64, variant == Variant::DCNv2, 0));
    // The trunk's trained weights, frozen.
    std::map<std::string, at::Tensor> source;
    for (const auto& p : trained.named_parameters(/*recurse=*/true))
        source[p.name] = p.value;
    for (const auto& p : net.named_parameters(/*recurse=*/true)) {
        const auto s = source.find(p.name);
        if (s == source.end() || s->second.sizes() != p.value.sizes())
            throw std::invalid_argument("the trained " + variantName(variant) + " model has no parameter " + p.name +
                                        " of shape " + c10::str(p.value.sizes()));
        at::NoGradGuard noGrad;
        p.value.copy_(s->second);
        p.value.requires_grad_(false);
    }
    const bool deformable = variant != Variant::Regular, modulated = variant == Variant::DCNv2;
    if (deformable) {
        net.register_module("offset_pool", roiPool(cu, false, false));
        net.register_module("offset_fc1", linearLayer(cu, kPooled, 64, true, false, mixSeed(seed, 20)));
        net.register_module("offset_fc2",
                            linearLayer(cu, 64, (modulated ? 3 : 2) * kRoiBins * kRoiBins, false, true, 0));
    }
    net.register_module("pool", roiPool(cu, deformable, modulated));
    net.register_module("fc1", linearLayer(cu, kPooled, 128, true, false, mixSeed(seed, 21)));
    net.register_module("fc2", linearLayer(cu, 128, kRoiClasses, false, false, mixSeed(seed, 22)));
    std::string trunk = "def features(self, x):\n";
    for (const char* name : kTrunk)
        trunk += std::string("    x = self.") + name + ".forward(x)\n";
    trunk += "    return x\n";
    std::string pooled;
    if (!deformable) {
        pooled = "    p = self.pool.forward(f, rois)\n";
    } else {
        const std::string b = std::to_string(kRoiBins);
        pooled = "    o = self.offset_fc2.forward(self.offset_fc1.forward(torch.flatten(self.offset_pool.forward(f, rois), 1)))\n"
                 "    o = o.view(rois.size(0), -1, " + b + ", " + b + ")\n"
                 "    offset = o[:, :2]\n" +
                 std::string(modulated ? "    mask = torch.sigmoid(o[:, 2:])\n"
                                       : "    mask = torch.zeros([0], dtype=f.dtype, device=f.device)\n") +
                 "    p = self.pool.forward(f, rois, offset, mask)\n";
    }
    model::defineScript(net, trunk + "\ndef head(self, f, rois):\n" + pooled +
                                 "    return self.fc2.forward(self.fc1.forward(torch.flatten(p, 1)))\n"
                                 "\ndef forward(self, x, rois):\n"
                                 "    return self.head(self.features(x), rois)\n");
    return net;
}

std::vector<RoiBox> objectBoxes(const at::Tensor& instances, const at::Tensor& mask, int64_t minPixels) {
    std::vector<RoiBox> boxes;
    const at::Tensor inst = instances.to(at::kLong).contiguous(), cls = mask.to(at::kLong).contiguous();
    const int64_t n = inst.max().item<int64_t>();
    for (int64_t k = 1; k <= n; ++k) {
        const at::Tensor where = (inst == k).nonzero(); // [P, 2] (y, x)
        if (where.size(0) < minPixels)
            continue;
        const at::Tensor lo = std::get<0>(where.min(0)), hi = std::get<0>(where.max(0));
        const int64_t y = where[0][0].item<int64_t>(), x = where[0][1].item<int64_t>();
        const int64_t c = cls[y][x].item<int64_t>();
        if (c < 1 || c > kRoiClasses)
            continue;
        boxes.push_back(RoiBox{double(lo[1].item<int64_t>()), double(lo[0].item<int64_t>()),
                               double(hi[1].item<int64_t>() + 1), double(hi[0].item<int64_t>() + 1), c - 1});
    }
    return boxes;
}

namespace {

struct BoxSet {
    at::Tensor features;          // [I, 64, H/8, W/8]
    std::vector<int64_t> image;   // per box
    std::vector<RoiBox> boxes;
};

BoxSet collect(Module& model, uint64_t firstSeed, int64_t images, int64_t size) {
    BoxSet set;
    std::vector<at::Tensor> feats;
    at::NoGradGuard noGrad;
    constexpr int64_t kChunk = 16;
    for (int64_t i = 0; i < images; i += kChunk) {
        std::vector<at::Tensor> xs;
        for (int64_t j = i; j < std::min(images, i + kChunk); ++j) {
            const SyntheticSample s = generateSample(firstSeed + uint64_t(j), size);
            xs.push_back(s.image);
            for (const RoiBox& b : objectBoxes(s.instances, s.mask)) {
                set.image.push_back(j);
                set.boxes.push_back(b);
            }
        }
        feats.push_back(model.get_method("features")({normalizeImage(at::stack(xs))}).toTensor());
    }
    set.features = at::cat(feats);
    return set;
}

} // namespace

RoiTrainReport trainRoiModel(Module& model, const RoiTrainConfig& c, const std::function<void(const std::string&)>& log) {
    const auto t0 = std::chrono::steady_clock::now();
    RoiTrainReport report;
    model.eval(); // no dropout or batch norm: eval and train are the same network
    const BoxSet train = collect(model, trainingSeed(c.seed, 0), c.images, c.size);
    if (log)
        log("features of " + std::to_string(c.images) + " images, " + std::to_string(train.boxes.size()) + " boxes");
    std::vector<at::Tensor> params;
    for (const auto& p : model.named_parameters(true))
        if (p.value.requires_grad())
            params.push_back(p.value);
    torch::optim::Adam adam(params, torch::optim::AdamOptions(c.lr));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed * 7919 + 13);
    const int64_t B = std::min<int64_t>(c.batch, int64_t(train.boxes.size()));
    double running = 0;
    for (int64_t step = 0; step < c.steps; ++step) {
        const double lr = c.lr * 0.5 * (1 + std::cos(std::numbers::pi * double(step) / double(c.steps)));
        for (auto& group : adam.param_groups())
            group.options().set_lr(lr);
        const at::Tensor pick = at::randint(int64_t(train.boxes.size()), {B}, gen, at::kLong);
        const at::Tensor jitter = at::rand({B, 4}, gen, at::kDouble) * 2 - 1;
        std::vector<int64_t> images, labels;
        std::vector<double> rows;
        const auto pk = pick.accessor<int64_t, 1>();
        const auto jt = jitter.accessor<double, 2>();
        for (int64_t b = 0; b < B; ++b) {
            const RoiBox& r = train.boxes[size_t(pk[b])];
            const double w = r.x1 - r.x0, h = r.y1 - r.y0;
            images.push_back(train.image[size_t(pk[b])]);
            labels.push_back(r.cls);
            const double x0 = r.x0 + c.jitter * w * jt[b][0], y0 = r.y0 + c.jitter * h * jt[b][1];
            const double x1 = std::max(x0 + 2, r.x1 + c.jitter * w * jt[b][2]), y1 = std::max(y0 + 2, r.y1 + c.jitter * h * jt[b][3]);
            rows.insert(rows.end(), {double(b), x0, y0, x1, y1});
        }
        const at::Tensor f = train.features.index_select(0, at::tensor(images, at::kLong));
        const at::Tensor rois = at::tensor(rows, at::kDouble).view({B, 5}).to(at::kFloat);
        const at::Tensor logits = model.get_method("head")({f, rois}).toTensor();
        const at::Tensor loss = at::cross_entropy_loss(logits, at::tensor(labels, at::kLong));
        adam.zero_grad();
        loss.backward();
        adam.step();
        running += loss.item<double>();
        if ((step + 1) % 50 == 0) {
            report.loss.push_back(running / 50);
            if (log)
                log("step " + std::to_string(step + 1) + " loss " + std::to_string(running / 50));
            running = 0;
        }
    }
    report.heldOutAccuracy = evaluateRoiModel(model, c.evalImages, c.size, &report.heldOutBoxes);
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return report;
}

double evaluateRoiModel(Module& model, int64_t images, int64_t size, int64_t* boxes) {
    const BoxSet set = collect(model, kHeldOutSeedBase, images, size);
    at::NoGradGuard noGrad;
    int64_t right = 0;
    const int64_t n = int64_t(set.boxes.size());
    for (int64_t i = 0; i < n; ++i) {
        const RoiBox& r = set.boxes[size_t(i)];
        const at::Tensor rois = at::tensor({0.0, r.x0, r.y0, r.x1, r.y1}, at::kDouble).view({1, 5}).to(at::kFloat);
        const at::Tensor f = set.features.narrow(0, set.image[size_t(i)], 1);
        right += model.get_method("head")({f, rois}).toTensor().argmax(1).item<int64_t>() == r.cls;
    }
    if (boxes)
        *boxes = n;
    return n > 0 ? double(right) / double(n) : 0.0;
}

std::string roiMetadataJson(Variant variant, int64_t inputSize, const std::string& trainingJson) {
    using common::Json;
    const std::string pool = variant == Variant::Regular ? "RoIAlign (deform_roi_pool without offsets)"
                             : variant == Variant::DCNv1 ? "DCNv1 deformable RoI pooling (offsets from offset_fc1/2, gamma 0.1)"
                                                         : "DCNv2 modulated deformable RoI pooling (offsets and sigmoid "
                                                           "modulation from offset_fc1/2, gamma 0.1)";
    Json j = metadataHead("roi classification", inputSize);
    j["class_names"] = Json::array({Json("disc"), Json("square"), Json("triangle")});
    j["roi_input"] = Json("rois");
    j["suggested_layer"] = Json("pool");
    j["variant"] = Json(roiModelName(variant));
    j["description"] =
        Json("DeformScope sample: a RoI head on the " + variantName(variant) +
             " segmentation sample's frozen trunk (stride 8, 64 channels) classifying the shape in a box. forward(x, "
             "rois [K, 5]: batch index, x0, y0, x1, y1 in input pixel edges) -> logits [K, 3]. 'pool': " + pool +
             ", 7x7 bins, spatial scale 1/8, sampling ratio 2 (deformscope::deform_roi_pool, mmcv's semantics); "
             "'fc1' (3136->128, ReLU), 'fc2' (128->3)");
    if (!trainingJson.empty())
        j["training"] = Json::parse(trainingJson);
    return j.dump(1) + "\n";
}

} // namespace deformscope::samples
