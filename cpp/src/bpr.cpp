#include "recforge/factorization/bpr.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/common/random.hpp"
#include "recforge/factorization/als.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define RECFORGE_PREFETCH(...) __builtin_prefetch(__VA_ARGS__)
#else
#define RECFORGE_PREFETCH(...) ((void)0)
#endif

namespace recforge::bpr {
namespace {

constexpr int64_t kSamplesPerBlock = 4096;  // one random stream per block of samples


using Rng = SplitMix64;

uint64_t stream_seed(uint64_t seed, uint64_t a, uint64_t b) { return mix64(mix64(seed) ^ mix64(a + 0x51ED27u) ^ (b * 0xD1B54A32D192ED03ull)); }

// -ln sigma(x), computed without overflow
double softplus_neg(double x) { return x > 0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x)); }


// z = 1 - sigma(x) and the loss -ln sigma(x) = ln(1 + e^x) - x, from one exponential
inline void sigmoid_terms(float x, float& z, float& loss) {
    if (x > 30.0f) {
        z = std::exp(-x);
        loss = z;
    } else if (x < -30.0f) {
        z = 1.0f;
        loss = -x;
    } else {
        const float e = std::exp(x);
        z = 1.0f / (1.0f + e);
        loss = std::log(1.0f + e) - x;  // log1pf is much slower; e >= e^-30 makes the difference negligible
    }
}

// The same in double precision, without cut-offs: z = e^-|x| / (1 + e^-|x|) for x > 0,
// 1 / (1 + e^x) otherwise, and the loss by log1p.
inline void sigmoid_terms(double x, double& z, double& loss) {
    if (x > 0.0) {
        const double e = std::exp(-x);
        z = e / (1.0 + e);
        loss = std::log1p(e);
    } else {
        const double e = std::exp(x);
        z = 1.0 / (1.0 + e);
        loss = std::log1p(e) - x;
    }
}

// The coefficients of a step (dL/dx_ui = -zi, dL/dx_uj = zj) and its loss, added to `loss`.
template <class T>
inline void step_terms(Loss kind, T xi, T xj, T& zi, T& zj, double& loss) {
    T l;
    if (kind == Loss::Bpr) {
        sigmoid_terms(xi - xj, zi, l);
        zj = zi;
        loss += l;
    } else {
        sigmoid_terms(xi, zi, l);  // 1 - sigma(x_ui), -ln sigma(x_ui)
        loss += l;
        T z_neg;
        sigmoid_terms(-xj, z_neg, l);  // 1 - sigma(-x_uj) = sigma(x_uj), -ln(1 - sigma(x_uj))
        zj = z_neg;
        loss += l;
    }
}

constexpr int kLookahead = 6;  // samples between the stages of the prefetch pipeline

struct Slot {
    int64_t k = 0, kj = 0, u = 0;
    int32_t i = 0, j = 0;
};

template <class T>
inline void prefetch_row(const T* row, int64_t bytes) {
    const char* c = reinterpret_cast<const char*>(row);
    for (int64_t o = 0; o < bytes; o += 64) RECFORGE_PREFETCH(c + o);
}

void check_params(const Params& p) {
    if (!(p.learning_rate > 0.0f) || !std::isfinite(p.learning_rate))
        throw std::invalid_argument("learning_rate must be finite and > 0");
    if (!(p.regularization >= 0.0f) || !std::isfinite(p.regularization))
        throw std::invalid_argument("regularization must be finite and >= 0");
    if (p.negative_draws < 1) throw std::invalid_argument("negative_draws must be >= 1");
    if (!(p.bias_regularization >= 0.0f) || !std::isfinite(p.bias_regularization))
        throw std::invalid_argument("bias_regularization must be finite and >= 0");
}

// Structure plus sorted column indices inside each row (needed for the binary searches).
void check_sorted(const CsrView& R) {
    R.validate("interactions");
    for (int64_t r = 0; r < R.n_rows; ++r) {
        for (int64_t k = R.row_begin(r) + 1; k < R.row_end(r); ++k) {
            if (R.indices[k] <= R.indices[k - 1])
                throw std::invalid_argument("interactions: column indices must be sorted and unique within each row");
        }
    }
}

bool has_item(const CsrView& R, int64_t row, int32_t item) {
    return std::binary_search(R.indices + R.row_begin(row), R.indices + R.row_end(row), item);
}

