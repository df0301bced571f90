// Small seedable random streams for the kernels: the splitmix64 finaliser (to derive one seed
// per block of work from a user seed, so results do not depend on the thread count), a
// splitmix64 generator and ziggurat normals.
#pragma once

#include <cmath>
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
    // uniform in [0, 1) and in (0, 1)
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    double open_uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
};

// The 128-layer ziggurat for the standard normal (Marsaglia & Tsang 2000). A draw takes the
// layer iz from the low 7 bits of one 64-bit value and a signed 32-bit hz from its high half:
// x = hz * wn[iz] is accepted at once when |hz| < kn[iz] (about 99% of draws).
struct ZigguratTables {
    uint32_t kn[128];
    double wn[128], fn[128], knd[128];  // knd: kn as doubles (for vector kernels)
    static constexpr double r = 3.442619855899;  // where the tail starts
    ZigguratTables() {
        const double m1 = 2147483648.0, vn = 9.91256303526217e-3;
        double dn = r, tn = dn;
        const double q = vn / std::exp(-0.5 * dn * dn);
        kn[0] = static_cast<uint32_t>((dn / q) * m1);
        kn[1] = 0;
        wn[0] = q / m1;
        wn[127] = dn / m1;
        fn[0] = 1.0;
        fn[127] = std::exp(-0.5 * dn * dn);
        for (int i = 126; i >= 1; --i) {
            dn = std::sqrt(-2.0 * std::log(vn / dn + std::exp(-0.5 * dn * dn)));
            kn[i + 1] = static_cast<uint32_t>((dn / tn) * m1);
            tn = dn;
            fn[i] = std::exp(-0.5 * dn * dn);
            wn[i] = dn / m1;
        }
        for (int i = 0; i < 128; ++i) knd[i] = static_cast<double>(kn[i]);
    }
};

inline const ZigguratTables& ziggurat_tables() {
    static const ZigguratTables z;
    return z;
}

// The rest of a draw (iz, hz) outside its layer's rectangle: the tail beyond r for layer 0, the
// wedge test otherwise. Returns false when the draw is rejected (draw again). `rng` gives
// uniform() in [0, 1) and open_uniform() in (0, 1).
template <class Rng>
bool ziggurat_outside(int iz, int32_t hz, Rng& rng, double& x) {
    const ZigguratTables& zg = ziggurat_tables();
    constexpr double r = ZigguratTables::r;
    if (iz == 0) {
        double xt, yt;
        do {
            xt = -std::log(rng.open_uniform()) / r;
            yt = -std::log(rng.open_uniform());
        } while (yt + yt < xt * xt);
        x = hz > 0 ? r + xt : -r - xt;
        return true;
    }
    x = static_cast<double>(hz) * zg.wn[iz];
    return zg.fn[iz] + rng.uniform() * (zg.fn[iz - 1] - zg.fn[iz]) < std::exp(-0.5 * x * x);
}

// One standard normal draw; `rng` gives next() (64 bits), uniform() and open_uniform().
template <class Rng>
inline double ziggurat_normal(Rng& rng, const ZigguratTables& zg = ziggurat_tables()) {
    for (;;) {
        const uint64_t bits = rng.next();
        const int iz = static_cast<int>(bits & 127u);
        const int32_t hz = static_cast<int32_t>(static_cast<uint32_t>(bits >> 32));
        double x = static_cast<double>(hz) * zg.wn[iz];
        if (__builtin_expect(std::abs(static_cast<double>(hz)) < zg.knd[iz], 1)) return x;
        if (ziggurat_outside(iz, hz, rng, x)) return x;
    }
}

// rows x cols normals N(mean, std^2) from `seed` into rows `stride` elements apart, row by row.
template <class T>
void fill_normal(T* out, int64_t rows, int64_t cols, int64_t stride, double mean, double std, uint64_t seed) {
    SplitMix64 rng(seed);
    const ZigguratTables& zg = ziggurat_tables();
    for (int64_t r = 0; r < rows; ++r) {
        T* row = out + r * stride;
        for (int64_t c = 0; c < cols; ++c) row[c] = static_cast<T>(mean + std * ziggurat_normal(rng, zg));
    }
}

}  // namespace recforge
