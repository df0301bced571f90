// Implicit-feedback factorization kernels: ALS half-iterations, BPR epochs, EASE.
#include <algorithm>
#include <string>

#include "common.hpp"
#include "recforge/factorization/als.hpp"
#include "recforge/factorization/bpr.hpp"
#include "recforge/factorization/ease.hpp"

using namespace recforge;
using namespace recforge::bindings;

namespace {

template <class T>
void require_factors(const CArray<T>& a, int64_t rows, int64_t f, const char* name) {
    require_ndim(a, 2, name);
    if (a.shape(0) != rows || a.shape(1) != f)
        throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                                    std::to_string(f) + "), got (" + std::to_string(a.shape(0)) + ", " +
                                    std::to_string(a.shape(1)) + ")");
}

template <class T>
void require_vector(const CArray<T>& a, int64_t n, const char* name) {
    require_ndim(a, 1, name);
    if (a.shape(0) != n)
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(n) + " entries, got " +
                                    std::to_string(a.shape(0)));
}

template <class T>
const T* optional_gram(const std::optional<CArray<T>>& g, int64_t f) {
    if (!g) return nullptr;
    require_factors(*g, f, f, "gram");
    return g->data();
}

als::Params als_params(double regularization, double unobserved_weight, double reg_exponent, int solver,
                       int cg_steps) {
    if (solver != 0 && solver != 1) throw std::invalid_argument("solver must be 0 (cg) or 1 (cholesky)");
    als::Params p;
    p.regularization = regularization;
    p.unobserved_weight = unobserved_weight;
    p.reg_exponent = reg_exponent;
    p.solver = static_cast<als::Solver>(solver);
    p.cg_steps = cg_steps;
    return p;
}

bpr::Params bpr_params(double learning_rate, double regularization, double bias_regularization,
                       bool verify_negatives, int negatives, uint64_t seed, int negative_draws = 64, int loss = 0) {
    if (loss != 0 && loss != 1) throw std::invalid_argument("loss must be 0 (bpr) or 1 (logistic)");
    if (negatives != 0 && negatives != 1) throw std::invalid_argument("negatives must be 0 (uniform) or 1 (popularity)");
    bpr::Params p;
    p.learning_rate = learning_rate;
    p.regularization = regularization;
    p.bias_regularization = bias_regularization;
    p.verify_negatives = verify_negatives;
    p.negatives = static_cast<bpr::Negatives>(negatives);
    p.seed = seed;
    p.negative_draws = negative_draws;
    p.loss = static_cast<bpr::Loss>(loss);
    return p;
}

template <class T>
T* optional_bias(std::optional<CArray<T>>& bias, int64_t n) {
    if (!bias) return nullptr;
    require_vector(*bias, n, "bias");
    return bias->mutable_data();
}

