// Histogram gradient-boosted decision trees for learning to rank (LambdaMART and friends).
//
// Features are pre-binned once: every feature gets up to max_bin value bins (LightGBM's rule,
// see find_bins; bin b holds the values x with upper[b-1] < x <= upper[b], the last upper edge
// is +inf) and, when the training data has NaN in that feature, one more bin for missing values.
// Bins are stored row-wise as uint8 (n_rows x n_features), so max_bin <= 255.
//
// A tree grows leaf-wise (best-first): the leaf whose best split gains most is split next, up
// to num_leaves leaves. A leaf's histogram holds per bin the sums of gradients, hessians and
// row counts; the smaller child's is built from its rows (threads over row blocks), the larger
// child's is the parent's minus the smaller's. The split of a feature at bin t sends bins
// <= t left; the missing bin goes to whichever side gains more (default_left). The split search
// is LightGBM's (grow_tree says how). With
// G, H the sums of a side, l1/l2 the regularization and T(G) = sign(G) max(|G| - l1, 0):
//
//     leaf value = -T(G) / (H + l2),  gain(side) = T(G)^2 / (H + l2),
//     split gain = gain(left) + gain(right) - gain(parent).
//
// Learned trees are flat arrays (see Forest), which is what the Python side stores.
#pragma once

#include <cstdint>
#include <vector>

