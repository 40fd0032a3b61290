"""`llm_serving_objective`'s ``moe_act_dtype`` knob: from the space or ``defaults=``, into the analytical model and
the simulator, and bad values refused by name."""
from __future__ import annotations

import pandas as pd
import pytest

import dse
import objectives
from objectives import inference

GPT = "gpt-oss-120b"
W = {"concurrency": 32, "input_len": 1024, "output_len": 128, "n_requests": 64}


def cfg(**kw):
    return {"gpu": "B200", "tp": 1, "weight_dtype": "fp4", "kv_dtype": "fp8", "engine": "trtllm",
            "max_batch_size": 64, "max_num_tokens": 8192, "chunked_prefill": True, **kw}


def test_the_knob_reaches_the_analytical_model_and_the_simulator():
    o = objectives.llm_serving_objective(GPT, workload=W)
    out = o(pd.DataFrame([cfg(moe_act_dtype="auto"), cfg(moe_act_dtype="bf16"), cfg(moe_act_dtype=None)]))
    assert (out["fits"] == 1).all()
    assert out["tpot_ms"].iloc[1] > 2.0 * out["tpot_ms"].iloc[0]
    pd.testing.assert_series_equal(out.iloc[2], out.iloc[0], check_names=False)   # missing: the default
    # (at the workload's 32 clients: the closed loop splits the cycle as they do, `estimate.cycle_split`)
    ref = inference.max_throughput(GPT, "B200", weight_dtype="fp4", kv_dtype="fp8", engine="trtllm",
                                   input_len=1024, output_len=128, max_batch_size=32, moe_act_dtype="bf16",
                                   concurrency=32).iloc[0]
    assert ref["moe_act_dtype"] == "bf16" and out["tpot_ms"].iloc[1] == pytest.approx(ref["tpot_ms"])
    # a space without the knob takes defaults=
    d = objectives.llm_serving_objective(GPT, workload=W, defaults={"moe_act_dtype": "bf16"})
    assert d(pd.DataFrame([cfg()]))["tpot_ms"].iloc[0] == pytest.approx(out["tpot_ms"].iloc[1])
    sim = objectives.llm_serving_objective(GPT, workload=W, fidelity="simulated", n_requests=64)
    s = sim(pd.DataFrame([cfg(moe_act_dtype="auto"), cfg(moe_act_dtype="bf16")]))
    assert (s["fits"] == 1).all() and s["tpot_ms"].iloc[1] > 2.0 * s["tpot_ms"].iloc[0]


def test_a_bad_value_is_refused_by_name():
    with pytest.raises(dse.ObjectiveError, match=r"defaults moe_act_dtype='fp8': valid: auto, bf16, mxfp8"):
        objectives.llm_serving_objective(GPT, defaults={"moe_act_dtype": "fp8"})
    o = objectives.llm_serving_objective(GPT, workload=W)
    with pytest.raises(dse.ObjectiveError, match=r"moe_act_dtype='MXFP8' not allowed; valid: auto, bf16, mxfp8"):
        o(pd.DataFrame([cfg(moe_act_dtype="MXFP8")]))
