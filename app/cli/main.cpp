// deformscope-cli: headless entry point.
#include "app/cli/commands.h"

#include "core/ops/registration.h"

#include <algorithm>
#include <csignal>
#include <exception>
#include <execinfo.h>
#include <iostream>
#include <sstream>
#include <unistd.h>
#include <string>
#include <vector>

namespace {

constexpr const char* kDescription =
    "deformscope-cli: what deformable convolutional networks look at, from the command line.\n"
    "The analyses of a node (sampling locations, effective receptive field, error-bounded saliency\n"
    "region, Deformable Kernels' resampled kernel) with their data files and figures, the model's\n"
    "layers and captured offsets, the operators' self-test and benchmarks. `deformscope-cli COMMAND --help`\n"
    "lists a command's options.";
constexpr const char* kFooter = "exit codes: 0 ok, 1 a check failed, 2 bad usage or input";

// A crash (a bug, never bad input) prints where it happened before the process
// dies with the signal, so a report from a machine we cannot reach says something.
void onCrash(int signal) {
    static const char message[] = "deformscope-cli: crashed (a bug: please report it with this backtrace)\n";
    (void)!write(STDERR_FILENO, message, sizeof message - 1);
    void* frames[64];
    backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
    std::signal(signal, SIG_DFL);
    std::raise(signal);
}

// The name of the subcommand a parse error belongs to ("" for the tool itself).
std::string commandOf(const CLI::App& app) {
    for (const CLI::App* sub : app.get_subcommands())
        return sub->get_name();
    return {};
}

// "The following argument was not expected: --fast" -> "unexpected argument '--fast'".
std::string describe(const CLI::ParseError& e) {
    if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
        std::string list = e.what();
        list = list.substr(list.find(':') + 1);
        std::istringstream words(list);
        std::string message;
        for (std::string w; words >> w;)
            message += (message.empty() ? "unexpected argument '" : ", '") + w + "'";
        return message;
    }
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) { // "--out: 1 required DIR missing"
        const std::string what = e.what();
        return "option " + what.substr(0, what.find(':')) + " needs a value (" + what + ")";
    }
    return e.what();
}

} // namespace

int main(int argc, char** argv) {
    using namespace deformscope::cli;
    for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
        std::signal(s, onCrash);

    CLI::App app(kDescription, "deformscope-cli");
    app.get_formatter()->label("Usage", "usage");
    app.get_formatter()->column_width(34);
    app.footer(kFooter);
    app.require_subcommand(1, 1);
    app.fallthrough(false);
    Commands commands;
    addSelfTest(app, commands);
    addModelCommands(app, commands);
    addAnalysisCommands(app, commands);
    addStudy(app, commands);
    addBenchAnalyses(app, commands);
    addBenchLoad(app, commands);
    addBench(app, commands);
#ifdef DEFORMSCOPE_WITH_SAMPLE_RECIPE
    addTrainSamples(app, commands);
#endif
    for (Command& c : commands)
        c.app->footer(kFooter);

    const std::vector<std::string> words(argv + 1, argv + argc);
    if (words.empty()) {
        std::cerr << app.help();
        return 2;
    }
    if (words[0] == "help") {
        std::cout << app.help();
        return 0;
    }
    if (words[0].rfind('-', 0) != 0 &&
        std::none_of(commands.begin(), commands.end(), [&](const Command& c) { return c.app->check_name(words[0]); })) {
        std::cerr << "deformscope-cli: unknown command '" << words[0] << "'\n\n" << app.help();
        return 2;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        const std::string command = commandOf(app);
        std::cout << (command.empty() ? app.help() : app.get_subcommand(command)->help("deformscope-cli"));
        return 0;
    } catch (const CLI::ParseError& e) {
        const std::string command = commandOf(app);
        std::cerr << "deformscope-cli" << (command.empty() ? "" : " " + command) << ": " << describe(e) << "\n"
                  << "(see deformscope-cli" << (command.empty() ? "" : " " + command) << " --help)\n";
        return 2;
    }
    Io io{std::cout, std::cerr, words};
    // Ctrl-C leaves an --out folder's earlier contents as they were (core/common/output_folder.h).
    deformscope::common::installInterruptCleanup();
    try {
        deformscope::ops::registerOperators();
        for (Command& c : commands)
            if (c.app->parsed())
                return c.run(io);
    } catch (const std::exception& e) {
        std::cerr << "deformscope-cli " << commandOf(app) << ": " << e.what() << "\n";
        return 1;
    }
    std::cerr << app.help();
    return 2;
}