// A one-hash bit filter over the (row, column) pairs of R, about 8 bits per pair: a clear bit
// proves a pair absent, so most candidate negatives skip the binary search (whose
// mispredicted branches cost more than the rest of an SGD step).
class PairFilter {
public:
    PairFilter(const uint64_t* words, int64_t n_words) : words_(words) {
        shift_ = 64;
        for (int64_t bits = n_words * 64; bits > 1; bits >>= 1) --shift_;
    }
    uint64_t hash(int64_t row, int32_t col) const {
        return ((static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ull) ^
                (static_cast<uint64_t>(static_cast<uint32_t>(col)) * 0xC2B2AE3D27D4EB4Full)) *
                   0xD6E8FEB86659FD93ull >>
               shift_;
    }
    bool maybe(int64_t row, int32_t col) const {
        const uint64_t h = hash(row, col);
        return (words_[h >> 6] >> (h & 63)) & 1u;
    }
    const uint64_t* word(int64_t row, int32_t col) const { return words_ + (hash(row, col) >> 6); }

private:
    const uint64_t* words_;
    int shift_;
};

bool interacted(const CsrView& R, const PairFilter* filter, int64_t row, int32_t item) {
    if (filter != nullptr && !filter->maybe(row, item)) return false;
    return has_item(R, row, item);
}

// A negative item for `row` (positive `pos`) within `draws` draws, or -1.
int32_t draw_negative(const CsrView& R, const PairFilter* filter, int64_t row, int32_t pos, const Params& p, Rng& rng,
                      int draws) {
    const int64_t nnz = R.nnz();
    for (int t = 0; t < draws; ++t) {
        const int32_t j = p.negatives == Negatives::Uniform
                              ? static_cast<int32_t>(rng.below(static_cast<uint64_t>(R.n_cols)))
                              : R.indices[rng.below(static_cast<uint64_t>(nnz))];
        if (j == pos) continue;
        if (p.verify_negatives && interacted(R, filter, row, j)) continue;
        return j;
    }
    return -1;
}

}  // namespace

double triple_loss(const float* u, const float* qi, const float* qj, float bi, float bj, int64_t f, float reg,
                   float bias_reg, float* grad_u, float* grad_i, float* grad_j, float* grad_bi, float* grad_bj,
                   Loss loss) {
    double xi = bi, xj = bj, norms = 0.0;
    for (int64_t c = 0; c < f; ++c) {
        xi += static_cast<double>(u[c]) * qi[c];
        xj += static_cast<double>(u[c]) * qj[c];
        norms += static_cast<double>(u[c]) * u[c] + static_cast<double>(qi[c]) * qi[c] + static_cast<double>(qj[c]) * qj[c];
    }
    // dL/dx_ui = -zi and dL/dx_uj = zj
    double zi, zj, value;
    if (loss == Loss::Bpr) {
        zi = zj = 1.0 / (1.0 + std::exp(xi - xj));  // 1 - sigma(x_uij)
        value = softplus_neg(xi - xj);
    } else {
        zi = 1.0 / (1.0 + std::exp(xi));   // 1 - sigma(x_ui)
        zj = 1.0 / (1.0 + std::exp(-xj));  // sigma(x_uj)
        value = softplus_neg(xi) + softplus_neg(-xj);
    }
    for (int64_t c = 0; c < f; ++c) {
        if (grad_u) grad_u[c] = static_cast<float>(-zi * qi[c] + zj * qj[c] + reg * u[c]);
        if (grad_i) grad_i[c] = static_cast<float>(-zi * u[c] + reg * qi[c]);
        if (grad_j) grad_j[c] = static_cast<float>(zj * u[c] + reg * qj[c]);
    }
    if (grad_bi) *grad_bi = static_cast<float>(-zi + bias_reg * bi);
    if (grad_bj) *grad_bj = static_cast<float>(zj + bias_reg * bj);
    return value + 0.5 * reg * norms + 0.5 * bias_reg * (static_cast<double>(bi) * bi + static_cast<double>(bj) * bj);
}

int64_t filter_words(int64_t nnz) {
    int64_t bits = 64;
    while (bits < 8 * nnz && bits < (int64_t{1} << 40)) bits *= 2;
    return bits / 64;
}

