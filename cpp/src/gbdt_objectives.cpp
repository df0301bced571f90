// Gradients of the boosting objectives and the grouped ranking evaluation used for early
// stopping. See recforge/ranking/gbdt.hpp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/common/random.hpp"
#include "recforge/metrics.hpp"
#include "recforge/ranking/gbdt.hpp"

namespace recforge::gbdt {
namespace {

inline double discount(int64_t rank) { return 1.0 / std::log2(2.0 + static_cast<double>(rank)); }

// 1 / (1 + exp(x)) from a table with linear interpolation on [-kSigRange, kSigRange]
// (absolute error below 1e-6), exact outside it.
constexpr double kSigRange = 16.0;
constexpr int kSigSteps = 4096;
const std::vector<double>& sigmoid_table() {
    static const std::vector<double> table = [] {
        std::vector<double> t(kSigSteps + 2);
        for (int i = 0; i <= kSigSteps + 1; ++i) {
            const double x = -kSigRange + 2.0 * kSigRange * i / kSigSteps;
            t[i] = 1.0 / (1.0 + std::exp(x));
        }
        return t;
    }();
    return table;
}
inline double logistic_tail(double x, const double* table) {
    if (x <= -kSigRange || x >= kSigRange) return 1.0 / (1.0 + std::exp(x));
    const double pos = (x + kSigRange) * (kSigSteps / (2.0 * kSigRange));
    const int i = static_cast<int>(pos);
    const double f = pos - i;
    return table[i] + f * (table[i + 1] - table[i]);
}

// Per-worker discounts 1 / log2(2 + rank), grown on demand.
void ensure_discounts(std::vector<double>& d, int64_t n) {
    const int64_t have = static_cast<int64_t>(d.size());
    if (have >= n) return;
    d.resize(static_cast<size_t>(n));
    for (int64_t i = have; i < n; ++i) d[i] = discount(i);
}


// Indices 0..n-1 by descending score, ties in input order.
void order_by_score(const double* s, int64_t n, std::vector<int64_t>& order) {
    order.resize(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [s](int64_t a, int64_t b) { return s[a] > s[b]; });
}

std::vector<double> gain_table(const ObjectiveParams& p) {
    if (!p.label_gain.empty()) return p.label_gain;
    std::vector<double> g(31);
    for (int i = 0; i < 31; ++i) g[i] = std::exp2(static_cast<double>(i)) - 1.0;
    return g;
}

int label_index(float y, size_t n_gains) {
    if (!(y >= 0) || y != std::floor(y) || y >= static_cast<float>(n_gains))
        throw std::invalid_argument("lambdarank labels must be integers in [0, " + std::to_string(n_gains) +
                                    ") (the length of label_gain), got " + std::to_string(y));
    return static_cast<int>(y);
}

// DCG of the ideal order of the labels `lab` down to `truncation` (gains by label, largest first).
double max_dcg_at(const std::vector<int>& lab, int64_t truncation, const std::vector<double>& gains,
                  const std::vector<double>& disc, std::vector<int>& sorted) {
    sorted.assign(lab.begin(), lab.end());
    std::sort(sorted.begin(), sorted.end(), std::greater<int>());
    double max_dcg = 0.0;
    const int64_t top = std::min<int64_t>(static_cast<int64_t>(sorted.size()), truncation);
    for (int64_t i = 0; i < top; ++i) max_dcg += gains[sorted[i]] * disc[i];
    return max_dcg;
}

// The logistic 1 / (1 + exp(sigma x)) at x rounded down to a grid of 2^20 points over
// [-25 / sigma, 25 / sigma] (clamped outside it): the values of LightGBM's lookup table, computed
// the same way in double precision, so that lambdarank's gradients agree with LightGBM's to the
// last bit. The grid step, 5e-5 / sigma, changes the logistic by at most 1.2e-5.
struct GridLogistic {
    static constexpr size_t kPoints = size_t(1) << 20;
    double sigma, lo, hi, factor;
    explicit GridLogistic(double s) : sigma(s) {
        lo = -50.0 / sigma / 2;
        hi = -lo;
        factor = static_cast<double>(kPoints) / (hi - lo);
    }
    double operator()(double x) const {
        size_t i;
        if (x <= lo)
            i = 0;
        else if (x >= hi)
            i = kPoints - 1;
        else
            i = static_cast<size_t>((x - lo) * factor);
        const double at = static_cast<double>(i) / factor + lo;
        return 1.0 / (1.0 + std::exp(at * sigma));
    }
};

// The training gradients of one lambdarank query with LightGBM's arithmetic: the same
// order of operations, the logistic on its grid (GridLogistic), the per-document sums kept in
// float32 and 0.01 as a float32 constant. `inv_max_dcg` is 1 / (max DCG at the truncation).
void lambdarank_lightgbm(const double* s, const float* y, int64_t n, const ObjectiveParams& p,
                         const std::vector<double>& gains, const std::vector<int>& lab, double inv_max_dcg,
                         const GridLogistic& logistic, const std::vector<double>& disc, std::vector<int64_t>& order,
                         float* gh) {
    for (int64_t i = 0; i < n; ++i) gh[2 * i] = gh[2 * i + 1] = 0.0f;
    order_by_score(s, n, order);
    const double sigma = p.sigmoid;
    const double best = s[order[0]], worst = s[order[n - 1]];
    const int64_t top = std::min<int64_t>(n - 1, p.truncation_level);
    constexpr double kShift = static_cast<double>(0.01f);
    double sum_lambdas = 0.0;
    for (int64_t i = 0; i < top; ++i) {
        for (int64_t j = i + 1; j < n; ++j) {
            const int64_t a = order[i], b = order[j];
            if (y[a] == y[b]) continue;
            const bool a_high = y[a] > y[b];
            const int64_t high_rank = a_high ? i : j, low_rank = a_high ? j : i;
            const int64_t high = order[high_rank], low = order[low_rank];
            const double delta = s[high] - s[low];
            double w = (gains[lab[high]] - gains[lab[low]]) * std::fabs(disc[high_rank] - disc[low_rank]) * inv_max_dcg;
            if (p.normalize && best != worst) w /= kShift + std::fabs(delta);
            const double pr = logistic(delta);
            const double lambda = pr * (-sigma * w);
            const double hess = pr * (1.0 - pr) * (sigma * sigma * w);
            gh[2 * low] -= static_cast<float>(lambda);
            gh[2 * low + 1] += static_cast<float>(hess);
            gh[2 * high] += static_cast<float>(lambda);
            gh[2 * high + 1] += static_cast<float>(hess);
            sum_lambdas -= 2 * lambda;
        }
    }
    if (p.normalize && sum_lambdas > 0) {
        const double factor = std::log2(1 + sum_lambdas) / sum_lambdas;
        for (int64_t i = 0; i < 2 * n; ++i) gh[i] = static_cast<float>(gh[i] * factor);
    }
}

// One query of LambdaMART (Burges 2010) as LightGBM computes it. The order, the |dNDCG|
// weights, the 1/(0.01 + |ds|) normalization and the final log2(1 + sum)/sum scaling are taken
// at `ref`; the pairwise logistic terms at `cur` (ref == cur for training). Adds the loss of
// the weighted pairs at `cur` to *loss when loss is not null.
void lambdarank_query(const double* ref, const double* cur, const float* y, int64_t n, const ObjectiveParams& p,
                      const std::vector<double>& gains, bool ndcg_weights, float* gh, double* loss,
                      std::vector<int64_t>& order, std::vector<double>& lam, std::vector<double>& hes,
                      std::vector<double>& disc) {
    ensure_discounts(disc, n);
    const double* table = sigmoid_table().data();
    const bool same = ref == cur && loss == nullptr;
    lam.assign(static_cast<size_t>(n), 0.0);
    hes.assign(static_cast<size_t>(n), 0.0);
    std::vector<int> lab(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) lab[i] = ndcg_weights ? label_index(y[i], gains.size()) : 0;
    double inv_max_dcg = 1.0;
    if (ndcg_weights) {
        std::vector<int> sorted(lab);
        std::sort(sorted.begin(), sorted.end(), std::greater<int>());
        double max_dcg = 0.0;
        const int64_t top = std::min<int64_t>(n, p.truncation_level);
        for (int64_t i = 0; i < top; ++i) max_dcg += gains[sorted[i]] * disc[i];
        if (max_dcg <= 0.0) {
            for (int64_t i = 0; i < n; ++i) {
                if (gh) gh[2 * i] = gh[2 * i + 1] = 0.0f;
            }
            return;
        }
        inv_max_dcg = 1.0 / max_dcg;
    }
    order_by_score(ref, n, order);
    const double sigma = p.sigmoid;
    const double best = ref[order[0]], worst = ref[order[n - 1]];
    const bool norm = ndcg_weights && p.normalize;
    const int64_t top = ndcg_weights ? std::min<int64_t>(n - 1, p.truncation_level) : n - 1;
    double sum_lambdas = 0.0, total_loss = 0.0;
    for (int64_t i = 0; i < top; ++i) {
        const int64_t a = order[i];
        for (int64_t j = i + 1; j < n; ++j) {
            const int64_t b = order[j];
            if (y[a] == y[b]) continue;
            const bool a_high = y[a] > y[b];
            const int64_t high = a_high ? a : b, low = a_high ? b : a;
            const int64_t high_rank = a_high ? i : j, low_rank = a_high ? j : i;
            double w = 1.0;
            if (ndcg_weights) {
                const double gap = gains[lab[high]] - gains[lab[low]];
                w = gap * std::fabs(disc[high_rank] - disc[low_rank]) * inv_max_dcg;
                if (norm && best != worst) w /= 0.01 + std::fabs(ref[high] - ref[low]);
            }
            const double d_ref = ref[high] - ref[low];
            const double d = cur[high] - cur[low];
            const double p_ref = logistic_tail(sigma * d_ref, table);
            const double pc = same ? p_ref : logistic_tail(sigma * d, table);
            const double lambda = -sigma * w * pc;
            const double hess = sigma * sigma * w * pc * (1.0 - pc);
            lam[low] -= lambda;
            lam[high] += lambda;
            hes[low] += hess;
            hes[high] += hess;
            sum_lambdas += 2.0 * sigma * w * p_ref;
            if (loss) {
                const double z = -sigma * d;  // log(1 + e^z), stable
                total_loss += w * (z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)));
            }
        }
    }
    double factor = 1.0;
    if (norm && sum_lambdas > 0) factor = std::log2(1.0 + sum_lambdas) / sum_lambdas;
    if (gh) {
        for (int64_t i = 0; i < n; ++i) {
            gh[2 * i] = static_cast<float>(lam[i] * factor);
            gh[2 * i + 1] = static_cast<float>(hes[i] * factor);
        }
    }
    if (loss) *loss += total_loss * factor;
}

