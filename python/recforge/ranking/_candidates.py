"""From fitted recommenders to ranker input, and a two-stage recommender that reranks candidates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import check_positive_int
from ..base import Recommender, as_interactions
from ..data import Interactions
from ._base import Ranker, check_real

__all__ = ["CandidateSet", "candidates", "pair_features", "Reranker"]


@dataclass
class CandidateSet:
    """Ranker input built from recommenders' candidates: one row per (user, candidate item).

    Rows are grouped by user (``group`` holds the sizes, in the order of ``users``); ``X``
    holds the features named ``feature_names``, ``y`` the labels (0 without held-out data).
    Users and items are indices of the history's id maps.
    """

    users: np.ndarray
    group: np.ndarray
    user_idx: np.ndarray
    item_idx: np.ndarray
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.X.shape[0])


def _numeric_table(table: Any) -> tuple[np.ndarray | None, list[str]]:
    if table is None:
        return None, []
    cols = [c for c in table.columns if table[c].dtype.kind in "fiub"]
    if not cols:
        return None, []
    return table[cols].to_numpy(dtype=np.float32, na_value=np.nan), [str(c) for c in cols]


class _Context:
    """What the features need from the history, computed once per call."""

    def __init__(self, history: Interactions, item_features: bool, user_features: bool) -> None:
        m = history.matrix.tocsr()
        self.n_items = history.n_items
        self.user_count = np.diff(m.indptr).astype(np.float32)
        self.item_count = np.bincount(m.indices, minlength=history.n_items).astype(np.float32)
        ts = history.timestamps
        self.has_time = ts is not None and len(ts) > 0
        if self.has_time:
            t = np.asarray(ts, dtype=np.float64)
            self.t_ref = float(t.max())
            last_item = np.full(history.n_items, -np.inf)
            np.maximum.at(last_item, m.indices, t)
            rows = np.repeat(np.arange(history.n_users), np.diff(m.indptr))
            last_user = np.full(history.n_users, -np.inf)
            np.maximum.at(last_user, rows, t)
            day = 86400.0
            self.item_age = np.where(np.isfinite(last_item), (self.t_ref - last_item) / day, np.nan).astype(np.float32)
            self.user_age = np.where(np.isfinite(last_user), (self.t_ref - last_user) / day, np.nan).astype(np.float32)
            recent = t >= self.t_ref - 30 * day
            self.item_recent = np.bincount(m.indices[recent], minlength=history.n_items).astype(np.float32)
        self.item_table, self.item_cols = _numeric_table(history.item_features) if item_features else (None, [])
        self.user_table, self.user_cols = _numeric_table(history.user_features) if user_features else (None, [])
        self.profile = None
        if self.item_table is not None:
            F = np.nan_to_num(self.item_table)
            norms = np.linalg.norm(F, axis=1)
            self.item_unit = F / np.where(norms > 0, norms, 1.0)[:, None]
            binary = sp.csr_matrix((np.ones(m.nnz, dtype=np.float32), m.indices, m.indptr), shape=m.shape)
            prof = np.asarray(binary @ self.item_unit)
            pn = np.linalg.norm(prof, axis=1)
            self.profile = prof / np.where(pn > 0, pn, 1.0)[:, None]


def pair_features(
    models: Sequence[Recommender],
    history: Interactions,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    *,
    ranks: Sequence[np.ndarray] | None = None,
    item_features: bool = True,
    user_features: bool = True,
    _context: _Context | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Features of (user, item) index pairs: each model's score (and rank, if given), item
    popularity and recency, user activity and recency, numeric item and user features and the
    cosine between the item's features and the user's history profile."""
    ctx = _context or _Context(history, item_features, user_features)
    cols: list[np.ndarray] = []
    names: list[str] = []
    for j, model in enumerate(models):
        name = f"{type(model).__name__.lower()}{j}"
        s = np.asarray(model.score(user_idx, item_idx, ids="index"), dtype=np.float32)
        s = np.where(np.isfinite(s), s, np.nan)
        cols.append(s)
        names.append(f"{name}_score")
        if ranks is not None:
            cols.append(ranks[j].astype(np.float32))
            names.append(f"{name}_rank")
    cols += [np.log1p(ctx.item_count[item_idx]), np.log1p(ctx.user_count[user_idx])]
    names += ["item_log_popularity", "user_log_activity"]
    if ctx.has_time:
        cols += [ctx.item_age[item_idx], np.log1p(ctx.item_recent[item_idx]), ctx.user_age[user_idx]]
        names += ["item_days_since_last", "item_log_last30d", "user_days_since_last"]
    if ctx.item_table is not None:
        cols += list(ctx.item_table[item_idx].T)
        names += [f"item_{c}" for c in ctx.item_cols]
        cols.append(np.einsum("ij,ij->i", ctx.profile[user_idx], ctx.item_unit[item_idx]).astype(np.float32))
        names.append("user_item_content_cosine")
    if ctx.user_table is not None:
        cols += list(ctx.user_table[user_idx].T)
        names += [f"user_{c}" for c in ctx.user_cols]
    X = np.ascontiguousarray(np.column_stack(cols), dtype=np.float32) if cols else np.empty((len(user_idx), 0), np.float32)
    return X, names


