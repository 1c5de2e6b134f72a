#include "core/model/import_pt2.h"

#include "core/model/model.h"
#include "core/model/script_builder.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <caffe2/serialize/inline_container.h>
#include <nlohmann/json.hpp>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>

namespace deformscope::model {

namespace {

using Json = nlohmann::json;

// The export schema this reader follows (torch/_export/serde/schema.py, torch 2.11: 8.17).
constexpr int kSchemaMajor = 8;
constexpr int kSchemaMinor = 17;

class Importer {
public:
    Importer(std::string path, const c10::Device& device) : m_path(std::move(path)), m_device(device) {}

    Pt2Import run(torch::jit::Module& out);

private:
    [[noreturn]] void fail(const std::string& what) const { throw ModelError(m_path + ": " + what); }

    std::string record(const std::string& name);
    Json jsonRecord(const std::string& name);
    at::Tensor readTensor(const std::string& record, const Json& meta, const std::string& fqn);
    void readTensors(const std::string& folder, const std::string& config, std::map<std::string, at::Tensor>& into);

    std::string argument(const Json& arg, const std::string& node, std::vector<std::string>& refs);
    std::string valueRef(const std::string& name, std::vector<std::string>& refs);
    std::string symbolic(const Json& v, const std::string& node, std::vector<std::string>& refs);
    std::pair<std::string, std::string> outputOf(const Json& o, const std::string& node);
    void emitNode(const Json& node);

    std::string m_path;
    c10::Device m_device;
    std::unique_ptr<caffe2::serialize::PyTorchStreamReader> m_reader;
    std::unique_ptr<ScriptBuilder> m_builder;
};

// A JSON whole number as T. Anything else (a float, a string, a number beyond T) is a
// damaged program: converting it as nlohmann's get<T> does would be undefined behaviour.
template <typename T>
T whole(const Json& v) {
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max())
                      : v.is_number_integer()
                          ? v.get<int64_t>() >= int64_t(std::numeric_limits<T>::min()) &&
                                v.get<int64_t>() <= int64_t(std::numeric_limits<T>::max())
                          : false;
    if (!fits)
        throw std::invalid_argument("expected a whole number" +
                                    std::string(sizeof(T) < 8 ? " (32-bit)" : "") + ", found " + v.dump());
    return v.is_number_unsigned() ? T(v.get<uint64_t>()) : T(v.get<int64_t>());
}

std::string pyFloat(const Json& v) {
    if (v.is_string()) { // the schema writes non-finite floats as strings
        const std::string s = v.get<std::string>();
        if (s == "Infinity")
            return "float(\"inf\")";
        if (s == "-Infinity")
            return "float(\"-inf\")";
        if (s == "NaN")
            return "float(\"nan\")";
        char* end = nullptr;
        const double d = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size())
            throw std::invalid_argument("expected a number, found " + v.dump());
        return deformscope::model::pyFloat(d);
    }
    if (!v.is_number())
        throw std::invalid_argument("expected a number, found " + v.dump());
    return deformscope::model::pyFloat(v.get<double>());
}

std::string pyBool(const Json& v) { return v.get<bool>() ? "True" : "False"; }

// The export schema's ScalarType -> c10's.
std::optional<c10::ScalarType> scalarType(int code) {
    switch (code) {
    case 1: return c10::ScalarType::Byte;
    case 2: return c10::ScalarType::Char;
    case 3: return c10::ScalarType::Short;
    case 4: return c10::ScalarType::Int;
    case 5: return c10::ScalarType::Long;
    case 6: return c10::ScalarType::Half;
    case 7: return c10::ScalarType::Float;
    case 8: return c10::ScalarType::Double;
    case 9: return c10::ScalarType::ComplexHalf;
    case 10: return c10::ScalarType::ComplexFloat;
    case 11: return c10::ScalarType::ComplexDouble;
    case 12: return c10::ScalarType::Bool;
    case 13: return c10::ScalarType::BFloat16;
    case 28: return c10::ScalarType::UInt16;
    case 29: return c10::ScalarType::Float8_e4m3fn;
    case 30: return c10::ScalarType::Float8_e5m2;
    case 31: return c10::ScalarType::Float8_e4m3fnuz;
    case 32: return c10::ScalarType::Float8_e5m2fnuz;
    default: return std::nullopt;
    }
}

