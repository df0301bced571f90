// Feature factorization (the LightFM model): epochs, representations, one example's gradient.
#include <string>

#include "common.hpp"
#include "recforge/factorization/feature_mf.hpp"

using namespace recforge;
using namespace recforge::bindings;

namespace {

void require_shape(const CArray<float>& a, int64_t rows, int64_t cols, const char* name) {
    if (cols < 0) {
        require_ndim(a, 1, name);
        if (a.shape(0) != rows)
            throw std::invalid_argument(std::string(name) + " must have " + std::to_string(rows) + " entries");
        return;
    }
    require_ndim(a, 2, name);
    if (a.shape(0) != rows || a.shape(1) != cols)
        throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + ")");
}

feature_mf::Side side(CArray<float>& emb, CArray<float>& bias, CArray<float>& emb_grad, CArray<float>& bias_grad,
                      std::optional<CArray<float>>& emb_step, std::optional<CArray<float>>& bias_step, int64_t f,
                      const char* what) {
    require_ndim(emb, 2, what);
    const int64_t n = emb.shape(0);
    if (emb.shape(1) != f) throw std::invalid_argument(std::string(what) + ": embeddings of both sides must have the same width");
    require_shape(bias, n, -1, "biases");
    require_shape(emb_grad, n, f, "embedding accumulators");
    require_shape(bias_grad, n, -1, "bias accumulators");
    feature_mf::Side s;
    s.n_features = n;
    s.embeddings = emb.mutable_data();
    s.biases = bias.mutable_data();
    s.embedding_grad = emb_grad.mutable_data();
    s.bias_grad = bias_grad.mutable_data();
    if (emb_step && bias_step) {
        require_shape(*emb_step, n, f, "embedding step accumulators");
        require_shape(*bias_step, n, -1, "bias step accumulators");
        s.embedding_step = emb_step->mutable_data();
        s.bias_step = bias_step->mutable_data();
    }
    return s;
}

}  // namespace

