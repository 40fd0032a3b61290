"""`steady_state`: the closed-loop steady state of continuous batching without an event loop, as a view of the one
analytical serving model.

There is one closed form of the in-flight batching steady state: ``objectives.inference.max_throughput``'s (the
iteration work of N requests in flight at ``max_num_tokens`` per iteration, vectorized over configurations), which
the analytical serving model `ServingModel` (objectives/serving/analytical.py) uses for aggregated deployments and
extends with the scheduler features below. `steady_state` evaluates that model on one aggregated deployment under
a closed-loop fixed-length workload and returns the keys of `simulate`; it computes nothing of its own. The
simulator checks it (tests/objectives/serving/test_serving_steady.py).

Scheduler features mapped: ``max_batch_size``, ``max_num_tokens``, ``chunked_prefill`` (off: each cycle's prompts
prefill whole, the decodes riding on their iterations), ``batching`` ("continuous" | "static"), under the policy
the model models (``scheduler.MODELLED_POLICY``, "auto": each engine's own, `Scheduler.policy_of`). Not
modelled, refused with ValueError: a policy other than the engine's, e.g. ``policy="prefill_first"`` on vLLM (the
closed form has no wave of prompts queueing behind each other, its TTFT would be 4-7x low) and ``chunk_size`` below ``max_num_tokens``. The KV cache is
``kv_capacity_tokens`` where the scheduler gives it, else the inference memory model's at the engine's
``gpu_memory_utilization`` (`Scheduler.kv_tokens`, as the simulator sizes it). ``prefix_caching`` as in the
analytical model (it matters only for a workload with a ``shared_prefix``). Ignored (no preemption in a closed-loop
fixed-length steady state): preemption, kv_block_size, kv_watermark, host_link_gbs; adp_balance (one rank a replica
here, no attention-DP ranks to balance).
"""
from __future__ import annotations

import math
from typing import Any

from .analytical import Deployments, ServingModel
from .metrics import METRIC_KEYS
from .scheduler import Scheduler
from .simulator import check_replicas
from .workload import Workload


def _check(workload: Any, scheduler: Any, dp: Any, engine: Any = None, gpu: Any = None) -> Scheduler:
    if not isinstance(workload, Workload) or not workload.closed_loop or not workload.fixed_lengths:
        raise ValueError("steady_state needs a closed-loop workload (concurrency=N) with fixed input_len and "
                         f"output_len; got {workload!r}; use simulate for the others")
    check_replicas(dp)
    s = scheduler if scheduler is not None else Scheduler()
    if not isinstance(s, Scheduler):
        raise ValueError(f"scheduler must be a serving.Scheduler, got {type(s).__name__}")
    s = s.resolved(engine, gpu)     # budgets left to the engine: its own on `gpu`
    assert s.max_num_tokens is not None
    unmodelled = []
    if not s.models_policy(engine):
        unmodelled.append(f"policy={s.policy!r} (valid here: {Scheduler().policy_of(engine)!r})")
    if s.chunk_size is not None and s.chunk_size < s.max_num_tokens:
        unmodelled.append(f"chunk_size={s.chunk_size} below max_num_tokens={s.max_num_tokens}")
    if unmodelled:
        raise ValueError(f"steady_state (the analytical serving model's closed form) does not model Scheduler "
                         f"{', '.join(unmodelled)}; use serving.simulate")
    return s


def steady_state(model: Any, gpu: Any, tp: int = 1, pp: int = 1, weight_dtype: str | None = None,
                 act_dtype: str | None = None, kv_dtype: str | None = None, *, workload: Workload,
                 scheduler: Scheduler | None = None, dp: int = 1, engine: Any = None) -> dict[str, float]:
    """Analytical serving metrics for a closed-loop fixed-length workload on ``dp`` agg replicas (no event
    loop): `ServingModel` on this one deployment (see the module docstring); same keys as `simulate`. ``engine``
    as in `simulate`.
    Percentiles other than p50 (= the mean), kv_usage_max and the SLO metrics: NaN. ValueError for a workload
    that is not closed-loop with fixed lengths, a scheduler feature the model lacks, or a deployment that cannot
    run (the inference model's reason)."""
    s = _check(workload, scheduler, dp, engine, gpu)
    d = Deployments.of(gpu=gpu, tp=tp, pp=pp, dp=dp, weight_dtype=weight_dtype, act_dtype=act_dtype,
                       kv_dtype=kv_dtype, max_batch_size=s.max_batch_size, max_num_tokens=s.max_num_tokens,
                       chunked_prefill=s.chunked_prefill, batching=s.batching, engine=engine,
                       prefix_caching=s.prefix_caching)
    r = ServingModel(model, workload, gpu_memory_utilization=s.gpu_memory_utilization,
                     kv_capacity_tokens=s.kv_capacity_tokens).evaluate(d).iloc[0]
    if r["fits"] != 1.0:
        raise ValueError(f"steady_state: {model} on {gpu} tp={tp} pp={pp} weight_dtype={weight_dtype} cannot run: "
                         f"{r['reason'] or 'not runnable'}")
    nan = math.nan
    m: dict[str, float] = {k: nan for k in METRIC_KEYS}
    tpot = float(r["tpot_ms"])
    for name, v in (("ttft", float(r["ttft_ms"])), ("tpot", tpot), ("itl", tpot), ("e2e", float(r["e2e_ms"]))):
        m[f"{name}_ms_mean"] = v
        m[f"{name}_ms_p50"] = v
    thr, n_gpus = float(r["throughput_tok_s"]), float(r["n_gpus"])
    # KV in use: N sequences per replica at their mean context, over the replica's capacity (same memory model)
    from .simulator import _step_model
    sm = _step_model(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, s, engine=engine)
    ctx = float(workload.input_len) + 0.5 * float(workload.output_len)  # type: ignore[arg-type]
    held = float(sm.kv_seq_tokens(ctx))     # its engine's KV layout (window-bounded, linear layers)
    cap = s.kv_tokens(sm)                   # at the scheduler's gpu_memory_utilization, as the simulator sizes it
    m.update(throughput_tok_s=thr, throughput_tok_s_per_gpu=thr / n_gpus, tok_s_per_user=float(r["tok_s_per_user"]),
             requests_per_s=float(r["requests_per_s"]), gpu_busy_frac=1.0,
             kv_usage_mean=float(r["batch_size"]) * held / cap, preemptions=0, n_requests=workload.size,
             n_gpus=n_gpus, duration_s=workload.size / float(r["requests_per_s"]))
    return m


__all__ = ["steady_state"]
