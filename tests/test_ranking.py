"""Learning to rank: trees, objectives, persistence, groups, readers and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from recforge import _core
from recforge.base import NotFittedError
from recforge.metrics import ranking_metrics
from recforge.ranking import (
    LambdaMART,
    LinearRanker,
    group_offsets,
    read_lightgbm_ranking,
    read_query_file,
    read_svmlight,
)

R = _core.ranking
OBJ = {name: i for i, name in enumerate(R.OBJECTIVES)}


def make_queries(n_queries=40, size=(5, 30), n_features=6, seed=0, noise=0.5):
    """Queries whose relevance (0..3) grows with a hidden linear score of the features."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(size[0], size[1] + 1, n_queries)
    n = int(sizes.sum())
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    w = np.linspace(1.0, -0.5, n_features)
    latent = X @ w + noise * rng.normal(size=n)
    y = np.clip(np.floor(latent + 1.0), 0, 3).astype(np.float32)
    return X, y, sizes


def quiet(**kw):
    kw.setdefault("show_progress", False)
    kw.setdefault("n_threads", 1)
    return kw


# -- trees --------------------------------------------------------------------------------------


def test_single_split_matches_hand_computation():
    X = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
    y = np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    m = LambdaMART(objective="regression", n_estimators=1, num_leaves=2, min_data_in_leaf=1,
                   learning_rate=1.0, min_data_in_bin=1, **quiet()).fit(X, y)
    # init = mean(y) = 0.5; g = s - y = (.5, .5, -.5, -.5), h = 1. The best split is x <= 2.5:
    # leaves -G/H = -1/2 and +1/2; gain = 1^2/2 + 1^2/2 - 0^2/4 = 1.
    assert m.init_score_ == pytest.approx(0.5)
    assert m.split_feature_.tolist() == [0]
    assert m.threshold_[0] == pytest.approx(2.5)
    assert m.split_gain_[0] == pytest.approx(1.0)
    np.testing.assert_allclose(m.leaf_value_, [-0.5, 0.5])
    np.testing.assert_allclose(m.predict(X), [0, 0, 1, 1], atol=1e-12)


def test_split_choice_and_l2_against_hand_computed_gains():
    # Feature 0 separates y perfectly only at one threshold; feature 1 is weaker.
    X = np.array([[0, 5], [1, 1], [2, 6], [3, 2], [4, 7], [5, 3]], dtype=np.float32)
    y = np.array([0, 0, 0, 4, 4, 4], dtype=np.float32)
    m = LambdaMART(objective="regression", n_estimators=1, num_leaves=2, min_data_in_leaf=1,
                   learning_rate=1.0, lambda_l2=1.0, min_data_in_bin=1, **quiet()).fit(X, y)
    g = 2.0 - y  # init 2
    best = None
    for f in range(2):
        for t in np.unique(X[:, f])[:-1]:
            left = X[:, f] <= t
            gl, gr = g[left].sum(), g[~left].sum()
            gain = gl**2 / (left.sum() + 1) + gr**2 / ((~left).sum() + 1) - g.sum() ** 2 / (6 + 1)
            if best is None or gain > best[0] + 1e-12:
                best = (gain, f, t, -gl / (left.sum() + 1), -gr / ((~left).sum() + 1))
    assert m.split_feature_[0] == best[1]
    assert X[:, best[1]][X[:, best[1]] <= m.threshold_[0]].max() == best[2]
    assert m.split_gain_[0] == pytest.approx(best[0], rel=1e-6)
    np.testing.assert_allclose(m.leaf_value_, best[3:], rtol=1e-6)


def test_num_leaves_max_depth_and_min_data_are_respected():
    X, y, g = make_queries(seed=1)
    m = LambdaMART(n_estimators=5, num_leaves=7, min_data_in_leaf=15, counts_from_hessian=False, **quiet()).fit(X, y, g)
    leaves = np.diff(m.leaf_offsets_)
    assert leaves.max() <= 7
    assert m.leaf_count_.min() >= 15
    # LightGBM's estimate (rows ~ hessian x rows / H of the leaf) lets a leaf hold fewer rows
    e = LambdaMART(n_estimators=5, num_leaves=7, min_data_in_leaf=15, **quiet()).fit(X, y, g)
    assert e.leaf_count_.min() < 15
    d = LambdaMART(n_estimators=3, num_leaves=31, max_depth=2, **quiet()).fit(X, y, g)
    assert np.diff(d.leaf_offsets_).max() <= 4


