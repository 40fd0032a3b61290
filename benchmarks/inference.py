"""Benchmark of the analytical inference model: configurations/s of `estimate` over broadcast arrays, µs per
scalar `StepModel.time_ms` call, and the closest analytical peer (llm-analysis) timed in the same run if installed.

    .venv/bin/python benchmarks/inference.py [--n 1000000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from objectives import inference

PEER_DOCUMENTED_PER_S = 200.0  # llm-analysis on this machine, per the issue (used only when it cannot be timed)


def bench_estimate(n: int) -> float:
    rng = np.random.default_rng(0)
    batch = rng.integers(1, 512, n)
    isl = rng.integers(16, 8192, n)
    osl = rng.integers(1, 2048, n)
    tp = np.array([1, 2, 4, 8])[rng.integers(0, 4, n)]
    inference.estimate("Llama-3.1-70B", "H100", tp=tp[:1000], weight_dtype="fp8", batch_size=batch[:1000])
    t = time.perf_counter()
    df = inference.estimate("Llama-3.1-70B", "H100-SXM-80GB", tp=tp, weight_dtype="fp8", batch_size=batch,
                            input_len=isl, output_len=osl)
    dt = time.perf_counter() - t
    assert len(df) == n
    return n / dt


def bench_step(calls: int = 200_000) -> float:
    sm = inference.StepModel("Llama-3.1-70B", "H100-SXM-80GB", tp=4, weight_dtype="fp8")
    f = sm.time_ms
    t = time.perf_counter()
    for i in range(calls):
        f(512.0, 512.0 * 1000.0, 64.0, 64000.0 + i)
    return (time.perf_counter() - t) / calls * 1e6


def bench_peer(n: int = 50) -> float | None:
    try:
        from llm_analysis.analysis import infer  # type: ignore
    except Exception:  # noqa: BLE001 - not installed
        return None
    t = time.perf_counter()
    for i in range(n):
        infer(model_name="upstage/Llama-2-70b-instruct-v2", gpu_name="a100-sxm-80gb", dtype_name="w16a16e16",
              batch_size_per_gpu=1 + i % 64, seq_len=1024, num_tokens_to_generate=128, tp_size=4,
              log_level="ERROR")
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    rate = bench_estimate(args.n)
    print(f"estimate: {rate:,.0f} configurations/s ({args.n:,} broadcast configurations, one core, target >= 2,000,000)")
    print(f"StepModel.time_ms scalar: {bench_step():.2f} µs per call")
    peer = bench_peer()
    if peer is None:
        print(f"llm-analysis: not installed, not measured; documented figure ~{PEER_DOCUMENTED_PER_S:.0f} configs/s "
              f"-> ratio ~{rate / PEER_DOCUMENTED_PER_S:,.0f}x (documented, not measured)")
    else:
        print(f"llm-analysis (measured in this run): {peer:,.1f} configs/s -> ratio {rate / peer:,.0f}x")


if __name__ == "__main__":
    main()
