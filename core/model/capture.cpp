#include "core/model/capture.h"
#include "core/model/capture_internal.h"
#include "core/model/op_adapter.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

namespace deformscope::model {
namespace detail {

int64_t intOf(const c10::IValue& v) {
    return v.isInt() ? v.toInt() : v.toSymInt().guard_int(__FILE__, __LINE__);
}

bool isGridSampler(const std::string& op) { return op == "aten::grid_sampler" || op == "aten::grid_sampler_2d"; }

bool isConvLike(const std::string& op) {
    static const std::set<std::string> ops = {
        "aten::conv2d", "aten::convolution", "aten::_convolution", "aten::conv_transpose2d",
        "torchvision::deform_conv2d", "deformscope::deform_conv2d", "deformscope::deform_kernel2d", "aten::max_pool2d",
        "aten::max_pool2d_with_indices", "aten::avg_pool2d", "aten::adaptive_avg_pool2d",
        "aten::adaptive_max_pool2d", "aten::upsample_nearest2d", "aten::upsample_bilinear2d",
        "aten::upsample_bicubic2d", "aten::_upsample_nearest_exact2d", "aten::_upsample_bilinear2d_aa",
        "deformscope::deform_roi_pool", "torchvision::roi_align"};
    return ops.count(op) > 0 || isGridSampler(op);
}

const at::Tensor* tensorArg(const OpEvent& e, size_t i) {
    return i < e.inputs.size() && e.inputs[i].isTensor() ? &e.inputs[i].toTensor() : nullptr;
}

const at::Tensor* firstOutput(const OpEvent& e) {
    for (const c10::IValue& v : e.outputs) {
        if (v.isTensor())
            return &v.toTensor();
        if (v.isTuple())
            for (const c10::IValue& x : v.toTupleRef().elements())
                if (x.isTensor())
                    return &x.toTensor();
    }
    return nullptr;
}

} // namespace detail

namespace {

using namespace detail;

struct Recorder {
    std::vector<OpEvent> events;
    int depth = 0; // > 0 while inside a recorded operator (its internals are not recorded)
};

thread_local Recorder* t_recorder = nullptr;

// "TOP(Net)::forward", "layer2(Block)::forward", "SELF(Conv2d)::_conv_forward",
// "CALL_FUNCTION::interpolate()::interpolate" -> module path "layer2", function "interpolate";
// "::deform_conv2d" (a free function inlined into a method) -> function "deform_conv2d".
void splitHierarchy(const std::vector<std::string>& entries, std::string& path, std::string& function) {
    for (const std::string& e : entries) {
        if (e.rfind("CALL_FUNCTION::", 0) == 0) {
            const auto name = e.substr(15);
            function = name.substr(0, name.find("()"));
            continue;
        }
        // "::deform_conv2d": a free function inlined into the method that called it (an
        // optimised graph's call stack; torchvision's DeformConv2d.forward calls one).
        if (e.rfind("::", 0) == 0) {
            function = e.substr(2);
            continue;
        }
        if (e.rfind("TOP(", 0) == 0 || e.rfind("SELF(", 0) == 0)
            continue;
        const auto paren = e.find('(');
        path += (path.empty() ? "" : ".") + e.substr(0, paren);
    }
}

std::unique_ptr<at::ObserverContext> onEnter(const at::RecordFunction& fn) {
    Recorder* r = t_recorder;
    if (!r || fn.scope() != at::RecordScope::FUNCTION)
        return nullptr;
    if (r->depth++ > 0)
        return nullptr;
    OpEvent e;
    e.op = fn.name();
    e.overload = fn.overload_name();
    // For boxed calls the recorded inputs are the whole interpreter stack: the
    // operator's own arguments are its last schema().arguments().size() entries.
    const auto inputs = fn.inputs();
    size_t count = inputs.size();
    if (const auto schema = fn.operator_schema())
        count = std::min(count, schema->arguments().size());
    e.inputs.assign(inputs.end() - static_cast<std::ptrdiff_t>(count), inputs.end());
    splitHierarchy(torch::jit::currentModuleHierarchy(), e.modulePath, e.function);
    r->events.push_back(std::move(e));
    return nullptr;
}

void onExit(const at::RecordFunction& fn, at::ObserverContext*) {
    Recorder* r = t_recorder;
    if (!r || fn.scope() != at::RecordScope::FUNCTION)
        return;
    if (--r->depth > 0)
        return;
    // As for inputs, boxed calls report the whole stack: the results are its tail.
    const auto outputs = fn.outputs();
    size_t count = outputs.size();
    if (const auto schema = fn.operator_schema())
        count = std::min(count, schema->returns().size());
    if (!r->events.empty())
        r->events.back().outputs.assign(outputs.end() - static_cast<std::ptrdiff_t>(count), outputs.end());
}

// Installs the observer on this thread for its lifetime.
class ObserverScope {
public:
    explicit ObserverScope(Recorder& r) : m_previous(t_recorder) {
        t_recorder = &r;
        m_handle = at::addThreadLocalCallback(
            at::RecordFunctionCallback(&onEnter, &onExit).needsInputs(true).needsOutputs(true).scopes(
                {at::RecordScope::FUNCTION}));
    }
    ~ObserverScope() {
        at::removeCallback(m_handle);
        t_recorder = m_previous;
    }
    ObserverScope(const ObserverScope&) = delete;
    ObserverScope& operator=(const ObserverScope&) = delete;

private:
    Recorder* m_previous;
    at::CallbackHandle m_handle;
};

// ---- reading operator arguments ------------------------------------------


// Fills the geometry of a conv-like event; false if the event is not 2-D.
bool describeLayer(const OpEvent& e, Layer& l, int64_t imageBatch) {
    const at::Tensor* in = tensorArg(e, 0);
    const at::Tensor* out = firstOutput(e);
    if (!in || !out || in->dim() != 4 || out->dim() != 4)
        return false;
    l.op = e.op;
    l.in_channels = in->size(1);
    l.out_channels = out->size(1);
    l.input_size = {in->size(2), in->size(3)};
    l.feature_size = {out->size(2), out->size(3)};
    const auto& a = e.inputs;
    if (isGridSampler(e.op)) {
        describeGridSampler(e, imageBatch, l);
    } else if (e.op == "deformscope::deform_roi_pool" || e.op == "torchvision::roi_align") {
        // deform_roi_pool(input, rois, offset, mask, pooled_h, pooled_w, spatial_scale, sampling_ratio, gamma, use_mask);
        // roi_align(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned).
        const at::Tensor* rois = tensorArg(e, 1);
        if (!rois || rois->dim() != 2 || rois->size(1) != 5 || rois->size(0) == 0)
            return false;
        const bool ours = e.op == "deformscope::deform_roi_pool";
        const at::Tensor* offset = ours ? tensorArg(e, 2) : nullptr;
        l.kind = offset && offset->numel() > 0 ? LayerKind::DeformRoiPool : LayerKind::RoiPool;
        l.use_mask = ours && a.size() > 9 && a[9].toBool();
        l.roi.spatialScale = (ours ? a[6] : a[2]).toDouble();
        l.roi.samplingRatio = intOf(ours ? a[7] : a[5]);
        l.roi.gamma = ours ? a[8].toDouble() : 0.0;
        l.roi.aligned = ours ? true : a[6].toBool();
        const at::Tensor r = rois->detach().to(at::kCPU, at::kDouble);
        const at::Tensor first = r.select(1, 0).trunc().eq(0);
        l.roi.rois = std::max<int64_t>(1, first.sum().item<int64_t>());
        const int64_t row = first.any().item<bool>() ? first.to(at::kLong).argmax().item<int64_t>() : 0;
        for (int i = 0; i < 4; ++i)
            l.roi.box[size_t(i)] = r[row][i + 1].item<double>();
        l.groups = l.in_channels;
    } else if (e.op == "torchvision::deform_conv2d" || e.op == "deformscope::deform_conv2d") {
        const at::Tensor* w = tensorArg(e, 1);
        l.use_mask = a.size() > 13 && a[13].toBool();
        l.kind = l.use_mask ? LayerKind::DcnV2 : LayerKind::DcnV1;
        l.kernel = {w->size(2), w->size(3)};
        l.stride = {intOf(a[5]), intOf(a[6])};
        l.padding = {intOf(a[7]), intOf(a[8])};
        l.dilation = {intOf(a[9]), intOf(a[10])};
        l.groups = intOf(a[11]);
        l.offset_groups = intOf(a[12]);
    } else if (e.op == "deformscope::deform_kernel2d") {
        // (input, weight [C,1,Sh,Sw], kernel_offset, offset, bias, stride_h, stride_w, pad_h, pad_w,
        //  dilation_h, dilation_w, kernel_h, kernel_w, use_offset)
        const at::Tensor* w = tensorArg(e, 1);
        const at::Tensor* koff = tensorArg(e, 2);
        l.kind = LayerKind::Dk;
        l.kernel = {intOf(a[11]), intOf(a[12])};
        l.scope = {w->size(2), w->size(3)};
        l.stride = {intOf(a[5]), intOf(a[6])};
        l.padding = {intOf(a[7]), intOf(a[8])};
        l.dilation = {intOf(a[9]), intOf(a[10])};
        l.groups = l.in_channels; // depthwise
        l.offset_groups = 1;
        l.use_offset = a.size() > 13 && a[13].toBool();
        l.global_kernel_offsets = koff && koff->dim() == 4 && koff->size(2) == 1 && koff->size(3) == 1 &&
                                  (l.feature_size[0] > 1 || l.feature_size[1] > 1);
    } else if (e.op == "aten::conv2d" || e.op == "aten::convolution" || e.op == "aten::_convolution" ||
               e.op == "aten::conv_transpose2d") {
        const at::Tensor* w = tensorArg(e, 1);
        l.kernel = {w->size(2), w->size(3)};
        l.stride = pairOf(a[3], 1);
        const bool transposed =
            e.op == "aten::conv_transpose2d" || (e.op != "aten::conv2d" && a.size() > 6 && a[6].isBool() && a[6].toBool());
        const size_t dilationArg = e.op == "aten::conv_transpose2d" ? 7 : 5;
        l.dilation = pairOf(a[dilationArg], 1);
        if (a[4].isString()) { // conv2d(padding="same"|"valid")
            const bool same = a[4].toStringRef() == "same";
            l.padding = {same ? l.dilation[0] * (l.kernel[0] - 1) / 2 : 0, same ? l.dilation[1] * (l.kernel[1] - 1) / 2 : 0};
        } else {
            l.padding = pairOf(a[4], 0);
        }
        const size_t groupsArg = e.op == "aten::conv2d" ? 6 : (e.op == "aten::conv_transpose2d" ? 6 : 8);
        l.groups = groupsArg < a.size() ? intOf(a[groupsArg]) : 1;
        l.kind = transposed ? LayerKind::ConvTranspose : LayerKind::Conv;
    } else if (e.op == "aten::max_pool2d" || e.op == "aten::max_pool2d_with_indices" || e.op == "aten::avg_pool2d") {
        l.kind = LayerKind::Pool;
        l.mode = e.op == "aten::avg_pool2d" ? "avg" : "max";
        l.kernel = pairOf(a[1], 1);
        l.stride = pairOf(a[2], 0);
        if (l.stride[0] == 0) // an empty stride means stride = kernel
            l.stride = l.kernel;
        l.padding = pairOf(a[3], 0);
        if (l.mode == "max")
            l.dilation = pairOf(a[4], 1);
        l.groups = l.in_channels;
    } else if (e.op == "aten::adaptive_avg_pool2d" || e.op == "aten::adaptive_max_pool2d") {
        l.kind = LayerKind::Pool;
        l.mode = e.op == "aten::adaptive_avg_pool2d" ? "adaptive_avg" : "adaptive_max";
        for (int i = 0; i < 2; ++i) {
            const int64_t inSize = l.input_size[i], outSize = std::max<int64_t>(1, l.feature_size[i]);
            l.stride[i] = inSize / outSize;
            l.kernel[i] = inSize - (outSize - 1) * l.stride[i];
        }
        l.groups = l.in_channels;
    } else { // upsampling
        l.kind = LayerKind::Upsample;
        std::string mode = e.op.substr(e.op.find("upsample_") + 9); // "bilinear2d", "nearest2d", ...
        mode = mode.substr(0, mode.find("2d"));
        if (a.size() > 2 && a[2].isBool() && a[2].toBool())
            mode += " align_corners";
        l.mode = mode;
        for (int i = 0; i < 2; ++i)
            l.stride[i] = 1;
        l.groups = l.in_channels;
    }
    return true;
}

// Module paths are unique per layer: a module whose forward ran several
// conv-like ops (or ran twice) gets ":op" and "#n" suffixes.
std::string uniqueName(const OpEvent& e, std::map<std::string, int>& used) {
    std::string base = e.modulePath;
    if (base.empty())
        base = e.function.empty() ? e.op.substr(e.op.find("::") + 2) : e.function;
    std::string name = base;
    if (used.count(name)) {
        name = base + ":" + e.op.substr(e.op.find("::") + 2);
        for (int n = 2; used.count(name); ++n)
            name = base + ":" + e.op.substr(e.op.find("::") + 2) + "#" + std::to_string(n);
    }
    used[name] = 1;
    return name;
}

bool looksLikeSizeError(const std::string& m) {
    return m.find("too small") != std::string::npos || m.find("non-positive") != std::string::npos ||
           m.find("output would be empty") != std::string::npos || m.find("Output size is too small") != std::string::npos ||
           m.find("input image") != std::string::npos || m.find("Kernel size can't be greater") != std::string::npos ||
           m.find("must be greater than") != std::string::npos;
}

Capture buildCapture(const LoadedModel& model, const at::Tensor& input, const CaptureOptions& options) {
    Recorder recorder;
    Capture capture;
    // Several input frames lie side by side in the input: forward gets them apart.
    const std::vector<at::Tensor> frames = model.splitFrames(input);
    model.settleFrameLayout(frames);
    {
        // Unoptimised execution keeps the module call structure that names layers.
        torch::jit::GraphOptimizerEnabledGuard unoptimized(false);
        ObserverScope observe(recorder);
        std::string note;
        capture.output = model.forwardFrames(frames, &note);
        if (!note.empty())
            capture.notes.push_back(note);
    }
    const auto& events = recorder.events;
    const auto producers = resolveProducers(events);
    const auto fromFrames = frameMasks(events, frames);

    // Hand-written samplers: a recognised one turns the conv reading its values into
    // the deformable layer; one not understood stands as a layer at its first gather.
    const auto samplers0 = std::chrono::steady_clock::now();
    const auto handWritten =
        options.readSamplers ? findHandWrittenSamplers(events, producers, options.keepTensors)
                             : std::vector<HandWrittenSampler>{};
    std::map<size_t, size_t> dcnAt, unrecognisedAt; // event -> handWritten index
    for (size_t h = 0; h < handWritten.size(); ++h) {
        if (handWritten[h].recognised)
            dcnAt[size_t(handWritten[h].conv)] = h;
        else
            unrecognisedAt[size_t(handWritten[h].gathers.front())] = h;
    }
    const int64_t imageBatch = input.size(0);
    capture.samplerSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - samplers0).count();

