#include "core/ops/registration.h"

#include "core/ops/autograd/autograd_kernels.h"
#include "core/ops/operators.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace deformscope::ops {
namespace {

using detail::AutogradKernels;
using detail::DeformConv2dOp;
using detail::DeformKernel2dOp;
using detail::DeformRoiPoolOp;
using detail::DirectKernels;
using detail::DirectRoiPoolKernels;
using detail::RoiPoolAutogradKernels;

std::atomic<bool> g_aliases{false};

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

template <class Op>
void defineSchemas(torch::Library& lib) {
    lib.def(Op::kSchema);
    lib.def(Op::kBackwardSchema);
}

// Registers Op's device kernels (the entry points Forward and Backward) and
// its autograd kernels (AutogradForward, AutogradBackward) for namespace `ns`
// (whose schemas exist).
template <class Op, auto Forward, auto Backward, auto AutogradForward, auto AutogradBackward>
void addKernelEntries(const char* ns) {
    const std::vector<c10::DispatchKey> devices = {
        c10::DispatchKey::CPU,
#ifdef DEFORMSCOPE_WITH_CUDA
        c10::DispatchKey::CUDA,
#endif
    };
    for (c10::DispatchKey key : devices) {
        auto& impl = addLibrary(torch::Library::IMPL, ns, key);
        impl.impl(Op::kName, TORCH_FN(Forward));
        impl.impl(Op::kBackwardName, TORCH_FN(Backward));
    }
    auto& autograd = addLibrary(torch::Library::IMPL, ns, c10::DispatchKey::Autograd);
    autograd.impl(Op::kName, TORCH_FN(AutogradForward));
    autograd.impl(Op::kBackwardName, TORCH_FN(AutogradBackward));
}

// The entry points of deform_conv2d and deform_kernel2d (operators.h).
template <class Op>
void addKernels(const char* ns) {
    addKernelEntries<Op, &detail::forwardEntry<Op, DirectKernels<Op>>, &detail::backwardEntry<Op, DirectKernels<Op>>,
                     &detail::forwardEntry<Op, AutogradKernels<Op>>, &detail::backwardEntry<Op, AutogradKernels<Op>>>(
        ns);
}

} // namespace

void registerOperators() {
    static std::once_flag once;
    std::call_once(once, [] {
        auto& own = addLibrary(torch::Library::DEF, "deformscope", std::nullopt);
        defineSchemas<DeformConv2dOp>(own);
        own.def("set_deterministic_backward(bool enabled) -> bool", &setDeterministicBackward);
        defineSchemas<DeformKernel2dOp>(own);
        addKernels<DeformConv2dOp>("deformscope");
        addKernels<DeformKernel2dOp>("deformscope");
        defineSchemas<DeformRoiPoolOp>(own);
        addKernelEntries<DeformRoiPoolOp, &detail::roiPoolForwardEntry<DirectRoiPoolKernels>,
                         &detail::roiPoolBackwardEntry<DirectRoiPoolKernels>,
                         &detail::roiPoolForwardEntry<RoiPoolAutogradKernels>,
                         &detail::roiPoolBackwardEntry<RoiPoolAutogradKernels>>("deformscope");

        const bool torchvisionPresent =
            c10::Dispatcher::singleton().findSchema({"torchvision::deform_conv2d", ""}).has_value();
        if (!torchvisionPresent) {
            auto& tv = addLibrary(torch::Library::FRAGMENT, "torchvision", std::nullopt);
            defineSchemas<DeformConv2dOp>(tv);
            addKernels<DeformConv2dOp>("torchvision");
            g_aliases = true;
        }
    });
}

bool torchvisionAliasesRegistered() {
    return g_aliases.load();
}

} // namespace deformscope::ops
