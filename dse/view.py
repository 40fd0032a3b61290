"""StudyView: the plain data a study hands to plots and reports.

A Study builds one with its trials table, its parameter names, objectives, constraints, provenance and the
trial numbers of its feasible Pareto set. Plots (:mod:`dse.plot`) and the HTML report (:mod:`dse.report`) take
a StudyView and nothing else, so they work for any study, however it was stored.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import StudyError
from .vocabulary import BAND_END, CONSTRAINT_OPS
from .vocabulary import DIRECTIONS as _DIRECTIONS
from .vocabulary import TRIAL_COLUMNS as BASE_COLUMNS

#: Classes a complete trial falls in, as used by every plot.
FRONT, DOMINATED, INFEASIBLE = "front", "dominated", "infeasible"


@dataclass
class StudyView:
    """A read-only snapshot of a study for plotting and reporting.

    Attributes:
        name: the study name.
        trials: one row per trial: ``number``, ``state`` ("complete" | "failed" | "running"), ``feasible`` (bool),
            ``error``, ``duration_s`` (s), ``worker``, then one column per parameter and one per metric.
        params: parameter column names.
        objectives: metric -> "min" | "max" (in optimization order; the first ones are the default plot axes).
        constraints: metric -> (operator, bound), operator one of ``<= >= < > ==``. Given as (operator, bound,
            confidence) (a constraint met with a confidence), the confidence moves to ``confidences``.
        confidences: metric -> confidence of the constraints met with one: checked on the metric's pessimistic
            band end (``band_columns``).
        meta: provenance (space, optimizer and settings, seed, package version, objective name/version,
            created_at, storage url, ...); any JSON-like mapping.
        pareto_numbers: trial numbers of the feasible non-dominated set, as computed by the study.
    """

    name: str
    trials: pd.DataFrame
    params: list[str]
    objectives: dict[str, str]
    constraints: dict[str, tuple[str, float]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    pareto_numbers: list[int] = field(default_factory=list)
    confidences: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.trials, pd.DataFrame):
            raise StudyError(f"trials must be a pandas DataFrame, got {type(self.trials).__name__}")
        missing = [c for c in ("number", "state", "feasible") if c not in self.trials.columns]
        if missing:
            raise StudyError(
                f"trials table of study {self.name!r} lacks columns {missing}; it needs {list(BASE_COLUMNS)}, "
                "then one column per parameter and per metric"
            )
        self.params = list(self.params)
        absent = [p for p in self.params if p not in self.trials.columns]
        if absent:
            raise StudyError(f"parameters {absent} are not columns of the trials table; columns are {list(self.trials.columns)}")
        if not self.objectives:
            raise StudyError(f"study {self.name!r} has no objectives; give at least one metric -> 'min' | 'max'")
        objectives: dict[str, str] = {}
        for metric, direction in self.objectives.items():
            key = str(direction).strip().lower()
            if key not in _DIRECTIONS:
                raise StudyError(f"objective {metric!r} has direction {direction!r}; valid directions are 'min' or 'max'")
            if metric not in self.trials.columns:
                raise StudyError(f"objective {metric!r} is not a column of the trials table; columns are {list(self.trials.columns)}")
            objectives[str(metric)] = _DIRECTIONS[key]
        self.objectives = objectives
        constraints: dict[str, tuple[str, float]] = {}
        confidences = {str(k): float(v) for k, v in (self.confidences or {}).items()}
        spec: Any
        for metric, spec in (self.constraints or {}).items():
            conf: float | None = None
            try:
                op, bound = spec[0], float(spec[1])
                if len(spec) == 3 and spec[2] is not None:
                    conf = float(spec[2])
                if len(spec) not in (2, 3) or (conf is not None and not 0.5 < conf < 1.0):
                    raise ValueError
            except (TypeError, ValueError, IndexError, KeyError):
                raise StudyError(f"constraint on {metric!r} is {spec!r}; expected (operator, number), e.g. ('<=', 500), "
                                 "or (operator, number, confidence in (0.5, 1)), e.g. ('<=', 500, 0.9)") from None
            if op not in CONSTRAINT_OPS or (conf is not None and op not in BAND_END):
                valid = list(BAND_END) if conf is not None else list(CONSTRAINT_OPS)
                raise StudyError(f"constraint on {metric!r} has operator {op!r}; valid operators are {valid}")
            constraints[str(metric)] = (op, bound)
            if conf is not None:
                confidences[str(metric)] = conf
        stray = sorted(set(confidences) - set(constraints))
        if stray:
            raise StudyError(f"confidences name {stray}, which have no constraint; constraints are {list(constraints)}")
        self.constraints = constraints
        self.confidences = confidences
        self.meta = dict(self.meta or {})
        numbers = set(pd.to_numeric(self.trials["number"], errors="coerce").dropna().astype(int).tolist())
        pareto = [int(n) for n in self.pareto_numbers]
        unknown = sorted(set(pareto) - numbers)
        if unknown:
            raise StudyError(f"pareto_numbers {unknown[:10]} are not trial numbers of study {self.name!r}")
        self.pareto_numbers = pareto

    # ---- derived views -------------------------------------------------------------------------------------

    @property
    def metrics(self) -> list[str]:
        """Metric columns: every column that is neither a base column nor a parameter (objectives first)."""
        skip = set(BASE_COLUMNS) | set(self.params)
        rest = [c for c in self.trials.columns if c not in skip and c not in self.objectives]
        return list(self.objectives) + [c for c in rest if _is_numeric(self.trials[c])]

    @property
    def labels(self) -> list[str]:
        """Text metric columns (what an objective says about a row beside its numbers, e.g. where they come from):
        every column that is neither a base column, a parameter nor numeric, holding a value on a complete trial."""
        done = self.trials[self.trials["state"].astype(str) == "complete"]
        return label_columns(done, [*BASE_COLUMNS, *self.params, *self.objectives])

    def complete(self) -> pd.DataFrame:
        """Complete trials (failed and running ones dropped), with a ``category`` column:
        "front" (in ``pareto_numbers``), "dominated" (feasible, not on the front) or "infeasible"."""
        df = self.trials[self.trials["state"].astype(str) == "complete"].copy()
        on_front = df["number"].isin(self.pareto_numbers).to_numpy()
        feasible = df["feasible"].fillna(False).astype(bool).to_numpy()
        df["category"] = np.where(on_front, FRONT, np.where(feasible, DOMINATED, INFEASIBLE))
        return df

    def front(self) -> pd.DataFrame:
        """The front's trials, sorted by the first objective (best first)."""
        df = self.trials[self.trials["number"].isin(self.pareto_numbers)]
        first = next(iter(self.objectives))
        return df.sort_values(first, ascending=self.objectives[first] == "min", kind="stable")

    @property
    def band_columns(self) -> dict[str, str]:
        """Metric -> the column its constraint is checked on, for the constraints met with a confidence
        (``<metric>_hi`` for ``<=`` / ``<``, ``<metric>_lo`` for ``>=`` / ``>``)."""
        return {m: m + BAND_END[self.constraints[m][0]] for m in self.confidences}

    def constraint_text(self, metric: str) -> str:
        """``"ttft_ms <= 2000"``, or ``"ttft_ms <= 2000 with confidence 0.9 (ttft_ms_hi)"``."""
        op, bound = self.constraints[metric]
        text = f"{metric} {op} {bound:g}"
        if metric in self.confidences:
            text += f" with confidence {self.confidences[metric]:g} ({self.band_columns[metric]})"
        return text

    def check_metric(self, name: str, role: str = "metric") -> str:
        """Return `name` if it is a numeric metric column, else StudyError naming it and the valid metrics."""
        if name not in self.metrics:
            raise StudyError(f"unknown {role} {name!r} for study {self.name!r}; valid metrics are {self.metrics}")
        return name

    def direction(self, metric: str) -> str:
        """The metric's direction: its objective direction, the side its constraint keeps, else "min"."""
        if metric in self.objectives:
            return self.objectives[metric]
        op = self.constraints.get(metric, ("<=", 0.0))[0]
        return "max" if op in (">=", ">") else "min"


def label_columns(rows: pd.DataFrame, skip: Iterable[str]) -> list[str]:
    """The text columns of `rows` outside `skip` that hold a value (not missing, not empty) on some row: an
    objective's labels of its results, shown beside the metrics (`StudyView.labels`, `dse.spec.front_table`)."""
    skipped = set(skip)
    out = []
    for c in rows.columns:
        if c in skipped or _is_numeric(rows[c]):
            continue
        v = rows[c]
        if (v.notna() & (v.astype(str).str.strip() != "")).any():
            out.append(str(c))
    return out


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
