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


def itl_quantiles(iters: list[tuple[float, int]], segs: list[tuple[int, int, float, float]], gaps: list[float],
                  qs: list[float]) -> np.ndarray:
    """Quantiles `qs` (inverted CDF, as `weighted_quantiles`) of the inter-token gaps (ms) weighted by the tokens
    they emit: single iterations ``(ms, tokens)``, decode segments ``(tokens, K, first ms, last ms)`` of K
    iterations whose times step linearly from the first to the last (iteration k: first + (last - first) x
    k / (K - 1)), and the long gaps of preempted requests (one token each). Each quantile is the smallest gap whose
    cumulative weight reaches q of the total, found by bisection on the gap's value with every segment's K gaps
    counted in closed form, so a long run's millions of iterations are never listed one by one. NaN for every q
    where there is no gap."""
    it = np.asarray(iters, dtype=np.float64).reshape(-1, 2)
    pv, pw = ([it[:, 0]], [it[:, 1]]) if len(it) else ([], [])
    if gaps:
        pv.append(np.asarray(gaps, dtype=np.float64))
        pw.append(np.ones(len(gaps)))
    v = np.concatenate(pv) if pv else np.empty(0)
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(np.concatenate(pw)[order]) if pv else np.empty(0)
    sg = np.asarray(segs, dtype=np.float64).reshape(-1, 4)
    n, K, a, b = sg[:, 0], sg[:, 1], sg[:, 2], sg[:, 3]
    step = (b - a) / np.maximum(K - 1.0, 1.0)        # ms from one iteration of a segment to the next
    up, down = step > 0, step < 0
    total = (cw[-1] if len(cw) else 0.0) + float((n * K).sum())
    if not total > 0:
        return np.full(len(qs), np.nan)

    def below(x: float) -> tuple[float, float]:
        """(weight of the gaps <= x, the largest gap <= x; -inf where none)."""
        i = int(np.searchsorted(v, x, side="right"))
        w = cw[i - 1] if i else 0.0
        top = v[i - 1] if i else -np.inf
        if len(sg):
            with np.errstate(divide="ignore", invalid="ignore"):
                r = (x - a) / step
                cnt = np.where(up, np.floor(r) + 1.0, np.where(down, K - np.ceil(r), np.where(a <= x, K, 0.0)))
            cnt = np.clip(cnt, 0.0, K)
            w += float((n * cnt).sum())
            # the largest of each segment's gaps <= x: iteration cnt - 1 (rising) or K - cnt (falling)
            k = np.where(down, K - cnt, cnt - 1.0)
            val = a + (b - a) * (k / np.maximum(K - 1.0, 1.0))
            if (cnt > 0).any():
                top = max(top, float(val[cnt > 0].max()))
        return w, top

    def weights(x: np.ndarray) -> np.ndarray:
        """`below`'s weight at each of the points `x`, the same sums in the same order, all in one pass."""
        w = np.zeros(len(x))
        if len(v):
            i = np.searchsorted(v, x, side="right")
            w = np.where(i > 0, cw[i - 1], 0.0)
        if len(sg):
            xc = x[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                r = (xc - a) / step
                cnt = np.where(up, np.floor(r) + 1.0, np.where(down, K - np.ceil(r), np.where(a <= xc, K, 0.0)))
            w = w + (n * np.clip(cnt, 0.0, K)).sum(axis=1)
        return w

    lo0 = min(v[0] if len(v) else np.inf, float(np.minimum(a, b).min()) if len(sg) else np.inf)
    hi0 = max(v[-1] if len(v) else -np.inf, float(np.maximum(a, b).max()) if len(sg) else -np.inf)
    # every quantile's bisection at once (each stops where its own would)
    target = np.asarray(qs, dtype=np.float64) * total
    lo = np.full(len(qs), lo0 - 1.0)         # weight below lo: none < target; below hi: all >= target
    hi = np.full(len(qs), hi0, dtype=np.float64)
    on = np.ones(len(qs), dtype=bool)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        on &= (lo < mid) & (mid < hi)
        at = np.flatnonzero(on)
        if not len(at):
            break
        ok = weights(mid[at]) >= target[at]
        hi[at[ok]] = mid[at[ok]]
        lo[at[~ok]] = mid[at[~ok]]
    out = np.empty(len(qs))
    for j in range(len(qs)):
        out[j] = below(float(hi[j]))[1]      # the gap the bisection closed on
    return out


def summarize(df: pd.DataFrame, *, itl_q: np.ndarray, busy_gpu_ms: float,
              n_gpus: int, kv_area: float, n_replicas: int, kv_max: float, slo: SLO | None,
              prefix_cache_hit_rate: float = math.nan, steady: np.ndarray | None = None) -> dict[str, float]:
    """The metric dict of `simulate` (times in ms, rates per second, fractions in [0, 1]).

    ``steady``: a mask of the requests (rows of ``df``) the per-request latencies (TTFT, TPOT, E2E: mean and
    percentiles, the ITL mean) and the SLO attainment are measured on (None: all); throughput, duration, the ITL
    percentiles (iteration durations) and the counts stay the whole run's, goodput is attainment x requests/s.
    ``itl_q``: the ITL percentiles of `QUANTILES` (`itl_quantiles`, ms)."""
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
    if n_gaps:
        m.update({f"itl_ms_{k}": float(v) for (k, _), v in zip(QUANTILES, itl_q)})
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
