from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

import recforge as rf
from recforge.pipeline import MMR, Blocklist, CategoryCap, FreshnessBoost, Pipeline
from recforge.serving import RecommendationCache, warm_up

from .recommender_contract import RecommenderContract
from .test_factor_base import FixedFactors


class Exploding(rf.Popularity):
    """A retriever that fails at recommendation time."""

    def _recommend_indices(self, *args, **kwargs):
        raise RuntimeError("retrieval backend unavailable")


class Slow(rf.Popularity):
    def _recommend_indices(self, *args, **kwargs):
        time.sleep(0.3)
        return super()._recommend_indices(*args, **kwargs)


class TestPipelineContract(RecommenderContract):
    def make_model(self):
        return Pipeline(
            [FixedFactors(factors=4), rf.Popularity()], ranker=FixedFactors(factors=3, random_state=1),
            n_candidates=15,
        )

    def test_save_load_gives_identical_recommendations(self, fitted, tmp_path):
        model, _ = fitted
        with pytest.raises(ValueError, match="pickle"):
            model.save(tmp_path / "p.npz")

    def test_params_round_trip(self):
        model = self.make_model()
        assert type(model)(**model.get_params()).get_params() == model.get_params()


def check_lists(items, seen, n):
    for u, row in enumerate(items):
        assert len(row) == n and len(set(row.tolist())) == n and (row >= 0).all()
        assert not set(row.tolist()) & set(seen[u].indices.tolist())


@pytest.mark.parametrize("broken", [Exploding(), Slow()])
def test_falls_back_to_popularity_when_retrieval_fails_or_overruns(small_interactions, broken):
    pipe = Pipeline(broken, budgets_ms={"retrieve": 100}).fit(small_interactions)
    users = np.arange(small_interactions.n_users)
    items, _ = pipe.recommend(users, n=8, ids="index")
    check_lists(items, small_interactions.matrix.tocsr(), 8)
    assert pipe.last_trace_["fallback"] is not None
    popular, _ = rf.Popularity().fit(small_interactions).recommend(users, n=8, ids="index")
    np.testing.assert_array_equal(items, popular)


def test_a_fast_stage_over_a_tiny_budget_still_falls_back(small_interactions):
    # the stage finishes in well under the interpreter's thread switch interval, often before
    # the waiting thread can notice its timeout: it is over budget all the same
    pipe = Pipeline(rf.ItemKNN(k=5), budgets_ms={"retrieve": 0.001}).fit(small_interactions)
    popular, _ = rf.Popularity().fit(small_interactions).recommend(np.arange(3), n=8, ids="index")
    for _ in range(30):
        items, _ = pipe.recommend(np.arange(3), n=8, ids="index")
        assert pipe.last_trace_["fallback"] is not None
        np.testing.assert_array_equal(items, popular)


def test_fills_short_candidate_lists_and_applies_rules(small_interactions):
    rng = np.random.default_rng(0)
    n_items = small_interactions.n_items
    categories = {f"i{i}": f"c{i % 3}" for i in range(n_items)}
    blocked = ["i0", "i1", "i2"]
    pipe = Pipeline(
        FixedFactors(factors=6), ranker=rf.Popularity(), n_candidates=5,
        rerankers=[Blocklist(blocked), CategoryCap(categories, max_per_category=1),
                   MMR(rng.standard_normal((n_items, 4)), lambda_=0.5),
                   FreshnessBoost(np.arange(n_items, dtype=float), half_life=5.0)],
    ).fit(small_interactions)
    users = np.arange(small_interactions.n_users)
    items, scores = pipe.recommend(users, n=10, ids="index")
    check_lists(items, small_interactions.matrix.tocsr(), 10)
    assert not set(items.ravel().tolist()) & {0, 1, 2}
    assert pipe.last_trace_["filled"] > 0  # 5 candidates capped to 3 categories cannot fill 10
    assert set(pipe.timings()) == {"retrieve", "rank", "rerank"}
    assert all(np.all(np.diff(r) <= 0) for r in scores)


def test_mmr_trades_relevance_for_diversity():
    class P:
        n_items_ = 4
        item_ids_ = np.arange(4)

    vectors = np.array([[1, 0], [1, 0.01], [0, 1], [0.99, 0.05]], dtype=np.float32)
    mmr = MMR(vectors, lambda_=1.0)
    mmr.bind(P())
    items, _ = mmr.rerank(0, np.arange(4), np.array([4, 3, 2, 1], dtype=np.float32), 3)
    assert items.tolist() == [0, 1, 2]
    mmr = MMR(vectors, lambda_=0.3)
    mmr.bind(P())
    items, _ = mmr.rerank(0, np.arange(4), np.array([4, 3, 2, 1], dtype=np.float32), 2)
    assert items.tolist() == [0, 2]


def test_pipeline_is_evaluated_like_a_model():
    data = rf.datasets.make_synthetic(n_users=300, n_items=150, random_state=2)
    train, test = rf.split.random_holdout(data, random_state=2)
    pipe = Pipeline([rf.Popularity(), rf.Random(random_state=0)], ranker=rf.Popularity(), n_candidates=50)
    table = rf.evaluate(pipe, train, test, k=10).set_index("metric")
    pop = rf.evaluate(rf.Popularity(), train, test, k=10).set_index("metric")
    assert table.loc["ndcg", "value"] == pytest.approx(pop.loc["ndcg", "value"], rel=0.02)
    clone = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(clone.recommend(train.user_ids[:5], n=5)[0], pipe.recommend(train.user_ids[:5], n=5)[0])


def test_cache_and_warm_up(small_interactions):
    model = rf.Popularity().fit(small_interactions)
    assert warm_up(model, n_queries=5) >= 0
    cache = RecommendationCache(model, maxsize=2)
    first, _ = cache.recommend("u1", n=5)
    again, _ = cache.recommend("u1", n=5)
    np.testing.assert_array_equal(first, again)
    assert cache.hits == 1 and cache.misses == 1
    cache.add_interactions("u1", first[:2])
    fresh, _ = cache.recommend("u1", n=5)
    assert not set(fresh.tolist()) & set(first[:2].tolist()) and len(fresh) == 5
    cache.recommend("u2", n=5)
    cache.recommend("u3", n=5)
    assert len(cache) == 2


def test_bad_configuration(small_interactions):
    with pytest.raises(ValueError, match="retrievers"):
        Pipeline([]).fit(small_interactions)
    with pytest.raises(ValueError, match="stages"):
        Pipeline(rf.Popularity(), budgets_ms={"ranking": 5}).fit(small_interactions)
    with pytest.raises(ValueError, match="lambda_"):
        MMR(np.zeros((2, 2)), lambda_=2)
    with pytest.raises(ValueError, match="one value per item"):
        Pipeline(rf.Popularity(), rerankers=[CategoryCap(["a"])]).fit(small_interactions)
    with pytest.raises(IndexError, match="unknown item"):
        Pipeline(rf.Popularity(), rerankers=[Blocklist(["nope"])]).fit(small_interactions)
