"""Off-policy evaluation: judge a new policy from logged bandit feedback before an A/B test.

Input is a log of rounds (context, action, reward, propensity[, position]) collected by a
logging policy, and the evaluation policy's action distribution on the same rounds
(``action_dist``: rounds x actions, or rounds x actions x positions as in Open Bandit
Pipeline). Estimators, all computed in C++ with a bootstrap confidence interval:

* :func:`replay` -- Li et al. (2011): run a policy over uniformly random logs, keep the rounds
  where it agrees with the logged action.
* :func:`ips` -- inverse propensity scoring, optionally with clipped weights.
* :func:`snips` -- self-normalised IPS.
* :func:`direct_method` -- the reward model's value of the policy.
* :func:`doubly_robust` -- DM plus the IPS-weighted residuals.
* :func:`switch_dr` -- DR where the weight is at most ``tau``, DM beyond (Wang et al. 2017).

The point estimates follow Open Bandit Pipeline's definitions, so the two agree on the same
inputs. :func:`read_open_bandit` reads the Open Bandit Dataset CSV files.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _core
from ._validation import check_positive_int, resolve_threads

__all__ = [
    "Estimate",
    "ips",
    "snips",
    "direct_method",
    "doubly_robust",
    "switch_dr",
    "replay",
    "evaluate_policy",
    "RewardModel",
    "OpenBanditData",
    "read_open_bandit",
]

_CODES = {"ips": 0, "snips": 1, "dm": 2, "dr": 3, "switch-dr": 4}
_core_b = _core.bandits


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value with its bootstrap percentile confidence interval."""

    estimator: str
    value: float
    low: float
    high: float
    confidence: float
    n_rounds: int

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the confidence interval."""
        return self.low <= value <= self.high

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return f"{self.estimator}: {self.value:.6g} ({pct}% CI {self.low:.6g} .. {self.high:.6g}, n={self.n_rounds})"


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------
def _vector(x: Any, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per logged round), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have one value per logged round ({n}), got {arr.shape[0]}")
    return arr


def _rewards(reward: Any) -> np.ndarray:
    r = _vector(reward, "reward")
    if r.size == 0:
        raise ValueError("the log is empty: pass at least one logged round")
    bad = ~np.isfinite(r)
    if bad.any():
        raise ValueError(f"reward contains {int(bad.sum())} NaN or infinite values; drop those rounds first")
    return r


def _pscores(pscore: Any, n: int) -> np.ndarray:
    p = _vector(pscore, "pscore", n)
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"propensities must be in (0, 1]: {int(bad.sum())} are not (round {i} has {p[i]!r}); a zero "
            "propensity means the logging policy could not have taken the logged action"
        )
    return p


def _actions(action: Any, n: int, n_actions: int) -> np.ndarray:
    a = np.asarray(action)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"action must be 1-D with one action per logged round ({n}), got shape {a.shape}")
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ValueError(f"action must hold integer action indices, got dtype {a.dtype}")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= n_actions)
    if bad.any():
        raise IndexError(
            f"action contains indices outside [0, {n_actions}) (the action_dist width): "
            + ", ".join(str(v) for v in np.unique(a[bad])[:5])
        )
    return a


def _positions(position: Any, n: int, len_list: int) -> np.ndarray:
    if position is None:
        if len_list != 1:
            raise ValueError(f"action_dist has {len_list} positions: pass position= for every round")
        return np.zeros(n, dtype=np.int64)
    pos = np.asarray(position)
    if pos.ndim != 1 or pos.shape[0] != n or pos.dtype.kind not in "iu":
        raise ValueError(f"position must be 1-D integer positions, one per logged round ({n})")
    pos = pos.astype(np.int64)
    bad = (pos < 0) | (pos >= len_list)
    if bad.any():
        raise IndexError(f"position contains values outside [0, {len_list}) (0-based slots of action_dist)")
    return pos


def _action_dist(action_dist: Any, n: int) -> np.ndarray:
    d = np.asarray(action_dist)
    if d.dtype.kind not in "fiub":
        raise ValueError(f"action_dist must be numeric, got dtype {d.dtype}")
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 2:
        d = d[:, :, None]
    if d.ndim != 3 or d.shape[0] != n:
        raise ValueError(
            f"action_dist must have shape (rounds, actions) or (rounds, actions, positions) with {n} rounds, "
            f"got {d.shape}"
        )
    if not np.isfinite(d).all() or (d < 0).any() or (d > 1 + 1e-9).any():
        raise ValueError("action_dist must hold probabilities in [0, 1] without NaN")
    return d


@dataclass
class _Prepared:
    reward: np.ndarray
    pscore: np.ndarray | None
    eval_prob: np.ndarray | None
    q_logged: np.ndarray | None
    q_policy: np.ndarray | None


def _prepare(reward, action, pscore, action_dist, position, estimated_rewards, need_weights, need_model):
    r = _rewards(reward)
    n = r.size
    dist = _action_dist(action_dist, n)
    n_actions, len_list = dist.shape[1], dist.shape[2]
    a = _actions(action, n, n_actions)
    pos = _positions(position, n, len_list)
    rows = np.arange(n)
    p = _pscores(pscore, n) if need_weights else None
    e = np.ascontiguousarray(dist[rows, a, pos]) if need_weights else None
    ql = qp = None
    if need_model:
        if estimated_rewards is None:
            raise ValueError("this estimator needs estimated_rewards= from a reward model (see RewardModel)")
        q = np.asarray(estimated_rewards, dtype=np.float64)
        if q.ndim == 2:
            q = q[:, :, None]
        if q.shape != dist.shape:
            raise ValueError(f"estimated_rewards must have the shape of action_dist {dist.shape}, got {q.shape}")
        if not np.isfinite(q).all():
            raise ValueError("estimated_rewards contain NaN or infinite values")
        pi = dist[rows, :, pos]
        mass = pi.sum(axis=1)
        if (mass <= 0).any():
            raise ValueError("action_dist gives zero total probability to some rounds at their position")
        qp = np.ascontiguousarray((q[rows, :, pos] * pi).sum(axis=1) / mass)
        ql = np.ascontiguousarray(q[rows, a, pos])
    return _Prepared(r, p, e, ql, qp)


def _seed(random_state: Any) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise ValueError(f"random_state must be None or an int, got {random_state!r}")
    return int(np.random.SeedSequence(int(random_state)).generate_state(1, np.uint64)[0])


def _run(name: str, prep: _Prepared, param: float, n_bootstrap: int, confidence: float, random_state: Any,
         n_threads: int | None) -> Estimate:
    if not (isinstance(confidence, numbers.Real) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
    n_bootstrap = check_positive_int(n_bootstrap, "n_bootstrap")
    code = _CODES[name]
    kw = dict(pscore=prep.pscore, eval_prob=prep.eval_prob, q_logged=prep.q_logged, q_policy=prep.q_policy,
              param=float(param))
    value = float(_core_b.ope_estimate(code, prep.reward, **kw))
    reps = _core_b.ope_bootstrap(code, prep.reward, n_bootstrap=n_bootstrap, seed=_seed(random_state),
                                 n_threads=resolve_threads(n_threads), **kw)
    tail = (1 - confidence) / 2
    low, high = np.quantile(reps, [tail, 1 - tail])
    return Estimate(name, value, float(low), float(high), float(confidence), int(prep.reward.size))


def _check_clip(clip: Any, name: str = "clip") -> float:
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real) or np.isnan(clip) or clip <= 0:
        raise ValueError(f"{name} must be a positive number (np.inf for none), got {clip!r}")
    return float(clip)


_DOC_COMMON = """
    Parameters
    ----------
    reward, action, pscore : arrays (rounds,)
        Logged rewards, action indices and the logging policy's propensities (in (0, 1]).
    action_dist : array (rounds, actions[, positions])
        The evaluation policy's probabilities of every action in every logged round.
    position : array (rounds,), optional
        0-based position of each logged round (needed when action_dist has several positions).
    n_bootstrap, confidence, random_state, n_threads
        Bootstrap resamples of the rounds, interval level and seed, threads (0 = all cores).
