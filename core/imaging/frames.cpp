// Several frames for a model with several inputs: image files or video frames,
// prepared one by one (image.cpp's pipeline) and laid side by side on one canvas;
// and the optical flow between two frames (OpenCV's DIS and Farnebäck).
#include "core/imaging/image.h"
#include "core/imaging/mat_tensor.h"

#include <ATen/ATen.h>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>
#include <opencv2/videoio.hpp>

#include <filesystem>
#include <map>
#include <stdexcept>

namespace deformscope::imaging {
namespace {

std::string sizeText(int64_t w, int64_t h) { return std::to_string(w) + " x " + std::to_string(h); }

} // namespace

InputImage sideBySide(const std::vector<InputImage>& frames, const std::vector<std::string>& names) {
    if (frames.empty())
        throw std::invalid_argument("sideBySide: no frames");
    const InputImage& first = frames.front();
    for (size_t i = 1; i < frames.size(); ++i)
        if (frames[i].originalHeight != first.originalHeight || frames[i].originalWidth != first.originalWidth)
            throw std::runtime_error(
                (i < names.size() ? names[i] : "frame " + std::to_string(i)) + ": the frame is " +
                sizeText(frames[i].originalWidth, frames[i].originalHeight) + " but " +
                (names.empty() ? std::string("frame 0") : names[0]) + " is " +
                sizeText(first.originalWidth, first.originalHeight) + ": the frames of a model's inputs must have one size");
    if (frames.size() == 1)
        return first;
    std::vector<at::Tensor> tensors, rgbs;
    for (const InputImage& f : frames) {
        tensors.push_back(f.tensor);
        rgbs.push_back(f.rgb);
    }
    InputImage canvas;
    canvas.tensor = at::cat(tensors, 3).contiguous();
    canvas.rgb = at::cat(rgbs, 1).contiguous();
    canvas.originalHeight = first.originalHeight;
    canvas.originalWidth = first.originalWidth * int64_t(frames.size());
    canvas.height = first.height;
    canvas.width = first.width * int64_t(frames.size());
    return canvas;
}

InputImage loadFrames(const std::vector<std::string>& paths, std::optional<InputSize> inputSize, const Normalization& norm) {
    std::vector<InputImage> frames;
    for (const std::string& p : paths)
        frames.push_back(loadImage(p, inputSize, norm));
    return sideBySide(frames, paths);
}

std::vector<at::Tensor> readVideoFrames(const std::string& path, const std::vector<int64_t>& numbers,
                                        int64_t* frameCount) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw std::runtime_error(path + ": does not exist");
    if (std::filesystem::is_directory(path, ec))
        throw std::runtime_error(path + ": is a directory, not a video");
    cv::VideoCapture video(path);
    if (!video.isOpened())
        throw std::runtime_error(path + ": is not a video OpenCV can read");
    int64_t last = 0;
    for (int64_t n : numbers) {
        if (n < 0)
            throw std::runtime_error(path + ": frame " + std::to_string(n) + " does not exist (frames count from 0)");
        last = std::max(last, n);
    }
    // Frames are read in order (seeking is unreliable in many codecs); the count
    // is the frames actually decoded, not the container's claim.
    std::map<int64_t, at::Tensor> wanted;
    for (int64_t n : numbers)
        wanted[n] = at::Tensor();
    cv::Mat bgr, rgb;
    int64_t index = 0;
    while (index <= last && video.read(bgr)) {
        if (wanted.count(index)) {
            cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
            wanted[index] = detail::copyToTensor(rgb);
        }
        ++index;
    }
    if (frameCount) {
        while (video.grab())
            ++index;
        *frameCount = index;
    }
    if (last >= index) {
        // Count the rest, to say how long the video is.
        int64_t total = index;
        while (video.grab())
            ++total;
        throw std::runtime_error(path + ": frame " + std::to_string(last) + " is past the end of the video (it has " +
                                 std::to_string(total) + " frames, 0 to " + std::to_string(total - 1) + ")");
    }
    std::vector<at::Tensor> out;
    for (int64_t n : numbers)
        out.push_back(wanted[n]);
    return out;
}

InputImage loadVideoFrames(const std::string& path, const std::vector<int64_t>& numbers,
                           std::optional<InputSize> inputSize, const Normalization& norm) {
    std::vector<InputImage> frames;
    std::vector<std::string> names;
    for (const at::Tensor& rgb : readVideoFrames(path, numbers))
        frames.push_back(fromRgb(rgb, inputSize, norm));
    for (int64_t n : numbers)
        names.push_back(path + " frame " + std::to_string(n));
    return sideBySide(frames, names);
}

at::Tensor opticalFlow(const at::Tensor& rgbA, const at::Tensor& rgbB, FlowMethod method) {
    if (rgbA.dim() != 3 || rgbA.sizes() != rgbB.sizes() || rgbA.size(2) != 3 || rgbA.scalar_type() != at::kByte ||
        rgbB.scalar_type() != at::kByte)
        throw std::invalid_argument("opticalFlow: expected two [H, W, 3] uint8 RGB images of one size");
    const at::Tensor a = rgbA.to(at::kCPU).contiguous(), b = rgbB.to(at::kCPU).contiguous();
    cv::Mat greyA, greyB, flow;
    cv::cvtColor(detail::aliasAsMat(a), greyA, cv::COLOR_RGB2GRAY);
    cv::cvtColor(detail::aliasAsMat(b), greyB, cv::COLOR_RGB2GRAY);
    if (method == FlowMethod::Dis) {
        cv::Ptr<cv::DISOpticalFlow> dis = cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_MEDIUM);
        dis->calc(greyA, greyB, flow);
    } else {
        cv::calcOpticalFlowFarneback(greyA, greyB, flow, 0.5, 3, 15, 3, 5, 1.2, 0);
    }
    // [H, W, 2] (dx, dy) -> [2, H, W]
    return detail::copyToTensor(flow).permute({2, 0, 1}).contiguous();
}

} // namespace deformscope::imaging
