#include "app/cli/commands.h"

#include "core/ops/checks/selftest.h"

#include <ostream>

namespace deformscope::cli {

std::optional<c10::Device> resolveDevice(const std::string& name, std::ostream& err, const char* command) {
    // Only devices this build has kernels for and this machine has: "cpu", "cuda" (the first GPU) or "cuda:N".
    const std::vector<at::Device> devices = ops::checks::availableDevices();
    for (const at::Device& d : devices)
        if ((name == "cuda" && d.is_cuda()) || d.str() == name)
            return d;
    err << "deformscope-cli " << command << ": device '" << name << "' is not available (have:";
    for (const at::Device& d : devices)
        err << ' ' << d.str();
    err << ")\n";
    return std::nullopt;
}

} // namespace deformscope::cli
