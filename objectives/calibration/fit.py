"""Fitting the named efficiency factors with scipy.optimize.least_squares on log errors.

Residual per row: w_metric x log(predicted / measured), with a soft-L1 loss (robust: the targets are medians)
and light regularization pulling every factor towards its hand-set default (log ratio x sqrt(reg)). Factors are
bounded to physically sensible ranges. Only factors that the data can identify are fitted: per-family factors
for the GPU families present, gemm_eff for the (family, compute precision) pairs present, link factors for the
links used with tp > 1; everything else keeps its default (or its family fallback, see efficiency.py).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from objectives.inference.efficiency import Efficiency, default_efficiency, from_params, with_family_fallbacks
from objectives.inference.resolve import _PREC_OF

from .data import release_index
from .predict import STATIC_KINDS, TREND_FIRST_RELEASE, predict

PRECS = ("bf16", "fp8", "fp4", "int8", "tf32")

#: cap of the per-row weight of a metric class with few rows (ITL: 6 static rows, all one configuration): enough
#: for the class to count, not so much that a handful of rows of one configuration steers shared factors
MAX_CLASS_WEIGHT = 20.0

#: bounds per factor name (lower, upper)
BOUNDS = {
    "gemm_eff": (0.15, 0.98), "gemm_m_half": (1.0, 1024.0), "mem_eff": (0.4, 0.98), "kv_read_eff": (0.2, 0.98),
    "attn_eff": (0.1, 0.9), "dec_attn_eff": (0.005, 0.9), "act_mem_scale": (0.1, 3.0), "ar_latency_us": (1.0, 30.0), "ar_hop_us": (0.0, 5.0), "tp_eff_loss": (0.0, 0.5), "ar_bw_eff": (0.1, 1.0),
    "overhead_step_ms": (0.0, 5.0), "overhead_layer_us": (0.0, 60.0), "overhead_seq_us": (0.0, 30.0),
    "moe_gemm_eff": (0.2, 1.0), "elementwise_passes": (2.0, 40.0), "kv_mem_fraction": (0.5, 0.97),
    "kv_reserve_output_frac": (0.3, 1.0), "runtime_reserve_gib": (0.5, 12.0), "device_mem_usable": (0.8, 1.0), "int4_dequant_eff": (0.3, 1.0),
    "baseline_build_mem_eff": (0.2, 1.0), "release_speed_step": (0.95, 1.05),
}


@dataclass
class Spec:
    paths: list[tuple[str, ...]]

    def x0(self, eff: Efficiency) -> np.ndarray:
        return np.array([_get(eff.params, p) for p in self.paths], dtype=float)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([BOUNDS[p[0]][0] for p in self.paths])
        hi = np.array([BOUNDS[p[0]][1] for p in self.paths])
        return lo, hi

    def to_eff(self, x: np.ndarray, base: Efficiency, meta: dict | None = None) -> Efficiency:
        params = copy.deepcopy(dict(base.params))
        for p, v in zip(self.paths, x):
            _set(params, p, float(v))
        return from_params(params, meta)

    def names(self) -> list[str]:
        return [".".join(p) for p in self.paths]


def _get(d: Any, path: tuple[str, ...]) -> float:
    for k in path:
        d = d[k]
    return float(d)


def _set(d: dict, path: tuple[str, ...], v: float) -> None:
    for k in path[:-1]:
        d[k] = dict(d[k])
        d = d[k]
    d[path[-1]] = v


def build_spec(df: pd.DataFrame) -> Spec:
    """Factors identifiable from the fit rows of `df` (catalog lookups give families, links, precisions). Rows of
    tuned builds identify none of their own (`tuned_build_fixed_eff` is not fitted): they are predicted on
    TensorRT-LLM's measured profile (`predict.row_engines`)."""
    from objectives import catalog

    fit = df[df["kind"].isin(STATIC_KINDS)]
    fams, pairs, links = set(), set(), set()
    for (g, w, a, tp), _ in fit.groupby(["gpu", "weight_dtype", fit["act_dtype"].fillna(""), fit["tp"].fillna(1)]):
        rec = catalog.gpu(g)
        fams.add(rec.family)
        act = a or (w if rec.supports(w) and w != "int4" else "bf16")
        prec = PRECS[max(_PREC_OF.get(act, 0), 0)]
        pairs.add((rec.family, prec))
        if tp > 1:
            links.add(rec.link_type)
    paths: list[tuple[str, ...]] = []
    for f, p in sorted(pairs):
        paths.append(("gemm_eff", f, p))
    for f in sorted(fams):
        for name in ("gemm_m_half", "mem_eff", "kv_read_eff", "attn_eff", "dec_attn_eff"):
            paths.append((name, f))
    for link in sorted(links):
        for name in ("ar_latency_us", "ar_hop_us", "ar_bw_eff"):
            paths.append((name, link))
    paths += [("tp_eff_loss",), ("overhead_step_ms",), ("overhead_layer_us",), ("overhead_seq_us",), ("elementwise_passes",),
              ("kv_mem_fraction",), ("kv_reserve_output_frac",), ("runtime_reserve_gib",), ("device_mem_usable",),
              ("act_mem_scale",)]
    if fit["model"].str.contains("Mixtral|MoE|A3B|A22B|gpt-oss|DeepSeek", case=False).any():
        paths.append(("moe_gemm_eff",))
    rel = fit["engine"].astype(str).map(release_index)
    if rel[rel >= TREND_FIRST_RELEASE].nunique() > 1:   # tables of several releases on the trend
        paths.append(("release_speed_step",))
    if "engine_profile" in fit.columns and (fit["engine_profile"] == "baseline").any():
        paths.append(("baseline_build_mem_eff",))
    return Spec(paths)


