#!/usr/bin/env python
"""Exact top-k by dot product: ``recforge.retrieval.topk_dot`` against NumPy.

Random normal float32 factors (10,000 users x 100,000 items x 64 factors by default), the
10 best items per user. Both contenders run in this one process on the same data at the
same thread count (1 and 2 by default):

* **NumPy**: users in blocks of ``--block`` rows; per block ``X_block @ Y.T`` (BLAS sgemm,
  threads limited with threadpoolctl), ``np.argpartition`` for the top k of each row, then a
  sort of those k. NumPy's argpartition is single-threaded, so at more than one thread only
  the matrix product is parallel.
* **NumPy, threaded blocks** (more than one thread only): the same per-block code run by a
  pool of ``threads`` Python threads over the blocks with single-threaded BLAS; NumPy
  releases the GIL in sgemm and argpartition, so this is the fairest multi-core NumPy.
* **recforge**: one ``topk_dot(X, Y, k, n_threads=threads)`` call, which blocks over users
  and items internally and keeps a heap per user.

Each case runs with and without excluding ~50 random "seen" items per user (a CSR matrix;
NumPy sets those scores to -inf before argpartition). The suite runs first with the kernel
recforge picks for this CPU, then again in one child process per ``--kernels`` value with
``RECFORGE_TOPK_KERNEL`` set (the variable is read once per process): ``avx2`` caps the
kernel at AVX2+FMA, ``generic`` forces the portable one.

Every case is checked: for a sample of users the top-k sets of both contenders must equal
a float64 reference wherever the k-th and (k+1)-th reference scores are more than 1e-4
apart, and the returned scores must match it to 1e-4.

Results go to ``results/topk.json`` and ``results/topk.md`` (``--quick`` runs a tiny
smoke version and writes nothing unless ``--results-dir`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402  (must run before NumPy is imported)

NAME = "topk"
NEAR_TIE = 1e-4
SCORE_TOL = 1e-4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="query rows (default 10,000)")
    p.add_argument("--items", type=int, default=100_000, help="item rows (default 100,000)")
    p.add_argument("--factors", type=int, default=64, help="factors per vector (default 64)")
    p.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per case (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default 1)")
    p.add_argument(
        "--threads", type=str, default="1,2",
        help="comma-separated thread counts; each case runs at each (default 1,2)",
    )
    p.add_argument("--block", type=int, default=128, help="NumPy user block size (default 128)")
    p.add_argument("--seen", type=float, default=50.0, help="mean excluded items per user (default 50)")
    p.add_argument("--sample", type=int, default=300, help="users checked against float64 (default 300)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the data")
    p.add_argument("--quick", action="store_true", help="tiny smoke run; writes nothing by default")
    p.add_argument(
        "--kernels", type=str, default="avx2,generic",
        help="RECFORGE_TOPK_KERNEL values to measure in child processes besides the default "
        "kernel (default avx2,generic; empty for none)",
    )
    p.add_argument("--no-generic", action="store_true", help="skip the child runs (same as --kernels '')")
    p.add_argument(
        "--keep-openblas-env", action="store_true",
        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE if set (they are removed by default)",
    )
    p.add_argument("--results-dir", type=Path, default=None, help="where to write topk.json/.md")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.users, args.items, args.factors = 300, 3_000, 16
        args.repeats, args.warmup, args.block, args.seen, args.sample = 1, 0, 64, 20.0, 100
    try:
        args.thread_list = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        p.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    args.kernel_list = [] if args.no_generic else [k.strip() for k in args.kernels.split(",") if k.strip()]
    if not args.thread_list or min(args.thread_list) < 1:
        p.error("--threads needs at least one count >= 1")
    for name in ("users", "items", "factors", "k", "repeats", "block", "sample"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.k >= args.items:
        p.error("--k must be smaller than --items")
    return args


ARGS = parse_args(sys.argv[1:] if __name__ == "__main__" else [])
H.prepare_environment(max(ARGS.thread_list), drop_openblas_overrides=not ARGS.keep_openblas_env)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from recforge.retrieval import kernel_name, topk_dot  # noqa: E402


# ----------------------------------------------------------------------------------------
# data and contenders
# ----------------------------------------------------------------------------------------
def make_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    rng = np.random.default_rng(args.seed)
    users = rng.standard_normal((args.users, args.factors), dtype=np.float32)
    items = rng.standard_normal((args.items, args.factors), dtype=np.float32)
    counts = rng.poisson(args.seen, args.users)
    rows = np.repeat(np.arange(args.users), counts)
    cols = rng.integers(0, args.items, counts.sum())
    seen = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(args.users, args.items)
    )
    seen.sum_duplicates()
    seen.data[:] = 1.0
    return users, items, seen


def numpy_topk(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    seen: sp.csr_matrix | None,
    block: int,
    workers: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Blocked ``X @ Y.T`` + argpartition + sort of the top k, over ``workers`` threads.

    Each thread computes scores into its own reused buffer. ``np.argpartition`` still
    allocates a full int64 index array per block; keep blocks small enough (128 users x
    100,000 items = 100 MB) that this does not dominate: at 1,000 users per block the
    allocator returns 800 MB to the kernel after every block and page faults on the next,
    which about doubles NumPy's time.
    """
    n_users, n_items = users.shape[0], items.shape[0]
    top = np.empty((n_users, k), dtype=np.int64)
    top_scores = np.empty((n_users, k), dtype=np.float32)
    items_t = items.T
    local = threading.local()

    def one_block(lo: int) -> None:
        hi = min(lo + block, n_users)
        buf = getattr(local, "scores", None)
        if buf is None:  # one score buffer per thread, reused block after block
            buf = local.scores = np.empty((block, n_items), dtype=np.float32)
        scores = buf[: hi - lo]
        np.matmul(users[lo:hi], items_t, out=scores)
        if seen is not None:
            ptr = seen.indptr[lo : hi + 1]
            rows = np.repeat(np.arange(hi - lo), np.diff(ptr))
            scores[rows, seen.indices[ptr[0] : ptr[-1]]] = -np.inf
        part = np.argpartition(scores, n_items - k, axis=1)[:, n_items - k :]
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        top[lo:hi] = np.take_along_axis(part, order, axis=1)
        top_scores[lo:hi] = np.take_along_axis(part_scores, order, axis=1)

    starts = range(0, n_users, block)
    if workers <= 1:
        for lo in starts:
            one_block(lo)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one_block, starts))
    return top, top_scores


