"""Datasets: local readers, a MovieLens downloader and a synthetic generator.

* :func:`read_movielens` reads an extracted MovieLens folder (100k, 1m or latest-small).
* :func:`read_implicit_lists` reads the ``user item item ...`` per-line format.
* :func:`fetch_movielens` downloads, verifies and caches an official GroupLens archive.
* :func:`make_synthetic` generates interactions with planted structure; it needs no
  files and is the package's default dataset.
* :func:`data_home` and :func:`shared_data_path` locate cached and shared data folders.

No data is bundled with the package. MovieLens data is subject to the GroupLens terms of
use (research use, no redistribution of 100k/1m); read them in the extracted README.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import Interactions

__all__ = [
    "DownloadError",
    "data_home",
    "fetch_movielens",
    "make_synthetic",
    "read_implicit_lists",
    "read_movielens",
    "shared_data_path",
]

PathLike = str | os.PathLike[str]


class DownloadError(OSError):
    """A dataset could not be downloaded, or the downloaded file failed verification."""


# ----------------------------------------------------------------------------------------
# locations
# ----------------------------------------------------------------------------------------
def data_home(path: PathLike | None = None) -> Path:
    """Folder where downloaded datasets are cached.

    Parameters
    ----------
    path : str or path-like, optional
        Explicit folder. Otherwise ``$RECFORGE_DATA_HOME`` if set, else
        ``~/.cache/recforge``.

    Returns
    -------
    pathlib.Path
        The folder (not created by this function).
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("RECFORGE_DATA_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "recforge"


_resolve_data_home = data_home  # fetch_movielens has a parameter of the same name


def shared_data_path(name: str) -> Path | None:
    """Locate a shared (not bundled) dataset folder such as ``"ml-100k"``.

    The search order is:

    1. ``$RECFORGE_DATA/<name>`` if ``RECFORGE_DATA`` is set (and nothing else then);
    2. ``<cwd>/../shared/data/<name>``;
    3. ``<parent>/shared/data/<name>`` for the current directory and each of its parents;
    4. the same, starting from the folder of this source file (a source checkout).

    Parameters
    ----------
    name : str
        Folder name inside the shared data directory.

    Returns
    -------
    pathlib.Path or None
        The folder, or ``None`` if it was not found.
    """
    env = os.environ.get("RECFORGE_DATA")
    if env:
        candidate = Path(env).expanduser() / name
        return candidate if candidate.is_dir() else None
    cwd = Path.cwd()
    candidates = [cwd.parent / "shared" / "data" / name]
    candidates += [p / "shared" / "data" / name for p in (cwd, *cwd.parents)]
    here = Path(__file__).resolve().parent
    candidates += [p / "shared" / "data" / name for p in here.parents]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


# ----------------------------------------------------------------------------------------
# MovieLens readers
# ----------------------------------------------------------------------------------------
_VARIANT_FILES: dict[str, str] = {
    "100k": "u.data",
    "1m": "ratings.dat",
    "latest-small": "ratings.csv",
}

_GENRES_100K: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)

# Occupation codes of users.dat, from the MovieLens 1M README.
_OCCUPATIONS_1M: tuple[str, ...] = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer",
    "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
    "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)

_NO_GENRE = "(no genres listed)"
_YEAR_IN_TITLE = r"\((\d{4})\)\s*$"


def _normalize_variant(variant: str) -> str:
    v = str(variant).lower()
    v = v[3:] if v.startswith("ml-") else v
    if v not in _VARIANT_FILES:
        raise ValueError(
            f"unknown MovieLens variant {variant!r}; expected one of {list(_VARIANT_FILES)}"
        )
    return v


def _detect_variant(folder: Path) -> str:
    for variant, marker in _VARIANT_FILES.items():
        if (folder / marker).is_file():
            return variant
    expected = ", ".join(f"{m} ({v})" for v, m in _VARIANT_FILES.items())
    raise FileNotFoundError(
        f"{folder} does not look like an extracted MovieLens folder: none of {expected} "
        "is in it. Point read_movielens at the folder that holds those files (e.g. the "
        "'ml-100k' folder inside the zip), or use fetch_movielens to download one"
    )


