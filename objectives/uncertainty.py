"""Prediction intervals ("uncertainty bands") of the cost models, by split-conformal prediction on calibration
residuals.

The residuals are ``r = log(measured / predicted)`` of the calibration rows, each predicted by a model that did not
see it (leave-one-source-out refits for the published inference and the training rows, leave-one-model-out refits
for the silicon serving rows; `objectives.calibration.bands` computes them and writes
``objectives/data/uncertainty.json``: ``python -m objectives.calibration bands``). They are grouped by

    kind     "inference" | "training" (which cost model)
    source   the prediction path of the row: "roofline" | "interpolated" | "extrapolated" (inference; the
             `source` column of `inference.estimate`) | "analytical" (training)
    engine   "roofline" (the closed form with fitted factors) | "vllm" | "sglang" | "trtllm" (measured kernel
             profile of that engine) | "-" (training)
    family   GPU family of the catalog ("hopper", "blackwell", ...)
    metric   "ttft" | "tpot" | "e2e" | "throughput"

A band at level ``a`` for a prediction ``y`` is ``[y exp(q_lo), y exp(q_hi)]``, with ``q_lo`` / ``q_hi`` the
split-conformal order statistics of the group's residuals: sorted r_(1) <= ... <= r_(n), q_lo = r_(floor((n + 1)
(1 - a) / 2)), q_hi = r_(ceil((n + 1) (1 + a) / 2)) (equal tails; under exchangeability of the new row with the
group's rows the band holds the measurement with probability >= a). A group with fewer than
``max(MIN_GROUP, 2 / (1 - a) - 1)`` residuals, or with residuals of fewer than ``MIN_UNITS`` held-out units, is
pooled with its neighbours, in this order: the same source and
engine on every GPU family; the same prediction path ("roofline" or "profile": interpolated and extrapolated
together) on every engine; every row of the kind. At each pooling level a metric without residuals of its own
borrows a related one (`FALLBACK`): closed-loop throughput is C x output_len / e2e (Little's law), so its band is
the inverse of the e2e band; e2e is dominated by the decode steps, so it borrows tpot.

Columns that are a fixed multiple of a banded quantity share its band: throughput per GPU, cost per token
(USD/Mtok and J/token are inversely proportional to throughput at a given price and power), MFU, step time. The
energy bands carry the throughput error only: no calibration row measures power (the power model's own error is
not in them).

A one-sided guarantee at confidence ``c`` ("TTFT <= 2000 ms with 90 % confidence") is the upper end of the band at
level ``2 c - 1``: `level_for_confidence`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dse.objective import band_level

log = logging.getLogger(__name__)

DATA_FILE = Path(__file__).resolve().parent / "data" / "uncertainty.json"
#: the command that (re)builds DATA_FILE
BUILD_COMMAND = "python -m objectives.calibration bands"
#: fewest residuals a group needs before it is used alone (smaller groups are pooled, see the module docstring)
MIN_GROUP = 20
#: fewest held-out units (engine versions, models, sources) a group's residuals must come from before it is used
#: alone: a group measured on one unit carries that unit's bias and cannot speak for a new one (docs/uncertainty.md
#: gives the effect on the held-out check)
MIN_UNITS = 2
KINDS = ("inference", "training")
METRICS = ("ttft", "tpot", "e2e", "throughput")
#: metric -> (metric whose band it borrows when it has no residuals at a pooling level, sign: -1 = inverse)
FALLBACK: dict[str, tuple[tuple[str, int], ...]] = {"throughput": (("e2e", -1),), "e2e": (("tpot", 1),)}

#: result columns of `inference.estimate` / `max_throughput` that get bands: column -> (metric, sign)
INFERENCE_COLUMNS: dict[str, tuple[str, int]] = {
    "ttft_ms": ("ttft", 1), "tpot_ms": ("tpot", 1), "e2e_ms": ("e2e", 1), "throughput_tok_s": ("throughput", 1),
    "throughput_tok_s_per_gpu": ("throughput", 1), "usd_per_mtok": ("throughput", -1),
    "joules_per_tok": ("throughput", -1)}
#: result columns of `training.estimate` that get bands (every one a fixed multiple of tokens/s or its inverse)
TRAINING_COLUMNS: dict[str, tuple[str, int]] = {
    "step_time_s": ("throughput", -1), "tokens_per_s": ("throughput", 1), "tokens_per_s_per_gpu": ("throughput", 1),
    "model_tflops_per_gpu": ("throughput", 1), "mfu_pct": ("throughput", 1), "time_to_train_h": ("throughput", -1),
    "usd_per_run": ("throughput", -1), "mwh_per_run": ("throughput", -1)}


def serving_metric(key: str) -> tuple[str, int] | None:
    """(metric, sign) of a `serving.simulate` key that gets a band, None for the others: ttft_ms_*, tpot_ms_*,
    itl_ms_* (tpot), e2e_ms_*, throughput_tok_s, throughput_tok_s_per_gpu, requests_per_s, goodput_req_s
    (throughput), tok_s_per_user (1 / tpot)."""
    for prefix, m in (("ttft_ms_", "ttft"), ("tpot_ms_", "tpot"), ("itl_ms_", "tpot"), ("e2e_ms_", "e2e")):
        if key.startswith(prefix):
            return m, 1
    if key in ("throughput_tok_s", "throughput_tok_s_per_gpu", "requests_per_s", "goodput_req_s"):
        return "throughput", 1
    if key == "tok_s_per_user":
        return "tpot", -1
    return None


def check_level(level: Any, name: str = "interval") -> float:
    """`level` as a float strictly between 0 and 1, else ValueError naming it."""
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(level)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"{name}={level!r}: a band level is a number strictly between 0 and 1 (e.g. 0.8 for an 80 % "
                         f"prediction interval)")
    return float(level)


def level_for_confidence(confidence: Any, name: str = "confidence") -> float:
    """The two-sided band level whose upper (lower) end is the one-sided bound at `confidence`: 2 c - 1.
    ValueError unless 0.5 < confidence < 1 (the engine's check, `dse.objective.band_level`, worded for a keyword
    argument)."""
    try:
        return band_level(confidence)
    except ValueError:
        raise ValueError(f"{name}={confidence!r}: a one-sided confidence is a number strictly between 0.5 and 1 "
                         f"(e.g. 0.9: the SLO holds for 90 % of deployments like this one)") from None


def min_residuals(level: float) -> int:
    """Residuals a group needs for a finite band at `level`: both conformal order statistics exist, and at least
    MIN_GROUP."""
    alpha = 1.0 - level
    return max(MIN_GROUP, int(math.ceil(2.0 / alpha - 1.0 - 1e-9)))


def conformal_quantiles(sorted_r: np.ndarray, level: float) -> tuple[float, float]:
    """(q_lo, q_hi): the split-conformal order statistics of sorted residuals for an equal-tailed band at `level`
    (see the module docstring); (-inf, inf) when there are too few residuals."""
    n = len(sorted_r)
    alpha = 1.0 - level
    k_lo = int(math.floor((n + 1) * alpha / 2.0 + 1e-9))
    k_hi = int(math.ceil((n + 1) * (1.0 - alpha / 2.0) - 1e-9))
    lo = float(sorted_r[k_lo - 1]) if k_lo >= 1 else -math.inf
    hi = float(sorted_r[k_hi - 1]) if k_hi <= n else math.inf
    return lo, hi


def _path(source: str) -> str:
    return "roofline" if source in ("roofline", "analytical") else "profile"


@dataclass(frozen=True, eq=False)
class Bands:
    """Calibration residuals by group, and the band lookup. `rows`: DataFrame with columns kind, source, engine,
    family, metric, unit (the held-out unit a row belongs to: engine version, model or training source) and
    resid (log(measured / predicted)). `meta`: provenance (inputs and their sha256, command, date)."""

    rows: pd.DataFrame
    meta: Mapping[str, Any] = field(default_factory=dict)
    min_units: int = MIN_UNITS
    _pools: dict = field(init=False, repr=False)
    _units: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        need = {"kind", "source", "engine", "family", "metric", "unit", "resid"}
        missing = need - set(self.rows.columns)
        if missing:
            raise ValueError(f"band residuals lack columns {sorted(missing)}")
        r = self.rows
        pools: dict[tuple, list[np.ndarray]] = {}
        units: dict[tuple, set] = {}
        for (k, s, e, f, m), g in r.groupby(["kind", "source", "engine", "family", "metric"], sort=False):
            v = g["resid"].to_numpy(float)
            for key in ((k, s, e, f, m), (k, s, e, "*", m), (k, _path(s), "*", "*", m), (k, "*", "*", "*", m)):
                pools.setdefault(key, []).append(v)
                units.setdefault(key, set()).update(g["unit"].unique())
        object.__setattr__(self, "_pools", {k: np.sort(np.concatenate(v)) for k, v in pools.items()})
        object.__setattr__(self, "_units", {k: len(v) for k, v in units.items()})

    def without(self, units: Iterable[str]) -> Bands:
        """The same bands with the residuals of `units` left out (for held-out checks)."""
        drop = set(units)
        return Bands(self.rows[~self.rows["unit"].isin(drop)].reset_index(drop=True), self.meta, self.min_units)

    def lookup(self, kind: str, source: str, engine: str, family: str, metric: str,
               level: float) -> tuple[float, float, str]:
        """(q_lo, q_hi, group used) of log(measured / predicted) for one prediction; see the module docstring for
        the pooling order. `engine` in any spelling a prediction's ``engine`` column holds: the bands are keyed by
        the engine's name alone (`profiles.engine_key`: 'vllm==0.24.0', 'vllm~=0.13.0' -> 'vllm'), their residuals
        pooling its releases. ValueError when even the pool of every row of the kind is too small for `level`."""
        from objectives.profiles import engine_key
        engine = engine_key(engine)
        need = min_residuals(level)
        if source not in ("roofline", "analytical"):
            keys = ((kind, source, engine, family), (kind, source, engine, "*"), (kind, "profile", "*", "*"),
                    (kind, "*", "*", "*"))
        else:   # the roofline path does not depend on the engine named
            keys = ((kind, source, "roofline" if kind == "inference" else engine, family),
                    (kind, source, "roofline" if kind == "inference" else engine, "*"),
                    (kind, "roofline", "*", "*"), (kind, "*", "*", "*"))
        for key in keys:
            for m, sign in ((metric, 1), *FALLBACK.get(metric, ())):
                r = self._pools.get((*key, m))
                enough_units = key[1] == "*" or self._units.get((*key, m), 0) >= self.min_units
                if r is not None and len(r) >= need and enough_units:
                    lo, hi = conformal_quantiles(r, level)
                    if sign < 0:
                        lo, hi = -hi, -lo
                    return lo, hi, "/".join((*key, m)) + (" (inverse)" if sign < 0 else "")
        names = [metric, *(m for m, _ in FALLBACK.get(metric, ()))]
        n = max((len(v) for k, v in self._pools.items() if k[0] == kind and k[-1] in names), default=0)
        if n < MIN_GROUP:
            raise ValueError(f"no {kind} {metric} band: the calibration residuals hold {n} {'/'.join(names)} rows "
                             f"(fewer than {MIN_GROUP}); rebuild the bands (`{BUILD_COMMAND}`) with data that has them")
        top = 1.0 - 2.0 / (n + 1)
        raise ValueError(f"interval={level!r}: a {level:.0%} band needs {need} calibration residuals per group; the "
                         f"largest {kind} {metric} pool has {n}; use a level of at most {top:.3f}")

    def intervals(self, values: Mapping[str, Any], columns: Mapping[str, tuple[str, int]], level: float, *,
                  kind: str, source: Any, engine: Any, gpu: Any) -> dict[str, np.ndarray]:
        """``{<col>_lo: ..., <col>_hi: ...}`` for every column of `columns` present in `values`, vectorized: the
        band of each distinct (source, engine, GPU family) is looked up once and gathered by index. `source`,
        `engine`, `gpu`: per-row arrays (categoricals are used as they are) or scalars."""
        level = check_level(level)
        n = len(next(iter(values.values()))) if values else 0
        codes, cats = [], []
        for x in (source, engine, gpu):
            c, u = _codes(x, n)
            codes.append(c)
            cats.append(u)
        fam_of_gpu = np.array([gpu_family(g) for g in cats[2]], dtype=object)
        fams, fam_code = np.unique(fam_of_gpu.astype(str), return_inverse=True) if len(fam_of_gpu) \
            else (np.array([], dtype=str), np.zeros(0, dtype=np.int64))
        shape = (len(cats[0]), len(cats[1]), len(fams))
        cell = (codes[0] * shape[1] + codes[1]) * shape[2] + fam_code[codes[2]]
        used = np.unique(cell)
        out: dict[str, np.ndarray] = {}
        tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for col, (metric, sign) in columns.items():
            if col not in values:
                continue
            if metric not in tables:
                lo = np.full(int(np.prod(shape)), np.nan)
                hi = np.full(int(np.prod(shape)), np.nan)
                for c in used:
                    s, rest = divmod(int(c), shape[1] * shape[2])
                    e, f = divmod(rest, shape[2])
                    lo[c], hi[c], _ = self.lookup(kind, str(cats[0][s]), str(cats[1][e]), str(fams[f]), metric,
                                                  level)
                tables[metric] = (np.exp(lo), np.exp(hi))
            flo, fhi = tables[metric]
            v = np.asarray(values[col], dtype=float)
            a, b = (flo[cell], fhi[cell]) if sign > 0 else (1.0 / fhi[cell], 1.0 / flo[cell])
            out[col + "_lo"] = v * a
            out[col + "_hi"] = v * b
        return out


def _codes(x: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(integer codes per row, categories) of a column, scalar or categorical."""
    if isinstance(x, pd.Series):
        x = x.array if isinstance(x.dtype, pd.CategoricalDtype) else x.to_numpy()
    if isinstance(x, pd.Categorical):
        return np.asarray(x.codes, dtype=np.int64), np.asarray(x.categories.astype(str), dtype=object)
    if np.ndim(x) == 0:
        return np.zeros(n, dtype=np.int64), np.array([_name(x)], dtype=object)
    a = np.asarray(x, dtype=object).ravel()
    if len(a) != n:
        a = np.broadcast_to(a, (n,))
    try:
        codes, uniq = pd.factorize(a)       # hashes the values once; names only for the distinct ones
    except TypeError:                       # unhashable records: by name
        codes, uniq = pd.factorize(np.array([_name(v) for v in a], dtype=object))
    return np.asarray(codes, dtype=np.int64), np.array([_name(u) for u in uniq], dtype=object)


