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
    double regularization = 0.01;     // lambda
    double unobserved_weight = 1.0;   // w0
    double reg_exponent = 0.0;        // nu: lambda_u = lambda * (n_u + w0 * n_cols)^nu
    Solver solver = Solver::ConjugateGradient;
    int cg_steps = 3;
};

// The kernels below are templates on the scalar type T of the factors, instantiated for float
// and double (als.cpp): every product, sum and solve runs in T. The confidences stay float32
// (CsrView data), as the interaction weights they come from.

// G = Y^T Y for Y of n rows x f factors (row-major); out is f x f row-major. Rows are summed in
// fixed blocks and the block sums added in order, so G is the same for any n_threads.
template <class T>
void gram(const T* Y, int64_t n, int64_t f, T* out, int n_threads);

// One half-iteration: updates every row of X (C.n_rows x f) from Y (C.n_cols x f). C's data are
// the confidences c_ui (finite and >= 0, checked). `G` is Y^T Y, or null to compute it here.
// The conjugate-gradient solver starts from the current X; empty rows become zero.
template <class T>
void solve(const CsrView& C, const T* Y, int64_t f, const T* G, T* X, const Params& p, int n_threads);

// The weighted loss of the objective above over all rows of C (data term plus the rows'
// regularization), summed in row order in double precision.
template <class T>
double loss(const CsrView& C, const T* X, const T* Y, int64_t f, const T* G, const Params& p, int n_threads);

// Hu et al. section 5: for one row with items `items` / confidences `conf` (n entries), the
// exact solution is x = W^-1 sum_j c_j y_j with W the system matrix above, so the score of
// `target` splits into contributions s_j = c_j * (y_target^T W^-1 y_j), one per history item.
// Writes the n contributions and returns their sum (= x . y_target).
template <class T>
double explain(const int32_t* items, const float* conf, int64_t n, int64_t n_cols, const T* Y, int64_t f,
               const T* G, int32_t target, const Params& p, T* contributions);

namespace kernels {

// Dense kernels on rows of a row-major matrix of scalars T with f columns. `idx` selects rows
// (null: rows 0..n-1 in order). Chosen once at run time by CPU features: for float, hand-written
// AVX2+FMA kernels or the portable code; for double, the same portable templates compiled
// either for AVX2+FMA or for the baseline instruction set.
template <class T>
struct BasicVectorKernels {
    // out[j] = row_j . v
    void (*dots)(const T* rows, int64_t f, const int32_t* idx, int64_t n, const T* v, T* out);
    // out += sum_j coef[j] * row_j
    void (*axpys)(const T* rows, int64_t f, const int32_t* idx, int64_t n, const T* coef, T* out);
    // d[j] = row_j . v, then out += sum_j (a[j] + b[j] d[j]) row_j (a null: 0), in one pass
    void (*dots_axpys)(const T* rows, int64_t f, const int32_t* idx, int64_t n, const T* v, const T* a,
                       const T* b, T* out);
    // out (f x f) += sum_j w[j] row_j row_j^T (w null: all 1) on the upper triangle (and the
    // diagonal); with `mirror`, the lower triangle is then copied from the upper one.
    void (*gram)(const T* rows, int64_t f, const int32_t* idx, const T* w, int64_t n, T* out, bool mirror);
    // Solves A x = b in place for a symmetric positive definite f x f row-major A (only its
    // upper triangle is read; it is overwritten by the Cholesky factor U, A = U^T U) and b
    // (overwritten by x). Returns false when A is not positive definite.
    bool (*cholesky_solve)(T* A, int64_t f, T* b);
    // out (n x f) = A (n x f) * M (f x f), all row-major; out must not overlap A
    void (*matmul)(const T* A, int64_t n, int64_t f, const T* M, T* out);
    // one SGD step on a (user, positive, negative) triple, from the old u:
    //   u += lr (zi qi - zj qj - reg u),  qi += lr (zi u - reg qi),  qj += lr (-zj u - reg qj)
    // (BPR: zi = zj = 1 - sigma(x_uij); logistic loss: zi = 1 - sigma(x_ui), zj = sigma(x_uj))
    void (*bpr_step)(T* u, T* qi, T* qj, int64_t f, T zi, T zj, T lr, T reg);
    // a . b
    T (*dot)(const T* a, const T* b, int64_t f);
    // y += a * x
    void (*axpy)(T a, const T* x, T* y, int64_t f);
    const char* name;
};

using VectorKernels = BasicVectorKernels<float>;

template <class T>
const BasicVectorKernels<T>& vector_kernels_for();
template <>
const BasicVectorKernels<float>& vector_kernels_for<float>();
template <>
const BasicVectorKernels<double>& vector_kernels_for<double>();

// The float32 kernels (the ones most models use).
inline const VectorKernels& vector_kernels() { return vector_kernels_for<float>(); }

}  // namespace kernels
}  // namespace recforge::als
