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
#include "ui/analysis_figure/analysis_figure.h"
#include "ui/figure/plot.h"
#endif

#include <nlohmann/json.hpp>

#include <cmath>
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

constexpr const char* kFormat = "deformscope-study/1";

struct StudyInputs {
    std::vector<std::string> models;
    std::string images, masks, out, shard;
    int64_t limit = 0, minObject = 16;
    CLI::Option* what = nullptr;
    std::unique_ptr<RequestOptions> request;
};

#ifdef DEFORMSCOPE_WITH_IMAGING
// The mask of `image`: <stem>_mask.png next to it, or in `masks` <stem>_mask.png / <stem>.png; "" if none.
std::string maskOf(const std::string& image, const std::string& masks) {
    const std::string stem = fs::path(image).stem().string();
    const fs::path dir = masks.empty() ? fs::path(image).parent_path() : fs::path(masks);
    for (const fs::path& p : {dir / (stem + "_mask.png"), dir / (stem + ".png")})
        if (fs::is_regular_file(p) && (!masks.empty() || p.filename() != fs::path(image).filename()))
            return p.string();
    return {};
}

// Writes study.csv, the scatter figures and result.json (doc plus rows, table, figures) into `dir`.
void writeStudy(const std::string& dir, Json doc, std::vector<report::StudyRow> rows,
                const std::vector<std::string>& names, bool figures, Io& io) {
    report::sortStudyRows(rows, names);
    report::makeDirectory(dir);
    common::writeFileAtomically((fs::path(dir) / "study.csv").string(), report::studyCsv(rows));
    const Json table = report::studyTable(rows, names);
    std::vector<std::string> written;
#ifdef DEFORMSCOPE_WITH_FIGURES
    if (figures) {
        figure::ensureGuiApplication();
        struct Scatter {
            const char* measure;
            const char* base;
            const char* label;
        };
        for (const Scatter& sc : {Scatter{"erf_radius90_px", "study_erf", "ERF radius, 90 % of the mass (px)"},
                                  Scatter{"saliency_size_px", "study_saliency", "sqrt(saliency region area) (px)"},
                                  Scatter{"sampling_spread_px", "study_sampling", "sampling points' weighted spread (px)"}}) {
            figure::LinePlot plot;
            plot.joined = false;
            plot.title = std::string(sc.label) + " against object size";
            plot.xLabel = "sqrt(object area) (px)";
            plot.yLabel = sc.label;
            bool any = false;
            for (size_t k = 0; k < names.size(); ++k) {
                figure::PlotSeries s;
                std::ostringstream name;
                name.precision(2);
                name << std::fixed << names[k];
                const Json& m = table.at(k).at("measures");
                if (m.contains(sc.measure) && m.at(sc.measure).at("spearman").at("r").is_number())
                    name << " (rho " << m.at(sc.measure).at("spearman").at("r").get<double>() << ")";
                s.name = name.str();
                for (const report::StudyRow& r : rows) {
                    double v = -1;
                    for (const report::StudyMeasure& me : report::studyMeasures())
                        if (std::string(me.name) == sc.measure)
                            v = me.value(r);
                    if (r.model == names[k] && v >= 0) {
                        s.x.push_back(r.objectSizePx);
                        s.y.push_back(v);
                        any = true;
                    }
                }
                plot.series.push_back(std::move(s));
            }
            if (!any)
                continue;
            plot.footer = "one point per object and model; study.csv has the numbers, result.json the correlations";
            for (const char* ext : {".png", ".svg", ".pdf"}) {
                const std::string file = std::string(sc.base) + ext;
                const std::string error = figure::saveLinePlot(plot, (fs::path(dir) / file).string());
                if (!error.empty()) {
                    io.err << "note: " << error << "\n";
                    break;
                }
                written.push_back(file);
            }
        }
    }
#else
    if (figures)
        io.err << "note: this build has no Qt (DEFORMSCOPE_CORE_ONLY): data only, no figures\n";
#endif
    Json rowsJson = Json::array();
    for (const report::StudyRow& r : rows)
        rowsJson.push_back(report::toJson(r));
    doc["table"] = table;
    doc["data"] = "study.csv";
    doc["figures"] = written;
    doc["rows"] = rowsJson;
    common::writeJsonFile((fs::path(dir) / "result.json").string(), doc);
    // The answer in a few lines.
    for (const Json& t : table) {
        io.out << t.at("model").get<std::string>() << " (" << t.at("objects").get<int64_t>() << " objects):";
        for (const auto& [name, m] : t.at("measures").items()) {
            const Json& s = m.at("spearman");
            io.out << " " << name << " rho " << (s.at("r").is_number() ? std::to_string(s.at("r").get<double>()) : "-");
        }
        io.out << "\n";
    }
}
#endif

