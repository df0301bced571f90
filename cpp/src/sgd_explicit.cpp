// SGD rating models (biased MF / Funk SVD, PMF, SVD++) and Surprise's multiplicative NMF.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <stdexcept>
#include <string>
#include <utility>
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
void check_factors(const Factors<T>& m, bool need_implicit, bool strided = false) {
    if (m.k <= 0) throw std::invalid_argument("the number of factors must be positive");
    if (!m.user_factors || !m.item_factors) throw std::invalid_argument("factor arrays are missing");
    if (need_implicit && !m.implicit_factors) throw std::invalid_argument("implicit factors are missing");
    if (m.user_row_stride() < m.k || m.item_row_stride() < m.k)
        throw std::invalid_argument("a factor row stride is smaller than the number of factors");
    if (!strided && (m.user_row_stride() != m.k || m.item_row_stride() != m.k))
        throw std::invalid_argument("this kernel needs factor rows of exactly k elements (C-contiguous arrays)");
}


// ---------------------------------------------------------------------------------------------
// The SVD / PMF step, the hot loop of the most used model, in two versions. The portable C++ one
// applies the gradient of svd_gradient as it is, rating by rating, on the factor arrays. The
// float32 vector one (sgd_svd_kernels.inc, compiled for AVX-512 and for AVX2+FMA with
// function-level target attributes and picked at run time by what the CPU has, so the default
// build stays portable) applies the same update in the fused form
// p <- (1 - lr_pu reg_pu) p + lr_pu e q (rounding differs in the last bits), on factor rows padded
// with zeros to whole vectors and aligned to one: every load and store is one whole vector inside
// one cache line, with no scalar tail (the padding stays zero, both updates being linear in it).
// Over a run of consecutive ratings of one user (the shuffled order groups them) the user's row
// and bias stay in registers, so a step loads and stores only the item's row, and three users'
// runs are visited interleaved (for_each_lane_step). For the usual rates it also applies the
// weight decay lazily (svd_lanes_scaled).
// ---------------------------------------------------------------------------------------------
// One rating of an epoch's visiting order: the item and the rating. The ratings of an epoch are
// grouped into runs of consecutive entries of one user (the kernels keep the user's state over
// a run).
template <class T>
struct Entry {
    int32_t i;
    T r;
};

struct Run {
    int32_t u;
    int64_t begin, end;  // entries [begin, end)
};

// The runs of a block are visited kLanes at a time, interleaved. Each lane holds one run (or
// none); in every round each lane holding a run takes one step of it (its next rating), lanes in
// order; then the lanes whose run is done let it go, and the empty lanes take the next runs in
// lane order, the first kLanes runs to begin with. A run whose user another lane holds waits (and
// the runs after it with it) until that lane lets its run go, so the lanes' users always differ:
// the steps of a round form independent chains of arithmetic, which the CPU overlaps, and every
// user's row is read as its previous step left it, as in any sequential order (an item shared
// by two lanes is read from memory as the previous step left it). for_each_lane_step calls
// step(u, t) for the entries t in that order; the vector kernels follow the same schedule
// (LaneSchedule) with the lanes' rows in registers.
constexpr int kLanes = 3;

struct LaneSchedule {
    const Run* runs;
    int64_t next, end;  // the next run to take; the block's runs end here
    int64_t t[kLanes] = {}, stop[kLanes] = {};  // lane l's next entry and its run's end
    int32_t u[kLanes] = {};
    bool live[kLanes] = {};

    LaneSchedule(const Run* r, int64_t run_begin, int64_t run_end) : runs(r), next(run_begin), end(run_end) {}
    bool any() const {
        bool out = false;
        for (int l = 0; l < kLanes; ++l) out = out || live[l];
        return out;
    }
    bool done(int l) const { return live[l] && t[l] == stop[l]; }
    // the empty lanes take the next runs (lane order) while the next run's user is free; returns
    // the lanes that took one (bit l for lane l)
    unsigned refill() {
        unsigned taken = 0;
        for (int l = 0; l < kLanes; ++l) {
            if (live[l] || next >= end) continue;
            const Run& r = runs[next];
            bool held = false;
            for (int o = 0; o < kLanes; ++o) held = held || (live[o] && u[o] == r.u);
            if (held) break;
            u[l] = r.u;
            t[l] = r.begin;
            stop[l] = r.end;
            live[l] = true;
            ++next;
            taken |= 1u << l;
        }
        return taken;
    }
};

template <class Step>
void for_each_lane_step(const Run* runs, int64_t run_begin, int64_t run_end, Step&& step) {
    LaneSchedule s(runs, run_begin, run_end);
    s.refill();
    while (s.any()) {
        for (int l = 0; l < kLanes; ++l)
            if (s.live[l]) step(s.u[l], s.t[l]++);
        for (int l = 0; l < kLanes; ++l)
            if (s.done(l)) s.live[l] = false;
        s.refill();
    }
}

template <class T>
void svd_block_generic(const Factors<T>& m, const Entry<T>* data, const Run* runs, int64_t run_begin,
                       int64_t run_end, const SgdRates<T>& rates, T* scratch, double& sse) {
    const int k = m.k;
    const int64_t us = m.user_row_stride(), is = m.item_row_stride();
    const bool biased = m.biased();
    T* gp = scratch;
    T* gq = scratch + k;
    T dummy_u = 0, dummy_i = 0;
    double local = 0.0;
    for_each_lane_step(runs, run_begin, run_end, [&](int64_t u, int64_t t) {
        T* p = m.user_factors + u * us;
        T& bu = biased ? m.user_bias[u] : dummy_u;
        const int64_t i = data[t].i;
        T* q = m.item_factors + i * is;
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
    });
    sse += local;
}

// k rounded up to whole vectors of `width` floats.
int64_t padded_stride(int k, int width) { return (static_cast<int64_t>(k) + width - 1) / width * width; }

// The scale b of an item's row under lazily applied decay (the row is b q~) and 1 / b.
struct ItemScale {
    float b = 1.0f, inv = 1.0f;
};

