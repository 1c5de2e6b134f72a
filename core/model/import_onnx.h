// ONNX models (.onnx) turned into the TorchScript module the rest of DeformScope
// reads.
//
// The file is parsed with ONNX's own protobuf definitions (Debian's libonnx-dev)
// and checked the way onnx.checker does what DeformScope relies on: an IR version
// and opset DeformScope knows, every node's inputs defined before it (the graph is
// topologically sorted), every operator one DeformScope translates, its
// attributes of the right type. Each node becomes a statement of TorchScript
// source over ATen operators (DeformConv: torchvision::deform_conv2d, GridSample:
// aten::grid_sampler), the initialisers attributes of a module tree mirroring the
// exporter's module names (the node's namespace metadata from torch.onnx's
// exporter, its "/layer1/layer1.0/dcn/Conv" name from the TorchScript-based one, or
// its weight's name), so the layers keep their PyTorch names and capture,
// autograd and the samplers read them unchanged.
//
// Sizes the graph computes (Shape, Gather, Concat feeding Reshape, ...) are
// computed when the model runs, so a graph exported with dynamic axes runs at any
// size its operators allow. External data (models over 2 GB) is read from the
// model's folder.
//
// Every problem is a ModelError naming the file and, for a node, its name and
// operator; an operator outside the supported list is named together with that
// list.
#pragma once

#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace deformscope::model {

struct OnnxImport {
    std::string format;                // "ONNX, opset 19, IR 10, written by pytorch 2.11.0"
    std::string metadata;              // metadata_props["deformscope.json"], "" if none
    std::vector<std::string> notes;    // things the user should be told once
    // The first input's height and width when the graph fixes them (a static export).
    std::optional<std::array<int64_t, 2>> declaredSize;
};

// True when `path` names an ONNX file (by its extension).
bool isOnnxPath(const std::string& path);

// The operators (default domain) the importer translates, sorted.
const std::vector<std::string>& onnxOperators();

// The newest default-domain opset the importer reads.
int onnxMaxOpset();

// Reads the model into `module` (on `device`). Throws ModelError.
OnnxImport importOnnx(const std::string& path, const c10::Device& device, torch::jit::Module& module);

} // namespace deformscope::model
