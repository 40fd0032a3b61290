"""`simulate`: serving metrics of a deployment under a workload, by discrete-event simulation of
iteration-level continuous batching with iteration times from the analytical model (`StepModel`).

`simulate` / `simulate_requests` build `objectives.inference.StepModel` replicas; `simulate_costs` runs the
same engine on any object with the `IterationCost` members (used for tests and what-if cost models).
"""
from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from objectives.inference.efficiency import Efficiency

from .engine import _Engine, _Group, _PriceRow, _Replica
from .handoff import (
    connector_engines,
    connector_gbs,
    connector_ms,
    first_token_forwards,
    front_end_passes,
    kv_notice_steps,
)
from .metrics import QUANTILES, itl_quantiles, summarize
from .scheduler import SLO, IterationCost, Pool, Scheduler
from .workload import Workload

if TYPE_CHECKING:
    from objectives.inference import StepModel

_MODES = ("agg", "disagg")
_ROUTING = ("least_loaded", "round_robin")

#: Host link (PCIe x16, GB/s per direction) used for swap preemption when the scheduler does not say:
#: PCIe Gen5 x16 = 64 GB/s (Hopper, Blackwell), Gen4 x16 = 32 GB/s (Ampere, Ada and older), per the PCI-SIG
#: signalling rates (32 and 16 GT/s x 16 lanes, 128b/130b encoding).
HOST_LINK_GBS = {"hopper": 64.0, "blackwell": 64.0}
HOST_LINK_GBS_DEFAULT = 32.0


@dataclass(frozen=True)
class PoolCosts:
    """A pool of identical replicas for `simulate_costs`: their iteration cost, count and scheduler."""

    cost: IterationCost
    n_workers: int = 1
    scheduler: Scheduler | None = None
    host_link_gbs: float = HOST_LINK_GBS_DEFAULT
    attn_dp: int = 1
    """Scheduling ranks per model replica: each run of ``attn_dp`` consecutive workers is one replica's
    attention-DP ranks, an iteration priced by ``cost.busy_ranks(ranks holding work)`` where the cost has it
    (`StepModel.busy_ranks`), the ranks stepping in lockstep unless the cost's ``steps_in_lockstep`` is False
    (`_couple_ranks`); n_workers must be a multiple of it."""

    def __post_init__(self) -> None:
        if isinstance(self.n_workers, bool) or not isinstance(self.n_workers, int) or self.n_workers < 1:
            raise ValueError(f"pool n_workers={self.n_workers!r}: a pool needs an integer >= 1 workers")
        if (isinstance(self.attn_dp, bool) or not isinstance(self.attn_dp, (int, np.integer)) or self.attn_dp < 1
                or self.n_workers % self.attn_dp):
            raise ValueError(f"pool attn_dp={self.attn_dp!r}: must be an integer >= 1 dividing n_workers="
                             f"{self.n_workers} (the scheduling ranks of each replica)")


#: iteration prices a pool keeps (`_couple_ranks`: ~200 bytes each) before it starts over
PRICE_MEMO_ENTRIES = 1 << 16


def _couple_ranks(reps: list[_Replica], pool: PoolCosts) -> None:
    """The attention-DP ranks of each replica of `pool` (consecutive runs of ``pool.attn_dp`` in `reps`) share the
    routed experts: an iteration of a rank is priced with the ranks that hold work when it starts (requests
    assigned and not gone, `_Replica.load`; the rank itself always counts), through
    ``pool.cost.busy_ranks(busy)`` (`StepModel.busy_ranks`: only the busy ranks' tokens reach the experts). All
    ranks busy: the cost's own `time_ms`, as before. A decode segment keeps the count it started with (a rank
    whose neighbour turns busy or idle mid-segment is repriced at its next unit). The ranks of a replica step in
    lockstep (`engine._Group`: a step lasts as long as the slowest rank's) unless the cost says its ranks do not
    meet at MoE layers (``steps_in_lockstep`` False: `StepModel` of a dense model; a cost without the attribute
    steps in lockstep). In lockstep a rank's iteration is priced with the tokens the group's other ranks put
    through the experts in the same step, X (`_Group.step_ms`): between its price alone (one busy rank) at X = 0
    and its price with b busy neighbours at X = b x its own tokens (the aligned price above), linearly in X, and
    never above the latter; the step lasts the slowest rank's. Costs without ``busy_ranks`` keep their own price;
    pools without attention DP are left as they are.

    The pool's prices are kept by (busy count, iteration) (``time_ms`` is a function of its arguments): a group
    reprices its ranks at every step, and the segment it plans ends at the iteration its last one ended at, so
    most prices recur (the same floats, not recomputed)."""
    adp = int(pool.attn_dp)
    if adp == 1:
        return
    groups = []
    if getattr(pool.cost, "steps_in_lockstep", True):
        groups = [_Group(reps[0].eng, reps[g:g + adp]) for g in range(0, len(reps), adp)]
    busy_ranks = getattr(pool.cost, "busy_ranks", None)
    if busy_ranks is None:
        return
    # index: busy ranks - 1; a count is prepared when first met (`busy_ranks`), all ranks busy is the cost itself
    by_busy: list[Any] = [None] * (adp - 1) + [pool.cost.time_ms]
    memo: dict[tuple[int, float, float, float, float], float] = {}

    def at(b: int, T: float, A: float, D: float, K: float) -> float:
        """time_ms of a rank when it and b others hold work (T, A, D, K: `IterationCost.time_ms`)."""
        key = (b, T, A, D, K)
        t = memo.get(key)
        if t is None:
            f = by_busy[b]
            if f is None:
                f = by_busy[b] = busy_ranks(b + 1).time_ms
            if len(memo) >= PRICE_MEMO_ENTRIES:
                memo.clear()
            t = memo[key] = f(T, A, D, K)
        return t

    def priced(others: list[_Replica]) -> Any:
        def tm(T: float, A: float, D: float, K: float) -> float:
            b = 0
            for r in others:
                if r.load > 0:
                    b += 1
            return at(b, T, A, D, K)
        return tm

    def in_step(ranks: list[_Replica]) -> Any:
        # a rank's price with its b busy neighbours' tokens at the experts (`priced`) presumes each of them sends
        # as many as it does; when they send X in all, fewer, it moves towards its price alone, linearly in X
        def step_ms(rows: Sequence[_PriceRow]) -> list[float]:
            busy = 0                   # the group's ranks that hold work (their loads stay put while it prices)
            for r in ranks:
                if r.load > 0:
                    busy += 1
            out = []
            for r, T, A, D, K, X in rows:
                b = busy - 1 if r.load > 0 else busy
                t_b = at(b, T, A, D, K)
                x = T + D
                if b == 0 or not x > 0 or X >= b * x:
                    out.append(t_b)
                    continue
                t_1 = at(0, T, A, D, K)
                out.append(t_1 + (t_b - t_1) * (X / (b * x)))
            return out
        return step_ms

    for g in range(0, len(reps), adp):
        group = reps[g:g + adp]
        for rep in group:
            rep.tm = priced([r for r in group if r is not rep])
    for grp in groups:
        grp.step_ms = in_step(grp.ranks)


