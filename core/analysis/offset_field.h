// The offset field of a deformable layer (DCNv1 / DCNv2) on one image: for
// every output position and tap, where the regular kernel samples and where
// the learned offset moves it, in input-image pixels, with DCNv2's mask value,
// and the per-position mean mask (the modulation map). Plain data that the
// views draw (ui/figure's offset and modulation overlays); no Qt here.
//
// offsetField reads the session's captured forward: call it from the thread
// that uses the session (an AnalysisSession is used from one thread at a time).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace deformscope::analysis {

class AnalysisSession;

// One tap at one output position, in input-image pixels (pixel centres at integers).
struct OffsetArrow {
    float x = 0, y = 0;   // the regular (undeformed) sampling position
    float dx = 0, dy = 0; // the offset
    float modulation = 1; // DCNv2's mask value (1 for DCNv1)
};

struct OffsetField {
    std::string layer;
    int featureH = 0, featureW = 0; // the layer's output feature map
    int taps = 0;                   // offset groups × kernel taps
    bool modulated = false;         // DCNv2: a mask was captured
    // featureH·featureW·taps arrows, row-major over (fy, fx, tap); tap t is
    // kernel tap t mod (kh·kw) of offset group t / (kh·kw).
    std::vector<OffsetArrow> arrows;
    // featureH·featureW, row-major: the mean over the taps of the mask value
    // (non-finite values count as 0) — the modulation map; empty unless modulated.
    std::vector<double> meanModulation;
    // Output position (fy, fx) is centred at start + f·jump (y, x), as model::Layer.
    std::array<double, 2> start{0, 0}, jump{1, 1};

    bool empty() const { return arrows.empty(); }
};

// The offset field of `layer` on the session's image. For a grid_sample sampler,
// one arrow per output position, grid row and point, from the position's centre
// (a query's reference, a flow-warped pixel) to where it reads, with the read's
// attention/mask weight where the capture found one (DCNv3, deformable attention);
// the modulation map is then, per position, the largest weight among each row's
// points, averaged over rows (1/points for uniform attention, 1 for one point).
// Empty (no arrows) when the layer is neither a deformable convolution nor a
// sampler, or its offsets were not captured;
// AnalysisError (naming the layers) when the model has no such layer.
OffsetField offsetField(const AnalysisSession& session, const std::string& layer);

// The layer whose offset field a node's view shows: the node's own layer when it
// reads where its data says (a deformable convolution, a grid_sample sampler), else
// the nearest such layer below it through its inputs (e.g. the DCNv3 or deformable
// attention sampler a 1×1 projection reads); "" when there is none.
std::string offsetFieldLayer(const AnalysisSession& session, const std::string& layer);

} // namespace deformscope::analysis