def read_movielens(path: PathLike, variant: str | None = None) -> Interactions:
    """Read an extracted MovieLens folder.

    Supported layouts (detected from the files present when ``variant`` is ``None``):

    ``"100k"``
        ``u.data`` (TAB: user, item, rating, timestamp), ``u.item`` (``|``, latin-1:
        title, release date, 19 genre flags named in ``u.genre``), ``u.user`` (``|``:
        age, gender, occupation, zip).
    ``"1m"``
        ``ratings.dat``, ``movies.dat`` (``|``-separated genres) and ``users.dat``, all
        ``::``-separated latin-1. ``age`` is the bucket code of the README (1 = under 18,
        18 = 18-24, ...); ``occupation`` is mapped from its code to its name.
    ``"latest-small"``
        ``ratings.csv`` and ``movies.csv`` (also fits other ``ml-latest``/``ml-20m`` style
        folders); there is no user table.

    Parameters
    ----------
    path : str or path-like
        The folder holding the files.
    variant : {"100k", "1m", "latest-small"}, optional
        Force a layout instead of detecting it.

    Returns
    -------
    Interactions
        Weights and ``ratings`` are the ratings, ``timestamps`` are int64 Unix seconds,
        ``item_features`` has ``title``, ``year`` (float, NaN when unknown) and multi-hot
        ``genre_<name>`` columns (int8), ``user_features`` has ``age``, ``gender``,
        ``occupation`` and ``zip`` where the variant provides them. Users and items are
        those with at least one rating, indexed by sorted raw id.

    Raises
    ------
    FileNotFoundError
        The folder does not exist or holds none of the supported layouts.
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"MovieLens folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{folder} is a file; pass the folder that holds the MovieLens files"
        )
    if variant is None:
        variant = _detect_variant(folder)
    else:
        variant = _normalize_variant(variant)
        marker = folder / _VARIANT_FILES[variant]
        if not marker.is_file():
            raise FileNotFoundError(f"MovieLens {variant}: {marker} does not exist")
    if variant == "100k":
        ratings, items, users = _read_100k(folder)
    elif variant == "1m":
        ratings, items, users = _read_1m(folder)
    else:
        ratings, items, users = _read_latest(folder)
    return Interactions.from_arrays(
        ratings["user"].to_numpy(np.int64),
        ratings["item"].to_numpy(np.int64),
        ratings=ratings["rating"].to_numpy(np.float64),
        timestamps=ratings["timestamp"].to_numpy(np.int64),
        aggregate="last",
        user_features=users,
        item_features=items,
    )


def _read_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    ratings = pd.read_csv(
        folder / "u.data",
        sep="\t",
        header=None,
        names=["user", "item", "rating", "timestamp"],
        dtype={"user": np.int64, "item": np.int64, "rating": np.float64, "timestamp": np.int64},
    )
    genres = list(_GENRES_100K)
    genre_file = folder / "u.genre"
    if genre_file.is_file():
        table = pd.read_csv(
            genre_file, sep="|", header=None, names=["name", "index"], encoding="latin-1"
        ).dropna()
        genres = table.sort_values("index")["name"].astype(str).tolist()
    items = None
    item_file = folder / "u.item"
    if item_file.is_file():
        names = ["item", "title", "release_date", "video_release_date", "imdb_url", *genres]
        raw = pd.read_csv(
            item_file,
            sep="|",
            header=None,
            names=names,
            encoding="latin-1",
            quoting=csv.QUOTE_NONE,
            dtype={"title": str, "release_date": str, "video_release_date": str, "imdb_url": str},
        )
        year = pd.to_numeric(raw["release_date"].str[-4:], errors="coerce")
        year = year.fillna(_title_year(raw["title"]))
        items = pd.DataFrame(
            {"title": raw["title"].to_numpy(object), "year": year.to_numpy(np.float64)},
            index=pd.Index(raw["item"].to_numpy(np.int64), name="item"),
        )
        flags = raw[genres].fillna(0).to_numpy(np.int8)
        genre_frame = pd.DataFrame(flags, index=items.index, columns=[f"genre_{g}" for g in genres])
        items = pd.concat([items, genre_frame], axis=1)
    users = None
    user_file = folder / "u.user"
    if user_file.is_file():
        raw = pd.read_csv(
            user_file,
            sep="|",
            header=None,
            names=["user", "age", "gender", "occupation", "zip"],
            encoding="latin-1",
            dtype={"gender": str, "occupation": str, "zip": str},
        )
        users = raw.set_index("user")
    return ratings, items, users


def _read_double_colon(path: Path, names: list[str]) -> pd.DataFrame:
    """Read a ``::``-separated latin-1 file quickly with the C parser."""
    text = path.read_bytes().decode("latin-1").replace("::", "\t")
    return pd.read_csv(
        io.StringIO(text), sep="\t", header=None, names=names, quoting=csv.QUOTE_NONE,
        dtype=str, keep_default_na=False,
    )


def _read_1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    raw = (folder / "ratings.dat").read_bytes().replace(b"::", b"\t")
    ratings = pd.read_csv(
        io.BytesIO(raw),
        sep="\t",
        header=None,
        names=["user", "item", "rating", "timestamp"],
        dtype={"user": np.int64, "item": np.int64, "rating": np.float64, "timestamp": np.int64},
    )
    items = None
    if (folder / "movies.dat").is_file():
        movies = _read_double_colon(folder / "movies.dat", ["item", "title", "genres"])
        items = _movie_table(movies)
    users = None
    if (folder / "users.dat").is_file():
        raw_users = _read_double_colon(
            folder / "users.dat", ["user", "gender", "age", "occupation", "zip"]
        )
        codes = pd.to_numeric(raw_users["occupation"], errors="coerce")
        lookup = pd.Series(list(_OCCUPATIONS_1M))
        occupation = codes.map(lookup)
        users = pd.DataFrame(
            {
                "age": pd.to_numeric(raw_users["age"], errors="coerce").to_numpy(np.float64),
                "gender": raw_users["gender"].to_numpy(object),
                "occupation": occupation.to_numpy(object),
                "zip": raw_users["zip"].to_numpy(object),
            },
            index=pd.Index(raw_users["user"].astype(np.int64).to_numpy(), name="user"),
        )
        if not users["age"].isna().any():
            users["age"] = users["age"].astype(np.int64)
    return ratings, items, users


def _read_latest(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, None]:
    ratings = pd.read_csv(
        folder / "ratings.csv",
        dtype={"userId": np.int64, "movieId": np.int64, "rating": np.float64},
    ).rename(columns={"userId": "user", "movieId": "item"})
    ratings["timestamp"] = ratings["timestamp"].astype(np.int64)
    items = None
    if (folder / "movies.csv").is_file():
        movies = pd.read_csv(folder / "movies.csv", dtype={"title": str, "genres": str})
        movies = movies.rename(columns={"movieId": "item"})
        items = _movie_table(movies)
    return ratings, items, None


def _title_year(titles: pd.Series) -> pd.Series:
    return pd.to_numeric(titles.str.extract(_YEAR_IN_TITLE, expand=False), errors="coerce")


def _movie_table(movies: pd.DataFrame) -> pd.DataFrame:
    """title, year and multi-hot genre columns from an (item, title, genres) table."""
    titles = movies["title"].astype(str).str.strip()
    index = pd.Index(pd.to_numeric(movies["item"]).to_numpy(np.int64), name="item")
    out = pd.DataFrame(
        {"title": titles.to_numpy(object), "year": _title_year(titles).to_numpy(np.float64)},
        index=index,
    )
    dummies = movies["genres"].fillna("").astype(str).str.get_dummies(sep="|")
    dummies = dummies.drop(columns=[c for c in dummies.columns if c in (_NO_GENRE, "")])
    genre_frame = pd.DataFrame(
        dummies.to_numpy(np.int8),
        index=index,
        columns=[f"genre_{c}" for c in dummies.columns],
    )
    return pd.concat([out, genre_frame], axis=1)


# ----------------------------------------------------------------------------------------
# implicit per-line lists
# ----------------------------------------------------------------------------------------
def read_implicit_lists(
    path: PathLike,
    *,
    user_ids: Any = None,
    item_ids: Any = None,
    unknown: str = "raise",
) -> Interactions:
    """Read the ``user item item ...`` per-line format (one line per user).

    This is the layout of the LightGCN/NGCF benchmark splits (Gowalla, Yelp2018,
    Amazon-Book, ...): space-separated integer ids, the first one the user. Every
    interaction gets weight 1 (duplicates are merged). A user whose line holds no items
    still exists as a user without interactions.

    Parameters
    ----------
    path : str or path-like
        The text file, e.g. ``train.txt``.
    user_ids, item_ids : array-like, optional
        A fixed id universe, e.g. ``train.user_ids`` / ``train.item_ids`` so that a test
        file shares the training maps. Defaults: every user with a line, and every item
        that occurs, in sorted order.
    unknown : {"raise", "drop"}
        What to do with ids outside ``user_ids`` / ``item_ids`` (test files often contain
        items that never occur in train; ``"drop"`` removes them).

    Returns
    -------
    Interactions
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist or is not a file")
    text = file.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"no interactions: {file} is empty")
    lengths = np.fromiter((len(line.split()) for line in lines), dtype=np.int64, count=len(lines))
    body = "\n".join(lines)
    not_ids = f"{file} contains tokens that are not integer ids"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokens = np.fromstring(body, dtype=np.int64, sep=" ")  # whitespace incl. newlines
    except ValueError:
        raise ValueError(not_ids) from None
    if tokens.size != int(lengths.sum()):
        raise ValueError(not_ids)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    line_users = tokens[starts]
    is_item = np.ones(tokens.size, dtype=bool)
    is_item[starts] = False
    items = tokens[is_item]
    users = np.repeat(line_users, lengths - 1)
    if user_ids is None:
        user_ids = np.unique(line_users)
    elif unknown == "raise":
        missing = ~np.isin(line_users, np.asarray(user_ids))
        if missing.any():
            shown = ", ".join(str(u) for u in np.unique(line_users[missing])[:5])
            raise IndexError(
                f"{int(missing.sum()):,} users of {file.name} are not in user_ids "
                f"(e.g. {shown}); extend user_ids or pass unknown='drop'"
            )
    return Interactions.from_arrays(
        users,
        items,
        aggregate="max",
        user_ids=user_ids,
        item_ids=item_ids,
        unknown=unknown,  # type: ignore[arg-type]
    )


