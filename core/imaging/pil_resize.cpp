// Pillow's bicubic resampling (libImaging/Resample.c's algorithm, re-derived from its
// documented behaviour: support 2 scaled by the shrink factor, coefficients normalised
// per output pixel then rounded to fixed point with 22 fractional bits, every pass
// rounded and clipped to 8 bits) and torchvision's ToTensor/Normalize arithmetic.
#include "core/imaging/pil_resize.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace deformscope::imaging {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double cubic(double x) {
    constexpr double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

// One axis: for each output index its first input index, its tap count and
// ksize fixed-point weights.
struct Taps {
    int ksize = 0;
    std::vector<int> first, count;
    std::vector<int32_t> weights; // [out, ksize]
};

Taps taps(int inSize, int outSize) {
    // Pillow works with a float box (0, inSize) and double arithmetic from there.
    const float in0 = 0.0f, in1 = float(inSize);
    const double scale = double(in1 - in0) / outSize;
    const double filterScale = std::max(scale, 1.0);
    const double support = 2.0 * filterScale;
    Taps t;
    t.ksize = int(std::ceil(support)) * 2 + 1;
    t.first.resize(size_t(outSize));
    t.count.resize(size_t(outSize));
    t.weights.assign(size_t(outSize) * size_t(t.ksize), 0);
    std::vector<double> k(size_t(t.ksize));
    for (int xx = 0; xx < outSize; ++xx) {
        const double centre = in0 + (xx + 0.5) * scale;
        const double ss = 1.0 / filterScale;
        int xmin = int(centre - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = int(centre + support + 0.5);
        if (xmax > inSize)
            xmax = inSize;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            k[size_t(x)] = cubic((x + xmin - centre + 0.5) * ss);
            ww += k[size_t(x)];
        }
        for (int x = 0; x < t.ksize; ++x) {
            double w = x < xmax ? k[size_t(x)] : 0.0;
            if (x < xmax && ww != 0.0)
                w /= ww;
            t.weights[size_t(xx) * size_t(t.ksize) + size_t(x)] =
                int32_t(w < 0 ? -0.5 + w * (1 << kPrecisionBits) : 0.5 + w * (1 << kPrecisionBits));
        }
        t.first[size_t(xx)] = xmin;
        t.count[size_t(xx)] = xmax;
    }
    return t;
}

uint8_t clip8(int32_t v) {
    return uint8_t(std::clamp(v >> kPrecisionBits, 0, 255)); // arithmetic shift, as Pillow's lookup table
}

void checkRgb(const at::Tensor& t, const char* what) {
    if (!t.defined() || t.dim() != 3 || t.size(2) != 3 || t.scalar_type() != at::kByte || t.size(0) < 1 ||
        t.size(1) < 1)
        throw std::invalid_argument(std::string(what) + ": expected a [H, W, 3] uint8 RGB image, got " +
                                    (t.defined() ? c10::str(t.sizes(), " ", t.scalar_type()) : std::string("none")));
}

} // namespace

at::Tensor resizeBicubicLikePil(const at::Tensor& rgbHwcUint8, InputSize size) {
    checkRgb(rgbHwcUint8, "resizeBicubicLikePil");
    if (size[0] < 1 || size[1] < 1)
        throw std::invalid_argument("resizeBicubicLikePil: the size must be positive, got " + std::to_string(size[0]) +
                                    " x " + std::to_string(size[1]));
    const at::Tensor in = rgbHwcUint8.to(at::kCPU).contiguous();
    const int inH = int(in.size(0)), inW = int(in.size(1));
    const int outH = int(size[0]), outW = int(size[1]);
    const uint8_t* src = in.data_ptr<uint8_t>();
    const Taps th = taps(inW, outW), tv = taps(inH, outH);
    // The rows the vertical pass will read (Pillow resamples only those horizontally).
    const bool needH = outW != inW, needV = outH != inH;
    const int rowFirst = needV ? tv.first.front() : 0;
    const int rowLast = needV ? tv.first.back() + tv.count.back() : inH;
    std::vector<uint8_t> mid;
    int midW = inW, midRow0 = 0;
    const uint8_t* rows = src;
    if (needH) {
        mid.resize(size_t(rowLast - rowFirst) * size_t(outW) * 3);
        for (int y = rowFirst; y < rowLast; ++y)
            for (int xx = 0; xx < outW; ++xx) {
                const int32_t* k = &th.weights[size_t(xx) * size_t(th.ksize)];
                int32_t s[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
                for (int x = 0; x < th.count[size_t(xx)]; ++x) {
                    const uint8_t* p = src + (size_t(y) * size_t(inW) + size_t(x + th.first[size_t(xx)])) * 3;
                    for (int c = 0; c < 3; ++c)
                        s[c] += int32_t(p[c]) * k[x];
                }
                uint8_t* o = &mid[(size_t(y - rowFirst) * size_t(outW) + size_t(xx)) * 3];
                for (int c = 0; c < 3; ++c)
                    o[c] = clip8(s[c]);
            }
        rows = mid.data();
        midW = outW;
        midRow0 = rowFirst;
    }
    at::Tensor out = at::empty({outH, outW, 3}, at::kByte);
    uint8_t* dst = out.data_ptr<uint8_t>();
    if (!needV) {
        std::copy(rows, rows + size_t(outH) * size_t(outW) * 3, dst);
        return out;
    }
    for (int yy = 0; yy < outH; ++yy) {
        const int32_t* k = &tv.weights[size_t(yy) * size_t(tv.ksize)];
        for (int xx = 0; xx < outW; ++xx) {
            int32_t s[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
            for (int y = 0; y < tv.count[size_t(yy)]; ++y) {
                const uint8_t* p =
                    rows + (size_t(y + tv.first[size_t(yy)] - midRow0) * size_t(midW) + size_t(xx)) * 3;
                for (int c = 0; c < 3; ++c)
                    s[c] += int32_t(p[c]) * k[y];
            }
            uint8_t* o = dst + (size_t(yy) * size_t(outW) + size_t(xx)) * 3;
            for (int c = 0; c < 3; ++c)
                o[c] = clip8(s[c]);
        }
    }
    return out;
}

at::Tensor toTensorLikeTorchvision(const at::Tensor& rgbHwcUint8, const Normalization& norm) {
    checkRgb(rgbHwcUint8, "toTensorLikeTorchvision");
    for (double s : norm.std)
        if (s == 0)
            throw std::invalid_argument("toTensorLikeTorchvision: a std of 0");
    // ToTensor: float32 division by 255; Normalize: float32 mean and std tensors, sub_ then div_.
    at::Tensor x = rgbHwcUint8.to(at::kCPU).permute({2, 0, 1}).to(at::kFloat).div(255);
    const at::Tensor mean = at::tensor({float(norm.mean[0]), float(norm.mean[1]), float(norm.mean[2])}).view({3, 1, 1});
    const at::Tensor std = at::tensor({float(norm.std[0]), float(norm.std[1]), float(norm.std[2])}).view({3, 1, 1});
    x = x.sub(mean).div(std);
    if (norm.bgr)
        x = x.flip(0);
    return x.unsqueeze(0).contiguous();
}

InputImage loadImageLikeTorchvision(const std::string& path, InputSize size, const Normalization& norm) {
    InputImage image = loadImage(path, std::nullopt, norm);
    const at::Tensor resized = resizeBicubicLikePil(image.rgb, size);
    image.tensor = toTensorLikeTorchvision(resized, norm);
    image.height = size[0];
    image.width = size[1];
    return image;
}

} // namespace deformscope::imaging
