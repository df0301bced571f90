// Bandit policies: selection with propensities and state updates (see bandits.hpp).
#include "recforge/bandits.hpp"

#include <Eigen/Dense>
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/common/random.hpp"

namespace recforge::bandits {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();


uint64_t stream_seed(uint64_t seed, uint64_t row, uint64_t purpose) {
    return mix64(mix64(seed) ^ mix64(row + 0x2545F4914F6CDD1Dull) ^ (purpose * 0xD1B54A32D192ED03ull));
}

// splitmix64 stream with the draws the policies need.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t s) : state(s) {}
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // uniform in [0, 1)
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    // uniform in (0, 1)
    double open_uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
    uint64_t below(uint64_t n) {
        // Lemire's multiply-shift with rejection: unbiased
        uint64_t x = next();
        __uint128_t m = static_cast<__uint128_t>(x) * n;
        uint64_t l = static_cast<uint64_t>(m);
        if (l < n) {
            const uint64_t t = (0 - n) % n;
            while (l < t) {
                x = next();
                m = static_cast<__uint128_t>(x) * n;
                l = static_cast<uint64_t>(m);
            }
        }
        return static_cast<uint64_t>(m >> 64);
    }
    // Standard normal by the ziggurat method (Marsaglia & Tsang 2000, 128 layers); the layer
    // index and the value come from disjoint bits of one 64-bit draw.
    double normal();
    double gumbel() { return -std::log(-std::log(open_uniform())); }
};

double Rng::normal() { return ziggurat_normal(*this); }

enum Purpose : uint64_t { kChoose = 1, kEstimate = 2 };

void check_mask(const uint8_t* mask, int64_t n_mask_rows, int64_t n_rows) {
    if (mask && n_mask_rows != 1 && n_mask_rows != n_rows)
        throw std::invalid_argument("candidate mask must have 1 row or one row per context (" +
                                    std::to_string(n_rows) + "), got " + std::to_string(n_mask_rows));
}

// Candidate arms of row r, in index order.
void candidates_of(const uint8_t* mask, int64_t n_mask_rows, int64_t r, int64_t n_arms, std::vector<int32_t>& cand) {
    if (!mask) {
        cand.resize(static_cast<size_t>(n_arms));
        std::iota(cand.begin(), cand.end(), 0);
        return;
    }
    cand.clear();
    const uint8_t* row = mask + (n_mask_rows == 1 ? 0 : r) * n_arms;
    for (int64_t a = 0; a < n_arms; ++a)
        if (row[a]) cand.push_back(static_cast<int32_t>(a));
}

void require_candidates(const std::vector<int32_t>& cand, int64_t k, int64_t r) {
    if (cand.empty())
        throw std::invalid_argument("context row " + std::to_string(r) +
                                    " has no candidate arm: allow at least one arm per row");
    if (static_cast<int64_t>(cand.size()) < k)
        throw std::invalid_argument("k=" + std::to_string(k) + " is larger than the " + std::to_string(cand.size()) +
                                    " candidate arms of context row " + std::to_string(r) + "; ask for at most " +
                                    std::to_string(cand.size()));
}

// Rank the candidates by a deterministic score, best first, breaking ties uniformly at random;
// writes the first k arms and (if prop) the probability that each sits at its slot, which is
// 1/|tie group| for every member of the group that covers the slot.
void rank_with_ties(const double* score, std::vector<int32_t>& cand, int64_t k, Rng& rng, int32_t* arms,
                    double* prop) {
    const int64_t n = static_cast<int64_t>(cand.size());
    if (k == 1) {
        double best = -kInf;
        int64_t ties = 0;
        int32_t chosen = cand[0];
        for (int32_t a : cand) {
            const double s = score[a];
            if (s > best) {
                best = s;
                ties = 1;
                chosen = a;
            } else if (s == best) {
                ++ties;
                if (rng.below(static_cast<uint64_t>(ties)) == 0) chosen = a;  // reservoir draw
            }
        }
        if (ties == 0) {  // every score is -inf (or NaN)
            ties = n;
            chosen = cand[rng.below(static_cast<uint64_t>(n))];
        }
        arms[0] = chosen;
        if (prop) prop[0] = 1.0 / static_cast<double>(ties);
        return;
    }
    std::stable_sort(cand.begin(), cand.end(), [&](int32_t x, int32_t y) { return score[x] > score[y]; });
    int64_t s = 0;
    while (s < k) {
        int64_t e = s + 1;
        while (e < n && score[cand[e]] == score[cand[s]]) ++e;
        for (int64_t i = e - 1; i > s; --i) {
            const int64_t j = s + static_cast<int64_t>(rng.below(static_cast<uint64_t>(i - s + 1)));
            std::swap(cand[i], cand[j]);
        }
        for (int64_t j = s; j < std::min(e, k); ++j) {
            arms[j] = cand[j];
            if (prop) prop[j] = 1.0 / static_cast<double>(e - s);
        }
        s = e;
    }
}

// Probability of each arm at slot 0 when ranking by a deterministic score with random ties.
void tie_probabilities(const double* score, const std::vector<int32_t>& cand, double weight, double* out) {
    double best = -kInf;
    for (int32_t a : cand) best = std::max(best, score[a]);
    int64_t ties = 0;
    for (int32_t a : cand)
        if (score[a] == best) ++ties;
    if (ties == 0) {
        for (int32_t a : cand) out[a] += weight / static_cast<double>(cand.size());
        return;
    }
    for (int32_t a : cand)
        if (score[a] == best) out[a] += weight / static_cast<double>(ties);
}

// Top-k of sampled values among the candidates into order[0..k).
void top_k_of(const double* value, const std::vector<int32_t>& cand, int64_t k, std::vector<int32_t>& order) {
    if (k == 1) {  // the first of the largest values, with the running best in a register
        int32_t best = cand[0];
        double bv = value[best];
        for (int32_t a : cand)
            if (value[a] > bv) {
                bv = value[a];
                best = a;
            }
        order.assign(1, best);
        return;
    }
    order.assign(cand.begin(), cand.end());
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t x, int32_t y) { return value[x] > value[y] || (value[x] == value[y] && x < y); });
    order.resize(static_cast<size_t>(k));
}

// A policy whose choice is the top-k of randomly drawn values: draw(rng, cand, value) fills
// value[a] for the candidates. Selection uses one draw from the choosing stream; propensities
// are the frequencies, over n_draws draws of the estimating stream, of each chosen arm at its slot.
template <class Draw>
void sampled_select_row(Draw&& draw, std::vector<int32_t>& cand, int64_t k, int64_t n_draws, Rng& choose,
                        Rng& estimate, std::vector<double>& value, std::vector<int32_t>& order, int32_t* arms,
                        double* prop) {
    draw(choose, cand, value.data());
    top_k_of(value.data(), cand, k, order);
    for (int64_t j = 0; j < k; ++j) arms[j] = order[j];
    if (!prop) return;
    if (n_draws <= 0) throw std::invalid_argument("n_draws must be positive to estimate propensities");
    std::vector<int64_t> hits(static_cast<size_t>(k), 0);
    std::vector<int32_t> chosen(arms, arms + k);
    for (int64_t t = 0; t < n_draws; ++t) {
        draw(estimate, cand, value.data());
        top_k_of(value.data(), cand, k, order);
        for (int64_t j = 0; j < k; ++j)
            if (order[j] == chosen[j]) ++hits[j];
    }
    for (int64_t j = 0; j < k; ++j) prop[j] = static_cast<double>(hits[j]) / static_cast<double>(n_draws);
}

template <class Draw>
void sampled_probabilities_row(Draw&& draw, const std::vector<int32_t>& cand, int64_t n_draws, Rng& estimate,
                               std::vector<double>& value, std::vector<int32_t>& order, double* out) {
    if (n_draws <= 0) throw std::invalid_argument("n_draws must be positive to estimate probabilities");
    const double w = 1.0 / static_cast<double>(n_draws);
    for (int64_t t = 0; t < n_draws; ++t) {
        draw(estimate, cand, value.data());
        top_k_of(value.data(), cand, 1, order);
        out[order[0]] += w;
    }
}

// ---------------------------------------------------------------------------------------------
// context-free policies
// ---------------------------------------------------------------------------------------------

void check_mab_params(const MabParams& p) {
    switch (p.policy) {
        case Policy::EpsilonGreedy:
            if (!(p.epsilon >= 0.0 && p.epsilon <= 1.0))
                throw std::invalid_argument("epsilon must be in [0, 1], got " + std::to_string(p.epsilon));
            break;
        case Policy::UCB1:
            if (!(p.alpha >= 0.0)) throw std::invalid_argument("alpha must be >= 0");
            break;
        case Policy::ThompsonBeta:
            if (!(p.prior_a > 0.0 && p.prior_b > 0.0)) throw std::invalid_argument("Beta prior parameters must be > 0");
            break;
        case Policy::ThompsonGaussian:
            if (!(p.prior_precision > 0.0 && p.noise_sd > 0.0))
                throw std::invalid_argument("prior_precision and noise_sd must be > 0");
            break;
        case Policy::Softmax:
            if (!(p.temperature > 0.0)) throw std::invalid_argument("temperature must be > 0");
            break;
        default:
            throw std::invalid_argument("unknown policy code " + std::to_string(static_cast<int>(p.policy)));
    }
}

