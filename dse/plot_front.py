"""Pareto-front figures of :mod:`dse.plot` (``front``): 2-D and 3-D scatters of the trials by point class, the 2-D
attainment line through the front, constraint bounds, uncertainty bands as error bars; plotly or matplotlib.
"""
from __future__ import annotations

import functools
import html
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from . import pareto as _pareto
from .errors import StudyError
from .plot_style import (
    _REPLOT_ATTR,
    STYLE,
    Backend,
    Figure,
    _axis_title,
    _check_backend,
    _color_values,
    band,
    heavy_tailed,
    hover_data,
)
from .view import DOMINATED, FRONT, INFEASIBLE, StudyView

if TYPE_CHECKING:
    pass

def _resolve_axes(view: StudyView, x: str | None, y: str | None, z: str | None) -> list[str]:
    objs = list(view.objectives)
    others = [m for m in view.metrics if m not in objs]
    defaults = objs + others
    if len(defaults) < 2 and (x is None or y is None):
        raise StudyError(f"study {view.name!r} has only the metrics {defaults}; a front plot needs two (give x= and y=)")
    x = view.check_metric(x, "x metric") if x is not None else defaults[0]
    y = view.check_metric(y, "y metric") if y is not None else next(m for m in defaults if m != x)
    axes = [x, y]
    if z is not None:
        axes.append(view.check_metric(z, "z metric"))
    if len(set(axes)) != len(axes):
        raise StudyError(f"front axes must be distinct metrics, got {axes}")
    return axes


def _nondominated_2d(F: np.ndarray, directions: list[str]) -> np.ndarray:
    """Mask of the rows of F (n x 2) not dominated in these two columns, one row per group of equal points (the
    first): the study's non-dominated filter (:func:`dse.pareto.nondominated_mask`, which keeps every copy of a
    point, as distinct trials), with each point once, as the front line draws it."""
    mask = _pareto.nondominated_mask(F, directions)
    idx = np.flatnonzero(mask)
    if len(idx) > 1:
        first = np.unique(F[idx], axis=0, return_index=True)[1]
        mask[:] = False
        mask[idx[first]] = True
    return mask