// XE-NDCG (Bruch 2019): softmax cross-entropy against the target distribution
// phi_i / sum(phi), phi_i = 2^label_i - gamma_i with gamma_i ~ U[0, 1) drawn per iteration.
void xendcg_query(const double* s, const float* y, int64_t n, uint64_t stream, float* gh, double* loss) {
    std::vector<double> rho(static_cast<size_t>(n)), phi(static_cast<size_t>(n));
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, s[i]);
    double z = 0.0, sum_phi = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        rho[i] = std::exp(s[i] - mx);
        z += rho[i];
        const double gamma = static_cast<double>(mix64(stream + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
        phi[i] = std::exp2(static_cast<double>(y[i])) - gamma;
        sum_phi += phi[i];
    }
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        rho[i] /= z;
        const double target = phi[i] / sum_phi;
        if (gh) {
            gh[2 * i] = static_cast<float>(rho[i] - target);
            gh[2 * i + 1] = static_cast<float>(rho[i] * (1.0 - rho[i]));
        }
        if (loss) total -= target * (s[i] - mx - std::log(z));
    }
    if (loss) *loss += total;
}

void check_groups(const int64_t* offsets, int64_t n_groups, int64_t n_rows) {
    if (n_groups < 0) throw std::invalid_argument("negative number of groups");
    if (offsets[0] != 0 || offsets[n_groups] != n_rows)
        throw std::invalid_argument("group offsets must run from 0 to the number of rows (" + std::to_string(n_rows) + ")");
    for (int64_t q = 0; q < n_groups; ++q)
        if (offsets[q + 1] < offsets[q]) throw std::invalid_argument("group offsets must be non-decreasing");
}

}  // namespace

