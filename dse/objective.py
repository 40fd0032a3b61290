"""Objectives: the user's evaluate function, its directions and metric constraints, and safe evaluation.

An objective is either a per-configuration callable (``dict -> dict of metrics``) or a batch callable marked
with :func:`vectorized` (``DataFrame -> DataFrame``, one row per configuration, same order). Evaluation never
raises for a bad trial: an exception, a missing or non-finite metric, or a timeout becomes a failed result with
its reason, and the study goes on.
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from .errors import ObjectiveError
from .pareto import normalize_direction
from .vocabulary import BAND_END, CONSTRAINT_OPS, RESERVED_METRICS

#: Column names the engine uses in ``study.trials``; metrics and parameters may not take them.
RESERVED = RESERVED_METRICS

#: A metric constraint: ``(op, bound)``, or ``(op, bound, confidence)``: met with that confidence, i.e. checked on
#: the metric's pessimistic band end (see :func:`band_column`).
Constraint: TypeAlias = tuple[str, float] | tuple[str, float, float]

#: Attribute an objective sets to declare the band level of the ``<m>_lo`` / ``<m>_hi`` metrics it returns (a float
#: in (0, 1)), or None when it returns none; see :meth:`ObjectiveSpec.check_objective`.
BAND_LEVEL_ATTR = "dse_band_level"


def vectorized(fn: Callable | None = None, *, name: str | None = None, version: str | None = None,
               band_level: float | None = None):
    """Mark an objective as a batch callable: it takes a DataFrame of configurations, returns a DataFrame of metrics.

    Usable bare (``@dse.vectorized``) or with provenance (``@dse.vectorized(name="roofline", version="1.2")``).
    The name and version are stored with the study. ``band_level``: the level of the ``<m>_lo`` / ``<m>_hi`` band
    ends the objective returns (sets ``dse_band_level``; a per-configuration objective sets that attribute itself).
    """

    def mark(f: Callable) -> Callable:
        setattr(f, "__dse_vectorized__", True)   # noqa: B010 (attributes a plain Callable is not typed to have)
        if name is not None:
            setattr(f, "dse_name", name)   # noqa: B010
        if version is not None:
            setattr(f, "dse_version", version)   # noqa: B010
        if band_level is not None:
            setattr(f, BAND_LEVEL_ATTR, band_level)
        return f

    return mark(fn) if fn is not None else mark


def is_vectorized(fn: Callable) -> bool:
    """True if `fn` was marked with :func:`vectorized`."""
    return bool(getattr(fn, "__dse_vectorized__", False))


def objective_info(fn: Callable) -> dict[str, Any]:
    """Provenance of an objective: name, version and whether it is vectorized (stored with the study)."""
    name = getattr(fn, "dse_name", None) or getattr(fn, "__qualname__", None) or type(fn).__name__
    module = getattr(fn, "__module__", None)
    info: dict[str, Any] = {
        "name": str(name),
        "module": str(module) if module else None,
        "version": str(getattr(fn, "dse_version", "")) or None,
        "vectorized": is_vectorized(fn),
    }
    level = getattr(fn, BAND_LEVEL_ATTR, None)
    if isinstance(level, (int, float)) and not isinstance(level, bool):
        info["band_level"] = float(level)
    return info


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
        _check_metric_name(name, param_names)
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
        _check_metric_name(name + BAND_END[op], param_names)
        cons[name] = (op, bound, float(spec[2]))
    return cons


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
            _check_metric_name(name, param_names)
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


def _check_metric_name(name: Any, param_names) -> None:
    if not isinstance(name, str) or not name:
        raise ObjectiveError(f"metric name {name!r} must be a non-empty string")
    if name in RESERVED:
        raise ObjectiveError(f"metric name {name!r} is reserved; reserved names are {sorted(RESERVED)}")
    if name in param_names:
        raise ObjectiveError(f"metric name {name!r} is also a parameter of the space; rename one of them")


# --------------------------------------------------------------------------------------------------------------
# Evaluation (runs inside worker processes: only plain data in and out)


class TrialTimeout(Exception):
    """Raised inside an evaluation that ran past the per-trial timeout."""


@dataclass
class Result:
    """Outcome of evaluating one configuration."""

    metrics: dict[str, Any] | None
    error: str | None
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Evaluated:
    """Outcome of evaluating a batch: ``metrics`` (one row per configuration, failed rows included, as the
    objective returned them), ``errors`` (object array, None where the trial succeeded), ``seconds`` (evaluation
    time per configuration, s) and ``records`` (per-configuration results: each row's metrics as a dict, None
    where there were none; None when the batch was evaluated as a frame)."""

    metrics: pd.DataFrame
    records: Sequence[dict[str, Any] | None] | None
    errors: np.ndarray
    seconds: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        return pd.isna(np.asarray(self.errors, dtype=object))   # errors are str, or None where the trial succeeded

    def present(self) -> dict[str, np.ndarray]:
        """Per metric column that some results lack (per-configuration results with different keys), the rows
        that hold it; {} when every row has every column."""
        if self.records is None or all(r is not None and len(r) == self.metrics.shape[1] for r in self.records):
            return {}
        return {c: np.fromiter((r is not None and c in r for r in self.records), dtype=bool, count=len(self.records))
                for c in self.metrics.columns}

    @classmethod
    def from_results(cls, results: list[Result]) -> Evaluated:
        """From per-configuration results (the runner's path: per-config objectives, worker pools)."""
        records = [r.metrics for r in results]
        metrics = pd.DataFrame.from_records([m or {} for m in records], index=range(len(records)))
        return cls(metrics, records, np.array([r.error for r in results], dtype=object),
                   np.array([r.duration_s for r in results], dtype=float))

    @classmethod
    def of_frame(cls, fn: Callable, configs: pd.DataFrame, required: list[str],
                 timeout: float | None = None) -> Evaluated:
        """A vectorized objective on a DataFrame of configurations, in this process (``evaluate_frame``)."""
        metrics, errors, seconds = evaluate_frame(fn, configs, required, timeout)
        n = len(configs)
        return cls(metrics, None, errors, np.full(n, seconds / max(n, 1)))


def _timer(timeout: float | None):
    """Context manager arming SIGALRM for `timeout` seconds where that is possible (main thread, POSIX)."""

    class _Alarm:
        def __enter__(self):
            self.armed = bool(
                timeout
                and hasattr(signal, "setitimer")
                and threading.current_thread() is threading.main_thread()
            )
            if self.armed:
                def _raise(signum, frame):
                    raise TrialTimeout(f"trial exceeded its timeout of {timeout:g} s")

                self.old = signal.signal(signal.SIGALRM, _raise)
                signal.setitimer(signal.ITIMER_REAL, float(timeout))
            return self

        def __exit__(self, *exc):
            if self.armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, self.old)
            return False

    return _Alarm()


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def check_metrics(metrics: Any, required: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """Validate one configuration's metrics; return (clean metrics, None) or (metrics or None, reason)."""
    if isinstance(metrics, pd.Series):
        metrics = metrics.to_dict()
    if not isinstance(metrics, Mapping):
        return None, f"objective returned {type(metrics).__name__}, expected a dict of metrics"
    clean: dict[str, Any] = {}
    for k, v in metrics.items():
        clean[str(k)] = _plain(v)
    missing = [m for m in required if m not in clean]
    if missing:
        return clean, missing_message(missing, clean)
    bad = []
    for m in required:
        v = clean[m]
        if not isinstance(v, (int, float)) or not math.isfinite(v):  # bools count as 0/1 (e.g. a "fits" flag)
            bad.append(f"{m}={v!r}")
    if bad:
        return clean, f"non-finite or non-numeric metric value(s): {', '.join(bad)}"
    return clean, None


def missing_message(missing: list[str], returned: Any) -> str:
    """Why a trial failed for lacking required metrics; band ends (``<m>_hi`` / ``<m>_lo``, what a constraint with
    a confidence is checked on) are explained."""
    returned = sorted(returned)
    msg = f"objective omitted metric(s) {missing}; it returned {returned}"
    ends = [m for m in missing if m[-3:] in BAND_END.values()]
    if ends:
        msg += (f". {', '.join(ends)}: the pessimistic band end that a constraint met with a confidence c is "
                "checked on; the objective must return it from a band at level 2c - 1, or state the constraint "
                "without a confidence, (op, bound)")
    return msg


def _plain(v: Any) -> Any:
    """Convert numpy scalars to Python values so that metrics serialize to JSON."""
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v.item()
    return str(v)


def evaluate_one(fn: Callable, config: dict, required: list[str], timeout: float | None = None) -> Result:
    """Evaluate a per-configuration objective on one config; never raises for a failing trial."""
    t0 = time.perf_counter()
    try:
        with _timer(timeout):
            out = fn(dict(config))
    except TrialTimeout as exc:
        return Result(None, str(exc), time.perf_counter() - t0)
    except Exception as exc:  # a failing objective fails its trial, not the study
        return Result(None, _describe(exc), time.perf_counter() - t0)
    metrics, err = check_metrics(out, required)
    return Result(metrics, err, time.perf_counter() - t0)


def evaluate_frame(
    fn: Callable, configs: pd.DataFrame, required: list[str], timeout: float | None = None
) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Evaluate a vectorized objective on a batch, checking metrics with array operations.

    Returns (metrics DataFrame with one row per config, error array (None where ok), seconds). If the batch
    call raises, the batch is bisected until the failing configurations are isolated, so only they fail.
    """
    n = len(configs)
    t0 = time.perf_counter()
    try:
        with _timer(timeout * max(n, 1) if timeout else None):
            out = fn(configs.reset_index(drop=True))
        out = _as_frame(out, n)
    except Exception as exc:
        if n <= 1:
            return pd.DataFrame(index=range(n)), np.array([_describe(exc)] * n, dtype=object), time.perf_counter() - t0
        # bisect: only the halves that still raise are split further, so k failing rows cost O(k log n) calls
        half = n // 2
        parts = [evaluate_frame(fn, configs.iloc[:half], required, timeout),
                 evaluate_frame(fn, configs.iloc[half:], required, timeout)]
        metrics = pd.concat([p[0] for p in parts], ignore_index=True)
        return metrics, np.concatenate([p[1] for p in parts]), time.perf_counter() - t0
    errors = np.full(n, None, dtype=object)
    missing = [m for m in required if m not in out.columns]
    if missing:
        errors[:] = missing_message(missing, map(str, out.columns))
        return out, errors, time.perf_counter() - t0
    for m in required:
        v = pd.to_numeric(out[m], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if bad.any():
            raw = out[m].to_numpy()
            for i in np.flatnonzero(bad):
                msg = f"non-finite or non-numeric metric value: {m}={_plain(raw[i])!r}"
                errors[i] = msg if errors[i] is None else f"{errors[i]}; {msg}"
    return out, errors, time.perf_counter() - t0


def evaluate_chunk(fn: Callable, configs: list[dict], required: list[str], timeout: float | None = None) -> list[Result]:
    """Evaluate a list of configs with `fn` (vectorized or not) in this process; one Result per config."""
    if not is_vectorized(fn):
        return [evaluate_one(fn, c, required, timeout) for c in configs]
    metrics, errors, seconds = evaluate_frame(fn, pd.DataFrame.from_records(configs), required, timeout)
    per = seconds / max(len(configs), 1)
    return [Result(m, e, per) for m, e in zip(frame_records(metrics), errors)]


def _as_frame(out: Any, n: int) -> pd.DataFrame:
    if isinstance(out, Mapping):
        out = pd.DataFrame(out)
    if not isinstance(out, pd.DataFrame):
        raise ObjectiveError(f"vectorized objective returned {type(out).__name__}; expected a pandas DataFrame")
    if len(out) != n:
        raise ObjectiveError(f"vectorized objective returned {len(out)} rows for {n} configurations")
    return out.reset_index(drop=True)


def plain_values(df: pd.DataFrame, *, none_for_missing: bool = False) -> tuple[list[str], np.ndarray]:
    """Column names and the (n, d) object array of the frame's values as plain Python objects (float, int, str,
    bool), from one conversion of the whole frame (reading columns one by one costs ~8 us each under pandas 3's
    string-labelled columns). ``none_for_missing``: NaN, None and NA all become None."""
    cols = [str(c) for c in df.columns]
    values = df.to_numpy(dtype=object)
    if none_for_missing:
        missing = pd.isna(values)
        if missing.any():
            values = values.copy()   # to_numpy may return a read-only view of an object block
            values[missing] = None
    return cols, values


def frame_records(df: pd.DataFrame, *, none_for_missing: bool = False) -> list[dict]:
    """Rows of a DataFrame as dicts of plain Python values (JSON-serializable), fast (see ``plain_values``)."""
    cols, values = plain_values(df, none_for_missing=none_for_missing)
    return [dict(zip(cols, vals)) for vals in values.tolist()]


def worker_id() -> str:
    """A unique id for this process: hostname:pid:random."""
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
