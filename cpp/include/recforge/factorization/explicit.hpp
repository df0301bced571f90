// Rating-prediction matrix factorization (explicit feedback): biased MF / Funk SVD and PMF by
// SGD, SVD++ by user-grouped SGD, NMF by multiplicative updates, and ALS-WR.
//
// Every kernel is stateless: it reads and writes arrays owned by the caller (the learned state
// of the Python model) and runs one epoch (or one half-sweep for ALS-WR) per call. Kernels are
// templated on the value type (float or double; both are instantiated in
// cpp/src/sgd_explicit.cpp and cpp/src/explicit_als.cpp).
//
// Objectives. For one rating r_ui with prediction
//     r^_ui = mu + b_u + b_i + q_i . z_u        (z_u = p_u for SVD, p_u + |I_u|^-1/2 sum_j y_j
//                                               for SVD++; mu = b_u = b_i = 0 when unbiased)
// the SGD models minimise, rating by rating,
//     L_ui = 1/2 [ (r_ui - r^_ui)^2 + reg_bu b_u^2 + reg_bi b_i^2 + reg_pu |p_u|^2
//                  + reg_qi |q_i|^2 (+ reg_yj sum_j |y_j|^2) ]
// with the step  theta <- theta - lr_theta * dL_ui/dtheta, which is Surprise's update
// b_u += lr_bu (e - reg_bu b_u), p_u += lr_pu (e q_i - reg_pu p_u), ...
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "recforge/common/csr.hpp"

namespace recforge::explicit_mf {

// Non-owning views of a model's learned arrays (row-major, `k` columns; rows `k` elements apart
// unless a row stride is given).
template <class T>
struct Factors {
    T* user_factors = nullptr;      // n_users x k  (p_u)
    T* item_factors = nullptr;      // n_items x k  (q_i)
    T* user_bias = nullptr;         // n_users, or null for an unbiased model
    T* item_bias = nullptr;         // n_items, or null for an unbiased model
    T* implicit_factors = nullptr;  // n_items x k  (y_j, SVD++ only)
    int64_t n_users = 0;
    int64_t n_items = 0;
    int k = 0;
    T global_mean = 0;  // mu; 0 for unbiased models
    // Row strides of user_factors and item_factors in elements, 0 meaning k. Only the SVD / PMF
    // epoch (svd_sgd_epoch, SvdTrainer) takes others: rows of a wider array, such as the first k
    // columns of rows padded to whole vectors (svd_padded_stride), which it updates in place.
    int64_t user_stride = 0;
    int64_t item_stride = 0;

