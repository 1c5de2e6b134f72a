// info and capture: a model's layer graph, and one layer's captured tensors.
#include "app/cli/commands.h"

#include "core/analysis/motion.h"
#include "core/common/json_file.h"
#include "core/common/npy.h"
#include "core/model/capture.h"
#include "core/model/model.h"
#include "core/report/inputs.h"

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/imaging/image.h"
#include "core/report/report.h"
#endif

#include <ATen/ATen.h>

#include <filesystem>
#include <optional>
#include <ostream>

namespace deformscope::cli {

namespace {

// What each command does, for its --help and the tool's list of commands.
constexpr const char* kInfoHelp =
    "the model's conv-like layers for one input size: kind (conv, dcn_v1, dcn_v2, dk, dcn_v3, deform_attn, flow_warp, "
    "sampler, unrecognised_sampler, pool, upsample, "
    "conv_transpose), geometry, feature size, jump/start/receptive field, which layers feed each";
constexpr const char* kCaptureHelp =
    "run the model on the image and write that layer's input.npy, output.npy, offset.npy and mask.npy "
    "(deformable layers) plus capture.json";


using common::Json;
using report::UsageError;

struct InfoOptions {
    std::vector<std::string> model;
    std::vector<int64_t> inputSize;
    bool json = false;
    std::string device = "cpu";
};

int runInfo(const InfoOptions& o, Io& io) {
    return guarded("info", io.err, [&]() -> int {
        if (o.model.size() != 1)
            throw UsageError("give exactly one MODEL file");
        if (!o.inputSize.empty() && (o.inputSize.size() != 2 || o.inputSize[0] < 1 || o.inputSize[1] < 1))
            throw UsageError("--input-size needs two positive integers H W");
        const model::LoadedModel m = model::LoadedModel::load(o.model[0], report::resolveDevice(o.device));
        std::array<int64_t, 2> size{224, 224};
        std::string sizeSource = "the default: the model has no input size";
        if (!o.inputSize.empty()) {
            size = {o.inputSize[0], o.inputSize[1]};
            sizeSource = "--input-size";
        } else if (m.metadata().inputSize) {
            size = *m.metadata().inputSize;
            sizeSource = m.metadata().fromFile ? "the model's metadata" : "the model's graph";
        }
        report::checkMemory(m, size, m.path());
        model::CaptureOptions shapesOnly;
        shapesOnly.keepTensors = false;
        const model::Capture capture =
            model::captureForward(m, at::zeros({1, 3, size[0], size[1] * m.inputCount()}), shapesOnly);
        const model::LayerGraph& g = capture.graph;
        const auto aligned = analysis::alignmentLayers(g);
        const auto branches = analysis::branchGroups(g);
        std::vector<std::string> notes = m.notes();
        notes.insert(notes.end(), capture.notes.begin(), capture.notes.end());
        if (o.json) {
            Json j = g.toJson();
            j["model"] = m.path();
            j["format"] = m.format();
            j["input_size_source"] = sizeSource;
            j["metadata"] = m.metadata().toJson();
            Json inputs = Json::array();
            for (const auto& n : m.inputNames())
                inputs.push_back(n);
            j["inputs"] = Json::object({{"names", inputs}, {"form", m.inputFormName()}});
            Json align = Json::array();
            for (int i : aligned)
                align.push_back(g.layers()[size_t(i)].name);
            j["alignment_layers"] = align;
            Json groups = Json::array();
            for (const auto& group : branches) {
                Json names = Json::array();
                for (int i : group)
                    names.push_back(g.layers()[size_t(i)].name);
                groups.push_back(names);
            }
            j["branches"] = groups;
            j["notes"] = notes;
            io.out << common::jsonText(j);
        } else {
            io.out << m.path() << ": " << g.layers().size() << " conv-like layers for a " << size[0] << " x " << size[1]
                   << " input (from " << sizeSource << ")\n";
            io.out << "format: " << m.format() << "\n";
            if (m.inputCount() > 1) {
                io.out << "inputs: " << m.inputCount() << " frames (";
                for (size_t i = 0; i < m.inputNames().size(); ++i)
                    io.out << (i ? ", " : "") << m.inputNames()[i];
                io.out << "), " << m.inputFormName() << "\n";
            }
            for (int i : aligned) {
                const model::Layer& l = g.layers()[size_t(i)];
                io.out << "alignment layer: " << l.name << " reads " << g.inputNames()[size_t(l.frames.front())]
                       << " where offsets from " << g.frameNames(g.layers()[size_t(l.isSampler() ? l.grid_source : l.offset_source)])
                       << " say\n";
            }
            for (const auto& group : branches) {
                io.out << "branches (" << group.size() << " deformable layers on the same features, summed):";
                for (int i : group)
                    io.out << " " << g.layers()[size_t(i)].name << " (dilation " << g.layers()[size_t(i)].dilation[0] << ")";
                io.out << "\n";
            }
            for (const std::string& n : notes)
                io.err << "note: " << n << "\n";
            io.out << "feature position i is centred on image pixel start + i * jump; rf: theoretical receptive field "
                      "(regular grid for deformable layers)\n\n";
            io.out << g.toTable();
        }
        return 0;
    });
}

struct CaptureOptions {
    std::string model, image, layer, out;
    std::string device = "cpu";
};

int runCapture(const CaptureOptions& o, Io& io) {
    return guarded("capture", io.err, [&]() -> int {
        // --out is taken first: a second run into the same folder refuses at once.
        const auto folder = outputFolder(o.out, io);
#ifndef DEFORMSCOPE_WITH_IMAGING
        (void)o;
        throw UsageError("this build has no image support (built with DEFORMSCOPE_CORE_ONLY)");
#else
        const model::LoadedModel m = model::LoadedModel::load(o.model, report::resolveDevice(o.device));
        for (const std::string& n : m.notes())
            io.err << "note: " << n << "\n";
        imaging::InputImage image;
        try {
            image = imaging::loadImage(o.image, m.metadata().inputSize, report::normalizationOf(m.metadata()));
        } catch (const std::exception& e) {
            throw UsageError(e.what());
        }
        report::checkMemory(m, {image.height, image.width}, o.image);
        const model::Capture c = model::captureForward(m, image.tensor);
        const model::Layer* layer = c.graph.find(o.layer);
        if (!layer)
            throw UsageError(m.path() + " has no layer '" + o.layer + "'; its layers are: " + c.graph.names());
        const model::LayerTensors& t = c.tensors[static_cast<size_t>(layer->index)];
        std::vector<std::string> written;
        auto save = [&](const char* name, const at::Tensor& x) {
            if (!x.defined())
                return;
            common::writeNpy((std::filesystem::path(folder->path()) / name).string(), x.detach().cpu());
            written.push_back(name);
        };
        save("input.npy", t.input);
        save("output.npy", t.output);
        save("offset.npy", t.offset);
        save("mask.npy", t.mask);
        save("kernel_offset.npy", t.kernelOffset); // Deformable Kernels
        save("grid.npy", t.grid);                   // grid_sample samplers
        if (layer->kind == model::LayerKind::Dk)
            save("scope_weight.npy", t.weight);

        Json doc = Json::object();
        doc["model"] = m.path();
        doc["image"] = o.image;
        doc["input_size"] = image.tensor.sizes().vec();
        doc["layer"] = c.graph.toJson().at("layers").at(static_cast<size_t>(layer->index));
        doc["files"] = written;
        doc["offset_layout"] = "offset[n, g*2*K + 2*k] is dy (rows), [.., g*2*K + 2*k + 1] is dx (cols), tap k = i*kw + j; "
                               "mask[n, g*K + k]";
        common::writeJsonFile((std::filesystem::path(folder->path()) / "capture.json").string(), doc);
        folder->commit();

        io.out << "captured " << layer->name << " (" << model::kindName(layer->kind) << ") into " << o.out << ":";
        for (const std::string& f : written)
            io.out << ' ' << f;
        io.out << " capture.json\n";
        if (layer->isSampler())
            io.out << "note: " << layer->name << " is a grid_sample sampler (" << model::kindName(layer->kind)
                   << "): grid.npy holds the normalised positions it read ((x, y) in [-1, 1], as grid_sample takes them)\n";
        else if (layer->kind == model::LayerKind::UnrecognisedSampler)
            io.out << "note: " << layer->name << " samples in a way DeformScope does not understand: " << layer->reason << "\n";
        else if (layer->kind == model::LayerKind::Dk)
            io.out << "note: " << layer->name << " is a Deformable Kernel layer: kernel_offset.npy holds its kernel-space "
                   << "offsets (same layout as offsets), scope_weight.npy its scope kernel\n";
        else if (!layer->deformable())
            io.out << "note: " << layer->name << " is not a deformable layer: it has no offsets or mask\n";
        else if (!layer->use_mask)
            io.out << "note: " << layer->name << " is DCNv1: it has no mask\n";
        for (const std::string& n : c.notes)
            io.out << "note: " << n << "\n";
        return 0;
#endif
    });
}

} // namespace

void addModelCommands(CLI::App& app, Commands& commands) {
    {
        auto [sub, o] = addCommand<InfoOptions>(app, commands, "info", kInfoHelp, runInfo);
        sub->add_option("MODEL", o->model, "the model file (TorchScript .pt, or torch.export .pt2)");
        sub->add_option("--input-size", o->inputSize,
                        "the input size to list the layers for (default: the model's metadata size, else 224 x 224)")
            ->type_name("H W")
            ->expected(2);
        sub->add_flag("--json", o->json, "the layers as JSON");
        addDevice(sub, o->device);
    }
    auto [sub, o] = addCommand<CaptureOptions>(app, commands, "capture", kCaptureHelp, runCapture);
    addRequired(sub, "--model", o->model, "M", "the model file");
    addRequired(sub, "--image", o->image, "I", "the image");
    addRequired(sub, "--layer", o->layer, "NAME", "the layer to capture");
    addRequired(sub, "--out", o->out, "DIR", "the folder to write into");
    addDevice(sub, o->device);
}

} // namespace deformscope::cli
