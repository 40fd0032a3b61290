"""The EP token-exchange knob (`moe_a2a`): "auto" is what each engine launches without a flag (vLLM and SGLang:
all-gather), "allgather" and "deepep" move the price the way their kernels move the work, the rows no engine runs
are refused by name, and the knob reaches max_throughput, StepModel, the analytical serving model and the
simulator."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import inference, serving
from objectives.inference.measured import MOE_A2A, MOE_A2A_AUTO, MOE_A2A_ENGINES
from objectives.inference.resolve import R_MOE_A2A, R_OK, REASONS, moe_a2a_codes, moe_a2a_invalid
from objectives.serving.analytical import Deployments

DSV3 = "DeepSeek-V3"          # 256 experts, top-8
QWEN = "Qwen3-235B-A22B"      # 128 experts, top-8
BATCH = [8, 64]


def _est(model: str = DSV3, gpu: str = "GB200", tp: int = 1, attn_dp: int = 32, ep: int = 32,
         engine: str = "vllm", **kw) -> pd.DataFrame:
    return inference.estimate(model, gpu, tp=tp, attn_dp=attn_dp, ep=ep, weight_dtype="fp8", engine=engine,
                              batch_size=BATCH, input_len=2048, output_len=256, **kw)


def test_the_knob_takes_its_names_and_names_anything_else():
    assert MOE_A2A == ("auto", "allgather", "deepep")
    assert moe_a2a_codes(None) == 0 and moe_a2a_codes("auto") == 0 and moe_a2a_codes("deepep") == 2
    assert moe_a2a_codes(["deepep", None, "allgather"]).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"unknown moe_a2a 'pplx'; known: auto, allgather, deepep"):
        _est(moe_a2a="pplx")
    with pytest.raises(TypeError, match=r"moe_a2a must be one of auto, allgather, deepep"):
        _est(moe_a2a=2)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_none_and_auto_are_the_default_bit_for_bit(engine):
    base = _est(gpu="H200-SXM-141GB", attn_dp=8, ep=8, engine=engine)
    for v in (None, "auto"):
        pd.testing.assert_frame_equal(_est(gpu="H200-SXM-141GB", attn_dp=8, ep=8, engine=engine, moe_a2a=v), base,
                                      check_exact=True)
    assert (base["moe_a2a"] == "auto").all()


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("model", [DSV3, QWEN])
def test_deepep_on_dispatched_tokens_is_cheaper_than_all_gather_at_wide_ep_with_few_tokens_per_rank(model, engine):
    """GB200 NVL72, EP 32 over 32 attention-DP ranks, 8 / 64 sequences per rank: the all-gather path ships every
    rank's tokens to all 32 and its experts work over all of them; DeepEP sends each token to its top-8 ranks and the
    experts see only those. Both the prompt (TTFT) and the decode step (TPOT) come out cheaper, and the experts on
    dispatched tokens are cheaper than the engine's default (all-gather, all-token tables)."""
    ag, dep, auto = (_est(model, engine=engine, moe_a2a=v) for v in ("allgather", "deepep", "auto"))
    assert dep["fits"].all() and ag["fits"].all()
    assert (dep["tpot_ms"] < ag["tpot_ms"]).all() and (dep["ttft_ms"] < ag["ttft_ms"]).all()
    assert (dep["ttft_ms"] < 0.6 * auto["ttft_ms"]).all()
    assert (dep["moe_a2a"] == "deepep").all() and (ag["moe_a2a"] == "allgather").all()
    assert (dep["source"] == "extrapolated").all()   # the experts read at a smaller EP size than their own