// Factor rows padded to `stride` floats (k rounded up to a multiple of `width`, the floats of
// one vector), zeros beyond k, aligned to a whole vector, in a buffer that outlives the epoch (a
// workspace), so that its pages are not faulted in every epoch. Rows of `src_stride` floats
// already in this layout (src_stride == the padded stride, src aligned, +0.0 in the columns after
// k) are used in place: the kernels' whole-vector stores then write +0.0 over +0.0 there, so the
// columns outside the first k keep their values.
class PaddedRows {
public:
    PaddedRows(std::vector<float>& buf, float* src, int64_t src_stride, int64_t rows, int k, int width)
        : rows_(rows), k_(k), stride_(padded_stride(k, width)), src_(src), src_stride_(src_stride) {
        const uintptr_t align = static_cast<uintptr_t>(width) * sizeof(float);
        in_place_ = src_stride == stride_ && reinterpret_cast<uintptr_t>(src) % align == 0;
        // the columns after k all +0.0 (not -0.0, which a step turns into +0.0): the OR of their
        // bits is 0 (one pass the compiler vectorizes, no early exit)
        if (in_place_) {
            uint32_t any_bits = 0;
            for (int64_t r = 0; r < rows; ++r) {
                const float* pad = src + r * src_stride;
                for (int64_t f = k; f < stride_; ++f) {
                    uint32_t bits;
                    std::memcpy(&bits, pad + f, sizeof bits);
                    any_bits |= bits;
                }
            }
            in_place_ = any_bits == 0;
        }
        if (in_place_) {
            data_ = src;
            return;
        }
        buf.resize(static_cast<size_t>(rows * stride_ + width));
        const uintptr_t addr = reinterpret_cast<uintptr_t>(buf.data());
        data_ = buf.data() + ((align - addr % align) % align) / sizeof(float);
        for (int64_t r = 0; r < rows; ++r) {
            std::memcpy(row(r), src + r * src_stride, sizeof(float) * static_cast<size_t>(k));
            std::fill(row(r) + k, row(r) + stride_, 0.0f);
        }
    }
    float* row(int64_t r) { return data_ + r * stride_; }
    float* data() { return data_; }
    int64_t stride() const { return stride_; }
    // back to the source rows; with `scale`, row r times scale[r].b (scales of 1 leave a row as
    // it is)
    void copy_back(const ItemScale* scale = nullptr) {
        for (int64_t r = 0; r < rows_; ++r) {
            float* dst = src_ + r * src_stride_;
            const float* from = row(r);
            if (!scale || scale[r].b == 1.0f) {
                if (!in_place_) std::memcpy(dst, from, sizeof(float) * static_cast<size_t>(k_));
                continue;
            }
            const float sr = scale[r].b;
            for (int f = 0; f < k_; ++f) dst[f] = sr * from[f];
        }
    }

private:
    int64_t rows_;
    int k_;
    int64_t stride_;
    float* src_;
    int64_t src_stride_;
    bool in_place_ = false;
    float* data_ = nullptr;
};

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

// The scalars of a step in locals: the kernels store floats through pointers, which the compiler
// must otherwise assume may change the float fields of Factors and SgdRates.
struct StepConstants {
    float* item_bias;
    float mu, lr_bu, reg_bu, lr_bi, reg_bi, lr_pu, lr_qi;
    bool biased;
    StepConstants(const Factors<float>& m, const SgdRates<float>& r)
        : item_bias(m.item_bias), mu(m.global_mean), lr_bu(r.lr_bu), reg_bu(r.reg_bu), lr_bi(r.lr_bi),
          reg_bi(r.reg_bi), lr_pu(r.lr_pu), lr_qi(r.lr_qi), biased(m.biased()) {}

    // the prediction error and the two bias steps (bu held by the caller)
    float bias_step(const Entry<float>& x, float dot, float& bu) const {
        if (!biased) return x.r - dot;
        float& bi = item_bias[x.i];
        // the part without the dot product first, so that one subtraction follows the dot product
        const float err = (x.r - (mu + bu + bi)) - dot;
        bu += lr_bu * (err - reg_bu * bu);
        bi += lr_bi * (err - reg_bi * bi);
        return err;
    }
};

// What a kernel works on: the padded factor rows P and Q (`stride` floats apart), the biases and
// the global mean of m, the rates, an epoch's entries in visiting order with their runs, and (for
// the kernels with lazily applied decay) the items' scales.
struct EpochRows {
    const Factors<float>* m;
    const SgdRates<float>* rates;
    float* P;
    float* Q;
    int64_t stride;
    ItemScale* item_scale;
    const Entry<float>* data;
    const Run* runs;
    // the most ratings of one user and of one item in the epoch: bounds on the steps of a
    // user's run and of an item's row
    int64_t max_user_steps, max_item_steps;
};

// A scale falls below 2^-20 (when it is folded into its row) only after about
// log(2^-20) / log(decay) steps of its row; half of that here, a margin for the rounding of the
// running products.
inline int64_t scale_fold_steps(float decay) {
    return decay >= 1.0f ? INT64_MAX
                         : static_cast<int64_t>(0.5 * std::log(1.0 / 1048576.0) / std::log(static_cast<double>(decay)));
}

// A kernel: the runs [run_begin, run_end) of the epoch; adds the squared errors to sse.
using SvdRuns = void (*)(const EpochRows& e, int64_t run_begin, int64_t run_end, double& sse);

// The step kernels for AVX2 + FMA (rows of 8-float vectors) and for AVX-512 (16-float vectors):
// the same source, sgd_svd_kernels.inc, compiled for each.
namespace avx2 {
#define RF_SGD_TARGET __attribute__((target("avx2,fma")))
#define RF_SGD_INLINE __attribute__((target("avx2,fma"), always_inline))
using Vec = __m256;
constexpr int kW = 8;
RF_SGD_INLINE inline Vec vload(const float* p) { return _mm256_load_ps(p); }
RF_SGD_INLINE inline void vstore(float* p, Vec a) { _mm256_store_ps(p, a); }
RF_SGD_INLINE inline Vec vset1(float a) { return _mm256_set1_ps(a); }
RF_SGD_INLINE inline Vec vzero() { return _mm256_setzero_ps(); }
RF_SGD_INLINE inline Vec vadd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
RF_SGD_INLINE inline Vec vmul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
RF_SGD_INLINE inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
RF_SGD_INLINE inline float vhsum(Vec v) { return hsum256(v); }
RF_SGD_INLINE inline Vec vfnma(Vec a, Vec b, Vec c) { return _mm256_fnmadd_ps(a, b, c); }
RF_SGD_INLINE inline float vfirst(Vec v) { return _mm256_cvtss_f32(v); }
// a butterfly: every float adds the same terms in the same pairs, so all hold the same sum
RF_SGD_INLINE inline Vec vsum_all(Vec x) {
    x = _mm256_add_ps(x, _mm256_permute2f128_ps(x, x, 1));
    x = _mm256_add_ps(x, _mm256_permute_ps(x, 0x4E));
    return _mm256_add_ps(x, _mm256_permute_ps(x, 0xB1));
}
#include "sgd_svd_kernels.inc"
#undef RF_SGD_TARGET
#undef RF_SGD_INLINE
}  // namespace avx2

