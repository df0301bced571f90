"""Candidates from recommenders, their features and labels, and the two-stage Reranker."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from recforge import ItemKNN, Popularity, evaluate
from recforge.data import Interactions
from recforge.ranking import LambdaMART, LinearRanker, Reranker, candidates
from recforge.split import temporal_split
from tests.recommender_contract import RecommenderContract


def small_ranker():
    return LambdaMART(n_estimators=15, num_leaves=4, min_data_in_leaf=5, show_progress=False, n_threads=1)


class TestRerankerContract(RecommenderContract):
    def make_model(self):
        return Reranker(generators=[Popularity(), ItemKNN(k=10)], ranker=small_ranker(), n_candidates=15)

    def test_save_load_gives_identical_recommendations(self, fitted, tmp_path):
        model, _ = fitted
        with pytest.raises(ValueError, match="pickle"):
            model.save(tmp_path / "model.npz")


def test_candidates_union_ranks_scores_and_labels(small_interactions):
    train, held = temporal_split(small_interactions, test_fraction=0.25)
    pop, knn = Popularity().fit(train), ItemKNN(k=10).fit(train)
    users = np.arange(10)
    cs = candidates([pop, knn], train, users, n=5, labels=held)
    assert cs.group.sum() == len(cs) == len(cs.y) == cs.X.shape[0]
    assert cs.users.tolist() == users.tolist()
    starts = np.r_[0, np.cumsum(cs.group)]
    lists = [m.recommend(users, n=5, ids="index")[0] for m in (pop, knn)]
    col = {name: j for j, name in enumerate(cs.feature_names)}
    held_m = held.matrix.tocsr()
    for row, u in enumerate(users):
        a, b = starts[row], starts[row + 1]
        assert np.all(cs.user_idx[a:b] == u)
        want = set(lists[0][row][lists[0][row] >= 0]) | set(lists[1][row][lists[1][row] >= 0])
        assert set(cs.item_idx[a:b].tolist()) == want
        for j, name in enumerate(("popularity0", "itemknn1")):
            for item, rank in zip(cs.item_idx[a:b], cs.X[a:b, col[f"{name}_rank"]]):
                where = np.flatnonzero(lists[j][row] == item)
                if where.size:
                    assert rank == where[0] + 1
                else:
                    assert np.isnan(rank)
        np.testing.assert_allclose(
            cs.X[a:b, col["itemknn1_score"]], knn.score(np.full(b - a, u), cs.item_idx[a:b], ids="index"), rtol=1e-6
        )
        np.testing.assert_array_equal(cs.y[a:b], held_m[u, cs.item_idx[a:b]].toarray().ravel() > 0)
    counts = train.item_counts()
    np.testing.assert_allclose(cs.X[:, col["item_log_popularity"]], np.log1p(counts[cs.item_idx]), rtol=1e-6)
    assert "item_days_since_last" in col and "user_days_since_last" in col


def test_content_similarity_and_item_features():
    rows = [("a", "x", 1), ("a", "y", 2), ("b", "z", 3), ("b", "w", 4), ("c", "x", 5)]
    df = pd.DataFrame(rows, columns=["user", "item", "ts"])
    feats = pd.DataFrame({"genre_1": [1, 1, 0, 0], "genre_2": [0, 0, 1, 1]}, index=["w", "x", "y", "z"])
    data = Interactions.from_pandas(df, timestamp_col="ts", item_features=feats)
    pop = Popularity().fit(data)
    cs = candidates(pop, data, n=4, exclude_seen=False)
    col = {name: j for j, name in enumerate(cs.feature_names)}
    # user c's history is item x (genre 1): cosine 1 with w and x, 0 with y and z
    c = data.user_index("c")
    rows_c = cs.user_idx == c
    item_ids = data.item_ids[cs.item_idx[rows_c]]
    cos = dict(zip(item_ids, cs.X[rows_c, col["user_item_content_cosine"]]))
    assert cos["w"] == pytest.approx(1.0) and cos["x"] == pytest.approx(1.0)
    assert cos["y"] == pytest.approx(0.0) and cos["z"] == pytest.approx(0.0)
    assert "item_genre_1" in col


def test_candidates_bad_input(small_interactions):
    pop = Popularity().fit(small_interactions)
    with pytest.raises(ValueError, match="empty"):
        candidates([], small_interactions)
    import scipy.sparse as sp

    other = Popularity().fit(sp.random(5, 7, density=0.5, format="csr", random_state=0))
    with pytest.raises(ValueError, match="fit the models on the history"):
        candidates(other, small_interactions)
    train, _ = temporal_split(small_interactions, test_fraction=0.2)
    with pytest.raises(ValueError, match="positive integer"):
        candidates(pop, train, n=0)
    with pytest.raises(IndexError):
        candidates(pop, train, users=[10_000])


def test_reranker_learns_a_planted_preference():
    """Users like the item right after their last one: the generators' popularity lists hold
    it, the ranker has to learn which candidate it is from the content cosine."""
    rng = np.random.default_rng(0)
    n_items, rows = 60, []
    feats = np.zeros((n_items, n_items // 3), dtype=np.int8)
    feats[np.arange(n_items), np.arange(n_items) // 3] = 1
    for u in range(150):
        start = int(rng.integers(0, n_items // 3)) * 3
        for t, i in enumerate([start, start + 1]):
            rows.append((u, i, t))
        rows.append((u, start + 2, 10))
    df = pd.DataFrame(rows, columns=["user", "item", "ts"])
    data = Interactions.from_pandas(df, timestamp_col="ts",
                                    item_features=pd.DataFrame(feats, columns=[f"g{j}" for j in range(feats.shape[1])]))
    train, test = temporal_split(data, test_fraction=0.3)
    pop = Popularity().fit(train)
    base = float(evaluate(pop, train, test, k=5, metrics=["ndcg"])["value"].iloc[0])
    rr = Reranker(generators=[Popularity()], ranker=small_ranker(), n_candidates=n_items, label_fraction=0.5).fit(train)
    # labels in the last half of train are the users' second items: also in the same genre
    two = float(evaluate(rr, train, test, k=5, metrics=["ndcg"])["value"].iloc[0])
    assert two > base + 0.3, (base, two)
    lin = Reranker(generators=[Popularity()], ranker=LinearRanker(loss="ranknet", show_progress=False),
                   n_candidates=n_items, label_fraction=0.5).fit(train)
    assert float(evaluate(lin, train, test, k=5, metrics=["ndcg"])["value"].iloc[0]) > base + 0.3
    clone = pickle.loads(pickle.dumps(rr))
    np.testing.assert_array_equal(rr.recommend([0, 1], n=5)[0], clone.recommend([0, 1], n=5)[0])
