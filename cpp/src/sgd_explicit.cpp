// SGD rating models (biased MF / Funk SVD, PMF, SVD++) and Surprise's multiplicative NMF.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/factorization/explicit.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace recforge::explicit_mf {

namespace {

// Dot product with eight independent partial sums in a fixed order: the result does not depend
// on the address alignment (so a fit is reproducible) and the compiler can keep it in vector
// registers.
template <class T>
inline T dot(const T* a, const T* b, int k) {
    T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int f = 0;
    for (; f + 8 <= k; f += 8) {
        for (int l = 0; l < 8; ++l) s[l] += a[f + l] * b[f + l];
    }
    for (; f < k; ++f) s[0] += a[f] * b[f];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// The shuffles use splitmix64 (a small, fast generator with good statistical quality) and
// Lemire's multiply-and-reject bound, so a seed gives the same permutation on every platform.
struct SplitMix64 {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // uniform in [0, n), n > 0
    uint64_t below(uint64_t n) {
        unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
        uint64_t low = static_cast<uint64_t>(m);
        if (low < n) {
            const uint64_t threshold = (0 - n) % n;
            while (low < threshold) {
                m = static_cast<unsigned __int128>(next()) * n;
                low = static_cast<uint64_t>(m);
            }
        }
        return static_cast<uint64_t>(m >> 64);
    }
};

// Gradients of L_ui (see the header) at prediction error err = r - r^, for the factor part:
// grad_p = -err * q + reg_pu * p,  grad_q = -err * z + reg_qi * q  where z is the user vector
// that multiplies q (p for SVD, p + implicit for SVD++).
template <class T>
inline void factor_grads(const T* p, const T* q, const T* implicit, T err, int k, const SgdRates<T>& r,
                         T* gp, T* gq) {
    if (implicit) {
        for (int f = 0; f < k; ++f) {
            gp[f] = -err * q[f] + r.reg_pu * p[f];
            gq[f] = -err * (p[f] + implicit[f]) + r.reg_qi * q[f];
        }
    } else {
        for (int f = 0; f < k; ++f) {
            gp[f] = -err * q[f] + r.reg_pu * p[f];
            gq[f] = -err * p[f] + r.reg_qi * q[f];
        }
    }
}

// Prediction error of one rating and all its gradients; the SGD kernels call exactly this.
template <class T>
inline T svd_gradient(const T* p, const T* q, const T* implicit, T bu, T bi, T mu, T rating, int k, bool biased,
                      const SgdRates<T>& r, T* gp, T* gq, T* gbu, T* gbi) {
    T z_dot_q = dot(p, q, k);
    if (implicit) z_dot_q += dot(implicit, q, k);
    const T pred = biased ? mu + bu + bi + z_dot_q : z_dot_q;
    const T err = rating - pred;
    *gbu = biased ? -err + r.reg_bu * bu : T(0);
    *gbi = biased ? -err + r.reg_bi * bi : T(0);
    factor_grads(p, q, implicit, err, k, r, gp, gq);
    return err;
}

template <class T>
inline T reg_penalty(const T* x, int k, T reg) {
    return reg * dot(x, x, k);
}

template <class T>
void check_factors(const Factors<T>& m, bool need_implicit) {
    if (m.k <= 0) throw std::invalid_argument("the number of factors must be positive");
    if (!m.user_factors || !m.item_factors) throw std::invalid_argument("factor arrays are missing");
    if (need_implicit && !m.implicit_factors) throw std::invalid_argument("implicit factors are missing");
}


// ---------------------------------------------------------------------------------------------
// The SVD / PMF step, the hot loop of the most used model, in three versions: portable C++ (the
// gradient of svd_gradient applied as it is), and float32 AVX2+FMA and AVX-512 versions compiled
// with function-level target attributes and picked at run time when the CPU has them, so the
// default build stays portable. The SIMD versions apply the same update in the fused form
// p <- (1 - lr_pu reg_pu) p + lr_pu e q (rounding differs in the last bits), and take two
// consecutive ratings at once when they share neither user nor item: their steps touch disjoint
// parameters, so the result is the one of the sequential order, and the two dependency chains
// (dot product, error, update) overlap.
// ---------------------------------------------------------------------------------------------
template <class T>
struct Triple {
    int32_t u;
    int32_t i;
    T r;
};

template <class T>
void svd_block_generic(const Factors<T>& m, const Triple<T>* data, int64_t begin, int64_t end,
                       const SgdRates<T>& rates, T* scratch, double& sse) {
    const int k = m.k;
    const bool biased = m.biased();
    T* gp = scratch;
    T* gq = scratch + k;
    T dummy_u = 0, dummy_i = 0;
    double local = 0.0;
    for (int64_t t = begin; t < end; ++t) {
        const int64_t u = data[t].u, i = data[t].i;
        T* p = m.user_factors + u * k;
        T* q = m.item_factors + i * k;
        T& bu = biased ? m.user_bias[u] : dummy_u;
        T& bi = biased ? m.item_bias[i] : dummy_i;
        T gbu, gbi;
        const T err = svd_gradient<T>(p, q, nullptr, bu, bi, m.global_mean, data[t].r, k, biased, rates, gp, gq,
                                      &gbu, &gbi);
        local += static_cast<double>(err) * static_cast<double>(err);
        if (biased) {
            bu -= rates.lr_bu * gbu;
            bi -= rates.lr_bi * gbi;
        }
        for (int f = 0; f < k; ++f) {
            p[f] -= rates.lr_pu * gp[f];
            q[f] -= rates.lr_qi * gq[f];
        }
    }
    sse += local;
}

// The scalar middle of a step: error, bias steps and the two factor coefficients.
struct StepScalars {
    float err, ep, eq;
};

inline StepScalars scalar_step(const Factors<float>& m, const Triple<float>& x, float dot, const SgdRates<float>& r,
                               bool biased) {
    float pred = dot;
    if (biased) {
        float& bu = m.user_bias[x.u];
        float& bi = m.item_bias[x.i];
        pred += m.global_mean + bu + bi;
        const float err = x.r - pred;
        bu += r.lr_bu * (err - r.reg_bu * bu);
        bi += r.lr_bi * (err - r.reg_bi * bi);
        return {err, r.lr_pu * err, r.lr_qi * err};
    }
    const float err = x.r - pred;
    return {err, r.lr_pu * err, r.lr_qi * err};
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RECFORGE_SGD_SIMD 1

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 sums = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, sums);
    return _mm_cvtss_f32(_mm_add_ss(sums, sh));
}

__attribute__((target("avx2,fma"))) inline float dot_avx2(const float* p, const float* q, int k) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int f = 0;
    for (; f + 16 <= k; f += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + f), _mm256_loadu_ps(q + f), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(p + f + 8), _mm256_loadu_ps(q + f + 8), s1);
    }
    if (f + 8 <= k) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + f), _mm256_loadu_ps(q + f), s0);
        f += 8;
    }
    float d = hsum256(_mm256_add_ps(s0, s1));
    for (; f < k; ++f) d += p[f] * q[f];
    return d;
}

