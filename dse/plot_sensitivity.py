"""Per-knob sensitivity of :mod:`dse.plot` (``sensitivity``, ``sensitivity_table``): how much a metric moves
across the levels of each parameter, ranked, as a table and a bar chart; plotly or matplotlib.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from .errors import StudyError
from .plot_style import _REPLOT_ATTR, Backend, Figure, _check_backend, _escape
from .view import INFEASIBLE, StudyView

if TYPE_CHECKING:
    pass

class Sensitivity(NamedTuple):
    """Result of :func:`sensitivity`: the ranked table and its figure (unpack as ``table, fig = ...``)."""

    table: pd.DataFrame
    figure: Figure


def _levels(s: pd.Series, bins: int) -> pd.Series:
    """Group label per row: the value itself, or a quantile bin for numeric columns with more than `bins` values."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and s.nunique() > bins:
        return pd.qcut(s, q=bins, duplicates="drop").astype(str).where(s.notna(), "n/a")
    return s.astype(object).where(s.notna(), "n/a").astype(str)


def sensitivity_table(view: StudyView, metric: str, *, bins: int = 8, feasible_only: bool = False) -> pd.DataFrame:
    """The ranked per-knob effect table of :func:`sensitivity`, without the figure."""
    view.check_metric(metric)
    if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool) or bins < 2:
        raise StudyError(f"bins must be an integer >= 2, got {bins!r}")
    df = view.complete()
    if feasible_only:
        df = df[df["category"] != INFEASIBLE]
    df = df[np.isfinite(df[metric].to_numpy(dtype=float))]
    y = pd.Series(df[metric].to_numpy(dtype=float), index=df.index)
    maximize = view.direction(metric) == "max"
    total = float(np.ptp(y.to_numpy())) if len(y) else float("nan")
    rows = []
    for p in view.params:  # one groupby per parameter; the rows are never looped over in Python
        g = y.groupby(_levels(df[p], bins), sort=False)
        med = g.median()
        best = g.max() if maximize else g.min()
        if len(med) == 0:
            rows.append(dict(parameter=p, n_levels=0, spread_median=np.nan, spread_best=np.nan, best_level=None,
                             worst_level=None, best_median=np.nan))
            continue
        best_lvl = med.idxmax() if maximize else med.idxmin()
        worst_lvl = med.idxmin() if maximize else med.idxmax()
        rows.append(dict(
            parameter=p, n_levels=int(len(med)), spread_median=float(med.max() - med.min()),
            spread_best=float(best.max() - best.min()), best_level=str(best_lvl), worst_level=str(worst_lvl),
            best_median=float(med[best_lvl]),
        ))
    table = pd.DataFrame(rows, columns=["parameter", "n_levels", "spread_median", "spread_best", "best_level",
                                        "worst_level", "best_median"])
    table.insert(4, "relative_spread", table["spread_median"] / total if total > 0 else np.nan)
    table = table.sort_values(["spread_median", "spread_best"], ascending=False, na_position="last", kind="stable")
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    return table


def sensitivity(
    view: StudyView,
    metric: str,
    *,
    backend: Backend = "plotly",
    bins: int = 8,
    feasible_only: bool = False,
) -> Sensitivity:
    """Rank the parameters by their main effect on `metric`.

    The measure (a main-effects plot reduced to one number per knob): group the complete trials by the value
    of one parameter (numeric parameters with more than `bins` distinct values are cut into `bins` quantile
    bins; missing values of conditional parameters form an "n/a" group), take the metric's median and best
    value (min or max by its direction) in each group; a knob's effect is the spread (max - min) of those group
    medians (``spread_median``, the ranking key) and of the group bests (``spread_best``), in the metric's own
    unit. ``relative_spread`` divides ``spread_median`` by the metric's overall range. Other knobs are not held
    fixed, so this measures association over the sampled trials, not a controlled effect.

    Returns:
        Sensitivity(table, figure): table indexed by rank (1 = largest effect) with columns parameter,
        n_levels, spread_median, spread_best, relative_spread, best_level, worst_level, best_median;
        figure a bar chart of the spreads.
    """
    _check_backend(backend)
    table = sensitivity_table(view, metric, bins=bins, feasible_only=feasible_only)
    maximize = view.direction(metric) == "max"
    title = f"{view.name}: per-knob effect on {metric} ({'max' if maximize else 'min'})"
    if backend == "matplotlib":
        return Sensitivity(table, _sensitivity_mpl(table, metric, title))
    import plotly.graph_objects as go

    t = table.iloc[::-1]
    hover = ("best level: " + _escape(t["best_level"].to_numpy(dtype=object)) + "<br>worst level: "
             + _escape(t["worst_level"].to_numpy(dtype=object)))
    fig = go.Figure([
        go.Bar(y=t["parameter"].tolist(), x=t["spread_median"].tolist(), orientation="h", name="spread of medians",
               marker_color="#1f77b4", hovertext=hover.tolist()),
        go.Bar(y=t["parameter"].tolist(), x=t["spread_best"].tolist(), orientation="h", name="spread of bests",
               marker_color="#ff7f0e", hovertext=hover.tolist()),
    ])
    fig.update_layout(barmode="group", title=dict(text=html.escape(title)), xaxis_title=f"{metric} spread",
                      template="plotly_white", height=max(320, 120 + 40 * len(t)), margin=dict(l=120, r=20, t=50, b=40),
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0.0))
    setattr(fig, _REPLOT_ATTR, lambda: _sensitivity_mpl(table, metric, title))
    return Sensitivity(table, fig)


def _sensitivity_mpl(table: pd.DataFrame, metric: str, title: str) -> Any:
    from matplotlib.figure import Figure

    t = table.iloc[::-1]
    fig = Figure(figsize=(8, max(3.0, 0.5 * len(t) + 1.5)), layout="constrained")
    ax = fig.add_subplot()
    pos = np.arange(len(t))
    ax.barh(pos + 0.2, t["spread_median"].to_numpy(dtype=float), height=0.4, label="spread of medians", color="#1f77b4")
    ax.barh(pos - 0.2, t["spread_best"].to_numpy(dtype=float), height=0.4, label="spread of bests", color="#ff7f0e")
    ax.set_yticks(pos, t["parameter"].tolist())
    ax.set_xlabel(f"{metric} spread")
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


