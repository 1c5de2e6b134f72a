// Custom deformable operators by declaration: a model whose deformable layer is
// its own TorchScript operator (mmcv's, DCNv4's, a lab's) says in an adapter
// which of the operator's arguments are the input, weight, offsets and mask, how
// the offsets are laid out, and where stride, padding and dilation are; the
// capture then reads that operator as a dcn_v1/dcn_v2 layer. Adapters come from
// "custom_ops" in the model's deformscope.json or in the side file
// <model>.deformscope.json next to it, which may also name "libraries" (shared
// libraries defining the operators, loaded before the model). README: "Custom
// deformable operators".
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace deformscope::model {

struct OpAdapter {
    std::string op;                       // "mylab::dcn": the operator's qualified name
    int input = 0, weight = 1, offset = 2; // argument positions
    int mask = -1;                        // -1: no mask (DCNv1)
    bool planar = false;                  // offsets "planar" (all rows, then all columns) or "torchvision" (y, x pairs)
    // Argument positions of each pair: one position (an int or int[2] argument) or two (two ints).
    std::vector<int> stride, padding, dilation;
    int groups = -1, offsetGroups = -1;   // argument positions, -1: 1 group / inferred from the offsets

    // Reads one entry of "custom_ops"; std::runtime_error naming `where` and the key.
    static OpAdapter fromJson(const nlohmann::json& j, const std::string& where);
};

// The adapters and libraries declared for a model: its side file's (if any) and
// those of its embedded deformscope.json (`embeddedJson`, may be empty).
struct OpDeclarations {
    std::vector<OpAdapter> adapters;
    std::vector<std::string> libraries; // absolute paths
    std::string sideFile;               // the side file read, "" if none
    std::string sideMetadata;           // its text when it holds metadata keys (ModelMetadata::holdsAny), else ""
};

// The side file of a model path ("dir/net.pt" -> "dir/net.deformscope.json").
std::string sideFileOf(const std::string& modelPath);
// Reads the side file (libraries, adapters, and metadata keys); std::runtime_error naming the file.
OpDeclarations readSideFile(const std::string& modelPath);
// Adds the adapters of an embedded deformscope.json text.
void addEmbeddedAdapters(OpDeclarations& d, const std::string& embeddedJson, const std::string& where);

} // namespace deformscope::model
