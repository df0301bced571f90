"""Tests of recforge.datasets: readers (real data when present), fetch (no network), synthetic."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recforge import datasets, split
from recforge.data import Interactions
from recforge.datasets import (
    DownloadError,
    fetch_movielens,
    make_synthetic,
    read_implicit_lists,
    read_movielens,
    shared_data_path,
)


def shared(name: str) -> Path:
    path = shared_data_path(name)
    if path is None:
        pytest.skip(f"shared dataset {name!r} not found; set RECFORGE_DATA to the folder holding it")
    return path


# ----------------------------------------------------------------------------------------
# real data (skipped when absent)
# ----------------------------------------------------------------------------------------
def test_read_ml_100k() -> None:
    data = read_movielens(shared("ml-100k"))
    assert data.shape == (943, 1682) and data.nnz == 100_000
    assert data.ratings is not None and set(np.unique(data.ratings)) == {1, 2, 3, 4, 5}
    assert np.array_equal(data.matrix.data, data.ratings)
    assert data.timestamps.dtype == np.int64
    feats = data.item_features
    genre_cols = [c for c in feats.columns if c.startswith("genre_")]
    assert len(genre_cols) == 19 and "genre_Sci-Fi" in genre_cols
    assert feats.loc[1, "title"] == "Toy Story (1995)" and feats.loc[1, "year"] == 1995
    assert feats.loc[1, "genre_Animation"] == 1 and feats.loc[1, "genre_Drama"] == 0
    users = data.user_features
    assert list(users.columns) == ["age", "gender", "occupation", "zip"]
    assert users.loc[1, "age"] == 24 and users.loc[1, "occupation"] == "technician"
    # the canonical rating of user 196 on item 242 (first line of u.data)
    assert data.matrix[data.user_index(196), data.item_index(242)] == 3


def test_read_ml_latest_small() -> None:
    data = read_movielens(shared("ml-latest-small"))
    assert data.shape == (610, 9724) and data.nnz == 100_836
    assert data.ratings.min() == 0.5 and data.ratings.max() == 5.0
    feats = data.item_features
    assert "genre_Comedy" in feats.columns and "genre_(no genres listed)" not in feats.columns
    assert feats.loc[1, "genre_Comedy"] == 1 and feats.loc[1, "year"] == 1995
    assert data.user_features is None


def test_read_gowalla_train_and_test_share_maps() -> None:
    folder = shared("gowalla-lightgcn")
    train = read_implicit_lists(folder / "train.txt")
    assert train.n_users == 29_858 and train.nnz == 719_081 and train.n_items == 40_979
    assert np.all(train.matrix.data == 1.0)
    with pytest.raises(IndexError, match="item id"):
        read_implicit_lists(folder / "test.txt", user_ids=train.user_ids, item_ids=train.item_ids)
    test = read_implicit_lists(
        folder / "test.txt", user_ids=train.user_ids, item_ids=train.item_ids, unknown="drop"
    )
    assert test.shape == train.shape and 0 < test.nnz < 217_242
    assert (train.matrix.multiply(test.matrix)).nnz == 0  # no overlap in the official split


def test_read_ml_1m_implicit() -> None:
    folder = shared("ml-1m-implicit-lightgcnpp")
    train = read_implicit_lists(folder / "train.txt")
    assert train.n_users == 6_039 and train.nnz == 590_733


# ----------------------------------------------------------------------------------------
# small fixtures
# ----------------------------------------------------------------------------------------
def write_ml_1m(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
        "2::3408::1::978300275\n3::661::2::978302268\n"
    )
    (folder / "movies.dat").write_bytes(
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        '3408::Erin "Brockovich" (2000)::Drama\n'
        "9999::Caf\u00e9 Unrated::Comedy\n".encode("latin-1")
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")


def test_read_ml_1m_fixture(tmp_path: Path) -> None:
    write_ml_1m(tmp_path / "ml-1m")
    data = read_movielens(tmp_path / "ml-1m")
    assert data.shape == (3, 3) and data.nnz == 5
    assert list(data.user_ids) == [1, 2, 3] and list(data.item_ids) == [661, 1193, 3408]
    assert data.matrix[0, 1] == 5 and data.ratings.dtype == np.float32
    assert data.timestamps.dtype == np.int64 and data.timestamps[0] == 978302109
    feats = data.item_features
    assert list(feats.index) == [661, 1193, 3408]  # movie 9999 has no ratings: ignored
    assert feats.loc[3408, "title"] == 'Erin "Brockovich" (2000)'
    assert feats.loc[661, "year"] == 1996
    assert feats.loc[661, "genre_Children's"] == 1 and feats.loc[1193, "genre_Musical"] == 0
    users = data.user_features
    assert users.loc[1, "occupation"] == "K-12 student" and users.loc[2, "age"] == 56
    assert users.loc[3, "gender"] == "M" and users.loc[1, "zip"] == "48067"


def test_read_movielens_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_movielens(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"u\.data \(100k\)"):
        read_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="ratings.dat"):
        read_movielens(tmp_path, variant="1m")
    with pytest.raises(ValueError, match="unknown MovieLens variant"):
        read_movielens(tmp_path, variant="25m")


def test_read_implicit_lists_fixture(tmp_path: Path) -> None:
    f = tmp_path / "train.txt"
    f.write_text("0 5 3 3\n2\n1 3\n\n4 7 5\n")
    data = read_implicit_lists(f)
    assert list(data.user_ids) == [0, 1, 2, 4] and list(data.item_ids) == [3, 5, 7]
    assert list(data.user_counts()) == [2, 1, 0, 2]  # user 2 exists without items
    assert np.all(data.matrix.data == 1.0)
    g = tmp_path / "test.txt"
    g.write_text("0 7\n9 3\n")
    with pytest.raises(IndexError, match="9"):
        read_implicit_lists(g, user_ids=data.user_ids, item_ids=data.item_ids)
    test = read_implicit_lists(g, user_ids=data.user_ids, item_ids=data.item_ids, unknown="drop")
    assert test.shape == data.shape and test.nnz == 1
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 x\n")
    with pytest.raises(ValueError, match="not integer"):
        read_implicit_lists(bad)


# ----------------------------------------------------------------------------------------
# fetch (no network)
# ----------------------------------------------------------------------------------------
def _fake_100k_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t10\t4\t100\n2\t10\t3\t200\n2\t20\t5\t300\n")
        zf.writestr("ml-100k/u.genre", "unknown|0\nAction|1\n\n")
        zf.writestr("ml-100k/u.item", "10|A (1990)|01-Jan-1990||url|0|1\n20|B (2001)|||url|1|0\n")
    return buffer.getvalue()


def _raise_offline(*args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("network is unreachable")


def test_fetch_without_network_explains_manual_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _raise_offline)
    with pytest.raises(DownloadError) as info:
        fetch_movielens("100k", data_home=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, OSError)
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in message
    assert str(tmp_path / "ml-100k.zip") in message
    assert str(tmp_path / "ml-100k" / "u.data") in message
    assert "network is unreachable" in message
    assert not list(tmp_path.glob("*.part"))


def test_fetch_rejects_bad_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _raise_offline)
    (tmp_path / "ml-latest-small.zip").write_bytes(b"not the real archive")
    with pytest.raises(DownloadError, match="failed verification.*sha256"):
        fetch_movielens("latest-small", data_home=tmp_path)
    assert not (tmp_path / "ml-latest-small").exists()


def test_fetch_downloads_verifies_extracts_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = _fake_100k_zip()
    real = datasets._ARCHIVES["100k"]
    fake = datasets._Archive(real.url, real.folder, len(payload), hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(datasets._ARCHIVES, "100k", fake)
    calls: list[str] = []

    def fake_urlopen(url: str, timeout: float = 0) -> io.BytesIO:
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setenv("RECFORGE_DATA_HOME", str(tmp_path / "cache"))
    data = fetch_movielens("ml-100k")
    assert calls == [real.url]
    assert data.shape == (2, 2) and data.nnz == 3
    assert data.item_features.loc[20, "year"] == 2001
    assert (tmp_path / "cache" / "ml-100k" / "u.data").is_file()
    monkeypatch.setattr(urllib.request, "urlopen", _raise_offline)  # second call: cache only
    again = fetch_movielens("100k")
    assert (again.matrix != data.matrix).nnz == 0


def test_fetch_rejects_corrupted_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=0: io.BytesIO(b"html error page"))
    with pytest.raises(DownloadError, match="failed verification"):
        fetch_movielens("1m", data_home=tmp_path)
    assert not list(tmp_path.glob("*.zip*"))  # the bad download was removed


def test_data_home_and_shared_data_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECFORGE_DATA_HOME", str(tmp_path / "h"))
    assert datasets.data_home() == tmp_path / "h"
    assert datasets.data_home(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("RECFORGE_DATA_HOME")
    assert datasets.data_home() == Path.home() / ".cache" / "recforge"
    (tmp_path / "ml-x").mkdir()
    monkeypatch.setenv("RECFORGE_DATA", str(tmp_path))
    assert shared_data_path("ml-x") == tmp_path / "ml-x"
    assert shared_data_path("absent") is None
    monkeypatch.delenv("RECFORGE_DATA")
    work = tmp_path / "repo" / "main"
    work.mkdir(parents=True)
    (tmp_path / "repo" / "shared" / "data" / "ds").mkdir(parents=True)
    monkeypatch.chdir(work)
    found = shared_data_path("ds")
    assert found is not None and found.resolve() == (tmp_path / "repo" / "shared" / "data" / "ds").resolve()
    assert shared_data_path("absent-dataset") is None


# ----------------------------------------------------------------------------------------
# synthetic
# ----------------------------------------------------------------------------------------
def test_make_synthetic_deterministic_and_shaped() -> None:
    a = make_synthetic(400, 150, random_state=5)
    b = make_synthetic(400, 150, random_state=5)
    c = make_synthetic(400, 150, random_state=6)
    assert a.shape == (400, 150)
    assert (a.matrix != b.matrix).nnz == 0 and np.array_equal(a.timestamps, b.timestamps)
    assert np.array_equal(a.ratings, b.ratings)
    assert a.nnz != c.nnz or (a.matrix != c.matrix).nnz > 0
    assert a.user_counts().min() >= 5
    assert a.nnz / a.n_users == pytest.approx(30, rel=0.15)
    assert np.all(a.matrix.data == 1.0)
    assert set(np.unique(a.ratings)) <= {1, 2, 3, 4, 5} and len(np.unique(a.ratings)) >= 4


def test_make_synthetic_features_and_time() -> None:
    d = make_synthetic(200, 120, n_categories=6, random_state=0)
    assert list(d.item_features.columns) == ["category", "price"]
    assert d.item_features["category"].between(0, 5).all() and (d.item_features["price"] > 0).all()
    assert list(d.user_features.columns) == ["segment", "age"]
    assert np.array_equal(d.item_features.index, np.arange(120))
    df = d.to_pandas().sort_values(["user", "timestamp"])
    assert (df.groupby("user")["timestamp"].diff().dropna() > 0).all()  # strictly increasing
    assert df["timestamp"].dtype == np.int64


def test_make_synthetic_popularity_skew() -> None:
    def top_share(d: Interactions) -> float:
        c = np.sort(d.item_counts())[::-1]
        return c[: len(c) // 10].sum() / c.sum()

    flat = make_synthetic(500, 300, popularity_skew=0.0, random_state=1)
    skewed = make_synthetic(500, 300, popularity_skew=1.0, random_state=1)
    assert top_share(skewed) > 0.3
    assert top_share(skewed) > top_share(flat) + 0.1


def _recall_at_10(scores: np.ndarray, train: Interactions, test: Interactions) -> float:
    scores = scores.astype(float).copy()
    scores[train.matrix.toarray() > 0] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    truth = test.matrix.toarray() > 0
    hits = np.take_along_axis(truth, top, axis=1).sum(1)
    n = truth.sum(1)
    has = n > 0
    return float((hits[has] / np.minimum(n[has], 10)).mean())


def test_make_synthetic_signal_popularity_then_structure() -> None:
    d = make_synthetic(800, 400, random_state=2)
    train, test = split.random_holdout(d, 0.2, random_state=0)
    rng = np.random.default_rng(0)
    random_score = _recall_at_10(rng.random(d.shape), train, test)
    popular = _recall_at_10(np.tile(train.item_counts(), (d.n_users, 1)), train, test)
    x = train.matrix.astype(np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0))).ravel() + 1e-9
    sim = (x.T @ x).toarray() / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    neighbours = _recall_at_10(np.asarray(x @ sim), train, test)
    assert popular > 3 * random_score
    assert neighbours > 1.3 * popular


def test_make_synthetic_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_users"):
        make_synthetic(0)
    with pytest.raises(ValueError, match="popularity_skew"):
        make_synthetic(10, 10, popularity_skew=-1)
    tiny = make_synthetic(5, 3, random_state=0)  # fewer items than the 5-per-user minimum
    assert tiny.nnz == 15
