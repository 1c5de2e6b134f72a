#include "sample_models/recipe/align.h"

#include "sample_models/recipe/layers.h"

#include "core/model/script.h"
#include "core/ops/registration.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace deformscope::samples {

using namespace detail;
using torch::jit::Module;

namespace {

// A sequence of conv layers conv1, conv2, ... run in order.
Module convStack(const std::shared_ptr<torch::jit::CompilationUnit>& cu, const std::string& className,
                 const std::vector<Module>& layers) {
    Module m = newModule(cu, className);
    std::string source = "def forward(self, x):\n    y = x\n";
    for (size_t i = 0; i < layers.size(); ++i) {
        const std::string name = "conv" + std::to_string(i + 1);
        m.register_module(name, layers[i]);
        source += "    y = self." + name + ".forward(y)\n";
    }
    model::defineScript(m, source + "    return y\n");
    return m;
}

// The offset predictor (align.h): the fixed matching cost, its two estimates,
// then the conv stack conv1..conv6 on cat([f_ref, f_sup, estimates]).
Module motionNet(const std::shared_ptr<torch::jit::CompilationUnit>& cu, const std::vector<Module>& layers) {
    Module m = newModule(cu, "Motion");
    static_assert(kAlignSearchRadius == 6, "the source below spells the search window out: 13 x 13, padding 6");
    std::string source = R"(
def estimate(self, cost):
    # softmax over the 169 displacements; expected (dy, dx) and the largest probability
    p = torch.softmax(cost * -10.0, 1)
    d = torch.arange(13, dtype=p.dtype, device=p.device) - 6.0
    dy = (p * d.view([1, 13, 1]).expand([1, 13, 13]).reshape([1, 169, 1, 1])).sum([1], True)
    dx = (p * d.view([1, 1, 13]).expand([1, 13, 13]).reshape([1, 169, 1, 1])).sum([1], True)
    return torch.cat([dy, dx, p.amax([1], True)], 1)

def box(self, integral, k: int, h: int, w: int):
    # mean over a k x k window, from the integral image of the cost padded by 32
    a = 32 - k // 2
    b = a + k
    s = integral[:, :, b:b + h, b:b + w] - integral[:, :, a:a + h, b:b + w] - integral[:, :, b:b + h, a:a + w] + integral[:, :, a:a + h, a:a + w]
    return s / float(k * k)

def forward(self, f_ref, f_sup, reference, support):
    n = reference.size(0)
    h = reference.size(2)
    w = reference.size(3)
    # cost[:, 13 * (dy + 6) + (dx + 6)] at p: |reference(p) - support(p + (dy, dx))|^2 over RGB
    cols = torch.im2col(support.detach(), [13, 13], [1, 1], [6, 6], [1, 1]).view([n, 3, 169, h, w])
    cost = (reference.detach().unsqueeze(2) - cols).pow(2).sum([1])
    fine = torch.avg_pool2d(cost, [5, 5], [1, 1], [2, 2])
    integral = torch.constant_pad_nd(torch.constant_pad_nd(cost, [32, 32, 32, 32], 0.0).cumsum(3).cumsum(2), [1, 0, 1, 0], 0.0)
    fused = fine
    for k in [9, 17, 33, 65]:
        fused = fused + self.box(integral, k, h, w)
    e_fine = self.estimate(fine)
    e_fused = self.estimate(fused)
    y = torch.cat([f_ref, f_sup, e_fine, e_fused], 1)
)";
    for (size_t i = 0; i < layers.size(); ++i) {
        const std::string name = "conv" + std::to_string(i + 1);
        m.register_module(name, layers[i]);
        source += "    y = self." + name + ".forward(y)\n";
    }
    model::defineScript(m, source + "    return torch.cat([y, e_fine[:, 0:2], e_fused[:, 0:2]], 1)\n");
    return m;
}

// The DCNv2 layer: offsets and mask from `fea` (through its conv `offset`), sampling `x`.
Module alignLayer(const std::shared_ptr<torch::jit::CompilationUnit>& cu, uint64_t seed) {
    Module m = newModule(cu, "DeformAlign");
    addConvParameters(m, kAlignFeatures, kAlignFeatures, 3, /*relu=*/true, /*zero=*/false, seed);
    m.register_module("offset", convLayer(cu, kAlignMotionWidth + 4, 27, 3, 1, /*relu=*/false, /*zero=*/true, 0));
    model::defineScript(m, R"(
def modulated(self, x, om):
    offset = om[:, :18]
    mask = torch.sigmoid(om[:, 18:])
    y = torch.ops.torchvision.deform_conv2d(x, self.weight, offset, mask, self.bias, 1, 1, 1, 1, 1, 1, 1, 1, True)
    return torch.relu(y)

def forward(self, x, fea):
    return self.modulated(x, self.offset.forward(fea))
)");
    return m;
}

} // namespace

Module buildAlignModel(uint64_t seed) {
    ops::registerOperators(); // the source names torchvision::deform_conv2d
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    Module net = newModule(cu, "AlignNet");
    uint64_t index = 0;
    auto conv = [&](int64_t in, int64_t out, bool relu, int64_t dilation) {
        return convLayer(cu, in, out, 3, 1, relu, false, mixSeed(seed, index++), dilation);
    };
    const int64_t c = kAlignFeatures, mw = kAlignMotionWidth;
    net.register_module("feat", convStack(cu, "Features", {conv(3, 16, true, 1), conv(16, c, true, 1)}));
    net.register_module("motion", motionNet(cu, {conv(2 * c + 6, mw, true, 1), conv(mw, mw, true, 2),
                                                 conv(mw, mw, true, 4), conv(mw, mw, true, 8),
                                                 conv(mw, mw, true, 16), conv(mw, mw, true, 1)}));
    net.register_module("align", alignLayer(cu, mixSeed(seed, index++)));
    net.register_module("recon", convStack(cu, "Reconstruction", {conv(c, 16, true, 1), conv(16, 3, false, 1)}));
    model::defineScript(net, R"(
def forward(self, reference, support):
    f_ref = self.feat.forward(reference)
    f_sup = self.feat.forward(support)
    fea = self.motion.forward(f_ref, f_sup, reference, support)
    aligned = self.align.forward(f_sup, fea)
    return self.recon.forward(aligned)

def forward_with_offsets(self, reference, support):
    f_ref = self.feat.forward(reference)
    f_sup = self.feat.forward(support)
    fea = self.motion.forward(f_ref, f_sup, reference, support)
    om = self.align.offset.forward(fea)
    aligned = self.align.modulated(f_sup, om)
    return self.recon.forward(aligned), om
)");
    return net;
}

at::Tensor offsetMotion(const at::Tensor& om) {
    if (om.dim() != 4 || om.size(1) < 18)
        throw std::invalid_argument("offsetMotion: expected [N, 18 or more, H, W]");
    const at::Tensor dydx = om.slice(1, 0, 18).unflatten(1, {9, 2}).mean(1); // [N, 2, H, W]: dy, dx
    return dydx.flip({1});
}

} // namespace deformscope::samples
