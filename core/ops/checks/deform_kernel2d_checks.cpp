#include "core/ops/checks/deform_kernel2d_checks.h"

#include "core/ops/deform_conv2d.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace deformscope::ops::checks {
namespace {

int64_t outSize(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
    return (in + 2 * pad - (dil * (k - 1) + 1)) / stride + 1;
}

bool defined(const at::Tensor& t) {
    return t.defined() && t.numel() > 0;
}

// Bilinear read of values [B, C, Hg, Wg] at positions y, x [B, M] -> [B, C, M],
// with torchvision's boundary rule: 0 when y <= -1, y >= Hg, x <= -1 or x >= Wg;
// otherwise corners outside the grid count as 0. Differentiable in all three.
at::Tensor bilinearRead(const at::Tensor& values, const at::Tensor& y, const at::Tensor& x) {
    const int64_t B = values.size(0), C = values.size(1), Hg = values.size(2), Wg = values.size(3);
    const int64_t M = y.size(1);
    const at::Tensor inside = (y > -1) & (y < Hg) & (x > -1) & (x < Wg);
    const at::Tensor y0 = y.detach().floor();
    const at::Tensor x0 = x.detach().floor();
    const at::Tensor ly = y - y0;
    const at::Tensor lx = x - x0;
    const at::Tensor flat = values.reshape({B, C, Hg * Wg});
    at::Tensor out = at::zeros({B, C, M}, values.options());
    for (int dy = 0; dy <= 1; ++dy) {
        for (int dx = 0; dx <= 1; ++dx) {
            const at::Tensor yc = y0 + dy;
            const at::Tensor xc = x0 + dx;
            const at::Tensor w = (dy ? ly : 1 - ly) * (dx ? lx : 1 - lx);
            const at::Tensor valid = inside & (yc >= 0) & (yc <= Hg - 1) & (xc >= 0) & (xc <= Wg - 1);
            const at::Tensor index = (yc.clamp(0, Hg - 1) * Wg + xc.clamp(0, Wg - 1)).to(at::kLong);
            const at::Tensor v = flat.gather(2, index.unsqueeze(1).expand({B, C, M}));
            out = out + v * at::where(valid, w, at::zeros_like(w)).unsqueeze(1);
        }
    }
    return out;
}

double scopeBase(int64_t tap, int64_t scope, int64_t kernel) {
    return double(tap) + 0.5 * double(scope - kernel);
}

// Offsets [N, 2K, A, B] for taps whose unmoved positions are base(k, axis, a, b)
// in a grid of extent(axis), drawn as `kind` says.
at::Tensor makeOffsets(OffsetKind kind, int64_t N, int64_t kh, int64_t kw, int64_t A, int64_t B,
                       const std::function<double(int64_t, int64_t, int64_t, int64_t)>& base,
                       const double extent[2], double scale, int64_t shift_y, int64_t shift_x, at::Generator& gen) {
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    const int64_t K = kh * kw;
    at::Tensor baseT = at::empty({1, K, 2, A, B}, opts);
    auto acc = baseT.accessor<double, 5>();
    for (int64_t k = 0; k < K; ++k)
        for (int64_t axis = 0; axis < 2; ++axis)
            for (int64_t a = 0; a < A; ++a)
                for (int64_t b = 0; b < B; ++b)
                    acc[0][k][axis][a][b] = base(k, axis, a, b);
    const std::vector<int64_t> shape = {N, K, 2, A, B};
    at::Tensor off;
    switch (kind) {
    case OffsetKind::Random:
        off = at::randn(shape, gen, opts) * scale;
        break;
    case OffsetKind::AwayFromKinks: {
        const at::Tensor whole = (baseT + at::randn(shape, gen, opts) * scale).floor();
        off = whole + 0.15 + 0.7 * at::rand(shape, gen, opts) - baseT;
        break;
    }
    case OffsetKind::Zero:
        off = at::zeros(shape, opts);
        break;
    case OffsetKind::Integer:
        off = at::zeros(shape, opts);
        off.select(2, 0).fill_(double(shift_y));
        off.select(2, 1).fill_(double(shift_x));
        break;
    case OffsetKind::ExactBorders: {
        const at::Tensor choice = at::randint(0, 5, shape, gen, opts.dtype(at::kLong));
        at::Tensor extentT = at::empty({1, 1, 2, 1, 1}, opts);
        extentT.view({2}).copy_(at::tensor({extent[0], extent[1]}, opts));
        const at::Tensor full = baseT.expand(shape);
        at::Tensor target = full.clone();
        target = at::where(choice == 0, at::full_like(full, -1.0), target);
        target = at::where(choice == 1, extentT.expand(shape), target);
        target = at::where(choice == 2, extentT.expand(shape) - 1.0, target);
        target = at::where(choice == 3, at::full_like(full, -0.5), target);
        off = target - baseT;
        break;
    }
    }
    return off.reshape({N, 2 * K, A, B}).contiguous();
}

at::Tensor randomLike(const at::Tensor& like, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randn(like.sizes(), gen, at::TensorOptions().dtype(at::kDouble)).to(like.options());
}

std::vector<at::Tensor> asVector(const DeformKernel2dGrads& g) {
    return {std::get<0>(g), std::get<1>(g), std::get<2>(g), std::get<3>(g), std::get<4>(g)};
}

} // namespace

