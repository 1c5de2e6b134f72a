#include "sample_models/recipe/network.h"

#include "sample_models/recipe/align.h"
#include "sample_models/recipe/layers.h"

#include "core/model/script.h"
#include "core/ops/registration.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>

namespace deformscope::samples {
namespace detail {

using torch::jit::Module;

constexpr const char* kNamespace = "__torch__.deformscope.samples.";

uint64_t mixSeed(uint64_t seed, uint64_t layer) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ULL + layer * 0xD1B54A32D192ED03ULL + 0x632BE59BD9B4E019ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFULL;
}

Module newModule(const std::shared_ptr<torch::jit::CompilationUnit>& cu, const std::string& className) {
    Module m(c10::QualifiedName(std::string(kNamespace) + className), cu, /*shouldMangle=*/true);
    m.register_attribute("training", c10::BoolType::get(), true);
    return m;
}

void addParameter(Module& m, const std::string& name, at::Tensor value) {
    m.register_parameter(name, value.set_requires_grad(true), /*is_buffer=*/false);
}

void addConvParameters(Module& m, int64_t in, int64_t out, int64_t k, bool relu, bool zero, uint64_t seed) {
    at::Tensor w = at::zeros({out, in, k, k}, at::kFloat);
    if (!zero) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        const double std = (relu ? std::sqrt(2.0) : 1.0) / std::sqrt(static_cast<double>(in * k * k));
        w.normal_(0.0, std, gen);
    }
    addParameter(m, "weight", w);
    addParameter(m, "bias", at::zeros({out}, at::kFloat));
}

Module convLayer(const std::shared_ptr<torch::jit::CompilationUnit>& cu, int64_t in, int64_t out, int64_t k,
                 int64_t stride, bool relu, bool zero, uint64_t seed, int64_t dilation) {
    Module m = newModule(cu, "Conv2d");
    addConvParameters(m, in, out, k, relu, zero, seed);
    const std::string s = std::to_string(stride), p = std::to_string(dilation * (k / 2)),
                      d = std::to_string(dilation);
    const std::string conv = "torch.conv2d(x, self.weight, self.bias, [" + s + ", " + s + "], [" + p + ", " + p +
                             "], [" + d + ", " + d + "], 1)";
    model::defineScript(m, "def forward(self, x):\n    return " + (relu ? "torch.relu(" + conv + ")" : conv) + "\n");
    return m;
}

// A 3×3, stride 1, padding 1 deformable block with ReLU. Its `offset` conv
// predicts 18 offsets (dy, dx per tap, torchvision's layout) and, for DCNv2,
// 9 more mask logits; it starts at zero (offsets 0, mask 0.5).
Module deformableBlock(const std::shared_ptr<torch::jit::CompilationUnit>& cu, int64_t channels, bool modulated,
                       uint64_t seed) {
    Module m = newModule(cu, modulated ? "DeformConv2dV2" : "DeformConv2dV1");
    addConvParameters(m, channels, channels, 3, /*relu=*/true, /*zero=*/false, seed);
    m.register_module("offset", convLayer(cu, channels, modulated ? 27 : 18, 3, 1, /*relu=*/false, /*zero=*/true, 0));
    if (modulated) {
        model::defineScript(m, R"(
def forward(self, x):
    om = self.offset.forward(x)
    offset = om[:, :18]
    mask = torch.sigmoid(om[:, 18:])
    y = torch.ops.torchvision.deform_conv2d(x, self.weight, offset, mask, self.bias, 1, 1, 1, 1, 1, 1, 1, 1, True)
    return torch.relu(y)
)");
    } else {
        // Without modulation torchvision passes a dummy mask; so do we.
        model::defineScript(m, R"(
def forward(self, x):
    offset = self.offset.forward(x)
    mask = torch.zeros([x.size(0), 1], dtype=x.dtype, device=x.device)
    y = torch.ops.torchvision.deform_conv2d(x, self.weight, offset, mask, self.bias, 1, 1, 1, 1, 1, 1, 1, 1, False)
    return torch.relu(y)
)");
    }
    return m;
}

} // namespace detail

namespace {

using namespace detail;

// A depthwise-separable Deformable Kernels block: a depthwise 3×3 deform_kernel2d
// (stride 1, padding 1) whose kernel is resampled per output position from the
// 5×5 scope kernel `weight` at the kernel offsets of the conv `kernel_offset`
// (64→18, zero at the start: every tap reads the centre 3×3 of the scope), then
// the 1×1 conv `pointwise` (64→64) and a ReLU. DK is a depthwise operator, so the
// pointwise conv does the channel mixing a full 3×3 conv would do; as in Xception
// there is no nonlinearity between the two, so the pair is one factorised 3×3 layer.
Module deformableKernelBlock(const std::shared_ptr<torch::jit::CompilationUnit>& cu, int64_t channels,
                             uint64_t seed) {
    Module m = newModule(cu, "DeformKernel2dSeparable");
    // Scope kernel: Kaiming normal with fan-in 9 (the taps of every resampled kernel)
    // and gain 1 (no ReLU follows it), over the whole scope, so a tap that moves into
    // the outer ring reads weights of the same scale as the centre's.
    at::Tensor w = at::empty({channels, 1, kDkScope, kDkScope}, at::kFloat);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    w.normal_(0.0, 1.0 / 3.0, gen);
    addParameter(m, "weight", w);
    addParameter(m, "bias", at::zeros({channels}, at::kFloat));
    m.register_module("kernel_offset", convLayer(cu, channels, 18, 3, 1, /*relu=*/false, /*zero=*/true, 0));
    m.register_module("pointwise",
                      convLayer(cu, channels, channels, 1, 1, /*relu=*/true, /*zero=*/false, mixSeed(seed, 1)));
    model::defineScript(m, R"(
def forward(self, x):
    koff = self.kernel_offset.forward(x)
    empty_offset = torch.zeros([0], dtype=x.dtype, device=x.device)
    y = torch.ops.deformscope.deform_kernel2d(x, self.weight, koff, empty_offset, self.bias, 1, 1, 1, 1, 1, 1, 3, 3, False)
    return self.pointwise.forward(y)
)");
    return m;
}

} // namespace

