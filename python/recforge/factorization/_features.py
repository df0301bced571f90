"""Feature factorization: the LightFM model (Kula 2015), a linear two-tower recommender.

A user's vector is the sum of the embeddings of the user's features and an item's vector the
sum of the embeddings of its features; the score is their dot product plus the summed feature
biases. With only identity features (one per user and item) it is matrix factorization; with
content features (genres, demographics, tags, TF-IDF terms) users and items that were never
seen in training are scored from their features alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _core
from .._training import Callback
from .._validation import check_positive_int, resolve_threads
from ..base import IdKind, check_random_state
from ..content import FeatureEncoder, align_table, encode_features
from ..data import Interactions
from ._base import FactorRecommender
from ._implicit import _check_factors, _check_real, _EpochFit

__all__ = ["FeatureFactorization"]

_LOSSES = {"logistic": 0, "bpr": 1, "warp": 2, "warp-kos": 3}
_SCHEDULES = {"adagrad": 0, "adadelta": 1}
_NEGATIVES = ("interacted", "all", "popularity")


def _csr3(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=np.float32),
    )


class FeatureFactorization(_EpochFit, FactorRecommender):
    """Hybrid matrix factorization with user and item features (the LightFM model).

    Fit with ``fit(interactions, user_features=..., item_features=...)``: a feature argument
    can be a DataFrame (encoded by :class:`~recforge.content.FeatureEncoder`), a
    scipy.sparse matrix or 2-D array with one row per user/item, ``None`` for identity only,
    or ``"auto"`` (the default): the table on the :class:`~recforge.Interactions` if it has one.

    Parameters
    ----------
    factors : int
        Embedding dimension (LightFM's ``no_components``).
    loss : {"warp", "bpr", "warp-kos", "logistic"}
        ``"warp"``: negatives are drawn until one scores above the positive minus 1 (at most
        ``max_sampled`` draws) and the step is weighted by the log of the estimated rank;
        ``"warp-kos"``: the positive of each WARP step is the ``k``-th best of ``n`` sampled
        positives of a user; ``"bpr"``: one negative (not a positive of the user) per positive; ``"logistic"``:
        every stored interaction is an example, positive if its weight is > 0 (so give
        negatives as weights <= 0).
    learning_schedule : {"adagrad", "adadelta"}
        Per-parameter learning rates.
    learning_rate : float
        Adagrad's initial rate.
    rho, epsilon : float
        Adadelta's decay and stabiliser.
    item_alpha, user_alpha : float
        L2 penalties of the item and user feature parameters.
    max_sampled : int
        WARP's maximum number of negatives per positive.
    k, n : int
        WARP-kOS's k-th positive of n.
    epochs : int
        Passes over the interactions.
    identity_features : bool, "users" or "items"
        Give every user and item (or only every user, or only every item) its own feature in
        addition to the given ones (as LightFM's ``Dataset`` does). Leaving out item identities
        makes items generalise through their content only, which usually serves cold items
        better.
    negatives : {"interacted", "all", "popularity"}
        Draw negatives uniformly among the items with training interactions (items known only
        by their features are then neither pushed down nor given a learned identity), uniformly
        among all items (LightFM's WARP), or in proportion to the items' numbers of training
        interactions (LightFM's BPR).
    random_state : int, numpy Generator or None
        Seeds the initial embeddings (uniform in ``[-0.5, 0.5) / factors``, as LightFM) and the
        sampling. With one thread training is deterministic; with more, Hogwild updates make it
        depend on timing.
    n_threads : int
        Threads (0 = all cores).

    Attributes
    ----------
    user_embeddings_, item_embeddings_ : float32 (n_user_features x factors), (n_item_features x factors)
    user_biases_, item_biases_ : float32 per feature
    user_factors_, item_factors_ : float32 representations of the known users and items
    user_bias_repr_, item_bias_repr_ : float32 biases of the known users and items
    user_feature_names_, item_feature_names_ : names of the feature columns
    history_ : list of dict
        Per-epoch logs.
    """

    _learned: ClassVar[tuple[str, ...]] = (
        "user_embeddings_", "user_biases_", "item_embeddings_", "item_biases_",
        "user_embedding_grad_", "user_bias_grad_", "item_embedding_grad_", "item_bias_grad_",
        "user_embedding_step_", "user_bias_step_", "item_embedding_step_", "item_bias_step_",
        "user_feat_indptr_", "user_feat_indices_", "user_feat_data_",
        "item_feat_indptr_", "item_feat_indices_", "item_feat_data_",
        "user_feature_names_", "item_feature_names_", "user_encoder_", "item_encoder_",
        "user_factors_", "item_factors_", "user_bias_repr_", "item_bias_repr_", "training_state_",
    )

    def __init__(
        self,
        factors: int = 10,
        *,
        loss: str = "warp",
        learning_schedule: str = "adagrad",
        learning_rate: float = 0.05,
        rho: float = 0.95,
        epsilon: float = 1e-6,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        max_sampled: int = 10,
        k: int = 5,
        n: int = 10,
        epochs: int = 10,
        identity_features: bool = True,
        negatives: str = "interacted",
        random_state: Any = None,
        n_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.loss = loss
        self.learning_schedule = learning_schedule
        self.learning_rate = learning_rate
        self.rho = rho
        self.epsilon = epsilon
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_sampled = max_sampled
        self.k = k
        self.n = n
        self.epochs = epochs
        self.identity_features = identity_features
        self.negatives = negatives
        self.random_state = random_state
        self.n_threads = n_threads

    # -- parameters -----------------------------------------------------------------------------
    def _checked(self) -> dict[str, Any]:
        if self.loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {self.loss!r}")
        if self.learning_schedule not in _SCHEDULES:
            raise ValueError(f"learning_schedule must be 'adagrad' or 'adadelta', got {self.learning_schedule!r}")
        if self.negatives not in _NEGATIVES:
            raise ValueError(f"negatives must be one of {_NEGATIVES}, got {self.negatives!r}")
        rho = _check_real(self.rho, "rho", low=0.0, strict=True)
        if rho >= 1.0:
            raise ValueError(f"rho must be in (0, 1), got {rho}")
        return {
            "loss": _LOSSES[self.loss],
            "schedule": _SCHEDULES[self.learning_schedule],
            "learning_rate": _check_real(self.learning_rate, "learning_rate", low=0.0, strict=True),
            "rho": rho,
            "epsilon": _check_real(self.epsilon, "epsilon", low=0.0, strict=True),
            "user_alpha": _check_real(self.user_alpha, "user_alpha", low=0.0),
            "item_alpha": _check_real(self.item_alpha, "item_alpha", low=0.0),
            "max_sampled": check_positive_int(self.max_sampled, "max_sampled"),
            "k": check_positive_int(self.k, "k"),
            "n": check_positive_int(self.n, "n"),
        }

    # -- fitting --------------------------------------------------------------------------------
    def fit(
        self,
        interactions: Any,
        *,
        user_features: Any = "auto",
        item_features: Any = "auto",
        eval_set: Interactions | None = None,
        eval_every: int = 1,
        eval_metric: str = "ndcg",
        eval_k: int = 10,
        early_stopping: int | None = None,
        callbacks: Iterable[Callback] = (),
        show_progress: bool = True,
    ) -> FeatureFactorization:
        """Learn feature embeddings from interactions and features; returns ``self``.

        See the class docstring for the feature arguments; the other options are those of
        :func:`recforge._training.run_epochs` (validation per epoch, early stopping, progress).
        """
        self._feature_args = (user_features, item_features)
        try:
            return super().fit(  # type: ignore[return-value]
                interactions, eval_set=eval_set, eval_every=eval_every, eval_metric=eval_metric, eval_k=eval_k,
                early_stopping=early_stopping, callbacks=callbacks, show_progress=show_progress,
            )
        finally:
            del self._feature_args

    def _side_features(self, arg: Any, table: Any, ids: np.ndarray, what: str) -> tuple[sp.csr_matrix, np.ndarray, str]:
        n = len(ids)
        if isinstance(arg, str) and arg == "auto":
            arg = table
        parts, names, enc_state = [], [], ""
        if arg is not None:
            arg = align_table(arg, ids)
            matrix, feat_names, enc = encode_features(arg, n, what, FeatureEncoder() if isinstance(arg, pd.DataFrame) else None)
            parts.append(matrix)
            names += [str(v) for v in feat_names]
            enc_state = enc.to_json() if enc is not None else ""
        if self._identity(what):
            parts.append(sp.identity(n, dtype=np.float32, format="csr"))
            names += [f"{what}:{v}" for v in ids.tolist()]
        if not parts:
            raise ValueError(
                f"no {what} features: without {what} identity features give {what}_features (a table or matrix)"
            )
        matrix = sp.csr_matrix(sp.hstack(parts, format="csr"), dtype=np.float32)
        matrix.sum_duplicates()
        matrix.sort_indices()
        if matrix.shape[1] == 0:
            raise ValueError(f"the {what} features have no columns")
        return matrix, np.asarray(names), enc_state

    def _identity(self, what: str) -> bool:
        v = self.identity_features
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if v in ("users", "items"):
            return v == what + "s"
        raise ValueError(f"identity_features must be True, False, 'users' or 'items', got {v!r}")

    def _fit(self, data: Interactions) -> None:
        p = self._checked()
        f = _check_factors(self.factors)
        epochs = check_positive_int(self.epochs, "epochs")
        user_arg, item_arg = getattr(self, "_feature_args", ("auto", "auto"))
        Fu, self.user_feature_names_, ue = self._side_features(user_arg, data.user_features, self.user_ids_, "user")
        Fi, self.item_feature_names_, ie = self._side_features(item_arg, data.item_features, self.item_ids_, "item")
        self.user_encoder_, self.item_encoder_ = np.array(ue), np.array(ie)
        self.user_feat_indptr_, self.user_feat_indices_, self.user_feat_data_ = _csr3(Fu)
        self.item_feat_indptr_, self.item_feat_indices_, self.item_feat_data_ = _csr3(Fi)
        rng = check_random_state(self.random_state)
        n_uf, n_if = Fu.shape[1], Fi.shape[1]
        # LightFM's initialisation: items first, uniform in [-0.5, 0.5) / factors, biases zero
        self.item_embeddings_ = ((rng.random((n_if, f)) - 0.5) / f).astype(np.float32)
        self.user_embeddings_ = ((rng.random((n_uf, f)) - 0.5) / f).astype(np.float32)
        self.item_biases_ = np.zeros(n_if, dtype=np.float32)
        self.user_biases_ = np.zeros(n_uf, dtype=np.float32)
        start = 1.0 if p["schedule"] == 0 else 0.0
        self.user_embedding_grad_ = np.full((n_uf, f), start, dtype=np.float32)
        self.item_embedding_grad_ = np.full((n_if, f), start, dtype=np.float32)
        self.user_bias_grad_ = np.full(n_uf, start, dtype=np.float32)
        self.item_bias_grad_ = np.full(n_if, start, dtype=np.float32)
        delta = p["schedule"] == 1
        self.user_embedding_step_ = np.zeros((n_uf, f) if delta else (0, f), dtype=np.float32)
        self.item_embedding_step_ = np.zeros((n_if, f) if delta else (0, f), dtype=np.float32)
        self.user_bias_step_ = np.zeros(n_uf if delta else 0, dtype=np.float32)
        self.item_bias_step_ = np.zeros(n_if if delta else 0, dtype=np.float32)
        # identity features that never receive a gradient stay at zero instead of random noise
        if self._identity("user"):
            counts_u = np.diff(data.matrix.indptr)
            self.user_embeddings_[n_uf - data.n_users :][counts_u == 0] = 0.0
        if self._identity("item"):
            if self.negatives != "all":
                counts_i = np.bincount(data.matrix.indices, minlength=data.n_items)
                self.item_embeddings_[n_if - data.n_items :][counts_i == 0] = 0.0
        seed = int(rng.integers(0, 2**63 - 1))
        n_id_u = data.n_users if self._identity("user") else 0
        n_id_i = data.n_items if self._identity("item") else 0
        self.training_state_ = np.array([seed, 0, n_id_u, n_id_i], dtype=np.int64)
        self._train(data.matrix, epochs, p)

    def _train(self, matrix: sp.csr_matrix, epochs: int, p: dict[str, Any]) -> None:
        R = sp.csr_matrix(matrix, dtype=np.float32)
        R.sum_duplicates()
        R.sort_indices()
        r = _csr3(R)
        if self.negatives == "interacted":
            pool = np.flatnonzero(np.bincount(R.indices, minlength=R.shape[1]) > 0).astype(np.int32)
        elif self.negatives == "popularity":
            pool = np.ascontiguousarray(R.indices, dtype=np.int32)
        else:
            pool = None
        threads = resolve_threads(self.n_threads)
        delta = p["schedule"] == 1
        seed = int(self.training_state_[0])
        first = int(self.training_state_[1])

        def step(epoch: int) -> dict[str, float]:
            stats = _core.hybrid.epoch(
                *r, self.user_feat_indptr_, self.user_feat_indices_, self.user_feat_data_,
                self.item_feat_indptr_, self.item_feat_indices_, self.item_feat_data_,
                self.user_embeddings_, self.user_biases_, self.user_embedding_grad_, self.user_bias_grad_,
                self.user_embedding_step_ if delta else None, self.user_bias_step_ if delta else None,
                self.item_embeddings_, self.item_biases_, self.item_embedding_grad_, self.item_bias_grad_,
                self.item_embedding_step_ if delta else None, self.item_bias_step_ if delta else None,
                pool, p["loss"], p["schedule"], p["learning_rate"], p["rho"], p["epsilon"], p["user_alpha"],
                p["item_alpha"], p["max_sampled"], p["k"], p["n"], seed, first + epoch, threads,
            )
            self.training_state_[1] = first + epoch + 1
            self._update_representations()
            return {"loss": stats["loss"] / max(stats["updates"], 1), "updates": stats["updates"]}

        self._run(epochs, step)
        self._update_representations()

    def fit_partial(self, interactions: Any, *, epochs: int = 1, show_progress: bool = False) -> FeatureFactorization:
        """Train ``epochs`` more epochs on ``interactions`` (same users and items as in ``fit``),
        keeping the embeddings and optimizer state; fits from scratch if not fitted."""
        from ..base import as_interactions

        if not self.is_fitted:
            self.fit(interactions, show_progress=show_progress)
            return self
        data = as_interactions(interactions)
        if data.shape != (self.n_users_, self.n_items_):
            raise ValueError(
                f"fit_partial needs interactions of the fitted shape {(self.n_users_, self.n_items_)}, got {data.shape}; "
                "build them with the training data's user_ids and item_ids"
            )
        if self.n_users_ != len(self.user_feat_indptr_) - 1 or self.n_items_ != len(self.item_feat_indptr_) - 1:
            raise ValueError("fit_partial cannot continue after add_users/add_items; fit again")
        self._fit_options = {"show_progress": show_progress}
        try:
            self._train(data.matrix, check_positive_int(epochs, "epochs"), self._checked())
        finally:
            del self._fit_options
        self._invalidate_vectors()
        return self

    # -- representations ------------------------------------------------------------------------
    def _update_representations(self) -> None:
        threads = resolve_threads(self.n_threads)
        self.user_factors_, self.user_bias_repr_ = _core.hybrid.representations(
            self.user_feat_indptr_, self.user_feat_indices_, self.user_feat_data_,
            self.user_embeddings_, self.user_biases_, threads,
        )
        self.item_factors_, self.item_bias_repr_ = _core.hybrid.representations(
            self.item_feat_indptr_, self.item_feat_indices_, self.item_feat_data_,
            self.item_embeddings_, self.item_biases_, threads,
        )

    def _user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(user_idx, dtype=np.int64)
        ones = np.ones((len(idx), 1), dtype=np.float32)
        return np.hstack([self.user_factors_[idx], self.user_bias_repr_[idx, None], ones]).astype(np.float32)

    def _item_vectors(self) -> np.ndarray:
        ones = np.ones((self.item_factors_.shape[0], 1), dtype=np.float32)
        return np.hstack([self.item_factors_, ones, self.item_bias_repr_[:, None]]).astype(np.float32)

    def _feature_rows(self, features: Any, kind: str) -> sp.csr_matrix:
        """Feature rows of entities not seen in training (no identity feature) as a CSR with
        one column per model feature."""
        names = self.user_feature_names_ if kind == "user" else self.item_feature_names_
        n_ident = int(self.training_state_[2 if kind == "user" else 3])
        n_content = len(names) - n_ident
        state = str(self.user_encoder_ if kind == "user" else self.item_encoder_)
        if isinstance(features, Mapping):
            features = [features]
        if isinstance(features, list) and all(isinstance(v, Mapping) for v in features):
            lookup = {str(v): j for j, v in enumerate(names.tolist())}
            rows, cols, vals, unknown = [], [], [], []
            for r, d in enumerate(features):
                for name, w in d.items():
                    j = lookup.get(str(name))
                    if j is None:
                        unknown.append(name)
                        continue
                    rows.append(r)
                    cols.append(j)
                    vals.append(float(w))
            if unknown:
                raise ValueError(
                    f"unknown {kind} feature names {unknown[:5]}; the model knows {len(names)} features "
                    f"(see {kind}_feature_names_)"
                )
            values = np.asarray(vals, dtype=np.float32)
            if values.size and not np.isfinite(values).all():
                raise ValueError(f"{kind} feature weights contain NaN or infinite values")
            return sp.csr_matrix((values, (rows, cols)), shape=(len(features), len(names)), dtype=np.float32)
        if isinstance(features, (pd.DataFrame, pd.Series)):
            if not state:
                raise ValueError(
                    f"the model was not fitted with a {kind} feature table: give a sparse matrix or dicts "
                    "of feature name -> weight"
                )
            content = FeatureEncoder.from_json(state).transform(features)
        else:
            content, _, _ = encode_features(features, np.asarray(features).shape[0] if not sp.issparse(features) else features.shape[0], kind)
            if content.shape[1] == len(names):
                return content
        if content.shape[1] != n_content:
            raise ValueError(
                f"{kind} features must have {n_content} columns (the content features of fit"
                + (f", or {len(names)} with the identity features" if n_ident else "")
                + f"), got {content.shape[1]}"
            )
        pad = sp.csr_matrix((content.shape[0], len(names) - n_content), dtype=np.float32)
        return sp.csr_matrix(sp.hstack([content, pad], format="csr"), dtype=np.float32)

    def user_representations(self, features: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings, biases)`` of the known users (``features=None``) or of users given by
        their features: a DataFrame with the columns of fit, a sparse matrix with the content
        feature columns, or a list of dicts feature name -> weight."""
        self._check_fitted()
        if features is None:
            return self.user_factors_.copy(), self.user_bias_repr_.copy()
        F = self._feature_rows(features, "user")
        return _core.hybrid.representations(*_csr3(F), self.user_embeddings_, self.user_biases_,
                                            resolve_threads(self.n_threads))

    def item_representations(self, features: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings, biases)`` of the known items or of items given by their features
        (as :meth:`user_representations`)."""
        self._check_fitted()
        if features is None:
            return self.item_factors_.copy(), self.item_bias_repr_.copy()
        F = self._feature_rows(features, "item")
        return _core.hybrid.representations(*_csr3(F), self.item_embeddings_, self.item_biases_,
                                            resolve_threads(self.n_threads))

    def recommend_new_user(
        self, user_features: Any, n: int = 10, *, items: Any = None, ids: IdKind = "raw"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for users known only by their features (one row per user)."""
        from ..retrieval import topk_dot

        self._check_fitted()
        n = check_positive_int(n, "n")
        emb, bias = self.user_representations(user_features)
        queries = np.hstack([emb, bias[:, None], np.ones((len(bias), 1), dtype=np.float32)]).astype(np.float32)
        candidates = None
        if items is not None:
            candidates = np.unique(self._to_index(np.atleast_1d(items), "item", ids)).astype(np.int32)
        n_search = self.n_items_ if candidates is None else len(candidates)
        if n > n_search:
            raise ValueError(f"n={n} is larger than the {n_search} items that can be recommended")
        top, scores = topk_dot(queries, self._scoring_items(), n, candidates=candidates,
                               n_threads=resolve_threads(self.n_threads))
        out = top if ids == "index" else self._to_raw_items(top)
        return out, scores

    def _add(self, kind: str, new_ids: Any, features: Any) -> FeatureFactorization:
        self._check_fitted()
        ids = np.atleast_1d(np.asarray(new_ids))
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"{kind}_ids must be a non-empty 1-D array of new {kind} ids")
        table = self._lookup(kind)
        dup = [v for v in ids.tolist() if v in table]
        if dup or len(set(ids.tolist())) != len(ids):
            raise ValueError(f"new {kind} ids must be new and unique; already known or repeated: {dup[:5]}")
        F = self._feature_rows(features, kind)
        if F.shape[0] != len(ids):
            raise ValueError(f"{kind} features have {F.shape[0]} rows for {len(ids)} new {kind}s")
        emb, bias = (self.user_representations if kind == "user" else self.item_representations)(features)
        known = self.user_ids_ if kind == "user" else self.item_ids_
        ids = ids.astype(object) if known.dtype == object else ids.astype(known.dtype)
        if kind == "user":
            old = sp.csr_matrix((self.user_feat_data_, self.user_feat_indices_, self.user_feat_indptr_),
                                shape=(self.n_users_, len(self.user_feature_names_)))
            self.user_feat_indptr_, self.user_feat_indices_, self.user_feat_data_ = _csr3(sp.vstack([old, F]))
            self.user_factors_ = np.vstack([self.user_factors_, emb]).astype(np.float32)
            self.user_bias_repr_ = np.concatenate([self.user_bias_repr_, bias]).astype(np.float32)
            self.user_ids_ = np.concatenate([self.user_ids_, ids])
            self.seen_ = sp.csr_matrix(sp.vstack([self.seen_, sp.csr_matrix((len(ids), self.seen_.shape[1]), dtype=np.float32)]))
        else:
            old = sp.csr_matrix((self.item_feat_data_, self.item_feat_indices_, self.item_feat_indptr_),
                                shape=(self.n_items_, len(self.item_feature_names_)))
            self.item_feat_indptr_, self.item_feat_indices_, self.item_feat_data_ = _csr3(sp.vstack([old, F]))
            self.item_factors_ = np.vstack([self.item_factors_, emb]).astype(np.float32)
            self.item_bias_repr_ = np.concatenate([self.item_bias_repr_, bias]).astype(np.float32)
            self.item_ids_ = np.concatenate([self.item_ids_, ids])
            self.seen_ = sp.csr_matrix((self.seen_.data, self.seen_.indices, self.seen_.indptr),
                                       shape=(self.seen_.shape[0], self.seen_.shape[1] + len(ids)))
        self._user_lookup = None
        self._item_lookup = None
        self._invalidate_vectors()
        return self

    def add_items(self, item_ids: Any, item_features: Any) -> FeatureFactorization:
        """Append items known only by their features; they are scored from those at once."""
        return self._add("item", item_ids, item_features)

    def add_users(self, user_ids: Any, user_features: Any) -> FeatureFactorization:
        """Append users known only by their features."""
        return self._add("user", user_ids, user_features)

    # -- persistence ----------------------------------------------------------------------------
    def _check_state(self) -> None:
        super()._check_state()
        f = self.user_embeddings_.shape[1]
        if self.item_embeddings_.shape[1] != f:
            raise ValueError("user and item embeddings differ in width")
        if self.user_factors_.shape != (self.n_users_, f) or self.item_factors_.shape != (self.n_items_, f):
            raise ValueError("representations do not match the numbers of users and items")
        if len(self.user_feature_names_) != self.user_embeddings_.shape[0]:
            raise ValueError("user feature names do not match the user embeddings")
        if len(self.item_feature_names_) != self.item_embeddings_.shape[0]:
            raise ValueError("item feature names do not match the item embeddings")
