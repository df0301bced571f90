"""Offline evaluation of recommenders on a train/test split.

* :func:`evaluate` - mean metric values of one model, as a tidy table.
* :func:`per_user_metrics` - the per-user values behind those means.
* :func:`evaluate_segments` - the same broken down by user segment (e.g. cold / warm users) and
  by item popularity bucket, for bias audits.
* :func:`compare` - several models on the same users, with bootstrap confidence intervals and
  paired significance tests against a baseline (Holm-corrected).

Metric names: the ranking metrics of :mod:`recforge.metrics` (``precision``, ``recall``,
``ndcg``, ``map``, ``mrr``, ``hit_rate``, ``auc``), the beyond-accuracy metrics of
:mod:`recforge.beyond_accuracy` (``coverage``, ``entropy``, ``normalized_entropy``, ``gini``,
``personalization``, ``novelty``, ``popularity_percentile``, ``long_tail_share``,
``diversity``, ``serendipity``) and, for models with ``predict``, ``rmse`` and ``mae``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import beyond_accuracy as ba
from ._validation import check_positive_int
from .base import Recommender, as_interactions
from .data import Interactions
from .metrics import RANKING_METRICS, mae, ranking_metrics, rmse
from .significance import bootstrap_ci, holm, paired_test

__all__ = [
    "evaluate",
    "per_user_metrics",
    "evaluate_segments",
    "compare",
    "DEFAULT_METRICS",
    "ALL_METRICS",
]

DEFAULT_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")
RATING_METRICS: tuple[str, ...] = ("rmse", "mae")
ALL_METRICS: tuple[str, ...] = RANKING_METRICS + ba.BEYOND_ACCURACY_METRICS + RATING_METRICS
_SET_LEVEL = ("coverage", "entropy", "normalized_entropy", "gini", "personalization")


def _same_ids(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and bool(np.all(np.asarray(a) == np.asarray(b)))


def _cutoffs(k: int | Iterable[int]) -> list[int]:
    ks = sorted({check_positive_int(v, "k") for v in ([k] if np.ndim(k) == 0 else list(k))})
    if not ks:
        raise ValueError("k is empty: give at least one cut-off")
    return ks


def _metric_names(metrics: Iterable[str]) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    names = list(dict.fromkeys(metrics))
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(ALL_METRICS)}")
    if not names:
        raise ValueError("metrics is empty: name at least one metric")
    return names


@dataclass
class _Run:
    """One model's top lists for a set of users, with everything the metrics need."""

    model: Recommender
    user_idx: np.ndarray
    lists: np.ndarray
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix | None
    test: Interactions


def _prepare(
    model: Recommender,
    train: Any,
    test: Any,
    depth: int,
    *,
    users: Any,
    exclude_seen: bool,
    relevance: str,
    fit: bool | None,
    batch_size: int,
    n_threads: int,
) -> _Run:
    if relevance not in ("binary", "graded"):
        raise ValueError(f"relevance must be 'binary' or 'graded', got {relevance!r}")
    if not isinstance(model, Recommender):
        raise ValueError(f"model must be a recforge Recommender, got {type(model).__name__}")
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
        user_idx = np.asarray(model._to_index(np.atleast_1d(users), "user", "raw"), dtype=np.int64)
    if len(user_idx) == 0:
        raise ValueError("no users to evaluate: the test set has no interactions")
    depth = min(depth, model.n_items_)
    lists = np.empty((len(user_idx), depth), dtype=np.int32)
    batch_size = check_positive_int(batch_size, "batch_size")
    for start in range(0, len(user_idx), batch_size):
        block = user_idx[start : start + batch_size]
        top, _ = model.recommend(block, n=depth, exclude_seen=exclude_seen, ids="index", n_threads=n_threads)
        lists[start : start + len(block)] = top
    rel = test_matrix[user_idx]
    if relevance == "binary":
        rel = rel.copy()
        rel.data = np.ones_like(rel.data)
    exclude = model.seen_[user_idx] if exclude_seen else None
    return _Run(model, user_idx, lists, rel, exclude, test)


