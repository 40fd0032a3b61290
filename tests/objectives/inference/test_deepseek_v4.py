"""DeepSeek-V4 (compressed attention, mHC, FP4 experts): read from its config, sized in memory, and costed from its
engines' measured attention modules where a profile has them, else by the closed form."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from objectives import catalog, inference
from objectives.catalog import DATA_DIR, CatalogError
from objectives.catalog import model_math as mm
from objectives.inference import measured

FLASH = "DeepSeek-V4-Flash"


def _raw(name: str) -> dict:
    return {k: v for k, v in json.loads((DATA_DIR / "models" / f"{name}.json").read_text()).items()
            if k not in ("name", "hf_id", "aliases", "source", "copied_from", "hf_quant_config")}


@pytest.mark.parametrize("name,csa,hca,w,scheme,dense", [
    ("DeepSeek-V4-Flash", 21, 20, "fp4", "mxfp4", "fp8"), ("DeepSeek-V4-Pro", 30, 31, "fp4", "mxfp4", "fp8"),
    ("sgl-project/DeepSeek-V4-Flash-FP8", 21, 20, "fp8", "fp8_block", ""),
    ("nvidia/DeepSeek-V4-Pro-NVFP4", 30, 31, "fp4", "nvfp4", "fp8")])
def test_the_shipped_checkpoints_read_their_layer_kinds_and_formats(name, csa, hca, w, scheme, dense):
    """compress_ratios lists one ratio per layer plus the multi-token-prediction layer's (not costed): Flash has
    two window-only layers (ratio 0) first, then CSA (4) and HCA (128) alternating; Pro starts with two HCA layers.
    DeepSeek's checkpoints hold MXFP4 experts beside FP8 block-scaled weights; sgl-project's re-quantizes the
    experts to FP8; NVIDIA's quantizes the experts alone to NVFP4."""
    m = catalog.model(name)
    assert (m.n_csa_layers, m.n_hca_layers, m.csa_ratio, m.hca_ratio) == (csa, hca, 4, 128)
    assert (m.quant_weight_dtype, m.quant_scheme, m.dense_weight_dtype, m.quant_kv_dtype) == (w, scheme, dense, "fp8")
    assert m.is_compressed_attention and m.is_moe and not m.is_mla and m.first_k_dense == 0


def test_a_compress_ratio_the_model_does_not_know_is_refused_by_value():
    cfg = _raw(FLASH)
    cfg["compress_ratios"] = [16 if r == 4 else r for r in cfg["compress_ratios"]]
    with pytest.raises(CatalogError, match=r"compress_ratios has values \[16\] that cannot be costed"):
        catalog.model_from_hf_config(cfg, name="v4-16")
    cfg = _raw(FLASH)
    cfg["compress_ratios"] = cfg["compress_ratios"][:10]
    with pytest.raises(CatalogError, match="compress_ratios has 10 entries for num_hidden_layers=43"):
        catalog.model_from_hf_config(cfg, name="v4-short")
    cfg = dict(_raw(FLASH), o_groups=7)
    with pytest.raises(CatalogError, match="num_attention_heads=64 is not a multiple of o_groups=7"):
        catalog.model_from_hf_config(cfg, name="v4-groups")


def test_the_kv_cache_is_the_windows_plus_the_compressed_entries():
    """Up to the 128-token window every layer holds each token (an FP8 entry of head_dim plus its bf16 RoPE part);
    beyond it a sequence grows by one entry per 4 tokens on the CSA layers (and the indexer's key), one per 128
    on the HCA layers. The compressors' FP32 state is a constant per sequence."""
    m = catalog.model(FLASH)
    entry = m.head_dim + m.qk_rope_head_dim
    win = m.n_layers * entry
    grow = m.n_csa_layers * (entry + m.index_head_dim) / 4 + m.n_hca_layers * entry / 128
    assert mm.kv_cache_bytes(m, 64, "fp8") == pytest.approx(64 * (win + grow))
    assert mm.kv_cache_bytes(m, 8192, "fp8") - mm.kv_cache_bytes(m, 4096, "fp8") == pytest.approx(4096 * grow)
    state = mm.sequence_cache_bytes(m, 1000, "fp8") - mm.kv_cache_bytes(m, 1000, "fp8")
    assert state == pytest.approx(m.n_csa_layers * (64 + 16) * 1024 + m.n_hca_layers * 512 * 1024)
    # a tenth of DeepSeek-V3's cache at 8k tokens
    assert mm.kv_cache_bytes(m, 8192, "fp8") < 0.15 * mm.kv_cache_bytes(catalog.model("DeepSeek-V3"), 8192, "fp8")


