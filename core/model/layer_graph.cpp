#include "core/model/layer_graph.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace deformscope::model {

const char* kindName(LayerKind kind) {
    switch (kind) {
    case LayerKind::Conv: return "conv";
    case LayerKind::ConvTranspose: return "conv_transpose";
    case LayerKind::DcnV1: return "dcn_v1";
    case LayerKind::DcnV2: return "dcn_v2";
    case LayerKind::Pool: return "pool";
    case LayerKind::Upsample: return "upsample";
    case LayerKind::Dk: return "dk";
    case LayerKind::Sampler: return "sampler";
    case LayerKind::DcnV3: return "dcn_v3";
    case LayerKind::DeformAttn: return "deform_attn";
    case LayerKind::FlowWarp: return "flow_warp";
    case LayerKind::UnrecognisedSampler: return "unrecognised_sampler";
    case LayerKind::RoiPool: return "roi_pool";
    case LayerKind::DeformRoiPool: return "deform_roi_pool";
    }
    return "?";
}

std::array<double, 2> roiStartAndBin(const RoiInfo& roi, std::array<int64_t, 2> pooled, int axis) {
    const double e0 = roi.box[size_t(axis == 0 ? 1 : 0)] * roi.spatialScale;
    const double e1 = roi.box[size_t(axis == 0 ? 3 : 2)] * roi.spatialScale;
    const double startAt = roi.aligned ? e0 - 0.5 : e0;
    double size = roi.aligned ? (e1 - 0.5) - startAt : e1 - e0;
    if (!roi.aligned)
        size = std::max(size, 1.0); // torchvision's legacy (aligned=False) minimum
    return {startAt, size / double(std::max<int64_t>(1, pooled[size_t(axis)]))};
}

double SamplerInfo::pixelOf(double g, int64_t size) const {
    const double n = double(size);
    double p = alignCorners ? (g + 1) / 2 * (n - 1) : ((g + 1) * n - 1) / 2;
    if (padding == "border") {
        p = std::clamp(p, 0.0, n - 1);
    } else if (padding == "reflection") {
        // Reflect about the edges (pixel centres 0 and n-1 with align_corners, else
        // the outer borders -0.5 and n-0.5), then clamp as grid_sample does.
        const double lo = alignCorners ? 0.0 : -0.5, span = alignCorners ? n - 1 : n;
        if (span > 0) {
            double t = std::fmod(std::abs(p - lo), 2 * span);
            p = lo + (t > span ? 2 * span - t : t);
        }
        p = std::clamp(p, 0.0, n - 1);
    }
    return p;
}

LayerGraph::LayerGraph(std::vector<Layer> layers, std::array<int64_t, 2> inputSize, std::vector<std::string> inputNames)
    : m_layers(std::move(layers)), m_inputSize(inputSize), m_inputNames(std::move(inputNames)) {
    if (m_inputNames.empty())
        m_inputNames = {"image"};
}

const Layer* LayerGraph::find(const std::string& name) const {
    for (const Layer& l : m_layers)
        if (l.name == name)
            return &l;
    return nullptr;
}

std::string LayerGraph::names() const {
    std::string s;
    for (const Layer& l : m_layers)
        s += (s.empty() ? "" : ", ") + l.name;
    return s;
}

