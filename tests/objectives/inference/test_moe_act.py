"""The MXFP4 experts' activation knob (`moe_act_dtype`): its validation, the fused-MoE table each engine reads with
each value, the rows it cannot run, and its path through max_throughput, StepModel and the serving models."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import inference, profiles, serving
from objectives.inference.measured import MOE_ACT_DTYPES, moe_act
from objectives.inference.resolve import R_MOE_ACT, R_MX_ACT, REASONS, moe_act_codes
from objectives.serving.analytical import Deployments

GPT = "gpt-oss-120b"      # MXFP4 experts (128 of them, top-4), hidden 2880
ENGINES = ("vllm", "sglang", "trtllm")
BATCH = [1, 16, 64, 256]


def _est(gpu: str = "B200", **kw) -> pd.DataFrame:
    return inference.estimate(GPT, gpu, batch_size=BATCH, input_len=1024, output_len=1024, **kw)


def test_the_knob_takes_its_names_and_names_anything_else():
    assert moe_act_codes(None) == 0 and moe_act_codes("auto") == 0
    assert moe_act_codes("bf16") == 1 and moe_act_codes("mxfp8") == 2
    assert moe_act_codes(["mxfp8", None, "bf16"]).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"unknown moe_act_dtype 'fp8'; known: auto, bf16, mxfp8"):
        _est(moe_act_dtype="fp8")
    with pytest.raises(ValueError, match=r"unknown moe_act_dtype 'MXFP8' in .*; known: auto, bf16, mxfp8"):
        _est(moe_act_dtype=["auto", "MXFP8"])
    with pytest.raises(TypeError, match=r"moe_act_dtype must be one of auto, bf16, mxfp8"):
        _est(moe_act_dtype=8)


@pytest.mark.parametrize("engine", ENGINES)
def test_none_and_auto_are_the_default_bit_for_bit(engine):
    base = _est(engine=engine)
    for v in (None, "auto"):
        pd.testing.assert_frame_equal(_est(engine=engine, moe_act_dtype=v), base, check_exact=True)
    # the result names what the experts run ("auto" resolved by `moe_act`: MXFP8 where it is the engine's B200
    # default, TensorRT-LLM's and SGLang's; vLLM's MXFP4 x BF16), not the knob ("auto" told nothing)
    assert (base["moe_act_dtype"] == {"vllm": "bf16", "sglang": "mxfp8", "trtllm": "mxfp8"}[engine]).all()


def test_the_result_names_the_activations_the_experts_run():
    """estimate's moe_act_dtype column said "auto" for gpt-oss wherever the knob was left alone, though the rule
    (`measured.moe_act`) knows what each engine runs: the column shows it, on Hopper 16-bit for every engine;
    experts that are not MXFP4 keep "auto" (the knob is inert there)."""
    h = inference.estimate(GPT, [["H100"], ["B200"]], engine=["vllm", "trtllm", "roofline"], batch_size=8)
    want = {("H100-SXM-80GB", "vllm"): "bf16", ("H100-SXM-80GB", "trtllm"): "bf16",
            ("H100-SXM-80GB", "roofline"): "bf16", ("B200", "vllm"): "bf16", ("B200", "trtllm"): "mxfp8",
            ("B200", "roofline"): "mxfp8"}
    assert {(g, e): a for g, e, a in zip(h["gpu"], h["engine"], h["moe_act_dtype"])} == want
    assert inference.estimate("Llama-3.1-8B", "B200", batch_size=8)["moe_act_dtype"].tolist() == ["auto"]


def test_tensorrt_llm_with_16_bit_activations_reads_its_slower_w4a16_kernel():
    """TensorRT-LLM's Blackwell default is W4A8_MXFP4_MXFP8; OVERRIDE_QUANT_ALGO=W4A16_MXFP4 runs the kernel its
    `w4a16_mxfp4` table times, 2.4-3.3x slower at decode sizes."""
    auto, bf16, mx8 = (_est(engine="trtllm", moe_act_dtype=v) for v in (None, "bf16", "mxfp8"))
    assert (bf16["moe_act_dtype"] == "bf16").all() and (mx8["moe_act_dtype"] == "mxfp8").all()
    np.testing.assert_array_equal(mx8["tpot_ms"], auto["tpot_ms"])          # mxfp8 is its default
    ratio = bf16["tpot_ms"].to_numpy() / auto["tpot_ms"].to_numpy()
    assert ratio[0] > 1.2 and (ratio[1:] > 2.0).all()
    assert (bf16["ttft_ms"].to_numpy() > 2.0 * auto["ttft_ms"].to_numpy()).all()


def test_vllm_with_mxfp8_reads_the_flashinfer_kernel_sglang_times_by_default():
    """vLLM's default is MXFP4 x BF16; VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1 runs FlashInfer's TRTLLM-gen MXFP8
    kernel, the one SGLang runs by default (its B200 rows lent at gpt-oss's shape, `profiles.build.BORROWED_MOE`)."""
    auto, bf16, mx8 = (_est(engine="vllm", moe_act_dtype=v) for v in (None, "bf16", "mxfp8"))
    np.testing.assert_array_equal(bf16["tpot_ms"], auto["tpot_ms"])         # bf16 is its default
    assert (mx8["tpot_ms"].to_numpy()[1:] < 0.9 * auto["tpot_ms"].to_numpy()[1:]).all()
    assert (mx8["ttft_ms"].to_numpy()[1:] < 0.5 * auto["ttft_ms"].to_numpy()[1:]).all()
    # ... and SGLang with 16-bit activations reads its own bf16 lane, the kernel vLLM runs by default (from 16
    # sequences on: at one, the step is host time, which each engine's fitted launch time prices its own way)
    sgl_bf16 = _est(engine="sglang", moe_act_dtype="bf16")
    np.testing.assert_allclose(sgl_bf16["tpot_ms"][1:], auto["tpot_ms"][1:], rtol=0.06)
    np.testing.assert_allclose(mx8["tpot_ms"][1:], _est(engine="sglang")["tpot_ms"][1:], rtol=0.06)


def test_vllm_profile_lends_sglangs_mxfp8_rows_only_at_shapes_its_own_lane_lacks():
    v, s = profiles.load("B200", "vllm"), profiles.load("B200", "sglang")
    t, tok = "moe.w4a8_mxfp4_mxfp8", np.array([1.0, 16.0, 256.0, 4096.0])

    def curve(prof, shape):
        i = prof.shape_index(t, np.array([shape], dtype=float))[0]
        assert i > 0, (prof.key, shape)
        return prof.table(t)(np.full(len(tok), float(i)), tok)
    for shape in ([2880, 2880, 4, 128, 1, 1], [2880, 2880, 4, 128, 1, 8], [2880, 2880, 4, 32, 2, 1]):
        np.testing.assert_array_equal(curve(v, shape), curve(s, shape))    # gpt-oss: SGLang's lane, as measured
    # DeepSeek-V4-Flash's shape: vLLM's own MXFP8 lane, not SGLang's
    assert not np.allclose(curve(v, [4096, 2048, 6, 256, 1, 1]), curve(s, [4096, 2048, 6, 256, 1, 1]), rtol=0.005)


def test_mxfp8_is_a_reason_where_no_engine_has_the_kernel_and_the_knob_is_inert_elsewhere():
    h = inference.estimate(GPT, "H200", engine="sglang", moe_act_dtype=["auto", "bf16", "mxfp8"])
    assert h["fits"].tolist() == [True, True, False]
    assert h["reason"].tolist()[2] == REASONS[R_MOE_ACT] and "mxfp8" in REASONS[R_MOE_ACT]
    assert h["tpot_ms"].iloc[1] == h["tpot_ms"].iloc[0]                     # bf16 is every Hopper default
    # experts that are not MXFP4 (a dense model, an FP8 MoE, gpt-oss served at 16-bit weights) ignore it
    # (the block-FP8 MoE at EP 8: its 1536-wide experts split over TP 8 are off the 128 block, R_BLOCK)
    for model, gpu, w, ep in (("Llama-3.1-8B", "H200", None, 1), ("Qwen/Qwen3-235B-A22B-FP8", "B200", None, 8),
                              (GPT, "B200", "bf16", 1)):
        r = inference.estimate(model, gpu, tp=8, ep=ep, weight_dtype=w, engine="trtllm",
                               moe_act_dtype=["auto", "bf16", "mxfp8"])
        assert r["fits"].all() and (r["moe_act_dtype"] == "auto").all()
        assert r["tpot_ms"].nunique() == 1 and r["ttft_ms"].nunique() == 1


def test_the_default_rule_per_engine_and_gpu_family():
    assert moe_act("trtllm", "blackwell", "fp4", "fp4", True) == "fp8"
    assert moe_act("sglang==0.5.14", "blackwell-ultra", "fp4", "bf16", True) == "fp8"
    assert moe_act("vllm", "blackwell", "fp4", "fp4", True) == "bf16"
    assert moe_act("trtllm", "hopper", "fp4", "bf16", True) == "bf16"
    assert moe_act("vllm", "blackwell", "fp4", "fp4", True, "mxfp8") == "fp8"
    assert moe_act("trtllm", "blackwell", "fp4", "fp4", True, "bf16") == "bf16"
    assert moe_act("trtllm", "blackwell", "fp4", "fp4", False, "bf16") == "fp4"     # NVFP4 experts: ignored
    assert MOE_ACT_DTYPES == ("auto", "bf16", "mxfp8")
    # the closed form's "auto": what most serving engines run (SM100 / SM103: TensorRT-LLM and SGLang's MXFP8; the
    # RTX PRO 6000: Marlin bf16 under SGLang and vLLM); no MXFP8 kernel on Hopper
    assert moe_act("roofline", "blackwell", "fp4", "bf16", True) == "fp8"
    assert moe_act("roofline", "blackwell-ultra", "fp4", "bf16", True) == "fp8"
    assert moe_act("roofline", "blackwell-rtx", "fp4", "bf16", True) == "bf16"
    assert moe_act("roofline", "hopper", "fp4", "bf16", True) == "bf16"
    assert moe_act("roofline", "blackwell", "fp4", "bf16", True, "bf16") == "bf16"


def test_max_throughput_step_model_and_serving_models_carry_it():
    kw = dict(input_len=1024, output_len=1024, engine="trtllm", max_batch_size=64)
    a, b = (inference.max_throughput(GPT, "B200", moe_act_dtype=v, **kw) for v in (None, "bf16"))
    assert float(b["throughput_tok_s"].iloc[0]) < 0.6 * float(a["throughput_tok_s"].iloc[0])
    s0, s1 = (inference.StepModel(GPT, "B200", engine="trtllm", moe_act_dtype=v) for v in (None, "bf16"))
    assert s1.time_ms(0, 0, 64, 64 * 2048) > 2.0 * s0.time_ms(0, 0, 64, 64 * 2048)
    with pytest.raises(ValueError, match=r"moe_act_dtype='mxfp8': no engine runs MXFP4 experts"):
        inference.StepModel(GPT, "H200", engine="vllm", moe_act_dtype="mxfp8")
    w = serving.Workload(concurrency=16, input_len=1024, output_len=256, n_requests=48)
    m0, m1 = (serving.simulate(GPT, "B200", workload=w, engine="trtllm", moe_act_dtype=v) for v in (None, "bf16"))
    assert m1["tpot_ms_mean"] > 2.0 * m0["tpot_ms_mean"]
    sm = serving.ServingModel(GPT, w)
    d = Deployments.of(gpu="B200", weight_dtype="fp4", engine="trtllm", moe_act_dtype=["auto", "bf16", None])
    assert d.moe_act_dtype.tolist() == ["auto", "bf16", "auto"]
    e = sm.evaluate(d)
    assert e["tpot_ms"].iloc[1] > 2.0 * e["tpot_ms"].iloc[0] and e["tpot_ms"].iloc[2] == e["tpot_ms"].iloc[0]
    with pytest.raises(ValueError, match=r"moe_act_dtype='fp8' not allowed; valid: auto, bf16, mxfp8"):
        Deployments.of(gpu="B200", moe_act_dtype="fp8")


@pytest.mark.parametrize("engine", ENGINES + ("roofline",))
def test_an_mxfp4_checkpoint_computes_its_other_layers_in_16_bit_and_refuses_another_act_dtype(engine):
    # gpt-oss quantizes only its experts: the engines run its attention, router and head unquantized (vLLM
    # Mxfp4Config: LinearBase -> UnquantizedLinearMethod) and its experts by moe_act_dtype. The row's act_dtype
    # says bf16 (it said fp4 on Blackwell), prices as an explicit bf16, and an fp8 / fp4 asked for is refused
    # (it was priced as the default, the choice silently ignored)
    r = inference.estimate(GPT, "B200", tp=1, batch_size=32, input_len=1024, output_len=1024, engine=engine,
                           act_dtype=[None, "bf16", "fp8", "fp4"])
    assert r["act_dtype"].tolist()[:2] == ["bf16", "bf16"] and r["fits"].tolist() == [True, True, False, False]
    assert r["ttft_ms"].iloc[0] == r["ttft_ms"].iloc[1] and r["tpot_ms"].iloc[0] == r["tpot_ms"].iloc[1]
    assert (r["reason"].iloc[2:] == REASONS[R_MX_ACT]).all() and "moe_act_dtype" in REASONS[R_MX_ACT]
    # the same checkpoint at 16-bit weights (no MXFP4 experts) and an NVFP4 checkpoint keep their act_dtype rule
    assert inference.estimate(GPT, "B200", tp=4, weight_dtype="bf16", act_dtype="fp8", engine=engine)["fits"].all()
    nv = inference.estimate("nvidia/DeepSeek-R1-0528-FP4", "B200", tp=8, engine=engine)
    assert nv["act_dtype"].iloc[0] == "fp4"


K3 = "Kimi-K3"  # MXFP4 routed experts only; attention, shared experts, dense MLP, routers, latent projections BF16
K3_RUN = dict(tp=8, input_len=8000, output_len=1000, batch_size=64)


def _moe_ms(model: str, engine: str, **kw) -> dict[str, float]:
    r = inference.breakdown(model, "B200", engine=engine, **K3_RUN, **kw)
    return dict(zip(r["phase"], r["moe"].astype(float), strict=True))


def test_mxfp4_experts_without_a_fused_moe_table_read_the_moe_activations_gemm_table():
    # TensorRT-LLM's B200 profile has no fused-MoE table at Kimi-K3's shape: the routed experts fall back to grouped
    # GEMMs, which read the GEMM table of the MoE activations (MXFP8: gemm.fp8 at MXFP4 bytes; bf16: gemm.bf16 with
    # the in-loop conversion), not the other layers' (all three read gemm.bf16 before, identical)
    r = inference.breakdown(K3, "B200", engine="trtllm", **K3_RUN)
    assert (r["source"] == "extrapolated").all()
    auto, bf16, mxfp8 = (_moe_ms(K3, "trtllm", moe_act_dtype=v) for v in ("auto", "bf16", "mxfp8"))
    assert auto == mxfp8                                       # TensorRT-LLM's Blackwell default: W4A8_MXFP4_MXFP8
    assert mxfp8["prefill"] < 0.7 * bf16["prefill"]
    assert mxfp8["decode"] <= bf16["decode"] * (1 + 1e-9)    # decode streams the same MXFP4 bytes


def test_an_experts_only_mxfp4_checkpoints_other_layers_stream_16_bit_bytes():
    from objectives import catalog
    from objectives.inference import core, memory
    from objectives.inference.resolve import expert_slots
    p = core.prepare(K3, "B200", tp=8, engine="trtllm")
    lc = p.lc
    # memory: every non-expert weight (latent projections and routers too) at 2 bytes, the experts at MXFP4's 0.5
    want = memory.weights_bytes_gpu(lc, expert_slots(p.shape.n_experts, p.ep), 0.5, 1.0, lc.dense_params, 2.0)
    np.testing.assert_allclose(p.weights_gpu, want, rtol=1e-12)
    # decode GEMMs: no faster than their 16-bit weights stream (the shared experts overlap the routed ones there)
    bw = catalog.gpu("B200").mem_bw_tbs * 1e12
    floor_ms = float(np.ravel((lc.dense_params - lc.shared_params) * 2.0 / bw * 1e3)[0])
    r = inference.breakdown(K3, "B200", engine="trtllm", **K3_RUN)
    assert float(r.loc[r["phase"] == "decode", "gemm"].iloc[0]) >= 0.95 * floor_ms


def test_the_closed_form_prices_mxfp4_experts_at_the_moe_activations_peak():
    # the roofline never saw moe_act_dtype: with the rows' act bf16 its experts sat at the bf16 peak whatever asked
    auto, bf16, mxfp8 = (_moe_ms(GPT, "roofline", moe_act_dtype=v) for v in ("auto", "bf16", "mxfp8"))
    assert auto == mxfp8 and mxfp8["prefill"] < 0.7 * bf16["prefill"]
    r = inference.estimate(GPT, "H100", tp=8, engine="roofline", moe_act_dtype=["auto", "bf16"])
    assert r["ttft_ms"].iloc[0] == r["ttft_ms"].iloc[1]      # Hopper (no MXFP8 MoE kernel): "auto" is bf16
