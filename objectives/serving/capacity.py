"""Capacity: the highest request rate a deployment holds under an SLO, and the smallest deployment that holds a
target rate.

    serving.capacity("Llama-3.1-70B", "H200", tp=4, weight_dtype="fp8",
                     slo=serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99"),
                     workload=serving.Workload(rate=1.0, input_len=2048, output_len=256))
    # {"capacity_req_s": 9.1, "analytical_req_s": 9.6, "n_simulations": 6, ...}: holds 9.1 req/s at p99 TTFT <= 2 s

The analytical model (`ServingModel.capacity`, vectorized; the scheduler's knobs under the policy it models,
``scheduler.MODELLED_POLICY``) brackets the rate; the simulator, under the scheduler given, then bisects it:
a rate is held when the simulated run of ``n_requests`` requests at that rate (the workload's arrival process and
lengths, its own rate replaced; a trace's own arrivals replayed at that mean rate, `Trace.to_rate`) meets every
bound of the SLO on its statistic (e.g. p99 TTFT and p99 TPOT) over the run's steady part: the requests between
the first and the last L to arrive, L the requests in the run's batches (Little's law: its arrival rate x mean
time from first token to finish, `simulator.in_flight`), the first L filling the batches from empty and the last
L arriving while they drain. A run of fewer than `STEADY_RUNS` x L requests has no steady part (every request in
a batch at once, none queued: such a run meets bounds at rates far above the steady state's) and does not hold
its rate. Nor does a run whose steady part meets the SLO while the requests in the system still grow by more
than ``tol`` of its arrivals (`simulator.steady_growth`; Poisson or gamma arrivals, not a trace's own, whose rate
varies): near a slot-bound deployment's capacity the batches fill over several residencies (each sequence added
slows every step), so a short run ends before they are full and before any queue forms. When either, and not the
SLO, ends the search, a given ``n_requests`` is refused naming the minimum, and the default is raised and the
search rerun (``n_requests`` in the result; at most `STEADY_RUNS` x the deployment's slots, `steady_slots`, which
no batch exceeds, for a run without a steady part, `SETTLE_RUNS` times that for one still growing).
`steady_verdict` is that judgement, and `steady_run` applies it to one workload (the study objective's simulated
fidelity: its front confirmation and `smallest_deployment`).

A disaggregated deployment is given as `simulate` takes it: ``mode="disagg"`` with a ``prefill`` and a ``decode``
`Pool` (each its own GPU type, TP, PP, EP, attention DP, dtypes and worker count; a pool's None fields inherit
capacity's arguments), the analytical model pricing it as the objective does (``prefill_replicas`` prefill
workers of ``prefill_gpu`` / ``prefill_tp`` / ``prefill_pp`` / ``prefill_ep`` / ``prefill_attn_dp`` /
``prefill_*_dtype``, the rest decode: `Deployments`):

    serving.capacity("Llama-3.1-70B", "H200", tp=4, weight_dtype="fp8", slo=..., mode="disagg",
                     prefill=serving.Pool(gpu="H100", tp=4, n_workers=1), decode=serving.Pool(n_workers=2))
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dse.pareto import tied

from ..inference.core import reusing_prepared
from ..inference.lockstep import AdpBalance, as_balance
from ..inference.measured import BY_CERTAINTY
from .analytical import Deployments, ServingModel
from .scheduler import MODELLED_POLICY, SLO, Pool, Scheduler
from .simulator import STEADY_RUNS, _check_mode, _check_pool_parallel, _check_pools, check_context, pools_gpu, simulate
from .traces import Trace
from .workload import Workload

#: requests/s below which a deployment is said to hold no rate (capacity 0; requests then arrive one at a time,
#: but for a trace's simultaneous arrivals)
MIN_RATE = 1e-4

_STAT_KEY = {"mean": "mean", "p50": "p50", "p90": "p90", "p99": "p99"}

#: requests a simulated rate is measured on where neither `capacity`'s ``n_requests`` nor the workload's says
DEFAULT_N_REQUESTS = 1000

#: fewest requests a simulated rate is measured on (``n_requests`` and a trace's length alike): a handful of
#: requests replayed at any rate meet any SLO
MIN_REQUESTS = 10

#: relative width of the final bracket of a capacity search, and the growth of the requests in the system (a share of
#: a steady part's arrivals) above which a run that meets the SLO is still a transient (`steady_verdict`)
DEFAULT_TOL = 0.05

#: requests/s at which the memory model's batch is saturated (the slots a deployment holds at most)
_SATURATING_RATE = 1e6

#: the default run is raised up to this many times `STEADY_RUNS` x the deployment's slots while a rate that meets
#: the SLO was still growing over its steady part (its batches filling, or a queue: `simulator.steady_growth`);
#: near a slot-bound deployment's capacity its batches fill over several residencies (each sequence added slows
#: every step), not the one Little's law discards
SETTLE_RUNS = 8


def meets(metrics: Mapping[str, float], slo: SLO) -> bool:
    """Whether simulated ``metrics`` (the keys of `simulate`) meet every bound of ``slo`` on its statistic."""
    for metric, bound in slo.bounds.items():
        v = float(metrics[f"{metric}_{_STAT_KEY[slo.percentile]}"])
        if not v <= bound:          # NaN fails
            return False
    return True


def steady_verdict(steady: Mapping[str, float], slo: SLO, tol: float = DEFAULT_TOL, *,
                   stationary: bool = True) -> str:
    """How a simulated run measured over its steady part (`simulate(discard="steady")`'s metrics) stands against
    ``slo``, as `capacity` judges each rate: "held" (its steady part meets every bound and, for ``stationary``
    arrivals, a rate or gamma process, keeps up with them: the requests in the system grew by at most ``tol`` of
    its arrivals, `simulator.steady_growth`), "missed" (its steady part misses a bound), "empty" (the run had no
    steady part: a longer run is needed) or "growing" (met the SLO while its batches still filled or a queue
    built: a longer run is needed; a trace's own arrivals, whose rate varies, are not checked so)."""
    if steady["steady_requests"] == 0:
        return "empty"
    if not meets(steady, slo):
        return "missed"
    if stationary and not float(steady["steady_growth"]) <= tol:
        return "growing"
    return "held"


def steady_run(run: Callable[[int, int | str], Mapping[str, Any]], n: int, slo: SLO, *, stationary: bool = True,
               most: Callable[[], int] | None = None, tol: float = DEFAULT_TOL) -> tuple[dict[str, Any], str, int]:
    """One workload simulated and judged as `capacity` judges a rate: ``run(n, discard)`` (`simulate`'s metrics of
    ``n`` requests, ``discard`` as `simulate` takes it) over its steady part, `steady_verdict` with ``stationary``
    and ``tol``. A transient ("empty": no steady part; "growing": met the SLO while the system still grew) is run
    again with twice the requests (at least `STEADY_RUNS` x twice the requests in its batches) up to ``most()``
    (requests; None: never raised). Returns (metrics, verdict, requests run); a run still without a steady part
    is measured whole (its metrics then the whole run's, ``steady_requests`` 0: what the requests given show)."""
    cap = None
    while True:
        m = dict(run(n, "steady"))
        verdict = steady_verdict(m, slo, tol, stationary=stationary)
        if verdict in ("held", "missed") or most is None:
            break
        cap = most() if cap is None else cap
        if n >= cap:
            break
        grow = STEADY_RUNS * math.ceil(2 * float(m["in_flight"])) if verdict == "empty" else 0
        n = min(cap, max(2 * n, grow))
    if verdict == "empty":
        m = {**run(n, 0), "steady_requests": 0, "in_flight": m["in_flight"], "steady_growth": math.nan}
    return m, verdict, n


def steady_judged(workload: Workload) -> bool:
    """Whether ``workload`` is judged on its run's steady part (`simulate(discard="steady")`, `steady_verdict`):
    arrivals at a finite rate (Poisson or gamma) or a trace's own arrival times, as a server meets them in service
    (it was not empty when they came, nor drained after). A closed loop (its clients' start is the benchmark's),
    requests sent all at once, and a trace without times (all at once) are judged on the whole run."""
    if workload.concurrency is not None:
        return False
    if workload.rate is not None:
        return math.isfinite(workload.rate)
    return workload._replayed_arrivals() is not None     # a trace's own times, not all at once


def _bounded(slo: SLO, fn: str) -> None:
    """Refuse an SLO without a finite bound: every rate would hold it (the search would climb to its ceiling)."""
    if not any(math.isfinite(b) for _, b in slo.constraints.values()):
        raise ValueError(f"{fn} needs an SLO with at least one finite bound (ttft_ms, tpot_ms or e2e_ms, e.g. "
                         f"{{'ttft_ms_p99': 2000}}), got {slo}: without one every request rate holds it")


def _at_rate(workload: Workload, rate: float, n_requests: int) -> Workload:
    """``workload`` sending ``n_requests`` requests at ``rate`` requests/s: a trace with arrival times (and no rate
    or concurrency of its own) replays its own arrivals scaled to that mean rate (`Trace.to_rate`: its bursts
    kept); any other workload keeps its arrival process (Poisson, or gamma with its cv) and lengths (a trace's
    too) at that rate."""
    t = workload.trace
    if isinstance(t, Trace) and min(len(t), n_requests) < MIN_REQUESTS:
        raise ValueError(f"trace {t.source} has {len(t)} requests; a rate is measured on at least {MIN_REQUESTS} "
                         f"(a few requests replayed at any rate meet any SLO): give a longer trace")
    if replays(workload):
        assert isinstance(t, Trace)
        head = t.head(n_requests)
        if math.isfinite(head.rate):           # a trace sent all at once has no rate to scale: Poisson below
            return Workload(trace=head.to_rate(float(rate)), seed=workload.seed, shared_prefix=workload.shared_prefix)
    return Workload(rate=float(rate), arrival=workload.arrival, cv=workload.cv, input_len=workload.input_len,
                    output_len=workload.output_len, n_requests=n_requests, seed=workload.seed, trace=t,
                    shared_prefix=workload.shared_prefix)


def replays(workload: Workload) -> bool:
    """Whether a simulated rate replays ``workload``'s trace (its own arrivals, its first n_requests, scaled to the
    rate) rather than drawing arrivals of its own (`_at_rate`)."""
    t = workload.trace
    return isinstance(t, Trace) and t.has_arrivals and workload.rate is None and workload.concurrency is None


@reusing_prepared()
def capacity(model: Any, gpu: Any = None, tp: int = 1, pp: int = 1, weight_dtype: str | None = None, act_dtype: str | None = None,
             kv_dtype: str | None = None, *, slo: SLO | Mapping[str, Any], workload: Workload | None = None,
             scheduler: Scheduler | None = None, dp: int = 1, engine: Any = None, ep: int = 1,
             n_requests: int | None = None, tol: float = DEFAULT_TOL, fidelity: str = "simulated",
             eplb: bool = False, moe_act_dtype: str | None = None, attn_dp: int = 1,
             profile: str | Path | None = None, moe_a2a: str | None = None, mode: str = "agg",
             prefill: Pool | None = None, decode: Pool | None = None, adp_balance: Any = None) -> dict[str, Any]:
    """Highest open-loop request rate (requests/s, whole deployment: ``dp`` aggregated replicas, or both pools of
    a disaggregated one) at which the deployment still meets ``slo``.

    ``workload`` gives the arrival process (Poisson by default, or gamma with its cv) and the lengths (default
    2048 / 256 tokens); its rate is what the search varies. ``n_requests``: requests a simulated rate is measured
    on (default: the workload's ``n_requests``, else `DEFAULT_N_REQUESTS`; giving both, they must agree; a trace
    replays its first that many). ``fidelity="analytical"`` returns the analytical
    model's capacity only. ``tol``: relative width of the final bracket. ``eplb``: an expert-parallel load
    balancer (as in `simulate`). ``moe_act_dtype``: the MXFP4 experts' activations (None / "auto", "bf16",
    "mxfp8"; as in `simulate`). ``moe_a2a``: the EP token exchange (None / "auto", "allgather", "deepep"; as in
    `simulate`). ``attn_dp``: attention data-parallel ranks per replica, each scheduling its own
    requests, with ``ep`` spreading the experts over the replica's tp x attn_dp GPUs (as in `simulate`; e.g. a
    wide-EP replica tp=1, attn_dp=8, ep=8). ``profile``: a calibrated profile file (`dse calibrate RESULTS -o
    FILE.json`) whose factors cost the analytical screen and every simulated rate (as in `simulate` and
    `inference.estimate`). Returns capacity_req_s, analytical_req_s, n_simulations, the simulated metrics at the
    capacity (``metrics``, over the run's steady part, with its ``steady_requests`` and ``in_flight``; empty for
    the analytical fidelity), ``n_requests`` (simulated: the requests each rate ran) and ``profile`` (the
    calibrated profile's file, file hash and factors' hash, `calibration.calibrate.profile_provenance`; None
    without one).
    ``mode="disagg"``: a ``prefill`` and a ``decode`` `Pool` (as in `simulate`; ``dp`` stays 1, the workers are
    the pools' ``n_workers``; ``gpu`` may be left out where both pools name theirs, `simulator.pools_gpu`; the
    pools' None fields take ``gpu``, ``tp``, ``pp``, ``ep``, ``attn_dp`` and the
    dtypes: each pool may have its own pipeline depth and weight / activation / KV dtypes, an unknown dtype
    refused naming the known ones). Each pool may have its own scheduler (``Pool(scheduler=)``, else
    ``scheduler``), which the simulations run; the analytical model prices each pool's max_batch_size and
    max_num_tokens (`Deployments.prefill_max_batch_size` / ``prefill_max_num_tokens``) and holds the other batch
    knobs (`ANALYTICAL_KNOBS`) once for both pools, the decode pool's (`_pool_scheduler`): pools whose schedulers
    differ in those are priced in the simulations only (the analytical estimate starts the search;
    ``fidelity="analytical"`` refuses them, naming the knobs). It then also returns ``prefill_pool_req_s`` and
    ``decode_pool_req_s`` (analytical: the rate each pool can serve, the smaller binding; ``prefill_pool_req_s`` NaN
    where the pools' schedulers differ in a knob held once).
    ``adp_balance``: TensorRT-LLM's attention-DP balance (True, or an `inference.lockstep.AdpBalance`; None / False
    off), as ``Scheduler(adp_balance=)`` sets it, in every scheduler the simulations run (capacity's and the
    pools' own; one that sets another balance is refused); the analytical model prices the default iterations
    (`Deployments.adp_balance`) and refuses others with ``fidelity="analytical"``.
    """
    slo = SLO.parse(slo)
    _bounded(slo, "capacity")
    if fidelity not in ("simulated", "analytical"):
        raise ValueError(f"capacity fidelity={fidelity!r}: valid values are 'simulated', 'analytical'")
    own = workload.n_requests if isinstance(workload, Workload) else None
    if n_requests is not None and own is not None and n_requests != own:
        raise ValueError(f"capacity n_requests={n_requests!r} and workload n_requests={own}: give one (requests per "
                         f"simulated rate), or the same in both")
    given = n_requests is not None or own is not None        # the caller's count: refused when too short, not raised
    n_requests = n_requests if n_requests is not None else own if own is not None else DEFAULT_N_REQUESTS
    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < MIN_REQUESTS:
        raise ValueError(f"capacity n_requests={n_requests!r}: give an integer >= {MIN_REQUESTS} (requests per "
                         f"simulated rate)")
    if not isinstance(eplb, (bool, np.bool_)):
        raise ValueError(f"capacity eplb={eplb!r}: must be True or False (an expert-parallel load balancer on or off)")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"capacity tol={tol!r}: give a fraction in (0, 1)")
    w = workload if workload is not None else Workload(rate=1.0, input_len=2048, output_len=256)
    if not isinstance(w, Workload):
        raise ValueError(f"workload must be a serving.Workload, got {w!r:.80}")
    s = scheduler if scheduler is not None else Scheduler()
    if not isinstance(s, Scheduler):
        raise ValueError(f"capacity scheduler must be a serving.Scheduler, got {s!r:.80}")
    if as_balance(adp_balance) is not None:
        s, prefill, decode = _balanced(adp_balance, s, prefill, decode)
    # the simulations take the scheduler as given, as `simulate` does, so budgets left to the engine are its own on
    # the replica (SGLang's max sequences by its KV pool, `Scheduler.for_cost`); the analytical screen and the checks
    # below its budgets on `gpu`
    gpu = pools_gpu(gpu, mode, prefill, decode)   # None where both pools name theirs: the decode pool's
    run, s = s, s.resolved(engine, gpu)
    pool_scheds = [p.scheduler for p in (prefill, decode) if isinstance(p, Pool) and p.scheduler is not None]
    balances = {x.adp_balance for x in (s, *pool_scheds)} - {None}
    if fidelity == "analytical" and (odd := balances - {AdpBalance()}):
        raise ValueError(f"capacity adp_balance={next(iter(odd))!r}: the analytical model "
                         "prices TensorRT-LLM's attention-DP balance at its default iterations only; use "
                         "fidelity='simulated' (dse capacity without --analytical)")
    if not s.models_policy(engine) and fidelity == "analytical":
        raise ValueError(f"capacity fidelity='analytical': the analytical model models Scheduler policy="
                         f"{Scheduler().policy_of(engine)!r} here (the engine's own, policy={MODELLED_POLICY!r}; "
                         f"chunked prefill or not), got policy={s.policy!r}; use fidelity='simulated'")
    if w.concurrency is not None:        # closed loop: an open-loop search over Poisson rates of its lengths
        w = Workload(rate=1.0, input_len=w.input_len, output_len=w.output_len, seed=w.seed, trace=w.trace,
                     shared_prefix=w.shared_prefix)
    _check_mode(mode, dp, prefill, decode)
    pools = _pool_knobs(model, gpu, tp, pp, ep, attn_dp, weight_dtype, act_dtype, kv_dtype, prefill, decode) \
        if mode == "disagg" else {}
    # the batch knobs the analytical model holds (once for both pools: the decode pool's, but each pool's
    # max_batch_size and max_num_tokens; the simulations run each pool's own, else `s`)
    # (each pool's budgets resolved on its own GPU, as the simulations resolve them: `run`, not `s`, which the
    # deployment's GPU resolved)
    ks, differ, prefill_knobs = _pool_scheduler(run, prefill, decode, engine, fidelity, gpu) \
        if pools and prefill and decode else (s, [], {})
    if not pools:
        from ..inference.resolve import check_ep
        check_ep(model, int(ep), int(tp), int(attn_dp))       # the bad ep and the valid ones, before any search
    efficiency, provenance = None, None
    if profile is not None:     # a calibrated profile (`dse calibrate`): read once, a bad file named before any search
        from ..calibration.calibrate import load_profile, profile_provenance
        efficiency = load_profile(profile)
        provenance = profile_provenance(profile, efficiency)
    # the requests a rate sends (a trace's first n_requests), before any search: each simulated rate would refuse them
    check_context(model, dataclasses.replace(w, n_requests=n_requests), engine)
    sm = ServingModel(_name(model), _at_rate(w, 1.0, n_requests), efficiency=efficiency)
    layout = {**dict(gpu=_name(gpu, gpu=True), tp=tp, pp=pp, dp=dp, ep=ep, attn_dp=attn_dp, weight_dtype=weight_dtype,
                     act_dtype=act_dtype, kv_dtype=kv_dtype), **pools}
    d = Deployments.of(max_batch_size=ks.max_batch_size,
                       max_num_tokens=ks.max_num_tokens, chunked_prefill=ks.chunked_prefill,
                       batching=ks.batching, engine=engine, eplb=bool(eplb), moe_act_dtype=moe_act_dtype,
                       prefix_caching=ks.prefix_caching, moe_a2a=moe_a2a, adp_balance=bool(balances), **prefill_knobs,
                       **layout)
    ana = float(sm.capacity(d, slo, tol=tol)[0])
    out: dict[str, Any] = {"capacity_req_s": ana, "analytical_req_s": ana, "n_simulations": 0, "metrics": {},
                           "profile": provenance}
    if ana == 0 or pools:   # no rate, or no deployment: one that cannot run is refused with its reason, not "holds 0"
        ev = sm.evaluate(d, slo, rate=max(ana, MIN_RATE))
        if not ev["fits"].iloc[0]:
            raise ValueError(f"{_name(model)} on {deployment_words(gpu, tp, pp, dp, ep, attn_dp, prefill, decode)} "
                             f"does not run: {ev['reason'].iloc[0]}")
        if pools:           # rate matching: what each pool serves (requests/s); the smaller binds
            # (a prefill pool whose scheduler differs from the decode pool's in a knob held once is not priced
            # with its own: NaN)
            out.update(prefill_pool_req_s=math.nan if differ else float(ev["prefill_pool_req_s"].iloc[0]),
                       decode_pool_req_s=float(ev["decode_pool_req_s"].iloc[0]))
    if fidelity == "analytical":
        return out
    slots = steady_slots(sm, d)
    # requests a steady state near the analytical capacity needs (its batches there x 2, up to the slots): the
    # default is raised to it, and a refusal asks for at least it
    near = STEADY_RUNS * min(slots, math.ceil(2 * steady_slots(sm, d, ana)))
    if not given:
        n_requests = max(n_requests, near)
    words = deployment_words(gpu, tp, pp, dp, ep, attn_dp, prefill, decode)
    while True:
        res = _search(lambda rate, n, discard: simulate(
            model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, workload=_at_rate(w, rate, n), scheduler=run,
            dp=dp, engine=engine, ep=ep, attn_dp=attn_dp, slo=slo, eplb=bool(eplb), moe_act_dtype=moe_act_dtype,
            moe_a2a=moe_a2a, profile=profile, mode=mode, prefill=prefill, decode=decode, discard=discard),
            ana, slo, tol, n_requests, stationary=not replays(w))
        short = res.pop("short")
        # the run at the lowest rate that failed was a transient: the request count, not the SLO, ended the search.
        # "empty": no steady part for the requests in its batches; a short run underestimates them (its requests
        # live in the warm-up): twice as many asked for, up to the slots, and no fewer than near the analytical
        # capacity. "growing": its batches still filled (or a queue built) over its steady part: twice as many, up
        # to SETTLE_RUNS x that
        cap = STEADY_RUNS * slots * (SETTLE_RUNS if short is not None and short[2] == "growing" else 1)
        if short is None or n_requests >= cap:      # (no batch holds more than the slots)
            return {**out, **res, "n_requests": n_requests}
        need = max(near, STEADY_RUNS * min(slots, math.ceil(2 * short[1])) if short[2] == "empty" else
                   min(cap, 2 * n_requests))
        t = w.trace if isinstance(w.trace, Trace) and replays(w) else None      # a trace replayed whole
        if given or (t is not None and len(t) < need):
            why = (f"it holds {short[1]:.0f} requests in its batches there (up to {slots}), and a run of fewer than "
                   f"{STEADY_RUNS} x them is all warm-up (batches filling from empty, no queue) and drain, which "
                   f"would hold rates above its steady state") if short[2] == "empty" else (
                   f"over the run's steady part the requests in the system (queued or in a batch) still grew by "
                   f"{100 * short[3]:.0f} % of its arrivals (more than tol={tol:g}): its batches were still filling "
                   f"or a queue building, which a longer run would show")
            raise ValueError(f"capacity n_requests={n_requests} is too few to measure {words} at {short[0]:.3g} "
                             f"req/s: {why}; give n_requests >= {need}"
                             + (f" (trace {t.source} has {len(t)})" if t is not None else ""))
        n_requests = min(cap, max(need, 2 * n_requests))


def _balanced(adp_balance: Any, sched: Scheduler, prefill: Pool | None, decode: Pool | None
              ) -> tuple[Scheduler, Pool | None, Pool | None]:
    """``sched`` and the pools' own schedulers with TensorRT-LLM's attention-DP balance ``adp_balance`` (as
    ``Scheduler(adp_balance=)`` reads it); a scheduler that already sets another balance is refused, naming it."""
    balance = as_balance(adp_balance)

    def one(x: Scheduler, who: str) -> Scheduler:
        if x.adp_balance is not None and x.adp_balance != balance:
            raise ValueError(f"capacity adp_balance={adp_balance!r} and {who} adp_balance={x.adp_balance!r}: give "
                             f"one, or the same in both")
        return dataclasses.replace(x, adp_balance=balance)
    pools = [p if not isinstance(p, Pool) or p.scheduler is None else
             dataclasses.replace(p, scheduler=one(p.scheduler, f"the {role} pool's scheduler"))
             for role, p in (("prefill", prefill), ("decode", decode))]
    return one(sched, "scheduler"), pools[0], pools[1]


def _search(run: Any, ana: float, slo: SLO, tol: float, n: int, stationary: bool = True) -> dict[str, Any]:
    """Bisect the highest rate at which ``run(rate, n, discard)`` (simulated metrics; over the run's steady part
    with ``discard="steady"``) meets ``slo``, from the analytical ``ana``: capacity_req_s, n_simulations, metrics
    (at the capacity) and ``short``: (rate, requests in the batches, why, growth) when the lowest rate that fails
    does only because its run was a transient (a longer run may not hold it), else None: "empty", its run had no
    steady part and met the SLO whole; "growing", its steady part met the SLO while the requests in the system
    still grew by more than ``tol`` of its arrivals (`simulator.steady_growth`: batches still filling, or a queue
    building; checked for ``stationary`` arrivals, a rate or gamma process, not a trace's own, whose rate varies).
    A run is held only with a steady part that meets the SLO and, for stationary arrivals, keeps up with them."""
    runs: dict[float, dict[str, float]] = {}
    transient: dict[float, str] = {}    # rates met only by a transient: "empty" (no steady part) or "growing"
    sims = 0

    def held(rate: float) -> bool:
        nonlocal sims
        runs[rate] = m = run(rate, n, "steady")
        sims += 1
        verdict = steady_verdict(m, slo, tol, stationary=stationary)
        if verdict == "empty":      # also measured whole: an overload fails even so, a transient is marked
            sims += 1
            if meets(run(rate, n, 0), slo):
                transient[rate] = verdict
        elif verdict == "growing":  # met while the system still grew: not yet steady
            transient[rate] = verdict
        return verdict == "held"

    def done(cap: float, at: float, hi: float) -> dict[str, Any]:
        short = (hi, float(runs[hi]["in_flight"]), transient[hi], float(runs[hi]["steady_growth"])) \
            if hi in transient else None
        return {"capacity_req_s": cap, "n_simulations": sims, "metrics": runs[at], "short": short}

    # bracket [lo held, hi not held] around the analytical estimate, then bisect to tol
    start = ana if ana > 0 else 0.1
    lo, hi = start * 0.9, start * 1.1
    if held(lo):
        while held(hi):
            lo, hi = hi, hi * 1.25
            if hi > 1e6:
                break
    else:
        if not held(MIN_RATE):     # requests one at a time miss it too: no rate holds (one run, not ~40 halvings)
            return done(0.0, MIN_RATE, MIN_RATE)
        hi = lo
        lo = lo / 1.25
        while not held(lo):
            hi, lo = lo, lo / 1.25
            if lo < MIN_RATE:
                return done(0.0, hi, hi)
    while (hi - lo) / hi > tol:
        mid = math.sqrt(lo * hi)
        if held(mid):
            lo = mid
        else:
            hi = mid
    return done(lo, lo, hi)


def steady_slots(sm: ServingModel, d: Deployments, rate: float = _SATURATING_RATE) -> int:
    """Sequences the (one) deployment ``d`` holds in its batches over its aggregated or decode ranks at ``rate``
    requests/s (analytical, `ServingModel.evaluate`'s batch_size per rank x its ranks: replicas, or decode
    workers, x attention-DP ranks); by default at a saturating rate: its slots, the scheduler's max_batch_size
    or the KV cache, whichever binds."""
    batch = float(sm.evaluate(d, rate=max(rate, MIN_RATE))["batch_size"].iloc[0])
    ranks = (d.dp[0] - (d.prefill_replicas[0] if d.mode[0] == "disagg" else 0)) * d.attn_dp[0]
    return max(1, math.ceil(batch - 1e-9)) * int(ranks)


def deployment_words(gpu: Any, tp: int, pp: int, dp: int = 1, ep: int = 1, attn_dp: int = 1,
                     prefill: Pool | None = None, decode: Pool | None = None) -> str:
    """A deployment in words, its GPUs counted first: "8 x H200 (2 replicas of tp=4 pp=1)" (``dp`` aggregated
    replicas of tp x pp x attn_dp GPUs), or, given its pools (None fields taking ``gpu``, ``tp``, ``pp``, ``ep``,
    ``attn_dp``, as in `simulate`; a pool's own dtypes shown), "4 x H100 (1 worker of tp=4 pp=1) prefill + 8 x H200
    (2 workers of tp=4 pp=1) decode"."""
    def one(g: Any, t: int, e: int, a: int, depth: int, n: int, unit: str) -> str:
        knobs = f"tp={t} pp={depth}" + (f" attn_dp={a}" if a != 1 else "") + (f" ep={e}" if e != 1 else "")
        return f"{n * t * depth * a} x {_name(g, gpu=True)} ({n} {unit}{'s' if n != 1 else ''} of {knobs})"
    if prefill is None or decode is None:
        return one(gpu, tp, ep, attn_dp, pp, dp, "replica")

    def pool(p: Pool, role: str) -> str:
        shown = one(p.gpu if p.gpu is not None else gpu, p.tp or tp, p.ep or ep, p.attn_dp or attn_dp, p.pp or pp,
                    p.n_workers, "worker")
        dtypes = "".join(f" {k}={getattr(p, k)}" for k in ("weight_dtype", "act_dtype", "kv_dtype")
                         if getattr(p, k) is not None)
        return f"{shown}{dtypes} {role}"
    return f"{pool(prefill, 'prefill')} + {pool(decode, 'decode')}"


def _pool_knobs(model: Any, gpu: Any, tp: int, pp: int, ep: int, attn_dp: int, weight_dtype: str | None,
                act_dtype: str | None, kv_dtype: str | None, prefill: Any, decode: Any) -> dict[str, Any]:
    """The analytical model's knobs of a disaggregated deployment (`Deployments`: the decode pool in gpu / tp /
    pp / ep / attn_dp / dtypes, the prefill pool in prefill_*, dp the workers of both, prefill_replicas the prefill
    pool's), from `simulate`'s pools (None fields inherit capacity's arguments). Refuses, naming the pool, a pool
    that is not a `Pool`, a pool EP the inference model cannot run (`inference.resolve.check_ep`, with the valid
    ones) and a dtype the inference model does not know (`inference.resolve.dtype_codes`, with the valid ones)."""
    from ..inference.resolve import dtype_codes
    _check_pools(prefill, decode)
    knobs: dict[str, Any] = {}
    for role, pool in (("prefill", prefill), ("decode", decode)):
        if not isinstance(pool, Pool):
            raise ValueError(f"capacity {role}={pool!r:.80}: give a serving.Pool (gpu, tp, pp, ep, attn_dp, "
                             f"weight_dtype, act_dtype, kv_dtype, n_workers)")
        p_tp = pool.tp if pool.tp is not None else tp
        p_ep = pool.ep if pool.ep is not None else ep
        p_adp = pool.attn_dp if pool.attn_dp is not None else attn_dp
        _check_pool_parallel(model, role, p_tp, p_ep, p_adp)
        own = {"pp": pool.pp if pool.pp is not None else pp,
               "weight_dtype": pool.weight_dtype if pool.weight_dtype is not None else weight_dtype,
               "act_dtype": pool.act_dtype if pool.act_dtype is not None else act_dtype,
               "kv_dtype": pool.kv_dtype if pool.kv_dtype is not None else kv_dtype}
        for k in ("weight_dtype", "act_dtype", "kv_dtype"):
            try:
                dtype_codes(k, own[k], allow_none=True)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"capacity {role} pool: {exc}") from None
        g = _name(pool.gpu if pool.gpu is not None else gpu)
        if role == "prefill":
            knobs.update(prefill_gpu=g, prefill_tp=p_tp, prefill_ep=p_ep, prefill_attn_dp=p_adp,
                         prefill_replicas=pool.n_workers, **{"prefill_" + k: v for k, v in own.items()})
        else:
            knobs.update(gpu=g, tp=p_tp, ep=p_ep, attn_dp=p_adp, **own)
    return {**knobs, "mode": "disagg", "dp": prefill.n_workers + decode.n_workers}


