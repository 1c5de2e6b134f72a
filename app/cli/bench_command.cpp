#include "app/cli/commands.h"

#include "core/common/atomic_file.h"
#include "core/report/inputs.h"

#include "core/ops/checks/deform_kernel2d_checks.h"
#include "core/ops/checks/selftest.h"
#include "core/ops/deform_conv2d.h"
#include "core/ops/deform_kernel2d.h"

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

// What each command does, for its --help and the tool's list of commands.
constexpr const char* kBenchHelp =
    "forward and forward+backward times of deform_conv2d and of conv2d of the same shape (--ops dcn, the default); "
    "--ops dk: deform_kernel2d (local, global, with image offsets; scope SxS) next to a depthwise deform_conv2d "
    "and a depthwise conv2d of the same shape";


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

std::string geometryOf(const BenchShape& s) {
    return std::to_string(s.batch) + "," + std::to_string(s.in_channels) + "," + std::to_string(s.out_channels) +
           "," + std::to_string(s.size) + "x" + std::to_string(s.size) + "," + std::to_string(s.kernel) + "x" +
           std::to_string(s.kernel);
}

// deform_kernel2d (depthwise: C = the shape's input channels) in three variants —
// local kernel offsets, global kernel offsets, local kernel offsets + image
// offsets (DK with DCN) — next to a depthwise deform_conv2d (groups = C, image
// offsets, no mask) and a depthwise conv2d of the same shape.
void benchDeformKernel(const BenchShape& s, int reps, int64_t scope, const at::Device& dev, std::ostream& out,
                       std::ostringstream& json, bool& firstJson) {
    const int64_t C = s.in_channels;
    const int64_t k = s.kernel;
    const std::string geometry = std::to_string(s.batch) + "," + std::to_string(C) + "," + std::to_string(s.size) +
                                 "x" + std::to_string(s.size) + "," + std::to_string(k) + "x" + std::to_string(k) +
                                 "," + std::to_string(scope) + "x" + std::to_string(scope);
    ops::checks::DkCaseSpec spec;
    spec.batch = s.batch;
    spec.channels = C;
    spec.height = spec.width = s.size;
    spec.scope_h = spec.scope_w = scope;
    spec.params.kernel_h = spec.params.kernel_w = k;
    spec.params.pad_h = spec.params.pad_w = k / 2;
    spec.params.use_offset = true;
    spec.offset_scale = 2.0;
    spec.kernel_offset_scale = 0.5;
    const auto t = ops::checks::makeDkCase(spec, 4321, at::kFloat, dev);
    const ops::DeformKernel2dParams withOffsets = spec.params;
    ops::DeformKernel2dParams kernelOnly = spec.params;
    kernelOnly.use_offset = false;
    const at::Tensor globalOffsets = t.kernel_offset.mean({2, 3}, /*keepdim=*/true).contiguous();
    const at::Tensor grad = at::ones({s.batch, C, spec.outH(), spec.outW()}, t.input.options());

    auto timeDk = [&](const at::Tensor& kernelOffset, const ops::DeformKernel2dParams& p, bool backward) {
        return medianMs(dev, reps, [&] {
            ops::deformKernel2d(t.input, t.weight, kernelOffset, t.offset, t.bias, p);
            if (backward)
                ops::deformKernel2dBackward(grad, t.input, t.weight, kernelOffset, t.offset, t.bias, p);
        });
    };

    // The depthwise baselines read a kernel-sized weight.
    const at::Tensor weight = t.weight.narrow(2, (scope - k) / 2, k).narrow(3, (scope - k) / 2, k).contiguous();
    ops::DeformConv2dParams dcn;
    dcn.pad_h = dcn.pad_w = k / 2;
    dcn.groups = C;
    const at::Tensor noMask = at::empty({0}, t.input.options());
    auto timeDcn = [&](bool backward) {
        return medianMs(dev, reps, [&] {
            ops::deformConv2d(t.input, weight, t.offset, noMask, t.bias, dcn);
            if (backward)
                ops::deformConv2dBackward(grad, t.input, weight, t.offset, noMask, t.bias, dcn);
        });
    };
    auto timeConv = [&](bool backward) {
        return medianMs(dev, reps, [&] {
            at::conv2d(t.input, weight, t.bias, std::vector<int64_t>{1, 1}, std::vector<int64_t>{k / 2, k / 2},
                       std::vector<int64_t>{1, 1}, C);
            if (backward)
                at::convolution_backward(grad, t.input, weight, std::vector<int64_t>{C}, {1, 1}, {k / 2, k / 2},
                                         {1, 1}, false, {0, 0}, C, {true, true, true});
        });
    };

    struct Variant {
        const char* name;
        const at::Tensor* kernelOffset;
        const ops::DeformKernel2dParams* params;
    };
    const Variant variants[] = {{"local", &t.kernel_offset, &kernelOnly},
                                {"global", &globalOffsets, &kernelOnly},
                                {"local+dcn", &t.kernel_offset, &withOffsets}};
    for (int pass = 0; pass < 2; ++pass) {
        const bool backward = pass == 1;
        const double dcnMs = timeDcn(backward);
        const double convMs = timeConv(backward);
        for (const Variant& v : variants) {
            const double dkMs = timeDk(*v.kernelOffset, *v.params, backward);
            char row[320];
            std::snprintf(row, sizeof row, "| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f |\n", s.name.c_str(),
                          geometry.c_str(), v.name, backward ? "fwd+bwd" : "fwd", dkMs, dcnMs, convMs, dkMs / convMs);
            out << row << std::flush;
            json << (firstJson ? "" : ", ") << "{\"shape\": \"" << s.name << "\", \"variant\": \"" << v.name
                 << "\", \"scope\": " << scope << ", \"pass\": \"" << (backward ? "fwd+bwd" : "fwd")
                 << "\", \"dk_ms\": " << dkMs << ", \"deform_conv2d_depthwise_ms\": " << dcnMs
                 << ", \"conv2d_depthwise_ms\": " << convMs << "}";
            firstJson = false;
        }
    }
}

