// What a run of the analyses needs besides the request itself: the device the
// request names, resolved against this build and machine; the layer to use when
// none is named; the analysis options a request means; folders. Part of
// core_report; needs no OpenCV, so core-only builds (no imaging) use it too.
// The functions share no state (any thread).
#pragma once

#include "core/analysis/analysis.h"
#include "core/common/request.h"
#include "core/model/layer_graph.h"
#include "core/model/model.h"

#include <c10/core/Device.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace deformscope::report {

// Bad usage or input a user can fix (a missing file, a layer the model lacks, a
// pixel off the image, ...): the message names the file or option and the
// problem. The CLI maps it to exit code 2 (and prints its usage).
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Throws UsageError listing every problem request.validate() finds ("; "-separated).
void checkRequest(const common::AnalysisRequest& request);

// The device `spec` names, when this build has kernels for it and this machine
// has it; otherwise UsageError "device 'cuda:3' is not available (have: cpu cuda:0)".
c10::Device resolveDevice(const common::DeviceSpec& spec);
// The same for a device named as text ("cpu", "cuda", "cuda:N"); text that names
// no device gets the same message.
c10::Device resolveDevice(const std::string& name);

// The analyses' options a request means.
analysis::SamplingOptions samplingOptions(const common::AnalysisRequest& request);
analysis::ErfOptions erfOptions(const common::AnalysisRequest& request);
// The budget is the planned number of forwards; the hard cap is at least that.
analysis::SaliencyOptions saliencyOptions(const common::AnalysisRequest& request);

// The layer to analyse when none is named: the metadata's suggested layer when
// the graph has it, else the last deformable layer, else the last convolution.
// Throws UsageError when the graph has no conv-like layer.
std::string defaultLayer(const model::LoadedModel& m, const model::LayerGraph& g);

// The file name without folder and extension: a model's name in folders and titles.
std::string stemOf(const std::string& path);

// Creates `dir` (and its parents); throws UsageError "<dir>: cannot create the folder (...)".
void makeDirectory(const std::string& dir);

// Refuses (UsageError naming `what`, with the estimate, the memory available and an
// --input-size that fits) an input of `size` (H, W per frame; `batch` images at once) whose
// analysis would not fit in the memory the system has available, before anything that
// large is allocated. The estimate: a 128 x 128 probe forward's layer outputs scaled to the
// input, x 3 for what the backward keeps, against the system's available memory on the CPU
// and the GPU's free memory on CUDA (ops::freeDeviceMemory). Checked above 768 x 768 pixels.
void checkMemory(const model::LoadedModel& m, std::array<int64_t, 2> size, const std::string& what,
                 int64_t batch = 1);

} // namespace deformscope::report
