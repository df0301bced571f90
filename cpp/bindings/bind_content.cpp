// Content-based kernels: term weighting, user profiles, cosine scores of sparse profiles.
#include <string>

#include "common.hpp"
#include "recforge/content.hpp"

using namespace recforge;
using namespace recforge::bindings;

namespace {

content::WeightingParams weighting(int kind, bool smooth_idf, bool sublinear_tf, float k1, float b, bool normalize) {
    if (kind != 0 && kind != 1) throw std::invalid_argument("weighting must be 0 (tf-idf) or 1 (bm25)");
    content::WeightingParams p;
    p.kind = static_cast<content::Weighting>(kind);
    p.smooth_idf = smooth_idf;
    p.sublinear_tf = sublinear_tf;
    p.k1 = k1;
    p.b = b;
    p.normalize = normalize;
    return p;
}

py::tuple sparse_rows(content::SparseRows&& rows) {
    CArray<int64_t> indptr(static_cast<py::ssize_t>(rows.indptr.size()));
    CArray<int32_t> indices(static_cast<py::ssize_t>(rows.indices.size()));
    CArray<float> values(static_cast<py::ssize_t>(rows.values.size()));
    std::copy(rows.indptr.begin(), rows.indptr.end(), indptr.mutable_data());
    std::copy(rows.indices.begin(), rows.indices.end(), indices.mutable_data());
    std::copy(rows.values.begin(), rows.values.end(), values.mutable_data());
    return py::make_tuple(indptr, indices, values);
}

}  // namespace

void bind_content(py::module_& m) {
    m.def(
        "document_frequency",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data, int64_t n_terms) {
            const int64_t n_rows = indptr.shape(0) - 1;
            const CsrView x = csr_view(indptr, indices, data, n_rows, n_terms, "term counts");
            CArray<int64_t> df(n_terms);
            int64_t* d = df.mutable_data();
            {
                py::gil_scoped_release release;
                content::document_frequency(x, d);
            }
            return df;
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("n_terms"),
        "Documents containing each term of a documents x terms count CSR.");

    m.def(
        "idf",
        [](const CArray<int64_t>& df, int64_t n_docs, int weighting_kind, bool smooth_idf) {
            require_ndim(df, 1, "df");
            CArray<float> out(df.shape(0));
            const content::WeightingParams p = weighting(weighting_kind, smooth_idf, false, 1.2f, 0.75f, true);
            content::inverse_document_frequency(df.data(), df.shape(0), n_docs, p, out.mutable_data());
            return out;
        },
        py::arg("df").noconvert(), py::arg("n_docs"), py::arg("weighting") = 0, py::arg("smooth_idf") = true,
        "Inverse document frequencies (tf-idf: smooth or plain; bm25).");

    m.def(
        "weight_terms",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data,
           const CArray<float>& idf, int weighting_kind, bool sublinear_tf, float k1, float b, bool normalize,
           double avg_doc_len, int n_threads) {
            require_ndim(idf, 1, "idf");
            const int64_t n_terms = idf.shape(0), n_rows = indptr.shape(0) - 1;
            const CsrView x = csr_view(indptr, indices, data, n_rows, n_terms, "term counts");
            const content::WeightingParams p = weighting(weighting_kind, true, sublinear_tf, k1, b, normalize);
            CArray<float> out(std::max<int64_t>(x.nnz(), 0));
            float* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                content::weight_terms(x, idf.data(), p, avg_doc_len, o, n_threads);
            }
            return out;
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("idf").noconvert(), py::arg("weighting") = 0, py::arg("sublinear_tf") = false, py::arg("k1") = 1.2f,
        py::arg("b") = 0.75f, py::arg("normalize") = true, py::arg("avg_doc_len") = 0.0, py::arg("n_threads") = 0,
        "Weighted values (tf-idf or bm25) of a count CSR, same pattern; rows L2-normalised if asked.");

    m.def(
        "weighted_profiles",
        [](const CArray<int64_t>& w_indptr, const CArray<int32_t>& w_indices, const CArray<float>& w_data,
           const CArray<int64_t>& x_indptr, const CArray<int32_t>& x_indices, const CArray<float>& x_data,
           int64_t n_features, bool average, int n_threads) {
            const int64_t n_items = x_indptr.shape(0) - 1, n_rows = w_indptr.shape(0) - 1;
            const CsrView w = csr_view(w_indptr, w_indices, w_data, n_rows, n_items, "weights");
            const CsrView x = csr_view(x_indptr, x_indices, x_data, n_items, n_features, "profiles");
            content::SparseRows rows;
            {
                py::gil_scoped_release release;
                rows = content::weighted_profiles(w, x, average, n_threads);
            }
            return sparse_rows(std::move(rows));
        },
        py::arg("w_indptr").noconvert(), py::arg("w_indices").noconvert(), py::arg("w_data").noconvert(),
        py::arg("x_indptr").noconvert(), py::arg("x_indices").noconvert(), py::arg("x_data").noconvert(),
        py::arg("n_features"), py::arg("average") = true, py::arg("n_threads") = 0,
        "Rows of W X (divided by each row's sum of |weights| if average) as (indptr, indices, values).");

    m.def(
        "cosine_scores",
        [](const CArray<int64_t>& q_indptr, const CArray<int32_t>& q_indices, const CArray<float>& q_data,
           const CArray<int64_t>& x_indptr, const CArray<int32_t>& x_indices, const CArray<float>& x_data,
           int64_t n_features, const std::optional<CArray<int32_t>>& rows, int n_threads) {
            const int64_t n_q = q_indptr.shape(0) - 1, n_x = x_indptr.shape(0) - 1;
            const CsrView q = csr_view(q_indptr, q_indices, q_data, n_q, n_features, "queries");
            const CsrView x = csr_view(x_indptr, x_indices, x_data, n_x, n_features, "profiles");
            const int32_t* r = nullptr;
            int64_t n_out = n_x;
            if (rows) {
                require_ndim(*rows, 1, "rows");
                r = rows->data();
                n_out = rows->shape(0);
            }
            CArray<float> out({n_q, n_out});
            float* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                content::cosine_scores(q, x, r, n_out, o, n_threads);
            }
            return out;
        },
        py::arg("q_indptr").noconvert(), py::arg("q_indices").noconvert(), py::arg("q_data").noconvert(),
        py::arg("x_indptr").noconvert(), py::arg("x_indices").noconvert(), py::arg("x_data").noconvert(),
        py::arg("n_features"), py::arg("rows").noconvert() = py::none(), py::arg("n_threads") = 0,
        "Dense cosine similarities between the rows of Q and the (selected) rows of X.");
}