// The deterministic score of greedy / UCB1 (and the mean softmax uses).
void mab_point_scores(const double* counts, const double* sums, int64_t n_arms, const MabParams& p,
                      std::vector<double>& score) {
    score.resize(static_cast<size_t>(n_arms));
    double total = 0.0;
    for (int64_t a = 0; a < n_arms; ++a) total += counts[a];
    const double log_total = total > 1.0 ? std::log(total) : 0.0;
    for (int64_t a = 0; a < n_arms; ++a) {
        const double n = counts[a];
        const double mean = n > 0.0 ? sums[a] / n : p.initial_mean;
        if (p.policy == Policy::UCB1)
            score[a] = n > 0.0 ? mean + std::sqrt(p.alpha * 2.0 * log_total / n) : kInf;
        else
            score[a] = mean;
    }
}

// Marsaglia-Tsang constants of a Gamma(shape) draw, computed once per arm and call.
struct GammaConst {
    double d = 0.0, c = 0.0, inv_shape = 0.0;  // inv_shape > 0: shape < 1, boosted from shape + 1
    explicit GammaConst(double shape = 1.0) {
        const double s = shape < 1.0 ? shape + 1.0 : shape;
        d = s - 1.0 / 3.0;
        c = 1.0 / std::sqrt(9.0 * d);
        inv_shape = shape < 1.0 ? 1.0 / shape : 0.0;
    }
};

// Marsaglia-Tsang for shape >= 1 (the boosted shape when shape < 1).
inline double gamma_core(Rng& rng, const GammaConst& g) {
    for (;;) {
        double x, v;
        do {
            x = rng.normal();
            v = 1.0 + g.c * x;
        } while (v <= 0.0);
        v = v * v * v;
        const double u = rng.open_uniform();
        const double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2 || std::log(u) < 0.5 * x2 + g.d * (1.0 - v + std::log(v))) return g.d * v;
    }
}

inline double gamma_draw(Rng& rng, const GammaConst& g) {
    double out = gamma_core(rng, g);
    if (g.inv_shape > 0.0) out *= std::pow(rng.open_uniform(), g.inv_shape);
    return out;
}

// ---------------------------------------------------------------------------------------------
// Beta draws four arms at a time
// ---------------------------------------------------------------------------------------------
//
// Thompson sampling with Beta posteriors draws two Gamma variates per arm and context. They
// come four arms at a time from four xoshiro256++ streams (one per lane, seeded from the row's
// stream, so a row's draws still depend only on (seed, row)). Each Gamma variate is one
// Marsaglia-Tsang attempt: a ziggurat normal x and a uniform u, accepted at once when
//     u - 1 < k0 x^2 - 0.75 d y^4 / min(1, 1 + y)^4,   y = c x,
// a lower bound of the exact condition's right-hand side x^2/2 + d (1 - v + ln v) (from
// ln(1 + y) >= y - y^2/2 + y^3/3 - y^4 / (4 min(1, 1 + y)^4) and ln u <= u - 1). It fails
// with probability about 0.03 / d, and then the exact condition decides. A normal that leaves
// the ziggurat's rectangles, and an attempt that is rejected, continue on the row's scalar
// stream exactly as the scalar sampler would (a rejection starts an independent new attempt),
// so every variate has exactly the Gamma distribution. The AVX2 kernel and the portable one do
// the same arithmetic in the same order (no fused multiply-add), so they draw the same values.

struct Lanes4 {
    uint64_t s[4][4];  // s[word][lane]
};

void seed_lanes(Lanes4& L, Rng& rng) {
    for (int lane = 0; lane < 4; ++lane) {
        SplitMix64 sm(rng.next());
        for (int w = 0; w < 4; ++w) L.s[w][lane] = sm.next();
    }
}

inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

inline void lanes_next(Lanes4& L, uint64_t out[4]) {
    for (int l = 0; l < 4; ++l) {
        uint64_t& a = L.s[0][l];
        uint64_t& b = L.s[1][l];
        uint64_t& c = L.s[2][l];
        uint64_t& d = L.s[3][l];
        out[l] = rotl64(a + d, 23) + a;
        const uint64_t t = b << 17;
        c ^= a;
        d ^= b;
        b ^= c;
        a ^= d;
        c ^= t;
        d = rotl64(d, 45);
    }
}

// uniform in (0, 1) from the top 52 bits: (k + 1/2) 2^-52
inline double lane_uniform(uint64_t bits) {
    uint64_t m = (bits >> 12) | 0x3FF0000000000000ull;
    double one_plus;
    std::memcpy(&one_plus, &m, sizeof m);
    return one_plus - (1.0 - 0x1.0p-53);
}

// Per-call constants of the Beta posteriors, one array per constant (arms in index order).
struct BetaTable {
    std::vector<double> da, ca, ka, ia, db, cb, kb, ib;  // d, c, k0, 1/shape (0 unless shape < 1)
    std::vector<GammaConst> ga, gb;
    void build(const double* counts, const double* sums, int64_t n_arms, const MabParams& p) {
        std::vector<double> sa(static_cast<size_t>(n_arms)), sb(sa.size());
        for (int64_t a = 0; a < n_arms; ++a) {
            sa[a] = p.prior_a + sums[a];
            sb[a] = p.prior_b + std::max(0.0, counts[a] - sums[a]);
        }
        build_shapes(sa.data(), sb.data(), n_arms);
    }
    void build_shapes(const double* shape_a, const double* shape_b, int64_t n_arms) {
        const size_t n = static_cast<size_t>(n_arms);
        ga.resize(n);
        gb.resize(n);
        for (auto* v : {&da, &ca, &ka, &ia, &db, &cb, &kb, &ib}) v->resize(n);
        for (int64_t a = 0; a < n_arms; ++a) {
            ga[a] = GammaConst(shape_a[a]);
            gb[a] = GammaConst(shape_b[a]);
            da[a] = ga[a].d;
            ca[a] = ga[a].c;
            ka[a] = 0.5 - 4.5 * ga[a].d * (ga[a].c * ga[a].c);
            ia[a] = ga[a].inv_shape;
            db[a] = gb[a].d;
            cb[a] = gb[a].c;
            kb[a] = 0.5 - 4.5 * gb[a].d * (gb[a].c * gb[a].c);
            ib[a] = gb[a].inv_shape;
        }
    }
};

// The rest of a ziggurat draw whose first (iz, hz) left the rectangles, as in Rng::normal.
double normal_finish(int iz, int32_t hz, Rng& rng) {
    double x;
    if (ziggurat_outside(iz, hz, rng, x)) return x;
    return rng.normal();
}

// The slow end of one lane's attempt (x normal, u uniform) that the quick test did not accept:
// the exact condition, and on rejection an independent new sampler run on the scalar stream.
double gamma_finish(double x, double u, double v, const GammaConst& g, Rng& rng) {
    if (1.0 + g.c * x > 0.0 && std::log(u) < 0.5 * (x * x) + g.d * (1.0 - v + std::log(v))) return g.d * v;
    return gamma_core(rng, g);
}

// Quick acceptance of an attempt (see above); the margin makes it conservative under rounding.
inline bool gamma_squeeze(double x, double u, double c, double d, double k0, double* v_out) {
    const double y = c * x;
    const double v1 = 1.0 + y;
    const double v = v1 * v1 * v1;
    *v_out = v;
    const double m = v1 < 1.0 ? v1 : 1.0;
    const double y2 = y * y, m2 = m * m;
    const double x2 = x * x;
    const double rhs = k0 * x2 - 0.75 * d * ((y2 * y2) / (m2 * m2)) - 1e-12 * (1.0 + x2);
    return v1 > 0.0 && u - 1.0 < rhs;
}

// One group of four lanes, portable: draws[l] for the arms arm[l] (which: 0 = a, 1 = b).
void gamma4_generic(Lanes4& L, const BetaTable& t, int which, const int32_t arm[4], Rng& rng, double out[4]) {
    const ZigguratTables& zg = ziggurat_tables();
    const std::vector<GammaConst>& gc = which == 0 ? t.ga : t.gb;
    const double* C = which == 0 ? t.ca.data() : t.cb.data();
    const double* D = which == 0 ? t.da.data() : t.db.data();
    const double* K = which == 0 ? t.ka.data() : t.kb.data();
    const double* I = which == 0 ? t.ia.data() : t.ib.data();
    uint64_t bn[4], bu[4];
    lanes_next(L, bn);
    lanes_next(L, bu);
    double x[4], u[4], v[4];
    for (int l = 0; l < 4; ++l) {
        const int iz = static_cast<int>(bn[l] & 127u);
        const int32_t hz = static_cast<int32_t>(static_cast<uint32_t>(bn[l] >> 32));
        x[l] = static_cast<double>(hz) * zg.wn[iz];
        if (!(std::abs(static_cast<double>(hz)) < zg.knd[iz])) x[l] = normal_finish(iz, hz, rng);
        u[l] = lane_uniform(bu[l]);
    }
    for (int l = 0; l < 4; ++l) {
        const int32_t a = arm[l];
        if (gamma_squeeze(x[l], u[l], C[a], D[a], K[a], &v[l]))
            out[l] = D[a] * v[l];
        else
            out[l] = gamma_finish(x[l], u[l], v[l], gc[a], rng);
    }
    for (int l = 0; l < 4; ++l)
        if (I[arm[l]] > 0.0) out[l] *= std::pow(rng.open_uniform(), I[arm[l]]);
}

