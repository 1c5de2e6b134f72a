// libFuzzer target: a torch.export archive as DeformScope reads it (core/model/import_pt2.h):
// the serialized program (models/model.json), the weights' configs and data, the byte order.
// The input is the archive's records as text, each after a line "==> NAME <==" (the seed
// corpus is tests/fuzz/corpus/pt2, written by tests/fuzz/make_pt2_seeds.py from real
// torch.export.save archives); the harness zips them as torch.export.save would and imports
// the file. Mutating the records rather than the zip keeps the fuzzer on our reading of the
// schema, not on the zip reader's checksums. A damaged archive must be a ModelError naming
// the file, never a crash, another exception or an allocation its bytes cannot justify.
#include "core/model/import_pt2.h"
#include "core/model/model.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

std::vector<std::pair<std::string, std::string_view>> records(std::string_view in) {
    std::vector<std::pair<std::string, std::string_view>> out;
    const std::string_view open = "==> ", close = " <==\n";
    size_t at = in.find(open);
    while (at != std::string_view::npos) {
        const size_t nameEnd = in.find(close, at + open.size());
        if (nameEnd == std::string_view::npos)
            break;
        const std::string name(in.substr(at + open.size(), nameEnd - at - open.size()));
        const size_t data = nameEnd + close.size();
        size_t next = in.find(std::string("\n").append(open), data);
        const size_t end = next == std::string_view::npos ? in.size() : next;
        // Names a zip can hold (printable, relative, not too long): others are no archive at all.
        bool fine = !name.empty() && name.size() < 256 && name.front() != '/' && name.back() != '/';
        for (const char c : name)
            fine = fine && c >= ' ' && c <= '~' && c != '\\' && c != ':';
        if (fine)
            out.emplace_back(name, in.substr(data, end - data));
        at = next == std::string_view::npos ? next : next + 1;
    }
    return out;
}

const std::string& archivePath() {
    static const std::string path = "/tmp/deformscope-fuzz-pt2-" + std::to_string(getpid()) + ".pt2";
    return path;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    {
        caffe2::serialize::PyTorchStreamWriter writer(archivePath());
        for (const auto& [name, bytes] : records(std::string_view(reinterpret_cast<const char*>(data), size)))
            if (!writer.getAllWrittenRecords().count(name)) // a zip holds a name once (the writer may add its own)
                writer.writeRecord(name, bytes.data(), bytes.size());
        writer.writeEndOfFile();
    }
    try {
        torch::jit::Module module;
        (void)deformscope::model::importPt2(archivePath(), c10::Device(c10::kCPU), module);
    } catch (const deformscope::model::ModelError&) {
    }
    return 0;
}
