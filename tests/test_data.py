"""Tests of recforge.data.Interactions against slow, obvious oracles."""

from __future__ import annotations

import pickle
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.data import Interactions


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def random_frame(seed: int, n: int = 400, n_users: int = 30, n_items: int = 25) -> pd.DataFrame:
    """Random interactions with many duplicate (user, item) pairs and timestamp ties."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": rng.integers(0, n_users, n) * 7 + 3,  # non-contiguous raw ids
            "item": np.array([f"i{v:03d}" for v in rng.integers(0, n_items, n)], dtype=object),
            "w": rng.integers(-2, 6, n).astype(float),
            "r": rng.integers(1, 6, n).astype(float),
            "ts": rng.integers(0, 20, n),  # few distinct values -> ties
        }
    )


def as_dict(data: Interactions) -> dict[tuple, tuple]:
    df = data.to_pandas()
    cols = [c for c in ("weight", "rating", "timestamp") if c in df]
    return {
        (u, i): tuple(row)
        for u, i, row in zip(df["user"], df["item"], df[cols].itertuples(index=False, name=None))
    }


def oracle_aggregate(df: pd.DataFrame, aggregate: str, with_ts: bool) -> dict[tuple, tuple]:
    groups: dict[tuple, list] = defaultdict(list)
    for pos, (u, i, w, r, t) in enumerate(zip(df.user, df.item, df.w, df.r, df.ts)):
        groups[(u, i)].append((t if with_ts else 0, pos, w, r, t))
    out = {}
    for key, rows in groups.items():
        rows.sort(key=lambda x: (x[0], x[1]))  # by time, then input order
        first, last = rows[0], rows[-1]
        if aggregate == "sum":
            weight, ts, rating = sum(x[2] for x in rows), last[4], last[3]
        elif aggregate == "max":
            weight, ts, rating = max(x[2] for x in rows), last[4], last[3]
        elif aggregate == "last":
            weight, ts, rating = last[2], last[4], last[3]
        else:
            weight, ts, rating = first[2], first[4], first[3]
        out[key] = (weight, rating, ts) if with_ts else (weight, rating)
    return out


def naive_k_core(pairs: set[tuple[int, int]], k: int, k_items: int) -> set[tuple[int, int]]:
    pairs = set(pairs)
    while True:
        uc: dict[int, int] = defaultdict(int)
        ic: dict[int, int] = defaultdict(int)
        for u, i in pairs:
            uc[u] += 1
            ic[i] += 1
        kept = {(u, i) for u, i in pairs if uc[u] >= k and ic[i] >= k_items}
        if kept == pairs:
            return kept
        pairs = kept


def raw_pairs(data: Interactions) -> set[tuple]:
    df = data.to_pandas()
    return set(zip(df["user"], df["item"]))


# ----------------------------------------------------------------------------------------
# construction
# ----------------------------------------------------------------------------------------
def test_constructors_agree() -> None:
    df = random_frame(0)
    a = Interactions.from_pandas(df, weight_col="w")
    b = Interactions.from_arrays(df["user"].to_numpy(), df["item"].to_numpy(), df["w"].to_numpy())
    assert np.array_equal(a.user_ids, b.user_ids) and np.array_equal(a.item_ids, b.item_ids)
    assert (a.matrix != b.matrix).nnz == 0
    rows = a.user_index(df["user"].to_numpy())
    cols = a.item_index(df["item"].to_numpy())
    coo = sp.coo_matrix((df["w"].to_numpy(), (rows, cols)), shape=a.shape)  # duplicates summed
    c = Interactions.from_scipy(coo, user_ids=a.user_ids, item_ids=a.item_ids)
    assert np.array_equal(c.matrix.toarray(), a.matrix.toarray())
    assert np.array_equal(c.matrix.indptr, a.matrix.indptr)
    assert np.array_equal(c.matrix.indices, a.matrix.indices)
    dense = np.zeros(a.shape)
    np.add.at(dense, (rows, cols), df["w"].to_numpy())
    assert np.allclose(a.matrix.toarray(), dense)


def _csr_by_hand(data, indices, indptr, shape) -> sp.csr_matrix:
    """A CSR matrix from raw arrays, with scipy's own format flags left unset."""
    return sp.csr_matrix((np.asarray(data, float), np.asarray(indices), np.asarray(indptr)), shape=shape)


