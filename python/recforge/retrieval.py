"""Retrieval: exact batched top-k, and exact and HNSW nearest-neighbour indexes.

The exact kernels run in C++ with the GIL released. They compute scores block by block (memory
never grows to queries x items), exclude each query's listed items (for example the items a
user has already seen) and can search only a candidate subset. Ties are broken by the smaller
item index, so results equal a stable ``argsort`` of the negated scores.

:class:`ExactIndex` and :class:`HNSWIndex` hold item vectors under labels and answer
``query(queries, k, exclude=..., candidates=...)`` the same way; factor models use them
through ``model.build_index(...)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _core
from ._persistence import read_npz, write_npz
from ._validation import (
    INT32_MAX,
    RowLists,
    as_float_matrix,
    as_index_array,
    check_positive_int,
    csr_arrays,
    resolve_threads,
)

__all__ = [
    "topk_dot",
    "topk_dense",
    "topk_candidates",
    "kernel_name",
    "ExactIndex",
    "HNSWIndex",
    "recall_vs_exact",
    "index_recall",
]


def kernel_name() -> str:
    """Name of the dot-product kernel chosen for this CPU (``"avx512"``, ``"avx2-fma"`` or ``"generic"``)."""
    return str(_core.topk.kernel_name())


def _prepare(k: Any, n_queries: int, n_items: int, exclude: Any, candidates: Any):
    k = check_positive_int(k, "k")
    if n_items > INT32_MAX:
        raise ValueError(f"at most {INT32_MAX} items are supported, got {n_items}")
    cand = None
    n_search = n_items
    if candidates is not None:
        cand = as_index_array(candidates, n_items, "candidates")
        if cand.ndim != 1:
            raise ValueError(f"candidates must be a 1-D array of item indices, got shape {cand.shape}")
        cand = np.unique(cand).astype(np.int32)
        n_search = cand.size
    if k > n_search:
        what = "candidate items" if candidates is not None else "items in the catalog"
        raise ValueError(
            f"k={k} is larger than the {n_search} {what}; ask for at most {n_search}"
        )
    ex_indptr = ex_indices = None
    if exclude is not None:
        ex_indptr, ex_indices, _ = csr_arrays(exclude, (n_queries, n_items), "exclude")
    return k, ex_indptr, ex_indices, cand


def _exclusion_arrays(exclude: Any, shape: tuple[int, int]) -> tuple[Any, Any]:
    """(indptr, indices) of exclusions given as a scipy matrix or as RowLists (None: none)."""
    if exclude is None:
        return None, None
    if isinstance(exclude, RowLists):
        return exclude.indptr, exclude.indices
    ex_indptr, ex_indices, _ = csr_arrays(exclude, shape, "exclude")
    return ex_indptr, ex_indices


def _raw_topk_dot(
    q: np.ndarray, v: np.ndarray, k: int, exclude: Any, candidates: np.ndarray | None, n_threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """topk_dot on arrays already checked (float32, C-contiguous, finite); exclude in CSR."""
    ex_indptr, ex_indices = _exclusion_arrays(exclude, (q.shape[0], v.shape[0]))
    return _core.topk.topk_dot(q, v, k, ex_indptr, ex_indices, candidates, n_threads)


def topk_dot(
    queries: Any,
    items: Any,
    k: int,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    candidates: Any = None,
    n_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items with the largest dot product for every query row.

    Parameters
    ----------
    queries : array of shape (n_queries, n_factors)
        Query vectors, e.g. user factors.
    items : array of shape (n_items, n_factors)
        Item vectors.
    k : int
        Number of items per query; must not exceed the number of searchable items.
    exclude : scipy.sparse matrix of shape (n_queries, n_items), optional
        Items never returned for a query (the stored pattern counts, not the values).
    candidates : array of item indices, optional
        Search only these items (duplicates are ignored).
    n_threads : int
        Threads to use; 0 means all cores.

    Returns
    -------
    items : int32 array of shape (n_queries, k)
        Best first. Where exclusions leave fewer than ``k`` items the remaining slots are -1.
    scores : float32 array of shape (n_queries, k)
        The dot products; ``-inf`` in padded slots.
    """
    q = as_float_matrix(queries, "queries")
    v = as_float_matrix(items, "items")
    if q.shape[1] != v.shape[1]:
        raise ValueError(
            f"queries have {q.shape[1]} factors but items have {v.shape[1]}; they must match"
        )
    k, ex_indptr, ex_indices, cand = _prepare(k, q.shape[0], v.shape[0], exclude, candidates)
    return _core.topk.topk_dot(q, v, k, ex_indptr, ex_indices, cand, resolve_threads(n_threads))


