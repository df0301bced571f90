// Content-based kernels: term weighting of a documents x terms count matrix (TF-IDF, BM25),
// weighted averages of item profiles (user preference vectors) and cosine scores between
// sparse profiles.
//
// TF-IDF follows scikit-learn's TfidfTransformer: tf is the raw count (or 1 + ln(count) with
// sublinear_tf), idf = ln((1 + n_docs) / (1 + df)) + 1 with smooth_idf, ln(n_docs / df) + 1
// without, and every row is L2-normalised when `normalize`. BM25 (Robertson and Zaragoza
// 2009) weights a term by idf = ln(1 + (n_docs - df + 0.5) / (df + 0.5)) times
// tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl)), |d| the document's total count.
#pragma once

#include <cstdint>
#include <vector>

#include "recforge/common/csr.hpp"

namespace recforge::content {

enum class Weighting : int { TfIdf = 0, Bm25 = 1 };

struct WeightingParams {
    Weighting kind = Weighting::TfIdf;
    bool smooth_idf = true;
    bool sublinear_tf = false;
    float k1 = 1.2f;
    float b = 0.75f;
    bool normalize = true;  // L2-normalise every row
};

// Number of documents (rows) containing each term (column) of `counts`: df has n_cols entries.
void document_frequency(const CsrView& counts, int64_t* df);

// idf of every term from its document frequency (terms with df = 0 get the idf of df = 0 as
// the formula gives it; BM25 and unsmoothed TF-IDF are finite only for df > 0).
void inverse_document_frequency(const int64_t* df, int64_t n_terms, int64_t n_docs, const WeightingParams& p,
                                float* idf);

// The weighted values of `counts` (same sparsity pattern, written to `values`). `avg_doc_len`
// is BM25's avgdl (ignored by TF-IDF); pass <= 0 to use the mean row sum of `counts`.
void weight_terms(const CsrView& counts, const float* idf, const WeightingParams& p, double avg_doc_len,
                  float* values, int n_threads);

// Sparse profiles P = diag(1 / sum_j |W_uj|) W X (W: users x items weights, X: items x
// features), or W X without the division when !average. Rows of W without entries (or whose
// weights sum to zero) give empty rows. Result as CSR with sorted indices.
struct SparseRows {
    std::vector<int64_t> indptr;
    std::vector<int32_t> indices;
    std::vector<float> values;
};
SparseRows weighted_profiles(const CsrView& W, const CsrView& X, bool average, int n_threads);

// Cosine scores out[q * n_out + t] = <Q_q, X_r> / (|Q_q| |X_r|) for the rows r of X listed in
// `rows` (n_out of them; rows == nullptr: all rows of X, n_out = X.n_rows). Zero where a norm
// is zero. Q and X must have the same number of columns.
void cosine_scores(const CsrView& Q, const CsrView& X, const int32_t* rows, int64_t n_out, float* out,
                   int n_threads);

// Row L2 norms of a CSR matrix.
void row_norms(const CsrView& X, float* norms, int n_threads);

}  // namespace recforge::content
