#include <cmath>

#include "common.hpp"
#include "recforge/metrics.hpp"

using namespace recforge;
using namespace recforge::bindings;

void bind_metrics(py::module_& m) {
    m.attr("METRIC_NAMES") =
        py::make_tuple("precision", "recall", "ndcg", "map", "mrr", "hit_rate");

    m.def(
        "ranking_metrics",
        [](const CArray<int32_t>& lists, const CArray<int64_t>& rel_indptr,
           const CArray<int32_t>& rel_indices, const CArray<float>& rel_data, int64_t n_items, int k,
           int gain, int ap_denominator, float rel_threshold, int n_threads) {
            require_ndim(lists, 2, "lists");
            if (gain < 0 || gain > 2) throw std::invalid_argument("gain code must be 0, 1 or 2");
            if (ap_denominator < 0 || ap_denominator > 1)
                throw std::invalid_argument("ap_denominator code must be 0 or 1");
            if (std::isnan(rel_threshold)) throw std::invalid_argument("rel_threshold is NaN");
            const int64_t nq = lists.shape(0), len = lists.shape(1);
            const CsrView rel = csr_view(rel_indptr, rel_indices, rel_data, nq, n_items, "relevant");
            RankingOptions opt;
            opt.k = k;
            opt.gain = static_cast<Gain>(gain);
            opt.ap_denominator = static_cast<ApDenominator>(ap_denominator);
            opt.rel_threshold = rel_threshold;
            CArray<double> out({static_cast<int64_t>(kNumRankingMetrics), nq});
            CArray<int64_t> n_rel(nq);
            {
                py::gil_scoped_release release;
                ranking_metrics(lists.data(), nq, len, rel, opt, out.mutable_data(), n_rel.mutable_data(),
                                n_threads);
            }
            return py::make_tuple(out, n_rel);
        },
        py::arg("lists").noconvert(), py::arg("rel_indptr").noconvert(),
        py::arg("rel_indices").noconvert(), py::arg("rel_data").noconvert(), py::arg("n_items"),
        py::arg("k"), py::arg("gain") = 0, py::arg("ap_denominator") = 0,
        py::arg("rel_threshold") = 0.0f, py::arg("n_threads") = 0,
        "Per-query precision, recall, nDCG, AP, RR and hit at k (rows in METRIC_NAMES order) "
        "and the number of relevant items per query.");

    m.def(
        "ranking_auc",
        [](const CArray<int32_t>& lists, const CArray<int64_t>& rel_indptr,
           const CArray<int32_t>& rel_indices, const CArray<float>& rel_data, int64_t n_items,
           const std::optional<CArray<int64_t>>& exclude_indptr,
           const std::optional<CArray<int32_t>>& exclude_indices, float rel_threshold, int n_threads) {
            require_ndim(lists, 2, "lists");
            const int64_t nq = lists.shape(0), len = lists.shape(1);
            const CsrView rel = csr_view(rel_indptr, rel_indices, rel_data, nq, n_items, "relevant");
            const CsrView ex = csr_view(exclude_indptr, exclude_indices, std::nullopt, nq, n_items, "exclude");
            CArray<double> out(nq);
            {
                py::gil_scoped_release release;
                ranking_auc(lists.data(), nq, len, rel, ex, rel_threshold, out.mutable_data(), n_threads);
            }
            return out;
        },
        py::arg("lists").noconvert(), py::arg("rel_indptr").noconvert(),
        py::arg("rel_indices").noconvert(), py::arg("rel_data").noconvert(), py::arg("n_items"),
        py::arg("exclude_indptr").noconvert() = py::none(),
        py::arg("exclude_indices").noconvert() = py::none(), py::arg("rel_threshold") = 0.0f,
        py::arg("n_threads") = 0, "Per-query ROC AUC of ranked lists (NaN where undefined).");
}
