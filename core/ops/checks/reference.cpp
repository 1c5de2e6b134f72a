#include "core/ops/checks/reference.h"

#include "core/ops/sampling_grid.h"

#include <ATen/ATen.h>

#include <sstream>
#include <vector>

namespace deformscope::ops::checks {

using detail::convOutputSize;

int64_t CaseSpec::outH() const {
    return convOutputSize(height, kernel_h, params.stride_h, params.pad_h, params.dilation_h);
}

int64_t CaseSpec::outW() const {
    return convOutputSize(width, kernel_w, params.stride_w, params.pad_w, params.dilation_w);
}

std::string CaseSpec::describe() const {
    std::ostringstream s;
    s << "N" << batch << " C" << channels << " " << height << "x" << width << " Cout" << out_channels << " k"
      << kernel_h << "x" << kernel_w << " s" << params.stride_h << "," << params.stride_w << " p" << params.pad_h
      << "," << params.pad_w << " d" << params.dilation_h << "," << params.dilation_w << " g" << params.groups
      << " og" << params.offset_groups << (params.use_mask ? " mask" : " nomask") << " offsets "
      << offsetKindName(offsets);
    return s.str();
}

at::Tensor referenceForward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                            const at::Tensor& mask, const at::Tensor& bias, const DeformConv2dParams& p) {
    const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
    const int64_t Cout = weight.size(0), kh = weight.size(2), kw = weight.size(3), K = kh * kw;
    const int64_t G = p.offset_groups;
    const int64_t Ho = convOutputSize(H, kh, p.stride_h, p.pad_h, p.dilation_h);
    const int64_t Wo = convOutputSize(W, kw, p.stride_w, p.pad_w, p.dilation_w);
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

    // Each offset group's channels read at the group's positions.
    const int64_t Cg = C / G;
    at::Tensor sample = referenceBilinearRead(input.reshape({N * G, Cg, H, W}), y.reshape({N * G, K * Ho * Wo}),
                                              x.reshape({N * G, K * Ho * Wo}))
                            .view({N, G, Cg, K, Ho, Wo});
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
    const OpArgs g = referenceGradients(deformConv2dUnderTest(p), grad_output, {input, weight, offset, mask, bias});
    return {g[0], g[1], g[2], g[3], g[4]};
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

    // Tap g*K + k of offset group g sits at tap k's grid position.
    const DeformConv2dParams& p = spec.params;
    auto gridAt = [&](int64_t gk, int64_t axis, int64_t oy, int64_t ox) {
        const int64_t k = gk % K;
        return axis == 0 ? double(oy * p.stride_h - p.pad_h + (k / spec.kernel_w) * p.dilation_h)
                         : double(ox * p.stride_w - p.pad_w + (k % spec.kernel_w) * p.dilation_w);
    };
    const double extent[2] = {double(spec.height), double(spec.width)};
    t.offset = makeOffsets(spec.offsets, spec.batch, G * K, Ho, Wo, gridAt, extent, spec.offset_scale, spec.shift_y,
                           spec.shift_x, gen);
    auto to = [&](const at::Tensor& x) { return x.to(device, dtype).contiguous(); };
    return {to(t.input), to(t.weight), to(t.offset), to(t.mask), to(t.bias)};
}

CaseSpec finiteDifferenceCase() {
    CaseSpec s;
    s.batch = 1;
    s.channels = s.out_channels = 2;
    s.height = s.width = 5;
    s.offsets = OffsetKind::AwayFromKinks;
    s.params.pad_h = s.params.pad_w = 1;
    return s;
}

CaseSpec collidingCase(int64_t batch, int64_t channels, int64_t size) {
    CaseSpec s;
    s.batch = batch;
    s.channels = s.out_channels = channels;
    s.height = s.width = size;
    s.params.use_mask = true;
    s.params.pad_h = s.params.pad_w = 1;
    s.offset_scale = 3.0;
    return s;
}

OpUnderTest deformConv2dUnderTest(const DeformConv2dParams& p) {
    return opUnderTest({"input", "weight", "offset", "mask", "bias"}, p.use_mask, p, &deformConv2d,
                       &deformConv2dBackward, &referenceForward);
}

OpArgs argsOf(const CaseTensors& t) {
    return {t.input, t.weight, t.offset, t.mask, t.bias};
}

} // namespace deformscope::ops::checks
