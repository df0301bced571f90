"""Ranking metrics over top-k lists, computed in C++.

Conventions (defaults reproduce trec_eval):

* ``precision@k`` = relevant items in the top k / k (k, not the list length, is the divisor).
* ``recall@k`` = relevant items in the top k / all relevant items.
* ``ndcg@k``: DCG = sum over ranks i = 1..k of gain(rel_i) / log2(i + 1); IDCG is the DCG of
  the ideal ordering of *all* the user's relevant items, truncated at k. ``gain="linear"`` uses
  the grade itself (trec_eval), ``"exp2"`` uses 2**grade - 1 (Burges et al., LightGBM),
  ``"binary"`` uses 1 for every relevant item.
* ``map@k``: sum of precision@i over the ranks i <= k that hold a relevant item, divided by the
  number of relevant items (``ap_denominator="n_rel"``, trec_eval) or by ``min(n_rel, k)``
  (``"min_nrel_k"``, common in recommender libraries).
* ``mrr@k`` = 1 / rank of the first relevant item within the top k, else 0.
* ``hit_rate@k`` = 1 if any relevant item is in the top k, else 0.
* ``auc``: the share of (relevant, non-relevant) pairs ranked in the right order, listed items
  in list order and all unlisted items tied below them (a tie counts one half); items in
  ``exclude`` (e.g. training items) take no part.

An item is relevant when its grade is greater than ``rel_threshold`` (default 0). A user with
no relevant items scores 0 on every metric by default (``empty="zero"``); ``empty="one"``
scores 1 (LightGBM, XGBoost) and ``empty="skip"`` leaves such users out of the means
(their per-user values are NaN). Padding slots (-1) in a list count as non-relevant and a
repeated item counts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from . import _core
from ._validation import check_positive_int, csr_arrays, resolve_threads

__all__ = [
    "RANKING_METRICS",
    "ranking_metrics",
    "precision_at_k",
    "recall_at_k",
    "ndcg_at_k",
    "map_at_k",
    "mrr_at_k",
    "hit_rate_at_k",
    "auc",
    "relevance_matrix",
]

RANKING_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "auc")
_CORE_ORDER: tuple[str, ...] = tuple(_core.metrics.METRIC_NAMES)
_GAINS = {"linear": 0, "exp2": 1, "binary": 2}
_AP_DEN = {"n_rel": 0, "min_nrel_k": 1}
_EMPTY = ("zero", "one", "skip")

Gain = Literal["linear", "exp2", "binary"]
Empty = Literal["zero", "one", "skip"]


def _as_lists(recommended: Any) -> np.ndarray:
    arr = np.asarray(recommended)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(
            f"recommended must be a 2-D array (users x ranked item indices), got shape {arr.shape}"
        )
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            pass
        else:
            raise ValueError(
                f"recommended must hold integer item indices (-1 for an empty slot), got dtype {arr.dtype}"
            )
    if arr.size and (arr.min() < -1 or arr.max() > np.iinfo(np.int32).max):
        raise IndexError("recommended holds item indices below -1 or beyond the int32 range")
    return np.ascontiguousarray(arr, dtype=np.int32)


def relevance_matrix(relevant: Any, n_items: int | None = None) -> sp.csr_matrix:
    """A users x items CSR of relevance grades from a sparse matrix, Interactions or lists.

    ``relevant`` may be a scipy.sparse matrix, a :class:`~recforge.Interactions` (its weights are
    the grades), or a sequence with one iterable of relevant item indices per user (grade 1).
    """
    from .data import Interactions

    if isinstance(relevant, Interactions):
        return relevant.matrix.tocsr()
    if sp.issparse(relevant):
        return sp.csr_matrix(relevant)
    if isinstance(relevant, Sequence) or isinstance(relevant, np.ndarray):
        rows = [np.asarray(list(r) if not isinstance(r, np.ndarray) else r, dtype=np.int64) for r in relevant]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        cols = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        if cols.size and cols.min() < 0:
            raise IndexError("relevant item indices must be >= 0")
        width = int(n_items) if n_items is not None else (int(cols.max()) + 1 if cols.size else 0)
        if cols.size and cols.max() >= width:
            raise IndexError(f"relevant item index {int(cols.max())} is outside [0, {width})")
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        data = np.ones(cols.size, dtype=np.float32)
        m = sp.csr_matrix((data, cols, indptr), shape=(len(rows), width))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m
    raise ValueError(
        "relevant must be a scipy.sparse matrix, recforge.Interactions or a list of item-index lists"
    )


def _check_rel(rel: sp.csr_matrix, lists: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if rel.shape[0] != lists.shape[0]:
        raise ValueError(
            f"relevant has {rel.shape[0]} rows but recommended has {lists.shape[0]}; "
            "row i of both must describe the same user"
        )
    indptr, indices, data = csr_arrays(rel, rel.shape, "relevant")
    if data.size and np.isnan(data).any():
        raise ValueError("relevance grades contain NaN")
    return indptr, indices, data


def _apply_empty(values: np.ndarray, empty_rows: np.ndarray, empty: str) -> np.ndarray:
    if empty == "zero" or not empty_rows.any():
        return values
    values = values.copy()
    values[empty_rows] = 1.0 if empty == "one" else np.nan
    return values


def ranking_metrics(
    recommended: Any,
    relevant: Any,
    k: int,
    *,
    metrics: Iterable[str] | None = None,
    gain: Gain = "linear",
    ap_denominator: Literal["n_rel", "min_nrel_k"] = "n_rel",
    rel_threshold: float = 0.0,
    empty: Empty = "zero",
    exclude: Any = None,
    n_threads: int = 0,
) -> dict[str, np.ndarray]:
    """Per-user values of ranking metrics at cut-off ``k``.

    Parameters
    ----------
    recommended : int array of shape (n_users, list_len)
        Ranked item indices per user, best first (``-1`` for an empty slot), e.g. the output of
        ``model.recommend(users, ids="index")``.
    relevant : scipy.sparse matrix, Interactions, or list of index lists
        Held-out relevance per user: row i belongs to row i of ``recommended``.
    k : int
        Cut-off; lists shorter than k count the missing ranks as non-relevant.
    metrics : names from :data:`RANKING_METRICS`, optional
        Which to compute (default: all but ``auc``).
    gain, ap_denominator, rel_threshold, empty
        Conventions, see the module documentation.
    exclude : scipy.sparse matrix, optional
        Items that take no part in ``auc`` (typically the training interactions).
    n_threads : int
        0 means all cores.

    Returns
    -------
    dict of metric name -> float64 array of shape (n_users,)
    """
    k = check_positive_int(k, "k")
    names = list(metrics) if metrics is not None else [m for m in RANKING_METRICS if m != "auc"]
    unknown = [m for m in names if m not in RANKING_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(RANKING_METRICS)}")
    if gain not in _GAINS:
        raise ValueError(f"gain must be one of {list(_GAINS)}, got {gain!r}")
    if ap_denominator not in _AP_DEN:
        raise ValueError(f"ap_denominator must be one of {list(_AP_DEN)}, got {ap_denominator!r}")
    if empty not in _EMPTY:
        raise ValueError(f"empty must be one of {list(_EMPTY)}, got {empty!r}")
    if not np.isfinite(rel_threshold):
        raise ValueError("rel_threshold must be a finite number")
    lists = _as_lists(recommended)
    rel = relevance_matrix(relevant)
    indptr, indices, data = _check_rel(rel, lists)
    threads = resolve_threads(n_threads)
    if lists.size and lists.max() >= rel.shape[1]:
        raise IndexError(
            f"recommended holds item index {int(lists.max())} but relevant has only "
            f"{rel.shape[1]} item columns"
        )
    out: dict[str, np.ndarray] = {}
    values, n_rel = _core.metrics.ranking_metrics(
        lists, indptr, indices, data, rel.shape[1], k, _GAINS[gain], _AP_DEN[ap_denominator],
        float(rel_threshold), threads,
    )
    empty_rows = n_rel == 0
    for name in names:
        if name == "auc":
            ex_indptr = ex_indices = None
            if exclude is not None:
                ex_indptr, ex_indices, _ = csr_arrays(exclude, rel.shape, "exclude")
            vals = _core.metrics.ranking_auc(
                lists, indptr, indices, data, rel.shape[1], ex_indptr, ex_indices,
                float(rel_threshold), threads,
            )
            vals = np.where(empty_rows, 0.0, vals)
            out[name] = _apply_empty(vals, empty_rows, empty)
        else:
            out[name] = _apply_empty(values[_CORE_ORDER.index(name)], empty_rows, empty)
    return out


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _single(name: str, recommended: Any, relevant: Any, k: int, per_user: bool, **kw: Any):
    vals = ranking_metrics(recommended, relevant, k, metrics=[name], **kw)[name]
    return vals if per_user else _mean(vals)


def precision_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False, **kw: Any):
    """Mean (or per-user, ``per_user=True``) precision@k; options as :func:`ranking_metrics`."""
    return _single("precision", recommended, relevant, k, per_user, **kw)


def recall_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False, **kw: Any):
    """Mean (or per-user) recall@k; options as :func:`ranking_metrics`."""
    return _single("recall", recommended, relevant, k, per_user, **kw)


def ndcg_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False, **kw: Any):
    """Mean (or per-user) nDCG@k; options as :func:`ranking_metrics`."""
    return _single("ndcg", recommended, relevant, k, per_user, **kw)


def map_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False, **kw: Any):
    """Mean (or per-user) average precision at k; options as :func:`ranking_metrics`."""
    return _single("map", recommended, relevant, k, per_user, **kw)


def mrr_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False, **kw: Any):
    """Mean (or per-user) reciprocal rank at k; options as :func:`ranking_metrics`."""
    return _single("mrr", recommended, relevant, k, per_user, **kw)


def hit_rate_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False, **kw: Any):
    """Mean (or per-user) hit rate at k; options as :func:`ranking_metrics`."""
    return _single("hit_rate", recommended, relevant, k, per_user, **kw)


def auc(recommended: Any, relevant: Any, *, exclude: Any = None, per_user: bool = False, **kw: Any):
    """Mean (or per-user) ROC AUC of ranked lists; see the module documentation.

    For an exact AUC pass a full ranking of the items (``n = n_items`` minus the excluded).
    """
    lists = _as_lists(recommended)
    k = max(lists.shape[1], 1)
    vals = ranking_metrics(lists, relevant, k, metrics=["auc"], exclude=exclude, **kw)["auc"]
    return vals if per_user else _mean(vals)
