// The ERF averaged over a set of images at one fixed node, as RepLKNet's script
// does: batches of images, one forward and one backward per batch.
#include "core/analysis/analysis.h"
#include <nlohmann/json.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>

namespace deformscope::analysis {

ErfAverageResult averageErf(const model::LoadedModel& model, int64_t count,
                            const std::function<at::Tensor(int64_t)>& load,
                            const std::function<std::string(int64_t)>& name, const ErfAverageOptions& options,
                            const std::function<bool(int64_t, int64_t)>& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    if (options.batchSize < 1)
        throw AnalysisError("the batch size must be at least 1, got " + std::to_string(options.batchSize));
    const bool replknet = options.protocol == ErfProtocol::RepLKNet;
    if (replknet && (options.isSigned || options.response.kind != Response::Kind::Sum))
        throw AnalysisError("the RepLKNet protocol fixes the response (every channel at the node through a ReLU, "
                            "summed) and the map (the positive part of the gradient): no --response or --signed");
    for (at::Tensor p : model.module().parameters())
        p.requires_grad_(false);
    ErfAverageResult result;
    at::Tensor sum;
    model::Layer layer;
    bool haveLayer = false;
    std::vector<at::Tensor> pending;
    std::vector<std::string> pendingNames;

    auto flush = [&]() {
        if (pending.empty())
            return;
        at::AutoGradMode grad(true);
        const at::Tensor batch = at::cat(pending).to(model.device(), at::kFloat).requires_grad_(true);
        const model::Capture c = model::captureForward(model, batch);
        if (!haveLayer) {
            const model::Layer* l = c.graph.find(options.layer);
            if (!l)
                throw AnalysisError("no layer '" + options.layer + "' in " + model.path() + " (layers: " +
                                    c.graph.names() + ")");
            layer = *l;
            haveLayer = true;
            const auto pos = options.node.value_or(std::array<int64_t, 2>{l->feature_size[0] / 2, l->feature_size[1] / 2});
            if (pos[0] < 0 || pos[0] >= l->feature_size[0] || pos[1] < 0 || pos[1] >= l->feature_size[1])
                throw AnalysisError("node (" + std::to_string(pos[1]) + ", " + std::to_string(pos[0]) +
                                    ") is off layer '" + l->name + "' (" + std::to_string(l->feature_size[1]) + " x " +
                                    std::to_string(l->feature_size[0]) + ")");
            result.node = Node{l->name, pos[0], pos[1], options.response};
        }
        const at::Tensor out = c.tensors[size_t(layer.index)].output;
        at::Tensor r;
        const Node& n = result.node;
        if (replknet) {
            // Their response: every channel at the node through a ReLU, summed.
            r = at::relu(out.index({at::indexing::Slice(), at::indexing::Slice(), n.fy, n.fx})).sum();
            const auto grads = torch::autograd::grad({r}, {batch}, {}, false, false, true);
            const at::Tensor g = grads[0].defined() ? grads[0] : at::zeros_like(batch);
            // Per image, as their script runs one image at a time: relu(gradient) over channels,
            // an image with a NaN anywhere in its map left out.
            const at::Tensor maps = at::relu(g).sum(1).detach().to(at::kCPU, at::kDouble);
            for (int64_t b = 0; b < maps.size(0); ++b) {
                const at::Tensor m = maps[b];
                if (m.isnan().any().item<bool>()) {
                    result.skipped.push_back(pendingNames[size_t(b)] + ": its gradient has NaN (left out, as "
                                                                       "RepLKNet's script does)");
                    continue;
                }
                sum = sum.defined() ? sum + m : m.clone();
                result.images += 1;
            }
            pending.clear();
            pendingNames.clear();
            return;
        }
        switch (n.response.kind) {
        case Response::Kind::Sum:
            r = out.index({at::indexing::Slice(), at::indexing::Slice(), n.fy, n.fx}).sum();
            break;
        case Response::Kind::Channel:
            if (n.response.index >= out.size(1))
                throw AnalysisError("channel " + std::to_string(n.response.index) + " does not exist: layer '" +
                                    layer.name + "' has " + std::to_string(out.size(1)) + " channels");
            r = out.index({at::indexing::Slice(), n.response.index, n.fy, n.fx}).sum();
            break;
        case Response::Kind::ClassScore:
            throw AnalysisError("erf-average takes a sum or channel response, not a class score");
        }
        const auto grads = torch::autograd::grad({r}, {batch}, {}, false, false, true);
        const at::Tensor g = grads[0].defined() ? grads[0] : at::zeros_like(batch);
        const at::Tensor maps = (options.isSigned ? g.sum(1) : g.abs().sum(1)).sum(0).detach().to(at::kCPU, at::kDouble);
        sum = sum.defined() ? sum + maps : maps;
        result.images += int64_t(pending.size());
        pending.clear();
        pendingNames.clear();
    };

    for (int64_t i = 0; i < count; ++i) {
        if (progress && !progress(i, count)) {
            result.cancelled = true;
            break;
        }
        at::Tensor x;
        try {
            x = load(i);
        } catch (const std::exception& e) {
            result.skipped.push_back(e.what());
            continue;
        }
        if (x.dim() != 4 || x.size(0) != 1 || x.size(1) != 3) {
            result.skipped.push_back(name(i) + ": not a [1, 3, H, W] input");
            continue;
        }
        if (!pending.empty() && x.sizes() != pending.front().sizes()) {
            result.skipped.push_back(name(i) + ": its size " + c10::str(x.sizes()) + " differs from the first image's " +
                                     c10::str(pending.front().sizes()));
            continue;
        }
        if (sum.defined() && (x.size(2) != sum.size(0) || x.size(3) != sum.size(1))) {
            result.skipped.push_back(name(i) + ": its size differs from the first image's");
            continue;
        }
        pending.push_back(x);
        pendingNames.push_back(name(i));
        if (int64_t(pending.size()) >= options.batchSize)
            flush();
    }
    if (!result.cancelled)
        flush();
    if (progress && !result.cancelled)
        progress(count, count);
    if (result.images == 0)
        throw AnalysisError("no usable image among " + std::to_string(count) +
                            (result.skipped.empty() ? std::string() : " (first problem: " + result.skipped.front() + ")"));
    result.map = (sum / double(result.images)).to(at::kFloat);
    const std::array<double, 2> centre{layer.start[1] + double(result.node.fx) * layer.jump[1],
                                       layer.start[0] + double(result.node.fy) * layer.jump[0]};
    result.metrics = erfMetrics(result.map, centre, layer.rf);
    result.protocol = options.protocol;
    if (replknet)
        result.replknetAreas = replknetAreaRatios(result.map);
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
}

std::vector<ReplknetArea> replknetAreaRatios(const at::Tensor& map) {
    if (map.dim() != 2 || map.numel() == 0)
        throw AnalysisError("the area ratios need a non-empty [H, W] map, got " + c10::str(map.sizes()));
    at::Tensor data = at::log10(map.to(at::kCPU, at::kDouble) + 1.0);
    const double top = data.max().item<double>();
    std::vector<ReplknetArea> out;
    const int64_t h = data.size(0), w = data.size(1);
    if (!(top > 0)) { // an all-zero map: no square holds any share
        for (double t : kReplknetThresholds)
            out.push_back(ReplknetArea{t, 0, 0});
        return out;
    }
    data = data / top;
    const double total = data.sum().item<double>();
    // The share of the centred squares of half-side i, as analyze_erf.py visits them (one
    // cumulative table instead of a sum per square).
    at::Tensor cum = at::zeros({h + 1, w + 1}, at::kDouble);
    cum.index_put_({at::indexing::Slice(1, at::indexing::None), at::indexing::Slice(1, at::indexing::None)},
                   data.cumsum(0).cumsum(1));
    const auto c = cum.accessor<double, 2>();
    auto squareSum = [&](int64_t i) {
        // rows h/2 - i .. h/2 + i and columns w/2 - i .. w/2 + i, numpy's slice clipped to the map
        const int64_t y0 = std::max<int64_t>(h / 2 - i, 0), y1 = std::min<int64_t>(h / 2 + 1 + i, h);
        const int64_t x0 = std::max<int64_t>(w / 2 - i, 0), x1 = std::min<int64_t>(w / 2 + 1 + i, w);
        return c[y1][x1] - c[y0][x1] - c[y1][x0] + c[y0][x0];
    };
    for (double t : kReplknetThresholds) {
        ReplknetArea a{t, 0, 0};
        for (int64_t i = 1; i < h / 2; ++i)
            if (squareSum(i) / total > t) {
                a.sideLength = 2 * i + 1;
                a.areaRatio = double(a.sideLength) / double(h) * double(a.sideLength) / double(w);
                break;
            }
        out.push_back(a);
    }
    return out;
}

nlohmann::ordered_json toJson(const ErfAverageResult& r) {
    nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
    for (const auto& s : r.skipped)
        skipped.push_back(s);
    nlohmann::ordered_json out = nlohmann::ordered_json::object({{"node", toJson(r.node)},
                                 {"images", r.images},
                                 {"skipped", skipped},
                                 {"metrics", toJson(r.metrics)},
                                 {"protocol", r.protocol == ErfProtocol::RepLKNet ? "replknet" : "deformscope"},
                                 {"seconds", r.seconds},
                                 {"cancelled", r.cancelled}});
    if (r.protocol == ErfProtocol::RepLKNet) {
        nlohmann::ordered_json areas = nlohmann::ordered_json::array();
        for (const ReplknetArea& a : r.replknetAreas)
            areas.push_back({{"threshold", a.threshold},
                             {"side_length", a.sideLength > 0 ? nlohmann::ordered_json(a.sideLength) : nullptr},
                             {"area_ratio", a.sideLength > 0 ? nlohmann::ordered_json(a.areaRatio) : nullptr}});
        out["replknet"] = {{"area_ratios", areas},
                           {"scores", "erf_average.npy: the mean over the images of relu(d response / d input) "
                                      "summed over channels; the ratios take log10(1 + x) / max of it"}};
    }
    return out;
}

} // namespace deformscope::analysis
