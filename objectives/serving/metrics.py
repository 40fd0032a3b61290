"""Serving metrics from per-request records: latency percentiles, throughput, SLO attainment, goodput."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .scheduler import SLO

QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
METRIC_KEYS = tuple(
    [f"{m}_ms_{s}" for m in ("ttft", "tpot", "itl", "e2e") for s in ("mean", "p50", "p90", "p99")]
    + ["throughput_tok_s", "throughput_tok_s_per_gpu", "tok_s_per_user", "requests_per_s", "slo_attainment",
       "goodput_req_s", "gpu_busy_frac", "kv_usage_mean", "kv_usage_max", "preemptions", "n_requests", "n_gpus",
       "duration_s", "prefix_cache_hit_rate"])
#: text keys `serving.simulate` adds to the metrics: where its numbers come from, as `inference.estimate`'s rows say
#: it (``source``: the least certain of its pools' step models, `inference.measured.BY_CERTAINTY`; ``engine``: whose
#: kernel tables cost the iterations, "roofline" for the closed form)
LABEL_KEYS = ("source", "engine")


def _stats(name: str, x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {f"{name}_mean": math.nan, **{f"{name}_{k}": math.nan for k, _ in QUANTILES}}
    qs = np.quantile(x, [q for _, q in QUANTILES])
    return {f"{name}_mean": float(x.mean()), **{f"{name}_{k}": float(v) for (k, _), v in zip(QUANTILES, qs)}}


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> np.ndarray:
    """Quantiles of a distribution given as values with (non-negative) weights (inverted CDF)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order].astype(np.float64)
    cw = np.cumsum(w)
    idx = np.searchsorted(cw, np.asarray(qs) * cw[-1], side="left")
    return v[np.minimum(idx, len(v) - 1)]


def itl_distribution(iters: list[tuple[float, int]], segs: list[tuple[int, int, float, float]],
                     gaps: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Inter-token gaps (ms) and their weights (tokens): single iterations, expanded decode segments (linear
    iteration times inside a piece), and the long gaps of preempted requests."""
    parts_v, parts_w = [], []
    if iters:
        a = np.asarray(iters, dtype=np.float64)
        parts_v.append(a[:, 0])
        parts_w.append(a[:, 1])
    if segs:
        s = np.asarray(segs, dtype=np.float64)
        n, K, a0, b0 = s[:, 0], s[:, 1].astype(np.int64), s[:, 2], s[:, 3]
        total = int(K.sum())
        starts = np.cumsum(K) - K
        k = np.arange(total) - np.repeat(starts, K)
        frac = k / np.repeat(np.maximum(K - 1, 1), K)
        parts_v.append(np.repeat(a0, K) + np.repeat(b0 - a0, K) * frac)
        parts_w.append(np.repeat(n, K))
    if gaps:
        parts_v.append(np.asarray(gaps, dtype=np.float64))
        parts_w.append(np.ones(len(gaps)))
    if not parts_v:
        return np.empty(0), np.empty(0)
    return np.concatenate(parts_v), np.concatenate(parts_w)


def summarize(df: pd.DataFrame, *, itl_values: np.ndarray, itl_weights: np.ndarray, busy_gpu_ms: float,
              n_gpus: int, kv_area: float, n_replicas: int, kv_max: float, slo: SLO | None,
              prefix_cache_hit_rate: float = math.nan, steady: np.ndarray | None = None) -> dict[str, float]:
    """The metric dict of `simulate` (times in ms, rates per second, fractions in [0, 1]).

    ``steady``: a mask of the requests (rows of ``df``) the per-request latencies (TTFT, TPOT, E2E: mean and
    percentiles, the ITL mean) and the SLO attainment are measured on (None: all); throughput, duration, the ITL
    percentiles (iteration durations) and the counts stay the whole run's, goodput is attainment x requests/s."""
    keep = slice(None) if steady is None else np.asarray(steady, dtype=bool)
    ttft = df["ttft_ms"].to_numpy()[keep]
    tpot = df["tpot_ms"].to_numpy()[keep]
    e2e = df["e2e_ms"].to_numpy()[keep]
    out = df["output_tokens"].to_numpy()[keep]
    duration_ms = float(df["finish_s"].max() * 1e3) if len(df) else 0.0
    dur_s = duration_ms / 1e3
    m: dict[str, float] = {}
    m.update(_stats("ttft_ms", ttft))
    m.update(_stats("tpot_ms", tpot))
    multi = out > 1
    n_gaps = float((out[multi] - 1).sum())
    m["itl_ms_mean"] = float((e2e[multi] - ttft[multi]).sum() / n_gaps) if n_gaps else math.nan
    if len(itl_values) and n_gaps:
        qv = weighted_quantiles(itl_values, itl_weights, [q for _, q in QUANTILES])
        m.update({f"itl_ms_{k}": float(v) for (k, _), v in zip(QUANTILES, qv)})
    else:
        m.update({f"itl_ms_{k}": math.nan for k, _ in QUANTILES})
    m.update(_stats("e2e_ms", e2e))
    m["throughput_tok_s"] = float(df["output_tokens"].to_numpy().sum() / dur_s) if dur_s > 0 else math.nan
    m["throughput_tok_s_per_gpu"] = m["throughput_tok_s"] / n_gpus
    m["tok_s_per_user"] = 1e3 / m["tpot_ms_mean"] if m["tpot_ms_mean"] > 0 else math.nan
    m["requests_per_s"] = len(df) / dur_s if dur_s > 0 else math.nan
    if slo is None:
        m["slo_attainment"] = math.nan
        m["goodput_req_s"] = math.nan
    else:
        good = np.ones(len(ttft), dtype=bool)
        if slo.ttft_ms is not None:
            good &= ttft <= slo.ttft_ms
        if slo.tpot_ms is not None:
            good &= ~(tpot > slo.tpot_ms)          # NaN TPOT (1 output token) does not violate
        if slo.e2e_ms is not None:
            good &= e2e <= slo.e2e_ms
        m["slo_attainment"] = float(good.mean()) if len(good) else math.nan
        # requests/s meeting the SLO: the steady requests' share of the whole run's rate
        m["goodput_req_s"] = (float(good.sum() / dur_s) if steady is None else m["slo_attainment"]
                              * m["requests_per_s"]) if dur_s > 0 else math.nan
    m["gpu_busy_frac"] = busy_gpu_ms / (duration_ms * n_gpus) if duration_ms > 0 else math.nan
    m["kv_usage_mean"] = kv_area / (duration_ms * n_replicas) if duration_ms > 0 else math.nan
    m["kv_usage_max"] = float(kv_max)
    m["preemptions"] = int(df["preemptions"].sum())
    m["n_requests"] = int(len(df))
    m["n_gpus"] = int(n_gpus)
    m["duration_s"] = dur_s
    m["prefix_cache_hit_rate"] = float(prefix_cache_hit_rate)
    return {k: m[k] for k in METRIC_KEYS}
