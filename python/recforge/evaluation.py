"""Offline evaluation of recommenders on a train/test split."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from ._validation import check_positive_int
from .base import Recommender, as_interactions
from .data import Interactions
from .metrics import RANKING_METRICS, ranking_metrics

__all__ = ["evaluate", "DEFAULT_METRICS"]

DEFAULT_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")


def _same_ids(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and bool(np.all(np.asarray(a) == np.asarray(b)))


def evaluate(
    model: Recommender,
    train: Interactions | None,
    test: Interactions,
    k: int | Iterable[int] = (10, 20),
    metrics: Iterable[str] = DEFAULT_METRICS,
    *,
    users: Any = None,
    exclude_seen: bool = True,
    relevance: Literal["binary", "graded"] = "binary",
    gain: Literal["linear", "exp2", "binary"] = "linear",
    ap_denominator: Literal["n_rel", "min_nrel_k"] = "n_rel",
    empty: Literal["zero", "one", "skip"] = "zero",
    fit: bool | None = None,
    batch_size: int = 4096,
    n_threads: int = 0,
) -> pd.DataFrame:
    """Evaluate a recommender's top-k lists on held-out interactions.

    Parameters
    ----------
    model : Recommender
        Fitted on ``train`` already, or fitted here (``fit=True``, the default when the
        model is not fitted yet).
    train, test : Interactions
        A split with the same id maps (as every ``recforge.split`` function returns). ``train``
        may be None for a fitted model.
    k : int or iterable of int
        Cut-offs; recommendations are computed once at the largest.
    metrics : names from ``recforge.metrics.RANKING_METRICS``
    users : raw user ids, optional
        Users to evaluate; by default every user with at least one test interaction.
    exclude_seen : bool
        Recommend only items the user did not interact with in training.
    relevance : {"binary", "graded"}
        Whether every test interaction counts as relevance 1, or its weight is the grade.
    gain, ap_denominator, empty
        Metric conventions, see :mod:`recforge.metrics`.

    Returns
    -------
    pandas.DataFrame
        One row per (metric, k) with columns ``metric``, ``k``, ``value`` (the mean over users)
        and ``n_users``.
    """
    ks = sorted({check_positive_int(v, "k") for v in ([k] if np.ndim(k) == 0 else list(k))})
    if not ks:
        raise ValueError("k is empty: give at least one cut-off")
    names = list(metrics)
    unknown = [m for m in names if m not in RANKING_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(RANKING_METRICS)}")
    if relevance not in ("binary", "graded"):
        raise ValueError(f"relevance must be 'binary' or 'graded', got {relevance!r}")
    test = as_interactions(test)
    if fit is None:
        fit = not model.is_fitted
    if fit:
        if train is None:
            raise ValueError("train is required to fit the model")
        model.fit(as_interactions(train))
    model._check_fitted()
    if not (_same_ids(model.user_ids_, test.user_ids) and _same_ids(model.item_ids_, test.item_ids)):
        raise ValueError(
            "the test set's id maps differ from the model's training data; build train and test "
            "with recforge.split, or pass user_ids=/item_ids= of the train set when building test"
        )
    test_matrix = test.matrix.tocsr()
    if users is None:
        user_idx = np.flatnonzero(np.diff(test_matrix.indptr) > 0)
    else:
        user_idx = model._to_index(np.atleast_1d(users), "user", "raw")
    if len(user_idx) == 0:
        raise ValueError("no users to evaluate: the test set has no interactions")
    depth = min(max(ks), model.n_items_)
    lists = np.empty((len(user_idx), depth), dtype=np.int32)
    for start in range(0, len(user_idx), batch_size):
        block = user_idx[start : start + batch_size]
        top, _ = model.recommend(
            block, n=depth, exclude_seen=exclude_seen, ids="index", n_threads=n_threads
        )
        lists[start : start + len(block)] = top
    rel = test_matrix[user_idx]
    if relevance == "binary":
        rel = rel.copy()
        rel.data = np.ones_like(rel.data)
    exclude = model.seen_[user_idx] if exclude_seen else None
    rows = []
    for cut in ks:
        values = ranking_metrics(
            lists, rel, cut, metrics=names, gain=gain, ap_denominator=ap_denominator,
            empty=empty, exclude=exclude, n_threads=n_threads,
        )
        for name in names:
            v = values[name]
            counted = v[~np.isnan(v)]
            rows.append(
                {
                    "metric": name,
                    "k": cut,
                    "value": float(counted.mean()) if counted.size else float("nan"),
                    "n_users": int(counted.size),
                }
            )
    return pd.DataFrame(rows, columns=["metric", "k", "value", "n_users"])
