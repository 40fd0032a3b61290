"""Flagship training study: pre-train Llama-3.1-70B on 15T tokens (8192-token sequences, 2048 per step): time to train
against cost against GPU count, with memory as a constraint.

Every knob of the training layout at once: GPU type (H100, H200, B200, A100-80GB), 512 to 16,384 GPUs, tensor /
pipeline / context parallel degrees, interleaved pipeline chunks, ZeRO-1, FSDP (ZeRO-3) or hybrid-sharded FSDP
(HSDP: ZeRO-3 inside each 8-GPU node, replicas across nodes), selective or full
recompute, micro-batch 1-4, bf16 or fp8 training. Objectives: hours to train (min), USD for the run at the catalog's
on-demand GPU-hour prices (min), GPUs (min: the team's allocation). A layout whose weights, gradients, optimizer
states and activations exceed the GPU's memory is infeasible (``fits``).

The space has about 74,000 valid layouts and the analytical training model evaluates them all in a tenth of a
second, so the study enumerates it (optimizer "grid": the exact Pareto front, no sampling error).

    dse run studies/llm_training.py          # or: python studies/llm_training.py
"""
import dse
import spaces
from objectives.training import training_objective

MODEL = "Llama-3.1-70B"
GPUS = ["H100-SXM-80GB", "H200-SXM-141GB", "B200", "A100-SXM-80GB"]
SEQ_LEN, GLOBAL_BATCH, TOKENS = 8192, 2048, 15e12

space = spaces.training(MODEL, GPUS, max_gpus=16384, n_gpus=[512, 1024, 2048, 4096, 8192, 16384],
                        global_batch=GLOBAL_BATCH, seq_len=SEQ_LEN)
evaluate = training_objective(MODEL, seq_len=SEQ_LEN, global_batch=GLOBAL_BATCH, tokens=TOKENS)

study = dse.StudySpec(
    name="llm_training",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives={"time_to_train_h": "min", "usd_per_run": "min", "gpus": "min"},
    constraints=evaluate.constraints,
    evaluate=evaluate,
    optimizer="grid",
    show=["gpu", "n_gpus", "tp", "pp", "cp", "vp", "zero_stage", "hybrid_shard", "recompute", "micro_batch",
          "precision", "time_to_train_h", "usd_per_run", "mfu_pct", "mem_per_gpu_gib", "mwh_per_run"],
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
