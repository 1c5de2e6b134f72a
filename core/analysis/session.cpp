#include "core/analysis/analysis_internal.h"
#include "core/ops/deform_conv2d.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

namespace deformscope::analysis {

using model::Layer;
using namespace at::indexing;

namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Visits layer `start` and every layer feeding it (through inputs, each once)
// until `visit` returns false; returns false when it stopped early.
template <typename Visit>
bool visitBelow(const std::vector<Layer>& layers, int start, Visit visit) {
    std::vector<int> stack{start};
    std::vector<bool> seen(layers.size(), false);
    while (!stack.empty()) {
        const int i = stack.back();
        stack.pop_back();
        if (i < 0 || seen[size_t(i)])
            continue;
        seen[size_t(i)] = true;
        const Layer& l = layers[size_t(i)];
        if (!visit(l))
            return false;
        for (int j : l.inputs)
            stack.push_back(j);
    }
    return true;
}

// Whether a layer that reads where its data says (deformable convs, samplers) lies
// on a data path below `start` (its support is then not bounded by the RF).
bool deformableBelow(const std::vector<Layer>& layers, int start) {
    return !visitBelow(layers, start, [](const Layer& l) { return !l.dataDependentReads(); });
}

// A crop of the input, aligned to the strides of every layer below `l`, that
// contains `box`; none when some layer below resamples (upsampling, transposed
// convs, deformable layers) or has a fractional step, or the response reads the
// model's output.
std::optional<std::array<int64_t, 4>> cropFor(const std::vector<Layer>& layers, const Layer& l, const Node& node,
                                              std::array<int64_t, 4> box, std::array<int64_t, 2> size) {
    if (node.response.kind == Response::Kind::ClassScore)
        return std::nullopt;
    int64_t align = 1;
    std::vector<int64_t> jumps;
    const bool regular = visitBelow(layers, l.index, [&](const Layer& x) {
        if (x.kind != model::LayerKind::Conv && x.kind != model::LayerKind::Pool)
            return false;
        if (x.mode.find("adaptive") != std::string::npos)
            return false;
        for (double j : {x.jump[0], x.jump[1]}) {
            if (j < 1 || std::abs(j - std::round(j)) > 1e-9)
                return false;
            jumps.push_back(int64_t(std::llround(j)));
            align = std::max(align, jumps.back());
        }
        return true;
    });
    if (!regular)
        return std::nullopt;
    for (int64_t j : jumps)
        if (align % j != 0)
            return std::nullopt;
    const auto down = [&](int64_t v) { return v / align * align; };
    const auto up = [&](int64_t v, int64_t limit) { return std::min(limit, (v + align - 1) / align * align); };
    return std::array<int64_t, 4>{down(box[0]), down(box[1]), up(box[2], size[0]), up(box[3], size[1])};
}
// An output with NaN or Inf makes every analysis meaningless: refuse, naming the first layer
// (in execution order) whose output is not finite and what it read that was not.
void checkFinite(const model::LoadedModel& m, const model::Capture& c) {
    const auto finite = [](const at::Tensor& t) {
        return !t.defined() || !t.is_floating_point() || at::isfinite(t.detach()).all().item<bool>();
    };
    if (finite(c.output))
        return;
    std::string where;
    for (const Layer& l : c.graph.layers()) {
        const model::LayerTensors& t = c.tensors[size_t(l.index)];
        if (finite(t.output))
            continue;
        where = "; the first layer whose output does is '" + l.name + "' (" + model::kindName(l.kind) + ")";
        std::string bad;
        for (const auto& [what, tensor] : {std::pair<const char*, const at::Tensor*>{"its input", &t.input},
                                           {"its weight", &t.weight}, {"its offsets", &t.offset}, {"its mask", &t.mask}})
            if (!finite(*tensor))
                bad += std::string(bad.empty() ? "" : ", ") + what;
        if (!bad.empty())
            where += ", where " + bad + " already " + (bad.find(',') == std::string::npos ? "holds" : "hold") + " NaN or Inf";
        break;
    }
    if (where.empty())
        for (const auto& p : m.module().named_parameters(/*recurse=*/true))
            if (!finite(p.value)) {
                where = "; the first parameter that holds NaN or Inf is '" + p.name + "'";
                break;
            }
    throw model::ModelError(m.path() + ": the model's output holds NaN or Inf on this input" + where +
                            " (broken weights, or an input the model cannot handle): nothing can be analysed");
}

} // namespace

