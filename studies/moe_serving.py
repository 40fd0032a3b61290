"""MoE study: Qwen3-235B-A22B (128 experts, 8 active) with expert parallelism, aggregated vs disaggregated serving.

Knobs: GPU (H200, B200, MI300X), 1 to 8 GPUs as TP x PP x DP with EP inside the TP group (EP divides the 128
experts and TP), precision format, KV precision, max batch size, chunked prefill (aggregated mode), and the serving
mode: "agg" (every replica prefills and decodes) or "disagg" (``prefill_replicas`` of the ``dp`` replicas only
prefill and hand the KV cache over to the others).

Fidelity: the whole space (~13,000 configurations) is screened with the analytical model, whose disaggregated
mode is the documented pool-capacity approximation in objectives/serving/analytical.py, and its front is
confirmed in the discrete-event serving simulator as it is evaluated (``objective.confirming``: front points that
miss the SLO when simulated leave the front, the reason in ``confirm_reason``). The ``after`` step prints, from
the stored trials, how many configurations were simulated and how many left the front.

    dse run studies/moe_serving.py
"""
import dse
import spaces
from objectives import llm_serving_objective, serving

MODEL = "Qwen3-235B-A22B"
GPUS = ["H200-SXM-141GB", "B200", "MI300X"]
INPUT_LEN = 2048                                                                 # prompt tokens
WORKLOAD = serving.Workload(concurrency=256, input_len=INPUT_LEN, output_len=256)   # 256 users, closed loop
SLO = serving.SLO(ttft_ms=2000, tpot_ms=50)

space = spaces.llm_serving(MODEL, GPUS, max_gpus=8, modes=("agg", "disagg"), formats=["bf16", "fp8", "w4a16", "fp4"],
                           max_batch_sizes=(8, 16, 32, 64, 128, 256),
                           max_num_tokens=(8192,), input_len=INPUT_LEN)
OBJECTIVES = {"tok_s_per_gpu": "max", "tok_s_per_user": "max"}
evaluate = llm_serving_objective(MODEL, workload=WORKLOAD, slo=SLO).confirming(OBJECTIVES)


def confirmed(study) -> None:
    """Say how the simulation changed the front (from the stored trials, so a resumed study says it too)."""
    if text := evaluate.after_text(study, detail=lambda sim: f"{(sim['mode'] == 'disagg').sum()} disaggregated"):
        print(text)


study = dse.StudySpec(
    name="moe_serving",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives=OBJECTIVES,
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    batch_size=32768,              # the whole grid in one batch: its front is the study's front, simulated once
    show=["gpu", "n_gpus", "tp", "pp", "dp", "ep", "mode", "prefill_replicas", "weight_dtype", "kv_dtype",
          "max_batch_size", "chunked_prefill", "tok_s_per_gpu", "tok_s_per_user", "usd_per_mtok", "ttft_ms", "tpot_ms",
          "fidelity", "source"],
    after=confirmed,
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
