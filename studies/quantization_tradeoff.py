"""Quantization trade-off: what each precision format buys in cost and latency, and what it costs in quality.

Llama-3.1-70B (2048 input / 256 output tokens) on H100, H200, B200 and MI300X, up to 8 GPUs. Three objectives:
quality (expected accuracy recovery vs bf16, %, from objectives.accuracy with its published sources; max),
USD per million output tokens (min) and time per output token (ms, min), under TTFT <= 2 s and TPOT <= 100 ms.
The front shows, for each quality level a format reaches (bf16 100 %, fp8 99.7 %, fp4 99.5 %, int8 / int4 98 %,
times 99.8 % with an fp8 KV cache), the cheapest and the fastest deployment.

    dse run studies/quantization_tradeoff.py
"""
import math

import dse
import spaces
from objectives import llm_serving_objective, serving

MODEL = "Llama-3.1-70B"
GPUS = ["H100-SXM-80GB", "H200-SXM-141GB", "B200", "MI300X"]
INPUT_LEN = 2048                                                                 # prompt tokens
WORKLOAD = serving.Workload(rate=math.inf, input_len=INPUT_LEN, output_len=256)
SLO = serving.SLO(ttft_ms=2000, tpot_ms=100)

space = spaces.llm_serving(MODEL, GPUS, max_gpus=8, max_batch_sizes=(8, 16, 32, 64, 128, 256, 512),
                           max_num_tokens=(8192,), chunked_prefill=(True,), input_len=INPUT_LEN)
OBJECTIVES = {"quality": "max", "usd_per_mtok": "min", "tpot_ms": "min"}
# the front confirmed in the simulator: front points that miss the SLO when simulated leave it
evaluate = llm_serving_objective(MODEL, workload=WORKLOAD, slo=SLO).confirming(OBJECTIVES)

study = dse.StudySpec(
    name="quantization_tradeoff",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives=OBJECTIVES,
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    batch_size=32768,              # the whole grid in one batch: its front is the study's front, simulated once
    show=["weight_dtype", "act_dtype", "kv_dtype", "gpu", "n_gpus", "tp", "pp", "max_batch_size", "quality",
          "usd_per_mtok", "tpot_ms", "tok_s_per_gpu", "ttft_ms", "fidelity", "source"],
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
