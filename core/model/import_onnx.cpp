#include "core/model/import_onnx.h"

#include "core/model/model.h"
#include "core/model/onnx_file.h"
#include "core/model/script_builder.h"

#include <torch/script.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

namespace deformscope::model {

namespace {

// The default-domain opsets DeformScope reads: 7 (ONNX 1.2) to 22 (ONNX 1.16, DeformConv's
// and GridSample's latest versions).
constexpr int kMinOpset = 7;
constexpr int kMaxOpset = 22;

const std::vector<std::string> kOperators = {
    "Abs", "Add", "And", "AveragePool", "BatchNormalization", "Cast", "CastLike", "Ceil", "Clip", "Concat",
    "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "DeformConv", "Div", "Dropout", "Elu", "Equal",
    "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "Gelu", "Gemm", "GlobalAveragePool", "GlobalMaxPool",
    "Greater", "GreaterOrEqual", "GridSample", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization",
    "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool",
    "Min", "Mul", "Neg", "Not", "Or", "Pad", "Pow", "PRelu", "Range", "Reciprocal", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceSum", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Sin", "Size", "Slice", "Softmax",
    "Softplus", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Tile", "Transpose", "Unsqueeze", "Upsample",
    "Where"};

} // namespace

bool isOnnxPath(const std::string& path) {
    std::string ext = std::filesystem::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".onnx";
}

const std::vector<std::string>& onnxOperators() {
    static const std::vector<std::string> sorted = [] {
        auto v = kOperators;
        std::sort(v.begin(), v.end());
        return v;
    }();
    return sorted;
}

int onnxMaxOpset() { return kMaxOpset; }

#ifndef DEFORMSCOPE_HAVE_ONNX

OnnxImport importOnnx(const std::string& path, const c10::Device&, torch::jit::Module&) {
    throw ModelError(path + ": this DeformScope was built without ONNX support (it needs Debian's libonnx-dev and "
                            "libprotobuf-dev when it is built); open the model's TorchScript or .pt2 export instead");
}

#else

namespace {

// What the importer knows of a value: its ONNX element type (0: unknown) and rank (-1: unknown).
struct ValueInfo {
    int elem = 0;
    int rank = -1;
};

using namespace onnxfile;

std::optional<c10::ScalarType> scalarTypeOf(int onnxType) {
    switch (onnxType) {
    case kFloat: return c10::ScalarType::Float;
    case kUint8: return c10::ScalarType::Byte;
    case kInt8: return c10::ScalarType::Char;
    case kUint16: return c10::ScalarType::UInt16;
    case kInt16: return c10::ScalarType::Short;
    case kInt32: return c10::ScalarType::Int;
    case kInt64: return c10::ScalarType::Long;
    case kBool: return c10::ScalarType::Bool;
    case kFloat16: return c10::ScalarType::Half;
    case kDouble: return c10::ScalarType::Double;
    case kUint32: return c10::ScalarType::UInt32;
    case kUint64: return c10::ScalarType::UInt64;
    case kBfloat16: return c10::ScalarType::BFloat16;
    default: return std::nullopt;
    }
}

int onnxTypeOf(c10::ScalarType t) {
    for (int code = 1; code <= 16; ++code)
        if (scalarTypeOf(code) == t)
            return code;
    return 0;
}

bool isFloating(int onnxType) {
    return onnxType == kFloat || onnxType == kDouble || onnxType == kFloat16 || onnxType == kBfloat16;
}

std::string pyInts(const std::vector<int64_t>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i)
        out += (i ? ", " : "") + std::to_string(v[i]);
    return out + "]";
}

std::string pyFloats(const std::vector<double>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i)
        out += (i ? ", " : "") + pyFloat(v[i]);
    return out + "]";
}

// ONNX's "very large" slice bounds (INT64_MAX / INT64_MIN) as literals TorchScript parses.
int64_t sliceBound(int64_t v) {
    constexpr int64_t big = int64_t(1) << 62;
    return std::clamp(v, -big, big);
}

class Importer {
public:
    Importer(std::string path, const c10::Device& device) : m_path(std::move(path)), m_device(device) {}

    OnnxImport run(torch::jit::Module& out);

private:
    [[noreturn]] void fail(const std::string& what) const { throw ModelError(m_path + ": " + what); }
    [[noreturn]] void failNode(const std::string& what) const { fail("node " + m_label + ": " + what); }

    at::Tensor toTensor(const onnxfile::Tensor& t, const std::string& what) const;
    void readInfo(const Value& v);
    std::string modulePath(const Node& node) const;
    void translate(const Node& node);

    // The current node's attributes and inputs.
    const Attribute* attr(const std::string& name) const;
    int64_t attrInt(const std::string& name, int64_t def) const;
    std::vector<int64_t> attrInts(const std::string& name, std::vector<int64_t> def) const;
    double attrFloat(const std::string& name, double def) const;
    std::string attrString(const std::string& name, const std::string& def) const;
    bool present(int k) const { return k < int(m_node->inputs.size()) && !m_node->inputs[size_t(k)].empty(); }
    std::string in(int k);
    std::optional<at::Tensor> constant(int k) const;
    std::optional<std::vector<int64_t>> constInts(int k) const;
    // The ints of input k: a literal when constant, else a variable set from the tensor at run time.
    std::string intList(int k, std::string& code, const std::string& var);
    ValueInfo info(int k) const;
    int rank(int k) const { return info(k).rank; }
    int normalizeAxis(int64_t axis, int rankOf, const std::string& what) const;

    std::string m_path;
    c10::Device m_device;
    int m_opset = 0;
    std::unique_ptr<ScriptBuilder> m_builder;
    std::map<std::string, at::Tensor> m_consts; // initialisers and Constant outputs (CPU)
    std::map<std::string, ValueInfo> m_info;
    // The current node.
    const Node* m_node = nullptr;
    std::string m_label;
    std::vector<std::string> m_refs;
    size_t m_constants = 0;
    size_t m_index = 0; // the current node's position in the graph
};

at::Tensor Importer::toTensor(const onnxfile::Tensor& t, const std::string& what) const {
    const auto dtype = scalarTypeOf(t.type);
    if (!dtype)
        fail(what + ": element type " + std::to_string(t.type) + ", which DeformScope does not read");
    at::Tensor out = at::empty(t.dims, at::TensorOptions().dtype(*dtype));
    if (size_t(out.nbytes()) != t.bytes.size())
        fail(what + ": " + std::to_string(t.bytes.size()) + " bytes for a tensor of size " +
             c10::str(c10::IntArrayRef(t.dims)));
    if (!t.bytes.empty())
        std::memcpy(out.data_ptr(), t.bytes.data(), t.bytes.size());
    return out;
}

void Importer::readInfo(const Value& v) {
    if (v.tensor)
        m_info[v.name] = {v.type, v.rank};
}