def candidates(
    models: Recommender | Sequence[Recommender],
    history: Any,
    users: Any = None,
    n: int = 100,
    *,
    labels: Any = None,
    ids: str = "index",
    exclude_seen: bool = True,
    items: Any = None,
    item_features: bool = True,
    user_features: bool = True,
    n_threads: int = 0,
) -> CandidateSet:
    """Top-``n`` candidates of each user from one or more fitted recommenders, with features.

    Parameters
    ----------
    models : Recommender or list of Recommender
        Fitted on ``history`` (the same id maps).
    history : Interactions
        The interactions the models were fitted on; popularity, activity, recency and the
        users' content profiles come from it.
    users : array, optional
        Users (indices, or raw ids with ``ids="raw"``); default all users of ``history``.
    labels : Interactions, optional
        Held-out interactions with the same id maps: a candidate's label is 1 when the user
        interacted with it there, else 0.
    exclude_seen, items
        Passed to every model's ``recommend``.

    Returns
    -------
    CandidateSet
        The union of the models' lists per user (items in index order within a user), each
        model's score and rank (NaN when the item is not in that model's list) and the
        features of :func:`pair_features`.
    """
    if isinstance(models, Recommender):
        models = [models]
    models = list(models)
    if not models:
        raise ValueError("models is empty: give at least one fitted recommender")
    history = as_interactions(history)
    n = check_positive_int(n, "n")
    for m in models:
        m._check_fitted()
        if m.n_users_ != history.n_users or m.n_items_ != history.n_items:
            raise ValueError(
                f"{type(m).__name__} was fitted on {m.n_users_} users x {m.n_items_} items but the "
                f"history has {history.n_users} x {history.n_items}; fit the models on the history"
            )
    if users is None:
        u = np.arange(history.n_users, dtype=np.int64)
    elif ids == "raw":
        u = np.asarray(models[0]._to_index(np.atleast_1d(users), "user", "raw"), dtype=np.int64)
    else:
        u = np.asarray(models[0]._to_index(np.atleast_1d(users), "user", "index"), dtype=np.int64)
    if u.ndim != 1:
        raise ValueError("users must be a 1-D array")
    n_items = history.n_items
    keys_per_model = []
    ranks_per_model = []
    for m in models:
        n_m = min(n, n_items if items is None else len(np.unique(np.atleast_1d(items))))
        top, _ = m.recommend(u, n=n_m, exclude_seen=exclude_seen, items=items, ids="index", n_threads=n_threads)
        top = np.asarray(top, dtype=np.int64).reshape(len(u), -1)
        valid = top >= 0
        pos = np.broadcast_to(np.arange(len(u))[:, None], top.shape)
        key = pos[valid] * n_items + top[valid]
        rank = np.broadcast_to(np.arange(1, top.shape[1] + 1)[None, :], top.shape)[valid]
        order = np.argsort(key, kind="stable")
        keys_per_model.append(key[order])
        ranks_per_model.append(rank[order])
    all_keys = np.unique(np.concatenate(keys_per_model)) if keys_per_model else np.empty(0, np.int64)
    pos = all_keys // n_items
    item_idx = (all_keys % n_items).astype(np.int64)
    user_idx = u[pos]
    ranks = []
    for key, rank in zip(keys_per_model, ranks_per_model):
        at = np.searchsorted(key, all_keys)
        at_c = np.minimum(at, max(len(key) - 1, 0))
        hit = (at < len(key)) & (key[at_c] == all_keys) if len(key) else np.zeros(len(all_keys), bool)
        ranks.append(np.where(hit, rank[at_c] if len(key) else 0, np.nan))
    group = np.bincount(pos, minlength=len(u)).astype(np.int64)
    ctx = _Context(history, item_features, user_features)
    X, names = pair_features(models, history, user_idx, item_idx, ranks=ranks, _context=ctx)
    y = np.zeros(len(all_keys), dtype=np.float32)
    if labels is not None:
        lab = as_interactions(labels)
        if lab.n_users != history.n_users or lab.n_items != history.n_items:
            raise ValueError("labels must share the history's id maps (as the recforge.split functions return)")
        lm = lab.matrix.tocsr()
        pattern = sp.csr_matrix((np.ones(lm.nnz, dtype=np.float32), lm.indices, lm.indptr), shape=lm.shape)
        if len(user_idx):
            y = (np.asarray(pattern[user_idx, item_idx]).ravel() > 0).astype(np.float32)
    return CandidateSet(users=u, group=group, user_idx=user_idx, item_idx=item_idx, X=X, y=y, feature_names=names)


