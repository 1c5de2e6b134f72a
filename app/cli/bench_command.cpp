#include "app/cli/commands.h"

#include "core/ops/checks/selftest.h"
#include "core/ops/deform_conv2d.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <ostream>
#include <sstream>

#ifdef DEFORMSCOPE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace deformscope::cli {
namespace {

// Named shapes; tools/bench_torchvision.py uses the same names and numbers.
struct BenchShape {
    std::string name;
    int64_t batch, in_channels, out_channels, size, kernel;
    int repeat;
};

const std::vector<BenchShape>& benchShapes() {
    static const std::vector<BenchShape> shapes = {
        {"tiny", 2, 8, 8, 16, 3, 5},
        {"small", 1, 64, 64, 64, 3, 5},
        {"large", 8, 256, 256, 64, 3, 3},
    };
    return shapes;
}

void synchronize(const at::Device& d) {
#ifdef DEFORMSCOPE_WITH_CUDA
    if (d.is_cuda())
        at::cuda::getCurrentCUDAStream(d.index()).synchronize();
#else
    (void)d;
#endif
}

// Median wall time in milliseconds of `repeat` runs after one warm-up.
double medianMs(const at::Device& d, int repeat, const std::function<void()>& f) {
    f();
    synchronize(d);
    std::vector<double> ms;
    for (int i = 0; i < repeat; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        synchronize(d);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> parts;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');)
        if (!item.empty())
            parts.push_back(item);
    return parts;
}

} // namespace

int runBench(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    std::string device = "cpu", jsonPath;
    std::vector<std::string> names = {"small", "large"};
    int repeat = 0;
    bool fastBackward = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const bool hasValue = i + 1 < args.size();
        if (args[i] == "--device" && hasValue) {
            device = args[++i];
        } else if (args[i] == "--shapes" && hasValue) {
            names = split(args[++i]);
        } else if (args[i] == "--repeat" && hasValue) {
            try {
                repeat = std::stoi(args[++i]);
            } catch (const std::exception&) {
                repeat = -1;
            }
            if (repeat <= 0) {
                err << "deformscope-cli bench: --repeat must be a positive integer\n";
                return 2;
            }
        } else if (args[i] == "--json" && hasValue) {
            jsonPath = args[++i];
        } else if (args[i] == "--fast-backward") {
            fastBackward = true;
        } else {
            err << "deformscope-cli bench: unexpected argument '" << args[i] << "'\n";
            return 2;
        }
    }
    std::vector<BenchShape> shapes;
    for (const std::string& n : names) {
        auto it = std::find_if(benchShapes().begin(), benchShapes().end(), [&](const BenchShape& s) { return s.name == n; });
        if (it == benchShapes().end()) {
            err << "deformscope-cli bench: unknown shape '" << n << "' (known: tiny, small, large)\n";
            return 2;
        }
        shapes.push_back(*it);
    }
    const std::optional<at::Device> resolved = resolveDevice(device, err, "bench");
    if (!resolved)
        return 2;
    const at::Device dev = *resolved;
    ops::setBackwardMode(fastBackward ? ops::BackwardMode::Atomic : ops::BackwardMode::Deterministic);

    out << "deform_conv2d benchmark on " << dev.str() << ", " << at::get_num_threads() << " threads, float32, "
        << (fastBackward ? "atomic" : "deterministic") << " backward\n\n";
    out << "| shape | N,Cin,Cout,HxW,k | pass | ours ms | conv2d ms | ours/conv2d |\n";
    out << "|---|---|---|---:|---:|---:|\n";
    std::ostringstream json;
    json << "{\"device\": \"" << dev.str() << "\", \"threads\": " << at::get_num_threads() << ", \"backward\": \""
         << (fastBackward ? "atomic" : "deterministic") << "\", \"results\": [";
    bool firstJson = true;

    for (const BenchShape& s : shapes) {
        const int reps = repeat > 0 ? repeat : s.repeat;
        ops::checks::CaseSpec spec;
        spec.batch = s.batch;
        spec.channels = s.in_channels;
        spec.out_channels = s.out_channels;
        spec.height = spec.width = s.size;
        spec.kernel_h = spec.kernel_w = s.kernel;
        spec.params.pad_h = spec.params.pad_w = s.kernel / 2;
        spec.params.use_mask = true;
        spec.offset_scale = 2.0;
        const auto t = ops::checks::makeCase(spec, 1234, at::kFloat, dev);
        const auto& p = spec.params;
        const at::Tensor grad = at::ones({s.batch, s.out_channels, spec.outH(), spec.outW()}, t.input.options());

        const double oursFwd = medianMs(dev, reps, [&] { ops::deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, p); });
        const double oursFwdBwd = medianMs(dev, reps, [&] {
            ops::deformConv2d(t.input, t.weight, t.offset, t.mask, t.bias, p);
            ops::deformConv2dBackward(grad, t.input, t.weight, t.offset, t.mask, t.bias, p);
        });
        auto conv = [&] {
            return at::conv2d(t.input, t.weight, t.bias, std::vector<int64_t>{p.stride_h, p.stride_w},
                              std::vector<int64_t>{p.pad_h, p.pad_w}, std::vector<int64_t>{p.dilation_h, p.dilation_w},
                              p.groups);
        };
        const double convFwd = medianMs(dev, reps, [&] { conv(); });
        const double convFwdBwd = medianMs(dev, reps, [&] {
            conv();
            at::convolution_backward(grad, t.input, t.weight, std::vector<int64_t>{s.out_channels},
                                     {p.stride_h, p.stride_w}, {p.pad_h, p.pad_w}, {p.dilation_h, p.dilation_w}, false,
                                     {0, 0}, p.groups, {true, true, true});
        });

        const std::string geometry = std::to_string(s.batch) + "," + std::to_string(s.in_channels) + "," +
                                     std::to_string(s.out_channels) + "," + std::to_string(s.size) + "x" +
                                     std::to_string(s.size) + "," + std::to_string(s.kernel) + "x" +
                                     std::to_string(s.kernel);
        char row[256];
        for (int pass = 0; pass < 2; ++pass) {
            const double ours = pass ? oursFwdBwd : oursFwd;
            const double cv = pass ? convFwdBwd : convFwd;
            std::snprintf(row, sizeof row, "| %s | %s | %s | %.2f | %.2f | %.2f |\n", s.name.c_str(), geometry.c_str(),
                          pass ? "fwd+bwd" : "fwd", ours, cv, ours / cv);
            out << row << std::flush;
            json << (firstJson ? "" : ", ") << "{\"shape\": \"" << s.name << "\", \"pass\": \""
                 << (pass ? "fwd+bwd" : "fwd") << "\", \"ours_ms\": " << ours << ", \"conv2d_ms\": " << cv << "}";
            firstJson = false;
        }
    }
    json << "]}\n";
    if (!jsonPath.empty()) {
        std::ofstream f(jsonPath);
        f << json.str();
        if (!f) {
            err << "deformscope-cli bench: cannot write " << jsonPath << "\n";
            return 1;
        }
    }
    return 0;
}

} // namespace deformscope::cli
