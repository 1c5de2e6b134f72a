// Offsets read as motion (video alignment models, seed article 000): an
// alignment layer — a deformable layer (or a flow-warping sampler) reading one
// input frame (the support) where offsets computed from another frame (the
// reference) say — moves its reads by a displacement field; averaged over the
// kernel points it is the motion the network learned, in input pixels, on the
// reference frame's grid. This file turns those offsets into motion fields,
// compares them with any other field (optical flow, the true motion) and carries
// labels of the reference frame to the support frame through the layer's reads.
// Plain LibTorch; the optical flow itself is imaging::opticalFlow (OpenCV).
#pragma once

#include "core/analysis/analysis.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <string>
#include <vector>

namespace deformscope::analysis {

// The alignment layers of a graph: deformable layers (DCN, hand-written or
// adapted) and spatial samplers whose data come from one input frame while
// their offsets / grid derive from another one too. Ascending layer indices.
std::vector<int> alignmentLayers(const model::LayerGraph& graph);

// Multi-branch alignment (PoseWarper): groups of two or more deformable layers
// reading the same features (the same input layers) side by side, e.g. with
// dilations 3, 6, 12, 18, 24, their outputs summed. Each group ascending.
std::vector<std::vector<int>> branchGroups(const model::LayerGraph& graph);

struct MotionField {
    std::string layer;
    int reference = 0, support = 1;  // input frames: offsets at the reference's positions read the support
    // [2, H, W] float32 (dx, dy), input pixels, on the reference frame's grid: the
    // mean over the kernel points (and offset groups) of their offsets.
    at::Tensor mean;
    // [P, 2, Ho, Wo] float32 (dx, dy) in input pixels, P = groups × kernel points
    // (group-major), on the layer's output grid: each point's offset.
    at::Tensor points;
    // [P, 2, Ho, Wo] float32 (x, y): where each point reads, support-frame pixels;
    // [P, Ho, Wo] its weight (the DCNv2 mask, else 1).
    at::Tensor reads, readWeights;
    std::array<double, 2> start{0, 0}, jump{1, 1}; // output position (y, x) -> reference pixel start + i·jump
    double meanOffsetPx = 0;      // mean |offset| over every offset value (BasicSR's offset_absmean), pixels
    double offsetDiversityPx = 0; // mean over positions of the points' RMS distance to their mean offset, pixels
    bool alarm = false;           // meanOffsetPx above the threshold
    double alarmThresholdPx = 50;
    std::vector<std::string> notes;
};

// The motion field of alignment layer `layer` ("" : the last alignment layer) of
// the session's captured forward. AnalysisError when the model has no alignment
// layer or `layer` is not one (the message lists those it has).
MotionField motionField(const AnalysisSession& session, const std::string& layer = "", double alarmThresholdPx = 50);

// End-point error and cosine similarity of two [2, H, W] (dx, dy) fields: over
// the frame, and inside `region` ([H, W], nonzero = inside) when defined. The
// cosine is averaged over pixels where both fields move by more than 0.05 px
// (NaN when there are none).
struct FieldComparison {
    double epePx = 0, cosine = 0;
    double epeInsidePx = -1, cosineInside = -1; // -1: no region
};
FieldComparison compareFields(const at::Tensor& a, const at::Tensor& b, const at::Tensor& region = {});

// A label of the reference frame carried to the support frame ([H, W] float32, values in [0, 1]).
//  - through the layer's reads: every output position's reads carry its label to
//    where they read, splatted bilinearly with the read's weight; the result is
//    the weighted mean of what arrives (0 where nothing does);
//  - through a flow: each reference pixel's label moves to x + flow(x), splatted.
at::Tensor propagateByReads(const MotionField& motion, const at::Tensor& label, std::array<int64_t, 2> frameSize);
at::Tensor propagateByFlow(const at::Tensor& flow, const at::Tensor& label);
// Keypoints (x, y) of the reference frame carried to the support frame: the
// weighted mean of the reads of the output position nearest each point; or x + flow(x).
std::vector<std::array<double, 2>> propagatePointsByReads(const MotionField& motion,
                                                          const std::vector<std::array<double, 2>>& points);
std::vector<std::array<double, 2>> propagatePointsByFlow(const at::Tensor& flow,
                                                         const std::vector<std::array<double, 2>>& points);

nlohmann::ordered_json toJson(const MotionField& motion);

} // namespace deformscope::analysis
