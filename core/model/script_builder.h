// Builds the TorchScript module an imported model (.pt2, .onnx) becomes: source
// text, one statement per node of the imported graph, compiled into a module tree
// that mirrors the original model's, so the layers keep their names
// ("layer1.0.dcn") and capture, autograd and the samplers read the result like any
// TorchScript file.
//
// Tensors (weights, buffers, constants) become attributes of the submodule their
// dotted name points to. A node that ran inside a submodule is called through a
// method of each module on the way ("self.layer1.n12(...)" -> "self.layer1[0].n12"
// -> the call), so its operators sit in that submodule's scope. In a node's code,
// its i-th input is written ref(i) (a placeholder filled with the variable or the
// method's argument). Operators are written "ops_<namespace>.<name>(...)"
// ("ops_aten.conv2d", "ops_torchvision.deform_conv2d") and resolve to the
// registered operators.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
struct CompilationUnit;
} // namespace torch::jit

namespace deformscope::model {

class ScriptBuilder {
public:
    // `out` becomes a module of class __torch__.deformscope.<prefix>.Program.
    ScriptBuilder(std::string prefix, torch::jit::Module& out);
    ~ScriptBuilder();

    // The placeholder for a node's i-th input in its code.
    static std::string ref(size_t i);

    // A tensor attribute at its dotted name (parameter or buffer), bound to the graph
    // value `value` at the start of forward. A name that is not a Python identifier
    // part is made one.
    void addTensor(const std::string& value, const std::string& dottedName, const at::Tensor& t, bool parameter);
    // A forward argument for the graph value `value` (named after it when it is a
    // plain identifier), of TorchScript type `type`.
    void addInput(const std::string& value, const std::string& type = "Tensor");

    bool defined(const std::string& value) const { return m_types.count(value) > 0; }
    // The dotted name of the attribute bound to `value` ("" when it is not one).
    std::string attributeOf(const std::string& value) const;

    // One node: `code` is its statements (each line ending in "\n", indented by four
    // spaces) and ends with "    return <expression>\n"; its inputs are the graph
    // values `inputs` (written ref(0), ref(1), ...). Its outputs (value, type) are
    // bound to the expression's value, or, when `sequence`, to its items. `path`:
    // the dotted module path the node ran in ("" the top module).
    void addNode(const std::string& path, const std::vector<std::string>& inputs, const std::string& code,
                 const std::vector<std::pair<std::string, std::string>>& outputs, bool sequence);

    // Compiles the methods and forward, returning the values `returns`. Throws what
    // TorchScript's compiler throws.
    void finish(const std::vector<std::string>& returns);

private:
    std::string variable(const std::string& value);
    torch::jit::Module& moduleAt(const std::vector<std::string>& path);

    std::string m_prefix;
    std::shared_ptr<torch::jit::CompilationUnit> m_cu;
    torch::jit::Module& m_top;
    std::map<std::string, std::unique_ptr<torch::jit::Module>> m_modules; // dotted path -> submodule
    std::map<std::string, std::string> m_vars;                            // graph value -> source variable
    std::set<std::string> m_usedVars;
    std::map<std::string, std::string> m_types;     // graph value -> TorchScript type
    std::map<std::string, std::string> m_attribute; // graph value -> dotted attribute name
    std::string m_params;                           // forward's parameters after self
    std::string m_loads;                            // forward's attribute reads
    std::string m_forward;                          // forward's body
    std::map<std::string, std::string> m_methods;   // module path -> its methods' source
    size_t m_nodes = 0;
    int m_classes = 0;
};

// Python literals for generated source.
std::string pyString(const std::string& s);
std::string pyFloat(double d);
// "a.b.c" -> {"a", "b", "c"}.
std::vector<std::string> splitDotted(const std::string& s, char sep = '.');

} // namespace deformscope::model
