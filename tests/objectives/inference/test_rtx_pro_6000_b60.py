"""The RTX PRO 6000 Blackwell Server Edition and Intel's Arc Pro B60 in reach of the catalog: their names, their own
measured kernel profiles on every engine that has one, PCIe all-reduces at TP 8, the engines without a profile, the
MXFP4 x MXFP8 MoE kernel on SM 12.0, and their cost and energy metrics."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import objectives
from objectives import catalog, inference, profiles
from objectives.inference.efficiency import FAMILIES, FAMILY_FALLBACK, load_efficiency
from objectives.inference.measured import moe_act, mxfp8_moe_able
from objectives.inference.resolve import R_MOE_ACT, R_NET, REASONS

RTX, B60 = "RTX-PRO-6000", "Arc-Pro-B60"
ENGINES = ("vllm", "sglang", "trtllm")


@pytest.mark.parametrize("name, canonical", [
    ("rtx_pro_6000_server", RTX), ("RTX PRO 6000 Blackwell", RTX), ("RTX-PRO-6000-Server", RTX),
    ("rtx pro 6000 blackwell server edition", RTX), ("b60", B60), ("Intel Arc Pro B60", B60), ("arc_pro_b60", B60)])
def test_the_new_gpus_resolve_by_their_names_and_system_names(name, canonical):
    assert catalog.gpu(name).name == canonical


def test_their_kernel_profiles_are_mapped_both_ways():
    assert profiles.system_of(RTX) == "rtx_pro_6000_server" and profiles.system_of(B60) == "b60"
    assert profiles.GPU_OF_SYSTEM["rtx_pro_6000_server"] == RTX and profiles.GPU_OF_SYSTEM["b60"] == B60
    assert set(profiles.available(RTX)) == set(ENGINES)
    assert set(profiles.available(B60)) == {"vllm"}


def test_catalog_records_describe_a_pcie_sm120_card_and_an_xe2_card():
    r, b = catalog.gpu(RTX), catalog.gpu(B60)
    assert (r.vendor, r.family, r.link_type, r.form_factor) == ("nvidia", "blackwell-rtx", "pcie", "pcie")
    assert (b.vendor, b.family, b.link_type, b.form_factor) == ("intel", "xe2", "pcie", "pcie")
    assert r.supports("fp4") and r.supports("fp8") and r.mem_gib == pytest.approx(97887 / 1024)
    # the B60 has no FP8 matrix engine (its vLLM fp8 GEMMs are weight-only) and no public cloud price
    assert not b.supports("fp8") and not b.supports("fp4") and b.supports("int8")
    assert np.isnan(b.price_usd_per_hour) and r.price_usd_per_hour > 0


def test_the_new_families_borrow_calibrated_factors_explicitly():
    assert {"blackwell-rtx", "xe2"} <= set(FAMILIES)
    assert FAMILY_FALLBACK["blackwell-rtx"] == "blackwell" and FAMILY_FALLBACK["xe2"] == "ada"
    eff = load_efficiency()
    for name in ("mem_eff", "kv_read_eff", "attn_eff", "gemm_m_half"):
        assert eff[name]["blackwell-rtx"] == eff[name]["blackwell"], name
        assert eff[name]["xe2"] == eff[name]["ada"], name
    assert eff["gemm_eff"]["blackwell-rtx"] == eff["gemm_eff"]["blackwell"]
    # not the silent Hopper default of an unknown family: the roofline runs on the borrowed factors
    fam = np.array([FAMILIES.index(f) for f in ("blackwell-rtx", "blackwell", "hopper")])
    mem = eff.fam_table("mem_eff")[fam]
    assert mem[0] == mem[1] != mem[2]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_reads_the_rtx_pro_6000s_own_tables(engine):
    prof = profiles.load(RTX, engine)
    assert prof.system == "rtx_pro_6000_server" and prof.engine == engine
    for model, w in (("Llama-3.1-8B", None), ("Qwen3-30B-A3B", None), ("Llama-3.1-70B", "fp8"),
                     ("nvidia/Llama-3.3-70B-Instruct-FP4", None)):
        # 8 prompts of 2,048 tokens: within the tables' measured tokens (32 of them say "extrapolated")
        r = inference.estimate(model, RTX, tp=2, engine=engine, weight_dtype=w, batch_size=[1, 8],
                               input_len=2048, output_len=256)
        assert (r["source"] == "interpolated").all(), (model, r["source"].tolist())
        assert (r["engine"] == engine).all() and r["fits"].all()
        roof = inference.estimate(model, RTX, tp=2, engine="roofline", weight_dtype=w, batch_size=[1, 8],
                                  input_len=2048, output_len=256)
        assert not np.allclose(r["tpot_ms"], roof["tpot_ms"], rtol=1e-3)


def test_the_b60_reads_its_vllm_xpu_tables_and_fp8_weights_stream_half_the_bytes():
    prof = profiles.load(B60, "vllm")
    assert prof.system == "b60"
    # its fp8 GEMMs dequantize to bf16 (no FP8 matrix engine): kept as the weight-only table
    assert "gemm.fp8_wo" in prof.tables and "gemm.fp8" not in prof.tables
    kw = dict(tp=2, engine="vllm", batch_size=1, input_len=1024, output_len=128)
    bf, f8 = (inference.estimate("Llama-3.1-8B", B60, weight_dtype=w, **kw).iloc[0] for w in ("bf16", "fp8"))
    assert bf["source"] == f8["source"] == "interpolated" and f8["act_dtype"] == "bf16"
    assert f8["tpot_ms"] < 0.8 * bf["tpot_ms"]
    # a decode step streams the weights from GDDR6: not faster than its 456 GB/s allow
    weights = bf["weights_gib"] * 2**30
    assert bf["tpot_ms"] * 1e-3 > weights / (catalog.gpu(B60).mem_bw_tbs * 1e12)


def test_engines_without_a_b60_profile_say_what_exists_and_why():
    with pytest.raises(ValueError, match=r"no sglang kernel profile for Arc-Pro-B60; available: vllm \['0\.26\.0'\]"):
        inference.estimate("Llama-3.1-8B", B60, engine="sglang")
    with pytest.raises(ValueError, match=r"no trtllm kernel profile for Arc-Pro-B60 \(trtllm runs on nvidia GPUs only; "
                                         r"Arc-Pro-B60 is intel\); available: vllm"):
        inference.estimate("Llama-3.1-8B", B60, engine="trtllm")


def test_the_pcie_all_reduce_at_8_gpus_costs_more_than_nvlinks():
    """The engines' measured all-reduce of a decode step's activations (16 sequences x 8,192 elements) over 8 GPUs:
    PCIe Gen5 through the host against H100's NVLink switch."""
    for engine in ENGINES:
        t = {g: profiles.load(g, engine).table("comm.custom_allreduce")(np.array([8.0]), np.array([16.0 * 8192]))[0]
             for g in (RTX, "H100-SXM-80GB")}
        assert t[RTX] > 3.0 * t["H100-SXM-80GB"], (engine, t)