// The ALS and BPR kernels for factors of type T (float32 or float64): one overload per type, so
// the factor arrays (never converted) pick the kernel; the confidences stay float32.
template <class T>
void bind_factor_kernels(py::module_& m) {
    m.def(
        "als_gram",
        [](const CArray<T>& Y, int n_threads) {
            require_ndim(Y, 2, "factors");
            const int64_t n = Y.shape(0), f = Y.shape(1);
            CArray<T> out({f, f});
            {
                py::gil_scoped_release release;
                als::gram<T>(Y.data(), n, f, out.mutable_data(), n_threads);
            }
            return out;
        },
        py::arg("factors").noconvert(), py::arg("n_threads") = 0, "Y^T Y of a float32 or float64 factor matrix.");

    m.def(
        "als_solve",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data, int64_t n_cols,
           CArray<T>& X, const CArray<T>& Y, const std::optional<CArray<T>>& gram, double regularization,
           double unobserved_weight, double reg_exponent, int solver, int cg_steps, int n_threads) {
            require_ndim(X, 2, "X");
            const int64_t n_rows = X.shape(0), f = X.shape(1);
            require_factors(Y, n_cols, f, "Y");
            const CsrView c = csr_view(indptr, indices, data, n_rows, n_cols, "confidences");
            const T* g = optional_gram(gram, f);
            const als::Params p = als_params(regularization, unobserved_weight, reg_exponent, solver, cg_steps);
            T* x = X.mutable_data();
            py::gil_scoped_release release;
            als::solve<T>(c, Y.data(), f, g, x, p, n_threads);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("n_cols"), py::arg("X").noconvert(), py::arg("Y").noconvert(),
        py::arg("gram").noconvert() = py::none(), py::arg("regularization") = 0.01,
        py::arg("unobserved_weight") = 1.0, py::arg("reg_exponent") = 0.0, py::arg("solver") = 0,
        py::arg("cg_steps") = 3, py::arg("n_threads") = 0,
        "One ALS half-iteration: updates every row of X (in place) from Y and the confidences.");

    m.def(
        "als_loss",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data, int64_t n_cols,
           const CArray<T>& X, const CArray<T>& Y, const std::optional<CArray<T>>& gram, double regularization,
           double unobserved_weight, double reg_exponent, int n_threads) {
            require_ndim(X, 2, "X");
            const int64_t n_rows = X.shape(0), f = X.shape(1);
            require_factors(Y, n_cols, f, "Y");
            const CsrView c = csr_view(indptr, indices, data, n_rows, n_cols, "confidences");
            const T* g = optional_gram(gram, f);
            const als::Params p = als_params(regularization, unobserved_weight, reg_exponent, 0, 1);
            py::gil_scoped_release release;
            return als::loss<T>(c, X.data(), Y.data(), f, g, p, n_threads);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("n_cols"), py::arg("X").noconvert(), py::arg("Y").noconvert(),
        py::arg("gram").noconvert() = py::none(), py::arg("regularization") = 0.01,
        py::arg("unobserved_weight") = 1.0, py::arg("reg_exponent") = 0.0, py::arg("n_threads") = 0,
        "The weighted squared loss plus the rows' regularization.");

    m.def(
        "als_explain",
        [](const CArray<int32_t>& items, const CArray<float>& conf, const CArray<T>& Y,
           const std::optional<CArray<T>>& gram, int32_t target, double regularization, double unobserved_weight,
           double reg_exponent) {
            require_ndim(items, 1, "items");
            require_vector(conf, items.shape(0), "confidences");
            require_ndim(Y, 2, "Y");
            const int64_t n = items.shape(0), n_cols = Y.shape(0), f = Y.shape(1);
            const T* g = optional_gram(gram, f);
            const als::Params p = als_params(regularization, unobserved_weight, reg_exponent, 1, 1);
            CArray<T> out(n);
            double total;
            {
                py::gil_scoped_release release;
                total = als::explain<T>(items.data(), conf.data(), n, n_cols, Y.data(), f, g, target, p,
                                        out.mutable_data());
            }
            return py::make_tuple(out, total);
        },
        py::arg("items").noconvert(), py::arg("confidences").noconvert(), py::arg("Y").noconvert(),
        py::arg("gram").noconvert() = py::none(), py::arg("target") = 0, py::arg("regularization") = 0.01,
        py::arg("unobserved_weight") = 1.0, py::arg("reg_exponent") = 0.0,
        "Per-history-item contributions to one score (Hu et al. section 5); returns (contributions, total).");

    m.def(
        "bpr_epoch",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, int64_t n_items, CArray<T>& U,
           CArray<T>& V, std::optional<CArray<T>> bias, double learning_rate, double regularization,
           double bias_regularization, bool verify_negatives, int negatives, int negative_draws, uint64_t seed,
           int64_t epoch, int n_threads, const std::optional<CArray<int32_t>>& row_of,
           const std::optional<CArray<uint64_t>>& filter, int loss) {
            require_ndim(U, 2, "user_factors");
            const int64_t n_users = U.shape(0), f = U.shape(1);
            require_factors(V, n_items, f, "item_factors");
            const CsrView r = csr_view(indptr, indices, std::nullopt, n_users, n_items, "interactions");
            const bpr::Params p =
                bpr_params(learning_rate, regularization, bias_regularization, verify_negatives, negatives, seed,
                           negative_draws, loss);
            T* u = U.mutable_data();
            T* v = V.mutable_data();
            T* b = optional_bias(bias, n_items);
            bpr::Prepared prep;
            if (row_of && filter) {
                require_ndim(*row_of, 1, "row_of");
                require_ndim(*filter, 1, "filter");
                if (row_of->shape(0) != r.nnz()) throw std::invalid_argument("row_of must have one entry per interaction");
                prep.row_of = row_of->data();
                prep.filter = filter->data();
                prep.n_words = filter->shape(0);
            }
            bpr::EpochStats s;
            {
                py::gil_scoped_release release;
                s = bpr::epoch<T>(r, u, v, b, f, p, epoch, n_threads, prep);
            }
            py::dict out;
            out["samples"] = s.samples;
            out["skipped"] = s.skipped;
            out["correct"] = s.correct;
            out["loss"] = s.loss;
            return out;
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("n_items"),
        py::arg("user_factors").noconvert(), py::arg("item_factors").noconvert(),
        py::arg("bias").noconvert() = py::none(), py::arg("learning_rate") = 0.01, py::arg("regularization") = 0.01,
        py::arg("bias_regularization") = 0.01, py::arg("verify_negatives") = true, py::arg("negatives") = 0,
        py::arg("negative_draws") = 64, py::arg("seed") = 0, py::arg("epoch") = 0, py::arg("n_threads") = 0,
        py::arg("row_of").noconvert() = py::none(), py::arg("filter").noconvert() = py::none(), py::arg("loss") = 0,
        "One BPR epoch (as many triples as interactions), factors updated in place; returns statistics.");

    m.def(
        "bpr_fold_in",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, CArray<T>& U, const CArray<T>& V,
           const std::optional<CArray<T>>& bias, int epochs, double learning_rate, double regularization,
           bool verify_negatives, uint64_t seed, int n_threads, int loss) {
            require_ndim(U, 2, "user_factors");
            require_ndim(V, 2, "item_factors");
            const int64_t n_rows = U.shape(0), f = U.shape(1), n_items = V.shape(0);
            require_factors(V, n_items, f, "item_factors");
            if (bias) require_vector(*bias, n_items, "bias");
            const CsrView r = csr_view(indptr, indices, std::nullopt, n_rows, n_items, "interactions");
            const bpr::Params p = bpr_params(learning_rate, regularization, 0.0, verify_negatives, 0, seed, 64, loss);
            T* u = U.mutable_data();
            py::gil_scoped_release release;
            bpr::fold_in<T>(r, u, V.data(), bias ? bias->data() : nullptr, f, epochs, p, n_threads);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("user_factors").noconvert(),
        py::arg("item_factors").noconvert(), py::arg("bias").noconvert() = py::none(), py::arg("epochs") = 10,
        py::arg("learning_rate") = 0.01, py::arg("regularization") = 0.01, py::arg("verify_negatives") = true,
        py::arg("seed") = 0, py::arg("n_threads") = 0, py::arg("loss") = 0,
        "User factors of new rows by SGD with the item factors fixed (in place).");
}

}  // namespace

