"""Heterogeneous GPU mixes: the cheapest set of replicas of several GPU types that serves a workload under a
TTFT / TPOT SLO, with requests routed by size (Melange's formulation, Griggs et al. 2024), checked by simulating
the mixed deployment with a size-aware router.

    from objectives import mix, serving
    trace = serving.read_trace("../shared/traces/azure_llm_2023_conv.csv").scale_rate(4.0)
    types = [mix.ReplicaType("H100"), mix.ReplicaType("L40S"), mix.ReplicaType("A10G")]
    slo = serving.SLO(ttft_ms=2000, tpot_ms=50)
    plan = mix.plan_mix("Llama-3.1-8B", trace, slo, types)            # integer program (scipy.optimize.milp)
    best_single = min(mix.plan_single("Llama-3.1-8B", trace, slo, types), key=lambda p: p.cost_usd_per_h)
    res = mix.simulate_mix("Llama-3.1-8B", plan, trace, slo)          # size-aware router over the pools
    plan, res = mix.verify("Llama-3.1-8B", plan, trace, slo)          # add replicas until the simulation meets it

The formulation:

1. Requests are put in size buckets b (input-length x output-length edges, `Buckets`); bucket b arrives at
   lambda_b requests/s (its count over the trace's duration).
2. Capacity r_bj (requests/s one replica of type j sustains for bucket b's mean lengths while meeting the SLO):
   the best steady-state throughput `inference.max_throughput` finds over a grid of batch sizes whose TTFT and
   TPOT meet the SLO, divided by the bucket's mean output length (0 where none does or the model does not fit).
   One vectorized call costs every (type, bucket, batch) at once.
3. Integer program (scipy.optimize.milp): integer replicas n_j >= 0, fractions x_bj in [0, 1] of bucket b sent to
   type j; minimise sum_j price_j x tp_j x n_j (USD/h) subject to sum_j x_bj = 1 for every bucket and
   sum_b lambda_b x_bj / r_bj <= u x n_j for every type (the load of the requests routed to a type fills at most a
   fraction u, `max_utilization`, of its replicas' capacity: headroom for queueing under bursty arrivals).
4. The best single-type deployment is the same program restricted to one type: n_j = ceil(sum_b lambda_b / r_bj / u).
5. `simulate_mix` routes each request by its bucket to a type (the fractions x_bj, a seeded draw per request), and
   the replicas of each type to a pool simulated by `serving.simulate_requests` (least-loaded routing inside the
   pool; pools share nothing, so they are simulated apart and their requests merged). `verify` adds a replica to
   the worst pool until the SLO attainment of every pool reaches the target.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp

from objectives import catalog, inference, serving
from objectives.catalog.carry import CarriesModel
from objectives.metric_units import METRIC_UNITS

log = logging.getLogger(__name__)

#: batch sizes (sequences in flight) tried per (type, bucket) for the capacity table
BATCH_GRID = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


@dataclass(frozen=True)
class ReplicaType:
    """One deployable unit: a model replica on `tp` GPUs of catalog type `gpu` (name or alias)."""

    gpu: str
    tp: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.tp, bool) or not isinstance(self.tp, (int, np.integer)) or self.tp < 1:
            raise ValueError(f"ReplicaType({self.gpu!r}): tp={self.tp!r} must be an integer >= 1 (GPUs per replica)")
        g = catalog.gpu(self.gpu)  # unknown names: the catalog's error with close matches
        object.__setattr__(self, "gpu", g.name)
        if not math.isfinite(g.price_usd_per_hour):
            priced = [n for n in catalog.gpus() if math.isfinite(catalog.gpu(n).price_usd_per_hour)]
            raise ValueError(f"ReplicaType: GPU {g.name!r} has no published price, so a mix cannot be costed; "
                             f"priced GPUs: {priced} (or set one with catalog.with_prices)")

    @property
    def usd_per_h(self) -> float:
        """Price of one replica, USD per hour (GPU-hour price x tp)."""
        return catalog.gpu(self.gpu).price_usd_per_hour * self.tp

    @property
    def label(self) -> str:
        return self.gpu if self.tp == 1 else f"{self.gpu} x{self.tp}"


@dataclass(frozen=True)
class Buckets:
    """Request-size buckets: input-length edges x output-length edges (tokens, increasing, first > 0); a request
    with input i and output o falls in the cell (searchsorted(input_edges, i), searchsorted(output_edges, o)),
    the last cell of each axis open-ended."""

    input_edges: tuple[int, ...] = (256, 1024, 2048, 4096)
    output_edges: tuple[int, ...] = (128, 512)

    def __post_init__(self) -> None:
        for name in ("input_edges", "output_edges"):
            e = np.asarray(getattr(self, name), dtype=float)
            if e.ndim != 1 or (e <= 0).any() or (np.diff(e) <= 0).any():
                raise ValueError(f"Buckets.{name}={getattr(self, name)!r}: must be increasing token counts > 0")

    @property
    def n(self) -> int:
        return (len(self.input_edges) + 1) * (len(self.output_edges) + 1)

    def assign(self, input_tokens: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
        """Bucket index of every request (vectorized)."""
        i = np.searchsorted(np.asarray(self.input_edges), input_tokens, side="left")
        o = np.searchsorted(np.asarray(self.output_edges), output_tokens, side="left")
        return i * (len(self.output_edges) + 1) + o


@dataclass
class MixPlan:
    """A deployment: replicas `counts[j]` of `types[j]`, bucket b's requests split over types by
    `fractions[b, j]`; `capacity[b, j]` (requests/s per replica under the SLO) and `rates[b]` (requests/s)."""

    types: list[ReplicaType]
    counts: np.ndarray
    fractions: np.ndarray
    capacity: np.ndarray
    rates: np.ndarray
    buckets: Buckets
    max_utilization: float
    kind: str = "mix"          # "mix" (integer program over every type) or "single" (one type)

    @property
    def cost_usd_per_h(self) -> float:
        return float(sum(t.usd_per_h * int(n) for t, n in zip(self.types, self.counts, strict=True)))

    @property
    def n_gpus(self) -> int:
        return int(sum(t.tp * int(n) for t, n in zip(self.types, self.counts, strict=True)))

    def describe(self) -> str:
        """e.g. '3 x H100-SXM-80GB + 2 x L40S ($15.69/h)'."""
        parts = [f"{int(n)} x {t.label}" for t, n in zip(self.types, self.counts, strict=True) if n > 0]
        return " + ".join(parts) + f" (${self.cost_usd_per_h:.2f}/h)"


@dataclass
class MixResult:
    """Simulated serving of a plan: overall and per-pool metrics, and the per-request records (column `pool`)."""

    metrics: dict[str, float]
    pools: pd.DataFrame
    requests: pd.DataFrame = field(repr=False)


def _requests(workload: serving.Workload | serving.Trace) -> serving.Trace:
    """An open-loop trace (arrival times and lengths) from a trace or an open-loop `Workload`."""
    if isinstance(workload, serving.Trace):
        t = workload
    elif isinstance(workload, serving.Workload):
        if workload.closed_loop:
            raise ValueError(f"mix: workload concurrency={workload.concurrency} is closed loop; a size-routed mix "
                             "needs arrivals: give rate= (requests/s) or a trace with arrival times")
        r = workload.requests()
        if r.arrival_s is None:
            raise ValueError("mix: the workload has no arrival times (give rate= or a trace with arrival times)")
        t = serving.Trace(r.arrival_s, r.input_tokens, r.output_tokens, source="workload")
    else:
        raise TypeError(f"mix: workload must be a serving.Trace or serving.Workload, not {type(workload).__name__}")
    if t.arrival_s is None:
        raise ValueError(f"mix: {t.source} has no arrival times; replay it at a rate first (Trace.to_rate)")
    if not (t.duration_s > 0):
        raise ValueError(f"mix: every request of {t.source} arrives at once; a rate is needed to size a deployment")
    return t


def _check_slo(slo: serving.SLO) -> None:
    if not isinstance(slo, serving.SLO) or slo.ttft_ms is None or slo.tpot_ms is None:
        raise ValueError(f"mix: slo={slo!r} must be a serving.SLO with both ttft_ms and tpot_ms set")


def _check_types(types: Sequence[ReplicaType]) -> list[ReplicaType]:
    types = list(types)
    if not types or not all(isinstance(t, ReplicaType) for t in types):
        raise ValueError(f"mix: types={types!r} must be a non-empty list of mix.ReplicaType")
    if len(set(types)) != len(types):
        raise ValueError(f"mix: types={[t.label for t in types]} lists a type twice")
    return types


def bucket_stats(trace: serving.Trace, buckets: Buckets) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bucket of each request, rate lambda_b req/s, mean input tokens, mean output tokens) per bucket."""
    b = buckets.assign(trace.input_tokens, trace.output_tokens)
    cnt = np.bincount(b, minlength=buckets.n).astype(float)
    safe = np.maximum(cnt, 1.0)
    isl = np.bincount(b, weights=trace.input_tokens, minlength=buckets.n) / safe
    osl = np.bincount(b, weights=trace.output_tokens, minlength=buckets.n) / safe
    return b, cnt / trace.duration_s, isl, osl