__attribute__((target("avx2,fma"))) inline void update_avx2(float* p, float* q, int k, float cp, float cq, float ep,
                                                             float eq) {
    const __m256 vcp = _mm256_set1_ps(cp), vcq = _mm256_set1_ps(cq);
    const __m256 vep = _mm256_set1_ps(ep), veq = _mm256_set1_ps(eq);
    int f = 0;
    for (; f + 8 <= k; f += 8) {
        const __m256 pv = _mm256_loadu_ps(p + f), qv = _mm256_loadu_ps(q + f);
        _mm256_storeu_ps(p + f, _mm256_fmadd_ps(vep, qv, _mm256_mul_ps(vcp, pv)));
        _mm256_storeu_ps(q + f, _mm256_fmadd_ps(veq, pv, _mm256_mul_ps(vcq, qv)));
    }
    for (; f < k; ++f) {
        const float pf = p[f], qf = q[f];
        p[f] = cp * pf + ep * qf;
        q[f] = cq * qf + eq * pf;
    }
}

__attribute__((target("avx2,fma"))) void svd_block_avx2(const Factors<float>& m, const Triple<float>* data,
                                                         int64_t begin, int64_t end, const SgdRates<float>& r, float*,
                                                         double& sse) {
    const int k = m.k;
    const bool biased = m.biased();
    const float cp = 1.0f - r.lr_pu * r.reg_pu, cq = 1.0f - r.lr_qi * r.reg_qi;
    double local = 0.0;
    int64_t t = begin;
    while (t < end) {
        const Triple<float>& a = data[t];
        float* pa = m.user_factors + static_cast<int64_t>(a.u) * k;
        float* qa = m.item_factors + static_cast<int64_t>(a.i) * k;
        if (t + 1 < end && data[t + 1].u != a.u && data[t + 1].i != a.i) {
            const Triple<float>& b = data[t + 1];
            float* pb = m.user_factors + static_cast<int64_t>(b.u) * k;
            float* qb = m.item_factors + static_cast<int64_t>(b.i) * k;
            const float da = dot_avx2(pa, qa, k), db = dot_avx2(pb, qb, k);
            const StepScalars sa = scalar_step(m, a, da, r, biased), sb = scalar_step(m, b, db, r, biased);
            local += static_cast<double>(sa.err) * sa.err + static_cast<double>(sb.err) * sb.err;
            update_avx2(pa, qa, k, cp, cq, sa.ep, sa.eq);
            update_avx2(pb, qb, k, cp, cq, sb.ep, sb.eq);
            t += 2;
        } else {
            const StepScalars sa = scalar_step(m, a, dot_avx2(pa, qa, k), r, biased);
            local += static_cast<double>(sa.err) * sa.err;
            update_avx2(pa, qa, k, cp, cq, sa.ep, sa.eq);
            t += 1;
        }
    }
    sse += local;
}

