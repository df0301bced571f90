"""Linear rankers: pointwise logistic regression, pairwise RankNet / RankSVM and listwise ListNet."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ._base import Ranker, as_features, as_labels, check_int, check_real, group_offsets, seed_of

__all__ = ["LinearRanker", "LINEAR_LOSSES"]

LINEAR_LOSSES: tuple[str, ...] = ("logistic", "ranknet", "ranksvm", "listnet")


class LinearRanker(Ranker):
    """A linear scoring function ``s = w . x + b`` trained by SGD, one query per step.

    ``loss``:

    ``logistic``
        pointwise log-loss of ``sigmoid(s)`` against ``label > 0`` (mean over a query's rows).
    ``ranknet``
        pairwise logistic ``log(1 + exp(-(s_i - s_j)))`` over the pairs of a query with
        ``y_i > y_j`` (mean over pairs).
    ``ranksvm``
        pairwise hinge ``max(0, 1 - (s_i - s_j))`` over the same pairs (RankSVM by SGD).
    ``listnet``
        cross-entropy between the top-one probabilities ``softmax(y)`` and ``softmax(s)``.

    Features are standardized with the training means and deviations (``standardize=True``);
    NaN features are missing values, replaced by the training mean. Pairwise losses cost
    O(n^2) per query of n rows. Training is sequential: a ``random_state`` gives the same model
    on every machine.
    """

    _learned = ("coef_", "intercept_", "mean_", "scale_", "n_features_in_", "loss_history_")

    def __init__(
        self,
        loss: str = "ranknet",
        n_epochs: int = 20,
        learning_rate: float = 0.05,
        l2: float = 1e-4,
        standardize: bool = True,
        random_state: Any = 0,
        n_threads: int = 0,
        show_progress: bool = True,
    ) -> None:
        self.loss = loss
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.l2 = l2
        self.standardize = standardize
        self.random_state = random_state
        self.n_threads = n_threads
        self.show_progress = show_progress

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.scale_
        Z[np.isnan(Z)] = 0.0
        return np.ascontiguousarray(Z, dtype=np.float32)

    def fit(self, X: Any, y: Any, group: Any = None, *, qid: Any = None,
            show_progress: bool | None = None) -> LinearRanker:
        """Fit on rows ``X`` with labels ``y`` and queries ``group`` (sizes or per-row ids) / ``qid``.

        Without queries the pointwise ``logistic`` loss steps over blocks of 256 rows; the other
        losses need the queries.
        """
        from tqdm.auto import tqdm

        if self.loss not in LINEAR_LOSSES:
            raise ValueError(f"loss must be one of {list(LINEAR_LOSSES)}, got {self.loss!r}")
        n_epochs = check_int(self.n_epochs, "n_epochs", 1)
        lr = check_real(self.learning_rate, "learning_rate", 0.0, low_open=True)
        l2 = check_real(self.l2, "l2", 0.0)
        Xa, _ = as_features(X)
        n, F = Xa.shape
        if n == 0 or F == 0:
            raise ValueError(f"X must have at least one row and one feature, got shape {Xa.shape}")
        ya = as_labels(y, n)
        if group is None and qid is None:
            if self.loss != "logistic":
                raise ValueError(f"loss {self.loss!r} compares rows within queries: pass group= or qid=")
            offsets = np.unique(np.concatenate([np.arange(0, n, 256), [n]])).astype(np.int64)
        else:
            offsets = group_offsets(group, qid, n)
        with np.errstate(all="ignore"):
            mean = np.nanmean(Xa, axis=0) if self.standardize else np.zeros(F)
            scale = np.nanstd(Xa, axis=0) if self.standardize else np.ones(F)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = scale.astype(np.float32)
        Z = self._prepare(Xa)
        w = np.zeros(F + 1, dtype=np.float64)
        seed = seed_of(self.random_state)
        code = LINEAR_LOSSES.index(self.loss)
        history = []
        show = self.show_progress if show_progress is None else show_progress
        for epoch in tqdm(range(n_epochs), desc="LinearRanker", disable=not show, leave=False, unit="epoch"):
            history.append(_core.ranking.linear_epoch(Z, ya, offsets, w, code, lr, l2, seed, epoch))
            if not np.isfinite(w).all():
                raise FloatingPointError(
                    f"LinearRanker diverged in epoch {epoch + 1}; lower learning_rate or raise l2"
                )
        self.coef_ = w[:F].copy()
        self.intercept_ = float(w[F])
        self.n_features_in_ = int(F)
        self.loss_history_ = np.asarray(history)
        return self

    def predict(self, X: Any, *, n_threads: int | None = None) -> np.ndarray:
        """Scores of the rows of ``X`` (float64)."""
        self._check_fitted()
        Xa, _ = as_features(X, "X", int(self.n_features_in_))
        return self._prepare(Xa).astype(np.float64) @ self.coef_ + float(self.intercept_)

    def _check_state(self) -> None:
        self.n_features_in_ = int(self.n_features_in_)
        self.intercept_ = float(self.intercept_)
        for name in ("coef_", "mean_", "scale_"):
            if getattr(self, name).shape != (self.n_features_in_,):
                raise ValueError(f"{name} does not have {self.n_features_in_} entries")