// Where a node ran, as a dotted module path ("layer1.0.dcn"; "" the top module).
std::string Importer::modulePath(const Node& node) const {
    // torch.onnx's exporter (dynamo): ": Net/layer1: Sequential/layer1.0: Block/layer1.0.dcn: DeformConv2d/op: ..."
    // A convolution whose batch norm the exporter folded into it carries the norm's namespace
    // ("layer1.0.bn1: BatchNorm2d/_native_batch_norm_legit_no_training: ..."): its weight names it.
    auto weightModule = [&]() -> std::string {
        if (node.inputs.size() < 2)
            return "";
        const std::string fqn = m_builder->attributeOf(node.inputs[1]);
        if (fqn.find('.') == std::string::npos || fqn.find("::") != std::string::npos || fqn[0] == '/')
            return "";
        return fqn.substr(0, fqn.rfind('.'));
    };
    const auto ns = node.metadata.find("namespace");
    if (ns != node.metadata.end()) {
        const auto segments = splitDotted(ns->second, '/');
        if (segments.size() < 2)
            return "";
        const std::string& owner = segments[segments.size() - 2];
        static const std::set<std::string> layers{"Conv", "ConvTranspose", "DeformConv", "Gemm"};
        if (layers.count(node.opType) && segments.back().find("batch_norm") != std::string::npos &&
            !weightModule().empty())
            return weightModule();
        return owner.substr(0, owner.find(": "));
    }
    // torch.onnx's TorchScript-based exporter: "/layer1/layer1.0/dcn/DeformConv".
    const std::string& name = node.name;
    if (!name.empty() && name[0] == '/') {
        auto segments = splitDotted(name.substr(1), '/');
        segments.pop_back();
        std::string path;
        for (const std::string& s : segments) {
            if (s.empty())
                continue;
            if (path.empty() || s.rfind(path + ".", 0) == 0)
                path = s;
            else
                path += "." + s;
        }
        return path;
    }
    // Otherwise the module of its weight ("layer1.0.dcn.weight").
    return weightModule();
}

const Attribute* Importer::attr(const std::string& name) const {
    for (const auto& a : m_node->attributes)
        if (a.name == name)
            return &a;
    return nullptr;
}

int64_t Importer::attrInt(const std::string& name, int64_t def) const {
    const auto* a = attr(name);
    if (!a)
        return def;
    if (a->kind != Attribute::Kind::Int)
        failNode("attribute " + name + " is not an int");
    return a->i;
}

std::vector<int64_t> Importer::attrInts(const std::string& name, std::vector<int64_t> def) const {
    const auto* a = attr(name);
    if (!a)
        return def;
    if (a->kind != Attribute::Kind::Ints)
        failNode("attribute " + name + " is not a list of ints");
    return a->ints;
}

double Importer::attrFloat(const std::string& name, double def) const {
    const auto* a = attr(name);
    if (!a)
        return def;
    if (a->kind != Attribute::Kind::Float)
        failNode("attribute " + name + " is not a float");
    return a->f;
}

std::string Importer::attrString(const std::string& name, const std::string& def) const {
    const auto* a = attr(name);
    if (!a)
        return def;
    if (a->kind != Attribute::Kind::String)
        failNode("attribute " + name + " is not a string");
    return a->s;
}

std::string Importer::in(int k) {
    if (!present(k))
        failNode("input " + std::to_string(k) + " is missing");
    const std::string& name = m_node->inputs[size_t(k)];
    auto it = std::find(m_refs.begin(), m_refs.end(), name);
    const size_t i = size_t(it - m_refs.begin());
    if (it == m_refs.end())
        m_refs.push_back(name);
    return ScriptBuilder::ref(i);
}

std::optional<at::Tensor> Importer::constant(int k) const {
    if (!present(k))
        return std::nullopt;
    const auto it = m_consts.find(m_node->inputs[size_t(k)]);
    if (it == m_consts.end())
        return std::nullopt;
    return it->second;
}

std::optional<std::vector<int64_t>> Importer::constInts(int k) const {
    const auto t = constant(k);
    if (!t)
        return std::nullopt;
    if (!c10::isIntegralType(t->scalar_type(), false))
        failNode("input " + std::to_string(k) + " should hold integers");
    const at::Tensor l = t->to(at::kLong).reshape({-1});
    return std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
}

std::string Importer::intList(int k, std::string& code, const std::string& var) {
    if (const auto c = constInts(k))
        return pyInts(*c);
    code += "    " + var + ": List[int] = " + in(k) + ".tolist()\n";
    return var;
}

ValueInfo Importer::info(int k) const {
    if (!present(k))
        return {};
    const auto it = m_info.find(m_node->inputs[size_t(k)]);
    return it == m_info.end() ? ValueInfo{} : it->second;
}

int Importer::normalizeAxis(int64_t axis, int rankOf, const std::string& what) const {
    if (axis >= 0)
        return int(axis);
    if (rankOf < 0)
        failNode("a negative " + what + " on a tensor of unknown rank");
    return int(axis + rankOf);
}