void gradients(Objective objective, const double* scores, const float* labels, int64_t n_rows,
               const int64_t* group_offsets, int64_t n_groups, const ObjectiveParams& params, float* gh,
               int n_threads) {
    switch (objective) {
        case Objective::Regression:
            parallel_for(0, n_rows, n_threads, [&](int64_t r, int) {
                gh[2 * r] = static_cast<float>(scores[r] - labels[r]);
                gh[2 * r + 1] = 1.0f;
            }, 4096);
            return;
        case Objective::Binary: {
            const double sg = params.sigmoid;
            parallel_for(0, n_rows, n_threads, [&](int64_t r, int) {
                const double y = labels[r] > 0 ? 1.0 : 0.0;
                const double p = 1.0 / (1.0 + std::exp(-sg * scores[r]));
                gh[2 * r] = static_cast<float>(sg * (p - y));
                gh[2 * r + 1] = static_cast<float>(std::max(sg * sg * p * (1.0 - p), 1e-16));
            }, 4096);
            return;
        }
        default: break;
    }
    check_groups(group_offsets, n_groups, n_rows);
    const std::vector<double> gains = gain_table(params);
    const int workers = planned_workers(n_groups, n_threads, 8);
    std::vector<std::vector<int64_t>> orders(workers);
    std::vector<std::vector<double>> lams(workers), hess(workers), discs(workers);
    std::vector<std::vector<int>> labs(workers), sorted_labs(workers);
    const GridLogistic logistic(params.sigmoid);
    const int64_t p_trunc = params.truncation_level;
    parallel_for(0, n_groups, n_threads, [&](int64_t q, int w) {
        const int64_t lo = group_offsets[q], n = group_offsets[q + 1] - lo;
        if (n == 0) return;
        float* g = gh + 2 * lo;
        if (objective == Objective::RankXendcg) {
            const uint64_t stream = mix64(mix64(params.seed ^ mix64(static_cast<uint64_t>(params.iteration))) + static_cast<uint64_t>(q)) ;
            xendcg_query(scores + lo, labels + lo, n, stream, g, nullptr);
        } else if (objective == Objective::LambdaRank) {
            const float* y = labels + lo;
            std::vector<int>& lab = labs[w];
            lab.resize(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) lab[i] = label_index(y[i], gains.size());
            ensure_discounts(discs[w], n);
            const double max_dcg = max_dcg_at(lab, p_trunc, gains, discs[w], sorted_labs[w]);
            if (max_dcg <= 0.0) {
                for (int64_t i = 0; i < 2 * n; ++i) g[i] = 0.0f;
                return;
            }
            lambdarank_lightgbm(scores + lo, y, n, params, gains, lab, 1.0 / max_dcg, logistic, discs[w], orders[w], g);
        } else {
            lambdarank_query(scores + lo, scores + lo, labels + lo, n, params, gains, false, g, nullptr, orders[w],
                             lams[w], hess[w], discs[w]);
        }
    }, 8);
}