def test_weights_hold_fp4_experts_and_fp8_everything_else():
    """The checkpoint's 4-bit experts and FP8 attention / shared expert: between the all-FP4 and all-FP8 weights,
    within 1 % of the count by parts (the query down-projection, the KV head, the compressors and the indexer are
    on every TP rank)."""
    kw = dict(gpu="B200", tp=8, ep=8, batch_size=1, input_len=128, output_len=16, engine="roofline")
    fp4 = inference.estimate(FLASH, **kw)["weights_gib"].iloc[0]
    fp8 = inference.estimate(FLASH, weight_dtype="fp8", **kw)["weights_gib"].iloc[0]
    m = catalog.model(FLASH)
    experts = mm.n_moe_layers(m) * m.n_experts * 3 * m.hidden * m.moe_ffn
    embed = 2 * m.vocab * m.hidden
    rep = m.n_layers * mm.v4_attention_split(m)[0]
    rest = mm.total_params(m) - experts - embed - rep
    by_parts = ((experts * 0.5 + rest * 1.0 + embed * 2.0) / 8 + rep * 1.0) / 2**30
    assert fp4 == pytest.approx(by_parts, rel=0.01) and by_parts < fp8


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_measured_attention_modules_cost_the_model_where_a_profile_has_them(engine, monkeypatch):
    """B200 profiles hold DeepSeek-V4's attention modules and mHC for every engine: the rows are measured (the lone
    prompt interpolated; 64 prompts of 8,192 tokens extrapolated, past the batch x length the attention modules
    measured, `measured.beyond_reach`; SGLang's also 64 of 1,024), grow with the batch and the prompt, and differ
    from the closed form. Without those tables (monkeypatched away) the same rows are the closed form's, exactly,
    and say roofline."""
    kw = dict(gpu="B200", tp=8, ep=8, input_len=[1024, 1024, 8192], output_len=1024, batch_size=[1, 64, 64])
    got = inference.estimate(FLASH, engine=engine, **kw)
    roof = inference.estimate(FLASH, engine="roofline", **kw)
    assert list(got["source"]) == ["interpolated", "extrapolated" if engine == "sglang" else "interpolated",
                                   "extrapolated"] and got["fits"].all()
    assert got["tpot_ms"].is_monotonic_increasing and got["ttft_ms"].is_monotonic_increasing
    assert not np.allclose(got["tpot_ms"], roof["tpot_ms"])
    monkeypatch.setattr(measured, "has_v4_tables", lambda prof, hidden: False)
    without = inference.estimate(FLASH, engine=engine, **kw)
    assert set(without["source"]) == {"roofline"}
    # the closed form at the engine's own MoE activations: vLLM runs the MXFP4 experts on 16-bit ones, the roofline's
    # 'auto' on Blackwell is MXFP8 (TensorRT-LLM's and SGLang's)
    roof = inference.estimate(FLASH, engine="roofline", moe_act_dtype="bf16" if engine == "vllm" else "auto", **kw)
    np.testing.assert_allclose(without["tpot_ms"], roof["tpot_ms"], rtol=1e-9)


def test_a_gpu_engine_without_the_modules_falls_back_to_the_closed_form():
    """TensorRT-LLM's Hopper tables hold no DeepSeek-V4 attention module: roofline, never a GQA table misread."""
    got = inference.estimate(FLASH, "H200", tp=8, ep=8, engine="trtllm", batch_size=16, weight_dtype="fp8")
    roof = inference.estimate(FLASH, "H200", tp=8, ep=8, engine="roofline", batch_size=16, weight_dtype="fp8")
    assert got["source"].iloc[0] == "roofline"
    assert got["tpot_ms"].iloc[0] == pytest.approx(roof["tpot_ms"].iloc[0], rel=1e-9)


@pytest.mark.parametrize("engine", ["vllm", "roofline"])
def test_decode_grows_with_the_compressed_context_not_the_whole_context(engine):
    """A decode step at 32k tokens of context against 1k: DeepSeek-V4 reads its windows, the CSA top-k and the
    compressed entries, so its step grows far less than DeepSeek-V3's (whose MLA reads every cached token)."""
    def growth(model: str) -> float:
        df = inference.estimate(model, "H200", tp=8, ep=8, engine=engine, batch_size=32, weight_dtype="fp8",
                                input_len=[1024, 32768], output_len=64)
        return float(df["tpot_ms"].iloc[1] / df["tpot_ms"].iloc[0])
    v4, v3 = growth("DeepSeek-V4-Flash"), growth("DeepSeek-V3")
    assert 1.0 < v4 < 1.0 + 0.5 * (v3 - 1.0)


def test_the_window_only_layers_read_the_hca_module():
    """Two layers of Flash keep the window alone (ratio 0); aiconfigurator-core times them as HCA layers, and so
    does the profile path: a model whose window-only layers are HCA layers costs the same."""
    m = catalog.model(FLASH)
    assert m.n_layers - m.n_csa_layers - m.n_hca_layers == 2
    alt = dataclasses.replace(m, name="v4-all-hca", hf_id="", aliases=(), n_hca_layers=m.n_hca_layers + 2)
    kw = dict(gpu="B200", tp=8, ep=8, engine="vllm", batch_size=32, input_len=4096, output_len=256)
    a, b = inference.estimate(m, **kw), inference.estimate(alt, **kw)
    np.testing.assert_allclose(a[["ttft_ms", "tpot_ms"]], b[["ttft_ms", "tpot_ms"]], rtol=0.02)


