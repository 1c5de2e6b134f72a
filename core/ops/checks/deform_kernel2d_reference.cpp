#include "core/ops/checks/deform_kernel2d_checks.h"

#include "core/ops/sampling_grid.h"

#include <ATen/ATen.h>

#include <sstream>
#include <vector>

namespace deformscope::ops::checks {
namespace {

using detail::convOutputSize;

double scopeBase(int64_t tap, int64_t scope, int64_t kernel) {
    return double(tap) + 0.5 * double(scope - kernel);
}

} // namespace

at::Tensor dkReferenceForward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                              const at::Tensor& offset, const at::Tensor& bias, const DeformKernel2dParams& p) {
    const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
    const int64_t Sh = weight.size(2), Sw = weight.size(3);
    const int64_t kh = p.kernel_h, kw = p.kernel_w, K = kh * kw;
    const int64_t Ho = convOutputSize(H, kh, p.stride_h, p.pad_h, p.dilation_h);
    const int64_t Wo = convOutputSize(W, kw, p.stride_w, p.pad_w, p.dilation_w);
    const int64_t P = Ho * Wo;
    const int64_t Q = kernel_offset.size(2) * kernel_offset.size(3); // P (local) or 1 (global)
    const auto opts = input.options();
    const auto cpu64 = at::TensorOptions().dtype(at::kDouble);

    // Scope positions of the taps: q_k + Δk.
    std::vector<double> qy(K), qx(K);
    for (int64_t k = 0; k < K; ++k) {
        qy[k] = scopeBase(k / kw, Sh, kh);
        qx[k] = scopeBase(k % kw, Sw, kw);
    }
    const at::Tensor baseKy = at::from_blob(qy.data(), {1, K, 1}, cpu64).to(opts);
    const at::Tensor baseKx = at::from_blob(qx.data(), {1, K, 1}, cpu64).to(opts);
    const at::Tensor ko = kernel_offset.reshape({N, K, 2, Q});
    const at::Tensor ky = (baseKy + ko.select(2, 0)).reshape({N, K * Q});
    const at::Tensor kx = (baseKx + ko.select(2, 1)).reshape({N, K * Q});
    // W_c(q_k + Δk): [N, C, K, Q], broadcast over positions in global mode.
    const at::Tensor scope = weight.reshape({1, C, Sh, Sw}).expand({N, C, Sh, Sw});
    const at::Tensor kernels = referenceBilinearRead(scope, ky, kx).reshape({N, C, K, Q}).expand({N, C, K, P});

    // Image positions: p0*stride - pad + p_k*dil + Δp.
    std::vector<double> gy(K * P), gx(K * P);
    for (int64_t k = 0; k < K; ++k)
        for (int64_t oy = 0; oy < Ho; ++oy)
            for (int64_t ox = 0; ox < Wo; ++ox) {
                gy[(k * Ho + oy) * Wo + ox] = double(oy * p.stride_h - p.pad_h + (k / kw) * p.dilation_h);
                gx[(k * Ho + oy) * Wo + ox] = double(ox * p.stride_w - p.pad_w + (k % kw) * p.dilation_w);
            }
    at::Tensor y = at::from_blob(gy.data(), {1, K, P}, cpu64).to(opts).expand({N, K, P});
    at::Tensor x = at::from_blob(gx.data(), {1, K, P}, cpu64).to(opts).expand({N, K, P});
    if (p.use_offset) {
        const at::Tensor off = offset.reshape({N, K, 2, P});
        y = y + off.select(2, 0);
        x = x + off.select(2, 1);
    }
    const at::Tensor samples = referenceBilinearRead(input, y.reshape({N, K * P}), x.reshape({N, K * P})).reshape({N, C, K, P});

    at::Tensor out = (kernels * samples).sum(2).reshape({N, C, Ho, Wo});
    if (bias.defined() && bias.numel() > 0)
        out = out + bias.view({1, C, 1, 1});
    return out;
}

DeformKernel2dGrads dkReferenceBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& weight, const at::Tensor& kernel_offset,
                                        const at::Tensor& offset, const at::Tensor& bias,
                                        const DeformKernel2dParams& p) {
    const OpArgs g =
        referenceGradients(deformKernel2dUnderTest(p), grad_output, {input, weight, kernel_offset, offset, bias});
    return {g[0], g[1], g[2], g[3], g[4]};
}

int64_t DkCaseSpec::outH() const {
    return convOutputSize(height, params.kernel_h, params.stride_h, params.pad_h, params.dilation_h);
}

