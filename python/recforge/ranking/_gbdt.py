"""Histogram gradient-boosted trees for ranking: LambdaMART and its pointwise and pairwise kin."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _core
from ._base import (
    Ranker,
    as_features,
    as_labels,
    check_int,
    check_real,
    group_offsets,
    seed_of,
)

__all__ = ["LambdaMART", "OBJECTIVES"]

OBJECTIVES: tuple[str, ...] = ("regression", "binary", "lambdarank", "rank_xendcg", "ranknet")
_OBJ_CODE = {name: i for i, name in enumerate(_core.ranking.OBJECTIVES)}
_RANKING_OBJECTIVES = ("lambdarank", "rank_xendcg", "ranknet")
_METRICS = {"ndcg": 0, "map": 1}


def _progress(total: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="LambdaMART", disable=not show, leave=False, unit="tree")


class LambdaMART(Ranker):
    """Gradient-boosted regression trees on histograms, trained for ranking (LambdaMART).

    Features are binned once into at most ``max_bin`` quantile bins by LightGBM's rule (zero
    is a bin of its own, a bin holds at least ``min_data_in_bin`` rows; NaN is a value of its
    own: "missing", sent to whichever side of a split gains more); with ``feature_pre_filter``
    a feature that no bin edge splits into two sides of ``min_data_in_leaf`` rows is dropped.
    Trees grow leaf-wise to ``num_leaves`` leaves from per-bin sums of gradients and
    hessians, the larger child's histogram obtained by subtraction, with LightGBM's split
    search: ``min_data_in_leaf`` is checked on row counts estimated from the hessians
    (``counts_from_hessian=False``: exact counts), and a feature that cannot split a leaf is
    not tried below it. With the same hyperparameters the trees are LightGBM's, up to ties
    between equally good splits. The objective decides what the trees fit:

    ``lambdarank``
        LambdaMART (Burges 2010) as LightGBM computes it: for every pair of documents of a
        query with different labels whose better-ranked one is within ``truncation_level``,
        the pairwise logistic gradient weighted by the absolute change in nDCG of swapping them
        (gains ``label_gain``, default ``2**label - 1``; labels must be integers), divided by
        ``0.01 + |score difference|`` and rescaled per query when ``lambdarank_norm``.
    ``rank_xendcg``
        XE-NDCG (Bruch 2019): softmax cross-entropy against targets ``2**label - gamma``
        with ``gamma ~ U[0, 1)`` drawn per iteration and query.
    ``ranknet``
        Pairwise logistic loss over all pairs of a query with different labels.
    ``binary``
        Pointwise logistic loss of ``label > 0``.
    ``regression``
        Pointwise squared error.

    Parameters follow LightGBM's names where they exist. ``n_threads=0`` uses all cores.

    Early stopping watches ``eval_metric@eval_at[0]`` on the first ``eval_set`` and keeps the
    trees up to the best iteration. The metric is :mod:`recforge.metrics`' nDCG (gain
    ``2**label - 1``, ideal DCG over the query's documents) or MAP (divided by
    ``min(n_relevant, k)``); a query without relevant documents scores ``empty_query_score``
    (1, as LightGBM; NaN leaves such queries out).
    """

    _learned = (
        "node_offsets_", "leaf_offsets_", "split_feature_", "threshold_", "threshold_bin_",
        "default_left_", "left_child_", "right_child_", "split_gain_", "leaf_value_", "leaf_count_",
        "bin_upper_", "bin_offsets_", "bin_has_missing_", "init_score_", "n_features_in_",
        "best_iteration_", "feature_names_in_", "evals_result_",
    )

    def __init__(
        self,
        objective: str = "lambdarank",
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_data_in_leaf: int = 20,
        min_sum_hessian: float = 1e-3,
        lambda_l1: float = 0.0,
        lambda_l2: float = 0.0,
        min_gain_to_split: float = 0.0,
        counts_from_hessian: bool = True,
        subsample: float = 1.0,
        subsample_freq: int = 1,
        colsample_bytree: float = 1.0,
        max_bin: int = 255,
        min_data_in_bin: int = 3,
        bin_sample_rows: int = 200000,
        feature_pre_filter: bool = True,
        label_gain: Sequence[float] | None = None,
        truncation_level: int = 30,
        lambdarank_norm: bool = True,
        sigmoid: float = 1.0,
        eval_metric: str = "ndcg",
        eval_at: int | Sequence[int] = 10,
        empty_query_score: float = 1.0,
        early_stopping_rounds: int | None = None,
        random_state: Any = 0,
        n_threads: int = 0,
        show_progress: bool = True,
    ) -> None:
        self.objective = objective
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_data_in_leaf = min_data_in_leaf
        self.min_sum_hessian = min_sum_hessian
        self.lambda_l1 = lambda_l1
        self.lambda_l2 = lambda_l2
        self.min_gain_to_split = min_gain_to_split
        self.counts_from_hessian = counts_from_hessian
        self.subsample = subsample
        self.subsample_freq = subsample_freq
        self.colsample_bytree = colsample_bytree
        self.max_bin = max_bin
        self.min_data_in_bin = min_data_in_bin
        self.bin_sample_rows = bin_sample_rows
        self.feature_pre_filter = feature_pre_filter
        self.label_gain = label_gain
        self.truncation_level = truncation_level
        self.lambdarank_norm = lambdarank_norm
        self.sigmoid = sigmoid
        self.eval_metric = eval_metric
        self.eval_at = eval_at
        self.empty_query_score = empty_query_score
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.n_threads = n_threads
        self.show_progress = show_progress

    # -- checks ---------------------------------------------------------------------------
    def _checked(self) -> dict[str, Any]:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        c: dict[str, Any] = {}
        c["n_estimators"] = check_int(self.n_estimators, "n_estimators", 1)
        c["learning_rate"] = check_real(self.learning_rate, "learning_rate", 0.0, low_open=True)
        c["num_leaves"] = check_int(self.num_leaves, "num_leaves", 2)
        c["max_depth"] = check_int(self.max_depth, "max_depth", -1)
        c["min_data_in_leaf"] = check_int(self.min_data_in_leaf, "min_data_in_leaf", 1)
        c["min_sum_hessian"] = check_real(self.min_sum_hessian, "min_sum_hessian", 0.0)
        c["lambda_l1"] = check_real(self.lambda_l1, "lambda_l1", 0.0)
        c["lambda_l2"] = check_real(self.lambda_l2, "lambda_l2", 0.0)
        c["min_gain_to_split"] = check_real(self.min_gain_to_split, "min_gain_to_split", 0.0)
        c["subsample"] = check_real(self.subsample, "subsample", 0.0, 1.0, low_open=True)
        c["subsample_freq"] = check_int(self.subsample_freq, "subsample_freq", 1)
        c["colsample_bytree"] = check_real(self.colsample_bytree, "colsample_bytree", 0.0, 1.0, low_open=True)
        c["max_bin"] = check_int(self.max_bin, "max_bin", 2)
        if c["max_bin"] > 255:
            raise ValueError(f"max_bin must be <= 255 (bins are stored as bytes), got {self.max_bin}")
        c["min_data_in_bin"] = check_int(self.min_data_in_bin, "min_data_in_bin", 1)
        c["bin_sample_rows"] = check_int(self.bin_sample_rows, "bin_sample_rows", 1)
        c["truncation_level"] = check_int(self.truncation_level, "truncation_level", 1)
        c["sigmoid"] = check_real(self.sigmoid, "sigmoid", 0.0, low_open=True)
        if self.eval_metric not in _METRICS:
            raise ValueError(f"eval_metric must be one of {list(_METRICS)}, got {self.eval_metric!r}")
        ks = [self.eval_at] if np.ndim(self.eval_at) == 0 else list(self.eval_at)
        if not ks:
            raise ValueError("eval_at is empty: give at least one cut-off k")
        c["eval_at"] = [check_int(k, "eval_at", 1) for k in ks]
        e = self.empty_query_score
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not (np.isnan(e) or 0.0 <= e <= 1.0):
            raise ValueError(f"empty_query_score must be in [0, 1] or NaN, got {e!r}")
        if self.early_stopping_rounds is not None:
            c["early_stopping_rounds"] = check_int(self.early_stopping_rounds, "early_stopping_rounds", 1)
        else:
            c["early_stopping_rounds"] = None
        if self.label_gain is not None:
            lg = np.asarray(self.label_gain, dtype=np.float64)
            if lg.ndim != 1 or lg.size == 0 or not np.isfinite(lg).all():
                raise ValueError("label_gain must be a non-empty 1-D sequence of finite gains, one per label")
            c["label_gain"] = np.ascontiguousarray(lg)
        else:
            c["label_gain"] = None
        return c

    def _check_labels(self, y: np.ndarray, c: dict[str, Any], name: str) -> None:
        if self.objective == "lambdarank":
            n_gain = len(c["label_gain"]) if c["label_gain"] is not None else 31
            if y.size and (np.any(y < 0) or np.any(y != np.round(y)) or y.max() >= n_gain):
                raise ValueError(
                    f"{name}: lambdarank needs integer relevance labels in [0, {n_gain}) "
                    "(the length of label_gain); round or map the labels first"
                )

    # -- fitting --------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any,
        group: Any = None,
        *,
        qid: Any = None,
        eval_set: Sequence[tuple[Any, Any]] | None = None,
        eval_group: Sequence[Any] | None = None,
        eval_qid: Sequence[Any] | None = None,
        show_progress: bool | None = None,
    ) -> LambdaMART:
        """Boost ``n_estimators`` trees on ``X`` (rows x features) with labels ``y``.

        Parameters
        ----------
        group : array, optional
            Query sizes in row order (summing to the row count), or one query id per row. The
            rows of a query must be contiguous. Needed by the ranking objectives.
        qid : array, optional
            Per-row query ids (use it when ``group`` would be ambiguous).
        eval_set : list of (X, y)
            Validation sets, scored after every tree (``evals_result_``); the first drives
            early stopping.
        eval_group, eval_qid : list
            The group sizes or query ids of each validation set.
        """
        c = self._checked()
        Xa, names = as_features(X)
        n, F = Xa.shape
        if n == 0 or F == 0:
            raise ValueError(f"X must have at least one row and one feature, got shape {Xa.shape}")
        ya = as_labels(y, n)
        self._check_labels(ya, c, "y")
        offsets = group_offsets(group, qid, n)
        if self.objective in _RANKING_OBJECTIVES and group is None and qid is None:
            raise ValueError(f"objective {self.objective!r} needs the queries: pass group= (sizes or ids) or qid=")
        threads = self._threads()
        split_rows = c["min_data_in_leaf"] if self.feature_pre_filter else 0
        upper, boff, miss = _core.ranking.find_bins(Xa, c["max_bin"], c["min_data_in_bin"], c["bin_sample_rows"], threads,
                                                    split_rows)
        bins = _core.ranking.apply_bins(Xa, upper, boff, miss, threads)
        valid = self._valid_sets(eval_set, eval_group, eval_qid, F, c, upper, boff, miss, threads)
        if c["early_stopping_rounds"] is not None and not valid:
            raise ValueError("early_stopping_rounds needs an eval_set to watch")

        obj = _OBJ_CODE[self.objective]
        if self.objective == "regression":
            init = float(ya.mean())
        elif self.objective == "binary":
            p = float(np.clip((ya > 0).mean(), 1e-12, 1 - 1e-12))
            init = float(np.log(p / (1 - p)) / c["sigmoid"])
        else:
            init = 0.0
        scores = np.full(n, init, dtype=np.float64)
        gh = np.empty((n, 2), dtype=np.float32)
        seed = seed_of(self.random_state)
        trees: list[dict[str, np.ndarray]] = []
        metric_code = _METRICS[self.eval_metric]
        labels = [f"{self.eval_metric}@{k}" for k in c["eval_at"]]
        evals: dict[str, dict[str, list[float]]] = {f"valid_{i}": {lab: [] for lab in labels} for i in range(len(valid))}
        best_value, best_iter, stale = -np.inf, -1, 0
        rows = oob = None
        mask = None
        show = self.show_progress if show_progress is None else show_progress
        with _progress(c["n_estimators"], bool(show)) as bar:
            for it in range(c["n_estimators"]):
                _core.ranking.gradients(
                    obj, scores, ya, offsets, gh, c["sigmoid"], c["label_gain"], c["truncation_level"],
                    bool(self.lambdarank_norm), seed, it, threads,
                )
                rng = np.random.default_rng([seed, it])
                if c["subsample"] < 1.0 and it % c["subsample_freq"] == 0:
                    take = rng.random(n) < c["subsample"]
                    if not take.any():
                        take[rng.integers(n)] = True
                    rows = np.flatnonzero(take).astype(np.int32)
                    oob = np.flatnonzero(~take).astype(np.int32)
                if c["colsample_bytree"] < 1.0:
                    k = max(1, int(round(c["colsample_bytree"] * F)))
                    mask = np.zeros(F, dtype=np.uint8)
                    mask[rng.choice(F, size=k, replace=False)] = 1
                tree = _core.ranking.grow_tree(
                    bins, upper, boff, miss, gh, rows, mask, scores, c["num_leaves"], c["max_depth"],
                    c["min_data_in_leaf"], c["min_sum_hessian"], c["lambda_l1"], c["lambda_l2"],
                    c["min_gain_to_split"], c["learning_rate"], bool(self.counts_from_hessian), threads,
                )
                if oob is not None and oob.size:
                    _core.ranking.add_tree_binned(tree, bins, upper, boff, miss, oob, scores, threads)
                trees.append(tree)
                post = {}
                for i, (vb, vy, voff, vs) in enumerate(valid):
                    _core.ranking.add_tree_binned(tree, vb, upper, boff, miss, None, vs, threads)
                    for k, lab in zip(c["eval_at"], labels):
                        value = _core.ranking.rank_metric(metric_code, vs, vy, voff, k, float(self.empty_query_score), threads)
                        evals[f"valid_{i}"][lab].append(value)
                    post[f"v{i}:{labels[0]}"] = evals[f"valid_{i}"][labels[0]][-1]
                bar.update(1)
                if post:
                    bar.set_postfix({k: f"{v:.4f}" for k, v in post.items()}, refresh=False)
                if valid:
                    value = evals["valid_0"][labels[0]][-1]
                    if value > best_value:
                        best_value, best_iter, stale = value, it, 0
                    else:
                        stale += 1
                    if c["early_stopping_rounds"] is not None and stale >= c["early_stopping_rounds"]:
                        break
        if c["early_stopping_rounds"] is not None and best_iter >= 0:
            trees = trees[: best_iter + 1]
        self._store(trees)
        self.bin_upper_, self.bin_offsets_, self.bin_has_missing_ = upper, boff, miss
        self.init_score_ = init
        self.n_features_in_ = int(F)
        self.best_iteration_ = int(best_iter + 1) if valid else len(trees)
        self.evals_result_ = evals
        self.feature_names_in_ = np.asarray(names if names is not None else [f"f{i}" for i in range(F)])
        return self

    def _valid_sets(self, eval_set: Any, eval_group: Any, eval_qid: Any, F: int, c: dict[str, Any],
                    upper: np.ndarray, boff: np.ndarray, miss: np.ndarray, threads: int) -> list[tuple[Any, ...]]:
        if eval_set is None:
            return []
        if isinstance(eval_set, tuple) and len(eval_set) == 2 and not isinstance(eval_set[0], tuple):
            eval_set = [eval_set]
        out = []
        for i, pair in enumerate(eval_set):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError("eval_set must be a list of (X, y) pairs")
            Xv, _ = as_features(pair[0], f"eval_set[{i}] X", F)
            yv = as_labels(pair[1], Xv.shape[0], f"eval_set[{i}] y")
            self._check_labels(yv, c, f"eval_set[{i}] y")
            g = eval_group[i] if eval_group is not None else None
            q = eval_qid[i] if eval_qid is not None else None
            if g is None and q is None:
                raise ValueError(f"eval_set[{i}] needs its queries: pass eval_group= or eval_qid=")
            voff = group_offsets(g, q, Xv.shape[0], f"eval_group[{i}]")
            if voff.shape[0] < 2:
                raise ValueError(f"eval_set[{i}] has no queries")
            vb = _core.ranking.apply_bins(Xv, upper, boff, miss, threads)
            out.append((vb, yv, voff, np.full(Xv.shape[0], 0.0, dtype=np.float64)))
        if self.objective in ("regression", "binary"):
            pass
        return out

    def _store(self, trees: list[dict[str, np.ndarray]]) -> None:
        nn = np.array([t["feature"].shape[0] for t in trees], dtype=np.int64)
        nl = np.array([t["leaf_value"].shape[0] for t in trees], dtype=np.int64)
        self.node_offsets_ = np.concatenate([[0], np.cumsum(nn)]).astype(np.int64)
        self.leaf_offsets_ = np.concatenate([[0], np.cumsum(nl)]).astype(np.int64)

        def cat(key: str, dtype: Any) -> np.ndarray:
            parts = [t[key] for t in trees]
            return np.ascontiguousarray(np.concatenate(parts) if parts else np.empty(0), dtype=dtype)

        self.split_feature_ = cat("feature", np.int32)
        self.threshold_ = cat("threshold", np.float32)
        self.threshold_bin_ = cat("threshold_bin", np.int32)
        self.default_left_ = cat("default_left", np.uint8)
        self.left_child_ = cat("left", np.int32)
        self.right_child_ = cat("right", np.int32)
        self.split_gain_ = cat("gain", np.float64)
        self.leaf_value_ = cat("leaf_value", np.float64)
        self.leaf_count_ = cat("leaf_count", np.int64)

    def _check_state(self) -> None:
        self.init_score_ = float(self.init_score_)
        self.n_features_in_ = int(self.n_features_in_)
        self.best_iteration_ = int(self.best_iteration_)
        probe = np.zeros((1, self.n_features_in_), dtype=np.float32)
        _core.ranking.predict(*self._forest(), probe, -1, self.init_score_, True, 1)

    def _forest(self) -> tuple[np.ndarray, ...]:
        return (
            self.node_offsets_, self.leaf_offsets_, self.split_feature_, self.threshold_, self.default_left_,
            self.left_child_, self.right_child_, self.leaf_value_,
        )

    # -- using ----------------------------------------------------------------------------
    @property
    def n_trees_(self) -> int:
        self._check_fitted()
        return int(self.node_offsets_.shape[0] - 1)

    def predict(self, X: Any, *, num_iteration: int | None = None, raw_score: bool = True,
                n_threads: int | None = None) -> np.ndarray:
        """Scores of the rows of ``X`` (float64). NaN features are missing values.

        ``num_iteration`` limits the trees used (default all). For ``objective="binary"``,
        ``raw_score=False`` gives probabilities.
        """
        self._check_fitted()
        Xa, _ = as_features(X, "X", self.n_features_in_)
        use = -1 if num_iteration is None else check_int(num_iteration, "num_iteration", 0)
        out = _core.ranking.predict(*self._forest(), Xa, use, self.init_score_, False, self._threads(n_threads))
        if self.objective == "binary" and not raw_score:
            out = 1.0 / (1.0 + np.exp(-float(self.sigmoid) * out))
        return out

    def predict_leaf(self, X: Any, *, n_threads: int | None = None) -> np.ndarray:
        """Leaf index of every row in every tree (rows x trees, int32)."""
        self._check_fitted()
        Xa, _ = as_features(X, "X", self.n_features_in_)
        return _core.ranking.predict_leaf(*self._forest(), Xa, -1, self._threads(n_threads))

    def score(self, X: Any, y: Any, group: Any = None, *, qid: Any = None, k: int | None = None,
              metric: str | None = None) -> float:
        """Mean ``eval_metric@k`` of the model's ranking of the queries of ``X``."""
        self._check_fitted()
        Xa, _ = as_features(X, "X", self.n_features_in_)
        ya = as_labels(y, Xa.shape[0])
        offsets = group_offsets(group, qid, Xa.shape[0])
        m = metric or self.eval_metric
        if m not in _METRICS:
            raise ValueError(f"metric must be one of {list(_METRICS)}, got {m!r}")
        kk = check_int(k if k is not None else (self.eval_at if np.ndim(self.eval_at) == 0 else list(self.eval_at)[0]), "k", 1)
        return _core.ranking.rank_metric(_METRICS[m], self.predict(Xa), ya, offsets, kk,
                                         float(self.empty_query_score), self._threads())

    def feature_importance(self, importance_type: str = "split") -> np.ndarray:
        """Per feature: the number of splits on it (``"split"``) or their total gain (``"gain"``)."""
        self._check_fitted()
        if importance_type == "split":
            return np.bincount(self.split_feature_, minlength=self.n_features_in_).astype(np.int64)
        if importance_type == "gain":
            return np.bincount(self.split_feature_, weights=self.split_gain_, minlength=self.n_features_in_)
        raise ValueError(f"importance_type must be 'split' or 'gain', got {importance_type!r}")

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.feature_importance("split")

    def dump_model(self, max_trees: int | None = None) -> str:
        """A readable text dump of the trees: one indented line per split and per leaf."""
        self._check_fitted()
        names = getattr(self, "feature_names_in_", None)
        lines = [f"LambdaMART objective={self.objective} trees={self.n_trees_} init_score={self.init_score_:.6g}"]
        n_show = self.n_trees_ if max_trees is None else min(self.n_trees_, max_trees)
        for t in range(n_show):
            n0, n1 = int(self.node_offsets_[t]), int(self.node_offsets_[t + 1])
            l0 = int(self.leaf_offsets_[t])
            lines.append(f"tree {t}: {n1 - n0 + 1} leaves")

            def walk(child: int, depth: int) -> None:
                pad = "  " * depth
                if child < 0:
                    leaf = ~child
                    lines.append(f"{pad}leaf {leaf}: value={self.leaf_value_[l0 + leaf]:.6g} "
                                 f"count={int(self.leaf_count_[l0 + leaf])}")
                    return
                i = n0 + child
                f = int(self.split_feature_[i])
                fname = str(names[f]) if names is not None and len(names) > f else f"f{f}"
                side = "left" if self.default_left_[i] else "right"
                lines.append(f"{pad}node {child}: {fname} <= {float(self.threshold_[i]):.6g} "
                             f"(missing -> {side}) gain={float(self.split_gain_[i]):.6g}")
                walk(int(self.left_child_[i]), depth + 1)
                walk(int(self.right_child_[i]), depth + 1)

            walk(0 if n1 > n0 else ~0, 1)
        return "\n".join(lines)

    def evals_to_json(self) -> str:
        """``evals_result_`` as JSON (for logs)."""
        return json.dumps(getattr(self, "evals_result_", {}))
