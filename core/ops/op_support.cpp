#include "core/ops/op_support.h"

#include <ATen/ATen.h>

#include <sstream>

namespace deformscope::ops::detail {

std::string shapeString(const std::vector<int64_t>& dims) {
    std::ostringstream s;
    s << '[';
    for (size_t i = 0; i < dims.size(); ++i)
        s << (i ? ", " : "") << dims[i];
    s << ']';
    return s.str();
}

void checkShape(const char* op, const at::Tensor& t, const char* name, const std::vector<int64_t>& expected,
                const char* layout) {
    TORCH_CHECK(t.sizes().vec() == expected, op, ": ", name, " must have shape ", layout, " = ", shapeString(expected),
                ", got ", shapeString(t.sizes().vec()));
}

void checkTensor(const char* op, const at::Tensor& t, const char* name, const at::Tensor& input) {
    TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
    TORCH_CHECK(t.device() == input.device(), op, ": ", name, " is on ", t.device(), " but input is on ",
                input.device(), "; all tensors must be on one device");
    TORCH_CHECK(t.scalar_type() == input.scalar_type(), op, ": ", name, " has dtype ", t.scalar_type(),
                " but input has dtype ", input.scalar_type(), "; all tensors must have one floating-point dtype");
}

void checkTensors(const char* op, const at::Tensor& input, std::initializer_list<TensorArg> args) {
    for (const TensorArg& a : args)
        if (a.used)
            checkTensor(op, a.tensor, a.name, input);
}

void checkInput(const char* op, const at::Tensor& input) {
    TORCH_CHECK(input.defined(), op, ": input is an undefined tensor");
    TORCH_CHECK(at::isFloatingType(input.scalar_type()), op, ": input must be a floating-point tensor, got dtype ",
                input.scalar_type());
    TORCH_CHECK(input.dim() == 4, op, ": input must be 4-D [N, C, H, W], got shape ",
                shapeString(input.sizes().vec()));
}

bool hasBias(const at::Tensor& bias) {
    return bias.defined() && bias.numel() > 0;
}

void addBias(at::Tensor& out, const at::Tensor& bias) {
    if (hasBias(bias))
        out.add_(bias.view({1, bias.numel(), 1, 1}));
}

at::Tensor biasGrad(const at::Tensor& grad_output, const at::Tensor& bias) {
    return hasBias(bias) ? grad_output.sum({0, 2, 3}) : at::zeros_like(bias);
}

void checkGradOutput(const char* op, const at::Tensor& grad_output, const at::Tensor& input,
                     const std::vector<int64_t>& expected, const char* layout) {
    checkTensor(op, grad_output, "grad_output", input);
    checkShape(op, grad_output, "grad_output", expected, layout);
}

at::Tensor orEmpty(const at::Tensor& t, const at::Tensor& input) {
    return t.defined() ? t : at::empty({0}, input.options());
}

at::Tensor contiguousOrPlaceholder(const at::Tensor& t, const at::Tensor& input, bool used) {
    return used ? t.contiguous() : at::empty({0}, input.options());
}

void checkWindow(const char* op, const ConvWindow& w) {
    TORCH_CHECK(w.stride_h > 0 && w.stride_w > 0, op, ": stride must be positive, got (", w.stride_h, ", ", w.stride_w,
                ")");
    TORCH_CHECK(w.dilation_h > 0 && w.dilation_w > 0, op, ": dilation must be positive, got (", w.dilation_h, ", ",
                w.dilation_w, ")");
    TORCH_CHECK(w.pad_h >= 0 && w.pad_w >= 0, op, ": padding must be non-negative, got (", w.pad_h, ", ", w.pad_w,
                ")");
}

SamplingGrid convolutionGrid(const char* op, const at::Tensor& input, int64_t kernel_h, int64_t kernel_w,
                             const ConvWindow& w) {
    SamplingGrid g;
    static_cast<ConvWindow&>(g) = w;
    g.batch = input.size(0);
    g.channels = input.size(1);
    g.height = input.size(2);
    g.width = input.size(3);
    g.kernel_h = kernel_h;
    g.kernel_w = kernel_w;
    g.out_h = convOutputSize(g.height, kernel_h, w.stride_h, w.pad_h, w.dilation_h);
    g.out_w = convOutputSize(g.width, kernel_w, w.stride_w, w.pad_w, w.dilation_w);
    TORCH_CHECK(g.out_h > 0 && g.out_w > 0, op, ": output would be empty (", g.out_h, " x ", g.out_w, ") for input ",
                g.height, " x ", g.width, ", kernel ", kernel_h, " x ", kernel_w, ", padding (", w.pad_h, ", ", w.pad_w,
                "), dilation (", w.dilation_h, ", ", w.dilation_w, "), stride (", w.stride_h, ", ", w.stride_w, ")");
    return g;
}

int64_t imagesPerChunk(int64_t batch, int64_t perImage, int64_t budget) {
    return std::max<int64_t>(1, std::min<int64_t>(batch, budget / std::max<int64_t>(1, perImage)));
}

namespace {
thread_local bool t_parameterGradsUnneeded = false;
} // namespace

ParameterGradsUnneeded::ParameterGradsUnneeded(bool unneeded) : m_previous(t_parameterGradsUnneeded) {
    t_parameterGradsUnneeded = unneeded;
}

ParameterGradsUnneeded::~ParameterGradsUnneeded() { t_parameterGradsUnneeded = m_previous; }

bool ParameterGradsUnneeded::active() { return t_parameterGradsUnneeded; }

} // namespace deformscope::ops::detail
