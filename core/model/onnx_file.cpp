#include "core/model/onnx_file.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/unknown_field_set.h>
#include <onnx/onnx_pb.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace deformscope::model::onnxfile {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

size_t elementSize(int type) {
    switch (type) {
    case kFloat: case kInt32: case kUint32: return 4;
    case kUint8: case kInt8: case kBool: return 1;
    case kUint16: case kInt16: case kFloat16: case kBfloat16: return 2;
    case kInt64: case kDouble: case kUint64: return 8;
    default: return 0;
    }
}

std::string typeName(int type) {
    return onnx::TensorProto::DataType_IsValid(type)
               ? onnx::TensorProto::DataType_Name(onnx::TensorProto::DataType(type))
               : std::to_string(type);
}

template <typename Out, typename Field>
void gather(const Field& field, size_t count, std::string& bytes, const std::string& what) {
    if (size_t(field.size()) != count)
        fail(what + ": " + std::to_string(field.size()) + " values for " + std::to_string(count) +
             " elements (the file is damaged)");
    bytes.resize(count * sizeof(Out));
    for (size_t i = 0; i < count; ++i) {
        const Out v = Out(field.Get(int(i)));
        std::memcpy(bytes.data() + i * sizeof(Out), &v, sizeof(Out));
    }
}

Tensor readTensor(const onnx::TensorProto& t, const std::string& folder, const std::string& what) {
    Tensor out;
    out.name = t.name();
    out.type = t.data_type();
    out.dims.assign(t.dims().begin(), t.dims().end());
    const size_t item = elementSize(out.type);
    if (item == 0)
        fail(what + ": element type " + typeName(out.type) + ", which DeformScope does not read");
    size_t count = 1, expected = 0;
    for (int64_t d : out.dims) {
        if (d < 0)
            fail(what + ": a negative dimension");
        if (__builtin_mul_overflow(count, size_t(d), &count))
            fail(what + ": dimensions whose product overflows (the file is damaged)");
    }
    if (__builtin_mul_overflow(count, item, &expected))
        fail(what + ": dimensions whose product overflows (the file is damaged)");
    auto expectBytes = [&](size_t bytes, const std::string& where) {
        if (bytes != expected)
            fail(what + ": " + where + " holds " + std::to_string(bytes) + " bytes, not the " +
                 std::to_string(expected) + " its " + std::to_string(count) + " elements need (damaged or truncated)");
    };
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
        std::string location;
        int64_t offset = 0, length = -1;
        for (const auto& e : t.external_data()) {
            try {
                if (e.key() == "location")
                    location = e.value();
                else if (e.key() == "offset")
                    offset = std::stoll(e.value());
                else if (e.key() == "length")
                    length = std::stoll(e.value());
            } catch (const std::exception&) {
                fail(what + ": external data " + e.key() + " \"" + e.value() + "\" is not a number");
            }
        }
        if (location.empty())
            fail(what + ": external data without a location");
        // ONNX's rule: a location relative to the model's folder, never leaving it. (Plain
        // string and POSIX calls: LibTorch exports a std::filesystem of its own.)
        bool escapes = location.front() == '/';
        for (size_t start = 0; start <= location.size();) {
            const size_t end = std::min(location.find('/', start), location.size());
            escapes = escapes || location.compare(start, end - start, "..") == 0;
            start = end + 1;
        }
        if (escapes)
            fail(what + ": its external data location \"" + location +
                 "\" leaves the model's folder (ONNX allows only a path relative to the .onnx file's folder)");
        if (offset < 0)
            fail(what + ": external data at a negative offset (" + std::to_string(offset) + ")");
        const std::string file = folder.empty() ? location : folder + "/" + location;
        struct stat st {};
        std::ifstream f;
        const bool regular = ::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode);
        if (regular)
            f.open(file, std::ios::binary);
        if (!regular || !f)
            fail(what + ": its data is in " + location +
                 ", which is not in the model's folder (keep the external data file next to the .onnx file)");
        if (length < 0)
            length = int64_t(expected);
        expectBytes(size_t(length), "its external data (" + location + ")");
        const uint64_t fileSize = uint64_t(st.st_size);
        if (uint64_t(offset) > fileSize || uint64_t(length) > fileSize - uint64_t(offset))
            fail(what + ": " + location + " ends before the tensor's data (" + std::to_string(offset) + " + " +
                 std::to_string(length) + " bytes): the external data file is truncated");
        out.bytes.resize(size_t(length));
        f.seekg(offset);
        f.read(out.bytes.data(), length);
        if (f.gcount() != length)
            fail(what + ": " + location + " ends before the tensor's data (" + std::to_string(offset) + " + " +
                 std::to_string(length) + " bytes): the external data file is truncated");
        return out;
    }
    if (t.has_raw_data()) {
        expectBytes(t.raw_data().size(), "its raw data");
        out.bytes = t.raw_data();
        return out;
    }
    switch (out.type) {
    case kFloat: gather<float>(t.float_data(), count, out.bytes, what); break;
    case kDouble: gather<double>(t.double_data(), count, out.bytes, what); break;
    case kInt64: gather<int64_t>(t.int64_data(), count, out.bytes, what); break;
    case kInt32: gather<int32_t>(t.int32_data(), count, out.bytes, what); break;
    case kInt16: gather<int16_t>(t.int32_data(), count, out.bytes, what); break;
    case kInt8: gather<int8_t>(t.int32_data(), count, out.bytes, what); break;
    case kUint8: gather<uint8_t>(t.int32_data(), count, out.bytes, what); break;
    case kBool: gather<uint8_t>(t.int32_data(), count, out.bytes, what); break;
    case kUint16:
    case kFloat16: // stored as their 16 bits
    case kBfloat16: gather<uint16_t>(t.int32_data(), count, out.bytes, what); break;
    case kUint32: gather<uint32_t>(t.uint64_data(), count, out.bytes, what); break;
    case kUint64: gather<uint64_t>(t.uint64_data(), count, out.bytes, what); break;
    default: fail(what + ": no data");
    }
    return out;
}

