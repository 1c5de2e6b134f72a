// The synthetic segmentation data the sample models are trained on.
//
// generateSample(seed) draws one image of 1 to 3 shapes (disc, square, triangle)
// whose sizes vary strongly (log-uniform, 8 to 96 px at 128×128) on a textured
// background, with its per-pixel ground truth. Plain C++ (no OpenCV, no ATen
// kernels); the same seed gives the same sample bit for bit with the same C
// library (the random numbers come from our own generator, not from the standard
// library's distributions or torch's; only std::sin and friends could differ in
// the last bit elsewhere). Thread-safe. generatePair(seed) moves the objects of
// that image to make a second frame, with the true motion of every pixel.
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

// A generated image ([3, H, W] float in [0, 1]) as 8-bit RGB [H, W, 3], as the
// sample PNGs store it and as OpenCV takes it.
at::Tensor imageBytes(const at::Tensor& image);

// Deterministic per (seed, size). Object sizes scale with `size` (8 to 96 px at
// size 128); size must be at least 16. Throws std::invalid_argument otherwise.
SyntheticSample generateSample(uint64_t seed, int64_t size = 128);

// A rigid motion of one object from frame A to frame B of a pair: a rotation by
// `rotation` radians about the object's centre (positive turns +x towards +y,
// i.e. clockwise on screen), then a translation by (dx, dy) pixels.
struct ObjectMotion {
    double dx = 0, dy = 0, rotation = 0;
};

// The motions of generatePair: each axis of the translation uniform in
// [-kPairMaxShift, kPairMaxShift] px, the rotation uniform in ±kPairMaxRotationDeg
// degrees; not scaled with the image size.
constexpr double kPairMaxShift = 6.0;
constexpr double kPairMaxRotationDeg = 5.0;

// Two frames of one scene for alignment: frame A is exactly generateSample(seed,
// size); in frame B every object has moved rigidly (its outline, shading and
// grating alike; stacking order kept) and the background has not moved; frame B
// has its own sensor noise of the same strength.
struct SyntheticPair {
    SyntheticSample a;         // frame A (the reference): image, class mask, instances, objects
    at::Tensor b;              // frame B (the support): [3, H, W] float32 in [0, 1], RGB
    at::Tensor bMask;          // [H, W] int64 class ids in frame B
    at::Tensor bInstances;     // [H, W] int64: 0 background, k where objects[k - 1] is visible in frame B
    // [2, H, W] float32, (dx, dy) per pixel of frame A: where the content at that
    // pixel's centre is in frame B, minus the pixel's centre. On object k (by
    // a.instances) the rigid motion of object k, exact; zero on the background.
    // Content that is hidden in frame B (behind a moved object, or moved out of
    // the image) still has its motion.
    at::Tensor motion;
    std::vector<ObjectMotion> motions; // per object, as a.objects
};

// Deterministic per (seed, size); throws std::invalid_argument for size < 16.
SyntheticPair generatePair(uint64_t seed, int64_t size = 128);

// Smallest and largest object size for an image of `size` pixels.
double minObjectSize(int64_t size);
double maxObjectSize(int64_t size);

} // namespace deformscope::samples
