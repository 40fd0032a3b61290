"""Peak memory against published figures (objectives/data/training/peak_memory.csv: torchtitan's documented
peaks and out-of-memory outcomes; checked, never fitted). docs/training.md lists the row errors."""
from __future__ import annotations

import pandas as pd
import pytest

from objectives.calibration.training import PEAK_MEMORY, memory_check


@pytest.fixture(scope="module")
def mem() -> pd.DataFrame:
    return memory_check()


def test_table_rows_are_sourced_and_well_formed():
    d = pd.read_csv(PEAK_MEMORY)
    assert len(d) >= 15
    assert d["source_url"].str.startswith("https://github.com/pytorch/torchtitan/blob/").all()
    assert set(d["outcome"]) == {"ran", "oom"}
    assert d.loc[d["outcome"] == "oom", "peak_gib"].isna().all()     # an OOM has no peak to report
    assert (d.loc[d["peak_gib"].notna(), "outcome"] == "ran").all()


def test_a_run_that_went_out_of_memory_is_never_predicted_to_fit(mem):
    oom = mem[mem["outcome"] == "oom"]
    assert len(oom) >= 2 and not oom["fits"].any()
    # ... and the layouts that replaced them (full recompute, 2D with TP) fit
    assert mem[(mem["model"] == "Llama-2-70B") & (mem["recompute"] == "full")]["fits"].all()
    assert mem[(mem["model"] == "Llama-3.1-405B") & (mem["tp"] == 8)]["fits"].all()


def test_every_run_that_ran_is_predicted_to_fit(mem):
    # including Llama-2-70B at local batch 1 with op-level selective checkpointing on A100-80GB, which Megatron's
    # selective recompute (stores about twice as much) predicted out of memory
    assert mem.loc[mem["outcome"] == "ran", "fits"].all()


def test_no_run_reported_above_the_gpu_memory_is_predicted_to_fit(mem):
    over = mem[mem["peak_gib"] > mem["gpu_mem_gb"] * 1e9 / 2**30]
    assert not over["fits"].any()


def test_context_parallel_rows_with_equal_tokens_per_gpu_predict_equal_memory(mem):
    # torchtitan: cp 1-8 at 32k tokens per GPU read 83.9-84.5 GiB (within 1 %); the model holds the same tokens
    cp = mem[(mem["recompute"] == "full") & (mem["model"] == "Llama-3.1-8B")]
    assert set(cp["cp"]) == {1, 2, 4, 8}
    assert cp["pred_gib"].max() / cp["pred_gib"].min() - 1 < 0.01
    assert cp["peak_gib"].max() / cp["peak_gib"].min() - 1 < 0.01


def test_reported_peaks_within_10_percent(mem):
    # issue 16's target: peak memory within 10 % where a source reports it. torchtitan reports torch.cuda's peak
    # reserved memory (GiB), compared with the model's memory without its 2 GiB runtime reserve (`pred_gib`)
    rep = mem[mem["peak_gib"].notna()]
    assert len(rep) == 9
    assert rep["err_%"].abs().max() <= 10.0, rep[["model", "n_gpus", "tp", "cp", "recompute", "peak_gib", "pred_gib"]]


def test_torchtitan_selective_rows_use_its_op_level_policy():
    d = pd.read_csv(PEAK_MEMORY)
    assert "selective" not in set(d["recompute"])          # Megatron's selective is a different policy
    assert (d["cross_entropy"] == "eager").all()             # torchtitan's loss_fn: F.cross_entropy(pred.float())
