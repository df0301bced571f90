"""Metric conventions against trec_eval (pytrec_eval), ranx and scikit-learn, plus hand cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from recforge import metrics as M


def random_runs(n_queries: int, seed: int):
    """Graded qrels and scored runs with many tied scores, documents named with mixed widths."""
    rng = np.random.default_rng(seed)
    run, qrels = {}, {}
    for q in range(n_queries):
        n_docs = int(rng.integers(1, 30))
        docs = [f"d{int(d)}" for d in rng.choice(200, size=n_docs, replace=False)]
        scores = np.round(rng.random(n_docs), 1)  # one decimal: ties are common
        run[f"q{q}"] = {d: float(s) for d, s in zip(docs, scores)}
        judged = rng.choice(200, size=int(rng.integers(1, 15)), replace=False)
        grades = rng.integers(0, 4, size=len(judged))
        qrels[f"q{q}"] = {f"d{int(d)}": int(g) for d, g in zip(judged, grades)}
        if rng.random() < 0.3:  # some judged documents come from the run itself
            for d in docs[: int(rng.integers(1, n_docs + 1))]:
                qrels[f"q{q}"][d] = int(rng.integers(0, 4))
    return run, qrels


def test_matches_trec_eval_with_its_tie_breaking():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = random_runs(3000, seed=0)
    measures = {"P.1,5,10", "recall.5,10", "ndcg_cut.5,10", "map_cut.5,10", "recip_rank", "success.1,5,10"}
    ref = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    ours = M.evaluate_run(run, qrels, k=[1, 5, 10, 1000], ties="docid_desc")
    pairs = {
        "P_1": "precision@1", "P_5": "precision@5", "P_10": "precision@10",
        "recall_5": "recall@5", "recall_10": "recall@10",
        "ndcg_cut_5": "ndcg@5", "ndcg_cut_10": "ndcg@10",
        "map_cut_5": "map@5", "map_cut_10": "map@10",
        "recip_rank": "mrr@1000",
        "success_1": "hit_rate@1", "success_5": "hit_rate@5", "success_10": "hit_rate@10",
    }
    for q, values in ref.items():
        for theirs, mine in pairs.items():
            assert ours.at[q, mine] == pytest.approx(values[theirs], abs=1e-9), (q, theirs)


def test_matches_ranx_with_its_order():
    ranx = pytest.importorskip("ranx")
    run, qrels = random_runs(2000, seed=1)
    # ranx needs at least one relevant document per query
    qrels = {q: ({**r, "d_rel": 1} if max(r.values()) == 0 else r) for q, r in qrels.items()}
    R, Q = ranx.Run(run), ranx.Qrels(qrels)
    R.sort()
    ranx_order = {q: list(R.run[q].keys()) for q in run}  # ranx's own order of tied documents
    names = ["precision", "recall", "ndcg", "map", "mrr", "hit_rate"]
    ranx_names = {"precision": "precision", "recall": "recall", "ndcg": "ndcg", "map": "map",
                  "mrr": "mrr", "hit_rate": "hit_rate"}
    for k in (1, 5, 10):
        wanted = [f"{ranx_names[n]}@{k}" for n in names] + [f"ndcg_burges@{k}"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = ranx.evaluate(Q, R, wanted, return_mean=False, make_comparable=False)
        ours = M.evaluate_run(ranx_order, qrels, k=k, ties="input_order")
        burges = M.evaluate_run(ranx_order, qrels, k=k, ties="input_order", metrics=["ndcg"], gain="exp2")
        qids = sorted(run)
        for n in names:
            np.testing.assert_allclose(ours.loc[qids, f"{n}@{k}"], ref[f"{ranx_names[n]}@{k}"], atol=1e-9, err_msg=n)
        np.testing.assert_allclose(burges.loc[qids, f"ndcg@{k}"], ref[f"ndcg_burges@{k}"], atol=1e-9)


def test_matches_sklearn_ndcg_with_averaged_ties():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    n_samples, n_labels = 400, 12
    y_true = rng.integers(0, 4, size=(n_samples, n_labels)).astype(float)
    y_true[:20] = 0  # some samples without any relevant label
    y_score = rng.integers(0, 5, size=(n_samples, n_labels)).astype(float)  # heavy ties
    run = {s: {d: y_score[s, d] for d in range(n_labels)} for s in range(n_samples)}
    qrels = {s: {d: y_true[s, d] for d in range(n_labels)} for s in range(n_samples)}
    for k in (1, 3, 5, 12):
        ours = M.evaluate_run(run, qrels, k=k, ties="average", metrics=["ndcg"])[f"ndcg@{k}"]
        per_sample = [
            sklearn_metrics.ndcg_score(y_true[s : s + 1], y_score[s : s + 1], k=k) for s in range(n_samples)
        ]
        np.testing.assert_allclose(ours.to_numpy(), per_sample, atol=1e-9)
        assert ours.mean() == pytest.approx(sklearn_metrics.ndcg_score(y_true, y_score, k=k), abs=1e-9)


def test_trec_eval_issue_22_renaming_documents_changes_ndcg_when_scores_tie():
    # Two documents share a score; only one is relevant. trec_eval orders tied documents by
    # decreasing document id, so renaming the relevant document moves it across the tie.
    qrels = {"q": {"a": 1}}
    before = M.evaluate_run({"q": {"a": 1.0, "b": 1.0}}, qrels, k=1, metrics=["ndcg"])
    after = M.evaluate_run({"q": {"c": 1.0, "b": 1.0}}, {"q": {"c": 1}}, k=1, metrics=["ndcg"])
    assert before.at["q", "ndcg@1"] == 0.0  # "b" > "a": b ranks first
    assert after.at["q", "ndcg@1"] == 1.0  # "c" > "b": c ranks first
    # input order and averaged ties do not depend on the names
    for name_a in ("a", "c"):
        r = {"q": {name_a: 1.0, "b": 1.0}}
        assert M.evaluate_run(r, {"q": {name_a: 1}}, k=1, metrics=["ndcg"], ties="input_order").iat[0, 0] == 1.0
        assert M.evaluate_run(r, {"q": {name_a: 1}}, k=1, metrics=["ndcg"], ties="average").iat[0, 0] == 0.5


def test_hand_computed_graded_case_and_dataframe_input():
    run = pd.DataFrame({"query": ["q"] * 4, "doc": ["w", "x", "y", "z"], "score": [0.9, 0.8, 0.8, 0.1]})
    qrels = pd.DataFrame({"query": ["q", "q", "q"], "doc": ["x", "z", "v"], "rel": [2, 1, 3]})
    out = M.evaluate_run(run, qrels, k=3, metrics=["ndcg", "precision", "map"])
    # order: w, y, x (tie 0.8 broken by decreasing id: "y" > "x"), z
    dcg = 2 / math.log2(4)
    idcg = 3 + 2 / math.log2(3) + 1 / 2
    assert out.at["q", "ndcg@3"] == pytest.approx(dcg / idcg)
    assert out.at["q", "precision@3"] == pytest.approx(1 / 3)
    assert out.at["q", "map@3"] == pytest.approx((1 / 3) / 3)
    exp2 = M.evaluate_run(run, qrels, k=3, metrics=["ndcg"], gain="exp2")
    assert exp2.iat[0, 0] == pytest.approx((3 / 2) / (7 + 3 / math.log2(3) + 1 / 2))


def test_empty_queries_follow_the_switch():
    run = {"q1": {"a": 1.0}, "q2": {"b": 1.0}}
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}}
    assert M.evaluate_run(run, qrels, k=1).at["q2", "ndcg@1"] == 0.0
    assert M.evaluate_run(run, qrels, k=1, empty="one").at["q2", "ndcg@1"] == 1.0
    assert np.isnan(M.evaluate_run(run, qrels, k=1, empty="skip").at["q2", "ndcg@1"])


@pytest.mark.parametrize(
    "run,qrels,kwargs,error,match",
    [
        ({"q1": {"a": 1.0}}, {"q2": {"a": 1}}, {}, ValueError, "different queries"),
        ({"q1": {"a": float("nan")}}, {"q1": {"a": 1}}, {}, ValueError, "NaN scores"),
        ({"q1": {"a": 1.0}}, {"q1": {"a": -1}}, {}, ValueError, "negative labels"),
        ({"q1": {"a": 1.0}}, {"q1": {"a": 1}}, {"k": 0}, ValueError, "positive integer"),
        ({"q1": {"a": 1.0}}, {"q1": {"a": 1}}, {"ties": "random"}, ValueError, "ties"),
        ({"q1": {"a": 1.0}}, {"q1": {"a": 1}}, {"ties": "average", "metrics": ["map"]}, ValueError, "average"),
        ({"q1": 3}, {"q1": {"a": 1}}, {}, ValueError, "ranked list"),
        ([1, 2], {"q1": {"a": 1}}, {}, ValueError, "dict"),
    ],
)
def test_bad_runs_and_qrels(run, qrels, kwargs, error, match):
    with pytest.raises(error, match=match):
        M.evaluate_run(run, qrels, **{"k": 5, **kwargs})


def test_missing_queries_can_be_intersected_or_zeroed():
    run = {"q1": {"a": 1.0}, "q3": {"a": 1.0}}
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}}
    inter = M.evaluate_run(run, qrels, k=1, missing="intersect")
    assert list(inter.index) == ["q1"]
    zero = M.evaluate_run(run, qrels, k=1, missing="zero")
    assert list(zero.index) == ["q1", "q2"] and zero.at["q2", "ndcg@1"] == 0.0


def test_duplicate_documents_are_rejected():
    run = pd.DataFrame({"query": ["q", "q"], "doc": ["a", "a"], "score": [1.0, 2.0]})
    with pytest.raises(ValueError, match="twice"):
        M.evaluate_run(run, {"q": {"a": 1}}, k=1)


def test_rating_metrics():
    assert M.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert M.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="NaN"):
        M.rmse([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="values"):
        M.mae([1, 2], [1])
