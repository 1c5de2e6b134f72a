// libFuzzer target: an ONNX file as DeformScope reads it (core/model/onnx_file.h), with
// external data resolved in a folder holding one 64-byte data file (weights.bin). Every
// damaged file must be a std::runtime_error saying what is wrong: never a crash, a read
// outside the model's folder, or an allocation the file's own bytes cannot justify.
#include "core/model/onnx_file.h"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

namespace {

const std::string& dataFolder() {
    static const std::string folder = [] {
        char name[] = "/tmp/deformscope-fuzz-onnx-XXXXXX";
        if (!mkdtemp(name))
            std::abort(); // the harness cannot run at all
        std::ofstream(std::string(name) + "/weights.bin", std::ios::binary) << std::string(64, '\x3f');
        return std::string(name);
    }();
    return folder;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const auto model = deformscope::model::onnxfile::parse(std::string(reinterpret_cast<const char*>(data), size),
                                                               dataFolder());
        for (const auto& t : model.initializers)
            (void)t.bytes.size();
    } catch (const std::runtime_error&) {
    }
    return 0;
}
