// Learning-to-rank kernels: histogram GBDT (binning, trees, objectives, prediction, grouped
// evaluation) and linear rankers.
#include <cmath>
#include <string>

#include "common.hpp"
#include "recforge/ranking/gbdt.hpp"
#include "recforge/ranking/linear.hpp"

using namespace recforge;
using namespace recforge::bindings;

namespace {

void require_len(int64_t got, int64_t want, const char* name) {
    if (got != want)
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(want) + " entries, got " +
                                    std::to_string(got));
}

struct EdgeArrays {
    const CArray<float>& upper;
    const CArray<int64_t>& offsets;
    const CArray<uint8_t>& has_missing;
};

gbdt::Binned binned(const CArray<uint8_t>& bins, const CArray<float>& upper, const CArray<int64_t>& offsets,
                    const CArray<uint8_t>& has_missing) {
    require_ndim(bins, 2, "bins");
    require_ndim(upper, 1, "upper");
    require_ndim(offsets, 1, "offsets");
    require_ndim(has_missing, 1, "has_missing");
    gbdt::Binned d;
    d.bins = bins.data();
    d.n_rows = bins.shape(0);
    d.n_features = bins.shape(1);
    require_len(offsets.shape(0), d.n_features + 1, "offsets");
    require_len(has_missing.shape(0), d.n_features, "has_missing");
    if (offsets.at(d.n_features) != upper.shape(0)) throw std::invalid_argument("offsets[-1] must equal len(upper)");
    d.upper = upper.data();
    d.offsets = offsets.data();
    d.has_missing = has_missing.data();
    return d;
}

gbdt::Forest forest(const CArray<int64_t>& node_offsets, const CArray<int64_t>& leaf_offsets,
                    const CArray<int32_t>& feature, const CArray<float>& threshold, const CArray<uint8_t>& default_left,
                    const CArray<int32_t>& left, const CArray<int32_t>& right, const CArray<double>& leaf_value) {
    require_ndim(node_offsets, 1, "node_offsets");
    require_ndim(leaf_offsets, 1, "leaf_offsets");
    if (node_offsets.shape(0) < 1 || node_offsets.shape(0) != leaf_offsets.shape(0))
        throw std::invalid_argument("node_offsets and leaf_offsets must both have n_trees + 1 entries");
    gbdt::Forest f;
    f.n_trees = node_offsets.shape(0) - 1;
    const int64_t nn = node_offsets.at(f.n_trees), nl = leaf_offsets.at(f.n_trees);
    require_len(feature.shape(0), nn, "feature");
    require_len(threshold.shape(0), nn, "threshold");
    require_len(default_left.shape(0), nn, "default_left");
    require_len(left.shape(0), nn, "left");
    require_len(right.shape(0), nn, "right");
    require_len(leaf_value.shape(0), nl, "leaf_value");
    f.node_offsets = node_offsets.data();
    f.leaf_offsets = leaf_offsets.data();
    f.feature = feature.data();
    f.threshold = threshold.data();
    f.default_left = default_left.data();
    f.left = left.data();
    f.right = right.data();
    f.leaf_value = leaf_value.data();
    return f;
}

gbdt::Objective objective_of(int o) {
    if (o < 0 || o > 4) throw std::invalid_argument("objective must be 0..4");
    return static_cast<gbdt::Objective>(o);
}

gbdt::ObjectiveParams objective_params(double sigmoid, const std::optional<CArray<double>>& label_gain,
                                       int truncation_level, bool normalize, uint64_t seed, int64_t iteration) {
    if (!(sigmoid > 0)) throw std::invalid_argument("sigmoid must be > 0");
    if (truncation_level < 1) throw std::invalid_argument("truncation_level must be >= 1");
    gbdt::ObjectiveParams p;
    p.sigmoid = sigmoid;
    if (label_gain) p.label_gain.assign(label_gain->data(), label_gain->data() + label_gain->shape(0));
    p.truncation_level = truncation_level;
    p.normalize = normalize;
    p.seed = seed;
    p.iteration = iteration;
    return p;
}

void check_groups(const CArray<int64_t>& go, int64_t n_rows) {
    require_ndim(go, 1, "group_offsets");
    if (go.shape(0) < 1) throw std::invalid_argument("group_offsets must have n_groups + 1 entries");
    if (go.at(0) != 0 || go.at(go.shape(0) - 1) != n_rows)
        throw std::invalid_argument("group_offsets must run from 0 to the number of rows");
}