// GCC 12's own intrinsic headers trigger -Wmaybe-uninitialized for the shuffles below (their
// "undefined" source operand); the warning is about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) inline float hsum512(__m512 v) {
    __m512 t = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));  // 256-bit halves
    t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, 0xB1));          // 128-bit lanes
    t = _mm512_add_ps(t, _mm512_permute_ps(t, 0x4E));                // pairs
    t = _mm512_add_ps(t, _mm512_permute_ps(t, 0xB1));                // neighbours
    return _mm512_cvtss_f32(t);
}

__attribute__((target("avx512f"))) inline __m512 dot_avx512_vec(const float* p, const float* q, int full,
                                                                __mmask16 tail) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int f = 0;
    for (; f + 32 <= full; f += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(p + f), _mm512_loadu_ps(q + f), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(p + f + 16), _mm512_loadu_ps(q + f + 16), s1);
    }
    if (f < full) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(p + f), _mm512_loadu_ps(q + f), s0);
    if (tail) s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, p + full), _mm512_maskz_loadu_ps(tail, q + full), s1);
    return _mm512_add_ps(s0, s1);
}

__attribute__((target("avx512f"))) inline void update_avx512(float* p, float* q, int full, __mmask16 tail, float cp,
                                                              float cq, float ep, float eq) {
    const __m512 vcp = _mm512_set1_ps(cp), vcq = _mm512_set1_ps(cq);
    const __m512 vep = _mm512_set1_ps(ep), veq = _mm512_set1_ps(eq);
    for (int f = 0; f < full; f += 16) {
        const __m512 pv = _mm512_loadu_ps(p + f), qv = _mm512_loadu_ps(q + f);
        _mm512_storeu_ps(p + f, _mm512_fmadd_ps(vep, qv, _mm512_mul_ps(vcp, pv)));
        _mm512_storeu_ps(q + f, _mm512_fmadd_ps(veq, pv, _mm512_mul_ps(vcq, qv)));
    }
    if (tail) {
        const __m512 pv = _mm512_maskz_loadu_ps(tail, p + full), qv = _mm512_maskz_loadu_ps(tail, q + full);
        _mm512_mask_storeu_ps(p + full, tail, _mm512_fmadd_ps(vep, qv, _mm512_mul_ps(vcp, pv)));
        _mm512_mask_storeu_ps(q + full, tail, _mm512_fmadd_ps(veq, pv, _mm512_mul_ps(vcq, qv)));
    }
}