def _front_line(view: StudyView, pts: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The 2-D attainment line through the front points that stay non-dominated in (x, y).

    Returns x, y sorted by x and the step shape ("hv" when x is minimized, else "vh") that draws the
    boundary of the region these points dominate.
    """
    F = pts[[x, y]].to_numpy(dtype=float)
    F = F[np.isfinite(F).all(axis=1)]
    if len(F) == 0:
        return np.empty(0), np.empty(0), "hv"
    F = F[_nondominated_2d(F, [view.direction(x), view.direction(y)])]
    F = F[np.argsort(F[:, 0], kind="stable")]
    return F[:, 0], F[:, 1], "hv" if view.direction(x) == "min" else "vh"


def front(
    view: StudyView,
    x: str | None = None,
    y: str | None = None,
    z: str | None = None,
    *,
    backend: Backend = "plotly",
    color: str | None = None,
) -> Figure:
    """Plot the Pareto front in 2-D (x, y) or 3-D (x, y, z).

    Front points are highlighted and, in 2-D, joined by the attainment line of those that stay non-dominated in
    the two plotted metrics; dominated feasible points and infeasible points (grey crosses) are drawn apart;
    failed trials are omitted. Plotly hover shows the trial number, its parameters and metrics. Constraint
    bounds on a plotted metric are drawn as dashed lines (2-D). Where the study stores ``<metric>_lo`` and
    ``<metric>_hi`` for a plotted metric (a band, e.g. a prediction interval), the front points carry it as error
    bars (2-D). Above ``dse.plot.WEBGL_POINTS`` complete trials the 2-D plotly scatter uses WebGL.

    Args:
        view: the study's data.
        x, y, z: metric columns; x and y default to the first objectives (then other metrics), z to none (2-D).
        backend: "plotly" (interactive) or "matplotlib".
        color: optional metric or parameter to colour feasible points by (infeasible stay grey).

    Raises:
        StudyError (a ValueError): unknown metric (the message lists the valid ones) or backend.
    """
    _check_backend(backend)
    axes = _resolve_axes(view, x, y, z)
    df = view.complete()
    cvals = _color_values(view, df, color)
    if backend == "matplotlib":
        return _front_mpl(view, df, axes, color, cvals)
    fig = _front_plotly(view, df, axes, color, cvals)
    setattr(fig, _REPLOT_ATTR, functools.partial(front, view, *axes, backend="matplotlib", color=color))
    return fig


def _front_plotly(view: StudyView, df: pd.DataFrame, axes: list[str], color: str | None, cvals: np.ndarray | None) -> Any:
    import plotly.graph_objects as go

    from . import plot  # its WEBGL_POINTS, as set at this call

    three_d = len(axes) == 3
    Trace = go.Scatter3d if three_d else (go.Scattergl if len(df) > plot.WEBGL_POINTS else go.Scatter)
    fig = go.Figure()
    if cvals is not None:
        feasible = df["category"].to_numpy() != INFEASIBLE
        cmin, cmax = (float(np.nanmin(cvals[feasible])), float(np.nanmax(cvals[feasible]))) if feasible.any() else (0.0, 1.0)
    for cat in (INFEASIBLE, DOMINATED, FRONT):
        sel = (df["category"] == cat).to_numpy()
        label, colour, symbol, _, size, opacity = STYLE[cat]
        pts = df[sel]
        marker: dict[str, Any] = dict(color=colour, symbol=symbol, size=size if not three_d else max(3, size - 4), opacity=opacity)
        if cat == FRONT:
            marker["line"] = dict(color="#000000", width=1)
        if cvals is not None and cat != INFEASIBLE:
            marker.update(color=cvals[sel].tolist(), colorscale="Viridis", cmin=cmin, cmax=cmax)
            if cat == FRONT:
                marker["colorbar"] = dict(title=dict(text=color))
        coords = {k: pts[a].to_numpy(dtype=float).tolist() for k, a in zip("xyz", axes)}
        custom, template = hover_data(view, pts, label)
        bars: dict[str, Any] = {}
        for k, a in zip("xy", axes):
            b = band(pts, a) if cat == FRONT and not three_d else None
            if b is not None:   # the front's bands (<metric>_lo / _hi) as error bars
                bars[f"error_{k}"] = dict(type="data", symmetric=False, arrayminus=b[0].tolist(), array=b[1].tolist(),
                                          color=colour, thickness=1, width=3)
        fig.add_trace(
            Trace(
                **coords,
                **bars,
                mode="markers",
                name=f"{label} ({int(sel.sum())})",
                marker=marker,
                customdata=custom,
                hovertemplate=template,
                meta=cat,
            )
        )
    if three_d:
        fig.update_layout(
            scene=dict(
                xaxis_title=_axis_title(view, axes[0]), yaxis_title=_axis_title(view, axes[1]), zaxis_title=_axis_title(view, axes[2])
            )
        )
    else:
        lx, ly, shape = _front_line(view, df[df["category"] == FRONT], axes[0], axes[1])
        if len(lx) > 1:
            fig.add_trace(
                go.Scatter(
                    x=lx.tolist(), y=ly.tolist(), mode="lines", line=dict(color=STYLE[FRONT][1], width=1.5, shape=shape),
                    name="front (attainment line)", hoverinfo="skip", meta="front-line",
                )
            )
        for axis, metric in zip(("x", "y"), axes):
            if metric in view.constraints:
                op, bound = view.constraints[metric]
                add = fig.add_vline if axis == "x" else fig.add_hline
                add(bound, line=dict(dash="dash", color="#555555", width=1), annotation_text=f"{metric} {op} {bound:g}")
        fig.update_xaxes(title_text=_axis_title(view, axes[0]),
                         type="log" if heavy_tailed(df[axes[0]].to_numpy(dtype=float)) else None)
        fig.update_yaxes(title_text=_axis_title(view, axes[1]),
                         type="log" if heavy_tailed(df[axes[1]].to_numpy(dtype=float)) else None)
    fig.update_layout(
        title=dict(text=f"{html.escape(view.name)}: Pareto front"),
        template="plotly_white",
        legend=dict(orientation="h", yanchor="top", y=-0.14, xanchor="left", x=0.0),
        hoverlabel=dict(align="left"),
        margin=dict(l=60, r=20, t=50, b=40),
    )
    return fig


def _front_mpl(view: StudyView, df: pd.DataFrame, axes: list[str], color: str | None, cvals: np.ndarray | None) -> Any:
    from matplotlib.figure import Figure

    three_d = len(axes) == 3
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.add_subplot(projection="3d" if three_d else None)
    mappable = None
    for cat in (INFEASIBLE, DOMINATED, FRONT):
        sel = (df["category"] == cat).to_numpy()
        label, colour, _, mk, size, opacity = STYLE[cat]
        pts = df[sel]
        coords = [pts[a].to_numpy(dtype=float) for a in axes]
        kw: dict[str, Any] = dict(marker=mk, s=(size * 1.6) ** 2 / 2, alpha=opacity, label=f"{label} ({int(sel.sum())})")
        if cvals is not None and cat != INFEASIBLE:
            kw.update(c=cvals[sel], cmap="viridis", vmin=np.nanmin(cvals), vmax=np.nanmax(cvals))
        else:
            kw.update(color=colour)
        if cat == FRONT:
            kw.update(edgecolors="black", linewidths=0.7, zorder=3)
        sc = ax.scatter(*coords, **kw)
        if cat == FRONT and not three_d:
            bx, by = band(pts, axes[0]), band(pts, axes[1])
            if bx is not None or by is not None:   # the front's bands (<metric>_lo / _hi) as error bars
                ax.errorbar(coords[0], coords[1], xerr=None if bx is None else np.vstack(bx), yerr=None if by is None else np.vstack(by),
                            fmt="none", ecolor=colour, elinewidth=0.8, capsize=2, zorder=2, label="band (_lo to _hi)")
        if cvals is not None and cat == FRONT:
            mappable = sc
    if not three_d:
        lx, ly, shape = _front_line(view, df[df["category"] == FRONT], axes[0], axes[1])
        if len(lx) > 1:
            ax.step(lx, ly, where="post" if shape == "hv" else "pre", color=STYLE[FRONT][1], lw=1.2, zorder=2)
        for axis, metric in zip(("x", "y"), axes):
            if metric in view.constraints:
                op, bound = view.constraints[metric]
                line = ax.axvline if axis == "x" else ax.axhline
                line(bound, ls="--", color="#555555", lw=1, label=f"{metric} {op} {bound:g}")
        ax.grid(alpha=0.3)
    else:
        cast(Any, ax).set_zlabel(_axis_title(view, axes[2]))   # a 3-D Axes
    ax.set_xlabel(_axis_title(view, axes[0]))
    ax.set_ylabel(_axis_title(view, axes[1]))
    if not three_d:
        if heavy_tailed(df[axes[0]].to_numpy(dtype=float)):
            ax.set_xscale("log")
        if heavy_tailed(df[axes[1]].to_numpy(dtype=float)):
            ax.set_yscale("log")
    ax.set_title(f"{view.name}: Pareto front")
    ax.legend(loc="best", fontsize="small")
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, label=color)
    return fig


