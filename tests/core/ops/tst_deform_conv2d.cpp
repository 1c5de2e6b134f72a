// Tests of the deform_conv2d operator: a float64 reference over a table of
// geometries, finite differences, invariants, bad inputs, registration, and
// determinism; CUDA rows run when a GPU is present and skip otherwise.
#include "core/ops/checks/selftest.h"
#include "core/ops/deform_conv2d.h"
#include "core/ops/op_support.h"
#include "core/ops/registration.h"
#include "op_test_support.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/autograd.h>

#include <QtTest/QtTest>

using namespace deformscope::ops;
using namespace deformscope::ops::checks;

Q_DECLARE_METATYPE(deformscope::ops::checks::CaseSpec)

namespace {

// The table the issue asks for: strides, paddings, dilations, groups, offset
// groups, mask, kernel shapes, batch sizes, samples outside the image and
// exactly on its border.
void addGeometryRows() {
    QTest::addColumn<CaseSpec>("spec");
    auto row = [](const char* name, auto&& edit) {
        CaseSpec s;
        edit(s);
        QTest::newRow(name) << s;
    };
    row("3x3 stride1 pad0", [](CaseSpec&) {});
    row("3x3 stride1 pad1 mask", [](CaseSpec& s) { s.params.pad_h = s.params.pad_w = 1; s.params.use_mask = true; });
    row("3x3 stride2 pad1", [](CaseSpec& s) { s.params.stride_h = s.params.stride_w = 2; s.params.pad_h = s.params.pad_w = 1; s.height = 9; });
    row("3x3 stride(2,1) pad(2,0)", [](CaseSpec& s) { s.params.stride_h = 2; s.params.pad_h = 2; });
    row("3x3 dilation2 pad2 mask", [](CaseSpec& s) { s.params.dilation_h = s.params.dilation_w = 2; s.params.pad_h = s.params.pad_w = 2; s.params.use_mask = true; });
    row("3x3 dilation(1,2) stride2", [](CaseSpec& s) { s.params.dilation_w = 2; s.params.stride_h = s.params.stride_w = 2; s.width = 9; });
    row("groups2", [](CaseSpec& s) { s.params.groups = 2; s.params.pad_h = s.params.pad_w = 1; });
    row("groups2 offset_groups2 mask", [](CaseSpec& s) { s.params.groups = 2; s.params.offset_groups = 2; s.params.use_mask = true; });
    row("offset_groups4 mask", [](CaseSpec& s) { s.params.offset_groups = 4; s.params.use_mask = true; s.params.pad_h = s.params.pad_w = 1; });
    row("offset_groups2 groups1 Cout6", [](CaseSpec& s) { s.params.offset_groups = 2; s.out_channels = 6; });
    row("1x1", [](CaseSpec& s) { s.kernel_h = s.kernel_w = 1; });
    row("1x1 mask stride2", [](CaseSpec& s) { s.kernel_h = s.kernel_w = 1; s.params.use_mask = true; s.params.stride_h = s.params.stride_w = 2; });
    row("5x5 pad2", [](CaseSpec& s) { s.kernel_h = s.kernel_w = 5; s.params.pad_h = s.params.pad_w = 2; });
    row("5x5 pad2 mask og2", [](CaseSpec& s) { s.kernel_h = s.kernel_w = 5; s.params.pad_h = s.params.pad_w = 2; s.params.use_mask = true; s.params.offset_groups = 2; });
    row("3x1 pad(1,0)", [](CaseSpec& s) { s.kernel_h = 3; s.kernel_w = 1; s.params.pad_h = 1; });
    row("3x1 mask og4", [](CaseSpec& s) { s.kernel_h = 3; s.kernel_w = 1; s.params.use_mask = true; s.params.offset_groups = 4; });
    row("batch1", [](CaseSpec& s) { s.batch = 1; s.params.use_mask = true; });
    row("batch3", [](CaseSpec& s) { s.batch = 3; s.params.pad_h = s.params.pad_w = 1; });
    row("batch37 mask", [](CaseSpec& s) { s.batch = 37; s.channels = s.out_channels = 2; s.height = s.width = 5; s.params.use_mask = true; s.params.pad_h = s.params.pad_w = 1; });
    row("offsets far outside", [](CaseSpec& s) { s.offset_scale = 8.0; s.params.use_mask = true; });
    row("samples exactly at -1, H, W", [](CaseSpec& s) { s.offsets = OffsetKind::ExactBorders; s.params.pad_h = s.params.pad_w = 1; });
    row("samples exactly at -1, H, W mask stride2", [](CaseSpec& s) { s.offsets = OffsetKind::ExactBorders; s.params.use_mask = true; s.params.stride_h = s.params.stride_w = 2; s.params.pad_h = s.params.pad_w = 1; });
    row("no bias", [](CaseSpec& s) { s.bias = false; s.params.use_mask = true; });
}

// A masked, padded case: the default for the tests of single properties.
CaseSpec maskedCase() {
    CaseSpec spec;
    spec.params.use_mask = true;
    spec.params.pad_h = spec.params.pad_w = 1;
    return spec;
}

} // namespace

