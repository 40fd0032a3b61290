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
    ev = llm_serving_objective("Qwen3-30B-A3B", defaults={"gpu": "H100", knob: value})
    with pytest.raises(ObjectiveError) as e:
        ev(pd.DataFrame([{"n_gpus": 2}]))
    msg = str(e.value)
    assert f"{knob!r}" in msg and repr(value) in msg and "whole number" in msg, msg
    # the same value in the space's column
    ev = llm_serving_objective("Qwen3-30B-A3B", defaults={"gpu": "H100"})
    with pytest.raises(ObjectiveError, match=f"'{knob}'"):
        ev(pd.DataFrame([{"n_gpus": 2, knob: value}]))


def test_whole_numbers_given_as_floats_or_text_still_run():
    ev = llm_serving_objective("Llama-3.1-8B", defaults={"gpu": "H100"})
    a = ev(pd.DataFrame([{"n_gpus": 2, "tp": 2.0}]))
    b = ev(pd.DataFrame([{"n_gpus": 2, "tp": 2}]))
    assert a["tpot_ms"].iloc[0] == b["tpot_ms"].iloc[0] and bool(a["fits"].iloc[0])
