#include "sample_models/recipe/export.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#ifdef DEFORMSCOPE_WITH_IMAGING
#include "core/imaging/image.h"
#endif

#include <cstdio>
#include <filesystem>
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
    }
    return {};
}

std::string number(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

} // namespace

std::string jsonString(const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::string modelMetadataJson(Variant variant, int64_t inputSize, const std::string& extraFields) {
    std::ostringstream j;
    j << "{\"format\": \"deformscope-model/1\", \"task\": \"segmentation\", \"input_size\": [" << inputSize << ", "
      << inputSize << "],\n"
      << " \"mean\": [" << number(kMean[0]) << ", " << number(kMean[1]) << ", " << number(kMean[2]) << "], \"std\": ["
      << number(kStd[0]) << ", " << number(kStd[1]) << ", " << number(kStd[2]) << "], \"color_order\": \"RGB\",\n"
      << " \"class_names\": [";
    const auto names = classNames();
    for (size_t i = 0; i < names.size(); ++i)
        j << (i ? ", " : "") << jsonString(names[i]);
    j << "],\n \"suggested_layer\": \"block3\", \"variant\": " << jsonString(variantName(variant))
      << ",\n \"description\": " << jsonString(description(variant));
    if (!extraFields.empty())
        j << ",\n " << extraFields;
    j << "}\n";
    return j.str();
}

void saveModel(torch::jit::Module& model, const std::string& path, const std::string& metadataJson) {
    const std::string tmp = path + ".tmp";
    try {
        model.save(tmp, {{kMetadataFile, metadataJson}});
        std::filesystem::rename(tmp, path);
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw;
    }
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
    const at::Tensor rgb = (sample.image * 255.0).round().clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
    imaging::writeImage(imagePath, rgb);
    imaging::writeImage(maskPath, sample.mask.to(at::kByte).contiguous());
#else
    (void)sample;
    (void)imagePath;
    (void)maskPath;
    throw std::runtime_error("this build has no image writer (core/imaging was not built)");
#endif
}

} // namespace deformscope::samples