__attribute__((target("avx512f"))) void svd_block_avx512(const Factors<float>& m, const Triple<float>* data,
                                                           int64_t begin, int64_t end, const SgdRates<float>& r,
                                                           float*, double& sse) {
    const int k = m.k;
    const bool biased = m.biased();
    const float cp = 1.0f - r.lr_pu * r.reg_pu, cq = 1.0f - r.lr_qi * r.reg_qi;
    const int full = k / 16 * 16;
    const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1u);
    double local = 0.0;
    int64_t t = begin;
    while (t < end) {
        const Triple<float>& a = data[t];
        float* pa = m.user_factors + static_cast<int64_t>(a.u) * k;
        float* qa = m.item_factors + static_cast<int64_t>(a.i) * k;
        if (t + 1 < end && data[t + 1].u != a.u && data[t + 1].i != a.i) {
            const Triple<float>& b = data[t + 1];
            float* pb = m.user_factors + static_cast<int64_t>(b.u) * k;
            float* qb = m.item_factors + static_cast<int64_t>(b.i) * k;
            const __m512 va = dot_avx512_vec(pa, qa, full, tail), vb = dot_avx512_vec(pb, qb, full, tail);
            const StepScalars sa = scalar_step(m, a, hsum512(va), r, biased);
            const StepScalars sb = scalar_step(m, b, hsum512(vb), r, biased);
            local += static_cast<double>(sa.err) * sa.err + static_cast<double>(sb.err) * sb.err;
            update_avx512(pa, qa, full, tail, cp, cq, sa.ep, sa.eq);
            update_avx512(pb, qb, full, tail, cp, cq, sb.ep, sb.eq);
            t += 2;
        } else {
            const StepScalars sa = scalar_step(m, a, hsum512(dot_avx512_vec(pa, qa, full, tail)), r, biased);
            local += static_cast<double>(sa.err) * sa.err;
            update_avx512(pa, qa, full, tail, cp, cq, sa.ep, sa.eq);
            t += 1;
        }
    }
    sse += local;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

enum class Isa { generic, avx2, avx512 };

bool cpu_has(Isa isa) {
#ifdef RECFORGE_SGD_SIMD
    __builtin_cpu_init();
    if (isa == Isa::avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == Isa::avx512) return __builtin_cpu_supports("avx512f");
#endif
    return isa == Isa::generic;
}

// The best instruction set the CPU has; RECFORGE_VECTOR_KERNEL=generic (or avx2) caps it, read on
// every call so that tests can compare the paths in one process.
Isa choose_isa() {
    static const bool has512 = cpu_has(Isa::avx512), has2 = cpu_has(Isa::avx2);
    const char* forced = std::getenv("RECFORGE_VECTOR_KERNEL");
    if (forced && std::strcmp(forced, "generic") == 0) return Isa::generic;
    if (forced && std::strcmp(forced, "avx2") == 0) return has2 ? Isa::avx2 : Isa::generic;
    if (has512) return Isa::avx512;
    if (has2) return Isa::avx2;
    return Isa::generic;
}

template <class T>
using SvdBlock = void (*)(const Factors<T>&, const Triple<T>*, int64_t, int64_t, const SgdRates<T>&, T*, double&);

template <class T>
SvdBlock<T> svd_block_for(Isa) {
    return &svd_block_generic<T>;
}

template <>
SvdBlock<float> svd_block_for<float>(Isa isa) {
#ifdef RECFORGE_SGD_SIMD
    if (isa == Isa::avx512) return &svd_block_avx512;
    if (isa == Isa::avx2) return &svd_block_avx2;
#endif
    (void)isa;
    return &svd_block_generic<float>;
}

const char* isa_name(Isa isa) {
    return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2-fma" : "generic";
}

struct Accumulator {
    double sse = 0.0;
    int64_t n = 0;
    char pad[48];  // keep workers' accumulators on separate cache lines
};

EpochStats reduce(const std::vector<Accumulator>& acc) {
    EpochStats s;
    for (const auto& a : acc) {
        s.sse += a.sse;
        s.n += a.n;
    }
    return s;
}

}  // namespace

template <class T>
T svd_loss_grad(const T* p, const T* q, T bu, T bi, T mu, T rating, int k, bool biased, const SgdRates<T>& rates,
                T* grad_p, T* grad_q, T* grad_bu, T* grad_bi) {
    const T err = svd_gradient<T>(p, q, nullptr, bu, bi, mu, rating, k, biased, rates, grad_p, grad_q, grad_bu, grad_bi);
    T loss = err * err + reg_penalty(p, k, rates.reg_pu) + reg_penalty(q, k, rates.reg_qi);
    if (biased) loss += rates.reg_bu * bu * bu + rates.reg_bi * bi * bi;
    return T(0.5) * loss;
}