void beta_row_generic(const BetaTable& t, const int32_t* cand, int64_t n, Rng& rng, double* value) {
    Lanes4 L;
    seed_lanes(L, rng);
    for (int64_t j = 0; j < n; j += 4) {
        int32_t arm[4];
        for (int l = 0; l < 4; ++l) arm[l] = cand[std::min<int64_t>(j + l, n - 1)];
        double ga[4], gb[4];
        gamma4_generic(L, t, 0, arm, rng, ga);
        gamma4_generic(L, t, 1, arm, rng, gb);
        for (int l = 0; l < 4 && j + l < n; ++l) value[arm[l]] = ga[l] / (ga[l] + gb[l]);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RECFORGE_BANDITS_AVX2 1

struct VLanes {
    __m256i s0, s1, s2, s3;
};

__attribute__((target("avx2,fma"))) inline __m256i vrotl(__m256i x, int k) {
    return _mm256_or_si256(_mm256_slli_epi64(x, k), _mm256_srli_epi64(x, 64 - k));
}

__attribute__((target("avx2,fma"))) inline __m256i vnext(VLanes& L) {
    const __m256i out = _mm256_add_epi64(vrotl(_mm256_add_epi64(L.s0, L.s3), 23), L.s0);
    const __m256i t = _mm256_slli_epi64(L.s1, 17);
    L.s2 = _mm256_xor_si256(L.s2, L.s0);
    L.s3 = _mm256_xor_si256(L.s3, L.s1);
    L.s1 = _mm256_xor_si256(L.s1, L.s2);
    L.s0 = _mm256_xor_si256(L.s0, L.s3);
    L.s2 = _mm256_xor_si256(L.s2, t);
    L.s3 = vrotl(L.s3, 45);
    return out;
}

__attribute__((target("avx2,fma"))) inline __m256d vload_arms(const double* table, const int32_t arm[4],
                                                             bool contiguous) {
    if (contiguous) return _mm256_loadu_pd(table + arm[0]);
    const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    return _mm256_mask_i32gather_pd(_mm256_setzero_pd(), table,
                                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(arm)), all, 8);
}

__attribute__((target("avx2,fma"))) __m256d gamma4_avx2(VLanes& L, const BetaTable& t, int which,
                                                        const int32_t arm[4], bool contiguous, Rng& rng) {
    const ZigguratTables& zg = ziggurat_tables();
    const std::vector<GammaConst>& gc = which == 0 ? t.ga : t.gb;
    const double* C = which == 0 ? t.ca.data() : t.cb.data();
    const double* D = which == 0 ? t.da.data() : t.db.data();
    const double* K = which == 0 ? t.ka.data() : t.kb.data();
    const double* I = which == 0 ? t.ia.data() : t.ib.data();
    const __m256i bn = vnext(L);
    const __m256i bu = vnext(L);
    // normal: layer iz from the low 7 bits, signed 32-bit hz from the high half
    const __m256i iz = _mm256_and_si256(bn, _mm256_set1_epi64x(127));
    const __m256d wn = _mm256_i64gather_pd(zg.wn, iz, 8);
    const __m256d kn = _mm256_i64gather_pd(zg.knd, iz, 8);
    const __m256i hi = _mm256_permutevar8x32_epi32(bn, _mm256_setr_epi32(1, 3, 5, 7, 0, 0, 0, 0));
    const __m256d hz = _mm256_cvtepi32_pd(_mm256_castsi256_si128(hi));
    __m256d x = _mm256_mul_pd(hz, wn);
    const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
    const int slow = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_and_pd(hz, absmask), kn, _CMP_LT_OQ)) ^ 0xF;
    if (slow) {
        alignas(32) double xs[4];
        alignas(32) uint64_t bits[4];
        _mm256_store_pd(xs, x);
        _mm256_store_si256(reinterpret_cast<__m256i*>(bits), bn);
        for (int l = 0; l < 4; ++l)
            if (slow & (1 << l))
                xs[l] = normal_finish(static_cast<int>(bits[l] & 127u),
                                      static_cast<int32_t>(static_cast<uint32_t>(bits[l] >> 32)), rng);
        x = _mm256_load_pd(xs);
    }
    // uniform (k + 1/2) 2^-52 from the top 52 bits
    const __m256i um = _mm256_or_si256(_mm256_srli_epi64(bu, 12), _mm256_set1_epi64x(0x3FF0000000000000ll));
    const __m256d u = _mm256_sub_pd(_mm256_castsi256_pd(um), _mm256_set1_pd(1.0 - 0x1.0p-53));
    // the quick acceptance, in the order of gamma_squeeze
    const __m256d one = _mm256_set1_pd(1.0);
    const __m256d c = vload_arms(C, arm, contiguous), d = vload_arms(D, arm, contiguous);
    const __m256d k0 = vload_arms(K, arm, contiguous);
    const __m256d y = _mm256_mul_pd(c, x);
    const __m256d v1 = _mm256_add_pd(one, y);
    const __m256d v = _mm256_mul_pd(_mm256_mul_pd(v1, v1), v1);
    const __m256d m = _mm256_min_pd(v1, one);
    const __m256d y2 = _mm256_mul_pd(y, y), m2 = _mm256_mul_pd(m, m), x2 = _mm256_mul_pd(x, x);
    const __m256d q = _mm256_div_pd(_mm256_mul_pd(y2, y2), _mm256_mul_pd(m2, m2));
    const __m256d rhs = _mm256_sub_pd(
        _mm256_sub_pd(_mm256_mul_pd(k0, x2), _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(0.75), d), q)),
        _mm256_mul_pd(_mm256_set1_pd(1e-12), _mm256_add_pd(one, x2)));
    const __m256d ok = _mm256_and_pd(_mm256_cmp_pd(v1, _mm256_setzero_pd(), _CMP_GT_OQ),
                                     _mm256_cmp_pd(_mm256_sub_pd(u, one), rhs, _CMP_LT_OQ));
    __m256d out = _mm256_mul_pd(d, v);
    const int rest = _mm256_movemask_pd(ok) ^ 0xF;
    const __m256d inv = vload_arms(I, arm, contiguous);
    const int boost = _mm256_movemask_pd(_mm256_cmp_pd(inv, _mm256_setzero_pd(), _CMP_GT_OQ));
    if (rest | boost) {
        alignas(32) double os[4], xs[4], us[4], vs[4];
        _mm256_store_pd(os, out);
        _mm256_store_pd(xs, x);
        _mm256_store_pd(us, u);
        _mm256_store_pd(vs, v);
        for (int l = 0; l < 4; ++l)
            if (rest & (1 << l)) os[l] = gamma_finish(xs[l], us[l], vs[l], gc[arm[l]], rng);
        for (int l = 0; l < 4; ++l)
            if (boost & (1 << l)) os[l] *= std::pow(rng.open_uniform(), I[arm[l]]);
        out = _mm256_load_pd(os);
    }
    return out;
}

__attribute__((target("avx2,fma"))) void beta_row_avx2(const BetaTable& t, const int32_t* cand, int64_t n,
                                                       Rng& rng, double* value) {
    Lanes4 S;
    seed_lanes(S, rng);
    VLanes L;
    L.s0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(S.s[0]));
    L.s1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(S.s[1]));
    L.s2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(S.s[2]));
    L.s3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(S.s[3]));
    for (int64_t j = 0; j < n; j += 4) {
        alignas(16) int32_t arm[4];
        for (int l = 0; l < 4; ++l) arm[l] = cand[j + l < n ? j + l : n - 1];
        const bool contiguous = arm[3] - arm[0] == 3;  // cand is increasing, so these are arm[0] + l
        const __m256d ga = gamma4_avx2(L, t, 0, arm, contiguous, rng);
        const __m256d gb = gamma4_avx2(L, t, 1, arm, contiguous, rng);
        alignas(32) double val[4];
        _mm256_store_pd(val, _mm256_div_pd(ga, _mm256_add_pd(ga, gb)));
        for (int l = 0; l < 4 && j + l < n; ++l) value[arm[l]] = val[l];
    }
}
#endif

// RECFORGE_BANDIT_KERNEL=generic forces the portable Beta sampler (used to test both paths).
bool use_avx2_beta() {
#ifdef RECFORGE_BANDITS_AVX2
    static const bool yes = [] {
        const char* forced = std::getenv("RECFORGE_BANDIT_KERNEL");
        if (forced != nullptr && std::strcmp(forced, "generic") == 0) return false;
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }();
    return yes;
#else
    return false;
#endif
}

void beta_row(const BetaTable& t, const int32_t* cand, int64_t n, Rng& rng, double* value) {
#ifdef RECFORGE_BANDITS_AVX2
    if (use_avx2_beta()) return beta_row_avx2(t, cand, n, rng, value);
#endif
    beta_row_generic(t, cand, n, rng, value);
}

// Per-call tables of the sampled policies: Beta shapes, Gaussian posteriors, softmax logits.
struct MabDraw {
    Policy policy;
    BetaTable beta;
    std::vector<double> mu, sd;
    const double* logit;
    MabDraw(const double* counts, const double* sums, int64_t n_arms, const MabParams& p, const double* lg)
        : policy(p.policy), logit(lg) {
        if (policy == Policy::ThompsonBeta) {
            beta.build(counts, sums, n_arms, p);
        } else if (policy == Policy::ThompsonGaussian) {
            mu.resize(static_cast<size_t>(n_arms));
            sd.resize(static_cast<size_t>(n_arms));
            for (int64_t a = 0; a < n_arms; ++a) {
                const double prec = p.prior_precision + counts[a];
                mu[a] = (p.prior_precision * p.prior_mean + sums[a]) / prec;
                sd[a] = p.noise_sd / std::sqrt(prec);
            }
        }
    }
    void operator()(Rng& rng, const std::vector<int32_t>& cand, double* value) const {
        switch (policy) {
            case Policy::ThompsonBeta:
                beta_row(beta, cand.data(), static_cast<int64_t>(cand.size()), rng, value);
                break;
            case Policy::ThompsonGaussian:
                for (int32_t a : cand) value[a] = mu[a] + sd[a] * rng.normal();
                break;
            default:  // softmax: Gumbel-top-k is sampling without replacement in proportion to exp(mean/T)
                for (int32_t a : cand) value[a] = logit[a] + rng.gumbel();
                break;
        }
    }
};

