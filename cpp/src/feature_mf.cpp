#include "recforge/factorization/feature_mf.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/common/random.hpp"
#include "recforge/factorization/als.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace recforge::feature_mf {
namespace {

#if defined(__GNUC__) || defined(__clang__)
#define RECFORGE_RESTRICT __restrict__
#else
#define RECFORGE_RESTRICT
#endif

constexpr int64_t kSamplesPerBlock = 2048;  // one random stream per block of samples
constexpr float kMaxWarpWeight = 10.0f;
constexpr int kBprDraws = 100;  // draws of a BPR negative that is not a positive before the sample is skipped


uint64_t stream_seed(uint64_t seed, uint64_t epoch, uint64_t block) {
    return mix64(mix64(seed ^ 0xFEA7u) ^ mix64(epoch + 0x3C6EF372u) ^ (block * 0xD1B54A32D192ED03ull));
}

using Rng = SplitMix64;

// -ln sigma(x) without overflow
double softplus_neg(double x) { return x > 0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x)); }

double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}

// dL/dx_ui = a, dL/dx_uj = b and the loss of one example (shared by training and tests).
double coefficients(Loss loss, double pos, double neg, float label, float warp_weight, float& a, float& b) {
    switch (loss) {
        case Loss::Logistic: {
            const double y = label > 0.0f ? 1.0 : 0.0;
            a = static_cast<float>(sigmoid(pos) - y);
            b = 0.0f;
            return y > 0 ? softplus_neg(pos) : softplus_neg(-pos);
        }
        case Loss::Bpr: {
            const double z = 1.0 - sigmoid(pos - neg);
            a = static_cast<float>(-z);
            b = static_cast<float>(z);
            return softplus_neg(pos - neg);
        }
        case Loss::Warp:
        case Loss::WarpKos:
        default:
            a = -warp_weight;
            b = warp_weight;
            return static_cast<double>(warp_weight) * (1.0 - pos + neg);
    }
}

// Representation gradients from the coefficients: user = a q_i + b q_j (bias a + b),
// positive item = a p_u (bias a), negative item = b p_u (bias b).
void representation_grads(const float* user, const float* pos, const float* neg, int64_t f, float a, float b,
                          float* gu, float* gi, float* gj) {
    for (int64_t c = 0; c < f; ++c) {
        gu[c] = a * pos[c] + (neg ? b * neg[c] : 0.0f);
        gi[c] = a * user[c];
        if (gj) gj[c] = b * user[c];
    }
    gu[f] = a + b;
    gi[f] = a;
    if (gj) gj[f] = b;
}

inline float dot(const float* x, const float* y, int64_t f) { return als::kernels::vector_kernels().dot(x, y, f); }

void check_params(const Params& p) {
    if (!(p.learning_rate > 0.0f) || !std::isfinite(p.learning_rate))
        throw std::invalid_argument("learning_rate must be finite and > 0");
    if (!(p.rho > 0.0f && p.rho < 1.0f)) throw std::invalid_argument("rho must be in (0, 1)");
    if (!(p.epsilon > 0.0f) || !std::isfinite(p.epsilon)) throw std::invalid_argument("epsilon must be finite and > 0");
    if (!(p.user_alpha >= 0.0f) || !std::isfinite(p.user_alpha) || !(p.item_alpha >= 0.0f) || !std::isfinite(p.item_alpha))
        throw std::invalid_argument("user_alpha and item_alpha must be finite and >= 0");
    if (p.max_sampled < 1) throw std::invalid_argument("max_sampled must be >= 1");
    if (p.k < 1 || p.n < 1) throw std::invalid_argument("k and n must be >= 1");
    const int l = static_cast<int>(p.loss), s = static_cast<int>(p.schedule);
    if (l < 0 || l > 3) throw std::invalid_argument("loss must be 0 (logistic), 1 (bpr), 2 (warp) or 3 (warp-kos)");
    if (s < 0 || s > 1) throw std::invalid_argument("schedule must be 0 (adagrad) or 1 (adadelta)");
}

