#include "recforge/factorization/als.hpp"

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/common/parallel.hpp"

namespace recforge::als {
namespace {

constexpr int64_t kGramBlockRows = 2048;  // rows per partial Gram matrix (fixed: deterministic sums)
constexpr int64_t kRowsPerTask = 4;       // rows taken from the shared counter at a time
constexpr float kTinyResidual = 1e-20f;   // implicit's threshold for a converged residual
constexpr int64_t kRotateMinFactors = 32; // from here on CG works in the eigenbasis of G


void check_params(const Params& p, int64_t f) {
    if (f <= 0) throw std::invalid_argument("the number of factors must be positive, got " + std::to_string(f));
    if (!(p.regularization >= 0.0f) || !std::isfinite(p.regularization))
        throw std::invalid_argument("regularization must be finite and >= 0");
    if (!(p.unobserved_weight >= 0.0f) || !std::isfinite(p.unobserved_weight))
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

float row_regularization(const Params& p, int64_t n, int64_t n_cols) {
    if (p.reg_exponent == 0.0f) return p.regularization;
    const double base = static_cast<double>(n) + static_cast<double>(p.unobserved_weight) * static_cast<double>(n_cols);
    return static_cast<float>(p.regularization * std::pow(std::max(base, 1e-12), static_cast<double>(p.reg_exponent)));
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

struct Scratch {
    std::vector<float> r, p, ap, tmp, d, coef, a, b;
    Scratch(int64_t f, int64_t max_len, bool cholesky) {
        const auto fs = static_cast<size_t>(f);
        r.resize(fs);
        p.resize(fs);
        ap.resize(fs);
        tmp.resize(fs);
        d.resize(static_cast<size_t>(std::max<int64_t>(max_len, 1)));
        coef.resize(static_cast<size_t>(std::max<int64_t>(max_len, 1)));
        if (cholesky) {
            a.resize(fs * fs);
            b.resize(fs);
        }
    }
};

// The upper triangle of A = w0 G + lambda I + sum_j (c_j - w0) y_j y_j^T into s.a (f x f), all
// the Cholesky kernel reads (the lower triangle is scratch space).
void build_system(const float* Gs, const float* Y, int64_t f, const int32_t* idx, const float* conf, int64_t n,
                  float w0, float lam, Scratch& s) {
    const auto& K = kernels::vector_kernels();
    for (int64_t r = 0; r < f; ++r) std::copy(Gs + r * f + r, Gs + (r + 1) * f, s.a.begin() + r * f + r);
    for (int64_t c = 0; c < f; ++c) s.a[static_cast<size_t>(c * f + c)] += lam;
    for (int64_t j = 0; j < n; ++j) s.coef[static_cast<size_t>(j)] = conf[j] - w0;
    K.gram(Y, f, idx, s.coef.data(), n, s.a.data(), false);
}

void solve_cholesky(const float* Gs, const float* Y, int64_t f, const int32_t* idx, const float* conf, int64_t n,
                    float w0, float lam, float* x, Scratch& s, int64_t row) {
    const auto& K = kernels::vector_kernels();
    build_system(Gs, Y, f, idx, conf, n, w0, lam, s);
    std::fill(s.b.begin(), s.b.end(), 0.0f);
    K.axpys(Y, f, idx, n, conf, s.b.data());
    if (!K.cholesky_solve(s.a.data(), f, s.b.data()))
        throw std::invalid_argument("the least-squares system of row " + std::to_string(row) +
                                    " is not positive definite; increase the regularization");
    std::copy(s.b.begin(), s.b.end(), x);
}

// Conjugate gradient from the current x. `diag` non-null: the factors are expressed in the
// eigenbasis of w0 G, which is then the diagonal matrix diag (Gs unused).
void solve_cg(const float* Gs, const float* diag, const float* Y, int64_t f, const int32_t* idx, const float* conf,
              int64_t n, float w0, float lam, int steps, float* x, Scratch& s) {
    const auto& K = kernels::vector_kernels();
    float* r = s.r.data();
    float* p = s.p.data();
    float* ap = s.ap.data();
    float* d = s.d.data();
    float* coef = s.coef.data();
    // w_j = c_j - w0, so that A = w0 G + lambda I + sum_j w_j y_j y_j^T
    float* w = coef;
    for (int64_t j = 0; j < n; ++j) w[j] = conf[j] - w0;
    // r = b - A x = sum_j (c_j - w_j d_j) y_j - (w0 G + lambda I) x,  d_j = y_j . x
    if (diag) {
        for (int64_t c = 0; c < f; ++c) r[c] = -(diag[c] + lam) * x[c];
    } else {
        K.dots(Gs, f, nullptr, f, x, r);
        for (int64_t c = 0; c < f; ++c) r[c] = -r[c] - lam * x[c];
    }
    for (int64_t j = 0; j < n; ++j) d[j] = -w[j];  // coefficients c_j + (-w_j) d_j
    K.dots_axpys(Y, f, idx, n, x, conf, d, r);
    std::copy(r, r + f, p);
    float rsold = K.dot(r, r, f);
    if (!(rsold >= kTinyResidual)) return;
    for (int it = 0; it < steps; ++it) {
        // Ap = (w0 G + lambda I) p + sum_j w_j (y_j . p) y_j
        if (diag) {
            for (int64_t c = 0; c < f; ++c) ap[c] = (diag[c] + lam) * p[c];
        } else {
            K.dots(Gs, f, nullptr, f, p, ap);
            for (int64_t c = 0; c < f; ++c) ap[c] += lam * p[c];
        }
        K.dots_axpys(Y, f, idx, n, p, nullptr, w, ap);
        const float pap = K.dot(p, ap, f);
        if (!(pap > 0.0f)) break;  // A is not positive definite along p: stop at the current x
        const float alpha = rsold / pap;
        K.axpy(alpha, p, x, f);
        K.axpy(-alpha, ap, r, f);
        const float rsnew = K.dot(r, r, f);
        if (rsnew < kTinyResidual) break;
        const float beta = rsnew / rsold;
        for (int64_t c = 0; c < f; ++c) p[c] = r[c] + beta * p[c];
        rsold = rsnew;
    }
}

std::vector<float> scaled_gram(const float* G, const float* Y, int64_t n_y, int64_t f, float w0, int n_threads) {
    std::vector<float> gs(static_cast<size_t>(f * f));
    if (G == nullptr) {
        gram(Y, n_y, f, gs.data(), n_threads);
    } else {
        std::copy(G, G + f * f, gs.begin());
    }
    for (float& v : gs) v *= w0;
    return gs;
}

// w0 G = Q diag(lambda) Q^T. In the basis Q the conjugate-gradient products A p need no f x f
// matrix-vector product: w0 G is diagonal there, and only the few sparse terms remain. The
// factors are rotated in and out with two matrix products per half-iteration instead of a
// product with G in every step of every row.
struct Eigenbasis {
    std::vector<float> q, qt, values;  // Q and Q^T row-major, eigenvalues
};

Eigenbasis eigenbasis(const std::vector<float>& gs, int64_t f) {
    Eigen::MatrixXd g(f, f);
    for (int64_t r = 0; r < f; ++r)
        for (int64_t c = 0; c < f; ++c) g(r, c) = gs[static_cast<size_t>(r * f + c)];
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(g);
    if (es.info() != Eigen::Success) throw std::invalid_argument("the Gram matrix has no eigendecomposition (NaN?)");
    Eigenbasis b;
    const auto fs = static_cast<size_t>(f);
    b.q.resize(fs * fs);
    b.qt.resize(fs * fs);
    b.values.resize(fs);
    for (int64_t r = 0; r < f; ++r) {
        b.values[static_cast<size_t>(r)] = static_cast<float>(std::max(es.eigenvalues()(r), 0.0));
        for (int64_t c = 0; c < f; ++c) {
            b.q[static_cast<size_t>(r * f + c)] = static_cast<float>(es.eigenvectors()(r, c));
            b.qt[static_cast<size_t>(c * f + r)] = static_cast<float>(es.eigenvectors()(r, c));
        }
    }
    return b;
}

// out = A M for n rows of A, in fixed blocks of rows (the same result for any n_threads).
void rotate(const float* A, int64_t n, int64_t f, const float* M, float* out, int n_threads) {
    constexpr int64_t kBlock = 256;
    const auto& K = kernels::vector_kernels();
    parallel_for(0, (n + kBlock - 1) / kBlock, n_threads, [&](int64_t b, int) {
        const int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
        K.matmul(A + lo * f, hi - lo, f, M, out + lo * f);
    });
}

}  // namespace

void gram(const float* Y, int64_t n, int64_t f, float* out, int n_threads) {
    if (f <= 0) throw std::invalid_argument("the number of factors must be positive");
    if (n < 0) throw std::invalid_argument("negative number of rows");
    const int64_t n_blocks = (n + kGramBlockRows - 1) / kGramBlockRows;
    const auto ff = static_cast<size_t>(f * f);
    std::vector<float> partial(ff * static_cast<size_t>(std::max<int64_t>(n_blocks, 1)), 0.0f);
    const auto& K = kernels::vector_kernels();
    parallel_for(0, n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t lo = b * kGramBlockRows;
        const int64_t hi = std::min(n, lo + kGramBlockRows);
        K.gram(Y + lo * f, f, nullptr, nullptr, hi - lo, partial.data() + static_cast<size_t>(b) * ff, true);
    });
    std::vector<double> sum(ff, 0.0);
    for (int64_t b = 0; b < n_blocks; ++b) {
        const float* part = partial.data() + static_cast<size_t>(b) * ff;
        for (size_t k = 0; k < ff; ++k) sum[k] += part[k];
    }
    for (size_t k = 0; k < ff; ++k) out[k] = static_cast<float>(sum[k]);
}

void solve(const CsrView& C, const float* Y, int64_t f, const float* G, float* X, const Params& p, int n_threads) {
    check_params(p, f);
    check_confidences(C);
    if (C.n_rows == 0) return;
    const std::vector<float> gs = scaled_gram(G, Y, C.n_cols, f, p.unobserved_weight, n_threads);
    const std::vector<int64_t> order = heavy_first(C);
    const int64_t max_len = longest_row(C);
    const bool cholesky = p.solver == Solver::Cholesky;
    // CG runs in the eigenbasis of w0 G (see Eigenbasis) once f is large enough for the f x f
    // products to dominate a row's work.
    const bool rotated = !cholesky && f >= kRotateMinFactors;
    Eigenbasis basis;
    std::vector<float> y_rot, x_rot;
    const float* y_used = Y;
    float* x_used = X;
    if (rotated) {
        basis = eigenbasis(gs, f);
        y_rot.resize(static_cast<size_t>(C.n_cols * f));
        x_rot.resize(static_cast<size_t>(C.n_rows * f));
        rotate(Y, C.n_cols, f, basis.q.data(), y_rot.data(), n_threads);
        rotate(X, C.n_rows, f, basis.q.data(), x_rot.data(), n_threads);
        y_used = y_rot.data();
        x_used = x_rot.data();
    }
    const float* diag = rotated ? basis.values.data() : nullptr;
    const int workers = planned_workers(C.n_rows, n_threads, kRowsPerTask);
    std::vector<Scratch> scratch;
    scratch.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) scratch.emplace_back(f, max_len, cholesky);
    parallel_for(
        0, C.n_rows, workers,
        [&](int64_t i, int worker) {
            const int64_t row = order[static_cast<size_t>(i)];
            const int64_t begin = C.row_begin(row);
            const int64_t n = C.row_end(row) - begin;
            float* x = x_used + row * f;
            if (n == 0) {
                std::fill(x, x + f, 0.0f);
                return;
            }
            const float lam = row_regularization(p, n, C.n_cols);
            Scratch& s = scratch[static_cast<size_t>(worker)];
            if (cholesky) {
                solve_cholesky(gs.data(), Y, f, C.indices + begin, C.data + begin, n, p.unobserved_weight, lam, x, s,
                               row);
            } else {
                solve_cg(gs.data(), diag, y_used, f, C.indices + begin, C.data + begin, n, p.unobserved_weight, lam,
                         p.cg_steps, x, s);
            }
        },
        kRowsPerTask);
    if (rotated) rotate(x_rot.data(), C.n_rows, f, basis.qt.data(), X, n_threads);
}

double loss(const CsrView& C, const float* X, const float* Y, int64_t f, const float* G, const Params& p,
            int n_threads) {
    check_params(p, f);
    check_confidences(C);
    if (C.n_rows == 0) return 0.0;
    const std::vector<float> gs = scaled_gram(G, Y, C.n_cols, f, p.unobserved_weight, n_threads);
    const int64_t max_len = longest_row(C);
    const int workers = planned_workers(C.n_rows, n_threads, 64);
    std::vector<Scratch> scratch;
    scratch.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) scratch.emplace_back(f, max_len, false);
    std::vector<double> per_row(static_cast<size_t>(C.n_rows), 0.0);
    const float w0 = p.unobserved_weight;
    parallel_for(
        0, C.n_rows, workers,
        [&](int64_t row, int worker) {
            const auto& K = kernels::vector_kernels();
            Scratch& s = scratch[static_cast<size_t>(worker)];
            const float* x = X + row * f;
            const int64_t begin = C.row_begin(row);
            const int64_t n = C.row_end(row) - begin;
            K.dots(gs.data(), f, nullptr, f, x, s.tmp.data());
            const double xx = K.dot(x, x, f);
            double v = K.dot(x, s.tmp.data(), f) + row_regularization(p, n, C.n_cols) * xx;
            if (n > 0) {
                K.dots(Y, f, C.indices + begin, n, x, s.d.data());
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

double explain(const int32_t* items, const float* conf, int64_t n, int64_t n_cols, const float* Y, int64_t f,
               const float* G, int32_t target, const Params& p, float* contributions) {
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
    const std::vector<float> gs = scaled_gram(G, Y, n_cols, f, p.unobserved_weight, 1);
    Scratch s(f, n, true);
    build_system(gs.data(), Y, f, items, conf, n, p.unobserved_weight, row_regularization(p, n, n_cols), s);
    // z = W^-1 y_target, then s_j = c_j (z . y_j)
    std::copy(Y + static_cast<int64_t>(target) * f, Y + static_cast<int64_t>(target + 1) * f, s.b.begin());
    if (!kernels::vector_kernels().cholesky_solve(s.a.data(), f, s.b.data()))
        throw std::invalid_argument("the user's least-squares system is not positive definite; increase the "
                                    "regularization");
    const auto& K = kernels::vector_kernels();
    K.dots(Y, f, items, n, s.b.data(), contributions);
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        contributions[j] *= conf[j];
        total += contributions[j];
    }
    return total;
}

}  // namespace recforge::als
