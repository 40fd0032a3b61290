"""Benchmark of the analytical training model: configurations/s of `training.estimate` over broadcast arrays, and the
closest analytical peer (llm-analysis's training mode, `llm_analysis.analysis.train`) timed in the same run on the
same configurations when it is importable.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training.py [--n 1000000] [--repeat 5]

Each figure is the median of `--repeat` calls after one warm-up call (the first call is printed too). The target
(issue 16) is >= 1,000,000 configurations/s on one core. The machine is shared: its load average is printed.
llm-analysis is not a dependency of the project: install it anywhere on PYTHONPATH to get the ratio, e.g.
``pip install --no-deps --target /tmp/llma llm-analysis==0.2.2 fire termcolor`` and ``PYTHONPATH=/tmp/llma``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from _timing import machine_line, peer_rate, rates, sweep_args

from objectives import training

TARGET = 1_000_000


def sweep(n: int, seed: int = 0) -> dict[str, Any]:
    """`n` random valid layouts of Llama-3.1-70B on H100: tp, pp, dp, micro-batch, recompute, ZeRO, precision."""
    rng = np.random.default_rng(seed)
    tp = np.array([1, 2, 4, 8])[rng.integers(0, 4, n)]
    pp = np.array([1, 2, 4, 8])[rng.integers(0, 4, n)]
    mb = np.array([1, 2, 4])[rng.integers(0, 3, n)]
    dp = np.array([1, 2, 4, 8, 16, 32])[rng.integers(0, 6, n)]
    return dict(model="Llama-3.1-70B", gpu="H100-SXM-80GB", n_gpus=tp * pp * dp, tp=tp, pp=pp, micro_batch=mb,
                global_batch=dp * mb * 8, recompute=np.array(training.RECOMPUTE)[rng.integers(0, 3, n)],
                zero_stage=rng.integers(0, 4, n), precision=np.array(["bf16", "fp8"])[rng.integers(0, 2, n)],
                seq_len=8192, tokens=15e12)


#: the comparable configurations: Llama-2-7B on A100-SXM-80GB, bf16, seq 2048, micro-batch 4, 8 micro-batches per
#: step, ZeRO-1, full recompute, tp 1/2/4/8 on 8 x tp GPUs (llm-analysis ships this model as NousResearch_Llama-2-7b-hf)
PEER_TP = np.array([1, 2, 4, 8])


def peer_args(n: int) -> dict[str, Any]:
    tp = np.resize(PEER_TP, n)
    return dict(model="Llama-2-7B", gpu="A100-SXM-80GB", n_gpus=8 * tp, tp=tp, micro_batch=4, global_batch=8 * 4 * 8,
                seq_len=2048, recompute="full", zero_stage=1, precision="bf16")


def bench_peer(calls: int = 100) -> float | None:
    def call(train, i: int) -> None:
        tp = int(PEER_TP[i % len(PEER_TP)])
        train(model_name="NousResearch_Llama-2-7b-hf", gpu_name="a100-sxm-80gb", dtype_name="w16a16e16",
              batch_size_per_gpu=4, gradient_accumulation_steps=8, seq_len=2048, activation_recomputation=2,
              ds_zero=1, tp_size=tp, total_num_gpus=8 * tp, flops_efficiency=0.5, hbm_memory_efficiency=0.9,
              log_level="ERROR")
    return peer_rate("train", call, calls)


def main() -> None:
    args = sweep_args()
    print(machine_line())
    kw = sweep(args.n)
    first, med = rates(lambda: training.estimate(**kw), args.n, args.repeat)
    print(f"training.estimate: {med:,.0f} configurations/s median of {args.repeat} (first call {first:,.0f}/s); "
          f"{args.n:,} layouts of Llama-3.1-70B on H100, target >= {TARGET:,} -> {med / TARGET:.2f}x target")
    pk = peer_args(args.n)
    ours = rates(lambda: training.estimate(**pk), args.n, args.repeat)[1]
    peer = bench_peer()
    if peer is None:
        print(f"llm-analysis: not importable here, not measured (ours on its configurations: {ours:,.0f}/s)")
    else:
        print(f"llm-analysis 0.2.2 'train' (measured in this run, same configurations: Llama-2-7B A100-SXM-80GB bf16 "
              f"seq 2048, micro-batch 4 x 8, ZeRO-1, full recompute, tp 1-8): {peer:,.0f} configs/s; ours on them "
              f"{ours:,.0f}/s -> ratio {ours / peer:,.0f}x")


if __name__ == "__main__":
    main()
