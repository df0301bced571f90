#!/usr/bin/env python
"""Cold start: content and feature factorization against collaborative filtering and popularity.

Two protocols on each data set (``ml-100k`` with genres, title terms and user demographics;
``coat`` with its user and item tables, interactions = ratings >= 4 of both files):

* **cold items**: ``split.item_holdout`` moves 20% of the items with all their interactions to
  test (they are known only by their features), then 20% of the remaining interactions go to
  test as well (warm items). Metrics are reported separately for the cold and the warm test
  items (``evaluate_segments`` with item labels).
* **cold users**: ``split.user_holdout`` moves 20% of the users to test (known only by their
  demographics), then 20% of the remaining interactions go to test (warm users); metrics are
  reported for cold and warm users separately.

Models: Popularity, ALS and BPR (pure CF: they cannot score a cold item), ContentRecommender,
FeatureFactorization with content features (user identities only, both identities, item
identities only), and two SwitchingHybrids: ALS for warm items and content for items without
training interactions; ALS for users with interactions and popularity for the others. Recall@10 and nDCG@10, mean over split seeds. Results go to
``results/cold_start.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H

NAME = "cold_start"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "coat"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--factors", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="ml-100k, one seed, 5 epochs; writes nothing")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.epochs = ["ml-100k"], [0], 5
    return args


def load(name: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(interactions, user table, item table, content-model options)."""
    import numpy as np
    import pandas as pd

    import recforge as rf

    folder = rf.datasets.shared_data_path(name)
    if folder is None:
        raise SystemExit(f"data set {name} not found (set RECFORGE_DATA)")
    if name == "ml-100k":
        data = rf.datasets.read_movielens(folder)
        users = data.user_features.copy()
        users["age_band"] = pd.cut(users["age"], [0, 18, 25, 35, 45, 50, 56, 200], right=False).astype(str)
        users = users[["gender", "occupation", "age_band"]]
        items = data.item_features.drop(columns=["year"])
        return data, users, items, {"text": ["title"], "exclude": ["year"]}
    train, test = rf.datasets.read_coat(folder)
    m = (train.matrix.toarray() >= 4) | (test.matrix.toarray() >= 4)
    u, i = np.nonzero(m)
    data = rf.Interactions.from_arrays(u, i, user_ids=train.user_ids, item_ids=train.item_ids,
                                       user_features=train.user_features, item_features=train.item_features)
    return data, train.user_features, train.item_features, {}


def union(a: Any, b: Any) -> Any:
    import recforge as rf

    m = (a.matrix + b.matrix).tocsr()
    m.sort_indices()
    return rf.Interactions(m, a.user_ids, a.item_ids)


def models(args: argparse.Namespace, content_opts: dict[str, Any], seed: int) -> dict[str, Any]:
    import recforge as rf

    t = args.threads
    return {
        "Popularity": lambda: rf.Popularity(),
        "ALS": lambda: rf.ALS(args.factors, iterations=15, regularization=0.05, random_state=seed, n_threads=t),
        "BPR": lambda: rf.BPR(args.factors, epochs=args.epochs, random_state=seed, n_threads=t),
        "ContentRecommender": lambda: rf.ContentRecommender(weighting="weight", n_threads=t, **content_opts),
        "FeatureFactorization (content, user ids)": lambda: rf.FeatureFactorization(
            args.factors, epochs=args.epochs, identity_features="users", random_state=seed, n_threads=t),
        "FeatureFactorization (content, all ids)": lambda: rf.FeatureFactorization(
            args.factors, epochs=args.epochs, identity_features=True, random_state=seed, n_threads=t),
        "FeatureFactorization (content, item ids)": lambda: rf.FeatureFactorization(
            args.factors, epochs=args.epochs, identity_features="items", random_state=seed, n_threads=t),
        "SwitchingHybrid (ALS / content for cold items)": lambda: rf.SwitchingHybrid(
            rf.ALS(args.factors, iterations=15, regularization=0.05, random_state=seed, n_threads=t),
            rf.ContentRecommender(weighting="weight", n_threads=t, **content_opts), threshold=1, n_threads=t),
        "SwitchingHybrid (ALS / popularity for cold users)": lambda: rf.SwitchingHybrid(
            rf.ALS(args.factors, iterations=15, regularization=0.05, random_state=seed, n_threads=t),
            rf.Popularity(), threshold=1, on="user", n_threads=t),
    }


def fit(name: str, model: Any, train: Any, users: Any, items: Any, content_opts: dict[str, Any]) -> Any:
    import recforge as rf

    if isinstance(model, rf.FeatureFactorization):
        item_table = items
        if content_opts.get("text"):
            item_table = rf.FeatureEncoder(text=content_opts["text"]).fit_transform(items)
        return model.fit(train, user_features=users, item_features=item_table, show_progress=False)
    if isinstance(model, (rf.ALS, rf.BPR)):
        return model.fit(train, show_progress=False)
    return model.fit(train)


