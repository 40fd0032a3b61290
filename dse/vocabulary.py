"""The engine's vocabulary, in one place: trial columns, trial states, constraint operators, direction names.

Storage, studies, objectives, views and exports import these names; none of them spells its own copy.
"""
from __future__ import annotations

#: Columns every trials table carries besides parameters and metrics, in this order.
TRIAL_COLUMNS: tuple[str, ...] = (
    "number", "state", "feasible", "error", "duration_s", "worker", "started_at", "finished_at",
)

#: Trial states: a trial is reserved "running", then finished "complete" or "failed".
STATES: tuple[str, ...] = ("running", "complete", "failed")
#: States a finished trial may have.
FINISHED_STATES: tuple[str, ...] = ("complete", "failed")

#: Names a metric may not take (trial columns, and the raw storage fields).
RESERVED_METRICS: frozenset[str] = frozenset({*TRIAL_COLUMNS, "cv", "params", "metrics"})

#: Constraint operators of metric constraints, ``metric -> (op, bound)`` or ``metric -> (op, bound, confidence)``.
CONSTRAINT_OPS: tuple[str, ...] = ("<=", ">=", "<", ">", "==")

#: A constraint met with a confidence (``(op, bound, confidence)``) is checked on the metric's pessimistic band end:
#: operator -> suffix of the column checked (``ttft_ms <= 2000`` at 0.9 is ``ttft_ms_hi <= 2000``, the band at
#: level 2 x 0.9 - 1). ``==`` has no pessimistic end and takes no confidence.
BAND_END: dict[str, str] = {"<=": "_hi", "<": "_hi", ">=": "_lo", ">": "_lo"}

#: Accepted direction spellings, normalized to "min" / "max".
DIRECTIONS: dict[str, str] = {
    "min": "min", "minimize": "min", "minimise": "min", "max": "max", "maximize": "max", "maximise": "max",
}
