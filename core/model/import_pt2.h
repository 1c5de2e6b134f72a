// torch.export archives (.pt2, as torch.export.save writes them) turned into the
// TorchScript module the rest of DeformScope reads.
//
// The archive's serialized ExportedProgram (models/model.json, export schema 8)
// is an ATen graph over the program's inputs: parameters, buffers and lifted
// constants (data/weights, data/constants) and the user's inputs. It becomes
// TorchScript source: one statement per node, the parameters and buffers
// attributes of a module tree mirroring the exported model's (their fully
// qualified names), and every node that ran inside a submodule (its
// nn_module_stack) called through that submodule's methods, so the layers keep
// the names they have in PyTorch ("layer1.0.dcn"). torchvision::deform_conv2d,
// aten::grid_sampler and the rest are the same operators a TorchScript file
// calls, so capture, autograd and the samplers read them unchanged.
//
// Dynamic shapes: the graph's symbolic sizes (sym_size and Python arithmetic on
// them) become sizes read from the tensors at run time, so such a program runs at
// any input size its operators allow.
//
// Not read (each a ModelError naming the file and what): another major schema
// version, higher-order operators (cond, map, ...), custom objects, pickled
// weights, and operators nobody registered (named with their node).
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace deformscope::model {

struct Pt2Import {
    std::string format;                // "torch.export (.pt2), schema 8.17, torch 2.11.0"
    std::string metadata;              // extra/deformscope.json, "" if none
    std::vector<std::string> notes;    // things the user should be told once
};

// True when `path` names a .pt2 archive (by its extension).
bool isPt2Path(const std::string& path);

// Reads the archive into `module` (on `device`). Throws ModelError.
Pt2Import importPt2(const std::string& path, const c10::Device& device, torch::jit::Module& module);

} // namespace deformscope::model
