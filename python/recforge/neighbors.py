"""Neighbourhood collaborative filtering: item-item and user-user k-NN, for top-N and ratings.

Two families share one C++ similarity kernel (:func:`similarity_matrix`):

Top-N from implicit feedback
    :class:`ItemKNN` and :class:`UserKNN` score an item by summing similarities over the
    user's history (item-based) or over the user's most similar users (user-based). The
    similarity keeps the ``k`` best neighbours of every item (or user), so it takes
    O(items x k) memory, and is exposed as a SciPy CSR matrix ``similarity_``.

Rating prediction from explicit feedback
    :class:`KNNBasic`, :class:`KNNWithMeans`, :class:`KNNWithZScore` and
    :class:`KNNBaseline` predict a rating from the ``k`` most similar users who rated the item
    (or the ``k`` most similar items the user rated), with the formulas of Surprise; they use
    the biases of :class:`BaselineOnly` where a baseline is needed.

Similarities (``similarity=``), between two rows x_i and x_j of the interaction matrix (items
x users for item-based models, users x items for user-based ones):

``"dot"``
    <x_i, x_j>
``"cosine"``
    <x_i, x_j> / (‖x_i‖ ‖x_j‖)
``"adjusted_cosine"``
    cosine after subtracting each column's mean (each user's mean rating for item-item)
``"pearson"``
    cosine after subtracting each row's mean
``"jaccard"``
    #(S_i ∩ S_j) / #(S_i ∪ S_j) over the sets of non-zero entries
``"asymmetric_cosine"``
    <x_i, x_j> / (‖x_i‖^(2 alpha) ‖x_j‖^(2 (1 - alpha))); alpha = 0.5 is cosine, for binary
    data #(S_i ∩ S_j) / (#S_i^alpha #S_j^(1 - alpha))
``"msd"``
    1 / (1 + mean squared difference over the co-rated columns)
``"pearson_baseline"``
    cosine of the residuals r - (mu + b_row + b_col) over the co-rated columns, shrunk by
    (n - 1) / (n - 1 + shrink) (shrink defaults to 100)
``"bm25"``
    dot product of BM25-weighted rows (implicit's ``BM25Recommender``)
``"tfidf"``
    cosine of TF-IDF-weighted rows (implicit's ``TFIDFRecommender``)

Every similarity may be shrunk by n / (n + shrink), where n is the co-support (the number of
columns both rows have), and pairs with fewer than ``min_support`` co-rated columns get none.
The top-N models compute norms and means over whole rows (an absent entry is a zero); the
rating models compute them over the co-rated columns of each pair only, as Surprise does
(``co_rated=True`` in :func:`similarity_matrix`).
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _core
from ._validation import RowLists, as_index_array, check_positive_int, csr_arrays, resolve_threads
from .base import IdKind, Recommender, as_interactions, raw_ids
from .data import Interactions

__all__ = [
    "SIMILARITIES",
    "BaselineOnly",
    "ItemKNN",
    "KNNBaseline",
    "KNNBasic",
    "KNNWithMeans",
    "KNNWithZScore",
    "UserKNN",
    "similarity_matrix",
]

SIMILARITIES: tuple[str, ...] = tuple(
    sorted(_core.neighbors.SIMILARITY_CODES, key=lambda n: _core.neighbors.SIMILARITY_CODES[n])
)
SimilarityName = Literal[
    "dot",
    "cosine",
    "adjusted_cosine",
    "pearson",
    "jaccard",
    "asymmetric_cosine",
    "msd",
    "pearson_baseline",
    "bm25",
    "tfidf",
]
# Similarities whose entry weights depend on statistics of the whole matrix: an update of a
# few rows changes every similarity, so partial_fit recomputes them all.
_GLOBAL_WEIGHTS = ("bm25", "pearson_baseline")
# Similarities whose entry weights depend on column statistics (column means or idf).
_COLUMN_WEIGHTS = ("adjusted_cosine", "tfidf")


# ----------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------
def _check_similarity_name(name: Any) -> str:
    if not isinstance(name, str) or name not in SIMILARITIES:
        raise ValueError(f"unknown similarity {name!r}; choose one of {list(SIMILARITIES)}")
    return name


def _check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if low is not None and (v < low or (low_open and v == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return v


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _csr32(matrix: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = matrix if sp.issparse(matrix) or isinstance(matrix, RowLists) else sp.csr_matrix(matrix)
    return csr_arrays(m, m.shape, "matrix")


def _csr_from_result(
    result: tuple[np.ndarray, np.ndarray, np.ndarray], shape: tuple[int, int]
) -> sp.csr_matrix:
    indptr, indices, data = result
    return sp.csr_matrix((data, indices, indptr), shape=shape)


# ----------------------------------------------------------------------------------------
# similarity
# ----------------------------------------------------------------------------------------
def similarity_matrix(
    matrix: Any,
    similarity: SimilarityName = "cosine",
    *,
    k: int | None = None,
    co_rated: bool = False,
    include_self: bool = False,
    positive_only: bool = False,
    shrink: float = 0.0,
    min_support: int = 1,
    alpha: float = 0.5,
    bm25_k1: float = 1.2,
    bm25_b: float = 0.75,
    baselines: tuple[float, Any, Any] | None = None,
    rows: Any = None,
    n_threads: int = 0,
) -> sp.csr_matrix:
    """Similarities between the rows of a sparse matrix, keeping the best ``k`` per row.

    Parameters
    ----------
    matrix : scipy.sparse matrix of shape (n, d)
        The rows to compare (items x users for item-item, users x items for user-user).
    similarity : str
        One of :data:`SIMILARITIES` (see the module documentation for the formulas).
    k : int, optional
        Neighbours kept per row (ties broken by the smaller index); ``None`` keeps every
        non-zero similarity.
    co_rated : bool
        Compute norms and means over each pair's co-rated columns (Surprise's definitions of
        cosine, pearson and adjusted cosine) instead of over whole rows.
    include_self : bool
        Let a row be its own neighbour (it then competes for one of the ``k`` places, as in
        implicit's item-item models).
    positive_only : bool
        Keep only similarities above zero.
    shrink : float
        Multiply by n / (n + shrink), n being the co-support ((n - 1) / (n - 1 + shrink) for
        ``pearson_baseline``).
    min_support : int
        Pairs with fewer co-rated columns get no similarity (at least 2 for
        ``pearson_baseline``).
    alpha : float
        Exponent of ``asymmetric_cosine``, in [0, 1].
    bm25_k1, bm25_b : float
        BM25 saturation (>= 0) and length normalisation (in [0, 1]).
    baselines : (global_mean, row_bias, col_bias), optional
        The baseline predictor ``pearson_baseline`` centres on; required for it.
    rows : array of row indices, optional
        Compute only these rows (row q of the result is the similarity row of ``rows[q]``).
    n_threads : int
        Threads; 0 means all cores.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n or len(rows), n), float32, sorted indices.
    """
    name = _check_similarity_name(similarity)
    if not sp.issparse(matrix):
        raise ValueError(f"matrix must be a scipy.sparse matrix, got {type(matrix).__name__}")
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {matrix.shape}")
    indptr, indices, data = _csr32(matrix)
    if data.size and not np.isfinite(data).all():
        raise ValueError("matrix contains NaN or infinite values; clean them first")
    n, d = matrix.shape
    if k is None:
        k_code = 0
    else:
        k_code = check_positive_int(k, "k")
    shrink = _check_real(shrink, "shrink", low=0.0)
    min_support = _check_int(min_support, "min_support", 1)
    alpha = _check_real(alpha, "alpha", low=0.0, high=1.0)
    bm25_k1 = _check_real(bm25_k1, "bm25_k1", low=0.0)
    bm25_b = _check_real(bm25_b, "bm25_b", low=0.0, high=1.0)
    if name in ("bm25", "tfidf") and data.size and data.min() < 0:
        raise ValueError(f"{name} needs non-negative values; the matrix has negative entries")
    global_mean, row_bias, col_bias = 0.0, None, None
    if name == "pearson_baseline":
        if baselines is None:
            raise ValueError(
                "pearson_baseline needs baselines=(global_mean, row_bias, col_bias), e.g. from "
                "BaselineOnly; the KNN models compute them for you"
            )
        global_mean = _check_real(baselines[0], "global_mean")
        row_bias = np.ascontiguousarray(baselines[1], dtype=np.float64)
        col_bias = np.ascontiguousarray(baselines[2], dtype=np.float64)
        if row_bias.shape != (n,) or col_bias.shape != (d,):
            raise ValueError(
                f"baselines must hold {n} row biases and {d} column biases, got "
                f"{row_bias.shape} and {col_bias.shape}"
            )
    row_idx = None
    if rows is not None:
        row_idx = np.ascontiguousarray(
            as_index_array(np.atleast_1d(rows), n, "rows"), dtype=np.int32
        )
        if row_idx.ndim != 1:
            raise ValueError(f"rows must be a 1-D array of row indices, got shape {row_idx.shape}")
    result = _core.neighbors.similarity_topk(
        indptr,
        indices,
        data,
        n,
        d,
        row_idx,
        _core.neighbors.SIMILARITY_CODES[name],
        bool(co_rated),
        k_code,
        bool(include_self),
        bool(positive_only),
        shrink,
        min_support,
        alpha,
        bm25_k1,
        bm25_b,
        global_mean,
        row_bias,
        col_bias,
        resolve_threads(n_threads),
    )
    n_out = n if row_idx is None else len(row_idx)
    return _csr_from_result(result, (n_out, n))


def _fit_baselines(
    ratings: sp.csr_matrix,
    method: str,
    n_epochs: int | None,
    reg_u: float,
    reg_i: float,
    reg: float,
    learning_rate: float,
    n_threads: int,
) -> tuple[float, np.ndarray, np.ndarray]:
    """(global mean, user biases, item biases) of a users x items ratings CSR."""
    if method not in ("als", "sgd"):
        raise ValueError(f"baseline method must be 'als' or 'sgd', got {method!r}")
    indptr, indices, data = _csr32(ratings)
    n_users, n_items = ratings.shape
    mu = float(np.mean(data, dtype=np.float64)) if data.size else 0.0
    if method == "als":
        epochs = 10 if n_epochs is None else _check_int(n_epochs, "baseline_epochs", 0)
        t_indptr, t_indices, t_data = _csr32(sp.csr_matrix(ratings).T.tocsr())
        bu, bi = _core.neighbors.baseline_als(
            indptr,
            indices,
            data,
            t_indptr,
            t_indices,
            t_data,
            n_users,
            n_items,
            mu,
            epochs,
            _check_real(reg_u, "reg_u", low=0.0),
            _check_real(reg_i, "reg_i", low=0.0),
            n_threads,
        )
    else:
        epochs = 20 if n_epochs is None else _check_int(n_epochs, "baseline_epochs", 0)
        bu, bi = _core.neighbors.baseline_sgd(
            indptr,
            indices,
            data,
            n_users,
            n_items,
            mu,
            epochs,
            _check_real(reg, "reg", low=0.0),
            _check_real(learning_rate, "learning_rate", low=0.0, low_open=True),
        )
    return mu, bu, bi


def _pad(rows: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    items = np.full((len(rows), n), -1, dtype=np.int32)
    scores = np.full((len(rows), n), -np.inf, dtype=np.float32)
    for r, (idx, val) in enumerate(rows):
        items[r, : len(idx)] = idx
        scores[r, : len(val)] = val
    return items, scores


def _top_of_rows(matrix: sp.csr_matrix, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n largest stored entries of each requested row (ties by smaller column), padded."""
    out = []
    for r in rows.tolist():
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        cols, vals = matrix.indices[lo:hi], matrix.data[lo:hi]
        keep = cols != r
        cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -vals))[:n]
        out.append((cols[order], vals[order]))
    return _pad(out, n)


