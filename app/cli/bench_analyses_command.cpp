// bench-analyses: per-click times of the analyses on a model at given input
// sizes (docs/benchmarks.md): the captured forward once, then several clicks
// (sampling trace, ERF, saliency), reported as medians. Synthetic input: a
// fixed-seed random image.
#include "app/cli/commands.h"

#include "core/analysis/analysis.h"
#include "core/common/atomic_file.h"
#include "core/common/json_file.h"
#include "core/model/capture.h"
#include "core/model/model.h"
#include "core/report/inputs.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <ostream>

namespace deformscope::cli {

namespace {

// What each command does, for its --help and the tool's list of commands.
constexpr const char* kBenchAnalysesHelp =
    "per-click times of the sampling trace, ERF and saliency search (medians; docs/benchmarks.md)";


using common::Json;
using report::UsageError;

struct BenchAnalysesInputs {
    std::vector<std::string> models;
    std::string sizes = "256,512", json;
    int64_t clicks = 5, saliencyClicks = 1;
    std::unique_ptr<RequestOptions> request; // --layer, --levels, --epsilon, --device
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int runBenchAnalyses(const BenchAnalysesInputs& in, Io& io) {
    return guarded("bench-analyses", io.err, [&]() -> int {
        const common::AnalysisRequest rq = in.request->request();
        const std::vector<int64_t> sizes = wholeNumbers("--sizes", in.sizes, 1);
        const at::Device device = report::resolveDevice(rq.device);
        analysis::SaliencyOptions salOptions = report::saliencyOptions(rq); // batch by device, as analyze does
        if (!in.json.empty()) // fail before the run, not after it
            common::writeFileAtomically(in.json, "[]\n");
        auto sync = [&]() {
            if (device.is_cuda())
                at::empty({1}, at::TensorOptions().device(device)).cpu(); // waits for the stream
        };
        std::ostream& out = io.out;
        Json rows = Json::array();
        out << "| model | input | forward ms | sampling ms | ERF ms | saliency s | saliency forwards | saliency area | "
               "saliency error |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
        for (const std::string& path : in.models) {
            const model::LoadedModel m = model::LoadedModel::load(path, device);
            for (int64_t size : sizes) {
                auto gen = at::detail::createCPUGenerator(1234);
                // A model with several input frames gets them side by side (one canvas).
                const at::Tensor x = at::randn({1, 3, size, size * m.inputCount()}, gen);
                // Warm-up, then the timed forward (the cached forward every click of this image uses).
                { analysis::AnalysisSession warm(m, x); }
                sync();
                const auto t0 = std::chrono::steady_clock::now();
                analysis::AnalysisSession s(m, x);
                sync();
                const double forward = secondsSince(t0);
                const std::string layer = rq.layer.empty() ? report::defaultLayer(m, s.graph()) : rq.layer;
                std::vector<double> tSampling, tErf, tSal, fwd, area, errs;
                for (int64_t c = 0; c < in.clicks + 1; ++c) {
                    // Clicks spread over the image (the first one is a warm-up).
                    const double fx = double(size) * (0.2 + 0.6 * double(c % 4) / 3), fy = double(size) * (0.3 + 0.1 * double(c % 5));
                    const analysis::Node node = s.nodeAt(layer, fx, fy);
                    auto t = std::chrono::steady_clock::now();
                    analysis::SamplingOptions so;
                    so.levels = rq.levels;
                    const auto trace = s.sampling(node, so);
                    sync();
                    const double ts = secondsSince(t);
                    t = std::chrono::steady_clock::now();
                    const auto erf = s.erf(node);
                    sync();
                    const double te = secondsSince(t);
                    if (c > 0) {
                        tSampling.push_back(ts);
                        tErf.push_back(te);
                    }
                    if (c > 0 && c <= in.saliencyClicks) {
                        const auto sal = s.saliency(node, salOptions);
                        tSal.push_back(sal.seconds);
                        fwd.push_back(double(sal.forwards));
                        area.push_back(sal.areaFraction);
                        errs.push_back(sal.error);
                    }
                }
                const std::string name = report::stemOf(path);
                out << "| " << name << " | " << size << "x" << size << " | " << forward * 1e3 << " | "
                    << median(tSampling) * 1e3 << " | " << median(tErf) * 1e3 << " | ";
                if (tSal.empty())
                    out << "- | - | - | - |\n";
                else
                    out << median(tSal) << " | " << median(fwd) << " | " << median(area) << " | " << median(errs)
                        << " |\n";
                out.flush();
                rows.push_back(Json::object({{"model", name},
                                             {"size", size},
                                             {"device", device.str()},
                                             {"layer", layer},
                                             {"forward_ms", forward * 1e3},
                                             {"sampling_ms", median(tSampling) * 1e3},
                                             {"erf_ms", median(tErf) * 1e3},
                                             {"saliency_s", tSal.empty() ? Json() : Json(median(tSal))},
                                             {"saliency_forwards", fwd.empty() ? Json() : Json(median(fwd))},
                                             {"saliency_area", area.empty() ? Json() : Json(median(area))},
                                             {"clicks", in.clicks}}));
            }
        }
        if (!in.json.empty())
            common::writeJsonFile(in.json, rows);
        return 0;
    });
}

constexpr const char* kBenchLoadHelp =
    "what reading samplers adds to loading a model: load + layer graph with samplers read and without (medians; "
    "docs/benchmarks.md)";

struct BenchLoadInputs {
    std::vector<std::string> models;
    std::string sizes = "256";
    int64_t repeats = 7;
};

int runBenchLoad(const BenchLoadInputs& in, Io& io) {
    return guarded("bench-load", io.err, [&]() -> int {
        const std::vector<int64_t> sizes = wholeNumbers("--sizes", in.sizes, 1);
        std::ostream& out = io.out;
        out << "| model | input | layers | samplers | load + graph ms | of which reading samplers ms | share | "
               "samplers not read ms | reading samplers, tensors kept ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
        for (const std::string& path : in.models)
            for (int64_t size : sizes) {
                int64_t layers = 0, samplers = 0;
                std::vector<double> reading, kept;
                // What `info` does: load the file, one forward of zeros with the capture.
                auto once = [&](bool read) {
                    const auto t0 = std::chrono::steady_clock::now();
                    const model::LoadedModel m = model::LoadedModel::load(path);
                    model::CaptureOptions options;
                    options.keepTensors = false;
                    options.readSamplers = read;
                    const model::Capture c = model::captureForward(m, at::zeros({1, 3, size, size * m.inputCount()}), options);
                    const double t = secondsSince(t0);
                    if (read) {
                        reading.push_back(c.samplerSeconds);
                        layers = int64_t(c.graph.layers().size());
                        samplers = 0;
                        for (const model::Layer& l : c.graph.layers())
                            samplers += l.dataDependentReads() && (l.op.rfind("torchvision::", 0) != 0 &&
                                                                   l.op.rfind("deformscope::", 0) != 0);
                    }
                    return t;
                };
                once(true);
                once(false);
                std::vector<double> with, without;
                for (int64_t r = 0; r < in.repeats; ++r) { // interleaved, so drift hits both alike
                    with.push_back(once(true));
                    without.push_back(once(false));
                    // An analysis session keeps the tensors: a recognised hand-written DCN's offsets are built too.
                    const model::LoadedModel m = model::LoadedModel::load(path);
                    kept.push_back(model::captureForward(m, at::zeros({1, 3, size, size * m.inputCount()})).samplerSeconds);
                }
                const double a = median(with) * 1e3, b = median(without) * 1e3, r = median(reading) * 1e3;
                out << "| " << report::stemOf(path) << " | " << size << "x" << size << " | " << layers << " | " << samplers
                    << " | " << a << " | " << r << " | " << 100 * r / a << " % | " << b << " | " << median(kept) * 1e3
                    << " |\n";
                out.flush();
            }
        return 0;
    });
}

} // namespace

void addBenchLoad(CLI::App& app, Commands& commands) {
    auto [sub, in] = addCommand<BenchLoadInputs>(app, commands, "bench-load", kBenchLoadHelp, runBenchLoad);
    sub->add_option("--models", in->models, "the model files")->required()->type_name("A B ...");
    sub->add_option("--sizes", in->sizes, "input sizes (square), comma-separated")->type_name("256");
    sub->add_option("--repeats", in->repeats, "timed loads per model, size and setting")->type_name("N")->check(wholeAtLeast(1, "--repeats"));
}

void addBenchAnalyses(CLI::App& app, Commands& commands) {
    auto [sub, in] = addCommand<BenchAnalysesInputs>(app, commands, "bench-analyses", kBenchAnalysesHelp, runBenchAnalyses);
    sub->add_option("--models", in->models, "the model files")->required()->type_name("A B ...");
    sub->add_option("--sizes", in->sizes, "input sizes (square), comma-separated")->type_name("256,512");
    sub->add_option("--clicks", in->clicks, "clicks timed per model and size")->type_name("N")->check(wholeAtLeast(1, "--clicks"));
    sub->add_option("--saliency-clicks", in->saliencyClicks, "of those, how many run the saliency search")
        ->type_name("N")
        ->check(wholeAtLeast(0, "--saliency-clicks"));
    sub->add_option("--json", in->json, "also write the rows as JSON")->type_name("FILE");
    in->request = std::make_unique<RequestOptions>(*sub, std::vector<std::string>{"--layer", "--levels", "--epsilon", "--device"});
}

} // namespace deformscope::cli
