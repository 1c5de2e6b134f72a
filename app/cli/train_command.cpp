// deformscope-cli train-samples: the sample models' training recipe, end to end.
#include "app/cli/commands.h"
#include "core/common/atomic_file.h"

#include "core/common/json.h"

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
#include <ostream>
#include <sstream>
#include <thread>

namespace deformscope::cli {
namespace {

namespace fs = std::filesystem;
using samples::Variant;

constexpr const char* kUsage =
    "usage: deformscope-cli train-samples --out DIR [--variants regular,dcn_v1,dcn_v2,dk] [--steps N] [--batch B]\n"
    "                                     [--size S] [--seed S] [--images N] [--eval-images N] [--lr LR]\n"
    "                                     [--offset-lr-scale X]\n";

bool parseInt(const std::string& text, int64_t lo, int64_t& value) {
    try {
        size_t used = 0;
        const long long v = std::stoll(text, &used);
        if (used != text.size() || v < lo)
            return false;
        value = v;
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

bool parseDouble(const std::string& text, double& value) {
    try {
        size_t used = 0;
        value = std::stod(text, &used);
        return used == text.size();
    } catch (const std::exception&) {
        return false;
    }
}

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

void writeText(const fs::path& path, const std::string& text) { common::writeFileAtomically(path.string(), text); }

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

} // namespace

int runTrainSamples(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    samples::TrainConfig config; // defaults: the shipped models' settings
    std::string outDir;
    std::vector<Variant> variants(samples::kAllVariants.begin(), samples::kAllVariants.end());
    int64_t images = 12;
    auto bad = [&](const std::string& message) {
        err << "deformscope-cli train-samples: " << message << "\n" << kUsage;
        return 2;
    };
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        const bool hasValue = i + 1 < args.size();
        static const std::vector<std::string> valued = {"--out",  "--variants", "--steps", "--batch",      "--size",
                                                        "--seed", "--images",   "--lr",    "--eval-images", "--offset-lr-scale"};
        if (!hasValue && std::find(valued.begin(), valued.end(), a) != valued.end())
            return bad("option " + a + " needs a value");
        int64_t v = 0;
        if (a == "--help") {
            out << kUsage;
            return 0;
        } else if (a == "--out") {
            outDir = args[++i];
        } else if (a == "--variants") {
            variants.clear();
            std::stringstream list(args[++i]);
            for (std::string name; std::getline(list, name, ',');) {
                try {
                    const Variant var = samples::variantFromName(name);
                    if (std::find(variants.begin(), variants.end(), var) == variants.end())
                        variants.push_back(var);
                } catch (const std::invalid_argument& e) {
                    return bad(e.what());
                }
            }
            if (variants.empty())
                return bad("--variants names no variant");
        } else if (a == "--steps") {
            if (!parseInt(args[++i], 1, v))
                return bad("--steps must be a positive integer");
            config.steps = v;
        } else if (a == "--batch") {
            if (!parseInt(args[++i], 1, v))
                return bad("--batch must be a positive integer");
            config.batch = v;
        } else if (a == "--size") {
            if (!parseInt(args[++i], 16, v) || v % 8 != 0)
                return bad("--size must be a multiple of 8, at least 16");
            config.size = v;
        } else if (a == "--seed") {
            if (!parseInt(args[++i], 0, v))
                return bad("--seed must be a non-negative integer");
            config.seed = static_cast<uint64_t>(v);
        } else if (a == "--images") {
            if (!parseInt(args[++i], 0, v) || v > 99)
                return bad("--images must be an integer from 0 to 99");
            images = v;
        } else if (a == "--eval-images") {
            if (!parseInt(args[++i], 0, v))
                return bad("--eval-images must be a non-negative integer");
            config.evalImages = v;
        } else if (a == "--lr") {
            if (!parseDouble(args[++i], config.lr) || !(config.lr > 0))
                return bad("--lr must be a positive number");
        } else if (a == "--offset-lr-scale") {
            if (!parseDouble(args[++i], config.offsetLrScale) || !(config.offsetLrScale >= 0))
                return bad("--offset-lr-scale must be a non-negative number");
        } else {
            return bad("unexpected argument '" + a + "'");
        }
    }
    if (outDir.empty())
        return bad("--out DIR is required");

    std::error_code ec;
    fs::create_directories(outDir, ec);
    if (ec || !fs::is_directory(outDir)) {
        err << "deformscope-cli train-samples: cannot create " << outDir << "\n";
        return 2;
    }
    std::string command = "deformscope-cli train-samples";
    for (const std::string& a : args)
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
    writeText(fs::path(outDir) / "training.json", json.dump(2) + "\n");
    out << "\nwrote " << (fs::path(outDir) / "training.json").string() << "\n";
    return 0;
}

} // namespace deformscope::cli
