// deformscope-cli: headless entry point.
#include "app/cli/commands.h"

#include "core/ops/registration.h"

#include <csignal>
#include <exception>
#include <execinfo.h>
#include <iostream>
#include <unistd.h>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage = R"(usage: deformscope-cli COMMAND [options]

commands:
  selftest [--device cpu|cuda|all]
        numeric checks of the deformable convolution on every available device
        (CPU, and each CUDA GPU); prints a pass/fail table; exit 0 only if all pass
  info MODEL [--input-size H W] [--json] [--device cpu|cuda]
        the model's conv-like layers for one input size: kind (conv, dcn_v1, dcn_v2, pool,
        upsample), geometry, feature size, jump/start/receptive field, which layers feed each
  capture --model M --image I --layer NAME --out DIR [--device cpu|cuda]
        run the model on the image and write that layer's input.npy, output.npy, offset.npy
        and mask.npy (deformable layers) plus capture.json
  analyze --model M --image I --out DIR [--layer L] [--pixel x,y] [--what sampling,erf,saliency]
          [--response sum|channel:N|class:K] [--levels 3] [--reading bilinear|nearest] [--signed]
          [--epsilon 0.1] [--baseline zero|blur[:SIGMA]] [--object x0,y0,x1,y1 | --object-mask FILE]
          [--input-size H W] [--device cpu|cuda] [--no-figures]
        one node's sampling points, effective receptive field and error-bounded saliency region:
        DIR/result.json, erf.npy, saliency_mask.npy, sampling.csv and analysis.png/.svg/.pdf
        (--pixel in the original image's pixels, default its centre; layer default: the model's suggestion)
  compare --models A B C ... --image I --out DIR [the options of analyze]
        the same node in several models: one grid figure DIR/compare.png/.svg/.pdf (rows sampling,
        ERF, saliency; one column per model), DIR/compare.json and each model's data in DIR/<model>/
  erf-average --model M --images DIR --out DIR [--layer L] [--node fy,fx] [--limit N] [--batch B]
        the ERF of one node (default: the layer's centre) averaged over a folder of images
        (RepLKNet's protocol): DIR/erf_average.npy, result.json, erf_average.png/.svg/.pdf
  train-samples --out DIR [--variants regular,dcn_v1,dcn_v2,dk] [--steps N] [--batch B] [--size S] [--seed S]
        the sample models' recipe: generate the synthetic data, train each variant on the CPU,
        write DIR/<variant>.pt, DIR/training.json and sample images (sample_models/MODELS.md)
  bench [--device cpu|cuda] [--shapes small,large,tiny] [--ops dcn,dk] [--scope S] [--repeat N] [--fast-backward]
        [--json FILE]
        forward and forward+backward times of deform_conv2d and of conv2d of the same shape (--ops dcn,
        the default); --ops dk: deform_kernel2d (local, global, with image offsets; scope SxS, default 5)
        next to a depthwise deform_conv2d and a depthwise conv2d of the same shape
  bench-analyses --models A B ... [--sizes 256,512] [--clicks N] [--saliency-clicks N] [--device cpu|cuda]
        per-click times of the sampling trace, ERF and saliency search (medians; docs/benchmarks.md)
  help  this text

exit codes: 0 ok, 1 a check failed, 2 bad usage or input
)";

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

} // namespace

int main(int argc, char** argv) {
    for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
        std::signal(s, onCrash);
    if (argc < 2) {
        std::cerr << kUsage;
        return 2;
    }
    const std::string command = argv[1];
    const std::vector<std::string> args(argv + 2, argv + argc);
    if (command == "help" || command == "--help" || command == "-h") {
        std::cout << kUsage;
        return 0;
    }
    try {
        deformscope::ops::registerOperators();
        if (command == "selftest")
            return deformscope::cli::runSelfTest(args, std::cout, std::cerr);
        if (command == "info")
            return deformscope::cli::runInfo(args, std::cout, std::cerr);
        if (command == "capture")
            return deformscope::cli::runCapture(args, std::cout, std::cerr);
        if (command == "analyze")
            return deformscope::cli::runAnalyze(args, std::cout, std::cerr);
        if (command == "compare")
            return deformscope::cli::runCompare(args, std::cout, std::cerr);
        if (command == "erf-average")
            return deformscope::cli::runErfAverage(args, std::cout, std::cerr);
        if (command == "bench-analyses")
            return deformscope::cli::runBenchAnalyses(args, std::cout, std::cerr);
        if (command == "bench")
            return deformscope::cli::runBench(args, std::cout, std::cerr);
#ifdef DEFORMSCOPE_WITH_SAMPLE_RECIPE
        if (command == "train-samples")
            return deformscope::cli::runTrainSamples(args, std::cout, std::cerr);
#endif
    } catch (const std::exception& e) {
        std::cerr << "deformscope-cli " << command << ": " << e.what() << "\n";
        return 1;
    }
    std::cerr << "deformscope-cli: unknown command '" << command << "'\n\n" << kUsage;
    return 2;
}
