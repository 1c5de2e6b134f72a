#include "core/common/npy.h"

#include "core/common/atomic_file.h"
#include "core/common/npy_header.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <vector>

namespace deformscope::common {

namespace {

// .npy stores little-endian data here, and we copy tensor bytes verbatim.
static_assert(std::endian::native == std::endian::little, "writeNpy/readNpy assume a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
constexpr std::size_t kAlign = 64;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
    throw std::runtime_error(path + ": " + problem);
}

// Thread-safe, unlike strerror().
std::string errnoMessage(int err) {
    return std::generic_category().message(err);
}

struct DtypeInfo {
    at::ScalarType type;
    char kind;  // NumPy's type character: f, i, u, b
    int size;   // bytes
};

constexpr DtypeInfo kDtypes[] = {
    {at::kFloat, 'f', 4}, {at::kDouble, 'f', 8}, {at::kHalf, 'f', 2},  {at::kLong, 'i', 8}, {at::kInt, 'i', 4},
    {at::kShort, 'i', 2}, {at::kChar, 'i', 1},   {at::kByte, 'u', 1},  {at::kBool, 'b', 1},
};

const DtypeInfo* dtypeFor(at::ScalarType type) {
    for (const DtypeInfo& d : kDtypes)
        if (d.type == type)
            return &d;
    return nullptr;
}

// "<f4"; single bytes have no byte order, which NumPy writes as '|'.
std::string descrFor(const DtypeInfo& d) {
    std::string descr(1, d.size == 1 ? '|' : '<'); // (built in steps: GCC 12 warns falsely about "x" + string)
    descr += d.kind;
    descr += std::to_string(d.size);
    return descr;
}

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// ---- header -------------------------------------------------------------------

using Header = NpyHeader;


// The dtype a descr names, or a thrown message for one we cannot read.
at::ScalarType dtypeForDescr(const std::string& path, const std::string& descr) {
    if (descr.size() >= 3) {
        const char order = descr[0];
        const char kind = descr[1];
        const std::string sizeText = descr.substr(2);
        for (const DtypeInfo& d : kDtypes) {
            if (d.kind != kind || std::to_string(d.size) != sizeText)
                continue;
            // One byte has no order; '=' is native, which is little-endian here.
            if (d.size == 1 && (order == '|' || order == '<' || order == '>' || order == '='))
                return d.type;
            if (order == '<' || order == '=')
                return d.type;
            if (order == '>')
                fail(path, "big-endian data ('" + descr + "') is not supported; convert with arr.astype('<" +
                               descr.substr(1) + "')");
        }
    }
    fail(path, "unsupported dtype '" + descr + "' (supported: <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 |b1)");
}

} // namespace

void writeNpy(const std::string& path, const at::Tensor& t) {
    if (!t.defined())
        fail(path, "cannot write an undefined tensor");
    if (t.layout() != at::kStrided)
        fail(path, "cannot write a non-strided (e.g. sparse) tensor; call to_dense() first");
    if (t.is_meta())
        fail(path, "cannot write a meta tensor: it has no data");

    const at::ScalarType type = t.scalar_type() == at::kBFloat16 ? at::kFloat : t.scalar_type();
    const DtypeInfo* dtype = dtypeFor(type);
    if (!dtype)
        fail(path, std::string("cannot write dtype ") + c10::toString(t.scalar_type()) +
                       " (supported: float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool)");
    at::Tensor data;
    try {
        // NumPy has no bfloat16; bfloat16 -> float32 is exact (to() is a no-op
        // for the rest). resolve_neg(): a negated view shares unnegated memory.
        data = t.detach().to(type).cpu().resolve_neg().contiguous();
    } catch (const c10::Error& e) {
        fail(path, std::string("cannot copy the tensor to the CPU: ") + e.what_without_backtrace());
    }

    std::string shape;
    for (int64_t i = 0; i < data.dim(); ++i)
        shape += (i > 0 ? ", " : "") + std::to_string(data.size(i));
    if (data.dim() == 1)
        shape += ',';  // a 1-tuple in Python
    std::string header =
        "{'descr': '" + descrFor(*dtype) + "', 'fortran_order': False, 'shape': (" + shape + "), }";
    // magic (6) + version (2) + header length (2) + header + '\n', padded to kAlign.
    const std::size_t unpadded = kMagicSize + 2 + 2 + header.size() + 1;
    header.append((kAlign - unpadded % kAlign) % kAlign, ' ');
    header += '\n';
    if (header.size() > std::numeric_limits<uint16_t>::max())
        fail(path, "too many dimensions for a version 1.0 header");

    std::string preamble(kMagic, kMagicSize);
    preamble += '\x01';  // version 1.0
    preamble += '\x00';
    preamble += static_cast<char>(header.size() & 0xFF);  // header length, little-endian
    preamble += static_cast<char>(header.size() >> 8);
    preamble += header;

    writeFileAtomically(path, {preamble, std::string_view(static_cast<const char*>(data.const_data_ptr()), data.nbytes())});
}

at::Tensor readNpy(const std::string& path) {
    File f(std::fopen(path.c_str(), "rb"));
    if (!f)
        fail(path, "cannot open for reading: " + errnoMessage(errno));

    unsigned char preamble[8];
    const std::size_t got = std::fread(preamble, 1, sizeof preamble, f.get());
    if (got < kMagicSize || std::memcmp(preamble, kMagic, kMagicSize) != 0)
        fail(path, "not a .npy file (it does not start with \\x93NUMPY)");
    if (got < sizeof preamble)
        fail(path, "truncated header");
    const int major = preamble[6], minor = preamble[7];
    std::size_t headerLength = 0;
    if (major == 1) {
        unsigned char len[2];
        if (std::fread(len, 1, 2, f.get()) != 2)
            fail(path, "truncated header");
        headerLength = len[0] | (std::size_t{len[1]} << 8);
    } else if (major == 2 || major == 3) {
        unsigned char len[4];
        if (std::fread(len, 1, 4, f.get()) != 4)
            fail(path, "truncated header");
        headerLength = len[0] | (std::size_t{len[1]} << 8) | (std::size_t{len[2]} << 16) | (std::size_t{len[3]} << 24);
    } else {
        fail(path, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
    }
    if (headerLength > (std::size_t{1} << 24))
        fail(path, "implausible header length " + std::to_string(headerLength));
    std::string headerText(headerLength, '\0');
    const std::size_t headerGot = std::fread(headerText.data(), 1, headerLength, f.get());
    if (headerGot != headerLength)
        fail(path, "truncated header: expected " + std::to_string(headerLength) + " bytes, found " +
                       std::to_string(headerGot));

    Header header;
    try {
        header = parseNpyHeader(headerText);
    } catch (const std::invalid_argument& e) {
        std::string shown = headerText.substr(0, 200);
        while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n'))
            shown.pop_back();
        fail(path, std::string("malformed header (") + e.what() + "): " + shown);
    }
    const at::ScalarType type = dtypeForDescr(path, header.descr);
    if (header.fortranOrder)
        fail(path, "fortran_order True is not supported; save a C-order array (np.ascontiguousarray)");

    // The byte count, checked for overflow before anything is allocated.
    const std::size_t itemSize = dtypeFor(type)->size;
    std::size_t nbytes = itemSize;
    for (const int64_t d : header.shape) {
        if (d != 0 && nbytes > std::numeric_limits<std::size_t>::max() / static_cast<std::size_t>(d))
            fail(path, "shape too large");
        nbytes *= static_cast<std::size_t>(d);
    }

    // A truncated file, or a header claiming terabytes, is reported before any
    // allocation is attempted (where the file can seek; fread checks again).
    const long dataStart = std::ftell(f.get());
    if (dataStart >= 0 && std::fseek(f.get(), 0, SEEK_END) == 0) {
        const long end = std::ftell(f.get());
        if (end >= dataStart && static_cast<std::size_t>(end - dataStart) < nbytes)
            fail(path, "truncated data: expected " + std::to_string(nbytes) + " bytes, found " +
                           std::to_string(end - dataStart));
        if (std::fseek(f.get(), dataStart, SEEK_SET) != 0)
            fail(path, "cannot seek: " + errnoMessage(errno));
    }

    // Bool is read as bytes and normalised, since a byte other than 0 or 1 is
    // not a valid bool in a tensor.
    const at::ScalarType storageType = type == at::kBool ? at::kByte : type;
    at::Tensor result;
    try {
        result = at::empty(header.shape, at::TensorOptions().dtype(storageType));
    } catch (const c10::Error& e) {
        fail(path, std::string("cannot allocate the tensor: ") + e.what_without_backtrace());
    }
    if (nbytes > 0) {
        const std::size_t dataGot = std::fread(result.mutable_data_ptr(), 1, nbytes, f.get());
        if (dataGot != nbytes)
            fail(path, "truncated data: expected " + std::to_string(nbytes) + " bytes, found " +
                           std::to_string(dataGot));
    }
    if (type == at::kBool)
        result = result.ne(0);
    return result;
}

} // namespace deformscope::common