void softmax_probs(const double* logit, const std::vector<int32_t>& cand, double* out) {
    double mx = -kInf;
    for (int32_t a : cand) mx = std::max(mx, logit[a]);
    double z = 0.0;
    for (int32_t a : cand) z += std::exp(logit[a] - mx);
    for (int32_t a : cand) out[a] = std::exp(logit[a] - mx) / z;
}

void check_mab_state(const double* counts, const double* sums, int64_t n_arms) {
    if (n_arms <= 0) throw std::invalid_argument("the policy has no arms: add arms first");
    for (int64_t a = 0; a < n_arms; ++a)
        if (!(counts[a] >= 0.0) || !std::isfinite(counts[a]) || !std::isfinite(sums[a]))
            throw std::invalid_argument("arm statistics are corrupt (negative or non-finite) at arm " +
                                        std::to_string(a));
}

}  // namespace

void mab_probabilities(const double* counts, const double* sums, int64_t n_arms, const uint8_t* mask,
                       int64_t n_mask_rows, int64_t n_rows, const MabParams& p, double* out, int n_threads) {
    check_mab_params(p);
    check_mab_state(counts, sums, n_arms);
    check_mask(mask, n_mask_rows, n_rows);
    std::vector<double> point;
    mab_point_scores(counts, sums, n_arms, p, point);
    std::vector<double> logit(static_cast<size_t>(n_arms));
    for (int64_t a = 0; a < n_arms; ++a) logit[a] = point[a] / p.temperature;
    const MabDraw draw(counts, sums, n_arms, p, logit.data());
    const int workers = planned_workers(n_rows, n_threads, 16);
    std::vector<std::vector<int32_t>> cands(workers), orders(workers);
    std::vector<std::vector<double>> values(workers, std::vector<double>(static_cast<size_t>(n_arms)));
    parallel_for(
        0, n_rows, n_threads,
        [&](int64_t r, int w) {
            double* row = out + r * n_arms;
            std::fill(row, row + n_arms, 0.0);
            auto& cand = cands[w];
            candidates_of(mask, n_mask_rows, r, n_arms, cand);
            require_candidates(cand, 1, r);
            switch (p.policy) {
                case Policy::EpsilonGreedy:
                    tie_probabilities(point.data(), cand, 1.0 - p.epsilon, row);
                    for (int32_t a : cand) row[a] += p.epsilon / static_cast<double>(cand.size());
                    break;
                case Policy::UCB1:
                    tie_probabilities(point.data(), cand, 1.0, row);
                    break;
                case Policy::Softmax:
                    softmax_probs(logit.data(), cand, row);
                    break;
                default: {
                    Rng est(stream_seed(p.seed, static_cast<uint64_t>(r), kEstimate));
                    sampled_probabilities_row(draw, cand, p.n_draws, est, values[w], orders[w], row);
                }
            }
        },
        16);
}

void mab_select(const double* counts, const double* sums, int64_t n_arms, const uint8_t* mask,
                int64_t n_mask_rows, int64_t n_rows, int64_t k, const MabParams& p, int32_t* arms,
                double* propensities, int n_threads) {
    check_mab_params(p);
    check_mab_state(counts, sums, n_arms);
    check_mask(mask, n_mask_rows, n_rows);
    if (k <= 0) throw std::invalid_argument("k must be a positive integer");
    std::vector<double> point;
    mab_point_scores(counts, sums, n_arms, p, point);
    std::vector<double> logit(static_cast<size_t>(n_arms));
    for (int64_t a = 0; a < n_arms; ++a) logit[a] = point[a] / p.temperature;
    const MabDraw draw(counts, sums, n_arms, p, logit.data());
    const int workers = planned_workers(n_rows, n_threads, 64);
    std::vector<std::vector<int32_t>> cands(workers), orders(workers);
    std::vector<std::vector<double>> values(workers, std::vector<double>(static_cast<size_t>(n_arms)));
    std::vector<std::vector<double>> probs(workers, std::vector<double>(static_cast<size_t>(n_arms)));
    parallel_for(
        0, n_rows, n_threads,
        [&](int64_t r, int w) {
            auto& cand = cands[w];
            candidates_of(mask, n_mask_rows, r, n_arms, cand);
            require_candidates(cand, k, r);
            int32_t* row_arms = arms + r * k;
            double* row_prop = propensities ? propensities + r * k : nullptr;
            Rng choose(stream_seed(p.seed, static_cast<uint64_t>(r), kChoose));
            const double nc = static_cast<double>(cand.size());
            switch (p.policy) {
                case Policy::EpsilonGreedy: {
                    const bool explore = p.epsilon > 0.0 && choose.uniform() < p.epsilon;
                    if (explore) {  // k distinct arms uniformly at random (partial Fisher-Yates)
                        for (int64_t j = 0; j < k; ++j) {
                            const int64_t i = j + static_cast<int64_t>(choose.below(static_cast<uint64_t>(cand.size() - j)));
                            std::swap(cand[j], cand[i]);
                            row_arms[j] = cand[j];
                        }
                        if (row_prop) {
                            // the greedy ranking's probability of the same arms at the same slots
                            std::vector<int32_t> greedy(static_cast<size_t>(k));
                            std::vector<double> gp(static_cast<size_t>(k));
                            std::vector<int32_t> sorted(cand);
                            std::sort(sorted.begin(), sorted.end());
                            std::stable_sort(sorted.begin(), sorted.end(),
                                             [&](int32_t x, int32_t y) { return point[x] > point[y]; });
                            for (int64_t j = 0; j < k; ++j) {
                                // slot j of the greedy ranking: its tie group [s, e)
                                const int32_t a = row_arms[j];
                                int64_t s = j, e = j + 1;
                                const double v = point[sorted[j]];
                                while (s > 0 && point[sorted[s - 1]] == v) --s;
                                while (e < static_cast<int64_t>(sorted.size()) && point[sorted[e]] == v) ++e;
                                const double pg = point[a] == v ? 1.0 / static_cast<double>(e - s) : 0.0;
                                row_prop[j] = (1.0 - p.epsilon) * pg + p.epsilon / nc;
                            }
                        }
                    } else {
                        rank_with_ties(point.data(), cand, k, choose, row_arms, row_prop);
                        if (row_prop)
                            for (int64_t j = 0; j < k; ++j) row_prop[j] = (1.0 - p.epsilon) * row_prop[j] + p.epsilon / nc;
                    }
                    break;
                }
                case Policy::UCB1:
                    rank_with_ties(point.data(), cand, k, choose, row_arms, row_prop);
                    break;
                default: {
                    Rng est(stream_seed(p.seed, static_cast<uint64_t>(r), kEstimate));
                    const bool exact_first = p.policy == Policy::Softmax;
                    const bool estimate = row_prop && (!exact_first || k > 1);
                    sampled_select_row(draw, cand, k, p.n_draws, choose, est, values[w], orders[w], row_arms,
                                       estimate ? row_prop : nullptr);
                    if (row_prop && exact_first) {
                        auto& pr = probs[w];
                        softmax_probs(logit.data(), cand, pr.data());
                        row_prop[0] = pr[row_arms[0]];
                    }
                }
            }
        },
        64);
}

void beta_draws(const double* shape_a, const double* shape_b, int64_t n_arms, int64_t n_rows, uint64_t seed,
                double* out, int n_threads) {
    if (n_arms <= 0) throw std::invalid_argument("beta_draws needs at least one pair of shapes");
    for (int64_t a = 0; a < n_arms; ++a)
        if (!(shape_a[a] > 0.0 && shape_b[a] > 0.0 && std::isfinite(shape_a[a]) && std::isfinite(shape_b[a])))
            throw std::invalid_argument("Beta shapes must be finite and > 0 (pair " + std::to_string(a) + ")");
    BetaTable t;
    t.build_shapes(shape_a, shape_b, n_arms);
    std::vector<int32_t> cand(static_cast<size_t>(n_arms));
    std::iota(cand.begin(), cand.end(), 0);
    parallel_for(
        0, n_rows, n_threads,
        [&](int64_t r, int) {
            Rng rng(stream_seed(seed, static_cast<uint64_t>(r), kChoose));
            beta_row(t, cand.data(), n_arms, rng, out + r * n_arms);
        },
        64);
}

void mab_update(double* counts, double* sums, int64_t n_arms, const int32_t* arms, const double* rewards,
                int64_t n_events) {
    for (int64_t i = 0; i < n_events; ++i) {
        if (arms[i] < 0 || arms[i] >= n_arms)
            throw std::out_of_range("arm index " + std::to_string(arms[i]) + " of event " + std::to_string(i) +
                                    " is outside [0, " + std::to_string(n_arms) + ")");
        if (!std::isfinite(rewards[i]))
            throw std::invalid_argument("reward of event " + std::to_string(i) + " is NaN or infinite");
    }
    for (int64_t i = 0; i < n_events; ++i) {
        counts[arms[i]] += 1.0;
        sums[arms[i]] += rewards[i];
    }
}