def test_allgather_matches_tensorrt_llms_own_rule_up_to_top_k_and_costs_more_beyond():
    """TensorRT-LLM gathers the tokens for EP groups no larger than top-k already ("auto" == "allgather" there);
    forced beyond (EP 32 > top-8), the gather of 32 ranks' prompts costs more than the all-to-all it replaces, and so
    does a decode step of 64 sequences a rank (at 8 a rank NCCL's all-to-all over 32 ranks is latency-bound and the
    two are within a few %)."""
    small = [_est(gpu="H200-SXM-141GB", attn_dp=8, ep=8, engine="trtllm", moe_a2a=v) for v in ("auto", "allgather")]
    pd.testing.assert_series_equal(small[0]["ttft_ms"], small[1]["ttft_ms"], check_exact=True)
    pd.testing.assert_series_equal(small[0]["tpot_ms"], small[1]["tpot_ms"], check_exact=True)
    auto, ag = (_est(engine="trtllm", moe_a2a=v) for v in ("auto", "allgather"))
    assert (ag["ttft_ms"] > 1.2 * auto["ttft_ms"]).all() and ag["tpot_ms"].iloc[1] > 1.1 * auto["tpot_ms"].iloc[1]
    assert ag["tpot_ms"].iloc[0] == pytest.approx(auto["tpot_ms"].iloc[0], rel=0.05)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("gpu, attn_dp", [("H200-SXM-141GB", 8), ("GB200", 32)])
def test_auto_prices_what_vllm_and_sglang_launch_without_a_flag_the_all_gather(engine, gpu, attn_dp):
    """vLLM's all2all_backend and SGLang's moe_a2a_backend default to all-gather + reduce-scatter ("none" under DP
    attention), which `dse deploy` launches for "auto" (no flag): "auto" is "allgather" bit for bit there, and
    DeepEP (its tables, the experts on dispatched tokens) is a different price, only on request."""
    auto, ag, dep = (_est(gpu=gpu, attn_dp=attn_dp, ep=attn_dp, engine=engine, moe_a2a=v)
                     for v in ("auto", "allgather", "deepep"))
    for col in ("ttft_ms", "tpot_ms"):
        pd.testing.assert_series_equal(auto[col], ag[col], check_exact=True)
        assert not np.allclose(auto[col], dep[col], rtol=1e-3)
    assert MOE_A2A_AUTO == {"vllm": "allgather", "sglang": "allgather"}
    parts = inference.breakdown(DSV3, gpu, tp=1, attn_dp=attn_dp, ep=attn_dp, weight_dtype="fp8", engine=engine,
                                batch_size=64, input_len=2048, output_len=256)
    ag_parts = inference.breakdown(DSV3, gpu, tp=1, attn_dp=attn_dp, ep=attn_dp, weight_dtype="fp8",
                                   engine=engine, batch_size=64, input_len=2048, output_len=256, moe_a2a="allgather")
    np.testing.assert_array_equal(parts["comm_ep"].to_numpy(), ag_parts["comm_ep"].to_numpy())


@pytest.mark.parametrize("model, tp, attn_dp, ep, engine, value", [
    ("Llama-3.1-70B", 1, 8, 1, "vllm", "deepep"),          # dense
    (DSV3, 1, 8, 1, "vllm", "allgather"),                  # EP 1
    (DSV3, 8, 1, 8, "sglang", "deepep"),                   # EP inside TP: every rank holds every token
    (DSV3, 1, 8, 8, "trtllm", "deepep"),                   # not in TensorRT-LLM's recorded options
    (DSV3, 1, 8, 8, "roofline", "allgather"),              # the closed form has no engine to launch
])
def test_rows_no_engine_runs_are_refused_with_a_reason(model, tp, attn_dp, ep, engine, value):
    r = inference.estimate(model, "H200-SXM-141GB", tp=tp, attn_dp=attn_dp, ep=ep, engine=engine, batch_size=8,
                           input_len=1024, output_len=128, moe_a2a=[value, "auto"])
    assert not r["fits"].iloc[0] and r["reason"].iloc[0] == REASONS[R_MOE_A2A]
    assert r["moe_a2a"].iloc[0] == value and r["reason"].iloc[1] != REASONS[R_MOE_A2A]
    assert "moe_a2a 'allgather' / 'deepep'" in REASONS[R_MOE_A2A] and "TensorRT-LLM 'allgather' only" in \
        REASONS[R_MOE_A2A]
    with pytest.raises(ValueError, match=rf"moe_a2a='{value}' not valid here; moe_a2a 'allgather' / 'deepep' needs"):
        inference.StepModel(model, "H200-SXM-141GB", tp=tp, attn_dp=attn_dp, ep=ep, engine=engine, moe_a2a=value)