void check_side(const Side& s, const CsrView& F, int64_t rows, const char* what) {
    F.validate(what);
    if (F.data == nullptr) throw std::invalid_argument(std::string(what) + ": feature weights are missing");
    if (F.n_rows != rows)
        throw std::invalid_argument(std::string(what) + " must have " + std::to_string(rows) + " rows, got " +
                                    std::to_string(F.n_rows));
    if (F.n_cols != s.n_features)
        throw std::invalid_argument(std::string(what) + " have " + std::to_string(F.n_cols) +
                                    " columns but the model has " + std::to_string(s.n_features) + " features");
    if (!s.embeddings || !s.biases || !s.embedding_grad || !s.bias_grad)
        throw std::invalid_argument(std::string(what) + ": parameter arrays are missing");
}

// One side's view during an epoch: parameters are the arrays times `scale` (lazy L2 decay).
struct SideState {
    Side* s;
    const CsrView* F;
    std::atomic<float> scale{1.0f};
    float alpha = 0.0f;
};

void represent(const SideState& st, int64_t row, int64_t f, float* RECFORGE_RESTRICT out) {
    const CsrView& F = *st.F;
    std::fill(out, out + f + 1, 0.0f);
    const int64_t lo = F.row_begin(row), hi = F.row_end(row);
    // out += sum_k w_k e_k with the run-time selected (AVX2/FMA or portable) kernels
    als::kernels::vector_kernels().axpys(st.s->embeddings, f, F.indices + lo, hi - lo, F.data + lo, out);
    float b = 0.0f;
    for (int64_t k = lo; k < hi; ++k) b += F.data[k] * st.s->biases[F.indices[k]];
    out[f] = b;
    const float sc = st.scale.load(std::memory_order_relaxed);
    if (sc != 1.0f)
        for (int64_t c = 0; c <= f; ++c) out[c] *= sc;
}

// x_uj for the row of an item, from the user's representation (f + 1, bias last) without
// forming the item's: sum_k w_k (u . e_k + b_k), times the side's scale, plus the user's bias.
float score_row(const SideState& st, int64_t row, int64_t f, const float* user, std::vector<float>& buf) {
    const CsrView& F = *st.F;
    const int64_t lo = F.row_begin(row), n = F.row_end(row) - lo;
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
    als::kernels::vector_kernels().dots(st.s->embeddings, f, F.indices + lo, n, user, buf.data());
    float s = 0.0f;
    for (int64_t k = 0; k < n; ++k) s += F.data[lo + k] * (buf[static_cast<size_t>(k)] + st.s->biases[F.indices[lo + k]]);
    return s * st.scale.load(std::memory_order_relaxed) + user[f];
}

// A step on the parameters of `row`'s features along the representation gradient g (f + 1):
// returns the sum of the learning rates used and adds their count to `count`.
// Adagrad on one embedding row: rate = lr / sqrt(G), e -= rate g / scale, then G += g^2
// (LightFM's order: the accumulators start at 1 and a step uses the sum before it). Four
// lanes at a time with SSE where available (std::sqrt's errno handling keeps compilers from
// vectorising it); returns the sum of the rates.
template <bool kTrack>
inline float adagrad_row(float* RECFORGE_RESTRICT e, float* RECFORGE_RESTRICT ge, const float* RECFORGE_RESTRICT g,
                         float w, float lr, float inv_scale, int64_t f) {
    int64_t c = 0;
    float row_lr = 0.0f;
#if defined(__SSE2__)
    const __m128 vw = _mm_set1_ps(w), vlr = _mm_set1_ps(lr), vinv = _mm_set1_ps(inv_scale);
    __m128 vsum = _mm_setzero_ps();
    for (; c + 4 <= f; c += 4) {
        const __m128 gr = _mm_mul_ps(vw, _mm_loadu_ps(g + c));
        const __m128 acc = _mm_loadu_ps(ge + c);
        const __m128 rate = _mm_div_ps(vlr, _mm_sqrt_ps(acc));
        _mm_storeu_ps(ge + c, _mm_add_ps(acc, _mm_mul_ps(gr, gr)));
        _mm_storeu_ps(e + c, _mm_sub_ps(_mm_loadu_ps(e + c), _mm_mul_ps(_mm_mul_ps(rate, gr), vinv)));
        if (kTrack) vsum = _mm_add_ps(vsum, rate);
    }
    if (kTrack) {
        alignas(16) float lanes[4];
        _mm_store_ps(lanes, vsum);
        row_lr = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    }
#endif
    for (; c < f; ++c) {
        const float gr = w * g[c];
        const float rate = lr / std::sqrt(ge[c]);
        ge[c] += gr * gr;
        e[c] -= rate * gr * inv_scale;
        if (kTrack) row_lr += rate;
    }
    return row_lr;
}