def _compute(
    run: _Run,
    ks: list[int],
    names: list[str],
    *,
    gain: str,
    ap_denominator: str,
    empty: str,
    item_vectors: Any,
    head_fraction: float,
    n_threads: int,
) -> dict[tuple[str, int | None], np.ndarray | float]:
    """Per-user arrays (or set-level floats) for every (metric, k)."""
    out: dict[tuple[str, int | None], np.ndarray | float] = {}
    ranking = [m for m in names if m in RANKING_METRICS]
    train = run.model.seen_
    for cut in ks:
        lists = run.lists[:, :cut]
        if ranking:
            values = ranking_metrics(
                lists if "auc" not in ranking else run.lists, run.relevant, cut, metrics=ranking,
                gain=gain, ap_denominator=ap_denominator, empty=empty, exclude=run.exclude,
                n_threads=n_threads,
            )
            for name in ranking:
                out[(name, cut)] = values[name]
        if any(m in _SET_LEVEL for m in names):
            stats = ba.distribution_metrics(lists, run.model.n_items_, n_threads=n_threads)
            for name in _SET_LEVEL:
                if name in names:
                    out[(name, cut)] = float(stats[name])
        if "novelty" in names:
            out[("novelty", cut)] = ba.novelty(lists, train, per_user=True, n_threads=n_threads)
        if "popularity_percentile" in names or "long_tail_share" in names:
            bias = ba.popularity_bias(lists, train, head_fraction=head_fraction, per_user=True, n_threads=n_threads)
            for name in ("popularity_percentile", "long_tail_share"):
                if name in names:
                    out[(name, cut)] = bias[name]
        if "diversity" in names:
            if item_vectors is not None:
                out[("diversity", cut)] = ba.intra_list_diversity(lists, item_vectors=item_vectors, per_user=True, n_threads=n_threads)
            else:
                out[("diversity", cut)] = ba.intra_list_diversity(lists, train=train, per_user=True, n_threads=n_threads)
        if "serendipity" in names:
            expected = ba.popular_lists(train, run.user_idx, cut)
            out[("serendipity", cut)] = ba.serendipity(lists, run.relevant, expected, cut, per_user=True, n_threads=n_threads)
    rating = [m for m in names if m in RATING_METRICS]
    if rating:
        predict = getattr(run.model, "predict", None)
        if predict is None:
            raise ValueError(f"{type(run.model).__name__} does not predict ratings, so {rating} cannot be computed")
        test_matrix = run.test.matrix.tocsr()
        truth = run.test.ratings if run.test.ratings is not None else test_matrix.data
        rows = np.repeat(np.arange(run.test.n_users), np.diff(test_matrix.indptr))
        pred = predict(rows, test_matrix.indices, ids="index")
        if "rmse" in rating:
            out[("rmse", None)] = rmse(truth, pred)
        if "mae" in rating:
            out[("mae", None)] = mae(truth, pred)
    return out


def _table(values: Mapping[tuple[str, int | None], np.ndarray | float], n_lists: int) -> pd.DataFrame:
    rows = []
    for (name, cut), v in values.items():
        if isinstance(v, np.ndarray):
            counted = v[~np.isnan(v)]
            value = float(counted.mean()) if counted.size else float("nan")
            n = int(counted.size)
        else:
            value, n = float(v), n_lists
        rows.append({"metric": name, "k": cut, "value": value, "n_users": n})
    return pd.DataFrame(rows, columns=["metric", "k", "value", "n_users"])


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
    item_vectors: Any = None,
    head_fraction: float = 0.2,
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
    metrics : names from ``ALL_METRICS``
    users : raw user ids, optional
        Users to evaluate; by default every user with at least one test interaction.
    exclude_seen : bool
        Recommend only items the user did not interact with in training.
    relevance : {"binary", "graded"}
        Whether every test interaction counts as relevance 1, or its weight is the grade.
    gain, ap_denominator, empty
        Metric conventions, see :mod:`recforge.metrics`.
    item_vectors : array (n_items, dim), optional
        Item vectors for ``diversity``; without them diversity comes from co-occurrence.
    head_fraction : float
        Share of the most popular items that form the head for ``long_tail_share``.

    Returns
    -------
    pandas.DataFrame
        One row per (metric, k) with columns ``metric``, ``k``, ``value`` (the mean over users,
        or the value of the whole set of lists for coverage, entropy, Gini and
        personalization; ``k`` is empty for rating metrics) and ``n_users``.
    """
    ks = _cutoffs(k)
    names = _metric_names(metrics)
    run = _prepare(
        model, train, test, max(ks), users=users, exclude_seen=exclude_seen, relevance=relevance,
        fit=fit, batch_size=batch_size, n_threads=n_threads,
    )
    values = _compute(
        run, ks, names, gain=gain, ap_denominator=ap_denominator, empty=empty,
        item_vectors=item_vectors, head_fraction=head_fraction, n_threads=n_threads,
    )
    return _table(values, len(run.user_idx))


_PREPARE_DEFAULTS = {"users": None, "exclude_seen": True, "relevance": "binary", "fit": None, "batch_size": 4096}
_COMPUTE_DEFAULTS = {"gain": "linear", "ap_denominator": "n_rel", "empty": "zero", "item_vectors": None,
                     "head_fraction": 0.2}


def _split_options(kwargs: dict[str, Any], compute_keys: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of :func:`evaluate` split into ``_prepare`` and ``_compute`` options
    (with defaults); ``n_threads`` goes to both, anything unknown raises."""
    kwargs = dict(kwargs)
    threads = kwargs.pop("n_threads", 0)
    prep = {key: kwargs.pop(key, default) for key, default in _PREPARE_DEFAULTS.items()}
    comp = {key: kwargs.pop(key, _COMPUTE_DEFAULTS[key]) for key in compute_keys}
    if kwargs:
        raise ValueError(f"unknown argument(s) {sorted(kwargs)}")
    prep["n_threads"] = comp["n_threads"] = threads
    return prep, comp


