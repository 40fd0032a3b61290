"""GPU mix: the cheapest way to serve Llama-3.1-8B under an interactive SLO, across every priced GPU type.

Question: per million output tokens, which GPU (from a 24 GB RTX 4090 or an L4 to a B200) serves Llama-3.1-8B
(1024 input / 256 output tokens) at TTFT <= 1 s and TPOT <= 30 ms most cheaply, and how do the types rank?
The only objective is USD per million output tokens; the ``after`` step prints the cheapest feasible deployment
of EACH GPU type from the full grid results, so the ranking across types is visible, not just the winner.

    dse run studies/gpu_mix.py
"""
import math

import numpy as np

import dse
import spaces
from objectives import catalog, llm_serving_objective, serving

MODEL = "Llama-3.1-8B"
# every catalog GPU with a published price (a NaN price cannot be ranked by cost)
GPUS = [g for g in catalog.gpus() if np.isfinite(catalog.gpu(g).price_usd_per_hour)]
WORKLOAD = serving.Workload(rate=math.inf, input_len=1024, output_len=256)
SLO = serving.SLO(ttft_ms=1000, tpot_ms=30)

space = spaces.llm_serving(MODEL, GPUS, max_gpus=4, kv_dtypes=("bf16", "fp8"), max_num_tokens=(2048, 8192),
                           input_len=WORKLOAD.input_len)
evaluate = llm_serving_objective(MODEL, workload=WORKLOAD, slo=SLO)


def cheapest_per_gpu(study) -> None:
    """Print the cheapest feasible deployment of each GPU type (from every evaluated point)."""
    res = study.results()
    ok = res[(res["state"] == "complete") & res["feasible"].astype(bool)]
    if ok.empty:
        print("no GPU type meets the SLO")
        return
    best = ok.loc[ok.groupby("gpu", observed=True)["usd_per_mtok"].idxmin()].sort_values("usd_per_mtok")
    cols = ["gpu", "n_gpus", "tp", "weight_dtype", "act_dtype", "kv_dtype", "max_batch_size", "usd_per_mtok",
            "tok_s_per_gpu", "tpot_ms", "ttft_ms"]
    print("cheapest deployment meeting the SLO, per GPU type:")
    print(best[cols].to_string(index=False, float_format="%.4g"))
    missing = sorted(set(GPUS) - set(best["gpu"]))
    if missing:
        print("no configuration meets the SLO on: " + ", ".join(missing))


study = dse.StudySpec(
    name="gpu_mix",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives={"usd_per_mtok": "min"},
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    show=["gpu", "n_gpus", "tp", "pp", "weight_dtype", "act_dtype", "kv_dtype", "max_batch_size", "max_num_tokens",
          "chunked_prefill", "usd_per_mtok", "tok_s_per_gpu", "ttft_ms", "tpot_ms"],
    after=cheapest_per_gpu,
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
