#include "core/model/script.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/resolver.h>

#include <memory>

namespace deformscope::model {

namespace {

// The C++ TorchScript compiler's own resolver maps `torch.f` to aten::f only.
// Ours also understands `torch.ops.<namespace>.<op>`, as Python's does, so the
// source below reads like (and compiles to the same graph as) Python TorchScript.
struct OpsNamespaces : torch::jit::SugaredValue {
    std::string kind() const override { return "torch.ops"; }
    std::shared_ptr<torch::jit::SugaredValue> attr(const torch::jit::SourceRange&, torch::jit::GraphFunction&,
                                                   const std::string& field) override {
        return std::make_shared<torch::jit::BuiltinModule>(field);
    }
};

struct TorchModule : torch::jit::BuiltinModule {
    TorchModule() : BuiltinModule("aten") {}
    std::shared_ptr<torch::jit::SugaredValue> attr(const torch::jit::SourceRange& loc, torch::jit::GraphFunction& m,
                                                   const std::string& field) override {
        if (field == "ops")
            return std::make_shared<OpsNamespaces>();
        return BuiltinModule::attr(loc, m, field);
    }
};

struct Resolver : torch::jit::Resolver {
    std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction&,
                                                           const torch::jit::SourceRange&) override {
        if (name == "torch")
            return std::make_shared<TorchModule>();
        return nullptr;
    }
    c10::TypePtr resolveType(const std::string&, const torch::jit::SourceRange&) override { return nullptr; }
};

} // namespace

void defineScript(torch::jit::Module& module, const std::string& source) {
    static const auto resolver = std::make_shared<Resolver>();
    module.define(source, resolver);
}

} // namespace deformscope::model