namespace recforge::gbdt {

// ---------------------------------------------------------------------------------------------
// Binning
// ---------------------------------------------------------------------------------------------

struct BinEdges {
    std::vector<float> upper;         // concatenated upper edges, n_bins[f] per feature
    std::vector<int64_t> offsets;     // n_features + 1 offsets into upper
    std::vector<uint8_t> has_missing; // 1 when the feature has a missing bin (index n_bins[f])
};

// Bin edges from the rows of X (n_rows x n_features, row-major float32; NaN = missing), by
// LightGBM's rule (its GreedyFindBin within FindBinWithZeroAsOneBin): values x with
// |x| <= 1e-35 form one bin of their own, the negative and the positive values are binned apart
// and share the other bins in proportion to their rows. A side with few distinct values gets
// one bin per value, merging a value into the next while the bin holds fewer than
// min_data_in_bin rows; otherwise bins of about equal counts (a value that alone holds a bin's
// share gets a bin of its own) with at most rows / min_data_in_bin bins. An edge lies just above
// the midpoint of the values it separates (as float32: the largest float at or below it).
// With NaN in the feature, max_bin - 1 value bins and the missing bin. At most `sample_rows`
// rows (chosen evenly) are read. min_split_rows > 0 (LightGBM's feature_pre_filter): a
// feature that no bin edge splits into two sides of at least that many rows (scaled to the
// sample) gets a single bin and no missing bin, so it is never split.
BinEdges find_bins(const float* X, int64_t n_rows, int64_t n_features, int max_bin, int min_data_in_bin,
                   int64_t sample_rows, int64_t min_split_rows, int n_threads);

// Bin index of every value (row-major, n_rows x n_features); NaN goes to the missing bin, or
// to the bin of 0.0 when the feature had no NaN in training.
void apply_bins(const float* X, int64_t n_rows, int64_t n_features, const float* upper, const int64_t* offsets,
                const uint8_t* has_missing, uint8_t* out, int n_threads);

// ---------------------------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------------------------

struct Binned {
    const uint8_t* bins = nullptr;  // n_rows x n_features
    int64_t n_rows = 0;
    int64_t n_features = 0;
    const float* upper = nullptr;      // edges as in BinEdges
    const int64_t* offsets = nullptr;
    const uint8_t* has_missing = nullptr;
    int n_bins(int64_t f) const { return static_cast<int>(offsets[f + 1] - offsets[f]); }
};

struct TreeParams {
    int num_leaves = 31;
    int max_depth = -1;  // <= 0: no limit
    int64_t min_data_in_leaf = 20;
    double min_sum_hessian = 1e-3;
    double lambda_l1 = 0.0;
    double lambda_l2 = 0.0;
    double min_gain_to_split = 0.0;
    double learning_rate = 0.1;  // leaf values are multiplied by it
    // min_data_in_leaf on row counts estimated from hessians, count ~ hessian * n / H of the
    // leaf, as LightGBM does (its histograms hold no counts); false: exact counts.
    bool counts_from_hessian = true;
};

// One tree. Internal node i splits feature[i] at threshold_bin[i] (raw value threshold[i]):
// rows with bin <= threshold_bin (x <= threshold) go to left[i], the missing bin (NaN) to the
// left when default_left[i]. A child >= 0 is a node, a child < 0 is the leaf ~child.
// A tree without splits has no nodes and one leaf.
struct Tree {
    std::vector<int32_t> feature, threshold_bin, left, right;
    std::vector<float> threshold;
    std::vector<uint8_t> default_left;
    std::vector<double> gain;                 // per node
    std::vector<double> leaf_value;           // already multiplied by the learning rate
    std::vector<int64_t> leaf_count;
    std::vector<double> leaf_hessian;
};

// Grows one tree on the rows `rows` (n_in indices into data; null = all rows) with per-row
// gradients and hessians packed as (g, h) pairs (2 * n_rows floats). feature_mask (n_features,
// null = all) marks the features a split may use.
// The split search follows LightGBM's serial tree learner: thresholds scanned from the highest
// bin down (missing bin left) keeping the first of equal gains, then for features with a
// missing bin from the lowest up (missing bin right), winning only when strictly better;
// min_data_in_leaf on hessian-estimated counts when counts_from_hessian; a feature without a
// valid split in a leaf is not tried below it; equal gains go to the lower feature, and the
// leaf split next is the one that gains most. Adds the tree's leaf values to scores[r] for the
// rows it was grown on (scores may be null).
Tree grow_tree(const Binned& data, const float* grad_hess, const int32_t* rows, int64_t n_in,
               const uint8_t* feature_mask, const TreeParams& params, double* scores, int n_threads);

// Adds a tree's outputs to scores (n_rows) of binned rows (optionally only rows[0..n_rows_sel)).
void add_tree_binned(const Tree& tree, const Binned& data, const int32_t* rows, int64_t n_sel, double* scores,
                     int n_threads);

// A forest as flat arrays: tree t owns nodes [node_offsets[t], node_offsets[t+1]) and leaves
// [leaf_offsets[t], leaf_offsets[t+1]); child indices are local to their tree.
struct Forest {
    const int64_t* node_offsets = nullptr;
    const int64_t* leaf_offsets = nullptr;
    int64_t n_trees = 0;
    const int32_t* feature = nullptr;
    const float* threshold = nullptr;
    const uint8_t* default_left = nullptr;
    const int32_t* left = nullptr;
    const int32_t* right = nullptr;
    const double* leaf_value = nullptr;
};

// Checks that every child index points inside its tree and features are < n_features.
void check_forest(const Forest& forest, int64_t n_features);

// out[r] = init + sum over trees [0, n_use) of the tree's output on raw row r of X.
void predict(const Forest& forest, int64_t n_use, const float* X, int64_t n_rows, int64_t n_features, double init,
             double* out, int n_threads);

// Leaf index (local to its tree) of every row in every tree: out is n_rows x n_use.
void predict_leaf(const Forest& forest, int64_t n_use, const float* X, int64_t n_rows, int64_t n_features,
                  int32_t* out, int n_threads);

// ---------------------------------------------------------------------------------------------
// Objectives: gradients and hessians of the loss with respect to the scores
// ---------------------------------------------------------------------------------------------

enum class Objective : int { Regression = 0, Binary = 1, LambdaRank = 2, RankXendcg = 3, RankNet = 4 };

struct ObjectiveParams {
    double sigmoid = 1.0;               // steepness of the pairwise logistic (lambdarank, ranknet, binary)
    std::vector<double> label_gain;     // gain of each integer label (lambdarank); empty: 2^l - 1
    int truncation_level = 30;          // lambdarank: pairs whose better-ranked doc is within it
    bool normalize = true;              // lambdarank: LightGBM's lambdarank_norm
    uint64_t seed = 0;                  // rank_xendcg draws its gammas from (seed, iteration, query)
    int64_t iteration = 0;
};

// group_offsets: n_groups + 1 offsets of contiguous queries (ignored by pointwise objectives).
// Writes packed (g, h) pairs: grad_hess[2r] = dL/ds_r, grad_hess[2r+1] = d2L/ds_r^2.
void gradients(Objective objective, const double* scores, const float* labels, int64_t n_rows,
               const int64_t* group_offsets, int64_t n_groups, const ObjectiveParams& params, float* grad_hess,
               int n_threads);

// The loss whose derivatives gradients() returns, for tests: regression 1/2 (s - y)^2,
// binary log-loss, rank_xendcg the softmax cross-entropy with the given gammas, ranknet the
// pairwise logistic. lambdarank has no loss: its per-pair weights |dNDCG| (and the |ds|
// normalization) are recomputed from the scores; pass fixed_weights_from to evaluate the
// weighted pairwise logistic with the weights taken at those scores.
double objective_loss(Objective objective, const double* scores, const float* labels, int64_t n_rows,
                      const int64_t* group_offsets, int64_t n_groups, const ObjectiveParams& params,
                      const double* fixed_weights_from);

// ---------------------------------------------------------------------------------------------
// Evaluation of grouped scores with recforge's ranking metrics
// ---------------------------------------------------------------------------------------------

enum class RankMetric : int { Ndcg = 0, Map = 1 };

// Mean nDCG@k (gain 2^label - 1, IDCG over all the query's documents) or MAP@k (relevant:
// label > 0, divided by min(n_rel, k)) over the queries, ranking each query's documents by
// descending score (ties: input order). A query without relevant documents scores
// empty_score (LightGBM: 1); NaN leaves such queries out of the mean. Queries without
// documents are left out.
double rank_metric(RankMetric metric, const double* scores, const float* labels, const int64_t* group_offsets,
                   int64_t n_groups, int k, double empty_score, int n_threads);

}  // namespace recforge::gbdt
