"""The contract every recforge recommender follows.

A recommender is fitted on :class:`~recforge.Interactions` (or a scipy.sparse users x items
matrix, or a pandas DataFrame with ``user`` and ``item`` columns) and then answers
``recommend``, ``score``, ``save``/``load`` and pickling the same way, whatever the model.

Ids
    Users and items are named by their *raw* ids (the ids in your data) by default and results
    come back as raw ids. Pass ``ids="index"`` to work with the integer indices of the
    :class:`~recforge.Interactions` id maps instead; for a model fitted on a bare sparse matrix
    the two are the same.
"""

from __future__ import annotations

import inspect
import numbers
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._persistence import json_params, read_npz, write_npz
from ._validation import RowLists, as_index_array, check_positive_int, resolve_threads
from .data import Interactions

__all__ = ["NotFittedError", "Recommender", "as_interactions"]

IdKind = Literal["raw", "index"]

FORMAT_VERSION = 1
_REGISTRY: dict[str, type[Recommender]] = {}


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``."""


def as_interactions(data: Any) -> Interactions:
    """Accept Interactions, a scipy.sparse users x items matrix or a DataFrame with user/item."""
    if isinstance(data, Interactions):
        return data
    if sp.issparse(data):
        return Interactions.from_scipy(data)
    if isinstance(data, pd.DataFrame):
        return Interactions.from_pandas(data)
    raise ValueError(
        "expected recforge.Interactions, a scipy.sparse users x items matrix or a pandas "
        f"DataFrame with 'user' and 'item' columns, got {type(data).__name__}"
    )


def _ids_for_npz(ids: np.ndarray, what: str) -> np.ndarray:
    if ids.dtype.kind in "iufUSb":
        return ids
    try:
        as_str = ids.astype(str)
    except Exception as exc:  # pragma: no cover - astype(str) rarely fails
        raise ValueError(f"cannot save {what}: {exc}") from exc
    if not all(isinstance(v, str) for v in ids.tolist()):
        raise ValueError(
            f"cannot save {what} of mixed types without pickle; use integer or string ids"
        )
    return as_str


def lookup_ids(table: dict[Any, int], values: Any, what: str, hint: str, dtype: Any = np.int64) -> np.ndarray:
    """Indices of raw ids through an id -> index table, in the shape of ``values``; an
    IndexError names the first unknown ids (``what``) and ends with ``hint``."""
    arr = np.asarray(values)
    flat = arr.ravel().tolist()
    out = np.empty(len(flat), dtype=dtype)
    missing = []
    for pos, v in enumerate(flat):
        idx = table.get(v)
        if idx is None:
            missing.append(v)
            out[pos] = -1
        else:
            out[pos] = idx
    if missing:
        shown = ", ".join(repr(v) for v in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise IndexError(f"unknown {what}: {shown}{more}; {hint}")
    return out.reshape(arr.shape)


def raw_ids(ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Raw ids of indices; padded slots (-1) become -1, NaN or None as in ``recommend``."""
    pad = idx < 0
    if not pad.any():
        return ids[idx]
    if ids.dtype.kind in "iu":
        out = ids[np.where(pad, 0, idx)].astype(np.int64)
        out[pad] = -1
    elif ids.dtype.kind == "f":
        out = ids[np.where(pad, 0, idx)].astype(np.float64)
        out[pad] = np.nan
    else:
        out = ids[np.where(pad, 0, idx)].astype(object)
        out[pad] = None
    return out


