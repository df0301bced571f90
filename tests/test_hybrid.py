"""Feature factorization (LightFM model) and hybrid recommenders: gradients against finite
differences, exact steps against a NumPy oracle, representations, cold users and items, bad
input, LightFM on the same data, and the weighted and switching hybrids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import recforge as rf
from recforge import _core
from recforge.content import ContentRecommender
from recforge.data import Interactions
from recforge.factorization import FeatureFactorization
from recforge.hybrid import SwitchingHybrid, WeightedHybrid, normalize_scores

from .recommender_contract import RecommenderContract

LOSSES = {"logistic": 0, "bpr": 1, "warp": 2}


# ----------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["bpr", "warp", "logistic"])
@pytest.mark.parametrize("label", [1.0, 0.0])
def test_example_gradients_match_finite_differences(loss, label):
    rng = np.random.default_rng(1)
    f = 6
    u, i, j = (rng.normal(size=f + 1).astype(np.float32) for _ in range(3))
    neg = None if loss == "logistic" else j
    value, gu, gi, gj = _core.hybrid.example_loss(LOSSES[loss], u, i, neg, label, 1.7)

    def at(uu, ii, jj):
        return _core.hybrid.example_loss(LOSSES[loss], uu, ii, None if neg is None else jj, label, 1.7)[0]

    assert value == pytest.approx(at(u, i, j))
    h = 1e-3
    for vec, grad, which in ((u, gu, 0), (i, gi, 1), (j, gj, 2)):
        if which == 2 and neg is None:
            continue
        for c in range(f + 1):
            plus, minus = [x.astype(np.float64).copy() for x in (u, i, j)], [x.astype(np.float64).copy() for x in (u, i, j)]
            plus[which][c] += h
            minus[which][c] -= h
            num = (at(*(p.astype(np.float32) for p in plus)) - at(*(m.astype(np.float32) for m in minus))) / (2 * h)
            assert grad[c] == pytest.approx(num, rel=2e-2, abs=2e-3), (loss, which, c)


def _tiny(loss_items: int):
    """One user with item 0 as the only positive among ``loss_items`` items, with features."""
    R = sp.csr_matrix((np.ones(1, dtype=np.float32), np.zeros(1, dtype=np.int32), np.array([0, 1])), shape=(1, loss_items))
    Fu = sp.csr_matrix(np.array([[1.0, 0.5]], dtype=np.float32))
    Fi = sp.csr_matrix(np.array([[1.0, 0.0, 0.3], [0.0, 1.0, 0.7], [0.2, 0.0, 1.0]][:loss_items], dtype=np.float32))
    return R, Fu, Fi


def _csr(m):
    m = sp.csr_matrix(m, dtype=np.float32)
    return m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float32)


@pytest.mark.parametrize("loss", ["bpr", "logistic"])
def test_one_adagrad_step_matches_numpy(loss):
    # two items: BPR's only possible negative is item 1, so the step is deterministic
    R, Fu, Fi = _tiny(2)
    rng = np.random.default_rng(0)
    f = 4
    ue, ie = rng.normal(size=(2, f)).astype(np.float32), rng.normal(size=(3, f)).astype(np.float32)
    ub, ib = rng.normal(size=2).astype(np.float32), rng.normal(size=3).astype(np.float32)
    state = [ue.copy(), ub.copy(), np.ones((2, f), np.float32), np.ones(2, np.float32),
             ie.copy(), ib.copy(), np.ones((3, f), np.float32), np.ones(3, np.float32)]
    lr = 0.1
    _core.hybrid.epoch(
        *_csr(R), *_csr(Fu), *_csr(Fi), state[0], state[1], state[2], state[3], None, None,
        state[4], state[5], state[6], state[7], None, None, None, LOSSES[loss], 0, lr, 0.95, 1e-6, 0.0, 0.0,
        10, 5, 10, 7, 0, 1,
    )
    fu, fi = Fu.toarray()[0], Fi.toarray()
    p_u, b_u = fu @ ue, fu @ ub
    q, b = fi @ ie, fi @ ib
    x = q @ p_u + b + b_u
    if loss == "bpr":
        z = 1.0 / (1.0 + np.exp(x[0] - x[1]))
        a, c = -z, z  # dL/dx_u0, dL/dx_u1
        g_pu = a * q[0] + c * q[1]
        g_bu = 0.0
        g_items = [(0, a), (1, c)]
    else:
        a = 1.0 / (1.0 + np.exp(-x[0])) - 1.0
        g_pu, g_bu, g_items = a * q[0], a, [(0, a)]
    exp = [ue.astype(np.float64), ub.astype(np.float64), np.ones((2, f)), np.ones(2),
           ie.astype(np.float64), ib.astype(np.float64), np.ones((3, f)), np.ones(3)]

    def adagrad(param, acc, k, grad):  # the rate from the squared gradients before this one
        param[k] -= lr / np.sqrt(acc[k]) * grad
        acc[k] += grad**2

    for k in range(2):  # user features
        if fu[k]:
            adagrad(exp[0], exp[2], k, fu[k] * g_pu)
            if g_bu:
                adagrad(exp[1], exp[3], k, fu[k] * g_bu)
    for item, coef in g_items:
        for k in range(3):
            if fi[item, k]:
                adagrad(exp[4], exp[6], k, fi[item, k] * coef * p_u)
                adagrad(exp[5], exp[7], k, fi[item, k] * coef)
    for got, want in zip(state, exp):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_warp_step_has_the_rank_weight():
    # positives {0, 1} of three items: the only negative is item 2; drawn at the first try it
    # gets weight ln(floor(2 / 1)) = ln 2, else ln 1 = 0 (no step)
    R = sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    Fu = sp.identity(1, format="csr", dtype=np.float32)
    Fi = sp.identity(3, format="csr", dtype=np.float32)
    f = 3
    rng = np.random.default_rng(2)
    losses = set()
    for seed in range(12):
        ue, ie = rng.normal(size=(1, f)).astype(np.float32) * 0.01, rng.normal(size=(3, f)).astype(np.float32) * 0.01
        stats = _core.hybrid.epoch(
            *_csr(R), *_csr(Fu), *_csr(Fi), ue, np.zeros(1, np.float32), np.ones((1, f), np.float32),
            np.ones(1, np.float32), None, None, ie, np.zeros(3, np.float32), np.ones((3, f), np.float32),
            np.ones(3, np.float32), None, None, None, 2, 0, 0.05, 0.95, 1e-6, 0.0, 0.0, 10, 5, 10, seed, 0, 1,
        )
        assert stats["samples"] == 2
        if stats["updates"]:
            losses.add(round(stats["loss"] / stats["updates"], 2))
    # every step taken carries ln 2 times a hinge near 1 (scores near 0)
    assert losses and all(abs(v - np.log(2)) < 0.05 for v in losses)


# ----------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------
class TestFeatureFactorizationContract(RecommenderContract):
    def make_model(self):
        return FeatureFactorization(8, epochs=5, random_state=0, n_threads=1)


def _data_with_features():
    data = rf.datasets.make_synthetic(200, 120, mean_interactions=15, random_state=0)
    return data


class TestFeatureFactorization:
    def test_identity_representation_is_the_embedding_row(self):
        data = _data_with_features()
        model = FeatureFactorization(6, epochs=2, random_state=0, n_threads=1).fit(
            data, user_features=None, item_features=None, show_progress=False
        )
        assert model.user_embeddings_.shape == (data.n_users, 6)
        np.testing.assert_array_equal(model.user_factors_, model.user_embeddings_)
        np.testing.assert_array_equal(model.item_factors_, model.item_embeddings_)
        np.testing.assert_array_equal(model.user_bias_repr_, model.user_biases_)
        u = 17
        name = f"user:{data.user_ids[u]}"
        emb, bias = model.user_representations([{name: 1.0}])
        np.testing.assert_allclose(emb[0], model.user_embeddings_[u], rtol=1e-6)

    def test_representations_are_feature_sums(self):
        data = _data_with_features()
        model = FeatureFactorization(5, loss="bpr", epochs=2, random_state=0, n_threads=2).fit(data, show_progress=False)
        Fi = sp.csr_matrix((model.item_feat_data_, model.item_feat_indices_, model.item_feat_indptr_),
                           shape=(data.n_items, len(model.item_feature_names_)))
        np.testing.assert_allclose(model.item_factors_, Fi @ model.item_embeddings_, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.item_bias_repr_, Fi @ model.item_biases_, rtol=1e-5, atol=1e-6)
        scores = model.score(np.zeros(data.n_items, dtype=int), np.arange(data.n_items), ids="index")
        expected = model.item_factors_ @ model.user_factors_[0] + model.item_bias_repr_ + model.user_bias_repr_[0]
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)

    @pytest.mark.parametrize("loss", ["warp", "bpr", "warp-kos"])
    def test_learns_and_is_deterministic_with_one_thread(self, loss):
        data = _data_with_features()
        train, test = rf.split.random_holdout(data, test_fraction=0.2, random_state=0)
        a = FeatureFactorization(16, loss=loss, epochs=10, random_state=3, n_threads=1).fit(train, show_progress=False)
        b = FeatureFactorization(16, loss=loss, epochs=10, random_state=3, n_threads=1).fit(train, show_progress=False)
        np.testing.assert_array_equal(a.item_embeddings_, b.item_embeddings_)
        ours = rf.evaluate(a, train, test, k=10, metrics=["recall"])["value"].iloc[0]
        rand = rf.evaluate(rf.Random(random_state=0).fit(train), train, test, k=10, metrics=["recall"])["value"].iloc[0]
        assert ours > 2 * rand

    def test_adadelta_and_regularization_run_and_shrink(self):
        data = _data_with_features()
        free = FeatureFactorization(8, learning_schedule="adadelta", epochs=3, random_state=0, n_threads=1).fit(
            data, show_progress=False)
        reg = FeatureFactorization(8, learning_schedule="adadelta", epochs=3, item_alpha=1e-2, user_alpha=1e-2,
                                   random_state=0, n_threads=1).fit(data, show_progress=False)
        assert np.isfinite(free.item_embeddings_).all() and free.user_embedding_step_.shape == free.user_embeddings_.shape
        assert np.linalg.norm(reg.item_embeddings_) < np.linalg.norm(free.item_embeddings_)

    def test_fit_partial_continues(self):
        data = _data_with_features()
        model = FeatureFactorization(8, epochs=2, random_state=0, n_threads=1).fit(data, show_progress=False)
        before = model.item_embeddings_.copy()
        model.fit_partial(data, epochs=1)
        assert model.training_state_[1] == 3
        assert not np.array_equal(before, model.item_embeddings_)
        with pytest.raises(ValueError, match="fitted shape"):
            model.fit_partial(sp.random(3, 3, density=0.5, format="csr"))

    def test_cold_users_and_items_from_features(self):
        data = _data_with_features()
        train, test = rf.split.item_holdout(data, test_fraction=0.2, random_state=0)
        model = FeatureFactorization(16, epochs=15, identity_features="users", random_state=0, n_threads=1)
        model.fit(train, show_progress=False)
        cold = np.bincount(train.matrix.indices, minlength=data.n_items) == 0
        assert not model.item_feature_names_.astype(str).tolist()[0].startswith("item:")
        ours = rf.evaluate(model, train, test, k=10, metrics=["recall"])["value"].iloc[0]
        pop = rf.evaluate(rf.Popularity().fit(train), train, test, k=10, metrics=["recall"])["value"].iloc[0]
        assert cold.any() and ours > pop
        # a new item with the features of a known one gets its representation
        row = data.item_features.iloc[[5]]
        emb, bias = model.item_representations(row)
        np.testing.assert_allclose(emb[0], model.item_factors_[5], rtol=1e-5, atol=1e-6)
        model.add_items(["new"] if data.item_ids.dtype == object else [10_000], row)
        assert model.n_items_ == data.n_items + 1
        items, scores = model.recommend_new_user(data.user_features.iloc[[0, 1]], n=5)
        assert items.shape == (2, 5) and np.isfinite(scores).all()

    def test_bad_input(self):
        data = _data_with_features()
        model = FeatureFactorization(4, epochs=1, random_state=0, n_threads=1)
        with pytest.raises(ValueError, match="rows"):
            model.fit(data, item_features=sp.random(data.n_items + 2, 3, density=0.5, format="csr"), show_progress=False)
        bad = data.item_features.copy()
        bad.iloc[0, bad.columns.get_loc("price")] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            model.fit(data, item_features=bad, show_progress=False)
        with pytest.raises(ValueError, match="NaN"):
            model.fit(data, item_features=np.full((data.n_items, 2), np.nan), show_progress=False)
        with pytest.raises(ValueError, match="loss"):
            FeatureFactorization(loss="hinge").fit(data, show_progress=False)
        with pytest.raises(ValueError, match="identity"):
            FeatureFactorization(identity_features=False).fit(data.matrix, show_progress=False)
        model.fit(data, show_progress=False)
        with pytest.raises(ValueError, match="unknown user feature names"):
            model.user_representations([{"segment": 1.0, "no-such-feature": 1.0}])
        with pytest.raises(ValueError, match="columns"):
            model.item_representations(sp.random(2, 99, density=0.5, format="csr"))
        with pytest.raises(ValueError, match="unknown feature columns"):
            model.item_representations(data.item_features.iloc[:2].assign(extra=1))


# ----------------------------------------------------------------------------------------
# against LightFM
# ----------------------------------------------------------------------------------------
def _auc(scores, train, test):
    aucs = []
    for u in range(scores.shape[0]):
        pos = test[u].indices
        if not len(pos):
            continue
        keep = np.ones(scores.shape[1], bool)
        keep[train[u].indices] = False
        s = scores[u][keep]
        is_pos = np.zeros(scores.shape[1], bool)
        is_pos[pos] = True
        is_pos = is_pos[keep]
        ranks = pd.Series(s).rank().to_numpy()
        n_pos, n_neg = is_pos.sum(), (~is_pos).sum()
        aucs.append((ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


@pytest.mark.parametrize("loss", ["warp", "bpr"])
def test_quality_matches_lightfm(loss):
    lightfm = pytest.importorskip("lightfm", reason="LightFM is not installed")
    data = rf.datasets.make_synthetic(300, 200, mean_interactions=20, random_state=1)
    train, test = rf.split.random_holdout(data, test_fraction=0.2, random_state=0)
    item_f = sp.hstack([sp.identity(data.n_items), sp.csr_matrix(pd.get_dummies(data.item_features["category"]).to_numpy(float))]).tocsr().astype(np.float32)
    user_f = sp.identity(data.n_users, format="csr", dtype=np.float32)
    R, T = train.matrix.tocsr(), test.matrix.tocsr()
    negatives = "all" if loss == "warp" else "popularity"
    ours_auc, theirs_auc = [], []
    for seed in range(2):
        ours = FeatureFactorization(16, loss=loss, epochs=15, identity_features=False, negatives=negatives,
                                    random_state=seed, n_threads=1).fit(train, user_features=user_f,
                                                                        item_features=item_f, show_progress=False)
        ours_auc.append(_auc(ours._dense_scores(np.arange(data.n_users)), R, T))
        peer = lightfm.LightFM(no_components=16, loss=loss, learning_rate=0.05, random_state=seed)
        peer.fit(R.tocoo(), user_features=user_f, item_features=item_f, epochs=15, num_threads=1)
        ub, ue = peer.get_user_representations(user_f)
        ib, ie = peer.get_item_representations(item_f)
        theirs_auc.append(_auc(ue @ ie.T + ub[:, None] + ib[None, :], R, T))
    assert np.mean(ours_auc) == pytest.approx(np.mean(theirs_auc), rel=0.03)


# ----------------------------------------------------------------------------------------
# hybrids
# ----------------------------------------------------------------------------------------
def _with_item_features(data: Interactions) -> Interactions:
    rng = np.random.default_rng(5)
    items = pd.DataFrame({"brand": rng.choice(["a", "b", "c", "d"], size=data.n_items), "price": rng.random(data.n_items)})
    return Interactions(data.matrix, data.user_ids, data.item_ids, ratings=data.ratings, timestamps=data.timestamps,
                        item_features=items)


class _HybridContract(RecommenderContract):
    @pytest.fixture
    def small_interactions(self, small_interactions):
        return _with_item_features(small_interactions)

    def test_fit_from_scipy_and_pandas(self, small_interactions):
        pytest.skip("the content member needs the item features of an Interactions")

    def test_save_load_gives_identical_recommendations(self, fitted, tmp_path):
        # members are compared by their own parameters (they are objects, not equal by value)
        model, data = fitted
        loaded = rf.Recommender.load(model.save(tmp_path / "model.npz"))
        assert type(loaded) is type(model)
        for name, value in model.get_params().items():
            other = loaded.get_params()[name]
            if isinstance(value, rf.Recommender):
                assert type(other) is type(value) and other.get_params() == value.get_params()
            elif isinstance(value, list) and value and isinstance(value[0], rf.Recommender):
                assert [m.get_params() for m in other] == [m.get_params() for m in value]
            else:
                assert other == value
        users = data.user_ids[:20]
        a, b = model.recommend(users, n=10), loaded.recommend(users, n=10)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])

    def test_params_round_trip(self):
        model = self.make_model()
        params = model.get_params()
        assert type(model)(**params).get_params() == params
        with pytest.raises(ValueError, match="no parameter"):
            model.set_params(not_a_parameter=1)


class TestWeightedHybridContract(_HybridContract):
    def make_model(self):
        return WeightedHybrid([rf.ALS(8, iterations=3, random_state=0), ContentRecommender()], weights=[0.7, 0.3])


class TestSwitchingHybridContract(_HybridContract):
    def make_model(self):
        return SwitchingHybrid(rf.ALS(8, iterations=3, random_state=0), ContentRecommender(), threshold=8)


def test_normalize_scores():
    s = np.array([[1.0, 2.0, 3.0, -np.inf], [5.0, 5.0, 5.0, 5.0]])
    z = normalize_scores(s)
    np.testing.assert_allclose(z[0, :3], (np.array([1, 2, 3]) - 2) / np.std([1, 2, 3]), rtol=1e-6)
    assert z[0, 3] == -np.inf and (z[1] == 0).all()
    np.testing.assert_allclose(normalize_scores(s, "minmax")[0, :3], [0, 0.5, 1])
    with pytest.raises(ValueError, match="normalize"):
        normalize_scores(s, "rank")


def test_weighted_hybrid_with_one_weight_is_that_model(small_interactions):
    data = _with_item_features(small_interactions)
    als = rf.ALS(8, iterations=3, random_state=0)
    hybrid = WeightedHybrid([als, ContentRecommender()], weights=[1.0, 0.0]).fit(data)
    users = data.user_ids[:10]
    np.testing.assert_array_equal(hybrid.recommend(users, n=5)[0], als.recommend(users, n=5)[0])
    with pytest.raises(ValueError, match="weights"):
        WeightedHybrid([als], weights=[1.0, 2.0]).fit(data)
    with pytest.raises(ValueError, match="needs models"):
        WeightedHybrid().fit(data)


def test_switching_hybrid_uses_the_cold_model_for_cold_items(small_interactions):
    data = _with_item_features(small_interactions)
    content = ContentRecommender()
    als = rf.ALS(8, iterations=3, random_state=0)
    hybrid = SwitchingHybrid(als, content, threshold=6).fit(data)
    cold = hybrid.cold_items_
    assert cold.any() and (~cold).any()
    assert np.array_equal(cold, data.item_counts() < 6)
    u = np.arange(5)
    mixed = hybrid._dense_scores(u)
    np.testing.assert_allclose(mixed[:, cold], normalize_scores(content._dense_scores(u)[:, cold]), rtol=1e-6)
    np.testing.assert_allclose(mixed[:, ~cold], normalize_scores(als._dense_scores(u)[:, ~cold]), rtol=1e-5, atol=1e-6)
    # a user's best cold and best warm items both reach the top of the list
    top = hybrid.recommend(u, n=10, ids="index")[0]
    assert cold[top].any() and (~cold[top]).any()
    by_user = SwitchingHybrid(rf.ALS(8, iterations=3, random_state=0), ContentRecommender(), threshold=6, on="user").fit(data)
    cu = by_user.cold_users_
    np.testing.assert_allclose(by_user._dense_scores(np.flatnonzero(cu)),
                               normalize_scores(by_user.cold._dense_scores(np.flatnonzero(cu))), rtol=1e-6)
    with pytest.raises(ValueError, match="on must be"):
        SwitchingHybrid(als, content, on="both").fit(data)
