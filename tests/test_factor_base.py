"""FactorRecommender on fixed factors: exact scores, top-k, similar items and the contract."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.data import Interactions
from recforge.factorization import FactorRecommender

from .recommender_contract import RecommenderContract


class FixedFactors(FactorRecommender):
    """Factors from a seeded RNG: enough to exercise everything the base class does."""

    def __init__(self, factors: int = 4, random_state: int = 0, n_threads: int = 0) -> None:
        self.factors = factors
        self.random_state = random_state
        self.n_threads = n_threads

    def _fit(self, data: Interactions) -> None:
        rng = np.random.default_rng(self.random_state)
        self.user_factors_ = rng.standard_normal((data.n_users, self.factors)).astype(np.float32)
        self.item_factors_ = rng.standard_normal((data.n_items, self.factors)).astype(np.float32)


class TestFactorContract(RecommenderContract):
    def make_model(self):
        return FixedFactors()


def test_scores_and_similar_items_match_numpy(small_interactions):
    model = FixedFactors(factors=6).fit(small_interactions)
    U, V = model.user_factors_, model.item_factors_
    items, scores = model.recommend(np.arange(5), n=7, ids="index", exclude_seen=False)
    full = U[:5] @ V.T
    np.testing.assert_allclose(scores, np.take_along_axis(full, items, 1), rtol=1e-5)
    np.testing.assert_array_equal(items, np.argsort(-full, axis=1, kind="stable")[:, :7])
    sim, sim_scores = model.similar_items([0, 3], n=4, ids="index")
    unit = V / np.linalg.norm(V, axis=1, keepdims=True)
    cos = unit[[0, 3]] @ unit.T
    cos[0, 0] = cos[1, 3] = -np.inf
    np.testing.assert_array_equal(sim, np.argsort(-cos, axis=1, kind="stable")[:, :4])
    assert 0 not in sim[0] and 3 not in sim[1]
    raw, _ = model.similar_items("i0", n=3)
    assert set(raw) <= set(small_interactions.item_ids)
    with pytest.raises(ValueError, match="other items"):
        model.similar_items(0, n=small_interactions.n_items, ids="index")
