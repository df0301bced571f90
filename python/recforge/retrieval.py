"""Retrieval: exact batched top-k over factor vectors or dense scores.

The exact kernels run in C++ with the GIL released. They compute scores block by block (memory
never grows to queries x items), exclude each query's listed items (for example the items a
user has already seen) and can search only a candidate subset. Ties are broken by the smaller
item index, so results equal a stable ``argsort`` of the negated scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _core
from ._validation import (
    INT32_MAX,
    as_float_matrix,
    as_index_array,
    check_positive_int,
    csr_arrays,
    resolve_threads,
)

__all__ = ["topk_dot", "topk_dense", "kernel_name"]


def kernel_name() -> str:
    """Name of the dot-product kernel chosen for this CPU (``"avx2-fma"`` or ``"generic"``)."""
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