at::Tensor dkReferenceForward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                              const at::Tensor& offset, const at::Tensor& bias, const DeformKernel2dParams& p) {
    const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
    const int64_t Sh = weight.size(2), Sw = weight.size(3);
    const int64_t kh = p.kernel_h, kw = p.kernel_w, K = kh * kw;
    const int64_t Ho = outSize(H, kh, p.stride_h, p.pad_h, p.dilation_h);
    const int64_t Wo = outSize(W, kw, p.stride_w, p.pad_w, p.dilation_w);
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
    const at::Tensor kernels = bilinearRead(scope, ky, kx).reshape({N, C, K, Q}).expand({N, C, K, P});

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
    const at::Tensor samples = bilinearRead(input, y.reshape({N, K * P}), x.reshape({N, K * P})).reshape({N, C, K, P});

    at::Tensor out = (kernels * samples).sum(2).reshape({N, C, Ho, Wo});
    if (defined(bias))
        out = out + bias.view({1, C, 1, 1});
    return out;
}

DeformKernel2dGrads dkReferenceBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& weight, const at::Tensor& kernel_offset,
                                        const at::Tensor& offset, const at::Tensor& bias,
                                        const DeformKernel2dParams& p) {
    at::AutoGradMode enable(true);
    const bool hasBias = defined(bias);
    auto leaf = [](const at::Tensor& t) { return t.detach().clone().requires_grad_(true); };
    const at::Tensor in = leaf(input), w = leaf(weight), ko = leaf(kernel_offset);
    const at::Tensor off = p.use_offset ? leaf(offset) : offset;
    const at::Tensor b = hasBias ? leaf(bias) : bias;
    const at::Tensor out = dkReferenceForward(in, w, ko, off, b, p);

    std::vector<at::Tensor> wrt = {in, w, ko};
    if (p.use_offset)
        wrt.push_back(off);
    if (hasBias)
        wrt.push_back(b);
    const auto grads = torch::autograd::grad({out}, wrt, {grad_output}, false, false, true);
    size_t next = 3;
    const at::Tensor goff = p.use_offset ? grads[next++] : at::Tensor();
    const at::Tensor gb = hasBias ? grads[next++] : at::Tensor();
    auto orZero = [](const at::Tensor& g, const at::Tensor& like) {
        return g.defined() ? g : at::zeros_like(like);
    };
    return {orZero(grads[0], input), orZero(grads[1], weight), orZero(grads[2], kernel_offset), orZero(goff, offset),
            orZero(gb, bias)};
}

int64_t DkCaseSpec::outH() const {
    return outSize(height, params.kernel_h, params.stride_h, params.pad_h, params.dilation_h);
}

int64_t DkCaseSpec::outW() const {
    return outSize(width, params.kernel_w, params.stride_w, params.pad_w, params.dilation_w);
}