namespace avx512 {
#define RF_SGD_TARGET __attribute__((target("avx512f,fma")))
#define RF_SGD_INLINE __attribute__((target("avx512f,fma"), always_inline))
using Vec = __m512;
constexpr int kW = 16;
RF_SGD_INLINE inline Vec vload(const float* p) { return _mm512_load_ps(p); }
RF_SGD_INLINE inline void vstore(float* p, Vec a) { _mm512_store_ps(p, a); }
RF_SGD_INLINE inline Vec vset1(float a) { return _mm512_set1_ps(a); }
RF_SGD_INLINE inline Vec vzero() { return _mm512_setzero_ps(); }
RF_SGD_INLINE inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
RF_SGD_INLINE inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
RF_SGD_INLINE inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
RF_SGD_INLINE inline float vhsum(Vec v) {
    // the two halves by the zero-masking extract: GCC 12 warns on the undefined source of the
    // unmasked one (which the cast to __m256 uses too)
    const __m512d d = _mm512_castps_pd(v);
    const __m256 low = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, d, 0));
    const __m256 high = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, d, 1));
    return hsum256(_mm256_add_ps(low, high));
}
RF_SGD_INLINE inline Vec vfnma(Vec a, Vec b, Vec c) { return _mm512_fnmadd_ps(a, b, c); }
RF_SGD_INLINE inline float vfirst(Vec v) { return _mm512_cvtss_f32(v); }
// a butterfly (halves, then 128-bit quarters, pairs, neighbours): all floats hold the same sum
RF_SGD_INLINE inline Vec vsum_all(Vec x) {
    x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0x4E));
    x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0xB1));
    x = _mm512_add_ps(x, _mm512_permute_ps(x, 0x4E));
    return _mm512_add_ps(x, _mm512_permute_ps(x, 0xB1));
}
#include "sgd_svd_kernels.inc"
#undef RF_SGD_TARGET
#undef RF_SGD_INLINE
}  // namespace avx512

bool lazy_decay_applies(const SgdRates<float>& r) {
    const float cp = 1.0f - r.lr_pu * r.reg_pu, cq = 1.0f - r.lr_qi * r.reg_qi;
    return cp > 0.5f && cp <= 1.0f && cq > 0.5f && cq <= 1.0f;
}
#endif

enum class Isa { generic, avx2, avx512 };

struct CpuVectors {
    bool avx2 = false, avx512 = false;
    CpuVectors() {
#ifdef RECFORGE_SGD_SIMD
        __builtin_cpu_init();
        avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        avx512 = avx2 && __builtin_cpu_supports("avx512f");
#endif
    }
};

// The best instruction set the CPU has; RECFORGE_VECTOR_KERNEL=generic or =avx2 caps it, read on
// every call so that tests can compare the paths in one process.
Isa choose_isa() {
    static const CpuVectors cpu;
    const char* forced = std::getenv("RECFORGE_VECTOR_KERNEL");
    if (forced && std::strcmp(forced, "generic") == 0) return Isa::generic;
    const bool cap_avx2 = forced && std::strcmp(forced, "avx2") == 0;
    if (cpu.avx512 && !cap_avx2) return Isa::avx512;
    return cpu.avx2 ? Isa::avx2 : Isa::generic;
}

const char* isa_name(Isa isa) {
    return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2-fma" : "generic";
}

// Floats per vector of the float32 kernel: factor rows are padded to a multiple of this.
int vector_width(Isa isa) { return isa == Isa::avx512 ? 16 : 8; }


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

// The strata of the conflict-free blocks: ranges of consecutive row indices with about n / strata
// ratings each (row r goes to the stratum that holds the middle of its ratings in index order).
// Consecutive ranges keep the per-row arrays that the workers write (biases, the items' decay
// scales) apart: two workers share a cache line of them only at a range boundary.
std::vector<int32_t> balanced_strata(const int32_t* ids, int64_t n, int64_t n_rows, int strata) {
    std::vector<int64_t> count(static_cast<size_t>(n_rows), 0);
    for (int64_t t = 0; t < n; ++t) ++count[static_cast<size_t>(ids[t])];
    std::vector<int32_t> stratum(static_cast<size_t>(n_rows));
    int64_t before = 0;  // ratings of the rows before r
    for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t c = count[static_cast<size_t>(r)];
        const int64_t mid2 = 2 * before + c;  // twice the position of the row's middle rating
        const int64_t st = n > 0 ? mid2 * strata / (2 * n) : 0;
        stratum[static_cast<size_t>(r)] = static_cast<int32_t>(std::min<int64_t>(st, strata - 1));
        before += c;
    }
    return stratum;
}

// Item groups of the shuffled order: ranges of consecutive item indices whose factor rows (as
// the vector kernel pads them) take about 256 KiB, a share of a core's L2 cache.
int64_t item_groups(int64_t n_items, int k, size_t itemsize) {
    const int64_t row_bytes = static_cast<int64_t>((k + 7) / 8 * 8) * static_cast<int64_t>(itemsize);
    const int64_t budget = 256 * 1024;
    const int64_t groups = (n_items * row_bytes + budget - 1) / budget;
    return std::max<int64_t>(1, std::min<int64_t>(groups, n_items));
}

template <class V>
void fisher_yates(V* x, int64_t n, SplitMix64& rng) {
    for (int64_t t = n - 1; t > 0; --t) std::swap(x[t], x[rng.below(static_cast<uint64_t>(t + 1))]);
}

// 16-bit draws, four from each splitmix64 output (lowest bits first), with Lemire's bound: the
// shuffles of short runs, where a draw costs about as much as the swap.
struct Uniform16 {
    SplitMix64& rng;
    uint64_t word = 0;
    int left = 0;
    uint32_t next() {
        if (left == 0) {
            word = rng.next();
            left = 4;
        }
        const uint32_t x = static_cast<uint32_t>(word & 0xFFFFu);
        word >>= 16;
        --left;
        return x;
    }
    // uniform in [0, n), 0 < n <= 2^16
    uint32_t below(uint32_t n) {
        uint32_t m = next() * n;
        uint32_t low = m & 0xFFFFu;
        if (low < n) {
            const uint32_t threshold = (65536u - n) % n;
            while (low < threshold) {
                m = next() * n;
                low = m & 0xFFFFu;
            }
        }
        return m >> 16;
    }
};

