"""Multi-stage recommendation: retrieve -> rank -> re-rank -> fall back.

A :class:`Pipeline` is itself a :class:`~recforge.Recommender`: it is fitted, asked for
``recommend`` and evaluated with :func:`recforge.evaluate` like any single model.

1. **retrieve**: every retriever (any fitted recforge model, served through its index if one
   was built) proposes ``n_candidates`` unseen items per user; the lists are merged by
   reciprocal-rank fusion.
2. **rank**: a ranker scores the merged candidates: another recforge model (its ``score``), a
   callable ``(user_indices, candidate_items) -> scores``, or None to keep the fused order.
3. **re-rank**: business and diversity rules in order: :class:`MMR` (maximal marginal
   relevance), :class:`CategoryCap`, :class:`FreshnessBoost`, :class:`Blocklist`.
4. **fall back**: when a stage raises, runs past its time budget, or too few items remain, the
   missing slots are filled from a popularity model (unseen, not blocked, not already listed).

Every call records per-stage wall times in ``stage_times_`` and what happened to the last
batch in ``last_trace_``.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import Recommender
from .baselines import Popularity
from .data import Interactions

__all__ = ["Pipeline", "Reranker", "MMR", "CategoryCap", "FreshnessBoost", "Blocklist", "StageTimeout"]

STAGES = ("retrieve", "rank", "rerank")


class StageTimeout(TimeoutError):
    """A stage did not finish within its time budget."""


# -- re-rankers ------------------------------------------------------------------------------


class Reranker:
    """A rule applied to one user's ranked candidates (item indices, best first)."""

    def bind(self, pipeline: Pipeline) -> None:
        """Resolve raw ids against the pipeline's item map (called by ``Pipeline.fit``)."""

    def rerank(self, user: int, items: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _per_item(values: Any, pipeline: Pipeline, what: str, fill: Any) -> np.ndarray:
    """A per-item array in the pipeline's index order, from an aligned array or a raw-id mapping."""
    n = pipeline.n_items_
    if isinstance(values, Mapping):
        out = np.array([values.get(i, fill) for i in pipeline.item_ids_.tolist()], dtype=object)
        return out
    arr = np.asarray(values)
    if arr.shape[0] != n:
        raise ValueError(f"{what} needs one value per item ({n}) or a dict from raw item id, got {arr.shape[0]}")
    return arr


class MMR(Reranker):
    """Maximal marginal relevance: greedily pick ``argmax lambda * rel - (1 - lambda) * max sim``.

    Parameters
    ----------
    item_vectors : array (n_items, dim) or dict raw id -> vector
        Similarity is the cosine of these vectors (e.g. item factors or content).
    lambda_ : float in [0, 1]
        1 keeps the relevance order, 0 maximises diversity.
    """

    def __init__(self, item_vectors: Any, lambda_: float = 0.7) -> None:
        if not 0.0 <= lambda_ <= 1.0:
            raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}")
        self.item_vectors = item_vectors
        self.lambda_ = float(lambda_)

    def bind(self, pipeline: Pipeline) -> None:
        vec = _per_item(self.item_vectors, pipeline, "item_vectors", None)
        if vec.dtype == object:
            vec = np.stack([np.asarray(v, dtype=np.float32) for v in vec])
        vec = np.asarray(vec, dtype=np.float32)
        if vec.ndim != 2 or not np.isfinite(vec).all():
            raise ValueError("item_vectors must be a finite 2-D array")
        norms = np.linalg.norm(vec, axis=1, keepdims=True)
        self._unit = np.divide(vec, norms, out=np.zeros_like(vec), where=norms > 0)

    def rerank(self, user, items, scores, n):
        if len(items) <= 1:
            return items, scores
        rel = scores.astype(np.float64)
        finite = np.isfinite(rel)
        lo, hi = (rel[finite].min(), rel[finite].max()) if finite.any() else (0.0, 1.0)
        rel = np.where(finite, (rel - lo) / (hi - lo) if hi > lo else 1.0, 0.0)
        vec = self._unit[items]
        chosen: list[int] = []
        max_sim = np.full(len(items), -np.inf)
        available = np.ones(len(items), dtype=bool)
        for _ in range(min(n, len(items))):
            penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
            gain = self.lambda_ * rel - (1.0 - self.lambda_) * penalty
            gain[~available] = -np.inf
            pick = int(np.argmax(gain))
            chosen.append(pick)
            available[pick] = False
            max_sim = np.maximum(max_sim, vec @ vec[pick])
        order = np.array(chosen, dtype=np.int64)
        return items[order], scores[order]


