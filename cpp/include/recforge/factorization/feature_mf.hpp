// Feature factorization (Kula 2015, the LightFM model; a linear two-tower model): every user
// and item is represented by the weighted sum of the embeddings (and biases) of its features,
//
//     p_u = sum_k Fu[u, k] e_k,  b_u = sum_k Fu[u, k] c_k   (user features Fu)
//     q_i = sum_k Fi[i, k] g_k,  b_i = sum_k Fi[i, k] d_k   (item features Fi)
//     x_ui = p_u . q_i + b_u + b_i,
//
// trained by Hogwild stochastic gradient descent with a per-parameter learning rate (Adagrad,
// accumulators starting at 1 and each step using lr / sqrt(sum of the earlier squared
// gradients), as LightFM; or Adadelta) on one of four losses:
//
//   Logistic  every stored (u, i) is an example with label 1 if its value is > 0 and 0
//             otherwise: L = -y ln sigma(x_ui) - (1 - y) ln(1 - sigma(x_ui)).
//   Bpr       a positive (u, i) and a drawn item j that is not a positive of u (up to 100
//             draws): L = -ln sigma(x_ui - x_uj).
//   Warp      (Weston et al. 2011) items j are drawn until one violates x_uj > x_ui - 1 and is not
//             a positive of u, at most max_sampled draws; after N draws the step is on
//             L = ln(max(1, floor((n_items - 1) / N))) (1 - x_ui + x_uj), the weight capped at 10.
//   WarpKos   (Weston et al. 2013) per user, the k-th best scored of n sampled positives is the
//             positive of a WARP step.
//
// L2 regularization (user_alpha, item_alpha) decays every parameter of a side by
// 1 / (1 + alpha * lr) per step, lr the mean learning rate of the step's updates; it is kept as
// one scale per side during an epoch (lazy regularization) and folded into the arrays at its
// end. Samples are visited in a random order drawn from (seed, epoch), cut into blocks with
// their own streams (seed, epoch, block): with one thread an epoch is deterministic, with more
// threads update shared parameters without locks (Hogwild) and results depend on timing.
#pragma once

#include <cstdint>

#include "recforge/common/csr.hpp"

namespace recforge::feature_mf {

enum class Loss : int { Logistic = 0, Bpr = 1, Warp = 2, WarpKos = 3 };
enum class Schedule : int { Adagrad = 0, Adadelta = 1 };

struct Params {
    Loss loss = Loss::Warp;
    Schedule schedule = Schedule::Adagrad;
    float learning_rate = 0.05f;
    float rho = 0.95f;
    float epsilon = 1e-6f;
    float user_alpha = 0.0f;
    float item_alpha = 0.0f;
    int max_sampled = 10;
    int k = 5;   // WarpKos: the k-th positive ...
    int n = 10;  // ... of n sampled ones
    uint64_t seed = 0;
};

// The parameters of one side (users or items): n_features x f embeddings, n_features biases
// and the optimizer's accumulators of the same shapes (Adagrad: summed squared gradients;
// Adadelta: averaged squared gradients and, in `*_step`, averaged squared steps).
struct Side {
    float* embeddings = nullptr;
    float* biases = nullptr;
    float* embedding_grad = nullptr;
    float* bias_grad = nullptr;
    float* embedding_step = nullptr;  // Adadelta only
    float* bias_step = nullptr;       // Adadelta only
    int64_t n_features = 0;
};

struct EpochStats {
    int64_t samples = 0;  // positives (or examples) visited
    int64_t updates = 0;  // steps taken
    double loss = 0.0;    // sum of the losses of the steps taken
};

// One epoch. R: users x items (values: labels for Logistic, > 0 marks a positive otherwise;
// sorted column indices), Fu: users x user features, Fi: items x item features (weights).
// `negatives` (n_negatives item indices, or null for all items) is the pool negatives are
// drawn from uniformly; an item listed several times is drawn in proportion (pass the item of
// every interaction for popularity sampling, as LightFM's BPR).
EpochStats epoch(const CsrView& R, const CsrView& Fu, const CsrView& Fi, Side& users, Side& items, int64_t f,
                 const Params& p, const int32_t* negatives, int64_t n_negatives, int64_t epoch_index, int n_threads);

// Representations of the rows of F: out (rows x f) = F E and out_bias (rows) = F b.
void representations(const CsrView& F, const float* embeddings, const float* biases, int64_t n_features, int64_t f,
                     float* out, float* out_bias, int n_threads);

// The loss of one example and its gradient with respect to the representations (the chain
// rule to feature embeddings is grad(e_k) = F[row, k] grad(p)): for Logistic the example is
// (u, i) with label y; for Bpr and Warp (u, i, j), Warp with weight `warp_weight` (the
// rank weight ln floor(...) of the step). Representations are f + 1 long (bias last); grads
// too (the user's bias gradient is zero for the pairwise losses).
double example_loss(Loss loss, const float* user, const float* pos, const float* neg, int64_t f, float label,
                    float warp_weight, float* grad_user, float* grad_pos, float* grad_neg);

}  // namespace recforge::feature_mf