double objective_loss(Objective objective, const double* scores, const float* labels, int64_t n_rows,
                      const int64_t* group_offsets, int64_t n_groups, const ObjectiveParams& params,
                      const double* fixed_weights_from) {
    double total = 0.0;
    if (objective == Objective::Regression) {
        for (int64_t r = 0; r < n_rows; ++r) total += 0.5 * (scores[r] - labels[r]) * (scores[r] - labels[r]);
        return total;
    }
    if (objective == Objective::Binary) {
        for (int64_t r = 0; r < n_rows; ++r) {
            const double y = labels[r] > 0 ? 1.0 : 0.0;
            const double z = params.sigmoid * scores[r];
            // -y log p - (1 - y) log(1 - p), p = sigmoid(z)
            const double softplus = z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
            total += softplus - y * z;
        }
        return total;
    }
    check_groups(group_offsets, n_groups, n_rows);
    const std::vector<double> gains = gain_table(params);
    std::vector<int64_t> order;
    std::vector<double> lam, hes, disc;
    for (int64_t q = 0; q < n_groups; ++q) {
        const int64_t lo = group_offsets[q], n = group_offsets[q + 1] - lo;
        if (n == 0) continue;
        if (objective == Objective::RankXendcg) {
            const uint64_t stream = mix64(mix64(params.seed ^ mix64(static_cast<uint64_t>(params.iteration))) + static_cast<uint64_t>(q));
            xendcg_query(scores + lo, labels + lo, n, stream, nullptr, &total);
        } else {
            const double* ref = fixed_weights_from ? fixed_weights_from + lo : scores + lo;
            lambdarank_query(ref, scores + lo, labels + lo, n, params, gains, objective == Objective::LambdaRank,
                             nullptr, &total, order, lam, hes, disc);
        }
    }
    return total;
}

