#include "sample_models/recipe/export.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/imaging/image.h"
#endif

#include "core/common/atomic_file.h"
#include "core/common/npy.h"

#include <sstream>
#include <stdexcept>

namespace deformscope::samples {
namespace {

std::string description(Variant v) {
    switch (v) {
    case Variant::Regular:
        return "DeformScope sample: small fully-convolutional segmentation net (discs, squares, triangles of "
               "8-96 px on textured backgrounds); block1-3 are regular 3x3 convs";
    case Variant::DCNv1:
        return "DeformScope sample: small fully-convolutional segmentation net (discs, squares, triangles of "
               "8-96 px on textured backgrounds); block1-3 are DCNv1 deformable 3x3 convs "
               "(torchvision::deform_conv2d, offsets from the conv 'offset')";
    case Variant::DCNv2:
        return "DeformScope sample: small fully-convolutional segmentation net (discs, squares, triangles of "
               "8-96 px on textured backgrounds); block1-3 are DCNv2 modulated deformable 3x3 convs "
               "(torchvision::deform_conv2d; conv 'offset' gives 18 offsets + 9 mask logits, mask = sigmoid)";
    case Variant::Align:
        return "DeformScope sample: two-frame alignment net (EDVR-style). forward(reference, support) -> the "
               "reference frame rebuilt, [N,3,H,W] (normalised). 'feat' (shared weights) gives features of both "
               "frames; 'motion' turns a fixed matching cost (squared differences of the frames over +-6 px, 5x5 "
               "and multi-scale windows) and both frames' features into offset features (dilated 3x3 convs); the "
               "conv 'align.offset' gives 18 offsets + 9 mask logits; the DCNv2 layer 'align' "
               "(torchvision::deform_conv2d, 3x3, 32->32) samples the support frame's features; 'recon' rebuilds "
               "the reference. Stride 1 throughout: the mean offset over the 9 taps is the motion (dy, dx) in input "
               "pixels from reference to support. Trained on synthetic moving shapes (objects shifted up to 6 px "
               "per axis and rotated up to 5 degrees; still background)";
    case Variant::DK:
        return "DeformScope sample: small fully-convolutional segmentation net (discs, squares, triangles of "
               "8-96 px on textured backgrounds); block1-3 are depthwise-separable Deformable Kernels blocks: "
               "a depthwise 3x3 deformscope::deform_kernel2d resampling each position's kernel from a 5x5 scope "
               "'weight' at kernel offsets from the conv 'kernel_offset' (local mode, no image offsets), then "
               "the 1x1 conv 'pointwise' and ReLU";
    }
    return {};
}

} // namespace

common::Json metadataHead(const std::string& task, int64_t inputSize, const common::Json& inputs) {
    using common::Json;
    Json j = Json::object({{"format", Json("deformscope-model/1")}, {"task", Json(task)}});
    if (!inputs.is_null())
        j["inputs"] = inputs;
    j["input_size"] = Json::array({Json(inputSize), Json(inputSize)});
    j["mean"] = Json::array({Json(kMean[0]), Json(kMean[1]), Json(kMean[2])});
    j["std"] = Json::array({Json(kStd[0]), Json(kStd[1]), Json(kStd[2])});
    j["color_order"] = Json("RGB");
    return j;
}

std::string modelMetadataJson(Variant variant, int64_t inputSize, const common::Json& extra) {
    using common::Json;
    Json j;
    if (variant == Variant::Align) {
        j = metadataHead("alignment", inputSize,
                         Json::array({Json::object({{"name", Json("reference")}}),
                                      Json::object({{"name", Json("support")}})}));
        j["suggested_layer"] = Json("align");
    } else {
        Json names = Json::array();
        for (const std::string& n : classNames())
            names.push_back(Json(n));
        j = metadataHead("segmentation", inputSize);
        j["class_names"] = names;
        j["suggested_layer"] = Json("block3");
    }
    j["variant"] = Json(variantName(variant));
    j["description"] = Json(description(variant));
    for (const auto& [key, value] : extra.items())
        j[key] = value;
    return j.dump(1) + "\n";
}

void saveModel(torch::jit::Module& model, const std::string& path, const std::string& metadataJson) {
    std::ostringstream bytes;
    model.save(bytes, {{kMetadataFile, metadataJson}});
    common::writeFileAtomically(path, bytes.str());
}

bool canWriteImages() {
#ifdef DEFORMSCOPE_WITH_IMAGING
    return true;
#else
    return false;
#endif
}

void writeSampleImages(const SyntheticSample& sample, const std::string& imagePath, const std::string& maskPath) {
#ifdef DEFORMSCOPE_WITH_IMAGING
    imaging::writeImage(imagePath, imageBytes(sample.image));
    imaging::writeImage(maskPath, sample.mask.to(at::kByte).contiguous());
#else
    (void)sample;
    (void)imagePath;
    (void)maskPath;
    throw std::runtime_error("this build has no image writer (core/imaging was not built)");
#endif
}

void writePairFiles(const SyntheticPair& pair, const std::string& stem) {
#ifdef DEFORMSCOPE_WITH_IMAGING
    imaging::writeImage(stem + "_a.png", imageBytes(pair.a.image));
    imaging::writeImage(stem + "_b.png", imageBytes(pair.b));
    imaging::writeImage(stem + "_a_mask.png", pair.a.instances.to(at::kByte).contiguous());
    imaging::writeImage(stem + "_b_mask.png", pair.bInstances.to(at::kByte).contiguous());
    common::writeNpy(stem + "_motion.npy", pair.motion.contiguous());
#else
    (void)pair;
    (void)stem;
    throw std::runtime_error("this build has no image writer (core/imaging was not built)");
#endif
}

} // namespace deformscope::samples