def only_spec(df: pd.DataFrame, names: list[str]) -> Spec:
    """The factors of `build_spec(df)` whose top-level name is in `names` (a partial refit: the rest held).
    Raises ValueError naming a name that is not a factor these rows identify, and listing those that are."""
    spec = build_spec(df)
    fittable = list(dict.fromkeys(p[0] for p in spec.paths))
    bad = [n for n in names if n not in fittable]
    if bad or not names:
        raise ValueError(f"cannot refit {', '.join(map(repr, bad)) or 'no factor'}: the factors these rows identify "
                         f"are {', '.join(fittable)}")
    return Spec([p for p in spec.paths if p[0] in names])


#: metric classes of the loaded-server rows (kind "serving") that `fit(loaded=True)` brings into its objective: those
#: on which the analytical serving model (`serving.fidelity.predict_analytical`, the stand-in for the simulator that
#: `report.serving_rows` scores them with) tracks the simulator. Their TTFT is left out: at saturation it is the
#: queue's, which the two models count differently (rows of 500 requests issued at once)
LOADED_CLASSES = ("itl", "throughput")


def loaded_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The loaded-server rows of `df` (kind "serving") in `LOADED_CLASSES` that describe a load with fixed lengths
    (`serving.fidelity.workload_for`)."""
    from objectives.serving.fidelity import workload_for

    rows = df[df["kind"] == "serving"]
    rows = rows[np.isin(metric_class(rows["metric"]), LOADED_CLASSES)]
    has = np.array([workload_for(r) is not None for _, r in rows.iterrows()], dtype=bool)
    return rows[has]


def predict_loaded(rows: pd.DataFrame, eff: Efficiency) -> np.ndarray:
    """The analytical serving model's value of each loaded-server row's metric with the factors `eff`."""
    from objectives.serving import fidelity

    return fidelity.metric_values(rows, fidelity.predict_analytical(rows, eff))


def class_weights(cls: np.ndarray) -> np.ndarray:
    """Per-row weight of each metric class: like at least a quarter of the rows (TTFT and ITL are few but have
    targets), at most `MAX_CLASS_WEIGHT`."""
    n = len(cls)
    w = np.ones(n)
    for c in np.unique(cls):
        k = (cls == c).sum()
        w[cls == c] = min(MAX_CLASS_WEIGHT, max(1.0, 0.25 * n / k))
    return w


def held_spec(df: pd.DataFrame, names: list[str]) -> Spec:
    """The factors of `build_spec(df)` except those whose top-level name is in `names` (held at the starting
    factors' values: in a fit from the defaults, the hand-set defaults of `efficiency.py`). Raises ValueError naming
    a name that is not a factor these rows identify, and listing those that are."""
    spec = build_spec(df)
    fittable = list(dict.fromkeys(p[0] for p in spec.paths))
    bad = [n for n in names if n not in fittable]
    if bad:
        raise ValueError(f"cannot hold {', '.join(map(repr, bad))}: the factors these rows identify are "
                         f"{', '.join(fittable)}")
    return Spec([p for p in spec.paths if p[0] not in names])


def metric_class(metric: pd.Series) -> np.ndarray:
    m = metric.astype(str).to_numpy()
    return np.where(np.char.startswith(m.astype(str), "throughput") | (m == "requests_per_s"), "throughput",
                    np.where(m == "ttft_ms", "ttft", np.where(m == "itl_ms", "itl", "e2e")))


def fit(df: pd.DataFrame, base: Efficiency | None = None, reg: float = 0.02, max_nfev: int = 400,
        spec: Spec | None = None, verbose: int = 0, loaded: bool = False) -> tuple[Efficiency, dict]:
    """Fit on the rows of `df` with kind in STATIC_KINDS. Returns (fitted Efficiency, info).

    `loaded`: the loaded-server rows of `df` (`loaded_rows`) join the objective, predicted by the analytical serving
    model (`predict_loaded`) as classes of their own ("loaded itl", "loaded throughput"), weighted like the others
    (`class_weights`). Their finite differences are taken only for the factors those rows identify
    (`build_spec` of them), the others leaving them unchanged by construction."""
    base = base or default_efficiency()
    rows = df[df["kind"].isin(STATIC_KINDS)].reset_index(drop=True)
    spec = spec or build_spec(rows)
    meas = rows["value"].to_numpy(float)
    cls = metric_class(rows["metric"])
    n = len(rows)
    x0 = spec.x0(base)
    lo, hi = spec.bounds()
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    prior = x0.copy()
    lrows = loaded_rows(df).reset_index(drop=True) if loaded else df.iloc[:0]
    if len(lrows):
        lrows = lrows[np.isfinite(predict_loaded(lrows, spec.to_eff(x0, base)))].reset_index(drop=True)
    lmeas = lrows["value"].to_numpy(float)
    w = class_weights(np.concatenate([cls, np.char.add("loaded ", metric_class(lrows["metric"]).astype(str))]))
    wl = w[n:]
    w = w[:n]

    def parts(x: np.ndarray, with_loaded: bool = True) -> tuple[np.ndarray, np.ndarray]:
        eff = spec.to_eff(x, base)
        r = w * np.log(np.maximum(predict(rows, eff), 1e-9) / meas)
        rl = wl * np.log(np.maximum(predict_loaded(lrows, eff), 1e-9) / lmeas) if with_loaded and len(lrows) \
            else np.zeros(len(lrows))
        return np.where(np.isfinite(r), r, 5.0), np.where(np.isfinite(rl), rl, 5.0)

    def resid(x: np.ndarray) -> np.ndarray:
        r, rl = parts(x)
        return np.concatenate([r, rl, np.sqrt(reg) * np.log(np.maximum(x, 1e-9) / np.maximum(prior, 1e-9))])

    kw: dict[str, Any] = {"diff_step": 1e-3}
    if len(lrows):
        sees = set(build_spec(lrows.assign(kind="static")).paths)
        touches = np.array([p in sees for p in spec.paths])

        def jac(x: np.ndarray) -> np.ndarray:
            """Forward differences (steps as least_squares' 2-point scheme with diff_step 1e-3, turned back at a
            bound); the loaded rows' part only for the factors they identify."""
            r0, rl0 = parts(x)
            J = np.zeros((n + len(lrows) + len(x), len(x)))
            for j in range(len(x)):
                h = 1e-3 * max(1.0, abs(x[j]))
                h = -h if x[j] + h > hi[j] else h
                xj = x.copy()
                xj[j] += h
                r, rl = parts(xj, bool(touches[j]))
                J[:n, j] = (r - r0) / h
                if touches[j]:
                    J[n:n + len(lrows), j] = (rl - rl0) / h
                J[n + len(lrows) + j, j] = np.sqrt(reg) / x[j]   # d log(x / prior) / dx
            return J
        kw = {"jac": jac}
    res = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.05, x_scale="jac",
                        max_nfev=max_nfev, verbose=verbose, **kw)
    eff = with_family_fallbacks(spec.to_eff(res.x, base))
    info = {"nfev": int(res.nfev), "cost": float(res.cost), "status": int(res.status), "names": spec.names(),
            "x": res.x.tolist(), "n_rows": n, "n_loaded_rows": int(len(lrows))}
    return eff, info