std::string DkCaseSpec::describe() const {
    static const char* kinds[] = {"random", "away-from-kinks", "zero", "integer", "exact-borders"};
    const DeformKernel2dParams& p = params;
    std::ostringstream s;
    s << "N" << batch << " C" << channels << " " << height << "x" << width << " k" << p.kernel_h << "x" << p.kernel_w
      << " scope" << scope_h << "x" << scope_w << " s" << p.stride_h << "," << p.stride_w << " p" << p.pad_h << ","
      << p.pad_w << " d" << p.dilation_h << "," << p.dilation_w << (global ? " global" : " local") << " kernel-offsets "
      << kinds[static_cast<int>(kernel_offsets)];
    if (p.use_offset)
        s << " image-offsets " << kinds[static_cast<int>(offsets)];
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
    t.kernel_offset = makeOffsets(spec.kernel_offsets, spec.batch, p.kernel_h, p.kernel_w, spec.global ? 1 : Ho,
                                  spec.global ? 1 : Wo, scopeBaseAt, scopeExtent, spec.kernel_offset_scale,
                                  spec.kernel_shift_y, spec.kernel_shift_x, gen);

    if (p.use_offset) {
        const double imageExtent[2] = {double(spec.height), double(spec.width)};
        auto imageBaseAt = [&](int64_t k, int64_t axis, int64_t oy, int64_t ox) {
            return axis == 0 ? double(oy * p.stride_h - p.pad_h + (k / p.kernel_w) * p.dilation_h)
                             : double(ox * p.stride_w - p.pad_w + (k % p.kernel_w) * p.dilation_w);
        };
        t.offset = makeOffsets(spec.offsets, spec.batch, p.kernel_h, p.kernel_w, Ho, Wo, imageBaseAt, imageExtent,
                               spec.offset_scale, spec.shift_y, spec.shift_x, gen);
    } else {
        t.offset = at::empty({0}, opts);
    }
    auto to = [&](const at::Tensor& x) { return x.to(device, dtype).contiguous(); };
    return {to(t.input), to(t.weight), to(t.kernel_offset), to(t.offset), to(t.bias)};
}

ReferenceComparison compareDkWithReference(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                           const at::Device& device) {
    const DkCaseTensors ours = makeDkCase(spec, seed, dtype, device);
    // The reference reads exactly the values our op reads (already rounded to
    // `dtype`): in half or bfloat16 an offset's rounding alone can move a sample
    // across an integer, where the bilinear slope jumps, and that is not an error
    // of the kernels.
    auto exact = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
    const DkCaseTensors ref = {exact(ours.input), exact(ours.weight), exact(ours.kernel_offset), exact(ours.offset),
                               exact(ours.bias)};
    const DeformKernel2dParams& p = spec.params;

    ReferenceComparison r;
    const at::Tensor expected = dkReferenceForward(ref.input, ref.weight, ref.kernel_offset, ref.offset, ref.bias, p);
    const at::Tensor actual = deformKernel2d(ours.input, ours.weight, ours.kernel_offset, ours.offset, ours.bias, p);
    r.forward = relativeError(actual, expected);

    const at::Tensor gradOurs = randomLike(expected, seed + 1).to(device, dtype);
    const at::Tensor gradRef = exact(gradOurs);
    const auto e = asVector(
        dkReferenceBackward(gradRef, ref.input, ref.weight, ref.kernel_offset, ref.offset, ref.bias, p));
    const auto a = asVector(deformKernel2dBackward(gradOurs, ours.input, ours.weight, ours.kernel_offset,
                                                   ours.offset, ours.bias, p));
    for (int i = 0; i < 5; ++i)
        r.grads[i] = (i == 3 && !p.use_offset) ? 0.0 : relativeError(a[i], e[i]);
    return r;
}