void Importer::translate(const Node& node) {
    m_node = &node;
    m_refs.clear();
    const std::string& op = node.opType;
    m_label = (node.name.empty() ? "#" + std::to_string(m_index) : node.name) + " (" + op + ")";
    ++m_index;
    if (!node.domain.empty())
        failNode("operator " + node.domain + "::" + op + " is not in the ONNX standard domain; DeformScope reads "
                 "standard operators only (export with torchvision's DeformConv2d as ONNX DeformConv, opset 19+)");
    if (!std::binary_search(onnxOperators().begin(), onnxOperators().end(), op)) {
        std::string list;
        for (const std::string& o : onnxOperators())
            list += (list.empty() ? "" : ", ") + o;
        failNode("operator " + op + " is not supported. DeformScope translates: " + list);
    }
    for (const std::string& input : node.inputs)
        if (!input.empty() && !m_builder->defined(input) && !m_consts.count(input))
            failNode("input " + input +
                     " is not defined before the node (the graph is not topologically sorted, or the value is "
                     "missing)");

    ValueInfo out = info(0);
    std::string code;
    bool sequence = false;
    auto ret = [&](const std::string& expr) { code += "    return " + expr + "\n"; };
    auto needInputs = [&](int n) {
        if (int(node.inputs.size()) < n)
            failNode("needs " + std::to_string(n) + " inputs, has " + std::to_string(int(node.inputs.size())));
    };
    const std::string deviceLiteral = "torch.device(" + pyString(m_device.str()) + ")";

    static const std::map<std::string, std::string> unary{
        {"Relu", "relu"},     {"Sigmoid", "sigmoid"}, {"Tanh", "tanh"},         {"Exp", "exp"},
        {"Log", "log"},       {"Sqrt", "sqrt"},       {"Abs", "abs"},           {"Neg", "neg"},
        {"Floor", "floor"},   {"Ceil", "ceil"},       {"Erf", "erf"},           {"Not", "logical_not"},
        {"Sin", "sin"},       {"Cos", "cos"},         {"Reciprocal", "reciprocal"}, {"HardSwish", "hardswish"},
        {"Softplus", "softplus"}};
    static const std::map<std::string, std::string> binary{
        {"Add", "add"},   {"Sub", "sub"},        {"Mul", "mul"},          {"Pow", "pow"},
        {"Equal", "eq"},  {"Less", "lt"},        {"LessOrEqual", "le"},   {"Greater", "gt"},
        {"GreaterOrEqual", "ge"}, {"And", "logical_and"}, {"Or", "logical_or"}};
    static const std::set<std::string> comparisons{"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
                                                   "And", "Or", "Not"};
    auto maxRank = [&](int n) {
        int r = 0;
        for (int k = 0; k < n; ++k) {
            if (!present(k))
                continue;
            if (rank(k) < 0)
                return -1;
            r = std::max(r, rank(k));
        }
        return r;
    };
    // Spatial attributes of Conv, ConvTranspose, DeformConv and the pools: symmetric pads only.
    auto spatial = [&](int dims, bool withDilations) {
        const std::string autoPad = attrString("auto_pad", "NOTSET");
        if (autoPad != "NOTSET" && autoPad != "VALID")
            failNode("auto_pad " + autoPad + " is not supported (export with explicit pads)");
        auto strides = attrInts("strides", std::vector<int64_t>(dims, 1));
        auto pads = autoPad == "VALID" ? std::vector<int64_t>(2 * dims, 0)
                                       : attrInts("pads", std::vector<int64_t>(2 * dims, 0));
        auto dil = attrInts("dilations", std::vector<int64_t>(dims, 1));
        if (int(strides.size()) != dims || int(pads.size()) != 2 * dims || int(dil.size()) != dims)
            failNode("strides, pads or dilations do not match its " + std::to_string(dims) + " spatial dimensions");
        for (int d = 0; d < dims; ++d)
            if (pads[d] != pads[d + dims])
                failNode("asymmetric pads " + pyInts(pads) + " are not supported");
        if (!withDilations && std::any_of(dil.begin(), dil.end(), [](int64_t d) { return d != 1; }))
            failNode("dilations other than 1 are not supported here");
        pads.resize(dims);
        return std::make_tuple(strides, pads, dil);
    };
    auto spatialDims = [&](int weightInput) {
        const auto ks = attrInts("kernel_shape", {});
        int dims = ks.empty() ? (weightInput >= 0 && rank(weightInput) >= 3 ? rank(weightInput) - 2 : -1)
                              : int(ks.size());
        if (dims < 1 || dims > 3)
            failNode("cannot tell its number of spatial dimensions (no kernel_shape, weight of unknown rank)");
        return dims;
    };

    if (op == "Constant") {
        at::Tensor t;
        const Attribute* a = attr("value");
        if (a && a->kind == Attribute::Kind::Tensor) {
            t = toTensor(*a->t, "node " + m_label + ": value");
        } else if ((a = attr("value_float")) && a->kind == Attribute::Kind::Float) {
            t = at::tensor(float(a->f));
        } else if ((a = attr("value_floats")) && a->kind == Attribute::Kind::Floats) {
            t = at::tensor(std::vector<float>(a->floats.begin(), a->floats.end()));
        } else if ((a = attr("value_int")) && a->kind == Attribute::Kind::Int) {
            t = at::tensor(a->i);
        } else if ((a = attr("value_ints")) && a->kind == Attribute::Kind::Ints) {
            t = at::tensor(a->ints);
        } else {
            failNode("a Constant without a tensor, float or int value (sparse and string constants are not read)");
        }
        m_consts[node.outputs[0]] = t;
        m_builder->addTensor(node.outputs[0], "onnx_constant_" + std::to_string(m_constants++), t.to(m_device),
                             false);
        m_info[node.outputs[0]] = {onnxTypeOf(t.scalar_type()), int(t.dim())};
        return;
    }

    if (op == "Identity" || op == "Dropout") {
        if (op == "Dropout" && int(node.outputs.size()) > 1 && !node.outputs[1].empty())
            failNode("its mask output is used (a training graph)");
        ret(in(0));
    } else if (unary.count(op)) {
        ret("ops_aten." + unary.at(op) + "(" + in(0) + ")");
        if (comparisons.count(op))
            out.elem = kBool;
    } else if (binary.count(op)) {
        needInputs(2);
        ret("ops_aten." + binary.at(op) + "(" + in(0) + ", " + in(1) + ")");
        out.rank = maxRank(2);
        if (comparisons.count(op))
            out.elem = kBool;
    } else if (op == "Div") {
        needInputs(2);
        const int elem = info(0).elem ? info(0).elem : info(1).elem;
        const bool integer = elem && !isFloating(elem);
        ret("ops_aten.div(" + in(0) + ", " + in(1) + (integer ? ", rounding_mode=\"trunc\")" : ")"));
        out.rank = maxRank(2);
    } else if (op == "Sum" || op == "Max" || op == "Min") {
        std::string e = in(0);
        const std::string f = op == "Sum" ? "add" : op == "Max" ? "maximum" : "minimum";
        for (int k = 1; k < int(node.inputs.size()); ++k)
            e = "ops_aten." + f + "(" + e + ", " + in(k) + ")";
        ret(e);
        out.rank = maxRank(int(node.inputs.size()));
    } else if (op == "Where") {
        needInputs(3);
        ret("ops_aten.where(" + in(0) + ", " + in(1) + ", " + in(2) + ")");
        out = {info(1).elem, maxRank(3)};
    } else if (op == "LeakyRelu") {
        ret("ops_aten.leaky_relu(" + in(0) + ", " + pyFloat(attrFloat("alpha", 0.01)) + ")");
    } else if (op == "Elu") {
        ret("ops_aten.elu(" + in(0) + ", " + pyFloat(attrFloat("alpha", 1.0)) + ")");
    } else if (op == "Gelu") {
        ret("ops_aten.gelu(" + in(0) + ", approximate=" + pyString(attrString("approximate", "none")) + ")");
    } else if (op == "HardSigmoid") {
        ret("ops_aten.clamp(" + in(0) + " * " + pyFloat(attrFloat("alpha", 0.2)) + " + " +
            pyFloat(attrFloat("beta", 0.5)) + ", 0.0, 1.0)");
    } else if (op == "PRelu") {
        needInputs(2);
        ret("ops_aten.where(ops_aten.ge(" + in(0) + ", 0), " + in(0) + ", " + in(0) + " * " + in(1) + ")");
    } else if (op == "Clip") {
        auto bound = [&](int k, const std::string& name, double def) -> std::string {
            if (m_opset < 11)
                return attr(name) ? pyFloat(attrFloat(name, def)) : "None";
            if (!present(k))
                return "None";
            if (const auto c = constant(k))
                return pyFloat(c->item<double>());
            return in(k);
        };
        const std::string lo = bound(1, "min", 0), hi = bound(2, "max", 0);
        ret("ops_aten.clamp(" + in(0) + ", " + lo + ", " + hi + ")");
    } else if (op == "Cast") {
        const auto to = scalarTypeOf(int(attrInt("to", 0)));
        if (!to)
            failNode("casts to element type " + std::to_string(attrInt("to", 0)) + ", which DeformScope does not read");
        ret(in(0) + ".to(" + std::to_string(int(*to)) + ")");
        out.elem = int(attrInt("to", 0));
    } else if (op == "CastLike") {
        needInputs(2);
        ret(in(0) + ".to(" + in(1) + ".dtype)");
        out.elem = info(1).elem;
    } else if (op == "Conv") {
        needInputs(2);
        const int dims = spatialDims(1);
        auto [s, p, d] = spatial(dims, true);
        ret("ops_aten.conv" + std::to_string(dims) + "d(" + in(0) + ", " + in(1) + ", " +
            (present(2) ? in(2) : std::string("None")) + ", " + pyInts(s) + ", " + pyInts(p) + ", " + pyInts(d) +
            ", " + std::to_string(attrInt("group", 1)) + ")");
    } else if (op == "ConvTranspose") {
        needInputs(2);
        const int dims = spatialDims(1);
        if (attr("output_shape"))
            failNode("output_shape is not supported (export with explicit pads and output_padding)");
        auto [s, p, d] = spatial(dims, true);
        const auto outPad = attrInts("output_padding", std::vector<int64_t>(dims, 0));
        ret("ops_aten.conv_transpose" + std::to_string(dims) + "d(" + in(0) + ", " + in(1) + ", " +
            (present(2) ? in(2) : std::string("None")) + ", " + pyInts(s) + ", " + pyInts(p) + ", " +
            pyInts(outPad) + ", " + std::to_string(attrInt("group", 1)) + ", " + pyInts(d) + ")");
    } else if (op == "DeformConv") {
        needInputs(3);
        if (spatialDims(1) != 2)
            failNode("only 2-D DeformConv is supported");
        auto [s, p, d] = spatial(2, true);
        const std::string x = in(0), w = in(1), offset = in(2);
        const std::string bias = present(3) ? in(3) : x + ".new_zeros([" + w + ".size(0)])";
        const bool useMask = present(4);
        const std::string mask = useMask ? in(4) : x + ".new_zeros([" + x + ".size(0), 1])";
        ret("ops_torchvision.deform_conv2d(" + x + ", " + w + ", " + offset + ", " + mask + ", " + bias + ", " +
            std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " + std::to_string(p[0]) + ", " +
            std::to_string(p[1]) + ", " + std::to_string(d[0]) + ", " + std::to_string(d[1]) + ", " +
            std::to_string(attrInt("group", 1)) + ", " + std::to_string(attrInt("offset_group", 1)) + ", " +
            (useMask ? "True" : "False") + ")");
    } else if (op == "GridSample") {
        needInputs(2);
        const std::string mode = attrString("mode", m_opset >= 20 ? "linear" : "bilinear");
        const std::string padding = attrString("padding_mode", "zeros");
        const int interp = mode == "bilinear" || mode == "linear" ? 0 : mode == "nearest" ? 1
                           : mode == "bicubic" || mode == "cubic"   ? 2
                                                                    : -1;
        const int pad = padding == "zeros" ? 0 : padding == "border" ? 1 : padding == "reflection" ? 2 : -1;
        if (interp < 0 || pad < 0)
            failNode("mode " + mode + " / padding_mode " + padding + " is not one grid_sample has");
        ret("ops_aten.grid_sampler(" + in(0) + ", " + in(1) + ", " + std::to_string(interp) + ", " +
            std::to_string(pad) + ", " + (attrInt("align_corners", 0) ? "True" : "False") + ")");
    } else if (op == "BatchNormalization") {
        needInputs(5);
        if (attrInt("training_mode", 0) || (int(node.outputs.size()) > 1 && !node.outputs[1].empty()))
            failNode("a training-mode BatchNormalization (export the model in eval mode)");
        ret("ops_aten.batch_norm(" + in(0) + ", " + in(1) + ", " + in(2) + ", " + in(3) + ", " + in(4) +
            ", False, 0.1, " + pyFloat(attrFloat("epsilon", 1e-5)) + ", True)");
    } else if (op == "InstanceNormalization") {
        needInputs(3);
        ret("ops_aten.instance_norm(" + in(0) + ", " + in(1) + ", " + in(2) + ", None, None, True, 0.1, " +
            pyFloat(attrFloat("epsilon", 1e-5)) + ", True)");
    } else if (op == "LayerNormalization") {
        needInputs(2);
        const int64_t axis = attrInt("axis", -1);
        if (int(node.outputs.size()) > 1 && !node.outputs[1].empty())
            failNode("its mean / inverse deviation outputs are used (a training graph)");
        ret("ops_aten.layer_norm(" + in(0) + ", " + in(0) + ".size()[" + std::to_string(axis) + ":], " + in(1) +
            ", " + (present(2) ? in(2) : std::string("None")) + ", " + pyFloat(attrFloat("epsilon", 1e-5)) +
            ", True)");
    } else if (op == "MaxPool" || op == "AveragePool") {
        if (int(node.outputs.size()) > 1 && !node.outputs[1].empty())
            failNode("its Indices output is used, which DeformScope does not read");
        const auto ks = attrInts("kernel_shape", {});
        const int dims = int(ks.size());
        if (dims < 1 || dims > 3)
            failNode("kernel_shape missing or not 1-, 2- or 3-D");
        const bool max = op == "MaxPool";
        auto [s, p, d] = spatial(dims, max);
        const std::string ceil = attrInt("ceil_mode", 0) ? "True" : "False";
        const std::string n = std::to_string(dims);
        if (max)
            ret("ops_aten.max_pool" + n + "d(" + in(0) + ", " + pyInts(ks) + ", " + pyInts(s) + ", " + pyInts(p) +
                ", " + pyInts(d) + ", " + ceil + ")");
        else
            ret("ops_aten.avg_pool" + n + "d(" + in(0) + ", " + pyInts(ks) + ", " + pyInts(s) + ", " + pyInts(p) +
                ", " + ceil + ", " + (attrInt("count_include_pad", 0) ? "True" : "False") +
                (dims == 1 ? ")" : ", None)"));
    } else if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
        const int r = rank(0);
        if (r < 0 || r == 4) {
            ret(op == "GlobalAveragePool" ? "ops_aten.adaptive_avg_pool2d(" + in(0) + ", [1, 1])"
                                          : "ops_aten.amax(" + in(0) + ", [2, 3], True)");
        } else {
            std::vector<int64_t> dims;
            for (int d = 2; d < r; ++d)
                dims.push_back(d);
            ret(std::string(op == "GlobalAveragePool" ? "ops_aten.mean(" : "ops_aten.amax(") + in(0) + ", " +
                pyInts(dims) + ", True)");
        }
    } else if (op == "Gemm") {
        needInputs(2);
        const bool ta = attrInt("transA", 0), tb = attrInt("transB", 0);
        const double alpha = attrFloat("alpha", 1.0), beta = attrFloat("beta", 1.0);
        if (!ta && tb && alpha == 1.0 && (beta == 1.0 || !present(2))) {
            ret("ops_aten.linear(" + in(0) + ", " + in(1) + ", " + (present(2) ? in(2) : std::string("None")) + ")");
        } else {
            const std::string a = ta ? in(0) + ".t()" : in(0), b = tb ? in(1) + ".t()" : in(1);
            if (present(2))
                ret("ops_aten.addmm(" + in(2) + ", " + a + ", " + b + ", beta=" + pyFloat(beta) +
                    ", alpha=" + pyFloat(alpha) + ")");
            else
                ret("ops_aten.mm(" + a + ", " + b + ") * " + pyFloat(alpha));
        }
        out.rank = 2;
    } else if (op == "MatMul") {
        needInputs(2);
        ret("ops_aten.matmul(" + in(0) + ", " + in(1) + ")");
        out.rank = rank(0) >= 2 && rank(1) >= 2 ? std::max(rank(0), rank(1)) : -1;
    } else if (op == "Softmax" || op == "LogSoftmax") {
        const std::string f = op == "Softmax" ? "softmax" : "log_softmax";
        if (m_opset >= 13) {
            ret("ops_aten." + f + "(" + in(0) + ", " + std::to_string(attrInt("axis", -1)) + ", None)");
        } else {
            const int64_t axis = attrInt("axis", 1);
            if (rank(0) >= 0 && normalizeAxis(axis, rank(0), "axis") == rank(0) - 1)
                ret("ops_aten." + f + "(" + in(0) + ", -1, None)");
            else // before opset 13 the input is seen as 2-D: [prod(d0..axis-1), prod(axis..)]
                ret("ops_aten.reshape(ops_aten." + f + "(ops_aten.flatten(" + in(0) + ", " + std::to_string(axis) +
                    ", -1), -1, None), " + in(0) + ".size())");
        }
    } else if (op == "Concat") {
        std::string list;
        for (int k = 0; k < int(node.inputs.size()); ++k)
            if (present(k))
                list += (list.empty() ? "" : ", ") + in(k);
        ret("ops_aten.cat([" + list + "], " + std::to_string(attrInt("axis", 0)) + ")");
    } else if (op == "Split") {
        const int64_t axis = attrInt("axis", 0);
        const int n = int(node.outputs.size());
        std::string sizes;
        if (m_opset >= 13 && present(1))
            sizes = intList(1, code, "sizes");
        else if (m_opset < 13 && attr("split"))
            sizes = pyInts(attrInts("split", {}));
        if (!sizes.empty())
            ret("ops_aten.split_with_sizes(" + in(0) + ", " + sizes + ", " + std::to_string(axis) + ")");
        else
            ret("ops_aten.split(" + in(0) + ", (" + in(0) + ".size(" + std::to_string(axis) + ") + " +
                std::to_string(n - 1) + ") // " + std::to_string(n) + ", " + std::to_string(axis) + ")");
        sequence = true;
    } else if (op == "Slice") {
        std::optional<std::vector<int64_t>> starts, ends, axes, steps;
        if (m_opset < 10) {
            starts = attrInts("starts", {});
            ends = attrInts("ends", {});
            if (attr("axes"))
                axes = attrInts("axes", {});
        } else {
            needInputs(3);
            starts = constInts(1);
            ends = constInts(2);
            if (present(3))
                axes = constInts(3);
            if (present(4))
                steps = constInts(4);
        }
        const bool axesKnown = m_opset < 10 ? true : !present(3) || axes.has_value();
        const bool stepsKnown = !present(4) || steps.has_value();
        if (starts && ends && axesKnown && stepsKnown) {
            if (!axes) {
                axes.emplace();
                for (size_t i = 0; i < starts->size(); ++i)
                    axes->push_back(int64_t(i));
            }
            if (!steps)
                steps = std::vector<int64_t>(starts->size(), 1);
            if (axes->size() != starts->size() || ends->size() != starts->size() || steps->size() != starts->size())
                failNode("starts, ends, axes and steps of different lengths");
            code += "    y = " + in(0) + "\n";
            for (size_t i = 0; i < starts->size(); ++i) {
                const std::string ax = std::to_string((*axes)[i]);
                const int64_t st = sliceBound((*starts)[i]), en = sliceBound((*ends)[i]), sp = (*steps)[i];
                if (sp == 0)
                    failNode("a Slice step of 0");
                if (sp > 0) {
                    code += "    y = ops_aten.slice(y, " + ax + ", " + std::to_string(st) + ", " + std::to_string(en) +
                            ", " + std::to_string(sp) + ")\n";
                    continue;
                }
                // A reversing slice (start down to end, exclusive): the flipped tensor sliced forwards.
                auto bound = [](int64_t v) {
                    return v < 0 ? "(" + std::to_string(v) + " + n)" : std::to_string(v);
                };
                code += "    n = y.size(" + ax + ")\n";
                code += "    s = min(max(" + bound(st) + ", 0), n - 1)\n";
                code += "    e = min(max(" + bound(en) + ", -1), n - 1)\n";
                code += "    y = ops_aten.slice(ops_aten.flip(y, [" + ax + "]), " + ax + ", n - 1 - s, n - 1 - e, " +
                        std::to_string(-sp) + ")\n";
            }
            ret("y");
        } else { // bounds computed by the graph: sliced when the model runs
            const std::string st = intList(1, code, "st"), en = intList(2, code, "en");
            if (present(3))
                code += "    ax: List[int] = " + intList(3, code, "ax3") + "\n";
            else
                code += "    ax: List[int] = [i for i in range(len(" + st + "))]\n";
            if (present(4))
                code += "    sp: List[int] = " + intList(4, code, "sp4") + "\n";
            else
                code += "    sp: List[int] = [1 for i in range(len(" + st + "))]\n";
            code += "    y = " + in(0) + "\n    for i in range(len(" + st + ")):\n        y = ops_aten.slice(y, ax[i], " +
                    st + "[i], " + en + "[i], sp[i])\n";
            ret("y");
        }
    } else if (op == "Reshape") {
        needInputs(2);
        const bool allowZero = attrInt("allowzero", 0) != 0;
        if (const auto shape = constInts(1)) {
            std::string list = "[";
            for (size_t i = 0; i < shape->size(); ++i) {
                const int64_t v = (*shape)[i];
                list += (i ? ", " : "") +
                        (v == 0 && !allowZero ? in(0) + ".size(" + std::to_string(i) + ")" : std::to_string(v));
            }
            ret("ops_aten.reshape(" + in(0) + ", " + list + "])");
            out.rank = int(shape->size());
        } else {
            code += "    s: List[int] = " + in(1) + ".tolist()\n";
            if (!allowZero)
                code += "    for i in range(len(s)):\n        if s[i] == 0:\n            s[i] = " + in(0) +
                        ".size(i)\n";
            ret("ops_aten.reshape(" + in(0) + ", s)");
            out.rank = -1;
        }
    } else if (op == "Flatten") {
        const int axis = normalizeAxis(attrInt("axis", 1), rank(0), "axis");
        if (axis == 0)
            ret("ops_aten.reshape(" + in(0) + ", [1, -1])");
        else
            ret("ops_aten.flatten(ops_aten.flatten(" + in(0) + ", " + std::to_string(axis) + ", -1), 0, " +
                std::to_string(axis - 1) + ")");
        out.rank = 2;
    } else if (op == "Transpose") {
        std::vector<int64_t> perm = attrInts("perm", {});
        if (perm.empty()) {
            if (rank(0) < 0)
                failNode("a Transpose without perm on a tensor of unknown rank");
            for (int d = rank(0) - 1; d >= 0; --d)
                perm.push_back(d);
        }
        ret("ops_aten.permute(" + in(0) + ", " + pyInts(perm) + ")");
    } else if (op == "Squeeze") {
        std::optional<std::vector<int64_t>> axes;
        if (m_opset < 13 && attr("axes"))
            axes = attrInts("axes", {});
        else if (m_opset >= 13 && present(1)) {
            axes = constInts(1);
            if (!axes)
                failNode("Squeeze axes computed by the graph are not supported");
        }
        if (!axes) {
            ret("ops_aten.squeeze(" + in(0) + ")");
            out.rank = -1;
        } else {
            ret("ops_aten.squeeze(" + in(0) + ", " + pyInts(*axes) + ")");
            out.rank = rank(0) < 0 ? -1 : rank(0) - int(axes->size());
        }
    } else if (op == "Unsqueeze") {
        std::vector<int64_t> axes;
        if (m_opset < 13) {
            axes = attrInts("axes", {});
        } else {
            const auto a = constInts(1);
            if (!a)
                failNode("Unsqueeze axes computed by the graph are not supported");
            axes = *a;
        }
        const int n = int(axes.size());
        const bool negative = std::any_of(axes.begin(), axes.end(), [](int64_t a) { return a < 0; });
        std::string e = in(0);
        if (negative && rank(0) < 0) {
            if (!std::all_of(axes.begin(), axes.end(), [](int64_t a) { return a < 0; }))
                failNode("mixed negative and positive Unsqueeze axes on a tensor of unknown rank");
            std::sort(axes.begin(), axes.end());
            for (int64_t a : axes)
                e = "ops_aten.unsqueeze(" + e + ", " + in(0) + ".dim() + " + std::to_string(n + a) + ")";
        } else {
            for (int64_t& a : axes)
                a = a < 0 ? a + rank(0) + n : a;
            std::sort(axes.begin(), axes.end());
            for (int64_t a : axes)
                e = "ops_aten.unsqueeze(" + e + ", " + std::to_string(a) + ")";
        }
        ret(e);
        out.rank = rank(0) < 0 ? -1 : rank(0) + n;
    } else if (op == "Expand") {
        needInputs(2);
        const auto shape = constInts(1);
        if (shape && rank(0) >= 0) {
            // ONNX broadcasts both ways: a 1 in `shape` keeps the input's size.
            std::vector<int64_t> s = *shape;
            const int extra = int(s.size()) - rank(0);
            if (extra < 0)
                s.insert(s.begin(), size_t(-extra), -1);
            for (size_t i = size_t(std::max(extra, 0)); i < s.size(); ++i)
                if (s[i] == 1)
                    s[i] = -1;
            ret("ops_aten.expand(" + in(0) + ", " + pyInts(s) + ")");
            out.rank = int(s.size());
        } else {
            const std::string s = intList(1, code, "s");
            ret(in(0) + " * " + in(0) + ".new_ones(" + s + ")");
            out.rank = -1;
        }
    } else if (op == "Tile") {
        needInputs(2);
        code.clear();
        const std::string reps = intList(1, code, "reps");
        ret("ops_aten.repeat(" + in(0) + ", " + reps + ")");
    } else if (op == "Gather") {
        needInputs(2);
        const int64_t axis = attrInt("axis", 0);
        const auto idx = constant(1);
        if (idx && idx->dim() == 0) {
            ret("ops_aten.select(" + in(0) + ", " + std::to_string(axis) + ", " +
                std::to_string(idx->to(at::kLong).item<int64_t>()) + ")");
            out.rank = rank(0) < 0 ? -1 : rank(0) - 1;
        } else {
            const int ax = normalizeAxis(axis, rank(0), "Gather axis");
            code += "    s: List[int] = " + in(0) + ".size()\n";
            code += "    i = ops_aten.remainder(" + in(1) + ", s[" + std::to_string(ax) + "])\n";
            code += "    y = ops_aten.index_select(" + in(0) + ", " + std::to_string(ax) + ", ops_aten.reshape(i, [-1]))\n";
            ret("ops_aten.reshape(y, s[:" + std::to_string(ax) + "] + " + in(1) + ".size() + s[" +
                std::to_string(ax + 1) + ":])");
            out.rank = rank(0) < 0 || rank(1) < 0 ? -1 : rank(0) - 1 + rank(1);
        }
    } else if (op == "Shape") {
        const int64_t start = attrInt("start", 0);
        const std::string end = attr("end") ? std::to_string(attrInt("end", 0)) : "";
        ret("ops_aten.tensor(" + in(0) + ".size()[" + std::to_string(start) + ":" + end + "], dtype=4, device=" +
            in(0) + ".device)");
        out = {kInt64, 1};
    } else if (op == "Size") {
        ret("ops_aten.tensor(" + in(0) + ".numel(), dtype=4, device=" + in(0) + ".device)");
        out = {kInt64, 0};
    } else if (op == "ConstantOfShape") {
        needInputs(1);
        at::Tensor value = at::zeros({1}, at::kFloat);
        if (const auto* a = attr("value"); a && a->kind == Attribute::Kind::Tensor)
            value = toTensor(*a->t, "node " + m_label + ": value");
        if (value.numel() != 1)
            failNode("a value with more than one element");
        const std::string dims = intList(0, code, "dims");
        const std::string literal =
            value.is_floating_point() ? pyFloat(value.item<double>())
            : value.scalar_type() == at::kBool ? std::string(value.item<bool>() ? "True" : "False")
                                               : std::to_string(value.item<int64_t>());
        ret("ops_aten.full(" + dims + ", " + literal + ", dtype=" + std::to_string(int(value.scalar_type())) +
            ", device=" + deviceLiteral + ")");
        const auto known = constInts(0);
        out = {onnxTypeOf(value.scalar_type()), known ? int(known->size()) : -1};
    } else if (op == "Range") {
        needInputs(3);
        const int elem = info(0).elem;
        const auto type = scalarTypeOf(elem);
        ret("ops_aten.arange(" + in(0) + ".item(), " + in(1) + ".item(), " + in(2) + ".item()" +
            (type ? ", dtype=" + std::to_string(int(*type)) : std::string()) + ", device=" + in(0) + ".device)");
        out = {elem, 1};
    } else if (op == "Pad") {
        const std::string mode = attrString("mode", "constant");
        const std::string torchMode = mode == "constant" ? "constant" : mode == "reflect" ? "reflect"
                                      : mode == "edge"   ? "replicate"
                                      : mode == "wrap"   ? "circular"
                                                         : "";
        if (torchMode.empty())
            failNode("pad mode " + mode + " is not supported");
        std::optional<std::vector<int64_t>> pads;
        std::string value = "None";
        if (m_opset < 11) {
            pads = attrInts("pads", {});
            value = pyFloat(attrFloat("value", 0.0));
        } else {
            needInputs(2);
            pads = constInts(1);
            if (present(2)) {
                if (const auto c = constant(2))
                    value = pyFloat(c->item<double>());
                else
                    value = "float(" + in(2) + ".item())";
            }
            if (present(3)) { // opset 18: pads for these axes only
                const auto axes = constInts(3);
                if (!axes || !pads || rank(0) < 0)
                    failNode("Pad axes need constant pads and axes and an input of known rank");
                std::vector<int64_t> full(size_t(2 * rank(0)), 0);
                const size_t n = axes->size();
                for (size_t i = 0; i < n; ++i) {
                    const int a = normalizeAxis((*axes)[i], rank(0), "Pad axis");
                    full[size_t(a)] = (*pads)[i];
                    full[size_t(a + rank(0))] = (*pads)[i + n];
                }
                pads = full;
            }
        }
        if (torchMode != "constant")
            value = "None";
        if (pads) {
            // ONNX: [x1_begin, x2_begin, ..., x1_end, x2_end]; torch: last dimension first, (begin, end) pairs.
            const size_t n = pads->size() / 2;
            std::vector<int64_t> q;
            for (size_t i = 0; i < n; ++i) {
                q.push_back((*pads)[n - 1 - i]);
                q.push_back((*pads)[2 * n - 1 - i]);
            }
            while (q.size() >= 2 && q[q.size() - 1] == 0 && q[q.size() - 2] == 0)
                q.resize(q.size() - 2);
            ret("ops_aten.pad(" + in(0) + ", " + pyInts(q) + ", " + pyString(torchMode) + ", " + value + ")");
        } else {
            code += "    p: List[int] = " + in(1) + ".tolist()\n    n = len(p) // 2\n    q: List[int] = []\n";
            code += "    for i in range(n):\n        q.append(p[n - 1 - i])\n        q.append(p[2 * n - 1 - i])\n";
            // Leading dimensions left unpadded are dropped (reflect and replicate pad spatial dimensions only).
            code += "    while len(q) >= 2 and q[-1] == 0 and q[-2] == 0:\n        q = q[:-2]\n";
            ret("ops_aten.pad(" + in(0) + ", q, " + pyString(torchMode) + ", " + value + ")");
        }
    } else if (op == "Resize" || op == "Upsample") {
        std::string mode = attrString("mode", "nearest");
        std::string coord = op == "Upsample" ? "asymmetric" : attrString("coordinate_transformation_mode", "half_pixel");
        const std::string nearestMode = attrString("nearest_mode", "round_prefer_floor");
        if (attrInt("antialias", 0))
            failNode("antialiased Resize is not supported");
        if (rank(0) >= 0 && rank(0) != 4)
            failNode("only 2-D (4-D tensor) Resize is supported");
        std::string sizes = "None", scales = "None";
        auto fromScales = [&](int k) {
            const auto c = constant(k);
            if (c && c->numel() == 0)
                return false;
            if (c) {
                const at::Tensor f = c->to(at::kDouble).reshape({-1});
                if (f.numel() != 4)
                    failNode("scales for a 4-D input should have 4 values");
                scales = pyFloats({f[2].item<double>(), f[3].item<double>()});
            } else {
                code += "    sc: List[float] = " + in(k) + ".tolist()\n";
                scales = "sc[2:]";
            }
            return true;
        };
        if (op == "Upsample") {
            if (m_opset < 9) {
                const auto* a = attr("scales");
                if (!a || a->kind != Attribute::Kind::Floats || a->floats.size() != 4)
                    failNode("Upsample needs 4 scales");
                scales = pyFloats({a->floats[2], a->floats[3]});
            } else if (!fromScales(1)) {
                failNode("Upsample without scales");
            }
        } else {
            const int scalesInput = m_opset >= 11 ? 2 : 1;
            const int sizesInput = m_opset >= 11 ? 3 : -1;
            if (sizesInput > 0 && present(sizesInput)) {
                if (const auto c = constInts(sizesInput)) {
                    if (c->size() != 4)
                        failNode("sizes for a 4-D input should have 4 values");
                    sizes = pyInts({(*c)[2], (*c)[3]});
                } else {
                    code += "    sz: List[int] = " + in(sizesInput) + ".tolist()\n";
                    sizes = "sz[2:]";
                }
            } else if (!present(scalesInput) || !fromScales(scalesInput)) {
                failNode("Resize without scales or sizes");
            }
            if (attr("axes"))
                failNode("Resize axes are not supported");
        }
        if (mode == "linear" || mode == "bilinear") {
            if (coord != "half_pixel" && coord != "pytorch_half_pixel" && coord != "align_corners")
                failNode("linear Resize with coordinate_transformation_mode " + coord +
                         " is not supported (half_pixel, pytorch_half_pixel, align_corners)");
            ret("ops_aten.upsample_bilinear2d(" + in(0) + ", " + sizes + ", " +
                (coord == "align_corners" ? "True" : "False") + ", " + scales + ")");
        } else if (mode == "cubic") {
            if (coord != "half_pixel" && coord != "pytorch_half_pixel" && coord != "align_corners")
                failNode("cubic Resize with coordinate_transformation_mode " + coord + " is not supported");
            ret("ops_aten.upsample_bicubic2d(" + in(0) + ", " + sizes + ", " +
                (coord == "align_corners" ? "True" : "False") + ", " + scales + ")");
        } else if (mode == "nearest") {
            if (coord == "asymmetric" && (nearestMode == "floor" || op == "Upsample"))
                ret("ops_aten.upsample_nearest2d(" + in(0) + ", " + sizes + ", " + scales + ")");
            else if ((coord == "half_pixel" || coord == "pytorch_half_pixel") && nearestMode == "round_prefer_ceil")
                ret("ops_aten._upsample_nearest_exact2d(" + in(0) + ", " + sizes + ", " + scales + ")");
            else
                failNode("nearest Resize with coordinate_transformation_mode " + coord + " and nearest_mode " +
                         nearestMode + " is not supported (asymmetric + floor: PyTorch's nearest; half_pixel + "
                         "round_prefer_ceil: nearest-exact)");
        } else {
            failNode("Resize mode " + mode + " is not supported");
        }
    } else if (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax" || op == "ReduceMin") {
        const bool axesInput = op == "ReduceSum" ? m_opset >= 13 : m_opset >= 18;
        std::optional<std::vector<int64_t>> axes;
        if (axesInput) {
            if (present(1)) {
                axes = constInts(1);
                if (!axes)
                    failNode("reduction axes computed by the graph are not supported");
            }
        } else if (attr("axes")) {
            axes = attrInts("axes", {});
        }
        const bool keep = attrInt("keepdims", 1) != 0;
        if ((!axes || axes->empty()) && attrInt("noop_with_empty_axes", 0)) {
            ret(in(0));
        } else {
            const std::string f = op == "ReduceMean"  ? "mean"
                                  : op == "ReduceSum" ? "sum"
                                  : op == "ReduceMax" ? "amax"
                                                      : "amin";
            const bool all = !axes || axes->empty();
            // A mean over the height and width of a 4-D map, kept: a global average pool (torch.onnx writes
            // adaptive_avg_pool2d(x, 1) so), read as the pool layer it is.
            std::set<int64_t> reduced;
            if (!all && rank(0) == 4)
                for (int64_t a : *axes)
                    reduced.insert(a < 0 ? a + 4 : a);
            const std::string dims = all ? (f == "amax" || f == "amin" ? "[]" : "None") : pyInts(*axes);
            if (f == "mean" && keep && reduced == std::set<int64_t>{2, 3})
                ret("ops_aten.adaptive_avg_pool2d(" + in(0) + ", [1, 1])");
            else
                ret("ops_aten." + f + "(" + in(0) + ", " + dims + ", " + (keep ? "True" : "False") + ")");
            if (!keep)
                out.rank = all ? 0 : rank(0) < 0 ? -1 : rank(0) - int(axes->size());
        }
    } else {
        failNode("operator " + op + " is listed but not translated"); // kOperators and this chain disagree
    }

    std::vector<std::pair<std::string, std::string>> outputs;
    for (int k = 0; k < int(node.outputs.size()); ++k) {
        outputs.emplace_back(node.outputs[size_t(k)], "Tensor");
        if (!node.outputs[size_t(k)].empty() && !m_info.count(node.outputs[size_t(k)]))
            m_info[node.outputs[size_t(k)]] = out;
    }
    if (!sequence) { // single-result operators: later outputs (optional ones) are left undefined
        while (outputs.size() > 1)
            outputs.pop_back();
    }
    m_builder->addNode(modulePath(node), m_refs, code, outputs, sequence);
}