def _clone(model: Any) -> Any:
    return type(model)(**model.get_params())


class Reranker(Recommender):
    """A two-stage recommender: candidates from recommenders, reordered by a learned ranker.

    ``fit(interactions)`` holds out the latest ``label_fraction`` of the interactions (by
    time when there are timestamps, else at random), fits copies of the ``generators`` on the
    rest, builds every user's candidates (:func:`candidates`) labelled by the held-out part
    and fits the ``ranker`` on them, grouped by user. The generators are then refitted on all
    the interactions, so recommending uses everything that was seen. ``recommend`` follows the
    :class:`~recforge.Recommender` contract: the union of the generators' top
    ``n_candidates``, ordered by the ranker's scores (slots beyond the candidates are
    padding), so the model is evaluated with :func:`recforge.evaluate` like any other.

    Parameters
    ----------
    generators : list of Recommender
        Unfitted candidate generators (copied with their parameters).
    ranker : Ranker, optional
        Default ``LambdaMART(n_estimators=200, learning_rate=0.05, num_leaves=15)``.
    n_candidates : int
        Candidates per generator and user.
    label_fraction : float
        Share of the interactions held out as the ranker's labels.
    """

    _learned = ()

    def __init__(
        self,
        generators: Sequence[Recommender] = (),
        ranker: Ranker | None = None,
        n_candidates: int = 100,
        label_fraction: float = 0.2,
        item_features: bool = True,
        user_features: bool = True,
        random_state: Any = 0,
        n_threads: int = 0,
    ) -> None:
        self.generators = generators
        self.ranker = ranker
        self.n_candidates = n_candidates
        self.label_fraction = label_fraction
        self.item_features = item_features
        self.user_features = user_features
        self.random_state = random_state
        self.n_threads = n_threads

    def _fit(self, data: Interactions, show_progress: bool = False) -> None:
        from ..split import random_holdout, temporal_split
        from ._gbdt import LambdaMART

        gens = list(self.generators)
        if not gens:
            raise ValueError("Reranker needs at least one candidate generator")
        n_cand = check_positive_int(self.n_candidates, "n_candidates")
        frac = check_real(self.label_fraction, "label_fraction", 0.0, 1.0, low_open=True)
        if frac >= 1.0:
            raise ValueError("label_fraction must be < 1")
        if data.timestamps is not None:
            base, held = temporal_split(data, test_fraction=frac)
        else:
            base, held = random_holdout(data, test_fraction=frac, random_state=self.random_state)
        if base.nnz == 0 or held.nnz == 0:
            raise ValueError("too few interactions to hold some out as the ranker's labels")
        stage1 = [_clone(g).fit(base) for g in gens]
        users = np.flatnonzero(np.diff(held.matrix.tocsr().indptr) > 0)
        cs = candidates(stage1, base, users, n_cand, labels=held, item_features=self.item_features,
                        user_features=self.user_features, n_threads=self.n_threads)
        sizes = cs.group[cs.group > 0]
        pos_per_user = np.add.reduceat(cs.y, np.r_[0, np.cumsum(sizes)[:-1]]) if len(cs) else np.zeros(0)
        keep_users = np.repeat(pos_per_user > 0, sizes)
        if not keep_users.any():
            raise ValueError("no held-out interaction is among the candidates: raise n_candidates")
        ranker = self.ranker if self.ranker is not None else LambdaMART(
            n_estimators=200, learning_rate=0.05, num_leaves=15, min_data_in_leaf=50, show_progress=False,
            n_threads=self.n_threads,
        )
        ranker = _clone(ranker) if isinstance(ranker, Ranker) else ranker
        ranker.fit(cs.X[keep_users], cs.y[keep_users], group=sizes[pos_per_user > 0])
        self.ranker_ = ranker
        self.feature_names_ = cs.feature_names
        self.generators_ = [_clone(g).fit(data) for g in gens]
        self.history_ = data
        self.train_candidates_ = int(len(cs))
        self.train_positives_ = int(cs.y.sum())

    def _recommend_indices(self, user_idx: np.ndarray, n: int, exclude: sp.csr_matrix | None,
                           candidates_filter: np.ndarray | None, n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        n_cand = max(int(self.n_candidates), n)
        cs = candidates(self.generators_, self.history_, user_idx, n_cand, exclude_seen=exclude is not None,
                        items=candidates_filter, item_features=self.item_features,
                        user_features=self.user_features, n_threads=n_threads)
        scores = self.ranker_.predict(cs.X) if len(cs) else np.empty(0)
        tops = np.full((len(user_idx), n), -1, dtype=np.int32)
        vals = np.full((len(user_idx), n), -np.inf, dtype=np.float32)
        starts = np.r_[0, np.cumsum(cs.group)]
        for row in range(len(user_idx)):
            a, b = starts[row], starts[row + 1]
            order = np.argsort(-scores[a:b], kind="stable")[:n]
            tops[row, : len(order)] = cs.item_idx[a:b][order]
            vals[row, : len(order)] = scores[a:b][order]
        return tops, vals

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """The ranker's score of any (user, item) pair; the generators' rank features are
        those of their top ``n_candidates`` lists with seen items excluded (missing when the
        item is not in them), as ``recommend`` builds them by default."""
        ranks = []
        for g in self.generators_:
            top, _ = g.recommend(np.unique(user_idx), n=min(int(self.n_candidates), g.n_items_), ids="index",
                                 n_threads=self._threads())
            uu = np.unique(user_idx)
            lookup = {}
            for row, u in enumerate(uu):
                for r, it in enumerate(np.asarray(top[row]).tolist()):
                    if it >= 0:
                        lookup[(int(u), int(it))] = r + 1
            ranks.append(np.array([lookup.get((int(u), int(i)), np.nan) for u, i in zip(user_idx, item_idx)]))
        X, _ = pair_features(self.generators_, self.history_, user_idx, item_idx, ranks=ranks,
                             item_features=self.item_features, user_features=self.user_features)
        return self.ranker_.predict(X).astype(np.float32)

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "ranker_")

    def save(self, path: Any) -> Any:
        """Not available: a Reranker is persisted with pickle (it holds other fitted models)."""
        self._check_fitted()
        raise ValueError(
            "a Reranker holds fitted recommenders and a ranker; persist it with pickle "
            "(pickle.dump(model, file)) rather than save()"
        )