class CategoryCap(Reranker):
    """At most ``max_per_category`` items of one category in a list (order otherwise kept)."""

    def __init__(self, categories: Any, max_per_category: int = 2) -> None:
        if max_per_category < 1:
            raise ValueError("max_per_category must be >= 1")
        self.categories = categories
        self.max_per_category = int(max_per_category)

    def bind(self, pipeline: Pipeline) -> None:
        self._cat = _per_item(self.categories, pipeline, "categories", None)

    def rerank(self, user, items, scores, n):
        counts: dict[Any, int] = defaultdict(int)
        keep = []
        for pos, item in enumerate(items.tolist()):
            c = self._cat[item]
            if c is None or (isinstance(c, float) and np.isnan(c)):
                keep.append(pos)
                continue
            if counts[c] < self.max_per_category:
                counts[c] += 1
                keep.append(pos)
        keep = np.array(keep, dtype=np.int64)
        return items[keep], scores[keep]


class FreshnessBoost(Reranker):
    """Multiply scores by ``1 + weight * 0.5 ** (age / half_life)`` and re-sort.

    ``item_times`` gives each item's release (or last update) time; age is measured from
    ``now`` (default: the newest item time).
    """

    def __init__(self, item_times: Any, half_life: float, weight: float = 0.5, now: float | None = None) -> None:
        if not half_life > 0:
            raise ValueError("half_life must be positive")
        self.item_times = item_times
        self.half_life = float(half_life)
        self.weight = float(weight)
        self.now = now

    def bind(self, pipeline: Pipeline) -> None:
        t = _per_item(self.item_times, pipeline, "item_times", np.nan).astype(np.float64)
        now = np.nanmax(t) if self.now is None else float(self.now)
        age = np.where(np.isnan(t), np.inf, np.maximum(now - t, 0.0))
        self._boost = 1.0 + self.weight * np.exp2(-age / self.half_life)

    def rerank(self, user, items, scores, n):
        s = scores.astype(np.float64)
        # scores may be negative: boost the shifted, non-negative relevance
        base = s - (s[np.isfinite(s)].min() if np.isfinite(s).any() else 0.0)
        boosted = base * self._boost[items]
        order = np.argsort(-boosted, kind="stable")
        return items[order], boosted[order].astype(np.float32)


class Blocklist(Reranker):
    """Never recommend these items (raw ids), e.g. out of stock or not allowed in a market."""

    def __init__(self, items: Any) -> None:
        self.items = items

    def bind(self, pipeline: Pipeline) -> None:
        blocked = np.zeros(pipeline.n_items_, dtype=bool)
        raw = np.atleast_1d(np.asarray(self.items, dtype=object))
        if raw.size:
            blocked[pipeline._to_index(raw, "item", "raw")] = True
        self._blocked = blocked

    def rerank(self, user, items, scores, n):
        keep = ~self._blocked[items]
        return items[keep], scores[keep]


# -- the pipeline ------------------------------------------------------------------------------


