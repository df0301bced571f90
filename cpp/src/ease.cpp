#include "recforge/factorization/ease.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/factorization/als.hpp"

namespace recforge::ease {
namespace {

constexpr int64_t kColumnBlock = 64;  // columns of P solved for at a time

// Row i of G = X^T X is sum over the users u of item i of x_ui * (row u of X): each thread
// owns whole rows of G, so there are no races and the sums do not depend on n_threads.
template <class T>
void gram(const CsrView& X, T* G, int n_threads) {
    const int64_t n = X.n_cols;
    // the transpose of X (items x users), by counting sort
    std::vector<int64_t> tptr(static_cast<size_t>(n + 1), 0);
    const int64_t nnz = X.nnz();
    for (int64_t k = 0; k < nnz; ++k) ++tptr[static_cast<size_t>(X.indices[k]) + 1];
    for (int64_t i = 0; i < n; ++i) tptr[static_cast<size_t>(i + 1)] += tptr[static_cast<size_t>(i)];
    std::vector<int64_t> fill(tptr.begin(), tptr.end() - 1);
    std::vector<int32_t> tusers(static_cast<size_t>(nnz));
    std::vector<float> tdata(static_cast<size_t>(nnz));
    for (int64_t u = 0; u < X.n_rows; ++u) {
        for (int64_t k = X.row_begin(u); k < X.row_end(u); ++k) {
            const auto pos = static_cast<size_t>(fill[static_cast<size_t>(X.indices[k])]++);
            tusers[pos] = static_cast<int32_t>(u);
            tdata[pos] = X.data ? X.data[k] : 1.0f;
        }
    }
    parallel_for(
        0, n, n_threads,
        [&](int64_t i, int) {
            T* row = G + i * n;
            std::fill(row, row + n, T(0));
            for (int64_t t = tptr[static_cast<size_t>(i)]; t < tptr[static_cast<size_t>(i + 1)]; ++t) {
                const int64_t u = tusers[static_cast<size_t>(t)];
                const T xu = tdata[static_cast<size_t>(t)];
                for (int64_t k = X.row_begin(u); k < X.row_end(u); ++k)
                    row[X.indices[k]] += xu * static_cast<T>(X.data ? X.data[k] : 1.0f);
            }
        },
        16);
}

template <class T>
void fit_impl(const CsrView& X, double lambda, float* B, int n_threads) {
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
    const int64_t n = X.n_cols;
    std::vector<T> g(static_cast<size_t>(n) * static_cast<size_t>(n));
    gram<T>(X, g.data(), n_threads);
    for (int64_t i = 0; i < n; ++i) g[static_cast<size_t>(i * n + i)] += static_cast<T>(lambda);
    Eigen::Map<Matrix> gm(g.data(), n, n);  // symmetric: row- or column-major alike
    Eigen::LLT<Eigen::Ref<Matrix>> llt(gm);
    if (llt.info() != Eigen::Success)
        throw std::invalid_argument("X^T X + lambda I is not positive definite; use lambda > 0");
    const int64_t n_blocks = (n + kColumnBlock - 1) / kColumnBlock;
    parallel_for(0, n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t j0 = b * kColumnBlock;
        const int64_t w = std::min(kColumnBlock, n - j0);
        Matrix z = Matrix::Zero(n, w);  // columns j0 .. j0+w of P = G^-1
        for (int64_t c = 0; c < w; ++c) z(j0 + c, c) = T(1);
        llt.solveInPlace(z);
        for (int64_t c = 0; c < w; ++c) {
            const int64_t j = j0 + c;
            const T d = z(j, c);
            for (int64_t i = 0; i < n; ++i) B[i * n + j] = i == j ? 0.0f : static_cast<float>(-z(i, c) / d);
        }
    });
}

}  // namespace

void fit(const CsrView& X, double lambda, bool double_precision, float* B, int n_threads) {
    X.validate("interactions");
    if (!std::isfinite(lambda) || lambda < 0.0) throw std::invalid_argument("lambda must be finite and >= 0");
    if (X.data) {
        for (int64_t k = 0; k < X.nnz(); ++k)
            if (!std::isfinite(X.data[k])) throw std::invalid_argument("interaction weights must be finite");
    }
    if (X.n_cols == 0) return;
    if (double_precision) {
        fit_impl<double>(X, lambda, B, n_threads);
    } else {
        fit_impl<float>(X, lambda, B, n_threads);
    }
}

void scores(const CsrView& rows, const float* B, int64_t n_items, float* out, int n_threads) {
    rows.validate("rows");
    if (rows.n_cols != n_items) throw std::invalid_argument("rows must have one column per item");
    const auto& K = als::kernels::vector_kernels();
    std::vector<float> ones;
    if (rows.data == nullptr) ones.assign(static_cast<size_t>(std::max<int64_t>(rows.nnz(), 1)), 1.0f);
    parallel_for(
        0, rows.n_rows, n_threads,
        [&](int64_t q, int) {
            float* o = out + q * n_items;
            std::fill(o, o + n_items, 0.0f);
            const int64_t begin = rows.row_begin(q);
            const float* w = rows.data ? rows.data + begin : ones.data() + begin;
            K.axpys(B, n_items, rows.indices + begin, rows.row_end(q) - begin, w, o);
        },
        4);
}

}  // namespace recforge::ease
