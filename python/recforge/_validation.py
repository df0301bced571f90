"""Input checks shared by the package: coerce once at the boundary, explain what to fix."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np
import scipy.sparse as sp

INT32_MAX = np.iinfo(np.int32).max


def resolve_threads(n_threads: int | None) -> int:
    """Return a thread count for the core: ``0``/``None`` means all available cores."""
    if n_threads is None:
        return 0
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise ValueError(f"n_threads must be an integer (0 = all cores), got {n_threads!r}")
    if n_threads < 0:
        raise ValueError(f"n_threads must be >= 0 (0 = all cores), got {n_threads}")
    return int(n_threads)


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def check_positive_int(value: Any, name: str) -> int:
    """An integer > 0, else a ValueError that names the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def as_float_matrix(x: Any, name: str, *, allow_empty_rows: bool = True) -> np.ndarray:
    """A C-contiguous float32 2-D array without NaN or infinity."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy raises for ragged input
        raise ValueError(f"{name} must be a 2-D numeric array: {exc}") from exc
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows x factors), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not allow_empty_rows and arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if arr.size and not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values; clean or impute them first")
    return arr


class RowLists:
    """Per-row lists of column indices as CSR arrays (indptr int64, indices int32), without
    values: the seen items of a batch of users, handed to the top-k kernels.

    Made from a canonical CSR by :meth:`rows_of` in a few microseconds, where slicing a
    scipy matrix costs more than a single-user HNSW query. Row slices and integer row
    selections give new ``RowLists``; :meth:`csr` converts for code that needs scipy.
    """

    __slots__ = ("indptr", "indices", "shape")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, shape: tuple[int, int]) -> None:
        self.indptr, self.indices, self.shape = indptr, indices, shape

    @classmethod
    def rows_of(cls, matrix: sp.csr_matrix, rows: np.ndarray) -> RowLists:
        """The column lists of ``rows`` (int indices) of a CSR matrix with sorted indices."""
        indptr, indices = matrix.indptr, matrix.indices
        n_cols = matrix.shape[1]
        if len(rows) == 1:
            r = int(rows[0])
            lo, hi = int(indptr[r]), int(indptr[r + 1])
            return cls(np.array([0, hi - lo], dtype=np.int64),
                       np.ascontiguousarray(indices[lo:hi], dtype=np.int32), (1, n_cols))
        starts, stops = indptr[rows].astype(np.int64), indptr[np.asarray(rows) + 1].astype(np.int64)
        lengths = stops - starts
        out_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_ptr[1:])
        total = int(out_ptr[-1])
        if total == 0:
            return cls(out_ptr, np.empty(0, dtype=np.int32), (len(rows), n_cols))
        # positions starts[r] + (0 .. length-1) for every row r, without a Python loop
        offsets = np.arange(total, dtype=np.int64) - np.repeat(out_ptr[:-1] - starts, lengths)
        return cls(out_ptr, np.ascontiguousarray(indices[offsets], dtype=np.int32), (len(rows), n_cols))

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> RowLists:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                stop = max(start, stop)
                lo, hi = int(self.indptr[start]), int(self.indptr[stop])
                return RowLists(self.indptr[start : stop + 1] - lo, self.indices[lo:hi], (stop - start, self.shape[1]))
            key = np.arange(start, stop, step)
        rows = np.atleast_1d(np.asarray(key))
        if rows.dtype.kind not in "iu":
            raise IndexError("RowLists rows must be selected by a slice or integer indices")
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        return RowLists.rows_of(self, rows)

    def csr(self) -> sp.csr_matrix:
        out = sp.csr_matrix((np.ones(len(self.indices), dtype=np.float32), self.indices, self.indptr),
                            shape=self.shape)
        out.has_sorted_indices = True
        out.has_canonical_format = True
        return out

    def toarray(self) -> np.ndarray:
        return self.csr().toarray()


def csr_arrays(matrix: Any, shape: tuple[int, int], name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, indices int32, data float32) of a scipy sparse matrix (or RowLists, whose
    values are ones) of a given shape."""
    if isinstance(matrix, RowLists):
        if tuple(matrix.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {shape}, got {matrix.shape}")
        return matrix.indptr, matrix.indices, np.ones(len(matrix.indices), dtype=np.float32)
    if not sp.issparse(matrix):
        raise ValueError(f"{name} must be a scipy.sparse matrix, got {type(matrix).__name__}")
    if matrix.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {matrix.shape}")
    csr = matrix if matrix.format == "csr" else sp.csr_matrix(matrix)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    indptr = np.ascontiguousarray(csr.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(csr.indices, dtype=np.int32)
    data = np.ascontiguousarray(csr.data, dtype=np.float32)
    return indptr, indices, data


def as_index_array(x: Any, n: int, name: str) -> np.ndarray:
    """Integer indices in [0, n) as int64; IndexError naming the offenders otherwise."""
    arr = np.asarray(x)
    if arr.dtype.kind == "b":
        raise ValueError(f"{name} must be integer indices, got booleans")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be integer indices, got non-integer values")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        examples = ", ".join(str(v) for v in np.unique(arr[bad])[:5])
        raise IndexError(f"{name} contains indices outside [0, {n}): {examples}")
    return arr
