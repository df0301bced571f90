"""Tests of recforge.split: exact partitions, determinism, oracles and leakage."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from recforge import split
from recforge.data import Interactions
from recforge.datasets import make_synthetic


@pytest.fixture(scope="module")
def data() -> Interactions:
    return make_synthetic(300, 200, mean_interactions=20, random_state=3)


@pytest.fixture(scope="module")
def tied() -> Interactions:
    """Small data with many timestamp ties and users of every size."""
    rng = np.random.default_rng(7)
    n = 600
    df = pd.DataFrame(
        {
            "user": rng.integers(0, 60, n),
            "item": rng.integers(0, 80, n),
            "ts": rng.integers(0, 6, n),
            "w": rng.random(n),
        }
    )
    return Interactions.from_pandas(df, weight_col="w", timestamp_col="ts", aggregate="first")


def entries(d: Interactions) -> pd.DataFrame:
    return d.to_pandas().sort_values(["user", "item"]).reset_index(drop=True)


def assert_partition(full: Interactions, train: Interactions, test: Interactions) -> None:
    assert train.shape == test.shape == full.shape
    assert np.array_equal(train.user_ids, full.user_ids)
    assert np.array_equal(test.item_ids, full.item_ids)
    assert train.nnz + test.nnz == full.nnz
    both = pd.concat([train.to_pandas(), test.to_pandas()])
    assert not both.duplicated(["user", "item"]).any()
    merged = both.sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, entries(full))


SPLITTERS = {
    "temporal": lambda d, rs: split.temporal_split(d, test_fraction=0.25),
    "last_n": lambda d, rs: split.leave_last_n_out(d, n=2),
    "random": lambda d, rs: split.random_holdout(d, 0.3, random_state=rs),
    "users": lambda d, rs: split.user_holdout(d, 0.3, random_state=rs),
}


@pytest.mark.parametrize("name", list(SPLITTERS))
def test_partition_is_exact(name: str, data: Interactions, tied: Interactions) -> None:
    for d in (data, tied):
        train, test = SPLITTERS[name](d, 0)
        assert_partition(d, train, test)
        assert test.nnz > 0 and train.nnz > 0


@pytest.mark.parametrize("name", ["random", "users"])
def test_deterministic_under_random_state(name: str, data: Interactions) -> None:
    a = SPLITTERS[name](data, 11)[1]
    b = SPLITTERS[name](data, 11)[1]
    c = SPLITTERS[name](data, 12)[1]
    assert (a.matrix != b.matrix).nnz == 0
    assert (a.matrix != c.matrix).nnz > 0
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    x = SPLITTERS[name](data, g1)[1]
    y = SPLITTERS[name](data, g2)[1]
    assert (x.matrix != y.matrix).nnz == 0


@pytest.mark.parametrize(("n", "min_train"), [(1, 1), (2, 1), (3, 0), (2, 4)])
def test_leave_last_n_out_matches_oracle(tied: Interactions, n: int, min_train: int) -> None:
    train, test = split.leave_last_n_out(tied, n=n, min_train=min_train)
    ts = tied.timestamps
    rows = np.repeat(np.arange(tied.n_users), np.diff(tied.matrix.indptr))
    per_user: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for pos, (r, t) in enumerate(zip(rows, ts)):
        per_user[int(r)].append((int(t), pos))
    expected = np.zeros(tied.nnz, dtype=bool)
    for r, items in per_user.items():
        if len(items) < n + min_train:
            continue
        for _, pos in sorted(items)[-n:]:  # later timestamp, then later position
            expected[pos] = True
    assert test.nnz == expected.sum()
    exp_test = tied.subset(expected)
    assert (test.matrix != exp_test.matrix).nnz == 0
    assert np.array_equal(np.sort(test.timestamps), np.sort(exp_test.timestamps))
    assert_partition(tied, train, test)


def test_leave_last_n_out_small_users_stay_in_train() -> None:
    d = Interactions.from_arrays([1, 2, 2, 2], [1, 1, 2, 3], timestamps=[5, 1, 3, 2])
    train, test = split.leave_last_n_out(d, n=1)
    assert list(test.user_counts()) == [0, 1]
    assert int(test.item_index(test.to_pandas()["item"].iloc[0])) == d.item_index(2)
    assert list(train.user_counts()) == [1, 2]


def test_temporal_split_has_no_global_leakage(data: Interactions) -> None:
    train, test = split.temporal_split(data, test_fraction=0.2)
    report = split.check_leakage(train, test, per_user=False)
    assert report.n_leaking == 0 and report.fraction == 0.0
    assert test.nnz / data.nnz == pytest.approx(0.2, abs=0.02)
    assert train.timestamps.max() < test.timestamps.min()
    assert "No leakage" in str(report)


def test_temporal_split_explicit_cutoff(data: Interactions) -> None:
    cutoff = int(np.median(data.timestamps))
    train, test = split.temporal_split(data, cutoff=cutoff)
    assert (test.timestamps >= cutoff).all() and (train.timestamps < cutoff).all()
    when = pd.Timestamp(cutoff, unit="s")
    _, test2 = split.temporal_split(data, cutoff=when)
    assert test2.nnz == test.nnz


def test_random_holdout_leaks_on_timestamped_data(data: Interactions) -> None:
    train, test = split.random_holdout(data, 0.2, random_state=0)
    report = split.check_leakage(train, test)
    assert report.n_test == test.nnz
    assert report.n_leaking > 0.3 * test.nnz
    assert 0 < report.users_affected <= data.n_users
    assert report.fraction == pytest.approx(report.n_leaking / report.n_test)
    assert "Leakage:" in str(report) and "users" in str(report)


@pytest.mark.parametrize(("f", "min_train"), [(0.3, 2), (0.1, 1), (0.6, 0)])
def test_random_holdout_counts_per_user(tied: Interactions, f: float, min_train: int) -> None:
    train, test = split.random_holdout(tied, f, min_train=min_train, random_state=1)
    c = tied.user_counts()
    expected = np.where(c > min_train, np.minimum(np.maximum(np.floor(f * c + 0.5), 1), c - min_train), 0)
    assert np.array_equal(test.user_counts(), expected)
    assert (train.user_counts() >= np.minimum(c, min_train)).all()


def test_user_holdout_users_disjoint(data: Interactions) -> None:
    train, test = split.user_holdout(data, 0.25, random_state=0)
    tr_users = set(np.flatnonzero(train.user_counts()))
    te_users = set(np.flatnonzero(test.user_counts()))
    assert not tr_users & te_users
    assert len(te_users) == round(0.25 * data.n_users)
    assert (test.user_counts()[list(te_users)] == data.user_counts()[list(te_users)]).all()


def test_check_leakage_small_example() -> None:
    full = Interactions.from_arrays([1, 1, 1, 2, 2], [1, 2, 3, 1, 2], timestamps=[10, 20, 5, 1, 30])
    # CSR order: (1,1)@10 (1,2)@20 (1,3)@5 | (2,1)@1 (2,2)@30
    mask = np.array([True, True, False, False, True])
    train, test = full.subset(~mask), full.subset(mask)
    # train: (1,3)@5, (2,1)@1 ; test: (1,1)@10, (1,2)@20, (2,2)@30
    rep = split.check_leakage(train, test)
    assert (rep.n_test, rep.n_leaking, rep.users_affected) == (3, 0, 0)
    rep = split.check_leakage(test, train)  # reversed: (1,3)@5 < 20 leaks; (2,1)@1 < 30 leaks
    assert (rep.n_test, rep.n_leaking, rep.users_affected) == (2, 2, 2)
    rep = split.check_leakage(test, train, per_user=False)
    assert rep.n_leaking == 2 and rep.per_user is False
    # equal timestamps are not leakage (only strictly older ones are)
    ties = Interactions.from_arrays([1, 1, 2, 2], [1, 2, 1, 2], timestamps=[7, 7, 3, 9])
    rep = split.check_leakage(ties.subset(np.array([True, False, True, False])),
                              ties.subset(np.array([False, True, False, True])))
    assert (rep.n_test, rep.n_leaking) == (2, 0)
    rep = split.check_leakage(ties.subset(np.array([False, True, False, True])),
                              ties.subset(np.array([True, False, True, False])), per_user=False)
    assert (rep.n_leaking, rep.users_affected) == (2, 2)


def test_check_leakage_validates(data: Interactions) -> None:
    train, test = split.random_holdout(data, 0.2, random_state=0)
    other = make_synthetic(300, 201, mean_interactions=20, random_state=3)
    with pytest.raises(ValueError, match="different shapes"):
        split.check_leakage(train, other)
    renamed = Interactions.from_scipy(test.matrix, user_ids=test.user_ids + 1000)
    with pytest.raises(ValueError, match="timestamps"):
        split.check_leakage(train, renamed)
    ts = Interactions(test.matrix, test.user_ids + 1000, test.item_ids, timestamps=test.timestamps)
    with pytest.raises(ValueError, match="different user id maps"):
        split.check_leakage(train, ts)


def test_bad_arguments(data: Interactions) -> None:
    for bad in (0, 1, -0.1, 1.5, "x"):
        with pytest.raises(ValueError, match="test_fraction"):
            split.random_holdout(data, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="test_fraction"):
            split.user_holdout(data, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="test_fraction"):
            split.temporal_split(data, test_fraction=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        split.leave_last_n_out(data, n=0)
    with pytest.raises(ValueError, match="min_train"):
        split.random_holdout(data, 0.2, min_train=-1)
    empty = data.subset(np.zeros(data.nnz, dtype=bool))
    with pytest.raises(ValueError, match="no interactions to split"):
        split.random_holdout(empty)
    no_ts = Interactions.from_scipy(data.matrix)
    with pytest.raises(ValueError, match="random_holdout"):
        split.leave_last_n_out(no_ts)
    with pytest.raises(ValueError, match="needs timestamps"):
        split.temporal_split(no_ts)
    with pytest.raises(TypeError, match="random_state"):
        split.random_holdout(data, 0.2, random_state="seed")  # type: ignore[arg-type]
    one_user = Interactions.from_arrays([1, 1], [1, 2])
    with pytest.raises(ValueError, match="at least 2 users"):
        split.user_holdout(one_user)
    same_time = Interactions.from_arrays([1, 2], [1, 2], timestamps=[5, 5])
    with pytest.raises(ValueError, match="all timestamps are equal"):
        split.temporal_split(same_time)
