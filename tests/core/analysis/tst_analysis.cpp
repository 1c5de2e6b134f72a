// The analyses of core/analysis on real models: the ERF against its exact oracle
// and against Python's input gradient, the sampling trace against the captured
// offsets and the expected grids, contribution weights against autograd, the
// saliency bound, the metrics, and the errors a user can cause.
#include "core/analysis/analysis_internal.h"
#include "core/analysis/scale_map.h"
#include "core/model/model.h"
#include "core/ops/deform_conv2d.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <functional>
#include <set>

using namespace deformscope;
using namespace deformscope::analysis;

namespace {

std::string fixture(const char* name) { return std::string(DEFORMSCOPE_MODEL_FIXTURE_DIR) + "/" + name; }
std::string sampleModel(const char* name) {
    return std::string(DEFORMSCOPE_SOURCE_DIR) + "/sample_models/" + name + ".pt";
}

at::Tensor pythonTensor(const char* name) {
    static torch::jit::Module data = torch::jit::load(fixture("fixture_data.pt"));
    return data.attr(name).toTensor();
}

double maxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
    return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

std::string messageOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no exception)";
}

// n stacked k×k linear convolutions with all weights 1 (3 → 1 → … → 1 channels),
// 'same' padding, no bias, each its own submodule c0..c{n-1}; saved as TorchScript.
std::string convStack(const QTemporaryDir& dir, int n, int k) {
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    torch::jit::Module net(c10::QualifiedName("__torch__.Stack"), cu, true);
    net.register_attribute("training", c10::BoolType::get(), false);
    std::string body = "def forward(self, x):\n";
    for (int i = 0; i < n; ++i) {
        torch::jit::Module c(c10::QualifiedName("__torch__.Conv"), cu, true);
        c.register_attribute("training", c10::BoolType::get(), false);
        c.register_parameter("weight", at::ones({1, i == 0 ? 3 : 1, k, k}), false);
        c.define("def forward(self, x):\n    return torch.conv2d(x, self.weight, None, [1, 1], [" +
                 std::to_string(k / 2) + ", " + std::to_string(k / 2) + "], [1, 1], 1)\n");
        net.register_module("c" + std::to_string(i), c);
        body += "    x = self.c" + std::to_string(i) + ".forward(x)\n";
    }
    body += "    return x\n";
    net.define(body);
    const std::string path = dir.filePath(QString("stack_%1_%2.pt").arg(n).arg(k)).toStdString();
    net.save(path);
    return path;
}

// Coefficients of (1 + z + … + z^(k−1))^n.
std::vector<double> boxPower(int n, int k) {
    std::vector<double> c{1};
    for (int i = 0; i < n; ++i) {
        std::vector<double> next(c.size() + size_t(k) - 1, 0);
        for (size_t a = 0; a < c.size(); ++a)
            for (int b = 0; b < k; ++b)
                next[a + size_t(b)] += c[a];
        c = next;
    }
    return c;
}

at::Tensor randomInput(int64_t h, int64_t w, uint64_t seed = 7) {
    auto gen = at::detail::createCPUGenerator(seed);
    return at::randn({1, 3, h, w}, gen);
}

} // namespace

class TestAnalysis : public QObject {
    Q_OBJECT

private Q_SLOTS:
    // ---- ERF -------------------------------------------------------------------

