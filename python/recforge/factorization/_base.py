"""What every latent-factor recommender shares: scoring, exact top-k and similar items from
NumPy factor arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..base import IdKind, Recommender
from ..retrieval import topk_dot

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

    def _recommend_indices(
        self,
        user_idx: np.ndarray,
        n: int,
        exclude: sp.csr_matrix | None,
        candidates: np.ndarray | None,
        n_threads: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        return topk_dot(
            self._user_vectors(user_idx), self._item_vectors(), n, exclude=exclude,
            candidates=candidates, n_threads=n_threads,
        )

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self._user_vectors(user_idx) @ self._item_vectors().T

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        u = self._user_vectors(user_idx)
        v = self._item_vectors()[item_idx]
        return np.einsum("ij,ij->i", u, v, dtype=np.float32)

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