// The module the node ran in, from its nn_module_stack ("key,path,type;..."): the
// last entry's path, "" for the root.
std::string modulePathOf(const Json& node) {
    const auto md = node.find("metadata");
    if (md == node.end() || !md->is_object() || !md->contains("nn_module_stack"))
        return "";
    const std::string stack = md->at("nn_module_stack").get<std::string>();
    const auto entries = splitDotted(stack, ';');
    const auto fields = splitDotted(entries.back(), ',');
    return fields.size() >= 2 ? fields[1] : "";
}

// A simple int of a SymInt argument ({"as_int": n}); nullopt for a symbol.
std::optional<int64_t> staticInt(const Json& v) {
    if (v.is_number_integer())
        return whole<int64_t>(v);
    if (v.is_object() && v.contains("as_int"))
        return whole<int64_t>(v.at("as_int"));
    return std::nullopt;
}

std::string Importer::record(const std::string& name) {
    if (!m_reader->hasRecord(name))
        fail("the archive has no " + name);
    auto [data, size] = m_reader->getRecord(name);
    return std::string(static_cast<const char*>(data.get()), size);
}

Json Importer::jsonRecord(const std::string& name) {
    const std::string text = record(name);
    try {
        return Json::parse(text);
    } catch (const std::exception& e) {
        fail(name + " is not valid JSON (" + e.what() + ")");
    }
}

at::Tensor Importer::readTensor(const std::string& rec, const Json& meta, const std::string& fqn) {
    const auto dtype = scalarType(whole<int>(meta.at("dtype")));
    if (!dtype)
        fail(fqn + ": unsupported dtype code " + std::to_string(whole<int>(meta.at("dtype"))));
    std::vector<int64_t> sizes, strides;
    for (const Json& s : meta.at("sizes")) {
        const auto v = staticInt(s);
        if (!v)
            fail(fqn + ": a symbolic size (dynamic shapes are not read)");
        sizes.push_back(*v);
    }
    for (const Json& s : meta.at("strides")) {
        const auto v = staticInt(s);
        if (!v)
            fail(fqn + ": a symbolic stride (dynamic shapes are not read)");
        strides.push_back(*v);
    }
    int64_t offset = 0;
    if (meta.contains("storage_offset"))
        offset = staticInt(meta.at("storage_offset")).value_or(0);
    if (sizes.size() != strides.size())
        fail(fqn + ": sizes and strides of different lengths");
    if (!m_reader->hasRecord(rec))
        fail(fqn + ": the archive has no " + rec + " for its data");
    // The last element's index (offset + sum of (size - 1) * stride) + 1, overflow-checked.
    int64_t needed = 0;
    bool empty = false, overflow = offset < 0 || __builtin_add_overflow(offset, int64_t{1}, &needed);
    for (size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] < 0 || strides[i] < 0)
            fail(fqn + ": a negative size or stride (the archive is damaged)");
        empty = empty || sizes[i] == 0;
        int64_t step = 0;
        overflow = overflow || (sizes[i] > 0 && (__builtin_mul_overflow(sizes[i] - 1, strides[i], &step) ||
                                                 __builtin_add_overflow(needed, step, &needed)));
    }
    if (empty)
        needed = 0;
    else if (overflow)
        fail(fqn + ": a size, stride or offset beyond any tensor (the archive is damaged)");
    auto [data, bytes] = m_reader->getRecord(rec);
    const int64_t item = int64_t(c10::elementSize(*dtype));
    if (int64_t(bytes) % item != 0 || int64_t(bytes) / item < needed)
        fail(fqn + ": its data (" + rec + ", " + std::to_string(bytes) + " bytes) is too short for a tensor of size " +
             c10::str(c10::IntArrayRef(sizes)) + " (the archive is truncated or damaged)");
    at::Tensor storage = at::empty({int64_t(bytes) / item}, at::TensorOptions().dtype(*dtype));
    if (bytes)
        std::memcpy(storage.data_ptr(), data.get(), bytes);
    return storage.as_strided(sizes, strides, offset).clone().to(m_device);
}

// The tensors a folder's config file lists (by fully qualified name), into `into`.
void Importer::readTensors(const std::string& folder, const std::string& config, std::map<std::string, at::Tensor>& into) {
    const std::string configName = folder + "/" + config;
    if (!m_reader->hasRecord(configName))
        return;
    const Json listed = jsonRecord(configName);
    if (!listed.contains("config"))
        return;
    for (const auto& [fqn, entry] : listed.at("config").items()) {
        if (entry.value("use_pickle", false))
            fail(fqn + " is stored pickled; DeformScope reads the raw tensors torch.export.save writes by default");
        // (Whether it is a parameter comes from the program's signature, not from is_param.)
        into[fqn] = readTensor(folder + "/" + entry.at("path_name").get<std::string>(), entry.at("tensor_meta"), fqn);
    }
}

