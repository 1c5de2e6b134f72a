// Tests of the deform_kernel2d operator (Deformable Kernels): a float64
// reference over a table of geometries (local and global kernel offsets, with
// and without image offsets, scopes larger than the kernel with fractional base
// positions, samples across both boundaries), finite differences, invariants
// (depthwise conv2d, depthwise deform_conv2d, global == broadcast local), bad
// inputs, registration and determinism; CUDA rows run when a GPU is present and
// skip otherwise.
#include "core/ops/checks/deform_kernel2d_checks.h"
#include "core/ops/deform_conv2d.h"
#include "core/ops/deform_kernel2d.h"
#include "core/ops/op_support.h"
#include "core/ops/registration.h"
#include "op_test_support.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <QtTest/QtTest>

using namespace deformscope::ops;
using namespace deformscope::ops::checks;

Q_DECLARE_METATYPE(deformscope::ops::checks::DkCaseSpec)

namespace {

void addGeometryRows() {
    QTest::addColumn<DkCaseSpec>("spec");
    auto row = [](const char* name, auto&& edit) {
        DkCaseSpec s;
        edit(s);
        QTest::newRow(name) << s;
    };
    row("local k3 scope5 pad0", [](DkCaseSpec&) {});
    row("global k3 scope5 pad0", [](DkCaseSpec& s) { s.global = true; });
    row("local pad1 image offsets", [](DkCaseSpec& s) { s.params.pad_h = s.params.pad_w = 1; s.params.use_offset = true; });
    row("global pad1 image offsets", [](DkCaseSpec& s) { s.global = true; s.params.pad_h = s.params.pad_w = 1; s.params.use_offset = true; });
    row("scope == kernel", [](DkCaseSpec& s) { s.scope_h = s.scope_w = 3; s.params.pad_h = s.params.pad_w = 1; });
    row("scope 4x6 fractional base", [](DkCaseSpec& s) { s.scope_h = 4; s.scope_w = 6; });
    row("scope 4x4 fractional base global offsets", [](DkCaseSpec& s) { s.scope_h = s.scope_w = 4; s.global = true; s.params.use_offset = true; });
    row("scope 9x9 large kernel offsets", [](DkCaseSpec& s) { s.scope_h = s.scope_w = 9; s.kernel_offset_scale = 3.0; s.params.pad_h = s.params.pad_w = 1; });
    row("stride2 pad1", [](DkCaseSpec& s) { s.params.stride_h = s.params.stride_w = 2; s.params.pad_h = s.params.pad_w = 1; s.height = 9; });
    row("stride(2,1) pad(2,0) image offsets", [](DkCaseSpec& s) { s.params.stride_h = 2; s.params.pad_h = 2; s.params.use_offset = true; });
    row("dilation2 pad2 image offsets", [](DkCaseSpec& s) { s.params.dilation_h = s.params.dilation_w = 2; s.params.pad_h = s.params.pad_w = 2; s.params.use_offset = true; });
    row("dilation(1,2) stride2 global", [](DkCaseSpec& s) { s.params.dilation_w = 2; s.params.stride_h = s.params.stride_w = 2; s.width = 9; s.global = true; });
    row("k1x1 scope3", [](DkCaseSpec& s) { s.params.kernel_h = s.params.kernel_w = 1; s.scope_h = s.scope_w = 3; });
    row("k3x1 scope 3x4 pad(1,0)", [](DkCaseSpec& s) { s.params.kernel_w = 1; s.scope_w = 4; s.params.pad_h = 1; s.params.use_offset = true; });
    row("k5x5 scope7 pad2", [](DkCaseSpec& s) { s.params.kernel_h = s.params.kernel_w = 5; s.scope_h = s.scope_w = 7; s.params.pad_h = s.params.pad_w = 2; });
    row("kernel offsets far outside the scope", [](DkCaseSpec& s) { s.kernel_offset_scale = 6.0; s.params.use_offset = true; });
    row("image offsets far outside", [](DkCaseSpec& s) { s.offset_scale = 8.0; s.params.use_offset = true; });
    row("kernel taps exactly at -1, S, S-1", [](DkCaseSpec& s) { s.kernel_offsets = OffsetKind::ExactBorders; s.params.pad_h = s.params.pad_w = 1; });
    row("kernel taps exactly at borders, global", [](DkCaseSpec& s) { s.kernel_offsets = OffsetKind::ExactBorders; s.global = true; s.batch = 4; });
    row("image samples exactly at -1, H, W", [](DkCaseSpec& s) { s.offsets = OffsetKind::ExactBorders; s.params.use_offset = true; s.params.pad_h = s.params.pad_w = 1; });
    row("both exactly at borders stride2", [](DkCaseSpec& s) { s.offsets = OffsetKind::ExactBorders; s.kernel_offsets = OffsetKind::ExactBorders; s.params.use_offset = true; s.params.stride_h = s.params.stride_w = 2; s.params.pad_h = s.params.pad_w = 1; });
    row("batch1 output 1x1", [](DkCaseSpec& s) { s.batch = 1; s.height = s.width = 3; s.params.use_offset = true; });
    row("batch7 global", [](DkCaseSpec& s) { s.batch = 7; s.channels = 2; s.height = s.width = 5; s.global = true; s.params.use_offset = true; s.params.pad_h = s.params.pad_w = 1; });
    row("no bias", [](DkCaseSpec& s) { s.bias = false; s.params.use_offset = true; });
}

// Image offsets on, padded: the default for the tests of single properties.
DkCaseSpec offsetCase() {
    DkCaseSpec spec;
    spec.params.use_offset = true;
    spec.params.pad_h = spec.params.pad_w = 1;
    return spec;
}

} // namespace

