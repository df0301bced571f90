"""Serving helpers: warm-up and a small LRU cache of recommendations.

The cache keeps the latest lists of the most recently asked users. Tell it about new
interactions with :meth:`RecommendationCache.add_interactions` (or :meth:`invalidate`): that
user's cached lists are dropped, and the new items are excluded from their next answers even
before the model is refitted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from .base import Recommender

__all__ = ["RecommendationCache", "warm_up"]


def warm_up(model: Recommender, n_queries: int = 32, n: int = 10, *, random_state: int = 0) -> float:
    """Answer a few queries so that first real requests find memory and indexes paged in.

    Returns the mean latency of the warm-up queries in milliseconds.
    """
    model._check_fitted()
    rng = np.random.default_rng(random_state)
    users = rng.integers(0, model.n_users_, size=max(1, n_queries))
    n = min(n, model.n_items_)
    t0 = time.perf_counter()
    for u in users:
        model.recommend(int(u), n=n, ids="index", exclude_seen=False)
    return (time.perf_counter() - t0) * 1000.0 / len(users)


class RecommendationCache:
    """A thread-safe LRU cache in front of ``model.recommend`` for single users.

    Parameters
    ----------
    model : Recommender
        A fitted model (or Pipeline).
    maxsize : int
        Users kept; the least recently used is evicted first.
    """

    def __init__(self, model: Recommender, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        model._check_fitted()
        self.model = model
        self.maxsize = int(maxsize)
        self._cache: OrderedDict[tuple[Any, int, bool], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._extra_seen: dict[Any, set] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def recommend(self, user: Any, n: int = 10, *, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``model.recommend(user, n)`` for one raw user id, from the cache when possible."""
        key = (user, int(n), bool(exclude_seen))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.hits += 1
                items, scores = self._cache[key]
                return items.copy(), scores.copy()
            self.misses += 1
            extra = set(self._extra_seen.get(user, ()))
        if exclude_seen and extra:
            pool = min(self.model.n_items_, n + len(extra))
            items, scores = self.model.recommend(user, n=pool, exclude_seen=True)
            keep = np.array([i not in extra for i in items.tolist()], dtype=bool)
            items, scores = items[keep][:n], scores[keep][:n]
        else:
            items, scores = self.model.recommend(user, n=n, exclude_seen=exclude_seen)
        with self._lock:
            self._cache[key] = (items, scores)
            self._cache.move_to_end(key)
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
        return items.copy(), scores.copy()

    def invalidate(self, user: Any = None) -> None:
        """Drop the cached lists of one user (or of everybody with no argument)."""
        with self._lock:
            if user is None:
                self._cache.clear()
                return
            for key in [k for k in self._cache if k[0] == user]:
                del self._cache[key]

    def add_interactions(self, user: Any, items: Any) -> None:
        """Record new interactions of a user: invalidates the user and excludes the items."""
        with self._lock:
            self._extra_seen.setdefault(user, set()).update(np.atleast_1d(items).tolist())
        self.invalidate(user)

    def __len__(self) -> int:
        return len(self._cache)
