"""Rating-prediction factorization (SVD / PMF, SVD++, NMF, ALS-WR): the recommender contract,
gradients against finite differences, one epoch of every kernel against a slow NumPy version,
recovery of a planted low-rank matrix, determinism, and prediction conventions."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import recforge as rf
from recforge import _core
from recforge._training import DivergenceError
from recforge.data import Interactions

from .recommender_contract import RecommenderContract

K = _core.factorization_explicit
REG = [0.02, 0.03, 0.04, 0.05, 0.06]  # bu, bi, pu, qi, yj
LR = [0.01, 0.02, 0.03, 0.04, 0.05]


# ----------------------------------------------------------------------------------------
# the contract
# ----------------------------------------------------------------------------------------
class TestSVDContract(RecommenderContract):
    def make_model(self):
        return rf.SVD(factors=8, n_epochs=5, random_state=0, n_threads=1)


class TestPMFContract(RecommenderContract):
    def make_model(self):
        return rf.SVD(factors=8, n_epochs=5, biased=False, random_state=0, n_threads=1)


class TestSVDppContract(RecommenderContract):
    def make_model(self):
        return rf.SVDpp(factors=6, n_epochs=5, random_state=0, n_threads=1)


class TestNMFContract(RecommenderContract):
    def make_model(self):
        return rf.NMF(factors=6, n_epochs=10, random_state=0)


class TestALSWRContract(RecommenderContract):
    def make_model(self):
        return rf.ALSWR(factors=6, n_epochs=4, random_state=0)


# ----------------------------------------------------------------------------------------
# gradients of one rating's loss against central finite differences (float64)
# ----------------------------------------------------------------------------------------
def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for j in range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = eps
        g.flat[j] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("biased", [True, False])
def test_svd_gradient_matches_finite_differences(biased):
    rng = np.random.default_rng(0)
    k = 7
    p, q = rng.normal(size=k), rng.normal(size=k)
    bu, bi, mu, r = 0.3, -0.2, 3.6, 4.0

    def loss(p=p, q=q, bu=bu, bi=bi):
        return K.svd_loss_grad(p, q, bu, bi, mu, r, biased, REG)[0]

    value, gp, gq, gbu, gbi = K.svd_loss_grad(p, q, bu, bi, mu, r, biased, REG)
    pred = (mu + bu + bi if biased else 0.0) + p @ q
    expected = 0.5 * ((r - pred) ** 2 + REG[2] * p @ p + REG[3] * q @ q + (REG[0] * bu**2 + REG[1] * bi**2 if biased else 0))
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(gp, _numeric_grad(lambda x: loss(p=x), p), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gq, _numeric_grad(lambda x: loss(q=x), q), rtol=1e-6, atol=1e-8)
    if biased:
        assert gbu == pytest.approx(_numeric_grad(lambda x: loss(bu=x[0]), np.array([bu]))[0], rel=1e-6)
        assert gbi == pytest.approx(_numeric_grad(lambda x: loss(bi=x[0]), np.array([bi]))[0], rel=1e-6)
    else:
        assert gbu == 0 and gbi == 0


def test_svdpp_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    k, n = 5, 4
    p, q, Y = rng.normal(size=k), rng.normal(size=k), rng.normal(size=(n, k))
    bu, bi, mu, r = 0.1, 0.4, 3.5, 2.0

    def loss(p=p, q=q, Y=Y, bu=bu, bi=bi):
        return K.svdpp_loss_grad(p, q, Y, bu, bi, mu, r, REG)[0]

    value, gp, gq, gbu, gbi, gY = K.svdpp_loss_grad(p, q, Y, bu, bi, mu, r, REG)
    z = p + Y.sum(axis=0) / np.sqrt(n)
    err = r - (mu + bu + bi + q @ z)
    expected = 0.5 * (err**2 + REG[0] * bu**2 + REG[1] * bi**2 + REG[2] * p @ p + REG[3] * q @ q + REG[4] * (Y * Y).sum())
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(gp, _numeric_grad(lambda x: loss(p=x), p), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gq, _numeric_grad(lambda x: loss(q=x), q), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gY, _numeric_grad(lambda x: loss(Y=x), Y), rtol=1e-6, atol=1e-8)
    assert gbu == pytest.approx(_numeric_grad(lambda x: loss(bu=x[0]), np.array([bu]))[0], rel=1e-6)
    assert gbi == pytest.approx(_numeric_grad(lambda x: loss(bi=x[0]), np.array([bi]))[0], rel=1e-6)


# ----------------------------------------------------------------------------------------
# one epoch of each kernel against an obvious NumPy loop
# ----------------------------------------------------------------------------------------
def _random_ratings(n_users=12, n_items=9, density=0.5, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[0] = False  # a user without ratings
    dense = np.where(mask, rng.integers(1, 6, size=mask.shape), 0).astype(np.float64)
    return sp.csr_matrix(dense), rng


def _lane_order(order, users, offset=None, lanes=3):
    """The kernels' visit of the positions `order` (blocks between the `offset`s): in each block
    the runs (stretches of one user) are held by `lanes` lanes; in every round each lane holding a
    run takes its next entry, lanes in order; then the lanes whose run is done let it go and the
    empty lanes take the next runs in lane order, unless the next run's user is held by a lane:
    that run (and the ones after it) then waits."""
    order = np.asarray(order, dtype=np.int64)
    offset = [0, len(order)] if offset is None else offset
    out = []
    for b in range(len(offset) - 1):
        runs = []
        for p in order[offset[b]: offset[b + 1]]:
            if runs and users[runs[-1][-1]] == users[p]:
                runs[-1].append(int(p))
            else:
                runs.append([int(p)])
        nxt, lane, at = 0, [None] * lanes, [0] * lanes

        def refill():
            nonlocal nxt
            for l in range(lanes):
                if lane[l] is None and nxt < len(runs):
                    if any(r is not None and users[r[0]] == users[runs[nxt][0]] for r in lane):
                        return
                    lane[l], at[l], nxt = runs[nxt], 0, nxt + 1

        refill()
        while any(run is not None for run in lane):
            for l in range(lanes):
                if lane[l] is not None:
                    out.append(lane[l][at[l]])
                    at[l] += 1
            for l in range(lanes):
                if lane[l] is not None and at[l] == len(lane[l]):
                    lane[l] = None
            refill()
    return np.asarray(out, dtype=np.int64)


def _svd_epoch_numpy(users, items, ratings, P, Q, bu, bi, mu, biased, lr=LR, reg=REG):
    """Surprise's SVD loop, rating by rating."""
    lr_bu, lr_bi, lr_pu, lr_qi = lr[:4]
    reg_bu, reg_bi, reg_pu, reg_qi = reg[:4]
    for u, i, r in zip(users, items, ratings):
        err = r - ((mu + bu[u] + bi[i]) if biased else 0.0) - P[u] @ Q[i]
        if biased:
            bu[u] += lr_bu * (err - reg_bu * bu[u])
            bi[i] += lr_bi * (err - reg_bi * bi[i])
        pu = P[u].copy()
        P[u] += lr_pu * (err * Q[i] - reg_pu * P[u])
        Q[i] += lr_qi * (err * pu - reg_qi * Q[i])


