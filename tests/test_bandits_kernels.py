"""Bandit kernels against oracles: the Beta sampler of Thompson sampling against SciPy and NumPy,
and LinUCB's choice (which scores only the arms that can win) against the scores of every arm."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from recforge import _core
from recforge import bandits as B

SHAPES = [(1.0, 1.0), (0.3, 0.7), (0.5, 4.0), (2.5, 1.0), (12.0, 88.0), (1200.0, 8800.0), (7.0, 0.2),
          (40000.0, 3.0)]


def _draws(shapes, n_rows, seed=3, n_threads=1):
    a = np.array([s[0] for s in shapes])
    b = np.array([s[1] for s in shapes])
    return _core.bandits.beta_draws(a, b, n_rows=n_rows, seed=seed, n_threads=n_threads)


def test_beta_draws_follow_the_beta_distribution():
    x = _draws(SHAPES, 40000)
    assert x.shape == (40000, len(SHAPES))
    for j, (a, b) in enumerate(SHAPES):
        col = x[:, j]
        assert np.all((col >= 0) & (col <= 1))
        ks = stats.kstest(col, stats.beta(a, b).cdf)
        assert ks.pvalue > 1e-4, (a, b, ks)


def test_beta_draw_moments_match_numpy():
    n = 200000
    x = _draws(SHAPES, n, seed=11)
    ref = np.random.default_rng(0).beta([s[0] for s in SHAPES], [s[1] for s in SHAPES], size=(n, len(SHAPES)))
    for j, (a, b) in enumerate(SHAPES):
        mean = a / (a + b)
        var = a * b / ((a + b) ** 2 * (a + b + 1))
        se_mean = np.sqrt(var / n)
        assert abs(x[:, j].mean() - mean) < 5 * se_mean
        assert abs(ref[:, j].mean() - mean) < 5 * se_mean
        # the variance of the sample variance is about (m4 - var^2) / n; take it from NumPy's draws
        se_var = np.sqrt(np.var((ref[:, j] - mean) ** 2) / n)
        assert abs(x[:, j].var() - var) < 6 * se_var + 1e-15


def test_beta_draws_are_independent_across_arms_and_rows():
    x = _draws([(3.0, 5.0)] * 6, 50000, seed=5)
    corr = np.corrcoef(x.T)
    assert np.abs(corr[np.triu_indices(6, 1)]).max() < 0.03
    lag = np.corrcoef(x[:-1, 0], x[1:, 0])[0, 1]
    assert abs(lag) < 0.03


def test_beta_draws_do_not_depend_on_threads():
    np.testing.assert_array_equal(_draws(SHAPES, 500, n_threads=1), _draws(SHAPES, 500, n_threads=2))


def test_portable_beta_sampler_draws_the_same_values():
    code = ("import numpy as np; from recforge import _core; "
            f"a = np.array({[s[0] for s in SHAPES]}); b = np.array({[s[1] for s in SHAPES]}); "
            "x = _core.bandits.beta_draws(a, b, n_rows=3000, seed=9, n_threads=1); "
            "import sys; sys.stdout.write(x.tobytes().hex())")
    out = {}
    for kernel in ("default", "generic"):
        env = dict(os.environ)
        if kernel == "generic":
            env["RECFORGE_BANDIT_KERNEL"] = "generic"
        else:
            env.pop("RECFORGE_BANDIT_KERNEL", None)
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        out[kernel] = np.frombuffer(bytes.fromhex(res.stdout), dtype=np.float64)
    np.testing.assert_array_equal(out["default"], out["generic"])


def test_beta_draws_reject_bad_shapes():
    with pytest.raises(ValueError, match="shapes"):
        _core.bandits.beta_draws(np.array([1.0, 0.0]), np.array([1.0, 1.0]))


def test_thompson_choice_matches_exact_probability():
    # two arms: P(arm 1) = P(X1 > X0) for independent Beta posteriors, by numerical integration
    policy = B.ThompsonSampling(random_state=0).fit([0] * 30 + [1] * 12, [1] * 9 + [0] * 21 + [1] * 5 + [0] * 7)
    a0, b0 = 1 + 9, 1 + 21
    a1, b1 = 1 + 5, 1 + 7
    grid = np.linspace(0, 1, 200001)
    exact = np.trapezoid(stats.beta(a1, b1).pdf(grid) * stats.beta(a0, b0).cdf(grid), grid)
    n = 100000
    arms, _ = policy.select(n=n, return_propensities=False)
    freq = np.mean(arms == 1)
    assert abs(freq - exact) < 5 * np.sqrt(exact * (1 - exact) / n)


# -- LinUCB: the choice against the scores of every arm -------------------------------------------
def _trained_linucb(alpha=0.8, n_arms=30, d=6, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(n_arms, d)) / np.sqrt(d)
    policy = B.LinUCB(alpha, n_features=d, arms=np.arange(n_arms), random_state=seed)
    policy.add_arms(np.arange(n_arms))
    for start in range(0, n, 100):
        x = rng.normal(size=(100, d))
        arms, _ = policy.select(x, return_propensities=False)
        r = (rng.random(100) < 1 / (1 + np.exp(-(np.einsum("nd,nd->n", x, theta[arms]) - 1)))).astype(float)
        policy.update(arms, r, x)
    return policy, rng


def _oracle_scores(policy, x):
    theta = np.einsum("aij,aj->ai", policy.A_inv_, policy.b_)
    mean = x @ theta.T
    width = np.sqrt(np.einsum("nd,ade,ne->na", x, policy.A_inv_, x))
    return mean + policy.alpha * width


@pytest.mark.parametrize("alpha", [0.0, 0.3, 2.0])
def test_linucb_choice_is_the_best_oracle_score(alpha):
    policy, rng = _trained_linucb(alpha)
    x = rng.normal(size=(500, 6))
    score = _oracle_scores(policy, x)
    arms, prop = policy.select(x)
    best = score.max(axis=1)
    chosen = score[np.arange(500), arms]
    np.testing.assert_allclose(chosen, best, rtol=1e-9, atol=1e-12)
    assert (prop == 1).all()
    slate, _ = policy.select(x, k=4)
    top = np.sort(score, axis=1)[:, ::-1][:, :4]
    np.testing.assert_allclose(np.take_along_axis(score, slate, axis=1), top, rtol=1e-9, atol=1e-12)


def test_linucb_choice_with_candidates_and_a_degenerate_arm():
    policy, rng = _trained_linucb(1.0)
    # arm 0: a singular (rank-one) inverse, so its factor comes from an eigendecomposition
    v = rng.normal(size=6)
    policy.A_inv_[0] = np.outer(v, v)
    x = rng.normal(size=(300, 6))
    mask = rng.random((300, 30)) < 0.3
    mask[:, 0] = True
    score = np.where(mask, _oracle_scores(policy, x), -np.inf)
    arms, _ = policy.select(x, candidates=mask)
    assert mask[np.arange(300), arms].all()
    np.testing.assert_allclose(score[np.arange(300), arms], score.max(axis=1), rtol=1e-9, atol=1e-12)


def test_linucb_ties_are_broken_uniformly():
    # untrained arms tie exactly: every arm equally likely, propensity 1 / n_arms
    policy = B.LinUCB(1.0, n_features=4, arms=np.arange(5), random_state=0)
    policy.add_arms(np.arange(5))
    x = np.tile(np.random.default_rng(1).normal(size=(1, 4)), (20000, 1))
    arms, prop = policy.select(x)
    np.testing.assert_allclose(prop, 0.2)
    freq = np.bincount(arms, minlength=5) / 20000
    assert np.abs(freq - 0.2).max() < 4.5 * np.sqrt(0.16 / 20000)
    slate, sprop = policy.select(x[:10], k=3)
    assert all(len(set(row)) == 3 for row in slate.tolist())
    np.testing.assert_allclose(sprop, 0.2)