ZERO = 1e-35  # |x| <= ZERO is zero for the binning


def _greedy_bounds(values, counts, max_bin, total, min_data_in_bin):
    """Bounds of one side (negative or positive values), written out plainly."""
    up = lambda x: np.nextafter(x, np.inf)  # noqa: E731
    bounds = []
    n = len(values)
    if n <= max_bin:
        cur = 0
        for i in range(n - 1):
            cur += counts[i]
            if cur >= min_data_in_bin:
                b = up((values[i] + values[i + 1]) / 2.0)
                if not bounds or b > up(bounds[-1]):
                    bounds.append(b)
                    cur = 0
        return bounds + [np.inf]
    max_bin = max(1, min(max_bin, total // min_data_in_bin))
    mean = total / max_bin
    big = [c >= mean for c in counts]
    rest_bins = max_bin - sum(big)
    rest = total - sum(c for c, g in zip(counts, big) if g)
    mean = rest / rest_bins if rest_bins else np.inf
    closed = []  # (last value of a bin, first value of the next)
    cur = 0
    for i in range(n - 1):
        if not big[i]:
            rest -= counts[i]
        cur += counts[i]
        if big[i] or cur >= mean or (big[i + 1] and cur >= max(1.0, mean * 0.5)):
            closed.append((values[i], values[i + 1]))
            if len(closed) >= max_bin - 1:
                break
            cur = 0
            if not big[i]:
                rest_bins -= 1
                mean = rest / rest_bins if rest_bins else np.inf
    for last, first in closed:
        b = up((last + first) / 2.0)
        if not bounds or b > up(bounds[-1]):
            bounds.append(b)
    return bounds + [np.inf]


def slow_bin_edges(x, max_bin=255, min_data_in_bin=3):
    """The upper bin edges of one feature by LightGBM's rule (zero as one bin), in float32."""
    x = x.astype(np.float64)
    nan = np.isnan(x)
    v = x[~nan]
    zero = np.abs(v) <= ZERO
    vals, cnts = np.unique(v[~zero], return_counts=True)
    vals, cnts = list(vals), list(cnts)
    n_zero = int(zero.sum())
    k = int(np.searchsorted(vals, 0.0))
    if n_zero > 0 or (0 < k < len(vals)) or not vals:  # zero as a value of its own
        vals.insert(k, 0.0)
        cnts.insert(k, n_zero)
    bins = max_bin - 1 if nan.any() else max_bin
    neg = [i for i, t in enumerate(vals) if t <= -ZERO]
    pos = [i for i, t in enumerate(vals) if t > ZERO]
    n_neg, n_pos = sum(cnts[i] for i in neg), sum(cnts[i] for i in pos)
    bounds = []
    if neg and bins > 1:
        nb = max(1, int(n_neg / (n_neg + n_pos) * (bins - 1)))
        bounds = _greedy_bounds(vals[: len(neg)], cnts[: len(neg)], nb, n_neg, min_data_in_bin)
        bounds[-1] = -ZERO
    rest = bins - 1 - len(bounds)
    if pos and rest > 0:
        bounds += [ZERO] + _greedy_bounds(vals[pos[0] :], cnts[pos[0] :], rest, n_pos, min_data_in_bin)
    else:
        bounds.append(np.inf)
    edges = np.array(bounds).astype(np.float32)
    too_high = edges.astype(np.float64) > np.array(bounds)
    edges[too_high] = np.nextafter(edges[too_high], np.float32(-np.inf))
    return edges


def binning_cases(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    cols = [
        rng.normal(size=n),  # negative and positive values, no zeros
        rng.integers(0, 4, n),  # four values
        np.where(rng.random(n) < 0.7, 0.0, rng.exponential(size=n)),  # sparse, positive
        -rng.exponential(size=n),  # negative only
        np.round(rng.normal(size=n), 1),  # heavy ties around zero
        np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),  # missing values
        np.where(rng.random(n) < 0.01, 1.0, 0.0),  # rare values (30 rows)
        rng.integers(0, 300, n) / 7.0,  # ~300 distinct values
        np.full(n, 2.5),  # constant
    ]
    return np.column_stack(cols).astype(np.float32)


@pytest.mark.parametrize("max_bin,min_data_in_bin", [(255, 3), (16, 3), (63, 1), (255, 20)])
def test_bin_edges_follow_the_zero_as_one_bin_rule(max_bin, min_data_in_bin):
    X = binning_cases()
    upper, offsets, miss = R.find_bins(X, max_bin, min_data_in_bin, 200000, 1)
    for f in range(X.shape[1]):
        want = slow_bin_edges(X[:, f], max_bin, min_data_in_bin)
        np.testing.assert_array_equal(upper[offsets[f] : offsets[f + 1]], want, err_msg=f"feature {f}")
    assert miss.tolist() == [int(np.isnan(X[:, f]).any()) for f in range(X.shape[1])]
    bins = R.apply_bins(X, upper, offsets, miss, 1)
    nb = np.diff(offsets)
    assert np.all(bins[np.isnan(X[:, 5]), 5] == nb[5])  # NaN -> the missing bin
    for f in range(X.shape[1]):  # a bin holds exactly the values between its edges
        ok = ~np.isnan(X[:, f])
        e = upper[offsets[f] : offsets[f + 1]]
        b = bins[ok, f].astype(np.int64)
        assert np.all(X[ok, f] <= e[b])
        assert np.all((b == 0) | (X[ok, f] > e[np.maximum(b - 1, 0)]))


def test_feature_pre_filter_gives_unsplittable_features_one_bin():
    X = binning_cases()
    rare = int((X[:, 6] == 1).sum())
    for rows, splittable in ((rare, True), (rare + 1, False)):
        upper, offsets, miss = R.find_bins(X, 255, 3, 200000, 1, min_split_rows=rows)
        nb = np.diff(offsets)
        assert (nb[6] > 1) == splittable
        assert nb[8] == 1  # a constant
        assert all(nb[f] > 1 for f in range(6))
    # a feature with missing values that cannot be split loses its missing bin too
    X2 = np.ascontiguousarray(np.where(np.arange(len(X))[:, None] < 5, np.nan, X[:, 8:9]))
    _, off2, miss2 = R.find_bins(X2, 255, 3, 200000, 1, min_split_rows=20)
    assert np.diff(off2)[0] == 1 and miss2[0] == 0


def test_bins_partition_rows_as_lightgbm_does():
    lgb = pytest.importorskip("lightgbm")
    X = np.ascontiguousarray(binning_cases(seed=1)[:, :8])
    for max_bin in (255, 16):
        upper, offsets, miss = R.find_bins(X, max_bin, 3, 200000, 1)
        ours = R.apply_bins(X, upper, offsets, miss, 1)
        ds = lgb.Dataset(X, np.zeros(len(X)), params={"verbose": -1, "max_bin": max_bin, "enable_bundle": False,
                                                      "min_data_in_leaf": 1}).construct()
        import tempfile, os  # noqa: E401
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bins.txt")
            ds._dump_text(path)
            lines = open(path).read().splitlines()
        rows = [ln for ln in lines if ln and ln[0].isdigit() and ln.count(",") == X.shape[1]]
        theirs = np.array([[int(t) for t in ln.split(",")[:-1]] for ln in rows])
        assert theirs.shape == ours.shape
        for f in range(X.shape[1]):  # the same partition of the rows (LightGBM renumbers bins)
            pairs = np.unique(np.column_stack([ours[:, f], theirs[:, f]]), axis=0)
            assert len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1])), f