@pytest.mark.parametrize(
    "indices, indptr",
    [
        ([0, 2, 1, 3, 0], [0, 2, 4, 5]),  # sorted rows, no duplicates: the canonical fast path
        ([2, 0, 3, 1, 0], [0, 2, 4, 5]),  # unsorted rows
        ([1, 1, 0, 3, 3], [0, 2, 4, 5]),  # duplicate entries in rows 0 and 1
        ([0, 2, 1, 3, 0], [0, 2, 2, 5]),  # an empty row, a row boundary between 1 and 3
        ([3, 0, 1, 2, 3], [0, 1, 1, 5]),  # a row ending in the last column before a row of 0
    ],
)
def test_from_scipy_csr_matches_coordinate_oracle(indices, indptr) -> None:
    """CSR input, canonical or not, gives the matrix that summing the coordinates gives."""
    values = [1.5, 2.0, -1.0, 4.0, 0.0]
    m = _csr_by_hand(values, indices, indptr, (3, 4))
    rows = np.repeat(np.arange(3), np.diff(indptr))
    dense = np.zeros((3, 4))
    np.add.at(dense, (rows, np.asarray(indices)), values)
    got = Interactions.from_scipy(m).matrix
    assert got.has_canonical_format and got.dtype == np.float32
    for r in range(3):
        assert np.all(np.diff(got.indices[got.indptr[r] : got.indptr[r + 1]]) > 0)
    assert np.array_equal(got.toarray(), dense.astype(np.float32))
    coo = Interactions.from_scipy(m.tocoo()).matrix
    assert np.array_equal(got.indptr, coo.indptr) and np.array_equal(got.indices, coo.indices)
    assert np.array_equal(got.data, coo.data)


def test_from_scipy_csr_does_not_share_the_callers_arrays() -> None:
    m = sp.random(20, 15, density=0.3, format="csr", random_state=3, dtype=np.float32)
    data = Interactions.from_scipy(m)
    before = data.matrix.toarray()
    m.data[:] = 7.0
    m.indices[:] = 0
    assert np.array_equal(data.matrix.toarray(), before)


def test_from_scipy_csr_checks_values_and_aggregate() -> None:
    m = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN"):
        Interactions.from_scipy(m)
    with pytest.raises(ValueError, match="aggregate"):
        Interactions.from_scipy(sp.eye(3, format="csr"), aggregate="mean")


def test_matrix_is_canonical_float32() -> None:
    a = Interactions.from_pandas(random_frame(1), weight_col="w")
    m = a.matrix
    assert isinstance(m, sp.csr_matrix) and m.dtype == np.float32
    assert m.has_canonical_format
    for r in range(m.shape[0]):
        idx = m.indices[m.indptr[r] : m.indptr[r + 1]]
        assert np.all(np.diff(idx) > 0)


def test_ids_sorted_and_dtypes() -> None:
    df = random_frame(2)
    a = Interactions.from_pandas(df, aggregate="max")
    assert a.user_ids.dtype == np.int64
    assert a.item_ids.dtype == object
    assert np.array_equal(a.user_ids, np.unique(df["user"]))
    assert list(a.item_ids) == sorted(set(df["item"]))
    assert np.all(a.matrix.data == 1.0)