void bind_factorization_implicit(py::module_& m) {
    m.def("vector_kernel_name", []() { return std::string(als::kernels::vector_kernels().name); },
          "The dense float32 vector kernels chosen for this CPU.");
    m.def("vector_kernel_name_f64", []() { return std::string(als::kernels::vector_kernels_for<double>().name); },
          "The dense float64 vector kernels chosen for this CPU.");

    // ALS and BPR: float32 first (the default), then float64
    bind_factor_kernels<float>(m);
    bind_factor_kernels<double>(m);

    m.def(
        "bpr_prepare",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, int64_t n_items) {
            const int64_t n_rows = indptr.shape(0) - 1;
            const CsrView r = csr_view(indptr, indices, std::nullopt, n_rows, n_items, "interactions");
            CArray<int32_t> row_of(std::max<int64_t>(r.nnz(), 0));
            CArray<uint64_t> filter(bpr::filter_words(r.nnz()));
            int32_t* ro = row_of.mutable_data();
            uint64_t* fw = filter.mutable_data();
            {
                py::gil_scoped_release release;
                bpr::prepare(r, ro, fw, filter.shape(0));
            }
            return py::make_tuple(row_of, filter);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("n_items"),
        "Checks the interactions and returns (row_of, filter) for bpr_epoch.");

    m.def(
        "bpr_triple_loss",
        [](const CArray<float>& u, const CArray<float>& qi, const CArray<float>& qj, float bi, float bj,
           float regularization, float bias_regularization, int loss) {
            if (loss != 0 && loss != 1) throw std::invalid_argument("loss must be 0 (bpr) or 1 (logistic)");
            require_ndim(u, 1, "u");
            const int64_t f = u.shape(0);
            require_vector(qi, f, "qi");
            require_vector(qj, f, "qj");
            CArray<float> gu(f), gi(f), gj(f);
            float gbi = 0.0f, gbj = 0.0f;
            const double value = bpr::triple_loss(u.data(), qi.data(), qj.data(), bi, bj, f, regularization,
                                                  bias_regularization, gu.mutable_data(), gi.mutable_data(),
                                                  gj.mutable_data(), &gbi, &gbj, static_cast<bpr::Loss>(loss));
            return py::make_tuple(value, gu, gi, gj, gbi, gbj);
        },
        py::arg("u").noconvert(), py::arg("qi").noconvert(), py::arg("qj").noconvert(), py::arg("bi") = 0.0f,
        py::arg("bj") = 0.0f, py::arg("regularization") = 0.01f, py::arg("bias_regularization") = 0.01f,
        py::arg("loss") = 0,
        "BPR (loss=0) or logistic (loss=1) loss of one triple and its gradient: (loss, d/du, d/dqi, d/dqj, d/dbi, d/dbj).");

    // ------------------------------------------------------------------------------------------
    // EASE
    // ------------------------------------------------------------------------------------------
    m.def(
        "ease_fit",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data, int64_t n_users,
           int64_t n_items, double lambda, bool double_precision, int n_threads) {
            const CsrView x = csr_view(indptr, indices, data, n_users, n_items, "interactions");
            CArray<float> B({n_items, n_items});
            float* b = B.mutable_data();
            {
                py::gil_scoped_release release;
                ease::fit(x, lambda, double_precision, b, n_threads);
            }
            return B;
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("n_users"), py::arg("n_items"), py::arg("lambda_") = 500.0, py::arg("double_precision") = false,
        py::arg("n_threads") = 0, "EASE's item-item weights B (n_items x n_items, zero diagonal).");

    m.def(
        "ease_scores",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data,
           const CArray<float>& B, int n_threads) {
            require_ndim(B, 2, "B");
            const int64_t n_items = B.shape(0);
            require_factors(B, n_items, n_items, "B");
            const int64_t n_rows = indptr.shape(0) - 1;
            const CsrView x = csr_view(indptr, indices, data, n_rows, n_items, "rows");
            CArray<float> out({n_rows, n_items});
            float* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                ease::scores(x, B.data(), n_items, o, n_threads);
            }
            return out;
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("B").noconvert(), py::arg("n_threads") = 0, "Dense scores rows x B for a CSR of user rows.");
}
