// ALS-WR (Zhou et al. 2008): alternating least squares on explicit ratings with the
// regularization of each row weighted by its number of ratings.
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"
#include "recforge/factorization/explicit.hpp"

namespace recforge::explicit_mf {

template <class T>
EpochStats als_wr_sweep(const CsrView& rows, const T* ratings, const T* other, const T* other_bias, int64_t n_other,
                        T* factors, T* bias, int k, T reg, T mu, int n_threads) {
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
    if (k <= 0) throw std::invalid_argument("the number of factors must be positive");
    if (!(reg > T(0))) throw std::invalid_argument("ALS-WR needs a positive regularization");
    if (rows.n_cols != n_other)
        throw std::invalid_argument("the rating matrix has " + std::to_string(rows.n_cols) +
                                    " columns but the other side has " + std::to_string(n_other) + " rows");
    if ((bias == nullptr) != (other_bias == nullptr))
        throw std::invalid_argument("give both biases (biased model) or neither");
    rows.validate("ratings");
    const bool biased = bias != nullptr;
    const int d = k + (biased ? 1 : 0);
    struct Scratch {
        Matrix X;
        Vector t;
        Matrix A;
        Vector b;
        double sse = 0.0;
        char pad[64];
    };
    const int workers = planned_workers(rows.n_rows, n_threads, 16);
    std::vector<Scratch> scratch(static_cast<size_t>(workers));
    parallel_for(
        0, rows.n_rows, workers,
        [&](int64_t u, int worker) {
            const int64_t begin = rows.row_begin(u), end = rows.row_end(u);
            const int64_t n_u = end - begin;
            T* x = factors + u * k;
            if (n_u == 0) {
                std::fill(x, x + k, T(0));
                if (biased) bias[u] = T(0);
                return;
            }
            Scratch& s = scratch[static_cast<size_t>(worker)];
            s.X.resize(n_u, d);
            s.t.resize(n_u);
            for (int64_t e = begin; e < end; ++e) {
                const int64_t c = rows.indices[e];
                const int64_t r = e - begin;
                for (int f = 0; f < k; ++f) s.X(r, f) = other[c * k + f];
                if (biased) {
                    s.X(r, k) = T(1);
                    s.t(r) = ratings[e] - mu - other_bias[c];
                } else {
                    s.t(r) = ratings[e];
                }
            }
            s.A.setZero(d, d);
            s.A.template selfadjointView<Eigen::Lower>().rankUpdate(s.X.transpose());
            s.A.diagonal().array() += reg * static_cast<T>(n_u);
            s.b.noalias() = s.X.transpose() * s.t;
            Eigen::LLT<Matrix> llt(s.A);  // reads the lower triangle only
            if (llt.info() != Eigen::Success)
                throw std::runtime_error("ALS-WR: a normal-equation matrix is not positive definite");
            const Vector w = llt.solve(s.b);
            for (int f = 0; f < k; ++f) x[f] = w(f);
            if (biased) bias[u] = w(k);
            // the row's squared error with its new solution (t - X w)
            s.sse += static_cast<double>((s.t - s.X * w).squaredNorm());
        },
        16);
    EpochStats stats;
    stats.n = rows.nnz();
    for (const Scratch& s : scratch) stats.sse += s.sse;
    return stats;
}

template EpochStats als_wr_sweep<float>(const CsrView&, const float*, const float*, const float*, int64_t, float*,
                                        float*, int, float, float, int);
template EpochStats als_wr_sweep<double>(const CsrView&, const double*, const double*, const double*, int64_t,
                                         double*, double*, int, double, double, int);

}  // namespace recforge::explicit_mf
