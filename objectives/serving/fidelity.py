"""Predictions of the serving simulator for the calibration rows that describe a loaded server: a client
concurrency (NVIDIA NIM rows, closed loop) or an offered request rate in `source_note` (TensorRT-LLM + Triton
online-serving table, "QPS=8", "QPS=INF"). Every prediction comes from `simulate` with the matching workload;
measured values are never read.

    from objectives.serving import fidelity
    pred = fidelity.predict(rows)     # rows: calibration DataFrame rows; one prediction row per input row

Settings the sources do not give, and what is used instead (documented, not fitted):
- number of requests: the note's "N requests" when present, else 10 x concurrency (at least 100);
- lengths: the rows' input_len / output_len, fixed (the sources give no distributions);
- scheduler: `Scheduler()` defaults (on the closed form max_batch_size 256, max_num_tokens 8192; an engine's own
  budgets on its profile, `Scheduler.resolved`; chunked prefill, decode priority, recompute preemption): in-flight batching as TensorRT-LLM (NIM's LLM backend) runs it;
- KV dtype: the row's kv_dtype, else the analytical model's default for the weight/activation dtypes.
Rows without input or output length (variable-length datasets) get NaN predictions.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from objectives.inference.efficiency import Efficiency

from .scheduler import Scheduler
from .simulator import simulate
from .workload import Workload

_QPS = re.compile(r"QPS\s*=\s*(INF|inf|[0-9]*\.?[0-9]+)")
_NREQ = re.compile(r"(\d+)\s+requests")
OUT_COLUMNS = ("ttft_ms", "itl_ms", "tpot_ms", "throughput_out_tok_s", "requests_per_s")


def _str(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else str(v)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def workload_for(row: pd.Series | dict, seed: int = 0) -> Workload | None:
    """The workload a calibration row describes, or None when the row lacks a load or fixed lengths."""
    note = _str(row.get("source_note")) or ""
    inp, out = _num(row.get("input_len")), _num(row.get("output_len"))
    if inp is None or out is None or inp < 1 or out < 1:
        return None
    conc = _num(row.get("concurrency"))
    m = _NREQ.search(note)
    if conc is not None and conc >= 1:
        n = int(m.group(1)) if m else max(10 * int(conc), 100)
        return Workload(concurrency=int(conc), input_len=int(inp), output_len=int(out), n_requests=n, seed=seed)
    q = _QPS.search(note)
    if q is None:
        return None
    rate = math.inf if q.group(1).lower() == "inf" else float(q.group(1))
    n = int(m.group(1)) if m else 500
    return Workload(rate=rate, input_len=int(inp), output_len=int(out), n_requests=n, seed=seed)


def predict(rows: pd.DataFrame, scheduler: Scheduler | None = None, seed: int = 0,
            engine: Any = "roofline", efficiency: Efficiency | None = None) -> pd.DataFrame:
    """Predicted ttft_ms (mean), itl_ms (mean, token-weighted), tpot_ms (mean), throughput_out_tok_s (whole
    deployment) and requests_per_s for each row (same index as `rows`). One simulation per distinct
    configuration; deterministic for a given seed. `engine` as in `serving.simulate` (default: the closed form,
    whose factors the published tables fit); `efficiency`: factors in place of the shipped fit (a calibration's
    candidate, `calibration.report.serving_rows`)."""
    if not isinstance(rows, pd.DataFrame):
        raise ValueError(f"predict needs a pandas DataFrame of calibration rows, got {type(rows).__name__}")
    need = ["model", "gpu", "tp", "weight_dtype", "input_len", "output_len", "source_note"]
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise ValueError(f"calibration rows lack column(s) {missing}; needed: {need} (+ concurrency, pp, "
                         f"act_dtype, kv_dtype when known)")
    out = pd.DataFrame(np.nan, index=rows.index, columns=list(OUT_COLUMNS))
    cache: dict[tuple, dict[str, float]] = {}
    for idx, row in rows.iterrows():
        w = workload_for(row, seed)
        if w is None:
            continue
        tp = int(_num(row.get("tp")) or 1)
        pp = int(_num(row.get("pp")) or 1)
        key = (row["model"], row["gpu"], tp, pp, _str(row.get("weight_dtype")) or "bf16",
               _str(row.get("act_dtype")), _str(row.get("kv_dtype")), w)
        if key not in cache:
            m = simulate(key[0], key[1], tp=tp, pp=pp, weight_dtype=key[4], act_dtype=key[5], kv_dtype=key[6],
                         workload=w, scheduler=scheduler, engine=engine, profile=efficiency)
            cache[key] = m
        m = cache[key]
        out.loc[idx] = [m["ttft_ms_mean"], m["itl_ms_mean"], m["tpot_ms_mean"], m["throughput_tok_s"],
                        m["requests_per_s"]]
    return out


def predict_analytical(rows: pd.DataFrame, efficiency: Efficiency | None = None,
                       scheduler: Scheduler | None = None, engine: Any = "roofline") -> pd.DataFrame:
    """`predict`'s columns from the analytical serving model (`serving.ServingModel` on the closed form, the model
    `simulate` checks) instead of the simulator: about a hundredth of its cost, cheap enough for a calibration
    objective. ttft_ms and tpot_ms are the model's means; itl_ms is its mean tpot (with fixed lengths a request's
    tokens are evenly spread, so the token-weighted inter-token latency and the mean TPOT agree); scheduler
    budgets as `predict`'s (`Scheduler()` defaults). `engine`: the cost model's engine for every row (default the
    closed form, whose factors the published tables fit; "vllm", "sglang", "trtllm": that engine's measured kernel
    profile with the silicon fit's engine factors, front end included, as `serving.analytical.Deployments`
    takes it). One evaluation per (model, workload), every deployment of it at once; rows without a load or fixed
    lengths get NaN."""
    from .analytical import Deployments, ServingModel

    sched = scheduler if scheduler is not None else Scheduler()
    out = pd.DataFrame(np.nan, index=rows.index, columns=list(OUT_COLUMNS))
    groups: dict[tuple, list[tuple[Any, tuple]]] = {}
    for idx, row in rows.iterrows():
        w = workload_for(row)
        if w is None:
            continue
        dep = (row["gpu"], int(_num(row.get("tp")) or 1), int(_num(row.get("pp")) or 1),
               _str(row.get("weight_dtype")) or "bf16", _str(row.get("act_dtype")), _str(row.get("kv_dtype")))
        groups.setdefault((row["model"], w), []).append((idx, dep))
    for (model, w), members in groups.items():
        deps = list(dict.fromkeys(dep for _, dep in members))
        cols = list(zip(*deps))
        at_gpu = [sched.resolved(engine, g) for g in cols[0]]    # budgets left to the engine: its own on each GPU
        d = Deployments.of(gpu=list(cols[0]), tp=list(cols[1]), pp=list(cols[2]), weight_dtype=list(cols[3]),
                           act_dtype=list(cols[4]), kv_dtype=list(cols[5]), max_batch_size=[s.max_batch_size for s in at_gpu],
                           max_num_tokens=[s.max_num_tokens for s in at_gpu], engine=engine)
        m = ServingModel(model, w, efficiency=efficiency).evaluate(d)
        at = {dep: i for i, dep in enumerate(deps)}
        for idx, dep in members:
            r = m.iloc[at[dep]]
            out.loc[idx] = [r["ttft_ms"], r["tpot_ms"], r["tpot_ms"], r["throughput_tok_s"], r["requests_per_s"]]
    return out


def metric_values(rows: pd.DataFrame, pred: pd.DataFrame) -> np.ndarray:
    """Each row's own metric (`rows`' ``metric`` column) picked from `predict`'s or `predict_analytical`'s columns
    (`pred`, same index); NaN for a metric neither gives."""
    metric = rows["metric"].astype(str).to_numpy()
    out = np.full(len(rows), np.nan)
    for c in OUT_COLUMNS:
        sel = metric == c
        out[sel] = pred[c].to_numpy(float)[sel]
    return out


def mdape(rows: pd.DataFrame, pred: pd.DataFrame) -> dict[str, float]:
    """Median absolute percentage error (%) per metric of `rows` (metric/value columns) against `pred`."""
    res: dict[str, float] = {}
    for metric, col in (("ttft_ms", "ttft_ms"), ("itl_ms", "itl_ms"), ("throughput_out_tok_s",
                                                                        "throughput_out_tok_s"),
                        ("requests_per_s", "requests_per_s")):
        sel = (rows["metric"] == metric).to_numpy() & np.isfinite(pred[col].to_numpy(float))
        if sel.any():
            meas = rows["value"].to_numpy(float)[sel]
            res[metric] = float(np.median(np.abs(pred[col].to_numpy(float)[sel] / meas - 1.0)) * 100.0)
    return res


__all__ = ["predict", "predict_analytical", "metric_values", "workload_for", "mdape", "OUT_COLUMNS"]
