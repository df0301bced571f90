"""ColdStartRecommender: the shared contract, and the bandit path for cold users."""

from __future__ import annotations

import numpy as np
import pytest

from recforge import Popularity
from recforge.bandits import ColdStartRecommender

from recommender_contract import RecommenderContract


class TestColdStartContract(RecommenderContract):
    def make_model(self):
        return ColdStartRecommender(random_state=0, n_threads=1)


def test_cold_users_get_the_bandit_and_propensities(small_interactions):
    model = ColdStartRecommender(recommender=Popularity(), random_state=0, n_draws=2000).fit(small_interactions)
    cold = small_interactions.user_ids[small_interactions.user_counts() == 0][0]
    served = model.serve([cold, "u1"], n=3)
    bandit = served[served.source == "bandit"]
    assert len(bandit) == 3 and bandit["item"].nunique() == 3
    assert ((bandit.propensity > 0) & (bandit.propensity <= 1)).all()
    assert (served[served.source == "recommender"].propensity == 1.0).all()
    # warm users get exactly what the fitted recommender recommends
    np.testing.assert_array_equal(served[served.source == "recommender"]["item"].to_numpy(),
                                  model.recommend("u1", n=3)[0])
    assert len(model.serving_log()) == 6
    # clicks on one item raise its posterior mean, so it climbs the cold users' ranking
    item = model.recommend(cold, n=40)[0][-1]
    model.feedback([item] * 200, np.ones(200))
    assert model.recommend(cold, n=1)[0][0] == item
    with pytest.raises(ValueError, match="rewards in"):
        model.feedback([item], [3.0])
    with pytest.raises(IndexError, match="unknown item"):
        model.feedback(["nope"], [1.0])
