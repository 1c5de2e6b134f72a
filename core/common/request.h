// The one analysis request: what the analyses of a node are asked to compute
// and draw. The CLI (`analyze`, `compare`), the GUI's settings and its engine,
// sessions and result.json all build and read this one type; its text form
// (command-line values) and its JSON form are defined once, in the field table
// below, so a new setting is one member and one table row.
//
// Plain data, no LibTorch, no Qt: any thread may copy it. Values are typed;
// validate() checks ranges and combinations and returns every problem at once,
// each naming the option, the value and what is allowed.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deformscope::common {

// ---- value types -------------------------------------------------------------------

// Which grid a position or box is given on: the original image's pixels, or the
// model's input grid (the image resized to the model's input size). Pixel
// centres are at integers on both.
enum class Grid { Original, Input };

// What a node responds with (../shared/reference/DCN.md §3).
//  - Sum: all channels at the node (the saliency bound applies to the whole vector).
//  - Channel: one channel of the node's layer.
//  - ClassScore: channel `index` of the model's output, read at the node's
//    position for dense outputs ([1, K, H', W']), or the score itself for [1, K].
struct Response {
    enum class Kind { Sum, Channel, ClassScore };
    Kind kind = Kind::Sum;
    int64_t index = 0;

    static constexpr const char* kFormat = "sum, channel:N or class:K (N, K whole numbers ≥ 0)";
    // "sum", "channel:N", "class:K"; nullopt for anything else.
    static std::optional<Response> parse(std::string_view text);
    std::string toString() const;
    bool operator==(const Response&) const = default;
};

// What the saliency search puts where the region is not kept.
struct Baseline {
    enum class Kind { Zero, Blur };
    Kind kind = Kind::Zero; // zero after normalisation = the mean colour
    double sigma = 8;       // Gaussian blur of the (normalised) image, pixels

    static constexpr const char* kFormat = "zero, blur or blur:SIGMA (0 < SIGMA < 10000 pixels)";
    static std::optional<Baseline> parse(std::string_view text);
    std::string toString() const;
    bool operator==(const Baseline&) const = default;
};

// How the sampling trace reads a deformable layer's offsets at a point.
enum class OffsetReading { Nearest, Bilinear };

// Which layers a sampling trace spawns points at: every layer with a k×k window
// (each 3×3 conv on the way, residual paths included), or the deformable layers and
// samplers only, regular convolutions passing points straight through (the DCN papers'
// figures: 9 → 81 → 729 points over three deformable layers).
enum class TraceThrough { All, Deformable };

// The device to run on: the CPU, the first CUDA device, or CUDA device N.
// Whether this build and machine have it is decided where models are loaded
// (report::resolveDevice), not here.
struct DeviceSpec {
    enum class Kind { Cpu, Cuda };
    Kind kind = Kind::Cpu;
    int index = -1; // CUDA device index; -1: the first

    static constexpr const char* kFormat = "cpu, cuda or cuda:N";
    static std::optional<DeviceSpec> parse(std::string_view text);
    std::string toString() const; // "cpu", "cuda", "cuda:1"
    bool operator==(const DeviceSpec&) const = default;
};

// The colour maps figures draw heat maps with (ui/figure/colormaps.cpp has their tables).
enum class Colormap { Inferno, Viridis, Magma, Plasma, Gray, Coolwarm };

// Which analyses to run. The Deformable Kernel view is made whenever the node
// has a DK layer at or below it (IfAvailable, the default); Required (--what
// names kernel) makes its absence an error.
struct Analyses {
    enum class Kernel { Off, IfAvailable, Required };
    bool sampling = true, erf = true, saliency = true;
    Kernel kernel = Kernel::IfAvailable;
    // Offsets read as motion (models with several input frames: motion.h), off by default.
    bool motion = false;
    static constexpr const char* kFormat = "a comma-separated list of sampling, erf, saliency, kernel, motion";
    // "sampling,erf,saliency,kernel,motion" (any subset, any order, at least one);
    // what is not listed is off, a listed kernel is Required.
    static std::optional<Analyses> parse(std::string_view text);
    std::string toString() const; // the listed form; IfAvailable is not listed
    bool operator==(const Analyses&) const = default;
};

// What a figure draws over the image (the GUI's canvas draws the same through
// the same renderer). Each overlay is drawn in its analysis's row: points,
// offset field and modulation map in the sampling row (the offset field and
// the modulation map are those of the node's own layer), the heat map in the
// ERF row, the kept region in the saliency row; a row with nothing to draw is
// left out of the figure (its data is still written).
struct Overlays {
    bool sampling = true, offsets = false, modulation = false, erf = true, saliency = true;

    static constexpr const char* kFormat =
        "a comma-separated list of sampling, offsets, modulation, erf, saliency";
    static std::optional<Overlays> parse(std::string_view text);
    std::string toString() const;
    bool operator==(const Overlays&) const = default;
};

// A point on one of the two grids.
struct Location {
    Grid grid = Grid::Original;
    double x = 0, y = 0;
    bool operator==(const Location&) const = default;
};

// A box given by its pixel edges (pixel i spans [i, i + 1]) on one of the grids.
struct Box {
    Grid grid = Grid::Original;
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    bool operator==(const Box&) const = default;
};

