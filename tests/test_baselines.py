from __future__ import annotations

import numpy as np
import pytest

import recforge as rf
from recforge.data import Interactions

from .recommender_contract import RecommenderContract


class TestPopularityContract(RecommenderContract):
    def make_model(self):
        return rf.Popularity()


class TestWeightedPopularityContract(RecommenderContract):
    def make_model(self):
        return rf.Popularity(weighting="weight")


class TestRandomContract(RecommenderContract):
    def make_model(self):
        return rf.Random(random_state=3)


def test_popularity_counts_and_ranks_like_an_oracle(small_interactions):
    model = rf.Popularity().fit(small_interactions)
    counts = np.bincount(small_interactions.matrix.indices, minlength=small_interactions.n_items)
    np.testing.assert_array_equal(model.item_scores_, counts)
    items, _ = model.recommend(np.arange(small_interactions.n_users), n=5, ids="index", exclude_seen=False)
    expected = np.argsort(-counts, kind="stable")[:5]
    assert (items == expected).all()


def test_popularity_weighting_and_time_decay():
    data = Interactions.from_arrays(
        ["a", "a", "b", "c"], ["x", "y", "y", "x"], [5.0, 1.0, 1.0, 1.0], timestamps=[0, 10, 10, 10]
    )
    assert list(rf.Popularity(weighting="weight").fit(data).item_scores_) == [6.0, 2.0]
    decayed = rf.Popularity(weighting="count", half_life=10.0).fit(data).item_scores_
    np.testing.assert_allclose(decayed, [0.5 + 1.0, 2.0])
    with pytest.raises(ValueError, match="timestamps"):
        rf.Popularity(half_life=1.0).fit(Interactions.from_arrays(["a"], ["x"]))
    with pytest.raises(ValueError, match="weighting"):
        rf.Popularity(weighting="likes").fit(data)
    with pytest.raises(ValueError, match="half_life"):
        rf.Popularity(half_life=-1.0).fit(data)


def test_random_is_seeded_and_roughly_uniform(small_interactions):
    a = rf.Random(random_state=1).fit(small_interactions)
    b = rf.Random(random_state=1).fit(small_interactions)
    c = rf.Random(random_state=2).fit(small_interactions)
    users = small_interactions.user_ids
    np.testing.assert_array_equal(a.recommend(users, n=5)[0], b.recommend(users, n=5)[0])
    assert not np.array_equal(a.recommend(users, n=5)[0], c.recommend(users, n=5)[0])
    # every item is first for some user about equally often (chi-square-ish sanity bound)
    big = rf.Random(random_state=0).fit(small_interactions)
    firsts = big.recommend(np.repeat(np.arange(small_interactions.n_users), 1), n=1,
                           ids="index", exclude_seen=False)[0].ravel()
    scores = big._dense_scores(np.arange(2000))
    assert 0.45 < scores.mean() < 0.55 and scores.min() >= 0 and scores.max() < 1
    assert len(set(firsts)) > 20


def test_popularity_beats_random_on_synthetic_data():
    data = rf.datasets.make_synthetic(n_users=800, n_items=400, random_state=0)
    train, test = rf.split.random_holdout(data, test_fraction=0.2, random_state=0)
    pop = rf.evaluate(rf.Popularity(), train, test, k=10).set_index("metric")["value"]
    rnd = rf.evaluate(rf.Random(random_state=0), train, test, k=10).set_index("metric")["value"]
    assert pop["ndcg"] > 2 * rnd["ndcg"]
    assert pop["recall"] > 2 * rnd["recall"]
