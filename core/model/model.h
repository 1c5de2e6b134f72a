// A TorchScript model loaded for analysis.
//
// LoadedModel::load() registers the project's operators, loads the file on a
// device and reads its metadata; every failure a user can cause (missing file,
// not TorchScript, truncated archive, an operator nobody registered, a forward
// that takes several inputs) throws ModelError with "<path>: <what is wrong>".
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
    c10::Device device() const;
    const ModelMetadata& metadata() const;
    // Replaces the metadata (e.g. input settings the user gave for a model without
    // any); shared by every copy of this LoadedModel.
    void setMetadata(const ModelMetadata& metadata);
    // Things the user should be told once: defaults used for missing metadata, etc.
    const std::vector<std::string>& notes() const;

    // Runs forward on `input` ([N, 3, H, W], moved to the model's device) and
    // returns the first tensor output; when forward returns a tuple, list or dict,
    // `note` (if given) says which element was taken. Throws ModelError.
    at::Tensor forward(const at::Tensor& input, std::string* note = nullptr) const;

    torch::jit::Module& module() const;
    // Custom deformable operators declared for this model (op_adapter.h).
    const std::vector<OpAdapter>& adapters() const;

private:
    struct Impl;
    std::shared_ptr<Impl> d;
};

} // namespace deformscope::model