// ---------------------------------------------------------------------------------------------
// linear policies
// ---------------------------------------------------------------------------------------------

namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapMat = Eigen::Map<RowMat>;
using MapCMat = Eigen::Map<const RowMat>;
using MapVec = Eigen::Map<Eigen::VectorXd>;
using MapCVec = Eigen::Map<const Eigen::VectorXd>;

void check_linear(const LinearState& s) {
    if (s.n_arms <= 0) throw std::invalid_argument("the policy has no arms: add arms first");
    if (s.d <= 0) throw std::invalid_argument("contexts must have at least one feature");
    if (!s.A_inv || !s.b) throw std::invalid_argument("linear state arrays are missing");
    const bool hybrid = s.A0 || s.b0 || s.B || s.arm_features;
    if (hybrid && (!s.A0 || !s.b0 || !s.B || !s.arm_features || s.m <= 0))
        throw std::invalid_argument("hybrid state needs A0, b0, B and arm features");
}

void check_contexts(const double* x, int64_t n, int64_t d) {
    for (int64_t i = 0; i < n * d; ++i)
        if (!std::isfinite(x[i]))
            throw std::invalid_argument("contexts contain NaN or infinite values (row " + std::to_string(i / d) +
                                        "); clean or impute them first");
}

// Everything per call that does not depend on the row: theta_a (n_arms x d); for the disjoint
// model a factor M_a with A_a^-1 = M_a M_a^T (so the width of x is |x^T M_a|, computed for a
// block of contexts at once as a matrix product), and for hybrid A0^-1 and beta.
struct LinearPrepared {
    RowMat theta;
    std::vector<double> stacked;  // disjoint only: the factors M_a, rows padded to dp columns
    std::vector<uint8_t> lower;   // whether M_a is lower triangular
    // disjoint only: spec[a] >= the spectral norm of M_a (with a safety margin), so that
    // width(x) <= |x| spec[a] for every x; prunable when every bound and theta is finite
    std::vector<double> spec;
    bool prunable = false;
    // disjoint only: theta transposed (d x Ap, arms padded to Ap = a multiple of 4 with zeros)
    // and spec padded alike, for the mean of every arm for one context at a time
    std::vector<double> thetaT, spec_padded;
    int64_t Ap = 0;
    int64_t dp = 0;
    Eigen::MatrixXd A0_inv;
    Eigen::VectorXd beta;
    bool hybrid = false;
    int64_t k = 0;
};

// Cholesky factorisation of the d x d row-major matrix S in place; false when a pivot is not
// positive (S is then not positive definite).
// Dot product of n doubles with four partial sums (short dependency chains).
inline double dot4(const double* a, const double* b, int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

bool cholesky_in_place(double* S, int64_t d) {
    for (int64_t j = 0; j < d; ++j) {
        double* rj = S + j * d;
        const double diag = rj[j] - dot4(rj, rj, j);
        if (!(diag > 0.0)) return false;
        const double piv = std::sqrt(diag);
        const double inv = 1.0 / piv;
        rj[j] = piv;
        for (int64_t i = j + 1; i < d; ++i) {
            double* ri = S + i * d;
            ri[j] = (ri[j] - dot4(ri, rj, j)) * inv;
        }
    }
    return true;
}

// An upper bound of the largest eigenvalue of the symmetric matrix G (d x d, row-major):
// lambda_max(G) <= rho(|G|) <= max_i (|G| w)_i / w_i for any positive vector w (Collatz-
// Wielandt). w starts from the row sums of |G| (which gives Gershgorin's bound) and takes two
// steps of power iteration on |G|; the smallest of the bounds is returned.
double eigen_upper_bound(const double* G, int64_t d, std::vector<double>& absG, std::vector<double>& w,
                         std::vector<double>& w2) {
    absG.resize(static_cast<size_t>(d * d));
    w.assign(static_cast<size_t>(d), 0.0);
    w2.resize(static_cast<size_t>(d));
    double bound = 0.0;
    for (int64_t i = 0; i < d; ++i) {
        double r = 0.0;
        for (int64_t j = 0; j < d; ++j) {
            absG[i * d + j] = std::abs(G[i * d + j]);
            r += absG[i * d + j];
        }
        w[i] = r;
        bound = std::max(bound, r);
    }
    if (!std::isfinite(bound)) return bound;
    for (int it = 0; it < 2; ++it) {
        double top = 0.0;
        for (int64_t i = 0; i < d; ++i) {
            if (!(w[i] > 0.0)) return bound;
            top = std::max(top, w[i]);
        }
        for (int64_t i = 0; i < d; ++i) w[i] /= top;  // keep the scale near 1
        std::fill(w2.begin(), w2.end(), 0.0);
        for (int64_t j = 0; j < d; ++j) {  // |G| is symmetric: a sum of rows
            const double* g = absG.data() + j * d;
            const double wj = w[j];
            for (int64_t i = 0; i < d; ++i) w2[i] += g[i] * wj;
        }
        double b = 0.0;
        for (int64_t i = 0; i < d; ++i) b = std::max(b, w2[i] / w[i]);
        bound = std::min(bound, b);
        std::swap(w, w2);
    }
    return bound;
}

LinearPrepared prepare(const LinearState& s) {
    LinearPrepared lp;
    const int64_t d = s.d;
    lp.hybrid = s.A0 != nullptr;
    lp.theta.resize(s.n_arms, d);
    if (lp.hybrid) {
        lp.k = d * s.m;
        MapCMat A0(s.A0, lp.k, lp.k);
        Eigen::LDLT<Eigen::MatrixXd> ldlt(A0);
        if (ldlt.info() != Eigen::Success) throw std::invalid_argument("shared matrix A0 is not positive definite");
        lp.A0_inv = ldlt.solve(Eigen::MatrixXd::Identity(lp.k, lp.k));
        lp.beta = lp.A0_inv * MapCVec(s.b0, lp.k);
    } else {
        lp.dp = (d + 3) / 4 * 4;
        lp.stacked.assign(static_cast<size_t>(s.n_arms * d * lp.dp), 0.0);
        lp.lower.assign(static_cast<size_t>(s.n_arms), 0);
        lp.spec.assign(static_cast<size_t>(s.n_arms), 0.0);
        lp.prunable = true;
    }
    std::vector<double> pv, pw, ps, sym(static_cast<size_t>(d * d)), fac(sym.size());
    for (int64_t a = 0; a < s.n_arms; ++a) {
        const double* Ai = s.A_inv + a * d * d;
        if (lp.hybrid) {
            MapCMat Am(Ai, d, d);
            Eigen::VectorXd rhs = MapCVec(s.b + a * d, d) - MapCMat(s.B + a * d * lp.k, d, lp.k) * lp.beta;
            lp.theta.row(a) = (Am * rhs).transpose();
            continue;
        }
        const double* ba = s.b + a * d;
        bool finite = true;
        for (int64_t i = 0; i < d; ++i) {
            double acc = 0.0;
            for (int64_t j = 0; j < d; ++j) acc += Ai[i * d + j] * ba[j];
            lp.theta(a, i) = acc;
            finite = finite && std::isfinite(acc);
        }
        for (int64_t i = 0; i < d; ++i)
            for (int64_t j = 0; j < d; ++j) sym[i * d + j] = 0.5 * (Ai[i * d + j] + Ai[j * d + i]);
        double* out = lp.stacked.data() + a * d * lp.dp;
        fac = sym;
        if (cholesky_in_place(fac.data(), d)) {
            for (int64_t i = 0; i < d; ++i)
                for (int64_t j = 0; j <= i; ++j) out[i * lp.dp + j] = fac[i * d + j];
            lp.lower[a] = 1;
        } else {  // not numerically positive definite: V sqrt(max(lambda, 0))
            Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(MapCMat(sym.data(), d, d));
            const Eigen::MatrixXd M = es.eigenvectors() * es.eigenvalues().cwiseMax(0.0).cwiseSqrt().asDiagonal();
            for (int64_t i = 0; i < d; ++i)
                for (int64_t j = 0; j < d; ++j) out[i * lp.dp + j] = M(i, j);
        }
        // M M^T equals sym up to rounding (or drops its negative eigenvalues), so
        // |M^T x|^2 <= lambda_max(sym) |x|^2; the relative margin covers the rounding of the
        // factor, of the width kernel and of |x| by several orders of magnitude
        const double lam = std::max(0.0, eigen_upper_bound(sym.data(), d, pv, pw, ps));
        lp.spec[a] = std::sqrt(lam * (1.0 + 1e-8)) * (1.0 + 1e-8) + 1e-290;
        if (!std::isfinite(lp.spec[a]) || !finite) lp.prunable = false;
    }
    if (!lp.hybrid) {
        lp.Ap = (s.n_arms + 3) / 4 * 4;
        lp.thetaT.assign(static_cast<size_t>(d * lp.Ap), 0.0);
        lp.spec_padded.assign(static_cast<size_t>(lp.Ap), 0.0);
        for (int64_t a = 0; a < s.n_arms; ++a) {
            for (int64_t i = 0; i < d; ++i) lp.thetaT[i * lp.Ap + a] = lp.theta(a, i);
            lp.spec_padded[a] = lp.spec[a];
        }
    }
    return lp;
}

// The width of one context for one arm, also the last odd row of a block in block_widths_avx2_nv.
template <int NV>
__attribute__((target("avx2,fma"))) double width_one_avx2_nv(const double* x, int64_t d, int64_t dp,
                                                             const double* M, bool tri) {
    __m256d acc[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[v] = _mm256_setzero_pd();
    for (int64_t i = 0; i < d; ++i) {
        const __m256d xi = _mm256_set1_pd(x[i]);
        const double* row = M + i * dp;
        const int64_t top = tri ? i / 4 + 1 : NV;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
            if (v < top) acc[v] = _mm256_fmadd_pd(xi, _mm256_loadu_pd(row + 4 * v), acc[v]);
    }
    __m256d sq = _mm256_mul_pd(acc[0], acc[0]);
#pragma GCC unroll 8
    for (int v = 1; v < NV; ++v) sq = _mm256_fmadd_pd(acc[v], acc[v], sq);
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(sq), _mm256_extractf128_pd(sq, 1));
    return std::sqrt(_mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2))));
}