py::dict tree_dict(const gbdt::Tree& t) {
    auto vec = [](const auto& v) {
        using T = typename std::decay_t<decltype(v)>::value_type;
        CArray<T> a(static_cast<py::ssize_t>(v.size()));
        std::copy(v.begin(), v.end(), a.mutable_data());
        return a;
    };
    py::dict d;
    d["feature"] = vec(t.feature);
    d["threshold_bin"] = vec(t.threshold_bin);
    d["threshold"] = vec(t.threshold);
    d["default_left"] = vec(t.default_left);
    d["left"] = vec(t.left);
    d["right"] = vec(t.right);
    d["gain"] = vec(t.gain);
    d["leaf_value"] = vec(t.leaf_value);
    d["leaf_count"] = vec(t.leaf_count);
    d["leaf_hessian"] = vec(t.leaf_hessian);
    return d;
}

}  // namespace

void bind_ranking(py::module_& m) {
    m.attr("OBJECTIVES") = py::make_tuple("regression", "binary", "lambdarank", "rank_xendcg", "ranknet");

    m.def(
        "find_bins",
        [](const CArray<float>& X, int max_bin, int min_data_in_bin, int64_t sample_rows, int n_threads,
           int64_t min_split_rows) {
            require_ndim(X, 2, "X");
            gbdt::BinEdges e;
            {
                py::gil_scoped_release release;
                e = gbdt::find_bins(X.data(), X.shape(0), X.shape(1), max_bin, min_data_in_bin, sample_rows, min_split_rows,
                                    n_threads);
            }
            CArray<float> upper(static_cast<py::ssize_t>(e.upper.size()));
            std::copy(e.upper.begin(), e.upper.end(), upper.mutable_data());
            CArray<int64_t> offsets(static_cast<py::ssize_t>(e.offsets.size()));
            std::copy(e.offsets.begin(), e.offsets.end(), offsets.mutable_data());
            CArray<uint8_t> miss(static_cast<py::ssize_t>(e.has_missing.size()));
            std::copy(e.has_missing.begin(), e.has_missing.end(), miss.mutable_data());
            return py::make_tuple(upper, offsets, miss);
        },
        py::arg("X").noconvert(), py::arg("max_bin") = 255, py::arg("min_data_in_bin") = 3,
        py::arg("sample_rows") = 200000, py::arg("n_threads") = 0, py::arg("min_split_rows") = 0,
        "Quantile bin edges of every feature: (upper edges, offsets, has_missing).");

    m.def(
        "apply_bins",
        [](const CArray<float>& X, const CArray<float>& upper, const CArray<int64_t>& offsets,
           const CArray<uint8_t>& has_missing, int n_threads) {
            require_ndim(X, 2, "X");
            const int64_t n = X.shape(0), F = X.shape(1);
            require_len(offsets.shape(0), F + 1, "offsets");
            require_len(has_missing.shape(0), F, "has_missing");
            if (offsets.at(F) != upper.shape(0)) throw std::invalid_argument("offsets[-1] must equal len(upper)");
            CArray<uint8_t> out({n, F});
            uint8_t* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                gbdt::apply_bins(X.data(), n, F, upper.data(), offsets.data(), has_missing.data(), o, n_threads);
            }
            return out;
        },
        py::arg("X").noconvert(), py::arg("upper").noconvert(), py::arg("offsets").noconvert(),
        py::arg("has_missing").noconvert(), py::arg("n_threads") = 0, "Bin indices (uint8, rows x features).");

    m.def(
        "gradients",
        [](int objective, const CArray<double>& scores, const CArray<float>& labels, const CArray<int64_t>& group_offsets,
           CArray<float>& out, double sigmoid, const std::optional<CArray<double>>& label_gain, int truncation_level,
           bool normalize, uint64_t seed, int64_t iteration, int n_threads) {
            const int64_t n = scores.shape(0);
            require_len(labels.shape(0), n, "labels");
            require_ndim(out, 2, "out");
            if (out.shape(0) != n || out.shape(1) != 2) throw std::invalid_argument("out must have shape (n_rows, 2)");
            check_groups(group_offsets, n);
            const auto o = objective_of(objective);
            const auto p = objective_params(sigmoid, label_gain, truncation_level, normalize, seed, iteration);
            float* gh = out.mutable_data();
            py::gil_scoped_release release;
            gbdt::gradients(o, scores.data(), labels.data(), n, group_offsets.data(), group_offsets.shape(0) - 1, p, gh,
                            n_threads);
        },
        py::arg("objective"), py::arg("scores").noconvert(), py::arg("labels").noconvert(),
        py::arg("group_offsets").noconvert(), py::arg("out").noconvert(), py::arg("sigmoid") = 1.0,
        py::arg("label_gain").noconvert() = py::none(), py::arg("truncation_level") = 30, py::arg("normalize") = true,
        py::arg("seed") = 0, py::arg("iteration") = 0, py::arg("n_threads") = 0,
        "Gradients and hessians (out[:, 0], out[:, 1]) of an objective at the scores.");

    m.def(
        "objective_loss",
        [](int objective, const CArray<double>& scores, const CArray<float>& labels,
           const CArray<int64_t>& group_offsets, double sigmoid, const std::optional<CArray<double>>& label_gain,
           int truncation_level, bool normalize, uint64_t seed, int64_t iteration,
           const std::optional<CArray<double>>& fixed_weights_from) {
            const int64_t n = scores.shape(0);
            require_len(labels.shape(0), n, "labels");
            check_groups(group_offsets, n);
            if (fixed_weights_from) require_len(fixed_weights_from->shape(0), n, "fixed_weights_from");
            const auto p = objective_params(sigmoid, label_gain, truncation_level, normalize, seed, iteration);
            return gbdt::objective_loss(objective_of(objective), scores.data(), labels.data(), n, group_offsets.data(),
                                        group_offsets.shape(0) - 1, p,
                                        fixed_weights_from ? fixed_weights_from->data() : nullptr);
        },
        py::arg("objective"), py::arg("scores").noconvert(), py::arg("labels").noconvert(),
        py::arg("group_offsets").noconvert(), py::arg("sigmoid") = 1.0, py::arg("label_gain").noconvert() = py::none(),
        py::arg("truncation_level") = 30, py::arg("normalize") = true, py::arg("seed") = 0, py::arg("iteration") = 0,
        py::arg("fixed_weights_from").noconvert() = py::none(),
        "The loss whose derivatives gradients() returns (lambdarank: weights fixed at fixed_weights_from).");

    m.def(
        "grow_tree",
        [](const CArray<uint8_t>& bins, const CArray<float>& upper, const CArray<int64_t>& offsets,
           const CArray<uint8_t>& has_missing, const CArray<float>& grad_hess, const std::optional<CArray<int32_t>>& rows,
           const std::optional<CArray<uint8_t>>& feature_mask, std::optional<CArray<double>> scores, int num_leaves,
           int max_depth, int64_t min_data_in_leaf, double min_sum_hessian, double lambda_l1, double lambda_l2,
           double min_gain_to_split, double learning_rate, bool counts_from_hessian, int n_threads) {
            const gbdt::Binned d = binned(bins, upper, offsets, has_missing);
            require_ndim(grad_hess, 2, "grad_hess");
            if (grad_hess.shape(0) != d.n_rows || grad_hess.shape(1) != 2)
                throw std::invalid_argument("grad_hess must have shape (n_rows, 2)");
            if (feature_mask) require_len(feature_mask->shape(0), d.n_features, "feature_mask");
            double* s = nullptr;
            if (scores) {
                require_len(scores->shape(0), d.n_rows, "scores");
                s = scores->mutable_data();
            }
            gbdt::TreeParams p;
            p.num_leaves = num_leaves;
            p.max_depth = max_depth;
            p.min_data_in_leaf = min_data_in_leaf;
            p.min_sum_hessian = min_sum_hessian;
            p.lambda_l1 = lambda_l1;
            p.lambda_l2 = lambda_l2;
            p.min_gain_to_split = min_gain_to_split;
            p.learning_rate = learning_rate;
            p.counts_from_hessian = counts_from_hessian;
            gbdt::Tree t;
            {
                py::gil_scoped_release release;
                t = gbdt::grow_tree(d, grad_hess.data(), rows ? rows->data() : nullptr, rows ? rows->shape(0) : d.n_rows,
                                    feature_mask ? feature_mask->data() : nullptr, p, s, n_threads);
            }
            return tree_dict(t);
        },
        py::arg("bins").noconvert(), py::arg("upper").noconvert(), py::arg("offsets").noconvert(),
        py::arg("has_missing").noconvert(), py::arg("grad_hess").noconvert(), py::arg("rows").noconvert() = py::none(),
        py::arg("feature_mask").noconvert() = py::none(), py::arg("scores").noconvert() = py::none(),
        py::arg("num_leaves") = 31, py::arg("max_depth") = -1, py::arg("min_data_in_leaf") = 20,
        py::arg("min_sum_hessian") = 1e-3, py::arg("lambda_l1") = 0.0, py::arg("lambda_l2") = 0.0,
        py::arg("min_gain_to_split") = 0.0, py::arg("learning_rate") = 0.1, py::arg("counts_from_hessian") = true,
        py::arg("n_threads") = 0,
        "Grows one leaf-wise tree; adds its outputs to `scores` for the rows it was grown on; returns its arrays.");

    m.def(
        "add_tree_binned",
        [](const py::dict& tree, const CArray<uint8_t>& bins, const CArray<float>& upper, const CArray<int64_t>& offsets,
           const CArray<uint8_t>& has_missing, const std::optional<CArray<int32_t>>& rows, CArray<double>& scores,
           int n_threads) {
            const gbdt::Binned d = binned(bins, upper, offsets, has_missing);
            require_len(scores.shape(0), d.n_rows, "scores");
            gbdt::Tree t;
            auto take = [&](const char* key, auto& v) {
                using T = typename std::decay_t<decltype(v)>::value_type;
                auto a = tree[key].cast<CArray<T>>();
                v.assign(a.data(), a.data() + a.shape(0));
            };
            take("feature", t.feature);
            take("threshold_bin", t.threshold_bin);
            take("default_left", t.default_left);
            take("left", t.left);
            take("right", t.right);
            take("leaf_value", t.leaf_value);
            const int64_t nn = static_cast<int64_t>(t.feature.size());
            if (static_cast<int64_t>(t.leaf_value.size()) != nn + 1) throw std::invalid_argument("a tree needs one more leaf than splits");
            for (int64_t i = 0; i < nn; ++i) {
                if (t.feature[i] < 0 || t.feature[i] >= d.n_features) throw std::out_of_range("tree feature outside the data");
                for (int32_t c : {t.left[i], t.right[i]})
                    if (c >= 0 ? (c <= i || c >= nn) : (~c > nn)) throw std::invalid_argument("tree child outside the tree");
            }
            if (rows)
                for (int64_t i = 0; i < rows->shape(0); ++i)
                    if (rows->data()[i] < 0 || rows->data()[i] >= d.n_rows) throw std::out_of_range("row outside the data");
            double* s = scores.mutable_data();
            py::gil_scoped_release release;
            gbdt::add_tree_binned(t, d, rows ? rows->data() : nullptr, rows ? rows->shape(0) : 0, s, n_threads);
        },
        py::arg("tree"), py::arg("bins").noconvert(), py::arg("upper").noconvert(), py::arg("offsets").noconvert(),
        py::arg("has_missing").noconvert(), py::arg("rows").noconvert() = py::none(), py::arg("scores").noconvert(),
        py::arg("n_threads") = 0, "Adds one tree's outputs on binned rows to scores (in place).");

    m.def(
        "predict",
        [](const CArray<int64_t>& node_offsets, const CArray<int64_t>& leaf_offsets, const CArray<int32_t>& feature,
           const CArray<float>& threshold, const CArray<uint8_t>& default_left, const CArray<int32_t>& left,
           const CArray<int32_t>& right, const CArray<double>& leaf_value, const CArray<float>& X, int64_t n_use,
           double init, bool check, int n_threads) {
            const gbdt::Forest f = forest(node_offsets, leaf_offsets, feature, threshold, default_left, left, right, leaf_value);
            require_ndim(X, 2, "X");
            if (check) gbdt::check_forest(f, X.shape(1));
            else if (f.n_trees > 0)
                for (int64_t i = 0; i < feature.shape(0); ++i)
                    if (feature.data()[i] >= X.shape(1)) throw std::out_of_range("the model splits on a feature X does not have");
            CArray<double> out(X.shape(0));
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                gbdt::predict(f, n_use < 0 ? f.n_trees : n_use, X.data(), X.shape(0), X.shape(1), init, o, n_threads);
            }
            return out;
        },
        py::arg("node_offsets").noconvert(), py::arg("leaf_offsets").noconvert(), py::arg("feature").noconvert(),
        py::arg("threshold").noconvert(), py::arg("default_left").noconvert(), py::arg("left").noconvert(),
        py::arg("right").noconvert(), py::arg("leaf_value").noconvert(), py::arg("X").noconvert(),
        py::arg("n_use") = -1, py::arg("init") = 0.0, py::arg("check") = true, py::arg("n_threads") = 0,
        "Raw scores of the rows of X: init plus the first n_use trees (-1: all).");

    m.def(
        "predict_leaf",
        [](const CArray<int64_t>& node_offsets, const CArray<int64_t>& leaf_offsets, const CArray<int32_t>& feature,
           const CArray<float>& threshold, const CArray<uint8_t>& default_left, const CArray<int32_t>& left,
           const CArray<int32_t>& right, const CArray<double>& leaf_value, const CArray<float>& X, int64_t n_use,
           int n_threads) {
            const gbdt::Forest f = forest(node_offsets, leaf_offsets, feature, threshold, default_left, left, right, leaf_value);
            require_ndim(X, 2, "X");
            gbdt::check_forest(f, X.shape(1));
            const int64_t use = n_use < 0 ? f.n_trees : std::min(n_use, f.n_trees);
            CArray<int32_t> out({X.shape(0), static_cast<py::ssize_t>(use)});
            int32_t* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                gbdt::predict_leaf(f, use, X.data(), X.shape(0), X.shape(1), o, n_threads);
            }
            return out;
        },
        py::arg("node_offsets").noconvert(), py::arg("leaf_offsets").noconvert(), py::arg("feature").noconvert(),
        py::arg("threshold").noconvert(), py::arg("default_left").noconvert(), py::arg("left").noconvert(),
        py::arg("right").noconvert(), py::arg("leaf_value").noconvert(), py::arg("X").noconvert(),
        py::arg("n_use") = -1, py::arg("n_threads") = 0, "Leaf index of every row in every tree (rows x trees).");

    m.def(
        "rank_metric",
        [](int metric, const CArray<double>& scores, const CArray<float>& labels, const CArray<int64_t>& group_offsets,
           int k, double empty_score, int n_threads) {
            if (metric != 0 && metric != 1) throw std::invalid_argument("metric must be 0 (ndcg) or 1 (map)");
            const int64_t n = scores.shape(0);
            require_len(labels.shape(0), n, "labels");
            check_groups(group_offsets, n);
            py::gil_scoped_release release;
            return gbdt::rank_metric(static_cast<gbdt::RankMetric>(metric), scores.data(), labels.data(),
                                     group_offsets.data(), group_offsets.shape(0) - 1, k, empty_score, n_threads);
        },
        py::arg("metric"), py::arg("scores").noconvert(), py::arg("labels").noconvert(),
        py::arg("group_offsets").noconvert(), py::arg("k") = 10, py::arg("empty_score") = 1.0, py::arg("n_threads") = 0,
        "Mean nDCG@k (metric=0, gain 2^label - 1) or MAP@k (metric=1) of grouped scores.");

    m.def(
        "linear_epoch",
        [](const CArray<float>& X, const CArray<float>& y, const CArray<int64_t>& group_offsets, CArray<double>& w,
           int loss, double learning_rate, double l2, uint64_t seed, int64_t epoch) {
            require_ndim(X, 2, "X");
            const int64_t n = X.shape(0), F = X.shape(1);
            require_len(y.shape(0), n, "y");
            require_len(w.shape(0), F + 1, "w");
            check_groups(group_offsets, n);
            if (loss < 0 || loss > 3) throw std::invalid_argument("loss must be 0..3");
            linear_rank::Params p;
            p.loss = static_cast<linear_rank::Loss>(loss);
            p.learning_rate = learning_rate;
            p.l2 = l2;
            p.seed = seed;
            double* wp = w.mutable_data();
            py::gil_scoped_release release;
            return linear_rank::epoch(X.data(), n, F, y.data(), group_offsets.data(), group_offsets.shape(0) - 1, wp, p,
                                      epoch);
        },
        py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("group_offsets").noconvert(),
        py::arg("w").noconvert(), py::arg("loss") = 1, py::arg("learning_rate") = 0.05, py::arg("l2") = 1e-4,
        py::arg("seed") = 0, py::arg("epoch") = 0, "One SGD epoch of a linear ranker (w updated in place); mean loss.");

    m.def(
        "linear_query_loss",
        [](int loss, const CArray<double>& s, const CArray<float>& y) {
            if (loss < 0 || loss > 3) throw std::invalid_argument("loss must be 0..3");
            require_len(y.shape(0), s.shape(0), "y");
            CArray<double> g(s.shape(0));
            const double v = linear_rank::query_loss(static_cast<linear_rank::Loss>(loss), s.data(), y.data(), s.shape(0),
                                                     g.mutable_data());
            return py::make_tuple(v, g);
        },
        py::arg("loss"), py::arg("scores").noconvert(), py::arg("y").noconvert(),
        "Loss of one query under a linear ranker's loss and its gradient with respect to the scores.");
}
