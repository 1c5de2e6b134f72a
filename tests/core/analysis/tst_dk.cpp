// Deformable Kernel layers in the layer graph and the analyses, on the DK sample
// model (sample_models/dk.pt: depthwise-separable DK blocks block1..block3).
#include "core/analysis/analysis.h"
#include "core/analysis/analysis_internal.h"
#include "core/model/capture.h"
#include "core/model/model.h"
#include "core/model/script.h"
#include "core/ops/deform_kernel2d.h"
#include "core/ops/registration.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <QtTest>

#include <cmath>
#include <filesystem>

using namespace deformscope;
using namespace deformscope::analysis;

namespace {

std::string dkModel() { return std::string(DEFORMSCOPE_SOURCE_DIR) + "/sample_models/dk.pt"; }

at::Tensor randomInput(int64_t h, int64_t w, uint64_t seed = 7) {
    auto gen = at::detail::createCPUGenerator(seed);
    return at::randn({1, 3, h, w}, gen);
}

double maxAbs(const at::Tensor& t) { return t.abs().max().item<double>(); }

} // namespace

class TestDk : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void theLayerGraphListsDkLayers() {
        const model::LoadedModel m = model::LoadedModel::load(dkModel());
        const model::LayerGraph g = model::layerGraph(m, {128, 128});
        for (const char* name : {"block1", "block2", "block3"}) {
            const model::Layer* l = g.find(name);
            QVERIFY2(l, name);
            QCOMPARE(l->kind, model::LayerKind::Dk);
            QCOMPARE(std::string(model::kindName(l->kind)), std::string("dk"));
            QCOMPARE(l->kernel, (std::array<int64_t, 2>{3, 3}));
            QCOMPARE(l->scope, (std::array<int64_t, 2>{5, 5}));
            QCOMPARE(l->groups, int64_t(64));
            QVERIFY(!l->use_offset && !l->global_kernel_offsets && !l->deformable() && !l->movesSamples());
            QVERIFY(l->kernel_offset_source >= 0);
            QCOMPARE(g.layers()[size_t(l->kernel_offset_source)].name, std::string(name) + ".kernel_offset");
            // A 3×3 depthwise layer grows the receptive field by 2 input steps.
            const model::Layer& in = g.layers()[size_t(l->inputs.at(0))];
            QCOMPARE(l->rf[0], in.rf[0] + 2 * in.jump[0]);
        }
        QVERIFY(g.toTable().find("dk s5") != std::string::npos);
    }

    void capturedKernelOffsetsEqualTheRecomputedOnes() {
        const model::LoadedModel m = model::LoadedModel::load(dkModel());
        const model::Capture c = model::captureForward(m, randomInput(128, 128));
        for (const char* name : {"block1", "block2", "block3"}) {
            const model::Layer* l = c.graph.find(name);
            QVERIFY(l);
            const model::LayerTensors& t = c.tensors[size_t(l->index)];
            QVERIFY(t.kernelOffset.defined());
            QCOMPARE(t.kernelOffset.sizes(), (at::IntArrayRef{1, 18, 16, 16}));
            // Run the block's kernel_offset conv on the captured input directly.
            torch::NoGradGuard noGrad;
            const at::Tensor again =
                m.module().attr(name).toModule().attr("kernel_offset").toModule().forward({t.input}).toTensor();
            QVERIFY(maxAbs(again - t.kernelOffset) < 1e-6);
            QVERIFY(maxAbs(t.kernelOffset) > 1e-3); // trained: the kernels really move
            QCOMPARE(t.weight.sizes(), (at::IntArrayRef{64, 1, 5, 5}));
        }
    }

    void effectiveKernelIsTheResampledScope() {
        // dkEffectiveKernel against a direct per-tap bilinear read of the scope.
        const model::LoadedModel m = model::LoadedModel::load(dkModel());
        const model::Capture c = model::captureForward(m, randomInput(128, 128, 3));
        const model::Layer* l = c.graph.find("block2");
        const model::LayerTensors& t = c.tensors[size_t(l->index)];
        const at::Tensor iy = at::tensor({3, 9}, at::kLong), ix = at::tensor({4, 12}, at::kLong);
        const at::Tensor weff = analysis::detail::dkEffectiveKernel(*l, t, iy, ix); // [P, C, K]
        const at::Tensor w = t.weight.to(at::kDouble);
        auto bilinear = [&](int64_t ch, double y, double x) {
            if (y <= -1 || y >= 5 || x <= -1 || x >= 5)
                return 0.0;
            const double y0 = std::floor(y), x0 = std::floor(x);
            double v = 0;
            for (int dy = 0; dy < 2; ++dy)
                for (int dx = 0; dx < 2; ++dx) {
                    const int64_t cy = int64_t(y0) + dy, cx = int64_t(x0) + dx;
                    if (cy < 0 || cy >= 5 || cx < 0 || cx >= 5)
                        continue;
                    const double wy = dy ? y - y0 : 1 - (y - y0), wx = dx ? x - x0 : 1 - (x - x0);
                    v += wy * wx * w[ch][0][cy][cx].item<double>();
                }
            return v;
        };
        for (int p = 0; p < 2; ++p)
            for (int64_t k = 0; k < 9; ++k)
                for (int64_t ch : {0, 17, 63}) {
                    const double dy = t.kernelOffset[0][2 * k][iy[p].item<int64_t>()][ix[p].item<int64_t>()].item<double>();
                    const double dx = t.kernelOffset[0][2 * k + 1][iy[p].item<int64_t>()][ix[p].item<int64_t>()].item<double>();
                    const double expected = bilinear(ch, double(k / 3) + 1 + dy, double(k % 3) + 1 + dx);
                    QVERIFY(std::abs(weff[p][ch][k].item<double>() - expected) < 1e-6);
                }
    }

    void samplingOfADkNodeIsTheRegularGridWeightedByAutograd() {
        AnalysisSession s(model::LoadedModel::load(dkModel()), randomInput(128, 128, 5));
        const Node node = s.nodeAt("block3", 61, 45);
        SamplingOptions o;
        o.levels = 1;
        const SamplingTrace trace = s.sampling(node, o);
        QCOMPARE(int(trace.points.size()), 9);
        const model::Layer& l = s.layer("block3");
        const model::LayerTensors& t = s.capture().tensors[size_t(l.index)];
        // The points: the regular 3×3 grid (DK moves weights, not samples).
        const model::Layer& in = s.graph().layers()[size_t(l.inputs.at(0))];
        for (const SamplingPoint& p : trace.points) {
            const double fy = double(node.fy) - 1 + double(p.tap / 3), fx = double(node.fx) - 1 + double(p.tap % 3);
            QVERIFY(std::abs(p.y - (in.start[0] + fy * in.jump[0])) < 1e-9);
            QVERIFY(std::abs(p.x - (in.start[1] + fx * in.jump[1])) < 1e-9);
        }
        // Their weights: |∂r/∂(image offset)| at zero image offsets, by autograd on the operator itself
        // (the same layer with use_offset and a zero offset tensor that requires grad).
        ops::DeformKernel2dParams p;
        p.pad_h = p.pad_w = 1;
        p.use_offset = true;
        const at::Tensor offset = at::zeros({1, 18, 16, 16}).requires_grad_(true);
        const at::Tensor bias = m_biasOf(s, "block3");
        const at::Tensor y = ops::deformKernel2d(t.input.detach(), t.weight.detach(), t.kernelOffset.detach(), offset, bias, p);
        const at::Tensor r = y[0].index({at::indexing::Slice(), node.fy, node.fx}).sum();
        const at::Tensor grad = torch::autograd::grad({r}, {offset})[0];
        double total = 0;
        for (const SamplingPoint& pt : trace.points) {
            const double gy = grad[0][2 * pt.tap][node.fy][node.fx].item<double>();
            const double gx = grad[0][2 * pt.tap + 1][node.fy][node.fx].item<double>();
            QVERIFY2(std::abs(pt.weight - std::hypot(gy, gx)) < 1e-4 * (1 + std::hypot(gy, gx)),
                     qPrintable(QString("tap %1: %2 vs %3").arg(pt.tap).arg(pt.weight).arg(std::hypot(gy, gx))));
            total += pt.weight;
        }
        QVERIFY(total > 0);
        // Each tap's effective weight: the mean over channels of |scope kernel resampled at q_k + Δk(node)|.
        const at::Tensor w = t.weight.to(at::kDouble);
        for (const SamplingPoint& pt : trace.points) {
            const double dy = t.kernelOffset[0][2 * pt.tap][node.fy][node.fx].item<double>();
            const double dx = t.kernelOffset[0][2 * pt.tap + 1][node.fy][node.fx].item<double>();
            const double qy = double(pt.tap / 3) + 1 + dy, qx = double(pt.tap % 3) + 1 + dx;
            double sum = 0;
            for (int64_t ch = 0; ch < 64; ++ch) {
                double v = 0;
                if (qy > -1 && qy < 5 && qx > -1 && qx < 5)
                    for (int cy = int(std::floor(qy)); cy <= int(std::floor(qy)) + 1; ++cy)
                        for (int cx = int(std::floor(qx)); cx <= int(std::floor(qx)) + 1; ++cx)
                            if (cy >= 0 && cy < 5 && cx >= 0 && cx < 5)
                                v += (1 - std::abs(qy - cy)) * (1 - std::abs(qx - cx)) * w[ch][0][cy][cx].item<double>();
                sum += std::abs(v);
            }
            QVERIFY2(std::abs(pt.kernelWeight - sum / 64) < 1e-6,
                     qPrintable(QString("tap %1: %2 vs %3").arg(pt.tap).arg(pt.kernelWeight).arg(sum / 64)));
        }
        // Taps of other layers carry none.
        SamplingOptions two;
        two.levels = 2;
        bool nonDk = false;
        for (const SamplingPoint& pt : AnalysisSession(model::LoadedModel::load(std::string(DEFORMSCOPE_SOURCE_DIR) +
                                                                                "/sample_models/dcn_v2.pt"),
                                                       randomInput(128, 128, 5))
                                            .sampling(Node{"block3", 6, 7, {}}, two)
                                            .points) {
            QVERIFY(std::isnan(pt.kernelWeight));
            nonDk = true;
        }
        QVERIFY(nonDk);
    }

    void erfOfADkModelEqualsFiniteDifferences() {
        const model::LoadedModel m = model::LoadedModel::load(dkModel());
        const at::Tensor x = randomInput(64, 64, 9);
        AnalysisSession s(m, x);
        const Node node = s.nodeAt("block3", 30, 34);
        ErfOptions o;
        o.isSigned = true;
        const at::Tensor erf = s.erf(node, o).map; // Σ over colours of ∂r/∂I
        const double peak = maxAbs(erf);
        QVERIFY(peak > 0);
        // The strongest pixel and two others inside the receptive field.
        const int64_t arg = erf.abs().argmax().item<int64_t>();
        const std::vector<std::array<int64_t, 2>> pixels{{arg / 64, arg % 64}, {26, 30}, {36, 33}};
        const double h = 1e-2;
        for (const auto& px : pixels) {
            double fd = 0;
            for (int64_t ch = 0; ch < 3; ++ch) {
                at::Tensor up = x.clone(), down = x.clone();
                up[0][ch][px[0]][px[1]] += h;
                down[0][ch][px[0]][px[1]] -= h;
                const double ru = AnalysisSession(m, up).response(node).sum().item<double>();
                const double rd = AnalysisSession(m, down).response(node).sum().item<double>();
                fd += (ru - rd) / (2 * h);
            }
            const double got = erf[px[0]][px[1]].item<double>();
            QVERIFY2(std::abs(got - fd) < 2e-2 * peak,
                     qPrintable(QString("pixel %1,%2: erf %3, finite differences %4").arg(px[0]).arg(px[1]).arg(got).arg(fd)));
        }
    }

    void saliencyOfADkModelHoldsItsBound() {
        AnalysisSession s(model::LoadedModel::load(dkModel()), randomInput(128, 128, 2));
        SaliencyOptions o;
        o.targetForwards = 80;
        const SaliencyResult r = s.saliency(s.nodeAt("block3", 64, 64), o);
        QVERIFY(r.withinBound);
        QVERIFY(r.error <= o.epsilon + 1e-9);
        QVERIFY(r.areaFraction > 0 && r.areaFraction <= 1);
    }

    void kernelViewIsTheScopeAndTheLearnedKernelPositions() {
        AnalysisSession s(model::LoadedModel::load(dkModel()), randomInput(128, 128, 9));
        const model::Layer& l = s.layer("block2");
        const model::LayerTensors& t = s.capture().tensors[size_t(l.index)];
        const at::Tensor w = t.weight.to(at::kDouble); // [64, 1, 5, 5]
        auto bilinear = [&](int64_t ch, double y, double x) {
            if (y <= -1 || y >= 5 || x <= -1 || x >= 5)
                return 0.0;
            double v = 0;
            for (int cy = int(std::floor(y)); cy <= int(std::floor(y)) + 1; ++cy)
                for (int cx = int(std::floor(x)); cx <= int(std::floor(x)) + 1; ++cx)
                    if (cy >= 0 && cy < 5 && cx >= 0 && cx < 5)
                        v += (1 - std::abs(y - cy)) * (1 - std::abs(x - cx)) * w[ch][0][cy][cx].item<double>();
            return v;
        };
        for (const Response response : {Response{}, Response{Response::Kind::Channel, 17}}) {
            const Node node{"block2", 5, 11, response};
            const KernelView v = s.kernel(node);
            QCOMPARE(v.layer, std::string("block2"));
            QCOMPARE(v.fy, int64_t(5));
            QCOMPARE(v.fx, int64_t(11));
            QCOMPARE(v.channel, response.kind == Response::Kind::Channel ? int64_t(17) : int64_t(-1));
            QCOMPARE(v.scope, (std::array<int64_t, 2>{5, 5}));
            QCOMPARE(v.kernel, (std::array<int64_t, 2>{3, 3}));
            QVERIFY(!v.global && v.notes.empty());
            QCOMPARE(v.centre, s.nodeCentre(node));
            // The scope map: |W| of the scope kernel, mean over channels (or the response's channel).
            const at::Tensor expectedScope = v.channel >= 0 ? w[17][0].abs() : w.abs().mean(0)[0];
            QCOMPARE(v.scopeWeight.sizes(), (at::IntArrayRef{5, 5}));
            QVERIFY(maxAbs(v.scopeWeight.to(at::kDouble) - expectedScope) < 1e-6);
            // Each tap: the centred regular grid, moved by the captured kernel offset at the node, and the
            // resampled weight there.
            QCOMPARE(int(v.taps.size()), 9);
            double shift = 0;
            for (const KernelTap& tap : v.taps) {
                const double dy = t.kernelOffset[0][2 * tap.tap][5][11].item<double>();
                const double dx = t.kernelOffset[0][2 * tap.tap + 1][5][11].item<double>();
                QCOMPARE(tap.baseY, double(tap.tap / 3) + 1);
                QCOMPARE(tap.baseX, double(tap.tap % 3) + 1);
                QVERIFY(std::abs(tap.y - (tap.baseY + dy)) < 1e-6 && std::abs(tap.x - (tap.baseX + dx)) < 1e-6);
                QCOMPARE(tap.inside, tap.y > -1 && tap.y < 5 && tap.x > -1 && tap.x < 5);
                double expected = 0;
                if (v.channel >= 0) {
                    expected = std::abs(bilinear(17, tap.y, tap.x));
                } else {
                    for (int64_t ch = 0; ch < 64; ++ch)
                        expected += std::abs(bilinear(ch, tap.y, tap.x));
                    expected /= 64;
                }
                QVERIFY2(std::abs(tap.weight - expected) < 1e-6,
                         qPrintable(QString("tap %1: %2 vs %3").arg(tap.tap).arg(tap.weight).arg(expected)));
                shift += std::hypot(dy, dx);
            }
            QVERIFY(std::abs(v.meanShift - shift / 9) < 1e-6);
            QVERIFY(v.meanShift > 1e-3); // the trained kernels really move
        }
    }

    void kernelViewOfANodeAboveADkLayerShowsTheNearestOneBelow() {
        AnalysisSession s(model::LoadedModel::load(dkModel()), randomInput(128, 128, 9));
        // head (1×1 over block3.pointwise) -> block3; the upsampled output -> block3 at the nearest position.
        QCOMPARE(s.kernelLayer(Node{"head", 3, 4, {}}), std::string("block3"));
        QCOMPARE(s.kernelLayer(Node{"block2.kernel_offset", 3, 4, {}}), std::string("block1"));
        QCOMPARE(s.kernelLayer(Node{"down3", 3, 4, {}}), std::string());
        const KernelView v = s.kernel(s.nodeAt("upsample_bilinear2d", 37, 90));
        QCOMPARE(v.layer, std::string("block3"));
        const Node there = s.nodeAt("block3", 37, 90);
        QCOMPARE(v.fy, there.fy);
        QCOMPARE(v.fx, there.fx);
        QCOMPARE(int(v.notes.size()), 1);
        QVERIFY(v.notes[0].find("nearest DK layer below") != std::string::npos);
        // The same position seen from block3 itself gives the same taps.
        const KernelView direct = s.kernel(there);
        for (size_t k = 0; k < 9; ++k)
            QCOMPARE(v.taps[k].y, direct.taps[k].y);

        // Below every DK layer, or in a model without one: a message saying so.
        try {
            s.kernel(Node{"down3", 1, 1, {}});
            QFAIL("a node below every DK layer has no kernel view");
        } catch (const AnalysisError& e) {
            QVERIFY2(std::string(e.what()).find("its DK layers: block1, block2, block3") != std::string::npos, e.what());
        }
        AnalysisSession v2(model::LoadedModel::load(std::string(DEFORMSCOPE_SOURCE_DIR) + "/sample_models/dcn_v2.pt"),
                           randomInput(128, 128, 9));
        QVERIFY_THROWS_EXCEPTION(AnalysisError, v2.kernel(Node{"block3", 1, 1, {}}));
        QCOMPARE(v2.kernelLayer(Node{"block3", 1, 1, {}}), std::string());
    }

    void kernelViewOfAGlobalDkLayerIsOneKernelPerImage() {
        // A DK layer in global mode (kernel offsets pooled over the image, [1, 18, 1, 1]).
        ops::registerOperators();
        auto cu = std::make_shared<torch::jit::CompilationUnit>();
        torch::jit::Module net(c10::QualifiedName("__torch__.GlobalDk"), cu, true);
        net.register_attribute("training", c10::BoolType::get(), false);
        auto gen = at::detail::createCPUGenerator(11);
        net.register_parameter("w0", at::randn({4, 3, 3, 3}, gen) * 0.3, false);
        net.register_parameter("wk", at::randn({18, 4, 3, 3}, gen) * 0.5, false);
        net.register_parameter("scope", at::randn({4, 1, 5, 5}, gen) * 0.3, false);
        net.register_parameter("b", at::zeros({4}), false);
        model::defineScript(net, R"(
def forward(self, x):
    h = torch.relu(torch.conv2d(x, self.w0, None, [1, 1], [1, 1], [1, 1], 1))
    ko = torch.mean(torch.conv2d(h, self.wk, None, [1, 1], [1, 1], [1, 1], 1), [2, 3], True)
    return torch.ops.deformscope.deform_kernel2d(h, self.scope, ko, torch.zeros([0], device=x.device), self.b, 1, 1, 1, 1, 1, 1, 3, 3, False)
)");
        const std::string path = (std::filesystem::temp_directory_path() / "deformscope-tst-global-dk.pt").string();
        net.save(path);
        const at::Tensor x = randomInput(16, 16, 4);
        AnalysisSession s(model::LoadedModel::load(path), x);
        std::filesystem::remove(path);
        const model::Layer* dk = nullptr;
        for (const model::Layer& l : s.graph().layers())
            if (l.kind == model::LayerKind::Dk)
                dk = &l;
        QVERIFY(dk);
        QVERIFY(dk->global_kernel_offsets);
        // The kernel offsets, recomputed directly.
        torch::NoGradGuard noGrad;
        const at::Tensor h = at::relu(at::conv2d(x, net.attr("w0").toTensor(), {}, 1, 1));
        const at::Tensor ko = at::conv2d(h, net.attr("wk").toTensor(), {}, 1, 1).mean({2, 3}); // [1, 18]
        const KernelView a = s.kernel(Node{dk->name, 3, 9, {}});
        const KernelView b = s.kernel(Node{dk->name, 12, 1, {}});
        QVERIFY(a.global && b.global);
        QCOMPARE(int(a.taps.size()), 9);
        for (size_t k = 0; k < 9; ++k) {
            QVERIFY(std::abs(a.taps[k].y - (a.taps[k].baseY + ko[0][2 * k].item<double>())) < 1e-5);
            QVERIFY(std::abs(a.taps[k].x - (a.taps[k].baseX + ko[0][2 * k + 1].item<double>())) < 1e-5);
            // One kernel per image: every position reads the same places with the same weights.
            QCOMPARE(b.taps[k].y, a.taps[k].y);
            QCOMPARE(b.taps[k].weight, a.taps[k].weight);
        }
        // The sampling trace's per-tap kernel weight is the same resampled kernel.
        SamplingOptions one;
        one.levels = 1;
        for (const SamplingPoint& p : s.sampling(Node{dk->name, 3, 9, {}}, one).points)
            QVERIFY(std::abs(p.kernelWeight - a.taps[size_t(p.tap)].weight) < 1e-9);
    }

private:
    static at::Tensor m_biasOf(const AnalysisSession& s, const char* block) {
        return s.model().module().attr(block).toModule().attr("bias").toTensor().detach();
    }
};

QTEST_GUILESS_MAIN(TestDk)
#include "tst_dk.moc"
