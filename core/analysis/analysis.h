// The analyses of one node (../shared/reference/DCN.md §3): its sampling
// locations through the deformable layers, its effective receptive field and
// its error-bounded saliency region, plus the metrics behind DCNv2's claims.
//
// An AnalysisSession holds one model and one input image, with one captured
// forward pass (kept, with its autograd graph, for every click on that image).
// Coordinates: the input grid is the model's input ([1, 3, H, W]); image pixel
// centres are at integers; a node at feature (fy, fx) of a layer is centred at
// start + f * jump (Layer::start / Layer::jump, per axis). A session is used
// from one thread at a time.
//
// A model with several input frames (video models) is analysed on a canvas: the
// frames side by side, [1, 3, H, I·W] (LoadedModel::splitFrames). Coordinates on
// the canvas are "input-image coordinates"; frame i holds x in [i·W, (i+1)·W). A
// layer's positions lie on its home frame (Layer::homeFrame), sampling points on
// the frame whose features their layer reads (SamplingPoint::input), and the ERF
// and the saliency region cover every frame.
#pragma once

#include "core/analysis/saliency.h"
#include "core/common/request.h"
#include "core/model/capture.h"
#include "core/model/model.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace deformscope::analysis {

// Bad requests (unknown layer, a position off the feature map, ...): the message names the problem.
class AnalysisError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// What a node responds with, how offsets are read, what the saliency search
// puts outside the region: the request's types (core/common/request.h).
using common::Baseline;
using common::OffsetReading;
using common::TraceThrough;
using common::Response;

struct Node {
    std::string layer;
    int64_t fy = 0, fx = 0; // position on the layer's feature map
    Response response;
    // RoI pooling layers only: the node is the whole region of interest, every bin (its
    // response reads all of them: Sum every channel of every bin, Channel one channel of
    // every bin, ClassScore the head's output), not bin (fy, fx); fy, fx then name the
    // centre bin (where the node is drawn).
    bool allBins = false;
};

// ---- sampling locations -----------------------------------------------------

struct SamplingOptions {
    int levels = 3;                       // spawning levels to trace (each k×k conv or deformable layer is one)
    OffsetReading reading = OffsetReading::Bilinear;
    TraceThrough through = TraceThrough::All; // deformable: regular convolutions pass points through
    bool weights = true;                  // compute contribution weights (one backward)
    int64_t maxPoints = 200000;           // stop spawning beyond this many points (a note says so)
};

struct SamplingPoint {
    double x = 0, y = 0;     // input-image coordinates
    int level = 1;           // 1: the node's own layer's taps
    double weight = 0;       // |∂ response / ∂ sampling location| (0 when weights are off); for a
                             // sampler's read Σ_c |∂ response / ∂ sampled value| (bilinear weight,
                             // mask or attention weight included), for an unrecognised one the footprint

    double modulation = 1;   // DCNv2 mask value of this tap; a query sampler's attention/mask weight (1 otherwise)
    // Deformable Kernel taps: the resampled kernel's effective weight at this tap,
    // mean over channels of |W_c(q_k + Δk)| (DK moves weights, not samples); NaN otherwise.
    double kernelWeight = std::numeric_limits<double>::quiet_NaN();
    bool inside = true;      // within the image (pixel areas: −0.5 ≤ x < W − 0.5, same for y)
    int layer = -1;          // index of the layer whose tap this is
    int parent = -1;         // index of the spawning point in `points`, −1 for level 1
    int tap = 0;             // tap index (row-major over the kernel); a sampler's point index
    int group = 0;           // offset group; a sampler's grid row (head or group)
    double fy = 0, fx = 0;   // position on the layer's input feature map (a sampler's value map)
    int featureLevel = 0;    // deformable attention: the feature level read (0 otherwise)
    int input = 0;           // the input frame it lies on (x is on the canvas: frame x + input·W)
};

