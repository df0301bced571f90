#include "common.hpp"
#include "recforge/beyond_accuracy.hpp"

using namespace recforge;
using namespace recforge::bindings;

void bind_beyond(py::module_& m) {
    m.def(
        "item_frequencies",
        [](const CArray<int32_t>& lists, int64_t n_items, int n_threads) {
            require_ndim(lists, 2, "lists");
            CArray<int64_t> counts(n_items);
            {
                py::gil_scoped_release release;
                item_frequencies(lists.data(), lists.shape(0), lists.shape(1), n_items,
                                 counts.mutable_data(), n_threads);
            }
            return counts;
        },
        py::arg("lists").noconvert(), py::arg("n_items"), py::arg("n_threads") = 0,
        "Number of lists that contain each item.");

    m.def(
        "distribution_stats",
        [](const CArray<int64_t>& counts, int64_t n_lists, int64_t list_len) {
            require_ndim(counts, 1, "counts");
            DistributionStats st;
            {
                py::gil_scoped_release release;
                st = distribution_stats(counts.data(), counts.shape(0), n_lists, list_len);
            }
            py::dict d;
            d["coverage"] = st.coverage;
            d["entropy"] = st.entropy;
            d["normalized_entropy"] = st.normalized_entropy;
            d["gini"] = st.gini;
            d["personalization"] = st.personalization;
            return d;
        },
        py::arg("counts").noconvert(), py::arg("n_lists"), py::arg("list_len"),
        "Coverage, entropy, Gini index and personalization from item frequencies.");

    m.def(
        "list_mean",
        [](const CArray<int32_t>& lists, const CArray<double>& values, int n_threads) {
            require_ndim(lists, 2, "lists");
            require_ndim(values, 1, "item_values");
            CArray<double> out(lists.shape(0));
            {
                py::gil_scoped_release release;
                list_mean(lists.data(), lists.shape(0), lists.shape(1), values.data(), values.shape(0),
                          out.mutable_data(), n_threads);
            }
            return out;
        },
        py::arg("lists").noconvert(), py::arg("item_values").noconvert(), py::arg("n_threads") = 0,
        "Mean of per-item values over each list's distinct items.");

    m.def(
        "ild_vectors",
        [](const CArray<int32_t>& lists, const CArray<float>& vectors, int n_threads) {
            require_ndim(lists, 2, "lists");
            require_ndim(vectors, 2, "item_vectors");
            CArray<double> out(lists.shape(0));
            {
                py::gil_scoped_release release;
                intra_list_diversity_vectors(lists.data(), lists.shape(0), lists.shape(1), vectors.data(),
                                             vectors.shape(0), vectors.shape(1), out.mutable_data(), n_threads);
            }
            return out;
        },
        py::arg("lists").noconvert(), py::arg("item_vectors").noconvert(), py::arg("n_threads") = 0,
        "Intra-list diversity (mean pairwise cosine distance) from item vectors.");

    m.def(
        "ild_cooccurrence",
        [](const CArray<int32_t>& lists, const CArray<int64_t>& indptr, const CArray<int32_t>& indices,
           int64_t n_items, int64_t n_users, int n_threads) {
            require_ndim(lists, 2, "lists");
            const CsrView iu = csr_view(indptr, indices, std::nullopt, n_items, n_users, "item_users");
            CArray<double> out(lists.shape(0));
            {
                py::gil_scoped_release release;
                intra_list_diversity_cooccurrence(lists.data(), lists.shape(0), lists.shape(1), iu,
                                                  out.mutable_data(), n_threads);
            }
            return out;
        },
        py::arg("lists").noconvert(), py::arg("indptr").noconvert(), py::arg("indices").noconvert(),
        py::arg("n_items"), py::arg("n_users"), py::arg("n_threads") = 0,
        "Intra-list diversity from co-occurrence (cosine of the items' user sets).");

    m.def(
        "serendipity",
        [](const CArray<int32_t>& lists, int k, const CArray<int64_t>& rel_indptr,
           const CArray<int32_t>& rel_indices, const CArray<float>& rel_data, int64_t n_items,
           float rel_threshold, const CArray<int32_t>& expected, int n_threads) {
            require_ndim(lists, 2, "lists");
            require_ndim(expected, 2, "expected");
            if (expected.shape(0) != lists.shape(0))
                throw std::invalid_argument("expected must have one row per list");
            const CsrView rel = csr_view(rel_indptr, rel_indices, rel_data, lists.shape(0), n_items, "relevant");
            CArray<double> out(lists.shape(0));
            {
                py::gil_scoped_release release;
                serendipity(lists.data(), lists.shape(0), lists.shape(1), k, rel, rel_threshold,
                            expected.data(), expected.shape(1), out.mutable_data(), n_threads);
            }
            return out;
        },
        py::arg("lists").noconvert(), py::arg("k"), py::arg("rel_indptr").noconvert(),
        py::arg("rel_indices").noconvert(), py::arg("rel_data").noconvert(), py::arg("n_items"),
        py::arg("rel_threshold"), py::arg("expected").noconvert(), py::arg("n_threads") = 0,
        "Serendipity: relevant items in the top k that the primitive lists do not hold.");
}
