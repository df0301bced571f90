"""Content-based recommendation: item profiles from item features, user preference vectors
and cosine similarity.

:class:`FeatureEncoder` turns a feature table (one row per item or user) into a sparse matrix
with named columns:

* **text** columns become TF-IDF or BM25 vectors. Tokenisation: the text is lower-cased and
  split into the tokens of two or more word characters, the regular expression
  ``(?u)\\b\\w\\w+\\b`` (scikit-learn's ``TfidfVectorizer`` default). The vocabulary is kept in
  sorted order; TF-IDF uses ``idf = ln((1 + n) / (1 + df)) + 1`` and L2-normalised rows, exactly
  as scikit-learn's defaults.
* **categorical** columns become one-hot features named ``column=value`` (missing values give
  no feature; values not seen in ``fit`` are ignored at ``transform``).
* **multi-hot** columns (lists or ``"a|b|c"`` strings, e.g. genres or tags) become one feature
  per value, ``column=value``.
* **numeric** columns are standardised (or min-max scaled); columns holding only 0 and 1 (e.g.
  ``genre_*`` indicators) are kept as they are. NaN is an error: impute or drop first.

:class:`ContentRecommender` averages the profiles of the items each user interacted with,
weighted by rating and optionally decayed in time, and ranks items by the cosine between that
preference vector and their profiles; :meth:`ContentRecommender.explain` names the features
that matched. Items without any interaction (cold items) are scored like every other item,
from their features alone. The sparse kernels run in C++ on several threads.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _core
from ._validation import check_positive_int, csr_arrays, resolve_threads
from .base import IdKind, Recommender
from .data import Interactions

__all__ = ["FeatureEncoder", "ContentRecommender", "tokenize", "TOKEN_PATTERN", "tfidf"]

TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_TOKEN_RE = re.compile(TOKEN_PATTERN)
_WEIGHTINGS = {"tfidf": 0, "bm25": 1}
_SCALINGS = ("standard", "minmax", "none")
_STATE_VERSION = 1


def tokenize(text: Any, lowercase: bool = True) -> list[str]:
    """Tokens of one text: runs of two or more word characters (``TOKEN_PATTERN``)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    s = str(text)
    return _TOKEN_RE.findall(s.lower() if lowercase else s)


def _counts(docs: Sequence[list[str]], vocab: Mapping[str, int]) -> sp.csr_matrix:
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for tokens in docs:
        row: dict[int, int] = {}
        for t in tokens:
            j = vocab.get(t)
            if j is not None:
                row[j] = row.get(j, 0) + 1
        for j in sorted(row):
            indices.append(j)
            data.append(float(row[j]))
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int32), np.asarray(indptr, dtype=np.int64)),
        shape=(len(docs), len(vocab)),
    )


