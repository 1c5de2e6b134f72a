// The commands of deformscope-cli on CLI11: each command file adds its
// subcommand to the application with typed options (their ranges checked by
// the parser or, for analysis settings, by common::AnalysisRequest::validate)
// and says what runs once the command line is parsed. Thin: the work is in core/.
// Exit codes: 0 ok, 1 a check or run failed, 2 bad usage or input.
#pragma once

#include "core/common/output_folder.h"

#include "core/common/request.h"

#include <CLI/CLI.hpp>
#include <c10/core/Device.h>

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace deformscope::cli {

// Where a command writes, and the words it was given (for records such as training.json).
struct Io {
    std::ostream& out;
    std::ostream& err;
    std::vector<std::string> words; // the command line after the program name
};

// A subcommand and what it runs once it has been chosen and parsed; `run`
// returns the exit code.
struct Command {
    CLI::App* app = nullptr;
    std::function<int(Io&)> run;
};
using Commands = std::vector<Command>;

// Adds subcommand `name` with `description`; its options fill an `Inputs`
// (kept alive with the command) and `run(inputs, io)` runs it. Returns the
// subcommand and the inputs, for the caller to add the options.
template <typename Inputs>
std::pair<CLI::App*, Inputs*> addCommand(CLI::App& app, Commands& commands, const std::string& name,
                                         const std::string& description, int (*run)(const Inputs&, Io&)) {
    CLI::App* sub = app.add_subcommand(name, description);
    auto inputs = std::make_shared<Inputs>();
    commands.push_back({sub, [inputs, run](Io& io) { return run(*inputs, io); }});
    return {sub, inputs.get()};
}

// The options most commands share: a required file or folder (`--model M`, ...)
// and the device (cpu, cuda or cuda:N, resolved by report::resolveDevice).
CLI::Option* addRequired(CLI::App* sub, const std::string& option, std::string& target, const std::string& valueName,
                         const std::string& help);
CLI::Option* addDevice(CLI::App* sub, std::string& target);

void addSelfTest(CLI::App& app, Commands& commands);
void addModelCommands(CLI::App& app, Commands& commands);    // info, capture
void addAnalysisCommands(CLI::App& app, Commands& commands); // analyze, compare, erf-average
void addBenchAnalyses(CLI::App& app, Commands& commands);    // bench-analyses
void addBenchLoad(CLI::App& app, Commands& commands);        // bench-load
void addBench(CLI::App& app, Commands& commands);            // bench (the operators)
#ifdef DEFORMSCOPE_WITH_SAMPLE_RECIPE
void addTrainSamples(CLI::App& app, Commands& commands);     // train-samples
#endif

// --out DIR as one unit (core/common/output_folder.h) for this command line: the command
// writes into folder->path() and calls commit() once everything is written. UsageError when
// another run holds DIR or it cannot be written.
std::unique_ptr<common::OutputFolder> outputFolder(const std::string& out, const Io& io);

// A CLI11 check: a whole number ≥ `least`, else "<option> must be a whole number ≥ <least>".
std::function<std::string(const std::string&)> wholeAtLeast(int64_t least, const std::string& option);

// Runs `body` and turns what it throws into an exit code and one message line
// "deformscope-cli <command>: <message>" per problem: report::UsageError,
// model::ModelError and analysis::AnalysisError are the user's to fix (2);
// anything else is a failure (1).
int guarded(const std::string& command, std::ostream& err, const std::function<int()>& body);

// The analysis request's options (common::requestFields) on a subcommand.
// `only` names the options to add (all of them when empty). Keep it alive
// until the command has run: the parser writes into it.
class RequestOptions {
public:
    RequestOptions(CLI::App& app, const std::vector<std::string>& only = {});
    // The request the given options describe, over `base`. Throws
    // report::UsageError listing every problem, one per line.
    common::AnalysisRequest request(common::AnalysisRequest base = {}) const;

private:
    struct Bound {
        const common::RequestField* field = nullptr;
        CLI::Option* option = nullptr;
        std::vector<std::string> words;
        bool flag = false;
    };
    std::vector<std::unique_ptr<Bound>> m_bound;
};

// `option` "a,b,c" as whole numbers ≥ `least`; UsageError "<option> '<text>': expected ..." otherwise.
std::vector<int64_t> wholeNumbers(const std::string& option, const std::string& text, int64_t least);

// "--shard K/N" -> {K, N} (1 ≤ K ≤ N); {1, 1} for "". UsageError otherwise. A shard of a
// sorted list is every N-th item from the K-th, the same split on every machine.
std::pair<int64_t, int64_t> parseShard(const std::string& text);

// The devices a dataset command's workers run on (one worker per device): `list`
// ("cuda:0,cuda:1", "cpu,cpu", ...) when given; else every CUDA device when `device`
// is "cuda" without an index; else `device` alone. UsageError for a device this build
// or machine lacks.
std::vector<c10::Device> workerDevices(const std::string& list, const common::DeviceSpec& device);

// The --shard K/N output folders `merge` is given. add() checks a part's result.json
// against the first folder's: the same values of `sameKeys` ("... differs from <first>'s:
// not parts of one <what>"), a part of the same N, each K once (whole runs, 1/1, may
// repeat when wholeRunsAdd: erf-average runs over different folders add up);
// requireComplete() then names the parts missing. UsageError for each problem.
class ShardParts {
public:
    explicit ShardParts(bool wholeRunsAdd) : m_wholeRunsAdd(wholeRunsAdd) {}
    void add(const std::string& dir, const std::string& jsonPath, const nlohmann::ordered_json& doc,
             const nlohmann::ordered_json& first, const std::string& firstDir,
             const std::vector<const char*>& sameKeys, const std::string& what);
    void requireComplete() const;

private:
    bool m_wholeRunsAdd;
    int64_t m_count = 0;
    std::map<int64_t, std::string> m_parts; // index -> folder
};

void addStudy(CLI::App& app, Commands& commands); // study (merge combines its shards too)
// `merge` of study parts (study_command.cpp): the folders' result.json have format deformscope-study/1.
int mergeStudy(const std::vector<std::string>& inputs, const std::string& out, bool noFigures, Io& io);

} // namespace deformscope::cli
