#include "recforge/content.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "recforge/common/parallel.hpp"

namespace recforge::content {
namespace {

void require_values(const CsrView& m, const char* what) {
    if (m.data == nullptr) throw std::invalid_argument(std::string(what) + ": values are missing");
}

void check_params(const WeightingParams& p) {
    if (p.kind != Weighting::TfIdf && p.kind != Weighting::Bm25)
        throw std::invalid_argument("weighting must be 0 (tf-idf) or 1 (bm25)");
    if (!(p.k1 >= 0.0f) || !std::isfinite(p.k1)) throw std::invalid_argument("k1 must be finite and >= 0");
    if (!(p.b >= 0.0f && p.b <= 1.0f)) throw std::invalid_argument("b must be in [0, 1]");
}

}  // namespace

void document_frequency(const CsrView& counts, int64_t* df) {
    counts.validate("term counts");
    std::fill(df, df + counts.n_cols, int64_t{0});
    for (int64_t r = 0; r < counts.n_rows; ++r) {
        for (int64_t k = counts.row_begin(r); k < counts.row_end(r); ++k) {
            if (counts.data == nullptr || counts.data[k] != 0.0f) ++df[counts.indices[k]];
        }
    }
}

void inverse_document_frequency(const int64_t* df, int64_t n_terms, int64_t n_docs, const WeightingParams& p,
                                float* idf) {
    check_params(p);
    if (n_docs < 0) throw std::invalid_argument("n_docs must be >= 0");
    const double n = static_cast<double>(n_docs);
    for (int64_t t = 0; t < n_terms; ++t) {
        const double d = static_cast<double>(df[t]);
        if (d < 0 || d > n) throw std::invalid_argument("document frequencies must lie in [0, n_docs]");
        double v;
        if (p.kind == Weighting::Bm25) {
            v = std::log1p((n - d + 0.5) / (d + 0.5));
        } else if (p.smooth_idf) {
            v = std::log((1.0 + n) / (1.0 + d)) + 1.0;
        } else {
            v = d > 0 ? std::log(n / d) + 1.0 : 0.0;
        }
        idf[t] = static_cast<float>(v);
    }
}

void weight_terms(const CsrView& counts, const float* idf, const WeightingParams& p, double avg_doc_len,
                  float* values, int n_threads) {
    check_params(p);
    counts.validate("term counts");
    require_values(counts, "term counts");
    const int64_t nnz = counts.nnz();
    for (int64_t k = 0; k < nnz; ++k) {
        if (!std::isfinite(counts.data[k]) || counts.data[k] < 0.0f)
            throw std::invalid_argument("term counts must be finite and >= 0");
    }
    if (p.kind == Weighting::Bm25 && !(avg_doc_len > 0.0)) {
        double total = 0.0;
        for (int64_t k = 0; k < nnz; ++k) total += counts.data[k];
        avg_doc_len = counts.n_rows > 0 ? total / static_cast<double>(counts.n_rows) : 0.0;
        if (!(avg_doc_len > 0.0)) avg_doc_len = 1.0;
    }
    parallel_for(
        0, counts.n_rows, n_threads,
        [&](int64_t r, int) {
            const int64_t lo = counts.row_begin(r), hi = counts.row_end(r);
            double length = 0.0;
            if (p.kind == Weighting::Bm25) {
                for (int64_t k = lo; k < hi; ++k) length += counts.data[k];
            }
            const double k1 = p.k1, b = p.b;
            const double norm_len = p.kind == Weighting::Bm25 ? k1 * (1.0 - b + b * length / avg_doc_len) : 0.0;
            double sq = 0.0;
            for (int64_t k = lo; k < hi; ++k) {
                const double c = counts.data[k];
                double w;
                if (p.kind == Weighting::Bm25) {
                    w = c > 0 ? idf[counts.indices[k]] * c * (k1 + 1.0) / (c + norm_len) : 0.0;
                } else {
                    const double tf = p.sublinear_tf ? (c > 0 ? 1.0 + std::log(c) : 0.0) : c;
                    w = tf * idf[counts.indices[k]];
                }
                values[k] = static_cast<float>(w);
                sq += w * w;
            }
            if (p.normalize && sq > 0.0) {
                const double inv = 1.0 / std::sqrt(sq);
                for (int64_t k = lo; k < hi; ++k) values[k] = static_cast<float>(values[k] * inv);
            }
        },
        64);
}

SparseRows weighted_profiles(const CsrView& W, const CsrView& X, bool average, int n_threads) {
    W.validate("weights");
    X.validate("profiles");
    require_values(W, "weights");
    require_values(X, "profiles");
    if (W.n_cols != X.n_rows)
        throw std::invalid_argument("weights have " + std::to_string(W.n_cols) + " columns but there are " +
                                    std::to_string(X.n_rows) + " profiles");
    const int64_t n_rows = W.n_rows, n_feat = X.n_cols;
    std::vector<std::vector<int32_t>> row_idx(static_cast<size_t>(n_rows));
    std::vector<std::vector<float>> row_val(static_cast<size_t>(n_rows));
    const int workers = planned_workers(n_rows, n_threads, 16);
    std::vector<std::vector<double>> acc(static_cast<size_t>(workers));
    std::vector<std::vector<char>> mark(static_cast<size_t>(workers));
    std::vector<std::vector<int32_t>> touched(static_cast<size_t>(workers));
    parallel_for(
        0, n_rows, workers,
        [&](int64_t u, int w) {
            auto& a = acc[static_cast<size_t>(w)];
            auto& m = mark[static_cast<size_t>(w)];
            auto& t = touched[static_cast<size_t>(w)];
            if (a.empty()) {
                a.assign(static_cast<size_t>(n_feat), 0.0);
                m.assign(static_cast<size_t>(n_feat), 0);
            }
            t.clear();
            double total = 0.0;
            for (int64_t k = W.row_begin(u); k < W.row_end(u); ++k) {
                const double wt = W.data[k];
                if (!std::isfinite(wt)) throw std::invalid_argument("weights must be finite");
                if (wt == 0.0) continue;
                total += std::abs(wt);
                const int64_t item = W.indices[k];
                for (int64_t q = X.row_begin(item); q < X.row_end(item); ++q) {
                    const int32_t c = X.indices[q];
                    if (!m[static_cast<size_t>(c)]) {
                        m[static_cast<size_t>(c)] = 1;
                        t.push_back(c);
                    }
                    a[static_cast<size_t>(c)] += wt * X.data[q];
                }
            }
            std::sort(t.begin(), t.end());
            auto& oi = row_idx[static_cast<size_t>(u)];
            auto& ov = row_val[static_cast<size_t>(u)];
            const double scale = average ? (total > 0.0 ? 1.0 / total : 0.0) : 1.0;
            for (int32_t c : t) {
                const double v = a[static_cast<size_t>(c)] * scale;
                if (v != 0.0) {
                    oi.push_back(c);
                    ov.push_back(static_cast<float>(v));
                }
                a[static_cast<size_t>(c)] = 0.0;
                m[static_cast<size_t>(c)] = 0;
            }
        },
        16);
    SparseRows out;
    out.indptr.assign(static_cast<size_t>(n_rows + 1), 0);
    for (int64_t u = 0; u < n_rows; ++u)
        out.indptr[static_cast<size_t>(u + 1)] = out.indptr[static_cast<size_t>(u)] + static_cast<int64_t>(row_idx[static_cast<size_t>(u)].size());
    out.indices.reserve(static_cast<size_t>(out.indptr.back()));
    out.values.reserve(static_cast<size_t>(out.indptr.back()));
    for (int64_t u = 0; u < n_rows; ++u) {
        out.indices.insert(out.indices.end(), row_idx[static_cast<size_t>(u)].begin(), row_idx[static_cast<size_t>(u)].end());
        out.values.insert(out.values.end(), row_val[static_cast<size_t>(u)].begin(), row_val[static_cast<size_t>(u)].end());
    }
    return out;
}

void row_norms(const CsrView& X, float* norms, int n_threads) {
    X.validate("profiles");
    require_values(X, "profiles");
    parallel_for(
        0, X.n_rows, n_threads,
        [&](int64_t r, int) {
            double s = 0.0;
            for (int64_t k = X.row_begin(r); k < X.row_end(r); ++k) s += static_cast<double>(X.data[k]) * X.data[k];
            norms[r] = static_cast<float>(std::sqrt(s));
        },
        256);
}

void cosine_scores(const CsrView& Q, const CsrView& X, const int32_t* rows, int64_t n_out, float* out,
                   int n_threads) {
    Q.validate("queries");
    X.validate("profiles");
    require_values(Q, "queries");
    require_values(X, "profiles");
    if (Q.n_cols != X.n_cols)
        throw std::invalid_argument("queries have " + std::to_string(Q.n_cols) + " features but the profiles have " +
                                    std::to_string(X.n_cols));
    if (rows == nullptr) n_out = X.n_rows;
    for (int64_t t = 0; rows != nullptr && t < n_out; ++t) {
        if (rows[t] < 0 || rows[t] >= X.n_rows) throw std::out_of_range("profile row outside [0, n_rows)");
    }
    std::vector<float> x_norm(static_cast<size_t>(X.n_rows));
    row_norms(X, x_norm.data(), n_threads);
    const int64_t n_feat = X.n_cols;
    const int workers = planned_workers(Q.n_rows, n_threads, 4);
    std::vector<std::vector<float>> dense(static_cast<size_t>(workers));
    parallel_for(
        0, Q.n_rows, workers,
        [&](int64_t q, int w) {
            auto& d = dense[static_cast<size_t>(w)];
            if (d.empty()) d.assign(static_cast<size_t>(n_feat), 0.0f);
            double qn = 0.0;
            for (int64_t k = Q.row_begin(q); k < Q.row_end(q); ++k) {
                d[static_cast<size_t>(Q.indices[k])] += Q.data[k];
            }
            for (int64_t k = Q.row_begin(q); k < Q.row_end(q); ++k) qn += static_cast<double>(Q.data[k]) * Q.data[k];
            float* o = out + q * n_out;
            const double inv_q = qn > 0.0 ? 1.0 / std::sqrt(qn) : 0.0;
            for (int64_t t = 0; t < n_out; ++t) {
                const int64_t r = rows ? rows[t] : t;
                float s = 0.0f;
                for (int64_t k = X.row_begin(r); k < X.row_end(r); ++k) s += d[static_cast<size_t>(X.indices[k])] * X.data[k];
                const float xn = x_norm[static_cast<size_t>(r)];
                o[t] = (xn > 0.0f && inv_q > 0.0) ? static_cast<float>(s * inv_q / xn) : 0.0f;
            }
            for (int64_t k = Q.row_begin(q); k < Q.row_end(q); ++k) d[static_cast<size_t>(Q.indices[k])] = 0.0f;
        },
        4);
}

}  // namespace recforge::content
