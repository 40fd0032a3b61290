"""Metric constraints: ``(op, bound)`` or ``(op, bound, confidence)`` on a metric, validated and normalized; a
confidence checked on the metric's pessimistic band end (``<metric>_hi`` / ``<metric>_lo``); and the rules for
metric names (not reserved, not a parameter's)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np

from .errors import ObjectiveError
from .vocabulary import BAND_END, CONSTRAINT_OPS, RESERVED_METRICS

#: Column names the engine uses in ``study.trials``; metrics and parameters may not take them.
RESERVED = RESERVED_METRICS

#: A metric constraint: ``(op, bound)``, or ``(op, bound, confidence)``: met with that confidence, i.e. checked on
#: the metric's pessimistic band end (see :func:`band_column`).
Constraint: TypeAlias = tuple[str, float] | tuple[str, float, float]


def band_level(confidence: Any, metric: str | None = None) -> float:
    """The two-sided band level 2 c - 1 whose pessimistic end is the one-sided bound at `confidence` c ("TTFT <=
    2000 ms with 90 % confidence" is the upper end of the 80 % band). ObjectiveError naming the value unless
    0.5 < c < 1."""
    what = f"confidence of the constraint on {metric!r}" if metric else "confidence"
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(confidence)) or not 0.5 < float(confidence) < 1.0:
        raise ObjectiveError(f"{what} is {confidence!r}; a confidence is a number strictly between 0.5 and 1 (e.g. "
                             "0.9: met at the upper end of the 80 % band), or leave it out: (op, bound)")
    return 2.0 * float(confidence) - 1.0


def band_column(metric: str, constraint: Sequence) -> str:
    """The metric column a constraint is checked on: ``metric`` itself for ``(op, bound)``; for ``(op, bound,
    confidence)`` the pessimistic band end, ``<metric>_hi`` for ``<=`` / ``<`` and ``<metric>_lo`` for ``>=`` /
    ``>`` (`dse.vocabulary.BAND_END`)."""
    return metric + BAND_END[constraint[0]] if len(constraint) == 3 else metric


def describe_constraint(metric: str, constraint: Sequence) -> str:
    """``"ttft_ms <= 2000"``, or ``"ttft_ms <= 2000 with confidence 0.9 (ttft_ms_hi)"``."""
    text = f"{metric} {constraint[0]} {float(constraint[1]):g}"
    if len(constraint) == 3:
        text += f" with confidence {float(constraint[2]):g} ({band_column(metric, constraint)})"
    return text


def check_constraints(constraints: Mapping[str, Any] | None, param_names: Sequence[str] = ()) -> dict[str, Constraint]:
    """Validated, normalized metric constraints: metric -> ``(op, float bound)`` or ``(op, float bound, float
    confidence)`` (a confidence of None is dropped). ObjectiveError names any bad metric, operator, bound or
    confidence."""
    if constraints is None:
        return {}
    if not isinstance(constraints, Mapping):
        raise ObjectiveError(f"constraints must be a mapping metric -> (op, bound) or (op, bound, confidence), got "
                             f"{constraints!r:.200}")
    cons: dict[str, Constraint] = {}
    for name, spec in constraints.items():
        check_metric_name(name, param_names)
        if isinstance(spec, (tuple, list)) and len(spec) == 3 and spec[2] is None:
            spec = tuple(spec[:2])
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise ObjectiveError(
                f"constraint on {name!r} is {spec!r}; write it as (op, bound) with op in {CONSTRAINT_OPS}, "
                "e.g. ('<=', 500), or (op, bound, confidence) to meet it with a confidence, e.g. ('<=', 500, 0.9)"
            )
        op, bound = spec[0], spec[1]
        if op not in CONSTRAINT_OPS:
            raise ObjectiveError(f"constraint on {name!r} uses operator {op!r}; valid operators are {CONSTRAINT_OPS}")
        try:
            bound = float(bound)
        except (TypeError, ValueError):
            raise ObjectiveError(f"constraint bound for {name!r} is {bound!r}; it must be a finite number") from None
        if not math.isfinite(bound):
            raise ObjectiveError(f"constraint bound for {name!r} is {bound!r}; it must be a finite number")
        if len(spec) == 2:
            cons[name] = (op, bound)
            continue
        if op not in BAND_END:
            raise ObjectiveError(f"constraint on {name!r} is {tuple(spec)!r}: a confidence needs a one-sided operator "
                                 f"({', '.join(BAND_END)}); '==' has no pessimistic end. Write ({op!r}, {bound:g})")
        band_level(spec[2], name)
        check_metric_name(name + BAND_END[op], param_names)
        cons[name] = (op, bound, float(spec[2]))
    return cons


def check_metric_name(name: Any, param_names: Sequence[str] = ()) -> None:
    """ObjectiveError unless ``name`` is a non-empty str, not reserved and not a parameter of the space."""
    if not isinstance(name, str) or not name:
        raise ObjectiveError(f"metric name {name!r} must be a non-empty string")
    if name in RESERVED:
        raise ObjectiveError(f"metric name {name!r} is reserved; reserved names are {sorted(RESERVED)}")
    if name in param_names:
        raise ObjectiveError(f"metric name {name!r} is also a parameter of the space; rename one of them")
