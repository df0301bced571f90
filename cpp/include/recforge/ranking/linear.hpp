// Linear rankers trained by stochastic gradient descent, one query per step.
//
// The score of a document is s = w . x + b. Each epoch visits the queries in an order drawn
// from (seed, epoch) and, for each, takes one step on the query's loss plus l2/2 |w|^2:
//
//   logistic  pointwise log-loss of sigmoid(s) against y > 0, averaged over the documents
//   ranknet   pairwise logistic log(1 + exp(-(s_i - s_j))) over pairs with y_i > y_j, averaged
//   ranksvm   pairwise hinge max(0, 1 - (s_i - s_j)) over the same pairs, averaged
//   listnet   listwise cross-entropy between softmax(y) and softmax(s) (top-one probabilities)
//
// Pairwise and listwise losses do not depend on b, which stays 0 for them. Training is
// sequential, so a seed gives the same model on any machine.
#pragma once

#include <cstdint>

namespace recforge::linear_rank {

enum class Loss : int { Logistic = 0, RankNet = 1, RankSvm = 2, ListNet = 3 };

struct Params {
    Loss loss = Loss::RankNet;
    double learning_rate = 0.05;
    double l2 = 1e-4;
    uint64_t seed = 0;
};

// One epoch; w has n_features + 1 entries (the last is b), updated in place. Returns the mean
// per-query loss before each step.
double epoch(const float* X, int64_t n_rows, int64_t n_features, const float* y, const int64_t* group_offsets,
             int64_t n_groups, double* w, const Params& p, int64_t epoch_index);

// The loss of one query (and, if grad is not null, its gradient with respect to the scores),
// for tests.
double query_loss(Loss loss, const double* s, const float* y, int64_t n, double* grad);

}  // namespace recforge::linear_rank
