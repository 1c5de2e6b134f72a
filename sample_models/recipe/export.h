// Writing the sample models and sample images: model files with their
// deformscope.json metadata, and PNGs of generated samples.
#pragma once

#include "core/common/json_file.h"
#include "core/model/metadata.h"

#include "sample_models/recipe/network.h"
#include "sample_models/recipe/synthetic.h"

#include <string>

namespace torch::jit {
struct Module;
}

namespace deformscope::samples {

// The TorchScript extra file that carries the metadata (core/model reads it).
using model::kMetadataFile;

// The metadata JSON of a sample model (format "deformscope-model/1"): task,
// input size, mean/std (the ones in network.h), colour order, class names,
// suggested layer, variant and a one-line description, followed by the members
// of `extra` (a JSON object, e.g. {"training": {...}}). Variant::Align: task
// "alignment", "inputs" [{"name": "reference"}, {"name": "support"}], no class
// names, suggested layer "align".
std::string modelMetadataJson(Variant variant, int64_t inputSize = 128,
                              const common::Json& extra = common::Json::object());

// The keys every sample model's metadata starts with: format, task, `inputs` (when not
// null), input size, mean/std, colour order (modelMetadataJson's and the RoI heads').
common::Json metadataHead(const std::string& task, int64_t inputSize, const common::Json& inputs = nullptr);

// Saves `model` as TorchScript with `metadataJson` as the extra file
// deformscope.json. Atomic (common::writeFileAtomically: a unique temporary, then renamed over `path`).
// Throws (c10::Error or std::runtime_error) when the file cannot be written.
void saveModel(torch::jit::Module& model, const std::string& path, const std::string& metadataJson);

// True when this build can write PNGs (core_imaging was available).
bool canWriteImages();

// Writes the sample's image as 8-bit RGB and its mask as an 8-bit grey image of
// class ids (0..3). Throws std::runtime_error on failure or when
// canWriteImages() is false.
void writeSampleImages(const SyntheticSample& sample, const std::string& imagePath, const std::string& maskPath);

// Writes a frame pair (synthetic.h) as STEM_a.png and STEM_b.png (8-bit RGB),
// STEM_a_mask.png and STEM_b_mask.png (8-bit grey: 0 background, k where object
// k is visible in that frame) and STEM_motion.npy (float32 [2, H, W]: dx, dy of
// every pixel of frame A). Throws like writeSampleImages.
void writePairFiles(const SyntheticPair& pair, const std::string& stem);

} // namespace deformscope::samples