def test_nan_features_are_missing_values_and_learned():
    rng = np.random.default_rng(3)
    n = 2000
    X = rng.normal(size=(n, 2)).astype(np.float32)
    informative = rng.random(n) < 0.3
    X[informative, 0] = np.nan
    y = informative.astype(np.float32)
    m = LambdaMART(objective="binary", n_estimators=20, **quiet()).fit(X, y)
    p = m.predict(X, raw_score=False)
    assert p[informative].min() > 0.9 and p[~informative].max() < 0.1
    # NaN at prediction time in a feature that had none in training does not fail
    Xt = X.copy()
    Xt[:5, 1] = np.nan
    assert np.isfinite(m.predict(Xt)).all()


def test_subsampling_and_column_sampling_are_seeded():
    X, y, g = make_queries(seed=2)
    kw = quiet(n_estimators=10, subsample=0.7, colsample_bytree=0.5, random_state=5)
    a = LambdaMART(**kw).fit(X, y, g).predict(X)
    b = LambdaMART(**kw).fit(X, y, g).predict(X)
    c = LambdaMART(**{**kw, "random_state": 6}).fit(X, y, g).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_threads_give_the_same_trees():
    X, y, g = make_queries(n_queries=200, seed=4)
    a = LambdaMART(**quiet(n_estimators=10)).fit(X, y, g)
    b = LambdaMART(**quiet(n_estimators=10, n_threads=2)).fit(X, y, g)
    np.testing.assert_array_equal(a.split_feature_, b.split_feature_)
    np.testing.assert_allclose(a.predict(X), b.predict(X, n_threads=2), rtol=1e-6, atol=1e-9)


