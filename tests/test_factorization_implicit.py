"""Implicit-feedback models: ALS, BPR and EASE against NumPy oracles, the recommender contract,
fold-in, explanations, planted structure and bad input."""

from __future__ import annotations

import itertools
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import recforge as rf
import scipy.sparse as sp
from recforge import _core
from recforge._training import DivergenceError
from recforge.data import Interactions

from .recommender_contract import RecommenderContract

core = _core.factorization_implicit


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def csr_args(m: sp.csr_matrix):
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sort_indices()
    return m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float32)


def exact_rows(C: sp.csr_matrix, Y: np.ndarray, reg: float, w0: float = 1.0, nu: float = 0.0) -> np.ndarray:
    """The closed-form solution of every row's weighted ridge regression, in float64."""
    C = sp.csr_matrix(C)
    Y64 = Y.astype(np.float64)
    f = Y.shape[1]
    X = np.zeros((C.shape[0], f))
    for u in range(C.shape[0]):
        lo, hi = C.indptr[u], C.indptr[u + 1]
        if lo == hi:
            continue
        idx, c = C.indices[lo:hi], C.data[lo:hi].astype(np.float64)
        lam = reg * (len(idx) + w0 * C.shape[1]) ** nu
        A = w0 * Y64.T @ Y64 + (Y64[idx].T * (c - w0)) @ Y64[idx] + lam * np.eye(f)
        X[u] = np.linalg.solve(A, Y64[idx].T @ c)
    return X


