#include "recforge/factorization/als.hpp"

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "recforge/common/parallel.hpp"

namespace recforge::als {
namespace {

constexpr int64_t kGramBlockRows = 2048;  // rows per partial Gram matrix (fixed: deterministic sums)
constexpr int64_t kRowsPerTask = 4;       // rows taken from the shared counter at a time
constexpr double kTinyResidual = 1e-20;   // implicit's threshold for a converged residual
constexpr int64_t kRotateMinFactors = 32; // from here on CG works in the eigenbasis of G

template <class T>
const kernels::BasicVectorKernels<T>& K() {
    return kernels::vector_kernels_for<T>();
}

void check_params(const Params& p, int64_t f) {
    if (f <= 0) throw std::invalid_argument("the number of factors must be positive, got " + std::to_string(f));
    if (!(p.regularization >= 0.0) || !std::isfinite(p.regularization))
        throw std::invalid_argument("regularization must be finite and >= 0");
    if (!(p.unobserved_weight >= 0.0) || !std::isfinite(p.unobserved_weight))
        throw std::invalid_argument("unobserved_weight must be finite and >= 0");
    if (!std::isfinite(p.reg_exponent)) throw std::invalid_argument("reg_exponent must be finite");
    if (p.solver == Solver::ConjugateGradient && p.cg_steps <= 0)
        throw std::invalid_argument("cg_steps must be positive, got " + std::to_string(p.cg_steps));
}

void check_confidences(const CsrView& C) {
    C.validate("confidences");
    if (C.data == nullptr) throw std::invalid_argument("confidences: the matrix has no data");
    const int64_t nnz = C.nnz();
    for (int64_t k = 0; k < nnz; ++k) {
        const float c = C.data[k];
        if (!(c >= 0.0f) || !std::isfinite(c))
            throw std::invalid_argument("confidences must be finite and >= 0, found " + std::to_string(c));
    }
}

template <class T>
T row_regularization(const Params& p, int64_t n, int64_t n_cols) {
    if (p.reg_exponent == 0.0) return static_cast<T>(p.regularization);
    const double base = static_cast<double>(n) + p.unobserved_weight * static_cast<double>(n_cols);
    return static_cast<T>(p.regularization * std::pow(std::max(base, 1e-12), p.reg_exponent));
}

// Rows by decreasing length (ties by index): long rows start first, so the dynamic schedule
// never leaves one thread finishing a heavy row alone at the end.
std::vector<int64_t> heavy_first(const CsrView& C) {
    std::vector<int64_t> order(static_cast<size_t>(C.n_rows));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return C.row_end(a) - C.row_begin(a) > C.row_end(b) - C.row_begin(b);
    });
    return order;
}

int64_t longest_row(const CsrView& C) {
    int64_t m = 0;
    for (int64_t r = 0; r < C.n_rows; ++r) m = std::max(m, C.row_end(r) - C.row_begin(r));
    return m;
}

template <class T>
struct Scratch {
    std::vector<T> r, p, ap, tmp, d, coef, conf, a, b;
    Scratch(int64_t f, int64_t max_len, bool cholesky) {
        const auto fs = static_cast<size_t>(f);
        const auto ls = static_cast<size_t>(std::max<int64_t>(max_len, 1));
        r.resize(fs);
        p.resize(fs);
        ap.resize(fs);
        tmp.resize(fs);
        d.resize(ls);
        coef.resize(ls);
        if (!std::is_same_v<T, float>) conf.resize(ls);
        if (cholesky) {
            a.resize(fs * fs);
            b.resize(fs);
        }
    }
    // The row's float32 confidences as T (no copy for float).
    const T* confidences(const float* c, int64_t n) {
        if constexpr (std::is_same_v<T, float>) {
            return c;
        } else {
            for (int64_t j = 0; j < n; ++j) conf[static_cast<size_t>(j)] = static_cast<T>(c[j]);
            return conf.data();
        }
    }
};

// The upper triangle of A = w0 G + lambda I + sum_j (c_j - w0) y_j y_j^T into s.a (f x f), all
// the Cholesky kernel reads (the lower triangle is scratch space).
template <class T>
void build_system(const T* Gs, const T* Y, int64_t f, const int32_t* idx, const T* conf, int64_t n, T w0, T lam,
                  Scratch<T>& s) {
    for (int64_t r = 0; r < f; ++r) std::copy(Gs + r * f + r, Gs + (r + 1) * f, s.a.begin() + r * f + r);
    for (int64_t c = 0; c < f; ++c) s.a[static_cast<size_t>(c * f + c)] += lam;
    for (int64_t j = 0; j < n; ++j) s.coef[static_cast<size_t>(j)] = conf[j] - w0;
    K<T>().gram(Y, f, idx, s.coef.data(), n, s.a.data(), false);
}

