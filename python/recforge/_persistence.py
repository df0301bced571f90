"""The ``.npz`` file envelope shared by models, rankers, bandit policies and indexes.

A file holds NumPy arrays only (it is read with ``allow_pickle=False``): the class name
(``__class__``), the format version of the writer (``__format_version__``), the constructor
parameters as JSON (``__params__``), and the learned arrays under their own names.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_params", "npz_path", "write_npz", "read_npz"]


def json_params(params: Mapping[str, Any], what: str = "model") -> str:
    """Constructor parameters as JSON: NumPy scalars and arrays become numbers and lists,
    tuples lists, NumPy dtypes and scalar types (``np.float64``) their names; a value JSON
    cannot hold is stored as None, with a warning."""
    out = {}
    for name, value in params.items():
        if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
            value = np.dtype(value).name
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            value = value.item()
        elif isinstance(value, tuple):
            value = list(value)
        try:
            json.dumps(value)
        except TypeError:
            warnings.warn(
                f"parameter {name}={value!r} cannot be stored in a {what} file; it is saved as None",
                stacklevel=3,
            )
            value = None
        out[name] = value
    return json.dumps(out)


def npz_path(path: str | Path) -> Path:
    """The path with an ``.npz`` suffix (``np.savez`` would add one anyway)."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def write_npz(path: str | Path, class_name: str, version: int, params: str, arrays: Mapping[str, Any]) -> Path:
    """Write one file: the envelope (``params`` already JSON) and ``arrays``; returns the path."""
    path = npz_path(path)
    np.savez(
        path, __class__=np.array(class_name), __format_version__=np.array(version), __params__=np.array(params),
        **arrays,
    )
    return path


def read_npz(
    path: str | Path, what: str, version: int, required: tuple[str, ...] = ()
) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`write_npz`: (class name, parameters, the other arrays).

    ``what`` names the kind of file in the errors ("model", "policy", "index", ...). A missing
    file raises FileNotFoundError; an unreadable or truncated one, one without the envelope or
    one of the ``required`` arrays, one written by a newer format than ``version``, or one with
    corrupt parameters raises ValueError.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} file at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            contents = {name: f[name] for name in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable recforge {what} file ({exc})") from exc
    for key in ("__class__", "__format_version__", "__params__", *required):
        if key not in contents:
            raise ValueError(f"{path} is not a recforge {what} file: {key} is missing")
    name = str(contents.pop("__class__"))
    found = int(contents.pop("__format_version__"))
    if found > version:
        raise ValueError(f"{path} was written by a newer recforge (format {found}); upgrade recforge")
    try:
        params = json.loads(str(contents.pop("__params__")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} holds corrupt parameters ({exc})") from exc
    if not isinstance(params, dict):
        raise ValueError(f"{path} holds corrupt parameters (not a mapping)")
    return name, params, contents