def per_user_metrics(
    model: Recommender,
    train: Interactions | None,
    test: Interactions,
    k: int | Iterable[int] = 10,
    metrics: Iterable[str] = DEFAULT_METRICS,
    **kwargs: Any,
) -> pd.DataFrame:
    """Per-user metric values, indexed by raw user id, one column per ``metric@k``.

    Takes the same keyword arguments as :func:`evaluate`. Set-level metrics (coverage,
    entropy, Gini, personalization) and rating metrics have no per-user value and are refused.
    """
    ks = _cutoffs(k)
    names = _metric_names(metrics)
    not_per_user = [m for m in names if m in _SET_LEVEL or m in RATING_METRICS]
    if not_per_user:
        raise ValueError(f"{not_per_user} describe the whole set of lists, not single users")
    prep, comp = _split_options(kwargs, list(_COMPUTE_DEFAULTS))
    run = _prepare(model, train, test, max(ks), **prep)
    values = _compute(run, ks, names, **comp)
    frame = pd.DataFrame({f"{n}@{c}": v for (n, c), v in values.items()})
    frame.index = pd.Index(model.user_ids_[run.user_idx], name="user")
    return frame


def _user_labels(
    user_segments: Any, model: Recommender, activity_bins: Sequence[int]
) -> np.ndarray:
    n_users = model.n_users_
    if isinstance(user_segments, str):
        if user_segments != "activity":
            raise ValueError(f"user_segments must be 'activity' or per-user labels, got {user_segments!r}")
        counts = np.diff(model.seen_.indptr)
        edges = sorted({0, *[int(b) for b in activity_bins]})
        if edges[0] != 0 or any(b <= 0 for b in edges[1:]):
            raise ValueError("activity_bins must be positive increasing training counts")
        labels = np.empty(n_users, dtype=object)
        for lo, hi in zip(edges, edges[1:] + [None]):
            if hi is None:
                name = f"{lo}+"
            elif lo == 0 and hi == 1:
                name = "0 (cold)"
            elif hi - lo == 1:
                name = f"{lo}"
            else:
                name = f"{lo}-{hi - 1}"
            mask = counts >= lo if hi is None else (counts >= lo) & (counts < hi)
            labels[mask] = name
        return labels
    if isinstance(user_segments, (pd.Series, Mapping)):
        mapping = dict(user_segments.items()) if isinstance(user_segments, pd.Series) else dict(user_segments)
        labels = np.array([mapping.get(u) for u in model.user_ids_.tolist()], dtype=object)
        return labels
    labels = np.asarray(user_segments, dtype=object)
    if labels.shape != (n_users,):
        raise ValueError(f"user_segments needs one label per user ({n_users}), got shape {labels.shape}")
    return labels


