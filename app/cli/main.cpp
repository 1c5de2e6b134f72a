// deformscope-cli: headless entry point.
#include "app/cli/commands.h"

#include "core/ops/registration.h"

#include <exception>
#include <iostream>
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
  train-samples --out DIR [--variants regular,dcn_v1,dcn_v2] [--steps N] [--batch B] [--size S] [--seed S]
        the sample models' recipe: generate the synthetic data, train each variant on the CPU,
        write DIR/<variant>.pt, DIR/training.json and sample images (sample_models/MODELS.md)
  bench [--device cpu|cuda] [--shapes small,large,tiny] [--repeat N] [--fast-backward] [--json FILE]
        forward and forward+backward times of deform_conv2d and of conv2d of the same shape
  help  this text

exit codes: 0 ok, 1 a check failed, 2 bad usage or input
)";

} // namespace

int main(int argc, char** argv) {
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
