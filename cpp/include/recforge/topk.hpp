// Exact batched top-k: by dot product of query factors against item factors (blocked, so memory
// stays bounded by the block size and never reaches users x items), or over dense score rows.
// Both exclude each query's listed items (a CSR, e.g. the items a user has seen) and can be
// restricted to a candidate set of items. Ties are broken by the smaller item index.
#pragma once

#include <cstdint>

#include "recforge/common/csr.hpp"

namespace recforge {

struct TopKOutput {
    int32_t* items;  // n_queries x k, row-major; -1 where fewer than k items remain
    float* scores;   // n_queries x k; -inf in the padded slots
};

// queries: n_queries x dim, items: n_items x dim, both row-major float32.
// exclude: optional CSR with n_queries rows and n_items columns (pattern only).
// candidates: optional list of item indices to search (n_candidates >= 0), or null for all.
void topk_dot(const float* queries, int64_t n_queries, const float* items, int64_t n_items,
              int64_t dim, int k, const CsrView& exclude, const int32_t* candidates,
              int64_t n_candidates, TopKOutput out, int n_threads);

// scores: n_queries x n_items row-major float32.
void topk_dense(const float* scores, int64_t n_queries, int64_t n_items, int k,
                const CsrView& exclude, const int32_t* candidates, int64_t n_candidates,
                TopKOutput out, int n_threads);

// Re-scoring of per-query candidate lists (e.g. from an approximate index): for each query the
// top-k of its own candidates (n_queries x n_cand item indices, -1 for an empty slot; repeats
// count once) by exact dot product, skipping excluded items.
void topk_candidates(const float* queries, int64_t n_queries, const float* items, int64_t n_items,
                     int64_t dim, const int32_t* candidates, int64_t n_cand, int k,
                     const CsrView& exclude, TopKOutput out, int n_threads);

namespace detail {

// Register-blocked tile kernel: scores of `rows` (<= tile_rows()) consecutive query rows against
// `n_panels` packed item panels of panel_width() items each, written to out[r * ld + j].
// The panel layout is [panel][dim][panel_width]. Chosen once at run time by CPU features.
struct TileKernel {
    int rows;          // register tile height
    int panel_width;   // items per packed panel
    void (*run)(const float* q, int64_t q_stride, int rows, const float* panels, int64_t n_panels,
                int64_t dim, float* out, int64_t ld);
    const char* name;
};

const TileKernel& tile_kernel();

}  // namespace detail
}  // namespace recforge