def run_protocol(protocol: str, data: Any, users: Any, items: Any, content_opts: dict[str, Any],
                 args: argparse.Namespace, seed: int) -> list[dict[str, Any]]:
    import numpy as np

    import recforge as rf
    from recforge.evaluation import evaluate_segments

    holdout = rf.split.item_holdout if protocol == "cold items" else rf.split.user_holdout
    rest, test_cold = holdout(data, test_fraction=0.2, random_state=seed)
    train, test_warm = rf.split.random_holdout(rest, test_fraction=0.2, random_state=seed)
    test = union(test_cold, test_warm)
    train = rf.Interactions(train.matrix, data.user_ids, data.item_ids, user_features=data.user_features,
                            item_features=data.item_features)
    rows = []
    for label, make in models(args, content_opts, seed).items():
        t0 = time.perf_counter()
        model = fit(label, make(), train, users, items, content_opts)
        seconds = time.perf_counter() - t0
        if protocol == "cold items":
            cold = np.bincount(train.matrix.indices, minlength=data.n_items) == 0
            table = evaluate_segments(model, train, test, k=10, metrics=["recall", "ndcg"], user_segments=None,
                                      item_segments=np.where(cold, "cold", "warm"))
            table = table[table.segment_type == "item"]
        else:
            cold = np.diff(train.matrix.indptr) == 0
            table = evaluate_segments(model, train, test, k=10, metrics=["recall", "ndcg"],
                                      user_segments=np.where(cold, "cold", "warm"), item_segments=None)
            table = table[table.segment_type == "user"]
        for rec in table.itertuples():
            rows.append({"protocol": protocol, "seed": seed, "model": label, "segment": rec.segment,
                         "metric": f"{rec.metric}@{rec.k}", "value": float(rec.value), "n_users": int(rec.n_users),
                         "fit_seconds": seconds})
        print(f"    {protocol} seed {seed} {label}: " + ", ".join(
            f"{r.segment} {r.metric} {r.value:.4f}" for r in table.itertuples() if r.metric == "recall"), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env_changes = H.prepare_environment(args.threads)
    import pandas as pd

    all_rows = []
    for name in args.datasets:
        data, users, items, content_opts = load(name)
        print(f"{name}: {data.n_users} users x {data.n_items} items, {data.nnz} interactions", flush=True)
        for protocol in ("cold items", "cold users"):
            for seed in args.seeds:
                for row in run_protocol(protocol, data, users, items, content_opts, args, seed):
                    all_rows.append({"dataset": name, **row})
    frame = pd.DataFrame(all_rows)
    summary = (frame.groupby(["dataset", "protocol", "model", "segment", "metric"], sort=False)["value"]
               .mean().unstack(["segment", "metric"]))
    env = H.environment(args.threads)
    markdown = report(summary, env, args)
    print(markdown)
    if args.quick and args.results_dir is None:
        return 0
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    paths = H.write_results(NAME, {"params": params, "env": env, "env_changes": env_changes, "rows": all_rows},
                            markdown, results_dir=args.results_dir)
    plot(frame, (Path(args.results_dir) if args.results_dir else H.RESULTS_DIR) / f"{NAME}.png")
    print("wrote", *paths)
    return 0


def report(summary: Any, env: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Cold start: content and feature factorization vs CF and popularity",
        "",
        (f"20% of the items (or users) held out with all their interactions, then 20% of the remaining "
         f"interactions held out as the warm part of the test set; mean over split seeds {args.seeds}; "
         f"{args.factors} factors, {args.epochs} epochs for the SGD models, {args.threads} threads. "
         "Cold items have no training interaction at all: they are known only by their features."),
    ]
    for (dataset, protocol), block in summary.groupby(level=[0, 1], sort=False):
        block = block.droplevel([0, 1])
        seg = "item" if protocol == "cold items" else "user"
        cols = [(s, m) for s in ("cold", "warm") for m in ("recall@10", "ndcg@10") if (s, m) in block.columns]
        rows = [[model] + [f"{block.loc[model, c]:.4f}" for c in cols] for model in block.index]
        lines += ["", f"## {dataset}: {protocol}", "",
                  H.markdown_table(["model"] + [f"{s} {seg}s {m}" for s, m in cols], rows)]
    lines += ["", "![cold and warm recall@10](cold_start.png)", "", H.describe_env_markdown(env)]
    return "\n".join(lines)


def plot(frame: Any, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is optional
        return
    sub = frame[frame.metric == "recall@10"]
    groups = list(sub.groupby(["dataset", "protocol"], sort=False))
    n_cols = 2
    n_rows = (len(groups) + n_cols - 1) // n_cols
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(13, 4.2 * n_rows), sharey=True, squeeze=False)
    for ax, ((dataset, protocol), g) in zip(axes.ravel(), groups):
        table = g.groupby(["model", "segment"], sort=False)["value"].mean().unstack("segment")
        table = table[[c for c in ("cold", "warm") if c in table.columns]]
        table.plot.barh(ax=ax, color={"cold": "#1f77b4", "warm": "#ff7f0e"})
        ax.set_title(f"{dataset}: {protocol}")
        ax.set_xlabel("recall@10 (mean over split seeds)")
        ax.set_ylabel("")
        ax.legend(title=protocol.split()[1], loc="lower right", fontsize=8)
    for ax in axes.ravel()[len(groups):]:
        ax.set_visible(False)
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