@pytest.mark.parametrize("engine", ENGINES)
def test_tp8_decode_gains_less_on_pcie_than_on_nvlink(engine):
    """Llama-3.1-70B in fp8 decoding one sequence: from TP 4 to TP 8 the weights per GPU halve on both GPUs, but the
    RTX PRO 6000's 160 all-reduces per step cross PCIe, so it keeps less of the gain than an H100 does."""
    def tpot(gpu: str) -> np.ndarray:
        r = inference.estimate("Llama-3.1-70B", gpu, tp=[4, 8], engine=engine, weight_dtype="fp8", batch_size=1,
                               input_len=2048, output_len=256)
        assert r["fits"].all() and (r["source"] == "interpolated").all()
        return r["tpot_ms"].to_numpy()
    rtx, h100 = tpot(RTX), tpot("H100")
    assert rtx[1] / rtx[0] > h100[1] / h100[0] + 0.02
    assert h100[1] < 0.8 * h100[0]


def test_beyond_one_8_gpu_pcie_box_there_is_no_network():
    r = inference.estimate("Llama-3.1-70B", RTX, tp=8, pp=[1, 2], engine="vllm", weight_dtype="fp8")
    assert r["fits"].tolist() == [True, False] and r["reason"].iloc[1] == REASONS[R_NET]