def capacity_table(model: Any, types: Sequence[ReplicaType], input_len: np.ndarray, output_len: np.ndarray,
                   slo: serving.SLO, weight_dtype: str | None = None, engine: Any = None,
                   scheduler: serving.Scheduler | None = None) -> np.ndarray:
    """Requests/s one replica of each type sustains for each bucket's mean lengths under the SLO: [bucket, type].

    One `inference.max_throughput` call over (type x bucket x batch in BATCH_GRID up to the scheduler's
    max_batch_size, iterations of its max_num_tokens); per (bucket, type) the best throughput (output tokens/s)
    among batches with TTFT <= slo.ttft_ms and TPOT <= slo.tpot_ms, over the bucket's mean output length. 0 where
    no batch meets the SLO or the model does not fit."""
    _check_slo(slo)
    sched = scheduler or serving.Scheduler()
    gpus = np.array([t.gpu for t in types])[:, None, None]
    tps = np.array([t.tp for t in types])[:, None, None]
    isl = np.maximum(np.round(np.asarray(input_len, dtype=float)), 1.0)[None, :, None]
    osl = np.maximum(np.round(np.asarray(output_len, dtype=float)), 2.0)[None, :, None]
    # budgets the scheduler leaves to the engine: its own on each type's GPU (`Scheduler.resolved`)
    own = [sched.resolved(engine, t.gpu) for t in types]
    mbs = np.array([float(s.max_batch_size or 1) for s in own])[:, None, None]
    top = int(mbs.max())
    grid = [b for b in BATCH_GRID if b <= top] or [top]
    nb = np.asarray(grid, dtype=float)[None, None, :]
    df = inference.max_throughput(model, gpus, tp=tps, weight_dtype=weight_dtype, input_len=isl, output_len=osl,
                                  max_batch_size=np.minimum(nb, mbs), concurrency=nb,
                                  max_num_tokens=np.array([float(s.max_num_tokens or 1) for s in own])[:, None, None],
                                  engine=engine)
    shape = (len(types), isl.shape[1], nb.shape[2])
    ok = (df["fits"].to_numpy(bool) & (df["ttft_ms"].to_numpy() <= slo.ttft_ms)
          & (df["tpot_ms"].to_numpy() <= slo.tpot_ms)).reshape(shape) & (nb <= mbs)   # a type's own batch at most
    tput = np.where(ok, df["throughput_tok_s"].to_numpy().reshape(shape), 0.0)
    return (tput.max(axis=2) / osl[0, :, 0][None, :]).T


