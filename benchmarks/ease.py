#!/usr/bin/env python
"""EASE next to ALS, BPR, LMF and item-kNN on MovieLens-1M (LightGCN split).

Every model's hyperparameters are picked on the validation split (fit on ``train.txt``,
nDCG@20 on ``valid.txt``) from a small grid; the chosen configuration is then fitted on
``train.txt`` + ``valid.txt`` and scored on ``test.txt`` (Recall@20 and nDCG@20 by
``recforge.evaluate``, seen items excluded). Fit times are wall-clock seconds at
``--threads`` threads. On Gowalla (40,981 items) EASE's dense item-item matrices would need
about 13 GB, above the default ``max_items``; the run records the error message instead.
Results go to ``results/ease.json`` and ``results/ease.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H
from als_implicit import load_split

NAME = "ease"
DATASET = "ml-1m-implicit-lightgcnpp"


def grids(threads: int, quick: bool) -> dict[str, list[tuple[str, Any]]]:
    import recforge as rf

    if quick:
        return {
            "EASE": [("lambda=500", lambda: rf.EASE(500.0, n_threads=threads))],
            "ALS": [("f=32", lambda: rf.ALS(32, alpha=5.0, regularization=0.1, iterations=5, random_state=0,
                                             n_threads=threads))],
        }
    out: dict[str, list[tuple[str, Any]]] = {
        "EASE": [(f"lambda={lam:g}", (lambda lam=lam: rf.EASE(lam, n_threads=threads)))
                 for lam in (100.0, 250.0, 500.0, 1000.0, 2000.0)],
        "ALS": [(f"f={f} alpha={a:g} reg={r:g}",
                 (lambda f=f, a=a, r=r: rf.ALS(f, alpha=a, regularization=r, iterations=15, random_state=0,
                                               n_threads=threads)))
                for f in (64, 128) for a, r in ((2.0, 0.1), (5.0, 0.1), (5.0, 1.0), (10.0, 1.0))],
        "BPR": [(f"f=128 lr={lr:g}",
                 (lambda lr=lr: rf.BPR(128, learning_rate=lr, regularization=0.01, epochs=100, random_state=0,
                                       n_threads=threads)))
                for lr in (0.01, 0.05, 0.1)],
        "LMF": [(f"f=128 lr={lr:g}",
                 (lambda lr=lr: rf.LMF(128, learning_rate=lr, regularization=0.01, epochs=100, random_state=0,
                                       n_threads=threads)))
                for lr in (0.01, 0.05)],
    }
    if hasattr(rf, "ItemKNN"):
        out["ItemKNN"] = [(f"k={k} {sim}", (lambda k=k, sim=sim: rf.ItemKNN(k=k, similarity=sim, n_threads=threads)))
                          for k in (50, 200) for sim in ("cosine", "bm25")]
    return out


def fit_timed(make: Any, train: Any) -> tuple[Any, float]:
    model = make()
    kwargs = {"show_progress": False} if "show_progress" in model.fit.__code__.co_varnames else {}
    t0 = time.perf_counter()
    model.fit(train, **kwargs)
    return model, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="two models, one configuration each; writes nothing")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    env_changes = H.prepare_environment(1)

    import numpy as np
    import recforge as rf
    import scipy.sparse as sp
    from recforge.data import Interactions
    from recforge.datasets import read_implicit_lists, shared_data_path

    root = shared_data_path(DATASET)
    if root is None:
        raise SystemExit(f"data set {DATASET!r} not found; set RECFORGE_DATA")
    full_train, test = load_split(DATASET)
    uid, iid = full_train.user_ids, full_train.item_ids
    tuning_train = read_implicit_lists(root / "train.txt", user_ids=uid, item_ids=iid)
    valid = read_implicit_lists(root / "valid.txt", user_ids=uid, item_ids=iid)

    def score(model: Any, train: Interactions, held_out: Interactions) -> dict[str, float]:
        table = rf.evaluate(model, train, held_out, k=20, metrics=["recall", "ndcg"], fit=False,
                            n_threads=args.threads)
        return {f"{m}@20": float(v) for m, v in zip(table["metric"], table["value"])}

    rows: list[dict[str, Any]] = []
    for family, configs in grids(args.threads, args.quick).items():
        tuning = []
        for label, make in configs:
            model, secs = fit_timed(make, tuning_train)
            tuning.append({"config": label, "valid": score(model, tuning_train, valid), "fit_seconds": secs})
            print(f"  {family} {label}: valid ndcg@20 {tuning[-1]['valid']['ndcg@20']:.4f} ({secs:.1f}s)", flush=True)
        best = max(range(len(configs)), key=lambda k: tuning[k]["valid"]["ndcg@20"])
        model, secs = fit_timed(configs[best][1], full_train)
        rows.append({"model": family, "config": configs[best][0], "test": score(model, full_train, test),
                     "fit_seconds": secs, "tuning": tuning})
        print(f"{family} ({configs[best][0]}): {rows[-1]['test']} fit {secs:.1f}s", flush=True)

    gowalla_note = None
    if not args.quick and shared_data_path("gowalla-lightgcn") is not None:
        g_train, _ = load_split("gowalla-lightgcn")
        try:
            rf.EASE(n_threads=args.threads).fit(g_train)
        except MemoryError as exc:
            gowalla_note = str(exc)
    env = H.environment(args.threads)
    markdown = report(rows, env, gowalla_note)
    print(markdown)
    if args.quick and args.results_dir is None:
        return 0
    payload = {"params": {"dataset": DATASET, "threads": args.threads}, "env": env, "env_changes": env_changes,
               "results": rows, "gowalla_ease": gowalla_note}
    print("wrote", *H.write_results(NAME, payload, markdown, results_dir=args.results_dir))
    del np, sp
    return 0


def report(rows: list[dict[str, Any]], env: dict[str, Any], gowalla_note: str | None) -> str:
    table = H.markdown_table(
        ["model", "configuration (best on valid)", "Recall@20", "nDCG@20", "fit seconds"],
        [[r["model"], r["config"], f"{r['test']['recall@20']:.4f}", f"{r['test']['ndcg@20']:.4f}",
          f"{r['fit_seconds']:.1f}"] for r in rows],
    )
    lines = [
        "# EASE, ALS, BPR, LMF and item-kNN on MovieLens-1M",
        "",
        ("LightGCN split of MovieLens-1M (ratings >= 3 as interactions). Hyperparameters picked by nDCG@20 on "
         "valid.txt after fitting on train.txt; the chosen models are refitted on train.txt + valid.txt and "
         "scored on test.txt (seen items excluded). Fit seconds: the refit, "
         f"{env.get('threads')} threads."),
        "",
        table,
        "",
    ]
    if gowalla_note:
        lines += ["On Gowalla EASE refuses to fit with the default `max_items`:", "", f"> {gowalla_note}", ""]
    lines.append(H.describe_env_markdown(env))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