    // Map conv-like events to layer indices.
    std::vector<int> layerOf(events.size(), -1);
    std::vector<Layer> layers;
    std::vector<size_t> eventOfLayer;
    std::vector<int> handOfLayer; // handWritten index per layer, -1 for none
    std::vector<const OpAdapter*> adapterOfLayer; // custom operators read through a declared adapter
    std::map<std::string, int> used;
    for (size_t i = 0; i < events.size(); ++i) {
        Layer l;
        int hand = -1;
        const OpAdapter* adapter = nullptr;
        if (const auto u = unrecognisedAt.find(i); u != unrecognisedAt.end()) {
            const HandWrittenSampler& h = handWritten[u->second];
            hand = int(u->second);
            l.kind = LayerKind::UnrecognisedSampler;
            l.op = events[i].op;
            l.reason = "a hand-written sampler (" + std::to_string(h.gathers.size()) + " data-dependent gathers): " + h.reason;
            if (h.value.dim() == 4) {
                l.in_channels = l.out_channels = h.value.size(1);
                l.input_size = l.feature_size = {h.value.size(2), h.value.size(3)};
            }
        } else if (!options.readSamplers && (isGridSampler(events[i].op) || isCustomOp(events[i]))) {
            continue;
        } else if (const OpAdapter* a = adapterFor(model, events[i].op); a && isCustomOp(events[i])) {
            std::string why;
            adapter = a;
            if (!describeAdapted(events[i], *a, l, why)) {
                adapter = nullptr;
                l = unrecognisedCustomOp(events[i], "does not fit its declared adapter: " + why);
            }
        } else if (isCustomOp(events[i])) {
            l = unrecognisedCustomOp(events[i], "is not known to DeformScope: its reads are not understood "
                                                "(declare it with an adapter)");
        } else if (!isConvLike(events[i].op) || !describeLayer(events[i], l, imageBatch)) {
            continue;
        }
        l.index = static_cast<int>(layers.size());
        l.name = uniqueName(events[i], used);
        if (const auto d = dcnAt.find(i); d != dcnAt.end()) {
            const HandWrittenSampler& h = handWritten[d->second];
            hand = int(d->second);
            const std::string name = l.name;
            l = h.geometry;
            l.index = static_cast<int>(layers.size());
            l.name = name;
            l.reason = h.reason;
            // Named after the module that holds the gathers (the DeformConv2d itself) when free.
            if (!h.name.empty() && !used.count(h.name)) {
                used.erase(name);
                used[h.name] = 1;
                l.name = h.name;
            }
        }
        layerOf[i] = l.index;
        if (hand >= 0 && !handWritten[size_t(hand)].recognised)
            for (int g : handWritten[size_t(hand)].gathers)
                layerOf[size_t(g)] = l.index;
        layers.push_back(std::move(l));
        eventOfLayer.push_back(i);
        handOfLayer.push_back(hand);
        adapterOfLayer.push_back(adapter);
    }
    // The grid_sample calls of each module call, in order (deformable attention's levels):
    // a call reading a map size already seen in the run starts a new run.
    std::map<size_t, std::vector<size_t>> siblingsOf;
    {
        std::map<std::string, std::vector<std::vector<size_t>>> runs;
        for (size_t i = 0; i < events.size(); ++i) {
            if (!isGridSampler(events[i].op) || layerOf[i] < 0)
                continue;
            auto& list = runs[events[i].modulePath];
            const auto size = tensorArg(events[i], 0)->sizes().vec();
            bool repeat = list.empty();
            if (!repeat)
                for (size_t j : list.back())
                    repeat = repeat || tensorArg(events[j], 0)->sizes().vec() == size;
            if (repeat)
                list.emplace_back();
            list.back().push_back(i);
        }
        for (const auto& [path, calls] : runs)
            for (const auto& call : calls)
                for (size_t i : call)
                    siblingsOf[i] = call;
    }

