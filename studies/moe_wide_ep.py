"""Wide-EP study: how to serve DeepSeek-R1 (NVFP4) at 80 requests/s (Poisson, 2048 input / 512 output tokens)
on a GB200 NVL72 rack: tensor parallel vs attention data parallel with wide expert parallelism, with or without
the engines' expert-parallel load balancer, under SGLang or TensorRT-LLM, aggregated or with prefill and decode
pools of their own.

Knobs: 16 / 24 / 32 / 48 GPUs of the rack's one NVLink domain; aggregated replicas or disaggregated pools; a
replica (the decode pool's workers) as TP x attention DP with EP over its GPUs (EP 1 up to all of them,
redundant expert copies where EP does not divide the 256 experts), the prefill workers' own TP 4 / 8 with EP 1 /
4 / 8; the load balancer (``eplb``: SGLang ``--enable-eplb``, TensorRT-LLM's MoE load balancer, where some pool
runs an EP that divides the experts); the serving engine (each one's measured kernel profile: fused-MoE layers,
DeepEP dispatch / combine, MLA attention, all-reduces); max batch size. Objectives: USD per million output tokens
(min) and tokens/s per user (max) at the offered rate, under a p99 TTFT <= 3 s and p99 TPOT <= 60 ms SLO; the
front is confirmed in the discrete-event simulator (points that miss the SLO there leave it, the reason in
``confirm_reason``); ``capacity_req_s`` says how much more each point holds.

The cost model's tables time each expert-parallel layer at the power-law skew engines see without a balancer and,
with ``eplb``, at balanced routing (docs/profiles.md, nineteenth round); no end-to-end measurement of these
deployments is in ../shared/calibration, so the front is the profiles' and the fitted factors' estimate.

    dse run studies/moe_wide_ep.py
"""
import dse
import spaces
from objectives import llm_serving_objective, serving

MODEL = "nvidia/DeepSeek-R1-NVFP4"
GPUS = ["GB200"]
INPUT_LEN = 2048                                                                     # prompt tokens
WORKLOAD = serving.Workload(rate=80.0, input_len=INPUT_LEN, output_len=512)            # Poisson arrivals, 80 req/s
SLO = serving.SLO(ttft_ms=3000, tpot_ms=60, percentile="p99")

OBJECTIVES = {"usd_per_mtok": "min", "tok_s_per_user": "max"}

space = spaces.llm_serving(MODEL, GPUS, max_gpus=48, n_gpus=[16, 24, 32, 48], modes=("agg", "disagg"),
                           formats=["fp4"], kv_dtypes=("fp8",), attn_dp=[1, 8, 16, 32], eplb=(False, True),
                           prefill_tp=[4, 8], prefill_attn_dp=[1], prefill_ep=[1, 4, 8],
                           max_batch_sizes=(128, 256), max_num_tokens=(8192,), chunked_prefill=(True,),
                           engines=["trtllm", "sglang"], input_len=INPUT_LEN)
evaluate = llm_serving_objective(MODEL, workload=WORKLOAD, slo=SLO, capacity=True).confirming(OBJECTIVES)


def confirmed(study) -> None:
    """Say how the simulation changed the front (from the stored trials, so a resumed study says it too)."""
    if text := evaluate.after_text(study):
        print(text)


study = dse.StudySpec(
    name="moe_wide_ep",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives=OBJECTIVES,
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    batch_size=32768,              # the whole grid in one batch: its front is the study's front, simulated once
    after=confirmed,
    show=["n_gpus", "mode", "prefill_replicas", "prefill_tp", "prefill_ep", "tp", "attn_dp", "dp", "ep", "eplb",
          "engine", "max_batch_size", "capacity_req_s", "usd_per_mtok", "tok_s_per_user", "ttft_ms_p99",
          "tpot_ms_p99", "fidelity", "source"],
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
