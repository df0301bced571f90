"""The behavioural contract every recforge recommender passes.

A test module subclasses :class:`RecommenderContract` and implements ``make_model``; the
fixture ``small_interactions`` (tests/conftest.py) provides 60 users x 40 items with string ids,
one of the users without any interaction.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge import NotFittedError, Recommender
from recforge.data import Interactions


class RecommenderContract:
    def make_model(self) -> Recommender:  # pragma: no cover - overridden
        raise NotImplementedError

    def prepare(self, model: Recommender) -> Recommender:
        """Hook run on the fitted model (e.g. to serve it through an index)."""
        return model

    @pytest.fixture
    def fitted(self, small_interactions):
        return self.prepare(self.make_model().fit(small_interactions)), small_interactions

    def test_fit_returns_self_and_sets_learned_state(self, small_interactions):
        model = self.make_model()
        assert model.fit(small_interactions) is model
        assert model.n_users_ == small_interactions.n_users
        assert model.n_items_ == small_interactions.n_items

    def test_single_user_gives_1d_raw_ids(self, fitted):
        model, data = fitted
        items, scores = model.recommend("u3", n=5)
        assert items.shape == (5,) and scores.shape == (5,)
        assert set(items) <= set(data.item_ids)
        assert np.all(np.diff(scores) <= 0), "scores must be sorted best first"

    def test_batch_rows_equal_single_calls(self, fitted):
        model, data = fitted
        users = ["u1", "u7", "u20"]
        items, scores = model.recommend(users, n=6)
        assert items.shape == (3, 6)
        for row, user in enumerate(users):
            i1, s1 = model.recommend(user, n=6)
            np.testing.assert_array_equal(items[row], i1)
            np.testing.assert_allclose(scores[row], s1, rtol=1e-6)

    def test_seen_items_are_excluded(self, fitted):
        model, data = fitted
        seen = data.matrix.tocsr()
        idx = np.arange(data.n_users)
        items, _ = model.recommend(idx, n=10, ids="index")
        for u in idx:
            assert not set(items[u][items[u] >= 0]) & set(seen[u].indices)
        # and without exclusion the best items may include seen ones, but all are valid
        items_all, _ = model.recommend(idx, n=10, ids="index", exclude_seen=False)
        assert ((items_all >= 0) & (items_all < data.n_items)).all()

    def test_raw_ids_round_trip_with_indices(self, fitted):
        model, data = fitted
        raw_items, raw_scores = model.recommend(["u5", "u9"], n=7)
        users = data.user_index(["u5", "u9"])
        idx_items, idx_scores = model.recommend(users, n=7, ids="index")
        np.testing.assert_array_equal(raw_items, data.item_ids[idx_items])
        np.testing.assert_array_equal(raw_scores, idx_scores)

    def test_candidate_items_restrict_results(self, fitted):
        model, data = fitted
        allowed = ["i1", "i3", "i5", "i30", "i31", "i39"]
        items, scores = model.recommend(["u2", "u11"], n=3, items=allowed)
        filled = np.isfinite(scores)
        assert set(items[filled].ravel()) <= set(allowed)
        # slots that exclusions leave empty are padded, never filled with other items
        assert all(v is None for v in items[~filled].ravel())
        items, _ = model.recommend(["u2", "u11"], n=3, items=allowed, exclude_seen=False)
        assert set(items.ravel()) <= set(allowed)

    def test_scores_agree_with_score(self, fitted):
        model, data = fitted
        items, scores = model.recommend("u4", n=8)
        np.testing.assert_allclose(model.score("u4", items), scores, rtol=1e-5, atol=1e-6)

    def test_user_without_interactions_gets_recommendations(self, fitted):
        model, data = fitted
        cold = data.user_ids[data.user_counts() == 0]
        assert len(cold) == 1
        items, scores = model.recommend(cold[0], n=5)
        assert len(set(items)) == 5 and np.isfinite(scores).all()

    def test_save_load_gives_identical_recommendations(self, fitted, tmp_path):
        model, data = fitted
        path = model.save(tmp_path / "model.npz")
        loaded = Recommender.load(path)
        assert type(loaded) is type(model)
        assert loaded.get_params() == model.get_params() or "random_state" in model.get_params()
        users = data.user_ids[:20]
        a = model.recommend(users, n=10)
        b = loaded.recommend(users, n=10)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert type(model).load(path).n_items_ == data.n_items

    def test_pickle_gives_identical_recommendations(self, fitted):
        model, data = fitted
        clone = pickle.loads(pickle.dumps(model))
        users = data.user_ids[:20]
        np.testing.assert_array_equal(model.recommend(users, n=10)[0], clone.recommend(users, n=10)[0])

    def test_params_round_trip(self):
        model = self.make_model()
        params = model.get_params()
        clone = type(model)(**params)
        assert clone.get_params() == params
        with pytest.raises(ValueError, match="no parameter"):
            model.set_params(not_a_parameter=1)

    def test_not_fitted(self):
        model = self.make_model()
        with pytest.raises(NotFittedError, match="fit"):
            model.recommend(0)
        with pytest.raises(NotFittedError):
            model.save("never.npz")

    def test_bad_input_raises_clear_errors(self, fitted, tmp_path):
        model, data = fitted
        with pytest.raises(IndexError, match="unknown user"):
            model.recommend("nobody")
        with pytest.raises(IndexError, match="outside"):
            model.recommend(-1, ids="index")
        with pytest.raises(IndexError, match="outside"):
            model.recommend(data.n_users, ids="index")
        with pytest.raises(ValueError, match="positive integer"):
            model.recommend("u1", n=0)
        with pytest.raises(ValueError, match="larger than"):
            model.recommend("u1", n=data.n_items + 1)
        with pytest.raises(ValueError, match="larger than"):
            model.recommend("u1", n=3, items=["i1", "i2"])
        with pytest.raises(IndexError, match="unknown item"):
            model.recommend("u1", n=1, items=["not-an-item"])
        with pytest.raises(ValueError, match="ids must be"):
            model.recommend("u1", ids="name")
        with pytest.raises(ValueError, match="empty"):
            self.make_model().fit(sp.csr_matrix((5, 4), dtype=np.float32))
        with pytest.raises(ValueError, match="Interactions"):
            self.make_model().fit([[1, 2]])
        corrupt = tmp_path / "corrupt.npz"
        corrupt.write_bytes(b"this is not a model")
        with pytest.raises(ValueError, match="not a readable recforge model"):
            Recommender.load(corrupt)
        np.savez(tmp_path / "other.npz", x=np.arange(3))
        with pytest.raises(ValueError, match="not a recforge model file"):
            Recommender.load(tmp_path / "other.npz")

    def test_fit_from_scipy_and_pandas(self, small_interactions):
        matrix = small_interactions.matrix
        model = self.make_model().fit(matrix)
        items, _ = model.recommend(3, n=4)
        assert items.dtype.kind in "iu"
        df = small_interactions.to_pandas()[["user", "item"]]
        model = self.make_model().fit(df)
        items, _ = model.recommend(df["user"].iloc[0], n=4)
        assert set(items) <= set(df["item"])