template <class T>
void solve_cholesky(const T* Gs, const T* Y, int64_t f, const int32_t* idx, const T* conf, int64_t n, T w0, T lam,
                    T* x, Scratch<T>& s, int64_t row) {
    build_system(Gs, Y, f, idx, conf, n, w0, lam, s);
    std::fill(s.b.begin(), s.b.end(), T(0));
    K<T>().axpys(Y, f, idx, n, conf, s.b.data());
    if (!K<T>().cholesky_solve(s.a.data(), f, s.b.data()))
        throw std::invalid_argument("the least-squares system of row " + std::to_string(row) +
                                    " is not positive definite; increase the regularization");
    std::copy(s.b.begin(), s.b.end(), x);
}

// Conjugate gradient from the current x. `diag` non-null: the factors are expressed in the
// eigenbasis of w0 G, which is then the diagonal matrix diag (Gs unused).
template <class T>
void solve_cg(const T* Gs, const T* diag, const T* Y, int64_t f, const int32_t* idx, const T* conf, int64_t n, T w0,
              T lam, int steps, T* x, Scratch<T>& s) {
    const auto& k = K<T>();
    T* r = s.r.data();
    T* p = s.p.data();
    T* ap = s.ap.data();
    T* d = s.d.data();
    // w_j = c_j - w0, so that A = w0 G + lambda I + sum_j w_j y_j y_j^T
    T* w = s.coef.data();
    for (int64_t j = 0; j < n; ++j) w[j] = conf[j] - w0;
    // r = b - A x = sum_j (c_j - w_j d_j) y_j - (w0 G + lambda I) x,  d_j = y_j . x
    if (diag) {
        for (int64_t c = 0; c < f; ++c) r[c] = -(diag[c] + lam) * x[c];
    } else {
        k.dots(Gs, f, nullptr, f, x, r);
        for (int64_t c = 0; c < f; ++c) r[c] = -r[c] - lam * x[c];
    }
    for (int64_t j = 0; j < n; ++j) d[j] = -w[j];  // coefficients c_j + (-w_j) d_j
    k.dots_axpys(Y, f, idx, n, x, conf, d, r);
    std::copy(r, r + f, p);
    const T tiny = static_cast<T>(kTinyResidual);
    T rsold = k.dot(r, r, f);
    if (!(rsold >= tiny)) return;
    for (int it = 0; it < steps; ++it) {
        // Ap = (w0 G + lambda I) p + sum_j w_j (y_j . p) y_j
        if (diag) {
            for (int64_t c = 0; c < f; ++c) ap[c] = (diag[c] + lam) * p[c];
        } else {
            k.dots(Gs, f, nullptr, f, p, ap);
            for (int64_t c = 0; c < f; ++c) ap[c] += lam * p[c];
        }
        k.dots_axpys(Y, f, idx, n, p, nullptr, w, ap);
        const T pap = k.dot(p, ap, f);
        if (!(pap > T(0))) break;  // A is not positive definite along p: stop at the current x
        const T alpha = rsold / pap;
        k.axpy(alpha, p, x, f);
        k.axpy(-alpha, ap, r, f);
        const T rsnew = k.dot(r, r, f);
        if (rsnew < tiny) break;
        const T beta = rsnew / rsold;
        for (int64_t c = 0; c < f; ++c) p[c] = r[c] + beta * p[c];
        rsold = rsnew;
    }
}

template <class T>
std::vector<T> scaled_gram(const T* G, const T* Y, int64_t n_y, int64_t f, double w0, int n_threads) {
    std::vector<T> gs(static_cast<size_t>(f * f));
    if (G == nullptr) {
        gram<T>(Y, n_y, f, gs.data(), n_threads);
    } else {
        std::copy(G, G + f * f, gs.begin());
    }
    const T scale = static_cast<T>(w0);
    for (T& v : gs) v *= scale;
    return gs;
}

// w0 G = Q diag(lambda) Q^T. In the basis Q the conjugate-gradient products A p need no f x f
// matrix-vector product: w0 G is diagonal there, and only the few sparse terms remain. The
// factors are rotated in and out with two matrix products per half-iteration instead of a
// product with G in every step of every row.
template <class T>
struct Eigenbasis {
    std::vector<T> q, qt, values;  // Q and Q^T row-major, eigenvalues
};

