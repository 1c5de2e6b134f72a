// What the GUI shows for one click: plain, immutable data that the engine
// (ui/engine, on its worker thread) fills from core/analysis results and the
// widgets (ui/canvas, ui/app) only draw. No LibTorch here, so widget code
// compiles fast and can never touch an AnalysisSession from the GUI thread.
//
// Coordinates are the model's input grid (pixel centres at integers), the grid
// every analysis works on; `ClickView::scale` maps them to the original image.
#pragma once

#include "ui/figure/figure.h"

#include <QImage>
#include <QMetaType>
#include <QPointF>
#include <QRectF>
#include <QSizeF>
#include <QString>
#include <QStringList>

#include <cstdint>
#include <memory>
#include <vector>

namespace deformscope::ui {

// One conv-like layer of a loaded model (core/model/layer_graph.h's Layer, flattened).
struct LayerInfo {
    QString name;          // module path, e.g. "block3.conv"
    QString kind;          // model::kindName: "conv", "dcn_v1", "dcn_v2", "dk", "dcn_v3", "deform_attn",
                           // "flow_warp", "sampler", "unrecognised_sampler", "pool", "upsample", ...
    QString op;            // the operator that ran
    QString detail;        // samplers: the value map, points, rows, levels; hand-written or
                           // unrecognised samplers: how they were read, or what was not understood
    int kernelH = 1, kernelW = 1;
    int strideH = 1, strideW = 1;
    int featureH = 0, featureW = 0;   // output feature map
    int64_t inChannels = 0, outChannels = 0;
    double jumpY = 1, jumpX = 1, startY = 0, startX = 0; // feature f is centred at start + f·jump (input grid)
    double rfH = 1, rfW = 1;          // theoretical receptive field, input-grid pixels
};

struct ModelInfo {
    QString path;
    QString name;            // file stem, the column title
    QString variant;         // metadata "variant" (may be empty)
    QString description;
    QString device;          // "cpu", "cuda:0", ...
    QString suggestedLayer;  // metadata's suggested layer when it exists in the graph, else a sensible default
    int inputH = 0, inputW = 0;   // the input grid the layer list was computed for
    QStringList classNames;
    QStringList notes;       // e.g. "no metadata: ImageNet mean/std assumed"
    std::vector<LayerInfo> layers;
    bool hasMetadata = false;     // the file carries deformscope.json (else defaults or the user's input settings)
    double mean[3] = {0.485, 0.456, 0.406}; // the normalisation in use (RGB order)
    double std[3] = {0.229, 0.224, 0.225};
    bool bgr = false;
    int metadataInputH = 0, metadataInputW = 0; // the size images are resized to; 0: the image's own
    QStringList inputs;           // the model's input frames (one name for an ordinary model)
};

// One sampling tap of the chosen (deformable) layer at one feature position,
// in input-grid pixels: the regular grid position (x, y), where the offset
// moved it (dx, dy) and its DCNv2 mask value (core/analysis/offset_field.h).
using OffsetArrow = figure::OffsetArrow;

// A metric shown side by side in the comparison view. value < 0: not available.
struct Metric {
    QString key;    // stable id: "erf_area90", "erf_inside", "saliency_area", "sampling_spread", ...
    QString label;  // for people: "ERF 90 % area (px)", ...
    double value = -1;
    QString text;   // formatted value
};

// The colours of a propagated label (ColumnView::labels, markers), 0xRRGGBB.
inline constexpr uint32_t kLabelGivenColor = 0x3cdc3c;  // the label given on the reference frame
inline constexpr uint32_t kLabelReadsColor = 0xff3cff;  // carried by the alignment layer's reads
inline constexpr uint32_t kLabelFlowColor = 0x3cdcff;   // carried by the optical flow
inline constexpr uint32_t kLabelTruthColor = 0xffa030;  // the support frame's own label

// One model's results for the click (one column of the comparison).
struct ColumnView {
    QString model;           // ModelInfo::name
    QString layer;
    QString layerKind;
    int fy = 0, fx = 0;      // node position on the layer's feature map
    QString response;        // "sum", "channel:N", "class:K"
    QPointF nodeCentre;      // input grid
    QSizeF nodeCell;         // jump × jump of the layer (input-grid pixels)
    QRectF receptiveField;   // theoretical RF, pixel edges, clipped to the image