// A value in a node's call (a tensor, or a symbolic size computed at run time): the
// placeholder for the node's i-th reference (`refs` lists their export names).
std::string Importer::valueRef(const std::string& name, std::vector<std::string>& refs) {
    if (!m_builder->defined(name))
        fail("the graph uses " + name + " before defining it");
    auto it = std::find(refs.begin(), refs.end(), name);
    const size_t i = size_t(it - refs.begin());
    if (it == refs.end())
        refs.push_back(name);
    return ScriptBuilder::ref(i);
}

// A SymInt / SymFloat / SymBool argument: its value, or the symbol computed at run time
// (dynamic shapes: sizes read from the tensors, so any input size runs).
std::string Importer::symbolic(const Json& v, const std::string& node, std::vector<std::string>& refs) {
    if (v.contains("as_name"))
        return valueRef(v.at("as_name").get<std::string>(), refs);
    if (v.contains("as_int"))
        return std::to_string(whole<int64_t>(v.at("as_int")));
    if (v.contains("as_float"))
        return pyFloat(v.at("as_float"));
    if (v.contains("as_bool"))
        return pyBool(v.at("as_bool"));
    fail("node " + node + ": a symbolic value the reader does not know (" + v.dump() + ")");
}

std::string Importer::argument(const Json& arg, const std::string& node, std::vector<std::string>& refs) {
    if (!arg.is_object() || arg.empty())
        fail("node " + node + ": an argument the reader does not know (" + arg.dump() + ")");
    const std::string kind = arg.begin().key();
    const Json& v = arg.begin().value();
    auto list = [&](auto&& each) {
        std::string out = "[";
        bool first = true;
        for (const Json& x : v) {
            out += (first ? "" : ", ") + each(x);
            first = false;
        }
        return out + "]";
    };
    auto sym = [&](const Json& x) { return symbolic(x, node, refs); };
    if (kind == "as_none")
        return "None";
    if (kind == "as_tensor")
        return valueRef(v.at("name").get<std::string>(), refs);
    if (kind == "as_tensors")
        return list([&](const Json& x) { return valueRef(x.at("name").get<std::string>(), refs); });
    if (kind == "as_optional_tensor") {
        if (v.contains("as_tensor"))
            return valueRef(v.at("as_tensor").at("name").get<std::string>(), refs);
        return "None";
    }
    if (kind == "as_optional_tensors")
        return list([&](const Json& x) {
            return x.contains("as_tensor") ? valueRef(x.at("as_tensor").at("name").get<std::string>(), refs)
                                           : std::string("None");
        });
    if (kind == "as_int")
        return std::to_string(whole<int64_t>(v));
    if (kind == "as_ints")
        return list([](const Json& x) { return std::to_string(whole<int64_t>(x)); });
    if (kind == "as_float")
        return pyFloat(v);
    if (kind == "as_floats")
        return list([](const Json& x) { return pyFloat(x); });
    if (kind == "as_bool")
        return pyBool(v);
    if (kind == "as_bools")
        return list([](const Json& x) { return pyBool(x); });
    if (kind == "as_string")
        return pyString(v.get<std::string>());
    if (kind == "as_strings")
        return list([](const Json& x) { return pyString(x.get<std::string>()); });
    if (kind == "as_sym_int" || kind == "as_sym_float" || kind == "as_sym_bool")
        return sym(v);
    if (kind == "as_sym_ints" || kind == "as_sym_floats" || kind == "as_sym_bools")
        return list(sym);
    if (kind == "as_scalar_type") {
        const auto t = scalarType(whole<int>(v));
        if (!t)
            fail("node " + node + ": unsupported dtype code " + std::to_string(whole<int>(v)));
        return std::to_string(int(*t));
    }
    if (kind == "as_memory_format") {
        switch (whole<int>(v)) {
        case 1: return std::to_string(int(c10::MemoryFormat::Contiguous));
        case 2: return std::to_string(int(c10::MemoryFormat::ChannelsLast));
        case 3: return std::to_string(int(c10::MemoryFormat::ChannelsLast3d));
        case 4: return std::to_string(int(c10::MemoryFormat::Preserve));
        default: fail("node " + node + ": unsupported memory format code " + std::to_string(whole<int>(v)));
        }
    }
    if (kind == "as_layout") {
        if (whole<int>(v) != 7)
            fail("node " + node + ": only strided tensors are read (layout code " + std::to_string(whole<int>(v)) + ")");
        return std::to_string(int(c10::Layout::Strided));
    }
    if (kind == "as_device") // the model runs where DeformScope puts it
        return "torch.device(" + pyString(m_device.str()) + ")";
    if (kind == "as_graph")
        fail("node " + node + " calls a higher-order operator with a subgraph (cond, map, while_loop, ...), which "
             "DeformScope does not read");
    fail("node " + node + ": an argument of kind " + kind + ", which DeformScope does not read");
}

