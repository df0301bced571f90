// Neighbourhood collaborative filtering kernels.
//
// * similarity_topk: similarities between the rows of a sparse matrix (items x users for
//   item-item, users x items for user-user), keeping the best k per row, so the result takes
//   O(rows x k) memory. For each row it accumulates dot products (and, for the co-rated
//   measures, the sums they need) with every co-occurring row through the transposed matrix,
//   in a per-thread sparse accumulator, then selects the top k.
// * sparse_topk_scores: top-n of the rows of A x B (A: queries x m, B: m x n, both sparse),
//   e.g. a user's history times the item-item similarity, never materialising dense rows.
// * knn_predict: rating prediction from the k nearest neighbours that rated the target
//   (the KNNBasic / KNNWithMeans / KNNWithZScore / KNNBaseline family).
// * baseline_als / baseline_sgd: user and item biases around the global mean.
#pragma once

#include <cstdint>
#include <vector>

#include "recforge/common/csr.hpp"
#include "recforge/topk.hpp"

namespace recforge {

enum class Similarity : int {
    Dot = 0,               // <x_i, x_j>
    Cosine = 1,            // <x_i, x_j> / (|x_i| |x_j|)
    AdjustedCosine = 2,    // cosine after subtracting each column's mean
    Pearson = 3,           // cosine after subtracting each row's mean
    Jaccard = 4,           // |S_i & S_j| / |S_i | S_j| on the sparsity pattern
    AsymmetricCosine = 5,  // <x_i, x_j> / (|x_i|^(2 alpha) |x_j|^(2 (1 - alpha)))
    Msd = 6,               // 1 / (1 + mean squared difference over co-rated columns)
    PearsonBaseline = 7,   // cosine of residuals r - (mu + b_row + b_col) over co-rated columns
    Bm25 = 8,              // dot product of BM25-weighted rows
    Tfidf = 9,             // cosine of TF-IDF-weighted rows
};
constexpr int kNumSimilarities = 10;

struct SimilarityOptions {
    Similarity kind = Similarity::Cosine;
    // Norms, means and sums over the co-rated columns of each pair only (the classic
    // rating-prediction definitions) rather than over whole rows. Msd and PearsonBaseline
    // are always co-rated; Dot, Jaccard, Bm25 and Tfidf ignore it.
    bool co_rated = false;
    int k = 100;                 // neighbours kept per row; <= 0 keeps every non-zero one
    bool include_self = false;   // let a row be its own neighbour (competes like any other)
    bool positive_only = false;  // keep only similarities > 0
    double shrink = 0.0;         // multiply by n / (n + shrink), n = co-support
    int min_support = 1;         // pairs with fewer co-rated columns get no similarity
    double alpha = 0.5;          // AsymmetricCosine
    double bm25_k1 = 1.2;
    double bm25_b = 0.75;
    // PearsonBaseline: baseline of entry (r, c) is global_mean + row_bias[r] + col_bias[c].
    double global_mean = 0.0;
    const double* row_bias = nullptr;
    const double* col_bias = nullptr;
};

// A CSR result owned by C++ (copied out by the bindings).
struct SparseResult {
    std::vector<int64_t> indptr;
    std::vector<int32_t> indices;
    std::vector<float> data;
};

// Similarities of the rows `rows[0..n_rows_query)` of x (all rows when rows is null) against
// every row of x. Row q of the result holds the neighbours of x's row rows[q], sorted by
// column index. x.data is required. Throws std::invalid_argument / std::out_of_range.
SparseResult similarity_topk(const CsrView& x, const int32_t* rows, int64_t n_rows_query,
                             const SimilarityOptions& options, int n_threads);

// The entry weights a similarity uses before its dot products (BM25, TF-IDF, centring),
// written to out[0..nnz); for inspection and tests.
void similarity_weights(const CsrView& x, const SimilarityOptions& options, double* out);

enum class ScoreNormalization : int {
    None = 0,
    ByB = 1,  // divide by the sum of |B[m, j]| over the m in the query's row of A
    ByA = 2,  // divide by the sum of |A[q, m]| over the m with B[m, j] != 0
};

// scores[q, j] = sum_m A[q, m] * B[m, j] (optionally normalised); writes the top k of every
// row to out. Items never reached score 0 and take part like the others, so a query with an
// empty row of A still gets k items (ties broken by the smaller index). exclude (pattern only)
// and candidates restrict the items as in topk_dot.
void sparse_topk_scores(const CsrView& a, const CsrView& b, ScoreNormalization normalization,
                        int k, const CsrView& exclude, const int32_t* candidates,
                        int64_t n_candidates, TopKOutput out, int n_threads);

enum class KnnPrediction : int { Basic = 0, WithMeans = 1, WithZScore = 2, Baseline = 3 };

struct KnnPredictOptions {
    KnnPrediction kind = KnnPrediction::Basic;
    int k = 40;
    int min_k = 1;
    double global_mean = 0.0;
    const double* x_mean = nullptr;   // WithMeans, WithZScore: mean rating of each x
    const double* x_sigma = nullptr;  // WithZScore: standard deviation of each x (never 0)
    const double* x_bias = nullptr;   // Baseline: bias of each x
    const double* y_bias = nullptr;   // Baseline: bias of each y
};

// Predictions for pairs (x, y), where x is the entity of the similarity (a user for
// user-based, an item for item-based) and y the other one. Pairs come grouped by x:
// group g is x = group_x[g] with targets y = query_y[group_ptr[g] .. group_ptr[g + 1]).
// sim: n_x x n_x similarity rows; y_ratings: n_y x n_x, row y = the x that rated y and their
// ratings. out gets the estimate (NaN where Basic has fewer than min_k neighbours) and
// actual_k the number of neighbours used.
void knn_predict(const CsrView& sim, const CsrView& y_ratings, const int32_t* group_x,
                 const int64_t* group_ptr, int64_t n_groups, const int32_t* query_y,
                 const KnnPredictOptions& options, double* out, int32_t* actual_k, int n_threads);

// Biases b_u, b_i minimising the regularised squared error of r - (mu + b_u + b_i).
// ratings: users x items CSR with the ratings as data; items_by_user is the same matrix
// transposed (items x users). ALS alternates closed-form item and user steps
// (b_i = sum(r - mu - b_u) / (reg_i + n_i), then the users alike), starting from zero.
void baseline_als(const CsrView& ratings, const CsrView& ratings_t, double global_mean, int n_epochs,
                  double reg_u, double reg_i, double* user_bias, double* item_bias, int n_threads);

// Plain SGD over the ratings in CSR order (user by user), n_epochs passes, from zero biases.
// Sequential by nature, so it is single-threaded and deterministic.
void baseline_sgd(const CsrView& ratings, double global_mean, int n_epochs, double reg,
                  double learning_rate, double* user_bias, double* item_bias);

}  // namespace recforge