    // The panels core's results become (ui/analysis_figure, the same as the CLI's
    // figures). Each carries the background too; ui/canvas/view_panel.h combines
    // the parts the user has switched on into the one panel figure::paintPanel draws.
    bool hasSampling = false, hasErf = false, hasSaliency = false;
    figure::Panel sampling, erf, saliency;
    // The saliency search for this column is still running (a partial ClickView: the panel
    // says so), or was cancelled by the user (no region is shown: only what it cost).
    bool saliencyPending = false;
    bool saliencyCancelled = false;
    int levels = 0;          // sampling levels reached
    // Deformable Kernel models: the resampled kernel behind the node (figure::kernelPanel),
    // on the scope grid, not the image; shown as an inset under the canvas.
    bool hasKernel = false;
    figure::Panel kernel;

    // The chosen layer's offset field (deformable layers only, else empty), as
    // core/analysis's offsetField returns it: featureH·featureW·taps arrows,
    // row-major over (fy, fx, tap). Cell (fy, fx) is centred at
    // nodeCentre + (f − node's f)·nodeCell.
    int featureH = 0, featureW = 0, taps = 0;
    std::vector<OffsetArrow> offsets;
    bool hasModulation = false;     // DCNv2: a mask was captured
    std::vector<double> modulation; // DCNv2: featureH·featureW mean mask values, the modulation map

    // Video models (the request's motion or label propagation, core/report/video.h):
    // the alignment layer whose offsets were read as motion, a tint on the input
    // grid with that motion's colour wheel over the reference frame and DIS
    // flow's over the support frame (one colour scale: motionScalePx at full
    // saturation), and the label's outlines: given on the reference frame
    // (green), carried by the layer's reads (magenta) and by the flow (cyan,
    // dashed), and the support frame's own label when one was given (orange,
    // dashed; drawn first, under the others); keypoints as markers in the same colours.
    bool hasMotion = false;         // (colours: kLabel*Color below)
    QString motionLayer;
    double motionScalePx = 0;
    figure::Tint motionTint;
    std::vector<figure::LabelOutline> labels;
    std::vector<figure::Marker> markers;

    std::vector<Metric> metrics;
    QStringList notes;
    QString error;           // non-empty: this model failed for this click (the message)
    bool skipped = false;    // not analysed: the single view asked for another model only
    double seconds = 0;      // time of this model's analyses
    QString timing;          // e.g. "sampling 24 ms · ERF 48 ms · saliency 7.9 s"
};

// Everything one click produced, for all open models.
struct ClickView {
    uint64_t id = 0;           // the request's id
    QImage image;              // the input grid image (RGB888, de-normalised)
    figure::Image background;  // the same as figure::Image
    double scaleX = 1, scaleY = 1; // original image pixels per input-grid pixel
    QPointF click;             // the clicked point, input grid
    QRectF objectBox;          // object region used for metrics, input grid pixel edges; null: none
    std::vector<ColumnView> columns;
    double seconds = 0;        // wall time of the whole request
    bool cancelled = false;    // a saliency search was cancelled (the column says so; no region is shown)
    // More results for this id follow: the sampling points and ERF are here, some saliency
    // searches are still running (their columns' saliencyPending). The last delivery has it false.
    bool partial = false;
};

using ClickViewPtr = std::shared_ptr<const ClickView>;

} // namespace deformscope::ui

Q_DECLARE_METATYPE(deformscope::ui::ClickViewPtr)