def test_the_module_tables_are_keyed_by_the_measured_model_and_keep_fp8_block_projections(tmp_path):
    """aiconfigurator-core's DeepSeek-V4 module tables hold Flash and Pro (sgl-project's FP8 ids) at several heads
    per GPU; SGLang's also time bf16 projections. The builder keeps the FP8 block-scaled ones, context rows without
    a cached prefix, and keys each model's table by its hidden size; the mHC table by tokens and hidden size."""
    import pandas as pd

    from objectives.profiles.build import dsv4_tables, mhc_tables

    rows = []
    for model, scale in (("sgl-project/DeepSeek-V4-Flash-FP8", 1.0), ("sgl-project/DeepSeek-V4-Pro-FP8", 2.0)):
        for gemm, g in (("fp8_block", 1.0), ("bfloat16", 5.0)):
            for b in (1, 4, 16):
                for s in (128, 1024, 8192):
                    for h in (8, 64):
                        for step in (0, 2048):
                            rows.append(dict(model=model, gemm_type=gemm, batch_size=b, isl=s, num_heads=h,
                                             step=step, latency=scale * g * b * s * h * 1e-5 * (1 + step / 1e3)))
    f = tmp_path / "dsv4_csa_context_module_perf.parquet"
    pd.DataFrame(rows).to_parquet(f)
    tabs = dsv4_tables(f, "csa")
    assert set(tabs) == {"csa_h4096", "csa_h7168"}
    assert float(tabs["csa_h4096"](4.0, 1024.0, 8.0)) == pytest.approx(4 * 1024 * 8 * 1e-5, rel=1e-6)
    assert float(tabs["csa_h7168"](4.0, 1024.0, 8.0)) == pytest.approx(2 * 4 * 1024 * 8 * 1e-5, rel=1e-6)
    mhc = pd.DataFrame([dict(op_name=op, num_tokens=n, hidden_size=hd, latency=(1 + (op == "pre")) * n * hd * 1e-6)
                        for op in ("pre", "post") for n in (1, 64, 4096) for hd in (4096, 7168)])
    mhc.to_parquet(tmp_path / "mhc_module_perf.parquet")
    t = mhc_tables(tmp_path / "mhc_module_perf.parquet")
    assert float(t["pre"](64.0, 4096.0)) == pytest.approx(2 * 64 * 4096 * 1e-6, rel=1e-6)


def test_mxfp4_experts_read_the_mxfp4_kernels_before_nvfp4():
    """DeepSeek's own checkpoint holds MXFP4 experts, NVIDIA's NVFP4 ones; vLLM's B200 table times the model's MoE
    layer in both formats (NVFP4 the faster). Each checkpoint reads its own kernel: same shapes, different steps."""
    assert measured.moe_formats("fp4", "fp4", mxfp4=True)[0] == "w4a8_mxfp4_mxfp8"
    assert measured.moe_formats("fp4", "fp4")[0] == "nvfp4"
    kw = dict(gpu="B200", tp=8, ep=8, engine="vllm", batch_size=256, input_len=1024, output_len=1024)
    mx = inference.estimate("DeepSeek-V4-Flash", **kw)["tpot_ms"].iloc[0]
    nv = inference.estimate("DeepSeek-V4-Flash-NVFP4", **kw)["tpot_ms"].iloc[0]
    assert mx > 1.005 * nv


def test_every_engine_holds_the_windows_bounded_in_its_cache():
    """A DeepSeek-V4 sequence takes its windows (128 tokens a layer) plus the compressed entries of the cache, on
    SGLang as on vLLM and TensorRT-LLM: SGLang's full-length rule for windowed models would price 8x the cache."""
    from objectives.inference.core import prepare

    ps = {e: prepare(FLASH, "H200", tp=4, ep=4, weight_dtype="fp8", engine=e) for e in ("vllm", "sglang", "trtllm")}
    held = {e: float(p.seq_tokens(8192.0)) for e, p in ps.items()}
    assert held["sglang"] == pytest.approx(held["vllm"]) == pytest.approx(held["trtllm"])
    assert held["vllm"] < 0.25 * 8192


def test_tp_must_split_the_output_groups():
    """Each TP rank holds o_groups / tp whole groups of the grouped output projection (8 on Flash, 16 on Pro):
    TP 16 is refused for Flash with the reason, offered for Pro, and the spaces agree."""
    from spaces.parallelism import tp_choices

    df = inference.estimate(["DeepSeek-V4-Flash", "DeepSeek-V4-Pro"], "GB200", tp=16, ep=16, batch_size=8,
                            engine="roofline")
    assert not df["fits"].iloc[0] and "o_groups" in df["reason"].iloc[0]
    assert df["fits"].iloc[1]
    assert 16 not in tp_choices(catalog.model("DeepSeek-V4-Flash"), 16)
    assert 16 in tp_choices(catalog.model("DeepSeek-V4-Pro"), 16)
