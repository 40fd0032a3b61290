"""Multi-fidelity: confirm the front of a fast objective with a slower, more faithful check of the same configurations.

    evaluate = dse.fidelity.Confirming(fast, slow, objectives={"cost": "min", "speed": "max"},
                                       constraints={"latency_p99": ("<=", 2.0)}, label="simulated")
    study.optimize(evaluate, optimizer="grid", batch_size=len(space.grid()))   # the whole grid in one batch
    evaluate.history[-1].summary()

`Confirming` is a vectorized objective. On each batch it evaluates every configuration with ``screen``, takes the
batch's front (the non-dominated configurations meeting ``constraints``), evaluates those with ``check`` and stores
the checked metrics in their rows, re-checks the constraints on them, and repeats on the new front until every
configuration on it has been checked. A checked configuration that violates a constraint leaves the front with the
reason in its metric ``confirm_reason`` (``"latency_p99 = 3.1 > 2"``); the objectives keep their screening values
(the checked values go to ``<objective>_<label>``) unless ``replace_objectives``, and each constrained metric's
screening value is kept as ``<metric>_screen`` (an objective that is also a constrained metric takes its checked
value, as every constrained metric does: the constraint is judged on it); ``keep`` names further metrics whose
screening value is kept so (to compare the fidelities on them, `screening_gaps`). Metric ``fidelity`` says which rows
were checked (``label``) and which were only screened (``"screen"``). ``failure``: a text metric of the check that says why it refused a
configuration (empty where it did not); the reason then carries it after the constraint the refusal violates
(``"fits = 0 != 1: no room for the KV cache"``).

A configuration on the study's front is on the front of the batch it was evaluated in, so the study's front holds
checked configurations only, whatever the optimizer; with the whole grid in one batch the checks are exactly the
ones the global front needs. The engine knows nothing of what the evaluations model.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import ObjectiveError
from .evaluation import BAND_LEVEL_ATTR, is_vectorized, objective_info, vectorized
from .metric_constraints import Constraint, band_column, check_constraints
from .pareto import nondominated_mask

log = logging.getLogger(__name__)

_OPS = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater, "==": np.equal}
_NEG = {"<=": ">", ">=": "<", "<": ">=", ">": "<=", "==": "!="}
_DIRECTIONS = ("min", "max")


@dataclass
class Confirmation:
    """What one batch's confirmation did.

    Attributes:
        label: the fidelity label of the checked rows.
        checked: row positions in the batch that were checked (in order), rounds: front recomputations.
        rejected: {row position: reason} of the checked rows that violate a constraint after the check.
        front: row positions of the final front of the batch (all checked).
        screen: one row per checked configuration: ``row``, and per objective / constrained metric its screening
            value (``<m>_screen``) and its checked value (``<m>``).
    """

    label: str
    checked: list[int] = field(default_factory=list)
    rounds: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    front: list[int] = field(default_factory=list)
    screen: pd.DataFrame = field(default_factory=pd.DataFrame)

    def gap(self, metric: str) -> float:
        """Median |checked - screening| / checked of ``metric`` over the checked rows (NaN if none)."""
        if self.screen.empty or metric not in self.screen:
            return float("nan")
        r = relative_gaps(self.screen[f"{metric}_screen"], self.screen[metric])
        return float(np.median(r)) if len(r) else float("nan")

    def summary(self) -> str:
        """One line: how many front points were checked, how many failed and why."""
        reasons = violated(self.rejected.values())
        why = f" (violating {', '.join(reasons)})" if reasons else ""
        return (f"front confirmed ({self.label}): {len(self.checked)} configurations checked in {self.rounds} "
                f"rounds, {len(self.rejected)} left the front{why}; front of {len(self.front)}")


def violated(reasons: Iterable[str]) -> list[str]:
    """The constraint metrics named by confirmation reasons (``"latency_p99 = 3.1 > 2"`` -> ``latency_p99``; a
    constraint met with a confidence names the band end it is checked on: ``"latency_p99_hi = 3.1 > 2 (confidence
    0.9)"`` -> ``latency_p99_hi``), sorted, each once."""
    return sorted({str(r).split(": ")[0].split(" = ")[0].split(" missing")[0] for r in reasons if str(r)})