# -- objectives ---------------------------------------------------------------------------------


def _grad(obj, s, y, off, **kw):
    gh = np.empty((len(s), 2), dtype=np.float32)
    R.gradients(OBJ[obj], s, y, off, gh, n_threads=1, **kw)
    return gh[:, 0].astype(np.float64), gh[:, 1].astype(np.float64)


@pytest.mark.parametrize("obj", ["regression", "binary", "rank_xendcg", "ranknet", "lambdarank"])
def test_gradients_and_hessians_match_finite_differences(obj):
    rng = np.random.default_rng(11)
    sizes = np.array([6, 9, 4])
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(sizes.sum())
    y = rng.integers(0, 4, n).astype(np.float32)
    s = rng.normal(size=n)
    kw = dict(seed=3, iteration=2)
    g, h = _grad(obj, s, y, off, **kw)
    fixed = s.copy() if obj == "lambdarank" else None

    def loss(v):
        return R.objective_loss(OBJ[obj], v, y, off, fixed_weights_from=fixed, **kw)

    eps = 1e-4
    for i in range(n):
        e = np.zeros(n)
        e[i] = eps
        lp, l0, lm = loss(s + e), loss(s), loss(s - e)
        assert g[i] == pytest.approx((lp - lm) / (2 * eps), rel=2e-3, abs=1e-5)
        assert h[i] == pytest.approx((lp - 2 * l0 + lm) / eps**2, rel=2e-2, abs=2e-4)


def grid_logistic(x, sigma):
    """1 / (1 + exp(sigma x)) with x rounded down to LightGBM's grid of 2^20 points on +-25 / sigma."""
    lo, points = -25.0 / sigma, 2**20
    factor = points / (-2 * lo)
    i = 0 if x <= lo else points - 1 if x >= -lo else int((x - lo) * factor)
    return 1 / (1 + np.exp((i / factor + lo) * sigma))


def slow_lambdarank(s, y, off, truncation=30, norm=True, sigma=1.0):
    """LambdaMART's lambdas written out plainly: pairs, |delta NDCG|, LightGBM's normalizations."""
    gain = 2.0 ** np.arange(31) - 1
    lam = np.zeros(len(s))
    hes = np.zeros(len(s))
    for q in range(len(off) - 1):
        a, b = off[q], off[q + 1]
        ss, yy = s[a:b], y[a:b].astype(int)
        n = b - a
        ideal = np.sort(yy)[::-1][:truncation]
        max_dcg = sum(gain[l] / np.log2(2 + i) for i, l in enumerate(ideal))
        if max_dcg == 0:
            continue
        order = sorted(range(n), key=lambda i: -ss[i])  # stable: ties keep input order
        rank = {d: r for r, d in enumerate(order)}
        ql, qh, total = np.zeros(n), np.zeros(n), 0.0
        for i in range(n):
            for j in range(n):
                if yy[i] <= yy[j]:
                    continue
                ri, rj = rank[i], rank[j]
                if min(ri, rj) >= truncation:
                    continue
                w = (gain[yy[i]] - gain[yy[j]]) * abs(1 / np.log2(2 + ri) - 1 / np.log2(2 + rj)) / max_dcg
                if norm and ss.max() != ss.min():
                    w /= float(np.float32(0.01)) + abs(ss[i] - ss[j])
                p = grid_logistic(ss[i] - ss[j], sigma)
                ql[i] -= sigma * w * p
                ql[j] += sigma * w * p
                qh[i] += sigma**2 * w * p * (1 - p)
                qh[j] += sigma**2 * w * p * (1 - p)
                total += 2 * sigma * w * p
        f = np.log2(1 + total) / total if norm and total > 0 else 1.0
        lam[a:b], hes[a:b] = ql * f, qh * f
    return lam, hes


