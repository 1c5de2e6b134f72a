// What the deformable layers of a sample model learned, in numbers for the model
// card: how far from its own position each block samples, on the background and
// on objects of different sizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace deformscope::samples {

// Object size buckets (image pixels at 128×128; scaled with other sizes).
constexpr double kSmallObjectBelow = 24.0;  // small: < 24 px
constexpr double kLargeObjectFrom = 48.0;   // large: >= 48 px; medium in between

// The sampling spread of one block: the mean distance, in image pixels, of its
// nine sampling locations (grid + learned offset) from the position they serve,
// averaged over feature positions whose centre pixel lies on the background or
// on a small / medium / large object. For DCNv2 each location is weighted by its
// modulation (so it measures where the layer's weight goes). A regular 3×3 conv
// at stride 8 has 8·(4 + 4√2)/9 ≈ 8.6 px everywhere. `mask` is the mean
// modulation (DCNv2; 1 otherwise), `meanAbsOffset` the mean |Δ| over all offset
// components, in image pixels.
//
// A Deformable Kernels block (DK) samples the image on the regular grid (its
// spread is the grid's, its image offsets zero); what it moves are its kernel's
// taps inside the 5×5 scope kernel. For it `deformableKernel` is true and the
// kernel* fields give the mean distance, in scope cells, of the nine resampled
// tap positions (q_k + Δk) from the scope's centre, per bucket as above (the
// centred 3×3 kernel, zero offsets: (4 + 4√2)/9 ≈ 1.07 cells), and
// meanAbsKernelOffset the mean |Δk| over all kernel-offset components, in cells.
struct SamplingSpread {
    std::string block;
    double background = 0, small = 0, medium = 0, large = 0;
    double meanMask = 1, meanAbsOffset = 0;
    int64_t positionsBackground = 0, positionsSmall = 0, positionsMedium = 0, positionsLarge = 0;
    bool deformableKernel = false;
    double kernelBackground = 0, kernelSmall = 0, kernelMedium = 0, kernelLarge = 0;
    double meanAbsKernelOffset = 0;
};

// Measured on held-out images kHeldOutSeedBase + 0 .. images - 1. One entry per
// block (block1..block3); for the regular variant the offsets are zero.
std::vector<SamplingSpread> samplingSpread(const torch::jit::Module& model, int64_t images, int64_t size = 128);

} // namespace deformscope::samples