double dkFiniteDifferenceError(const DkCaseSpec& spec, uint64_t seed, const at::Device& device,
                               int64_t maxPerTensor) {
    DkCaseTensors t = makeDkCase(spec, seed, at::kDouble, device);
    const DeformKernel2dParams& p = spec.params;
    auto loss = [&](const at::Tensor& R) {
        return (deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, p) * R).sum().item<double>();
    };
    const at::Tensor out = deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, p);
    const at::Tensor R = randomLike(out, seed + 7);
    const auto grads =
        asVector(deformKernel2dBackward(R, t.input, t.weight, t.kernel_offset, t.offset, t.bias, p));
    at::Tensor* args[5] = {&t.input, &t.weight, &t.kernel_offset, &t.offset, &t.bias};

    constexpr double h = 1e-6;
    double worst = 0;
    for (int a = 0; a < 5; ++a) {
        at::Tensor& arg = *args[a];
        if (arg.numel() == 0 || (a == 3 && !p.use_offset))
            continue;
        const at::Tensor grad = grads[a].to(at::kCPU).contiguous();
        const int64_t n = arg.numel();
        const int64_t step = std::max<int64_t>(1, n / maxPerTensor);
        for (int64_t i = 0; i < n; i += step) {
            at::Tensor flat = arg.view({-1});
            const double original = flat[i].item<double>();
            flat[i].fill_(original + h);
            const double plus = loss(R);
            flat[i].fill_(original - h);
            const double minus = loss(R);
            flat[i].fill_(original);
            const double fd = (plus - minus) / (2 * h);
            const double an = grad.view({-1})[i].item<double>();
            worst = std::max(worst, std::abs(fd - an) / (1 + std::abs(an)));
        }
    }
    return worst;
}

double dkWindowConvError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    DkCaseSpec s = spec;
    s.kernel_offsets = OffsetKind::Integer;
    s.params.use_offset = false;
    const DeformKernel2dParams& p = s.params;
    TORCH_CHECK((s.scope_h - p.kernel_h) % 2 == 0 && (s.scope_w - p.kernel_w) % 2 == 0,
                "dkWindowConvError: needs integer tap base positions (scope - kernel even)");
    const DkCaseTensors t = makeDkCase(s, seed, dtype, device);
    const at::Tensor ours = deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, p);

    // Tap (i, j) reads scope cell (i + (Sh-kh)/2 + shift_y, j + (Sw-kw)/2 + shift_x),
    // 0 outside the scope: crop that window from the zero-extended scope.
    const int64_t margin = std::max(std::abs(s.kernel_shift_y), std::abs(s.kernel_shift_x)) + 1;
    const at::Tensor padded = at::constant_pad_nd(t.weight, {margin, margin, margin, margin}, 0.0);
    const at::Tensor window = padded.narrow(2, margin + (s.scope_h - p.kernel_h) / 2 + s.kernel_shift_y, p.kernel_h)
                                  .narrow(3, margin + (s.scope_w - p.kernel_w) / 2 + s.kernel_shift_x, p.kernel_w)
                                  .contiguous();
    const at::Tensor conv = at::conv2d(t.input, window, defined(t.bias) ? t.bias : at::Tensor(),
                                       std::vector<int64_t>{p.stride_h, p.stride_w},
                                       std::vector<int64_t>{p.pad_h, p.pad_w},
                                       std::vector<int64_t>{p.dilation_h, p.dilation_w}, s.channels);
    return relativeError(ours, conv);
}

double dkDeformConvError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device) {
    DkCaseSpec s = spec;
    s.kernel_offsets = OffsetKind::Zero;
    s.scope_h = s.params.kernel_h;
    s.scope_w = s.params.kernel_w;
    s.params.use_offset = true;
    const DeformKernel2dParams& p = s.params;
    const DkCaseTensors t = makeDkCase(s, seed, dtype, device);
    const at::Tensor ours = deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, p);
    DeformConv2dParams q;
    q.stride_h = p.stride_h;
    q.stride_w = p.stride_w;
    q.pad_h = p.pad_h;
    q.pad_w = p.pad_w;
    q.dilation_h = p.dilation_h;
    q.dilation_w = p.dilation_w;
    q.groups = s.channels;
    q.offset_groups = 1;
    q.use_mask = false;
    const at::Tensor dcn = deformConv2d(t.input, t.weight, t.offset, at::Tensor(), t.bias, q);
    return relativeError(ours, dcn);
}

