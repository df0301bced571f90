"""The :class:`Interactions` container: raw-id maps plus a users x items CSR matrix.

Everything in recforge that learns from or evaluates on user-item feedback takes an
:class:`Interactions`. It owns

* the raw-id maps in both directions (``user_ids[index] -> raw id`` and
  :meth:`Interactions.user_index` for raw id -> index),
* a canonical ``scipy.sparse.csr_matrix`` of float32 weights (rows = users, columns = items),
* optional per-entry ``ratings`` and ``timestamps`` aligned 1:1 with the CSR entries,
* optional ``user_features`` / ``item_features`` tables, one row per user / item.

This module is pure Python (NumPy, SciPy, pandas) and does not need the compiled extension.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["Interactions"]

Aggregate = Literal["sum", "max", "last", "first"]
Unknown = Literal["raise", "drop"]

_AGGREGATES: tuple[str, ...] = ("sum", "max", "last", "first")
_UNKNOWN: tuple[str, ...] = ("raise", "drop")
_MAX_EXAMPLES = 5


# ----------------------------------------------------------------------------------------
# coercion helpers
# ----------------------------------------------------------------------------------------
def _to_numpy(values: Any) -> np.ndarray:
    """Return ``values`` as a NumPy array without copying where possible."""
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    return np.asarray(values)


def _examples(values: np.ndarray) -> str:
    """Format up to five example values for an error message."""
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:_MAX_EXAMPLES])
    more = ", ..." if len(values) > _MAX_EXAMPLES else ""
    return f"[{shown}{more}]"


def _rows(k: int) -> str:
    return f"{k:,} row" if k == 1 else f"{k:,} rows"


def _coerce_ids(values: Any, what: str) -> np.ndarray:
    """Coerce raw ids to a 1-D array: int64 for integers, object for strings.

    Floats that are all whole numbers (as pandas produces after NaN handling) become int64.

    Raises
    ------
    ValueError
        If the ids are not one-dimensional, contain missing values (None/NaN) or mix types.
    """
    arr = _to_numpy(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got an array of shape {arr.shape}")
    kind = arr.dtype.kind
    if kind in "iu":
        if kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{what} contain unsigned values that do not fit in int64")
        return arr.astype(np.int64, copy=False)
    if kind == "b":
        return arr.astype(np.int64)
    if kind == "f":
        missing = np.isnan(arr)
        if missing.any():
            raise ValueError(
                f"missing ids in {what}: {_rows(int(missing.sum()))} NaN; "
                "drop those rows before building Interactions"
            )
        if np.all(np.mod(arr, 1) == 0):
            return arr.astype(np.int64)
        return arr.astype(np.float64, copy=False)
    if kind in "US":
        return arr.astype(object)
    if kind == "O":
        missing = pd.isna(arr)
        if missing.any():
            raise ValueError(
                f"missing ids in {what}: {_rows(int(missing.sum()))} None/NaN; "
                "drop those rows before building Interactions"
            )
        inferred = pd.api.types.infer_dtype(arr, skipna=False)
        if inferred == "integer":
            return arr.astype(np.int64)
        if inferred in ("string", "bytes", "empty"):
            return arr
        if inferred in ("floating", "mixed-integer-float"):
            return _coerce_ids(arr.astype(np.float64), what)
        if inferred.startswith("mixed"):
            raise ValueError(
                f"ids in {what} mix several types ({inferred}); convert them to one type first, "
                "e.g. df[col].astype(str)"
            )
        return arr
    raise ValueError(f"ids in {what} have an unsupported dtype {arr.dtype}; use integers or strings")


def _coerce_universe(values: Any, what: str) -> np.ndarray:
    """Coerce an explicit id universe and check it has no duplicates."""
    ids = _coerce_ids(values, what)
    index = pd.Index(ids)
    if not index.is_unique:
        dup = index[index.duplicated()].unique().to_numpy()
        raise ValueError(f"{what} must be unique; duplicated ids: {_examples(dup)}")
    return ids


def _coerce_weights(values: Any, what: str, n: int) -> np.ndarray:
    """Coerce weights/ratings to float64 and reject NaN/inf."""
    try:
        arr = np.asarray(_to_numpy(values), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got an array of shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{what} has length {arr.shape[0]:,} but there are {n:,} interactions")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{what} has {_rows(int(bad.sum()))} with NaN or infinite values; "
            "drop or fill them before building Interactions"
        )
    return arr


def _coerce_timestamps(values: Any, what: str, n: int) -> np.ndarray:
    """Coerce timestamps to int64 or float64; datetimes become int64 Unix seconds."""
    if isinstance(values, (pd.Series, pd.Index)) and (
        pd.api.types.is_datetime64_any_dtype(values.dtype)
    ):
        arr = _datetimes_to_seconds(values)
    else:
        arr = np.asarray(_to_numpy(values))
        if arr.dtype.kind == "M":
            arr = _datetimes_to_seconds(arr)
        elif arr.dtype.kind == "O":
            try:
                arr = np.asarray(pd.to_numeric(arr))
            except (TypeError, ValueError):
                raise ValueError(f"{what} must be numeric or datetime") from None
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got an array of shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{what} has length {arr.shape[0]:,} but there are {n:,} interactions")
    kind = arr.dtype.kind
    if kind in "iub":
        return arr.astype(np.int64, copy=False)
    if kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{what} has {_rows(int(bad.sum()))} with NaN or infinite values; "
                "drop or fill them before building Interactions"
            )
        return arr.astype(np.float64, copy=False)
    raise ValueError(f"{what} must be numeric or datetime, got dtype {arr.dtype}")


def _datetimes_to_seconds(values: Any) -> np.ndarray:
    """Convert datetime-like values (naive = UTC) to int64 Unix seconds."""
    index = pd.DatetimeIndex(values)
    if index.hasnans:
        raise ValueError(f"timestamps have {int(index.isna().sum()):,} missing values (NaT)")
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    ns = index.as_unit("ns").asi8
    return np.floor_divide(ns, 1_000_000_000).astype(np.int64)


def _prepare_features(features: Any, ids: np.ndarray, what: str) -> pd.DataFrame | None:
    """Align a feature table with the index order given by ``ids``.

    * ``None`` -> ``None``.
    * An array, or a DataFrame/Series with a default ``RangeIndex`` (0..n-1) and exactly
      ``len(ids)`` rows, is taken as one row per id in index order.
    * Any other DataFrame/Series is treated as indexed by raw id and reindexed to ``ids``
      (ids missing from the table get NaN rows, extra ids are ignored).
    """
    if features is None:
        return None
    n = len(ids)
    name = "user" if what == "user" else "item"
    target = pd.Index(ids, name=name)
    if isinstance(features, pd.Series):
        features = features.to_frame(name=features.name if features.name is not None else "f0")
    if isinstance(features, pd.DataFrame):
        index = features.index
        default_index = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
        if len(index) == n and (default_index or index.equals(target)):
            out = features.copy(deep=False)
        else:
            if not index.is_unique:
                dup = index[index.duplicated()].unique().to_numpy()
                raise ValueError(
                    f"{what}_features index has duplicated {what} ids: {_examples(dup)}"
                )
            if n and not index.isin(target).any():
                raise ValueError(
                    f"{what}_features has {len(features):,} rows for {n:,} {what}s and none "
                    f"of its index values match the {what} ids (index starts "
                    f"{_examples(index.to_numpy())}, ids start {_examples(ids)}); index the "
                    f"table by raw {what} id (e.g. df.set_index('{name}')) or pass exactly "
                    f"one row per {what} in index order"
                )
            out = features.reindex(target)
        out.index = target
        return out
    arr = np.asarray(features)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{what}_features must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(
            f"{what}_features has {arr.shape[0]:,} rows but there are {n:,} {what}s"
        )
    return pd.DataFrame(arr, index=target, columns=[f"f{j}" for j in range(arr.shape[1])])


def _unknown_error(values: np.ndarray, what: str, param: str) -> IndexError:
    uniq = pd.unique(values)
    return IndexError(
        f"{len(uniq):,} {what} id(s) are not in the given {param}: {_examples(uniq)}. "
        f"Add them to {param} (the id universe), or pass unknown='drop' to drop those rows"
    )


# ----------------------------------------------------------------------------------------
# the container
# ----------------------------------------------------------------------------------------
class Interactions:
    """User-item interactions with raw-id maps, a CSR weight matrix and optional extras.

    Build one with :meth:`from_pandas`, :meth:`from_arrays` or :meth:`from_scipy`. The
    object is treated as immutable: every transformation (:meth:`subset`, :meth:`filter`,
    :meth:`k_core`) returns a new one, and arrays are shared rather than copied where
    possible, so do not modify the returned arrays in place.

    **Index order.** Without explicit ``user_ids`` / ``item_ids`` the users and items are
    indexed in sorted order of their unique raw ids. Passing ``user_ids`` / ``item_ids``
    (for example a training set's ``user_ids``) fixes the index order and the matrix shape;
    rows whose ids are not in them raise an ``IndexError`` (``unknown="raise"``) or are
    silently dropped (``unknown="drop"``). Ids from the universe that have no interactions
    are kept as empty rows/columns.

    **Weights.** The matrix holds the weight column if one is given, else the rating column,
    else 1.0. Weights and ratings must be finite. Entries of weight 0 are kept.

    **Duplicate (user, item) rows** are merged according to ``aggregate``:

    ``"sum"``
        the weights are summed; the timestamp is the latest of the duplicates.
    ``"max"``
        the largest weight is kept; the timestamp is the latest of the duplicates.
    ``"last"``
        the weight and timestamp of the latest row are kept.
    ``"first"``
        the weight and timestamp of the earliest row are kept.

    "Latest"/"earliest" are by timestamp; ties, and data without timestamps, fall back to
    input order (a later row is later). The rating kept is the rating of the kept row for
    ``"first"`` and ``"last"`` and the rating of the latest row for ``"sum"`` and ``"max"``.

    **Timestamps** are stored as int64 (integers, or datetimes converted to Unix seconds)
    or float64, aligned 1:1 with ``matrix.data``/``matrix.indices``.

    **Features** are one-row-per-user/item DataFrames indexed by raw id. Pass either an
    array, or a DataFrame with a default ``RangeIndex``, holding exactly one row per
    user/item in index order; or a DataFrame indexed by raw id (it is reindexed: ids
    missing from it get NaN rows, extra ids are ignored). A ``RangeIndex`` table whose
    length differs from the number of users/items is aligned by id.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": ["a", "a", "b"], "item": [10, 20, 10], "rating": [4, 5, 3]})
    >>> data = Interactions.from_pandas(df, rating_col="rating")
    >>> data.shape
    (2, 2)
    >>> int(data.user_index("b"))
    1
    """

    # ------------------------------------------------------------------ construction
    def __init__(
        self,
        matrix: sp.csr_matrix,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        *,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        user_features: Any = None,
        item_features: Any = None,
    ) -> None:
        """Low-level constructor from a canonical CSR matrix and aligned arrays.

        Prefer :meth:`from_pandas`, :meth:`from_arrays` or :meth:`from_scipy`, which
        validate input and merge duplicates. ``matrix`` must be canonical (sorted indices,
        no duplicate entries); ``ratings``/``timestamps`` must follow its entry order.
        """
        if not sp.issparse(matrix) or matrix.format != "csr":
            raise TypeError("matrix must be a scipy.sparse CSR matrix; use Interactions.from_scipy")
        user_ids = _coerce_universe(user_ids, "user_ids")
        item_ids = _coerce_universe(item_ids, "item_ids")
        if matrix.shape != (len(user_ids), len(item_ids)):
            raise ValueError(
                f"matrix shape {matrix.shape} does not match "
                f"{len(user_ids):,} user ids x {len(item_ids):,} item ids"
            )
        if not matrix.has_canonical_format:
            raise ValueError(
                "matrix must be canonical (sorted indices, no duplicates); "
                "use Interactions.from_scipy to merge duplicates"
            )
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        nnz = matrix.nnz
        if ratings is not None:
            ratings = _coerce_weights(ratings, "ratings", nnz).astype(np.float32)
        if timestamps is not None:
            timestamps = _coerce_timestamps(timestamps, "timestamps", nnz)
        self._set(
            matrix,
            user_ids,
            item_ids,
            ratings,
            timestamps,
            _prepare_features(user_features, user_ids, "user"),
            _prepare_features(item_features, item_ids, "item"),
        )

    def _set(
        self,
        matrix: sp.csr_matrix,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        ratings: np.ndarray | None,
        timestamps: np.ndarray | None,
        user_features: pd.DataFrame | None,
        item_features: pd.DataFrame | None,
    ) -> None:
        self._matrix = matrix
        self._user_ids = user_ids
        self._item_ids = item_ids
        self._ratings = ratings
        self._timestamps = timestamps
        self._user_features = user_features
        self._item_features = item_features
        self._user_map: dict[Hashable, int] | None = None
        self._item_map: dict[Hashable, int] | None = None
        self._user_lookup: pd.Index | None = None
        self._item_lookup: pd.Index | None = None

    @classmethod
    def _new(
        cls,
        matrix: sp.csr_matrix,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        ratings: np.ndarray | None,
        timestamps: np.ndarray | None,
        user_features: pd.DataFrame | None,
        item_features: pd.DataFrame | None,
    ) -> Interactions:
        """Assemble from already validated parts (no checks, no copies)."""
        obj = cls.__new__(cls)
        obj._set(matrix, user_ids, item_ids, ratings, timestamps, user_features, item_features)
        return obj

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        user_col: str = "user",
        item_col: str = "item",
        weight_col: str | None = None,
        rating_col: str | None = None,
        timestamp_col: str | None = None,
        *,
        aggregate: Aggregate = "sum",
        user_features: Any = None,
        item_features: Any = None,
        user_ids: Any = None,
        item_ids: Any = None,
        unknown: Unknown = "raise",
    ) -> Interactions:
        """Build from a DataFrame with one row per interaction.

        Parameters
        ----------
        df : pandas.DataFrame
            The interactions.
        user_col, item_col : str
            Columns holding raw user and item ids (integers or strings).
        weight_col : str, optional
            Column with the matrix weights (e.g. play counts). Defaults to ``rating_col``
            if given, else every interaction has weight 1.
        rating_col : str, optional
            Column with explicit ratings, stored as ``ratings`` (float32).
        timestamp_col : str, optional
            Column with numeric or datetime timestamps, stored as ``timestamps``.
        aggregate : {"sum", "max", "last", "first"}
            How duplicate (user, item) rows are merged; see the class docstring.
        user_features, item_features : DataFrame or array, optional
            Side information; see the class docstring for alignment rules.
        user_ids, item_ids : array-like, optional
            A fixed id universe that defines the index order (e.g. ``train.user_ids``).
        unknown : {"raise", "drop"}
            What to do with rows whose ids are not in ``user_ids``/``item_ids``: raise an
            ``IndexError`` naming examples, or drop those rows silently.

        Returns
        -------
        Interactions

        Raises
        ------
        ValueError
            Missing columns, missing ids, non-finite weights or ratings, empty input, or an
            unknown ``aggregate``.
        IndexError
            Ids outside ``user_ids``/``item_ids`` with ``unknown="raise"``.
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        for label, col in (
            ("user_col", user_col),
            ("item_col", item_col),
            ("weight_col", weight_col),
            ("rating_col", rating_col),
            ("timestamp_col", timestamp_col),
        ):
            if col is not None and col not in df.columns:
                raise ValueError(
                    f"{label}={col!r} is not a column of the DataFrame "
                    f"(columns: {list(df.columns)})"
                )
        return cls._build(
            df[user_col],
            df[item_col],
            None if weight_col is None else df[weight_col],
            ratings=None if rating_col is None else df[rating_col],
            timestamps=None if timestamp_col is None else df[timestamp_col],
            aggregate=aggregate,
            user_features=user_features,
            item_features=item_features,
            user_ids=user_ids,
            item_ids=item_ids,
            unknown=unknown,
            names=(
                f"user column {user_col!r}",
                f"item column {item_col!r}",
                f"weight column {weight_col!r}",
                f"rating column {rating_col!r}",
                f"timestamp column {timestamp_col!r}",
            ),
        )

    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        weights: Any = None,
        *,
        ratings: Any = None,
        timestamps: Any = None,
        aggregate: Aggregate = "sum",
        user_features: Any = None,
        item_features: Any = None,
        user_ids: Any = None,
        item_ids: Any = None,
        unknown: Unknown = "raise",
    ) -> Interactions:
        """Build from parallel arrays, one element per interaction.

        Parameters
        ----------
        users, items : array-like
            Raw user and item ids (integers or strings), same length.
        weights : array-like, optional
            Matrix weights; default ``ratings`` if given, else 1.
        ratings, timestamps : array-like, optional
            Per-interaction ratings and timestamps (numeric or datetime).
        aggregate, user_features, item_features, user_ids, item_ids, unknown
            As in :meth:`from_pandas`.

        Returns
        -------
        Interactions
        """
        return cls._build(
            users,
            items,
            weights,
            ratings=ratings,
            timestamps=timestamps,
            aggregate=aggregate,
            user_features=user_features,
            item_features=item_features,
            user_ids=user_ids,
            item_ids=item_ids,
            unknown=unknown,
            names=("users", "items", "weights", "ratings", "timestamps"),
        )

    @classmethod
    def from_scipy(
        cls,
        matrix: Any,
        *,
        user_ids: Any = None,
        item_ids: Any = None,
        aggregate: Aggregate = "sum",
        user_features: Any = None,
        item_features: Any = None,
    ) -> Interactions:
        """Build from a SciPy sparse matrix or array (rows = users, columns = items).

        Stored entries become interactions, including explicit zeros. Duplicate entries
        (possible in COO input) are merged by ``aggregate`` in storage order.

        Parameters
        ----------
        matrix : scipy.sparse matrix or array
            Any sparse format.
        user_ids, item_ids : array-like, optional
            Raw ids of the rows / columns; default ``arange(n_rows)`` / ``arange(n_cols)``.
        aggregate, user_features, item_features
            As in :meth:`from_pandas`.

        Returns
        -------
        Interactions
        """
        if not sp.issparse(matrix):
            raise TypeError(
                f"matrix must be a scipy.sparse matrix or array, got {type(matrix).__name__}; "
                "wrap dense data with scipy.sparse.csr_matrix(x)"
            )
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D, got {matrix.ndim}-D")
        n_rows, n_cols = matrix.shape
        user_ids = np.arange(n_rows, dtype=np.int64) if user_ids is None else user_ids
        item_ids = np.arange(n_cols, dtype=np.int64) if item_ids is None else item_ids
        user_ids = _coerce_universe(user_ids, "user_ids")
        item_ids = _coerce_universe(item_ids, "item_ids")
        if len(user_ids) != n_rows or len(item_ids) != n_cols:
            raise ValueError(
                f"matrix has shape {matrix.shape} but {len(user_ids):,} user_ids and "
                f"{len(item_ids):,} item_ids were given"
            )
        _check_aggregate(aggregate)
        if matrix.format == "csr" and _is_canonical_csr(matrix):
            # already one sorted entry per (row, column): no sort and no merge to do; the
            # arrays are copied so that the Interactions does not share the caller's
            weights = _coerce_weights(matrix.data, "matrix data", matrix.nnz)
            if matrix.nnz == 0:
                raise ValueError("no interactions: the input is empty")
            return cls._new(
                _csr(weights.astype(np.float32), matrix.indices.copy(), matrix.indptr.copy(), (n_rows, n_cols)),
                user_ids,
                item_ids,
                None,
                None,
                _prepare_features(user_features, user_ids, "user"),
                _prepare_features(item_features, item_ids, "item"),
            )
        coo = matrix.tocoo(copy=False)
        return cls._build_indexed(
            np.asarray(coo.row, dtype=np.int64),
            np.asarray(coo.col, dtype=np.int64),
            _coerce_weights(coo.data, "matrix data", coo.nnz),
            None,
            None,
            user_ids,
            item_ids,
            aggregate,
            user_features,
            item_features,
        )

    @classmethod
    def _build(
        cls,
        users: Any,
        items: Any,
        weights: Any,
        *,
        ratings: Any,
        timestamps: Any,
        aggregate: str,
        user_features: Any,
        item_features: Any,
        user_ids: Any,
        item_ids: Any,
        unknown: str,
        names: tuple[str, str, str, str, str],
    ) -> Interactions:
        _check_aggregate(aggregate)
        if unknown not in _UNKNOWN:
            raise ValueError(f"unknown must be one of {_UNKNOWN}, got {unknown!r}")
        users = _coerce_ids(users, names[0])
        items = _coerce_ids(items, names[1])
        n = len(users)
        if len(items) != n:
            raise ValueError(
                f"{names[0]} and {names[1]} have different lengths ({n:,} vs {len(items):,})"
            )
        rat = None if ratings is None else _coerce_weights(ratings, names[3], n)
        if weights is not None:
            w = _coerce_weights(weights, names[2], n)
        elif rat is not None:
            w = rat
        else:
            w = np.ones(n, dtype=np.float64)
        ts = None if timestamps is None else _coerce_timestamps(timestamps, names[4], n)
        if n == 0:
            raise ValueError("no interactions: the input is empty")

        keep: np.ndarray | None = None
        if user_ids is None:
            ucodes, uids = _factorize(users, names[0])
        else:
            uids = _coerce_universe(user_ids, "user_ids")
            ucodes = pd.Index(uids).get_indexer(users)
            bad = ucodes < 0
            if bad.any():
                if unknown == "raise":
                    raise _unknown_error(users[bad], "user", "user_ids")
                keep = ~bad
        if item_ids is None:
            icodes, iids = _factorize(items, names[1])
        else:
            iids = _coerce_universe(item_ids, "item_ids")
            icodes = pd.Index(iids).get_indexer(items)
            bad = icodes < 0
            if bad.any():
                if unknown == "raise":
                    raise _unknown_error(items[bad], "item", "item_ids")
                keep = ~bad if keep is None else keep & ~bad
        if keep is not None:
            if not keep.any():
                raise ValueError(
                    f"no interactions: all {n:,} rows have ids outside the given "
                    "user_ids/item_ids and were dropped"
                )
            ucodes, icodes, w = ucodes[keep], icodes[keep], w[keep]
            rat = None if rat is None else rat[keep]
            ts = None if ts is None else ts[keep]
        return cls._build_indexed(
            np.asarray(ucodes, dtype=np.int64),
            np.asarray(icodes, dtype=np.int64),
            w,
            rat,
            ts,
            uids,
            iids,
            aggregate,
            user_features,
            item_features,
        )

    @classmethod
    def _build_indexed(
        cls,
        rows: np.ndarray,
        cols: np.ndarray,
        weights: np.ndarray,
        ratings: np.ndarray | None,
        timestamps: np.ndarray | None,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        aggregate: str,
        user_features: Any,
        item_features: Any,
    ) -> Interactions:
        """Sort, merge duplicates and assemble the CSR matrix (all vectorized)."""
        _check_aggregate(aggregate)
        n = len(rows)
        if n == 0:
            raise ValueError("no interactions: the input is empty")
        n_users, n_items = len(user_ids), len(item_ids)
        if n_users * n_items < 2**62:
            key = rows * np.int64(n_items) + cols
            order = np.argsort(key, kind="stable")
            skey = key[order]
            dup = skey[1:] == skey[:-1]
            has_dup = bool(dup.any())
            if has_dup and timestamps is not None:
                order = np.lexsort((timestamps, key))
                skey = key[order]
                dup = skey[1:] == skey[:-1]
        else:  # pragma: no cover - astronomically large id spaces
            sort_keys = (cols, rows) if timestamps is None else (timestamps, cols, rows)
            order = np.lexsort(sort_keys)
            sr, sc = rows[order], cols[order]
            dup = (sr[1:] == sr[:-1]) & (sc[1:] == sc[:-1])
            has_dup = bool(dup.any())

        srows, scols = rows[order], cols[order]
        sw = weights[order]
        sts = None if timestamps is None else timestamps[order]
        srat = None if ratings is None else ratings[order]
        if has_dup:
            starts = np.flatnonzero(np.concatenate(([True], ~dup)))
            ends = np.concatenate((starts[1:], [n])) - 1
            if aggregate == "sum":
                data = np.add.reduceat(sw, starts)
            elif aggregate == "max":
                data = np.maximum.reduceat(sw, starts)
            elif aggregate == "last":
                data = sw[ends]
            else:
                data = sw[starts]
            pick_ts = starts if aggregate == "first" else ends
            pick_rating = starts if aggregate == "first" else ends
            srows, scols = srows[starts], scols[starts]
            sts = None if sts is None else sts[pick_ts]
            srat = None if srat is None else srat[pick_rating]
        else:
            data = sw
        counts = np.bincount(srows, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        matrix = _csr(data.astype(np.float32), scols, indptr, (n_users, n_items))
        return cls._new(
            matrix,
            user_ids,
            item_ids,
            None if srat is None else srat.astype(np.float32),
            sts,
            _prepare_features(user_features, user_ids, "user"),
            _prepare_features(item_features, item_ids, "item"),
        )

    # ------------------------------------------------------------------ properties
    @property
    def user_ids(self) -> np.ndarray:
        """Raw id of each user index (int64 for integer ids, object for strings)."""
        return self._user_ids

    @property
    def item_ids(self) -> np.ndarray:
        """Raw id of each item index (int64 for integer ids, object for strings)."""
        return self._item_ids

    @property
    def matrix(self) -> sp.csr_matrix:
        """Canonical users x items CSR matrix of float32 weights (do not modify in place)."""
        return self._matrix

    @property
    def timestamps(self) -> np.ndarray | None:
        """Per-entry timestamps aligned with ``matrix.data``, or ``None``."""
        return self._timestamps

    @property
    def ratings(self) -> np.ndarray | None:
        """Per-entry float32 ratings aligned with ``matrix.data``, or ``None``."""
        return self._ratings

    @property
    def user_features(self) -> pd.DataFrame | None:
        """One row per user in index order (index = ``user_ids``), or ``None``."""
        return self._user_features

    @property
    def item_features(self) -> pd.DataFrame | None:
        """One row per item in index order (index = ``item_ids``), or ``None``."""
        return self._item_features

    @property
    def n_users(self) -> int:
        """Number of users (rows), including users without interactions."""
        return int(self._matrix.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (columns), including items without interactions."""
        return int(self._matrix.shape[1])

    @property
    def nnz(self) -> int:
        """Number of stored (user, item) entries."""
        return int(self._matrix.nnz)

    def __len__(self) -> int:
        return self.nnz

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_users, n_items)``."""
        return (self.n_users, self.n_items)

    @property
    def density(self) -> float:
        """``nnz / (n_users * n_items)`` (0 for an empty shape)."""
        cells = self.n_users * self.n_items
        return self.nnz / cells if cells else 0.0

    # ------------------------------------------------------------------ id maps
    def user_index(self, raw_ids: Any) -> np.ndarray:
        """Map raw user ids to int64 user indices.

        Parameters
        ----------
        raw_ids : scalar or array-like
            Raw user ids.

        Returns
        -------
        numpy.ndarray or numpy.int64
            An int64 array of indices; a scalar id gives a NumPy ``int64`` scalar.

        Raises
        ------
        IndexError
            If any id is unknown; the message names up to five of them.
        """
        return self._lookup(raw_ids, "user")

    def item_index(self, raw_ids: Any) -> np.ndarray:
        """Map raw item ids to int64 item indices; see :meth:`user_index`."""
        return self._lookup(raw_ids, "item")

    def _lookup(self, raw_ids: Any, what: str) -> Any:
        ids = self._user_ids if what == "user" else self._item_ids
        if np.ndim(raw_ids) == 0:
            mapping = self._user_map if what == "user" else self._item_map
            if mapping is None:
                mapping = dict(zip(ids.tolist(), range(len(ids))))
                if what == "user":
                    self._user_map = mapping
                else:
                    self._item_map = mapping
            key = raw_ids.item() if isinstance(raw_ids, np.generic) else raw_ids
            try:
                return np.int64(mapping[key])
            except (KeyError, TypeError):
                raise self._missing_ids(np.array([raw_ids], dtype=object), what) from None
        lookup = self._user_lookup if what == "user" else self._item_lookup
        if lookup is None:
            lookup = pd.Index(ids)
            if what == "user":
                self._user_lookup = lookup
            else:
                self._item_lookup = lookup
        values = _to_numpy(raw_ids)
        flat = values.reshape(-1)
        codes = lookup.get_indexer(flat) if flat.size else np.empty(0, dtype=np.int64)
        bad = codes < 0
        if bad.any():
            raise self._missing_ids(flat[bad], what)
        return np.asarray(codes, dtype=np.int64).reshape(values.shape)

    def _missing_ids(self, values: np.ndarray, what: str) -> IndexError:
        uniq = pd.unique(np.asarray(values, dtype=object))
        return IndexError(
            f"{len(uniq):,} unknown {what} id(s): {_examples(uniq)}. These ids are not in "
            f"this Interactions ({self.n_users if what == 'user' else self.n_items:,} "
            f"{what}s). To include them, rebuild it with {what}_ids= listing every id "
            f"(e.g. the union of train and test ids), or drop them before this call"
        )

    # ------------------------------------------------------------------ conversions
    def _entry_rows(self) -> np.ndarray:
        """User index of every stored entry, in CSR order."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self._matrix.indptr))

    def to_pandas(self) -> pd.DataFrame:
        """One row per stored entry (CSR order) with raw ids.

        Returns
        -------
        pandas.DataFrame
            Columns ``user``, ``item``, ``weight`` and, when present, ``rating`` and
            ``timestamp``.
        """
        out = {
            "user": self._user_ids[self._entry_rows()],
            "item": self._item_ids[self._matrix.indices],
            "weight": self._matrix.data.copy(),
        }
        if self._ratings is not None:
            out["rating"] = self._ratings.copy()
        if self._timestamps is not None:
            out["timestamp"] = self._timestamps.copy()
        return pd.DataFrame(out)

    def subset(self, mask: np.ndarray) -> Interactions:
        """Keep the entries selected by a boolean mask over the stored entries (CSR order).

        The id maps, shape and feature tables are unchanged, so the result is directly
        comparable with ``self`` (this is what the splitters use). The result may be empty.

        Parameters
        ----------
        mask : numpy.ndarray of bool, shape (nnz,)

        Returns
        -------
        Interactions
        """
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
        if mask.shape != (self.nnz,):
            raise ValueError(f"mask must have shape ({self.nnz},), got {mask.shape}")
        m = self._matrix
        csum = np.zeros(self.nnz + 1, dtype=np.int64)
        np.cumsum(mask, out=csum[1:])
        indptr = csum[m.indptr]
        matrix = _csr(m.data[mask], m.indices[mask], indptr, m.shape)
        return Interactions._new(
            matrix,
            self._user_ids,
            self._item_ids,
            None if self._ratings is None else self._ratings[mask],
            None if self._timestamps is None else self._timestamps[mask],
            self._user_features,
            self._item_features,
        )

    # ------------------------------------------------------------------ counts & filters
    def user_counts(self) -> np.ndarray:
        """Number of stored entries per user (int64, length ``n_users``)."""
        return np.diff(self._matrix.indptr).astype(np.int64)

    def item_counts(self) -> np.ndarray:
        """Number of stored entries per item (int64, length ``n_items``)."""
        return np.bincount(self._matrix.indices, minlength=self.n_items).astype(np.int64)

    def filter(self, min_user_interactions: int = 1, min_item_interactions: int = 1) -> Interactions:
        """Drop users and items with too few interactions, in a single pass.

        Counts are computed once on the current data; users with fewer than
        ``min_user_interactions`` and items with fewer than ``min_item_interactions``
        entries are removed together with their entries, and the rest is re-indexed (raw
        ids are preserved). Because of the single pass, a kept user can end up below the
        threshold after items are removed; use :meth:`k_core` for a fixed point. With the
        defaults this removes users and items without interactions.

        Returns
        -------
        Interactions
        """
        mu = _check_count(min_user_interactions, "min_user_interactions")
        mi = _check_count(min_item_interactions, "min_item_interactions")
        keep_users = self.user_counts() >= mu
        keep_items = self.item_counts() >= mi
        return self._restrict(keep_users, keep_items, what=f"filter({mu}, {mi})")

    def k_core(self, k: int = 5, *, k_items: int | None = None) -> Interactions:
        """Largest sub-dataset where every user has >= ``k`` and every item >= ``k_items``.

        Users and items below the thresholds are removed repeatedly until none remain
        (the result is the maximal such subgraph, so it does not depend on removal order).
        Users and items left without interactions are dropped and the rest re-indexed.

        Parameters
        ----------
        k : int
            Minimum interactions per user.
        k_items : int, optional
            Minimum interactions per item; defaults to ``k``.

        Returns
        -------
        Interactions
        """
        ku_min = _check_count(k, "k")
        ki_min = ku_min if k_items is None else _check_count(k_items, "k_items")
        rows = self._entry_rows()
        cols = self._matrix.indices
        alive = np.ones(self.nnz, dtype=bool)
        n_alive = self.nnz
        while True:
            uc = np.bincount(rows[alive], minlength=self.n_users)
            ic = np.bincount(cols[alive], minlength=self.n_items)
            keep_users = uc >= max(ku_min, 1)
            keep_items = ic >= max(ki_min, 1)
            alive &= keep_users[rows] & keep_items[cols]
            now = int(alive.sum())
            if now == n_alive:
                break
            n_alive = now
        if ku_min == 0:
            keep_users = np.ones(self.n_users, dtype=bool)
        if ki_min == 0:
            keep_items = np.ones(self.n_items, dtype=bool)
        return self._restrict(keep_users, keep_items, what=f"k_core(k={ku_min}, k_items={ki_min})")

    def _restrict(self, keep_users: np.ndarray, keep_items: np.ndarray, what: str) -> Interactions:
        """Keep the given users and items (and entries between them), re-indexed."""
        m = self._matrix
        rows = self._entry_rows()
        mask = keep_users[rows] & keep_items[m.indices]
        csum = np.zeros(self.nnz + 1, dtype=np.int64)
        np.cumsum(mask, out=csum[1:])
        per_user = np.diff(csum[m.indptr])[keep_users]
        indptr = np.zeros(int(keep_users.sum()) + 1, dtype=np.int64)
        np.cumsum(per_user, out=indptr[1:])
        item_remap = np.cumsum(keep_items) - 1
        shape = (int(keep_users.sum()), int(keep_items.sum()))
        if shape[0] == 0 or shape[1] == 0 or not mask.any():
            warnings.warn(f"{what} removed every interaction; the result is empty", stacklevel=3)
        matrix = _csr(m.data[mask], item_remap[m.indices[mask]], indptr, shape)
        uf, itf = self._user_features, self._item_features
        return Interactions._new(
            matrix,
            self._user_ids[keep_users],
            self._item_ids[keep_items],
            None if self._ratings is None else self._ratings[mask],
            None if self._timestamps is None else self._timestamps[mask],
            None if uf is None else uf.iloc[np.flatnonzero(keep_users)],
            None if itf is None else itf.iloc[np.flatnonzero(keep_items)],
        )

    # ------------------------------------------------------------------ dunder
    def __repr__(self) -> str:
        def cols(df: pd.DataFrame | None) -> str:
            if df is None:
                return "no"
            k = df.shape[1]
            return f"{k} column" + ("" if k == 1 else "s")

        return (
            f"Interactions(n_users={self.n_users:,}, n_items={self.n_items:,}, "
            f"nnz={self.nnz:,}, density={100 * self.density:.3f}%, "
            f"ratings={'yes' if self._ratings is not None else 'no'}, "
            f"timestamps={'yes' if self._timestamps is not None else 'no'}, "
            f"user_features={cols(self._user_features)}, "
            f"item_features={cols(self._item_features)})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for cache in ("_user_map", "_item_map", "_user_lookup", "_item_lookup"):
            state[cache] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


# ----------------------------------------------------------------------------------------
# module helpers
# ----------------------------------------------------------------------------------------
def _check_aggregate(aggregate: str) -> None:
    if aggregate not in _AGGREGATES:
        raise ValueError(f"aggregate must be one of {_AGGREGATES}, got {aggregate!r}")


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _factorize(values: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes into the sorted unique values (``np.unique`` order), vectorized."""
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:
        raise ValueError(f"{what} cannot be sorted (mixed types?); convert them to one type") from None
    uniques = np.asarray(uniques)
    if values.dtype == object:
        uniques = uniques.astype(object)
    else:
        uniques = uniques.astype(values.dtype, copy=False)
    return codes.astype(np.int64, copy=False), uniques


def _is_canonical_csr(matrix: Any) -> bool:
    """Whether a CSR matrix holds each row's columns strictly increasing (sorted, no duplicate
    entries) with a consistent index structure; checked on the arrays, not scipy's cached flags."""
    n_rows, n_cols = matrix.shape
    indptr, indices = np.asarray(matrix.indptr), np.asarray(matrix.indices)
    nnz = len(indices)
    if len(indptr) != n_rows + 1 or indptr[0] != 0 or indptr[-1] != nnz or len(matrix.data) != nnz:
        return False
    if nnz == 0:
        return True
    if (np.diff(indptr) < 0).any() or indices.min() < 0 or indices.max() >= n_cols:
        return False
    increasing = np.diff(indices) > 0
    starts = indptr[1:-1]
    increasing[starts[(starts > 0) & (starts < nnz)] - 1] = True  # a row's first entry follows another row
    return bool(increasing.all())


def _csr(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """Assemble a CSR matrix from arrays known to be canonical (no checks, no sorting)."""
    idx_dtype = np.int32 if max(shape[1], len(indices)) < 2**31 - 1 else np.int64
    matrix = sp.csr_matrix(
        (
            np.asarray(data, dtype=np.float32),
            np.asarray(indices, dtype=idx_dtype),
            np.asarray(indptr, dtype=idx_dtype),
        ),
        shape=shape,
        copy=False,
    )
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix
