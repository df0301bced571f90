"""Beyond-accuracy metrics: coverage, concentration, novelty, diversity, personalization,
popularity bias and serendipity of recommendation lists (computed in C++).

All functions take ``recommended``, an (n_users, k) array of item indices best first (``-1`` for
an empty slot), as returned by ``model.recommend(users, n=k, ids="index")``. An item repeated
within a list counts once. Definitions:

* catalog coverage: share of the catalog that appears in at least one list.
* entropy (distributional coverage): Shannon entropy, in bits, of how often each item is
  recommended; ``normalized_entropy`` divides by log2(n_items) (1 = perfectly even).
* Gini index of those frequencies over the whole catalog (0 = even, 1 = one item only).
* personalization: 1 - mean over pairs of users of ``|L_u & L_v| / k`` (exact, computed from item
  frequencies: the sum over items of c_i (c_i - 1) / 2 counts the shared slots of all pairs).
* novelty: mean self-information -log2(p_i) of the recommended items, where p_i is the share of
  training users who interacted with item i (items nobody interacted with count as one user).
* popularity bias: mean popularity percentile of the recommended items (0 = least, 100 = most
  popular in training, ties averaged) and long-tail share (items outside the ``head_fraction``
  most popular items).
* intra-list diversity: mean pairwise distance 1 - cosine within a list, from item vectors
  (e.g. factors or content) or from co-occurrence (cosine of the items' training user sets).
* serendipity (Ge et al. 2010): share of the top k that is relevant and not recommended by a
  primitive, expected recommender (by default the most popular items).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _core
from ._validation import as_float_matrix, check_positive_int, csr_arrays, resolve_threads
from .metrics import _as_lists, relevance_matrix

__all__ = [
    "distribution_metrics",
    "catalog_coverage",
    "personalization",
    "novelty",
    "popularity_bias",
    "intra_list_diversity",
    "serendipity",
    "popular_lists",
    "beyond_accuracy",
    "BEYOND_ACCURACY_METRICS",
]

BEYOND_ACCURACY_METRICS = (
    "coverage",
    "entropy",
    "normalized_entropy",
    "gini",
    "personalization",
    "novelty",
    "popularity_percentile",
    "long_tail_share",
    "diversity",
    "serendipity",
)
# metrics with one value per user (the rest describe the whole set of lists)
PER_USER = ("novelty", "popularity_percentile", "long_tail_share", "diversity", "serendipity")


def _train_matrix(train: Any) -> sp.csr_matrix:
    from .data import Interactions

    if isinstance(train, Interactions):
        return train.matrix.tocsr()
    if sp.issparse(train):
        return sp.csr_matrix(train)
    raise ValueError("train must be recforge.Interactions or a scipy.sparse users x items matrix")


def _lists(recommended: Any, n_items: int) -> np.ndarray:
    lists = _as_lists(recommended)
    if lists.size and lists.max() >= n_items:
        raise IndexError(f"recommended holds item index {int(lists.max())} but the catalog has {n_items} items")
    return lists


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def distribution_metrics(recommended: Any, n_items: int, *, n_threads: int = 0) -> dict[str, float]:
    """Coverage, entropy, normalized entropy, Gini index and personalization of a set of lists."""
    n_items = check_positive_int(n_items, "n_items")
    lists = _lists(recommended, n_items)
    counts = _core.beyond.item_frequencies(lists, n_items, resolve_threads(n_threads))
    return dict(_core.beyond.distribution_stats(counts, lists.shape[0], lists.shape[1]))


def catalog_coverage(recommended: Any, n_items: int) -> float:
    """Share of the catalog recommended to at least one user."""
    return distribution_metrics(recommended, n_items)["coverage"]


def personalization(recommended: Any, n_items: int | None = None) -> float:
    """1 - mean overlap between pairs of users' lists (NaN for fewer than two lists)."""
    lists = _as_lists(recommended)
    n = int(lists.max()) + 1 if n_items is None and lists.size else (n_items or 1)
    return distribution_metrics(lists, max(n, 1))["personalization"]


def _popularity(train: Any) -> tuple[np.ndarray, int]:
    matrix = _train_matrix(train)
    pattern = matrix.copy()
    pattern.data = np.ones_like(pattern.data)
    pattern.sum_duplicates()
    users_per_item = np.bincount(pattern.indices, minlength=matrix.shape[1]).astype(np.float64)
    return users_per_item, matrix.shape[0]


def novelty(recommended: Any, train: Any, *, per_user: bool = False, n_threads: int = 0):
    """Mean self-information (bits) of recommended items by training popularity."""
    counts, n_users = _popularity(train)
    lists = _lists(recommended, len(counts))
    info = -np.log2(np.maximum(counts, 1.0) / max(n_users, 1))
    values = _core.beyond.list_mean(lists, np.ascontiguousarray(info), resolve_threads(n_threads))
    return values if per_user else _mean(values)


def _percentiles(counts: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    if len(counts) == 1:
        return np.array([100.0])
    return 100.0 * (rankdata(counts, method="average") - 1.0) / (len(counts) - 1.0)


def popularity_bias(
    recommended: Any, train: Any, *, head_fraction: float = 0.2, per_user: bool = False, n_threads: int = 0
) -> dict[str, Any]:
    """Mean popularity percentile of recommended items and their long-tail share."""
    if not 0.0 < head_fraction < 1.0:
        raise ValueError(f"head_fraction must be in (0, 1), got {head_fraction}")
    counts, _ = _popularity(train)
    lists = _lists(recommended, len(counts))
    threads = resolve_threads(n_threads)
    pct = _core.beyond.list_mean(lists, np.ascontiguousarray(_percentiles(counts)), threads)
    n_head = max(1, int(round(head_fraction * len(counts))))
    head = np.argsort(-counts, kind="stable")[:n_head]
    tail = np.ones(len(counts))
    tail[head] = 0.0
    share = _core.beyond.list_mean(lists, tail, threads)
    if per_user:
        return {"popularity_percentile": pct, "long_tail_share": share}
    return {"popularity_percentile": _mean(pct), "long_tail_share": _mean(share)}


def intra_list_diversity(
    recommended: Any,
    *,
    item_vectors: Any = None,
    train: Any = None,
    per_user: bool = False,
    n_threads: int = 0,
):
    """Mean pairwise cosine distance within each list, from item vectors or co-occurrence.

    Give exactly one of ``item_vectors`` (n_items x dim) or ``train`` (users x items).
    """
    if (item_vectors is None) == (train is None):
        raise ValueError("give exactly one of item_vectors= or train= for intra-list diversity")
    threads = resolve_threads(n_threads)
    if item_vectors is not None:
        vec = as_float_matrix(item_vectors, "item_vectors")
        lists = _lists(recommended, vec.shape[0])
        values = _core.beyond.ild_vectors(lists, vec, threads)
    else:
        matrix = _train_matrix(train)
        lists = _lists(recommended, matrix.shape[1])
        item_users = matrix.T.tocsr()
        indptr, indices, _ = csr_arrays(item_users, item_users.shape, "train")
        values = _core.beyond.ild_cooccurrence(lists, indptr, indices, matrix.shape[1], matrix.shape[0], threads)
    return values if per_user else _mean(values)


def popular_lists(train: Any, users: Any, k: int) -> np.ndarray:
    """The primitive recommender of serendipity: each user's k most popular unseen items."""
    from .retrieval import topk_dot

    matrix = _train_matrix(train)
    counts, _ = _popularity(matrix)
    users = np.asarray(users, dtype=np.int64)
    ones = np.ones((len(users), 1), dtype=np.float32)
    k = min(check_positive_int(k, "k"), matrix.shape[1])
    top, _ = topk_dot(ones, counts[:, None], k, exclude=matrix[users])
    return top


def serendipity(
    recommended: Any, relevant: Any, expected: Any, k: int, *, rel_threshold: float = 0.0,
    per_user: bool = False, n_threads: int = 0,
):
    """Share of the top k that is relevant and absent from the ``expected`` lists (same rows)."""
    k = check_positive_int(k, "k")
    rel = relevance_matrix(relevant)
    lists = _lists(recommended, rel.shape[1])
    exp = _lists(expected, rel.shape[1])
    if exp.shape[0] != lists.shape[0] or rel.shape[0] != lists.shape[0]:
        raise ValueError("recommended, relevant and expected must have one row per user each")
    indptr, indices, data = csr_arrays(rel, rel.shape, "relevant")
    values = _core.beyond.serendipity(
        lists, k, indptr, indices, data, rel.shape[1], float(rel_threshold), exp, resolve_threads(n_threads)
    )
    return values if per_user else _mean(values)


def beyond_accuracy(
    recommended: Any,
    train: Any,
    *,
    users: Any = None,
    relevant: Any = None,
    item_vectors: Any = None,
    head_fraction: float = 0.2,
    n_threads: int = 0,
) -> dict[str, float]:
    """Every beyond-accuracy metric of a set of lists in one call.

    ``users`` (the row users' indices) and ``relevant`` are needed for serendipity;
    ``item_vectors`` switches intra-list diversity from co-occurrence to vectors.
    """
    matrix = _train_matrix(train)
    n_items = matrix.shape[1]
    lists = _lists(recommended, n_items)
    out: dict[str, float] = dict(distribution_metrics(lists, n_items, n_threads=n_threads))
    out["novelty"] = novelty(lists, matrix, n_threads=n_threads)
    out.update(popularity_bias(lists, matrix, head_fraction=head_fraction, n_threads=n_threads))
    if item_vectors is not None:
        out["diversity"] = intra_list_diversity(lists, item_vectors=item_vectors, n_threads=n_threads)
    else:
        out["diversity"] = intra_list_diversity(lists, train=matrix, n_threads=n_threads)
    if relevant is not None and users is not None:
        expected = popular_lists(matrix, users, lists.shape[1])
        out["serendipity"] = serendipity(lists, relevant, expected, lists.shape[1], n_threads=n_threads)
    return out
