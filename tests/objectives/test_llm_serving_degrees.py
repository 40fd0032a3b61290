"""`llm_serving_objective` takes whole degrees and batch limits: a fractional `tp` (2.5), `pp`, `attn_dp` or
`max_batch_size`, from the space or from `defaults`, was truncated without a word (tp 2.5 costed as TP 2), and an
`ep` of 0 was reported as the prefill pool's `prefill_ep`. Each is refused naming the knob and the value."""
from __future__ import annotations

import pandas as pd
import pytest

from dse.errors import ObjectiveError
from objectives import llm_serving_objective


@pytest.mark.parametrize("knob,value", [("tp", 2.5), ("pp", 1.5), ("attn_dp", 1.5), ("max_batch_size", 64.7),
                                        ("ep", 0), ("dp", -1)])
def test_a_fractional_or_non_positive_degree_is_refused_naming_the_knob(knob, value):
    # a default every trial lacking the column would fail on: refused when the objective is built
    with pytest.raises(ObjectiveError) as e:
        llm_serving_objective("Qwen3-30B-A3B", defaults={"gpu": "H100", knob: value})
    msg = str(e.value)
    assert msg.startswith(f"defaults {knob}={value!r}: ") and "whole number" in msg, msg
    # the same value in the space's column
    ev = llm_serving_objective("Qwen3-30B-A3B", defaults={"gpu": "H100"})
    with pytest.raises(ObjectiveError, match=f"'{knob}'"):
        ev(pd.DataFrame([{"n_gpus": 2, knob: value}]))


def test_whole_numbers_given_as_floats_or_text_still_run():
    ev = llm_serving_objective("Llama-3.1-8B", defaults={"gpu": "H100"})
    a = ev(pd.DataFrame([{"n_gpus": 2, "tp": 2.0}]))
    b = ev(pd.DataFrame([{"n_gpus": 2, "tp": 2}]))
    assert a["tpot_ms"].iloc[0] == b["tpot_ms"].iloc[0] and bool(a["fits"].iloc[0])


@pytest.mark.parametrize("knob,value,valid", [
    ("engine", "vlm", "valid: vllm, sglang, trtllm"), ("gpu", "H10", "close matches: H100-SXM-80GB"),
    ("prefill_gpu", "B2000", "close matches: B200"), ("weight_dtype", "fp9", "known: fp32, tf32, bf16"),
    ("kv_dtype", "int3", "known: fp32"), ("prefill_kv_dtype", "fp5", "known: fp32"),
    ("batching", "statc", "valid: continuous, static"), ("mode", "aggg", "valid: agg, disagg"),
    ("chunked_prefill", "yes", "must be True or False"), ("prefill_tp", 0, "whole number >= 1")])
def test_a_default_every_trial_would_fail_on_is_refused_when_the_objective_is_built(knob, value, valid):
    """defaults={"engine": "vlm"} (or a GPU, dtype, mode or batching typo) built an objective whose every trial
    failed, each with the same error, and `dse run` printed "1 failed" (chunked_prefill="yes" ran as True): the
    objective refuses it when built, naming the knob, the value and what is valid; good spellings still build."""
    with pytest.raises(ObjectiveError) as e:
        llm_serving_objective("Llama-3.1-8B", defaults={"gpu": "H100", knob: value})
    assert str(e.value).startswith(f"defaults {knob}={value!r}: ") and valid in str(e.value), str(e.value)
    for good in ({"engine": "vllm==0.24.0"}, {"engine": "auto"}, {"engine": None}, {"kv_dtype": None},
                 {"chunked_prefill": False}, {"prefill_tp": None}, {"tp": 2.0}, {"mode": "disagg"}):
        llm_serving_objective("Llama-3.1-8B", defaults={"gpu": "H100", **good})


def test_a_misspelt_workload_field_lists_the_valid_ones():
    """workload={"rat": 1.0} raised Workload's own TypeError ("unexpected keyword argument 'rat'"), which names no
    valid field: the objective lists them."""
    with pytest.raises(ObjectiveError, match=r"workload names unknown field\(s\) \['rat'\]; valid: concurrency, rate, "
                                             r"arrival, cv, input_len, output_len, n_requests, seed"):
        llm_serving_objective("Llama-3.1-8B", workload={"rat": 1.0})
