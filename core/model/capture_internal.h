// Internals shared by the run-time capture (capture.cpp) and its reading of
// samplers (capture_samplers.cpp): the recorded operator calls and the dataflow
// between them. Not part of core/model's interface.
#pragma once

#include "core/model/capture.h"

#include <ATen/core/ivalue.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace deformscope::model {
struct OpAdapter;
}

namespace deformscope::model::detail {

// One top-level operator call seen during the forward.
struct OpEvent {
    std::string op;          // "aten::conv2d"
    std::string overload;    // "" or "vec", ...
    std::string modulePath;  // "layer2.conv2" ("" at the top level)
    std::string function;    // innermost CALL_FUNCTION name, e.g. "interpolate"
    std::vector<c10::IValue> inputs;
    std::vector<c10::IValue> outputs;
};

inline constexpr int kNoProducer = -1;
// For every event, for each of its arguments, the events that produced its tensors.
using Producers = std::vector<std::vector<std::vector<int>>>;

const at::Tensor* tensorArg(const OpEvent& e, size_t i);
const at::Tensor* firstOutput(const OpEvent& e);
int64_t intOf(const c10::IValue& v);
bool isConvLike(const std::string& op);
bool isGridSampler(const std::string& op);

// The events upstream of argument `arg` of event `e` (all arguments when arg < 0),
// walking back through operators for which `stop` is false; the events where
// `stop` held are collected in `stops` and not passed. Ascending event order.
std::vector<int> upstream(const Producers& producers, size_t e, int arg,
                          const std::function<bool(int)>& stop, std::vector<int>* stops = nullptr);

// For every event, the producers (event indices) of each tensor in each input (capture_frames.cpp).
Producers resolveProducers(const std::vector<OpEvent>& events);

// For every event, for each of its arguments, the model inputs its tensors derive
// from (bit i: frame i of `frames`, the tensors forward was given); pieces of the
// tensor the frames were stacked into get their own frames (capture_frames.cpp).
std::vector<std::vector<uint32_t>> frameMasks(const std::vector<OpEvent>& events, const std::vector<at::Tensor>& frames);
// A layer's frames (Layer::frames) from its data argument's mask, and its home
// frame (the first its output derives from) from the masks of all its event's arguments.
void assignFrames(Layer& layer, uint32_t dataMask, const std::vector<uint32_t>& argumentMasks);

// A sampler written by hand with aten::gather (indices computed from the data).
// Either the seed article's DeformConv2d (recognised: its consuming conv becomes a
// dcn_v1/dcn_v2 layer read exactly), or not understood (an unrecognised_sampler
// layer standing at its first gather).
struct HandWrittenSampler {
    std::vector<int> gathers; // the aten::gather events
    bool recognised = false;
    std::string reason;       // how it was read, or why it could not be
    // Recognised:
    int conv = -1;            // the conv event reading the sampled values (stride = kernel)
    Layer geometry;           // kind, kernel, stride, padding, dilation, groups, sizes, op
    std::string name;         // the DCN module's path ("" when at the top level)
    at::Tensor input, offset, mask; // x (unpadded), offsets in torchvision layout (clamp applied), sigmoid mask
    int offsetEvent = -1;     // conv-like event producing the offsets
    int maskEvent = -1;       // the sigmoid event; its argument 0 comes from the mask layer
    // Both: where the value map x enters (its producers are the layer's inputs).
    int inputEvent = -1; // its argument 0 is x
    at::Tensor value;                 // the map the gathers read [N, C, H, W] (padded for the DCN)
    std::vector<at::Tensor> reads;    // the gathers' source tensors (their gradient is the read footprint)
};

// Finds the hand-written samplers among the events; `keepTensors`: also the
// recognised ones' offsets in torchvision's layout.
std::vector<HandWrittenSampler> findHandWrittenSamplers(const std::vector<OpEvent>& events, const Producers& producers,
                                                       bool keepTensors);

// Geometry of a grid_sample event (layout, sizes, options); the kind is settled
// later, with the graph (settleGridSamplers).
void describeGridSampler(const OpEvent& e, int64_t imageBatch, Layer& l);

// Settles a grid_sample layer once the layers before it are complete: its layout
// (a query map among the layers its grid comes from), its kind (dcn_v3, deform_attn
// when `siblings` — the grid_sample events of the same module call, in order — read
// maps of several sizes, flow_warp, or sampler) and its grid source.
// `sourcesOf(event, arg)` lists the layers feeding an argument.
void settleGridSampler(Layer& l, const std::vector<Layer>& layers, size_t event, const std::vector<OpEvent>& events,
                       const Producers& producers, const std::function<std::vector<int>(size_t, size_t)>& sourcesOf,
                       const std::vector<size_t>& siblings);

// The weights a query sampler's reads are multiplied by (DCNv3's softmax mask,
// deformable attention's attention weights), found as the other operand of the
// first multiplication its output reaches through reshapes and a stack over levels:
// `weights` [B, Q, P] for this layer's rows, queries and points, and where they
// enter (the multiplication's event and argument). Empty when there is none.
struct SamplerWeighting {
    at::Tensor weights;
    size_t event = 0;
    size_t arg = 0;
};
std::optional<SamplerWeighting> attentionWeights(const std::vector<OpEvent>& events, size_t event, const Layer& l);

// An int or int-list argument as a (y, x) pair (the last two of a list).
std::array<int64_t, 2> pairOf(const c10::IValue& v, int64_t fallback);

// ---- custom operators (capture_custom.cpp) ----

// A custom operator (not ATen's, TorchScript's, torchvision's or ours) mapping a
// feature map to a feature map.
bool isCustomOp(const OpEvent& e);
// A custom operator (isCustomOp) listed as an unrecognised sampler; `why` follows
// "custom operator <name> " in its reason.
Layer unrecognisedCustomOp(const OpEvent& e, const std::string& why);
// The adapter declared for an operator, nullptr if none.
const OpAdapter* adapterFor(const LoadedModel& model, const std::string& op);
// A custom operator read through its adapter as a deformable convolution; false
// (with `why`) when its arguments do not fit the declaration.
bool describeAdapted(const OpEvent& e, const OpAdapter& a, Layer& l, std::string& why);
// Offsets in torchvision's layout (y, x per tap) from a declared layout.
at::Tensor torchvisionOffsets(const at::Tensor& off, bool planar);

} // namespace deformscope::model::detail