template <bool kAdadelta, bool kTrack>
double step(SideState& st, int64_t row, const float* g, int64_t f, const Params& p, int64_t& count) {
    const CsrView& F = *st.F;
    Side& s = *st.s;
    const float inv_scale = 1.0f / st.scale.load(std::memory_order_relaxed);
    const float lr = p.learning_rate, rho = p.rho, eps = p.epsilon;
    double lr_sum = 0.0;
    const bool bias = g[f] != 0.0f;
    for (int64_t k = F.row_begin(row); k < F.row_end(row); ++k) {
        const int64_t feat = F.indices[k];
        const float w = F.data[k];
        float* RECFORGE_RESTRICT e = s.embeddings + feat * f;
        float* RECFORGE_RESTRICT ge = s.embedding_grad + feat * f;
        const float* RECFORGE_RESTRICT gv = g;
        float row_lr = 0.0f;
        if (kAdadelta) {
            float* RECFORGE_RESTRICT se = s.embedding_step + feat * f;
            for (int64_t c = 0; c < f; ++c) {
                const float gr = w * gv[c];
                ge[c] = rho * ge[c] + (1.0f - rho) * gr * gr;
                const float rate = std::sqrt(se[c] + eps) / std::sqrt(ge[c] + eps);
                const float upd = rate * gr;
                se[c] = rho * se[c] + (1.0f - rho) * upd * upd;
                e[c] -= upd * inv_scale;
                if (kTrack) row_lr += rate;
            }
        } else {
            row_lr = adagrad_row<kTrack>(e, ge, gv, w, lr, inv_scale, f);
        }
        lr_sum += row_lr;
        count += f;
        if (bias) {
            const float gr = w * g[f];
            float rate;
            if (kAdadelta) {
                s.bias_grad[feat] = rho * s.bias_grad[feat] + (1.0f - rho) * gr * gr;
                rate = std::sqrt(s.bias_step[feat] + eps) / std::sqrt(s.bias_grad[feat] + eps);
                const float upd = rate * gr;
                s.bias_step[feat] = rho * s.bias_step[feat] + (1.0f - rho) * upd * upd;
                s.biases[feat] -= upd * inv_scale;
            } else {
                rate = lr / std::sqrt(s.bias_grad[feat]);
                s.bias_grad[feat] += gr * gr;
                s.biases[feat] -= rate * gr * inv_scale;
            }
            lr_sum += rate;
            count += 1;
        }
    }
    return lr_sum;
}

void decay(SideState& st, double mean_lr) {
    if (st.alpha <= 0.0f) return;
    const float sc = st.scale.load(std::memory_order_relaxed);
    st.scale.store(static_cast<float>(sc / (1.0 + st.alpha * mean_lr)), std::memory_order_relaxed);
}

void fold_scale(SideState& st, int64_t f, int n_threads) {
    const float sc = st.scale.load();
    if (sc == 1.0f) return;
    Side& s = *st.s;
    parallel_for(
        0, s.n_features, n_threads,
        [&](int64_t k, int) {
            for (int64_t c = 0; c < f; ++c) s.embeddings[k * f + c] *= sc;
            s.biases[k] *= sc;
        },
        1024);
    st.scale.store(1.0f);
}