    void erfOfStackedBoxConvsIsTheBoxPower_data() {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("k");
        for (int k : {3, 5})
            for (int n = 1; n <= 4; ++n)
                QTest::addRow("n=%d k=%d", n, k) << n << k;
    }
    void erfOfStackedBoxConvsIsTheBoxPower() {
        QFETCH(int, n);
        QFETCH(int, k);
        QTemporaryDir dir;
        const int64_t S = n * (k - 1) + 9; // the support plus a margin of 4 on each side
        AnalysisSession s(model::LoadedModel::load(convStack(dir, n, k)), randomInput(S, S));
        const Node node = s.nodeAt("c" + std::to_string(n - 1), double(S / 2), double(S / 2));
        QCOMPARE(node.fy, S / 2);
        const ErfResult erf = s.erf(node);
        const std::vector<double> c = boxPower(n, k);
        const int64_t r = int64_t(c.size()) / 2;
        at::Tensor expected = at::zeros({S, S}, at::kDouble);
        for (int64_t y = -r; y <= r; ++y)
            for (int64_t x = -r; x <= r; ++x)
                expected[S / 2 + y][S / 2 + x] = c[size_t(y + r)] * c[size_t(x + r)];
        const at::Tensor got = erf.map.to(at::kDouble);
        QVERIFY(maxAbsDiff(got / got.max(), expected / expected.max()) < 1e-6);
        // The theoretical RF is the support.
        QCOMPARE(s.layer(node.layer).rf[0], double(n * (k - 1) + 1));
    }

    void erfEqualsPythonsInputGradient() {
        // make_fixture.py: d(layer3.conv2[0, 0, 1, 2]) / d input, torchvision's kernel in Python.
        const at::Tensor x = pythonTensor("input");
        AnalysisSession s(model::LoadedModel::load(fixture("fixture_model.pt")), x);
        const Node node{"layer3.conv2", 1, 2, *Response::parse("channel:0")};
        const at::Tensor grad = pythonTensor("layer3_node_input_grad");
        ErfOptions signedErf;
        signedErf.isSigned = true;
        const at::Tensor expectedSigned = grad.sum(1)[0], expectedAbs = grad.abs().sum(1)[0];
        const double scale = expectedAbs.abs().max().item<double>();
        QVERIFY(scale > 0);
        QVERIFY2(maxAbsDiff(s.erf(node, signedErf).map, expectedSigned) < 1e-5 * scale,
                 qPrintable(QString::number(maxAbsDiff(s.erf(node, signedErf).map, expectedSigned))));
        QVERIFY(maxAbsDiff(s.erf(node).map, expectedAbs) < 1e-5 * scale);
    }

    void sameClickGivesTheSameNumbersTwice() {
        AnalysisSession s(model::LoadedModel::load(sampleModel("dcn_v2")), randomInput(128, 128));
        const Node node = s.nodeAt("block3", 60, 70);
        const ErfResult a = s.erf(node), b = s.erf(node);
        QVERIFY(at::equal(a.map, b.map));
        const SamplingTrace ta = s.sampling(node), tb = s.sampling(node);
        QCOMPARE(ta.points.size(), tb.points.size());
        for (size_t i = 0; i < ta.points.size(); ++i) {
            QCOMPARE(ta.points[i].x, tb.points[i].x);
            QCOMPARE(ta.points[i].weight, tb.points[i].weight);
        }
    }

    void batchedErfsEqualSingleOnes() {
        AnalysisSession s(model::LoadedModel::load(sampleModel("dcn_v1")), randomInput(128, 128));
        const std::vector<Node> nodes{s.nodeAt("block3", 30, 40), s.nodeAt("block2", 90, 100, *Response::parse("channel:5")),
                                      s.nodeAt("block3", 64, 64, *Response::parse("class:2"))};
        const std::vector<ErfResult> batch = s.erfBatch(nodes);
        QCOMPARE(batch.size(), nodes.size());
        for (size_t i = 0; i < nodes.size(); ++i) {
            const at::Tensor single = s.erf(nodes[i]).map;
            QVERIFY(single.abs().max().item<double>() > 0);
            QVERIFY(maxAbsDiff(batch[i].map, single) < 1e-5 * single.abs().max().item<double>());
        }
    }

