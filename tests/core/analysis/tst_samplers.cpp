// Samplers written the ways real code writes them (tests/python/make_samplers.py
// makes the models and what PyTorch computes for one node): flow warping
// (scripted and traced), an InternImage-style DCNv3 core, Deformable DETR's
// two-level deformable attention core, an affine grid_sample, the seed article's
// gather DeformConv2d (DCNv1 and DCNv2, traced and scripted), and a hand-written
// sampler that is not understood. For each: the layer's kind, its level-1 points
// and weights against PyTorch's, and the ERF against autograd's.
#include "core/analysis/analysis.h"
#include "core/analysis/offset_field.h"
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "core/model/capture.h"
#include "core/model/model.h"

#include <ATen/ATen.h>

#include <QtTest>

#include <QDir>
#include <QProcess>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

using namespace deformscope;
using namespace deformscope::analysis;

namespace {

std::string fixture(const std::string& file) { return std::string(DEFORMSCOPE_SAMPLER_FIXTURE_DIR) + "/" + file; }

struct Case {
    common::Json expect;
    model::LoadedModel model;
    at::Tensor input;
    Node node;
};

Case load(const std::string& name) {
    Case c;
    c.expect = common::readJsonFile(fixture(name + "_expect.json"));
    c.model = model::LoadedModel::load(fixture(c.expect.at("model").get<std::string>()));
    c.input = common::readNpy(fixture(c.expect.at("input").get<std::string>())).to(at::kFloat);
    const auto& n = c.expect.at("node");
    c.node.layer = n.at("layer").get<std::string>();
    c.node.fy = n.at("y").get<int64_t>();
    c.node.fx = n.at("x").get<int64_t>();
    c.node.response.kind = Response::Kind::Channel;
    c.node.response.index = n.at("channel").get<int64_t>();
    return c;
}

// The first layer of a kind, or nullptr.
const model::Layer* firstOfKind(const model::LayerGraph& g, const std::string& kind) {
    for (const model::Layer& l : g.layers())
        if (kind == model::kindName(l.kind))
            return &l;
    return nullptr;
}

// Level-1 points of the sampling layers against PyTorch's, matched by (feature
// level, row, point).
void compareLevelOne(const Case& c, const model::LayerGraph& g, const SamplingTrace& trace) {
    const std::string kind = c.expect.at("kind").get<std::string>();
    std::map<std::tuple<int, int, int>, const SamplingPoint*> mine;
    for (const SamplingPoint& p : trace.points)
        if (p.level == 1 && kind == model::kindName(g.layers()[size_t(p.layer)].kind)) {
            QVERIFY(!mine.count({p.featureLevel, p.group, p.tap}));
            mine[{p.featureLevel, p.group, p.tap}] = &p;
        }
    const auto& expected = c.expect.at("points");
    QCOMPARE(mine.size(), expected.size());
    double maxWeight = 0;
    for (const auto& e : expected)
        maxWeight = std::max(maxWeight, e.at("weight").get<double>());
    for (const auto& e : expected) {
        const auto key = std::make_tuple(e.at("level").get<int>(), e.at("row").get<int>(), e.at("point").get<int>());
        const auto it = mine.find(key);
        QVERIFY2(it != mine.end(), e.dump().c_str());
        const SamplingPoint& p = *it->second;
        const std::string where = e.dump() + " got y " + std::to_string(p.fy) + " x " + std::to_string(p.fx) + " weight " +
                                  std::to_string(p.weight);
        // Positions on the map read: float32 grids against float64 arithmetic.
        QVERIFY2(std::abs(p.fy - e.at("y").get<double>()) < 1e-4, where.c_str());
        QVERIFY2(std::abs(p.fx - e.at("x").get<double>()) < 1e-4, where.c_str());
        QVERIFY2(std::abs(p.weight - e.at("weight").get<double>()) < 1e-4 * std::max(1.0, maxWeight), where.c_str());
    }
}

void compareErf(const Case& c, const AnalysisSession& s) {
    const at::Tensor mine = s.erf(c.node).map.to(at::kDouble);
    const at::Tensor theirs = common::readNpy(fixture(c.expect.at("erf").get<std::string>())).to(at::kDouble);
    QCOMPARE(mine.sizes().vec(), theirs.sizes().vec());
    const double scale = std::max(theirs.abs().max().item<double>(), 1e-12);
    QVERIFY2((mine - theirs).abs().max().item<double>() < 1e-4 * scale, c.expect.at("model").dump().c_str());
}

} // namespace

