"""What every latent-factor recommender shares: scoring, exact top-k and similar items from
NumPy factor arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..base import IdKind, Recommender
from ..retrieval import _raw_topk_dot, topk_dot

__all__ = ["FactorRecommender"]

# A float64 model's exact top-k searches this many extra items in float32 before it re-scores
# and re-sorts them in float64 (see FactorRecommender).
_RESCORE_EXTRA = 16
_RESCORE_BLOCK = 1 << 21  # float64 entries of the gathered item vectors per block of users


class FactorRecommender(Recommender):
    """Base of models whose score is a dot product of a user vector and an item vector.

    Subclasses keep ``user_factors_`` (n_users x f) and ``item_factors_`` (n_items x f) and may
    add biases by overriding :meth:`_user_vectors` / :meth:`_item_vectors`, which return the
    augmented vectors whose dot product is the score (e.g. ``[p_u, 1]`` and ``[q_i, b_i]``).

    Factors are float32, or float64 for models fitted with ``dtype=np.float64``. A float64
    model's ``score`` and dense scores are computed in float64. Its ``recommend`` and
    ``similar_items`` select with the float32 top-k kernel (or the vector index, which holds
    float32 vectors), taking ``n + 16`` items, then compute their scores in float64 and return
    the best ``n`` of them by the float64 scores (float64 arrays). The items returned can differ
    from an exact float64 top-``n`` only where float32 rounding moves an item past 16 others,
    i.e. among scores equal to about 1e-7 relative.
    """

    _learned: tuple[str, ...] = ("user_factors_", "item_factors_")

    # -- the vectors whose dot product is the score --------------------------------------
    def _vector_dtype(self) -> type[np.floating]:
        """float64 for a model whose factors are float64, float32 otherwise."""
        return np.float64 if np.asarray(self.item_factors_).dtype == np.float64 else np.float32

    def _user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.user_factors_[user_idx], dtype=self._vector_dtype())

    def _item_vectors(self) -> np.ndarray:
        return np.ascontiguousarray(self.item_factors_, dtype=self._vector_dtype())

    def _scoring_items(self) -> np.ndarray:
        """``_item_vectors()``, checked once and cached until the learned arrays change.

        Models that update factor arrays in place must call :meth:`_invalidate_vectors`."""
        return self._cached_vectors()[1]

    def _scoring_items32(self) -> np.ndarray:
        """``_scoring_items()`` as float32 (the same array for a float32 model)."""
        return self._cached_vectors()[2]

    def _cached_vectors(self) -> tuple[Any, np.ndarray, np.ndarray]:
        key = tuple(id(getattr(self, name, None)) for name in self._learned)
        cache = getattr(self, "_vectors_cache", None)
        if cache is None or cache[0] != key:
            items = self._item_vectors()
            vectors = np.ascontiguousarray(items, dtype=np.float64 if items.dtype == np.float64 else np.float32)
            if not np.isfinite(vectors).all():
                raise ValueError(f"{type(self).__name__} has NaN or infinite item factors; fit it again")
            vectors32 = np.ascontiguousarray(vectors, dtype=np.float32)
            if not np.isfinite(vectors32).all():
                raise ValueError(f"{type(self).__name__} has item factors beyond the float32 range; fit it again")
            cache = (key, vectors, vectors32)
            self._vectors_cache = cache
        return cache

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
        queries = self._user_vectors(user_idx)
        index = getattr(self, "index_", None)
        items = self._scoring_items()
        if queries.dtype != np.float64:
            queries = np.ascontiguousarray(queries, dtype=np.float32)
            if index is not None:
                labels, scores = index.query(queries, n, exclude=exclude, candidates=candidates, n_threads=n_threads)
                return labels.astype(np.int32), scores
            return _raw_topk_dot(queries, items, n, exclude, candidates, n_threads)
        n_search = items.shape[0] if candidates is None else len(candidates)

        def select(q32: np.ndarray, wide: int, ex: Any) -> np.ndarray:
            if index is not None:
                labels, _ = index.query(q32, wide, exclude=ex, candidates=candidates, n_threads=n_threads)
                return labels.astype(np.int32)
            return _raw_topk_dot(q32, self._scoring_items32(), wide, ex, candidates, n_threads)[0]

        return _rescored_topk(np.ascontiguousarray(queries), items, n, n_search, exclude, select)

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self._user_vectors(user_idx) @ self._scoring_items().T

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        u = self._user_vectors(user_idx)
        v = self._scoring_items()[item_idx]
        return np.einsum("ij,ij->i", u, v, dtype=np.result_type(u.dtype, v.dtype))

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
        ``load``); pickling keeps it. Indexes hold float32 vectors: a float64 model's factors
        are indexed as float32, and the items an index finds are re-scored in float64.
        """
        from ..retrieval import ExactIndex, HNSWIndex

        self._check_fitted()
        kinds = {"hnsw": HNSWIndex, "exact": ExactIndex}
        if kind not in kinds:
            raise ValueError(f"kind must be 'hnsw' or 'exact', got {kind!r}")
        params.setdefault("n_threads", self._threads())
        labels = np.arange(self.n_items_)
        self.index_ = kinds[kind]("ip", **params).build(self._scoring_items32(), labels)
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
        vectors = np.asarray(self.item_factors_, dtype=self._vector_dtype())
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        exclude = sp.csr_matrix(
            (np.ones(len(idx), dtype=np.float32), idx, np.arange(len(idx) + 1)), shape=(len(idx), self.n_items_)
        )
        threads = resolve_threads(self._threads() if n_threads is None else n_threads)
        index = getattr(self, "similar_index_", None)
        unit32 = np.ascontiguousarray(unit, dtype=np.float32)

        def select(q32: np.ndarray, k: int, ex: Any) -> tuple[np.ndarray, np.ndarray]:
            if index is not None:
                labels, scores = index.query(q32, k, exclude=ex, n_threads=threads)
                return labels.astype(np.int32), scores
            return topk_dot(q32, unit32, k, exclude=ex, n_threads=threads)

        if unit.dtype == np.float64:
            top, scores = _rescored_topk(np.ascontiguousarray(unit[idx]), unit, n, self.n_items_, exclude,
                                         lambda q32, k, ex: select(q32, k, ex)[0])
        else:
            top, scores = select(unit32[idx], n, exclude)
        out = top if ids == "index" else self._to_raw_items(top)
        return (out[0], scores[0]) if single else (out, scores)

    def _check_state(self) -> None:
        super()._check_state()
        uf, itf = np.asarray(self.user_factors_), np.asarray(self.item_factors_)
        if uf.ndim != 2 or itf.ndim != 2 or uf.shape[0] != self.n_users_ or itf.shape[0] != self.n_items_:
            raise ValueError("factor arrays do not match the number of users and items")
        if uf.shape[1] != itf.shape[1]:
            raise ValueError("user and item factors have different widths")


