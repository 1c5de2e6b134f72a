// The video part of the report pipeline (models with several input frames):
// where the frames come from (image files, or frames of a video), and the
// motion analysis of an alignment layer — its offsets as a motion field against
// OpenCV's optical flow and the true motion, and a label of the reference frame
// carried to the support frame. Used by report.cpp (prepareRun, analyseNode,
// writeData); needs core_imaging (OpenCV).
#pragma once

#include "core/analysis/motion.h"
#include "core/common/request.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace deformscope::report {

struct Run;

// The model's inputs: one image file per input frame, in forward's order, or
// frames of one video (numbers counted from 0).
struct InputSource {
    std::vector<std::string> images;
    std::string video;
    std::vector<int64_t> frames;
    // "a.png" / "a.png + b.png" / "clip.mp4 frames 3, 5".
    std::string describe() const;
    // The name of each frame, for messages and result.json.
    std::vector<std::string> frameNames() const;
    // One line of text per image ("a.png\nb.png"), or the video and its frames
    // ("clip.mp4\nframes:3,5"): how the GUI's sessions and recent files keep it.
    std::string toText() const;
    // The inverse of toText (one path is one image); UsageError for bad frame numbers.
    static InputSource fromText(const std::string& text);
};

// What --what motion and --propagate found (motion.h's analyses, with the flows).
struct MotionReport {
    analysis::MotionField field;
    at::Tensor flow, farneback; // [2, H, W] (dx, dy) reference -> support: DIS, Farnebäck
    analysis::FieldComparison vsFlow, vsFarneback;
    at::Tensor truth;                                        // [2, H, W] when --true-motion was given
    std::optional<analysis::FieldComparison> vsTruth, flowVsTruth;
    double seconds = 0, flowSeconds = 0;
    // Propagation (--propagate): "mask" or "keypoints".
    std::string propagateKind;
    at::Tensor labelReference, byReads, byFlow, labelSupport; // masks [H, W] float on the input grid
    std::vector<std::array<double, 2>> points, pointsByReads, pointsByFlow, pointsSupport; // input grid x, y
    double iouReads = -1, iouFlow = -1, distanceReads = -1, distanceFlow = -1;
};

// The motion analysis of the run's node's model (request: motion layer, alarm,
// true motion, propagation). Throws UsageError for a model without an alignment
// layer, a bad --true-motion or --propagate file.
void analyseMotion(Run& run, const common::AnalysisRequest& request);

// Writes motion.npy, flow.npy, flow_farneback.npy, motion_points.npy, motion.png /
// flow.png (colour wheel), propagated_*.png and the "motion" / "propagation"
// sections of result.json into `doc`, listing the files in `files`.
void writeMotion(const Run& run, const std::string& dir, nlohmann::ordered_json& doc, nlohmann::ordered_json& files);

// The colour scale the motion figures share (px at full saturation): √2 × the
// largest component of the learned motion or the DIS flow, so equal colours
// mean equal motion in both.
double motionColourScale(const MotionReport& motion);

// A [2, H, W] motion field as a colour-wheel image [H, W, 3] uint8 (hue: direction,
// saturation: magnitude relative to `maxPx`; maxPx ≤ 0: the field's own maximum).
at::Tensor motionColours(const at::Tensor& field, double maxPx = 0);

} // namespace deformscope::report