def _check_fits(inp: np.ndarray, need: np.ndarray, rep: _Replica, what: str) -> None:
    """Every request's `need` tokens of context (and what its KV layout holds beyond them) fit one replica."""
    need = np.asarray(need, dtype=np.int64)
    extra = np.zeros_like(need) if rep.xb is None else np.asarray(rep.xb, dtype=np.int64)
    bad = np.flatnonzero(-(-(need + 1) // rep.B) + extra > rep.cap)
    if len(bad):
        i = int(bad[0])
        more = f" (and {int(extra[i]) * rep.B} more for its window-bounded or linear layers)" if extra[i] else ""
        raise ValueError(f"request {i} ({int(inp[i])} input tokens) needs {int(need[i]) + 1} KV tokens{more} but a "
                         f"{what} replica holds {rep.cap * rep.B} (kv_capacity_tokens); use shorter requests, more "
                         f"memory (tp, kv_dtype) or Scheduler(kv_capacity_tokens=...)")


def _run(workload: Workload, agg: PoolCosts | None, prefill: PoolCosts | None, decode: PoolCosts | None,
         scheduler: Scheduler | None, kv_ms_per_token: float, routing: str,
         skip: bool = True, kv_fixed_ms: float = 0.0) -> tuple[_Engine, list[_Replica]]:
    if not isinstance(workload, Workload):
        raise ValueError(f"workload must be a serving.Workload, got {type(workload).__name__}")
    if routing not in _ROUTING:
        raise ValueError(f"routing={routing!r}: valid values are {', '.join(_ROUTING)}")
    sched = scheduler if scheduler is not None else Scheduler()
    req = workload.requests()
    arr_ms = None if req.arrival_s is None else req.arrival_s * 1e3
    eng = _Engine(req.input_tokens, req.output_tokens, arr_ms, workload.concurrency, routing, skip)
    if req.hash_ids is not None:          # prompt hash blocks: prefix caching where a scheduler enables it
        eng.hash_ids, eng.hash_off, eng.block_tokens = req.hash_ids, req.hash_offsets, req.block_tokens
    reps: list[_Replica] = []
    total = req.input_tokens + req.output_tokens
    if agg is not None:
        s = agg.scheduler or sched
        for i in range(agg.n_workers):
            reps.append(_Replica(eng, i, "agg", agg.cost, s, agg.host_link_gbs))
        _couple_ranks(reps, agg)
        eng.front = reps
        _check_fits(req.input_tokens, total, reps[0], "serving")
    else:
        assert prefill is not None and decode is not None
        ps, ds = prefill.scheduler or sched, decode.scheduler or sched
        front = [_Replica(eng, i, "prefill", prefill.cost, ps, prefill.host_link_gbs)
                 for i in range(prefill.n_workers)]
        back = [_Replica(eng, prefill.n_workers + i, "decode", decode.cost, ds, decode.host_link_gbs)
                for i in range(decode.n_workers)]
        _couple_ranks(front, prefill)
        _couple_ranks(back, decode)
        eng.front, eng.back = front, back
        # the deployment's engine (the decode pool's, else the prefill pool's: `connector_engines`) sends the
        # prefill's token as its decode worker admits the request, or after the iteration that samples it
        kv_engine = connector_engines([getattr(prefill.cost, "engine", None)], [getattr(decode.cost, "engine", None)])
        at_admit = first_token_forwards(kv_engine)[0] == 0.0
        # ... and a busy decode worker's scheduler learns of a finished KV read some steps after the boundary that
        # sees it (`kv_notice_steps`: vLLM, two more where its decode pool forms the next step ahead)
        ahead = float(ds.overlaps(decode.cost, "decode") and back[0].pp <= 1)
        notice = int(kv_notice_steps(kv_engine, ahead)[0])
        for rep in back:
            rep.first_at_admit = bool(at_admit)
            rep.notice = notice
        eng.kv_ms_per_tok = kv_ms_per_token
        eng.kv_fixed_ms = kv_fixed_ms
        reps = front + back
        _check_fits(req.input_tokens, req.input_tokens, front[0], "prefill")
        _check_fits(req.input_tokens, total, back[0], "decode")
    if eng.concurrency is not None:   # a closed loop's client sends its next request once it has read the last
        eng.reads = _ClientReads(eng, *_host_delay(eng, reps))
    eng.run()
    return eng, reps


def _host_delay(eng: _Engine, reps: list[_Replica] | None) -> tuple[float, float, int]:
    """The host time that delays a request's tokens after the engine's schedule (`_frame`): (s of every request,
    ms per stream its API server handles as its first token goes out, the ranks an API server fronts)."""
    # the front-end's host time before the engine schedules a request (API server, tokenization): it delays the
    # request's first token and its end, not the GPUs; a disaggregated request pays it once per pass of the
    # engine's P/D front end (`serving.handoff`). The API server's hold in front of the scheduler
    # (`Scheduler.frontend_for`) is a part of it, already in the engine's times
    if not reps:
        return 0.0, 0.0, 1
    host_s = float(getattr(reps[0].cost, "ttft_host_ms", 0.0)) / 1e3
    if eng.back:
        host_s *= float(front_end_passes([getattr(reps[0].cost, "engine", None)])[0])
    host_s = max(host_s - reps[0].fe_ms / 1e3, 0.0)
    # ... and the streams its API server handles as the first token goes out (`inference.estimate.host_ttft_s`;
    # aggregated only, as the closed form prices it), delaying the request's tokens alike
    stream_ms = float(getattr(reps[0].cost, "stream_ms", 0.0)) if not eng.back else 0.0
    # (one API server a rank, vLLM, or a replica of attn_dp consecutive ranks: `profiles.api_server_ranks`)
    return host_s, stream_ms, int(getattr(reps[0].cost, "stream_ranks", 1))


class _ClientReads:
    """A closed-loop client's wait (ms) after its request's GPU finish before it has read the last token and sends
    its next request (`_Engine.reads`): the host delay `_frame` gives the request's tokens, the streams at its
    first token (`streams_at_first`) counted as the run goes (the requests of its API server finished, kept
    sorted, and those still running)."""

    def __init__(self, eng: _Engine, host_s: float, stream_ms: float, fronted: int) -> None:
        self.eng, self.host_ms, self.stream_ms, self.fronted = eng, host_s * 1e3, stream_ms, fronted
        self.firsts: dict[int, list[float]] = {}    # per API server, its finished requests' first tokens (s)
        self.ends: dict[int, list[float]] = {}      # ... and their finishes (s)
        self.running: set[int] = set()              # requests sent and not finished
        self.sent = 0

    def __call__(self, rid: int, t: float) -> float:
        if not self.stream_ms > 0.0:
            return self.host_ms
        reqs, k = self.eng.reqs, self.fronted
        self.running.update(range(self.sent, self.eng.next_req))
        self.sent = self.eng.next_req
        self.running.discard(rid)
        r = reqs[rid]
        g, f = r.rep // k, r.first / 1e3        # in `_frame`'s units, so the counts agree to the last bit
        firsts, ends = self.firsts.setdefault(g, []), self.ends.setdefault(g, [])
        bisect.insort(firsts, f)
        bisect.insort(ends, t / 1e3)
        n = bisect.bisect_right(firsts, f) - bisect.bisect_right(ends, f)
        for j in self.running:    # a request not yet at its replica has rep -1, one before its first token NaN
            x = reqs[j]
            if x.rep >= 0 and x.rep // k == g and x.first / 1e3 <= f:
                n += 1
        return self.host_ms + self.stream_ms * n


def _frame(eng: _Engine, reps: list[_Replica] | None = None) -> pd.DataFrame:
    r = eng.reqs
    host_s, stream_ms, fronted = _host_delay(eng, reps)
    arrival = np.array([x.arrival for x in r]) / 1e3
    first = np.array([x.first for x in r]) / 1e3
    finish = np.array([x.finish for x in r]) / 1e3
    rep = np.array([x.rep for x in r], dtype=np.int64)
    late: float | np.ndarray = host_s
    if stream_ms > 0.0:
        late = host_s + stream_ms / 1e3 * streams_at_first(first, finish, rep // fronted)
    first = first + late
    finish = finish + late
    inp = np.array([x.inp for x in r], dtype=np.int64)
    out = np.array([x.out for x in r], dtype=np.int64)
    ttft = (first - arrival) * 1e3
    e2e = (finish - arrival) * 1e3
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(out > 1, (e2e - ttft) / (out - 1), np.nan)
    return pd.DataFrame({
        "arrival_s": arrival, "first_token_s": first, "finish_s": finish,
        "ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": e2e,
        "input_tokens": inp, "output_tokens": out,
        "tokens_emitted": np.array([x.gen for x in r], dtype=np.int64),
        "preemptions": np.array([x.npre for x in r], dtype=np.int64),
        "replica": rep,
        "prefill_replica": np.array([x.prep for x in r], dtype=np.int64),
        "kv_transfer_ms": np.array([x.xfer_ms for x in r]),
    })


def streams_at_first(first: np.ndarray, finish: np.ndarray, replica: np.ndarray) -> np.ndarray:
    """For each request, the requests of its group (`replica`: the API server's, `_frame`) streaming (first token
    out, not finished) as its first token goes out, itself included (times in any one unit; a request without a
    first token, NaN, counts 0). The closed form counts every running sequence, prefilling ones too
    (`inference.estimate.host_ttft_s`)."""
    out = np.zeros(len(first))
    ok = np.isfinite(first)
    for rep in np.unique(replica[ok]):
        sel = ok & (replica == rep)
        f, e = first[sel], finish[sel]
        out[sel] = (np.searchsorted(np.sort(f), f, side="right")
                    - np.searchsorted(np.sort(e[np.isfinite(e)]), f, side="right"))
    return out


#: a run's steady part, in requests in its batches (`in_flight`): the first and the last that many to arrive are its
#: warm-up and drain, and a run of fewer than this many times them has no steady part (`steady_mask`)
STEADY_RUNS = 3


def in_flight(arrival_s: np.ndarray, first_s: np.ndarray, finish_s: np.ndarray) -> float:
    """Requests in the batches over a run, on average, by Little's law: the arrival rate (requests / s over the
    arrivals' span) x the mean time from first token to finish (s; the wait for a slot and the prefill are the
    TTFT's, so a queue, which grows with the run, does not count). inf for requests that all arrive at once, 0
    for fewer than two."""
    n = len(arrival_s)
    if n < 2:
        return 0.0
    span = float(np.max(arrival_s) - np.min(arrival_s))
    if not span > 0:
        return math.inf
    return (n - 1) / span * float(np.mean(finish_s - first_s))


#: share of a run's steady part, at each of its ends, over which `steady_growth` averages the requests in the system
GROWTH_EDGE = 0.1

#: standard deviations of the requests in the system over a steady part within which `steady_growth` reads no growth
#: (a stationary system's own fluctuation; a steady climb from one end to the other is ~3.5 of them)
GROWTH_NOISE = 2.0


def steady_growth(arrival_s: np.ndarray, finish_s: np.ndarray, keep: np.ndarray | None) -> float:
    """How much the requests in the system (arrived, not finished: queued or in a batch) grew over a run's steady
    part (``keep``, `steady_mask`; None: the whole run), as a fraction of the requests that arrived in it: the
    number in the system at the arrivals of the part's last `GROWTH_EDGE`, on average, less that at its first
    (averaged to smooth the arrivals' noise), over the part's arrivals; 0 where that rise is within `GROWTH_NOISE`
    standard deviations of the number over the part (a stationary system's own fluctuation). A deployment serving
    its rate finishes what arrives (0); one still filling its batches, or falling behind (a queue), does not: the
    growth is the share of the arrivals it did not finish, 1 - served / offered rate. NaN for an empty part."""
    o = np.argsort(arrival_s, kind="stable")
    a = np.asarray(arrival_s, dtype=float)[o]
    sel = np.ones(len(a), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)[o]
    idx = np.flatnonzero(sel)
    if len(idx) < 2:
        return math.nan
    # in the system at each arrival: the arrivals before it (itself included) less the requests finished by then
    n_sys = idx + 1 - np.searchsorted(np.sort(np.asarray(finish_s, dtype=float)), a[idx], side="right")
    k = max(1, int(round(GROWTH_EDGE * len(idx))))
    rise = float(n_sys[-k:].mean() - n_sys[:k].mean())
    return rise / (len(idx) - k) if rise > GROWTH_NOISE * float(n_sys.std()) else 0.0


def steady_mask(arrival_s: np.ndarray, first_s: np.ndarray, finish_s: np.ndarray,
                discard: int | str) -> tuple[np.ndarray | None, float]:
    """The requests of a run's steady part and the requests left out at each end: all but the first and the last
    ``discard`` to arrive (the warm-up, batches filling from empty, and the drain after the last arrival). None
    for ``discard`` 0 (all). ``discard="steady"``: the run's requests in its batches (`in_flight`, rounded up), none
    kept when the run holds fewer than `STEADY_RUNS` x them (it never leaves its warm-up and drain)."""
    n = len(arrival_s)
    if discard == "steady":
        lf = in_flight(arrival_s, first_s, finish_s)
        discard = n if STEADY_RUNS * math.ceil(lf) > n else math.ceil(lf)
    elif isinstance(discard, bool) or not isinstance(discard, (int, np.integer)) or discard < 0:
        raise ValueError(f"discard={discard!r}: give an integer >= 0 (requests left out at each end of the run) or "
                         f"'steady' (the run's requests in its batches)")
    elif 2 * discard >= n > 0:
        raise ValueError(f"discard={discard} at each end of a run of {n} requests leaves none to measure: give "
                         f"more than {2 * discard} requests")
    if discard == 0:
        return None, 0.0
    keep = np.zeros(n, dtype=bool)
    keep[np.argsort(arrival_s, kind="stable")[discard:max(n - discard, discard)]] = True
    return keep, float(discard)


def _as_slo(slo: SLO | Mapping[str, Any] | None) -> SLO | None:
    """``slo`` as an `SLO` (a mapping read by `SLO.parse`, as `capacity` and the objective take it; None stays);
    anything else refused with ValueError."""
    if slo is None:
        return None
    try:
        return SLO.parse(slo)
    except TypeError:
        raise ValueError(f"slo must be a serving.SLO, a mapping such as {{'ttft_ms_p99': 2000}} or None, got "
                         f"{slo!r:.100}") from None


def _metrics(eng: _Engine, reps: list[_Replica], slo: SLO | None, discard: int | str = 0) -> dict[str, float]:
    """The run's metrics (`summarize`); ``slo``: already read (`_as_slo`: its callers check it before the run)."""
    df = _frame(eng, reps)
    times = (df["arrival_s"].to_numpy(), df["first_token_s"].to_numpy(), df["finish_s"].to_numpy())
    steady, _ = steady_mask(*times, discard)
    itl_q = itl_quantiles(eng.iters, eng.segs, eng.gaps, [q for _, q in QUANTILES])
    m = summarize(df, itl_q=itl_q,
                  busy_gpu_ms=sum(r.busy_ms * r.n_gpus for r in reps),
                  n_gpus=sum(r.n_gpus for r in reps), kv_area=sum(r.kv_area for r in reps),
                  n_replicas=len(reps), kv_max=max(r.kv_max for r in reps), slo=slo,
                  prefix_cache_hit_rate=_prefix_hit_rate(reps), steady=steady)
    if discard != 0:        # the steady part's size, and the requests in the batches it was cut by
        m["steady_requests"] = int(len(df) if steady is None else steady.sum())
        m["in_flight"] = in_flight(*times)
        m["steady_growth"] = steady_growth(times[0], times[2], steady) if m["steady_requests"] else math.nan
    return m


def _prefix_hit_rate(reps: list[_Replica]) -> float:
    """Cached / looked-up prompt tokens over the replicas with a prefix cache (NaN when none has one)."""
    q = sum(r.pc_query for r in reps if r.pc is not None)
    return sum(r.pc_hit for r in reps) / q if q else float("nan")


def simulate_costs(cost: IterationCost | None = None, *, workload: Workload, scheduler: Scheduler | None = None,
                   mode: str = "agg", dp: int = 1, prefill: PoolCosts | None = None, decode: PoolCosts | None = None,
                   slo: SLO | None = None, kv_link_gbs: float = 50.0, host_link_gbs: float = HOST_LINK_GBS_DEFAULT,
                   routing: str = "least_loaded", per_request: bool = False,
                   attn_dp: int = 1) -> dict[str, float] | pd.DataFrame:
    """Run the simulator on explicit iteration-cost objects (see `IterationCost`).

    agg: ``dp`` replicas of ``cost``, each of ``attn_dp`` scheduling ranks (`PoolCosts.attn_dp`). disagg:
    ``prefill`` and ``decode`` `PoolCosts`, KV moved over ``kv_link_gbs`` (GB/s). Returns the metric dict of `simulate`, or the per-request frame if ``per_request``.
    """
    _check_mode(mode, dp, prefill, decode)
    slo = _as_slo(slo)
    if mode == "agg":
        if cost is None:
            raise ValueError("mode='agg' needs an iteration cost")
        check_replicas(dp, attn_dp)
        sched = scheduler or Scheduler()
        agg = PoolCosts(cost, dp * attn_dp, sched, sched.host_link_gbs or host_link_gbs, attn_dp)
        eng, reps = _run(workload, agg, None, None, scheduler, 0.0, routing)
    else:
        _check_pools(prefill, decode)
        assert prefill is not None  # _check_pools refuses a missing pool
        if not kv_link_gbs > 0:
            raise ValueError(f"kv_link_gbs={kv_link_gbs!r}: must be > 0 GB/s")
        kv_ms = float(prefill.cost.kv_bytes_per_token) / (kv_link_gbs * 1e9) * 1e3
        eng, reps = _run(workload, None, prefill, decode, scheduler, kv_ms, routing)
    if per_request:
        return _frame(eng, reps)
    return _metrics(eng, reps, slo)


def check_replicas(dp: Any, attn_dp: Any = 1) -> None:
    """Refuse an aggregated deployment's ``dp`` (replicas) or ``attn_dp`` (attention data-parallel ranks per
    replica) that is not a whole number >= 1, naming it."""
    if isinstance(dp, bool) or not isinstance(dp, int) or dp < 1:
        raise ValueError(f"dp={dp!r}: must be an integer >= 1 (replicas)")
    if isinstance(attn_dp, bool) or not isinstance(attn_dp, int) or attn_dp < 1:
        raise ValueError(f"attn_dp={attn_dp!r}: must be an integer >= 1 (attention data-parallel ranks)")


def _check_mode(mode: str, dp: Any, prefill: Any, decode: Any) -> None:
    """Refuse arguments the mode would ignore: pools in aggregated mode, replicas ``dp`` in disaggregated mode
    (its workers are each pool's ``n_workers``)."""
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r}: valid modes are {', '.join(_MODES)}")
    if mode == "agg" and (prefill is not None or decode is not None):
        raise ValueError(f"prefill={prefill!r} / decode={decode!r}: pools of their own are for mode='disagg' (an "
                         f"aggregated run of dp replicas would ignore them); pass mode='disagg' or drop them")
    if mode == "disagg" and not (isinstance(dp, int) and not isinstance(dp, bool) and dp == 1):
        raise ValueError(f"dp={dp!r}: a disaggregated deployment counts its workers per pool; give "
                         f"prefill=serving.Pool(n_workers=...) and decode=serving.Pool(n_workers=...) and leave dp=1")


def pools_gpu(gpu: Any, mode: str, prefill: Any, decode: Any) -> Any:
    """The deployment's GPU type, where ``gpu`` is None and a disaggregated deployment's pools name their own
    (`Pool.gpu`, each pool's): the decode pool's (what a pool naming none would inherit, and the deployment's
    label); ``gpu`` itself where given. ValueError where a pool, or the aggregated deployment, is left without
    one."""
    if gpu is not None:
        return gpu
    if mode != "disagg":
        raise ValueError("gpu=None: give the deployment's GPU type (gpu='H100', ...); only a disaggregated "
                         "deployment's pools may name theirs instead (mode='disagg', serving.Pool(gpu=...))")
    bare = [role for role, pool in (("prefill", prefill), ("decode", decode))
            if isinstance(pool, Pool) and pool.gpu is None]
    if bare:
        raise ValueError(f"gpu=None: the {' and '.join(bare)} pool{'s name' if len(bare) > 1 else ' names'} no GPU "
                         f"type; give gpu= (the pools' default) or serving.Pool(gpu=...) for "
                         f"{'each' if len(bare) > 1 else 'it'}")
    return decode.gpu if isinstance(decode, Pool) else gpu


def _check_pools(prefill: Any, decode: Any) -> None:
    if decode is None or getattr(decode, "n_workers", 0) < 1:
        raise ValueError(f"mode='disagg' needs decode workers: decode={decode!r}; pass decode=serving.Pool("
                         f"n_workers>=1, ...)")
    if prefill is None or getattr(prefill, "n_workers", 0) < 1:
        raise ValueError(f"mode='disagg' needs prefill workers: prefill={prefill!r}; pass prefill=serving.Pool("
                         f"n_workers>=1, ...)")


def _gpu_record(name: str) -> Any:
    from objectives import catalog
    return catalog.gpu(name)


def _host_link(sched: Scheduler, gpu_name: str) -> float:
    if sched.host_link_gbs is not None:
        return sched.host_link_gbs
    g = _gpu_record(gpu_name)
    if g.link_type == "pcie":
        return float(g.link_bw_gbs)
    return HOST_LINK_GBS.get(g.family, HOST_LINK_GBS_DEFAULT)


def _step_model(model: Any, gpu: Any, tp: int, pp: int, weight_dtype: str | None, act_dtype: str | None,
                kv_dtype: str | None, sched: Scheduler, engine: Any = None, ep: int = 1,
                attn_dp: int = 1, efficiency: Any = None, eplb: bool = False,
                moe_act_dtype: str | None = None, moe_a2a: str | None = None, speculative: Any = None) -> StepModel:
    from objectives.inference import StepModel
    # the scheduler's memory setting decides whether the replica fits, as it sizes its cache (`Scheduler.kv_tokens`)
    assert sched.max_num_tokens is not None, "_step_model takes a scheduler resolved for its engine"
    return StepModel(model, gpu, tp=tp, pp=pp, weight_dtype=weight_dtype, act_dtype=act_dtype, kv_dtype=kv_dtype,
                     max_num_tokens=sched.max_num_tokens, engine=engine, ep=ep, attn_dp=attn_dp,
                     efficiency=efficiency, eplb=eplb, moe_act_dtype=moe_act_dtype, moe_a2a=moe_a2a,
                     memory_setting=sched.gpu_memory_utilization, speculative=speculative)


def check_context(model: Any, workload: Workload, engine: Any = None) -> None:
    """ValueError where ``engine`` (a name; None: the default vLLM) refuses ``workload`` on ``model`` (a catalog
    name or `Model`): its longest request exceeds the model's context (`Workload.exceeds_context`, the objective's
    check; TensorRT-LLM serves past it)."""
    from objectives.catalog import Model
    from objectives.catalog import model as model_record
    if not isinstance(workload, Workload):
        raise ValueError(f"workload must be a serving.Workload, got {type(workload).__name__}")
    if (refusal := workload.exceeds_context(model if isinstance(model, Model) else model_record(model),
                                            engine)) is not None:
        raise ValueError(refusal)


def _check_pool_parallel(model: Any, role: str, tp: int, ep: int, attn_dp: int) -> None:
    """A pool's EP / attention DP the step model can run, refused with the pool named: whole numbers, and the
    inference model's expert-parallel rule (`inference.resolve.check_ep`, the one StepModel applies)."""
    from objectives.inference.resolve import check_ep
    for name, v in (("ep", ep), ("attn_dp", attn_dp)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{role} pool {name}={v!r}: must be an integer >= 1")
    check_ep(model, int(ep), int(tp), int(attn_dp), who=f"{role} pool ")


def _check_balance(pools: list[tuple[Scheduler, int]]) -> None:
    """Refuse TensorRT-LLM's attention-DP balance (``Scheduler.adp_balance``) where no pool (scheduler, attention-DP
    ranks per replica) runs attention DP: it balances the prompts of a replica's ranks, and would change nothing."""
    if any(s.adp_balance is not None for s, _ in pools) and all(int(a) == 1 for _, a in pools):
        raise ValueError("Scheduler adp_balance balances the prompts of a replica's attention-DP ranks: no pool runs "
                         "attention DP (attn_dp=1); give attn_dp > 1 or drop adp_balance")


def _build(model: Any, gpu: Any, tp: int, pp: int, weight_dtype: str | None, act_dtype: str | None, kv_dtype: str | None,
           workload: Workload, scheduler: Scheduler | None, mode: str, dp: int, prefill: Pool | None,
           decode: Pool | None, kv_link_gbs: float | None, routing: str, engine: Any = None,
           ep: int = 1, attn_dp: int = 1, profile: Any = None,
           eplb: bool = False, moe_act_dtype: str | None = None,
           moe_a2a: str | None = None, speculative: Any = None) -> tuple[_Engine, list[_Replica]]:
    _check_mode(mode, dp, prefill, decode)
    gpu = pools_gpu(gpu, mode, prefill, decode)
    check_context(model, workload, engine)
    eff = None
    if isinstance(profile, Efficiency):   # factors in hand (a calibration's candidate fit)
        eff = profile
    elif profile is not None:  # a calibrated profile (`dse calibrate`): its factors over the shipped fit
        from objectives.calibration.calibrate import load_profile
        eff = load_profile(profile)
    sched = scheduler if scheduler is not None else Scheduler()
    if not isinstance(sched, Scheduler):
        raise ValueError(f"scheduler must be a serving.Scheduler, got {type(sched).__name__}")
    if mode == "agg":
        check_replicas(dp, attn_dp)
        _check_balance([(sched, attn_dp)])
        sm = _step_model(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, sched.resolved(engine, gpu), engine,
                         ep, attn_dp, eff, eplb, moe_act_dtype, moe_a2a, speculative)
        sched = sched.for_cost(sm)   # budgets left to the engine: its own (SGLang's max sequences by its KV pool)
        # each attention-DP rank schedules its own batch (its StepModel prices the shared experts with the ranks
        # that hold work: `_couple_ranks`)
        agg = PoolCosts(sm, dp * attn_dp, sched, _host_link(sched, sm.gpu_name), attn_dp)
        return _run(workload, agg, None, None, sched, 0.0, routing)
    _check_pools(prefill, decode)
    built: dict[str, tuple[PoolCosts, StepModel]] = {}
    # the decode pool first: a prefill pool naming no KV dtype stores the decode pool's as resolved (the KV moves
    # between them as stored: one dtype for both, `analytical.kv_dtype_mismatch`)
    for role, pool in (("decode", decode), ("prefill", prefill)):
        if not isinstance(pool, Pool):
            raise ValueError(f"disagg pools must be serving.Pool, got {pool!r}")
        own = pool.scheduler or sched
        ps = own.resolved(engine, pool.gpu if pool.gpu is not None else gpu)
        # None fields inherit simulate's arguments (ep and attn_dp too)
        p_ep = pool.ep if pool.ep is not None else ep
        p_adp = pool.attn_dp if pool.attn_dp is not None else attn_dp
        p_tp = pool.tp or tp
        _check_pool_parallel(model, role, p_tp, p_ep, p_adp)
        p_kv = pool.kv_dtype or kv_dtype
        if role == "prefill" and p_kv is None:
            p_kv = built["decode"][1].kv_dtype
        sm = _step_model(model, pool.gpu if pool.gpu is not None else gpu, p_tp, pool.pp or pp,
                         pool.weight_dtype or weight_dtype, pool.act_dtype or act_dtype, p_kv,
                         ps, engine, p_ep, p_adp, eff, eplb, moe_act_dtype, moe_a2a,
                         speculative)   # the drafts where the decodes run; the draft layer's prefill of the prompts
        ps = own.for_cost(sm)   # budgets left to the engine: its own (SGLang's max sequences by its KV pool)
        if role == "prefill" and sm.kv_dtype != built["decode"][1].kv_dtype:
            from .analytical import kv_dtype_mismatch
            raise ValueError(kv_dtype_mismatch(sm.kv_dtype, built["decode"][1].kv_dtype))
        # each attention-DP rank of a worker schedules its own batch (as in agg): n_workers x attn_dp ranks
        if p_adp > 1:
            pool = dataclasses.replace(pool, n_workers=pool.n_workers * p_adp)
        built[role] = (PoolCosts(sm, pool.n_workers, ps, _host_link(ps, sm.gpu_name), p_adp), sm)
    (pc, psm), (dc, dsm) = built["prefill"], built["decode"]   # the pools' costs and step models
    _check_balance([(c.scheduler or sched, c.attn_dp) for c in (pc, dc)])
    if kv_link_gbs is None:  # the link between the pools' GPUs: one scale-up domain, else the scale-out network
        from objectives.inference.comm import kv_link_missing, kv_transfer_gbs
        from objectives.inference.core import default_eff
        total = pc.n_workers * pc.cost.n_gpus + dc.n_workers * dc.cost.n_gpus
        kv_link_gbs = float(kv_transfer_gbs(psm.gpu_name, psm.tp, dsm.gpu_name, dsm.tp, total))
        if not kv_link_gbs > 0:
            raise ValueError(f"disaggregated pools of {total} GPUs: {kv_link_missing(psm.gpu_name, dsm.gpu_name)}; "
                             f"pass kv_link_gbs= (GB/s)")
        # ... through the engine's KV connector: its rate where slower (per GPU: the shards move in parallel) and
        # its latency per request (the deployment's engine whichever pool is priced on the roofline,
        # `connector_engines`)
        shards = min(psm.tp, dsm.tp)
        e = eff if eff is not None else default_eff()
        kv_engine = connector_engines([psm.engine], [dsm.engine])
        kv_link_gbs = float(connector_gbs(kv_link_gbs / shards, kv_engine, e)[0]) * shards
        kv_fixed_ms = float(connector_ms(kv_engine, e)[0])
    elif not kv_link_gbs > 0:
        raise ValueError(f"kv_link_gbs={kv_link_gbs!r}: must be > 0 GB/s")
    else:  # the caller's link stands for the whole transfer
        kv_fixed_ms = 0.0
    kv_ms = float(pc.cost.kv_bytes_per_token) / (kv_link_gbs * 1e9) * 1e3
    return _run(workload, None, pc, dc, sched, kv_ms, routing, kv_fixed_ms=kv_fixed_ms)


def simulate(model: Any, gpu: Any = None, tp: int = 1, pp: int = 1, weight_dtype: str | None = None, act_dtype: str | None = None,
             kv_dtype: str | None = None, *, workload: Workload, scheduler: Scheduler | None = None,
             mode: str = "agg", dp: int = 1, prefill: Pool | None = None, decode: Pool | None = None,
             slo: SLO | Mapping[str, Any] | None = None, kv_link_gbs: float | None = None,
             routing: str = "least_loaded", engine: Any = None, ep: int = 1,
             attn_dp: int = 1, interval: float | None = None, profile: Any = None,
             eplb: bool = False, moe_act_dtype: str | None = None, moe_a2a: str | None = None,
             discard: int | str = 0, speculative: Any = None) -> dict[str, Any]:
    """Simulate serving `workload` on a deployment; returns a dict of metrics (`METRIC_KEYS`, numbers) and of where
    they come from (`LABEL_KEYS`: ``source`` and ``engine``, text). ``source``: roofline | interpolated |
    extrapolated, the least certain of the pools', each by `estimate`'s check on the iterations of the run
    ("extrapolated" where one reads a kernel table past its measured cells: `_run_source`).

    mode="agg": ``dp`` replicas of ``tp`` x ``pp`` GPUs, requests routed least-loaded (or round-robin).
    mode="disagg": a ``prefill`` pool and a ``decode`` pool (`Pool`: own GPU type, TP, EP, attention DP and
    worker count; ``gpu`` may be left out where both pools name theirs, `pools_gpu`; a pool with EP on a dense model, EP not dividing its tp x attn_dp GPUs or above the experts is
    refused; an EP that does not divide the experts holds redundant copies, `inference.resolve.expert_slots`); the KV
    cache of each prompt moves over ``kv_link_gbs`` GB/s (default: `inference.comm.kv_transfer_gbs`: the slower
    GPU's scale-up link when both pools fit one scale-up domain, else the scale-out network per GPU, x the smaller
    TP, the shards moving in parallel; through the engine's KV connector, `serving.handoff.kv_read_ms`: its rate
    where slower and its latency per request, where fitted; a ``kv_link_gbs`` given stands for the whole
    transfer). The first token is the decode worker's, as engines stream it
    (vLLM's P/D proxy and TensorRT-LLM's disaggregated server pass the decode server's output; the prefill's own
    token is discarded): the prefill worker frees the prompt's KV blocks when its prefill is done (the transfer
    is not modelled as holding them there); the decode worker admits the request when its blocks fit, like any
    other, allocates them and starts reading the KV; from the first iteration boundary after the KV has arrived
    the request decodes, and that iteration emits its first token (TTFT: prefill, KV read, the waits for two
    iteration boundaries and one decode step).

    Keys (times in ms): ttft_ms_*, tpot_ms_*, itl_ms_*, e2e_ms_* for * in mean, p50, p90, p99;
    throughput_tok_s (output tokens/s, whole deployment), throughput_tok_s_per_gpu, tok_s_per_user
    (1000 / mean TPOT), requests_per_s, slo_attainment and goodput_req_s (NaN without ``slo``: an `SLO`, or a
    mapping `SLO.parse` reads, as `capacity` takes it), gpu_busy_frac, kv_usage_mean, kv_usage_max (fractions of the KV cache), preemptions, n_requests, n_gpus, duration_s,
    prefix_cache_hit_rate (cached / looked-up prompt tokens; NaN unless ``Scheduler(prefix_caching=True)`` and the
    workload's requests carry hash ids).
    TPOT per request = (e2e - TTFT) / (output tokens - 1), requests with one output token excluded; the ITL mean
    is token-weighted, its percentiles come from iteration durations weighted by the tokens they emit.
    ``engine``: whose measured kernel profile costs the iterations (as in `inference.estimate`; None: roofline);
    ``ep``: expert parallelism (MoE) over the tp x attn_dp GPUs of a replica; ``attn_dp``: attention
    data-parallel ranks per replica, each scheduling its own requests (``dp`` stays independent replicas);
    ``eplb``: an expert-parallel load balancer runs in every pool (balanced expert load, `inference.estimate`);
    ``moe_act_dtype``: the activations MXFP4 experts compute with in every pool (None / "auto", "bf16", "mxfp8";
    `inference.estimate`); ``moe_a2a``: how every pool's EP group exchanges its tokens across attention-DP ranks
    (None / "auto", "allgather", "deepep"; `inference.estimate`: a pool it cannot run raises ValueError naming it).
    ``interval``: a band level strictly between 0 and 1 (e.g. 0.8): adds ``<key>_lo`` / ``<key>_hi`` for the
    latency (ttft, tpot, itl, e2e: mean and percentiles), throughput and tok_s_per_user keys: the inference
    model's split-conformal band for the run's source, engine and GPU family (the prefill pool's for TTFT
    in disagg), applied to the simulated value (`objectives.uncertainty.serving_intervals`).
    ``profile``: a calibrated profile file (`dse calibrate`) whose engine factors cost the iterations, as in
    `inference.estimate(..., profile=)`, or an `Efficiency` whose factors cost them in place of the shipped fit.
    ``discard``: requests left out at each end of the run, by arrival (`steady_mask`: the warm-up while the
    batches fill from empty and the drain after the last arrival), or "steady": the run's requests in its batches
    (Little's law, `in_flight`), and none measured when the run is shorter than `STEADY_RUNS` x them. The
    per-request latencies (TTFT, TPOT, E2E, the ITL mean) and the SLO attainment are then the steady part's (NaN
    when it is empty); throughput, ITL percentiles and the counts stay the whole run's; ``steady_requests``,
    ``in_flight`` and ``steady_growth`` (the requests in the system's growth over the steady part, a fraction of its
    arrivals: ~0 where the deployment keeps up, `steady_growth`) are added. `serving.capacity` measures every rate so.
    ``speculative``: speculative decoding on the agg replicas and the decode pool, the prefill pool running the
    draft layer's prefill of each prompt (an `inference.Speculative` or a mapping of its fields; None: off), a
    what-if: every decode is priced in token time as the deterministic expectation of its drafts and verify
    (`StepModel.time_ms`): each simulated iteration emits one token a decode and costs 1 / E of a speculative
    iteration's decode work (E = `Speculative.expected_tokens`), so TPOT, throughput and the ITL mean follow; the
    ITL percentiles are those of the smoothed stream, not the engines' bursts of accepted tokens. The draft layer's
    KV and weights shrink the cache (`StepModel.kv_capacity_tokens`), and each request that decodes holds its k
    draft tokens' slots from its admission (`Scheduler.kv_extra_blocks`, `inference.speculative.draft_slots`, the
    closed form's k tokens, in its own blocks: ceil((context + k) / block)); the overlap loop stays where the engine
    release keeps it (`inference.speculative.with_speculative`) and SGLang's max running requests default to 48
    (`Scheduler.for_cost`).
    """
    if interval is not None:
        from objectives.uncertainty import check_level
        check_level(interval)
    slo = _as_slo(slo)      # a bad one before the run
    eng, reps = _build(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, workload, scheduler, mode, dp,
                       prefill, decode, kv_link_gbs, routing, engine, ep, attn_dp, profile, eplb, moe_act_dtype,
                       moe_a2a, speculative)
    m: dict[str, Any] = dict(_metrics(eng, reps, slo, discard))

    def key(role: str) -> tuple[str, str, str]:
        # _build prices every replica with a StepModel (IterationCost does not promise source/engine/gpu_name)
        c = cast("StepModel", next(r.cost for r in reps if r.role == role))
        return _run_source(eng, c, role), str(c.engine), str(c.gpu_name)
    main = key("agg" if mode == "agg" else "decode")
    from objectives.inference.measured import BY_CERTAINTY
    pools = [main] if mode == "agg" else [main, key("prefill")]
    m["source"] = max((k[0] for k in pools), key=BY_CERTAINTY.index)   # the least certain pool's
    m["engine"] = main[1]
    if interval is None:
        return m
    from objectives.uncertainty import serving_intervals
    return {**m, **serving_intervals(m, interval, source=main[0], engine=main[1], gpu=main[2],
                                     prefill=None if mode == "agg" else key("prefill"))}


def _run_source(eng: _Engine, sm: StepModel, role: str) -> str:
    """The `source` of a pool's iterations in a finished run, by `estimate`'s own check (`estimate._steady_source`:
    "extrapolated" where a forward reads a kernel table past its measured cells): its steady-state iterations at
    each (prompt, output) length pair the run served, with the most sequences that streamed at once on one of the
    pool's ranks (decode and agg pools; `streams_at_first`), and one prompt at a time with no decode on a prefill
    pool. The step model's prepared label where its tables carry no bounds."""
    from objectives.inference.estimate import _steady_source
    from objectives.inference.measured import BY_CERTAINTY, SOURCES
    r = eng.reqs
    if not r:
        return str(sm.source)
    # the (prompt, output) length pairs served, in lexicographic order: one whole-number key per pair
    out = eng.output
    inp = eng.context - out
    span = int(out.max()) + 1
    key = np.unique(inp * span + out)
    pairs = np.stack((key // span, key % span), axis=1).astype(float)
    if role == "prefill":
        n, isl, osl = 1.0, pairs[:, 0], np.ones(len(pairs))
    else:
        first = np.array([x.first for x in r], dtype=float)
        finish = np.array([x.finish for x in r], dtype=float)
        rep = np.array([x.rep for x in r], dtype=np.int64)
        n = max(1.0, float(np.max(streams_at_first(first, finish, rep), initial=1.0)))
        isl, osl = pairs[:, 0], pairs[:, 1]
    codes = _steady_source(sm._p, n, isl, osl, sm._mnt)   # noqa: SLF001 (the model the run priced)
    return str(max((SOURCES[int(k)] for k in np.atleast_1d(codes)), key=BY_CERTAINTY.index))


def simulate_requests(model: Any, gpu: Any = None, tp: int = 1, pp: int = 1, weight_dtype: str | None = None,
                      act_dtype: str | None = None, kv_dtype: str | None = None, *, workload: Workload,
                      scheduler: Scheduler | None = None, mode: str = "agg", dp: int = 1, prefill: Pool | None = None,
                      decode: Pool | None = None, kv_link_gbs: float | None = None,
                      routing: str = "least_loaded", engine: Any = None, ep: int = 1,
                      attn_dp: int = 1, eplb: bool = False, moe_act_dtype: str | None = None,
                      moe_a2a: str | None = None, speculative: Any = None) -> pd.DataFrame:
    """Per-request records of `simulate`: arrival_s, first_token_s, finish_s, ttft_ms, tpot_ms, e2e_ms,
    input_tokens, output_tokens, tokens_emitted (counted by the engine), preemptions, replica (the one that finished it), prefill_replica (disagg, else
    -1), kv_transfer_ms. One row per request, in workload order."""
    eng, reps = _build(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, workload, scheduler, mode, dp,
                       prefill, decode, kv_link_gbs, routing, engine, ep, attn_dp, eplb=eplb,
                       moe_act_dtype=moe_act_dtype, moe_a2a=moe_a2a, speculative=speculative)
    return _frame(eng, reps)


__all__ = ["simulate", "simulate_requests", "simulate_costs", "pools_gpu", "steady_mask", "steady_growth", "in_flight", "STEADY_RUNS", "PoolCosts", "HOST_LINK_GBS"]

