#include "core/imaging/mat_tensor.h"

#include <ATen/ATen.h>

#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>

namespace deformscope::imaging::detail {

namespace {

at::ScalarType dtypeOfDepth(int depth) {
    switch (depth) {
    case CV_8U: return at::kByte;
    case CV_8S: return at::kChar;
    case CV_16S: return at::kShort;
    case CV_32S: return at::kInt;
    case CV_32F: return at::kFloat;
    case CV_64F: return at::kDouble;
    default:
        throw std::invalid_argument("copyToTensor: no tensor dtype for OpenCV depth " + std::to_string(depth));
    }
}

int depthOfDtype(at::ScalarType dtype) {
    switch (dtype) {
    case at::kByte: return CV_8U;
    case at::kChar: return CV_8S;
    case at::kShort: return CV_16S;
    case at::kInt: return CV_32S;
    case at::kFloat: return CV_32F;
    case at::kDouble: return CV_64F;
    default:
        throw std::invalid_argument(std::string("aliasAsMat: no OpenCV depth for dtype ") + c10::toString(dtype));
    }
}

} // namespace

at::Tensor copyToTensor(const cv::Mat& mat) {
    if (mat.dims != 2)
        throw std::invalid_argument("copyToTensor: expected a 2-D Mat, got " + std::to_string(mat.dims) + " dims");
    const at::ScalarType dtype = dtypeOfDepth(mat.depth());
    at::Tensor out = at::empty({mat.rows, mat.cols, mat.channels()}, at::TensorOptions().dtype(dtype));
    // Row by row: a crop (ROI) of a larger Mat is not continuous.
    const size_t rowBytes = mat.cols * mat.elemSize();
    auto* dst = static_cast<unsigned char*>(out.data_ptr());
    for (int r = 0; r < mat.rows; ++r)
        std::memcpy(dst + r * rowBytes, mat.ptr(r), rowBytes);
    return out;
}

cv::Mat aliasAsMat(const at::Tensor& tensor) {
    if (!tensor.device().is_cpu() || !tensor.is_contiguous())
        throw std::invalid_argument("aliasAsMat: the tensor must be on the CPU and contiguous");
    if (tensor.dim() != 2 && !(tensor.dim() == 3 && tensor.size(2) >= 1 && tensor.size(2) <= 4))
        throw std::invalid_argument("aliasAsMat: expected [H, W] or [H, W, C] with C <= 4, got " +
                                    std::to_string(tensor.dim()) + " dims");
    if (tensor.size(0) > INT_MAX || tensor.size(1) > INT_MAX)
        throw std::invalid_argument("aliasAsMat: the tensor is too large for a cv::Mat");
    const int channels = tensor.dim() == 3 ? static_cast<int>(tensor.size(2)) : 1;
    const int type = CV_MAKETYPE(depthOfDtype(tensor.scalar_type()), channels);
    // cv::Mat(rows, cols, type, data) does not take ownership: it aliases.
    return cv::Mat(static_cast<int>(tensor.size(0)), static_cast<int>(tensor.size(1)), type, tensor.data_ptr());
}

} // namespace deformscope::imaging::detail