// Widths of a block of R contexts for every arm: width[r, a] = |x_r^T M_a|, M_a (d x d, lower
// triangular when it is a Cholesky factor) stored row-major with rows padded to dp columns,
// one arm after another. Each arm's factor stays in L1 while the block's rows pass over it.
// NV = dp / 4 vectors of accumulators, unrolled so they stay in registers; two rows at a time
// so that twice as many independent FMA chains hide the FMA latency.
template <int NV>
__attribute__((target("avx2,fma"))) void block_widths_avx2_nv(const double* X, int64_t R, int64_t d, int64_t dp,
                                                              const double* F, const uint8_t* lower,
                                                              int64_t n_arms, double* width) {
    auto hsum = [](__m256d v) __attribute__((target("avx2,fma"))) {
        const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    };
    for (int64_t a = 0; a < n_arms; ++a) {
        const double* M = F + a * d * dp;
        const bool tri = lower[a] != 0;
        int64_t r = 0;
        for (; r + 2 <= R; r += 2) {
            const double* x0 = X + r * d;
            const double* x1 = x0 + d;
            __m256d acc0[NV], acc1[NV];
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc0[v] = acc1[v] = _mm256_setzero_pd();
            for (int64_t i = 0; i < d; ++i) {
                const __m256d u0 = _mm256_set1_pd(x0[i]), u1 = _mm256_set1_pd(x1[i]);
                const double* row = M + i * dp;
                const int64_t top = tri ? i / 4 + 1 : NV;  // row i of a lower factor ends at column i
#pragma GCC unroll 8
                for (int v = 0; v < NV; ++v) {
                    if (v < top) {
                        const __m256d m = _mm256_loadu_pd(row + 4 * v);
                        acc0[v] = _mm256_fmadd_pd(u0, m, acc0[v]);
                        acc1[v] = _mm256_fmadd_pd(u1, m, acc1[v]);
                    }
                }
            }
            __m256d s0 = _mm256_mul_pd(acc0[0], acc0[0]), s1 = _mm256_mul_pd(acc1[0], acc1[0]);
#pragma GCC unroll 8
            for (int v = 1; v < NV; ++v) {
                s0 = _mm256_fmadd_pd(acc0[v], acc0[v], s0);
                s1 = _mm256_fmadd_pd(acc1[v], acc1[v], s1);
            }
            width[r * n_arms + a] = std::sqrt(hsum(s0));
            width[(r + 1) * n_arms + a] = std::sqrt(hsum(s1));
        }
        for (; r < R; ++r) width[r * n_arms + a] = width_one_avx2_nv<NV>(X + r * d, d, dp, M, tri);
    }
}

// Means of every arm for one context, m[a] = x . theta_a, and their upper bounds
// ub[a] = m[a] + c spec[a] (Ap entries each; thetaT is d x Ap).
__attribute__((target("avx2,fma"))) void mean_ub_avx2(const double* x, int64_t d, const double* thetaT,
                                                      int64_t Ap, const double* spec, double c, double* m,
                                                      double* ub) {
    constexpr int G = 12;
    const __m256d cv = _mm256_set1_pd(c);
    int64_t a = 0;
    for (; a + 4 * G <= Ap; a += 4 * G) {
        __m256d acc[G];
#pragma GCC unroll 12
        for (int v = 0; v < G; ++v) acc[v] = _mm256_setzero_pd();
        for (int64_t i = 0; i < d; ++i) {
            const __m256d xi = _mm256_set1_pd(x[i]);
            const double* t = thetaT + i * Ap + a;
#pragma GCC unroll 12
            for (int v = 0; v < G; ++v) acc[v] = _mm256_fmadd_pd(xi, _mm256_loadu_pd(t + 4 * v), acc[v]);
        }
#pragma GCC unroll 12
        for (int v = 0; v < G; ++v) {
            _mm256_storeu_pd(m + a + 4 * v, acc[v]);
            _mm256_storeu_pd(ub + a + 4 * v, _mm256_fmadd_pd(cv, _mm256_loadu_pd(spec + a + 4 * v), acc[v]));
        }
    }
    for (; a < Ap; a += 4) {
        __m256d acc = _mm256_setzero_pd();
        for (int64_t i = 0; i < d; ++i)
            acc = _mm256_fmadd_pd(_mm256_set1_pd(x[i]), _mm256_loadu_pd(thetaT + i * Ap + a), acc);
        _mm256_storeu_pd(m + a, acc);
        _mm256_storeu_pd(ub + a, _mm256_fmadd_pd(cv, _mm256_loadu_pd(spec + a), acc));
    }
}

void mean_ub_generic(const double* x, int64_t d, const double* thetaT, int64_t Ap, const double* spec, double c,
                     double* m, double* ub) {
    std::fill(m, m + Ap, 0.0);
    for (int64_t i = 0; i < d; ++i) {
        const double xi = x[i];
        const double* t = thetaT + i * Ap;
        for (int64_t a = 0; a < Ap; ++a) m[a] += xi * t[a];
    }
    for (int64_t a = 0; a < Ap; ++a) ub[a] = m[a] + c * spec[a];
}

double width_one_avx2(const double* x, int64_t d, int64_t dp, const double* M, bool tri) {
    switch (dp / 4) {
        case 1: return width_one_avx2_nv<1>(x, d, dp, M, tri);
        case 2: return width_one_avx2_nv<2>(x, d, dp, M, tri);
        case 3: return width_one_avx2_nv<3>(x, d, dp, M, tri);
        case 4: return width_one_avx2_nv<4>(x, d, dp, M, tri);
        case 5: return width_one_avx2_nv<5>(x, d, dp, M, tri);
        case 6: return width_one_avx2_nv<6>(x, d, dp, M, tri);
        case 7: return width_one_avx2_nv<7>(x, d, dp, M, tri);
        default: return width_one_avx2_nv<8>(x, d, dp, M, tri);
    }
}

double width_one_generic(const double* x, int64_t d, int64_t dp, const double* M, bool tri, double* y) {
    std::fill(y, y + dp, 0.0);
    for (int64_t i = 0; i < d; ++i) {
        const double* row = M + i * dp;
        const int64_t top = tri ? i + 1 : d;
        for (int64_t j = 0; j < top; ++j) y[j] += x[i] * row[j];
    }
    double acc = 0.0;
    for (int64_t j = 0; j < d; ++j) acc += y[j] * y[j];
    return std::sqrt(acc);
}

void block_widths_avx2(const double* X, int64_t R, int64_t d, int64_t dp, const double* F, const uint8_t* lower,
                       int64_t n_arms, double* width) {
    switch (dp / 4) {
        case 1: return block_widths_avx2_nv<1>(X, R, d, dp, F, lower, n_arms, width);
        case 2: return block_widths_avx2_nv<2>(X, R, d, dp, F, lower, n_arms, width);
        case 3: return block_widths_avx2_nv<3>(X, R, d, dp, F, lower, n_arms, width);
        case 4: return block_widths_avx2_nv<4>(X, R, d, dp, F, lower, n_arms, width);
        case 5: return block_widths_avx2_nv<5>(X, R, d, dp, F, lower, n_arms, width);
        case 6: return block_widths_avx2_nv<6>(X, R, d, dp, F, lower, n_arms, width);
        case 7: return block_widths_avx2_nv<7>(X, R, d, dp, F, lower, n_arms, width);
        default: return block_widths_avx2_nv<8>(X, R, d, dp, F, lower, n_arms, width);
    }
}

void block_widths_generic(const double* X, int64_t R, int64_t d, int64_t dp, const double* F, const uint8_t* lower,
                          int64_t n_arms, double* width) {
    std::vector<double> y(static_cast<size_t>(dp));
    for (int64_t a = 0; a < n_arms; ++a) {
        const double* M = F + a * d * dp;
        for (int64_t r = 0; r < R; ++r) {
            const double* x = X + r * d;
            std::fill(y.begin(), y.end(), 0.0);
            for (int64_t i = 0; i < d; ++i) {
                const double* row = M + i * dp;
                const int64_t top = lower[a] ? i + 1 : d;
                for (int64_t j = 0; j < top; ++j) y[j] += x[i] * row[j];
            }
            double acc = 0.0;
            for (int64_t j = 0; j < d; ++j) acc += y[j] * y[j];
            width[r * n_arms + a] = std::sqrt(acc);
        }
    }
}

bool have_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
}

constexpr int64_t kBlock = 64;

