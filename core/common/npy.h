// Tensors to and from NumPy's .npy files (format version 1.0), so that
// researchers can open DeformScope's offsets, masks and activations with
// np.load and hand us arrays made with np.save.
//
// Both functions are thread-safe as long as no two calls touch the same path.
// Failures throw std::runtime_error whose message starts with the path, e.g.
// "out/x.npy: cannot open for writing: No such file or directory".
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace deformscope::common {

// Writes `t` as a little-endian, C-order .npy v1.0 file. Any device (the data
// is copied to the CPU) and any strides; 0-d and empty tensors too. Dtypes:
// float32 <f4, float64 <f8, float16 <f2, int64 <i8, int32 <i4, int16 <i2,
// int8 |i1, uint8 |u1, bool |b1. bfloat16, which NumPy lacks, is converted to
// float32 (exactly: every bfloat16 is a float32). Any other dtype, or an
// undefined tensor, throws. The header is padded with spaces and ends in '\n'
// so that the data starts at a multiple of 64 bytes, as NumPy does.
// The file is written atomically (common/atomic_file.h: a unique temporary,
// flushed, renamed over `path`), so a crash leaves either the old file or the
// new one, never half of one, and concurrent writers do not mix their files.
void writeNpy(const std::string& path, const at::Tensor& t);

// Reads a .npy file (versions 1.0, 2.0 and 3.0) with one of the dtypes above
// into a new contiguous CPU tensor that owns its data. Throws naming the file
// and the problem for a missing, malformed or truncated file, an unsupported
// dtype, big-endian data, or fortran_order True (NumPy writes C order unless
// asked; np.ascontiguousarray converts). Bytes after the data are ignored, as
// np.load ignores them.
at::Tensor readNpy(const std::string& path);

} // namespace deformscope::common