// A run of one user's ratings in one item group, shuffled (Fisher-Yates)
// in place, front to back: x[t] swaps with x[j], j uniform in [0, t], for t = 1, 2, ...
template <class V>
void shuffle_run(V* x, int64_t n, Uniform16& draw, SplitMix64& rng) {
    if (n > 65536) {
        for (int64_t t = 1; t < n; ++t) std::swap(x[t], x[rng.below(static_cast<uint64_t>(t + 1))]);
        return;
    }
    for (int64_t t = 1; t < n; ++t) std::swap(x[t], x[draw.below(static_cast<uint32_t>(t + 1))]);
}

// The same permutation written while the run is copied (the "inside-out" form): element t goes
// to a uniform j in [0, t] and the element there moves to t; make.put(dst, x) writes the value of
// input position x. Values are copied whole (memcpy): most loads here read a value written a few
// steps before, which the store cannot forward to a wider load if it was written in parts.
template <class V, class Make>
void emit_shuffled_run(V* out, int64_t begin, int64_t end, const Make& make, Uniform16& draw, SplitMix64& rng) {
    const int64_t n = end - begin;
    make.put(out, begin);
    if (n > 65536) {
        for (int64_t t = 1; t < n; ++t) {
            const int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(t + 1)));
            std::memcpy(out + t, out + j, sizeof(V));
            make.put(out + j, begin + t);
        }
        return;
    }
    for (uint32_t t = 1; t < static_cast<uint32_t>(n); ++t) {
        const uint32_t j = draw.below(t + 1);
        std::memcpy(out + t, out + j, sizeof(V));
        make.put(out + j, begin + t);
    }
}

// A user's ratings in one cell of the visiting order: input positions [begin, end).
struct Segment {
    int64_t begin, end;
    int32_t u;
};

// What emit_block writes for input position x: the position itself (svd_epoch_plan) ...
struct Positions {
    void put(int64_t* dst, int64_t x) const { *dst = x; }
    void prefetch(const Segment&) const {}
};

// ... or the entry (item, rating) of the triple at x, from the triples' entries in input order;
// prefetch fetches a segment's entries (two segments ahead: they lie at random places).
template <class T>
struct EntriesAt {
    const Entry<T>* src;
    void put(Entry<T>* dst, int64_t x) const { std::memcpy(dst, src + x, sizeof(Entry<T>)); }
    void prefetch(const Segment& s) const {  // up to 8 cache lines
        const char* first = reinterpret_cast<const char*>(src + s.begin);
        const char* end = reinterpret_cast<const char*>(src + s.end);
        for (int line = 0; line < 8 && first + 64 * line < end; ++line) __builtin_prefetch(first + 64 * line);
    }
};

}  // namespace

struct SvdWorkspace::Impl {
    std::vector<int64_t> order, by_user, start, fill, offset, cuts;
    // cells: ranges of consecutive items in one item group and one item stratum (for one
    // stratum, the groups); cell_start[c] is the first item of cell c, cell_of[g * strata + b]
    // the cell of group g in item stratum b (-1: none); cut_cells, the cells `cuts` was made for
    std::vector<int64_t> cell_start, cell_of, cut_cells;
    int strata_made = 0;  // the strata user_stratum and item_stratum were made for
    std::vector<Segment> segments;
    std::vector<int64_t> segment_block;  // block b is segments[segment_block[b] .. segment_block[b + 1])
    // on several strata, the seed of each block's own stream of run shuffles (so that the
    // blocks can be written in parallel)
    std::vector<uint64_t> block_seed;
    std::vector<std::vector<int32_t>> stratum_users;
    SplitMix64 run_rng{0};
    std::vector<int32_t> user_perm, user_rank, item_rank, user_stratum, item_stratum;
    // per dtype: an epoch's entries in visiting order (data) and the triples' entries in input
    // order (src, which the order is copied from)
    template <class T>
    struct Entries {
        std::vector<Entry<T>> data, src;
    };
    Entries<float> entries32;
    Entries<double> entries64;
    bool src_made = false;  // src holds the entries of the triples (of a trainer's epochs)
    // the most ratings of one user and of one item among the triples (of a trainer's epochs
    // when most_made)
    std::vector<int64_t> id_count;
    int64_t most_user_ratings = 0, most_item_ratings = 0;
    bool most_made = false;
    std::vector<Run> runs;
    std::vector<int64_t> run_offset;  // block b is runs[run_offset[b] .. run_offset[b + 1])
    std::vector<float> padded_users, padded_items;
    std::vector<ItemScale> item_scale;
    int strata = 1;

    template <class T>
    Entries<T>& entries() {
        if constexpr (std::is_same_v<T, float>) return entries32;
        else return entries64;
    }

    // Appends entry position `pos` of user u to the runs (a new run unless it continues the last
    // one from first_run on: a run never spans two blocks).
    void add_to_runs(int32_t u, int64_t pos, int64_t len, size_t first_run) {
        if (runs.size() > first_run && runs.back().u == u && runs.back().end == pos) {
            runs.back().end += len;
            return;
        }
        runs.push_back(Run{u, pos, pos + len});
    }

