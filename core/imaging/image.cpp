#include "core/imaging/image.h"
#include "core/common/atomic_file.h"

#include "core/imaging/mat_tensor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace deformscope::imaging {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
    throw std::runtime_error(path + ": " + problem);
}

std::string shapeString(const at::Tensor& t) {
    std::ostringstream s;
    s << t.sizes();
    return s.str();
}

// OpenCV reports every failure to read as an empty Mat; these checks come first so
// that the message says which failure it was.
void checkReadableFile(const std::string& path) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (status.type() == fs::file_type::not_found)
        fail(path, "does not exist");
    if (ec)
        fail(path, "cannot be opened (" + ec.message() + ")");
    if (status.type() == fs::file_type::directory)
        fail(path, "is a directory, not an image");
    if (status.type() == fs::file_type::regular && fs::file_size(path, ec) == 0 && !ec)
        fail(path, "is empty (0 bytes)");
    std::ifstream probe(path, std::ios::binary);
    if (!probe) {
        const int err = errno;
        fail(path, "cannot be opened (" + std::error_code(err, std::generic_category()).message() + ")");
    }
}

// Decodes with OpenCV: BGR(A) or grey, at the file's depth.
cv::Mat decode(const std::string& path, int flags) {
    checkReadableFile(path);
    cv::Mat mat;
    try {
        mat = cv::imread(path, flags);
    } catch (const cv::Exception& e) {
        fail(path, "is not an image OpenCV can read (" + e.err + ")");
    }
    if (mat.empty())
        fail(path, "is not an image OpenCV can read");
    return mat;
}

// Grey, grey + alpha, BGR or BGRA at 8U/16U/32F/64F -> three-channel RGB at
// 8U/16U/32F (64F becomes 32F: cvtColor has no 64F). Alpha is dropped, not composited.
cv::Mat toRgb(const std::string& path, cv::Mat decoded) {
    const int depth = decoded.depth();
    if (depth == CV_64F)
        decoded.convertTo(decoded, CV_32F);
    else if (depth != CV_8U && depth != CV_16U && depth != CV_32F)
        fail(path, "has an unsupported pixel type (" + cv::typeToString(decoded.type()) + ")");
    cv::Mat rgb;
    switch (decoded.channels()) {
    case 1:
        cv::cvtColor(decoded, rgb, cv::COLOR_GRAY2RGB);
        break;
    case 2: { // grey + alpha
        cv::Mat grey;
        cv::extractChannel(decoded, grey, 0);
        cv::cvtColor(grey, rgb, cv::COLOR_GRAY2RGB);
        break;
    }
    case 3:
        cv::cvtColor(decoded, rgb, cv::COLOR_BGR2RGB);
        break;
    case 4:
        cv::cvtColor(decoded, rgb, cv::COLOR_BGRA2RGB);
        break;
    default:
        fail(path, "has an unsupported pixel type (" + cv::typeToString(decoded.type()) + ")");
    }
    return rgb;
}

// The value that maps to 1.0 for a depth: 8-bit 255, 16-bit 65535, float 1.
double fullScale(int depth) {
    return depth == CV_8U ? 255.0 : depth == CV_16U ? 65535.0 : 1.0;
}

void checkArguments(const std::optional<InputSize>& inputSize, const Normalization& norm) {
    if (inputSize) {
        const auto [h, w] = *inputSize;
        if (h <= 0 || w <= 0 || h > INT_MAX || w > INT_MAX)
            throw std::invalid_argument("inputSize must be positive {height, width}, got {" + std::to_string(h) +
                                        ", " + std::to_string(w) + "}");
    }
    for (int c = 0; c < 3; ++c)
        if (!std::isfinite(norm.mean[c]) || !std::isfinite(norm.std[c]) || norm.std[c] == 0.0)
            throw std::invalid_argument("Normalization: mean must be finite and std finite and non-zero (channel " +
                                        std::to_string(c) + ")");
}

// hwc: [H, W, 3] RGB, uint8 / int32 / float32, contiguous CPU. Returns a new
// [1, 3, H, W] float32 tensor: float((v / divisor - mean[s]) / std[s]), in double
// and rounded once, where s is the RGB channel that output channel c shows.
at::Tensor normalise(const at::Tensor& hwc, double divisor, const Normalization& norm) {
    const int64_t height = hwc.size(0), width = hwc.size(1);
    at::Tensor out = at::empty({1, 3, height, width}, at::TensorOptions().dtype(at::kFloat));
    float* dst = out.data_ptr<float>();
    auto run = [&](const auto* src) {
        at::parallel_for(0, height, 16, [&](int64_t begin, int64_t end) {
            for (int64_t c = 0; c < 3; ++c) {
                const int64_t s = norm.bgr ? 2 - c : c; // mean/std are in RGB order
                const double mean = norm.mean[s], stdDev = norm.std[s];
                for (int64_t y = begin; y < end; ++y) {
                    float* row = dst + (c * height + y) * width;
                    for (int64_t x = 0; x < width; ++x) {
                        const double v = static_cast<double>(src[(y * width + x) * 3 + s]) / divisor;
                        row[x] = static_cast<float>((v - mean) / stdDev);
                    }
                }
            }
        });
    };
    switch (hwc.scalar_type()) {
    case at::kByte: run(hwc.data_ptr<uint8_t>()); break;
    case at::kInt: run(hwc.data_ptr<int32_t>()); break;
    case at::kFloat: run(hwc.data_ptr<float>()); break;
    default: throw std::logic_error("normalise: unexpected dtype");
    }
    return out;
}