// ---- session -------------------------------------------------------------------

struct AnalysisSession::Impl {
    model::LoadedModel model;
    at::Tensor input; // leaf with requires_grad, on the model's device
    model::Capture capture;
};

AnalysisSession::AnalysisSession(model::LoadedModel model, const at::Tensor& input) : d(std::make_unique<Impl>()) {
    if (input.dim() != 4 || input.size(0) != 1 || input.size(1) != 3)
        throw AnalysisError(model.path() + ": the analysed input must be [1, 3, H, W], got " + c10::str(input.sizes()));
    for (at::Tensor p : model.module().parameters())
        p.requires_grad_(false);
    // The same click gives the same numbers twice: deterministic backward kernels.
    ops::setBackwardMode(ops::BackwardMode::Deterministic);
    if (model.device().is_cuda()) {
        at::globalContext().setDeterministicCuDNN(true);
        at::globalContext().setBenchmarkCuDNN(false);
        // Full float32 convolutions and matmuls (no TF32, on by default for cuDNN):
        // gradients then agree with the CPU's to float32 accuracy (checked by selftest).
        at::globalContext().setAllowTF32CuDNN(false);
        at::globalContext().setAllowTF32CuBLAS(false);
    }
    d->model = model;
    at::AutoGradMode grad(true);
    d->input = input.detach().to(model.device(), at::kFloat).clone().requires_grad_(true);
    d->capture = model::captureForward(model, d->input);
    checkFinite(model, d->capture);
}

AnalysisSession::~AnalysisSession() = default;
AnalysisSession::AnalysisSession(AnalysisSession&&) noexcept = default;
AnalysisSession& AnalysisSession::operator=(AnalysisSession&&) noexcept = default;

const model::LoadedModel& AnalysisSession::model() const { return d->model; }
const model::LayerGraph& AnalysisSession::graph() const { return d->capture.graph; }
const model::Capture& AnalysisSession::capture() const { return d->capture; }
at::Tensor AnalysisSession::input() const { return d->input.detach(); }
std::array<int64_t, 2> AnalysisSession::inputSize() const { return {d->input.size(2), d->input.size(3)}; }
int64_t AnalysisSession::frames() const { return graph().inputCount(); }
std::array<int64_t, 2> AnalysisSession::frameSize() const { return graph().inputSize(); }

int AnalysisSession::frameAt(double x) const {
    const double w = double(frameSize()[1]);
    return int(std::clamp<int64_t>(int64_t(std::floor((x + 0.5) / w)), 0, frames() - 1));
}

const Layer& AnalysisSession::layer(const std::string& name) const {
    const Layer* l = graph().find(name);
    if (!l)
        throw AnalysisError("no layer '" + name + "' in " + d->model.path() + " (layers: " + graph().names() + ")");
    return *l;
}

Node AnalysisSession::nodeAt(const std::string& layerName, double x, double y, Response response) const {
    const Layer& l = layer(layerName);
    Node n;
    n.layer = l.name;
    n.response = response;
    n.fy = std::clamp<int64_t>(std::llround((y - l.start[0]) / l.jump[0]), 0, l.feature_size[0] - 1);
    x -= double(frameAt(x) * frameSize()[1]); // a click on any frame: the same position
    n.fx = std::clamp<int64_t>(std::llround((x - l.start[1]) / l.jump[1]), 0, l.feature_size[1] - 1);
    return n;
}

std::array<double, 2> AnalysisSession::nodeCentre(const Node& node) const {
    const Layer& l = layer(node.layer);
    const auto c = frameCentre(node);
    return {c[0] + double(l.homeFrame() * frameSize()[1]), c[1]};
}

std::array<double, 2> AnalysisSession::frameCentre(const Node& node) const {
    const Layer& l = layer(node.layer);
    return {l.start[1] + double(node.fx) * l.jump[1], l.start[0] + double(node.fy) * l.jump[0]};
}

