"""Bandit policies for exploration and cold start.

Context-free policies (:class:`EpsilonGreedy`, :class:`UCB1`, :class:`ThompsonSampling`,
:class:`Softmax`) keep per-arm counts and reward sums; linear contextual policies
(:class:`LinUCB`, disjoint or hybrid with shared arm features, and :class:`LinTS`) keep a ridge
regression per arm. Selection and updates run in C++ on batches of contexts, with the GIL
released; the state lives in NumPy arrays on the object (``counts_``, ``sums_``, ``A_inv_``,
``b_``, ...), so policies pickle and ``save``/``load`` to ``.npz`` files.

Every ``select`` returns the chosen arms **and their propensities**: the probability, under the
policy's own randomness and its current state, that it shows that arm at that slot. They are
exact for epsilon-greedy, UCB1, LinUCB (ties broken uniformly at random) and softmax (first
slot); for Thompson sampling, linear Thompson sampling and later softmax slots they are
estimated from ``n_draws`` (default 1000) fresh draws of the policy's randomness, with a random
stream derived from ``random_state`` and the call number, separate from the one that chose.

A typical online loop::

    policy = rf.bandits.LinUCB(alpha=1.0, random_state=0)
    policy.fit(logged_arms, logged_rewards, logged_contexts)   # or start empty: add_arms(...)
    arms, propensities = policy.select(contexts)
    policy.update(arms, rewards, contexts)

New arms enter with :meth:`Bandit.add_arms` (optionally with a feature vector, and
``warm_start=True`` to borrow the statistics of the most similar trained arms); hybrid LinUCB
scores a new arm from its features before its first impression.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

import numpy as np

from . import _core
from ._persistence import json_params, read_npz, write_npz
from .base import Estimator, lookup_ids
from ._validation import check_positive_int, resolve_threads

__all__ = [
    "Bandit",
    "EpsilonGreedy",
    "UCB1",
    "ThompsonSampling",
    "Softmax",
    "LinUCB",
    "LinTS",
    "load",
    "ColdStartRecommender",
]

FORMAT_VERSION = 1
_REGISTRY: dict[str, type[Bandit]] = {}
_core_b = _core.bandits


def _check_real(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                strict_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value <= low if strict_low else value < low):
        raise ValueError(f"{name} must be {'>' if strict_low else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def _as_contexts(x: Any, d: int | None, name: str = "contexts") -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - ragged input
        raise ValueError(f"{name} must be a 2-D numeric array: {exc}") from exc
    if arr.ndim == 1 and d is not None and arr.shape[0] == d:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows x features), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if d is not None and arr.shape[1] != d:
        raise ValueError(
            f"{name} must have {d} features per row (the width the policy was fitted with), "
            f"got {arr.shape[1]}"
        )
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite values; clean or impute them first")
    return arr


def _as_rewards(r: Any, n: int) -> np.ndarray:
    arr = np.asarray(r)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"rewards must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64).ravel()
    if arr.shape[0] != n:
        raise ValueError(f"rewards must have one value per arm played ({n}), got {arr.shape[0]}")
    if arr.size and not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"rewards contain {bad} NaN or infinite values; drop those events or impute them")
    return arr


class Bandit(Estimator):
    """Base class of the bandit policies: arms, parameters, persistence.

    Subclasses define the hyperparameters in ``__init__`` and the kernels. Arms are named by
    any hashable ids (``arms_`` holds them in index order).
    """

    _learned: ClassVar[tuple[str, ...]] = ()
    _contextual: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # -- arms -------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "arms_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            from .base import NotFittedError

            raise NotFittedError(
                f"this {type(self).__name__} has no arms yet; call fit(decisions, rewards, ...) "
                "or add_arms(arms) first"
            )

    @property
    def n_arms_(self) -> int:
        self._check_fitted()
        return len(self.arms_)

    def _arm_lookup(self) -> dict[Any, int]:
        table = getattr(self, "_lookup", None)
        if table is None or len(table) != len(self.arms_):
            table = {v: i for i, v in enumerate(self.arms_.tolist())}
            self._lookup = table
        return table

    def arm_index(self, arms: Any) -> np.ndarray:
        """Indices of arm ids (IndexError naming unknown ids)."""
        self._check_fitted()
        arr = np.asarray(arms)
        if arr.dtype.kind in "iu" and self.arms_.dtype.kind in "iu" and arr.size:
            # integer ids: a sorted search instead of a dictionary lookup per id
            order = getattr(self, "_order", None)
            if order is None or order.size != self.arms_.size:
                order = np.argsort(self.arms_, kind="stable")
                self._order = order
            sorted_ids = self.arms_[order]
            pos = np.searchsorted(sorted_ids, arr.ravel())
            pos_c = np.minimum(pos, sorted_ids.size - 1)
            found = sorted_ids[pos_c] == arr.ravel()
            if found.all():
                return order[pos_c].astype(np.int32).reshape(arr.shape)
        return lookup_ids(
            self._arm_lookup(), arr, "arm(s)", f"the policy has {len(self.arms_)} arms (add new ones with add_arms)",
            dtype=np.int32,
        )

    def _new_arm_ids(self, arms: Any) -> np.ndarray:
        ids = np.asarray(arms)
        if ids.ndim == 0:
            ids = ids[None]
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("arms must be a non-empty 1-D list of arm ids")
        if len(set(ids.tolist())) != ids.size:
            raise ValueError("arm ids must be unique")
        return ids

    def _init_arms(self, arms: np.ndarray, features: Any, d: int | None) -> None:
        self.arms_ = np.asarray(arms)
        self._lookup = None
        self._order = None
        self.n_calls_ = np.array(0, dtype=np.int64)
        rs = getattr(self, "random_state", None)
        if rs is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        else:
            seed = int(np.random.SeedSequence(int(rs)).generate_state(1, np.uint64)[0])
        self.seed_ = np.array(seed, dtype=np.uint64)
        self.arm_features_ = self._as_features(features, len(arms))
        self._init_state(len(arms), d)

    def _as_features(self, features: Any, n: int, width: int | None = None) -> np.ndarray:
        if features is None:
            return np.zeros((n, 0), dtype=np.float64)
        f = _as_contexts(features, None, "arm features")
        if f.shape[0] != n:
            raise ValueError(f"arm features must have one row per arm ({n}), got {f.shape[0]}")
        if width is not None and f.shape[1] != width:
            raise ValueError(f"arm features must have {width} columns like the existing arms, got {f.shape[1]}")
        return f

    def add_arms(self, arms: Any, features: Any = None, *, warm_start: bool = False, n_neighbors: int = 5,
                 strength: float = 1.0) -> Bandit:
        """Add new arms at run time (with their feature vectors where the policy uses them).

        With ``warm_start=True`` each new arm starts from the statistics of its ``n_neighbors``
        most similar existing arms by cosine similarity of features (see :meth:`warm_start`).
        """
        ids = self._new_arm_ids(arms)
        if not self.is_fitted:
            if warm_start:
                raise ValueError("warm_start needs trained arms to borrow from; the policy has none yet")
            self._init_arms(ids, features, None)
            return self
        clash = [v for v in ids.tolist() if v in self._arm_lookup()]
        if clash:
            raise ValueError(f"arm(s) {clash[:5]!r} already exist; remove them first or use other ids")
        width = self.arm_features_.shape[1]
        if features is None and width > 0:
            raise ValueError(f"this policy's arms have {width} features: pass features for the new arms")
        f = self._as_features(features, len(ids), width if width > 0 or len(self.arms_) else None)
        if width == 0 and f.shape[1] > 0:
            raise ValueError("the existing arms have no features; features cannot be given to new ones only")
        old = len(self.arms_)
        self.arms_ = np.concatenate([self.arms_, ids]) if self.arms_.dtype == ids.dtype or old == 0 else np.array(
            self.arms_.tolist() + ids.tolist(), dtype=object)
        self._lookup = None
        self._order = None
        self.arm_features_ = np.concatenate([self.arm_features_, f]) if f.shape[1] else np.zeros(
            (old + len(ids), 0), dtype=np.float64)
        self._grow_state(len(ids))
        if warm_start:
            self.warm_start(ids, n_neighbors=n_neighbors, strength=strength)
        return self

    def remove_arms(self, arms: Any) -> Bandit:
        """Remove arms (and their statistics) at run time."""
        idx = self.arm_index(np.atleast_1d(arms))
        keep = np.ones(len(self.arms_), dtype=bool)
        keep[idx] = False
        if not keep.any():
            raise ValueError("cannot remove every arm: a policy needs at least one")
        self.arms_ = self.arms_[keep]
        self.arm_features_ = self.arm_features_[keep]
        self._lookup = None
        self._order = None
        self._shrink_state(keep)
        return self

    def warm_start(self, arms: Any, *, n_neighbors: int = 5, strength: float = 1.0) -> Bandit:
        """Initialise the statistics of ``arms`` from their nearest other arms by features.

        Each arm's statistics become ``strength`` times the similarity-weighted average of the
        statistics of the ``n_neighbors`` arms (among those not being warm-started) with the
        highest positive cosine similarity of ``arm_features_``; an arm without any positively
        similar neighbour keeps its prior.
        """
        self._check_fitted()
        n_neighbors = check_positive_int(n_neighbors, "n_neighbors")
        strength = _check_real(strength, "strength", low=0.0)
        if self.arm_features_.shape[1] == 0:
            raise ValueError("warm_start needs arm features: add the arms with features=...")
        targets = self.arm_index(np.atleast_1d(arms))
        sources = np.setdiff1d(np.arange(len(self.arms_)), targets)
        if sources.size == 0:
            raise ValueError("warm_start needs other trained arms to borrow from")
        f = self.arm_features_
        norms = np.linalg.norm(f, axis=1)
        norms[norms == 0] = 1.0
        unit = f / norms[:, None]
        sims = unit[targets] @ unit[sources].T
        for row, t in enumerate(targets):
            s = sims[row]
            order = np.argsort(-s, kind="stable")[:n_neighbors]
            order = order[s[order] > 0]
            if order.size == 0:
                continue
            w = s[order] / s[order].sum()
            self._borrow(int(t), sources[order], w * strength)
        return self

    # -- selection --------------------------------------------------------------------------
    def _seed(self) -> int:
        seq = np.random.SeedSequence([int(self.seed_), int(self.n_calls_)])
        self.n_calls_ = np.array(int(self.n_calls_) + 1, dtype=np.int64)
        return int(seq.generate_state(1, np.uint64)[0])

    def _mask(self, candidates: Any, n_rows: int) -> np.ndarray | None:
        if candidates is None:
            return None
        arr = np.asarray(candidates)
        n = len(self.arms_)
        if arr.ndim == 2 and arr.dtype == bool:
            if arr.shape != (n_rows, n) and arr.shape != (1, n):
                raise ValueError(f"a candidate mask must have shape ({n_rows}, {n}) (rows x arms), got {arr.shape}")
            return np.ascontiguousarray(arr, dtype=np.uint8)
        if arr.ndim == 0:
            arr = arr[None]
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("candidates must be a non-empty list of arm ids or a boolean mask (rows x arms)")
        mask = np.zeros((1, n), dtype=np.uint8)
        mask[0, self.arm_index(arr)] = 1
        return mask

    def _rows(self, contexts: Any, n: int | None) -> tuple[np.ndarray | None, int]:
        raise NotImplementedError

    def select(self, contexts: Any = None, k: int = 1, candidates: Any = None, *, n: int | None = None,
               return_propensities: bool = True, n_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Choose ``k`` distinct arms for each context (row).

        Parameters
        ----------
        contexts : array (n_rows x n_features)
            Contexts; context-free policies accept ``None`` with ``n`` rows (default 1).
        k : int
            Arms per row (a slate, best slot first).
        candidates : list of arm ids or boolean mask (n_rows x n_arms), optional
            The arms each row may choose from.
        return_propensities : bool
            Compute the propensities (``False`` skips the Monte Carlo estimate where there is one).

        Returns
        -------
        arms, propensities
            Arm ids and the probability of each chosen arm at its slot; shape ``(n_rows,)`` when
            ``k == 1``, else ``(n_rows, k)``. Without propensities the second array is empty.
        """
        self._check_fitted()
        k = check_positive_int(k, "k")
        x, n_rows = self._rows(contexts, n)
        mask = self._mask(candidates, n_rows)
        n_cand = len(self.arms_) if mask is None else int(mask.sum(axis=1).min())
        if k > n_cand:
            raise ValueError(f"k={k} is larger than the {n_cand} candidate arms; ask for at most {n_cand}")
        threads = resolve_threads(self.n_threads if n_threads is None else n_threads)
        idx, prop = self._select(x, n_rows, k, mask, bool(return_propensities), self._seed(), threads)
        arms = self.arms_[idx]
        if k == 1:
            return arms[:, 0], (prop[:, 0] if return_propensities else prop.reshape(0))
        return arms, prop

    def probabilities(self, contexts: Any = None, candidates: Any = None, *, n: int | None = None,
                      n_threads: int | None = None) -> np.ndarray:
        """Probability of each arm (columns in ``arms_`` order) being chosen first, per row."""
        self._check_fitted()
        x, n_rows = self._rows(contexts, n)
        mask = self._mask(candidates, n_rows)
        threads = resolve_threads(self.n_threads if n_threads is None else n_threads)
        return self._probabilities(x, n_rows, mask, self._seed(), threads)

    # -- learning ---------------------------------------------------------------------------
    def fit(self, decisions: Any, rewards: Any, contexts: Any = None, *, arm_features: Any = None) -> Bandit:
        """Start over from logged (arm, reward[, context]) events; returns ``self``.

        The arms are the ``arms`` hyperparameter if given, else the distinct logged decisions.
        """
        arms = getattr(self, "arms", None)
        dec = np.asarray(decisions).ravel()
        if arms is None:
            if dec.size == 0:
                raise ValueError("cannot fit on an empty log without arms: pass arms=[...] or some decisions")
            arms = np.unique(dec)
        ids = self._new_arm_ids(arms)
        x = None
        if self._contextual:
            x = _as_contexts(contexts, None) if contexts is not None else None
            if x is None:
                raise ValueError(f"{type(self).__name__} needs contexts (rows x features)")
        self._init_arms(ids, arm_features, x.shape[1] if x is not None else None)
        if dec.size:
            self.update(dec, rewards, x)
        return self

    def partial_fit(self, decisions: Any, rewards: Any, contexts: Any = None, *, arm_features: Any = None) -> Bandit:
        """Learn from a further logged batch; on a policy without arms, the same as ``fit``."""
        if not self.is_fitted:
            return self.fit(decisions, rewards, contexts, arm_features=arm_features)
        return self.update(decisions, rewards, contexts)

    def update(self, arms: Any, rewards: Any, contexts: Any = None) -> Bandit:
        """Observe the rewards of the arms played (with the contexts they were played in)."""
        self._check_fitted()
        idx = self.arm_index(np.asarray(arms).ravel()).astype(np.int32)
        r = _as_rewards(rewards, idx.size)
        self._check_rewards(r)
        self._update(idx, r, contexts)
        return self

    def _check_rewards(self, r: np.ndarray) -> None:
        pass

    # -- persistence ------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        names = ("arms_", "arm_features_", "seed_", "n_calls_") + self._learned
        state = {n: np.asarray(getattr(self, n)) for n in names if getattr(self, n, None) is not None}
        if state["arms_"].dtype.kind == "O":
            state["arms_"] = state["arms_"].astype(str)
        return state

    def _json_params(self) -> str:
        return json_params(self.get_params(), "policy")

    def save(self, path: str | Path) -> Path:
        """Write the policy to an ``.npz`` file (no pickle inside); returns the path."""
        self._check_fitted()
        return write_npz(path, type(self).__name__, FORMAT_VERSION, self._json_params(), self._state())

    @classmethod
    def load(cls, path: str | Path) -> Bandit:
        """Read a policy written by :meth:`save`."""
        name, params, contents = read_npz(path, "policy", FORMAT_VERSION, required=("arms_",))
        target = _REGISTRY.get(name)
        if target is None or (cls is not Bandit and not issubclass(target, cls)):
            raise ValueError(f"{path} holds a {name!r}, not a {cls.__name__}")
        policy = target(**params)
        missing = set(target._learned) - set(contents)
        if missing:
            raise ValueError(f"{path} is incomplete: missing {sorted(missing)}")
        for k, v in contents.items():
            setattr(policy, k, v)
        policy._lookup = None
        return policy

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_lookup", "_order")}
        state["__format_version__"] = FORMAT_VERSION
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if state.pop("__format_version__", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError("pickled by a newer recforge; upgrade recforge")
        self.__dict__.update(state)
        self._lookup = None
        self._order = None

    # -- hooks ------------------------------------------------------------------------------
    def _init_state(self, n_arms: int, d: int | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _grow_state(self, n_new: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _shrink_state(self, keep: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _borrow(self, target: int, sources: np.ndarray, weights: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# context-free policies
# ---------------------------------------------------------------------------------------------
class _ContextFree(Bandit):
    _learned = ("counts_", "sums_")
    _policy_code: ClassVar[int] = 0

    def _init_state(self, n_arms: int, d: int | None) -> None:
        self.counts_ = np.zeros(n_arms, dtype=np.float64)
        self.sums_ = np.zeros(n_arms, dtype=np.float64)

    def _grow_state(self, n_new: int) -> None:
        self.counts_ = np.concatenate([self.counts_, np.zeros(n_new)])
        self.sums_ = np.concatenate([self.sums_, np.zeros(n_new)])

    def _shrink_state(self, keep: np.ndarray) -> None:
        self.counts_ = self.counts_[keep].copy()
        self.sums_ = self.sums_[keep].copy()

    def _borrow(self, target: int, sources: np.ndarray, weights: np.ndarray) -> None:
        self.counts_[target] = float(weights @ self.counts_[sources])
        self.sums_[target] = float(weights @ self.sums_[sources])

    @property
    def means_(self) -> np.ndarray:
        """Mean observed reward of every arm (NaN for arms never played)."""
        self._check_fitted()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts_ > 0, self.sums_ / np.maximum(self.counts_, 1), np.nan)

    def _rows(self, contexts: Any, n: int | None) -> tuple[np.ndarray | None, int]:
        if contexts is not None:
            arr = np.asarray(contexts)
            if arr.ndim == 0:
                raise ValueError("contexts must be an array of rows (or None with n=...)")
            return None, int(arr.shape[0])
        return None, 1 if n is None else check_positive_int(n, "n")

    def _kernel_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _select(self, x, n_rows, k, mask, with_prop, seed, threads):
        return _core_b.mab_select(self.counts_, self.sums_, mask, n_rows, k, with_prop, policy=self._policy_code,
                                  seed=seed, n_threads=threads, **self._kernel_params())

    def _probabilities(self, x, n_rows, mask, seed, threads):
        return _core_b.mab_probabilities(self.counts_, self.sums_, mask, n_rows, policy=self._policy_code, seed=seed,
                                         n_threads=threads, **self._kernel_params())

    def _update(self, idx: np.ndarray, r: np.ndarray, contexts: Any) -> None:
        _core_b.mab_update(self.counts_, self.sums_, idx, r)


class EpsilonGreedy(_ContextFree):
    """Play the best mean reward; explore a uniformly random arm with probability ``epsilon``.

    ``decay`` multiplies epsilon by ``1 / (1 + decay * t)`` after ``t`` observed events.
    """

    _policy_code = 0

    def __init__(self, epsilon: float = 0.1, *, decay: float = 0.0, initial_mean: float = 0.0, arms: Any = None,
                 random_state: int | None = None, n_threads: int = 1) -> None:
        self.epsilon = epsilon
        self.decay = decay
        self.initial_mean = initial_mean
        self.arms = arms
        self.random_state = random_state
        self.n_threads = n_threads

    @property
    def current_epsilon_(self) -> float:
        """Epsilon after decay, at the current number of observed events."""
        eps = _check_real(self.epsilon, "epsilon", low=0.0, high=1.0)
        decay = _check_real(self.decay, "decay", low=0.0)
        return eps / (1.0 + decay * float(self.counts_.sum()))

    def _kernel_params(self) -> dict[str, Any]:
        return {"epsilon": self.current_epsilon_, "initial_mean": _check_real(self.initial_mean, "initial_mean")}


class UCB1(_ContextFree):
    """Upper confidence bound: mean + sqrt(alpha * 2 ln N / n_a); unplayed arms first."""

    _policy_code = 1

    def __init__(self, alpha: float = 1.0, *, arms: Any = None, random_state: int | None = None,
                 n_threads: int = 1) -> None:
        self.alpha = alpha
        self.arms = arms
        self.random_state = random_state
        self.n_threads = n_threads

    def _kernel_params(self) -> dict[str, Any]:
        return {"alpha": _check_real(self.alpha, "alpha", low=0.0)}


class ThompsonSampling(_ContextFree):
    """Thompson sampling with a Beta-Bernoulli (rewards in [0, 1]) or Gaussian posterior.

    ``likelihood="bernoulli"``: each arm's mean ~ Beta(prior_a + sum r, prior_b + n - sum r).
    ``likelihood="gaussian"``: real-valued rewards with noise ``noise_sd``; the mean has a Normal
    prior at ``prior_mean`` worth ``prior_precision`` observations.
    """

    def __init__(self, likelihood: str = "bernoulli", *, prior_a: float = 1.0, prior_b: float = 1.0,
                 prior_mean: float = 0.0, prior_precision: float = 1.0, noise_sd: float = 1.0, n_draws: int = 1000,
                 arms: Any = None, random_state: int | None = None, n_threads: int = 1) -> None:
        self.likelihood = likelihood
        self.prior_a = prior_a
        self.prior_b = prior_b
        self.prior_mean = prior_mean
        self.prior_precision = prior_precision
        self.noise_sd = noise_sd
        self.n_draws = n_draws
        self.arms = arms
        self.random_state = random_state
        self.n_threads = n_threads

    @property
    def _policy_code(self) -> int:  # type: ignore[override]
        if self.likelihood == "bernoulli":
            return 2
        if self.likelihood == "gaussian":
            return 3
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")

    def _kernel_params(self) -> dict[str, Any]:
        return {
            "prior_a": _check_real(self.prior_a, "prior_a", low=0.0, strict_low=True),
            "prior_b": _check_real(self.prior_b, "prior_b", low=0.0, strict_low=True),
            "prior_mean": _check_real(self.prior_mean, "prior_mean"),
            "prior_precision": _check_real(self.prior_precision, "prior_precision", low=0.0, strict_low=True),
            "noise_sd": _check_real(self.noise_sd, "noise_sd", low=0.0, strict_low=True),
            "n_draws": check_positive_int(self.n_draws, "n_draws"),
        }

    def _check_rewards(self, r: np.ndarray) -> None:
        if self._policy_code == 2 and r.size and (r.min() < 0 or r.max() > 1):
            raise ValueError(
                "Bernoulli Thompson sampling needs rewards in [0, 1] (clicks); use likelihood='gaussian' "
                "for real-valued rewards"
            )


class Softmax(_ContextFree):
    """Boltzmann exploration: P(a) proportional to exp(mean_a / temperature)."""

    _policy_code = 4

    def __init__(self, temperature: float = 0.1, *, initial_mean: float = 0.0, n_draws: int = 1000,
                 arms: Any = None, random_state: int | None = None, n_threads: int = 1) -> None:
        self.temperature = temperature
        self.initial_mean = initial_mean
        self.n_draws = n_draws
        self.arms = arms
        self.random_state = random_state
        self.n_threads = n_threads

    def _kernel_params(self) -> dict[str, Any]:
        return {
            "temperature": _check_real(self.temperature, "temperature", low=0.0, strict_low=True),
            "initial_mean": _check_real(self.initial_mean, "initial_mean"),
            "n_draws": check_positive_int(self.n_draws, "n_draws"),
        }


# ---------------------------------------------------------------------------------------------
# linear contextual policies
# ---------------------------------------------------------------------------------------------
class _Linear(Bandit):
    _contextual = True
    _learned = ("A_inv_", "b_")
    _policy_code: ClassVar[int] = 0

    def _hybrid(self) -> bool:
        return bool(getattr(self, "hybrid", False))

    def _init_state(self, n_arms: int, d: int | None) -> None:
        l2 = _check_real(self.l2, "l2", low=0.0, strict_low=True)
        if d is None:
            d = self.n_features
        if d is None:
            raise ValueError(
                f"{type(self).__name__} needs the context width: pass n_features=... or fit with contexts"
            )
        d = check_positive_int(d, "n_features")
        self.A_inv_ = np.tile(np.eye(d) / l2, (n_arms, 1, 1))
        self.b_ = np.zeros((n_arms, d))
        self.counts_ = np.zeros(n_arms)
        if self._hybrid():
            m = self.arm_features_.shape[1]
            if m == 0:
                raise ValueError("hybrid LinUCB needs arm features (arm_features=... or add_arms(..., features=))")
            k = d * m
            self.A0_ = np.eye(k) * l2
            self.b0_ = np.zeros(k)
            self.B_ = np.zeros((n_arms, d, k))

    def _state(self) -> dict[str, np.ndarray]:
        state = super()._state()
        state["counts_"] = self.counts_
        if self._hybrid():
            state.update(A0_=self.A0_, b0_=self.b0_, B_=self.B_)
        return state

    @property
    def n_features_(self) -> int:
        self._check_fitted()
        return int(self.b_.shape[1])

    def _grow_state(self, n_new: int) -> None:
        d = self.n_features_
        l2 = _check_real(self.l2, "l2", low=0.0, strict_low=True)
        self.A_inv_ = np.concatenate([self.A_inv_, np.tile(np.eye(d) / l2, (n_new, 1, 1))])
        self.b_ = np.concatenate([self.b_, np.zeros((n_new, d))])
        self.counts_ = np.concatenate([self.counts_, np.zeros(n_new)])
        if self._hybrid():
            self.B_ = np.concatenate([self.B_, np.zeros((n_new,) + self.B_.shape[1:])])

    def _shrink_state(self, keep: np.ndarray) -> None:
        if self._hybrid():
            # A0_/b0_ hold the evidence about the shared coefficients with every arm's own
            # coefficients integrated out, so it stays valid when an arm leaves the catalog
            self.B_ = self.B_[keep].copy()
        self.A_inv_ = self.A_inv_[keep].copy()
        self.b_ = self.b_[keep].copy()
        self.counts_ = self.counts_[keep].copy()

    def _borrow(self, target: int, sources: np.ndarray, weights: np.ndarray) -> None:
        if self._hybrid():
            raise ValueError("hybrid LinUCB scores new arms from their features already; warm_start is for "
                             "disjoint models")
        d = self.n_features_
        l2 = float(self.l2)
        A = np.eye(d) * l2
        b = np.zeros(d)
        for s, w in zip(sources, weights):
            A += w * (np.linalg.inv(self.A_inv_[s]) - np.eye(d) * l2)
            b += w * self.b_[s]
        self.A_inv_[target] = np.linalg.inv(A)
        self.b_[target] = b
        self.counts_[target] = float(weights @ self.counts_[sources])

    def _arrays(self) -> dict[str, Any]:
        if self._hybrid():
            return {"arm_features": self.arm_features_, "A0": self.A0_, "b0": self.b0_, "B": self.B_}
        return {}

    def _rows(self, contexts: Any, n: int | None) -> tuple[np.ndarray | None, int]:
        if contexts is None:
            raise ValueError(f"{type(self).__name__} needs contexts (rows x {self.n_features_} features)")
        x = _as_contexts(contexts, self.n_features_)
        if x.shape[0] == 0:
            raise ValueError("contexts has no rows")
        return x, x.shape[0]

    def _select(self, x, n_rows, k, mask, with_prop, seed, threads):
        return _core_b.linear_select(self.A_inv_, self.b_, contexts=x, mask=mask, k=k, with_propensities=with_prop,
                                     policy=self._policy_code, alpha=_check_real(self.alpha, "alpha", low=0.0),
                                     n_draws=check_positive_int(getattr(self, "n_draws", 1000), "n_draws"),
                                     seed=seed, n_threads=threads, **self._arrays())

    def _probabilities(self, x, n_rows, mask, seed, threads):
        return _core_b.linear_probabilities(self.A_inv_, self.b_, contexts=x, mask=mask, policy=self._policy_code,
                                            alpha=_check_real(self.alpha, "alpha", low=0.0),
                                            n_draws=check_positive_int(getattr(self, "n_draws", 1000), "n_draws"),
                                            seed=seed, n_threads=threads, **self._arrays())

    def predict(self, contexts: Any, *, n_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean reward and confidence width of every arm (rows x arms each)."""
        self._check_fitted()
        x, _ = self._rows(contexts, None)
        threads = resolve_threads(self.n_threads if n_threads is None else n_threads)
        return _core_b.linear_scores(self.A_inv_, self.b_, contexts=x, n_threads=threads, **self._arrays())

    def _update(self, idx: np.ndarray, r: np.ndarray, contexts: Any) -> None:
        if contexts is None:
            raise ValueError(f"{type(self).__name__}.update needs the contexts the arms were played in")
        x = _as_contexts(contexts, self.n_features_)
        if x.shape[0] != idx.size:
            raise ValueError(f"contexts must have one row per arm played ({idx.size}), got {x.shape[0]}")
        _core_b.linear_update(self.A_inv_, self.b_, arms=idx, rewards=r, contexts=x, **self._arrays())
        self.counts_ += np.bincount(idx, minlength=self.counts_.size)


class LinUCB(_Linear):
    """LinUCB (Li et al. 2010): ridge regression per arm, score = x.theta_a + alpha * width.

    ``hybrid=True`` adds coefficients shared by all arms over the context crossed with each
    arm's feature vector (``arm_features``, e.g. item content or matrix-factorization item
    embeddings), so an arm never played is scored from its features from its first impression.
    """

    _policy_code = 0

    def __init__(self, alpha: float = 1.0, *, l2: float = 1.0, hybrid: bool = False, n_features: int | None = None,
                 arms: Any = None, random_state: int | None = None, n_threads: int = 1) -> None:
        self.alpha = alpha
        self.l2 = l2
        self.hybrid = hybrid
        self.n_features = n_features
        self.arms = arms
        self.random_state = random_state
        self.n_threads = n_threads


class LinTS(_Linear):
    """Linear Thompson sampling (Agrawal & Goyal 2013) with a ridge posterior per arm.

    The score of arm a for context x is drawn from N(x.theta_a, alpha^2 x^T A_a^-1 x).
    ``hybrid=True`` shares coefficients over context x arm features as in :class:`LinUCB`
    (the arms' scores are then drawn independently from their marginal distributions).
    """

    _policy_code = 1

    def __init__(self, alpha: float = 1.0, *, l2: float = 1.0, hybrid: bool = False, n_features: int | None = None,
                 n_draws: int = 1000, arms: Any = None, random_state: int | None = None, n_threads: int = 1) -> None:
        self.alpha = alpha
        self.l2 = l2
        self.hybrid = hybrid
        self.n_features = n_features
        self.n_draws = n_draws
        self.arms = arms
        self.random_state = random_state
        self.n_threads = n_threads


def load(path: str | Path) -> Bandit:
    """Read any policy written by ``save``."""
    return Bandit.load(path)


# ---------------------------------------------------------------------------------------------
# cold start behind the recommender contract
# ---------------------------------------------------------------------------------------------
from .base import Recommender as _Recommender  # noqa: E402
from .base import _REGISTRY as _MODEL_REGISTRY  # noqa: E402


class ColdStartRecommender(_Recommender):
    """A fitted recommender for warm users, a Thompson-sampling bandit for cold users.

    ``fit`` trains ``recommender`` (default: :class:`~recforge.ALS` with 32 factors) on the
    interactions and a Beta-Bernoulli :class:`ThompsonSampling` policy whose arms are the items.
    Each item's prior is its popularity: ``prior_strength`` pseudo-impressions with a click
    rate equal to the fraction of users who interacted with it, so items nobody interacted
    with yet (cold items) start low but keep being explored.

    * ``recommend`` (the shared contract, deterministic): warm users get the recommender's
      top-n; users without training interactions (or unknown to the model, with
      ``ids="index"`` beyond the fit) get the bandit's posterior-mean ranking.
    * ``serve`` (online): cold users get a Thompson-sampling slate with its propensities,
      warm users the recommender's top-n with propensity 1; every impression is logged
      (:meth:`serving_log`) so it can be evaluated off-policy later.
    * ``feedback(items, rewards)`` updates the bandit with observed clicks.
    """

    def __init__(self, recommender: Any = None, *, prior_strength: float = 20.0, n_draws: int = 1000,
                 random_state: int | None = None, n_threads: int = 0) -> None:
        self.recommender = recommender
        self.prior_strength = prior_strength
        self.n_draws = n_draws
        self.random_state = random_state
        self.n_threads = n_threads

    def _make_base(self) -> _Recommender:
        if self.recommender is not None:
            if not isinstance(self.recommender, _Recommender):
                raise ValueError(f"recommender must be a recforge Recommender, got {type(self.recommender).__name__}")
            import copy

            return copy.deepcopy(self.recommender)
        from .factorization import ALS

        return ALS(factors=32, iterations=10, random_state=self.random_state, n_threads=self.n_threads)

    def _fit(self, data: Any, **fit_params: Any) -> None:
        strength = _check_real(self.prior_strength, "prior_strength", low=0.0, strict_low=True)
        base = self._make_base()
        try:
            base.fit(data, show_progress=False, **fit_params)
        except TypeError:
            base.fit(data, **fit_params)
        self.base_ = base
        n_users, n_items = self.seen_.shape
        self.warm_users_ = np.diff(self.seen_.indptr) > 0
        rate = np.asarray(self.seen_.sum(axis=0)).ravel() / max(n_users, 1)
        policy = ThompsonSampling("bernoulli", n_draws=self.n_draws, random_state=self.random_state, n_threads=1)
        policy.add_arms(np.arange(n_items))
        policy.counts_[:] = strength
        policy.sums_[:] = strength * rate
        self.policy_ = policy
        self._log: list[dict[str, Any]] = []

    def _bandit_scores(self, n_rows: int) -> np.ndarray:
        p = self.policy_
        mean = (p.prior_a + p.sums_) / (p.prior_a + p.prior_b + p.counts_)
        return np.broadcast_to(mean.astype(np.float32), (n_rows, len(mean)))

    def _recommend_indices(self, user_idx, n, exclude, candidates, n_threads):
        from .retrieval import topk_dense

        warm = self.warm_users_[user_idx]
        tops = np.empty((len(user_idx), n), dtype=np.int32)
        vals = np.empty((len(user_idx), n), dtype=np.float32)
        if warm.any():
            rows = np.flatnonzero(warm)
            ex = exclude[rows] if exclude is not None else None
            t, s = self.base_._recommend_indices(user_idx[rows], n, ex, candidates, n_threads)
            tops[rows], vals[rows] = t, s
        if (~warm).any():
            rows = np.flatnonzero(~warm)
            ex = exclude[rows] if exclude is not None else None
            t, s = topk_dense(np.ascontiguousarray(self._bandit_scores(rows.size)), n, exclude=ex,
                              candidates=candidates, n_threads=n_threads)
            tops[rows], vals[rows] = t, s
        return tops, vals

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        out = np.empty(len(user_idx), dtype=np.float32)
        warm = self.warm_users_[user_idx]
        if warm.any():
            out[warm] = self.base_._score_pairs(user_idx[warm], item_idx[warm])
        if (~warm).any():
            out[~warm] = self._bandit_scores(1)[0][item_idx[~warm]]
        return out

    def serve(self, users: Any, n: int = 1, *, items: Any = None, ids: str = "raw") -> pd.DataFrame:
        """Choose ``n`` items per user online; returns and logs one row per impression.

        Columns: user, item, slot, propensity (probability of the item at that slot), source
        ("recommender" or "bandit").
        """
        import pandas as pd

        self._check_fitted()
        n = check_positive_int(n, "n")
        user_idx = self._to_index(np.atleast_1d(users), "user", ids)
        cand = None
        if items is not None:
            cand = np.unique(self._to_index(np.atleast_1d(items), "item", ids))
        warm = self.warm_users_[user_idx]
        rows = []
        if warm.any():
            w_items, _ = self.recommend(user_idx[warm], n=n, ids="index", items=cand)
            for u, its in zip(user_idx[warm], w_items):
                rows += [(u, i, s, 1.0, "recommender") for s, i in enumerate(its) if i >= 0]
        if (~warm).any():
            cold = user_idx[~warm]
            arms, prop = self.policy_.select(n=cold.size, k=n, candidates=cand)
            arms, prop = arms.reshape(cold.size, n), prop.reshape(cold.size, n)
            for u, its, ps in zip(cold, arms, prop):
                rows += [(u, int(i), s, float(p), "bandit") for s, (i, p) in enumerate(zip(its, ps))]
        df = pd.DataFrame(rows, columns=["user", "item", "slot", "propensity", "source"])
        if ids == "raw":
            df["user"] = self.user_ids_[df["user"].to_numpy(np.int64)]
            df["item"] = self.item_ids_[df["item"].to_numpy(np.int64)]
        self._log.extend(df.to_dict("records"))
        return df

    def feedback(self, items: Any, rewards: Any, *, ids: str = "raw") -> ColdStartRecommender:
        """Observed rewards (clicks in [0, 1]) of served items: updates the cold-start bandit."""
        self._check_fitted()
        idx = self._to_index(np.atleast_1d(items), "item", ids).astype(np.int64)
        self.policy_.update(idx, rewards)
        return self

    def serving_log(self) -> pd.DataFrame:
        """Every impression served since ``fit`` (or load), with its propensity."""
        import pandas as pd

        self._check_fitted()
        return pd.DataFrame(getattr(self, "_log", []), columns=["user", "item", "slot", "propensity", "source"])

    # -- persistence: the base model's arrays travel inside this model's file ---------------
    def _json_params(self) -> str:
        # the recommender object is not a JSON value: its class, parameters and fitted arrays
        # are stored with the base model's state instead
        params = {k: v for k, v in self.get_params().items() if k != "recommender"}
        params["recommender"] = None
        return json.dumps(params)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        state = super()._state_arrays()
        state["warm_users_"] = self.warm_users_
        state["policy_counts_"] = self.policy_.counts_
        state["policy_sums_"] = self.policy_.sums_
        state["policy_seed_"] = np.asarray(self.policy_.seed_)
        state["policy_n_calls_"] = np.asarray(self.policy_.n_calls_)
        state["base_class_"] = np.array(type(self.base_).__name__)
        state["base_params_"] = np.array(self.base_._json_params())
        for k, v in self.base_._state_arrays().items():
            state["base__" + k] = v
        return state

    def _restore_arrays(self, state: dict[str, np.ndarray]) -> None:
        super()._restore_arrays(state)
        for key in ("warm_users_", "policy_counts_", "policy_sums_", "base_class_", "base_params_"):
            if key not in state:
                raise ValueError(f"{key} is missing")
        self.warm_users_ = state["warm_users_"].astype(bool)
        base_cls = _MODEL_REGISTRY.get(str(state["base_class_"]))
        if base_cls is None:
            raise ValueError(f"unknown base recommender class {str(state['base_class_'])!r}")
        base = base_cls(**json.loads(str(state["base_params_"])))
        base._restore_arrays({k[6:]: v for k, v in state.items() if k.startswith("base__")})
        base._check_state()
        self.base_ = base
        policy = ThompsonSampling("bernoulli", n_draws=self.n_draws, random_state=self.random_state, n_threads=1)
        policy.add_arms(np.arange(len(self.item_ids_)))
        policy.counts_ = state["policy_counts_"].astype(np.float64)
        policy.sums_ = state["policy_sums_"].astype(np.float64)
        policy.seed_ = state.get("policy_seed_", policy.seed_)
        policy.n_calls_ = state.get("policy_n_calls_", policy.n_calls_)
        self.policy_ = policy
        self._log = []

    def _check_state(self) -> None:
        super()._check_state()
        if self.warm_users_.shape != (self.seen_.shape[0],) or self.policy_.counts_.shape != (self.seen_.shape[1],):
            raise ValueError("cold-start state does not match the interaction shape")
