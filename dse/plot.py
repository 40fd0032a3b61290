"""Plots of a study: Pareto front (2-D / 3-D), parallel coordinates, per-knob sensitivity; HTML or PNG.

Every function takes a :class:`~dse.view.StudyView` (plain data a Study hands over) and returns a figure:
a ``plotly.graph_objects.Figure`` (``backend="plotly"``, interactive, hover shows the configuration behind each
point) or a ``matplotlib.figure.Figure`` (``backend="matplotlib"``, static). :func:`save` writes either one as a
self-contained ``.html`` (plotly.js inlined, no CDN) or as ``.png`` (plotly figures made here are re-plotted with
matplotlib, so no browser or kaleido is needed).

Point classes, the same in every plot: the study's feasible non-dominated trials ("front", highlighted),
other feasible trials ("dominated"), and trials that break a constraint ("infeasible", grey crosses).
Failed and running trials are left out.
"""
from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Union, cast

import numpy as np
import pandas as pd

from .errors import StudyError
from .view import DOMINATED, FRONT, INFEASIBLE, StudyView

if TYPE_CHECKING:
    import matplotlib.figure
    import plotly.graph_objects

#: What the plotting functions return: a plotly figure or a matplotlib figure, by backend.
Figure = Union["plotly.graph_objects.Figure", "matplotlib.figure.Figure"]

__all__ = ["StudyView", "Sensitivity", "front", "parallel", "sensitivity", "sensitivity_table", "save", "hover_data", "band"]

Backend = Literal["plotly", "matplotlib"]
BACKENDS: tuple[str, ...] = ("plotly", "matplotlib")

#: Marker style per point class: (label, colour, plotly symbol, matplotlib marker, size, opacity).
STYLE: dict[str, tuple[str, str, str, str, int, float]] = {
    INFEASIBLE: ("infeasible", "#9e9e9e", "x", "x", 6, 0.55),
    DOMINATED: ("dominated (feasible)", "#6baed6", "circle", "o", 6, 0.55),
    FRONT: ("Pareto front", "#d62728", "diamond", "D", 10, 1.0),
}
#: Above this many complete trials, 2-D plotly scatters use WebGL (Scattergl): SVG gets slow in browsers.
WEBGL_POINTS = 20_000
_REPLOT_ATTR = "_dse_replot"  # plotly figures made here carry how to re-plot them with matplotlib


class Sensitivity(NamedTuple):
    """Result of :func:`sensitivity`: the ranked table and its figure (unpack as ``table, fig = ...``)."""

    table: pd.DataFrame
    figure: Figure


# ---- helpers ------------------------------------------------------------------------------------------------


#: Suffixes of the two metrics that bound a metric's band: ``<m>_lo`` and ``<m>_hi`` (e.g. a cost model's
#: prediction interval); where a study stores both, front plots draw them as error bars.
BAND_SUFFIXES: tuple[str, str] = ("_lo", "_hi")


