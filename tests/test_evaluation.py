from __future__ import annotations

import numpy as np
import pytest

import recforge as rf
from recforge import metrics as M


@pytest.fixture(scope="module")
def split():
    data = rf.datasets.make_synthetic(n_users=300, n_items=150, random_state=1)
    return rf.split.random_holdout(data, test_fraction=0.25, random_state=1)


def test_evaluate_equals_metrics_on_recommend_output(split):
    train, test = split
    model = rf.Popularity().fit(train)
    table = rf.evaluate(model, train, test, k=(5, 10), metrics=["precision", "ndcg", "map", "auc"])
    assert list(table.columns) == ["metric", "k", "value", "n_users"]
    assert len(table) == 8
    users = np.flatnonzero(test.user_counts() > 0)
    top, _ = model.recommend(users, n=10, ids="index")
    rel = test.matrix.tocsr()[users]
    rel.data[:] = 1.0
    for k in (5, 10):
        row = table[(table.metric == "ndcg") & (table.k == k)].iloc[0]
        assert row.value == pytest.approx(M.ndcg_at_k(top, rel, k))
        assert row.n_users == len(users)
        row = table[(table.metric == "precision") & (table.k == k)].iloc[0]
        assert row.value == pytest.approx(M.precision_at_k(top, rel, k))


def test_evaluate_fits_unfitted_models_and_checks_id_maps(split):
    train, test = split
    model = rf.Random(random_state=0)
    table = rf.evaluate(model, train, test, k=10)
    assert model.is_fitted and set(table.metric) == set(rf.evaluation.DEFAULT_METRICS)
    other = rf.datasets.make_synthetic(n_users=50, n_items=20, random_state=2)
    with pytest.raises(ValueError, match="id maps"):
        rf.evaluate(model, None, other, k=10)


def test_evaluate_graded_relevance_and_subset_of_users(split):
    train, test = split
    model = rf.Popularity().fit(train)
    users = test.user_ids[test.user_counts() > 0][:10]
    graded = rf.evaluate(model, train, test, k=10, metrics=["ndcg"], relevance="graded", users=users)
    assert graded.n_users.iloc[0] == 10
    binary = rf.evaluate(model, train, test, k=10, metrics=["ndcg"], users=users)
    assert 0 <= graded.value.iloc[0] <= 1 and 0 <= binary.value.iloc[0] <= 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(k=0), "positive integer"),
        (dict(k=[]), "k is empty"),
        (dict(metrics=["f1"]), "unknown metric"),
        (dict(relevance="stars"), "relevance"),
    ],
)
def test_evaluate_bad_arguments(split, kwargs, match):
    train, test = split
    with pytest.raises(ValueError, match=match):
        rf.evaluate(rf.Popularity(), train, test, **kwargs)


class MeanRating(rf.Popularity):
    """Predicts every user's mean training rating: enough to check the rating metrics path."""

    def _fit(self, data):
        super()._fit(data)
        m = data.matrix.tocsr()
        ratings = data.ratings if data.ratings is not None else m.data
        sums = np.bincount(np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)), weights=ratings, minlength=m.shape[0])
        counts = np.maximum(np.diff(m.indptr), 1)
        self.user_mean_ = (sums / counts).astype(np.float32)

    def predict(self, users, items, ids="raw"):
        u = self._to_index(np.asarray(users), "user", ids)
        return self.user_mean_[u]


def test_rating_metrics_through_evaluate(split):
    train, test = split
    model = MeanRating().fit(train)
    table = rf.evaluate(model, train, test, k=10, metrics=["rmse", "mae", "ndcg"]).set_index("metric")
    t = test.matrix.tocsr()
    rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))
    truth = test.ratings
    pred = model.user_mean_[rows]
    assert table.loc["rmse", "value"] == pytest.approx(np.sqrt(np.mean((truth - pred) ** 2)))
    assert table.loc["mae", "value"] == pytest.approx(np.mean(np.abs(truth - pred)))
    assert np.isnan(table.loc["rmse", "k"])
    with pytest.raises(ValueError, match="does not predict"):
        rf.evaluate(rf.Popularity().fit(train), train, test, metrics=["rmse"])