template <class T>
T svdpp_loss_grad(const T* p, const T* q, const T* implicit_rows, int64_t n_rated, T bu, T bi, T mu, T rating, int k,
                  const SgdRates<T>& rates, T* grad_p, T* grad_q, T* grad_bu, T* grad_bi, T* grad_implicit) {
    if (n_rated <= 0) throw std::invalid_argument("SVD++ needs at least one rated item for the implicit term");
    const T scale = T(1) / std::sqrt(static_cast<T>(n_rated));
    std::vector<T> implicit(static_cast<size_t>(k), T(0));
    for (int64_t j = 0; j < n_rated; ++j)
        for (int f = 0; f < k; ++f) implicit[f] += implicit_rows[j * k + f];
    for (int f = 0; f < k; ++f) implicit[f] *= scale;
    const T err = svd_gradient<T>(p, q, implicit.data(), bu, bi, mu, rating, k, true, rates, grad_p, grad_q, grad_bu,
                                  grad_bi);
    T loss = err * err + reg_penalty(p, k, rates.reg_pu) + reg_penalty(q, k, rates.reg_qi) + rates.reg_bu * bu * bu +
             rates.reg_bi * bi * bi;
    for (int64_t j = 0; j < n_rated; ++j) {
        const T* y = implicit_rows + j * k;
        T* g = grad_implicit + j * k;
        loss += reg_penalty(y, k, rates.reg_yj);
        for (int f = 0; f < k; ++f) g[f] = -err * q[f] * scale + rates.reg_yj * y[f];
    }
    return T(0.5) * loss;
}

namespace {

// Splits the rows (users or items) into `strata` groups of about equal rating counts: rows in
// decreasing count order are dealt to the strata in a snake order (0..S-1, S-1..0, ...).
std::vector<int32_t> balanced_strata(const int32_t* ids, int64_t n, int64_t n_rows, int strata) {
    std::vector<int64_t> count(static_cast<size_t>(n_rows), 0);
    for (int64_t t = 0; t < n; ++t) ++count[static_cast<size_t>(ids[t])];
    std::vector<int32_t> order(static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) order[static_cast<size_t>(r)] = static_cast<int32_t>(r);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return count[static_cast<size_t>(a)] > count[static_cast<size_t>(b)]; });
    std::vector<int32_t> stratum(static_cast<size_t>(n_rows));
    for (int64_t pos = 0; pos < n_rows; ++pos) {
        const int64_t lap = pos / strata, off = pos % strata;
        stratum[static_cast<size_t>(order[static_cast<size_t>(pos)])] =
            static_cast<int32_t>(lap % 2 == 0 ? off : strata - 1 - off);
    }
    return stratum;
}

template <class T>
void shuffle_range(Triple<T>* data, int64_t n, uint64_t seed) {
    SplitMix64 rng{seed};
    for (int64_t t = n - 1; t > 0; --t) std::swap(data[t], data[rng.below(static_cast<uint64_t>(t + 1))]);
}

}  // namespace

