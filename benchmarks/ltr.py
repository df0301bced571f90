#!/usr/bin/env python
"""Learning to rank: ``recforge.ranking.LambdaMART`` against LightGBM's ``lambdarank``.

Data: LETOR 4.0 MQ2008 Fold1 (train.txt -> test.txt) and LightGBM's lambdarank example
(rank.train + rank.train.query -> rank.test + rank.test.query), read with recforge's readers.
Both libraries get the same hyperparameters: trees, leaves, learning rate, bins (255), minimum
rows and hessian per leaf, truncation level 30, gains 2^label - 1, no bagging, and the same
thread count, in one process. A timed fit includes binning (LightGBM: ``Dataset``
construction + ``train``; recforge: ``fit``). Fits alternate between the contenders
(``_harness.time_interleaved``) and times are medians.

Quality is test nDCG@10 computed by recforge's metric code on both models' scores: gain
2^label - 1, ideal DCG over all the query's documents, ties broken by input order, and a query
without relevant documents scores 1 (LightGBM's convention; the table also gives the mean
with such queries scoring 0). LightGBM's own ndcg@10 on the test set is recorded as a check.
Because one test fold of MQ2008 (156 queries) or the 50 test queries of LightGBM's example
move nDCG@10 by a percent between two equally good models, the quality comparison is repeated
on all five MQ2008 folds (built from S1-S5 as in the data set's readme) and the mean is
reported too. LightGBM runs with ``OMP_WAIT_POLICY=PASSIVE``: on a machine shared with other
jobs its spinning OpenMP threads otherwise slow it down by an order of magnitude.
The number of leading trees that are the same in both models (split features and thresholds) is
recorded too. Results go to ``results/ltr.json`` and ``results/ltr.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H

NAME = "ltr"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--datasets", nargs="+", default=["letor4-mq2008", "lightgbm-lambdarank"])
    p.add_argument("--trees", type=int, nargs="+", default=[100, 300])
    p.add_argument("--leaves", type=int, default=31)
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--fold-trees", type=int, nargs="+", default=[100, 300], help="trees of the five-fold quality runs")
    p.add_argument("--quick", action="store_true", help="MQ2008, 50 trees, 1 repeat; writes nothing")
    p.add_argument("--results-dir", type=Path, default=None)
    a = p.parse_args(argv)
    if a.quick:
        a.datasets, a.trees, a.repeats, a.fold_trees = ["letor4-mq2008"], [50], 1, []
    return a


def load(root: Path, name: str) -> dict[str, Any]:
    import numpy as np

    from recforge.ranking import group_offsets, read_lightgbm_ranking, read_svmlight

    if name == "letor4-mq2008":
        folder = root / name / "Fold1"
        Xtr, ytr, qtr = read_svmlight(folder / "train.txt")
        Xte, yte, qte = read_svmlight(folder / "test.txt", n_features=Xtr.shape[1])
        gtr = np.diff(group_offsets(None, qtr, len(ytr)))
        gte = np.diff(group_offsets(None, qte, len(yte)))
    elif name == "lightgbm-lambdarank":
        folder = root / name
        Xtr, ytr, gtr = read_lightgbm_ranking(folder / "rank.train")
        Xte, yte, gte = read_lightgbm_ranking(folder / "rank.test", n_features=Xtr.shape[1])
    else:
        raise SystemExit(f"unknown data set {name}")
    return {"Xtr": Xtr, "ytr": ytr, "gtr": gtr, "Xte": Xte, "yte": yte, "gte": gte}


def mq2008_folds(root: Path) -> list[dict[str, Any]]:
    """The five LETOR folds: Fold k trains on S_k..S_k+2, validates on S_k+3, tests on S_k+4."""
    import numpy as np

    from recforge.ranking import group_offsets, read_svmlight

    parts = [read_svmlight(root / "letor4-mq2008" / f"S{i}.txt.gz", n_features=46) for i in range(1, 6)]
    folds = []
    for k in range(5):
        tr = [parts[(k + j) % 5] for j in range(3)]
        te = parts[(k + 4) % 5]
        X = np.concatenate([p[0] for p in tr])
        y = np.concatenate([p[1] for p in tr])
        q = np.concatenate([p[2] + 10**7 * j for j, p in enumerate(tr)])  # parts never share a query id
        folds.append({"Xtr": X, "ytr": y, "gtr": np.diff(group_offsets(None, q, len(y))), "Xte": te[0],
                      "yte": te[1], "gte": np.diff(group_offsets(None, te[2], len(te[1])))})
    return folds


def ndcg(scores: Any, y: Any, sizes: Any, empty: float) -> float:
    import numpy as np

    from recforge import _core

    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return float(_core.ranking.rank_metric(0, np.asarray(scores, dtype=np.float64), y, off, 10, empty, 1))


def same_trees(booster: Any, model: Any) -> int:
    """How many leading trees of the two models split on the same features at the same thresholds."""
    import numpy as np

    for t, info in enumerate(booster.dump_model()["tree_info"]):
        nodes: list[tuple[int, int, float]] = []

        def walk(node: dict[str, Any]) -> None:
            if "split_index" in node:
                nodes.append((node["split_index"], node["split_feature"], node["threshold"]))
                walk(node["left_child"])
                walk(node["right_child"])

        walk(info["tree_structure"])
        nodes.sort()
        if t >= model.n_trees_:
            return t
        a, b = model.node_offsets_[t], model.node_offsets_[t + 1]
        if b - a != len(nodes) or model.split_feature_[a:b].tolist() != [f for _, f, _ in nodes]:
            return t
        if not np.allclose(model.threshold_[a:b], [x for _, _, x in nodes], rtol=1e-6, atol=1e-30):
            return t
    return model.n_trees_


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    H.prepare_environment(max(args.threads))
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import lightgbm as lgb
    import numpy as np

    from recforge.ranking import LambdaMART

    rows, records = [], []
    for ds in args.datasets:
        d = load(args.data_root, ds)
        print(f"{ds}: train {d['Xtr'].shape}, {len(d['gtr'])} queries; test {d['Xte'].shape}, {len(d['gte'])} queries")
        for n_trees in args.trees:
            for th in args.threads:
                common = dict(learning_rate=args.learning_rate, num_leaves=args.leaves)
                lgb_params = {
                    "objective": "lambdarank", "num_leaves": args.leaves, "learning_rate": args.learning_rate,
                    "max_bin": 255, "min_data_in_leaf": 20, "min_sum_hessian_in_leaf": 1e-3,
                    "lambdarank_truncation_level": 30, "num_threads": th, "verbose": -1,
                    "eval_at": [10], "metric": "ndcg",
                }
                out: dict[str, Any] = {}

                def fit_lgb() -> None:
                    train = lgb.Dataset(d["Xtr"], d["ytr"], group=d["gtr"], params={"max_bin": 255, "verbose": -1})
                    out["lgb"] = lgb.train(lgb_params, train, num_boost_round=n_trees)

                def fit_rf() -> None:
                    out["rf"] = LambdaMART(n_estimators=n_trees, max_bin=255, min_data_in_leaf=20,
                                           min_sum_hessian=1e-3, truncation_level=30, n_threads=th,
                                           show_progress=False, **common).fit(d["Xtr"], d["ytr"], group=d["gtr"])

                with H.blas_threads(th):
                    t = H.time_interleaved({"lightgbm": fit_lgb, "recforge": fit_rf}, repeats=args.repeats, warmup=1)
                s_rf = out["rf"].predict(d["Xte"], n_threads=th)
                s_lgb = out["lgb"].predict(d["Xte"], num_threads=th)
                # LightGBM's own ndcg@10 of its model on the test set
                test = lgb.Dataset(d["Xte"], d["yte"], group=d["gte"], reference=None)
                own = lgb.train({**lgb_params, "num_threads": th}, lgb.Dataset(d["Xtr"], d["ytr"], group=d["gtr"]),
                                num_boost_round=n_trees, valid_sets=[test], valid_names=["test"],
                                callbacks=[lgb.record_evaluation(ev := {})])
                del own
                q = {
                    "recforge": (ndcg(s_rf, d["yte"], d["gte"], 1.0), ndcg(s_rf, d["yte"], d["gte"], 0.0)),
                    "lightgbm": (ndcg(s_lgb, d["yte"], d["gte"], 1.0), ndcg(s_lgb, d["yte"], d["gte"], 0.0)),
                }
                lgb_own = float(ev["test"]["ndcg@10"][-1])
                n_same = same_trees(out["lgb"], out["rf"])
                speed = H.ratio(t["lightgbm"], t["recforge"])
                rec = {
                    "dataset": ds, "trees": n_trees, "threads": th, "leaves": args.leaves,
                    "learning_rate": args.learning_rate, "times": t,
                    "ndcg10_empty1": {k: v[0] for k, v in q.items()},
                    "ndcg10_empty0": {k: v[1] for k, v in q.items()},
                    "lightgbm_own_ndcg10": lgb_own, "same_trees": n_same, "speedup_vs_lightgbm": speed,
                    "time_ratio_recforge_over_lightgbm": 1.0 / speed,
                }
                records.append(rec)
                diff = q["recforge"][0] - q["lightgbm"][0]
                rows.append([ds, n_trees, th, f"{q['lightgbm'][0]:.4f}", f"{q['recforge'][0]:.4f}", f"{diff:+.4f}",
                             f"{q['lightgbm'][1]:.4f}", f"{q['recforge'][1]:.4f}", f"{lgb_own:.4f}", n_same,
                             f"{t['lightgbm'].median:.3f}", f"{t['recforge'].median:.3f}", f"{1.0 / speed:.2f}"])
                print(" | ".join(str(v) for v in rows[-1]), flush=True)
    fold_rows, fold_records = [], []
    for n_trees in args.fold_trees:
        for k, d in enumerate(mq2008_folds(args.data_root)):
            th = max(args.threads)
            lgb_params = {"objective": "lambdarank", "num_leaves": args.leaves, "learning_rate": args.learning_rate,
                          "max_bin": 255, "min_data_in_leaf": 20, "min_sum_hessian_in_leaf": 1e-3,
                          "lambdarank_truncation_level": 30, "num_threads": th, "verbose": -1}
            peer = lgb.train(lgb_params, lgb.Dataset(d["Xtr"], d["ytr"], group=d["gtr"]), num_boost_round=n_trees)
            ours = LambdaMART(n_estimators=n_trees, learning_rate=args.learning_rate, num_leaves=args.leaves,
                              n_threads=th, show_progress=False).fit(d["Xtr"], d["ytr"], group=d["gtr"])
            a = ndcg(peer.predict(d["Xte"]), d["yte"], d["gte"], 1.0)
            b = ndcg(ours.predict(d["Xte"]), d["yte"], d["gte"], 1.0)
            n_same = same_trees(peer, ours)
            fold_records.append({"fold": k + 1, "trees": n_trees, "lightgbm": a, "recforge": b, "same_trees": n_same})
            fold_rows.append([f"Fold{k + 1}", n_trees, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}", n_same])
            print(" | ".join(str(v) for v in fold_rows[-1]), flush=True)
        sel = [r for r in fold_records if r["trees"] == n_trees]
        ma = statistics.mean(r["lightgbm"] for r in sel)
        mb = statistics.mean(r["recforge"] for r in sel)
        fold_rows.append(["mean of 5 folds", n_trees, f"{ma:.4f}", f"{mb:.4f}", f"{mb - ma:+.4f}", ""])
    env = H.environment(args.threads)
    headers = ["data", "trees", "threads", "LightGBM nDCG@10", "recforge nDCG@10", "diff",
               "LightGBM (empty=0)", "recforge (empty=0)", "LightGBM's own eval", "same trees", "LightGBM s", "recforge s",
               "time ratio rf/lgb"]
    ratios = [r["time_ratio_recforge_over_lightgbm"] for r in records]
    diffs = [abs(r["ndcg10_empty1"]["recforge"] - r["ndcg10_empty1"]["lightgbm"]) for r in records]
    md = "\n\n".join([
        "# Learning to rank: recforge.ranking.LambdaMART vs LightGBM lambdarank",
        f"Same hyperparameters for both: {args.leaves} leaves, learning rate {args.learning_rate}, 255 bins, "
        "min 20 rows and 1e-3 hessian per leaf, truncation level 30, gains 2^label - 1, no bagging; fits "
        f"(binning included) alternate, {args.repeats} timed repeats after a warm-up, medians. nDCG@10 on the "
        "test set by recforge's metric code (gain 2^label - 1, a query without relevant documents scores 1 "
        "as in LightGBM; `empty=0` columns score it 0). 'LightGBM's own eval' is LightGBM's ndcg@10 on the "
        "test set, a check of the metric convention. 'same trees' counts the leading trees of the two "
        "models that split on the same features at the same thresholds (float32 against LightGBM's double; "
        "after the first tree that differs the models part ways).",
        H.markdown_table(headers, rows),
        f"Time ratio recforge / LightGBM: median {statistics.median(ratios):.2f} (range {min(ratios):.2f} to "
        f"{max(ratios):.2f}; below 1 means recforge is faster). Largest |nDCG@10 difference|: {max(diffs):.4f}.",
        "## nDCG@10 on the five MQ2008 folds\n\nSame hyperparameters as above; each fold's test part is one of "
        "S1-S5 (784 queries over the five folds).",
        H.markdown_table(["fold", "trees", "LightGBM", "recforge", "diff", "same trees"], fold_rows)
        if fold_rows else "(not run)",
        H.describe_env_markdown(env) + f"\n- LightGBM {lgb.__version__}, `OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}`",
    ])
    if not args.quick:
        H.write_results(NAME, {"params": vars(args), "env": env, "results": records, "folds": fold_records}, md,
                        results_dir=args.results_dir)
    print(md)


if __name__ == "__main__":
    main()
