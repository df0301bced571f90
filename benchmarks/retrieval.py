"""Retrieval latency and recall: recforge's exact and HNSW paths against plain hnswlib and FAISS.

For a catalog of clustered 64-factor item vectors (like a factor model's) at 100,000 and
1,000,000 items, with and without each user's seen items excluded (50 per user):

* single-user queries (1,000 users one at a time): p50 / p99 latency and queries per second;
* batches of 1,000 users: median batch time and queries per second;

for four contenders in one process at the same thread count:

* ``recforge-hnsw``: ``HNSWIndex`` (norm-augmented graph, exact C++ re-scoring, exclusion by
  over-fetch and C++ filtering with exact fallback), and the same through
  ``model.recommend`` of a factor model with ``build_index("hnsw")``;
* ``recforge-exact``: ``ExactIndex`` (the C++ blocked top-k);
* ``hnswlib``: a plain ``hnswlib`` inner-product index, over-fetching and filtering seen items
  in Python;
* ``faiss-flat``: FAISS ``IndexFlatIP`` (exact), over-fetching and filtering in Python.

Recall@10 of each approximate contender is measured against exact search. The gowalla part
trains recforge's ALS on ``../shared/data/gowalla-lightgcn`` and reports the HNSW recall on its
item factors. The neighbourhood part serves ``ItemKNN`` and ``UserKNN`` (k = 50, cosine) on
MovieLens-1M and Gowalla through ``build_index("hnsw")`` (a vector index over a randomized SVD of
the model's scoring operand, candidates re-scored exactly) and reports recall@10 against the
same model's exact recommendations and the single-user latency of both paths.
Results: ``results/retrieval.json`` and ``results/retrieval.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

NAME = "retrieval"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seen", type=int, default=50)
    p.add_argument("--single", type=int, default=1000, help="single-user queries timed")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-gowalla", action="store_true")
    p.add_argument("--skip-knn", action="store_true")
    p.add_argument("--quick", action="store_true")
    return p.parse_args(argv)


def catalog(np, n_items, dim, n_users, seed=0):
    rng = np.random.default_rng(seed)
    n_clusters = max(32, n_items // 2000)
    centers = rng.standard_normal((n_clusters, dim)) / np.sqrt(dim)
    items = centers[rng.integers(0, n_clusters, n_items)] + 0.6 * rng.standard_normal((n_items, dim)) / np.sqrt(dim)
    items *= 0.5 + rng.random((n_items, 1))  # popularity-like spread of norms
    users = centers[rng.integers(0, n_clusters, n_users)] + 0.6 * rng.standard_normal((n_users, dim)) / np.sqrt(dim)
    return items.astype(np.float32), users.astype(np.float32)


def seen_lists(np, n_users, n_items, n_seen, queries, items, seed=1):
    """Seen items: half among each user's true top items (so exclusion matters), half random."""
    rng = np.random.default_rng(seed)
    out = []
    for u in range(n_users):
        near = np.argpartition(-(items @ queries[u]), n_seen)[: n_seen // 2] if n_seen else np.empty(0, int)
        rand = rng.choice(n_items, size=n_seen - len(near), replace=False)
        out.append(np.unique(np.concatenate([near, rand])).astype(np.int64))
    return out


def latencies(fn, queries, exclude):
    import numpy as np

    times = np.empty(len(queries))
    results = []
    for i in range(len(queries)):
        t0 = time.perf_counter()
        results.append(fn(queries[i : i + 1], None if exclude is None else [exclude[i]]))
        times[i] = (time.perf_counter() - t0) * 1000.0
    return times, results


def recall(np, got, truth, k):
    return float(np.mean([len(set(g[:k].tolist()) & set(t[:k].tolist())) / k for g, t in zip(got, truth)]))


def run_size(np, sp, args, n_items, env_rows, payload):
    import faiss
    import hnswlib

    from recforge.factorization import FactorRecommender
    from recforge.retrieval import ExactIndex, HNSWIndex

    k, threads = args.k, args.threads
    n_q = max(args.single, args.batch)
    items, queries = catalog(np, n_items, args.factors, n_q)
    seen = seen_lists(np, n_q, n_items, args.seen, queries, items)
    report = {"n_items": n_items}

    t0 = time.perf_counter()
    hnsw = HNSWIndex("ip", n_threads=threads).build(items)
    report["build_recforge_hnsw_s"] = time.perf_counter() - t0
    augmented = None
    if n_items <= 200_000:  # the norm-augmented graph, for its recall (built only at the smaller size)
        augmented = HNSWIndex("ip", ip_graph="augment", n_threads=threads).build(items)
    exact = ExactIndex("ip", n_threads=threads).build(items)
    t0 = time.perf_counter()
    plain = hnswlib.Index(space="ip", dim=args.factors)
    plain.init_index(max_elements=n_items, M=16, ef_construction=200, random_seed=0)
    plain.add_items(items, np.arange(n_items), num_threads=threads)
    plain.set_ef(100)
    report["build_hnswlib_s"] = time.perf_counter() - t0
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatIP(args.factors)
    flat.add(items)

    # a factor model serving through the HNSW index (the recommend path users call)
    class Fixed(FactorRecommender):
        def __init__(self, n_threads: int = 0) -> None:
            self.n_threads = n_threads

        def _fit(self, data, **kw):
            self.user_factors_, self.item_factors_ = queries, items

    rows = np.repeat(np.arange(n_q), [len(s) for s in seen])
    seen_matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, np.concatenate(seen))), shape=(n_q, n_items))
    model = Fixed(n_threads=threads).fit(seen_matrix)
    model.index_ = hnsw  # reuse the graph built above

    def post_filter(found, scores, exclude):
        out = []
        for row, (f, s) in enumerate(zip(found, scores)):
            banned = set(exclude[row].tolist()) if exclude is not None else ()
            keep = [int(x) for x in f if x >= 0 and int(x) not in banned][:k]
            out.append(np.array(keep))
        return out

    def hnswlib_query(q, exclude):
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        plain.set_ef(max(100, 2 * (k + extra) if extra else k))  # the same search width as recforge
        f, d = plain.knn_query(q, k=k + extra, num_threads=threads)
        return post_filter(f, d, exclude)

    def faiss_query(q, exclude):
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        d, f = flat.search(q, k + extra)
        return post_filter(f, d, exclude)

    contenders = {
        "recforge-hnsw": lambda q, ex: list(hnsw.query(q, k, exclude=ex, n_threads=threads)[0]),
        "recforge-exact": lambda q, ex: list(exact.query(q, k, exclude=ex, n_threads=threads)[0]),
        "hnswlib": hnswlib_query,
        "faiss-flat": faiss_query,
    }
    if augmented is not None:
        contenders["recforge-hnsw (augment)"] = lambda q, ex: list(augmented.query(q, k, exclude=ex, n_threads=threads)[0])
    single_q = queries[: args.single]
    for excl_name, ex_all in (("no exclusion", None), ("50 seen excluded", seen)):
        ex_single = None if ex_all is None else ex_all[: args.single]
        truth = contenders["recforge-exact"](single_q, ex_single) if ex_single is None else [
            exact.query(single_q[i : i + 1], k, exclude=[ex_single[i]])[0][0] for i in range(len(single_q))
        ]
        for name, fn in contenders.items():
            fn(single_q[:5], None if ex_single is None else ex_single[:5])  # warm-up
            lat, res = latencies(fn, single_q, ex_single)
            got = [r[0] for r in res]
            bq = queries[: args.batch]
            bex = None if ex_all is None else ex_all[: args.batch]
            bt = H.time_callable(lambda: fn(bq, bex), repeats=3, warmup=1)
            entry = {
                "single_p50_ms": float(np.percentile(lat, 50)), "single_p99_ms": float(np.percentile(lat, 99)),
                "single_qps": float(1000.0 / lat.mean()), "batch_median_s": bt.median,
                "batch_qps": float(args.batch / bt.median), "recall_at_k": recall(np, got, truth, k),
            }
            report[f"{name} | {excl_name}"] = entry
            env_rows.append([f"{n_items:,}", excl_name, name, entry["single_p50_ms"], entry["single_p99_ms"],
                             entry["single_qps"], entry["batch_qps"], entry["recall_at_k"]])
            print(env_rows[-1], flush=True)
        # the full recommend() path of a model served through the HNSW index
        users = np.arange(args.single)

        def rec(q_rows, ex):
            return [model.recommend(int(u), n=k, ids="index", exclude_seen=ex is not None)[0] for u in q_rows]

        lat = np.empty(len(users))
        got = []
        for i, u in enumerate(users):
            t0 = time.perf_counter()
            got.append(model.recommend(int(u), n=k, ids="index", exclude_seen=ex_all is not None)[0])
            lat[i] = (time.perf_counter() - t0) * 1000.0
        bt = H.time_callable(lambda: model.recommend(np.arange(args.batch), n=k, ids="index", exclude_seen=ex_all is not None), repeats=3, warmup=1)
        entry = {"single_p50_ms": float(np.percentile(lat, 50)), "single_p99_ms": float(np.percentile(lat, 99)),
                 "single_qps": float(1000.0 / lat.mean()), "batch_median_s": bt.median,
                 "batch_qps": float(args.batch / bt.median), "recall_at_k": recall(np, got, truth, k)}
        report[f"recforge model.recommend via HNSW | {excl_name}"] = entry
        env_rows.append([f"{n_items:,}", excl_name, "recforge model.recommend (HNSW)", entry["single_p50_ms"],
                         entry["single_p99_ms"], entry["single_qps"], entry["batch_qps"], entry["recall_at_k"]])
        print(env_rows[-1], flush=True)
    payload[str(n_items)] = report


def gowalla_recall(np, args):
    import recforge as rf
    from recforge.datasets import read_implicit_lists, shared_data_path
    from recforge.retrieval import HNSWIndex, recall_vs_exact

    folder = shared_data_path("gowalla-lightgcn")
    if folder is None:
        return {"skipped": "gowalla-lightgcn not found"}
    train = read_implicit_lists(folder / "train.txt")
    model = rf.factorization.ALS(factors=64, iterations=15, n_threads=args.threads, random_state=0)
    t0 = time.perf_counter()
    model.fit(train, show_progress=False)
    fit_s = time.perf_counter() - t0
    users = np.random.default_rng(0).choice(train.n_users, size=2000, replace=False)
    queries = model._user_vectors(users)
    seen = train.matrix.tocsr()[users]
    out = {"als_fit_s": fit_s, "n_items": train.n_items}
    # the defaults (insertion order chosen by the probe) against each order forced, and the
    # augmented graph
    for graph, order in (("ip", "auto"), ("ip", "given"), ("ip", "norm"), ("augment", "given")):
        index = HNSWIndex("ip", ip_graph=graph, insert_order=order, n_threads=args.threads)
        t0 = time.perf_counter()
        index.build(model._scoring_items())
        build_s = time.perf_counter() - t0
        name = f"{graph} graph, insert_order={order}" + (f" (chose {index.insert_order_})" if order == "auto" else "")
        out[f"{name}: build_s"] = build_s
        out[f"{name}: recall_at_10"] = recall_vs_exact(index, queries, 10)
        out[f"{name}: recall_at_10_excluding_seen"] = recall_vs_exact(index, queries, 10, exclude=seen)
        if order == "auto":
            times = []
            for u in range(min(500, len(queries))):
                t0 = time.perf_counter()
                index.query(queries[u : u + 1], 10, exclude=seen[u])
                times.append((time.perf_counter() - t0) * 1000.0)
            out[f"{name}: single query with exclusion p50_ms"] = float(np.percentile(times, 50))
            out[f"{name}: single query with exclusion p99_ms"] = float(np.percentile(times, 99))
    return out


def knn_through_index(np, args):
    """ItemKNN / UserKNN served through a vector index: recall against their exact top 10."""
    import recforge as rf
    from recforge.datasets import read_implicit_lists, shared_data_path
    from recforge.retrieval import index_recall

    out, rows = {}, []
    for name in ("ml-1m-implicit-lightgcnpp", "gowalla-lightgcn"):
        folder = shared_data_path(name)
        if folder is None:
            out[name] = "skipped: not found"
            continue
        train = read_implicit_lists(folder / "train.txt")
        users = np.random.default_rng(0).choice(train.n_users, size=min(1000, train.n_users), replace=False)
        for cls in (rf.ItemKNN, rf.UserKNN):
            model = cls(k=50, n_threads=args.threads).fit(train)

            def single_ms():
                times = []
                for u in users[:300]:
                    t0 = time.perf_counter()
                    model.recommend(int(u), n=args.k, ids="index")
                    times.append((time.perf_counter() - t0) * 1000.0)
                return float(np.percentile(times, 50)), float(np.percentile(times, 99))

            exact_p50, exact_p99 = single_ms()
            for comps, cands in ((64, 200), (128, 500)):
                t0 = time.perf_counter()
                model.build_index("hnsw", n_components=comps, n_candidates=cands)
                build_s = time.perf_counter() - t0
                recall = index_recall(model, users, n=args.k, ids="index")
                p50, p99 = single_ms()
                key = f"{name} | {cls.__name__} | {comps} components, {cands} candidates"
                out[key] = {"build_s": build_s, "recall_at_10": recall, "index_p50_ms": p50, "index_p99_ms": p99,
                            "exact_p50_ms": exact_p50, "exact_p99_ms": exact_p99}
                rows.append([name, cls.__name__, comps, cands, build_s, recall, exact_p50, p50, p99])
                print(rows[-1], flush=True)
            model.drop_index()
    return out, rows


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.sizes, args.single, args.batch = [20_000], 100, 100
    env_changes = H.prepare_environment(args.threads)
    import numpy as np
    import scipy.sparse as sp

    rows, payload = [], {}
    for n in args.sizes:
        run_size(np, sp, args, n, rows, payload)
    gowalla = {"skipped": "--skip-gowalla"} if args.skip_gowalla else gowalla_recall(np, args)
    print("gowalla:", gowalla)
    knn, knn_rows = ({"skipped": "--skip-knn"}, []) if args.skip_knn else knn_through_index(np, args)
    env = H.environment(args.threads)
    md = [
        "# Retrieval: latency and recall",
        "",
        f"Clustered {args.factors}-factor catalogs; k = {args.k}; {args.seen} seen items per user when excluded; "
        f"{args.threads} threads for every contender. Single-user: {args.single} queries one at a time; "
        f"batch: {args.batch} users per call (median of 3). Recall@{args.k} against exact search with the "
        "same exclusions.",
        "",
        H.markdown_table(["items", "exclusion", "contender", "single p50 (ms)", "single p99 (ms)",
                          "single QPS", "batch QPS", f"recall@{args.k}"], rows),
        "",
        "Build times (s): " + ", ".join(
            f"{n}: recforge HNSW {payload[n]['build_recforge_hnsw_s']:.1f}, hnswlib {payload[n]['build_hnswlib_s']:.1f}"
            for n in payload),
        "",
        "Gowalla (ALS, 64 factors, item factors as the catalog, 2,000 sampled users as queries):",
        "",
        *([f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
           for key, value in gowalla.items()]),
        "",
        "Neighbourhood models through `build_index(\"hnsw\")` (k = 50, cosine; randomized SVD of the "
        "scoring operand, candidates re-scored exactly; 1,000 sampled users for recall@10 against the "
        "model's exact lists, 300 for single-user latency):",
        "",
        H.markdown_table(["data", "model", "components", "candidates", "build (s)", "recall@10",
                          "exact p50 (ms)", "index p50 (ms)", "index p99 (ms)"], knn_rows)
        if knn_rows else f"- {knn}",
        "",
        H.describe_env_markdown(env),
    ]
    if args.quick:
        print("\n".join(md))
        return
    H.write_results(NAME, {"params": vars(args), "env": env, "env_changes": env_changes, "sizes": payload,
                           "gowalla": gowalla, "knn": knn}, "\n".join(md))


if __name__ == "__main__":
    main()
