"""Plots of evaluation results (needs matplotlib: ``pip install recforge[plot]``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["plot_metrics"]


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