// Python's operators on symbolic sizes (the graph's arithmetic on dynamic shapes).
const std::map<std::string, std::string>& infixOperators() {
    static const std::map<std::string, std::string> ops{
        {"add", "+"}, {"sub", "-"}, {"mul", "*"}, {"floordiv", "//"}, {"truediv", "/"}, {"mod", "%"},
        {"pow", "**"}, {"eq", "=="}, {"ne", "!="}, {"lt", "<"}, {"le", "<="}, {"gt", ">"}, {"ge", ">="},
        {"and_", "and"}, {"or_", "or"}};
    return ops;
}

// A node output's graph value and TorchScript type ("" for None).
std::pair<std::string, std::string> Importer::outputOf(const Json& o, const std::string& node) {
    if (o.contains("as_tensor"))
        return {o.at("as_tensor").at("name").get<std::string>(), "Tensor"};
    for (const auto& [kind, type] : {std::pair<const char*, const char*>{"as_sym_int", "int"},
                                     {"as_sym_float", "float"},
                                     {"as_sym_bool", "bool"}})
        if (o.contains(kind) && o.at(kind).contains("as_name"))
            return {o.at(kind).at("as_name").get<std::string>(), type};
    if (o.contains("as_none"))
        return {"", ""};
    fail("node " + node + " returns " + o.dump() + ", which DeformScope does not read");
}

