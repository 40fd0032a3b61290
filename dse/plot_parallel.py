"""Parallel-coordinates figures of :mod:`dse.plot` (``parallel``): every parameter and metric of the chosen trials
as one axis, categorical axes coded with their values, lines coloured by a metric; plotly or matplotlib.
"""
from __future__ import annotations

import functools
import html
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

from .errors import StudyError
from .plot_style import _REPLOT_ATTR, Backend, Figure, _check_backend
from .view import FRONT, INFEASIBLE, StudyView

if TYPE_CHECKING:
    pass

def _encode_axis(s: pd.Series) -> tuple[np.ndarray, list[float] | None, list[str] | None]:
    """Numeric values for one parallel-coordinates axis, and tick values/labels for categorical ones.

    Categorical (non-numeric or boolean) columns become codes 0..k-1 labelled with their values; missing values
    (inactive conditional parameters) get their own "n/a" position below the others. A numeric column of one value
    is labelled with that value alone (an axis range around it would show values no trial has).
    """
    missing = s.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.to_numpy(dtype=float)
        if not missing.any():
            one = np.unique(v)
            return (v, [float(one[0])], [f"{one[0]:.4g}"]) if len(one) == 1 else (v, None, None)
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
            if len(tv) == 1:   # one value: the axis spans that value alone, labelled at its middle
                dim.update(range=[tv[0] - 1.0, tv[0] + 1.0])
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


