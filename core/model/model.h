// A TorchScript model loaded for analysis (a torch.export .pt2 archive is translated
// into one on load: import_pt2.h).
//
// LoadedModel::load() registers the project's operators, loads the file on a
// device and reads its metadata; every failure a user can cause (missing file,
// not TorchScript, truncated archive, an operator nobody registered, a forward
// whose inputs do not match its metadata) throws ModelError with "<path>: <what is wrong>".
//
// Models with several input frames (video models: forward(a, b), or the frames
// stacked in one tensor, declared in deformscope.json) are fed one "canvas": the
// frames side by side, [N, 3, H, I·W], frame i in columns [i·W, (i+1)·W). The
// canvas is split into the frames the model's forward takes (splitFrames), so
// every analysis of a canvas is an analysis over all inputs jointly.
// A LoadedModel is cheap to copy (shared) and may be used from one thread at a time.
#pragma once

#include "core/model/metadata.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace deformscope::model {

struct OpAdapter;

class ModelError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class LoadedModel {
public:
    static LoadedModel load(const std::string& path, const c10::Device& device = c10::Device(c10::kCPU));

    const std::string& path() const;
    // What the file was: "TorchScript", or "torch.export (.pt2), schema 8.17, written by torch 2.11.0".
    const std::string& format() const;
    c10::Device device() const;
    const ModelMetadata& metadata() const;
    // Replaces the metadata (e.g. input settings the user gave for a model without
    // any); shared by every copy of this LoadedModel.
    void setMetadata(const ModelMetadata& metadata);
    // Things the user should be told once: defaults used for missing metadata, etc.
    const std::vector<std::string>& notes() const;

    // How forward takes its inputs.
    enum class InputForm {
        Image,           // forward(x): one image [N, 3, H, W]
        Arguments,       // forward(a, b, ...): one image tensor per frame
        StackedChannels, // forward(x): x = [N, T·3, H, W], the frames' channels in order
        StackedTime,     // forward(x): x = [N, T, 3, H, W]
    };
    InputForm inputForm() const;
    // The number of input frames I (1 for an ordinary model), and their names
    // (deformscope.json's "inputs", else forward's argument names, else frame0, frame1, ...).
    int64_t inputCount() const;
    const std::vector<std::string>& inputNames() const;
    // "image", "arguments", "stacked on channels", "stacked on time" (for info).
    std::string inputFormName() const;

    // The frames of a canvas [N, 3, H, I·W] (views of it, so gradients reach the
    // canvas); ModelError when its width is not a multiple of I.
    std::vector<at::Tensor> splitFrames(const at::Tensor& canvas) const;
    // Runs forward on the frames (each [N, 3, H, W], moved to the model's device),
    // passed as forward's inputs take them, and returns the first tensor output;
    // when forward returns a tuple, list or dict, `note` (if given) says which
    // element was taken. Throws ModelError.
    at::Tensor forwardFrames(const std::vector<at::Tensor>& frames, std::string* note = nullptr) const;
    // forwardFrames(splitFrames(canvas)): `canvas` is [N, 3, H, W] for an ordinary model.
    at::Tensor forward(const at::Tensor& canvas, std::string* note = nullptr) const;

    torch::jit::Module& module() const;
    // Custom deformable operators declared for this model (op_adapter.h).
    const std::vector<OpAdapter>& adapters() const;

    // RoI-head models (forward(image, rois): metadata "roi_input", or an argument named
    // "rois"): the forward argument that takes the regions of interest ("" for other
    // models). It is not an input frame: forward gets, for every image n of a batch, one
    // row (n, x0, y0, x1, y1) per box of this copy's boxes (rois()), the whole frame
    // [0, 0, W, H] when none were set.
    const std::string& roiInput() const;
    bool takesRois() const { return !roiInput().empty(); }
    // A copy of this model (sharing its module) that passes `boxes` ([K, 4]: x0, y0, x1,
    // y1 in input-image pixel edges, the frame's own grid) as its RoIs. ModelError when
    // the model takes no RoIs or a box is empty or not finite.
    LoadedModel withRois(const at::Tensor& boxes) const;
    // The boxes set by withRois ([K, 4] float64, CPU), undefined when none were.
    const at::Tensor& rois() const { return m_rois; }

    // A stacked model without "frame_layout": runs one forward (no gradients) to
    // find whether its frames stack on channels or on time; nothing otherwise.
    // (captureForward calls it before recording, so the capture sees one forward.)
    void settleFrameLayout(const std::vector<at::Tensor>& frames) const;

private:
    struct Impl;
    static void settleInputs(Impl& impl, const std::vector<std::string>& required);
    std::shared_ptr<Impl> d;
    at::Tensor m_rois; // per copy (withRois), not shared
};

} // namespace deformscope::model