void Importer::emitNode(const Json& node) {
    const std::string target = node.at("target").get<std::string>();
    std::string nodeName = target;
    for (const Json& o : node.at("outputs"))
        if (o.contains("as_tensor")) {
            nodeName = o.at("as_tensor").at("name").get<std::string>();
            break;
        }
    const Json& inputs = node.at("inputs");
    std::vector<std::string> refs;
    std::string call;
    const std::string pyOp = target.rfind("_operator.", 0) == 0 ? target.substr(10)
                             : target.rfind("operator.", 0) == 0 ? target.substr(9)
                                                                 : std::string();
    if (pyOp == "getitem") {
        if (inputs.size() != 2)
            fail("node " + nodeName + ": getitem with " + std::to_string(inputs.size()) + " arguments");
        call = argument(inputs[0].at("arg"), nodeName, refs) + "[" + argument(inputs[1].at("arg"), nodeName, refs) + "]";
    } else if (infixOperators().count(pyOp) && inputs.size() == 2) {
        call = "(" + argument(inputs[0].at("arg"), nodeName, refs) + " " + infixOperators().at(pyOp) + " " +
               argument(inputs[1].at("arg"), nodeName, refs) + ")";
    } else if ((pyOp == "neg" || pyOp == "not_") && inputs.size() == 1) {
        call = (pyOp == "neg" ? "(-" : "(not ") + argument(inputs[0].at("arg"), nodeName, refs) + ")";
    } else if ((target == "torch.sym_max" || target == "torch.sym_min") && inputs.size() == 2) {
        call = std::string(target == "torch.sym_max" ? "max(" : "min(") + argument(inputs[0].at("arg"), nodeName, refs) +
               ", " + argument(inputs[1].at("arg"), nodeName, refs) + ")";
    } else if ((target == "torch.sym_float" || target == "torch.sym_int" || target == "torch.sym_not") &&
               inputs.size() == 1) {
        const std::string f = target == "torch.sym_float" ? "float(" : target == "torch.sym_int" ? "int(" : "(not ";
        call = f + argument(inputs[0].at("arg"), nodeName, refs) + ")";
    } else if (target.rfind("torch.ops.", 0) == 0) {
        // torch.ops.<ns>.<op>.<overload>: the operator must be registered here.
        auto parts = splitDotted(target.substr(10));
        if (parts.size() != 3)
            fail("node " + nodeName + " calls " + target + ", which DeformScope does not read");
        // A symbolic size, stride or numel is the tensor's own at run time.
        if (parts[0] == "aten" && (parts[1] == "sym_size" || parts[1] == "sym_stride" || parts[1] == "sym_numel")) {
            parts[1] = parts[1] == "sym_size" ? "size" : parts[1] == "sym_stride" ? "stride" : "numel";
            parts[2] = parts[1] == "numel" ? "default" : "int";
        }
        const std::string qualified = parts[0] + "::" + parts[1];
        const std::string overload = parts[2] == "default" ? "" : parts[2];
        if (!c10::Dispatcher::singleton().findSchema({qualified, overload}))
            fail("node " + nodeName + " calls " + qualified + (overload.empty() ? "" : "." + overload) +
                 ", an operator not registered here (a custom op: load its library through the model's side file "
                 "<model>.deformscope.json, \"libraries\")");
        std::string positional, keywords;
        for (const Json& in : inputs) {
            const std::string value = argument(in.at("arg"), nodeName, refs);
            if (in.value("kind", 1) == 2)
                keywords += (keywords.empty() ? "" : ", ") + in.at("name").get<std::string>() + "=" + value;
            else
                positional += (positional.empty() ? "" : ", ") + value;
        }
        call = "ops_" + parts[0] + "." + parts[1] + "(" + positional +
               (positional.empty() || keywords.empty() ? "" : ", ") + keywords + ")";
    } else {
        fail("node " + nodeName + " calls " + target +
             ", which DeformScope does not read (torch.ops operators and Python's arithmetic on sizes)");
    }

    // Where the node ran: called through its module's methods so the layer keeps its name.
    std::string path = modulePathOf(node);
    if (path.empty()) // no nn_module_stack (TorchScript converted by TS2EPConverter): the module of its weight
        for (const Json& in : inputs)
            if (in.at("arg").contains("as_tensor")) {
                const std::string fqn = m_builder->attributeOf(in.at("arg").at("as_tensor").at("name").get<std::string>());
                if (fqn.find('.') != std::string::npos) {
                    path = fqn.substr(0, fqn.rfind('.'));
                    break;
                }
            }
    const Json& outs = node.at("outputs");
    std::vector<std::pair<std::string, std::string>> outputs;
    bool sequence = outs.size() > 1;
    if (outs.size() == 1 && outs[0].contains("as_tensors")) {
        sequence = true;
        for (const Json& t : outs[0].at("as_tensors"))
            outputs.emplace_back(t.at("name").get<std::string>(), "Tensor");
    } else {
        for (const Json& o : outs)
            outputs.push_back(outputOf(o, nodeName));
    }
    if (outputs.size() == 1 && outputs[0].first.empty())
        return; // returns None: nothing reads it
    m_builder->addNode(path, refs, "    return " + call + "\n", outputs, sequence);
}