struct SamplingTrace {
    std::vector<SamplingPoint> points; // level 1 first, then level 2, ...
    int levels = 0;                    // levels actually reached
    std::vector<std::string> levelLayers; // for each level, the layers whose taps it holds (comma separated)
    std::vector<std::string> notes;
    double seconds = 0;
};

// Distinct positions among a trace's points of `level` (0: all levels): points on the
// same input frame within 1e-3 px in x and y count once (the DCN papers' "unique
// points": many taps coincide or fall outside). result.json's unique_points.
int64_t uniquePoints(const SamplingTrace& trace, int level = 0);

// The weighted spread of the deepest level's points: the square root of their
// weight-averaged squared distance to their weighted centroid, input-image
// pixels (0 without weight). The metric result.json calls weighted_spread_px.
double weightedSpread(const SamplingTrace& trace);

// ---- effective receptive field ----------------------------------------------

struct ErfOptions {
    bool isSigned = false; // signed sum over colours instead of the sum of magnitudes
};

struct ErfMetrics {
    double mass = 0;                          // Σ |erf|
    std::array<double, 3> areaFractions{0.5, 0.9, 0.99};
    std::array<int64_t, 3> areaPixels{0, 0, 0}; // fewest pixels holding each fraction of the mass
    std::array<double, 2> centroid{0, 0};     // x, y (mass-weighted)
    std::array<double, 2> spread{0, 0};       // x, y standard deviations
    double radialSpread = 0;                  // sqrt of the mean squared distance to the centroid
    double rfAreaPixels = 0;                  // theoretical RF clipped to the image
    double area90ToRf = 0;                    // areaPixels[1] / rfAreaPixels
    // RepLKNet: log10(1 + erf), normalised to max 1; for each threshold the side
    // of the smallest square centred on the node holding that fraction, and its
    // area / image area (-1 when no square inside the image holds it).
    std::array<double, 4> highContributionThresholds{0.2, 0.3, 0.5, 0.99};
    std::array<int64_t, 4> highContributionSide{-1, -1, -1, -1};
    std::array<double, 4> highContributionRatio{-1, -1, -1, -1};
};

struct ErfResult {
    at::Tensor map; // [H, W] float32 on the CPU, on the input grid (the canvas: [H, I·W] for I frames)
    ErfMetrics metrics;
    // Several input frames: the metrics of each frame's part of the map (the node's
    // centre at its place in that frame) and each frame's share of the mass.
    std::vector<ErfMetrics> inputs;
    std::vector<double> inputShare;
    double seconds = 0;
};

// Metrics of an ERF map for a node centred at (cx, cy) with theoretical RF `rf` (h, w).
ErfMetrics erfMetrics(const at::Tensor& map, std::array<double, 2> nodeXY, std::array<double, 2> rf);

// ---- saliency -----------------------------------------------------------------

// ---- object metrics -------------------------------------------------------------

struct ObjectMetrics {
    double erfMassInside = -1;         // fraction of the ERF mass inside the object
    double samplingWeightInside = -1;  // fraction of the sampling weight inside the object
    double samplingPointsInside = -1;  // fraction of the sampling points inside the object
    double saliencyAreaInside = -1;    // fraction of the kept saliency area inside the object
    int64_t objectPixels = 0;
};

// `object` is [H, W] (nonzero = object) on the input grid; absent parts stay -1.
ObjectMetrics objectMetrics(const at::Tensor& object, const ErfResult* erf, const SamplingTrace* sampling,
                            const SaliencyResult* saliency);

// ---- Deformable Kernel view -------------------------------------------------------

// One tap of a Deformable Kernel layer's resampled kernel, in scope cells: the
// scope kernel's weight (i, j) sits at (y, x) = (i, j), so the regular k×k grid
// is centred in the Sh×Sw scope.
struct KernelTap {
    int tap = 0;                 // row-major over the k×k kernel
    double baseY = 0, baseX = 0; // q_k: where the tap reads with zero kernel offsets
    double y = 0, x = 0;         // q_k + Δk: where it reads (the learned kernel-space position)
    double weight = 0;           // |W(q_k + Δk)|, bilinear, mean over channels (one channel for channel:N on the DK layer)
    bool inside = true;          // q_k + Δk within (−1, S) on both axes; outside, the weight is 0
};