struct BenchInputs {
    std::string device = "cpu", jsonPath, shapes = "small,large", ops = "dcn";
    int64_t scope = 5;
    int repeat = 0;
    bool fastBackward = false;
};

int runBench(const BenchInputs& in, Io& io) {
    std::ostream& out = io.out;
    std::ostream& err = io.err;
    const std::string& jsonPath = in.jsonPath;
    const int64_t scope = in.scope;
    const int repeat = in.repeat;
    const bool fastBackward = in.fastBackward;
    const std::vector<std::string> names = split(in.shapes);
    const std::vector<std::string> opsWanted = split(in.ops);
    for (const std::string& op : opsWanted) {
        if (op != "dcn" && op != "dk") {
            err << "deformscope-cli bench: unknown op '" << op << "' (known: dcn, dk)\n";
            return 2;
        }
    }
    if (opsWanted.empty()) {
        err << "deformscope-cli bench: --ops needs at least one of dcn, dk\n";
        return 2;
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
    at::Device dev = at::kCPU;
    try {
        dev = report::resolveDevice(in.device);
    } catch (const report::UsageError& e) {
        err << "deformscope-cli bench: " << e.what() << "\n";
        return 2;
    }
    if (!jsonPath.empty()) {
        // Fail before the run, not after it: the file can be written (it is replaced at the end).
        try {
            common::writeFileAtomically(jsonPath, "{}\n");
        } catch (const std::exception& e) {
            err << "deformscope-cli bench: " << e.what() << "\n";
            return 2;
        }
    }
    ops::setBackwardMode(fastBackward ? ops::BackwardMode::Atomic : ops::BackwardMode::Deterministic);
    auto wanted = [&](const char* op) { return std::find(opsWanted.begin(), opsWanted.end(), op) != opsWanted.end(); };
    if (wanted("dk")) {
        for (const BenchShape& s : shapes) {
            if (scope < s.kernel) {
                err << "deformscope-cli bench: --scope " << scope << " is smaller than shape " << s.name
                    << "'s kernel " << s.kernel << "\n";
                return 2;
            }
        }
    }
    std::ostringstream json;
    json << "{\"device\": \"" << dev.str() << "\", \"threads\": " << at::get_num_threads() << ", \"backward\": \""
         << (fastBackward ? "atomic" : "deterministic") << "\"";
    bool firstJson = true;
    if (wanted("dcn")) {
        out << "deform_conv2d benchmark on " << dev.str() << ", " << at::get_num_threads() << " threads, float32, "
            << (fastBackward ? "atomic" : "deterministic") << " backward\n\n";
        out << "| shape | N,Cin,Cout,HxW,k | pass | ours ms | conv2d ms | ours/conv2d |\n";
        out << "|---|---|---|---:|---:|---:|\n";
        json << ", \"results\": [";

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

            const std::string geometry = geometryOf(s);
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
        json << "]";
    }
    if (wanted("dk")) {
        if (wanted("dcn"))
            out << "\n";
        out << "deform_kernel2d benchmark on " << dev.str() << ", " << at::get_num_threads() << " threads, float32, "
            << (fastBackward ? "atomic" : "deterministic") << " backward; depthwise (C = the shape's Cin), scope "
            << scope << "x" << scope << "; baselines: depthwise deform_conv2d (groups = C, image offsets, no mask) "
            << "and depthwise conv2d\n\n";
        out << "| shape | N,C,HxW,k,scope | DK variant | pass | DK ms | deform_conv2d dw ms | conv2d dw ms | DK/conv2d |\n";
        out << "|---|---|---|---|---:|---:|---:|---:|\n";
        json << ", \"dk_results\": [";
        firstJson = true;
        for (const BenchShape& s : shapes)
            benchDeformKernel(s, repeat > 0 ? repeat : s.repeat, scope, dev, out, json, firstJson);
        json << "]";
    }
    json << "}\n";
    if (!jsonPath.empty())
        common::writeFileAtomically(jsonPath, json.str());
    return 0;
}

} // namespace

void addBench(CLI::App& app, Commands& commands) {
    auto [sub, in] = addCommand<BenchInputs>(app, commands, "bench", kBenchHelp, runBench);
    addDevice(sub, in->device);
    sub->add_option("--shapes", in->shapes, "named shapes: tiny, small, large")->type_name("LIST");
    sub->add_option("--ops", in->ops, "dcn, dk or both")->type_name("LIST");
    sub->add_option("--scope", in->scope, "the Deformable Kernel scope side (--ops dk)")
        ->type_name("S")
        ->check([](const std::string& v) {
            int64_t n = 0;
            return CLI::detail::lexical_cast(v, n) && n > 0 && n <= 64 ? std::string()
                                                                       : "--scope must be a positive integer up to 64";
        });
    sub->add_option("--repeat", in->repeat, "timed runs per case (default: by shape)")
        ->type_name("N")
        ->check([](const std::string& v) {
            int n = 0;
            return CLI::detail::lexical_cast(v, n) && n > 0 ? std::string() : "--repeat must be a positive integer";
        });
    sub->add_flag("--fast-backward", in->fastBackward, "the atomic (non-deterministic) CUDA backward");
    sub->add_option("--json", in->jsonPath, "also write the results as JSON")->type_name("FILE");
}

} // namespace deformscope::cli