# ----------------------------------------------------------------------------------------
# shared machinery of the models that keep a similarity matrix
# ----------------------------------------------------------------------------------------
def _low_rank(matrix: sp.csr_matrix, rank: int, n_iter: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Randomized SVD ``matrix ~ P @ V.T`` (Halko, Martinsson and Tropp 2011, with power
    iterations): returns P = U * s (rows x rank) and V (cols x rank) as float32."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    width = min(rank + 10, min(m.shape))
    y = m @ rng.standard_normal((m.shape[1], width))
    q, _ = np.linalg.qr(y)
    for _ in range(n_iter):
        z, _ = np.linalg.qr(m.T @ q)
        q, _ = np.linalg.qr(m @ z)
    u_small, sing, vt = np.linalg.svd((m.T @ q).T, full_matrices=False)
    u = q @ u_small[:, :rank]
    proj = u * sing[:rank]
    return np.ascontiguousarray(proj, dtype=np.float32), np.ascontiguousarray(vt[:rank].T, dtype=np.float32)


class _SimilarityModel(Recommender):
    """Persistence of ``similarity_`` (a CSR saved as its three arrays) and shared checks."""

    _item_based: ClassVar[bool] = True

    def _state_arrays(self) -> dict[str, np.ndarray]:
        state = super()._state_arrays()
        s = self.similarity_
        state["similarity_indptr_"] = s.indptr.astype(np.int64)
        state["similarity_indices_"] = s.indices.astype(np.int32)
        state["similarity_data_"] = s.data.astype(np.float32)
        state["similarity_shape_"] = np.asarray(s.shape, dtype=np.int64)
        return state

    def _restore_arrays(self, state: dict[str, np.ndarray]) -> None:
        super()._restore_arrays(state)
        keys = (
            "similarity_indptr_",
            "similarity_indices_",
            "similarity_data_",
            "similarity_shape_",
        )
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f"missing {missing}")
        shape = tuple(int(v) for v in state["similarity_shape_"])
        self.similarity_ = sp.csr_matrix(
            (state["similarity_data_"], state["similarity_indices_"], state["similarity_indptr_"]),
            shape=shape,
        )
        self._cache = {}

    def _check_state(self) -> None:
        super()._check_state()
        n = self.n_items_ if self._item_based else self.n_users_
        if self.similarity_.shape != (n, n):
            raise ValueError("similarity_ does not match the number of items/users")
        self.similarity_.check_format(full_check=True)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_cache", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._cache = {}

    def _cached(self, key: str, build: Any) -> Any:
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def _similarity_threads(self) -> int:
        return resolve_threads(self._threads())


