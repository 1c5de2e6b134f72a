// Frames and motion for models with several inputs: see video.h.
#include "core/report/video.h"

#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "core/report/report.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

namespace deformscope::report {

namespace fs = std::filesystem;
using common::Json;

std::string InputSource::describe() const {
    if (!video.empty()) {
        std::string list;
        for (int64_t f : frames)
            list += (list.empty() ? "" : ", ") + std::to_string(f);
        return video + " frames " + list;
    }
    std::string list;
    for (const auto& i : images)
        list += (list.empty() ? "" : " + ") + i;
    return list;
}

std::vector<std::string> InputSource::frameNames() const {
    if (video.empty())
        return images;
    std::vector<std::string> names;
    for (int64_t f : frames)
        names.push_back(video + "#" + std::to_string(f));
    return names;
}

std::string InputSource::toText() const {
    std::string text;
    if (!video.empty()) {
        text = video + "\nframes:";
        for (size_t i = 0; i < frames.size(); ++i)
            text += (i ? "," : "") + std::to_string(frames[i]);
        return text;
    }
    for (const auto& i : images)
        text += (text.empty() ? "" : "\n") + i;
    return text;
}

InputSource InputSource::fromText(const std::string& text) {
    InputSource s;
    std::vector<std::string> lines;
    size_t at = 0;
    while (at <= text.size()) {
        const size_t end = std::min(text.find('\n', at), text.size());
        if (end > at)
            lines.push_back(text.substr(at, end - at));
        at = end + 1;
    }
    for (const std::string& line : lines) {
        if (line.rfind("frames:", 0) != 0)
            continue;
        std::string list = line.substr(7);
        size_t p = 0;
        while (p < list.size()) {
            const size_t comma = std::min(list.find(',', p), list.size());
            try {
                s.frames.push_back(std::stoll(list.substr(p, comma - p)));
            } catch (const std::exception&) {
                throw UsageError("frames '" + list + "': expected whole numbers t,u,...");
            }
            p = comma + 1;
        }
    }
    for (const std::string& line : lines)
        if (line.rfind("frames:", 0) != 0)
            s.images.push_back(line);
    if (!s.frames.empty()) {
        if (s.images.size() != 1)
            throw UsageError("a video's frames need exactly one video file, got " + std::to_string(s.images.size()));
        s.video = s.images.front();
        s.images.clear();
    }
    return s;
}

namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The run's frames on the model's input grid, each [H, W, 3] uint8 RGB (the canvas resized once).
std::vector<at::Tensor> framesRgb(const Run& r) {
    const int64_t I = r.session->frames(), H = r.image.height;
    at::Tensor rgb = r.image.rgb;
    if (rgb.size(0) != H || rgb.size(1) != r.image.width) {
        const at::Tensor f = rgb.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
        rgb = at::upsample_bilinear2d(f, {H, r.image.width}, false)[0].permute({1, 2, 0}).round().clamp(0, 255).to(at::kByte);
    }
    std::vector<at::Tensor> frames;
    for (const at::Tensor& f : rgb.chunk(I, 1))
        frames.push_back(f.contiguous());
    return frames;
}

// A label file: a mask image (nonzero = labelled) of one original frame, on the
// input grid [H, W] float; or keypoints {"keypoints": [[x, y], ...]} in original pixels -> input grid.
struct Label {
    at::Tensor mask;
    std::vector<std::array<double, 2>> points;
};

Label readLabel(const Run& r, const std::string& path) {
    const int64_t I = r.session->frames(), H = r.image.height, W = r.image.width / I;
    const double W0 = double(r.image.originalWidth / I), H0 = double(r.image.originalHeight);
    Label label;
    std::string ext = fs::path(path).extension().string();
    for (char& c : ext)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".json") {
        const Json j = common::readJsonFile(path);
        const Json* list = j.is_object() && j.contains("keypoints") ? &j["keypoints"] : j.is_array() ? &j : nullptr;
        if (!list || !list->is_array() || list->empty())
            throw UsageError(path + ": expected {\"keypoints\": [[x, y], ...]} (original image pixels)");
        for (const Json& p : *list) {
            if (!p.is_array() || p.size() < 2 || !p[0].is_number() || !p[1].is_number())
                throw UsageError(path + ": each keypoint must be [x, y] (numbers), got " + p.dump());
            label.points.push_back({(p[0].get<double>() + 0.5) * double(W) / W0 - 0.5,
                                    (p[1].get<double>() + 0.5) * double(H) / H0 - 0.5});
        }
        return label;
    }
    at::Tensor ids;
    try {
        ids = imaging::readMask(path);
    } catch (const std::exception& e) {
        throw UsageError(e.what());
    }
    if (ids.size(0) != int64_t(H0) || ids.size(1) != int64_t(W0))
        throw UsageError(path + ": the mask is " + std::to_string(ids.size(1)) + " x " + std::to_string(ids.size(0)) +
                         " but each frame is " + std::to_string(int64_t(W0)) + " x " + std::to_string(int64_t(H0)));
    at::Tensor m = ids.ne(0).to(at::kFloat).view({1, 1, ids.size(0), ids.size(1)});
    if (m.size(2) != H || m.size(3) != W)
        m = at::upsample_nearest2d(m, {H, W});
    label.mask = m[0][0].contiguous();
    return label;
}

