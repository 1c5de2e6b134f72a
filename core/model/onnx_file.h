// An ONNX file's contents in plain C++ types: what import_onnx.cpp translates.
//
// Parsing needs ONNX's protobuf classes, and LibTorch's include folder carries
// its own, older protobuf headers: the parser (onnx_file.cpp) is compiled apart
// from LibTorch, and this header uses the standard library only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace deformscope::model::onnxfile {

// ONNX's TensorProto.DataType codes used here.
enum ElementType : int {
    kUndefined = 0,
    kFloat = 1,
    kUint8 = 2,
    kInt8 = 3,
    kUint16 = 4,
    kInt16 = 5,
    kInt32 = 6,
    kInt64 = 7,
    kString = 8,
    kBool = 9,
    kFloat16 = 10,
    kDouble = 11,
    kUint32 = 12,
    kUint64 = 13,
    kBfloat16 = 16,
};

// A tensor's values as little-endian bytes of its element type (typed fields and
// external data already gathered).
struct Tensor {
    std::string name;
    int type = kUndefined;
    std::vector<int64_t> dims;
    std::string bytes;
};

struct Attribute {
    enum class Kind { Int, Ints, Float, Floats, String, Strings, Tensor, Graph, Other };
    std::string name;
    Kind kind = Kind::Other;
    int64_t i = 0;
    std::vector<int64_t> ints;
    double f = 0;
    std::vector<double> floats;
    std::string s;
    std::shared_ptr<Tensor> t;
};

struct Node {
    std::string name, opType, domain;
    std::vector<std::string> inputs, outputs; // "" for an optional input or output left out
    std::vector<Attribute> attributes;
    std::map<std::string, std::string> metadata; // metadata_props (ONNX 1.16+; torch.onnx's "namespace")
};

struct Value {
    std::string name;
    bool tensor = false; // a tensor type (not a sequence, map, ...)
    int type = kUndefined;
    int rank = -1;             // -1: no shape
    std::vector<int64_t> dims; // -1 for a symbolic dimension
};

struct Model {
    int64_t irVersion = 0;
    std::map<std::string, int64_t> opsets; // domain ("" the standard one) -> version
    std::string producer;                  // "pytorch 2.11.0"
    std::map<std::string, std::string> metadata;
    std::vector<Value> inputs, outputs, valueInfo;
    std::vector<Tensor> initializers;
    size_t sparseInitializers = 0;
    std::vector<Node> nodes;
};

// Reads `path`; tensors stored as external data are read from the files next to it.
// Throws std::runtime_error with what is wrong (without the path).
Model read(const std::string& path);
// The same for a file's bytes, with external data read from `folder`.
Model parse(const std::string& bytes, const std::string& folder);

} // namespace deformscope::model::onnxfile
