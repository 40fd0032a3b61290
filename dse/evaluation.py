"""Objective functions: how one is marked (``vectorized``, provenance, band level) and evaluated safely.

An objective is either a per-configuration callable (``dict -> dict of metrics``) or a batch callable marked
with :func:`vectorized` (``DataFrame -> DataFrame``, one row per configuration, same order). Evaluation never
raises for a bad trial: an exception, a missing or non-finite metric, or a timeout becomes a failed result with
its reason, and the study goes on. Evaluation runs inside worker processes: only plain data in and out.
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import ObjectiveError
from .plain import frame_records, to_plain
from .vocabulary import BAND_END

#: Attribute an objective sets to declare the band level of the ``<m>_lo`` / ``<m>_hi`` metrics it returns (a float
#: in (0, 1)), or None when it returns none; see :meth:`ObjectiveSpec.check_objective`.
BAND_LEVEL_ATTR = "dse_band_level"
#: Attribute holding the inputs (user files and their hashes) an objective declares with ``vectorized(inputs=...)``
INPUTS_ATTR = "dse_inputs"
#: Attribute holding the units of the metrics an objective returns, ``((name suffix, unit), ...)`` read before the
#: engine's own (`dse.plot_style.UNIT_SUFFIXES`); declared with ``vectorized(units=...)``
UNITS_ATTR = "dse_units"


def vectorized(fn: Callable | None = None, *, name: str | None = None, version: str | None = None,
               band_level: float | None = None, inputs: Mapping[str, Any] | None = None,
               units: Sequence[tuple[str, str]] | None = None):
    """Mark an objective as a batch callable: it takes a DataFrame of configurations, returns a DataFrame of metrics.

    Usable bare (``@dse.vectorized``) or with provenance (``@dse.vectorized(name="roofline", version="1.2")``).
    The name and version are stored with the study. ``band_level``: the level of the ``<m>_lo`` / ``<m>_hi`` band
    ends the objective returns (sets ``dse_band_level``; a per-configuration objective sets that attribute itself).
    ``inputs``: the user's files (or other inputs) the objective's numbers depend on, as plain JSON data (e.g.
    ``{"calibration": {"file": ..., "sha256": ...}}``); stored with the study's provenance beside the version.
    ``units``: (metric-name suffix, unit) pairs, first match wins, that name the units of the metrics the objective
    returns (``("tok_s", "tokens/s")``); stored with the study, read by the plots' axis titles.
    """

    def mark(f: Callable) -> Callable:
        setattr(f, "__dse_vectorized__", True)   # noqa: B010 (attributes a plain Callable is not typed to have)
        if name is not None:
            setattr(f, "dse_name", name)   # noqa: B010
        if version is not None:
            setattr(f, "dse_version", version)   # noqa: B010
        if band_level is not None:
            setattr(f, BAND_LEVEL_ATTR, band_level)
        if inputs is not None:
            setattr(f, INPUTS_ATTR, to_plain(dict(inputs)))
        if units is not None:
            setattr(f, UNITS_ATTR, tuple((str(s), str(u)) for s, u in units))
        return f

    return mark(fn) if fn is not None else mark


def is_vectorized(fn: Callable) -> bool:
    """True if `fn` was marked with :func:`vectorized`."""
    return bool(getattr(fn, "__dse_vectorized__", False))


def objective_info(fn: Callable) -> dict[str, Any]:
    """Provenance of an objective: name, version, whether it is vectorized, and the band level and inputs it
    declares (stored with the study)."""
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
    inputs = getattr(fn, INPUTS_ATTR, None)
    if isinstance(inputs, Mapping) and inputs:
        info["inputs"] = dict(inputs)
    units = getattr(fn, UNITS_ATTR, None)
    if units:
        info["units"] = [[str(s), str(u)] for s, u in units]
    return info


def objective_change(before: Mapping[str, Any] | None, info: Mapping[str, Any]) -> tuple[str, str] | None:
    """("name version" stored, "name version" now) where a study's stored objective provenance `before` names
    another objective name or version than `info` (`objective_info`), else None (also without a stored one)."""
    if not before or all(before.get(k) == info.get(k) for k in ("name", "version")):
        return None
    return f"{before.get('name')} {before.get('version')}", f"{info.get('name')} {info.get('version')}"


def objective_differences(before: Mapping[str, Any], info: Mapping[str, Any], width: int = 160) -> list[str]:
    """What differs between a study's stored objective provenance ``before`` and ``info`` (`objective_info`), in
    words, one entry per difference: the name; the parts of a version written as ``a+b+c`` that differ (the whole
    version otherwise); and each entry of the declared ``inputs`` (one level into a nested mapping, e.g.
    ``inputs.setup.workload``) that was added, dropped or changed, values cut to ``width`` characters from a little
    before where the two first differ."""
    def short(v: Any, start: int = 0) -> str:
        text = v if isinstance(v, str) else repr(v)
        head = "..." if start else ""
        return head + (text[start:] if len(text) - start <= width else text[start:start + width - 3] + "...")

    def pair(x: Any, y: Any) -> str:
        """``x -> y``, both cut from a little before where their texts first differ."""
        a, b = (v if isinstance(v, str) else repr(v) for v in (x, y))
        i = next((k for k, (p, q) in enumerate(zip(a, b)) if p != q), min(len(a), len(b)))
        start = max(0, i - width // 4) if i > width // 2 else 0
        return f"{short(a, start)} -> {short(b, start)}"

    out: list[str] = []
    if before.get("name") != info.get("name"):
        out.append(f"name {pair(before.get('name'), info.get('name'))}")
    was, now = str(before.get("version")), str(info.get("version"))
    if was != now:
        a, b = was.split("+"), now.split("+")
        if len(a) == len(b):
            out += [f"version part {pair(x, y)}" for x, y in zip(a, b) if x != y]
        else:
            out.append(f"version {pair(was, now)}")

    def walk(x: Any, y: Any, path: str, depth: int) -> None:
        if x == y:
            return
        if depth and isinstance(x, Mapping) and isinstance(y, Mapping):
            for k in dict.fromkeys([*x, *y]):
                if k not in y:
                    out.append(f"{path}.{k} dropped (was {short(x[k])})")
                elif k not in x:
                    out.append(f"{path}.{k} added: {short(y[k])}")
                else:
                    walk(x[k], y[k], f"{path}.{k}", depth - 1)
            return
        out.append(f"{path}: {pair(x, y)}")
    walk(before.get("inputs") or {}, info.get("inputs") or {}, "inputs", 2)
    return out


def objective_refusal(study: str, storage_url: str, n: int, before: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    """Why a study holding ``n`` complete trials of the objective ``before`` (its stored provenance) is not resumed
    with the objective ``info`` (`objective_info`), what differs (`objective_differences`) and how to go on."""
    was = objective_change(before, info) or ("?", "?")
    differ = "; ".join(objective_differences(before, info))
    return (f"study {study!r} holds {n} complete trials evaluated by {was[0]}; this run's objective is {was[1]} "
            f"({differ}): its front would rank numbers of both, so nothing was run and nothing stored changed. To "
            f"evaluate the new objective, give the study another name (StudySpec name=, or dse.create_study) or "
            f"storage (dse run --storage), or delete this one (dse.delete_study({study!r}, storage={storage_url!r})); "
            f"to go on with this one, run it with the objective it was evaluated by")


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
        clean[str(k)] = _metric_value(v)
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

def _metric_value(v: Any) -> Any:
    """A metric value as JSON stores it: numpy scalars as Python numbers, anything but None, bool, int, float and
    str as its str."""
    v = to_plain(v)
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


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
                msg = f"non-finite or non-numeric metric value: {m}={_metric_value(raw[i])!r}"
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
def worker_id() -> str:
    """A unique id for this process: hostname:pid:random."""
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
