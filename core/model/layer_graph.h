// The conv-like layers of a model for one input size, in execution order, with
// their geometry and receptive-field arithmetic. Built from a run-time capture
// (capture.h): only the operators that actually ran are listed, with the
// arguments they ran with. Plain data; safe to copy and to read from any thread.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace deformscope::model {

// Dk: Deformable Kernels (deformscope::deform_kernel2d), a depthwise conv whose
// kernel is resampled from a larger scope kernel at learned kernel-space offsets.
// Samplers (F.grid_sample, aten::grid_sampler_2d) read a value map at positions
// captured at run time: DcnV3 (InternImage-style: points per query, summed under a
// mask), DeformAttn (Deformable DETR's multi-scale attention: one call per level),
// FlowWarp (each pixel reads near itself, base grid + flow), Sampler (any other
// grid_sample). UnrecognisedSampler: a layer that samples in a way DeformScope does
// not understand (an unknown custom operator, a hand-written gather that does not
// match the known pattern); traced by its gradient footprint, with `reason`.
// RoI pooling (a detector's RoI head): RoiPool reads every bin of a region of interest
// on a regular grid (torchvision::roi_align, deformscope::deform_roi_pool without
// offsets), DeformRoiPool moves each bin by a learned offset (deformscope::deform_roi_pool:
// DCNv1's deformable RoI pooling; use_mask: DCNv2's modulated form).
enum class LayerKind { Conv, ConvTranspose, DcnV1, DcnV2, Pool, Upsample, Dk, Sampler, DcnV3, DeformAttn, FlowWarp,
                       UnrecognisedSampler, RoiPool, DeformRoiPool };

// "conv", "conv_transpose", "dcn_v1", "dcn_v2", "pool", "upsample", "dk", "sampler",
// "dcn_v3", "deform_attn", "flow_warp", "unrecognised_sampler", "roi_pool", "deform_roi_pool"
const char* kindName(LayerKind kind);

// How a grid_sample sampler's reads relate to its output positions.
struct SamplerInfo {
    // Spatial: grid [B, Ho, Wo, 2], output position (y, x) reads grid[b, y, x].
    // Queries: grid [B, Q, P, 2], output [B, C, Q, P]; query q sits at (q / queryW,
    // q % queryW) on the query map (the layer's feature_size, jump and start).
    enum class Layout { Spatial, Queries };
    Layout layout = Layout::Spatial;
    std::array<int64_t, 2> valueSize{0, 0}; // H, W of the value map read
    int64_t points = 1;                     // reads per output position and batch row
    int64_t rows = 1;                       // grid batch rows per image (heads, groups)
    int level = 0, levels = 1;              // feature level of this call (deform_attn), and how many
    bool alignCorners = false;
    std::string padding = "zeros";          // "zeros", "border", "reflection"
    std::string interpolation = "bilinear"; // "bilinear", "nearest", "bicubic"
    int querySource = -1;                   // Queries: the layer whose output grid the queries lie on, -1: the value map

    // The grid entry (dim 1, dim 2) output position (y, x) of a map `width` wide reads
    // with point `point`: grid[b, y, x] (spatial) or grid[b, y·width + x, point] (queries).
    std::array<int64_t, 2> gridEntry(int64_t y, int64_t x, int64_t point, int64_t width) const {
        return layout == Layout::Queries ? std::array<int64_t, 2>{y * width + x, point} : std::array<int64_t, 2>{y, x};
    }
    // Value-map pixel position (centres at integers) of a normalised grid
    // coordinate g along an axis of `size` pixels, as grid_sample reads it
    // (padding_mode border/reflection folded in).
    double pixelOf(double g, int64_t size) const;
};

// A RoI pooling layer's region and arithmetic (LayerKind::RoiPool, DeformRoiPool).
// Its output positions are the pooled bins of the first RoI of the first image; they
// are laid over that box on the image (Layer::jump = the bin size, Layer::start = the
// first bin's centre), so a node of the layer is a bin and a point in the box picks it.
struct RoiInfo {
    std::array<double, 4> box{0, 0, 0, 0}; // x0, y0, x1, y1 of the first RoI as given to the operator (input-image pixel edges)
    double spatialScale = 1;               // feature-map coordinate = image coordinate · spatialScale
    int64_t samplingRatio = 0;             // reads per bin and axis; ≤ 0: ceil(RoI size / bins), per RoI
    double gamma = 0.1;                    // deformable: offsets are scaled by gamma · the RoI's size
    bool aligned = true;                   // the −0.5 pixel shift (mmcv, roi_align aligned=True); false: torchvision's legacy rule
    int64_t rois = 1;                      // RoIs in the call (the first image's first is the layer's)
    int roisSource = -1;                   // the layer the boxes are computed from, -1: the model's roi input
};

// A RoI's start on the feature map and its bin size along `axis` (0: y, 1: x) for a
// `pooled` (h, w) grid of bins: feature coordinates, centres at integers.
std::array<double, 2> roiStartAndBin(const RoiInfo& roi, std::array<int64_t, 2> pooled, int axis);

// Coordinates: image pixel centres are at integer positions 0..W-1. Position i
// on a layer's feature map has its centre at image coordinate start + i * jump
// (per axis, (y, x) order everywhere below).
struct Layer {
    int index = 0;
    std::string name; // module path, e.g. "layer2.conv2"; unique within the graph
    std::string op;   // operator that ran, e.g. "aten::conv2d", "torchvision::deform_conv2d"
    LayerKind kind = LayerKind::Conv;

