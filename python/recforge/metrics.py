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
    "evaluate_run",
    "run_to_lists",
    "rmse",
    "mae",
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


# -- scored runs and qrels (trec_eval style input) ---------------------------------------------

Ties = Literal["docid_desc", "input_order", "average"]
_TIES = ("docid_desc", "input_order", "average")
_AVERAGE_OK = ("precision", "recall", "ndcg")
_QUERY_COLS = ("query", "q_id", "qid", "user", "user_id")
_DOC_COLS = ("doc", "doc_id", "docid", "item", "item_id", "docno")
_SCORE_COLS = ("score", "sim", "prediction")
_REL_COLS = ("rel", "relevance", "label", "grade", "score")


def _pick(df: Any, names: tuple[str, ...], what: str) -> Any:
    for n in names:
        if n in df.columns:
            return df[n].to_numpy()
    raise ValueError(f"the {what} table needs one of the columns {list(names)}; it has {list(df.columns)}")


def _triples(obj: Any, what: str, value_cols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, doc, value) arrays from a dict of dicts, a dict of ranked lists, or a DataFrame."""
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        q = _pick(obj, _QUERY_COLS, what)
        d = _pick(obj, _DOC_COLS, what)
        v = _pick(obj, value_cols, what).astype(np.float64)
        return q, d, v
    if isinstance(obj, dict):
        qs, ds, vs = [], [], []
        for q, docs in obj.items():
            if isinstance(docs, dict):
                for d, v in docs.items():
                    qs.append(q)
                    ds.append(d)
                    vs.append(v)
            elif isinstance(docs, (list, tuple, np.ndarray)):
                n = len(docs)
                for pos, d in enumerate(docs):  # a ranked list: earlier is better
                    qs.append(q)
                    ds.append(d)
                    vs.append(float(n - pos))
            else:
                raise ValueError(
                    f"{what}[{q!r}] must be a dict of doc -> value or a ranked list of docs, "
                    f"got {type(docs).__name__}"
                )
        try:
            values = np.asarray(vs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} values must be numbers: {exc}") from exc
        return np.asarray(qs, dtype=object), np.asarray(ds, dtype=object), values
    raise ValueError(
        f"{what} must be a dict {{query: {{doc: value}}}} or a pandas DataFrame, got {type(obj).__name__}"
    )


def _descending_string_rank(docs: np.ndarray) -> np.ndarray:
    """A key that sorts documents by their id as a string, in decreasing order (trec_eval)."""
    as_str = np.asarray([str(d) for d in docs.tolist()], dtype=object)
    _, inverse = np.unique(as_str.astype(str), return_inverse=True)
    return -inverse.astype(np.int64)


def run_to_lists(
    run: Any,
    qrels: Any,
    *,
    ties: Ties = "docid_desc",
    missing: Literal["raise", "intersect", "zero"] = "raise",
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, np.ndarray]:
    """Turn a scored run and qrels into ranked index lists and a relevance CSR.

    Returns ``(query_ids, lists, relevance, sorted_scores)``: per query a row of local document
    indices ranked best first (-1 padded), the grades in the same local index space, and the
    run's scores in ranked order (NaN padded, used for ``ties="average"``).
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {list(_TIES)}, got {ties!r}")
    if missing not in ("raise", "intersect", "zero"):
        raise ValueError(f"missing must be 'raise', 'intersect' or 'zero', got {missing!r}")
    rq, rd, rs = _triples(run, "run", _SCORE_COLS)
    qq, qd, qr = _triples(qrels, "qrels", _REL_COLS)
    if np.isnan(rs).any():
        raise ValueError(f"the run has {int(np.isnan(rs).sum())} NaN scores; drop or fill them first")
    if np.isnan(qr).any():
        raise ValueError("qrels contain NaN relevance labels")
    if (qr < 0).any():
        raise ValueError(
            f"qrels contain {int((qr < 0).sum())} negative labels; labels must be >= 0 "
            "(use 0 for judged non-relevant documents)"
        )
    run_q = set(rq.tolist())
    rel_q = set(qq.tolist())
    if missing == "raise" and run_q != rel_q:
        only_run = sorted(map(str, run_q - rel_q))[:5]
        only_rel = sorted(map(str, rel_q - run_q))[:5]
        raise ValueError(
            "run and qrels cover different queries "
            f"(only in run: {only_run}, only in qrels: {only_rel}); pass missing='intersect' to "
            "evaluate the common queries (trec_eval's default) or missing='zero' to score qrels "
            "queries absent from the run as 0 (trec_eval -c)"
        )
    queries = sorted(rel_q & run_q if missing == "intersect" else rel_q, key=lambda x: (str(type(x)), x))
    if not queries:
        raise ValueError("no query is in both the run and the qrels")
    qindex = {q: i for i, q in enumerate(queries)}
    rcode = np.array([qindex.get(q, -1) for q in rq.tolist()], dtype=np.int64)
    qcode = np.array([qindex.get(q, -1) for q in qq.tolist()], dtype=np.int64)
    keep_r, keep_q = rcode >= 0, qcode >= 0
    rq_c, rd, rs, rpos = rcode[keep_r], rd[keep_r], rs[keep_r], np.flatnonzero(keep_r)
    qq_c, qd, qr = qcode[keep_q], qd[keep_q], qr[keep_q]
    n_q = len(queries)
    # one document index space per query: local index = rank of the doc among the query's docs
    all_docs = np.concatenate([rd, qd]).astype(object)
    dcode, _ = _factorize(all_docs)
    n_docs = int(dcode.max()) + 1 if dcode.size else 1
    key = np.concatenate([rq_c, qq_c]) * n_docs + dcode
    uniq, inverse = np.unique(key, return_inverse=True)
    group_q = uniq // n_docs
    starts = np.searchsorted(group_q, np.arange(n_q))
    local = inverse - starts[np.concatenate([rq_c, qq_c])]
    r_local, q_local = local[: len(rd)], local[len(rd) :]
    width = int(np.bincount(group_q, minlength=n_q).max()) if uniq.size else 1
    # duplicates
    if len(np.unique(key[: len(rd)])) != len(rd):
        raise ValueError("the run lists the same document twice for a query; keep one score per document")
    if len(np.unique(key[len(rd) :])) != len(qd):
        raise ValueError("qrels list the same document twice for a query; keep one label per document")
    # rank the run
    if ties == "docid_desc":
        tiebreak = _descending_string_rank(rd)
    else:
        tiebreak = rpos
    order = np.lexsort((tiebreak, -rs, rq_c))
    counts = np.bincount(rq_c, minlength=n_q)
    row_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_q = rq_c[order]
    col = np.arange(len(order)) - row_start[sorted_q]
    list_len = max(int(counts.max()) if counts.size else 0, 1)
    lists = np.full((n_q, list_len), -1, dtype=np.int32)
    scores = np.full((n_q, list_len), np.nan)
    lists[sorted_q, col] = r_local[order]
    scores[sorted_q, col] = rs[order]
    rel = sp.csr_matrix((qr.astype(np.float32), (qq_c, q_local)), shape=(n_q, width))
    return np.asarray(queries, dtype=object), lists, rel, scores


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    return codes.astype(np.int64), np.asarray(uniques)