def _item_labels(item_segments: Any, model: Recommender, head_fraction: float) -> np.ndarray:
    n_items = model.n_items_
    if isinstance(item_segments, str):
        if item_segments != "popularity":
            raise ValueError(f"item_segments must be 'popularity' or per-item labels, got {item_segments!r}")
        if not 0.0 < head_fraction < 1.0:
            raise ValueError(f"head_fraction must be in (0, 1), got {head_fraction}")
        counts = np.bincount(model.seen_.indices, minlength=n_items)
        n_head = max(1, int(round(head_fraction * n_items)))
        labels = np.full(n_items, "tail", dtype=object)
        labels[np.argsort(-counts, kind="stable")[:n_head]] = "head"
        return labels
    if isinstance(item_segments, (pd.Series, Mapping)):
        mapping = dict(item_segments.items()) if isinstance(item_segments, pd.Series) else dict(item_segments)
        return np.array([mapping.get(i) for i in model.item_ids_.tolist()], dtype=object)
    labels = np.asarray(item_segments, dtype=object)
    if labels.shape != (n_items,):
        raise ValueError(f"item_segments needs one label per item ({n_items}), got shape {labels.shape}")
    return labels


def evaluate_segments(
    model: Recommender,
    train: Interactions | None,
    test: Interactions,
    k: int | Iterable[int] = 10,
    metrics: Iterable[str] = ("recall", "ndcg", "hit_rate"),
    *,
    user_segments: Any = "activity",
    item_segments: Any = "popularity",
    activity_bins: Sequence[int] = (1, 5, 20),
    head_fraction: float = 0.2,
    **kwargs: Any,
) -> pd.DataFrame:
    """Metrics broken down by user segment and by item segment, in one table.

    Parameters
    ----------
    user_segments : "activity", per-user labels, or None
        ``"activity"`` buckets users by their number of training interactions at
        ``activity_bins`` (default: 0 = cold, 1-4, 5-19, 20+); otherwise an array with one
        label per user index, or a Series/dict from raw user id to label.
    item_segments : "popularity", per-item labels, or None
        ``"popularity"`` splits the catalog into the ``head_fraction`` most popular items
        ("head") and the rest ("tail"). For an item segment the metrics count only the test
        items of that segment as relevant, and users without such items are left out.
    metrics : ranking metrics, or per-user beyond-accuracy metrics for user segments

    Returns
    -------
    pandas.DataFrame with columns ``segment_type`` ("all", "user" or "item"), ``segment``,
    ``metric``, ``k``, ``value`` and ``n_users``.
    """
    ks = _cutoffs(k)
    names = _metric_names(metrics)
    bad = [m for m in names if m in _SET_LEVEL or m in RATING_METRICS]
    if bad:
        raise ValueError(f"{bad} cannot be split by segment; use per-user metrics")
    prep, common = _split_options(kwargs, ["gain", "ap_denominator", "item_vectors"])
    run = _prepare(model, train, test, max(ks), **prep)
    common["head_fraction"] = head_fraction
    frames = []
    values = _compute(run, ks, names, empty="zero", **common)
    frames.append(_table(values, len(run.user_idx)).assign(segment_type="all", segment="all"))
    if user_segments is not None:
        labels = _user_labels(user_segments, model, activity_bins)[run.user_idx]
        for label in pd.unique(labels):
            mask = labels == label
            sub = {key: v[mask] for key, v in values.items() if isinstance(v, np.ndarray)}
            frames.append(_table(sub, int(mask.sum())).assign(segment_type="user", segment=label))
    if item_segments is not None:
        ranking = [m for m in names if m in RANKING_METRICS]
        if not ranking:
            raise ValueError("item segments need at least one ranking metric")
        labels = _item_labels(item_segments, model, head_fraction)
        for label in pd.unique(labels):
            keep = (labels == label).astype(np.float32)
            rel = run.relevant.multiply(keep[None, :]).tocsr()
            rel.eliminate_zeros()
            seg_run = _Run(run.model, run.user_idx, run.lists, rel, run.exclude, run.test)
            seg = _compute(seg_run, ks, ranking, empty="skip", **common)
            frames.append(_table(seg, len(run.user_idx)).assign(segment_type="item", segment=label))
    table = pd.concat(frames, ignore_index=True)
    return table[["segment_type", "segment", "metric", "k", "value", "n_users"]]