@pytest.mark.parametrize("aggregate", ["sum", "max", "last", "first"])
@pytest.mark.parametrize("with_ts", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aggregation_matches_oracle(aggregate: str, with_ts: bool, seed: int) -> None:
    df = random_frame(seed)
    data = Interactions.from_pandas(
        df,
        weight_col="w",
        rating_col="r",
        timestamp_col="ts" if with_ts else None,
        aggregate=aggregate,
    )
    expected = oracle_aggregate(df, aggregate, with_ts)
    got = as_dict(data)
    assert got.keys() == expected.keys()
    for key, exp in expected.items():
        assert got[key] == pytest.approx(exp), (key, aggregate)


def test_weights_default_to_ratings_then_ones() -> None:
    df = pd.DataFrame({"user": [1, 2], "item": [1, 1], "r": [4.5, 2.0]})
    assert list(Interactions.from_pandas(df, rating_col="r").matrix.data) == [4.5, 2.0]
    assert list(Interactions.from_pandas(df).matrix.data) == [1.0, 1.0]


def test_alignment_round_trip() -> None:
    rng = np.random.default_rng(5)
    pairs = rng.choice(40 * 30, size=300, replace=False)
    df = pd.DataFrame(
        {
            "user": pairs // 30,
            "item": pairs % 30 + 100,
            "w": rng.random(300).astype(np.float32),
            "r": rng.integers(1, 6, 300).astype(np.float32),
            "ts": rng.random(300) * 1e6,
        }
    ).sample(frac=1.0, random_state=0)
    data = Interactions.from_pandas(df, weight_col="w", rating_col="r", timestamp_col="ts")
    assert data.timestamps is not None and data.timestamps.dtype == np.float64
    assert data.ratings is not None and data.ratings.dtype == np.float32
    out = data.to_pandas()
    assert list(out.columns) == ["user", "item", "weight", "rating", "timestamp"]
    merged = out.merge(df, on=["user", "item"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == 300
    assert np.allclose(merged["weight"], merged["w"])
    assert np.allclose(merged["rating"], merged["r"])
    assert np.array_equal(merged["timestamp"], merged["ts"])
    # entries follow CSR order
    rows = np.repeat(np.arange(data.n_users), np.diff(data.matrix.indptr))
    assert np.array_equal(out["user"].to_numpy(), data.user_ids[rows])
    assert np.array_equal(out["item"].to_numpy(), data.item_ids[data.matrix.indices])


def test_int_timestamps_stay_int64_and_datetimes_become_seconds() -> None:
    df = pd.DataFrame(
        {"user": [1, 1], "item": [1, 2], "ts": np.array([5, 7], dtype=np.int32)}
    )
    assert Interactions.from_pandas(df, timestamp_col="ts").timestamps.dtype == np.int64
    df["when"] = pd.to_datetime(["2020-01-01 00:00:00", "2020-01-02 00:00:01"])
    data = Interactions.from_pandas(df, timestamp_col="when")
    assert list(data.timestamps) == [1577836800, 1577836800 + 86401]


def test_explicit_zeros_kept() -> None:
    data = Interactions.from_arrays([1, 1, 2], [1, 2, 2], [0.0, 1.0, 0.0])
    assert data.nnz == 3
    m = sp.csr_matrix(([0.0, 2.0], ([0, 1], [0, 1])), shape=(2, 2))
    assert Interactions.from_scipy(m).nnz == 2


# ----------------------------------------------------------------------------------------
# id maps
# ----------------------------------------------------------------------------------------
def test_id_maps_both_directions() -> None:
    df = random_frame(3)
    data = Interactions.from_pandas(df)
    raw = data.user_ids[::-1]
    idx = data.user_index(raw)
    assert idx.dtype == np.int64
    assert np.array_equal(data.user_ids[idx], raw)
    assert np.array_equal(data.item_ids[data.item_index(list(data.item_ids))], data.item_ids)
    scalar = data.user_index(data.user_ids[4])
    assert int(scalar) == 4 and np.ndim(scalar) == 0
    assert int(data.user_index(int(data.user_ids[2]))) == 2
    assert int(data.item_index("i003")) == list(data.item_ids).index("i003")


def test_user_index_unknown_raises_with_examples() -> None:
    data = Interactions.from_arrays(["a", "b"], ["x", "y"])
    with pytest.raises(IndexError, match=r"unknown user id.*'zz'.*user_ids="):
        data.user_index(["a", "zz"])
    with pytest.raises(IndexError, match="'q'"):
        data.item_index("q")
    with pytest.raises(IndexError, match=r"7 unknown item id.*\.\.\."):
        data.item_index([f"n{i}" for i in range(7)])


def test_explicit_universe_fixes_order_and_shape() -> None:
    users = np.array([30, 10, 20, 40])
    data = Interactions.from_arrays([10, 20, 10], ["b", "a", "a"], user_ids=users, item_ids=["b", "a", "c"])
    assert data.shape == (4, 3)
    assert np.array_equal(data.user_ids, users)
    assert list(data.user_counts()) == [0, 2, 1, 0]
    assert list(data.item_counts()) == [1, 2, 0]
    assert data.matrix[1, 0] == 1 and data.matrix[1, 1] == 1 and data.matrix[2, 1] == 1


def test_unknown_ids_raise_or_drop() -> None:
    df = pd.DataFrame({"user": [1, 2, 3, 9], "item": [1, 1, 8, 1], "r": [1, 2, 3, 4]})
    with pytest.raises(IndexError, match=r"user id.*\[9\].*unknown='drop'"):
        Interactions.from_pandas(df, user_ids=[1, 2, 3])
    with pytest.raises(IndexError, match=r"item id.*\[8\]"):
        Interactions.from_pandas(df, item_ids=[1])
    data = Interactions.from_pandas(df, rating_col="r", user_ids=[1, 2, 3], item_ids=[1], unknown="drop")
    assert data.shape == (3, 1) and data.nnz == 2
    assert list(data.ratings) == [1.0, 2.0]
    with pytest.raises(ValueError, match="no interactions"):
        Interactions.from_pandas(df, user_ids=[100], unknown="drop")
    with pytest.raises(ValueError, match="unknown must be"):
        Interactions.from_pandas(df, unknown="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be unique"):
        Interactions.from_pandas(df, user_ids=[1, 1, 2, 3, 9])


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
def test_nan_and_inf_weights_raise() -> None:
    df = pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 1], "w": [1.0, np.nan, np.inf]})
    with pytest.raises(ValueError, match=r"weight column 'w' has 2 rows with NaN or infinite"):
        Interactions.from_pandas(df, weight_col="w")
    with pytest.raises(ValueError, match=r"weights has 1 row with NaN"):
        Interactions.from_arrays([1, 2], [1, 1], [np.nan, 1.0])


