from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import recforge as rf
from recforge import significance as S
from recforge.evaluation import compare, evaluate_segments, per_user_metrics


def test_tests_agree_with_scipy_and_detect_differences():
    rng = np.random.default_rng(0)
    a = rng.random(300)
    b = a - 0.05 + 0.02 * rng.standard_normal(300)
    t = S.paired_t_test(a, b)
    assert t.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    w = S.wilcoxon_test(a, b)
    assert w.p_value == pytest.approx(stats.wilcoxon(a, b).pvalue)
    p = S.permutation_test(a, b, n_resamples=2000)
    assert p.p_value < 0.01 and p.mean_difference == pytest.approx(np.mean(a - b))
    # no difference at all
    for res in (S.paired_t_test(a, a), S.wilcoxon_test(a, a), S.permutation_test(a, a)):
        assert res.p_value == 1.0


def test_permutation_test_is_calibrated_under_the_null():
    rng = np.random.default_rng(1)
    pvals = [S.permutation_test(rng.standard_normal(40), rng.standard_normal(40), n_resamples=500, random_state=s).p_value
             for s in range(200)]
    assert 0.02 < np.mean(np.array(pvals) < 0.05) < 0.10


def test_bootstrap_ci_covers_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(2)
    small = rng.standard_normal(50) + 3
    big = rng.standard_normal(5000) + 3
    lo_s, hi_s = S.bootstrap_ci(small, n_resamples=2000)
    lo_b, hi_b = S.bootstrap_ci(big, n_resamples=2000)
    assert lo_s < small.mean() < hi_s and lo_b < 3 < hi_b
    assert hi_b - lo_b < (hi_s - lo_s) / 5


def test_holm_by_hand():
    np.testing.assert_allclose(S.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(S.holm([0.5]), [0.5])
    with pytest.raises(ValueError):
        S.holm([1.5])


def test_bad_input():
    with pytest.raises(ValueError, match="same users"):
        S.paired_t_test([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        S.permutation_test([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="method"):
        S.paired_test([1, 2], [2, 3], method="z")


@pytest.fixture(scope="module")
def split():
    data = rf.datasets.make_synthetic(n_users=500, n_items=250, random_state=3)
    return rf.split.random_holdout(data, test_fraction=0.25, random_state=3)


def test_compare_marks_known_different_models_and_not_copies(split):
    train, test = split
    table = compare(
        {"Popularity": rf.Popularity(), "Random": rf.Random(random_state=1), "Copy": rf.Popularity()},
        train, test, k=10, metrics=["ndcg", "recall", "coverage"], n_resamples=2000,
    )
    row = table.set_index(["model", "metric"])
    assert row.loc[("Random", "ndcg"), "p_adjusted"] < 0.01
    assert row.loc[("Random", "ndcg"), "marker"] == "▼"
    assert row.loc[("Copy", "ndcg"), "p_value"] == 1.0 and not row.loc[("Copy", "ndcg"), "significant"]
    assert row.loc[("Popularity", "ndcg"), "marker"] == "baseline"
    lo, hi = row.loc[("Popularity", "ndcg"), ["ci_low", "ci_high"]]
    assert lo < row.loc[("Popularity", "ndcg"), "value"] < hi
    assert np.isnan(row.loc[("Random", "coverage"), "p_value"])
    for method in ("t", "wilcoxon"):
        t = compare([rf.Popularity(), rf.Random(random_state=1)], train, test, k=10, metrics=["ndcg"], method=method)
        assert t.p_adjusted.iloc[1] < 0.01
    import matplotlib

    matplotlib.use("Agg")
    from recforge.plot import plot_comparison

    ax = plot_comparison(table, metric="ndcg")
    assert len(ax.patches) == 3


def test_per_user_values_average_to_evaluate(split):
    train, test = split
    model = rf.Popularity().fit(train)
    per_user = per_user_metrics(model, train, test, k=[5, 10], metrics=["ndcg", "novelty"])
    table = rf.evaluate(model, train, test, k=[5, 10], metrics=["ndcg", "novelty"]).set_index(["metric", "k"])
    assert per_user["ndcg@10"].mean() == pytest.approx(table.loc[("ndcg", 10), "value"])
    assert per_user["novelty@5"].mean() == pytest.approx(table.loc[("novelty", 5), "value"])
    assert set(per_user.index) <= set(test.user_ids)
    with pytest.raises(ValueError, match="whole set"):
        per_user_metrics(model, train, test, metrics=["coverage"])


def test_segments_split_users_and_items(split):
    train, test = split
    model = rf.Popularity().fit(train)
    table = evaluate_segments(model, train, test, k=10, metrics=["recall", "hit_rate"])
    overall = table[(table.segment_type == "all") & (table.metric == "recall")].iloc[0]
    users = table[(table.segment_type == "user") & (table.metric == "recall")]
    # user segments partition the evaluated users: weighted means give back the overall value
    assert users.n_users.sum() == overall.n_users
    assert (users.value * users.n_users).sum() / users.n_users.sum() == pytest.approx(overall.value)
    items = table[(table.segment_type == "item") & (table.metric == "recall")].set_index("segment")
    # most-popular recommends head items only: the long tail is never found
    assert items.loc["tail", "value"] == 0.0 and items.loc["head", "value"] > 0.1
    labels = np.where(np.arange(train.n_users) % 2 == 0, "even", "odd")
    custom = evaluate_segments(model, train, test, k=10, metrics=["ndcg"], user_segments=labels, item_segments=None)
    assert set(custom.segment) == {"all", "even", "odd"}
    with pytest.raises(ValueError, match="one label per user"):
        evaluate_segments(model, train, test, user_segments=["a"], item_segments=None)
    with pytest.raises(ValueError, match="cannot be split by segment"):
        evaluate_segments(model, train, test, metrics=["gini"])
