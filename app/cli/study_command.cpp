// study: does the receptive field adapt to the object? Over a folder of images with
// object masks, the node at the middle of every object, in every model; per model the
// correlation between receptive-field size and object size (core/report/study.h).
// `--shard K/N` parts are combined by `merge` into exactly the numbers of one run.
#include "app/cli/commands.h"

#include "core/common/atomic_file.h"
#include "core/common/json_file.h"
#include "core/report/inputs.h"

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/report/report.h"
#include "core/report/study.h"
#endif
#ifdef DEFORMSCOPE_WITH_FIGURES
#include "ui/analysis_figure/report_figures.h"
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <filesystem>
#include <map>
#include <ostream>
#include <sstream>

namespace deformscope::cli {

namespace {

namespace fs = std::filesystem;
using common::Json;
using report::UsageError;

constexpr const char* kStudyHelp =
    "does the receptive field adapt to the object? For every object (a connected region of one id) of the masks of "
    "a folder of images, the node at its middle in every model: object area, ERF area and 50 %/90 % radii, saliency "
    "area, sampling points inside; per model Pearson's and Spearman's r (95 % intervals) between each receptive-field "
    "size and the object's size: DIR/study.csv, result.json, study_erf.png/.svg/.pdf (scatter)";

struct StudyInputs {
    std::vector<std::string> models;
    std::string images, masks, out, shard, devices;
    int64_t limit = 0, minObject = 16;
    CLI::Option* what = nullptr;
    std::unique_ptr<RequestOptions> request;
};

#ifdef DEFORMSCOPE_WITH_IMAGING
// Writes the figures (builds with Qt), study.csv and result.json into `dir`, then the answer in a few lines.
void writeStudy(const std::string& dir, const Json& header, const std::vector<report::StudyRow>& rows,
                const std::vector<std::string>& names, bool figures, Io& io) {
    report::makeDirectory(dir);
    std::vector<std::string> written;
#ifdef DEFORMSCOPE_WITH_FIGURES
    if (figures) {
        std::vector<std::string> problems;
        written = figure::writeStudyFigures(rows, names, dir, &problems);
        for (const std::string& p : problems)
            io.err << "note: " << p << "\n";
    }
#else
    if (figures)
        io.err << "note: this build has no Qt (DEFORMSCOPE_CORE_ONLY): data only, no figures\n";
#endif
    const Json doc = report::writeStudyData(dir, header, rows, names, written);
    for (const Json& t : doc.at("table")) {
        io.out << t.at("model").get<std::string>() << " (" << t.at("objects").get<int64_t>() << " objects):";
        for (const auto& [name, m] : t.at("measures").items()) {
            const Json& r = m.at("spearman").at("r");
            io.out << " " << name << " rho " << (r.is_number() ? std::to_string(r.get<double>()) : std::string("-"));
        }
        io.out << "\n";
    }
}
#endif

int runStudy(const StudyInputs& in, Io& io) {
    return guarded("study", io.err, [&]() -> int {
        // --out is taken first: a second run into the same folder refuses at once.
        const auto folder = outputFolder(in.out, io);
        common::AnalysisRequest rq = in.request->request();
        if (!in.what || in.what->count() == 0)
            rq.what = common::Analyses{}; // sampling, ERF and saliency
        rq.what.kernel = common::Analyses::Kernel::Off;
        rq.what.motion = false;
#ifndef DEFORMSCOPE_WITH_IMAGING
        (void)rq;
        throw UsageError("this build has no image support (built with DEFORMSCOPE_CORE_ONLY)");
#else
        report::StudyOptions options;
        options.images = in.images;
        options.masks = in.masks;
        options.limit = in.limit;
        std::tie(options.shard, options.shards) = parseShard(in.shard);
        options.minObjectPixels = in.minObject;
        if (in.models.empty())
            throw UsageError("--models: give at least one model");
        std::vector<std::string> names;
        for (const std::string& path : in.models) {
            std::string name = report::stemOf(path);
            for (int k = 2; std::find(names.begin(), names.end(), name) != names.end(); ++k)
                name = report::stemOf(path) + "_" + std::to_string(k);
            names.push_back(name);
        }
        const std::vector<c10::Device> devices = workerDevices(in.devices, rq.device);
        if (devices.size() > 1)
            io.err << "study: " << devices.size() << " workers (" << in.devices << ")\n";
        int64_t reported = -1;
        const report::StudyRun run = report::runStudyOnDevices(
            in.models, names, devices, options, rq, [&](int64_t done, int64_t total, const std::string& image) {
                if (done != reported && done < total) {
                    reported = done;
                    io.err << "study: image " << (done + 1) << "/" << total << " (" << image << ")\n";
                }
                return true;
            });
        writeStudy(folder->path(), report::studyHeader(in.models, names, options, run, rq), run.rows, names, rq.figures,
                   io);
        folder->commit();
        io.out << "studied " << run.rows.size() / in.models.size() << " objects in " << run.used << " images with "
               << in.models.size() << " models into " << in.out << "\n";
        return 0;
#endif
    });
}

} // namespace

int mergeStudy(const std::vector<std::string>& inputs, const std::string& out, bool noFigures, Io& io) {
#ifndef DEFORMSCOPE_WITH_IMAGING
    (void)inputs, (void)out, (void)noFigures, (void)io;
    throw UsageError("this build has no image support (built with DEFORMSCOPE_CORE_ONLY)");
#else
    Json first;
    std::vector<report::StudyRow> rows;
    ShardParts parts(/*wholeRunsAdd=*/false); // the same image twice would count twice
    int64_t used = 0;
    Json skipped = Json::array();
    for (const std::string& dir : inputs) {
        const std::string path = (fs::path(dir) / "result.json").string();
        const Json doc = common::readJsonFile(path);
        if (doc.value("format", "") != report::kStudyFormat)
            throw UsageError(path + ": not a study result (format " + doc.value("format", Json()).dump() + ")");
        if (doc.value("cancelled", false))
            throw UsageError(path + ": this part was cancelled before its last image (run it again)");
        if (first.is_null())
            first = doc;
        parts.add(dir, path, doc, first, inputs.front(),
                  {"models", "images_folder", "masks_folder", "images", "min_object_px", "request"}, "study");
        for (const Json& r : doc.at("rows"))
            rows.push_back(report::studyRowFromJson(r));
        used += doc.at("images_used").get<int64_t>();
        for (const Json& s : doc.at("skipped"))
            skipped.push_back(s);
    }
    parts.requireComplete();
    std::vector<std::string> skippedSorted;
    for (const Json& j : skipped)
        skippedSorted.push_back(j.get<std::string>());
    std::sort(skippedSorted.begin(), skippedSorted.end()); // image order, as one run lists them
    skipped = Json::array();
    for (const std::string& k : skippedSorted)
        skipped.push_back(k);
    Json doc = first;
    doc.erase("rows");
    doc.erase("table");
    doc.erase("figures");
    doc["images_used"] = used;
    doc["skipped"] = skipped;
    doc["shard"] = Json::object({{"index", 1}, {"count", 1}});
    doc["merged_from"] = inputs;
    const auto folder = outputFolder(out, io);
    writeStudy(folder->path(), doc, rows, first.at("model_names").get<std::vector<std::string>>(), !noFigures, io);
    folder->commit();
    io.out << "merged " << inputs.size() << " study parts (" << used << " images) into " << out << "\n";
    return 0;
#endif
}

void addStudy(CLI::App& app, Commands& commands) {
    auto [sub, in] = addCommand<StudyInputs>(app, commands, "study", kStudyHelp, runStudy);
    sub->add_option("--models", in->models, "the model files")->required()->type_name("A B C ...");
    addRequired(sub, "--images", in->images, "DIR", "a folder of images (*_mask images are left out)");
    sub->add_option("--masks", in->masks,
                    "the folder of the object masks (grey ids, 0 background): <name>_mask.png or <name>.png "
                    "(default: <name>_mask.png next to each image)")
        ->type_name("DIR");
    addRequired(sub, "--out", in->out, "DIR", "the folder to write into");
    sub->add_option("--limit", in->limit, "use at most N images (default: all)")->type_name("N")->check(wholeAtLeast(1, "--limit"));
    sub->add_option("--min-object", in->minObject, "leave out objects smaller than PX pixels (original image)")
        ->type_name("PX")
        ->check(wholeAtLeast(0, "--min-object"));
    sub->add_option("--shard", in->shard,
                    "study part K of N of the (sorted) images: every N-th from the K-th; `merge` combines the parts")
        ->type_name("K/N");
    sub->add_option("--devices", in->devices,
                    "one worker per device, each on every W-th image (default: every GPU with --device cuda, else "
                    "the one --device)")
        ->type_name("D1,D2,...");
    in->request = std::make_unique<RequestOptions>(
        *sub, std::vector<std::string>{"--layer", "--what", "--response", "--input-size", "--through", "--levels",
                                       "--epsilon", "--forwards", "--device", "--no-figures", "--log"});
    in->what = sub->get_option("--what");
}

} // namespace deformscope::cli