// Mean and width of every arm for a block of rows (R x n_arms each, row-major).
struct BlockScorer {
    const LinearState& s;
    const LinearPrepared& lp;
    RowMat mean, width, Y;
    Eigen::VectorXd u, z, v;
    BlockScorer(const LinearState& st, const LinearPrepared& p) : s(st), lp(p) {
        u.resize(s.d);
        if (lp.hybrid) {
            z.resize(lp.k);
            v.resize(lp.k);
        }
    }
    void score(const double* xp, int64_t R) {
        const int64_t d = s.d, A = s.n_arms;
        MapCMat X(xp, R, d);
        mean.resize(R, A);
        width.resize(R, A);
        if (!lp.hybrid) {
            mean.noalias() = X * lp.theta.transpose();
            if (have_avx2() && lp.dp <= 32)
                block_widths_avx2(xp, R, d, lp.dp, lp.stacked.data(), lp.lower.data(), A, width.data());
            else
                block_widths_generic(xp, R, d, lp.dp, lp.stacked.data(), lp.lower.data(), A, width.data());
            return;
        }
        for (int64_t r = 0; r < R; ++r) {
            const double* xr = xp + r * d;
            MapCVec x(xr, d);
            for (int64_t a = 0; a < A; ++a) {
                MapCMat Ai(s.A_inv + a * d * d, d, d);
                u.noalias() = Ai * x;
                const double* f = s.arm_features + a * s.m;
                for (int64_t i = 0; i < d; ++i)
                    for (int64_t j = 0; j < s.m; ++j) z[i * s.m + j] = xr[i] * f[j];
                MapCMat Ba(s.B + a * d * lp.k, d, lp.k);
                v.noalias() = z - Ba.transpose() * u;
                mean(r, a) = lp.theta.row(a).dot(x) + z.dot(lp.beta);
                width(r, a) = std::sqrt(std::max(0.0, x.dot(u) + v.dot(lp.A0_inv * v)));
            }
        }
    }
};

struct LinearDraw {
    const double* mean;
    const double* width;
    double alpha;
    void operator()(Rng& rng, const std::vector<int32_t>& cand, double* value) const {
        for (int32_t a : cand) value[a] = mean[a] + alpha * width[a] * rng.normal();
    }
};

// LinUCB choice of the disjoint model without the width of every arm: within a call the
// state is fixed, so |x| spec[a] bounds arm a's width and mean + alpha |x| spec[a] its score.
// The arms with the k highest bounds are scored exactly; the lowest of those scores, T, is at
// most the k-th best score, so an arm whose bound is below T can neither be chosen nor tie
// with a chosen arm. The ranking (ties included) runs on the exact scores of the others only,
// which gives the same distribution of choices and the same propensities as ranking them all.
void linucb_select_pruned(const LinearState& s, const LinearPrepared& lp, const double* contexts, int64_t n_rows,
                          const uint8_t* mask, int64_t n_mask_rows, int64_t k, const LinearParams& p,
                          int32_t* arms, double* propensities, int n_threads) {
    const int64_t d = s.d, A = s.n_arms, dp = lp.dp;
    const bool avx2 = have_avx2() && dp <= 32;
    const int64_t n_blocks = (n_rows + kBlock - 1) / kBlock;
    const int workers = planned_workers(n_blocks, n_threads, 1);
    struct Scratch {
        std::vector<int32_t> cand, top, surv;
        std::vector<double> m, ub, score, y;
        std::vector<uint8_t> done;
    };
    std::vector<Scratch> scratch(static_cast<size_t>(workers));
    for (auto& sc : scratch) {
        sc.m.resize(static_cast<size_t>(lp.Ap));
        sc.ub.resize(static_cast<size_t>(lp.Ap));
        sc.score.resize(static_cast<size_t>(A));
        sc.done.assign(static_cast<size_t>(A), 0);
        sc.y.resize(static_cast<size_t>(dp));
    }
    parallel_for(
        0, n_blocks, n_threads,
        [&](int64_t blk, int w) {
            Scratch& sc = scratch[static_cast<size_t>(w)];
            const int64_t lo = blk * kBlock;
            const int64_t R = std::min(kBlock, n_rows - lo);
            const double* m = sc.m.data();
            const double* ub = sc.ub.data();
            for (int64_t r = lo; r < lo + R; ++r) {
                const double* x = contexts + r * d;
                auto& cand = sc.cand;  // unchanged below, so without a mask it is built once
                if (mask || static_cast<int64_t>(cand.size()) != A) candidates_of(mask, n_mask_rows, r, A, cand);
                require_candidates(cand, k, r);
                double nx2 = 0.0;
                for (int64_t i = 0; i < d; ++i) nx2 += x[i] * x[i];
                const double c = p.alpha * std::sqrt(nx2);
                if (avx2)
                    mean_ub_avx2(x, d, lp.thetaT.data(), lp.Ap, lp.spec_padded.data(), c, sc.m.data(), sc.ub.data());
                else
                    mean_ub_generic(x, d, lp.thetaT.data(), lp.Ap, lp.spec_padded.data(), c, sc.m.data(),
                                    sc.ub.data());
                auto exact = [&](int32_t a) {
                    const double* M = lp.stacked.data() + a * d * dp;
                    const double wd = avx2 ? width_one_avx2(x, d, dp, M, lp.lower[a] != 0)
                                           : width_one_generic(x, d, dp, M, lp.lower[a] != 0, sc.y.data());
                    sc.score[a] = m[a] + p.alpha * wd;
                    sc.done[a] = 1;
                    return sc.score[a];
                };
                double T;
                if (k == 1) {
                    int32_t best = cand[0];
                    double bv = ub[best];
                    for (int32_t a : cand)
                        if (ub[a] > bv) {
                            bv = ub[a];
                            best = a;
                        }
                    T = exact(best);
                } else {
                    sc.top.assign(cand.begin(), cand.end());
                    std::nth_element(sc.top.begin(), sc.top.begin() + (k - 1), sc.top.end(),
                                     [&](int32_t x1, int32_t x2) { return ub[x1] > ub[x2]; });
                    T = kInf;
                    for (int64_t j = 0; j < k; ++j) T = std::min(T, exact(sc.top[j]));
                }
                sc.surv.clear();
                for (int32_t a : cand)
                    if (ub[a] >= T) sc.surv.push_back(a);
                for (int32_t a : sc.surv)
                    if (!sc.done[a]) exact(a);
                for (int32_t a : sc.surv) sc.done[a] = 0;
                if (k > 1)
                    for (int64_t j = 0; j < k; ++j) sc.done[sc.top[j]] = 0;
                Rng choose(stream_seed(p.seed, static_cast<uint64_t>(r), kChoose));
                rank_with_ties(sc.score.data(), sc.surv, k, choose, arms + r * k,
                               propensities ? propensities + r * k : nullptr);
            }
        },
        1);
}

// One Sherman-Morrison step of the disjoint model on the d x d row-major A^-1 (d <= 32):
// u = A^-1 x (a sum of rows, A^-1 being symmetric), A^-1 -= (u_p u_j) / (1 + x.u), keeping
// A^-1 exactly symmetric like the portable loop.
template <int NV>
__attribute__((target("avx2,fma"))) void sherman_morrison_avx2_nv(double* Ap, const double* x, int64_t d) {
    const int64_t tail = d - 4 * (NV - 1);  // 1..4 valid entries in the last vector
    const __m256i tmask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(tail), _mm256_setr_epi64x(0, 1, 2, 3));
    auto load = [&](const double* p, int v) __attribute__((target("avx2,fma"))) {
        return v == NV - 1 ? _mm256_maskload_pd(p + 4 * v, tmask) : _mm256_loadu_pd(p + 4 * v);
    };
    __m256d u[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) u[v] = _mm256_setzero_pd();
    for (int64_t j = 0; j < d; ++j) {
        const __m256d xj = _mm256_set1_pd(x[j]);
        const double* row = Ap + j * d;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) u[v] = _mm256_fmadd_pd(load(row, v), xj, u[v]);
    }
    alignas(32) double us[4 * NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) _mm256_store_pd(us + 4 * v, u[v]);
    double q = 0.0;
    for (int64_t p = 0; p < d; ++p) q += x[p] * us[p];
    const __m256d inv = _mm256_set1_pd(1.0 / (1.0 + q));
    for (int64_t p = 0; p < d; ++p) {
        const __m256d up = _mm256_set1_pd(us[p]);
        double* row = Ap + p * d;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            const __m256d nv = _mm256_sub_pd(load(row, v), _mm256_mul_pd(_mm256_mul_pd(up, u[v]), inv));
            if (v == NV - 1)
                _mm256_maskstore_pd(row + 4 * v, tmask, nv);
            else
                _mm256_storeu_pd(row + 4 * v, nv);
        }
    }
}

bool sherman_morrison_avx2(double* Ap, const double* x, int64_t d) {
    switch ((d + 3) / 4) {
        case 1: sherman_morrison_avx2_nv<1>(Ap, x, d); return true;
        case 2: sherman_morrison_avx2_nv<2>(Ap, x, d); return true;
        case 3: sherman_morrison_avx2_nv<3>(Ap, x, d); return true;
        case 4: sherman_morrison_avx2_nv<4>(Ap, x, d); return true;
        case 5: sherman_morrison_avx2_nv<5>(Ap, x, d); return true;
        case 6: sherman_morrison_avx2_nv<6>(Ap, x, d); return true;
        case 7: sherman_morrison_avx2_nv<7>(Ap, x, d); return true;
        case 8: sherman_morrison_avx2_nv<8>(Ap, x, d); return true;
        default: return false;
    }
}

void check_linear_params(const LinearParams& p) {
    if (p.policy != LinearPolicy::LinUCB && p.policy != LinearPolicy::LinTS)
        throw std::invalid_argument("unknown linear policy code " + std::to_string(static_cast<int>(p.policy)));
    if (!(p.alpha >= 0.0) || !std::isfinite(p.alpha)) throw std::invalid_argument("alpha must be finite and >= 0");
}

