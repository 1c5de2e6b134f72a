// The analyses' numeric checks for `deformscope-cli selftest` (no Qt): the ERF
// oracle on every device, determinism, and on CUDA devices equality with the CPU.
#pragma once

#include "core/ops/checks/selftest.h"

#include <functional>
#include <vector>

namespace deformscope::analysis {

std::vector<ops::checks::CheckResult> runAnalysisSelfTest(
    const std::vector<at::Device>& devices, const std::function<void(const ops::checks::CheckResult&)>& report = {});

} // namespace deformscope::analysis