def _name(v: Any) -> str:
    return str(getattr(v, "name", v))


@functools.lru_cache(maxsize=512)
def gpu_family(gpu: str) -> str:
    """Catalog family of a GPU name ("hopper", "blackwell", ...)."""
    from objectives import catalog
    return str(catalog.gpu(gpu).family)


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else ""


def model_files() -> dict[str, Path]:
    """The fitted-factor files the residuals depend on: a change to any of them means the bands are stale."""
    from objectives.inference.efficiency import DATA_FILE as EFF
    from objectives.training.factors import FACTORS_FILE
    return {"efficiency.json": EFF, "training/factors.json": FACTORS_FILE}


def from_json(doc: Mapping[str, Any]) -> Bands:
    """Bands from the JSON document `objectives.calibration.bands` writes."""
    units = list(doc["units"])
    parts = []
    for g in doc["groups"]:
        r = np.asarray(g["residuals"], dtype=float)
        parts.append(pd.DataFrame({"kind": g["kind"], "source": g["source"], "engine": g["engine"],
                                   "family": g["family"], "metric": g["metric"],
                                   "unit": [units[i] for i in g["units"]], "resid": r}))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["kind", "source", "engine", "family", "metric", "unit", "resid"])
    return Bands(rows, dict(doc.get("meta", {})))