def _tie_averaged(
    lists: np.ndarray, scores: np.ndarray, rel: sp.csr_matrix, k: int, gain: str,
    rel_threshold: float, names: list[str],
) -> dict[str, np.ndarray]:
    """Expected precision, recall and DCG-based nDCG over random orders of tied documents."""
    n_q, width = lists.shape
    dense = rel.toarray().astype(np.float64)
    valid = lists >= 0
    grades = np.where(valid, np.take_along_axis(dense, np.where(valid, lists, 0), axis=1), 0.0)
    relevant = grades > rel_threshold
    gain_fn = {"linear": lambda g: g, "exp2": lambda g: np.exp2(g) - 1.0, "binary": lambda g: np.ones_like(g)}[gain]
    gains = np.where(relevant, gain_fn(grades), 0.0)
    # tie groups: consecutive equal scores within a row
    boundary = np.ones((n_q, width), dtype=bool)
    boundary[:, 1:] = (scores[:, 1:] != scores[:, :-1]) | ~valid[:, 1:]
    gid = np.cumsum(boundary.ravel()) - 1
    size = np.bincount(gid, weights=valid.ravel().astype(np.float64))
    size[size == 0] = 1.0
    mean_gain = np.bincount(gid, weights=gains.ravel()) / size
    mean_rel = np.bincount(gid, weights=relevant.ravel().astype(np.float64)) / size
    pos = np.arange(width)
    in_k = (pos < k)[None, :] & valid
    disc = np.zeros(width)
    disc[: min(k, width)] = 1.0 / np.log2(np.arange(min(k, width)) + 2.0)
    dcg = (mean_gain[gid].reshape(n_q, width) * disc[None, :] * in_k).sum(axis=1)
    hits = (mean_rel[gid].reshape(n_q, width) * in_k).sum(axis=1)
    all_rel = dense > rel_threshold
    n_rel = all_rel.sum(axis=1)
    ideal = -np.sort(-np.where(all_rel, gain_fn(dense), 0.0), axis=1)[:, :k]
    idcg = (ideal * (1.0 / np.log2(np.arange(ideal.shape[1]) + 2.0))[None, :]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "precision": hits / k,
            "recall": np.where(n_rel > 0, hits / np.maximum(n_rel, 1), 0.0),
            "ndcg": np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0),
        }
    return {n: out[n] for n in names}