Pt2Import Importer::run(torch::jit::Module& out) {
    try {
        m_reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(m_path);
    } catch (const c10::Error& e) {
        // A zip archive starts with "PK"; anything else is not an archive at all.
        char magic[2] = {0, 0};
        if (FILE* f = std::fopen(m_path.c_str(), "rb")) {
            if (std::fread(magic, 1, 2, f) != 2)
                magic[0] = 0;
            std::fclose(f);
        }
        std::string why = e.what_without_backtrace();
        why = why.substr(0, why.find(". This is an internal miniz error"));
        if (magic[0] != 'P' || magic[1] != 'K')
            fail("not a torch.export archive (.pt2 files are zip archives; this one is not a zip file)");
        fail("a damaged .pt2 archive, truncated or cut short in copying (" + why + ")");
    }
    Pt2Import result;
    try {
        if (m_reader->hasRecord("byteorder")) {
            std::string order = record("byteorder");
            if (order.rfind("little", 0) != 0)
                fail("the archive's data is " + order + "-endian; DeformScope reads little-endian archives");
        }
        if (!m_reader->hasRecord("models/model.json")) {
            std::string models;
            for (const std::string& r : m_reader->getAllRecords())
                if (r.rfind("models/", 0) == 0)
                    models += " " + r;
            fail("the archive has no models/model.json" +
                 (models.empty() ? std::string(" (not written by torch.export.save?)") : " (it has:" + models + ")"));
        }
        const Json program = jsonRecord("models/model.json");
        const int major = whole<int>(program.at("schema_version").at("major"));
        const int minor = whole<int>(program.at("schema_version").at("minor"));
        const std::string torchVersion = program.value("torch_version", std::string("?"));
        if (major != kSchemaMajor)
            fail("written with torch.export schema " + std::to_string(major) + "." + std::to_string(minor) +
                 " (torch " + torchVersion + "); DeformScope reads schema " + std::to_string(kSchemaMajor) + ".x");
        if (minor > kSchemaMinor)
            result.notes.push_back(m_path + ": written with export schema " + std::to_string(major) + "." +
                                   std::to_string(minor) + ", newer than the " + std::to_string(kSchemaMajor) + "." +
                                   std::to_string(kSchemaMinor) + " DeformScope knows: read as " +
                                   std::to_string(kSchemaMajor) + "." + std::to_string(kSchemaMinor));
        result.format = "torch.export (.pt2), schema " + std::to_string(major) + "." + std::to_string(minor) +
                        ", written by torch " + torchVersion;
        if (m_reader->hasRecord("extra/deformscope.json"))
            result.metadata = record("extra/deformscope.json");

        const Json& gm = program.at("graph_module");
        const Json& graph = gm.at("graph");
        const Json& signature = gm.at("signature");

        m_builder = std::make_unique<ScriptBuilder>("pt2", out);

        std::map<std::string, at::Tensor> tensors;
        readTensors("data/weights", "model_weights_config.json", tensors);
        readTensors("data/constants", "model_constants_config.json", tensors);

        // The graph's inputs: parameters, buffers and constants become attributes, the user's inputs forward's arguments.
        for (const Json& spec : signature.at("input_specs")) {
            const std::string kind = spec.begin().key();
            const Json& s = spec.begin().value();
            std::string value, fqn;
            if (kind == "user_input") {
                if (!s.at("arg").contains("as_tensor"))
                    fail("an input that is not a tensor (" + s.at("arg").dump() + "): DeformScope feeds images");
                m_builder->addInput(s.at("arg").at("as_tensor").at("name").get<std::string>());
                continue;
            }
            if (kind == "parameter") {
                value = s.at("arg").at("name").get<std::string>();
                fqn = s.at("parameter_name").get<std::string>();
            } else if (kind == "buffer") {
                value = s.at("arg").at("name").get<std::string>();
                fqn = s.at("buffer_name").get<std::string>();
            } else if (kind == "tensor_constant") {
                value = s.at("arg").at("name").get<std::string>();
                fqn = s.at("tensor_constant_name").get<std::string>();
            } else {
                fail("an input of kind " + kind + " (custom objects and tokens are not read)");
            }
            const auto t = tensors.find(fqn);
            if (t == tensors.end())
                fail("the weights of " + fqn + " are missing from the archive");
            m_builder->addTensor(value, fqn, t->second, kind == "parameter");
        }
        for (const Json& node : graph.at("nodes"))
            emitNode(node);

        std::vector<std::string> returns;
        for (const Json& spec : signature.at("output_specs")) {
            const std::string kind = spec.begin().key();
            if (kind != "user_output")
                continue; // buffer mutations (a model exported in training mode) are not outputs
            const Json& arg = spec.begin().value().at("arg");
            if (!arg.contains("as_tensor"))
                fail("an output that is not a tensor (" + arg.dump() + ")");
            const std::string name = arg.at("as_tensor").at("name").get<std::string>();
            if (!m_builder->defined(name))
                fail("the program returns " + name + ", which its graph does not define");
            returns.push_back(name);
        }
        if (returns.empty())
            fail("the program returns no tensor");
        m_builder->finish(returns);
    } catch (const ModelError&) {
        throw;
    } catch (const c10::Error& e) {
        fail(std::string("cannot translate the exported program: ") + e.what_without_backtrace());
    } catch (const nlohmann::json::exception& e) {
        fail(std::string("models/model.json does not follow the torch.export schema (") + e.what() + ")");
    } catch (const std::invalid_argument& e) { // whole() and pyFloat(): a value of the wrong kind
        fail(std::string("the archive's JSON does not follow the torch.export schema (") + e.what() + ")");
    } catch (const std::exception& e) {
        fail(std::string("cannot translate the exported program: ") + e.what());
    }
    return result;
}

} // namespace

bool isPt2Path(const std::string& path) {
    std::string ext = std::filesystem::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".pt2";
}

Pt2Import importPt2(const std::string& path, const c10::Device& device, torch::jit::Module& module) {
    return Importer(path, device).run(module);
}

} // namespace deformscope::model