double dkGlobalEqualsLocalError(const DkCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                const at::Device& device) {
    DkCaseSpec s = spec;
    s.global = true;
    const DeformKernel2dParams& p = s.params;
    const DkCaseTensors t = makeDkCase(s, seed, dtype, device);
    const at::Tensor local = t.kernel_offset.expand({s.batch, t.kernel_offset.size(1), s.outH(), s.outW()}).contiguous();
    const at::Tensor outGlobal = deformKernel2d(t.input, t.weight, t.kernel_offset, t.offset, t.bias, p);
    const at::Tensor outLocal = deformKernel2d(t.input, t.weight, local, t.offset, t.bias, p);
    const at::Tensor R = randomLike(outLocal, seed + 3);
    const auto gg = asVector(deformKernel2dBackward(R, t.input, t.weight, t.kernel_offset, t.offset, t.bias, p));
    const auto gl = asVector(deformKernel2dBackward(R, t.input, t.weight, local, t.offset, t.bias, p));
    double worst = relativeError(outGlobal, outLocal);
    for (int i = 0; i < 5; ++i) {
        if (i == 3 && !p.use_offset)
            continue;
        const at::Tensor expected = i == 2 ? gl[i].sum({2, 3}, /*keepdim=*/true) : gl[i];
        worst = std::max(worst, relativeError(gg[i], expected));
    }
    return worst;
}

