from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import recforge as rf
import scipy.sparse as sp
from recforge.data import Interactions
from recforge.neighbors import SIMILARITIES, similarity_matrix

from .conftest import shared_data
from .recommender_contract import RecommenderContract


# ----------------------------------------------------------------------------------------
# a slow, obvious oracle of every similarity
# ----------------------------------------------------------------------------------------
def oracle_weights(
    x: np.ndarray, mask: np.ndarray, name: str, co_rated: bool, k1=1.2, b=0.75, baselines=None
) -> np.ndarray:
    n, d = x.shape
    t = np.where(mask, x, 0.0).astype(np.float64)
    if name == "pearson" and not co_rated:
        for r in range(n):
            if mask[r].any():
                t[r, mask[r]] -= x[r, mask[r]].mean()
    elif name == "adjusted_cosine":
        for c in range(d):
            if mask[:, c].any():
                t[mask[:, c], c] -= x[mask[:, c], c].mean()
    elif name == "pearson_baseline":
        mu, rb, cb = baselines
        for r in range(n):
            for c in range(d):
                if mask[r, c]:
                    t[r, c] = x[r, c] - (mu + rb[r] + cb[c])
    elif name in ("bm25", "tfidf"):
        df = mask.sum(axis=0)
        idf = np.log(n) - np.log1p(df)
        if name == "tfidf":
            t = np.where(mask, np.sqrt(np.where(mask, x, 0.0)) * idf[None, :], 0.0)
        else:
            length = np.where(mask, x, 0.0).sum(axis=1)
            norm = (1 - b) + b * length / length.mean()
            for r in range(n):
                for c in range(d):
                    if mask[r, c]:
                        v = x[r, c]
                        t[r, c] = v * (k1 + 1) / (k1 * norm[r] + v) * idf[c]
    return t


def oracle_similarity(
    x,
    mask,
    name,
    *,
    co_rated=False,
    shrink=0.0,
    min_support=1,
    alpha=0.5,
    baselines=None,
    include_self=False,
    k=None,
    positive_only=False,
):
    n = x.shape[0]
    t = oracle_weights(x, mask, name, co_rated, baselines=baselines)
    full = np.zeros((n, n))
    cor = co_rated or name in ("msd", "pearson_baseline")
    if name not in ("cosine", "pearson", "adjusted_cosine"):
        cor = name in ("msd", "pearson_baseline")
    for i in range(n):
        for j in range(n):
            if i == j and not include_self:
                continue
            common = mask[i] & mask[j]
            m = int(common.sum())
            if m == 0 or m < (max(2, min_support) if name == "pearson_baseline" else min_support):
                continue
            a, c = t[i, common], t[j, common]
            if name in ("dot", "bm25"):
                s = float(t[i] @ t[j])
            elif name == "jaccard":
                s = m / (mask[i].sum() + mask[j].sum() - m)
            elif name == "asymmetric_cosine":
                den = (t[i] @ t[i]) ** alpha * (t[j] @ t[j]) ** (1 - alpha)
                s = float(t[i] @ t[j]) / den if den > 0 else 0.0
            elif name == "msd":
                s = 1.0 / (np.mean((a - c) ** 2) + 1.0)
            elif name == "pearson" and cor:
                a, c = x[i, common] - x[i, common].mean(), x[j, common] - x[j, common].mean()
                den = np.sqrt((a @ a) * (c @ c))
                s = float(a @ c) / den if den > 0 else 0.0
            elif cor:
                den = np.sqrt((a @ a) * (c @ c))
                s = float(a @ c) / den if den > 0 else 0.0
            else:
                den = np.sqrt((t[i] @ t[i]) * (t[j] @ t[j]))
                s = float(t[i] @ t[j]) / den if den > 0 else 0.0
            if name == "pearson_baseline":
                s *= (m - 1) / (m - 1 + shrink)
            elif shrink > 0:
                s *= m / (m + shrink)
            full[i, j] = s
    if positive_only:
        full[full < 0] = 0.0
    if k is not None:
        for i in range(n):
            row = full[i]
            order = np.lexsort((np.arange(n), -row))
            nz = [j for j in order if row[j] != 0][:k]
            keep = np.zeros(n, dtype=bool)
            keep[nz] = True
            full[i, ~keep] = 0.0
    return full