double iou(const at::Tensor& a, const at::Tensor& b) {
    const at::Tensor x = a.gt(0.5), y = b.gt(0.5);
    const double u = (x | y).sum().item<double>();
    return u > 0 ? (x & y).sum().item<double>() / u : 1.0;
}

double meanDistance(const std::vector<std::array<double, 2>>& a, const std::vector<std::array<double, 2>>& b) {
    double sum = 0;
    for (size_t i = 0; i < a.size(); ++i)
        sum += std::hypot(a[i][0] - b[i][0], a[i][1] - b[i][1]);
    return a.empty() ? 0 : sum / double(a.size());
}

Json comparisonJson(const analysis::FieldComparison& c, const char* what) {
    auto num = [](double v) { return std::isnan(v) ? Json() : Json(v); };
    Json j = Json::object();
    j[std::string("epe_vs_") + what + "_px"] = num(c.epePx);
    j[std::string("cosine_vs_") + what] = num(c.cosine);
    if (c.epeInsidePx >= 0 || std::isnan(c.epeInsidePx)) {
        j[std::string("epe_vs_") + what + "_inside_px"] = num(c.epeInsidePx);
        j[std::string("cosine_vs_") + what + "_inside"] = num(c.cosineInside);
    }
    return j;
}

Json pointsJson(const std::vector<std::array<double, 2>>& points) {
    Json a = Json::array();
    for (const auto& p : points)
        a.push_back(Json::array({p[0], p[1]}));
    return a;
}

// Whether the run's last motion report answered the same question: the motion field
// and both flows depend only on the run's frames (a new image makes a new Run), the
// layer and the alarm threshold, not on the clicked node.
bool sameMotion(const Run& r, const common::AnalysisRequest& rq) {
    const std::optional<MotionReport>& k = r.motionKept;
    if (!k || !k->field.mean.defined() || k->field.alarmThresholdPx != rq.motionAlarmPx)
        return false;
    if (!rq.motionLayer.empty())
        return rq.motionLayer == k->field.layer;
    const std::vector<int> aligned = analysis::alignmentLayers(r.session->graph());
    return !aligned.empty() && r.session->graph().layers()[size_t(aligned.back())].name == k->field.layer;
}

} // namespace