@pytest.mark.parametrize("biased", [True, False])
@pytest.mark.parametrize("dtype,kernel,tol", [
    (np.float64, None, 1e-12), (np.float32, None, 2e-5), (np.float32, "generic", 2e-5), (np.float32, "avx2", 2e-5),
])
@pytest.mark.parametrize("k", [8, 19, 45, 130, 270])
@pytest.mark.parametrize("decay", ["mild", "strong"])
def test_svd_epoch_matches_numpy(biased, dtype, kernel, tol, k, decay, monkeypatch):
    if kernel:
        monkeypatch.setenv("RECFORGE_VECTOR_KERNEL", kernel)
    lr, reg = LR, REG
    if decay == "strong":  # 1 - lr reg <= 0.5 for the factors: the vector kernel without lazy decay
        lr, reg = [0.01, 0.02, 0.2, 0.2, 0.05], [0.02, 0.03, 2.6, 2.5, 0.06]
    R, rng = _random_ratings()
    # rows of 1, 3, 6, 17 and 34 AVX2 vectors (1, 2, 3, 9 and 17 AVX-512 vectors) with padding:
    # the last ones more than the vector kernels hold in registers; 8 has no padding for AVX2
    users = np.repeat(np.arange(R.shape[0], dtype=np.int32), np.diff(R.indptr))
    items, ratings = R.indices.astype(np.int32), R.data
    # a mixed order: runs of one user's ratings (the vector kernel keeps the user's row in
    # registers over a run) and single ratings
    perm = np.concatenate([np.arange(20), 20 + rng.permutation(len(users) - 20)])
    users, items, ratings = users[perm], items[perm], ratings[perm]
    std = 0.3 * min(1.0, np.sqrt(130 / k))  # dot products of the same scale for the widest rows
    P0, Q0 = rng.normal(0, std, (R.shape[0], k)), rng.normal(0, std, (R.shape[1], k))
    bu0, bi0 = rng.normal(0, 0.1, R.shape[0]), rng.normal(0, 0.1, R.shape[1])
    mu = float(ratings.mean())
    P, Q, bu, bi = P0.copy(), Q0.copy(), bu0.copy(), bi0.copy()
    visit = _lane_order(np.arange(len(users)), users)  # shuffle=False: the given order, runs in lanes
    for _ in range(2):
        _svd_epoch_numpy(users[visit], items[visit], ratings[visit], P, Q, bu, bi, mu, biased, lr, reg)
    Pc, Qc, buc, bic = (a.astype(dtype) for a in (P0, Q0, bu0, bi0))
    for epoch in range(2):
        sse, n = K.svd_epoch(users, items, ratings.astype(dtype), Pc, Qc, buc if biased else None,
                             bic if biased else None, mu if biased else 0.0, lr=lr, reg=reg, shuffle=False,
                             seed=epoch, n_threads=1)
    assert n == R.nnz and sse > 0
    assert np.abs(P).max() > 0.01 and np.abs(Q).max() > 0.01  # not decayed to nothing
    assert np.abs(P).max() < 10 and np.abs(Q).max() < 10  # nor diverged (rounding would grow with it)
    np.testing.assert_allclose(Pc, P, rtol=tol, atol=tol)
    np.testing.assert_allclose(Qc, Q, rtol=tol, atol=tol)
    if biased:
        np.testing.assert_allclose(buc, bu, rtol=tol, atol=tol)
        np.testing.assert_allclose(bic, bi, rtol=tol, atol=tol)