void AnalysisSession::validate(const Node& node) const {
    const Layer& l = layer(node.layer);
    if (node.fy < 0 || node.fy >= l.feature_size[0] || node.fx < 0 || node.fx >= l.feature_size[1])
        throw AnalysisError("node (" + std::to_string(node.fx) + ", " + std::to_string(node.fy) + ") is off layer '" +
                            l.name + "', whose feature map is " + std::to_string(l.feature_size[1]) + " x " +
                            std::to_string(l.feature_size[0]) + " (x, y)");
    // A sampler whose output is not one feature map of the image (points per query,
    // heads as batch rows, a hand-written sampler's flat reads) has no node to click.
    const bool notAMap = l.kind == model::LayerKind::UnrecognisedSampler ||
                         (l.isSampler() && (l.sampler.layout == model::SamplerInfo::Layout::Queries || l.sampler.rows != 1));
    if (notAMap)
        throw AnalysisError("layer '" + l.name + "' (" + model::kindName(l.kind) +
                            ") does not output a feature map of the image (its output is per query, point or head): "
                            "pick a node on a layer that reads it");
    if (node.allBins && !l.isRoiPool())
        throw AnalysisError("layer '" + l.name + "' (" + model::kindName(l.kind) +
                            ") is not a RoI pooling layer: a node of every bin exists only there");
    if (node.response.kind == Response::Kind::Channel && node.response.index >= l.out_channels)
        throw AnalysisError("channel " + std::to_string(node.response.index) + " does not exist: layer '" + l.name +
                            "' has " + std::to_string(l.out_channels) + " channels");
    if (node.response.kind == Response::Kind::ClassScore) {
        const at::Tensor& out = d->capture.output;
        if (out.dim() != 2 && out.dim() != 4)
            throw AnalysisError("class scores need a model output of [1, K] or [1, K, H, W]; " + d->model.path() +
                                " returns " + c10::str(out.sizes()));
        if (node.response.index >= out.size(1))
            throw AnalysisError("class " + std::to_string(node.response.index) + " does not exist: the model has " +
                                std::to_string(out.size(1)) + " outputs");
    }
}

namespace {

// The node's response in batch item b of a capture: [D], attached to the graph.
at::Tensor responseOf(const model::Capture& c, const Layer& l, const Node& n, std::array<double, 2> centreXY,
                      std::array<int64_t, 2> inputSize, int64_t b) {
    // A RoI pooling layer's (and a RoI head's) rows are RoIs: image b's first is row b · (RoIs per image).
    const int64_t row = l.isRoiPool() ? b * l.roi.rois : b;
    const bool allBins = n.allBins && l.isRoiPool();
    switch (n.response.kind) {
    case Response::Kind::Sum:
        if (allBins) // the pooled features the head reads: every channel of every bin
            return c.tensors[size_t(l.index)].output.index({row}).reshape({-1});
        return c.tensors[size_t(l.index)].output.index({row, Slice(), n.fy, n.fx});
    case Response::Kind::Channel:
        if (allBins)
            return c.tensors[size_t(l.index)].output.index({row, n.response.index}).reshape({-1});
        return c.tensors[size_t(l.index)].output.index({row, n.response.index, n.fy, n.fx}).reshape({1});
    case Response::Kind::ClassScore:
        break;
    }
    const at::Tensor& out = c.output;
    if (out.dim() == 2)
        return out.index({row, n.response.index}).reshape({1});
    // A dense output: the position covering the node's centre, by proportion.
    const int64_t oy = std::clamp<int64_t>(
        std::llround((centreXY[1] + 0.5) * double(out.size(2)) / double(inputSize[0]) - 0.5), 0, out.size(2) - 1);
    const int64_t ox = std::clamp<int64_t>(
        std::llround((centreXY[0] + 0.5) * double(out.size(3)) / double(inputSize[1]) - 0.5), 0, out.size(3) - 1);
    return out.index({b, n.response.index, oy, ox}).reshape({1});
}

// All channels at the node in every batch item: [B, D] (for the saliency search).
at::Tensor responsesOf(const model::Capture& c, const Layer& l, const Node& n, std::array<double, 2> centreXY,
                       std::array<int64_t, 2> inputSize) {
    std::vector<at::Tensor> rows;
    const int64_t B = l.isRoiPool() ? c.tensors[size_t(l.index)].output.size(0) / std::max<int64_t>(1, l.roi.rois)
                                    : c.output.size(0);
    for (int64_t b = 0; b < B; ++b)
        rows.push_back(responseOf(c, l, n, centreXY, inputSize, b));
    return at::stack(rows);
}

at::Tensor erfMap(const at::Tensor& grad, bool isSigned) {
    return (isSigned ? grad.sum(1) : grad.abs().sum(1)).detach().to(at::kCPU, at::kFloat).contiguous();
}

// Several input frames: each frame's part of the map, its metrics (the node's
// centre at its position in that frame) and its share of the gradient mass.
void splitByFrame(ErfResult& r, int64_t frames, std::array<double, 2> frameCentre, std::array<double, 2> rf) {
    if (frames < 2)
        return;
    const int64_t w = r.map.size(1) / frames;
    double total = 0;
    std::vector<double> mass;
    for (int64_t f = 0; f < frames; ++f) {
        const at::Tensor part = r.map.narrow(1, f * w, w).contiguous();
        r.inputs.push_back(erfMetrics(part, frameCentre, rf));
        mass.push_back(part.abs().sum().item<double>());
        total += mass.back();
    }
    for (double m : mass)
        r.inputShare.push_back(total > 0 ? m / total : 0);
}

} // namespace

at::Tensor AnalysisSession::response(const Node& node) const {
    validate(node);
    const Layer& l = layer(node.layer);
    return responseOf(d->capture, l, node, frameCentre(node), frameSize(), 0).detach().to(at::kCPU, at::kFloat);
}

ErfResult AnalysisSession::erf(const Node& node, const ErfOptions& options) const {
    const auto t0 = std::chrono::steady_clock::now();
    validate(node);
    const Layer& l = layer(node.layer);
    at::AutoGradMode grad(true);
    const at::Tensor r = responseOf(d->capture, l, node, frameCentre(node), frameSize(), 0).sum();
    const auto grads = torch::autograd::grad({r}, {d->input}, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    const at::Tensor g = grads[0].defined() ? grads[0] : at::zeros_like(d->input);
    ErfResult result;
    result.map = erfMap(g, options.isSigned)[0];
    result.metrics = erfMetrics(result.map, nodeCentre(node), l.rf);
    splitByFrame(result, frames(), frameCentre(node), l.rf);
    result.seconds = secondsSince(t0);
    return result;
}

std::vector<ErfResult> AnalysisSession::erfBatch(const std::vector<Node>& nodes, const ErfOptions& options,
                                                 bool metrics) const {
    const auto t0 = std::chrono::steady_clock::now();
    for (const Node& n : nodes)
        validate(n);
    if (nodes.empty())
        return {};
    at::AutoGradMode grad(true);
    const int64_t B = int64_t(nodes.size());
    model::CaptureOptions copts;
    at::Tensor maps;
    if (d->input.is_cuda() || B == 1) {
        // On a GPU: the image repeated B times, one forward and one backward of the summed
        // responses (each copy's gradient is its own node's), which keeps the device busy.
        const at::Tensor batch = d->input.detach().expand({B, -1, -1, -1}).clone().requires_grad_(true);
        const model::Capture c = model::captureForward(d->model, batch, copts);
        at::Tensor total = at::zeros({}, batch.options());
        for (int64_t b = 0; b < B; ++b) {
            const Node& n = nodes[size_t(b)];
            const Layer& l = layer(n.layer);
            total = total + responseOf(c, l, n, frameCentre(n), frameSize(), b).sum();
        }
        const auto grads = torch::autograd::grad({total}, {batch}, {}, false, false, true);
        maps = erfMap(grads[0].defined() ? grads[0] : at::zeros_like(batch), options.isSigned);
    } else {
        // On the CPU: one forward of the image, then one backward per node through the kept
        // graph; the forward is not repeated B times (1.25-1.6x faster for scale-map, and
        // less memory: docs/benchmarks.md). The same gradients, node by node.
        const at::Tensor one = d->input.detach().clone().requires_grad_(true);
        const model::Capture c = model::captureForward(d->model, one, copts);
        std::vector<at::Tensor> each;
        for (int64_t b = 0; b < B; ++b) {
            const Node& n = nodes[size_t(b)];
            const at::Tensor r = responseOf(c, layer(n.layer), n, frameCentre(n), frameSize(), 0).sum();
            const auto g = torch::autograd::grad({r}, {one}, {}, /*retain_graph=*/b + 1 < B, false, true);
            each.push_back(g[0].defined() ? g[0] : at::zeros_like(one));
        }
        maps = erfMap(at::cat(each), options.isSigned);
    }
    const double each = secondsSince(t0) / double(B);
    std::vector<ErfResult> results;
    for (int64_t b = 0; b < B; ++b) {
        ErfResult r;
        r.map = maps[b].clone();
        if (metrics) {
            r.metrics = erfMetrics(r.map, nodeCentre(nodes[size_t(b)]), layer(nodes[size_t(b)].layer).rf);
            splitByFrame(r, frames(), frameCentre(nodes[size_t(b)]), layer(nodes[size_t(b)].layer).rf);
        }
        r.seconds = each;
        results.push_back(std::move(r));
    }
    return results;
}

SamplingTrace AnalysisSession::sampling(const Node& node, const SamplingOptions& options) const {
    const auto t0 = std::chrono::steady_clock::now();
    validate(node);
    if (options.levels < 1)
        throw AnalysisError("sampling levels must be at least 1, got " + std::to_string(options.levels));
    const Layer& l = layer(node.layer);
    const auto& layers = graph().layers();
    std::map<int, at::Tensor> gradOutputs, footprints;
    const std::set<int> traced =
        detail::tracedLayers(layers, l.index, options.levels, detail::effectiveThrough(layers, options.through));
    // One backward of the node's response gives both: ∂r/∂output of the traced layers
    // (the points' weights) and ∂r/∂(what an unrecognised sampler's gathers read), its footprint.
    std::vector<at::Tensor> wrt;
    std::vector<std::pair<int, bool>> owner; // (layer, is a footprint read) per entry of wrt
    for (int i : traced) {
        const model::LayerTensors& t = d->capture.tensors[size_t(i)];
        if (options.weights && t.output.defined() && t.output.requires_grad()) {
            wrt.push_back(t.output);
            owner.push_back({i, false});
        }
        if (layers[size_t(i)].kind == model::LayerKind::UnrecognisedSampler && t.input.defined())
            for (const at::Tensor& r : t.reads)
                if (r.requires_grad()) {
                    wrt.push_back(r);
                    owner.push_back({i, true});
                }
    }
    if (!wrt.empty()) {
        at::AutoGradMode grad(true);
        const at::Tensor r = responseOf(d->capture, l, node, frameCentre(node), frameSize(), 0).sum();
        const auto grads = torch::autograd::grad({r}, wrt, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
        for (size_t k = 0; k < wrt.size(); ++k) {
            const auto [i, read] = owner[k];
            if (!read) {
                gradOutputs[i] = grads[k].defined() ? grads[k] : at::zeros_like(wrt[k]);
                continue;
            }
            const at::Tensor& map = d->capture.tensors[size_t(i)].input; // [N, C, H, W]; the reads are views of it
            const int64_t H = map.size(2), W = map.size(3);
            at::Tensor& sum = footprints[i];
            if (!sum.defined())
                sum = at::zeros({H, W}, at::kDouble);
            if (grads[k].defined() && grads[k].numel() % (H * W) == 0) // [N, C, H·W] (first image)
                sum += grads[k].detach()[0].abs().to(at::kCPU, at::kDouble).reshape({-1, H * W}).sum(0).reshape({H, W});
        }
    }
    SamplingTrace trace = detail::traceSampling(d->capture, node, options, gradOutputs, footprints);
    trace.seconds = secondsSince(t0);
    return trace;
}

KernelView AnalysisSession::kernel(const Node& node) const {
    const auto t0 = std::chrono::steady_clock::now();
    validate(node);
    const auto& layers = graph().layers();
    const int index = detail::kernelViewLayer(layers, layer(node.layer).index);
    if (index < 0) {
        std::string dks;
        for (const Layer& l : layers)
            if (l.kind == model::LayerKind::Dk)
                dks += (dks.empty() ? "" : ", ") + l.name;
        throw AnalysisError("layer '" + node.layer + "' has no Deformable Kernel layer at or below it, so there is no kernel view" +
                            (dks.empty() ? std::string(" (the model has no DK layers)") : " (its DK layers: " + dks + ")"));
    }
    const std::string& dk = layers[size_t(index)].name;
    const bool own = dk == node.layer;
    // Another layer's node: the DK layer's position nearest to the node's centre.
    const auto centre = nodeCentre(node);
    const Node at = own ? node : nodeAt(dk, centre[0], centre[1]);
    KernelView v = detail::kernelView(d->capture, index, at.fy, at.fx,
                                      own && node.response.kind == Response::Kind::Channel ? node.response.index : -1);
    v.centre = nodeCentre(at);
    if (!own)
        v.notes.insert(v.notes.begin(), "'" + node.layer + "' is not a Deformable Kernel layer: showing '" + dk +
                                            "', the nearest DK layer below it, at its position nearest to the node");
    v.seconds = secondsSince(t0);
    return v;
}

std::string AnalysisSession::kernelLayer(const Node& node) const {
    const int i = detail::kernelViewLayer(graph().layers(), layer(node.layer).index);
    return i < 0 ? std::string() : graph().layers()[size_t(i)].name;
}

std::array<int64_t, 4> AnalysisSession::receptiveFieldBox(const Node& node) const {
    const Layer& l = layer(node.layer);
    const auto c = nodeCentre(node);
    const auto size = inputSize();
    const auto span = [](double centre, double rf, int64_t limit) {
        const int64_t lo = std::max<int64_t>(0, int64_t(std::floor(centre - (rf - 1) / 2 - 1e-9)));
        const int64_t hi = std::min<int64_t>(limit, int64_t(std::ceil(centre + (rf - 1) / 2 + 1e-9)) + 1);
        return std::array<int64_t, 2>{lo, std::max(lo, hi)};
    };
    const auto ys = span(c[1], l.rf[0], size[0]);
    const auto xs = span(c[0], l.rf[1], size[1]);
    return {ys[0], xs[0], ys[1], xs[1]};
}

at::Tensor AnalysisSession::baselineImage(const Baseline& baseline) const {
    const at::Tensor x = d->input.detach();
    if (baseline.kind == Baseline::Kind::Zero)
        return at::zeros_like(x);
    // Several frames side by side: each is blurred on its own (no blur across the seam).
    if (frames() > 1) {
        std::vector<at::Tensor> parts;
        for (const at::Tensor& f : x.chunk(frames(), 3))
            parts.push_back(blurred(f.contiguous(), baseline.sigma));
        return at::cat(parts, 3);
    }
    return blurred(x, baseline.sigma);
}

at::Tensor AnalysisSession::blurred(const at::Tensor& x, double sigma) {
    Baseline baseline;
    baseline.sigma = sigma;
    // Separable Gaussian blur, reflect-padded, per colour channel.
    const int64_t radius = std::max<int64_t>(1, int64_t(std::ceil(3 * baseline.sigma)));
    const at::Tensor t = at::arange(-radius, radius + 1, x.options()).to(at::kDouble);
    at::Tensor k = at::exp(-(t * t) / (2 * baseline.sigma * baseline.sigma));
    k = (k / k.sum()).to(x.scalar_type());
    const int64_t H = x.size(2), W = x.size(3);
    at::Tensor y = x;
    // Reflect padding needs pad < size: fall back to replicate for tiny images.
    const bool reflect = radius < std::min(H, W);
    y = at::pad(y, {radius, radius, 0, 0}, reflect ? "reflect" : "replicate");
    y = at::conv2d(y, k.view({1, 1, 1, -1}).expand({3, 1, 1, 2 * radius + 1}).contiguous(), at::Tensor(), at::IntArrayRef{1, 1}, at::IntArrayRef{0, 0}, at::IntArrayRef{1, 1}, 3);
    y = at::pad(y, {0, 0, radius, radius}, reflect ? "reflect" : "replicate");
    y = at::conv2d(y, k.view({1, 1, -1, 1}).expand({3, 1, 2 * radius + 1, 1}).contiguous(), at::Tensor(), at::IntArrayRef{1, 1}, at::IntArrayRef{0, 0}, at::IntArrayRef{1, 1}, 3);
    return y;
}

SaliencyResult AnalysisSession::saliency(const Node& node, const SaliencyOptions& options, const Baseline& baseline,
                                         const SaliencyProgressFn& progress) const {
    validate(node);
    const Layer& l = layer(node.layer);
    const auto centre = frameCentre(node); // dense outputs are read at the node's place in its frame
    const auto size = inputSize();
    const auto frame = frameSize();
    const at::Tensor image = d->input.detach();
    const at::Tensor base = baselineImage(baseline);

    SaliencyProblem problem;
    problem.height = size[0];
    problem.width = size[1];
    problem.device = d->model.device();
    // The saliency bound uses every channel for a Sum response (DCNv2's feature vector).
    problem.reference = responseOf(d->capture, l, node, centre, frame, 0).detach().to(at::kCPU, at::kFloat);
    const model::LoadedModel model = d->model;
    const Node n = node;
    // Responses of masked images: [B, 1, H, W] masks -> [B, D], running the model on `crop` of the image.
    auto evaluator = [model, image, base, l, n, centre, frame](std::array<int64_t, 4> crop) {
        return [=](const at::Tensor& masks) {
            at::NoGradGuard noGrad;
            const int64_t y0 = crop[0], x0 = crop[1], h = crop[2] - crop[0], w = crop[3] - crop[1];
            const at::Tensor m = masks.to(image.device(), image.scalar_type()).narrow(2, y0, h).narrow(3, x0, w);
            const at::Tensor x = image.narrow(2, y0, h).narrow(3, x0, w) * m + base.narrow(2, y0, h).narrow(3, x0, w) * (1 - m);
            const model::Capture c = model::captureForward(model, x, model::CaptureOptions{});
            const model::Layer* lc = c.graph.find(l.name);
            if (!lc)
                throw AnalysisError("layer '" + l.name + "' did not run on the cropped input");
            Node shifted = n;
            shifted.fy = n.fy - int64_t(std::llround(double(y0) / l.jump[0]));
            shifted.fx = n.fx - int64_t(std::llround(double(x0) / l.jump[1]));
            // Crops are taken only from single-frame inputs; a whole canvas keeps the frame's size.
            const bool whole = y0 == 0 && x0 == 0 && h == image.size(2) && w == image.size(3);
            const std::array<double, 2> c2{centre[0] - double(x0), centre[1] - double(y0)};
            return responsesOf(c, *lc, shifted, c2, whole ? frame : std::array<int64_t, 2>{h, w})
                .detach().to(at::kCPU, at::kFloat);
        };
    };
    const std::array<int64_t, 4> whole{0, 0, size[0], size[1]};
    problem.evaluate = evaluator(whole);
    // Importance: |∂(r · r_ref)/∂I ⊙ (I − B)|, summed over colours.
    {
        at::AutoGradMode grad(true);
        const at::Tensor r = responseOf(d->capture, l, node, centre, frame, 0);
        const at::Tensor s = (r * problem.reference.to(r.device())).sum();
        const auto grads = torch::autograd::grad({s}, {d->input}, {}, /*retain_graph=*/true, false, true);
        if (grads[0].defined())
            problem.importance = (grads[0].detach() * (image - base)).abs().sum(1)[0].to(at::kCPU, at::kFloat);
    }
    std::string cropNote;
    if (frames() > 1 || deformableBelow(graph().layers(), l.index)) {
        // Offsets can reach beyond the regular receptive field; several frames are searched jointly.
        problem.box = whole;
    } else {
        problem.box = receptiveFieldBox(node);
        // Nothing outside the receptive field reaches the node, so the search's
        // forwards can run on a crop around it, aligned to the network's strides.
        const auto crop = cropFor(graph().layers(), l, node, problem.box, size);
        if (crop && *crop != whole) {
            const auto cropped = evaluator(*crop);
            const at::Tensor ones = at::ones({1, 1, size[0], size[1]});
            const at::Tensor a = cropped(ones)[0], ref = problem.reference;
            const double diff = (a - ref).norm().item<double>(), scale = std::max(ref.norm().item<double>(), 1e-12);
            if (diff <= 1e-4 * scale) {
                problem.evaluate = cropped;
                cropNote = "forwards on a " + std::to_string((*crop)[2] - (*crop)[0]) + " x " +
                           std::to_string((*crop)[3] - (*crop)[1]) +
                           " crop around the receptive field; final check on the whole image";
            }
        }
    }
    SaliencyOptions resolved = options;
    if (resolved.batchSize == 0) // small batches run fastest on a CPU, large ones fill a GPU
        resolved.batchSize = d->model.device().is_cuda() ? 32 : 4;
    SaliencyResult result = searchSaliency(problem, resolved, progress);
    if (!cropNote.empty() && result.mask.defined()) {
        // The fresh check of the final mask, on the whole image.
        const auto t0 = std::chrono::steady_clock::now();
        const at::Tensor r = evaluator(whole)(result.mask.to(at::kFloat).view({1, 1, size[0], size[1]}));
        result.error = relativeErrors(r, problem.reference)[0].item<double>();
        result.withinBound = result.error <= result.epsilon;
        result.forwards += 1;
        result.evaluatorCalls += 1;
        result.seconds += secondsSince(t0);
        result.note += (result.note.empty() ? "" : "; ") + cropNote;
    }
    return result;
}

} // namespace deformscope::analysis
