"""Benchmark of the serving simulator: simulated requests per second on one core for an `agg` workload
(closed loop, concurrency 64, 2,000 requests of 2048/256 tokens, Llama-3.1-70B fp8 TP4 on H200, the
ARCHITECTURE example), with event skipping (closed-form decode segments) and, as a same-run reference, the same
engine stepping every decode iteration. Vidur (the peer) is timed only if it can run here; its pip wheel ships
no profiling data (the predictors need it), so its documented figure is printed instead. Last, the CPU time of
one configuration's capacity search (`serving.capacity`, target <= 1 s).

    .venv/bin/python benchmarks/serving.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import time

from objectives import serving
from objectives.inference import StepModel
from objectives.serving.simulator import PoolCosts, _run

VIDUR_DOCUMENTED_REQ_S = 170.0  # Vidur on this machine, per issue 4 (after minutes of training its predictors)
TARGET_REQ_S = 20_000.0
TARGET_CAPACITY_S = 1.0         # one configuration's capacity search, CPU seconds


def _one_core() -> None:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass


def bench(repeat: int, skip: bool) -> tuple[float, dict]:
    w = serving.Workload(concurrency=64, input_len=2048, output_len=256, n_requests=2000)
    s = serving.Scheduler(max_batch_size=256, max_num_tokens=8192, chunked_prefill=True)
    best = float("inf")
    m = {}
    for _ in range(repeat):
        t = time.perf_counter()
        if skip:
            m = serving.simulate("Llama-3.1-70B", "H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                                 scheduler=s)
        else:   # same engine, every decode iteration stepped on its own
            sm = StepModel("Llama-3.1-70B", "H200", tp=4, weight_dtype="fp8", kv_dtype="fp8")
            eng, _ = _run(w, PoolCosts(sm, 1, s, 64.0), None, None, s, 0.0, "least_loaded", skip=False)
            m = {"n_requests": eng.n, "iterations": len(eng.iters) + sum(x[1] for x in eng.segs)}
        best = min(best, time.perf_counter() - t)
    return w.size / best, m


def bench_capacity(repeat: int) -> tuple[float, float, dict]:
    """CPU seconds of one `serving.capacity` search (Llama-3.1-70B fp8 TP4 on H200, p99 TTFT <= 2 s, TPOT <= 200
    ms, 2048/256 tokens): (first call, its profile loaded with it; best of `repeat` further calls; the result)."""
    def one() -> tuple[float, dict]:
        t = time.process_time()
        r = serving.capacity("Llama-3.1-70B", "H200", tp=4, weight_dtype="fp8", kv_dtype="fp8",
                             slo=serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99"),
                             workload=serving.Workload(rate=1.0, input_len=2048, output_len=256))
        return time.process_time() - t, r

    first, r = one()
    return first, min(one()[0] for _ in range(repeat)), r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    _one_core()
    rate, m = bench(args.repeat, skip=True)
    print(f"serving.simulate agg, concurrency 64, 2,000 requests 2048/256, Llama-3.1-70B fp8 TP4 H200, default "
          f"engine (vLLM's H200 profile): "
          f"{rate:,.0f} simulated requests/s (best of {args.repeat}, one core, target >= {TARGET_REQ_S:,.0f}, "
          f"StepModel construction included)")
    print(f"  metrics: throughput {m['throughput_tok_s']:,.0f} tok/s, TTFT mean {m['ttft_ms_mean']:.0f} ms, "
          f"TPOT mean {m['tpot_ms_mean']:.1f} ms")
    ref, r = bench(max(1, args.repeat // 2), skip=False)
    print(f"same engine stepping every iteration ({r['iterations']:,} iterations): {ref:,.0f} requests/s "
          f"-> event skipping is {rate / ref:.1f}x faster (measured in this run)")
    first, best, c = bench_capacity(args.repeat)
    print(f"serving.capacity, one configuration (same model and GPU, p99 TTFT <= 2 s, TPOT <= 200 ms): "
          f"{c['capacity_req_s']:.2f} req/s (analytical {c['analytical_req_s']:.2f}, {c['n_simulations']} "
          f"simulations) in {best:.2f} s CPU (best of {args.repeat}; first call {first:.2f} s), target <= "
          f"{TARGET_CAPACITY_S:.0f} s")
    print(f"Vidur: not measured (its wheel has no profiling data for its predictors); documented figure "
          f"~{VIDUR_DOCUMENTED_REQ_S:.0f} requests/s -> ratio ~{rate / VIDUR_DOCUMENTED_REQ_S:,.0f}x (documented)")


if __name__ == "__main__":
    main()