def _balanced_strata(ids, n_rows, strata):
    """Consecutive rows with about n / strata ratings each: row r goes to the stratum holding the
    middle of its ratings in index order."""
    count = np.bincount(ids, minlength=n_rows)
    before = np.concatenate([[0], np.cumsum(count)[:-1]])
    return np.minimum((2 * before + count) * strata // (2 * len(ids)), strata - 1)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("skewed", [False, True])
def test_svd_epoch_in_conflict_free_blocks_matches_numpy(threads, skewed):
    # enough ratings for blocks of >= 2,048 ratings (min_block) at this many threads; skewed:
    # item 0 holds most ratings, so that an item stratum is empty
    R, rng = _random_ratings(n_users=260, n_items=190, density=0.45, seed=11)
    min_block = 2048
    if skewed:
        dense = R.toarray()
        dense[:, 1:] *= rng.random((260, 189)) < 0.002
        dense[:, 0] = rng.integers(1, 6, 260)
        R = sp.csr_matrix(dense)
        min_block = 1
        assert R.getcol(0).nnz > 0.6 * R.nnz
    assert R.nnz >= min_block * threads * threads
    users = np.repeat(np.arange(R.shape[0], dtype=np.int32), np.diff(R.indptr))
    items, ratings = R.indices.astype(np.int32), R.data
    k, mu = 7, float(ratings.mean())
    P0, Q0 = rng.normal(0, 0.3, (R.shape[0], k)), rng.normal(0, 0.3, (R.shape[1], k))
    bu0, bi0 = rng.normal(0, 0.1, R.shape[0]), rng.normal(0, 0.1, R.shape[1])
    # the oracle: in round s, block (w, (w + s) mod S) for every w, each in input order; blocks
    # of one round share no user or item, so running them one after another is the parallel result
    su, si = _balanced_strata(users, R.shape[0], threads), _balanced_strata(items, R.shape[1], threads)
    P, Q, bu, bi = P0.copy(), Q0.copy(), bu0.copy(), bi0.copy()
    for s in range(threads):
        for w in range(threads):
            sel = _lane_order(np.flatnonzero((su[users] == w) & (si[items] == (w + s) % threads)), users)
            _svd_epoch_numpy(users[sel], items[sel], ratings[sel], P, Q, bu, bi, mu, True)
    Pc, Qc, buc, bic = P0.copy(), Q0.copy(), bu0.copy(), bi0.copy()
    sse, n = K.svd_epoch(users, items, ratings, Pc, Qc, buc, bic, mu, lr=LR, reg=REG, shuffle=False, seed=0,
                         n_threads=threads, min_block=min_block)
    assert n == R.nnz
    for got, want in ((Pc, P), (Qc, Q), (buc, bu), (bic, bi)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_svd_with_threads_is_deterministic_and_as_good_as_one_thread():
    rng = np.random.default_rng(4)
    n_users, n_items, rank = 1100, 900, 4
    truth = rng.normal(0, 1, (n_users, rank)) @ rng.normal(0, 1, (n_items, rank)).T / 2 + 3
    mask = rng.random(truth.shape) < 0.3
    u, i = np.nonzero(mask)
    test = rng.random(u.size) < 0.1
    train = Interactions.from_arrays(u[~test], i[~test], ratings=truth[u[~test], i[~test]],
                                    user_ids=np.arange(n_users), item_ids=np.arange(n_items))
    assert train.nnz >= 4 * 16384  # 2 x 2 blocks of at least 16,384 ratings: the block path runs

    def fit(threads):
        return rf.SVD(factors=8, n_epochs=30, lr_all=0.01, random_state=0, n_threads=threads).fit(
            train, show_progress=False)

    a, b, one = fit(2), fit(2), fit(1)
    for name in a._learned:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.user_factors_, one.user_factors_)  # the blocks visit another order
    rmse = [np.sqrt(np.mean((m.predict(u[test], i[test]) - truth[u[test], i[test]]) ** 2))
            for m in (a, one)]
    baseline = np.sqrt(np.mean((truth[u[test], i[test]] - truth[u[~test], i[~test]].mean()) ** 2))
    assert rmse[0] < 0.5 * baseline and abs(rmse[0] - rmse[1]) < 0.05 * baseline


# The grouped shuffle, stated in Python: splitmix64, Lemire's bounded draws (64-bit for the user
# and group permutations, 16-bit quarters for the runs), Fisher-Yates (back to front for the
# permutations, front to back for the runs).
_M64 = (1 << 64) - 1


class _SplitMix64:
    def __init__(self, seed):
        self.state = seed & _M64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return z ^ (z >> 31)

    def below(self, n, draw=None, bits=64):
        draw = draw or self.next
        m = draw() * n
        low = m & ((1 << bits) - 1)
        if low < n:
            threshold = ((1 << bits) - n) % n
            while low < threshold:
                m = draw() * n
                low = m & ((1 << bits) - 1)
        return m >> bits


class _Uniform16:
    def __init__(self, rng):
        self.rng, self.word, self.left = rng, 0, 0

    def next(self):
        if self.left == 0:
            self.word, self.left = self.rng.next(), 4
        x = self.word & 0xFFFF
        self.word >>= 16
        self.left -= 1
        return x

    def below(self, n):
        return self.rng.below(n, self.next, 16)


def _fisher_yates(x, below):
    for t in range(len(x) - 1, 0, -1):
        j = below(t + 1)
        x[t], x[j] = x[j], x[t]


def _fisher_yates_forward(x, below):
    for t in range(1, len(x)):
        j = below(t + 1)
        x[t], x[j] = x[j], x[t]


def _grouped_order(users, items, n_users, n_items, k, itemsize, seed, blocks=None):
    """Item groups (ranges of consecutive items of about 256 KiB of padded rows) in a random
    order; in each, users in a random order; each user's ratings in the group in a random order.
    With blocks = (user strata, item strata, S): block by block (user stratum a, item stratum b
    for block a S + b), each block in that order, its runs shuffled from a stream of its own;
    returns the order and the blocks' offsets."""
    rng = _SplitMix64(seed)
    user_perm = list(range(n_users))
    _fisher_yates(user_perm, rng.below)
    row_bytes = -(-k // 8) * 8 * itemsize
    groups = max(1, min(-(-n_items * row_bytes // (256 * 1024)), n_items))
    group_rank = list(range(groups))
    _fisher_yates(group_rank, rng.below)
    group = np.asarray(items, dtype=np.int64) * groups // n_items
    su, si, S = blocks if blocks is not None else (np.zeros(n_users, int), np.zeros(n_items, int), 1)
    # on several strata every block shuffles its runs from a stream of its own
    streams = [rng] if S == 1 else [_SplitMix64(s) for s in [rng.next() for _ in range(S * S)]]
    order, offset = [], [0]
    for blk in range(S * S):
        draw = _Uniform16(streams[0 if S == 1 else blk])
        in_block = si[items] == blk % S
        for g in sorted(range(groups), key=lambda g: group_rank[g]):
            for u in user_perm:
                if su[u] != blk // S:
                    continue
                run = [int(t) for t in np.flatnonzero((users == u) & (group == g) & in_block)]
                _fisher_yates_forward(run, draw.below)
                order += run
        offset.append(len(order))
    order = _lane_order(order, users, offset)
    return order if blocks is None else (order, np.asarray(offset))


@pytest.mark.parametrize("n_users,n_items,k,itemsize", [
    (40, 9, 4, 4), (40, 700, 100, 4), (40, 700, 100, 8), (40, 3000, 24, 4),
    (5000, 3000, 24, 4),  # many more (user, item range) pairs than ratings: the counting sorts
])
@pytest.mark.parametrize("sorted_input", [True, False])
def test_svd_epoch_order_is_the_grouped_shuffle(n_users, n_items, k, itemsize, sorted_input):
    rng = np.random.default_rng(n_items + k + n_users)
    mask = rng.random((n_users, n_items)) < min(1.0, 60 / n_items) * (40 / n_users)
    users, items = (a.astype(np.int32) for a in np.nonzero(mask))  # sorted by user, then item
    if not sorted_input:  # the other path of the kernel: counting sorts
        perm = rng.permutation(len(users))
        users, items = users[perm], items[perm]
    for seed in (0, 7):
        order, offset = K.svd_epoch_order(users, items, n_users, n_items, k, itemsize, shuffle=True, seed=seed)
        np.testing.assert_array_equal(order, _grouped_order(users, items, n_users, n_items, k, itemsize, seed))
        np.testing.assert_array_equal(offset, [0, len(users)])
    # more than one item group in the larger cases
    groups = -(-n_items * (-(-k // 8) * 8 * itemsize) // (256 * 1024))
    assert groups == 1 if n_items == 9 else groups >= 2
    # without shuffle: the given order (its runs in lanes)
    order, _ = K.svd_epoch_order(users, items, n_users, n_items, k, itemsize, shuffle=False)
    np.testing.assert_array_equal(order, _lane_order(np.arange(len(users)), users))


@pytest.mark.parametrize("users,want", [
    # runs (0: 0 1 2), (1: 3), (0: 4), (2: 5): the second run of user 0 waits for the first
    ([0, 0, 0, 1, 0, 2], [0, 3, 1, 2, 4, 5]),
    # runs (0: 0 1), (1: 2), (2: 3), (3: 4): three lanes, then the fourth run in lane 1
    ([0, 0, 1, 2, 3], [0, 2, 3, 1, 4]),
])
def test_svd_epoch_visits_runs_in_three_lanes(users, want):
    users = np.asarray(users, dtype=np.int32)
    items = np.arange(len(users), dtype=np.int32)
    order, _ = K.svd_epoch_order(users, items, int(users.max()) + 1, len(users), 4, 4, shuffle=False)
    np.testing.assert_array_equal(order, want)
    np.testing.assert_array_equal(_lane_order(np.arange(len(users)), users), want)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("sorted_input", [True, False])
def test_svd_epoch_order_in_blocks_is_the_grouped_shuffle_of_each_block(threads, sorted_input):
    rng = np.random.default_rng(threads)
    n_users, n_items, k = 300, 2500, 40  # several item groups, cut by the item strata
    mask = rng.random((n_users, n_items)) < 0.03
    users, items = (a.astype(np.int32) for a in np.nonzero(mask))
    if not sorted_input:  # the counting sorts instead of the cut table
        perm = rng.permutation(len(users))
        users, items = users[perm], items[perm]
    su, si = _balanced_strata(users, n_users, threads), _balanced_strata(items, n_items, threads)
    for seed in (0, 3):
        order, offset = K.svd_epoch_order(users, items, n_users, n_items, k, 4, shuffle=True, seed=seed,
                                          n_threads=threads, min_block=64)
        want, want_offset = _grouped_order(users, items, n_users, n_items, k, 4, seed, (su, si, threads))
        np.testing.assert_array_equal(order, want)
        np.testing.assert_array_equal(offset, want_offset)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_shuffled_svd_epoch_is_the_numpy_loop_in_the_grouped_order(dtype, tol):
    rng = np.random.default_rng(5)
    n_users, n_items, k = 30, 900, 75  # two item groups at float32, three at float64
    mask = rng.random((n_users, n_items)) < 0.05
    users, items = (a.astype(np.int32) for a in np.nonzero(mask))
    ratings = rng.integers(1, 6, size=len(users)).astype(np.float64)
    P0, Q0 = rng.normal(0, 0.1, (n_users, k)), rng.normal(0, 0.1, (n_items, k))
    bu0, bi0 = rng.normal(0, 0.1, n_users), rng.normal(0, 0.1, n_items)
    mu = float(ratings.mean())
    P, Q, bu, bi = P0.copy(), Q0.copy(), bu0.copy(), bi0.copy()
    Pc, Qc, buc, bic = (a.astype(dtype) for a in (P0, Q0, bu0, bi0))
    workspace = K.SvdWorkspace()
    for seed in (3, 4):
        order, _ = K.svd_epoch_order(users, items, n_users, n_items, k, np.dtype(dtype).itemsize, seed=seed)
        _svd_epoch_numpy(users[order], items[order], ratings[order], P, Q, bu, bi, mu, True)
        sse, n = K.svd_epoch(users, items, ratings.astype(dtype), Pc, Qc, buc, bic, mu, lr=LR, reg=REG,
                             shuffle=True, seed=seed, n_threads=1, workspace=workspace)
        assert n == len(users)
    for got, want in ((Pc, P), (Qc, Q), (buc, bu), (bic, bi)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("shuffle", [False, True])
def test_svd_epoch_long_runs_fold_the_lazy_scales(shuffle):
    # user 0 rates every item and every user rates item 0: runs and item histories of 1,500
    # steps, over which (1 - lr reg)^n = 0.99^n falls below 2^-20 and the scales are folded
    lr, reg = [0.01, 0.01, 0.1, 0.1, 0.0], [0.02, 0.02, 0.1, 0.1, 0.0]
    rng = np.random.default_rng(0)
    n, k = 1500, 8
    mask = rng.random((n, n)) < 0.002
    mask[0, :] = mask[:, 0] = True
    users, items = (a.astype(np.int32) for a in np.nonzero(mask))
    ratings = (rng.normal(0, 1, (n, 2)) @ rng.normal(0, 1, (2, n)))[users, items] + 3
    P0, Q0 = rng.normal(0, 0.3, (n, k)), rng.normal(0, 0.3, (n, k))
    P, Q, bu, bi = P0.copy(), Q0.copy(), np.zeros(n), np.zeros(n)
    Pc, Qc, buc, bic = (a.astype(np.float32) for a in (P0, Q0, bu, bi))
    order = K.svd_epoch_order(users, items, n, n, k, 4, shuffle=shuffle, seed=2)[0]
    _svd_epoch_numpy(users[order], items[order], ratings[order], P, Q, bu, bi, 3.0, True, lr, reg)
    K.svd_epoch(users, items, ratings.astype(np.float32), Pc, Qc, buc, bic, 3.0, lr=lr, reg=reg, shuffle=shuffle,
                seed=2, n_threads=1)
    assert np.abs(P[0]).max() > 0.1 and np.abs(Q[0]).max() > 0.1  # not decayed to nothing
    for got, want in ((Pc, P), (Qc, Q), (buc, bu), (bic, bi)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


def test_svd_epoch_workspace_gives_the_same_epochs_for_any_shapes():
    workspace = K.SvdWorkspace()
    for n_users, n_items, k in ((12, 9, 19), (50, 40, 5), (12, 9, 19)):
        R, rng = _random_ratings(n_users, n_items, seed=n_users)
        users = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(R.indptr))
        items, ratings = R.indices.astype(np.int32), R.data.astype(np.float32)
        P0 = rng.normal(0, 0.3, (n_users, k)).astype(np.float32)
        Q0 = rng.normal(0, 0.3, (n_items, k)).astype(np.float32)
        runs = []
        for ws in (None, workspace):
            P, Q = P0.copy(), Q0.copy()
            K.svd_epoch(users, items, ratings, P, Q, lr=LR, reg=REG, shuffle=True, seed=1, workspace=ws)
            runs.append((P, Q))
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        np.testing.assert_array_equal(runs[0][1], runs[1][1])


def _padded_view(a, stride, misalign=False, fill=0.0):
    """a (n, k) copied into the first k columns of rows `stride` floats apart, 64-byte aligned
    (or 16 bytes off that), the other columns set to `fill`."""
    n, k = a.shape
    raw = np.zeros(n * stride + 32, dtype=a.dtype)
    off = (-raw.ctypes.data % 64) // a.itemsize + (16 // a.itemsize if misalign else 0)
    rows = raw[off: off + n * stride].reshape(n, stride)
    rows[:, k:] = fill
    rows[:, :k] = a
    return rows[:, :k], rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shuffle,threads", [(True, 1), (False, 1), (True, 2)])
def test_svd_trainer_epochs_equal_svd_epoch(dtype, shuffle, threads):
    R, rng = _random_ratings(n_users=120, n_items=90, density=0.4, seed=4)
    users = np.repeat(np.arange(R.shape[0], dtype=np.int32), np.diff(R.indptr))
    items, ratings = R.indices.astype(np.int32), R.data.astype(dtype)
    k = 13
    P0 = rng.normal(0, 0.3, (R.shape[0], k)).astype(dtype)
    Q0 = rng.normal(0, 0.3, (R.shape[1], k)).astype(dtype)
    mu = float(ratings.mean())
    trainer = K.SvdTrainer(users, items, ratings, R.shape[0], R.shape[1])
    assert trainer.size == R.nnz
    ws = K.SvdWorkspace()
    runs = []
    for use_trainer in (False, True):
        P, Q = P0.copy(), Q0.copy()
        bu, bi = np.zeros(R.shape[0], dtype), np.zeros(R.shape[1], dtype)
        stats = []
        for epoch in range(3):
            args = dict(lr=LR, reg=REG, shuffle=shuffle, seed=epoch, n_threads=threads, min_block=256)
            if use_trainer:
                stats.append(trainer.epoch(P, Q, bu, bi, mu, **args))
            else:
                stats.append(K.svd_epoch(users, items, ratings, P, Q, bu, bi, mu, workspace=ws, **args))
        runs.append((P, Q, bu, bi, stats))
    for a, b in zip(runs[0], runs[1]):
        if isinstance(a, list):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel", [None, "avx2", "generic"])
@pytest.mark.parametrize("layout", ["padded", "misaligned", "wide"])
@pytest.mark.parametrize("fill", [0.0, -0.0, 7.0])  # +0: the vector kernel's own layout; others: to be kept
def test_svd_epoch_on_views_of_wider_rows_equals_contiguous_arrays(kernel, layout, fill, monkeypatch):
    if kernel:
        monkeypatch.setenv("RECFORGE_VECTOR_KERNEL", kernel)
    R, rng = _random_ratings(n_users=40, n_items=30, density=0.5, seed=6)
    users = np.repeat(np.arange(R.shape[0], dtype=np.int32), np.diff(R.indptr))
    items, ratings = R.indices.astype(np.int32), R.data.astype(np.float32)
    k = 19
    stride = {"padded": K.svd_padded_stride(k), "misaligned": K.svd_padded_stride(k), "wide": 29}[layout]
    assert K.svd_padded_stride(k) == (32 if K.sgd_kernel_name() == "avx512" else 24)  # whole vectors
    P0 = rng.normal(0, 0.3, (R.shape[0], k)).astype(np.float32)
    Q0 = rng.normal(0, 0.3, (R.shape[1], k)).astype(np.float32)
    P, Q = P0.copy(), Q0.copy()
    (Pv, Prows), (Qv, Qrows) = (_padded_view(a, stride, layout == "misaligned", fill) for a in (P0, Q0))
    assert not Pv.flags.c_contiguous
    trainer = K.SvdTrainer(users, items, ratings, R.shape[0], R.shape[1])
    for epoch in range(3):
        a = K.svd_epoch(users, items, ratings, P, Q, lr=LR, reg=REG, seed=epoch)
        b = trainer.epoch(Pv, Qv, lr=LR, reg=REG, seed=epoch)
        assert a == b
    np.testing.assert_array_equal(Pv, P)
    np.testing.assert_array_equal(Qv, Q)
    for rows in (Prows, Qrows):  # the columns outside the views keep their values, -0.0 included
        np.testing.assert_array_equal(rows[:, k:], fill)
        assert np.all(np.signbit(rows[:, k:]) == np.signbit(fill))


def test_svd_trainer_rejects_bad_input():
    u = np.array([0, 1, 1], dtype=np.int32)
    i = np.array([0, 2, 1], dtype=np.int32)
    r = np.array([4.0, 3.0, 5.0], dtype=np.float32)
    with pytest.raises(IndexError, match="item index 5"):
        K.SvdTrainer(u, np.array([0, 5, 1], dtype=np.int32), r, 2, 3)
    with pytest.raises(IndexError, match="user index"):
        K.SvdTrainer(u, i, r, 1, 3)
    with pytest.raises(ValueError, match="entries"):
        K.SvdTrainer(u, i[:2], r, 2, 3)
    trainer = K.SvdTrainer(u, i, r, 2, 3)  # unsorted triples are fine
    P, Q = np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="float32"):
        trainer.epoch(P.astype(np.float64), Q.astype(np.float64), lr=LR, reg=REG)
    with pytest.raises(ValueError, match="item rows"):
        trainer.epoch(P, np.zeros((4, 4), np.float32), lr=LR, reg=REG)
    with pytest.raises(ValueError, match="C-contiguous"):
        trainer.epoch(P, np.zeros((3, 8), np.float32)[:, ::2], lr=LR, reg=REG)
    with pytest.raises(ValueError, match="columns"):
        trainer.epoch(P, np.zeros((3, 5), np.float32), lr=LR, reg=REG)
    with pytest.raises(ValueError):
        K.svd_padded_stride(0)


def test_svd_fit_leaves_c_contiguous_factors(small_interactions):
    model = rf.SVD(factors=10, n_epochs=3, random_state=0).fit(small_interactions, show_progress=False)
    assert model.user_factors_.flags.c_contiguous and model.item_factors_.flags.c_contiguous
    assert model.user_factors_.shape[1] == model.item_factors_.shape[1] == 10


def test_svd_epoch_order_rejects_bad_input():
    u = np.array([0, 1], dtype=np.int32)
    with pytest.raises(IndexError):
        K.svd_epoch_order(u, np.array([0, 5], dtype=np.int32), 2, 3, 4)
    with pytest.raises(ValueError):
        K.svd_epoch_order(u, u, 2, 3, 0)
    with pytest.raises(ValueError):
        K.svd_epoch_order(u, u, 2, 3, 4, itemsize=2)


def test_svd_epoch_shuffle_is_a_seeded_permutation():
    R, rng = _random_ratings(seed=3)
    users = np.repeat(np.arange(R.shape[0], dtype=np.int32), np.diff(R.indptr))
    items, ratings = R.indices.astype(np.int32), R.data
    P0, Q0 = rng.normal(0, 0.3, (R.shape[0], 4)), rng.normal(0, 0.3, (R.shape[1], 4))

    def run(seed):
        P, Q = P0.copy(), Q0.copy()
        K.svd_epoch(users, items, ratings, P, Q, lr=LR, reg=REG, shuffle=True, seed=seed, n_threads=1)
        return P

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.allclose(run(5), run(6))
    # the inputs are left in their order
    np.testing.assert_array_equal(items, R.indices)


def _svdpp_epoch_numpy(R, order, P, Q, Y, bu, bi, mu):
    """Surprise's per-rating SVD++ steps, with the implicit term computed once per user."""
    lr_bu, lr_bi, lr_pu, lr_qi, lr_yj = LR
    reg_bu, reg_bi, reg_pu, reg_qi, reg_yj = REG
    for u in order:
        items = R.indices[R.indptr[u] : R.indptr[u + 1]]
        rates = R.data[R.indptr[u] : R.indptr[u + 1]]
        if len(items) == 0:
            continue
        s = 1 / np.sqrt(len(items))
        imp = Y[items].sum(axis=0) * s
        for i, r in zip(items, rates):
            err = r - (mu + bu[u] + bi[i] + Q[i] @ (P[u] + imp))
            bu[u] += lr_bu * (err - reg_bu * bu[u])
            bi[i] += lr_bi * (err - reg_bi * bi[i])
            pu, qi = P[u].copy(), Q[i].copy()
            P[u] += lr_pu * (err * qi - reg_pu * pu)
            Q[i] += lr_qi * (err * (pu + imp) - reg_qi * qi)
            for j in items:  # every y_j of the user, after every rating (Surprise's O(|I_u|^2) step)
                Y[j] += lr_yj * (err * qi * s - reg_yj * Y[j])


def test_svdpp_user_grouped_epoch_equals_per_rating_steps():
    R, rng = _random_ratings(n_users=10, n_items=8, density=0.6, seed=4)
    k = 5
    P, Q, Y = (rng.normal(0, 0.3, (n, k)) for n in (R.shape[0], R.shape[1], R.shape[1]))
    bu, bi = np.zeros(R.shape[0]), np.zeros(R.shape[1])
    mu = float(R.data.mean())
    ref = [a.copy() for a in (P, Q, Y, bu, bi)]
    order = np.arange(R.shape[0], dtype=np.int32)
    _svdpp_epoch_numpy(R, order, *ref, mu)
    K.svdpp_epoch(R.indptr.astype(np.int64), R.indices.astype(np.int32), R.data, order, P, Q, Y, bu, bi, mu,
                  lr=LR, reg=REG, shuffle=False, seed=0, n_threads=1)
    for got, want in zip((P, Q, Y, bu, bi), ref):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_nmf_epoch_matches_numpy():
    R, rng = _random_ratings(seed=5)
    k = 4
    P, Q = rng.uniform(0, 1, (R.shape[0], k)), rng.uniform(0, 1, (R.shape[1], k))
    users = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
    reg_pu, reg_qi = 0.06, 0.08
    est = np.einsum("ij,ij->i", P[users], Q[R.indices])
    un, ud = np.zeros_like(P), np.zeros_like(P)
    inum, iden = np.zeros_like(Q), np.zeros_like(Q)
    for t, (u, i, r) in enumerate(zip(users, R.indices, R.data)):
        un[u] += Q[i] * r
        ud[u] += Q[i] * est[t]
        inum[i] += P[u] * r
        iden[i] += P[u] * est[t]
    nu, ni = np.diff(R.indptr), np.bincount(R.indices, minlength=R.shape[1])
    want_P = np.where(nu[:, None] > 0, P * un / (ud + nu[:, None] * reg_pu * P + (nu[:, None] == 0)), P)
    want_Q = np.where(ni[:, None] > 0, Q * inum / (iden + ni[:, None] * reg_qi * Q + (ni[:, None] == 0)), Q)
    order = np.argsort(R.indices, kind="stable")
    indptr_t = np.concatenate([[0], np.cumsum(ni)]).astype(np.int64)
    for threads in (1, 2):
        Pc, Qc = P.copy(), Q.copy()
        K.nmf_epoch(R.indptr.astype(np.int64), R.indices.astype(np.int32), R.data, indptr_t,
                    users[order].astype(np.int32), order.astype(np.int64), Pc, Qc, reg_pu=reg_pu, reg_qi=reg_qi,
                    n_threads=threads)
        np.testing.assert_allclose(Pc, want_P, rtol=1e-12)
        np.testing.assert_allclose(Qc, want_Q, rtol=1e-12)


@pytest.mark.parametrize("biased", [True, False])
def test_als_wr_row_solve_equals_normal_equations(biased):
    R, rng = _random_ratings(n_users=15, n_items=10, seed=6)
    k, reg, mu = 4, 0.1, 3.0
    Q = rng.normal(size=(R.shape[1], k))
    bi = rng.normal(0, 0.2, R.shape[1]) if biased else None
    P = np.full((R.shape[0], k), 7.0)
    bu = np.full(R.shape[0], 7.0) if biased else None
    sse, n = K.als_wr_sweep(R.indptr.astype(np.int64), R.indices.astype(np.int32), R.data, Q, bi, P, bu,
                            reg=reg, global_mean=mu if biased else 0.0, n_threads=2)
    total = 0.0
    for u in range(R.shape[0]):
        cols, r = R.indices[R.indptr[u] : R.indptr[u + 1]], R.data[R.indptr[u] : R.indptr[u + 1]]
        if len(cols) == 0:
            assert (P[u] == 0).all() and (not biased or bu[u] == 0)
            continue
        X = np.hstack([Q[cols], np.ones((len(cols), 1))]) if biased else Q[cols]
        t = r - mu - bi[cols] if biased else r
        w = np.linalg.solve(X.T @ X + reg * len(cols) * np.eye(X.shape[1]), X.T @ t)
        np.testing.assert_allclose(P[u], w[:k], rtol=1e-9, atol=1e-12)
        if biased:
            assert bu[u] == pytest.approx(w[k], rel=1e-9, abs=1e-12)
        total += float(((t - X @ w) ** 2).sum())
    assert n == R.nnz and sse == pytest.approx(total, rel=1e-9)


# ----------------------------------------------------------------------------------------
# models end to end
# ----------------------------------------------------------------------------------------
def _planted(n_users=80, n_items=60, rank=3, density=0.5, seed=0):
    """Ratings 3 + U V^T (rank 3) observed at random; returns train and held-out test."""
    rng = np.random.default_rng(seed)
    U, V = rng.normal(0, 0.8, (n_users, rank)), rng.normal(0, 0.8, (n_items, rank))
    full = 3.0 + U @ V.T
    mask = rng.random(full.shape) < density
    test_mask = (rng.random(full.shape) < 0.25) & mask
    train_mask = mask & ~test_mask
    def build(m):
        u, i = np.nonzero(m)
        df = pd.DataFrame({"user": u, "item": i, "rating": full[u, i]})
        return Interactions.from_pandas(df, rating_col="rating", user_ids=np.arange(n_users), item_ids=np.arange(n_items))
    return build(train_mask), build(test_mask)


@pytest.mark.parametrize("model", [
    rf.SVD(factors=3, n_epochs=150, lr_all=0.02, reg_all=0.005, init_std_dev=0.3, random_state=0, n_threads=1),
    # PMF has no offset: one more factor carries the mean rating
    rf.SVD(factors=4, n_epochs=150, biased=False, lr_all=0.02, reg_all=0.005, init_mean=0.5, init_std_dev=0.3,
           random_state=0, n_threads=1),
    rf.SVDpp(factors=3, n_epochs=100, lr_all=0.01, reg_all=0.005, init_std_dev=0.3, random_state=0, n_threads=1),
    rf.ALSWR(factors=3, n_epochs=20, reg=0.005, random_state=0),
    rf.ALSWR(factors=4, n_epochs=20, reg=0.005, biased=False, random_state=0),
], ids=["svd", "pmf", "svdpp", "alswr", "alswr-unbiased"])
def test_planted_low_rank_ratings_are_recovered(model):
    train, test = _planted()
    model.fit(train, show_progress=False)
    table = rf.evaluate(model, train, test, metrics=["rmse"])
    spread = float(np.std(test.ratings))
    assert table["value"].iloc[0] < 0.2 * spread, table


def test_nmf_recovers_a_planted_non_negative_matrix():
    rng = np.random.default_rng(2)
    U, V = rng.uniform(0, 1.2, (60, 3)), rng.uniform(0, 1.2, (50, 3))
    full = U @ V.T
    u, i = np.nonzero(rng.random(full.shape) < 0.6)
    data = Interactions.from_pandas(pd.DataFrame({"user": u, "item": i, "rating": full[u, i]}), rating_col="rating")
    model = rf.NMF(factors=3, n_epochs=300, reg_pu=0.0, reg_qi=0.0, random_state=0).fit(data, show_progress=False)
    pred = model.predict(data.user_ids[u], data.item_ids[i], clip=False)
    assert np.sqrt(np.mean((pred - full[u, i]) ** 2)) < 0.1 * full.std()
    assert (model.user_factors_ >= 0).all() and (model.item_factors_ >= 0).all()


def test_rmse_tracks_surprise_style_defaults_on_a_tiny_set(small_interactions):
    for model in (rf.SVD(random_state=0), rf.SVDpp(random_state=0), rf.NMF(random_state=0), rf.ALSWR(random_state=0)):
        model.fit(small_interactions, show_progress=False)
        history = model.history_
        assert len(history) == model.n_epochs and "train_rmse" in history[-1]


@pytest.mark.parametrize("make", [
    lambda t: rf.SVD(factors=5, n_epochs=4, random_state=3, n_threads=t),
    lambda t: rf.SVDpp(factors=5, n_epochs=4, random_state=3, n_threads=t),
])
def test_sgd_is_deterministic_with_one_thread(make, small_interactions):
    a = make(1).fit(small_interactions, show_progress=False)
    b = make(1).fit(small_interactions, show_progress=False)
    for name in a._learned:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = make(2).fit(small_interactions, show_progress=False)  # Hogwild: runs, close in quality
    assert np.isfinite(c.user_factors_).all()


@pytest.mark.parametrize("cls", [rf.NMF, rf.ALSWR])
def test_nmf_and_alswr_do_not_depend_on_threads(cls, small_interactions):
    a = cls(factors=4, n_epochs=5, random_state=1, n_threads=1).fit(small_interactions, show_progress=False)
    b = cls(factors=4, n_epochs=5, random_state=1, n_threads=2).fit(small_interactions, show_progress=False)
    for name in a._learned:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_float64_option(small_interactions):
    m = rf.SVD(factors=4, n_epochs=3, dtype="float64", random_state=0, n_threads=1).fit(small_interactions, show_progress=False)
    assert m.user_factors_.dtype == np.float64 and m.item_bias_.dtype == np.float64
    m32 = rf.SVD(factors=4, n_epochs=3, random_state=0, n_threads=1).fit(small_interactions, show_progress=False)
    assert m32.user_factors_.dtype == np.float32
    with pytest.raises(ValueError, match="dtype"):
        rf.SVD(dtype="int8").fit(small_interactions)


# ----------------------------------------------------------------------------------------
# prediction conventions and bad input
# ----------------------------------------------------------------------------------------
def test_predict_clips_and_falls_back_for_unknown_ids(small_interactions):
    m = rf.SVD(factors=4, n_epochs=5, random_state=0, n_threads=1).fit(small_interactions, show_progress=False)
    assert tuple(m.rating_scale_) == (1.0, 5.0)
    u, i = np.meshgrid(np.arange(m.n_users_), np.arange(m.n_items_), indexing="ij")
    raw = m.predict(u.ravel(), i.ravel(), ids="index", clip=False)
    clipped = m.predict(u.ravel(), i.ravel(), ids="index")
    np.testing.assert_allclose(clipped, np.clip(raw, 1, 5))
    # scores used for ranking are the unclipped predictions
    np.testing.assert_allclose(m.score(u.ravel(), i.ravel(), ids="index"), raw, rtol=1e-5, atol=1e-5)
    mu = float(m.global_mean_)
    uidx = small_interactions.user_index("u3")
    iidx = small_interactions.item_index("i2")
    assert m.predict("nobody", "nothing", clip=False) == pytest.approx(mu)
    assert m.predict("u3", "nothing", clip=False) == pytest.approx(mu + m.user_bias_[uidx], rel=1e-6)
    assert m.predict("nobody", "i2", clip=False) == pytest.approx(mu + m.item_bias_[iidx], rel=1e-6)
    with pytest.raises(IndexError, match="unknown user"):
        m.predict("nobody", "i2", unknown="raise")
    # a user without training ratings predicts like an unknown one
    cold = small_interactions.user_ids[small_interactions.user_counts() == 0][0]
    assert m.predict(cold, "i2", clip=False) == pytest.approx(mu + m.item_bias_[iidx], rel=1e-6)
    pmf = rf.SVD(factors=4, n_epochs=3, biased=False, random_state=0, n_threads=1).fit(small_interactions, show_progress=False)
    assert pmf.predict("nobody", "i2", clip=False) == pytest.approx(float(pmf.global_mean_))


def test_given_rating_scale_and_out_of_scale_ratings(small_interactions):
    m = rf.SVD(factors=4, n_epochs=2, rating_scale=(0, 10), random_state=0, n_threads=1)
    m.fit(small_interactions, show_progress=False)
    assert tuple(m.rating_scale_) == (0.0, 10.0)
    with pytest.raises(ValueError, match="outside rating_scale"):
        rf.SVD(rating_scale=(1, 4)).fit(small_interactions, show_progress=False)
    with pytest.raises(ValueError, match="rating_scale"):
        rf.SVD(rating_scale=(5, 1)).fit(small_interactions, show_progress=False)


def test_bad_parameters_and_ratings(small_interactions):
    for model in (rf.SVD(factors=0), rf.SVDpp(factors=-1), rf.NMF(factors=0), rf.ALSWR(factors=0)):
        with pytest.raises(ValueError, match="factors"):
            model.fit(small_interactions, show_progress=False)
    with pytest.raises(ValueError, match="lr_pu"):
        rf.SVD(lr_pu=-1.0).fit(small_interactions, show_progress=False)
    with pytest.raises(ValueError, match="early_stopping"):
        rf.SVD().fit(small_interactions, early_stopping=2)
    bad = sp.csr_matrix(np.array([[1.0, np.nan], [2.0, 3.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN|finite"):
        rf.SVD(factors=2).fit(bad, show_progress=False)
    negative = sp.csr_matrix(np.array([[-1.0, 2.0], [2.0, 3.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="non-negative"):
        rf.NMF(factors=2).fit(negative, show_progress=False)


def test_divergence_raises_with_advice(small_interactions):
    with pytest.raises(DivergenceError, match="learning rate"):
        rf.SVD(factors=4, lr_all=5.0, n_epochs=20, random_state=0, n_threads=1).fit(small_interactions, show_progress=False)


def test_eval_set_logs_rmse_and_early_stopping_restores_the_best_epoch():
    train, test = _planted(seed=1)
    model = rf.SVD(factors=3, n_epochs=60, lr_all=0.05, reg_all=0.0, random_state=0, n_threads=1)
    seen = []
    model.fit(train, eval_set=test, early_stopping=3, show_progress=False,
              callbacks=[lambda m, e, logs: seen.append(logs.get("rmse"))])
    history = model.history_
    assert all("rmse" in h for h in history)
    best = min(h["rmse"] for h in history)
    final = rf.evaluate(model, train, test, metrics=["rmse"])["value"].iloc[0]
    assert final == pytest.approx(best, rel=1e-6)
    if history[-1].get("restored_best"):
        assert len(seen) < 60
    with pytest.raises(ValueError, match="id maps"):
        rf.SVD(n_epochs=1).fit(train, eval_set=_planted(n_users=81)[1], show_progress=False)


def test_svdpp_user_vectors_include_the_implicit_term(small_interactions):
    m = rf.SVDpp(factors=4, n_epochs=3, random_state=0, n_threads=1).fit(small_interactions, show_progress=False)
    seen = small_interactions.matrix.tocsr()
    u = 5
    items = seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
    z = m.user_factors_[u] + m.implicit_factors_[items].sum(axis=0) / np.sqrt(len(items))
    i = 3
    want = float(m.global_mean_) + m.user_bias_[u] + m.item_bias_[i] + z @ m.item_factors_[i]
    assert m.predict(u, i, ids="index", clip=False) == pytest.approx(want, rel=1e-5)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.predict(u, i, ids="index", clip=False) == pytest.approx(want, rel=1e-5)


def test_kernel_name_is_reported(monkeypatch):
    assert K.sgd_kernel_name() in ("avx512", "avx2-fma", "generic")
    monkeypatch.setenv("RECFORGE_VECTOR_KERNEL", "avx2")
    assert K.sgd_kernel_name() in ("avx2-fma", "generic")
    assert K.svd_padded_stride(19) == 24
    monkeypatch.setenv("RECFORGE_VECTOR_KERNEL", "generic")
    assert K.sgd_kernel_name() == "generic"


def test_recommendations_during_training_do_not_leave_stale_vectors(small_interactions):
    calls = []

    def peek(model, epoch, logs):
        calls.append(model.recommend("u3", n=3)[1])

    m = rf.SVD(factors=4, n_epochs=4, random_state=0, n_threads=1)
    m.fit(small_interactions, callbacks=[peek], show_progress=False)
    items, scores = m.recommend("u3", n=3)
    np.testing.assert_allclose(scores, m.predict("u3", items, clip=False), rtol=1e-5, atol=1e-5)
    assert len(calls) == 4


# ----------------------------------------------------------------------------------------
# initial factors
# ----------------------------------------------------------------------------------------
def test_fill_normal_draws_seeded_normals_into_the_view_only():
    from scipy import stats

    big = np.empty((400, 500))
    K.fill_normal(big, 1.0, 2.0, 5)
    assert abs(big.mean() - 1.0) < 0.02 and abs(big.std() - 2.0) < 0.02
    assert stats.kstest((big.ravel() - 1.0) / 2.0, "norm").pvalue > 1e-3
    # the tails (beyond the ziggurat's last layer at 3.44) come out at the normal rate
    z = np.abs(big.ravel() - 1.0) / 2.0
    assert abs(np.mean(z > 3.5) / (2 * stats.norm.sf(3.5)) - 1) < 0.25
    again = np.empty((400, 500))
    K.fill_normal(again, 1.0, 2.0, 5)
    np.testing.assert_array_equal(big, again)
    K.fill_normal(again, 1.0, 2.0, 6)
    assert not np.array_equal(big, again)
    rows = np.full((30, 16), 9.0, dtype=np.float32)
    K.fill_normal(rows[:, :10], 0.0, 1.0, 3)
    np.testing.assert_array_equal(rows[:, 10:], 9.0)
    packed = np.empty((30, 10), dtype=np.float32)
    K.fill_normal(packed, 0.0, 1.0, 3)
    np.testing.assert_array_equal(rows[:, :10], packed)  # the same draws, row by row
    with pytest.raises(ValueError):
        K.fill_normal(packed, 0.0, -1.0, 3)
    with pytest.raises(ValueError):
        K.fill_normal(packed, np.nan, 1.0, 3)
