#include "core/report/inputs.h"

#include "core/model/capture.h"
#include "core/ops/checks/selftest.h"
#include "core/ops/device_memory.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <filesystem>
#include <system_error>

namespace deformscope::report {

namespace fs = std::filesystem;

void checkRequest(const common::AnalysisRequest& request) {
    const std::vector<std::string> problems = request.validate();
    if (problems.empty())
        return;
    std::string message;
    for (const std::string& p : problems)
        message += (message.empty() ? "" : "; ") + p;
    throw UsageError(message);
}

namespace {
[[noreturn]] void unavailable(const std::string& name, const std::vector<at::Device>& devices) {
    std::string message = "device '" + name + "' is not available (have:";
    for (const at::Device& d : devices) {
        message += ' '; // (appended in two steps: GCC 12 warns falsely about " " + string)
        message += d.str();
    }
    throw UsageError(message + ")");
}
} // namespace

c10::Device resolveDevice(const common::DeviceSpec& spec) {
    const std::vector<at::Device> devices = ops::checks::availableDevices();
    for (const at::Device& d : devices) {
        const bool cuda = spec.kind == common::DeviceSpec::Kind::Cuda;
        if (cuda ? d.is_cuda() && (spec.index < 0 || d.index() == spec.index) : d.is_cpu())
            return d;
    }
    unavailable(spec.toString(), devices);
}

c10::Device resolveDevice(const std::string& name) {
    if (const auto spec = common::DeviceSpec::parse(name))
        return resolveDevice(*spec);
    unavailable(name, ops::checks::availableDevices());
}

analysis::SamplingOptions samplingOptions(const common::AnalysisRequest& request) {
    analysis::SamplingOptions o;
    o.levels = request.levels;
    o.reading = request.reading;
    o.through = request.through;
    return o;
}

analysis::ErfOptions erfOptions(const common::AnalysisRequest& request) {
    analysis::ErfOptions o;
    o.isSigned = request.signedErf;
    return o;
}

analysis::SaliencyOptions saliencyOptions(const common::AnalysisRequest& request) {
    analysis::SaliencyOptions o;
    o.epsilon = request.epsilon;
    o.batchSize = request.batch;
    o.minCell = request.minCell;
    o.targetForwards = request.forwards;
    o.maxForwards = std::max(o.maxForwards, request.forwards);
    return o;
}

std::string defaultLayer(const model::LoadedModel& m, const model::LayerGraph& g) {
    if (!m.metadata().suggestedLayer.empty() && g.find(m.metadata().suggestedLayer))
        return m.metadata().suggestedLayer;
    const model::Layer* best = nullptr;
    for (const model::Layer& l : g.layers())
        if (l.deformable() || (!best && l.kind == model::LayerKind::Conv))
            best = &l;
    for (const model::Layer& l : g.layers())
        if (!best || (!best->deformable() && l.kind == model::LayerKind::Conv))
            best = &l;
    if (!best)
        throw UsageError(m.path() + ": has no conv-like layer to analyse");
    return best->name;
}

std::string stemOf(const std::string& path) { return fs::path(path).stem().string(); }

// ---- memory ------------------------------------------------------------------------------

namespace {

// /proc/meminfo's MemAvailable in bytes; 0 when unknown.
int64_t availableMemory() {
    std::ifstream f("/proc/meminfo");
    std::string key;
    int64_t kb = 0;
    std::string unit;
    while (f >> key >> kb >> unit)
        if (key == "MemAvailable:")
            return kb * 1024;
    return 0;
}

std::string gigabytes(double bytes) {
    std::ostringstream s;
    s.precision(bytes >= 1e10 ? 0 : 1);
    s << std::fixed << bytes / 1e9 << " GB";
    return s.str();
}

} // namespace

// The analyses keep every layer's output of the captured forward (and what autograd saves
// for the backward), so memory grows with the input's area: measured on a small probe
// forward (the layers' output sizes), scaled to `size`, times kMemoryFactor for the saved
// inputs and the gradients of the backward pass. Refused before anything that large is
// allocated when the estimate exceeds the memory the system has available.
void checkMemory(const model::LoadedModel& m, std::array<int64_t, 2> size, const std::string& what, int64_t batch) {
    constexpr double kMemoryFactor = 3.0;
    constexpr int64_t kProbe = 128, kCheckAbove = 768 * 768;
    const int64_t frames = std::max<int64_t>(1, m.inputCount());
    const double pixels = double(size[0]) * double(size[1]) * double(frames) * double(std::max<int64_t>(1, batch));
    if (pixels <= double(kCheckAbove))
        return;
    // The system's memory for the CPU; a GPU's own (free, plus what LibTorch keeps cached).
    const bool gpu = !m.device().is_cpu();
    const int64_t available = gpu ? ops::freeDeviceMemory(m.device()).value_or(0) : availableMemory();
    if (available <= 0)
        return;
    double perPixel = 0;
    try {
        const model::LayerGraph g = model::layerGraph(m, {kProbe, kProbe});
        double bytes = 3.0 * double(kProbe * kProbe * frames) * 4;
        for (const model::Layer& l : g.layers())
            if (!l.isRoiPool())
                bytes += double(l.out_channels) * double(l.feature_size[0]) * double(l.feature_size[1]) * 4;
        perPixel = bytes / double(kProbe * kProbe * frames);
    } catch (const std::exception&) {
        return; // the forward's own errors are reported where it runs
    }
    const double need = kMemoryFactor * perPixel * pixels;
    if (need <= double(available))
        return;
    // The largest input of the same aspect ratio that fits, rounded down to a multiple of 32.
    const double scale = std::sqrt(double(available) / need);
    const auto fit = [&](int64_t v) { return std::max<int64_t>(32, int64_t(double(v) * scale) / 32 * 32); };
    throw UsageError(what + ": an input of " + std::to_string(size[1]) + " x " + std::to_string(size[0]) +
                     (frames > 1 ? " (" + std::to_string(frames) + " frames)" : std::string()) +
                     (batch > 1 ? " in batches of " + std::to_string(batch) : std::string()) + " would need about " +
                     gigabytes(need) + " of " +
                     (gpu ? "cuda:" + std::to_string(m.device().has_index() ? int(m.device().index()) : 0) + " memory"
                          : std::string("memory")) +
                     " to analyse with " + m.path() + " (its layers' outputs, " + gigabytes(perPixel * pixels) +
                     ", kept for the backward pass, and the gradients), but " + gigabytes(double(available)) +
                     " is available: give --input-size H W (about " +
                     std::to_string(fit(size[0])) + " " + std::to_string(fit(size[1])) + " fits)");
}

void makeDirectory(const std::string& path) {
    const fs::path dir(path);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
        throw UsageError(dir.string() + ": cannot create the folder" + (ec ? " (" + ec.message() + ")" : ""));
}

} // namespace deformscope::report
