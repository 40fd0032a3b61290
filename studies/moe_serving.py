"""MoE study: Qwen3-235B-A22B (128 experts, 8 active) with expert parallelism, aggregated vs disaggregated serving.

Knobs: GPU (H200, B200, MI300X), 1 to 8 GPUs as TP x PP x DP with EP inside the TP group (EP divides the 128
experts and TP), precision format, KV precision, max batch size, chunked prefill (aggregated mode), and the serving
mode: "agg" (every replica prefills and decodes) or "disagg" (``prefill_replicas`` of the ``dp`` replicas only
prefill and hand the KV cache over to the others).

Fidelity: the whole space (~13,000 configurations) is screened with the analytical model, whose disaggregated
mode is the documented pool-capacity approximation in objectives/serving/analytical.py. The ``after`` step then
re-evaluates the front in the discrete-event serving simulator (``objectives.multi_fidelity``) and prints how the
front changed; the simulated metrics are written beside the study database (<name>-simulated.parquet).

    dse run studies/moe_serving.py
"""
import dse
import spaces
from objectives import llm_serving_objective, multi_fidelity, serving

MODEL = "Qwen3-235B-A22B"
GPUS = ["H200-SXM-141GB", "B200", "MI300X"]
WORKLOAD = serving.Workload(concurrency=256, input_len=2048, output_len=256)   # 256 users, closed loop
SLO = serving.SLO(ttft_ms=2000, tpot_ms=50)

space = spaces.llm_serving(MODEL, GPUS, max_gpus=8, modes=("agg", "disagg"), formats=["bf16", "fp8", "w4a16", "fp4"],
                           max_batch_sizes=(8, 16, 32, 64, 128, 256),
                           max_num_tokens=(8192,), input_len=WORKLOAD.input_len)
evaluate = llm_serving_objective(MODEL, workload=WORKLOAD, slo=SLO)


def resimulate(study, top: int = 8) -> None:
    """Re-run the first `top` front points in the simulator and say how the front changed."""
    if study.pareto().empty:
        print("no feasible configuration to re-simulate")
        return
    res = multi_fidelity(study, evaluate, top=top)
    print(res.summary())
    cols = ["number", "gpu", "n_gpus", "tp", "dp", "ep", "mode", "prefill_replicas", "weight_dtype", "tok_s_per_gpu",
            "tok_s_per_user", "ttft_ms_p99", "slo_attainment", "on_front"]
    print(res.simulated[[c for c in cols if c in res.simulated.columns]].to_string(index=False, float_format="%.4g"))


study = dse.StudySpec(
    name="moe_serving",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives={"tok_s_per_gpu": "max", "tok_s_per_user": "max"},
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    show=["gpu", "n_gpus", "tp", "pp", "dp", "ep", "mode", "prefill_replicas", "weight_dtype", "kv_dtype",
          "max_batch_size", "chunked_prefill", "tok_s_per_gpu", "tok_s_per_user", "usd_per_mtok", "ttft_ms", "tpot_ms"],
    after=resimulate,
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
