"""Serving simulator: continuous batching, chunked prefill, paged KV cache with preemption, disaggregated
prefill/decode, seeded workloads and SLO metrics. Iteration times come from `objectives.inference.StepModel`.

    from objectives import serving
    m = serving.simulate("Llama-3.1-70B", "H200", tp=4, weight_dtype="fp8", kv_dtype="fp8",
                         workload=serving.Workload(concurrency=64, input_len=2048, output_len=256),
                         scheduler=serving.Scheduler(max_batch_size=256, max_num_tokens=8192))
    m["ttft_ms_p99"], m["throughput_tok_s"]

Modules: workload (Workload, Dist, burstgpt_like), traces (Trace, read_trace and the Azure / Mooncake / BurstGPT /
Vidur readers, shipped samples), scheduler (Scheduler, Pool, SLO, IterationCost),
engine (the event loop), simulator (simulate, simulate_requests, simulate_costs), metrics, analytical (the
vectorized analytical serving model that the simulator checks: ServingModel, Deployments), capacity (highest
request rate meeting an SLO), steady_state (the closed-loop steady state as a view of the analytical model,
whose closed form is `inference.max_throughput`'s), fidelity (predictions for the calibration rows), prefix
(prefix-cache hit rates of a trace's hash blocks at every cache capacity: the analytical model's counterpart of the
simulator's prefix cache).
"""
from . import fidelity, prefix, traces
from .analytical import Deployments, ServingModel
from .capacity import capacity
from .metrics import LABEL_KEYS, METRIC_KEYS
from .scheduler import SLO, SLO_METRICS, SLO_STATISTICS, IterationCost, Pool, Scheduler
from .simulator import PoolCosts, simulate, simulate_costs, simulate_requests
from .steady_state import steady_state
from .traces import Trace, read_trace
from .workload import Dist, Workload, burstgpt_like

__all__ = ["Workload", "Dist", "burstgpt_like", "read_trace", "Trace", "traces", "Scheduler", "Pool", "SLO", "IterationCost",
           "PoolCosts", "simulate", "simulate_requests", "simulate_costs", "steady_state", "METRIC_KEYS", "LABEL_KEYS", "fidelity",
           "ServingModel", "Deployments", "capacity", "SLO_METRICS", "SLO_STATISTICS", "prefix"]