@functools.lru_cache(maxsize=4)
def load_bands(path: str | None = None) -> Bands:
    """The shipped bands (`DATA_FILE`) or those of `path`; read once per process. Logs a warning when the fitted
    factors changed since the bands were built (rebuild with `BUILD_COMMAND`)."""
    p = Path(path) if path is not None else DATA_FILE
    if not p.exists():
        raise FileNotFoundError(f"uncertainty bands not found at {p}; build them with `{BUILD_COMMAND}`")
    doc = json.loads(p.read_text())
    b = from_json(doc)
    built = dict(doc.get("meta", {}).get("inputs", {}))
    if path is None:
        for name, f in model_files().items():
            if name in built and built[name] != _sha256(f):
                log.warning("%s was built on a different %s (sha256 %s..., now %s...): the bands describe the "
                            "previous fit; rebuild them with `%s`", p.name, name, str(built[name])[:12],
                            _sha256(f)[:12], BUILD_COMMAND)
    return b


def inference_intervals(df: pd.DataFrame, level: Any, bands: Bands | None = None) -> pd.DataFrame:
    """`df` (a result of `inference.estimate` / `max_throughput`) with `<col>_lo` / `<col>_hi` columns added for
    `INFERENCE_COLUMNS` at band `level`, keyed by each row's source, engine and GPU family."""
    level = check_level(level)
    if len(df) == 0:
        for col in INFERENCE_COLUMNS:
            if col in df.columns:
                df[col + "_lo"] = np.empty(0)
                df[col + "_hi"] = np.empty(0)
        return df
    b = bands or load_bands()
    cols = {c: df[c].to_numpy(float) for c in INFERENCE_COLUMNS if c in df.columns}
    res = b.intervals(cols, INFERENCE_COLUMNS, level, kind="inference", source=df["source"], engine=df["engine"],
                      gpu=df["gpu"])
    return _insert(df, res)