void analyseMotion(Run& r, const common::AnalysisRequest& rq) {
    const auto t0 = std::chrono::steady_clock::now();
    MotionReport m;
    const int64_t I = r.session->frames(), H = r.image.height, W = r.image.width / I;
    if (sameMotion(r, rq)) {
        // A later click on the same frames (the GUI): the field and the flows are kept;
        // what depends on the node's object and the labels is computed again below.
        m.field = r.motionKept->field;
        m.flow = r.motionKept->flow;
        m.farneback = r.motionKept->farneback;
        m.seconds = secondsSince(t0);
        m.flowSeconds = 0;
    } else {
        try {
            m.field = analysis::motionField(*r.session, rq.motionLayer, rq.motionAlarmPx);
        } catch (const analysis::AnalysisError& e) {
            throw UsageError(e.what());
        }
        m.seconds = secondsSince(t0);
        const auto t1 = std::chrono::steady_clock::now();
        const std::vector<at::Tensor> frames = framesRgb(r);
        const at::Tensor& a = frames.at(size_t(m.field.reference));
        const at::Tensor& b = frames.at(size_t(m.field.support));
        m.flow = imaging::opticalFlow(a, b, imaging::FlowMethod::Dis);
        m.flowSeconds = secondsSince(t1);
        m.farneback = imaging::opticalFlow(a, b, imaging::FlowMethod::Farneback);
    }
    // Inside the object: its part on the reference frame.
    at::Tensor region;
    if (r.object.defined())
        region = r.object.narrow(1, m.field.reference * W, W).contiguous();
    m.vsFlow = analysis::compareFields(m.field.mean, m.flow, region);
    m.vsFarneback = analysis::compareFields(m.field.mean, m.farneback, region);
    if (!rq.trueMotion.empty()) {
        try {
            m.truth = common::readNpy(rq.trueMotion).to(at::kFloat);
        } catch (const std::exception& e) {
            throw UsageError(e.what());
        }
        if (m.truth.dim() != 3 || m.truth.size(0) != 2 || m.truth.size(1) != H || m.truth.size(2) != W)
            throw UsageError(rq.trueMotion + ": the true motion must be [2, " + std::to_string(H) + ", " +
                             std::to_string(W) + "] (dx, dy on the model's input grid), got " + c10::str(m.truth.sizes()));
        m.vsTruth = analysis::compareFields(m.field.mean, m.truth, region);
        m.flowVsTruth = analysis::compareFields(m.flow, m.truth, region);
    }
    if (!rq.propagate.empty()) {
        const Label from = readLabel(r, rq.propagate);
        std::optional<Label> truth;
        if (!rq.propagateTruth.empty())
            truth = readLabel(r, rq.propagateTruth);
        if (from.mask.defined()) {
            m.propagateKind = "mask";
            m.labelReference = from.mask;
            m.byReads = analysis::propagateByReads(m.field, from.mask, {H, W});
            m.byFlow = analysis::propagateByFlow(m.flow, from.mask);
            if (truth) {
                if (!truth->mask.defined())
                    throw UsageError(rq.propagateTruth + ": a mask image is needed to score a propagated mask");
                m.labelSupport = truth->mask;
                m.iouReads = iou(m.byReads, truth->mask);
                m.iouFlow = iou(m.byFlow, truth->mask);
            }
        } else {
            m.propagateKind = "keypoints";
            m.points = from.points;
            m.pointsByReads = analysis::propagatePointsByReads(m.field, from.points);
            m.pointsByFlow = analysis::propagatePointsByFlow(m.flow, from.points);
            if (truth) {
                if (truth->points.size() != from.points.size())
                    throw UsageError(rq.propagateTruth + ": " + std::to_string(truth->points.size()) +
                                     " keypoints, but " + rq.propagate + " has " + std::to_string(from.points.size()));
                m.pointsSupport = truth->points;
                m.distanceReads = meanDistance(m.pointsByReads, truth->points);
                m.distanceFlow = meanDistance(m.pointsByFlow, truth->points);
            }
        }
    }
    r.motion = std::move(m);
    r.motionKept = r.motion;
}

double motionColourScale(const MotionReport& m) {
    return std::max({m.field.mean.abs().max().item<double>(), m.flow.abs().max().item<double>(), 1e-9}) * std::sqrt(2.0);
}

at::Tensor motionColours(const at::Tensor& field, double maxPx) {
    const at::Tensor f = field.to(at::kCPU, at::kDouble);
    const at::Tensor dx = f[0], dy = f[1];
    const at::Tensor mag = (dx * dx + dy * dy).sqrt();
    const double top = maxPx > 0 ? maxPx : std::max(mag.max().item<double>(), 1e-9);
    // Hue from the direction (0: right, counter-clockwise as seen with y down), saturation from the magnitude.
    const at::Tensor hue = (at::atan2(-dy, dx) / (2 * M_PI) + 1).remainder(1.0) * 6; // [0, 6)
    const at::Tensor sat = (mag / top).clamp(0, 1);
    auto channel = [&](double n) {
        // HSV -> RGB with V = 1: 1 - S·max(0, min(k', 4 - k', 1)), k' = (n + h) mod 6.
        const at::Tensor kk = (hue + n).remainder(6.0);
        return 1 - sat * at::clamp_min(at::minimum(at::minimum(kk, 4 - kk), at::ones_like(kk)), 0);
    };
    const at::Tensor rgb = at::stack({channel(5), channel(3), channel(1)}, 2);
    return (rgb * 255).round().clamp(0, 255).to(at::kByte).contiguous();
}

