// Image files <-> tensors, and the project's one convention for model input.
//
// A model sees an image as RGB, float32 scaled to [0, 1], then (x - mean) / std
// per channel, laid out NCHW, resized to the model's input size when it has one.
// loadImage() and fromRgb() are the only places that apply this convention;
// writeImage() and readMask() move display images and class maps to and from
// files. All functions are thread-safe (they share no state) and work on CPU
// tensors; every tensor they return owns its memory. Failures about a file throw
// std::runtime_error "<path>: <problem>"; arguments that break a documented
// precondition throw std::invalid_argument.
//
// This header deliberately includes no OpenCV: OpenCV is a private dependency of
// core_imaging.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace deformscope::imaging {

// Per-channel normalisation of a model's input. mean and std are always given in
// RGB order (as model cards and torchvision write them), also when bgr is set.
struct Normalization {
    std::array<double, 3> mean{0.485, 0.456, 0.406}; // ImageNet defaults, RGB order
    std::array<double, 3> std{0.229, 0.224, 0.225};  // ImageNet defaults, RGB order; must be non-zero
    bool bgr = false; // the model expects channel 0 = blue (e.g. Caffe-era weights)
};

// An image prepared for a model, plus what is needed to draw on the original.
struct InputImage {
    // [1, 3, height, width] float32, normalised, contiguous, CPU; owns its data.
    // Channel order is RGB, or BGR when Normalization::bgr was set.
    at::Tensor tensor;
    // [originalHeight, originalWidth, 3] uint8 RGB of the original (not resized)
    // image, contiguous, CPU; owns its data. For display and figures.
    at::Tensor rgb;
    int64_t originalHeight = 0; // H0
    int64_t originalWidth = 0;  // W0
    int64_t height = 0;         // H of `tensor`
    int64_t width = 0;          // W of `tensor`
};

// {height, width} the model wants. Note the order: (H, W) as in tensors, not
// cv::Size's (width, height).
using InputSize = std::array<int64_t, 2>;

// Loads an image file (whatever OpenCV 4 reads: PNG, JPEG, BMP, TIFF, WebP, ...)
// and prepares it for a model. 8-bit values are divided by 255, 16-bit values by
// 65535, float images are taken as already in [0, 1]; grey becomes three equal
// channels, alpha is dropped (not composited), the EXIF orientation of a JPEG is
// applied. With inputSize the image is resized to it: INTER_AREA when neither side
// grows, INTER_LINEAR otherwise, in float32 after scaling to [0, 1]; an image
// already of that size is not resampled. Normalisation is computed in double and
// rounded once to float32, so a pixel v of an 8-bit image becomes exactly
// float((v / 255.0 - mean[c]) / std[c]) when no resize happens.
// Throws std::runtime_error "<path>: does not exist" / "is a directory, not an
// image" / "is empty (0 bytes)" / "cannot be opened (<reason>)" / "is not an image
// OpenCV can read" / "has an unsupported pixel type (<type>)"; std::invalid_argument
// when inputSize has a side <= 0 or a std is 0.
InputImage loadImage(const std::string& path, std::optional<InputSize> inputSize = std::nullopt,
                     const Normalization& norm = {});

// The same pipeline for an image already in memory: rgbHwcUint8 is [H, W, 3] uint8
// RGB on any device, any strides. The input is only read; the result's `rgb` is a
// copy of it (it does not alias the argument). Throws std::invalid_argument for a
// tensor of another shape or dtype, an empty image, or the cases loadImage names.
InputImage fromRgb(const at::Tensor& rgbHwcUint8, std::optional<InputSize> inputSize = std::nullopt,
                   const Normalization& norm = {});

// Map a point between the original image's pixel coordinates and the input
// tensor's, both as {x, y} (column, row; continuous, pixel centres at integers):
//   x_in = (x + 0.5) * width / originalWidth - 0.5, likewise y with heights.
// This is the convention of OpenCV's and PyTorch's (align_corners=False) resize,
// so image edges map to edges (-0.5 -> -0.5, W0 - 0.5 -> W - 0.5). The two are
// exact inverses up to rounding. Throw std::invalid_argument for an InputImage
// with a zero size.
std::array<double, 2> originalToInput(const InputImage& image, double x, double y);
std::array<double, 2> inputToOriginal(const InputImage& image, double x, double y);

// Writes an image, the format chosen by the extension (.png, .jpg/.jpeg, .bmp,
// .tif/.tiff, .webp; case-insensitive). Accepts, on any device and any strides:
//   [H, W, 3] uint8  RGB;
//   [H, W]    uint8  grey;
//   [H, W]    another integer type or bool: a class map, written as 8-bit grey;
//             its values must lie in 0..255, and its format must be lossless
//             (not .jpg/.jpeg/.webp).
// Atomic: the file is encoded in memory, written next to the target under a
// temporary name and renamed over it, so readers never see a partial file and a
// failed write leaves an existing file untouched. Throws std::runtime_error
// "<path>: <problem>" (unsupported extension or tensor, value out of range,
// folder does not exist, cannot create or replace the file).
void writeImage(const std::string& path, const at::Tensor& image);

// Reads a class map / mask: a grey 8- or 16-bit image (or a colour image whose
// three channels are equal everywhere) as [H, W] int64 ids, the grey values
// unchanged; CPU, owns its data. Throws like loadImage, and "<path>: is a colour
// image, not a class map (grey values as ids)" for a colour image.
at::Tensor readMask(const std::string& path);

// ---- several frames (models with several inputs) ----------------------------------

// Frames laid side by side on one canvas (frames.cpp): tensor [1, 3, H, I·W],
// rgb [H0, I·W0, 3], sizes the canvas's, so originalToInput/inputToOriginal map
// canvas points. Throws std::runtime_error "<name>: the frame is W x H but <first
// name> is ..." when the frames' sizes differ (`names`: one per frame, for messages).
InputImage sideBySide(const std::vector<InputImage>& frames, const std::vector<std::string>& names = {});
// loadImage of each path, side by side.
InputImage loadFrames(const std::vector<std::string>& paths, std::optional<InputSize> inputSize = std::nullopt,
                      const Normalization& norm = {});
// Frames `numbers` (counted from 0) of a video OpenCV can read, as [H, W, 3] uint8
// RGB, in the order asked; `frameCount` (if given) receives the video's length.
// Throws std::runtime_error "<path>: frame N is past the end of the video (it has
// M frames, 0 to M-1)", "<path>: is not a video OpenCV can read", ...
std::vector<at::Tensor> readVideoFrames(const std::string& path, const std::vector<int64_t>& numbers,
                                        int64_t* frameCount = nullptr);
// readVideoFrames, prepared (fromRgb) and side by side.
InputImage loadVideoFrames(const std::string& path, const std::vector<int64_t>& numbers,
                           std::optional<InputSize> inputSize = std::nullopt, const Normalization& norm = {});

// Dense optical flow from frame A to frame B ([H, W, 3] uint8 RGB each, one size):
// [2, H, W] float32 (dx, dy), A(x) ≈ B(x + flow(x)). DIS (medium preset) or Farnebäck.
enum class FlowMethod { Dis, Farneback };
at::Tensor opticalFlow(const at::Tensor& rgbA, const at::Tensor& rgbB, FlowMethod method = FlowMethod::Dis);

} // namespace deformscope::imaging
