"""Plots of a study: Pareto front (2-D / 3-D), parallel coordinates, per-knob sensitivity; HTML or PNG.

Every function takes a :class:`~dse.view.StudyView` (plain data a Study hands over) and returns a figure:
a ``plotly.graph_objects.Figure`` (``backend="plotly"``, interactive, hover shows the configuration behind each
point) or a ``matplotlib.figure.Figure`` (``backend="matplotlib"``, static). :func:`save` writes either one as a
self-contained ``.html`` (plotly.js inlined, no CDN) or as ``.png`` (plotly figures made here are re-plotted with
matplotlib, so no browser or kaleido is needed).

Point classes, the same in every plot: the study's feasible non-dominated trials ("front", highlighted),
other feasible trials ("dominated"), and trials that break a constraint ("infeasible", grey crosses).
Failed and running trials are left out.

The figures live in modules by kind, re-exported here: :mod:`dse.plot_front` (Pareto front), :mod:`dse.plot_parallel`
(parallel coordinates), :mod:`dse.plot_sensitivity` (per-knob sensitivity), on the shared styling, hover and axis
rules of :mod:`dse.plot_style`; this module adds :func:`save`.
"""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from .errors import StudyError
from .plot_front import _nondominated_2d as _nondominated_2d
from .plot_front import front
from .plot_parallel import _encode_axis as _encode_axis
from .plot_parallel import parallel
from .plot_sensitivity import Sensitivity, sensitivity, sensitivity_table
from .plot_style import (
    _REPLOT_ATTR,
    BACKENDS,
    BAND_SUFFIXES,
    LOG_AXIS_RATIO,
    STYLE,
    UNIT_SUFFIXES,
    Backend,
    Figure,
    band,
    heavy_tailed,
    hover_data,
    unit_of,
)
from .view import StudyView

__all__ = [
    "BACKENDS", "BAND_SUFFIXES", "LOG_AXIS_RATIO", "STYLE", "UNIT_SUFFIXES", "WEBGL_POINTS", "Backend", "Figure",
    "Sensitivity", "StudyView", "band", "front", "heavy_tailed", "hover_data", "parallel", "save", "sensitivity",
    "sensitivity_table", "unit_of",
]

#: Above this many complete trials, 2-D plotly scatters use WebGL (Scattergl): SVG gets slow in browsers. Read here
#: at each plot, so setting ``dse.plot.WEBGL_POINTS`` changes the next one.
WEBGL_POINTS = 20_000

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