    // The visiting order of svd_epoch_plan. For ratings sorted by user and item it is left as
    // `segments` (runs of input positions in visiting order, block by block, each shuffled by
    // emit_segments from the generator state `run_rng`) and `offset`, and plan returns true;
    // otherwise it fills `order` and `offset` and returns false. `sorted` is -1 (find out), 0 or 1.
    bool plan(const int32_t* users, const int32_t* items, int64_t n, int64_t n_users, int64_t n_items, int k,
              size_t itemsize, bool shuffle, uint64_t seed, int n_threads, int64_t min_block, int sorted = -1,
              bool keep_cuts = false) {
        // Small blocks cost more in thread start-up and bucketing than a second thread saves
        strata = resolve_threads(n_threads);
        while (strata > 1 && n / (static_cast<int64_t>(strata) * strata) < min_block) --strata;
        strata = static_cast<int>(std::min<int64_t>({strata, n_users, n_items}));
        if (strata < 1) strata = 1;
        if (strata > 1 && !(keep_cuts && strata_made == strata)) {
            user_stratum = balanced_strata(users, n, n_users, strata);
            item_stratum = balanced_strata(items, n, n_items, strata);
            strata_made = strata;
        }
        const int64_t n_blocks = static_cast<int64_t>(strata) * strata;
        const int S = strata;
        auto block_of = [&](int64_t t) -> int64_t {
            if (S == 1) return 0;
            return static_cast<int64_t>(user_stratum[static_cast<size_t>(users[t])]) * S +
                   item_stratum[static_cast<size_t>(items[t])];
        };
        offset.assign(static_cast<size_t>(n_blocks + 1), 0);
        if (!shuffle) {
            order.resize(static_cast<size_t>(n));
            counting_sort(nullptr, n, n_blocks, block_of, order);
            for (int64_t b = 0; b <= n_blocks; ++b) offset[static_cast<size_t>(b)] = start[static_cast<size_t>(b)];
            return false;
        }
        SplitMix64 rng{seed};
        // users in a random order
        user_perm.resize(static_cast<size_t>(n_users));
        for (int64_t u = 0; u < n_users; ++u) user_perm[static_cast<size_t>(u)] = static_cast<int32_t>(u);
        fisher_yates(user_perm.data(), n_users, rng);
        user_rank.resize(static_cast<size_t>(n_users));
        for (int64_t r = 0; r < n_users; ++r)
            user_rank[static_cast<size_t>(user_perm[static_cast<size_t>(r)])] = static_cast<int32_t>(r);
        // item groups in a random order; item_rank[i] is the rank of i's group
        const int64_t groups = item_groups(n_items, k, itemsize);
        std::vector<int64_t> group_rank(static_cast<size_t>(groups));
        for (int64_t g = 0; g < groups; ++g) group_rank[static_cast<size_t>(g)] = g;
        fisher_yates(group_rank.data(), groups, rng);
        block_seed.resize(S > 1 ? static_cast<size_t>(n_blocks) : 0);
        for (auto& b : block_seed) b = rng.next();
        item_rank.resize(static_cast<size_t>(n_items));
        for (int64_t i = 0; i < n_items; ++i)
            item_rank[static_cast<size_t>(i)] = static_cast<int32_t>(group_rank[static_cast<size_t>(i * groups / n_items)]);
        // the cut table of plan_sorted has n_users x (cells + 1) entries: only when that is not
        // much more than the ratings themselves
        make_cells(n_items, groups);
        const int64_t cells = static_cast<int64_t>(cell_start.size()) - 1;
        const bool cuts_fit = n_users * (cells + 1) <= 2 * n + 4096;
        if (cuts_fit && (sorted < 0 ? sorted_by_user_item(users, items, n) : sorted == 1)) {
            if (!keep_cuts || cut_cells != cell_start) make_cuts(users, items, n, n_users);
            plan_sorted(n_users, groups, group_rank, rng);
            return true;
        }
        // 1. by user rank; 2. stably by (block, item group rank): in each group the users keep
        //    their rank order and each user's ratings are consecutive
        order.resize(static_cast<size_t>(n));
        by_user.resize(static_cast<size_t>(n));
        counting_sort(nullptr, n, n_users,
                      [&](int64_t t) { return static_cast<int64_t>(user_rank[static_cast<size_t>(users[t])]); },
                      by_user);
        auto key = [&](int64_t t) { return block_of(t) * groups + item_rank[static_cast<size_t>(items[t])]; };
        counting_sort(by_user.data(), n, n_blocks * groups, key, order);
        for (int64_t b = 0; b <= n_blocks; ++b) offset[static_cast<size_t>(b)] = start[static_cast<size_t>(b * groups)];
        // 3. each user's ratings within a group in a random order (block by block, each block
        //    from its own stream on several strata)
        int64_t* o = order.data();
        for (int64_t b = 0; b < n_blocks; ++b) {
            SplitMix64 block_rng{S > 1 ? block_seed[static_cast<size_t>(b)] : 0};
            SplitMix64& r = S > 1 ? block_rng : rng;
            Uniform16 draw{r};
            const int64_t last = offset[static_cast<size_t>(b + 1)];
            for (int64_t j = offset[static_cast<size_t>(b)]; j < last;) {
                const int32_t u = users[o[j]];
                const int64_t kj = key(o[j]);
                int64_t e = j + 1;
                while (e < last && users[o[e]] == u && key(o[e]) == kj) ++e;
                if (e - j > 1) shuffle_run(o + j, e - j, draw, r);
                j = e;
            }
        }
        return false;
    }

    static bool sorted_by_user_item(const int32_t* users, const int32_t* items, int64_t n) {
        for (int64_t t = 1; t < n; ++t) {
            if (users[t] < users[t - 1] || (users[t] == users[t - 1] && items[t] < items[t - 1])) return false;
        }
        return true;
    }

    // The cells of `groups` item groups on the item strata (both ranges of consecutive items).
    void make_cells(int64_t n_items, int64_t groups) {
        const int S = strata;
        cell_start.clear();
        cell_of.assign(static_cast<size_t>(groups * S), -1);
        for (int64_t i = 0; i < n_items;) {
            const int64_t g = i * groups / n_items;
            const int64_t group_end = ((g + 1) * n_items + groups - 1) / groups;  // the first item of group g + 1
            const int32_t b = S == 1 ? 0 : item_stratum[static_cast<size_t>(i)];
            int64_t e = i + 1;
            while (e < group_end && (S == 1 || item_stratum[static_cast<size_t>(e)] == b)) ++e;
            cell_of[static_cast<size_t>(g * S + b)] = static_cast<int64_t>(cell_start.size());
            cell_start.push_back(i);
            i = e;
        }
        cell_start.push_back(n_items);
    }

