#!/usr/bin/env python
"""Feature factorization: ``recforge.FeatureFactorization`` against LightFM, same features.

Two data sets with side features, in one process:

* **ml-100k**: all 100k ratings as implicit interactions, a random 80/20 holdout (seed 0);
  item features = identity + the 19 genre indicators, user features = identity + gender,
  occupation and age band (one-hot).
* **coat**: ratings >= 4 of ``train.ascii`` (self-selected) for training and of ``test.ascii``
  (random items) for testing; user and item features = identity + the shipped one-hot tables.

Both models get the very same CSR feature matrices (rows normalised to sum 1, as LightFM's
``Dataset`` does by default), the same loss, components, learning rate, item/user alpha,
max_sampled, epochs and threads. recforge is run with ``identity_features=False`` (the
identity columns are already in the matrices) and LightFM's sampling scheme
(``negatives="all"`` for WARP, ``"popularity"`` for BPR, which is how LightFM's BPR draws).
Quality: precision@10 and ROC AUC on the test interactions, train items excluded, computed
by the same NumPy code from each model's full score matrix (LightFM's own
``precision_at_k``/``auc_score`` are recorded as a cross-check). Fit time: wall clock of
``fit``, the contenders alternating, median over the seeds. Results go to
``results/lightfm_compare.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H

NAME = "lightfm_compare"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "coat"])
    p.add_argument("--losses", nargs="+", default=["warp", "bpr"])
    p.add_argument("--components", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--alpha", type=float, default=1e-6, help="item_alpha = user_alpha")
    p.add_argument("--max-sampled", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--seeds-for", nargs="*", default=["coat=50"], metavar="DATASET=N",
                   help="use seeds 0..N-1 for a data set (Coat's precision@10 moves by several percent from "
                        "seed to seed, so it needs more fits for a mean that can be compared at 2%%)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="ml-100k, warp, 5 epochs, one seed; writes nothing")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.losses, args.epochs, args.seeds = ["ml-100k"], ["warp"], 5, [0]
    return args


def _normalised(blocks: list[Any]) -> Any:
    import numpy as np
    import scipy.sparse as sp

    m = sp.csr_matrix(sp.hstack(blocks, format="csr"), dtype=np.float32)
    sums = np.asarray(m.sum(axis=1)).ravel()
    m = sp.csr_matrix(sp.diags(1.0 / np.where(sums > 0, sums, 1.0)) @ m, dtype=np.float32)
    m.sort_indices()
    return m


def load(name: str) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    import recforge as rf

    folder = rf.datasets.shared_data_path(name)
    if folder is None:
        raise SystemExit(f"data set {name} not found (set RECFORGE_DATA)")
    if name == "ml-100k":
        data = rf.datasets.read_movielens(folder)
        train, test = rf.split.random_holdout(data, test_fraction=0.2, random_state=0)
        genres = data.item_features[[c for c in data.item_features.columns if c.startswith("genre_")]]
        users = data.user_features.copy()
        users["age_band"] = pd.cut(users["age"], [0, 18, 25, 35, 45, 50, 56, 200], right=False).astype(str)
        user_table = rf.FeatureEncoder(categorical=["gender", "occupation", "age_band"],
                                       exclude=["age", "zip"]).fit_transform(users)
        item_f = _normalised([sp.identity(data.n_items, format="csr"), sp.csr_matrix(genres.to_numpy(np.float32))])
        user_f = _normalised([sp.identity(data.n_users, format="csr"), user_table])
        note = "all ratings as interactions, random 80/20 holdout"
    elif name == "coat":
        train_all, test_all = rf.datasets.read_coat(folder)
        train = train_all.subset(train_all.ratings >= 4)
        # 91 (user, coat) pairs are rated in both files: keep them out of the test set
        in_train = train_all.matrix.multiply(test_all.matrix.astype(bool)).tocsr()
        overlap = np.asarray(in_train[test_all.matrix.nonzero()]).ravel() != 0
        test = test_all.subset((test_all.ratings >= 4) & ~overlap)
        item_f = _normalised([sp.identity(train.n_items, format="csr"),
                              sp.csr_matrix(train.item_features.to_numpy(np.float32))])
        user_f = _normalised([sp.identity(train.n_users, format="csr"),
                              sp.csr_matrix(train.user_features.to_numpy(np.float32))])
        note = "ratings >= 4; train.ascii (self-selected) / test.ascii (random items, pairs also in train.ascii left out)"
    else:
        raise SystemExit(f"unknown data set {name}")
    R = sp.csr_matrix(train.matrix, dtype=np.float32)
    R.data[:] = 1.0
    return {"name": name, "train": train, "test": test, "R": R, "T": test.matrix.tocsr(), "user_f": user_f,
            "item_f": item_f, "note": note}


def metrics(scores: Any, R: Any, T: Any, k: int = 10) -> dict[str, float]:
    """precision@k and ROC AUC per user (train items left out), averaged over test users."""
    import numpy as np
    from scipy.stats import rankdata

    precision, auc = [], []
    for u in range(scores.shape[0]):
        pos = T.indices[T.indptr[u]:T.indptr[u + 1]]
        if len(pos) == 0:
            continue
        s = scores[u].astype(np.float64).copy()
        s[R.indices[R.indptr[u]:R.indptr[u + 1]]] = -np.inf
        top = np.argpartition(-s, k)[:k]
        precision.append(np.isin(top, pos).sum() / k)
        keep = np.isfinite(s)
        is_pos = np.zeros(len(s), bool)
        is_pos[pos] = True
        ranks = rankdata(s[keep])
        p = is_pos[keep]
        n_pos, n_neg = p.sum(), (~p).sum()
        if n_pos and n_neg:
            auc.append((ranks[p].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return {"precision@10": float(np.mean(precision)), "auc": float(np.mean(auc))}


def fit_lightfm(d: dict[str, Any], loss: str, args: argparse.Namespace, seed: int) -> tuple[float, Any, Any]:
    from lightfm import LightFM

    model = LightFM(no_components=args.components, loss=loss, learning_rate=args.learning_rate,
                    item_alpha=args.alpha, user_alpha=args.alpha, max_sampled=args.max_sampled, random_state=seed)
    t0 = time.perf_counter()
    model.fit(d["R"].tocoo(), user_features=d["user_f"], item_features=d["item_f"], epochs=args.epochs,
              num_threads=args.threads)
    elapsed = time.perf_counter() - t0
    ub, ue = model.get_user_representations(d["user_f"])
    ib, ie = model.get_item_representations(d["item_f"])
    return elapsed, ue @ ie.T + ub[:, None] + ib[None, :], model


def fit_recforge(d: dict[str, Any], loss: str, args: argparse.Namespace, seed: int) -> tuple[float, Any, Any]:
    import numpy as np

    import recforge as rf

    model = rf.FeatureFactorization(
        args.components, loss=loss, learning_rate=args.learning_rate, item_alpha=args.alpha, user_alpha=args.alpha,
        max_sampled=args.max_sampled, epochs=args.epochs, identity_features=False,
        negatives="all" if loss == "warp" else "popularity", random_state=seed, n_threads=args.threads,
    )
    t0 = time.perf_counter()
    model.fit(d["R"], user_features=d["user_f"], item_features=d["item_f"], show_progress=False)
    elapsed = time.perf_counter() - t0
    return elapsed, model._dense_scores(np.arange(d["R"].shape[0])), model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env_changes = H.prepare_environment(args.threads)

    import lightfm
    import numpy as np
    from lightfm.evaluation import auc_score, precision_at_k

    results = []
    for name in args.datasets:
        d = load(name)
        print(f"{name}: {d['R'].shape[0]} users x {d['R'].shape[1]} items, {d['R'].nnz} train / {d['T'].nnz} test; "
              f"{d['user_f'].shape[1]} user / {d['item_f'].shape[1]} item features", flush=True)
        overrides = dict(item.split("=", 1) for item in args.seeds_for)
        seeds = list(range(int(overrides[name]))) if name in overrides else args.seeds
        for loss in args.losses:
            times: dict[str, list[float]] = {"lightfm": [], "recforge": []}
            quality: dict[str, list[dict[str, float]]] = {"lightfm": [], "recforge": []}
            check = []
            for r, seed in enumerate(seeds):
                order = ["lightfm", "recforge"] if r % 2 == 0 else ["recforge", "lightfm"]
                for c in order:
                    fit = fit_lightfm if c == "lightfm" else fit_recforge
                    elapsed, scores, model = fit(d, loss, args, seed)
                    times[c].append(elapsed)
                    quality[c].append(metrics(scores, d["R"], d["T"]))
                    if c == "lightfm" and r == 0:
                        check.append({
                            "lightfm_precision_at_k": float(precision_at_k(
                                model, d["T"], train_interactions=d["R"], k=10, user_features=d["user_f"],
                                item_features=d["item_f"], num_threads=args.threads).mean()),
                            "lightfm_auc_score": float(auc_score(
                                model, d["T"], train_interactions=d["R"], user_features=d["user_f"],
                                item_features=d["item_f"], num_threads=args.threads).mean()),
                            "ours_on_lightfm": quality[c][-1],
                        })
            mean = {c: {m: float(np.mean([q[m] for q in quality[c]])) for m in quality[c][0]} for c in quality}
            med = {c: statistics.median(times[c]) for c in times}
            case = {
                "dataset": name, "note": d["note"], "loss": loss, "components": args.components, "epochs": args.epochs,
                "threads": args.threads, "learning_rate": args.learning_rate, "alpha": args.alpha,
                "max_sampled": args.max_sampled, "seeds": seeds, "quality_mean": mean, "quality_per_seed": quality,
                "relative_difference": {m: (mean["recforge"][m] - mean["lightfm"][m]) / mean["lightfm"][m]
                                        for m in mean["lightfm"]},
                "seed_std": {c: {m: float(np.std([q[m] for q in quality[c]], ddof=1)) if len(quality[c]) > 1 else 0.0
                                 for m in quality[c][0]} for c in quality},
                "fit_seconds": times, "fit_seconds_median": med, "speedup": med["lightfm"] / med["recforge"],
                "evaluator_cross_check": check,
            }
            results.append(case)
            print(f"  {loss}: lightfm p@10 {mean['lightfm']['precision@10']:.4f} auc {mean['lightfm']['auc']:.4f} "
                  f"{med['lightfm']:.2f}s | recforge p@10 {mean['recforge']['precision@10']:.4f} "
                  f"auc {mean['recforge']['auc']:.4f} {med['recforge']:.2f}s | speed-up {case['speedup']:.2f}x",
                  flush=True)
    env = H.environment(args.threads)
    env["lightfm"] = getattr(lightfm, "__version__", "?")
    markdown = report(results, env, args)
    print(markdown)
    if args.quick and args.results_dir is None:
        return 0
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    paths = H.write_results(NAME, {"params": params, "env": env, "env_changes": env_changes, "results": results},
                            markdown, results_dir=args.results_dir)
    print("wrote", *paths)
    return 0


def report(results: list[dict[str, Any]], env: dict[str, Any], args: argparse.Namespace) -> str:
    rows = []
    for r in results:
        for c in ("lightfm", "recforge"):
            q = r["quality_mean"][c]
            rows.append([
                r["dataset"], r["loss"], c, len(r["seeds"]), f"{q['precision@10']:.4f}",
                f"{r['seed_std'][c]['precision@10']:.4f}",
                "" if c == "lightfm" else f"{100 * r['relative_difference']['precision@10']:+.2f}%",
                f"{q['auc']:.4f}", "" if c == "lightfm" else f"{100 * r['relative_difference']['auc']:+.2f}%",
                f"{r['fit_seconds_median'][c]:.3f}", "" if c == "lightfm" else f"{r['speedup']:.2f}x",
            ])
    worst = max(abs(v) for r in results for v in r["relative_difference"].values())
    speed = [r["speedup"] for r in results]
    lines = [
        "# Feature factorization: recforge.FeatureFactorization vs LightFM",
        "",
        (f"Same CSR feature matrices (identity + side features, rows normalised to sum 1), {args.components} "
         f"components, {args.epochs} epochs, learning rate {args.learning_rate}, item/user alpha {args.alpha}, "
         f"max_sampled {args.max_sampled}, Adagrad, {args.threads} threads; quality is the mean over the seeds "
         "(column `fits`: one fit per seed and model), fit time the median over the same fits (contenders "
         "alternating). precision@10 and ROC AUC exclude train items and are computed by the same code for both "
         "models; `sd` is the standard deviation of precision@10 over the seeds."),
        "",
        H.markdown_table(["data", "loss", "model", "fits", "precision@10", "sd", "diff", "AUC", "diff", "fit s",
                          "speed-up"], rows),
        "",
        (f"Largest quality difference {100 * worst:.2f}% relative; fit speed-up {min(speed):.2f}x to "
         f"{max(speed):.2f}x (median {statistics.median(speed):.2f}x)."),
        "",
        "Data: " + "; ".join(f"{r['dataset']}: {r['note']}" for r in results if r["loss"] == results[0]["loss"]) + ".",
        "",
        H.describe_env_markdown(env),
        f"- LightFM {env.get('lightfm')} (OpenMP build, num_threads={args.threads})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