template <class T>
EpochStats svd_sgd_epoch(const Factors<T>& m, const int32_t* users, const int32_t* items, const T* ratings, int64_t n,
                         const SgdRates<T>& rates, bool shuffle, uint64_t seed, int n_threads, int64_t min_block) {
    check_factors(m, false);
    for (int64_t t = 0; t < n; ++t) {
        if (users[t] < 0 || users[t] >= m.n_users)
            throw std::out_of_range("user index " + std::to_string(users[t]) + " outside [0, " +
                                    std::to_string(m.n_users) + ")");
        if (items[t] < 0 || items[t] >= m.n_items)
            throw std::out_of_range("item index " + std::to_string(items[t]) + " outside [0, " +
                                    std::to_string(m.n_items) + ")");
    }
    const SvdBlock<T> run_block = svd_block_for<T>(choose_isa());
    // Small blocks cost more in thread start-up and bucketing than a second thread saves
    int strata = resolve_threads(n_threads);
    while (strata > 1 && n / (static_cast<int64_t>(strata) * strata) < min_block) --strata;
    strata = static_cast<int>(std::min<int64_t>({strata, m.n_users, m.n_items}));
    if (strata < 1) strata = 1;
    std::vector<Triple<T>> data(static_cast<size_t>(n));
    std::vector<Accumulator> acc(static_cast<size_t>(strata));
    std::vector<std::vector<T>> scratch(static_cast<size_t>(strata), std::vector<T>(2 * static_cast<size_t>(m.k)));
    if (strata == 1) {
        for (int64_t t = 0; t < n; ++t) data[static_cast<size_t>(t)] = Triple<T>{users[t], items[t], ratings[t]};
        if (shuffle && n > 1) shuffle_range(data.data(), n, seed);
        run_block(m, data.data(), 0, n, rates, scratch[0].data(), acc[0].sse);
        acc[0].n = n;
        return reduce(acc);
    }
    // Conflict-free parallel SGD (the block scheme of DSGD / LIBMF): users and items fall into
    // `strata` groups each; block (a, b) holds the ratings of user group a and item group b. In
    // round s, worker w takes block (w, (w + s) mod strata): no two workers share a user or an
    // item, so there are no races, no cache lines bouncing between cores, and the result
    // depends only on the inputs, the seed and the number of strata.
    const std::vector<int32_t> user_stratum = balanced_strata(users, n, m.n_users, strata);
    const std::vector<int32_t> item_stratum = balanced_strata(items, n, m.n_items, strata);
    const size_t n_blocks = static_cast<size_t>(strata) * static_cast<size_t>(strata);
    std::vector<int64_t> offset(n_blocks + 1, 0);
    auto block_of = [&](int64_t t) {
        return static_cast<size_t>(user_stratum[static_cast<size_t>(users[t])]) * static_cast<size_t>(strata) +
               static_cast<size_t>(item_stratum[static_cast<size_t>(items[t])]);
    };
    for (int64_t t = 0; t < n; ++t) ++offset[block_of(t) + 1];
    for (size_t b = 0; b < n_blocks; ++b) offset[b + 1] += offset[b];
    {
        std::vector<int64_t> fill(offset.begin(), offset.end() - 1);
        for (int64_t t = 0; t < n; ++t)
            data[static_cast<size_t>(fill[block_of(t)]++)] = Triple<T>{users[t], items[t], ratings[t]};
    }
    for (int s = 0; s < strata; ++s) {
        parallel_for(0, strata, strata, [&](int64_t w, int) {
            const size_t b = static_cast<size_t>(w) * static_cast<size_t>(strata) +
                             static_cast<size_t>((w + s) % strata);
            const int64_t begin = offset[b], end = offset[b + 1];
            // every block gets its own shuffle stream, so the order does not depend on timing
            if (shuffle && end - begin > 1)
                shuffle_range(data.data() + begin, end - begin, seed ^ (0x9E3779B97F4A7C15ull * (b + 1)));
            // indexed by w (one block per w in a round), so the sums do not depend on timing either
            Accumulator& a = acc[static_cast<size_t>(w)];
            run_block(m, data.data(), begin, end, rates, scratch[static_cast<size_t>(w)].data(), a.sse);
            a.n += end - begin;
        });
    }
    return reduce(acc);
}