    // For ratings sorted by user and then item (the rows of a CSR matrix with sorted indices, as
    // the models pass them) a user's ratings in one cell are a contiguous range of positions:
    // cuts[u * (cells + 1) + c] is the first position of user u's ratings in cell c, found by
    // binary search.
    void make_cuts(const int32_t* users, const int32_t* items, int64_t n, int64_t n_users) {
        const int64_t cells = static_cast<int64_t>(cell_start.size()) - 1;
        cuts.resize(static_cast<size_t>(n_users * (cells + 1)));
        int64_t t = 0;
        for (int64_t u = 0; u < n_users; ++u) {
            int64_t* cut = cuts.data() + u * (cells + 1);
            const int64_t begin = t;
            t = std::upper_bound(users + t, users + n, static_cast<int32_t>(u)) - users;
            cut[0] = begin;
            for (int64_t c = 1; c < cells; ++c) {
                const int32_t first_item = static_cast<int32_t>(cell_start[static_cast<size_t>(c)]);
                cut[c] = std::lower_bound(items + cut[c - 1], items + t, first_item) - items;
            }
            cut[cells] = t;
        }
        cut_cells = cell_start;
    }

    // The same order as the counting sorts give, from the cut table: block by block, the item
    // groups in their random order, the block's users in their random order.
    void plan_sorted(int64_t n_users, int64_t groups, const std::vector<int64_t>& group_rank, SplitMix64& rng) {
        const int S = strata;
        const int64_t n_blocks = static_cast<int64_t>(S) * S;
        const int64_t cells = static_cast<int64_t>(cell_start.size()) - 1;
        std::vector<int64_t> group_of_rank(static_cast<size_t>(groups));
        for (int64_t g = 0; g < groups; ++g) group_of_rank[static_cast<size_t>(group_rank[static_cast<size_t>(g)])] = g;
        stratum_users.resize(static_cast<size_t>(S));
        for (auto& list : stratum_users) list.clear();
        for (int64_t ur = 0; ur < n_users; ++ur) {
            const int32_t u = user_perm[static_cast<size_t>(ur)];
            stratum_users[static_cast<size_t>(S == 1 ? 0 : user_stratum[static_cast<size_t>(u)])].push_back(u);
        }
        segments.clear();
        segment_block.assign(static_cast<size_t>(n_blocks + 1), 0);
        int64_t pos = 0;
        for (int64_t b = 0; b < n_blocks; ++b) {
            segment_block[static_cast<size_t>(b)] = static_cast<int64_t>(segments.size());
            offset[static_cast<size_t>(b)] = pos;
            const int64_t a = b / S, item_stratum_of_block = b % S;
            for (int64_t r = 0; r < groups; ++r) {
                const int64_t c = cell_of[static_cast<size_t>(group_of_rank[static_cast<size_t>(r)] * S + item_stratum_of_block)];
                if (c < 0) continue;
                for (const int32_t u : stratum_users[static_cast<size_t>(a)]) {
                    const int64_t* cut = cuts.data() + static_cast<int64_t>(u) * (cells + 1);
                    if (cut[c + 1] > cut[c]) {
                        segments.push_back(Segment{cut[c], cut[c + 1], u});
                        pos += cut[c + 1] - cut[c];
                    }
                }
            }
        }
        segment_block[static_cast<size_t>(n_blocks)] = static_cast<int64_t>(segments.size());
        offset[static_cast<size_t>(n_blocks)] = pos;
        run_rng = rng;
    }

    // Writes the values (make.put: Positions or EntriesAt) of the positions of `segments` into
    // out, each segment shuffled.
    template <class V, class Make>
    void emit_segments(V* out, const Make& make) const {
        for (int64_t b = 0; b < static_cast<int64_t>(strata) * strata; ++b) emit_block(out, b, make);
    }

    // The segments of block b, from the block's own stream on several strata (from run_rng on one).
    template <class V, class Make>
    __attribute__((noinline)) void emit_block(V* out, int64_t b, const Make& make) const {
        SplitMix64 rng = strata > 1 ? SplitMix64{block_seed[static_cast<size_t>(b)]} : run_rng;
        Uniform16 draw{rng};
        int64_t pos = offset[static_cast<size_t>(b)];
        const int64_t last = segment_block[static_cast<size_t>(b + 1)];
        for (int64_t sg = segment_block[static_cast<size_t>(b)]; sg < last; ++sg) {
            const Segment& s = segments[static_cast<size_t>(sg)];
            if (sg + 2 < last) make.prefetch(segments[static_cast<size_t>(sg + 2)]);
            emit_shuffled_run(out + pos, s.begin, s.end, make, draw, rng);
            pos += s.end - s.begin;
        }
    }

    // Stable counting sort of the positions in[0..n) (0..n-1 when in is null) by key(t) in
    // [0, n_keys) into out; start[b] is where key b begins.
    template <class Key>
    void counting_sort(const int64_t* in, int64_t n, int64_t n_keys, Key key, std::vector<int64_t>& out) {
        start.assign(static_cast<size_t>(n_keys + 1), 0);
        for (int64_t j = 0; j < n; ++j) ++start[static_cast<size_t>(key(in ? in[j] : j) + 1)];
        for (int64_t b = 0; b < n_keys; ++b) start[static_cast<size_t>(b + 1)] += start[static_cast<size_t>(b)];
        fill.assign(start.begin(), start.end() - 1);
        for (int64_t j = 0; j < n; ++j) {
            const int64_t t = in ? in[j] : j;
            out[static_cast<size_t>(fill[static_cast<size_t>(key(t))]++)] = t;
        }
    }
};

SvdWorkspace::SvdWorkspace() : impl_(std::make_unique<Impl>()) {}
SvdWorkspace::~SvdWorkspace() = default;

EpochPlan svd_epoch_plan(const int32_t* users, const int32_t* items, int64_t n, int64_t n_users, int64_t n_items,
                         int k, size_t itemsize, bool shuffle, uint64_t seed, int n_threads, int64_t min_block) {
    SvdWorkspace ws;
    if (ws.impl().plan(users, items, n, n_users, n_items, k, itemsize, shuffle, seed, n_threads, min_block)) {
        ws.impl().order.resize(static_cast<size_t>(n));
        ws.impl().emit_segments(ws.impl().order.data(), Positions{});
    }
    EpochPlan plan;
    plan.offset = std::move(ws.impl().offset);
    plan.strata = ws.impl().strata;
    // the runs of each block (stretches of one user) visited as the kernels do, kLanes at a time
    const std::vector<int64_t>& order = ws.impl().order;
    plan.order.resize(order.size());
    std::vector<Run> runs;
    for (size_t b = 0; b + 1 < plan.offset.size(); ++b) {
        runs.clear();
        for (int64_t j = plan.offset[b]; j < plan.offset[b + 1]; ++j) {
            const int32_t u = users[order[static_cast<size_t>(j)]];
            if (!runs.empty() && runs.back().u == u) ++runs.back().end;
            else runs.push_back(Run{u, j, j + 1});
        }
        int64_t pos = plan.offset[b];
        for_each_lane_step(runs.data(), 0, static_cast<int64_t>(runs.size()),
                           [&](int64_t, int64_t t) { plan.order[static_cast<size_t>(pos++)] = order[static_cast<size_t>(t)]; });
    }
    return plan;
}

namespace {

// Checks the triples' indices (naming a bad one); returns whether they are sorted by user and
// then item. Branch-free passes (the compiler vectorizes them); the slow loop names the index.
bool check_triples(const int32_t* users, const int32_t* items, int64_t n, int64_t n_users, int64_t n_items) {
    int32_t lo = 0, hi_user = -1, hi_item = -1;
    int64_t unsorted = 0;  // pairs out of (user, item) order
    for (int64_t t = 0; t < n; ++t) {
        lo = std::min(lo, std::min(users[t], items[t]));
        hi_user = std::max(hi_user, users[t]);
        hi_item = std::max(hi_item, items[t]);
    }
    for (int64_t t = 1; t < n; ++t)
        unsorted += (users[t] < users[t - 1]) | ((users[t] == users[t - 1]) & (items[t] < items[t - 1]));
    if (lo < 0 || hi_user >= n_users || hi_item >= n_items) {
        for (int64_t t = 0; t < n; ++t) {
            if (users[t] < 0 || users[t] >= n_users)
                throw std::out_of_range("user index " + std::to_string(users[t]) + " outside [0, " +
                                        std::to_string(n_users) + ")");
            if (items[t] < 0 || items[t] >= n_items)
                throw std::out_of_range("item index " + std::to_string(items[t]) + " outside [0, " +
                                        std::to_string(n_items) + ")");
        }
    }
    return unsorted == 0;
}

// The most ratings of one user (or item) among n checked triples, ids in [0, n_ids) (count: a
// buffer).
int64_t most_ratings_of_one(const int32_t* ids, int64_t n, int64_t n_ids, std::vector<int64_t>& count) {
    count.assign(static_cast<size_t>(n_ids), 0);
    int64_t most = 0;
    for (int64_t t = 0; t < n; ++t) most = std::max(most, ++count[static_cast<size_t>(ids[t])]);
    return most;
}

// The epoch of svd_sgd_epoch on checked triples. `keep_cuts`: the triples are the same as in the
// workspace's previous epochs (an SvdTrainer's), so its cut table still holds.
template <class T>
EpochStats run_svd_epoch(SvdWorkspace::Impl& ws, const Factors<T>& m, const int32_t* users, const int32_t* items,
                         const T* ratings, int64_t n, bool sorted, bool keep_cuts, const SgdRates<T>& rates,
                         bool shuffle, uint64_t seed, int n_threads, int64_t min_block) {
    const bool by_segments = ws.plan(users, items, n, m.n_users, m.n_items, m.k, sizeof(T), shuffle, seed, n_threads,
                                     min_block, sorted, keep_cuts);
    const int strata = ws.strata;
    // the entries in visiting order, and their runs block by block (a run never spans two blocks)
    std::vector<Entry<T>>& data = ws.entries<T>().data;
    data.resize(static_cast<size_t>(n));
    ws.runs.clear();
    const int64_t n_blocks = static_cast<int64_t>(strata) * strata;
    ws.run_offset.assign(static_cast<size_t>(n_blocks + 1), 0);
    if (by_segments) {
        // the entries in input order, once for the epochs of a trainer (one sequential pass;
        // the segments then read one array at random places instead of two)
        std::vector<Entry<T>>& src = ws.entries<T>().src;
        if (!keep_cuts || !ws.src_made) {
            src.resize(static_cast<size_t>(n));
            for (int64_t t = 0; t < n; ++t) src[static_cast<size_t>(t)] = Entry<T>{items[t], ratings[t]};
            ws.src_made = keep_cuts;
        }
        const EntriesAt<T> make{src.data()};
        parallel_for(0, n_blocks, strata, [&](int64_t b, int) { ws.emit_block(data.data(), b, make); });
        int64_t pos = 0;
        for (int64_t b = 0; b < n_blocks; ++b) {
            const size_t first_run = ws.runs.size();
            ws.run_offset[static_cast<size_t>(b)] = static_cast<int64_t>(first_run);
            for (int64_t sg = ws.segment_block[static_cast<size_t>(b)]; sg < ws.segment_block[static_cast<size_t>(b + 1)]; ++sg) {
                const Segment& s = ws.segments[static_cast<size_t>(sg)];
                ws.add_to_runs(s.u, pos, s.end - s.begin, first_run);
                pos += s.end - s.begin;
            }
        }
    } else {
        for (int64_t b = 0; b < n_blocks; ++b) {
            ws.run_offset[static_cast<size_t>(b)] = static_cast<int64_t>(ws.runs.size());
            const int64_t first = ws.offset[static_cast<size_t>(b)], last = ws.offset[static_cast<size_t>(b + 1)];
            for (int64_t j = first; j < last; ++j) {
                const int64_t t = ws.order[static_cast<size_t>(j)];
                data[static_cast<size_t>(j)] = Entry<T>{items[t], ratings[t]};
                if (j > first && ws.runs.back().u == users[t]) {
                    ++ws.runs.back().end;
                } else {
                    ws.runs.push_back(Run{users[t], j, j + 1});
                }
            }
        }
    }
    ws.run_offset[static_cast<size_t>(n_blocks)] = static_cast<int64_t>(ws.runs.size());
    std::vector<Accumulator> acc(static_cast<size_t>(strata));
    std::vector<std::vector<T>> scratch(static_cast<size_t>(strata), std::vector<T>(2 * static_cast<size_t>(m.k)));
    std::function<void(int64_t, int64_t, int)> run_block = [&](int64_t run_begin, int64_t run_end, int w) {
        svd_block_generic<T>(m, data.data(), ws.runs.data(), run_begin, run_end, rates,
                             scratch[static_cast<size_t>(w)].data(), acc[static_cast<size_t>(w)].sse);
    };
#ifdef RECFORGE_SGD_SIMD
    std::unique_ptr<PaddedRows> pu, qi;
    if constexpr (std::is_same_v<T, float>) {
        const Isa isa = choose_isa();
        if (isa != Isa::generic) {
            const int width = vector_width(isa);
            pu = std::make_unique<PaddedRows>(ws.padded_users, m.user_factors, m.user_row_stride(), m.n_users, m.k,
                                              width);
            qi = std::make_unique<PaddedRows>(ws.padded_items, m.item_factors, m.item_row_stride(), m.n_items, m.k,
                                              width);
            const bool scaled = lazy_decay_applies(rates);
            ws.item_scale.assign(scaled ? static_cast<size_t>(m.n_items) : 0, ItemScale{});
            if (scaled && (!keep_cuts || !ws.most_made)) {  // once for the epochs of a trainer
                ws.most_user_ratings = most_ratings_of_one(users, n, m.n_users, ws.id_count);
                ws.most_item_ratings = most_ratings_of_one(items, n, m.n_items, ws.id_count);
                ws.most_made = keep_cuts;
            }
            const int nv = static_cast<int>(pu->stride() / width);
            const SvdRuns runs = isa == Isa::avx512 ? avx512::runs_for(nv, scaled) : avx2::runs_for(nv, scaled);
            const EpochRows rows{&m, &rates, pu->data(), qi->data(), pu->stride(), ws.item_scale.data(), data.data(),
                                 ws.runs.data(), scaled ? ws.most_user_ratings : n, scaled ? ws.most_item_ratings : n};
            run_block = [&, runs, rows](int64_t run_begin, int64_t run_end, int w) {
                runs(rows, run_begin, run_end, acc[static_cast<size_t>(w)].sse);
            };
        }
    }
#endif
    if (strata == 1) {
        run_block(0, static_cast<int64_t>(ws.runs.size()), 0);
        acc[0].n = n;
    } else {
        // Conflict-free parallel SGD (the block scheme of DSGD / LIBMF): users and items fall into
        // `strata` groups each; block (a, b) holds the ratings of user group a and item group b.
        // In round s, worker w takes block (w, (w + s) mod strata): no two workers share a user or
        // an item, so there are no races, no cache lines bouncing between cores, and the result
        // depends only on the inputs, the seed and the number of strata.
        for (int s = 0; s < strata; ++s) {
            parallel_for(0, strata, strata, [&](int64_t w, int) {
                const size_t b = static_cast<size_t>(w) * static_cast<size_t>(strata) +
                                 static_cast<size_t>((w + s) % strata);
                // indexed by w (one block per w in a round), so the sums do not depend on timing
                run_block(ws.run_offset[b], ws.run_offset[b + 1], static_cast<int>(w));
                acc[static_cast<size_t>(w)].n += ws.offset[b + 1] - ws.offset[b];
            });
        }
    }
#ifdef RECFORGE_SGD_SIMD
    if constexpr (std::is_same_v<T, float>) {
        if (pu) {
            pu->copy_back();
            qi->copy_back(ws.item_scale.empty() ? nullptr : ws.item_scale.data());
        }
    }
#endif
    return reduce(acc);
}

}  // namespace

