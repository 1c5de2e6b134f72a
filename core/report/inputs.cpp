#include "core/report/inputs.h"

#include "core/ops/checks/selftest.h"

#include <algorithm>
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

void makeDirectory(const std::string& path) {
    const fs::path dir(path);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
        throw UsageError(dir.string() + ": cannot create the folder" + (ec ? " (" + ec.message() + ")" : ""));
}

} // namespace deformscope::report
