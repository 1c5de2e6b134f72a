#include "core/ops/checks/reference.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <sstream>
#include <vector>

namespace deformscope::ops::checks {
namespace {

int64_t outSize(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
    return (in + 2 * pad - (dil * (k - 1) + 1)) / stride + 1;
}

} // namespace

int64_t CaseSpec::outH() const {
    return outSize(height, kernel_h, params.stride_h, params.pad_h, params.dilation_h);
}

int64_t CaseSpec::outW() const {
    return outSize(width, kernel_w, params.stride_w, params.pad_w, params.dilation_w);
}

std::string CaseSpec::describe() const {
    static const char* kinds[] = {"random", "away-from-kinks", "zero", "integer", "exact-borders"};
    std::ostringstream s;
    s << "N" << batch << " C" << channels << " " << height << "x" << width << " Cout" << out_channels << " k"
      << kernel_h << "x" << kernel_w << " s" << params.stride_h << "," << params.stride_w << " p" << params.pad_h
      << "," << params.pad_w << " d" << params.dilation_h << "," << params.dilation_w << " g" << params.groups
      << " og" << params.offset_groups << (params.use_mask ? " mask" : " nomask") << " offsets "
      << kinds[static_cast<int>(offsets)];
    return s.str();
}

at::Tensor referenceForward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                            const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p) {
    const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
    const int64_t Cout = weight.size(0), kh = weight.size(2), kw = weight.size(3), K = kh * kw;
    const int64_t G = p.offset_groups;
    const int64_t Ho = outSize(H, kh, p.stride_h, p.pad_h, p.dilation_h);
    const int64_t Wo = outSize(W, kw, p.stride_w, p.pad_w, p.dilation_w);
    const auto opts = input.options();

    // Regular grid position of tap k = (i, j) for output (oy, ox).
    std::vector<double> gridY(K * Ho * Wo), gridX(K * Ho * Wo);
    for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j)
            for (int64_t oy = 0; oy < Ho; ++oy)
                for (int64_t ox = 0; ox < Wo; ++ox) {
                    const int64_t at = ((i * kw + j) * Ho + oy) * Wo + ox;
                    gridY[at] = double(oy * p.stride_h - p.pad_h + i * p.dilation_h);
                    gridX[at] = double(ox * p.stride_w - p.pad_w + j * p.dilation_w);
                }
    const auto cpu64 = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor baseY = at::from_blob(gridY.data(), {1, 1, K, Ho, Wo}, cpu64).to(opts);
    const at::Tensor baseX = at::from_blob(gridX.data(), {1, 1, K, Ho, Wo}, cpu64).to(opts);

    // offset channel g*2K + 2k is dy, g*2K + 2k + 1 is dx.
    const at::Tensor off = offset.view({N, G, K, 2, Ho, Wo});
    const at::Tensor y = baseY + off.select(3, 0); // [N, G, K, Ho, Wo]
    const at::Tensor x = baseX + off.select(3, 1);

    // Boundary rule: a sample with y <= -1, y >= H, x <= -1 or x >= W is zero;
    // otherwise each bilinear corner outside the image counts as zero.
    const at::Tensor inside = (y > -1) & (y < H) & (x > -1) & (x < W);
    const at::Tensor y0 = y.detach().floor();
    const at::Tensor x0 = x.detach().floor();
    const at::Tensor ly = y - y0;
    const at::Tensor lx = x - x0;

    const int64_t Cg = C / G;
    const at::Tensor planes = input.reshape({N, G, Cg, H * W});
    at::Tensor sample = at::zeros({N, G, Cg, K, Ho, Wo}, opts);
    for (int dy = 0; dy <= 1; ++dy) {
        for (int dx = 0; dx <= 1; ++dx) {
            const at::Tensor yc = y0 + dy;
            const at::Tensor xc = x0 + dx;
            const at::Tensor weightYX = (dy ? ly : 1 - ly) * (dx ? lx : 1 - lx);
            const at::Tensor valid = inside & (yc >= 0) & (yc <= H - 1) & (xc >= 0) & (xc <= W - 1);
            const at::Tensor index = (yc.clamp(0, H - 1) * W + xc.clamp(0, W - 1)).to(at::kLong);
            const at::Tensor values =
                planes.gather(3, index.reshape({N, G, 1, K * Ho * Wo}).expand({N, G, Cg, K * Ho * Wo}))
                    .view({N, G, Cg, K, Ho, Wo});
            sample = sample + values * at::where(valid, weightYX, at::zeros_like(weightYX)).unsqueeze(2);
        }
    }
    if (p.use_mask)
        sample = sample * mask.view({N, G, 1, K, Ho, Wo});

    // out[n, o] = sum over the group's channels c and taps k of weight[o, c, k] * sample[n, c, k]
    const int64_t groupRows = C / p.groups * K;
    const at::Tensor columns = sample.reshape({N, p.groups, groupRows, Ho * Wo});
    const at::Tensor w = weight.reshape({p.groups, Cout / p.groups, groupRows});
    at::Tensor out = at::einsum("gor,ngrp->ngop", {w, columns}).reshape({N, Cout, Ho, Wo});
    if (bias.defined() && bias.numel() > 0)
        out = out + bias.view({1, Cout, 1, 1});
    return out;
}

