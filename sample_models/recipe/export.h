// Writing the sample models and sample images: model files with their
// deformscope.json metadata, and PNGs of generated samples.
#pragma once

#include "sample_models/recipe/network.h"
#include "sample_models/recipe/synthetic.h"

#include <string>

namespace torch::jit {
struct Module;
}

namespace deformscope::samples {

// Name of the TorchScript extra file that carries the metadata.
constexpr const char* kMetadataFile = "deformscope.json";

// The metadata JSON of a sample model (format "deformscope-model/1"): task,
// input size, mean/std (the ones in network.h), colour order, class names,
// suggested layer, variant and a one-line description. `extraFields`, when not
// empty, is inserted verbatim as further members (e.g. "\"seed\": 1").
std::string modelMetadataJson(Variant variant, int64_t inputSize = 128, const std::string& extraFields = {});

// Saves `model` as TorchScript with `metadataJson` as the extra file
// deformscope.json. Atomic: writes `path`.tmp, then renames it over `path`.
// Throws (c10::Error or std::runtime_error) when the file cannot be written.
void saveModel(torch::jit::Module& model, const std::string& path, const std::string& metadataJson);

// True when this build can write PNGs (core_imaging was available).
bool canWriteImages();

// Writes the sample's image as 8-bit RGB and its mask as an 8-bit grey image of
// class ids (0..3). Throws std::runtime_error on failure or when
// canWriteImages() is false.
void writeSampleImages(const SyntheticSample& sample, const std::string& imagePath, const std::string& maskPath);

// A JSON string literal (quotes and escapes included).
std::string jsonString(const std::string& s);

} // namespace deformscope::samples
