"""dtype=np.float64 for ALS, BPR and LMF: the double-precision kernels against NumPy, float64
against float32 and against implicit's float64 ALS, the recommender contract at float64,
persistence of the dtype and bad dtypes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import recforge as rf
import scipy.sparse as sp
from recforge import _core

from .recommender_contract import RecommenderContract
from .test_factorization_implicit import csr_args, exact_rows, planted_blocks

core = _core.factorization_implicit


@pytest.fixture(scope="module")
def problem():
    C = sp.random(40, 90, density=0.2, random_state=1, format="csr", dtype=np.float32)
    C.data = (1.0 + 4.0 * C.data).astype(np.float32)
    return C


@pytest.fixture(scope="module")
def wide_problem():
    """Rows of about 30 items out of 300: well-conditioned systems, so that CG converges."""
    C = sp.random(40, 300, density=0.1, random_state=1, format="csr", dtype=np.float32)
    C.data = (1.0 + 4.0 * C.data).astype(np.float32)
    return C


# ----------------------------------------------------------------------------------------
# the float64 kernels
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("f", [1, 13, 64])
def test_float64_gram_matches_numpy(f):
    Y = np.random.default_rng(f).standard_normal((5000, f))
    G = core.als_gram(Y, 2)
    assert G.dtype == np.float64
    np.testing.assert_allclose(G, Y.T @ Y, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(G, core.als_gram(Y, 1))


@pytest.mark.parametrize("reg,w0,nu", [(0.1, 1.0, 0.0), (0.5, 0.2, 0.0), (0.01, 0.5, 1.0)])
@pytest.mark.parametrize("f", [7, 32, 64])  # 32, 64: CG in the eigenbasis of the Gram matrix
def test_float64_cholesky_is_exact_and_cg_converges_tighter_than_float32(wide_problem, reg, w0, nu, f):
    C = wide_problem
    Y = np.random.default_rng(f).standard_normal((C.shape[1], f))
    errors = {}
    for dtype in (np.float32, np.float64):
        Yd = Y.astype(dtype)
        ref = exact_rows(C, Yd, reg, w0, nu)  # the float64 closed form for these very factors
        X = np.zeros((C.shape[0], f), dtype=dtype)
        core.als_solve(*csr_args(C), C.shape[1], X, Yd, None, reg, w0, nu, solver=1, n_threads=2)
        assert X.dtype == dtype
        Xcg = np.zeros_like(X)
        G = core.als_gram(Yd)
        for _ in range(100):
            core.als_solve(*csr_args(C), C.shape[1], Xcg, Yd, G, reg, w0, nu, solver=0, cg_steps=3, n_threads=2)
        scale = max(1.0, np.abs(ref).max())
        errors[dtype] = (np.abs(X - ref).max() / scale, np.abs(Xcg - X).max() / scale)
    chol64, cg64 = errors[np.float64]
    chol32, cg32 = errors[np.float32]
    assert chol64 < 1e-11, errors
    assert cg64 < 1e-10, errors
    # the float32 solutions are good to float32 rounding only
    assert chol64 < chol32 / 1000 and cg64 < cg32 / 1000, errors


def test_float64_loss_and_explain_match_numpy(problem):
    C = problem
    rng = np.random.default_rng(3)
    f, reg, w0 = 9, 0.3, 0.7
    X, Y = rng.standard_normal((C.shape[0], f)), rng.standard_normal((C.shape[1], f))
    dense = C.toarray().astype(np.float64)
    observed = dense > 0
    S = X @ Y.T
    expected = (np.sum(np.where(observed, dense * (1 - S) ** 2, w0 * S**2)) + reg * np.sum(X * X))
    got = core.als_loss(*csr_args(C), C.shape[1], X, Y, None, reg, w0, 0.0)
    assert np.isclose(got, expected, rtol=1e-12)
    row = 4
    lo, hi = C.indptr[row], C.indptr[row + 1]
    items, conf = C.indices[lo:hi].astype(np.int32), C.data[lo:hi].astype(np.float32)
    contrib, total = core.als_explain(items, conf, Y, None, 11, reg, w0, 0.0)
    assert contrib.dtype == np.float64
    conf = conf.astype(np.float64)  # the kernel widens the float32 confidences
    W = w0 * Y.T @ Y + (Y[items].T * (conf - w0)) @ Y[items] + reg * np.eye(f)
    z = np.linalg.solve(W, Y[11])
    np.testing.assert_allclose(contrib, conf * (Y[items] @ z), rtol=1e-10, atol=1e-13)
    x = np.linalg.solve(W, Y[items].T @ conf)
    assert np.isclose(total, x @ Y[11], rtol=1e-10)


def test_portable_float64_kernels_agree_with_numpy():
    """The float64 kernels with RECFORGE_VECTOR_KERNEL=generic (the baseline build of the same
    templates the AVX2 path compiles)."""
    code = textwrap.dedent(
        """
        import numpy as np, scipy.sparse as sp
        from recforge import _core
        m = _core.factorization_implicit
        assert m.vector_kernel_name_f64() == "generic"
        rng = np.random.default_rng(0)
        C = sp.random(30, 200, density=0.15, random_state=2, format="csr", dtype=np.float32)
        C.data = (1 + 3 * C.data).astype(np.float32)
        args = (C.indptr.astype(np.int64), C.indices.astype(np.int32), C.data)
        for f in (11, 40):
            Y = rng.standard_normal((200, f))
            G = m.als_gram(Y)
            assert np.allclose(G, Y.T @ Y, rtol=1e-12, atol=1e-10)
            X = np.zeros((30, f))
            m.als_solve(*args, 200, X, Y, None, 0.1, 1.0, 0.0, solver=1)
            ref = np.zeros_like(X)
            for u in range(30):
                lo, hi = C.indptr[u], C.indptr[u + 1]
                idx, c = C.indices[lo:hi], C.data[lo:hi].astype(np.float64)
                A = Y.T @ Y + (Y[idx].T * (c - 1.0)) @ Y[idx] + 0.1 * np.eye(f)
                ref[u] = np.linalg.solve(A, Y[idx].T @ c)
            assert np.abs(X - ref).max() < 1e-11 * np.abs(ref).max(), np.abs(X - ref).max()
            Xcg = np.zeros_like(X)
            for _ in range(100):
                m.als_solve(*args, 200, Xcg, Y, G, 0.1, 1.0, 0.0, solver=0)
            assert np.abs(Xcg - ref).max() < 1e-9 * np.abs(ref).max(), np.abs(Xcg - ref).max()
        R = sp.random(60, 40, density=0.2, random_state=3, format="csr", dtype=np.float32)
        R.sort_indices()
        U = np.full((60, 9), 0.01); V = rng.standard_normal((40, 9)) * 0.1
        first = None
        for e in range(30):
            s = m.bpr_epoch(R.indptr.astype(np.int64), R.indices, 40, U, V, np.zeros(40),
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


def test_kernels_do_not_mix_precisions(problem):
    C = problem
    X = np.zeros((C.shape[0], 4))
    Y32 = np.ones((C.shape[1], 4), dtype=np.float32)
    with pytest.raises(TypeError):
        core.als_solve(*csr_args(C), C.shape[1], X, Y32)


# ----------------------------------------------------------------------------------------
# ALS at float64
# ----------------------------------------------------------------------------------------
class TestALSFloat64Contract(RecommenderContract):
    def make_model(self):
        return rf.ALS(8, iterations=4, regularization=0.1, dtype=np.float64, random_state=0)


class TestALSCholeskyFloat64Contract(RecommenderContract):
    def make_model(self):
        return rf.ALS(6, iterations=3, solver="cholesky", confidence="1+alpha*r", alpha=2.0, dtype="float64",
                      random_state=0)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("confidence", ["alpha*r", "1+alpha*r"])
@pytest.mark.parametrize("factors", [8, 40])  # 40: CG in the eigenbasis
def test_float64_als_matches_float32_on_the_same_seed(solver, confidence, factors):
    train, _ = planted_blocks()
    kw = dict(iterations=5 if solver == "cholesky" else 15, solver=solver, confidence=confidence, alpha=2.0,
              regularization=0.5, random_state=4, calculate_training_loss=True)
    a = rf.ALS(factors, **kw).fit(train, show_progress=False)
    b = rf.ALS(factors, dtype=np.float64, **kw).fit(train, show_progress=False)
    assert a.user_factors_.dtype == np.float32 and b.user_factors_.dtype == np.float64
    assert b.item_factors_.dtype == np.float64
    sa = a.user_factors_.astype(np.float64) @ a.item_factors_.T
    sb = b.user_factors_ @ b.item_factors_.T
    # Cholesky: float32 rounding, slightly grown over the iterations. Three CG steps from the
    # nearly rank-one start (uniform [0, 0.01)) are far from converged in the first
    # iterations, where float32 rounding moves them by up to a few percent (implicit's float32
    # CG moves as much, see the half-step test below); later iterations pull them together.
    tol = 2e-4 if solver == "cholesky" else 1e-2
    np.testing.assert_allclose(sa, sb, atol=tol * np.abs(sb).max())
    assert abs(a.history_[-1]["loss"] - b.history_[-1]["loss"]) <= 1e-3 * b.history_[-1]["loss"]
    # and threads change nothing at float64 either
    c = rf.ALS(factors, dtype=np.float64, n_threads=1, **kw).fit(train, show_progress=False)
    np.testing.assert_array_equal(b.user_factors_, c.user_factors_)


def test_float64_cg_half_step_is_float32_cg_without_its_rounding(small_interactions):
    """One CG half-step from identical inputs: float32 and float64 differ by float32 rounding
    amplified by the system (here up to ~1e-3), and float64 is reproducible to 1e-12 from
    inputs perturbed at 1e-15, i.e. its own rounding does not show."""
    m = small_interactions.matrix.tocsr().T.tocsr().astype(np.float32)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((m.shape[1], 8))
    Y0 = rng.random((m.shape[0], 8)) * 0.01
    out = {}
    for name, dtype, eps in (("f32", np.float32, 0.0), ("f64", np.float64, 0.0), ("f64'", np.float64, 1e-15)):
        Y = (Y0 * (1 + eps * rng.standard_normal(Y0.shape))).astype(dtype)
        core.als_solve(*csr_args(m), m.shape[1], Y, X.astype(dtype), None, 0.5, 1.0, 0.0, solver=0, cg_steps=3)
        out[name] = Y.astype(np.float64)
    scale = np.abs(out["f64"]).max()
    assert np.abs(out["f64'"] - out["f64"]).max() < 1e-12 * scale
    assert np.abs(out["f32"] - out["f64"]).max() < 1e-2 * scale


def test_float64_als_one_iteration_equals_the_numpy_oracle(small_interactions):
    model = rf.ALS(5, iterations=1, solver="cholesky", alpha=3.0, confidence="1+alpha*r", regularization=0.2,
                   unobserved_weight=0.5, regularization_exponent=0.5, dtype=np.float64, random_state=3)
    model.fit(small_interactions, show_progress=False)
    C = small_interactions.matrix.tocsr().astype(np.float32)
    C.data = np.float32(3.0) * C.data + np.float32(1.0)
    rng = np.random.default_rng(3)
    rng.random((C.shape[0], 5), dtype=np.float32)
    Y = (rng.random((C.shape[1], 5), dtype=np.float32) * np.float32(0.01)).astype(np.float64)
    X = exact_rows(C, Y, 0.2, 0.5, 0.5)
    Y = exact_rows(C.T.tocsr(), X, 0.2, 0.5, 0.5)
    np.testing.assert_allclose(model.user_factors_, X, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.item_factors_, Y, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_float64_als_matches_implicit_float64(solver):
    als = pytest.importorskip("implicit.cpu.als", reason="implicit is not installed")
    train, _ = planted_blocks(n_groups=3, users_per_group=25, items_per_group=20, keep=0.6, seed=3)
    matrix = train.matrix.tocsr().astype(np.float32)
    f, seed = 12, 5
    # regularization 0.25: exact in float32, which implicit's CG kernel takes it as
    ours = rf.ALS(f, iterations=6, alpha=3.0, regularization=0.25, solver=solver, cg_steps=3, dtype=np.float64,
                  random_state=seed, n_threads=1).fit(train, show_progress=False)
    # implicit starts from recforge's initial factors (drawn in float32, users first)
    rng = np.random.default_rng(seed)
    users0 = (rng.random((train.n_users, f), dtype=np.float32) * np.float32(0.01)).astype(np.float64)
    items0 = (rng.random((train.n_items, f), dtype=np.float32) * np.float32(0.01)).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # implicit's advice about BLAS threads
        peer = als.AlternatingLeastSquares(factors=f, regularization=0.25, alpha=3.0, use_cg=solver == "cg",
                                           iterations=6, dtype=np.float64, num_threads=1, random_state=seed)
        peer.cg_steps = 3
        peer.user_factors, peer.item_factors = users0, items0
        peer.fit(matrix, show_progress=False)
    assert peer.user_factors.dtype == np.float64
    np.testing.assert_allclose(ours.user_factors_, peer.user_factors, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.item_factors_, peer.item_factors, rtol=1e-7, atol=1e-10)


@pytest.fixture(scope="module")
def converged64():
    train, _ = planted_blocks(n_groups=3, users_per_group=20, items_per_group=15, keep=0.7, seed=1)
    model = rf.ALS(3, iterations=150, solver="cholesky", alpha=4.0, regularization=2.0, dtype=np.float64,
                   random_state=0)
    return model.fit(train, show_progress=False), train


def test_float64_fold_in_explain_and_partial_fits(converged64):
    model, train = converged64
    R = train.matrix.tocsr()
    x = model.recalculate_user(list(train.item_ids[R[17].indices]))
    assert x.dtype == np.float64
    np.testing.assert_allclose(x, model.user_factors_[17], atol=1e-8)
    batch = model.recalculate_user(R[:10])
    np.testing.assert_allclose(batch, model.user_factors_[:10], atol=1e-8)
    users = train.user_ids[R[:, 7].nonzero()[0]]
    np.testing.assert_allclose(model.recalculate_item(users), model.item_factors_[7], atol=1e-8)
    total, items, contrib = model.explain(30, 2)
    assert contrib.dtype == np.float64
    assert np.isclose(contrib.sum(), total, rtol=1e-12)
    assert np.isclose(total, model.score(30, 2), atol=1e-8)
    model = pickle.loads(pickle.dumps(model))
    model.partial_fit_users([1000], [[0, 1, 2]])
    np.testing.assert_allclose(model.user_factors_[-1], model.recalculate_user([0, 1, 2]), atol=1e-12)
    model.partial_fit_items([999], sp.csr_matrix(np.ones((1, model.n_users_), dtype=np.float32)))
    assert model.user_factors_.dtype == np.float64 and model.item_factors_.dtype == np.float64


# ----------------------------------------------------------------------------------------
# scores and selection downstream of float64 factors
# ----------------------------------------------------------------------------------------
def _numpy_topk(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=-1)[:, :n]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("cls", [rf.ALS, rf.BPR])
def test_float64_recommend_is_the_float64_top_n(small_interactions, cls):
    kw = dict(iterations=4) if cls is rf.ALS else dict(epochs=5, learning_rate=0.05, n_threads=1)
    model = cls(8, dtype=np.float64, random_state=0, **kw).fit(small_interactions, show_progress=False)
    users = np.arange(small_interactions.n_users)
    full = model.user_factors_ @ model.item_factors_.T
    if cls is rf.BPR:
        full = full + model.item_biases_
    seen = small_interactions.matrix.tocsr()
    masked = np.where(seen.toarray() > 0, -np.inf, full)
    want_items, want_scores = _numpy_topk(masked, 10)
    items, scores = model.recommend(users, n=10, ids="index")
    assert scores.dtype == np.float64
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-12)
    np.testing.assert_allclose(model.score(users[:, None], np.arange(5)[None, :], ids="index"), full[:, :5],
                               rtol=1e-12)
    # candidates, and a vector index (float32 inside) give the same float64 answer
    cand = np.array([1, 4, 5, 9, 20, 33, 39])
    items_c, scores_c = model.recommend(users, n=3, ids="index", items=cand, exclude_seen=False)
    sub = full[:, cand]
    want_c, _ = _numpy_topk(sub, 3)
    np.testing.assert_array_equal(items_c, cand[want_c])
    model.build_index("hnsw", similar_items=True, random_state=0)
    items_i, scores_i = model.recommend(users, n=10, ids="index")
    assert scores_i.dtype == np.float64
    np.testing.assert_array_equal(items_i, want_items)
    np.testing.assert_array_equal(scores_i, scores)
    # similar items: cosine of the float64 factors
    unit = model.item_factors_ / np.linalg.norm(model.item_factors_, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    want_sim, want_cos = _numpy_topk(cos, 5)
    for indexed in (True, False):
        if not indexed:
            model.drop_index()
        sim, sim_scores = model.similar_items(np.arange(small_interactions.n_items), n=5, ids="index")
        assert sim_scores.dtype == np.float64
        np.testing.assert_array_equal(sim, want_sim)
        np.testing.assert_allclose(sim_scores, want_cos, rtol=1e-12)


def test_float64_evaluation_equals_float32_on_a_planted_problem():
    train, test = planted_blocks()
    results = {}
    for dtype in (np.float32, np.float64):
        model = rf.ALS(8, iterations=10, alpha=5.0, regularization=0.1, dtype=dtype, random_state=0)
        model.fit(train, show_progress=False)
        results[dtype] = rf.evaluate(model, train, test, k=10, metrics=["recall", "ndcg"])["value"].to_numpy()
    np.testing.assert_allclose(results[np.float64], results[np.float32], rtol=1e-3)


# ----------------------------------------------------------------------------------------
# BPR and LMF at float64
# ----------------------------------------------------------------------------------------
class TestBPRFloat64Contract(RecommenderContract):
    def make_model(self):
        return rf.BPR(8, epochs=5, learning_rate=0.05, dtype=np.float64, random_state=0, n_threads=1)


class TestLMFFloat64Contract(RecommenderContract):
    def make_model(self):
        return rf.LMF(8, epochs=5, learning_rate=0.05, dtype=np.float64, random_state=0, n_threads=1)


@pytest.mark.parametrize("cls", [rf.BPR, rf.LMF])
def test_float64_bpr_follows_float32_on_the_same_seed(small_interactions, cls):
    kw = dict(epochs=2, learning_rate=0.05, regularization=0.01, random_state=6, n_threads=1)
    a = cls(8, **kw).fit(small_interactions, show_progress=False)
    b = cls(8, dtype=np.float64, **kw).fit(small_interactions, show_progress=False)
    for name in ("user_factors_", "item_factors_", "item_biases_"):
        assert getattr(b, name).dtype == np.float64
        # the same samples in the same order: the two runs differ by rounding only
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5)
    assert abs(a.history_[-1]["loss"] - b.history_[-1]["loss"]) < 1e-5
    c = cls(8, dtype=np.float64, **kw).fit(small_interactions, show_progress=False)
    np.testing.assert_array_equal(b.item_factors_, c.item_factors_)


def test_float64_bpr_recovers_planted_blocks_and_folds_in():
    train, test = planted_blocks()
    model = rf.BPR(8, epochs=40, learning_rate=0.05, regularization=0.001, dtype=np.float64, random_state=0,
                   n_threads=2).fit(train, show_progress=False)
    assert model.history_[-1]["train_auc"] > 0.95
    recall = rf.evaluate(model, train, test, k=10, metrics=["recall"])["value"].iloc[0]
    n_test = np.diff(test.matrix.tocsr().indptr)
    assert recall > 0.95 * np.mean(np.minimum(n_test, 10) / n_test)
    vec = model.recalculate_user([50, 51, 52, 53, 54], epochs=30)
    assert vec.dtype == np.float64
    scores = vec @ model.item_factors_.T + model.item_biases_
    scores[[50, 51, 52, 53, 54]] = -np.inf
    assert set(np.argsort(-scores)[:10]) <= set(range(50, 75))
    model.partial_fit_users([10_000], [[50, 51, 52, 53, 54]])
    assert model.user_factors_.dtype == np.float64
    items, _ = model.recommend(10_000, n=5)
    assert set(items.tolist()) <= set(range(50, 75))


# ----------------------------------------------------------------------------------------
# persistence and bad dtypes
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: rf.ALS(6, iterations=3, dtype=np.float64, random_state=0),
    lambda: rf.BPR(6, epochs=3, dtype=np.float64, random_state=0, n_threads=1),
    lambda: rf.LMF(6, epochs=3, dtype="float64", random_state=0, n_threads=1),
    lambda: rf.ALS(6, iterations=3, random_state=0),
])
def test_dtype_survives_save_load_and_pickle(small_interactions, tmp_path, make):
    model = make().fit(small_interactions, show_progress=False)
    want = np.dtype(model.dtype)
    users = small_interactions.user_ids[:15]
    items, scores = model.recommend(users, n=5)
    for clone in (rf.Recommender.load(model.save(tmp_path / "m.npz")), pickle.loads(pickle.dumps(model))):
        assert np.dtype(clone.dtype) == want
        learned = [clone.user_factors_, clone.item_factors_] + ([clone.item_biases_] if hasattr(clone, "item_biases_")
                                                                 else [])
        assert all(a.dtype == want for a in learned)
        b_items, b_scores = clone.recommend(users, n=5)
        np.testing.assert_array_equal(b_items, items)
        np.testing.assert_array_equal(b_scores, scores)
        assert b_scores.dtype == want
        clone.fit(small_interactions, show_progress=False)  # the restored parameter is usable
        assert clone.user_factors_.dtype == want


def test_restored_factors_of_mixed_precision_are_rejected(small_interactions, tmp_path):
    model = rf.ALS(4, iterations=2, dtype=np.float64, random_state=0).fit(small_interactions, show_progress=False)
    model.item_factors_ = model.item_factors_.astype(np.float32)
    path = model.save(tmp_path / "mixed.npz")
    with pytest.raises(ValueError, match="float32 or all float64"):
        rf.Recommender.load(path)


@pytest.mark.parametrize("cls", [rf.ALS, rf.BPR, rf.LMF])
@pytest.mark.parametrize("bad", [np.float16, "int32", np.int64, None, True, "complex128", "double precision",
                                 object])
def test_bad_dtype_raises_a_clear_error(small_interactions, cls, bad):
    with pytest.raises(ValueError, match="dtype must be np.float32"):
        cls(4, dtype=bad).fit(small_interactions, show_progress=False)


@pytest.mark.parametrize("good", [np.float64, "float64", np.dtype("float64"), "f8", float])
def test_float64_spellings_are_accepted(small_interactions, good):
    model = rf.ALS(4, iterations=1, dtype=good, random_state=0).fit(small_interactions, show_progress=False)
    assert model.user_factors_.dtype == np.float64