bool has_item(const CsrView& R, int64_t row, int32_t item) {
    return std::binary_search(R.indices + R.row_begin(row), R.indices + R.row_end(row), item);
}

struct Scratch {
    std::vector<float> u, i, j, gu, gi, gj, dots;
    std::vector<std::pair<float, int32_t>> pairs;
    void resize(int64_t f) {
        const size_t n = static_cast<size_t>(f + 1);
        u.assign(n, 0.0f);
        i.assign(n, 0.0f);
        j.assign(n, 0.0f);
        gu.assign(n, 0.0f);
        gi.assign(n, 0.0f);
        gj.assign(n, 0.0f);
    }
};

template <bool kAdadelta>
EpochStats run_epoch(const CsrView& R, SideState& us, SideState& is, int64_t f, const Params& p,
                     const int32_t* negatives, int64_t n_neg, int64_t epoch_index, int n_threads) {
    const int64_t nnz = R.nnz();
    const bool positives_only = p.loss != Loss::Logistic;
    // the samples: entries of R (users for WarpKos), in a random order
    std::vector<int64_t> samples;
    std::vector<int32_t> row_of(static_cast<size_t>(nnz));
    for (int64_t r = 0; r < R.n_rows; ++r) {
        bool any = false;
        for (int64_t k = R.row_begin(r); k < R.row_end(r); ++k) {
            row_of[static_cast<size_t>(k)] = static_cast<int32_t>(r);
            const bool positive = R.data == nullptr || R.data[k] > 0.0f;
            if (p.loss == Loss::WarpKos) {
                any = any || positive;
            } else if (!positives_only || positive) {
                samples.push_back(k);
            }
        }
        if (p.loss == Loss::WarpKos && any) samples.push_back(r);
    }
    EpochStats total;
    const bool sampling = p.loss != Loss::Logistic;
    if (samples.empty() || (sampling && n_neg == 0)) return total;
    {
        Rng rng(stream_seed(p.seed, static_cast<uint64_t>(epoch_index), ~uint64_t{0}));
        for (int64_t t = static_cast<int64_t>(samples.size()) - 1; t > 0; --t)
            std::swap(samples[static_cast<size_t>(t)], samples[static_cast<size_t>(rng.below(static_cast<uint64_t>(t + 1)))]);
    }
    const int64_t n_samples = static_cast<int64_t>(samples.size());
    const int64_t n_blocks = (n_samples + kSamplesPerBlock - 1) / kSamplesPerBlock;
    const int workers = planned_workers(n_blocks, n_threads);
    std::vector<Scratch> scratch(static_cast<size_t>(workers));
    std::vector<EpochStats> stats(static_cast<size_t>(n_blocks));
    const bool track = us.alpha > 0.0f || is.alpha > 0.0f;
    const double warp_n = static_cast<double>(n_neg - 1);
    parallel_for(0, n_blocks, workers, [&](int64_t blk, int w) {
        Scratch& sc = scratch[static_cast<size_t>(w)];
        if (sc.u.empty()) sc.resize(f);
        float *ur = sc.u.data(), *ir = sc.i.data(), *jr = sc.j.data();
        float *gu = sc.gu.data(), *gi = sc.gi.data(), *gj = sc.gj.data();
        Rng rng(stream_seed(p.seed, static_cast<uint64_t>(epoch_index), static_cast<uint64_t>(blk)));
        EpochStats& st = stats[static_cast<size_t>(blk)];
        const int64_t lo = blk * kSamplesPerBlock, hi = std::min(n_samples, lo + kSamplesPerBlock);
        auto draw = [&]() -> int32_t {
            const uint64_t t = rng.below(static_cast<uint64_t>(n_neg));
            return negatives ? negatives[t] : static_cast<int32_t>(t);
        };
        auto apply = [&](int64_t u, int32_t i, int32_t j, float a, float b) {
            representation_grads(ur, ir, j >= 0 ? jr : nullptr, f, a, b, gu, gi, j >= 0 ? gj : nullptr);
            int64_t cu = 0, ci = 0;
            if (!track) {
                step<kAdadelta, false>(us, u, gu, f, p, cu);
                step<kAdadelta, false>(is, i, gi, f, p, ci);
                if (j >= 0) step<kAdadelta, false>(is, j, gj, f, p, ci);
            } else {
                const double lu = step<kAdadelta, true>(us, u, gu, f, p, cu);
                double li = step<kAdadelta, true>(is, i, gi, f, p, ci);
                if (j >= 0) li += step<kAdadelta, true>(is, j, gj, f, p, ci);
                const double mean = (lu + li) / static_cast<double>(std::max<int64_t>(cu + ci, 1));
                decay(us, mean);
                decay(is, mean);
            }
            ++st.updates;
        };
        for (int64_t t = lo; t < hi; ++t) {
            ++st.samples;
            const int64_t s = samples[static_cast<size_t>(t)];
            int64_t u;
            int32_t i;
            float pos;
            if (p.loss == Loss::WarpKos) {
                u = s;
                represent(us, u, f, ur);
                const int64_t b0 = R.row_begin(u), len = R.row_end(u) - b0;
                sc.pairs.clear();
                const int n_draw = static_cast<int>(std::min<int64_t>(p.n, len));
                for (int d = 0; d < n_draw; ++d) {
                    const int64_t k = b0 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(len)));
                    if (R.data != nullptr && !(R.data[k] > 0.0f)) continue;
                    represent(is, R.indices[k], f, ir);
                    sc.pairs.emplace_back(dot(ur, ir, f) + ur[f] + ir[f], R.indices[k]);
                }
                if (sc.pairs.empty()) continue;
                std::sort(sc.pairs.begin(), sc.pairs.end(),
                          [](const auto& x, const auto& y) { return x.first > y.first; });
                const size_t kth = static_cast<size_t>(std::min<int64_t>(p.k, static_cast<int64_t>(sc.pairs.size())) - 1);
                i = sc.pairs[kth].second;
                represent(is, i, f, ir);
                pos = dot(ur, ir, f) + ur[f] + ir[f];
            } else {
                u = row_of[static_cast<size_t>(s)];
                i = R.indices[s];
                represent(us, u, f, ur);
                represent(is, i, f, ir);
                pos = dot(ur, ir, f) + ur[f] + ir[f];
            }
            float a = 0.0f, b = 0.0f;
            if (p.loss == Loss::Logistic) {
                st.loss += coefficients(p.loss, pos, 0.0, R.data ? R.data[s] : 1.0f, 0.0f, a, b);
                apply(u, i, -1, a, b);
            } else if (p.loss == Loss::Bpr) {
                int32_t j = -1;
                for (int d = 0; d < kBprDraws && j < 0; ++d) {
                    const int32_t c = draw();
                    if (c != i && !has_item(R, u, c)) j = c;
                }
                if (j < 0) continue;
                represent(is, j, f, jr);
                const float neg = dot(ur, jr, f) + ur[f] + jr[f];
                st.loss += coefficients(p.loss, pos, neg, 1.0f, 0.0f, a, b);
                apply(u, i, j, a, b);
            } else {
                for (int sampled = 1; sampled <= p.max_sampled; ++sampled) {
                    const int32_t j = draw();
                    const float neg = score_row(is, j, f, ur, sc.dots);
                    if (neg > pos - 1.0f) {
                        if (j == i || has_item(R, u, j)) continue;
                        represent(is, j, f, jr);
                        float weight = static_cast<float>(std::log(std::max(1.0, std::floor(warp_n / sampled))));
                        weight = std::min(weight, kMaxWarpWeight);
                        if (weight <= 0.0f) break;  // a rank estimate of 1: a step of zero
                        st.loss += coefficients(p.loss, pos, neg, 1.0f, weight, a, b);
                        apply(u, i, j, a, b);
                        break;
                    }
                }
            }
        }
    });
    for (const auto& s : stats) {
        total.samples += s.samples;
        total.updates += s.updates;
        total.loss += s.loss;
    }
    return total;
}

}  // namespace

