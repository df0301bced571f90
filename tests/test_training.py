from __future__ import annotations

import numpy as np
import pytest

import recforge as rf
from recforge._training import run_epochs


@pytest.fixture
def split():
    data = rf.datasets.make_synthetic(n_users=200, n_items=100, random_state=0)
    return rf.split.random_holdout(data, test_fraction=0.2, random_state=0)


def test_epochs_history_callbacks_and_early_stopping(split):
    train, test = split
    model = rf.Popularity().fit(train)
    good = model.item_scores_.copy()
    rng = np.random.default_rng(0)

    def step(epoch):  # epoch 0 keeps the good scores; later epochs scramble them
        if epoch > 0:
            model.item_scores_ = rng.random(model.n_items_).astype(np.float32)
        return {"loss": 1.0 / (epoch + 1)}

    history = run_epochs(model, 10, step, eval_set=test, early_stopping=2, show_progress=False)
    assert history[-1].get("restored_best") == 1.0 and history[-1]["epoch"] == 1
    assert len(history) == 4  # epochs 1..3, then the restore record
    np.testing.assert_array_equal(model.item_scores_, good)
    seen = []
    history = run_epochs(model, 5, lambda e: None, callbacks=[lambda m, e, logs: seen.append(e) or e == 2], show_progress=False)
    assert seen == [0, 1, 2] and len(history) == 3


def test_divergence_is_reported_with_advice(split):
    train, _ = split
    model = rf.Popularity().fit(train)

    def step(epoch):
        model.item_scores_ = model.item_scores_ * np.float32(np.nan)

    with pytest.raises(ValueError, match="lower the learning rate"):
        run_epochs(model, 3, step, show_progress=False)


def test_bad_arguments(split):
    train, _ = split
    model = rf.Popularity().fit(train)
    with pytest.raises(ValueError, match="eval_set"):
        run_epochs(model, 3, lambda e: None, early_stopping=2)
    with pytest.raises(ValueError, match="n_epochs"):
        run_epochs(model, 0, lambda e: None)
