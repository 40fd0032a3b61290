"""Flagship study: how to serve Llama-3.1-70B at 4 requests/s (Poisson, 2048 input / 256 output tokens) under
MLPerf's server-scenario SLO: p99 TTFT <= 2 s and p99 TPOT <= 200 ms.

Every knob at once: GPU type (H100, H200, A100-80GB, L40S, B200, MI300X), 1 to 8 GPUs as tensor x pipeline
parallel, weight/activation precision format (bf16, fp8, int8, fp8 and int4 weight-only, int4 x fp8, fp4 where the
GPU computes in it), fp8 or bf16 KV cache, max batch size, max tokens per iteration and chunked prefill.
Objectives: tokens/s per GPU (max), tokens/s per user (max), USD per million output tokens (min), at the offered
rate (a deployment that cannot keep up serves its capacity and its queue, and misses the SLO).

The SLO follows MLPerf Inference's server scenario for Llama-2-70B (Poisson arrivals; TTFT <= 2 s and TPOT
<= 200 ms at the 99th percentile; mlcommons/inference, language/llama2-70b). The analytical serving model
screens the whole space (~14,400 configurations, optimizer "grid": the exact front of that model) with its
queueing estimates of the percentiles; then every point of the front is simulated (discrete-event, 2,000
requests of this workload) and the points that miss the SLO in simulation leave the front (their reason stored
in the trial metric ``confirm_reason``), until the printed front is all simulated and all meets it. Extra
metrics: slo_attainment and goodput_req_s (requests/s meeting the per-request bounds), capacity_req_s (highest
rate each configuration holds under the SLO, analytical; `dse capacity` searches it in the simulator). The front
keeps the analytical objectives it was chosen on; the printed table says which columns are analytical (screening)
and which simulated, and shows the simulated tokens/s per user beside the analytical one.

    dse run studies/llm_serving.py          # or: python studies/llm_serving.py
"""
import dse
import spaces
from objectives import llm_serving_objective, serving

MODEL = "Llama-3.1-70B"
GPUS = ["H100-SXM-80GB", "H200-SXM-141GB", "A100-SXM-80GB", "L40S", "B200", "MI300X"]
INPUT_LEN, OUTPUT_LEN = 2048, 256                                               # prompt and output tokens
WORKLOAD = serving.Workload(rate=4.0, input_len=INPUT_LEN, output_len=OUTPUT_LEN)   # Poisson arrivals, 4 req/s
SLO = serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99")                  # MLPerf server, Llama-2-70B

OBJECTIVES = {"tok_s_per_gpu": "max", "tok_s_per_user": "max", "usd_per_mtok": "min"}

# without chunked prefill a token budget holds the longest request (vLLM refuses less): 2048 tokens run chunked only
space = spaces.llm_serving(MODEL, GPUS, max_gpus=8, max_num_tokens=(2048, 8192), input_len=INPUT_LEN,
                           output_len=OUTPUT_LEN)
evaluate = llm_serving_objective(MODEL, workload=WORKLOAD, slo=SLO, capacity=True).confirming(OBJECTIVES)


def confirmed(study) -> None:
    """Say how the simulation changed the front (from the stored trials, so a resumed study says it too)."""
    if text := evaluate.after_text(study, note="; every front point meets it when simulated (screening values "
                                              "and capacity_req_s are the analytical model's)"):
        print(text)


study = dse.StudySpec(
    name="llm_serving",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives=OBJECTIVES,
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    batch_size=32768,              # the whole grid in one batch: its front is the study's front, simulated once
    after=confirmed,
    show=["gpu", "n_gpus", "tp", "pp", "weight_dtype", "act_dtype", "kv_dtype", "max_batch_size", "max_num_tokens",
          "chunked_prefill", "tok_s_per_gpu", "tok_s_per_user", "tok_s_per_user_simulated", "usd_per_mtok",
          "ttft_ms_p99", "tpot_ms_p99", "slo_attainment", "capacity_req_s", "fidelity", "source"],
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
