// Samplers in a captured forward: grid_sample layers (their layout, kind and
// query map) and samplers written by hand with aten::gather (the seed article's
// DeformConv2d read exactly; anything else marked as not understood).
#include "core/model/capture_internal.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace deformscope::model::detail {

std::vector<int> upstream(const Producers& producers, size_t e, int arg,
                          const std::function<bool(int)>& stop, std::vector<int>* stops) {
    std::set<int> seen, stopped;
    std::vector<int> stack;
    auto push = [&](size_t event, int a) {
        for (size_t i = 0; i < producers[event].size(); ++i)
            if (a < 0 || size_t(a) == i)
                for (int p : producers[event][i])
                    if (p != kNoProducer)
                        stack.push_back(p);
    };
    push(e, arg);
    constexpr size_t kLimit = 20000; // a sampler's own arithmetic is a few hundred operators at most
    while (!stack.empty() && seen.size() < kLimit) {
        const int p = stack.back();
        stack.pop_back();
        if (seen.count(p) || stopped.count(p))
            continue;
        if (stop(p)) {
            stopped.insert(p);
            continue;
        }
        seen.insert(p);
        push(size_t(p), -1);
    }
    if (stops)
        stops->assign(stopped.begin(), stopped.end());
    return std::vector<int>(seen.begin(), seen.end());
}

namespace {

bool isReshape(const std::string& op) {
    return op == "aten::view" || op == "aten::reshape" || op == "aten::contiguous" || op == "aten::flatten" ||
           op == "aten::unsqueeze" || op == "aten::expand" || op == "aten::clone";
}

} // namespace

// ---- grid_sample ---------------------------------------------------------------

void describeGridSampler(const OpEvent& e, int64_t imageBatch, Layer& l) {
    // grid_sampler(input [B, C, Hv, Wv], grid [B, A, Bd, 2], interpolation, padding, align_corners) -> [B, C, A, Bd]
    const at::Tensor& value = *tensorArg(e, 0);
    const at::Tensor* grid = tensorArg(e, 1);
    l.kind = LayerKind::Sampler;
    l.out_channels = l.in_channels;
    l.groups = 1;
    SamplerInfo& s = l.sampler;
    s.valueSize = {value.size(2), value.size(3)};
    const auto& a = e.inputs;
    static const char* modes[] = {"bilinear", "nearest", "bicubic"};
    static const char* pads[] = {"zeros", "border", "reflection"};
    if (a.size() > 2 && a[2].isInt() && a[2].toInt() >= 0 && a[2].toInt() < 3)
        s.interpolation = modes[a[2].toInt()];
    if (a.size() > 3 && a[3].isInt() && a[3].toInt() >= 0 && a[3].toInt() < 3)
        s.padding = pads[a[3].toInt()];
    s.alignCorners = a.size() > 4 && a[4].isBool() && a[4].toBool();
    const int64_t batch = grid ? grid->size(0) : value.size(0);
    s.rows = imageBatch > 0 && batch % imageBatch == 0 ? batch / imageBatch : batch;
    s.points = 1;
    l.mode = s.interpolation;
}