int64_t DkCaseSpec::outW() const {
    return convOutputSize(width, params.kernel_w, params.stride_w, params.pad_w, params.dilation_w);
}

std::string DkCaseSpec::describe() const {
    const DeformKernel2dParams& p = params;
    std::ostringstream s;
    s << "N" << batch << " C" << channels << " " << height << "x" << width << " k" << p.kernel_h << "x" << p.kernel_w
      << " scope" << scope_h << "x" << scope_w << " s" << p.stride_h << "," << p.stride_w << " p" << p.pad_h << ","
      << p.pad_w << " d" << p.dilation_h << "," << p.dilation_w << (global ? " global" : " local") << " kernel-offsets "
      << offsetKindName(kernel_offsets);
    if (p.use_offset)
        s << " image-offsets " << offsetKindName(offsets);
    else
        s << " no-image-offsets";
    return s.str();
}

DkCaseTensors makeDkCase(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    const DeformKernel2dParams& p = spec.params;
    const int64_t Ho = spec.outH(), Wo = spec.outW();

    DkCaseTensors t;
    t.input = at::randn({spec.batch, spec.channels, spec.height, spec.width}, gen, opts);
    t.weight = at::randn({spec.channels, 1, spec.scope_h, spec.scope_w}, gen, opts) /
               double(p.kernel_h * p.kernel_w);
    t.bias = spec.bias ? at::randn({spec.channels}, gen, opts) : at::empty({0}, opts);

    const double scopeExtent[2] = {double(spec.scope_h), double(spec.scope_w)};
    auto scopeBaseAt = [&](int64_t k, int64_t axis, int64_t, int64_t) {
        return axis == 0 ? scopeBase(k / p.kernel_w, spec.scope_h, p.kernel_h)
                         : scopeBase(k % p.kernel_w, spec.scope_w, p.kernel_w);
    };
    t.kernel_offset = makeOffsets(spec.kernel_offsets, spec.batch, p.kernel_h * p.kernel_w, spec.global ? 1 : Ho,
                                  spec.global ? 1 : Wo, scopeBaseAt, scopeExtent, spec.kernel_offset_scale,
                                  spec.kernel_shift_y, spec.kernel_shift_x, gen);

    if (p.use_offset) {
        const double imageExtent[2] = {double(spec.height), double(spec.width)};
        auto imageBaseAt = [&](int64_t k, int64_t axis, int64_t oy, int64_t ox) {
            return axis == 0 ? double(oy * p.stride_h - p.pad_h + (k / p.kernel_w) * p.dilation_h)
                             : double(ox * p.stride_w - p.pad_w + (k % p.kernel_w) * p.dilation_w);
        };
        t.offset = makeOffsets(spec.offsets, spec.batch, p.kernel_h * p.kernel_w, Ho, Wo, imageBaseAt, imageExtent,
                               spec.offset_scale, spec.shift_y, spec.shift_x, gen);
    } else {
        t.offset = at::empty({0}, opts);
    }
    auto to = [&](const at::Tensor& x) { return x.to(device, dtype).contiguous(); };
    return {to(t.input), to(t.weight), to(t.kernel_offset), to(t.offset), to(t.bias)};
}

DkCaseSpec dkFiniteDifferenceCase() {
    DkCaseSpec s;
    s.batch = 1;
    s.channels = 2;
    s.height = s.width = 5;
    s.scope_h = 4;
    s.params.pad_h = s.params.pad_w = 1;
    s.kernel_offsets = OffsetKind::AwayFromKinks;
    s.offsets = OffsetKind::AwayFromKinks;
    return s;
}

DkCaseSpec dkCollidingCase(bool global, int64_t batch, int64_t channels, int64_t size) {
    DkCaseSpec s;
    s.batch = batch;
    s.channels = channels;
    s.height = s.width = size;
    s.global = global;
    s.params.use_offset = true;
    s.params.pad_h = s.params.pad_w = 1;
    s.offset_scale = 3.0;
    return s;
}

OpUnderTest deformKernel2dUnderTest(const DeformKernel2dParams& p) {
    return opUnderTest({"input", "weight", "kernel_offset", "offset", "bias"}, p.use_offset, p, &deformKernel2d,
                       &deformKernel2dBackward, &dkReferenceForward);
}

OpArgs argsOf(const DkCaseTensors& t) {
    return {t.input, t.weight, t.kernel_offset, t.offset, t.bias};
}

} // namespace deformscope::ops::checks