def compare(
    models: Mapping[str, Recommender] | Sequence[Recommender],
    train: Interactions | None,
    test: Interactions,
    k: int | Iterable[int] = 10,
    metrics: Iterable[str] = ("precision", "recall", "ndcg"),
    *,
    baseline: str | None = None,
    method: Literal["permutation", "t", "wilcoxon"] = "permutation",
    correction: Literal["holm", "none"] = "holm",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 5000,
    random_state: Any = 0,
    fit: bool | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Evaluate several models on the same users and test them against a baseline.

    Parameters
    ----------
    models : dict of name -> model, or a list (named by class)
        Unfitted models are fitted on ``train`` (``fit=True`` refits all).
    baseline : str, optional
        Name of the model the others are tested against (default: the first).
    method : {"permutation", "t", "wilcoxon"}
        Paired test over users: Fisher's randomization test, Student's paired t-test or the
        Wilcoxon signed-rank test.
    correction : {"holm", "none"}
        Holm-Bonferroni correction over the models compared with the baseline, per metric.
    alpha, confidence, n_resamples, random_state
        Significance level, bootstrap confidence level, resamples, seed.
    **kwargs
        Passed to :func:`evaluate` (``exclude_seen``, ``relevance``, ``gain``, ...).

    Returns
    -------
    pandas.DataFrame with one row per (model, metric, k): ``value``, ``ci_low``, ``ci_high``,
    ``difference`` (to the baseline), ``p_value``, ``p_adjusted``, ``significant`` and a
    ``marker`` ("▲" significantly better, "▼" significantly worse, "" otherwise; the baseline
    is marked "baseline"). Set-level metrics get no interval or test.
    """
    if isinstance(models, Mapping):
        named = dict(models)
    else:
        named = {}
        for m in models:
            name = type(m).__name__
            while name in named:
                name += "'"
            named[name] = m
    if len(named) < 1:
        raise ValueError("give at least one model")
    base = baseline if baseline is not None else next(iter(named))
    if base not in named:
        raise ValueError(f"baseline {base!r} is not one of the models {list(named)}")
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    ks = _cutoffs(k)
    names = _metric_names(metrics)
    prep, comp = _split_options({**kwargs, "fit": fit}, list(_COMPUTE_DEFAULTS))
    results: dict[str, dict[tuple[str, int | None], np.ndarray | float]] = {}
    users = None
    for name, model in named.items():
        run = _prepare(model, train, test, max(ks), **prep)
        if users is None:
            users = run.user_idx
        elif not np.array_equal(users, run.user_idx):  # pragma: no cover - same test set
            raise ValueError("models were evaluated on different users")
        results[name] = _compute(run, ks, names, **comp)
    rows = []
    for key in results[base]:
        metric, cut = key
        base_v = results[base][key]
        tested = []
        for name, res in results.items():
            v = res[key]
            row = {"model": name, "metric": metric, "k": cut}
            if isinstance(v, np.ndarray):
                both = ~np.isnan(v) & ~np.isnan(base_v)
                row["value"] = float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")
                row["ci_low"], row["ci_high"] = bootstrap_ci(
                    v, confidence=confidence, n_resamples=n_resamples, random_state=random_state
                )
                row["difference"] = float(np.mean(v[both] - base_v[both])) if both.any() else float("nan")
                if name != base and both.sum() >= 2:
                    kw = {"n_resamples": n_resamples, "random_state": random_state} if method == "permutation" else {}
                    row["p_value"] = paired_test(v[both], base_v[both], method, **kw).p_value
                    tested.append(len(rows))
                else:
                    row["p_value"] = float("nan")
            else:
                row.update(value=float(v), ci_low=float("nan"), ci_high=float("nan"),
                           difference=float(v) - float(base_v), p_value=float("nan"))
            rows.append(row)
        if tested:
            p = np.array([rows[i]["p_value"] for i in tested])
            adjusted = holm(p) if correction == "holm" else p
            for i, pa in zip(tested, adjusted):
                rows[i]["p_adjusted"] = float(pa)
    table = pd.DataFrame(rows)
    if "p_adjusted" not in table:
        table["p_adjusted"] = np.nan
    table["significant"] = table["p_adjusted"] < alpha
    table["marker"] = np.where(
        table["model"] == base, "baseline",
        np.where(table["significant"] & (table["difference"] > 0), "▲",
                 np.where(table["significant"] & (table["difference"] < 0), "▼", "")),
    )
    cols = ["model", "metric", "k", "value", "ci_low", "ci_high", "difference", "p_value", "p_adjusted", "significant", "marker"]
    return table[cols]
