// The sparse CPU backward of grid_sampler_2d (core/ops/grid_sampler_backward.h)
// against ATen's own kernel: every interpolation and padding mode, both corner
// conventions, gradients reaching a few positions (of one image or of several),
// none, or most of them, and through autograd once it is installed.
#include "core/ops/grid_sampler_backward.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/grid_sampler_2d_backward_cpu_dispatch.h>
#include <torch/autograd.h>

#include <QtTest/QtTest>

#include <string>

using namespace deformscope::ops;

namespace {

// A gradient on [N, C, Ho, Wo] that is zero except at `positions` (flat y·Wo + x) of image `image`
// (−1: of every image), random elsewhere in those positions' channels.
at::Tensor sparseGradient(int64_t N, int64_t C, int64_t Ho, int64_t Wo, const std::vector<int64_t>& positions, int image) {
    at::Tensor g = at::zeros({N, C, Ho * Wo}, at::kDouble);
    for (int64_t p : positions)
        for (int64_t n = 0; n < N; ++n)
            if (image < 0 || n == image)
                g.select(0, n).select(1, p).copy_(at::randn({C}, at::kDouble));
    return g.view({N, C, Ho, Wo});
}

double maxDiff(const at::Tensor& a, const at::Tensor& b) {
    if (!a.defined() || !b.defined())
        return a.defined() == b.defined() ? 0.0 : 1e300;
    if (a.sizes() != b.sizes())
        return 1e300;
    return (a - b).abs().max().item<double>();
}

} // namespace

class TestGridSamplerBackward : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { at::manual_seed(7); }

    void equalsAtensKernel_data() {
        QTest::addColumn<int>("mode");    // 0 bilinear, 1 nearest, 2 bicubic
        QTest::addColumn<int>("padding"); // 0 zeros, 1 border, 2 reflection
        QTest::addColumn<bool>("alignCorners");
        QTest::addColumn<int>("image");   // which image the gradient is on (−1: all)
        for (int mode : {0, 1, 2})
            for (int padding : {0, 1, 2})
                for (bool align : {false, true}) {
                    const std::string name = std::to_string(mode) + "/" + std::to_string(padding) + (align ? "/ac" : "");
                    QTest::newRow((name + " both images").c_str()) << mode << padding << align << -1;
                    QTest::newRow((name + " second image").c_str()) << mode << padding << align << 1;
                }
    }
    void equalsAtensKernel() {
        QFETCH(int, mode);
        QFETCH(int, padding);
        QFETCH(bool, alignCorners);
        QFETCH(int, image);
        const int64_t N = 2, C = 3, Ho = 40, Wo = 48;
        const at::Tensor input = at::randn({N, C, 21, 25}, at::kDouble);
        // Reads inside, across the border and outside the map.
        const at::Tensor grid = at::rand({N, Ho, Wo, 2}, at::kDouble) * 2.6 - 1.3;
        const at::Tensor go = sparseGradient(N, C, Ho, Wo, {0, 5, 977, 978, Ho * Wo - 1}, image);
        for (const std::array<bool, 2> mask : {std::array<bool, 2>{true, true}, {true, false}, {false, true}}) {
            const auto [gi, gg] = sparseGridSampler2dBackward(go, input, grid, mode, padding, alignCorners, mask);
            const auto [ri, rg] = at::cpu::grid_sampler_2d_backward(go, input, grid, mode, padding, alignCorners, mask);
            // As ATen: the input's gradient only when asked; the grid's always allocated, filled when asked.
            QCOMPARE(gi.defined(), mask[0]);
            QVERIFY(gg.defined() && gg.sizes() == grid.sizes());
            QVERIFY2(maxDiff(gi, ri) < 1e-12, std::to_string(maxDiff(gi, ri)).c_str());
            if (mask[1])
                QVERIFY2(maxDiff(gg, rg) < 1e-12, std::to_string(maxDiff(gg, rg)).c_str());
        }
    }

    void noneOrMostPositionsReached() {
        const int64_t N = 1, C = 2, Ho = 64, Wo = 64;
        const at::Tensor input = at::randn({N, C, 32, 32}, at::kDouble);
        const at::Tensor grid = at::rand({N, Ho, Wo, 2}, at::kDouble) * 2 - 1;
        std::vector<int64_t> most;
        for (int64_t p = 0; p < Ho * Wo; p += 2)
            most.push_back(p);
        for (const auto& go : {at::zeros({N, C, Ho, Wo}, at::kDouble), sparseGradient(N, C, Ho, Wo, most, -1)}) {
            const auto [gi, gg] = sparseGridSampler2dBackward(go, input, grid, 0, 0, false, {true, true});
            const auto [ri, rg] = at::cpu::grid_sampler_2d_backward(go, input, grid, 0, 0, false, {true, true});
            QVERIFY(maxDiff(gi, ri) < 1e-12);
            QVERIFY(maxDiff(gg, rg) < 1e-12);
        }
    }

    void autogradRunsItOnceInstalled() {
        registerSparseGridSamplerBackward();
        registerSparseGridSamplerBackward(); // idempotent
        const auto op = c10::Dispatcher::singleton().findSchema({"aten::grid_sampler_2d_backward", ""});
        QVERIFY(op.has_value());
        QVERIFY2(op->dumpState().find("grid_sampler_backward.cpp") != std::string::npos, op->dumpState().c_str());
        // A node reaching one output position: the input's and the grid's gradients equal ATen's.
        const at::Tensor input = at::randn({1, 4, 30, 30}, at::kFloat).requires_grad_(true);
        const at::Tensor grid = (at::rand({1, 64, 64, 2}, at::kFloat) * 2 - 1).requires_grad_(true);
        const at::Tensor out = at::grid_sampler(input, grid, 0, 0, false);
        const at::Tensor r = out.select(2, 17).select(2, 40).sum();
        const auto grads = torch::autograd::grad({r}, {input, grid});
        const at::Tensor go = at::zeros_like(out);
        go.select(2, 17).select(2, 40).fill_(1);
        const auto [ri, rg] =
            at::cpu::grid_sampler_2d_backward(go, input.detach(), grid.detach(), 0, 0, false, {true, true});
        QVERIFY(maxDiff(grads[0], ri) < 1e-6);
        QVERIFY(maxDiff(grads[1], rg) < 1e-6);
        QVERIFY(grads[1].abs().sum().item<double>() > 0);
    }
};

QTEST_APPLESS_MAIN(TestGridSamplerBackward)
#include "tst_grid_sampler_backward.moc"
