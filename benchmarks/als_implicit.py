#!/usr/bin/env python
"""Implicit ALS: ``recforge.ALS`` against ``implicit.als.AlternatingLeastSquares``.

On the LightGCN splits of Gowalla and MovieLens-1M (train = ``train.txt`` + ``valid.txt``,
test = ``test.txt``), at 64 and 128 factors, with the conjugate-gradient solver (3 steps) and
with the exact Cholesky solver, in float32; and in float64 (``dtype=np.float64`` for both
libraries) at 64 factors. Both libraries get the same data, regularization, alpha,
initialisation (uniform in [0, 0.01), the same seed: both draw the user factors, then the item
factors, from ``numpy.random.default_rng(seed)``; in float64, implicit is handed recforge's
initial factors, which recforge draws in float32 at either precision), iterations and threads,
in one process:

* **quality**: one fit of ``--iterations`` (15) iterations each, then Recall@20 and nDCG@20
  of both with ``recforge.evaluate`` (implicit's factors are wrapped in a
  ``FactorRecommender`` of their dtype, so both are ranked and scored by the same code), and
  the largest difference of the two models' scores over the first 1,000 users, relative to
  the largest score;
* **speed**: fits of ``--timing-iterations`` iterations, alternating between the libraries
  (one warm-up round, then ``--repeats``); the seconds of every iteration are taken from
  each library's per-iteration callback, and the figure is the median over all timed
  iterations (so data conversion and set-up, outside the iterations, are not counted).

implicit runs with ``OPENBLAS_NUM_THREADS=1``, as it recommends (its threads come from
``num_threads``); the same variable is set for the whole process. Results go to
``results/als_implicit.json`` and ``results/als_implicit.md``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H

NAME = "als_implicit"
# Per data set: (alpha, regularization), picked once on recforge's side from a small grid
# (Gowalla favours a large alpha) and given to both libraries.
HYPERPARAMETERS = {
    "ml-1m-implicit-lightgcnpp": (5.0, 0.1),
    "gowalla-lightgcn": (40.0, 10.0),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(HYPERPARAMETERS))
    p.add_argument("--factors", type=int, nargs="+", default=[64, 128])
    p.add_argument("--solvers", nargs="+", default=["cg", "cholesky"], choices=["cg", "cholesky"])
    p.add_argument("--float64-factors", type=int, nargs="*", default=[64],
                   help="factor counts of the float64 cases (none: float32 only)")
    p.add_argument("--iterations", type=int, default=15, help="iterations of the quality fits")
    p.add_argument("--timing-iterations", type=int, default=3, help="iterations per timed fit")
    p.add_argument("--repeats", type=int, default=3, help="timed fits per library and case")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="MovieLens only, 32 factors, few iterations; writes nothing")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.factors, args.iterations = ["ml-1m-implicit-lightgcnpp"], [32], 3
        args.float64_factors = [32]
        args.timing_iterations, args.repeats = 2, 1
    return args


# ----------------------------------------------------------------------------------------
# data (shared with bpr_implicit.py and ease.py)
# ----------------------------------------------------------------------------------------
def load_split(name: str) -> tuple[Any, Any]:
    """(train, test) Interactions of a LightGCN-style split: train = train.txt + valid.txt."""
    import scipy.sparse as sp
    from recforge.data import Interactions
    from recforge.datasets import read_implicit_lists, shared_data_path

    root = shared_data_path(name)
    if root is None:
        raise SystemExit(f"data set {name!r} not found; set RECFORGE_DATA to the folder that holds it")
    parts = {part: read_implicit_lists(root / f"{part}.txt") for part in ("train", "valid", "test")}
    n_users = max(int(d.user_ids.max()) for d in parts.values()) + 1
    n_items = max(int(d.item_ids.max()) for d in parts.values()) + 1
    uid, iid = list(range(n_users)), list(range(n_items))
    fixed = {part: read_implicit_lists(root / f"{part}.txt", user_ids=uid, item_ids=iid) for part in parts}
    merged = sp.csr_matrix(fixed["train"].matrix + fixed["valid"].matrix)
    merged.data[:] = 1.0
    train = Interactions.from_scipy(merged, user_ids=uid, item_ids=iid)
    return train, fixed["test"]


def factor_model(user_factors: Any, item_factors: Any, train: Any, dtype: Any = "float32") -> Any:
    """Fixed factors (e.g. a peer's) as a fitted recforge FactorRecommender of that dtype."""
    import numpy as np
    from recforge.factorization import FactorRecommender

    class PeerFactors(FactorRecommender):
        def __init__(self) -> None:
            pass

        def _fit(self, data: Any) -> None:
            self.user_factors_ = np.ascontiguousarray(user_factors, dtype=dtype)
            self.item_factors_ = np.ascontiguousarray(item_factors, dtype=dtype)

    return PeerFactors().fit(train)


def score_difference(a: Any, b: Any, n_users: int = 1000) -> float:
    """max |a's scores - b's scores| / max |b's scores| over the first users, in float64."""
    import numpy as np

    sa = a.user_factors_[:n_users].astype(np.float64) @ a.item_factors_.T.astype(np.float64)
    sb = b.user_factors_[:n_users].astype(np.float64) @ b.item_factors_.T.astype(np.float64)
    return float(np.abs(sa - sb).max() / np.abs(sb).max())


def quality(model: Any, train: Any, test: Any, threads: int) -> dict[str, float]:
    import recforge as rf

    table = rf.evaluate(model, train, test, k=20, metrics=["recall", "ndcg"], fit=False, n_threads=threads)
    return {f"{m}@20": float(v) for m, v in zip(table["metric"], table["value"])}


def rel(a: float, b: float) -> float:
    """Relative difference of a to b."""
    return (a - b) / b if b else float("nan")


# ----------------------------------------------------------------------------------------
# the two contenders
# ----------------------------------------------------------------------------------------
def fit_recforge(train: Any, f: int, solver: str, iterations: int, alpha: float, reg: float, threads: int,
                 seed: int, dtype: str = "float32", times: list[float] | None = None) -> Any:
    import recforge as rf

    stamps: list[float] = []
    model = rf.ALS(f, regularization=reg, alpha=alpha, solver=solver, cg_steps=3, iterations=iterations,
                   dtype=dtype, random_state=seed, n_threads=threads)
    model.fit(train, callbacks=[lambda m, e, logs: stamps.append(time.perf_counter())], show_progress=False)
    if times is not None:  # the first interval also holds fit's set-up, so it is left out
        times.extend(b - a for a, b in itertools.pairwise(stamps))
    return model


def fit_implicit(matrix: Any, f: int, solver: str, iterations: int, alpha: float, reg: float, threads: int,
                 seed: int, dtype: str = "float32", times: list[float] | None = None) -> Any:
    import numpy as np
    from implicit.cpu.als import AlternatingLeastSquares

    elapsed: list[float] = []
    model = AlternatingLeastSquares(factors=f, regularization=reg, alpha=alpha, use_cg=solver == "cg",
                                    iterations=iterations, num_threads=threads, random_state=seed,
                                    dtype=np.dtype(dtype))
    model.cg_steps = 3
    if dtype != "float32":  # recforge's start: drawn in float32 (users, then items), then widened
        rng = np.random.default_rng(seed)
        n_users, n_items = matrix.shape
        model.user_factors = (rng.random((n_users, f), dtype=np.float32) * np.float32(0.01)).astype(dtype)
        model.item_factors = (rng.random((n_items, f), dtype=np.float32) * np.float32(0.01)).astype(dtype)
    model.fit(matrix, show_progress=False, callback=lambda it, secs, loss: elapsed.append(secs))
    if times is not None:
        times.extend(elapsed[1:])
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env_changes = H.prepare_environment(1)  # implicit wants single-threaded BLAS

    import implicit
    import numpy as np
    from recforge import _core

    results: list[dict[str, Any]] = []
    for name in args.datasets:
        alpha, reg = HYPERPARAMETERS.get(name, (5.0, 0.1))
        t0 = time.perf_counter()
        train, test = load_split(name)
        matrix = train.matrix.tocsr().astype(np.float32)
        print(f"{name}: {train.n_users:,} users x {train.n_items:,} items, {train.nnz:,} train and "
              f"{test.nnz:,} test interactions (loaded in {time.perf_counter() - t0:.1f}s)", flush=True)
        cases = [(f, "float32") for f in args.factors] + [(f, "float64") for f in args.float64_factors]
        for f, dtype in cases:
            for solver in args.solvers:
                case: dict[str, Any] = {"dataset": name, "factors": f, "solver": solver, "dtype": dtype,
                                        "alpha": alpha, "regularization": reg, "iterations": args.iterations,
                                        "threads": args.threads}
                per_iter: dict[str, list[float]] = {"recforge": [], "implicit": []}
                common = (f, solver, args.timing_iterations, alpha, reg, args.threads, args.seed, dtype)
                timing = H.time_interleaved(
                    {
                        "recforge": lambda c=common, t=per_iter["recforge"], d=train: fit_recforge(d, *c, times=t),
                        "implicit": lambda c=common, t=per_iter["implicit"], m=matrix: fit_implicit(m, *c, times=t),
                    },
                    repeats=args.repeats, warmup=1,
                )
                # the warm-up round's iterations are the first ones recorded: drop them
                n_warm = args.timing_iterations - 1
                for key in per_iter:
                    per_iter[key] = per_iter[key][n_warm:]
                qcommon = (f, solver, args.iterations, alpha, reg, args.threads, args.seed, dtype)
                ours = fit_recforge(train, *qcommon)
                peer = fit_implicit(matrix, *qcommon)
                peer_model = factor_model(peer.user_factors, peer.item_factors, train, dtype)
                assert ours.user_factors_.dtype == peer_model.user_factors_.dtype == np.dtype(dtype)
                q_ours = quality(ours, train, test, args.threads)
                q_peer = quality(peer_model, train, test, args.threads)
                s_ours = statistics.median(per_iter["recforge"])
                s_peer = statistics.median(per_iter["implicit"])
                case.update(
                    quality={"recforge": q_ours, "implicit": q_peer,
                             "relative_difference": {k: rel(q_ours[k], q_peer[k]) for k in q_ours}},
                    seconds_per_iteration={"recforge": s_ours, "implicit": s_peer,
                                           "recforge_all": per_iter["recforge"],
                                           "implicit_all": per_iter["implicit"]},
                    speedup=s_peer / s_ours,
                    score_max_rel_diff=score_difference(ours, peer_model),
                    fit_timing=timing,
                )
                results.append(case)
                print(f"  f={f:<4d} {dtype} {solver:<8s} recall@20 {q_ours['recall@20']:.4f} vs {q_peer['recall@20']:.4f}  "
                      f"ndcg@20 {q_ours['ndcg@20']:.4f} vs {q_peer['ndcg@20']:.4f}  "
                      f"s/iter {s_ours:.3f} vs {s_peer:.3f} (x{s_peer / s_ours:.2f})", flush=True)

    env = H.environment(args.threads)
    env["implicit"] = implicit.__version__
    env["recforge_vector_kernel"] = _core.factorization_implicit.vector_kernel_name()
    env["recforge_vector_kernel_f64"] = _core.factorization_implicit.vector_kernel_name_f64()
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    params["hyperparameters"] = {k: {"alpha": a, "regularization": r} for k, (a, r) in HYPERPARAMETERS.items()}
    markdown = report(results, env)
    print(markdown)
    if args.quick and args.results_dir is None:
        return 0
    paths = H.write_results(NAME, {"params": params, "env": env, "env_changes": env_changes, "results": results},
                            markdown, results_dir=args.results_dir)
    print("wrote", *paths)
    return 0


def report(results: list[dict[str, Any]], env: dict[str, Any]) -> str:
    rows = []
    for r in results:
        q, s = r["quality"], r["seconds_per_iteration"]
        rows.append([
            r["dataset"], r["factors"], r["solver"], r.get("dtype", "float32"),
            f"{q['implicit']['recall@20']:.4f}", f"{q['recforge']['recall@20']:.4f}",
            f"{100 * q['relative_difference']['recall@20']:+.2f}%",
            f"{q['implicit']['ndcg@20']:.4f}", f"{q['recforge']['ndcg@20']:.4f}",
            f"{100 * q['relative_difference']['ndcg@20']:+.2f}%",
            f"{s['implicit']:.3f}", f"{s['recforge']:.3f}", f"{r['speedup']:.2f}x",
            f"{r['score_max_rel_diff']:.1e}",
        ])
    speedups = [r["speedup"] for r in results if r.get("dtype", "float32") == "float32"]
    speedups64 = [r["speedup"] for r in results if r.get("dtype") == "float64"]
    cost64 = []  # recforge's float64 seconds per iteration over its float32 ones, same case
    for r in results:
        if r.get("dtype") != "float64":
            continue
        for q in results:
            if q.get("dtype", "float32") == "float32" and all(q[k] == r[k] for k in ("dataset", "factors", "solver")):
                cost64.append((r, r["seconds_per_iteration"]["recforge"] / q["seconds_per_iteration"]["recforge"],
                               r["seconds_per_iteration"]["implicit"] / q["seconds_per_iteration"]["implicit"]))
    worst_q = max((abs(v) for r in results for v in r["quality"]["relative_difference"].values()), default=float("nan"))
    threads = results[0]["threads"] if results else "?"
    lines = [
        "# Implicit ALS: recforge.ALS vs implicit",
        "",
        (f"Train = train.txt + valid.txt, test = test.txt; {results[0]['iterations'] if results else '?'} iterations, "
         f"CG with 3 steps or exact Cholesky, {threads} threads for both, the same alpha, regularization, "
         "seed and initialisation (uniform [0, 0.01)). Quality by `recforge.evaluate` for both models. "
         "Seconds per iteration: median over timed iterations (implicit's own per-iteration callback; "
         "recforge's epoch callbacks), fits alternating between the libraries. Speed-up = implicit / recforge."),
        "",
        H.markdown_table(
            ["data", "factors", "solver", "dtype", "Recall@20 implicit", "Recall@20 recforge", "diff",
             "nDCG@20 implicit", "nDCG@20 recforge", "diff", "s/iter implicit", "s/iter recforge", "speed-up",
             "score diff"],
            rows,
        ),
        "",
        f"float32: median speed-up {statistics.median(speedups):.2f}x (range {min(speedups):.2f}x to "
        f"{max(speedups):.2f}x); largest quality difference {100 * worst_q:.2f}% relative (all rows)."
        if speedups else "",
        "",
        (f"float64: median speed-up {statistics.median(speedups64):.2f}x (range {min(speedups64):.2f}x to "
         f"{max(speedups64):.2f}x). Time per iteration of float64 over float32, same case: "
         + "; ".join(f"{r['dataset']} {r['factors']} {r['solver']}: recforge {a:.2f}x, implicit {b:.2f}x"
                     for r, a, b in cost64) + ".") if speedups64 else "",
        "",
        "Score diff: the largest |recforge score - implicit score| over the first 1,000 users, relative to "
        "the largest score (both models start from the same factors).",
        "",
        "Hyperparameters (alpha, regularization): "
        + "; ".join(f"{k}: {a}, {r}" for k, (a, r) in HYPERPARAMETERS.items()),
        "",
        H.describe_env_markdown(env),
        (f"- implicit {env.get('implicit')} (OPENBLAS_NUM_THREADS=1); recforge vector kernels "
         f"`{env.get('recforge_vector_kernel', '?')}` (float32), "
         f"`{env.get('recforge_vector_kernel_f64', '?')}` (float64)"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