# ----------------------------------------------------------------------------------------
# download
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Archive:
    url: str
    folder: str
    size: int
    sha256: str


# sha256 and byte size of the official GroupLens archives (the values published in the
# TensorFlow Datasets checksum registry and pinned by several other projects).
_ARCHIVES: dict[str, _Archive] = {
    "100k": _Archive(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "ml-100k",
        4924029,
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    ),
    "1m": _Archive(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "ml-1m",
        5917549,
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
    ),
    "latest-small": _Archive(
        "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        "ml-latest-small",
        978202,
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    ),
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, archive: _Archive) -> None:
    """Check the byte size and sha256 of ``path``; raise DownloadError on mismatch."""
    size = path.stat().st_size
    actual = _sha256(path)
    if size != archive.size or actual != archive.sha256:
        raise DownloadError(
            f"{path} failed verification: expected {archive.size:,} bytes with sha256 "
            f"{archive.sha256}, got {size:,} bytes with sha256 {actual}. The file is "
            f"damaged or not the official {archive.url}; delete it and try again"
        )


def _manual_hint(archive: _Archive, home: Path, variant: str) -> str:
    marker = _VARIANT_FILES[variant]
    return (
        f"To install it by hand, download {archive.url} on a machine with internet access "
        f"and save it as {home / (archive.folder + '.zip')} (it is verified and extracted "
        f"on the next call), or extract it so that {home / archive.folder / marker} exists. "
        f"Pass data_home= or set RECFORGE_DATA_HOME to use another folder"
    )


