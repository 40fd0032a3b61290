"""What a study optimizes: :class:`ObjectiveSpec` (metric -> direction, and metric constraints).

This module is also where the objective's public names have always been imported from: the objective function's
marks and safe evaluation (:mod:`dse.evaluation`), metric constraints and bands (:mod:`dse.metric_constraints`) and
the plain-value conversion of frames (:mod:`dse.plain`) are re-exported here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import ObjectiveError
from .evaluation import (
    BAND_LEVEL_ATTR,
    Evaluated,
    Result,
    TrialTimeout,
    check_metrics,
    evaluate_chunk,
    evaluate_frame,
    evaluate_one,
    is_vectorized,
    missing_message,
    objective_info,
    vectorized,
    worker_id,
)
from .metric_constraints import (
    RESERVED,
    Constraint,
    band_column,
    band_level,
    check_constraints,
    check_metric_name,
    describe_constraint,
)
from .pareto import normalize_direction
from .plain import frame_records, plain_values

__all__ = [
    "BAND_LEVEL_ATTR", "RESERVED", "Constraint", "Evaluated", "ObjectiveSpec", "Result", "TrialTimeout",
    "band_column", "band_level", "check_constraints", "check_metric_name", "check_metrics", "describe_constraint",
    "evaluate_chunk", "evaluate_frame", "evaluate_one", "frame_records", "is_vectorized", "missing_message",
    "objective_info", "plain_values", "vectorized", "worker_id",
]


@dataclass(frozen=True)
class ObjectiveSpec:
    """What a study optimizes: metric -> direction, and metric constraints: metric -> (op, bound), or metric ->
    (op, bound, confidence), met with that confidence: checked on the metric's pessimistic band end ``<metric>_hi``
    (``<=``, ``<``) or ``<metric>_lo`` (``>=``, ``>``), which the objective returns from a band at level
    2 x confidence - 1 (see :meth:`check_objective`)."""

    objectives: dict[str, str]
    constraints: dict[str, Constraint] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        objectives: Mapping[str, str] | Any,
        constraints: Mapping[str, Sequence] | None = None,
        param_names: tuple[str, ...] | list[str] = (),
    ) -> ObjectiveSpec:
        """Validate and normalize user input; ObjectiveError names any bad metric, direction, bound or confidence."""
        if isinstance(objectives, str):
            raise ObjectiveError(
                f"objectives={objectives!r} must be a mapping metric -> 'min'|'max', e.g. {{{objectives!r}: 'min'}}"
            )
        if not isinstance(objectives, Mapping) or not objectives:
            raise ObjectiveError(f"objectives must be a non-empty mapping metric -> 'min'|'max', got {objectives!r}")
        objs: dict[str, str] = {}
        for name, direction in objectives.items():
            check_metric_name(name, param_names)
            try:
                objs[name] = normalize_direction(name, direction)
            except ValueError as exc:
                raise ObjectiveError(str(exc)) from None
        return cls(objs, check_constraints(constraints, param_names))

    @property
    def names(self) -> list[str]:
        return list(self.objectives)

    @property
    def directions(self) -> list[str]:
        return list(self.objectives.values())

    @property
    def checked(self) -> dict[str, str]:
        """Constrained metric -> the column its constraint is checked on (itself, or its pessimistic band end)."""
        return {name: band_column(name, c) for name, c in self.constraints.items()}

    @property
    def confidences(self) -> dict[str, float]:
        """Constrained metric -> confidence, for the constraints met with a confidence."""
        return {name: float(c[2]) for name, c in self.constraints.items() if len(c) == 3}

    @property
    def required(self) -> list[str]:
        """Metrics every evaluation must return: the objectives, then constrained metrics, then the band ends that
        constraints with a confidence are checked on."""
        return list(dict.fromkeys([*self.objectives, *self.constraints, *self.checked.values()]))

    def check_objective(self, fn: Callable) -> None:
        """ObjectiveError when `fn` declares a band level (attribute ``dse_band_level``: a level, or None for no
        bands) that a constraint with a confidence c cannot be checked on (it needs level 2 c - 1). An objective
        that declares nothing is taken at its word per trial: a trial whose metrics lack a band end fails, naming
        it."""
        need = {m: band_level(c, m) for m, c in self.confidences.items()}
        if not need or not hasattr(fn, BAND_LEVEL_ATTR):
            return
        have = getattr(fn, BAND_LEVEL_ATTR)
        name = objective_info(fn)["name"]
        for m, level in need.items():
            what = describe_constraint(m, self.constraints[m])
            if have is None:
                raise ObjectiveError(
                    f"constraint {what} is checked on the band end {self.checked[m]!r}, which needs a band at level "
                    f"{level:g} (2 x confidence - 1); objective {name!r} returns no bands ({BAND_LEVEL_ATTR}=None): "
                    f"build it with bands at level {level:g}, or state the constraint without a confidence")
            if abs(float(have) - level) > 1e-9:
                raise ObjectiveError(
                    f"constraint {what} needs band ends at level {level:g} (2 x confidence - 1); objective {name!r} "
                    f"returns bands at level {float(have):g} ({BAND_LEVEL_ATTR}), i.e. confidence "
                    f"{(1 + float(have)) / 2:g}: build it at level {level:g}, or use confidence "
                    f"{(1 + float(have)) / 2:g} in the constraint")

    def violation(self, metrics: pd.DataFrame) -> np.ndarray:
        """Total constraint violation per row (0 = feasible), each term relative to max(|bound|, 1); a constraint
        with a confidence is checked on its band end column."""
        n = len(metrics)
        cv = np.zeros(n)
        for name, c in self.constraints.items():
            op, bound = c[0], c[1]
            col = band_column(name, c)
            v = pd.to_numeric(metrics[col], errors="coerce").to_numpy(dtype=float) if col in metrics \
                else np.full(n, np.nan)
            scale = max(abs(bound), 1.0)
            if op in ("<=", "<"):
                d = np.maximum(v - bound, 0.0)
                if op == "<":
                    d = np.where(v >= bound, np.maximum(d, 1e-12), d)
            elif op in (">=", ">"):
                d = np.maximum(bound - v, 0.0)
                if op == ">":
                    d = np.where(v <= bound, np.maximum(d, 1e-12), d)
            else:
                d = np.abs(v - bound)
            cv += np.where(np.isfinite(d), d / scale, np.inf)
        return cv

    def to_dict(self) -> dict:
        return {"objectives": dict(self.objectives), "constraints": {k: list(v) for k, v in self.constraints.items()}}

    @classmethod
    def from_dict(cls, d: Mapping) -> ObjectiveSpec:
        """From ``to_dict`` (as stored with a study): constraints stored as [op, bound] or [op, bound, confidence]."""
        cons: dict[str, Constraint] = {}
        for k, v in d.get("constraints", {}).items():
            cons[k] = (v[0], float(v[1]), float(v[2])) if len(v) == 3 and v[2] is not None else (v[0], float(v[1]))
        return cls(dict(d["objectives"]), cons)