class Pipeline(Recommender):
    """Retrieve, rank, re-rank and fall back, behind the shared recommender contract.

    Parameters
    ----------
    retrievers : model, list of models, or dict name -> model
        Candidate generators (any recforge recommenders; unfitted ones are fitted by ``fit``).
    ranker : model, callable or None
        Scores the merged candidates; None keeps the reciprocal-rank-fusion order.
    rerankers : sequence of Reranker
    fallback : model, optional
        Fills missing slots; default :class:`~recforge.Popularity`.
    n_candidates : int
        Candidates per retriever and user.
    budgets_ms : dict stage -> milliseconds, optional
        Time budget per stage ("retrieve", "rank", "rerank") for one batch; a stage that
        overruns is abandoned and the fallback answers.
    refit : bool
        Fit already-fitted components again in ``fit``.
    n_threads : int
    """

    def __init__(
        self,
        retrievers: Any,
        ranker: Any = None,
        rerankers: Sequence[Reranker] = (),
        fallback: Recommender | None = None,
        n_candidates: int = 200,
        budgets_ms: Mapping[str, float] | None = None,
        refit: bool = False,
        n_threads: int = 0,
    ) -> None:
        self.retrievers = retrievers
        self.ranker = ranker
        self.rerankers = rerankers
        self.fallback = fallback
        self.n_candidates = n_candidates
        self.budgets_ms = budgets_ms
        self.refit = refit
        self.n_threads = n_threads

    # pipelines hold models, not arrays: pickle them; .npz save is not offered
    def save(self, path: Any) -> Any:  # type: ignore[override]
        self._check_fitted()
        raise ValueError("a Pipeline holds other models: pickle it, or save its models one by one")

    def _named_retrievers(self) -> dict[str, Recommender]:
        r = self.retrievers
        if isinstance(r, Recommender):
            return {type(r).__name__: r}
        if isinstance(r, Mapping):
            named = dict(r)
        else:
            named = {}
            for m in r:
                name = type(m).__name__
                while name in named:
                    name += "'"
                named[name] = m
        if not named or not all(isinstance(m, Recommender) for m in named.values()):
            raise ValueError("retrievers must be one or more recforge Recommender models")
        return named

    def _fit(self, data: Interactions, **fit_params: Any) -> None:
        from ._validation import check_positive_int

        check_positive_int(self.n_candidates, "n_candidates")
        if self.budgets_ms is not None:
            unknown = set(self.budgets_ms) - set(STAGES)
            if unknown:
                raise ValueError(f"budgets_ms has unknown stages {sorted(unknown)}; stages are {list(STAGES)}")
        self.retrievers_ = self._named_retrievers()
        components = list(self.retrievers_.values())
        if isinstance(self.ranker, Recommender):
            components.append(self.ranker)
        elif self.ranker is not None and not callable(self.ranker):
            raise ValueError("ranker must be a recforge model, a callable or None")
        self.fallback_ = self.fallback if self.fallback is not None else Popularity()
        components.append(self.fallback_)
        for model in components:
            if self.refit or not model.is_fitted:
                model.fit(data)
            elif not (np.array_equal(model.user_ids_, self.user_ids_) and np.array_equal(model.item_ids_, self.item_ids_)):
                raise ValueError(f"{type(model).__name__} was fitted on data with other id maps; refit it or pass refit=True")
        for r in self.rerankers:
            if not isinstance(r, Reranker):
                raise ValueError(f"rerankers must be Reranker objects, got {type(r).__name__}")
            r.bind(self)
        self.stage_times_: dict[str, list[float]] = defaultdict(list)
        self.last_trace_: dict[str, Any] = {}
        self._executor = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_executor", None)
        return state

    def _run_stage(self, name: str, fn: Callable[[], Any]) -> Any:
        budget = (self.budgets_ms or {}).get(name)
        t0 = time.perf_counter()
        try:
            if budget is None:
                return fn()
            if getattr(self, "_executor", None) is None:
                self._executor = cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="recforge-stage")
            future = self._executor.submit(fn)
            try:
                result = future.result(timeout=budget / 1000.0)
            except cf.TimeoutError as exc:
                raise StageTimeout(f"stage {name!r} exceeded its budget of {budget} ms") from exc
            # a stage that holds the GIL can finish before the waiting thread gets it back to
            # notice the timeout: a result that arrives after the budget is late all the same
            elapsed = (time.perf_counter() - t0) * 1000.0
            if elapsed > budget:
                raise StageTimeout(f"stage {name!r} took {elapsed:.3g} ms, over its budget of {budget} ms")
            return result
        finally:
            self.stage_times_[name].append((time.perf_counter() - t0) * 1000.0)

    def _retrieve(self, user_idx, exclude, candidates, n_threads):
        fused: list[dict[int, float]] = [defaultdict(float) for _ in range(len(user_idx))]
        for model in self.retrievers_.values():
            depth = min(self.n_candidates, model.n_items_ if candidates is None else len(candidates))
            top, _ = model._recommend_indices(user_idx, depth, exclude, candidates, n_threads)
            for row, items in enumerate(top):
                acc = fused[row]
                for rank, item in enumerate(items.tolist()):
                    if item >= 0:
                        acc[item] += 1.0 / (60.0 + rank + 1.0)
        out = []
        for acc in fused:
            items = np.fromiter(acc.keys(), dtype=np.int64, count=len(acc))
            scores = np.fromiter(acc.values(), dtype=np.float64, count=len(acc))
            order = np.lexsort((items, -scores))
            out.append((items[order], scores[order].astype(np.float32)))
        return out

    def _rank(self, user_idx, lists):
        if self.ranker is None:
            return lists
        users = np.concatenate([np.full(len(items), u) for u, (items, _) in zip(user_idx, lists)]).astype(np.int64)
        items = np.concatenate([items for items, _ in lists]).astype(np.int64) if lists else np.empty(0, dtype=np.int64)
        if isinstance(self.ranker, Recommender):
            scores = self.ranker._score_pairs(users, items) if len(items) else np.empty(0, dtype=np.float32)
        else:
            scores = np.asarray(self.ranker(users, items), dtype=np.float32)
            if scores.shape != items.shape:
                raise ValueError("the ranker must return one score per candidate")
        out, start = [], 0
        for it, _ in lists:
            s = scores[start : start + len(it)]
            start += len(it)
            order = np.lexsort((it, -s))
            out.append((it[order], s[order]))
        return out

    def _rerank(self, user_idx, lists, n):
        out = []
        for u, (items, scores) in zip(user_idx, lists):
            for r in self.rerankers:
                items, scores = r.rerank(int(u), items, scores, n)
            out.append((items, scores))
        return out

    def _recommend_indices(self, user_idx, n, exclude, candidates, n_threads):
        trace: dict[str, Any] = {"fallback": None, "filled": 0}
        lists = None
        try:
            lists = self._run_stage("retrieve", lambda: self._retrieve(user_idx, exclude, candidates, n_threads))
            lists = self._run_stage("rank", lambda: self._rank(user_idx, lists))
            if self.rerankers:
                lists = self._run_stage("rerank", lambda: self._rerank(user_idx, lists, n))
        except Exception as exc:  # any stage failure: popularity answers
            trace["fallback"] = f"{type(exc).__name__}: {exc}"
            lists = None
        fb_items, fb_scores = self.fallback_._recommend_indices(
            user_idx, min(self.fallback_.n_items_ if candidates is None else len(candidates), max(n * 3, n + 50)),
            exclude, candidates, n_threads,
        )
        blocked = None
        for r in self.rerankers:
            if isinstance(r, Blocklist):
                blocked = r._blocked if blocked is None else blocked | r._blocked
        tops = np.full((len(user_idx), n), -1, dtype=np.int32)
        vals = np.full((len(user_idx), n), -np.inf, dtype=np.float32)
        for row in range(len(user_idx)):
            items, scores = (lists[row] if lists is not None else (np.empty(0, np.int64), np.empty(0, np.float32)))
            items, scores = items[:n], scores[:n]
            count = len(items)
            tops[row, :count], vals[row, :count] = items, scores
            if count < n:
                have = set(items.tolist())
                floor = float(scores.min()) if count else 0.0
                for item in fb_items[row].tolist():
                    if count == n:
                        break
                    if item < 0 or item in have or (blocked is not None and blocked[item]):
                        continue
                    have.add(item)
                    tops[row, count] = item
                    floor = np.nextafter(np.float32(floor), np.float32(-np.inf))
                    vals[row, count] = floor
                    count += 1
                    trace["filled"] += 1
        self.last_trace_ = trace
        return tops, vals

    def _score_pairs(self, user_idx, item_idx):
        if isinstance(self.ranker, Recommender):
            return self.ranker._score_pairs(user_idx, item_idx)
        return next(iter(self.retrievers_.values()))._score_pairs(user_idx, item_idx)

    def timings(self) -> dict[str, dict[str, float]]:
        """Median, p99 and count of each stage's wall time (milliseconds) so far."""
        out = {}
        for stage, times in self.stage_times_.items():
            t = np.asarray(times)
            out[stage] = {"median_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)), "calls": int(t.size)}
        return out
