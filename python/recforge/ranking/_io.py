"""Readers for learning-to-rank files: SVMlight / LETOR with ``qid:`` and LightGBM ``.query`` files."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

__all__ = ["read_svmlight", "read_query_file", "read_lightgbm_ranking"]


def _open_text(path: Path):
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_svmlight(
    path: str | PathLike,
    *,
    n_features: int | None = None,
    missing: float = 0.0,
    zero_based: bool | str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read an SVMlight / LETOR file into dense arrays.

    Each line is ``label [qid:ID] index:value ... [# comment]``. Returns ``(X, y, qid)``: X
    float32 (rows x features) with absent entries set to ``missing`` (0 as in SVMlight; pass
    ``np.nan`` to treat them as missing values), y float32 and qid int64 (``None`` when the
    file has no ``qid:``). Feature indices are 1-based in LETOR files; ``zero_based="auto"``
    takes them as 0-based only when a 0 index appears. ``n_features`` fixes the width (e.g. to
    read a test file like its training file). A ``.gz`` file is read compressed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    labels: list[float] = []
    qids: list[int] = []
    rows: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    has_qid = None
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, 1):
            body = line.split("#", 1)[0].split()
            if not body:
                continue
            try:
                labels.append(float(body[0]))
            except ValueError:
                raise ValueError(f"{path}:{line_no}: the label {body[0]!r} is not a number") from None
            start = 1
            line_has_qid = len(body) > 1 and body[1].startswith("qid:")
            if has_qid is None:
                has_qid = line_has_qid
            elif has_qid != line_has_qid:
                raise ValueError(f"{path}:{line_no}: some lines have qid: and others do not")
            if line_has_qid:
                try:
                    qids.append(int(body[1][4:]))
                except ValueError:
                    raise ValueError(f"{path}:{line_no}: bad query id {body[1]!r}") from None
                start = 2
            idx = np.empty(len(body) - start, dtype=np.int64)
            val = np.empty(len(body) - start, dtype=np.float32)
            for j, tok in enumerate(body[start:]):
                k, sep, v = tok.partition(":")
                if not sep:
                    raise ValueError(f"{path}:{line_no}: {tok!r} is not index:value")
                try:
                    idx[j] = int(k)
                    val[j] = float(v)
                except ValueError:
                    raise ValueError(f"{path}:{line_no}: {tok!r} is not index:value") from None
            rows.append(idx)
            vals.append(val)
    n = len(labels)
    all_idx = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    if all_idx.size and all_idx.min() < 0:
        raise ValueError(f"{path}: negative feature index {int(all_idx.min())}")
    if zero_based == "auto":
        zero = bool(all_idx.size and all_idx.min() == 0)
    else:
        zero = bool(zero_based)
    shift = 0 if zero else 1
    if not zero and all_idx.size and all_idx.min() < 1:
        raise ValueError(f"{path}: feature index 0 in a 1-based file; pass zero_based=True")
    width = int(all_idx.max()) + 1 - shift if all_idx.size else 0
    if n_features is not None:
        if width > n_features:
            raise ValueError(f"{path} has feature index {width} beyond n_features={n_features}")
        width = int(n_features)
    X = np.full((n, width), missing, dtype=np.float32)
    if n:
        lengths = np.array([r.size for r in rows], dtype=np.int64)
        row_of = np.repeat(np.arange(n), lengths)
        X[row_of, all_idx - shift] = np.concatenate(vals)
    y = np.asarray(labels, dtype=np.float32)
    qid = np.asarray(qids, dtype=np.int64) if has_qid else None
    return X, y, qid


def read_query_file(path: str | PathLike) -> np.ndarray:
    """Query sizes from a LightGBM ``.query`` (group) file: one positive integer per line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no query file at {path}")
    sizes = []
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, 1):
            s = line.strip()
            if not s:
                continue
            try:
                v = int(s)
            except ValueError:
                raise ValueError(f"{path}:{line_no}: {s!r} is not a query size") from None
            if v < 0:
                raise ValueError(f"{path}:{line_no}: negative query size {v}")
            sizes.append(v)
    return np.asarray(sizes, dtype=np.int64)


def read_lightgbm_ranking(path: str | PathLike, *, n_features: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A LightGBM ranking data file and its ``<path>.query`` group file: ``(X, y, group_sizes)``."""
    path = Path(path)
    X, y, qid = read_svmlight(path, n_features=n_features, zero_based=True)
    qpath = path.with_name(path.name + ".query")
    if qid is not None and not qpath.exists():
        from ._base import group_offsets

        return X, y, np.diff(group_offsets(None, qid, len(y)))
    sizes = read_query_file(qpath)
    if int(sizes.sum()) != len(y):
        raise ValueError(f"{qpath} sizes sum to {int(sizes.sum())} but {path} has {len(y)} rows")
    return X, y, sizes