std::string variantName(Variant v) {
    switch (v) {
    case Variant::Regular:
        return "regular";
    case Variant::DCNv1:
        return "dcn_v1";
    case Variant::DCNv2:
        return "dcn_v2";
    case Variant::DK:
        return "dk";
    case Variant::Align:
        return "align";
    }
    throw std::invalid_argument("variantName: unknown variant");
}

Variant variantFromName(const std::string& name) {
    for (Variant v : kAllVariants)
        if (variantName(v) == name)
            return v;
    if (name == variantName(Variant::Align))
        return Variant::Align;
    throw std::invalid_argument("unknown variant '" + name + "' (known: regular, dcn_v1, dcn_v2, dk, align)");
}

at::Tensor normalizeImage(const at::Tensor& image) {
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(image.device());
    const std::vector<int64_t> shape = image.dim() == 4 ? std::vector<int64_t>{1, 3, 1, 1} : std::vector<int64_t>{3, 1, 1};
    const at::Tensor mean = at::tensor({float(kMean[0]), float(kMean[1]), float(kMean[2])}, opts).view(shape);
    const at::Tensor std = at::tensor({float(kStd[0]), float(kStd[1]), float(kStd[2])}, opts).view(shape);
    return (image.to(at::kFloat) - mean) / std;
}

bool isOffsetParameter(const std::string& qualifiedName) {
    return qualifiedName.find(".offset.") != std::string::npos ||
           qualifiedName.find(".kernel_offset.") != std::string::npos;
}

std::vector<at::Tensor> offsetConvOutputs(const torch::jit::Module& model, const at::Tensor& input) {
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> result;
    at::Tensor x = input;
    for (const char* name : {"stem", "down1", "conv2", "down2", "conv3", "down3", "block1", "block2", "block3"}) {
        Module layer = model.attr(name).toModule();
        if (layer.hasattr("offset"))
            result.push_back(layer.attr("offset").toModule().forward({x}).toTensor());
        else if (layer.hasattr("kernel_offset"))
            result.push_back(layer.attr("kernel_offset").toModule().forward({x}).toTensor());
        x = layer.forward({x}).toTensor();
    }
    return result;
}

torch::jit::Module buildModel(Variant variant, uint64_t seed) {
    if (variant == Variant::Align)
        return buildAlignModel(seed);
    // The deformable blocks' source names torchvision::deform_conv2d or deformscope::deform_kernel2d.
    ops::registerOperators();
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    Module net = newModule(cu, "SegNet");
    struct Layer {
        const char* name;
        int64_t in, out, stride;
    };
    const Layer trunk[] = {{"stem", 3, 16, 1},  {"down1", 16, 32, 2}, {"conv2", 32, 32, 1},
                           {"down2", 32, 48, 2}, {"conv3", 48, 48, 1}, {"down3", 48, 64, 2}};
    uint64_t index = 0;
    for (const Layer& l : trunk)
        net.register_module(l.name, convLayer(cu, l.in, l.out, 3, l.stride, true, false, mixSeed(seed, index++)));
    for (const char* name : {"block1", "block2", "block3"}) {
        const uint64_t s = mixSeed(seed, index++);
        switch (variant) {
        case Variant::Regular:
            net.register_module(name, convLayer(cu, 64, 64, 3, 1, true, false, s));
            break;
        case Variant::DCNv1:
        case Variant::DCNv2:
            net.register_module(name, deformableBlock(cu, 64, variant == Variant::DCNv2, s));
            break;
        case Variant::DK:
            net.register_module(name, deformableKernelBlock(cu, 64, s));
            break;
        case Variant::Align:
            break; // built above
        }
    }
    net.register_module("head", convLayer(cu, 64, 4, 1, 1, /*relu=*/false, false, mixSeed(seed, index++)));
    model::defineScript(net, R"(
def forward(self, x):
    h = x.size(2)
    w = x.size(3)
    y = self.stem.forward(x)
    y = self.down1.forward(y)
    y = self.conv2.forward(y)
    y = self.down2.forward(y)
    y = self.conv3.forward(y)
    y = self.down3.forward(y)
    y = self.block1.forward(y)
    y = self.block2.forward(y)
    y = self.block3.forward(y)
    y = self.head.forward(y)
    return torch.ops.aten.upsample_bilinear2d(y, [h, w], False, None, None)
)");
    return net;
}

} // namespace deformscope::samples