def test_nan_ratings_raise() -> None:
    df = pd.DataFrame({"user": [1, 2], "item": [1, 1], "r": [np.nan, 3.0]})
    with pytest.raises(ValueError, match=r"rating column 'r' has 1 row with NaN"):
        Interactions.from_pandas(df, rating_col="r")


def test_empty_input_raises() -> None:
    with pytest.raises(ValueError, match="no interactions"):
        Interactions.from_arrays([], [])
    with pytest.raises(ValueError, match="no interactions"):
        Interactions.from_pandas(pd.DataFrame({"user": [], "item": []}))
    with pytest.raises(ValueError, match="no interactions"):
        Interactions.from_scipy(sp.csr_matrix((3, 4)))


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match=r"different lengths \(3 vs 2\)"):
        Interactions.from_arrays([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"weights has length 1"):
        Interactions.from_arrays([1, 2], [1, 2], [1.0])
    with pytest.raises(ValueError, match=r"timestamps has length 3"):
        Interactions.from_arrays([1, 2], [1, 2], timestamps=[1, 2, 3])


def test_missing_ids_raise() -> None:
    with pytest.raises(ValueError, match=r"missing ids in user column 'user': 1 row None/NaN"):
        Interactions.from_pandas(pd.DataFrame({"user": ["a", None], "item": [1, 2]}))
    with pytest.raises(ValueError, match=r"missing ids in items: 1 row NaN"):
        Interactions.from_arrays([1, 2], [1.0, np.nan])


def test_other_argument_errors() -> None:
    df = pd.DataFrame({"user": [1], "item": [1]})
    with pytest.raises(ValueError, match="aggregate must be one of"):
        Interactions.from_pandas(df, aggregate="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"weight_col='w' is not a column"):
        Interactions.from_pandas(df, weight_col="w")
    with pytest.raises(TypeError, match="scipy.sparse"):
        Interactions.from_scipy(np.eye(3))
    with pytest.raises(ValueError, match="2 user_ids"):
        Interactions.from_scipy(sp.eye(3, format="csr"), user_ids=[1, 2])
    with pytest.raises(ValueError, match="mix several types"):
        Interactions.from_arrays(np.array([1, "a"], dtype=object), [1, 2])


def test_integral_float_ids_become_int() -> None:
    data = Interactions.from_arrays(np.array([1.0, 2.0]), [3, 4])
    assert data.user_ids.dtype == np.int64


# ----------------------------------------------------------------------------------------
# features
# ----------------------------------------------------------------------------------------
def test_features_indexed_by_id_are_reindexed() -> None:
    items = pd.DataFrame({"genre": ["x", "y", "z"]}, index=[30, 10, 99])
    data = Interactions.from_arrays([1, 1, 2], [10, 20, 30], item_features=items)
    feats = data.item_features
    assert list(feats.index) == [10, 20, 30]
    assert feats.loc[10, "genre"] == "y" and feats.loc[30, "genre"] == "x"
    assert pd.isna(feats.loc[20, "genre"])


def test_features_positional() -> None:
    arr = np.arange(6.0).reshape(3, 2)
    data = Interactions.from_arrays(["a", "b", "c"], [1, 1, 1], user_features=arr)
    assert list(data.user_features.index) == ["a", "b", "c"]
    assert list(data.user_features.columns) == ["f0", "f1"]
    assert data.user_features.loc["c", "f1"] == 5.0
    frame = pd.DataFrame({"age": [20, 30, 40]})  # default RangeIndex -> positional
    data = Interactions.from_arrays([7, 8, 9], [1, 1, 1], user_features=frame)
    assert data.user_features.loc[9, "age"] == 40
    with pytest.raises(ValueError, match="has 2 rows but there are 3 users"):
        Interactions.from_arrays([7, 8, 9], [1, 1, 1], user_features=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="none of its index values match the user ids"):
        Interactions.from_arrays([7, 8, 9], [1, 1, 1], user_features=pd.DataFrame({"a": [1]}, index=["q"]))
    # a RangeIndex table of another length is aligned by id (items 1 and 3 of 0..4)
    table = pd.DataFrame({"price": [10.0, 11.0, 12.0, 13.0, 14.0]})
    data = Interactions.from_arrays([1, 2], [3, 1], item_features=table)
    assert list(data.item_features["price"]) == [11.0, 13.0]


# ----------------------------------------------------------------------------------------
# subset / filter / k_core
# ----------------------------------------------------------------------------------------
def test_subset_keeps_space() -> None:
    data = Interactions.from_pandas(random_frame(4), weight_col="w", rating_col="r", timestamp_col="ts",
                                    item_features=np.ones((25, 1)))
    mask = np.random.default_rng(0).random(data.nnz) < 0.3
    sub = data.subset(mask)
    assert sub.shape == data.shape and sub.user_ids is data.user_ids
    assert sub.item_features is data.item_features
    assert sub.nnz == mask.sum()
    full = data.to_pandas()[mask].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub.to_pandas(), full)
    assert data.subset(np.zeros(data.nnz, dtype=bool)).nnz == 0
    with pytest.raises(ValueError, match="shape"):
        data.subset(np.ones(3, dtype=bool))
    with pytest.raises(TypeError, match="boolean"):
        data.subset(np.ones(data.nnz, dtype=int))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_filter_matches_oracle(seed: int) -> None:
    df = random_frame(seed, n=250, n_users=40, n_items=30)
    data = Interactions.from_pandas(df, weight_col="w", timestamp_col="ts", aggregate="last",
                                    user_features=np.arange(40.0)[: df["user"].nunique()])
    mu, mi = 5, 4
    uc, ic = defaultdict(int), defaultdict(int)
    pairs = raw_pairs(data)
    for u, i in pairs:
        uc[u] += 1
        ic[i] += 1
    expected = {(u, i) for u, i in pairs if uc[u] >= mu and ic[i] >= mi}
    out = data.filter(mu, mi)
    assert raw_pairs(out) == expected
    assert list(out.user_ids) == sorted(u for u in uc if uc[u] >= mu)
    assert list(out.item_ids) == sorted(i for i in ic if ic[i] >= mi)
    # values stay aligned with their entries after re-indexing
    before = as_dict(data)
    for key, value in as_dict(out).items():
        assert before[key] == value
    assert np.array_equal(out.user_features.index, out.user_ids)
    assert np.array_equal(out.user_features.to_numpy(), data.user_features.loc[out.user_ids].to_numpy())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(("k", "k_items"), [(3, None), (4, 2), (2, 6)])
def test_k_core_matches_naive(seed: int, k: int, k_items: int | None) -> None:
    df = random_frame(seed, n=300, n_users=50, n_items=40)
    data = Interactions.from_pandas(df, rating_col="r", aggregate="first")
    out = data.k_core(k, k_items=k_items)
    ki = k if k_items is None else k_items
    expected = naive_k_core(raw_pairs(data), k, ki)
    assert raw_pairs(out) == expected
    # invariant, and no empty rows/columns left
    assert out.user_counts().min(initial=k) >= k
    assert out.item_counts().min(initial=ki) >= ki
    assert out.shape == (len({u for u, _ in expected}), len({i for _, i in expected}))


def test_k_core_can_empty_out() -> None:
    data = Interactions.from_arrays([1, 2], [1, 2])
    with pytest.warns(UserWarning, match="empty"):
        out = data.k_core(3)
    assert out.nnz == 0 and out.shape == (0, 0)


def test_counts() -> None:
    data = Interactions.from_arrays([1, 1, 1, 2], [5, 6, 7, 5], user_ids=[1, 2, 3])
    assert data.user_counts().dtype == np.int64
    assert list(data.user_counts()) == [3, 1, 0]
    assert list(data.item_counts()) == [2, 1, 1]


# ----------------------------------------------------------------------------------------
# repr, pickle
# ----------------------------------------------------------------------------------------
def test_repr_and_properties() -> None:
    users = np.repeat(np.arange(1000), 2)
    items = np.concatenate([np.arange(1000), np.arange(1000) + 1000])
    data = Interactions.from_arrays(users, items, timestamps=np.arange(2000),
                                    item_features=pd.DataFrame({"a": np.zeros(2000)}))
    text = repr(data)
    assert "n_users=1,000" in text and "n_items=2,000" in text and "nnz=2,000" in text
    assert "density=0.100%" in text and "ratings=no" in text and "timestamps=yes" in text
    assert "user_features=no" in text and "item_features=1 column)" in text
    assert len(data) == data.nnz == 2000 and data.shape == (1000, 2000)
    assert data.density == pytest.approx(0.001)


def test_pickle_round_trip() -> None:
    data = Interactions.from_pandas(random_frame(6), weight_col="w", rating_col="r", timestamp_col="ts",
                                    item_features=np.ones((25, 2)))
    data.user_index(data.user_ids[:3])
    data.item_index(data.item_ids[0])  # build the lazy caches
    back = pickle.loads(pickle.dumps(data))
    assert np.array_equal(back.user_ids, data.user_ids) and np.array_equal(back.item_ids, data.item_ids)
    assert (back.matrix != data.matrix).nnz == 0
    assert np.array_equal(back.timestamps, data.timestamps)
    assert np.array_equal(back.ratings, data.ratings)
    pd.testing.assert_frame_equal(back.item_features, data.item_features)
    assert int(back.item_index(data.item_ids[5])) == 5
    assert repr(back) == repr(data)


def test_construction_is_vectorized_enough() -> None:
    # a functional check on a sizeable input (not a timing assertion)
    rng = np.random.default_rng(0)
    n = 200_000
    data = Interactions.from_arrays(rng.integers(0, 5000, n), rng.integers(0, 3000, n),
                                    timestamps=rng.integers(0, 10**6, n), aggregate="last")
    assert data.nnz == len(set(zip(*np.nonzero(data.matrix))))
    assert data.matrix.sum() == data.nnz
