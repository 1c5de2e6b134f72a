// Numeric checks of deform_conv2d (and, through deform_kernel2d_checks.h, of
// deform_kernel2d), run on any device: by `deformscope-cli
// selftest` (a fixed set, as a pass/fail table) and by the tests (over larger
// tables). Every function needs registerOperators() to have run; none throws
// for a failed comparison — it returns the error for the caller to judge.
#pragma once

#include "core/ops/checks/reference.h"

#include <c10/core/Device.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

namespace deformscope::ops::checks {

// Relative errors (see relativeError) of our op against the float64 reference:
// the forward and the five gradients (input, weight, offset, mask, bias).
struct ReferenceComparison {
    double forward = 0;
    std::array<double, 5> grads{};
    double worst() const;
};
ReferenceComparison compareWithReference(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                         const at::Device& device);

// Central finite differences in float64 of sum(out * R) with respect to up to
// `maxPerTensor` elements of each of the five arguments, against our backward.
// Returns the worst |fd - analytic| / (1 + |analytic|). Use OffsetKind::AwayFromKinks.
double finiteDifferenceError(const CaseSpec& spec, uint64_t seed, const at::Device& device, int64_t maxPerTensor = 64);

// Zero offsets and a unit mask against at::conv2d of the same geometry.
double zeroOffsetConvError(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device);

// Every tap shifted by the same integers (spec.shift_y, spec.shift_x) against
// at::conv2d of the correspondingly shifted, zero-padded input.
double integerShiftConvError(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype, const at::Device& device);

// A call with one bad argument, and a fragment its error message must contain.
struct BadInputCase {
    std::string name;
    std::string expectedMessage;
    std::function<void()> call;
};
std::vector<BadInputCase> badInputCases(const at::Device& device);

// Runs `call`; returns the c10::Error message (without backtrace), or "" if nothing was thrown.
std::string errorMessageOf(const std::function<void()>& call);

struct CheckResult {
    std::string name;
    std::string device;
    bool passed = false;
    double error = 0;     // measured error, where the check has one
    double tolerance = 0; // the bound it was held to
    std::string detail;
};

// The CPU, then every CUDA device the build and machine have.
std::vector<at::Device> availableDevices();

// Runs every check on every device (CUDA devices also against the CPU, and the
// deterministic backward twice), calling onResult as each finishes.
std::vector<CheckResult> runSelfTest(const std::vector<at::Device>& devices,
                                     const std::function<void(const CheckResult&)>& onResult = {});

} // namespace deformscope::ops::checks