// The pipeline shared by loadImage and fromRgb. rgb: three-channel RGB Mat at
// 8U/16U/32F; rgb8: the owned [H0, W0, 3] uint8 display copy of it.
InputImage prepare(const cv::Mat& rgb, at::Tensor rgb8, const std::optional<InputSize>& inputSize,
                   const Normalization& norm) {
    InputImage result;
    result.originalHeight = rgb.rows;
    result.originalWidth = rgb.cols;
    result.height = inputSize ? (*inputSize)[0] : rgb.rows;
    result.width = inputSize ? (*inputSize)[1] : rgb.cols;
    const double scale = fullScale(rgb.depth());

    at::Tensor source; // [H, W, 3], owned, what normalise() reads
    double divisor = 1.0;
    if (result.height != result.originalHeight || result.width != result.originalWidth) {
        // Resample in float32 after scaling to [0, 1]: no extra rounding to 8 bits.
        cv::Mat unit, resized;
        rgb.convertTo(unit, CV_32F, 1.0 / scale);
        const bool shrinking = result.height <= result.originalHeight && result.width <= result.originalWidth;
        // cv::Size is (width, height).
        cv::resize(unit, resized, cv::Size(static_cast<int>(result.width), static_cast<int>(result.height)), 0, 0,
                   shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
        source = detail::copyToTensor(resized);
    } else if (rgb.depth() == CV_8U) {
        source = rgb8; // the same pixels; normalise() only reads them
        divisor = scale;
    } else if (rgb.depth() == CV_16U) {
        cv::Mat wide; // int32 holds every 16-bit value exactly; the tensor side has no uint16 kernels to rely on
        rgb.convertTo(wide, CV_32S);
        source = detail::copyToTensor(wide);
        divisor = scale;
    } else {
        source = detail::copyToTensor(rgb); // float32, already in [0, 1]
    }
    result.tensor = normalise(source, divisor, norm);
    result.rgb = std::move(rgb8);
    return result;
}

std::string lowerExtension(const std::string& path) {
    std::string ext = fs::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return ext;
}

void checkSizes(const InputImage& image) {
    if (image.originalHeight <= 0 || image.originalWidth <= 0 || image.height <= 0 || image.width <= 0)
        throw std::invalid_argument("coordinate mapping: the InputImage has a zero size");
}

} // namespace

InputImage loadImage(const std::string& path, std::optional<InputSize> inputSize, const Normalization& norm) {
    checkArguments(inputSize, norm);
    // ANYDEPTH keeps 16-bit and float; ANYCOLOR keeps grey as grey. Unlike
    // IMREAD_UNCHANGED these flags apply the EXIF orientation, as viewers do.
    const cv::Mat rgb = toRgb(path, decode(path, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR));
    cv::Mat rgb8 = rgb;
    if (rgb.depth() != CV_8U)
        rgb.convertTo(rgb8, CV_8U, 255.0 / fullScale(rgb.depth())); // rounds and saturates
    try {
        return prepare(rgb, detail::copyToTensor(rgb8), inputSize, norm);
    } catch (const cv::Exception& e) { // e.g. out of memory in resize
        fail(path, "could not be prepared (" + e.err + ")");
    }
}

InputImage fromRgb(const at::Tensor& rgbHwcUint8, std::optional<InputSize> inputSize, const Normalization& norm) {
    checkArguments(inputSize, norm);
    const at::Tensor& in = rgbHwcUint8;
    if (!in.defined() || in.dim() != 3 || in.size(2) != 3 || in.scalar_type() != at::kByte)
        throw std::invalid_argument("fromRgb: expected a [H, W, 3] uint8 RGB tensor, got " +
                                    (in.defined() ? std::string(c10::toString(in.scalar_type())) + " " + shapeString(in)
                                                  : std::string("an undefined tensor")));
    if (in.size(0) == 0 || in.size(1) == 0 || in.size(0) > INT_MAX || in.size(1) > INT_MAX)
        throw std::invalid_argument("fromRgb: unsupported image size " + shapeString(in));
    // clone() always copies, so the result never aliases the caller's tensor.
    at::Tensor owned = in.to(at::kCPU).clone(at::MemoryFormat::Contiguous);
    const cv::Mat rgb = detail::aliasAsMat(owned); // aliases `owned`, which `prepare` keeps alive
    return prepare(rgb, owned, inputSize, norm);
}

