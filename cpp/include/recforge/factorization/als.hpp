// Implicit-feedback alternating least squares (Hu, Koren, Volinsky 2008) and the small dense
// vector kernels the implicit-feedback models share.
//
// One half-iteration solves, for every row u of a confidence matrix C (users x items to update
// the users, items x users to update the items), the weighted ridge regression
//
//     x_u = argmin  sum_{i in C_u} c_ui (1 - x.y_i)^2  +  w0 sum_{i not in C_u} (x.y_i)^2
//                   + lambda_u |x|^2
//
// whose normal equations are
//
//     (w0 G + sum_{i in C_u} (c_ui - w0) y_i y_i^T + lambda_u I) x = sum_{i in C_u} c_ui y_i,
//
// with G = Y^T Y computed once per half-iteration. w0 (the unobserved weight) is 1 in Hu et
// al. and in implicit; lambda_u = lambda * (n_u + w0 * n_cols)^nu scales the regularization
// with the row's frequency as in Rendle et al. 2022 ("Revisiting the performance of iALS"),
// and nu = 0 gives the plain lambda. The system is solved either exactly (Cholesky) or by a
// few conjugate-gradient steps warm-started from the current x_u (Takacs et al. 2011).
//
// Rows are solved independently, in order of decreasing length, by a dynamically scheduled
// parallel_for, so the result does not depend on the number of threads.
#pragma once

#include <cstdint>

#include "recforge/common/csr.hpp"

namespace recforge::als {

enum class Solver : int { ConjugateGradient = 0, Cholesky = 1 };

struct Params {
    float regularization = 0.01f;     // lambda
    float unobserved_weight = 1.0f;   // w0
    float reg_exponent = 0.0f;        // nu: lambda_u = lambda * (n_u + w0 * n_cols)^nu
    Solver solver = Solver::ConjugateGradient;
    int cg_steps = 3;
};

// G = Y^T Y for Y of n rows x f factors (row-major); out is f x f row-major. Rows are summed in
// fixed blocks and the block sums added in order, so G is the same for any n_threads.
void gram(const float* Y, int64_t n, int64_t f, float* out, int n_threads);

// One half-iteration: updates every row of X (C.n_rows x f) from Y (C.n_cols x f). C's data are
// the confidences c_ui (finite and >= 0, checked). `G` is Y^T Y, or null to compute it here.
// The conjugate-gradient solver starts from the current X; empty rows become zero.
void solve(const CsrView& C, const float* Y, int64_t f, const float* G, float* X, const Params& p,
           int n_threads);

// The weighted loss of the objective above over all rows of C (data term plus the rows'
// regularization), summed in row order in double precision.
double loss(const CsrView& C, const float* X, const float* Y, int64_t f, const float* G,
            const Params& p, int n_threads);

// Hu et al. section 5: for one row with items `items` / confidences `conf` (n entries), the
// exact solution is x = W^-1 sum_j c_j y_j with W the system matrix above, so the score of
// `target` splits into contributions s_j = c_j * (y_target^T W^-1 y_j), one per history item.
// Writes the n contributions and returns their sum (= x . y_target).
double explain(const int32_t* items, const float* conf, int64_t n, int64_t n_cols, const float* Y,
               int64_t f, const float* G, int32_t target, const Params& p, float* contributions);

namespace kernels {

// Dense float32 kernels on rows of a row-major matrix with f columns. `idx` selects rows (null:
// rows 0..n-1 in order). Chosen once at run time by CPU features (AVX2+FMA or portable code).
struct VectorKernels {
    // out[j] = row_j . v
    void (*dots)(const float* rows, int64_t f, const int32_t* idx, int64_t n, const float* v, float* out);
    // out += sum_j coef[j] * row_j
    void (*axpys)(const float* rows, int64_t f, const int32_t* idx, int64_t n, const float* coef,
                  float* out);
    // d[j] = row_j . v, then out += sum_j (a[j] + b[j] d[j]) row_j (a null: 0), in one pass
    void (*dots_axpys)(const float* rows, int64_t f, const int32_t* idx, int64_t n, const float* v, const float* a,
                       const float* b, float* out);
    // out (f x f) += sum_j w[j] row_j row_j^T (w null: all 1) on the upper triangle (and the
    // diagonal); with `mirror`, the lower triangle is then copied from the upper one.
    void (*gram)(const float* rows, int64_t f, const int32_t* idx, const float* w, int64_t n, float* out,
                 bool mirror);
    // Solves A x = b in place for a symmetric positive definite f x f row-major A (only its
    // upper triangle is read; it is overwritten by the Cholesky factor U, A = U^T U) and b
    // (overwritten by x). Returns false when A is not positive definite.
    bool (*cholesky_solve)(float* A, int64_t f, float* b);
    // out (n x f) = A (n x f) * M (f x f), all row-major; out must not overlap A
    void (*matmul)(const float* A, int64_t n, int64_t f, const float* M, float* out);
    // one SGD step on a (user, positive, negative) triple, from the old u:
    //   u += lr (zi qi - zj qj - reg u),  qi += lr (zi u - reg qi),  qj += lr (-zj u - reg qj)
    // (BPR: zi = zj = 1 - sigma(x_uij); logistic loss: zi = 1 - sigma(x_ui), zj = sigma(x_uj))
    void (*bpr_step)(float* u, float* qi, float* qj, int64_t f, float zi, float zj, float lr, float reg);
    // a . b
    float (*dot)(const float* a, const float* b, int64_t f);
    // y += a * x
    void (*axpy)(float a, const float* x, float* y, int64_t f);
    const char* name;
};

const VectorKernels& vector_kernels();

}  // namespace kernels
}  // namespace recforge::als
