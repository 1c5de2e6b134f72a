// deformscope-cli train-samples: the sample models' training recipe, end to end.
#include "app/cli/commands.h"
#include "core/common/atomic_file.h"

#include "core/common/json_file.h"

#include "sample_models/recipe/align.h"
#include "sample_models/recipe/analysis.h"
#include "sample_models/recipe/export.h"
#include "sample_models/recipe/network.h"
#include "sample_models/recipe/roi_head.h"
#include "sample_models/recipe/synthetic.h"
#include "sample_models/recipe/train.h"

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/imaging/image.h"
#endif

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace deformscope::cli {
namespace {

// What each command does, for its --help and the tool's list of commands.
constexpr const char* kTrainSamplesHelp =
    "the sample models' recipe: generate the synthetic data, train each variant on the CPU, write "
    "DIR/<variant>.pt, DIR/training.json and sample images (sample_models/MODELS.md); --variants align "
    "trains the two-frame alignment sample and writes the held-out pair DIR/pair_01_*";


namespace fs = std::filesystem;
using samples::Variant;

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

using common::Json;

// Numbers are stored rounded to the digits a reader needs (and MODELS.md quotes).
Json rounded(double v, int digits) {
    const double scale = std::pow(10.0, digits);
    return Json(std::round(v * scale) / scale);
}

Json roundedArray(const std::vector<double>& v, int digits) {
    Json a = Json::array();
    for (double x : v)
        a.push_back(rounded(x, digits));
    return a;
}

// The loss curve as [step, mean loss of the window ending at step] every `every` steps.
Json lossCurve(const std::vector<double>& losses, int64_t every) {
    Json curve = Json::array();
    double sum = 0;
    int64_t n = 0;
    for (size_t i = 0; i < losses.size(); ++i) {
        sum += losses[i];
        ++n;
        if ((static_cast<int64_t>(i) + 1) % every == 0 || i + 1 == losses.size()) {
            curve.push_back(Json::array({Json(i + 1), rounded(sum / n, 4)}));
            sum = 0;
            n = 0;
        }
    }
    return curve;
}

Json objectsJson(const samples::SyntheticSample& s) {
    const auto names = samples::classNames();
    Json objects = Json::array();
    for (const auto& o : s.objects)
        objects.push_back(Json::object({{"class", Json(names[o.cls])},
                                        {"size_px", rounded(o.size, 1)},
                                        {"center", Json::array({rounded(o.cx, 1), rounded(o.cy, 1)})},
                                        {"angle_deg", rounded(o.angle * 180.0 / 3.14159265358979, 1)}}));
    return objects;
}

struct VariantResult {
    Variant variant;
    samples::TrainReport report;
    std::vector<samples::SamplingSpread> spread;
    std::string file;
    Json alignEntry; // Variant::Align: its whole training.json entry
};

constexpr int64_t kSpreadImages = 64; // held-out images for the sampling-spread numbers

Json spreadJson(const std::vector<samples::SamplingSpread>& spread) {
    Json blocks = Json::array();
    for (const auto& s : spread) {
        Json block = Json::object({{"block", Json(s.block)},
                                   {"background_px", rounded(s.background, 2)},
                                   {"small_px", rounded(s.small, 2)},
                                   {"medium_px", rounded(s.medium, 2)},
                                   {"large_px", rounded(s.large, 2)},
                                   {"mean_mask", rounded(s.meanMask, 3)},
                                   {"mean_abs_offset_px", rounded(s.meanAbsOffset, 2)}});
        if (s.deformableKernel) { // where a DK block's taps read its scope kernel, in scope cells
            block["kernel_reach_cells"] = Json::array({rounded(s.kernelBackground, 3), rounded(s.kernelSmall, 3),
                                                       rounded(s.kernelMedium, 3), rounded(s.kernelLarge, 3)});
            block["mean_abs_kernel_offset_cells"] = rounded(s.meanAbsKernelOffset, 3);
        }
        blocks.push_back(block);
    }
    return blocks;
}


struct TrainInputs {
    samples::TrainConfig config; // defaults: the shipped models' settings
    std::string outDir;
    std::string variants = "regular,dcn_v1,dcn_v2,dk";
    int64_t images = 12;
    // The options align takes over from the command line when they are given
    // (otherwise its own defaults, samples::AlignConfig, apply).
    CLI::Option *steps = nullptr, *batch = nullptr, *size = nullptr, *seed = nullptr, *lr = nullptr,
                *offsetLrScale = nullptr, *evalImages = nullptr;
    std::string evaluate; // --evaluate FILE: score a trained align.pt instead of training
    bool dataOnly = false; // --data-only: write the held-out images (--images, --size) and train nothing
    bool roiHeads = false; // --roi-heads: the RoI sample heads on the trained segmentation samples in --out
};

// --roi-heads: roi_<variant>.pt for regular, dcn_v1, dcn_v2 (those named by --variants), each a RoI head
// on DIR/<variant>.pt's frozen trunk (sample_models/recipe/roi_head.h), and DIR/roi_training.json.
int runTrainRoiHeads(const TrainInputs& in, Io& io, const std::vector<Variant>& named, bool variantsGiven) {
    std::vector<Variant> variants;
    for (Variant v : variantsGiven ? named : std::vector<Variant>{Variant::Regular, Variant::DCNv1, Variant::DCNv2})
        if (v == Variant::Regular || v == Variant::DCNv1 || v == Variant::DCNv2)
            variants.push_back(v);
    if (variants.empty()) {
        io.err << "deformscope-cli train-samples: --roi-heads trains heads for regular, dcn_v1 and dcn_v2 only\n";
        return 2;
    }
    samples::RoiTrainConfig c;
    if (in.steps && in.steps->count())
        c.steps = in.config.steps;
    if (in.seed && in.seed->count())
        c.seed = in.config.seed;
    if (in.evalImages && in.evalImages->count())
        c.evalImages = in.config.evalImages;
    common::Json report = common::Json::object();
    std::string command = "deformscope-cli";
    for (const std::string& a : io.words)
        command += " " + a;
    report["command"] = command;
    report["config"] = common::Json::object({{"images", c.images}, {"steps", c.steps}, {"batch", c.batch},
                                             {"lr", c.lr}, {"jitter", c.jitter}, {"eval_images", c.evalImages},
                                             {"size", c.size}, {"seed", c.seed}, {"threads", at::get_num_threads()}});
    common::Json models = common::Json::array();
    for (Variant v : variants) {
        const std::string trunkPath = (fs::path(in.outDir) / (samples::variantName(v) + ".pt")).string();
        torch::jit::Module trained;
        try {
            trained = torch::jit::load(trunkPath);
        } catch (const std::exception& e) {
            io.err << "deformscope-cli train-samples: " << trunkPath << ": cannot load the trained "
                   << samples::variantName(v) << " sample the RoI head sits on (train it first)\n";
            return 2;
        }
        const std::string name = samples::roiModelName(v);
        io.out << "\n[" << name << "] on " << trunkPath << "\n" << std::flush;
        torch::jit::Module m = samples::buildRoiModel(v, trained, c.seed);
        const samples::RoiTrainReport r =
            samples::trainRoiModel(m, c, [&](const std::string& line) { io.out << "  " << line << "\n" << std::flush; });
        const std::string path = (fs::path(in.outDir) / (name + ".pt")).string();
        const common::Json training = common::Json::object(
            {{"held_out_box_accuracy", r.heldOutAccuracy}, {"held_out_boxes", r.heldOutBoxes}, {"steps", c.steps},
             {"batch", c.batch}, {"images", c.images}, {"seed", c.seed}, {"eval_images", c.evalImages}});
        samples::saveModel(m, path, samples::roiMetadataJson(v, c.size, training.dump()));
        io.out << "  held-out box accuracy " << r.heldOutAccuracy << " (" << r.heldOutBoxes << " boxes), "
               << r.seconds << " s -> " << path << "\n" << std::flush;
        models.push_back(common::Json::object({{"name", name}, {"file", name + ".pt"}, {"trunk", samples::variantName(v) + ".pt"},
                                               {"seconds", r.seconds}, {"held_out_box_accuracy", r.heldOutAccuracy},
                                               {"held_out_boxes", r.heldOutBoxes}, {"loss_every_50_steps", r.loss}}));
    }
    report["models"] = models;
    common::writeFileAtomically((fs::path(in.outDir) / "roi_training.json").string(), report.dump(1) + "\n");
    return 0;
}

// The held-out pair train-samples writes as DIR/pair_01_*: three objects of 16 to 41 px.
constexpr uint64_t kAlignPairSeed = samples::kHeldOutSeedBase + 5;

// OpenCV's DIS flow (core/imaging), the comparison the held-out EPEs are shown
// beside; none without image support.
samples::FlowEstimator disFlow() {
#ifdef DEFORMSCOPE_WITH_IMAGING
    return [](const at::Tensor& a, const at::Tensor& b) { return imaging::opticalFlow(a, b, imaging::FlowMethod::Dis); };
#else
    return {};
#endif
}

samples::AlignConfig alignConfig(const TrainInputs& in) {
    samples::AlignConfig a;
    const samples::TrainConfig& c = in.config;
    auto given = [](const CLI::Option* o) { return o && o->count() > 0; };
    if (given(in.steps))
        a.steps = c.steps;
    if (given(in.batch))
        a.batch = c.batch;
    if (given(in.size)) { // the training crop; pairs are generated at 128 unless that is smaller
        a.crop = c.size;
        a.pairSize = std::max(a.pairSize, c.size);
    }
    if (given(in.seed))
        a.seed = c.seed;
    if (given(in.lr))
        a.lr = c.lr;
    if (given(in.offsetLrScale))
        a.offsetLrScale = c.offsetLrScale;
    if (given(in.evalImages))
        a.evalPairs = c.evalImages;
    a.evalFlow = disFlow();
    return a;
}

// The EPEs of one estimate over the frame, objects, background and object sizes.
Json epeBuckets(double all, double objects, double background, double small, double medium, double large) {
    return Json::object({{"all", rounded(all, 3)},
                         {"objects", rounded(objects, 3)},
                         {"background", rounded(background, 3)},
                         {"small_objects", rounded(small, 3)},
                         {"medium_objects", rounded(medium, 3)},
                         {"large_objects", rounded(large, 3)}});
}

Json epeJson(const samples::AlignEval& e) {
    Json j = epeBuckets(e.epeAll, e.epeObjects, e.epeBackground, e.epeSmall, e.epeMedium, e.epeLarge);
    j["zero_motion_objects"] = rounded(e.zeroMotionEpeObjects, 3);
    return j;
}

// The same EPEs of OpenCV's DIS flow on the same pairs (null when not measured).
Json flowEpeJson(const samples::AlignEval& e) {
    if (e.flowEpeAll < 0)
        return Json(nullptr);
    Json j = Json::object({{"method", Json("OpenCV DISOpticalFlow (PRESET_MEDIUM), frame A to frame B")}});
    j.update(epeBuckets(e.flowEpeAll, e.flowEpeObjects, e.flowEpeBackground, e.flowEpeSmall, e.flowEpeMedium,
                        e.flowEpeLarge));
    return j;
}

// "; DIS flow on the same pairs: ... px over the frame, ... on the objects, ... on the background" (or "").
std::string flowEpeText(const samples::AlignEval& e) {
    if (e.flowEpeAll < 0)
        return {};
    return "; DIS optical flow on the same pairs: " + fixed(e.flowEpeAll, 3) + " px over the frame, " +
           fixed(e.flowEpeObjects, 3) + " px on the moving objects, " + fixed(e.flowEpeBackground, 3) +
           " px on the background";
}

double tailMean(const std::vector<double>& v, size_t n) {
    const size_t tail = std::min(n, v.size());
    double sum = 0;
    for (size_t k = v.size() - tail; k < v.size(); ++k)
        sum += v[k];
    return tail ? sum / static_cast<double>(tail) : 0.0;
}

// Trains align.pt, writes it and the held-out pair; returns its training.json entry.
Json trainAlignSample(const TrainInputs& in, std::ostream& out) {
    const samples::AlignConfig a = alignConfig(in);
    out << "  align: " << a.steps << " steps x " << a.batch << " pairs, crops of " << a.crop << "x" << a.crop
        << " from " << a.pairSize << "x" << a.pairSize << " pairs, lr " << a.lr << " (align.offset x"
        << a.offsetLrScale << "), motion weight " << a.motionWeight << ", seed " << a.seed << "\n"
        << std::flush;
    torch::jit::Module model = samples::buildAlignModel(a.seed);
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t every = std::max<int64_t>(1, std::min<int64_t>(50, a.steps / 10));
    double sums[3] = {};
    int64_t count = 0;
    samples::AlignReport report = samples::trainAlign(model, a, [&](int64_t step, double loss, double recon,
                                                                    double motion) {
        sums[0] += loss;
        sums[1] += recon;
        sums[2] += motion;
        ++count;
        if (step % every == 0 || step == a.steps) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            out << "  align step " << step << "/" << a.steps << "  loss " << fixed(sums[0] / count, 4) << " (recon "
                << fixed(sums[1] / count, 4) << ", motion EPE " << fixed(sums[2] / count, 3) << " px)  ("
                << fixed(s, 1) << " s)\n"
                << std::flush;
            sums[0] = sums[1] = sums[2] = 0;
            count = 0;
        }
    });
    const samples::AlignEval& e = report.heldOut;
    const fs::path file = fs::path(in.outDir) / "align.pt";
    const Json training = Json::object({{"steps", Json(a.steps)},
                                        {"batch", Json(a.batch)},
                                        {"crop", Json(a.crop)},
                                        {"seed", Json(a.seed)},
                                        {"motion_weight", Json(a.motionWeight)},
                                        {"held_out_pairs", Json(a.evalPairs)},
                                        {"held_out_first_seed", Json(samples::kHeldOutSeedBase)},
                                        {"held_out_epe_all_px", rounded(e.epeAll, 3)},
                                        {"held_out_epe_objects_px", rounded(e.epeObjects, 3)},
                                        {"held_out_epe_background_px", rounded(e.epeBackground, 3)}});
    samples::saveModel(model, file.string(),
                       samples::modelMetadataJson(Variant::Align, a.evalSize, Json::object({{"training", training}})));
    out << "  align: trained in " << fixed(report.seconds, 1) << " s; held-out (" << e.pairs << " pairs of "
        << a.evalSize << "x" << a.evalSize << ") EPE of the offsets' motion: " << fixed(e.epeAll, 3)
        << " px over the frame, " << fixed(e.epeObjects, 3) << " px on the moving objects (small / medium / large "
        << fixed(e.epeSmall, 3) << " / " << fixed(e.epeMedium, 3) << " / " << fixed(e.epeLarge, 3)
        << "; no motion would score " << fixed(e.zeroMotionEpeObjects, 3) << "), " << fixed(e.epeBackground, 3)
        << " px on the background; reconstruction L1 " << fixed(e.reconL1, 4) << flowEpeText(e) << "; wrote " << file.string()
        << "\n"
        << std::flush;

    Json entry = Json::object(
        {{"variant", Json("align")},
         {"file", Json("align.pt")},
         {"settings", Json::object({{"steps", Json(a.steps)},
                                    {"batch", Json(a.batch)},
                                    {"crop", Json(a.crop)},
                                    {"pair_size", Json(a.pairSize)},
                                    {"lr", Json(a.lr)},
                                    {"seed", Json(a.seed)},
                                    {"optimizer", Json("AdamW")},
                                    {"weight_decay", Json(a.weightDecay)},
                                    {"offset_lr_scale", Json(a.offsetLrScale)},
                                    {"motion_weight", Json(a.motionWeight)},
                                    {"loss", Json("mean |output - reference| + motion_weight * mean over object "
                                                  "pixels of |mean-over-taps offset - true motion| (px)")},
                                    {"warmup_steps", Json(a.warmupSteps)},
                                    {"held_out_pairs", Json(a.evalPairs)},
                                    {"held_out_size", Json(a.evalSize)},
                                    {"held_out_first_seed", Json(samples::kHeldOutSeedBase)}})},
         {"train_seconds", rounded(report.seconds, 1)},
         {"eval_seconds", rounded(report.evalSeconds, 1)},
         {"held_out_epe_px", epeJson(e)},
         {"held_out_dis_flow_epe_px", flowEpeJson(e)},
         {"held_out_object_fraction", rounded(e.objectFraction, 4)},
         {"held_out_recon_l1", rounded(e.reconL1, 4)},
         {"final_loss", rounded(tailMean(report.losses, 50), 4)},
         {"final_recon_l1", rounded(tailMean(report.reconLosses, 50), 4)},
         {"final_motion_epe_px", rounded(tailMean(report.motionLosses, 50), 3)},
         {"loss_curve", lossCurve(report.losses, std::max<int64_t>(1, a.steps / 40))}});

    // The held-out pair, with the model's numbers on it.
    if (in.images > 0 && samples::canWriteImages()) {
        const samples::SyntheticPair pair = samples::generatePair(kAlignPairSeed, a.evalSize);
        samples::writePairFiles(pair, (fs::path(in.outDir) / "pair_01").string());
        const samples::AlignEval p =
            samples::evaluateAlign(model, 1, a.evalSize, kAlignPairSeed - samples::kHeldOutSeedBase, a.evalFlow);
        Json objects = objectsJson(pair.a);
        for (size_t k = 0; k < pair.motions.size(); ++k)
            objects[k]["motion"] = Json::object({{"dx", rounded(pair.motions[k].dx, 3)},
                                                 {"dy", rounded(pair.motions[k].dy, 3)},
                                                 {"rotation_deg", rounded(pair.motions[k].rotation * 180.0 / 3.14159265358979, 3)}});
        entry["pair"] = Json::object({{"files", Json("pair_01_a.png, pair_01_b.png, pair_01_a_mask.png, "
                                                     "pair_01_b_mask.png, pair_01_motion.npy")},
                                      {"seed", Json(kAlignPairSeed)},
                                      {"objects", objects},
                                      {"epe_px", epeJson(p)},
                                      {"dis_flow_epe_px", flowEpeJson(p)}});
        out << "  align: wrote the held-out pair " << (fs::path(in.outDir) / "pair_01_*").string() << " (seed "
            << kAlignPairSeed << "); on it the EPE is " << fixed(p.epeAll, 3) << " px over the frame, "
            << fixed(p.epeObjects, 3) << " px on the objects\n"
            << std::flush;
    }
    model.eval();
    return entry;
}

// train-samples --evaluate FILE: a trained alignment model on the held-out pairs,
// beside DIS flow on the same pairs; DIR/evaluation.json when --out is given.
int runEvaluateAlign(const TrainInputs& in, std::ostream& out, std::ostream& err) {
    const samples::AlignConfig a = alignConfig(in);
    torch::jit::Module model;
    try {
        model = torch::jit::load(in.evaluate);
        if (!model.find_method("forward_with_offsets"))
            throw std::runtime_error("it has no method forward_with_offsets");
    } catch (const std::exception& e) {
        std::string what = e.what();
        what = what.substr(0, what.find('\n'));
        err << "deformscope-cli train-samples: " << in.evaluate
            << ": not an alignment sample model (TorchScript with forward_with_offsets, as --variants align "
               "writes): "
            << what << "\n";
        return 2;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const samples::AlignEval e = samples::evaluateAlign(model, a.evalPairs, a.evalSize, 0, a.evalFlow);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out << in.evaluate << ": held-out (" << e.pairs << " pairs of " << a.evalSize << "x" << a.evalSize
        << ", first seed " << samples::kHeldOutSeedBase << ") EPE of the offsets' motion: " << fixed(e.epeAll, 3)
        << " px over the frame, " << fixed(e.epeObjects, 3) << " px on the moving objects (small / medium / large "
        << fixed(e.epeSmall, 3) << " / " << fixed(e.epeMedium, 3) << " / " << fixed(e.epeLarge, 3) << "), "
        << fixed(e.epeBackground, 3) << " px on the background" << flowEpeText(e) << " (" << fixed(s, 1) << " s)\n";
    if (!in.outDir.empty()) {
        const fs::path file = fs::path(in.outDir) / "evaluation.json";
        const Json doc = Json::object({{"model", Json(in.evaluate)},
                                       {"held_out_pairs", Json(e.pairs)},
                                       {"held_out_size", Json(a.evalSize)},
                                       {"held_out_first_seed", Json(samples::kHeldOutSeedBase)},
                                       {"held_out_object_fraction", rounded(e.objectFraction, 4)},
                                       {"held_out_epe_px", epeJson(e)},
                                       {"held_out_dis_flow_epe_px", flowEpeJson(e)},
                                       {"seconds", rounded(s, 1)}});
        try {
            fs::create_directories(in.outDir);
            common::writeFileAtomically(file.string(), doc.dump(2) + "\n");
        } catch (const std::exception& ex) {
            err << "deformscope-cli train-samples: " << ex.what() << "\n";
            return 2;
        }
        out << "wrote " << file.string() << "\n";
    }
    return 0;
}

// `images` sample images and masks from the held-out seeds (never seen in training) into
// outDir/images/sample_NN(_mask).png; their list (files, seeds, objects) for training.json.
Json writeHeldOutImages(const std::string& outDir, int64_t images, int64_t size, std::ostream& out) {
    Json imagesJson = Json::array();
    if (images <= 0)
        return imagesJson;
    if (!samples::canWriteImages()) {
        out << "\nno sample images written: this build has no image writer (core/imaging)\n";
        return imagesJson;
    }
    const fs::path dir = fs::path(outDir) / "images";
    fs::create_directories(dir);
    for (int64_t i = 0; i < images; ++i) {
        const uint64_t seed = samples::kHeldOutSeedBase + static_cast<uint64_t>(i);
        const samples::SyntheticSample s = samples::generateSample(seed, size);
        char stem[32];
        std::snprintf(stem, sizeof stem, "sample_%02d", static_cast<int>(i + 1));
        samples::writeSampleImages(s, (dir / (std::string(stem) + ".png")).string(),
                                   (dir / (std::string(stem) + "_mask.png")).string());
        imagesJson.push_back(Json::object({{"image", Json("images/" + std::string(stem) + ".png")},
                                           {"mask", Json("images/" + std::string(stem) + "_mask.png")},
                                           {"seed", Json(seed)},
                                           {"objects", objectsJson(s)}}));
    }
    out << "\nwrote " << images << " sample images and masks to " << dir.string() << "\n";
    return imagesJson;
}

int runTrainSamples(const TrainInputs& in, Io& io) {
    std::ostream& out = io.out;
    std::ostream& err = io.err;
    if (!in.evaluate.empty())
        return runEvaluateAlign(in, out, err);
    const samples::TrainConfig& config = in.config;
    const std::string& outDir = in.outDir;
    const int64_t images = in.images;
    if (outDir.empty()) {
        err << "deformscope-cli train-samples: --out DIR is required\n";
        return 2;
    }
    std::vector<Variant> variants;
    {
        std::stringstream list(in.variants);
        for (std::string name; std::getline(list, name, ',');) {
            try {
                const Variant var = samples::variantFromName(name);
                if (std::find(variants.begin(), variants.end(), var) == variants.end())
                    variants.push_back(var);
            } catch (const std::invalid_argument& e) {
                err << "deformscope-cli train-samples: " << e.what() << "\n";
                return 2;
            }
        }
        if (variants.empty()) {
            err << "deformscope-cli train-samples: --variants names no variant\n";
            return 2;
        }
    }
    std::error_code ec;
    fs::create_directories(outDir, ec);
    if (ec || !fs::is_directory(outDir)) {
        err << "deformscope-cli train-samples: cannot create " << outDir << "\n";
        return 2;
    }
    std::string command = "deformscope-cli";
    for (const std::string& a : io.words)
        command += " " + a;
    if (in.roiHeads)
        return runTrainRoiHeads(in, io, variants, in.variants != TrainInputs{}.variants);
    if (in.dataOnly) { // the held-out images alone (a dataset for `study`, `erf-average`, `sweep --accuracy`)
        writeHeldOutImages(outDir, images, config.size, out);
        return 0;
    }

    if (std::any_of(variants.begin(), variants.end(), [](Variant v) { return v != Variant::Align; }))
        out << "train-samples: " << config.steps << " steps x " << config.batch << " images of " << config.size << "x"
            << config.size << ", lr " << config.lr << " (offset convs x" << config.offsetLrScale << "), seed "
            << config.seed << ", CPU, " << at::get_num_threads() << " threads\n"
            << std::flush;
    else
        out << "train-samples: CPU, " << at::get_num_threads() << " threads\n" << std::flush;

    std::vector<VariantResult> results;
    for (Variant variant : variants) {
        const std::string name = samples::variantName(variant);
        out << "\n[" << name << "]\n" << std::flush;
        if (variant == Variant::Align) {
            results.push_back({variant, {}, {}, "align.pt", trainAlignSample(in, out)});
            continue;
        }
        torch::jit::Module model = samples::buildModel(variant, config.seed);
        const auto t0 = std::chrono::steady_clock::now();
        double windowSum = 0;
        int64_t windowCount = 0;
        const int64_t every = std::max<int64_t>(1, std::min<int64_t>(50, config.steps / 10));
        samples::TrainReport report = samples::train(model, config, [&](int64_t step, double loss) {
            windowSum += loss;
            ++windowCount;
            if (step % every == 0 || step == config.steps) {
                const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                out << "  " << name << " step " << step << "/" << config.steps << "  loss "
                    << fixed(windowSum / windowCount, 4) << "  (" << fixed(s, 1) << " s)\n"
                    << std::flush;
                windowSum = 0;
                windowCount = 0;
            }
        });
        const std::string file = name + ".pt";
        const Json training = Json::object({{"steps", Json(config.steps)},
                                            {"batch", Json(config.batch)},
                                            {"seed", Json(config.seed)},
                                            {"held_out_images", Json(config.evalImages)},
                                            {"held_out_pixel_accuracy", rounded(report.heldOutPixelAccuracy, 4)},
                                            {"held_out_mean_iou", rounded(report.heldOutMeanIoU, 4)}});
        samples::saveModel(model, (fs::path(outDir) / file).string(),
                           samples::modelMetadataJson(variant, config.size, Json::object({{"training", training}})));
        out << "  " << name << ": trained in " << fixed(report.seconds, 1) << " s; held-out (" << config.evalImages
            << " images) pixel accuracy " << fixed(report.heldOutPixelAccuracy, 4) << ", mean IoU "
            << fixed(report.heldOutMeanIoU, 4) << "; wrote " << (fs::path(outDir) / file).string() << "\n"
            << std::flush;
        std::vector<samples::SamplingSpread> spread = samples::samplingSpread(model, kSpreadImages, config.size);
        out << "  " << name << " sampling spread (mean distance of the 9 sampling points, image px; "
            << "background / small / medium / large objects):\n";
        for (const auto& s : spread)
            out << "    " << s.block << ": " << fixed(s.background, 2) << " / " << fixed(s.small, 2) << " / "
                << fixed(s.medium, 2) << " / " << fixed(s.large, 2) << "   mean |offset| " << fixed(s.meanAbsOffset, 2)
                << " px, mean mask " << fixed(s.meanMask, 3)
                << (s.deformableKernel ? "; kernel reach " + fixed(s.kernelBackground, 3) + " / " +
                                             fixed(s.kernelSmall, 3) + " / " + fixed(s.kernelMedium, 3) + " / " +
                                             fixed(s.kernelLarge, 3) + " cells, mean |kernel offset| " +
                                             fixed(s.meanAbsKernelOffset, 3) + " cells"
                                       : std::string())
                << "\n";
        out << std::flush;
        results.push_back({variant, std::move(report), std::move(spread), file, Json()});
    }

    // Sample images from held-out seeds.
    const Json imagesJson = writeHeldOutImages(outDir, images, config.size, out);

    // Summary table and training.json.
    out << "\n| variant | train s | held-out pixel acc | mean IoU | IoU bg / disc / square / triangle |\n"
        << "|---|---:|---:|---:|---|\n";
    std::ostringstream schedule;
    schedule << "linear warm-up, cosine to " << config.minLrScale << " x lr";
    Json json = Json::object(
        {{"command", Json(command)},
         {"settings", Json::object({{"steps", Json(config.steps)},
                                    {"batch", Json(config.batch)},
                                    {"size", Json(config.size)},
                                    {"lr", Json(config.lr)},
                                    {"seed", Json(config.seed)},
                                    {"optimizer", Json("AdamW")},
                                    {"weight_decay", Json(config.weightDecay)},
                                    {"offset_lr_scale", Json(config.offsetLrScale)},
                                    {"warmup_steps", Json(config.warmupSteps)},
                                    {"schedule", Json(schedule.str())},
                                    {"held_out_images", Json(config.evalImages)},
                                    {"held_out_first_seed", Json(samples::kHeldOutSeedBase)},
                                    {"sampling_spread_images", Json(kSpreadImages)}})},
         {"machine", Json::object({{"device", Json("cpu")},
                                   {"torch_threads", Json(at::get_num_threads())},
                                   {"hardware_concurrency", Json(std::thread::hardware_concurrency())}})}});
    Json variantReports = Json::array();
    for (size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        const auto& rep = r.report;
        const std::string name = samples::variantName(r.variant);
        if (r.variant == Variant::Align) {
            const Json& epe = r.alignEntry["held_out_epe_px"];
            out << "| align | " << fixed(r.alignEntry["train_seconds"].get<double>(), 1) << " | EPE "
                << fixed(epe["all"].get<double>(), 3) << " px (frame), " << fixed(epe["objects"].get<double>(), 3)
                << " px (objects) | | |\n";
            variantReports.push_back(r.alignEntry);
            continue;
        }
        std::string ious;
        for (size_t k = 0; k < rep.heldOutClassIoU.size(); ++k)
            ious += (k ? " / " : "") + fixed(rep.heldOutClassIoU[k], 3);
        out << "| " << name << " | " << fixed(rep.seconds, 1) << " | " << fixed(rep.heldOutPixelAccuracy, 4) << " | "
            << fixed(rep.heldOutMeanIoU, 4) << " | " << ious << " |\n";
        const size_t tail = std::min<size_t>(50, rep.losses.size());
        double last = 0;
        for (size_t k = rep.losses.size() - tail; k < rep.losses.size(); ++k)
            last += rep.losses[k] / static_cast<double>(tail);
        variantReports.push_back(Json::object({{"variant", Json(name)},
                                         {"file", Json(r.file)},
                                         {"train_seconds", rounded(rep.seconds, 1)},
                                         {"eval_seconds", rounded(rep.evalSeconds, 1)},
                                         {"held_out_pixel_accuracy", rounded(rep.heldOutPixelAccuracy, 4)},
                                         {"held_out_mean_iou", rounded(rep.heldOutMeanIoU, 4)},
                                         {"held_out_class_iou", roundedArray(rep.heldOutClassIoU, 4)},
                                         {"final_loss", rounded(last, 4)},
                                         {"sampling_spread", spreadJson(r.spread)},
                                         {"loss_curve", lossCurve(rep.losses, std::max<int64_t>(1, config.steps / 40))}}));
    }
    json["variants"] = variantReports;
    json["images"] = imagesJson;
    common::writeJsonFile((fs::path(outDir) / "training.json").string(), json);
    out << "\nwrote " << (fs::path(outDir) / "training.json").string() << "\n";
    return 0;
}

// A check that the value is a whole number ≥ `least` (and ≤ `most`), with the message the command has always given.
std::function<std::string(const std::string&)> wholeNumber(int64_t least, int64_t most, std::string message) {
    return [=](const std::string& v) {
        int64_t n = 0;
        return CLI::detail::lexical_cast(v, n) && n >= least && n <= most ? std::string() : message;
    };
}

} // namespace

void addTrainSamples(CLI::App& app, Commands& commands) {
    auto [sub, in] = addCommand<TrainInputs>(app, commands, "train-samples", kTrainSamplesHelp, runTrainSamples);
    samples::TrainConfig& c = in->config;
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    // Not required() for CLI11: an unknown option is reported before a missing --out.
    sub->add_option("--out", in->outDir, "the folder to write into (required)")->type_name("DIR");
    sub->add_option("--variants", in->variants,
                    "regular, dcn_v1, dcn_v2, dk (comma-separated; these four by default), align (only when named)")
        ->type_name("LIST");
    in->steps = sub->add_option("--steps", c.steps, "training steps")->type_name("N")->check(
        wholeNumber(1, kMax, "--steps must be a positive integer"));
    in->batch = sub->add_option("--batch", c.batch, "images per step")->type_name("B")->check(
        wholeNumber(1, kMax, "--batch must be a positive integer"));
    in->size = sub->add_option("--size", c.size, "image side (a multiple of 8, at least 16; align: the training crop)")->type_name("S")->check(
        [](const std::string& v) {
            int64_t n = 0;
            return CLI::detail::lexical_cast(v, n) && n >= 16 && n % 8 == 0
                       ? std::string()
                       : std::string("--size must be a multiple of 8, at least 16");
        });
    in->seed = sub->add_option("--seed", c.seed, "random seed")->type_name("S")->check(
        wholeNumber(0, kMax, "--seed must be a non-negative integer"));
    sub->add_option("--images", in->images, "sample images to write (0 to 99)")->type_name("N")->check(
        wholeNumber(0, 99, "--images must be an integer from 0 to 99"));
    in->evalImages = sub->add_option("--eval-images", c.evalImages, "held-out images for the accuracy")->type_name("N")->check(
        wholeNumber(0, kMax, "--eval-images must be a non-negative integer"));
    in->lr = sub->add_option("--lr", c.lr, "learning rate")->type_name("LR")->check([](const std::string& v) {
        double x = 0;
        return CLI::detail::lexical_cast(v, x) && x > 0 ? std::string() : std::string("--lr must be a positive number");
    });
    sub->add_flag("--roi-heads", in->roiHeads,
                  "train the RoI sample heads (roi_regular, roi_dcn_v1, roi_dcn_v2: a box classifier on the trained "
                  "DIR/<variant>.pt's frozen trunk, deformable RoI pooling for the DCN ones) and write "
                  "DIR/roi_<variant>.pt and DIR/roi_training.json");
    sub->add_flag("--data-only", in->dataOnly,
                  "write only the held-out sample images and masks (--images N at --size S) into DIR/images, no "
                  "training: a dataset for study, erf-average and sweep --accuracy");
    sub->add_option("--evaluate", in->evaluate,
                    "score a trained align.pt on the held-out pairs (--eval-images, default 256) beside OpenCV's DIS "
                    "flow instead of training; with --out, DIR/evaluation.json")
        ->type_name("FILE");
    in->offsetLrScale = sub->add_option("--offset-lr-scale", c.offsetLrScale, "learning-rate factor of the offset convolutions")
        ->type_name("X")
        ->check([](const std::string& v) {
            double x = 0;
            return CLI::detail::lexical_cast(v, x) && x >= 0 ? std::string()
                                                             : std::string("--offset-lr-scale must be a non-negative number");
        });
}

} // namespace deformscope::cli
