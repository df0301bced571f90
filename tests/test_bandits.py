"""Bandit policies: propensities, state updates against NumPy oracles, regret, arms, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from recforge import NotFittedError
from recforge import bandits as B
from recforge import simulation as S

RNG = np.random.default_rng(11)


def _context_free(seed=0):
    return {
        "eps": B.EpsilonGreedy(0.3, random_state=seed),
        "ucb": B.UCB1(random_state=seed),
        "ts-beta": B.ThompsonSampling(random_state=seed, n_draws=4000),
        "ts-gauss": B.ThompsonSampling("gaussian", noise_sd=0.5, random_state=seed, n_draws=4000),
        "softmax": B.Softmax(0.1, random_state=seed, n_draws=4000),
    }


def _trained_context_free(policy, ties=False):
    arms = np.arange(6)
    dec = np.repeat(arms, 5)
    rng = np.random.default_rng(2)
    rewards = np.tile([1, 0, 1, 0, 0], 6).astype(float) if ties else (rng.random(30) < 0.1 + 0.1 * dec)
    return policy.fit(dec, rewards.astype(float))


def _trained_linear(policy, d=3, n=80, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    arms = rng.integers(0, 5, size=n)
    theta = rng.normal(size=(5, d))
    r = np.einsum("nd,nd->n", x, theta[arms]) + 0.1 * rng.normal(size=n)
    return policy.fit(arms, r, x, arm_features=rng.normal(size=(5, 2))), x


LINEAR = {
    "linucb": lambda: B.LinUCB(0.8, random_state=0),
    "lints": lambda: B.LinTS(0.5, random_state=0, n_draws=4000),
    "hybrid": lambda: B.LinUCB(0.8, hybrid=True, random_state=0),
    "hybrid-ts": lambda: B.LinTS(0.5, hybrid=True, random_state=0, n_draws=4000),
}


# -- propensities ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(_context_free()))
@pytest.mark.parametrize("ties", [False, True])
def test_context_free_probabilities_sum_to_one_and_match_frequencies(name, ties):
    policy = _trained_context_free(_context_free()[name], ties=ties)
    probs = policy.probabilities(n=3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    draws = 20000
    arms, _ = policy.select(n=draws, return_propensities=False)
    freq = np.bincount(policy.arm_index(arms), minlength=6) / draws
    # binomial error of the frequencies plus the Monte Carlo error of estimated probabilities
    mc = name.startswith("ts") or name == "softmax"
    tol = 4.5 * np.sqrt(probs[0] * (1 - probs[0]) / draws) + (4.5 * np.sqrt(0.25 / 4000) if name.startswith("ts") else 0)
    assert np.all(np.abs(freq - probs[0]) <= tol + 1e-9), (freq, probs[0])
    # propensities of the chosen arms are the probabilities of those arms
    arms, prop = policy.select(n=200)
    idx = policy.arm_index(arms)
    atol = 2 * 4.5 * np.sqrt(0.25 / 4000) if name.startswith("ts") else 1e-12
    assert mc or np.all(prop == probs[0][idx]) or np.allclose(prop, probs[0][idx], atol=1e-12)
    np.testing.assert_allclose(prop, probs[0][idx], atol=atol)


@pytest.mark.parametrize("name", list(LINEAR))
def test_linear_probabilities_sum_to_one_and_match_frequencies(name):
    policy, x = _trained_linear(LINEAR[name]())
    ctx = x[:2]
    probs = policy.probabilities(ctx)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    draws = 8000
    mc = 4.5 * np.sqrt(0.25 / 4000) if "ts" in name else 0.0
    for row in range(2):
        arms, _ = policy.select(np.repeat(ctx[row : row + 1], draws, axis=0), return_propensities=False)
        freq = np.bincount(arms, minlength=5) / draws
        tol = 4.5 * np.sqrt(probs[row] * (1 - probs[row]) / draws) + mc
        assert np.all(np.abs(freq - probs[row]) <= tol + 1e-9)
        arms, prop = policy.select(np.repeat(ctx[row : row + 1], 100, axis=0))
        np.testing.assert_allclose(prop, probs[row][arms], atol=2 * mc if mc else 1e-12)


def test_candidates_restrict_choice_and_renormalise():
    policy = _trained_context_free(B.EpsilonGreedy(0.5, random_state=1))
    probs = policy.probabilities(n=1, candidates=[1, 3])
    assert set(np.flatnonzero(probs[0])) <= {1, 3}
    np.testing.assert_allclose(probs.sum(), 1.0)
    arms, _ = policy.select(n=500, candidates=[1, 3])
    assert set(arms) <= {1, 3}
    mask = np.zeros((2, 6), dtype=bool)
    mask[0, [0, 2]] = True
    mask[1, [4, 5]] = True
    arms, _ = policy.select(n=2, candidates=mask)
    assert arms[0] in (0, 2) and arms[1] in (4, 5)


@pytest.mark.parametrize("name", ["eps", "ucb", "ts-beta", "softmax"])
def test_slates_are_distinct_and_slot_propensities_match_frequencies(name):
    policy = _trained_context_free(_context_free()[name], ties=(name == "ucb"))
    draws = 3000
    policy.set_params(n_draws=500) if "n_draws" in policy.get_params() else None
    arms, prop = policy.select(n=draws, k=3)
    assert arms.shape == (draws, 3)
    assert all(len(set(row)) == 3 for row in arms.tolist())
    for slot in range(3):
        freq = np.bincount(arms[:, slot], minlength=6) / draws
        # the reported marginal probability of an arm at a slot is the same wherever it is chosen
        for a in np.unique(arms[:, slot]):
            p = prop[arms[:, slot] == a, slot]
            est = p.mean()
            assert abs(freq[a] - est) <= 4 * np.sqrt(est * (1 - est) / draws) + 0.03


# -- state updates against oracles ------------------------------------------------------------
def test_ucb1_chooses_the_oracle_upper_bound():
    policy = B.UCB1(alpha=0.5, random_state=0)
    counts = np.array([3, 10, 1, 7], dtype=float)
    dec = np.repeat(np.arange(4), counts.astype(int))
    rewards = RNG.random(dec.size)
    policy.fit(dec, rewards)
    np.testing.assert_array_equal(policy.counts_, counts)
    sums = np.bincount(dec, weights=rewards)
    ucb = sums / counts + np.sqrt(0.5 * 2 * np.log(counts.sum()) / counts)
    arms, prop = policy.select(n=5)
    assert (arms == np.argmax(ucb)).all() and (prop == 1).all()


def test_epsilon_decay_and_exact_propensity():
    policy = B.EpsilonGreedy(0.5, decay=0.1, random_state=0).fit([0, 1, 1], [0.0, 1.0, 1.0])
    eps = 0.5 / (1 + 0.1 * 3)
    assert policy.current_epsilon_ == pytest.approx(eps)
    _, prop = policy.select(n=50)
    assert set(np.round(prop, 12)) <= {round(1 - eps + eps / 2, 12), round(eps / 2, 12)}


def test_linucb_state_matches_ridge_regression():
    policy, x = _trained_linear(B.LinUCB(1.0, l2=2.0))
    arms = policy.arms_
    # rebuild the per-arm ridge solution directly
    rng = np.random.default_rng(0)
    xx = rng.normal(size=(80, 3))
    aa = rng.integers(0, 5, size=80)
    theta = rng.normal(size=(5, 3))
    rr = np.einsum("nd,nd->n", xx, theta[aa]) + 0.1 * rng.normal(size=80)
    for j, a in enumerate(arms):
        rows = aa == a
        A = 2.0 * np.eye(3) + xx[rows].T @ xx[rows]
        np.testing.assert_allclose(policy.A_inv_[j], np.linalg.inv(A), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(policy.b_[j], xx[rows].T @ rr[rows], rtol=1e-12, atol=1e-12)
    mean, width = policy.predict(xx[:4])
    for j in range(len(arms)):
        th = policy.A_inv_[j] @ policy.b_[j]
        np.testing.assert_allclose(mean[:, j], xx[:4] @ th, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(width[:, j], np.sqrt(np.einsum("nd,de,ne->n", xx[:4], policy.A_inv_[j], xx[:4])),
                                   rtol=1e-9)


def _hybrid_oracle(x, arms, r, feats, l2=1.0):
    """Li et al. (2010) algorithm 2, written out with explicit inverses."""
    d, m = x.shape[1], feats.shape[1]
    k = d * m
    A0, b0 = l2 * np.eye(k), np.zeros(k)
    A = [l2 * np.eye(d) for _ in feats]
    Bm = [np.zeros((d, k)) for _ in feats]
    b = [np.zeros(d) for _ in feats]
    for xi, a, ri in zip(x, arms, r):
        z = np.outer(xi, feats[a]).ravel()
        Ai = np.linalg.inv(A[a])
        A0 += Bm[a].T @ Ai @ Bm[a]
        b0 += Bm[a].T @ Ai @ b[a]
        A[a] += np.outer(xi, xi)
        Bm[a] += np.outer(xi, z)
        b[a] += ri * xi
        Ai = np.linalg.inv(A[a])
        A0 += np.outer(z, z) - Bm[a].T @ Ai @ Bm[a]
        b0 += ri * z - Bm[a].T @ Ai @ b[a]
    return A0, b0, A, Bm, b


def test_hybrid_linucb_matches_li_et_al_algorithm():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    arms = rng.integers(0, 4, size=60)
    feats = rng.normal(size=(4, 2))
    r = rng.normal(size=60)
    policy = B.LinUCB(0.7, hybrid=True).fit(arms, r, x, arm_features=feats[np.unique(arms)])
    A0, b0, A, Bm, b = _hybrid_oracle(x, arms, r, feats)
    np.testing.assert_allclose(policy.A0_, A0, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(policy.b0_, b0, rtol=1e-8, atol=1e-9)
    A0i = np.linalg.inv(A0)
    beta = A0i @ b0
    mean, width = policy.predict(x[:5])
    for a in range(4):
        Ai = np.linalg.inv(A[a])
        np.testing.assert_allclose(policy.A_inv_[a], Ai, rtol=1e-8, atol=1e-10)
        theta = Ai @ (b[a] - Bm[a] @ beta)
        for i in range(5):
            xi = x[i]
            z = np.outer(xi, feats[a]).ravel()
            s = (z @ A0i @ z - 2 * z @ A0i @ Bm[a].T @ Ai @ xi + xi @ Ai @ xi
                 + xi @ Ai @ Bm[a] @ A0i @ Bm[a].T @ Ai @ xi)
            assert mean[i, a] == pytest.approx(z @ beta + xi @ theta, rel=1e-8, abs=1e-10)
            assert width[i, a] == pytest.approx(np.sqrt(s), rel=1e-7)


def test_hybrid_scores_a_new_arm_from_its_features():
    """Reward depends only on context x arm features: a new arm is scored right at once."""
    rng = np.random.default_rng(5)
    d, m, n_arms = 3, 2, 6
    W = rng.normal(size=(d, m))
    feats = rng.normal(size=(n_arms + 1, m))
    x = rng.normal(size=(600, d))
    arms = rng.integers(0, n_arms, size=600)
    r = np.einsum("nd,dm,nm->n", x, W, feats[arms]) + 0.05 * rng.normal(size=600)
    policy = B.LinUCB(0.0, hybrid=True).fit(arms, r, x, arm_features=feats[:n_arms])
    policy.add_arms([n_arms], features=feats[n_arms:])
    xt = rng.normal(size=(50, d))
    mean, _ = policy.predict(xt)
    truth = xt @ W @ feats[n_arms]
    assert np.corrcoef(mean[:, n_arms], truth)[0, 1] > 0.95


def test_warm_start_borrows_from_similar_arms():
    policy = B.ThompsonSampling(random_state=0)
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    policy.fit(np.r_[np.zeros(100, int), np.ones(100, int)], np.r_[np.ones(80), np.ones(10), np.zeros(110)],
               arm_features=feats[:2])
    policy.add_arms([2], features=feats[2:], warm_start=True, n_neighbors=1, strength=0.5)
    assert policy.counts_[2] == pytest.approx(50.0)
    assert policy.sums_[2] / policy.counts_[2] == pytest.approx(policy.sums_[0] / policy.counts_[0])
    lin, x = _trained_linear(B.LinUCB(1.0))
    lin.add_arms([99], features=lin.arm_features_[:1] * 2.0, warm_start=True, n_neighbors=1)
    np.testing.assert_allclose(lin.A_inv_[-1], lin.A_inv_[0])
    np.testing.assert_allclose(lin.b_[-1], lin.b_[0])


def test_add_and_remove_arms_at_run_time():
    policy = _trained_context_free(B.UCB1(random_state=0))
    policy.add_arms(["new"])
    assert policy.n_arms_ == 7
    arms, _ = policy.select(n=1)
    assert arms[0] == "new"  # never played: UCB1 tries it first
    before = policy.counts_[policy.arm_index([2])[0]]
    policy.remove_arms([0, 1])
    assert list(policy.arms_) == ["2", "3", "4", "5", "new"] or list(policy.arms_) == [2, 3, 4, 5, "new"]
    assert policy.counts_[0] == before
    with pytest.raises(IndexError, match="unknown arm"):
        policy.update([0], [1.0])
    lin, x = _trained_linear(B.LinUCB(1.0, hybrid=True))
    lin.remove_arms([lin.arms_[0]])
    assert lin.select(x[:3])[0].shape == (3,)


def test_partial_fit_equals_one_fit():
    x = RNG.normal(size=(40, 4))
    arms = RNG.integers(0, 3, size=40)
    r = RNG.normal(size=40)
    one = B.LinTS(arms=[0, 1, 2]).fit(arms, r, x)
    two = B.LinTS(arms=[0, 1, 2]).partial_fit(arms[:15], r[:15], x[:15]).partial_fit(arms[15:], r[15:], x[15:])
    np.testing.assert_allclose(one.A_inv_, two.A_inv_, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(one.b_, two.b_)


def test_selection_is_reproducible_and_independent_of_threads():
    a = _trained_context_free(B.ThompsonSampling(random_state=4, n_threads=1))
    b = _trained_context_free(B.ThompsonSampling(random_state=4, n_threads=2))
    ra, pa = a.select(n=300)
    rb, pb = b.select(n=300)
    np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("make", [lambda: B.Softmax(0.2, random_state=1), lambda: LINEAR["hybrid"]()])
def test_save_load_and_pickle_keep_the_policy(make, tmp_path):
    if isinstance(make(), B.LinUCB):
        policy, x = _trained_linear(make())
    else:
        policy, x = _trained_context_free(make()), None
    clone = pickle.loads(pickle.dumps(policy))
    loaded = B.load(policy.save(tmp_path / "policy"))
    assert type(loaded) is type(policy) and loaded.get_params() == policy.get_params()
    r1, p1 = policy.select(x, n=20)
    r2, p2 = loaded.select(x, n=20)
    r3, p3 = clone.select(x, n=20)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(r1, r3)
    np.testing.assert_allclose(p1, p2)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable"):
        B.load(tmp_path / "bad.npz")


# -- regret in simulation -----------------------------------------------------------------------
def test_regret_of_ucb_thompson_sublinear_and_below_epsilon_greedy():
    env = S.BernoulliEnvironment(np.linspace(0.05, 0.6, 10))
    policies = {
        "eps": B.EpsilonGreedy(0.1, random_state=1),
        "ucb1": B.UCB1(random_state=1),
        "thompson": B.ThompsonSampling(random_state=1),
    }
    for p in policies.values():
        p.add_arms(np.arange(10))
    res = S.simulate(policies, env, 40000, batch_size=50, random_state=0)
    summary = res.summary()
    for name in ("ucb1", "thompson"):
        assert summary.loc[name, "cumulative_regret"] < summary.loc["eps", "cumulative_regret"]
        # sublinear: the second half adds much less regret than the first
        assert summary.loc[name, "regret_second_half"] < 0.5 * summary.loc[name, "regret_first_half"]
    # fixed-epsilon greedy keeps paying for exploration: linear regret
    assert summary.loc["eps", "regret_second_half"] > 0.7 * summary.loc["eps", "regret_first_half"]


def test_linucb_beats_context_free_policies_on_a_linear_problem():
    env = S.LinearEnvironment(8, 5, noise_sd=0.1, random_state=0)
    policies = {
        "eps": B.EpsilonGreedy(0.1, random_state=1),
        "ucb1": B.UCB1(random_state=1),
        "thompson": B.ThompsonSampling("gaussian", noise_sd=0.5, random_state=1),
        "linucb": B.LinUCB(0.5, n_features=5, random_state=1),
        "lints": B.LinTS(0.2, n_features=5, random_state=1),
    }
    for p in policies.values():
        p.add_arms(np.arange(8))
    res = S.simulate(policies, env, 3000, batch_size=10, random_state=0)
    regret = res.summary()["cumulative_regret"]
    for lin in ("linucb", "lints"):
        assert regret[lin] < 0.2 * regret[["eps", "ucb1", "thompson"]].min()
    s = res.summary().loc["linucb"]
    assert s["regret_second_half"] < 0.5 * s["regret_first_half"]


def test_plot_regret_draws_one_line_per_policy():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    env = S.BernoulliEnvironment([0.2, 0.5])
    pols = {"ucb": B.UCB1(arms=[0, 1]).fit([], []), "ts": B.ThompsonSampling(arms=[0, 1]).fit([], [])}
    ax = S.plot_regret(S.simulate(pols, env, 200, random_state=0))
    assert len(ax.get_lines()) == 2


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_gives_clear_errors():
    policy, x = _trained_linear(B.LinUCB(1.0))
    with pytest.raises(ValueError, match="3 features per row"):
        policy.select(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        policy.update([0], [np.nan], x[:1])
    with pytest.raises(ValueError, match="NaN"):
        policy.select(np.full((1, 3), np.nan))
    with pytest.raises(IndexError, match="unknown arm"):
        policy.update(["zzz"], [1.0], x[:1])
    with pytest.raises(ValueError, match="one row per arm"):
        policy.update([0, 1], [1.0, 0.0], x[:1])
    with pytest.raises(ValueError, match="larger than"):
        policy.select(x[:1], k=6)
    with pytest.raises(ValueError, match="positive integer"):
        policy.select(x[:1], k=0)
    with pytest.raises(ValueError, match="needs contexts"):
        policy.select()
    ts = _trained_context_free(B.ThompsonSampling())
    with pytest.raises(ValueError, match=r"rewards in \[0, 1\]"):
        ts.update([0], [2.0])
    with pytest.raises(ValueError, match="epsilon"):
        _trained_context_free(B.EpsilonGreedy(1.5)).select()
    with pytest.raises(ValueError, match="likelihood"):
        B.ThompsonSampling("poisson").fit([0], [1.0]).select()
    with pytest.raises(NotFittedError, match="no arms"):
        B.UCB1().select()
    with pytest.raises(ValueError, match="already exist"):
        ts.add_arms([0])
    with pytest.raises(ValueError, match="no parameter"):
        ts.set_params(nope=1)


def test_thompson_probabilities_match_closed_forms_for_two_arms():
    """P(arm 0 wins) from the samplers against exact integrals of the posteriors."""
    from scipy import integrate, stats

    gauss = B.ThompsonSampling("gaussian", noise_sd=1.0, prior_precision=1.0, n_draws=200000, random_state=0)
    gauss.fit([0] * 4 + [1] * 9, [0.5, 1.0, 0.2, 0.9] + [0.3] * 9)
    m = gauss.sums_ / (1 + gauss.counts_)
    sd = 1.0 / np.sqrt(1 + gauss.counts_)
    exact = stats.norm.cdf((m[0] - m[1]) / np.hypot(sd[0], sd[1]))
    assert gauss.probabilities()[0, 0] == pytest.approx(exact, abs=4 * np.sqrt(0.25 / 200000))
    beta = B.ThompsonSampling(n_draws=200000, random_state=0).fit([0] * 5 + [1] * 12, [1, 0, 1, 0, 0] + [1] * 4 + [0] * 8)
    a = 1 + beta.sums_
    b = 1 + beta.counts_ - beta.sums_
    exact = integrate.quad(lambda t: stats.beta.pdf(t, a[0], b[0]) * stats.beta.cdf(t, a[1], b[1]), 0, 1)[0]
    assert beta.probabilities()[0, 0] == pytest.approx(exact, abs=4 * np.sqrt(0.25 / 200000))
    lints = B.LinTS(0.7, n_draws=200000, random_state=0)
    lints, x = _trained_linear(lints)
    lints.remove_arms(lints.arms_[2:])
    mean, width = lints.predict(x[:1])
    exact = stats.norm.cdf((mean[0, 0] - mean[0, 1]) / (0.7 * np.hypot(width[0, 0], width[0, 1])))
    assert lints.probabilities(x[:1])[0, 0] == pytest.approx(exact, abs=4 * np.sqrt(0.25 / 200000))


def test_save_with_array_arms_parameter(tmp_path):
    policy = B.EpsilonGreedy(0.2, arms=np.arange(4), random_state=0).fit([0, 1], [1.0, 0.0])
    loaded = B.load(policy.save(tmp_path / "p.npz"))
    assert list(loaded.arms_) == [0, 1, 2, 3] and loaded.arms == [0, 1, 2, 3]
    np.testing.assert_array_equal(loaded.counts_, policy.counts_)