template <class T>
EpochStats svdpp_sgd_epoch(const Factors<T>& m, const CsrView& by_user, const T* ratings, int32_t* user_order,
                           const SgdRates<T>& rates, bool shuffle, uint64_t seed, int n_threads) {
    check_factors(m, true);
    if (!m.biased()) throw std::invalid_argument("SVD++ needs user and item biases");
    if (by_user.n_rows != m.n_users || by_user.n_cols != m.n_items)
        throw std::invalid_argument("the rating matrix does not match the factor shapes");
    by_user.validate("ratings");
    const int64_t n_users = m.n_users;
    for (int64_t t = 0; t < n_users; ++t) {
        if (user_order[t] < 0 || user_order[t] >= n_users)
            throw std::out_of_range("user_order holds an index outside [0, n_users)");
    }
    if (shuffle && n_users > 1) {
        SplitMix64 rng{seed};
        for (int64_t t = n_users - 1; t > 0; --t)
            std::swap(user_order[t], user_order[static_cast<int64_t>(rng.below(static_cast<uint64_t>(t + 1)))]);
    }
    const int k = m.k;
    const T decay = T(1) - rates.lr_yj * rates.reg_yj;
    const int64_t chunk = 8;
    const int workers = planned_workers(n_users, n_threads, chunk);
    std::vector<Accumulator> acc(static_cast<size_t>(workers));
    // per worker: gp, gq, implicit term, y-gradient accumulator
    std::vector<std::vector<T>> scratch(static_cast<size_t>(workers), std::vector<T>(4 * static_cast<size_t>(k)));
    parallel_for(
        0, n_users, workers,
        [&](int64_t pos, int worker) {
            const int64_t u = user_order[pos];
            const int64_t begin = by_user.row_begin(u), end = by_user.row_end(u);
            if (begin == end) return;
            T* gp = scratch[static_cast<size_t>(worker)].data();
            T* gq = gp + k;
            T* implicit = gq + k;
            T* y_acc = implicit + k;
            const T scale = T(1) / std::sqrt(static_cast<T>(end - begin));
            std::fill(implicit, implicit + k, T(0));
            std::fill(y_acc, y_acc + k, T(0));
            for (int64_t e = begin; e < end; ++e) {
                const T* y = m.implicit_factors + static_cast<int64_t>(by_user.indices[e]) * k;
                for (int f = 0; f < k; ++f) implicit[f] += y[f];
            }
            for (int f = 0; f < k; ++f) implicit[f] *= scale;
            T* p = m.user_factors + u * k;
            T& bu = m.user_bias[u];
            T y_decay = T(1);
            Accumulator& a = acc[static_cast<size_t>(worker)];
            for (int64_t e = begin; e < end; ++e) {
                const int64_t i = by_user.indices[e];
                T* q = m.item_factors + i * k;
                T& bi = m.item_bias[i];
                T gbu, gbi;
                const T err = svd_gradient<T>(p, q, implicit, bu, bi, m.global_mean, ratings[e], k, true, rates, gp, gq,
                                              &gbu, &gbi);
                a.sse += static_cast<double>(err) * static_cast<double>(err);
                // every y_j of the user would take y_j -= lr_yj * (-err q_i scale + reg_yj y_j):
                // fold the common part into the accumulator (q_i before its own update)
                const T g = err * scale;
                for (int f = 0; f < k; ++f) y_acc[f] = decay * y_acc[f] + g * q[f];
                y_decay *= decay;
                bu -= rates.lr_bu * gbu;
                bi -= rates.lr_bi * gbi;
                for (int f = 0; f < k; ++f) {
                    p[f] -= rates.lr_pu * gp[f];
                    q[f] -= rates.lr_qi * gq[f];
                }
            }
            a.n += end - begin;
            for (int64_t e = begin; e < end; ++e) {
                T* y = m.implicit_factors + static_cast<int64_t>(by_user.indices[e]) * k;
                for (int f = 0; f < k; ++f) y[f] = y_decay * y[f] + rates.lr_yj * y_acc[f];
            }
        },
        chunk);
    return reduce(acc);
}

