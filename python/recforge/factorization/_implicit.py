"""Implicit-feedback models: ALS (Hu, Koren, Volinsky 2008), BPR (Rendle et al. 2009) and
EASE (Steck 2019).

The factor models keep ``user_factors_`` / ``item_factors_`` as float32 NumPy arrays (float64
with ``dtype=np.float64``) and share :class:`~recforge.factorization.FactorRecommender`'s exact
top-k, scoring and ``similar_items``; their training kernels run in C++ with the GIL released.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._training import Callback, run_epochs
from .._validation import check_positive_int, csr_arrays, resolve_threads
from ..base import IdKind, Recommender, check_random_state
from ..data import Interactions
from ._base import FactorRecommender

__all__ = ["ALS", "BPR", "EASE", "LMF", "CatalogTooLargeError"]

_CONFIDENCE_FORMS = ("alpha*r", "1+alpha*r")
_SOLVERS = {"cg": 0, "cholesky": 1}


# ----------------------------------------------------------------------------------------
# shared checks
# ----------------------------------------------------------------------------------------
def _check_real(value: Any, name: str, *, low: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally bounded below (``strict``: value > low)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    return value


_FACTOR_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_factor_dtype(value: Any) -> np.dtype:
    """np.float32 or np.float64 (or their names / dtypes), as a NumPy dtype."""
    dt = None
    if value is not None and not isinstance(value, bool):
        try:
            dt = np.dtype(value)
        except TypeError:
            dt = None
    if dt is None or dt not in _FACTOR_DTYPES:  # (a NumPy dtype compares equal to None)
        raise ValueError(
            f"dtype must be np.float32 or np.float64 (or their names 'float32', the default, and 'float64'), "
            f"got {value!r}"
        )
    return dt


def _check_factors(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"factors must be a positive integer (the number of latent dimensions), got {value!r}")
    return int(value)


def _check_weights(weights: np.ndarray, what: str = "interaction weights") -> None:
    """Confidences must be finite and non-negative: say how many are not and what to do."""
    if weights.size == 0:
        return
    bad = ~np.isfinite(weights)
    if bad.any():
        raise ValueError(
            f"{what} contain {int(bad.sum())} NaN or infinite values; implicit-feedback models "
            "need a finite confidence for every interaction: drop or impute them first"
        )
    negative = weights < 0
    if negative.any():
        raise ValueError(
            f"{what} contain {int(negative.sum())} negative values (e.g. {float(weights[negative][0])}); "
            "confidences must be >= 0: drop the negative interactions or shift/clip the weights"
        )


def _check_factor_arrays(model: Any, names: tuple[str, ...]) -> None:
    """Restored factor arrays: all float32 or all float64."""
    kinds = {np.asarray(getattr(model, name)).dtype for name in names}
    if len(kinds) != 1 or not kinds <= set(_FACTOR_DTYPES):
        raise ValueError(f"{', '.join(names)} must all be float32 or all float64, got {sorted(map(str, kinds))}")


class _EpochFit:
    """``fit`` with the options of :func:`recforge._training.run_epochs`."""

    _fit_options: dict[str, Any]

    def fit(
        self,
        interactions: Any,
        *,
        eval_set: Interactions | None = None,
        eval_every: int = 1,
        eval_metric: str = "ndcg",
        eval_k: int = 10,
        early_stopping: int | None = None,
        callbacks: Iterable[Callback] = (),
        show_progress: bool = True,
    ) -> Any:
        """Learn from a users x items interaction set; returns ``self``.

        Parameters
        ----------
        interactions : Interactions, scipy.sparse matrix or DataFrame
            The weights are the interaction strengths ``r`` (e.g. counts); they must be finite
            and non-negative.
        eval_set : Interactions, optional
            Held-out interactions with the training data's id maps; ``eval_metric@eval_k`` is
            computed every ``eval_every`` epochs and shown in the progress bar.
        early_stopping : int, optional
            Stop after this many evaluations without improvement and restore the factors of the
            best evaluated epoch (needs ``eval_set``).
        callbacks : callables ``(model, epoch, logs) -> stop?``
        show_progress : bool
            Show a tqdm progress bar.

        The per-epoch logs are kept in ``history_``.
        """
        self._fit_options = {
            "eval_set": eval_set, "eval_every": eval_every, "eval_metric": eval_metric, "eval_k": eval_k,
            "early_stopping": early_stopping, "callbacks": tuple(callbacks), "show_progress": show_progress,
        }
        try:
            return super().fit(interactions)  # type: ignore[misc]
        finally:
            del self._fit_options

    def _run(self, n_epochs: int, step: Any) -> None:
        options = getattr(self, "_fit_options", {"show_progress": False})
        self.history_ = run_epochs(self, n_epochs, step, desc=type(self).__name__, **options)  # type: ignore[arg-type]


def _csr(matrix: sp.spmatrix, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return csr_arrays(matrix, matrix.shape, name)


def _rows_replaced(matrix: sp.csr_matrix, rows: np.ndarray, new_rows: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
    """``matrix`` grown to ``n_rows`` rows, with ``rows`` replaced by the rows of ``new_rows``
    (row selection, not arithmetic, so stored zeros stay stored)."""
    matrix = sp.csr_matrix(matrix)
    pad = sp.csr_matrix((max(n_rows - matrix.shape[0], 0), matrix.shape[1]), dtype=matrix.dtype)
    stacked = sp.csr_matrix(sp.vstack([matrix, pad, sp.csr_matrix(new_rows, dtype=matrix.dtype)], format="csr"))
    take = np.arange(n_rows)
    take[np.asarray(rows, dtype=np.int64)] = n_rows + np.arange(len(rows))
    out = sp.csr_matrix(stacked[take])
    out.sort_indices()
    return out


class _UserHistory:
    """Interaction weights kept with the model (``seen_weights_``, aligned with ``seen_``), user
    rows from item lists or sparse matrices, and ``partial_fit_users`` for known or new users."""

    seen_: sp.csr_matrix
    seen_weights_: np.ndarray

    def _fold_in_users(self, rows: sp.csr_matrix) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _item_rows(self, user_items: Any, ids: IdKind) -> tuple[sp.csr_matrix, bool]:
        """Interactions of one user (a list of items with weight 1, or a dict item -> weight) or
        of several (a sparse matrix with one column per item, or a list of such lists/dicts), as
        a CSR of weights; the flag says whether one user was given."""
        n_items = self.n_items_
        if sp.issparse(user_items):
            m = sp.csr_matrix(user_items, dtype=np.float32)
            if m.shape[1] != n_items:
                raise ValueError(f"user_items must have one column per item ({n_items}), got shape {m.shape}")
            m.sum_duplicates()
            return m, False
        if isinstance(user_items, dict):
            keys = list(user_items.keys())
            weights = np.asarray(list(user_items.values()), dtype=np.float32)
        elif isinstance(user_items, (list, tuple)) and user_items and all(
            isinstance(v, (list, tuple, dict, np.ndarray)) for v in user_items
        ):
            rows = [self._item_rows(v, ids)[0] for v in user_items]
            return sp.csr_matrix(sp.vstack(rows, format="csr"), dtype=np.float32), False
        else:
            keys = np.atleast_1d(np.asarray(user_items)).tolist()
            weights = np.ones(len(keys), dtype=np.float32)
        idx = self._to_index(np.asarray(keys), "item", ids) if keys else np.zeros(0, dtype=np.int64)
        m = sp.csr_matrix(
            (weights, (np.zeros(len(idx), dtype=np.int64), np.asarray(idx, dtype=np.int64))),
            shape=(1, n_items), dtype=np.float32,
        )
        m.sum_duplicates()
        return m, True

    def _new_or_known(self, values: Any, kind: str, ids: IdKind) -> tuple[np.ndarray, np.ndarray]:
        """Indices of ``values`` and the raw ids to append: unknown ids get indices after the
        known ones (with ``ids="index"``, indices past the end are new rows of a model whose
        raw ids are the integers 0..n-1)."""
        values = np.atleast_1d(np.asarray(values))
        if values.ndim != 1:
            raise ValueError(f"{kind}s must be a 1-D array of ids, got shape {values.shape}")
        n = self.n_users_ if kind == "user" else self.n_items_
        known = self.user_ids_ if kind == "user" else self.item_ids_
        if ids == "index":
            if values.size and values.dtype.kind not in "iu":
                raise ValueError(f"{kind} indices must be integers, got dtype {values.dtype}")
            idx = values.astype(np.int64)
            if (idx < 0).any():
                raise IndexError(f"{kind} indices must be >= 0")
            top = int(idx.max()) + 1 if idx.size else 0
            if top <= n:
                return idx, known[:0]
            if not (known.dtype.kind in "iu" and np.array_equal(known, np.arange(n))):
                raise IndexError(
                    f"{kind} indices outside [0, {n}) are new {kind}s, which need raw ids: pass ids='raw'"
                )
            return idx, np.arange(n, top, dtype=known.dtype)
        if ids != "raw":
            raise ValueError(f"ids must be 'raw' or 'index', got {ids!r}")
        table = self._lookup(kind)
        idx = np.empty(len(values), dtype=np.int64)
        new: dict[Any, int] = {}
        for pos, v in enumerate(values.tolist()):
            i = table.get(v)
            if i is None:
                i = new.setdefault(v, n + len(new))
            idx[pos] = i
        if not new:
            return idx, known[:0]
        added = np.asarray(list(new))
        if known.dtype == object or added.dtype.kind != known.dtype.kind:
            added = added.astype(object)
            if known.dtype != object:
                raise ValueError(f"new {kind} ids {list(new)[:5]} are not of the type of the known ids ({known.dtype})")
        return idx, added

    def _grow(self, kind: str, idx: np.ndarray, new_ids: np.ndarray, factors: np.ndarray) -> None:
        attr = "user_factors_" if kind == "user" else "item_factors_"
        old = getattr(self, attr)
        n_total = max(old.shape[0] + len(new_ids), int(idx.max()) + 1 if idx.size else 0)
        grown = np.zeros((n_total, old.shape[1]), dtype=old.dtype)
        grown[: old.shape[0]] = old
        grown[idx] = factors
        setattr(self, attr, grown)
        if len(new_ids):
            if kind == "user":
                self.user_ids_ = np.concatenate([self.user_ids_, new_ids])
            else:
                self.item_ids_ = np.concatenate([self.item_ids_, new_ids])
        self._user_lookup = None
        self._item_lookup = None

    def partial_fit_users(self, users: Any, user_items: Any, *, ids: IdKind = "raw") -> Any:
        """Recompute the factors of ``users`` (known or new) from their interactions.

        ``user_items`` has one row per entry of ``users``: a sparse matrix with one column per
        item, or a list of item lists (or dicts item -> weight). Each row replaces that user's
        interactions (used to exclude seen items and by :meth:`explain`). New raw ids are
        appended to ``user_ids_``. Item factors are not changed; returns ``self``.
        """
        self._check_fitted()
        rows, single = self._item_rows(user_items, ids)
        idx, new_ids = self._new_or_known(users, "user", ids)
        if single and len(idx) != 1:
            raise ValueError("user_items must have one row per user: give a list of item lists or a sparse matrix")
        if len(idx) != rows.shape[0]:
            raise ValueError(f"user_items must have one row for every user ({len(idx)}), got {rows.shape[0]}")
        if len(np.unique(idx)) != len(idx):
            raise ValueError("users contains duplicates; give each user once")
        factors = self._fold_in_users(rows)
        n_total = max(self.n_users_ + len(new_ids), int(idx.max()) + 1)
        weights = sp.csr_matrix((self.seen_weights_, self.seen_.indices, self.seen_.indptr), shape=self.seen_.shape)
        self._set_interactions(_rows_replaced(weights, idx, rows, n_total))
        self._grow("user", idx, new_ids, factors)
        return self

    def _set_interactions(self, weights: sp.csr_matrix) -> None:
        weights = sp.csr_matrix(weights, dtype=np.float32)
        weights.sort_indices()
        self.seen_weights_ = np.asarray(weights.data, dtype=np.float32).copy()
        self.seen_ = sp.csr_matrix(
            (np.ones(weights.nnz, dtype=np.float32), weights.indices.astype(np.int32), weights.indptr.astype(np.int64)),
            shape=weights.shape,
        )

    # -- persistence --------------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        state = super()._state_arrays()
        state["seen_weights_"] = np.asarray(self.seen_weights_, dtype=np.float32)
        return state

    def _restore_arrays(self, state: dict[str, np.ndarray]) -> None:
        super()._restore_arrays(state)
        weights = state.get("seen_weights_")
        self.seen_weights_ = (
            np.ones(self.seen_.nnz, dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
        )

    def _check_state(self) -> None:
        super()._check_state()
        if len(self.seen_weights_) != self.seen_.nnz:
            raise ValueError("seen_weights_ does not match the stored interactions")


# ----------------------------------------------------------------------------------------
# ALS
# ----------------------------------------------------------------------------------------
class ALS(_UserHistory, _EpochFit, FactorRecommender):
    """Implicit-feedback matrix factorization by alternating least squares.

    The model of Hu, Koren and Volinsky (2008): every (user, item) pair gets a preference
    ``p = 1`` if the user interacted with the item and ``0`` otherwise, weighted by a confidence
    ``c``; user and item factors minimise

        sum_observed c_ui (1 - x_u . y_i)^2 + w0 * sum_unobserved (x_u . y_i)^2
        + sum_u lambda_u ‖x_u‖^2 + sum_i lambda_i ‖y_i‖^2

    by solving for all users with the items fixed, then for all items with the users fixed.

    Parameters
    ----------
    factors : int
        Latent dimensions.
    regularization : float
        ``lambda``.
    alpha : float
        Confidence scale.
    confidence : {"alpha*r", "1+alpha*r"}
        How an interaction of weight ``r`` becomes a confidence. ``"alpha*r"`` (the default)
        uses the scaled weight itself, exactly as the ``implicit`` library does (so an
        unweighted interaction with ``alpha=1`` has confidence 1, like an unobserved pair);
        ``"1+alpha*r"`` is the paper's and Spark's ``c = 1 + alpha * r``.
    unobserved_weight : float
        ``w0``, the weight of the squared score of every pair the user did not interact with
        (1 in Hu et al. and in implicit; the ``alpha_0`` of Rendle et al. 2022, who tune it
        well below 1).
    regularization_exponent : float
        ``nu``: every user's regularization is ``lambda * (n_u + w0 * n_items)^nu`` and every
        item's ``lambda * (n_i + w0 * n_users)^nu`` (``n_u``, ``n_i``: interaction counts), the
        frequency-scaled regularization of Rendle et al. 2022 at ``nu = 1``. ``0`` (default)
        gives the same ``lambda`` everywhere, as implicit.
    solver : {"cg", "cholesky"}
        ``"cg"``: ``cg_steps`` conjugate-gradient steps per row, warm-started from the current
        factors (Takacs et al. 2011, implicit's default); ``"cholesky"``: the exact solution of
        every row's system.
    cg_steps : int
        Conjugate-gradient steps per row and half-iteration.
    iterations : int
        Alternations (each updates all users, then all items).
    init_scale : float
        Factors start uniform in ``[0, init_scale)`` (implicit: 0.01), users drawn first.
    calculate_training_loss : bool
        Compute the normalised training loss after every iteration (an extra pass); it is
        logged as ``loss`` in ``history_`` and the progress bar.
    dtype : {"float32", "float64"} or np.float32, np.float64
        Precision of the factors and of all the arithmetic of training, fold-in and
        explanations (as implicit's ``dtype``; the name or the NumPy type). The initial factors are drawn in float32 for
        either, so a seed gives the same starting point at both precisions; the confidences
        are float32 in both. Scores of a float64 model are float64 (see
        :class:`~recforge.factorization.FactorRecommender` for how ``recommend`` selects).
    random_state : int, numpy Generator or None
        Seed of the initial factors. Training is otherwise deterministic: the same seed gives
        the same model for any ``n_threads``.
    n_threads : int
        Threads (0 = all cores).

    Attributes
    ----------
    user_factors_, item_factors_ : arrays (n_users x factors), (n_items x factors) of ``dtype``
    history_ : list of dict
        Per-iteration logs (``loss``, validation metrics).
    """

    _learned: ClassVar[tuple[str, ...]] = ("user_factors_", "item_factors_")

    def __init__(
        self,
        factors: int = 100,
        *,
        regularization: float = 0.01,
        alpha: float = 1.0,
        confidence: str = "alpha*r",
        unobserved_weight: float = 1.0,
        regularization_exponent: float = 0.0,
        solver: str = "cg",
        cg_steps: int = 3,
        iterations: int = 15,
        init_scale: float = 0.01,
        calculate_training_loss: bool = False,
        dtype: Any = "float32",
        random_state: Any = None,
        n_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.confidence = confidence
        self.unobserved_weight = unobserved_weight
        self.regularization_exponent = regularization_exponent
        self.solver = solver
        self.cg_steps = cg_steps
        self.iterations = iterations
        self.init_scale = init_scale
        self.calculate_training_loss = calculate_training_loss
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads

    # -- parameters ---------------------------------------------------------------------------
    def _checked(self) -> dict[str, Any]:
        if self.confidence not in _CONFIDENCE_FORMS:
            raise ValueError(f"confidence must be one of {_CONFIDENCE_FORMS}, got {self.confidence!r}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be 'cg' or 'cholesky', got {self.solver!r}")
        return {
            "factors": _check_factors(self.factors),
            "regularization": _check_real(self.regularization, "regularization", low=0.0),
            "alpha": _check_real(self.alpha, "alpha", low=0.0, strict=True),
            "unobserved_weight": _check_real(self.unobserved_weight, "unobserved_weight", low=0.0),
            "reg_exponent": _check_real(self.regularization_exponent, "regularization_exponent"),
            "cg_steps": check_positive_int(self.cg_steps, "cg_steps"),
            "iterations": check_positive_int(self.iterations, "iterations"),
            "init_scale": _check_real(self.init_scale, "init_scale", low=0.0, strict=True),
            "dtype": _check_factor_dtype(self.dtype),
            "n_threads": resolve_threads(self.n_threads),
        }

    def _confidences(self, weights: np.ndarray) -> np.ndarray:
        """Confidence of each interaction weight (float32), checked."""
        weights = np.asarray(weights, dtype=np.float32)
        _check_weights(weights)
        alpha = np.float32(self.alpha)
        with np.errstate(over="ignore"):
            conf = alpha * weights
            if self.confidence == "1+alpha*r":
                conf = conf + np.float32(1.0)
        if not np.isfinite(conf).all():
            raise ValueError(
                f"alpha * weights overflows float32 (alpha={self.alpha}, largest weight "
                f"{float(weights.max())}); scale the weights or alpha down"
            )
        return conf.astype(np.float32, copy=False)

    def _kernel_args(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "regularization": p["regularization"], "unobserved_weight": p["unobserved_weight"],
            "reg_exponent": p["reg_exponent"],
        }

    # -- fitting ------------------------------------------------------------------------------
    def _fit(self, data: Interactions) -> None:
        p = self._checked()
        matrix = data.matrix.tocsr()
        conf = sp.csr_matrix((self._confidences(matrix.data), matrix.indices, matrix.indptr), shape=matrix.shape)
        self.seen_weights_ = np.asarray(matrix.data, dtype=np.float32).copy()
        cui = _csr(conf, "interactions")
        ciu = _csr(conf.T.tocsr(), "interactions")
        n_users, n_items = matrix.shape
        f = p["factors"]
        rng = check_random_state(self.random_state)
        # drawn in float32 for either dtype: the same seed starts both precisions at one point
        dtype, scale = p["dtype"], np.float32(p["init_scale"])
        self.user_factors_ = (rng.random((n_users, f), dtype=np.float32) * scale).astype(dtype)
        self.item_factors_ = (rng.random((n_items, f), dtype=np.float32) * scale).astype(dtype)
        kw = self._kernel_args(p)
        solver, steps, threads = _SOLVERS[self.solver], p["cg_steps"], p["n_threads"]
        core = _core.factorization_implicit
        total_conf = float(np.sum(conf.data, dtype=np.float64))
        n_unobserved = n_users * n_items - conf.nnz

        self._gram_cache = None

        def step(epoch: int) -> dict[str, float] | None:
            self._gram_cache = None  # the solves update the factors in place
            core.als_solve(*cui, n_items, self.user_factors_, self.item_factors_, None, solver=solver,
                           cg_steps=steps, n_threads=threads, **kw)
            core.als_solve(*ciu, n_users, self.item_factors_, self.user_factors_, None, solver=solver,
                           cg_steps=steps, n_threads=threads, **kw)
            if not self.calculate_training_loss:
                return None
            return {"loss": self._loss(cui, ciu, n_items, total_conf, n_unobserved, kw, threads)}

        self._run(p["iterations"], step)

    def _loss(self, cui: Any, ciu: Any, n_items: int, total_conf: float, n_unobserved: int,
              kw: dict[str, Any], threads: int) -> float:
        core = _core.factorization_implicit
        users_part = core.als_loss(*cui, n_items, self.user_factors_, self.item_factors_, None,
                                   n_threads=threads, **kw)
        # the items' regularization: lambda_i |y_i|^2 with lambda_i from the item counts
        counts = np.diff(ciu[0]).astype(np.float64)
        lam = kw["regularization"] * np.power(
            np.maximum(counts + kw["unobserved_weight"] * self.user_factors_.shape[0], 1e-12), kw["reg_exponent"]
        )
        items_part = float(np.sum(lam * np.einsum("ij,ij->i", self.item_factors_, self.item_factors_, dtype=np.float64)))
        return (users_part + items_part) / max(total_conf + self.unobserved_weight * n_unobserved, 1e-12)

    # -- fold-in, partial fits, explanations ----------------------------------------------------
    def _gram(self, factors: np.ndarray) -> np.ndarray:
        if factors is self.item_factors_:
            return self._item_gram()
        return _core.factorization_implicit.als_gram(factors, resolve_threads(self.n_threads))

    def _item_gram(self) -> np.ndarray:
        """Y^T Y of the item factors, computed once and kept until they change, so that fold-in
        and explanations of single users do not redo the O(n_items f^2) product per call."""
        cache = getattr(self, "_gram_cache", None)
        if cache is None or cache[0] is not self.item_factors_:
            gram = _core.factorization_implicit.als_gram(self.item_factors_, resolve_threads(self.n_threads))
            cache = (self.item_factors_, gram)
            self._gram_cache = cache
        return cache[1]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_gram_cache", None)
        return state

    def _solve_rows(self, rows: sp.csr_matrix, other: np.ndarray, n_other_rows: int) -> np.ndarray:
        """Exact (Cholesky) factors of the given rows with the other side's factors fixed."""
        p = self._checked()
        conf = sp.csr_matrix((self._confidences(rows.data), rows.indices, rows.indptr), shape=rows.shape)
        dtype = self._fitted_dtype()
        other = np.ascontiguousarray(other, dtype=dtype)
        out = np.zeros((rows.shape[0], other.shape[1]), dtype=dtype)
        kw = self._kernel_args(p)
        _core.factorization_implicit.als_solve(
            *_csr(conf, "interactions"), other.shape[0], out, other, self._gram(other), solver=1, cg_steps=1,
            n_threads=p["n_threads"], **kw,
        )
        return out

    def _fitted_dtype(self) -> np.dtype:
        """The precision of the learned factors (the ``dtype`` they were fitted with)."""
        return np.dtype(self.item_factors_.dtype)

    def _fold_in_users(self, rows: sp.csr_matrix) -> np.ndarray:
        return self._solve_rows(rows, self.item_factors_, self.n_users_)

    def recalculate_user(self, user_items: Any, *, ids: IdKind = "raw") -> np.ndarray:
        """Factors of a user from their interactions, with the item factors fixed (fold-in).

        The model is not changed. ``user_items`` is one user's items (a list of item ids with
        weight 1, or a dict item id -> weight), giving a vector of ``factors``; or a sparse
        matrix with one row per user and one column per item, giving one row per user. The
        solution is exact (Cholesky), whatever ``solver`` was used for training.
        """
        self._check_fitted()
        rows, single = self._item_rows(user_items, ids)
        out = self._solve_rows(rows, self.item_factors_, self.n_users_)
        return out[0] if single else out

    def recalculate_item(self, item_users: Any, *, ids: IdKind = "raw") -> np.ndarray:
        """Factors of an item from the users who interacted with it, user factors fixed."""
        self._check_fitted()
        if sp.issparse(item_users):
            rows = sp.csr_matrix(item_users, dtype=np.float32)
            if rows.shape[1] != self.n_users_:
                raise ValueError(f"item_users must have one column per user ({self.n_users_}), got shape {rows.shape}")
            single = False
        else:
            keys = np.atleast_1d(np.asarray(item_users))
            idx = self._to_index(keys, "user", ids) if keys.size else np.zeros(0, dtype=np.int64)
            rows = sp.csr_matrix((np.ones(len(idx), dtype=np.float32), (np.zeros(len(idx), dtype=np.int64), idx)),
                                 shape=(1, self.n_users_))
            single = True
        rows.sum_duplicates()
        out = self._solve_rows(rows, self.user_factors_, self.n_items_)
        return out[0] if single else out

    def partial_fit_items(self, items: Any, item_users: Any, *, ids: IdKind = "raw") -> ALS:
        """Recompute the factors of ``items`` (known or new) from the users who interacted with
        them: ``item_users`` is a sparse matrix with one row per entry of ``items`` and one column
        per user; each row replaces that item's interactions. User factors are not changed;
        returns ``self``."""
        self._check_fitted()
        if not sp.issparse(item_users):
            raise ValueError("item_users must be a scipy.sparse matrix (items x users)")
        rows = sp.csr_matrix(item_users, dtype=np.float32)
        if rows.shape[1] != self.n_users_:
            raise ValueError(f"item_users must have one column per user ({self.n_users_}), got shape {rows.shape}")
        rows.sum_duplicates()
        idx, new_ids = self._new_or_known(items, "item", ids)
        if len(idx) != rows.shape[0]:
            raise ValueError(f"item_users must have one row for every item ({len(idx)}), got {rows.shape[0]}")
        if len(np.unique(idx)) != len(idx):
            raise ValueError("items contains duplicates; give each item once")
        factors = self._solve_rows(rows, self.user_factors_, self.n_items_)
        n_total = max(self.n_items_ + len(new_ids), int(idx.max()) + 1)
        weights = sp.csr_matrix((self.seen_weights_, self.seen_.indices, self.seen_.indptr), shape=self.seen_.shape)
        self._set_interactions(_rows_replaced(weights.T.tocsr(), idx, rows, n_total).T.tocsr())
        self._grow("item", idx, new_ids, factors)
        return self

    def explain(
        self, user: Any, item: Any, *, user_items: Any = None, n: int | None = None, ids: IdKind = "raw"
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Why ``item`` scores as it does for ``user``: one contribution per history item.

        Hu et al. (section 5): the exact least-squares user vector is
        ``x_u = W_u^-1 sum_j c_uj y_j``, so the score ``x_u . y_i`` is the sum over the user's
        history of ``c_uj * y_i^T W_u^-1 y_j``, the part item ``j`` contributes.

        Parameters
        ----------
        user : id
            A known user (``user_items`` defaults to their training interactions); or any value
            when ``user_items`` is given (a list of items, or a dict item -> weight).
        item : id
            The item whose score is explained.
        n : int, optional
            Return only the ``n`` largest contributions (the total still covers all).

        Returns
        -------
        score : float
            ``x_u . y_i`` for the exact fold-in ``x_u`` of the history; it equals the sum of all
            contributions, and ``score(user, item)`` once the model has converged.
        items : array of ids
            History items, largest contribution first.
        contributions : array of the factors' dtype
        """
        self._check_fitted()
        if user_items is None:
            u = int(self._to_index([user], "user", ids)[0])
            lo, hi = self.seen_.indptr[u], self.seen_.indptr[u + 1]
            hist = np.asarray(self.seen_.indices[lo:hi], dtype=np.int32)
            weights = np.asarray(self.seen_weights_[lo:hi], dtype=np.float32)
        else:
            rows, single = self._item_rows(user_items, ids)
            if not single:
                raise ValueError("user_items must be one user's items (a list or a dict), not a matrix")
            hist, weights = rows.indices.astype(np.int32), rows.data.astype(np.float32)
        target = int(self._to_index([item], "item", ids)[0])
        p = self._checked()
        conf = self._confidences(weights)
        items_f = np.ascontiguousarray(self.item_factors_, dtype=self._fitted_dtype())
        contrib, total = _core.factorization_implicit.als_explain(
            np.ascontiguousarray(hist), conf, items_f, self._gram(items_f), target, **self._kernel_args(p),
        )
        order = np.argsort(-contrib, kind="stable")
        if n is not None:
            order = order[: check_positive_int(n, "n")]
        items = hist[order].astype(np.int64)
        return float(total), (items if ids == "index" else self.item_ids_[items]), contrib[order]

    def _check_state(self) -> None:
        super()._check_state()
        _check_factor_arrays(self, ("user_factors_", "item_factors_"))


# ----------------------------------------------------------------------------------------
# BPR
# ----------------------------------------------------------------------------------------
_NEGATIVES = {"uniform": 0, "popularity": 1}


class BPR(_UserHistory, _EpochFit, FactorRecommender):
    """Bayesian personalised ranking: matrix factorization by pairwise SGD (Rendle et al. 2009).

    Every step samples an interaction ``(u, i)`` and an item ``j`` the user did not interact
    with, and raises ``x_uij = p_u . (q_i - q_j) + b_i - b_j`` by a gradient step on
    ``-ln sigma(x_uij)`` plus L2 regularization. An epoch takes as many steps as there are
    interactions, spread over threads without locks (Hogwild).

    Parameters
    ----------
    factors : int
        Latent dimensions.
    learning_rate, regularization : float
        SGD step size and L2 penalty of the factors (and of the item biases).
    epochs : int
        Passes over the interactions.
    item_biases : bool
        Learn an item bias ``b_i`` (stored in ``item_biases_``; zeros when False).
    verify_negatives : bool
        Draw ``j`` again when the user interacted with it. Without it some "negatives" are
        positives, which costs accuracy.
    negative_draws : int
        Draws of ``j`` per triple before the triple is skipped (with ``verify_negatives``).
        ``1`` skips at the first draw the user interacted with, as implicit does.
    negative_sampling : {"uniform", "popularity"}
        ``j`` uniform over the items (the paper), or in proportion to item popularity, as the
        implicit library does (``j`` is the item of another random interaction).
    dtype : {"float32", "float64"} or np.float32, np.float64
        Precision of the factors, the biases and the SGD steps (training and fold-in). The
        initial factors are drawn in float32 for either, so a seed gives the same start.
    random_state : int, numpy Generator or None
        Seeds the initial factors (uniform in ``[-0.5, 0.5) / factors``, as implicit) and the
        sampling. With ``n_threads=1`` training is deterministic; with more threads the
        lock-free updates interleave differently from run to run, so models differ slightly.
    n_threads : int
        Threads (0 = all cores).

    Attributes
    ----------
    user_factors_, item_factors_ : arrays of ``dtype``
    item_biases_ : array (n_items,) of ``dtype``
    history_ : list of dict
        Per epoch: ``loss`` (mean ``-ln sigma(x_uij)``), ``train_auc`` (share of sampled
        triples already ranked right), ``skipped`` (share without a valid negative).
    """

    _learned: ClassVar[tuple[str, ...]] = ("user_factors_", "item_factors_", "item_biases_")
    _loss_code: ClassVar[int] = 0  # the triple loss of the C++ kernel: 0 BPR, 1 logistic

    def __init__(
        self,
        factors: int = 100,
        *,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        epochs: int = 100,
        item_biases: bool = True,
        verify_negatives: bool = True,
        negative_draws: int = 64,
        negative_sampling: str = "uniform",
        dtype: Any = "float32",
        random_state: Any = None,
        n_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.epochs = epochs
        self.item_biases = item_biases
        self.verify_negatives = verify_negatives
        self.negative_draws = negative_draws
        self.negative_sampling = negative_sampling
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads

    def _checked(self) -> dict[str, Any]:
        if self.negative_sampling not in _NEGATIVES:
            raise ValueError(f"negative_sampling must be 'uniform' or 'popularity', got {self.negative_sampling!r}")
        return {
            "factors": _check_factors(self.factors),
            "learning_rate": _check_real(self.learning_rate, "learning_rate", low=0.0, strict=True),
            "regularization": _check_real(self.regularization, "regularization", low=0.0),
            "epochs": check_positive_int(self.epochs, "epochs"),
            "negative_draws": check_positive_int(self.negative_draws, "negative_draws"),
            "dtype": _check_factor_dtype(self.dtype),
            "n_threads": resolve_threads(self.n_threads),
        }

    def _user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        u = self.user_factors_[user_idx]
        dtype = self._vector_dtype()
        return np.ascontiguousarray(np.hstack([u, np.ones((len(u), 1), dtype=dtype)]), dtype=dtype)

    def _item_vectors(self) -> np.ndarray:
        return np.ascontiguousarray(np.hstack([self.item_factors_, self.item_biases_[:, None]]),
                                    dtype=self._vector_dtype())

    def _fit(self, data: Interactions) -> None:
        p = self._checked()
        matrix = data.matrix.tocsr()
        _check_weights(np.asarray(matrix.data))
        self.seen_weights_ = np.asarray(matrix.data, dtype=np.float32).copy()
        indptr, indices, _ = _csr(matrix, "interactions")
        n_users, n_items = matrix.shape
        f = p["factors"]
        rng = check_random_state(self.random_state)
        # drawn in float32 for either dtype: the same seed starts both precisions at one point
        items = (rng.random((n_items, f), dtype=np.float32) - np.float32(0.5)) / np.float32(f)
        users = (rng.random((n_users, f), dtype=np.float32) - np.float32(0.5)) / np.float32(f)
        items[np.bincount(indices, minlength=n_items) == 0] = 0.0
        users[np.diff(indptr) == 0] = 0.0
        self.user_factors_, self.item_factors_ = users.astype(p["dtype"]), items.astype(p["dtype"])
        self.item_biases_ = np.zeros(n_items, dtype=p["dtype"])
        self._seed = int(rng.integers(0, 2**63 - 1))
        core = _core.factorization_implicit
        lr, reg = p["learning_rate"], p["regularization"]
        negatives = _NEGATIVES[self.negative_sampling]
        row_of, pair_filter = core.bpr_prepare(indptr, indices, n_items)

        def step(epoch: int) -> dict[str, float]:
            stats = core.bpr_epoch(
                indptr, indices, n_items, self.user_factors_, self.item_factors_,
                self.item_biases_ if self.item_biases else None, learning_rate=lr, regularization=reg,
                bias_regularization=reg, verify_negatives=bool(self.verify_negatives), negatives=negatives,
                negative_draws=p["negative_draws"], seed=self._seed, epoch=epoch, n_threads=p["n_threads"],
                row_of=row_of, filter=pair_filter, loss=self._loss_code,
            )
            taken = max(stats["samples"] - stats["skipped"], 1)
            return {"loss": stats["loss"] / taken, "train_auc": stats["correct"] / taken,
                    "skipped": stats["skipped"] / max(stats["samples"], 1)}

        self._run(p["epochs"], step)

    def _fold_in_users(self, rows: sp.csr_matrix, epochs: int = 20) -> np.ndarray:
        p = self._checked()
        _check_weights(np.asarray(rows.data))
        indptr, indices, _ = _csr(rows, "user_items")
        out = np.zeros((rows.shape[0], self.item_factors_.shape[1]), dtype=self.item_factors_.dtype)
        seed = int(check_random_state(self.random_state if isinstance(self.random_state, int) else 0).integers(2**63 - 1))
        _core.factorization_implicit.bpr_fold_in(
            indptr, indices, out, self.item_factors_, self.item_biases_ if self.item_biases else None,
            epochs=check_positive_int(epochs, "epochs"), learning_rate=p["learning_rate"],
            regularization=p["regularization"], verify_negatives=bool(self.verify_negatives), seed=seed,
            n_threads=p["n_threads"], loss=self._loss_code,
        )
        return out

    def recalculate_user(self, user_items: Any, *, epochs: int = 20, ids: IdKind = "raw") -> np.ndarray:
        """Factors of a user from their interactions by ``epochs`` passes of SGD steps on the
        user vector alone, item factors and biases fixed (fold-in; the model is not changed).

        ``user_items`` is one user's items (a list, or a dict item -> weight), giving a vector;
        or a sparse matrix with one row per user, giving one row per user. Each row has its
        own random stream, so the result does not depend on ``n_threads``.
        """
        self._check_fitted()
        rows, single = self._item_rows(user_items, ids)
        out = self._fold_in_users(rows, epochs)
        return out[0] if single else out

    def _check_state(self) -> None:
        super()._check_state()
        if np.asarray(self.item_biases_).shape != (self.n_items_,):
            raise ValueError("item_biases_ does not match the number of items")
        _check_factor_arrays(self, ("user_factors_", "item_factors_", "item_biases_"))


class LMF(BPR):
    """Logistic matrix factorization (Johnson 2014) by SGD with sampled negatives.

    The probability that user u interacts with item i is ``sigma(p_u . q_i + b_i)``; every
    step takes an interaction ``(u, i)`` as a positive example and a sampled item ``j`` the user
    did not interact with as a negative one, and lowers
    ``-ln sigma(x_ui) - ln(1 - sigma(x_uj))`` plus L2 regularization. It shares BPR's sampling,
    threads, determinism rules, fold-in and parameters (see :class:`BPR`); only the loss
    differs (BPR scores the pair, LMF each item on its own, so its scores are calibrated
    log-odds). Johnson's per-user bias is left out: it shifts all of a user's scores alike and
    never changes a ranking. Interactions count as binary (weights are not confidences here).

    ``history_`` logs per epoch the mean loss of a step and ``train_auc``, the share of sampled
    pairs whose positive already scored above the negative.
    """

    _loss_code: ClassVar[int] = 1


# ----------------------------------------------------------------------------------------
# EASE
# ----------------------------------------------------------------------------------------
class CatalogTooLargeError(MemoryError, ValueError):
    """A dense items x items model would not fit the configured memory budget."""


class EASE(_UserHistory, Recommender):
    """Embarrassingly shallow autoencoder (Steck 2019): a closed-form item-item model.

    With ``G = X^T X + regularization * I`` over the users x items matrix ``X`` and
    ``P = G^-1``, the item-item weights are ``B = I - P diag(1 / diag(P))`` (zero diagonal),
    the least-squares solution of ``X ~ X B`` with ``diag(B) = 0``. A user's scores are
    their interaction row times ``B``.

    ``G``, its factor and ``B`` are dense ``n_items x n_items`` matrices, so memory grows with
    the square of the catalog: 20,000 items need 1.6 GB for ``B`` alone (float32) and as much
    again (``float32``) or twice that (``float64``) while fitting. Fitting refuses catalogs
    above ``max_items`` with a :class:`CatalogTooLargeError` (a ``MemoryError`` and a
    ``ValueError``) that gives the figures.

    Parameters
    ----------
    regularization : float
        ``lambda`` (Steck uses a few hundred on MovieLens-sized data).
    binarize : bool
        Use 1 for every interaction (the paper) rather than its weight.
    max_items : int
        Largest catalog accepted.
    dtype : {"float32", "float64"}
        Precision of the Gram matrix and its Cholesky factor (``B`` is stored as float32).
    n_threads : int
        Threads (0 = all cores).

    Attributes
    ----------
    weights_ : float32 array (n_items x n_items)
        ``B``; row ``i`` holds how much an interaction with item ``i`` adds to every item's score.
    """

    _learned: ClassVar[tuple[str, ...]] = ("weights_",)

    def __init__(
        self,
        regularization: float = 500.0,
        *,
        binarize: bool = True,
        max_items: int = 20_000,
        dtype: str = "float32",
        n_threads: int = 0,
    ) -> None:
        self.regularization = regularization
        self.binarize = binarize
        self.max_items = max_items
        self.dtype = dtype
        self.n_threads = n_threads

    @staticmethod
    def memory_bytes(n_items: int, dtype: str = "float32") -> int:
        """Bytes of dense matrices fitting holds at once: ``B`` (float32) plus ``G``."""
        return int(n_items) ** 2 * (4 + np.dtype(dtype).itemsize)

    def _fit(self, data: Interactions) -> None:
        reg = _check_real(self.regularization, "regularization", low=0.0, strict=True)
        max_items = check_positive_int(self.max_items, "max_items")
        if str(self.dtype) not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        n_users, n_items = data.shape
        if n_items > max_items:
            gb = self.memory_bytes(n_items, str(self.dtype)) / 1e9
            raise CatalogTooLargeError(
                f"EASE keeps dense {n_items:,} x {n_items:,} item-item matrices: fitting needs about "
                f"{gb:.1f} GB ({n_items:,}^2 x {4 + np.dtype(str(self.dtype)).itemsize} bytes) and the "
                f"model keeps {n_items ** 2 * 4 / 1e9:.1f} GB. This is above max_items={max_items:,}; "
                "raise max_items if the machine has the memory, shrink the catalog (e.g. "
                "Interactions.filter or k_core), or use ItemKNN or ALS, whose memory grows linearly"
            )
        matrix = data.matrix.tocsr()
        weights = np.asarray(matrix.data, dtype=np.float32)
        _check_weights(weights)
        if self.binarize:
            weights = np.ones_like(weights)
        self.seen_weights_ = weights.copy()
        x = sp.csr_matrix((weights, matrix.indices, matrix.indptr), shape=matrix.shape)
        indptr, indices, values = _csr(x, "interactions")
        self.weights_ = _core.factorization_implicit.ease_fit(
            indptr, indices, values, n_users, n_items, reg, str(self.dtype) == "float64",
            resolve_threads(self.n_threads),
        )

    def _history(self, user_idx: np.ndarray) -> sp.csr_matrix:
        x = sp.csr_matrix((self.seen_weights_, self.seen_.indices, self.seen_.indptr), shape=self.seen_.shape)
        return x[np.asarray(user_idx, dtype=np.int64)]

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        rows = self._history(user_idx)
        indptr, indices, values = _csr(rows, "history")
        return _core.factorization_implicit.ease_scores(
            indptr, indices, values, self.weights_, resolve_threads(self.n_threads)
        )

    def _fold_in_users(self, rows: sp.csr_matrix) -> np.ndarray:
        # EASE has no user parameters: a user is their history, stored by partial_fit_users
        return np.zeros((rows.shape[0], 0), dtype=np.float32)

    def _grow(self, kind: str, idx: np.ndarray, new_ids: np.ndarray, factors: np.ndarray) -> None:
        if len(new_ids):
            self.user_ids_ = np.concatenate([self.user_ids_, new_ids])
        self._user_lookup = None

    def partial_fit_users(self, users: Any, user_items: Any, *, ids: IdKind = "raw") -> EASE:
        """Set the histories of ``users`` (known or new): EASE scores a user from their
        interactions alone, so no refit is needed. ``user_items`` as for :meth:`ALS.partial_fit_users`."""
        if self.binarize:
            rows, _ = self._item_rows(user_items, ids)
            rows.data[:] = 1.0
            user_items = rows
        return super().partial_fit_users(users, user_items, ids=ids)

    def recommend_for_history(self, user_items: Any, n: int = 10, *, exclude_seen: bool = True,
                              ids: IdKind = "raw") -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for a history that is not in the model (a list of items, or a dict
        item -> weight), without storing it."""
        self._check_fitted()
        from ..retrieval import topk_dense

        rows, single = self._item_rows(user_items, ids)
        if self.binarize:
            rows.data[:] = 1.0
        indptr, indices, values = _csr(rows, "user_items")
        scores = _core.factorization_implicit.ease_scores(indptr, indices, values, self.weights_,
                                                          resolve_threads(self.n_threads))
        top, vals = topk_dense(scores, check_positive_int(n, "n"), exclude=rows if exclude_seen else None,
                               n_threads=resolve_threads(self.n_threads))
        out = top if ids == "index" else self._to_raw_items(top)
        return (out[0], vals[0]) if single else (out, vals)

    def similar_items(self, items: Any, n: int = 10, *, ids: IdKind = "raw",
                      n_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items with the largest weight ``B[i, j]`` from each item ``i``."""
        self._check_fitted()
        from ..retrieval import topk_dense

        n = check_positive_int(n, "n")
        if n > self.n_items_ - 1:
            raise ValueError(f"n={n} is larger than the {self.n_items_ - 1} other items; ask for at most that")
        single = np.ndim(items) == 0
        idx = self._to_index(np.atleast_1d(items), "item", ids)
        exclude = sp.csr_matrix(
            (np.ones(len(idx), dtype=np.float32), idx, np.arange(len(idx) + 1)), shape=(len(idx), self.n_items_)
        )
        threads = resolve_threads(self._threads() if n_threads is None else n_threads)
        top, scores = topk_dense(self.weights_[idx], n, exclude=exclude, n_threads=threads)
        out = top if ids == "index" else self._to_raw_items(top)
        return (out[0], scores[0]) if single else (out, scores)

    def _check_state(self) -> None:
        super()._check_state()
        if np.asarray(self.weights_).shape != (self.n_items_, self.n_items_):
            raise ValueError("weights_ must be n_items x n_items")