"""


def ips(reward: Any, action: Any, pscore: Any, action_dist: Any, *, position: Any = None, clip: float = np.inf,
        n_bootstrap: int = 1000, confidence: float = 0.95, random_state: Any = None,
        n_threads: int | None = 1) -> Estimate:
    """Inverse propensity scoring: mean(min(w, clip) r), w = pi_e(a|x) / pscore."""
    prep = _prepare(reward, action, pscore, action_dist, position, None, True, False)
    return _run("ips", prep, _check_clip(clip), n_bootstrap, confidence, random_state, n_threads)


def snips(reward: Any, action: Any, pscore: Any, action_dist: Any, *, position: Any = None, clip: float = np.inf,
          n_bootstrap: int = 1000, confidence: float = 0.95, random_state: Any = None,
          n_threads: int | None = 1) -> Estimate:
    """Self-normalised IPS: sum(w r) / sum(w)."""
    prep = _prepare(reward, action, pscore, action_dist, position, None, True, False)
    return _run("snips", prep, _check_clip(clip), n_bootstrap, confidence, random_state, n_threads)


def direct_method(reward: Any, action: Any, action_dist: Any, estimated_rewards: Any, *, position: Any = None,
                  n_bootstrap: int = 1000, confidence: float = 0.95, random_state: Any = None,
                  n_threads: int | None = 1) -> Estimate:
    """Direct method: mean over rounds of sum_a pi_e(a|x) q^(x, a)."""
    prep = _prepare(reward, action, None, action_dist, position, estimated_rewards, False, True)
    return _run("dm", prep, np.inf, n_bootstrap, confidence, random_state, n_threads)


def doubly_robust(reward: Any, action: Any, pscore: Any, action_dist: Any, estimated_rewards: Any, *,
                  position: Any = None, clip: float = np.inf, n_bootstrap: int = 1000, confidence: float = 0.95,
                  random_state: Any = None, n_threads: int | None = 1) -> Estimate:
    """Doubly robust: DM + min(w, clip) (r - q^(x, a))."""
    prep = _prepare(reward, action, pscore, action_dist, position, estimated_rewards, True, True)
    return _run("dr", prep, _check_clip(clip), n_bootstrap, confidence, random_state, n_threads)


def switch_dr(reward: Any, action: Any, pscore: Any, action_dist: Any, estimated_rewards: Any, *,
              position: Any = None, tau: float = 1.0, n_bootstrap: int = 1000, confidence: float = 0.95,
              random_state: Any = None, n_threads: int | None = 1) -> Estimate:
    """Switch-DR: DR on rounds with weight <= tau, the direct method alone on the rest."""
    prep = _prepare(reward, action, pscore, action_dist, position, estimated_rewards, True, True)
    return _run("switch-dr", prep, _check_clip(tau, "tau"), n_bootstrap, confidence, random_state, n_threads)


for _f in (ips, snips, doubly_robust, switch_dr):
    _f.__doc__ = (_f.__doc__ or "") + "\n" + _DOC_COMMON


def evaluate_policy(reward: Any, action: Any, pscore: Any, action_dist: Any, *, position: Any = None,
                    estimated_rewards: Any = None, clip: float = np.inf, tau: float = 1.0,
                    n_bootstrap: int = 1000, confidence: float = 0.95, random_state: Any = None,
                    n_threads: int | None = 1) -> pd.DataFrame:
    """Every estimator on the same log: one row each (value, low, high)."""
    common = dict(position=position, n_bootstrap=n_bootstrap, confidence=confidence, random_state=random_state,
                  n_threads=n_threads)
    out = [ips(reward, action, pscore, action_dist, clip=clip, **common),
           snips(reward, action, pscore, action_dist, clip=clip, **common)]
    if estimated_rewards is not None:
        out += [direct_method(reward, action, action_dist, estimated_rewards, **common),
                doubly_robust(reward, action, pscore, action_dist, estimated_rewards, clip=clip, **common),
                switch_dr(reward, action, pscore, action_dist, estimated_rewards, tau=tau, **common)]
    return pd.DataFrame([{"estimator": e.estimator, "value": e.value, "low": e.low, "high": e.high,
                          "n_rounds": e.n_rounds} for e in out]).set_index("estimator")


def replay(policy: Any, contexts: Any, action: Any, reward: Any, *, learn: bool = True, batch_size: int = 1,
           n_bootstrap: int = 1000, confidence: float = 0.95, random_state: Any = None) -> Estimate:
    """Replay (Li et al. 2011) of a bandit policy over uniformly random logs.

    The policy (a :mod:`recforge.bandits` policy whose arms are the logged actions) chooses an
    arm for each logged round in order; rounds where it agrees with the logged action count,
    with their reward, and (``learn=True``) are fed back to the policy. The estimate is the mean
    reward of the matched rounds; the interval bootstraps the matched rewards. ``batch_size``
    rounds are chosen with the same state before learning (1 is Li et al.'s exact procedure).
    Unbiased when the logging policy chose uniformly at random.
    """
    r = _rewards(reward)
    n = r.size
    act = np.asarray(action)
    if act.shape != (n,):
        raise ValueError(f"action must have one logged action per round ({n}), got shape {act.shape}")
    policy.arm_index(np.unique(act))  # every logged action must be an arm of the policy
    x = None
    if contexts is not None:
        x = np.asarray(contexts, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"contexts must have one row per logged round ({n}), got shape {x.shape}")
    batch_size = check_positive_int(batch_size, "batch_size")
    matched = []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        xb = x[start:stop] if x is not None else None
        chosen, _ = policy.select(xb, n=stop - start, return_propensities=False)
        hit = np.flatnonzero(chosen == act[start:stop])
        if hit.size == 0:
            continue
        matched.append(r[start:stop][hit])
        if learn:
            policy.update(chosen[hit], r[start:stop][hit], xb[hit] if xb is not None else None)
    if not matched:
        raise ValueError("the policy never agreed with a logged action: replay has no rounds to estimate from")
    m = np.concatenate(matched)
    prep = _Prepared(m, None, None, None, m)
    est = _run("dm", prep, np.inf, n_bootstrap, confidence, random_state, 1)
    return Estimate("replay", est.value, est.low, est.high, est.confidence, int(m.size))


# ---------------------------------------------------------------------------------------------
# reward model for DM / DR
# ---------------------------------------------------------------------------------------------
class RewardModel:
    """Ridge regression of the reward per (action, position) on the contexts.

    ``fit(contexts, action, reward, position)`` then ``predict(contexts)`` gives the
    ``estimated_rewards`` (rounds x actions x positions) that DM, DR and Switch-DR use. Each
    (action, position) has its own ridge model with an intercept; ``l2`` shrinks the
    coefficients (not the intercept) towards zero, and a cell without data predicts the
    overall mean reward. ``contexts=None`` gives the per-cell mean reward (with ``l2``
    pseudo-observations at the overall mean).
    """

    def __init__(self, n_actions: int, len_list: int = 1, *, l2: float = 1.0) -> None:
        self.n_actions = n_actions
        self.len_list = len_list
        self.l2 = l2

    def fit(self, contexts: Any, action: Any, reward: Any, position: Any = None) -> RewardModel:
        r = _rewards(reward)
        n = r.size
        n_actions = check_positive_int(self.n_actions, "n_actions")
        len_list = check_positive_int(self.len_list, "len_list")
        a = _actions(action, n, n_actions)
        pos = _positions(position, n, len_list)
        x = np.zeros((n, 0)) if contexts is None else np.asarray(contexts, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != n or not np.isfinite(x).all():
            raise ValueError(f"contexts must be a finite 2-D array with one row per round ({n})")
        d = x.shape[1]
        self.mean_ = float(r.mean())
        self.coef_ = np.zeros((n_actions, len_list, d))
        self.intercept_ = np.full((n_actions, len_list), self.mean_)
        l2 = float(self.l2)
        for act in range(n_actions):
            for p in range(len_list):
                rows = np.flatnonzero((a == act) & (pos == p))
                if rows.size == 0:
                    continue
                if d == 0:
                    self.intercept_[act, p] = (r[rows].sum() + l2 * self.mean_) / (rows.size + l2)
                    continue
                xs = x[rows]
                xm = xs.mean(axis=0)
                rm = r[rows].mean()
                xc = xs - xm
                w = np.linalg.solve(xc.T @ xc + l2 * np.eye(d), xc.T @ (r[rows] - rm))
                self.coef_[act, p] = w
                self.intercept_[act, p] = rm - xm @ w
        return self

    def predict(self, contexts: Any = None, n_rounds: int | None = None) -> np.ndarray:
        if not hasattr(self, "coef_"):
            from .base import NotFittedError

            raise NotFittedError("this RewardModel is not fitted yet; call fit(contexts, action, reward) first")
        d = self.coef_.shape[2]
        if contexts is None:
            if d:
                raise ValueError("the model was fitted with contexts: pass contexts to predict")
            n = check_positive_int(n_rounds, "n_rounds")
            return np.broadcast_to(self.intercept_, (n,) + self.intercept_.shape).copy()
        x = np.asarray(contexts, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"contexts must have {d} features per row, got shape {x.shape}")
        return np.einsum("nd,apd->nap", x, self.coef_) + self.intercept_[None]


# ---------------------------------------------------------------------------------------------
# Open Bandit Dataset
# ---------------------------------------------------------------------------------------------
@dataclass
class OpenBanditData:
    """One (behaviour policy, campaign) of the Open Bandit Dataset.

    ``action`` is the item index, ``position`` is 0-based (0 = left, 1 = centre, 2 = right),
    ``reward`` the click, ``pscore`` the logging policy's probability of the item at that
    position. ``context`` is the one-hot encoded user features followed by the user-item
    affinities; ``item_context`` the item table (numeric first column, hashed categories).
    """

    behavior_policy: str
    campaign: str
    n_actions: int
    len_list: int
    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    context: np.ndarray
    timestamp: pd.Series
    item_context: pd.DataFrame
    frame: pd.DataFrame = field(repr=False)

    @property
    def n_rounds(self) -> int:
        return int(self.action.size)

    @property
    def on_policy_value(self) -> float:
        """The behaviour policy's own value: the mean click of its log."""
        return float(self.reward.mean())


def read_open_bandit(path: str | Path, behavior_policy: str = "random", campaign: str = "men") -> OpenBanditData:
    """Read ``{path}/{behavior_policy}/{campaign}/{campaign}.csv`` and its ``item_context.csv``.

    ``path`` is the folder that holds ``random/`` and ``bts/`` (the Open Bandit Dataset layout,
    full or small sample).
    """
    if behavior_policy not in ("random", "bts"):
        raise ValueError(f"behavior_policy must be 'random' or 'bts', got {behavior_policy!r}")
    if campaign not in ("all", "men", "women"):
        raise ValueError(f"campaign must be 'all', 'men' or 'women', got {campaign!r}")
    folder = Path(path) / behavior_policy / campaign
    log_file = folder / f"{campaign}.csv"
    item_file = folder / "item_context.csv"
    for f in (log_file, item_file):
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: point path at the Open Bandit Dataset folder with random/ and bts/")
    try:
        df = pd.read_csv(log_file, index_col=0)
        items = pd.read_csv(item_file, index_col=0)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{folder} does not hold readable Open Bandit CSV files ({exc})") from exc
    needed = {"timestamp", "item_id", "position", "click", "propensity_score"}
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"{log_file} is not an Open Bandit log: columns {sorted(missing)} are missing")
    if df.empty:
        raise ValueError(f"{log_file} has no rounds")
    n_actions = int(items["item_id"].max()) + 1 if "item_id" in items else int(df["item_id"].max()) + 1
    action = df["item_id"].to_numpy(np.int64)
    if action.min() < 0 or action.max() >= n_actions:
        raise ValueError(f"{log_file} has item ids outside the {n_actions} items of item_context.csv")
    position = df["position"].to_numpy(np.int64) - 1
    if position.min() < 0:
        raise ValueError(f"{log_file} has positions below 1 (OBD positions are 1, 2, 3)")
    reward = df["click"].to_numpy(np.float64)
    pscore = df["propensity_score"].to_numpy(np.float64)
    user_cols = [c for c in df.columns if c.startswith("user_feature")]
    affinity_cols = [c for c in df.columns if c.startswith("user-item_affinity")]
    onehot = pd.get_dummies(df[user_cols].astype(str), drop_first=False).to_numpy(np.float64)
    context = np.hstack([onehot, df[affinity_cols].to_numpy(np.float64)]) if affinity_cols else onehot
    return OpenBanditData(
        behavior_policy=behavior_policy,
        campaign=campaign,
        n_actions=n_actions,
        len_list=int(position.max()) + 1,
        action=action,
        position=position,
        reward=reward,
        pscore=pscore,
        context=np.ascontiguousarray(context),
        timestamp=pd.to_datetime(df["timestamp"]),
        item_context=items,
        frame=df,
    )