// Runs fn(row, mean_row, width_row, worker) for every row, scoring blocks of rows in parallel.
template <class Fn>
void for_scored_rows(const LinearState& s, const LinearPrepared& lp, const double* contexts, int64_t n_rows,
                     int n_threads, Fn&& fn) {
    const int64_t n_blocks = (n_rows + kBlock - 1) / kBlock;
    const int workers = planned_workers(n_blocks, n_threads, 1);
    std::vector<BlockScorer> scorers(workers, BlockScorer(s, lp));
    parallel_for(
        0, n_blocks, n_threads,
        [&](int64_t blk, int w) {
            const int64_t lo = blk * kBlock;
            const int64_t R = std::min(kBlock, n_rows - lo);
            auto& sc = scorers[w];
            sc.score(contexts + lo * s.d, R);
            for (int64_t r = 0; r < R; ++r) fn(lo + r, sc.mean.row(r).data(), sc.width.row(r).data(), w);
        },
        1);
}

}  // namespace

void linear_scores(const LinearState& s, const double* contexts, int64_t n_rows, const uint8_t* mask,
                   int64_t n_mask_rows, double* mean, double* width, int n_threads) {
    check_linear(s);
    check_mask(mask, n_mask_rows, n_rows);
    check_contexts(contexts, n_rows, s.d);
    const LinearPrepared lp = prepare(s);
    const int64_t A = s.n_arms;
    const int workers = planned_workers((n_rows + kBlock - 1) / kBlock, n_threads, 1);
    std::vector<std::vector<int32_t>> cands(workers);
    for_scored_rows(s, lp, contexts, n_rows, n_threads, [&](int64_t r, const double* m, const double* wd, int w) {
        double* mr = mean + r * A;
        double* wr = width + r * A;
        std::fill(mr, mr + A, -kInf);
        std::fill(wr, wr + A, 0.0);
        candidates_of(mask, n_mask_rows, r, A, cands[w]);
        for (int32_t a : cands[w]) {
            mr[a] = m[a];
            wr[a] = wd[a];
        }
    });
}

void linear_probabilities(const LinearState& s, const double* contexts, int64_t n_rows, const uint8_t* mask,
                          int64_t n_mask_rows, const LinearParams& p, double* out, int n_threads) {
    check_linear(s);
    check_linear_params(p);
    check_mask(mask, n_mask_rows, n_rows);
    check_contexts(contexts, n_rows, s.d);
    const LinearPrepared lp = prepare(s);
    const int64_t n_arms = s.n_arms;
    const int workers = planned_workers((n_rows + kBlock - 1) / kBlock, n_threads, 1);
    std::vector<std::vector<int32_t>> cands(workers), orders(workers);
    std::vector<std::vector<double>> values(workers, std::vector<double>(n_arms)), ucb(values);
    for_scored_rows(s, lp, contexts, n_rows, n_threads, [&](int64_t r, const double* m, const double* wd, int w) {
        double* row = out + r * n_arms;
        std::fill(row, row + n_arms, 0.0);
        auto& cand = cands[w];
        candidates_of(mask, n_mask_rows, r, n_arms, cand);
        require_candidates(cand, 1, r);
        if (p.policy == LinearPolicy::LinUCB) {
            for (int32_t a : cand) ucb[w][a] = m[a] + p.alpha * wd[a];
            tie_probabilities(ucb[w].data(), cand, 1.0, row);
        } else {
            Rng est(stream_seed(p.seed, static_cast<uint64_t>(r), kEstimate));
            LinearDraw draw{m, wd, p.alpha};
            sampled_probabilities_row(draw, cand, p.n_draws, est, values[w], orders[w], row);
        }
    });
}

void linear_select(const LinearState& s, const double* contexts, int64_t n_rows, const uint8_t* mask,
                   int64_t n_mask_rows, int64_t k, const LinearParams& p, int32_t* arms, double* propensities,
                   int n_threads) {
    check_linear(s);
    check_linear_params(p);
    check_mask(mask, n_mask_rows, n_rows);
    check_contexts(contexts, n_rows, s.d);
    if (k <= 0) throw std::invalid_argument("k must be a positive integer");
    const LinearPrepared lp = prepare(s);
    if (p.policy == LinearPolicy::LinUCB && !lp.hybrid && lp.prunable)
        return linucb_select_pruned(s, lp, contexts, n_rows, mask, n_mask_rows, k, p, arms, propensities, n_threads);
    const int64_t n_arms = s.n_arms;
    const int workers = planned_workers((n_rows + kBlock - 1) / kBlock, n_threads, 1);
    std::vector<std::vector<int32_t>> cands(workers), orders(workers);
    std::vector<std::vector<double>> values(workers, std::vector<double>(n_arms)), ucb(values);
    for_scored_rows(s, lp, contexts, n_rows, n_threads, [&](int64_t r, const double* m, const double* wd, int w) {
        auto& cand = cands[w];
        candidates_of(mask, n_mask_rows, r, n_arms, cand);
        require_candidates(cand, k, r);
        int32_t* row_arms = arms + r * k;
        double* row_prop = propensities ? propensities + r * k : nullptr;
        Rng choose(stream_seed(p.seed, static_cast<uint64_t>(r), kChoose));
        if (p.policy == LinearPolicy::LinUCB) {
            for (int32_t a : cand) ucb[w][a] = m[a] + p.alpha * wd[a];
            rank_with_ties(ucb[w].data(), cand, k, choose, row_arms, row_prop);
        } else {
            Rng est(stream_seed(p.seed, static_cast<uint64_t>(r), kEstimate));
            LinearDraw draw{m, wd, p.alpha};
            sampled_select_row(draw, cand, k, p.n_draws, choose, est, values[w], orders[w], row_arms, row_prop);
        }
    });
}

void linear_update(const LinearState& s, const int32_t* arms, const double* rewards, const double* contexts,
                   int64_t n_events) {
    check_linear(s);
    const int64_t d = s.d;
    for (int64_t i = 0; i < n_events; ++i) {
        if (arms[i] < 0 || arms[i] >= s.n_arms)
            throw std::out_of_range("arm index " + std::to_string(arms[i]) + " of event " + std::to_string(i) +
                                    " is outside [0, " + std::to_string(s.n_arms) + ")");
        if (!std::isfinite(rewards[i]))
            throw std::invalid_argument("reward of event " + std::to_string(i) + " is NaN or infinite");
    }
    check_contexts(contexts, n_events, d);
    const bool hybrid = s.A0 != nullptr;
    const int64_t k = hybrid ? d * s.m : 0;
    Eigen::VectorXd u(d), z(k), t1(k), t2(k);
    RowMat BtAi;  // B_a^T A_a^-1 (k x d)
    for (int64_t i = 0; i < n_events; ++i) {
        const int64_t a = arms[i];
        const double r = rewards[i];
        MapCVec x(contexts + i * d, d);
        MapMat Ai(s.A_inv + a * d * d, d, d);
        MapVec ba(s.b + a * d, d);
        if (!hybrid) {  // Sherman-Morrison: A^-1 -= (A^-1 x)(A^-1 x)^T / (1 + x^T A^-1 x)
            double* Ap = s.A_inv + a * d * d;
            const double* xp = contexts + i * d;
            if (have_avx2() && sherman_morrison_avx2(Ap, xp, d)) {
                double* bp = s.b + a * d;
                for (int64_t j = 0; j < d; ++j) bp[j] += r * xp[j];
                continue;
            }
            // u = A^-1 x as a sum of rows (A^-1 is symmetric, and the update keeps it so
            // exactly: element (p, j) and (j, p) subtract the same rounded product)
            double* up = u.data();
            std::fill(up, up + d, 0.0);
            for (int64_t j = 0; j < d; ++j) {
                const double* row = Ap + j * d;
                const double xj = xp[j];
                for (int64_t p = 0; p < d; ++p) up[p] += row[p] * xj;
            }
            double q = 0.0;
            for (int64_t p = 0; p < d; ++p) q += xp[p] * up[p];
            const double inv = 1.0 / (1.0 + q);
            for (int64_t p = 0; p < d; ++p) {
                const double upi = up[p];
                double* row = Ap + p * d;
                for (int64_t j = 0; j < d; ++j) row[j] -= (upi * up[j]) * inv;
            }
            double* bp = s.b + a * d;
            for (int64_t j = 0; j < d; ++j) bp[j] += r * xp[j];
            continue;
        }
        MapMat A0(s.A0, k, k);
        MapVec b0(s.b0, k);
        MapMat Ba(s.B + a * d * k, d, k);
        const double* f = s.arm_features + a * s.m;
        for (int64_t p = 0; p < d; ++p)
            for (int64_t q = 0; q < s.m; ++q) z[p * s.m + q] = x[p] * f[q];
        BtAi.noalias() = Ba.transpose() * Ai;
        A0.noalias() += BtAi * Ba;
        b0.noalias() += BtAi * ba;
        u.noalias() = Ai * x;
        const double denom = 1.0 + x.dot(u);
        Ai.noalias() -= (u * u.transpose()) / denom;
        Ba.noalias() += x * z.transpose();
        ba.noalias() += r * x;
        BtAi.noalias() = Ba.transpose() * Ai;
        A0.noalias() += z * z.transpose();
        A0.noalias() -= BtAi * Ba;
        b0.noalias() += r * z;
        b0.noalias() -= BtAi * ba;
    }
}

}  // namespace recforge::bandits
