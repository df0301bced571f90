"""Train/test splitters for :class:`~recforge.data.Interactions`.

Every splitter returns ``(train, test)``: two :class:`~recforge.data.Interactions` that
partition the stored entries of the input exactly and keep its id maps, shape and feature
tables (they are built with :meth:`Interactions.subset`), so user/item indices mean the
same thing in both. Random splitters are deterministic for a given ``random_state``
(an int, a ``numpy.random.Generator`` or ``None`` for fresh entropy).

:func:`check_leakage` reports test interactions that happened before training ones.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .data import Interactions

__all__ = [
    "LeakageReport",
    "check_leakage",
    "leave_last_n_out",
    "random_holdout",
    "temporal_split",
    "user_holdout",
]

RandomState = int | np.random.Generator | None


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def _check_data(data: Interactions) -> None:
    if not isinstance(data, Interactions):
        raise TypeError(f"data must be an Interactions, got {type(data).__name__}")
    if data.nnz == 0:
        raise ValueError("no interactions to split: the data is empty")


def _check_fraction(value: float, name: str = "test_fraction") -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not 0.0 < f < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return f


def _check_int(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _rng(random_state: RandomState) -> np.random.Generator:
    if random_state is None or isinstance(random_state, (int, np.integer, np.random.Generator)):
        return np.random.default_rng(random_state)
    raise TypeError(
        f"random_state must be an int, a numpy.random.Generator or None, "
        f"got {type(random_state).__name__}"
    )


def _timestamps(data: Interactions, func: str, alternative: str) -> np.ndarray:
    if data.timestamps is None:
        raise ValueError(
            f"{func} needs timestamps, but this Interactions has none; build it with "
            f"timestamps (timestamp_col=... / timestamps=...) or use {alternative}"
        )
    return data.timestamps


def _entry_rows(data: Interactions) -> np.ndarray:
    counts = np.diff(data.matrix.indptr)
    return np.repeat(np.arange(data.n_users, dtype=np.int64), counts)


def _to_timestamp(value: Any) -> float | int:
    """A cutoff as a number on the timestamp scale (datetimes -> Unix seconds)."""
    if isinstance(value, (np.datetime64, _dt.datetime, _dt.date, pd.Timestamp, str)):
        ts = pd.Timestamp(value)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return int(ts.as_unit("ns").value // 1_000_000_000)
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return value
    raise ValueError(f"cutoff must be a number or a datetime, got {value!r}")


# ----------------------------------------------------------------------------------------
# splitters
# ----------------------------------------------------------------------------------------
def temporal_split(
    data: Interactions,
    *,
    cutoff: Any = None,
    test_fraction: float = 0.2,
) -> tuple[Interactions, Interactions]:
    """Split at one global point in time.

    Entries with ``timestamp >= cutoff`` go to test, the rest to train, so no training
    interaction is later than any test interaction.

    Parameters
    ----------
    data : Interactions
        Must have timestamps.
    cutoff : number or datetime-like, optional
        The split time, on the scale of ``data.timestamps`` (datetimes are converted to
        Unix seconds). If ``None``, the timestamp quantile is chosen so that about
        ``test_fraction`` of the entries are in test (ties at the cutoff all go to test).
    test_fraction : float
        Target test share when ``cutoff`` is ``None``.

    Returns
    -------
    (train, test) : tuple of Interactions

    Raises
    ------
    ValueError
        No timestamps, empty data, a fraction outside (0, 1), or timestamps too coarse to
        put anything in train.
    """
    _check_data(data)
    ts = _timestamps(data, "temporal_split", "random_holdout or user_holdout")
    if cutoff is None:
        f = _check_fraction(test_fraction)
        ordered = np.sort(ts)
        position = min(int(np.floor(len(ordered) * (1.0 - f) + 0.5)), len(ordered) - 1)
        threshold = ordered[position]
        if threshold == ordered[0]:
            threshold_next = ordered[ordered > threshold]
            if threshold_next.size == 0:
                raise ValueError(
                    "temporal_split cannot split: all timestamps are equal; "
                    "use random_holdout instead"
                )
            threshold = threshold_next[0]
    else:
        threshold = _to_timestamp(cutoff)
    test_mask = ts >= threshold
    return data.subset(~test_mask), data.subset(test_mask)


def leave_last_n_out(
    data: Interactions,
    n: int = 1,
    *,
    min_train: int = 1,
) -> tuple[Interactions, Interactions]:
    """Per user, hold out the ``n`` most recent interactions.

    Ties in timestamp are broken by storage (CSR) order: an entry stored later counts as
    later. Users with fewer than ``n + min_train`` interactions keep all of them in train
    (and have nothing in test).

    Parameters
    ----------
    data : Interactions
        Must have timestamps.
    n : int
        Interactions per user to hold out (>= 1).
    min_train : int
        Interactions a user must keep in train to be eligible for the test set (>= 0).

    Returns
    -------
    (train, test) : tuple of Interactions
    """
    _check_data(data)
    n = _check_int(n, "n", 1)
    min_train = _check_int(min_train, "min_train", 0)
    ts = _timestamps(data, "leave_last_n_out", "random_holdout")
    indptr = data.matrix.indptr.astype(np.int64)
    rows = _entry_rows(data)
    # lexsort is stable, so equal timestamps keep CSR order; rows stay grouped as in CSR.
    order = np.lexsort((ts, rows))
    position = np.arange(data.nnz, dtype=np.int64)
    from_end = indptr[rows + 1] - 1 - position  # 0 = latest entry of that user (in `order`)
    counts = np.diff(indptr)
    test_sorted = (from_end < n) & (counts[rows] >= n + min_train)
    test_mask = np.zeros(data.nnz, dtype=bool)
    test_mask[order] = test_sorted
    return data.subset(~test_mask), data.subset(test_mask)


def random_holdout(
    data: Interactions,
    test_fraction: float = 0.2,
    *,
    min_train: int = 1,
    random_state: RandomState = None,
) -> tuple[Interactions, Interactions]:
    """Per user, hold out a random fraction of the interactions.

    A user with ``c`` interactions gets ``round(test_fraction * c)`` test entries, at least
    one if ``c > min_train``, and never so many that fewer than ``min_train`` stay in
    train. Users with ``c <= min_train`` stay entirely in train.

    Parameters
    ----------
    data : Interactions
    test_fraction : float
        In (0, 1).
    min_train : int
        Interactions each user keeps in train (>= 0).
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    (train, test) : tuple of Interactions
    """
    _check_data(data)
    f = _check_fraction(test_fraction)
    min_train = _check_int(min_train, "min_train", 0)
    rng = _rng(random_state)
    indptr = data.matrix.indptr.astype(np.int64)
    counts = np.diff(indptr)
    n_test = np.floor(f * counts + 0.5).astype(np.int64)
    n_test = np.minimum(np.maximum(n_test, 1), counts - min_train)
    n_test = np.where(counts > min_train, n_test, 0)
    rows = _entry_rows(data)
    order = np.lexsort((rng.random(data.nnz), rows))
    position = np.arange(data.nnz, dtype=np.int64) - indptr[rows]
    test_mask = np.zeros(data.nnz, dtype=bool)
    test_mask[order] = position < n_test[rows]
    return data.subset(~test_mask), data.subset(test_mask)


def user_holdout(
    data: Interactions,
    test_fraction: float = 0.2,
    *,
    random_state: RandomState = None,
) -> tuple[Interactions, Interactions]:
    """Hold out whole users (cold-start evaluation).

    ``round(test_fraction * n_active)`` users with at least one interaction (at least one
    user, and at least one left for train) are chosen at random; all of their interactions
    go to test and none to train.

    Parameters
    ----------
    data : Interactions
    test_fraction : float
        Share of users to hold out, in (0, 1).
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    (train, test) : tuple of Interactions
    """
    _check_data(data)
    f = _check_fraction(test_fraction)
    rng = _rng(random_state)
    active = np.flatnonzero(np.diff(data.matrix.indptr) > 0)
    if active.size < 2:
        raise ValueError(
            f"user_holdout needs at least 2 users with interactions, found {active.size}"
        )
    k = int(np.clip(np.floor(f * active.size + 0.5), 1, active.size - 1))
    chosen = np.zeros(data.n_users, dtype=bool)
    chosen[rng.choice(active, size=k, replace=False)] = True
    test_mask = chosen[_entry_rows(data)]
    return data.subset(~test_mask), data.subset(test_mask)


# ----------------------------------------------------------------------------------------
# leakage
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeakageReport:
    """How many test interactions are older than training interactions.

    Attributes
    ----------
    n_test : int
        Test interactions examined.
    n_leaking : int
        Test interactions older than the reference training time.
    fraction : float
        ``n_leaking / n_test`` (0 when the test set is empty).
    users_affected : int
        Users with at least one leaking test interaction.
    per_user : bool
        Whether the reference was each user's latest training interaction (``True``) or
        the latest training interaction overall (``False``).
    """

    n_test: int
    n_leaking: int
    fraction: float
    users_affected: int
    per_user: bool = True

    def __str__(self) -> str:
        reference = (
            "the latest training interaction of the same user"
            if self.per_user
            else "the latest training interaction overall"
        )
        if self.n_leaking == 0:
            return (
                f"No leakage: none of the {self.n_test:,} test interactions is older than "
                f"{reference}."
            )
        return (
            f"Leakage: {self.n_leaking:,} of {self.n_test:,} test interactions "
            f"({100 * self.fraction:.2f}%) are older than {reference}; "
            f"{self.users_affected:,} {'user' if self.users_affected == 1 else 'users'} affected."
        )


def check_leakage(
    train: Interactions,
    test: Interactions,
    *,
    per_user: bool = True,
) -> LeakageReport:
    """Count test interactions that happened before training interactions.

    A test interaction leaks if its timestamp is strictly older than the latest training
    interaction of the same user (``per_user=True``) or than the latest training
    interaction overall (``per_user=False``). A model trained on such a split has seen
    "the future" relative to part of its test set.

    Parameters
    ----------
    train, test : Interactions
        Must have timestamps and share id maps and shape (as splitters produce).
    per_user : bool

    Returns
    -------
    LeakageReport

    Raises
    ------
    ValueError
        Missing timestamps, or different shapes / id maps.
    """
    for name, part in (("train", train), ("test", test)):
        if not isinstance(part, Interactions):
            raise TypeError(f"{name} must be an Interactions, got {type(part).__name__}")
        if part.timestamps is None:
            raise ValueError(f"check_leakage needs timestamps, but {name} has none")
    if train.shape != test.shape:
        raise ValueError(
            f"train and test have different shapes {train.shape} vs {test.shape}; "
            "they must come from the same splitter call"
        )
    for what, a, b in (("user", train.user_ids, test.user_ids), ("item", train.item_ids, test.item_ids)):
        if a is not b and not np.array_equal(a, b):
            raise ValueError(
                f"train and test have different {what} id maps; "
                "they must come from the same splitter call"
            )
    test_ts = test.timestamps
    assert test_ts is not None and train.timestamps is not None
    n_test = test.nnz
    if n_test == 0 or train.nnz == 0:
        return LeakageReport(n_test, 0, 0.0, 0, per_user)
    test_rows = _entry_rows(test)
    if per_user:
        train_indptr = train.matrix.indptr.astype(np.int64)
        has_train = np.diff(train_indptr) > 0
        latest = np.full(train.n_users, -np.inf)
        starts = train_indptr[:-1][has_train]
        latest[has_train] = np.maximum.reduceat(train.timestamps, starts)
        leaking = test_ts < latest[test_rows]
    else:
        leaking = test_ts < train.timestamps.max()
    n_leaking = int(leaking.sum())
    users_affected = int(np.unique(test_rows[leaking]).size)
    return LeakageReport(n_test, n_leaking, n_leaking / n_test, users_affected, per_user)


# ----------------------------------------------------------------------------------------
# cold items
# ----------------------------------------------------------------------------------------
def item_holdout(
    data: Interactions,
    test_fraction: float = 0.2,
    *,
    random_state: RandomState = None,
) -> tuple[Interactions, Interactions]:
    """Hold out whole items (item cold-start evaluation).

    ``round(test_fraction * n_active)`` items with at least one interaction (at least one,
    and at least one left for train) are chosen at random; all of their interactions go to
    test and none to train, so they appear only in test. Both parts keep the full id maps (the
    held-out items are empty columns of train), so models that score items from their
    features can rank them and evaluation sees the same catalog.

    Returns
    -------
    (train, test) : tuple of Interactions
    """
    _check_data(data)
    f = _check_fraction(test_fraction)
    rng = _rng(random_state)
    counts = np.bincount(data.matrix.indices, minlength=data.n_items)
    active = np.flatnonzero(counts > 0)
    if active.size < 2:
        raise ValueError(f"item_holdout needs at least 2 items with interactions, found {active.size}")
    k = int(np.clip(np.floor(f * active.size + 0.5), 1, active.size - 1))
    chosen = np.zeros(data.n_items, dtype=bool)
    chosen[rng.choice(active, size=k, replace=False)] = True
    test_mask = chosen[data.matrix.indices]
    return data.subset(~test_mask), data.subset(test_mask)

__all__.append("item_holdout")
