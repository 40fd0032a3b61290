"""Test-time scaling: accuracy vs cost per solved AIME 2024 problem across model sizes, sample counts, reasoning
budgets and parallel (majority vote, best-of-N with an oracle verifier) vs sequential scaling.

Knobs: model (Qwen3-30B-A3B, Qwen3-32B, Qwen3-235B-A22B, DeepSeek-R1: the catalog models with a published
per-sample AIME success rate), GPU (H100, H200, B200), tensor parallelism 1-8, bf16 or fp8 weights, N parallel
samples (1-64), reasoning budget per sample (2K-32K tokens), mode and the engine's batch limit (sequences in
flight per replica: cost against latency). Quality: objectives.test_time (published
per-sample success, problem-difficulty spread fitted to published pass@1 / cons@64 pairs, the published
thinking-budget curve; every figure in objectives/data/accuracy.json with its source). Cost: the deployment at
its best steady-state throughput (inference.max_throughput), the prompt's KV shared by the N samples.
Objectives: expected accuracy (max), USD per solved problem (min), latency per problem (min). The grid covers
all 40,320 configurations in seconds; the ``after`` step prints, per model, the cheapest way to reach
each accuracy level.

    dse run studies/test_time_scaling.py
"""
import numpy as np
import pandas as pd

import dse
from dse import Categorical
from objectives import test_time

TASK = "AIME-2024"
MODELS = ["Qwen3-30B-A3B", "Qwen3-32B", "Qwen3-235B-A22B", "DeepSeek-R1"]
PROMPT_LEN = 256   # tokens: an AIME problem statement with its instruction

space = dse.Space(
    model=Categorical(MODELS),
    gpu=Categorical(["H100-SXM-80GB", "H200-SXM-141GB", "B200"]),
    tp=Categorical([1, 2, 4, 8]),
    weight_dtype=Categorical(["bf16", "fp8"]),
    n_samples=Categorical([1, 2, 4, 8, 16, 32, 64]),
    budget=Categorical([2048, 4096, 8192, 16384, 32768]),
    mode=Categorical(list(test_time.MODES)),
    max_batch_size=Categorical([16, 64, 256, 2048]),
)


@dse.vectorized(name="objectives.test_time.evaluate", version="1")
def evaluate(cfg: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, USD per solved problem and latency of every configuration (objectives.test_time.evaluate)."""
    df = test_time.evaluate(model=cfg["model"].to_numpy(), task=TASK, gpu=cfg["gpu"].to_numpy(),
                            tp=cfg["tp"].to_numpy(), weight_dtype=cfg["weight_dtype"].to_numpy(),
                            n_samples=cfg["n_samples"].to_numpy(), budget=cfg["budget"].to_numpy(),
                            mode=cfg["mode"].to_numpy(), prompt_len=PROMPT_LEN,
                            max_batch_size=cfg["max_batch_size"].to_numpy())
    fits = df["fits"].to_numpy(bool)
    out = df[["accuracy", "usd_per_problem", "usd_per_solved", "latency_s", "joules_per_problem", "output_tokens",
              "batch_size"]].astype(float)
    # configurations that do not fit keep finite placeholders and fail the constraint
    for c in ("usd_per_problem", "usd_per_solved", "latency_s", "joules_per_problem", "batch_size"):
        out[c] = np.where(fits & np.isfinite(out[c]), out[c], 0.0)
    out["fits"] = fits.astype(float)
    return out.reset_index(drop=True)


def cheapest_per_accuracy(study) -> None:
    """Per model: the cheapest feasible configuration reaching each accuracy level (USD per solved problem)."""
    res = study.results()
    ok = res[(res["state"] == "complete") & res["feasible"].astype(bool)]
    rows = []
    for model, g in ok.groupby("model", observed=True):
        for level in (0.7, 0.8, 0.85, 0.9, 0.93):
            hit = g[g["accuracy"] >= level]
            if hit.empty:
                continue
            r = hit.loc[hit["usd_per_solved"].idxmin()]
            rows.append({"model": model, "accuracy >=": level, "gpu": r["gpu"], "tp": int(r["tp"]),
                         "weights": r["weight_dtype"], "mode": r["mode"], "N": int(r["n_samples"]),
                         "budget": int(r["budget"]), "max_batch": int(r["max_batch_size"]), "accuracy": r["accuracy"],
                         "usd_per_solved": r["usd_per_solved"], "latency_s": r["latency_s"]})
    if not rows:
        print("no feasible configuration")
        return
    print(f"cheapest configuration per model reaching each accuracy level ({TASK}):")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4g"))


study = dse.StudySpec(
    name="test_time_scaling",
    description=__doc__.strip().splitlines()[0],
    space=space,
    objectives={"accuracy": "max", "usd_per_solved": "min", "latency_s": "min"},
    constraints={"fits": (">=", 1.0)},
    evaluate=evaluate,
    optimizer="grid",
    show=["model", "gpu", "tp", "weight_dtype", "mode", "n_samples", "budget", "max_batch_size", "accuracy",
          "usd_per_solved", "latency_s"],
    after=cheapest_per_accuracy,
)

if __name__ == "__main__":
    import sys

    from dse.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
