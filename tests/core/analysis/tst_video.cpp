// Models with several input frames, written the ways video code writes them
// (tests/python/make_video.py): forward(reference, support) scripted and traced,
// the frames stacked on channels (traced) or on a time axis (scripted), a
// PoseWarper-style multi-branch alignment, and a model whose offsets are a known
// translation. For each: the inputs and which input each layer's features come
// from, the alignment layer's points on the support frame against PyTorch's,
// the per-input ERF against autograd's, the saliency bound over both frames,
// and offsets read as motion.
#include "core/analysis/analysis.h"
#include "core/analysis/motion.h"
#include "core/analysis/offset_field.h"
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "core/model/capture.h"
#include "core/model/model.h"

#include <ATen/ATen.h>

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <map>

using namespace deformscope;
using namespace deformscope::analysis;

namespace {

std::string fixture(const std::string& file) { return std::string(DEFORMSCOPE_VIDEO_FIXTURE_DIR) + "/" + file; }

struct Case {
    common::Json expect;
    model::LoadedModel model;
    at::Tensor canvas; // the frames side by side [1, 3, H, 2W]
    int64_t width = 0;
};

Case load(const std::string& name) {
    Case c;
    c.expect = common::readJsonFile(fixture(name + "_expect.json"));
    c.model = model::LoadedModel::load(fixture(c.expect.at("model").get<std::string>()));
    const at::Tensor a = common::readNpy(fixture(c.expect.at("reference").get<std::string>())).to(at::kFloat);
    const at::Tensor b = common::readNpy(fixture(c.expect.at("support").get<std::string>())).to(at::kFloat);
    c.canvas = at::cat({a, b}, 3);
    c.width = a.size(3);
    return c;
}

Node nodeOf(const Case& c, const std::string& layer) {
    Node n;
    n.layer = layer;
    n.fy = c.expect.at("node").at(0).get<int64_t>();
    n.fx = c.expect.at("node").at(1).get<int64_t>();
    return n;
}

const model::Layer& named(const model::LayerGraph& g, const std::string& name) {
    const model::Layer* l = g.find(name);
    if (!l)
        throw std::runtime_error("no layer " + name + " in " + g.names());
    return *l;
}

// The level-1 points of `layer` against the expected reads (on the support frame).
void compareReads(const Case& c, const SamplingTrace& trace, const model::LayerGraph& g) {
    std::map<std::pair<std::string, int>, const SamplingPoint*> mine;
    for (const SamplingPoint& p : trace.points)
        if (p.level == 1 && g.layers()[size_t(p.layer)].deformable())
            mine[{g.layers()[size_t(p.layer)].name, p.tap}] = &p;
    const auto& reads = c.expect.at("reads");
    QCOMPARE(mine.size(), reads.size());
    for (const auto& e : reads) {
        const auto it = mine.find({e.at("layer").get<std::string>(), e.at("tap").get<int>()});
        QVERIFY2(it != mine.end(), e.dump().c_str());
        const SamplingPoint& p = *it->second;
        QCOMPARE(p.input, e.at("input").get<int>()); // the support frame
        QVERIFY2(std::abs(p.x - double(p.input * c.width) - e.at("x").get<double>()) < 1e-4, e.dump().c_str());
        QVERIFY2(std::abs(p.y - e.at("y").get<double>()) < 1e-4, e.dump().c_str());
        QVERIFY2(std::abs(p.modulation - e.at("modulation").get<double>()) < 1e-5, e.dump().c_str());
    }
}

} // namespace

