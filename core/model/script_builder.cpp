#include "core/model/script_builder.h"

#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/script.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace deformscope::model {

namespace {

// Resolves the operator namespaces the generated source calls ("ops_aten.conv2d",
// "ops_torchvision.deform_conv2d") and "torch" (torch.device) to builtin operators.
struct OpsResolver : torch::jit::Resolver {
    std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction&,
                                                           const torch::jit::SourceRange&) override {
        if (name == "torch")
            return std::make_shared<torch::jit::BuiltinModule>("aten");
        if (name.rfind("ops_", 0) == 0)
            return std::make_shared<torch::jit::BuiltinModule>(name.substr(4));
        return nullptr;
    }
    c10::TypePtr resolveType(const std::string&, const torch::jit::SourceRange&) override { return nullptr; }
};

constexpr char kRefOpen = '\x01';
constexpr char kRefClose = '\x02';

// `code` with each ref(i) replaced by names[i].
std::string render(const std::string& code, const std::vector<std::string>& names) {
    std::string out;
    for (size_t pos = 0; pos < code.size();) {
        if (code[pos] != kRefOpen) {
            out += code[pos++];
            continue;
        }
        const size_t end = code.find(kRefClose, pos);
        out += names.at(std::stoul(code.substr(pos + 1, end - pos - 1)));
        pos = end + 1;
    }
    return out;
}

std::string joined(const std::vector<std::string>& parts, size_t count, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < count && i < parts.size(); ++i)
        out += (i ? sep : "") + parts[i];
    return out;
}

// An attribute or submodule name TorchScript accepts: other characters become '_'.
std::vector<std::string> attributeNames(std::vector<std::string> parts) {
    for (std::string& p : parts)
        for (char& c : p)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
                c = '_';
    return parts;
}

bool isIdentifier(const std::string& s) {
    static const std::set<std::string> reserved{"self", "and", "as", "assert", "break", "class", "continue", "def",
                                                "del", "elif", "else", "except", "False", "finally", "for", "from",
                                                "global", "if", "import", "in", "is", "lambda", "None", "nonlocal",
                                                "not", "or", "pass", "raise", "return", "True", "try", "while",
                                                "with", "yield", "torch", "float", "int", "bool", "str", "len",
                                                "max", "min", "range", "List", "Tuple", "Optional", "Tensor"};
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])) || s.rfind("ops_", 0) == 0 || s[0] == '_' ||
        reserved.count(s))
        return false;
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

} // namespace

std::string pyString(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '\\' || c == '"')
            out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out + "\"";
}

std::string pyFloat(double d) {
    if (std::isinf(d))
        return d > 0 ? "float(\"inf\")" : "float(\"-inf\")";
    if (std::isnan(d))
        return "float(\"nan\")";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    std::string s = buf;
    if (s.find_first_of(".eE") == std::string::npos)
        s += ".0";
    return s;
}

std::vector<std::string> splitDotted(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            parts.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    parts.push_back(cur);
    return parts;
}

ScriptBuilder::ScriptBuilder(std::string prefix, torch::jit::Module& out)
    : m_prefix(std::move(prefix)), m_cu(std::make_shared<torch::jit::CompilationUnit>()), m_top(out) {
    m_top = torch::jit::Module("__torch__.deformscope." + m_prefix + ".Program", m_cu, true);
}

ScriptBuilder::~ScriptBuilder() = default;

std::string ScriptBuilder::ref(size_t i) { return kRefOpen + std::to_string(i) + kRefClose; }

torch::jit::Module& ScriptBuilder::moduleAt(const std::vector<std::string>& path) {
    torch::jit::Module* cur = &m_top;
    std::string dotted;
    for (const std::string& part : path) {
        dotted += (dotted.empty() ? "" : ".") + part;
        auto it = m_modules.find(dotted);
        if (it == m_modules.end()) {
            auto sub = std::make_unique<torch::jit::Module>(
                "__torch__.deformscope." + m_prefix + ".Module" + std::to_string(m_classes++), m_cu, true);
            cur->register_module(part, *sub);
            it = m_modules.emplace(dotted, std::move(sub)).first;
        }
        cur = it->second.get();
    }
    return *cur;
}

std::string ScriptBuilder::variable(const std::string& value) {
    auto it = m_vars.find(value);
    if (it != m_vars.end())
        return it->second;
    std::string base = "v_";
    for (char c : value)
        base += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    std::string name = base;
    for (int n = 2; m_usedVars.count(name); ++n)
        name = base + "_" + std::to_string(n);
    m_usedVars.insert(name);
    m_vars[value] = name;
    return name;
}