def plan_mix(model: Any, workload: serving.Workload | serving.Trace, slo: serving.SLO,
             types: Sequence[ReplicaType], buckets: Buckets | None = None, *, weight_dtype: str | None = None,
             max_utilization: float = 0.7, engine: Any = None, scheduler: serving.Scheduler | None = None,
             max_replicas: int = 1000) -> MixPlan:
    """The cheapest mix of replica types for `workload` under `slo` (the integer program of the module docstring,
    solved with scipy.optimize.milp). Raises ValueError naming a bucket no type can serve within the SLO."""
    types = _check_types(types)
    if not (isinstance(max_utilization, (int, float)) and 0 < max_utilization <= 1):
        raise ValueError(f"mix: max_utilization={max_utilization!r} must be in (0, 1] (fraction of capacity used)")
    buckets = buckets or Buckets()
    trace = _requests(workload)
    _, lam, isl, osl = bucket_stats(trace, buckets)
    cap = capacity_table(model, types, isl, osl, slo, weight_dtype, engine, scheduler)
    live = lam > 0
    dead = live & ~(cap > 0).any(axis=1)
    if dead.any():
        b = int(np.flatnonzero(dead)[0])
        raise ValueError(f"mix: no type in {[t.label for t in types]} serves requests of bucket {b} (mean "
                         f"{isl[b]:.0f} input / {osl[b]:.0f} output tokens) within TTFT <= {slo.ttft_ms} ms and "
                         f"TPOT <= {slo.tpot_ms} ms; add a faster type, a larger tp, or relax the SLO")
    counts, frac = _solve(types, cap, lam, float(max_utilization), max_replicas)
    return MixPlan(types, counts, frac, cap, lam, buckets, float(max_utilization), "mix")