class TestVideo : public QObject {
    Q_OBJECT

private Q_SLOTS:
    // Every form of several inputs loads, names its inputs and knows which input
    // each layer's features come from: the alignment layer reads the support,
    // its offsets come from both.
    void everyFormKnowsItsInputs() {
        const std::map<std::string, model::LoadedModel::InputForm> forms{
            {"two_input", model::LoadedModel::InputForm::Arguments},
            {"two_input_traced", model::LoadedModel::InputForm::Arguments},
            {"stacked", model::LoadedModel::InputForm::StackedChannels},
            {"stacked5d", model::LoadedModel::InputForm::StackedTime}};
        for (const auto& [name, form] : forms) {
            const Case c = load(name);
            QCOMPARE(c.model.inputCount(), int64_t(2));
            // Names: declared ("inputs"), else forward's arguments, else frame0, frame1 for stacked frames.
            const std::vector<std::string> names = form == model::LoadedModel::InputForm::Arguments
                                                       ? std::vector<std::string>{"reference", "support"}
                                                       : std::vector<std::string>{"frame0", "frame1"};
            QCOMPARE(c.model.inputNames(), names);
            const model::Capture cap = model::captureForward(c.model, c.canvas);
            QVERIFY2(c.model.inputForm() == form, name.c_str());
            const model::LayerGraph& g = cap.graph;
            QCOMPARE(g.inputSize()[1], c.width);
            QCOMPARE(named(g, "align").frames, std::vector<int>{1});
            QCOMPARE(named(g, "align").homeFrame(), 0); // its positions are the reference's
            QCOMPARE(g.layers()[size_t(named(g, "align").offset_source)].frames, (std::vector<int>{0, 1}));
            QCOMPARE(named(g, "head").frames, (std::vector<int>{0, 1}));
            // The shared feature layers run once per frame, each on its own frame.
            int onReference = 0, onSupport = 0;
            for (const model::Layer& l : g.layers())
                if (l.name.rfind("feat", 0) == 0) {
                    QCOMPARE(l.frames.size(), size_t(1));
                    (l.frames[0] == 0 ? onReference : onSupport) += 1;
                }
            QVERIFY2(onReference == 3 && onSupport == 3, name.c_str());
            QCOMPARE(alignmentLayers(g), std::vector<int>{named(g, "align").index});
            // The same frames give the same output whichever way forward takes them.
            const at::Tensor out = c.model.forward(c.canvas);
            const at::Tensor ref = load("two_input").model.forward(c.canvas);
            QVERIFY(at::allclose(out, ref, 1e-5, 1e-5));
        }
    }

    // The alignment layer's level-1 points lie on the support frame at grid + offsets.
    void pointsLieOnTheSupportFrame() {
        for (const char* name : {"two_input", "two_input_traced", "stacked", "stacked5d"}) {
            const Case c = load(name);
            AnalysisSession s(c.model, c.canvas);
            QCOMPARE(s.frames(), int64_t(2));
            SamplingOptions o;
            o.levels = 1;
            const SamplingTrace t = s.sampling(nodeOf(c, "align"), o);
            compareReads(c, t, s.graph());
            // The node is drawn on the reference frame, its points on the support.
            QVERIFY(s.nodeCentre(nodeOf(c, "align"))[0] < double(c.width));
            // So is the offset field: every arrow starts on the support frame.
            const OffsetField f = offsetField(s, "align");
            QCOMPARE(f.arrows.size(), size_t(32 * 32 * 9));
            for (const OffsetArrow& a : f.arrows)
                QVERIFY(a.x >= double(c.width) - 1.5);
        }
    }

    // One ERF map per input, equal to autograd's gradients with respect to each frame.
    void erfPerInputEqualsAutograd() {
        for (const char* name : {"two_input", "two_input_traced", "stacked", "stacked5d"}) {
            const Case c = load(name);
            AnalysisSession s(c.model, c.canvas);
            const ErfResult e = s.erf(nodeOf(c, "align"));
            const at::Tensor expect = common::readNpy(fixture(c.expect.at("erf").get<std::string>())).to(at::kFloat);
            const at::Tensor mine = e.map.view({e.map.size(0), 2, c.width}).permute({1, 0, 2});
            QVERIFY2(at::allclose(mine, expect, 1e-4, 1e-6), name);
            QCOMPARE(e.inputs.size(), size_t(2));
            QCOMPARE(e.inputShare.size(), size_t(2));
            QVERIFY(std::abs(e.inputShare[0] + e.inputShare[1] - 1) < 1e-9);
            const double share1 = expect[1].sum().item<double>() / expect.sum().item<double>();
            QVERIFY(std::abs(e.inputShare[1] - share1) < 1e-5);
        }
    }