    bool biased() const { return user_bias != nullptr && item_bias != nullptr; }
    int64_t user_row_stride() const { return user_stride ? user_stride : k; }
    int64_t item_row_stride() const { return item_stride ? item_stride : k; }
};

// Learning rates and L2 regularization per parameter group, as Surprise names them.
template <class T>
struct SgdRates {
    T lr_bu = 0, lr_bi = 0, lr_pu = 0, lr_qi = 0, lr_yj = 0;
    T reg_bu = 0, reg_bi = 0, reg_pu = 0, reg_qi = 0, reg_yj = 0;
};

// Gradients of L_ui for one rating (what the SGD kernels apply, exposed for finite-difference
// tests). Returns L_ui. For SVD++, `implicit_rows` holds the y_j of the n_rated items of the
// user (n_rated x k) and `grad_implicit` receives their gradients (n_rated x k).
template <class T>
T svd_loss_grad(const T* p, const T* q, T bu, T bi, T mu, T rating, int k, bool biased,
                const SgdRates<T>& rates, T* grad_p, T* grad_q, T* grad_bu, T* grad_bi);

template <class T>
T svdpp_loss_grad(const T* p, const T* q, const T* implicit_rows, int64_t n_rated, T bu, T bi, T mu,
                  T rating, int k, const SgdRates<T>& rates, T* grad_p, T* grad_q, T* grad_bu, T* grad_bi,
                  T* grad_implicit);

// Statistics of one epoch: the squared error of every rating, measured just before its update
// (SGD) or with the parameters at the start of the epoch (NMF, ALS-WR), and the count.
struct EpochStats {
    double sse = 0.0;
    int64_t n = 0;
};

// The visiting order of one SGD epoch of svd_sgd_epoch: `order[j]` is the input position of the
// j-th rating visited, block by block (block b is order[offset[b] .. offset[b + 1]); one block
// unless the epoch runs on several threads).
//
// With `shuffle`, the order is drawn from `seed` (the "grouped shuffle"): the items fall into
// ranges of consecutive indices whose factor rows take about 256 KiB (one range for small
// catalogs) and each block is visited range by range, ranges in a random order; within a range
// user by user, users in a random order; and each user's ratings within a range in a random
// order. Every rating is visited once. Keeping a user's ratings together lets the vector kernel
// hold the user's row in registers, and one item range's rows stay in the L2 cache; Surprise's
// SGD visits the ratings user by user in a fixed order. Without `shuffle` the ratings keep their
// given order within each block. Either way the runs of a block (its stretches of one user's
// ratings) are then visited three at a time, interleaved: three lanes each hold a run; every
// round each lane holding a run visits its next rating, lanes in order; then the lanes whose run
// is done let it go and the empty lanes take the next runs in lane order, a run whose user
// another lane holds waiting (with the runs after it) until that lane lets its run go.
//
// With n_threads > 1 (and enough ratings) users and items are split into n_threads strata of
// consecutive indices with balanced rating counts and block (a, b) holds the ratings of user stratum a and item stratum b.
// Fewer strata are used when a block would hold fewer than `min_block` ratings (thread start-up
// and the serial parts of an epoch outweigh a thread on smaller blocks: on MovieLens 100K,
// 20,000 ratings a block, the second thread made epochs 1.2x faster, on 10,000 slower).
struct EpochPlan {
    std::vector<int64_t> order;
    std::vector<int64_t> offset;
    int strata = 1;
};

EpochPlan svd_epoch_plan(const int32_t* users, const int32_t* items, int64_t n, int64_t n_users, int64_t n_items,
                         int k, size_t itemsize, bool shuffle, uint64_t seed, int n_threads,
                         int64_t min_block = 16384);

// Buffers of svd_sgd_epoch kept from one epoch to the next (the visiting order as (item,
// rating) entries in runs of one user, the padded factor rows), so that a fit does not allocate
// and fault in fresh pages in every epoch. Optional; one workspace per concurrent caller.
class SvdWorkspace {
public:
    SvdWorkspace();
    ~SvdWorkspace();
    SvdWorkspace(const SvdWorkspace&) = delete;
    SvdWorkspace& operator=(const SvdWorkspace&) = delete;
    struct Impl;
    Impl& impl() { return *impl_; }

private:
    std::unique_ptr<Impl> impl_;
};

// One SGD pass of biased MF / Funk SVD (or PMF when `m` has no biases) over the rating triples
// (users[t], items[t], ratings[t]) in the order of svd_epoch_plan. On several strata the pass
// runs in `strata` rounds of conflict-free blocks (DSGD / LIBMF): in each round every thread
// takes a block of ratings whose users and items no other thread touches. The result depends
// only on the inputs, the seed and the number of strata.
//
// Float32 factor arrays whose rows are svd_padded_stride(k) floats apart, aligned to one vector
// of the kernel (64 bytes suffice for every kernel), with +0.0 in the columns after k (views of
// the first k columns) are updated in place by the vector kernel (the item rows' lazily applied
// weight decay is folded into them at the end of the epoch). Other layouts are copied into padded rows and back; the columns outside the view keep
// their values.
template <class T>
EpochStats svd_sgd_epoch(const Factors<T>& m, const int32_t* users, const int32_t* items, const T* ratings, int64_t n,
                         const SgdRates<T>& rates, bool shuffle, uint64_t seed, int n_threads,
                         int64_t min_block = 16384, SvdWorkspace* workspace = nullptr);

// The row stride (in elements) that the float32 vector kernel works on in place: k rounded up
// to a multiple of its vector, 8 floats for AVX2 and 16 for AVX-512 (k > 0).
int64_t svd_padded_stride(int k);

// The rating triples of one fit, validated and copied once, with the buffers of its epochs:
// epoch() is svd_sgd_epoch on these triples (the same order for the same seed, the same
// result), without checking and scanning the triples again every epoch.
template <class T>
class SvdTrainer {
public:
    SvdTrainer(const int32_t* users, const int32_t* items, const T* ratings, int64_t n, int64_t n_users,
               int64_t n_items);
    EpochStats epoch(const Factors<T>& m, const SgdRates<T>& rates, bool shuffle, uint64_t seed, int n_threads,
                     int64_t min_block = 16384);
    int64_t size() const { return static_cast<int64_t>(users_.size()); }

private:
    std::vector<int32_t> users_, items_;
    std::vector<T> ratings_;
    int64_t n_users_, n_items_;
    bool sorted_;
    SvdWorkspace workspace_;
};

// One SGD pass of SVD++ over the users in `user_order` (shuffled in place first when `shuffle`),
// each user's ratings being the row of `by_user` (ratings aligned with its indices).
//
// User-grouped update: the implicit term |I_u|^-1/2 sum_j y_j is computed once per user and held
// fixed over that user's ratings; the per-rating steps that Surprise applies to every y_j,
// y_j <- (1 - lr_yj reg_yj) y_j + lr_yj e_ui q_i |I_u|^-1/2, are the same for all j in I_u and
// form a linear recurrence, so they are summed in one accumulator and applied to each y_j once
// per user. An epoch costs O(ratings x k) instead of O(sum_u |I_u|^2 x k).
template <class T>
EpochStats svdpp_sgd_epoch(const Factors<T>& m, const CsrView& by_user, const T* ratings, int32_t* user_order,
                           const SgdRates<T>& rates, bool shuffle, uint64_t seed, int n_threads);

// One epoch of Surprise's NMF: multiplicative updates of p_u and q_i from numerators
// sum r q_if (sum r p_uf) and denominators sum r^ q_if + |I_u| reg_pu p_uf, all accumulated with
// the factors at the start of the epoch; the biases (when present) take one SGD step per rating
// in CSR order. `by_item` is the transpose pattern (row = item, indices = users) and
// item_entry[t] the CSR position in `by_user` of its t-th entry. Deterministic for any
// n_threads.
template <class T>
EpochStats nmf_epoch(const Factors<T>& m, const CsrView& by_user, const T* ratings, const CsrView& by_item,
                     const int64_t* item_entry, T reg_pu, T reg_qi, T lr_bu, T lr_bi, T reg_bu, T reg_bi,
                     int n_threads);

// One ALS-WR half sweep (Zhou et al. 2008): for every row u of `rows` (ratings aligned with its
// indices, columns indexing `other`), solves by Cholesky
//     (X_u^T X_u + reg * n_u * I) w_u = X_u^T t_u
// where X_u stacks the other side's vectors of the rated columns and t_u the targets. Unbiased:
// w_u = x_u (k values), X rows = y_c, t = r. Biased (`bias` and `other_bias` given):
// w_u = [x_u, b_u], X rows = [y_c, 1], t = r - mu - b_c. Rows without ratings get zeros.
// Returns the squared error of all ratings with the new solutions (after the second half sweep
// of an epoch, the training error of the model). Deterministic for any n_threads.
// The instruction set the float32 SVD kernel uses on this CPU: "avx512", "avx2-fma" or "generic"
// (RECFORGE_VECTOR_KERNEL=generic forces the portable one, =avx2 caps it at AVX2).
const char* sgd_kernel_name();

template <class T>
EpochStats als_wr_sweep(const CsrView& rows, const T* ratings, const T* other, const T* other_bias, int64_t n_other,
                  T* factors, T* bias, int k, T reg, T mu, int n_threads);

}  // namespace recforge::explicit_mf
