// deform_roi_pool's float64 reference and random cases (deform_roi_pool_checks.h).
//
// Written from the formula in deform_roi_pool.h (which restates mmcv's
// deform_roi_pool_cuda_kernel.cuh and bilinear_interpolate), with plain loops
// over RoIs, bins, reads, channels and corners, and without the kernels'
// header: the clamped read is formed as clamp(y, 0, H-1) and its corners as
// floor / floor+1 limited to H-1, which is the same rule said another way.
// The backward is the hand-derived gradient of the same loops; finite
// differences check it against the forward.
#include "core/ops/checks/deform_roi_pool_checks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

namespace deformscope::ops::checks {
namespace {

at::Tensor cpu64(const at::Tensor& t) {
    return t.detach().to(at::kCPU, at::kDouble).contiguous();
}

bool takesPart(const at::Tensor& t) {
    return t.defined() && t.numel() > 0;
}

// One bin of one RoI, the formula's quantities in float64.
struct Bin {
    int64_t image = 0;
    double top = 0, left = 0;   // y0, x0 of the bin after the offset
    double binH = 0, binW = 0;
    int64_t gridH = 0, gridW = 0;
    double count = 1;
    double dyDoff = 0, dxDoff = 0; // gamma * roi_h, gamma * roi_w

    double y(int64_t iy) const { return top + (double(iy) + 0.5) * binH / double(gridH); }
    double x(int64_t ix) const { return left + (double(ix) + 0.5) * binW / double(gridW); }
};

// sampling_ratio, or mmcv's ceilf of the float-rounded quotient; no reads for a
// quotient that is not positive.
int64_t gridSize(int64_t samplingRatio, double roiSize, int64_t pooled) {
    if (samplingRatio > 0)
        return samplingRatio;
    const float q = static_cast<float>(roiSize / double(pooled));
    return q > 0.0f ? static_cast<int64_t>(std::ceil(q)) : 0;
}

Bin binOf(const double* roi, const double* offsetK /* [2, ph, pw] or null */, int64_t i, int64_t j,
          const DeformRoiPoolParams& p) {
    const double s = p.spatial_scale;
    const double x1 = roi[1] * s - 0.5, y1 = roi[2] * s - 0.5;
    const double roiW = (roi[3] * s - 0.5) - x1;
    const double roiH = (roi[4] * s - 0.5) - y1;
    Bin b;
    b.image = static_cast<int64_t>(roi[0]);
    b.binH = roiH / double(p.pooled_height);
    b.binW = roiW / double(p.pooled_width);
    b.gridH = gridSize(p.sampling_ratio, roiH, p.pooled_height);
    b.gridW = gridSize(p.sampling_ratio, roiW, p.pooled_width);
    b.count = double(std::max<int64_t>(b.gridH * b.gridW, 1));
    b.dyDoff = p.gamma * roiH;
    b.dxDoff = p.gamma * roiW;
    double sx = x1, sy = y1;
    if (offsetK) {
        const int64_t P = p.pooled_height * p.pooled_width;
        sx += b.dxDoff * offsetK[i * p.pooled_width + j];
        sy += b.dyDoff * offsetK[P + i * p.pooled_width + j];
    }
    b.top = sy + double(i) * b.binH;
    b.left = sx + double(j) * b.binW;
    return b;
}

// A read of one plane: its value, its derivatives w.r.t. y and x, and the
// weights it puts on up to four pixels (zero weights where it has none).
struct Read {
    double value = 0, dy = 0, dx = 0;
    int64_t pixel[4] = {0, 0, 0, 0};
    double weight[4] = {0, 0, 0, 0};
};

Read readAt(const double* plane, int64_t H, int64_t W, double y, double x) {
    Read r;
    if (y < -1.0 || y > double(H) || x < -1.0 || x > double(W))
        return r;
    const double yc = std::clamp(y, 0.0, double(H - 1));
    const double xc = std::clamp(x, 0.0, double(W - 1));
    const int64_t y0 = static_cast<int64_t>(std::floor(yc)), x0 = static_cast<int64_t>(std::floor(xc));
    const int64_t y1 = std::min(y0 + 1, H - 1), x1 = std::min(x0 + 1, W - 1);
    const double ly = yc - double(y0), lx = xc - double(x0);
    const double v00 = plane[y0 * W + x0], v01 = plane[y0 * W + x1];
    const double v10 = plane[y1 * W + x0], v11 = plane[y1 * W + x1];
    r.value = (1 - ly) * (1 - lx) * v00 + (1 - ly) * lx * v01 + ly * (1 - lx) * v10 + ly * lx * v11;
    // A clamped coordinate does not move the read.
    const bool clampedY = y <= 0.0 || y >= double(H - 1);
    const bool clampedX = x <= 0.0 || x >= double(W - 1);
    r.dy = clampedY ? 0.0 : (1 - lx) * (v10 - v00) + lx * (v11 - v01);
    r.dx = clampedX ? 0.0 : (1 - ly) * (v01 - v00) + ly * (v11 - v10);
    const int64_t pixels[4] = {y0 * W + x0, y0 * W + x1, y1 * W + x0, y1 * W + x1};
    const double weights[4] = {(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx};
    std::copy(pixels, pixels + 4, r.pixel);
    std::copy(weights, weights + 4, r.weight);
    return r;
}

// Runs the loops once, forward and (with grad_output) backward.
struct ReferenceRun {
    at::Tensor out, gradInput, gradOffset, gradMask;
};

ReferenceRun runReference(const at::Tensor& input_, const at::Tensor& rois_, const at::Tensor& offset_,
                          const at::Tensor& mask_, const DeformRoiPoolParams& p, const at::Tensor& grad_) {
    const at::Tensor input = cpu64(input_), rois = cpu64(rois_);
    const bool useOffset = takesPart(offset_);
    const at::Tensor offset = useOffset ? cpu64(offset_) : at::Tensor();
    const at::Tensor mask = p.use_mask ? cpu64(mask_) : at::Tensor();
    const bool backward = grad_.defined();
    const at::Tensor grad = backward ? cpu64(grad_) : at::Tensor();

    const int64_t C = input.size(1), H = input.size(2), W = input.size(3), K = rois.size(0);
    const int64_t ph = p.pooled_height, pw = p.pooled_width, P = ph * pw;
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    ReferenceRun run;
    run.out = at::zeros({K, C, ph, pw}, opts);
    if (backward) {
        run.gradInput = at::zeros_like(input);
        run.gradOffset = useOffset ? at::zeros_like(offset) : at::zeros(offset_.defined() ? offset_.sizes() : at::IntArrayRef{0}, opts);
        run.gradMask = p.use_mask ? at::zeros_like(mask) : at::zeros(mask_.defined() ? mask_.sizes() : at::IntArrayRef{0}, opts);
    }
    if (H * W == 0)
        return run;

    const double* in = input.const_data_ptr<double>();
    const double* rp = rois.const_data_ptr<double>();
    double* out = run.out.data_ptr<double>();
    for (int64_t k = 0; k < K; ++k) {
        for (int64_t i = 0; i < ph; ++i) {
            for (int64_t j = 0; j < pw; ++j) {
                const int64_t q = i * pw + j;
                const Bin bin =
                    binOf(rp + 5 * k, useOffset ? offset.const_data_ptr<double>() + 2 * k * P : nullptr, i, j, p);
                const double m = p.use_mask ? mask.const_data_ptr<double>()[k * P + q] : 1.0;
                for (int64_t c = 0; c < C; ++c) {
                    const double* plane = in + (bin.image * C + c) * H * W;
                    const double go = backward ? grad.const_data_ptr<double>()[(k * C + c) * P + q] : 0.0;
                    double sum = 0;
                    for (int64_t iy = 0; iy < bin.gridH; ++iy) {
                        for (int64_t ix = 0; ix < bin.gridW; ++ix) {
                            const Read r = readAt(plane, H, W, bin.y(iy), bin.x(ix));
                            sum += r.value;
                            if (!backward)
                                continue;
                            // out = m * sum / count.
                            const double g = go * m / bin.count;
                            double* gi = run.gradInput.data_ptr<double>() + (bin.image * C + c) * H * W;
                            for (int corner = 0; corner < 4; ++corner)
                                gi[r.pixel[corner]] += g * r.weight[corner];
                            if (useOffset) {
                                double* goff = run.gradOffset.data_ptr<double>() + 2 * k * P;
                                goff[q] += g * r.dx * bin.dxDoff;
                                goff[P + q] += g * r.dy * bin.dyDoff;
                            }
                        }
                    }
                    out[(k * C + c) * P + q] = m * sum / bin.count;
                    if (backward && p.use_mask)
                        run.gradMask.data_ptr<double>()[k * P + q] += go * sum / bin.count;
                }
            }
        }
    }
    return run;
}

} // namespace

at::Tensor roiPoolReferenceForward(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                                   const at::Tensor& mask, const DeformRoiPoolParams& p) {
    return runReference(input, rois, offset, mask, p, at::Tensor()).out;
}

DeformRoiPoolGrads roiPoolReferenceBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                            const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                                            const DeformRoiPoolParams& p) {
    ReferenceRun r = runReference(input, rois, offset, mask, p, grad_output);
    return {r.gradInput, r.gradOffset, r.gradMask};
}

const char* roiPlacementName(RoiPlacement placement) {
    switch (placement) {
    case RoiPlacement::Inside:
        return "inside";
    case RoiPlacement::PartlyOutside:
        return "partly-outside";
    case RoiPlacement::Mixed:
        return "mixed";
    }
    return "?";
}

DeformRoiPoolParams RoiPoolCaseSpec::defaultParams() {
    DeformRoiPoolParams p;
    p.pooled_height = 3;
    p.pooled_width = 4;
    p.spatial_scale = 0.5;
    p.sampling_ratio = 2;
    return p;
}

std::string RoiPoolCaseSpec::describe() const {
    const DeformRoiPoolParams& p = params;
    std::ostringstream s;
    s << "N" << batch << " C" << channels << " " << height << "x" << width << " K" << rois << " pooled "
      << p.pooled_height << "x" << p.pooled_width << " scale " << p.spatial_scale << " sampling " << p.sampling_ratio
      << " gamma " << p.gamma << " rois " << roiPlacementName(placement)
      << (offsets ? " offsets" : " no-offsets") << (p.use_mask ? " mask" : " no-mask");
    return s.str();
}

double roiPoolKinkDistance(const RoiPoolCaseTensors& t, const DeformRoiPoolParams& p) {
    const at::Tensor rois = cpu64(t.rois);
    const bool useOffset = takesPart(t.offset);
    const at::Tensor offset = useOffset ? cpu64(t.offset) : at::Tensor();
    const int64_t P = p.pooled_height * p.pooled_width;
    auto fromInteger = [](double v) { return std::abs(v - std::round(v)); };
    double nearest = std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < rois.size(0); ++k)
        for (int64_t i = 0; i < p.pooled_height; ++i)
            for (int64_t j = 0; j < p.pooled_width; ++j) {
                const Bin bin = binOf(rois.const_data_ptr<double>() + 5 * k,
                                      useOffset ? offset.const_data_ptr<double>() + 2 * k * P : nullptr, i, j, p);
                for (int64_t iy = 0; iy < bin.gridH; ++iy)
                    nearest = std::min(nearest, fromInteger(bin.y(iy)));
                for (int64_t ix = 0; ix < bin.gridW; ++ix)
                    nearest = std::min(nearest, fromInteger(bin.x(ix)));
            }
    return nearest;
}

