"""Beyond-accuracy metrics against slow, obvious NumPy versions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp

from recforge import beyond_accuracy as B


def random_lists(rng, n_users, n_items, k):
    lists = np.stack([rng.choice(n_items, size=k, replace=False) for _ in range(n_users)])
    lists[rng.random(lists.shape) < 0.05] = -1
    return lists


def distinct(row):
    return [int(i) for i in dict.fromkeys(row.tolist()) if i >= 0]


@pytest.fixture
def setting():
    rng = np.random.default_rng(4)
    n_users, n_items, k = 120, 60, 8
    lists = random_lists(rng, n_users, n_items, k)
    train = sp.random(n_users, n_items, density=0.1, format="csr", random_state=4)
    train.data[:] = 1.0
    return rng, lists, train, n_items, k


def test_distribution_metrics_match_oracle(setting):
    _, lists, _, n_items, k = setting
    counts = np.zeros(n_items)
    for row in lists:
        for i in distinct(row):
            counts[i] += 1
    got = B.distribution_metrics(lists, n_items)
    assert got["coverage"] == pytest.approx(np.count_nonzero(counts) / n_items)
    p = counts[counts > 0] / counts.sum()
    assert got["entropy"] == pytest.approx(-(p * np.log2(p)).sum())
    assert got["normalized_entropy"] == pytest.approx(got["entropy"] / math.log2(n_items))
    # Gini as the mean absolute difference over all pairs, divided by twice the mean
    diffs = np.abs(counts[:, None] - counts[None, :]).sum()
    assert got["gini"] == pytest.approx(diffs / (2 * n_items**2 * counts.mean()))
    overlaps = [len(set(distinct(a)) & set(distinct(b))) / k for a, b in itertools.combinations(lists, 2)]
    assert got["personalization"] == pytest.approx(1 - np.mean(overlaps))


def test_gini_extremes():
    assert B.distribution_metrics(np.array([[0], [0], [0]]), 4)["gini"] == pytest.approx(0.75)
    even = B.distribution_metrics(np.array([[0, 1], [2, 3]]), 4)
    assert even["gini"] == pytest.approx(0.0) and even["coverage"] == 1.0
    assert even["personalization"] == pytest.approx(1.0)
    same = B.distribution_metrics(np.array([[0, 1], [1, 0]]), 4)
    assert same["personalization"] == pytest.approx(0.0)


def test_novelty_and_popularity_bias_match_oracle(setting):
    _, lists, train, n_items, _ = setting
    users_per_item = np.asarray((train > 0).sum(axis=0)).ravel()
    info = -np.log2(np.maximum(users_per_item, 1) / train.shape[0])
    want = [np.mean(info[distinct(r)]) if distinct(r) else np.nan for r in lists]
    np.testing.assert_allclose(B.novelty(lists, train, per_user=True), want)
    from scipy.stats import rankdata

    pct = 100 * (rankdata(users_per_item) - 1) / (n_items - 1)
    head = set(np.argsort(-users_per_item, kind="stable")[: round(0.2 * n_items)].tolist())
    bias = B.popularity_bias(lists, train, per_user=True)
    np.testing.assert_allclose(bias["popularity_percentile"], [np.mean(pct[distinct(r)]) for r in lists])
    np.testing.assert_allclose(
        bias["long_tail_share"], [np.mean([i not in head for i in distinct(r)]) for r in lists]
    )


def test_intra_list_diversity_match_oracle(setting):
    rng, lists, train, n_items, _ = setting
    vectors = rng.standard_normal((n_items, 5)).astype(np.float32)
    vectors[3] = 0.0  # a zero vector has cosine 0 with everything

    def cos_vec(i, j):
        a, b = vectors[i].astype(float), vectors[j].astype(float)
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        return 0.0 if na == 0 or nb == 0 else a @ b / (na * nb)

    cols = [set(train[:, i].nonzero()[0].tolist()) for i in range(n_items)]

    def cos_co(i, j):
        if not cols[i] or not cols[j]:
            return 0.0
        return len(cols[i] & cols[j]) / math.sqrt(len(cols[i]) * len(cols[j]))

    for fn, kwargs in ((cos_vec, {"item_vectors": vectors}), (cos_co, {"train": train})):
        want = []
        for r in lists:
            items = distinct(r)
            pairs = list(itertools.combinations(items, 2))
            want.append(np.mean([1 - fn(i, j) for i, j in pairs]) if pairs else np.nan)
        np.testing.assert_allclose(B.intra_list_diversity(lists, per_user=True, **kwargs), want, atol=1e-6)


def test_serendipity_matches_oracle(setting):
    rng, lists, train, n_items, k = setting
    relevant = sp.random(lists.shape[0], n_items, density=0.2, format="csr", random_state=9)
    expected = random_lists(rng, lists.shape[0], n_items, 5)
    got = B.serendipity(lists, relevant, expected, k, per_user=True)
    want = []
    for u, r in enumerate(lists):
        rel = set(relevant[u].indices.tolist())
        exp = set(expected[u][expected[u] >= 0].tolist())
        want.append(sum(1 for i in distinct(r[:k]) if i in rel and i not in exp) / k)
    np.testing.assert_allclose(got, want)


def test_bad_input(setting):
    _, lists, train, n_items, _ = setting
    with pytest.raises(IndexError, match="catalog"):
        B.distribution_metrics(lists, 5)
    with pytest.raises(ValueError, match="exactly one"):
        B.intra_list_diversity(lists)
    with pytest.raises(ValueError, match="head_fraction"):
        B.popularity_bias(lists, train, head_fraction=1.5)
    with pytest.raises(ValueError, match="positive integer"):
        B.distribution_metrics(lists, 0)
    with pytest.raises(ValueError, match="Interactions"):
        B.novelty(lists, np.zeros((3, 3)))