# ----------------------------------------------------------------------------------------
# top-N from implicit feedback
# ----------------------------------------------------------------------------------------
class _ImplicitKNN(_SimilarityModel):
    _learned = ("weights_", "history_weights_")

    def __init__(
        self,
        k: int = 50,
        similarity: SimilarityName = "cosine",
        *,
        shrink: float = 0.0,
        min_support: int = 1,
        alpha: float = 0.5,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        include_self: bool = False,
        normalize: bool = False,
        half_life: float | None = None,
        n_threads: int = 0,
    ) -> None:
        self.k = k
        self.similarity = similarity
        self.shrink = shrink
        self.min_support = min_support
        self.alpha = alpha
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.include_self = include_self
        self.normalize = normalize
        self.half_life = half_life
        self.n_threads = n_threads

    # -- fitting --------------------------------------------------------------------------
    def _check_params(self) -> None:
        check_positive_int(self.k, "k")
        _check_similarity_name(self.similarity)
        if self.half_life is not None:
            _check_real(self.half_life, "half_life", low=0.0, low_open=True)

    def _entity_matrix(self, weights: sp.csr_matrix) -> sp.csr_matrix:
        """The matrix whose rows are compared: items x users or users x items."""
        return weights.T.tocsr() if self._item_based else weights

    def _compute_similarity(
        self, weights: sp.csr_matrix, rows: np.ndarray | None = None
    ) -> sp.csr_matrix:
        x = self._entity_matrix(weights)
        baselines = None
        if self.similarity == "pearson_baseline":
            mu, bu, bi = _fit_baselines(
                weights, "als", None, 15.0, 10.0, 0.02, 0.005, self._similarity_threads()
            )
            baselines = (mu, bi, bu) if self._item_based else (mu, bu, bi)
        return similarity_matrix(
            x,
            self.similarity,
            k=self.k,
            include_self=bool(self.include_self),
            shrink=self.shrink,
            min_support=self.min_support,
            alpha=self.alpha,
            bm25_k1=self.bm25_k1,
            bm25_b=self.bm25_b,
            baselines=baselines,
            rows=rows,
            n_threads=self._similarity_threads(),
        )

    def _fit(self, data: Interactions) -> None:
        self._check_params()
        matrix = data.matrix.tocsr()
        weights = np.asarray(matrix.data, dtype=np.float32)
        if weights.size and (not np.isfinite(weights).all() or weights.min() < 0):
            raise ValueError(
                f"{type(self).__name__} needs finite, non-negative interaction weights (implicit "
                "feedback such as counts or 1.0); got negative or NaN values. For ratings use "
                "KNNBasic / KNNWithMeans / KNNBaseline, or shift the weights"
            )
        self.weights_ = weights.copy()
        self.history_weights_ = self._decayed(matrix, data.timestamps)
        self._cache = {}
        self.drop_index()
        self.similarity_ = self._compute_similarity(self._weight_matrix())

    def _decayed(self, matrix: sp.csr_matrix, timestamps: np.ndarray | None) -> np.ndarray:
        w = np.asarray(matrix.data, dtype=np.float64)
        if self.half_life is None:
            return w.astype(np.float32)
        if timestamps is None:
            raise ValueError(
                "half_life needs timestamps: build the Interactions with a timestamp column, or "
                "use half_life=None"
            )
        t = np.asarray(timestamps, dtype=np.float64)
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        latest = np.full(matrix.shape[0], -np.inf)
        np.maximum.at(latest, rows, t)
        return (w * np.exp2(-(latest[rows] - t) / float(self.half_life))).astype(np.float32)

    def _weight_matrix(self) -> sp.csr_matrix:
        return self._cached(
            "weights",
            lambda: sp.csr_matrix(
                (self.weights_, self.seen_.indices, self.seen_.indptr), shape=self.seen_.shape
            ),
        )

    def _history_matrix(self) -> sp.csr_matrix:
        return self._cached(
            "history",
            lambda: sp.csr_matrix(
                (self.history_weights_, self.seen_.indices, self.seen_.indptr),
                shape=self.seen_.shape,
            ),
        )

    # -- scoring --------------------------------------------------------------------------
    def _operands(self, user_idx: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix, int]:
        """(A, B, normalisation code) with scores = A @ B for the given users."""
        if self._item_based:
            return self._history_matrix()[user_idx], self.similarity_, 1 if self.normalize else 0
        return self.similarity_[user_idx], self._history_matrix(), 2 if self.normalize else 0

    def _score_rows(
        self,
        a: sp.csr_matrix,
        b: sp.csr_matrix,
        norm: int,
        n: int,
        exclude: Any,
        candidates: np.ndarray | None,
        n_threads: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        a_ptr, a_idx, a_val = _csr32(a)
        b_ptr, b_idx, b_val = _csr32(b)
        ex_ptr = ex_idx = None
        if exclude is not None:
            ex_ptr, ex_idx, _ = _csr32(exclude)
        cand = None if candidates is None else np.ascontiguousarray(candidates, dtype=np.int32)
        return _core.neighbors.sparse_topk_scores(
            a_ptr,
            a_idx,
            a_val,
            a.shape[0],
            a.shape[1],
            b_ptr,
            b_idx,
            b_val,
            b.shape[1],
            norm,
            n,
            ex_ptr,
            ex_idx,
            cand,
            n_threads,
        )

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        a, b, norm = self._operands(user_idx)
        a64 = sp.csr_matrix(a, dtype=np.float64)
        b64 = sp.csr_matrix(b, dtype=np.float64)
        num = (a64 @ b64).toarray()
        if norm == 0:
            return num.astype(np.float32)
        if norm == 1:
            pattern = a64.copy()
            pattern.data[:] = 1.0
            den = (pattern @ abs(b64)).toarray()
        else:
            pattern = b64.copy()
            pattern.data[:] = 1.0
            den = (abs(a64) @ pattern).toarray()
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        return out.astype(np.float32)

    # -- serving through a vector index ---------------------------------------------------
    def build_index(
        self,
        kind: str = "hnsw",
        *,
        n_components: int = 64,
        n_candidates: int = 200,
        n_iter: int = 4,
        random_state: int = 0,
        **params: Any,
    ) -> _ImplicitKNN:
        """Serve ``recommend`` through a vector index over a low-rank form of the model.

        The scores of a neighbourhood model are a sparse product ``A[u] @ B`` (item-based:
        ``A`` the users' histories, ``B`` the item similarity; user-based: ``A`` the user
        similarity, ``B`` the histories). A rank-``n_components`` randomized SVD
        ``B ~ P @ V.T`` gives every item a vector (a row of ``V``) and every user a query
        ``A[u] @ P`` whose inner products approximate the model's scores. The index
        (:class:`~recforge.retrieval.HNSWIndex` or :class:`~recforge.retrieval.ExactIndex`)
        returns ``n_candidates`` unseen items per user and the model scores those exactly, so
        the returned scores are the model's own; only the choice of candidates is approximate.
        Check the agreement with exact search with :func:`~recforge.retrieval.index_recall`
        on your data and raise ``n_components`` or ``n_candidates`` if it is too low: sparse
        catalogs are far from low-rank (on Gowalla, ItemKNN through a 64-component index
        with 200 candidates keeps 38% of the exact top 10; on MovieLens-1M all of it).

        The exact sparse product costs O(history x k) per user whatever the catalog size, so
        for one model alone it is usually the faster path; the index lets a neighbourhood
        model be served the same way as the factor models.
        ``similar_items`` keeps reading ``similarity_``, which is already an exact k-NN table.

        Parameters
        ----------
        kind : {"hnsw", "exact"}
        n_components : int
            Rank of the factorisation (the vector width).
        n_candidates : int
            Items fetched from the index per user (at least ``n`` are fetched).
        n_iter : int
            Power iterations of the randomized SVD (more: a closer factorisation, slower).
        random_state : int
        **params
            Index parameters (``M``, ``ef_construction``, ``ef``, ``n_threads``).

        The index is dropped by ``fit``/``partial_fit`` and not stored by ``save``; pickling
        keeps it.
        """
        from .retrieval import ExactIndex, HNSWIndex

        self._check_fitted()
        kinds = {"hnsw": HNSWIndex, "exact": ExactIndex}
        if kind not in kinds:
            raise ValueError(f"kind must be 'hnsw' or 'exact', got {kind!r}")
        n_components = check_positive_int(n_components, "n_components")
        check_positive_int(n_candidates, "n_candidates")
        if n_iter is None or isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) or n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
        b = self._operands(np.zeros(0, dtype=np.int64))[1]
        rank = min(n_components, min(b.shape))
        proj, item_vectors = _low_rank(b, rank, int(n_iter), np.random.default_rng(random_state))
        params.setdefault("n_threads", self._threads())
        self.index_ = kinds[kind]("ip", **params).build(item_vectors, np.arange(self.n_items_))
        self.index_projection_ = proj
        self.index_candidates_ = int(n_candidates)
        return self

    def drop_index(self) -> None:
        """Go back to the exact sparse scoring."""
        self.index_ = None
        self.index_projection_ = None

    def index_queries(self, users: Any, *, ids: IdKind = "raw") -> np.ndarray:
        """The query vectors of users in the index built by :meth:`build_index`."""
        self._check_fitted()
        if getattr(self, "index_", None) is None:
            raise ValueError(f"this {type(self).__name__} has no index: call build_index() first")
        idx = self._to_index(np.atleast_1d(users), "user", ids)
        return self._index_queries(idx)

    def _index_queries(self, user_idx: np.ndarray) -> np.ndarray:
        a = self._operands(user_idx)[0]
        return np.ascontiguousarray(a @ self.index_projection_, dtype=np.float32)

    def _recommend_indices(self, user_idx, n, exclude, candidates, n_threads):
        a, b, norm = self._operands(user_idx)
        index = getattr(self, "index_", None)
        if index is None:
            return self._score_rows(a, b, norm, n, exclude, candidates, n_threads)
        n_allowed = self.n_items_ if candidates is None else len(candidates)
        fetch = min(max(self.index_candidates_, n), n_allowed)
        queries = np.ascontiguousarray(a @ self.index_projection_, dtype=np.float32)
        found, _ = index.query(queries, fetch, exclude=exclude, candidates=candidates, n_threads=n_threads)
        tops = np.empty((len(user_idx), n), dtype=np.int32)
        vals = np.empty((len(user_idx), n), dtype=np.float32)
        # exact scores of the fetched items; a few users at a time share one candidate list
        step = 1 if len(user_idx) <= 4 else 16
        for start in range(0, len(user_idx), step):
            stop = min(len(user_idx), start + step)
            cand = np.unique(found[start:stop])
            cand = cand[cand >= 0].astype(np.int32)
            ex = exclude[start:stop] if exclude is not None else None
            if len(cand) < n:  # the index ran short (e.g. everything else excluded): score exactly
                cand = candidates
            tops[start:stop], vals[start:stop] = self._score_rows(a[start:stop], b, norm, n, ex, cand, n_threads)
        return tops, vals

    # -- incremental use ------------------------------------------------------------------
    def _history_row(self, history: Any, weights: Any, ids: IdKind) -> sp.csr_matrix:
        items = np.atleast_1d(np.asarray(history))
        if items.ndim != 1:
            raise ValueError(f"history must be a 1-D array of items, got shape {items.shape}")
        idx = self._to_index(items, "item", ids).astype(np.int64)
        if weights is None:
            w = np.ones(len(idx), dtype=np.float64)
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != idx.shape:
                raise ValueError(
                    f"weights has shape {w.shape} but history has {len(idx)} items; give one weight per item"
                )
            if w.size and (not np.isfinite(w).all() or w.min() < 0):
                raise ValueError("history weights must be finite and non-negative")
        row = sp.csr_matrix(
            (w, (np.zeros(len(idx), dtype=np.int64), idx)), shape=(1, self.n_items_)
        )
        row.sum_duplicates()
        return row.astype(np.float32)

    def recommend_for_history(
        self,
        history: Any,
        weights: Any = None,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        ids: IdKind = "raw",
        n_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Recommend for a user who is not in the training data, from their interactions.

        Nothing is refitted: the item-based model multiplies the history by ``similarity_``;
        the user-based model computes this user's similarity to every training user (one row
        of the similarity kernel, O(nnz) work) and scores with those neighbours.

        Parameters
        ----------
        history : array of item ids
            The items the user interacted with (known items; repeated items add up).
        weights : array of float, optional
            One non-negative weight per history item; 1 by default.
        n, exclude_seen, items, ids, n_threads
            As in :meth:`recommend`; ``exclude_seen`` leaves out the history items.

        Returns
        -------
        item_ids, scores : 1-D arrays
        """
        self._check_fitted()
        n = check_positive_int(n, "n")
        row = self._history_row(history, weights, ids)
        candidates = None
        if items is not None:
            cand = np.atleast_1d(items)
            if cand.size == 0:
                raise ValueError("items is empty: pass at least one candidate item or None for all")
            candidates = np.unique(self._to_index(cand, "item", ids)).astype(np.int32)
        n_search = self.n_items_ if candidates is None else candidates.size
        if n > n_search:
            raise ValueError(f"n={n} is larger than the {n_search} items that can be recommended")
        threads = resolve_threads(self._threads() if n_threads is None else n_threads)
        exclude = row if exclude_seen else None
        if self._item_based:
            a, b, norm = row, self.similarity_, 1 if self.normalize else 0
        else:
            a, b, norm = (
                self._new_user_similarity(row),
                self._history_matrix(),
                2 if self.normalize else 0,
            )
        top, scores = self._score_rows(a, b, norm, n, exclude, candidates, threads)
        out = top if ids == "index" else self._to_raw_items(top)
        return out[0], scores[0]

    def _check_incremental(self) -> None:
        if self.half_life is not None:
            raise ValueError(
                "partial_fit does not support half_life (the decay depends on every timestamp); "
                "refit the model instead"
            )

    def partial_fit(self, interactions: Any) -> _ImplicitKNN:
        """Add a batch of interactions and update the similarity without a full recomputation.

        New users and items (raw ids the model has not seen) are appended; weights of a
        (user, item) pair seen before are added up. Only the similarity rows that can change
        are recomputed: the rows with new entries and every row sharing a column with them
        (for ``adjusted_cosine`` and ``tfidf`` also the rows sharing a column that got new
        entries, because column statistics move). The result equals a fit on all the
        interactions. The cost is that of those rows, i.e. of the co-occurrence neighbourhood
        of the update; a batch touching popular items can approach a full fit. ``bm25`` and
        ``pearson_baseline`` (whole-matrix statistics), and ``tfidf`` when new rows appear,
        are recomputed in full. ``last_update_`` reports what was recomputed.
        """
        self._check_fitted()
        self._check_params()
        self._check_incremental()
        data = as_interactions(interactions)
        if data.nnz == 0:
            raise ValueError("partial_fit got no interactions")
        matrix = data.matrix.tocsr()
        new_w = np.asarray(matrix.data, dtype=np.float64)
        if not np.isfinite(new_w).all() or new_w.min() < 0:
            raise ValueError("interaction weights must be finite and non-negative")
        user_map = self._extend_ids("user", np.asarray(data.user_ids))
        item_map = self._extend_ids("item", np.asarray(data.item_ids))
        n_users, n_items = len(self.user_ids_), len(self.item_ids_)
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        update = sp.csr_matrix(
            (new_w, (user_map[rows], item_map[matrix.indices])), shape=(n_users, n_items)
        )
        old = self._weight_matrix()
        old = sp.csr_matrix(
            (
                old.data,
                old.indices,
                np.concatenate([old.indptr, np.full(n_users - old.shape[0], old.indptr[-1])]),
            ),
            shape=(n_users, n_items),
        )
        combined = (sp.csr_matrix(old, dtype=np.float64) + update).tocsr()
        combined.sum_duplicates()
        combined.sort_indices()
        old_entities = self.similarity_.shape[0]
        self.seen_ = sp.csr_matrix(
            (np.ones(combined.nnz, dtype=np.float32), combined.indices, combined.indptr),
            shape=combined.shape,
        )
        self.weights_ = combined.data.astype(np.float32)
        self.history_weights_ = self.weights_.copy()
        self._cache = {}
        self.drop_index()
        self._user_lookup = None
        self._item_lookup = None

        x_new = self._entity_matrix(combined)
        x_upd = self._entity_matrix(update.tocsr())
        n_entities = x_new.shape[0]
        changed = np.flatnonzero(np.diff(x_upd.indptr) > 0)
        full = self.similarity in _GLOBAL_WEIGHTS or (
            self.similarity == "tfidf" and n_entities != old_entities
        )
        if not full:
            pattern = x_new.copy()
            pattern.data = np.ones_like(pattern.data)
            if self.similarity in _COLUMN_WEIGHTS:
                cols = np.zeros(x_new.shape[1], dtype=np.float64)
                cols[np.unique(x_upd.indices)] = 1.0
                changed = np.union1d(changed, np.flatnonzero(pattern @ cols))
            sel = np.zeros(n_entities, dtype=np.float64)
            sel[changed] = 1.0
            touched_cols = (pattern.T @ sel) > 0
            touched = np.union1d(changed, np.flatnonzero(pattern @ touched_cols.astype(np.float64)))
        if full:
            self.similarity_ = self._compute_similarity(combined)
            recomputed = n_entities
        else:
            touched = touched.astype(np.int64)
            fresh = self._compute_similarity(combined, rows=touched)
            old_sim = self.similarity_
            padded = sp.csr_matrix(
                (
                    old_sim.data,
                    old_sim.indices,
                    np.concatenate(
                        [old_sim.indptr, np.full(n_entities - old_sim.shape[0], old_sim.indptr[-1])]
                    ),
                ),
                shape=(n_entities, n_entities),
            )
            keep = np.ones(n_entities, dtype=np.float32)
            keep[touched] = 0.0
            kept = (sp.diags(keep) @ padded).tocsr()
            kept.eliminate_zeros()
            place = sp.csr_matrix(
                (np.ones(len(touched), dtype=np.float32), (touched, np.arange(len(touched)))),
                shape=(n_entities, len(touched)),
            )
            merged = (kept + place @ fresh).tocsr()
            merged.sort_indices()
            self.similarity_ = sp.csr_matrix(merged, dtype=np.float32)
            recomputed = len(touched)
        self.last_update_ = {
            "rows_recomputed": int(recomputed),
            "rows_total": int(n_entities),
            "full": bool(full),
        }
        return self

    def _extend_ids(self, kind: str, raw: np.ndarray) -> np.ndarray:
        """Indices of raw ids in the model, appending the unknown ones; returns the map."""
        table = self._lookup(kind)
        out = np.empty(len(raw), dtype=np.int64)
        new = []
        ids = self.user_ids_ if kind == "user" else self.item_ids_
        n = len(ids)
        for pos, v in enumerate(raw.tolist()):
            idx = table.get(v)
            if idx is None:
                idx = n + len(new)
                table[v] = idx
                new.append(v)
            out[pos] = idx
        if new:
            if ids.dtype.kind in "iu" and all(isinstance(v, numbers.Integral) for v in new):
                merged = np.concatenate([ids, np.asarray(new, dtype=ids.dtype)])
            else:
                merged = np.concatenate([ids.astype(object), np.asarray(new, dtype=object)])
            if kind == "user":
                self.user_ids_ = merged
            else:
                self.item_ids_ = merged
        return out


class ItemKNN(_ImplicitKNN):
    """Item-based k-nearest-neighbour top-N recommender for implicit feedback.

    The score of item j for user u is ``sum_i w_ui * S[i, j]`` over the items i in u's
    history, where row i of the similarity ``S`` holds the ``k`` nearest neighbours of item i.
    With ``similarity="cosine"`` this is implicit's ``CosineRecommender``, with ``"bm25"``
    its ``BM25Recommender`` and with ``"tfidf"`` its ``TFIDFRecommender`` (those keep the item
    itself among its K neighbours: pass ``include_self=True`` to get the very same matrix).

    Parameters
    ----------
    k : int
        Neighbours kept per item.
    similarity : str
        One of :data:`SIMILARITIES`; see the module documentation.
    shrink : float
        Shrink each similarity by n / (n + shrink), n = number of common users.
    min_support : int
        Item pairs with fewer common users get no similarity.
    alpha : float
        Exponent of ``"asymmetric_cosine"``.
    bm25_k1, bm25_b : float
        BM25 parameters (implicit's ``K1`` and ``B``).
    include_self : bool
        Whether an item may be one of its own ``k`` neighbours.
    normalize : bool
        Divide each score by the sum of the absolute similarities that contributed to it
        (a weighted average instead of a sum).
    half_life : float, optional
        Time decay of the history: an interaction ``half_life`` timestamp units older than the
        user's latest one counts half. Needs timestamps.
    n_threads : int
        Threads for fitting and recommending; 0 means all cores.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_items, n_items)
        Row i holds the neighbours of item i.
    weights_ : float32 array
        The interaction weights, aligned with ``seen_``.
    history_weights_ : float32 array
        The (time-decayed) weights used for scoring.
    """

    _item_based = True

    def similar_items(
        self, items: Any, n: int = 10, *, ids: IdKind = "raw"
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most similar items of each item (from ``similarity_``), best first.

        Fewer than ``n`` stored neighbours leave padded slots (item -1 / None, score -inf).
        """
        self._check_fitted()
        n = check_positive_int(n, "n")
        single = np.ndim(items) == 0
        idx = self._to_index(np.atleast_1d(items), "item", ids)
        top, scores = _top_of_rows(self.similarity_, idx, n)
        out = top if ids == "index" else self._to_raw_items(top)
        return (out[0], scores[0]) if single else (out, scores)

    def explain(self, user: Any, item: Any, *, ids: IdKind = "raw") -> pd.DataFrame:
        """Which history items contributed how much to the score of ``item`` for ``user``.

        Returns a DataFrame with columns ``item``, ``weight`` (the history weight),
        ``similarity`` (S[history item, item]) and ``contribution`` (their product), largest
        contribution first, one row per history item with a non-zero contribution. The
        contributions add up to the unnormalised score.
        """
        self._check_fitted()
        u = int(self._to_index(np.asarray([user]), "user", ids)[0])
        j = int(self._to_index(np.asarray([item]), "item", ids)[0])
        hist = self._history_matrix()
        lo, hi = hist.indptr[u], hist.indptr[u + 1]
        items_u, w = hist.indices[lo:hi], hist.data[lo:hi].astype(np.float64)
        sim = (
            np.asarray(self.similarity_[items_u, j].todense()).ravel().astype(np.float64)
            if len(items_u)
            else np.zeros(0)
        )
        contrib = w * sim
        keep = contrib != 0
        frame = pd.DataFrame(
            {
                "item": items_u[keep] if ids == "index" else self.item_ids_[items_u[keep]],
                "weight": w[keep],
                "similarity": sim[keep],
                "contribution": contrib[keep],
            }
        )
        return frame.sort_values("contribution", ascending=False, kind="stable").reset_index(
            drop=True
        )