Value readValue(const onnx::ValueInfoProto& v) {
    Value out;
    out.name = v.name();
    if (!v.has_type() || !v.type().has_tensor_type())
        return out;
    out.tensor = true;
    const auto& tt = v.type().tensor_type();
    out.type = tt.elem_type();
    if (tt.has_shape()) {
        out.rank = tt.shape().dim_size();
        for (const auto& d : tt.shape().dim())
            out.dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
    return out;
}

// NodeProto.metadata_props is field 9 since ONNX 1.16; Debian's libonnx 1.12 keeps it among the unknown fields.
std::map<std::string, std::string> nodeMetadata(const onnx::NodeProto& node) {
    std::map<std::string, std::string> out;
    const auto& unknown = node.unknown_fields();
    for (int i = 0; i < unknown.field_count(); ++i) {
        const auto& f = unknown.field(i);
        if (f.number() != 9 || f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
            continue;
        onnx::StringStringEntryProto entry;
        if (entry.ParseFromString(f.length_delimited()))
            out[entry.key()] = entry.value();
    }
    return out;
}

Attribute readAttribute(const onnx::AttributeProto& a, const std::string& folder, const std::string& node) {
    Attribute out;
    out.name = a.name();
    using A = onnx::AttributeProto;
    switch (a.type()) {
    case A::INT: out.kind = Attribute::Kind::Int; out.i = a.i(); break;
    case A::INTS: out.kind = Attribute::Kind::Ints; out.ints.assign(a.ints().begin(), a.ints().end()); break;
    case A::FLOAT: out.kind = Attribute::Kind::Float; out.f = a.f(); break;
    case A::FLOATS: out.kind = Attribute::Kind::Floats; out.floats.assign(a.floats().begin(), a.floats().end()); break;
    case A::STRING: out.kind = Attribute::Kind::String; out.s = a.s(); break;
    case A::STRINGS: out.kind = Attribute::Kind::Strings; break;
    case A::TENSOR:
        out.kind = Attribute::Kind::Tensor;
        out.t = std::make_shared<Tensor>(readTensor(a.t(), folder, "node " + node + ": attribute " + a.name()));
        break;
    case A::GRAPH:
    case A::GRAPHS: out.kind = Attribute::Kind::Graph; break;
    default: out.kind = Attribute::Kind::Other; break;
    }
    return out;
}

} // namespace

Model read(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f)
        fail("cannot open the file");
    std::stringstream buffer;
    buffer << f.rdbuf();
    const size_t slash = path.rfind('/');
    return parse(buffer.str(), slash == std::string::npos ? std::string() : path.substr(0, slash == 0 ? 1 : slash));
}

Model parse(const std::string& bytes, const std::string& folderName) {
    onnx::ModelProto proto;
    google::protobuf::io::CodedInputStream stream(reinterpret_cast<const uint8_t*>(bytes.data()), int(bytes.size()));
    if (bytes.empty() || !proto.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
        fail("not an ONNX model, or a damaged one (truncated or cut short in copying): it does not parse as an ONNX "
             "protobuf");
    if (proto.ir_version() <= 0 || !proto.has_graph() || proto.opset_import_size() == 0)
        fail("a protobuf file that is not an ONNX model (it has no IR version, graph or opset)");
    const std::string& folder = folderName;
    Model m;
    m.irVersion = proto.ir_version();
    for (const auto& o : proto.opset_import())
        m.opsets[o.domain() == "ai.onnx" ? std::string() : o.domain()] = o.version();
    m.producer = proto.producer_name();
    if (!proto.producer_version().empty())
        m.producer += " " + proto.producer_version();
    for (const auto& p : proto.metadata_props())
        m.metadata[p.key()] = p.value();
    const auto& g = proto.graph();
    for (const auto& v : g.input())
        m.inputs.push_back(readValue(v));
    for (const auto& v : g.output())
        m.outputs.push_back(readValue(v));
    for (const auto& v : g.value_info())
        m.valueInfo.push_back(readValue(v));
    for (const auto& t : g.initializer())
        m.initializers.push_back(readTensor(t, folder, "initialiser " + t.name()));
    m.sparseInitializers = size_t(g.sparse_initializer_size());
    for (int i = 0; i < g.node_size(); ++i) {
        const auto& n = g.node(i);
        Node node;
        node.name = n.name();
        node.opType = n.op_type();
        node.domain = n.domain() == "ai.onnx" ? std::string() : n.domain();
        node.inputs.assign(n.input().begin(), n.input().end());
        node.outputs.assign(n.output().begin(), n.output().end());
        std::string label = n.name().empty() ? std::string("#").append(std::to_string(i)) : n.name();
        label.append(" (").append(n.op_type()).append(")");
        for (const auto& a : n.attribute())
            node.attributes.push_back(readAttribute(a, folder, label));
        node.metadata = nodeMetadata(n);
        m.nodes.push_back(std::move(node));
    }
    return m;
}

} // namespace deformscope::model::onnxfile
