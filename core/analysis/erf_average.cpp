// The ERF averaged over a set of images at one fixed node, as RepLKNet's script
// does: batches of images, one forward and one backward per batch.
#include "core/analysis/analysis.h"
#include <nlohmann/json.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <chrono>

namespace deformscope::analysis {

ErfAverageResult averageErf(const model::LoadedModel& model, int64_t count,
                            const std::function<at::Tensor(int64_t)>& load,
                            const std::function<std::string(int64_t)>& name, const ErfAverageOptions& options,
                            const std::function<bool(int64_t, int64_t)>& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    if (options.batchSize < 1)
        throw AnalysisError("the batch size must be at least 1, got " + std::to_string(options.batchSize));
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
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
}

nlohmann::ordered_json toJson(const ErfAverageResult& r) {
    nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
    for (const auto& s : r.skipped)
        skipped.push_back(s);
    return nlohmann::ordered_json::object({{"node", toJson(r.node)},
                                 {"images", r.images},
                                 {"skipped", skipped},
                                 {"metrics", toJson(r.metrics)},
                                 {"seconds", r.seconds},
                                 {"cancelled", r.cancelled}});
}

} // namespace deformscope::analysis