class UserKNN(_ImplicitKNN):
    """User-based k-nearest-neighbour top-N recommender for implicit feedback.

    The score of item j for user u is ``sum_v S[u, v] * w_vj`` over the ``k`` nearest
    neighbours v of u (row u of ``similarity_``). Parameters are those of :class:`ItemKNN`,
    with users in place of items (``normalize`` divides by the sum of the absolute
    similarities of the neighbours who interacted with j).

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_users, n_users)
        Row u holds the neighbours of user u.
    """

    _item_based = False

    def similar_users(
        self, users: Any, n: int = 10, *, ids: IdKind = "raw"
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most similar users of each user, best first (padded like recommend)."""
        self._check_fitted()
        n = check_positive_int(n, "n")
        single = np.ndim(users) == 0
        idx = self._to_index(np.atleast_1d(users), "user", ids)
        top, scores = _top_of_rows(self.similarity_, idx, n)
        out = top if ids == "index" else raw_ids(self.user_ids_, top)
        return (out[0], scores[0]) if single else (out, scores)

    def explain(self, user: Any, item: Any, *, ids: IdKind = "raw") -> pd.DataFrame:
        """Which neighbours contributed how much to the score of ``item`` for ``user``.

        Columns ``user`` (the neighbour), ``similarity`` (S[user, neighbour]), ``weight`` (the
        neighbour's weight on ``item``) and ``contribution``, largest first.
        """
        self._check_fitted()
        u = int(self._to_index(np.asarray([user]), "user", ids)[0])
        j = int(self._to_index(np.asarray([item]), "item", ids)[0])
        s = self.similarity_
        lo, hi = s.indptr[u], s.indptr[u + 1]
        nb, sim = s.indices[lo:hi], s.data[lo:hi].astype(np.float64)
        w = (
            np.asarray(self._history_matrix()[nb, j].todense()).ravel().astype(np.float64)
            if len(nb)
            else np.zeros(0)
        )
        contrib = w * sim
        keep = contrib != 0
        frame = pd.DataFrame(
            {
                "user": nb[keep] if ids == "index" else self.user_ids_[nb[keep]],
                "similarity": sim[keep],
                "weight": w[keep],
                "contribution": contrib[keep],
            }
        )
        return frame.sort_values("contribution", ascending=False, kind="stable").reset_index(
            drop=True
        )

    def _new_user_similarity(self, row: sp.csr_matrix) -> sp.csr_matrix:
        """Similarity (1 x n_users) of an unseen user's history to the training users."""
        weights = self._weight_matrix()
        stacked = sp.vstack([weights, row], format="csr")
        n = weights.shape[0]
        sims = self._compute_similarity(stacked, rows=np.array([n]))
        return sims[:, :n].tocsr()


# ----------------------------------------------------------------------------------------
# rating prediction from explicit feedback
# ----------------------------------------------------------------------------------------
def _ratings_matrix(data: Interactions) -> sp.csr_matrix:
    matrix = data.matrix.tocsr()
    values = data.ratings if data.ratings is not None else matrix.data
    values = np.asarray(values, dtype=np.float32)
    if values.size and not np.isfinite(values).all():
        raise ValueError("ratings contain NaN or infinite values; clean them first")
    return sp.csr_matrix((values, matrix.indices, matrix.indptr), shape=matrix.shape)


class _RatingModel(Recommender):
    """Shared parts of the rating predictors: rating scale, ``predict`` and id handling."""

    def _check_rating_scale(self, ratings: np.ndarray) -> np.ndarray:
        if self.rating_scale is None:
            lo, hi = (float(ratings.min()), float(ratings.max())) if ratings.size else (0.0, 0.0)
        else:
            try:
                lo, hi = (float(v) for v in self.rating_scale)
            except (TypeError, ValueError):
                raise ValueError(
                    f"rating_scale must be a pair (low, high), got {self.rating_scale!r}"
                ) from None
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(
                    f"rating_scale must be a pair low <= high, got {self.rating_scale!r}"
                )
        return np.asarray([lo, hi], dtype=np.float64)

    def _pair_indices(
        self, users: Any, items: Any, ids: IdKind, unknown: str
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        if unknown not in ("raise", "default"):
            raise ValueError(f"unknown must be 'raise' or 'default', got {unknown!r}")
        u, i = np.broadcast_arrays(np.asarray(users), np.asarray(items))
        shape = u.shape
        strict = unknown == "raise"
        return (
            self._soft_index(u.ravel(), "user", ids, strict),
            self._soft_index(i.ravel(), "item", ids, strict),
            shape,
        )

    def _soft_index(self, values: np.ndarray, kind: str, ids: IdKind, strict: bool) -> np.ndarray:
        """Indices of ids (vectorised); unknown ones raise (strict) or become -1."""
        n = self.n_users_ if kind == "user" else self.n_items_
        if ids == "index":
            if strict:
                return as_index_array(values, n, f"{kind} indices")
            arr = np.asarray(values)
            if arr.size and arr.dtype.kind not in "iu":
                raise ValueError(f"{kind} indices must be integers, got dtype {arr.dtype}")
            arr = arr.astype(np.int64)
            return np.where((arr >= 0) & (arr < n), arr, -1)
        if ids != "raw":
            raise ValueError(f"ids must be 'raw' or 'index', got {ids!r}")
        key = f"{kind}_index"
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = pd.Index(self.user_ids_ if kind == "user" else self.item_ids_)
        try:
            out = cache[key].get_indexer(values).astype(np.int64)
        except (TypeError, ValueError):  # ids of a type the index cannot compare with
            return (
                self._to_index(values, kind, ids) if strict else np.full(len(values), -1, np.int64)
            )
        if strict and (out < 0).any():
            return self._to_index(values, kind, ids)  # raises with the base class's message
        return out

    def predict(
        self,
        users: Any,
        items: Any,
        *,
        ids: IdKind = "raw",
        clip: bool = True,
        unknown: Literal["raise", "default"] = "raise",
    ) -> np.ndarray:
        """Predicted ratings of (user, item) pairs; ``users`` and ``items`` broadcast together.

        Parameters
        ----------
        clip : bool
            Clip the predictions to ``rating_scale_``.
        unknown : {"raise", "default"}
            An unknown user or item raises ``IndexError``, or gets the model's fallback
            prediction (the global mean, or the baseline with the known biases), as Surprise
            does for ids it has not seen.

        Returns
        -------
        float64 array of the broadcast shape
        """
        self._check_fitted()
        u, i, shape = self._pair_indices(users, items, ids, unknown)
        est = self._estimate(u, i)
        if clip:
            est = np.clip(est, self.rating_scale_[0], self.rating_scale_[1])
        return est.reshape(shape)

    def _estimate(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        n_items = self.n_items_
        u = np.repeat(np.asarray(user_idx, dtype=np.int64), n_items)
        i = np.tile(np.arange(n_items, dtype=np.int64), len(user_idx))
        return self._estimate(u, i).reshape(len(user_idx), n_items).astype(np.float32)

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self._estimate(
            np.asarray(user_idx, np.int64), np.asarray(item_idx, np.int64)
        ).astype(np.float32)


class BaselineOnly(_RatingModel):
    """The baseline predictor r_ui = mu + b_u + b_i (Surprise's ``BaselineOnly``).

    Parameters
    ----------
    method : {"als", "sgd"}
        ALS alternates closed-form item and user steps, b_i = sum(r - mu - b_u) / (reg_i + n_i)
        and b_u = sum(r - mu - b_i) / (reg_u + n_u); SGD makes ``n_epochs`` passes over the
        ratings user by user with b += learning_rate * (err - reg * b).
    n_epochs : int, optional
        10 for ALS, 20 for SGD by default.
    reg_u, reg_i : float
        ALS regularisation of the user and item biases.
    reg, learning_rate : float
        SGD regularisation and step.
    rating_scale : (low, high), optional
        Range predictions are clipped to; defaults to the training ratings' range.
    n_threads : int
        Threads for ALS; 0 means all cores (SGD is sequential and deterministic).

    ``recommend`` and ``score`` rank by the unclipped estimate; ``predict`` clips. The
    ratings are ``Interactions.ratings`` when present, else the weights.
    """

    _learned = ("global_mean_", "user_bias_", "item_bias_", "rating_scale_")

    def __init__(
        self,
        method: Literal["als", "sgd"] = "als",
        n_epochs: int | None = None,
        reg_u: float = 15.0,
        reg_i: float = 10.0,
        reg: float = 0.02,
        learning_rate: float = 0.005,
        rating_scale: tuple[float, float] | None = None,
        n_threads: int = 0,
    ) -> None:
        self.method = method
        self.n_epochs = n_epochs
        self.reg_u = reg_u
        self.reg_i = reg_i
        self.reg = reg
        self.learning_rate = learning_rate
        self.rating_scale = rating_scale
        self.n_threads = n_threads

    def _fit(self, data: Interactions) -> None:
        self._cache = {}
        ratings = _ratings_matrix(data)
        scale = self._check_rating_scale(ratings.data)
        mu, bu, bi = _fit_baselines(
            ratings,
            self.method,
            self.n_epochs,
            self.reg_u,
            self.reg_i,
            self.reg,
            self.learning_rate,
            resolve_threads(self._threads()),
        )
        self.global_mean_ = np.asarray(mu, dtype=np.float64)
        self.user_bias_ = bu
        self.item_bias_ = bi
        self.rating_scale_ = scale

    def _estimate(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        est = np.full(len(user_idx), float(self.global_mean_))
        ku, ki = user_idx >= 0, item_idx >= 0
        est[ku] += self.user_bias_[user_idx[ku]]
        est[ki] += self.item_bias_[item_idx[ki]]
        return est

    def _check_state(self) -> None:
        super()._check_state()
        if self.user_bias_.shape != (self.n_users_,) or self.item_bias_.shape != (self.n_items_,):
            raise ValueError("biases do not match the number of users and items")


class _RatingKNN(_SimilarityModel, _RatingModel):
    """k-NN rating prediction (Surprise's KNN family); see the subclasses."""

    _kind: ClassVar[int] = 0
    _learned = (
        "ratings_",
        "global_mean_",
        "rating_scale_",
        "x_mean_",
        "x_sigma_",
        "user_bias_",
        "item_bias_",
    )

    def __init__(
        self,
        k: int = 40,
        min_k: int = 1,
        similarity: SimilarityName = "msd",
        user_based: bool = True,
        *,
        min_support: int = 1,
        shrink: float | None = None,
        max_neighbors: int | None = None,
        baseline: Literal["als", "sgd"] = "als",
        baseline_epochs: int | None = None,
        reg_u: float = 15.0,
        reg_i: float = 10.0,
        reg: float = 0.02,
        learning_rate: float = 0.005,
        rating_scale: tuple[float, float] | None = None,
        n_threads: int = 0,
    ) -> None:
        self.k = k
        self.min_k = min_k
        self.similarity = similarity
        self.user_based = user_based
        self.min_support = min_support
        self.shrink = shrink
        self.max_neighbors = max_neighbors
        self.baseline = baseline
        self.baseline_epochs = baseline_epochs
        self.reg_u = reg_u
        self.reg_i = reg_i
        self.reg = reg
        self.learning_rate = learning_rate
        self.rating_scale = rating_scale
        self.n_threads = n_threads

    @property
    def _item_based(self) -> bool:  # type: ignore[override]
        return not self.user_based

    def _fit(self, data: Interactions) -> None:
        check_positive_int(self.k, "k")
        _check_int(self.min_k, "min_k", 0)
        name = _check_similarity_name(self.similarity)
        if self.max_neighbors is not None:
            check_positive_int(self.max_neighbors, "max_neighbors")
        shrink = (
            (100.0 if name == "pearson_baseline" else 0.0) if self.shrink is None else self.shrink
        )
        ratings = _ratings_matrix(data)
        self.rating_scale_ = self._check_rating_scale(ratings.data)
        threads = resolve_threads(self._threads())
        self.ratings_ = ratings.data.copy()
        self._cache = {}
        n_users, n_items = ratings.shape
        need_bias = self._kind == 3 or name == "pearson_baseline"
        if need_bias:
            mu, bu, bi = _fit_baselines(
                ratings,
                self.baseline,
                self.baseline_epochs,
                self.reg_u,
                self.reg_i,
                self.reg,
                self.learning_rate,
                threads,
            )
        else:
            mu = float(np.mean(ratings.data, dtype=np.float64)) if ratings.nnz else 0.0
            bu, bi = np.zeros(n_users), np.zeros(n_items)
        self.global_mean_ = np.asarray(mu, dtype=np.float64)
        self.user_bias_, self.item_bias_ = bu, bi
        x = ratings if self.user_based else ratings.T.tocsr()
        # means and (population) standard deviations of each x, sigma 0 -> the overall sigma
        counts = np.diff(x.indptr).astype(np.float64)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        vals = x.data.astype(np.float64)
        sums = np.bincount(rows, weights=vals, minlength=x.shape[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            # a user (item) without ratings gets the global mean as its mean
            mean = np.where(counts > 0, sums / np.maximum(counts, 1), mu)
            var = np.bincount(
                rows, weights=(vals - mean[rows]) ** 2, minlength=x.shape[0]
            ) / np.maximum(counts, 1)
        sigma = np.sqrt(var)
        overall = float(np.std(vals)) if vals.size else 0.0
        sigma[sigma == 0] = overall if overall > 0 else 1.0
        self.x_mean_, self.x_sigma_ = mean, sigma
        bx, by = (bu, bi) if self.user_based else (bi, bu)
        self.similarity_ = similarity_matrix(
            x,
            name,
            k=self.max_neighbors,
            co_rated=True,
            positive_only=True,
            shrink=shrink,
            min_support=self.min_support,
            baselines=(mu, bx, by) if name == "pearson_baseline" else None,
            n_threads=threads,
        )

    def _y_ratings(self) -> sp.csr_matrix:
        """For each y (item when user-based), the x that rated it and the ratings."""

        def build() -> sp.csr_matrix:
            r = sp.csr_matrix(
                (self.ratings_, self.seen_.indices, self.seen_.indptr), shape=self.seen_.shape
            )
            out = r.T.tocsr() if self.user_based else r
            out.sort_indices()
            return out

        return self._cached("y_ratings", build)

    def _estimate(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        user_idx = np.asarray(user_idx, dtype=np.int64)
        item_idx = np.asarray(item_idx, dtype=np.int64)
        mu = float(self.global_mean_)
        est = np.full(len(user_idx), mu)
        if self._kind == 3:  # the baseline with the known biases, as Surprise's fallback
            ku, ki = user_idx >= 0, item_idx >= 0
            est[ku] += self.user_bias_[user_idx[ku]]
            est[ki] += self.item_bias_[item_idx[ki]]
        known = np.flatnonzero((user_idx >= 0) & (item_idx >= 0))
        if known.size == 0:
            return est
        x_all, y_all = (user_idx, item_idx) if self.user_based else (item_idx, user_idx)
        x, y = x_all[known], y_all[known]
        order = np.argsort(x, kind="stable")
        xs = x[order]
        group_x, starts = np.unique(xs, return_index=True)
        group_ptr = np.append(starts, len(xs)).astype(np.int64)
        s_ptr, s_idx, s_val = self._cached("similarity_arrays", lambda: _csr32(self.similarity_))
        yr = self._y_ratings()
        y_ptr, y_idx, y_val = self._cached("y_ratings_arrays", lambda: _csr32(yr))
        bx, by = (
            (self.user_bias_, self.item_bias_)
            if self.user_based
            else (self.item_bias_, self.user_bias_)
        )
        kind = self._kind
        values, _ = _core.neighbors.knn_predict(
            s_ptr,
            s_idx,
            s_val,
            self.similarity_.shape[0],
            y_ptr,
            y_idx,
            y_val,
            yr.shape[0],
            group_x.astype(np.int32),
            group_ptr,
            np.ascontiguousarray(y[order], dtype=np.int32),
            kind,
            int(self.k),
            int(self.min_k),
            mu,
            np.ascontiguousarray(self.x_mean_, dtype=np.float64) if kind in (1, 2) else None,
            np.ascontiguousarray(self.x_sigma_, dtype=np.float64) if kind == 2 else None,
            np.ascontiguousarray(bx, dtype=np.float64) if kind == 3 else None,
            np.ascontiguousarray(by, dtype=np.float64) if kind == 3 else None,
            resolve_threads(self._threads()),
        )
        values = np.where(np.isnan(values), mu, values)  # KNNBasic without enough neighbours
        out = np.empty(len(known))
        out[order] = values
        est[known] = out
        return est

    def _check_state(self) -> None:
        super()._check_state()
        if len(self.ratings_) != self.seen_.nnz:
            raise ValueError("ratings_ does not match the interactions")


_KNN_DOC = """{summary}

    {formula}

    A Surprise-compatible k-NN rating predictor: the ``k`` most similar {neighbours} who
    {rated} (among those with a positive similarity) are aggregated; fewer than ``min_k`` such
    neighbours {fallback}. Similarities follow Surprise's definitions (norms and means over
    the co-rated {support}); only positive similarities are stored, since only those take
    part in a prediction.

    Parameters
    ----------
    k : int
        Neighbours aggregated per prediction (Surprise's ``k``, default 40).
    min_k : int
        Minimum number of neighbours (Surprise's ``min_k``).
    similarity : str
        One of :data:`SIMILARITIES`; Surprise offers ``"cosine"``, ``"msd"`` (its default),
        ``"pearson"`` and ``"pearson_baseline"``.
    user_based : bool
        User-user (Surprise's default) or item-item similarities.
    min_support : int
        Pairs with fewer co-rated entries get no similarity.
    shrink : float, optional
        Shrinkage; ``None`` means 100 for ``pearson_baseline`` (as Surprise) and 0 otherwise.
    max_neighbors : int, optional
        Keep only this many neighbours per user/item in ``similarity_`` (memory O(n x
        max_neighbors)); ``None`` keeps every positive similarity, which is what reproduces
        Surprise (the ``k`` nearest raters of an item need not be among a user's global top-k).
    baseline, baseline_epochs, reg_u, reg_i, reg, learning_rate
        How the biases are fitted where needed (``KNNBaseline``, ``pearson_baseline``), as
        :class:`BaselineOnly` (Surprise's ``bsl_options``).
    rating_scale : (low, high), optional
        Predictions are clipped to it; defaults to the training ratings' range.
    n_threads : int
        Threads; 0 means all cores.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix
        users x users (``user_based``) or items x items.
    global_mean_, user_bias_, item_bias_, x_mean_, x_sigma_, rating_scale_
        The statistics the predictions use (biases are zero when not needed).
"""


def _knn_doc(summary: str, formula: str, fallback: str) -> str:
    return _KNN_DOC.format(
        summary=summary,
        formula=formula,
        fallback=fallback,
        neighbours="users (or items)",
        rated="rated the item (or that the user rated)",
        support="entries of each pair",
    )


class KNNBasic(_RatingKNN):
    _kind = 0
    __doc__ = _knn_doc(
        "Weighted average of the neighbours' ratings (Surprise's ``KNNBasic``).",
        "r_ui = sum_v sim(u, v) r_vi / sum_v sim(u, v)",
        "make the prediction the global mean",
    )


class KNNWithMeans(_RatingKNN):
    _kind = 1
    __doc__ = _knn_doc(
        "Mean-centred k-NN (Surprise's ``KNNWithMeans``).",
        "r_ui = mu_u + sum_v sim(u, v) (r_vi - mu_v) / sum_v sim(u, v)",
        "leave the mean alone",
    )


class KNNWithZScore(_RatingKNN):
    _kind = 2
    __doc__ = _knn_doc(
        "z-score k-NN (Surprise's ``KNNWithZScore``).",
        "r_ui = mu_u + sigma_u sum_v sim(u, v) (r_vi - mu_v) / sigma_v / sum_v sim(u, v)",
        "leave the mean alone",
    )


class KNNBaseline(_RatingKNN):
    _kind = 3
    __doc__ = _knn_doc(
        "k-NN on the residuals of a baseline (Surprise's ``KNNBaseline``).",
        "r_ui = b_ui + sum_v sim(u, v) (r_vi - b_vi) / sum_v sim(u, v), b_ui = mu + b_u + b_i",
        "leave the baseline alone",
    )
