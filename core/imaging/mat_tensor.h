// The one boundary between cv::Mat and at::Tensor in the project.
//
// Internal to core_imaging: it needs OpenCV headers, which users of core_imaging
// do not have; include it only from .cpp files in this folder. Each function says
// whether its result owns its memory or aliases its argument's.
#pragma once

#include <ATen/core/Tensor.h>

#include <opencv2/core/mat.hpp>

namespace deformscope::imaging::detail {

// Copies `mat` (any number of channels, continuous or not, e.g. a crop) into a new
// CPU tensor [rows, cols, channels] that OWNS its data; the Mat may be released
// afterwards. Depths: CV_8U -> uint8, CV_8S -> int8, CV_16S -> int16,
// CV_32S -> int32, CV_32F -> float32, CV_64F -> float64. Throws
// std::invalid_argument for other depths (CV_16U, CV_16F: convert first).
at::Tensor copyToTensor(const cv::Mat& mat);

// A cv::Mat header over the memory of `tensor`, [H, W] or [H, W, C] (C <= 4),
// CPU and contiguous, of one of the dtypes above. ALIASES: nothing is copied, the
// Mat is valid only while `tensor`'s storage lives, and writes go through to the
// tensor. Throws std::invalid_argument for other tensors (call .contiguous() /
// .cpu() first).
cv::Mat aliasAsMat(const at::Tensor& tensor);

} // namespace deformscope::imaging::detail