def stored_confirmation(trials: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]] | None:
    """From a study's stored trials: the ones checked at fidelity ``label``, those of them that left the front
    (a ``confirm_reason``), and the constraints they violated; None when the study never confirmed a front.
    Read from storage, so a resumed study reports every confirmation, not only this process's."""
    if "fidelity" not in trials:
        return None
    checked = trials[trials["fidelity"] == label]
    left = checked[checked["confirm_reason"].astype(str) != ""]
    return checked, left, violated(left["confirm_reason"])


def relative_gaps(screened: Sequence | pd.Series, checked: Sequence | pd.Series) -> np.ndarray:
    """|checked - screened| / |checked| of each pair (row-aligned), the pairs where both are finite and the checked
    value is not 0 only."""
    a = pd.to_numeric(pd.Series(np.asarray(screened, dtype=object)), errors="coerce").to_numpy(float)
    s = pd.to_numeric(pd.Series(np.asarray(checked, dtype=object)), errors="coerce").to_numpy(float)
    ok = np.isfinite(a) & np.isfinite(s) & (s != 0)
    return np.abs(s[ok] - a[ok]) / np.abs(s[ok])


def screening_gaps(rows: pd.DataFrame, metrics: Sequence[str], label: str) -> pd.DataFrame:
    """How far the screen was from the check on the rows of ``rows`` checked at fidelity ``label`` (stored trials,
    e.g. a confirmed study's front): per metric (index) ``n`` (rows with both values), ``median`` and ``max`` of
    |checked - screening| / checked (fractions; NaN where n is 0). The checked value is read from ``<metric>_<label>``
    (an objective that kept its screening value) else from the column itself; the screening value from
    ``<metric>_screen`` (a constrained or kept metric) else, for such an objective, from the column itself; a metric
    with neither pair has n = 0."""
    checked = rows[rows["fidelity"] == label] if "fidelity" in rows else rows.iloc[:0]
    out = []
    for m in metrics:
        if f"{m}_{label}" in checked and m in checked:     # an objective that kept its screening value
            r = relative_gaps(checked[f"{m}_screen"] if f"{m}_screen" in checked else checked[m],
                              checked[f"{m}_{label}"])
        elif f"{m}_screen" in checked and m in checked:
            r = relative_gaps(checked[f"{m}_screen"], checked[m])
        else:
            r = np.array([])
        out.append({"metric": m, "n": len(r), "median": float(np.median(r)) if len(r) else float("nan"),
                    "max": float(np.max(r)) if len(r) else float("nan")})
    return pd.DataFrame(out, columns=["metric", "n", "median", "max"]).set_index("metric")


def gaps_text(gaps: pd.DataFrame) -> str:
    """`screening_gaps`' table in one line: "ttft_ms_p99 7.5 % (max 65 %), tpot_ms_p99 ..." (metrics with no pair
    left out; "" if none)."""
    return ", ".join(f"{m} {100 * g['median']:.1f} % (max {100 * g['max']:.0f} %)"
                     for m, g in gaps.iterrows() if g["n"] > 0)