def _csr3(m: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = m if sp.issparse(m) else sp.csr_matrix(m)
    return csr_arrays(m, m.shape, "matrix")


def tfidf(
    texts: Iterable[Any],
    *,
    weighting: str = "tfidf",
    min_df: int | float = 1,
    max_df: int | float = 1.0,
    sublinear_tf: bool = False,
    k1: float = 1.2,
    b: float = 0.75,
    n_threads: int = 0,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """TF-IDF (or BM25) vectors of a corpus: ``(documents x terms CSR, terms)``.

    With the defaults this equals ``sklearn.feature_extraction.text.TfidfVectorizer()`` on the
    same texts (same tokens, sorted vocabulary, smooth idf, L2-normalised rows).
    """
    enc = FeatureEncoder(text=["text"], text_weighting=weighting, min_df=min_df, max_df=max_df,
                         sublinear_tf=sublinear_tf, k1=k1, b=b, n_threads=n_threads)
    matrix = enc.fit_transform(pd.DataFrame({"text": list(texts)}))
    terms = np.asarray([name.split(":", 1)[1] for name in enc.feature_names_], dtype=object)
    return matrix, terms


# ----------------------------------------------------------------------------------------
# the encoder
# ----------------------------------------------------------------------------------------
def _is_listlike(v: Any) -> bool:
    return isinstance(v, (list, tuple, set, frozenset, np.ndarray))


def _values_of(v: Any, separator: str) -> list[str]:
    if _is_listlike(v):
        return [str(x) for x in v]
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    return [s for s in str(v).split(separator) if s != ""]


class FeatureEncoder:
    """A feature table (DataFrame, one row per entity) as a sparse matrix with named columns.

    Parameters
    ----------
    text, categorical, multi_hot, numeric : lists of column names, optional
        The kind of each column. Columns not named are inferred: integer columns with at most
        20 distinct values (other than 0/1 indicators) are categorical codes, other numeric
        dtypes are numeric, columns holding lists are multi-hot, everything else is
        categorical. Text is never inferred: name text columns explicitly.
    exclude : list of column names
        Columns to leave out (e.g. free-form ids, or a text column you do not want).
    text_weighting : {"tfidf", "bm25"}
    min_df, max_df : int or float
        Keep terms found in at least ``min_df`` and at most ``max_df`` documents (a float is a
        share of the documents), as in scikit-learn.
    sublinear_tf : bool
        TF-IDF with ``1 + ln(tf)``.
    k1, b : float
        BM25 parameters.
    numeric_scaling : {"standard", "minmax", "none"}
        How non-binary numeric columns are scaled.
    field_weights : dict column -> float, optional
        Multiply the features of a column (its whole block) by a weight; default 1.
    separator : str
        Separator of multi-hot values given as strings.
    """

    def __init__(
        self,
        *,
        text: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        multi_hot: Sequence[str] | None = None,
        numeric: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        text_weighting: str = "tfidf",
        min_df: int | float = 1,
        max_df: int | float = 1.0,
        sublinear_tf: bool = False,
        k1: float = 1.2,
        b: float = 0.75,
        numeric_scaling: str = "standard",
        field_weights: Mapping[str, float] | None = None,
        separator: str = "|",
        n_threads: int = 0,
    ) -> None:
        self.text = text
        self.categorical = categorical
        self.multi_hot = multi_hot
        self.numeric = numeric
        self.exclude = exclude
        self.text_weighting = text_weighting
        self.min_df = min_df
        self.max_df = max_df
        self.sublinear_tf = sublinear_tf
        self.k1 = k1
        self.b = b
        self.numeric_scaling = numeric_scaling
        self.field_weights = field_weights
        self.separator = separator
        self.n_threads = n_threads

    # -- fitting ------------------------------------------------------------------------------
    def _kinds(self, df: pd.DataFrame) -> dict[str, str]:
        named: dict[str, str] = {}
        for kind, cols in (("text", self.text), ("categorical", self.categorical),
                           ("multi_hot", self.multi_hot), ("numeric", self.numeric)):
            for c in map(str, cols or ()):
                if c in named:
                    raise ValueError(f"column {c!r} is given as both {named[c]} and {kind}")
                if c not in df.columns:
                    raise ValueError(f"{kind} column {c!r} is not in the feature table (columns: {list(df.columns)})")
                named[c] = kind
        exclude = {str(c) for c in (self.exclude or ())}
        unknown = exclude - set(df.columns)
        if unknown:
            raise ValueError(f"exclude names columns that are not in the feature table: {sorted(map(str, unknown))}")
        kinds: dict[str, str] = {}
        for c in df.columns:
            if c in exclude:
                continue
            if c in named:
                kinds[c] = named[c]
            elif pd.api.types.is_integer_dtype(df[c]) and not df[c].isin((0, 1)).all() and df[c].nunique() <= 20:
                kinds[c] = "categorical"  # a small set of integer codes (e.g. a category id)
            elif pd.api.types.is_bool_dtype(df[c]) or pd.api.types.is_numeric_dtype(df[c]):
                kinds[c] = "numeric"
            elif df[c].map(_is_listlike).any():
                kinds[c] = "multi_hot"
            else:
                kinds[c] = "categorical"
        if not kinds:
            raise ValueError("the feature table has no columns to encode")
        return kinds

    def fit(self, features: pd.DataFrame) -> FeatureEncoder:
        """Learn vocabularies, categories and scales from a feature table; returns ``self``."""
        self.fit_transform(features)
        return self

    def fit_transform(self, features: pd.DataFrame) -> sp.csr_matrix:
        """``fit`` and return the encoded matrix of the same table."""
        df = self._frame(features)
        if self.text_weighting not in _WEIGHTINGS:
            raise ValueError(f"text_weighting must be 'tfidf' or 'bm25', got {self.text_weighting!r}")
        if self.numeric_scaling not in _SCALINGS:
            raise ValueError(f"numeric_scaling must be one of {_SCALINGS}, got {self.numeric_scaling!r}")
        weights = dict(self.field_weights or {})
        for c, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not np.isfinite(w) or w < 0:
                raise ValueError(f"field_weights[{c!r}] must be a finite number >= 0, got {w!r}")
        kinds = self._kinds(df)
        blocks: list[dict[str, Any]] = []
        for col, kind in kinds.items():
            block: dict[str, Any] = {"column": str(col), "kind": kind, "weight": float(weights.get(col, 1.0))}
            values = df[col]
            if kind == "text":
                docs = [tokenize(v) for v in values.tolist()]
                vocab, idf, avgdl = self._fit_text(docs, str(col))
                block.update(terms=vocab, idf=idf, avgdl=avgdl)
            elif kind == "categorical":
                present = values[~values.isna()]
                block["values"] = sorted({str(v) for v in present.tolist()})
            elif kind == "multi_hot":
                seen: set[str] = set()
                for v in values.tolist():
                    seen.update(_values_of(v, self.separator))
                block["values"] = sorted(seen)
            else:
                x = self._numeric(values, str(col))
                binary = bool(np.isin(x, (0.0, 1.0)).all())
                if binary or self.numeric_scaling == "none":
                    center, scale = 0.0, 1.0
                elif self.numeric_scaling == "standard":
                    center, scale = float(x.mean()), float(x.std())
                else:
                    center, scale = float(x.min()), float(x.max() - x.min())
                block.update(center=center, scale=scale if scale > 0 else 1.0, binary=binary)
            blocks.append(block)
        self.blocks_ = blocks
        self.columns_ = [b["column"] for b in blocks]
        self.feature_names_ = np.asarray(self._names(), dtype=object)
        return self._encode(df)

    def _fit_text(self, docs: list[list[str]], col: str) -> tuple[list[str], list[float], float]:
        n_docs = len(docs)
        df_count: dict[str, int] = {}
        for tokens in docs:
            for t in set(tokens):
                df_count[t] = df_count.get(t, 0) + 1
        if not df_count:
            raise ValueError(
                f"text column {col!r} has no tokens (every text is empty or has no word of two or "
                "more characters); fill it or leave the column out with exclude="
            )
        lo = self.min_df if isinstance(self.min_df, numbers.Integral) else int(np.ceil(float(self.min_df) * n_docs))
        hi = self.max_df if isinstance(self.max_df, numbers.Integral) else int(np.floor(float(self.max_df) * n_docs))
        terms = sorted(t for t, c in df_count.items() if lo <= c <= hi)
        if not terms:
            raise ValueError(f"text column {col!r}: no term is left after min_df={self.min_df}, max_df={self.max_df}")
        df_arr = np.asarray([df_count[t] for t in terms], dtype=np.int64)
        idf = _core.content.idf(df_arr, n_docs, _WEIGHTINGS[self.text_weighting], True)
        avgdl = float(np.mean([len(t) for t in docs])) if docs else 1.0
        return terms, [float(v) for v in idf], avgdl

    @staticmethod
    def _numeric(values: pd.Series, col: str) -> np.ndarray:
        try:
            x = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"numeric column {col!r} is not numeric: {exc}") from None
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(
                f"numeric column {col!r} has {int(bad.sum())} NaN or infinite values; impute them "
                f"(e.g. df[{col!r}].fillna(df[{col!r}].median())) or leave the column out with exclude=[{col!r}]"
            )
        return x

    def _names(self) -> list[str]:
        names: list[str] = []
        for b in self.blocks_:
            c = b["column"]
            if b["kind"] == "text":
                names += [f"{c}:{t}" for t in b["terms"]]
            elif b["kind"] in ("categorical", "multi_hot"):
                names += [f"{c}={v}" for v in b["values"]]
            else:
                names.append(c)
        return names

    # -- transforming -------------------------------------------------------------------------
    @staticmethod
    def _frame(features: Any) -> pd.DataFrame:
        if isinstance(features, pd.Series):
            features = features.to_frame()
        if not isinstance(features, pd.DataFrame):
            raise ValueError(f"features must be a pandas DataFrame (one row per entity), got {type(features).__name__}")
        if len(features) == 0:
            raise ValueError("the feature table has no rows")
        return features.rename(columns=str)

    def _check_fitted(self) -> None:
        if not hasattr(self, "blocks_"):
            from .base import NotFittedError

            raise NotFittedError("this FeatureEncoder is not fitted yet; call fit(features) first")

    def transform(self, features: pd.DataFrame) -> sp.csr_matrix:
        """The encoded matrix of a table with the fitted columns (rows: entities)."""
        self._check_fitted()
        df = self._frame(features)
        missing = [c for c in self.columns_ if c not in set(df.columns)]
        if missing:
            raise ValueError(f"the feature table lacks the fitted columns {missing}")
        known = set(self.columns_) | {str(c) for c in (self.exclude or ())}
        unknown = [c for c in df.columns if c not in known]
        if unknown:
            raise ValueError(
                f"unknown feature columns {unknown}: the encoder was fitted on {self.columns_}; "
                "drop them or fit the encoder again"
            )
        return self._encode(df)

    def _encode(self, df: pd.DataFrame) -> sp.csr_matrix:
        n = len(df)
        parts = []
        threads = resolve_threads(self.n_threads)
        for b in self.blocks_:
            values = df[b["column"]]
            if b["kind"] == "text":
                vocab = {t: j for j, t in enumerate(b["terms"])}
                counts = _counts([tokenize(v) for v in values.tolist()], vocab)
                indptr, indices, data = _csr3(counts)
                weighted = _core.content.weight_terms(
                    indptr, indices, data, np.asarray(b["idf"], dtype=np.float32), _WEIGHTINGS[self.text_weighting],
                    bool(self.sublinear_tf), float(self.k1), float(self.b), True, float(b["avgdl"]), threads,
                )
                block = sp.csr_matrix((weighted, indices, indptr), shape=(n, len(vocab)))
            elif b["kind"] in ("categorical", "multi_hot"):
                lookup = {v: j for j, v in enumerate(b["values"])}
                rows, cols = [], []
                for r, v in enumerate(values.tolist()):
                    if b["kind"] == "categorical":
                        vals = [] if v is None or (not isinstance(v, str) and pd.isna(v)) else [str(v)]
                    else:
                        vals = _values_of(v, self.separator)
                    for s in set(vals):
                        j = lookup.get(s)
                        if j is not None:
                            rows.append(r)
                            cols.append(j)
                block = sp.csr_matrix(
                    (np.ones(len(rows), dtype=np.float32), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
                    shape=(n, len(lookup)),
                )
            else:
                x = (self._numeric(values, b["column"]) - b["center"]) / b["scale"]
                block = sp.csr_matrix(x.astype(np.float32)[:, None])
            parts.append(block * np.float32(b["weight"]) if b["weight"] != 1.0 else block)
        out = sp.csr_matrix(sp.hstack(parts, format="csr"), dtype=np.float32)
        out.sum_duplicates()
        out.sort_indices()
        return out

    # -- persistence --------------------------------------------------------------------------
    def to_json(self) -> str:
        """The fitted state (and parameters) as JSON, for model files without pickle."""
        self._check_fitted()
        params = {k: getattr(self, k) for k in (
            "text", "categorical", "multi_hot", "numeric", "exclude", "text_weighting", "min_df", "max_df",
            "sublinear_tf", "k1", "b", "numeric_scaling", "field_weights", "separator", "n_threads")}
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
        if isinstance(params["field_weights"], Mapping):
            params["field_weights"] = {str(k): float(v) for k, v in params["field_weights"].items()}
        return json.dumps({"version": _STATE_VERSION, "params": params, "blocks": self.blocks_})

    @classmethod
    def from_json(cls, text: str) -> FeatureEncoder:
        """An encoder from :meth:`to_json`."""
        try:
            state = json.loads(text)
            enc = cls(**state["params"])
            enc.blocks_ = state["blocks"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a FeatureEncoder state: {exc}") from exc
        if int(state.get("version", 0)) > _STATE_VERSION:
            raise ValueError("the encoder state was written by a newer recforge; upgrade recforge")
        enc.columns_ = [b["column"] for b in enc.blocks_]
        enc.feature_names_ = np.asarray(enc._names(), dtype=object)
        return enc


def align_table(features: Any, ids: np.ndarray) -> Any:
    """A feature DataFrame in the order of ``ids``: a table with a default RangeIndex and one
    row per id is taken in order (as ``Interactions`` does); any other table is indexed by raw
    id and reindexed (ids it lacks get NaN rows). Other inputs are returned as they are."""
    if not isinstance(features, pd.DataFrame):
        return features
    index = features.index
    positional = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    if positional and len(features) == len(ids):
        return features
    if positional:
        return features  # the row count check reports the mismatch
    if not index.is_unique:
        raise ValueError("the feature table's index has duplicated ids; give one row per id")
    if not index.isin(pd.Index(ids)).any():
        raise ValueError(
            "none of the feature table's index values are known ids; index it by raw id or give one row per id "
            "in index order with a default RangeIndex"
        )
    return features.reindex(pd.Index(ids))


def encode_features(
    features: Any, n_rows: int, what: str, encoder: FeatureEncoder | None = None
) -> tuple[sp.csr_matrix, np.ndarray, FeatureEncoder | None]:
    """A feature table or matrix as ``(CSR float32, feature names, fitted encoder or None)``.

    DataFrames go through ``encoder`` (a default :class:`FeatureEncoder` if None); scipy.sparse
    matrices and 2-D arrays are used as they are (names ``f0, f1, ...``). The result must have
    ``n_rows`` rows.
    """
    if isinstance(features, (pd.DataFrame, pd.Series)):
        enc = encoder if encoder is not None else FeatureEncoder()
        if len(features) != n_rows:
            raise ValueError(f"{what} features have {len(features)} rows but there are {n_rows} {what}s; give one row per {what}")
        matrix = enc.fit_transform(features)
        return matrix, np.asarray(enc.feature_names_, dtype=object), enc
    if sp.issparse(features):
        matrix = sp.csr_matrix(features, dtype=np.float32)
    else:
        arr = np.asarray(features)
        if arr.ndim != 2 or arr.dtype.kind not in "fiub":
            raise ValueError(f"{what} features must be a DataFrame, a scipy.sparse matrix or a 2-D numeric array")
        matrix = sp.csr_matrix(arr.astype(np.float32))
    if matrix.shape[0] != n_rows:
        raise ValueError(
            f"{what} features have {matrix.shape[0]} rows but there are {n_rows} {what}s; give one row per {what} "
            "in index order"
        )
    if matrix.nnz and not np.isfinite(matrix.data).all():
        raise ValueError(f"{what} features contain NaN or infinite values; impute them first")
    matrix.sum_duplicates()
    matrix.sort_indices()
    names = np.asarray([f"f{j}" for j in range(matrix.shape[1])], dtype=object)
    return matrix, names, None


# ----------------------------------------------------------------------------------------
# the recommender
# ----------------------------------------------------------------------------------------
_USER_WEIGHTING = ("rating", "centered", "weight", "binary")


class ContentRecommender(Recommender):
    """Recommend items whose content is like the content of what the user liked.

    Every item has a profile (its encoded features, see :class:`FeatureEncoder`). A user's
    preference vector is the weighted average of the profiles of the items they interacted
    with; items are ranked by the cosine between that vector and their profiles.

    Users without interactions get the average preference vector of all interactions (the
    content of what is popular). Fit with ``fit(interactions, item_features=...)``, or let the
    model take ``interactions.item_features``.

    Parameters
    ----------
    text, categorical, multi_hot, numeric, exclude : lists of column names, optional
        Column kinds of the item feature table (see :class:`FeatureEncoder`).
    text_weighting : {"tfidf", "bm25"}
    min_df, max_df, sublinear_tf, numeric_scaling, field_weights
        Passed to the :class:`FeatureEncoder`.
    weighting : {"rating", "centered", "weight", "binary"}
        The weight of an interacted item in the average: its rating (when the interactions
        have ratings, else the interaction weight), the rating minus the user's mean rating (so
        disliked items count against their features), the interaction weight, or 1.
    half_life : float, optional
        Time decay: an interaction ``half_life`` time units (the unit of the timestamps) older
        than the user's latest one counts half. Needs timestamps.
    n_threads : int
        Threads (0 = all cores).

    Attributes
    ----------
    feature_names_ : array of str
        The names of the profile features.
    item_profiles_ : scipy.sparse.csr_matrix (n_items x n_features)
    user_profiles_ : scipy.sparse.csr_matrix (n_users x n_features)
    """

    _learned: ClassVar[tuple[str, ...]] = (
        "profile_indptr_", "profile_indices_", "profile_data_", "user_indptr_", "user_indices_", "user_data_",
        "global_profile_", "feature_names_", "encoder_state_",
    )

    def __init__(
        self,
        *,
        text: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        multi_hot: Sequence[str] | None = None,
        numeric: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        text_weighting: str = "tfidf",
        min_df: int | float = 1,
        max_df: int | float = 1.0,
        sublinear_tf: bool = False,
        numeric_scaling: str = "standard",
        field_weights: Mapping[str, float] | None = None,
        weighting: str = "rating",
        half_life: float | None = None,
        n_threads: int = 0,
    ) -> None:
        self.text = text
        self.categorical = categorical
        self.multi_hot = multi_hot
        self.numeric = numeric
        self.exclude = exclude
        self.text_weighting = text_weighting
        self.min_df = min_df
        self.max_df = max_df
        self.sublinear_tf = sublinear_tf
        self.numeric_scaling = numeric_scaling
        self.field_weights = field_weights
        self.weighting = weighting
        self.half_life = half_life
        self.n_threads = n_threads

    def _encoder(self) -> FeatureEncoder:
        return FeatureEncoder(
            text=self.text, categorical=self.categorical, multi_hot=self.multi_hot, numeric=self.numeric,
            exclude=self.exclude, text_weighting=self.text_weighting, min_df=self.min_df, max_df=self.max_df,
            sublinear_tf=self.sublinear_tf, numeric_scaling=self.numeric_scaling, field_weights=self.field_weights,
            n_threads=self.n_threads,
        )

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, interactions: Any, *, item_features: Any = None) -> ContentRecommender:
        """Build item profiles and user preference vectors; returns ``self``.

        ``item_features``: a DataFrame (one row per item in index order, or indexed by raw item
        id), a scipy.sparse matrix or a 2-D array with one row per item; default
        ``interactions.item_features``.
        """
        self._item_features_arg = item_features
        try:
            return super().fit(interactions)  # type: ignore[return-value]
        finally:
            del self._item_features_arg

    def _fit(self, data: Interactions) -> None:
        if self.weighting not in _USER_WEIGHTING:
            raise ValueError(f"weighting must be one of {_USER_WEIGHTING}, got {self.weighting!r}")
        features = self._item_features_arg
        if features is None:
            features = data.item_features
            if features is None:
                raise ValueError(
                    "ContentRecommender needs item features: pass fit(..., item_features=table) or build the "
                    "Interactions with item_features="
                )
        features = align_table(features, data.item_ids)
        matrix, names, enc = encode_features(features, data.n_items, "item", self._encoder())
        self.feature_names_ = np.asarray([str(v) for v in names])
        self.encoder_state_ = np.array(enc.to_json() if enc is not None else "")
        self._set_profiles(matrix)
        self._set_users(data)

    def _set_profiles(self, matrix: sp.csr_matrix) -> None:
        indptr, indices, values = _csr3(matrix)
        self.profile_indptr_, self.profile_indices_, self.profile_data_ = indptr, indices, values
        self._profiles = None

    def _user_weights(self, data: Interactions) -> sp.csr_matrix:
        m = data.matrix.tocsr().astype(np.float32)
        w = np.asarray(m.data, dtype=np.float64).copy()
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        if self.weighting in ("rating", "centered") and data.ratings is not None:
            w = np.asarray(data.ratings, dtype=np.float64).copy()
        if self.weighting == "binary":
            w = np.ones_like(w)
        if self.weighting == "centered":
            sums = np.bincount(rows, weights=w, minlength=m.shape[0])
            counts = np.maximum(np.diff(m.indptr), 1)
            w = w - (sums / counts)[rows]
        if self.half_life is not None:
            hl = self.half_life
            if isinstance(hl, bool) or not isinstance(hl, numbers.Real) or not np.isfinite(hl) or hl <= 0:
                raise ValueError(f"half_life must be a positive number (in timestamp units), got {hl!r}")
            if data.timestamps is None:
                raise ValueError("half_life needs timestamps: build the Interactions with timestamp_col=")
            t = np.asarray(data.timestamps, dtype=np.float64)
            latest = np.full(m.shape[0], -np.inf)
            np.maximum.at(latest, rows, t)
            w = w * np.exp2(-(latest[rows] - t) / float(hl))
        if not np.isfinite(w).all():
            raise ValueError("interaction weights must be finite")
        return sp.csr_matrix((w.astype(np.float32), m.indices, m.indptr), shape=m.shape)

    def _set_users(self, data: Interactions) -> None:
        W = self._user_weights(data)
        threads = resolve_threads(self.n_threads)
        wi, wj, wv = _csr3(W)
        pi, pj, pv = self.profile_indptr_, self.profile_indices_, self.profile_data_
        n_feat = len(self.feature_names_)
        self.user_indptr_, self.user_indices_, self.user_data_ = _core.content.weighted_profiles(
            wi, wj, wv, pi, pj, pv, n_feat, True, threads
        )
        # the average preference of all interactions, for users without any
        counts = np.bincount(W.indices, minlength=W.shape[1]).astype(np.float32)
        nz = np.flatnonzero(counts)
        g = sp.csr_matrix((counts[nz], nz.astype(np.int32), np.array([0, len(nz)])), shape=(1, W.shape[1]))
        gi, gj, gv = _core.content.weighted_profiles(*_csr3(g), pi, pj, pv, n_feat, True, threads)
        dense = np.zeros(n_feat, dtype=np.float32)
        dense[gj] = gv
        self.global_profile_ = dense
        self._users = None

    # -- matrices -------------------------------------------------------------------------------
    @property
    def item_profiles_(self) -> sp.csr_matrix:
        self._check_fitted()
        if getattr(self, "_profiles", None) is None:
            self._profiles = sp.csr_matrix(
                (self.profile_data_, self.profile_indices_, self.profile_indptr_),
                shape=(len(self.profile_indptr_) - 1, len(self.feature_names_)),
            )
        return self._profiles

    @property
    def user_profiles_(self) -> sp.csr_matrix:
        self._check_fitted()
        if getattr(self, "_users", None) is None:
            self._users = sp.csr_matrix(
                (self.user_data_, self.user_indices_, self.user_indptr_),
                shape=(len(self.user_indptr_) - 1, len(self.feature_names_)),
            )
        return self._users

    def _queries(self, user_idx: np.ndarray) -> sp.csr_matrix:
        q = sp.csr_matrix(self.user_profiles_[np.asarray(user_idx, dtype=np.int64)])
        empty = np.flatnonzero(np.diff(q.indptr) == 0)
        if empty.size:
            g = sp.csr_matrix(self.global_profile_[None, :])
            lil = q.tolil()
            for r in empty:
                lil[r] = g
            q = sp.csr_matrix(lil, dtype=np.float32)
            q.sort_indices()
        return q

    def _dense_scores(self, user_idx: np.ndarray) -> np.ndarray:
        q = self._queries(user_idx)
        return _core.content.cosine_scores(
            *_csr3(q), self.profile_indptr_, self.profile_indices_, self.profile_data_,
            len(self.feature_names_), None, resolve_threads(self.n_threads),
        )

    def _score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        out = np.empty(len(user_idx), dtype=np.float32)
        if len(user_idx) == 0:
            return out
        q = self._queries(user_idx)
        x = self.item_profiles_[np.asarray(item_idx, dtype=np.int64)]
        dots = np.asarray(q.multiply(x).sum(axis=1)).ravel()
        qn = np.sqrt(np.asarray(q.multiply(q).sum(axis=1)).ravel())
        xn = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        denom = qn * xn
        out[:] = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        return out

    # -- item-to-item and explanations ----------------------------------------------------------
    def similar_items(
        self, items: Any, n: int = 10, *, ids: IdKind = "raw", n_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items whose profiles are closest by cosine (the item itself left out)."""
        from .retrieval import topk_dense

        self._check_fitted()
        n = check_positive_int(n, "n")
        if n > self.n_items_ - 1:
            raise ValueError(f"n={n} is larger than the {self.n_items_ - 1} other items; ask for at most that")
        single = np.ndim(items) == 0
        idx = self._to_index(np.atleast_1d(items), "item", ids)
        threads = resolve_threads(self._threads() if n_threads is None else n_threads)
        q = sp.csr_matrix(self.item_profiles_[idx])
        scores = _core.content.cosine_scores(
            *_csr3(q), self.profile_indptr_, self.profile_indices_, self.profile_data_,
            len(self.feature_names_), None, threads,
        )
        exclude = sp.csr_matrix(
            (np.ones(len(idx), dtype=np.float32), idx, np.arange(len(idx) + 1)), shape=(len(idx), self.n_items_)
        )
        top, vals = topk_dense(scores, n, exclude=exclude, n_threads=threads)
        out = top if ids == "index" else self._to_raw_items(top)
        return (out[0], vals[0]) if single else (out, vals)

    def explain(self, user: Any, item: Any, n: int = 5, *, ids: IdKind = "raw") -> pd.DataFrame:
        """The features that made ``item`` match ``user``: the largest terms of the cosine.

        Returns a DataFrame with ``feature``, ``user_weight`` (the user's preference vector),
        ``item_weight`` (the item's profile) and ``contribution`` (their product divided by the
        two norms; the contributions of all features sum to the score), best first.
        """
        self._check_fitted()
        n = check_positive_int(n, "n")
        u = self._to_index(np.atleast_1d(user), "user", ids)
        i = self._to_index(np.atleast_1d(item), "item", ids)
        if u.size != 1 or i.size != 1:
            raise ValueError("explain takes one user and one item")
        q = self._queries(u)
        x = self.item_profiles_[i]
        qd = np.asarray(q.todense()).ravel()
        xd = np.asarray(x.todense()).ravel()
        denom = float(np.linalg.norm(qd) * np.linalg.norm(xd))
        contrib = qd * xd / denom if denom > 0 else np.zeros_like(qd)
        nz = np.flatnonzero(contrib)
        order = nz[np.argsort(-contrib[nz], kind="stable")][:n]
        return pd.DataFrame({
            "feature": self.feature_names_[order],
            "user_weight": qd[order],
            "item_weight": xd[order],
            "contribution": contrib[order],
        })

    # -- new items ------------------------------------------------------------------------------
    def add_items(self, item_ids: Any, item_features: Any) -> ContentRecommender:
        """Append items known only by their features (a DataFrame with the fitted columns, or a
        matrix with one column per profile feature); they can be recommended at once."""
        self._check_fitted()
        ids = np.atleast_1d(np.asarray(item_ids))
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("item_ids must be a non-empty 1-D array of new item ids")
        table = self._lookup("item")
        dup = [v for v in ids.tolist() if v in table]
        if dup or len(set(ids.tolist())) != len(ids):
            raise ValueError(f"item_ids must be new and unique; already known or repeated: {dup[:5] or 'repeated ids'}")
        state = str(self.encoder_state_)
        if isinstance(item_features, (pd.DataFrame, pd.Series)):
            if not state:
                raise ValueError("the model was fitted on a feature matrix: give the new items' features as a matrix")
            new = FeatureEncoder.from_json(state).transform(item_features)
        else:
            new, _, _ = encode_features(item_features, len(ids), "new item")
            if new.shape[1] != len(self.feature_names_):
                raise ValueError(
                    f"new item features must have {len(self.feature_names_)} columns (one per profile feature), "
                    f"got {new.shape[1]}"
                )
        if new.shape[0] != len(ids):
            raise ValueError(f"item_features has {new.shape[0]} rows for {len(ids)} new items")
        self._set_profiles(sp.vstack([self.item_profiles_, new], format="csr"))
        self.item_ids_ = np.concatenate([self.item_ids_, ids.astype(self.item_ids_.dtype) if self.item_ids_.dtype != object else ids.astype(object)])
        self.seen_ = sp.csr_matrix((self.seen_.data, self.seen_.indices, self.seen_.indptr),
                                   shape=(self.seen_.shape[0], self.seen_.shape[1] + len(ids)))
        self._item_lookup = None
        return self

    # -- persistence ----------------------------------------------------------------------------
    def _restore_arrays(self, state: dict[str, np.ndarray]) -> None:
        super()._restore_arrays(state)
        self._profiles = None
        self._users = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._profiles = None
        self._users = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_profiles", None)
        state.pop("_users", None)
        return state

    def _check_state(self) -> None:
        super()._check_state()
        n_feat = len(self.feature_names_)
        if len(self.profile_indptr_) != self.n_items_ + 1 or len(self.user_indptr_) != self.n_users_ + 1:
            raise ValueError("profiles do not match the numbers of users and items")
        for name in ("profile_indices_", "user_indices_"):
            idx = getattr(self, name)
            if idx.size and (idx.min() < 0 or idx.max() >= n_feat):
                raise ValueError(f"{name} holds features outside [0, {n_feat})")
        if len(self.global_profile_) != n_feat:
            raise ValueError("global_profile_ does not match the features")