void settleGridSampler(Layer& l, const std::vector<Layer>& layers, size_t event, const std::vector<OpEvent>& events,
                       const Producers& producers, const std::function<std::vector<int>(size_t, size_t)>& sourcesOf,
                       const std::vector<size_t>& siblings) {
    SamplerInfo& s = l.sampler;
    // The value map: of the layers feeding it (a concatenation of levels, split
    // again, feeds from all of them), the ones of its size.
    std::vector<int> same;
    for (int i : l.inputs)
        if (layers[size_t(i)].feature_size == s.valueSize)
            same.push_back(i);
    if (!same.empty())
        l.inputs = same;
    const std::vector<int> gridSources = sourcesOf(event, 1);
    l.grid_source = gridSources.empty() ? -1 : gridSources.back();
    const int64_t A = l.feature_size[0], Bd = l.feature_size[1];

    // Queries: the grid's rows are the positions of a map its offsets were predicted
    // on (a layer the grid comes from, or the value map itself), its columns points.
    auto queriesOn = [&](std::array<int64_t, 2> size) { return size[0] * size[1] == A && size[1] != Bd && A > 1; };
    int query = -2; // -2: not queries; -1: the value map's own grid
    for (auto it = gridSources.rbegin(); it != gridSources.rend() && query == -2; ++it)
        if (queriesOn(layers[size_t(*it)].feature_size))
            query = *it;
    if (query == -2 && queriesOn(s.valueSize))
        query = l.inputs.empty() ? -1 : l.inputs.back();
    if (query != -2) {
        s.layout = SamplerInfo::Layout::Queries;
        s.points = Bd;
        s.querySource = query;
        l.feature_size = query >= 0 ? layers[size_t(query)].feature_size : s.valueSize;
        // Deformable attention: one call per feature level, the same queries, maps of several sizes.
        std::set<std::pair<int64_t, int64_t>> sizes;
        int level = 0;
        for (size_t i = 0; i < siblings.size(); ++i) {
            const at::Tensor* v = tensorArg(events[siblings[i]], 0);
            sizes.insert({v->size(2), v->size(3)});
            if (siblings[i] == event)
                level = int(i);
        }
        if (siblings.size() > 1 && sizes.size() > 1) {
            l.kind = LayerKind::DeformAttn;
            s.level = level;
            s.levels = int(siblings.size());
        } else {
            l.kind = LayerKind::DcnV3;
        }
        return;
    }
    s.layout = SamplerInfo::Layout::Spatial;
    // Flow warping: every pixel reads its own map, from a grid the data predicted
    // (not an affine transform of a fixed base grid).
    bool affine = false;
    const auto isLayer = [&](int i) { return isConvLike(events[size_t(i)].op); };
    for (int i : upstream(producers, event, 1, isLayer))
        if (events[size_t(i)].op == "aten::affine_grid_generator")
            affine = true;
    const bool sameSize = l.feature_size == s.valueSize;
    l.kind = sameSize && !affine && l.grid_source >= 0 ? LayerKind::FlowWarp : LayerKind::Sampler;
}

std::optional<SamplerWeighting> attentionWeights(const std::vector<OpEvent>& events, size_t event, const Layer& l) {
    const SamplerInfo& si = l.sampler;
    const at::Tensor* out = firstOutput(events[event]);
    if (si.layout != SamplerInfo::Layout::Queries || !out || out->dim() != 4)
        return std::nullopt;
    const int64_t B = out->size(0), Q = out->size(2), P = out->size(3);
    std::set<const void*> carried{out->unsafeGetTensorImpl()}; // the output and its reshapes
    auto carries = [&](const c10::IValue& v) {
        if (v.isTensor())
            return carried.count(v.toTensor().unsafeGetTensorImpl()) > 0;
        if (v.isTensorList())
            for (const at::Tensor& t : v.toTensorVector())
                if (carried.count(t.unsafeGetTensorImpl()))
                    return true;
        return false;
    };
    bool stacked = false;
    // A sampler's weighting follows within its own core: a few dozen operators at most.
    for (size_t i = event + 1; i < events.size() && i < event + 200; ++i) {
        const OpEvent& e = events[i];
        bool reads = false;
        for (const c10::IValue& v : e.inputs)
            reads = reads || carries(v);
        if (!reads)
            continue;
        if (e.op == "aten::mul") {
            for (size_t a = 0; a < e.inputs.size(); ++a) {
                const c10::IValue& v = e.inputs[a];
                if (!v.isTensor() || carries(v))
                    continue;
                const at::Tensor w = v.toTensor().detach();
                // Broadcast over channels: B·Q·P weights (times the levels when the levels were stacked).
                if (w.numel() == B * Q * P && !stacked)
                    return SamplerWeighting{w.reshape({B, Q, P}), i, a};
                if (stacked && si.levels > 1 && w.numel() == B * Q * si.levels * P)
                    return SamplerWeighting{w.reshape({B, Q, si.levels, P}).select(2, si.level), i, a};
            }
            return std::nullopt;
        }
        if (e.op == "aten::stack" || e.op == "aten::cat")
            stacked = true;
        else if (!isReshape(e.op)) // a transpose or anything else: the layout is no longer known
            return {};
        if (const at::Tensor* o = firstOutput(e))
            carried.insert(o->unsafeGetTensorImpl());
    }
    return {};
}

// ---- hand-written samplers (aten::gather) ------------------------------------------