def _insert(df: pd.DataFrame, res: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Add the band columns right after their point columns (one concat, no per-column inserts)."""
    order: list[str] = []
    for c in df.columns:
        order.append(c)
        for s in ("_lo", "_hi"):
            if c + s in res:
                order.append(c + s)
    new = pd.DataFrame(dict(res), index=df.index)
    return pd.concat([df, new], axis=1)[order]


def training_intervals(df: pd.DataFrame, level: Any, gpu: Any, bands: Bands | None = None) -> pd.DataFrame:
    """`df` (a result of `training.estimate`) with `<col>_lo` / `<col>_hi` for `TRAINING_COLUMNS` at band `level`,
    keyed by the GPU family of `gpu` (one name / `GPU` per row, or one for all rows)."""
    level = check_level(level)
    cols = {c: df[c].to_numpy(float) for c in TRAINING_COLUMNS if c in df.columns}
    if len(df) == 0:
        return _insert(df, {c + s: np.empty(0) for c in cols for s in ("_lo", "_hi")})
    b = bands or load_bands()
    res = b.intervals(cols, TRAINING_COLUMNS, level, kind="training", source="analytical", engine="-", gpu=gpu)
    return _insert(df, res)


def serving_intervals(metrics: Mapping[str, Any], level: Any, *, source: str, engine: str, gpu: str,
                      prefill: tuple[str, str, str] | None = None, bands: Bands | None = None) -> dict[str, float]:
    """`<key>_lo` / `<key>_hi` for the keys of a `serving.simulate` result that `serving_metric` bands, keyed by the
    (source, engine, GPU) of the replicas' step model; `prefill`: the prefill pool's (source, engine, GPU) in a
    disaggregated deployment, whose band the ttft keys take. Returns only the new keys."""
    level = check_level(level)
    b = bands or load_bands()
    out: dict[str, float] = {}
    for k, v in metrics.items():
        ms = serving_metric(k)
        if ms is None:
            continue
        metric, sign = ms
        s, e, g = prefill if (prefill is not None and metric == "ttft") else (source, engine, gpu)
        lo, hi, _ = b.lookup("inference", s, e, gpu_family(g), metric, level)
        a, z = (math.exp(lo), math.exp(hi)) if sign > 0 else (math.exp(-hi), math.exp(-lo))
        out[k + "_lo"] = float(v) * a
        out[k + "_hi"] = float(v) * z
    return out


__all__ = ["Bands", "load_bands", "from_json", "check_level", "level_for_confidence", "conformal_quantiles",
           "inference_intervals", "training_intervals", "serving_intervals", "serving_metric", "INFERENCE_COLUMNS",
           "TRAINING_COLUMNS", "DATA_FILE", "BUILD_COMMAND", "MIN_GROUP"]