def _raw_topk_candidates(
    q: np.ndarray, v: np.ndarray, cand: np.ndarray, k: int, exclude: Any, n_threads: int
) -> tuple[np.ndarray, np.ndarray]:
    ex_indptr, ex_indices = _exclusion_arrays(exclude, (q.shape[0], v.shape[0]))
    return _core.topk.topk_candidates(
        q, v, np.ascontiguousarray(cand, dtype=np.int32), k, ex_indptr, ex_indices, n_threads
    )


def topk_dense(
    scores: Any,
    k: int,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    candidates: Any = None,
    n_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest entries of each row of a dense (n_queries, n_items) score matrix.

    NaN scores are never selected; otherwise the same contract as :func:`topk_dot`.
    """
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (queries x items), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"scores must be numeric, got dtype {arr.dtype}")
    s = np.ascontiguousarray(arr, dtype=np.float32)
    k, ex_indptr, ex_indices, cand = _prepare(k, s.shape[0], s.shape[1], exclude, candidates)
    return _core.topk.topk_dense(s, k, ex_indptr, ex_indices, cand, resolve_threads(n_threads))


def topk_candidates(
    queries: Any,
    items: Any,
    candidates: Any,
    k: int,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    n_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact re-scoring of per-query candidate lists.

    ``candidates`` is an (n_queries, m) array of item indices (-1 for an empty slot, repeats
    count once); each row's best ``k`` by dot product are returned, excluded items skipped and
    missing slots padded with -1 / -inf.
    """
    q = as_float_matrix(queries, "queries")
    v = as_float_matrix(items, "items")
    if q.shape[1] != v.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} factors but items have {v.shape[1]}; they must match")
    cand = np.asarray(candidates)
    if cand.ndim != 2 or cand.shape[0] != q.shape[0]:
        raise ValueError(f"candidates must be a 2-D array with one row per query, got shape {cand.shape}")
    if cand.size and (cand.min() < -1 or cand.max() >= v.shape[0]):
        raise IndexError(f"candidates hold item indices outside [0, {v.shape[0]})")
    k = check_positive_int(k, "k")
    return _raw_topk_candidates(q, v, cand, k, exclude, resolve_threads(n_threads))


# -- indexes ------------------------------------------------------------------------------------

_METRICS = ("ip", "cosine", "l2")
_INDEX_FORMAT = 1


def _check_metric(metric: str) -> str:
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {list(_METRICS)}, got {metric!r}")
    return metric


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


