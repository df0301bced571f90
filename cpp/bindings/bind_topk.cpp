#include <limits>

#include "common.hpp"
#include "recforge/topk.hpp"

using namespace recforge;
using namespace recforge::bindings;

namespace {

py::tuple make_output(int64_t n_queries, int k, TopKOutput& out, CArray<int32_t>& items,
                      CArray<float>& scores) {
    items = CArray<int32_t>({n_queries, static_cast<int64_t>(k)});
    scores = CArray<float>({n_queries, static_cast<int64_t>(k)});
    out.items = items.mutable_data();
    out.scores = scores.mutable_data();
    return py::tuple();
}

}  // namespace

void bind_topk(py::module_& m) {
    m.def(
        "topk_dot",
        [](const CArray<float>& queries, const CArray<float>& items, int k,
           const std::optional<CArray<int64_t>>& exclude_indptr,
           const std::optional<CArray<int32_t>>& exclude_indices,
           const std::optional<CArray<int32_t>>& candidates, int n_threads) {
            require_ndim(queries, 2, "queries");
            require_ndim(items, 2, "items");
            if (queries.shape(1) != items.shape(1))
                throw std::invalid_argument("queries have " + std::to_string(queries.shape(1)) +
                                            " factors but items have " + std::to_string(items.shape(1)));
            if (k <= 0) throw std::invalid_argument("k must be positive");
            const int64_t nq = queries.shape(0), ni = items.shape(0), dim = items.shape(1);
            const CsrView ex = csr_view(exclude_indptr, exclude_indices, std::nullopt, nq, ni, "exclude");
            if (candidates) require_ndim(*candidates, 1, "candidates");
            CArray<int32_t> out_items;
            CArray<float> out_scores;
            TopKOutput out{};
            make_output(nq, k, out, out_items, out_scores);
            const int32_t* cand = candidates ? candidates->data() : nullptr;
            const int64_t n_cand = candidates ? candidates->shape(0) : 0;
            {
                py::gil_scoped_release release;
                topk_dot(queries.data(), nq, items.data(), ni, dim, k, ex, cand, n_cand, out, n_threads);
            }
            return py::make_tuple(out_items, out_scores);
        },
        py::arg("queries").noconvert(), py::arg("items").noconvert(), py::arg("k"),
        py::arg("exclude_indptr").noconvert() = py::none(),
        py::arg("exclude_indices").noconvert() = py::none(),
        py::arg("candidates").noconvert() = py::none(), py::arg("n_threads") = 0,
        "Top-k items by dot product for each query row; returns (items int32, scores float32).");

    m.def(
        "topk_dense",
        [](const CArray<float>& scores, int k, const std::optional<CArray<int64_t>>& exclude_indptr,
           const std::optional<CArray<int32_t>>& exclude_indices,
           const std::optional<CArray<int32_t>>& candidates, int n_threads) {
            require_ndim(scores, 2, "scores");
            if (k <= 0) throw std::invalid_argument("k must be positive");
            const int64_t nq = scores.shape(0), ni = scores.shape(1);
            const CsrView ex = csr_view(exclude_indptr, exclude_indices, std::nullopt, nq, ni, "exclude");
            if (candidates) require_ndim(*candidates, 1, "candidates");
            CArray<int32_t> out_items;
            CArray<float> out_scores;
            TopKOutput out{};
            make_output(nq, k, out, out_items, out_scores);
            const int32_t* cand = candidates ? candidates->data() : nullptr;
            const int64_t n_cand = candidates ? candidates->shape(0) : 0;
            {
                py::gil_scoped_release release;
                topk_dense(scores.data(), nq, ni, k, ex, cand, n_cand, out, n_threads);
            }
            return py::make_tuple(out_items, out_scores);
        },
        py::arg("scores").noconvert(), py::arg("k"), py::arg("exclude_indptr").noconvert() = py::none(),
        py::arg("exclude_indices").noconvert() = py::none(),
        py::arg("candidates").noconvert() = py::none(), py::arg("n_threads") = 0,
        "Top-k columns of each row of a dense score matrix; returns (items int32, scores float32).");

    m.def(
        "topk_candidates",
        [](const CArray<float>& queries, const CArray<float>& items, const CArray<int32_t>& candidates, int k,
           const std::optional<CArray<int64_t>>& exclude_indptr,
           const std::optional<CArray<int32_t>>& exclude_indices, int n_threads) {
            require_ndim(queries, 2, "queries");
            require_ndim(items, 2, "items");
            require_ndim(candidates, 2, "candidates");
            if (queries.shape(1) != items.shape(1))
                throw std::invalid_argument("queries have " + std::to_string(queries.shape(1)) +
                                            " factors but items have " + std::to_string(items.shape(1)));
            if (candidates.shape(0) != queries.shape(0))
                throw std::invalid_argument("candidates must have one row per query");
            if (k <= 0) throw std::invalid_argument("k must be positive");
            const int64_t nq = queries.shape(0), ni = items.shape(0), dim = items.shape(1);
            const CsrView ex = csr_view(exclude_indptr, exclude_indices, std::nullopt, nq, ni, "exclude");
            CArray<int32_t> out_items;
            CArray<float> out_scores;
            TopKOutput out{};
            make_output(nq, k, out, out_items, out_scores);
            {
                py::gil_scoped_release release;
                topk_candidates(queries.data(), nq, items.data(), ni, dim, candidates.data(), candidates.shape(1),
                                k, ex, out, n_threads);
            }
            return py::make_tuple(out_items, out_scores);
        },
        py::arg("queries").noconvert(), py::arg("items").noconvert(), py::arg("candidates").noconvert(),
        py::arg("k"), py::arg("exclude_indptr").noconvert() = py::none(),
        py::arg("exclude_indices").noconvert() = py::none(), py::arg("n_threads") = 0,
        "Exact re-scoring of per-query candidate lists; returns (items int32, scores float32).");

    m.def("kernel_name", []() { return std::string(detail::tile_kernel().name); },
          "The dot-product tile kernel chosen for this CPU.");
}