namespace {

bool isPad(const std::string& op) {
    return op == "aten::pad" || op == "aten::constant_pad_nd" || op == "aten::zero_pad2d";
}


// The events producing argument `arg` of `e` (kNoProducer: a model input or constant).
int producerOf(const Producers& producers, size_t e, size_t arg) {
    if (arg >= producers[e].size() || producers[e][arg].empty())
        return kNoProducer;
    return producers[e][arg].front();
}

// Planar positions [N, 2K, h, w] from a floored tensor in either layout.
at::Tensor planar(const at::Tensor& p, int64_t K) {
    if (p.dim() == 4 && p.size(3) == 2 * K)
        return p.permute({0, 3, 1, 2});
    if (p.dim() == 4 && p.size(1) == 2 * K)
        return p;
    return {};
}

// Fits base[n-th tap] = c0 + i·s + r·d along one axis (i: output index along the
// axis, r: tap index along it); the largest deviation goes to `err`.
struct AxisFit {
    double c0 = 0, s = 1, d = 1, err = 0;
};
AxisFit fitAxis(const at::Tensor& base, int64_t kh, int64_t kw, bool rows) {
    // base [K, h, w] for one axis.
    const int64_t h = base.size(1), w = base.size(2);
    auto at3 = [&](int64_t k, int64_t y, int64_t x) { return base[k][y][x].item<double>(); };
    AxisFit f;
    f.c0 = at3(0, 0, 0);
    if (rows) {
        f.s = h > 1 ? at3(0, 1, 0) - f.c0 : 1;
        f.d = kh > 1 ? at3(kw, 0, 0) - f.c0 : 1;
    } else {
        f.s = w > 1 ? at3(0, 0, 1) - f.c0 : 1;
        f.d = kw > 1 ? at3(1, 0, 0) - f.c0 : 1;
    }
    f.s = std::round(f.s);
    f.d = std::round(f.d);
    if (std::abs(f.c0 - std::round(f.c0)) < 1e-3) // float32 rounding of p - offset: the origin is a pixel
        f.c0 = std::round(f.c0);
    const auto opts = base.options();
    const at::Tensor k = at::arange(kh * kw, opts);
    const at::Tensor r = rows ? (k / double(kw)).floor() : k - (k / double(kw)).floor() * double(kw);
    const at::Tensor i = rows ? at::arange(h, opts).view({1, h, 1}) : at::arange(w, opts).view({1, 1, w});
    const at::Tensor model = f.c0 + i * f.s + r.view({kh * kw, 1, 1}) * f.d;
    f.err = (base - model).abs().max().item<double>();
    return f;
}

// Tries to read a gather group as the seed article's DeformConv2d; fills `s` or
// says in s.reason what did not match.
void matchDeformConv(HandWrittenSampler& s, const std::vector<OpEvent>& events, const Producers& producers,
                     const std::vector<int>& floors, const std::vector<int>& sigmoids, bool keepTensors) {
    const OpEvent& conv = events[size_t(s.conv)];
    const at::Tensor* w = tensorArg(conv, 1);
    const at::Tensor* out = firstOutput(conv);
    const bool plainConv = conv.op == "aten::conv2d" || conv.op == "aten::_convolution" || conv.op == "aten::convolution";
    if (!plainConv || !w || !out || w->dim() != 4) {
        s.reason = "the sampled values are not read by a convolution (" + conv.op + ")";
        return;
    }
    const int64_t kh = w->size(2), kw = w->size(3), K = kh * kw;
    const auto stride = conv.inputs.size() > 3 && conv.inputs[3].isList() ? conv.inputs[3].toIntVector() : std::vector<int64_t>{};
    if (stride.size() != 2 || stride[0] != kh || stride[1] != kw) {
        s.reason = "the convolution after the gathers (" + conv.modulePath + ") does not step by its kernel size";
        return;
    }
    if (floors.empty()) {
        s.reason = "its gather indices are not floored positions (no floor() before the gathers)";
        return;
    }
    const at::Tensor* floored = tensorArg(events[size_t(floors.back())], 0);
    // float32 as captured: the grid's integers and a 1e-3 tolerance are exact enough, and cheap.
    const at::Tensor P = floored ? planar(floored->detach().to(at::kFloat), K) : at::Tensor();
    if (!P.defined() || P.size(2) != out->size(2) || P.size(3) != out->size(3)) {
        s.reason = "its floored positions do not have 2·" + std::to_string(K) + " values per output position";
        return;
    }
    // The offsets: the conv-like layer the positions come from.
    std::vector<int> convs;
    upstream(producers, size_t(floors.back()), 0, [&](int i) { return isConvLike(events[size_t(i)].op); },
             &convs);
    const at::Tensor* offsets = convs.empty() ? nullptr : firstOutput(events[size_t(convs.back())]);
    if (!offsets || offsets->dim() != 4 || offsets->size(1) != 2 * K || offsets->size(2) != P.size(2) ||
        offsets->size(3) != P.size(3)) {
        s.reason = "its positions do not come from an offset map of 2·" + std::to_string(K) + " channels";
        return;
    }
    const int64_t H = s.value.size(2), W = s.value.size(3);
    int64_t padTop = 0, padLeft = 0;
    const at::Tensor x = s.input;
    if ((H - x.size(2)) % 2 != 0 || (W - x.size(3)) % 2 != 0) {
        s.reason = "its padding is not symmetric";
        return;
    }
    padTop = (H - x.size(2)) / 2;
    padLeft = (W - x.size(3)) / 2;
    // p = p_0 + p_n + offset: what remains after the offsets must be a regular grid.
    const at::Tensor base = P - offsets->detach().to(at::kFloat); // [N, 2K, h, w], planar
    const AxisFit fy = fitAxis(base[0].narrow(0, 0, K), kh, kw, true);
    const AxisFit fx = fitAxis(base[0].narrow(0, K, K), kh, kw, false);
    if (fy.err > 1e-3 || fx.err > 1e-3 || fy.s < 1 || fx.s < 1 || fy.d < 1 || fx.d < 1) {
        s.reason = "its positions are not a regular grid plus the offsets of " + events[size_t(convs.back())].modulePath +
                   " (planar layout: rows first, then columns)";
        return;
    }
    s.offsetEvent = convs.back();
    // Positions as the reads use them: clamped to the padded map, then unpadded.
    if (keepTensors) {
    const at::Tensor& Pd = P; // float32, as the model computed the positions
    const at::Tensor py = Pd.narrow(1, 0, K).clamp(0, double(H - 1)), px = Pd.narrow(1, K, K).clamp(0, double(W - 1));
    const auto opts = Pd.options();
    const at::Tensor k = at::arange(K, opts), r = (k / double(kw)).floor(), c = k - r * double(kw);
    const at::Tensor gy = fy.c0 + at::arange(P.size(2), opts).view({1, 1, -1, 1}) * fy.s + r.view({1, K, 1, 1}) * fy.d;
    const at::Tensor gx = fx.c0 + at::arange(P.size(3), opts).view({1, 1, 1, -1}) * fx.s + c.view({1, K, 1, 1}) * fx.d;
    // torchvision layout: channel 2k the row offset of tap k, 2k+1 its column offset.
    s.offset = at::stack({py - gy, px - gx}, 2).reshape({P.size(0), 2 * K, P.size(2), P.size(3)}).to(at::kFloat);
    }

    Layer& l = s.geometry;
    l.op = "aten::gather (hand-written deformable convolution)";
    l.kernel = {kh, kw};
    l.stride = {int64_t(fy.s), int64_t(fx.s)};
    l.dilation = {int64_t(fy.d), int64_t(fx.d)};
    l.padding = {padTop - int64_t(std::lround(fy.c0)), padLeft - int64_t(std::lround(fx.c0))};
    l.groups = conv.inputs.size() > 6 && conv.inputs[6].isInt() ? conv.inputs[6].toInt() : 1;
    l.offset_groups = 1;
    l.in_channels = x.size(1);
    l.out_channels = out->size(1);
    l.input_size = {x.size(2), x.size(3)};
    l.feature_size = {out->size(2), out->size(3)};
    // DCNv2: a sigmoid modulation multiplies the sampled values.
    for (int sg : sigmoids) {
        const at::Tensor* m = firstOutput(events[size_t(sg)]);
        if (!m || m->dim() != 4)
            continue;
        if (m->size(1) == K && m->size(2) == P.size(2))
            s.mask = *m;
        else if (m->size(3) == K && m->size(1) == P.size(2))
            s.mask = m->permute({0, 3, 1, 2});
        if (s.mask.defined()) {
            s.maskEvent = sg;
            break;
        }
    }
    l.use_mask = s.mask.defined();
    l.kind = l.use_mask ? LayerKind::DcnV2 : LayerKind::DcnV1;
    char origin[160];
    std::snprintf(origin, sizeof origin, "origin (%g, %g) on the input padded by (%lld, %lld)", fy.c0, fx.c0,
                  static_cast<long long>(padTop), static_cast<long long>(padLeft));
    s.reason = std::string("hand-written gather DeformConv2d: positions = grid + offsets of ") +
               events[size_t(s.offsetEvent)].modulePath + " (planar: rows, then columns), " + origin +
               ", clamped to the padded map" + (l.use_mask ? ", sigmoid modulation" : "");
    s.recognised = true;
}

} // namespace

