// Run-time capture: one forward pass with an operator observer records every
// conv-like operator that ran (convolutions, deformable convolutions — ours or
// torchvision's kernel alike —, pooling, upsampling, grid_sample samplers, hand-
// written gather samplers: capture_samplers.cpp) with its arguments, module
// path and tensors, and how data flowed between them. From that it builds the
// LayerGraph for that input size. Call from one thread at a time per model.
#pragma once

#include "core/model/layer_graph.h"
#include "core/model/model.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <string>
#include <vector>

namespace deformscope::model {

// What one layer saw in the captured forward (CPU or model device tensors).
struct LayerTensors {
    at::Tensor input;  // data input [N, Cin, H, W]
    at::Tensor output; // [N, Cout, Ho, Wo]
    at::Tensor offset; // deformable layers: [N, 2*G*kh*kw, Ho, Wo], torchvision layout; deformable RoI pooling: [K, 2, ph, pw] (x, y)
    at::Tensor mask;   // DCNv2: [N, G*kh*kw, Ho, Wo]; modulated RoI pooling: [K, 1, ph, pw]
    at::Tensor kernelOffset; // DK: [N, 2*kh*kw, Ho, Wo] (local) or [N, 2*kh*kw, 1, 1] (global); weight is then the scope [C, 1, Sh, Sw]
    at::Tensor weight; // convolutions and deformable layers: [Cout, Cin/groups, kh, kw] (transposed: [Cin, Cout/groups, kh, kw])
    at::Tensor rois;   // RoI pooling: the regions [K, 5] (batch index, x0, y0, x1, y1), as the operator got them
    at::Tensor grid;   // grid_sample samplers: the normalised grid [B, Ho, Wo, 2] or [B, Q, P, 2], (x, y) order
    // Unrecognised hand-written samplers: the tensors their gathers read (the
    // gradient of a response with respect to them is the sampler's read footprint).
    std::vector<at::Tensor> reads;
};

struct Capture {
    LayerGraph graph;
    at::Tensor output;                 // the model's (first tensor) output
    std::vector<LayerTensors> tensors; // per layer index; empty tensors unless keepTensors
    std::vector<std::string> notes;    // e.g. which element of a tuple output was used
    double samplerSeconds = 0;         // spent recognising samplers (benchmarks: bench-load)
};

struct CaptureOptions {
    bool keepTensors = true; // keep every layer's input/output/offset/mask
    // Read samplers (grid_sample, hand-written gathers, custom operators); off, the
    // capture sees only the built-in conv-like operators (for benchmarks: the cost
    // of reading samplers, docs/benchmarks.md).
    bool readSamplers = true;
};

// One forward of `input` ([N, 3, H, W]; several frames side by side, W = I·frame
// width, LoadedModel::splitFrames) with capture. Throws ModelError; an
// input smaller than the network's total stride gets a message saying so.
Capture captureForward(const LoadedModel& model, const at::Tensor& input, const CaptureOptions& options = {});

// The layer graph for an input of `size` (H, W; each frame's, for a model with
// several input frames): a forward of zeros, no tensors kept.
LayerGraph layerGraph(const LoadedModel& model, std::array<int64_t, 2> size);

} // namespace deformscope::model