def _download(archive: _Archive, target: Path, home: Path, variant: str) -> None:
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(archive.url, timeout=60) as response, part.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not download MovieLens {variant} from {archive.url}: {reason}. "
            + _manual_hint(archive, home, variant)
        ) from exc
    try:
        _verify(part, archive)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    part.replace(target)


def _extract(zip_path: Path, home: Path, archive: _Archive) -> None:
    prefix = archive.folder + "/"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            for name in names:
                parts = Path(name).parts
                if Path(name).is_absolute() or ".." in parts or not name.startswith(prefix):
                    raise DownloadError(
                        f"{zip_path} holds an unexpected member {name!r}; refusing to extract"
                    )
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=home))
            try:
                zf.extractall(tmp)
                destination = home / archive.folder
                if destination.exists():
                    shutil.rmtree(destination)
                os.replace(tmp / archive.folder, destination)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{zip_path} is not a valid zip archive; delete it and retry") from exc


def fetch_movielens(variant: str = "100k", *, data_home: PathLike | None = None) -> Interactions:
    """Download (once), verify and read an official MovieLens archive.

    The zip from ``files.grouplens.org`` is saved in the cache folder (``data_home``, else
    ``$RECFORGE_DATA_HOME``, else ``~/.cache/recforge``), its byte size and sha256 are
    checked against pinned values, and it is extracted next to it. Later calls read the
    extracted folder directly and never touch the network. A zip placed in the cache folder
    by hand is verified and extracted; a folder extracted by hand is read as is (no
    verification). ``latest-small`` is a development snapshot that GroupLens may update;
    if its checksum no longer matches, extract the new zip by hand.

    Only ``urllib`` from the standard library is used.

    Parameters
    ----------
    variant : {"100k", "1m", "latest-small"}
    data_home : str or path-like, optional
        Cache folder.

    Returns
    -------
    Interactions
        As returned by :func:`read_movielens`.

    Raises
    ------
    DownloadError
        The download failed (the message says where to put the file by hand) or the file
        failed verification.

    Notes
    -----
    The MovieLens terms of use apply (research use; 100k and 1m may not be redistributed).
    """
    key = _normalize_variant(variant)
    archive = _ARCHIVES[key]
    home = _resolve_data_home(data_home)
    folder = home / archive.folder
    if (folder / _VARIANT_FILES[key]).is_file():
        return read_movielens(folder, key)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the data folder {home}: {exc}") from exc
    zip_path = home / (archive.folder + ".zip")
    if zip_path.is_file():
        _verify(zip_path, archive)
    else:
        _download(archive, zip_path, home, key)
    _extract(zip_path, home, archive)
    return read_movielens(folder, key)