std::vector<HandWrittenSampler> findHandWrittenSamplers(const std::vector<OpEvent>& events, const Producers& producers,
                                                       bool keepTensors) {
    const auto isLayer = [&](int i) { return isConvLike(events[size_t(i)].op); };
    // Group the data-dependent gathers by module and the map they read.
    std::map<std::pair<std::string, const void*>, size_t> groupOf;
    std::vector<HandWrittenSampler> found;
    std::vector<std::vector<int>> floorsOf; // per group: the floor() events its indices come from
    for (size_t i = 0; i < events.size(); ++i) {
        if (events[i].op != "aten::gather" || !tensorArg(events[i], 0))
            continue;
        std::vector<int> layersUp;
        const std::vector<int> indexUp = upstream(producers, i, 2, isLayer, &layersUp);
        if (layersUp.empty()) // indices that do not depend on the data: an ordinary gather
            continue;
        // The map it reads: back through reshapes to a 4-D tensor.
        at::Tensor value = *tensorArg(events[i], 0);
        int from = int(i);
        for (int p = producerOf(producers, i, 0); value.dim() != 4 && p != kNoProducer && isReshape(events[size_t(p)].op);
             p = producerOf(producers, size_t(p), 0)) {
            if (!tensorArg(events[size_t(p)], 0))
                break;
            value = *tensorArg(events[size_t(p)], 0);
            from = p;
        }
        const auto key = std::make_pair(events[i].modulePath, static_cast<const void*>(value.unsafeGetTensorImpl()));
        auto [it, fresh] = groupOf.emplace(key, found.size());
        if (fresh) {
            HandWrittenSampler s;
            s.value = value;
            s.inputEvent = from;
            s.input = value;
            // A padding right before (through no-op reshapes): the layer's input is the unpadded map.
            int pad = producerOf(producers, size_t(from), 0);
            while (pad != kNoProducer && isReshape(events[size_t(pad)].op) && tensorArg(events[size_t(pad)], 0) &&
                   tensorArg(events[size_t(pad)], 0)->sizes() == value.sizes())
                pad = producerOf(producers, size_t(pad), 0);
            if (value.dim() == 4 && pad != kNoProducer && isPad(events[size_t(pad)].op) && tensorArg(events[size_t(pad)], 0)) {
                s.inputEvent = pad;
                s.input = *tensorArg(events[size_t(pad)], 0);
            }
            found.push_back(std::move(s));
            floorsOf.emplace_back();
        }
        HandWrittenSampler& s = found[it->second];
        s.gathers.push_back(int(i));
        s.reads.push_back(*tensorArg(events[i], 0));
        for (int u : indexUp)
            if (events[size_t(u)].op == "aten::floor")
                floorsOf[it->second].push_back(u);
    }
    for (size_t h = 0; h < found.size(); ++h) {
        HandWrittenSampler& s = found[h];
        if (s.value.dim() != 4) {
            s.reason = "the map its gathers read is not a 4-D feature map";
            continue;
        }
        // The convolution that reads the sampled values.
        const std::set<int> mine(s.gathers.begin(), s.gathers.end());
        std::vector<int> convUp; // what the reading convolution's input comes from
        for (size_t c = size_t(s.gathers.back()) + 1; c < events.size() && s.conv < 0; ++c) {
            if (!isConvLike(events[c].op))
                continue;
            convUp = upstream(producers, c, 0, isLayer);
            for (int u : convUp)
                if (mine.count(u)) {
                    s.conv = int(c);
                    break;
                }
        }
        if (s.conv < 0) {
            s.reason = "no convolution reads the sampled values";
            continue;
        }
        std::vector<int>& floors = floorsOf[h];
        std::sort(floors.begin(), floors.end());
        std::vector<int> sigmoids;
        for (int u : convUp)
            if (events[size_t(u)].op == "aten::sigmoid")
                sigmoids.push_back(u);
        matchDeformConv(s, events, producers, floors, sigmoids, keepTensors);
        if (s.recognised)
            s.name = events[size_t(s.gathers.front())].modulePath;
    }
    return found;
}

} // namespace deformscope::model::detail
