// The resolution sweep (DCNv2's Figs. 4/5): the same node in several models at several
// input sizes, its data (sweep.csv, result.json) and figures (the grid sweep.*, the ratio
// plot sweep_ratio.*, the accuracy plot sweep_accuracy.*). Shared by `deformscope-cli
// sweep` and the GUI's engine. Any thread with a QGuiApplication (ensureGuiApplication).
#pragma once

#include "core/common/request.h"
#include "core/model/model.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace deformscope::figure {

struct SweepSpec {
    std::vector<const model::LoadedModel*> models;
    std::vector<std::string> names;          // one per model (figure rows, csv)
    std::vector<std::string> modelPaths;     // recorded in result.json
    std::string image;
    std::vector<int64_t> sizes;              // square input sizes
    std::vector<std::string> accuracyImages; // with <name>_mask.png class maps; empty: no accuracy
    std::string accuracyFolder;              // for the accuracy plot's footer
    // The node (layer, at, response), what to compute (the ERF always; saliency when
    // asked; sampling, kernel and motion off), the object, figures on or off.
    common::AnalysisRequest request;
    std::string dir;
};

struct SweepOutcome {
    std::vector<std::string> figures; // file names written into dir
    int64_t rows = 0;                 // model × size
    bool cancelled = false;           // progress said stop: only the data so far is written
};

// progress(done, total, "<model> at <s> x <s>") before each model × size and at the end;
// false cancels. notes(line) receives remarks (e.g. a plot with nothing to draw).
// Throws report::UsageError / model::ModelError like analyseNode, std::runtime_error
// when a file cannot be written.
SweepOutcome writeSweep(const SweepSpec& spec,
                        const std::function<bool(int64_t, int64_t, const std::string&)>& progress = {},
                        const std::function<void(const std::string&)>& notes = {});

} // namespace deformscope::figure