# ----------------------------------------------------------------------------------------
# correctness
# ----------------------------------------------------------------------------------------
def check_against_reference(
    users: np.ndarray,
    items64: np.ndarray,
    k: int,
    seen: sp.csr_matrix | None,
    sample: np.ndarray,
    outputs: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    """Compare each contender's top-k with a float64 reference on ``sample`` users."""
    ref = users[sample].astype(np.float64) @ items64.T
    if seen is not None:
        sub = seen[sample]
        rows = np.repeat(np.arange(len(sample)), np.diff(sub.indptr))
        ref[rows, sub.indices] = -np.inf
    n_items = ref.shape[1]
    part = np.argpartition(ref, n_items - k - 1, axis=1)[:, n_items - k - 1 :]
    part_scores = np.take_along_axis(ref, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    part = np.take_along_axis(part, order, axis=1)
    part_scores = np.take_along_axis(part_scores, order, axis=1)
    gap = part_scores[:, k - 1] - part_scores[:, k]
    clear = gap > NEAR_TIE
    report: dict[str, Any] = {
        "sampled_users": int(len(sample)),
        "checked_users": int(clear.sum()),
        "near_tie_users_skipped": int((~clear).sum()),
        "ok": True,
        "mismatches": {},
        "max_score_error": {},
    }
    for name, (top, top_scores) in outputs.items():
        got, got_scores = top[sample], top_scores[sample].astype(np.float64)
        bad = [
            int(sample[i])
            for i in np.flatnonzero(clear)
            if set(got[i].tolist()) != set(part[i, :k].tolist())
        ]
        err = float(np.max(np.abs(got_scores[clear] - part_scores[clear, :k]), initial=0.0))
        report["mismatches"][name] = bad[:10]
        report["max_score_error"][name] = err
        if bad or not err <= SCORE_TOL:
            report["ok"] = False
    return report


# ----------------------------------------------------------------------------------------
# the suite
# ----------------------------------------------------------------------------------------
def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    kernel = kernel_name()
    t0 = time.perf_counter()
    users, items, seen = make_data(args)
    items64 = items.astype(np.float64)
    sample = np.sort(
        np.random.default_rng(args.seed + 1).choice(args.users, min(args.sample, args.users), replace=False)
    )
    print(
        f"[{kernel}] data: {args.users:,} users x {args.items:,} items x {args.factors} factors, "
        f"k={args.k}, {seen.nnz / args.users:.1f} seen items per user "
        f"({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    runs = []
    for threads in args.thread_list:
        for exclude in (False, True):
            ex = seen if exclude else None
            outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

            def run_numpy(threads: int = threads, ex: Any = ex) -> None:
                with H.blas_threads(threads):
                    outputs["numpy"] = numpy_topk(users, items, args.k, ex, args.block, 1)

            def run_numpy_threaded(threads: int = threads, ex: Any = ex) -> None:
                with H.blas_threads(1):
                    outputs["numpy_threaded"] = numpy_topk(users, items, args.k, ex, args.block, threads)

            def run_recforge(threads: int = threads, ex: Any = ex) -> None:
                outputs["recforge"] = topk_dot(users, items, args.k, exclude=ex, n_threads=threads)

            contenders = {"numpy": run_numpy, "recforge": run_recforge}
            if threads > 1:
                contenders["numpy_threaded"] = run_numpy_threaded
            timings = H.time_interleaved(contenders, repeats=args.repeats, warmup=args.warmup)
            check = check_against_reference(users, items64, args.k, ex, sample, outputs)
            run: dict[str, Any] = {
                "kernel": kernel,
                "threads": threads,
                "exclude_seen": exclude,
                "timings": timings,
                "ratio_numpy_over_recforge": H.ratio(timings["numpy"], timings["recforge"]),
                "check": check,
            }
            if "numpy_threaded" in timings:
                run["ratio_numpy_threaded_over_recforge"] = H.ratio(
                    timings["numpy_threaded"], timings["recforge"]
                )
            runs.append(run)
            extra = (
                f", threaded NumPy {timings['numpy_threaded'].median:.3f} s"
                if "numpy_threaded" in timings
                else ""
            )
            print(
                f"[{kernel}] threads={threads} exclude={'yes' if exclude else 'no '}: "
                f"NumPy {timings['numpy'].median:.3f} s{extra}, recforge "
                f"{timings['recforge'].median:.3f} s -> x{run['ratio_numpy_over_recforge']:.2f}; "
                f"checked {check['checked_users']}/{check['sampled_users']} users: "
                f"{'ok' if check['ok'] else 'MISMATCH'}",
                flush=True,
            )
    return {"kernel": kernel, "env": H.environment(args.thread_list), "runs": runs}


def run_kernel_child(forced: str, argv: list[str]) -> dict[str, Any] | None:
    """Run the suite again in a child process with ``RECFORGE_TOPK_KERNEL=forced``.

    The variable is read once per process, so each forced kernel needs its own process.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        env = dict(os.environ, RECFORGE_TOPK_KERNEL=forced)
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--kernels", "", "--worker", str(out)]
        proc = subprocess.run(cmd, env=env, check=False)
        if proc.returncode != 0 or not out.is_file():
            print(
                f"the RECFORGE_TOPK_KERNEL={forced} child run failed (exit code {proc.returncode})",
                file=sys.stderr,
            )
            return None
        return json.loads(out.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------
def _median(run: dict[str, Any], name: str) -> float | None:
    t = run["timings"].get(name)
    if t is None:
        return None
    return t.median if isinstance(t, H.Timing) else float(t["median"])


def report_markdown(args: argparse.Namespace, env: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        threaded = _median(run, "numpy_threaded")
        rows.append(
            [
                f"`{run['kernel']}`",
                run["threads"],
                "yes" if run["exclude_seen"] else "no",
                _median(run, "numpy"),
                threaded if threaded is not None else "-",
                _median(run, "recforge"),
                f"**{run['ratio_numpy_over_recforge']:.2f}**",
                f"{run['ratio_numpy_threaded_over_recforge']:.2f}"
                if "ratio_numpy_threaded_over_recforge" in run
                else "-",
                f"{run['check']['checked_users']}/{run['check']['sampled_users']}"
                + ("" if run["check"]["ok"] else " MISMATCH"),
            ]
        )
    table = H.markdown_table(
        [
            "kernel", "threads", "seen excluded", "NumPy (s)", "NumPy threaded blocks (s)",
            "recforge (s)", "NumPy / recforge", "threaded NumPy / recforge", "users checked",
        ],
        rows,
    )
    return "\n".join(
        [
            "# Exact top-k by dot product: recforge vs NumPy",
            "",
            f"{args.users:,} users x {args.items:,} items x {args.factors} factors (float32, "
            f"standard normal, seed {args.seed}), k = {args.k}; NumPy in user blocks of "
            f"{args.block:,}; exclusion = ~{args.seen:g} random seen items per user. Median of "
            f"{args.repeats} timed runs after {args.warmup} warm-up, contenders interleaved, "
            "the same thread count for both. Ratios above 1 mean recforge is faster.",
            "",
            table,
            "",
            "Users checked: sampled users whose k-th and (k+1)-th float64 reference scores are "
            f"more than {NEAR_TIE:g} apart; both contenders returned exactly the reference "
            f"top-k set with scores within {SCORE_TOL:g}.",
            "",
            "Environment:",
            "",
            H.describe_env_markdown(env),
            "",
        ]
    )


def main() -> int:
    args = ARGS
    argv = sys.argv[1:]
    if args.worker is not None:
        result = run_suite(args)
        args.worker.write_text(json.dumps(H.jsonable(result)), encoding="utf-8")
        return 0 if all(r["check"]["ok"] for r in result["runs"]) else 1

    started = time.perf_counter()
    main_result = run_suite(args)
    runs = list(main_result["runs"])
    measured = {main_result["kernel"]}
    child_envs: dict[str, Any] = {}
    child_failed = False
    for forced in args.kernel_list:
        child = run_kernel_child(forced, argv)
        if child is None:
            child_failed = True
            continue
        if child["kernel"] in measured:
            print(
                f"RECFORGE_TOPK_KERNEL={forced} selects {child['kernel']!r}, already measured; "
                "its runs are not repeated in the report"
            )
            continue
        measured.add(child["kernel"])
        child_envs[forced] = child["env"]
        runs += child["runs"]
    env = main_result["env"]
    params = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("worker", "results_dir", "no_generic")
    }
    markdown = report_markdown(args, env, runs)
    print()
    print(markdown)
    ok = all(r["check"]["ok"] for r in runs)
    if not args.quick or args.results_dir is not None:
        payload = {
            "params": params,
            "env": env,
            "child_envs": child_envs,
            "runs": runs,
            "all_checks_ok": ok,
            "wall_time_s": time.perf_counter() - started,
        }
        json_path, md_path = H.write_results(NAME, payload, markdown, results_dir=args.results_dir)
        print(f"wrote {json_path} and {md_path}")
    if not ok:
        print("correctness check FAILED: see 'check' in the results", file=sys.stderr)
        return 1
    if child_failed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