def test_mxfp4_experts_on_sm120_use_mxfp8_activations_under_tensorrt_llm_only():
    assert [moe_act(e, "blackwell-rtx", "fp4", "fp4", True) for e in ENGINES] == ["bf16", "bf16", "fp8"]
    assert [mxfp8_moe_able("blackwell-rtx", e) for e in ENGINES] == [False, False, True]
    assert mxfp8_moe_able("blackwell-rtx") and mxfp8_moe_able("blackwell", "vllm")
    for engine in ENGINES:
        r = inference.estimate("gpt-oss-120b", RTX, engine=engine, batch_size=[1, 16, 1, 16],
                               moe_act_dtype=["auto", "auto", "mxfp8", "mxfp8"])
        auto, mx = r.iloc[:2], r.iloc[2:]
        assert auto["fits"].all() and (auto["source"] == "interpolated").all()
        if engine == "trtllm":   # its default is the MXFP8 kernel (the w4a8_mxfp4_mxfp8 table): the same rows
            assert mx["fits"].all()
            np.testing.assert_array_equal(mx["tpot_ms"], auto["tpot_ms"])
        else:                    # Marlin W4A16 in both tables; no MXFP8 kernel on SM120
            assert not mx["fits"].any() and (mx["reason"] == REASONS[R_MOE_ACT]).all()
    assert "not this engine" in REASONS[R_MOE_ACT]


def test_cost_and_energy_metrics_on_the_new_gpus():
    r = inference.estimate("Llama-3.1-8B", [RTX, B60], engine="vllm", batch_size=16, input_len=1024, output_len=128)
    assert (r["joules_per_tok"] > 0).all() and np.isfinite(r["joules_per_tok"]).all()
    assert np.isfinite(r["usd_per_mtok"].iloc[0]) and np.isnan(r["usd_per_mtok"].iloc[1])


def test_the_objective_names_an_unpriced_gpu_and_takes_its_price_by_alias(caplog):
    w = {"concurrency": 8, "input_len": 512, "output_len": 64}
    cfg = {"gpu": B60, "tp": 1, "weight_dtype": "bf16", "kv_dtype": "bf16", "max_batch_size": 8,
           "max_num_tokens": 8192, "chunked_prefill": True, "engine": "vllm"}
    o = objectives.llm_serving_objective("Llama-3.1-8B", workload=w)
    with caplog.at_level(logging.WARNING, logger="objectives.llm_serving"):
        out = o(pd.DataFrame([cfg, {**cfg, "gpu": RTX}]))
        o(pd.DataFrame([cfg]))
    said = [m for m in caplog.messages if "Arc-Pro-B60 has no public on-demand price" in m]
    assert len(said) == 1 and "prices={'Arc-Pro-B60'" in said[0]     # once per objective
    assert np.isnan(out["usd_per_mtok"].iloc[0]) and np.isfinite(out["usd_per_mtok"].iloc[1])
    assert (out["fits"] == 1).all() and np.isfinite(out["joules_per_tok"]).all()
    priced = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, prices={"B60": 0.5})
    assert np.isfinite(priced(pd.DataFrame([cfg]))["usd_per_mtok"].iloc[0])


def test_sparse_attention_without_its_module_table_says_so():
    """No DeepSeek sparse-attention module was measured on the RTX PRO 6000 (its sparse MLA kernels are SM90 /
    SM100 ones): DeepSeek-V3.2's decode keeps the dense MLA kernel's time there, as DeepSeek-R1's, and its rows say
    "extrapolated"; on H200, whose tables time the module, they stay "interpolated" and differ from R1's."""
    # 4 prompts of 2,048 tokens, decoding at 2,048 + 128 of context: within the tokens the tables measured and the
    # 4,097 of context H200's module table measured (`measured.beyond_reach`)
    kw = dict(engine="sglang", tp=8, weight_dtype="fp4", batch_size=4, input_len=2048, output_len=256)
    for gpu, src in ((RTX, "extrapolated"), ("H200", "interpolated")):
        v32, r1 = (inference.estimate(m, gpu, **kw).iloc[0] for m in ("DeepSeek-V3.2", "DeepSeek-R1"))
        assert v32["source"] == src and r1["source"] == "interpolated", gpu
        assert (v32["tpot_ms"] == r1["tpot_ms"]) == (gpu == RTX)