template <class T>
EpochStats nmf_epoch(const Factors<T>& m, const CsrView& by_user, const T* ratings, const CsrView& by_item,
                     const int64_t* item_entry, T reg_pu, T reg_qi, T lr_bu, T lr_bi, T reg_bu, T reg_bi,
                     int n_threads) {
    check_factors(m, false);
    if (by_user.n_rows != m.n_users || by_user.n_cols != m.n_items || by_item.n_rows != m.n_items ||
        by_item.n_cols != m.n_users)
        throw std::invalid_argument("the rating matrices do not match the factor shapes");
    by_user.validate("ratings");
    by_item.validate("ratings by item");
    const int64_t nnz = by_user.nnz();
    if (by_item.nnz() != nnz) throw std::invalid_argument("the two rating layouts hold different numbers of entries");
    for (int64_t t = 0; t < nnz; ++t) {
        if (item_entry[t] < 0 || item_entry[t] >= nnz)
            throw std::out_of_range("item_entry holds a position outside the ratings");
    }
    const int k = m.k;
    const bool biased = m.biased();
    // 1. the current estimate of every rating: dots in parallel, biases (SGD, CSR order) after
    std::vector<T> est(static_cast<size_t>(nnz));
    parallel_for(0, m.n_users, n_threads, [&](int64_t u, int) {
        const T* p = m.user_factors + u * k;
        for (int64_t e = by_user.row_begin(u); e < by_user.row_end(u); ++e)
            est[e] = dot(p, m.item_factors + static_cast<int64_t>(by_user.indices[e]) * k, k);
    }, 64);
    EpochStats stats;
    stats.n = nnz;
    for (int64_t u = 0; u < m.n_users; ++u) {
        for (int64_t e = by_user.row_begin(u); e < by_user.row_end(u); ++e) {
            T pred = est[e];
            if (biased) {
                const int64_t i = by_user.indices[e];
                pred += m.global_mean + m.user_bias[u] + m.item_bias[i];
                const T err = ratings[e] - pred;
                m.user_bias[u] += lr_bu * (err - reg_bu * m.user_bias[u]);
                m.item_bias[i] += lr_bi * (err - reg_bi * m.item_bias[i]);
            }
            est[e] = pred;
            const double err = static_cast<double>(ratings[e]) - static_cast<double>(pred);
            stats.sse += err * err;
        }
    }
    // 2. new item factors from the user factors at the start of the epoch (kept apart until the
    //    users are done, since they use the old item factors)
    std::vector<T> new_items(static_cast<size_t>(m.n_items) * k);
    const int workers = planned_workers(std::max(m.n_items, m.n_users), n_threads, 16);
    std::vector<std::vector<T>> scratch(static_cast<size_t>(workers), std::vector<T>(2 * static_cast<size_t>(k)));
    parallel_for(0, m.n_items, workers, [&](int64_t i, int worker) {
        T* num = scratch[static_cast<size_t>(worker)].data();
        T* den = num + k;
        std::fill(num, num + 2 * k, T(0));
        for (int64_t t = by_item.row_begin(i); t < by_item.row_end(i); ++t) {
            const T* p = m.user_factors + static_cast<int64_t>(by_item.indices[t]) * k;
            const int64_t e = item_entry[t];
            for (int f = 0; f < k; ++f) {
                num[f] += p[f] * ratings[e];
                den[f] += p[f] * est[e];
            }
        }
        const T n_i = static_cast<T>(by_item.row_end(i) - by_item.row_begin(i));
        const T* q = m.item_factors + i * k;
        T* out = new_items.data() + i * k;
        for (int f = 0; f < k; ++f) {
            const T d = den[f] + n_i * reg_qi * q[f];
            out[f] = (q[f] != T(0) && d != T(0)) ? q[f] * (num[f] / d) : q[f];
        }
    }, 16);
    // 3. new user factors from the old item factors
    parallel_for(0, m.n_users, workers, [&](int64_t u, int worker) {
        T* num = scratch[static_cast<size_t>(worker)].data();
        T* den = num + k;
        std::fill(num, num + 2 * k, T(0));
        for (int64_t e = by_user.row_begin(u); e < by_user.row_end(u); ++e) {
            const T* q = m.item_factors + static_cast<int64_t>(by_user.indices[e]) * k;
            for (int f = 0; f < k; ++f) {
                num[f] += q[f] * ratings[e];
                den[f] += q[f] * est[e];
            }
        }
        const T n_u = static_cast<T>(by_user.row_end(u) - by_user.row_begin(u));
        T* p = m.user_factors + u * k;
        for (int f = 0; f < k; ++f) {
            const T d = den[f] + n_u * reg_pu * p[f];
            if (p[f] != T(0) && d != T(0)) p[f] *= num[f] / d;
        }
    }, 16);
    std::copy(new_items.begin(), new_items.end(), m.item_factors);
    return stats;
}

const char* sgd_kernel_name() { return isa_name(choose_isa()); }

#define RECFORGE_INSTANTIATE(T)                                                                                     \
    template T svd_loss_grad<T>(const T*, const T*, T, T, T, T, int, bool, const SgdRates<T>&, T*, T*, T*, T*);   \
    template T svdpp_loss_grad<T>(const T*, const T*, const T*, int64_t, T, T, T, T, int, const SgdRates<T>&, T*, \
                                  T*, T*, T*, T*);                                                                  \
    template EpochStats svd_sgd_epoch<T>(const Factors<T>&, const int32_t*, const int32_t*, const T*, int64_t,      \
                                         const SgdRates<T>&, bool, uint64_t, int, int64_t);                                          \
    template EpochStats svdpp_sgd_epoch<T>(const Factors<T>&, const CsrView&, const T*, int32_t*,                   \
                                           const SgdRates<T>&, bool, uint64_t, int);                               \
    template EpochStats nmf_epoch<T>(const Factors<T>&, const CsrView&, const T*, const CsrView&, const int64_t*, \
                                     T, T, T, T, T, T, int);

RECFORGE_INSTANTIATE(float)
RECFORGE_INSTANTIATE(double)
#undef RECFORGE_INSTANTIATE

}  // namespace recforge::explicit_mf