DeformConv2dGrads referenceBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                    const at::Tensor& weight, const at::Tensor& offset, const at::Tensor& mask,
                                    const at::Tensor& bias, const DeformConv2dParams& p) {
    at::AutoGradMode enable(true);
    const bool hasBias = bias.defined() && bias.numel() > 0;
    auto leaf = [](const at::Tensor& t) { return t.detach().clone().requires_grad_(true); };
    const at::Tensor in = leaf(input), w = leaf(weight), off = leaf(offset);
    const at::Tensor m = p.use_mask ? leaf(mask) : mask;
    const at::Tensor b = hasBias ? leaf(bias) : bias;
    const at::Tensor out = referenceForward(in, w, off, m, b, p);

    std::vector<at::Tensor> wrt = {in, w, off};
    if (p.use_mask)
        wrt.push_back(m);
    if (hasBias)
        wrt.push_back(b);
    const auto grads = torch::autograd::grad({out}, wrt, {grad_output}, false, false, true);
    size_t next = 3;
    at::Tensor gm = p.use_mask ? grads[next++] : at::zeros_like(mask);
    at::Tensor gb = hasBias ? grads[next++] : at::zeros_like(bias);
    auto orZero = [](const at::Tensor& g, const at::Tensor& like) { return g.defined() ? g : at::zeros_like(like); };
    return {orZero(grads[0], input), orZero(grads[1], weight), orZero(grads[2], offset), orZero(gm, mask),
            orZero(gb, bias)};
}

CaseTensors makeCase(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    const int64_t K = spec.kernel_h * spec.kernel_w;
    const int64_t G = spec.params.offset_groups;
    const int64_t Ho = spec.outH(), Wo = spec.outW();

    CaseTensors t;
    t.input = at::randn({spec.batch, spec.channels, spec.height, spec.width}, gen, opts);
    t.weight = at::randn({spec.out_channels, spec.channels / spec.params.groups, spec.kernel_h, spec.kernel_w}, gen,
                         opts) /
               std::sqrt(double(spec.channels / spec.params.groups * K));
    t.bias = spec.bias ? at::randn({spec.out_channels}, gen, opts) : at::empty({0}, opts);
    t.mask = spec.params.use_mask ? at::rand({spec.batch, G * K, Ho, Wo}, gen, opts) : at::empty({0}, opts);

    const std::vector<int64_t> offShape = {spec.batch, 2 * G * K, Ho, Wo};
    switch (spec.offsets) {
    case OffsetKind::Random:
        t.offset = at::randn(offShape, gen, opts) * spec.offset_scale;
        break;
    case OffsetKind::AwayFromKinks: {
        // integer part from a scaled normal, fractional part in [0.15, 0.85]:
        // the grid is integral, so no sample sits near a corner switch or the -1 / H border.
        const at::Tensor whole = (at::randn(offShape, gen, opts) * spec.offset_scale).floor();
        t.offset = whole + 0.15 + 0.7 * at::rand(offShape, gen, opts);
        break;
    }
    case OffsetKind::Zero:
        t.offset = at::zeros(offShape, opts);
        break;
    case OffsetKind::Integer: {
        t.offset = at::zeros({spec.batch, G, K, 2, Ho, Wo}, opts);
        t.offset.select(3, 0).fill_(double(spec.shift_y));
        t.offset.select(3, 1).fill_(double(spec.shift_x));
        t.offset = t.offset.view(offShape);
        break;
    }
    case OffsetKind::ExactBorders: {
        // Move every sample to one of: -1 (zero by the rule), H or W (zero), H-1 / W-1
        // (last row/column), -0.5 (half faded), or leave it, chosen at random per sample.
        t.offset = at::zeros({spec.batch, G, K, 2, Ho, Wo}, opts);
        const at::Tensor choice = at::randint(0, 5, {spec.batch, G, K, 2, Ho, Wo}, gen, opts.dtype(at::kLong));
        auto off = t.offset.accessor<double, 6>();
        auto ch = choice.accessor<int64_t, 6>();
        for (int64_t n = 0; n < spec.batch; ++n)
            for (int64_t g = 0; g < G; ++g)
                for (int64_t k = 0; k < K; ++k)
                    for (int64_t a = 0; a < 2; ++a)
                        for (int64_t oy = 0; oy < Ho; ++oy)
                            for (int64_t ox = 0; ox < Wo; ++ox) {
                                const int64_t i = k / spec.kernel_w, j = k % spec.kernel_w;
                                const double base = a == 0 ? double(oy * spec.params.stride_h - spec.params.pad_h +
                                                                    i * spec.params.dilation_h)
                                                           : double(ox * spec.params.stride_w - spec.params.pad_w +
                                                                    j * spec.params.dilation_w);
                                const double extent = a == 0 ? double(spec.height) : double(spec.width);
                                const double targets[5] = {-1.0, extent, extent - 1.0, -0.5, base};
                                off[n][g][k][a][oy][ox] = targets[ch[n][g][k][a][oy][ox]] - base;
                            }
        t.offset = t.offset.view(offShape);
        break;
    }
    }
    auto to = [&](const at::Tensor& x) { return x.to(device, dtype).contiguous(); };
    return {to(t.input), to(t.weight), to(t.offset), to(t.mask), to(t.bias)};
}

double relativeError(const at::Tensor& a, const at::Tensor& b) {
    TORCH_CHECK(a.sizes() == b.sizes(), "relativeError: shapes differ: ", a.sizes(), " vs ", b.sizes());
    if (a.numel() == 0)
        return 0.0;
    const at::Tensor x = a.detach().to(at::kCPU, at::kDouble);
    const at::Tensor y = b.detach().to(at::kCPU, at::kDouble);
    return ((x - y).abs() / (1 + y.abs())).max().item<double>();
}

} // namespace deformscope::ops::checks
