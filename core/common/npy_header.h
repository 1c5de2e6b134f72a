// The header dict of a NumPy .npy file, e.g. {'descr': '<f4', 'fortran_order': False,
// 'shape': (2, 3), }: parsed without LibTorch (npy.cpp reads the data; the fuzz target
// tests/fuzz/fuzz_npy_header.cpp feeds it arbitrary bytes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace deformscope::common {

struct NpyHeader {
    std::string descr;
    bool fortranOrder = false;
    std::vector<int64_t> shape;
};

// Keys may come in any order; all three are required and no others allowed (as in
// np.load). Throws std::invalid_argument with the problem (and its offset).
NpyHeader parseNpyHeader(std::string_view text);

} // namespace deformscope::common
