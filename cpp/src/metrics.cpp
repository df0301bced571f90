#include "recforge/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"

namespace recforge {
namespace {

// Per-worker lookup of one query's relevance grades by item, reset in O(row) by stamping.
struct RelevanceLookup {
    std::vector<int64_t> stamp;
    std::vector<float> grade;
    std::vector<int64_t> used;  // stamp of the list position that already counted an item
    explicit RelevanceLookup(int64_t n_items)
        : stamp(static_cast<size_t>(n_items), 0),
          grade(static_cast<size_t>(n_items), 0.0f),
          used(static_cast<size_t>(n_items), 0) {}
};

void check_lists(const int32_t* lists, int64_t n_queries, int64_t list_len, const CsrView& relevant) {
    if (list_len < 0) throw std::invalid_argument("negative list length");
    if (!relevant.present()) throw std::invalid_argument("relevance matrix is required");
    if (relevant.n_rows != n_queries)
        throw std::invalid_argument("relevance has " + std::to_string(relevant.n_rows) +
                                    " rows but there are " + std::to_string(n_queries) + " ranked lists");
    relevant.validate("relevant");
    const int64_t total = n_queries * list_len;
    for (int64_t i = 0; i < total; ++i) {
        if (lists[i] < -1 || lists[i] >= relevant.n_cols)
            throw std::out_of_range("ranked item " + std::to_string(lists[i]) + " outside [0, " +
                                    std::to_string(relevant.n_cols) + ") (use -1 for an empty slot)");
    }
}

double gain_of(float grade, Gain gain) {
    switch (gain) {
        case Gain::Exp2: return std::exp2(static_cast<double>(grade)) - 1.0;
        case Gain::Binary: return 1.0;
        case Gain::Linear:
        default: return static_cast<double>(grade);
    }
}

}  // namespace

void ranking_metrics(const int32_t* lists, int64_t n_queries, int64_t list_len,
                     const CsrView& relevant, const RankingOptions& options, double* out,
                     int64_t* n_relevant, int n_threads) {
    if (options.k <= 0) throw std::invalid_argument("k must be positive, got " + std::to_string(options.k));
    check_lists(lists, n_queries, list_len, relevant);
    if (relevant.data == nullptr) throw std::invalid_argument("relevance grades are required");
    const int k = options.k;
    const int64_t depth = std::min<int64_t>(k, list_len);
    std::vector<double> discount(static_cast<size_t>(k));
    for (int i = 0; i < k; ++i) discount[static_cast<size_t>(i)] = 1.0 / std::log2(i + 2.0);

    constexpr int64_t kChunk = 64;
    const int workers = planned_workers(n_queries, n_threads, kChunk);
    std::vector<RelevanceLookup> lookups;
    lookups.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) lookups.emplace_back(relevant.n_cols);
    std::vector<std::vector<double>> ideal(static_cast<size_t>(workers));

    parallel_for(
        0, n_queries, workers,
        [&](int64_t q, int worker) {
            RelevanceLookup& look = lookups[static_cast<size_t>(worker)];
            std::vector<double>& gains = ideal[static_cast<size_t>(worker)];
            gains.clear();
            const int64_t stamp = q + 1;
            int64_t n_rel = 0;
            for (int64_t p = relevant.row_begin(q); p < relevant.row_end(q); ++p) {
                const float g = relevant.data[p];
                if (std::isnan(g)) throw std::invalid_argument("relevance grades contain NaN");
                if (!(g > options.rel_threshold)) continue;
                const auto item = static_cast<size_t>(relevant.indices[p]);
                if (look.stamp[item] == stamp) continue;  // repeated entry: counted once
                look.stamp[item] = stamp;
                look.grade[item] = g;
                gains.push_back(gain_of(g, options.gain));
                ++n_rel;
            }
            n_relevant[q] = n_rel;
            double* metric[kNumRankingMetrics];
            for (int m = 0; m < kNumRankingMetrics; ++m) metric[m] = out + m * n_queries + q;
            if (n_rel == 0) {
                for (int m = 0; m < kNumRankingMetrics; ++m) *metric[m] = 0.0;
                return;
            }
            const int32_t* list = lists + q * list_len;
            int64_t hits = 0;
            double dcg = 0.0, ap_sum = 0.0, rr = 0.0;
            for (int64_t i = 0; i < depth; ++i) {
                const int32_t item = list[i];
                if (item < 0) continue;
                const auto it = static_cast<size_t>(item);
                if (look.stamp[it] != stamp || look.used[it] == stamp) continue;
                look.used[it] = stamp;
                ++hits;
                dcg += gain_of(look.grade[it], options.gain) * discount[static_cast<size_t>(i)];
                ap_sum += static_cast<double>(hits) / static_cast<double>(i + 1);
                if (rr == 0.0) rr = 1.0 / static_cast<double>(i + 1);
            }
            const int64_t n_ideal = std::min<int64_t>(k, n_rel);
            std::partial_sort(gains.begin(), gains.begin() + n_ideal, gains.end(), std::greater<double>());
            double idcg = 0.0;
            for (int64_t i = 0; i < n_ideal; ++i) idcg += gains[static_cast<size_t>(i)] * discount[static_cast<size_t>(i)];
            const double ap_den = options.ap_denominator == ApDenominator::MinNRelK
                                      ? static_cast<double>(std::min<int64_t>(n_rel, k))
                                      : static_cast<double>(n_rel);
            *metric[kPrecision] = static_cast<double>(hits) / static_cast<double>(k);
            *metric[kRecall] = static_cast<double>(hits) / static_cast<double>(n_rel);
            *metric[kNdcg] = idcg > 0.0 ? dcg / idcg : 0.0;
            *metric[kAveragePrecision] = ap_sum / ap_den;
            *metric[kReciprocalRank] = rr;
            *metric[kHitRate] = hits > 0 ? 1.0 : 0.0;
        },
        kChunk);
}