void computeReceptiveField(Layer& layer, const std::vector<Layer>& earlier) {
    // The predecessor: the image, or the input layer with the largest receptive field.
    std::array<double, 2> jump{1, 1}, start{0, 0}, rf{1, 1};
    for (int i : layer.inputs) {
        const Layer& in = earlier.at(static_cast<size_t>(i));
        if (in.rf[0] * in.rf[1] > rf[0] * rf[1]) {
            jump = in.jump;
            start = in.start;
            rf = in.rf;
        }
    }
    for (int a = 0; a < 2; ++a) {
        const double k = double(layer.kernel[a]), s = double(layer.stride[a]), p = double(layer.padding[a]),
                     d = double(layer.dilation[a]);
        switch (layer.kind) {
        case LayerKind::Conv:
        case LayerKind::DcnV1:
        case LayerKind::DcnV2:
        case LayerKind::Dk:
        case LayerKind::Pool:
            // Output i reads inputs i*s - p + t*d, t < k: centre at i*s - p + (k-1)*d/2.
            layer.jump[a] = jump[a] * s;
            layer.start[a] = start[a] + ((k - 1) * d / 2 - p) * jump[a];
            layer.rf[a] = rf[a] + (k - 1) * d * jump[a];
            break;
        case LayerKind::ConvTranspose:
            // Output o receives input i where o = i*s - p + t*d: input i ~ (o + p - (k-1)*d/2) / s.
            layer.jump[a] = jump[a] / s;
            layer.start[a] = start[a] + (p - (k - 1) * d / 2) / s * jump[a];
            // The inputs feeding one output lie at most floor((k-1)*d/s) steps apart.
            layer.rf[a] = rf[a] + std::floor((k - 1) * d / s) * jump[a];
            break;
        case LayerKind::Sampler:
        case LayerKind::DcnV3:
        case LayerKind::DeformAttn:
        case LayerKind::FlowWarp:
        case LayerKind::UnrecognisedSampler: {
            // Where the reads land is data-dependent: the frame below only places the
            // output positions. Queries lie on their query map; a spatial output is
            // spread over the value map as a resize would (flow warping: 1:1).
            const int q = layer.sampler.querySource;
            if (layer.sampler.layout == SamplerInfo::Layout::Queries && q >= 0) {
                const Layer& src = earlier.at(static_cast<size_t>(q));
                layer.jump[a] = src.jump[a];
                layer.start[a] = src.start[a];
            } else {
                const double in = double(layer.input_size[a]), out = double(std::max<int64_t>(1, layer.feature_size[a]));
                layer.jump[a] = jump[a] * in / out;
                layer.start[a] = start[a] + (0.5 * in / out - 0.5) * jump[a];
            }
            layer.rf[a] = rf[a] + (layer.sampler.interpolation == "nearest" ? 0.0 : jump[a]);
            break;
        }
        case LayerKind::Upsample: {
            const double in = double(layer.input_size[a]), out = double(layer.feature_size[a]);
            const bool alignCorners = layer.mode.find("align_corners") != std::string::npos;
            if (alignCorners && out > 1) {
                layer.jump[a] = jump[a] * (in - 1) / (out - 1);
                layer.start[a] = start[a];
            } else {
                // Output o's centre maps to input (o + 0.5) * in/out - 0.5.
                layer.jump[a] = jump[a] * in / out;
                layer.start[a] = start[a] + (0.5 * in / out - 0.5) * jump[a];
            }
            // Interpolation mixes neighbouring inputs (nearest reads one).
            layer.rf[a] = rf[a] + (layer.mode.rfind("nearest", 0) == 0 ? 0.0 : jump[a]);
            break;
        }
        case LayerKind::RoiPool:
        case LayerKind::DeformRoiPool: {
            // The bins of the first RoI, on its box: bin i's centre at the RoI's start + (i + ½) bins
            // on the feature map read (mmcv's and torchvision's arithmetic: roiStartAndBin).
            const auto [first, bin] = roiStartAndBin(layer.roi, layer.feature_size, a);
            layer.jump[a] = jump[a] * bin;
            layer.start[a] = start[a] + (first + 0.5 * bin) * jump[a];
            layer.rf[a] = rf[a] + bin * double(layer.feature_size[a]) * jump[a];
            break;
        }
        }
    }
}

nlohmann::ordered_json LayerGraph::toJson() const {
    using Json = nlohmann::ordered_json;
    auto pair = [](auto a) { return Json::array({a[0], a[1]}); };
    Json root = Json::object();
    root["input_size"] = pair(m_inputSize);
    const bool frames = m_inputNames.size() > 1;
    if (frames)
        root["model_inputs"] = m_inputNames;
    Json layers = Json::array();
    auto nameOf = [&](int i) { return i >= 0 ? Json(m_layers[static_cast<size_t>(i)].name) : Json(); };
    for (const Layer& l : m_layers) {
        Json j = Json::object({{"index", l.index}, {"name", l.name}, {"kind", kindName(l.kind)}, {"op", l.op},
                               {"kernel", pair(l.kernel)}, {"stride", pair(l.stride)}, {"padding", pair(l.padding)},
                               {"dilation", pair(l.dilation)}, {"groups", l.groups}, {"offset_groups", l.offset_groups},
                               {"use_mask", l.use_mask}});
        if (!l.mode.empty())
            j["mode"] = l.mode;
        Json inputs = Json::array();
        for (int i : l.inputs)
            inputs.push_back(nameOf(i));
        j.update(Json::object({{"in_channels", l.in_channels}, {"out_channels", l.out_channels},
                               {"input_size", pair(l.input_size)}, {"feature_size", pair(l.feature_size)},
                               {"jump", pair(l.jump)}, {"start", pair(l.start)}, {"rf", pair(l.rf)},
                               {"inputs", inputs}, {"offset_source", nameOf(l.offset_source)},
                               {"mask_source", nameOf(l.mask_source)}}));
        if (l.kind == LayerKind::Dk)
            j.update(Json::object({{"scope", pair(l.scope)}, {"use_offset", l.use_offset},
                                   {"global_kernel_offsets", l.global_kernel_offsets},
                                   {"kernel_offset_source", nameOf(l.kernel_offset_source)}}));
        if (l.isSampler()) {
            const SamplerInfo& si = l.sampler;
            j["sampler"] = Json::object(
                {{"layout", si.layout == SamplerInfo::Layout::Queries ? "queries" : "spatial"},
                 {"value_map", l.inputs.empty() ? Json("image") : nameOf(l.inputs.back())},
                 {"value_size", pair(si.valueSize)}, {"points", si.points}, {"rows", si.rows},
                 {"level", si.level}, {"levels", si.levels}, {"align_corners", si.alignCorners},
                 {"padding_mode", si.padding}, {"mode", si.interpolation},
                 {"query_map", nameOf(si.querySource)}, {"grid_source", nameOf(l.grid_source)}});
        }
        if (l.isRoiPool()) {
            const RoiInfo& r = l.roi;
            j["roi"] = Json::object({{"box", Json::array({r.box[0], r.box[1], r.box[2], r.box[3]})},
                                     {"spatial_scale", r.spatialScale}, {"sampling_ratio", r.samplingRatio},
                                     {"gamma", r.gamma}, {"aligned", r.aligned}, {"rois", r.rois},
                                     {"pooled_size", pair(l.feature_size)}});
        }
        if (!l.reason.empty())
            j["reason"] = l.reason;
        if (frames) {
            Json from = Json::array();
            for (int f : l.frames)
                from.push_back(f >= 0 && size_t(f) < m_inputNames.size() ? Json(m_inputNames[size_t(f)]) : Json(f));
            j["from_inputs"] = from;
        }
        layers.push_back(j);
    }
    root["layers"] = layers;
    return root;
}

