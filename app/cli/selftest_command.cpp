#include "app/cli/commands.h"

#include "core/analysis/checks.h"
#include "core/ops/checks/selftest.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <ostream>

namespace deformscope::cli {

namespace {

// What each command does, for its --help and the tool's list of commands.
constexpr const char* kSelftestHelp =
    "numeric checks of the deformable convolution, Deformable Kernels and the analyses on every available device "
    "(CPU, and each CUDA GPU); prints a pass/fail table; exit 0 only if all pass";


struct SelfTestInputs {
    std::string device = "all";
};

int runSelfTest(const SelfTestInputs& in, Io& io) {
    const std::string& which = in.device;
    std::ostream& out = io.out;
    std::ostream& err = io.err;
    std::vector<at::Device> devices;
    for (const at::Device& d : ops::checks::availableDevices())
        if (which == "all" || (which == "cpu" && d.is_cpu()) || (which == "cuda" && d.is_cuda()))
            devices.push_back(d);
    if (devices.empty()) {
        err << "deformscope-cli selftest: no CUDA device available"
#ifndef DEFORMSCOPE_WITH_CUDA
            << " (this build has no CUDA kernels)"
#endif
            << "\n";
        return 2;
    }

    out << "deform_conv2d and analyses self-test on";
    for (const at::Device& d : devices)
        out << ' ' << d.str();
#ifndef DEFORMSCOPE_WITH_CUDA
    out << " (built without CUDA)";
#endif
    out << "\n\n";
    char line[512];
    std::snprintf(line, sizeof line, "%-6s %-8s %-10s %-9s %s\n", "result", "device", "error", "bound", "check");
    out << line << std::flush;
    int failed = 0;
    const auto print = [&](const ops::checks::CheckResult& r) {
        std::snprintf(line, sizeof line, "%-6s %-8s %-10.2e %-9.0e %s\n", r.passed ? "PASS" : "FAIL", r.device.c_str(),
                      r.error, r.tolerance, r.name.c_str());
        out << line;
        if (!r.detail.empty())
            out << "                                    " << r.detail << "\n";
        out << std::flush;
        failed += r.passed ? 0 : 1;
    };
    const auto results = ops::checks::runSelfTest(devices, print);
    const auto analyses = analysis::runAnalysisSelfTest(devices, print);
    out << "\n" << (results.size() + analyses.size() - failed) << " passed, " << failed << " failed\n";
    return failed == 0 ? 0 : 1;
}

} // namespace

void addSelfTest(CLI::App& app, Commands& commands) {
    auto [sub, in] = addCommand<SelfTestInputs>(app, commands, "selftest", kSelftestHelp, runSelfTest);
    sub->add_option("--device", in->device, "cpu, cuda or all")->check([](const std::string& v) {
        return v == "cpu" || v == "cuda" || v == "all" ? std::string() : "--device must be cpu, cuda or all, got '" + v + "'";
    });
}

} // namespace deformscope::cli
