"""Off-policy estimators: NumPy oracles, Open Bandit Pipeline on the Open Bandit Dataset, replay."""

from __future__ import annotations

import numpy as np
import pytest

from recforge import bandits as B
from recforge import ope
from recforge import simulation as S

from .conftest import shared_data


def _random_log(n=500, n_actions=4, len_list=2, seed=0):
    rng = np.random.default_rng(seed)
    action = rng.integers(0, n_actions, size=n)
    position = rng.integers(0, len_list, size=n)
    pscore = rng.uniform(0.05, 1.0, size=n)
    reward = (rng.random(n) < 0.3).astype(float)
    dist = rng.random((n, n_actions, len_list))
    dist /= dist.sum(axis=1, keepdims=True)
    q = rng.random((n, n_actions, len_list))
    return action, position, pscore, reward, dist, q


def test_estimators_match_numpy_formulas():
    action, position, pscore, reward, dist, q = _random_log()
    rows = np.arange(action.size)
    w = dist[rows, action, position] / pscore
    qp = (q[rows, :, position] * dist[rows, :, position]).sum(axis=1)
    ql = q[rows, action, position]
    kw = dict(position=position, n_bootstrap=200, random_state=0)
    assert ope.ips(reward, action, pscore, dist, **kw).value == pytest.approx(np.mean(w * reward), rel=1e-12)
    assert ope.ips(reward, action, pscore, dist, clip=2.0, **kw).value == pytest.approx(
        np.mean(np.minimum(w, 2.0) * reward), rel=1e-12)
    assert ope.snips(reward, action, pscore, dist, **kw).value == pytest.approx(
        np.sum(w * reward) / np.sum(w), rel=1e-12)
    assert ope.direct_method(reward, action, dist, q, **kw).value == pytest.approx(qp.mean(), rel=1e-12)
    assert ope.doubly_robust(reward, action, pscore, dist, q, **kw).value == pytest.approx(
        np.mean(qp + w * (reward - ql)), rel=1e-12)
    assert ope.switch_dr(reward, action, pscore, dist, q, tau=3.0, **kw).value == pytest.approx(
        np.mean(qp + (w <= 3.0) * w * (reward - ql)), rel=1e-12)


def test_bootstrap_interval_covers_and_matches_numpy_bootstrap_spread():
    action, position, pscore, reward, dist, _ = _random_log(n=2000, seed=1)
    est = ope.ips(reward, action, pscore, dist, position=position, n_bootstrap=2000, random_state=3, n_threads=2)
    same = ope.ips(reward, action, pscore, dist, position=position, n_bootstrap=2000, random_state=3, n_threads=1)
    assert (est.low, est.high) == (same.low, same.high)  # independent of threads
    rows = np.arange(action.size)
    v = dist[rows, action, position] / pscore * reward
    half = 1.96 * v.std(ddof=1) / np.sqrt(v.size)  # normal-approximation interval of the mean
    assert est.low < est.value < est.high
    assert (est.high - est.low) / 2 == pytest.approx(half, rel=0.1)


def _obd_inputs(campaign):
    root = shared_data("obd-sample")
    rnd = ope.read_open_bandit(root, "random", campaign)
    bts = ope.read_open_bandit(root, "bts", campaign)
    n, n_actions, len_list = rnd.n_rounds, rnd.n_actions, rnd.len_list
    # The Bernoulli-TS logging policy of the BTS logs, as the frequency of each item at each position
    counts = np.zeros((n_actions, len_list))
    np.add.at(counts, (bts.action, bts.position), 1)
    pi = counts / counts.sum(axis=0, keepdims=True)
    dist = np.broadcast_to(pi, (n, n_actions, len_list)).copy()
    q = ope.RewardModel(n_actions, len_list, l2=10.0).fit(None, rnd.action, rnd.reward, rnd.position).predict(
        n_rounds=n)
    return rnd, bts, dist, q


def test_open_bandit_reader():
    root = shared_data("obd-sample")
    data = ope.read_open_bandit(root, "random", "men")
    assert data.n_rounds == 10000 and data.n_actions == 34 and data.len_list == 3
    np.testing.assert_allclose(data.pscore, 1 / 34)
    assert data.reward.sum() == 46
    assert set(np.unique(data.position)) == {0, 1, 2}
    assert data.context.shape[0] == 10000 and np.isfinite(data.context).all()
    with pytest.raises(FileNotFoundError, match="Open Bandit"):
        ope.read_open_bandit(root.parent, "random", "men")
    with pytest.raises(ValueError, match="campaign"):
        ope.read_open_bandit(root, "random", "kids")