class TestSamplers : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void eachKindIsListedAndTracedLikePyTorch_data() {
        QTest::addColumn<QString>("name");
        for (const char* n : {"flow_warp", "flow_warp_traced", "dcn_v3", "deform_attn", "affine_sampler", "gather_dcn",
                              "gather_dcn_v2", "gather_dcn_scripted"})
            QTest::newRow(n) << QString::fromLatin1(n);
    }
    void eachKindIsListedAndTracedLikePyTorch() {
        QFETCH(QString, name);
        const Case c = load(name.toStdString());
        const AnalysisSession s(c.model, c.input);
        const std::string kind = c.expect.at("kind").get<std::string>();
        const model::Layer* l = firstOfKind(s.graph(), kind);
        QVERIFY2(l, (kind + " not listed:\n" + s.graph().toTable()).c_str());
        if (kind == "deform_attn") {
            // One layer per feature level, each reading its own map.
            int levels = 0;
            for (const model::Layer& x : s.graph().layers())
                if (x.kind == model::LayerKind::DeformAttn) {
                    QCOMPARE(x.sampler.levels, c.expect.at("levels").get<int>());
                    QCOMPARE(x.sampler.level, levels++);
                    QCOMPARE(x.sampler.layout, model::SamplerInfo::Layout::Queries);
                }
            QCOMPARE(levels, 2);
        }
        if (l->isSampler())
            QVERIFY(l->grid_source >= 0 || kind == "sampler");
        if (kind == "dcn_v1" || kind == "dcn_v2") {
            // The seed's DeformConv2d: its true geometry, named after its module.
            QCOMPARE(l->name, std::string("dcn1"));
            QCOMPARE(l->kernel, (std::array<int64_t, 2>{3, 3}));
            QCOMPARE(l->stride, (std::array<int64_t, 2>{1, 1}));
            QCOMPARE(l->padding, (std::array<int64_t, 2>{1, 1}));
            QCOMPARE(l->dilation, (std::array<int64_t, 2>{1, 1}));
            QVERIFY(l->offset_source >= 0);
            QCOMPARE(s.graph().layers()[size_t(l->offset_source)].name, std::string("dcn1.p_conv"));
            QCOMPARE(l->use_mask, kind == "dcn_v2");
            // Its offsets: grid + offsets (clamp included) equals the positions the seed reads.
            const model::LayerTensors& t = s.capture().tensors[size_t(l->index)];
            QCOMPARE(t.offset.sizes().vec(), (std::vector<int64_t>{1, 18, 32, 32}));
        }
        const SamplingTrace trace = s.sampling(c.node, SamplingOptions{1});
        compareLevelOne(c, s.graph(), trace);
        compareErf(c, s);
        if (kind == "dcn_v3" || kind == "deform_attn") {
            // The reads' softmax weights were found: per group (DCNv3) or head (over both levels), they sum to 1.
            std::map<int, double> perRow;
            for (const SamplingPoint& p : trace.points)
                if (p.level == 1 && s.graph().layers()[size_t(p.layer)].isSampler()) {
                    QVERIFY(p.modulation > 0 && p.modulation < 1);
                    perRow[p.group] += p.modulation;
                }
            QCOMPARE(int(perRow.size()), 2);
            for (const auto& [row, sum] : perRow)
                QVERIFY2(std::abs(sum - 1) < 1e-5, std::to_string(sum).c_str());
            // The weights are a modulation, as DCNv2's mask: their convolution is the sampler's
            // mask source, not a layer the node reads, so level 1 holds the sampler's reads alone
            // (the mask or attention-weight convolution's own taps were traced as read points).
            QVERIFY(l->mask_source >= 0);
            QCOMPARE(s.graph().layers()[size_t(l->mask_source)].name,
                     std::string(kind == "dcn_v3" ? "mask" : "attention_weights"));
            for (const SamplingPoint& p : trace.points)
                QVERIFY2(s.graph().layers()[size_t(p.layer)].isSampler(),
                         (s.graph().layers()[size_t(p.layer)].name + " traced at level 1").c_str());
            const SamplingTrace two = s.sampling(c.node, SamplingOptions{2});
            std::set<std::string> belowTheSampler;
            for (const SamplingPoint& p : two.points)
                if (p.level == 2)
                    belowTheSampler.insert(s.graph().layers()[size_t(p.layer)].name);
            QCOMPARE(belowTheSampler, (kind == "dcn_v3" ? std::set<std::string>{"stem"}
                                                        : std::set<std::string>{"down", "stem"}));
            const OffsetField f = offsetField(s, l->name);
            QVERIFY(f.modulated);
            // DCNv3: each group's largest of P softmax weights is at least 1/P; one level of the
            // attention holds only part of a softmax over both levels.
            const double floor = kind == "dcn_v3" ? 1 / double(l->sampler.points) - 1e-6 : 0.0;
            for (double m : f.meanModulation)
                QVERIFY(m > floor && m <= 1 + 1e-6);
        }
        // The offset field draws every read (samplers) or tap (DCN); a node on the layer
        // reading the sampler shows the sampler's field.
        const OffsetField field = offsetField(s, l->name);
        QVERIFY(!field.empty());
        QCOMPARE(offsetFieldLayer(s, c.node.layer), l->name);
        if (l->isSampler())
            QCOMPARE(field.taps, int(l->sampler.rows * l->sampler.points));
    }

    void theGatherDcnPointsAreGridPlusClampedOffsets() {
        // Everywhere on the map, not only at the node: p = clamp(p_0 + p_n + offset) − pad.
        const Case c = load("gather_dcn_v2");
        const AnalysisSession s(c.model, c.input);
        const model::Layer* l = s.graph().find("dcn1");
        QVERIFY(l && l->kind == model::LayerKind::DcnV2);
        const model::LayerTensors& t = s.capture().tensors[size_t(l->index)];
        const model::Layer& pconv = s.graph().layers()[size_t(l->offset_source)];
        const at::Tensor raw = s.capture().tensors[size_t(pconv.index)].output.detach().to(at::kDouble)[0]; // planar
        const at::Tensor off = t.offset.detach().to(at::kDouble)[0];                                          // interleaved
        int64_t clamped = 0;
        for (int64_t k = 0; k < 9; ++k) {
            const at::Tensor base = at::arange(32, at::kDouble).view({32, 1}) - 1 + double(k / 3);
            const at::Tensor baseX = at::arange(32, at::kDouble).view({1, 32}) - 1 + double(k % 3);
            const at::Tensor wantY = (base + raw[k]).clamp(-1, 32) - base;
            const at::Tensor wantX = (baseX + raw[k + 9]).clamp(-1, 32) - baseX;
            QVERIFY((off[2 * k] - wantY).abs().max().item<double>() < 1e-5);
            QVERIFY((off[2 * k + 1] - wantX).abs().max().item<double>() < 1e-5);
            clamped += (wantY - raw[k]).abs().gt(1e-9).sum().item<int64_t>();
        }
        QVERIFY2(clamped > 0, "the fixture should clamp some taps");
        QVERIFY(l->reason.find("planar") != std::string::npos);
        // The modulation map is the seed's sigmoid mask.
        QVERIFY(t.mask.defined());
        QCOMPARE(t.mask.size(1), int64_t(9));
    }

    void anUnrecognisedSamplerIsSaidAndTracedByItsFootprint() {
        const Case c = load("unrecognised");
        const AnalysisSession s(c.model, c.input);
        const model::Layer* l = firstOfKind(s.graph(), "unrecognised_sampler");
        QVERIFY2(l, s.graph().toTable().c_str());
        QVERIFY(!l->reason.empty());
        QVERIFY(s.graph().toTable().find("not understood") != std::string::npos);
        QVERIFY(s.graph().toJson().dump().find("unrecognised_sampler") != std::string::npos);
        // The head reads it: the trace goes through it, never as a silent regular grid.
        const model::Layer* head = s.graph().find("head");
        QVERIFY(head && std::find(head->inputs.begin(), head->inputs.end(), l->index) != head->inputs.end());
        const SamplingTrace trace = s.sampling(c.node, SamplingOptions{1});
        QVERIFY(!trace.points.empty());
        bool said = false;
        for (const auto& n : trace.notes)
            said = said || n.find("gradient footprint") != std::string::npos;
        QVERIFY(said);
        // The footprint is where the ERF through the sampler is: every point it names
        // has a non-zero gradient, and its points are where the hand-written reads land.
        for (const SamplingPoint& p : trace.points) {
            QCOMPARE(p.layer, l->index);
            QVERIFY(p.weight > 0);
        }
        compareErf(c, s);
        // A node on the sampler itself is refused with a reason.
        Node onIt = c.node;
        onIt.layer = l->name;
        QVERIFY_THROWS_EXCEPTION(AnalysisError, s.sampling(onIt));
    }

    void aCustomOpIsReadThroughItsAdapter() {
        // testlab::planar_dcn (tests/support/testlab_ops.cpp), its library named by the
        // side file, declared in deformscope.json: planar offsets, int[2] geometry.
        const Case c = load("custom_op");
        const AnalysisSession s(c.model, c.input);
        const model::Layer* l = s.graph().find("block");
        QVERIFY2(l, s.graph().toTable().c_str());
        QCOMPARE(l->kind, model::LayerKind::DcnV2);
        QCOMPARE(l->op, std::string("testlab::planar_dcn"));
        QCOMPARE(s.graph().layers()[size_t(l->offset_source)].name, std::string("block.offset"));
        QCOMPARE(s.graph().layers()[size_t(l->mask_source)].name, std::string("block.mask"));
        QCOMPARE(l->padding, (std::array<int64_t, 2>{1, 1}));
        const SamplingTrace trace = s.sampling(c.node, SamplingOptions{1});
        compareLevelOne(c, s.graph(), trace);
        compareErf(c, s);
    }

    void anUndeclaredCustomOpIsAnUnrecognisedSampler() {
        const model::LoadedModel m = model::LoadedModel::load(fixture("undeclared_op.pt"));
        const model::LayerGraph g = model::layerGraph(m, {32, 32});
        const model::Layer* l = g.find("block");
        QVERIFY2(l, g.toTable().c_str());
        QCOMPARE(l->kind, model::LayerKind::UnrecognisedSampler);
        QVERIFY(l->reason.find("testlab::planar_dcn") != std::string::npos);
        QVERIFY(l->reason.find("adapter") != std::string::npos);
    }

    void aBadAdapterIsNamedWithItsFile() {
        const std::string dir = QDir::tempPath().toStdString() + "/deformscope_bad_adapter";
        std::filesystem::create_directories(dir);
        std::filesystem::copy_file(fixture("custom_op.pt"), dir + "/net.pt",
                                   std::filesystem::copy_options::overwrite_existing);
        common::writeJsonFile(dir + "/net.deformscope.json",
                              common::Json::parse(R"({"libraries": ["missing_lib.so"]})"));
        try {
            model::LoadedModel::load(dir + "/net.pt");
            QFAIL("expected an error");
        } catch (const model::ModelError& e) {
            const std::string what = e.what();
            QVERIFY2(what.find("net.deformscope.json") != std::string::npos && what.find("missing_lib.so") != std::string::npos,
                     what.c_str());
        }
        common::writeJsonFile(dir + "/net.deformscope.json",
                              common::Json::parse(R"({"custom_ops": [{"op": "testlab::planar_dcn", "offset_layout": "diagonal"}]})"));
        try {
            model::LoadedModel::load(dir + "/net.pt");
            QFAIL("expected an error");
        } catch (const model::ModelError& e) {
            QVERIFY2(std::string(e.what()).find("offset_layout") != std::string::npos, e.what());
        }
    }

    void theCliListsAndAnalysesThroughSamplers() {
        // info: kinds and sampler geometry; analyze: per-point kinds and the honest note.
        const QString cli = QStringLiteral(DEFORMSCOPE_CLI);
        QProcess info;
        info.start(cli, {QStringLiteral("info"), QString::fromStdString(fixture("deform_attn.pt")), QStringLiteral("--json")});
        QVERIFY(info.waitForFinished(120000));
        QCOMPARE(info.exitCode(), 0);
        const auto layers = common::parseJson(info.readAllStandardOutput().toStdString(), "info --json").at("layers");
        int attn = 0;
        for (const auto& l : layers)
            attn += l.at("kind") == "deform_attn" && l.at("sampler").at("value_map").is_string();
        QCOMPARE(attn, 2);

        const QString out = QDir::tempPath() + QStringLiteral("/deformscope_tst_samplers_unrecognised");
        QProcess analyze;
        analyze.start(cli, {QStringLiteral("analyze"), QStringLiteral("--model"), QString::fromStdString(fixture("unrecognised.pt")),
                            QStringLiteral("--image"), QStringLiteral(DEFORMSCOPE_SOURCE_DIR "/resources/samples/sample_01.png"),
                            QStringLiteral("--layer"), QStringLiteral("head"), QStringLiteral("--what"),
                            QStringLiteral("sampling"), QStringLiteral("--no-figures"), QStringLiteral("--out"), out});
        QVERIFY(analyze.waitForFinished(120000));
        QCOMPARE(analyze.exitCode(), 0);
        const auto result = common::readJsonFile((out + QStringLiteral("/result.json")).toStdString());
        bool said = false;
        for (const auto& n : result.at("sampling").at("notes"))
            said = said || n.get<std::string>().find("approximated by its gradient footprint") != std::string::npos;
        QVERIFY(said);
        bool listed = false;
        for (const auto& l : result.at("sampling").at("by_layer"))
            listed = listed || l.at("kind") == "unrecognised_sampler";
        QVERIFY(listed);
    }

    void aNodeOnAQuerySamplerIsRefusedClearly() {
        const Case c = load("dcn_v3");
        const AnalysisSession s(c.model, c.input);
        const model::Layer* l = firstOfKind(s.graph(), "dcn_v3");
        QVERIFY(l);
        Node onIt = c.node;
        onIt.layer = l->name;
        try {
            s.erf(onIt);
            QFAIL("expected a refusal");
        } catch (const AnalysisError& e) {
            QVERIFY(std::string(e.what()).find("pick a node on a layer that reads it") != std::string::npos);
        }
    }

    void samplersShowInTheLayerJson() {
        const Case c = load("deform_attn");
        const model::LayerGraph g = model::layerGraph(c.model, {32, 32});
        const auto j = g.toJson();
        int found = 0;
        for (const auto& l : j.at("layers"))
            if (l.at("kind") == "deform_attn") {
                ++found;
                QCOMPARE(l.at("sampler").at("levels").get<int>(), 2);
                QCOMPARE(l.at("sampler").at("layout").get<std::string>(), std::string("queries"));
                QCOMPARE(l.at("sampler").at("points").get<int>(), 4);
                QCOMPARE(l.at("sampler").at("rows").get<int>(), 2);
            }
        QCOMPARE(found, 2);
        // Level 1 reads a map of half the size: its own frame (jump 2).
        const model::Layer* l1 = nullptr;
        for (const model::Layer& l : g.layers())
            if (l.kind == model::LayerKind::DeformAttn && l.sampler.level == 1)
                l1 = &l;
        QVERIFY(l1 && !l1->inputs.empty());
        QCOMPARE(g.layers()[size_t(l1->inputs.back())].jump[0], 2.0);
        QCOMPARE(l1->sampler.valueSize, (std::array<int64_t, 2>{16, 16}));
    }
};

QTEST_GUILESS_MAIN(TestSamplers)
#include "tst_samplers.moc"