int runStudy(const StudyInputs& in, Io& io) {
    return guarded("study", io.err, [&]() -> int {
        common::AnalysisRequest rq = in.request->request();
        if (!in.what || in.what->count() == 0)
            rq.what = common::Analyses{}; // sampling, ERF and saliency
        rq.what.kernel = common::Analyses::Kernel::Off;
        rq.what.motion = false;
#ifndef DEFORMSCOPE_WITH_IMAGING
        (void)rq;
        throw UsageError("this build has no image support (built with DEFORMSCOPE_CORE_ONLY)");
#else
        if (in.models.empty())
            throw UsageError("--models: give at least one model");
        const report::ImageFolder all = report::listImages(in.images, in.limit);
        if (!in.masks.empty() && !fs::is_directory(in.masks))
            throw UsageError(in.masks + ": --masks is not a folder");
        const auto [shard, shards] = parseShard(in.shard);
        std::vector<int64_t> mine; // indices into the whole sorted list
        for (int64_t i = shard - 1; i < int64_t(all.files.size()); i += shards)
            mine.push_back(i);
        if (mine.empty())
            throw UsageError("--shard " + in.shard + ": no image falls in this part (" +
                             std::to_string(all.files.size()) + " images)");
        std::vector<model::LoadedModel> models;
        std::vector<std::string> names;
        for (const std::string& path : in.models) {
            models.push_back(model::LoadedModel::load(path, report::resolveDevice(rq.device)));
            std::string name = report::stemOf(path);
            for (int k = 2; std::find(names.begin(), names.end(), name) != names.end(); ++k)
                name = report::stemOf(path) + "_" + std::to_string(k);
            names.push_back(name);
        }
        std::vector<report::StudyRow> rows;
        Json skipped = Json::array();
        int64_t used = 0;
        for (size_t j = 0; j < mine.size(); ++j) {
            const std::string& image = all.files[size_t(mine[j])];
            const std::string mask = maskOf(image, in.masks);
            if (mask.empty()) {
                skipped.push_back(image + ": no mask (" +
                                  (in.masks.empty() ? std::string("<name>_mask.png next to it") : in.masks + "/<name>_mask.png or <name>.png") + ")");
                continue;
            }
            size_t before = rows.size();
            for (size_t k = 0; k < models.size(); ++k) {
                std::vector<report::StudyRow> r =
                    report::studyImage(models[k], names[k], image, mask, mine[j], rq, in.minObject);
                rows.insert(rows.end(), r.begin(), r.end());
            }
            ++used;
            const size_t found = (rows.size() - before) / std::max<size_t>(models.size(), 1);
            io.err << "study: image " << (j + 1) << "/" << mine.size() << " (" << fs::path(image).filename().string()
                   << "): " << found << (found == 1 ? " object\n" : " objects\n");
        }
        if (rows.empty())
            throw UsageError(in.images + ": no object found in the masks of " + std::to_string(mine.size()) +
                             " images (objects of at least " + std::to_string(in.minObject) + " px; " +
                             std::to_string(skipped.size()) + " images without a mask)");
        Json doc = Json::object({{"format", kFormat},
                                 {"models", in.models},
                                 {"model_names", names},
                                 {"images_folder", in.images},
                                 {"masks_folder", in.masks.empty() ? Json() : Json(in.masks)},
                                 {"images", int64_t(all.files.size())},
                                 {"images_used", used},
                                 {"skipped", skipped},
                                 {"min_object_px", in.minObject},
                                 {"request", common::toJson(rq)},
                                 {"shard", Json::object({{"index", shard}, {"count", shards}})}});
        writeStudy(in.out, doc, rows, names, rq.figures, io);
        io.out << "studied " << rows.size() / models.size() << " objects in " << used << " images with "
               << models.size() << " models into " << in.out << "\n";
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
    std::map<int64_t, std::string> parts;
    int64_t shards = 0, used = 0;
    Json skipped = Json::array();
    for (const std::string& dir : inputs) {
        const std::string path = (fs::path(dir) / "result.json").string();
        const Json doc = common::readJsonFile(path);
        if (doc.value("format", "") != kFormat)
            throw UsageError(path + ": not a study result (format " + doc.value("format", Json()).dump() + ")");
        if (first.is_null()) {
            first = doc;
            shards = doc.at("shard").at("count").get<int64_t>();
        } else {
            for (const char* key : {"models", "images_folder", "masks_folder", "images", "min_object_px", "request"})
                if (doc.value(key, Json()) != first.value(key, Json()))
                    throw UsageError(path + ": its " + key + " " + doc.value(key, Json()).dump() + " differs from " +
                                     inputs.front() + "'s: not parts of one study");
            if (doc.at("shard").at("count").get<int64_t>() != shards)
                throw UsageError(path + ": a part of " + doc.at("shard").at("count").dump() + ", the first of " +
                                 std::to_string(shards));
        }
        const int64_t index = doc.at("shard").at("index").get<int64_t>();
        if (!parts.emplace(index, dir).second)
            throw UsageError(dir + ": part " + std::to_string(index) + "/" + std::to_string(shards) +
                             " is given twice (also " + parts.at(index) + ")");
        for (const Json& r : doc.at("rows"))
            rows.push_back(report::studyRowFromJson(r));
        used += doc.at("images_used").get<int64_t>();
        for (const Json& s : doc.at("skipped"))
            skipped.push_back(s);
    }
    if (int64_t(parts.size()) != shards) {
        std::string missing;
        for (int64_t k = 1; k <= shards; ++k)
            if (!parts.count(k))
                missing += (missing.empty() ? "" : ", ") + std::to_string(k) + "/" + std::to_string(shards);
        throw UsageError("parts missing: " + missing + " (give every --shard K/" + std::to_string(shards) +
                         " output folder)");
    }
    Json doc = first;
    doc.erase("rows");
    doc.erase("table");
    doc.erase("figures");
    doc["images_used"] = used;
    doc["skipped"] = skipped;
    doc["shard"] = Json::object({{"index", 1}, {"count", 1}});
    doc["merged_from"] = inputs;
    writeStudy(out, doc, rows, first.at("model_names").get<std::vector<std::string>>(), !noFigures, io);
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
    sub->add_option("--limit", in->limit, "use at most N images (default: all)")->type_name("N")->check(CLI::PositiveNumber);
    sub->add_option("--min-object", in->minObject, "leave out objects smaller than PX pixels (original image)")
        ->type_name("PX")
        ->check(CLI::PositiveNumber);
    sub->add_option("--shard", in->shard,
                    "study part K of N of the (sorted) images: every N-th from the K-th; `merge` combines the parts")
        ->type_name("K/N");
    in->request = std::make_unique<RequestOptions>(
        *sub, std::vector<std::string>{"--layer", "--what", "--response", "--input-size", "--through", "--levels",
                                       "--epsilon", "--forwards", "--device", "--no-figures", "--log"});
    in->what = sub->get_option("--what");
}

} // namespace deformscope::cli
