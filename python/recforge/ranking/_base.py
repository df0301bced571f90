"""What every ranker shares: parameters, input checks, query groups and persistence."""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._persistence import json_params, read_npz, write_npz
from .._validation import resolve_threads
from ..base import Estimator, NotFittedError

FORMAT_VERSION = 1
_REGISTRY: dict[str, type[Ranker]] = {}


def as_features(X: Any, name: str = "X", n_features: int | None = None) -> tuple[np.ndarray, list[str] | None]:
    """A C-contiguous float32 matrix; NaN stays (it means missing), text or objects are refused."""
    names = None
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        bad = [c for c in X.columns if X[c].dtype.kind not in "fiub"]
        if bad:
            raise ValueError(f"{name} has non-numeric columns {bad[:5]}; encode them as numbers first")
        X = X.to_numpy(dtype=np.float32, na_value=np.nan)
    elif sp.issparse(X):
        X = X.toarray()
    arr = np.asarray(X)
    if arr.ndim == 1 and n_features is not None and arr.shape[0] == n_features:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows x features), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features but the model was fitted on {n_features}")
    return arr, names


def as_labels(y: Any, n_rows: int, name: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per row), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} labels but X has {n_rows} rows")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite labels; every row needs a finite label")
    return arr


def group_offsets(group: Any, qid: Any, n_rows: int, name: str = "group") -> np.ndarray:
    """Offsets (n_queries + 1, int64) of contiguous queries from group sizes or per-row query ids.

    ``group`` holds query sizes in row order (LightGBM's ``group``) or, when it has one entry
    per row and its values do not sum to the row count, per-row query ids. ``qid`` always holds
    per-row query ids. The rows of a query must be contiguous.
    """
    if group is not None and qid is not None:
        raise ValueError(f"give either {name} (sizes or ids) or qid, not both")
    if group is None and qid is None:
        return np.array([0, n_rows], dtype=np.int64)
    if group is not None:
        g = np.asarray(group)
        if g.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {g.shape}")
        is_int = g.dtype.kind in "iu" or (
            g.dtype.kind == "f" and np.isfinite(g).all() and np.all(g == np.round(g))
        )
        sums_to_n = is_int and g.size > 0 and bool(np.all(g >= 0)) and int(g.sum()) == n_rows
        per_row = g.shape[0] == n_rows
        if sums_to_n and per_row and n_rows > 0:
            raise ValueError(
                f"{name} is ambiguous: it has one entry per row and also sums to the row count; "
                "pass query sizes as group= with fewer entries than rows, or per-row query ids as qid="
            )
        if sums_to_n:
            sizes = g.astype(np.int64)
            return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if per_row:
            qid = g
        else:
            total = int(g.sum()) if is_int else None
            raise ValueError(
                f"{name} must hold query sizes that sum to the {n_rows} rows (they sum to {total}) "
                f"or one query id per row ({g.shape[0]} entries given)"
            )
    q = np.asarray(qid)
    if q.ndim != 1 or q.shape[0] != n_rows:
        raise ValueError(f"qid must have one query id per row ({n_rows}), got shape {q.shape}")
    if n_rows == 0:
        return np.array([0], dtype=np.int64)
    if q.dtype.kind == "f" and not np.isfinite(q).all():
        raise ValueError("qid contains NaN or infinite query ids")
    change = np.flatnonzero(q[1:] != q[:-1]) + 1
    starts = np.concatenate([[0], change])
    firsts = q[starts]
    uniq, counts = np.unique(firsts, return_counts=True)
    if (counts > 1).any():
        shown = ", ".join(repr(v) for v in uniq[counts > 1][:5].tolist())
        raise ValueError(
            f"the rows of query id(s) {shown} are not contiguous; sort the rows by query id "
            "(e.g. with a stable argsort of qid) so every query's rows are together"
        )
    return np.concatenate([starts, [n_rows]]).astype(np.int64)


def check_real(value: Any, name: str, low: float | None = None, high: float | None = None,
               low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def seed_of(random_state: Any) -> int:
    if random_state is None:
        return int(np.random.default_rng().integers(0, 2**63))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state) & ((1 << 64) - 1)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63))
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")


class Ranker(Estimator):
    """Base class of the rankers: sklearn-style parameters, ``.npz`` persistence and pickling.

    Learned state lives in NumPy arrays (and plain numbers) in attributes ending with ``_``,
    listed in ``_learned``; that is what :meth:`save` writes.
    """

    _learned: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    @property
    def is_fitted(self) -> bool:
        return all(hasattr(self, n) for n in self._learned)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y, group=...) first")

    def _threads(self, n_threads: int | None = None) -> int:
        return resolve_threads(getattr(self, "n_threads", 0) if n_threads is None else n_threads)

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted ranker to an ``.npz`` file (no pickle inside); returns the path."""
        self._check_fitted()
        arrays = {}
        extra = {}
        for name in self._learned:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                arrays[name] = value
            else:
                extra[name] = value
        arrays["__extra__"] = np.array(json.dumps(extra))
        return write_npz(path, type(self).__name__, FORMAT_VERSION, json_params(self.get_params(), "ranker"), arrays)

    @classmethod
    def load(cls, path: str | Path) -> Ranker:
        """Read a ranker written by :meth:`save`."""
        name, params, contents = read_npz(path, "ranker", FORMAT_VERSION, required=("__extra__",))
        target = _REGISTRY.get(name)
        if target is None:
            raise ValueError(f"{path} holds an unknown ranker class {name!r}")
        if cls is not Ranker and not issubclass(target, cls):
            raise ValueError(f"{path} holds a {name}, not a {cls.__name__}")
        try:
            extra = json.loads(str(contents.pop("__extra__")))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} holds corrupt parameters ({exc})") from exc
        model = target(**params)
        for k, v in extra.items():
            setattr(model, k, v)
        for k, v in contents.items():
            setattr(model, k, v)
        missing = [n for n in target._learned if not hasattr(model, n)]
        if missing:
            raise ValueError(f"{path} is incomplete: missing {missing}")
        try:
            model._check_state()
        except (ValueError, IndexError, TypeError) as exc:
            raise ValueError(f"{path} holds an inconsistent {name}: {exc}") from exc
        return model

    def _check_state(self) -> None:  # pragma: no cover - subclasses extend
        pass

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["__format_version__"] = FORMAT_VERSION
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        version = state.pop("__format_version__", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"pickled by a newer recforge (format {version}); upgrade recforge")
        self.__dict__.update(state)

    # -- ranking --------------------------------------------------------------------------
    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def rank(self, X: Any, group: Any = None, *, qid: Any = None, n_threads: int | None = None) -> list[np.ndarray]:
        """Per-query orderings: for each query, its rows' positions within the query, best first.

        ``group`` / ``qid`` as in ``fit``; without them all rows form one query. Ties keep the
        input order.
        """
        scores = self.predict(X, n_threads=n_threads)
        offsets = group_offsets(group, qid, scores.shape[0])
        return [np.argsort(-scores[a:b], kind="stable") for a, b in zip(offsets[:-1], offsets[1:])]
