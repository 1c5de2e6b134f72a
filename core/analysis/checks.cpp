// The analyses' part of `deformscope-cli selftest`: the ERF against its exact
// oracle on every device, and every analysis on each CUDA device against the CPU
// (and against itself: the same click twice gives the same numbers).
#include "core/analysis/checks.h"
#include "core/analysis/analysis.h"
#include "core/model/script.h"
#include "core/ops/registration.h"

#include <ATen/ATen.h>
#include <torch/script.h>

#include <cstdio>
#include <limits>
#include <filesystem>
#include <random>

namespace deformscope::analysis {

namespace {

using ops::checks::CheckResult;

std::string tempPath(const std::string& stem) {
    std::random_device rd;
    return (std::filesystem::temp_directory_path() / (stem + "-" + std::to_string(rd()) + ".pt")).string();
}

// 3 stacked 3×3 convolutions with all weights 1 (3 → 1 → 1 → 1 channels), 'same' padding.
std::string boxStack() {
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    torch::jit::Module net(c10::QualifiedName("__torch__.SelfTestBoxStack"), cu, true);
    net.register_attribute("training", c10::BoolType::get(), false);
    for (int i = 0; i < 3; ++i)
        net.register_parameter("w" + std::to_string(i), at::ones({1, i == 0 ? 3 : 1, 3, 3}), false);
    std::string body = "def forward(self, x):\n";
    for (int i = 0; i < 3; ++i)
        body += "    x = torch.conv2d(x, self.w" + std::to_string(i) + ", None, [1, 1], [1, 1], [1, 1], 1)\n";
    net.define(body + "    return x\n");
    const std::string path = tempPath("deformscope-selftest-box");
    net.save(path);
    return path;
}

// conv → DCNv2 (offsets and mask from a conv) → DCNv1, random fixed weights.
std::string deformableNet() {
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    torch::jit::Module net(c10::QualifiedName("__torch__.SelfTestDcn"), cu, true);
    net.register_attribute("training", c10::BoolType::get(), false);
    auto gen = at::detail::createCPUGenerator(5);
    auto p = [&](const char* name, std::vector<int64_t> shape, double std) {
        net.register_parameter(name, at::randn(shape, gen) * std, false);
    };
    p("w0", {8, 3, 3, 3}, 0.3);
    p("wo1", {27, 8, 3, 3}, 0.05);
    p("w1", {8, 8, 3, 3}, 0.2);
    p("wo2", {18, 8, 3, 3}, 0.05);
    p("w2", {8, 8, 3, 3}, 0.2);
    model::defineScript(net, R"(
def forward(self, x):
    h = torch.relu(torch.conv2d(x, self.w0, None, [2, 2], [1, 1], [1, 1], 1))
    om = torch.conv2d(h, self.wo1, None, [1, 1], [1, 1], [1, 1], 1)
    h = torch.relu(torch.ops.torchvision.deform_conv2d(h, self.w1, om[:, :18], torch.sigmoid(om[:, 18:]), torch.zeros([8], device=x.device), 1, 1, 1, 1, 1, 1, 1, 1, True))
    o2 = torch.conv2d(h, self.wo2, None, [1, 1], [1, 1], [1, 1], 1)
    return torch.ops.torchvision.deform_conv2d(h, self.w2, o2, torch.zeros([0], device=x.device), torch.zeros([8], device=x.device), 1, 1, 1, 1, 1, 1, 1, 1, False)
)");
    const std::string path = tempPath("deformscope-selftest-dcn");
    net.save(path);
    return path;
}

double relDiff(const at::Tensor& a, const at::Tensor& b) {
    const at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
    return (x - y).abs().max().item<double>() / std::max(1e-12, y.abs().max().item<double>());
}

} // namespace

std::vector<CheckResult> runAnalysisSelfTest(const std::vector<at::Device>& devices,
                                             const std::function<void(const CheckResult&)>& report) {
    std::vector<CheckResult> results;
    auto add = [&](CheckResult r) {
        if (report)
            report(r);
        results.push_back(std::move(r));
    };
    auto check = [&](const std::string& name, const std::string& device, double tolerance, const std::function<double()>& f) {
        CheckResult r;
        r.name = name;
        r.device = device;
        r.tolerance = tolerance;
        try {
            r.error = f();
            r.passed = r.error <= tolerance;
        } catch (const std::exception& e) {
            r.error = std::numeric_limits<double>::infinity();
            r.passed = false;
            r.detail = e.what();
        }
        add(r);
    };
    ops::registerOperators();
    const std::string box = boxStack(), dcn = deformableNet();
    auto gen = at::detail::createCPUGenerator(9);
    const at::Tensor x = at::randn({1, 3, 33, 33}, gen);
    const at::Tensor xd = at::randn({1, 3, 48, 48}, gen);
    for (const at::Device& device : devices) {
        const std::string name = device.str();
        check("analysis: ERF of 3 stacked 3x3 box convs == outer product of (1+z+z^2)^3", name, 1e-6, [&] {
            AnalysisSession s(model::LoadedModel::load(box, device), x);
            const at::Tensor got = s.erf(s.nodeAt(s.graph().layers().back().name, 16, 16)).map;
            const at::Tensor c = at::tensor({1., 3., 6., 7., 6., 3., 1.}, at::kDouble);
            at::Tensor expected = at::zeros({33, 33}, at::kDouble);
            expected.narrow(0, 13, 7).narrow(1, 13, 7).copy_(c.view({7, 1}) * c.view({1, 7}));
            return relDiff(got / got.max(), expected / expected.max());
        });
        check("analysis: the same click twice gives identical ERF and sampling weights", name, 0, [&] {
            AnalysisSession s(model::LoadedModel::load(dcn, device), xd);
            const Node node = s.nodeAt(s.graph().layers().back().name, 20, 27);
            const at::Tensor a = s.erf(node).map, b = s.erf(node).map;
            const SamplingTrace ta = s.sampling(node), tb = s.sampling(node);
            double diff = (a - b).abs().max().item<double>();
            for (size_t i = 0; i < ta.points.size(); ++i)
                diff = std::max(diff, std::abs(ta.points[i].weight - tb.points[i].weight));
            return diff;
        });
        if (!device.is_cuda())
            continue;
        AnalysisSession cpu(model::LoadedModel::load(dcn, at::Device(at::kCPU)), xd);
        const Node node = cpu.nodeAt(cpu.graph().layers().back().name, 20, 27);
        check("analysis: ERF on " + name + " == CPU", name, 1e-4, [&] {
            AnalysisSession g(model::LoadedModel::load(dcn, device), xd);
            return relDiff(g.erf(node).map, cpu.erf(node).map);
        });
        check("analysis: sampling points and weights on " + name + " == CPU", name, 1e-4, [&] {
            AnalysisSession g(model::LoadedModel::load(dcn, device), xd);
            const SamplingTrace a = g.sampling(node), b = cpu.sampling(node);
            if (a.points.size() != b.points.size())
                return std::numeric_limits<double>::infinity();
            double pos = 0, wmax = 0, wdiff = 0;
            for (size_t i = 0; i < a.points.size(); ++i) {
                pos = std::max({pos, std::abs(a.points[i].x - b.points[i].x), std::abs(a.points[i].y - b.points[i].y)});
                wmax = std::max(wmax, b.points[i].weight);
                wdiff = std::max(wdiff, std::abs(a.points[i].weight - b.points[i].weight));
            }
            return std::max(pos, wdiff / std::max(wmax, 1e-12));
        });
        check("analysis: saliency on " + name + " meets the bound (error of a fresh forward <= 0.1)", name, 0.1, [&] {
            AnalysisSession g(model::LoadedModel::load(dcn, device), xd);
            SaliencyOptions o;
            o.minCell = 4;
            const SaliencyResult a = g.saliency(node, o);
            return a.withinBound ? a.error : std::numeric_limits<double>::infinity();
        });
    }
    std::error_code ec;
    std::filesystem::remove(box, ec);
    std::filesystem::remove(dcn, ec);
    return results;
}

} // namespace deformscope::analysis
