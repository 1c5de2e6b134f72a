// The synthetic segmentation data the sample models are trained on.
//
// generateSample(seed) draws one image of 1 to 3 shapes (disc, square, triangle)
// whose sizes vary strongly (log-uniform, 8 to 96 px at 128×128) on a textured
// background, with its per-pixel ground truth. Plain C++ (no OpenCV, no ATen
// kernels); the same seed gives the same sample bit for bit with the same C
// library (the random numbers come from our own generator, not from the standard
// library's distributions or torch's; only std::sin and friends could differ in
// the last bit elsewhere). Thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace deformscope::samples {

// Class ids of the masks: 0 background, 1 disc, 2 square, 3 triangle.
enum SampleClass : int64_t { kBackground = 0, kDisc = 1, kSquare = 2, kTriangle = 3 };
constexpr int64_t kNumClasses = 4;

// {"background", "disc", "square", "triangle"}, indexed by class id.
std::vector<std::string> classNames();

// One drawn shape, in image pixels (x right, y down; pixel (i, j) covers
// [j, j+1) × [i, i+1)). `size` is the disc's diameter, the square's side or the
// equilateral triangle's side; `angle` (radians) rotates squares and triangles.
// `expectedArea` is the shape's area before clipping by the image border and
// occlusion by later shapes; `fullyInside` says no clipping happened.
struct SyntheticObject {
    int64_t cls = kBackground;
    double cx = 0, cy = 0, size = 0, angle = 0;
    double expectedArea = 0;
    bool fullyInside = true;
};

struct SyntheticSample {
    at::Tensor image; // [3, H, W] float32 in [0, 1], RGB
    at::Tensor mask;  // [H, W] int64 class ids
    at::Tensor instances; // [H, W] int64: 0 background, k for objects[k - 1] (where it is visible)
    std::vector<SyntheticObject> objects; // in drawing order (later ones occlude earlier ones)
};

// Deterministic per (seed, size). Object sizes scale with `size` (8 to 96 px at
// size 128); size must be at least 16. Throws std::invalid_argument otherwise.
SyntheticSample generateSample(uint64_t seed, int64_t size = 128);

// Smallest and largest object size for an image of `size` pixels.
double minObjectSize(int64_t size);
double maxObjectSize(int64_t size);

} // namespace deformscope::samples