OnnxImport Importer::run(torch::jit::Module& out) {
    Model model;
    try {
        model = onnxfile::read(m_path);
    } catch (const std::exception& e) {
        fail(e.what());
    }
    OnnxImport result;
    try {
        m_opset = model.opsets.count("") ? int(model.opsets.at("")) : 0;
        if (m_opset == 0)
            fail("the model imports no standard ONNX opset");
        if (m_opset > kMaxOpset)
            fail("uses ONNX opset " + std::to_string(m_opset) + ", newer than the opsets DeformScope reads (" +
                 std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) +
                 "); export with opset_version=" + std::to_string(kMaxOpset) + " or lower");
        if (m_opset < kMinOpset)
            fail("uses ONNX opset " + std::to_string(m_opset) + ", older than the opsets DeformScope reads (" +
                 std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) + ")");
        result.format = "ONNX, opset " + std::to_string(m_opset) + ", IR version " + std::to_string(model.irVersion) +
                        (model.producer.empty() ? "" : ", written by " + model.producer);
        if (const auto it = model.metadata.find(kMetadataFile); it != model.metadata.end())
            result.metadata = it->second;

        m_builder = std::make_unique<ScriptBuilder>("onnx", out);
        for (const Value& v : model.valueInfo)
            readInfo(v);
        for (const Value& v : model.outputs)
            readInfo(v);
        std::set<std::string> initialisers;
        for (const onnxfile::Tensor& t : model.initializers) {
            if (t.name.empty())
                fail("an initialiser without a name");
            if (!initialisers.insert(t.name).second)
                fail("two initialisers named " + t.name);
            const at::Tensor value = toTensor(t, "initialiser " + t.name);
            m_consts[t.name] = value;
            m_builder->addTensor(t.name, t.name, value.to(m_device), value.is_floating_point());
            m_info[t.name] = {t.type, int(value.dim())};
        }
        if (model.sparseInitializers > 0)
            fail("sparse initialisers are not read");
        int inputs = 0;
        for (const Value& v : model.inputs) {
            if (initialisers.count(v.name))
                continue; // IR < 4: initialisers are listed as inputs too
            if (!v.tensor)
                fail("input " + v.name + " is not a tensor: DeformScope feeds images");
            readInfo(v);
            m_builder->addInput(v.name);
            if (inputs++ == 0 && v.rank == 4 && v.dims[2] > 0 && v.dims[3] > 0)
                result.declaredSize = std::array<int64_t, 2>{v.dims[2], v.dims[3]};
        }
        if (inputs == 0)
            fail("the graph has no inputs");
        for (const Node& node : model.nodes)
            translate(node);
        std::vector<std::string> returns;
        for (const Value& v : model.outputs) {
            if (!m_builder->defined(v.name))
                fail("the graph's output " + v.name + " is not computed by any node");
            returns.push_back(v.name);
        }
        if (returns.empty())
            fail("the graph has no outputs");
        m_builder->finish(returns);
    } catch (const ModelError&) {
        throw;
    } catch (const c10::Error& e) {
        fail(std::string("cannot translate the ONNX graph: ") + e.what_without_backtrace());
    } catch (const std::exception& e) {
        fail(std::string("cannot translate the ONNX graph: ") + e.what());
    }
    return result;
}

} // namespace

OnnxImport importOnnx(const std::string& path, const c10::Device& device, torch::jit::Module& module) {
    return Importer(path, device).run(module);
}

#endif

} // namespace deformscope::model