#: the scheduler's knobs the analytical model holds once per deployment (`Deployments`; `Scheduler.of_knobs`' own
#: arguments): a disaggregated deployment's pools must agree on them
ANALYTICAL_KNOBS = tuple(inspect.signature(Scheduler.of_knobs).parameters)
#: the batch knobs the analytical model prices per pool of a disaggregated deployment (`Deployments`'
#: ``prefill_max_batch_size`` / ``prefill_max_num_tokens``: a prefill rank batches the prompts its own budget holds)
POOL_KNOBS = ("max_batch_size", "max_num_tokens")


def _pool_scheduler(sched: Scheduler, prefill: Pool, decode: Pool, engine: Any, fidelity: str, gpu: Any = None
                    ) -> tuple[Scheduler, list[str], dict[str, int]]:
    """The scheduler the analytical model prices a disaggregated deployment with, the knobs of
    `ANALYTICAL_KNOBS` it holds once per deployment in which the pools' schedulers differ, in words, and the
    prefill pool's own `POOL_KNOBS` (`Deployments.of`'s ``prefill_max_batch_size`` / ``prefill_max_num_tokens``).
    The simulations run each pool's own scheduler (``Pool(scheduler=)``, else capacity's ``sched``); the analytical
    model takes the decode pool's, whose batch and KV slots hold the steady state, and the prefill pool's batch
    knobs. Where the prefill pool's differs in another of those knobs, the analytical estimate (and its prefill pool
    rate) prices the prefill pool with the decode pool's, so it only starts the simulated search;
    ``fidelity="analytical"`` refuses it, naming the knobs.
    A pool policy the model does not model is refused at the analytical fidelity, as capacity's own is. Budgets a
    pool's scheduler leaves to the engine are its engine's on the pool's GPU (else `gpu`), `Scheduler.resolved`."""
    ps = (prefill.scheduler if prefill.scheduler is not None else sched).resolved(
        engine, prefill.gpu if prefill.gpu is not None else gpu)
    ds = (decode.scheduler if decode.scheduler is not None else sched).resolved(
        engine, decode.gpu if decode.gpu is not None else gpu)
    differ = [f"{k} (prefill {getattr(ps, k)!r}, decode {getattr(ds, k)!r})" for k in ANALYTICAL_KNOBS
              if k not in POOL_KNOBS and getattr(ps, k) != getattr(ds, k)]
    if fidelity == "analytical":
        if differ:
            raise ValueError(f"capacity pools' schedulers differ in {', '.join(differ)}: the analytical model holds "
                             f"one value of each for both pools; use fidelity='simulated' (dse capacity without "
                             f"--analytical: each pool runs its own scheduler) or give both pools the same")
        for role, s in (("prefill", ps), ("decode", ds)):
            if not s.models_policy(engine):
                raise ValueError(f"capacity {role} pool scheduler policy={s.policy!r}: the analytical model models "
                                 f"policy={Scheduler().policy_of(engine)!r} here (the engine's own); use "
                                 f"fidelity='simulated'")
    return ds, differ, {f"prefill_{k}": getattr(ps, k) for k in POOL_KNOBS}