def random_matrix(seed, n=25, d=30, density=0.3, ratings=True):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, d)) < density
    mask[3] = False  # a row with no entries
    mask[:, 5] = False  # a column with no entries
    values = (
        rng.integers(1, 6, size=(n, d)).astype(np.float64)
        if ratings
        else rng.random((n, d)) * 3 + 0.1
    )
    x = np.where(mask, values, 0.0)
    return sp.csr_matrix(x.astype(np.float32)), x, mask


@pytest.mark.parametrize("name", SIMILARITIES)
@pytest.mark.parametrize("co_rated", [False, True])
def test_every_similarity_matches_the_oracle(name, co_rated):
    m, x, mask = random_matrix(1)
    baselines = None
    if name == "pearson_baseline":
        rng = np.random.default_rng(2)
        baselines = (3.0, rng.normal(size=x.shape[0]) * 0.3, rng.normal(size=x.shape[1]) * 0.3)
    for kwargs in ({}, {"shrink": 5.0, "min_support": 2}, {"alpha": 0.3}):
        if "alpha" in kwargs and name != "asymmetric_cosine":
            continue
        got = similarity_matrix(m, name, co_rated=co_rated, baselines=baselines, **kwargs).toarray()
        want = oracle_similarity(x, mask, name, co_rated=co_rated, baselines=baselines, **kwargs)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{name} {kwargs}")


@pytest.mark.parametrize("name", ["cosine", "bm25", "jaccard", "pearson"])
def test_top_k_selection_self_and_sign_filters(name):
    m, x, mask = random_matrix(3, ratings=False)
    for k in (1, 4, 100):
        for include_self in (False, True):
            got = similarity_matrix(m, name, k=k, include_self=include_self).toarray()
            want = oracle_similarity(x, mask, name, k=k, include_self=include_self)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    got = similarity_matrix(m, name, positive_only=True).toarray()
    assert (got >= 0).all()
    # a subset of rows equals those rows of the full result
    rows = np.array([7, 0, 3, 7])
    part = similarity_matrix(m, name, k=4, rows=rows).toarray()
    np.testing.assert_allclose(part, similarity_matrix(m, name, k=4).toarray()[rows], rtol=1e-6)


@pytest.mark.parametrize("name", ["dot", "cosine", "jaccard", "asymmetric_cosine", "bm25"])
@pytest.mark.parametrize("value", [1.0, 2.5])
def test_binary_matrices_take_the_counting_path_and_match_the_oracle(name, value):
    _, x, mask = random_matrix(6, n=40, d=30, density=0.25)
    x = np.where(mask, value, 0.0)
    m = sp.csr_matrix(x.astype(np.float32))
    for kwargs in ({}, {"shrink": 3.0, "min_support": 2}, {"k": 3}, {"k": 3, "include_self": True}):
        got = similarity_matrix(m, name, alpha=0.3, **kwargs).toarray()
        want = oracle_similarity(x, mask, name, alpha=0.3, **kwargs)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{name} {kwargs}")
        rows = np.arange(m.shape[0])[::-1]
        part = similarity_matrix(m, name, alpha=0.3, rows=rows, **kwargs).toarray()
        np.testing.assert_array_equal(part, got[rows])


def test_similarity_is_the_same_for_any_thread_count_and_sorted():
    m, _, _ = random_matrix(4, n=300, d=200, density=0.05, ratings=False)
    one = similarity_matrix(m, "cosine", k=7, n_threads=1)
    two = similarity_matrix(m, "cosine", k=7, n_threads=2)
    assert one.has_sorted_indices and (one != two).nnz == 0
    assert np.diff(one.indptr).max() <= 7


def test_ties_are_broken_by_the_smaller_index():
    # items 1..4 have identical columns: every one is equally similar to item 0
    x = np.zeros((5, 3), dtype=np.float32)
    x[:, 0] = 1.0
    s = similarity_matrix(sp.csr_matrix(x), "cosine", k=2)
    assert list(s[0].indices) == [1, 2]
    assert list(s[4].indices) == [0, 1]


