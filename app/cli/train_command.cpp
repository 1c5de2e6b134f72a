// deformscope-cli train-samples: the sample models' training recipe, end to end.
#include "app/cli/commands.h"
#include "core/common/atomic_file.h"

#include "core/common/json_file.h"

#include "sample_models/recipe/analysis.h"
#include "sample_models/recipe/export.h"
#include "sample_models/recipe/network.h"
#include "sample_models/recipe/synthetic.h"
#include "sample_models/recipe/train.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <ostream>
#include <sstream>
#include <thread>

namespace deformscope::cli {
namespace {

// What each command does, for its --help and the tool's list of commands.
constexpr const char* kTrainSamplesHelp =
    "the sample models' recipe: generate the synthetic data, train each variant on the CPU, write "
    "DIR/<variant>.pt, DIR/training.json and sample images (sample_models/MODELS.md)";


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
};

int runTrainSamples(const TrainInputs& in, Io& io) {
    std::ostream& out = io.out;
    std::ostream& err = io.err;
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

    out << "train-samples: " << config.steps << " steps x " << config.batch << " images of " << config.size << "x"
        << config.size << ", lr " << config.lr << " (offset convs x" << config.offsetLrScale << "), seed " << config.seed
        << ", CPU, " << at::get_num_threads() << " threads\n"
        << std::flush;

    std::vector<VariantResult> results;
    for (Variant variant : variants) {
        const std::string name = samples::variantName(variant);
        out << "\n[" << name << "]\n" << std::flush;
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
        results.push_back({variant, std::move(report), std::move(spread), file});
    }

    // Sample images from held-out seeds.
    Json imagesJson = Json::array();
    if (images > 0) {
        if (!samples::canWriteImages()) {
            out << "\nno sample images written: this build has no image writer (core/imaging)\n";
        } else {
            const fs::path dir = fs::path(outDir) / "images";
            fs::create_directories(dir);
            for (int64_t i = 0; i < images; ++i) {
                const uint64_t seed = samples::kHeldOutSeedBase + static_cast<uint64_t>(i);
                const samples::SyntheticSample s = samples::generateSample(seed, config.size);
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
        }
    }

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
    sub->add_option("--variants", in->variants, "regular, dcn_v1, dcn_v2, dk (comma-separated)")->type_name("LIST");
    sub->add_option("--steps", c.steps, "training steps")->type_name("N")->check(
        wholeNumber(1, kMax, "--steps must be a positive integer"));
    sub->add_option("--batch", c.batch, "images per step")->type_name("B")->check(
        wholeNumber(1, kMax, "--batch must be a positive integer"));
    sub->add_option("--size", c.size, "image side (a multiple of 8, at least 16)")->type_name("S")->check(
        [](const std::string& v) {
            int64_t n = 0;
            return CLI::detail::lexical_cast(v, n) && n >= 16 && n % 8 == 0
                       ? std::string()
                       : std::string("--size must be a multiple of 8, at least 16");
        });
    sub->add_option("--seed", c.seed, "random seed")->type_name("S")->check(
        wholeNumber(0, kMax, "--seed must be a non-negative integer"));
    sub->add_option("--images", in->images, "sample images to write (0 to 99)")->type_name("N")->check(
        wholeNumber(0, 99, "--images must be an integer from 0 to 99"));
    sub->add_option("--eval-images", c.evalImages, "held-out images for the accuracy")->type_name("N")->check(
        wholeNumber(0, kMax, "--eval-images must be a non-negative integer"));
    sub->add_option("--lr", c.lr, "learning rate")->type_name("LR")->check([](const std::string& v) {
        double x = 0;
        return CLI::detail::lexical_cast(v, x) && x > 0 ? std::string() : std::string("--lr must be a positive number");
    });
    sub->add_option("--offset-lr-scale", c.offsetLrScale, "learning-rate factor of the offset convolutions")
        ->type_name("X")
        ->check([](const std::string& v) {
            double x = 0;
            return CLI::detail::lexical_cast(v, x) && x >= 0 ? std::string()
                                                             : std::string("--offset-lr-scale must be a non-negative number");
        });
}

} // namespace deformscope::cli