void prepare(const CsrView& R, int32_t* row_of, uint64_t* filter, int64_t n_words) {
    check_sorted(R);
    if (n_words != filter_words(R.nnz()))
        throw std::invalid_argument("the pair filter must have filter_words(nnz) words");
    std::fill(filter, filter + n_words, uint64_t{0});
    const PairFilter view(filter, n_words);
    for (int64_t r = 0; r < R.n_rows; ++r) {
        for (int64_t k = R.row_begin(r); k < R.row_end(r); ++k) {
            row_of[k] = static_cast<int32_t>(r);
            const uint64_t h = view.hash(r, R.indices[k]);
            filter[h >> 6] |= uint64_t{1} << (h & 63);
        }
    }
}

template <class T>
EpochStats epoch(const CsrView& R, T* U, T* V, T* bias, int64_t f, const Params& p, int64_t epoch_index,
                 int n_threads, const Prepared& prepared) {
    check_params(p);
    if (f <= 0) throw std::invalid_argument("the number of factors must be positive");
    EpochStats total;
    const int64_t nnz = R.nnz();
    std::vector<int32_t> own_rows;
    std::vector<uint64_t> own_filter;
    const int32_t* row_of = prepared.row_of;
    const uint64_t* filter_data = prepared.filter;
    if (row_of == nullptr || filter_data == nullptr) {
        own_rows.resize(static_cast<size_t>(std::max<int64_t>(nnz, 1)));
        own_filter.resize(static_cast<size_t>(filter_words(nnz)));
        prepare(R, own_rows.data(), own_filter.data(), static_cast<int64_t>(own_filter.size()));
        row_of = own_rows.data();
        filter_data = own_filter.data();
    } else {
        // prepared by prepare() from this very matrix: check what is cheap to check
        R.validate("interactions");
        if (prepared.n_words != filter_words(nnz))
            throw std::invalid_argument("the prepared pair filter does not match the interactions");
    }
    if (nnz == 0 || R.n_cols == 0) return total;
    const int64_t n_blocks = (nnz + kSamplesPerBlock - 1) / kSamplesPerBlock;
    std::vector<EpochStats> stats(static_cast<size_t>(n_blocks));
    const PairFilter filter_view(filter_data, filter_words(nnz));
    const PairFilter* filter = p.verify_negatives ? &filter_view : nullptr;
    const auto& K = als::kernels::vector_kernels_for<T>();
    const T lr = static_cast<T>(p.learning_rate), reg = static_cast<T>(p.regularization);
    const T breg = static_cast<T>(p.bias_regularization);
    const bool popularity = p.negatives == Negatives::Popularity;
    const int64_t row_bytes = f * static_cast<int64_t>(sizeof(T));
    parallel_for(0, n_blocks, n_threads, [&](int64_t b, int) {
        // Separate streams for the positives and the negatives, so samples can be drawn ahead.
        Rng pos_rng(stream_seed(p.seed, static_cast<uint64_t>(epoch_index), 2 * static_cast<uint64_t>(b)));
        Rng neg_rng(stream_seed(p.seed, static_cast<uint64_t>(epoch_index), 2 * static_cast<uint64_t>(b) + 1));
        EpochStats s;  // local: neighbouring blocks' stats share cache lines
        const int64_t n = std::min(kSamplesPerBlock, nnz - b * kSamplesPerBlock);
        // A software pipeline hides the latency of the random reads: a sample's interaction (and,
        // for popularity sampling, its negative's interaction) is drawn 3H steps before its SGD
        // step; 2H steps before, its user and items are looked up and their factor rows
        // prefetched; H steps before, the word of the pair filter that checks the negative.
        constexpr int64_t H = kLookahead, kRing = 3 * kLookahead;
        Slot ring[kRing];
        auto draw = [&](Slot& slot) {
            slot.k = static_cast<int64_t>(pos_rng.below(static_cast<uint64_t>(nnz)));
            slot.kj = static_cast<int64_t>(neg_rng.below(static_cast<uint64_t>(popularity ? nnz : R.n_cols)));
            RECFORGE_PREFETCH(row_of + slot.k);
            RECFORGE_PREFETCH(R.indices + slot.k);
            if (popularity) RECFORGE_PREFETCH(R.indices + slot.kj);
        };
        auto resolve = [&](Slot& slot) {
            slot.u = row_of[slot.k];
            slot.i = R.indices[slot.k];
            slot.j = popularity ? R.indices[slot.kj] : static_cast<int32_t>(slot.kj);
            prefetch_row(U + slot.u * f, row_bytes);
            prefetch_row(V + static_cast<int64_t>(slot.i) * f, row_bytes);
            prefetch_row(V + static_cast<int64_t>(slot.j) * f, row_bytes);
        };
        auto prefetch_history = [&](const Slot& slot) {
            if (!p.verify_negatives) return;
            RECFORGE_PREFETCH(filter->word(slot.u, slot.j));
        };
        for (int64_t t = 0; t < n + kRing; ++t) {
            if (t < n) draw(ring[t % kRing]);
            if (t >= H && t - H < n) resolve(ring[(t - H) % kRing]);
            if (t >= 2 * H && t - 2 * H < n) prefetch_history(ring[(t - 2 * H) % kRing]);
            if (t < kRing) continue;
            const Slot& slot = ring[(t - kRing) % kRing];
            const int64_t u = slot.u;
            const int32_t i = slot.i;
            ++s.samples;
            int32_t j = slot.j;
            if (j == i || (p.verify_negatives && interacted(R, filter, u, j)))
                j = draw_negative(R, filter, u, i, p, neg_rng, p.negative_draws - 1);
            if (j < 0) {
                ++s.skipped;
                continue;
            }
            T* pu = U + u * f;
            T* qi = V + static_cast<int64_t>(i) * f;
            T* qj = V + static_cast<int64_t>(j) * f;
            T xi = K.dot(pu, qi, f), xj = K.dot(pu, qj, f);
            if (bias) {
                xi += bias[i];
                xj += bias[j];
            }
            T zi, zj;
            step_terms<T>(p.loss, xi, xj, zi, zj, s.loss);
            s.correct += xi > xj;
            K.bpr_step(pu, qi, qj, f, zi, zj, lr, reg);
            if (bias) {
                bias[i] += lr * (zi - breg * bias[i]);
                bias[j] += lr * (-zj - breg * bias[j]);
            }
        }
        stats[static_cast<size_t>(b)] = s;
    });
    for (const EpochStats& s : stats) {
        total.samples += s.samples;
        total.skipped += s.skipped;
        total.correct += s.correct;
        total.loss += s.loss;
    }
    return total;
}