def screening_values(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with every checked metric's screening value back in its own column: ``<metric>_screen`` where a
    row was checked (a constrained metric holds the checked value there), the column as stored elsewhere. What the
    screen alone gave each row, e.g. to compare with a later check."""
    out = trials.copy()
    for c in trials.columns:
        base = str(c)[: -len("_screen")]
        if str(c).endswith("_screen") and base in trials:
            screened = pd.to_numeric(trials[c], errors="coerce")
            out[base] = screened.where(screened.notna(), trials[base])
    return out


def column_fidelity(front: pd.DataFrame, columns: Sequence[str]) -> str | None:
    """One line saying, for a front whose rows were checked (``fidelity`` not ``"screen"``), which of the shown
    ``columns`` hold screening values and which the check's: an objective with a ``<objective>_<label>`` column
    kept its screening value (the checked one is there), a metric with a ``<metric>_screen`` column holds the
    checked value (the screening one is there). None where no row was checked or no shown column is either."""
    if "fidelity" not in front:
        return None
    labels = sorted({str(v) for v in front["fidelity"].dropna() if str(v) != "screen"})
    parts = []
    for label in labels:
        screened = [c for c in columns if f"{c}_{label}" in front]
        checked = [c for c in columns if f"{c}_screen" in front]
        if screened:
            parts.append(f"{', '.join(screened)}: screening values (the {label} ones in "
                         f"{', '.join(f'{c}_{label}' for c in screened)})")
        if checked:
            parts.append(f"{', '.join(checked)}: {label} values (the screening ones in "
                         f"{', '.join(f'{c}_screen' for c in checked)})")
    return f"front checked at fidelity {', '.join(map(repr, labels))}: " + "; ".join(parts) if parts else None


def violations(metrics: pd.DataFrame, constraints: Mapping[str, Sequence]) -> list[str]:
    """The first violated constraint of each row as text, '' where all hold (a missing or NaN value violates).
    A constraint ``(op, bound, confidence)`` is checked on the metric's pessimistic band end
    (`dse.metric_constraints.band_column`): ``"ttft_ms_hi = 2100 > 2000 (confidence 0.9)"``."""
    out = [""] * len(metrics)
    for name, c in constraints.items():
        op, bound = c[0], float(c[1])
        col = band_column(name, c)
        conf = f" (confidence {float(c[2]):g})" if len(c) == 3 else ""
        v = pd.to_numeric(metrics[col], errors="coerce").to_numpy(float) if col in metrics \
            else np.full(len(metrics), np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~_OPS[op](v, bound)
        for i in np.flatnonzero(bad):
            if not out[i]:
                out[i] = f"{col} = {v[i]:.4g} {_NEG[op]} {bound:g}{conf}" if np.isfinite(v[i]) \
                    else f"{col} missing{conf}"
    return out


def _run(fn: Callable, configs: pd.DataFrame) -> pd.DataFrame:
    if is_vectorized(fn):
        out = fn(configs.reset_index(drop=True))
        if not isinstance(out, pd.DataFrame) or len(out) != len(configs):
            raise ObjectiveError(f"the check returned {type(out).__name__} of "
                                 f"{len(out) if hasattr(out, '__len__') else '?'} rows for {len(configs)} configurations")
        return out.reset_index(drop=True)
    return pd.DataFrame([dict(fn(dict(r))) for r in configs.to_dict("records")])


def confirm(configs: pd.DataFrame, metrics: pd.DataFrame, check: Callable, objectives: Mapping[str, str],
            constraints: Mapping[str, Sequence] | None = None, *, label: str = "confirmed",
            max_rounds: int = 50, replace_objectives: bool = False,
            failure: str | None = None, keep: Sequence[str] = ()) -> tuple[pd.DataFrame, Confirmation]:
    """Confirm the front of one batch (see the module docstring): returns the batch's metrics with the checked
    rows updated, and a :class:`Confirmation`. ``configs`` and ``metrics`` are row-aligned. ``failure``: the check's
    text metric naming why it refused a configuration (`refusals`). ``keep``: metrics whose screening value a
    checked row keeps as ``<metric>_screen`` (the constrained ones always do)."""
    cons = _check_args(objectives, constraints or {}, label, max_rounds, failure)
    names, dirs = list(objectives), [objectives[k] for k in objectives]
    configs = configs.reset_index(drop=True)
    m = metrics.reset_index(drop=True).copy()
    missing = [k for k in names if k not in m]
    if missing:
        raise ObjectiveError(f"the screening metrics lack objective(s) {missing}; they have {list(m.columns)}")
    m["fidelity"] = "screen"
    m["confirm_reason"] = ""
    checked_on = [band_column(k, c) for k, c in cons.items()]   # each constraint's metric, or its band end
    kept_screen = list(dict.fromkeys([*cons, *checked_on, *keep]))     # screening values kept as <metric>_screen
    tracked = list(dict.fromkeys([*names, *kept_screen]))
    res = Confirmation(label)
    rows: list[pd.DataFrame] = []
    checked = np.zeros(len(m), dtype=bool)
    while True:
        ok = np.array([not r for r in violations(m, cons)], dtype=bool)
        F = m[names].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        ok &= np.isfinite(F).all(axis=1)
        front = np.zeros(len(m), dtype=bool)
        if ok.any():
            front[np.flatnonzero(ok)] = nondominated_mask(F[ok], dirs)
        todo = np.flatnonzero(front & ~checked)
        if not len(todo):
            res.front = np.flatnonzero(front).tolist()
            break
        if res.rounds >= max_rounds:
            log.warning("confirm stopped after %d rounds with %d front configurations unchecked", max_rounds, len(todo))
            res.front = np.flatnonzero(front).tolist()
            break
        res.rounds += 1
        new = _run(check, configs.iloc[todo])
        new = new.drop(columns=[c for c in new.columns if c in configs.columns])
        screen = pd.DataFrame({"row": todo})
        for k in tracked:
            screen[f"{k}_screen"] = pd.to_numeric(m[k].iloc[todo], errors="coerce").to_numpy(float) if k in m \
                else np.nan
            screen[k] = pd.to_numeric(new[k], errors="coerce").to_numpy(float) if k in new else np.nan
        rows.append(screen)
        for k in kept_screen:
            if k in m:
                if f"{k}_screen" not in m:
                    m[f"{k}_screen"] = np.nan
                m.loc[todo, f"{k}_screen"] = m[k].iloc[todo].to_numpy()
        for c in new.columns:
            # an objective keeps its screening value unless a constraint is checked on it: that one must be
            # judged, and stored for the study to judge, on its checked value
            kept = c in objectives and not replace_objectives and c not in checked_on
            target = f"{c}_{label}" if kept else c
            if target not in m:
                m[target] = np.nan if pd.api.types.is_numeric_dtype(new[c]) else None
            if not pd.api.types.is_numeric_dtype(new[c]) and pd.api.types.is_numeric_dtype(m[target]):
                m[target] = m[target].astype(object)
            m.loc[todo, target] = new[c].to_numpy()
        m.loc[todo, "fidelity"] = label
        reasons = violations(m.iloc[todo], cons)
        if failure is not None:
            reasons = refusals(reasons, new[failure] if failure in new else None, todo.tolist(), failure)
        m.loc[todo, "confirm_reason"] = reasons
        for j, r in zip(todo, reasons):
            if r:
                res.rejected[int(j)] = r
        checked[todo] = True
        res.checked.extend(int(j) for j in todo)
    res.screen = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return m, res


def refusals(reasons: Sequence[str], texts: pd.Series | None, rows: Sequence[int], failure: str) -> list[str]:
    """``reasons`` (`violations` of checked ``rows``) with the check's own reason where it refused one: the text
    of its metric ``failure`` (``texts``, row-aligned; None or NaN / empty: no refusal) after the constraint the
    refusal violates (``"fits = 0 != 1: <text>"``). A refusal that violates no constraint would stay on the front
    with its screening values: ObjectiveError, naming it (the check must make a refused configuration violate a
    constraint, e.g. ``fits == 1``)."""
    out = list(reasons)
    if texts is None:
        return out
    for k, t in enumerate(texts.tolist()):
        if not isinstance(t, str) or not t.strip():
            continue
        if not out[k]:
            raise ObjectiveError(f"the check refused configuration {int(rows[k])} ({t!r} in metric {failure!r}) but "
                                 f"it violates no constraint, so it would stay on the front with its screening "
                                 f"values: have the check set a constrained metric where it refuses (e.g. fits = 0 "
                                 f"with the constraint fits == 1)")
        out[k] = f"{out[k]}: {t.strip()}"
    return out


def _check_args(objectives: Mapping[str, str], constraints: Mapping[str, Sequence], label: str,
                max_rounds: int, failure: str | None = None) -> dict[str, Constraint]:
    """The validated constraints (`dse.metric_constraints.check_constraints`); ObjectiveError on any bad argument."""
    if not isinstance(objectives, Mapping) or not objectives:
        raise ObjectiveError(f"objectives={objectives!r}: give {{metric: 'min' | 'max'}}")
    bad = {k: v for k, v in objectives.items() if v not in _DIRECTIONS}
    if bad:
        raise ObjectiveError(f"objective directions {bad} unknown; valid: {list(_DIRECTIONS)}")
    cons = check_constraints(constraints)
    if not isinstance(label, str) or not label or label == "screen":
        raise ObjectiveError(f"label={label!r}: give a non-empty string other than 'screen'")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ObjectiveError(f"max_rounds={max_rounds!r}: give an integer >= 1")
    if failure is not None and (not isinstance(failure, str) or not failure):
        raise ObjectiveError(f"failure={failure!r}: give the name of a text metric the check fills where it refuses a "
                             f"configuration, or None")
    return cons


class Confirming:
    """A vectorized objective: ``screen`` on every configuration, ``check`` on each batch's front until the front
    holds only checked configurations that meet ``constraints`` (see the module docstring).

    Attributes: screen, check, objectives, constraints, label, max_rounds, replace_objectives, failure (the
    check's text metric naming why it refused a configuration, None: none; see `confirm`), keep (metrics whose
    screening values the checked rows keep, `confirm`); history (the
    :class:`Confirmation` of every batch evaluated so far, in this process).
    """

    def __init__(self, screen: Callable, check: Callable, objectives: Mapping[str, str],
                 constraints: Mapping[str, Sequence] | None = None, *, label: str = "confirmed",
                 max_rounds: int = 50, replace_objectives: bool = False, failure: str | None = None,
                 keep: Sequence[str] = ()) -> None:
        cons = _check_args(objectives, constraints or {}, label, max_rounds, failure)
        if isinstance(keep, str) or not all(isinstance(k, str) and k for k in keep):
            raise ObjectiveError(f"keep={keep!r}: give a sequence of metric names")
        if not is_vectorized(screen):
            raise ObjectiveError("Confirming needs a vectorized screen objective (@dse.vectorized: DataFrame -> "
                                 "DataFrame)")
        self.screen, self.check = screen, check
        self.objectives = dict(objectives)
        self.constraints = cons
        self.label, self.max_rounds, self.replace_objectives = label, max_rounds, replace_objectives
        self.failure = failure
        self.keep = tuple(keep)
        self.history: list[Confirmation] = []
        info = objective_info(screen)
        vectorized(self, name=f"{info.get('name') or 'objective'}+confirmed/{label}", version=info.get("version"),
                   inputs=info.get("inputs"), units=info.get("units"))
        if hasattr(screen, BAND_LEVEL_ATTR):   # the band level the screen declares (both fidelities share it)
            setattr(self, BAND_LEVEL_ATTR, getattr(screen, BAND_LEVEL_ATTR))

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        metrics = self.screen(df)
        out, res = confirm(df, metrics, self.check, self.objectives, self.constraints, label=self.label,
                           max_rounds=self.max_rounds, replace_objectives=self.replace_objectives,
                           failure=self.failure, keep=self.keep)
        self.history.append(res)
        log.info("%s", res.summary())
        return out

    def summary(self) -> str:
        """The confirmations of every batch so far, in one line."""
        if not self.history:
            return f"front confirmed ({self.label}): no batch evaluated in this process"
        checked = sum(len(h.checked) for h in self.history)
        rejected = [r for h in self.history for r in h.rejected.values()]
        reasons = violated(rejected)
        why = f" (violating {', '.join(reasons)})" if reasons else ""
        return (f"front confirmed ({self.label}): {checked} configurations checked over {len(self.history)} "
                f"batch(es), {len(rejected)} left the front{why}")


__all__ = ["Confirmation", "Confirming", "column_fidelity", "screening_values", "screening_gaps", "gaps_text",
           "relative_gaps", "confirm", "violations", "violated", "refusals", "stored_confirmation"]
