"""ColdStartRecommender: the shared contract, and the bandit path for cold users."""

from __future__ import annotations

import numpy as np
import pytest

from recforge import Popularity
from recforge.bandits import ColdStartRecommender

from .recommender_contract import RecommenderContract


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


def test_hybrid_linucb_over_mf_embeddings_in_a_recommender_environment(small_interactions):
    """ALS item factors as arm features, user factors as contexts: new items are scored at once."""
    from scipy import stats

    from recforge import ALS
    from recforge import bandits as B
    from recforge import simulation as S

    als = ALS(factors=6, iterations=8, random_state=0, n_threads=1).fit(small_interactions, show_progress=False)
    env = S.RecommenderEnvironment(als, n_arms=12, mean_ctr=0.2, scale=20.0)
    feats = env.arm_vectors
    hybrid = B.LinUCB(1.0, hybrid=True, n_features=6, random_state=0)
    hybrid.add_arms(np.arange(10), features=feats[:10])
    ucb = B.UCB1(random_state=0).add_arms(np.arange(10))
    warm = S.simulate({"hybrid": hybrid, "ucb1": ucb}, _Sub(env, 10), 4000, batch_size=20, random_state=0)
    assert warm.summary().loc["hybrid", "cumulative_regret"] < warm.summary().loc["ucb1", "cumulative_regret"]
    # two new items enter with their embeddings: the shared part scores them before any impression
    hybrid.add_arms([10, 11], features=feats[10:12])
    x, expected = env.draw(200, np.random.default_rng(1))
    mean, _ = hybrid.predict(x)
    for a in (10, 11):
        assert hybrid.counts_[a] == 0
        # click probability is monotone in the true logit: rank agreement says the new item is scored
        assert stats.spearmanr(mean[:, a], expected[:, a]).statistic > 0.5


class _Sub:
    """The first n arms of an environment."""

    def __init__(self, env, n):
        self.env, self.n_arms, self.n_features = env, n, env.n_features
        self.bernoulli, self.noise_sd = env.bernoulli, env.noise_sd

    def draw(self, n, rng):
        x, expected = self.env.draw(n, rng)
        return x, expected[:, : self.n_arms]

    def rewards(self, expected, noise):
        return self.env.rewards(expected, noise)
