// The CLI's commands. Each takes its arguments (after the command name) and
// returns the process exit code: 0 ok, 1 a check or run failed, 2 bad usage.
// Output goes to `out`, diagnostics to `err`.
#pragma once

#include <c10/core/Device.h>

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace deformscope::cli {

// The device named on the command line, if this build and machine have it;
// otherwise says which devices there are (on `err`, as `command`) and returns none.
std::optional<c10::Device> resolveDevice(const std::string& name, std::ostream& err, const char* command);

int runSelfTest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int runInfo(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int runCapture(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int runAnalyze(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int runCompare(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int runErfAverage(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int runBenchAnalyses(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int runBench(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
#ifdef DEFORMSCOPE_WITH_SAMPLE_RECIPE
int runTrainSamples(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
#endif

} // namespace deformscope::cli