@pytest.mark.parametrize("truncation,norm", [(30, True), (3, True), (30, False)])
def test_lambdas_match_a_slow_python_lambdamart(truncation, norm):
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 25, 12)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(sizes.sum())
    y = rng.integers(0, 5, n).astype(np.float32)
    y[off[2] : off[3]] = 0  # a query without relevant documents
    s = np.round(rng.normal(size=n), 1)  # with ties
    g, h = _grad("lambdarank", s, y, off, truncation_level=truncation, normalize=norm)
    lam, hes = slow_lambdarank(s, y, off, truncation, norm)
    np.testing.assert_allclose(g, lam, rtol=1e-5, atol=1e-8)  # float32 sums
    np.testing.assert_allclose(h, hes, rtol=1e-5, atol=1e-8)
    assert np.all(g[off[2] : off[3]] == 0)


def test_custom_label_gain_is_used():
    s = np.array([0.3, 0.1, -0.2])
    y = np.array([0, 1, 2], dtype=np.float32)
    off = np.array([0, 3], dtype=np.int64)
    g1, _ = _grad("lambdarank", s, y, off)
    g2, _ = _grad("lambdarank", s, y, off, label_gain=np.array([0.0, 1.0, 3.0]))
    np.testing.assert_allclose(g1, g2, rtol=1e-5)  # 2^l - 1 is the default
    g3, _ = _grad("lambdarank", s, y, off, label_gain=np.array([0.0, 1.0, 10.0]))
    assert not np.allclose(g1, g3)


# -- fitting, evaluation, early stopping --------------------------------------------------------


def _ndcg_public(scores, y, off, k=10):
    """nDCG@k via recforge.metrics (exp2 gain, empty queries score 1)."""
    n_q = len(off) - 1
    width = int(np.diff(off).max())
    lists = np.full((n_q, k), -1, dtype=np.int64)
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for q in range(n_q):
        a, b = off[q], off[q + 1]
        order = np.argsort(-scores[a:b], kind="stable")[:k]
        lists[q, : len(order)] = order
        rel = np.flatnonzero(y[a:b] > 0)
        rows += [q] * len(rel)
        cols += rel.tolist()
        vals += y[a:b][rel].tolist()
    relm = sp.csr_matrix((vals, (rows, cols)), shape=(n_q, width))
    return float(np.mean(ranking_metrics(lists, relm, k, metrics=["ndcg"], gain="exp2", empty="one")["ndcg"]))


def test_lambdamart_learns_and_eval_uses_recforge_metrics():
    X, y, g = make_queries(n_queries=80, seed=6)
    Xv, yv, gv = make_queries(n_queries=30, seed=7)
    m = LambdaMART(n_estimators=30, num_leaves=7, eval_at=[10, 5], **quiet()).fit(
        X, y, g, eval_set=[(Xv, yv)], eval_group=[gv]
    )
    hist = m.evals_result_["valid_0"]["ndcg@10"]
    assert len(hist) == 30
    off = group_offsets(gv, None, len(yv))
    assert hist[-1] == pytest.approx(_ndcg_public(m.predict(Xv), yv, off), abs=1e-12)
    assert hist[-1] == pytest.approx(m.score(Xv, yv, gv), abs=1e-12)
    rnd = _ndcg_public(np.random.default_rng(0).normal(size=len(yv)), yv, off)
    assert hist[-1] > rnd + 0.1


def test_early_stopping_keeps_the_best_iteration():
    X, y, g = make_queries(n_queries=60, seed=8, noise=2.0)
    Xv, yv, gv = make_queries(n_queries=30, seed=9, noise=2.0)
    m = LambdaMART(n_estimators=200, learning_rate=0.5, num_leaves=15, min_data_in_leaf=5,
                   early_stopping_rounds=5, eval_metric="map", **quiet()).fit(
        X, y, group=g, eval_set=[(Xv, yv)], eval_group=[gv])
    hist = m.evals_result_["valid_0"]["map@10"]
    assert len(hist) < 200
    assert m.n_trees_ == m.best_iteration_ == int(np.argmax(hist)) + 1
    assert len(hist) == m.best_iteration_ + 5


@pytest.mark.parametrize("obj", ["rank_xendcg", "ranknet", "binary", "regression"])
def test_other_objectives_learn_to_rank(obj):
    X, y, g = make_queries(n_queries=80, seed=10)
    Xv, yv, gv = make_queries(n_queries=30, seed=12)
    m = LambdaMART(objective=obj, n_estimators=20, num_leaves=7, **quiet()).fit(X, y, g)
    off = group_offsets(gv, None, len(yv))
    rnd = _ndcg_public(np.random.default_rng(0).normal(size=len(yv)), yv, off)
    assert m.score(Xv, yv, gv) > rnd + 0.1


