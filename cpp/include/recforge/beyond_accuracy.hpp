// Beyond-accuracy metrics of recommendation lists: how widely and evenly they cover the
// catalog, how novel, diverse, personalised and popularity-biased they are, and serendipity.
// Lists are n_lists x list_len item indices with -1 for empty slots; an item repeated within a
// list counts once.
#pragma once

#include <cstdint>

#include "recforge/common/csr.hpp"

namespace recforge {

// counts[i] = number of lists that contain item i (n_items entries).
void item_frequencies(const int32_t* lists, int64_t n_lists, int64_t list_len, int64_t n_items,
                      int64_t* counts, int n_threads);

struct DistributionStats {
    double coverage;            // share of the catalog recommended to at least one list
    double entropy;             // Shannon entropy (bits) of the recommendation frequencies
    double normalized_entropy;  // entropy / log2(n_items)
    double gini;                // Gini index of the frequencies over the whole catalog
    double personalization;     // 1 - mean over list pairs of |L_u & L_v| / list_len
};

DistributionStats distribution_stats(const int64_t* counts, int64_t n_items, int64_t n_lists,
                                     int64_t list_len);

// out[u] = mean of item_values over the distinct items of list u (NaN for an empty list).
// With self-information as values this is novelty; with popularity percentiles or a long-tail
// indicator, the popularity-bias measures.
void list_mean(const int32_t* lists, int64_t n_lists, int64_t list_len, const double* item_values,
               int64_t n_items, double* out, int n_threads);

// Intra-list diversity: mean over pairs of distinct items in a list of 1 - cosine(v_i, v_j),
// from item vectors (n_items x dim, row-major). Lists with fewer than 2 items get NaN.
void intra_list_diversity_vectors(const int32_t* lists, int64_t n_lists, int64_t list_len,
                                  const float* vectors, int64_t n_items, int64_t dim, double* out,
                                  int n_threads);

// The same from co-occurrence: cosine of the items' user sets, given the items x users CSR of
// the training interactions (pattern only).
void intra_list_diversity_cooccurrence(const int32_t* lists, int64_t n_lists, int64_t list_len,
                                       const CsrView& item_users, double* out, int n_threads);

// Serendipity (Ge et al. 2010): share of the first `k` slots holding an item that is relevant
// (grade > rel_threshold) and not in the same row of `expected` (a primitive recommender's lists).
void serendipity(const int32_t* lists, int64_t n_lists, int64_t list_len, int k,
                 const CsrView& relevant, float rel_threshold, const int32_t* expected,
                 int64_t expected_len, double* out, int n_threads);

}  // namespace recforge
