#include "core/ops/registration.h"

#include "core/ops/autograd/autograd_kernels.h"
#include "core/ops/deform_roi_pool.h"
#include "core/ops/operators.h"

#include <ATen/ATen.h>

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

// torchvision::roi_align (torchvision.ops.roi_align / RoIAlign, as torchvision's detectors
// call it), for processes without torchvision's library: deform_roi_pool without offsets,
// whose coordinates are roi_align's with aligned=True (tests/python/test_deform_roi_pool_mmcv.py
// checks the two agree). aligned=False is torchvision's legacy rule: no half-pixel shift and
// RoIs at least one feature pixel wide; the box is moved and widened so the aligned
// arithmetic gives exactly that (start x0·s, size max((x1 − x0)·s, 1)).
at::Tensor roiAlignComposite(const at::Tensor& input, const at::Tensor& rois, double spatialScale, int64_t pooledHeight,
                             int64_t pooledWidth, int64_t samplingRatio, bool aligned) {
    at::Tensor boxes = rois;
    if (!aligned && rois.dim() == 2 && rois.size(1) == 5 && spatialScale > 0) {
        const double half = 0.5 / spatialScale, least = 1.0 / spatialScale;
        const at::Tensor x0 = rois.select(1, 1) + half, y0 = rois.select(1, 2) + half;
        const at::Tensor w = (rois.select(1, 3) - rois.select(1, 1)).clamp_min(least);
        const at::Tensor h = (rois.select(1, 4) - rois.select(1, 2)).clamp_min(least);
        boxes = at::stack({rois.select(1, 0), x0, y0, x0 + w, y0 + h}, 1);
    }
    DeformRoiPoolParams p;
    p.pooled_height = pooledHeight;
    p.pooled_width = pooledWidth;
    p.spatial_scale = spatialScale;
    p.sampling_ratio = samplingRatio;
    p.gamma = 0.0;
    p.use_mask = false;
    return deformRoiPool(input, boxes, at::Tensor(), at::Tensor(), p);
}

constexpr const char* kRoiAlignSchema = "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                                        "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor";

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
        if (!c10::Dispatcher::singleton().findSchema({"torchvision::roi_align", ""}).has_value()) {
            auto& tv = addLibrary(torch::Library::FRAGMENT, "torchvision", std::nullopt);
            tv.def(kRoiAlignSchema);
            auto& impl = addLibrary(torch::Library::IMPL, "torchvision", c10::DispatchKey::CompositeImplicitAutograd);
            impl.impl("roi_align", TORCH_FN(roiAlignComposite));
        }
    });
}

bool torchvisionAliasesRegistered() {
    return g_aliases.load();
}

} // namespace deformscope::ops