void ranking_auc(const int32_t* lists, int64_t n_queries, int64_t list_len, const CsrView& relevant,
                 const CsrView& exclude, float rel_threshold, double* out, int n_threads) {
    check_lists(lists, n_queries, list_len, relevant);
    if (exclude.present()) {
        if (exclude.n_rows != n_queries || exclude.n_cols != relevant.n_cols)
            throw std::invalid_argument("exclude must have the same shape as the relevance matrix");
        exclude.validate("exclude");
    }
    const int64_t n_items = relevant.n_cols;
    constexpr int64_t kChunk = 64;
    const int workers = planned_workers(n_queries, n_threads, kChunk);
    // stamp codes per item: 2q+1 relevant, 2q+2 excluded; `seen` marks items already walked.
    std::vector<std::vector<int64_t>> kind(static_cast<size_t>(workers)), seen(static_cast<size_t>(workers));
    parallel_for(
        0, n_queries, workers,
        [&](int64_t q, int worker) {
            auto& kd = kind[static_cast<size_t>(worker)];
            auto& sn = seen[static_cast<size_t>(worker)];
            if (kd.empty() && n_items > 0) {
                kd.assign(static_cast<size_t>(n_items), 0);
                sn.assign(static_cast<size_t>(n_items), 0);
            }
            const int64_t rel_code = 2 * q + 1, excl_code = 2 * q + 2;
            int64_t n_pos = 0, n_excl = 0;
            for (int64_t p = relevant.row_begin(q); p < relevant.row_end(q); ++p) {
                const float g = relevant.data ? relevant.data[p] : 1.0f;
                if (std::isnan(g)) throw std::invalid_argument("relevance grades contain NaN");
                const auto item = static_cast<size_t>(relevant.indices[p]);
                if (g > rel_threshold && kd[item] != rel_code) {
                    kd[item] = rel_code;
                    ++n_pos;
                }
            }
            if (exclude.present()) {
                for (int64_t p = exclude.row_begin(q); p < exclude.row_end(q); ++p) {
                    const auto item = static_cast<size_t>(exclude.indices[p]);
                    if (kd[item] != rel_code && kd[item] != excl_code) {
                        kd[item] = excl_code;
                        ++n_excl;
                    }
                }
            }
            const int64_t n_neg = n_items - n_pos - n_excl;
            if (n_pos == 0 || n_neg <= 0) {
                out[q] = std::numeric_limits<double>::quiet_NaN();
                return;
            }
            const int32_t* list = lists + q * list_len;
            double correct = 0.0;
            int64_t neg_above = 0, pos_listed = 0;
            for (int64_t i = 0; i < list_len; ++i) {
                const int32_t item = list[i];
                if (item < 0) continue;
                const auto it = static_cast<size_t>(item);
                if (sn[it] == q + 1) continue;
                sn[it] = q + 1;
                if (kd[it] == excl_code) continue;
                if (kd[it] == rel_code) {
                    correct += static_cast<double>(n_neg - neg_above);
                    ++pos_listed;
                } else {
                    ++neg_above;
                }
            }
            // Unlisted positives tie with every unlisted negative.
            correct += 0.5 * static_cast<double>(n_pos - pos_listed) * static_cast<double>(n_neg - neg_above);
            out[q] = correct / (static_cast<double>(n_pos) * static_cast<double>(n_neg));
        },
        kChunk);
}

}  // namespace recforge