    void erfMetricsOfKnownMaps() {
        // A single hot pixel: every mass fraction needs exactly that pixel.
        at::Tensor delta = at::zeros({21, 21});
        delta[10][12] = 2;
        ErfMetrics m = erfMetrics(delta, {10, 10}, {5, 5});
        QCOMPARE(m.areaPixels[0], int64_t(1));
        QCOMPARE(m.areaPixels[2], int64_t(1));
        QCOMPARE(m.centroid[0], 12.0);
        QCOMPARE(m.centroid[1], 10.0);
        QCOMPARE(m.radialSpread, 0.0);
        QCOMPARE(m.rfAreaPixels, 25.0);
        // A uniform 5×5 block centred on the node: 90 % of the mass needs 23 of its 25 pixels,
        // and RepLKNet's 0.5 square is the 5×5 itself (a 3×3 holds only 9/25).
        at::Tensor block = at::zeros({21, 21});
        block.narrow(0, 8, 5).narrow(1, 8, 5).fill_(1);
        m = erfMetrics(block, {10, 10}, {5, 5});
        QCOMPARE(m.areaPixels[1], int64_t(23));
        QCOMPARE(m.highContributionSide[1], int64_t(3)); // 9/25 = 0.36 > 0.3
        QCOMPARE(m.highContributionSide[2], int64_t(5));
        QVERIFY(std::abs(m.highContributionRatio[2] - 25.0 / 441.0) < 1e-12);
        QVERIFY(std::abs(m.area90ToRf - 23.0 / 25.0) < 1e-12);
        QVERIFY(std::abs(m.spread[0] - std::sqrt(2.0)) < 1e-9);
    }

    // ---- sampling ----------------------------------------------------------------

    void regularStackGivesTheExpectedGrids() {
        AnalysisSession s(model::LoadedModel::load(sampleModel("regular")), randomInput(128, 128));
        const Node node{"block3", 8, 7, {}};
        const auto c = s.nodeCentre(node); // x, y
        const SamplingTrace t = s.sampling(node);
        QCOMPARE(t.levels, 3);
        QCOMPARE(t.points.size(), size_t(9 + 81 + 729));
        const double jump = s.layer("block2").jump[0];
        QCOMPARE(jump, 8.0);
        for (int level = 1; level <= 3; ++level) {
            std::set<std::pair<long, long>> cells;
            std::map<std::pair<long, long>, int> count;
            for (const SamplingPoint& p : t.points)
                if (p.level == level) {
                    const double gx = (p.x - c[0]) / jump, gy = (p.y - c[1]) / jump;
                    QVERIFY(std::abs(gx - std::round(gx)) < 1e-9 && std::abs(gy - std::round(gy)) < 1e-9);
                    QVERIFY(std::abs(gx) <= level && std::abs(gy) <= level);
                    count[{std::lround(gx), std::lround(gy)}]++;
                }
            // Level l covers the (2l+1)² grid; multiplicities are products of trinomial coefficients.
            QCOMPARE(count.size(), size_t((2 * level + 1) * (2 * level + 1)));
        }
        QCOMPARE(t.levelLayers.at(0), std::string("block3"));
        QCOMPARE(t.levelLayers.at(2), std::string("block1"));
    }