template <class T>
Eigenbasis<T> eigenbasis(const std::vector<T>& gs, int64_t f) {
    Eigen::MatrixXd g(f, f);
    for (int64_t r = 0; r < f; ++r)
        for (int64_t c = 0; c < f; ++c) g(r, c) = gs[static_cast<size_t>(r * f + c)];
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(g);
    if (es.info() != Eigen::Success) throw std::invalid_argument("the Gram matrix has no eigendecomposition (NaN?)");
    Eigenbasis<T> b;
    const auto fs = static_cast<size_t>(f);
    b.q.resize(fs * fs);
    b.qt.resize(fs * fs);
    b.values.resize(fs);
    for (int64_t r = 0; r < f; ++r) {
        b.values[static_cast<size_t>(r)] = static_cast<T>(std::max(es.eigenvalues()(r), 0.0));
        for (int64_t c = 0; c < f; ++c) {
            b.q[static_cast<size_t>(r * f + c)] = static_cast<T>(es.eigenvectors()(r, c));
            b.qt[static_cast<size_t>(c * f + r)] = static_cast<T>(es.eigenvectors()(r, c));
        }
    }
    return b;
}

// out = A M for n rows of A, in fixed blocks of rows (the same result for any n_threads).
template <class T>
void rotate(const T* A, int64_t n, int64_t f, const T* M, T* out, int n_threads) {
    constexpr int64_t kBlock = 256;
    const auto& k = K<T>();
    parallel_for(0, (n + kBlock - 1) / kBlock, n_threads, [&](int64_t b, int) {
        const int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
        k.matmul(A + lo * f, hi - lo, f, M, out + lo * f);
    });
}

}  // namespace

template <class T>
void gram(const T* Y, int64_t n, int64_t f, T* out, int n_threads) {
    if (f <= 0) throw std::invalid_argument("the number of factors must be positive");
    if (n < 0) throw std::invalid_argument("negative number of rows");
    const int64_t n_blocks = (n + kGramBlockRows - 1) / kGramBlockRows;
    const auto ff = static_cast<size_t>(f * f);
    std::vector<T> partial(ff * static_cast<size_t>(std::max<int64_t>(n_blocks, 1)), T(0));
    const auto& k = K<T>();
    parallel_for(0, n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t lo = b * kGramBlockRows;
        const int64_t hi = std::min(n, lo + kGramBlockRows);
        k.gram(Y + lo * f, f, nullptr, nullptr, hi - lo, partial.data() + static_cast<size_t>(b) * ff, true);
    });
    std::vector<double> sum(ff, 0.0);
    for (int64_t b = 0; b < n_blocks; ++b) {
        const T* part = partial.data() + static_cast<size_t>(b) * ff;
        for (size_t i = 0; i < ff; ++i) sum[i] += part[i];
    }
    for (size_t i = 0; i < ff; ++i) out[i] = static_cast<T>(sum[i]);
}

template <class T>
void solve(const CsrView& C, const T* Y, int64_t f, const T* G, T* X, const Params& p, int n_threads) {
    check_params(p, f);
    check_confidences(C);
    if (C.n_rows == 0) return;
    const std::vector<T> gs = scaled_gram<T>(G, Y, C.n_cols, f, p.unobserved_weight, n_threads);
    const std::vector<int64_t> order = heavy_first(C);
    const int64_t max_len = longest_row(C);
    const bool cholesky = p.solver == Solver::Cholesky;
    // CG runs in the eigenbasis of w0 G (see Eigenbasis) once f is large enough for the f x f
    // products to dominate a row's work.
    const bool rotated = !cholesky && f >= kRotateMinFactors;
    Eigenbasis<T> basis;
    std::vector<T> y_rot, x_rot;
    const T* y_used = Y;
    T* x_used = X;
    if (rotated) {
        basis = eigenbasis<T>(gs, f);
        y_rot.resize(static_cast<size_t>(C.n_cols * f));
        x_rot.resize(static_cast<size_t>(C.n_rows * f));
        rotate<T>(Y, C.n_cols, f, basis.q.data(), y_rot.data(), n_threads);
        rotate<T>(X, C.n_rows, f, basis.q.data(), x_rot.data(), n_threads);
        y_used = y_rot.data();
        x_used = x_rot.data();
    }
    const T* diag = rotated ? basis.values.data() : nullptr;
    const T w0 = static_cast<T>(p.unobserved_weight);
    const int workers = planned_workers(C.n_rows, n_threads, kRowsPerTask);
    std::vector<Scratch<T>> scratch;
    scratch.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) scratch.emplace_back(f, max_len, cholesky);
    parallel_for(
        0, C.n_rows, workers,
        [&](int64_t i, int worker) {
            const int64_t row = order[static_cast<size_t>(i)];
            const int64_t begin = C.row_begin(row);
            const int64_t n = C.row_end(row) - begin;
            T* x = x_used + row * f;
            if (n == 0) {
                std::fill(x, x + f, T(0));
                return;
            }
            const T lam = row_regularization<T>(p, n, C.n_cols);
            Scratch<T>& s = scratch[static_cast<size_t>(worker)];
            const T* conf = s.confidences(C.data + begin, n);
            if (cholesky) {
                solve_cholesky<T>(gs.data(), Y, f, C.indices + begin, conf, n, w0, lam, x, s, row);
            } else {
                solve_cg<T>(gs.data(), diag, y_used, f, C.indices + begin, conf, n, w0, lam, p.cg_steps, x, s);
            }
        },
        kRowsPerTask);
    if (rotated) rotate<T>(x_rot.data(), C.n_rows, f, basis.qt.data(), X, n_threads);
}

