// Defining TorchScript methods from C++ source text, with `torch.ops.<ns>.<op>`
// understood as Python's TorchScript understands it (the C++ compiler's own
// resolver maps only `torch.f` to aten::f). Used to build models in C++: the
// sample-model recipe and the self-test's small networks.
#pragma once

#include <string>

namespace torch::jit {
struct Module;
}

namespace deformscope::model {

// module.define(source) with the resolver above. Throws what define throws.
void defineScript(torch::jit::Module& module, const std::string& source);

} // namespace deformscope::model
