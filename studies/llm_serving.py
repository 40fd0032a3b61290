"""Flagship study: how to serve Llama-3.1-70B (2048 input / 256 output tokens) under TTFT <= 2 s, TPOT <= 50 ms.

Every knob at once: GPU type (H100, H200, A100-80GB, L40S, B200, MI300X), 1 to 8 GPUs as tensor x pipeline
parallel, weight/activation precision format (bf16, fp8, int8, fp8 and int4 weight-only, int4 x fp8, fp4 where the
GPU computes in it), fp8 or bf16 KV cache, max batch size, max tokens per iteration and chunked prefill.
Objectives: tokens/s per GPU (max), tokens/s per user (max), USD per million output tokens (min).

The space has about 25,000 valid configurations and the analytical model evaluates them all in about a second,
so the study enumerates it (optimizer "grid": the exact Pareto front, no sampling error).

    dse run studies/llm_serving.py          # or: python studies/llm_serving.py
"""
import math

import dse
import spaces
from objectives import llm_serving_objective, serving

MODEL = "Llama-3.1-70B"
GPUS = ["H100-SXM-80GB", "H200-SXM-141GB", "A100-SXM-80GB", "L40S", "B200", "MI300X"]
WORKLOAD = serving.Workload(rate=math.inf, input_len=2048, output_len=256)   # max-throughput benchmark
SLO = serving.SLO(ttft_ms=2000, tpot_ms=50)

# max_num_tokens only moves TTFT (a constraint here), so two values suffice: each extra one adds ties to the front
space = spaces.llm_serving(MODEL, GPUS, max_gpus=8, max_num_tokens=(2048, 8192), input_len=WORKLOAD.input_len)
evaluate = llm_serving_objective(MODEL, workload=WORKLOAD, slo=SLO)

study = dse.StudySpec(
    name="llm_serving",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives={"tok_s_per_gpu": "max", "tok_s_per_user": "max", "usd_per_mtok": "min"},
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    show=["gpu", "n_gpus", "tp", "pp", "weight_dtype", "act_dtype", "kv_dtype", "max_batch_size", "max_num_tokens",
          "chunked_prefill", "tok_s_per_gpu", "tok_s_per_user", "usd_per_mtok", "ttft_ms", "tpot_ms",
          "mem_per_gpu_gib"],
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