void writeMotion(const Run& r, const std::string& dirPath, Json& doc, Json& files) {
    if (!r.motion)
        return;
    const MotionReport& m = *r.motion;
    const fs::path dir(dirPath);
    auto file = [&](const std::string& name) {
        files.push_back(name);
        return (dir / name).string();
    };
    const auto& names = r.session->graph().inputNames();
    common::writeNpy(file("motion.npy"), m.field.mean.to(at::kFloat).contiguous());
    common::writeNpy(file("motion_points.npy"), m.field.points.to(at::kFloat).contiguous());
    common::writeNpy(file("flow.npy"), m.flow.to(at::kFloat).contiguous());
    common::writeNpy(file("flow_farneback.npy"), m.farneback.to(at::kFloat).contiguous());
    const double top = motionColourScale(m); // one scale for both colour wheels
    const at::Tensor motionImage = motionColours(m.field.mean, top), flowImage = motionColours(m.flow, top);
    imaging::writeImage(file("motion.png"), motionImage);
    imaging::writeImage(file("flow.png"), flowImage);
    // Side by side: the learned motion | a white gap | DIS flow (one colour scale).
    const at::Tensor gap = at::full({motionImage.size(0), 4, 3}, 255, at::kByte);
    imaging::writeImage(file("motion_vs_flow.png"), at::cat({motionImage, gap, flowImage}, 1).contiguous());
    Json j = analysis::toJson(m.field);
    j["reference"] = names.at(size_t(m.field.reference));
    j["support"] = names.at(size_t(m.field.support));
    j.update(comparisonJson(m.vsFlow, "flow"));
    j.update(comparisonJson(m.vsFarneback, "farneback"));
    if (m.vsTruth) {
        j.update(comparisonJson(*m.vsTruth, "truth"));
        Json f = comparisonJson(*m.flowVsTruth, "truth");
        for (auto& [k, v] : f.items())
            j["flow_" + k] = v;
    }
    j["flow_method"] = "OpenCV DISOpticalFlow (PRESET_MEDIUM) from the reference to the support frame, on the input grid";
    j["colour_scale_px"] = top;
    j["seconds"] = m.seconds;
    j["flow_seconds"] = m.flowSeconds;
    j["files"] = Json::array({"motion.npy", "motion_points.npy", "flow.npy", "flow_farneback.npy", "motion.png", "flow.png",
                              "motion_vs_flow.png"});
    doc["motion"] = j;
    if (m.propagateKind.empty())
        return;
    Json p = Json::object({{"kind", m.propagateKind}, {"from", names.at(size_t(m.field.reference))},
                           {"to", names.at(size_t(m.field.support))}, {"layer", m.field.layer}});
    if (m.propagateKind == "mask") {
        imaging::writeImage(file("propagated_reads.png"), (m.byReads.gt(0.5).to(at::kByte) * 255).contiguous());
        imaging::writeImage(file("propagated_flow.png"), (m.byFlow.gt(0.5).to(at::kByte) * 255).contiguous());
        p["area_reference_px"] = m.labelReference.gt(0.5).sum().item<int64_t>();
        p["area_reads_px"] = m.byReads.gt(0.5).sum().item<int64_t>();
        p["area_flow_px"] = m.byFlow.gt(0.5).sum().item<int64_t>();
        if (m.iouReads >= 0) {
            p["iou_reads"] = m.iouReads;
            p["iou_flow"] = m.iouFlow;
        }
        p["files"] = Json::array({"propagated_reads.png", "propagated_flow.png"});
    } else {
        p["keypoints"] = pointsJson(m.points);
        p["by_reads"] = pointsJson(m.pointsByReads);
        p["by_flow"] = pointsJson(m.pointsByFlow);
        if (m.distanceReads >= 0) {
            p["distance_reads_px"] = m.distanceReads;
            p["distance_flow_px"] = m.distanceFlow;
        }
        p["coordinates"] = "x, y on the input grid of one frame";
    }
    doc["propagation"] = p;
}

} // namespace deformscope::report
