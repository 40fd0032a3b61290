"""Analytical LLM training model: step time, throughput, MFU, memory per GPU and cost of a training run under
tensor / sequence / context / expert / pipeline / data parallelism, ZeRO and FSDP, activation recompute, low
precision (bf16, fp16, fp8 recipes, mxfp8, nvfp4), offload and LoRA; vectorized like `objectives.inference`.

    from objectives import training
    training.estimate(model="Llama-3.1-70B", gpu="H100-SXM-80GB", n_gpus=1024, tp=8, pp=4, cp=1, ep=1, vp=1,
                      sequence_parallel=True, zero_stage=1, recompute="selective", seq_len=8192, micro_batch=1,
                      global_batch=1024, precision="fp8", offload=None, tokens=15e12)

See `model` for the equations and docs/training.md for the calibration and its errors.
"""
from .factors import FACTORS_FILE, Factors, default_factors, reload_default_factors
from .model import COLUMNS, FINETUNE, OFFLOAD, PRECISIONS, RECOMPUTE, ZERO_STAGES, TrainingError, estimate
from .objective import TrainingObjective, training_objective
from .systems import System, system, systems

__all__ = ["COLUMNS", "FACTORS_FILE", "FINETUNE", "Factors", "OFFLOAD", "PRECISIONS", "RECOMPUTE", "System",
           "TrainingError", "TrainingObjective", "ZERO_STAGES", "default_factors", "estimate",
           "reload_default_factors", "system", "systems", "training_objective"]