template <class T>
double loss(const CsrView& C, const T* X, const T* Y, int64_t f, const T* G, const Params& p, int n_threads) {
    check_params(p, f);
    check_confidences(C);
    if (C.n_rows == 0) return 0.0;
    const std::vector<T> gs = scaled_gram<T>(G, Y, C.n_cols, f, p.unobserved_weight, n_threads);
    const int64_t max_len = longest_row(C);
    const int workers = planned_workers(C.n_rows, n_threads, 64);
    std::vector<Scratch<T>> scratch;
    scratch.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) scratch.emplace_back(f, max_len, false);
    std::vector<double> per_row(static_cast<size_t>(C.n_rows), 0.0);
    const double w0 = p.unobserved_weight;
    parallel_for(
        0, C.n_rows, workers,
        [&](int64_t row, int worker) {
            const auto& k = K<T>();
            Scratch<T>& s = scratch[static_cast<size_t>(worker)];
            const T* x = X + row * f;
            const int64_t begin = C.row_begin(row);
            const int64_t n = C.row_end(row) - begin;
            k.dots(gs.data(), f, nullptr, f, x, s.tmp.data());
            const double xx = k.dot(x, x, f);
            double v = static_cast<double>(k.dot(x, s.tmp.data(), f)) +
                       static_cast<double>(row_regularization<T>(p, n, C.n_cols)) * xx;
            if (n > 0) {
                k.dots(Y, f, C.indices + begin, n, x, s.d.data());
                for (int64_t j = 0; j < n; ++j) {
                    const double dj = s.d[static_cast<size_t>(j)];
                    const double c = C.data[begin + j];
                    v += c * (1.0 - dj) * (1.0 - dj) - w0 * dj * dj;
                }
            }
            per_row[static_cast<size_t>(row)] = v;
        },
        64);
    double total = 0.0;
    for (double v : per_row) total += v;
    return total;
}

template <class T>
double explain(const int32_t* items, const float* conf, int64_t n, int64_t n_cols, const T* Y, int64_t f,
               const T* G, int32_t target, const Params& p, T* contributions) {
    check_params(p, f);
    if (target < 0 || target >= n_cols)
        throw std::out_of_range("item " + std::to_string(target) + " outside [0, " + std::to_string(n_cols) + ")");
    for (int64_t j = 0; j < n; ++j) {
        if (items[j] < 0 || items[j] >= n_cols)
            throw std::out_of_range("history item " + std::to_string(items[j]) + " outside [0, " +
                                    std::to_string(n_cols) + ")");
        if (!(conf[j] >= 0.0f) || !std::isfinite(conf[j]))
            throw std::invalid_argument("confidences must be finite and >= 0");
    }
    if (n == 0) return 0.0;
    const std::vector<T> gs = scaled_gram<T>(G, Y, n_cols, f, p.unobserved_weight, 1);
    Scratch<T> s(f, n, true);
    const T* c = s.confidences(conf, n);
    build_system<T>(gs.data(), Y, f, items, c, n, static_cast<T>(p.unobserved_weight),
                    row_regularization<T>(p, n, n_cols), s);
    // z = W^-1 y_target, then s_j = c_j (z . y_j)
    std::copy(Y + static_cast<int64_t>(target) * f, Y + static_cast<int64_t>(target + 1) * f, s.b.begin());
    const auto& k = K<T>();
    if (!k.cholesky_solve(s.a.data(), f, s.b.data()))
        throw std::invalid_argument("the user's least-squares system is not positive definite; increase the "
                                    "regularization");
    k.dots(Y, f, items, n, s.b.data(), contributions);
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        contributions[j] *= c[j];
        total += contributions[j];
    }
    return total;
}

#define RECFORGE_ALS_INSTANTIATE(T)                                                                              \
    template void gram<T>(const T*, int64_t, int64_t, T*, int);                                                 \
    template void solve<T>(const CsrView&, const T*, int64_t, const T*, T*, const Params&, int);                \
    template double loss<T>(const CsrView&, const T*, const T*, int64_t, const T*, const Params&, int);         \
    template double explain<T>(const int32_t*, const float*, int64_t, int64_t, const T*, int64_t, const T*,     \
                               int32_t, const Params&, T*);
RECFORGE_ALS_INSTANTIATE(float)
RECFORGE_ALS_INSTANTIATE(double)
#undef RECFORGE_ALS_INSTANTIATE

}  // namespace recforge::als