// The resampled kernel behind a node (the DK paper's picture of what DK learns):
// the scope weights as a map and the kernel-space positions each tap reads.
// The node's own layer when it is a DK layer; otherwise the nearest DK layer
// below it (the last one the forward ran before the node's layer among those it
// reaches), at its output position nearest to the node's centre.
struct KernelView {
    std::string layer;                  // the DK layer shown
    int64_t fy = 0, fx = 0;             // its output position
    std::array<double, 2> centre{0, 0}; // that position's centre, input-image x, y
    std::array<int64_t, 2> scope{0, 0}, kernel{0, 0}; // (h, w)
    bool global = false;                // global kernel offsets: one kernel per image
    int64_t channel = -1;               // the channel shown, −1: mean over channels
    at::Tensor scopeWeight;             // [Sh, Sw] float32 CPU: |W| of the scope kernel (same channel rule)
    std::vector<KernelTap> taps;        // k·k taps, row-major
    double meanShift = 0;               // mean |Δk| over the taps, scope cells
    std::vector<std::string> notes;
    double seconds = 0;
};

// ---- session ------------------------------------------------------------------

class AnalysisSession {
public:
    // `input`: [1, 3, H, W], normalised as the model expects (imaging does that).
    // Runs the captured forward once. Turns off the gradients of the model's
    // parameters (analyses need only input gradients). Throws model::ModelError.
    AnalysisSession(model::LoadedModel model, const at::Tensor& input);
    ~AnalysisSession();
    AnalysisSession(AnalysisSession&&) noexcept;
    AnalysisSession& operator=(AnalysisSession&&) noexcept;

    const model::LoadedModel& model() const;
    const model::LayerGraph& graph() const;
    const model::Capture& capture() const;
    at::Tensor input() const; // [1, 3, H, W] (the canvas: W = I·frame width)
    std::array<int64_t, 2> inputSize() const;
    // The input frames I (1 for an ordinary model) and one frame's (H, W).
    int64_t frames() const;
    std::array<int64_t, 2> frameSize() const;
    // The frame under canvas x (clamped to the frames).
    int frameAt(double x) const;

    // The layer, or AnalysisError listing the layers.
    const model::Layer& layer(const std::string& name) const;
    // The node of `layer` whose centre is nearest to input-image point (x, y) (on
    // any frame: the same position of every frame picks the same node).
    Node nodeAt(const std::string& layer, double x, double y, Response response = {}) const;
    // The node's centre in input-image coordinates (x, y), on its layer's home frame.
    std::array<double, 2> nodeCentre(const Node& node) const;
    // The same within its frame (x < frame width).
    std::array<double, 2> frameCentre(const Node& node) const;
    // Throws AnalysisError when the node is not on its layer or the response index is out of range.
    void validate(const Node& node) const;
    // The node's response on the full image: [D] (D = channels for Sum, else 1), CPU float.
    at::Tensor response(const Node& node) const;

    ErfResult erf(const Node& node, const ErfOptions& options = {}) const;
    // ERFs of several nodes of this image: on the CPU one forward and one backward per node
    // through the kept graph, on a GPU one forward and one backward of the image repeated per
    // node; `metrics` false leaves each result's metrics empty (the maps alone, for many nodes).
    std::vector<ErfResult> erfBatch(const std::vector<Node>& nodes, const ErfOptions& options = {},
                                    bool metrics = true) const;
    SamplingTrace sampling(const Node& node, const SamplingOptions& options = {}) const;
    SaliencyResult saliency(const Node& node, const SaliencyOptions& options = {}, const Baseline& baseline = {},
                            const SaliencyProgressFn& progress = {}) const;
    // The Deformable Kernel view of the node (see KernelView); AnalysisError when
    // no DK layer is at or below the node's layer.
    KernelView kernel(const Node& node) const;
    // The DK layer kernel(node) would show, or "" when there is none.
    std::string kernelLayer(const Node& node) const;