double example_loss(Loss loss, const float* user, const float* pos, const float* neg, int64_t f, float label,
                    float warp_weight, float* grad_user, float* grad_pos, float* grad_neg) {
    if (f <= 0) throw std::invalid_argument("the number of components must be positive");
    const double xp = static_cast<double>(dot(user, pos, f)) + user[f] + pos[f];
    const double xn = neg ? static_cast<double>(dot(user, neg, f)) + user[f] + neg[f] : 0.0;
    if (loss != Loss::Logistic && neg == nullptr) throw std::invalid_argument("pairwise losses need a negative item");
    float a = 0.0f, b = 0.0f;
    const double value = coefficients(loss, xp, xn, label, warp_weight, a, b);
    if (grad_user && grad_pos) representation_grads(user, pos, neg, f, a, b, grad_user, grad_pos, grad_neg);
    return value;
}

void representations(const CsrView& F, const float* embeddings, const float* biases, int64_t n_features, int64_t f,
                     float* out, float* out_bias, int n_threads) {
    F.validate("features");
    if (F.data == nullptr) throw std::invalid_argument("features: weights are missing");
    if (F.n_cols != n_features)
        throw std::invalid_argument("the feature matrix has " + std::to_string(F.n_cols) +
                                    " columns but the model has " + std::to_string(n_features) + " features");
    parallel_for(
        0, F.n_rows, n_threads,
        [&](int64_t r, int) {
            float* o = out + r * f;
            std::fill(o, o + f, 0.0f);
            float bsum = 0.0f;
            for (int64_t k = F.row_begin(r); k < F.row_end(r); ++k) {
                const int64_t feat = F.indices[k];
                const float w = F.data[k];
                const float* e = embeddings + feat * f;
                for (int64_t c = 0; c < f; ++c) o[c] += w * e[c];
                bsum += w * biases[feat];
            }
            out_bias[r] = bsum;
        },
        256);
}

