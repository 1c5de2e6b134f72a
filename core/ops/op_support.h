// What the device-agnostic drivers of deform_conv2d and deform_kernel2d share
// (deform_conv2d.cpp, deform_kernel2d.cpp): the argument checks common to both
// operators, the convolution grid, the choice of device kernels and the
// chunking of the batch. Every error message starts with the operator's name.
#pragma once

#include "core/ops/sampling_grid.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace deformscope::ops::detail {

std::string shapeString(const std::vector<int64_t>& dims);

// Checks that `t` has exactly `expected` as shape; `layout` names the dims.
void checkShape(const char* op, const at::Tensor& t, const char* name, const std::vector<int64_t>& expected,
                const char* layout);

// `t` is defined, on input's device and of input's dtype.
void checkTensor(const char* op, const at::Tensor& t, const char* name, const at::Tensor& input);

// checkTensor for every argument the call uses.
struct TensorArg {
    const at::Tensor& tensor;
    const char* name;
    bool used = true;
};
void checkTensors(const char* op, const at::Tensor& input, std::initializer_list<TensorArg> args);

// input is defined, floating-point and 4-D [N, C, H, W].
void checkInput(const char* op, const at::Tensor& input);

// A bias is optional: an undefined or empty tensor means none.
bool hasBias(const at::Tensor& bias);
// out[:, c] += bias[c] when there is a bias.
void addBias(at::Tensor& out, const at::Tensor& bias);
// The bias gradient: grad_output summed over images and positions, or zeros
// shaped like the (empty) bias.
at::Tensor biasGrad(const at::Tensor& grad_output, const at::Tensor& bias);

// checkTensor and checkShape of the incoming gradient of a backward op.
void checkGradOutput(const char* op, const at::Tensor& grad_output, const at::Tensor& input,
                     const std::vector<int64_t>& expected, const char* layout);

// `t`, or an empty tensor like `input` when `t` is undefined (the schemas take
// every tensor, so an optional one travels as an empty tensor).
at::Tensor orEmpty(const at::Tensor& t, const at::Tensor& input);

// `t` made contiguous when the kernels read it, else an empty tensor like
// `input` (never read; it keeps the kernels' pointers valid).
at::Tensor contiguousOrPlaceholder(const at::Tensor& t, const at::Tensor& input, bool used);

// While one is alive on a thread, autograd needs no gradient of the weight and
// bias of the deform_conv2d backward it runs there (an ERF or a sampling trace:
// the gradient of one response to the image or to layer outputs). The backward
// then returns them as zeros without the work they cost (a second im2col and a
// GEMM). Set by the operator's autograd function from needs_input_grad; the
// backward op called directly always computes every gradient.
class ParameterGradsUnneeded {
public:
    explicit ParameterGradsUnneeded(bool unneeded);
    ~ParameterGradsUnneeded();
    ParameterGradsUnneeded(const ParameterGradsUnneeded&) = delete;
    ParameterGradsUnneeded& operator=(const ParameterGradsUnneeded&) = delete;
    static bool active();

private:
    bool m_previous;
};

// Stride and dilation positive, padding non-negative.
void checkWindow(const char* op, const ConvWindow& w);

// The grid of a kernel_h x kernel_w convolution of `input` (already through
// checkInput), its output size checked to be non-empty.
SamplingGrid convolutionGrid(const char* op, const at::Tensor& input, int64_t kernel_h, int64_t kernel_w,
                             const ConvWindow& w);

// A device's two kernels for one operator (deform_conv2d_kernels.h,
// deform_kernel2d_kernels.h say what each operator's pair computes).
template <class Forward, class Backward>
struct KernelTable {
    Forward forward = nullptr;
    Backward backward = nullptr;
};

// The device's kernel table: `cpu()` on the CPU, `cuda()` on CUDA when the build
// has it (pass DEFORMSCOPE_IF_CUDA(&...)), else a c10::Error naming what the
// build supports.
#ifdef DEFORMSCOPE_WITH_CUDA
#define DEFORMSCOPE_IF_CUDA(kernels) (kernels)
#else
#define DEFORMSCOPE_IF_CUDA(kernels) nullptr
#endif

template <class T>
struct NotDeduced {
    using type = T;
};

template <class Kernels>
Kernels kernelsFor(const char* op, const at::Device& device, Kernels (*cpu)(),
                   typename NotDeduced<Kernels (*)()>::type cuda) {
    if (device.is_cpu())
        return cpu();
    if (cuda && device.is_cuda())
        return cuda();
    TORCH_CHECK(false, op, ": no kernel for device ", device, "; this build supports ",
                cuda ? "cpu, cuda" : "cpu (built without CUDA)");
}

// Runs fn(first, chunk) over the batch in chunks of at most `step` whole images:
// `chunk` is `g` with the chunk's batch size, `first` its first image. Any batch
// size works; the last chunk may be smaller.
template <class Geometry, class Fn>
void forEachChunk(const Geometry& g, int64_t step, const Fn& fn) {
    for (int64_t first = 0; first < g.batch; first += step) {
        Geometry chunk = g;
        chunk.batch = std::min(step, g.batch - first);
        fn(first, chunk);
    }
}

// Images per chunk: as many as keep `perImage` units of scratch per image under
// `budget`, at least one.
int64_t imagesPerChunk(int64_t batch, int64_t perImage, int64_t budget);

} // namespace deformscope::ops::detail
