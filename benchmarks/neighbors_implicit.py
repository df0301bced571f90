#!/usr/bin/env python
"""Item-item k-NN top-N: ``recforge.ItemKNN`` against implicit's item-item recommenders.

Data: the LightGCN splits of Gowalla and MovieLens-1M (``gowalla-lightgcn``,
``ml-1m-implicit-lightgcnpp``): ``train.txt`` and ``valid.txt`` together are the training set,
``test.txt`` is the test set (binary interactions). Both libraries get the same users x items
CSR matrix of ones.

Contenders, in one process at the same thread count (1 and 2 by default):

* **implicit** ``CosineRecommender(K)`` / ``BM25Recommender(K, K1=1.2, B=0.75)``:
  ``fit(user_items)`` then ``recommend(all users, user_items, N=20)`` (already-liked items
  filtered). implicit's similarity keeps the item itself among its K neighbours.
* **recforge** ``ItemKNN(k=K, similarity="cosine" | "bm25", include_self=True)`` (the same
  neighbour sets as implicit) : ``fit(interactions)`` then ``recommend(all users, n=20)``. The
  default ``include_self=False`` (K other items) is also scored for quality.

Timed: similarity computation plus top-20 for every user, wall clock, warm-up excluded,
repeats interleaved (``_harness.time_interleaved``). Quality: Recall@20 and nDCG@20 (binary
relevance, trec_eval conventions of ``recforge.metrics``) over the users with test items, on
the lists each library returned.

Results: ``results/neighbors_implicit.json`` and ``.md``. ``--quick`` runs ML-1M only with
one repeat and writes nothing unless ``--results-dir`` is given.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H

NAME = "neighbors_implicit"
DATASETS = ("ml-1m-implicit-lightgcnpp", "gowalla-lightgcn")


def read_lists(path: Path) -> tuple[Any, Any]:
    import numpy as np

    users, items = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            tokens = line.split()
            if len(tokens) < 2:
                continue
            users.extend([int(tokens[0])] * (len(tokens) - 1))
            items.extend(int(t) for t in tokens[1:])
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def load(name: str) -> tuple[Any, Any]:
    """(train Interactions, test Interactions) with one shared id universe."""
    import numpy as np
    import recforge as rf

    folder = rf.datasets.shared_data_path(name)
    if folder is None:
        raise SystemExit(f"data set {name!r} not found; set RECFORGE_DATA")
    parts = [read_lists(folder / f) for f in ("train.txt", "valid.txt", "test.txt")]
    user_ids = np.unique(np.concatenate([p[0] for p in parts]))
    item_ids = np.unique(np.concatenate([p[1] for p in parts]))
    tu = np.concatenate([parts[0][0], parts[1][0]])
    ti = np.concatenate([parts[0][1], parts[1][1]])
    train = rf.Interactions.from_arrays(
        tu, ti, aggregate="max", user_ids=user_ids, item_ids=item_ids
    )
    test = rf.Interactions.from_arrays(
        parts[2][0], parts[2][1], aggregate="max", user_ids=user_ids, item_ids=item_ids
    )
    return train, test


def quality(lists: Any, test: Any, users: Any) -> dict[str, float]:
    import numpy as np
    import recforge as rf

    rel = test.matrix.tocsr()[users]
    rel.data[:] = 1.0
    values = rf.metrics.ranking_metrics(
        np.asarray(lists, dtype=np.int32), rel, 20, metrics=["recall", "ndcg"]
    )
    return {"recall@20": float(values["recall"].mean()), "ndcg@20": float(values["ndcg"].mean())}


def pad(ids: Any, n: int) -> Any:
    import numpy as np

    ids = np.asarray(ids)
    if ids.shape[1] >= n:
        return ids[:, :n].astype(np.int32)
    out = np.full((ids.shape[0], n), -1, dtype=np.int32)
    out[:, : ids.shape[1]] = ids
    return out


def run_dataset(name: str, threads: list[int], k: int, repeats: int) -> dict[str, Any]:
    import numpy as np
    import recforge as rf
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    train, test = load(name)
    user_items = train.matrix.tocsr().astype(np.float32)
    all_users = np.arange(train.n_users)
    test_users = np.flatnonzero(np.diff(test.matrix.tocsr().indptr) > 0)
    print(
        f"{name}: {train.n_users} users, {train.n_items} items, {train.nnz} train and "
        f"{test.nnz} test interactions",
        flush=True,
    )
    record: dict[str, Any] = {
        "data": {
            "users": train.n_users,
            "items": train.n_items,
            "train_nnz": train.nnz,
            "test_nnz": test.nnz,
            "test_users": len(test_users),
        },
        "cases": [],
    }
    peers = {
        "cosine": lambda t: CosineRecommender(K=k, num_threads=t),
        "bm25": lambda t: BM25Recommender(K=k, K1=1.2, B=0.75, num_threads=t),
    }
    for sim, make_peer in peers.items():
        outputs: dict[str, Any] = {}

        def run_implicit(t: int, make_peer=make_peer, outputs=outputs) -> None:
            model = make_peer(t)
            model.fit(user_items, show_progress=False)
            ids, _ = model.recommend(all_users, user_items, N=20, filter_already_liked_items=True)
            outputs["implicit"] = ids

        def run_recforge(t: int, include_self: bool = True, sim=sim, outputs=outputs) -> None:
            model = rf.ItemKNN(k=k, similarity=sim, include_self=include_self, n_threads=t).fit(
                train
            )
            ids, _ = model.recommend(all_users, n=20, ids="index", n_threads=t)
            outputs["recforge" if include_self else "recforge_k_others"] = ids

        for t in threads:
            with H.blas_threads(t):
                timing = H.time_interleaved(
                    {
                        "implicit": lambda t=t: run_implicit(t),
                        "recforge": lambda t=t: run_recforge(t),
                    },
                    repeats=repeats,
                    warmup=1,
                )
            ratio = H.ratio(timing["implicit"], timing["recforge"])
            print(
                f"  {sim} threads={t}: implicit {timing['implicit'].median:.3f}s recforge "
                f"{timing['recforge'].median:.3f}s speed-up x{ratio:.2f}",
                flush=True,
            )
            record["cases"].append(
                {"similarity": sim, "threads": t, "k": k, "timing": timing, "speedup": ratio}
            )
        run_recforge(threads[-1], include_self=False)
        q = {
            "implicit": quality(pad(outputs["implicit"], 20)[test_users], test, test_users),
            "recforge": quality(outputs["recforge"][test_users], test, test_users),
            "recforge_k_others": quality(
                outputs["recforge_k_others"][test_users], test, test_users
            ),
        }
        rel = {m: q["recforge"][m] / q["implicit"][m] - 1.0 for m in q["implicit"]}
        rel_others = {m: q["recforge_k_others"][m] / q["implicit"][m] - 1.0 for m in q["implicit"]}
        print(f"  {sim} quality: {q}  relative {rel}", flush=True)
        record["cases"].append(
            {
                "similarity": sim,
                "quality": q,
                "relative_difference": rel,
                "relative_difference_k_others": rel_others,
            }
        )
    return record


def markdown(results: dict[str, Any], env: dict[str, Any], params: dict[str, Any]) -> str:
    lines = [
        "# Item-item k-NN: recforge.ItemKNN vs implicit",
        "",
        (
            f"Similarity for all items (K = {params['k']} neighbours) plus the top 20 for every user, "
            "wall clock, median of interleaved repeats after a warm-up. `recforge` uses "
            "`include_self=True`, i.e. the same neighbour sets as implicit (whose K neighbours "
            "include the item itself); `recforge (K others)` is the default `include_self=False`."
        ),
        "",
        "## Speed",
        "",
    ]
    rows = []
    for name, rec in results.items():
        for case in rec["cases"]:
            if "timing" in case:
                rows.append(
                    [
                        name,
                        case["similarity"],
                        case["threads"],
                        case["timing"]["implicit"].median,
                        case["timing"]["recforge"].median,
                        f"x{case['speedup']:.2f}",
                    ]
                )
    lines.append(
        H.markdown_table(
            ["data", "similarity", "threads", "implicit (s)", "recforge (s)", "speed-up"], rows
        )
    )
    lines += ["", "## Quality (users with test items)", ""]
    rows = []
    for name, rec in results.items():
        for case in rec["cases"]:
            if "quality" in case:
                q = case["quality"]
                for who in ("implicit", "recforge", "recforge_k_others"):
                    label = {"recforge_k_others": "recforge (K others)"}.get(who, who)
                    rel = (
                        ""
                        if who == "implicit"
                        else " / ".join(
                            f"{v * 100:+.2f}%"
                            for v in (
                                case["relative_difference"]
                                if who == "recforge"
                                else case["relative_difference_k_others"]
                            ).values()
                        )
                    )
                    rows.append(
                        [
                            name,
                            case["similarity"],
                            label,
                            f"{q[who]['recall@20']:.5f}",
                            f"{q[who]['ndcg@20']:.5f}",
                            rel,
                        ]
                    )
    lines.append(
        H.markdown_table(
            [
                "data",
                "similarity",
                "library",
                "Recall@20",
                "nDCG@20",
                "vs implicit (recall / nDCG)",
            ],
            rows,
        )
    )
    lines += ["", "## Environment", "", H.describe_env_markdown(env)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("-k", type=int, default=20, help="neighbours per item (implicit's K)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results-dir", default=None)
    args = parser.parse_args()
    H.prepare_environment(max(args.threads))
    warnings.filterwarnings("ignore")  # implicit's CSR-conversion notices
    if args.quick:
        args.datasets, args.repeats = ["ml-1m-implicit-lightgcnpp"], 1
    params = {
        "threads": args.threads,
        "k": args.k,
        "repeats": args.repeats,
        "datasets": args.datasets,
    }
    results = {
        name: run_dataset(name, args.threads, args.k, args.repeats) for name in args.datasets
    }
    env = H.environment(args.threads)
    import implicit

    env["implicit"] = implicit.__version__
    if args.quick and args.results_dir is None:
        return
    paths = H.write_results(
        NAME,
        {"params": params, "env": env, "results": results},
        markdown(results, env, params),
        results_dir=args.results_dir,
    )
    print("wrote", *paths)


if __name__ == "__main__":
    main()
