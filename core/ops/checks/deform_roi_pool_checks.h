// Checks of deform_roi_pool (deformable RoI pooling, mmcv's semantics): a slow,
// obvious float64 reference written directly from the formula in
// deform_roi_pool.h with plain loops — forward and its analytic gradients —
// and random cases (deform_roi_pool_reference.cpp); comparisons of the
// operator with the reference, finite differences of both, invariants, bad
// inputs and the self-test rows (deform_roi_pool_checks.cpp). The operator has
// four tensors and three gradients, so it does not go through op_checks.h's
// OpUnderTest; its checks reuse relativeError and randomLike from there.
// For checking kernels only. Every function that runs the operator needs
// registerOperators() first; none throws for a failed comparison — it returns
// the error for the caller to judge.
#pragma once

#include "core/ops/checks/selftest.h"
#include "core/ops/deform_roi_pool.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace deformscope::ops::checks {

// The reference: any dtype and device in, float64 on the CPU out. An empty
// (or undefined) offset means none; the mask is read only when p.use_mask.
at::Tensor roiPoolReferenceForward(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& offset,
                                   const at::Tensor& mask, const DeformRoiPoolParams& p);

// Gradients of sum(roiPoolReferenceForward(...) * grad_output), worked out by
// hand in the same loops: (input, offset, mask), float64 on the CPU; zeros
// shaped like the placeholder for an offset or mask that does not take part.
DeformRoiPoolGrads roiPoolReferenceBackward(const at::Tensor& grad_output, const at::Tensor& input,
                                            const at::Tensor& rois, const at::Tensor& offset, const at::Tensor& mask,
                                            const DeformRoiPoolParams& p);

// Where a case's RoIs lie relative to the feature map.
enum class RoiPlacement {
    Inside,        // every RoI inside the feature map
    PartlyOutside, // RoIs crossing the borders, some reads beyond -1 and the extent
    Mixed,         // PartlyOutside plus one RoI far outside, one of size 0 and one with x2 < x1, y2 < y1
};

const char* roiPlacementName(RoiPlacement placement);

// A random deform_roi_pool case. RoIs are drawn in feature-map coordinates and
// divided by spatial_scale (image coordinates, as the operator takes them);
// batch indices are random integers in [0, batch).
struct RoiPoolCaseSpec {
    int64_t batch = 2;
    int64_t channels = 3;
    int64_t height = 9;
    int64_t width = 11;
    int64_t rois = 6;
    DeformRoiPoolParams params = defaultParams();
    RoiPlacement placement = RoiPlacement::PartlyOutside;
    bool offsets = false;      // DCNv1: normalised offsets N(0, 1) * offset_scale, else an empty tensor
    double offset_scale = 1.0;
    // Every read at least 1e-4 away from an integer (where the bilinear slope
    // jumps and the clamps and range limits lie): for finite differences.
    // The case is redrawn from successive seeds until it is.
    bool awayFromKinks = false;

    static DeformRoiPoolParams defaultParams(); // pooled 3 x 4, spatial_scale 0.5, sampling_ratio 2
    std::string describe() const;
};

struct RoiPoolCaseTensors {
    at::Tensor input, rois, offset, mask; // offset empty without offsets, mask empty without use_mask
};

// Deterministic for a given seed; created in float64 on the CPU, then converted.
RoiPoolCaseTensors makeRoiPoolCase(const RoiPoolCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                   const at::Device& device);

// The smallest distance from an integer of any read's row or column (infinity for no reads).
double roiPoolKinkDistance(const RoiPoolCaseTensors& t, const DeformRoiPoolParams& p);

// Relative errors (op_checks.h's relativeError) of the forward and of the
// gradients (input, offset, mask); 0 for a tensor that does not take part.
struct RoiPoolComparison {
    double forward = 0;
    std::array<double, 3> grads{};
    double worst() const;
    std::string describe() const; // "forward e, grad input e, offset e, mask e"
};

// Our op on makeRoiPoolCase(spec, seed, dtype, device) against the reference on
// exactly the values our op reads; incoming gradient randomLike(output, seed + 1).
RoiPoolComparison compareRoiPoolWithReference(const RoiPoolCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                              const at::Device& device);

// Central finite differences in float64 of sum(out * R), R random, w.r.t. up
// to `maxPerTensor` elements of the input, the offset and the mask (those that
// take part), against the analytic gradients: of our op (the backward op) on
// `device`, or of the reference (roiPoolReferenceBackward against
// roiPoolReferenceForward). Returns the worst |fd - analytic| / (1 + |analytic|).
// Use awayFromKinks.
double roiPoolFiniteDifferenceError(const RoiPoolCaseSpec& spec, uint64_t seed, const at::Device& device,
                                    int64_t maxPerTensor = 64);
double roiPoolReferenceFiniteDifferenceError(const RoiPoolCaseSpec& spec, uint64_t seed, int64_t maxPerTensor = 64);

// Zero offsets against no offsets, and a mask of ones against no mask: forward
// and input gradient must be bit-identical (the worst relative error, 0 expected).
double roiPoolNeutralArgumentsError(const RoiPoolCaseSpec& spec, uint64_t seed, at::ScalarType dtype,
                                    const at::Device& device);

// Autograd through deformRoiPool (incoming gradient random) gives the backward
// op's gradients; the RoIs, and an offset or mask that does not take part, get
// none. "" when that holds, otherwise what is wrong.
std::string roiPoolAutogradProblem(const RoiPoolCaseSpec& spec, uint64_t seed, const at::Device& device);

// The backward op twice (and, on CUDA, in both backward modes) with `mode` in
// effect: the largest relative error between two runs in the Deterministic mode
// must be 0 (returned first), Atomic against Deterministic small (second).
std::array<double, 2> roiPoolBackwardModeErrors(const RoiPoolCaseSpec& spec, uint64_t seed,
                                                const at::Device& device);

// Calls with one bad argument, and a fragment each message must contain.
std::vector<BadInputCase> roiPoolBadInputCases(const at::Device& device);

// The deform_roi_pool rows of `deformscope-cli selftest` for one device: the
// reference, finite differences (of the op and of the reference), the
// invariants and the bad inputs everywhere; on CUDA also half/bfloat16, CUDA
// against the CPU and the backward modes.
std::vector<NamedCheck> deformRoiPoolSelfChecks(const at::Device& device);

} // namespace deformscope::ops::checks
