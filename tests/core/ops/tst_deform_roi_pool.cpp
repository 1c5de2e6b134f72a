// Tests of the deform_roi_pool operator (deformable RoI pooling, mmcv's
// semantics): the forward and all gradients against the float64 reference over
// a table of cases (RoIs inside, across and far outside the feature map, of size
// 0 and reversed; adaptive and fixed sampling grids; plain RoIAlign, DCNv1
// offsets and DCNv2 offsets + mask; batches of several images), values worked
// out by hand (the coordinate convention and the inclusive range limits),
// finite differences of the op and of the reference, invariants, bad inputs,
// autograd, registration and determinism; CUDA rows run when a GPU is present
// and skip otherwise.
#include "core/ops/checks/deform_roi_pool_checks.h"
#include "core/ops/checks/op_checks.h"
#include "core/ops/deform_roi_pool.h"
#include "core/ops/registration.h"
#include "op_test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <QtTest/QtTest>

using namespace deformscope::ops;
using namespace deformscope::ops::checks;

Q_DECLARE_METATYPE(deformscope::ops::checks::RoiPoolCaseSpec)
Q_DECLARE_METATYPE(at::Tensor)

namespace {

enum class Form { Plain, V1, V2 };

void addCaseRows() {
    QTest::addColumn<RoiPoolCaseSpec>("spec");
    const std::pair<Form, const char*> forms[] = {{Form::Plain, "plain"}, {Form::V1, "dcnv1"}, {Form::V2, "dcnv2"}};
    const std::pair<RoiPlacement, const char*> placements[] = {
        {RoiPlacement::Inside, "inside"}, {RoiPlacement::PartlyOutside, "partly outside"}, {RoiPlacement::Mixed, "mixed"}};
    for (const auto& [form, formName] : forms)
        for (const auto& [placement, placementName] : placements)
            for (int64_t ratio : {0, 2}) {
                RoiPoolCaseSpec s;
                s.placement = placement;
                s.params.sampling_ratio = ratio;
                s.offsets = form != Form::Plain;
                s.params.use_mask = form == Form::V2;
                const std::string name = std::string(formName) + " " + placementName + " sampling " + std::to_string(ratio);
                QTest::newRow(name.c_str()) << s;
            }
    auto row = [](const char* name, auto&& edit) {
        RoiPoolCaseSpec s;
        s.offsets = true;
        s.params.use_mask = true;
        edit(s);
        QTest::newRow(name) << s;
    };
    row("dcnv2 large offsets gamma 0.5", [](RoiPoolCaseSpec& s) { s.params.gamma = 0.5; s.offset_scale = 3.0; });
    row("dcnv2 pooled 7x7 scale 1/16 adaptive", [](RoiPoolCaseSpec& s) { s.params.pooled_height = s.params.pooled_width = 7; s.params.spatial_scale = 1.0 / 16; s.params.sampling_ratio = 0; s.height = 14; s.width = 12; });
    row("dcnv2 pooled 1x1 sampling 1", [](RoiPoolCaseSpec& s) { s.params.pooled_height = s.params.pooled_width = 1; s.params.sampling_ratio = 1; s.placement = RoiPlacement::Mixed; });
    row("dcnv2 pooled 2x5 sampling 3 scale 1", [](RoiPoolCaseSpec& s) { s.params.pooled_height = 2; s.params.pooled_width = 5; s.params.sampling_ratio = 3; s.params.spatial_scale = 1.0; });
    row("dcnv1 batch 4 K 13", [](RoiPoolCaseSpec& s) { s.batch = 4; s.rois = 13; s.params.use_mask = false; s.placement = RoiPlacement::Mixed; });
    row("dcnv2 one-row feature map", [](RoiPoolCaseSpec& s) { s.height = 1; s.width = 6; });
    row("dcnv2 1x1 feature map", [](RoiPoolCaseSpec& s) { s.height = s.width = 1; s.params.sampling_ratio = 0; });
    row("dcnv2 one RoI C1", [](RoiPoolCaseSpec& s) { s.rois = 1; s.channels = 1; s.batch = 1; });
    row("dcnv2 negative sampling ratio is adaptive", [](RoiPoolCaseSpec& s) { s.params.sampling_ratio = -1; });
}

// A one-image 3 x 4 feature map holding 4y + x: every read inside is exact.
at::Tensor linearMap() {
    return at::arange(12.0, at::TensorOptions().dtype(at::kDouble)).view({1, 1, 3, 4});
}

at::Tensor roi(double b, double x1, double y1, double x2, double y2) {
    return at::tensor({b, x1, y1, x2, y2}, at::TensorOptions().dtype(at::kDouble)).view({1, 5});
}

// Pooled 1 x 1, spatial_scale 1, `ratio` x `ratio` reads.
DeformRoiPoolParams single(int64_t ratio) {
    DeformRoiPoolParams p;
    p.pooled_height = p.pooled_width = 1;
    p.sampling_ratio = ratio;
    return p;
}

double pooled(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
              const DeformRoiPoolParams& p) {
    return deformRoiPool(input, rois, offset, mask, p).item<double>();
}

} // namespace