def lightgbm_splits(booster):
    """(feature, threshold) of every split of every tree of a LightGBM model, in split order."""
    out = []
    for info in booster.dump_model()["tree_info"]:
        nodes = []

        def walk(node):
            if "split_index" in node:
                nodes.append((node["split_index"], node["split_feature"], node["threshold"]))
                walk(node["left_child"])
                walk(node["right_child"])

        walk(info["tree_structure"])
        out.append([(f, t) for _, f, t in sorted(nodes)])
    return out


def test_against_lightgbm_on_the_same_data():
    lgb = pytest.importorskip("lightgbm")
    X, y, g = make_queries(n_queries=150, seed=13)
    X[:, 2] = np.where(np.abs(X[:, 2]) < 0.5, 0.0, X[:, 2])  # zeros: the zero bin
    X[::11, 3] = np.nan  # missing values
    X[:, 4] = np.round(X[:, 4], 1)  # ties
    Xt, yt, gt = make_queries(n_queries=60, seed=14)
    params = dict(n_estimators=30, num_leaves=15, learning_rate=0.1)
    ours = LambdaMART(**quiet(**params)).fit(X, y, g)
    peer = lgb.LGBMRanker(**params, n_jobs=1, verbose=-1, min_child_samples=20).fit(X, y, group=g)
    # the same trees: split features and thresholds (ours are float32), leaf values
    theirs = lightgbm_splits(peer.booster_)
    for t in range(ours.n_trees_):
        a, b = ours.node_offsets_[t], ours.node_offsets_[t + 1]
        assert ours.split_feature_[a:b].tolist() == [f for f, _ in theirs[t]], t
        np.testing.assert_allclose(ours.threshold_[a:b], [thr for _, thr in theirs[t]], rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(ours.predict(Xt), peer.predict(Xt), rtol=1e-9, atol=1e-9)
    off = group_offsets(gt, None, len(yt))
    assert _ndcg_public(ours.predict(Xt), yt, off) == pytest.approx(_ndcg_public(peer.predict(Xt), yt, off), abs=1e-12)


# -- groups -------------------------------------------------------------------------------------


def test_group_sizes_and_ids_give_identical_models():
    X, y, g = make_queries(seed=15)
    ids = np.repeat(np.arange(len(g)) * 7 + 100, g)
    a = LambdaMART(**quiet(n_estimators=8)).fit(X, y, group=g)
    b = LambdaMART(**quiet(n_estimators=8)).fit(X, y, group=ids)
    c = LambdaMART(**quiet(n_estimators=8)).fit(X, y, qid=ids.astype(str))
    for other in (b, c):
        for name in ("split_feature_", "threshold_", "leaf_value_", "left_child_", "right_child_"):
            np.testing.assert_array_equal(getattr(a, name), getattr(other, name))


def test_group_errors():
    X, y, g = make_queries(n_queries=5, seed=16)
    n = len(y)
    with pytest.raises(ValueError, match="sum to"):
        LambdaMART(**quiet()).fit(X, y, group=np.append(g, 3))
    ids = np.repeat(np.arange(len(g)), g)
    ids[[0, -1]] = ids[-1], ids[0]  # two queries split in pieces
    with pytest.raises(ValueError, match="not contiguous"):
        LambdaMART(**quiet()).fit(X, y, group=ids)
    with pytest.raises(ValueError, match="ambiguous"):
        group_offsets(np.ones(n, dtype=int), None, n)
    with pytest.raises(ValueError, match="needs the queries"):
        LambdaMART(**quiet()).fit(X, y)
    with pytest.raises(ValueError, match="either"):
        group_offsets(g, ids, n)


def test_empty_queries_and_queries_without_relevant_documents():
    X, y, g = make_queries(n_queries=30, seed=17)
    sizes = np.insert(g, 3, 0)  # an empty query
    y2 = y.copy()
    y2[: g[0]] = 0  # a query with nothing relevant
    m = LambdaMART(**quiet(n_estimators=5)).fit(X, y2, group=sizes, eval_set=[(X, y2)], eval_group=[sizes])
    assert np.isfinite(m.predict(X)).all()
    orders = m.rank(X, sizes)
    assert [len(o) for o in orders] == sizes.tolist()
    assert np.isfinite(m.evals_result_["valid_0"]["ndcg@10"]).all()
    # the empty query is left out of the mean, the query without relevant documents scores 1
    off_full = group_offsets(sizes, None, len(y2))
    scores = m.predict(X)
    with_empty = R.rank_metric(0, scores, y2, off_full, 10, 1.0, 1)
    without = R.rank_metric(0, scores, y2, group_offsets(g, None, len(y2)), 10, 1.0, 1)
    assert with_empty == pytest.approx(without)
    skip = R.rank_metric(0, scores, y2, group_offsets(g, None, len(y2)), 10, float("nan"), 1)
    zero = R.rank_metric(0, scores, y2, group_offsets(g, None, len(y2)), 10, 0.0, 1)
    n_q = len(g)
    bounds = group_offsets(g, None, len(y2))
    n_none = sum(int(y2[a:b].max() == 0) for a, b in zip(bounds[:-1], bounds[1:]))
    assert n_none >= 1
    assert without == pytest.approx((zero * n_q + n_none) / n_q)
    assert skip == pytest.approx(zero * n_q / (n_q - n_none))


def test_bad_labels_and_features():
    X, y, g = make_queries(n_queries=5, seed=18)
    for bad in (np.nan, np.inf):
        yb = y.copy()
        yb[2] = bad
        with pytest.raises(ValueError, match="finite"):
            LambdaMART(**quiet()).fit(X, yb, g)
    with pytest.raises(ValueError, match="integer relevance"):
        LambdaMART(**quiet()).fit(X, y + 0.5, g)
    with pytest.raises(ValueError, match="integer relevance"):
        LambdaMART(**quiet()).fit(X, y + 40, g)
    with pytest.raises(ValueError, match="labels but X has"):
        LambdaMART(**quiet()).fit(X, y[:-1], g)
    with pytest.raises(ValueError, match="2-D"):
        LambdaMART(**quiet()).fit(X[:, 0], y, g)
    with pytest.raises(ValueError, match="objective"):
        LambdaMART(objective="lambda", **quiet()).fit(X, y, g)
    with pytest.raises(ValueError, match="max_bin"):
        LambdaMART(max_bin=1000, **quiet()).fit(X, y, g)
    m = LambdaMART(**quiet(n_estimators=2)).fit(X, y, g)
    with pytest.raises(ValueError, match="features"):
        m.predict(X[:, :3])
    with pytest.raises(NotFittedError):
        LambdaMART().predict(X)


# -- persistence, introspection -----------------------------------------------------------------


def test_save_load_and_pickle_predict_identically(tmp_path):
    X, y, g = make_queries(seed=19)
    X[::5, 1] = np.nan
    m = LambdaMART(**quiet(n_estimators=10)).fit(X, y, g)
    path = m.save(tmp_path / "model")
    loaded = LambdaMART.load(path)
    np.testing.assert_array_equal(m.predict(X), loaded.predict(X))
    np.testing.assert_array_equal(m.predict(X), pickle.loads(pickle.dumps(m)).predict(X))
    assert loaded.get_params() == m.get_params()
    assert loaded.evals_result_ == m.evals_result_
    lin = LinearRanker(**quiet(n_epochs=3)).fit(X, y, g)
    np.testing.assert_array_equal(lin.predict(X), LinearRanker.load(lin.save(tmp_path / "lin")).predict(X))
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable"):
        LambdaMART.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="not a LambdaMART"):
        LambdaMART.load(tmp_path / "lin.npz")
    # a corrupt tree (child pointing outside) is refused at load time
    state = dict(np.load(path, allow_pickle=False))
    state["left_child_"] = state["left_child_"].copy()
    state["left_child_"][0] = 10**6
    np.savez(tmp_path / "corrupt.npz", **state)
    with pytest.raises(ValueError, match="inconsistent"):
        LambdaMART.load(tmp_path / "corrupt.npz")