    // The layers that produced a set of producer events: a conv-like producer is
    // itself the answer; any other op is looked through to its own inputs (memoised),
    // except the arguments that only weight a sampler's reads (`weighting`).
    std::vector<std::optional<std::vector<int>>> memo(events.size());
    std::set<std::pair<size_t, size_t>> weighting; // (event, argument)
    std::function<void(const std::vector<int>&, std::set<int>&)> collect;
    auto ancestorsOf = [&](int e) -> const std::vector<int>& {
        if (!memo[e]) {
            memo[e].emplace(); // guards against revisiting
            std::set<int> found;
            for (size_t a = 0; a < producers[e].size(); ++a)
                if (!weighting.count({size_t(e), a}))
                    collect(producers[e][a], found);
            memo[e] = std::vector<int>(found.begin(), found.end());
        }
        return *memo[e];
    };
    collect = [&](const std::vector<int>& eventsIn, std::set<int>& found) {
        for (int p : eventsIn) {
            if (p == kNoProducer)
                continue;
            if (layerOf[p] >= 0) {
                found.insert(layerOf[p]);
            } else {
                const auto& up = ancestorsOf(p);
                found.insert(up.begin(), up.end());
            }
        }
    };
    // Layers feeding argument `arg` of event `e`.
    auto sourcesOf = [&](size_t e, size_t arg) {
        std::set<int> found;
        if (arg < producers[e].size())
            collect(producers[e][arg], found);
        return std::vector<int>(found.begin(), found.end());
    };

