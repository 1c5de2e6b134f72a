// Explicit registration of the project's operators with the PyTorch dispatcher.
//
// Call registerOperators() once at start-up, before loading any model; it is
// idempotent and thread-safe. (Static-initialiser registration inside a static
// library is silently dropped by the linker, hence the explicit call.)
#pragma once

namespace deformscope::ops {

// Registers, for CPU (and CUDA when built with it) plus autograd:
//   deformscope::deform_conv2d, deformscope::_deform_conv2d_backward,
//   deformscope::set_deterministic_backward(bool enabled) -> bool,
//   deformscope::deform_kernel2d, deformscope::_deform_kernel2d_backward
//     (Deformable Kernels; schemas in deform_kernel2d.h),
//   deformscope::deform_roi_pool, deformscope::_deform_roi_pool_backward
//     (deformable RoI pooling with mmcv's semantics; schemas in deform_roi_pool.h);
// and, only if torchvision's own ops are not registered yet, the same kernels as
//   torchvision::deform_conv2d and torchvision::_deform_conv2d_backward
// with torchvision's exact schemas, so TorchScript models that call them load
// unchanged; likewise torchvision::roi_align (as deformscope::deform_roi_pool
// without offsets, aligned=False by torchvision's legacy box rule). If torchvision's library is loaded *after* this call, its own
// registration of those names fails: load torchvision first when you need both.
void registerOperators();

// True when registerOperators() installed the torchvision:: aliases.
bool torchvisionAliasesRegistered();

} // namespace deformscope::ops