def _solve(types: Sequence[ReplicaType], cap: np.ndarray, lam: np.ndarray, max_utilization: float,
           max_replicas: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The integer program (module docstring, step 3) on a capacity table: (replicas per type, fractions)."""
    live = lam > 0
    B, J = len(lam), len(types)
    price = np.array([t.usd_per_h for t in types])
    # variables: n_j (J integers), then x_bj row-major (B x J continuous)
    c = np.concatenate([price, np.zeros(B * J)])
    integrality = np.concatenate([np.ones(J), np.zeros(B * J)])
    servable = (cap > 0) & live[:, None]
    ub = np.concatenate([np.full(J, float(max_replicas)), servable.ravel().astype(float)])
    a_eq = np.zeros((B, J + B * J))
    for b in range(B):
        a_eq[b, J + b * J: J + (b + 1) * J] = 1.0
    rhs = live.astype(float)
    load = np.where(servable, lam[:, None] / np.where(cap > 0, cap, 1.0), 0.0)      # replicas per unit fraction
    a_ub = np.zeros((J, J + B * J))
    a_ub[:, :J] = -max_utilization * np.eye(J)
    for j in range(J):
        a_ub[j, J + j: J + B * J: J] = load[:, j]
    res = milp(c, integrality=integrality, bounds=Bounds(np.zeros_like(ub), ub),
               constraints=[LinearConstraint(a_eq, rhs, rhs), LinearConstraint(a_ub, -np.inf, 0.0)])
    if not res.success:
        raise ValueError(f"mix: the integer program found no deployment ({res.message}); raise max_replicas="
                         f"{max_replicas} or relax the SLO")
    counts = np.round(res.x[:J]).astype(int)
    frac = res.x[J:].reshape(B, J)
    frac = np.where(frac > 1e-9, frac, 0.0)
    frac[live] /= frac[live].sum(axis=1, keepdims=True)
    return counts, frac


def plan_single(model: Any, workload: serving.Workload | serving.Trace, slo: serving.SLO,
                types: Sequence[ReplicaType], buckets: Buckets | None = None, *, weight_dtype: str | None = None,
                max_utilization: float = 0.7, engine: Any = None,
                scheduler: serving.Scheduler | None = None) -> list[MixPlan]:
    """One single-type plan per type that serves every bucket within the SLO: n = ceil(sum_b lambda_b / r_b / u)
    (the integer program restricted to that type). Types that cannot serve some bucket are left out."""
    types = _check_types(types)
    buckets = buckets or Buckets()
    trace = _requests(workload)
    _, lam, isl, osl = bucket_stats(trace, buckets)
    cap = capacity_table(model, types, isl, osl, slo, weight_dtype, engine, scheduler)
    live = lam > 0
    plans = []
    for j, t in enumerate(types):
        if not (cap[live, j] > 0).all():
            continue
        frac = np.zeros((len(lam), 1))
        frac[live, 0] = 1.0
        plans.append(MixPlan([t], _single_count(cap[:, j], lam, float(max_utilization)), frac, cap[:, [j]], lam,
                             buckets, float(max_utilization), "single"))
    return plans


def _single_count(cap: np.ndarray, lam: np.ndarray, max_utilization: float) -> np.ndarray:
    """Replicas of one type for the whole load: ceil(sum_b lambda_b / r_b / u), at least 1."""
    live = lam > 0
    need = float(np.sum(lam[live] / cap[live]))
    return np.array([max(1, math.ceil(need / max_utilization - 1e-9))])


def route(plan: MixPlan, trace: serving.Trace, seed: int = 0) -> np.ndarray:
    """The pool (index into plan.types) of every request: its bucket's fractions, one seeded draw per request."""
    b = plan.buckets.assign(trace.input_tokens, trace.output_tokens)
    cum = np.cumsum(plan.fractions, axis=1)
    u = np.random.default_rng(seed).random(len(b))
    j = (u[:, None] >= cum[b]).sum(axis=1)
    return np.minimum(j, len(plan.types) - 1)


def _pool_records(model: Any, t: ReplicaType, n: int, sub: serving.Trace, weight_dtype: str | None,
                  scheduler: serving.Scheduler | None, engine: Any) -> pd.DataFrame:
    return serving.simulate_requests(model, t.gpu, tp=t.tp, weight_dtype=weight_dtype, dp=int(n),
                                     workload=serving.Workload(trace=sub), scheduler=scheduler, engine=engine)


def _good(rec: pd.DataFrame, slo: serving.SLO) -> np.ndarray:
    tpot = rec["tpot_ms"].to_numpy()
    return (rec["ttft_ms"].to_numpy() <= slo.ttft_ms) & (np.isnan(tpot) | (tpot <= slo.tpot_ms))


def _summary(plan: MixPlan, recs: dict[int, pd.DataFrame], trace: serving.Trace, slo: serving.SLO) -> MixResult:
    allr = pd.concat([r.assign(pool=plan.types[j].label) for j, r in recs.items()], ignore_index=True)
    good = _good(allr, slo)
    out_tok = float(trace.output_tokens.sum())
    tput = out_tok / max(float(allr["finish_s"].max()), trace.duration_s)
    m = {
        "cost_usd_per_h": plan.cost_usd_per_h, "n_gpus": float(plan.n_gpus), "slo_attainment": float(good.mean()),
        "ttft_ms_p50": float(np.percentile(allr["ttft_ms"], 50)),
        "ttft_ms_p90": float(np.percentile(allr["ttft_ms"], 90)),
        "ttft_ms_p99": float(np.percentile(allr["ttft_ms"], 99)),
        "tpot_ms_p50": float(np.nanpercentile(allr["tpot_ms"], 50)),
        "tpot_ms_p90": float(np.nanpercentile(allr["tpot_ms"], 90)),
        "tpot_ms_p99": float(np.nanpercentile(allr["tpot_ms"], 99)),
        "throughput_tok_s": tput, "usd_per_mtok": plan.cost_usd_per_h / 3600.0 / tput * 1e6,
        "n_requests": float(len(allr)),
    }
    pools = pd.DataFrame([{"pool": plan.types[j].label, "replicas": int(plan.counts[j]),
                           "usd_per_h": plan.types[j].usd_per_h * int(plan.counts[j]), "requests": len(r),
                           "slo_attainment": float(_good(r, slo).mean()),
                           "ttft_ms_p90": float(np.percentile(r["ttft_ms"], 90)),
                           "tpot_ms_p90": float(np.nanpercentile(r["tpot_ms"], 90)) if r["tpot_ms"].notna().any()
                           else float("nan")} for j, r in recs.items()])
    return MixResult(m, pools, allr)


def simulate_mix(model: Any, plan: MixPlan, workload: serving.Workload | serving.Trace, slo: serving.SLO, *,
                 weight_dtype: str | None = None, scheduler: serving.Scheduler | None = None, engine: Any = None,
                 seed: int = 0) -> MixResult:
    """Serve `workload` on `plan` with the size-aware router (`route`) in front of one pool per type."""
    _check_slo(slo)
    trace = _requests(workload)
    pool = route(plan, trace, seed)
    recs = {}
    for j, t in enumerate(plan.types):
        idx = np.flatnonzero(pool == j)
        if len(idx) == 0:
            continue
        if plan.counts[j] < 1:
            raise ValueError(f"mix: {len(idx)} requests routed to {t.label}, which has no replica in the plan")
        recs[j] = _pool_records(model, t, int(plan.counts[j]), trace.take(idx), weight_dtype, scheduler, engine)
    return _summary(plan, recs, trace, slo)


def verify(model: Any, plan: MixPlan, workload: serving.Workload | serving.Trace, slo: serving.SLO, *,
           target: float = 0.9, weight_dtype: str | None = None, scheduler: serving.Scheduler | None = None,
           engine: Any = None, seed: int = 0, derate: float = 0.85, max_steps: int = 20) -> tuple[MixPlan, MixResult]:
    """Simulate `plan`; while some pool's SLO attainment is below `target`, scale the capacity column of every
    failing type by `derate` (the analytical capacity was optimistic for it under these arrivals) and solve the
    same program again (`plan.kind` "mix": the integer program, which may then move load to another type;
    "single": the ceil formula), then simulate again. Returns the verified plan and its result; the plan's
    `capacity` is the derated table. Raises ValueError if `max_steps` rounds do not reach the target."""
    if not (isinstance(target, (int, float)) and 0 < target <= 1):
        raise ValueError(f"mix.verify: target={target!r} must be in (0, 1] (fraction of requests within the SLO)")
    if not (isinstance(derate, (int, float)) and 0 < derate < 1):
        raise ValueError(f"mix.verify: derate={derate!r} must be in (0, 1) (capacity factor per failed round)")
    _check_slo(slo)
    trace = _requests(workload)
    cap = plan.capacity.copy()
    for step in range(max_steps + 1):
        res = simulate_mix(model, plan, trace, slo, weight_dtype=weight_dtype, scheduler=scheduler, engine=engine,
                           seed=seed)
        att = dict(zip(res.pools["pool"], res.pools["slo_attainment"], strict=True))
        failing = [j for j, t in enumerate(plan.types) if att.get(t.label, 1.0) < target]
        if not failing:
            return plan, res
        if step == max_steps:
            break
        log.info("mix.verify round %d: %s below %.2f; derating their capacity by %.2f", step + 1,
                 [plan.types[j].label for j in failing], target, derate)
        cap[:, failing] *= derate
        if plan.kind == "single":
            counts, frac = _single_count(cap[:, 0], plan.rates, plan.max_utilization), plan.fractions
        else:
            counts, frac = _solve(plan.types, cap, plan.rates, plan.max_utilization)
        plan = MixPlan(plan.types, counts, frac, cap.copy(), plan.rates, plan.buckets, plan.max_utilization,
                       plan.kind)
    raise ValueError(f"mix.verify: {plan.describe()} still misses the SLO target {target} after {max_steps} "
                     f"rounds (attainment per pool: {att}); relax the SLO or lower max_utilization")


#: bucket granularities a study can choose from (input-length edges x output-length edges, tokens)
BUCKET_OPTIONS: dict[str, Buckets] = {
    "coarse": Buckets(input_edges=(1024,), output_edges=(256,)),
    "medium": Buckets(),
    "fine": Buckets(input_edges=(128, 256, 512, 1024, 2048, 4096), output_edges=(64, 128, 256, 512)),
}


def use_param(t: str | ReplicaType) -> str:
    """The study parameter that lets a mix use replica type `t` (a GPU name: tp 1) as 0/1: 'use_' + the GPU's
    catalog name in lower case with '-' -> '_', plus '_tp<N>' when tp > 1."""
    rt = t if isinstance(t, ReplicaType) else ReplicaType(t)
    return "use_" + rt.gpu.lower().replace("-", "_") + (f"_tp{rt.tp}" if rt.tp > 1 else "")


@dataclass
class MixObjective(CarriesModel):
    """The evaluate function of a GPU-mix study: a configuration says which replica types (GPU names, or
    `ReplicaType` for tp > 1) the mix may use (`use_param(type)` = 0/1), the utilization cap
    (`max_utilization`) and the bucket granularity (`buckets`, a key of `BUCKET_OPTIONS`); the metrics are those
    of the integer program's plan (`plan_mix` on the allowed types, analytical: `verify` simulates the plans a
    study picks). The capacity table of every type is computed once
    per granularity and sliced per configuration.

    Metrics: cost_usd_per_h (USD/h), usd_per_mtok (USD per million output tokens at the workload's rate),
    n_gpus, n_types_used (types with at least one replica), servable (the fraction of requests in buckets some
    allowed type serves within the SLO; below 1 the plan covers only those, and the study's constraint
    servable >= 1 marks the trial infeasible), n_<gpu> (replicas of each type: `use_param`'s name, prefix n_).
    The model's record travels into the study's worker processes (`catalog.carry.CarriesModel`).
    """

    model: str
    workload: serving.Workload | serving.Trace
    slo: serving.SLO
    gpus: Sequence[str | ReplicaType]
    weight_dtype: str | None = None
    scheduler: serving.Scheduler | None = None
    dse_name: str = "objectives.mix.MixObjective"
    dse_units: ClassVar[tuple[tuple[str, str], ...]] = METRIC_UNITS   # read by dse.objective_info
    _tables: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.carry_model()
        _check_slo(self.slo)
        self.types = _check_types([g if isinstance(g, ReplicaType) else ReplicaType(g) for g in self.gpus])
        self.trace = _requests(self.workload)

    @property
    def constraints(self) -> dict[str, tuple[str, float]]:
        """The study's constraint: every bucket servable within the SLO by an allowed type."""
        return {"servable": (">=", 1.0)}

    def _table(self, buckets: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if buckets not in BUCKET_OPTIONS:
            raise ValueError(f"MixObjective: buckets={buckets!r} is not one of {sorted(BUCKET_OPTIONS)}")
        if buckets not in self._tables:
            _, lam, isl, osl = bucket_stats(self.trace, BUCKET_OPTIONS[buckets])
            cap = capacity_table(self.model, self.types, isl, osl, self.slo, self.weight_dtype,
                                 scheduler=self.scheduler)
            self._tables[buckets] = (lam, osl, cap)
        return self._tables[buckets]

    def plan(self, config: dict[str, Any]) -> MixPlan | None:
        """The integer program's plan for `config` over the buckets its allowed types can serve within the SLO
        (the others get no replica: see `servable`); None when they serve none."""
        lam, _, cap = self._table(str(config["buckets"]))
        chosen = [j for j, t in enumerate(self.types) if int(config[use_param(t)])]
        if not chosen:
            raise ValueError(f"MixObjective: config {config!r} allows no GPU type; set one of "
                             f"{[use_param(t) for t in self.types]} to 1")
        sub = cap[:, chosen]
        lam = np.where((sub > 0).any(axis=1), lam, 0.0)
        if not (lam > 0).any():
            return None
        u = float(config["max_utilization"])
        types = [self.types[j] for j in chosen]
        counts, frac = _solve(types, sub, lam, u)
        return MixPlan(types, counts, frac, sub, lam, BUCKET_OPTIONS[str(config["buckets"])], u,
                       "single" if len(types) == 1 else "mix")

    def __call__(self, config: dict[str, Any]) -> dict[str, float]:
        plan = self.plan(config)
        out = {"n_" + use_param(t)[4:]: 0.0 for t in self.types}
        if plan is None:
            return {"cost_usd_per_h": 0.0, "usd_per_mtok": 0.0, "n_gpus": 0.0, "n_types_used": 0.0,
                    "servable": 0.0, **out}
        lam, osl, _ = self._table(str(config["buckets"]))
        tok_s = float(np.sum(plan.rates * osl))
        for t, n in zip(plan.types, plan.counts, strict=True):
            out["n_" + use_param(t)[4:]] = float(n)
        return {"cost_usd_per_h": plan.cost_usd_per_h, "usd_per_mtok": plan.cost_usd_per_h / 3600.0 / tok_s * 1e6,
                "n_gpus": float(plan.n_gpus), "n_types_used": float((plan.counts > 0).sum()),
                "servable": float(plan.rates.sum() / lam.sum()), **out}


__all__ = ["ReplicaType", "Buckets", "MixPlan", "MixResult", "bucket_stats", "capacity_table", "plan_mix",
           "plan_single", "route", "simulate_mix", "verify", "BATCH_GRID", "BUCKET_OPTIONS", "MixObjective",
           "use_param"]