def planted_blocks(n_groups=4, users_per_group=30, items_per_group=25, keep=0.6, seed=0):
    """Users of group g interact only with items of group g; a random share goes to train."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for g in range(n_groups):
        for u in range(users_per_group):
            for i in range(items_per_group):
                users.append(g * users_per_group + u)
                items.append(g * items_per_group + i)
    users, items = np.array(users), np.array(items)
    train_mask = rng.random(len(users)) < keep
    uid = np.arange(n_groups * users_per_group)
    iid = np.arange(n_groups * items_per_group)
    train = Interactions.from_arrays(users[train_mask], items[train_mask], user_ids=uid, item_ids=iid)
    test = Interactions.from_arrays(users[~train_mask], items[~train_mask], user_ids=uid, item_ids=iid)
    return train, test


@pytest.fixture(scope="module")
def random_problem():
    rng = np.random.default_rng(0)
    C = sp.random(40, 90, density=0.2, random_state=1, format="csr", dtype=np.float32)
    C.data = (1.0 + 4.0 * C.data).astype(np.float32)
    return C, rng


# ----------------------------------------------------------------------------------------
# ALS kernels against NumPy
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("f", [1, 13, 64])
def test_gram_matches_numpy(f):
    Y = np.random.default_rng(f).standard_normal((5000, f)).astype(np.float32)
    G = core.als_gram(Y, 2)
    np.testing.assert_allclose(G, Y.T.astype(np.float64) @ Y, rtol=1e-4, atol=1e-2)
    np.testing.assert_array_equal(G, G.T)
    np.testing.assert_array_equal(G, core.als_gram(Y, 1))  # fixed blocks: same sums for any threads


@pytest.mark.parametrize("reg,w0,nu", [(0.1, 1.0, 0.0), (0.5, 0.2, 0.0), (0.01, 0.5, 1.0)])
@pytest.mark.parametrize("f", [7, 13, 32])
def test_cholesky_and_cg_solve_the_normal_equations(random_problem, reg, w0, nu, f):
    C, rng = random_problem
    Y = rng.standard_normal((C.shape[1], f)).astype(np.float32)
    ref = exact_rows(C, Y, reg, w0, nu)
    X = np.zeros((C.shape[0], f), dtype=np.float32)
    core.als_solve(*csr_args(C), C.shape[1], X, Y, None, reg, w0, nu, solver=1, n_threads=2)
    np.testing.assert_allclose(X, ref, atol=2e-5 * max(1.0, np.abs(ref).max()))
    # conjugate gradient, warm-started: repeated half-steps converge to the same solution
    Xcg = np.zeros_like(X)
    G = core.als_gram(Y)
    for _ in range(80):
        core.als_solve(*csr_args(C), C.shape[1], Xcg, Y, G, reg, w0, nu, solver=0, cg_steps=3, n_threads=2)
    np.testing.assert_allclose(Xcg, ref, atol=1e-4 * max(1.0, np.abs(ref).max()))
    # empty rows are zero
    empty = np.diff(C.indptr) == 0
    assert np.all(X[empty] == 0)


def test_portable_kernels_agree_with_numpy():
    code = textwrap.dedent(
        """
        import numpy as np, scipy.sparse as sp
        from recforge import _core
        m = _core.factorization_implicit
        assert m.vector_kernel_name() == "generic"
        rng = np.random.default_rng(0)
        C = sp.random(30, 20, density=0.3, random_state=2, format="csr", dtype=np.float32)
        Y = rng.standard_normal((20, 11)).astype(np.float32)
        G = m.als_gram(Y)
        assert np.allclose(G, Y.T.astype(np.float64) @ Y, atol=1e-4)
        X = np.zeros((30, 11), np.float32)
        args = (C.indptr.astype(np.int64), C.indices.astype(np.int32), C.data)
        m.als_solve(*args, 20, X, Y, None, 0.1, 1.0, 0.0, solver=1)
        Xcg = np.zeros_like(X)
        for _ in range(30):
            m.als_solve(*args, 20, Xcg, Y, G, 0.1, 1.0, 0.0, solver=0)
        assert np.abs(X - Xcg).max() < 1e-4, np.abs(X - Xcg).max()
        S = m.ease_scores(*args, np.ascontiguousarray(Y @ Y.T))
        assert np.allclose(S, C @ (Y @ Y.T), atol=1e-4)
        R = sp.random(60, 40, density=0.2, random_state=3, format="csr", dtype=np.float32)
        R.sort_indices()
        U = np.full((60, 9), 0.01, np.float32); V = rng.standard_normal((40, 9)).astype(np.float32) * 0.1
        first = None
        for e in range(30):
            s = m.bpr_epoch(R.indptr.astype(np.int64), R.indices, 40, U, V, np.zeros(40, np.float32),
                            learning_rate=0.1, seed=1, epoch=e, n_threads=1)
            first = first or s["loss"]
        assert s["loss"] < 0.8 * first, (first, s["loss"])
        print("ok")
        """
    )
    env = dict(os.environ, RECFORGE_VECTOR_KERNEL="generic")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_kernel_rejects_bad_confidences(random_problem):
    C, rng = random_problem
    Y = rng.standard_normal((C.shape[1], 4)).astype(np.float32)
    X = np.zeros((C.shape[0], 4), dtype=np.float32)
    bad = C.copy()
    bad.data[0] = -1.0
    with pytest.raises(ValueError, match="finite and >= 0"):
        core.als_solve(*csr_args(bad), C.shape[1], X, Y)
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="finite and >= 0"):
        core.als_solve(*csr_args(bad), C.shape[1], X, Y)
    with pytest.raises(ValueError, match="shape"):
        core.als_solve(*csr_args(C), C.shape[1], X, np.ascontiguousarray(Y[:, :3]))


# ----------------------------------------------------------------------------------------
# ALS: the estimator
# ----------------------------------------------------------------------------------------
class TestALSContract(RecommenderContract):
    def make_model(self):
        return rf.ALS(8, iterations=4, regularization=0.1, random_state=0)


class TestALSCholeskyContract(RecommenderContract):
    def make_model(self):
        return rf.ALS(6, iterations=3, solver="cholesky", confidence="1+alpha*r", alpha=2.0, random_state=0)


@pytest.mark.parametrize("confidence", ["alpha*r", "1+alpha*r"])
def test_one_iteration_equals_the_numpy_oracle(small_interactions, confidence):
    model = rf.ALS(5, iterations=1, solver="cholesky", alpha=3.0, confidence=confidence, regularization=0.2,
                   unobserved_weight=0.5, regularization_exponent=0.5, random_state=3)
    model.fit(small_interactions, show_progress=False)
    R = small_interactions.matrix.tocsr().astype(np.float64)
    C = R.copy()
    C.data = 3.0 * C.data + (1.0 if confidence == "1+alpha*r" else 0.0)
    rng = np.random.default_rng(3)
    X = rng.random((R.shape[0], 5), dtype=np.float32) * np.float32(0.01)
    Y = rng.random((R.shape[1], 5), dtype=np.float32) * np.float32(0.01)
    X = exact_rows(C, Y, 0.2, 0.5, 0.5)
    Y = exact_rows(C.T.tocsr(), X.astype(np.float32), 0.2, 0.5, 0.5)
    np.testing.assert_allclose(model.user_factors_, X, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(model.item_factors_, Y, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("factors", [8, 48])  # 48: CG in the eigenbasis of the Gram matrix
def test_same_seed_same_model_for_any_threads(small_interactions, factors):
    for solver in ("cg", "cholesky"):
        a = rf.ALS(factors, iterations=3, solver=solver, random_state=5, n_threads=1)
        b = rf.ALS(factors, iterations=3, solver=solver, random_state=5, n_threads=3)
        a.fit(small_interactions, show_progress=False)
        b.fit(small_interactions, show_progress=False)
        np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
        np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
        assert a.user_factors_.dtype == np.float32


def test_training_loss_decreases(small_interactions):
    model = rf.ALS(6, iterations=6, solver="cholesky", alpha=5.0, regularization=0.1,
                   calculate_training_loss=True, random_state=0)
    model.fit(small_interactions, show_progress=False)
    losses = [h["loss"] for h in model.history_]
    assert all(b <= a * (1 + 1e-5) for a, b in itertools.pairwise(losses)), losses


def test_planted_blocks_are_recovered():
    train, test = planted_blocks()
    model = rf.ALS(8, iterations=10, alpha=5.0, regularization=0.1, random_state=0).fit(train, show_progress=False)
    table = rf.evaluate(model, train, test, k=10, metrics=["recall"])
    n_test = np.diff(test.matrix.tocsr().indptr)
    ideal = np.mean(np.minimum(n_test, 10) / n_test)  # recall@10 is at most 10 / n_test
    assert table["value"].iloc[0] > 0.99 * ideal
    # every user's top-10 stays inside their own block
    # and far better than popularity, which cannot see the blocks
    popular = rf.evaluate(rf.Popularity(), train, test, k=10, metrics=["recall"])
    assert table["value"].iloc[0] > 2 * popular["value"].iloc[0]


@pytest.fixture(scope="module")
def converged():
    train, _ = planted_blocks(n_groups=3, users_per_group=20, items_per_group=15, keep=0.7, seed=1)
    model = rf.ALS(3, iterations=150, solver="cholesky", alpha=4.0, regularization=2.0, random_state=0)
    return model.fit(train, show_progress=False), train


def test_fold_in_reproduces_training_users(converged):
    model, train = converged
    R = train.matrix.tocsr()
    for u in (0, 17, 45):
        items = train.item_ids[R[u].indices]
        np.testing.assert_allclose(model.recalculate_user(list(items)), model.user_factors_[u], atol=1e-4)
    batch = model.recalculate_user(R[:10])
    np.testing.assert_allclose(batch, model.user_factors_[:10], atol=1e-4)
    i = 7
    users = train.user_ids[R[:, i].nonzero()[0]]
    np.testing.assert_allclose(model.recalculate_item(users), model.item_factors_[i], atol=1e-4)
    assert not np.shares_memory(batch, model.user_factors_)


def test_explain_contributions_sum_to_the_score(converged):
    model, train = converged
    for user, item in ((3, 5), (30, 2), (50, 40)):
        total, items, contrib = model.explain(user, item)
        assert len(items) == train.matrix[user].nnz
        assert np.isclose(contrib.sum(), total, rtol=1e-4, atol=1e-6)
        assert np.isclose(total, model.score(user, item), atol=1e-4)
        assert np.all(np.diff(contrib) <= 0)
    total, items, contrib = model.explain("anyone", 5, user_items={1: 2.0, 2: 1.0}, n=1)
    assert len(items) == 1 and items[0] in (1, 2)
    folded = model.recalculate_user({1: 2.0, 2: 1.0})
    assert np.isclose(total, folded @ model.item_factors_[5], atol=1e-5)


def test_partial_fit_users_and_items(converged):
    model, _ = converged
    model = pickle.loads(pickle.dumps(model))
    n_users, n_items = model.n_users_, model.n_items_
    new = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [0, 1, 2])), shape=(1, n_items))
    model.partial_fit_users([1000], new)
    assert model.n_users_ == n_users + 1 and model.user_ids_[-1] == 1000
    np.testing.assert_allclose(model.user_factors_[-1], model.recalculate_user([0, 1, 2]), atol=1e-6)
    items, _ = model.recommend(1000, n=5)
    assert not {0, 1, 2} & set(items.tolist())
    assert set(items.tolist()) <= set(range(15)), "a block-0 user should get block-0 items"
    # replacing a known user's history
    model.partial_fit_users([5], [[20, 21, 22]])
    assert set(model.seen_[5].indices) == {20, 21, 22}
    # a new item liked by the users of block 1
    block1 = sp.csr_matrix(np.isin(np.arange(model.n_users_), np.arange(20, 40)).astype(np.float32)[None, :])
    model.partial_fit_items([999], block1)
    assert model.n_items_ == n_items + 1 and model.item_ids_[-1] == 999
    assert model.score(25, 999) > model.score(2, 999)
    with pytest.raises(ValueError, match="one row for every user"):
        model.partial_fit_users([1, 2], [[0, 1, 2]])
    with pytest.raises(ValueError, match="one column per item"):
        model.partial_fit_users([1], new)  # the catalog grew by one item


def test_eval_set_and_early_stopping():
    train, test = planted_blocks(seed=2)
    model = rf.ALS(8, iterations=6, random_state=0, alpha=5.0, regularization=0.1)
    model.fit(train, eval_set=test, eval_k=5, early_stopping=2, show_progress=False)
    assert all("ndcg@5" in h for h in model.history_)
    stops = []
    model.fit(train, callbacks=[lambda m, e, logs: stops.append(e) or e == 1], show_progress=False)
    assert stops == [0, 1]


def test_bad_input_and_parameters(small_interactions):
    R = small_interactions.matrix.tocsr().copy()
    R.data[3] = -2.0
    with pytest.raises(ValueError, match="negative"):
        rf.ALS(4).fit(R, show_progress=False)
    R.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rf.ALS(4).fit(sp.csr_matrix(R), show_progress=False)
    for bad in ({"factors": 0}, {"factors": -3}, {"factors": 2.5}, {"regularization": -1.0},
                {"alpha": 0.0}, {"confidence": "log"}, {"solver": "lu"}, {"cg_steps": 0},
                {"iterations": 0}, {"init_scale": np.nan}, {"unobserved_weight": -0.5}):
        with pytest.raises(ValueError):
            rf.ALS(**{"factors": 4, **bad}).fit(small_interactions, show_progress=False)
    with pytest.raises(ValueError, match="overflows"):
        rf.ALS(4, alpha=1e38).fit(small_interactions.matrix * 1e10, show_progress=False)


def test_divergence_is_detected_with_advice(small_interactions):
    with pytest.raises(DivergenceError, match="diverged"):
        rf.ALS(4, init_scale=1e30, iterations=2).fit(small_interactions, show_progress=False)


# ----------------------------------------------------------------------------------------
# BPR
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [0, 1])  # 0: BPR, 1: logistic (LMF)
def test_bpr_gradient_matches_finite_differences(kind):
    rng = np.random.default_rng(4)
    f, reg, breg = 6, 0.05, 0.02
    u, qi, qj = (rng.standard_normal(f) for _ in range(3))
    bi, bj = 0.3, -0.4

    def loss(u, qi, qj, bi, bj):
        return core.bpr_triple_loss(u.astype(np.float32), qi.astype(np.float32), qj.astype(np.float32),
                                    bi, bj, reg, breg, kind)[0]

    u, qi, qj = (v.astype(np.float32).astype(np.float64) for v in (u, qi, qj))
    value, gu, gi, gj, gbi, gbj = core.bpr_triple_loss(u.astype(np.float32), qi.astype(np.float32),
                                                        qj.astype(np.float32), bi, bj, reg, breg, kind)
    xi, xj = u @ qi + bi, u @ qj + bj
    data_term = np.log1p(np.exp(-(xi - xj))) if kind == 0 else np.log1p(np.exp(-xi)) + np.log1p(np.exp(xj))
    assert np.isclose(value, data_term + reg / 2 * (u @ u + qi @ qi + qj @ qj) + breg / 2 * (bi**2 + bj**2))
    eps = 1e-2
    for vec, grad, pos in ((u, gu, 0), (qi, gi, 1), (qj, gj, 2)):
        num = np.empty(f)
        for c in range(f):
            plus, minus = [u.copy(), qi.copy(), qj.copy()], [u.copy(), qi.copy(), qj.copy()]
            plus[pos][c] += eps
            minus[pos][c] -= eps
            num[c] = (loss(*plus, bi, bj) - loss(*minus, bi, bj)) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-3, atol=1e-4)
    assert np.isclose(gbi, (loss(u, qi, qj, bi + eps, bj) - loss(u, qi, qj, bi - eps, bj)) / (2 * eps), atol=1e-4)
    assert np.isclose(gbj, (loss(u, qi, qj, bi, bj + eps) - loss(u, qi, qj, bi, bj - eps)) / (2 * eps), atol=1e-4)


class TestBPRContract(RecommenderContract):
    def make_model(self):
        return rf.BPR(8, epochs=5, learning_rate=0.05, random_state=0, n_threads=1)


class TestLMFContract(RecommenderContract):
    def make_model(self):
        return rf.LMF(8, epochs=5, learning_rate=0.05, random_state=0, n_threads=1)


def test_bpr_is_deterministic_with_one_thread(small_interactions):
    a = rf.BPR(8, epochs=3, random_state=2, n_threads=1).fit(small_interactions, show_progress=False)
    b = rf.BPR(8, epochs=3, random_state=2, n_threads=1).fit(small_interactions, show_progress=False)
    for name in ("user_factors_", "item_factors_", "item_biases_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = rf.BPR(8, epochs=3, random_state=3, n_threads=1).fit(small_interactions, show_progress=False)
    assert not np.array_equal(a.item_factors_, c.item_factors_)
    assert a.item_factors_.dtype == np.float32 and a.item_biases_.dtype == np.float32


@pytest.mark.parametrize("cls,negatives", [(rf.BPR, "uniform"), (rf.BPR, "popularity"), (rf.LMF, "uniform")])
def test_bpr_recovers_planted_blocks(cls, negatives):
    train, test = planted_blocks()
    model = cls(8, epochs=40, learning_rate=0.05, regularization=0.001, negative_sampling=negatives,
                random_state=0, n_threads=2)
    model.fit(train, show_progress=False)
    assert model.history_[-1]["train_auc"] > 0.95
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]
    recall = rf.evaluate(model, train, test, k=10, metrics=["recall"])["value"].iloc[0]
    n_test = np.diff(test.matrix.tocsr().indptr)
    assert recall > 0.95 * np.mean(np.minimum(n_test, 10) / n_test)
    # fold-in of a new user of block 2 (items 50..74) recommends block-2 items
    vec = model.recalculate_user([50, 51, 52, 53, 54], epochs=30)
    scores = vec @ model.item_factors_.T + model.item_biases_
    scores[[50, 51, 52, 53, 54]] = -np.inf
    assert set(np.argsort(-scores)[:10]) <= set(range(50, 75))
    np.testing.assert_array_equal(vec, model.recalculate_user([50, 51, 52, 53, 54], epochs=30))
    model.partial_fit_users([10_000], [[50, 51, 52, 53, 54]])
    items, _ = model.recommend(10_000, n=5)
    assert set(items.tolist()) <= set(range(50, 75))


def test_bpr_divergence_and_bad_input(small_interactions):
    with pytest.raises(DivergenceError, match="learning rate"):
        rf.BPR(4, epochs=3, learning_rate=1e30, random_state=0).fit(small_interactions, show_progress=False)
    R = small_interactions.matrix.tocsr().copy()
    R.data[0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        rf.BPR(4).fit(R, show_progress=False)
    for bad in ({"factors": 0}, {"learning_rate": 0.0}, {"epochs": 0}, {"negative_sampling": "hard"},
                {"regularization": -1}):
        with pytest.raises(ValueError):
            rf.BPR(**{"factors": 4, **bad}).fit(small_interactions, show_progress=False)


# ----------------------------------------------------------------------------------------
# EASE
# ----------------------------------------------------------------------------------------
class TestEASEContract(RecommenderContract):
    def make_model(self):
        return rf.EASE(regularization=10.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ease_matches_the_closed_form(small_interactions, dtype):
    model = rf.EASE(regularization=5.0, dtype=dtype).fit(small_interactions)
    X = (small_interactions.matrix.toarray() > 0).astype(np.float64)
    P = np.linalg.inv(X.T @ X + 5.0 * np.eye(X.shape[1]))
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    np.testing.assert_allclose(model.weights_, B, atol=1e-5 if dtype == "float32" else 1e-7)
    users = np.arange(10)
    np.testing.assert_allclose(model._dense_scores(users), X[:10] @ B, atol=1e-5)
    items, _ = model.recommend(3, n=5, ids="index", exclude_seen=False)
    np.testing.assert_array_equal(items, np.argsort(-(X[3] @ model.weights_), kind="stable")[:5])
    # a history outside the model scores like the same history inside it
    hist = list(small_interactions.item_ids[small_interactions.matrix.tocsr()[3].indices])
    a, _ = model.recommend_for_history(hist, n=5)
    b, _ = model.recommend(small_interactions.user_ids[3], n=5)
    np.testing.assert_array_equal(a, b)
    sim, _ = model.similar_items("i0", n=3)
    assert "i0" not in set(sim)


def test_ease_recovers_planted_blocks_and_refuses_large_catalogs():
    train, test = planted_blocks()
    model = rf.EASE(regularization=20.0).fit(train)
    recall = rf.evaluate(model, train, test, k=10, metrics=["recall"])["value"].iloc[0]
    n_test = np.diff(test.matrix.tocsr().indptr)
    assert recall > 0.99 * np.mean(np.minimum(n_test, 10) / n_test)
    model.partial_fit_users([500], [[0, 1, 2]])
    items, _ = model.recommend(500, n=5)
    assert set(items.tolist()) <= set(range(25))
    with pytest.raises(MemoryError, match="max_items"):
        rf.EASE(max_items=50).fit(train)
    with pytest.raises(ValueError, match="GB"):
        rf.EASE(max_items=50).fit(train)
    with pytest.raises(ValueError):
        rf.EASE(regularization=0.0).fit(train)


def test_als_item_gram_is_reused_until_the_item_factors_change(small_interactions):
    model = rf.ALS(factors=6, iterations=3, random_state=0, n_threads=1).fit(small_interactions, show_progress=False)

    def gram_ok():
        Y = model.item_factors_.astype(np.float64)
        np.testing.assert_allclose(model._item_gram(), Y.T @ Y, rtol=1e-4, atol=1e-5)

    gram_ok()
    first = model._item_gram()
    assert model._item_gram() is first  # kept between fold-ins
    user_items = list(small_interactions.item_ids[:3])
    x = model.recalculate_user(user_items)
    assert model._item_gram() is first
    # a new item changes Y: the product follows
    col = sp.csr_matrix(np.ones((1, small_interactions.n_users), dtype=np.float32))
    model.partial_fit_items(["brand-new"], col)
    assert model._item_gram() is not first
    gram_ok()
    # refitting updates the factors in place: the cache must not survive it
    model.fit(small_interactions, show_progress=False)
    gram_ok()
    np.testing.assert_allclose(model.recalculate_user(user_items), x, rtol=1e-4, atol=1e-5)
    clone = pickle.loads(pickle.dumps(model))
    assert "_gram_cache" not in clone.__dict__
    np.testing.assert_allclose(clone.recalculate_user(user_items), x, rtol=1e-4, atol=1e-5)