void ScriptBuilder::addTensor(const std::string& value, const std::string& dottedName, const at::Tensor& t,
                              bool parameter) {
    auto parts = attributeNames(splitDotted(dottedName));
    std::string leaf = parts.back();
    parts.pop_back();
    torch::jit::Module& m = moduleAt(parts);
    // Two names that read the same once made identifiers ("a/b", "a_b") stay two attributes.
    const std::string base = leaf;
    for (int n = 2; m.hasattr(leaf); ++n)
        leaf = base + "_" + std::to_string(n);
    if (parameter)
        m.register_parameter(leaf, t, false);
    else
        m.register_buffer(leaf, t);
    std::string access = "self";
    for (const std::string& part : parts)
        access = "getattr(" + access + ", " + pyString(part) + ")";
    access = "getattr(" + access + ", " + pyString(leaf) + ")";
    m_loads += "    " + variable(value) + " = " + access + "\n";
    m_types[value] = "Tensor";
    m_attribute[value] = dottedName;
}

std::string ScriptBuilder::attributeOf(const std::string& value) const {
    const auto it = m_attribute.find(value);
    return it == m_attribute.end() ? std::string() : it->second;
}

void ScriptBuilder::addInput(const std::string& value, const std::string& type) {
    // Named as in the file where it can be ("input.1", as torch.onnx names inputs, becomes input_1).
    std::string name;
    for (char c : value)
        name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (isIdentifier(name) && !m_usedVars.count(name)) {
        m_usedVars.insert(name);
        m_vars[value] = name;
    } else {
        name = variable(value);
    }
    m_params += ", " + name + ": " + type;
    m_types[value] = type;
}

void ScriptBuilder::addNode(const std::string& path, const std::vector<std::string>& inputs, const std::string& code,
                            const std::vector<std::pair<std::string, std::string>>& outputs, bool sequence) {
    const size_t index = m_nodes++;
    std::vector<std::string> vars, args;
    std::string params;
    for (size_t i = 0; i < inputs.size(); ++i) {
        vars.push_back(variable(inputs[i]));
        args.push_back("a" + std::to_string(i));
        params += ", " + args.back() + ": " + m_types.at(inputs[i]);
    }
    const std::string method = "n" + std::to_string(index);
    std::string expr;
    const bool oneLine = code.rfind("    return ", 0) == 0 && code.find('\n') == code.size() - 1;
    if (path.empty() && oneLine) {
        expr = render(code.substr(11, code.size() - 12), vars);
    } else {
        const auto parts = path.empty() ? std::vector<std::string>{} : attributeNames(splitDotted(path));
        const std::string passed = joined(args, args.size(), ", ");
        m_methods[joined(parts, parts.size(), ".")] += "def " + method + "(self" + params + "):\n" + render(code, args);
        // Each module on the way calls its child's method; forward calls the first.
        for (size_t depth = parts.size(); depth-- > 1;)
            m_methods[joined(parts, depth, ".")] += "def " + method + "(self" + params +
                                                    "):\n    return getattr(self, " + pyString(parts[depth]) + ")." +
                                                    method + "(" + passed + ")\n";
        expr = (parts.empty() ? std::string("self") : "getattr(self, " + pyString(parts[0]) + ")") + "." + method +
               "(" + joined(vars, vars.size(), ", ") + ")";
    }
    if (outputs.size() == 1 && !sequence) {
        m_forward += "    " + variable(outputs[0].first) + " = " + expr + "\n";
        m_types[outputs[0].first] = outputs[0].second;
        return;
    }
    const std::string tmp = "t" + std::to_string(index);
    m_forward += "    " + tmp + " = " + expr + "\n";
    for (size_t i = 0; i < outputs.size(); ++i) {
        if (outputs[i].first.empty())
            continue;
        m_forward += "    " + variable(outputs[i].first) + " = " + tmp + "[" + std::to_string(i) + "]\n";
        m_types[outputs[i].first] = outputs[i].second;
    }
}

void ScriptBuilder::finish(const std::vector<std::string>& returns) {
    std::vector<std::string> vars;
    for (const std::string& r : returns)
        vars.push_back(variable(r));
    const std::string ret = vars.size() == 1 ? vars[0] : "(" + joined(vars, vars.size(), ", ") + ")";
    const auto resolver = std::make_shared<OpsResolver>();
    // Deepest first: a method calls its child's of the same name.
    std::vector<std::pair<std::string, std::string>> ordered(m_methods.begin(), m_methods.end());
    std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
        const auto depth = [](const std::string& p) {
            return p.empty() ? 0 : 1 + std::count(p.begin(), p.end(), '.');
        };
        return depth(a.first) > depth(b.first);
    });
    for (const auto& [path, source] : ordered) {
        torch::jit::Module& m = path.empty() ? m_top : moduleAt(splitDotted(path));
        m.define(source, resolver);
    }
    m_top.define("def forward(self" + m_params + "):\n" + m_loads + m_forward + "    return " + ret + "\n", resolver);
    m_top.eval();
}

} // namespace deformscope::model
