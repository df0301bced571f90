"""Bandit simulation: environments with known rewards, policies compared by regret and CTR.

An environment draws contexts and knows every arm's expected reward for each of them, so a
policy's (pseudo-)regret -- the expected reward of the best arm minus that of the chosen arm,
summed over rounds -- is exact. Policies in one :func:`simulate` call see the same contexts and
the same reward noise (common random numbers), so their curves differ only by their choices.

* :class:`BernoulliEnvironment` -- context-free arms with fixed click probabilities.
* :class:`LinearEnvironment` -- expected reward linear in a Gaussian context (or its logistic).
* :class:`RecommenderEnvironment` -- built from a fitted factor recommender on real data: the
  context is a user's factor vector, the click probability a logistic of the model's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_positive_int

__all__ = [
    "BernoulliEnvironment",
    "LinearEnvironment",
    "RecommenderEnvironment",
    "SimulationResult",
    "simulate",
    "uniform_logs",
    "plot_regret",
]


class _Environment:
    n_arms: int
    n_features: int
    bernoulli: bool = True
    noise_sd: float = 0.0

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray]:  # pragma: no cover
        """``n`` contexts (or None) and the expected reward of every arm (n x n_arms)."""
        raise NotImplementedError

    def rewards(self, expected: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Rewards of chosen arms from their expected values and uniform noise in [0, 1)."""
        if self.bernoulli:
            return (noise < expected).astype(np.float64)
        from scipy.special import ndtri

        return expected + self.noise_sd * ndtri(np.clip(noise, 1e-12, 1 - 1e-12))


class BernoulliEnvironment(_Environment):
    """Context-free arms; arm a clicks with probability ``probabilities[a]``."""

    def __init__(self, probabilities: Any) -> None:
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 1 or p.size < 2 or not np.all((p >= 0) & (p <= 1)):
            raise ValueError("probabilities must be a 1-D array of at least 2 values in [0, 1]")
        self.probabilities = p
        self.n_arms = p.size
        self.n_features = 0

    def draw(self, n: int, rng: np.random.Generator) -> tuple[None, np.ndarray]:
        return None, np.broadcast_to(self.probabilities, (n, self.n_arms))


class LinearEnvironment(_Environment):
    """Contexts x ~ N(0, I_d); expected reward x . theta_a (+ ``offset``), or its logistic.

    ``reward="gaussian"`` adds N(0, noise_sd^2) noise; ``reward="bernoulli"`` clicks with
    probability sigmoid(scale * x . theta_a + offset). theta_a ~ N(0, I / d), drawn from
    ``random_state``.
    """

    def __init__(self, n_arms: int = 10, n_features: int = 5, *, reward: str = "gaussian", noise_sd: float = 0.1,
                 scale: float = 1.0, offset: float = 0.0, random_state: int | None = None) -> None:
        self.n_arms = check_positive_int(n_arms, "n_arms")
        self.n_features = check_positive_int(n_features, "n_features")
        if reward not in ("gaussian", "bernoulli"):
            raise ValueError(f"reward must be 'gaussian' or 'bernoulli', got {reward!r}")
        self.bernoulli = reward == "bernoulli"
        self.noise_sd = float(noise_sd)
        self.scale = float(scale)
        self.offset = float(offset)
        rng = np.random.default_rng(random_state)
        self.theta = rng.normal(size=(self.n_arms, self.n_features)) / np.sqrt(self.n_features)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, self.n_features))
        z = self.scale * (x @ self.theta.T) + self.offset
        return x, (1.0 / (1.0 + np.exp(-z)) if self.bernoulli else z)


class RecommenderEnvironment(_Environment):
    """An environment from a fitted factor recommender (``user_factors_``, ``item_factors_``).

    Arms are the ``n_arms`` most popular items of the training data (or ``items``, indices);
    a round draws a user uniformly, the context is the user's factor vector, and the click
    probability of item i is sigmoid(scale * (score(u, i) - shift)), with ``shift`` chosen so
    the mean click probability over users and arms is ``mean_ctr``.
    """

    def __init__(self, model: Any, *, n_arms: int = 20, items: Any = None, mean_ctr: float = 0.05,
                 scale: float = 5.0) -> None:
        if not hasattr(model, "user_factors_") or not hasattr(model, "item_factors_"):
            raise ValueError("RecommenderEnvironment needs a fitted factor model (user_factors_, item_factors_)")
        if items is None:
            pop = np.asarray(model.seen_.sum(axis=0)).ravel()
            items = np.argsort(-pop, kind="stable")[: check_positive_int(n_arms, "n_arms")]
        self.items = np.asarray(items, dtype=np.int64)
        self.users = np.asarray(model.user_factors_, dtype=np.float64)
        self.arm_vectors = np.asarray(model.item_factors_, dtype=np.float64)[self.items]
        self.n_arms = self.items.size
        self.n_features = self.users.shape[1]
        self.scale = float(scale)
        scores = self.users @ self.arm_vectors.T
        lo, hi = float(scores.min()) - 50 / self.scale, float(scores.max()) + 50 / self.scale
        for _ in range(100):  # bisection for the shift that gives the mean CTR
            mid = 0.5 * (lo + hi)
            ctr = float(np.mean(1.0 / (1.0 + np.exp(-self.scale * (scores - mid)))))
            lo, hi = (mid, hi) if ctr > mean_ctr else (lo, mid)
        self.shift = 0.5 * (lo + hi)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        u = rng.integers(0, self.users.shape[0], size=n)
        x = self.users[u]
        return x, 1.0 / (1.0 + np.exp(-self.scale * (x @ self.arm_vectors.T - self.shift)))


