"""Ranking metrics: hand-computed cases, then a slow NumPy oracle on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recforge import metrics as M


def rel_matrix(rows: list[dict[int, float]], n_items: int) -> sp.csr_matrix:
    data, ind, ptr = [], [], [0]
    for r in rows:
        for i, g in r.items():
            ind.append(i)
            data.append(g)
        ptr.append(len(ind))
    return sp.csr_matrix((np.array(data, dtype=np.float32), ind, ptr), shape=(len(rows), n_items))


# -- hand-computed -------------------------------------------------------------------------


def test_binary_case_by_hand():
    lists = np.array([[1, 2, 3, 4, 5]])
    rel = rel_matrix([{2: 1, 5: 1, 9: 1}], 10)
    v = M.ranking_metrics(lists, rel, 5)
    assert v["precision"][0] == pytest.approx(2 / 5)
    assert v["recall"][0] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert v["ndcg"][0] == pytest.approx(dcg / idcg)
    assert v["map"][0] == pytest.approx((1 / 2 + 2 / 5) / 3)
    assert v["mrr"][0] == pytest.approx(1 / 2)
    assert v["hit_rate"][0] == 1.0


def test_graded_gains_by_hand():
    lists = np.array([[0, 1, 2]])
    rel = rel_matrix([{0: 1, 2: 3, 7: 2}], 8)
    lin = M.ndcg_at_k(lists, rel, 3)
    assert lin == pytest.approx((1 + 3 / 2) / (3 + 2 / math.log2(3) + 1 / 2))
    exp2 = M.ndcg_at_k(lists, rel, 3, gain="exp2")
    assert exp2 == pytest.approx((1 + 7 / 2) / (7 + 3 / math.log2(3) + 1 / 2))
    binary = M.ndcg_at_k(lists, rel, 3, gain="binary")
    assert binary == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3) + 1 / 2))


def test_ap_denominators_by_hand():
    lists = np.array([[0, 1]])
    rel = rel_matrix([{0: 1, 2: 1, 7: 1}], 8)
    assert M.map_at_k(lists, rel, 2) == pytest.approx(1 / 3)
    assert M.map_at_k(lists, rel, 2, ap_denominator="min_nrel_k") == pytest.approx(1 / 2)


def test_precision_divides_by_k_even_for_short_lists():
    lists = np.array([[3, -1, -1]])
    rel = rel_matrix([{3: 1}], 5)
    assert M.precision_at_k(lists, rel, 5) == pytest.approx(1 / 5)
    assert M.recall_at_k(lists, rel, 5) == 1.0


def test_ties_in_scores_follow_item_index():
    # Scores tie between items 4 and 2: the top-k kernel ranks item 2 first, so a relevant item
    # 2 is found at rank 1, and precision@1 counts it.
    from recforge.retrieval import topk_dense

    scores = np.array([[0.1, 0.5, 0.9, 0.2, 0.9]], dtype=np.float32)
    top, _ = topk_dense(scores, 3)
    np.testing.assert_array_equal(top, [[2, 4, 1]])
    rel = rel_matrix([{2: 1}], 5)
    assert M.precision_at_k(top, rel, 1) == 1.0
    rel = rel_matrix([{4: 1}], 5)
    assert M.mrr_at_k(top, rel, 3) == pytest.approx(1 / 2)


def test_relevance_threshold_and_repeated_items():
    lists = np.array([[0, 0, 1, 2]])
    rel = rel_matrix([{0: 1, 1: 3, 2: 2}], 3)
    v = M.ranking_metrics(lists, rel, 4, rel_threshold=1.5)
    # Relevant: items 1 and 2. The repeated item 0 counts once and is not relevant anyway.
    assert v["precision"][0] == pytest.approx(2 / 4)
    assert v["mrr"][0] == pytest.approx(1 / 3)
    # A repeated relevant item counts once.
    v = M.ranking_metrics(np.array([[1, 1]]), rel, 2)
    assert v["precision"][0] == pytest.approx(1 / 2)


def test_empty_users_conventions():
    lists = np.array([[0, 1], [0, 1]])
    rel = rel_matrix([{0: 1}, {}], 4)
    zero = M.ranking_metrics(lists, rel, 2)
    assert zero["ndcg"][1] == 0.0 and M.ndcg_at_k(lists, rel, 2) == pytest.approx(0.5)
    one = M.ranking_metrics(lists, rel, 2, empty="one")
    assert one["ndcg"][1] == 1.0
    skip = M.ranking_metrics(lists, rel, 2, empty="skip")
    assert np.isnan(skip["ndcg"][1])
    assert M.ndcg_at_k(lists, rel, 2, empty="skip") == pytest.approx(1.0)


def test_auc_by_hand():
    lists = np.array([[0, 1, 2]])
    rel = rel_matrix([{1: 1, 4: 1}], 5)
    # negatives 0, 2, 3: item 1 beats 2 of 3; item 4 (unlisted) ties with the 1 unlisted negative.
    assert M.auc(lists, rel) == pytest.approx((2 + 0.5) / 6)
    # Excluding item 3 leaves negatives 0, 2: item 1 beats 1, item 4 ties with none.
    ex = sp.csr_matrix(([1.0], [3], [0, 1]), shape=(1, 5))
    assert M.auc(lists, rel, exclude=ex) == pytest.approx(1 / 4)


def test_list_of_lists_relevance():
    lists = np.array([[0, 1], [2, 3]])
    assert M.hit_rate_at_k(lists, [[1], [5]], 2) == pytest.approx(0.5)
    with pytest.raises(IndexError):
        M.hit_rate_at_k(lists, [[-1], [5]], 2)


# -- oracle ----------------------------------------------------------------------------------


def slow_metrics(lists, rel: sp.csr_matrix, k, gain="linear", ap_den="n_rel"):
    out = {m: [] for m in ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")}
    g = {"linear": lambda x: x, "exp2": lambda x: 2.0**x - 1, "binary": lambda x: 1.0}[gain]
    for q in range(lists.shape[0]):
        row = rel[q]
        grades = {int(i): float(v) for i, v in zip(row.indices, row.data) if v > 0}
        n_rel = len(grades)
        if n_rel == 0:
            for m in out:
                out[m].append(0.0)
            continue
        seen, hits, dcg, ap, rr = set(), 0, 0.0, 0.0, 0.0
        for rank, item in enumerate(lists[q][:k], start=1):
            if item < 0 or item in seen:
                continue
            seen.add(item)
            if item in grades:
                hits += 1
                dcg += g(grades[item]) / math.log2(rank + 1)
                ap += hits / rank
                rr = rr or 1 / rank
        ideal = sorted((g(x) for x in grades.values()), reverse=True)[:k]
        idcg = sum(x / math.log2(r + 2) for r, x in enumerate(ideal))
        out["precision"].append(hits / k)
        out["recall"].append(hits / n_rel)
        out["ndcg"].append(dcg / idcg if idcg > 0 else 0.0)
        out["map"].append(ap / (n_rel if ap_den == "n_rel" else min(n_rel, k)))
        out["mrr"].append(rr)
        out["hit_rate"].append(1.0 if hits else 0.0)
    return {m: np.array(v) for m, v in out.items()}


def slow_auc(lists, rel, n_items, exclude=None):
    res = []
    for q in range(lists.shape[0]):
        pos = set(rel[q].indices[rel[q].data > 0].tolist())
        ex = set(exclude[q].indices.tolist()) - pos if exclude is not None else set()
        listed = [i for i in dict.fromkeys(lists[q].tolist()) if i >= 0 and i not in ex]
        rank = {i: len(listed) - r for r, i in enumerate(listed)}  # higher is better; unlisted 0
        negs = [i for i in range(n_items) if i not in pos and i not in ex]
        if not pos or not negs:
            res.append(np.nan)
            continue
        s = 0.0
        for p in pos:
            for n in negs:
                rp, rn = rank.get(p, 0), rank.get(n, 0)
                s += 1.0 if rp > rn else 0.5 if rp == rn else 0.0
        res.append(s / (len(pos) * len(negs)))
    return np.array(res)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gain", ["linear", "exp2", "binary"])
@pytest.mark.parametrize("ap_den", ["n_rel", "min_nrel_k"])
def test_metrics_match_slow_oracle(seed, gain, ap_den):
    rng = np.random.default_rng(seed)
    n_users, n_items, depth = 40, 30, 12
    lists = np.stack([rng.permutation(n_items)[:depth] for _ in range(n_users)]).astype(np.int64)
    lists[rng.random(lists.shape) < 0.05] = -1
    rel = sp.random(n_users, n_items, density=0.15, format="csr", random_state=seed)
    rel.data = rng.integers(1, 4, size=rel.nnz).astype(np.float32)
    for k in (1, 5, 12, 20):
        got = M.ranking_metrics(lists, rel, k, gain=gain, ap_denominator=ap_den)
        want = slow_metrics(lists, rel, k, gain=gain, ap_den=ap_den)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("seed", range(3))
def test_auc_matches_pairwise_oracle(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 25, 20
    lists = np.stack([rng.permutation(n_items)[:10] for _ in range(n_users)])
    rel = sp.random(n_users, n_items, density=0.2, format="csr", random_state=seed)
    ex = sp.random(n_users, n_items, density=0.1, format="csr", random_state=seed + 10)
    got = M.auc(lists, rel, exclude=ex, per_user=True, empty="skip")
    want = slow_auc(lists, rel, n_items, exclude=ex)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_full_ranking_auc_equals_mann_whitney():
    rng = np.random.default_rng(0)
    n_items = 50
    scores = rng.standard_normal(n_items)
    order = np.argsort(-scores, kind="stable")[None, :]
    pos = rng.choice(n_items, 10, replace=False)
    rel = sp.csr_matrix((np.ones(10), pos, [0, 10]), shape=(1, n_items))
    neg = np.setdiff1d(np.arange(n_items), pos)
    want = np.mean(scores[pos][:, None] > scores[neg][None, :])
    assert M.auc(order, rel) == pytest.approx(want)


def test_threads_do_not_change_results():
    rng = np.random.default_rng(1)
    lists = rng.integers(-1, 500, size=(3000, 20))
    rel = sp.random(3000, 500, density=0.02, format="csr", random_state=1)
    a = M.ranking_metrics(lists, rel, 10, n_threads=1)
    b = M.ranking_metrics(lists, rel, 10, n_threads=2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(k=0), ValueError, "positive integer"),
        (dict(k=5, gain="log"), ValueError, "gain"),
        (dict(k=5, empty="nan"), ValueError, "empty"),
        (dict(k=5, metrics=["f1"]), ValueError, "unknown metric"),
        (dict(k=5, ap_denominator="k"), ValueError, "ap_denominator"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    lists = np.array([[0, 1]])
    rel = rel_matrix([{0: 1}], 4)
    k = kwargs.pop("k")
    with pytest.raises(error, match=match):
        M.ranking_metrics(lists, rel, k, **kwargs)


def test_bad_inputs():
    rel = rel_matrix([{0: 1}], 4)
    with pytest.raises(IndexError, match="item columns"):
        M.ranking_metrics(np.array([[7]]), rel, 1)
    with pytest.raises(IndexError, match="below -1"):
        M.ranking_metrics(np.array([[-5]]), rel, 1)
    with pytest.raises(ValueError, match="rows"):
        M.ranking_metrics(np.array([[0], [1]]), rel, 1)
    with pytest.raises(ValueError, match="integer item indices"):
        M.ranking_metrics(np.array([[0.5]]), rel, 1)
    bad = rel.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.ranking_metrics(np.array([[0]]), bad, 1)