def test_similarity_bad_input():
    m, _, _ = random_matrix(5)
    with pytest.raises(ValueError, match="unknown similarity"):
        similarity_matrix(m, "euclid")
    with pytest.raises(ValueError, match="shrink"):
        similarity_matrix(m, "cosine", shrink=-1.0)
    with pytest.raises(ValueError, match="min_support"):
        similarity_matrix(m, "cosine", min_support=0)
    with pytest.raises(ValueError, match="alpha"):
        similarity_matrix(m, "asymmetric_cosine", alpha=1.5)
    with pytest.raises(ValueError, match="positive integer"):
        similarity_matrix(m, "cosine", k=0)
    with pytest.raises(ValueError, match="baselines"):
        similarity_matrix(m, "pearson_baseline")
    with pytest.raises(ValueError, match="row biases"):
        similarity_matrix(m, "pearson_baseline", baselines=(0.0, np.zeros(2), np.zeros(3)))
    bad = m.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        similarity_matrix(bad, "cosine")
    neg = m.copy()
    neg.data[0] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        similarity_matrix(neg, "bm25")
    with pytest.raises(IndexError, match="outside"):
        similarity_matrix(m, "cosine", rows=[m.shape[0]])
    with pytest.raises(ValueError, match="scipy.sparse"):
        similarity_matrix(m.toarray(), "cosine")


# ----------------------------------------------------------------------------------------
# the shared contract
# ----------------------------------------------------------------------------------------
class TestItemKNNContract(RecommenderContract):
    def make_model(self):
        return rf.ItemKNN(k=10)


class TestItemKNNBM25Contract(RecommenderContract):
    def make_model(self):
        return rf.ItemKNN(k=10, similarity="bm25", normalize=True)


class TestUserKNNContract(RecommenderContract):
    def make_model(self):
        return rf.UserKNN(k=10, similarity="jaccard")


class TestItemKNNThroughIndexContract(RecommenderContract):
    """Served through an exact index of a full-rank factorisation: the same answers as exact."""

    def make_model(self):
        return rf.ItemKNN(k=10, similarity="bm25", normalize=True)

    def prepare(self, model):
        return model.build_index("exact", n_components=model.n_items_, n_candidates=model.n_items_)


class TestUserKNNThroughIndexContract(RecommenderContract):
    def make_model(self):
        return rf.UserKNN(k=10)

    def prepare(self, model):
        return model.build_index("hnsw", n_components=model.n_items_, n_candidates=model.n_items_, ef=200)


class TestBaselineOnlyContract(RecommenderContract):
    def make_model(self):
        return rf.BaselineOnly()


class TestKNNBasicContract(RecommenderContract):
    def make_model(self):
        return rf.KNNBasic(k=5, similarity="cosine")


class TestKNNWithMeansContract(RecommenderContract):
    def make_model(self):
        return rf.KNNWithMeans(k=5, similarity="pearson", user_based=False)


class TestKNNWithZScoreContract(RecommenderContract):
    def make_model(self):
        return rf.KNNWithZScore(k=5)


class TestKNNBaselineContract(RecommenderContract):
    def make_model(self):
        return rf.KNNBaseline(k=5, similarity="pearson_baseline", baseline="sgd")


# ----------------------------------------------------------------------------------------
# top-N models against an obvious dense computation
# ----------------------------------------------------------------------------------------
def dense_topn(scores: np.ndarray, seen: sp.csr_matrix, n: int) -> np.ndarray:
    scores = scores.astype(np.float64).copy()
    scores[seen.toarray() > 0] = -np.inf
    return np.stack([np.lexsort((np.arange(scores.shape[1]), -row))[:n] for row in scores])


@pytest.mark.parametrize("normalize", [False, True])
def test_item_knn_scores_are_history_times_similarity(small_interactions, normalize):
    model = rf.ItemKNN(k=8, similarity="cosine", normalize=normalize).fit(small_interactions)
    r = small_interactions.matrix.toarray().astype(np.float64)
    s = model.similarity_.toarray().astype(np.float64)
    num = r @ s
    if normalize:
        den = (r != 0) @ np.abs(s)
        num = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    users = np.arange(small_interactions.n_users)
    items, scores = model.recommend(users, n=7, ids="index")
    want = dense_topn(num, small_interactions.matrix, 7)
    got_scores = np.take_along_axis(num, items, axis=1)
    np.testing.assert_allclose(scores, got_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(num, want, axis=1), scores, rtol=1e-5, atol=1e-6)
    # at most k neighbours per item, the item itself excluded by default
    assert np.diff(model.similarity_.indptr).max() <= 8
    assert (model.similarity_.diagonal() == 0).all()