namespace {

RoiPoolCaseTensors drawCase(const RoiPoolCaseSpec& spec, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    const DeformRoiPoolParams& p = spec.params;
    const int64_t K = spec.rois, H = spec.height, W = spec.width;
    const int64_t ph = p.pooled_height, pw = p.pooled_width;
    auto uniform = [&](double lo, double hi) { return at::rand({1}, gen, opts).item<double>() * (hi - lo) + lo; };

    RoiPoolCaseTensors t;
    t.input = at::randn({spec.batch, spec.channels, H, W}, gen, opts);
    // In feature-map coordinates, then divided by spatial_scale.
    std::vector<double> rois(static_cast<size_t>(5 * K));
    for (int64_t k = 0; k < K; ++k) {
        double* r = rois.data() + 5 * k;
        r[0] = std::floor(uniform(0, double(spec.batch)));
        r[0] = std::min(r[0], double(spec.batch - 1));
        double x1, y1, x2, y2;
        if (spec.placement == RoiPlacement::Inside) {
            x1 = uniform(0.5, 0.6 * W);
            y1 = uniform(0.5, 0.6 * H);
            x2 = uniform(x1 + 0.5, double(W) - 0.5);
            y2 = uniform(y1 + 0.5, double(H) - 0.5);
        } else {
            x1 = uniform(-0.5 * W, 0.9 * W);
            y1 = uniform(-0.5 * H, 0.9 * H);
            x2 = x1 + uniform(0.3, 1.2 * W);
            y2 = y1 + uniform(0.3, 1.2 * H);
        }
        if (spec.placement == RoiPlacement::Mixed && k < 3) {
            if (k == 0) { // far outside: every read is 0
                x1 = double(W) + 5;
                x2 = x1 + 4;
            } else if (k == 1) { // size 0 in x: an adaptive grid has no reads
                x2 = x1;
            } else { // reversed: an adaptive grid has no reads, a fixed one reads mirrored positions
                std::swap(x1, x2);
                std::swap(y1, y2);
            }
        }
        const double s = p.spatial_scale;
        r[1] = (x1 + 0.5) / s;
        r[2] = (y1 + 0.5) / s;
        r[3] = (x2 + 0.5) / s;
        r[4] = (y2 + 0.5) / s;
    }
    t.rois = at::from_blob(rois.data(), {K, 5}, opts).clone();
    t.offset = spec.offsets ? at::randn({K, 2, ph, pw}, gen, opts) * spec.offset_scale : at::empty({0}, opts);
    t.mask = p.use_mask ? at::rand({K, 1, ph, pw}, gen, opts) * 2.0 - 0.5 : at::empty({0}, opts);
    return t;
}

} // namespace

RoiPoolCaseTensors makeRoiPoolCase(const RoiPoolCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                   const at::Device& device) {
    RoiPoolCaseTensors t = drawCase(spec, seed);
    if (spec.awayFromKinks) {
        for (uint64_t attempt = 1; roiPoolKinkDistance(t, spec.params) < 1e-4; ++attempt) {
            TORCH_CHECK(attempt < 1000, "makeRoiPoolCase: no draw keeps every read away from the kinks for ",
                        spec.describe());
            t = drawCase(spec, seed + 7919 * attempt);
        }
    }
    auto to = [&](const at::Tensor& x) { return x.to(device, dtype).contiguous(); };
    return {to(t.input), to(t.rois), to(t.offset), to(t.mask)};
}

} // namespace deformscope::ops::checks
