"""Hybrid recommenders: weighted and switching combinations of any recforge recommenders,
and feature factorization fed with interaction and content features.

Scores of different models live on different scales (cosines, dot products, counts), so each
model's scores are first normalised per user over the catalog (z-scores by default) and then
combined:

* :class:`WeightedHybrid` adds the normalised scores with fixed weights.
* :class:`SwitchingHybrid` takes every item's score from one model or the other by an explicit
  rule: items (or users) with fewer than ``threshold`` training interactions are scored by the
  ``cold`` model (e.g. :class:`~recforge.content.ContentRecommender`), the others by the
  ``warm`` model (e.g. :class:`~recforge.ALS`); scores are normalised within each part.
* :class:`~recforge.factorization.FeatureFactorization` (re-exported here) is the model-level
  hybrid: identity features carry the collaborative signal, content features the rest.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import _REGISTRY, Recommender
from .data import Interactions
from .factorization import FeatureFactorization

__all__ = ["WeightedHybrid", "SwitchingHybrid", "FeatureFactorization", "normalize_scores"]

_NORMALIZE = ("zscore", "minmax", "none")


def normalize_scores(scores: np.ndarray, how: str = "zscore") -> np.ndarray:
    """Row-wise normalised scores: ``"zscore"`` (mean 0, standard deviation 1 over the finite
    entries of a row), ``"minmax"`` (to [0, 1]) or ``"none"``; non-finite entries stay as they
    are and constant rows become 0."""
    if how not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {how!r}")
    s = np.asarray(scores, dtype=np.float64)
    if how == "none":
        return s.astype(np.float32)
    finite = np.isfinite(s)
    masked = np.where(finite, s, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        if how == "zscore":
            center = np.nanmean(masked, axis=1, keepdims=True)
            scale = np.nanstd(masked, axis=1, keepdims=True)
        else:
            center = np.nanmin(masked, axis=1, keepdims=True)
            scale = np.nanmax(masked, axis=1, keepdims=True) - center
        center = np.nan_to_num(center)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        out = np.where(finite, (s - center) / scale, s)
    const = ~np.isfinite(np.nanstd(masked, axis=1)) | (np.nanstd(masked, axis=1) == 0) if s.size else np.zeros(0, bool)
    out[const] = np.where(finite[const], 0.0, out[const])
    return out.astype(np.float32)


class _Ensemble(Recommender):
    """Sub-models fitted on the same interactions, persisted inside one model file."""

    models: Any

    def _members(self) -> list[Recommender]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_members(self, members: list[Recommender]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_members(self) -> list[Recommender]:
        members = self._members()
        for m in members:
            if not isinstance(m, Recommender):
                raise ValueError(f"hybrid members must be recforge recommenders, got {type(m).__name__}")
        return members

    def _fit_members(self, data: Interactions) -> None:
        for m in self._check_members():
            m.fit(data)
            if m.n_users_ != data.n_users or m.n_items_ != data.n_items:
                raise ValueError(f"{type(m).__name__} did not keep the users and items of the interactions")

    def _member_scores(self, user_idx: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(m._dense_scores(user_idx), dtype=np.float32) for m in self._members()]

    # -- persistence: members are stored under prefixes ------------------------------------------
    def _json_params(self) -> str:
        # the members are stored as arrays of their own (see _state_arrays), not as parameters
        clone = object.__new__(type(self))
        for name in self._param_names():
            setattr(clone, name, None if name in ("models", "warm", "cold") else getattr(self, name))
        return Recommender._json_params(clone)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        state = super()._state_arrays()
        members = self._members()
        state["members_"] = np.asarray(len(members), dtype=np.int64)
        for k, m in enumerate(members):
            state[f"member{k}__class__"] = np.array(type(m).__name__)
            state[f"member{k}__params__"] = np.array(m._json_params())
            for name, value in m._state_arrays().items():
                state[f"member{k}/{name}"] = value
        return state

    def _restore_arrays(self, state: dict[str, np.ndarray]) -> None:
        super()._restore_arrays(state)
        if "members_" not in state:
            raise ValueError("the hybrid's members are missing")
        members = []
        for k in range(int(state["members_"])):
            name = str(state[f"member{k}__class__"])
            target = _REGISTRY.get(name)
            if target is None:
                raise ValueError(f"unknown member class {name!r}")
            model = target(**json.loads(str(state[f"member{k}__params__"])))
            prefix = f"member{k}/"
            model._restore_arrays({key[len(prefix):]: v for key, v in state.items() if key.startswith(prefix)})
            model._check_state()
            members.append(model)
        self._set_members(members)


class WeightedHybrid(_Ensemble):
    """The weighted sum of the per-user normalised scores of several recommenders.

    Parameters
    ----------
    models : list of recforge recommenders
        Fitted together on the same interactions by :meth:`fit`.
    weights : list of float, optional
        One weight per model (default: equal weights).
    normalize : {"zscore", "minmax", "none"}
        How each model's scores of a user are normalised before they are added.
    n_threads : int
        Threads for top-k selection (0 = all cores).
    """

    def __init__(
        self,
        models: Sequence[Recommender] | None = None,
        *,
        weights: Sequence[float] | None = None,
        normalize: str = "zscore",
        n_threads: int = 0,
    ) -> None:
        self.models = models
        self.weights = weights
        self.normalize = normalize
        self.n_threads = n_threads

    def _members(self) -> list[Recommender]:
        if not self.models:
            raise ValueError("WeightedHybrid needs models=[...] (at least one recommender)")
        return list(self.models)

    def _set_members(self, members: list[Recommender]) -> None:
        self.models = members

    def _weights(self) -> np.ndarray:
        n = len(self._members())
        if self.weights is None:
            return np.full(n, 1.0 / n)
        w = np.asarray(self.weights, dtype=np.float64)
        if w.shape != (n,) or not np.isfinite(w).all():
            raise ValueError(f"weights must be {n} finite numbers, one per model, got {self.weights!r}")
        return w

    def _fit(self, data: Interactions) -> None:
        self._weights()
        normalize_scores(np.zeros((1, 1)), self.normalize)
        self._fit_members(data)

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        w = self._weights()
        total = None
        for wk, s in zip(w, self._member_scores(user_idx)):
            part = wk * normalize_scores(s, self.normalize)
            total = part if total is None else total + part
        return np.asarray(total, dtype=np.float32)


class SwitchingHybrid(_Ensemble):
    """Score with one recommender or another by an explicit rule on training interactions.

    Parameters
    ----------
    warm, cold : recforge recommenders
        E.g. a collaborative model (``warm``) and a content model (``cold``).
    threshold : int
        With ``on="item"``: items with fewer than ``threshold`` training interactions take the
        ``cold`` model's (normalised) score, the others the ``warm`` model's. With
        ``on="user"``: users with fewer than ``threshold`` training interactions are scored
        entirely by the ``cold`` model.
    on : {"item", "user"}
    normalize : {"zscore", "minmax", "none"}
        Per-user normalisation of both models' scores, so that switched scores are comparable:
        with ``on="item"`` the cold model's scores are normalised over the cold items and the
        warm model's over the warm items (so a user's best cold items compete with their best
        warm ones); with ``on="user"`` each model's scores over the whole catalog.
    n_threads : int
        Threads for top-k selection (0 = all cores).

    Attributes
    ----------
    cold_items_ : bool array
        With ``on="item"``, the items scored by the cold model.
    """

    def __init__(
        self,
        warm: Recommender | None = None,
        cold: Recommender | None = None,
        *,
        threshold: int = 5,
        on: str = "item",
        normalize: str = "zscore",
        n_threads: int = 0,
    ) -> None:
        self.warm = warm
        self.cold = cold
        self.threshold = threshold
        self.on = on
        self.normalize = normalize
        self.n_threads = n_threads

    def _members(self) -> list[Recommender]:
        if self.warm is None or self.cold is None:
            raise ValueError("SwitchingHybrid needs a warm and a cold recommender")
        return [self.warm, self.cold]

    def _set_members(self, members: list[Recommender]) -> None:
        self.warm, self.cold = members

    def _threshold(self) -> int:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"threshold must be an integer >= 0, got {t!r}")
        return int(t)

    def _fit(self, data: Interactions) -> None:
        if self.on not in ("item", "user"):
            raise ValueError(f"on must be 'item' or 'user', got {self.on!r}")
        self._threshold()
        normalize_scores(np.zeros((1, 1)), self.normalize)
        self._fit_members(data)

    @property
    def cold_items_(self) -> np.ndarray:
        self._check_fitted()
        return np.bincount(self.seen_.indices, minlength=self.n_items_) < self._threshold()

    @property
    def cold_users_(self) -> np.ndarray:
        self._check_fitted()
        return np.diff(self.seen_.indptr) < self._threshold()

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        warm_s, cold_s = self._member_scores(user_idx)
        if self.on == "user":
            cold_users = self.cold_users_[np.asarray(user_idx)][:, None]
            return np.where(cold_users, normalize_scores(cold_s, self.normalize),
                            normalize_scores(warm_s, self.normalize)).astype(np.float32)
        # each model is normalised over the items it scores, so the best cold and the best
        # warm items of a user get comparable scores
        cold = self.cold_items_
        out = np.empty_like(warm_s, dtype=np.float32)
        if cold.any():
            out[:, cold] = normalize_scores(cold_s[:, cold], self.normalize)
        if (~cold).any():
            out[:, ~cold] = normalize_scores(warm_s[:, ~cold], self.normalize)
        return out
