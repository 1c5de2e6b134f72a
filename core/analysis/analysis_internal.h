// Internals of core/analysis shared between its files and its tests.
#pragma once

#include "core/analysis/analysis.h"

#include <map>
#include <set>

namespace deformscope::analysis::detail {

// Layers that spawn taps in the sampling trace: every deformable layer and every
// sampler (grid_sample, hand-written ones), and with TraceThrough::All k×k
// convolutions (k > 1) too.
bool spawns(const model::Layer& layer, TraceThrough through);

// `through`, or All when it is Deformable and no layer of the model is deformable
// (a regular twin is traced through its convolutions).
TraceThrough effectiveThrough(const std::vector<model::Layer>& layers, TraceThrough through);

// The spawning layers a trace from layer `start` reaches within `levels` levels.
std::set<int> tracedLayers(const std::vector<model::Layer>& layers, int start, int levels, TraceThrough through);

// A Deformable Kernel layer's kernel-space offsets at integer output positions
// (iy[p], ix[p]): [P, K, 2] (Δy, Δx) in scope cells, as `options` (dtype and
// device); zeros when the layer has none, the image's one kernel in global mode.
at::Tensor dkKernelOffsets(const model::Layer& layer, const model::LayerTensors& tensors, const at::Tensor& iy,
                           const at::Tensor& ix, const at::TensorOptions& options);

// A Deformable Kernel layer's effective (resampled) kernel at integer output
// positions (iy[p], ix[p]): W_c(q_k + Δk(p)) as [P, C, K] double, with the
// operator's centred base positions and bilinear boundary rule.
at::Tensor dkEffectiveKernel(const model::Layer& layer, const model::LayerTensors& tensors, const at::Tensor& iy,
                             const at::Tensor& ix);

// ∂r/∂(sampling location) of every tap of `layer` at integer output positions
// (iy[p], ix[p]), given ∂r/∂output: [P, G, K, 2] (dy, dx) on the layer's device.
// For a deformable layer this equals ∂r/∂offset; for a regular conv it is the
// same derivative at zero offsets (torchvision's bilinear coordinate weights);
// for a Deformable Kernel layer the taps are weighted by its resampled kernel.
at::Tensor locationGrads(const model::Layer& layer, const model::LayerTensors& tensors, const at::Tensor& gradOutput,
                         const at::Tensor& iy, const at::Tensor& ix);

// The DK layer the kernel view of a node at `layer` shows: `layer` itself when it
// is a DK layer, else the highest-indexed DK layer its inputs reach; −1: none.
int kernelViewLayer(const std::vector<model::Layer>& layers, int layer);

// The kernel view at output position (fy, fx) of DK layer `layer` from the
// captured tensors; `channel` −1: mean over channels. Fills everything but
// `centre`, `notes` about the node and `seconds`.
KernelView kernelView(const model::Capture& capture, int layer, int64_t fy, int64_t fx, int64_t channel);

// The trace itself; gradOutputs maps layer index -> ∂r/∂output of that layer;
// footprints maps an unrecognised sampler's index -> Σ|∂r/∂(the map it reads)|
// over channels, [H, W] (its reads, approximated by their gradient footprint).
SamplingTrace traceSampling(const model::Capture& capture, const Node& node, const SamplingOptions& options,
                            const std::map<int, at::Tensor>& gradOutputs, const std::map<int, at::Tensor>& footprints);

} // namespace deformscope::analysis::detail