# ----------------------------------------------------------------------------------------
# synthetic data
# ----------------------------------------------------------------------------------------
_SYNTHETIC_T0 = 1_577_836_800  # 2020-01-01 UTC
_SYNTHETIC_SPAN = 365 * 24 * 3600
_AFFINITY_SCALE = 3.0
_CELLS_PER_CHUNK = 4_000_000


def make_synthetic(
    n_users: int = 1000,
    n_items: int = 500,
    *,
    n_factors: int = 8,
    mean_interactions: float = 30,
    popularity_skew: float = 1.0,
    n_categories: int = 10,
    random_state: int | np.random.Generator | None = 0,
) -> Interactions:
    """Generate interactions with planted latent structure and popularity skew.

    The generative story:

    * ``n_categories`` cluster centres live in an ``n_factors``-dimensional space. Each
      item belongs to a cluster and its latent vector is the centre plus noise; its
      ``category`` equals its cluster for 80% of the items and is random otherwise. Each
      user also belongs to a cluster (its ``segment`` feature agrees 80% of the time) and
      has a latent vector near that centre.
    * Item popularity follows a Zipf law over a random item order; ``log_popularity`` is
      centred log(1/rank).
    * Each user draws ``5 + NegBinomial`` distinct items (mean ``mean_interactions``,
      capped at ``n_items``) without replacement, with probability proportional to
      ``exp(affinity + popularity_skew * log_popularity)``, where ``affinity`` is
      ``3 * <user, item> / n_factors``-scaled similarity (about 3 within a cluster, about
      0 across clusters).
    * Timestamps are integers (Unix seconds in 2020), strictly increasing per user over
      that user's active window; the order of a user's items in time is random.
    * Ratings 1..5 are a noisy, rounded monotone function of the affinity.

    Weights are 1 (implicit feedback); ratings and timestamps are attached. Both a
    most-popular ranking and the latent structure carry signal, the latter more.

    Parameters
    ----------
    n_users, n_items : int
        Sizes; all users and items are present (items may have no interactions).
    n_factors : int
        Latent dimension.
    mean_interactions : float
        Average interactions per user (minimum 5 each).
    popularity_skew : float
        0 = no popularity effect; 1 = Zipf-like; larger = more concentrated.
    n_categories : int
        Number of clusters / item categories.
    random_state : int, numpy.random.Generator or None
        Seed; the same seed gives the same data.

    Returns
    -------
    Interactions
        With ``ratings``, ``timestamps``, ``item_features`` (``category``, ``price``) and
        ``user_features`` (``segment``, ``age``).
    """
    for name, value, minimum in (
        ("n_users", n_users, 1),
        ("n_items", n_items, 1),
        ("n_factors", n_factors, 1),
        ("n_categories", n_categories, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not np.isfinite(mean_interactions) or mean_interactions <= 0:
        raise ValueError(f"mean_interactions must be positive, got {mean_interactions!r}")
    if not np.isfinite(popularity_skew) or popularity_skew < 0:
        raise ValueError(f"popularity_skew must be >= 0, got {popularity_skew!r}")
    rng = np.random.default_rng(random_state)
    n_users, n_items, n_factors, n_clusters = int(n_users), int(n_items), int(n_factors), int(n_categories)

    # latent structure
    centres = rng.standard_normal((n_clusters, n_factors))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    item_cluster = rng.integers(0, n_clusters, n_items)
    user_cluster = rng.integers(0, n_clusters, n_users)
    noise = 0.35 / np.sqrt(n_factors)
    item_vec = centres[item_cluster] + noise * rng.standard_normal((n_items, n_factors))
    user_vec = centres[user_cluster] + noise * rng.standard_normal((n_users, n_factors))
    item_vec = (item_vec * np.sqrt(_AFFINITY_SCALE)).astype(np.float32)
    user_vec = (user_vec * np.sqrt(_AFFINITY_SCALE)).astype(np.float32)

    # popularity: Zipf over a random order of the items
    rank = rng.permutation(n_items) + 1
    log_pop = -np.log(rank)
    log_pop = (popularity_skew * (log_pop - log_pop.mean())).astype(np.float32)

    # how many items per user: 5 + gamma-Poisson (over-dispersed), capped at the catalogue
    extra = max(float(mean_interactions) - 5.0, 0.0)
    lam = rng.gamma(2.0, extra / 2.0, n_users) if extra > 0 else np.zeros(n_users)
    counts = np.minimum(5 + rng.poisson(lam), n_items).astype(np.int64)

    # distinct items per user via the Gumbel top-k trick, in chunks of users
    chunk = max(1, _CELLS_PER_CHUNK // n_items)
    user_parts: list[np.ndarray] = []
    item_parts: list[np.ndarray] = []
    aff_parts: list[np.ndarray] = []
    for lo in range(0, n_users, chunk):
        hi = min(lo + chunk, n_users)
        affinity = user_vec[lo:hi] @ item_vec.T
        uniform = rng.random((hi - lo, n_items), dtype=np.float32)
        np.clip(uniform, np.float32(1e-30), None, out=uniform)
        keys = affinity + log_pop - np.log(-np.log(uniform))
        c = counts[lo:hi]
        kmax = int(c.max())
        if kmax < n_items:
            top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
        else:
            top = np.broadcast_to(np.arange(n_items), keys.shape).copy()
        top_keys = np.take_along_axis(keys, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_keys, axis=1, kind="stable"), axis=1)
        take = np.arange(kmax)[None, :] < c[:, None]
        chosen = top[take]
        owners = np.repeat(np.arange(lo, hi, dtype=np.int64), c)
        user_parts.append(owners)
        item_parts.append(chosen.astype(np.int64))
        aff_parts.append(affinity[owners - lo, chosen])
    users = np.concatenate(user_parts)
    items = np.concatenate(item_parts)
    aff = np.concatenate(aff_parts).astype(np.float64)

    # timestamps: strictly increasing per user over a random window, random item order
    nnz = users.size
    starts = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    begin = rng.uniform(0.0, 0.7, n_users) * _SYNTHETIC_SPAN
    length = rng.uniform(0.05, 0.3, n_users) * _SYNTHETIC_SPAN
    slot = np.lexsort((rng.random(nnz), users))  # a random order within each user
    rank_in_user = np.empty(nnz, dtype=np.int64)
    rank_in_user[slot] = np.arange(nnz) - starts[users[slot]]
    step = length[users] / counts[users]
    jitter = rng.random(nnz)
    timestamps = (
        _SYNTHETIC_T0
        + np.floor(begin[users] + (rank_in_user + jitter) * step).astype(np.int64)
        + rank_in_user
    )

    # ratings from affinity
    z = (aff - aff.mean()) / (aff.std() + 1e-12)
    ratings = np.clip(np.floor(3.5 + z + 0.5 * rng.standard_normal(nnz) + 0.5), 1, 5)

    # side features
    flip_item = rng.random(n_items) < 0.2
    category = np.where(flip_item, rng.integers(0, n_clusters, n_items), item_cluster)
    cat_level = rng.normal(3.0, 0.6, n_clusters)
    price = np.round(np.exp(cat_level[category] + 0.4 * rng.standard_normal(n_items)), 2)
    flip_user = rng.random(n_users) < 0.2
    segment = np.where(flip_user, rng.integers(0, n_clusters, n_users), user_cluster)
    age = np.clip(np.round(rng.normal(38, 12, n_users)), 18, 80).astype(np.int64)
    item_features = pd.DataFrame({"category": category.astype(np.int64), "price": price})
    user_features = pd.DataFrame({"segment": segment.astype(np.int64), "age": age})

    return Interactions.from_arrays(
        users,
        items,
        np.ones(nnz, dtype=np.float32),
        ratings=ratings,
        timestamps=timestamps,
        user_ids=np.arange(n_users, dtype=np.int64),
        item_ids=np.arange(n_items, dtype=np.int64),
        user_features=user_features,
        item_features=item_features,
    )


# ----------------------------------------------------------------------------------------
# Coat (Schnabel et al. 2016)
# ----------------------------------------------------------------------------------------
def _coat_features(folder: Path, kind: str, n: int) -> pd.DataFrame:
    sub = folder / "user_item_features"
    matrix_path, names_path = sub / f"{kind}_features.ascii", sub / f"{kind}_features_map.txt"
    if not matrix_path.exists() or not names_path.exists():
        raise FileNotFoundError(f"{matrix_path} or {names_path} is missing: is {folder} the Coat folder?")
    values = np.loadtxt(matrix_path, dtype=np.int8, ndmin=2)
    names = [line.strip() for line in names_path.read_text().splitlines() if line.strip()]
    if values.shape != (n, len(names)):
        raise ValueError(f"{matrix_path} has shape {values.shape}, expected ({n}, {len(names)}) from {names_path.name}")
    return pd.DataFrame(values, columns=names, index=pd.Index(np.arange(n, dtype=np.int64), name=kind))


def read_coat(path: PathLike) -> tuple[Interactions, Interactions]:
    """Read the Coat shopping data set (Schnabel et al. 2016) as ``(train, test)``.

    ``train.ascii`` holds ratings (1-5) on coats the users chose themselves, ``test.ascii``
    ratings on 16 coats per user chosen at random; both are dense 290 x 300 matrices with 0 for
    "not rated". Users and items are indexed 0..289 and 0..299 in both parts. The weights are
    the ratings; ``user_features`` (gender, age band, location, fashion interest) and
    ``item_features`` (gender, jacket type, colour, on the front page) are the one-hot tables
    of ``user_item_features/``, one column per name in the map files.
    """
    folder = Path(path)
    parts = []
    for name in ("train", "test"):
        file = folder / f"{name}.ascii"
        if not file.exists():
            raise FileNotFoundError(f"{file} is missing: is {folder} the Coat folder (train.ascii, test.ascii)?")
        parts.append(np.loadtxt(file, dtype=np.float64, ndmin=2))
    if parts[0].shape != parts[1].shape:
        raise ValueError(f"train and test have different shapes {parts[0].shape} and {parts[1].shape}")
    n_users, n_items = parts[0].shape
    users = _coat_features(folder, "user", n_users)
    items = _coat_features(folder, "item", n_items)
    out = []
    for dense in parts:
        u, i = np.nonzero(dense)
        out.append(
            Interactions.from_arrays(
                u, i, ratings=dense[u, i], user_ids=np.arange(n_users, dtype=np.int64),
                item_ids=np.arange(n_items, dtype=np.int64), user_features=users, item_features=items,
            )
        )
    return out[0], out[1]


__all__.append("read_coat")
