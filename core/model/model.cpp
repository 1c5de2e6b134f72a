#include "core/model/model.h"

#include "core/model/import_onnx.h"
#include "core/model/import_pt2.h"
#include "core/model/op_adapter.h"
#include "core/ops/grid_sampler_backward.h"
#include "core/ops/registration.h"

#include <dlfcn.h>

#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

namespace deformscope::model {

struct LoadedModel::Impl {
    std::string path;
    c10::Device device{c10::kCPU};
    ModelMetadata metadata;
    std::vector<std::string> notes;
    std::vector<OpAdapter> adapters;
    InputForm form = InputForm::Image;
    std::vector<std::string> inputNames;
    std::string roiInput; // the forward argument taking RoIs, "" for none
    size_t roiArgument = 0; // its position among forward's required arguments
    bool layoutSettled = true; // a stacked model without "frame_layout": settled at the first forward
    std::string format = "TorchScript";
    std::optional<std::array<int64_t, 2>> graphSize; // the size an ONNX graph's input fixes
    mutable torch::jit::Module module;
};

namespace {

// First line of a c10::Error, without the C++ backtrace.
std::string firstLine(const std::string& message) {
    return message.substr(0, message.find('\n'));
}

// What a user can act on in an error: the TorchScript interpreter's message starts with
// "The following operation failed..." and a traceback, and ends with the error raised
// ("RuntimeError: ...", possibly over several lines), which is kept, on one line.
std::string errorLine(const std::string& message) {
    if (message.rfind("The following operation failed in the TorchScript interpreter", 0) != 0)
        return firstLine(message);
    const size_t marker = message.rfind("Error: ");
    if (marker == std::string::npos)
        return firstLine(message);
    const size_t lineStart = message.rfind('\n', marker);
    std::string out;
    for (char c : message.substr(lineStart == std::string::npos ? 0 : lineStart + 1)) {
        if (c == '\n')
            c = ' ';
        if (c == ' ' && !out.empty() && out.back() == ' ')
            continue;
        out += c;
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

// A forward that failed: a graph exported for one size (its sizes folded into constants) says
// so rather than what broke.
ModelError forwardFailed(const std::string& path, const std::optional<std::array<int64_t, 2>>& graphSize,
                         const at::Tensor& frame, const std::string& shape, const std::string& raw) {
    if (graphSize && frame.dim() >= 2 && (frame.size(-2) != (*graphSize)[0] || frame.size(-1) != (*graphSize)[1])) {
        const std::string h = std::to_string((*graphSize)[0]), w = std::to_string((*graphSize)[1]);
        return ModelError(path + ": the ONNX graph was exported for a " + h + " x " + w +
                          " input (its input's fixed size) and does not run at " + std::to_string(frame.size(-2)) +
                          " x " + std::to_string(frame.size(-1)) + " (" + errorLine(raw) + "); use --input-size " + h +
                          " " + w + ", or export with dynamic axes");
    }
    return ModelError(path + ": forward failed on an input of shape " + shape + ": " + errorLine(raw));
}

bool startsWithZipMagic(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    char magic[4] = {};
    f.read(magic, 4);
    return f.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

// Turns a torch::jit::load failure into a message a user can act on.
std::string explainLoadError(const std::string& path, const std::string& raw) {
    static const std::regex unknownOp(R"(Unknown (?:builtin )?op(?:erator)?:? ['"]?([A-Za-z_]\w*::\w+))");
    std::smatch m;
    if (std::regex_search(raw, m, unknownOp)) {
        const std::string op = m[1].str();
        return path + ": the model uses the operator " + op +
               ", which no loaded library provides. DeformScope provides torchvision::deform_conv2d and "
               "deformscope::deform_conv2d: export the model with torchvision.ops.DeformConv2d, or load the "
               "library that defines " + op + " (list it under \"libraries\" in " + sideFileOf(path) +
               ", with a \"custom_ops\" adapter: README, Custom deformable operators).";
    }
    if (!startsWithZipMagic(path))
        return path + ": not a TorchScript model (TorchScript files are zip archives written by torch.jit.save; "
                      "this file is not one)";
    // A complete archive without TorchScript's parts: a checkpoint from torch.save.
    if (raw.find("constants.pkl") != std::string::npos || raw.find("code/") != std::string::npos)
        return path + ": a PyTorch archive but not a TorchScript model (a state_dict or checkpoint saved with "
                      "torch.save?); export it with torch.jit.script(model).save(path)";
    if (raw.find("central directory") != std::string::npos || raw.find("failed reading") != std::string::npos) {
        const std::string first = firstLine(raw);
        return path + ": the model archive is truncated or corrupt (" + first.substr(0, first.find(". ")) + ")";
    }
    // A zip of something else: TorchScript's archives hold every file under one top folder
    // (archive/data.pkl, archive/code/...).
    if (raw.find("not in a subdirectory") != std::string::npos || raw.find("data.pkl") != std::string::npos ||
        raw.find("version") != std::string::npos)
        return path + ": a zip file but not a TorchScript model (TorchScript archives, written by torch.jit.save, "
                      "hold one folder with data.pkl, code/ and constants.pkl; this one does not)";
    // What LibTorch says, on one line and without its "[enforce fail at file:line]" prefix.
    std::string first = firstLine(raw);
    if (first.rfind("[enforce fail at", 0) == 0 && first.find("] ") != std::string::npos)
        first = first.substr(first.find("] ") + 2);
    while (!first.empty() && (first.front() == '.' || first.front() == ' '))
        first.erase(first.begin());
    return path + ": cannot load the model as TorchScript: " + first;
}

std::string describe(const c10::IValue& v) {
    if (v.isTensor())
        return "a tensor " + c10::str(v.toTensor().sizes());
    return v.tagKind();
}

// The first tensor inside a (possibly nested) forward output, and how it was found.
std::optional<at::Tensor> firstTensor(const c10::IValue& v, std::string& where) {
    if (v.isTensor())
        return v.toTensor();
    if (v.isTuple() || v.isList()) {
        const auto elements = v.isTuple() ? v.toTupleRef().elements().vec() : v.toListRef().vec();
        for (size_t i = 0; i < elements.size(); ++i) {
            std::string inner;
            if (auto t = firstTensor(elements[i], inner)) {
                where = "[" + std::to_string(i) + "]" + inner;
                return t;
            }
        }
    }
    if (v.isGenericDict()) {
        for (const auto& item : v.toGenericDict()) {
            std::string inner;
            if (auto t = firstTensor(item.value(), inner)) {
                where = "[" + (item.key().isString() ? "\"" + item.key().toStringRef() + "\"" : item.key().tagKind()) +
                        "]" + inner;
                return t;
            }
        }
    }
    return std::nullopt;
}

std::string joined(const std::vector<std::string>& names) {
    std::string list;
    for (const auto& n : names)
        list += (list.empty() ? "" : ", ") + n;
    return list;
}

} // namespace

// How forward takes its frames, from its arguments and the metadata.
void LoadedModel::settleInputs(Impl& impl, const std::vector<std::string>& required) {
    const ModelMetadata& md = impl.metadata;
    const auto declared = int64_t(md.inputNames.size());
    const int64_t n = int64_t(required.size());
    if (n > 1) {
        if ((declared > 0 && declared != n) || (md.frames > 0 && md.frames != n))
            throw ModelError(impl.path + ": forward takes " + std::to_string(n) + " inputs (" + joined(required) +
                             ") but its " + kMetadataFile + " declares " +
                             std::to_string(declared > 0 ? declared : md.frames) + (declared > 0 ? " inputs" : " frames"));
        impl.form = InputForm::Arguments;
        impl.inputNames = declared > 0 ? md.inputNames : required;
        return;
    }
    const int64_t frames = std::max(declared, md.frames);
    if (frames > 1) {
        impl.form = md.frameLayout == "time" ? InputForm::StackedTime : InputForm::StackedChannels;
        impl.layoutSettled = !md.frameLayout.empty();
        impl.inputNames = md.inputNames;
        for (int64_t i = int64_t(impl.inputNames.size()); i < frames; ++i)
            impl.inputNames.push_back("frame" + std::to_string(i));
        return;
    }
    impl.form = InputForm::Image;
    impl.inputNames = {declared == 1 ? md.inputNames[0] : required[0]};
}

LoadedModel LoadedModel::load(const std::string& path, const c10::Device& device) {
    ops::registerOperators();
    ops::registerSparseGridSamplerBackward();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw ModelError(path + ": no such file");
    if (std::filesystem::is_directory(path, ec))
        throw ModelError(path + ": is a directory, not a model file");
    if (std::filesystem::file_size(path, ec) == 0)
        throw ModelError(path + ": the file is empty (0 bytes)");

    auto impl = std::make_shared<Impl>();
    impl->path = path;
    impl->device = device;
    // Declared custom operators: their libraries load before the model does.
    OpDeclarations declared;
    try {
        declared = readSideFile(path);
    } catch (const std::exception& e) {
        throw ModelError(e.what());
    }
    for (const std::string& library : declared.libraries) {
        if (!dlopen(library.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
            const char* why = dlerror();
            throw ModelError(declared.sideFile + ": cannot load the library " + library + " it names" +
                             (why ? std::string(" (") + why + ")" : std::string()));
        }
        impl->notes.push_back("loaded " + library + " (named by " + declared.sideFile + ")");
    }
    torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
    std::optional<std::array<int64_t, 2>> declaredSize; // an ONNX graph's fixed input size
    if (isOnnxPath(path)) {
        OnnxImport imported = importOnnx(path, device, impl->module);
        impl->format = imported.format;
        extra[kMetadataFile] = imported.metadata;
        declaredSize = imported.declaredSize;
        impl->graphSize = imported.declaredSize;
        impl->notes.insert(impl->notes.end(), imported.notes.begin(), imported.notes.end());
    } else if (isPt2Path(path)) {
        Pt2Import imported = importPt2(path, device, impl->module);
        impl->format = imported.format;
        extra[kMetadataFile] = imported.metadata;
        impl->notes.insert(impl->notes.end(), imported.notes.begin(), imported.notes.end());
    } else {
        try {
            impl->module = torch::jit::load(path, device, extra);
        } catch (const c10::Error& e) {
            throw ModelError(explainLoadError(path, e.what_without_backtrace()));
        } catch (const std::exception& e) {
            throw ModelError(explainLoadError(path, e.what()));
        }
    }
    impl->module.eval();

    if (!impl->module.find_method("forward"))
        throw ModelError(path + ": the model has no forward method");
    const auto& schema = impl->module.get_method("forward").function().getSchema();
    std::vector<std::string> required;
    for (size_t i = 1; i < schema.arguments().size(); ++i) // 0 is self
        if (!schema.arguments()[i].default_value())
            required.push_back(schema.arguments()[i].name());
    if (required.empty())
        throw ModelError(path + ": forward takes no inputs; DeformScope feeds image tensors [N, 3, H, W]");
    const std::string& json = extra[kMetadataFile];
    // Without an embedded deformscope.json, the side file's metadata keys (a model
    // exported without extra files: a converted .pt2, someone else's TorchScript file).
    if (json.empty() && !declared.sideMetadata.empty()) {
        try {
            impl->metadata = ModelMetadata::parse(declared.sideMetadata);
        } catch (const std::exception& e) {
            throw ModelError(declared.sideFile + ": " + e.what());
        }
        impl->notes.push_back("input settings from " + declared.sideFile + " (the model has no " + kMetadataFile + ")");
    } else if (json.empty() && declaredSize) {
        impl->notes.push_back(std::string("no ") + kMetadataFile + " in the model: using the ONNX graph's input size " +
                              std::to_string((*declaredSize)[0]) + "x" + std::to_string((*declaredSize)[1]) +
                              " and defaults (RGB in [0,1], ImageNet mean/std)");
    } else if (json.empty()) {
        impl->notes.push_back(std::string("no ") + kMetadataFile +
                              " in the model: using defaults (the image's own size, RGB in [0,1], ImageNet "
                              "mean/std)");
    } else {
        try {
            impl->metadata = ModelMetadata::parse(json);
            addEmbeddedAdapters(declared, json, path + ": " + kMetadataFile);
        } catch (const std::exception& e) {
            throw ModelError(path + ": " + kMetadataFile + ": " + e.what());
        }
    }
    // A graph exported at one size runs at that size: it is the input size unless the metadata names one.
    if (declaredSize && !impl->metadata.inputSize) {
        impl->metadata.inputSize = declaredSize;
        if (!json.empty() || !declared.sideMetadata.empty())
            impl->notes.push_back("using the ONNX graph's input size " + std::to_string((*declaredSize)[0]) + "x" +
                                  std::to_string((*declaredSize)[1]) + " (the metadata names none)");
    }
    impl->adapters = declared.adapters;
    // A RoI head's boxes are an argument, not a frame.
    {
        std::string roiName = impl->metadata.roiInput;
        const bool declaredRoi = !roiName.empty();
        if (!declaredRoi)
            roiName = "rois";
        const auto at = std::find(required.begin(), required.end(), roiName);
        if (at != required.end() && required.size() > 1) {
            impl->roiInput = roiName;
            impl->roiArgument = size_t(at - required.begin());
            required.erase(at);
        } else if (declaredRoi) {
            throw ModelError(path + ": " + kMetadataFile + " names roi_input '" + roiName +
                             "' but forward's inputs are " + joined(required));
        }
    }
    settleInputs(*impl, required);

    LoadedModel model;
    model.d = std::move(impl);
    return model;
}

const std::string& LoadedModel::path() const { return d->path; }
const std::string& LoadedModel::format() const { return d->format; }
c10::Device LoadedModel::device() const { return d->device; }
const ModelMetadata& LoadedModel::metadata() const { return d->metadata; }
void LoadedModel::setMetadata(const ModelMetadata& metadata) { d->metadata = metadata; }
const std::vector<std::string>& LoadedModel::notes() const { return d->notes; }
torch::jit::Module& LoadedModel::module() const { return d->module; }
const std::vector<OpAdapter>& LoadedModel::adapters() const { return d->adapters; }

LoadedModel::InputForm LoadedModel::inputForm() const { return d->form; }
const std::string& LoadedModel::roiInput() const { return d->roiInput; }

LoadedModel LoadedModel::withRois(const at::Tensor& boxes) const {
    if (!takesRois())
        throw ModelError(d->path + ": the model takes no regions of interest (no forward argument named rois, and no "
                         "roi_input in its " + kMetadataFile + ")");
    const at::Tensor b = boxes.detach().to(at::kCPU, at::kDouble).reshape({-1, 4}).contiguous();
    if (b.size(0) == 0)
        throw ModelError(d->path + ": no region of interest given");
    const auto a = b.accessor<double, 2>();
    for (int64_t k = 0; k < b.size(0); ++k) {
        bool finite = true;
        for (int i = 0; i < 4; ++i)
            finite = finite && std::isfinite(a[k][i]);
        if (!finite || !(a[k][2] > a[k][0] && a[k][3] > a[k][1]))
            throw ModelError(d->path + ": the region of interest " + c10::str(a[k][0], ",", a[k][1], ",", a[k][2], ",",
                                                                         a[k][3]) +
                             " is not a box x0,y0,x1,y1 with x1 > x0 and y1 > y0");
    }
    LoadedModel copy = *this;
    copy.m_rois = b;
    return copy;
}
int64_t LoadedModel::inputCount() const { return int64_t(d->inputNames.size()); }
const std::vector<std::string>& LoadedModel::inputNames() const { return d->inputNames; }

std::string LoadedModel::inputFormName() const {
    switch (d->form) {
    case InputForm::Image:
        return "image";
    case InputForm::Arguments:
        return "arguments";
    case InputForm::StackedChannels:
        return d->layoutSettled ? "stacked on channels" : "stacked (channels or time: settled at the first forward)";
    case InputForm::StackedTime:
        return "stacked on time";
    }
    return "image";
}

std::vector<at::Tensor> LoadedModel::splitFrames(const at::Tensor& canvas) const {
    const int64_t I = inputCount();
    if (I == 1)
        return {canvas};
    if (canvas.dim() != 4 || canvas.size(3) % I != 0)
        throw ModelError(d->path + ": the " + std::to_string(I) + " frames (" + joined(d->inputNames) +
                         ") must lie side by side in an input [N, 3, H, " + std::to_string(I) + "·W], got " +
                         c10::str(canvas.sizes()));
    return canvas.chunk(I, 3);
}

void LoadedModel::settleFrameLayout(const std::vector<at::Tensor>& frames) const {
    if (d->layoutSettled)
        return;
    at::NoGradGuard noGrad;
    forwardFrames(frames);
}

at::Tensor LoadedModel::forward(const at::Tensor& canvas, std::string* note) const {
    return forwardFrames(splitFrames(canvas), note);
}

at::Tensor LoadedModel::forwardFrames(const std::vector<at::Tensor>& frames, std::string* note) const {
    if (int64_t(frames.size()) != inputCount())
        throw ModelError(d->path + ": the model takes " + std::to_string(inputCount()) + " input frames (" +
                         joined(d->inputNames) + "), got " + std::to_string(frames.size()));
    std::vector<at::Tensor> onDevice;
    for (const at::Tensor& f : frames) {
        if (f.sizes() != frames.front().sizes())
            throw ModelError(d->path + ": the input frames differ in size (" + c10::str(frames.front().sizes()) +
                             " and " + c10::str(f.sizes()) + ")");
        onDevice.push_back(f.to(d->device));
    }
    const auto shape = [&] {
        return frames.size() == 1 ? c10::str(frames[0].sizes())
                                  : std::to_string(frames.size()) + " frames of " + c10::str(frames[0].sizes());
    };
    // A RoI head's boxes: every box of this copy for every image of the batch.
    at::Tensor rois;
    if (takesRois()) {
        const at::Tensor& f = onDevice.front();
        const at::Tensor boxes =
            m_rois.defined() ? m_rois
                             : at::tensor({0.0, 0.0, double(f.size(3)), double(f.size(2))}, at::kDouble).view({1, 4});
        const int64_t N = f.size(0), K = boxes.size(0);
        const at::Tensor index = at::arange(N, at::kDouble).repeat_interleave(K).view({N * K, 1});
        rois = at::cat({index, boxes.repeat({N, 1})}, 1).to(f.device(), f.scalar_type());
    }
    auto run = [&](InputForm form) {
        std::vector<c10::IValue> args;
        if (form == InputForm::Image || form == InputForm::Arguments)
            args.assign(onDevice.begin(), onDevice.end());
        else if (form == InputForm::StackedChannels)
            args.push_back(at::cat(onDevice, 1));
        else
            args.push_back(at::stack(onDevice, 1));
        if (rois.defined())
            args.insert(args.begin() + std::ptrdiff_t(std::min(d->roiArgument, args.size())), rois);
        return d->module.forward(args);
    };
    c10::IValue out;
    try {
        try {
            out = run(d->form);
        } catch (const c10::Error&) {
            // A stacked model without "frame_layout": the time layout is the other one.
            if (d->layoutSettled)
                throw;
            out = run(InputForm::StackedTime);
            d->form = InputForm::StackedTime;
        }
        d->layoutSettled = true;
    } catch (const c10::Error& e) {
        throw forwardFailed(d->path, d->graphSize, frames.front(), shape(), e.what_without_backtrace());
    } catch (const std::exception& e) { // the TorchScript interpreter's errors
        throw forwardFailed(d->path, d->graphSize, frames.front(), shape(), e.what());
    }
    std::string where;
    auto t = firstTensor(out, where);
    if (!t)
        throw ModelError(d->path + ": forward returned " + describe(out) + ", which holds no tensor");
    if (!out.isTensor() && note) {
        const std::string kind = out.isTuple() ? "tuple" : out.isList() ? "list" : out.isGenericDict() ? "dict" : out.tagKind();
        *note = std::string("forward returned a ") + kind + "; using its first tensor, output" + where + " " +
                c10::str(t->sizes());
    }
    return *t;
}

} // namespace deformscope::model