class TestDeformConv2d : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { registerOperators(); }

    void float64MatchesReference_data() { addGeometryRows(); }
    void float64MatchesReference() {
        QFETCH(CaseSpec, spec);
        VERIFY_NO_PROBLEM(referenceProblem(deformConv2dUnderTest(spec.params),
                                           compareWithReference(spec, 42, at::kDouble, at::kCPU), 1e-10));
    }

    void float32MatchesReference_data() { addGeometryRows(); }
    void float32MatchesReference() {
        QFETCH(CaseSpec, spec);
        const double err = compareWithReference(spec, 43, at::kFloat, at::kCPU).worst();
        QVERIFY2(err < 1e-4, qPrintable(QString("error %1").arg(err)));
    }

    void halfAndBFloat16() {
        const CaseSpec spec = maskedCase();
        const double half = compareWithReference(spec, 44, at::kHalf, at::kCPU).worst();
        const double bf16 = compareWithReference(spec, 44, at::kBFloat16, at::kCPU).worst();
        QVERIFY2(half < 3e-2, qPrintable(QString("half error %1").arg(half)));
        QVERIFY2(bf16 < 1.5e-1, qPrintable(QString("bfloat16 error %1").arg(bf16)));
    }

    void finiteDifferences_data() {
        QTest::addColumn<CaseSpec>("spec");
        const CaseSpec s = finiteDifferenceCase();
        CaseSpec m = s;
        m.params.use_mask = true;
        QTest::newRow("no mask") << s;
        QTest::newRow("mask") << m;
        m.params.stride_h = 2;
        m.params.dilation_w = 2;
        m.params.groups = 2;
        m.params.offset_groups = 2;
        m.width = 7;
        QTest::newRow("mask stride2 dilation2 groups2 og2") << m;
    }
    void finiteDifferences() {
        QFETCH(CaseSpec, spec);
        const double err = finiteDifferenceError(spec, 7, at::kCPU, 1 << 20);
        QVERIFY2(err < 1e-6, qPrintable(QString("finite-difference error %1").arg(err)));
    }

    void zeroOffsetsEqualConv2d_data() { addGeometryRows(); }
    void zeroOffsetsEqualConv2d() {
        QFETCH(CaseSpec, spec);
        QVERIFY(zeroOffsetConvError(spec, 8, at::kFloat, at::kCPU) < 1e-5);
        QVERIFY(zeroOffsetConvError(spec, 8, at::kDouble, at::kCPU) < 1e-12);
    }

    void integerOffsetsEqualShiftedConv2d_data() {
        QTest::addColumn<CaseSpec>("spec");
        const int shifts[][2] = {{1, 0}, {0, -2}, {-3, 2}, {5, 5}};
        for (const auto& sh : shifts) {
            CaseSpec s = maskedCase();
            s.shift_y = sh[0];
            s.shift_x = sh[1];
            QTest::newRow(qPrintable(QString("shift %1,%2").arg(sh[0]).arg(sh[1]))) << s;
            s.params.stride_h = s.params.stride_w = 2;
            s.params.dilation_h = 2;
            s.params.groups = 2;
            QTest::newRow(qPrintable(QString("shift %1,%2 stride2 dil2 groups2").arg(sh[0]).arg(sh[1]))) << s;
        }
    }
    void integerOffsetsEqualShiftedConv2d() {
        QFETCH(CaseSpec, spec);
        const double err = integerShiftConvError(spec, 9, at::kDouble, at::kCPU);
        QVERIFY2(err < 1e-12, qPrintable(QString("error %1").arg(err)));
    }

    void badInputsThrowClearErrors_data() { testing::addBadInputRows(badInputCases(at::kCPU)); }
    void badInputsThrowClearErrors() {
        QFETCH(int, index);
        VERIFY_NO_PROBLEM(badInputProblem(badInputCases(at::kCPU)[index]));
    }

    void emptyBatchGivesEmptyOutput() {
        CaseSpec spec;
        spec.params.use_mask = true;
        VERIFY_NO_PROBLEM(emptyBatchProblem(deformConv2dUnderTest(spec.params),
                                            argsOf(makeCase(spec, 1, at::kFloat, at::kCPU)),
                                            {0, spec.out_channels, spec.outH(), spec.outW()}));
    }

    void nonContiguousInputsGiveSameResult() {
        CaseSpec spec = maskedCase();
        spec.height = spec.width = 6;
        VERIFY_NO_PROBLEM(
            nonContiguousProblem(deformConv2dUnderTest(spec.params), argsOf(makeCase(spec, 2, at::kFloat, at::kCPU))));
    }

    // Batches larger than one chunk of the column buffer must equal image-by-image results.
    void largeBatchEqualsPerImage() {
        CaseSpec spec = maskedCase();
        spec.batch = 17; // 2.4M column elements per image: chunks of 14 and 3 images
        spec.channels = 64;
        spec.out_channels = 8;
        spec.height = spec.width = 64;
        const OpUnderTest op = deformConv2dUnderTest(spec.params);
        const OpArgs args = argsOf(makeCase(spec, 3, at::kFloat, at::kCPU));
        const at::Tensor all = op.forward(args);
        for (int64_t n : {int64_t{0}, int64_t{13}, int64_t{14}, int64_t{16}}) {
            const at::Tensor one = op.forward(imagesOf(args, n, 1));
            QVERIFY2(at::allclose(all.narrow(0, n, 1), one, 1e-5, 1e-5), qPrintable(QString("image %1").arg(n)));
        }
    }

    void autogradMatchesBackwardOp() {
        const CaseSpec spec = maskedCase();
        VERIFY_NO_PROBLEM(autogradProblem(deformConv2dUnderTest(spec.params),
                                          argsOf(makeCase(spec, 5, at::kDouble, at::kCPU)),
                                          [](const at::Tensor& out) { return at::ones_like(out); }));
    }

    // One node's gradient reaches a few output positions: the backward then runs on
    // the box they span (a shifted grid) and must equal the float64 reference.
    void sparseGradientMatchesReference_data() { addGeometryRows(); }
    void sparseGradientMatchesReference() {
        QFETCH(CaseSpec, spec);
        spec.height = std::max<int64_t>(spec.height, 15);
        spec.width = std::max<int64_t>(spec.width, 14);
        const CaseTensors t = makeCase(spec, 21, at::kDouble, at::kCPU);
        at::Tensor go = at::zeros({spec.batch, spec.out_channels, spec.outH(), spec.outW()}, at::kDouble);
        go.narrow(0, 0, 1).narrow(2, 1, 2).narrow(3, 2, 2).normal_();
        go[spec.batch - 1][0][std::min<int64_t>(3, spec.outH() - 1)][1] = 0.75;
        const auto [gi, gw, goff, gm, gb] =
            deformConv2dBackward(go, t.input, t.weight, t.offset, t.mask, t.bias, spec.params);
        const auto [ri, rw, roff, rm, rb] =
            referenceBackward(go, t.input, t.weight, t.offset, t.mask, t.bias, spec.params);
        QVERIFY(at::allclose(gi, ri, 1e-10, 1e-10));
        QVERIFY(at::allclose(gw, rw, 1e-10, 1e-10));
        QVERIFY(at::allclose(goff, roff, 1e-10, 1e-10));
        if (spec.params.use_mask)
            QVERIFY(at::allclose(gm, rm, 1e-10, 1e-10));
        QVERIFY(at::allclose(gb, rb, 1e-10, 1e-10));
        // No gradient at all: every gradient zero.
        const auto [zi, zw, zoff, zm, zb] =
            deformConv2dBackward(at::zeros_like(go), t.input, t.weight, t.offset, t.mask, t.bias, spec.params);
        QCOMPARE(zi.abs().max().item<double>() + zw.abs().max().item<double>() + zoff.abs().max().item<double>(), 0.0);
    }

    // An ERF asks autograd for the image's gradient alone: the backward then skips the
    // weight and bias gradients (their im2col and GEMM), and the others are unchanged.
    void imageGradientAloneSkipsTheParameters() {
        const CaseSpec spec = maskedCase();
        const OpArgs a = argsOf(makeCase(spec, 11, at::kDouble, at::kCPU));
        const at::Tensor out = deformConv2d(a[0], a[1], a[2], a[3], a[4], spec.params);
        const at::Tensor go = at::randn_like(out);
        const auto [gi, gw, goff, gm, gb] = deformConv2dBackward(go, a[0], a[1], a[2], a[3], a[4], spec.params);
        QVERIFY(gw.abs().max().item<double>() > 0);
        {
            deformscope::ops::detail::ParameterGradsUnneeded skip(true);
            const auto [si, sw, soff, sm, sb] = deformConv2dBackward(go, a[0], a[1], a[2], a[3], a[4], spec.params);
            QVERIFY(at::equal(si, gi) && at::equal(soff, goff) && at::equal(sm, gm));
            QCOMPARE(sw.abs().max().item<double>(), 0.0);
            QCOMPARE(sw.sizes(), gw.sizes());
        }
        QVERIFY(!deformscope::ops::detail::ParameterGradsUnneeded::active());
        // Through autograd: the input's gradient alone, then the weight's, each equal to the backward op's.
        const at::Tensor input = a[0].clone().requires_grad_(true), weight = a[1].clone().requires_grad_(true);
        const at::Tensor offset = a[2].clone().requires_grad_(true);
        const at::Tensor r = (deformConv2d(input, weight, offset, a[3], a[4], spec.params) * go).sum();
        const auto onlyInput = torch::autograd::grad({r}, {input}, {}, /*retain_graph=*/true);
        QVERIFY(at::allclose(onlyInput[0], gi, 1e-12, 1e-12));
        const auto withWeight = torch::autograd::grad({r}, {weight, offset}, {}, /*retain_graph=*/true);
        QVERIFY(at::allclose(withWeight[0], gw, 1e-12, 1e-12));
        QVERIFY(at::allclose(withWeight[1], goff, 1e-12, 1e-12));
    }

    void torchvisionAliasesAreRegistered() {
        // No torchvision library is loaded in this process, so ours must answer its names.
        QVERIFY(torchvisionAliasesRegistered());
        auto& dispatcher = c10::Dispatcher::singleton();
        QVERIFY(dispatcher.findSchema({"torchvision::deform_conv2d", ""}).has_value());
        QVERIFY(dispatcher.findSchema({"torchvision::_deform_conv2d_backward", ""}).has_value());
        QCOMPARE(c10::toString(dispatcher.findSchema({"torchvision::deform_conv2d", ""})->schema()),
                 std::string("torchvision::deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, "
                             "Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt "
                             "dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor"));

        CaseSpec spec;
        spec.params.use_mask = true;
        const CaseTensors t = makeCase(spec, 6, at::kFloat, at::kCPU);
        const auto op = dispatcher.findSchemaOrThrow("torchvision::deform_conv2d", "")
                            .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                              const at::Tensor&, c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt,
                                              c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt, bool)>();
        const at::Tensor viaAlias = op.call(t.input, t.weight, t.offset, t.mask, t.bias, 1, 1, 0, 0, 1, 1, 1, 1, true);
        QVERIFY(at::equal(viaAlias, deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, spec.params)));
    }

    void registrationIsIdempotent() {
        registerOperators();
        registerOperators();
        QVERIFY(c10::Dispatcher::singleton().findSchema({"deformscope::deform_conv2d", ""}).has_value());
    }

    // The CPU backward writes disjoint slices per task: bit-identical for any thread count.
    void cpuBackwardIsDeterministicAcrossThreadCounts() {
        const CaseSpec spec = collidingCase(3, 16, 24);
        const at::Tensor R = at::randn({spec.batch, spec.out_channels, spec.outH(), spec.outW()});
        // grad_weight comes from a GEMM whose blocking may depend on threads; the sampling grads may not.
        VERIFY_NO_PROBLEM(threadCountProblem(deformConv2dUnderTest(spec.params),
                                             argsOf(makeCase(spec, 10, at::kFloat, at::kCPU)), R, {0, 1, 2, 3, 4},
                                             {0, 2, 3}));
    }

    void backwardModeSetting() {
        const BackwardMode before = backwardMode();
        setBackwardMode(BackwardMode::Atomic);
        QCOMPARE(backwardMode(), BackwardMode::Atomic);
        QVERIFY(!deterministicBackwardInEffect());
        at::globalContext().setDeterministicAlgorithms(true, false);
        QVERIFY(deterministicBackwardInEffect());
        at::globalContext().setDeterministicAlgorithms(false, false);
        setBackwardMode(before);
    }

    void cudaMatchesReferenceAndCpu_data() { addGeometryRows(); }
    void cudaMatchesReferenceAndCpu() {
        SKIP_WITHOUT_CUDA();
        QFETCH(CaseSpec, spec);
        for (const at::Device& d : cudaDevices()) {
            QVERIFY(compareWithReference(spec, 42, at::kDouble, d).worst() < 1e-10);
            QVERIFY(compareWithReference(spec, 43, at::kFloat, d).worst() < 1e-4);
        }
    }

    void cudaDeterministicBackward() {
        SKIP_WITHOUT_CUDA();
        const CaseSpec spec = collidingCase(4, 32, 48);
        const OpUnderTest op = deformConv2dUnderTest(spec.params);
        for (const at::Device& d : cudaDevices()) {
            const OpArgs args = argsOf(makeCase(spec, 11, at::kFloat, d));
            const at::Tensor R = at::randn({spec.batch, spec.out_channels, spec.outH(), spec.outW()}).to(d);
            QVERIFY(bitIdentical(backwardWith(op, R, args, BackwardMode::Deterministic),
                                 backwardWith(op, R, args, BackwardMode::Deterministic)));
        }
    }

    void cudaBadInputs() {
        SKIP_WITHOUT_CUDA();
        VERIFY_NO_PROBLEM(testing::cudaBadInputProblems(badInputCases(cudaDevices().front())));
    }
};

QTEST_GUILESS_MAIN(TestDeformConv2d)
#include "tst_deform_conv2d.moc"
