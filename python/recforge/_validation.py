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


def csr_arrays(matrix: Any, shape: tuple[int, int], name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, indices int32, data float32) of a scipy sparse matrix of a given shape."""
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
