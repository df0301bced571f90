"""Rating prediction by matrix factorization (explicit feedback).

Five models predict a user's rating of an item, with the update rules and default
hyperparameters of Surprise where Surprise has the model:

:class:`SVD`
    Biased matrix factorization ("Funk SVD"), r^ = mu + b_u + b_i + q_i . p_u, trained by SGD.
    ``SVD(biased=False)`` is probabilistic matrix factorization (PMF), r^ = q_i . p_u.
:class:`SVDpp`
    SVD++ (Koren 2008), r^ = mu + b_u + b_i + q_i . (p_u + #I_u^-1/2 sum_{j in I_u} y_j), by
    user-grouped SGD whose epoch costs O(ratings x factors).
:class:`NMF`
    Non-negative matrix factorization with Surprise's multiplicative updates, optionally biased.
:class:`ALSWR`
    Alternating least squares with weighted-lambda regularization (Zhou et al. 2008).

All of them keep their learned state in NumPy arrays (``user_factors_``, ``item_factors_``,
``user_bias_``, ``item_bias_``, ``global_mean_``, ``rating_scale_``; SVD++ adds
``implicit_factors_``), rank with the exact top-k kernel through augmented vectors
(``[p_u, 1, mu + b_u] . [q_i, b_i, 1]`` is the predicted rating), and report the RMSE of an
``eval_set`` per epoch, with early stopping.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._training import Callback, _check_finite, _divergence_error, run_epochs
from .._validation import check_positive_int, resolve_threads
from ..base import IdKind, as_interactions, check_random_state
from ..data import Interactions
from ..neighbors import _RatingModel, _ratings_matrix
from ._base import FactorRecommender

__all__ = ["SVD", "SVDpp", "NMF", "ALSWR"]

_kernels = _core.factorization_explicit
Unknown = Literal["default", "raise"]


# ----------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------
def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _check_float(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if not positive and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def _group_value(specific: Any, common: Any, name: str) -> float:
    """A per-group learning rate or regularization: its own value, else the ``*_all`` one."""
    return _check_float(common if specific is None else specific, name)


# ----------------------------------------------------------------------------------------
# RMSE on an evaluation set, with early stopping (run_epochs' own validation ranks items)
# ----------------------------------------------------------------------------------------
class _RmseMonitor:
    """Computes the eval-set RMSE every ``every`` epochs and keeps the best epoch's arrays.

    Lower is better, so this runs beside :func:`run_epochs` (whose own ``eval_set`` takes a
    higher-is-better ranking metric): it adds ``rmse`` to the epoch logs from the step, asks to
    stop through a callback, and restores the best arrays after the loop.
    """

    def __init__(self, model: _ExplicitFactorModel, eval_set: Any, every: int, patience: int | None, n_epochs: int):
        data = as_interactions(eval_set)
        if not (
            np.array_equal(np.asarray(data.user_ids), model.user_ids_)
            and np.array_equal(np.asarray(data.item_ids), model.item_ids_)
        ):
            raise ValueError(
                "eval_set's id maps differ from the training data; build it with recforge.split, or "
                "pass user_ids=/item_ids= of the training set when building it"
            )
        if data.nnz == 0:
            raise ValueError("eval_set has no ratings")
        matrix = data.matrix.tocsr()
        self.users = np.repeat(np.arange(data.n_users, dtype=np.int64), np.diff(matrix.indptr))
        self.items = matrix.indices.astype(np.int64)
        truth = data.ratings if data.ratings is not None else matrix.data
        self.truth = np.asarray(truth, dtype=np.float64)
        self.model = model
        self.every = check_positive_int(every, "eval_every")
        self.patience = None if patience is None else check_positive_int(patience, "early_stopping")
        self.n_epochs = n_epochs
        self.best = np.inf
        self.best_epoch = -1
        self.best_state: dict[str, np.ndarray] | None = None
        self.stale = 0

    def after_epoch(self, epoch: int) -> dict[str, float]:
        if (epoch + 1) % self.every != 0 and epoch + 1 != self.n_epochs:
            return {}
        pred = self.model.predict(self.users, self.items, ids="index")
        value = float(np.sqrt(np.mean((pred - self.truth) ** 2)))
        if value < self.best:
            self.best, self.best_epoch, self.stale = value, epoch, 0
            if self.patience is not None:
                self.best_state = {n: np.array(getattr(self.model, n), copy=True) for n in self.model._learned}
        else:
            self.stale += 1
        return {"rmse": value}

    def should_stop(self, model: Any, epoch: int, logs: Mapping[str, float]) -> bool:
        return self.patience is not None and self.stale >= self.patience

    def restore(self, history: list[dict[str, float]]) -> None:
        if self.best_state is not None and self.best_epoch != len(history) - 1:
            for name, value in self.best_state.items():
                setattr(self.model, name, value)
            history.append({"epoch": self.best_epoch + 1, "restored_best": 1.0, "rmse": self.best})


# ----------------------------------------------------------------------------------------
# the shared base
# ----------------------------------------------------------------------------------------
class _ExplicitFactorModel(FactorRecommender, _RatingModel):
    """Rating models with factors and biases: fitting loop, prediction, ranking vectors.

    The score is r^ = mu + b_u + b_i + q_i . z_u for biased models and q_i . z_u for unbiased ones,
    with z_u = p_u (SVD++ adds its implicit term). ``predict`` clips it to ``rating_scale_``;
    ``recommend`` and ``score`` rank by the unclipped value.
    """

    _learned: tuple[str, ...] = (
        "user_factors_", "item_factors_", "user_bias_", "item_bias_", "global_mean_", "rating_scale_",
    )
    _biased_model = True  # whether mu + b_u + b_i enter the prediction (see _is_biased)

    # -- fitting -----------------------------------------------------------------------------
    def fit(
        self,
        interactions: Any,
        *,
        eval_set: Any = None,
        eval_every: int = 1,
        early_stopping: int | None = None,
        callbacks: Iterable[Callback] = (),
        show_progress: bool = True,
    ) -> _ExplicitFactorModel:
        """Learn from rated interactions; returns ``self``.

        Parameters
        ----------
        interactions : Interactions, scipy.sparse matrix or DataFrame
            The ratings are ``interactions.ratings`` when present, else the matrix weights.
        eval_set : Interactions, optional
            Held-out ratings with the training data's id maps; their RMSE (of the clipped
            predictions) is logged as ``rmse`` every ``eval_every`` epochs and in ``history_``.
        early_stopping : int, optional
            Stop after this many evaluations without a lower RMSE and restore the arrays of the
            best evaluated epoch (needs ``eval_set``).
        callbacks : callables ``(model, epoch, logs) -> stop?``
            Called after every epoch; returning True stops training.
        show_progress : bool
            Show a progress bar with the training and evaluation RMSE.
        """
        if early_stopping is not None and eval_set is None:
            raise ValueError("early_stopping needs an eval_set to watch")
        super().fit(
            interactions, eval_set=eval_set, eval_every=eval_every, early_stopping=early_stopping,
            callbacks=callbacks, show_progress=show_progress,
        )
        return self

    def _fit(
        self,
        data: Interactions,
        *,
        eval_set: Any = None,
        eval_every: int = 1,
        early_stopping: int | None = None,
        callbacks: Iterable[Callback] = (),
        show_progress: bool = True,
    ) -> None:
        if early_stopping is not None and eval_set is None:
            raise ValueError("early_stopping needs an eval_set to watch")
        self._cache = {}
        self._validate_params()
        dtype = _check_dtype(self.dtype)
        ratings = _ratings_matrix(data)
        values = ratings.data
        scale = self._check_rating_scale(values)
        if self.rating_scale is not None and values.size and (values.min() < scale[0] or values.max() > scale[1]):
            bad = values[(values < scale[0]) | (values > scale[1])]
            raise ValueError(
                f"{bad.size} ratings lie outside rating_scale={tuple(scale.tolist())} (e.g. {bad[0]:g}); "
                "fix the data or the scale, or leave rating_scale=None to learn it from the ratings"
            )
        self.rating_scale_ = scale
        self.global_mean_ = np.asarray(float(np.mean(values, dtype=np.float64)), dtype=np.float64)
        rng = check_random_state(self.random_state)
        ratings = sp.csr_matrix((values.astype(dtype), ratings.indices, ratings.indptr), shape=ratings.shape)
        self._init_state(ratings, dtype, rng)
        # users and items without training ratings never get a gradient: give them zero factors
        # so that they predict the fallback (global mean + known bias), as unknown ids do
        self.user_factors_[np.diff(ratings.indptr) == 0] = 0
        self.item_factors_[np.bincount(ratings.indices, minlength=ratings.shape[1]) == 0] = 0
        step = self._make_step(ratings, dtype, rng)
        n_epochs = check_positive_int(self.n_epochs, "n_epochs")
        monitor = None
        if eval_set is not None:
            monitor = _RmseMonitor(self, eval_set, eval_every, early_stopping, n_epochs)

        def epoch_step(epoch: int) -> dict[str, float]:
            sse, n = step(epoch)
            self._invalidate_vectors()  # the kernels update the factor arrays in place
            if not np.isfinite(sse):  # a NaN or infinite parameter makes some error non-finite
                _check_finite(self, epoch, self._learned)
                raise _divergence_error(self, "the training error", epoch)
            logs = {"train_rmse": float(np.sqrt(sse / n)) if n else float("nan")}
            if monitor is not None and np.isfinite(logs["train_rmse"]):
                logs.update(monitor.after_epoch(epoch))
            return logs

        callbacks = list(callbacks)
        if monitor is not None:
            callbacks.append(monitor.should_stop)
        history = run_epochs(
            self, n_epochs, epoch_step, callbacks=callbacks, show_progress=bool(show_progress),
            desc=type(self).__name__, check_arrays_every_epoch=False,
        )
        if monitor is not None:
            monitor.restore(history)
        for name in ("user_factors_", "item_factors_"):  # SVD trains on views of padded rows
            setattr(self, name, np.ascontiguousarray(getattr(self, name)))
        self._invalidate_vectors()
        self.history_ = history

    def _validate_params(self) -> None:
        check_positive_int(self.factors, "factors")
        check_positive_int(self.n_epochs, "n_epochs")
        resolve_threads(self.n_threads)

    def _init_state(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> None:
        raise NotImplementedError  # pragma: no cover

    def _make_step(
        self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator
    ) -> Callable[[int], tuple[float, int]]:
        raise NotImplementedError  # pragma: no cover

    def _is_biased(self) -> bool:
        return bool(getattr(self, "biased", self._biased_model))

    def _normal(
        self, rng: np.random.Generator, shape: tuple[int, int], dtype: np.dtype, out: np.ndarray | None = None
    ) -> np.ndarray:
        """N(init_mean, init_std_dev^2) draws of the given shape (into ``out`` when given), from a
        seed that ``rng`` draws."""
        mean = self.init_mean
        if isinstance(mean, bool) or not isinstance(mean, numbers.Real) or not np.isfinite(mean):
            raise ValueError(f"init_mean must be a finite number, got {mean!r}")
        std = _check_float(self.init_std_dev, "init_std_dev")
        if out is None:
            out = np.empty(shape, dtype=dtype)
        _kernels.fill_normal(out, float(mean), std, _seed(rng))
        return out

    def _lr_factor(self, epoch: int) -> float:
        decay = _check_float(self.lr_decay, "lr_decay", positive=True)
        return decay**epoch

    def _threads_now(self) -> int:
        return resolve_threads(self._threads())

    # -- prediction ---------------------------------------------------------------------
    def _user_factor_part(self, user_idx: np.ndarray) -> np.ndarray:
        """z_u, the user's vector that multiplies q_i (p_u here; SVD++ adds its implicit term)."""
        return np.asarray(self.user_factors_)[user_idx]

    def _estimate(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Unclipped predictions; index -1 marks an unknown user or item (Surprise's fallback:
        the global mean plus the known biases; for an unbiased model, the global mean)."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        item_idx = np.asarray(item_idx, dtype=np.int64)
        ku, ki = user_idx >= 0, item_idx >= 0
        both = ku & ki
        mu = float(self.global_mean_)
        est = np.full(len(user_idx), mu, dtype=np.float64)
        dots = np.einsum(
            "ij,ij->i",
            self._user_factor_part(user_idx[both]).astype(np.float64),
            np.asarray(self.item_factors_)[item_idx[both]].astype(np.float64),
        )
        if self._is_biased():
            est[ku] += self.user_bias_[user_idx[ku]]
            est[ki] += self.item_bias_[item_idx[ki]]
            est[both] += dots
        else:
            est[both] = dots
        return est

    def predict(
        self, users: Any, items: Any, *, ids: IdKind = "raw", clip: bool = True, unknown: Unknown = "default"
    ) -> np.ndarray:
        """Predicted ratings of (user, item) pairs; ``users`` and ``items`` broadcast together.

        Parameters
        ----------
        users, items : ids or arrays of ids
        ids : {"raw", "index"}
        clip : bool
            Clip to ``rating_scale_`` (learned from the training ratings, or given).
        unknown : {"default", "raise"}
            A user or item unseen in training gets Surprise's fallback: the global mean plus the
            biases that are known (for an unbiased model, the global mean). ``"raise"`` raises
            an ``IndexError`` instead.

        Returns
        -------
        float64 array of the broadcast shape
        """
        return super().predict(users, items, ids=ids, clip=clip, unknown=unknown)

    # -- ranking through the exact top-k kernel -------------------------------------------
    def _user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        z = self._user_factor_part(np.asarray(user_idx, dtype=np.int64))
        if not self._is_biased():
            return np.ascontiguousarray(z, dtype=np.float32)
        n = len(user_idx)
        out = np.empty((n, z.shape[1] + 2), dtype=np.float32)
        out[:, :-2] = z
        out[:, -2] = 1.0
        out[:, -1] = float(self.global_mean_) + np.asarray(self.user_bias_)[user_idx]
        return out

    def _item_vectors(self) -> np.ndarray:
        q = np.asarray(self.item_factors_)
        if not self._is_biased():
            return np.ascontiguousarray(q, dtype=np.float32)
        out = np.empty((q.shape[0], q.shape[1] + 2), dtype=np.float32)
        out[:, :-2] = q
        out[:, -2] = self.item_bias_
        out[:, -1] = 1.0
        return out

    def _check_state(self) -> None:
        super()._check_state()
        if np.shape(self.user_bias_) != (self.n_users_,) or np.shape(self.item_bias_) != (self.n_items_,):
            raise ValueError("biases do not match the number of users and items")
        if np.shape(self.rating_scale_) != (2,):
            raise ValueError("rating_scale_ must hold (low, high)")


def _sgd_rates(model: Any, groups: tuple[str, ...]) -> tuple[list[float], list[float]]:
    """Learning rates and regularizations in the kernel's order (bu, bi, pu, qi, yj)."""
    lr, reg = [], []
    for g in ("bu", "bi", "pu", "qi", "yj"):
        if g in groups:
            lr.append(_group_value(getattr(model, f"lr_{g}"), model.lr_all, f"lr_{g}"))
            reg.append(_group_value(getattr(model, f"reg_{g}"), model.reg_all, f"reg_{g}"))
        else:
            lr.append(0.0)
            reg.append(0.0)
    return lr, reg


def _padded_rows(n: int, k: int, dtype: np.dtype) -> np.ndarray:
    """An (n, k) array to fill; for float32 the view of the first k columns of zeroed rows of
    ``svd_padded_stride(k)`` floats, 64-byte aligned: the layout the SVD kernel updates in place."""
    if np.dtype(dtype) != np.float32:
        return np.empty((n, k), dtype=dtype)
    stride = _kernels.svd_padded_stride(k)
    raw = np.zeros(n * stride + 16, dtype=np.float32)
    offset = (-raw.ctypes.data % 64) // 4
    return raw[offset: offset + n * stride].reshape(n, stride)[:, :k]


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


# ----------------------------------------------------------------------------------------
# SVD / PMF
# ----------------------------------------------------------------------------------------
class SVD(_ExplicitFactorModel):
    """Biased matrix factorization (Funk SVD) trained by SGD, as Surprise's ``SVD``.

    r^_ui = mu + b_u + b_i + q_i . p_u, or q_i . p_u with ``biased=False`` (PMF). Each epoch
    visits every rating once (in a new grouped random order when ``shuffle``) and steps
    b_u += lr_bu (e - reg_bu b_u), b_i += lr_bi (e - reg_bi b_i),
    p_u += lr_pu (e q_i - reg_pu p_u), q_i += lr_qi (e p_u - reg_qi q_i), with e = r - r^.

    Parameters
    ----------
    factors : int
        Latent dimension (Surprise's ``n_factors``).
    n_epochs : int
        Passes over the ratings.
    biased : bool
        Learn mu + b_u + b_i; ``False`` gives PMF.
    init_mean, init_std_dev : float
        Factors start from a normal distribution with these parameters; biases start at 0.
    lr_all, reg_all : float
        Learning rate and L2 regularization of every parameter group, unless the group's own
        value (``lr_bu``, ``lr_bi``, ``lr_pu``, ``lr_qi``, ``reg_bu``, ...) is given.
    lr_decay : float
        Schedule: the learning rates of epoch t are multiplied by ``lr_decay ** t`` (1.0, the
        default and Surprise's behaviour, keeps them constant; e.g. 0.95 decays them).
    shuffle : bool
        Visit the ratings in a new random order every epoch (seeded by ``random_state``),
        grouped for the cache: ranges of item indices (about 256 KiB of factor rows each) in a
        random order, within a range the users in a random order, and each user's ratings in
        the range in a random order; three users' runs of ratings are visited at a time,
        interleaved rating by rating (docs: "SVD and PMF"). ``False`` keeps the users and their
        ratings in index order (Surprise's order), with the same interleaving of runs.
    rating_scale : (low, high), optional
        Range that predictions are clipped to; by default the training ratings' range. Ratings
        outside a given scale raise ``ValueError``.
    dtype : {"float32", "float64"}
        Precision of the learned arrays and the arithmetic (Surprise uses float64).
    random_state : int, numpy Generator or None
        Seeds the initial factors and every epoch's shuffle.
    n_threads : int
        Threads (0 = all cores). With more than one (and at least 16,384 ratings per block) the
        epoch runs in conflict-free blocks: users and items are split into ``n_threads`` groups
        and in each of ``n_threads`` rounds every thread updates a block of ratings whose users
        and items no other thread touches (DSGD / LIBMF). The model is deterministic for a
        fixed ``random_state`` and thread count; different thread counts visit the ratings in
        different orders.

    Attributes
    ----------
    user_factors_, item_factors_ : arrays (n_users, factors), (n_items, factors)
    user_bias_, item_bias_ : arrays (zeros when unbiased)
    global_mean_ : float array of shape ()
    rating_scale_ : array [low, high]
    history_ : list of per-epoch logs (``train_rmse``, and ``rmse`` of the eval set)
    """

    def __init__(
        self,
        factors: int = 100,
        n_epochs: int = 20,
        biased: bool = True,
        init_mean: float = 0.0,
        init_std_dev: float = 0.1,
        lr_all: float = 0.005,
        reg_all: float = 0.02,
        lr_bu: float | None = None,
        lr_bi: float | None = None,
        lr_pu: float | None = None,
        lr_qi: float | None = None,
        reg_bu: float | None = None,
        reg_bi: float | None = None,
        reg_pu: float | None = None,
        reg_qi: float | None = None,
        lr_decay: float = 1.0,
        shuffle: bool = True,
        rating_scale: tuple[float, float] | None = None,
        dtype: str = "float32",
        random_state: Any = None,
        n_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.n_epochs = n_epochs
        self.biased = biased
        self.init_mean = init_mean
        self.init_std_dev = init_std_dev
        self.lr_all = lr_all
        self.reg_all = reg_all
        self.lr_bu = lr_bu
        self.lr_bi = lr_bi
        self.lr_pu = lr_pu
        self.lr_qi = lr_qi
        self.reg_bu = reg_bu
        self.reg_bi = reg_bi
        self.reg_pu = reg_pu
        self.reg_qi = reg_qi
        self.lr_decay = lr_decay
        self.shuffle = shuffle
        self.rating_scale = rating_scale
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads

    _groups: tuple[str, ...] = ("bu", "bi", "pu", "qi")

    def _init_state(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> None:
        n_users, n_items = ratings.shape
        k = check_positive_int(self.factors, "factors")
        # during the fit the factors are views of padded rows, which the kernel updates in
        # place (fit leaves C-contiguous arrays)
        self.user_factors_ = self._normal(rng, (n_users, k), dtype, out=_padded_rows(n_users, k, dtype))
        self.item_factors_ = self._normal(rng, (n_items, k), dtype, out=_padded_rows(n_items, k, dtype))
        self.user_bias_ = np.zeros(n_users, dtype=dtype)
        self.item_bias_ = np.zeros(n_items, dtype=dtype)

    def _make_step(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> Callable[[int], tuple[float, int]]:
        lr, reg = _sgd_rates(self, self._groups)
        self._lr_factor(0)  # validates lr_decay
        # triples sorted by user and then item: the kernel finds each user's ratings of an item
        # group by binary search when it draws an epoch's order
        if not ratings.has_sorted_indices:
            ratings = ratings.sorted_indices()
        users = np.repeat(np.arange(ratings.shape[0], dtype=np.int32), np.diff(ratings.indptr))
        items = ratings.indices.astype(np.int32, copy=False)  # the trainer keeps its own copies
        values = ratings.data.astype(dtype, copy=False)
        biased = bool(self.biased)
        mu = float(self.global_mean_) if biased else 0.0
        threads = self._threads_now()
        shuffle = bool(self.shuffle)
        # the ratings, checked once, and the epoch buffers, kept for the next epoch
        trainer = _kernels.SvdTrainer(users, items, values, ratings.shape[0], ratings.shape[1])
        seeds = rng.integers(0, 2**63 - 1, size=check_positive_int(self.n_epochs, "n_epochs"))

        def step(epoch: int) -> tuple[float, int]:
            f = self._lr_factor(epoch)
            return trainer.epoch(
                self.user_factors_, self.item_factors_,
                self.user_bias_ if biased else None, self.item_bias_ if biased else None, mu,
                lr=[v * f for v in lr], reg=reg, shuffle=shuffle, seed=int(seeds[epoch]), n_threads=threads,
            )

        return step


# ----------------------------------------------------------------------------------------
# SVD++
# ----------------------------------------------------------------------------------------
class SVDpp(_ExplicitFactorModel):
    """SVD++ (Koren 2008) trained by user-grouped SGD, with Surprise's defaults.

    r^_ui = mu + b_u + b_i + q_i . (p_u + #I_u^-1/2 sum_{j in I_u} y_j), where I_u is the set of
    items u rated in training (implicit feedback) and y_j a second set of item factors.

    **User-grouped update.** Surprise visits the ratings one by one and after each rating steps
    the y_j of *every* item the user rated, recomputing the implicit sum for each rating: an
    epoch costs O(sum_u #I_u^2 x factors). Here the ratings are processed user by user (users
    in a new random order each epoch when ``shuffle``): the implicit term is computed once per
    user and held fixed over the user's ratings, the common y-step e_ui q_i #I_u^-1/2 is
    accumulated over the user's ratings (with the factor (1 - lr_yj reg_yj) per rating, so the
    regularization is exactly that of the per-rating steps), and each y_j is updated once per
    user. An epoch costs O(ratings x factors). This is the standard efficient form of SVD++;
    it differs from Surprise's only in that the implicit term seen by a user's later ratings
    does not include the y-steps of the same user's earlier ratings in that epoch. Biases,
    p_u and q_i take exactly Surprise's per-rating steps.

    Parameters are those of :class:`SVD` (``factors`` defaults to 20, ``lr_all`` to 0.007),
    plus ``lr_yj`` and ``reg_yj`` for the implicit factors. With ``n_threads`` > 1 users are
    processed in parallel, Hogwild style (not deterministic); ``n_threads=1`` is.

    Attributes
    ----------
    implicit_factors_ : array (n_items, factors)
        The y_j; plus those of :class:`SVD`.
    """

    _learned = _ExplicitFactorModel._learned + ("implicit_factors_",)
    _groups: tuple[str, ...] = ("bu", "bi", "pu", "qi", "yj")

    def __init__(
        self,
        factors: int = 20,
        n_epochs: int = 20,
        init_mean: float = 0.0,
        init_std_dev: float = 0.1,
        lr_all: float = 0.007,
        reg_all: float = 0.02,
        lr_bu: float | None = None,
        lr_bi: float | None = None,
        lr_pu: float | None = None,
        lr_qi: float | None = None,
        lr_yj: float | None = None,
        reg_bu: float | None = None,
        reg_bi: float | None = None,
        reg_pu: float | None = None,
        reg_qi: float | None = None,
        reg_yj: float | None = None,
        lr_decay: float = 1.0,
        shuffle: bool = True,
        rating_scale: tuple[float, float] | None = None,
        dtype: str = "float32",
        random_state: Any = None,
        n_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.n_epochs = n_epochs
        self.init_mean = init_mean
        self.init_std_dev = init_std_dev
        self.lr_all = lr_all
        self.reg_all = reg_all
        self.lr_bu = lr_bu
        self.lr_bi = lr_bi
        self.lr_pu = lr_pu
        self.lr_qi = lr_qi
        self.lr_yj = lr_yj
        self.reg_bu = reg_bu
        self.reg_bi = reg_bi
        self.reg_pu = reg_pu
        self.reg_qi = reg_qi
        self.reg_yj = reg_yj
        self.lr_decay = lr_decay
        self.shuffle = shuffle
        self.rating_scale = rating_scale
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads

    def _init_state(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> None:
        n_users, n_items = ratings.shape
        k = check_positive_int(self.factors, "factors")
        self.user_factors_ = self._normal(rng, (n_users, k), dtype)
        self.item_factors_ = self._normal(rng, (n_items, k), dtype)
        self.implicit_factors_ = self._normal(rng, (n_items, k), dtype)
        self.user_bias_ = np.zeros(n_users, dtype=dtype)
        self.item_bias_ = np.zeros(n_items, dtype=dtype)

    def _make_step(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> Callable[[int], tuple[float, int]]:
        lr, reg = _sgd_rates(self, self._groups)
        self._lr_factor(0)
        indptr = ratings.indptr.astype(np.int64)
        indices = ratings.indices.astype(np.int32)
        values = np.ascontiguousarray(ratings.data, dtype=dtype)
        order = np.arange(ratings.shape[0], dtype=np.int32)
        mu = float(self.global_mean_)
        threads = self._threads_now()
        shuffle = bool(self.shuffle)

        def step(epoch: int) -> tuple[float, int]:
            f = self._lr_factor(epoch)
            return _kernels.svdpp_epoch(
                indptr, indices, values, order, self.user_factors_, self.item_factors_, self.implicit_factors_,
                self.user_bias_, self.item_bias_, mu, lr=[v * f for v in lr], reg=reg, shuffle=shuffle,
                seed=_seed(rng), n_threads=threads,
            )

        return step

    def _user_factor_part(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = np.asarray(user_idx, dtype=np.int64)
        p = np.asarray(self.user_factors_)[user_idx].astype(np.float64)
        if len(user_idx) == 0:
            return p
        rated = self.seen_[user_idx]
        counts = np.diff(rated.indptr)
        implicit = rated @ np.asarray(self.implicit_factors_, dtype=np.float64)
        scale = np.zeros(len(user_idx))
        np.divide(1.0, np.sqrt(counts), out=scale, where=counts > 0)
        return p + implicit * scale[:, None]

    def _check_state(self) -> None:
        super()._check_state()
        if np.shape(self.implicit_factors_) != np.shape(self.item_factors_):
            raise ValueError("implicit factors do not match the item factors")


# ----------------------------------------------------------------------------------------
# NMF
# ----------------------------------------------------------------------------------------
def _by_item(ratings: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transpose layout of a CSR: (indptr by item, user of each entry, CSR position)."""
    n_users, n_items = ratings.shape
    order = np.argsort(ratings.indices, kind="stable").astype(np.int64)
    rows = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(ratings.indptr))
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(ratings.indices, minlength=n_items), out=indptr[1:])
    return indptr, rows[order], order


class NMF(_ExplicitFactorModel):
    """Non-negative matrix factorization with Surprise's multiplicative updates.

    r^_ui = q_i . p_u, or mu + b_u + b_i + q_i . p_u with ``biased=True``. Every epoch computes,
    with the factors at the start of the epoch,
    p_uf <- p_uf sum_{i in I_u} q_if r_ui / (sum_{i in I_u} q_if r^_ui + #I_u reg_pu p_uf)
    and the same for q_if over the item's users; factors that start non-negative stay so. The
    biases take one SGD step per rating (lr_bu, reg_bu, ...), in user order. The result depends
    only on ``random_state`` (the uniform initial factors in [init_low, init_high]), for any
    ``n_threads``.

    Unbiased NMF needs non-negative ratings.
    """

    def __init__(
        self,
        factors: int = 15,
        n_epochs: int = 50,
        biased: bool = False,
        reg_pu: float = 0.06,
        reg_qi: float = 0.06,
        reg_bu: float = 0.02,
        reg_bi: float = 0.02,
        lr_bu: float = 0.005,
        lr_bi: float = 0.005,
        init_low: float = 0.0,
        init_high: float = 1.0,
        rating_scale: tuple[float, float] | None = None,
        dtype: str = "float32",
        random_state: Any = None,
        n_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.n_epochs = n_epochs
        self.biased = biased
        self.reg_pu = reg_pu
        self.reg_qi = reg_qi
        self.reg_bu = reg_bu
        self.reg_bi = reg_bi
        self.lr_bu = lr_bu
        self.lr_bi = lr_bi
        self.init_low = init_low
        self.init_high = init_high
        self.rating_scale = rating_scale
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads

    def _init_state(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> None:
        low = _check_float(self.init_low, "init_low")
        high = _check_float(self.init_high, "init_high")
        if high <= low:
            raise ValueError(f"init_high must be > init_low, got init_low={low}, init_high={high}")
        if not self.biased and ratings.nnz and ratings.data.min() < 0:
            raise ValueError(
                "unbiased NMF needs non-negative ratings; shift them to be >= 0 or use biased=True"
            )
        n_users, n_items = ratings.shape
        k = check_positive_int(self.factors, "factors")
        self.user_factors_ = rng.uniform(low, high, (n_users, k)).astype(dtype)
        self.item_factors_ = rng.uniform(low, high, (n_items, k)).astype(dtype)
        self.user_bias_ = np.zeros(n_users, dtype=dtype)
        self.item_bias_ = np.zeros(n_items, dtype=dtype)

    def _make_step(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> Callable[[int], tuple[float, int]]:
        regs = {n: _check_float(getattr(self, n), n) for n in ("reg_pu", "reg_qi", "reg_bu", "reg_bi", "lr_bu", "lr_bi")}
        indptr = ratings.indptr.astype(np.int64)
        indices = ratings.indices.astype(np.int32)
        values = np.ascontiguousarray(ratings.data, dtype=dtype)
        item_indptr, item_users, item_entry = _by_item(ratings)
        biased = bool(self.biased)
        mu = float(self.global_mean_) if biased else 0.0
        threads = self._threads_now()

        def step(epoch: int) -> tuple[float, int]:
            return _kernels.nmf_epoch(
                indptr, indices, values, item_indptr, item_users, item_entry, self.user_factors_,
                self.item_factors_, self.user_bias_ if biased else None, self.item_bias_ if biased else None,
                mu, n_threads=threads, **regs,
            )

        return step


# ----------------------------------------------------------------------------------------
# ALS-WR
# ----------------------------------------------------------------------------------------
class ALSWR(_ExplicitFactorModel):
    """Alternating least squares with weighted-lambda regularization (Zhou et al. 2008).

    Minimises sum (r_ui - r^_ui)^2 + reg (sum_u n_u ‖p_u‖^2 + sum_i n_i ‖q_i‖^2), where n_u and
    n_i count the ratings of the user and the item, by solving every user's (then every item's)
    normal equations exactly: (Q_u^T Q_u + reg n_u I) p_u = Q_u^T r_u, by Cholesky. With
    ``biased=True`` (the default) the model is r^ = mu + b_u + b_i + q_i . p_u, and b_u is solved
    with p_u (the item vectors get a constant 1; the same weighted regularization applies to
    the bias). With ``biased=False`` it is Zhou et al.'s r^ = q_i . p_u, starting from item
    factors whose first column is the item's mean rating. A user or item without ratings gets
    zero factors. Deterministic for any ``n_threads``.

    Parameters
    ----------
    factors : int
    n_epochs : int
        Each epoch solves all users, then all items.
    reg : float
        lambda, weighted by each row's number of ratings.
    biased : bool
    init_std_dev : float
        Scale of the random initial item factors.
    """

    def __init__(
        self,
        factors: int = 20,
        n_epochs: int = 15,
        reg: float = 0.15,
        biased: bool = True,
        init_std_dev: float = 0.1,
        rating_scale: tuple[float, float] | None = None,
        dtype: str = "float32",
        random_state: Any = None,
        n_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.n_epochs = n_epochs
        self.reg = reg
        self.biased = biased
        self.init_std_dev = init_std_dev
        self.rating_scale = rating_scale
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads

    init_mean = 0.0

    def _init_state(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> None:
        n_users, n_items = ratings.shape
        k = check_positive_int(self.factors, "factors")
        _check_float(self.reg, "reg", positive=True)
        self.user_factors_ = np.zeros((n_users, k), dtype=dtype)
        self.item_factors_ = self._normal(rng, (n_items, k), dtype)
        self.user_bias_ = np.zeros(n_users, dtype=dtype)
        self.item_bias_ = np.zeros(n_items, dtype=dtype)
        if not self.biased:
            counts = np.bincount(ratings.indices, minlength=n_items)
            sums = np.bincount(ratings.indices, weights=ratings.data, minlength=n_items)
            mean = np.divide(sums, counts, out=np.full(n_items, float(self.global_mean_)), where=counts > 0)
            self.item_factors_[:, 0] = mean

    def _make_step(self, ratings: sp.csr_matrix, dtype: np.dtype, rng: np.random.Generator) -> Callable[[int], tuple[float, int]]:
        reg = _check_float(self.reg, "reg", positive=True)
        indptr = ratings.indptr.astype(np.int64)
        indices = ratings.indices.astype(np.int32)
        values = np.ascontiguousarray(ratings.data, dtype=dtype)
        t_indptr, t_indices, order = _by_item(ratings)
        t_values = np.ascontiguousarray(values[order])
        biased = bool(self.biased)
        mu = float(self.global_mean_) if biased else 0.0
        threads = self._threads_now()

        def step(epoch: int) -> tuple[float, int]:
            ub = self.user_bias_ if biased else None
            ib = self.item_bias_ if biased else None
            _kernels.als_wr_sweep(indptr, indices, values, self.item_factors_, ib, self.user_factors_, ub,
                                  reg=reg, global_mean=mu, n_threads=threads)
            return _kernels.als_wr_sweep(t_indptr, t_indices, t_values, self.user_factors_, ub, self.item_factors_,
                                         ib, reg=reg, global_mean=mu, n_threads=threads)

        return step