def test_user_knn_scores_are_neighbours_times_interactions(small_interactions):
    model = rf.UserKNN(k=5, similarity="cosine").fit(small_interactions)
    r = small_interactions.matrix.toarray().astype(np.float64)
    s = model.similarity_.toarray().astype(np.float64)
    want = s @ r
    items, scores = model.recommend(np.arange(small_interactions.n_users), n=6, ids="index")
    np.testing.assert_allclose(
        scores, np.take_along_axis(want, items, axis=1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.take_along_axis(want, dense_topn(want, small_interactions.matrix, 6), axis=1),
        scores,
        rtol=1e-5,
        atol=1e-6,
    )


def test_recommend_is_the_same_for_any_thread_count(small_interactions):
    model = rf.ItemKNN(k=6, similarity="bm25").fit(small_interactions)
    users = np.arange(small_interactions.n_users)
    a = model.recommend(users, n=10, ids="index", n_threads=1)
    b = model.recommend(users, n=10, ids="index", n_threads=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_similar_items_users_and_explain(small_interactions):
    model = rf.ItemKNN(k=4).fit(small_interactions)
    items, scores = model.similar_items("i0", n=3)
    row = model.similarity_[0].toarray().ravel()
    assert items[0] == small_interactions.item_ids[np.argmax(row)] and scores[0] == row.max()
    assert np.all(np.diff(scores) <= 0)
    # more than the stored neighbours: padded slots
    items, scores = model.similar_items(["i0", "i1"], n=10)
    assert items.shape == (2, 10) and np.isneginf(scores[:, 4:]).all()
    explanation = model.explain("u3", "i7")
    assert list(explanation.columns) == ["item", "weight", "similarity", "contribution"]
    assert np.isclose(
        explanation["contribution"].sum(), model.score("u3", "i7"), rtol=1e-5, atol=1e-6
    )
    assert set(explanation["item"]) <= set(small_interactions.item_ids)
    users_model = rf.UserKNN(k=4).fit(small_interactions)
    users, sims = users_model.similar_users("u3", n=2)
    assert len(users) == 2 and sims[0] >= sims[1]
    ex = users_model.explain("u3", "i7")
    assert np.isclose(ex["contribution"].sum(), users_model.score("u3", "i7"), rtol=1e-5, atol=1e-6)


def test_edge_cases_cold_user_unseen_item_large_k_and_ties():
    # item "z" is in the catalogue but nobody interacted with it; user "c" has no history
    data = Interactions.from_arrays(
        ["a", "a", "b", "b"],
        ["x", "y", "x", "y"],
        user_ids=["a", "b", "c"],
        item_ids=["x", "y", "z", "w"],
    )
    for model in (rf.ItemKNN(k=1000), rf.UserKNN(k=1000)):
        model.fit(data)
        items, scores = model.recommend("c", n=4, exclude_seen=False)
        # nothing to go on: every item scores 0 and ties are broken by index
        assert list(items) == ["x", "y", "z", "w"] and (scores == 0).all()
        items, scores = model.recommend("a", n=2)
        assert list(items) == ["z", "w"] and (scores == 0).all()
        assert model.similarity_.shape[0] == (4 if isinstance(model, rf.ItemKNN) else 3)
    sims = rf.ItemKNN(k=1000).fit(data).similar_items("z", n=2)
    assert list(sims[0]) == [None, None] and np.isneginf(sims[1]).all()


def test_recommend_for_history(small_interactions):
    model = rf.ItemKNN(k=10).fit(small_interactions)
    m = small_interactions.matrix.tocsr()
    hist = small_interactions.item_ids[m[7].indices]
    a = model.recommend_for_history(hist, weights=m[7].data, n=5)
    b = model.recommend("u7", n=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    # user-based: fitting without the user, then giving the history, equals the fitted user
    keep = np.ones(m.nnz, dtype=bool)
    keep[m.indptr[7] : m.indptr[8]] = False
    without = Interactions(
        sp.csr_matrix(
            (
                m.data[keep],
                m.indices[keep],
                np.concatenate([m.indptr[:8], m.indptr[8:] - (m.indptr[8] - m.indptr[7])]),
            ),
            shape=m.shape,
        ),
        small_interactions.user_ids,
        small_interactions.item_ids,
    )
    full = rf.UserKNN(k=6).fit(small_interactions)
    partial = rf.UserKNN(k=6).fit(without)
    a = partial.recommend_for_history(hist, weights=m[7].data, n=5)
    b = full.recommend("u7", n=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5)
    with pytest.raises(IndexError, match="unknown item"):
        model.recommend_for_history(["nope"])
    with pytest.raises(ValueError, match="one weight per item"):
        model.recommend_for_history(hist, weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        model.recommend_for_history(hist[:1], weights=[-1.0])


@pytest.mark.parametrize(
    "cls,similarity",
    [
        (rf.ItemKNN, "cosine"),
        (rf.ItemKNN, "adjusted_cosine"),
        (rf.ItemKNN, "bm25"),
        (rf.UserKNN, "jaccard"),
        (rf.UserKNN, "tfidf"),
    ],
)
def test_partial_fit_equals_a_full_fit(small_interactions, cls, similarity):
    df = small_interactions.to_pandas()
    late = (df["user"].isin(["u50", "u51", "u52"])) | (df["item"] == "i39")
    first, second = df[~late], df[late].copy()
    second.loc[second.index[:3], "user"] = "new-user"
    second.loc[second.index[3:5], "item"] = "new-item"
    whole = pd.concat([first, second])
    model = cls(k=6, similarity=similarity).fit(Interactions.from_pandas(first[["user", "item"]]))
    model.partial_fit(Interactions.from_pandas(second[["user", "item"]]))
    ref = cls(k=6, similarity=similarity).fit(Interactions.from_pandas(whole[["user", "item"]]))
    ids = model.item_ids_ if cls is rf.ItemKNN else model.user_ids_
    ref_ids = ref.item_ids_ if cls is rf.ItemKNN else ref.user_ids_
    order = pd.Index(ref_ids).get_indexer(ids)
    assert (order >= 0).all() and len(order) == len(ref_ids)
    got = model.similarity_.toarray()
    want = ref.similarity_.toarray()[np.ix_(order, order)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert model.last_update_["full"] == (similarity in ("bm25",) or (similarity == "tfidf"))
    users = ["u1", "new-user", "u51"]
    np.testing.assert_array_equal(model.recommend(users, n=5)[0], ref.recommend(users, n=5)[0])


def test_partial_fit_recomputes_only_the_touched_rows():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 300, 1500)
    items = rng.integers(0, 400, 1500)
    model = rf.ItemKNN(k=5).fit(Interactions.from_arrays(users, items))
    model.partial_fit(Interactions.from_arrays([0], [1]))
    assert model.last_update_["rows_recomputed"] < model.last_update_["rows_total"]
    with pytest.raises(ValueError, match="half_life"):
        rf.ItemKNN(half_life=5.0).fit(
            Interactions.from_arrays([0, 1], [0, 1], timestamps=[0, 1])
        ).partial_fit(Interactions.from_arrays([0], [1], timestamps=[2]))


def test_time_decay_of_the_history():
    data = Interactions.from_arrays(
        ["a", "a", "b", "b"], ["x", "y", "x", "y"], timestamps=[0, 10, 5, 5]
    )
    model = rf.ItemKNN(k=2, half_life=10.0).fit(data)
    np.testing.assert_allclose(model.history_weights_, [0.5, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="timestamps"):
        rf.ItemKNN(half_life=1.0).fit(Interactions.from_arrays(["a"], ["x"]))
    with pytest.raises(ValueError, match="half_life"):
        rf.ItemKNN(half_life=-1.0).fit(data)


def test_implicit_models_reject_bad_input(small_interactions):
    neg = small_interactions.matrix.copy()
    neg.data[0] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        rf.ItemKNN().fit(neg)
    with pytest.raises(ValueError, match="unknown similarity"):
        rf.ItemKNN(similarity="euclidean").fit(small_interactions)
    with pytest.raises(ValueError, match="shrink"):
        rf.UserKNN(shrink=-1.0).fit(small_interactions)
    with pytest.raises(ValueError, match="positive integer"):
        rf.ItemKNN(k=0).fit(small_interactions)
    with pytest.raises(ValueError, match="min_support"):
        rf.ItemKNN(min_support=0).fit(small_interactions)


def test_kernels_check_their_contract():
    from recforge import _core

    ptr = np.array([0, 1], dtype=np.int64)
    idx = np.array([0], dtype=np.int32)
    val = np.array([1.0], dtype=np.float32)
    with pytest.raises(ValueError, match="unknown similarity"):
        _core.neighbors.similarity_topk(ptr, idx, val, 1, 1, kind=42)
    _core.neighbors.sparse_topk_scores(ptr, idx, val, 1, 1, ptr, idx, val, 1, 0, 1)  # fine
    with pytest.raises(ValueError, match="B: indptr must have"):  # A has 2 columns, B 1 row
        _core.neighbors.sparse_topk_scores(ptr, idx, val, 1, 2, ptr, idx, val, 1, 0, 1)
    with pytest.raises(IndexError):
        _core.neighbors.similarity_topk(ptr, np.array([3], dtype=np.int32), val, 1, 1)
    with pytest.raises(ValueError, match="k must be positive"):
        _core.neighbors.knn_predict(
            ptr,
            idx,
            val,
            1,
            ptr,
            idx,
            val,
            1,
            np.zeros(0, np.int32),
            np.zeros(1, np.int64),
            np.zeros(0, np.int32),
            k=0,
        )


# ----------------------------------------------------------------------------------------
# rating prediction
# ----------------------------------------------------------------------------------------
def ratings_data(seed=0, n_users=40, n_items=30, n=400):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    return Interactions.from_arrays(
        pairs // n_items,
        pairs % n_items,
        rng.integers(1, 6, n).astype(float),
        ratings=rng.integers(1, 6, n).astype(float),
    )


def knn_oracle(model, data, u, i):
    """Surprise's formulas written out for one (user, item) pair."""
    r = sp.csr_matrix(
        (data.ratings, data.matrix.indices, data.matrix.indptr), shape=data.shape
    ).toarray()
    mask = data.matrix.toarray() != 0
    mask |= (
        sp.csr_matrix(
            (np.ones(data.nnz), data.matrix.indices, data.matrix.indptr), shape=data.shape
        ).toarray()
        > 0
    )
    s = model.similarity_.toarray()
    if model.user_based:
        x, y, rr, mm = u, i, r, mask
    else:
        x, y, rr, mm = i, u, r.T, mask.T
    raters = np.flatnonzero(mm[:, y])
    sims = np.array([1.0 if v == x else s[x, v] for v in raters])
    order = np.lexsort((raters, -sims))
    chosen = [j for j in order[: model.k] if sims[j] > 0]
    mu = float(model.global_mean_)
    sum_s = sum(sims[j] for j in chosen)
    kind = type(model).__name__
    bx, by = (
        (model.user_bias_, model.item_bias_)
        if model.user_based
        else (model.item_bias_, model.user_bias_)
    )
    if kind == "KNNBasic":
        return (
            mu
            if len(chosen) < max(model.min_k, 1)
            else sum(sims[j] * rr[raters[j], y] for j in chosen) / sum_s
        )
    if kind == "KNNWithMeans":
        base = model.x_mean_[x]
        dev = sum(sims[j] * (rr[raters[j], y] - model.x_mean_[raters[j]]) for j in chosen)
    elif kind == "KNNWithZScore":
        base = model.x_mean_[x]
        dev = model.x_sigma_[x] * sum(
            sims[j] * (rr[raters[j], y] - model.x_mean_[raters[j]]) / model.x_sigma_[raters[j]]
            for j in chosen
        )
    else:
        base = mu + bx[x] + by[y]
        dev = sum(sims[j] * (rr[raters[j], y] - (mu + bx[raters[j]] + by[y])) for j in chosen)
    return base + (dev / sum_s if chosen and len(chosen) >= model.min_k else 0.0)


@pytest.mark.parametrize("cls", [rf.KNNBasic, rf.KNNWithMeans, rf.KNNWithZScore, rf.KNNBaseline])
@pytest.mark.parametrize("user_based", [True, False])
def test_knn_predictions_follow_the_formulas(cls, user_based):
    data = ratings_data()
    model = cls(
        k=3,
        min_k=2,
        similarity="pearson_baseline" if cls is rf.KNNBaseline else "msd",
        user_based=user_based,
    ).fit(data)
    rng = np.random.default_rng(1)
    us, its = rng.integers(0, data.n_users, 60), rng.integers(0, data.n_items, 60)
    got = model.predict(us, its, ids="index", clip=False)
    want = [knn_oracle(model, data, u, i) for u, i in zip(us, its)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_predict_clips_broadcasts_and_handles_unknown_ids():
    data = ratings_data()
    model = rf.KNNBaseline(k=5, rating_scale=(2, 4)).fit(data)
    p = model.predict(data.user_ids[:3], data.item_ids[0])
    assert p.shape == (3,) and (p >= 2).all() and (p <= 4).all()
    assert model.predict(np.array([[0, 1]]), np.array([[2], [3]]).T, ids="index").shape == (1, 2)
    with pytest.raises(IndexError, match="unknown user"):
        model.predict([12345], [data.item_ids[0]])
    fallback = model.predict([12345], [data.item_ids[0]], unknown="default", clip=False)
    assert np.isclose(fallback[0], float(model.global_mean_) + model.item_bias_[0])
    with pytest.raises(ValueError, match="unknown must be"):
        model.predict([0], [0], unknown="zero")
    basic = rf.KNNBasic().fit(data)
    assert np.isclose(basic.predict([12345], [0], unknown="default")[0], float(basic.global_mean_))


def test_rating_models_reject_bad_input():
    data = ratings_data()
    with pytest.raises(ValueError, match="unknown similarity"):
        rf.KNNBasic(similarity="manhattan").fit(data)
    with pytest.raises(ValueError, match="shrink"):
        rf.KNNBaseline(similarity="pearson_baseline", shrink=-5).fit(data)
    with pytest.raises(ValueError, match="baseline method"):
        rf.KNNBaseline(baseline="newton").fit(data)
    with pytest.raises(ValueError, match="baseline method"):
        rf.BaselineOnly(method="newton").fit(data)
    with pytest.raises(ValueError, match="rating_scale"):
        rf.BaselineOnly(rating_scale=(5, 1)).fit(data)
    with pytest.raises(ValueError, match="min_k"):
        rf.KNNBasic(min_k=-1).fit(data)
    with pytest.raises(ValueError, match="learning_rate"):
        rf.BaselineOnly(method="sgd", learning_rate=0.0).fit(data)


def test_baseline_als_is_the_closed_form_alternation():
    data = ratings_data()
    model = rf.BaselineOnly(n_epochs=3).fit(data)
    r = sp.csr_matrix(
        (data.ratings, data.matrix.indices, data.matrix.indptr), shape=data.shape
    ).tocoo()
    mu = r.data.mean()
    bu, bi = np.zeros(data.n_users), np.zeros(data.n_items)
    for _ in range(3):
        bi = np.bincount(r.col, r.data - mu - bu[r.row], data.n_items) / (
            10 + np.bincount(r.col, minlength=data.n_items)
        )
        bu = np.bincount(r.row, r.data - mu - bi[r.col], data.n_users) / (
            15 + np.bincount(r.row, minlength=data.n_users)
        )
    np.testing.assert_allclose(model.user_bias_, bu, rtol=1e-10)
    np.testing.assert_allclose(model.item_bias_, bi, rtol=1e-10)


# ----------------------------------------------------------------------------------------
# peers (skipped when they are not installed; CI does not install them)
# ----------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_item_knn_matches_implicit_item_item_models():
    nn = pytest.importorskip("implicit.nearest_neighbours")
    rng = np.random.default_rng(3)
    m = sp.random(80, 50, density=0.15, random_state=4, format="csr", dtype=np.float32)
    m.data = np.ceil(m.data * 5).astype(np.float32)
    for peer, sim in (
        (nn.CosineRecommender(K=6, num_threads=1), "cosine"),
        (nn.BM25Recommender(K=6, num_threads=1), "bm25"),
        (nn.TFIDFRecommender(K=6, num_threads=1), "tfidf"),
    ):
        peer.fit(m, show_progress=False)
        ours = rf.ItemKNN(k=6, similarity=sim, include_self=True).fit(m)
        np.testing.assert_allclose(
            ours.similarity_.toarray(), peer.similarity.toarray(), rtol=1e-5, atol=1e-6
        )
        users = rng.choice(80, 10, replace=False)
        _, scores = peer.recommend(users, m[users], N=5)
        _, got_scores = ours.recommend(users, n=5, ids="index")
        np.testing.assert_allclose(got_scores, scores, rtol=1e-5, atol=1e-6)


def test_rating_knn_matches_surprise_on_movielens():
    surprise = pytest.importorskip("surprise")
    folder = shared_data("ml-100k")
    cols = ["user", "item", "rating", "ts"]
    base = pd.read_csv(folder / "u1.base", sep="\t", names=cols)
    test = pd.read_csv(folder / "u1.test", sep="\t", names=cols).iloc[:3000]
    trainset = surprise.Dataset.load_from_df(
        base[["user", "item", "rating"]], surprise.Reader(rating_scale=(1, 5))
    ).build_full_trainset()
    train = Interactions.from_pandas(base, rating_col="rating")
    peer = surprise.KNNBaseline(
        k=40, sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False
    ).fit(trainset)
    want = np.array([peer.predict(u, i).est for u, i in zip(test.user, test.item)])
    got = (
        rf.KNNBaseline(k=40, similarity="pearson_baseline", user_based=False)
        .fit(train)
        .predict(test.user.to_numpy(), test.item.to_numpy(), unknown="default")
    )
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_rating_models_give_a_user_without_ratings_the_global_mean():
    data = ratings_data()
    universe = np.append(data.user_ids, 999)
    d = Interactions.from_arrays(
        *[
            np.repeat(data.user_ids, np.diff(data.matrix.indptr)),
            data.item_ids[data.matrix.indices],
        ],
        ratings=data.ratings,
        user_ids=universe,
        item_ids=data.item_ids,
    )
    for cls in (rf.KNNWithMeans, rf.KNNWithZScore):
        model = cls(k=5).fit(d)
        p = model.predict([999] * 3, d.item_ids[:3], clip=False)
        np.testing.assert_allclose(p, float(model.global_mean_))


# ----------------------------------------------------------------------------------------
# serving through a vector index
# ----------------------------------------------------------------------------------------
def test_low_rank_factorisation_recovers_a_low_rank_matrix():
    from recforge.neighbors import _low_rank

    rng = np.random.default_rng(0)
    left = rng.random((80, 5)) * (rng.random((80, 1)) < 0.5)
    right = rng.random((5, 60)) * (rng.random((1, 60)) < 0.6)
    matrix = sp.csr_matrix(left @ right)
    p, v = _low_rank(matrix, 5, 2, np.random.default_rng(1))
    assert p.shape == (80, 5) and v.shape == (60, 5)
    np.testing.assert_allclose(p @ v.T, matrix.toarray(), atol=1e-4)
    # the right factor is orthonormal, so p holds the singular values
    np.testing.assert_allclose(v.T @ v, np.eye(5), atol=1e-5)
    sing = np.linalg.svd(matrix.toarray(), compute_uv=False)[:5]
    np.testing.assert_allclose(np.sort(np.linalg.norm(p, axis=0))[::-1], sing, rtol=1e-4)


@pytest.mark.parametrize("cls", [rf.ItemKNN, rf.UserKNN])
def test_index_candidates_are_rescored_exactly(small_interactions, cls):
    """Whatever the index proposes, the returned scores are the model's own scores."""
    model = cls(k=10).fit(small_interactions)
    users = np.arange(model.n_users_)
    model.build_index("hnsw", n_components=4, n_candidates=15)
    top, scores = model.recommend(users, n=5, ids="index")
    dense = model._dense_scores(users)
    for row in range(len(users)):
        np.testing.assert_allclose(scores[row], dense[row, top[row]], rtol=1e-5, atol=1e-6)
        seen = set(small_interactions.matrix[row].indices.tolist())
        assert not seen & set(top[row].tolist())
        assert len(set(top[row].tolist())) == 5
    # an index of the full-rank factorisation with every item as a candidate is exact search
    model.build_index("exact", n_components=model.n_items_, n_candidates=model.n_items_)
    got, got_scores = model.recommend(users, n=8, ids="index")
    model.drop_index()
    want, want_scores = model.recommend(users, n=8, ids="index")
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-6)
    from recforge.retrieval import index_recall

    model.build_index("exact", n_components=model.n_items_, n_candidates=model.n_items_)
    assert index_recall(model, small_interactions.user_ids, n=8) == 1.0
    model.build_index("exact", n_components=2, n_candidates=8)
    low = index_recall(model, small_interactions.user_ids, n=8)
    assert 0.0 < low < 1.0 and model.index_ is not None


def test_index_is_dropped_by_fit_and_checks_its_arguments(small_interactions):
    model = rf.ItemKNN(k=10).fit(small_interactions)
    with pytest.raises(ValueError, match="build_index"):
        model.index_queries(small_interactions.user_ids[:2])
    for bad in ({"kind": "annoy"}, {"n_components": 0}, {"n_candidates": 0}, {"n_iter": -1}):
        with pytest.raises(ValueError):
            model.build_index(**bad)
    model.build_index("exact", n_components=6)
    q = model.index_queries(small_interactions.user_ids[:3])
    assert q.shape == (3, 6) and q.dtype == np.float32
    from recforge.retrieval import recall_vs_exact

    assert recall_vs_exact(model.index_, q, 5) == 1.0
    model.fit(small_interactions)
    assert model.index_ is None
