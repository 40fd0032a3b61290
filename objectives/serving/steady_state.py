"""Closed-form steady state of continuous batching for closed-loop, fixed-length workloads (no event loop).

Model ("waves", what N clients that start together produce): per replica b = min(N / dp, max_batch_size,
KV cache / mean context) requests are in flight, the rest queue. One cycle is the lifetime of a request:
``k_p`` iterations carrying its prefill chunks plus ``O - 1`` decode iterations. The cycle's prefill work
(b prompts of I tokens) is packed into P full-budget iterations, the other iterations decode only:

    cycle = P * t(T = b I / P, A = b I (I + 1) / 2 / P, D = n_d, K = n_d (I + O / 2))
          + (L - P) * t(0, 0, n_d, n_d (I + O / 2))

with n_d the decoding sequences per iteration. Then throughput = b O / cycle, TTFT = queue wait + k_p mixed
iterations, TPOT = (cycle - TTFT without queue) / (O - 1), and the queue wait follows from Little's law
(N / dp requests per replica in the system). ``prefill_first`` iterations carry no decodes, so decoders stall
through the P prefill iterations and the whole wave finishes together: the mean prompt waits (P + 1) / 2
prefill iterations for its first token.
"""
from __future__ import annotations

import math
from typing import Any

from .metrics import METRIC_KEYS
from .scheduler import IterationCost, Scheduler
from .simulator import _step_model
from .workload import Workload


def steady_state_costs(cost: IterationCost, *, workload: Workload, scheduler: Scheduler | None = None,
                       dp: int = 1) -> dict[str, float]:
    """`steady_state` on an explicit iteration cost (see `IterationCost`)."""
    if not isinstance(workload, Workload) or not workload.closed_loop or not workload.fixed_lengths:
        raise ValueError("steady_state needs a closed-loop workload (concurrency=N) with fixed input_len and "
                         f"output_len; got {workload!r}; use simulate for the others")
    if isinstance(dp, bool) or not isinstance(dp, int) or dp < 1:
        raise ValueError(f"dp={dp!r}: must be an integer >= 1 (replicas)")
    s = scheduler if scheduler is not None else Scheduler()
    I, O = int(workload.input_len), int(workload.output_len)
    N = min(workload.concurrency, workload.size) / dp          # clients per replica
    cap_tokens = s.kv_blocks(cost) * s.kv_block_size
    if I + O > cap_tokens:
        raise ValueError(f"a request needs {I + O} KV tokens but a replica holds {cap_tokens}")
    b = min(N, s.max_batch_size, max(1.0, cap_tokens / (I + 0.5 * (O + 1))))
    tm = cost.time_ms
    budget = s.max_num_tokens
    if s.chunked_prefill:
        per_chunk = min(s.chunk, budget)
    else:
        per_chunk = max(I, 1)
    k_p = math.ceil(I / per_chunk) if s.chunked_prefill else 1
    ctx = I + 0.5 * O
    if s.policy == "decode_priority":
        L = k_p + O - 1                                       # iterations per cycle
        n_d = b * (O - 1) / L
        room = max(budget - n_d, 1.0)
        if not s.chunked_prefill:
            room = max(math.floor(room / I) * I, I)
        P = min(float(L), max(1.0, math.ceil(b * I / room)))
        t_mix = tm(b * I / P, b * I * (I + 1) / 2 / P, n_d, n_d * ctx)
        t_dec = tm(0, 0, n_d, n_d * ctx) if n_d > 0 else 0.0
        cycle = P * t_mix + (L - P) * t_dec
        ttft0 = k_p * t_mix
    else:
        room = budget if s.chunked_prefill else max(math.floor(budget / I) * I, I)
        P = max(1.0, math.ceil(b * I / room))
        t_pf = tm(b * I / P, b * I * (I + 1) / 2 / P, 0, 0)
        n_d = b
        t_dec = tm(0, 0, n_d, n_d * ctx) if O > 1 else 0.0
        cycle = P * t_pf + (O - 1) * t_dec
        ttft0 = (P + 1) / 2 * t_pf      # the wave stays synchronized: prompts wait for the ones ahead of them
    wait = max(N / b - 1.0, 0.0) * cycle                        # Little's law: N = (b / cycle) * (wait + cycle)
    ttft = wait + ttft0
    tpot = (cycle - ttft0) / (O - 1) if O > 1 else math.nan
    e2e = wait + cycle
    thr = dp * b * O / cycle * 1e3
    n_gpus = dp * int(cost.n_gpus)
    nan = math.nan
    m: dict[str, float] = {k: nan for k in METRIC_KEYS}
    for name, v in (("ttft", ttft), ("tpot", tpot), ("itl", tpot), ("e2e", e2e)):
        m[f"{name}_ms_mean"] = v
        m[f"{name}_ms_p50"] = v
    m.update(throughput_tok_s=thr, throughput_tok_s_per_gpu=thr / n_gpus,
             tok_s_per_user=1e3 / tpot if tpot == tpot else nan, requests_per_s=thr / O,
             gpu_busy_frac=1.0, kv_usage_mean=b * ctx / cap_tokens, preemptions=0, n_requests=workload.size,
             n_gpus=n_gpus, duration_s=workload.size / (thr / O))
    return m


def steady_state(model: Any, gpu: Any, tp: int = 1, pp: int = 1, weight_dtype: str = "bf16",
                 act_dtype: str | None = None, kv_dtype: str | None = None, *, workload: Workload,
                 scheduler: Scheduler | None = None, dp: int = 1) -> dict[str, float]:
    """Analytical serving metrics for a closed-loop fixed-length workload on ``dp`` agg replicas (no event
    loop); same keys as `simulate`. Percentiles other than p50 (= the mean), SLO metrics: NaN."""
    s = scheduler if scheduler is not None else Scheduler()
    sm = _step_model(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, s)
    return steady_state_costs(sm, workload=workload, scheduler=s, dp=dp)


__all__ = ["steady_state", "steady_state_costs"]