    void levelOnePointsAreGridPlusCapturedOffsets_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("reading");
        QTest::addRow("dcn_v1 bilinear") << "dcn_v1" << int(OffsetReading::Bilinear);
        QTest::addRow("dcn_v2 bilinear") << "dcn_v2" << int(OffsetReading::Bilinear);
        QTest::addRow("dcn_v2 nearest") << "dcn_v2" << int(OffsetReading::Nearest);
    }
    void levelOnePointsAreGridPlusCapturedOffsets() {
        QFETCH(QString, model);
        QFETCH(int, reading);
        AnalysisSession s(model::LoadedModel::load(sampleModel(model.toStdString().c_str())), randomInput(128, 128, 3));
        const Node node{"block3", 6, 9, {}};
        SamplingOptions options;
        options.reading = OffsetReading(reading);
        const SamplingTrace t = s.sampling(node, options);
        const model::Layer& l = s.layer("block3");
        const model::Layer& in = s.layer("block2"); // block3's input grid
        const at::Tensor off = s.capture().tensors[size_t(l.index)].offset[0].to(at::kDouble);
        const auto o = off.accessor<double, 3>();
        int level1 = 0;
        for (const SamplingPoint& p : t.points) {
            if (p.level != 1)
                continue;
            ++level1;
            const int k = p.tap;
            const double py = double(node.fy) * l.stride[0] - l.padding[0] + (k / 3) * l.dilation[0] + o[2 * k][node.fy][node.fx];
            const double px = double(node.fx) * l.stride[1] - l.padding[1] + (k % 3) * l.dilation[1] + o[2 * k + 1][node.fy][node.fx];
            QVERIFY(std::abs(p.y - (in.start[0] + py * in.jump[0])) < 1e-9);
            QVERIFY(std::abs(p.x - (in.start[1] + px * in.jump[1])) < 1e-9);
            if (l.use_mask)
                QVERIFY(std::abs(p.modulation - s.capture().tensors[size_t(l.index)].mask[0][k][node.fy][node.fx].item<double>()) < 1e-7);
        }
        QCOMPARE(level1, 9);
        QVERIFY(t.points.size() <= size_t(9 + 81 + 729));
        // Level 2 in nearest mode: the parent's position, the grid, and offsets read at the rounded parent.
        if (OffsetReading(reading) == OffsetReading::Nearest) {
            const model::Layer& l2 = s.layer("block2");
            const model::Layer& in2 = s.layer("block1");
            const at::Tensor off2 = s.capture().tensors[size_t(l2.index)].offset[0].to(at::kDouble);
            const auto o2 = off2.accessor<double, 3>();
            int checked = 0;
            for (const SamplingPoint& p : t.points) {
                if (p.level != 2)
                    continue;
                const SamplingPoint& parent = t.points[size_t(p.parent)];
                const long ry = std::clamp<long>(std::lround(parent.fy), 0, l2.feature_size[0] - 1);
                const long rx = std::clamp<long>(std::lround(parent.fx), 0, l2.feature_size[1] - 1);
                const double py = parent.fy - 1 + p.tap / 3 + o2[2 * p.tap][ry][rx];
                const double px = parent.fx - 1 + p.tap % 3 + o2[2 * p.tap + 1][ry][rx];
                QVERIFY(std::abs(p.y - (in2.start[0] + py * in2.jump[0])) < 1e-9);
                QVERIFY(std::abs(p.x - (in2.start[1] + px * in2.jump[1])) < 1e-9);
                ++checked;
            }
            QVERIFY(checked > 0);
        }
    }

    void weightsAreTheGradientWithRespectToTheSamplingLocation() {
        // Deformable layer: |∂r/∂offset| of each tap at the node, by autograd.
        AnalysisSession s(model::LoadedModel::load(sampleModel("dcn_v2")), randomInput(128, 128, 5));
        const Node node{"block3", 7, 5, *Response::parse("channel:3")};
        const SamplingTrace t = s.sampling(node);
        const model::Layer& l = s.layer("block3");
        const at::Tensor r = s.capture().tensors[size_t(l.index)].output[0][3][7][5];
        const at::Tensor g = torch::autograd::grad({r}, {s.capture().tensors[size_t(l.index)].offset}, {}, true)[0][0];
        double largest = 0;
        for (const SamplingPoint& p : t.points)
            if (p.level == 1) {
                const double expected = std::hypot(g[2 * p.tap][7][5].item<double>(), g[2 * p.tap + 1][7][5].item<double>());
                QVERIFY2(std::abs(p.weight - expected) <= 1e-5 * std::max(1e-3, expected),
                         qPrintable(QString("tap %1: %2 vs %3").arg(p.tap).arg(p.weight).arg(expected)));
                largest = std::max(largest, expected);
            }
        QVERIFY(largest > 0);

        // Regular conv: the same derivative, at zero offsets, from the operator's own backward.
        AnalysisSession reg(model::LoadedModel::load(sampleModel("regular")), randomInput(128, 128, 5));
        const model::Layer& b2 = reg.layer("block2");
        const model::LayerTensors& tt = reg.capture().tensors[size_t(b2.index)];
        const at::Tensor gout = at::randn_like(tt.output);
        ops::DeformConv2dParams p;
        p.pad_h = p.pad_w = 1;
        const int64_t K = 9, Ho = tt.output.size(2), Wo = tt.output.size(3);
        const at::Tensor zeros = at::zeros({1, 2 * K, Ho, Wo});
        const auto grads = ops::deformConv2dBackward(gout, tt.input.detach(), tt.weight.detach(), zeros, at::Tensor(),
                                                     at::Tensor(), p);
        const at::Tensor iy = at::tensor({int64_t(0), int64_t(4), Ho - 1}), ix = at::tensor({int64_t(3), Wo - 1, int64_t(0)});
        const at::Tensor ours = analysis::detail::locationGrads(b2, tt, gout, iy, ix); // [3, 1, 9, 2]
        for (int64_t i = 0; i < 3; ++i) {
            const at::Tensor expected = std::get<2>(grads)[0].index({at::indexing::Slice(), iy[i], ix[i]}).view({K, 2});
            QVERIFY(maxAbsDiff(ours[i][0], expected) < 1e-4 * std::max(1.0, expected.abs().max().item<double>()));
        }
    }

    void branchesAreTraced() {
        // The fixture's residual blocks: level 3 holds taps of layer2.conv2 and, through the
        // 1×1 shortcut, of layer1's convs.
        AnalysisSession s(model::LoadedModel::load(fixture("fixture_model.pt")), pythonTensor("input"));
        const SamplingTrace t = s.sampling(Node{"layer3.conv2", 1, 2, {}});
        QCOMPARE(t.levels, 3);
        QCOMPARE(t.levelLayers.at(1), std::string("layer3.conv1"));
        const std::string deepest = t.levelLayers.at(2);
        QVERIFY2(deepest.find("layer2.conv2") != std::string::npos && deepest.find("layer1.conv2") != std::string::npos,
                 deepest.c_str());
        QVERIFY(t.points.size() > size_t(9 + 81 + 729) / 2);
        for (const SamplingPoint& p : t.points)
            QVERIFY(p.level == 1 || t.points[size_t(p.parent)].level == p.level - 1);
    }

    void throughDeformableGivesThePapersCounts_data() {
        QTest::addColumn<QString>("file");
        QTest::newRow("scripted") << "deform_stack.pt";
        QTest::newRow("traced") << "deform_stack_traced.pt";
    }
    void throughDeformableGivesThePapersCounts() {
        // Three DCNv1 layers, each after a regular 3×3 conv: traced through the deformable
        // layers only, a node on the last has 9, 81 and 729 points on stage3.dcn, stage2.dcn,
        // stage1.dcn (the DCN papers' figure); traced through every 3×3 (the default), level 2
        // is stage3.conv's taps.
        QFETCH(QString, file);
        AnalysisSession s(model::LoadedModel::load(fixture(file.toStdString().c_str())), randomInput(48, 48));
        const Node node{"stage3.dcn", 24, 24, {}};
        SamplingOptions deformable;
        deformable.through = TraceThrough::Deformable;
        const SamplingTrace t = s.sampling(node, deformable);
        QCOMPARE(t.levels, 3);
        QCOMPARE(t.levelLayers, (std::vector<std::string>{"stage3.dcn", "stage2.dcn", "stage1.dcn"}));
        for (int level = 1, expected = 9; level <= 3; ++level, expected *= 9)
            QCOMPARE(std::count_if(t.points.begin(), t.points.end(), [&](const SamplingPoint& p) { return p.level == level; }),
                     std::ptrdiff_t(expected));
        // Unique points (1e-3 px) by brute force, per level and in all.
        for (int level = 0; level <= 3; ++level) {
            std::vector<const SamplingPoint*> distinct;
            for (const SamplingPoint& p : t.points) {
                if (level && p.level != level)
                    continue;
                bool seen = false;
                for (const SamplingPoint* q : distinct)
                    seen = seen || (std::abs(q->x - p.x) < 1e-3 && std::abs(q->y - p.y) < 1e-3);
                if (!seen)
                    distinct.push_back(&p);
            }
            QCOMPARE(uniquePoints(t, level), int64_t(distinct.size()));
        }
        // Level 1's nine taps are distinct; by level 3 many of the 729 coincide or nearly so.
        QCOMPARE(uniquePoints(t, 1), int64_t(9));
        QVERIFY(uniquePoints(t, 3) <= 729);

        const SamplingTrace all = s.sampling(node);
        QCOMPARE(all.levelLayers.at(0), std::string("stage3.dcn"));
        QVERIFY2(all.levelLayers.at(1).find("stage3.conv") != std::string::npos, all.levelLayers.at(1).c_str());
        bool said = false;
        for (const std::string& n : t.notes)
            said = said || n.find("deformable layers and samplers only") != std::string::npos;
        QVERIFY(said);
    }

    void throughDeformableFollowsResidualPaths() {
        // The same stack with a residual around each stage: a point reaching stage3's input
        // also reaches stage2's input through the skip, so level 2 holds stage1.dcn's taps too.
        AnalysisSession s(model::LoadedModel::load(fixture("deform_stack_residual.pt")), randomInput(48, 48));
        SamplingOptions deformable;
        deformable.through = TraceThrough::Deformable;
        const SamplingTrace t = s.sampling(Node{"stage3.dcn", 24, 24, {}}, deformable);
        QVERIFY2(t.levelLayers.at(1).find("stage1.dcn") != std::string::npos, t.levelLayers.at(1).c_str());
        QVERIFY2(t.levelLayers.at(1).find("stage2.dcn") != std::string::npos, t.levelLayers.at(1).c_str());
        QVERIFY(std::count_if(t.points.begin(), t.points.end(), [](const SamplingPoint& p) { return p.level == 2; }) > 81);
    }

    void throughDeformableOnARegularTwinTracesItsConvolutions() {
        // The regular sample has no deformable layer: --through deformable traces its 3×3 convs
        // (the side-by-side figure's regular column) and says so.
        AnalysisSession s(model::LoadedModel::load(sampleModel("regular")), randomInput(128, 128));
        SamplingOptions deformable;
        deformable.through = TraceThrough::Deformable;
        const SamplingTrace t = s.sampling(Node{"block3", 8, 7, {}}, deformable);
        QCOMPARE(t.points.size(), size_t(9 + 81 + 729));
        bool said = false;
        for (const std::string& n : t.notes)
            said = said || n.find("no deformable layer") != std::string::npos;
        QVERIFY(said);
    }

    // ---- the dense ERF-size map ------------------------------------------------------

    void massRadiiOfKnownMaps() {
        // A single pixel 3 right of the centre: every fraction at distance 3. Four equal pixels
        // at distances 1, 2, 3, 4: half the mass within 2, 90 % within 4.
        at::Tensor m = at::zeros({9, 9});
        m[4][7] = 2.0;
        QCOMPARE(massRadii(m, {4, 4}, {0.5, 0.9}), (std::vector<double>{3, 3}));
        m.zero_();
        m[4][5] = m[4][6] = m[4][7] = m[4][8] = 1.0;
        QCOMPARE(massRadii(m, {4, 4}, {0.5, 0.9}), (std::vector<double>{2, 4}));
        QCOMPARE(massRadii(at::zeros({5, 5}), {2, 2}, {0.5}), (std::vector<double>{0}));
        QCOMPARE(gridPositions(16, 4), (std::vector<int64_t>{2, 6, 10, 14}));
        QCOMPARE(gridPositions(3, 8), (std::vector<int64_t>{0, 1, 2}));
    }

    void theScaleMapEqualsSingleNodeErfs() {
        // The map's radii, from batched backward passes (5 nodes each, so batches and grid rows
        // do not line up), equal single-node ERF runs at sampled nodes of the grid.
        AnalysisSession s(model::LoadedModel::load(sampleModel("dcn_v2")), randomInput(128, 128));
        ScaleMapOptions options;
        options.layer = "block3";
        options.grid = 6;
        options.batch = 5;
        int calls = 0;
        const ScaleMapResult r = scaleMap(s, options, [&](int64_t done, int64_t total) {
            ++calls;
            return done <= total;
        });
        QCOMPARE(r.grid, (std::array<int64_t, 2>{6, 6}));
        QCOMPARE(r.radii.sizes().vec(), (std::vector<int64_t>{2, 6, 6}));
        QCOMPARE(r.passes, int64_t(8)); // 36 nodes, 5 per pass
        QCOMPARE(calls, 8);
        for (const auto& [i, j] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {2, 3}, {5, 5}, {4, 1}}) {
            const Node node{"block3", r.fy[size_t(i)], r.fx[size_t(j)], {}};
            const ErfResult single = s.erf(node);
            const std::vector<double> radii = massRadii(single.map, s.nodeCentre(node), {0.5, 0.9});
            for (int f = 0; f < 2; ++f)
                QVERIFY2(std::abs(r.radii[f][i][j].item<double>() - radii[size_t(f)]) < 1e-6,
                         qPrintable(QStringLiteral("node (%1, %2) fraction %3: map %4, single %5")
                                        .arg(i).arg(j).arg(f).arg(r.radii[f][i][j].item<double>()).arg(radii[size_t(f)])));
            QVERIFY(r.radii[0][i][j].item<double>() <= r.radii[1][i][j].item<double>());
            QVERIFY(std::abs(r.mass[i][j].item<double>() - single.metrics.mass) <= 1e-4 * single.metrics.mass);
        }
        // Cancelling stops the map.
        QVERIFY_THROWS_EXCEPTION(AnalysisError, scaleMap(s, options, [](int64_t, int64_t) { return false; }));
    }

    void pointsOutsideTheImageAreKeptAndMarked() {
        AnalysisSession s(model::LoadedModel::load(sampleModel("regular")), randomInput(128, 128));
        const SamplingTrace t = s.sampling(Node{"block3", 0, 0, {}});
        int outside = 0;
        for (const SamplingPoint& p : t.points) {
            const bool in = p.x >= -0.5 && p.x < 127.5 && p.y >= -0.5 && p.y < 127.5;
            QCOMPARE(p.inside, in);
            outside += in ? 0 : 1;
        }
        QVERIFY(outside > 0);
    }

    // ---- saliency through a model ------------------------------------------------

    void saliencyMeetsTheBoundOnAModel() {
        AnalysisSession s(model::LoadedModel::load(sampleModel("regular")), randomInput(64, 64, 11));
        const Node node = s.nodeAt("block3", 32, 32);
        SaliencyOptions options;
        options.epsilon = 0.1;
        options.minCell = 4;
        const SaliencyResult r = s.saliency(node, options);
        QVERIFY(r.withinBound);
        QVERIFY(r.areaFraction > 0 && r.areaFraction < 1);
        // Re-check the bound here: mask the image ourselves and run the model afresh.
        const at::Tensor m = r.mask.to(at::kFloat).view({1, 1, 64, 64});
        const at::Tensor x = s.input() * m;
        const model::Capture c = model::captureForward(s.model(), x);
        const at::Tensor got = c.tensors[size_t(s.layer("block3").index)].output[0].index({at::indexing::Slice(), node.fy, node.fx});
        const at::Tensor ref = s.response(node);
        const double err = (got - ref).norm().item<double>() / ref.norm().item<double>();
        QVERIFY2(err <= 0.1 + 1e-6, qPrintable(QString::number(err)));
        QVERIFY(std::abs(err - r.error) < 1e-4);
        // Nothing outside the theoretical receptive field is kept (no deformable layer below).
        const auto box = s.receptiveFieldBox(node);
        QCOMPARE(r.mask.sum().item<int64_t>(), r.mask.narrow(0, box[0], box[2] - box[0]).narrow(1, box[1], box[3] - box[1]).sum().item<int64_t>());
        // A blurred baseline is a different image: still bounded.
        const SaliencyResult blurred = s.saliency(node, options, *Baseline::parse("blur:4"));
        QVERIFY(blurred.withinBound);
    }

    void saliencyOnADeformableModelAdoptsOnlyEvaluatedMasks() {
        // No receptive-field crop here (offsets reach anywhere): the whole image is searched.
        // Every mask the search adopts was evaluated, so the fresh check never has to fall back.
        AnalysisSession s(model::LoadedModel::load(sampleModel("dcn_v2")), randomInput(128, 128, 4));
        const Node node = s.nodeAt("block3", 64, 64);
        SaliencyOptions options;
        options.batchSize = 0; // by device
        const SaliencyResult r = s.saliency(node, options);
        QVERIFY2(r.withinBound, r.note.c_str());
        QVERIFY2(r.note.find("fell back") == std::string::npos, r.note.c_str());
        QVERIFY(r.areaFraction < 1);
        QVERIFY(r.forwards <= options.targetForwards + 2 * 32);
    }

    // ---- object metrics -------------------------------------------------------------

    void objectMetricsCountWhatIsInside() {
        at::Tensor object = at::zeros({10, 10}, at::kByte);
        object.narrow(0, 0, 5).fill_(1); // top half
        ErfResult erf;
        erf.map = at::zeros({10, 10});
        erf.map[2][3] = 3; // inside
        erf.map[8][3] = 1; // outside
        SamplingTrace t;
        for (auto [x, y, w] : {std::tuple{1.0, 1.0, 3.0}, {1.0, 8.0, 1.0}, {-3.0, 2.0, 4.0}}) {
            SamplingPoint p;
            p.x = x;
            p.y = y;
            p.weight = w;
            p.inside = x >= -0.5 && y >= -0.5;
            t.points.push_back(p);
        }
        SaliencyResult sal;
        sal.mask = at::zeros({10, 10}, at::kByte);
        sal.mask.narrow(1, 0, 2).fill_(1); // left two columns: half inside
        const ObjectMetrics m = objectMetrics(object, &erf, &t, &sal);
        QCOMPARE(m.objectPixels, int64_t(50));
        QCOMPARE(m.erfMassInside, 0.75);
        QCOMPARE(m.samplingWeightInside, 3.0 / 8.0);
        QCOMPARE(m.saliencyAreaInside, 0.5);
        const ObjectMetrics partial = objectMetrics(object, &erf, nullptr, nullptr);
        QCOMPARE(partial.samplingWeightInside, -1.0);
    }

    // ---- errors ------------------------------------------------------------------------

    void badRequestsSayWhatIsWrong() {
        AnalysisSession s(model::LoadedModel::load(sampleModel("regular")), randomInput(64, 64));
        QVERIFY(messageOf([&] { s.erf(Node{"nope", 0, 0, {}}); }).find("no layer 'nope'") != std::string::npos);
        QVERIFY(messageOf([&] { s.erf(Node{"block3", 0, 99, {}}); }).find("off layer 'block3'") != std::string::npos);
        QVERIFY(messageOf([&] { s.erf(Node{"block3", 0, 0, *Response::parse("channel:64")}); }).find("64 channels") !=
                std::string::npos);
        QVERIFY(messageOf([&] { s.erf(Node{"block3", 0, 0, *Response::parse("class:4")}); }).find("4 outputs") !=
                std::string::npos);
        // Text that is not a response or a baseline is refused, naming the text (the request reads it).
        deformscope::common::AnalysisRequest rq;
        QVERIFY(deformscope::common::readOption(rq, "--response", {"chanel:2"}).find("'chanel:2'") != std::string::npos);
        QVERIFY(deformscope::common::readOption(rq, "--response", {"channel:x"}).find("'channel:x'") != std::string::npos);
        QVERIFY(deformscope::common::readOption(rq, "--baseline", {"blur:-1"}).find("'blur:-1'") != std::string::npos);
        SamplingOptions none;
        none.levels = 0;
        QVERIFY(messageOf([&] { s.sampling(Node{"block3", 0, 0, {}}, none); }).find("at least 1") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestAnalysis)
#include "tst_analysis.moc"