class _VectorIndex:
    """Shared bookkeeping of the indexes: stored vectors, labels, deletions, exclusion."""

    kind = "base"

    def __init__(self, metric: str = "ip", n_threads: int = 0) -> None:
        self.metric = _check_metric(metric)
        self.n_threads = n_threads
        self.vectors_: np.ndarray | None = None
        self.labels_ = np.empty(0, dtype=np.int64)
        self.deleted_ = np.empty(0, dtype=bool)

    # -- state --------------------------------------------------------------------------
    @property
    def is_built(self) -> bool:
        return self.vectors_ is not None and len(self.labels_) > 0

    @property
    def dim(self) -> int:
        self._check_built()
        return int(self.vectors_.shape[1])

    def __len__(self) -> int:
        """Number of live (not deleted) items."""
        count = getattr(self, "_live_cache", None)
        if count is None or count[0] is not self.deleted_ or count[1] != len(self.deleted_):
            count = (self.deleted_, len(self.deleted_), int(len(self.deleted_) - self.deleted_.sum()))
            self._live_cache = count
        return count[2]

    def _check_built(self) -> None:
        if self.vectors_ is None or len(self.labels_) == 0:
            raise ValueError(f"this {type(self).__name__} is empty: call build(vectors) first")

    def _rows(self, labels: Any, what: str = "label", *, skip_unknown: bool = False) -> np.ndarray:
        """Row positions of labels; IndexError naming unknown ones (or drop them)."""
        lab = np.asarray(labels)
        if lab.size == 0:
            return np.empty(0, dtype=np.int64)
        if lab.dtype.kind not in "iu":
            raise ValueError(f"{what}s must be integers, got dtype {lab.dtype}")
        lab = lab.astype(np.int64).ravel()
        n = len(self.labels_)
        if n and self.labels_[0] == 0 and self.labels_[-1] == n - 1 and self._identity_labels():
            rows = lab.copy()
            bad = (lab < 0) | (lab >= n)
        else:
            order = np.argsort(self.labels_, kind="stable")
            pos = np.clip(np.searchsorted(self.labels_[order], lab), 0, max(n - 1, 0))
            rows = order[pos] if n else np.zeros(len(lab), dtype=np.int64)
            bad = (self.labels_[rows] != lab) if n else np.ones(len(lab), dtype=bool)
        if bad.any():
            if skip_unknown:
                return rows[~bad]
            shown = ", ".join(str(v) for v in np.unique(lab[bad])[:5])
            raise IndexError(f"unknown {what}(s): {shown}")
        return rows

    def _identity_labels(self) -> bool:
        cached = getattr(self, "_identity_cache", None)
        if cached is None or cached[0] != len(self.labels_):
            cached = (len(self.labels_), bool(np.array_equal(self.labels_, np.arange(len(self.labels_)))))
            self._identity_cache = cached
        return cached[1]

    def _coerce_new(self, vectors: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        vec = as_float_matrix(vectors, "vectors")
        if vec.shape[0] == 0:
            raise ValueError("no vectors given: pass an (n_items, dim) array with at least one row")
        if self.vectors_ is not None and vec.shape[1] != self.vectors_.shape[1]:
            raise ValueError(f"vectors have {vec.shape[1]} dimensions but the index has {self.vectors_.shape[1]}")
        start = int(self.labels_.max()) + 1 if len(self.labels_) else 0
        lab = np.arange(start, start + len(vec), dtype=np.int64) if labels is None else np.asarray(labels)
        if lab.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
        lab = lab.astype(np.int64).ravel()
        if lab.shape[0] != vec.shape[0]:
            raise ValueError(f"{vec.shape[0]} vectors but {lab.shape[0]} labels")
        if (lab < 0).any():
            raise ValueError("labels must be >= 0")
        if len(np.unique(lab)) != len(lab) or np.isin(lab, self.labels_).any():
            raise ValueError("labels must be unique and not already in the index")
        return vec, lab

    def build(self, vectors: Any, labels: Any = None) -> _VectorIndex:
        """Index these vectors (replacing anything indexed before); returns ``self``."""
        self.vectors_ = None
        self.labels_ = np.empty(0, dtype=np.int64)
        self.deleted_ = np.empty(0, dtype=bool)
        vec, lab = self._coerce_new(vectors, labels)
        self.vectors_, self.labels_ = vec, lab
        self.deleted_ = np.zeros(len(lab), dtype=bool)
        self._on_build()
        return self

    def add_items(self, vectors: Any, labels: Any = None) -> _VectorIndex:
        """Add vectors under new labels (default: continuing after the largest label)."""
        if self.vectors_ is None:
            return self.build(vectors, labels)
        vec, lab = self._coerce_new(vectors, labels)
        first = len(self.labels_)
        self.vectors_ = np.ascontiguousarray(np.vstack([self.vectors_, vec]))
        self.labels_ = np.concatenate([self.labels_, lab])
        self.deleted_ = np.concatenate([self.deleted_, np.zeros(len(lab), dtype=bool)])
        self._on_add(first)
        return self

    def mark_deleted(self, labels: Any) -> None:
        """Stop returning these labels; IndexError for unknown ones, ValueError if already deleted."""
        self._check_built()
        rows = self._rows(np.atleast_1d(labels))
        if self.deleted_[rows].any():
            shown = ", ".join(str(v) for v in self.labels_[rows[self.deleted_[rows]]][:5])
            raise ValueError(f"label(s) already deleted: {shown}")
        self.deleted_[rows] = True
        self._live_cache = None
        self._on_delete(rows)

    def get_vectors(self, labels: Any) -> np.ndarray:
        """The stored vectors of these labels (deleted labels raise ValueError)."""
        self._check_built()
        rows = self._rows(np.atleast_1d(labels))
        if self.deleted_[rows].any():
            raise ValueError("a requested label was deleted from the index")
        return self.vectors_[rows]

    # -- hooks --------------------------------------------------------------------------
    def _on_build(self) -> None:
        pass

    def _on_add(self, first: int) -> None:
        pass

    def _on_delete(self, rows: np.ndarray) -> None:
        pass

    # -- querying -------------------------------------------------------------------------
    def _prepare_query(self, queries: Any, k: Any, exclude: Any, candidates: Any):
        """Checked queries, k, the allowed-rows mask (None: every live row) and exclusions."""
        self._check_built()
        q = as_float_matrix(np.atleast_2d(queries), "queries")
        if q.shape[1] != self.vectors_.shape[1]:
            raise ValueError(
                f"queries have {q.shape[1]} dimensions but the index holds {self.vectors_.shape[1]}-dimensional vectors"
            )
        k = check_positive_int(k, "k")
        allowed = None
        n_allowed = len(self)
        if candidates is not None or n_allowed < len(self.labels_):
            allowed = ~self.deleted_
            if candidates is not None:
                mask = np.zeros(len(self.labels_), dtype=bool)
                mask[self._rows(np.atleast_1d(candidates), "candidate")] = True
                allowed &= mask
            n_allowed = int(allowed.sum())
        if k > n_allowed:
            raise ValueError(f"k={k} is larger than the {n_allowed} items that can be returned; ask for at most {n_allowed}")
        ex = self._exclusion_rows(exclude, q.shape[0]) if exclude is not None else None
        return q, k, allowed, ex

    def _exclusion_rows(self, exclude: Any, n_queries: int) -> sp.csr_matrix | RowLists:
        """Exclusions (a CSR over labels, or one label list per query) as a CSR over rows.

        Labels the index does not hold are ignored (they cannot be returned anyway)."""
        n = len(self.labels_)
        if isinstance(exclude, RowLists):
            if exclude.shape[0] != n_queries:
                raise ValueError(f"exclude has {exclude.shape[0]} rows but there are {n_queries} queries")
            if self._identity_labels() and exclude.shape[1] == n:
                return exclude
            exclude = exclude.csr()
        if sp.issparse(exclude):
            m = exclude if exclude.format == "csr" else sp.csr_matrix(exclude)
            if m.shape[0] != n_queries:
                raise ValueError(f"exclude has {m.shape[0]} rows but there are {n_queries} queries")
            if self._identity_labels() and m.shape[1] == n:
                return m
            lengths = np.diff(m.indptr)
            lists = np.split(m.indices.astype(np.int64), np.cumsum(lengths)[:-1]) if n_queries else []
        else:
            if len(exclude) != n_queries:
                raise ValueError(f"exclude has {len(exclude)} lists but there are {n_queries} queries")
            lists = [np.asarray(x).ravel() for x in exclude]
            for x in lists:
                if x.size and x.dtype.kind not in "iu":
                    raise ValueError(f"exclude lists must hold integer labels, got dtype {x.dtype}")
        # plain arrays, not scipy: this runs once per single-user query
        if self._identity_labels():  # the kernels sort the lists and skip repeats themselves
            rows = [x[(x >= 0) & (x < n)] for x in lists]
        else:
            rows = [np.unique(self._rows(x, skip_unknown=True)) for x in lists]
        indptr = np.zeros(n_queries + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        if len(rows) == 1:
            indices = np.ascontiguousarray(rows[0], dtype=np.int32)
        else:
            indices = np.concatenate(rows).astype(np.int32) if rows else np.empty(0, dtype=np.int32)
        return RowLists(indptr, indices, (n_queries, n))

    def _exact_vectors(self) -> tuple[np.ndarray, Any]:
        """(item vectors, query transform) so that a dot product ranks like the metric."""
        if self.metric == "ip":
            return self.vectors_, lambda q: q
        if self.metric == "cosine":
            return _unit(self.vectors_), _unit
        sq = (self.vectors_.astype(np.float64) ** 2).sum(axis=1)
        aug = np.hstack([2.0 * self.vectors_, -sq[:, None]]).astype(np.float32)
        return aug, lambda q: np.hstack([q, np.ones((q.shape[0], 1), dtype=np.float32)])

    def _finish_scores(self, q: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.metric == "l2":
            qn = (q.astype(np.float64) ** 2).sum(axis=1, keepdims=True)
            return np.where(np.isfinite(scores), scores - qn, scores).astype(np.float32)
        return scores

    def _exact(self, q, k, allowed, ex, threads):
        vectors, transform = self._exact_cache()
        cand = None if allowed is None else np.flatnonzero(allowed).astype(np.int32)
        rows, scores = _raw_topk_dot(np.ascontiguousarray(transform(q), dtype=np.float32), vectors, k, ex, cand, threads)
        return rows, self._finish_scores(q, scores)

    def _exact_cache(self):
        cache = getattr(self, "_exact_vectors_cache", None)
        if cache is None or cache[0] is not self.vectors_:
            cache = (self.vectors_, *self._exact_vectors())
            self._exact_vectors_cache = cache
        return cache[1], cache[2]

    def _to_labels(self, rows: np.ndarray) -> np.ndarray:
        if self._identity_labels():
            return rows.astype(np.int64)  # -1 (no result) stays -1
        out = self.labels_[np.where(rows >= 0, rows, 0)]
        out[rows < 0] = -1
        return out

    def query(
        self, queries: Any, k: int, *, exclude: Any = None, candidates: Any = None, n_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best labels for each query row, best first.

        Parameters
        ----------
        queries : array (n_queries, dim) or (dim,)
        k : int
        exclude : scipy.sparse (n_queries x labels) or a list of label arrays, optional
            Labels never returned for a query (e.g. the user's seen items).
        candidates : labels, optional
            Search only these labels (an availability rule).

        Returns
        -------
        labels : int64 (n_queries, k), -1 where fewer remain; scores : float32, higher is
        better (inner product, cosine, or minus the squared L2 distance).
        """
        raise NotImplementedError

    # -- persistence ------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        return {"metric": self.metric, "n_threads": self.n_threads}

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore_extra(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    def save(self, path: Any) -> Any:
        """Write the index to one ``.npz`` file (no pickle inside); returns the path."""
        import json

        self._check_built()
        arrays = {"vectors": self.vectors_, "labels": self.labels_, "deleted": self.deleted_, **self._extra_arrays()}
        return write_npz(path, type(self).__name__, _INDEX_FORMAT, json.dumps(self._params()), arrays)

    @classmethod
    def load(cls, path: Any) -> _VectorIndex:
        """Read an index written by :meth:`save`."""
        name, params, arrays = read_npz(path, "index", _INDEX_FORMAT)
        target = {"ExactIndex": ExactIndex, "HNSWIndex": HNSWIndex}.get(name)
        if target is None or (cls is not _VectorIndex and target is not cls):
            raise ValueError(f"{path} holds a {name}, not a {cls.__name__}")
        index = target(**params)
        try:
            index.vectors_ = np.ascontiguousarray(arrays["vectors"], dtype=np.float32)
            index.labels_ = arrays["labels"].astype(np.int64)
            index.deleted_ = arrays["deleted"].astype(bool)
            if not (len(index.labels_) == len(index.deleted_) == len(index.vectors_)):
                raise ValueError("vectors, labels and deletions differ in length")
            index._restore_extra(arrays)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{path} holds an inconsistent {name}: {exc}") from exc
        return index

    _CACHES = ("_exact_vectors_cache", "_live_cache", "_identity_cache")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._CACHES}

    def __repr__(self) -> str:
        size = f"{len(self):,} items x {self.vectors_.shape[1]}" if self.vectors_ is not None else "empty"
        return f"{type(self).__name__}(metric={self.metric!r}, {size})"


class ExactIndex(_VectorIndex):
    """Brute-force search with the C++ blocked top-k: the exact answer, and the recall oracle.

    Parameters
    ----------
    metric : {"ip", "cosine", "l2"}
        Inner product, cosine similarity, or (negative squared) Euclidean distance.
    n_threads : int
        0 means all cores.
    """

    kind = "exact"

    def query(self, queries, k, *, exclude=None, candidates=None, n_threads=None):
        q, k, allowed, ex = self._prepare_query(queries, k, exclude, candidates)
        threads = resolve_threads(self.n_threads if n_threads is None else n_threads)
        rows, scores = self._exact(q, k, allowed, ex, threads)
        return self._to_labels(rows), scores


class HNSWIndex(_VectorIndex):
    """Approximate search with an HNSW graph (the ``hnswlib`` package), exactly re-scored.

    For ``metric="ip"`` (factor models) the graph is built in one of two ways, chosen by
    ``ip_graph``: ``"ip"`` (default) links items by inner product directly (hnswlib's ``ip``
    space); ``"augment"`` appends ``sqrt(max_norm**2 - |v|**2)`` to every item vector so that
    all share one norm and inner-product order becomes Euclidean order (queries get a 0), the
    classic reduction of maximum inner-product search to nearest neighbours. The direct graph
    found more of the true top items on every catalog measured (``benchmarks/results/retrieval.md``:
    recall@10 0.99 against 0.83 on clustered synthetic factors, 0.99 against 0.83 on ALS item
    factors of Gowalla with the insertion order below); measure yours with
    :func:`recall_vs_exact` and raise ``ef`` or ``M`` as needed. Either way the returned
    candidates are re-scored exactly in C++.

    The order in which items enter a direct inner-product graph matters: on ALS item factors of
    Gowalla, whose norms span four orders of magnitude, inserting the items by increasing norm
    raised recall@10 from 0.65 to 0.99, while on clustered catalogs the same order lowered it
    from 0.99 to 0.9. ``insert_order="auto"`` decides per catalog: it builds both orders on a
    sample of up to 20,000 items, probes each with 300 of the sampled vectors as queries against
    their exact top 10, and keeps the given order unless the norm order is clearly better
    (``insert_order_`` records the choice). Seen items are excluded by over-fetching each batch by its longest
    exclusion list and filtering; a query left with fewer than ``k`` items is answered by exact
    search, so exclusion never loses results.

    Parameters
    ----------
    metric : {"ip", "cosine", "l2"}
    M : int
        Graph degree (hnswlib's ``M``): higher is more accurate and larger.
    ef_construction : int
        Candidate list size while building.
    ef : int
        Candidate list size while searching (at least ``k``); with exclusions it is raised to
        twice the over-fetch size, since excluded items tend to be a user's best matches.
    ip_graph : {"ip", "augment"}
        How an inner-product graph is built (see above).
    insert_order : {"auto", "given", "norm"}
        Order of insertion into a direct inner-product graph: as given, by increasing vector
        norm, or chosen by a probe on a sample (see above). Other graphs use the given order.
    random_state : int
    n_threads : int
        Threads for building and batch queries; 0 means all cores.
    """

    kind = "hnsw"

    def __init__(
        self, metric: str = "ip", *, M: int = 16, ef_construction: int = 200, ef: int = 100,
        ip_graph: str = "ip", insert_order: str = "auto", random_state: int = 0, n_threads: int = 0,
    ) -> None:
        super().__init__(metric, n_threads)
        if ip_graph not in ("ip", "augment"):
            raise ValueError(f"ip_graph must be 'ip' or 'augment', got {ip_graph!r}")
        if insert_order not in ("auto", "given", "norm"):
            raise ValueError(f"insert_order must be 'auto', 'given' or 'norm', got {insert_order!r}")
        self.ip_graph = ip_graph
        self.insert_order = insert_order
        self.insert_order_ = "given"
        self.M = check_positive_int(M, "M")
        self.ef_construction = check_positive_int(ef_construction, "ef_construction")
        self.ef = check_positive_int(ef, "ef")
        self.random_state = int(random_state)
        self._hnsw = None
        self.max_norm_ = 0.0

    def _params(self) -> dict[str, Any]:
        return {
            **super()._params(), "M": self.M, "ef_construction": self.ef_construction, "ef": self.ef,
            "ip_graph": self.ip_graph, "insert_order": self.insert_order, "random_state": self.random_state,
        }

    @property
    def _augmented(self) -> bool:
        return self.metric == "ip" and self.ip_graph == "augment"

    def _space(self) -> str:
        if self.metric == "ip":
            return "l2" if self._augmented else "ip"
        return self.metric

    def _graph_vectors(self, vectors: np.ndarray) -> np.ndarray:
        if not self._augmented:
            return vectors
        norms2 = (vectors.astype(np.float64) ** 2).sum(axis=1)
        extra = np.sqrt(np.maximum(self.max_norm_**2 - norms2, 0.0))
        return np.hstack([vectors, extra[:, None]]).astype(np.float32)

    def _graph_queries(self, q: np.ndarray) -> np.ndarray:
        if not self._augmented:
            return q
        return np.hstack([q, np.zeros((q.shape[0], 1), dtype=np.float32)])

    def _new_graph(self, capacity: int):
        import hnswlib

        dim = self.vectors_.shape[1] + (1 if self._augmented else 0)
        graph = hnswlib.Index(space=self._space(), dim=dim)
        graph.init_index(max_elements=max(capacity, 1), M=self.M, ef_construction=self.ef_construction,
                         random_seed=self.random_state, allow_replace_deleted=False)
        return graph

    def _threads(self) -> int:
        from ._validation import available_cores

        t = resolve_threads(self.n_threads)
        return t if t > 0 else available_cores()

    _PROBE_ITEMS = 20_000
    _PROBE_QUERIES = 300

    def _choose_order(self, norms: np.ndarray) -> str:
        """"given" or "norm" for a direct inner-product graph (see the class documentation)."""
        if self.metric != "ip" or self._augmented or self.insert_order == "given":
            return "given"
        if self.insert_order == "norm":
            return "norm"
        n = len(norms)
        if n < 2 * self._PROBE_QUERIES:
            return "given"  # a graph this small is searched almost exhaustively anyway
        rng = np.random.default_rng(self.random_state)
        sample = np.sort(rng.choice(n, size=min(n, self._PROBE_ITEMS), replace=False))
        vectors = self.vectors_[sample]
        queries = vectors[rng.choice(len(sample), size=self._PROBE_QUERIES, replace=False)]
        k = 10
        truth, _ = _raw_topk_dot(np.ascontiguousarray(queries), np.ascontiguousarray(vectors), k, None, None,
                                 self._threads())
        recall = {}
        for order in ("given", "norm"):
            rows = np.arange(len(sample)) if order == "given" else np.argsort(norms[sample], kind="stable")
            graph = self._new_graph(len(sample))
            graph.add_items(vectors[rows], rows, num_threads=self._threads())
            graph.set_ef(max(self.ef, k))
            found, _ = graph.knn_query(queries, k=k, num_threads=self._threads())
            recall[order] = np.mean([len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)]) / k
        return "norm" if recall["norm"] > recall["given"] + 0.01 else "given"

    def _on_build(self) -> None:
        norms = np.sqrt((self.vectors_.astype(np.float64) ** 2).sum(axis=1))
        self.max_norm_ = float(norms.max())
        self.insert_order_ = self._choose_order(norms)
        rows = np.argsort(norms, kind="stable") if self.insert_order_ == "norm" else np.arange(len(self.labels_))
        self._hnsw = self._new_graph(len(self.labels_))
        self._hnsw.add_items(self._graph_vectors(self.vectors_[rows]), rows, num_threads=self._threads())
        deleted = np.flatnonzero(self.deleted_)
        for row in deleted:
            self._hnsw.mark_deleted(int(row))

    def _on_add(self, first: int) -> None:
        new = self.vectors_[first:]
        if self._augmented and float(np.sqrt((new.astype(np.float64) ** 2).sum(axis=1).max())) > self.max_norm_:
            # a longer vector breaks the shared norm: rebuild the graph with the new maximum
            self._on_build()
            return
        self._hnsw.resize_index(len(self.labels_))
        self._hnsw.add_items(self._graph_vectors(new), np.arange(first, len(self.labels_)), num_threads=self._threads())

    def _on_delete(self, rows: np.ndarray) -> None:
        for row in rows:
            self._hnsw.mark_deleted(int(row))

    def query(self, queries, k, *, exclude=None, candidates=None, n_threads=None):
        q, k, allowed, ex = self._prepare_query(queries, k, exclude, candidates)
        threads = resolve_threads(self.n_threads if n_threads is None else n_threads)
        n_alive = len(self)
        n_blocked = 0 if allowed is None else n_alive - int(allowed.sum())  # live, not candidates
        if n_blocked > n_alive // 2:
            # a small candidate set: exact search over it is cheaper than filtering the graph
            rows, scores = self._exact(q, k, allowed, ex, threads)
            return self._to_labels(rows), scores
        blocked = None
        if n_blocked:
            blocked_rows = np.flatnonzero(~allowed & ~self.deleted_)
            blocked = sp.csr_matrix(
                (np.ones(q.shape[0] * len(blocked_rows), dtype=np.float32),
                 np.tile(blocked_rows, q.shape[0]), np.arange(q.shape[0] + 1) * len(blocked_rows)),
                shape=(q.shape[0], len(self.labels_)),
            )
        if isinstance(ex, RowLists) and blocked is not None:
            ex = ex.csr()
        drop = ex if blocked is None else (blocked if ex is None else (ex + blocked))
        if drop is None or not drop.nnz:
            longest = 0
        elif q.shape[0] == 1:
            longest = int(drop.indptr[1] - drop.indptr[0])
        else:
            longest = int(np.diff(drop.indptr).max())
        fetch = min(k + longest, n_alive)
        # excluded items are usually the user's best matches: widen the search with the fetch
        self._hnsw.set_ef(max(self.ef, 2 * fetch if longest else fetch))
        graph_q = self._graph_queries(q)
        # hnswlib starts its threads on every call: a query or two is faster on this thread
        hnsw_threads = min(threads if threads > 0 else self._threads(), q.shape[0])
        try:
            found, _ = self._hnsw.knn_query(graph_q, k=fetch, num_threads=hnsw_threads)
        except RuntimeError:
            # hnswlib could not return `fetch` results (e.g. many deletions): answer exactly
            rows, scores = self._exact(q, k, allowed, ex, threads)
            return self._to_labels(rows), scores
        vectors, transform = self._exact_cache()
        rows, scores = _raw_topk_candidates(
            np.ascontiguousarray(transform(q), dtype=np.float32), vectors, found, k, drop, threads
        )
        scores = self._finish_scores(q, scores)
        short = np.flatnonzero((rows < 0).any(axis=1))
        if short.size:  # exclusions ate the over-fetch: exact search for those queries
            ex_short = None if ex is None else (ex.csr() if isinstance(ex, RowLists) else ex)[short]
            r2, s2 = self._exact(q[short], k, allowed, ex_short, threads)
            rows[short], scores[short] = r2, s2
        return self._to_labels(rows), scores

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        import os
        import tempfile

        fd, tmp = tempfile.mkstemp(suffix=".hnsw")
        os.close(fd)
        try:
            self._hnsw.save_index(tmp)
            with open(tmp, "rb") as fh:
                graph = np.frombuffer(fh.read(), dtype=np.uint8)
        finally:
            os.unlink(tmp)
        return {"graph": graph, "max_norm": np.array(self.max_norm_), "insert_order": np.array(self.insert_order_)}

    def _restore_extra(self, arrays: dict[str, np.ndarray]) -> None:
        import os
        import tempfile

        import hnswlib

        if "graph" not in arrays:
            raise ValueError("the HNSW graph is missing")
        self.max_norm_ = float(arrays["max_norm"])
        self.insert_order_ = str(arrays["insert_order"]) if "insert_order" in arrays else "given"
        dim = self.vectors_.shape[1] + (1 if self._augmented else 0)
        fd, tmp = tempfile.mkstemp(suffix=".hnsw")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(arrays["graph"].tobytes())
            graph = hnswlib.Index(space=self._space(), dim=dim)
            graph.load_index(tmp, max_elements=len(self.labels_))
        finally:
            os.unlink(tmp)
        if graph.get_current_count() != len(self.labels_):
            raise ValueError("the HNSW graph does not match the stored vectors")
        self._hnsw = graph

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in super().__getstate__().items() if k != "_hnsw"}
        if self._hnsw is not None:
            state["_graph_arrays"] = self._extra_arrays()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        arrays = state.pop("_graph_arrays", None)
        self.__dict__.update(state)
        self._hnsw = None
        if arrays is not None:
            self._restore_extra(arrays)


def recall_vs_exact(index: _VectorIndex, queries: Any, k: int = 10, *, exclude: Any = None) -> float:
    """Mean recall@k of an index against exact search over the same vectors and metric."""
    index._check_built()
    exact = ExactIndex(index.metric, n_threads=index.n_threads)
    exact.vectors_, exact.labels_, exact.deleted_ = index.vectors_, index.labels_, index.deleted_
    approx, _ = index.query(queries, k, exclude=exclude)
    truth, _ = exact.query(queries, k, exclude=exclude)
    hits = [len(set(a[a >= 0].tolist()) & set(t[t >= 0].tolist())) / max((t >= 0).sum(), 1) for a, t in zip(approx, truth)]
    return float(np.mean(hits))


def index_recall(model: Any, users: Any, n: int = 10, *, ids: str = "raw", exclude_seen: bool = True) -> float:
    """Mean recall@n of a model's recommendations served through its index (``build_index``)
    against the same model's exact recommendations, for the given users."""
    if getattr(model, "index_", None) is None:
        raise ValueError(f"this {type(model).__name__} has no index: call build_index() first")
    served, _ = model.recommend(users, n=n, ids=ids, exclude_seen=exclude_seen)
    keep = {k: getattr(model, k) for k in ("index_", "similar_index_") if hasattr(model, k)}
    try:
        model.index_ = None
        exact, _ = model.recommend(users, n=n, ids=ids, exclude_seen=exclude_seen)
    finally:
        for k, v in keep.items():
            setattr(model, k, v)
    served, exact = np.atleast_2d(served), np.atleast_2d(exact)

    def known(row: np.ndarray) -> set:
        return {v for v in row.tolist() if v is not None and v == v and v != -1}

    hits = [len(known(a) & known(t)) / max(len(known(t)), 1) for a, t in zip(served, exact)]
    return float(np.mean(hits))