EpochStats epoch(const CsrView& R, const CsrView& Fu, const CsrView& Fi, Side& users, Side& items, int64_t f,
                 const Params& p, const int32_t* negatives, int64_t n_negatives, int64_t epoch_index, int n_threads) {
    check_params(p);
    if (f <= 0) throw std::invalid_argument("the number of components must be positive");
    R.validate("interactions");
    for (int64_t r = 0; r < R.n_rows; ++r) {
        for (int64_t k = R.row_begin(r) + 1; k < R.row_end(r); ++k) {
            if (R.indices[k] <= R.indices[k - 1])
                throw std::invalid_argument("interactions: column indices must be sorted and unique within each row");
        }
    }
    check_side(users, Fu, R.n_rows, "user features");
    check_side(items, Fi, R.n_cols, "item features");
    const bool adadelta = p.schedule == Schedule::Adadelta;
    if (adadelta && (!users.embedding_step || !users.bias_step || !items.embedding_step || !items.bias_step))
        throw std::invalid_argument("adadelta needs the step accumulators");
    if (negatives == nullptr) n_negatives = R.n_cols;
    for (int64_t t = 0; negatives != nullptr && t < n_negatives; ++t) {
        if (negatives[t] < 0 || negatives[t] >= R.n_cols) throw std::out_of_range("negative item outside [0, n_items)");
    }
    SideState us, is;
    us.s = &users;
    us.F = &Fu;
    us.alpha = p.user_alpha;
    is.s = &items;
    is.F = &Fi;
    is.alpha = p.item_alpha;
    EpochStats s = adadelta ? run_epoch<true>(R, us, is, f, p, negatives, n_negatives, epoch_index, n_threads)
                            : run_epoch<false>(R, us, is, f, p, negatives, n_negatives, epoch_index, n_threads);
    fold_scale(us, f, n_threads);
    fold_scale(is, f, n_threads);
    return s;
}

}  // namespace recforge::feature_mf