    // The saliency search covers both frames and its bound holds when checked afresh.
    void saliencyBoundHoldsOverBothFrames() {
        const Case c = load("two_input");
        AnalysisSession s(c.model, c.canvas);
        SaliencyOptions o;
        o.epsilon = 0.1;
        o.maxForwards = 400;
        const SaliencyResult r = s.saliency(nodeOf(c, "align"), o);
        QCOMPARE(r.mask.size(1), 2 * c.width);
        QVERIFY(r.withinBound);
        // A fresh forward of the kept region (both frames) gives the same bound.
        const at::Tensor m = r.mask.to(at::kFloat).view({1, 1, r.mask.size(0), r.mask.size(1)});
        const at::Tensor base = s.baselineImage(Baseline{});
        const model::Capture masked = model::captureForward(c.model, c.canvas * m + base * (1 - m));
        const model::Capture full = model::captureForward(c.model, c.canvas);
        const auto& l = named(full.graph, "align");
        const at::Tensor a = masked.tensors[size_t(l.index)].output.index({0, at::indexing::Slice(), 13, 18});
        const at::Tensor b = full.tensors[size_t(l.index)].output.index({0, at::indexing::Slice(), 13, 18});
        QVERIFY((a - b).norm().item<double>() <= r.epsilon * b.norm().item<double>() + 1e-6);
        // The support frame matters to the alignment layer: some of it is kept.
        QVERIFY(r.mask.narrow(1, c.width, c.width).sum().item<int64_t>() > 0);
    }

    // PoseWarper's branches: info's groups, and each branch's points named by their layer.
    void multiBranchAlignmentShowsEachBranch() {
        const Case c = load("multi_branch");
        AnalysisSession s(c.model, c.canvas);
        const auto groups = branchGroups(s.graph());
        QCOMPARE(groups.size(), size_t(1));
        std::vector<std::string> names;
        for (int i : groups[0])
            names.push_back(s.graph().layers()[size_t(i)].name);
        std::sort(names.begin(), names.end());
        QCOMPARE(names, (std::vector<std::string>{"branch_d12", "branch_d18", "branch_d24", "branch_d3", "branch_d6"}));
        SamplingOptions o;
        o.levels = 1;
        const SamplingTrace t = s.sampling(nodeOf(c, "head"), o);
        compareReads(c, t, s.graph());
    }

    // Offsets hard-wired to a translation are read as exactly that motion.
    void offsetsReadAsMotion() {
        const Case c = load("translate");
        AnalysisSession s(c.model, c.canvas);
        const MotionField m = motionField(s);
        QCOMPARE(m.layer, std::string("align"));
        QCOMPARE(m.reference, 0);
        QCOMPARE(m.support, 1);
        QCOMPARE(m.mean.sizes().vec(), (std::vector<int64_t>{2, 48, 48}));
        const at::Tensor truth = common::readNpy(fixture("square_motion.npy")).to(at::kFloat);
        const FieldComparison cmp = compareFields(m.mean, truth);
        QVERIFY(cmp.epePx < 1e-4);
        QVERIFY(std::abs(cmp.cosine - 1) < 1e-6);
        QVERIFY(std::abs(m.meanOffsetPx - 2.5) < 1e-4); // (|−3| + |2|) / 2
        QVERIFY(m.offsetDiversityPx < 1e-4);
        QVERIFY(!m.alarm);
        QVERIFY(motionField(s, "align", 2.0).alarm);
        // A square mask moved by reads carries to the moved square.
        at::Tensor square = at::zeros({48, 48});
        square.narrow(0, 14, 16).narrow(1, 18, 16).fill_(1);
        at::Tensor moved = at::zeros({48, 48});
        moved.narrow(0, 16, 16).narrow(1, 15, 16).fill_(1);
        const at::Tensor carried = propagateByReads(m, square, {48, 48}).gt(0.5);
        const double iou = (carried & moved.gt(0.5)).sum().item<double>() / (carried | moved.gt(0.5)).sum().item<double>();
        QVERIFY2(iou > 0.95, std::to_string(iou).c_str());
        const auto p = propagatePointsByReads(m, {{20.0, 20.0}});
        QVERIFY(std::abs(p[0][0] - 17) < 1e-4 && std::abs(p[0][1] - 22) < 1e-4);
    }

    // Bad input: a canvas whose width is not a multiple of the inputs, frames of different sizes.
    void badInputsSayWhatIsWrong() {
        const Case c = load("two_input");
        try {
            c.model.forward(c.canvas.narrow(3, 0, 63));
            QFAIL("an odd canvas was accepted");
        } catch (const model::ModelError& e) {
            QVERIFY2(std::string(e.what()).find("side by side") != std::string::npos, e.what());
        }
        try {
            c.model.forwardFrames({c.canvas.narrow(3, 0, 32), c.canvas.narrow(3, 0, 30)});
            QFAIL("frames of different sizes were accepted");
        } catch (const model::ModelError& e) {
            QVERIFY2(std::string(e.what()).find("differ in size") != std::string::npos, e.what());
        }
    }
};

QTEST_APPLESS_MAIN(TestVideo)
#include "tst_video.moc"