    capture.tensors.resize(layers.size());
    for (Layer& l : layers) {
        const size_t e = eventOfLayer[static_cast<size_t>(l.index)];
        const HandWrittenSampler* hand =
            handOfLayer[size_t(l.index)] >= 0 ? &handWritten[size_t(handOfLayer[size_t(l.index)])] : nullptr;
        const OpAdapter* adapter = adapterOfLayer[size_t(l.index)];
        l.inputs = hand      ? sourcesOf(size_t(hand->inputEvent), 0)
                   : adapter ? sourcesOf(e, size_t(adapter->input))
                             : sourcesOf(e, 0);
        {
            const size_t fe = hand ? size_t(hand->inputEvent) : e, arg = adapter ? size_t(adapter->input) : 0;
            assignFrames(l, arg < fromFrames[fe].size() ? fromFrames[fe][arg] : 0, fromFrames[e]);
        }
        // The layer that produced argument `i` (its last source), -1 for none.
        auto producer = [&](int i) {
            const auto sources = sourcesOf(e, i);
            return sources.empty() ? -1 : sources.back();
        };
        if (l.kind == LayerKind::Dk) {
            l.kernel_offset_source = producer(2);
            if (l.use_offset)
                l.offset_source = producer(3);
        }
        if (hand && hand->recognised) {
            l.offset_source = layerOf[size_t(hand->offsetEvent)];
            if (hand->maskEvent >= 0) {
                const auto m = sourcesOf(size_t(hand->maskEvent), 0);
                l.mask_source = m.empty() ? -1 : m.back();
            }
        } else if (hand) {
            const auto g = sourcesOf(size_t(hand->gathers.front()), 2);
            l.grid_source = g.empty() ? -1 : g.back();
        } else if (adapter) {
            l.offset_source = producer(adapter->offset);
            if (l.use_mask)
                l.mask_source = producer(adapter->mask);
        } else if (l.deformable()) {
            l.offset_source = producer(2);
            if (l.use_mask)
                l.mask_source = producer(3);
        } else if (l.isRoiPool()) {
            l.roi.roisSource = producer(1);
            if (l.kind == LayerKind::DeformRoiPool)
                l.offset_source = producer(2);
            if (l.use_mask)
                l.mask_source = producer(3);
        }
        std::optional<SamplerWeighting> weights;
        if (isGridSampler(events[e].op)) {
            const auto t0 = std::chrono::steady_clock::now();
            settleGridSampler(l, layers, e, events, producers, sourcesOf, siblingsOf[e]);
            // The attention / mask weights multiply the reads: a modulation, not data the
            // layers after it read. Their branch is left out of those layers' inputs (it
            // would trace the mask's own convolution as if it were read); its layer is the
            // sampler's mask source. The multiplication comes after this sampler, so no
            // layer settled before here has looked through it (layers go in event order).
            weights = attentionWeights(events, e, l);
            if (weights) {
                weighting.insert({weights->event, weights->arg});
                const auto m = sourcesOf(weights->event, weights->arg);
                l.mask_source = m.empty() ? -1 : m.back();
            }
            capture.samplerSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        computeReceptiveField(l, layers);
        if (options.keepTensors) {
            LayerTensors& t = capture.tensors[static_cast<size_t>(l.index)];
            t.input = *tensorArg(events[e], 0);
            t.output = *firstOutput(events[e]);
            if (l.kind == LayerKind::UnrecognisedSampler && !hand)
                t.reads = {t.input};
            if (adapter) {
                t.input = *tensorArg(events[e], size_t(adapter->input));
                t.weight = *tensorArg(events[e], size_t(adapter->weight));
                t.offset = torchvisionOffsets(*tensorArg(events[e], size_t(adapter->offset)), adapter->planar);
                if (l.use_mask)
                    t.mask = *tensorArg(events[e], size_t(adapter->mask));
                continue;
            }
            if (hand) {
                t.input = hand->recognised ? hand->input : hand->value;
                t.reads = hand->reads;
                t.offset = hand->offset;
                t.mask = hand->mask;
                if (hand->recognised && tensorArg(events[e], 1))
                    t.weight = *tensorArg(events[e], 1);
                continue;
            }
            if (l.isRoiPool()) {
                t.rois = *tensorArg(events[e], 1);
                if (l.kind == LayerKind::DeformRoiPool)
                    t.offset = *tensorArg(events[e], 2);
                if (l.use_mask && tensorArg(events[e], 3))
                    t.mask = *tensorArg(events[e], 3);
                continue;
            }
            if (l.isSampler()) {
                t.grid = *tensorArg(events[e], 1);
                if (weights)
                    t.mask = weights->weights;
                continue;
            }
            const bool hasWeight =
                l.kind == LayerKind::Conv || l.kind == LayerKind::ConvTranspose || l.deformable() || l.kind == LayerKind::Dk;
            if (hasWeight && tensorArg(events[e], 1))
                t.weight = *tensorArg(events[e], 1);
            if (l.kind == LayerKind::Dk) {
                if (tensorArg(events[e], 2))
                    t.kernelOffset = *tensorArg(events[e], 2);
                if (l.use_offset && tensorArg(events[e], 3))
                    t.offset = *tensorArg(events[e], 3);
            }
            if (l.deformable()) {
                t.offset = *tensorArg(events[e], 2);
                if (l.use_mask)
                    t.mask = *tensorArg(events[e], 3);
            }
        }
    }
    capture.graph = LayerGraph(std::move(layers), {input.size(2), frames.front().size(3)}, model.inputNames());
    return capture;
}

// The network's total stride: the largest step between feature positions, in image pixels.
int64_t totalStride(const LayerGraph& g) {
    double jump = 1;
    for (const Layer& l : g.layers())
        if (!l.isRoiPool()) // a RoI's bins are as wide as the box makes them
            jump = std::max({jump, l.jump[0], l.jump[1]});
    return int64_t(jump);
}

} // namespace

Capture captureForward(const LoadedModel& model, const at::Tensor& input, const CaptureOptions& options) {
    if (input.dim() != 4 || input.size(1) != 3)
        throw ModelError(model.path() + ": the input must be [N, 3, H, W], got " + c10::str(input.sizes()));
    // Captured tensors stay ordinary (autograd-capable) even if the caller runs in inference mode.
    c10::InferenceMode ordinaryTensors(false);
    const auto atLeast = [](int64_t stride) {
        return "use an input of at least " + std::to_string(stride) + " x " + std::to_string(stride) + " pixels";
    };
    // One frame's width (several frames lie side by side).
    const int64_t frameW = input.size(3) / std::max<int64_t>(1, model.inputCount());
    Capture capture;
    try {
        capture = buildCapture(model, input, options);
    } catch (const ModelError& e) {
        if (!looksLikeSizeError(e.what()))
            throw;
        // Unpadded layers fail outright on small inputs: find the total stride at a comfortable size.
        std::string hint;
        try {
            const int64_t stride = totalStride(layerGraph(model, {512, 512}));
            hint = " The network's total stride is " + std::to_string(stride) + ": " + atLeast(stride) + ".";
        } catch (const std::exception&) {
        }
        throw ModelError(model.path() + ": the input (" + std::to_string(input.size(2)) + " x " +
                         std::to_string(frameW) + ") is smaller than the network's total stride allows." +
                         hint + " (" + e.what() + ")");
    }
    // Padded layers still run on inputs smaller than the total stride, but every
    // deep feature map then sees padding only: refuse, and say why.
    const int64_t stride = totalStride(capture.graph);
    if (std::min(input.size(2), frameW) < stride)
        throw ModelError(model.path() + ": the input (" + std::to_string(input.size(2)) + " x " +
                         std::to_string(frameW) + ") is smaller than the network's total stride (" +
                         std::to_string(stride) + "): " + atLeast(stride));
    return capture;
}

LayerGraph layerGraph(const LoadedModel& model, std::array<int64_t, 2> size) {
    CaptureOptions options;
    options.keepTensors = false;
    const at::Tensor zeros = at::zeros({1, 3, size[0], size[1] * model.inputCount()});
    return captureForward(model, zeros, options).graph;
}

} // namespace deformscope::model
