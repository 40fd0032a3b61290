"""`llm_serving_objective`'s ``moe_a2a`` knob: from the space or ``defaults=``, into the analytical model and the
simulator, rows no engine runs unfit with the reason, and bad values refused by name."""
from __future__ import annotations

import pandas as pd
import pytest

import dse
import objectives
from objectives import inference
from objectives.inference.resolve import R_MOE_A2A, REASONS

DSV3 = "DeepSeek-V3"
W = {"concurrency": 64, "input_len": 2048, "output_len": 128, "n_requests": 64}


def cfg(**kw):
    return {"gpu": "H200-SXM-141GB", "tp": 1, "attn_dp": 8, "ep": 8, "weight_dtype": "fp8", "kv_dtype": "fp8",
            "engine": "sglang", "max_batch_size": 64, "max_num_tokens": 8192, "chunked_prefill": True, **kw}


def test_the_knob_reaches_the_analytical_model_and_the_simulator():
    o = objectives.llm_serving_objective(DSV3, workload=W)
    out = o(pd.DataFrame([cfg(moe_a2a="auto"), cfg(moe_a2a="deepep"), cfg(moe_a2a=None)]))
    assert (out["fits"] == 1).all()
    # DeepEP's cheaper dispatch (0.80x the TTFT; 0.62x when the own iteration held every rank's prompt chunk at
    # the experts, before `estimate.lockstep_round_s`)
    assert out["ttft_ms"].iloc[1] < 0.85 * out["ttft_ms"].iloc[0]
    pd.testing.assert_series_equal(out.iloc[2], out.iloc[0], check_names=False)   # missing: the default
    ref = inference.max_throughput(DSV3, "H200-SXM-141GB", tp=1, attn_dp=8, ep=8, weight_dtype="fp8",
                                   kv_dtype="fp8", engine="sglang", input_len=2048, output_len=128,
                                   max_batch_size=8, moe_a2a="deepep").iloc[0]
    assert ref["moe_a2a"] == "deepep" and out["tpot_ms"].iloc[1] == pytest.approx(ref["tpot_ms"], rel=0.05)
    # a space without the knob takes defaults=
    d = objectives.llm_serving_objective(DSV3, workload=W, defaults={"moe_a2a": "deepep"})
    assert d(pd.DataFrame([cfg()]))["ttft_ms"].iloc[0] == pytest.approx(out["ttft_ms"].iloc[1])
    sim = objectives.llm_serving_objective(DSV3, workload=W, fidelity="simulated", n_requests=64)
    s = sim(pd.DataFrame([cfg(moe_a2a="auto"), cfg(moe_a2a="deepep")]))
    assert (s["fits"] == 1).all() and s["ttft_ms"].iloc[1] < s["ttft_ms"].iloc[0]


def test_rows_it_cannot_run_are_unfit_and_bad_values_refused_by_name():
    o = objectives.llm_serving_objective(DSV3, workload=W)
    out = o(pd.DataFrame([cfg(engine="trtllm", moe_a2a="deepep"), cfg(tp=8, attn_dp=1, moe_a2a="allgather")]))
    assert (out["fits"] == 0).all()
    with pytest.raises(dse.ObjectiveError, match=r"defaults moe_a2a='pplx': valid: auto, allgather, deepep"):
        objectives.llm_serving_objective(DSV3, defaults={"moe_a2a": "pplx"})
    with pytest.raises(dse.ObjectiveError, match=r"moe_a2a='DeepEP' not allowed; valid: auto, allgather, deepep"):
        o(pd.DataFrame([cfg(moe_a2a="DeepEP")]))
    assert "moe_a2a" in REASONS[R_MOE_A2A]
