#include "core/common/sha256.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace deformscope::common {
namespace {

constexpr std::array<uint32_t, 64> kRound = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// Incremental hashing: whole 64-byte blocks as they come, the padded tail at the end.
class Hasher {
public:
    void update(std::string_view bytes) {
        for (unsigned char c : bytes) {
            m_block[m_used++] = c;
            if (m_used == 64) {
                compress();
                m_used = 0;
            }
        }
        m_length += uint64_t(bytes.size());
    }
    std::string hex() {
        const uint64_t bits = m_length * 8;
        const char one = char(0x80), zero = 0;
        update(std::string_view(&one, 1));
        while (m_used != 56)
            update(std::string_view(&zero, 1));
        for (int i = 7; i >= 0; --i) {
            const char b = char((bits >> (8 * i)) & 0xff);
            update(std::string_view(&b, 1));
        }
        std::string out;
        char buf[9];
        for (uint32_t h : m_state) {
            std::snprintf(buf, sizeof buf, "%08x", h);
            out += buf;
        }
        return out;
    }

private:
    void compress() {
        std::array<uint32_t, 64> w{};
        for (int i = 0; i < 16; ++i)
            w[size_t(i)] = uint32_t(m_block[size_t(4 * i)]) << 24 | uint32_t(m_block[size_t(4 * i + 1)]) << 16 |
                           uint32_t(m_block[size_t(4 * i + 2)]) << 8 | uint32_t(m_block[size_t(4 * i + 3)]);
        for (size_t i = 16; i < 64; ++i) {
            const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        auto [a, b, c, d, e, f, g, h] = m_state;
        for (size_t i = 0; i < 64; ++i) {
            const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRound[i] + w[i];
            const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        const std::array<uint32_t, 8> add{a, b, c, d, e, f, g, h};
        for (size_t i = 0; i < 8; ++i)
            m_state[i] += add[i];
    }

    std::array<uint32_t, 8> m_state{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::array<unsigned char, 64> m_block{};
    size_t m_used = 0;
    uint64_t m_length = 0;
};

} // namespace

std::string sha256Hex(std::string_view bytes) {
    Hasher h;
    h.update(bytes);
    return h.hex();
}

std::string sha256File(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(path + ": cannot read it");
    Hasher h;
    std::vector<char> buf(1 << 16);
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        h.update(std::string_view(buf.data(), size_t(in.gcount())));
    }
    if (in.bad())
        throw std::runtime_error(path + ": cannot read it");
    return h.hex();
}

} // namespace deformscope::common
