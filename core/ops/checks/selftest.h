// Numeric checks of deform_conv2d (and, through deform_kernel2d_checks.h, of
// deform_kernel2d), run on any device: by `deformscope-cli selftest` (a fixed
// set, as a pass/fail table) and by the tests (over larger tables). The checks
// themselves are written once for both operators (op_checks.h); this header
// holds deform_conv2d's cases and invariants and the self-test's rows. Every
// function needs registerOperators() to have run; none throws for a failed
// comparison — it returns the error for the caller to judge.
#pragma once

#include "core/ops/checks/reference.h"

#include <c10/core/Device.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

namespace deformscope::ops::checks {

// deform_conv2d on makeCase(spec, seed, dtype, device) against the float64
// reference (op_checks.h's compareWithReference, incoming gradient seed + 1).
ReferenceComparison compareWithReference(const CaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                         const at::Device& device);

// op_checks.h's finiteDifferenceError on the case in float64. Use OffsetKind::AwayFromKinks.
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

// "" when `bad` throws a c10::Error whose message contains the expected
// fragment; otherwise what went wrong.
std::string badInputProblem(const BadInputCase& bad);

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
// The CUDA devices among them.
std::vector<at::Device> cudaDevices();

// One self-test row: `run` returns the measured error (held to `tolerance`) or
// throws; it may describe the error's parts in `detail`.
struct NamedCheck {
    std::string name;
    double tolerance = 0;
    std::function<double(std::string& detail)> run;
};

// Rows any operator's self-test is made of. A comparison with the reference,
// held to `tolerance` by its worst part; given the argument names, its detail
// lists every part.
NamedCheck referenceCheck(std::string name, double tolerance, std::function<ReferenceComparison()> compare,
                          std::array<const char*, 5> describeWith = {});
// A measured error held to `tolerance`.
NamedCheck errorCheck(std::string name, double tolerance, std::function<double()> error);
// badInputProblem as a row: error 0 or 1, the problem as the detail.
NamedCheck badInputCheck(std::string name, BadInputCase bad);
// On CUDA: `makeArgs(dtype, device)` makes one case; float32 on `device` (and,
// for the detail, on the CPU) against float64 on the CPU, to the float32
// tolerance (summation orders differ, so CUDA != CPU bit for bit).
NamedCheck float32VsFloat64Check(std::string name, const OpUnderTest& op,
                                 std::function<OpArgs(at::ScalarType, const at::Device&)> makeArgs,
                                 const at::Device& device, uint64_t gradSeed);
// The deterministic backward twice, bit for bit; the atomic one against it.
NamedCheck deterministicBackwardCheck(std::string name, const OpUnderTest& op, std::function<OpArgs()> makeArgs,
                                      uint64_t gradSeed);
NamedCheck atomicBackwardCheck(std::string name, const OpUnderTest& op, std::function<OpArgs()> makeArgs,
                               uint64_t gradSeed);

// The deform_conv2d rows of `deformscope-cli selftest` for one device: the
// reference, finite differences, the invariants and the bad inputs everywhere;
// on CUDA also half/bfloat16, CUDA against float64 and the deterministic backward.
std::vector<NamedCheck> deformConv2dSelfChecks(const at::Device& device);

// Runs every check of every operator (deform_conv2d, deform_kernel2d, deform_roi_pool) on every
// device, calling onResult as each finishes.
std::vector<CheckResult> runSelfTest(const std::vector<at::Device>& devices,
                                     const std::function<void(const CheckResult&)>& onResult = {});

} // namespace deformscope::ops::checks