template <class T>
void fold_in(const CsrView& R, T* U, const T* V, const T* bias, int64_t f, int epochs, const Params& params,
             int n_threads) {
    check_params(params);
    Params p = params;
    p.negatives = Negatives::Uniform;  // the rows folded in say nothing about the catalog's popularity
    if (f <= 0) throw std::invalid_argument("the number of factors must be positive");
    if (epochs <= 0) throw std::invalid_argument("epochs must be positive");
    check_sorted(R);
    if (R.n_cols == 0) return;
    const auto& K = als::kernels::vector_kernels_for<T>();
    const T lr = static_cast<T>(p.learning_rate), reg = static_cast<T>(p.regularization);
    parallel_for(
        0, R.n_rows, n_threads,
        [&](int64_t r, int) {
            T* pu = U + r * f;
            const int64_t begin = R.row_begin(r), n = R.row_end(r) - begin;
            if (n == 0) {
                std::fill(pu, pu + f, T(0));
                return;
            }
            Rng rng(stream_seed(p.seed, 0xF01D1Au, static_cast<uint64_t>(r)));
            for (int e = 0; e < epochs; ++e) {
                for (int64_t t = 0; t < n; ++t) {
                    const int32_t i = R.indices[begin + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)))];
                    const int32_t j = draw_negative(R, nullptr, r, i, p, rng, p.negative_draws);
                    if (j < 0) continue;
                    const T* qi = V + static_cast<int64_t>(i) * f;
                    const T* qj = V + static_cast<int64_t>(j) * f;
                    T xi = K.dot(pu, qi, f), xj = K.dot(pu, qj, f);
                    if (bias) {
                        xi += bias[i];
                        xj += bias[j];
                    }
                    T zi, zj;
                    double unused = 0.0;
                    step_terms<T>(p.loss, xi, xj, zi, zj, unused);
                    for (int64_t c = 0; c < f; ++c) pu[c] += lr * (zi * qi[c] - zj * qj[c] - reg * pu[c]);
                }
            }
        },
        8);
}

#define RECFORGE_BPR_INSTANTIATE(T)                                                                      \
    template EpochStats epoch<T>(const CsrView&, T*, T*, T*, int64_t, const Params&, int64_t, int,       \
                                 const Prepared&);                                                       \
    template void fold_in<T>(const CsrView&, T*, const T*, const T*, int64_t, int, const Params&, int);
RECFORGE_BPR_INSTANTIATE(float)
RECFORGE_BPR_INSTANTIATE(double)
#undef RECFORGE_BPR_INSTANTIATE

}  // namespace recforge::bpr
