"""Non-personalised baselines: most popular items and a random ranking.

Every personalised model should beat both; if it does not, suspect the data or the split.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from .base import Recommender, check_random_state
from .data import Interactions
from .retrieval import topk_dot

__all__ = ["Popularity", "Random"]


class Popularity(Recommender):
    """Recommend the most popular items, the same list for everybody (minus their seen items).

    Parameters
    ----------
    weighting : {"count", "weight"}
        ``"count"`` counts the users who interacted with an item; ``"weight"`` sums the
        interaction weights (e.g. play counts or ratings).
    half_life : float, optional
        Time decay: an interaction ``half_life`` timestamp units older than the newest one
        counts half as much. Needs timestamps in the training data.
    n_threads : int
        Threads for recommending; 0 means all cores.

    Attributes
    ----------
    item_scores_ : float32 array of shape (n_items,)
        The popularity of every item.
    """

    _learned = ("item_scores_",)

    def __init__(
        self,
        weighting: Literal["count", "weight"] = "count",
        half_life: float | None = None,
        n_threads: int = 0,
    ) -> None:
        self.weighting = weighting
        self.half_life = half_life
        self.n_threads = n_threads

    def _fit(self, data: Interactions) -> None:
        if self.weighting not in ("count", "weight"):
            raise ValueError(f"weighting must be 'count' or 'weight', got {self.weighting!r}")
        matrix = data.matrix.tocsr()
        weights = (
            np.ones(matrix.nnz, dtype=np.float64)
            if self.weighting == "count"
            else matrix.data.astype(np.float64)
        )
        if self.half_life is not None:
            if not isinstance(self.half_life, numbers.Real) or not self.half_life > 0:
                raise ValueError(f"half_life must be a positive number, got {self.half_life!r}")
            if data.timestamps is None:
                raise ValueError(
                    "half_life needs timestamps: build the Interactions with a timestamp column, "
                    "or use half_life=None"
                )
            t = np.asarray(data.timestamps, dtype=np.float64)
            weights = weights * np.exp2(-(t.max() - t) / float(self.half_life))
        scores = np.bincount(matrix.indices, weights=weights, minlength=matrix.shape[1])
        self.item_scores_ = scores.astype(np.float32)

    def _recommend_indices(
        self,
        user_idx: np.ndarray,
        n: int,
        exclude: sp.csr_matrix | None,
        candidates: np.ndarray | None,
        n_threads: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        # A rank-one factor model: every user's vector is 1, every item's is its popularity.
        ones = np.ones((len(user_idx), 1), dtype=np.float32)
        return topk_dot(
            ones, self.item_scores_[:, None], n, exclude=exclude, candidates=candidates,
            n_threads=n_threads,
        )

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores_, (len(user_idx), self.n_items_))

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self.item_scores_[item_idx]

    def _check_state(self) -> None:
        super()._check_state()
        if self.item_scores_.shape != (self.n_items_,):
            raise ValueError("item_scores_ does not match the number of items")


_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64's): a good bijective hash of each value."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        return x ^ (x >> np.uint64(31))


class Random(Recommender):
    """Rank items uniformly at random, with a fixed random order per user.

    The score of (user, item) is a hash of (seed, user, item) mapped to [0, 1), so the same
    fitted model (or a saved and loaded copy) always gives the same recommendations, and
    different users get independent orders.

    Parameters
    ----------
    random_state : int, numpy Generator or None
        Seed of the random orders.
    n_threads : int
        Threads for the top-k selection; 0 means all cores.
    """

    _learned = ("seed_",)

    def __init__(self, random_state: Any = None, n_threads: int = 0) -> None:
        self.random_state = random_state
        self.n_threads = n_threads

    def _fit(self, data: Interactions) -> None:
        rng = check_random_state(self.random_state)
        self.seed_ = np.asarray(rng.integers(0, 2**63 - 1, dtype=np.int64))

    def _hash_scores(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        seed = np.uint64(int(self.seed_))
        with np.errstate(over="ignore"):
            h = _mix64(
                _mix64(seed ^ (user_idx.astype(np.uint64) * _GOLDEN)) ^ item_idx.astype(np.uint64)
            )
        return ((h >> np.uint64(40)).astype(np.float32)) * np.float32(1.0 / (1 << 24))

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        items = np.arange(self.n_items_, dtype=np.int64)
        return self._hash_scores(user_idx[:, None], items[None, :])

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self._hash_scores(user_idx, item_idx)