    std::array<int64_t, 2> kernel{1, 1};
    std::array<int64_t, 2> stride{1, 1};
    std::array<int64_t, 2> padding{0, 0};
    std::array<int64_t, 2> dilation{1, 1};
    int64_t groups = 1;
    int64_t offset_groups = 0; // deformable layers only
    bool use_mask = false;     // DCNv2
    std::string mode;          // pooling ("max", "avg", "adaptive_avg", ...) or upsampling mode

    int64_t in_channels = 0;
    int64_t out_channels = 0;
    std::array<int64_t, 2> input_size{0, 0};   // H, W of the data input
    std::array<int64_t, 2> feature_size{0, 0}; // H, W of the output

    std::array<double, 2> jump{1, 1};
    std::array<double, 2> start{0, 0};
    std::array<double, 2> rf{1, 1}; // theoretical receptive field in image pixels (regular grid for DCN)

    std::vector<int> inputs;   // earlier layers feeding the data input (through pointwise ops, adds, concats); empty: the image
    int offset_source = -1;    // layer producing the offsets (deformable layers), -1 if none
    int mask_source = -1;      // layer producing the mask (DCNv2), -1 if none
    // Deformable Kernels only:
    std::array<int64_t, 2> scope{0, 0}; // the scope kernel's size (Sh, Sw) the taps are resampled from
    bool use_offset = false;            // image-space offsets too (DK combined with DCN); offset_source then names their layer
    bool global_kernel_offsets = false; // one kernel per image ([N, 2K, 1, 1]) instead of per position
    int kernel_offset_source = -1;      // layer producing the kernel-space offsets, -1 if none
    // Samplers only:
    SamplerInfo sampler;
    int grid_source = -1;  // the layer the sampling grid is computed from (offsets, flow), -1 if none
    std::string reason;    // unrecognised samplers: what was not understood; hand-written DCNs: how they were read
    // RoI pooling only (offset_source: the layer the bin offsets come from, mask_source the modulation's):
    RoiInfo roi;
    // The model inputs (frames, LoadedModel::inputNames) its data input derives from,
    // ascending; {0} for an ordinary model. Several for a layer fed from several frames.
    std::vector<int> frames{0};
    // The frame its output positions are drawn on: the first frame its output derives
    // from (data, offsets or grid): an alignment layer reading the support frame where
    // offsets from the reference say has its positions on the reference.
    int home = 0;
    int homeFrame() const { return home; }

    // DCN layers: samples move (offsets). DK layers move their kernel's weights, not
    // their samples (unless combined with image offsets: movesSamples()).
    bool deformable() const { return kind == LayerKind::DcnV1 || kind == LayerKind::DcnV2; }
    bool movesSamples() const { return deformable() || (kind == LayerKind::Dk && use_offset); }
    // A grid_sample layer (any of its kinds).
    bool isSampler() const {
        return kind == LayerKind::Sampler || kind == LayerKind::DcnV3 || kind == LayerKind::DeformAttn ||
               kind == LayerKind::FlowWarp;
    }
    // RoI pooling, regular or deformable.
    bool isRoiPool() const { return kind == LayerKind::RoiPool || kind == LayerKind::DeformRoiPool; }
    // Where it reads depends on the data (or, RoI pooling, on the box it is given):
    // deformable convs, samplers, unrecognised samplers, RoI pooling.
    bool dataDependentReads() const {
        return movesSamples() || isSampler() || kind == LayerKind::UnrecognisedSampler || isRoiPool();
    }
};

class LayerGraph {
public:
    LayerGraph() = default;
    // `inputSize`: one frame's (H, W); `inputNames`: the model's inputs (frames), default one "image".
    explicit LayerGraph(std::vector<Layer> layers, std::array<int64_t, 2> inputSize,
                        std::vector<std::string> inputNames = {"image"});

    const std::vector<Layer>& layers() const { return m_layers; }
    std::array<int64_t, 2> inputSize() const { return m_inputSize; }
    const std::vector<std::string>& inputNames() const { return m_inputNames; }
    int64_t inputCount() const { return int64_t(m_inputNames.size()); }
    // nullptr when no layer has that name.
    const Layer* find(const std::string& name) const;
    // Names of all layers, comma separated (for error messages).
    std::string names() const;

    // {"input_size": [H, W], "layers": [{name, kind, op, kernel, stride, padding, dilation, groups,
    //   offset_groups, use_mask, in_channels, out_channels, feature_size, jump, start, rf,
    //   inputs: [names], offset_source, mask_source}, ...]}
    nlohmann::ordered_json toJson() const;
    // A fixed-width table for terminals.
    std::string toTable() const;
    // The names of the inputs a layer's features come from, comma separated.
    std::string frameNames(const Layer& l) const;

private:
    std::vector<Layer> m_layers;
    std::array<int64_t, 2> m_inputSize{0, 0};
    std::vector<std::string> m_inputNames{"image"};
};

// Receptive-field arithmetic: fills jump/start/rf of `layer` from its geometry
// and its inputs' (already computed) values. With several inputs (residual adds,
// concats) the input with the largest receptive field is propagated.
void computeReceptiveField(Layer& layer, const std::vector<Layer>& earlier);

} // namespace deformscope::model
