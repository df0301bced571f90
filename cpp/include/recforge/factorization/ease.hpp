// EASE (Steck 2019): a closed-form item-item model. With G = X^T X + lambda I over the
// users x items interaction matrix X and P = G^-1,
//
//     B = I - P diag(1 / diag(P)),   i.e. B_ij = -P_ij / P_jj and B_jj = 0,
//
// is the least-squares item-item weight matrix with a zero diagonal, and a user's scores are
// their interaction row times B. G, P and B are dense n_items x n_items: memory grows with the
// square of the catalog (the Python layer refuses catalogs above a configurable size).
#pragma once

#include <cstdint>

#include "recforge/common/csr.hpp"

namespace recforge::ease {

// Fits B (n_items x n_items, row-major float32, written in full) from the CSR X. The Gram matrix
// and its Cholesky factor are held in double when `double_precision`, else in float; P is
// formed one block of columns at a time, so the extra memory beyond G and B is one block per
// thread. Throws std::invalid_argument when G is not positive definite (lambda <= 0 with an
// item nobody interacted with).
void fit(const CsrView& X, double lambda, bool double_precision, float* B, int n_threads);

// out (rows.n_rows x n_items, row-major) = rows * B, for a CSR of user rows over the items.
void scores(const CsrView& rows, const float* B, int64_t n_items, float* out, int n_threads);

}  // namespace recforge::ease
