"""Exact top-k against a slow NumPy oracle (stable argsort of -scores, ties by item index)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.retrieval import topk_dense, topk_dot


def oracle(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None, candidates=None):
    scores = scores.astype(np.float64).copy()
    n_q, n_i = scores.shape
    allowed = np.ones((n_q, n_i), dtype=bool)
    if exclude is not None:
        allowed &= exclude.toarray() == 0
        allowed[exclude.nonzero()] = False
    if candidates is not None:
        mask = np.zeros(n_i, dtype=bool)
        mask[candidates] = True
        allowed &= mask[None, :]
    items = np.full((n_q, k), -1, dtype=np.int64)
    vals = np.full((n_q, k), -np.inf)
    for q in range(n_q):
        idx = np.flatnonzero(allowed[q])
        order = idx[np.argsort(-scores[q, idx], kind="stable")][:k]
        items[q, : len(order)] = order
        vals[q, : len(order)] = scores[q, order]
    return items, vals


def integer_factors(rng, n, d):
    # Small integers: every dot product is exact in float32 and ties are frequent.
    return rng.integers(-2, 3, size=(n, d)).astype(np.float32)


def random_exclusion(rng, n_q, n_i, density):
    m = sp.random(n_q, n_i, density=density, format="csr", random_state=rng)
    m.data[:] = 1.0
    return m


@pytest.mark.parametrize("n_q,n_i,d,k", [(1, 1, 1, 1), (5, 17, 3, 4), (37, 250, 7, 10), (130, 1000, 64, 25), (9, 40, 0, 5)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_topk_dot_matches_argsort_with_ties(n_q, n_i, d, k, n_threads):
    rng = np.random.default_rng(n_q * 1000 + n_i + d)
    U, V = integer_factors(rng, n_q, d), integer_factors(rng, n_i, d)
    items, scores = topk_dot(U, V, k, n_threads=n_threads)
    o_items, o_scores = oracle(U.astype(np.float64) @ V.T.astype(np.float64), k)
    np.testing.assert_array_equal(items, o_items)
    np.testing.assert_array_equal(scores, o_scores.astype(np.float32))


@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
def test_topk_dot_excludes_seen_items(density):
    rng = np.random.default_rng(3)
    U, V = integer_factors(rng, 80, 8), integer_factors(rng, 300, 8)
    ex = random_exclusion(rng, 80, 300, density)
    items, scores = topk_dot(U, V, 20, exclude=ex, n_threads=2)
    o_items, o_scores = oracle(U.astype(np.float64) @ V.T, 20, exclude=ex)
    np.testing.assert_array_equal(items, o_items)
    np.testing.assert_array_equal(scores, o_scores.astype(np.float32))
    for q in range(80):
        assert not set(items[q][items[q] >= 0]) & set(ex[q].indices)


def test_topk_pads_when_exclusion_leaves_too_few():
    U = np.ones((2, 1), dtype=np.float32)
    V = np.arange(5, dtype=np.float32)[:, None]
    ex = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]]))
    items, scores = topk_dot(U, V, 4, exclude=ex)
    np.testing.assert_array_equal(items, [[4, 3, -1, -1], [4, 3, 2, 1]])
    assert np.isneginf(scores[0, 2:]).all()


def test_topk_dot_candidates_and_exclusion():
    rng = np.random.default_rng(11)
    U, V = integer_factors(rng, 50, 6), integer_factors(rng, 200, 6)
    ex = random_exclusion(rng, 50, 200, 0.2)
    cand = rng.choice(200, size=60, replace=False)
    items, _ = topk_dot(U, V, 15, exclude=ex, candidates=cand)
    o_items, _ = oracle(U.astype(np.float64) @ V.T, 15, exclude=ex, candidates=cand)
    np.testing.assert_array_equal(items, o_items)
    assert set(items[items >= 0].ravel()) <= set(cand.tolist())


def test_topk_dot_float_inputs_agree_with_numpy():
    rng = np.random.default_rng(5)
    U = rng.standard_normal((64, 32)).astype(np.float32)
    V = rng.standard_normal((2000, 32)).astype(np.float32)
    items, scores = topk_dot(U, V, 10)
    exact = U.astype(np.float64) @ V.T.astype(np.float64)
    o_items, o_scores = oracle(exact, 10)
    np.testing.assert_allclose(scores, o_scores, rtol=0, atol=1e-4)
    # Orders may only differ between scores closer than float32 rounding.
    differs = items != o_items
    if differs.any():
        gaps = np.abs(exact[np.nonzero(differs)[0], items[differs]] - exact[np.nonzero(differs)[0], o_items[differs]])
        assert gaps.max() < 1e-4


@pytest.mark.parametrize("n_threads", [1, 2])
def test_topk_dense_matches_argsort(n_threads):
    rng = np.random.default_rng(2)
    S = rng.integers(0, 5, size=(70, 130)).astype(np.float32)
    ex = random_exclusion(rng, 70, 130, 0.3)
    cand = rng.choice(130, size=90, replace=False)
    items, scores = topk_dense(S, 12, exclude=ex, candidates=cand, n_threads=n_threads)
    o_items, o_scores = oracle(S, 12, exclude=ex, candidates=cand)
    np.testing.assert_array_equal(items, o_items)
    np.testing.assert_array_equal(scores, o_scores.astype(np.float32))


def test_topk_dense_never_selects_nan():
    S = np.array([[np.nan, 1.0, np.nan, 0.5]], dtype=np.float32)
    items, scores = topk_dense(S, 3)
    np.testing.assert_array_equal(items, [[1, 3, -1]])


@pytest.mark.parametrize("kernel", ["generic", "avx2"])
def test_every_kernel_matches_oracle(kernel):
    """The portable and AVX2 kernels (chosen by environment variable) give the same answers."""
    script = textwrap.dedent(
        """
        import numpy as np, scipy.sparse as sp
        from recforge.retrieval import topk_dot, kernel_name
        import os
        assert kernel_name() == "generic" or os.environ["RECFORGE_TOPK_KERNEL"] != "generic", kernel_name()
        rng = np.random.default_rng(0)
        for n_q, n_i, d in [(3, 7, 1), (29, 301, 5), (130, 777, 64)]:
            U = rng.integers(-2, 3, size=(n_q, d)).astype(np.float32)
            V = rng.integers(-2, 3, size=(n_i, d)).astype(np.float32)
            ex = sp.random(n_q, n_i, density=0.1, format="csr", random_state=1)
            S = (U.astype(np.float64) @ V.T).copy()
            S[ex.nonzero()] = -np.inf
            k = min(9, n_i)
            items, scores = topk_dot(U, V, k, exclude=ex)
            for q in range(n_q):
                allowed = np.setdiff1d(np.arange(n_i), ex[q].indices)
                order = allowed[np.argsort(-S[q, allowed], kind="stable")][:k]
                got = items[q][items[q] >= 0]
                assert np.array_equal(got, order), (q, got, order)
        print("ok")
        """
    )
    env = dict(os.environ, RECFORGE_TOPK_KERNEL=kernel)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda U, V: topk_dot(U, V, 0), ValueError, "k must be a positive integer"),
        (lambda U, V: topk_dot(U, V, -3), ValueError, "k must be a positive integer"),
        (lambda U, V: topk_dot(U, V, 11), ValueError, "larger than the 10 items"),
        (lambda U, V: topk_dot(U, V[:, :2], 3), ValueError, "factors"),
        (lambda U, V: topk_dot(U[0], V, 3), ValueError, "2-D"),
        (lambda U, V: topk_dot(U.astype(str), V, 3), ValueError, "numeric"),
        (lambda U, V: topk_dot(np.full_like(U, np.nan), V, 3), ValueError, "NaN"),
        (lambda U, V: topk_dot(U, V, 3, candidates=[0, 10]), IndexError, "outside"),
        (lambda U, V: topk_dot(U, V, 3, candidates=[-1]), IndexError, "outside"),
        (lambda U, V: topk_dot(U, V, 3, candidates=[1, 2]), ValueError, "larger than the 2 candidate"),
        (lambda U, V: topk_dot(U, V, 3, exclude=sp.csr_matrix((4, 10))), ValueError, "shape"),
        (lambda U, V: topk_dot(U, V, 3, exclude=np.zeros((3, 10))), ValueError, "scipy.sparse"),
        (lambda U, V: topk_dense(np.zeros(5), 3), ValueError, "2-D"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    rng = np.random.default_rng(0)
    U = rng.standard_normal((3, 4)).astype(np.float32)
    V = rng.standard_normal((10, 4)).astype(np.float32)
    with pytest.raises(error, match=match):
        call(U, V)


def test_empty_query_batch_and_float64_input():
    V = np.eye(4)
    items, scores = topk_dot(np.zeros((0, 4)), V, 2)
    assert items.shape == (0, 2) and scores.shape == (0, 2)
    items, _ = topk_dot(np.array([[0.0, 0.0, 2.0, 1.0]]), V, 2)
    np.testing.assert_array_equal(items, [[2, 3]])