template <class T>
EpochStats svd_sgd_epoch(const Factors<T>& m, const int32_t* users, const int32_t* items, const T* ratings, int64_t n,
                         const SgdRates<T>& rates, bool shuffle, uint64_t seed, int n_threads, int64_t min_block,
                         SvdWorkspace* workspace) {
    check_factors(m, false, true);
    const bool sorted = check_triples(users, items, n, m.n_users, m.n_items);
    SvdWorkspace local;
    SvdWorkspace::Impl& ws = (workspace ? *workspace : local).impl();
    return run_svd_epoch<T>(ws, m, users, items, ratings, n, sorted, false, rates, shuffle, seed, n_threads,
                            min_block);
}

template <class T>
SvdTrainer<T>::SvdTrainer(const int32_t* users, const int32_t* items, const T* ratings, int64_t n, int64_t n_users,
                          int64_t n_items)
    : users_(users, users + n), items_(items, items + n), ratings_(ratings, ratings + n), n_users_(n_users),
      n_items_(n_items) {
    if (n_users < 0 || n_items < 0) throw std::invalid_argument("n_users and n_items must be non-negative");
    sorted_ = check_triples(users_.data(), items_.data(), n, n_users, n_items);
}

template <class T>
EpochStats SvdTrainer<T>::epoch(const Factors<T>& m, const SgdRates<T>& rates, bool shuffle, uint64_t seed,
                                int n_threads, int64_t min_block) {
    check_factors(m, false, true);
    if (m.n_users != n_users_ || m.n_items != n_items_)
        throw std::invalid_argument("the factors have " + std::to_string(m.n_users) + " user and " +
                                    std::to_string(m.n_items) + " item rows; the trainer's ratings index " +
                                    std::to_string(n_users_) + " users and " + std::to_string(n_items_) + " items");
    return run_svd_epoch<T>(workspace_.impl(), m, users_.data(), items_.data(), ratings_.data(), size(), sorted_,
                            true, rates, shuffle, seed, n_threads, min_block);
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

int64_t svd_padded_stride(int k) {
    if (k <= 0) throw std::invalid_argument("k must be positive");
    return padded_stride(k, vector_width(choose_isa()));
}

#define RECFORGE_INSTANTIATE(T)                                                                                     \
    template T svd_loss_grad<T>(const T*, const T*, T, T, T, T, int, bool, const SgdRates<T>&, T*, T*, T*, T*);   \
    template T svdpp_loss_grad<T>(const T*, const T*, const T*, int64_t, T, T, T, T, int, const SgdRates<T>&, T*, \
                                  T*, T*, T*, T*);                                                                  \
    template EpochStats svd_sgd_epoch<T>(const Factors<T>&, const int32_t*, const int32_t*, const T*, int64_t,      \
                                         const SgdRates<T>&, bool, uint64_t, int, int64_t, SvdWorkspace*);         \
    template class SvdTrainer<T>;                                                                                   \
    template EpochStats svdpp_sgd_epoch<T>(const Factors<T>&, const CsrView&, const T*, int32_t*,                   \
                                           const SgdRates<T>&, bool, uint64_t, int);                               \
    template EpochStats nmf_epoch<T>(const Factors<T>&, const CsrView&, const T*, const CsrView&, const int64_t*, \
                                     T, T, T, T, T, T, int);

RECFORGE_INSTANTIATE(float)
RECFORGE_INSTANTIATE(double)
#undef RECFORGE_INSTANTIATE

}  // namespace recforge::explicit_mf