class TestDeformKernel2d : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { registerOperators(); }

    void float64MatchesReference_data() { addGeometryRows(); }
    void float64MatchesReference() {
        QFETCH(DkCaseSpec, spec);
        VERIFY_NO_PROBLEM(referenceProblem(deformKernel2dUnderTest(spec.params),
                                           compareDkWithReference(spec, 42, at::kDouble, at::kCPU), 1e-10));
    }

    void float32MatchesReference_data() { addGeometryRows(); }
    void float32MatchesReference() {
        QFETCH(DkCaseSpec, spec);
        const double err = compareDkWithReference(spec, 43, at::kFloat, at::kCPU).worst();
        QVERIFY2(err < 1e-4, qPrintable(QString("error %1").arg(err)));
    }

    void halfAndBFloat16() {
        const DkCaseSpec spec = offsetCase();
        const double half = compareDkWithReference(spec, 44, at::kHalf, at::kCPU).worst();
        const double bf16 = compareDkWithReference(spec, 44, at::kBFloat16, at::kCPU).worst();
        // Against the reference on the same rounded inputs: only the arithmetic differs.
        QVERIFY2(half < 5e-3, qPrintable(QString("half error %1").arg(half)));
        QVERIFY2(bf16 < 3e-2, qPrintable(QString("bfloat16 error %1").arg(bf16)));
    }

    // The reference itself against values worked out by hand, so that the
    // comparisons above cannot pass by sharing a mistake with the kernels.
    void referenceAgainstHandComputedValues() {
        // One channel, 1x1 kernel, scope 2x2 = [[1, 2], [3, 4]], base position (0.5, 0.5).
        const auto opts = at::TensorOptions().dtype(at::kDouble);
        const at::Tensor input = at::arange(1.0, 7.0, opts).view({1, 1, 2, 3}); // [[1,2,3],[4,5,6]]
        const at::Tensor weight = at::arange(1.0, 5.0, opts).view({1, 1, 2, 2});
        DeformKernel2dParams p;
        p.kernel_h = p.kernel_w = 1;
        // kernel offset (0, 0): W(0.5, 0.5) = 2.5; (-0.5, 0.5): W(0, 1) = 2; (-1.5, 0): W(-1, 0.5) = 0 (boundary rule);
        // (-1.0, -1.0): W(-0.5, -0.5) = 0.25 * 1 = 0.25 (corners outside count 0).
        const double kernelOffsets[4][2] = {{0, 0}, {-0.5, 0.5}, {-1.5, 0}, {-1.0, -1.0}};
        const double expectedScale[4] = {2.5, 2.0, 0.0, 0.25};
        for (int c = 0; c < 4; ++c) {
            const at::Tensor ko = at::tensor({kernelOffsets[c][0], kernelOffsets[c][1]}, opts).view({1, 2, 1, 1});
            const at::Tensor ref = dkReferenceForward(input, weight, ko, at::Tensor(), at::Tensor(), p);
            const at::Tensor ours = deformKernel2d(input, weight, ko, at::Tensor(), at::Tensor(), p);
            QVERIFY2(at::allclose(ref, input * expectedScale[c]), qPrintable(QString("reference, case %1").arg(c)));
            QVERIFY2(at::allclose(ours, input * expectedScale[c]), qPrintable(QString("ours, case %1").arg(c)));
        }
        // Image offset (0.5, -0.25) at every position with kernel W = 2.5: x(y+0.5, x-0.25).
        p.use_offset = true;
        const at::Tensor ko = at::zeros({1, 2, 2, 3}, opts);
        at::Tensor off = at::zeros({1, 2, 2, 3}, opts);
        off.select(1, 0).fill_(0.5);
        off.select(1, 1).fill_(-0.25);
        // Row 0 reads halfway to row 1, row 1 halfway to the zero row below the image; columns read
        // a quarter of the way to the left neighbour, column 0 a quarter toward the zero outside.
        const at::Tensor expected =
            2.5 * at::tensor({0.75 * 2.5, 0.25 * 2.5 + 0.75 * 3.5, 0.25 * 3.5 + 0.75 * 4.5,
                              0.5 * 0.75 * 4, 0.5 * (0.25 * 4 + 0.75 * 5), 0.5 * (0.25 * 5 + 0.75 * 6)},
                             opts)
                      .view({1, 1, 2, 3});
        QVERIFY(at::allclose(dkReferenceForward(input, weight, ko, off, at::Tensor(), p), expected));
        QVERIFY(at::allclose(deformKernel2d(input, weight, ko, off, at::Tensor(), p), expected));
    }

    void finiteDifferences_data() {
        QTest::addColumn<DkCaseSpec>("spec");
        DkCaseSpec s = dkFiniteDifferenceCase();
        QTest::newRow("local, no image offsets") << s;
        DkCaseSpec g = s;
        g.global = true;
        QTest::newRow("global, no image offsets") << g;
        s.params.use_offset = true;
        QTest::newRow("local, image offsets") << s;
        g.params.use_offset = true;
        QTest::newRow("global, image offsets") << g;
        s.params.stride_h = 2;
        s.params.dilation_w = 2;
        s.width = 7;
        s.batch = 2;
        s.scope_w = 6;
        s.kernel_offset_scale = 2.0;
        QTest::newRow("local, image offsets, stride2 dilation2 scope 4x6") << s;
    }
    void finiteDifferences() {
        QFETCH(DkCaseSpec, spec);
        const double err = dkFiniteDifferenceError(spec, 7, at::kCPU, 1 << 20);
        QVERIFY2(err < 1e-6, qPrintable(QString("finite-difference error %1").arg(err)));
    }

    void zeroOffsetsEqualDepthwiseConv2d_data() {
        QTest::addColumn<DkCaseSpec>("spec");
        auto row = [](const char* name, auto&& edit) {
            DkCaseSpec s;
            s.scope_h = s.scope_w = 3;
            edit(s);
            QTest::newRow(name) << s;
        };
        row("k3 pad0", [](DkCaseSpec&) {});
        row("k3 pad1 stride2", [](DkCaseSpec& s) { s.params.pad_h = s.params.pad_w = 1; s.params.stride_h = s.params.stride_w = 2; });
        row("k3 dilation(2,1) pad(2,1) global", [](DkCaseSpec& s) { s.params.dilation_h = 2; s.params.pad_h = 2; s.params.pad_w = 1; s.global = true; });
        row("k3x1 stride(1,2)", [](DkCaseSpec& s) { s.params.kernel_w = 1; s.scope_w = 1; s.params.stride_w = 2; });
        row("k5 pad2 C8 no bias", [](DkCaseSpec& s) { s.params.kernel_h = s.params.kernel_w = 5; s.scope_h = s.scope_w = 5; s.params.pad_h = s.params.pad_w = 2; s.channels = 8; s.height = s.width = 9; s.bias = false; });
        // Scope larger than the kernel: the centre window, and windows moved by integer kernel offsets
        // (partly outside the scope, where the kernel reads 0).
        row("scope5 centre window", [](DkCaseSpec& s) { s.scope_h = s.scope_w = 5; s.params.pad_h = s.params.pad_w = 1; });
        row("scope5 shift(1,-1)", [](DkCaseSpec& s) { s.scope_h = s.scope_w = 5; s.kernel_shift_y = 1; s.kernel_shift_x = -1; });
        row("scope 7x5 shift(-3,2) global", [](DkCaseSpec& s) { s.scope_h = 7; s.scope_w = 5; s.kernel_shift_y = -3; s.kernel_shift_x = 2; s.global = true; });
    }
    void zeroOffsetsEqualDepthwiseConv2d() {
        QFETCH(DkCaseSpec, spec);
        const double f32 = dkWindowConvError(spec, 8, at::kFloat, at::kCPU);
        const double f64 = dkWindowConvError(spec, 8, at::kDouble, at::kCPU);
        QVERIFY2(f32 < 1e-5, qPrintable(QString("float32 error %1").arg(f32)));
        QVERIFY2(f64 < 1e-12, qPrintable(QString("float64 error %1").arg(f64)));
    }

    void imageOffsetsEqualDepthwiseDeformConv2d_data() {
        QTest::addColumn<DkCaseSpec>("spec");
        DkCaseSpec s;
        s.params.pad_h = s.params.pad_w = 1;
        QTest::newRow("k3 pad1") << s;
        s.params.stride_h = 2;
        s.params.dilation_w = 2;
        s.width = 9;
        s.offset_scale = 4.0;
        QTest::newRow("k3 stride(2,1) dilation(1,2) far offsets") << s;
        s.offsets = OffsetKind::ExactBorders;
        QTest::newRow("k3 samples exactly at borders") << s;
    }
    void imageOffsetsEqualDepthwiseDeformConv2d() {
        QFETCH(DkCaseSpec, spec);
        const double err = dkDeformConvError(spec, 9, at::kDouble, at::kCPU);
        QVERIFY2(err < 1e-12, qPrintable(QString("error %1").arg(err)));
    }

    void globalEqualsBroadcastLocal_data() { addGeometryRows(); }
    void globalEqualsBroadcastLocal() {
        QFETCH(DkCaseSpec, spec);
        const double err = dkGlobalEqualsLocalError(spec, 10, at::kDouble, at::kCPU);
        QVERIFY2(err < 1e-12, qPrintable(QString("error %1").arg(err)));
    }

    void badInputsThrowClearErrors_data() { testing::addBadInputRows(dkBadInputCases(at::kCPU)); }
    void badInputsThrowClearErrors() {
        QFETCH(int, index);
        VERIFY_NO_PROBLEM(badInputProblem(dkBadInputCases(at::kCPU)[index]));
    }

    // Undefined offset/bias tensors are accepted by the C++ entry point when not used.
    void undefinedOptionalTensors() {
        DkCaseSpec spec;
        spec.bias = false;
        const DkCaseTensors t = makeDkCase(spec, 12, at::kDouble, at::kCPU);
        const at::Tensor a = deformKernel2d(t.input, t.weight, t.kernel_offset, at::Tensor(), at::Tensor(), spec.params);
        const at::Tensor b = deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, spec.params);
        QVERIFY(at::equal(a, b));
        DeformKernel2dParams p = spec.params;
        p.use_offset = true;
        const std::string message = errorMessageOf(
            [&] { deformKernel2d(t.input, t.weight, t.kernel_offset, at::Tensor(), at::Tensor(), p); });
        QVERIFY2(message.find("offset must have shape") != std::string::npos, message.c_str());
    }

    void emptyBatchGivesEmptyOutput() {
        DkCaseSpec spec;
        spec.params.use_offset = true;
        VERIFY_NO_PROBLEM(emptyBatchProblem(deformKernel2dUnderTest(spec.params),
                                            argsOf(makeDkCase(spec, 1, at::kFloat, at::kCPU)),
                                            {0, spec.channels, spec.outH(), spec.outW()}));
    }

    void nonContiguousInputsGiveSameResult() {
        DkCaseSpec spec = offsetCase();
        spec.height = spec.width = 6;
        VERIFY_NO_PROBLEM(nonContiguousProblem(deformKernel2dUnderTest(spec.params),
                                               argsOf(makeDkCase(spec, 2, at::kFloat, at::kCPU))));
    }

    // Batches larger than one chunk must equal image-by-image results, and the
    // weight gradient must accumulate over the chunks.
    void largeBatchEqualsPerImage() {
        DkCaseSpec spec = offsetCase();
        spec.batch = 31; // 9 taps x 1024 positions per image: chunks of 28 and 3 images
        spec.channels = 4;
        spec.height = spec.width = 32;
        const OpUnderTest op = deformKernel2dUnderTest(spec.params);
        const OpArgs args = argsOf(makeDkCase(spec, 3, at::kDouble, at::kCPU));
        const at::Tensor all = op.forward(args);
        const at::Tensor R = at::randn_like(all);
        const OpArgs gAll = op.backward(R, args);
        at::Tensor weightSum = at::zeros_like(args[1]);
        for (int64_t n = 0; n < spec.batch; ++n) {
            const OpArgs one = imagesOf(args, n, 1);
            const at::Tensor out = op.forward(one);
            QVERIFY2(at::allclose(all.narrow(0, n, 1), out, 1e-12, 1e-12), qPrintable(QString("image %1").arg(n)));
            const OpArgs g = op.backward(R.narrow(0, n, 1), one);
            for (int i : {0, 2, 3})
                QVERIFY(at::allclose(gAll[i].narrow(0, n, 1), g[i], 1e-12, 1e-12));
            weightSum += g[1];
        }
        QVERIFY(at::allclose(gAll[1], weightSum, 1e-10, 1e-10));
    }

    void autogradMatchesBackwardOp_data() {
        QTest::addColumn<bool>("global");
        QTest::addColumn<bool>("useOffset");
        QTest::newRow("local, image offsets") << false << true;
        QTest::newRow("global, no image offsets") << true << false;
    }
    void autogradMatchesBackwardOp() {
        QFETCH(bool, global);
        QFETCH(bool, useOffset);
        DkCaseSpec spec = offsetCase();
        spec.global = global;
        spec.params.use_offset = useOffset;
        VERIFY_NO_PROBLEM(autogradProblem(deformKernel2dUnderTest(spec.params),
                                          argsOf(makeDkCase(spec, 5, at::kDouble, at::kCPU)),
                                          [](const at::Tensor& out) { return at::randn_like(out); }));
    }

    // An ERF asks autograd for the image's gradient alone: the backward then skips the scope
    // kernel's and the bias's gradients, and the others are unchanged.
    void imageGradientAloneSkipsTheParameters() {
        const DkCaseSpec spec = offsetCase();
        const DkCaseTensors t = makeDkCase(spec, 13, at::kDouble, at::kCPU);
        const at::Tensor out = deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, spec.params);
        const at::Tensor go = at::randn_like(out);
        const auto [gi, gw, gko, goff, gb] =
            deformKernel2dBackward(go, t.input, t.weight, t.kernel_offset, t.offset, t.bias, spec.params);
        QVERIFY(gw.abs().max().item<double>() > 0);
        {
            deformscope::ops::detail::ParameterGradsUnneeded skip(true);
            const auto [si, sw, sko, soff, sb] =
                deformKernel2dBackward(go, t.input, t.weight, t.kernel_offset, t.offset, t.bias, spec.params);
            QVERIFY(at::equal(si, gi) && at::equal(sko, gko) && at::equal(soff, goff));
            QCOMPARE(sw.abs().max().item<double>(), 0.0);
            QCOMPARE(sw.sizes(), gw.sizes());
        }
        QVERIFY(!deformscope::ops::detail::ParameterGradsUnneeded::active());
        // Through autograd: the input's gradient alone, then the weight's, each equal to the backward op's.
        const at::Tensor input = t.input.clone().requires_grad_(true), weight = t.weight.clone().requires_grad_(true);
        const at::Tensor r =
            (deformKernel2d(input, weight, t.kernel_offset, t.offset, t.bias, spec.params) * go).sum();
        const auto onlyInput = torch::autograd::grad({r}, {input}, {}, /*retain_graph=*/true);
        QVERIFY(at::allclose(onlyInput[0], gi, 1e-12, 1e-12));
        const auto withWeight = torch::autograd::grad({r}, {weight}, {}, /*retain_graph=*/true);
        QVERIFY(at::allclose(withWeight[0], gw, 1e-12, 1e-12));
    }

    void doubleBackwardIsRefused() {
        DkCaseSpec spec;
        const DkCaseTensors t = makeDkCase(spec, 6, at::kDouble, at::kCPU);
        const at::Tensor w = t.weight.clone().requires_grad_(true);
        const at::Tensor out = deformKernel2d(t.input, w, t.kernel_offset, t.offset, t.bias, spec.params);
        const auto g = torch::autograd::grad({out.sum()}, {w}, {}, std::nullopt, /*create_graph=*/true);
        const std::string message = errorMessageOf([&] { g[0].sum().backward(); });
        QVERIFY2(message.find("double backward") != std::string::npos, message.c_str());
    }

    void registeredSchemas() {
        auto& dispatcher = c10::Dispatcher::singleton();
        const auto forward = dispatcher.findSchema({"deformscope::deform_kernel2d", ""});
        const auto backward = dispatcher.findSchema({"deformscope::_deform_kernel2d_backward", ""});
        QVERIFY(forward.has_value());
        QVERIFY(backward.has_value());
        QCOMPARE(c10::toString(forward->schema()),
                 std::string("deformscope::deform_kernel2d(Tensor input, Tensor weight, Tensor kernel_offset, Tensor "
                             "offset, Tensor bias, int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, "
                             "int dilation_w, int kernel_h, int kernel_w, bool use_offset) -> Tensor"));
        QCOMPARE(c10::toString(backward->schema()),
                 std::string("deformscope::_deform_kernel2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor "
                             "kernel_offset, Tensor offset, Tensor bias, int stride_h, int stride_w, int pad_h, int "
                             "pad_w, int dilation_h, int dilation_w, int kernel_h, int kernel_w, bool use_offset) -> "
                             "(Tensor, Tensor, Tensor, Tensor, Tensor)"));
    }

    void registrationIsIdempotent() {
        registerOperators();
        registerOperators();
        QVERIFY(c10::Dispatcher::singleton().findSchema({"deformscope::deform_kernel2d", ""}).has_value());
        QVERIFY(c10::Dispatcher::singleton().findSchema({"deformscope::deform_conv2d", ""}).has_value());
    }

    // Every CPU gradient but the bias (an ATen sum) comes from tasks that own
    // their outputs: bit-identical for any thread count.
    void cpuBackwardIsDeterministicAcrossThreadCounts_data() {
        QTest::addColumn<bool>("global");
        QTest::newRow("local") << false;
        QTest::newRow("global") << true;
    }
    void cpuBackwardIsDeterministicAcrossThreadCounts() {
        QFETCH(bool, global);
        const DkCaseSpec spec = dkCollidingCase(global, 3, 16, 24);
        const at::Tensor R = at::randn({spec.batch, spec.channels, spec.outH(), spec.outW()});
        VERIFY_NO_PROBLEM(threadCountProblem(deformKernel2dUnderTest(spec.params),
                                             argsOf(makeDkCase(spec, 10, at::kFloat, at::kCPU)), R, {0, 1, 2, 3},
                                             {0, 1, 2, 3}));
    }

    void cudaMatchesReferenceAndCpu_data() { addGeometryRows(); }
    void cudaMatchesReferenceAndCpu() {
        SKIP_WITHOUT_CUDA();
        QFETCH(DkCaseSpec, spec);
        const OpUnderTest op = deformKernel2dUnderTest(spec.params);
        for (const at::Device& d : cudaDevices()) {
            const double f64 = compareDkWithReference(spec, 42, at::kDouble, d).worst();
            const double f32 = compareDkWithReference(spec, 43, at::kFloat, d).worst();
            QVERIFY2(f64 < 1e-10, qPrintable(QString("float64 error %1").arg(f64)));
            QVERIFY2(f32 < 1e-4, qPrintable(QString("float32 error %1").arg(f32)));
            const OpArgs cpu = argsOf(makeDkCase(spec, 44, at::kFloat, at::kCPU));
            const OpArgs gpu = argsOf(makeDkCase(spec, 44, at::kFloat, d));
            const at::Tensor oc = op.forward(cpu);
            QVERIFY(relativeError(op.forward(gpu), oc) < 1e-5);
            const at::Tensor R = at::randn_like(oc);
            const OpArgs gc = op.backward(R, cpu);
            const OpArgs gg = op.backward(R.to(d), gpu);
            for (int i = 0; i < 5; ++i)
                QVERIFY2(relativeError(gg[i], gc[i]) < 1e-5, op.names[i]);
        }
    }

    void cudaBackwardModes() {
        SKIP_WITHOUT_CUDA();
        for (bool global : {false, true}) {
            const DkCaseSpec spec = dkCollidingCase(global, 4, 32, 48);
            const OpUnderTest op = deformKernel2dUnderTest(spec.params);
            for (const at::Device& d : cudaDevices()) {
                const OpArgs args = argsOf(makeDkCase(spec, 11, at::kFloat, d));
                const at::Tensor R = at::randn({spec.batch, spec.channels, spec.outH(), spec.outW()}).to(d);
                const OpArgs a = backwardWith(op, R, args, BackwardMode::Deterministic);
                const OpArgs b = backwardWith(op, R, args, BackwardMode::Deterministic);
                const OpArgs c = backwardWith(op, R, args, BackwardMode::Atomic);
                for (int i = 0; i < 5; ++i) {
                    QVERIFY2(at::equal(a[i], b[i]), op.names[i]);
                    QVERIFY2(relativeError(c[i], a[i]) < 1e-5, op.names[i]);
                }
            }
        }
    }

    void cudaBadInputs() {
        SKIP_WITHOUT_CUDA();
        VERIFY_NO_PROBLEM(testing::cudaBadInputProblems(dkBadInputCases(cudaDevices().front())));
    }
};

QTEST_GUILESS_MAIN(TestDeformKernel2d)
#include "tst_deform_kernel2d.moc"