class TestDeformRoiPool : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { registerOperators(); }

    void float64MatchesReference_data() { addCaseRows(); }
    void float64MatchesReference() {
        QFETCH(RoiPoolCaseSpec, spec);
        const RoiPoolComparison c = compareRoiPoolWithReference(spec, 42, at::kDouble, at::kCPU);
        QVERIFY2(c.worst() < 1e-10, c.describe().c_str());
    }

    void float32MatchesReference_data() { addCaseRows(); }
    void float32MatchesReference() {
        QFETCH(RoiPoolCaseSpec, spec);
        const RoiPoolComparison c = compareRoiPoolWithReference(spec, 43, at::kFloat, at::kCPU);
        QVERIFY2(c.worst() < 1e-4, c.describe().c_str());
    }

    void halfAndBFloat16() {
        RoiPoolCaseSpec spec;
        spec.offsets = true;
        spec.params.use_mask = true;
        // Against the reference on the same rounded inputs: only the arithmetic differs.
        const RoiPoolComparison half = compareRoiPoolWithReference(spec, 44, at::kHalf, at::kCPU);
        const RoiPoolComparison bf16 = compareRoiPoolWithReference(spec, 44, at::kBFloat16, at::kCPU);
        QVERIFY2(half.worst() < 5e-3, half.describe().c_str());
        QVERIFY2(bf16.worst() < 3e-2, bf16.describe().c_str());
    }

    // The op and the reference against values worked out by hand on a map
    // holding 4y + x, so that the comparisons above cannot pass by sharing a
    // mistake: the -0.5 of mmcv's aligned coordinates, the read grid, the
    // offsets' scaling and axes, the mask, the batch index and the range limits.
    void handComputedValues_data() {
        QTest::addColumn<at::Tensor>("rois");
        QTest::addColumn<double>("offsetX");
        QTest::addColumn<double>("offsetY");
        QTest::addColumn<double>("mask"); // 0: no mask
        QTest::addColumn<int>("ratio");
        QTest::addColumn<double>("expected");
        // RoI x 1..3, y 1..2 -> start (0.5, 0.5), size 2 x 1: one read at (y 1, x 1.5).
        QTest::newRow("one read") << roi(0, 1, 1, 3, 2) << 0.0 << 0.0 << 0.0 << 1 << 5.5;
        // The whole map, 2 x 2 reads at y 0.25, 1.75 and x 0.5, 2.5: mean 4*1 + 1.5.
        QTest::newRow("2x2 reads") << roi(0, 0, 0, 4, 3) << 0.0 << 0.0 << 0.0 << 2 << 5.5;
        // Adaptive: ceil(3/1) x ceil(4/1) = 3 x 4 reads at the pixel centres: their mean.
        QTest::newRow("adaptive grid") << roi(0, 0, 0, 4, 3) << 0.0 << 0.0 << 0.0 << 0 << 5.5;
        // offset x 2.5 moves x by 0.1 * 2 * 2.5 = 0.5, offset y -5 moves y by 0.1 * 1 * -5 = -0.5.
        QTest::newRow("offset moves x by channel 0, y by channel 1")
            << roi(0, 1, 1, 3, 2) << 2.5 << -5.0 << 0.0 << 1 << 4.0 * 0.5 + 2.0;
        QTest::newRow("mask") << roi(0, 1, 1, 3, 2) << 0.0 << 0.0 << 0.5 << 1 << 2.75;
        // y exactly -1 is inside (clamped to row 0): x 1 -> 1.
        QTest::newRow("read at y = -1 is inside") << roi(0, 1, -1, 2, 0) << 0.0 << 0.0 << 0.0 << 1 << 1.0;
        QTest::newRow("read at y = -1.25 is 0") << roi(0, 1, -1.25, 2, -0.25) << 0.0 << 0.0 << 0.0 << 1 << 0.0;
        // y exactly H = 3 is inside (clamped to row 2): 8 + 1.
        QTest::newRow("read at y = H is inside") << roi(0, 1, 3, 2, 4) << 0.0 << 0.0 << 0.0 << 1 << 9.0;
        QTest::newRow("read at y = H + 0.25 is 0") << roi(0, 1, 3.25, 2, 4.25) << 0.0 << 0.0 << 0.0 << 1 << 0.0;
        // x = -0.5 reads column 0 (no fade toward 0, unlike deform_conv2d): row 1 -> 4.
        QTest::newRow("read between -1 and 0 is clamped") << roi(0, -0.5, 1, 0.5, 2) << 0.0 << 0.0 << 0.0 << 1 << 4.0;
        // x = 3.5 (between W-1 and W) reads column 3: row 1 -> 7.
        QTest::newRow("read between W-1 and W is clamped") << roi(0, 3.5, 1, 4.5, 2) << 0.0 << 0.0 << 0.0 << 1 << 7.0;
        QTest::newRow("read at x = W is inside") << roi(0, 4, 1, 5, 2) << 0.0 << 0.0 << 0.0 << 1 << 7.0;
        // Size 0 with an adaptive grid: no reads, 0.
        QTest::newRow("empty RoI pools 0") << roi(0, 2, 1, 2, 2) << 0.0 << 0.0 << 0.0 << 0 << 0.0;
    }
    void handComputedValues() {
        QFETCH(at::Tensor, rois);
        QFETCH(double, offsetX);
        QFETCH(double, offsetY);
        QFETCH(double, mask);
        QFETCH(int, ratio);
        QFETCH(double, expected);
        const auto opts = at::TensorOptions().dtype(at::kDouble);
        DeformRoiPoolParams p = single(ratio);
        p.use_mask = mask != 0.0;
        const at::Tensor offset =
            offsetX != 0.0 || offsetY != 0.0 ? at::tensor({offsetX, offsetY}, opts).view({1, 2, 1, 1}) : at::Tensor();
        const at::Tensor m = p.use_mask ? at::full({1, 1, 1, 1}, mask, opts) : at::Tensor();
        const double ours = pooled(linearMap(), rois, offset, m, p);
        const double ref = roiPoolReferenceForward(linearMap(), rois, offset, m, p).item<double>();
        QVERIFY2(std::abs(ours - expected) < 1e-12, qPrintable(QString("ours %1, expected %2").arg(ours).arg(expected)));
        QVERIFY2(std::abs(ref - expected) < 1e-12, qPrintable(QString("reference %1, expected %2").arg(ref).arg(expected)));
    }

    // The RoI reads the image its batch index names, truncated as mmcv's int conversion.
    void batchIndexSelectsTheImage() {
        const at::Tensor two = at::cat({linearMap(), linearMap() + 100.0}, 0);
        const DeformRoiPoolParams p = single(1);
        QCOMPARE(pooled(two, roi(0, 1, 1, 3, 2), at::Tensor(), at::Tensor(), p), 5.5);
        QCOMPARE(pooled(two, roi(1, 1, 1, 3, 2), at::Tensor(), at::Tensor(), p), 105.5);
        QCOMPARE(pooled(two, roi(1.75, 1, 1, 3, 2), at::Tensor(), at::Tensor(), p), 105.5);
        QCOMPARE(pooled(two, roi(-0.5, 1, 1, 3, 2), at::Tensor(), at::Tensor(), p), 5.5);
    }

    // Gradients at one read, by hand: inside, the offset gradient is
    // gamma * roi size * slope (4 along y, 1 along x on 4y + x) * mask; along a
    // clamped axis it is 0 (the read does not move there). mmcv's CUDA backward
    // would give 0.1 * 1 * 4 = 0.4 for the y offset of the read at y = -1.
    void handComputedGradients() {
        const auto opts = at::TensorOptions().dtype(at::kDouble);
        DeformRoiPoolParams p = single(1);
        p.use_mask = true;
        const at::Tensor offset = at::zeros({1, 2, 1, 1}, opts);
        const at::Tensor mask = at::full({1, 1, 1, 1}, 0.5, opts);
        const at::Tensor one = at::ones({1, 1, 1, 1}, opts);
        {
            const auto [gi, goff, gm] = deformRoiPoolBackward(one, linearMap(), roi(0, 1, 1, 3, 2), offset, mask, p);
            QVERIFY(at::allclose(goff.flatten(), at::tensor({0.1 * 2 * 1 * 0.5, 0.1 * 1 * 4 * 0.5}, opts)));
            QCOMPARE(gm.item<double>(), 5.5);
            // The read at (1, 1.5) puts half of the mask's 0.5 on pixels (1, 1) and (1, 2).
            at::Tensor expected = at::zeros({1, 1, 3, 4}, opts);
            expected[0][0][1][1] = 0.25;
            expected[0][0][1][2] = 0.25;
            QVERIFY(at::allclose(gi, expected));
        }
        {
            const auto [gi, goff, gm] = deformRoiPoolBackward(one, linearMap(), roi(0, 1, -1, 2, 0), offset, mask, p);
            QVERIFY(at::allclose(goff.flatten(), at::tensor({0.1 * 1 * 1 * 0.5, 0.0}, opts)));
            QCOMPARE(gi[0][0][0][1].item<double>(), 0.5);
        }
    }

    void finiteDifferences_data() {
        QTest::addColumn<RoiPoolCaseSpec>("spec");
        auto row = [](const char* name, auto&& edit) {
            RoiPoolCaseSpec s;
            s.rois = 4;
            s.awayFromKinks = true;
            s.params.gamma = 0.3; // reads cross into the clamped bands and beyond the range limits
            edit(s);
            QTest::newRow(name) << s;
        };
        row("plain sampling 2", [](RoiPoolCaseSpec&) {});
        row("dcnv1 sampling 0", [](RoiPoolCaseSpec& s) { s.offsets = true; s.params.sampling_ratio = 0; });
        row("dcnv1 sampling 2", [](RoiPoolCaseSpec& s) { s.offsets = true; });
        row("dcnv2 sampling 0", [](RoiPoolCaseSpec& s) { s.offsets = true; s.params.use_mask = true; s.params.sampling_ratio = 0; });
        row("dcnv2 sampling 2 batch 3", [](RoiPoolCaseSpec& s) { s.offsets = true; s.params.use_mask = true; s.batch = 3; s.rois = 5; });
        row("dcnv2 large offsets", [](RoiPoolCaseSpec& s) { s.offsets = true; s.params.use_mask = true; s.offset_scale = 3.0; });
    }
    void finiteDifferences() {
        QFETCH(RoiPoolCaseSpec, spec);
        const double ours = roiPoolFiniteDifferenceError(spec, 7, at::kCPU, 1 << 20);
        const double ref = roiPoolReferenceFiniteDifferenceError(spec, 7, 1 << 20);
        QVERIFY2(ours < 1e-6, qPrintable(QString("op: finite-difference error %1").arg(ours)));
        QVERIFY2(ref < 1e-6, qPrintable(QString("reference: finite-difference error %1").arg(ref)));
    }

    void zeroOffsetsAndUnitMaskArePlainRoiAlign_data() { addCaseRows(); }
    void zeroOffsetsAndUnitMaskArePlainRoiAlign() {
        QFETCH(RoiPoolCaseSpec, spec);
        QCOMPARE(roiPoolNeutralArgumentsError(spec, 8, at::kFloat, at::kCPU), 0.0);
    }

    void badInputsThrowClearErrors_data() { testing::addBadInputRows(roiPoolBadInputCases(at::kCPU)); }
    void badInputsThrowClearErrors() {
        QFETCH(int, index);
        VERIFY_NO_PROBLEM(badInputProblem(roiPoolBadInputCases(at::kCPU)[index]));
    }

    // Undefined offset and mask tensors are accepted by the C++ entry point when not used.
    void undefinedOptionalTensors() {
        RoiPoolCaseSpec spec;
        const RoiPoolCaseTensors t = makeRoiPoolCase(spec, 12, at::kDouble, at::kCPU);
        const at::Tensor a = deformRoiPool(t.input, t.rois, at::Tensor(), at::Tensor(), spec.params);
        const at::Tensor b = deformRoiPool(t.input, t.rois, t.offset, t.mask, spec.params);
        QVERIFY(at::equal(a, b));
        const auto [gi, goff, gm] = deformRoiPoolBackward(at::ones_like(a), t.input, t.rois, at::Tensor(), at::Tensor(),
                                                          spec.params);
        QVERIFY(gi.sizes() == t.input.sizes());
        QCOMPARE(goff.numel(), int64_t(0));
        QCOMPARE(gm.numel(), int64_t(0));
    }

    void noRoisGiveEmptyOutput() {
        RoiPoolCaseSpec spec;
        spec.offsets = true;
        spec.params.use_mask = true;
        spec.rois = 0;
        const RoiPoolCaseTensors t = makeRoiPoolCase(spec, 1, at::kFloat, at::kCPU);
        const at::Tensor out = deformRoiPool(t.input, t.rois, t.offset, t.mask, spec.params);
        QVERIFY(out.sizes().vec() == (std::vector<int64_t>{0, 3, 3, 4}));
        const auto [gi, goff, gm] = deformRoiPoolBackward(out, t.input, t.rois, t.offset, t.mask, spec.params);
        QVERIFY(at::equal(gi, at::zeros_like(t.input)));
        QCOMPARE(goff.numel(), int64_t(0));
        QCOMPARE(gm.numel(), int64_t(0));
    }

    void emptyFeatureMapPoolsZero() {
        const auto opts = at::TensorOptions().dtype(at::kDouble);
        const at::Tensor input = at::zeros({1, 2, 0, 5}, opts);
        const at::Tensor out = deformRoiPool(input, roi(0, 0, 0, 3, 3), at::Tensor(), at::Tensor(), single(2));
        QVERIFY(at::equal(out, at::zeros({1, 2, 1, 1}, opts)));
    }

    void nonContiguousInputsGiveSameResult() {
        RoiPoolCaseSpec spec;
        spec.offsets = true;
        spec.params.use_mask = true;
        const RoiPoolCaseTensors t = makeRoiPoolCase(spec, 2, at::kFloat, at::kCPU);
        auto transposed = [](const at::Tensor& x) { return x.transpose(-1, -2).contiguous().transpose(-1, -2); };
        const at::Tensor rois = t.rois.t().contiguous().t();
        QVERIFY(!rois.is_contiguous());
        const at::Tensor a = deformRoiPool(t.input, t.rois, t.offset, t.mask, spec.params);
        const at::Tensor b =
            deformRoiPool(transposed(t.input), rois, transposed(t.offset), transposed(t.mask), spec.params);
        QVERIFY(at::equal(a, b));
        const at::Tensor R = at::randn_like(a);
        const auto ga = deformRoiPoolBackward(R, t.input, t.rois, t.offset, t.mask, spec.params);
        const auto gb = deformRoiPoolBackward(transposed(R), transposed(t.input), rois, transposed(t.offset),
                                              transposed(t.mask), spec.params);
        QVERIFY(at::equal(std::get<0>(ga), std::get<0>(gb)));
        QVERIFY(at::equal(std::get<1>(ga), std::get<1>(gb)));
        QVERIFY(at::equal(std::get<2>(ga), std::get<2>(gb)));
    }

    void autogradMatchesBackwardOp_data() {
        QTest::addColumn<bool>("offsets");
        QTest::addColumn<bool>("useMask");
        QTest::newRow("plain") << false << false;
        QTest::newRow("dcnv1") << true << false;
        QTest::newRow("mask only") << false << true;
        QTest::newRow("dcnv2") << true << true;
    }
    void autogradMatchesBackwardOp() {
        QFETCH(bool, offsets);
        QFETCH(bool, useMask);
        RoiPoolCaseSpec spec;
        spec.offsets = offsets;
        spec.params.use_mask = useMask;
        VERIFY_NO_PROBLEM(roiPoolAutogradProblem(spec, 5, at::kCPU));
    }

    void doubleBackwardIsRefused() {
        RoiPoolCaseSpec spec;
        spec.offsets = true;
        const RoiPoolCaseTensors t = makeRoiPoolCase(spec, 6, at::kDouble, at::kCPU);
        const at::Tensor off = t.offset.clone().requires_grad_(true);
        const at::Tensor out = deformRoiPool(t.input, t.rois, off, t.mask, spec.params);
        const auto g = torch::autograd::grad({out.sum()}, {off}, {}, std::nullopt, /*create_graph=*/true);
        const std::string message = errorMessageOf([&] { g[0].sum().backward(); });
        QVERIFY2(message.find("double backward") != std::string::npos, message.c_str());
    }

    void registeredSchemas() {
        auto& dispatcher = c10::Dispatcher::singleton();
        const auto forward = dispatcher.findSchema({"deformscope::deform_roi_pool", ""});
        const auto backward = dispatcher.findSchema({"deformscope::_deform_roi_pool_backward", ""});
        QVERIFY(forward.has_value());
        QVERIFY(backward.has_value());
        QCOMPARE(c10::toString(forward->schema()),
                 std::string("deformscope::deform_roi_pool(Tensor input, Tensor rois, Tensor offset, Tensor mask, int "
                             "pooled_height, int pooled_width, float spatial_scale, int sampling_ratio, float gamma, "
                             "bool use_mask) -> Tensor"));
        QCOMPARE(c10::toString(backward->schema()),
                 std::string("deformscope::_deform_roi_pool_backward(Tensor grad, Tensor input, Tensor rois, Tensor "
                             "offset, Tensor mask, int pooled_height, int pooled_width, float spatial_scale, int "
                             "sampling_ratio, float gamma, bool use_mask) -> (Tensor, Tensor, Tensor)"));
    }

    // Every CPU result comes from tasks that own their outputs: bit-identical
    // for any thread count.
    void cpuIsDeterministicAcrossThreadCounts() {
        RoiPoolCaseSpec spec;
        spec.offsets = true;
        spec.params.use_mask = true;
        spec.rois = 40;
        spec.channels = 8;
        spec.height = spec.width = 24;
        spec.params.sampling_ratio = 0;
        const RoiPoolCaseTensors t = makeRoiPoolCase(spec, 10, at::kFloat, at::kCPU);
        const int threads = at::get_num_threads();
        auto run = [&] {
            const at::Tensor out = deformRoiPool(t.input, t.rois, t.offset, t.mask, spec.params);
            const auto [gi, goff, gm] =
                deformRoiPoolBackward(at::ones_like(out), t.input, t.rois, t.offset, t.mask, spec.params);
            return std::vector<at::Tensor>{out, gi, goff, gm};
        };
        const auto a = run();
        at::set_num_threads(1);
        const auto b = run();
        at::set_num_threads(threads);
        for (size_t i = 0; i < a.size(); ++i)
            QVERIFY2(at::equal(a[i], b[i]), qPrintable(QString("result %1").arg(i)));
    }

    void cudaMatchesReferenceAndCpu_data() { addCaseRows(); }
    void cudaMatchesReferenceAndCpu() {
        SKIP_WITHOUT_CUDA();
        QFETCH(RoiPoolCaseSpec, spec);
        for (const at::Device& d : cudaDevices()) {
            const RoiPoolComparison f64 = compareRoiPoolWithReference(spec, 42, at::kDouble, d);
            const RoiPoolComparison f32 = compareRoiPoolWithReference(spec, 43, at::kFloat, d);
            QVERIFY2(f64.worst() < 1e-10, f64.describe().c_str());
            QVERIFY2(f32.worst() < 1e-4, f32.describe().c_str());
            const RoiPoolCaseTensors cpu = makeRoiPoolCase(spec, 44, at::kFloat, at::kCPU);
            const RoiPoolCaseTensors gpu = makeRoiPoolCase(spec, 44, at::kFloat, d);
            const at::Tensor oc = deformRoiPool(cpu.input, cpu.rois, cpu.offset, cpu.mask, spec.params);
            const at::Tensor og = deformRoiPool(gpu.input, gpu.rois, gpu.offset, gpu.mask, spec.params);
            QVERIFY(relativeError(og, oc) < 1e-5);
            const at::Tensor R = at::randn_like(oc);
            const auto gc = deformRoiPoolBackward(R, cpu.input, cpu.rois, cpu.offset, cpu.mask, spec.params);
            const auto gg = deformRoiPoolBackward(R.to(d), gpu.input, gpu.rois, gpu.offset, gpu.mask, spec.params);
            QVERIFY(relativeError(std::get<0>(gg), std::get<0>(gc)) < 1e-5);
            QVERIFY(relativeError(std::get<1>(gg), std::get<1>(gc)) < 1e-5);
            QVERIFY(relativeError(std::get<2>(gg), std::get<2>(gc)) < 1e-5);
        }
    }

    void cudaBackwardModes() {
        SKIP_WITHOUT_CUDA();
        RoiPoolCaseSpec spec;
        spec.offsets = true;
        spec.params.use_mask = true;
        spec.rois = 64;
        spec.channels = 32;
        spec.height = spec.width = 40;
        for (const at::Device& d : cudaDevices()) {
            const auto e = roiPoolBackwardModeErrors(spec, 11, d);
            QCOMPARE(e[0], 0.0);
            QVERIFY2(e[1] < 1e-5, qPrintable(QString("atomic vs deterministic %1").arg(e[1])));
        }
    }

    void cudaBadInputs() {
        SKIP_WITHOUT_CUDA();
        VERIFY_NO_PROBLEM(testing::cudaBadInputProblems(roiPoolBadInputCases(cudaDevices().front())));
    }
};

QTEST_GUILESS_MAIN(TestDeformRoiPool)
#include "tst_deform_roi_pool.moc"