@dataclass
class SimulationResult:
    """Per-round expected regret and reward of each policy, plus summary figures."""

    regret: pd.DataFrame   # rounds x policies: expected regret of each round
    reward: pd.DataFrame   # rounds x policies: observed reward of each round

    @property
    def cumulative_regret(self) -> pd.DataFrame:
        return self.regret.cumsum()

    def summary(self) -> pd.DataFrame:
        n = len(self.regret)
        return pd.DataFrame({
            "cumulative_regret": self.regret.sum(),
            "ctr": self.reward.mean(),
            "regret_first_half": self.regret.iloc[: n // 2].sum(),
            "regret_second_half": self.regret.iloc[n // 2:].sum(),
        })


def simulate(policies: dict[str, Any], env: _Environment, n_rounds: int, *, batch_size: int = 1,
             random_state: int | None = None, show_progress: bool = False) -> SimulationResult:
    """Run each policy for ``n_rounds`` rounds against ``env`` (batches of ``batch_size``).

    Each policy must already know the environment's arms (``arms=range(env.n_arms)`` and
    ``fit([], [])``, or ``add_arms``); policies are updated in place.
    """
    n_rounds = check_positive_int(n_rounds, "n_rounds")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not policies:
        raise ValueError("policies is empty: pass a dict of name -> policy")
    for name, pol in policies.items():
        if not pol.is_fitted or pol.n_arms_ != env.n_arms:
            raise ValueError(f"policy {name!r} must have the environment's {env.n_arms} arms (add_arms(range(n)))")
    rng = np.random.default_rng(random_state)
    regret = {name: np.empty(n_rounds) for name in policies}
    reward = {name: np.empty(n_rounds) for name in policies}
    steps = range(0, n_rounds, batch_size)
    if show_progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="simulate", unit="batch")
    rows_all = None
    for start in steps:
        stop = min(n_rounds, start + batch_size)
        m = stop - start
        x, expected = env.draw(m, rng)
        noise = rng.random(m)
        best = expected.max(axis=1)
        if rows_all is None or rows_all.size != m:
            rows_all = np.arange(m)
        for name, pol in policies.items():
            chosen, _ = pol.select(x, n=m, return_propensities=False)
            idx = pol.arm_index(chosen)
            exp_chosen = expected[rows_all, idx]
            r = env.rewards(exp_chosen, noise)
            pol.update(chosen, r, x)
            regret[name][start:stop] = best - exp_chosen
            reward[name][start:stop] = r
    return SimulationResult(pd.DataFrame(regret), pd.DataFrame(reward))


def uniform_logs(env: _Environment, n_rounds: int, *, random_state: int | None = None) -> dict[str, np.ndarray]:
    """A log of a uniformly random policy in ``env``: contexts, action, reward, pscore, expected."""
    n_rounds = check_positive_int(n_rounds, "n_rounds")
    rng = np.random.default_rng(random_state)
    x, expected = env.draw(n_rounds, rng)
    action = rng.integers(0, env.n_arms, size=n_rounds)
    exp_chosen = expected[np.arange(n_rounds), action]
    r = env.rewards(exp_chosen, rng.random(n_rounds))
    return {"contexts": x, "action": action, "reward": r, "pscore": np.full(n_rounds, 1.0 / env.n_arms),
            "expected": np.asarray(expected)}


def plot_regret(result: SimulationResult, *, ax: Any = None, log: bool = False) -> Any:
    """Cumulative regret curves of every policy (matplotlib Axes)."""
    from .plot import _pyplot

    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    cum = result.cumulative_regret
    for name in cum.columns:
        ax.plot(np.arange(1, len(cum) + 1), cum[name].to_numpy(), label=name)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative regret")
    if log:
        ax.set_xscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax
