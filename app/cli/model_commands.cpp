#include "app/cli/commands.h"
#include "app/cli/options.h"

#include "core/common/json.h"
#include "core/common/npy.h"
#include "core/model/capture.h"
#include "core/model/model.h"

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/imaging/image.h"
#endif

#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <set>
#include <fstream>
#include <optional>
#include <ostream>

namespace deformscope::cli {

int runInfo(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    constexpr const char* usage = "usage: deformscope-cli info MODEL [--input-size H W] [--json] [--device cpu|cuda]\n";
    Options o;
    if (const std::string e = parse(args, {{"--input-size", 2}, {"--json", 0}, {"--device", 1}}, o); !e.empty()) {
        err << "deformscope-cli info: " << e << "\n" << usage;
        return 2;
    }
    if (o.positional.size() != 1) {
        err << "deformscope-cli info: give exactly one MODEL file\n" << usage;
        return 2;
    }
    auto device = resolveDevice(o.values.count("--device") ? o.values["--device"][0] : "cpu", err, "info");
    if (!device)
        return 2;
    try {
        const model::LoadedModel m = model::LoadedModel::load(o.positional[0], *device);
        std::array<int64_t, 2> size{224, 224};
        std::string sizeSource = "the default: the model has no input size";
        if (o.values.count("--input-size")) {
            const auto& hw = o.values["--input-size"];
            if (!positiveInt(hw[0], size[0]) || !positiveInt(hw[1], size[1])) {
                err << "deformscope-cli info: --input-size needs two positive integers, got '" << hw[0] << "' '"
                    << hw[1] << "'\n";
                return 2;
            }
            sizeSource = "--input-size";
        } else if (m.metadata().inputSize) {
            size = *m.metadata().inputSize;
            sizeSource = "the model's metadata";
        }
        model::CaptureOptions shapesOnly;
        shapesOnly.keepTensors = false;
        const model::Capture capture = model::captureForward(m, at::zeros({1, 3, size[0], size[1]}), shapesOnly);
        const model::LayerGraph& g = capture.graph;
        std::vector<std::string> notes = m.notes();
        notes.insert(notes.end(), capture.notes.begin(), capture.notes.end());
        if (o.flags.count("--json")) {
            common::Json j = g.toJson();
            j["model"] = common::Json(m.path());
            j["input_size_source"] = common::Json(sizeSource);
            j["metadata"] = m.metadata().toJson();
            common::Json jsonNotes = common::Json::array();
            for (const std::string& n : notes)
                jsonNotes.push_back(common::Json(n));
            j["notes"] = jsonNotes;
            out << j.dump(2) << "\n";
        } else {
            out << m.path() << ": " << g.layers().size() << " conv-like layers for a " << size[0] << " x " << size[1]
                << " input (from " << sizeSource << ")\n";
            for (const std::string& n : notes)
                err << "note: " << n << "\n";
            out << "feature position i is centred on image pixel start + i * jump; rf: theoretical receptive field "
                   "(regular grid for deformable layers)\n\n";
            out << g.toTable();
        }
        return 0;
    } catch (const model::ModelError& e) {
        err << "deformscope-cli info: " << e.what() << "\n";
        return 2;
    }
}

int runCapture(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    constexpr const char* usage =
        "usage: deformscope-cli capture --model M --image I --layer NAME --out DIR [--device cpu|cuda]\n";
    Options o;
    if (const std::string e =
            parse(args, {{"--model", 1}, {"--image", 1}, {"--layer", 1}, {"--out", 1}, {"--device", 1}}, o);
        !e.empty() || !o.positional.empty()) {
        err << "deformscope-cli capture: " << (e.empty() ? "unexpected argument '" + o.positional[0] + "'" : e) << "\n"
            << usage;
        return 2;
    }
    for (const char* required : {"--model", "--image", "--layer", "--out"})
        if (!o.values.count(required)) {
            err << "deformscope-cli capture: " << required << " is required\n" << usage;
            return 2;
        }
#ifndef DEFORMSCOPE_WITH_IMAGING
    (void)out;
    err << "deformscope-cli capture: this build has no image support (built with DEFORMSCOPE_CORE_ONLY)\n";
    return 2;
#else
    auto device = resolveDevice(o.values.count("--device") ? o.values["--device"][0] : "cpu", err, "capture");
    if (!device)
        return 2;
    const std::string outDir = o.values["--out"][0];
    const std::string layerName = o.values["--layer"][0];
    try {
        const model::LoadedModel m = model::LoadedModel::load(o.values["--model"][0], *device);
        for (const std::string& n : m.notes())
            err << "note: " << n << "\n";
        imaging::Normalization norm;
        norm.mean = m.metadata().mean;
        norm.std = m.metadata().std;
        norm.bgr = m.metadata().colorOrder == "BGR";
        imaging::InputImage image;
        try {
            image = imaging::loadImage(o.values["--image"][0], m.metadata().inputSize, norm);
        } catch (const std::exception& e) {
            err << "deformscope-cli capture: " << e.what() << "\n";
            return 2;
        }
        const model::Capture c = model::captureForward(m, image.tensor);
        const model::Layer* layer = c.graph.find(layerName);
        if (!layer) {
            err << "deformscope-cli capture: " << m.path() << " has no layer '" << layerName
                << "'; its layers are: " << c.graph.names() << "\n";
            return 2;
        }
        std::error_code ec;
        std::filesystem::create_directories(outDir, ec);
        if (ec) {
            err << "deformscope-cli capture: " << outDir << ": cannot create the folder: " << ec.message() << "\n";
            return 2;
        }
        const model::LayerTensors& t = c.tensors[static_cast<size_t>(layer->index)];
        std::vector<std::string> written;
        auto save = [&](const char* name, const at::Tensor& x) {
            if (!x.defined())
                return;
            const std::string path = (std::filesystem::path(outDir) / name).string();
            common::writeNpy(path, x.detach().cpu());
            written.push_back(name);
        };
        save("input.npy", t.input);
        save("output.npy", t.output);
        save("offset.npy", t.offset);
        save("mask.npy", t.mask);
        save("kernel_offset.npy", t.kernelOffset); // Deformable Kernels
        if (layer->kind == model::LayerKind::Dk)
            save("scope_weight.npy", t.weight);

        common::Json info = c.graph.toJson().at("layers").at(static_cast<size_t>(layer->index));
        common::Json doc = common::Json::object();
        doc["model"] = common::Json(m.path());
        doc["image"] = common::Json(o.values["--image"][0]);
        doc["input_size"] = common::fromShape(image.tensor.sizes());
        doc["layer"] = info;
        common::Json files = common::Json::array();
        for (const std::string& f : written)
            files.push_back(common::Json(f));
        doc["files"] = files;
        doc["offset_layout"] = common::Json(
            "offset[n, g*2*K + 2*k] is dy (rows), [.., g*2*K + 2*k + 1] is dx (cols), tap k = i*kw + j; "
            "mask[n, g*K + k]");
        const std::filesystem::path docPath = std::filesystem::path(outDir) / "capture.json";
        std::ofstream docFile(docPath);
        docFile << doc.dump(2) << "\n";
        if (!docFile.flush()) {
            err << "deformscope-cli capture: " << docPath.string() << ": cannot write the file\n";
            return 1;
        }

        out << "captured " << layer->name << " (" << model::kindName(layer->kind) << ") into " << outDir << ":";
        for (const std::string& f : written)
            out << ' ' << f;
        out << " capture.json\n";
        if (layer->kind == model::LayerKind::Dk)
            out << "note: " << layer->name << " is a Deformable Kernel layer: kernel_offset.npy holds its kernel-space "
                << "offsets (same layout as offsets), scope_weight.npy its scope kernel\n";
        else if (!layer->deformable())
            out << "note: " << layer->name << " is not a deformable layer: it has no offsets or mask\n";
        else if (!layer->use_mask)
            out << "note: " << layer->name << " is DCNv1: it has no mask\n";
        for (const std::string& n : c.notes)
            out << "note: " << n << "\n";
        return 0;
    } catch (const model::ModelError& e) {
        err << "deformscope-cli capture: " << e.what() << "\n";
        return 2;
    } catch (const std::runtime_error& e) {
        err << "deformscope-cli capture: " << e.what() << "\n";
        return 1;
    }
#endif
}

} // namespace deformscope::cli