// The object region the object metrics use.
struct ObjectRegion {
    enum class Kind { Auto, None, Box, Mask };
    Kind kind = Kind::Auto; // Auto: the image's <stem>_mask.png when it exists (the object under the node)
    common::Box box;        // Kind::Box
    std::string maskFile;   // Kind::Mask: a mask image the size of the original image
    bool operator==(const ObjectRegion&) const = default;
};

// ---- the request -------------------------------------------------------------------

struct AnalysisRequest {
    // What to compute.
    Analyses what;

    // The node: its layer ("": the model's suggested layer), where it is
    // (nullopt: the image's centre; its nearest feature position is taken) and
    // its response.
    std::string layer;
    std::optional<Location> at;
    Response response;
    // RoI-head models (LoadedModel::takesRois): the region of interest the model is given
    // (--roi x0,y0,x1,y1, pixel edges; nullopt: the whole image) and the bin of its RoI
    // pooling layer that is the node (--bin i,j: row i, column j; nullopt: the whole RoI,
    // every bin, unless a point picks one).
    std::optional<Box> roi;
    std::optional<std::array<int64_t, 2>> bin;

    // Sampling trace.
    int levels = 3;
    OffsetReading reading = OffsetReading::Bilinear;
    TraceThrough through = TraceThrough::All;

    // Effective receptive field.
    bool signedErf = false;

    // Saliency search.
    double epsilon = 0.1;
    Baseline baseline;
    int64_t forwards = 400; // the search's planned budget of masked forwards
    int64_t batch = 0;      // masks per forward; 0: by device (4 on the CPU, 32 on CUDA)
    int64_t minCell = 2;    // refinement stops at cells of minCell … 2·minCell − 1 pixels

    ObjectRegion object;
    // Motion (video models: --what motion): the alignment layer ("": the last), the
    // alarm threshold on the mean offset magnitude, the true motion ([2, H, W] .npy,
    // dx then dy, on the model's input grid) when known; a label of the reference
    // frame to carry to the support frame (a mask image or a keypoints JSON), and the
    // support frame's own label to score it against.
    std::string motionLayer;
    double motionAlarmPx = 50;
    std::string trueMotion;
    std::string propagate;
    std::string propagateTruth;

    // Input.
    std::optional<std::array<int64_t, 2>> inputSize; // H, W; nullopt: the model's metadata size, else the image's own
    DeviceSpec device;

    // Figures.
    bool figures = true;
    Colormap colormap = Colormap::Inferno;
    bool logScale = false;
    Overlays overlays;

    // Every problem with the values (ranges, combinations), in field order;
    // empty when the request can be run.
    std::vector<std::string> validate() const;

    bool operator==(const AnalysisRequest&) const = default;
};

// ---- names of the enums ------------------------------------------------------------

const char* name(Grid grid);                 // "original", "input"
const char* name(OffsetReading reading);     // "nearest", "bilinear"
const char* name(TraceThrough through);      // "all", "deformable"
const char* name(Colormap colormap);         // "inferno", ...
std::optional<Colormap> parseColormap(std::string_view text);
std::string colormapNames();                 // "inferno, viridis, magma, plasma, gray, coolwarm"

// ---- the field table: the request as text and as JSON --------------------------------

// One setting of the request as the command line and JSON see it. A field
// either takes a value (`read` turns the text into the member and returns "",
// or returns what is expected) or is a flag (`flag` sets the member; the
// option takes no value). `toJson` / `fromJson` are the field's JSON form
// under `key`; fromJson returns "" or what is expected.
struct RequestField {
    std::string option;    // "--levels"; "" for a field with no command-line option
    std::string key;       // JSON key, "levels"
    std::string valueName; // "N" in the help, "" for flags
    std::string help;
    int values = 1;        // how many command-line words the option takes (0: a flag)
    std::function<std::string(AnalysisRequest&, const std::vector<std::string>&)> read;
    std::function<void(const AnalysisRequest&, nlohmann::ordered_json&)> toJson;
    std::function<std::string(AnalysisRequest&, const nlohmann::ordered_json&)> fromJson;
};

// Every field, in the order the help and the JSON list them.
const std::vector<RequestField>& requestFields();

// Reads the command-line words of `option` ("--response", {"channel:3"}) into
// `request`: "" when they are a value of the field, else the problem naming the
// option, the words and what is expected ("--response 'chanel:2': expected sum,
// channel:N or class:K"), and `request` is unchanged.
std::string readOption(AnalysisRequest& request, std::string_view option, const std::vector<std::string>& words);

// The request as a JSON object (every field's key).
nlohmann::ordered_json toJson(const AnalysisRequest& request);
// Reads the keys present in `json` over `base` (missing keys keep base's
// values; unknown keys are ignored, so files from older and newer versions
// open). Problems (a key with a wrong type, or a value validate() refuses) are
// appended to `problems` as "<key>: <what is expected>", and that key keeps
// base's value.
AnalysisRequest requestFromJson(const nlohmann::ordered_json& json, const AnalysisRequest& base,
                                std::vector<std::string>& problems);

} // namespace deformscope::common