std::array<double, 2> originalToInput(const InputImage& image, double x, double y) {
    checkSizes(image);
    return {(x + 0.5) * static_cast<double>(image.width) / static_cast<double>(image.originalWidth) - 0.5,
            (y + 0.5) * static_cast<double>(image.height) / static_cast<double>(image.originalHeight) - 0.5};
}

std::array<double, 2> inputToOriginal(const InputImage& image, double x, double y) {
    checkSizes(image);
    return {(x + 0.5) * static_cast<double>(image.originalWidth) / static_cast<double>(image.width) - 0.5,
            (y + 0.5) * static_cast<double>(image.originalHeight) / static_cast<double>(image.height) - 0.5};
}

void writeImage(const std::string& path, const at::Tensor& image) {
    const std::string ext = lowerExtension(path);
    const bool lossless = ext == ".png" || ext == ".bmp" || ext == ".tif" || ext == ".tiff";
    const bool lossy = ext == ".jpg" || ext == ".jpeg" || ext == ".webp";
    if (!lossless && !lossy)
        fail(path, "unsupported extension \"" + ext + "\" (use .png, .jpg, .jpeg, .bmp, .tif, .tiff or .webp)");
    if (!image.defined())
        fail(path, "no image to write (undefined tensor)");

    at::Tensor t = image.to(at::kCPU).contiguous(); // may alias `image`; only read
    const bool rgb = t.dim() == 3 && t.size(2) == 3 && t.scalar_type() == at::kByte;
    const bool grey = t.dim() == 2 && t.scalar_type() == at::kByte;
    const bool classMap = t.dim() == 2 && !grey && at::isIntegralType(t.scalar_type(), /*includeBool=*/true);
    if (!rgb && !grey && !classMap)
        fail(path, std::string("cannot write a ") + c10::toString(t.scalar_type()) + " tensor of shape " +
                       shapeString(t) + "; expected [H, W, 3] uint8 RGB, [H, W] uint8 grey or an integer [H, W] class map");
    if (t.size(0) == 0 || t.size(1) == 0 || t.size(0) > INT_MAX || t.size(1) > INT_MAX)
        fail(path, "cannot write an image of shape " + shapeString(t));
    if (classMap) {
        if (lossy)
            fail(path, "a class map needs a lossless format (.png, .bmp, .tif), not " + ext);
        const at::Tensor ids = t.to(at::kLong);
        const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
        if (lo < 0 || hi > 255)
            fail(path, "class map values must lie in 0..255 to be written as 8-bit grey, found " + std::to_string(lo) +
                           ".." + std::to_string(hi));
        t = ids.to(at::kByte);
    }

    std::vector<uchar> bytes;
    try {
        // Aliases `t`, which may alias the caller's tensor: only read from it.
        cv::Mat mat = detail::aliasAsMat(t);
        if (rgb) {
            cv::Mat bgr; // a new buffer; cvtColor in place would write into the caller's tensor
            cv::cvtColor(mat, bgr, cv::COLOR_RGB2BGR);
            mat = bgr;
        }
        if (!cv::imencode(ext, mat, bytes))
            fail(path, "OpenCV could not encode the image as " + ext);
    } catch (const cv::Exception& e) {
        fail(path, "OpenCV could not encode the image as " + ext + " (" + e.err + ")");
    }
    common::writeFileAtomically(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

at::Tensor readMask(const std::string& path) {
    // The same flags as loadImage, so a mask is oriented like its image.
    cv::Mat mat = decode(path, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
    if (mat.depth() != CV_8U && mat.depth() != CV_16U)
        fail(path, "has an unsupported pixel type for a class map (" + cv::typeToString(mat.type()) +
                       "); expected 8- or 16-bit grey");
    cv::Mat ids;
    if (mat.channels() <= 2) { // grey, or grey + alpha
        cv::extractChannel(mat, ids, 0);
    } else {
        cv::Mat b, g, r;
        cv::extractChannel(mat, b, 0);
        cv::extractChannel(mat, g, 1);
        cv::extractChannel(mat, r, 2);
        if (cv::norm(b, g, cv::NORM_INF) != 0 || cv::norm(g, r, cv::NORM_INF) != 0)
            fail(path, "is a colour image, not a class map (grey values as ids)");
        ids = b;
    }
    cv::Mat wide;
    ids.convertTo(wide, CV_32S); // exact for 8- and 16-bit
    return detail::copyToTensor(wide).squeeze(2).to(at::kLong);
}

} // namespace deformscope::imaging
