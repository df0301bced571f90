#!/usr/bin/env python
"""BPR: ``recforge.BPR`` against ``implicit``'s ``BayesianPersonalizedRanking`` (CPU).

Same data as ``als_implicit.py`` (LightGCN splits of Gowalla and MovieLens-1M, train =
``train.txt`` + ``valid.txt``), the same factors, learning rate, regularization, epochs and
threads, in one process. implicit draws the negative item in proportion to its popularity (the
item of another random interaction) and skips a triple whose negative the user interacted
with; recforge runs twice:

* **recforge (implicit's sampling)**: ``negative_sampling="popularity", negative_draws=1``,
  the same sampling scheme, for the like-for-like comparison of quality and speed;
* **recforge (uniform)**: its default, uniform negatives drawn again until valid (the paper's
  scheme), reported alongside.

Every configuration is fitted with ``--seeds`` seeds (Hogwild SGD with several threads is not
deterministic, and BPR's quality moves by a percent or two from seed to seed); quality is the
mean over seeds of Recall@20 and nDCG@20 by ``recforge.evaluate`` (implicit's factors, with its
bias column, are wrapped in a ``FactorRecommender``). Seconds per epoch are the median over all
epochs after the first of every fit (implicit's per-epoch callback; recforge's epoch
callbacks), with the fits of the contenders alternating. Results go to
``results/bpr_implicit.json`` and ``results/bpr_implicit.md``.
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
from als_implicit import factor_model, load_split, quality, rel

NAME = "bpr_implicit"
CONTENDERS = ("implicit", "recforge_popularity", "recforge_uniform")
LABELS = {
    "implicit": "implicit",
    "recforge_popularity": "recforge (implicit's sampling)",
    "recforge_uniform": "recforge (uniform)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["ml-1m-implicit-lightgcnpp", "gowalla-lightgcn"])
    p.add_argument("--factors", type=int, nargs="+", default=[64, 128])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--learning-rate", type=float, default=0.01)
    p.add_argument("--regularization", type=float, default=0.01)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="MovieLens only, 32 factors, 5 epochs; writes nothing")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.factors, args.epochs, args.seeds = ["ml-1m-implicit-lightgcnpp"], [32], 5, [0]
    return args


def fit_implicit(matrix: Any, train: Any, f: int, args: argparse.Namespace, seed: int, times: list[float]) -> Any:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    elapsed: list[float] = []
    model = BayesianPersonalizedRanking(factors=f, learning_rate=args.learning_rate,
                                        regularization=args.regularization, iterations=args.epochs,
                                        num_threads=args.threads, verify_negative_samples=True, random_state=seed)
    model.fit(matrix, show_progress=False, callback=lambda epoch, secs, *rest: elapsed.append(secs))
    times.extend(elapsed[1:])
    # implicit's last item column is the bias and its users' last column is 1
    return factor_model(model.user_factors, model.item_factors, train)


def fit_recforge(train: Any, f: int, args: argparse.Namespace, seed: int, times: list[float], sampling: str) -> Any:
    import recforge as rf

    stamps: list[float] = []
    model = rf.BPR(f, learning_rate=args.learning_rate, regularization=args.regularization, epochs=args.epochs,
                   negative_sampling=sampling, negative_draws=1 if sampling == "popularity" else 64,
                   random_state=seed, n_threads=args.threads)
    model.fit(train, callbacks=[lambda m, e, logs: stamps.append(time.perf_counter())], show_progress=False)
    times.extend(b - a for a, b in itertools.pairwise(stamps))
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env_changes = H.prepare_environment(1)

    import implicit
    import numpy as np
    from recforge import _core

    results: list[dict[str, Any]] = []
    for name in args.datasets:
        train, test = load_split(name)
        matrix = train.matrix.tocsr().astype(np.float32)
        print(f"{name}: {train.n_users:,} users x {train.n_items:,} items, {train.nnz:,} interactions", flush=True)
        for f in args.factors:
            times: dict[str, list[float]] = {c: [] for c in CONTENDERS}
            per_seed: dict[str, list[dict[str, float]]] = {c: [] for c in CONTENDERS}
            def run(contender: str, seed: int, f: int = f, times: dict = times, matrix: Any = matrix,
                    train: Any = train) -> Any:
                if contender == "implicit":
                    return fit_implicit(matrix, train, f, args, seed, times["implicit"])
                sampling = "popularity" if contender == "recforge_popularity" else "uniform"
                return fit_recforge(train, f, args, seed, times[contender], sampling)

            for r, seed in enumerate(args.seeds):
                order = list(CONTENDERS[r % 3:] + CONTENDERS[: r % 3])  # rotate who goes first
                for c in order:
                    per_seed[c].append(quality(run(c, seed), train, test, args.threads))
            mean = {c: {k: float(np.mean([q[k] for q in per_seed[c]])) for k in per_seed[c][0]} for c in CONTENDERS}
            sec = {c: statistics.median(times[c]) for c in CONTENDERS}
            case = {
                "dataset": name, "factors": f, "epochs": args.epochs, "threads": args.threads,
                "learning_rate": args.learning_rate, "regularization": args.regularization, "seeds": args.seeds,
                "quality_mean": mean, "quality_per_seed": per_seed,
                "relative_difference_vs_implicit": {
                    c: {k: rel(mean[c][k], mean["implicit"][k]) for k in mean[c]} for c in CONTENDERS[1:]
                },
                "seconds_per_epoch": sec, "seconds_per_epoch_all": times,
                "speedup_vs_implicit": {c: sec["implicit"] / sec[c] for c in CONTENDERS[1:]},
            }
            results.append(case)
            print(f"  f={f}: " + "; ".join(
                f"{LABELS[c]} recall {mean[c]['recall@20']:.4f} ndcg {mean[c]['ndcg@20']:.4f} {sec[c]:.3f}s/epoch"
                for c in CONTENDERS), flush=True)

    env = H.environment(args.threads)
    env["implicit"] = implicit.__version__
    env["recforge_vector_kernel"] = _core.factorization_implicit.vector_kernel_name()
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    markdown = report(results, env, args)
    print(markdown)
    if args.quick and args.results_dir is None:
        return 0
    paths = H.write_results(NAME, {"params": params, "env": env, "env_changes": env_changes, "results": results},
                            markdown, results_dir=args.results_dir)
    print("wrote", *paths)
    return 0


def report(results: list[dict[str, Any]], env: dict[str, Any], args: argparse.Namespace) -> str:
    rows = []
    for r in results:
        for c in CONTENDERS:
            q = r["quality_mean"][c]
            d = r["relative_difference_vs_implicit"].get(c)
            rows.append([
                r["dataset"], r["factors"], LABELS[c], f"{q['recall@20']:.4f}",
                "" if d is None else f"{100 * d['recall@20']:+.2f}%", f"{q['ndcg@20']:.4f}",
                "" if d is None else f"{100 * d['ndcg@20']:+.2f}%", f"{r['seconds_per_epoch'][c]:.3f}",
                "" if c == "implicit" else f"{r['speedup_vs_implicit'][c]:.2f}x",
            ])
    like = [r["speedup_vs_implicit"]["recforge_popularity"] for r in results]
    worst = max((abs(v) for r in results for v in r["relative_difference_vs_implicit"]["recforge_popularity"].values()),
                default=float("nan"))
    lines = [
        "# BPR: recforge.BPR vs implicit",
        "",
        (f"Train = train.txt + valid.txt, test = test.txt; {args.epochs} epochs, learning rate {args.learning_rate}, "
         f"regularization {args.regularization}, {args.threads} threads, item biases; quality is the mean over "
         f"seeds {args.seeds} (`recforge.evaluate` for every model). Seconds per epoch: median over all epochs "
         "after the first of every fit. Differences and speed-ups are against implicit."),
        "",
        H.markdown_table(["data", "factors", "model", "Recall@20", "diff", "nDCG@20", "diff", "s/epoch", "speed-up"],
                         rows),
        "",
        (f"With implicit's sampling scheme: median speed-up {statistics.median(like):.2f}x "
         f"(range {min(like):.2f}x to {max(like):.2f}x), largest quality difference {100 * worst:.2f}% relative."
         if like else ""),
        "",
        H.describe_env_markdown(env),
        (f"- implicit {env.get('implicit')} (OPENBLAS_NUM_THREADS=1); recforge vector kernels "
         f"`{env.get('recforge_vector_kernel', '?')}`"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