std::vector<BadInputCase> dkBadInputCases(const at::Device& device) {
    DkCaseSpec spec; // N2 C3 7x6, k3x3, scope 5x5 -> 5x4 output
    spec.params.use_offset = true;
    const DkCaseTensors t = makeDkCase(spec, 11, at::kFloat, device);
    const DeformKernel2dParams p = spec.params;
    const auto opts = t.input.options();
    auto run = [](const DkCaseTensors& x, const DeformKernel2dParams& q) {
        deformKernel2d(x.input, x.weight, x.kernel_offset, x.offset, x.bias, q);
    };
    auto with = [&](auto&& edit) {
        DkCaseTensors x = t;
        edit(x);
        return x;
    };

    std::vector<BadInputCase> cases;
    auto add = [&](std::string name, std::string message, DkCaseTensors x, DeformKernel2dParams q) {
        cases.push_back({std::move(name), std::move(message), [=] { run(x, q); }});
    };
    add("3-D input", "input must be 4-D [N, C, H, W], got shape [3, 7, 6]", with([](auto& x) { x.input = x.input[0]; }), p);
    add("non-floating input", "input must be a floating-point tensor, got dtype Long",
        with([](auto& x) { x.input = x.input.to(at::kLong); }), p);
    add("3-D weight", "weight must be 4-D [C, 1, Sh, Sw]", with([](auto& x) { x.weight = x.weight[0]; }), p);
    add("non-depthwise weight", "weight must be depthwise [C, 1, Sh, Sw], got shape [3, 3, 5, 5]",
        with([&](auto& x) { x.weight = at::zeros({3, 3, 5, 5}, opts); }), p);
    add("weight channel mismatch", "weight has 4 kernels but input has C=3 channels",
        with([&](auto& x) { x.weight = at::zeros({4, 1, 5, 5}, opts); }), p);
    add("scope smaller than kernel", "the scope kernel 2 x 5 (weight's last two dims) is smaller than the kernel size 3 x 3",
        with([&](auto& x) { x.weight = at::zeros({3, 1, 2, 5}, opts); }), p);
    add("wrong kernel_offset channels",
        "kernel_offset must have shape [N, 2*kh*kw, Ho, Wo] = [2, 18, 5, 4] (local: one kernel per position) or "
        "[N, 2*kh*kw, 1, 1] = [2, 18, 1, 1] (global: one kernel per image), got [2, 16, 5, 4]",
        with([&](auto& x) { x.kernel_offset = at::zeros({2, 16, 5, 4}, opts); }), p);
    add("wrong kernel_offset spatial size", "got [2, 18, 2, 2]",
        with([&](auto& x) { x.kernel_offset = at::zeros({2, 18, 2, 2}, opts); }), p);
    add("3-D kernel_offset", "kernel_offset must have shape [N, 2*kh*kw, Ho, Wo] = [2, 18, 5, 4]",
        with([&](auto& x) { x.kernel_offset = at::zeros({18, 5, 4}, opts); }), p);
    add("kernel_offset batch", "got [1, 18, 1, 1]",
        with([&](auto& x) { x.kernel_offset = at::zeros({1, 18, 1, 1}, opts); }), p);
    add("wrong offset channels", "offset must have shape [N, 2*kh*kw, Ho, Wo] = [2, 18, 5, 4], got [2, 16, 5, 4]",
        with([&](auto& x) { x.offset = at::zeros({2, 16, 5, 4}, opts); }), p);
    add("offset batch", "offset has batch 3 but input has batch 2",
        with([&](auto& x) { x.offset = at::zeros({3, 18, 5, 4}, opts); }), p);
    add("use_offset without offsets", "offset must have shape [N, 2*kh*kw, Ho, Wo] = [2, 18, 5, 4], got [0]",
        with([&](auto& x) { x.offset = at::empty({0}, opts); }), p);
    add("wrong bias shape", "bias must have shape [C] = [3], got [5]",
        with([&](auto& x) { x.bias = at::zeros({5}, opts); }), p);
    add("mixed dtypes", "weight has dtype Double but input has dtype Float",
        with([](auto& x) { x.weight = x.weight.to(at::kDouble); }), p);
    add("kernel_offset dtype", "kernel_offset has dtype Half but input has dtype Float",
        with([](auto& x) { x.kernel_offset = x.kernel_offset.to(at::kHalf); }), p);
    DeformKernel2dParams q = p;
    q.kernel_h = 0;
    add("non-positive kernel size", "kernel size must be positive, got (0, 3)", t, q);
    q = p;
    q.stride_w = 0;
    add("zero stride", "stride must be positive, got (1, 0)", t, q);
    q = p;
    q.kernel_h = q.kernel_w = 9;
    add("kernel larger than padded input", "output would be empty",
        with([&](auto& x) { x.weight = at::zeros({3, 1, 9, 9}, opts); }), q);
    cases.push_back({"grad_output shape", "grad_output must have shape [N, C, Ho, Wo] = [2, 3, 5, 4], got [2, 3, 4, 4]",
                     [=] {
                         deformKernel2dBackward(at::zeros({2, 3, 4, 4}, opts), t.input, t.weight, t.kernel_offset,
                                                t.offset, t.bias, p);
                     }});
    // A tensor on another device must be named, not read from the wrong memory.
    // The meta device exists in every build, so the check runs without a GPU too.
    const at::Device other = device.is_cuda() ? at::Device(at::kCPU) : at::Device(at::kMeta);
    const std::string otherName = other.str(), here = device.str();
    add("kernel_offset on another device", "kernel_offset is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.kernel_offset = x.kernel_offset.to(other); }), p);
    add("weight on another device", "weight is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.weight = x.weight.to(other); }), p);
    add("offset on another device", "offset is on " + otherName + " but input is on " + here,
        with([&](auto& x) { x.offset = x.offset.to(other); }), p);
    return cases;
}

namespace {

// The fixed table the self-test runs: one case per feature the op must get right.
std::vector<DkCaseSpec> selfTestCases() {
    std::vector<DkCaseSpec> cases;
    auto add = [&](auto&& edit) {
        DkCaseSpec s;
        edit(s);
        cases.push_back(s);
    };
    add([](DkCaseSpec& s) { s.params.pad_h = s.params.pad_w = 1; });
    add([](DkCaseSpec& s) { s.global = true; s.params.pad_h = s.params.pad_w = 1; });
    add([](DkCaseSpec& s) { s.params.use_offset = true; s.params.pad_h = s.params.pad_w = 1; });
    add([](DkCaseSpec& s) { s.global = true; s.params.use_offset = true; s.scope_h = 4; s.scope_w = 6; });
    add([](DkCaseSpec& s) { s.params.stride_h = s.params.stride_w = 2; s.params.dilation_h = s.params.dilation_w = 2; s.params.pad_h = s.params.pad_w = 2; s.height = s.width = 9; s.params.use_offset = true; });
    add([](DkCaseSpec& s) { s.params.kernel_w = 1; s.scope_h = 3; s.scope_w = 4; s.kernel_offset_scale = 3.0; s.params.pad_h = 1; });
    add([](DkCaseSpec& s) { s.kernel_offsets = OffsetKind::ExactBorders; s.offsets = OffsetKind::ExactBorders; s.params.use_offset = true; s.params.pad_h = s.params.pad_w = 1; });
    add([](DkCaseSpec& s) { s.batch = 5; s.channels = 2; s.height = s.width = 4; s.params.kernel_h = s.params.kernel_w = 1; s.scope_h = s.scope_w = 3; s.bias = false; });
    return cases;
}

std::vector<at::Tensor> dkGrads(const DkCaseTensors& t, const at::Tensor& R, const DeformKernel2dParams& p) {
    return asVector(deformKernel2dBackward(R, t.input, t.weight, t.kernel_offset, t.offset, t.bias, p));
}

} // namespace

std::vector<NamedCheck> deformKernel2dSelfChecks(const at::Device& d) {
    std::vector<NamedCheck> checks;
    const auto cases = selfTestCases();
    for (size_t i = 0; i < cases.size(); ++i) {
        const DkCaseSpec spec = cases[i];
        checks.push_back({"deform_kernel2d float64 vs reference: " + spec.describe(), 1e-10,
                          [=] { return compareDkWithReference(spec, 700 + i, at::kDouble, d).worst(); }});
    }
    checks.push_back({"deform_kernel2d float32 vs float64 reference", 1e-4,
                      [=] { return compareDkWithReference(cases[2], 710, at::kFloat, d).worst(); }});
    DkCaseSpec fd;
    fd.batch = 1;
    fd.channels = 2;
    fd.height = fd.width = 5;
    fd.scope_h = 4; // fractional base positions
    fd.params.pad_h = fd.params.pad_w = 1;
    fd.params.use_offset = true;
    fd.kernel_offsets = OffsetKind::AwayFromKinks;
    fd.offsets = OffsetKind::AwayFromKinks;
    checks.push_back({"deform_kernel2d finite differences (float64): input, weight, kernel_offset, offset, bias", 1e-6,
                      [=] { return dkFiniteDifferenceError(fd, 720, d); }});
    fd.global = true;
    checks.push_back({"deform_kernel2d finite differences, global kernel offsets (float64)", 1e-6,
                      [=] { return dkFiniteDifferenceError(fd, 721, d); }});
    DkCaseSpec inv;
    inv.scope_h = inv.scope_w = 3;
    inv.params.pad_h = inv.params.pad_w = 1;
    inv.params.stride_h = 2;
    checks.push_back({"deform_kernel2d zero offsets, scope == kernel == depthwise conv2d (float32)", 1e-5,
                      [=] { return dkWindowConvError(inv, 730, at::kFloat, d); }});
    DkCaseSpec shifted = inv;
    shifted.scope_h = shifted.scope_w = 5;
    shifted.kernel_shift_y = 1;
    shifted.kernel_shift_x = -2;
    checks.push_back({"deform_kernel2d integer kernel offsets == conv2d with the scope window (float64)", 1e-12,
                      [=] { return dkWindowConvError(shifted, 731, at::kDouble, d); }});
    checks.push_back({"deform_kernel2d zero kernel offsets + image offsets == depthwise deform_conv2d (float64)", 1e-12,
                      [=] { return dkDeformConvError(inv, 732, at::kDouble, d); }});
    DkCaseSpec global = cases[2];
    checks.push_back({"deform_kernel2d global kernel offsets == broadcast local ones (float64)", 1e-12,
                      [=] { return dkGlobalEqualsLocalError(global, 733, at::kDouble, d); }});
    for (const BadInputCase& bad : dkBadInputCases(d)) {
        checks.push_back({"deform_kernel2d bad input raises: " + bad.name, 0.0, [bad] {
                              const std::string message = errorMessageOf(bad.call);
                              if (message.find(bad.expectedMessage) == std::string::npos)
                                  throw std::runtime_error("expected '" + bad.expectedMessage + "', got '" + message +
                                                           "'");
                              return 0.0;
                          }});
    }
    if (!d.is_cuda())
        return checks;

    checks.push_back({"deform_kernel2d half vs float64 reference", 5e-3,
                      [=] { return compareDkWithReference(cases[2], 740, at::kHalf, d).worst(); }});
    checks.push_back({"deform_kernel2d bfloat16 vs float64 reference", 3e-2,
                      [=] { return compareDkWithReference(cases[2], 741, at::kBFloat16, d).worst(); }});

    // Many samples collide on the same pixels and scope cells.
    for (bool isGlobal : {false, true}) {
        DkCaseSpec big;
        big.batch = 3;
        big.channels = 32;
        big.height = big.width = 40;
        big.global = isGlobal;
        big.params.use_offset = true;
        big.params.pad_h = big.params.pad_w = 1;
        big.offset_scale = 3.0;
        big.kernel_offset_scale = 1.5;
        const std::string mode = isGlobal ? "global" : "local";
        // CUDA float32 against the float64 CPU result on the same values, to the float32 tolerance
        // (summation orders differ from the CPU's, so CUDA != CPU bit for bit).
        checks.push_back({"deform_kernel2d cuda float32 vs float64 (" + mode + ", colliding case, forward and gradients)",
                          1e-4, [=] {
                              const DkCaseTensors ref = makeDkCase(big, 750, at::kDouble, at::kCPU);
                              const DkCaseTensors gpu = makeDkCase(big, 750, at::kFloat, d);
                              const DeformKernel2dParams& p = big.params;
                              const at::Tensor o64 =
                                  deformKernel2d(ref.input, ref.weight, ref.kernel_offset, ref.offset, ref.bias, p);
                              const at::Tensor og =
                                  deformKernel2d(gpu.input, gpu.weight, gpu.kernel_offset, gpu.offset, gpu.bias, p);
                              const at::Tensor R = randomLike(o64, 751);
                              const auto g64 = dkGrads(ref, R, p);
                              const auto gg = dkGrads(gpu, R.to(d, at::kFloat), p);
                              double worst = relativeError(og, o64);
                              for (int i = 0; i < 5; ++i)
                                  worst = std::max(worst, relativeError(gg[i], g64[i]));
                              return worst;
                          }});
    }
    DkCaseSpec det;
    det.batch = 3;
    det.channels = 32;
    det.height = det.width = 40;
    det.params.use_offset = true;
    det.params.pad_h = det.params.pad_w = 1;
    det.offset_scale = 3.0;
    auto backwardWith = [=](BackwardMode mode) {
        const DkCaseTensors gpu = makeDkCase(det, 760, at::kFloat, d);
        const at::Tensor R = randomLike(
            deformKernel2d(gpu.input, gpu.weight, gpu.kernel_offset, gpu.offset, gpu.bias, det.params), 761);
        const BackwardMode before = backwardMode();
        setBackwardMode(mode);
        auto g = dkGrads(gpu, R, det.params);
        setBackwardMode(before);
        return g;
    };
    checks.push_back({"deform_kernel2d deterministic backward is bit-identical (2 runs)", 0.0, [=] {
                          const auto a = backwardWith(BackwardMode::Deterministic);
                          const auto b = backwardWith(BackwardMode::Deterministic);
                          for (int i = 0; i < 5; ++i)
                              if (!at::equal(a[i], b[i]))
                                  return 1.0;
                          return 0.0;
                      }});
    checks.push_back({"deform_kernel2d atomic backward == deterministic backward (float32)", 1e-5, [=] {
                          const auto a = backwardWith(BackwardMode::Atomic);
                          const auto b = backwardWith(BackwardMode::Deterministic);
                          double worst = 0;
                          for (int i = 0; i < 5; ++i)
                              worst = std::max(worst, relativeError(a[i], b[i]));
                          return worst;
                      }});
    return checks;
}

} // namespace deformscope::ops::checks
