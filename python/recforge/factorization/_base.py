"""What every latent-factor recommender shares: scoring, exact top-k and similar items from
NumPy factor arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..base import IdKind, Recommender
from ..retrieval import _raw_topk_dot, topk_dot

__all__ = ["FactorRecommender"]


class FactorRecommender(Recommender):
    """Base of models whose score is a dot product of a user vector and an item vector.

    Subclasses keep ``user_factors_`` (n_users x f) and ``item_factors_`` (n_items x f) and may
    add biases by overriding :meth:`_user_vectors` / :meth:`_item_vectors`, which return the
    augmented vectors whose dot product is the score (e.g. ``[p_u, 1]`` and ``[q_i, b_i]``).
    """

    _learned: tuple[str, ...] = ("user_factors_", "item_factors_")

    # -- the vectors whose dot product is the score --------------------------------------
    def _user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.user_factors_[user_idx], dtype=np.float32)

    def _item_vectors(self) -> np.ndarray:
        return np.ascontiguousarray(self.item_factors_, dtype=np.float32)

    def _scoring_items(self) -> np.ndarray:
        """``_item_vectors()``, checked once and cached until the learned arrays change.

        Models that update factor arrays in place must call :meth:`_invalidate_vectors`."""
        key = tuple(id(getattr(self, name, None)) for name in self._learned)
        cache = getattr(self, "_vectors_cache", None)
        if cache is None or cache[0] != key:
            vectors = np.ascontiguousarray(self._item_vectors(), dtype=np.float32)
            if not np.isfinite(vectors).all():
                raise ValueError(f"{type(self).__name__} has NaN or infinite item factors; fit it again")
            cache = (key, vectors)
            self._vectors_cache = cache
        return cache[1]

    def _invalidate_vectors(self) -> None:
        self._vectors_cache = None
        self.index_ = None

    def _recommend_indices(
        self,
        user_idx: np.ndarray,
        n: int,
        exclude: sp.csr_matrix | None,
        candidates: np.ndarray | None,
        n_threads: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(self._user_vectors(user_idx), dtype=np.float32)
        index = getattr(self, "index_", None)
        if index is not None:
            labels, scores = index.query(queries, n, exclude=exclude, candidates=candidates, n_threads=n_threads)
            return labels.astype(np.int32), scores
        return _raw_topk_dot(queries, self._scoring_items(), n, exclude, candidates, n_threads)

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self._user_vectors(user_idx) @ self._scoring_items().T

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        u = self._user_vectors(user_idx)
        v = self._scoring_items()[item_idx]
        return np.einsum("ij,ij->i", u, v, dtype=np.float32)

    # -- indexes ------------------------------------------------------------------------------
    def fit(self, interactions: Any, *args: Any, **kwargs: Any) -> FactorRecommender:
        self._vectors_cache = None
        self.index_ = None
        self.similar_index_ = None
        return super().fit(interactions, *args, **kwargs)

    def build_index(self, kind: str = "hnsw", *, similar_items: bool = False, **params: Any) -> FactorRecommender:
        """Serve ``recommend`` (and optionally ``similar_items``) through a vector index.

        Parameters
        ----------
        kind : {"hnsw", "exact"}
            :class:`~recforge.retrieval.HNSWIndex` (approximate, exactly re-scored) or
            :class:`~recforge.retrieval.ExactIndex`.
        similar_items : bool
            Also index the normalised item factors (cosine) for ``similar_items``.
        **params
            Index parameters (``M``, ``ef_construction``, ``ef``, ``random_state``, ``n_threads``).

        The index is dropped by ``fit`` and is not stored by ``save`` (build it again after
        ``load``); pickling keeps it.
        """
        from ..retrieval import ExactIndex, HNSWIndex

        self._check_fitted()
        kinds = {"hnsw": HNSWIndex, "exact": ExactIndex}
        if kind not in kinds:
            raise ValueError(f"kind must be 'hnsw' or 'exact', got {kind!r}")
        params.setdefault("n_threads", self._threads())
        labels = np.arange(self.n_items_)
        self.index_ = kinds[kind]("ip", **params).build(self._scoring_items(), labels)
        self.similar_index_ = None
        if similar_items:
            self.similar_index_ = kinds[kind]("cosine", **params).build(
                np.asarray(self.item_factors_, dtype=np.float32), labels
            )
        return self

    def drop_index(self) -> None:
        """Go back to exact brute-force search."""
        self.index_ = None
        self.similar_index_ = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_vectors_cache", None)
        return state

    # -- item-to-item -----------------------------------------------------------------------
    def similar_items(
        self, items: Any, n: int = 10, *, ids: IdKind = "raw", n_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items closest by cosine of their factors (the item itself left out)."""
        self._check_fitted()
        from .._validation import check_positive_int, resolve_threads

        n = check_positive_int(n, "n")
        if n > self.n_items_ - 1:
            raise ValueError(f"n={n} is larger than the {self.n_items_ - 1} other items; ask for at most that")
        single = np.ndim(items) == 0
        idx = self._to_index(np.atleast_1d(items), "item", ids)
        vectors = np.asarray(self.item_factors_, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        exclude = sp.csr_matrix(
            (np.ones(len(idx), dtype=np.float32), idx, np.arange(len(idx) + 1)), shape=(len(idx), self.n_items_)
        )
        threads = resolve_threads(self._threads() if n_threads is None else n_threads)
        index = getattr(self, "similar_index_", None)
        if index is not None:
            labels, scores = index.query(unit[idx], n, exclude=exclude, n_threads=threads)
            top = labels.astype(np.int32)
        else:
            top, scores = topk_dot(unit[idx], unit, n, exclude=exclude, n_threads=threads)
        out = top if ids == "index" else self._to_raw_items(top)
        return (out[0], scores[0]) if single else (out, scores)

    def _check_state(self) -> None:
        super()._check_state()
        uf, itf = np.asarray(self.user_factors_), np.asarray(self.item_factors_)
        if uf.ndim != 2 or itf.ndim != 2 or uf.shape[0] != self.n_users_ or itf.shape[0] != self.n_items_:
            raise ValueError("factor arrays do not match the number of users and items")
        if uf.shape[1] != itf.shape[1]:
            raise ValueError("user and item factors have different widths")