def test_the_rule_is_one_vectorized_function_over_engines_and_layouts():
    bad = moe_a2a_invalid(np.array([1, 2, 2, 2, 0, 2]), np.array(["vllm", "trtllm", "sglang", "SGLang", "roofline",
                                                                   "vllm"], dtype=object),
                          np.array([256, 256, 256, 256, 256, 0]), 1, 8, 8)
    assert bad.tolist() == [False, True, False, False, False, True]
    assert set(MOE_A2A_ENGINES) == {"vllm", "sglang", "trtllm"}
    # EP that does not divide tp (attn_dp 1) spans ranks that hold other tokens too
    assert not moe_a2a_invalid("deepep", "sglang", 256, 4, 1, 8) and moe_a2a_invalid("deepep", "sglang", 256, 8, 1, 8)


def test_an_array_of_values_prices_each_row_as_its_own_call():
    mixed = _est(gpu="H200-SXM-141GB", attn_dp=8, ep=8, moe_a2a=np.array(["deepep", "allgather"])[:, None])
    for i, v in enumerate(("deepep", "allgather")):
        one = _est(gpu="H200-SXM-141GB", attn_dp=8, ep=8, moe_a2a=v)
        np.testing.assert_array_equal(mixed["tpot_ms"].to_numpy()[2 * i:2 * i + 2], one["tpot_ms"].to_numpy())


def test_max_throughput_step_model_and_the_serving_models_take_it():
    kw = dict(tp=1, attn_dp=8, ep=8, weight_dtype="fp8", engine="sglang")
    mt = {v: inference.max_throughput(DSV3, "H200-SXM-141GB", input_len=2048, output_len=512, concurrency=64,
                                      moe_a2a=v, **kw).iloc[0] for v in ("auto", "deepep")}
    assert mt["deepep"]["moe_a2a"] == "deepep" and mt["deepep"]["ttft_ms"] < mt["auto"]["ttft_ms"]
    sm = {v: inference.StepModel(DSV3, "H200-SXM-141GB", moe_a2a=v, **kw) for v in ("auto", "deepep")}
    assert sm["deepep"].time_ms(8192, 8192 * 4096, 0, 0) < sm["auto"].time_ms(8192, 8192 * 4096, 0, 0)
    d = Deployments.of(gpu="H200-SXM-141GB", tp=1, attn_dp=8, ep=8, weight_dtype="fp8", engine="sglang",
                       moe_a2a=["auto", "deepep", None])
    assert d.moe_a2a.tolist() == ["auto", "deepep", "auto"]
    with pytest.raises(ValueError, match=r"moe_a2a='pplx' not allowed; valid: auto, allgather, deepep"):
        Deployments.of(gpu="H200-SXM-141GB", moe_a2a="pplx")
    w = serving.Workload(concurrency=16, input_len=1024, output_len=64, n_requests=32)
    sim = {v: serving.simulate(DSV3, "H200-SXM-141GB", 1, weight_dtype="fp8", engine="sglang", ep=8, attn_dp=8,
                               workload=w, moe_a2a=v) for v in ("auto", "deepep")}
    assert sim["deepep"]["ttft_ms_mean"] < sim["auto"]["ttft_ms_mean"]
    with pytest.raises(ValueError, match=r"moe_a2a='deepep' not valid here"):
        serving.simulate(DSV3, "H200-SXM-141GB", 8, weight_dtype="fp8", engine="sglang", ep=8, workload=w,
                         moe_a2a="deepep")
    assert R_OK == 0
