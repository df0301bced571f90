"""Content-based recommendation: TF-IDF/BM25 against oracles, the feature encoder, the
ContentRecommender contract and behaviour, cold-item splits and the Coat reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import recforge as rf
from recforge import _core
from recforge.content import ContentRecommender, FeatureEncoder, tfidf, tokenize
from recforge.data import Interactions

from .conftest import shared_data
from .recommender_contract import RecommenderContract

CORPUS = [
    "The quick brown fox jumps over the lazy dog",
    "A lazy afternoon: dogs, cats and a fox",
    "",
    "Über-fast café 42 42 42 -- naïve résumé",
    "fox fox fox",
    "x y z",  # no token of two characters: an empty row
    "Brown bread and brown sugar",
]


def _with_features(data: Interactions) -> Interactions:
    rng = np.random.default_rng(3)
    n = data.n_items
    words = np.array(["red", "blue", "green", "wool", "silk", "cotton", "long", "short"])
    items = pd.DataFrame(
        {
            "title": [" ".join(rng.choice(words, size=3)) for _ in range(n)],
            "brand": rng.choice(["acme", "globex", "initech"], size=n),
            "tags": ["|".join(rng.choice(["a", "b", "c", "d"], size=2, replace=False)) for _ in range(n)],
            "price": rng.gamma(2.0, 10.0, size=n),
            "sale": rng.integers(0, 2, size=n),
        }
    )
    return Interactions(
        data.matrix, data.user_ids, data.item_ids, ratings=data.ratings, timestamps=data.timestamps, item_features=items
    )


# ----------------------------------------------------------------------------------------
# term weighting
# ----------------------------------------------------------------------------------------
class TestTfidf:
    @pytest.mark.parametrize("options", [{}, {"sublinear_tf": True}, {"min_df": 2}, {"max_df": 0.5}])
    def test_matches_scikit_learn(self, options):
        text = pytest.importorskip("sklearn.feature_extraction.text", reason="scikit-learn is not installed")
        ours, terms = tfidf(CORPUS, **options)
        ref = text.TfidfVectorizer(**options)
        expected = ref.fit_transform(CORPUS)
        assert list(terms) == list(ref.get_feature_names_out())
        np.testing.assert_allclose(ours.toarray(), expected.toarray(), rtol=0, atol=1e-6)

    def test_tokenizer_is_sklearns_default(self):
        text = pytest.importorskip("sklearn.feature_extraction.text", reason="scikit-learn is not installed")
        analyzer = text.TfidfVectorizer().build_analyzer()
        for doc in CORPUS:
            assert tokenize(doc) == analyzer(doc)

    def test_bm25_against_numpy(self):
        ours, terms = tfidf(CORPUS, weighting="bm25", k1=1.5, b=0.6)
        vocab = {t: j for j, t in enumerate(terms)}
        counts = np.zeros((len(CORPUS), len(terms)))
        for r, doc in enumerate(CORPUS):
            for t in tokenize(doc):
                counts[r, vocab[t]] += 1
        n = len(CORPUS)
        df = (counts > 0).sum(axis=0)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        length = counts.sum(axis=1, keepdims=True)
        avgdl = length.mean()
        w = idf * counts * 2.5 / (counts + 1.5 * (1 - 0.6 + 0.6 * length / avgdl))
        norms = np.linalg.norm(w, axis=1, keepdims=True)
        w = np.divide(w, norms, out=np.zeros_like(w), where=norms > 0)
        np.testing.assert_allclose(ours.toarray(), w, atol=1e-6)

    def test_empty_corpus_is_an_error(self):
        with pytest.raises(ValueError, match="no tokens"):
            tfidf(["", "  ", "a b"])
        with pytest.raises(ValueError, match="no term is left"):
            tfidf(["aa bb", "cc dd"], min_df=2)


class TestKernels:
    def test_cosine_scores_against_dense(self):
        rng = np.random.default_rng(0)
        Q = sp.random(7, 30, density=0.3, random_state=1, dtype=np.float32, format="csr")
        X = sp.random(11, 30, density=0.2, random_state=2, dtype=np.float32, format="csr")
        X = sp.csr_matrix(sp.diags((np.arange(11) != 3).astype(np.float32)) @ X)  # row 3 empty: scores 0
        X.eliminate_zeros()
        args = [np.asarray(a) for a in (Q.indptr.astype(np.int64), Q.indices.astype(np.int32), Q.data,
                                        X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data)]
        got = _core.content.cosine_scores(*args, 30, None, 2)
        q, x = Q.toarray(), X.toarray()
        denom = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(x, axis=1)[None, :]
        expected = np.divide(q @ x.T, denom, out=np.zeros_like(denom), where=denom > 0)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        rows = rng.choice(11, size=5, replace=False).astype(np.int32)
        np.testing.assert_allclose(_core.content.cosine_scores(*args, 30, rows, 1), expected[:, rows], atol=1e-6)
        with pytest.raises(IndexError):
            _core.content.cosine_scores(*args, 30, np.array([11], dtype=np.int32), 1)

    def test_weighted_profiles_against_dense(self):
        W = sp.random(9, 12, density=0.3, random_state=3, dtype=np.float32, format="csr")
        W.data -= 0.3  # negative weights (centred ratings) count against features
        X = sp.random(12, 20, density=0.25, random_state=4, dtype=np.float32, format="csr")
        indptr, indices, values = _core.content.weighted_profiles(
            W.indptr.astype(np.int64), W.indices.astype(np.int32), W.data, X.indptr.astype(np.int64),
            X.indices.astype(np.int32), X.data, 20, True, 2,
        )
        got = sp.csr_matrix((values, indices, indptr), shape=(9, 20)).toarray()
        w = W.toarray()
        total = np.abs(w).sum(axis=1, keepdims=True)
        expected = np.divide(w @ X.toarray(), total, out=np.zeros((9, 20)), where=total > 0)
        np.testing.assert_allclose(got, expected, atol=1e-6)


# ----------------------------------------------------------------------------------------
# encoder
# ----------------------------------------------------------------------------------------
class TestFeatureEncoder:
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "title": ["red wool coat", "blue coat", "green silk scarf"],
                "brand": ["acme", "globex", None],
                "tags": [["warm", "winter"], ["winter"], []],
                "price": [10.0, 20.0, 60.0],
                "genre_x": np.array([1, 0, 1], dtype=np.int8),
            }
        )

    def test_small_integer_codes_are_categories(self):
        enc = FeatureEncoder().fit(pd.DataFrame({"code": [3, 7, 3]}))
        assert list(enc.feature_names_) == ["code=3", "code=7"]
        wide = FeatureEncoder().fit(pd.DataFrame({"age": np.arange(30)}))
        assert list(wide.feature_names_) == ["age"]

    def test_blocks_and_names(self):
        enc = FeatureEncoder(text=["title"])
        m = enc.fit_transform(self.table())
        names = list(enc.feature_names_)
        assert "title:coat" in names and "brand=acme" in names and "tags=winter" in names
        assert "price" in names and "genre_x" in names
        dense = pd.DataFrame(m.toarray(), columns=names)
        assert dense["brand=acme"].tolist() == [1, 0, 0]  # the missing brand gives no feature
        assert dense["tags=winter"].tolist() == [1, 1, 0]
        np.testing.assert_allclose(dense["price"], (np.array([10, 20, 60]) - 30) / np.std([10, 20, 60]), rtol=1e-6)
        assert dense["genre_x"].tolist() == [1, 0, 1]  # binary indicators are not rescaled
        title = dense[[n for n in names if n.startswith("title:")]].to_numpy()
        np.testing.assert_allclose(np.linalg.norm(title, axis=1), 1.0, rtol=1e-6)

    def test_transform_and_state_round_trip(self):
        enc = FeatureEncoder(text=["title"], field_weights={"brand": 2.0})
        m = enc.fit_transform(self.table())
        again = FeatureEncoder.from_json(enc.to_json())
        np.testing.assert_allclose(again.transform(self.table()).toarray(), m.toarray(), rtol=1e-6)
        new = pd.DataFrame({"title": ["red unknownword"], "brand": ["newbrand"], "tags": ["winter|snow"],
                            "price": [30.0], "genre_x": [0]})
        row = pd.Series(again.transform(new).toarray()[0], index=enc.feature_names_)
        assert row["tags=winter"] == 1 and row[[n for n in row.index if n.startswith("brand=")]].sum() == 0
        assert enc.transform(self.table()).toarray()[0][list(enc.feature_names_).index("brand=acme")] == 2.0

    def test_bad_input(self):
        t = self.table()
        t.loc[1, "price"] = np.nan
        with pytest.raises(ValueError, match="NaN.*impute"):
            FeatureEncoder(text=["title"]).fit(t)
        with pytest.raises(ValueError, match="no tokens"):
            FeatureEncoder(text=["title"]).fit(self.table().assign(title=["", None, "a"]))
        enc = FeatureEncoder(text=["title"]).fit(self.table())
        with pytest.raises(ValueError, match="unknown feature columns"):
            enc.transform(self.table().assign(colour=["r", "g", "b"]))
        with pytest.raises(ValueError, match="lacks the fitted columns"):
            enc.transform(self.table().drop(columns=["brand"]))
        with pytest.raises(ValueError, match="not in the feature table"):
            FeatureEncoder(text=["nope"]).fit(self.table())
        with pytest.raises(ValueError, match="no rows"):
            FeatureEncoder().fit(self.table().iloc[:0])


# ----------------------------------------------------------------------------------------
# the recommender
# ----------------------------------------------------------------------------------------
class TestContentContract(RecommenderContract):
    @pytest.fixture
    def small_interactions(self, small_interactions):
        return _with_features(small_interactions)

    def make_model(self):
        return ContentRecommender(text=["title"], n_threads=2)

    def test_fit_from_scipy_and_pandas(self, small_interactions):
        with pytest.raises(ValueError, match="needs item features"):
            self.make_model().fit(small_interactions.matrix)
        features = small_interactions.item_features.reset_index(drop=True)
        model = self.make_model().fit(small_interactions.matrix, item_features=features)
        items, _ = model.recommend(3, n=4)
        assert items.dtype.kind in "iu"


class TestContentRecommender:
    def test_scores_are_cosines_of_weighted_profiles(self, small_interactions):
        data = _with_features(small_interactions)
        model = ContentRecommender(text=["title"], weighting="rating").fit(data)
        X = model.item_profiles_.toarray()
        R = data.matrix.tocsr()
        ratings = sp.csr_matrix((data.ratings, R.indices, R.indptr), shape=R.shape).toarray()
        u = 5
        profile = ratings[u] @ X / ratings[u].sum()
        expected = X @ profile / (np.linalg.norm(X, axis=1) * np.linalg.norm(profile))
        got = model.score(np.full(data.n_items, u), np.arange(data.n_items), ids="index")
        np.testing.assert_allclose(got, expected, atol=1e-5)

    def test_explanation_sums_to_the_score(self, small_interactions):
        data = _with_features(small_interactions)
        model = ContentRecommender(text=["title"]).fit(data)
        item = model.recommend("u3", n=1)[0][0]
        table = model.explain("u3", item, n=1000)
        assert table["contribution"].sum() == pytest.approx(float(model.score("u3", item)), abs=1e-5)
        assert set(table["feature"]) <= set(model.feature_names_)
        assert table["contribution"].is_monotonic_decreasing

    def test_time_decay_follows_the_latest_taste(self):
        # one user liked "wool" items long ago and "silk" items recently
        items = pd.DataFrame({"title": ["wool a1", "wool b2", "silk c3", "silk d4", "wool e5", "silk f6"]})
        df = pd.DataFrame({"user": [0, 0, 0, 0], "item": [0, 1, 2, 3], "ts": [0, 1, 1000, 1001]})
        data = Interactions.from_pandas(df, timestamp_col="ts", item_ids=np.arange(6), item_features=items)
        flat = ContentRecommender(text=["title"], weighting="binary").fit(data)
        decayed = ContentRecommender(text=["title"], weighting="binary", half_life=10.0).fit(data)
        assert flat.score(0, 4) == pytest.approx(flat.score(0, 5), abs=1e-6)
        assert decayed.score(0, 5) > decayed.score(0, 4) + 0.3
        with pytest.raises(ValueError, match="half_life"):
            ContentRecommender(text=["title"], half_life=-1).fit(data)

    def test_cold_items_and_add_items(self, small_interactions):
        data = _with_features(small_interactions)
        model = ContentRecommender(text=["title"]).fit(data)
        features = data.item_features.reset_index(drop=True)
        # an item never interacted with gets the score of an identical item
        twin = features.iloc[[7]]
        model.add_items(["new-item"], twin)
        assert model.score("u3", "new-item") == pytest.approx(float(model.score("u3", "i7")), abs=1e-6)
        top, _ = model.similar_items("new-item", n=1)
        assert model.similar_items("new-item", n=3)[1][0] == pytest.approx(1.0, abs=1e-5)
        assert top[0] in set(model.item_ids_)
        with pytest.raises(ValueError, match="new and unique"):
            model.add_items(["i1"], twin)
        with pytest.raises(ValueError, match="unknown feature columns"):
            model.add_items(["other"], twin.assign(colour="red"))

    def test_tables_indexed_by_raw_id_are_aligned(self, small_interactions):
        data = _with_features(small_interactions)
        ordered = ContentRecommender(text=["title"]).fit(data.matrix, item_features=data.item_features.reset_index(drop=True))
        shuffled = data.item_features.sample(frac=1.0, random_state=0)  # indexed by raw item id
        aligned = ContentRecommender(text=["title"]).fit(data, item_features=shuffled)
        np.testing.assert_allclose(aligned.item_profiles_.toarray(), ordered.item_profiles_.toarray(), rtol=1e-6)

    def test_bad_input(self, small_interactions):
        data = _with_features(small_interactions)
        with pytest.raises(ValueError, match="rows"):
            ContentRecommender().fit(data.matrix, item_features=np.ones((data.n_items + 1, 3)))
        with pytest.raises(ValueError, match="weighting"):
            ContentRecommender(weighting="nope", text=["title"]).fit(data)
        bad = data.item_features.copy()
        bad.iloc[0, bad.columns.get_loc("price")] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            ContentRecommender(text=["title"]).fit(data.matrix, item_features=bad.reset_index(drop=True))


# ----------------------------------------------------------------------------------------
# cold-start splits and Coat
# ----------------------------------------------------------------------------------------
def test_item_holdout_puts_items_only_in_test(small_interactions):
    train, test = rf.split.item_holdout(small_interactions, test_fraction=0.25, random_state=0)
    train_items = set(np.unique(train.matrix.indices))
    test_items = set(np.unique(test.matrix.indices))
    assert train_items and test_items and not train_items & test_items
    assert train.nnz + test.nnz == small_interactions.nnz
    assert train.shape == test.shape == small_interactions.shape
    active = np.count_nonzero(small_interactions.item_counts())
    assert len(test_items) == round(0.25 * active)


def test_read_coat():
    folder = shared_data("coat")
    train, test = rf.datasets.read_coat(folder)
    assert train.shape == test.shape == (290, 300)
    assert train.nnz == 6960 and test.nnz == 4640
    assert np.all(np.diff(train.matrix.indptr) == 24)
    assert train.user_features.shape == (290, 14) and train.item_features.shape == (300, 33)
    assert set(np.unique(train.ratings)) == {1, 2, 3, 4, 5}
    assert train.item_features.columns[0] == "gender:men"
