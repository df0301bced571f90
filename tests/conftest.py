from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data import Interactions


def shared_data(name: str) -> Path:
    """A folder of the shared real data sets, or skip the test with the reason."""
    root = os.environ.get("RECFORGE_DATA")
    candidates = [Path(root)] if root else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" for p in here.parents]
    for base in candidates:
        if (base / name).is_dir():
            return base / name
    pytest.skip(f"data set {name!r} not found; set RECFORGE_DATA to the folder that holds it")


@pytest.fixture
def small_interactions() -> Interactions:
    """60 users x 40 items with string ids, skewed popularity and one user with no interactions."""
    rng = np.random.default_rng(7)
    n_users, n_items = 60, 40
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop /= pop.sum()
    rows = []
    for u in range(n_users - 1):
        count = int(rng.integers(3, 15))
        items = rng.choice(n_items, size=count, replace=False, p=pop)
        for t, i in enumerate(items):
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), 1000 * u + t))
    df = pd.DataFrame(rows, columns=["user", "item", "rating", "ts"])
    user_ids = np.array([f"u{u}" for u in range(n_users)], dtype=object)
    item_ids = np.array([f"i{i}" for i in range(n_items)], dtype=object)
    return Interactions.from_pandas(
        df, rating_col="rating", timestamp_col="ts", user_ids=user_ids, item_ids=item_ids
    )