def band(df: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(below, above): how far each row's `metric` lies above its ``<metric>_lo`` and below its ``<metric>_hi``
    (non-negative, NaN where a bound is missing), or None when the frame lacks either band column."""
    lo, hi = (metric + s for s in BAND_SUFFIXES)
    if lo not in df.columns or hi not in df.columns:
        return None
    v = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=float)
    below = v - pd.to_numeric(df[lo], errors="coerce").to_numpy(dtype=float)
    above = pd.to_numeric(df[hi], errors="coerce").to_numpy(dtype=float) - v
    return np.maximum(below, 0.0), np.maximum(above, 0.0)


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise StudyError(f"unknown plot backend {backend!r}; valid backends are {list(BACKENDS)}")
    return backend


def _fmt(values: pd.Series) -> np.ndarray:
    """Format a column for display, vectorized: floats with 4 significant digits, missing as an em dash."""
    s = pd.Series(values)
    missing = s.isna().to_numpy()
    if pd.api.types.is_float_dtype(s):
        out = np.char.mod("%.4g", s.fillna(0.0).to_numpy(dtype=float)).astype(object)
    elif pd.api.types.is_integer_dtype(s):
        out = s.fillna(0).astype("int64").astype(str).to_numpy(dtype=object)
    else:
        out = s.astype(str).to_numpy(dtype=object)
    out[missing] = "\u2014"
    return out


def _escape(a: np.ndarray) -> np.ndarray:
    s = pd.Series(a, dtype=object).astype(str)
    return s.str.replace("&", "&amp;").str.replace("<", "&lt;").str.replace(">", "&gt;").to_numpy(dtype=object)


def hover_data(view: StudyView, df: pd.DataFrame, label: str = "") -> tuple[np.ndarray, str]:
    """Hover for the rows of `df`: per-point ``customdata`` (trial number, parameters, metrics, formatted as
    strings) and the one ``hovertemplate`` that lays them out (with `label`, the point class), so labels are
    stored once per trace, not per point."""
    cols = [_fmt(df["number"])]
    lines = ["<b>trial %{customdata[0]}</b>" + (f" ({html.escape(label)})" if label else "")]
    for col in view.params:
        lines.append(f"{html.escape(col)} = %{{customdata[{len(cols)}]}}")
        cols.append(_escape(_fmt(df[col])))
    for col in view.metrics:
        if col in df:
            lines.append(f"<i>{html.escape(col)}</i> = %{{customdata[{len(cols)}]}}")
            cols.append(_fmt(df[col]))
    data = np.column_stack(cols).astype(object) if len(df) else np.empty((0, len(cols)), dtype=object)
    return data, "<br>".join(lines) + "<extra></extra>"


#: Unit of a metric read from its name's suffix (the naming convention of the metrics a study stores:
#: ``tpot_ms``, ``usd_per_mtok``, ``mem_per_gpu_gib``...): (suffix, unit), the first matching suffix wins.
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("tok_s_per_gpu", "tokens/s per GPU"), ("tok_s_per_user", "tokens/s per user"), ("tok_s", "tokens/s"),
    ("tokens_per_s_per_gpu", "tokens/s per GPU"), ("tokens_per_s", "tokens/s"), ("req_s", "requests/s"),
    ("requests_per_s", "requests/s"), ("tflops_per_gpu", "TFLOP/s per GPU"), ("tb_s", "TB/s"),
    ("usd_per_mtok", "USD per million tokens"), ("usd_per_run", "USD"), ("_usd", "USD"), ("mwh_per_run", "MWh"),
    ("joules_per_tok", "J/token"), ("_ms", "ms"), ("_us", "\u00b5s"), ("_s", "s"), ("_h", "h"), ("_gib", "GiB"),
    ("_gb", "GB"), ("_pct", "%"), ("_w", "W"),
)

#: A positive metric spanning at least this ratio (max / min) over the plotted points gets a log axis.
LOG_AXIS_RATIO = 100.0


def unit_of(metric: str) -> str | None:
    """The unit of ``metric`` from its name's suffix (``UNIT_SUFFIXES``), or None when the name does not say."""
    low = metric.lower()
    for suffix, unit in UNIT_SUFFIXES:
        if low.endswith(suffix):
            return unit
    return None


def _axis_title(view: StudyView, metric: str) -> str:
    unit = unit_of(metric)
    name = f"{metric} [{unit}]" if unit else metric
    if metric in view.objectives:
        return f"{name} ({view.objectives[metric]})"
    if metric in view.constraints:
        op, bound = view.constraints[metric]
        return f"{name} (constraint {op} {bound:g})"
    return name


def heavy_tailed(values: np.ndarray) -> bool:
    """True when ``values`` (NaN ignored) are all positive and span at least ``LOG_AXIS_RATIO``: a linear axis
    would squash most points against one end, so the axis is drawn in log scale."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(len(v) >= 2 and v.min() > 0 and v.max() / v.min() >= LOG_AXIS_RATIO)


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
    """Mask of the rows of F (n x 2) not dominated in these two columns (sort and sweep, O(n log n))."""
    sign = np.array([1.0 if d == "min" else -1.0 for d in directions])
    G = F * sign
    order = np.lexsort((G[:, 1], G[:, 0]))
    best_y = np.minimum.accumulate(G[order, 1])
    prev_best = np.concatenate(([np.inf], best_y[:-1]))
    keep_sorted = G[order, 1] < prev_best
    mask = np.zeros(len(F), dtype=bool)
    mask[order[keep_sorted]] = True
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


def _color_values(view: StudyView, df: pd.DataFrame, color: str | None) -> np.ndarray | None:
    if color is None:
        return None
    if color not in view.metrics and color not in view.params:
        raise StudyError(f"unknown color column {color!r}; valid ones are the metrics {view.metrics} and parameters {view.params}")
    s = df[color]
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=float)
    return pd.Categorical(s.astype(str)).codes.astype(float)


# ---- Pareto front --------------------------------------------------------------------------------------------


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
    bars (2-D). Above ``WEBGL_POINTS`` complete trials the 2-D plotly scatter uses WebGL.

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

    three_d = len(axes) == 3
    Trace = go.Scatter3d if three_d else (go.Scattergl if len(df) > WEBGL_POINTS else go.Scatter)
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


# ---- parallel coordinates -------------------------------------------------------------------------------------


def _encode_axis(s: pd.Series) -> tuple[np.ndarray, list[float] | None, list[str] | None]:
    """Numeric values for one parallel-coordinates axis, and tick values/labels for categorical ones.

    Categorical (non-numeric or boolean) columns become codes 0..k-1 labelled with their values; missing values
    (inactive conditional parameters) get their own "n/a" position below the others.
    """
    missing = s.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.to_numpy(dtype=float)
        if not missing.any():
            return v, None, None
        lo, hi = (np.nanmin(v), np.nanmax(v)) if (~missing).any() else (0.0, 1.0)
        na = lo - 0.2 * (hi - lo) if hi > lo else lo - 1.0
        present = np.unique(v[~missing])
        ticks = present if len(present) <= 8 else np.unique(np.linspace(lo, hi, 5))
        v = np.where(missing, na, v)
        return v, [float(na), *ticks.tolist()], ["n/a", *np.char.mod("%.4g", ticks).tolist()]
    cat = pd.Categorical(s.astype(str).where(~missing, None))
    codes = cat.codes.astype(float)
    labels = [str(c) for c in cat.categories]
    if missing.any():
        codes = np.where(missing, -1.0, codes)
        return codes, [-1.0, *range(len(labels))], ["n/a", *labels]
    return codes, list(map(float, range(len(labels)))), labels


def _parallel_rows(view: StudyView, subset: str) -> pd.DataFrame:
    subsets = ("all", "feasible", "front")
    if subset not in subsets:
        raise StudyError(f"unknown subset {subset!r}; valid subsets are {list(subsets)}")
    df = view.complete()
    if subset == "feasible":
        df = df[df["category"] != INFEASIBLE]
    elif subset == "front":
        df = df[df["category"] == FRONT]
    return df


def parallel(
    view: StudyView,
    *,
    backend: Backend = "plotly",
    color: str | None = None,
    subset: Literal["all", "feasible", "front"] = "feasible",
) -> Figure:
    """Parallel coordinates over the parameters, then the objectives, one line per complete trial.

    Categorical parameters are encoded as positions labelled with their values; inactive (missing) values get
    an "n/a" position. Lines are coloured by `color` (default: the first objective).

    Args:
        view: the study's data.
        backend: "plotly" (interactive: drag on an axis to filter) or "matplotlib".
        color: a metric to colour lines by; default the first objective.
        subset: which complete trials to draw: "all", "feasible" (default) or "front".
    """
    _check_backend(backend)
    color = view.check_metric(color, "color metric") if color is not None else next(iter(view.objectives))
    df = _parallel_rows(view, subset)
    dims = list(view.params) + list(view.objectives)
    encoded = {d: _encode_axis(df[d]) for d in dims}
    cvals = df[color].to_numpy(dtype=float)
    title = f"{view.name}: parallel coordinates ({subset} trials: {len(df)})"
    if backend == "matplotlib":
        return _parallel_mpl(dims, encoded, cvals, color, title)
    import plotly.graph_objects as go

    dimensions = []
    for d in dims:
        v, tv, tt = encoded[d]
        dim: dict[str, Any] = dict(label=d, values=np.asarray(v, dtype=float))  # numpy: stored base64-packed, compact
        if tv is not None:
            dim.update(tickvals=tv, ticktext=tt)
        dimensions.append(dim)
    fig = go.Figure(
        go.Parcoords(
            line=dict(color=np.asarray(cvals, dtype=float), colorscale="Viridis", showscale=True, colorbar=dict(title=dict(text=color))),
            dimensions=dimensions,
        )
    )
    fig.update_layout(title=dict(text=html.escape(title)), margin=dict(l=70, r=130, t=90, b=30))
    setattr(fig, _REPLOT_ATTR, functools.partial(parallel, view, backend="matplotlib", color=color, subset=subset))
    return fig


def _parallel_mpl(dims: list[str], encoded: dict, cvals: np.ndarray, color: str, title: str) -> Any:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    k = len(dims)
    fig = Figure(figsize=(max(6.0, 1.4 * k), 5), layout="constrained")
    ax = fig.add_subplot()
    cols, lows, highs = [], [], []
    for d in dims:
        v, tv, _ = encoded[d]
        lo = min(np.nanmin(v) if len(v) else 0.0, min(tv) if tv else np.inf)
        hi = max(np.nanmax(v) if len(v) else 1.0, max(tv) if tv else -np.inf)
        span = hi - lo if hi > lo else 1.0
        cols.append((v - lo) / span)
        lows.append(lo)
        highs.append(lo + span)
    Y = np.column_stack(cols) if cols else np.empty((0, 0))
    X = np.broadcast_to(np.arange(k, dtype=float), Y.shape)
    segments = np.stack([X, Y], axis=-1)  # one polyline per trial
    norm = Normalize(np.nanmin(cvals) if len(cvals) else 0.0, np.nanmax(cvals) if len(cvals) else 1.0)
    cmap = colormaps["viridis"]
    lc = LineCollection(cast(Any, segments), colors=cmap(norm(cvals)), linewidths=0.8, alpha=0.6)
    ax.add_collection(lc)
    for i, d in enumerate(dims):
        ax.axvline(i, color="black", lw=0.8)
        v, tv, tt = encoded[d]
        if tv is not None:
            for t, lab in zip(tv, tt):
                ax.text(i + 0.03, (t - lows[i]) / (highs[i] - lows[i]), str(lab), fontsize=7, va="center")
        else:
            ax.text(i + 0.03, 0.0, f"{lows[i]:.4g}", fontsize=7, va="top")
            ax.text(i + 0.03, 1.0, f"{highs[i]:.4g}", fontsize=7, va="bottom")
    ax.set_xlim(-0.2, k - 0.6)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(range(k), dims, rotation=30, ha="right")
    ax.set_yticks([])
    ax.set_title(title)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=color)
    return fig


# ---- per-knob sensitivity -------------------------------------------------------------------------------------


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


# ---- saving ---------------------------------------------------------------------------------------------------

_MPL_FORMATS = (".png", ".svg", ".pdf")


def _is_plotly(fig: Any) -> bool:
    try:
        from plotly.basedatatypes import BaseFigure
    except ImportError:  # pragma: no cover - plotly is a dependency
        return False
    return isinstance(fig, BaseFigure)


def _is_mpl(fig: Any) -> bool:
    from matplotlib.figure import Figure

    return isinstance(fig, Figure)


def save(fig: Figure, path: str | Path) -> Path:
    """Write a figure from this module to `path`; the suffix picks the format. Returns the path.

    - ``.html``: plotly figures as a self-contained page (plotly.js inlined, no CDN, works offline);
      matplotlib figures as a page holding the PNG inline.
    - ``.png`` (also ``.svg``, ``.pdf``): matplotlib figures directly; plotly figures made by this module are
      re-plotted with the matplotlib backend (no kaleido or browser needed). Other plotly figures raise.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".html", ".htm", *_MPL_FORMATS):
        raise StudyError(f"cannot save a figure as {path.name!r}; valid suffixes are ['.html', '.htm', '.png', '.svg', '.pdf']")
    if not (_is_plotly(fig) or _is_mpl(fig)):
        raise StudyError(f"save() takes a plotly or matplotlib figure, got {type(fig).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".html", ".htm"):
        if _is_plotly(fig):
            cast(Any, fig).write_html(str(path), include_plotlyjs=True, full_html=True)
        else:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=120)
            title = fig.axes[0].get_title() if fig.axes else ""
            data = base64.b64encode(buf.getvalue()).decode("ascii")
            path.write_text(
                f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
                f'<body><img alt="{html.escape(title)}" src="data:image/png;base64,{data}"></body></html>\n',
                encoding="utf-8",
            )
        return path
    if _is_plotly(fig):
        replot: Callable[[], Any] | None = getattr(fig, _REPLOT_ATTR, None)
        if replot is None:
            raise StudyError(
                f"cannot write {path.name!r}: only plotly figures made by dse.plot can be converted to "
                f"{suffix} (re-plotted with matplotlib); save this one as .html, or plot with backend='matplotlib'"
            )
        fig = replot()
    fig.savefig(str(path), dpi=120)
    return path
