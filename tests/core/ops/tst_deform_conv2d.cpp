// Tests of the deform_conv2d operator: a float64 reference over a table of
// geometries, finite differences, invariants, bad inputs, registration, and
// determinism; CUDA rows run when a GPU is present and skip otherwise.
#include "core/ops/checks/selftest.h"
#include "core/ops/deform_conv2d.h"
#include "core/ops/registration.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

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

std::vector<at::Device> cudaDevices() {
    std::vector<at::Device> cuda;
    for (const at::Device& d : availableDevices())
        if (d.is_cuda())
            cuda.push_back(d);
    return cuda;
}

bool bitIdentical(const DeformConv2dGrads& a, const DeformConv2dGrads& b) {
    return at::equal(std::get<0>(a), std::get<0>(b)) && at::equal(std::get<1>(a), std::get<1>(b)) &&
           at::equal(std::get<2>(a), std::get<2>(b)) && at::equal(std::get<3>(a), std::get<3>(b)) &&
           at::equal(std::get<4>(a), std::get<4>(b));
}

} // namespace

class TestDeformConv2d : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { registerOperators(); }

    void float64MatchesReference_data() { addGeometryRows(); }
    void float64MatchesReference() {
        QFETCH(CaseSpec, spec);
        const ReferenceComparison r = compareWithReference(spec, 42, at::kDouble, at::kCPU);
        QVERIFY2(r.forward < 1e-10, qPrintable(QString("forward error %1").arg(r.forward)));
        static const char* names[] = {"input", "weight", "offset", "mask", "bias"};
        for (int i = 0; i < 5; ++i)
            QVERIFY2(r.grads[i] < 1e-10, qPrintable(QString("grad %1 error %2").arg(names[i]).arg(r.grads[i])));
    }

    void float32MatchesReference_data() { addGeometryRows(); }
    void float32MatchesReference() {
        QFETCH(CaseSpec, spec);
        const double err = compareWithReference(spec, 43, at::kFloat, at::kCPU).worst();
        QVERIFY2(err < 1e-4, qPrintable(QString("error %1").arg(err)));
    }

    void halfAndBFloat16() {
        CaseSpec spec;
        spec.params.use_mask = true;
        spec.params.pad_h = spec.params.pad_w = 1;
        const double half = compareWithReference(spec, 44, at::kHalf, at::kCPU).worst();
        const double bf16 = compareWithReference(spec, 44, at::kBFloat16, at::kCPU).worst();
        QVERIFY2(half < 3e-2, qPrintable(QString("half error %1").arg(half)));
        QVERIFY2(bf16 < 1.5e-1, qPrintable(QString("bfloat16 error %1").arg(bf16)));
    }

    void finiteDifferences_data() {
        QTest::addColumn<CaseSpec>("spec");
        CaseSpec s;
        s.batch = 1;
        s.channels = s.out_channels = 2;
        s.height = s.width = 5;
        s.offsets = OffsetKind::AwayFromKinks;
        s.params.pad_h = s.params.pad_w = 1;
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
            CaseSpec s;
            s.shift_y = sh[0];
            s.shift_x = sh[1];
            s.params.pad_h = s.params.pad_w = 1;
            s.params.use_mask = true;
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

    void badInputsThrowClearErrors_data() {
        QTest::addColumn<int>("index");
        const auto cases = badInputCases(at::kCPU);
        for (size_t i = 0; i < cases.size(); ++i)
            QTest::newRow(cases[i].name.c_str()) << int(i);
    }
    void badInputsThrowClearErrors() {
        QFETCH(int, index);
        const BadInputCase bad = badInputCases(at::kCPU)[index];
        bool threwC10 = false;
        std::string message;
        try {
            bad.call();
        } catch (const c10::Error& e) {
            threwC10 = true;
            message = e.what_without_backtrace();
        }
        QVERIFY2(threwC10, "no c10::Error thrown");
        QVERIFY2(message.find(bad.expectedMessage) != std::string::npos,
                 qPrintable(QString("message '%1' lacks '%2'").arg(message.c_str(), bad.expectedMessage.c_str())));
    }

    void emptyBatchGivesEmptyOutput() {
        CaseSpec spec;
        spec.params.use_mask = true;
        CaseTensors t = makeCase(spec, 1, at::kFloat, at::kCPU);
        auto empty = [](const at::Tensor& x) { return x.narrow(0, 0, 0); };
        const at::Tensor out = deformConv2d(empty(t.input), t.weight, empty(t.offset), empty(t.mask), t.bias, spec.params);
        QCOMPARE(out.sizes().vec(), (std::vector<int64_t>{0, spec.out_channels, spec.outH(), spec.outW()}));
        const auto g = deformConv2dBackward(at::zeros_like(out), empty(t.input), t.weight, empty(t.offset),
                                            empty(t.mask), t.bias, spec.params);
        QCOMPARE(std::get<0>(g).size(0), int64_t{0});
        QVERIFY(at::equal(std::get<1>(g), at::zeros_like(t.weight)));
    }

    void nonContiguousInputsGiveSameResult() {
        CaseSpec spec;
        spec.params.use_mask = true;
        spec.params.pad_h = spec.params.pad_w = 1;
        spec.height = spec.width = 6;
        const CaseTensors t = makeCase(spec, 2, at::kFloat, at::kCPU);
        // Same values, transposed storage.
        auto strided = [](const at::Tensor& x) { return x.transpose(2, 3).contiguous().transpose(2, 3); };
        QVERIFY(!strided(t.input).is_contiguous());
        const at::Tensor a = deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, spec.params);
        const at::Tensor b = deformConv2d(strided(t.input), t.weight.transpose(2, 3).contiguous().transpose(2, 3),
                                          strided(t.offset), strided(t.mask), t.bias, spec.params);
        QVERIFY(at::equal(a, b));
    }

    // Batches larger than one chunk of the column buffer must equal image-by-image results.
    void largeBatchEqualsPerImage() {
        CaseSpec spec;
        spec.batch = 17; // 2.4M column elements per image: chunks of 14 and 3 images
        spec.channels = 64;
        spec.out_channels = 8;
        spec.height = spec.width = 64;
        spec.params.use_mask = true;
        spec.params.pad_h = spec.params.pad_w = 1;
        const CaseTensors t = makeCase(spec, 3, at::kFloat, at::kCPU);
        const at::Tensor all = deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, spec.params);
        for (int64_t n : {int64_t{0}, int64_t{13}, int64_t{14}, int64_t{16}}) {
            const at::Tensor one = deformConv2d(t.input.narrow(0, n, 1), t.weight, t.offset.narrow(0, n, 1),
                                                t.mask.narrow(0, n, 1), t.bias, spec.params);
            QVERIFY2(at::allclose(all.narrow(0, n, 1), one, 1e-5, 1e-5), qPrintable(QString("image %1").arg(n)));
        }
    }

    void autogradMatchesBackwardOp() {
        CaseSpec spec;
        spec.params.use_mask = true;
        spec.params.pad_h = spec.params.pad_w = 1;
        const CaseTensors t = makeCase(spec, 5, at::kDouble, at::kCPU);
        auto leaf = [](const at::Tensor& x) { return x.clone().requires_grad_(true); };
        const at::Tensor in = leaf(t.input), w = leaf(t.weight), off = leaf(t.offset), m = leaf(t.mask), b = leaf(t.bias);
        const at::Tensor out = deformConv2d(in, w, off, m, b, spec.params);
        QVERIFY(out.requires_grad());
        out.sum().backward();
        const auto g = deformConv2dBackward(at::ones_like(out), t.input, t.weight, t.offset, t.mask, t.bias, spec.params);
        QVERIFY(at::allclose(in.grad(), std::get<0>(g)));
        QVERIFY(at::allclose(w.grad(), std::get<1>(g)));
        QVERIFY(at::allclose(off.grad(), std::get<2>(g)));
        QVERIFY(at::allclose(m.grad(), std::get<3>(g)));
        QVERIFY(at::allclose(b.grad(), std::get<4>(g)));
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
        CaseSpec spec;
        spec.batch = 3;
        spec.channels = spec.out_channels = 16;
        spec.height = spec.width = 24;
        spec.params.use_mask = true;
        spec.params.pad_h = spec.params.pad_w = 1;
        spec.offset_scale = 3.0;
        const CaseTensors t = makeCase(spec, 10, at::kFloat, at::kCPU);
        const at::Tensor R = at::randn({spec.batch, spec.out_channels, spec.outH(), spec.outW()});
        auto run = [&] { return deformConv2dBackward(R, t.input, t.weight, t.offset, t.mask, t.bias, spec.params); };
        const int threads = at::get_num_threads();
        const auto a = run();
        const auto b = run();
        at::set_num_threads(1);
        const auto c = run();
        at::set_num_threads(threads);
        QVERIFY(bitIdentical(a, b));
        // grad_weight comes from a GEMM whose blocking may depend on threads; the sampling grads may not.
        QVERIFY(at::equal(std::get<0>(a), std::get<0>(c)));
        QVERIFY(at::equal(std::get<2>(a), std::get<2>(c)));
        QVERIFY(at::equal(std::get<3>(a), std::get<3>(c)));
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
        const auto cuda = cudaDevices();
        if (cuda.empty())
            QSKIP("no CUDA device");
        QFETCH(CaseSpec, spec);
        for (const at::Device& d : cuda) {
            QVERIFY(compareWithReference(spec, 42, at::kDouble, d).worst() < 1e-10);
            QVERIFY(compareWithReference(spec, 43, at::kFloat, d).worst() < 1e-4);
        }
    }

    void cudaDeterministicBackward() {
        const auto cuda = cudaDevices();
        if (cuda.empty())
            QSKIP("no CUDA device");
        CaseSpec spec;
        spec.batch = 4;
        spec.channels = spec.out_channels = 32;
        spec.height = spec.width = 48;
        spec.params.use_mask = true;
        spec.params.pad_h = spec.params.pad_w = 1;
        spec.offset_scale = 3.0;
        const BackwardMode before = backwardMode();
        setBackwardMode(BackwardMode::Deterministic);
        for (const at::Device& d : cuda) {
            const CaseTensors t = makeCase(spec, 11, at::kFloat, d);
            const at::Tensor R = at::randn({spec.batch, spec.out_channels, spec.outH(), spec.outW()}).to(d);
            auto run = [&] { return deformConv2dBackward(R, t.input, t.weight, t.offset, t.mask, t.bias, spec.params); };
            QVERIFY(bitIdentical(run(), run()));
        }
        setBackwardMode(before);
    }

    void cudaBadInputs() {
        const auto cuda = cudaDevices();
        if (cuda.empty())
            QSKIP("no CUDA device");
        for (const BadInputCase& bad : badInputCases(cuda.front())) {
            const std::string message = errorMessageOf(bad.call);
            QVERIFY2(message.find(bad.expectedMessage) != std::string::npos, bad.name.c_str());
        }
    }
};

QTEST_GUILESS_MAIN(TestDeformConv2d)
#include "tst_deform_conv2d.moc"