def _rescored_topk(
    queries: np.ndarray, items: np.ndarray, n: int, n_search: int, exclude: sp.csr_matrix | None,
    select: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` of float64 ``queries`` x ``items``: ``select(queries32, wide, exclude)`` finds
    the best ``wide = n + _RESCORE_EXTRA`` item indices per row in float32 (-1 where fewer
    remain); their float64 scores then decide the ``n`` returned, best first, ties by the
    smaller index. Returns (int32 items, float64 scores), padded with -1 / -inf."""
    n_rows = queries.shape[0]
    wide = min(n + _RESCORE_EXTRA, max(n_search, n))
    top = np.full((n_rows, n), -1, dtype=np.int32)
    vals = np.full((n_rows, n), -np.inf, dtype=np.float64)
    block = max(1, _RESCORE_BLOCK // max(wide * items.shape[1], 1))
    for start in range(0, n_rows, block):
        stop = min(n_rows, start + block)
        q = queries[start:stop]
        ex = exclude[start:stop] if exclude is not None else None
        labels = np.asarray(select(np.ascontiguousarray(q, dtype=np.float32), wide, ex), dtype=np.int32)
        valid = labels >= 0
        safe = np.where(valid, labels, 0)
        scores = np.einsum("ij,ikj->ik", q, items[safe])
        scores[~valid] = -np.inf
        # best score first, then the smaller index; padded slots (-inf, -1) last
        order = np.lexsort((np.where(valid, labels, np.iinfo(np.int32).max), -scores), axis=-1)[:, :n]
        top[start:stop] = np.take_along_axis(labels, order, axis=1)
        vals[start:stop] = np.take_along_axis(scores, order, axis=1)
    return top, vals
