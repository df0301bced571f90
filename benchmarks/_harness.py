"""Shared helpers for the benchmarks in this folder.

Every benchmark follows the same pattern:

1. call :func:`prepare_environment` *before* NumPy is imported (it sizes the BLAS and OpenMP
   thread pools and, by default, drops ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``, which
   pin OpenBLAS to a slower kernel on some processors);
2. build the data once, then time recforge and its peer in the same process at the same
   thread count, with :func:`blas_threads` limiting the peer's BLAS pool and recforge's
   ``n_threads`` set to the same number;
3. time with :func:`time_interleaved` (warm-up, then repeats alternating between the
   contenders so that a noisy neighbour slows both alike) and compare medians;
4. write ``results/<name>.json`` (every raw time, the medians, the ratios, the parameters and
   the environment) and ``results/<name>.md`` with :func:`write_results`.

This module does not import NumPy at import time, so it can be imported first.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

# Variables that make OpenBLAS pick a specific (older, slower) core type. They are set on
# some machines to work around old OpenBLAS builds; a current NumPy does not need them.
OPENBLAS_OVERRIDES: tuple[str, ...] = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARIABLES: tuple[str, ...] = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# What prepare_environment changed, for the record written with the results.
_ENV_CHANGES: dict[str, Any] = {}


# ----------------------------------------------------------------------------------------
# environment set-up (before NumPy is imported)
# ----------------------------------------------------------------------------------------
def prepare_environment(max_threads: int, *, drop_openblas_overrides: bool = True) -> dict[str, Any]:
    """Size the native thread pools and clean OpenBLAS overrides; call before importing NumPy.

    Parameters
    ----------
    max_threads : int
        The largest thread count the benchmark will use. BLAS/OpenMP pools are created with
        this many threads when NumPy loads; :func:`blas_threads` lowers it per measurement.
    drop_openblas_overrides : bool
        Remove ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` from this process (and the
        children it starts), so that OpenBLAS detects the processor itself.

    Returns
    -------
    dict
        What was changed: ``{"removed": {...}, "thread_variables": {...}, "numpy_loaded": bool}``.
        The same record is included in :func:`environment`.
    """
    if max_threads < 1:
        raise ValueError(f"max_threads must be >= 1, got {max_threads}")
    numpy_loaded = "numpy" in sys.modules
    removed: dict[str, str] = {}
    if drop_openblas_overrides:
        for name in OPENBLAS_OVERRIDES:
            if name in os.environ:
                removed[name] = os.environ.pop(name)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(max_threads)
    _ENV_CHANGES.clear()
    _ENV_CHANGES.update(
        {
            "removed": removed,
            "kept": {n: os.environ[n] for n in OPENBLAS_OVERRIDES if n in os.environ},
            "thread_variables": {n: os.environ[n] for n in THREAD_VARIABLES},
            "numpy_loaded_before_setup": numpy_loaded,
        }
    )
    if numpy_loaded:
        print(
            "warning: NumPy was imported before prepare_environment(); the thread variables "
            "and OpenBLAS overrides only take effect in child processes",
            file=sys.stderr,
        )
    return dict(_ENV_CHANGES)


@contextlib.contextmanager
def blas_threads(n_threads: int) -> Iterator[None]:
    """Limit BLAS and OpenMP pools to ``n_threads`` inside the block (threadpoolctl).

    Without threadpoolctl this does nothing beyond the variables set by
    :func:`prepare_environment`; install it (``pip install threadpoolctl``) for fair runs at
    several thread counts in one process.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(n_threads)):
        yield


# ----------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall-clock times of one contender, in seconds."""

    times: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def best(self) -> float:
        return min(self.times) if self.times else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.best, "times": self.times, "warmup": self.warmup}


def time_callable(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1) -> Timing:
    """Run ``fn`` ``warmup`` times (kept apart from the median), then ``repeats`` timed times."""
    return time_interleaved({"fn": fn}, repeats=repeats, warmup=warmup)["fn"]


def time_interleaved(
    contenders: Mapping[str, Callable[[], Any]], *, repeats: int = 3, warmup: int = 1
) -> dict[str, Timing]:
    """Time several callables, alternating between them on every repeat.

    Round ``r`` runs every contender once, in an order rotated by ``r``, so slow phases of a
    shared machine hit all of them. The first ``warmup`` rounds are recorded separately and
    left out of the medians.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(contenders)
    out = {name: Timing() for name in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            contenders[name]()
            elapsed = time.perf_counter() - t0
            (out[name].warmup if r < warmup else out[name].times).append(elapsed)
    return out


def ratio(numerator: Timing | float, denominator: Timing | float) -> float:
    """Ratio of medians (``numerator / denominator``), e.g. peer time / recforge time."""
    a = numerator.median if isinstance(numerator, Timing) else float(numerator)
    b = denominator.median if isinstance(denominator, Timing) else float(denominator)
    return a / b if b > 0 else float("nan")


# ----------------------------------------------------------------------------------------
# environment record
# ----------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(wanted: Iterable[str] = ("avx2", "fma", "avx512f")) -> list[str]:
    """Which of ``wanted`` SIMD flags the processor reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threadpool_info() -> list[dict[str, Any]] | str:
    """threadpoolctl's description of the loaded BLAS/OpenMP libraries."""
    try:
        from threadpoolctl import threadpool_info as info
    except ImportError:
        return "threadpoolctl not installed"
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer",
            "architecture", "filepath")
    return [{k: v for k, v in lib.items() if k in keep} for lib in info()]


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True,
            text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(n_threads: int | Sequence[int] | None = None) -> dict[str, Any]:
    """Everything needed to interpret a result: machine, libraries, kernels, threads."""
    import numpy as np

    env: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores_available": available_cores(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "blas": threadpool_info(),
        "env_changes": dict(_ENV_CHANGES),
        "openblas_overrides_in_effect": {
            n: os.environ[n] for n in OPENBLAS_OVERRIDES if n in os.environ
        },
        "git_revision": git_revision(),
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import scipy

        env["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        import recforge

        env["recforge"] = recforge.__version__
        env["recforge_topk_kernel"] = recforge.retrieval.kernel_name()
    except Exception as exc:  # noqa: BLE001 - the record should still be written
        env["recforge"] = f"unavailable: {exc}"
    env["RECFORGE_TOPK_KERNEL"] = os.environ.get("RECFORGE_TOPK_KERNEL")
    if n_threads is not None:
        env["threads"] = n_threads
    return env


# ----------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------
def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats are shown with 3 significant digits."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def jsonable(obj: Any) -> Any:
    """``obj`` with Timings, dataclasses, paths and NumPy scalars turned into JSON types."""
    if isinstance(obj, Timing):
        return obj.as_dict()
    if hasattr(obj, "__dataclass_fields__"):
        return jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return obj.item()
    return obj


def write_results(
    name: str,
    payload: Mapping[str, Any],
    markdown: str,
    *,
    results_dir: Path | str | None = None,
) -> tuple[Path, Path]:
    """Write ``<results_dir>/<name>.json`` and ``<results_dir>/<name>.md``.

    ``payload`` should hold ``params``, ``env`` and the measurements (``Timing`` objects are
    converted to their raw times and medians); a UTC ``date`` is added.
    """
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    record.update(jsonable(dict(payload)))
    json_path = folder / f"{name}.json"
    md_path = folder / f"{name}.md"
    json_path.write_text(json.dumps(record, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    md_path.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return json_path, md_path


def describe_env_markdown(env: Mapping[str, Any]) -> str:
    """A short bullet list of the environment for the markdown report."""
    removed = env.get("env_changes", {}).get("removed") or {}
    lines = [
        f"- CPU: {env.get('cpu')} ({env.get('cores_available')} cores available; "
        f"flags: {', '.join(env.get('cpu_flags', [])) or 'none of avx2/fma/avx512f'})",
        f"- Python {env.get('python')}, NumPy {env.get('numpy')}, SciPy {env.get('scipy')}, "
        f"recforge {env.get('recforge')} (top-k kernel `{env.get('recforge_topk_kernel')}`)",
        f"- NumPy BLAS: {blas_label(env.get('blas'))}",
    ]
    in_effect = env.get("openblas_overrides_in_effect") or {}
    if removed:
        lines.append(
            "- Removed for this run: " + ", ".join(f"`{k}={v}`" for k, v in removed.items())
        )
    elif in_effect:
        lines.append(
            "- Kept for this run: " + ", ".join(f"`{k}={v}`" for k, v in in_effect.items())
        )
    else:
        lines.append("- `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE`: not set")
    load = env.get("load_average_1_5_15min")
    if load:
        lines.append(
            f"- Load average when the record was taken: {load[0]:.2f} / {load[1]:.2f} / "
            f"{load[2]:.2f} (1 / 5 / 15 min; the benchmark adds up to its thread count, anything "
            f"beyond that is other work sharing the {env.get('cores_available')} cores)"
        )
    if env.get("git_revision"):
        lines.append(f"- recforge revision: `{env['git_revision']}`")
    return "\n".join(lines)


def blas_label(info: Any) -> str:
    if not isinstance(info, list):
        return str(info)
    labels = [
        f"{lib.get('internal_api')} {lib.get('version')}, architecture {lib.get('architecture', '?')}"
        for lib in info
        if lib.get("user_api") == "blas"
    ]
    return "; ".join(labels) or "none found"
