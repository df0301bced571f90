"""Exact and HNSW indexes: exact search against brute force, ANN recall, exclusion, persistence."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

import recforge as rf
from recforge.factorization import FactorRecommender
from recforge.retrieval import ExactIndex, HNSWIndex, recall_vs_exact

from .test_factor_base import FixedFactors


def clustered(rng, n, d, n_clusters=50, scale=None):
    centers = rng.standard_normal((n_clusters, d))
    x = centers[rng.integers(0, n_clusters, n)] + 0.5 * rng.standard_normal((n, d))
    if scale is not None:
        x *= scale(rng, n)
    return x.astype(np.float32)


def brute(queries, vectors, metric, k, exclude=None):
    q, v = queries.astype(np.float64), vectors.astype(np.float64)
    if metric == "ip":
        s = q @ v.T
    elif metric == "cosine":
        s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (v / np.linalg.norm(v, axis=1, keepdims=True)).T
    else:
        s = -((q[:, None, :] - v[None, :, :]) ** 2).sum(-1)
    if exclude is not None:
        for i, ex in enumerate(exclude):
            s[i, ex] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, 1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    vectors = clustered(rng, 3000, 16, scale=lambda r, n: 0.5 + r.random((n, 1)))
    queries = clustered(rng, 100, 16)
    return vectors, queries


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_exact_index_matches_brute_force(data, metric):
    vectors, queries = data
    index = ExactIndex(metric).build(vectors)
    exclude = [np.arange(i, i + 30) for i in range(len(queries))]
    labels, scores = index.query(queries, 10, exclude=exclude)
    want, want_scores = brute(queries, vectors, metric, 10, exclude)
    assert (labels == want).mean() > 0.99  # float32 vs float64 near-ties only
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-3)
    for i, ex in enumerate(exclude):
        assert not set(labels[i]) & set(ex.tolist())


@pytest.mark.parametrize("metric,ip_graph", [("ip", "ip"), ("ip", "augment"), ("cosine", "ip"), ("l2", "ip")])
def test_hnsw_recall_against_exact(data, metric, ip_graph):
    vectors, queries = data
    index = HNSWIndex(metric, ip_graph=ip_graph, ef=200 if ip_graph == "augment" else 100, random_state=1).build(vectors)
    assert recall_vs_exact(index, queries, 10) >= 0.95
    exclude = [np.arange(i, i + 200) for i in range(len(queries))]
    assert recall_vs_exact(index, queries, 10, exclude=exclude) >= 0.95
    labels, scores = index.query(queries, 10, exclude=exclude)
    for i, ex in enumerate(exclude):
        assert not set(labels[i]) & set(ex.tolist()) and len(set(labels[i])) == 10
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_exclusion_never_loses_results():
    rng = np.random.default_rng(3)
    vectors = clustered(rng, 500, 8)
    index = HNSWIndex("ip", ef=10).build(vectors)
    # exclude almost everything: the over-fetch cannot cover it, so exact search answers
    keep = np.array([7, 99, 123, 400, 401])
    exclude = [np.setdiff1d(np.arange(500), keep)]
    labels, scores = index.query(vectors[:1], 5, exclude=exclude)
    assert set(labels[0]) == set(keep.tolist())
    assert np.isfinite(scores).all()


def test_candidates_deletion_add_and_labels():
    rng = np.random.default_rng(4)
    vectors = clustered(rng, 800, 8)
    labels = np.arange(1000, 1800)
    for cls in (ExactIndex, HNSWIndex, lambda m: HNSWIndex(m, ip_graph="augment")):
        index = cls("ip").build(vectors, labels)
        allowed = labels[::7]
        got, _ = index.query(vectors[:3], 5, candidates=allowed)
        assert set(got.ravel()) <= set(allowed.tolist())
        top, _ = index.query(vectors[:1], 1)
        index.mark_deleted(top[0])
        again, _ = index.query(vectors[:1], 3)
        assert top[0, 0] not in again[0]
        with pytest.raises(ValueError, match="already deleted"):
            index.mark_deleted(top[0])
        with pytest.raises(ValueError, match="deleted"):
            index.get_vectors(top[0])
        with pytest.raises(IndexError, match="unknown"):
            index.mark_deleted([5])
        new = (vectors[:1] * 10).astype(np.float32)  # longer than every stored vector
        index.add_items(new, [5000])
        best, _ = index.query(vectors[:1], 1)
        assert best[0, 0] == 5000
        assert len(index) == 800


def test_persistence_round_trip(tmp_path, data):
    vectors, queries = data
    for cls in (ExactIndex, HNSWIndex):
        index = cls("ip").build(vectors)
        index.mark_deleted([3, 4])
        path = index.save(tmp_path / f"{cls.__name__}.npz")
        loaded = cls.load(path)
        a, b = index.query(queries, 10), loaded.query(queries, 10)
        np.testing.assert_array_equal(a[0], b[0])
        clone = pickle.loads(pickle.dumps(index))
        np.testing.assert_array_equal(a[0], clone.query(queries, 10)[0])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable recforge index"):
        HNSWIndex.load(bad)


def test_bad_input(data):
    vectors, queries = data
    index = HNSWIndex("ip")
    with pytest.raises(ValueError, match="empty: call build"):
        index.query(queries, 5)
    index.build(vectors)
    with pytest.raises(ValueError, match="dimensions"):
        index.query(queries[:, :5], 5)
    with pytest.raises(ValueError, match="larger than"):
        index.query(queries, len(vectors) + 1)
    with pytest.raises(ValueError, match="positive integer"):
        index.query(queries, 0)
    with pytest.raises(ValueError, match="ef must be"):
        HNSWIndex("ip", ef=0)
    with pytest.raises(ValueError, match="metric"):
        ExactIndex("dot")
    with pytest.raises(ValueError, match="NaN"):
        ExactIndex().build(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="unique"):
        ExactIndex().build(vectors[:2], [1, 1])


def test_models_recommend_through_indexes(small_interactions):
    model = FixedFactors(factors=8).fit(small_interactions)
    users = np.arange(small_interactions.n_users)
    exact_items, exact_scores = model.recommend(users, n=5, ids="index")
    for kind in ("exact", "hnsw"):
        model.build_index(kind, similar_items=True)
        items, scores = model.recommend(users, n=5, ids="index")
        assert (items == exact_items).mean() > 0.95
        seen = small_interactions.matrix.tocsr()
        for u in users:
            assert not set(items[u]) & set(seen[u].indices)
        sim, _ = model.similar_items([0, 1], n=3, ids="index")
        assert 0 not in sim[0] and 1 not in sim[1]
    model.drop_index()
    np.testing.assert_array_equal(model.recommend(users, n=5, ids="index")[0], exact_items)
    model.build_index("hnsw")
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.recommend(users, n=5, ids="index")[0], model.recommend(users, n=5, ids="index")[0])
    model.fit(small_interactions)
    assert model.index_ is None
    with pytest.raises(ValueError, match="kind"):
        model.build_index("annoy")


def test_insertion_order_of_inner_product_graphs(tmp_path):
    rng = np.random.default_rng(8)
    vectors, queries = clustered(rng, 3000, 16, scale=lambda r, n: 0.5 + r.random((n, 1))), clustered(rng, 100, 16)
    for order in ("given", "norm"):
        index = HNSWIndex("ip", insert_order=order, ef=200).build(vectors)
        assert index.insert_order_ == order
        assert recall_vs_exact(index, queries, 10) >= 0.9
    auto = HNSWIndex("ip").build(vectors)
    assert auto.insert_order_ in ("given", "norm")
    assert recall_vs_exact(auto, queries, 10) >= 0.95
    loaded = HNSWIndex.load(auto.save(tmp_path / "auto.npz"))
    assert loaded.insert_order_ == auto.insert_order_
    # other graphs keep the given order
    assert HNSWIndex("cosine", insert_order="norm").build(vectors).insert_order_ == "given"
    assert HNSWIndex("ip", ip_graph="augment", insert_order="norm").build(vectors).insert_order_ == "given"
    with pytest.raises(ValueError, match="insert_order"):
        HNSWIndex("ip", insert_order="random")


def test_hnsw_recall_on_gowalla_als_factors_with_default_parameters():
    from .conftest import shared_data

    folder = shared_data("gowalla-lightgcn")
    train = rf.datasets.read_implicit_lists(folder / "train.txt")
    model = rf.ALS(factors=64, iterations=15, random_state=0).fit(train, show_progress=False)
    users = np.random.default_rng(0).choice(train.n_users, size=500, replace=False)
    queries = model.user_factors_[users]
    index = HNSWIndex("ip").build(model.item_factors_)
    # norms spanning orders of magnitude: the probe must pick the insertion by norm
    assert index.insert_order_ == "norm"
    assert recall_vs_exact(index, queries, 10) >= 0.95
    assert recall_vs_exact(index, queries, 10, exclude=train.matrix.tocsr()[users]) >= 0.95


# -- per-row exclusion lists ------------------------------------------------------------------
def test_rowlists_rows_of_matches_scipy_row_selection():
    from recforge._validation import RowLists

    rng = np.random.default_rng(3)
    m = sp.random(40, 25, density=0.2, format="csr", random_state=4, dtype=np.float32)
    m.data[:] = 1.0
    for rows in ([7], [0, 39, 5, 5], list(range(40)), [], [12, 3]):
        rows = np.asarray(rows, dtype=np.int64)
        got = RowLists.rows_of(m, rows)
        want = m[rows]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.toarray(), want.toarray())
    lists = RowLists.rows_of(m, np.arange(40))
    for key in (slice(3, 17), slice(None, None, 3), slice(30, 10), np.array([4, -1, 4])):
        np.testing.assert_array_equal(lists[key].toarray(), m[key].toarray())
    with pytest.raises(IndexError):
        lists[np.array([0.5])]


def test_model_recommend_excludes_seen_through_the_index_and_brute_force():
    """The seen items of single users and batches never come back, with or without an index."""
    rng = np.random.default_rng(5)
    n_users, n_items = 30, 400
    seen = sp.random(n_users, n_items, density=0.1, format="csr", random_state=6, dtype=np.float32)
    seen.data[:] = 1.0
    users_f = rng.standard_normal((n_users, 8)).astype(np.float32)
    items_f = rng.standard_normal((n_items, 8)).astype(np.float32)

    class Fixed(FactorRecommender):
        def __init__(self, n_threads: int = 1) -> None:
            self.n_threads = n_threads

        def _fit(self, data, **kw):
            self.user_factors_, self.item_factors_ = users_f, items_f

    model = Fixed().fit(seen)
    dense = users_f @ items_f.T
    dense[seen.toarray() > 0] = -np.inf
    want = np.argsort(-dense, axis=1, kind="stable")[:, :10]
    for kind in (None, "exact", "hnsw"):
        if kind is not None:
            model.build_index(kind, **({"ef": 400} if kind == "hnsw" else {}))
        batch, _ = model.recommend(np.arange(n_users), n=10, ids="index")
        singles = np.stack([model.recommend(u, n=10, ids="index")[0] for u in range(n_users)])
        np.testing.assert_array_equal(batch, want)
        np.testing.assert_array_equal(singles, want)
