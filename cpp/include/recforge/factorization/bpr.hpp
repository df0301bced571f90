// Bayesian personalised ranking (Rendle et al. 2009) by Hogwild stochastic gradient descent.
//
// For a sampled triple (user u, item i the user interacted with, item j they did not), with
// x_uij = p_u . (q_i - q_j) + b_i - b_j, one step lowers
//
//     L = -ln sigma(x_uij) + reg/2 (|p_u|^2 + |q_i|^2 + |q_j|^2) + bias_reg/2 (b_i^2 + b_j^2).
//
// An epoch draws as many triples as there are interactions: the positive (u, i) uniformly
// among the interactions, the negative j uniformly among the items (or, as the implicit
// library does, proportionally to item popularity: the item of another uniformly drawn
// interaction). With verify_negatives, a j the user interacted with is drawn again, up to
// negative_draws draws in all; the triple is skipped when every draw hits (implicit skips at
// the first hit: negative_draws = 1). Samples are cut into fixed blocks with
// their own random streams, derived from (seed, epoch, block): with one thread an epoch is
// deterministic; with more, threads update shared factors without locks (Hogwild), so the
// result depends on timing.
#pragma once

#include <cstdint>

#include "recforge/common/csr.hpp"

namespace recforge::bpr {

enum class Negatives : int { Uniform = 0, Popularity = 1 };

// The loss of a sampled triple: BPR's -ln sigma(x_ui - x_uj), or the logistic loss of the
// positive and the negative as separate examples, -ln sigma(x_ui) - ln(1 - sigma(x_uj)):
// logistic matrix factorization (Johnson 2014) trained by SGD with sampled negatives.
enum class Loss : int { Bpr = 0, Logistic = 1 };

struct Params {
    double learning_rate = 0.01;
    double regularization = 0.01;
    double bias_regularization = 0.01;
    bool verify_negatives = true;
    int negative_draws = 64;  // draws of j per triple before it is skipped (1: skip at once, as implicit)
    Negatives negatives = Negatives::Uniform;
    Loss loss = Loss::Bpr;
    uint64_t seed = 0;
};

struct EpochStats {
    int64_t samples = 0;   // triples drawn
    int64_t skipped = 0;   // triples without a valid negative
    int64_t correct = 0;   // triples already ranked right (x_ui > x_uj) before their step
    double loss = 0.0;     // sum of the triples' losses over the steps taken
};

// What every epoch over the same interactions needs, computed once: the row of every
// interaction and a bit filter of the (row, column) pairs that lets most candidate negatives
// skip the binary search in the user's row (filter_words(nnz) words, about 8 bits per pair).
struct Prepared {
    const int32_t* row_of = nullptr;   // nnz entries
    const uint64_t* filter = nullptr;  // n_words words
    int64_t n_words = 0;
};
int64_t filter_words(int64_t nnz);
// Checks R (structure, sorted unique indices in every row) and fills row_of and the filter.
void prepare(const CsrView& R, int32_t* row_of, uint64_t* filter, int64_t n_words);

// One epoch over the interactions R (users x items, sorted indices; data unused). U: n_users
// x f, V: n_items x f, bias: n_items (null: no biases), all updated in place. `prepared` must
// come from prepare(R); if it is empty, the epoch prepares (and fully checks) R itself.
// T is float or double: the factors' type, in which the steps are computed.
template <class T>
EpochStats epoch(const CsrView& R, T* U, T* V, T* bias, int64_t f, const Params& p, int64_t epoch_index,
                 int n_threads, const Prepared& prepared = Prepared());

// L and its gradient for one triple (see above; for Loss::Logistic the first term is
// -ln sigma(x_ui) - ln(1 - sigma(x_uj)), x_ui = p_u . q_i + b_i); gradient pointers may be null.
double triple_loss(const float* u, const float* qi, const float* qj, float bi, float bj, int64_t f, float reg,
                   float bias_reg, float* grad_u, float* grad_i, float* grad_j, float* grad_bi, float* grad_bj,
                   Loss loss = Loss::Bpr);

// Fold-in: factors of the rows of R (new users x items) by `epochs` passes of SGD steps on the
// user vectors only, item factors and biases fixed (negatives drawn uniformly). Each row has its own random stream derived
// from (seed, row), so the result does not depend on n_threads. U (R.n_rows x f) holds the
// starting vectors and is updated in place.
template <class T>
void fold_in(const CsrView& R, T* U, const T* V, const T* bias, int64_t f, int epochs, const Params& p,
             int n_threads);

}  // namespace recforge::bpr
