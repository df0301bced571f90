"""Plots of evaluation results (needs matplotlib: ``pip install recforge[plot]``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["plot_metrics", "plot_comparison"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib: pip install 'recforge[plot]' (or pip install matplotlib)"
        ) from exc
    return plt


def plot_metrics(results: pd.DataFrame | dict[str, pd.DataFrame], *, k: int | None = None, ax: Any = None) -> Any:
    """Grouped bars of metric values, one group per metric and one bar per model.

    Parameters
    ----------
    results : DataFrame or dict of name -> DataFrame
        Tables from :func:`recforge.evaluate`; a single table may carry a ``model`` column.
    k : int, optional
        The cut-off to show (default: the smallest in the table).
    ax : matplotlib Axes, optional

    Returns
    -------
    The matplotlib Axes.
    """
    plt = _pyplot()
    if isinstance(results, dict):
        frames = [df.assign(model=name) for name, df in results.items()]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    else:
        table = results if "model" in results else results.assign(model="model")
    if table.empty:
        raise ValueError("nothing to plot: the results table is empty")
    cut = int(table["k"].min()) if k is None else int(k)
    shown = table[table["k"] == cut]
    if shown.empty:
        raise ValueError(f"no results at k={cut}; available: {sorted(table['k'].unique())}")
    wide = shown.pivot_table(index="metric", columns="model", values="value", sort=False)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 1.1 * len(wide), 3.6))
    wide.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_ylabel(f"mean value at k={cut}")
    ax.set_xlabel("")
    ax.legend(title="model", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return ax


def plot_comparison(table: pd.DataFrame, *, metric: str | None = None, k: int | None = None, ax: Any = None) -> Any:
    """Horizontal bars with bootstrap confidence intervals from :func:`recforge.evaluation.compare`.

    Bars of models significantly better (worse) than the baseline are marked ▲ (▼).
    """
    plt = _pyplot()
    needed = {"model", "metric", "k", "value", "ci_low", "ci_high", "marker"}
    if not needed <= set(table.columns):
        raise ValueError(f"expected a table from recforge.evaluation.compare with columns {sorted(needed)}")
    name = metric if metric is not None else str(table["metric"].iloc[0])
    rows = table[table["metric"] == name]
    if k is not None:
        rows = rows[rows["k"] == k]
    elif rows["k"].notna().any():
        rows = rows[rows["k"] == rows["k"].min()]
    if rows.empty:
        raise ValueError(f"no rows for metric {name!r} at k={k}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 0.6 + 0.45 * len(rows)))
    y = list(range(len(rows)))[::-1]
    values = rows["value"].to_numpy(dtype=float)
    low = values - rows["ci_low"].to_numpy(dtype=float)
    high = rows["ci_high"].to_numpy(dtype=float) - values
    has_ci = ~(pd.isna(low) | pd.isna(high))
    colors = ["#4c72b0" if m == "baseline" else "#55a868" if m == "▲" else "#c44e52" if m == "▼" else "#8c8c8c"
              for m in rows["marker"]]
    ax.barh(y, values, color=colors, xerr=[low.clip(0) * has_ci, high.clip(0) * has_ci], capsize=3)
    labels = [f"{mdl} {mk if mk != 'baseline' else '(baseline)'}".strip() for mdl, mk in zip(rows["model"], rows["marker"])]
    ax.set_yticks(y, labels)
    cut = rows["k"].iloc[0]
    ax.set_xlabel(f"{name}@{int(cut)}" if pd.notna(cut) else name)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return ax
