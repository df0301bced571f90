#!/usr/bin/env python
"""k-NN rating prediction: recforge's KNN family against Surprise on MovieLens-100K.

Data: the five standard folds of ml-100k (``u1.base``/``u1.test`` ... ``u5``). For every
configuration both libraries fit on each ``uK.base`` and predict every pair of ``uK.test``
(ids unknown to the training fold get each library's fallback: the global mean, or the
baseline), clipped to the rating scale [1, 5]; RMSE is averaged over the folds.

Configurations (k = 40, min_k = 1, Surprise's default baseline options): ``KNNBasic``,
``KNNWithMeans``, ``KNNWithZScore`` and ``KNNBaseline`` with the similarities and
orientations listed in the table, plus ``BaselineOnly`` (ALS and SGD).

Timed: fit + predict over the five folds, wall clock, median of interleaved repeats. Surprise
is single-threaded; recforge runs with 1 thread (same resources) and with 2.

Results: ``results/neighbors_explicit.json`` and ``.md``. ``--quick`` runs fold 1 and two
configurations and writes nothing unless ``--results-dir`` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H

NAME = "neighbors_explicit"

# (class name, similarity, user_based)
CONFIGS: tuple[tuple[str, str | None, bool], ...] = (
    ("KNNBasic", "cosine", True),
    ("KNNBasic", "msd", True),
    ("KNNBasic", "pearson", False),
    ("KNNWithMeans", "pearson", True),
    ("KNNWithMeans", "msd", False),
    ("KNNWithZScore", "msd", True),
    ("KNNBaseline", "pearson_baseline", False),
    ("KNNBaseline", "pearson_baseline", True),
    ("KNNBaseline", "cosine", True),
    ("BaselineOnly", "als", True),
    ("BaselineOnly", "sgd", True),
)


def load_folds(folds: list[int]) -> list[tuple[Any, Any]]:
    import pandas as pd
    import recforge as rf

    folder = rf.datasets.shared_data_path("ml-100k")
    if folder is None:
        raise SystemExit("data set 'ml-100k' not found; set RECFORGE_DATA")
    cols = ["user", "item", "rating", "ts"]
    out = []
    for k in folds:
        base = pd.read_csv(folder / f"u{k}.base", sep="\t", names=cols)
        test = pd.read_csv(folder / f"u{k}.test", sep="\t", names=cols)
        out.append((base, test))
    return out


def surprise_runner(config: tuple[str, str | None, bool], folds: list[tuple[Any, Any]]):
    import numpy as np
    import surprise

    cls_name, sim, user_based = config
    trainsets = []
    for base, test in folds:
        ds = surprise.Dataset.load_from_df(
            base[["user", "item", "rating"]], surprise.Reader(rating_scale=(1, 5))
        )
        trainsets.append(
            (ds.build_full_trainset(), list(zip(test.user, test.item, test.rating.astype(float))))
        )

    def make():
        if cls_name == "BaselineOnly":
            return surprise.BaselineOnly(bsl_options={"method": sim}, verbose=False)
        cls = getattr(surprise, cls_name)
        return cls(
            k=40, min_k=1, sim_options={"name": sim, "user_based": user_based}, verbose=False
        )

    preds: list[Any] = []

    def run() -> None:
        preds.clear()
        for trainset, testset in trainsets:
            algo = make().fit(trainset)
            preds.append(np.array([p.est for p in algo.test(testset)]))

    return run, preds


def recforge_runner(
    config: tuple[str, str | None, bool], folds: list[tuple[Any, Any]], threads: int
):
    import recforge as rf

    cls_name, sim, user_based = config
    data = [
        (rf.Interactions.from_pandas(base, rating_col="rating", timestamp_col="ts"), test)
        for base, test in folds
    ]

    def make():
        cls = getattr(rf, cls_name)
        if cls_name == "BaselineOnly":
            return cls(method=sim, n_threads=threads)
        return cls(k=40, min_k=1, similarity=sim, user_based=user_based, n_threads=threads)

    preds: list[Any] = []

    def run() -> None:
        preds.clear()
        for train, test in data:
            model = make().fit(train)
            preds.append(
                model.predict(test.user.to_numpy(), test.item.to_numpy(), unknown="default")
            )

    return run, preds


def rmse(preds: list[Any], folds: list[tuple[Any, Any]]) -> float:
    import numpy as np

    values = [
        float(np.sqrt(np.mean((p - test.rating.to_numpy()) ** 2)))
        for p, (_, test) in zip(preds, folds)
    ]
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results-dir", default=None)
    args = parser.parse_args()
    H.prepare_environment(max(args.threads))
    import numpy as np

    configs = CONFIGS
    fold_ids = [1, 2, 3, 4, 5]
    if args.quick:
        configs, fold_ids, args.repeats = CONFIGS[:1] + CONFIGS[6:7], [1], 1
    folds = load_folds(fold_ids)
    rows: list[dict[str, Any]] = []
    for config in configs:
        s_run, s_preds = surprise_runner(config, folds)
        contenders = {"surprise": s_run}
        r_preds = {}
        for t in args.threads:
            run, preds = recforge_runner(config, folds, t)
            contenders[f"recforge_{t}t"] = run
            r_preds[t] = preds
        timing = H.time_interleaved(contenders, repeats=args.repeats, warmup=0)
        s_rmse = rmse(s_preds, folds)
        row: dict[str, Any] = {
            "model": config[0],
            "similarity": config[1],
            "user_based": config[2],
            "rmse_surprise": s_rmse,
            "timing": timing,
        }
        for t in args.threads:
            r = rmse(r_preds[t], folds)
            row[f"rmse_recforge_{t}t"] = r
            row[f"speedup_{t}t"] = H.ratio(timing["surprise"], timing[f"recforge_{t}t"])
            diff = np.concatenate([a - b for a, b in zip(r_preds[t], s_preds)])
            row[f"max_abs_prediction_diff_{t}t"] = float(np.abs(diff).max())
        row["rmse_diff"] = row[f"rmse_recforge_{args.threads[0]}t"] - s_rmse
        rows.append(row)
        speed = ", ".join(f"x{row[f'speedup_{t}t']:.1f} at {t} thread(s)" for t in args.threads)
        print(
            f"{config}: RMSE surprise {s_rmse:.5f} recforge {row[f'rmse_recforge_{args.threads[0]}t']:.5f} "
            f"(diff {row['rmse_diff']:+.2e}); surprise {timing['surprise'].median:.2f}s; {speed}",
            flush=True,
        )

    env = H.environment(args.threads)
    import surprise

    env["surprise"] = surprise.__version__
    params = {
        "k": 40,
        "min_k": 1,
        "folds": fold_ids,
        "threads": args.threads,
        "repeats": args.repeats,
    }
    if args.quick and args.results_dir is None:
        return
    lines = [
        "# k-NN rating prediction: recforge vs Surprise (MovieLens-100K, 5 folds)",
        "",
        (
            "RMSE averaged over the folds u1..u5 (fit on uK.base, predict uK.test, clipped to [1, 5]); "
            "time = fit + predict of all five folds, median of interleaved repeats. Surprise is "
            "single-threaded. k = 40, min_k = 1, Surprise's default baseline options."
        ),
        "",
    ]
    headers = [
        "model",
        "similarity",
        "based",
        "RMSE Surprise",
        "RMSE recforge",
        "RMSE diff",
        "max abs pred diff",
        "Surprise (s)",
    ]
    for t in args.threads:
        headers += [f"recforge {t}t (s)", f"speed-up {t}t"]
    table = []
    for row in rows:
        cells = [
            row["model"],
            row["similarity"],
            "user" if row["user_based"] else "item",
            f"{row['rmse_surprise']:.5f}",
            f"{row[f'rmse_recforge_{args.threads[0]}t']:.5f}",
            f"{row['rmse_diff']:+.1e}",
            f"{row[f'max_abs_prediction_diff_{args.threads[0]}t']:.1e}",
            row["timing"]["surprise"].median,
        ]
        for t in args.threads:
            cells += [row["timing"][f"recforge_{t}t"].median, f"x{row[f'speedup_{t}t']:.1f}"]
        table.append(cells)
    lines.append(H.markdown_table(headers, table))
    lines += [
        "",
        (
            "`max abs pred diff` is the largest difference of a single prediction. Non-zero values come "
            "from ties between equal similarities at the k-th neighbour (both libraries break them by "
            "the smaller index, but float32 storage can make two nearly equal similarities equal) "
            "and from float32 similarities; BaselineOnly is computed identically."
        ),
        "",
        "## Environment",
        "",
        H.describe_env_markdown(env),
    ]
    paths = H.write_results(
        NAME,
        {"params": params, "env": env, "results": rows},
        "\n".join(lines),
        results_dir=args.results_dir,
    )
    print("wrote", *paths)


if __name__ == "__main__":
    main()
