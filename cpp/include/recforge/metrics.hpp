// Ranking metrics over top-k lists and a CSR of held-out relevance grades.
//
// Defaults follow trec_eval: linear gain (the grade itself), IDCG over all relevant items
// truncated at k, average precision divided by the number of relevant items, and a query with
// no relevant items scores 0 (the caller decides whether to keep, skip or score such queries 1;
// `n_relevant` tells which they are).
#pragma once

#include <cstdint>

#include "recforge/common/csr.hpp"

namespace recforge {

enum class Gain : int { Linear = 0, Exp2 = 1, Binary = 2 };
enum class ApDenominator : int { NRel = 0, MinNRelK = 1 };

struct RankingOptions {
    int k = 10;
    Gain gain = Gain::Linear;
    ApDenominator ap_denominator = ApDenominator::NRel;
    float rel_threshold = 0.0f;  // an item is relevant when its grade is > rel_threshold
};

// Metric rows of the output, each n_queries long.
enum RankingMetric : int {
    kPrecision = 0,
    kRecall = 1,
    kNdcg = 2,
    kAveragePrecision = 3,
    kReciprocalRank = 4,
    kHitRate = 5,
    kNumRankingMetrics = 6,
};

// lists: n_queries x list_len item indices, best first; -1 marks an empty slot. Only the first
// k entries are read (k may exceed list_len: missing slots count as non-relevant). A repeated
// item counts once, at its first position. relevant: n_queries x n_items CSR of grades.
// out: kNumRankingMetrics x n_queries, row-major. n_relevant: n_queries counts of relevant items.
void ranking_metrics(const int32_t* lists, int64_t n_queries, int64_t list_len,
                     const CsrView& relevant, const RankingOptions& options, double* out,
                     int64_t* n_relevant, int n_threads);

// ROC AUC of each query's ranking: listed items in list order, every unlisted item tied below
// them (a tie counts one half). Items in `exclude` (e.g. training items) are neither positives
// nor negatives. Queries without positives or without negatives get NaN.
void ranking_auc(const int32_t* lists, int64_t n_queries, int64_t list_len, const CsrView& relevant,
                 const CsrView& exclude, float rel_threshold, double* out, int n_threads);

}  // namespace recforge