@pytest.mark.parametrize("campaign", ["men", "women"])
def test_obd_estimates_match_open_bandit_pipeline_and_bracket_on_policy_ctr(campaign):
    rnd, bts, dist, q = _obd_inputs(campaign)
    kw = dict(position=rnd.position, n_bootstrap=1000, random_state=0)
    ours = {
        "ips": ope.ips(rnd.reward, rnd.action, rnd.pscore, dist, **kw),
        "snips": ope.snips(rnd.reward, rnd.action, rnd.pscore, dist, **kw),
        "dr": ope.doubly_robust(rnd.reward, rnd.action, rnd.pscore, dist, q, **kw),
    }
    truth = bts.on_policy_value
    for name, est in ours.items():
        print(f"{campaign} {est}  on-policy CTR of BTS {truth:.6g}")
        assert est.contains(truth), f"{name} interval {est} does not bracket the on-policy CTR {truth}"
    obp_ope = pytest.importorskip("obp.ope", reason="Open Bandit Pipeline (obp) is not installed")
    inputs = dict(reward=rnd.reward, action=rnd.action, position=rnd.position, pscore=rnd.pscore, action_dist=dist)
    ref = {
        "ips": obp_ope.InverseProbabilityWeighting().estimate_policy_value(**inputs),
        "snips": obp_ope.SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**inputs),
        "dr": obp_ope.DoublyRobust().estimate_policy_value(estimated_rewards_by_reg_model=q, **inputs),
    }
    for name in ours:
        assert abs(ours[name].value - ref[name]) <= 1e-9


def test_switch_dr_matches_open_bandit_pipeline():
    obp_ope = pytest.importorskip("obp.ope", reason="Open Bandit Pipeline (obp) is not installed")
    action, position, pscore, reward, dist, q = _random_log(seed=4)
    ours = ope.switch_dr(reward, action, pscore, dist, q, position=position, tau=2.0, n_bootstrap=10, random_state=0)
    ref = obp_ope.SwitchDoublyRobust(tau=2.0).estimate_policy_value(
        reward=reward, action=action, position=position, pscore=pscore, action_dist=dist,
        estimated_rewards_by_reg_model=q)
    assert abs(ours.value - ref) <= 1e-9
    dm = ope.direct_method(reward, action, dist, q, position=position, n_bootstrap=10, random_state=0)
    ref_dm = obp_ope.DirectMethod().estimate_policy_value(
        position=position, action_dist=dist, estimated_rewards_by_reg_model=q)
    assert abs(dm.value - ref_dm) <= 1e-9


def test_replay_on_uniform_simulated_logs_is_within_its_interval_of_the_truth():
    env = S.LinearEnvironment(5, 4, reward="bernoulli", scale=2.0, random_state=2)
    # a fixed policy: LinUCB trained on separate logs, then frozen
    train = S.uniform_logs(env, 3000, random_state=1)
    policy = B.LinUCB(0.0, random_state=0).fit(train["action"], train["reward"], train["contexts"])
    log = S.uniform_logs(env, 20000, random_state=5)
    est = ope.replay(policy, log["contexts"], log["action"], log["reward"], learn=False, batch_size=500,
                     n_bootstrap=1000, random_state=0)
    chosen, _ = policy.select(log["contexts"], return_propensities=False)
    truth = log["expected"][np.arange(len(chosen)), chosen].mean()
    print(est, "true value", truth)
    assert est.contains(truth)
    assert est.n_rounds == pytest.approx(20000 / 5, rel=0.1)
    # a learning policy replayed with Li et al.'s procedure does better than choosing at random
    learner = B.LinUCB(0.5, n_features=4, arms=np.arange(5), random_state=0)
    learner.add_arms(np.arange(5))
    online = ope.replay(learner, log["contexts"], log["action"], log["reward"], batch_size=20, n_bootstrap=200,
                         random_state=0)
    assert online.low > log["reward"].mean()


def test_bad_input_gives_clear_errors():
    action, position, pscore, reward, dist, q = _random_log(n=20)
    bad_p = pscore.copy()
    bad_p[3] = 0.0
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ope.ips(reward, action, bad_p, dist, position=position)
    bad_p[3] = 1.5
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ope.snips(reward, action, bad_p, dist, position=position)
    bad_r = reward.copy()
    bad_r[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ope.ips(bad_r, action, pscore, dist, position=position)
    with pytest.raises(IndexError, match="outside"):
        ope.ips(reward, action + 10, pscore, dist, position=position)
    with pytest.raises(ValueError, match="position"):
        ope.ips(reward, action, pscore, dist)
    with pytest.raises(ValueError, match="estimated_rewards"):
        ope.doubly_robust(reward, action, pscore, dist, q[:, :2], position=position)
    with pytest.raises(ValueError, match="empty"):
        ope.ips([], [], [], np.zeros((0, 2)))
    with pytest.raises(ValueError, match="one value per logged round"):
        ope.ips(reward, action, pscore[:5], dist, position=position)
