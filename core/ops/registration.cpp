#include "core/ops/registration.h"

#include "core/ops/autograd/deform_conv2d_autograd.h"
#include "core/ops/autograd/deform_kernel2d_autograd.h"
#include "core/ops/deform_conv2d.h"
#include "core/ops/deform_kernel2d.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace deformscope::ops {
namespace {

// torchvision's schemas, character for character (torchvision >= 0.16).
constexpr const char* kForwardSchema =
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, "
    "SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, "
    "SymInt offset_groups, bool use_mask) -> Tensor";
constexpr const char* kBackwardSchema =
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, "
    "SymInt groups, SymInt offset_groups, bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)";

// Deformable Kernels (deform_kernel2d.h documents the arguments); ours only, no standard schema exists.
constexpr const char* kDkForwardSchema =
    "deform_kernel2d(Tensor input, Tensor weight, Tensor kernel_offset, Tensor offset, Tensor bias, int stride_h, "
    "int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int kernel_h, int kernel_w, "
    "bool use_offset) -> Tensor";
constexpr const char* kDkBackwardSchema =
    "_deform_kernel2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor kernel_offset, Tensor offset, "
    "Tensor bias, int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int kernel_h, "
    "int kernel_w, bool use_offset) -> (Tensor, Tensor, Tensor, Tensor, Tensor)";

std::atomic<bool> g_aliases{false};

at::Tensor forwardKernel(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                         const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                         int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t groups,
                         int64_t offset_groups, bool use_mask) {
    return deformConv2dForwardImpl(input, weight, offset, mask, bias,
                                   {stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, offset_groups,
                                    use_mask});
}

DeformConv2dGrads backwardKernel(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& weight,
                                 const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& bias,
                                 int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                 int64_t dilation_h, int64_t dilation_w, int64_t groups, int64_t offset_groups,
                                 bool use_mask) {
    return deformConv2dBackwardImpl(grad, input, weight, offset, mask, bias,
                                    {stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, offset_groups,
                                     use_mask});
}

at::Tensor dkForwardKernel(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& kernel_offset,
                           const at::Tensor& offset, const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                           int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t kernel_h,
                           int64_t kernel_w, bool use_offset) {
    return deformKernel2dForwardImpl(input, weight, kernel_offset, offset, bias,
                                     {stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, kernel_h, kernel_w,
                                      use_offset});
}

DeformKernel2dGrads dkBackwardKernel(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& weight,
                                     const at::Tensor& kernel_offset, const at::Tensor& offset,
                                     const at::Tensor& bias, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                     int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t kernel_h,
                                     int64_t kernel_w, bool use_offset) {
    return deformKernel2dBackwardImpl(grad, input, weight, kernel_offset, offset, bias,
                                      {stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, kernel_h, kernel_w,
                                       use_offset});
}

bool setDeterministicBackward(bool enabled) {
    const bool previous = backwardMode() == BackwardMode::Deterministic;
    setBackwardMode(enabled ? BackwardMode::Deterministic : BackwardMode::Atomic);
    return previous;
}

// The torch::Library objects must outlive every use of the ops: kept for the
// life of the process.
std::vector<std::unique_ptr<torch::Library>>& libraries() {
    static std::vector<std::unique_ptr<torch::Library>> libs;
    return libs;
}

torch::Library& addLibrary(torch::Library::Kind kind, const char* ns, std::optional<c10::DispatchKey> key) {
    libraries().push_back(std::make_unique<torch::Library>(kind, ns, key, __FILE__, __LINE__));
    return *libraries().back();
}

// Registers the deform_conv2d kernels for namespace `ns` (whose schemas exist).
void addKernels(const char* ns) {
    const std::vector<c10::DispatchKey> devices = {
        c10::DispatchKey::CPU,
#ifdef DEFORMSCOPE_WITH_CUDA
        c10::DispatchKey::CUDA,
#endif
    };
    for (c10::DispatchKey key : devices) {
        auto& impl = addLibrary(torch::Library::IMPL, ns, key);
        impl.impl("deform_conv2d", TORCH_FN(forwardKernel));
        impl.impl("_deform_conv2d_backward", TORCH_FN(backwardKernel));
    }
    auto& autograd = addLibrary(torch::Library::IMPL, ns, c10::DispatchKey::Autograd);
    autograd.impl("deform_conv2d", TORCH_FN(detail::deformConv2dAutograd));
    autograd.impl("_deform_conv2d_backward", TORCH_FN(detail::deformConv2dBackwardAutograd));
}

// Registers the deform_kernel2d kernels for namespace `ns` (whose schemas exist).
void addDeformKernelKernels(const char* ns) {
    const std::vector<c10::DispatchKey> devices = {
        c10::DispatchKey::CPU,
#ifdef DEFORMSCOPE_WITH_CUDA
        c10::DispatchKey::CUDA,
#endif
    };
    for (c10::DispatchKey key : devices) {
        auto& impl = addLibrary(torch::Library::IMPL, ns, key);
        impl.impl("deform_kernel2d", TORCH_FN(dkForwardKernel));
        impl.impl("_deform_kernel2d_backward", TORCH_FN(dkBackwardKernel));
    }
    auto& autograd = addLibrary(torch::Library::IMPL, ns, c10::DispatchKey::Autograd);
    autograd.impl("deform_kernel2d", TORCH_FN(detail::deformKernel2dAutograd));
    autograd.impl("_deform_kernel2d_backward", TORCH_FN(detail::deformKernel2dBackwardAutograd));
}

} // namespace

void registerOperators() {
    static std::once_flag once;
    std::call_once(once, [] {
        auto& own = addLibrary(torch::Library::DEF, "deformscope", std::nullopt);
        own.def(kForwardSchema);
        own.def(kBackwardSchema);
        own.def("set_deterministic_backward(bool enabled) -> bool", &setDeterministicBackward);
        own.def(kDkForwardSchema);
        own.def(kDkBackwardSchema);
        addKernels("deformscope");
        addDeformKernelKernels("deformscope");

        const bool torchvisionPresent =
            c10::Dispatcher::singleton().findSchema({"torchvision::deform_conv2d", ""}).has_value();
        if (!torchvisionPresent) {
            auto& tv = addLibrary(torch::Library::FRAGMENT, "torchvision", std::nullopt);
            tv.def(kForwardSchema);
            tv.def(kBackwardSchema);
            addKernels("torchvision");
            g_aliases = true;
        }
    });
}

bool torchvisionAliasesRegistered() {
    return g_aliases.load();
}

} // namespace deformscope::ops
