"""Ranking metrics at scale: recforge against ranx and a plain NumPy implementation.

100,000 users, a top-100 list each, 10 graded relevant items each (about half of them inside
the list). Every contender computes precision, recall, nDCG, MAP, MRR and hit rate at k = 10
and k = 100, per user, in one process at the same thread count:

* recforge: ``recforge.metrics.ranking_metrics`` on the lists array and a relevance CSR;
* ranx: its Numba kernels on Numba typed lists (the form ``ranx.evaluate`` converts Run and
  Qrels objects into), so only metric computation is timed; the first call's JIT compilation
  is reported apart as ranx's warm-up;
* NumPy: a vectorised implementation (relevance looked up by ``searchsorted`` on sorted
  user*items keys, cumulative sums for AP, sort for the ideal DCG).

All three must agree to 1e-9 on every per-user value before anything is timed. Results go to
``results/metrics.json`` and ``results/metrics.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402  (before NumPy)

NAME = "metrics"
METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")
RANX_NAMES = {"precision": "precision", "recall": "recall", "ndcg": "ndcg", "map": "map", "mrr": "mrr", "hit_rate": "hit_rate"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--list-len", type=int, default=100)
    p.add_argument("--relevant", type=int, default=10)
    p.add_argument("--k", type=int, nargs="+", default=[10, 100])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny smoke run, no results written")
    return p.parse_args(argv)


def make_data(np, sp, n_users, n_items, list_len, n_rel, seed=0):
    rng = np.random.default_rng(seed)
    # lists: distinct items per row (offset trick keeps it vectorised)
    base = rng.integers(0, n_items, size=(n_users, 1))
    steps = np.sort(rng.choice(n_items // list_len * list_len, size=list_len, replace=False))
    lists = ((base + steps[None, :] + rng.integers(0, 3, size=(n_users, 1))) % n_items).astype(np.int32)
    perm = rng.permuted(lists, axis=1)
    inside = perm[:, : n_rel // 2]
    outside = (inside.astype(np.int64) + n_items // 2 + 7) % n_items
    rel_items = np.concatenate([inside, outside[:, : n_rel - n_rel // 2]], axis=1).astype(np.int64)
    # the outside half must not collide with list items; keep it simple: dedupe per row below
    grades = rng.integers(1, 4, size=rel_items.shape).astype(np.float32)
    rows = np.repeat(np.arange(n_users), n_rel)
    rel = sp.csr_matrix((grades.ravel(), (rows, rel_items.ravel())), shape=(n_users, n_items))
    rel.sum_duplicates()
    rel.data = np.minimum(rel.data, 3).astype(np.float32)
    return lists, rel


def numpy_metrics(np, lists, rel, k):
    """Straightforward vectorised NumPy version of the six metrics at k."""
    n_users, n_items = rel.shape
    lk = lists[:, :k].astype(np.int64)
    coo = rel.tocoo()
    keys = coo.row.astype(np.int64) * n_items + coo.col
    order = np.argsort(keys)
    keys, grades_sorted = keys[order], coo.data[order].astype(np.float64)
    q = np.arange(n_users)[:, None] * n_items + lk
    pos = np.clip(np.searchsorted(keys, q), 0, len(keys) - 1)
    found = keys[pos] == q
    g = np.where(found, grades_sorted[pos], 0.0)
    hit = g > 0
    n_rel = np.diff(rel.indptr).astype(np.float64)
    ranks = np.arange(1, lk.shape[1] + 1)
    disc = 1.0 / np.log2(ranks + 1.0)
    hits = hit.sum(axis=1)
    dcg = (g * disc).sum(axis=1)
    dense = rel.toarray() if n_users * n_items < 5e7 else _ideal(np, rel, k)
    ideal = -np.sort(-dense, axis=1)[:, :k]
    idcg = (ideal * disc[: ideal.shape[1]]).sum(axis=1)
    prec_at = np.cumsum(hit, axis=1) / ranks
    ap = (prec_at * hit).sum(axis=1) / np.maximum(n_rel, 1)
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)
    return {
        "precision": hits / k,
        "recall": hits / np.maximum(n_rel, 1),
        "ndcg": np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1), 0.0),
        "map": ap,
        "mrr": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
        "hit_rate": (hits > 0).astype(np.float64),
    }


def _ideal(np, rel, k):
    # per-user grades padded to the longest row, for the ideal DCG
    lengths = np.diff(rel.indptr)
    width = max(int(lengths.max()), k)
    out = np.zeros((rel.shape[0], width))
    rows = np.repeat(np.arange(rel.shape[0]), lengths)
    cols = np.arange(rel.nnz) - np.repeat(rel.indptr[:-1], lengths)
    out[rows, cols] = rel.data
    return out


def ranx_inputs(np, lists, rel):
    from numba.typed import List as TypedList

    n_users, length = lists.shape
    scores = np.arange(length, 0, -1, dtype=np.float64)
    run = TypedList()
    qrels = TypedList()
    for u in range(n_users):
        run.append(np.column_stack([lists[u].astype(np.float64), scores]))
        s, e = rel.indptr[u], rel.indptr[u + 1]
        items, grades = rel.indices[s:e].astype(np.float64), rel.data[s:e].astype(np.float64)
        o = np.argsort(-grades, kind="stable")
        qrels.append(np.column_stack([items[o], grades[o]]))
    return run, qrels


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.users, args.items, args.repeats, args.threads = 2000, 5000, 1, [1]
    env_changes = H.prepare_environment(max(args.threads))
    import numba
    import numpy as np
    import ranx
    import scipy.sparse as sp

    from recforge.metrics import ranking_metrics

    lists, rel = make_data(np, sp, args.users, args.items, args.list_len, args.relevant)
    print(f"data: {args.users:,} users x top-{args.list_len}, {rel.nnz:,} relevant entries")
    t0 = time.perf_counter()
    run_tl, qrels_tl = ranx_inputs(np, lists, rel)
    build_typed = time.perf_counter() - t0
    ranx_metrics = [f"{RANX_NAMES[m]}@{k}" for k in args.k for m in METRICS]

    def run_recforge(threads):
        return {(m, k): v for k in args.k for m, v in ranking_metrics(lists, rel, k, n_threads=threads).items()}

    def run_ranx():
        return ranx.evaluate(qrels_tl, run_tl, ranx_metrics, return_mean=False, make_comparable=False)

    def run_numpy():
        return {(m, k): v for k in args.k for m, v in numpy_metrics(np, lists, rel, k).items()}

    # correctness first (and ranx's JIT warm-up, timed separately)
    numba.set_num_threads(max(args.threads))
    t0 = time.perf_counter()
    ref_ranx = run_ranx()
    ranx_jit = time.perf_counter() - t0
    ours = run_recforge(max(args.threads))
    ref_np = run_numpy()
    worst = 0.0
    for k in args.k:
        for m in METRICS:
            worst = max(worst, float(np.max(np.abs(ours[(m, k)] - ref_ranx[f"{RANX_NAMES[m]}@{k}"]))))
            worst = max(worst, float(np.max(np.abs(ours[(m, k)] - ref_np[(m, k)]))))
    print(f"largest per-user difference to ranx and NumPy: {worst:.2e}")
    if worst > 1e-9:
        raise SystemExit("recforge disagrees with ranx/NumPy; not timing")

    results = {}
    rows = []
    for threads in args.threads:
        numba.set_num_threads(threads)
        with H.blas_threads(threads):
            t = H.time_interleaved(
                {"recforge": lambda: run_recforge(threads), "ranx": run_ranx, "numpy": run_numpy},
                repeats=args.repeats, warmup=1,
            )
        results[str(threads)] = {
            "timings": {n: v.as_dict() for n, v in t.items()},
            "ranx_over_recforge": H.ratio(t["ranx"], t["recforge"]),
            "numpy_over_recforge": H.ratio(t["numpy"], t["recforge"]),
        }
        rows.append([threads, t["recforge"].median, t["ranx"].median, t["numpy"].median,
                     H.ratio(t["ranx"], t["recforge"]), H.ratio(t["numpy"], t["recforge"])])
        print(f"threads={threads}: recforge {t['recforge'].median:.3f}s  ranx {t['ranx'].median:.3f}s  "
              f"numpy {t['numpy'].median:.3f}s  -> ranx/recforge {rows[-1][4]:.1f}x, numpy/recforge {rows[-1][5]:.1f}x")
    params = {k: v for k, v in vars(args).items()}
    env = H.environment(args.threads)
    md = [
        "# Ranking metrics: recforge vs ranx vs NumPy",
        "",
        f"{args.users:,} users x top-{args.list_len} lists, {args.relevant} graded relevant items per user; "
        f"precision, recall, nDCG, MAP, MRR and hit rate at k = {', '.join(map(str, args.k))}, per user. "
        f"Medians of {args.repeats} interleaved repeats after one warm-up. All contenders agree to "
        f"{worst:.1e} on every per-user value.",
        "",
        H.markdown_table(
            ["threads", "recforge (s)", "ranx warm (s)", "NumPy (s)", "ranx / recforge", "NumPy / recforge"], rows
        ),
        "",
        f"ranx's first call (Numba JIT compilation included): {ranx_jit:.2f} s. "
        f"Building ranx's typed lists from the arrays (not timed above): {build_typed:.2f} s.",
        "",
        H.describe_env_markdown(env),
    ]
    if args.quick:
        print("\n".join(md))
        return
    H.write_results(NAME, {"params": params, "env": env, "env_changes": env_changes, "results": results,
                           "ranx_first_call_s": ranx_jit, "ranx_typed_list_build_s": build_typed,
                           "max_abs_difference": worst}, "\n".join(md))
    print("written results/metrics.json and results/metrics.md")


if __name__ == "__main__":
    main()
