#include "core/report/settings.h"

#include "core/common/atomic_file.h"

#include <filesystem>
#include <system_error>

namespace deformscope::report {

namespace fs = std::filesystem;

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

void writeText(const std::string& path, const std::string& text) { common::writeFileAtomically(path, text); }

} // namespace deformscope::report
