"""One self-contained, offline HTML report of a study.

:func:`write` renders a :class:`~dse.view.StudyView` into a single ``.html`` file that opens from ``file://``
with no network: plotly.js is inlined once in the page head, the rest is a little inline CSS and JS. Sections:
summary, the Pareto front (interactive scatter per pair of objectives, and a sortable table of the front's
configurations; clicking a row shows that point's hover in the scatters), parallel coordinates, per-knob
sensitivity for each objective, the objective's own sections if it provides any (:func:`objective_sections`),
and provenance (objectives, constraints, parameters, then the study's meta: space, optimizer and settings, seed,
versions, storage).

A domain objective adds sections by defining ``report_sections(study) -> list[(title, html)]``: the engine knows
nothing of what they show (an LLM serving objective draws where its front's latencies go).

Script errors are recorded on the page itself (``data-dse-js-errors`` on ``<html>``) and each rendered plot
gets ``data-dse-rendered="1"``, so a headless browser can check that the report works.
"""
from __future__ import annotations

import dataclasses
import html
import itertools
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__, plot
from .errors import StudyError
from .view import FRONT, INFEASIBLE, StudyView, label_columns

__all__ = ["write", "render", "objective_sections"]

log = logging.getLogger(__name__)

#: Most objective pairs drawn as front scatters.
MAX_PAIRS = 3

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1300px;padding:0 24px 48px;color:#222}
h1{margin:24px 0 4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}.grid>div{min-width:0}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}td.s,th.s{text-align:left}pre{margin:0;font-size:12px;text-align:left;white-space:pre-wrap}summary{cursor:pointer}
table.sortable th{cursor:pointer;user-select:none}table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}table.sortable tbody tr{cursor:pointer}
table.sortable tbody tr:hover{background:#fff4d6}.scroll{max-height:520px;overflow:auto;display:inline-block;max-width:100%}
.kpi{display:inline-block;margin-right:28px}.kpi b{font-size:20px;display:block}
"""

# Records uncaught errors on <html> so headless checks can read them from the DOM.
_ERROR_HOOK = """
window.__dseErrors=[];
function __dseRecord(msg){window.__dseErrors.push(String(msg));
 document.documentElement.setAttribute('data-dse-js-errors',window.__dseErrors.join(' | '));}
window.addEventListener('error',function(e){__dseRecord(e.message||e);});
window.addEventListener('unhandledrejection',function(e){__dseRecord('unhandled rejection: '+(e.reason&&e.reason.message||e.reason));});
"""

# Sortable tables, and row click -> hover of that trial's point in every front scatter.
_TABLE_JS = """
(function(){
 document.querySelectorAll('table.sortable').forEach(function(t){
  var ths=t.tHead.rows[0].cells;
  Array.prototype.forEach.call(ths,function(th,i){th.addEventListener('click',function(){
   var asc=th.getAttribute('aria-sort')!=='ascending';
   Array.prototype.forEach.call(ths,function(h){h.removeAttribute('aria-sort');});
   th.setAttribute('aria-sort',asc?'ascending':'descending');
   var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
   rows.sort(function(a,b){var x=a.cells[i].getAttribute('data-v'),y=b.cells[i].getAttribute('data-v');
    var nx=parseFloat(x),ny=parseFloat(y),c;
    if(!isNaN(nx)&&!isNaN(ny)){c=nx-ny;}else if(!isNaN(nx)){c=-1;}else if(!isNaN(ny)){c=1;}else{c=String(x).localeCompare(String(y));}
    return asc?c:-c;});
   rows.forEach(function(r){body.appendChild(r);});
  });});
  Array.prototype.forEach.call(t.tBodies[0].rows,function(r){r.addEventListener('click',function(){
   var n=r.getAttribute('data-trial');
   document.querySelectorAll('.dse-front-plot').forEach(function(div){
    if(!div.data||!window.Plotly)return;
    div.data.forEach(function(tr,ci){if(tr.meta!=='front'||!tr.customdata)return;
     tr.customdata.forEach(function(cd,pi){if(String(cd[0])===n){Plotly.Fx.hover(div,[{curveNumber:ci,pointNumber:pi}]);}});});
   });
  });});
 });
})();
"""


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _plot_div(fig: Any, div_id: str, css_class: str = "") -> str:
    """A plotly figure as a div + script (plotly.js is in the page head), marking itself rendered."""
    body = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
        post_script="document.getElementById('{plot_id}').setAttribute('data-dse-rendered','1');",
    )
    if css_class:
        body = body.replace(f'id="{div_id}" class="plotly-graph-div"', f'id="{div_id}" class="plotly-graph-div {css_class}"', 1)
    return body


def _value_cell(v: Any, numeric: bool, integer: bool = False) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return '<td data-v="">\u2014</td>'
    if integer:   # trial numbers, counts: every digit (4 significant digits showed 13740 as 1.374e+04)
        return f'<td data-v="{int(v)}">{int(v)}</td>'
    if numeric:
        return f'<td data-v="{float(v)!r}">{float(v):.4g}</td>'
    return f'<td class="s" data-v="{_esc(v)}">{_esc(v)}</td>'


def _table(df: pd.DataFrame, *, sortable: bool = False, trial_col: str | None = None, table_id: str = "") -> str:
    """An HTML table of `df` (numbers to 4 significant digits, raw values in data-v for sorting)."""
    numeric = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns}
    integer = {c: numeric[c] and (pd.api.types.is_integer_dtype(df[c]) or c == trial_col) for c in df.columns}
    head = "".join(f'<th class="{"" if numeric[c] else "s"}">{_esc(c)}</th>' for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False, name=None):  # the report shows at most the front: a small table
        attrs = f' data-trial="{_esc(rec[list(df.columns).index(trial_col)])}"' if trial_col else ""
        cells = "".join(_value_cell(v, numeric[c], integer[c]) for c, v in zip(df.columns, rec))
        rows.append(f"<tr{attrs}>{cells}</tr>")
    cls = ' class="sortable"' if sortable else ""
    tid = f' id="{table_id}"' if table_id else ""
    return f'<div class="scroll"><table{cls}{tid}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _meta_value(key: str, value: Any) -> str:
    """One provenance cell: timestamps as UTC dates, long nested values folded in a <details> element."""
    if key.endswith("_at") and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1e8:
        return _esc(datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds"))
    if isinstance(value, (dict, list, tuple)):
        flat = json.dumps(value, default=str)
        if len(flat) <= 100:
            return f"<pre>{_esc(flat)}</pre>"
        return (f"<details><summary><code>{_esc(flat[:90])}\u2026</code></summary>"
                f"<pre>{_esc(json.dumps(value, indent=1, default=str))}</pre></details>")
    return _esc(value)


def _provenance(view: StudyView) -> str:
    rows: list[tuple[str, Any]] = [
        ("study", view.name),
        ("objectives", ", ".join(f"{m} ({d})" for m, d in view.objectives.items())),
        ("constraints", ", ".join(view.constraint_text(m) for m in view.constraints) or "none"),
        ("parameters", ", ".join(view.params)),
    ]
    shown = {k for k, _ in rows}
    rows += [(str(k), v) for k, v in view.meta.items() if str(k) not in shown]  # meta repeats of the above skipped
    out = [f'<tr><th class="s">{_esc(k)}</th><td class="s">{_meta_value(k, v)}</td></tr>' for k, v in rows]
    return f'<table id="provenance">{"".join(out)}</table>'


def _subsample(view: StudyView, max_points: int, seed: int) -> tuple[StudyView, int]:
    """Keep every front trial and at most `max_points` trials in all (a seeded random choice of the others)."""
    complete = view.trials["state"].astype(str) == "complete"
    if int(complete.sum()) <= max_points:
        return view, 0
    on_front = view.trials["number"].isin(view.pareto_numbers).to_numpy()
    others = np.flatnonzero(complete.to_numpy() & ~on_front)
    k = max(0, max_points - int(on_front.sum()))
    keep = np.zeros(len(view.trials), dtype=bool)
    keep[on_front] = True
    keep[np.random.default_rng(seed).choice(others, size=min(k, len(others)), replace=False)] = True
    dropped = int(complete.sum()) - int((keep & complete.to_numpy()).sum())
    return dataclasses.replace(view, trials=view.trials[keep].reset_index(drop=True)), dropped


def objective_sections(evaluate: Any, study: Any) -> list[tuple[str, str]]:
    """The report sections an objective provides: ``evaluate.report_sections(study)`` (a list of (title, html)
    pairs; the html is the objective's own markup, inserted as it is: it escapes its text), or [] when it has no
    such method. A provider that raises is logged as a warning and left out (a study's report is still written);
    one that returns something other than (str, str) pairs raises StudyError naming what it returned."""
    provider = getattr(evaluate, "report_sections", None)
    if not callable(provider):
        return []
    try:
        sections = provider(study)
    except Exception as exc:   # a domain section must not cost the study its report
        log.warning("%s.report_sections failed, the report is written without its sections: %s",
                    type(evaluate).__name__, exc)
        return []
    return _checked_sections(sections, f"{type(evaluate).__name__}.report_sections")


def _checked_sections(sections: Any, who: str) -> list[tuple[str, str]]:
    """`sections` as a list of (title, html) string pairs, or StudyError naming `who` and what was wrong."""
    if isinstance(sections, (str, bytes)) or not isinstance(sections, Sequence):
        raise StudyError(f"{who} must give a list of (title, html) pairs, got {type(sections).__name__}")
    out = []
    for i, sec in enumerate(sections):
        if not (isinstance(sec, (tuple, list)) and len(sec) == 2 and all(isinstance(x, str) for x in sec)):
            raise StudyError(f"{who}: section {i} must be a (title, html) pair of strings, got {sec!r:.80}")
        out.append((sec[0], sec[1]))
    return out


def render(view: StudyView, *, max_points: int = 5000, seed: int = 0,
           sections: Sequence[tuple[str, str]] = ()) -> str:
    """The report as one HTML string (see :func:`write`)."""
    import plotly.offline

    if not isinstance(view, StudyView):
        raise StudyError(f"report needs a StudyView, got {type(view).__name__}")
    sections = _checked_sections(sections, "sections")
    if not isinstance(max_points, (int, np.integer)) or max_points < 1:
        raise StudyError(f"max_points must be a positive integer, got {max_points!r}")
    trials = view.trials
    states = trials["state"].astype(str)
    complete = view.complete()
    counts = {
        "trials": len(trials),
        "complete": int((states == "complete").sum()),
        "failed": int((states == "failed").sum()),
        "running": int((states == "running").sum()),
        "feasible": int((complete["category"] != INFEASIBLE).sum()),
        "on the front": int((complete["category"] == FRONT).sum()),
    }
    shown, dropped = _subsample(view, max_points, seed)

    parts: list[str] = []
    kpis = "".join(f'<span class="kpi"><b>{v}</b>{_esc(k)}</span>' for k, v in counts.items())
    parts.append(f'<section id="summary">{kpis}</section>')

    # ---- front
    metrics = shown.metrics
    objectives = list(view.objectives)
    if len(objectives) >= 2:
        pairs = list(itertools.combinations(objectives, 2))[:MAX_PAIRS]
    elif len(metrics) >= 2:
        pairs = [(objectives[0], next(m for m in metrics if m != objectives[0]))]
    else:
        pairs = []
    front_divs = [
        f"<div>{_plot_div(plot.front(shown, x, y), f'front-{i}', 'dse-front-plot')}</div>" for i, (x, y) in enumerate(pairs)
    ]
    banded = [m for m in dict.fromkeys(m for pair in pairs for m in pair) if plot.band(complete, m) is not None]
    bars = (f" Error bars on the front: the band from <metric>_lo to <metric>_hi of {', '.join(banded)}."
            if banded else "")
    note = f" Showing all front trials and a random {max_points:,}-trial sample of the rest ({dropped:,} not drawn)." if dropped else ""
    parts.append(
        "<h2>Pareto front</h2>"
        f'<p class="sub">Red diamonds: the feasible non-dominated trials (joined by the attainment line of each '
        f"pair); blue: feasible but dominated; grey crosses: infeasible. Hover a point for its configuration.{_esc(bars)}"
        f"{_esc(note)}</p>"
        f'<div class="grid">{"".join(front_divs)}</div>'
    )
    fr = view.front()
    # the objective's text labels that say something on the front (where its numbers come from; not an empty
    # `reason` that only infeasible trials fill)
    labels = label_columns(fr[[c for c in view.labels if c in fr.columns]], ())
    cols = ["number", *view.params, *[m for m in view.metrics if m in fr.columns], *labels]
    parts.append(
        f"<h3>Front configurations ({len(fr)})</h3>"
        '<p class="sub">Click a column header to sort; click a row to show that point in the scatters.</p>'
        + _table(fr[cols].rename(columns={"number": "trial"}), sortable=True, trial_col="trial", table_id="front-table")
    )

    # ---- parallel coordinates
    par = plot.parallel(shown, subset="feasible") if (complete["category"] != INFEASIBLE).any() else plot.parallel(shown, subset="all")
    parts.append(
        "<h2>Parallel coordinates</h2>"
        '<p class="sub">One line per trial over the parameters and objectives; drag along an axis to filter.</p>'
        + _plot_div(par, "parallel")
    )

    # ---- sensitivity
    sens = []
    for i, metric in enumerate(objectives):
        table, fig = plot.sensitivity(view, metric)
        compact = table[["parameter", "spread_median", "spread_best", "relative_spread", "best_level"]]
        sens.append(f"<div>{_plot_div(fig, f'sensitivity-{i}')}{_table(compact)}</div>")
    parts.append(
        "<h2>Per-knob sensitivity</h2>"
        '<p class="sub">For each parameter, the complete trials are grouped by its value (numeric parameters with many '
        "values in quantile bins); the bars are the spread (max - min) across groups of the metric's median and of its "
        "best value, in the metric's unit. Other knobs vary too: this ranks associations over the sampled trials.</p>"
        f'<div class="grid">{"".join(sens)}</div>'
    )

    # ---- the objective's own sections (objective_sections), before the provenance
    for i, (title, body) in enumerate(sections):
        parts.append(f'<section class="dse-objective-section" id="objective-section-{i}"><h2>{_esc(title)}</h2>'
                     f"{body}</section>")

    parts.append(f"<h2>Provenance</h2>{_provenance(view)}")

    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dse report: {_esc(view.name)}</title>"
        f"<script>{_ERROR_HOOK}</script><style>{_CSS}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head><body>'
        f"<h1>{_esc(view.name)}</h1>"
        f'<p class="sub">dse {_esc(__version__)} report, written {created}. Self-contained: works offline.</p>'
        + "\n".join(parts)
        + f"<script>{_TABLE_JS}</script></body></html>\n"
    )


def write(view: StudyView, path: str | Path, *, max_points: int = 5000, seed: int = 0,
          sections: Sequence[tuple[str, str]] = ()) -> Path:
    """Write the study's report to `path` (one self-contained offline HTML file) and return the path.

    Args:
        view: the study's data.
        path: the ``.html`` file to write; parent folders are created.
        max_points: most trials drawn in the scatters and parallel coordinates (every front trial is always
            drawn; the rest are a seeded random sample). Tables and sensitivity use every trial.
        seed: seed of that sample.
        sections: extra (title, html) sections, shown before the provenance (an objective's:
            :func:`objective_sections`); the html is inserted as it is.
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise StudyError(f"a report is an HTML file; got {str(path)!r} (use a .html suffix)")
    text = render(view, max_points=max_points, seed=seed, sections=sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