void bind_hybrid(py::module_& m) {
    m.def(
        "epoch",
        [](const CArray<int64_t>& r_indptr, const CArray<int32_t>& r_indices, const CArray<float>& r_data,
           const CArray<int64_t>& u_indptr, const CArray<int32_t>& u_indices, const CArray<float>& u_data,
           const CArray<int64_t>& i_indptr, const CArray<int32_t>& i_indices, const CArray<float>& i_data,
           CArray<float>& user_emb, CArray<float>& user_bias, CArray<float>& user_emb_grad,
           CArray<float>& user_bias_grad, std::optional<CArray<float>> user_emb_step,
           std::optional<CArray<float>> user_bias_step, CArray<float>& item_emb, CArray<float>& item_bias,
           CArray<float>& item_emb_grad, CArray<float>& item_bias_grad, std::optional<CArray<float>> item_emb_step,
           std::optional<CArray<float>> item_bias_step, const std::optional<CArray<int32_t>>& negatives, int loss,
           int schedule, float learning_rate, float rho, float epsilon, float user_alpha, float item_alpha,
           int max_sampled, int k, int n, uint64_t seed, int64_t epoch, int n_threads) {
            const int64_t n_users = u_indptr.shape(0) - 1, n_items = i_indptr.shape(0) - 1;
            require_ndim(user_emb, 2, "user embeddings");
            const int64_t f = user_emb.shape(1);
            feature_mf::Side us = side(user_emb, user_bias, user_emb_grad, user_bias_grad, user_emb_step,
                                       user_bias_step, f, "user embeddings");
            feature_mf::Side is = side(item_emb, item_bias, item_emb_grad, item_bias_grad, item_emb_step,
                                       item_bias_step, f, "item embeddings");
            const CsrView r = csr_view(r_indptr, r_indices, r_data, n_users, n_items, "interactions");
            const CsrView fu = csr_view(u_indptr, u_indices, u_data, n_users, us.n_features, "user features");
            const CsrView fi = csr_view(i_indptr, i_indices, i_data, n_items, is.n_features, "item features");
            if (r_indptr.shape(0) != n_users + 1)
                throw std::invalid_argument("interactions and user features must have the same number of rows");
            feature_mf::Params p;
            if (loss < 0 || loss > 3) throw std::invalid_argument("loss must be 0 (logistic), 1 (bpr), 2 (warp) or 3 (warp-kos)");
            if (schedule < 0 || schedule > 1) throw std::invalid_argument("schedule must be 0 (adagrad) or 1 (adadelta)");
            p.loss = static_cast<feature_mf::Loss>(loss);
            p.schedule = static_cast<feature_mf::Schedule>(schedule);
            p.learning_rate = learning_rate;
            p.rho = rho;
            p.epsilon = epsilon;
            p.user_alpha = user_alpha;
            p.item_alpha = item_alpha;
            p.max_sampled = max_sampled;
            p.k = k;
            p.n = n;
            p.seed = seed;
            const int32_t* neg = nullptr;
            int64_t n_neg = n_items;
            if (negatives) {
                require_ndim(*negatives, 1, "negatives");
                neg = negatives->data();
                n_neg = negatives->shape(0);
            }
            feature_mf::EpochStats s;
            {
                py::gil_scoped_release release;
                s = feature_mf::epoch(r, fu, fi, us, is, f, p, neg, n_neg, epoch, n_threads);
            }
            py::dict out;
            out["samples"] = s.samples;
            out["updates"] = s.updates;
            out["loss"] = s.loss;
            return out;
        },
        py::arg("r_indptr").noconvert(), py::arg("r_indices").noconvert(), py::arg("r_data").noconvert(),
        py::arg("u_indptr").noconvert(), py::arg("u_indices").noconvert(), py::arg("u_data").noconvert(),
        py::arg("i_indptr").noconvert(), py::arg("i_indices").noconvert(), py::arg("i_data").noconvert(),
        py::arg("user_embeddings").noconvert(), py::arg("user_biases").noconvert(),
        py::arg("user_embedding_grad").noconvert(), py::arg("user_bias_grad").noconvert(),
        py::arg("user_embedding_step").noconvert() = py::none(), py::arg("user_bias_step").noconvert() = py::none(),
        py::arg("item_embeddings").noconvert(), py::arg("item_biases").noconvert(),
        py::arg("item_embedding_grad").noconvert(), py::arg("item_bias_grad").noconvert(),
        py::arg("item_embedding_step").noconvert() = py::none(), py::arg("item_bias_step").noconvert() = py::none(),
        py::arg("negatives").noconvert() = py::none(), py::arg("loss") = 2, py::arg("schedule") = 0,
        py::arg("learning_rate") = 0.05f, py::arg("rho") = 0.95f, py::arg("epsilon") = 1e-6f,
        py::arg("user_alpha") = 0.0f, py::arg("item_alpha") = 0.0f, py::arg("max_sampled") = 10, py::arg("k") = 5,
        py::arg("n") = 10, py::arg("seed") = 0, py::arg("epoch") = 0, py::arg("n_threads") = 0,
        "One epoch of feature factorization; parameters and accumulators updated in place.");

    m.def(
        "representations",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data,
           const CArray<float>& emb, const CArray<float>& bias, int n_threads) {
            require_ndim(emb, 2, "embeddings");
            const int64_t n_feat = emb.shape(0), f = emb.shape(1), n_rows = indptr.shape(0) - 1;
            require_shape(bias, n_feat, -1, "biases");
            const CsrView x = csr_view(indptr, indices, data, n_rows, n_feat, "features");
            CArray<float> out({n_rows, f});
            CArray<float> out_bias(n_rows);
            float* o = out.mutable_data();
            float* ob = out_bias.mutable_data();
            {
                py::gil_scoped_release release;
                feature_mf::representations(x, emb.data(), bias.data(), n_feat, f, o, ob, n_threads);
            }
            return py::make_tuple(out, out_bias);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("data").noconvert(),
        py::arg("embeddings").noconvert(), py::arg("biases").noconvert(), py::arg("n_threads") = 0,
        "(features @ embeddings, features @ biases).");

    m.def(
        "example_loss",
        [](int loss, const CArray<float>& user, const CArray<float>& pos, const std::optional<CArray<float>>& neg,
           float label, float warp_weight) {
            if (loss < 0 || loss > 3) throw std::invalid_argument("loss must be 0 (logistic), 1 (bpr), 2 (warp) or 3 (warp-kos)");
            require_ndim(user, 1, "user");
            const int64_t f = user.shape(0) - 1;
            require_shape(pos, f + 1, -1, "pos");
            if (neg) require_shape(*neg, f + 1, -1, "neg");
            CArray<float> gu(f + 1), gi(f + 1), gj(f + 1);
            std::fill(gj.mutable_data(), gj.mutable_data() + f + 1, 0.0f);
            const double value = feature_mf::example_loss(static_cast<feature_mf::Loss>(loss), user.data(), pos.data(),
                                                          neg ? neg->data() : nullptr, f, label, warp_weight,
                                                          gu.mutable_data(), gi.mutable_data(),
                                                          neg ? gj.mutable_data() : nullptr);
            return py::make_tuple(value, gu, gi, gj);
        },
        py::arg("loss"), py::arg("user").noconvert(), py::arg("pos").noconvert(),
        py::arg("neg").noconvert() = py::none(), py::arg("label") = 1.0f, py::arg("warp_weight") = 1.0f,
        "Loss of one example and its gradients w.r.t. the (f + 1)-long representations (bias last).");
}
