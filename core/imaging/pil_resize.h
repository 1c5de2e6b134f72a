// The input pipeline of torchvision's ImageNet scripts, reproduced exactly, for
// protocols that must match a published Python script bit for bit (RepLKNet's ERF
// script: transforms.Resize((S, S), BICUBIC) on a PIL image, ToTensor, Normalize).
// The project's own convention (image.h: OpenCV's INTER_AREA / INTER_LINEAR in
// float) differs from it by up to a few grey levels, which moves gradients enough to
// matter when a figure must sit next to theirs.
#pragma once

#include "core/imaging/image.h"

#include <ATen/core/Tensor.h>

namespace deformscope::imaging {

// Pillow's Image.resize(size, Image.BICUBIC) of an RGB image: separable
// convolution with the a = -0.5 cubic, widened by the scale when shrinking, in
// 22-bit fixed point, horizontal pass first (rounded to uint8), then vertical.
// rgbHwcUint8: [H, W, 3] uint8 (any device and strides); returns [size[0], size[1], 3]
// uint8 on the CPU. Throws std::invalid_argument for another shape or dtype, or a
// side <= 0.
at::Tensor resizeBicubicLikePil(const at::Tensor& rgbHwcUint8, InputSize size);

// torchvision's ToTensor then Normalize(mean, std) of an RGB uint8 image, in their
// float32 arithmetic: ((v / 255) - mean) / std. Returns [1, 3, H, W] float32 (RGB,
// or BGR when norm.bgr), contiguous, CPU.
at::Tensor toTensorLikeTorchvision(const at::Tensor& rgbHwcUint8, const Normalization& norm);

// loadImage's reading (any format OpenCV reads; EXIF orientation applied) followed
// by the two steps above: what `transforms.Compose([Resize((H, W), BICUBIC),
// ToTensor(), Normalize(mean, std)])` makes of the file. Same errors as loadImage.
InputImage loadImageLikeTorchvision(const std::string& path, InputSize size, const Normalization& norm = {});

} // namespace deformscope::imaging