def evaluate_run(
    run: Any,
    qrels: Any,
    k: int | Iterable[int] = 10,
    *,
    metrics: Iterable[str] | None = None,
    ties: Ties = "docid_desc",
    gain: Gain = "linear",
    ap_denominator: Literal["n_rel", "min_nrel_k"] = "n_rel",
    rel_threshold: float = 0.0,
    empty: Empty = "zero",
    missing: Literal["raise", "intersect", "zero"] = "raise",
    n_threads: int = 0,
) -> "pd.DataFrame":
    """Per-query metrics of a scored run against graded qrels, as trec_eval computes them.

    Parameters
    ----------
    run : dict or DataFrame
        ``{query: {doc: score}}`` (or ``{query: [doc, ...]}`` already ranked), or a frame with
        query, doc and score columns (``query``/``q_id``, ``doc``/``doc_id``, ``score``).
    qrels : dict or DataFrame
        ``{query: {doc: grade}}`` or a frame with query, doc and ``rel`` columns. Grades must be
        >= 0; a document is relevant when its grade is > ``rel_threshold``.
    k : int or iterable of int
    ties : {"docid_desc", "input_order", "average"}
        How documents with equal scores are ordered: by document id as a string in decreasing
        order (trec_eval), in the order they appear in the run (LightGBM's stable sort), or
        averaged over all orders of the tied group (scikit-learn ``ndcg_score``; defined for
        ``precision``, ``recall`` and ``ndcg``).
    missing : {"raise", "intersect", "zero"}
        What to do when run and qrels cover different queries.

    Returns
    -------
    pandas.DataFrame indexed by query id with one column per ``metric@k``.
    """
    import pandas as pd

    ks = sorted({check_positive_int(v, "k") for v in ([k] if np.ndim(k) == 0 else list(k))})
    if not ks:
        raise ValueError("k is empty: give at least one cut-off")
    names = list(metrics) if metrics is not None else [m for m in RANKING_METRICS if m != "auc"]
    unknown = [m for m in names if m not in RANKING_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(RANKING_METRICS)}")
    if ties == "average":
        bad = [m for m in names if m not in _AVERAGE_OK]
        if bad:
            raise ValueError(f"ties='average' is defined for {list(_AVERAGE_OK)}, not for {bad}")
        if gain not in _GAINS:
            raise ValueError(f"gain must be one of {list(_GAINS)}, got {gain!r}")
        if empty not in _EMPTY:
            raise ValueError(f"empty must be one of {list(_EMPTY)}, got {empty!r}")
    queries, lists, rel, scores = run_to_lists(run, qrels, ties=ties, missing=missing)
    columns = {}
    for cut in ks:
        if ties == "average":
            values = _tie_averaged(lists, scores, rel, cut, gain, rel_threshold, names)
            empty_rows = np.asarray((rel > rel_threshold).sum(axis=1)).ravel() == 0
            values = {n: _apply_empty(v, empty_rows, empty) for n, v in values.items()}
        else:
            values = ranking_metrics(
                lists, rel, cut, metrics=names, gain=gain, ap_denominator=ap_denominator,
                rel_threshold=rel_threshold, empty=empty, n_threads=n_threads,
            )
        for name in names:
            columns[f"{name}@{cut}"] = values[name]
    return pd.DataFrame(columns, index=pd.Index(queries, name="query"))


# -- rating metrics ----------------------------------------------------------------------------


def _paired(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no ratings to compare")
    if np.isnan(t).any() or np.isnan(p).any():
        raise ValueError("ratings contain NaN")
    return t, p


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error of predicted ratings."""
    t, p = _paired(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error of predicted ratings."""
    t, p = _paired(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))
