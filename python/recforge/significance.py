"""Significance of differences between models evaluated on the same users.

Every test is *paired*: ``a[i]`` and ``b[i]`` are two models' metric values for the same user.
Two-sided p-values throughout. Use :func:`holm` when one baseline is compared with several
models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .base import check_random_state

__all__ = [
    "SignificanceResult",
    "paired_t_test",
    "wilcoxon_test",
    "permutation_test",
    "bootstrap_ci",
    "holm",
    "paired_test",
]

Method = Literal["permutation", "t", "wilcoxon"]


@dataclass(frozen=True)
class SignificanceResult:
    """Outcome of a paired test of ``mean(a) - mean(b)``."""

    method: str
    statistic: float
    p_value: float
    mean_difference: float
    n: int

    def __str__(self) -> str:
        return (
            f"{self.method}: mean difference {self.mean_difference:+.5f} over {self.n} users, "
            f"statistic {self.statistic:.4f}, p = {self.p_value:.4g}"
        )


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired tests need the same users: got {x.size} and {y.size} values")
    if x.size < 2:
        raise ValueError("paired tests need at least two users")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("metric values contain NaN; drop the users without a value from both models")
    return x, y


def paired_t_test(a: Any, b: Any) -> SignificanceResult:
    """Student's paired t-test."""
    from scipy import stats

    x, y = _pair(a, b)
    d = x - y
    if np.all(d == d[0]):
        # no variance: identical models (or a constant shift, which is certain)
        p = 1.0 if d[0] == 0 else 0.0
        stat = 0.0 if d[0] == 0 else float(np.sign(d[0]) * np.inf)
        return SignificanceResult("paired t-test", stat, p, float(d.mean()), d.size)
    res = stats.ttest_rel(x, y)
    return SignificanceResult("paired t-test", float(res.statistic), float(res.pvalue), float(d.mean()), d.size)


def wilcoxon_test(a: Any, b: Any) -> SignificanceResult:
    """Wilcoxon signed-rank test (zero differences dropped, as Wilcoxon proposed)."""
    from scipy import stats

    x, y = _pair(a, b)
    d = x - y
    if np.all(d == 0):
        return SignificanceResult("Wilcoxon signed-rank", 0.0, 1.0, 0.0, d.size)
    res = stats.wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    return SignificanceResult("Wilcoxon signed-rank", float(res.statistic), float(res.pvalue), float(d.mean()), d.size)


def permutation_test(
    a: Any, b: Any, *, n_resamples: int = 10_000, random_state: Any = 0
) -> SignificanceResult:
    """Fisher's randomization test: flip the sign of each user's difference at random.

    The p-value is ``(1 + #resamples with |mean| >= |observed mean|) / (1 + n_resamples)``.
    """
    x, y = _pair(a, b)
    d = x - y
    observed = abs(d.mean())
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    if np.all(d == 0):
        return SignificanceResult("permutation", 0.0, 1.0, 0.0, d.size)
    rng = check_random_state(random_state)
    extreme = 0
    block = max(1, min(n_resamples, (1 << 24) // d.size))
    done = 0
    while done < n_resamples:
        m = min(block, n_resamples - done)
        signs = rng.integers(0, 2, size=(m, d.size), dtype=np.int8) * 2 - 1
        means = np.abs(signs @ d) / d.size
        extreme += int(np.count_nonzero(means >= observed - 1e-12 * max(observed, 1.0)))
        done += m
    p = (extreme + 1) / (n_resamples + 1)
    return SignificanceResult("permutation", float(d.mean()), float(p), float(d.mean()), d.size)


def paired_test(a: Any, b: Any, method: Method = "permutation", **kwargs: Any) -> SignificanceResult:
    """Dispatch to :func:`permutation_test`, :func:`paired_t_test` or :func:`wilcoxon_test`."""
    if method == "permutation":
        return permutation_test(a, b, **kwargs)
    if method == "t":
        return paired_t_test(a, b)
    if method == "wilcoxon":
        return wilcoxon_test(a, b)
    raise ValueError(f"method must be 'permutation', 't' or 'wilcoxon', got {method!r}")


def bootstrap_ci(
    values: Any, *, confidence: float = 0.95, n_resamples: int = 10_000, random_state: Any = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        raise ValueError("no values to bootstrap")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = check_random_state(random_state)
    means = np.empty(n_resamples)
    block = max(1, (1 << 22) // v.size)
    for start in range(0, n_resamples, block):
        m = min(block, n_resamples - start)
        idx = rng.integers(0, v.size, size=(m, v.size))
        means[start : start + m] = v[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def holm(p_values: Any) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, family-wise error control)."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must be in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted
