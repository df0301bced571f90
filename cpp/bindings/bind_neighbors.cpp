#include <algorithm>
#include <utility>

#include "common.hpp"
#include "recforge/neighbors.hpp"

using namespace recforge;
using namespace recforge::bindings;

namespace {

// Hands a result vector to NumPy without copying: a capsule owns it and frees it with the array.
template <class T>
CArray<T> to_array(std::vector<T>&& v) {
    auto* owned = new std::vector<T>(std::move(v));
    py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return CArray<T>(static_cast<py::ssize_t>(owned->size()), owned->data(), owner);
}

const double* optional_vector(const std::optional<CArray<double>>& a, int64_t n, const char* name) {
    if (!a) return nullptr;
    require_ndim(*a, 1, name);
    if (a->shape(0) != n)
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(n) + " entries, got " +
                                    std::to_string(a->shape(0)));
    return a->data();
}

}  // namespace

void bind_neighbors(py::module_& m) {
    m.attr("SIMILARITY_CODES") = py::dict(
        py::arg("dot") = 0, py::arg("cosine") = 1, py::arg("adjusted_cosine") = 2, py::arg("pearson") = 3,
        py::arg("jaccard") = 4, py::arg("asymmetric_cosine") = 5, py::arg("msd") = 6,
        py::arg("pearson_baseline") = 7, py::arg("bm25") = 8, py::arg("tfidf") = 9);

    m.def(
        "similarity_topk",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data,
           int64_t n_rows, int64_t n_cols, const std::optional<CArray<int32_t>>& rows, int kind,
           bool co_rated, int k, bool include_self, bool positive_only, double shrink, int min_support,
           double alpha, double bm25_k1, double bm25_b, double global_mean,
           const std::optional<CArray<double>>& row_bias, const std::optional<CArray<double>>& col_bias,
           int n_threads) {
            const CsrView x = csr_view(indptr, indices, data, n_rows, n_cols, "interactions");
            SimilarityOptions o;
            o.kind = static_cast<Similarity>(kind);
            o.co_rated = co_rated;
            o.k = k;
            o.include_self = include_self;
            o.positive_only = positive_only;
            o.shrink = shrink;
            o.min_support = min_support;
            o.alpha = alpha;
            o.bm25_k1 = bm25_k1;
            o.bm25_b = bm25_b;
            o.global_mean = global_mean;
            o.row_bias = optional_vector(row_bias, n_rows, "row_bias");
            o.col_bias = optional_vector(col_bias, n_cols, "col_bias");
            if (rows) require_ndim(*rows, 1, "rows");
            const int32_t* row_ptr = rows ? rows->data() : nullptr;
            const int64_t n_query = rows ? rows->shape(0) : n_rows;
            SparseResult res;
            {
                py::gil_scoped_release release;
                res = similarity_topk(x, row_ptr, n_query, o, n_threads);
            }
            return py::make_tuple(to_array(std::move(res.indptr)), to_array(std::move(res.indices)),
                                  to_array(std::move(res.data)));
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("n_rows"), py::arg("n_cols"), py::arg("rows").noconvert() = py::none(), py::arg("kind") = 1,
        py::arg("co_rated") = false, py::arg("k") = 100, py::arg("include_self") = false,
        py::arg("positive_only") = false, py::arg("shrink") = 0.0, py::arg("min_support") = 1,
        py::arg("alpha") = 0.5, py::arg("bm25_k1") = 1.2, py::arg("bm25_b") = 0.75,
        py::arg("global_mean") = 0.0, py::arg("row_bias").noconvert() = py::none(),
        py::arg("col_bias").noconvert() = py::none(), py::arg("n_threads") = 0,
        "Top-k similarities of (a subset of) the rows of a CSR matrix against all its rows; "
        "returns (indptr int64, indices int32, data float32) with one row per query row.");

    m.def(
        "similarity_weights",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data,
           int64_t n_rows, int64_t n_cols, int kind, bool co_rated, double bm25_k1, double bm25_b,
           double global_mean, const std::optional<CArray<double>>& row_bias,
           const std::optional<CArray<double>>& col_bias) {
            const CsrView x = csr_view(indptr, indices, data, n_rows, n_cols, "interactions");
            x.validate("interactions");
            if (kind < 0 || kind >= kNumSimilarities) throw std::invalid_argument("unknown similarity code");
            SimilarityOptions o;
            o.kind = static_cast<Similarity>(kind);
            o.co_rated = co_rated;
            o.bm25_k1 = bm25_k1;
            o.bm25_b = bm25_b;
            o.global_mean = global_mean;
            o.row_bias = optional_vector(row_bias, n_rows, "row_bias");
            o.col_bias = optional_vector(col_bias, n_cols, "col_bias");
            if (o.kind == Similarity::PearsonBaseline && (!o.row_bias || !o.col_bias))
                throw std::invalid_argument("pearson_baseline needs the row and column biases");
            CArray<double> out(static_cast<py::ssize_t>(x.nnz()));
            similarity_weights(x, o, out.mutable_data());
            return out;
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("n_rows"), py::arg("n_cols"), py::arg("kind"), py::arg("co_rated") = false,
        py::arg("bm25_k1") = 1.2, py::arg("bm25_b") = 0.75, py::arg("global_mean") = 0.0,
        py::arg("row_bias").noconvert() = py::none(), py::arg("col_bias").noconvert() = py::none(),
        "The entry weights a similarity works on (BM25, TF-IDF, centring), one per stored entry.");

    m.def(
        "sparse_topk_scores",
        [](const CArray<int64_t>& a_indptr, const CArray<int32_t>& a_indices, const CArray<float>& a_data,
           int64_t a_rows, int64_t a_cols, const CArray<int64_t>& b_indptr, const CArray<int32_t>& b_indices,
           const CArray<float>& b_data, int64_t b_cols, int normalization, int k,
           const std::optional<CArray<int64_t>>& exclude_indptr,
           const std::optional<CArray<int32_t>>& exclude_indices,
           const std::optional<CArray<int32_t>>& candidates, int n_threads) {
            if (k <= 0) throw std::invalid_argument("k must be positive");
            const CsrView a = csr_view(a_indptr, a_indices, a_data, a_rows, a_cols, "A");
            const CsrView b = csr_view(b_indptr, b_indices, b_data, a_cols, b_cols, "B");
            const CsrView ex = csr_view(exclude_indptr, exclude_indices, std::nullopt, a_rows, b_cols, "exclude");
            if (candidates) require_ndim(*candidates, 1, "candidates");
            CArray<int32_t> items({a_rows, static_cast<int64_t>(k)});
            CArray<float> scores({a_rows, static_cast<int64_t>(k)});
            TopKOutput out{items.mutable_data(), scores.mutable_data()};
            const int32_t* cand = candidates ? candidates->data() : nullptr;
            const int64_t n_cand = candidates ? candidates->shape(0) : 0;
            {
                py::gil_scoped_release release;
                sparse_topk_scores(a, b, static_cast<ScoreNormalization>(normalization), k, ex, cand, n_cand,
                                   out, n_threads);
            }
            return py::make_tuple(items, scores);
        },
        py::arg("a_indptr").noconvert(), py::arg("a_indices").noconvert(), py::arg("a_data").noconvert(),
        py::arg("a_rows"), py::arg("a_cols"), py::arg("b_indptr").noconvert(),
        py::arg("b_indices").noconvert(), py::arg("b_data").noconvert(), py::arg("b_cols"),
        py::arg("normalization") = 0, py::arg("k") = 10, py::arg("exclude_indptr").noconvert() = py::none(),
        py::arg("exclude_indices").noconvert() = py::none(), py::arg("candidates").noconvert() = py::none(),
        py::arg("n_threads") = 0,
        "Top-k of each row of the sparse product A @ B; returns (items int32, scores float32).");

    m.def(
        "knn_predict",
        [](const CArray<int64_t>& sim_indptr, const CArray<int32_t>& sim_indices, const CArray<float>& sim_data,
           int64_t n_x, const CArray<int64_t>& yr_indptr, const CArray<int32_t>& yr_indices,
           const CArray<float>& yr_data, int64_t n_y, const CArray<int32_t>& group_x,
           const CArray<int64_t>& group_ptr, const CArray<int32_t>& query_y, int kind, int k, int min_k,
           double global_mean, const std::optional<CArray<double>>& x_mean,
           const std::optional<CArray<double>>& x_sigma, const std::optional<CArray<double>>& x_bias,
           const std::optional<CArray<double>>& y_bias, int n_threads) {
            const CsrView sim = csr_view(sim_indptr, sim_indices, sim_data, n_x, n_x, "similarity");
            const CsrView yr = csr_view(yr_indptr, yr_indices, yr_data, n_y, n_x, "ratings");
            require_ndim(group_x, 1, "group_x");
            require_ndim(group_ptr, 1, "group_ptr");
            require_ndim(query_y, 1, "query_y");
            const int64_t n_groups = group_x.shape(0);
            if (group_ptr.shape(0) != n_groups + 1)
                throw std::invalid_argument("group_ptr must have one entry more than group_x");
            if (group_ptr.at(n_groups) != query_y.shape(0))
                throw std::invalid_argument("group_ptr[-1] must equal the number of queries");
            KnnPredictOptions o;
            o.kind = static_cast<KnnPrediction>(kind);
            o.k = k;
            o.min_k = min_k;
            o.global_mean = global_mean;
            o.x_mean = optional_vector(x_mean, n_x, "x_mean");
            o.x_sigma = optional_vector(x_sigma, n_x, "x_sigma");
            o.x_bias = optional_vector(x_bias, n_x, "x_bias");
            o.y_bias = optional_vector(y_bias, n_y, "y_bias");
            const int64_t nq = query_y.shape(0);
            CArray<double> est(nq);
            CArray<int32_t> actual(nq);
            {
                py::gil_scoped_release release;
                knn_predict(sim, yr, group_x.data(), group_ptr.data(), n_groups, query_y.data(), o,
                            est.mutable_data(), actual.mutable_data(), n_threads);
            }
            return py::make_tuple(est, actual);
        },
        py::arg("sim_indptr").noconvert(), py::arg("sim_indices").noconvert(), py::arg("sim_data").noconvert(),
        py::arg("n_x"), py::arg("yr_indptr").noconvert(), py::arg("yr_indices").noconvert(),
        py::arg("yr_data").noconvert(), py::arg("n_y"), py::arg("group_x").noconvert(),
        py::arg("group_ptr").noconvert(), py::arg("query_y").noconvert(), py::arg("kind") = 0,
        py::arg("k") = 40, py::arg("min_k") = 1, py::arg("global_mean") = 0.0,
        py::arg("x_mean").noconvert() = py::none(), py::arg("x_sigma").noconvert() = py::none(),
        py::arg("x_bias").noconvert() = py::none(), py::arg("y_bias").noconvert() = py::none(),
        py::arg("n_threads") = 0,
        "k-NN rating estimates for pairs grouped by similarity entity; returns (estimates float64 "
        "with NaN where impossible, neighbours used int32).");

    m.def(
        "baseline_als",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data,
           const CArray<int64_t>& t_indptr, const CArray<int32_t>& t_indices, const CArray<float>& t_data,
           int64_t n_users, int64_t n_items, double global_mean, int n_epochs, double reg_u, double reg_i,
           int n_threads) {
            const CsrView r = csr_view(indptr, indices, data, n_users, n_items, "ratings");
            const CsrView rt = csr_view(t_indptr, t_indices, t_data, n_items, n_users, "ratings_t");
            CArray<double> bu(n_users), bi(n_items);
            {
                py::gil_scoped_release release;
                baseline_als(r, rt, global_mean, n_epochs, reg_u, reg_i, bu.mutable_data(), bi.mutable_data(),
                             n_threads);
            }
            return py::make_tuple(bu, bi);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("t_indptr").noconvert(), py::arg("t_indices").noconvert(), py::arg("t_data").noconvert(),
        py::arg("n_users"), py::arg("n_items"), py::arg("global_mean"), py::arg("n_epochs") = 10,
        py::arg("reg_u") = 15.0, py::arg("reg_i") = 10.0, py::arg("n_threads") = 0,
        "User and item biases by alternating least squares; returns (user_bias, item_bias).");

    m.def(
        "baseline_sgd",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data,
           int64_t n_users, int64_t n_items, double global_mean, int n_epochs, double reg, double learning_rate) {
            const CsrView r = csr_view(indptr, indices, data, n_users, n_items, "ratings");
            CArray<double> bu(n_users), bi(n_items);
            {
                py::gil_scoped_release release;
                baseline_sgd(r, global_mean, n_epochs, reg, learning_rate, bu.mutable_data(), bi.mutable_data());
            }
            return py::make_tuple(bu, bi);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("n_users"), py::arg("n_items"), py::arg("global_mean"), py::arg("n_epochs") = 20,
        py::arg("reg") = 0.02, py::arg("learning_rate") = 0.005,
        "User and item biases by stochastic gradient descent; returns (user_bias, item_bias).");
}