double rank_metric(RankMetric metric, const double* scores, const float* labels, const int64_t* group_offsets,
                   int64_t n_groups, int k, double empty_score, int n_threads) {
    if (k <= 0) throw std::invalid_argument("k must be positive");
    if (n_groups <= 0) throw std::invalid_argument("there are no queries to evaluate");
    check_groups(group_offsets, n_groups, group_offsets[n_groups]);
    int64_t max_n = 0;
    for (int64_t q = 0; q < n_groups; ++q) max_n = std::max(max_n, group_offsets[q + 1] - group_offsets[q]);
    // Top-k lists of local document indices and the CSR of relevant documents.
    std::vector<int32_t> lists(static_cast<size_t>(n_groups * k), -1);
    std::vector<int64_t> indptr(static_cast<size_t>(n_groups + 1), 0);
    for (int64_t q = 0; q < n_groups; ++q) {
        int64_t c = 0;
        for (int64_t r = group_offsets[q]; r < group_offsets[q + 1]; ++r) c += labels[r] > 0 ? 1 : 0;
        indptr[q + 1] = indptr[q] + c;
    }
    std::vector<int32_t> indices(static_cast<size_t>(indptr[n_groups]));
    std::vector<float> grades(static_cast<size_t>(indptr[n_groups]));
    parallel_for(0, n_groups, n_threads, [&](int64_t q, int) {
        const int64_t lo = group_offsets[q], n = group_offsets[q + 1] - lo;
        int64_t p = indptr[q];
        for (int64_t i = 0; i < n; ++i) {
            if (labels[lo + i] > 0) {
                indices[p] = static_cast<int32_t>(i);
                grades[p] = labels[lo + i];
                ++p;
            }
        }
        std::vector<int32_t> idx(static_cast<size_t>(n));
        std::iota(idx.begin(), idx.end(), 0);
        const double* s = scores + lo;
        auto better = [s](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); };
        const int64_t top = std::min<int64_t>(k, n);
        std::partial_sort(idx.begin(), idx.begin() + top, idx.end(), better);
        for (int64_t i = 0; i < top; ++i) lists[q * k + i] = idx[i];
    }, 16);
    CsrView rel;
    rel.indptr = indptr.data();
    rel.indices = indices.data();
    rel.data = grades.data();
    rel.n_rows = n_groups;
    rel.n_cols = std::max<int64_t>(max_n, 1);
    RankingOptions opt;
    opt.k = k;
    opt.gain = Gain::Exp2;
    opt.ap_denominator = ApDenominator::MinNRelK;
    std::vector<double> out(static_cast<size_t>(kNumRankingMetrics * n_groups));
    std::vector<int64_t> n_rel(static_cast<size_t>(n_groups));
    ranking_metrics(lists.data(), n_groups, k, rel, opt, out.data(), n_rel.data(), n_threads);
    const double* row = out.data() + (metric == RankMetric::Ndcg ? kNdcg : kAveragePrecision) * n_groups;
    double sum = 0.0;
    int64_t used = 0;
    for (int64_t q = 0; q < n_groups; ++q) {
        if (group_offsets[q + 1] == group_offsets[q]) continue;  // a query without documents
        double v = row[q];
        if (n_rel[q] == 0) {
            if (std::isnan(empty_score)) continue;
            v = empty_score;
        }
        sum += v;
        ++used;
    }
    return used ? sum / static_cast<double>(used) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace recforge::gbdt