def _name(x: Any, gpu: bool = False) -> Any:
    """A catalog record's name (the analytical model takes names); ``gpu``: a GPU's, an alias ("H100") by the
    catalog's name for it."""
    if gpu and isinstance(x, str):
        from ..catalog import gpu as catalog_gpu
        return catalog_gpu(x).name
    return getattr(x, "name", x)


def smallest_deployment(space: Any, objective: Any, rate: float, *, candidates: int = 20,
                        fidelity: str = "simulated") -> pd.Series:
    """The smallest deployment of ``space`` (fewest GPUs, then cheapest per token) that serves ``rate`` requests/s
    within the objective's SLO, confirmed in the simulator (``fidelity="simulated"``) or as the analytical model
    ranks it (``fidelity="analytical"``: the first configuration of that order, with its analytical metrics; no
    simulation).

    ``objective``: an ``objectives.llm_serving_objective`` (its model, SLO, lengths and arrival process; its rate
    is replaced by ``rate``). Every configuration of the (discrete) space is screened analytically at ``rate``;
    the feasible ones are simulated in order of (GPUs, USD per million tokens) until one meets the SLO, at most
    ``candidates`` of them. Returns that configuration with its simulated metrics; ValueError when none does.
    Equal GPUs and cost (at a fixed rate every deployment that keeps up costs the same per token) are ranked by
    where the numbers come from (measured profiles before the roofline, `inference.measured.BY_CERTAINTY`), then
    the quality proxy, then the headroom under the SLO.
    """
    from ..llm_serving import LLMServingObjective, llm_serving_objective

    if not isinstance(objective, LLMServingObjective):
        raise ValueError(f"objective must come from objectives.llm_serving_objective(), got {type(objective).__name__}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (0 < rate < math.inf):
        raise ValueError(f"rate={rate!r}: give a positive finite number of requests/s")
    _bounded(objective.slo, "smallest_deployment")
    if fidelity not in ("simulated", "analytical"):
        raise ValueError(f"fidelity={fidelity!r}: give 'simulated' or 'analytical'")
    w = objective.workload
    at = llm_serving_objective(objective.model, workload=_at_rate(w, float(rate), w.n_requests or objective.n_requests),
                               slo=objective.slo, prices=objective.prices, defaults=objective.defaults,
                               n_requests=objective.n_requests, profile=objective.profile)
    grid = space.grid()
    ana = at(grid)
    ok = (ana["fits"] == 1.0).to_numpy().copy()
    for metric, (_, bound) in objective.slo.constraints.items():
        ok &= ana[metric].to_numpy(float) <= bound
    ranked = np.flatnonzero(ok)
    if not len(ranked):
        raise ValueError(f"no configuration of the space meets {objective.slo} at {rate:g} requests/s in the analytical "
                         f"model; widen the space (more GPUs or GPU types)")
    certainty = {s: i for i, s in enumerate(BY_CERTAINTY)}
    src = np.array([certainty.get(str(s), len(certainty)) for s in ana["source"]], dtype=float) \
        if "source" in ana else np.zeros(len(ana))
    quality = -ana["quality"].to_numpy(float) if "quality" in ana else np.zeros(len(ana))
    load = np.max([ana[m].to_numpy(float) / b for m, (_, b) in objective.slo.constraints.items()], axis=0)
    # equal costs differ in their last bits (the same GPU-hours over the same tokens, summed in another order):
    # tied as the front ties them (`dse.pareto.tied`)
    usd = tied(ana["usd_per_mtok"].to_numpy(float)[:, None])[:, 0]
    keys = (load, quality, src, usd, ana["n_gpus"].to_numpy(float))
    order = ranked[np.lexsort(tuple(k[ranked] for k in keys))]
    if fidelity == "analytical":
        row, m = grid.iloc[order[0]], ana.iloc[order[0]]
        return pd.concat([row, m.drop(labels=[c for c in m.index if c in grid.columns])])
    sim = at.at_fidelity("simulated")
    for i in order[:candidates]:
        row = grid.iloc[[i]].reset_index(drop=True)
        m = sim(row).iloc[0]
        if m["fits"] == 1.0 and all(m[k] <= b for k, (_, b) in objective.slo.constraints.items()):
            return pd.concat([row.iloc[0], m.drop(labels=[c for c in m.index if c in row.columns])])
    raise ValueError(f"none of the {min(candidates, len(order))} smallest analytically feasible configurations meets "
                     f"{objective.slo} at {rate:g} requests/s in simulation; raise candidates= or widen the space")


__all__ = ["ANALYTICAL_KNOBS", "POOL_KNOBS", "capacity", "deployment_words", "meets", "smallest_deployment", "steady_judged", "steady_slots",
           "replays", "steady_run", "steady_verdict", "DEFAULT_TOL", "MIN_REQUESTS", "SETTLE_RUNS"]
