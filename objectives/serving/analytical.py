"""The analytical serving model: serving metrics of many deployments at once (vectorized numpy), the closed form
that `simulate` checks.

    from objectives import serving
    d = serving.Deployments.of(gpu=["H100", "H200"], tp=4, weight_dtype="fp8")
    m = serving.ServingModel("Llama-3.1-70B", serving.Workload(rate=4.0, input_len=2048, output_len=256))
    m.evaluate(d, slo=serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99"))   # one row per deployment
    m.capacity(d, slo)                                                          # highest request rate (req/s)

Iteration costs come from the public ``objectives.inference`` calls (``max_throughput`` for the in-flight batching
steady state at a given occupancy, ``estimate`` for prefill-only and decode-only iterations).

Workloads and what the model does with them:

- all at once (``rate=inf``, the max-throughput benchmark): the saturated steady state, sequences in flight
  N = min(max_batch_size, KV-cache capacity); no queue (its length depends on the request count).
- closed loop (``concurrency=C``): N = min(that, ceil(C / replicas)); what a user's cycle C / X (X: requests/s)
  leaves beyond the service time is the wait for a slot, counted in TTFT (Little's law). Under a prompt-length
  mixture each request also costs its prefill's excess over the mean prompt's (`_attention_excess`: a Var(L)), the
  replica's rate 1 / (1 / X + excess) and its decode steps stretched alike.
- open loop (``rate=r`` requests/s, Poisson or gamma arrivals, or a trace's arrivals): each replica receives
  r / replicas. Aggregated continuous batching: the occupancy N solves r_rep = N / R(N) (Little's law, R the
  residency from admission, the prompt's prefill + (O - 1) TPOT, found by bisection over N). With pp = 1 and the
  decodes riding beside the prompts (not SGLang's prefill batches) an iteration carries the prompts that arrived
  during the one before (`_riding_prompts`), not the closed loop's budget-sized groups; every row's steady state
  then mixes those prefill iterations with pure decode steps (`inference.estimate.steady_state` with `prompts`),
  never the closed form's mean iteration, whose thin prompt slices hid their compute under each decode step's
  memory traffic.
  TTFT = half an iteration (the one in progress) + the prompt's prefill (alone) + a whole iteration per further
  chunk + the wait for earlier prompts, an M/D/1 queue on the prefill work (utilisation
  rho = r_rep x prefill time; mean wait rho S / (2 (1 - rho)); tail P(W > w) = rho exp(-2 (1 - rho) w / (rho S))
  for the percentiles) + (pp = 1, decodes riding) the rest of the iteration that carries it: the decodes of the
  sequences in flight and the prompts that arrived during the iteration before, length-biased
  (`ServingModel._shared_iteration`) + the wait for one of the n_max slots (sequences in flight; a request goes to the
  least-loaded of the dp x attention-DP ranks, so Erlang C over all their slots at offered load N per rank, the
  pooled M/M/c wait, halved for fixed output lengths (Allen-Cunneen), drained at the full batch's pace, `slot_wait`;
  its exponential tail for the percentiles). TPOT at percentile q: the steady state at occupancy N + z_q sqrt(N)
  (the number of requests in flight is Poisson around N, M/G/inf; with decodes riding wider where the residency
  grows with N: the prompts arriving during a request's own life stall it, each stretching the life more arrive
  in, and the decode step grows with an Ornstein-Uhlenbeck occupancy averaged over that life). With pp > 1 the steady state's prefill iterations hold the
  prompts that arrive together (`_prompts_at_once`, over the iteration a prompt rides on beside the decodes,
  `ride_ms`), not the closed loop's budget-sized groups: a prompt that arrives alone holds every decode for its
  whole pass through the stages, as the simulator and the engines run it; prompts that arrive apart go into the
  next of the batches in flight, which the engines open only when a schedule overflows a budget (`_lanes`), so
  the prompt queue passes a prompt per batch in flight and a prompt waits for the next return of one, and
  the rate held is what the full batch serves at that grouping (at most the closed loop's). A run that opens more
  batches starts on one, its occupancy building from empty until a round first overflows a budget (`_pipe_start`):
  its requests blend the one-batch start's and the opened batches' states. A disaggregated prefill worker with
  pp > 1 keeps pp batches in flight at saturation (`cached_prefill_ms(pipelined=True)`), below it one until a
  schedule overflows a budget (`_pool_pipe_service`).
  Bursty arrivals and mixed prompt lengths: the prompt queue's wait (mean and tail) is Kingman's G/G/1, the
  M/D/1 wait times ca^2 + cs^2 (`Workload.variability`: the squared coefficients of variation of the arrival gaps,
  1 for Poisson, cv^2 for gamma, a trace's own, and of the prompt lengths, 0 when fixed), in the aggregated
  replicas and the disaggregated prefill pool alike; Poisson arrivals of fixed lengths keep the M/D/1 queue.
  Prompt lengths that vary (a trace, a `Dist`), aggregated continuous batching under a rate: `_mixture` prices each
  of a few length quantiles (`length_nodes`) with its own prefill (superlinear through attention), the wait from
  the moments of those prefill times (`batch_wait`: Pollaczek-Khinchine / M^X/G/1 with a trace's index of
  dispersion of counts, `Workload.arrival_dispersion`, in place of the gaps' CV^2, and requests sharing a
  timestamp as batches that may come regularly, `Workload.arrival_batches`), the TTFT percentiles from the mixture
  of each length's prefill and the wait's distribution (`mixture_quantile`: 0, or a hyperexponential as wide as
  the prefill times' third moment makes it, `wait_scv`), and the TPOT percentiles from long
  prompts' chunks stalling the decode steps of requests with few output tokens, no TPOT above the longest
  iteration (max_num_tokens tokens). The replica's capacity there is the mean prompt's less the mixture's extra
  attention (a Var(L)). A trace's own arrivals modulate the queue (`_modulated`): 20 windows of the run at their
  own rates, a fluid backlog where the windows' arrivals outrun the replica (carried into the windows after it),
  a stationary queue at the window's rate elsewhere; the replica starts empty and admits while it holds a free
  slot, so a storm first fills the slots its quieter past left free (`_slot_fluid`: each slot frees one
  residency after its admission), and the wait for a slot is each window's (Erlang C at the window's
  occupancy, the sequences held from a window's decode step t_dec(its sequences) / (1 - rho_k), rho_k the share
  of its time its prompts' prefills hold the iterations, `_window_steps`). A request's TPOT replays the trace's
  own requests (`_trace_tpot`): the prompts' prefill work as a fluid FCFS queue in arrival order, each request
  decoding a step of every idle ms and a token on every prompt iteration from its prefill's end, so a burst of
  long prompts slows the requests that decode beside it (the mean and percentiles over its requests); over dp x
  attention-DP ranks each rank replays its share, the router spreading the requests in arrival order
  (`split_lives`), so a burst is split between the ranks (attention-DP ranks in lockstep: between the replicas
  only, a prompt on any rank holding every rank's step). The
  disaggregated prefill
  pool under a length mixture uses the same queue (`_length_queue`) on each length's work at the pool's batched
  rate, and under a trace's own arrivals the same windows (no slots: a prompt leaves the pool when prefilled),
  each decode rank's slots filling over them (`_slot_fluid`).
  Past its capacity a replica's run starts empty: it fills its batch at the prompts' rate before anything
  queues, so its backlog trails the linear one by about a batch (`_start_backlog`; fixed prompt lengths).
  Every queue wait (these two; the disaggregated prefill pool and decode admission below) is the run's, `run_wait`:
  the stationary wait, at most what a run of n requests builds at the queue's capacity X
  (Poisson arrivals at lam = X: a reflected random walk, mean 0.53 sqrt(n) / X), and at a rate above X the run's
  backlog: its queue grows to n (1 / X - 1 / r) by the last request, half of that on average ahead of a request
  (aggregated: X the saturated request rate of a scheduling rank, n = ``workload.size`` / (dp x attn_dp) its share
  of the run, r its share of the rate; the disaggregated pools and static batching: X and r the pool's or the
  deployment's, n the whole run — the same backlog n (1 / X - 1 / r) either way).
  E2E_q = TTFT_q + (O_q - 1) TPOT_q with O_q the output-length quantile. ``slo_attainment`` multiplies the
  probabilities of meeting the TTFT bound (queue tail) and the TPOT bound (normal around the mean TPOT with the
  p90 spread); ``goodput_req_s`` = served rate x attainment.
- without chunked prefill (whole prompts, still under the policy the model has, ``scheduler.MODELLED_POLICY``,
  "auto": on vLLM / TensorRT-LLM the decodes ride on the iteration that carries a prompt, which lasts about its
  prefill; SGLang's prefill batches run alone, `profiles.PREFILL_ALONE_ENGINES`), open loop: as above,
  but decodes stall while prompts prefill (a fraction rho of the time): TPOT = pure decode step at N / (1 - rho).
  Under a length mixture a prompt longer than the budget the decodes leave runs only alone: it waits for the
  decodes in flight to drain (`drain_cdf`), holding the queue behind it (`ServingModel._mixture`), and stalls no
  decode; the TPOT counts only the prompts that fit beside the decodes.
- without chunked prefill, closed loop or all at once: each cycle of N requests runs ceil(N / k)
  prefill-only iterations of k = max(1, max_num_tokens // input_len) prompts and O - 1 decode steps at N
  sequences; decodes stall during prefills; TTFT = one prefill iteration + half a decode step.
- static batching: a batch of N requests runs ceil(N / k) prefill iterations, then decodes until its longest
  output is done (E[max of N output lengths] from the workload's lengths); a decode step costs
  t(1) + (n - 1) x slope at n running sequences, the batch shrinking as requests finish. Under an open-loop rate
  it serves at most that rate and, offered more than its batches hold, adds the run's backlog (`run_wait`) to TTFT.
  Under a closed loop of an engine's front end (host time h) the batches run back to back and a client rejoins
  the first to start h after its own ends: a rotation of batches whose later ones cover h, the run's first request
  keeping a batch alone, full batches past the slots; outputs of varying lengths: a batch's requests done more
  than h before its end are back for the next, the batches settling below the clients (an h longer than a batch:
  the rotation, each batch its longest output). Clients that do not divide over the replicas: each replica's
  loop of its whole number of clients, their rates added.
  Under a prompt-length mixture the batch's prefill is longer by its requests' excess (`_attention_excess`), and a
  request decodes at the prefill chunks' pace while the batch's later prompts prefill (`ServingModel._static_tpot`:
  the mean over output lengths, a request of few tokens finishing there).
- disaggregated, closed loop: `disagg_closed_loop` (C clients coupling the pools: X = C / (TTFT + (O - 1) TPOT),
  the decode pool's occupancy from Little's law, the prefill pool's queue as the aggregated closed form's later
  rounds, `lockstep.round_queue`, at least M/D/1; its docstring).
- disaggregated (``prefill_replicas`` of ``dp`` replicas prefill, the rest decode; the prefill pool may have its
  own GPU type, TP, EP and attention DP, ``prefill_gpu`` / ``prefill_tp`` / ``prefill_ep`` / ``prefill_attn_dp``,
  xPyD; each attention-DP rank of a worker schedules its own batch): prefill capacity
  k / t_prefill(k) requests per rank, decode capacity N / ((O - 1) t_decode(N)); the deployment serves the
  smaller. A prefill-bound deployment decodes at the lower occupancy that rate gives (Little's law on a decode
  rank, occupancy = rate x (O - 1) t_decode(occupancy), by a few fixed-point steps). The first token is the decode
  worker's, as the engines stream it (the simulator's convention too): TTFT = t_prefill(k) + the handoff
  (`handoff_ms`: the decode worker's iteration boundaries, the KV read, per-GPU KV bytes over the link between the
  pools' GPUs: the scale-up domain when both pools fit one, else the scale-out network,
  `inference.comm.kv_transfer_gbs`, and the iteration that decodes the first token) +
  under an open-loop rate the same M/D/1 wait on the prefill pool (a prompt arriving at a free worker runs alone;
  `run_wait` at the pool's capacity: a prefill pool offered more than it holds queues the run's backlog) and an
  Erlang-C wait for a decode slot (handoffs go to the least-loaded decode rank: the chance to wait and the wait
  over the whole pool's slots, `slot_wait`; `run_wait` at the decode pool's capacity, fed at most the prefill
  pool's); TPOT = t_decode.

- prefix caching (``prefix_caching``, on by default as in the engines; docs/prefix_caching.md): where the workload's
  requests carry prompt hash blocks (a Mooncake trace) each prefill rank serves a share of the prompt tokens from
  its cache (`prefix_hit_rate`: an LRU as large as its KV cache over the trace, `serving.prefix`); a request's
  prefill computes the mean prompt less its mean cached tokens h, attending to the whole prompt
  (`cached_prefill_ms`), and the steady state runs at that many prompt tokens a request, the KV staying whole, each
  iteration also carrying the new tokens' attention over the cached ones and the decodes' reads of the cached
  context (`cached_context_ms`). The
  disaggregated closed loop (`disagg_closed_loop`) prices whole prompts.

Static batching below its capacity under a rate: a batch holds one cycle's arrivals and a request waits for the
batch running when it arrives (`ServingModel._static_open_loop`: the residual of a length-biased cycle; under a
prompt-length mixture the cycle carries the prompts' extra work and spreads with their prefill times).
Percentiles the model does not estimate (closed loop, all at once, static batching but its TTFT under a rate, and
disaggregated decode) equal the mean:
a screening value that the simulator then checks (``LLMServingObjective.confirm``).
Cost: usd_per_mtok = GPU-hour price x GPUs / served output tokens (idle GPUs are paid for); joules_per_tok
scales the saturated steady state's energy per token the same way (same mean power).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from .. import inference
from ..catalog import gpu_table
from ..inference import lockstep
from ..inference.comm import kv_link_missing, kv_transfer_gbs
from ..inference.core import default_eff, reusing_prepared
from ..inference.estimate import STARTUP, TIMES, ahead_clients, busy_ranks, max_throughput_times
from ..inference.resolve import engine_budgets
from .bisection import bisect
from .handoff import (
    HostTime,
    connector_engines,
    decode_overlap,
    first_token_forwards,
    front_end,
    handoff_ms,
    host_ms,
    host_time,
    kv_notice_steps,
    kv_read_ms,
)
from .prefix import PrefixTable, prefix_table
from .scheduler import MIN_KV_SLOPE, SIMULATOR_BUDGETS, SLO, Scheduler
from .workload import Dist, Workload

GIB = float(2**30)
#: z-scores of the percentiles the model estimates (standard normal quantiles).
Z = {"p50": 0.0, "p90": 1.2815515655446004, "p99": 2.3263478740408408}
PERCENTILES = ("p50", "p90", "p99")
BISECTION_STEPS = 10
#: halvings of the static batch's size under a rate (`ServingModel._static_open_loop`: numpy only, on [1, n_max])
STATIC_BATCH_STEPS = 30
#: probability bins of the output lengths for the longest output of a static batch (`_static_open_loop`): 1 %
#: wide, finer in the upper tail, each node its bin's mean (`quantile_nodes`), so a trace's few longest outputs keep
#: their weight in the cycle's second moment (equal-weight quantile midpoints dropped them)
STATIC_OUTPUT_BINS = tuple(float(x) for x in np.linspace(0.0, 0.96, 97)) + (0.97, 0.98, 0.99, 0.995, 0.998, 0.999,
                                                                           1.0)
#: equal-weight nodes of a request's place in its static batch: the prefill left after its first token
#: (`ServingModel._static_tpot`)
STATIC_RANK_NODES = 16
#: fixed-point steps of the prompts an open loop's iteration carries beside the decodes (`_riding_prompts`)
RIDING_STEPS = 2
#: fixed-point steps of a disaggregated decode rank's occupancy below its full batch (Little's law)
DECODE_FIXED_POINT_STEPS = 3
#: most fixed-point rounds of a trace window's held sequences and decode step (`ServingModel._modulated`), which
#: stop once no window's held sequences move by `WINDOW_SETTLED` (sequences) or more
WINDOW_FIXED_POINT_STEPS = 8
WINDOW_SETTLED = 0.5


@dataclass(frozen=True)
class Deployments:
    """Knobs of a batch of deployments, one entry per deployment (numpy arrays of equal length).

    gpu (catalog names), tp, pp, dp (replicas), ep (expert parallelism over the tp x attn_dp GPUs of a replica),
    attn_dp (attention data-parallel ranks per replica, each scheduling its own requests; default 1), weight/act/kv
    dtype (None: the inference model's default), mode ("agg" | "disagg"), prefill_replicas (disagg: replicas of the
    prefill pool, the rest decode; 0 in agg), prefill_gpu / prefill_tp / prefill_ep / prefill_attn_dp (disagg: the
    prefill pool's GPU type, TP, EP and attention DP per worker; default gpu / tp / ep / attn_dp, which then
    describe the decode pool), prefill_pp / prefill_weight_dtype / prefill_act_dtype / prefill_kv_dtype (disagg:
    the prefill pool's pipeline depth and dtypes; default pp and the dtypes, the decode pool's); a replica runs on
    tp x pp x attn_dp GPUs,
    max_batch_size (sequences), max_num_tokens (tokens per iteration; `of`'s None, the default, and None
    entries: the deployment's engine's own on its GPU, `Scheduler.resolved`'s, `inference.resolve.engine_budgets`;
    SGLang's max sequences, which follow its KV pool, there its table's stand-in as no model is named, and with
    speculative decoding at most 48 a server, 48 // attn_dp a rank, as the simulator's; the roofline's 256 /
    8,192, `scheduler.SIMULATOR_BUDGETS`), prefill_max_batch_size / prefill_max_num_tokens (disagg: the prefill
    pool's own; default and missing entries the deployment's, which then are the decode pool's; SGLang's 48 with
    speculative decoding a prefill rank's at its prefill_attn_dp, `_speculative_running`), chunked_prefill (bool),
    batching ("continuous" | "static"), engine (measured kernel profile; None: roofline), eplb (bool: an
    expert-parallel load balancer in every pool, vLLM / SGLang ``--enable-eplb``, TensorRT-LLM's MoE load
    balancer; matters where a pool's ep > 1, `inference.estimate`; default False, a missing entry False too),
    moe_act_dtype ("auto" | "bf16" | "mxfp8": the activations MXFP4 experts compute with in every pool,
    `inference.estimate`; default and missing entries "auto", each engine's default kernel), moe_a2a ("auto" |
    "allgather" | "deepep": how every pool's EP group exchanges its tokens across attention-DP ranks,
    `inference.estimate`; default and missing entries "auto"), prefix_caching (bool:
    reuse the KV of prompt blocks already computed, vLLM ``--enable-prefix-caching``, SGLang's radix cache,
    TensorRT-LLM's ``kv_cache_config.enable_block_reuse``; default and missing entries True, every engine's
    default; it changes only workloads whose requests carry prompt hash blocks, `serving.prefix`), adp_balance
    (bool: TensorRT-LLM's attention-DP balance, ``attention_dp_config.enable_balance`` at its default iterations,
    `inference.max_throughput`'s ``adp_balance``; it changes aggregated MoE deployments whose attention-DP ranks
    step in lockstep, attn_dp > 1; default and missing entries False, the engine's default), speculative
    (`inference.Speculative` or None: speculative decoding on the aggregated replicas and the decode pool, the
    prefill pool running the draft layer's prefill of each prompt, each entry None, a `Speculative`, its label
    "mtp:3:0.8" or a mapping of its fields, `inference.speculative.as_speculative`; default and missing entries
    None, off; `ServingModel.evaluate` prices the deployments sharing a value together).
    """

    gpu: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    ep: np.ndarray
    weight_dtype: np.ndarray
    act_dtype: np.ndarray
    kv_dtype: np.ndarray
    mode: np.ndarray
    prefill_replicas: np.ndarray
    max_batch_size: np.ndarray
    max_num_tokens: np.ndarray
    chunked_prefill: np.ndarray
    batching: np.ndarray
    engine: np.ndarray
    # None is a constructor sentinel only: __post_init__ always stores an array
    prefill_gpu: np.ndarray = None  # type: ignore[assignment]      # disagg: the prefill pool's GPU type (None: gpu)
    prefill_tp: np.ndarray = None  # type: ignore[assignment]       # disagg: prefill pool's TP per worker (None: tp)
    attn_dp: np.ndarray = None  # type: ignore[assignment]          # attention DP ranks per replica (None: 1)
    prefill_ep: np.ndarray = None  # type: ignore[assignment]       # disagg: prefill pool's EP (None: ep)
    prefill_attn_dp: np.ndarray = None  # type: ignore[assignment]  # disagg: prefill pool's attn DP (None: attn_dp)
    eplb: np.ndarray = None  # type: ignore[assignment]             # expert-parallel load balancer (None: False)
    moe_act_dtype: np.ndarray = None  # type: ignore[assignment]    # MXFP4 experts' activations (None: "auto")
    moe_a2a: np.ndarray = None  # type: ignore[assignment]          # EP token exchange (None: "auto")
    prefix_caching: np.ndarray = None  # type: ignore[assignment]   # prefix caching (None: True, the engines')
    prefill_pp: np.ndarray = None  # type: ignore[assignment]       # disagg: prefill pool's PP (None: pp)
    prefill_weight_dtype: np.ndarray = None  # type: ignore[assignment]  # disagg: prefill pool's (None: weight_dtype)
    prefill_act_dtype: np.ndarray = None  # type: ignore[assignment]     # disagg: prefill pool's (None: act_dtype)
    prefill_kv_dtype: np.ndarray = None  # type: ignore[assignment]      # disagg: prefill pool's (None: kv_dtype)
    adp_balance: np.ndarray = None  # type: ignore[assignment]      # TensorRT-LLM's attention-DP balance (None: False)
    # disagg: the prefill pool's max_batch_size and max_num_tokens (None: the deployment's)
    prefill_max_batch_size: np.ndarray = None  # type: ignore[assignment]
    prefill_max_num_tokens: np.ndarray = None  # type: ignore[assignment]
    speculative: np.ndarray = None  # type: ignore[assignment]      # speculative decoding (None: off)

    def __post_init__(self) -> None:
        n0 = len(self.gpu)
        object.__setattr__(self, "speculative", _speculative(self.speculative, n0))
        object.__setattr__(self, "adp_balance", np.zeros(n0, dtype=bool) if self.adp_balance is None else
                           _bools("adp_balance", self.adp_balance))
        object.__setattr__(self, "eplb", np.zeros(n0, dtype=bool) if self.eplb is None else
                           _bools("eplb", self.eplb))
        object.__setattr__(self, "moe_act_dtype", _choices("moe_act_dtype", self.moe_act_dtype, n0))
        object.__setattr__(self, "moe_a2a", _choices("moe_a2a", self.moe_a2a, n0))
        object.__setattr__(self, "prefix_caching", np.ones(n0, dtype=bool) if self.prefix_caching is None else
                           _bools("prefix_caching", self.prefix_caching, missing=1))
        if self.prefill_gpu is None:
            object.__setattr__(self, "prefill_gpu", self.gpu.copy())
        if self.prefill_tp is None:
            object.__setattr__(self, "prefill_tp", self.tp.copy())
        # per-pool degrees: missing entries (None / NaN: an inactive knob) take the decode pool's (attn_dp: 1)
        for name, like in (("attn_dp", None), ("prefill_ep", "ep"), ("prefill_attn_dp", "attn_dp"),
                           ("prefill_pp", "pp"), ("prefill_max_batch_size", "max_batch_size"),
                           ("prefill_max_num_tokens", "max_num_tokens")):
            v = getattr(self, name)
            base = np.ones(n0) if like is None else np.asarray(getattr(self, like), dtype=float)
            x = base.copy() if v is None else \
                pd.to_numeric(pd.Series(np.asarray(v, dtype=object), dtype=object), errors="coerce").to_numpy(float)
            if len(x) == n0:
                x = np.where(np.isnan(x), base, x)
                bad = (x < 1) | (x % 1 != 0)
                if bad.any():
                    raise ValueError(f"Deployments {name}={float(x[bad][0]):g}: must be an integer >= 1")
            object.__setattr__(self, name, x.astype(np.int64) if len(x) == n0 else x)
        for name in ("weight_dtype", "act_dtype", "kv_dtype"):      # the prefill pool's dtypes: missing, the decode's
            own = np.asarray(getattr(self, name), dtype=object)
            v = getattr(self, "prefill_" + name)
            pv = own.copy() if v is None else np.asarray(v, dtype=object)
            if len(pv) == n0:
                pv = np.where(_unset(pv), own, pv)
            object.__setattr__(self, "prefill_" + name, pv)
        pg = np.asarray(self.prefill_gpu, dtype=object)
        miss = _unset(pg)
        object.__setattr__(self, "prefill_gpu", np.where(miss, self.gpu, pg))
        ptp = pd.to_numeric(pd.Series(self.prefill_tp, dtype=object), errors="coerce").to_numpy(float)
        object.__setattr__(self, "prefill_tp", np.where(np.isnan(ptp), self.tp, ptp).astype(np.int64))
        n = {len(getattr(self, f.name)) for f in fields(self)}
        if len(n) != 1:
            raise ValueError(f"Deployments fields have different lengths {sorted(n)}; give one entry per deployment")
        bad = sorted({str(m) for m in self.mode if m not in ("agg", "disagg")})
        if bad:
            raise ValueError(f"mode {bad} not allowed; valid modes: 'agg', 'disagg'")
        bad = sorted({str(v) for v in self.batching if v not in ("continuous", "static")})
        if bad:
            raise ValueError(f"batching {bad} not allowed; valid: 'continuous', 'static'")
        dis = self.mode == "disagg"
        pr, dp = self.prefill_replicas, self.dp
        if dis.any() and (np.any(pr[dis] < 1) or np.any(pr[dis] >= dp[dis])):
            i = int(np.flatnonzero(dis & ((pr < 1) | (pr >= dp)))[0])
            raise ValueError(f"disagg configuration needs 1 <= prefill_replicas < dp, got prefill_replicas={pr[i]} "
                             f"dp={dp[i]}")
        if (dis & (self.batching == "static")).any():
            raise ValueError("batching 'static' is modelled in aggregated mode only (mode 'agg'); disaggregated "
                             "pools batch continuously")

    @classmethod
    def of(cls, gpu: Any, tp: Any = 1, pp: Any = 1, dp: Any = 1, ep: Any = 1, weight_dtype: Any = None,
           act_dtype: Any = None, kv_dtype: Any = None, mode: Any = "agg", prefill_replicas: Any = 0,
           max_batch_size: Any = None, max_num_tokens: Any = None, chunked_prefill: Any = True,
           batching: Any = "continuous", engine: Any = None, prefill_gpu: Any = None,
           prefill_tp: Any = None, attn_dp: Any = 1, prefill_ep: Any = None,
           prefill_attn_dp: Any = None, eplb: Any = False, moe_act_dtype: Any = None,
           prefix_caching: Any = True, moe_a2a: Any = None, prefill_pp: Any = None,
           prefill_weight_dtype: Any = None, prefill_act_dtype: Any = None,
           prefill_kv_dtype: Any = None, adp_balance: Any = False, prefill_max_batch_size: Any = None,
           prefill_max_num_tokens: Any = None, speculative: Any = None) -> Deployments:
        """Deployments from scalars or arrays that broadcast together."""
        cols = dict(gpu=gpu, tp=tp, pp=pp, dp=dp, ep=ep, weight_dtype=weight_dtype, act_dtype=act_dtype,
                    kv_dtype=kv_dtype, mode=mode, prefill_replicas=prefill_replicas, max_batch_size=max_batch_size,
                    max_num_tokens=max_num_tokens, chunked_prefill=chunked_prefill, batching=batching, engine=engine,
                    prefill_gpu=prefill_gpu, prefill_tp=prefill_tp, attn_dp=attn_dp, prefill_ep=prefill_ep,
                    prefill_attn_dp=prefill_attn_dp, eplb=eplb, moe_act_dtype=moe_act_dtype,
                    prefix_caching=prefix_caching, moe_a2a=moe_a2a, prefill_pp=prefill_pp,
                    prefill_weight_dtype=prefill_weight_dtype, prefill_act_dtype=prefill_act_dtype,
                    prefill_kv_dtype=prefill_kv_dtype, adp_balance=adp_balance,
                    prefill_max_batch_size=prefill_max_batch_size, prefill_max_num_tokens=prefill_max_num_tokens,
                    speculative=speculative)
        n = max(np.size(v) if isinstance(v, (list, tuple, np.ndarray)) else 1 for v in cols.values())
        out: dict[str, np.ndarray] = {}
        for k, v in cols.items():
            if isinstance(v, (list, tuple, np.ndarray)):
                a = np.asarray(v, dtype=object)
                if a.size not in (1, n):
                    raise ValueError(f"Deployments.of {k} has {a.size} values, others {n}; give 1 or {n}")
                a = np.resize(a, n)
            else:
                a = np.empty(n, dtype=object)
                a[:] = [v] * n
            out[k] = a
        # budgets left to the engine (None entries): its own on the deployment's GPU, as `Scheduler.resolved`
        own = None
        left = _unset(out["max_batch_size"])     # max sequences left to the engine (`_speculative_running`)
        for j, k in enumerate(("max_batch_size", "max_num_tokens")):
            miss = _unset(out[k])
            if miss.any():
                if own is None:
                    own = engine_budgets(out["engine"], out["gpu"], fallback=SIMULATOR_BUDGETS)
                out[k] = np.where(miss, own[:, j], out[k])
        if left.any():
            _speculative_running(out, left)
        for k in ("tp", "pp", "dp", "ep", "attn_dp", "prefill_replicas", "max_batch_size", "max_num_tokens"):
            out[k] = out[k].astype(np.int64)
        out["chunked_prefill"] = out["chunked_prefill"].astype(bool)
        return cls(**out)

    def __len__(self) -> int:
        return len(self.gpu)

    @property
    def balance(self) -> np.ndarray | None:
        """`adp_balance` as `inference.max_throughput` takes it: the per-deployment bools, None where none
        balances."""
        return self.adp_balance if self.adp_balance.any() else None

    def take(self, idx: np.ndarray) -> Deployments:
        """The deployments `idx`: every field gathered, not validated again (`__post_init__` normalized them
        already, and the serving model's searches take subsets many times)."""
        out = object.__new__(Deployments)
        for f in fields(self):
            object.__setattr__(out, f.name, getattr(self, f.name)[idx])
        return out

    def row(self, i: int) -> dict[str, Any]:
        return {f.name: getattr(self, f.name)[i] for f in fields(self)}


def _speculative_running(out: dict[str, np.ndarray], left: np.ndarray) -> None:
    """`Deployments.of`'s columns `out` (one object array per field, budgets filled) with the engine's max running
    requests under speculative decoding where the max sequences are left to the engine (`left`), as the
    simulator's `Scheduler.for_cost` caps each replica and pool: SGLang resets an unset max_running_requests to 48
    with speculative decoding (`inference.resolve.EngineBehaviour.spec_max_running`), shared by a server's
    attention-DP ranks (`speculative.rank_running`: 48 // attn_dp a rank). The aggregated replicas and the decode pool
    take it at ``attn_dp``; the prefill pool, whose own max sequences are left too (a prefill server with the same
    speculative flags resets alike), at ``prefill_attn_dp`` (missing: ``attn_dp``)."""
    from ..inference.resolve import engine_behaviours
    from ..inference.speculative import rank_running

    spec = _speculative(out["speculative"], len(left))
    rows = np.flatnonzero(left & np.array([v is not None for v in spec], dtype=bool))
    if not len(rows):
        return
    caps = np.array([b.spec_max_running or 0 for b in engine_behaviours(out["engine"][rows], out["gpu"][rows])],
                    dtype=np.int64)
    rows, caps = rows[caps > 0], caps[caps > 0]
    if not len(rows):
        return
    adp = pd.to_numeric(pd.Series(out["attn_dp"], dtype=object), errors="coerce").fillna(1).to_numpy(float)
    padp = pd.to_numeric(pd.Series(out["prefill_attn_dp"], dtype=object), errors="coerce").to_numpy(float)
    padp = np.where(np.isnan(padp), adp, padp)
    pmiss = _unset(out["prefill_max_batch_size"])
    mbs, pmbs = out["max_batch_size"].copy(), out["prefill_max_batch_size"].copy()
    for i, cap in zip(rows, caps):
        own = int(mbs[i])
        mbs[i] = min(own, int(rank_running(cap, int(adp[i]))))
        if pmiss[i]:
            pmbs[i] = min(own, int(rank_running(cap, int(padp[i]))))
    out["max_batch_size"], out["prefill_max_batch_size"] = mbs, pmbs


def _speculative(values: Any, n: int) -> np.ndarray:
    """The ``speculative`` knob per deployment: an object array of `inference.Speculative` or None (off), from None
    (all off), one value, or one per deployment (`speculative.as_speculative`'s forms); ValueError naming a bad
    one."""
    from ..inference.speculative import Speculative, as_speculatives
    out = np.empty(n, dtype=object)
    if values is None:
        return out
    if isinstance(values, (Speculative, str, Mapping)):
        values = [values] * n
    vals = np.empty(len(values), dtype=object)
    vals[:] = list(values)
    if len(vals) != n:
        return vals   # `__post_init__` names the lengths
    try:   # one conversion per distinct value
        return as_speculatives(vals)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def speculative_groups(d: Deployments) -> list[np.ndarray] | None:
    """The deployments of `d` by their ``speculative`` value (indices, one array per distinct value, off first),
    each priced in one call (`inference.max_throughput` takes one value); None where every one is off (today's
    path, one call)."""
    codes, uniq = pd.factorize(d.speculative)   # None: -1
    if not (codes >= 0).any():
        return None
    order = sorted(range(len(uniq)), key=lambda j: uniq[j].label)
    groups = [np.flatnonzero(codes == j) for j in order]
    off = np.flatnonzero(codes < 0)
    return [off, *groups] if len(off) else groups


def _bools(name: str, values: Any, missing: int = 0) -> np.ndarray:
    """A yes / no knob per deployment (`inference.resolve.flag`; None / NaN entries: missing, ``missing``) as a
    bool array; ValueError naming the knob and the bad value."""
    from objectives.inference.resolve import flag
    try:
        return np.asarray(flag(name, np.asarray(values, dtype=object), missing=missing), dtype=bool).ravel()
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _choices(name: str, values: Any, n: int) -> np.ndarray:
    """A categorical "auto"-default knob per deployment (``name``: "moe_act_dtype", its names
    `inference.measured.MOE_ACT_DTYPES`; "moe_a2a", `inference.measured.MOE_A2A`) as an object array of names
    (None / NaN: missing, "auto"); ValueError naming the first bad value and the valid ones."""
    from objectives.inference.measured import MOE_A2A, MOE_ACT_DTYPES
    valid = {"moe_act_dtype": MOE_ACT_DTYPES, "moe_a2a": MOE_A2A}[name]
    if values is None:
        return np.full(n, "auto", dtype=object)
    a = np.asarray(values, dtype=object).ravel()
    out = np.array(["auto" if pd.isna(v) else v for v in a], dtype=object) if len(a) else a
    bad = [v for v in out if not (isinstance(v, str) and v in valid)]
    if bad:
        raise ValueError(f"{name}={bad[0]!r} not allowed; valid: {', '.join(valid)} (or None: the engine's default)")
    return out


def expected_max(sorted_values: np.ndarray, n: np.ndarray) -> np.ndarray:
    """E[max of n independent draws] from the empirical distribution of ``sorted_values``, for each n."""
    u, counts = np.unique(sorted_values, return_counts=True)
    cdf = np.cumsum(counts) / counts.sum()
    prev = np.concatenate([[0.0], cdf[:-1]])
    nn, inv = np.unique(np.maximum(np.asarray(n, dtype=float), 1.0), return_inverse=True)
    e = (u[None, :] * (cdf[None, :] ** nn[:, None] - prev[None, :] ** nn[:, None])).sum(axis=1)
    return e[inv]


#: points of the grid of residual decode steps on which `residual_tail` tabulates P(R > r)
RESIDUAL_GRID = 257


def residual_tail(decode_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The decode steps R left to a request in flight, for requests of ``decode_steps`` (O - 1 each, steps) caught
    at a uniformly random step of their decoding (length-biased: long outputs are in flight longer): P(R > r) =
    E[(D - r)+] / E[D] on a grid r = 0 .. max D of `RESIDUAL_GRID` points. Returns (r, P(R > r), E[D]); the tail
    all zeros when no request decodes."""
    dsteps = np.sort(np.maximum(np.asarray(decode_steps, dtype=float), 0.0))
    top = float(dsteps[-1]) if len(dsteps) else 0.0
    r = np.linspace(0.0, max(top, 1.0), RESIDUAL_GRID)
    mean = float(dsteps.mean()) if len(dsteps) else 0.0
    if mean <= 0.0:
        return r, np.zeros_like(r), 0.0
    # E[(D - r)+] from the sorted steps: sum of those above r minus r x their count
    above = np.searchsorted(dsteps, r, side="right")
    tail_sum = np.concatenate([np.cumsum(dsteps[::-1])[::-1], [0.0]])[above]
    return r, (tail_sum - r * (len(dsteps) - above)) / (len(dsteps) * mean), mean


#: probability bins of the drain a whole prompt waits for (`drain_nodes`): fine in the upper tail, which sets
#: the TTFT percentiles
DRAIN_BINS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)
#: points per `DRAIN_BINS` bin over which a node's drain is averaged (its conditional mean)
DRAIN_BIN_POINTS = 16


def drain_nodes(residual: tuple[np.ndarray, np.ndarray, float], occupancy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode steps until every request in flight has finished, as nodes of its distribution: the max of n
    residuals (`residual_tail`) for n Poisson of mean ``occupancy`` (sequences decoding, one per deployment), whose
    CDF is exp(-occupancy P(R > r)) (the Poisson count's generating function at the residuals' CDF; no request in
    flight, probability exp(-occupancy): 0 steps). Returns (steps, shape (n, M): each `DRAIN_BINS` bin's mean of
    the quantile function, weights (M,): the bins' probabilities): `drain_cdf` of a queue found idle, read by
    `cdf_nodes`."""
    occ = np.atleast_1d(np.asarray(occupancy, dtype=float))
    none = np.zeros(len(occ))
    return cdf_nodes(residual[0], drain_cdf(residual, np.zeros(0), occ, none, none))


def drain_cdf(residual: tuple[np.ndarray, np.ndarray, float], decode_steps: np.ndarray, occupancy: np.ndarray,
              long_share: np.ndarray, busy: np.ndarray) -> np.ndarray:
    """CDF (on `residual_tail`'s grid r of decode steps, shape (n, RESIDUAL_GRID)) of the drain a whole prompt over
    the iteration's budget waits for at the head of the queue, one row per replica: with probability 1 - ``busy``
    it found the queue empty, and the decodes in flight are Poisson of mean ``occupancy``, each its length-biased
    residual (CDF exp(-occupancy P(R > r)), `drain_nodes`); with probability ``busy`` it found a backlog, and the
    decodes in flight are those the replica admitted since the previous such prompt drained: that prompt (alone,
    its decoding just begun) and the K prompts that fit the budget behind it (K geometric, P(K = k) =
    p (1 - p)^k with p = ``long_share``, the share of prompts over the budget), each with its whole decode (steps
    D from the sorted ``decode_steps``): the max of 1 + K draws of D, CDF p F(r) / (1 - (1 - p) F(r))."""
    r, tail, _ = residual
    dsteps = np.sort(np.maximum(np.asarray(decode_steps, dtype=float), 0.0))
    F = np.searchsorted(dsteps, r, side="right") / max(len(dsteps), 1)
    p = np.clip(np.asarray(long_share, dtype=float), 1e-12, 1.0)[:, None]
    backlog = p * F[None, :] / np.maximum(1.0 - (1.0 - p) * F[None, :], 1e-300)
    idle = np.exp(-np.maximum(np.asarray(occupancy, dtype=float), 0.0)[:, None] * tail[None, :])
    u = np.clip(np.asarray(busy, dtype=float), 0.0, 1.0)[:, None]
    return (1.0 - u) * idle + u * backlog


def cdf_nodes(r: np.ndarray, cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A distribution given by its CDF ``cdf`` (n, G) on the grid ``r`` (G,) as `DRAIN_BINS` nodes: each bin's
    mean of the quantile function (linear between grid points; `DRAIN_BIN_POINTS` points a bin), one row each.
    Returns (nodes (n, M), the bins' probabilities (M,))."""
    edges = np.asarray(DRAIN_BINS)
    frac = (np.arange(DRAIN_BIN_POINTS) + 0.5) / DRAIN_BIN_POINTS
    u = (edges[:-1, None] + np.diff(edges)[:, None] * frac[None, :]).ravel()        # (U,)
    n, G = cdf.shape
    H = np.maximum.accumulate(np.clip(cdf, 0.0, 1.0), axis=1)
    # every row's first grid point at or above u, in one search: rows offset by 2 (the CDFs lie in [0, 1])
    off = 2.0 * np.arange(n)[:, None]
    j = np.searchsorted((H + off).ravel(), (u[None, :] + off).ravel(), side="left").reshape(n, -1)
    j = np.clip(j - G * np.arange(n)[:, None], 1, G - 1)
    rows = np.arange(n)[:, None]
    h0, h1 = H[rows, j - 1], H[rows, j]
    t = np.clip((u[None, :] - h0) / np.maximum(h1 - h0, 1e-300), 0.0, 1.0)
    steps = np.where(H[:, :1] >= u[None, :], r[0], r[j - 1] + t * (r[j] - r[j - 1]))
    return steps.reshape(n, len(edges) - 1, DRAIN_BIN_POINTS).mean(axis=2), np.diff(edges)


def weighted_nodes(values: np.ndarray, weights: np.ndarray, edges: tuple[float, ...] | None = None,
                   points: int = DRAIN_BIN_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """A discrete distribution per row (``values`` (n, N), shared ``weights`` (N,) summing to 1) re-read as nodes
    at the probability bins ``edges`` (None: `LENGTH_BINS`): each bin's mean of the row's quantile function over
    ``points`` points a bin. Returns (nodes (n, M), the bins' probabilities (M,)), the same bins for every row."""
    e = np.asarray(LENGTH_BINS if edges is None else edges)
    u = (e[:-1, None] + np.diff(e)[:, None] * ((np.arange(points) + 0.5) / points)[None, :]).ravel()
    n, N = values.shape
    order = np.argsort(values, axis=1)
    v = np.take_along_axis(values, order, axis=1)
    cw = np.cumsum(np.asarray(weights, dtype=float)[order], axis=1)
    cw = cw / cw[:, -1:]
    # every row's first value whose cumulative weight reaches u, in one search: rows offset by 2
    off = 2.0 * np.arange(n)[:, None]
    j = np.searchsorted((cw + off).ravel(), (u[None, :] + off).ravel(), side="left").reshape(n, -1)
    j = np.clip(j - N * np.arange(n)[:, None], 0, N - 1)
    q = np.take_along_axis(v, j, axis=1)
    return q.reshape(n, len(e) - 1, points).mean(axis=2), np.diff(e)


def _prepared(kw: Mapping[str, Any], moe_dp: float | None = None) -> Any:
    """`inference.core.prepare` of the `ServingModel._kw`-style arguments ``kw`` (one replica each), one entry per
    deployment (a factorized preparation expanded to its rows)."""
    from ..inference.core import prepare
    from ..inference.speculative import with_speculative
    p = prepare(kw["model"], kw["gpu"], kw["tp"], kw["pp"], kw["weight_dtype"], kw["act_dtype"], kw["kv_dtype"], 1,
                kw["ep"], kw["efficiency"], kw["prices"], engine=kw["engine"], attn_dp=kw["attn_dp"], moe_dp=moe_dp,
                eplb=kw["eplb"], moe_act_dtype=kw["moe_act_dtype"], moe_a2a=kw.get("moe_a2a"))
    p = p.take(p.inv) if p is not None and p.inv is not None else p
    return p if p is None else with_speculative(p, kw.get("speculative"))


def cached_prefill_ms(kw: Mapping[str, Any], batch: Any, input_len: float, hit: Any,
                      moe_dp: float | None = None, pipelined: bool = False) -> np.ndarray:
    """Time (ms) of a prefill of ``batch`` prompts of ``input_len`` tokens each, the first ``hit`` tokens of each
    (one value per deployment) already in the prefix cache: the ``input_len - hit`` new tokens attend to the whole
    prompt, sum over positions hit + 1 .. input_len = (input_len - hit)(input_len + hit + 1) / 2 query-key pairs a
    prompt (`inference.estimate`'s prefill of the whole batch at once, priced with those tokens and pairs, as the
    simulator prices the chunk after a cache hit; ``hit = 0`` gives `estimate`'s ``ttft_ms``). ``kw``: the
    deployments' `ServingModel._kw`; at least one prompt token is computed. ``pipelined``: instead, the time
    (ms) per batch of a worker whose pipeline is kept full of such batches (pp of them in flight, each passing
    every stage: the batch's forward through all stages / pp; the batch's own prefill where pp = 1), the rate a
    saturated prefill worker serves batches at (vLLM's batch queue, SGLang's micro-batches)."""
    from ..inference.estimate import replica_time_s
    p = _prepared(kw, moe_dp)
    L = float(input_len)
    h = np.clip(np.asarray(hit, dtype=float), 0.0, max(L - 1.0, 0.0))
    B = np.asarray(batch, dtype=float)
    new = L - h
    if pipelined:   # pp batches of B prompts split over the pp micro-batches: one batch's pass, per pp batches
        P = np.asarray(p.pp, dtype=float)
        return 1e3 * np.asarray(replica_time_s(p, P * B * new, P * B * new * (L + h + 1.0) * 0.5, 0.0, 0.0, P * B,
                                               P * B) / P, dtype=float)
    return 1e3 * np.asarray(replica_time_s(p, B * new, B * new * (L + h + 1.0) * 0.5, 0.0, 0.0, B, B, prefill=True),
                            dtype=float)


def cached_context_ms(kw: Mapping[str, Any], N: Any, input_len: float, output_len: float, hit: Any,
                      max_num_tokens: Any) -> np.ndarray:
    """Time (ms) one iteration of `inference.max_throughput`'s steady state at prompts of ``input_len - hit``
    tokens (the tokens a request prefills, ``hit`` of its ``input_len``-token prompt found in the prefix cache)
    leaves out: the new tokens attend to the whole prompt, (input_len - hit)(input_len + hit + 1) / 2 query-key
    pairs a prompt (as `cached_prefill_ms`), not (input_len - hit)(input_len - hit + 1) / 2, and the decodes read
    the whole context, input_len + output_len / 2 tokens on average, not input_len - hit + output_len / 2. The
    difference of `inference.estimate`'s replica time over the steady state's mean iteration (its work as
    `inference.estimate.steady_work` counts it, ``N`` sequences in flight) with and without the cached context;
    what the simulator's StepModel adds for that work. ``kw``: the deployments' `ServingModel._kw`, one entry per
    deployment (n); ``N`` of shape (n,) or (n, k); ``hit`` and ``max_num_tokens`` one per deployment, or columns
    (n, 1) with N of shape (n, k); 0 where nothing is cached."""
    from ..inference.estimate import replica_time_s
    p = _prepared(kw)
    L, osl = float(input_len), float(output_len)
    N = np.asarray(N, dtype=float)
    h = np.broadcast_to(np.asarray(hit, dtype=float), N.shape)
    mnt = np.broadcast_to(np.asarray(max_num_tokens, dtype=float), N.shape)
    new = L - h
    n_it = np.maximum(osl, N * (new + osl) / mnt)
    T, D = N * new / n_it, N * (osl - 1.0) / n_it
    S = D + N / n_it
    work = [(T * (L + h + 1.0) * 0.5, D * (L + 0.5 * osl)), (T * (new + 1.0) * 0.5, D * (new + 0.5 * osl))]
    # deployments along the last axis, as the prepared coefficients (one per deployment) broadcast
    t = [np.asarray(replica_time_s(p, T.T, A.T, D.T, K.T, S.T, N.T), dtype=float).T for A, K in work]
    return 1e3 * np.where(h > 0, t[0] - t[1], 0.0)


def _prompts_at_once(x: np.ndarray, pp: np.ndarray) -> np.ndarray:
    """The mean prompts one prefill iteration carries under an open loop, per deployment: ``x`` = arrival rate x
    the iteration a prompt rides on (the prompts that arrive while one prefills, `ride_ms`). An iteration takes the
    prompts that arrived during the one before: a run of prefill iterations starts with one prompt and goes on while
    prompts arrived meanwhile (each time with probability 1 - e^-x, Poisson), so it holds e^x iterations and
    1 + x e^x prompts on average: x + e^-x prompts an iteration (1 at low load, x at high load). Only where pp > 1
    (inf elsewhere: no bound, the closed loop's groups the steady state was fitted with): a pipeline overlaps the
    micro-batches of prompts that arrive together, while a prompt that arrives alone holds every decode for its whole
    pass through the stages (vLLM's batch queue and SGLang's micro-batches: a decode's next token waits behind the
    prompt's micro-batch on each stage); at pp = 1 an iteration's prompts cost about their tokens' worth however
    grouped."""
    x = np.asarray(x, dtype=float)
    return np.where(np.asarray(pp) > 1, x + np.exp(-x), np.inf)


def _riding_prompts(p: Any, N: np.ndarray, lam_ms: np.ndarray, input_len: np.ndarray, output_len: float,
                    max_num_tokens: np.ndarray) -> np.ndarray:
    """The mean prompts one iteration that carries prompts holds under an open loop of ``lam_ms`` requests per ms
    at occupancy ``N`` (pp == 1, the decodes riding beside the prompts): those that arrived during the iteration
    before, x + e^-x with x = rate x that iteration (`_prompts_at_once`'s count; the iteration `ride_ms` with that
    many prompts: a fixed point from the fewest, `RIDING_STEPS` steps), at least the N prompts of a cycle spread
    over its max(O, N (I + O) / max_num_tokens) iterations and at most N. ``p``: prepared deployments (`_prepared`);
    ``N`` (n,) or (n, k); ``lam_ms``, ``input_len`` (I, tokens a request prefills) and ``max_num_tokens`` one per
    deployment."""
    N = np.asarray(N, dtype=float)
    col = (lambda v: np.asarray(v, dtype=float)[:, None]) if N.ndim == 2 else (lambda v: np.asarray(v, dtype=float))
    n_it = np.maximum(output_len, N * (col(input_len) + output_len) / col(max_num_tokens))
    least = np.maximum(N / n_it, 1.0)
    k = least
    for _ in range(RIDING_STEPS):
        x = col(lam_ms) * ride_ms(p, N, input_len, output_len, max_num_tokens, prompts=k)
        k = np.minimum(np.maximum(x + np.exp(-x), least), np.maximum(N, 1.0))
    return k


def _pair_behaviours(d: Any) -> tuple[list[Any], np.ndarray]:
    """The engine behaviour of each distinct (engine, GPU) pair of ``d``'s deployments (`inference.resolve.
    engine_behaviours`, one resolution a pair) and, per deployment, the index of its pair in that list."""
    from ..inference.resolve import engine_behaviours
    e, g = np.asarray(d.engine, dtype=object), np.asarray(d.gpu, dtype=object)
    ce, cg = pd.factorize(e, use_na_sentinel=False)[0], pd.factorize(g, use_na_sentinel=False)[0]
    _, first, inverse = np.unique(ce * (int(cg.max(initial=0)) + 1) + cg, return_index=True, return_inverse=True)
    return list(engine_behaviours(e[first], g[first])), np.ravel(inverse)


def _overlap(model: Any, d: Any) -> np.ndarray:
    """1.0 for each deployment of ``d`` whose aggregated replicas form their next batch while the current one runs,
    else 0.0, from its engine release on its GPU (`inference.resolve.engine_behaviours`, None / "auto" resolved as
    `inference.resolve.default_engine` does): without speculative decoding `profiles.overlap_rows` of the release
    for ``model``'s linear-attention kind, with it where the release keeps the loop (`inference.resolve.
    EngineBehaviour.spec_overlap`, as `inference.speculative.with_speculative` has it); not with pp > 1 (the
    pipeline loops), as ``Coeffs.overlap`` and the simulator's replicas (`Scheduler.overlaps`) have it. One
    resolution per distinct (engine, GPU) pair."""
    from ..inference.resolve import _lookup
    from ..profiles import overlap_rows
    kind = str(getattr(_lookup("model", model), "linear_attn_kind", "") or "")
    own, inverse = _pair_behaviours(d)
    named = np.empty(len(own), dtype=object)
    named[:] = [b.named for b in own]
    plain = overlap_rows(named, kind)
    keeps = np.array([b.spec_overlap for b in own], dtype=float)
    no_draft = np.asarray(d.speculative, dtype=object) == None  # noqa: E711 (elementwise: None where off)
    on = np.where(no_draft, plain[inverse], keeps[inverse])
    return np.where(np.asarray(d.pp) <= 1, on, 0.0)


def _in_lockstep(model: Any, d: Any) -> np.ndarray:
    """Per deployment of ``d``: whether its attention-DP ranks step together through MoE layers (attn_dp > 1 on an
    MoE model; `inference.estimate.steps_in_lockstep`), so a prompt on any rank holds every rank's step."""
    from ..inference.resolve import _lookup
    adp = np.asarray(d.attn_dp, dtype=float)
    return (adp > 1.0) & bool(getattr(_lookup("model", model), "n_experts", 0))


def _idle_ahead(model: Any, d: Any) -> np.ndarray:
    """1.0 for each deployment of ``d`` whose ranks step in lockstep (attn_dp > 1 on an MoE model) and whose idle
    attention-DP rank forms its step ahead while its group steps (`profiles.forms_idle_ahead` of the engine resolved
    as `_overlap` resolves it), else 0.0 (`inference.estimate.ahead_clients`' ``idle_ahead``). One resolution per
    distinct (engine, GPU) pair."""
    from ..profiles import forms_idle_ahead
    lock = _in_lockstep(model, d)
    if not lock.any():
        return np.zeros(len(d))
    own, inverse = _pair_behaviours(d)
    idle = np.array([forms_idle_ahead(b.engine) for b in own], dtype=float)
    return np.where(lock, idle[inverse], 0.0)


def _prefill_alone(d: Any) -> np.ndarray:
    """1.0 for each deployment of ``d`` whose engine runs prefill batches alone (`profiles.prefill_alone_mask`)."""
    from ..profiles import prefill_alone_mask
    return prefill_alone_mask(list(d.engine))


def _unset(values: Any) -> np.ndarray:
    """Per entry of `values` (a sequence of knob values), whether it is left unset: None, or a float NaN (a
    column's empty cell)."""
    return np.array([v is None or (isinstance(v, float) and v != v) for v in values], dtype=bool)


def ride_ms(p: Any, N: np.ndarray, input_len: Any, output_len: float, max_num_tokens: Any,
            lanes: Any = 1.0, prompts: Any = 1.0) -> np.ndarray:
    """Time (ms) of an iteration that carries one prompt's first chunk (min(input_len, max_num_tokens) tokens)
    beside the other N - 1 sequences' decodes (their mean context input_len + output_len / 2): how long the iteration
    a prompt arrives during lasts, with pp > 1 its micro-batch passing every stage with its share of the decodes
    (`inference.estimate.chunk_pass_s`, as `StepModel.time_ms`). ``p``: prepared deployments, one entry each
    (`_prepared`); ``N`` of shape (n,) or (n, k); ``input_len`` and ``max_num_tokens`` one per deployment;
    ``lanes``: the batches in flight at least (`_lanes_opened`), N's shape or one per deployment; ``prompts``
    (>= 1, N's shape or one per deployment; default one): the prompts whose first chunks the iteration carries
    (together at most max_num_tokens tokens) beside the other N - prompts sequences' decodes."""
    from ..inference.estimate import chunk_pass_s, pipeline_lanes, replica_time_s
    N = np.asarray(N, dtype=float)
    col = (lambda v: np.asarray(v, dtype=float)[:, None]) if N.ndim == 2 else (lambda v: np.asarray(v, dtype=float))
    L = col(input_len) + 0.0 * N
    k = np.asarray(prompts, dtype=float)
    if k.ndim == 1 and N.ndim == 2:
        k = k[:, None]
    T = np.minimum(k * L, col(max_num_tokens))
    c = T / k                                                     # each prompt's chunk
    A = k * c * (c + 1.0) * 0.5
    D = np.maximum(N - k, 0.0)
    K = D * (L + 0.5 * float(output_len))
    # the batches in flight: those the load keeps open, or more where this round overflows a budget
    pp = np.broadcast_to(np.asarray(p.pp, dtype=float), N.shape[:1])   # (a preparation may hold one for all)
    lanes = pipeline_lanes(col(pp), N, T + D, col(max_num_tokens), lanes)
    # deployments along the last axis, as the prepared coefficients (one per deployment) broadcast
    t = replica_time_s(p, T.T, A.T, D.T, K.T, (D + k).T, lanes.T)
    return 1e3 * np.asarray(chunk_pass_s(p, t, T.T, A.T, D.T, K.T, lanes.T), dtype=float).T


def _lanes(d: Any, N: np.ndarray, prompts: np.ndarray, isl: Any, floor: Any = None) -> np.ndarray:
    """The batches in flight of each deployment's replicas at occupancy N (`inference.estimate.pipeline_lanes`,
    the engines' rule: one until a schedule overflows a budget, so a pipeline keeps one batch at low load) with
    `prompts` (`_prompts_at_once`) of `isl` tokens beside the N sequences' decodes in a round: when the engine forms
    its next batch (each return, `_next_return` in the simulator) and how many prompts its queue passes at once.
    1 where pp == 1. `floor`: the batches the load keeps open (`_lanes_opened`; None: none)."""
    from ..inference.estimate import pipeline_lanes
    pp = np.asarray(d.pp, dtype=float)
    N = np.asarray(N, dtype=float)
    mnt = np.asarray(d.max_num_tokens, dtype=float)
    T = np.minimum(np.minimum(np.asarray(prompts, dtype=float), np.maximum(N, 1.0)) * isl, pp * mnt)
    return pipeline_lanes(pp, N, T + np.maximum(N - T / isl, 0.0), mnt, floor)


def _lanes_opened(pp: np.ndarray, lam: np.ndarray, held: Any, overflows: Any) -> tuple[np.ndarray, np.ndarray]:
    """(the batches in flight an open loop at `lam` requests/s keeps open, the rate its replicas hold at most), per
    deployment with pp > 1 stages. The engines keep one batch in flight until a schedule overflows a budget
    (`_lanes`), and a batch lives while it holds requests: a load beyond what the batches in flight serve fills
    their slots, and a schedule then admits the prompts of the sequences that finished since the batch's last
    return; where such a burst overflows a budget (`overflows(lanes)`) the engine opens another batch, else the
    replica stays saturated on the batches it has. `held(lanes)`: requests/s the replica holds over that many
    batches. The rate held is that of the most batches a saturated replica opens."""
    lanes = np.ones_like(pp)
    cap = held(lanes)
    x_max = cap.copy()
    done = lam < cap * 0.999
    grow = np.ones(pp.shape, dtype=bool)          # the saturated replica still opens batches
    for k in range(2, int(pp.max()) + 1):
        grow &= (pp >= k) & overflows(np.minimum(float(k - 1), pp))
        if not np.any(grow):
            break
        c = held(np.where(grow, float(k), lanes))
        x_max = np.where(grow, c, x_max)
        step = grow & ~done
        lanes = np.where(step, float(k), lanes)
        done |= step & (lam < c * 0.999)
    return lanes, x_max


def _burst_tail(lam_ms: np.ndarray, round_ms: np.ndarray, prefill_ms: np.ndarray, N: np.ndarray,
                lanes: Any, isl: Any, mnt: Any) -> np.ndarray:
    """The probability that an open loop's prompt starts a round whose prompts overflow a budget of `mnt` tokens
    in a batch's schedule (and so open another batch, `_lanes`): each of the `lanes` batches returns once a round
    of `round_ms` and takes the prompts that arrived since the last return, lam x round / lanes on average, beside
    its N / lanes decodes; a prompt in the batch lengthens the next round by its prefill (`prefill_ms`), so the
    counts cluster: negative binomial with that mean and variance mean / (1 - a), a = lam x prefill / lanes
    (a >= 1: the batches' prefill alone outruns them, a burst is certain: 1). A round overflows where it takes
    more than (mnt - N / lanes) / isl prompts. Arrays broadcast (`lam_ms` per ms, times in ms)."""
    a = lam_ms * prefill_ms / lanes
    mu = np.maximum(lam_ms * round_ms / lanes, 1e-12)
    q = np.clip(1.0 - a, 1e-9, 1.0)                          # the negative binomial's p = mean / variance
    size = mu * q / np.maximum(1.0 - q, 1e-12)
    room = np.maximum(np.ceil((mnt - N / lanes) / isl - 1e-9), 1.0)
    # imported on first use: scipy.stats costs a fresh process ~0.5 s of CPU (`import objectives.serving`)
    from scipy.stats import nbinom, poisson
    tail = np.where(q >= 1.0, poisson.sf(room - 1.0, mu), nbinom.sf(room - 1.0, np.maximum(size, 1e-12), q))
    return np.where(a >= 1.0, 1.0, tail)


def _burst_opens(lam_ms: np.ndarray, round_ms: np.ndarray, prefill_ms: np.ndarray, N: np.ndarray,
                 lanes: np.ndarray, isl: np.ndarray, mnt: np.ndarray, n_req: np.ndarray) -> np.ndarray:
    """Whether an open loop's prompts, over a run of `n_req` requests at `lam_ms` per ms, overflow a budget of
    `mnt` tokens at least once in a batch's schedule and so open another batch (which then lives on with its
    requests, `_lanes`): where the run's expected overflows (its `n_req` prompts, each the start of a round that
    overflows with `_burst_tail`'s probability at occupancy N) reach one."""
    return (lam_ms * prefill_ms / lanes >= 1.0) | (n_req * _burst_tail(lam_ms, round_ms, prefill_ms, N, lanes, isl, mnt)
                                                    >= 1.0)


def _pipe_start(lam_ms: np.ndarray, n_req: np.ndarray, N: np.ndarray, step_ms: np.ndarray,
                hazard_ms: np.ndarray, steps: float, t_max: np.ndarray) -> dict[str, np.ndarray]:
    """A pipeline's start on one batch until a schedule first overflows a budget and opens a second (`_lanes`),
    one row per replica offered `lam_ms` requests per ms over a run of `n_req`. The run starts empty and its
    occupancy builds at the arrival rate (the first sequences leave only a residency later, and the residency
    lengthens as the batch grows) until the one-batch state's, N's last column; each round's prompts overflow at
    rate `hazard_ms` (per ms: lam x `_burst_tail` of the rounds there), which grows with the occupancy as the
    rounds lengthen. The first overflow comes at T with P(T > t) = exp(-H(t)), H the hazard's integral, and at
    the latest at `t_max` (ms; one per row: where the one batch serves less than the arrivals, its prompt queue
    grows linearly until it holds more than a budget's prompts, inf elsewhere); over
    t < min(T, run): "share", the expected share of the run's requests that arrive before it (lam E[min(T, run)] /
    n_req); "N", their mean occupancy at arrival; "tokens", the share of the run's decode steps (`steps` a
    request) taken before it (each sequence steps once a decode step, `step_ms` apart); "round", the mean time per
    decode step there (ms). `N`, `step_ms`, `hazard_ms`: (rows, k), k increasing occupancies from 0 to the
    one-batch state's, each reached at N / lam (its last point's values hold beyond it). Between points the hazard
    is constant (the survival exponential, H's increments exact) and g linear, each piece integrated exactly."""
    lam = np.maximum(np.asarray(lam_ms, dtype=float), 1e-300)
    n_req = np.asarray(n_req, dtype=float)
    run = np.minimum(n_req / lam, np.asarray(t_max, dtype=float))
    t = np.minimum(N / lam[:, None], run[:, None])                       # ms, clipped to the run
    dt = np.diff(t, axis=1)
    H = np.concatenate([np.zeros((len(N), 1)), np.cumsum(0.5 * (hazard_ms[:, :-1] + hazard_ms[:, 1:]) * dt,
                                                         axis=1)], axis=1)
    surv = np.exp(-H)
    # beyond the last point: constant values, the survival exp(-H_K - h_K (t - t_K)) up to the run's end
    rest = np.maximum(run - N[:, -1] / lam, 0.0)
    x = hazard_ms[:, -1] * rest
    tail = surv[:, -1] * rest * np.where(x > 1e-12, -np.expm1(-x) / np.maximum(x, 1e-300), 1.0)

    # over a piece of length dt where H rises by x: int exp(-h s) ds = dt phi(x), int (s / dt) exp(-h s) ds = dt psi(x)
    x = np.diff(H, axis=1)
    small = x < 1e-4
    xs = np.where(small, 1.0, x)
    phi = np.where(small, 1.0 - x * (0.5 - x / 6.0), -np.expm1(-xs) / xs)
    psi = np.where(small, 0.5 - x * (1.0 / 3.0 - x / 8.0), (-np.expm1(-xs) - xs * np.exp(-xs)) / (xs * xs))

    def integral(g: np.ndarray) -> np.ndarray:                           # E[int_0^min(T, run) g dt]
        piece = surv[:, :-1] * dt * (g[:, :-1] * phi + (g[:, 1:] - g[:, :-1]) * psi)
        return piece.sum(axis=1) + g[:, -1] * tail

    per_step = N / np.maximum(step_ms, 1e-12)                            # decode steps per ms
    t1, occ, tok = integral(np.ones_like(N)), integral(N), integral(per_step)
    return {"share": np.clip(lam * t1 / np.maximum(n_req, 1e-300), 0.0, 1.0),
            "N": occ / np.maximum(t1, 1e-300),
            "tokens": np.clip(tok / np.maximum(n_req * max(steps, 1.0), 1e-300), 0.0, 1.0),
            "round": np.where(tok > 0, occ / np.maximum(tok, 1e-300), step_ms[:, 0])}


def _pool_pipe_service(pp: np.ndarray, lam_ms: np.ndarray, pass_ms: np.ndarray, batched_ms: np.ndarray,
                       isl: np.ndarray, mnt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(service per prompt (ms), utilisation, the most prompts its queue holds) of the prompt queue of a
    disaggregated prefill worker with `pp` > 1 stages offered `lam_ms` prompts per ms. The engines keep one batch
    in flight until a schedule overflows a budget of `mnt` tokens (`inference.estimate.pipeline_lanes`), so the
    worker passes a prompt per batch in flight, each taking its pass through every stage (`pass_ms`, the prompt
    alone); the batches in flight are those the prompts that arrive together open (`_prompts_at_once` over a
    pass, `isl` tokens each), the service no shorter than the saturated pipeline's per prompt (`batched_ms`, pp
    batches of the pool's batch in flight). A batch of a prefill worker lives for its pass only (its prompts leave
    prefilled), so where one batch's passes fall behind the arrivals the queue grows until it holds more than a
    budget's prompts (the third value, max(floor(mnt / isl), 1)), whose schedule overflows into another batch:
    the queue stays within that many prompts."""
    from ..inference.estimate import pipeline_lanes
    prompts = _prompts_at_once(lam_ms * pass_ms, pp)
    lanes = pipeline_lanes(pp, prompts, prompts * isl, mnt)
    S = np.maximum(pass_ms / lanes, batched_ms)
    return S, np.minimum(lam_ms * S, 0.999), np.maximum(np.floor(mnt / isl), 1.0)


def _mix_quantile(share: np.ndarray, first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray],
                  level: str) -> np.ndarray:
    """The `level` percentile of a mixture of two distributions, each known by its `PERCENTILES` (`first` and
    `second`: {"p50": ..., ...}, one value per row), `share` (per row) of the mass in the first: each survival
    function log-linear between its percentiles (from 1 at 0, beyond its p99 on the slope from its p90), the
    mixture's solved by bisection between the two distributions' own percentiles."""
    levels = [Z_Q[p] for p in PERCENTILES]

    def log_surv(x: np.ndarray, qs: Mapping[str, np.ndarray]) -> np.ndarray:
        xs = [np.zeros_like(x)] + [np.asarray(qs[p], dtype=float) for p in PERCENTILES]
        ls = [0.0] + [math.log(1.0 - z) for z in levels]
        out = np.zeros_like(x)
        for j in range(len(xs) - 1, 0, -1):      # the last segment also beyond its end; lower ones where x falls
            lo, hi = xs[j - 1], np.maximum(xs[j], xs[j - 1] + 1e-9)
            line = ls[j - 1] + (x - lo) / (hi - lo) * (ls[j] - ls[j - 1])
            out = line if j == len(xs) - 1 else np.where(x <= hi, line, out)
        return np.minimum(out, 0.0)

    a, b = np.asarray(first[level], dtype=float), np.asarray(second[level], dtype=float)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    target = 1.0 - Z_Q[level]
    s = np.asarray(share, dtype=float)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        surv = s * np.exp(log_surv(mid, first)) + (1.0 - s) * np.exp(log_surv(mid, second))
        above = surv > target
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return 0.5 * (lo + hi)


def closed_loop_ttft_quantiles(mean_ms: Any, mean_share: Any, share: float, wave_iter_ms: Any, wave_iters: Any,
                                wave_base_ms: Any, floor_ms: Any) -> dict[str, np.ndarray]:
    """The TTFT percentiles (`PERCENTILES`, ms per row) of a closed loop of clients that all send their first
    request at once, as a benchmark at a fixed max-concurrency (and the simulator's clients) runs: a mixture of

    - the start-up wave, ``share`` of the requests (every client's first: clients / requests sent): its prompts
      are prefilled first come, first served in iterations of ``wave_iter_ms`` each carrying a full budget of
      prompt tokens, ``wave_iters`` of them for the wave (`inference.estimate.startup_wave`), so the k-th of a
      rank's N prompts has its first token after ceil(k wave_iters / N) iterations, ``wave_base_ms`` more (the
      engine's host time, the own chunk's pass through a pipeline): uniform over the wave's iterations;
    - the steady state, the rest: at least ``floor_ms`` (the host time and a prompt's own iteration(s) alone), the
      wait beyond it Erlang-2: the sum of the two waits `inference.estimate.round_prompt_work` prices, for the
      iteration in progress when the prompt arrives and for the prompts queued ahead of it in its round
      (`lockstep.round_queue`), each taken as exponential with half the mean wait; that mean what the model's
      mean TTFT ``mean_ms`` leaves after the wave's fitted share of it (``mean_share``, `Efficiency` ``ttft_wave``:
      mean = (1 - s) steady + s max(wave, steady), `_run_ttft_s`; 1 where the mean holds no wave: the steady state
      is then the mean).

    A percentile that falls in the wave (share above 1 - level) reads the wave's iterations. Where the wave's mean
    is below the steady state's (few clients) it adds no tail: every percentile is the steady state's. The mean
    stays the model's (its wave share is fitted, ``share`` is the workload's)."""
    mean = np.asarray(mean_ms, dtype=float)
    ws = np.asarray(mean_share, dtype=float)
    t_w = np.maximum(np.asarray(wave_iter_ms, dtype=float), 1e-12)
    n_w = np.maximum(np.asarray(wave_iters, dtype=float), 1.0)
    base = np.asarray(wave_base_ms, dtype=float)
    wave_mean = base + 0.5 * (1.0 + n_w) * t_w
    steady = np.where((ws < 1.0) & (wave_mean > mean), (mean - ws * wave_mean) / np.maximum(1.0 - ws, 1e-12), mean)
    steady = np.clip(steady, 0.0, mean)
    f0 = np.minimum(np.asarray(floor_ms, dtype=float), steady)
    spread = np.maximum(steady - f0, 1e-9)
    w = np.where(wave_mean > steady, share, 0.0)

    def cdf(x: np.ndarray) -> np.ndarray:
        y = 2.0 * np.maximum(x - f0, 0.0) / spread                 # Erlang-2 of mean `spread`
        f_s = 1.0 - np.exp(-y) * (1.0 + y)
        f_w = np.clip(np.floor((x - base) / t_w + 1e-9) / n_w, 0.0, 1.0)
        return (1.0 - w) * f_s + w * f_w

    out = {}
    with np.errstate(invalid="ignore", over="ignore"):
        for p in PERCENTILES:
            z = Z_Q[p]
            lo = np.minimum(f0, base)
            hi = np.maximum(f0 + spread * (1.0 - math.log(1.0 - z)), base + np.ceil(n_w) * t_w) + 1e-6
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                below = cdf(mid) < z
                lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
            # (a row whose wave is not priced, NaN, keeps its mean; one whose mean is not finite, its mean)
            out[p] = np.where(np.isfinite(hi) & np.isfinite(mean), hi, mean)
    return out


class ServingModel:
    """The analytical serving model of one LLM under one workload (see the module docstring).

    Attributes: model (catalog name), workload, prices ({gpu: USD per GPU-hour} overrides), input_len and
    output_len (mean tokens), outputs (sorted output lengths the workload draws, tokens), gpu_memory_utilization
    (the engines' memory setting that sizes each replica's KV cache, in the engine's own meaning as in
    `inference.max_throughput`; None: each engine's default), kv_capacity_tokens (each aggregated or decode
    replica's KV cache in tokens instead of the memory model's, as `Scheduler(kv_capacity_tokens=)`; None: the
    memory model's).
    """

    def __init__(self, model: str, workload: Workload, prices: Mapping[str, float] | None = None,
                 efficiency: Any = None, gpu_memory_utilization: float | None = None,
                 kv_capacity_tokens: Any = None) -> None:
        if not isinstance(workload, Workload):
            raise ValueError(f"workload must be a serving.Workload, got {workload!r:.100}")
        self.model = model
        self.workload = workload
        self.prices = dict(prices) if prices else None
        self.efficiency = efficiency  # a calibrated profile's factors (None: the shipped fit)
        self.gpu_memory_utilization = gpu_memory_utilization
        self.kv_capacity_tokens = kv_capacity_tokens
        self._prefix_tables: dict[int, PrefixTable | None] = {}   # per number of caches (`prefix_hit_rate`)
        # mean lengths of the requests the workload sends, in whole tokens (the iteration model counts tokens)
        self.input_len, self.output_len = (float(max(1, round(x))) for x in workload.mean_lengths())
        # Kingman's G/G/1 factor on the prompts' queue waits: ca^2 + cs^2 (1 for Poisson arrivals of fixed lengths,
        # the M/D/1 queue; bursty arrivals and mixed prompt lengths wait longer), `Workload.variability`
        ca2, cs2 = workload.variability()
        self.burst = float(sum((ca2, cs2)))
        self._ca2_arrivals = ca2
        # length mixtures (`_mixture`): prompt-length nodes (None when every prompt has the same length: the
        # closed form above prices it exactly), output-length nodes, and a trace's index of dispersion of counts
        self._len_nodes = length_nodes(workload) if cs2 > 0 else None
        self._windows_ms = np.geomspace(1.0, 1e7, DISPERSION_WINDOWS)
        self._idc = workload.arrival_dispersion(self._windows_ms / 1e3)
        self._profile = workload.arrival_profile(MODULATION_WINDOWS)
        self._tokens = workload.prompt_profile(MODULATION_WINDOWS)    # each window's mean prompt over the run's
        self._idc_within = workload.arrival_dispersion(self._windows_ms / 1e3, demodulate=MODULATION_WINDOWS)
        # a trace replayed with its own arrivals: its requests in arrival order, for the decodes' stalls behind the
        # prompts that really arrive during each request's decode (`trace_lives`, `ServingModel._trace_tpot`)
        self._lives = trace_lives(workload, self._len_nodes[0]) if self._len_nodes is not None else None
        self._splits: dict[int, tuple[TraceLives, np.ndarray]] = {}    # its shares over ranks (`split_lives`)
        # requests sharing an arrival time: E[X] of their number X (1: no ties)
        self._batch = (workload.arrival_batches() or (1.0, 1.0))[0]
        # the prompt a decoding sequence holds in the KV cache on average: its prompt weighted by its decode steps,
        # E[L (O - 1)] / E[O - 1] (a trace's long prompts that come with long outputs stay longer; independent
        # draws: the mean prompt), `_kv_excess`
        self._kv_prompt = self.input_len
        if workload.trace is not None:
            reqs = workload.requests()
            self.outputs = np.sort(np.asarray(reqs.output_tokens, dtype=float))
            steps_o = np.maximum(np.asarray(reqs.output_tokens, dtype=float) - 1.0, 0.0)
            if steps_o.sum() > 0:
                self._kv_prompt = float(max(1, round(float(np.asarray(reqs.input_tokens, dtype=float) @ steps_o
                                                           / steps_o.sum()))))   # whole tokens
        else:
            if isinstance(workload.output_len, Dist):
                self.outputs = np.sort(workload.output_len.sample(np.random.default_rng(workload.seed), 20_000)
                                       .astype(float))
            else:
                self.outputs = np.array([float(workload.output_len)])
        # static batching: S(s) = P(output - 1 >= s); _alive averages S over a request's decode steps
        d = self.outputs - 1.0
        surv = 1.0 - np.searchsorted(d, np.arange(1.0, max(d[-1], 0.0) + 1.0), side="left") / len(d)
        dd = d[d >= 1].astype(np.int64)
        self._alive = float((np.cumsum(surv)[dd - 1] / dd).mean()) if len(dd) else 1.0
        # output-length nodes of the requests that decode (two tokens or more: a TPOT), for the TPOT percentiles
        dec = self.outputs[self.outputs >= 2]
        self._out_nodes = quantile_nodes(dec if len(dec) else np.array([2.0]), OUTPUT_BINS)
        # the output lengths' squared coefficient of variation: a slot's residency varies as they do (`slot_wait`)
        o = np.asarray(self.outputs, dtype=float)
        self._out_cs2 = float(o.var() / max(o.mean(), 1e-300) ** 2) if len(o) else 0.0
        # whole prompts waiting for the running decodes to finish (`drain_nodes`): the decode steps left to a
        # request in flight, tail P(R > r) on a grid of r, once per workload
        self._residual = residual_tail(d)
        self._decode_steps = np.sort(np.maximum(d, 0.0))

    # -- the open-loop arrival rate ---------------------------------------------------------------------------
    @property
    def rate(self) -> float | None:
        """Offered requests/s of an open-loop workload (a trace's mean rate when it has arrivals), else None
        (closed loop or all at once)."""
        w = self.workload
        if w.concurrency is not None:
            return None
        if w.rate is not None:
            return None if math.isinf(w.rate) else float(w.rate)
        req = w.requests()
        if req.arrival_s is None or len(req.arrival_s) < 2:
            return None
        span = float(req.arrival_s[-1] - req.arrival_s[0])
        return (len(req.arrival_s) - 1) / span if span > 0 else None

    # -- helpers -----------------------------------------------------------------------------------------------
    def _kw(self, d: Deployments) -> dict[str, Any]:
        """The `inference.estimate` / `max_throughput` arguments of the deployments (of the aggregated replicas and
        the decode pool), with ``speculative`` where they run speculative decoding (one value: `evaluate` prices
        each value's deployments apart, `speculative_groups`)."""
        kw = dict(model=self.model, gpu=d.gpu, tp=d.tp, pp=d.pp, weight_dtype=d.weight_dtype,
                  act_dtype=d.act_dtype, kv_dtype=d.kv_dtype, ep=d.ep, attn_dp=d.attn_dp, prices=self.prices,
                  engine=d.engine, efficiency=self.efficiency, eplb=d.eplb, moe_act_dtype=d.moe_act_dtype,
                  moe_a2a=d.moe_a2a)
        spec = pd.unique(d.speculative)
        if len(spec) > 1 or (len(spec) == 1 and spec[0] is not None):
            if len(spec) > 1:
                raise ValueError(f"deployments with speculative {sorted(str(s) for s in spec)} priced in one call; "
                                 f"ServingModel.evaluate prices each value apart (speculative_groups)")
            kw["speculative"] = spec[0]
        return kw

    def _prefill_kw(self, d: Deployments) -> dict[str, Any]:
        """`_kw` of the prefill pool: its own GPU type, TP, PP, EP, attention DP and dtypes (the deployment's own
        in agg), with the deployments' ``speculative``: a prefill worker runs the draft layer over each prompt it
        prefills (`speculative.draft_extend_s`; its weights and its KV beside the target's, the KV handed off
        with it), as an aggregated replica does and as `serving.simulate`'s prefill pool does."""
        kw = self._kw(d)
        return {**kw, "gpu": d.prefill_gpu, "tp": d.prefill_tp, "ep": d.prefill_ep,
                "attn_dp": d.prefill_attn_dp, "pp": d.prefill_pp, "weight_dtype": d.prefill_weight_dtype,
                "act_dtype": d.prefill_act_dtype, "kv_dtype": d.prefill_kv_dtype}

    def _at(self, d: Deployments, N: np.ndarray, isl: Any = None, prompts: Any = None,
            lanes: Any = None, clients: Any = None, startup: bool = False) -> dict[str, np.ndarray]:
        """``inference.max_throughput``'s ttft_ms and tpot_ms (arrays) of each replica at occupancy N (sequences in
        flight, rounded up to whole sequences: the engine runs whole batches; a lone request decodes at batch 1).
        N of shape (n,), or (n, k): k occupancies per deployment, rows in that order (k > 1: the deployments
        broadcast as a column against N, so the calls of one bisection reuse one preparation of their
        coefficients, `reusing_prepared`; k = 1 reads as (n,), the cheaper one-dimensional call). ``isl``: the prompt
        tokens a request prefills, one per deployment (prefix caching: its prompt less the cached tokens); None:
        the workload's mean prompt. ``prompts``: the most prompts one prefill iteration carries, one per deployment
        (or one per occupancy, N's shape)
        (`inference.estimate.split_work`; None: as many as the budget holds, the closed loop's groups). ``lanes``:
        the batches in flight a pipeline keeps at least, one per deployment (`_lanes_opened`; None: none).
        ``clients``: a closed loop's clients over the deployment's dp replicas (whole; N's shape (n,) only; None:
        the steady state without clients): `max_throughput`'s ``concurrency``, whose clients split the cycle at the
        first token (`inference.estimate.cycle_split`) and wait for a slot beyond N. ``startup``: also the closed
        loop's start-up wave (`inference.estimate.max_throughput_times`' `STARTUP` keys)."""
        n = len(d)
        kw, mnt = self._kw(d), d.max_num_tokens
        per_deployment = kw   # one entry per deployment, as `cached_context_ms` takes them (kw may gain a column)
        kw = {**kw, "adp_balance": d.balance}
        if clients is not None:   # vLLM's preemption churn re-prefills from the prefix cache (`retraction_churn`)
            kw["prefix_caching"] = d.prefix_caching
        cached = isl is not None
        isl = self.input_len if isl is None else isl
        if prompts is not None:
            prompts = np.asarray(prompts, dtype=float)
        if np.ndim(N) == 2 and np.shape(N)[1] == 1:
            N = N[:, 0]
            if prompts is not None and prompts.ndim == 2:   # one per occupancy: its one column
                prompts = prompts[:, 0]
        if np.ndim(N) == 2:
            kw = {k: v[:, None] if isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == n else v
                  for k, v in kw.items()}
            mnt = mnt[:, None]
            isl = isl[:, None] if np.ndim(isl) == 1 else isl
            if prompts is not None and prompts.ndim == 1:   # one per deployment: a column against N
                prompts = prompts[:, None]
            if lanes is not None:
                lanes = np.asarray(lanes, dtype=float)[:, None]
        nb = np.maximum(np.ceil(N - 1e-9), 1.0)
        # (with clients, the deployment's dp replicas share them: `max_throughput`'s clients per rank)
        out = max_throughput_times(**kw, dp=1 if clients is None else d.dp, input_len=isl,
                                   output_len=self.output_len, max_batch_size=nb, max_num_tokens=mnt,
                                   gpu_memory_utilization=self.gpu_memory_utilization,
                                   kv_capacity_tokens=self.kv_capacity_tokens, prompts_at_once=prompts,
                                   lanes_at_least=lanes, concurrency=clients, startup=startup)
        if cached:
            # prompts of isl tokens, the rest of the workload's mean prompt in the prefix cache: every iteration
            # also carries the attention over the cached context (`cached_context_ms`); TTFT is iterations too
            osl = self.output_len
            extra = cached_context_ms(per_deployment, nb, self.input_len, osl, self.input_len - isl, mnt)
            ttft, tpot, cycle, its = (np.asarray(out[k], dtype=float).reshape(np.shape(nb)) for k in TIMES)
            n_it = np.maximum(osl, nb * (isl + osl) / mnt)
            t_it = cycle / n_it
            # TPOT's decode window holds `window_iters` iterations per output token (`estimate.steady_cycle`)
            out = {**out, **{k: v.reshape(np.shape(out["tpot_ms"])) for k, v in
                             (("tpot_ms", tpot + extra * its),
                              ("ttft_ms", ttft * (1.0 + extra / np.maximum(t_it, 1e-12))),
                              ("cycle_ms", cycle + extra * n_it), ("window_iters", its))}}
        return out

    def _quantile_output(self, q: float) -> float:
        return float(np.quantile(self.outputs, q))

    # -- prefix caching ----------------------------------------------------------------------------------------
    def _prefix_table(self, caches: int) -> PrefixTable | None:
        """The workload's `PrefixTable` dealt over ``caches`` caches (computed once per count)."""
        if caches not in self._prefix_tables:
            self._prefix_tables[caches] = prefix_table(self.workload, caches)
        return self._prefix_tables[caches]

    def prefix_hit_rate(self, d: Deployments) -> np.ndarray:
        """Share of prompt tokens each deployment serves from its prefix cache (0..1; `serving.prefix`): 0 where
        ``prefix_caching`` is off or the workload's requests carry no hash blocks (nothing is known to be shared).
        The caches are the prefill ranks' (every rank of an aggregated deployment, the prefill pool's of a
        disaggregated one), each holding as many blocks as its KV cache (the memory model's capacity in context
        tokens, `inference.max_throughput`'s, in the simulator's blocks: ``Scheduler.kv_block_size`` tokens),
        the requests dealt round robin over them."""
        n = len(d)
        out = np.zeros(n)
        if n == 0 or not d.prefix_caching.any() or self._prefix_table(1) is None:
            return out
        i = np.flatnonzero(d.prefix_caching)
        sd = d.take(i)
        dis = sd.mode == "disagg"
        kw = self._prefill_kw(sd)
        for key, own in (("gpu", sd.gpu), ("tp", sd.tp), ("ep", sd.ep), ("attn_dp", sd.attn_dp), ("pp", sd.pp),
                         ("weight_dtype", sd.weight_dtype), ("act_dtype", sd.act_dtype), ("kv_dtype", sd.kv_dtype)):
            kw[key] = np.where(dis, kw[key], own)                 # an aggregated rank caches its own prompts
        caches = np.where(dis, sd.prefill_replicas * sd.prefill_attn_dp, sd.dp * sd.attn_dp).astype(np.int64)
        p = _prepared(kw)
        mnt = sd.max_num_tokens.astype(float)
        from ..inference import kv_pool
        from ..inference.estimate import kv_capacity_tokens
        cap = np.broadcast_to(np.asarray(kv_capacity_tokens(p, mnt, memory_setting=self.gpu_memory_utilization),
                                         dtype=float), (len(i),))
        if self.kv_capacity_tokens is not None:                   # it sizes aggregated and decode replicas
            cap = np.where(dis, cap, np.broadcast_to(np.asarray(self.kv_capacity_tokens, dtype=float), (len(i),)))
        slope = np.maximum(np.broadcast_to(np.asarray(kv_pool.seq_slope(p.sgl_pool > 0, p.kv_win_share, p.window),
                                                      dtype=float), (len(i),)), MIN_KV_SLOPE)
        bs = Scheduler.kv_block_size
        tab1 = self._prefix_table(1)
        assert tab1 is not None
        blocks = np.maximum(np.floor(np.floor(cap / slope) / bs) * bs // tab1.block_tokens, 1.0)
        for c in np.unique(caches):
            tab = self._prefix_table(int(c))
            assert tab is not None
            m = caches == c
            out[i[m]] = tab.hit_rate(blocks[m])
        return out

    # -- the model ---------------------------------------------------------------------------------------------
    @reusing_prepared()
    def evaluate(self, d: Deployments, slo: SLO | None = None, rate: float | np.ndarray | None = None) -> pd.DataFrame:
        """`_evaluate` of every deployment, those with one ``speculative`` value priced together
        (`speculative_groups`), their rows back in `d`'s order."""
        groups = speculative_groups(d)
        if groups is None:
            return self._evaluate(d, slo, rate)
        parts = [self._evaluate(d.take(i), slo, rate if rate is None or np.ndim(rate) == 0
                                else np.asarray(rate)[i]) for i in groups]
        attrs = [p.attrs for p in parts]

        def stitched(frames: list[pd.DataFrame]) -> pd.DataFrame:
            frames = [f.set_axis(i) for f, i in zip(frames, groups)]
            for f in frames:
                f.attrs = {}
            return pd.concat(frames).sort_index().reset_index(drop=True)

        frame = stitched(parts)
        for key in attrs[0]:
            got = [a.get(key) for a in attrs]
            frame.attrs[key] = None if any(g is None for g in got) else stitched(got)
        return frame

    def _evaluate(self, d: Deployments, slo: SLO | None = None, rate: float | np.ndarray | None = None
                  ) -> pd.DataFrame:
        """Metrics of every deployment (one row each): ttft_ms, tpot_ms, e2e_ms (means), their p50/p90/p99
        (``ttft_ms_p99``, ...), throughput_tok_s, tok_s_per_gpu, tok_s_per_user, requests_per_s, usd_per_mtok,
        joules_per_tok, mem_per_gpu_gib, batch_size (sequences in flight per decode replica), fits, n_gpus,
        slo_attainment and goodput_req_s (with ``slo``), reason, source, prefill_pool_req_s and
        decode_pool_req_s (requests/s each pool of a disaggregated deployment can serve: rate matching; NaN in agg). ``rate`` (requests/s, scalar or one per
        deployment) overrides the workload's open-loop rate; under a closed-loop workload it runs the same lengths
        open loop at that rate (the users' count, and their limit on the batch, set aside)."""
        isl, osl = self.input_len, self.output_len
        conc = self.workload.concurrency if rate is None else None
        lam_total = self.rate if rate is None else rate
        kw = self._kw(d)
        n = len(d)
        dis = d.mode == "disagg"
        adp = d.attn_dp.astype(float)                                 # scheduling ranks per (decode) replica
        replicas = np.where(dis, d.dp - d.prefill_replicas, d.dp).astype(float) * adp
        mbs = d.max_batch_size.astype(float)
        if conc is not None:
            mbs = np.minimum(mbs, np.ceil(conc / replicas))
        mt = inference.max_throughput(**kw, dp=d.dp, input_len=isl, output_len=osl, max_batch_size=mbs,
                                      max_num_tokens=d.max_num_tokens,
                                      gpu_memory_utilization=self.gpu_memory_utilization,
                                      kv_capacity_tokens=self.kv_capacity_tokens, prefix_caching=d.prefix_caching,
                                      adp_balance=d.balance)
        N = mt["batch_size"].to_numpy(float).copy()
        ttft = mt["ttft_ms"].to_numpy(float).copy()
        tpot = mt["tpot_ms"].to_numpy(float).copy()
        tput = mt["throughput_tok_s"].to_numpy(float).copy()
        mem = mt["mem_per_gpu_gib"].to_numpy(float).copy()
        fits = mt["fits"].to_numpy(bool).copy()
        n_gpus = mt["n_gpus"].to_numpy(float)
        d = _one_kv_dtype(d, dis, mt["kv_dtype"].to_numpy(object))
        # prefix caching: the share of prompt tokens each deployment serves from its cache and the mean tokens a
        # request's prefill skips (`prefix_hit_rate`; none without hash blocks or with the knob off, and then
        # nothing below changes). The prompt's KV is whole (memory, the batch in flight, the decodes' context, the
        # disaggregated handoff); its prefill computes isl_new tokens (`cached_prefill_ms` where a prompt is priced
        # alone or in a prefill batch, the steady state at isl_new prompt tokens)
        hit_rate = self.prefix_hit_rate(d)
        hit = np.minimum(np.round(hit_rate * isl), isl - 1.0)         # whole tokens (the model counts tokens)
        cached = hit > 0
        isl_new: Any = isl - hit if cached.any() else isl
        # a closed loop on aggregated chunked-prefill replicas: its clients' `max_throughput` (`_at(clients=)`), whose
        # GPU TTFT and decode window split the request cycle (`inference.estimate.cycle_split`), lockstep
        # attention-DP ranks' own full-budget prefill iteration included, and whose rate is Little's law's, the
        # wait for a slot in the TTFT: as `inference.max_throughput(concurrency=)` prices the same clients
        by_clients = np.zeros(n, dtype=bool)
        if conc is not None:
            by_clients = ~dis & (d.batching == "continuous") & d.chunked_prefill.astype(bool)
        if conc is not None and by_clients.any():
            c = np.flatnonzero(by_clients)
            st = self._at(d.take(c), N[c], isl_new[c] if cached.any() else None, clients=conc, startup=True)
            ttft[c], tpot[c] = st["ttft_ms"], st["tpot_ms"]
            wave = {k: st[k] for k in STARTUP}
            tput[c] = conc * osl / np.maximum(ttft[c] + max(osl - 1.0, 0.0) * tpot[c], 1e-12) * 1e3
        if (cached & ~by_clients).any():
            c = np.flatnonzero(cached & ~by_clients)
            st = self._at(d.take(c), N[c], isl_new[c])     # the cached context priced too (`cached_context_ms`)
            ttft[c], tpot[c] = st["ttft_ms"], st["tpot_ms"]
            tput[c] = d.dp[c] * adp[c] * N[c] * osl / np.maximum(st["cycle_ms"], 1e-12) * 1e3
        q = {p: (ttft.copy(), tpot.copy()) for p in PERCENTILES}      # percentiles = means unless estimated below
        plain = ~d.chunked_prefill & ~dis
        k = np.maximum(1.0, np.floor(d.max_num_tokens / isl_new))
        wait_p = np.zeros(n)                                          # prefill-pool queue (disagg, open loop)
        pool_req = (np.full(n, np.nan), np.full(n, np.nan))           # disagg: prefill / decode pool capacity
        pre_reason = np.full(n, "", dtype=object)                     # disagg: why the prefill pool cannot run
        # each row's prefill pool's resolved format (the deployment's own in agg): the quality proxy takes the lower
        fmt = ["weight_dtype", "act_dtype", "kv_dtype"]
        pre_fmt = mt[fmt].reset_index(drop=True)
        if plain.any() or dis.any():
            sub = np.flatnonzero(plain | dis)
            sb = d.take(sub)
            ks = np.minimum(k[sub], np.maximum(N[sub], 1.0))
            # a disaggregated prefill rank batches the prompts its own token budget holds, at most its own max
            # batch and, under a closed loop, the clients' share of a rank (`prefill_max_batch_size` /
            # `prefill_max_num_tokens`: a P/D launch sets each server's; default the deployment's), not the decode
            # rank's batch in flight
            d_sub = dis[sub]
            if d_sub.any():
                p_mbs = sb.prefill_max_batch_size[d_sub].astype(float)
                if conc is not None:
                    p_mbs = np.minimum(p_mbs, np.ceil(conc / (sb.prefill_replicas[d_sub] * sb.prefill_attn_dp[d_sub])))
                ks[d_sub] = np.maximum(np.minimum(np.floor(sb.prefill_max_num_tokens[d_sub] / np.broadcast_to(
                    isl_new, (n,))[sub][d_sub]), p_mbs), 1.0)
            budget = np.where(d_sub, sb.prefill_max_num_tokens, sb.max_num_tokens)   # the prompts' pool's
            # prompts run on the prefill pool's GPU type, TP, EP and attention DP (the deployment's own in agg)
            pkw = self._prefill_kw(sb)
            pf = inference.estimate(**pkw, batch_size=ks, input_len=isl, output_len=1, max_num_tokens=budget)
            t_pf = pf["ttft_ms"].to_numpy(float)
            if cached[sub].any():
                t_pf = np.where(cached[sub], cached_prefill_ms(pkw, ks, isl, hit[sub]), t_pf)
            dec = inference.estimate(**self._kw(sb), batch_size=N[sub], input_len=isl, output_len=osl,
                                     max_num_tokens=sb.max_num_tokens)
            t_dec = dec["tpot_ms"].to_numpy(float)
            p_mask = plain[sub]
            if p_mask.any():
                i = sub[p_mask]
                cycle = np.ceil(N[i] / ks[p_mask]) * t_pf[p_mask] + (osl - 1.0) * t_dec[p_mask]
                tput[i] = d.dp[i] * adp[i] * N[i] * osl / cycle * 1e3
                ttft[i] = t_pf[p_mask] + 0.5 * t_dec[p_mask]
                tpot[i] = (cycle - t_pf[p_mask]) / (osl - 1.0) if osl > 1 else t_dec[p_mask]
            d_mask = dis[sub]
            if d_mask.any():
                i = sub[d_mask]
                # scheduling ranks of each pool: workers x attention-DP ranks (each rank its own batch)
                w_p = d.prefill_replicas[i].astype(float)
                w_d = (d.dp[i] - d.prefill_replicas[i]).astype(float)
                n_p = w_p * d.prefill_attn_dp[i]
                n_d = w_d * adp[i]
                t_p, t_d = t_pf[d_mask], t_dec[d_mask].copy()
                steps = max(osl - 1.0, 1.0)
                # the pool's batch interval at saturation: a worker with pp > 1 stages keeps up to pp batches of
                # ks prompts in flight, each with its own token budget (vLLM's batch queue, SGLang's micro-
                # batches; the simulator's `_Replica._schedule_prefill`), so the stages pass pp batches in one
                # batch's pass, not in one pipelined batch's fill and drain (`cached_prefill_ms(pipelined=True)`)
                t_rate = t_p
                pipe = np.flatnonzero(d.prefill_pp[i] > 1)
                if len(pipe):
                    t_rate = t_p.copy()
                    t_rate[pipe] = cached_prefill_ms(self._prefill_kw(d.take(i[pipe])), ks[d_mask][pipe], isl,
                                                     hit[i[pipe]], pipelined=True)
                r_pre = n_p * ks[d_mask] / t_rate                    # requests per ms the prefill pool can do
                r_dec = n_d * N[i] / (steps * t_d)                    # ... and the decode pool
                r = np.minimum(r_pre, r_dec)
                pool_req[0][i], pool_req[1][i] = r_pre * 1e3, r_dec * 1e3           # requests/s each pool can do
                if lam_total is not None:                             # an open-loop rate below capacity
                    offered = np.broadcast_to(np.asarray(lam_total, dtype=float), (n,))[i] / 1e3
                    r = np.minimum(r, offered)
                low = r < r_dec * (1 - 1e-9)                          # the decode pool runs below its batch
                slots = N[i].copy()                                   # sequences a decode replica can hold
                if low.any():
                    j = np.flatnonzero(low)
                    dj = d.take(i[j])
                    # Little's law on a decode rank: occupancy = its rate x residency (steps x t_decode(occupancy)).
                    # The linear share of the full batch prices the steps at the full batch's t_decode, an upper
                    # bound; a few fixed-point steps (t_decode grows with the occupancy) bring it down to the
                    # occupancy the rate gives (which matters for small attention-DP ranks)
                    lam_rank = r[j] / n_d[j]                          # requests per ms per decode rank
                    occ = np.maximum(1.0, N[i][j] * r[j] / r_dec[j])
                    for _ in range(DECODE_FIXED_POINT_STEPS):
                        est = inference.estimate(**self._kw(dj), batch_size=np.ceil(occ - 1e-9), input_len=isl,
                                                 output_len=osl, max_num_tokens=dj.max_num_tokens)
                        occ = np.clip(lam_rank * steps * est["tpot_ms"].to_numpy(float), 1.0, occ)
                    # the step at the whole sequences the rank runs at most of the time; the occupancy itself stays
                    # Little's law's (the slots' offered load below: a rounded-up occupancy overstated it, 5 for 4.2
                    # of 8 slots, doubling the chance to wait)
                    est = inference.estimate(**self._kw(dj), batch_size=np.ceil(occ - 1e-9), input_len=isl,
                                             output_len=osl, max_num_tokens=dj.max_num_tokens)
                    t_d[j] = est["tpot_ms"].to_numpy(float)
                    N[i[j]] = np.clip(lam_rank * steps * t_d[j], 1e-9, occ)
                # KV bytes of one prompt on each prefill GPU (the estimate's per-GPU KV of ks prompts)
                kv_bytes = pf["kv_cache_gib"].to_numpy(float)[d_mask] * GIB / ks[d_mask]
                # each GPU's KV shard crosses the link between the pools' GPUs (one scale-up domain, else the
                # scale-out network: inference.comm.kv_transfer_gbs, per GPU here); no network known: not runnable
                tp_i, ptp_i = d.tp[i].astype(float), d.prefill_tp[i].astype(float)
                gname, pname = d.gpu[i].astype(str), d.prefill_gpu[i].astype(str)
                pool_gpus = w_p * ptp_i * d.prefill_attn_dp[i] * d.prefill_pp[i] + w_d * tp_i * adp[i] * d.pp[i]
                # the prefill worker's KV shards (one per prefill TP rank) move in parallel
                link = kv_transfer_gbs(pname, ptp_i, gname, tp_i, pool_gpus) / np.minimum(ptp_i, tp_i)
                no_net = ~np.isfinite(link)
                link = np.where(no_net, np.minimum(gpu_table(gname)["link_bw_gbs"].astype(float),
                                                   gpu_table(pname)["link_bw_gbs"].astype(float)), link)
                fits[i] &= ~no_net
                link_reason = np.full(len(i), "", dtype=object)
                for pos in np.flatnonzero(no_net):
                    link_reason[pos] = kv_link_missing(pname[pos], gname[pos])
                # ... as stored: pools given two KV dtypes do not run (`kv_dtype_mismatch`)
                p_kv, d_kv = pf["kv_dtype"].to_numpy(object)[d_mask], mt["kv_dtype"].to_numpy(object)[i]
                for pos in np.flatnonzero(p_kv != d_kv):
                    fits[i[pos]] = False
                    link_reason[pos] = kv_dtype_mismatch(p_kv[pos], d_kv[pos])
                # ... through the engine's KV connector (its latency per request, its rate where slower; the
                # deployment's engine whichever pool is priced on the roofline, `connector_engines`); the engine's
                # host time once per pass of its P/D front end (`serving.handoff`, as the silicon slice's
                # disaggregated rows are predicted)
                eff = self.efficiency if self.efficiency is not None else default_eff()
                sd = d.take(i)
                pkw = self._prefill_kw(sd)
                host, _, engines, ahead = front_end(pkw, len(i), eff)
                kv_engines = connector_engines(engines, mt["engine"].to_numpy(object)[i])   # decode pool's, resolved
                xfer_ms = kv_read_ms(kv_bytes, link, kv_engines, eff)
                tput[i] = r * osl * 1e3
                fwd = first_token_forwards(kv_engines)
                # a busy decode worker's scheduler learns of a finished read a step or more after it is seen done
                # (vLLM: the poll's result comes with the output of the step that polled, its async scheduling's
                # steps formed ahead)
                notice = kv_notice_steps(kv_engines, decode_overlap(self._kw(sd), len(i), eff)[1])
                hand = handoff_ms(t_d, xfer_ms, N[i], fwd, notice)
                ttft[i] = host + t_p + hand
                tpot[i] = t_d
                if conc is not None:
                    # closed loop: the pools coupled through the C clients (`disagg_closed_loop`, the closed form
                    # the silicon slice's disaggregated measurements are predicted with); the first token from the
                    # decode worker and independent clients, as the simulator counts them
                    cl = disagg_closed_loop(pkw, self._kw(sd), isl, osl, float(conc), n_p, n_d,
                                            ks[d_mask], slots, xfer_ms, host_ms=host, forwards=fwd, lag=ahead,
                                            notice=notice)
                    ttft[i], tpot[i], N[i] = cl["ttft_ms"], cl["tpot_ms"], cl["occupancy"]
                    tput[i] = cl["req_per_ms"] * osl * 1e3
                slot_q = {p: np.zeros(len(i)) for p in PERCENTILES}
                slot_mean = np.zeros(len(i))
                if lam_total is not None:
                    # a request whose KV arrives while every decode slot is taken waits for one: the handoff goes to
                    # the least-loaded decode rank, so it waits only when every rank of the pool is full, then as one
                    # pooled queue (`slot_wait`, as the aggregated replicas', but M/M/c: the prefill pool hands its
                    # batches of prompts over together, arrivals burstier than Poisson, which Allen-Cunneen's
                    # (ca^2 + cs^2) / 2 keeps near 1 with fixed outputs; halving it overshot the simulated capacity,
                    # docs/profiles.md). A rank's own Erlang C (each rank fed its share at random) undershot it. The
                    # wait delays the first token, the decode worker's (bounded by what the run builds at the decode
                    # pool's capacity, its backlog when the prefill pool hands it more than that)
                    c_wait, drain = slot_wait(slots, N[i], steps * t_d, n_d)
                    n_req = float(self.workload.size)
                    lam_d = np.minimum(offered, r_pre)                # the prefill pool passes at most its capacity
                    for p in PERCENTILES:
                        slot_q[p] = run_wait(np.where(c_wait > 1 - Z_Q[p], drain * np.log(np.maximum(
                            c_wait / (1 - Z_Q[p]), 1.0)), 0.0), n_req, lam_d, r_dec, p)
                    slot_mean = run_wait(c_wait * drain, n_req, lam_d, r_dec)
                if lam_total is not None:
                    # open loop: a prompt arriving at a free prefill worker runs alone (one prompt's prefill);
                    # otherwise it waits for the pool's earlier prompts: M/D/1 on the pool's work at the batched
                    # rate (utilisation rho = served / prefill capacity, service per prompt S / n_p), bounded by
                    # what the run builds at the pool's capacity r_pre (its backlog when offered more than that)
                    t_one = inference.estimate(**pkw, batch_size=1, input_len=isl, output_len=1,
                                               max_num_tokens=sd.prefill_max_num_tokens)["ttft_ms"].to_numpy(float)
                    t_one_full = t_one
                    if cached[i].any():
                        t_one = np.where(cached[i], cached_prefill_ms(pkw, 1.0, isl, hit[i]), t_one)
                    rho = np.minimum(r / np.maximum(r_pre, 1e-300), 0.999)
                    S = t_rate / ks[d_mask]
                    # ... and where the worker forms its next step while the current one runs (`front_end`'s lag),
                    # a Poisson prompt that finds it busy (rho) waits for the step formed ahead where that step
                    # holds what waited as the one in progress began (rho again, as `disagg_closed_loop`; an empty
                    # one leaves the scheduler blocked on the step in flight, which then takes the prompt, as the
                    # aggregated open loop's idle replica, `_open_loop`'s lag). Those prompts came before it: the
                    # M/D/1 wait below already holds their work (S each); what the overlap adds is that the prompt
                    # runs in a step of its own instead of sharing theirs, its prefill alone less its batched share
                    # (a prefill step is compute-bound: unlike a decode iteration, a prompt riding on it is not
                    # free). Charged beside the front end's time, which every TTFT below adds
                    host = host + ahead * rho * rho * np.maximum(t_one - S, 0.0)
                    # pp > 1: a worker keeps one batch in flight until a schedule overflows a budget, as the
                    # aggregated replicas (`_lanes`): its queue passes a prompt per batch in flight, each prompt's
                    # pass through every stage (`t_one`), and where one batch falls behind the arrivals the queue
                    # holds up to a budget's prompts before another opens, spread about evenly between none and
                    # that many: its mean wait at most half of them over the arrival rate (Little's law: the
                    # queue bounded, as another batch opens at a budget's prompts, the worker clears the prompts
                    # as fast as they arrive, not at one batch's 1 / S1); never below the saturated pipeline's
                    # queue (`t_rate`, the budget's batches in flight)
                    S1, rho1, most = S, rho, np.full(len(i), np.inf)
                    if len(pipe):
                        S1, rho1 = S.copy(), rho.copy()
                        S1[pipe], rho1[pipe], room = _pool_pipe_service(
                            d.prefill_pp[i[pipe]].astype(float), r[pipe] / n_p[pipe], t_one[pipe], S[pipe],
                            np.broadcast_to(np.asarray(isl_new, dtype=float), (n,))[i[pipe]],
                            sd.prefill_max_num_tokens[pipe].astype(float))
                        most[pipe] = room / np.maximum(r[pipe] / n_p[pipe], 1e-300)
                    g = self.burst
                    md1 = g * rho * S / (2 * (1 - rho)) / n_p
                    wait_p[i] = run_wait(np.maximum(md1, np.minimum(g * rho1 * S1 / (2 * (1 - rho1)) / n_p, 0.5 * most)),
                                         n_req, offered, r_pre, burst=g)
                    for p in PERCENTILES:
                        md1_q = _mdl_quantile(rho, g * S / n_p, Z_Q[p])
                        wq = np.maximum(md1_q, np.minimum(_mdl_quantile(rho1, g * S1 / n_p, Z_Q[p]), Z_Q[p] * most))
                        q[p][0][i] = (t_one + run_wait(wq, n_req, offered, r_pre, p, burst=g) + host + hand + slot_q[p])
                        q[p][1][i] = t_d
                    ttft[i] = host + t_one + wait_p[i] + hand + slot_mean
                    if self._len_nodes is not None:
                        # prompt lengths that vary: the aggregated replicas' mixture (`_mixture`) on the pool. Each
                        # length node's prompt alone (`_prefill_nodes`, prefix caching's share as the mean
                        # prompt's) is its own service; it holds the pool for that prefill at the batched rate,
                        # S_j (t_rate / ks) / t_one / n_p; the queue on that work (`_length_queue`: the work's
                        # moments, a trace's batches and index of dispersion) instead of the M/D/1 wait with the
                        # gaps' CV^2; TTFT percentiles from the mixture of each length's service and the wait
                        L_w = self._len_nodes[1]
                        own = self._prefill_nodes(pkw, sd.prefill_max_num_tokens) * (t_one / np.maximum(t_one_full, 1e-12)
                                                                              )[:, None]
                        per = (t_rate / ks[d_mask]) / np.maximum(t_one, 1e-12) / n_p
                        qu = self._length_queue(own * per[:, None], r)
                        g_mix = qu["g"]
                        wait_p[i] = run_wait(qu["stationary"], n_req, offered, r_pre, burst=g_mix)
                        b = (host + hand)[:, None] + own
                        m_w = np.maximum(run_wait(qu["stationary"], n_req, np.minimum(offered, r_pre), r_pre,
                                                  burst=g_mix) / qu["p0"], 1e-9)
                        over = offered >= r_pre * 0.999
                        # a trace's own arrivals: the pool's queue over the run's windows (`_modulated`: a fluid
                        # backlog where a window's prompts outrun the pool, carried into the windows after it, the
                        # window's own stationary queue elsewhere), as the aggregated replicas'; a prompt holds no
                        # slot in the pool (it leaves when prefilled), so no slot fluid or slot wait there
                        mod = (self._modulated(own * per[:, None], offered, r_pre, np.full(len(i), n_req), qu["c2"],
                                               np.full(len(i), np.inf), np.zeros(len(i)))
                               if self._profile is not None else None)
                        if mod is not None:
                            wait_p[i] = mod["mean"]
                            # ... and each decode rank's slots over the same windows (`_slot_fluid`): fed the
                            # window's prompts, at most what the prefill pool passes, a storm fills the slots its
                            # quieter past left free before it queues; the queue past a full batch is a fluid floor
                            # added to the prefill pool's, the wait for a slot each window's (`window_slot_wait`)
                            W = len(mod["weights"])
                            lam_rank, cap_rank = offered / n_d, r_dec / n_d
                            pass_rank = r_pre / n_d
                            prof = self._profile                      # each window's rate over the mean
                            assert prof is not None
                            lam_k = np.minimum(lam_rank[:, None] * prof[None, :], pass_rank[:, None])
                            n_rank = n_req / n_d                     # each decode rank's share of the run
                            fl_d, held_d, _ = self._slot_fluid(lam_k, n_rank / lam_rank / W,
                                                               np.maximum(pass_rank, cap_rank), cap_rank, slots,
                                                               *self._out_nodes)
                            served_k = np.minimum(lam_k, cap_rank[:, None]).ravel()
                            slot_w = window_slot_wait(held_d, slots, 0.5 * steps * t_d, np.repeat(np.maximum(
                                n_rank / W, 1.0), W), served_k, np.repeat(cap_rank, W), mod["weights"])
                            slot_mean = fl_d @ mod["weights"] + slot_w["mean"]
                            slot_q = {p: slot_w[p] for p in PERCENTILES}
                            mod = {**mod, "fluid": mod["fluid"] + fl_d}
                        for p in PERCENTILES:
                            if mod is not None:
                                q[p][0][i] = window_quantile(b, L_w, mod, Z_Q[p]) + slot_q[p]
                                continue
                            hi = mixture_quantile(b, L_w, qu["p0"], m_w, Z_Q[p], qu["c2"])
                            q[p][0][i] = np.where(over, np.maximum(hi, b @ L_w + run_wait(
                                np.zeros(len(i)), n_req, offered, r_pre, p)), hi) + slot_q[p]
                        ttft[i] = b @ L_w + wait_p[i] + slot_mean
                mem[i] = np.maximum(mem[i], pf["mem_per_gpu_gib"].to_numpy(float)[d_mask])
                pf_ok = pf["fits"].to_numpy(bool)[d_mask]
                fits[i] &= pf_ok
                pre_fmt.loc[i, fmt] = pf[fmt].to_numpy(object)[d_mask]
                pre_reason[i] = np.where(pf_ok, link_reason,
                                         "prefill pool: " + pf["reason"].astype(str).to_numpy(object)[d_mask])
        stat = (d.batching == "static") & ~dis
        host_memo: list[HostTime] = []

        def host_at(N: Any, rows: np.ndarray) -> np.ndarray:
            """The aggregated `rows`' host time before the first token (ms, `handoff.HostTime`; one `prepare`)."""
            if not host_memo:
                host_memo.append(host_time(self._kw(d), n, self.efficiency if self.efficiency is not None
                                      else default_eff())[0])
            return host_memo[0].at(N, rows)
        static_cycle: np.ndarray | None = None      # a static closed loop's client cycle (ms), `static_groups`
        if stat.any():
            i = np.flatnonzero(stat)
            sb = d.take(i)
            # (a length mixture's prompts cost their extra prefill work over the mean prompt's each, `_excess`)
            excess = self._excess(sb) if self._len_nodes is not None else np.zeros(len(i))
            t_1 = inference.estimate(**self._kw(sb), batch_size=np.ones(len(i)), input_len=isl, output_len=osl,
                                     max_num_tokens=sb.max_num_tokens)["tpot_ms"].to_numpy(float)

            batch_memo: dict[bytes, tuple[np.ndarray, ...]] = {}

            def batch_of(nb: np.ndarray) -> tuple[np.ndarray, ...]:
                """A static batch of `nb` requests on each row of `sb`: (its cycle ms, prefill chunk ms, chunks,
                TPOT slope ms a sequence, prompts an iteration); one pricing a batch-size vector."""
                nb = np.asarray(nb, dtype=float)
                key = nb.tobytes()
                if key not in batch_memo:
                    batch_memo[key] = price_batch(nb)
                return batch_memo[key]

            def price_batch(nb: np.ndarray) -> tuple[np.ndarray, ...]:
                """`batch_of`'s pricing."""
                ks = np.minimum(k[i], np.maximum(nb, 1.0))
                t_pf = inference.estimate(**self._kw(sb), batch_size=ks, input_len=isl, output_len=1,
                                          max_num_tokens=sb.max_num_tokens)["ttft_ms"].to_numpy(float)
                if cached[i].any():
                    t_pf = np.where(cached[i], cached_prefill_ms(self._kw(sb), ks, isl, hit[i]), t_pf)
                t_n = inference.estimate(**self._kw(sb), batch_size=nb, input_len=isl, output_len=osl,
                                         max_num_tokens=sb.max_num_tokens)["tpot_ms"].to_numpy(float)
                slope = np.where(nb > 1, (t_n - t_1) / np.maximum(nb - 1.0, 1.0), 0.0)
                batch_steps = np.maximum(expected_max(self.outputs, nb) - 1.0, max(osl - 1.0, 0.0))
                t_decode = batch_steps * (t_1 - slope) + nb * max(osl - 1.0, 0.0) * slope
                n_pf = np.ceil(nb / ks)
                return n_pf * t_pf + t_decode + nb * excess, t_pf, n_pf, slope, ks

            def batch_tpot(nb: np.ndarray, t_pf: np.ndarray, n_pf: np.ndarray, slope: np.ndarray) -> np.ndarray:
                """The mean TPOT (ms) of a static batch of `nb` requests (`batch_of`'s parts)."""
                return t_1 + (nb - 1.0) * self._alive * slope + (n_pf - 1.0) * 0.5 * t_pf / max(osl - 1.0, 1.0)

            cycle, t_pf, n_pf, slope, ks = batch_of(N[i])
            tput[i] = d.dp[i] * adp[i] * N[i] * osl / cycle * 1e3
            tpot[i] = batch_tpot(N[i], t_pf, n_pf, slope)
            rotation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   # (rows, TTFT, TPOT) below
            if conc is not None:
                static_cycle = np.full(n, np.nan)
                # a closed loop of c clients a replica (`Scheduler`'s static policy: an idle replica takes the
                # requests waiting, at most N, and runs them to the batch's end; the API server of an engine's front
                # end, a row with host time, passes them one by one, `Scheduler.frontend_for`, so the run's first
                # request starts a batch alone). A client is back h after its batch ends (its host time: the
                # simulator's `_ClientReads` and API-server hold) and goes into the first batch to start after
                # that, so the batches run back to back in a rotation of n_rot, where the n_rot - 1 batches after a
                # client's own cover h: two when h is shorter than a batch (two groups alternating, each returning
                # while the other's batch runs), more where it is longer. The single split off at the start keeps
                # its batch; the other c - 1 clients fill the n_rot - 1 others evenly, at most N each (a batch's
                # cost is about affine in its requests, so any split of them costs about the same), the single's
                # batch taking what full ones leave: the clients' cycle is the rotation's batches, and past n_rot N
                # clients the batches are full and the rest queue (N / b(N), the rate above). A rotation longer
                # than the clients (n_rot > c) leaves the replica idle: a client's cycle is then its host time and
                # its own batch alone. Without a front end the clients' requests arrive together and stay one
                # batch (Little's law below). Outputs of varying lengths: see `loop`. Clients that do not divide
                # over the replicas (least-loaded routing, the simulator's `_route`): conc mod R replicas hold
                # ceil(c), the others floor(c), each priced as its own closed loop and their rates added
                c_all = conc / replicas[i]
                h = host_at(np.ones(len(i)), i)
                vary_out = bool(np.ptp(self.outputs) > 0)
                b_one = batch_of(np.ones(len(i)))[0]

                def batches(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                    """Batches of x requests each on average: whole batches of floor(x) and floor(x) + 1 requests
                    in the shares that make x (their mean cycle ms, their requests' mean TPOT ms, and that TPOT
                    under a prompt-length mixture, `_static_tpot`'s, else the same)."""
                    lo = np.floor(x)
                    hi = np.where(x > lo, lo + 1.0, lo)
                    b_lo, b_hi = batch_of(lo), batch_of(hi)
                    t_lo, t_hi = batch_tpot(lo, *b_lo[1:4]), batch_tpot(hi, *b_hi[1:4])
                    if self._len_nodes is not None:
                        m_lo, m_hi = (self._static_tpot(sb, nb, bb[4], bb[1], excess,
                                                        t_1 + (nb - 1.0) * self._alive * bb[3])
                                      for nb, bb in ((lo, b_lo), (hi, b_hi)))
                    else:
                        m_lo, m_hi = t_lo, t_hi
                    w_hi = (x - lo) * hi / x          # the requests' share in the larger batches
                    return (b_lo[0] + (x - lo) * (b_hi[0] - b_lo[0]), t_lo + w_hi * (t_hi - t_lo),
                            m_lo + w_hi * (m_hi - m_lo))

                def loop(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                    """A replica's closed loop of `c` clients (whole): a client's cycle (ms), its request's own
                    TTFT (its batch and host time; ms) and TPOT (ms); NaN where Little's law below prices the row
                    (one client, no front end, full batches of varying outputs)."""
                    cyc, o_ttft, o_tpot = (np.full(len(i), np.nan) for _ in range(3))
                    act = (c > 1.0) & (h > 0.0)
                    if not act.any():
                        return cyc, o_ttft, o_tpot
                    b_bar = b_one
                    for _ in range(2):       # n_rot from the rotation's mean batch, which it sets: two passes
                        n_rot = np.clip(1.0 + np.ceil(h / np.maximum(b_bar, 1e-9)), 2.0, np.maximum(c, 2.0))
                        m = np.where(act, np.clip((c - 1.0) / (n_rot - 1.0), 1.0, N[i]), 1.0)
                        # the single's batch, with what n_rot - 1 full batches leave of the others
                        first = np.clip(c - (n_rot - 1.0) * m, 1.0, N[i])
                        (b_f, tp_f, tm_f), (b_m, tp_m, tm_m) = batches(first), batches(m)
                        period = b_f + (n_rot - 1.0) * b_m
                        b_bar = period / n_rot
                    # outputs of varying lengths whose host time is longer than a batch (n_rot > 2): a request's
                    # output moves its return by less than a batch, so it rides the same rotation, each batch
                    # lasting its longest output (`batch_of`'s E[max]); shorter host times: below
                    rot = act & (~vary_out | (n_rot > 2.0))
                    full = c - (n_rot - 1.0) * m > N[i]
                    cyc = np.where(rot, np.where(full, c / N[i] * cycle, np.maximum(period, h + b_one)), np.nan)
                    # a request's own batch and host time (the rest of the cycle is its wait, Little's law below),
                    # the clients' mean over the single's batch and the others'; full batches: as priced above
                    w = np.clip(first / c, 0.0, 1.0)
                    own = (w * (b_f + host_at(first, i)) + (1.0 - w) * (b_m + host_at(m, i))
                           - max(osl - 1.0, 0.0) * (w * tp_f + (1.0 - w) * tp_m))
                    o_ttft = np.where(rot & ~full, own, o_ttft)
                    o_tpot = np.where(rot & ~full, w * tm_f + (1.0 - w) * tm_m, o_tpot)
                    vary = act & ~rot
                    if vary.any():
                        # a host time shorter than a batch with outputs of varying lengths (leftover 10): a batch's
                        # requests done more than h before its end are back for the next batch; those within h of
                        # it, its longest at least, miss that one and join the batch after. Of a batch of n,
                        # r(n) = n E[F(O + s)^(n - 1)] miss it (a request whose output O is within s = h / t(1)
                        # decode steps of the other n - 1's longest; F the outputs' CDF); the batches settle at
                        # n = c - r(n) (outputs of one length, r = n: c / 2, the two groups' mean above), at most
                        # N (past it the batches are full: the rate above); a client's cycle is at least its own
                        # batch and host time
                        u, cnt = np.unique(self.outputs, return_counts=True)
                        w_u = cnt / cnt.sum()
                        cdf = np.concatenate([[0.0], np.cumsum(w_u)])
                        f_near = cdf[np.searchsorted(u, u[None, :] + (h / np.maximum(t_1, 1e-9))[:, None],
                                                     side="right")]
                        n_b = np.clip(c / 2.0, 1.0, N[i])
                        for _ in range(6):       # a damped fixed point: n -> c - n oscillates where r(n) = n
                            n_free = c - n_b * ((f_near ** (n_b - 1.0)[:, None]) @ w_u)
                            n_b = np.where(vary, np.clip(0.5 * (n_b + n_free), 1.0, N[i]), 1.0)
                        b_n, tp_n, tm_n = batches(n_b)
                        sel = vary & (n_free <= N[i])
                        cyc = np.where(sel, np.maximum(c * b_n / n_b, h + b_n), cyc)
                        o_ttft = np.where(sel, b_n + host_at(n_b, i) - max(osl - 1.0, 0.0) * tp_n, o_ttft)
                        o_tpot = np.where(sel, tm_n, o_tpot)
                    return cyc, o_ttft, o_tpot

                lo_c = np.floor(c_all + 1e-9)
                f = np.where(c_all - lo_c > 1e-9, c_all - lo_c, 0.0)   # the replicas' share holding ceil(c)
                own_cycle, own_ttft, own_tpot = loop(np.where(f > 0.0, lo_c + 1.0, c_all))
                if (f > 0.0).any():
                    # each group's own loop, and where Little's law would price it, its cycle made explicit: one
                    # client (its batch and host time), else batches of min(c, N) (no front end: one batch; full
                    # batches: the rest queue)
                    groups = []
                    for cg, (cy, ot, op) in ((lo_c, loop(lo_c)), (lo_c + 1.0, (own_cycle, own_ttft, own_tpot))):
                        nb = np.clip(cg, 1.0, N[i])
                        b_n, tp_n, tm_n = batches(nb)
                        fb = np.isnan(cy)
                        cy = np.where(fb, np.where(cg <= 1.0, b_one + h, cg * b_n / nb), cy)
                        ot = np.where(fb, b_n + host_at(nb, i) - max(osl - 1.0, 0.0) * tp_n, ot)
                        op = np.where(fb, tm_n, op)
                        groups.append((cg / cy, cy, ot, op))      # (requests per ms a client group completes, ...)
                    (x_lo, _, ot_lo, op_lo), (x_hi, cy_hi, ot_hi, op_hi) = groups
                    x_lo = (1.0 - f) * np.where(lo_c > 0.0, x_lo, 0.0)
                    x_hi = f * x_hi
                    s_hi = x_hi / (x_lo + x_hi)                        # the requests' share from ceil(c) replicas
                    mix = lambda a, b: np.where(s_hi < 1.0, (1.0 - s_hi) * a, 0.0) + s_hi * b  # noqa: E731
                    frac = f > 0.0
                    own_cycle = np.where(frac, c_all / (x_lo + x_hi), own_cycle)   # conc / X, Little's law
                    own_ttft = np.where(frac, mix(ot_lo, ot_hi), own_ttft)
                    own_tpot = np.where(frac, mix(op_lo, op_hi), own_tpot)
                static_cycle[i] = own_cycle
                rotation = (np.isfinite(own_ttft), own_ttft, own_tpot)
            # ... and its host time before the first token, the API server's and the N streams' it sends
            # (`handoff.host_ms`), as the simulator prices every aggregated run's (`_frame`)
            ttft[i] = cycle - max(osl - 1.0, 0.0) * tpot[i] + host_at(N[i], i)
            if self._len_nodes is not None:
                tpot[i] = self._static_tpot(sb, N[i], ks, t_pf, excess, t_1 + (N[i] - 1.0) * self._alive * slope)
            if rotation is not None:
                # (a prompt-length mixture's TPOT: `_static_tpot`'s at the rotation's batches)
                sel = rotation[0]
                ttft[i] = np.where(sel, rotation[1], ttft[i])
                tpot[i] = np.where(sel, rotation[2], tpot[i])
        if conc is not None and (~dis).any():
            # a closed loop holds at most its clients in flight: N on each of a replica's dp x attn_dp ranks is the
            # busiest rank's ceil(conc / ranks), fewer clients leave the other slots empty (`max_throughput` so)
            # (the clients' own rows above already so)
            j = np.flatnonzero(~dis & ~by_clients)
            tput[j] = tput[j] * np.minimum(1.0, conc / np.maximum(replicas[j] * N[j], 1.0))
            if static_cycle is not None:
                two = np.isfinite(static_cycle)
                tput[two] = conc * osl / static_cycle[two] * 1e3
        if conc is not None and self._len_nodes is not None and (~dis & ~stat).any():
            # closed loop under a length mixture: each replica's cycle also holds its requests' extra prefill work
            # over the mean prompt's (`_attention_excess`, ms per request), spread over its iterations as the
            # prompts are, so its rate is 1 / (1 / X + excess) and its decode steps stretch alike; the first token
            # keeps the mean prompt's (a prompt's chunks fill whole iterations, E[L] / budget of them)
            j = np.flatnonzero(~dis & ~stat)
            x_rep = tput[j] / osl / (d.dp[j] * adp[j]) / 1e3         # requests per ms a replica completes
            stretch = 1.0 + x_rep * self._excess(d.take(j))
            tput[j], tpot[j] = tput[j] / stretch, tpot[j] * stretch
        for p in PERCENTILES:                                    # rows not estimated below: percentile = mean
            keep = ~(dis & (lam_total is not None))
            q[p][0][keep] = ttft[keep]
            q[p][1][keep] = tpot[keep]
        if conc is not None and by_clients.any():
            # the clients' TTFT percentiles: the start-up wave (every client's first request) beside the steady
            # state's spread (`closed_loop_ttft_quantiles`)
            c = np.flatnonzero(by_clients)
            # (the wave's share of the requests: every client's first of those the workload sends, `Workload.size`:
            # its n_requests, else the DEFAULT_N_REQUESTS the simulator sends too)
            tq = closed_loop_ttft_quantiles(ttft[c], wave["wave_mean_share"], min(1.0, conc / self.workload.size),
                                            wave["wave_iter_ms"], wave["wave_iters"], wave["wave_base_ms"],
                                            wave["floor_ms"])
            for p in PERCENTILES:
                q[p][0][c] = tq[p]
        if conc is not None:
            # closed loop (Little's law): a user's cycle lasts conc / X; what the service time leaves is the wait.
            # A request's host time before its first token (`handoff.host_ms`) is in the cycle: the client sends
            # its next request once it has read the last token (`inference.estimate.queue_waits`, the simulator's
            # `_frame`), so it is spent outside the queue; where it leaves no wait, the clients set the rate of an
            # aggregated deployment, conc / its e2e (`max_throughput`'s)
            x_req = tput / osl
            e2e_ms = ttft + max(osl - 1.0, 0.0) * tpot
            extra = np.maximum(0.0, conc / np.maximum(x_req, 1e-12) * 1e3 - e2e_ms)
            # (on attention-DP ranks in lockstep the cycle's own full-budget prefill iteration of every rank's
            # chunks, `estimate.split_steps`, is the clients' split's, `cycle_split`: the rows priced by clients
            # above hold it in TTFT + window, leaving no wait here)
            ttft = ttft + extra
            for p in PERCENTILES:
                q[p][0][:] = q[p][0] + extra
            # ... and of static batches whose requests all end at the batch's end (outputs of one length: each
            # client's cycle its e2e, host time included; of varying lengths a client that returns before its
            # batch ends waits for the next, which the mean output's e2e does not hold: the static block's cycle
            # above prices it)
            capped = ~dis & (~stat | (np.ptp(self.outputs) == 0))
            if capped.any():
                # the clients set the rate where the service time leaves no wait (Little's law: conc = X x the
                # client's cycle, which holds the host time)
                j = np.flatnonzero(capped)
                tput[j] = np.minimum(tput[j], conc * osl / (e2e_ms[j] + extra[j]) * 1e3)
        served_req = tput / osl                                   # requests/s the deployment completes
        open_agg = (~dis) & (d.batching == "continuous")
        if lam_total is not None and open_agg.any():
            lam = np.broadcast_to(np.asarray(lam_total, dtype=float), (n,))
            i = np.flatnonzero(open_agg)
            ranks = d.dp[i] * adp[i]                                  # each attention-DP rank its own share
            o = self._open_loop(d.take(i), lam[i] / ranks, N[i], tput[i] / ranks / osl, plain[i], tpot[i],
                                self.workload.size / ranks, hit[i])
            N[i], ttft[i], tpot[i] = o["N"], o["ttft"], o["tpot"]
            for p in PERCENTILES:
                q[p][0][i], q[p][1][i] = o[f"ttft_{p}"], o[f"tpot_{p}"]
            # (pp > 1: the open loop's own saturated rate, `_open_loop`'s x_max, where below the closed loop's)
            served_req[i] = np.minimum(lam[i], np.where(d.pp[i] > 1, o["x_max"] * ranks, served_req[i]))
            tput[i] = served_req[i] * osl
        if lam_total is not None and (~open_agg).any():
            # the other rows (static batching, disaggregated) serve at most the offered rate, whatever else the
            # batch holds; a static replica offered more than its batches hold queues the run's backlog (`run_wait`
            # with no stationary term: the batch model has no queue below its capacity)
            lam = np.broadcast_to(np.asarray(lam_total, dtype=float), (n,))
            i = np.flatnonzero(~open_agg)
            over = stat[i]
            if over.any():
                j = i[over]
                cap_ms, lam_ms = served_req[j] / 1e3, lam[j] / 1e3
                n_req = float(self.workload.size)
                # below capacity a request waits for the batch running when it arrives (`_static_open_loop`, with
                # the static block's step costs above: its rows are these, j == flatnonzero(stat)); past it, the
                # run's backlog
                parts = {"ks": ks, "t_pf": t_pf, "t_1": t_1, "slope": slope, "excess": excess}
                st = self._static_open_loop(d.take(j), lam_ms / (d.dp[j] * adp[j]), N[j], parts, hit[j])
                held = st["stable"]
                N[j] = np.where(held, st["N"], N[j])
                tpot[j] = np.where(held, st["tpot"], tpot[j])
                # (with the host time before the first token of a batch of N, as the saturated rows above)
                sh = host_at(N[j], j)
                ttft[j] = np.where(held, st["ttft"] + sh, ttft[j]) + run_wait(np.zeros(len(j)), n_req, lam_ms,
                                                                             cap_ms)
                for p in PERCENTILES:
                    q[p][0][j] = np.where(held, st[f"ttft_{p}"] + sh, q[p][0][j]) + \
                        run_wait(np.zeros(len(j)), n_req, lam_ms, cap_ms, p)
                    q[p][1][j] = tpot[j]
            served_req[i] = np.minimum(served_req[i], lam[i])
            tput[i] = served_req[i] * osl
        base = mt["throughput_tok_s"].to_numpy(float)
        scale = base / np.maximum(tput, 1e-12)
        usd = mt["usd_per_mtok"].to_numpy(float) * scale
        if dis.any():
            # GPUs and the hourly price of each pool: the decode pool's from max_throughput per GPU, the prefill
            # pool's from its estimate (catalog price and ``prices`` overrides alike)
            i = np.flatnonzero(dis)
            j = np.searchsorted(sub, i)
            n_p, n_d = d.prefill_replicas[i].astype(float), (d.dp[i] - d.prefill_replicas[i]).astype(float)
            gpus_p = n_p * d.prefill_tp[i] * d.prefill_pp[i] * d.prefill_attn_dp[i]
            gpus_d = n_d * d.tp[i] * d.pp[i] * adp[i]
            hourly_d = mt["usd_per_mtok"].to_numpy(float)[i] * base[i] / n_gpus[i]          # per GPU
            pf_gpus = (d.prefill_tp[i] * d.prefill_pp[i] * d.prefill_attn_dp[i]).astype(float)
            hourly_p = pf["usd_per_mtok"].to_numpy(float)[j] * pf["throughput_tok_s"].to_numpy(float)[j] / pf_gpus
            usd[i] = (hourly_d * gpus_d + hourly_p * gpus_p) / np.maximum(tput[i], 1e-12)
            n_gpus = n_gpus.copy()
            n_gpus[i] = gpus_p + gpus_d
        out: dict[str, Any] = {
            "ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": ttft + max(osl - 1.0, 0.0) * tpot,
        }
        # a request's E2E is its TTFT plus its output tokens times its own TPOT. The TTFT and TPOT tails come
        # together (both from the load a request meets) and add; the output length is the request's own, and
        # its deviation from the median adds in quadrature (the longest outputs are not also the ones whose
        # TPOT is highest: that tail is short requests' few steps stalled by prompts). Fixed lengths: the sum.
        o50 = self._quantile_output(0.5)
        e50 = q["p50"][0] + max(o50 - 1.0, 0.0) * q["p50"][1]
        for p in PERCENTILES:
            out[f"ttft_ms_{p}"] = q[p][0]
            out[f"tpot_ms_{p}"] = q[p][1]
            o_q = self._quantile_output({"p50": 0.5, "p90": 0.9, "p99": 0.99}[p])
            if o_q > o50:
                load = np.maximum(q[p][0] + (o50 - 1.0) * q[p][1] - e50, 0.0)
                out[f"e2e_ms_{p}"] = e50 + np.hypot(load, (o_q - o50) * q["p50"][1])
            else:
                out[f"e2e_ms_{p}"] = q[p][0] + max(o_q - 1.0, 0.0) * q[p][1]
        out.update({
            "tok_s_per_gpu": tput / n_gpus, "tok_s_per_user": 1e3 / tpot, "throughput_tok_s": tput,
            "requests_per_s": served_req, "usd_per_mtok": usd,
            "joules_per_tok": mt["joules_per_tok"].to_numpy(float) * scale, "mem_per_gpu_gib": mem,
            "batch_size": N, "fits": fits.astype(float), "n_gpus": n_gpus, "prefix_hit_rate": hit_rate,
        })
        # rate matching: what each pool of a disaggregated deployment can serve (requests/s; NaN in agg)
        out["prefill_pool_req_s"], out["decode_pool_req_s"] = pool_req
        frame = pd.DataFrame(out)
        if slo is not None:
            att = _attainment(frame, slo)
            frame["slo_attainment"] = att
            frame["goodput_req_s"] = served_req * att
        frame["reason"] = np.where(fits, "", np.where(mt["fits"].to_numpy(bool), pre_reason,
                                                      mt["reason"].astype(str).to_numpy(object)))
        frame["source"] = mt["source"].astype(str).to_numpy(object)
        frame.attrs["resolved"] = mt[["weight_dtype", "act_dtype", "kv_dtype", "source", "engine", "gpu"]].reset_index(
            drop=True)
        frame.attrs["resolved_prefill"] = pre_fmt
        return frame

    def _static_open_loop(self, d: Deployments, lam_ms: np.ndarray, n_max: np.ndarray, parts: Mapping[str, Any],
                          hit: np.ndarray) -> dict[str, Any]:
        """Static batching of each replica at ``lam_ms`` requests per ms (per scheduling rank) below its capacity:
        an idle replica takes every request waiting (at most ``n_max``) and runs that batch to its end, so a
        request arriving meanwhile waits for the rest of it. The batch holds the arrivals of one cycle, or the one
        request that ends an idle time: with x = lam E[T(n)] arrivals a cycle, a busy period runs e^x cycles on
        average and an idle one lasts 1 / lam, so n = x + e^-x (between 1 and n_max; bisection) and the replica
        is busy a share u = x / n of the time (x e^x / (x e^x + 1)). A cycle T: its prompts' prefill iterations, then M - 1
        decode steps of t(1) - slope plus the batch's sequence-steps n (O - 1) x slope (the saturated batch's
        form), M the longest of its n outputs (the workload's outputs in `STATIC_OUTPUT_BINS`, P(M <= v_j) = F_j^n,
        F_j the bins' cumulative share; one value for fixed lengths). An arrival finds the replica busy
        with probability u and then waits the
        residual of a length-biased cycle, P(R > r) = E[(T - r)+] / E[T]: mean u E[T^2] / (2 E[T]) (u T / 2 for
        fixed lengths), and p-quantile where u P(R > w) = 1 - p. TTFT = that wait + the batch's own prefill.
        Under a prompt-length mixture each prompt also costs its extra prefill work over the mean prompt's
        (``excess``, `_attention_excess`), and the TPOT is `_static_tpot`'s.
        ``parts``: the saturated rows' ks (prompts per prefill iteration), t_pf (ms, one such iteration), t_1
        and slope (ms, decode step), excess (ms per request); ``hit``: cached prompt tokens. ``stable``: the rows below capacity (n(n_max)
        < n_max); the others keep the saturated batch and the run's backlog."""
        isl, osl = self.input_len, self.output_len
        ks, t_pf, t_1, slope, excess = (np.asarray(parts[k], dtype=float)
                                        for k in ("ks", "t_pf", "t_1", "slope", "excess"))
        kw = self._kw(d)
        one = inference.estimate(**kw, batch_size=1.0, input_len=isl, output_len=1,
                                 max_num_tokens=d.max_num_tokens)["ttft_ms"].to_numpy(float)
        if np.any(hit > 0):
            one = np.where(hit > 0, cached_prefill_ms(kw, 1.0, isl, hit), one)
        steps = max(osl - 1.0, 0.0)

        def prefill(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # n prompts in iterations of ks: whole ones at t_pf, the last of r prompts between one prompt's and t_pf
            full = np.floor(n / ks)
            r = n - full * ks
            part = np.where(r > 0, one + (np.maximum(r, 1.0) - 1.0) * (t_pf - one) / np.maximum(ks - 1.0, 1.0), 0.0)
            return full * t_pf + part + n * excess, np.ceil(n / ks - 1e-9)

        def cycle(n: np.ndarray) -> np.ndarray:
            batch_steps = np.maximum(expected_max(self.outputs, n) - 1.0, steps)
            return prefill(n)[0] + batch_steps * (t_1 - slope) + n * steps * slope

        lam = np.asarray(lam_ms, dtype=float)
        n_max = np.maximum(np.asarray(n_max, dtype=float), 1.0)

        def batch(n: np.ndarray) -> np.ndarray:
            # requests per cycle: x = lam T(n) arrive during one; a busy period runs e^x cycles on average (each
            # follows while an arrival came, 1 - e^-x), an idle one 1 / lam: n = x / u = x + e^-x
            x = lam * cycle(n)
            return x + np.exp(-x)

        stable = batch(n_max) < n_max
        lo, hi = np.ones_like(n_max), n_max.copy()
        for _ in range(STATIC_BATCH_STEPS):                           # plain numpy: no cost-model call
            mid = 0.5 * (lo + hi)
            grow = batch(mid) > mid
            lo, hi = np.where(grow, mid, lo), np.where(grow, hi, mid)
        n = np.where(stable, 0.5 * (lo + hi), n_max)
        pf, n_pf = prefill(n)
        # the cycle's distribution over the longest output M of its n requests (rows x nodes)
        v, w_v = quantile_nodes(self.outputs, STATIC_OUTPUT_BINS)
        cdf = np.minimum(np.cumsum(w_v), 1.0)
        prob = cdf[None, :] ** n[:, None] - (cdf - w_v)[None, :] ** n[:, None]
        T = (pf + n * steps * slope)[:, None] + np.maximum(v - 1.0, 0.0)[None, :] * (t_1 - slope)[:, None]
        if self._len_nodes is not None:
            # a length mixture's batch prefills its own prompts: the cycle spreads by sqrt(n) times one prompt's
            # prefill about the mixture's mean (each length node's prompt alone, `_prefill_nodes`; exact for a
            # batch of one), independent of its longest output
            S = self._prefill_nodes(kw, d.max_num_tokens)
            if np.any(hit > 0):
                full = inference.estimate(**kw, batch_size=1.0, input_len=isl, output_len=1,
                                          max_num_tokens=d.max_num_tokens)["ttft_ms"].to_numpy(float)
                S = S * (one / np.maximum(full, 1e-12))[:, None]
            L_w = self._len_nodes[1]
            dev = np.sqrt(n)[:, None] * (S - (S @ L_w)[:, None])
            T = np.maximum(T[:, :, None] + dev[:, None, :], 0.0).reshape(len(n), -1)
            prob = (prob[:, :, None] * L_w[None, None, :]).reshape(len(n), -1)
        ET = (prob * T).sum(axis=1)
        u = np.clip(lam * ET / n, 0.0, 1.0)                            # the busy share of the time
        own = pf * (n_pf + 1.0) / (2.0 * np.maximum(n_pf, 1.0))      # a prompt's first token, in its batch
        t_dec = t_1 + (n - 1.0) * self._alive * slope
        out = {"N": n, "stable": stable, "ttft": own + u * (prob * T * T).sum(axis=1) / (2.0 * np.maximum(ET, 1e-12)),
               "tpot": t_dec + (n_pf - 1.0) * 0.5 * t_pf / max(steps, 1.0) if self._len_nodes is None else
               self._static_tpot(d, n, ks, t_pf, excess, t_dec)}

        def tail(w: np.ndarray) -> np.ndarray:                        # u P(R > w), decreasing in w
            return u * (prob * np.maximum(T - w[:, None], 0.0)).sum(axis=1) / np.maximum(ET, 1e-12)

        for p in PERCENTILES:
            lo_w, hi_w = np.zeros_like(ET), T.max(axis=1)
            for _ in range(STATIC_BATCH_STEPS):
                mid = 0.5 * (lo_w + hi_w)
                above = tail(mid) > 1.0 - Z_Q[p]
                lo_w, hi_w = np.where(above, mid, lo_w), np.where(above, hi_w, mid)
            out[f"ttft_{p}"] = own + 0.5 * (lo_w + hi_w)
        return out

    def _static_tpot(self, d: Deployments, n: np.ndarray, ks: np.ndarray, t_pf: np.ndarray, excess: np.ndarray,
                     t_dec: np.ndarray) -> np.ndarray:
        """Mean TPOT (ms) of a static batch's requests under a prompt-length mixture. A request's first token comes
        when its own prompt is prefilled; it then decodes one token per iteration while the batch's later prompts
        prefill, and at the decode step ``t_dec`` after. A prompt's prefill is ``t_pf / ks + excess`` (ms: its share
        of an iteration of ks mean prompts plus the mixture's extra work), an iteration while the batch prefills
        that per token times max_num_tokens (chunks fill the budget across prompts; without chunked prefill ks
        whole prompts). The prefill left after a request's first token, R, is uniform on [0, (n - 1) x a prompt's
        prefill] (its place in the batch, `STATIC_RANK_NODES` nodes; the chunks' boundaries fall anywhere in a
        mixture); a request of O output tokens decodes m = R / t_it of its steps there: TPOT = t_it where O - 1 <= m
        (it finishes while the batch prefills), else (R + (O - 1 - m) t_dec) / (O - 1). The mean over the
        output-length nodes of the requests that decode (``_out_nodes``) and the places, not the mean stall over
        the mean output: with long prompts a request of few output tokens decodes at the chunks' pace. ``n``
        (sequences), ``ks`` (prompts per iteration), ``t_pf`` (ms per iteration), ``excess`` (ms per request),
        ``t_dec`` (ms): one per row of ``d``."""
        per = t_pf / ks + excess                                      # ms of prefill per prompt
        t_it = per * np.where(d.chunked_prefill, d.max_num_tokens / self.input_len, ks)
        rest = np.maximum(n - 1.0, 0.0) * per
        u = (np.arange(STATIC_RANK_NODES) + 0.5) / STATIC_RANK_NODES
        R = rest[:, None, None] * u[None, :, None]                       # rows x places x outputs
        outs, wo = self._out_nodes
        steps = np.maximum(outs - 1.0, 1.0)[None, None, :]
        m = R / np.maximum(t_it, 1e-12)[:, None, None]
        tpot = np.where(steps <= m, t_it[:, None, None], (R + (steps - m) * t_dec[:, None, None]) / steps)
        return tpot.mean(axis=1) @ wo

    def _open_loop(self, d: Deployments, lam: np.ndarray, n_max: np.ndarray, x_max: np.ndarray,
                   plain: np.ndarray, tpot_sat: np.ndarray, n_req: np.ndarray,
                   hit: np.ndarray | None = None, *, one_batch: bool = False) -> dict[str, np.ndarray]:
        """Aggregated continuous batching of each replica at ``lam`` requests/s (see the module docstring):
        occupancy, mean and percentile TTFT/TPOT (ms). ``n_max``, ``x_max``, ``tpot_sat``: saturated occupancy,
        requests/s and TPOT (ms), like ``lam`` per scheduling rank; ``n_req``: the requests of the run each rank
        receives (its share, which sets its queue's backlog past capacity, `run_wait`). ``hit``: prompt tokens a
        request finds in the prefix cache (mean, one per deployment; None or 0: none), which its prefill skips.
        pp > 1: a run that opens more than one batch in flight (`_lanes_opened`, `_burst_opens`) starts on one
        (`_lanes`: the engines open another when a schedule overflows a budget), so its requests blend the
        one-batch state's (the share that arrives before the first overflow, `_pipe_start`) and the opened
        batches' state: mean TTFT by that share, mean TPOT by the share of decode steps taken before it, the
        percentiles of the mixture (`_mix_quantile`). ``one_batch``: price the one-batch state alone (no batch
        opened) at the occupancy of the run's start, over the requests that arrive before the first overflow, and
        return `_pipe_start`'s values as "start_share", "start_tokens", "start_round" (1, 1, 0 where pp == 1)."""
        isl, osl = self.input_len, self.output_len
        n = len(d)
        args = (lam, n_max, x_max, plain, tpot_sat, n_req, hit)       # the one-batch state's call (below)
        hit = np.zeros(n) if hit is None else np.asarray(hit, dtype=float)
        cached = bool(np.any(hit > 0))
        isl_new: Any = isl - hit if cached else isl                   # prompt tokens a request prefills
        lam_ms = lam / 1e3
        stable = lam < x_max * 0.999
        # occupancy N in (0.5, n_max]: lam = N / R(N), R = TTFT0 + (O - 1) TPOT(N); bisection on log N (below one
        # sequence the batch costs as one)
        lam_row = np.broadcast_to(np.asarray(lam_ms, dtype=float), (n,))
        # prefill service: the prompt alone, plus the decode steps its chunks ride on. Alone it runs on one
        # attention-DP rank while the group's others idle (dummy forwards): only its tokens reach the experts
        # (moe_dp=1, as the disaggregated pool's lone prompt, `prefill_estimates`; the simulator's `_Group`)
        one = inference.estimate(**self._kw(d), batch_size=1, input_len=isl, output_len=1,
                                 max_num_tokens=d.max_num_tokens, moe_dp=1.0)["ttft_ms"].to_numpy(float)
        one_full = one
        if cached:
            one = np.where(hit > 0, cached_prefill_ms(self._kw(d), 1.0, isl, hit), one)
        # prompts one prefill iteration carries (`_prompts_at_once`, x = rate x how long the iteration a prompt
        # arrives during lasts): with pp > 1 the iteration carrying a prompt beside the decodes of the occupancy
        # (`ride_ms`; it lasts longer than the prompt alone, and more prompts arrive meanwhile), else no bound
        alone = _prompts_at_once(lam_row * one, d.pp)
        piped = np.flatnonzero(np.asarray(d.pp) > 1)
        prep = _prepared(self._kw(d.take(piped))) if len(piped) else None
        isl_row = np.broadcast_to(np.asarray(isl_new, dtype=float), (n,))
        # pp == 1 where the decodes ride on the iterations that carry prompts (not SGLang's prefill batches, which
        # run alone): such an iteration also carries the prompts that arrived during the one before, not the
        # closed loop's budget-sized groups (whose prefill iterations hold no decodes); a prompt beside the
        # decodes overlaps their memory traffic, so the steady state priced with the groups ran each step too long
        # (`_riding_prompts`)
        alone_rows = _prefill_alone(d) > 0               # the engine runs its prefill batches alone (SGLang)
        lag = _overlap(self.model, d)                    # ... and forms its next batch ahead (`_overlap`)
        riding = np.flatnonzero((np.asarray(d.pp) == 1) & ~alone_rows)
        prep_r = _prepared(self._kw(d.take(riding))) if len(riding) else None

        # pp > 1: the batches in flight the load keeps open (`_lanes_opened`; 1 elsewhere), each request riding
        # the batch it entered
        opened = np.ones(n)

        def grouping(occ: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
            """occupancy (n,) or (n, k) -> prompts an iteration carries; `rows`: occ's deployments (None: all;
            else sorted row numbers), each priced as among all (the terms are elementwise over deployments)"""
            occ = np.asarray(occ, dtype=float)
            two = (lambda v: v[:, None]) if occ.ndim == 2 else (lambda v: v)
            at = np.arange(n) if rows is None else rows
            g = np.array(np.broadcast_to(two(alone[at]), occ.shape))
            if rows is None:                          # positions in `at` are the rows
                ri, pi, pr_r, pr_p = riding, piped, prep_r, prep
            else:
                ri, pi = np.flatnonzero(np.isin(at, riding)), np.flatnonzero(np.isin(at, piped))
                pr_r = prep_r.take(np.searchsorted(riding, at[ri])) if len(ri) and prep_r is not None else None
                pr_p = prep.take(np.searchsorted(piped, at[pi])) if len(pi) and prep is not None else None
            if len(ri):
                r = at[ri]
                g[ri] = _riding_prompts(pr_r, occ[ri], lam_row[r], isl_row[r], osl,
                                        np.asarray(d.max_num_tokens, dtype=float)[r])
            if len(pi):
                r = at[pi]
                g[pi] = _prompts_at_once(two(lam_row[r]) * ride_ms(pr_p, occ[pi], isl_row[r], osl,
                                                                   d.max_num_tokens[r], two(opened[r])), two(d.pp[r]))
            return g

        if len(piped):
            # where pp > 1 the closed loop's saturated rate x_max prices its budget-sized prompt groups pipelined;
            # the open loop's prompts arrive a few at a time, each group holding the decodes for its pass: what
            # n_max sequences in flight serve at that grouping bounds the rate held. The engines keep one batch in
            # flight until a schedule overflows a budget: a load beyond what one batch serves builds a queue until
            # one does, and the batches it opens live on with their requests (`_lanes_opened`)
            sub = d.take(piped)
            x_closed = x_max[piped].copy()

            def held(lanes: np.ndarray) -> np.ndarray:                # requests/s n_max serve over `lanes`
                opened[piped] = lanes
                sat = self._at(sub, n_max[piped], isl_new[piped] if cached else None, grouping(n_max)[piped], lanes)
                resid_sat = one[piped] + max(osl - 1.0, 0.0) * sat["tpot_ms"]
                return np.minimum(x_closed, 1e3 * n_max[piped] / np.maximum(resid_sat, 1e-12))

            def overflows(lanes: np.ndarray) -> np.ndarray:
                # a saturated batch admits the prompts of its sequences that finished during its round, n_max /
                # (lanes x osl) on average (Poisson): a burst (mean + 3 sd) overflows the budget beside its decodes
                mu = n_max[piped] / (lanes * osl)
                return (mu + 3.0 * np.sqrt(mu)) * isl_row[piped] + n_max[piped] / lanes > d.max_num_tokens[piped]

            if one_batch:
                cap = held(np.ones(len(piped)))
            else:
                opened[piped], cap = _lanes_opened(np.asarray(d.pp, dtype=float)[piped],
                                                   np.broadcast_to(np.asarray(lam, dtype=float), (n,))[piped], held,
                                                   overflows)
            x_max = x_max.copy()
            x_max[piped] = cap
            stable = lam < x_max * 0.999

        def occupancy(rows: np.ndarray | None = None) -> np.ndarray:
            """The occupancy (sequences in flight) each deployment's replicas hold at lam: N / R(N) = lam,
            bisected on log N; `rows`: only those deployments (None: all; else sorted row numbers). A deployment
            that cannot keep up (not ``stable``) holds n_max: only the others are bisected."""
            every = np.arange(n) if rows is None else np.asarray(rows)
            if not np.all(stable[every]):
                out = np.array(n_max[every], dtype=float)
                live = np.flatnonzero(stable[every])
                if len(live):
                    out[live] = occupancy(every[live])
                return out
            dr = d if rows is None else d.take(rows)
            at = slice(None) if rows is None else rows
            nr = len(dr)

            def serves_less(mid: np.ndarray) -> np.ndarray:           # mid in flight serves at most lam
                k = mid.shape[1]
                m = self._at(dr, mid, isl_new[at] if cached else None, grouping(mid, rows), opened[at])
                # a sequence's residency in the batch: from its admission, its prefill (`one`; with pp > 1 a
                # prompt spread over the pipeline's batches), then its decode steps; not the closed loop's first
                # token (`_at`'s), which waits behind the closed loop's whole group of prompts and so held each
                # sequence longer than the open loop does, more in flight at a rate than the simulator holds
                first = np.broadcast_to(one[at][:, None], (nr, k)).ravel()
                resid = first + max(osl - 1.0, 0.0) * m["tpot_ms"]
                over = mid.ravel() / np.maximum(resid, 1e-12) > np.repeat(lam_row[at], k)
                return ~over.reshape(nr, k)

            lo, hi = bisect(np.full(nr, 0.5), np.maximum(n_max[at], 0.5), serves_less, BISECTION_STEPS,
                            geometric=True)
            return np.where(stable[at], np.sqrt(lo * hi), n_max[at])

        N = occupancy()
        n_run = np.broadcast_to(np.asarray(n_req, dtype=float), (n,))
        at = None       # `_at` at the final N (the burst loop's last, where it ends without opening a batch)
        fresh = None    # the rows whose N and batches opened changed since `at` was priced (None: every row)

        def reprice(at: dict[str, Any] | None, fresh: np.ndarray | None) -> dict[str, Any]:
            """`at` with the rows `fresh` priced again: `_at` is elementwise over deployments, so the other rows
            keep the numbers a call over every row gives (None: every row priced)."""
            if at is None or fresh is None:
                return self._at(d, N, isl_new if cached else None, grouping(N), opened)
            if not len(fresh):
                return at
            sub = self._at(d.take(fresh), N[fresh], isl_new[fresh] if cached else None, grouping(N[fresh], fresh),
                           opened[fresh])
            out = {k: np.array(v, copy=True) for k, v in at.items()}
            for k, v in sub.items():
                out[k][fresh] = v
            return out

        for _ in range(int(np.max(d.pp)) - 1 if len(piped) and not one_batch else 0):
            # pp > 1: a burst of prompts arriving over the run overflows a budget and opens another batch, which
            # lives on (`_burst_opens`); the occupancy again over the batches then in flight
            at, fresh = reprice(at, fresh), np.empty(0, dtype=np.intp)
            t_round = at["cycle_ms"] / np.maximum(osl, N * (isl_new + osl) / d.max_num_tokens)
            more = np.zeros(n, dtype=bool)
            more[piped] = (opened[piped] < d.pp[piped]) & _burst_opens(
                lam_row[piped], t_round[piped], one[piped], N[piped], opened[piped], isl_row[piped],
                d.max_num_tokens[piped], n_run[piped])
            if not more.any():
                break
            opened[more] += 1.0
            x_max = x_max.copy()
            x_max[piped] = np.maximum(x_max[piped], held(opened[piped]))
            stable = lam < x_max * 0.999
            N = N.copy()
            fresh = np.flatnonzero(more)
            N[more] = occupancy(fresh)                                # only the rows that opened a batch
        if at is not None and fresh is not None and len(fresh):
            at = reprice(at, fresh)     # the loop ran out of passes after some rows opened a batch
        begin = {"share": np.ones(n), "tokens": np.ones(n), "round": np.zeros(n)}
        if one_batch and len(piped):
            # the requests before the first overflow (`_pipe_start`): the occupancy builds from an empty start
            # toward the one-batch state's N, each round's prompts overflowing with `_burst_tail`'s probability;
            # they meet its mean occupancy over that stretch
            Ng = N[piped, None] * np.linspace(0.0, 1.0, PIPE_START_POINTS)[None, :]
            occ = np.maximum(Ng, 0.5)
            at_g = self._at(d.take(piped), occ, isl_new[piped] if cached else None, grouping(occ, piped),
                            opened[piped])
            tp = at_g["tpot_ms"].reshape(Ng.shape)
            col = (lambda v: np.broadcast_to(np.asarray(v, dtype=float), (n,))[piped, None])
            rnd = at_g["cycle_ms"].reshape(Ng.shape) / np.maximum(osl, Ng * (col(isl_new) + osl) / col(d.max_num_tokens))
            # an engine that runs its prefill batches alone (SGLang) forms one from the prompts that arrived
            # during the iteration before, its prompts beside no decodes; the others' batches return once a round
            alone_pf = alone_rows[piped, None]
            hazard = col(lam_row) * _burst_tail(col(lam_row), np.where(alone_pf, col(one), rnd), col(one),
                                                np.where(alone_pf, 0.0, Ng), 1.0, col(isl_new), col(d.max_num_tokens))
            # past the one batch's rate its prompt queue grows linearly and overflows once it holds more than
            # a budget's prompts
            room = np.maximum(np.ceil(d.max_num_tokens[piped] / isl_row[piped] - 1e-9), 1.0)
            over = lam_row[piped] - x_max[piped] / 1e3
            t_q = np.where(over > 0, room / np.maximum(over, 1e-300), np.inf)
            # the rounds (one iteration's time) set the hazard only; a sequence steps once per decode step (tp)
            st = _pipe_start(lam_row[piped], n_run[piped], Ng, tp, hazard, osl - 1.0, t_q)
            for k in begin:
                begin[k][piped] = st[k]
            N = N.copy()
            N[piped] = np.maximum(np.minimum(N[piped], st["N"]), 0.5)
        grouped = grouping(N)
        if at is None:
            at = self._at(d, N, isl_new if cached else None, grouped, opened)
        tpot = at["tpot_ms"]
        n_it = np.maximum(osl, N * (isl_new + osl) / d.max_num_tokens)
        t_it = at["cycle_ms"] / n_it                                  # mean iteration (ms)
        D = N * (osl - 1.0) / n_it
        budget = np.maximum(d.max_num_tokens - D, 1.0)
        chunks = np.where(plain, 1.0, np.ceil(isl_new / budget))
        dec_step = self._at(d, np.maximum(D, 1e-3), isl_new if cached else None, grouped,  # D decodes (+ prompts)
                            opened)
        t_dec = dec_step["cycle_ms"] / np.maximum(osl, D * (isl_new + osl) / d.max_num_tokens)
        S = one                                                       # prefill work of one prompt (ms)
        rho = np.minimum(lam_ms * S, 0.999)
        # the prompt queue: with pp > 1 its server passes a prompt per batch in flight (`_lanes`): M/D/1 on
        # S / lanes; a prompt's own pass stays S (below)
        lanes = _lanes(d, N, grouped, isl_new, opened)
        S_q = S / lanes
        rho_q = np.minimum(lam_ms * S_q, 0.999)
        # the prompt first waits for the batch it goes into: the next iteration's (half of one on average), with
        # pp > 1 the next return of the batches in flight (`_lanes`); its own iteration costs about its prefill
        # (the decodes riding on it add memory traffic that overlaps its compute); every further chunk waits a
        # whole iteration
        board = 0.5 * t_it / lanes
        # ... and on an engine that forms its next batch while the current one runs (`_overlap`: SGLang, vLLM from
        # 0.14, TensorRT-LLM's PyTorch executor), the whole next one too, formed before the prompt was received,
        # when an iteration is in progress: at least one other sequence in flight, 1 - exp(-N) for the Poisson
        # arrivals (the closed form's `inference.estimate.arrival_wait_iters`, the simulator's `_Replica.enqueue`);
        # where an idle attention-DP rank forms its step ahead while its group steps, any sequence of its group
        # (`_idle_ahead`, `inference.estimate.ahead_clients`; the simulator's `_Group`). The sequences in flight
        # here are Little's law's at the rate (a sequence resides for its prefill and its decode steps), not N,
        # which the bisection floors at half a sequence: an almost idle group finds almost no iteration running
        occ = np.minimum(lam_ms * (one + max(osl - 1.0, 0.0) * tpot), N)
        ahead = ahead_clients(occ, occ * np.asarray(d.attn_dp, dtype=float), _idle_ahead(self.model, d))
        board = board + lag * (1.0 - np.exp(-ahead)) * t_it
        base = board + S + np.where(plain, 0.0, (chunks - 1.0) * np.maximum(t_dec, t_it))
        if len(riding):
            base = base + self._shared_iteration(prep_r, riding, N, lam_ms * S, S, t_it, isl_row, d.max_num_tokens)
        # the wait for a free slot: N sequences in flight on average, at most n_max at once, each held for a
        # residency R; a request goes to the least-loaded of the deployment's dp x attention-DP ranks (the
        # simulator's routing), so it waits only when every rank is full (`slot_wait`)
        resid = N / np.maximum(lam_ms, 1e-300)
        ranks = (d.dp * d.attn_dp).astype(float)
        # ... the waiting requests drain at the full batch's pace (its residency: the prefill, then the decode
        # steps of n_max sequences; `slot_wait`'s resid_full)
        full = self._at(d, n_max, isl_new if cached else None, grouping(n_max), opened)["tpot_ms"]
        resid_full = one + max(osl - 1.0, 0.0) * full
        erlang_c, drain = slot_wait(n_max, N, resid, ranks, self._out_cs2, resid_full)
        # the stationary waits (prefill work, then a slot), bounded by what this run of requests builds at the
        # replica's capacity x_max (its backlog when the rate exceeds it), over the rank's share of the run
        n_req = np.broadcast_to(np.asarray(n_req, dtype=float), (n,))
        if one_batch:
            n_req = np.maximum(n_req * begin["share"], 1.0)    # the requests before the first overflow
        cap_ms = x_max / 1e3
        # the engine's API server before the prompt reaches the scheduler (not GPU work: no queueing term), and the
        # output of the sequences it streams, N a rank (`handoff.host_ms`: `inference.estimate.host_ttft_s`)
        host = host_ms(self._kw(d), n, self.efficiency if self.efficiency is not None else default_eff(), N)[0]
        base = base + host
        g = self.burst                                                # Kingman: bursts and mixed lengths
        # past capacity, the run's backlog from an empty start (`_start_backlog`; fixed prompt lengths: the length
        # mixture's own queue, `_mixture`, keeps the linear backlog or a trace's windows)
        start = (self._start_backlog(lam_ms, n_req, S, cap_ms, n_max, ~stable) if self._len_nodes is None
                 else {k: None for k in ("mean", *PERCENTILES)})
        ttft = base + run_wait(g * rho_q * S_q / (2 * (1 - rho_q)) + erlang_c * drain, n_req, lam_ms, cap_ms, burst=g,
                               backlog=start["mean"])
        qs = {}
        pure = t_dec                                                  # a decode step without prompts (plain rows)
        stall = np.zeros(n)
        if len(riding) and self._len_nodes is None:
            # what one more prompt in a riding row's life adds to it (ms): its iteration beside the N - 1 others'
            # decodes less a decode step of the N (`_open_loop`'s TPOT percentiles below)
            Nr = np.maximum(N[riding], 1.0)
            step = inference.estimate(**self._kw(d.take(riding)), batch_size=np.ceil(Nr - 1e-9), input_len=isl,
                                      output_len=osl, max_num_tokens=d.max_num_tokens[riding])["tpot_ms"]
            stall[riding] = np.maximum(ride_ms(prep_r, Nr, isl_row[riding], osl,
                                               np.asarray(d.max_num_tokens, dtype=float)[riding])
                                       - step.to_numpy(float), 0.0)
        ride_extra = None
        if self._len_nodes is not None and self._lives is not None:
            # a trace's requests (`_trace_tpot`): the decodes' own time in an iteration that carries a prompt, its
            # length beyond the prompt's alone (`ride_ms`, the mean prompt beside the N - 1 others' decodes)
            ride_extra = np.zeros(n)
            if len(riding):
                Nr = np.maximum(N[riding], 1.0)
                ride_extra[riding] = np.maximum(ride_ms(prep_r, Nr, np.minimum(isl_row[riding], d.max_num_tokens[riding]),
                                                        osl, np.asarray(d.max_num_tokens, dtype=float)[riding])
                                                - one[riding], 0.0)
        if plain.any() or ride_extra is not None:
            # whole prompts: decodes stall while a prompt prefills (its iteration lasts about its prefill), a
            # fraction rho of the time; between them a step decodes the N sequences alone (a trace's requests:
            # the step between the prompts that stall them, `_trace_tpot`)
            pure = inference.estimate(**self._kw(d), batch_size=np.maximum(np.ceil(N - 1e-9), 1.0), input_len=isl,
                                      output_len=osl, max_num_tokens=d.max_num_tokens)["tpot_ms"].to_numpy(float)
            tpot = np.where(plain, np.where(stable, pure / (1.0 - rho), tpot_sat), tpot)
        for p in PERCENTILES:
            slot_q = np.where(erlang_c > 1 - Z_Q[p], drain * np.log(np.maximum(erlang_c / (1 - Z_Q[p]), 1.0)), 0.0)
            qs[f"ttft_{p}"] = base + run_wait(_mdl_quantile(rho_q, g * S_q, Z_Q[p]) + slot_q, n_req, lam_ms, cap_ms, p,
                                              burst=g, backlog=start[p])
            Nq = np.minimum(N + Z[p] * np.sqrt(N), n_max)
            raw_q = np.where(Nq > N * (1 + 1e-9),
                             self._at(d, Nq, isl_new if cached else None, grouping(Nq), opened)["tpot_ms"],
                             at["tpot_ms"])
            if len(riding) and Z[p] > 0 and self._len_nodes is None:   # (length mixtures: their own spread)
                # the riding rows' TPOT spreads wider than Poisson: a sequence's residency grows with the
                # sequences held (elasticity e = d ln R / d ln N, read off the step at N and Nq), so a surplus
                # holds itself longer. Two parts of that growth (slope (raw_q - TPOT) / (Nq - N) per sequence):
                # (1) the prompts that arrive during a request's own decode life, each stalling it `stall`, a
                # share w = stall / (O - 1) of the slope: their count is Poisson about N (sd sqrt(N); a rank's
                # share of the deployment's arrivals under least-loaded routing over R ranks, sd sqrt(N / R)), and
                # each stall stretches the life that more arrive in, a branching count with offspring mean e:
                # sd / (1 - e); (2) the rest, the decode step's growth with the sequences in flight: the
                # occupancy's diffusion dN = (rate - N / R(N)) dt + noise (2 rate) has variance N / (1 - e)
                # (Ornstein-Uhlenbeck about N, relaxing in R / (1 - e)), which a request's TPOT averages over its
                # life R, keeping 2 (u - 1 + e^-u) / u^2 of it, u = 1 - e; the two taken as independent (the
                # simulator's spread in docs/profiles.md)
                e = np.zeros(n)
                e[riding] = np.clip(np.log(np.maximum(raw_q, 1e-12) / np.maximum(at["tpot_ms"], 1e-12))[riding]
                                    / np.log(np.maximum(Nq / np.maximum(N, 1e-12), 1.0 + 1e-9))[riding], 0.0, 0.9)
                u = 1.0 - e
                slope = (raw_q - at["tpot_ms"]) / np.maximum(Nq - N, 1e-9)
                w = np.clip(stall / max(osl - 1.0, 1.0) / np.maximum(slope, 1e-12), 0.0, 1.0)
                own = w / u / np.sqrt(np.maximum(ranks, 1.0))
                occ = (1.0 - w) * np.sqrt(2.0 * (u - 1.0 + np.exp(-u)) / (u * u * u))
                Nw = np.minimum(N + Z[p] * np.sqrt(N * (own * own + occ * occ)), n_max)
                wide = (e > 0) & (np.abs(Nw - Nq) > 1e-9 * Nq)
                if wide.any():
                    raw_q = np.where(wide, self._at(d, Nw, isl_new if cached else None, grouping(Nw), opened)["tpot_ms"],
                                     raw_q)
                    Nq = np.where(wide, Nw, Nq)
            # whole-prompt rows scale with their mean (the stall fraction is the same)
            qs[f"tpot_{p}"] = np.where(plain, tpot * raw_q / at["tpot_ms"], raw_q)
        if self._len_nodes is not None:
            mix = self._mixture(d, lam_ms, one / np.maximum(one_full, 1e-12), budget, t_it, t_dec, plain,
                                host, erlang_c * drain, erlang_c, drain, n_req, cap_ms, stable, n_max, resid,
                                np.where(plain, pure, t_dec), one, board=board, lanes=lanes,
                                decode_only=pure if self._lives is not None else None, ride_extra=ride_extra)
            ttft = mix["ttft"]
            # whole prompts: the mixture's stalls (only the prompts that fit beside the decodes) replace the mean
            # prompt's; every row: no decode step outlasts the longest iteration (`_mixture`'s "step_max")
            tpot_fixed = tpot
            tpot = np.minimum(np.where(plain, mix["tpot"], tpot), mix["step_max"])
            if "tpot_trace" in mix:                  # a trace's own requests (`_trace_tpot`)
                tpot = np.where(np.isfinite(mix["tpot_trace"]), mix["tpot_trace"], tpot)
            for p in PERCENTILES:
                qs[f"ttft_{p}"] = mix[f"ttft_{p}"]
                floor = np.where(plain, qs[f"tpot_{p}"] * mix["tpot"] / np.maximum(tpot_fixed, 1e-12), qs[f"tpot_{p}"])
                qs[f"tpot_{p}"] = np.minimum(np.maximum(floor, mix[f"tpot_{p}"]), mix["step_max"])
                if f"tpot_trace_{p}" in mix:         # a trace's own requests (`_trace_tpot`): their spread as it is
                    qs[f"tpot_{p}"] = np.where(np.isfinite(mix[f"tpot_trace_{p}"]), mix[f"tpot_trace_{p}"],
                                               qs[f"tpot_{p}"])
        out = {"N": N, "ttft": ttft, "tpot": tpot, "x_max": x_max, **qs}
        if one_batch:
            return {**out, **{f"start_{k}": v for k, v in begin.items()}}
        two = np.flatnonzero((np.asarray(d.pp) > 1) & (opened > 1))
        if len(two):
            # the run's start on one batch, until a schedule first overflows a budget (`_pipe_start`): the requests
            # that arrive before it meet the one-batch state's TTFT (mean by their share, percentiles of the
            # mixture), and the decode steps taken before it its rounds (TPOT by their share, each percentile
            # moving with the mean)
            pick = (lambda v: v if v is None or np.ndim(v) == 0 else np.asarray(v)[two])
            o1 = self._open_loop(d.take(two), *(pick(v) for v in args), one_batch=True)
            s1, s_tok = o1["start_share"], o1["start_tokens"]
            out["ttft"] = out["ttft"].copy()
            out["ttft"][two] = s1 * o1["ttft"] + (1.0 - s1) * ttft[two]
            out["tpot"] = out["tpot"].copy()
            out["tpot"][two] = s_tok * o1["start_round"] + (1.0 - s_tok) * tpot[two]
            for p in PERCENTILES:
                out[f"ttft_{p}"] = np.array(qs[f"ttft_{p}"], dtype=float)
                out[f"ttft_{p}"][two] = _mix_quantile(s1, {q: o1[f"ttft_{q}"] for q in PERCENTILES},
                                                      {q: np.asarray(qs[f"ttft_{q}"], dtype=float)[two]
                                                       for q in PERCENTILES}, p)
                out[f"tpot_{p}"] = np.array(qs[f"tpot_{p}"], dtype=float)
                out[f"tpot_{p}"][two] += out["tpot"][two] - tpot[two]
        return out

    def _shared_iteration(self, p: Any, riding: np.ndarray, N: np.ndarray, rho: np.ndarray, S: np.ndarray,
                          t_it: np.ndarray, isl: np.ndarray, max_num_tokens: np.ndarray) -> np.ndarray:
        """What a prompt's first token waits (ms, one per deployment; 0 but at the ``riding`` rows: pp == 1, the
        decodes riding on the iterations that carry prompts) beyond half a mean iteration, its prefill alone and
        the M/D/1 queue of earlier prompts: an open loop's iterations run back to back, and the one a prompt goes
        into carries (1) the decodes of the other N - 1 sequences (`ride_ms` at N less a lone prompt's), (2) every
        prompt that arrived during the iteration before, those after it too (its whole iteration is its first
        token's), each adding s (ms: `ride_ms` with two prompts less with one; the decodes' memory traffic a
        prompt's compute overlaps is the first prompt's, once an iteration): rho_s = rate x s of work per ms of
        that iteration, which the arrival finds length-biased: E_lb = E[T^2] / E[T] = ``t_it`` + g s rho_s /
        (1 - rho_s^2) (an iteration's prompts are Poisson, g = `burst` times, over the one before: T' = d + s K,
        K ~ Poisson(rate T), Var T = g s^2 rate E[T] / (1 - rho_s^2)). Together rho_s E_lb for (2) and half the
        bias, (E_lb - t_it) / 2, in the residual iteration, less the M/D/1 queue's mean already counted,
        g rho S / (2 (1 - rho)) (rho = rate x ``S``, one prompt's prefill alone, ms). The simulator's figures:
        docs/profiles.md, thirty-second round."""
        out = np.zeros(len(N))
        r = np.minimum(np.asarray(rho, dtype=float)[riding], 0.999)
        Nr = np.asarray(N, dtype=float)[riding]
        args = (isl[riding], float(self.output_len), np.asarray(max_num_tokens, dtype=float)[riding])
        decodes = ride_ms(p, Nr, *args) - ride_ms(p, np.ones_like(Nr), *args)
        # each other prompt adds its prefill beside the decodes (`ride_ms` with two prompts less with one: the
        # decodes' memory traffic its compute overlaps is the first prompt's, once an iteration)
        share = np.clip((ride_ms(p, np.maximum(Nr, 2.0), *args, prompts=2.0) - ride_ms(p, np.maximum(Nr, 2.0), *args))
                        / np.maximum(S[riding], 1e-12), 0.0, 1.0)
        s, rs = S[riding] * share, np.minimum(r * share, 0.999)
        g = self.burst
        e_lb = t_it[riding] + g * s * rs / (1.0 - rs * rs)
        out[riding] = np.maximum(np.maximum(decodes, 0.0) + rs * e_lb + 0.5 * (e_lb - t_it[riding])
                                 - g * r * S[riding] / (2.0 * (1.0 - r)), 0.0)
        return out

    def _start_backlog(self, lam_ms: np.ndarray, n_req: np.ndarray, S: np.ndarray, cap_ms: np.ndarray,
                       slots: np.ndarray, over: np.ndarray) -> dict[str, np.ndarray | None]:
        """The run's backlog wait (ms; "mean" and `PERCENTILES` over the run's requests, one per row; None where no
        row is ``over`` its capacity) of an aggregated replica offered ``lam_ms`` requests per ms past its capacity
        ``cap_ms``, a run of ``n_req`` requests: it starts empty and admits the first ones at its prompts' rate
        (1 / ``S``, S the prefill alone, ms) into its ``slots`` free slots, which free one residency later
        (`_slot_fluid` at a constant rate over `START_WINDOWS` windows), so its queue grows only once its batch
        is full, a batch's worth of requests behind the linear n (1 / cap - 1 / lam) (`run_wait`), which counts
        as if the replica had served at its capacity from the first request on. The rows below capacity keep
        `run_wait`'s (no backlog: 0); the percentile of the backlog over the run's windows, each a share 1 / W."""
        out: dict[str, np.ndarray | None] = {k: None for k in ("mean", *PERCENTILES)}
        if not over.any():
            return out
        n, W = len(lam_ms), START_WINDOWS
        j = np.flatnonzero(over)
        lam = np.maximum(np.asarray(lam_ms, dtype=float)[j], 1e-300)
        n_run = np.broadcast_to(np.asarray(n_req, dtype=float), (n,))[j]
        fl, _, _ = self._slot_fluid(np.repeat(lam[:, None], W, axis=1), n_run / lam / W,
                                    1.0 / np.maximum(S[j], 1e-300), np.minimum(cap_ms[j], 1.0 / np.maximum(S[j], 1e-300)),
                                    np.maximum(np.floor(slots[j]), 1.0), *self._out_nodes, per_window=START_STEPS)
        # the requests' quantiles: the windows' means sorted, each at its window's middle (a share 1 / W each),
        # linear between them and beyond the last (the queue still growing at the run's end)
        fs = np.sort(fl, axis=1)
        full = {"mean": fl.mean(axis=1)}
        for p in PERCENTILES:
            x = Z_Q[p] * W - 0.5
            lo = int(np.clip(np.floor(x), 0, W - 2))
            full[p] = np.maximum(fs[:, lo] + (x - lo) * (fs[:, lo + 1] - fs[:, lo]), 0.0)
        for key, v in full.items():
            col = np.zeros(n)
            col[j] = v
            out[key] = col
        return out

    def _excess(self, d: Deployments) -> np.ndarray:
        """`_attention_excess` of deployments ``d`` (ms per request: the prompt-length mixture's prefill work over
        its mean prompt's, each prompt alone on the deployment's own GPUs)."""
        s_mean = inference.estimate(**self._kw(d), batch_size=1, input_len=self.input_len, output_len=1,
                                    max_num_tokens=d.max_num_tokens)["ttft_ms"].to_numpy(float)
        return self._attention_excess(self._prefill_nodes(self._kw(d), d.max_num_tokens), s_mean)

    def _kv_excess(self, d: Deployments, n_max: np.ndarray) -> np.ndarray:
        """The extra decode time (ms per request, one per row) of a replica whose KV cache binds its batch
        (``n_max`` sequences per scheduling rank below its max_batch_size) when the sequences decoding hold a
        longer prompt than the mean: a sequence's prompt stays in the cache for its decode steps, so the cache
        holds prompts weighted by their output, E[L (O - 1)] / E[O - 1] tokens (``_kv_prompt``), and the same
        cache holds n' = n_max (L-bar + O-bar / 2) / (that + O-bar / 2) of them: each request's O-bar - 1 decode
        steps are shared by fewer sequences, (O-bar - 1) (t(n') / n' - t(n_max) / n_max) more (t:
        `inference.estimate`'s decode step at that many sequences of that prompt). 0 where the batch is slot-bound
        or the weighting changes nothing (and on attention-DP replicas, left as they were)."""
        n = len(d)
        isl, osl = self.input_len, self.output_len
        held = self._kv_prompt
        bound = (n_max < d.max_batch_size * (1 - 1e-9)) & (d.attn_dp == 1)
        if held == isl or not bound.any() or osl <= 1:
            return np.zeros(n)
        i = np.flatnonzero(bound)
        di = d.take(i)
        n0 = np.maximum(np.round(n_max[i]), 1.0)
        n1 = np.clip(n0 * (isl + 0.5 * osl) / (held + 0.5 * osl), 1.0, di.max_batch_size.astype(float))
        lo1 = np.floor(n1)
        t0, t_lo, t_hi = (inference.estimate(**self._kw(di), batch_size=b, input_len=L, output_len=osl,
                                             max_num_tokens=di.max_num_tokens)["tpot_ms"].to_numpy(float)
                          for b, L in ((n0, isl), (lo1, held), (lo1 + 1.0, held)))
        t1 = t_lo + (n1 - lo1) * (t_hi - t_lo)                        # the step between whole batches (ms)
        out = np.zeros(n)
        out[i] = (osl - 1.0) * (t1 / n1 - t0 / n0)
        return out

    def _attention_excess(self, S: np.ndarray, s_mean: np.ndarray) -> np.ndarray:
        """The extra prefill work (ms per request, one per row) of the workload's prompt-length mixture over its mean
        prompt's: a prompt's prefill grows as c1 L + a L^2 once its compute binds (the fixed costs amortized over an
        iteration's batch), so prompts of mean length L-bar cost a Var(L) more on average than the mean prompt
        (Jensen). a: the second divided difference of the prefill alone (``S`` (n, K) at the length nodes,
        ``s_mean`` (n,) at the mean prompt, ms) at the mean, at the length node halfway to the longest, and at the
        longest; 0 where the nodes do not straddle the mean."""
        assert self._len_nodes is not None
        L, w = self._len_nodes
        n = S.shape[0]
        x0, x2 = self.input_len, float(L[-1])
        if not x2 > x0:
            return np.zeros(n)
        j = int(np.clip(np.searchsorted(L, 0.5 * (x0 + x2)), 1, len(L) - 2))
        x1 = float(L[j])
        if not x0 < x1 < x2:
            return np.zeros(n)
        var = float(((L - (L @ w)) ** 2) @ w)
        a2 = ((S[:, -1] - S[:, j]) / (x2 - x1) - (S[:, j] - s_mean) / (x1 - x0)) / (x2 - x0)
        return np.maximum(a2, 0.0) * var

    def _mixture(self, d: Deployments, lam_ms: np.ndarray, cache_share: np.ndarray,
                 budget: np.ndarray, t_it: np.ndarray, t_dec: np.ndarray, plain: np.ndarray, host: np.ndarray,
                 slot_mean: np.ndarray, erlang_c: np.ndarray, drain: np.ndarray, n_req: np.ndarray, cap_ms: np.ndarray,
                 stable: np.ndarray, slots: np.ndarray, resid: np.ndarray, step: np.ndarray | None = None,
                 s_mean: np.ndarray | None = None, *, board: np.ndarray, lanes: np.ndarray,
                 decode_only: np.ndarray | None = None, ride_extra: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
        """TTFT (mean, percentiles) and TPOT percentiles (ms) of aggregated continuous-batching replicas at
        ``lam_ms`` requests per ms each under the workload's prompt-length mixture (`length_nodes`: K lengths
        L_j of weight w_j):

        - a request's TTFT = its queue wait W + its own prefill service b_j = half an iteration + S(L_j) (its
          prefill alone, `inference.estimate`, superlinear in L through attention) + a whole iteration per further
          chunk of ``budget`` tokens + host time. The prompt queue is Kingman's G/G/1 on the prefill work with the
          moments of the actual prefill times: utilisation rho = lam E[S], cs^2 = E[S^2] / E[S]^2 - 1 of the
          S(L_j), the mean wait E[W] below, bounded by the run (`run_wait`). W is 0, or beyond a hyperexponential
          of mean E[W] / P(W > 0) and the squared CV `wait_scv` gives (Takacs' second moment: long prompts widen
          it); the p-quantile of TTFT solves sum_j w_j P(b_j + W <= t) = p (`mixture_quantile`), plus the slot
          wait's quantile (Erlang C, as the fixed-length form). Arrivals (`_length_queue`): a trace's index of
          dispersion of counts I_s over one mean service time (requests arriving together: a batch, M^X/G/1) and
          ca^2 over the queue's relaxation time (`_ca2`; with requests sharing timestamps, over at least
          `BATCH_GAPS` of the batches' gaps); E[W] = `batch_wait` x E[S]: (I_s - 1) E[S] / 2 for the own batch's
          earlier requests plus rho (ca^2 + cs^2) E[S] / (2 (1 - rho)) for the work it finds, scaled down where the
          batches come more regularly than Poisson (Pollaczek-Khinchine for Poisson arrivals, Kingman for renewal
          ones); W > 0 with probability 1 - (1 - P(a batch finds work)) / I_s.
        - TPOT of a request with O output tokens (its mean over its O - 1 decode steps): the decode step at the
          occupancy (``t_dec``) plus the prefill chunks riding on its steps, one chunk a step, each S(L_j) /
          chunks_j: a prompt of length L_j arriving during the request's decoding stalls it by
          S_j min(O - 1, chunks_j) / chunks_j; such prompts arrive at rate lam w_j, one or more in a life of
          (O - 1) t_dec with probability 1 - exp(-lam w_j (O - 1) t_dec) (single big jump: the largest stall sets
          the tail). A request that starts decoding behind a queue of prompts (probability p0, queued work
          exponential of mean E[W] / p0 as above) carries a chunk every step until that work has run: a stall of
          min(W, (O - 1) c) with c the work-weighted mean chunk. TPOT = t_dec + stall / (O - 1); its p-quantile
          over requests (O from the output-length nodes, `OUTPUT_BINS`) solves P(TPOT > t) = 1 - p by bisection.
          Short outputs hit by one long prompt make the p99; the result is at least the fixed-length form's
          percentile (occupancy fluctuations).

        - without chunked prefill, a prompt longer than ``budget`` runs only alone: it waits for the decodes in flight
          to finish (`drain_cdf`: found idle, Poisson of Little's mean x E[O - 1] step at the rate x served, each
          its length-biased residual steps, `residual_tail`; found behind a backlog, the whole decodes of the
          previous such prompt and of the prompts that fit behind it; mixed by the queue's utilisation), the
          queue held meanwhile (decode-only steps, ``step``, at the occupancy the served rate gives); the drain's
          mean is work on the queue's server (the others' wait; the replica serves at most x* = 1 / (E[S] +
          p_long step E[backlog drain])), its distribution splits the prompt's own b_j into M nodes. Such a
          prompt stalls no decode: TPOT counts the prompts that fit (mean ``step`` / (1 - rho_fit)).
        - no decode step outlasts the longest iteration (``step_max``: a prompt of max_num_tokens tokens alone, or
          the heaviest chunk riding on the decodes): the TPOT mean and percentiles are at most that.
        - the capacity (``cap_ms``, the steady state of the mean prompt) less the mixture's extra attention
          a Var(L) (``s_mean``: the mean prompt's prefill alone) and, on a replica whose KV cache binds its batch,
          the decode steps of the fewer sequences it holds where long prompts come with long outputs
          (`_kv_excess`).
        - a trace's own arrivals (`Workload.arrival_profile`): the queue as a modulated arrival process over
          `MODULATION_WINDOWS` windows (`_modulated`), each request waiting max(its window's fluid backlog, its
          window's stationary queue).
        - a trace replayed with its own arrivals and lengths (`trace_lives`): the TPOT's mean and percentiles from
          its own requests (`_trace_tpot`, "tpot_trace" and "tpot_trace_<p>": NaN on rows whose whole prompts over
          the budget drain the decodes, which keep the stall model above), given ``decode_only`` (a decode-only
          step at the occupancy, ms) and ``ride_extra`` (the decodes' own time in an iteration carrying a prompt,
          ms; None: 0).

        ``cache_share``: the prefill work a request does against its whole prompt's (prefix caching; 1 without);
        ``slot_mean``, ``erlang_c``, ``drain``: the slot wait's mean, probability and drain time (`_open_loop`);
        ``slots``, ``resid``: the sequences a rank holds at most and a sequence's residency (ms) at ``lam_ms``
        (a trace's windows, `_modulated`);
        ``stable``: rate below the replica's capacity (else the run's backlog); ``step``: a decode step between
        prompts (ms; whole prompts: decode-only; None: ``t_dec``); ``s_mean``: the mean prompt's prefill alone (ms;
        None: no capacity correction); ``board``: a prompt's wait for the batch it goes into (ms; `_open_loop`'s)."""
        nodes = self._len_nodes
        assert nodes is not None
        L, w = nodes
        n = len(d)
        S = self._prefill_nodes(self._kw(d), d.max_num_tokens) * cache_share[:, None]   # prefill alone (ms)
        if s_mean is not None:
            # the replica's capacity (``cap_ms``: the steady state of the mean prompt) less the mixture's extra
            # attention (`_attention_excess`) and, where the KV cache binds the batch, the decode steps of the
            # fewer sequences it holds where long prompts come with long outputs (`_kv_excess`)
            cap_ms = 1.0 / (1.0 / np.maximum(cap_ms, 1e-300) + self._attention_excess(S, s_mean)
                            + self._kv_excess(d, slots))
            stable = stable & (lam_ms < cap_ms * 0.999)
        # whole prompts (no chunked prefill) longer than the iteration's budget left by the decodes run alone: at
        # the head of the queue such a prompt holds every prompt behind it (FCFS) while the decodes in flight
        # run to their end (the simulator's engine: a prompt over the budget is scheduled only alone); that drain
        # (decode steps at t_dec) is work on the prompt queue's server and part of the prompt's own TTFT
        long = plain[:, None] & (L[None, :] > budget[:, None])
        drains = long.any(axis=1)
        chunks = np.where(plain[:, None], 1.0, np.ceil(L[None, :] / budget[:, None]))
        b = (board + host)[:, None] + S + np.where(plain[:, None], 0.0,
                                                         (chunks - 1.0) * np.maximum(t_dec, t_it)[:, None])
        step = t_dec if step is None else step                       # a decode step between prompts (ms)
        work, wx = S, w
        served = np.minimum(lam_ms, cap_ms)                           # requests per ms the replica serves
        if drains.any():
            # the decodes in flight when it arrives (Little: the served rate x mean decode steps x a step;
            # Poisson-distributed), their drain as M nodes (`drain_nodes`): each length node j splits into j x M,
            # weights w_j x v_m. While a long prompt waits at the head the queue is held (FCFS): the steps decode
            # only (``step``). The replica serves at most x* = 1 / E[work(x*)] (the drains of the decodes admitted
            # at x*: each long prompt drains the previous one's whole decode and those of the prompts that fit
            # behind it, `drain_cdf`), whatever it is offered
            w_long = np.where(long, w, 0.0).sum(axis=1)
            r_grid = self._residual[0]
            backlog = drain_cdf(self._residual, self._decode_steps, np.zeros(n), w_long, np.ones(n))
            e_full = np.trapezoid(1.0 - backlog, r_grid, axis=1)
            # the decode step at the occupancy the served rate gives (Little: x E[D] step; a few fixed-point steps
            # from the replica's occupancy, the drains holding it far below a full batch)
            for _ in range(DECODE_FIXED_POINT_STEPS):
                x_star = 1.0 / np.maximum(S @ w + w_long * step * e_full, 1e-300)
                occ = np.minimum(lam_ms, x_star) * self._residual[2] * step
                est = inference.estimate(**self._kw(d), batch_size=np.maximum(np.ceil(occ - 1e-9), 1.0),
                                         input_len=self.input_len, output_len=self.output_len,
                                         max_num_tokens=d.max_num_tokens)["tpot_ms"].to_numpy(float)
                step = np.where(drains, np.minimum(est, step), step)
            x_star = 1.0 / np.maximum(S @ w + w_long * step * e_full, 1e-300)
            served = np.where(drains, np.minimum(served, x_star), served)
            occ = served * self._residual[2] * step
            idle = drain_cdf(self._residual, self._decode_steps, occ, w_long, np.zeros(n))
            # the chance a long prompt finds a backlog: the server's utilisation rho = x E[work(rho)], work linear
            # in rho (the idle drain's mean a, the backlog's a + c): rho = x a / (1 - x c)
            e_idle = np.trapezoid(1.0 - idle, r_grid, axis=1)
            a_w = S @ w + w_long * step * e_idle
            c_w = w_long * step * (e_full - e_idle)
            busy = np.clip(served * a_w / np.maximum(1.0 - served * c_w, 1e-300), 0.0, 1.0)
            busy = np.where(served >= x_star * (1 - 1e-9), 1.0, busy)
            steps, v = cdf_nodes(r_grid, (1.0 - busy[:, None]) * idle + busy[:, None] * backlog)
            held = np.where(long[:, :, None], (step[:, None] * steps)[:, None, :], 0.0)          # (n, K, M) ms
            work = S + held @ v
            b = (b[:, :, None] + held).reshape(n, -1)
            wx = (w[:, None] * v[None, :]).ravel()
        work = work / lanes[:, None]     # the queue's work: pp > 1 passes a prompt per batch in flight (`_lanes`)
        qu = self._length_queue(work, lam_ms)
        p0, g = qu["p0"], qu["g"]
        if drains.any():
            # where drains hold the queue the replica serves prompts at most at x* (below x_max)
            cap_ms = np.where(drains, np.minimum(cap_ms, x_star), cap_ms)
            stable = stable & ~(drains & (lam_ms >= cap_ms * 0.999))
        # the stationary wait bounded by what the run builds at capacity, as the exponential tail's mean (beyond
        # capacity the run's backlog, `run_wait`'s, is a floor on the percentiles below)
        stationary = qu["stationary"]
        wq = run_wait(stationary, n_req, np.minimum(lam_ms, cap_ms), cap_ms, burst=g)
        out: dict[str, np.ndarray] = {"ttft": b @ wx + run_wait(stationary + slot_mean, n_req, lam_ms, cap_ms,
                                                               burst=g)}
        m = np.maximum(wq / p0, 1e-9)                                 # mean wait of a request that waits (ms)
        # (each scheduling rank sees its share of the run's requests, ``n_req``, over the run's span)
        # no decode step outlasts the longest iteration: a prompt of max_num_tokens tokens (the budget an iteration
        # holds; the decodes riding on it overlap its compute) or a long prompt's chunk that rides on the decodes
        # (a whole prompt over the budget rides on none: it runs once no decode is in flight)
        S_ride = np.where(long, 0.0, S)
        budget_ms = inference.estimate(**self._kw(d), batch_size=1.0, input_len=d.max_num_tokens.astype(float),
                                       output_len=1, max_num_tokens=d.max_num_tokens)["ttft_ms"].to_numpy(float)
        step_max = np.maximum(np.maximum(budget_ms, (S_ride / chunks).max(axis=1)), step)
        es_ride, es_long = S_ride @ w, np.where(long, S, 0.0) @ w

        def window_steps(held: np.ndarray, adm: np.ndarray) -> np.ndarray:
            return self._window_steps(d, held, adm, es_ride, es_long, step_max)

        window_ride = None
        if ride_extra is not None:
            prep, isl = _prepared(self._kw(d)), np.minimum(float(self.input_len), d.max_num_tokens.astype(float))
            # (the rows whose prompts ride beside the decodes, as ``ride_extra``'s: pp 1, prefill not run alone)
            rides = (np.asarray(d.pp) == 1) & (_prefill_alone(d) == 0)

            def window_ride(held: np.ndarray) -> np.ndarray:
                # the decodes' own time in an iteration carrying the mean prompt's first chunk beside ``held``
                # sequences (n, W), beyond the prompt's alone (`ride_ms`, as ``ride_extra`` at the occupancy)
                alone = ride_ms(prep, np.ones(n), isl, self.output_len, d.max_num_tokens.astype(float))
                extra = ride_ms(prep, np.maximum(held, 1.0), isl, self.output_len, d.max_num_tokens.astype(float))
                return np.where(rides[:, None], np.maximum(extra - alone[:, None], 0.0), 0.0)

        mod = (self._modulated(work, lam_ms, cap_ms, n_req, qu["c2"], slots, resid, window_steps,
                               ranks=(d.dp * d.attn_dp).astype(float), window_ride=window_ride)
               if self._profile is not None else None)
        if mod is not None:
            # (the fluid carries the run's backlog; the slot wait is each window's, at the slots the fluid holds)
            out["ttft"] = b @ wx + mod["mean"] + mod["slot"]["mean"]
        outs, vo = self._out_nodes
        t_life = (outs[None, :] - 1.0) * step[:, None]               # decoding life without stalls (ms)
        # a prompt's chunks ride one per iteration: a request decoding O - 1 steps meets at most O - 1 of them,
        # each costing its share S / chunks of the prefill. A whole prompt over the budget stalls none: it runs
        # once no decode is in flight
        stall = S_ride[:, None, :] * np.minimum(outs[None, :, None] - 1.0, chunks[:, None, :]) / chunks[:, None, :]
        # a step behind a queue of prompts carries a chunk of the prompt being prefilled, chosen by work share
        c_full = ((S_ride * S_ride / chunks) @ w) / np.maximum(S @ w, 1e-300)
        # whole prompts, mean TPOT: a step lasts ``step`` but for the prefills of the prompts that fit beside the
        # decodes, a share rho_fit = x E[S_fit] of the time the decodes are in flight (1 - x E[S_long]: a long
        # prompt runs alone)
        busy_long = np.minimum(served * (np.where(long, S, 0.0) @ w), 0.999)
        rho_fit = np.minimum(served * (S_ride @ w) / (1.0 - busy_long), 0.999)
        out["tpot"] = step / (1.0 - rho_fit)
        out["step_max"] = step_max
        for p in PERCENTILES:
            q = Z_Q[p]

            # the slot wait's quantile, bounded by what the run builds (no backlog: that is added once, below; a
            # trace's windows: the windows' own, `_modulated`)
            slot_q = (run_wait(np.where(erlang_c > 1 - q, drain * np.log(np.maximum(erlang_c / (1 - q), 1.0)), 0.0),
                               n_req, np.minimum(lam_ms, cap_ms), cap_ms, p) if mod is None else mod["slot"][p])
            if mod is not None:
                out[f"ttft_{p}"] = window_quantile(b, wx, mod, q) + slot_q
            else:
                hi = mixture_quantile(b, wx, p0, m, q, qu["c2"])
                out[f"ttft_{p}"] = np.where(stable, hi, np.maximum(hi, b @ wx + run_wait(np.zeros(n), n_req, lam_ms,
                                                                                       cap_ms, p))) + slot_q

            def tpot_tail(t: np.ndarray, q: float = q) -> np.ndarray:   # t: (n, k) -> P(TPOT > t) > 1 - q
                need = (t[:, :, None] - step[:, None, None]) * (outs[None, None, :] - 1.0)    # (n, k, O) stall
                hit = stall[:, None, :, :] > need[..., None]           # (n, k, O, K)
                rate = np.broadcast_to(lam_ms[:, None, None, None] * w * t_life[:, None, :, None], hit.shape)
                # ... and a queue of prompts found at its start: every step carries a full chunk until the queued
                # work (exponential tail of mean m, present with probability p0) has run
                queue = np.where(need < (outs[None, None, :] - 1.0) * c_full[:, None, None],
                                 p0[:, None, None] * np.exp(-need / m[:, None, None]), 0.0)
                pr = 1.0 - np.exp(-(rate * hit).sum(axis=3)) * (1.0 - queue)
                return (pr * vo).sum(axis=2) > 1 - q

            top = step + np.maximum(stall.max(axis=(1, 2)), c_full) + 1.0
            _, hi = bisect(step.copy(), top, tpot_tail, TTFT_BISECTION_STEPS)
            out[f"tpot_{p}"] = hi
        fits = np.flatnonzero(~drains)
        if self._lives is not None and decode_only is not None and len(fits):
            # a trace replayed with its own arrivals: each request's decode beside the prompts that arrive during it
            # (`_trace_tpot`), the mean and percentiles over its requests (NaN: the stall model's, above, where whole
            # prompts over the budget hold the queue while the decodes drain, which that fluid does not have). The
            # trace is split over the scheduling ranks, but attention-DP ranks in lockstep (`_in_lockstep`) are
            # one: a prompt on any of them holds every rank's step, so each replays its replica's whole share (a
            # burst's prompts together) at a rank's rate, its group prefilling attn_dp prompts side by side
            col = (lambda v: np.broadcast_to(np.asarray(v, dtype=float), (n,))[fits])
            lock = np.broadcast_to(_in_lockstep(self.model, d), (n,))
            sched_ranks = np.where(lock, d.dp, d.dp * d.attn_dp)
            tr = self._trace_tpot((S_ride / lanes[:, None])[fits], col(lam_ms), col(decode_only), col(board),
                                  col(step_max), col(budget), np.asarray(plain, dtype=bool)[fits],
                                  None if ride_extra is None else col(ride_extra), col(sched_ranks),
                                  col(slots))
            for key, name in (("mean", "tpot_trace"), *((p, f"tpot_trace_{p}") for p in PERCENTILES)):
                out[name] = np.full(n, np.nan)
                out[name][fits] = tr[key]
        return out

    def _trace_tpot(self, work: np.ndarray, lam_ms: np.ndarray, step: np.ndarray, board: np.ndarray,
                    step_max: np.ndarray, budget: np.ndarray, plain: np.ndarray,
                    extra: np.ndarray | None = None, ranks: np.ndarray | None = None,
                    slots: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """TPOT (ms; the mean and `PERCENTILES` over the requests that decode) of replicas replaying a trace's own
        requests (`TraceLives`: their arrivals, at ``lam_ms`` requests per ms, and their lengths): the prompts
        stall the decodes by the prefill work that really runs during each request's decode, so a burst of long
        prompts slows the few requests decoding beside it, which is what sets the tail (`trace_decode_tpot`; a count
        of independent arrivals in a life, `_mixture`'s stall model, missed the trace's bursts of long prompts).
        ``work`` (n, K): each length node's prefill work on the iterations (ms; 0 for a prompt that runs alone),
        interpolated between nodes (`trace_lives`); ``step``: a decode-only step at the occupancy (ms); ``board``:
        the wait for the iteration a prefilled prompt's first decode goes into (ms); ``step_max``: the longest
        iteration (ms), the most a TPOT can be; ``budget``: the prompt tokens an iteration beside the decodes holds;
        ``plain``: whole prompts (no chunked prefill); ``extra``: the decodes' own time in an iteration that
        carries a prompt (ms; None: 0); ``ranks``: the ranks of each deployment the router splits the trace over (dp
        x attention DP, dp where attention-DP ranks step in lockstep; None: 1; `split_lives`: each replays its share
        at ``lam_ms``);
        ``slots``: the sequences a rank holds at once (None: no limit; `slot_admissions`).
        Vectorized over deployments x requests, `TRACE_BLOCK` elements at a time."""
        full = self._lives
        assert full is not None
        n, K = work.shape
        out = {"mean": np.full(n, np.nan), **{p: np.full(n, np.nan) for p in PERCENTILES}}
        if not full.decodes.any():
            return out
        lam_ms, board = np.asarray(lam_ms, dtype=float), np.asarray(board, dtype=float)
        plain = np.asarray(plain, dtype=bool)
        ranks = np.ones(n, dtype=np.int64) if ranks is None else np.maximum(np.round(ranks), 1).astype(np.int64)
        for D in np.unique(ranks):
            # each of a deployment's D ranks replays its own share of the trace (`split_lives`), one row each
            lv, cols = (full, None) if D == 1 else self._split_lives(int(D))
            rows_d = np.flatnonzero(ranks == D)
            nxt = np.minimum(lv.node + 1, K - 1)
            block = max(1, TRACE_BLOCK // lv.t.size)
            for lo in range(0, len(rows_d), block):
                r = rows_d[lo:lo + block]
                rr = np.repeat(r, D)                                                    # (deployment, rank) rows
                if D == 1:
                    sub, wk = lv, work[r]
                    S = wk[:, lv.node] * (1.0 - lv.frac) + wk[:, nxt] * lv.frac        # (b, R) ms
                else:
                    sub = TraceLives(*(np.tile(getattr(lv, f.name), (len(r), 1)) for f in fields(lv)))
                    wk, i = work[rr], np.arange(len(rr))[:, None]
                    S = wk[i, sub.node] * (1.0 - sub.frac) + wk[i, np.tile(nxt, (len(r), 1))] * sub.frac
                    S = np.where(sub.prompts > 0, S, 0.0)                               # the padding: no work
                tpot = trace_decode_tpot(sub, np.maximum(lam_ms[rr], 1e-300), S, step[rr], board[rr], budget[rr],
                                         plain[rr], None if extra is None else extra[rr],
                                         None if slots is None else slots[rr])
                if cols is not None:                  # the deployment's decoding requests over its ranks
                    tpot = tpot.reshape(len(r), -1)[:, cols]
                tpot = np.minimum(tpot, step_max[r, None])
                out["mean"][r] = tpot.mean(axis=1)
                qs = np.quantile(tpot, [Z_Q[p] for p in PERCENTILES], axis=1)
                for p, v in zip(PERCENTILES, qs):
                    out[p][r] = v
        return out

    def _split_lives(self, ranks: int) -> tuple[TraceLives, np.ndarray]:
        """`split_lives` of the workload's trace over ``ranks`` ranks, kept per count."""
        if ranks not in self._splits:
            assert self._lives is not None
            self._splits[ranks] = split_lives(self._lives, ranks)
        return self._splits[ranks]

    def _window_steps(self, d: Deployments, held: np.ndarray, adm: np.ndarray, es_ride: np.ndarray,
                      es_long: np.ndarray, step_max: np.ndarray) -> np.ndarray:
        """The mean decode step (ms, (n, W)) in each window of a trace (`_modulated`) that holds ``held`` sequences
        and admits ``adm`` prompts per ms (n, W): each prompt holds the decodes' iterations for its prefill (the
        decodes ride on it; ``es_ride``: the mean prefill, ms, of a prompt that rides, 0 for those that run alone,
        whose mean ``es_long`` keeps no decode in flight), so a share rho = adm es_ride / (1 - adm es_long) of the
        time carries prompts and a step lasts t_dec(held) / (1 - rho) (t_dec: a decode-only step at the sequences
        the window holds, `inference.estimate`), at most ``step_max`` (the longest iteration)."""
        n, W = held.shape
        pure = inference.estimate(**_repeat(self._kw(d), n, W), batch_size=np.maximum(np.ceil(held.ravel() - 1e-9),
                                                                                         1.0),
                                  input_len=self.input_len, output_len=self.output_len,
                                  max_num_tokens=np.repeat(d.max_num_tokens, W))["tpot_ms"].to_numpy(float)
        busy_long = np.minimum(adm * es_long[:, None], 0.999)
        rho = np.minimum(adm * es_ride[:, None] / (1.0 - busy_long), 0.999)
        return np.minimum(pure.reshape(n, W) / (1.0 - rho), step_max[:, None])

    def _modulated(self, work: np.ndarray, lam_ms: np.ndarray, cap_ms: np.ndarray, n_req: np.ndarray,
                   spread: np.ndarray, slots: np.ndarray, resid: np.ndarray,
                   window_steps: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None, *,
                   ranks: np.ndarray | None = None,
                   window_ride: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The prompt queue under a trace's own arrivals as a modulated arrival process (pointwise stationary
        fluid approximation): the run split into `MODULATION_WINDOWS` windows of equal length, window k bringing
        a share r_k / W of the requests (`Workload.arrival_profile`, r_k: its rate over the mean) whose prompts
        are tok_k x the run's mean (`Workload.prompt_profile`: their prefill work in proportion). Over the windows
        the queue is a fluid (`_slot_fluid`): the replica admits prompts while it holds a free slot, at most 1 /
        E[work] per ms with no decode in flight, and a slot frees one residency after its admission, so a storm
        fills the slots its quieter past left free before it queues, and with every slot taken the backlog grows at
        lam r_k - c (c: the replica's capacity, at most 1 / E[work]) and carries over into the quieter windows after
        it; inside a window the queue is the stationary one at the window's rate (`_length_queue` at lam r_k, its
        arrivals' dispersion read over at most one window), bounded by what the window's requests build
        (`run_wait`), and the wait for a slot Erlang C at the sequences the fluid holds in the window (each held
        ``resid`` ms), so bounded too. ``work`` (n, K): each length node's work on the queue's server (ms); ``lam_ms``,
        ``cap_ms``: requests per ms offered and served at most; ``n_req``: the requests of the run this queue
        sees (one per row); ``slots``: the sequences it holds at most (its saturated batch; inf: no slot limit, as in
        a disaggregated prefill pool, whose prompts leave when prefilled); ``window_steps``: None, or a callable
        (sequences held, prompts admitted per ms; both (n, W)) -> each window's mean decode step (ms,
        `_window_steps`) for the decodes' side; ``ranks``: the ranks a request goes to the least-loaded of, each
        such a queue (one per row; None: one; the slot wait, `window_slot_wait`). Returns mean (the
        mean wait, ms), slot (the slot wait's mean and percentiles, ms, over the windows), and per window (n, W):
        fluid (its mean fluid backlog, ms), p0, m, c2 (the local queue's chance to wait, mean wait given a wait
        and its squared CV, `mixture_quantile`'s), and weights (W,): each window's share of the requests; with
        ``window_steps`` also steps (each window's mean decode step, ms), admitted (prompts per ms) and dlt (a
        window's length, ms, (n,)), the decodes' side."""
        prof = self._profile
        assert prof is not None and self._len_nodes is not None
        w = self._len_nodes[1]
        n, W = work.shape[0], len(prof)
        es = np.maximum(work @ w, 1e-300)
        # each window's prompts: its mean prompt over the run's (`Workload.prompt_profile`), their prefill work in
        # proportion, so a window of longer prompts admits fewer per ms and its replica serves fewer
        tok = self._tokens if self._tokens is not None else np.ones(W)
        mu = 1.0 / (es[:, None] * tok[None, :])                        # prompts per ms the prefill work admits
        cap_w = 1.0 / (1.0 / np.maximum(cap_ms, 1e-300)[:, None] + es[:, None] * (tok - 1.0))
        c = np.maximum(np.minimum(cap_w, mu), 1e-300)                  # ... and the replica serves, batch full
        lam = np.maximum(lam_ms, 1e-300)
        n_run = np.broadcast_to(np.asarray(n_req, dtype=float), (n,))
        dlt = n_run / lam / W                                          # a window's length (ms)
        slots = np.broadcast_to(np.asarray(slots, dtype=float), (n,))
        fluid, held, admitted = self._slot_fluid(lam[:, None] * prof[None, :], dlt, mu, c, slots,
                                                 *self._out_nodes)
        decode: dict[str, np.ndarray] = {}
        ride = np.zeros((n, W))                             # the decodes' share of a prompt's iteration (ms)
        if window_steps is not None:
            # the decodes' side: a sequence holds its slot for its decode at its window's own step
            # (`_window_steps`; O x E[step]), not the full batch's residency slots / cap (the queue's side keeps
            # that: these steps at a full batch sustain less than the steady state's capacity ``cap`` that the
            # fluid queues at, so that fluid's slots fill too soon near capacity; docs/serving_slo.md). The held
            # sequences and the steps set each other (a slower step holds each sequence longer, more are held, the
            # step slows): a few fixed-point rounds from the lightest batch up (one sequence a window), the
            # fixed point a run that starts empty reaches (seeded with the queue side's held sequences instead, a
            # deep batch's storm windows were charged the steps of sequences held for the full batch's residency)
            # (the prompts' prefill work per window in units of the run's mean prompt: admissions x ``tok``)
            # (until the held sequences settle: near capacity a storm's windows fill the slots only a few rounds
            # up, and the backlog for a slot is the last rounds'). A full batch frees its slots at the replica's
            # capacity ``c`` at least (a residency of at most slots / c): the window step's stretch by the prompts
            # it carries, t_dec / (1 - rho), counts at a full batch prompts that its free slots do not admit
            steps = window_steps(np.ones_like(held), admitted * tok)
            mean_out = self._out_nodes[0] @ self._out_nodes[1]
            full = slots[:, None] / c                                  # the full batch's residency (ms, (n, W))
            held_d = np.zeros_like(held)
            for _ in range(WINDOW_FIXED_POINT_STEPS):
                fluid_d, again, adm_d = self._slot_fluid(lam[:, None] * prof[None, :], dlt, mu, c, slots,
                                                         *self._out_nodes, resid=np.minimum(mean_out * steps, full))
                steps = window_steps(again, adm_d * tok)
                settled = np.abs(again - held_d).max(initial=0.0) < WINDOW_SETTLED
                held_d = again
                if settled:
                    break
            decode = {"steps": steps, "admitted": adm_d, "dlt": dlt}
            # the wait for a slot, and the backlog for one, at the sequences the decodes hold, each for its decode
            # at its window's step (the queue side's full-batch residency held a 256-slot replica near full through
            # the Azure conversation storm, whose simulated run never holds 256, and queued the storm's prompts for
            # slots that the run has free: docs/profiles.md)
            held, resid, fluid = held_d, np.minimum(mean_out * steps, full), fluid_d
            if window_ride is not None:
                # a prompt's iteration also carries the decodes in flight (their own time in it, ``window_ride``
                # at the sequences the window holds), shared by the prompts that go into the same iteration: the
                # prompt itself and those arriving during the iteration before it (Poisson, lam_k x the window's
                # step), so the decodes slow the prompts' queue as the window's batch deepens
                ride = window_ride(held_d) / (1.0 + lam[:, None] * prof[None, :] * steps)
        lam_k = (lam[:, None] * prof[None, :]).ravel()
        served_k = np.minimum(lam_k, c.ravel())
        own = self.rate
        tau = (1e3 * self.workload.size / own / W) if own else math.inf   # a window in the trace's own time (ms)
        qu = self._length_queue(np.repeat(work, W, axis=0) * np.tile(tok, n)[:, None] + ride.reshape(-1, 1), served_k,
                                tau, within=True)
        cap_k = cap_w.ravel()
        n_k = np.repeat(np.maximum(n_run / W, 1.0), W)
        local = run_wait(qu["stationary"], n_k, served_k, cap_k, burst=qu["g"]).reshape(n, W)
        weights = prof / prof.sum()
        p0 = qu["p0"].reshape(n, W)
        m = np.maximum(local / p0, 1e-9)
        # the wait's spread: the whole run's queue's (``c2``, `wait_scv`), the windows differing in their means
        c2 = np.broadcast_to(np.asarray(spread, dtype=float)[:, None], (n, W))
        # a request waits for the larger of the two, max(F, X), not their sum: a window busy with a fluid backlog
        # is the backlog's (the local fluctuations average out). E[max(F, X)] = F + E[(X - F)+], X 0 with
        # probability 1 - p0, else `mixture_quantile`'s balanced hyperexponential of mean m and squared CV c2
        a = 0.5 * (1.0 + np.sqrt((np.maximum(c2, 1.0) - 1.0) / (np.maximum(c2, 1.0) + 1.0)))
        m1, m2 = m / (2.0 * a), m / (2.0 * (1.0 - a))
        excess = p0 * (a * m1 * np.exp(-fluid / m1) + (1.0 - a) * m2 * np.exp(-fluid / m2))
        # the wait for a free slot in each window (`window_slot_wait`; no slot limit, ``slots`` infinite: none)
        slot = window_slot_wait(held, slots, resid, n_k, served_k, cap_k, weights, ranks, self._out_cs2)
        return {"mean": (fluid + excess) @ weights, "fluid": fluid, "p0": p0, "m": m, "c2": c2, "weights": weights,
                "slot": slot, **decode}

    @staticmethod
    def _slot_fluid(lam_k: np.ndarray, dlt: np.ndarray, mu: np.ndarray, cap: np.ndarray, slots: np.ndarray,
                    outs: np.ndarray, v_out: np.ndarray, resid: np.ndarray | None = None,
                    per_window: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean fluid wait (ms), sequences in flight and prompts admitted per ms in each window of a modulated run
        (``lam_k`` (n, W): each
        window's arrivals per ms; ``dlt`` (n,): a window's length, ms; ``mu``, ``cap``: one per row or one per row
        and window) at a replica that admits a prompt while it
        holds a free slot, at most ``mu`` per ms with no decode in flight (its prefill work; the decodes in flight
        ride on its iterations, so the rate falls linearly to ``cap`` with a full batch), and holds at most
        ``slots`` sequences. A sequence of O output tokens (``outs``, weights ``v_out``: the output-length nodes)
        holds its slot O / E[O] x R (R = slots / ``cap``: the full batch's residency, ``cap`` the requests per ms
        the replica serves with every slot taken, at most ``mu``), so a slot frees that long after its admission.
        The run starts empty; a storm first fills the free slots (the decodes in flight lag the arrivals by their
        residencies), and only a full batch, or prompts faster than that rate, leave a queue; a queued prompt
        waits the queue over the rate it is admitted at. Integrated in ``per_window`` steps per window (None:
        `SLOT_FLUID_STEPS`), vectorized over the rows. A replica whose batch stays full queues as the reflected fluid of the rate over ``cap``."""
        n, W = lam_k.shape
        per_window = SLOT_FLUID_STEPS if per_window is None else per_window
        T = W * per_window
        h = dlt / per_window                                     # a step (ms)
        # (``mu``, ``cap``: one per row, or one per row and window)
        mu_w, cap_w = (np.broadcast_to(x[:, None] if np.ndim(x) == 1 else x, (n, W)) for x in (mu, cap))
        r_full = slots[:, None] / np.maximum(cap_w, 1e-300)
        # each output node's residency in steps (at least one), one row per deployment and window of admission
        # (no slot limit, ``slots`` infinite: a slot never frees within the run, and none is ever needed)
        res = r_full if resid is None else resid
        lag = np.clip(np.rint((outs / max(float(outs @ v_out), 1e-300))[None, None, :]
                              * (res / h[:, None])[:, :, None]), 1, T + 1).astype(np.int64)       # (n, W, O)
        freed = np.zeros((n, 2 * T + 3))                               # slots freed per step (index t + 1)
        rows = np.broadcast_to(np.arange(n)[:, None], (n, len(outs)))
        held = np.zeros(n)                                             # sequences in flight
        queue = np.zeros(n)                                            # prompts waiting
        fluid, inflight, admitted = np.zeros((n, W)), np.zeros((n, W)), np.zeros((n, W))
        for t in range(T):
            k = t // per_window
            mu, cap = mu_w[:, k], cap_w[:, k]
            want = queue + lam_k[:, k] * h
            done = freed[:, t + 1]                                     # admitted one residency ago
            stay = np.maximum(held - done, 0.0)
            free = np.maximum(slots - stay, 0.0)
            # the decodes in flight ride on the prompts' iterations: the prompts' rate falls from ``mu`` (none)
            # to ``cap`` (a full batch)
            rate = mu - (mu - cap) * np.minimum(stay / np.maximum(slots, 1e-300), 1.0)
            adm = np.minimum(want, np.minimum(rate * h, free))
            np.add.at(freed, (rows, t + 1 + lag[:, k, :]), adm[:, None] * v_out[None, :])
            held, queue = stay + adm, want - adm
            fluid[:, k] += queue / np.maximum(adm / h, cap)
            inflight[:, k] += held
            admitted[:, k] += adm / h
        return fluid / per_window, inflight / per_window, admitted / per_window

    def _prefill_nodes(self, kw: Mapping[str, Any], max_num_tokens: np.ndarray) -> np.ndarray:
        """Prefill time (ms) of one prompt alone at each prompt-length node (`length_nodes`), shape (n, K): one
        `inference.estimate` of the n deployments' ``kw`` (their `_kw`, or a prefill pool's `_prefill_kw`) x K
        lengths (superlinear in the length through attention)."""
        nodes = self._len_nodes
        assert nodes is not None
        L = nodes[0]
        n, K = len(max_num_tokens), len(L)
        est = inference.estimate(**_repeat(dict(kw), n, K), batch_size=1.0, input_len=np.tile(L, n), output_len=1,
                                 max_num_tokens=np.repeat(max_num_tokens, K))
        return est["ttft_ms"].to_numpy(float).reshape(n, K)

    def _length_queue(self, S: np.ndarray, lam_ms: np.ndarray, tau_max_ms: float = math.inf,
                      within: bool = False) -> dict[str, np.ndarray]:
        """The prompt queue of a length mixture: work S (ms, shape (n, K): what each length node's prompt holds
        the queue's server for) arriving at ``lam_ms`` requests per ms (one per queue). Returns rho (utilisation
        lam E[S], at most 0.999), cs2 (squared CV of the work), i_s and ca2 (the arrivals' index of dispersion
        over one service time and over the queue's relaxation time), stationary (its mean wait, ms, `batch_wait`,
        unbounded by the run), p0 (the probability of waiting) and g (the run's random-walk variance factor for
        `run_wait`). The aggregated replicas' queue (`_mixture`) and the disaggregated prefill pool's."""
        w = self._len_nodes[1] if self._len_nodes is not None else np.ones(S.shape[1]) / S.shape[1]
        n = S.shape[0]
        ES = S @ w
        ES2 = (S * S) @ w
        cs2 = np.maximum(ES2 / np.maximum(ES * ES, 1e-300) - 1.0, 0.0)
        rho = np.minimum(lam_ms * ES, 0.999)
        # arrivals: I_s, a trace's index of dispersion over one mean service time (requests arriving together, a
        # batch: M^X/G/1), and ca^2 over the queue's relaxation time (ca^2 + cs^2) E[S] / (1 - rho)^2, the time
        # scale over which a heavily loaded queue's wait builds (its diffusion limit; a fixed point in ca^2).
        # Poisson / gamma arrivals: I_s = 1 and ca^2 = `Workload.variability`'s
        ca2, i_s = self._ca2(np.minimum(ES / np.maximum(1.0 - rho, 1e-3), tau_max_ms), within=within), np.ones(n)
        if self._idc is not None:
            # (its largest over windows up to that: requests arriving together stay a batch at any rate)
            i_s = np.maximum(self._ca2(ES, peak=True, within=within), 1.0)
            # requests sharing arrival times (batches, `Workload.arrival_batches`): the batches' own gaps
            # count too, their squared CV being the index of dispersion over many of their gaps in the trace's own
            # time (BATCH_GAPS of them; the trace's mean rate, whatever rate the replica is offered)
            own = self.rate
            gaps = BATCH_GAPS * self._batch / own * 1e3 if self._batch > 1 and own else 0.0
            for _ in range(CA2_FIXED_POINT_STEPS):
                ca2 = self._ca2(np.minimum(np.maximum((ca2 + cs2) * ES / np.maximum(1.0 - rho, 1e-3) ** 2, gaps),
                                           tau_max_ms), within=within)
        # mean wait (`batch_wait`): the earlier requests of its own batch, (I_s - 1) E[S] / 2, plus the work the
        # batch finds (Kingman on the batches, corrected for batches that come regularly)
        wait_es, p_found = batch_wait(rho, cs2, ca2, i_s, self._batch)
        # a request waits when its batch finds work (`batch_wait`: rho for Poisson batches) or it is not first of
        # its batch (1 - 1 / I_s of them)
        p0 = np.clip(1.0 - (1.0 - p_found) / i_s, 1e-12, 1.0)
        # the wait's spread (`wait_scv`): long prompts make it far more variable than an exponential
        c2 = wait_scv(S, w, lam_ms, rho, i_s, ca2, wait_es * ES, p_found, p0, self._batch > 1)
        return {"rho": rho, "cs2": cs2, "i_s": i_s, "ca2": ca2, "stationary": wait_es * ES, "p0": p0, "c2": c2,
                "g": cs2 + np.maximum(ca2, i_s)}

    def _ca2(self, tau_ms: np.ndarray, peak: bool = False, within: bool = False) -> np.ndarray:
        """Arrivals' squared variability for the prompt queue whose busy periods last ``tau_ms`` (ms, one per
        deployment): a trace replayed with its own arrivals gives its index of dispersion of counts over that
        window (`Workload.arrival_dispersion`, interpolated in log window), so a few long pauses between requests
        do not count as bursts the queue feels; other workloads `Workload.variability`'s (1 Poisson, cv^2 gamma).
        ``within``: the index of the arrivals within the `MODULATION_WINDOWS` windows (their rate's swings across
        windows taken out, `Workload.arrival_dispersion`'s ``demodulate``), for the windows' own queues
        (`_modulated`)."""
        if self._idc is None:
            return np.full(np.shape(tau_ms), self._ca2_arrivals)
        idc = self._idc_within if within and self._idc_within is not None else self._idc
        idc = np.maximum.accumulate(idc) if peak else idc
        return np.interp(np.log(np.maximum(tau_ms, 1e-9)), np.log(self._windows_ms), idc)

    @reusing_prepared()
    def capacity(self, d: Deployments, slo: SLO, *, tol: float = 0.01) -> np.ndarray:
        """Highest open-loop request rate (requests/s, whole deployment) at which each deployment still meets
        ``slo`` in this model (vectorized bisection over the rate; 0 where it misses even a trickle of requests)."""
        if not isinstance(slo, SLO):
            raise ValueError(f"capacity needs a serving.SLO, got {slo!r:.80}")
        sat = self.evaluate(d, slo, rate=np.full(len(d), 1e9))
        hi = sat["requests_per_s"].to_numpy(float)
        hi = np.where(np.isfinite(hi) & (hi > 0), hi, MIN_CAPACITY_RATE)
        lo = np.zeros(len(d))
        cons = slo.constraints

        def meets_on(dd: Deployments) -> Callable[[np.ndarray], np.ndarray]:
            def meets(rate: np.ndarray) -> np.ndarray:                # rate: (deployments, points per deployment)
                k = rate.shape[1]
                dk = dd if k == 1 else dd.take(np.repeat(np.arange(len(dd)), k))
                m = self.evaluate(dk, slo, rate=np.maximum(rate.ravel(), 1e-9))
                ok = m["fits"].to_numpy(float) == 1.0
                for metric, (_, bound) in cons.items():
                    ok &= m[metric].to_numpy(float) <= bound
                return ok.reshape(len(dd), k)
            return meets

        ok_lo = meets_on(d)(np.full((len(d), 1), MIN_CAPACITY_RATE))[:, 0]
        steps = max(1, int(math.ceil(math.log2(1.0 / tol))))
        lo, up = bisect(lo, hi, meets_on(d), steps)
        # those halvings leave a bracket of hi / 2**steps, `tol` of the saturated rate: where an SLO holds the
        # answer far below it (a tight TTFT bound), the rows whose bracket is wider than `tol` of its lower end go
        # on halving it geometrically (from the trickle `ok_lo` met where the bracket starts at 0)
        wide = np.flatnonzero(ok_lo & (up - lo > tol * lo))
        if len(wide):
            a = np.maximum(lo[wide], MIN_CAPACITY_RATE)
            more = int(np.ceil(np.log2(np.max(np.log(up[wide] / a)) / math.log1p(tol))))
            if more > 0:
                lo[wide], _ = bisect(a, up[wide], meets_on(d.take(wide)), more, geometric=True)
        return np.where(ok_lo, lo, 0.0)


Z_Q = {"p50": 0.5, "p90": 0.9, "p99": 0.99}

#: the trickle (requests/s) `ServingModel.capacity` checks first: a deployment that misses its SLO even there
#: holds no rate (0), and one that meets it holds at least this
MIN_CAPACITY_RATE = 1e-6

#: probability bins (edges) of the length nodes of a mixture (`length_nodes`): finer in the upper tail, where
#: prefill times grow superlinearly with the prompt and the rare long prompts set the percentiles
LENGTH_BINS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995,
               0.999, 1.0)
#: probability bins of the output-length nodes (`quantile_nodes`): finer at the short end, where a stall per
#: decode step is largest
OUTPUT_BINS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0)
#: halvings of the bisections on a TTFT / TPOT percentile of a length mixture (`ServingModel._mixture`): its
#: bracket to ~1e-9 of its width
TTFT_BISECTION_STEPS = 30
#: halvings of the TTFT percentiles' bisection over a trace's windows (`ServingModel._modulated`: 20 times the
#: nodes): the bracket to ~1e-6 of its width
MODULATED_BISECTION_STEPS = 20
#: fixed-point steps of the arrivals' ca^2 read at the queue's relaxation time (`ServingModel._mixture`)
CA2_FIXED_POINT_STEPS = 4
#: gaps between a trace's batches of requests (requests sharing one arrival time) over which the index of
#: dispersion of counts reads as the batches' squared CV (`ServingModel._mixture`, `batch_wait`): a renewal
#: process's index over a window of n gaps tends to its gaps' squared CV as n grows (within 1 / n)
BATCH_GAPS = 10
#: windows (log-spaced, 1 ms .. 10^4 s) at which `Workload.arrival_dispersion` is read once per workload
DISPERSION_WINDOWS = 29
#: windows of equal length over which a trace's own arrivals modulate the prompt queue's rate
#: (`Workload.arrival_profile`, `ServingModel._modulated`): as many as `Workload.arrival_dispersion` counts at its
#: longest window (span / 20)
MODULATION_WINDOWS = 20
#: windows and integration steps per window of the constant-rate run's fluid from an empty start
#: (`ServingModel._start_backlog`)
START_WINDOWS = 10
#: occupancies of a pipeline's one-batch build-up from an empty start (`_pipe_start`), evenly from 0 to the
#: one-batch state's
PIPE_START_POINTS = 24
START_STEPS = 4
#: integration steps per window of `ServingModel._slot_fluid`
SLOT_FLUID_STEPS = 8


#: most elements (deployments x requests) of one block of `ServingModel._trace_tpot`'s arrays (memory bound: a
#: long trace over a whole grid is priced a block of deployments at a time)
TRACE_BLOCK = 1 << 21
#: most passes of `trace_decode_tpot`'s slot limit: each admits the requests the slots hold back on the mean of the
#: holds the replays before found (the first on those of the trace without the limit); a deployment stops earlier
#: once its admissions move less than a decode step on average
SLOT_PASSES = 6


@dataclass(frozen=True)
class TraceLives:
    """A trace's requests in arrival order, as `ServingModel._trace_tpot` replays them (`trace_lives`): ``t``
    arrival times in mean gaps of the run (request k arrives at about k: times in ms at a rate of r requests per ms
    are t / r), ``node``, ``frac``: each prompt's place between the length nodes (`length_nodes`: its prefill time
    interpolated linearly between nodes node and node + 1 by frac), ``steps``: each request's decode steps
    (output tokens - 1), ``decodes``: the requests with at least one (those a TPOT is measured on), ``prompts``:
    their prompt tokens."""
    t: np.ndarray
    node: np.ndarray
    frac: np.ndarray
    steps: np.ndarray
    decodes: np.ndarray
    prompts: np.ndarray


def trace_lives(workload: Workload, lengths: np.ndarray) -> TraceLives | None:
    """`TraceLives` of a trace ``workload`` replayed with its own arrival times (its first ``size`` requests), its
    prompts placed on the length nodes ``lengths`` (ascending; prompts beyond the end nodes take the end node's
    prefill); None for every other workload or a trace without a span."""
    own = workload._own_arrivals()
    if own is None:
        return None
    order = np.argsort(own, kind="stable")
    a = own[order]
    span = float(a[-1] - a[0])
    if not span > 0:
        return None
    reqs = workload.requests()
    L = np.asarray(reqs.input_tokens, dtype=float)[order]
    steps = np.maximum(np.asarray(reqs.output_tokens, dtype=float)[order] - 1.0, 0.0)
    lengths = np.asarray(lengths, dtype=float)
    node = np.clip(np.searchsorted(lengths, L, side="right") - 1, 0, max(len(lengths) - 2, 0))
    nxt = np.minimum(node + 1, len(lengths) - 1)
    gap = lengths[nxt] - lengths[node]
    frac = np.where(gap > 0, np.clip((L - lengths[node]) / np.where(gap > 0, gap, 1.0), 0.0, 1.0), 0.0)
    return TraceLives((a - a[0]) * (len(a) - 1) / span, node, frac, steps, steps >= 1, L)


def split_lives(lv: TraceLives, ranks: int) -> tuple[TraceLives, np.ndarray]:
    """The sub-traces of ``lv`` that ``ranks`` scheduling ranks replay when a router spreads the trace's requests
    over them in arrival order, request k to rank k mod ranks: the simulator's least-loaded router
    (`serving.engine._Engine._route`, the fewest requests assigned and not gone) sends each request of a burst to
    another rank, so a burst of long prompts is split between the ranks instead of each rank replaying it whole.
    Returns a `TraceLives` whose fields are (ranks, ceil(R / ranks)), one sub-trace a row, times in the rank's own
    mean gaps (t / ranks: a rank offered 1 / ranks of the requests sees its k-th at about k), padded at the end
    with requests of no prompt and no decode at the row's last arrival (``prompts`` 0: the caller gives them no
    work); and the positions, in that layout flattened, of the trace's decoding requests (`TraceLives.decodes`,
    each once)."""
    R = len(lv.t)
    m = -(-R // ranks)
    idx = np.arange(m * ranks).reshape(m, ranks).T                    # (ranks, m): rank j holds j, j + ranks, ...
    real = idx < R
    last = np.where(real, idx, 0).max(axis=1, keepdims=True)          # each row's last real request (ascending)
    k = np.where(real, idx, last)

    def take(v: np.ndarray, pad: Any) -> np.ndarray:
        return np.where(real, v[k], pad)

    sub = TraceLives(lv.t[k] / ranks, take(lv.node, 0), take(lv.frac, 0.0), take(lv.steps, 0.0),
                     take(lv.decodes, False), take(lv.prompts, 0.0))
    return sub, np.flatnonzero(sub.decodes.ravel())


def trace_decode_tpot(lv: TraceLives, lam: np.ndarray, S: np.ndarray, step: np.ndarray, board: np.ndarray,
                      budget: np.ndarray, plain: np.ndarray, extra: np.ndarray | None,
                      slots: np.ndarray | None = None) -> np.ndarray:
    """TPOT (ms, (b, decoding requests)) of each decoding request of a trace (`TraceLives` ``lv``) at b replicas:
    ``lam`` (b,) requests per ms, ``S`` (b, R) each request's prefill work on the iterations (ms, 0 for a prompt
    that runs alone), ``step`` (b,) a decode-only step (ms), ``board`` (b,) the wait for the iteration a request's
    first decode goes into (ms), ``budget`` (b,) the prompt tokens an iteration beside the decodes holds, ``plain``
    (b,) whole prompts, ``extra`` (b,) the decodes' own time in an iteration carrying a prompt (ms; None: 0).
    ``lv``'s fields are (R,), one trace every row replays, or (b, R), a trace a row (`split_lives`' sub-traces, each
    row's times nondecreasing): then the result is (b, R), NaN where a request does not decode.

    The prefill work is a fluid queue in arrival order (FCFS, one server: an engine runs its iterations back to back
    while prompts wait): the backlog after arrival k, V_k = max over j <= k of (work of j..k - (a_k - a_j)), is the
    reflection of the cumulative work less time. Each prompt's iterations beside the decodes: its chunks
    (ceil(L / budget), a whole prompt one) when it finds no queue, else its share L / budget of the budget-sized
    iterations the waiting prompts share, spread evenly over its work; each also carries the decodes in flight
    (``extra``). A decoding sequence takes a token on every prompt iteration and a decode step of every ``step`` ms
    the prefill server is idle: its clock G(t) = idle time by t + step x prompt iterations run by t is
    nondecreasing. Request i decodes from s_i = a_i + V_i + ``board`` (its own prefill done); its O_i - 1 steps end
    at the first e_i with G(e_i) = G(s_i) + (O_i - 1) step: found per row by one search over the arrivals (G at each
    arrival and at the end of the busy stretch after it) and, inside a busy stretch, one over the prompt
    iterations. TPOT_i = (e_i - s_i) / (O_i - 1). ``slots`` (b,): at most that many requests in flight (None: no
    limit), a request's prompt entering the fluid when it takes a slot (`slot_admissions`), not at its arrival:
    the slots spread a burst's prompts over the departures that free them."""
    b, R = S.shape
    lam = lam[:, None]
    per_row = np.ndim(lv.t) == 2
    dec = np.arange(R) if per_row else np.flatnonzero(lv.decodes)
    t, decodes = np.atleast_2d(lv.t), np.atleast_2d(lv.decodes)
    # every request's decode steps, those that do not decode as if one (per row: dropped at the end)
    n_steps = np.maximum(np.atleast_2d(lv.steps), 1.0) if per_row else lv.steps[dec][None, :]
    share = np.atleast_2d(lv.prompts) / budget[:, None]
    alone = np.where(plain[:, None], 1.0, np.maximum(np.ceil(share - 1e-9), 1.0))
    a0 = t / lam                                                                         # arrivals (ms)

    def search(x: np.ndarray, q: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
        """each row's searchsorted of q (rows, m) in x (rows, R), nondecreasing along rows: one search, rows
        offset"""
        rows = np.arange(len(x))[:, None]
        big = 2.0 * (max(float(np.abs(x).max()), float(np.abs(q).max())) + 1.0)
        j = np.searchsorted((x + rows * big).ravel(), (q + rows * big).ravel(), side=side).reshape(q.shape)
        return j - rows * R

    def replay(h: np.ndarray | slice, a: np.ndarray,
               own: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """rows ``h``' decoding requests' starts s and ends e (ms), every request's departure (its prefill's end
        where it does not decode) and the time from its prompt's start to it (ms), prompts entering the fluid at
        ``a`` (ms, those rows'); ``own``: a is the trace's own times / lam"""
        def pick(x: np.ndarray) -> np.ndarray:
            return x[h] if len(x) == b else x

        bh = len(a)
        rows = np.arange(bh)[:, None]
        st, S = step[h][:, None], S0[h]

        def queue(S: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            """cumulative work A, backlog after (V) and before (W) each arrival, idle time F by each arrival"""
            A = np.cumsum(S, axis=1)
            V = A - a - np.minimum.accumulate(A - S - a, axis=1)
            W = np.concatenate([np.zeros((bh, 1)), np.maximum(V[:, :-1] - np.diff(a, axis=1), 0.0)], axis=1)
            return A, V, W, a - (A - S) + W

        A, V, W, F = queue(S)
        chunks = np.where(S > 0, np.where(W > 0, pick(share), alone[h]), 0.0)
        if extra is not None:
            S = S + chunks * extra[h][:, None]
            A, V, W, F = queue(S)
        C = np.cumsum(chunks, axis=1)

        def iterations(done: np.ndarray) -> np.ndarray:
            """prompt iterations run by the time ``done`` ms of work is done, (bh, m)"""
            m = np.clip(search(A, done, "left"), 0, R - 1)
            part = np.clip(1.0 - (A[rows, m] - done) / np.maximum(S[rows, m], 1e-300), 0.0, 1.0)
            return C[rows, m] - chunks[rows, m] * (1.0 - part)

        # G at each arrival (before its work) and at the end of the busy stretch after it (before the next arrival)
        g_start = F + st * iterations(A - V)
        after = np.concatenate([W[:, 1:], np.zeros((bh, 1))], axis=1)       # backlog left at the next arrival
        g_end = F + st * iterations(A - after)
        s = (a + V)[:, dec] + board[h][:, None]
        if own and not per_row:
            k = np.maximum(np.searchsorted(lv.t, s * lam[h], side="right") - 1, 0)    # last arrival <= s
        else:
            k = np.maximum(search(a, s, "right") - 1, 0)
        idle = F[rows, k] + np.maximum(s - a[rows, k] - V[rows, k], 0.0)
        y = idle + st * iterations(s - idle) + pick(n_steps) * st
        j = np.clip(search(g_start, y, "right") - 1, 0, R - 1)                        # last arrival with G <= y
        # inside the busy stretch after arrival j: the work done when the iterations reach (y - F_j) / step
        it = (y - F[rows, j]) / st
        m = np.clip(search(C, it, "left"), 0, R - 1)
        done = A[rows, m] - S[rows, m] * np.clip((C[rows, m] - it) / np.maximum(chunks[rows, m], 1e-300), 0.0, 1.0)
        busy = a[rows, j] + done - (A[rows, j] - V[rows, j])
        # ... or past it, idle: the stretch's end plus the rest
        e = np.where(y <= g_end[rows, j], busy, a[rows, j] + V[rows, j] - after[rows, j] + (y - g_end[rows, j]))
        gone = a + V
        gone[:, dec] = np.where(pick(decodes)[:, dec], e, gone[:, dec])
        # the time a request holds its slot: from its admission (a, where the slots admit it), or in the first
        # replay, which has no slots, from its prompt's start (its wait behind prompts the slots would hold back
        # is not its own)
        return s, e, gone, gone - (a + W) if own else gone - a

    S0 = S
    s, e, gone, hold = replay(slice(None), a0, True)
    if slots is not None:
        # at most ``slots`` requests in flight, admitted in arrival order: a request the slots hold back enters
        # the fluid when one frees (`slot_admissions`), where the requests in flight at an arrival (those before
        # it not yet gone) reach the slots
        n_in = np.arange(R)[None, :] - search(np.sort(gone, axis=1), a0, "right")
        h = np.flatnonzero((n_in >= slots[:, None]).any(axis=1))
        # ... each holding its slot as long as the replays so far found on average (the first, unlimited one's from
        # its prompt's start, then from its admission). The lives the slots shorten free them sooner, which admits
        # more at once and lengthens them again: replaying on the last replay's holds alone oscillates, their
        # running mean settles. A row stops once its admissions move less than a decode step on average (the
        # scheduler admits at iteration boundaries) or after `SLOT_PASSES`
        total, prev = hold[h].copy(), np.full(a0[h].shape, np.inf)
        for k in range(SLOT_PASSES):
            if not len(h):
                break
            adm = slot_admissions(a0[h], hold[h], slots[h])
            s[h], e[h], _, again = replay(h, adm, False)
            total += again
            hold[h] = total / (k + 2)
            moving = np.abs(adm - prev).mean(axis=1) > step[h]
            h, total, prev = h[moving], total[moving], adm[moving]
    tpot = (e - s) / n_steps
    return np.where(decodes, tpot, np.nan) if per_row else tpot


def slot_admissions(arrive: np.ndarray, hold: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """When each request (ms, (b, R): rows of requests in arrival order ``arrive``) takes one of ``slots`` (b,)
    slots admitted in arrival order (vLLM's ``max_num_seqs``: the scheduler admits a waiting request while fewer
    run), holding it ``hold`` ms: the first slot to free, not before its arrival nor the request before it
    (Kiefer-Wolfowitz's recursion on the slots' free times, one step a request over all rows at once)."""
    b, R = arrive.shape
    n = np.minimum(np.maximum(np.asarray(slots, dtype=float), 1.0), R).astype(np.int64)
    free = np.where(np.arange(int(n.max()))[None, :] < n[:, None], -np.inf, np.inf)
    adm = np.empty_like(arrive)
    rows, last = np.arange(b), np.full(b, -np.inf)
    for k in range(R):
        j = np.argmin(free, axis=1)
        last = np.maximum(np.maximum(arrive[:, k], free[rows, j]), last)
        adm[:, k] = last
        free[rows, j] = last + hold[:, k]
    return adm


def quantile_nodes(values: np.ndarray, edges: tuple[float, ...] = LENGTH_BINS) -> tuple[np.ndarray, np.ndarray]:
    """A distribution of ``values`` as a few nodes: the mean of the values in each probability bin of ``edges``
    (sorted values, bin i holding ranks edges[i] .. edges[i + 1] of them) and the bin's share; empty bins are
    dropped, shares sum to 1."""
    v = np.sort(np.asarray(values, dtype=float))
    cut = np.unique(np.round(np.asarray(edges) * len(v)).astype(np.int64))
    sums = np.add.reduceat(v, cut[:-1])
    cnt = np.diff(cut)
    keep = cnt > 0
    return sums[keep] / cnt[keep], cnt[keep] / cnt[keep].sum()


def length_nodes(workload: Workload) -> tuple[np.ndarray, np.ndarray]:
    """Prompt-length nodes of ``workload`` (tokens, whole; `quantile_nodes`): the lengths of a trace's requests
    (its first ``size``), else 20,000 seeded draws of its `Dist`."""
    if workload.trace is not None:
        x = np.asarray(workload.requests().input_tokens, dtype=float)
    elif isinstance(workload.input_len, Dist):
        x = workload.input_len.sample(np.random.default_rng(workload.seed), 20_000).astype(float)
    else:
        x = np.array([float(workload.input_len)])
    L, w = quantile_nodes(x)
    return np.maximum(np.round(L), 1.0), w

def wait_scv(S: np.ndarray, w: np.ndarray, lam_ms: np.ndarray, rho: np.ndarray, i_s: np.ndarray, ca2: np.ndarray,
             mean: np.ndarray, p_found: np.ndarray, p0: np.ndarray, ties: bool = True) -> np.ndarray:
    """Squared coefficient of variation of a prompt queue's wait given that it waits (one per row; 1: the
    exponential), from its first two moments. ``S`` (n, K) the work of each length node of weight ``w``,
    ``lam_ms`` requests per ms, ``rho`` utilisation, ``i_s`` the batches' E[X^2] / E[X], ``mean`` the mean wait
    (ms, `batch_wait` x E[S]), ``p_found`` the chance a batch finds work and ``p0`` the chance a request waits
    (`ServingModel._length_queue`). Two independent parts: the earlier requests of its own batch, k of them with
    E[k] = (I_s - 1) / 2 and, where requests share arrival times (``ties``, `Workload.arrival_batches`),
    Var k = E[k] (E[k] + 1) (geometric-like ranks), Var = E[k] Var S + Var k E[S]^2 (without ties: the
    exponential's, Var = E^2); and the work the batch finds, with M/G/1's spread given a wait (Takacs: E[W^2] =
    2 E[W]^2 + lam E[S^3] / (3 (1 - rho)); 1/3 + 2 rho / 3 for fixed work, 1 for exponential work, larger where
    long prompts make E[S^3] large). Only the service's share (1 + cs^2) / (max(ca2, 1) + cs^2) of Kingman's
    factor keeps that spread: arrivals bursty beyond their batches (``ca2`` >> cs^2, a trace's storms) wait as a
    queue in heavy traffic does, exponentially. Clipped to [0.05, 50]."""
    ES, ES2, ES3 = S @ w, (S * S) @ w, (S ** 3) @ w
    ek = 0.5 * np.maximum(i_s - 1.0, 0.0)
    own_mean = ek * ES
    own_var = ek * np.maximum(ES2 - ES * ES, 0.0) + ek * (ek + 1.0) * ES * ES if ties else own_mean * own_mean
    found = np.maximum(mean - own_mean, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mg1 = lam_ms * ES2 / (2.0 * (1.0 - rho))
        mg1_2 = 2.0 * mg1 * mg1 + lam_ms * ES3 / (3.0 * (1.0 - rho))
        c2_found = np.where(mg1 > 0, rho * mg1_2 / np.maximum(mg1 * mg1, 1e-300) - 1.0, 1.0)
        pf = np.maximum(p_found, 1e-12)
        found_var = pf * (c2_found + 1.0) * (found / pf) ** 2 - found ** 2
        total = own_mean + found
        second = (own_var + np.maximum(found_var, 0.0) + total * total) / p0
        c2 = second / np.maximum((total / p0) ** 2, 1e-300) - 1.0
    # the service's share of Kingman's (ca^2 + cs^2) keeps that spread (heavy-traffic bursts: exponential, c2 = 1)
    cs2 = np.maximum(ES2 / np.maximum(ES * ES, 1e-300) - 1.0, 0.0)
    c2 = 1.0 + (c2 - 1.0) * (1.0 + cs2) / (np.maximum(ca2, 1.0) + cs2)
    return np.clip(np.where(total > 0, c2, 1.0), 0.05, 50.0)


def mixture_quantile(b: np.ndarray, w: np.ndarray, p0: np.ndarray, m: np.ndarray, q: float,
                     c2: np.ndarray | None = None, floor: np.ndarray | None = None,
                     steps: int = TTFT_BISECTION_STEPS) -> np.ndarray:
    """The q-quantile (ms) of b_J + W over requests, one per row: J a length node of weight ``w`` (K,), b (n, K)
    its own service (ms), W the queue wait, 0 with probability 1 - ``p0`` else of mean ``m`` (ms) and squared
    CV ``c2`` (`wait_scv`; None: 1), one per row: a two-phase hyperexponential with balanced means where c2 > 1
    (phase 1 with probability a = (1 + sqrt((c2 - 1) / (c2 + 1))) / 2 and mean m / (2 a), phase 2 mean
    m / (2 (1 - a)): two exponentials, cheap in the bisection), else the exponential (a narrower wait is not
    modelled); solves sum_j w_j P(b_j + W <= t) = q by bisection (TTFT_BISECTION_STEPS halvings). ``p0``, ``m``,
    ``c2`` may also be one per node (n, K); ``floor`` (n, K; ms): a wait of at least that, max(floor_j, W) (a
    fluid backlog, `ServingModel._modulated`); ``steps``: the bisection's halvings."""
    c2 = np.ones_like(m) if c2 is None else np.maximum(c2, 1.0)
    a = 0.5 * (1.0 + np.sqrt((c2 - 1.0) / (c2 + 1.0)))
    # one wait per row (n,) or one per node (n, K): broadcast against (n, k points, K nodes)
    col = (lambda x: x[:, None, None]) if np.ndim(m) == 1 else (lambda x: x[:, None, :])
    r1, r2 = col(2.0 * a / m), col(2.0 * (1.0 - a) / m)
    a3, p3 = col(a), col(np.broadcast_to(p0, np.shape(m)))

    start = b if floor is None else b + floor                      # the least TTFT of each node

    def below(t: np.ndarray) -> np.ndarray:                        # t: (n, k) -> P(b_J + W <= t) < q
        x = np.maximum(t[:, :, None] - b[:, None, :], 0.0)
        tail = a3 * np.exp(-r1 * x) + (1.0 - a3) * np.exp(-r2 * x)
        cdf = np.where(t[:, :, None] >= start[:, None, :], 1.0 - p3 * tail, 0.0)
        return (cdf * w).sum(axis=2) < q

    # the slower phase's (1 - u)-quantile bounds the mixture's
    slow = m / (2.0 * (1.0 - a)) * np.log(np.maximum(np.broadcast_to(p0, np.shape(m)) / (1 - q), 1.0))
    hi = (start + slow).max(axis=1) if np.ndim(m) == 2 else start.max(axis=1) + slow
    hi = hi + 1.0
    _, hi = bisect(start.min(axis=1) * 0.999, hi, below, steps)
    return hi


def window_slot_wait(held: np.ndarray, slots: np.ndarray, resid: np.ndarray, n_k: np.ndarray, served_k: np.ndarray,
                     cap_k: np.ndarray, weights: np.ndarray, ranks: np.ndarray | None = None, cs2: float = 1.0
                     ) -> dict[str, np.ndarray]:
    """The wait for a free slot (ms; "mean" and each of `PERCENTILES`, averaged over a trace's windows by their
    ``weights`` (W,)) of a queue holding ``held`` (n, W) sequences in each window (`ServingModel._slot_fluid`'s), at
    most ``slots`` (n,; inf: no slot limit, no wait) each held ``resid`` (n, or n, W; ms): `slot_wait` at the window's
    occupancy (``ranks``, n,: the queue is one of that many, a request going to the least-loaded; None: one; ``cs2``:
    the residencies' squared coefficient of variation, Allen-Cunneen's spread as `slot_wait` takes it, 1: M/M/c),
    bounded by what the window's requests build (`run_wait` with ``n_k``, ``served_k``, ``cap_k``, one per row and
    window, flattened): the whole run's occupancy would charge a storm's full batch to every window, and a full
    batch's own backlog is the fluid's."""
    n, W = held.shape
    limited = np.isfinite(slots)[:, None]
    cs = np.where(limited[:, 0], slots, 1.0)[:, None]
    r = np.ones(n) if ranks is None else np.asarray(ranks, dtype=float)
    res = resid[:, None] if np.ndim(resid) == 1 else resid
    ec, dr = slot_wait(np.broadcast_to(cs, held.shape), np.where(limited, held, 0.0), res, r[:, None], cs2)
    ec = np.where(limited, ec, 0.0)
    slot = {"mean": run_wait((ec * dr).ravel(), n_k, served_k, cap_k).reshape(n, W) @ weights}
    for p in PERCENTILES:
        q = Z_Q[p]
        s_q = np.where(ec > 1 - q, dr * np.log(np.maximum(ec / (1 - q), 1.0)), 0.0).ravel()
        slot[p] = run_wait(s_q, n_k, served_k, cap_k, p).reshape(n, W) @ weights
    return slot


def window_quantile(b: np.ndarray, w: np.ndarray, mod: Mapping[str, np.ndarray], q: float) -> np.ndarray:
    """The q-quantile (ms) of b_J + W over the requests of a trace's windows (`ServingModel._modulated`'s ``mod``),
    one per row: each service node j (b (n, K) ms, weights w (K,)) in each window k (weight w_j x the window's
    share of the requests) waits max(the window's fluid backlog, its local queue's wait) (`mixture_quantile` with
    the window's p0, m, c2 and the fluid as the floor). Services split finer than the length nodes (whole
    prompts' drains) are re-read at the length nodes' probability bins first (`weighted_nodes`), so that the
    windows multiply fewer nodes."""
    n = b.shape[0]
    b_s, w_s = weighted_nodes(b, w) if b.shape[1] > len(LENGTH_BINS) - 1 else (b, w)
    shape = (n, b_s.shape[1], len(mod["weights"]))
    win_w = (w_s[:, None] * mod["weights"][None, :]).ravel()
    keep = win_w > 0                                                  # windows without requests weigh nothing
    win = {k: np.broadcast_to(mod[k][:, None, :], shape).reshape(n, -1)[:, keep] for k in ("p0", "m", "c2", "fluid")}
    b_w = np.broadcast_to(b_s[:, :, None], shape).reshape(n, -1)[:, keep]
    return mixture_quantile(b_w, win_w[keep], win["p0"], win["m"], q, win["c2"], floor=win["fluid"],
                            steps=MODULATED_BISECTION_STEPS)


def batch_wait(rho: np.ndarray, cs2: np.ndarray, ca2: np.ndarray, i_s: np.ndarray,
               batch: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean wait in a prompt queue, in units of the mean prefill E[S] (multiply by E[S] for ms), of requests that
    arrive in batches (M^X/G/1 generalized to batches arriving as a renewal process, the textbook split): the
    requests of its own batch served before it, (I_s - 1) / 2 (I_s = E[X^2] / E[X] of the batch size X, a
    trace's index of dispersion of counts over one service time), plus the work the batch finds, Kingman's G/G/1
    on the batches: rho (ca_b^2 + cB^2) E[B] / (2 (1 - rho)) with E[B] = E[X] E[S] the batch's work. The
    requests' index of dispersion over the queue's time scale, ``ca2``, is E[X] ca_b^2 + I_s - E[X] for batches
    of mean ``batch`` = E[X] (requests sharing one arrival time, `Workload.arrival_batches`), so the found work
    is rho (ca2 + cs2) E[S] / (2 (1 - rho)) whatever E[X]; but where the batches come more regularly than Poisson
    (ca_b^2 < 1: Mooncake's timestamps, ~9 requests each, 18 s apart at 0.5 req/s, drained in ~4 s) Kingman's
    heavy-traffic form overstates that term at light load, and the Kraemer / Langenbach-Belz factor (Whitt, "The
    Queueing Network Analyzer", Bell System Tech. J. 62(9), 1983, eq. 45) exp(-2 (1 - rho) (1 - ca_b^2)^2 /
    (3 rho (ca_b^2 + cB^2))) scales it, with cB^2 = (cs2 + I_s - E[X]) / E[X] the batch work's squared CV.
    Poisson requests (I_s = E[X] = ca2 = 1): Pollaczek-Khinchine rho (1 + cs2) / (2 (1 - rho)) exactly.
    Returns (that mean wait, the probability that a batch finds work: rho, scaled by the same factor, so that
    the found work's mean given a wait stays Kingman's)."""
    x = max(float(batch), 1.0)
    ca_b2 = np.maximum(ca2 - i_s + x, 0.0) / x
    cb2 = np.maximum(cs2 + i_s - x, 0.0) / x
    with np.errstate(divide="ignore", invalid="ignore"):
        klb = np.where(ca_b2 < 1.0, np.exp(-2.0 * (1.0 - rho) * (1.0 - ca_b2) ** 2
                                           / np.maximum(3.0 * rho * (ca_b2 + cb2), 1e-300)), 1.0)
    return 0.5 * (i_s - 1.0) + rho * (ca2 + cs2) * klb / (2.0 * (1.0 - rho)), rho * klb


#: occupancies per decode rank at which `disagg_closed_loop` prices a decode step (geometric from one sequence to
#: the rank's max batch; log-log interpolation between them) and its bisection steps on the occupancy
DECODE_GRID = 9
CLOSED_LOOP_STEPS = 30


def _repeat(kw: Mapping[str, Any], n: int, g: int) -> dict[str, Any]:
    """`kw` with every per-deployment array (length n) repeated g times (one entry per grid point)."""
    return {k: np.repeat(np.asarray(v), g) if isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == n else v
            for k, v in kw.items()}


def kv_dtype_mismatch(prefill_kv: Any, decode_kv: Any) -> str:
    """Why a disaggregated deployment whose pools store the KV cache in two dtypes does not run: the prompt's KV
    moves from the prefill worker to the decode worker as stored (block by block, no conversion), and vLLM's
    NixlConnector refuses a peer whose ``cache_dtype`` differs (`compute_nixl_compatibility_hash`,
    vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py)."""
    return (f"the prefill pool stores its KV cache in {prefill_kv}, the decode pool in {decode_kv}: the KV moves "
            f"between them as stored (vLLM's NixlConnector refuses a peer whose cache_dtype differs); give both "
            f"pools one kv_dtype")


def _one_kv_dtype(d: Deployments, dis: np.ndarray, decode_kv: np.ndarray) -> Deployments:
    """``d`` with the prefill pool of each disaggregated deployment that names no KV dtype (prefill_kv_dtype and
    kv_dtype None) storing the decode pool's as resolved (``decode_kv``, `inference.resolve`'s rule on the decode
    pool's GPU and format): one dtype for both pools (`kv_dtype_mismatch`), not one resolved per pool (an A100
    prefill pool of fp8 weights computes in bf16 and would store bf16 KV beside an H100 decode pool's fp8)."""
    pkv = d.prefill_kv_dtype
    miss = dis & _unset(pkv)
    if not miss.any():
        return d
    out = copy.copy(d)
    object.__setattr__(out, "prefill_kv_dtype", np.where(miss, decode_kv, np.asarray(pkv, dtype=object)))
    return out


def prefill_estimates(prefill_kw: Mapping[str, Any], input_len: Any, prefill_batch: Any) -> pd.DataFrame:
    """`inference.estimate` of a prefill pool's worker at two batches per deployment, rows interleaved (2 i: a lone
    prompt, its attention-DP rank the only busy one; 2 i + 1: a full batch of max(floor(prefill_batch), 1) prompts
    on every rank): what `disagg_closed_loop` prices the
    pool with. A caller that needs the lone prompt's KV size (its handoff) computes this once and passes it to
    `disagg_closed_loop(..., prefill_est=)` instead of estimating the prompt twice."""
    isl = np.asarray(input_len, dtype=float)
    n = int(np.broadcast(isl, np.asarray(prefill_batch)).size)
    isl = np.broadcast_to(isl, (n,)).astype(float)
    k_p = np.maximum(np.floor(np.broadcast_to(np.asarray(prefill_batch, dtype=float), (n,))), 1.0)
    # the lone prompt runs on one attention-DP rank while the pool's other ranks idle: only its tokens reach the
    # experts (moe_dp=1). TensorRT-LLM pads an idle attention-DP rank with a one-token dummy generation request
    # (tensorrt_llm/_torch/pyexecutor/py_executor.py, `_pad_attention_dp_dummy_request`) so the ranks' MoE
    # collectives stay in step; the full batch: every rank's prompts
    one = inference.estimate(**prefill_kw, batch_size=1.0, input_len=isl, output_len=1, moe_dp=1.0)
    full = inference.estimate(**prefill_kw, batch_size=k_p, input_len=isl, output_len=1)
    both = pd.concat([one.reset_index(drop=True), full.reset_index(drop=True)], keys=[0, 1]).swaplevel()
    return both.sort_index(level=0, sort_remaining=True).reset_index(drop=True)


def disagg_closed_loop(prefill_kw: Mapping[str, Any], decode_kw: Mapping[str, Any], input_len: Any, output_len: Any,
                       concurrency: Any, prefill_ranks: Any, decode_ranks: Any, prefill_batch: Any,
                       decode_batch: Any, xfer_ms: Any, host_ms: Any = 0.0, wave: Any = 0.0,
                       prefill_est: pd.DataFrame | None = None, forwards: Any = 1.0,
                       lag: Any = 0.0, notice: Any = 0.0) -> dict[str, np.ndarray]:
    """C closed-loop clients on disaggregated deployments (one entry per deployment, arrays broadcast).

    `prefill_kw` / `decode_kw`: the pools' `inference.estimate` arguments per worker (model, GPU, TP, EP, attention
    DP, dtypes, engine, efficiency); `prefill_ranks` / `decode_ranks`: scheduling ranks of each pool (workers x
    attention-DP ranks, each its own batch); `prefill_batch` / `decode_batch`: the most prompts a prefill rank runs
    in one iteration and the most sequences a decode rank holds (the engines' configured max batch sizes);
    `xfer_ms`: one prompt's KV handoff on the link between the pools; `host_ms`: the engine's host time before a
    request is scheduled (API server, tokenization); `wave`: the start-up wave's share of the run's mean TTFT (the
    engine factor ``ttft_wave`` of the aggregated closed form: 0 none, 1 every prompt waits as the first ones).

    The pools couple through the clients: a client's cycle is TTFT + (O - 1) TPOT, so the deployment completes
    X = C / (TTFT + (O - 1) TPOT) requests per ms. With n_d sequences in flight per decode rank, TPOT is the pure
    decode step t_d(n_d) (a decode pool runs no prompts) and X = decode_ranks n_d / ((O - 1) t_d(n_d)) (Little's
    law on the decode pool); the prefill pool, offered X, queues as the aggregated closed form's later rounds
    (`lockstep.round_queue`: the clients keep the start-up wave's prefill order, each round's prompts reaching a
    worker in a window widened by the outputs' drift, counted in decode steps; a prompt waits for the full steps
    queued ahead of it and, at a random phase, for half the step in progress, a lockstep attention-DP worker's
    whichever rank runs it, and on a worker that forms its next step while the current one runs, `lag`, for the
    step formed ahead), never less than M/D/1 on the pool's work at utilisation rho = X / its capacity (the
    clients' order dissolved, as the open loop); the run's start-up wave (the C clients' first prompts arriving together,
    each waiting for half the wave's prefill rounds beyond its own, rounds of prefill_ranks x prefill_batch
    prompts) is `wave`'s share of the mean wait, as in the aggregated closed form (`inference.estimate.
    _run_ttft_s`: (1 - wave) steady + wave max(start-up, steady)); TTFT = host + queue + the
    prompt's prefill (alone, t_p(1)) + the handoff to the decode worker (`handoff_ms`, its busy chance from the
    other clients' sequences on the rank): vLLM's P/D proxy (its NIXL connector's toy proxy) posts the request to
    the prefill server with max_tokens=1, discards that token and streams the decode server's output, and
    TensorRT-LLM's disaggregated server sends a context-only request, then streams the generation server's
    responses; so the client's first token comes from the decode worker (TensorRT-LLM's as it admits the request,
    `forwards`). `host_ms` is the caller's per-request host time (`serving.handoff.front_end`: the engine's fitted
    per-request host time once per pass of its P/D front end). The occupancy n_d solving X (TTFT + (O - 1) TPOT) = C
    is found by bisection; at the decode pool's max batch the remaining clients wait for a slot (their wait is
    counted in TTFT, as in the aggregated closed loop). The prefill pool at its capacity makes its queue absorb
    the clients instead (rho -> 1; what C / X leaves beyond the cycle at the root counted in TTFT).

    `prefill_est`: the pool's `prefill_estimates(prefill_kw, input_len, prefill_batch)` where the caller already
    has them (else computed here). `forwards`: the decode iterations from the request's admission with its KV to
    its first token (`serving.handoff.first_token_forwards` of the engine: 1, or 0 where the engine sends the
    prefill's token at admission). `lag`: the steps formed ahead that a prompt reaching a busy prefill worker waits
    for beyond the one in progress (`serving.handoff.front_end`'s: 1 where the engine's prefill servers form their
    next step while the current one runs, the aggregated closed form's `inference.estimate.arrival_wait_iters`;
    0: none). `notice`: the decode steps a busy decode worker's scheduler takes to learn that a read is done
    (`serving.handoff.kv_notice_steps`; 0: none).

    Returns {ttft_ms, tpot_ms, req_per_ms (X), occupancy (sequences per decode rank), prefill_req_per_ms and
    decode_req_per_ms (each pool's capacity), TTFT's parts in ms (host_ms, prefill_wait_ms: the prefill pool's
    queue with the start-up wave's share, prefill_ms: the lone prompt's prefill, handoff_ms, queue_ms: the clients
    beyond what the pools serve), prefill_fits, prefill_reason, decode_fits, decode_reason}."""
    isl = np.asarray(input_len, dtype=float)
    osl = np.asarray(output_len, dtype=float)
    conc = np.asarray(concurrency, dtype=float)
    n = int(np.broadcast(isl, osl, conc, np.asarray(prefill_ranks), np.asarray(decode_ranks),
                         np.asarray(prefill_batch), np.asarray(decode_batch)).size)
    isl, osl, conc = (np.broadcast_to(x, (n,)).astype(float) for x in (isl, osl, conc))
    n_p, n_d, k_p, b_d, xfer, host, wv, fwd, ahead, late = (
        np.broadcast_to(np.asarray(x, dtype=float), (n,))
        for x in (prefill_ranks, decode_ranks, prefill_batch, decode_batch, xfer_ms, host_ms, wave, forwards, lag,
                  notice))
    k_p = np.maximum(np.floor(k_p), 1.0)
    steps = np.maximum(osl - 1.0, 1.0)
    # prefill: a lone prompt (what a request arriving at an idle rank costs) and a full batch (the pool's capacity)
    pf = prefill_estimates(prefill_kw, isl, k_p) if prefill_est is None else prefill_est
    t_pf = pf["ttft_ms"].to_numpy(float).reshape(n, 2)
    t_one, t_k = t_pf[:, 0], t_pf[:, 1]
    r_pre = n_p * k_p / np.maximum(t_k, 1e-12)                     # requests per ms the prefill pool completes
    # decode step on a geometric grid of occupancies 1 .. the most a rank holds for these clients
    cap = np.maximum(np.minimum(np.floor(b_d), np.ceil(conc / n_d)), 1.0)
    u = np.linspace(0.0, 1.0, DECODE_GRID)
    grid = np.round(np.exp(np.log(cap)[:, None] * u[None, :]))      # whole sequences
    dec_kw = dict(**_repeat(decode_kw, n, DECODE_GRID), batch_size=grid.ravel(),
                  input_len=np.repeat(isl, DECODE_GRID), output_len=np.repeat(osl, DECODE_GRID))
    dec = inference.estimate(**dec_kw)
    t_step = dec["tpot_ms"].to_numpy(float)
    # fewer clients than a decode worker's attention-DP ranks: only the ranks holding a sequence run it, the others
    # idle, so only their tokens reach the routed experts (`estimate`'s moe_dp), as `max_throughput` prices an
    # aggregated replica with fewer clients than ranks (`busy_ranks`; the decode grid's one sequence per rank
    # would put every rank's token through the experts)
    adp = np.broadcast_to(np.asarray(decode_kw.get("attn_dp", 1), dtype=float), (n,))
    busy = busy_ranks(conc, np.maximum(np.round(n_d / adp), 1.0), adp, (n,))
    for v in np.unique(busy[busy > 0]):
        sel = np.repeat(busy == v, DECODE_GRID)
        t_step = np.where(sel, inference.estimate(**dec_kw, moe_dp=float(v))["tpot_ms"].to_numpy(float), t_step)
    log_t = np.log(np.maximum(t_step.reshape(n, DECODE_GRID), 1e-12))
    log_b = np.log(grid)
    rows = np.arange(n)
    # a prefill worker's attention-DP ranks take the prompts it is sent as one scheduler (each new request to the
    # rank with the fewest, TensorRT-LLM's attention-DP request balancing and vLLM's DP coordinator alike) in
    # steps of at most g = adp x k_p prompts, t_k ms a full one; a step of fewer prompts is priced between a lone
    # prompt's and a full step's linearly in the prompts (the simulator's lockstep pricing, `_couple_ranks`)
    adp_p = np.broadcast_to(np.asarray(prefill_kw.get("attn_dp", 1), dtype=float), (n,))
    g = adp_p * k_p
    n_w = conc / np.maximum(n_p / adp_p, 1.0)                      # clients per prefill worker

    def pf_step(others: np.ndarray) -> np.ndarray:
        """ms of a prefill step holding a prompt and `others` more (at most g - 1)."""
        return t_one + np.minimum(others, g - 1.0) / np.maximum(g - 1.0, 1.0) * np.maximum(t_k - t_one, 0.0)
    # the start-up wave: the C clients' first prompts arrive together and are prefilled first come, first served
    # in rounds of n_p x k_p prompts, each waiting for half the wave's rounds beyond its own, its own a step of
    # min(clients a worker, g) prompts (the TTFT counts a lone prompt's); `wave` is that wave's share of the run's
    # mean TTFT, as in the aggregated closed form (`inference.estimate._run_ttft_s`)
    start_wave = (np.maximum(conc / (n_p * k_p) - 1.0, 0.0) * 0.5 * t_k
                  + pf_step(np.maximum(np.minimum(n_w, g) - 1.0, 0.0)) - t_one)

    def grid_pos(occ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The decode grid's point at or below `occ` per deployment, and the next one's weight."""
        lx = np.log(np.clip(occ, 1.0, cap))
        j = np.clip((log_b <= lx[:, None]).sum(axis=1) - 1, 0, DECODE_GRID - 2)
        gap = log_b[rows, j + 1] - log_b[rows, j]
        return j, np.where(gap > 0, (lx - log_b[rows, j]) / np.where(gap > 0, gap, 1.0), 0.0)

    def t_dec(occ: np.ndarray) -> np.ndarray:
        j, f = grid_pos(occ)
        return np.exp(log_t[rows, j] * (1.0 - f) + log_t[rows, j + 1] * f)

    def parts(occ: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(prefill-pool wait, handoff, decode step, X) at `occ` sequences per decode rank."""
        step = t_dec(occ)
        x = n_d * occ / (steps * step)                              # requests per ms through the decode pool
        rho = x / np.maximum(r_pre, 1e-300)
        # the clients keep the start-up wave's prefill order, so each later round's prompts reach a worker
        # clumped in a window, widened round by round by the outputs' drift: the aggregated closed form's later
        # rounds (`lockstep.round_queue`, as `estimate.round_prompt_work` calls it) on the clients' clock, the
        # decode step (a cycle C / X of them, the drift in them), the worker passing g prompts a full prefill step
        # (t_k / step decode steps: the budget g x isl x step / t_k prompt tokens a decode step). A prompt waits for
        # the full steps queued ahead of it and, where it finds the worker in a step (`busy`; attention-DP ranks
        # step in lockstep, so any rank's prompt holds it), for half that step, which holds the prompts that came
        # with it: a step of 1 + lam t_k prompts (lam a decode step's arrivals, at most g; `pf_step`)
        per = step / np.maximum(t_k, 1e-12)                          # full prefill steps a decode step
        budget, n_it = g * isl * per, conc / np.maximum(x * step, 1e-300)
        _, queued, busy = lockstep.round_queue(n_w, isl, osl, budget, n_it)
        lam, ca2 = lockstep.arrival_variability(n_w, isl, osl, budget, n_it)   # a decode step's arrivals, by round
        t_in = pf_step(np.mean(lam / per[:, None], axis=-1))            # that step: the others that came with it
        # ... where it arrives at a random phase of that step. The wave prefilled the prompts g a step, and they
        # come back in its order: one of each step's g as the worker's step ends, only the drift's share of the
        # window at random (`round_queue`'s ca^2, 1 - (the first round's window / round k's)^2); the other g - 1
        # beside it, at a random phase of the step it started (any rank's prompt starts the lockstep step)
        random = 1.0 - (1.0 - np.mean(ca2, axis=-1)) / g
        # ... and where the worker forms its next step while the current one runs (`lag`: vLLM's async scheduling,
        # `EngineCore.step_with_batch_queue`, SGLang's overlap loop), the step formed ahead, if any: a prompt
        # received during a step joins the one after the next. A prefill server's prompts end in their step
        # (max_tokens=1: vLLM's async scheduler schedules no step beyond a request's max_tokens), so the step formed
        # ahead holds only the prompts the step in progress had no room for; with none the loop formed an empty
        # one, blocks on the step in flight and schedules what arrived at its end (the simulator's
        # `engine._Replica._schedule_prefill`: nothing else to run, every prompt received joins). The step in
        # progress left some where more than g prompts arrived during the one before it, a step like the prompt's
        # own (t_in, lam / step of them a ms: Poisson, the drift's arrivals); a prompt back in the wave's order
        # reaches the worker as its step ends, when nothing waited to be formed ahead, so only the random share
        # waits for it; and a step of one prompt (g = 1) left no room the prompt would have taken
        from scipy.stats import poisson  # imported on first use (`_burst_tail`)
        over = poisson.sf(g, np.mean(lam, axis=-1) * t_in / np.maximum(step, 1e-12))
        ahead_ms = ahead * random * busy * over * t_in * np.minimum(g - 1.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            steady = np.maximum(0.5 * random * busy * t_in + ahead_ms + queued * step,
                                rho * (t_k / k_p) / (2.0 * (1.0 - rho)) / n_p)
            wait = np.where(rho < 1.0, (1.0 - wv) * steady + wv * np.maximum(start_wave, steady), np.inf)
        # the decode worker that takes the request has a slot free for it: besides it, the others' sequences, at
        # most its slots less one (a one-slot worker takes it idle, as the simulator's router finds it)
        others = np.minimum(occ * (conc - 1.0) / np.maximum(conc, 1.0), cap - 1.0)
        return wait, handoff_ms(step, xfer, others, fwd, late), step, x

    def cycle(occ: np.ndarray) -> tuple[np.ndarray, ...]:
        wait, hand, tpot, x = parts(occ)
        return host + wait + t_one + hand, tpot, x

    lo, hi = np.full(n, 1e-3), cap.copy()
    ttft_hi, tpot_hi, x_hi = cycle(hi)
    full = x_hi * (ttft_hi + steps * tpot_hi) <= conc                  # every decode slot taken: clients queue
    for _ in range(CLOSED_LOOP_STEPS):
        mid = np.sqrt(lo * hi)
        ttft, tpot, x = cycle(mid)
        over = x * (ttft + steps * tpot) > conc
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    # the bracket's low end: X (TTFT + (O - 1) TPOT) <= C there and the cycle finite (its midpoint may land past
    # the prefill pool's capacity, where the wait is infinite)
    occ = np.where(full, cap, lo)
    wait, hand, tpot, x = parts(occ)
    ttft = host + wait + t_one + hand
    # clients beyond what the pools serve wait, for a decode slot or in the prefill pool's queue (closed loop:
    # what a cycle C / X leaves beyond service; ~0 at an interior root)
    slot = np.maximum(conc / np.maximum(x, 1e-300) - ttft - steps * tpot, 0.0)
    ttft = ttft + slot
    return {"ttft_ms": ttft, "tpot_ms": tpot, "req_per_ms": x, "occupancy": occ, "prefill_req_per_ms": r_pre,
            "host_ms": host, "prefill_wait_ms": wait, "prefill_ms": t_one, "handoff_ms": hand, "queue_ms": slot,
            "decode_req_per_ms": n_d * cap / (steps * tpot_hi),
            "prefill_fits": pf["fits"].to_numpy(bool).reshape(n, 2).all(axis=1),
            "prefill_reason": pf["reason"].astype(str).to_numpy(object).reshape(n, 2)[:, 1],
            "decode_fits": dec["fits"].to_numpy(bool).reshape(n, DECODE_GRID).all(axis=1),
            "decode_reason": dec["reason"].astype(str).to_numpy(object).reshape(n, DECODE_GRID)[:, -1],
            "source": _disagg_source(pf, dec, n, *grid_pos(occ))}


def _disagg_source(pf: pd.DataFrame, dec: pd.DataFrame, n: int, j: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Each deployment's `source` (`inference.measured.SOURCES`): the least certain (`BY_CERTAINTY`) of what prices
    it, the prefill pool's two estimates (`prefill_estimates`) and the decode grid's points at its occupancy (point
    `j`, and `j + 1` where its weight `f` > 0)."""
    from ..inference.measured import BY_CERTAINTY
    rank = {s: i for i, s in enumerate(BY_CERTAINTY)}
    d = dec["source"].astype(str).to_numpy(object).reshape(n, DECODE_GRID)
    p = pf["source"].astype(str).to_numpy(object).reshape(n, 2)
    at = np.arange(n)
    cands = np.stack([p[:, 0], p[:, 1], d[at, j], np.where(f > 0, d[at, j + 1], d[at, j])], axis=1)
    names, inv = np.unique(cands.astype(str), return_inverse=True)
    worst = np.array([rank[x] for x in names], dtype=int)[np.asarray(inv).reshape(cands.shape)].max(axis=1)
    return np.asarray(BY_CERTAINTY, dtype=object)[worst]


#: statistics of the wait in a critically loaded queue over a run of n requests, in units of sqrt(n) / capacity:
#: Poisson arrivals at a deterministic server make the queued work a zero-drift random walk with variance n / X^2
#: over the run (X: capacity), reflected at 0: at a fraction u of the run the wait is half-normal of scale
#: sqrt(u n) / X; averaged over u in [0, 1]: the mean (2/3) sqrt(2 / pi) and the p50/p90/p99 of that mixture
RUN_WAIT = {"mean": 0.5319230405352436, "p50": 0.4052338073627873, "p90": 1.1803198704477709,
            "p99": 2.048274426082083}


def run_wait(stationary: np.ndarray, n_req: float | np.ndarray, lam: np.ndarray, cap: np.ndarray,
             stat: str = "mean", *, burst: float | np.ndarray = 1.0, backlog: np.ndarray | None = None) -> np.ndarray:
    """Queue wait (ms; the mean, or the percentile ``stat``) of a run of ``n_req`` requests arriving at ``lam``
    per ms at a queue that serves ``cap`` per ms, from its ``stationary`` wait (the steady-state queue's, which
    grows without bound as lam nears cap): a finite run cannot build more than the random walk of its own
    arrivals (RUN_WAIT: ~0.53 sqrt(n) / cap on average at lam = cap), and past its capacity the queue of the run
    grows to n (1/cap - 1/lam) by its last request, the mean request waiting half of that (a fraction q of it
    at percentile q). The one queueing rule of the aggregated replicas, the disaggregated prefill pool and the
    decode pool's admission. ``n_req``: a scalar, or one per queue. ``burst``: Kingman's ca^2 + cs^2 of the arrivals and the work (1: Poisson arrivals of
    fixed work; one per queue or a scalar): the run's random walk has variance burst x n / cap^2. ``backlog``: the
    run's backlog wait at ``stat`` (ms, one per queue) where the caller has it in place of that linear growth (an
    aggregated replica that starts empty, `ServingModel._start_backlog`)."""
    lam = np.asarray(lam, dtype=float)
    cap = np.maximum(np.asarray(cap, dtype=float), 1e-300)
    bound = RUN_WAIT[stat] * np.sqrt(np.maximum(n_req, 1.0) * np.asarray(burst, dtype=float)) / cap
    if backlog is None:
        frac = 0.5 if stat == "mean" else Z_Q[stat]
        backlog = frac * n_req * np.maximum(1.0 / cap - 1.0 / np.maximum(lam, 1e-300), 0.0)
    return np.maximum(np.minimum(stationary, bound), backlog)


def _mdl_quantile(rho: np.ndarray, S: np.ndarray, q: float) -> np.ndarray:
    """q-quantile (ms) of the wait in an M/D/1 queue of utilisation ``rho`` and service ``S`` ms, from its
    exponential tail P(W > w) = rho exp(-2 (1 - rho) w / (rho S)) (Kingman's heavy-traffic form; 0 where
    P(W > 0) = rho <= 1 - q)."""
    rho = np.asarray(rho, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = rho * S / (2 * (1 - rho)) * np.log(np.maximum(rho / (1 - q), 1.0)) / np.maximum(rho, 1e-12)
    return np.where(rho > 1 - q, w, 0.0)


def slot_wait(slots: Any, occupancy: Any, resid: Any, ranks: Any = 1.0, cs2: Any = 1.0, resid_full: Any = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The wait for a free slot of requests routed to the least-loaded of ``ranks`` ranks (the simulator's
    routing, `engine._Engine._route`: an aggregated deployment's dp x attention-DP ranks, a disaggregated decode
    pool's), each holding at most ``slots`` sequences (whole ones) with ``occupancy`` in flight on average (its
    offered load, Erlangs), each sequence held ``resid`` ms; all broadcast together. A request waits only when every
    rank is full: Erlang C over the pool's ranks x slots at ranks x the occupancy for the chance to wait; the
    waiting requests join the shortest queues, so they wait as one pooled M/M/c queue, resid / (ranks (slots -
    occupancy)), not for their own rank's next slot alone; times (1 + ``cs2``) / 2 for residencies of squared
    coefficient of variation ``cs2`` (Allen-Cunneen's G/G/c form with Poisson arrivals: half the M/M/c wait where
    every request holds its slot equally long, as fixed output lengths do; the default 1 keeps M/M/c).
    ``resid_full`` (ms; None: ``resid``): a sequence's residency when every slot is taken. A request waits only
    then, and the slots free at that pace, not the mean occupancy's: where a full batch steps slower (its decode
    step grows with the sequences) the queue drains at slots / resid_full against the arrivals, occupancy / resid
    per ms, so a waiting request waits resid_full / (ranks (slots - occupancy x resid_full / resid)) (the state's
    own service rate in the M/M/c wait; figures in docs/profiles.md, thirty-second round). Returns (the chance to
    wait, the mean wait of a request that waits, ms)."""
    c = np.maximum(np.floor(np.asarray(slots, dtype=float)), 1.0)
    a = np.minimum(np.asarray(occupancy, dtype=float), c * 0.999)
    r = np.asarray(ranks, dtype=float)
    spread = 0.5 * (1.0 + np.asarray(cs2, dtype=float))
    if resid_full is None:
        return _erlang_c(c * r, a * r), spread * np.asarray(resid, dtype=float) / np.maximum(r * (c - a), 1e-9)
    full = np.maximum(np.asarray(resid_full, dtype=float), np.asarray(resid, dtype=float))
    load = a * full / np.maximum(np.asarray(resid, dtype=float), 1e-300)    # arrivals over a full residency
    # a queue the full state cannot drain (load >= slots) keeps the M/M/c floor of 0.999 x slots (`a` above), not a
    # ~1e12 ms wait: the backlog past capacity is `run_wait`'s
    return _erlang_c(c * r, a * r), spread * full / np.maximum(r * (c - load), 1e-3 * r * c)


def _erlang_c(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Erlang C: probability that an arrival waits in an M/M/c queue with ``c`` servers and offered load ``a``
    (Erlangs, a < c), from Erlang B = Poisson pmf(c; a) / cdf(c; a)."""
    from scipy.stats import poisson  # imported on first use (`_burst_tail`)
    b = poisson.pmf(c, a) / np.maximum(poisson.cdf(c, a), 1e-300)
    return np.clip(c * b / np.maximum(c - a * (1 - b), 1e-12), 0.0, 1.0)


def _attainment(m: pd.DataFrame, slo: SLO) -> np.ndarray:
    """Estimated fraction of requests meeting the per-request bounds of ``slo`` (`SLO.bounds`): for each bounded
    metric (TTFT, TPOT, E2E) a normal through its mean and p90, the metrics taken as independent (the product)."""
    from scipy.special import ndtr  # imported on first use (`_burst_tail`)
    ok = np.ones(len(m))
    for metric, bound in slo.bounds.items():
        mean = m[metric].to_numpy(float)
        p90 = m[f"{metric}_p90"].to_numpy(float)
        sigma = np.maximum((p90 - mean) / Z["p90"], 1e-9 * np.maximum(mean, 1.0))
        ok = ok * ndtr((bound - mean) / sigma)
    return np.clip(ok, 0.0, 1.0)


__all__ = ["Deployments", "ServingModel", "disagg_closed_loop", "kv_dtype_mismatch", "prefill_estimates", "expected_max", "run_wait",
           "cached_prefill_ms", "cached_context_ms", "ride_ms", "PERCENTILES"]