std::string LayerGraph::frameNames(const Layer& l) const {
    std::string names;
    for (int f : l.frames)
        names += (names.empty() ? "" : ",") +
                 (f >= 0 && size_t(f) < m_inputNames.size() ? m_inputNames[size_t(f)] : std::to_string(f));
    return names;
}

std::string LayerGraph::toTable() const {
    auto num = [](double v) {
        char b[32];
        std::snprintf(b, sizeof b, "%g", v);
        return std::string(b);
    };
    auto yx = [&](auto a) { return a[0] == a[1] ? num(double(a[0])) : num(double(a[0])) + "," + num(double(a[1])); };
    std::ostringstream s;
    char line[512];
    std::snprintf(line, sizeof line, "%-3s %-24s %-14s %-6s %-6s %-5s %-5s %-6s %-9s %-10s %-6s %-7s %-6s %s\n", "#",
                  "layer", "kind", "kernel", "stride", "pad", "dil", "groups", "channels", "feature", "jump", "start",
                  "rf", "inputs");
    s << line;
    for (const Layer& l : m_layers) {
        std::string inputs;
        for (int i : l.inputs)
            inputs += (inputs.empty() ? "" : ",") + m_layers[static_cast<size_t>(i)].name;
        if (inputs.empty())
            inputs = m_inputNames.size() > 1 ? "input " + frameNames(l) : "image";
        else if (m_inputNames.size() > 1)
            inputs += "  from " + frameNames(l);
        if (l.offset_source >= 0)
            inputs += "  offsets<-" + m_layers[static_cast<size_t>(l.offset_source)].name;
        if (l.mask_source >= 0)
            inputs += "  mask<-" + m_layers[static_cast<size_t>(l.mask_source)].name;
        if (l.grid_source >= 0)
            inputs += "  grid<-" + m_layers[static_cast<size_t>(l.grid_source)].name;
        if (l.kernel_offset_source >= 0)
            inputs += "  kernel offsets<-" + m_layers[static_cast<size_t>(l.kernel_offset_source)].name;
        std::string kind = kindName(l.kind);
        if (l.deformable() && l.offset_groups > 1)
            kind += " og" + std::to_string(l.offset_groups);
        if (l.kind == LayerKind::Dk)
            kind += " s" + yx(l.scope) + (l.global_kernel_offsets ? " global" : "") + (l.use_offset ? "+dcn" : "");
        if (l.isSampler()) {
            kind += " p" + std::to_string(l.sampler.points) + "x" + std::to_string(l.sampler.rows);
            if (l.sampler.levels > 1)
                kind += " L" + std::to_string(l.sampler.level) + "/" + std::to_string(l.sampler.levels);
        }
        if (!l.mode.empty() && !l.deformable() && !l.isSampler())
            kind += " " + l.mode.substr(0, l.mode.find(' '));
        const std::string channels = std::to_string(l.in_channels) + ">" + std::to_string(l.out_channels);
        const std::string feature = std::to_string(l.feature_size[0]) + "x" + std::to_string(l.feature_size[1]);
        std::snprintf(line, sizeof line, "%-3d %-24s %-14s %-6s %-6s %-5s %-5s %-6lld %-9s %-10s %-6s %-7s %-6s %s\n",
                      l.index, l.name.c_str(), kind.c_str(), yx(l.kernel).c_str(), yx(l.stride).c_str(),
                      yx(l.padding).c_str(), yx(l.dilation).c_str(), static_cast<long long>(l.groups),
                      channels.c_str(), feature.c_str(), yx(l.jump).c_str(), yx(l.start).c_str(), yx(l.rf).c_str(),
                      inputs.c_str());
        s << line;
        if (!l.reason.empty())
            s << "    " << (l.kind == LayerKind::UnrecognisedSampler ? "not understood: " : "read as: ") << l.reason << "\n";
    }
    return s.str();
}

} // namespace deformscope::model