    // The theoretical receptive field box of a node, clipped to the image: {y0, x0, y1, x1}, half-open.
    std::array<int64_t, 4> receptiveFieldBox(const Node& node) const;
    // The baseline image ([1, 3, H, W]) for the saliency search.
    at::Tensor baselineImage(const Baseline& baseline) const;

private:
    static at::Tensor blurred(const at::Tensor& image, double sigma);
    struct Impl;
    std::unique_ptr<Impl> d;
};

// JSON of the results (every number; tensors are not included).
nlohmann::ordered_json toJson(const Node& node);
nlohmann::ordered_json toJson(const SamplingTrace& trace);
nlohmann::ordered_json toJson(const ErfMetrics& metrics);
nlohmann::ordered_json toJson(const SaliencyResult& result);
nlohmann::ordered_json toJson(const ObjectMetrics& metrics);
nlohmann::ordered_json toJson(const KernelView& view); // includes the scope weights (Sh×Sw numbers)

} // namespace deformscope::analysis

namespace deformscope::analysis {

// ---- ERF averaged over many images (RepLKNet's protocol) ----------------------------

// How the per-image gradients become the average:
//   DeformScope: d response / d input, |.| (or signed) summed over channels, averaged;
//   RepLKNet:    their published script (erf/visualize_erf.py): the response is
//                relu(output[:, :, node]) summed over channels, the map is relu(gradient)
//                summed over channels, an image whose map has a NaN is skipped; the
//                area ratios of erf/analyze_erf.py come with it (replknetAreaRatios).
enum class ErfProtocol { DeformScope, RepLKNet };

struct ErfAverageOptions {
    std::string layer;                        // required
    std::optional<std::array<int64_t, 2>> node; // (fy, fx); default: the centre of the feature map
    Response response;
    int64_t batchSize = 8;                    // images per forward/backward
    bool isSigned = false;
    ErfProtocol protocol = ErfProtocol::DeformScope;
};

// RepLKNet's "high-contribution area ratio" (erf/analyze_erf.py): the map is taken
// as log10(1 + x) / max; the smallest centred square of side 2i + 1 (i = 1 .. H/2 - 1)
// holding more than `threshold` of the total; areaRatio = side/H · side/W. sideLength
// is 0 when no such square exists (their script has no answer then either).
struct ReplknetArea {
    double threshold = 0;
    int64_t sideLength = 0;
    double areaRatio = 0;
};
inline constexpr std::array<double, 4> kReplknetThresholds{0.2, 0.3, 0.5, 0.99};
std::vector<ReplknetArea> replknetAreaRatios(const at::Tensor& map);

struct ErfAverageResult {
    at::Tensor map;          // [H, W] float32, CPU: the mean over the images used
    Node node;
    int64_t images = 0;      // images used
    std::vector<std::string> skipped; // "<name>: <why>" for inputs that could not be used
    ErfMetrics metrics;
    ErfProtocol protocol = ErfProtocol::DeformScope;
    std::vector<ReplknetArea> replknetAreas; // the RepLKNet protocol's area ratios (empty otherwise)
    double seconds = 0;
    bool cancelled = false;
};

// `load(i)` returns image i as [1, 3, H, W] (normalised, every image the same
// size) or throws std::exception (the image is then skipped, with its message);
// `name(i)` names it in messages. `progress(done, total)` returning false cancels.
ErfAverageResult averageErf(const model::LoadedModel& model, int64_t count,
                            const std::function<at::Tensor(int64_t)>& load,
                            const std::function<std::string(int64_t)>& name, const ErfAverageOptions& options,
                            const std::function<bool(int64_t, int64_t)>& progress = {});

nlohmann::ordered_json toJson(const ErfAverageResult& result);

} // namespace deformscope::analysis