def test_importance_dump_rank_and_params():
    X, y, g = make_queries(seed=20)
    m = LambdaMART(**quiet(n_estimators=10, num_leaves=4)).fit(X, y, g)
    split = m.feature_importance("split")
    gain = m.feature_importance("gain")
    assert split.sum() == len(m.split_feature_)
    assert gain.sum() == pytest.approx(m.split_gain_.sum())
    assert np.argmax(gain) == 0  # the feature with the largest weight in the hidden score
    text = m.dump_model()
    assert text.count("leaf ") == len(m.leaf_value_) and "tree 9" in text
    orders = m.rank(X, g)
    s = m.predict(X)
    first = orders[0]
    assert np.all(np.diff(s[: g[0]][first]) <= 0)
    assert LambdaMART(num_leaves=5).set_params(num_leaves=9).get_params()["num_leaves"] == 9
    leaves = m.predict_leaf(X)
    assert leaves.shape == (len(y), 10)
    vals = m.leaf_value_[m.leaf_offsets_[:-1][None, :] + leaves].sum(axis=1)
    np.testing.assert_allclose(vals, s)


# -- linear rankers -----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", range(4))
def test_linear_query_loss_gradient(loss):
    rng = np.random.default_rng(loss)
    s = rng.normal(size=7)
    y = rng.integers(0, 3, 7).astype(np.float32)
    v, g = R.linear_query_loss(loss, s, y)
    eps = 1e-6
    for i in range(7):
        e = np.zeros(7)
        e[i] = eps
        fd = (R.linear_query_loss(loss, s + e, y)[0] - R.linear_query_loss(loss, s - e, y)[0]) / (2 * eps)
        assert g[i] == pytest.approx(fd, abs=1e-6)


