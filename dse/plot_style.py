"""What every plot of :mod:`dse.plot` shares: the figure and backend types, the style of each point class, hover
text, axis titles with units (read from metric names), the log-axis rule for heavy-tailed metrics, uncertainty
bands, and colouring by a column.
"""
from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, Union

import numpy as np
import pandas as pd

from .errors import StudyError
from .view import DOMINATED, FRONT, INFEASIBLE, StudyView

if TYPE_CHECKING:
    import matplotlib.figure
    import plotly.graph_objects

#: What the plotting functions return: a plotly figure or a matplotlib figure, by backend.
Figure = Union["plotly.graph_objects.Figure", "matplotlib.figure.Figure"]

Backend = Literal["plotly", "matplotlib"]
BACKENDS: tuple[str, ...] = ("plotly", "matplotlib")

#: Marker style per point class: (label, colour, plotly symbol, matplotlib marker, size, opacity).
STYLE: dict[str, tuple[str, str, str, str, int, float]] = {
    INFEASIBLE: ("infeasible", "#9e9e9e", "x", "x", 6, 0.55),
    DOMINATED: ("dominated (feasible)", "#6baed6", "circle", "o", 6, 0.55),
    FRONT: ("Pareto front", "#d62728", "diamond", "D", 10, 1.0),
}
_REPLOT_ATTR = "_dse_replot"  # plotly figures made here carry how to re-plot them with matplotlib


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
    for col in view.labels:   # text the objective returned beside its numbers (where they come from)
        if col in df:
            lines.append(f"<i>{html.escape(col)}</i> = %{{customdata[{len(cols)}]}}")
            cols.append(_escape(_fmt(df[col])))
    data = np.column_stack(cols).astype(object) if len(df) else np.empty((0, len(cols)), dtype=object)
    return data, "<br>".join(lines) + "<extra></extra>"


#: Unit of a metric read from its name's suffix (the naming convention of the metrics a study stores:
#: ``latency_ms``, ``mem_gib``, ``cost_usd``...): (suffix, unit), the first matching suffix wins. An objective
#: names the units of its own metrics (``dse.vectorized(units=...)``, stored with the study), read first.
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("req_s", "requests/s"), ("requests_per_s", "requests/s"), ("tb_s", "TB/s"), ("usd_per_run", "USD"),
    ("_usd", "USD"), ("mwh_per_run", "MWh"), ("_ms", "ms"), ("_us", "\u00b5s"), ("_s", "s"), ("_h", "h"),
    ("_gib", "GiB"), ("_gb", "GB"), ("_pct", "%"), ("_w", "W"),
)

#: A positive metric spanning at least this ratio (max / min) over the plotted points gets a log axis.
LOG_AXIS_RATIO = 100.0


def unit_of(metric: str, units: Iterable[Sequence[str]] = ()) -> str | None:
    """The unit of ``metric`` from its name's suffix: the objective's ``units`` ((suffix, unit) pairs, as
    ``dse.vectorized(units=...)`` declares them), then ``UNIT_SUFFIXES``; None when the name does not say."""
    low = metric.lower()
    for suffix, unit in (*units, *UNIT_SUFFIXES):
        if low.endswith(suffix.lower()):
            return unit
    return None


def _objective_units(view: StudyView) -> list[Sequence[str]]:
    """The units the study's objective declared (stored with its provenance), as (suffix, unit) pairs."""
    stored = (view.meta.get("objective") or {}).get("units") or []
    return [u for u in stored if isinstance(u, (list, tuple)) and len(u) == 2 and all(isinstance(x, str) for x in u)]


def _axis_title(view: StudyView, metric: str) -> str:
    unit = unit_of(metric, _objective_units(view))
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


def _color_values(view: StudyView, df: pd.DataFrame, color: str | None) -> np.ndarray | None:
    if color is None:
        return None
    if color not in view.metrics and color not in view.params:
        raise StudyError(f"unknown color column {color!r}; valid ones are the metrics {view.metrics} and parameters {view.params}")
    s = df[color]
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=float)
    return pd.Categorical(s.astype(str)).codes.astype(float)


