// Small seedable random streams for the kernels: the splitmix64 finaliser (to derive one seed
// per block of work from a user seed, so results do not depend on the thread count) and a
// splitmix64 generator.
#pragma once

#include <cstdint>

namespace recforge {

// The splitmix64 output function of x + golden ratio: a well-mixed 64-bit hash of x.
inline uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// splitmix64: small state, good enough statistics for sampling, trivially seekable per block.
struct SplitMix64 {
    uint64_t state;
    explicit SplitMix64(uint64_t seed) : state(seed) {}
    uint64_t next() {
        const uint64_t out = mix64(state);
        state += 0x9E3779B97F4A7C15ull;
        return out;
    }
    // uniform in [0, n), n > 0 (Lemire's multiply-shift; the bias is below 2^-64 * n)
    uint64_t below(uint64_t n) {
#if defined(__SIZEOF_INT128__)
        return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
#else
        return next() % n;
#endif
    }
};

}  // namespace recforge