@pytest.mark.parametrize("loss", ["logistic", "ranknet", "ranksvm", "listnet"])
def test_linear_rankers_learn(loss):
    X, y, g = make_queries(n_queries=80, seed=21)
    Xv, yv, gv = make_queries(n_queries=30, seed=22)
    m = LinearRanker(loss=loss, **quiet()).fit(X, y, g)
    off = group_offsets(gv, None, len(yv))
    rnd = _ndcg_public(np.random.default_rng(0).normal(size=len(yv)), yv, off)
    assert _ndcg_public(m.predict(Xv), yv, off) > rnd + 0.15
    assert m.loss_history_[-1] < m.loss_history_[0]
    Xn = Xv.copy()
    Xn[0, 0] = np.nan
    assert np.isfinite(m.predict(Xn)).all()


# -- readers ------------------------------------------------------------------------------------


def test_svmlight_and_query_file_readers(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("2 qid:1 1:0.5 3:1.5 # doc a\n0 qid:1 2:2.0\n1 qid:7 1:-1 3:4e-1\n\n")
    X, y, q = read_svmlight(p)
    np.testing.assert_array_equal(y, [2, 0, 1])
    np.testing.assert_array_equal(q, [1, 1, 7])
    np.testing.assert_allclose(X, [[0.5, 0, 1.5], [0, 2, 0], [-1, 0, 0.4]])
    Xn, _, _ = read_svmlight(p, missing=np.nan, n_features=4)
    assert Xn.shape == (3, 4) and np.isnan(Xn[1, 0])
    (tmp_path / "lgb.txt").write_text("1 0:1 2:3\n0 1:2\n1 0:5\n")
    (tmp_path / "lgb.txt.query").write_text("2\n1\n")
    Xl, yl, sizes = read_lightgbm_ranking(tmp_path / "lgb.txt")
    assert Xl.shape == (3, 3) and sizes.tolist() == [2, 1]
    np.testing.assert_array_equal(read_query_file(tmp_path / "lgb.txt.query"), [2, 1])
    (tmp_path / "broken.txt").write_text("1 qid:1 1:0.5\nx qid:1 1:2\n")
    with pytest.raises(ValueError, match="broken.txt:2"):
        read_svmlight(tmp_path / "broken.txt")
    (tmp_path / "broken2.txt").write_text("1 qid:1 1=0.5\n")
    with pytest.raises(ValueError, match="index:value"):
        read_svmlight(tmp_path / "broken2.txt")
    (tmp_path / "lgb.txt.query").write_text("2\n2\n")
    with pytest.raises(ValueError, match="sum to"):
        read_lightgbm_ranking(tmp_path / "lgb.txt")


def test_mq2008_reader_and_a_small_fit(shared_mq2008):
    X, y, q = read_svmlight(shared_mq2008 / "Fold1" / "vali.txt")
    assert X.shape[1] == 46 and set(np.unique(y)) <= {0, 1, 2}
    off = group_offsets(None, q, len(y))
    m = LambdaMART(**quiet(n_estimators=10)).fit(X, y, qid=q)
    assert m.score(X, y, qid=q) > 0.7
    assert len(off) - 1 == len(np.unique(q))


@pytest.fixture
def shared_mq2008():
    from tests.conftest import shared_data

    return shared_data("letor4-mq2008")