class Estimator:
    """scikit-learn's parameter conventions: keyword hyperparameters stored as given in
    ``__init__``, ``get_params`` / ``set_params`` and a ``repr`` that shows them."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set hyperparameters; unknown names raise ``ValueError``."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; valid: {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class Recommender(Estimator):
    """Base class of all recforge recommenders.

    Subclasses implement ``_fit(data)`` and either ``_dense_scores(user_idx)`` (scores of all
    items for a block of users) or ``_recommend_indices``; learned state lives in NumPy arrays
    in attributes ending with ``_``, which is what ``save``/``load`` and pickling store.
    """

    _learned: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # -- fitting --------------------------------------------------------------------------
    def fit(self, interactions: Any, **fit_params: Any) -> Recommender:
        """Learn from a users x items interaction set; returns ``self``.

        Keyword arguments (e.g. ``eval_set=``, ``show_progress=``) go to the model's ``_fit``.
        """
        data = as_interactions(interactions)
        if data.nnz == 0:
            raise ValueError("cannot fit on an empty interaction set: it has no interactions")
        matrix = data.matrix.tocsr()
        self.user_ids_ = np.asarray(data.user_ids)
        self.item_ids_ = np.asarray(data.item_ids)
        self.seen_ = sp.csr_matrix(
            (np.ones(matrix.nnz, dtype=np.float32), matrix.indices, matrix.indptr), shape=matrix.shape
        )
        self._user_lookup = None
        self._item_lookup = None
        self._fit(data, **fit_params)
        return self

    def _fit(self, data: Interactions, **fit_params: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "seen_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(interactions) first"
            )

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return int(self.seen_.shape[0])

    @property
    def n_items_(self) -> int:
        self._check_fitted()
        return int(self.seen_.shape[1])

    # -- ids ------------------------------------------------------------------------------
    def _lookup(self, kind: str) -> dict[Any, int]:
        attr = f"_{kind}_lookup"
        table = getattr(self, attr, None)
        if table is None:
            ids = self.user_ids_ if kind == "user" else self.item_ids_
            table = {v: i for i, v in enumerate(ids.tolist())}
            setattr(self, attr, table)
        return table

    def _to_index(self, values: Any, kind: str, ids: IdKind) -> np.ndarray:
        n = self.n_users_ if kind == "user" else self.n_items_
        if ids == "index":
            return as_index_array(values, n, f"{kind} indices")
        if ids != "raw":
            raise ValueError(f"ids must be 'raw' or 'index', got {ids!r}")
        return lookup_ids(
            self._lookup(kind), values, f"{kind} id(s)",
            f"the model knows {n} {kind}s from fit (pass ids='index' for integer indices)",
        )

    def _to_raw_items(self, idx: np.ndarray) -> np.ndarray:
        return raw_ids(self.item_ids_, idx)

    # -- recommending ---------------------------------------------------------------------
    def recommend(
        self,
        users: Any,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        ids: IdKind = "raw",
        n_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for one user or a batch of users.

        Parameters
        ----------
        users : id or array of ids
            A single user gives 1-D results; an array gives one row per user.
        n : int
            Items per user; must not exceed the number of items that can be recommended.
        exclude_seen : bool
            Leave out the items each user interacted with in the training data.
        items : array of ids, optional
            Recommend only from these items (an availability rule).
        ids : {"raw", "index"}
            Whether ``users``/``items`` and the returned items are raw ids or indices.
        n_threads : int, optional
            Threads for this call; defaults to the model's ``n_threads`` (0 = all cores).

        Returns
        -------
        item_ids, scores
            Best first, ties broken by item index. If exclusions leave a user fewer than ``n``
            items, the remaining slots hold score ``-inf`` and item ``-1`` (index ids, integer
            raw ids), NaN (float raw ids) or ``None`` (other raw ids).
        """
        self._check_fitted()
        n = check_positive_int(n, "n")
        single = np.ndim(users) == 0
        user_idx = self._to_index(np.atleast_1d(users) if not single else [users], "user", ids)
        if user_idx.ndim != 1:
            raise ValueError(f"users must be a single id or a 1-D array, got shape {user_idx.shape}")
        candidates = None
        if items is not None:
            item_arr = np.atleast_1d(items)
            if item_arr.size == 0:
                raise ValueError("items is empty: pass at least one candidate item or None for all")
            candidates = np.unique(self._to_index(item_arr, "item", ids)).astype(np.int32)
        n_search = self.n_items_ if candidates is None else candidates.size
        if n > n_search:
            what = "candidate items" if candidates is not None else "items in the catalog"
            raise ValueError(f"n={n} is larger than the {n_search} {what}; ask for at most {n_search}")
        exclude = RowLists.rows_of(self.seen_, user_idx) if exclude_seen else None
        threads = resolve_threads(self._threads() if n_threads is None else n_threads)
        top, scores = self._recommend_indices(user_idx, n, exclude, candidates, threads)
        out_items = top if ids == "index" else self._to_raw_items(top)
        if single:
            return out_items[0], scores[0]
        return out_items, scores

    def _threads(self) -> int:
        return int(getattr(self, "n_threads", 0) or 0)

    def _recommend_indices(
        self,
        user_idx: np.ndarray,
        n: int,
        exclude: RowLists | None,
        candidates: np.ndarray | None,
        n_threads: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Default: score users in blocks with ``_dense_scores`` and select in C++."""
        from .retrieval import topk_dense

        n_users = len(user_idx)
        tops = np.empty((n_users, n), dtype=np.int32)
        vals = np.empty((n_users, n), dtype=np.float32)
        block = max(1, (1 << 22) // max(self.n_items_, 1))
        for start in range(0, n_users, block):
            stop = min(n_users, start + block)
            scores = self._dense_scores(user_idx[start:stop])
            ex = exclude[start:stop] if exclude is not None else None
            t, s = topk_dense(scores, n, exclude=ex, candidates=candidates, n_threads=n_threads)
            tops[start:stop], vals[start:stop] = t, s
        return tops, vals

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, users: Any, items: Any, *, ids: IdKind = "raw") -> np.ndarray:
        """Model scores of (user, item) pairs; ``users`` and ``items`` broadcast together."""
        self._check_fitted()
        u, i = np.broadcast_arrays(np.asarray(users), np.asarray(items))
        shape = u.shape
        u_idx = self._to_index(u.ravel(), "user", ids)
        i_idx = self._to_index(i.ravel(), "item", ids)
        return self._score_pairs(u_idx, i_idx).reshape(shape)

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        out = np.empty(len(user_idx), dtype=np.float32)
        if len(user_idx) == 0:
            return out
        order = np.argsort(user_idx, kind="stable")
        users_sorted = user_idx[order]
        uniq, starts = np.unique(users_sorted, return_index=True)
        bounds = list(starts) + [len(order)]
        block = max(1, (1 << 22) // max(self.n_items_, 1))
        for b in range(0, len(uniq), block):
            dense = self._dense_scores(uniq[b : b + block])
            for j in range(dense.shape[0]):
                rows = order[bounds[b + j] : bounds[b + j + 1]]
                out[rows] = dense[j, item_idx[rows]]
        return out

    # -- persistence ----------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        state = {
            "user_ids_": _ids_for_npz(self.user_ids_, "user ids"),
            "item_ids_": _ids_for_npz(self.item_ids_, "item ids"),
            "seen_indptr_": self.seen_.indptr.astype(np.int64),
            "seen_indices_": self.seen_.indices.astype(np.int32),
            "seen_shape_": np.asarray(self.seen_.shape, dtype=np.int64),
        }
        for name in self._learned:
            state[name] = np.asarray(getattr(self, name))
        return state

    def _restore_arrays(self, state: dict[str, np.ndarray]) -> None:
        shape = tuple(int(v) for v in state["seen_shape_"])
        indices = state["seen_indices_"]
        self.user_ids_ = state["user_ids_"]
        self.item_ids_ = state["item_ids_"]
        self.seen_ = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, state["seen_indptr_"]), shape=shape
        )
        self._user_lookup = None
        self._item_lookup = None
        for name in self._learned:
            setattr(self, name, state[name])

    def _json_params(self) -> str:
        return json_params(self.get_params(), "model")

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to an ``.npz`` file (no pickle inside); returns the path."""
        self._check_fitted()
        return write_npz(path, type(self).__name__, FORMAT_VERSION, self._json_params(), self._state_arrays())

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a model written by :meth:`save`; ``Recommender.load`` finds the class itself."""
        name, params, contents = read_npz(path, "model", FORMAT_VERSION)
        target = _REGISTRY.get(name)
        if target is None:
            raise ValueError(f"{path} holds an unknown model class {name!r}")
        if cls is not Recommender and not issubclass(target, cls):
            raise ValueError(f"{path} holds a {name}, not a {cls.__name__}")
        model = target(**params)
        required = set(target._learned) | {"user_ids_", "item_ids_", "seen_indptr_", "seen_indices_", "seen_shape_"}
        missing = required - set(contents)
        if missing:
            raise ValueError(f"{path} is incomplete: missing {sorted(missing)}")
        try:
            model._restore_arrays(contents)
            model._check_state()
        except (ValueError, IndexError, TypeError) as exc:
            raise ValueError(f"{path} holds an inconsistent {name}: {exc}") from exc
        return model

    def _check_state(self) -> None:
        """Cheap consistency checks of restored state; subclasses extend."""
        n_users, n_items = self.seen_.shape
        if len(self.user_ids_) != n_users or len(self.item_ids_) != n_items:
            raise ValueError("id maps do not match the interaction shape")
        self.seen_.check_format(full_check=True)

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_user_lookup", "_item_lookup")}
        state["__format_version__"] = FORMAT_VERSION
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        version = state.pop("__format_version__", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"pickled by a newer recforge (format {version}); upgrade recforge")
        self.__dict__.update(state)
        self._user_lookup = None
        self._item_lookup = None


def check_random_state(random_state: Any) -> np.random.Generator:
    """A NumPy Generator from None, an int seed or a Generator."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")
