"""Model families of issue 13: shipped configs of the newer architectures, quantized checkpoint ids, quantization
configs, hybrid (linear-attention) layers in the cost model, and errors for what cannot be costed."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import catalog, inference
from objectives.catalog import DATA_DIR, Catalog, CatalogError
from objectives.catalog import model_math as mm
from objectives.catalog.quant import checkpoint_quant, from_hf_quant_config, from_quantization_config
from objectives.inference import memory
from objectives.inference.ops import ModelShape, layer_costs
from objectives.inference.resolve import R_BLOCK, REASONS
from tests.conftest import fresh_catalog
from tests.helpers import SHARED


def _raw(name: str) -> dict:
    return json.loads((DATA_DIR / "models" / f"{name}.json").read_text())


# ------------------------------------------------------------------------------------------ shapes of each family
# (name, n_layers, linear layers, softmax heads, KV heads, experts, top_k, sliding layers, window) read off the
# shipped config.json by hand: layer_types / hybrid_override_pattern / no_rope_layers counted.
SHAPES = [
    ("MiniMax-M2.5", 62, 0, 48, 8, 256, 8, 0, 0),
    ("Qwen3.5-397B-A17B", 60, 45, 32, 2, 512, 10, 0, 0),        # 3 linear : 1 full (full_attention_interval 4)
    ("Qwen3.5-27B", 64, 48, 24, 4, 0, 0, 0, 0),
    ("Kimi-K2.5", 61, 0, 64, 64, 384, 8, 0, 0),                  # DeepseekV3 text_config inside KimiK25
    ("GLM-5", 78, 0, 64, 64, 256, 8, 0, 0),
    ("Llama-4-Scout", 48, 0, 40, 8, 16, 1, 36, 8192),            # chunked attention on 3 of every 4 layers
    ("Llama-4-Maverick", 48, 0, 40, 8, 128, 1, 36, 8192),
    ("Nemotron-H-56B", 64, 54, 64, 8, 0, 0, 0, 0),               # 54 'M' + 10 '*' mixers, 54 '-' MLPs
    ("Nemotron-3-Nano-30B-A3B", 29, 23, 32, 2, 128, 6, 0, 0),    # 23 'M' + 6 '*' mixers, 23 'E' MoE blocks
    ("gemma-2-9b", 42, 0, 16, 8, 0, 0, 21, 4096),                # even layers slide
    ("gemma-3-12b", 48, 0, 16, 8, 0, 0, 40, 1024),               # every 6th layer global
    ("Phi-3-mini", 32, 0, 32, 32, 0, 0, 32, 2047),
    ("gpt-oss-120b", 36, 0, 64, 8, 128, 4, 18, 128),
    ("MiMo-7B-Base", 36, 0, 32, 8, 0, 0, 0, 0),                  # model_type mimo: Qwen2's decoder plus MTP
    ("DeepSeek-V4-Flash", 43, 0, 64, 1, 256, 6, 43, 128),        # every layer keeps a 128-token window
    ("Llama-3.3-Nemotron-Super-49B", 80, 0, 64, 8, 0, 0, 0, 0),  # 49 attention blocks, 31 MLP-only ones
    ("Step-3.7-Flash", 45, 0, 64, 8, 288, 8, 33, 512),           # layer_types: every 4th layer (from 0) full
    ("MiMo-V2-Flash", 48, 0, 64, 4, 256, 8, 39, 128),            # hybrid_layer_pattern: 39 ones (window), 9 zeros
    ("Nemotron-3.5-Lightning-30B-A3B-NVFP4", 29, 23, 32, 2, 128, 6, 0, 0),  # Nemotron-3-Nano's layout
    # Gemma 4: layer_types, every 6th layer full; the full layers' num_global_key_value_heads (window layers: 8 / 16)
    ("gemma-4-26B-A4B", 30, 0, 16, 2, 128, 8, 25, 1024),
    ("gemma-4-31B-it", 60, 0, 32, 4, 0, 0, 50, 1024),
]


@pytest.mark.parametrize("name,L,lin,heads,kv,experts,top_k,sliding,window", SHAPES, ids=[s[0] for s in SHAPES])
def test_family_parses_from_its_shipped_config(name, L, lin, heads, kv, experts, top_k, sliding, window):
    m = catalog.model(name)
    assert (m.n_layers, m.n_linear_attn_layers, m.n_heads, m.n_kv_heads, m.n_experts, m.top_k) == \
        (L, lin, heads, kv, experts, top_k)
    assert (mm.n_sliding_layers(m), m.sliding_window if sliding else 0) == (sliding, window)
    assert m.source.startswith("https://huggingface.co/") and m.source.endswith("/config.json")


def test_hybrid_and_sparse_details():
    q = catalog.model("Qwen3.5-397B-A17B")
    assert (q.linear_attn_kind, q.linear_num_k_heads, q.linear_num_v_heads, q.linear_head_k_dim,
            q.linear_head_v_dim, q.linear_conv_kernel, q.linear_state_dtype, q.attn_output_gate) == \
        ("gdn", 16, 64, 128, 128, 4, "fp32", True)
    assert (q.moe_ffn, q.n_shared_experts, q.shared_ffn, q.head_dim) == (1024, 1, 1024, 256)
    n = catalog.model("Nemotron-H-56B")
    assert (n.linear_attn_kind, n.linear_num_k_heads, n.linear_num_v_heads, n.linear_head_k_dim,
            n.linear_head_v_dim, n.linear_conv_kernel, n.gated_mlp) == ("mamba2", 8, 256, 256, 64, 4, False)
    assert n.ffn * n.n_layers == 54 * 32768  # the 54 MLP blocks' width spread over the 64 mixer layers
    n3 = catalog.model("Nemotron-3-Nano-30B-A3B")
    # 23 MoE blocks on 23 of the 29 mixer layers; the other 6 carry no MLP (ffn 0), squared-ReLU experts
    assert (mm.n_moe_layers(n3), n3.ffn, n3.moe_ffn, n3.n_shared_experts, n3.shared_ffn, n3.gated_mlp) == \
        (23, 0, 1856, 1, 3712, False)
    assert catalog.model("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-FP8").quant_weight_dtype == "fp8"
    assert catalog.model("Nemotron-3-Nano-30B-A3B-NVFP4").quant_scheme == "nvfp4"
    g = catalog.model("GLM-5")
    assert (g.index_topk, g.index_n_heads, g.index_head_dim, g.kv_lora_rank, g.q_lora_rank, g.v_head_dim) == \
        (2048, 32, 128, 512, 2048, 256)
    assert mm.kv_elements_per_token_layer(g) == 512 + 64 + 128  # latent + RoPE key + indexer key
    mav = catalog.model("Llama-4-Maverick")
    assert (mm.n_moe_layers(mav), mav.ffn, mav.moe_ffn, mav.shared_ffn) == (24, 16384, 8192, 8192)


# Published sizes. Sources: MiniMax-M2 model card "230B total, 10B active" (M2.5: same architecture);
# model names (Qwen3.5-397B-A17B, Qwen3.5-27B, Nemotron-H-56B); Kimi K2 tech report (arXiv 2507.20534)
# "1.04 trillion total parameters, 32 billion activated"; zai-org/GLM-5 model card "744B (40B active)";
# Meta Llama 4 model card: Scout 109B total / 17B active, Maverick 400B / 17B; Gemma 2 report Table 1:
# 9B = 917M embedding + 8,324M non-embedding; Gemma 3 report Table 1: 12B = 1,012M embedding + 10,759M
# non-embedding (+417M vision, not costed); Phi-3 report: phi-3-mini 3.8B; DeepSeek-V3.2 = DeepSeek-V3 671B main;
# NVIDIA-Nemotron-3-Nano-30B-A3B model card: 31.6B total, 3.2B active (3.6B with embeddings); Nemotron-3 Super and
# Ultra by their names (120B-A12B, 550B-A55B; latent MoE).
PUBLISHED = [  # name, total, active (None: not checked), input embedding counted in "active"
    ("MiniMax-M2.5", 230e9, None, True), ("Qwen3.5-397B-A17B", 397e9, 17e9, True),
    ("Qwen3.5-27B", 27e9, None, True), ("Kimi-K2.5", 1.04e12, 32e9, False), ("GLM-5", 744e9, 40e9, False),
    ("Llama-4-Scout", 109e9, 17e9, True), ("Llama-4-Maverick", 400e9, 17e9, True),
    ("Nemotron-H-56B", 56e9, None, True), ("gemma-2-9b", 917e6 + 8324e6, None, True),
    ("gemma-3-12b", 1012e6 + 10759e6, None, True), ("Phi-3-mini", 3.8e9, None, True),
    ("Nemotron-3-Nano-30B-A3B", 31.6e9, 3.2e9, False),
    ("Nemotron-3-Super-120B-A12B-FP8", 120e9, 12e9, False), ("Nemotron-3-Ultra-550B-A55B", 550e9, 55e9, False),
    ("DeepSeek-V3.2", 671e9, None, True),  # active: V3's 37B plus the indexer (~0.9B), not published separately
    # DeepSeek-V4 model cards: Flash 284B total / 13B activated, Pro 1.6T / 49B (the MTP layer not counted)
    ("DeepSeek-V4-Flash", 284e9, 13e9, False), ("DeepSeek-V4-Pro", 1.6e12, 49e9, False),
    ("Llama-3.3-Nemotron-Super-49B", 49.9e9, None, True),  # Hugging Face's count of the checkpoint: 49.9B
    # MiMo-V2-Flash technical report / model card: 309B total, 15B active (the MTP layers not counted)
    ("MiMo-V2-Flash", 309e9, 15e9, False),
    # Step-3.7-Flash's config has Step-3.5-Flash's shapes, whose model card says 196B total / 11B active
    ("Step-3.7-Flash", 196e9, 11e9, True),
    # Nemotron-3.5-Lightning-30B-A3B has Nemotron-3-Nano-30B-A3B's shapes (card: 31.6B total, 3.2B active)
    ("Nemotron-3.5-Lightning-30B-A3B-NVFP4", 31.6e9, 3.2e9, False),
    # Gemma 4 model card: 26B A4B 25.2B total / 3.8B active, 31B 30.7B (the language model; the vision encoder of
    # ~0.55B is not costed)
    ("gemma-4-26B-A4B", 25.2e9, 3.8e9, True), ("Gemma-4-26B-A4B-NVFP4", 25.2e9, 3.8e9, True),
    ("gemma-4-31B-it", 30.7e9, 30.7e9, True), ("Gemma-4-31B-IT-NVFP4", 30.7e9, 30.7e9, True),
]


@pytest.mark.parametrize("name,total,active,with_embedding", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_parameter_counts_match_published_sizes(name, total, active, with_embedding):
    m = catalog.model(name)
    assert mm.total_params(m) == pytest.approx(total, rel=0.02)
    if active is not None:
        assert mm.active_params(m, input_embedding=with_embedding) == pytest.approx(active, rel=0.025)


def test_multimodal_wrappers_read_their_text_config():
    """Qwen3-VL / Kimi-K2.5 / Llama 4 / Gemma 3 nest the language model under text_config; tied embeddings and
    quantization at the top level carry over."""
    inner = {k: v for k, v in _raw("Qwen3-30B-A3B").items() if k not in ("name", "hf_id", "aliases", "source")}
    inner = dict(inner, model_type="qwen3_vl_moe_text", tie_word_embeddings=None)
    wrapped = {"architectures": ["Qwen3VLMoeForConditionalGeneration"], "model_type": "qwen3_vl_moe",
               "text_config": {k: v for k, v in inner.items() if k != "tie_word_embeddings"},
               "vision_config": {"depth": 27}, "tie_word_embeddings": False,
               "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    m = catalog.model_from_hf_config(wrapped, name="vl")
    base = catalog.model("Qwen3-30B-A3B")
    assert (m.n_layers, m.n_experts, m.moe_ffn, m.tie_embeddings) == (base.n_layers, base.n_experts, base.moe_ffn, False)
    assert mm.total_params(m) == mm.total_params(base) and m.quant_scheme == "fp8_block"
    assert m.architecture == "Qwen3VLMoeForConditionalGeneration"
    # a checkpoint with a vision (or audio) encoder is served through the engines' multimodal request path
    assert m.multimodal and not base.multimodal
    assert catalog.model("Qwen/Qwen3.5-397B-A17B").multimodal and catalog.model("moonshotai/Kimi-K2.5").multimodal
    assert not catalog.model("zhipuai/GLM-5").multimodal and not catalog.model("MiniMaxAI/MiniMax-M2.5").multimodal


def test_layer_costs_agree_with_the_catalog_parameter_and_cache_counts():
    for name in ("Qwen3.5-397B-A17B", "Nemotron-H-56B", "GLM-5", "Llama-4-Maverick", "gpt-oss-120b", "Kimi-K2.5",
                 "Nemotron-3-Nano-30B-A3B"):
        m = catalog.model(name)
        lc = layer_costs(ModelShape.from_models([m]), 1.0)
        assert lc.dense_params + lc.expert_params * m.n_experts + lc.embed_params == \
            pytest.approx(mm.total_params(m), rel=1e-9)
        for ctx in (1, 100, 5000, 300_000):
            assert memory.seq_cache_bytes_gpu(lc, 2.0, 1.0, ctx) == pytest.approx(mm.sequence_cache_bytes(m, ctx))


def test_linear_attention_state_is_constant_and_split_over_tp():
    q = catalog.model("Qwen3.5-397B-A17B")
    # 45 GDN layers x (64 heads x 128 x 128 fp32 recurrent state + (2*16*128 + 64*128) x 3 conv inputs in 16-bit)
    assert mm.linear_state_bytes_per_seq(q) == 45 * (64 * 128 * 128 * 4 + (4096 + 8192) * 3 * 2)
    s = ModelShape.from_models([q])
    lc1, lc8 = layer_costs(s, 1.0), layer_costs(s, 8.0)
    assert lc1.state_bytes_per_seq == mm.linear_state_bytes_per_seq(q) and lc8.state_bytes_per_seq * 8 == \
        pytest.approx(lc1.state_bytes_per_seq)
    a, b = memory.seq_cache_bytes_gpu(lc8, 1.0, 1.0, 1000), memory.seq_cache_bytes_gpu(lc8, 1.0, 1.0, 2000)
    assert b - a == pytest.approx(1000 * lc8.kv_elems_per_token)  # only the 15 full layers grow
    assert lc1.kv_elems_per_token == 15 * 2 * 2 * 256 and lc1.linear_flops_per_token > 0
    # plain transformers: no state, no window, no sparse terms
    lc = layer_costs(ModelShape.from_models([catalog.model("Llama-3.1-70B")]), 4.0)
    assert (lc.state_bytes_per_seq, lc.win_kv_elems_per_token, lc.sparse_topk, lc.linear_flops_per_token) == (0,) * 4


def test_window_bounded_layers():
    oss = catalog.model("gpt-oss-120b")
    lc = layer_costs(ModelShape.from_models([oss]), 1.0)
    assert lc.window_tokens == 128 and lc.win_kv_elems_per_token == 18 * 2 * 8 * 64
    per_tok = 2 * 8 * 64 * 2.0
    assert memory.seq_cache_bytes_gpu(lc, 2.0, 1.0, 10_000) == (18 * 10_000 + 18 * 128) * per_tok
    scout = catalog.model("Llama-4-Scout")
    assert mm.kv_cache_bytes(scout, 100_000) == (12 * 100_000 + 36 * 8192) * mm.kv_bytes_per_token_layer(scout)


# Replacing full-attention layers with linear ones never adds KV bytes per token (the state is per sequence).
BASES = ["Qwen3.5-27B", "Llama-3.1-8B", "Mixtral-8x7B", "gemma-2-9b", "DeepSeek-V3", "GLM-5"]


@settings(max_examples=60, deadline=None)
@given(base=st.sampled_from(BASES), a=st.integers(0, 200), b=st.integers(0, 200),
       tp=st.sampled_from([1.0, 2.0, 4.0, 8.0]), ctx=st.integers(1, 500_000), kind=st.sampled_from(["gdn", "mamba2"]))
def test_kv_bytes_per_token_never_increase_when_layers_turn_linear(base, a, b, tp, ctx, kind):
    m = catalog.model(base)
    lo, hi = sorted((a % (m.n_layers + 1), b % (m.n_layers + 1)))

    def hybrid(n_lin):
        return dataclasses.replace(m, n_linear_attn_layers=n_lin, linear_attn_kind=kind, linear_num_k_heads=8,
                                   linear_num_v_heads=16, linear_head_k_dim=64, linear_head_v_dim=64,
                                   linear_conv_kernel=4, n_sliding_layers=min(m.n_sliding_layers, m.n_layers - n_lin))

    m_lo, m_hi = hybrid(lo), hybrid(hi)
    lc_lo, lc_hi = (layer_costs(ModelShape.from_models([x]), tp) for x in (m_lo, m_hi))
    assert lc_hi.kv_elems_per_token <= lc_lo.kv_elems_per_token
    assert lc_hi.attn_flops_decode <= lc_lo.attn_flops_decode
    assert mm.kv_cache_bytes(m_hi, ctx) <= mm.kv_cache_bytes(m_lo, ctx)
    assert lc_hi.state_bytes_per_seq >= lc_lo.state_bytes_per_seq  # ... the constant state grows instead
    if hi == m.n_layers:
        assert lc_hi.kv_elems_per_token == 0 and mm.kv_cache_bytes(m_hi, ctx) == 0


def test_new_families_run_through_the_estimator():
    names = ["Qwen3.5-397B-A17B", "MiniMax-M2.5", "Kimi-K2.5", "GLM-5", "Llama-4-Maverick", "Nemotron-H-56B"]
    df = inference.estimate(names, "H200", tp=8, weight_dtype="fp8", batch_size=16, input_len=2048, output_len=256)
    assert len(df) == len(names)
    assert np.isfinite(df["tpot_ms"]).all() and (df["tpot_ms"] > 0).all()


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "roofline"])
def test_nemotron3_moe_hybrid_is_costed_on_every_engine(engine):
    """Mamba-2 / attention mixers with MoE blocks: measured where the engine has a profile; the six mixer layers
    without a feed-forward block cost less than the same layers given a dense MLP."""
    m = catalog.model("Nemotron-3-Nano-30B-A3B")
    with_mlp = dataclasses.replace(m, name="nano-with-mlp", hf_id="", aliases=(), ffn=4 * m.hidden)
    # 8 prompts of 2,048 tokens: within the tokens the tables measured (`measured.beyond_reach`)
    df = inference.estimate([m, with_mlp], "H100", tp=1, batch_size=8, input_len=2048, output_len=256,
                            engine=engine)
    assert df["fits"].all() and np.isfinite(df[["ttft_ms", "tpot_ms"]].to_numpy()).all()
    assert set(df["source"]) == ({"roofline"} if engine == "roofline" else {"interpolated"})
    assert df["tpot_ms"].iloc[0] < df["tpot_ms"].iloc[1] and df["ttft_ms"].iloc[0] < df["ttft_ms"].iloc[1]


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "roofline"])
def test_latent_moe_experts_work_at_the_latent_width(engine):
    """Nemotron-3 Super: the routed experts read and write a 1,024-wide token (a quarter of the hidden size) between
    two hidden x latent projections. Against the same model with its experts on the hidden state: a quarter of the
    expert weights, the projections' weights more, and a decode step no slower inside one TP group and faster with
    wide EP across attention-DP ranks (its all-to-alls move the latent)."""
    from objectives.inference.ops import ModelShape, layer_costs
    m = catalog.model("Nemotron-3-Super-120B-A12B-FP8")
    assert (m.moe_latent, m.hidden, m.n_experts, m.top_k) == (1024, 4096, 512, 22)
    full = dataclasses.replace(m, name="super-no-latent", hf_id="", aliases=(), moe_latent=0)
    lc, lf = layer_costs(ModelShape.from_models([m]), 1.0), layer_costs(ModelShape.from_models([full]), 1.0)
    assert lc.expert_params == pytest.approx(lf.expert_params / 4)
    n_moe = mm.n_moe_layers(m)
    assert lc.dense_params - lf.dense_params == pytest.approx(n_moe * 2 * m.hidden * m.moe_latent)
    kw = dict(gpu="B200", batch_size=64, input_len=2048, output_len=256, engine=engine)
    tp8 = inference.estimate([m, full], tp=8, ep=8, **kw)
    dp8 = inference.estimate([m, full], tp=1, attn_dp=8, ep=8, **kw)
    assert tp8["fits"].all() and dp8["fits"].all()
    # TP 8 leaves each GPU 1,280 Mamba-2 conv channels, below the 1,536 its tables measured; attention DP the 10,240
    # (and 64 prompts of 2,048 tokens per rank are past the tokens the tables measured: one prompt per rank is not)
    assert set(tp8["source"]) == ({"roofline"} if engine == "roofline" else {"extrapolated"})
    one = inference.estimate([m, full], tp=1, attn_dp=8, ep=8, **{**kw, "batch_size": 1})
    assert set(one["source"]) == ({"roofline"} if engine == "roofline" else {"interpolated"})
    assert tp8["tpot_ms"].iloc[0] <= tp8["tpot_ms"].iloc[1] and dp8["tpot_ms"].iloc[0] < dp8["tpot_ms"].iloc[1]
    # the closed form's dispatch / combine bytes per token: the latent's, a quarter of the hidden state's
    from objectives.inference.core import prepare

    def tok_s(model, **kw):
        return float(prepare(model, "B200", weight_dtype="fp8", engine="roofline", **kw).coeffs.tok_s)
    base = tok_s(m)                                     # no all-to-all: the elementwise passes only
    assert base == pytest.approx(tok_s(full))
    wide = dict(tp=1, attn_dp=8, ep=8)
    assert (tok_s(m, **wide) - base) / (tok_s(full, **wide) - base) == pytest.approx(m.moe_latent / m.hidden)
    # the layers_block_type spelling (Ultra's config) reads as the pattern spelling (Super's) would
    ultra = _raw("Nemotron-3-Ultra-550B-A55B")
    letters = {"mamba": "M", "attention": "*", "mlp": "-", "moe": "E"}
    as_pattern = dict({k: v for k, v in ultra.items() if k not in ("layers_block_type",)},
                      hybrid_override_pattern="".join(letters[b] for b in ultra["layers_block_type"]))
    a, b = catalog.model_from_hf_config(ultra), catalog.model_from_hf_config(as_pattern)
    assert dataclasses.replace(a, source="") == dataclasses.replace(b, source="")


# ------------------------------------------------------------------------------------------ names and checkpoints
@pytest.mark.parametrize("hf_id,name,dtype,scheme", [
    ("Qwen/Qwen3-235B-A22B-FP8", "Qwen3-235B-A22B-FP8", "fp8", "fp8_block"),           # shipped, its own config
    ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "Qwen3-235B-A22B-FP8", "fp8", "fp8_block"),
    ("nvidia/Llama-3.1-70B-Instruct-FP8", "Llama-3.1-70B-FP8", "fp8", "fp8_per_tensor"),  # shipped + hf_quant
    ("nvidia/Llama-3.1-70B-Instruct-NVFP4", "Llama-3.1-70B-NVFP4", "fp4", "nvfp4"),       # derived from its id
    ("nvidia/DeepSeek-R1-NVFP4", "DeepSeek-R1-NVFP4", "fp4", "nvfp4"),
    ("nvidia/DeepSeek-R1-0528-FP4", "DeepSeek-R1-FP4", "fp4", "nvfp4"),
    ("nvidia/DeepSeek-R1-0528-FP4-v2", "DeepSeek-R1-FP4", "fp4", "nvfp4"),               # a packaging revision
    ("nvidia/DeepSeek-R1-0528-NVFP4-v2", "DeepSeek-R1-NVFP4", "fp4", "nvfp4"),
    ("Qwen/Qwen3-32B-AWQ", "Qwen3-32B-AWQ", "int4", "int4_awq"),
    ("Qwen/Qwen3-8B-GPTQ-Int4", "Qwen3-8B-GPTQ-Int4", "int4", "int4_gptq"),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8-dynamic", "Llama-3.1-8B-FP8-dynamic", "fp8", "fp8_per_channel"),
    ("Qwen/Qwen3-30B-A3B-Thinking-2507", "Qwen3-30B-A3B", "", ""),
    ("Qwen/Qwen3-235B-A22B-Instruct-2507", "Qwen3-235B-A22B", "", ""),
    ("deepseek-ai/DeepSeek-V3.1", "DeepSeek-V3", "fp8", "fp8_block"),
    ("deepseek-ai/DeepSeek-V3.1-Terminus", "DeepSeek-V3", "fp8", "fp8_block"),
    ("DeepSeek-V3.1", "DeepSeek-V3", "fp8", "fp8_block"),
    ("nvidia/DeepSeek-V3.1-NVFP4", "DeepSeek-V3-NVFP4", "fp4", "nvfp4"),
    ("openai/gpt-oss-120b", "gpt-oss-120b", "fp4", "mxfp4"),
    ("MiniMaxAI/MiniMax-M2.5", "MiniMax-M2.5", "fp8", "fp8_block"),
    ("Qwen/Qwen3.5-397B-A17B", "Qwen3.5-397B-A17B", "", ""),
    ("moonshotai/Kimi-K2.5", "Kimi-K2.5", "int4", "int4_group"),
    ("zhipuai/GLM-5", "GLM-5", "", ""),
    ("nvidia/GLM-5-NVFP4", "GLM-5-NVFP4", "fp4", "nvfp4"),
    ("nvidia/Kimi-K2.5-NVFP4", "Kimi-K2.5-NVFP4", "fp4", "nvfp4"),
])
def test_checkpoint_ids_resolve_to_their_architecture_and_format(hf_id, name, dtype, scheme):
    cat = fresh_catalog()  # derived variants register themselves: keep the default catalog untouched
    m = cat.model(hf_id)
    assert (m.name, m.quant_weight_dtype, m.quant_scheme) == (name, dtype, scheme)
    base = cat.model(name.split("-FP8")[0].split("-NVFP4")[0].split("-FP4")[0].split("-AWQ")[0].split("-GPTQ")[0])
    assert (m.n_layers, m.hidden, m.n_experts) == (base.n_layers, base.hidden, base.n_experts)
    assert cat.model(hf_id) is m  # the same record on every lookup
    assert cat.model_table([hf_id])["name"][0] == name


@pytest.mark.parametrize("first", [0, 1])
def test_two_publishers_fp8_releases_keep_their_own_formats_whichever_is_asked_first(first):
    # NVIDIA's ModelOpt FP8 (per-tensor, FP8 KV-cache scales) and Meta's fbgemm FP8 (per-channel) of one
    # architecture: both derive "<base>-FP8"; the second asked must not take the first's scheme and KV dtype
    ids = {"nvidia/Llama-3.1-405B-Instruct-FP8": ("fp8", "fp8_per_tensor", "fp8"),
           "meta-llama/Llama-3.1-405B-Instruct-FP8": ("fp8", "fp8_per_channel", "")}
    order = list(ids)[first:] + list(ids)[:first]
    cat = fresh_catalog()
    got = {i: cat.model(i) for i in order}
    for i, fmt in ids.items():
        assert (got[i].quant_weight_dtype, got[i].quant_scheme, got[i].quant_kv_dtype) == fmt
        assert cat.model(i) is got[i]
        assert got[i].n_layers == cat.model("Llama-3.1-405B").n_layers
    assert got[order[0]].name == "Llama-3.1-405B-FP8"
    assert len({m.name for m in got.values()}) == 2


@pytest.mark.parametrize("hf_id,fmt", [
    # Red Hat's (Neural Magic's) "-FP8" releases: static per-tensor FP8 weights and activations (AutoFP8 /
    # llm-compressor), no KV-cache scales; their "-FP8-KV" releases carry FP8 KV-cache scales
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8", ("fp8", "fp8_per_tensor", "")),
    ("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", ("fp8", "fp8_per_tensor", "")),
    ("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8-KV", ("fp8", "fp8_per_tensor", "fp8")),
    # the same repository name as a shipped checkpoint of another publisher (NVIDIA's ModelOpt FP8 with FP8 KV
    # scales; Qwen's block FP8): the id's own publisher's format, not the shipped record's
    ("RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8", ("fp8", "fp8_per_tensor", "")),
    ("nvidia/Qwen3-235B-A22B-FP8", ("fp8", "fp8_per_tensor", "fp8")),
    # Red Hat's "-quantized.w4a16" / ".w8a8" / ".w8a16" releases (compressed-tensors INT4 / INT8)
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", ("int4", "int4_group", "")),
    ("RedHatAI/Meta-Llama-3.1-70B-Instruct-quantized.w8a8", ("int8", "int8_sq", "")),
    ("neuralmagic/Meta-Llama-3.1-8B-Instruct-quantized.w8a16", ("int8", "int8_wo", "")),
])
def test_a_publishers_release_takes_that_publishers_format(hf_id, fmt):
    cat = fresh_catalog()
    m = cat.model(hf_id)
    assert (m.quant_weight_dtype, m.quant_scheme, m.quant_kv_dtype) == fmt
    base = cat.model(hf_id.split("/")[1].replace("Meta-", "").split("-Instruct")[0])
    assert (m.n_layers, m.hidden, m.n_experts) == (base.n_layers, base.hidden, base.n_experts)
    assert cat.model(hf_id) is m


def test_the_shipped_checkpoints_keep_their_own_ids_and_fine_tunes():
    """The guard above leaves a shipped checkpoint its own publisher's ids and their fine-tunes."""
    cat = fresh_catalog()
    assert cat.model("nvidia/Llama-3.1-70B-Instruct-FP8").name == "Llama-3.1-70B-FP8"
    assert cat.model("Qwen/Qwen3-235B-A22B-Thinking-2507-FP8").name == "Qwen3-235B-A22B-FP8"
    assert cat.model("Llama-3.1-70B-Instruct-FP8").name == "Llama-3.1-70B-FP8"  # no publisher: the shipped one


def test_kimi_k2_thinking_is_its_int4_checkpoint_not_the_fp8_instruct_one():
    """moonshotai/Kimi-K2-Thinking ships INT4 routed experts (compressed-tensors, quantization-aware trained, the
    format Kimi-K2.5 adopted) on Kimi-K2's shapes: the "-Thinking" fine-tune rule had priced it as Kimi-K2-Instruct's
    block FP8, twice its experts' bytes."""
    cat = fresh_catalog()
    m, k2, k25 = cat.model("moonshotai/Kimi-K2-Thinking"), cat.model("Kimi-K2"), cat.model("Kimi-K2.5")
    assert (m.quant_weight_dtype, m.quant_scheme) == (k25.quant_weight_dtype, k25.quant_scheme) == ("int4",
                                                                                                    "int4_group")
    # its ignore list keeps attention, shared experts and the dense first layer's MLP in 16 bits (Kimi-K2.5's)
    kept = (m.attn_16bit_weights, m.shared_16bit_share, m.dense_mlp_16bit_share)
    assert kept == (k25.attn_16bit_weights, k25.shared_16bit_share, k25.dense_mlp_16bit_share) == (True, 1.0, 1.0)
    assert dataclasses.replace(m, name="", hf_id="", aliases=(), source="", quant_weight_dtype="", quant_scheme="", quant_method="",
                               max_position=0, attn_16bit_weights=False, shared_16bit_share=0.0,
                               dense_mlp_16bit_share=0.0, attn_quant_shares=()) == \
        dataclasses.replace(k2, name="", hf_id="", aliases=(), source="", quant_weight_dtype="", quant_scheme="", quant_method="",
                            max_position=0)
    assert cat.model("moonshotai/Kimi-K2-Instruct-0905").name == "Kimi-K2"


def test_a_revision_tag_of_an_unknown_architecture_is_still_refused_by_its_own_name():
    cat = fresh_catalog()
    with pytest.raises(CatalogError, match=r"unknown model 'nvidia/Llama-3_1-Nemotron-Ultra-253B-v1'"):
        cat.model("nvidia/Llama-3_1-Nemotron-Ultra-253B-v1")
    with pytest.raises(CatalogError, match=r"unknown model 'acme/NoSuchModel-FP8-v2'"):
        cat.model("acme/NoSuchModel-FP8-v2")


def test_a_checkpoints_format_is_the_default_weight_dtype():
    """Issue 13 item 5: FP8, FP8-block, NVFP4, MXFP4 and int4 checkpoints set the default weight format of every
    entry point (weight_dtype None); an explicit dtype still wins, an unquantized checkpoint stays bf16."""
    ids = ["Qwen/Qwen3-235B-A22B-FP8", "nvidia/DeepSeek-R1-NVFP4", "openai/gpt-oss-120b", "moonshotai/Kimi-K2.5",
           "Llama-3.1-70B"]
    df = inference.estimate(ids, "H200", tp=8, batch_size=8, input_len=1024, output_len=128)
    assert df["weight_dtype"].tolist() == ["fp8", "fp4", "fp4", "int4", "bf16"]
    mixed = inference.estimate("Qwen/Qwen3-235B-A22B-FP8", "H200", tp=8, weight_dtype=[None, "bf16"])
    assert mixed["weight_dtype"].tolist() == ["fp8", "bf16"]
    # gpt-oss-120b's MXFP4 checkpoint serves from one 80 GB GPU (in bf16 it needs about 240 GB)
    one = inference.max_throughput("openai/gpt-oss-120b", "H100", concurrency=8, input_len=1024, output_len=1024)
    assert bool(one["fits"].iloc[0]) and one["weight_dtype"].iloc[0] == "fp4"
    assert inference.StepModel("openai/gpt-oss-120b", "H100").kv_capacity_tokens > 0
    assert not bool(inference.estimate("openai/gpt-oss-120b", "H100", weight_dtype="bf16")["fits"].iloc[0])
    # the GPU-mix planner too: its capacity table of the MXFP4 checkpoint is the explicit fp4 one, not bf16's
    from objectives import mix, serving
    slo = serving.SLO(ttft_ms=2000, tpot_ms=100)
    args = ("openai/gpt-oss-120b", [mix.ReplicaType("H100-SXM-80GB", 1)], [1024.0], [256.0], slo)
    default = mix.capacity_table(*args)
    assert default[0, 0] > 0 and default[0, 0] == mix.capacity_table(*args, weight_dtype="fp4")[0, 0]
    assert mix.capacity_table(*args, weight_dtype="bf16")[0, 0] == 0   # bf16 does not fit one H100


def test_silicon_slice_model_names_resolve():

    import pandas as pd

    csv = SHARED / "calibration" / "serving_silicon.csv"
    names = sorted(pd.read_csv(csv, usecols=["model_path"])["model_path"].unique()) if csv.exists() else [
        "MiniMaxAI/MiniMax-M2.5", "Qwen/Qwen3.5-397B-A17B", "moonshotai/Kimi-K2.5", "zhipuai/GLM-5"]
    got = {n: catalog.model(n).name for n in names}
    assert set(got.values()) == {"MiniMax-M2.5", "Qwen3.5-397B-A17B", "Kimi-K2.5", "GLM-5"}, got


def test_unknown_names_and_unknown_bases_keep_failing_with_close_matches():
    with pytest.raises(CatalogError, match="unknown model 'zai-org/GLM-5.9'; close matches: .*GLM-5"):
        catalog.model("zai-org/GLM-5.9")
    with pytest.raises(CatalogError, match="unknown model 'nvidia/Qwen3.5-397B-A18B-NVFP4'; close matches: .*Qwen3.5"):
        catalog.model("nvidia/Qwen3.5-397B-A18B-NVFP4")
    with pytest.raises(CatalogError, match="unknown model 'acme/NoSuchModel-FP8'"):
        catalog.model("acme/NoSuchModel-FP8")


# ------------------------------------------------------------------------------------------ quantization configs
@pytest.mark.parametrize("q,want", [
    ({"quant_method": "fp8", "weight_block_size": [128, 128], "fmt": "e4m3"}, ("fp8", "fp8_block", "")),
    ({"quant_method": "fp8", "activation_scheme": "static"}, ("fp8", "fp8_per_tensor", "")),
    ({"quant_method": "fbgemm_fp8"}, ("fp8", "fp8_per_channel", "")),
    ({"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]}, ("fp4", "mxfp4", "")),
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, ("int4", "int4_awq", "")),
    ({"quant_method": "gptq", "bits": 8}, ("int8", "int8_gptq", "")),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, ("int4", "bnb_4bit", "")),
    ({"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"group_0": {
        "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32}}}}, ("int4", "int4_group", "")),
    ({"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {"g": {
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}},
      "kv_cache_scheme": {"num_bits": 8, "type": "float"}}, ("fp8", "fp8_per_channel", "fp8")),
    ({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized"}, ("fp4", "nvfp4", "")),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_scheme": {"num_bits": 8, "type": "float"}},
     ("fp4", "nvfp4", "fp8")),
])
def test_quantization_config_formats(q, want):
    assert from_quantization_config(q) == want
    assert checkpoint_quant({"quantization_config": q}) == want
    assert checkpoint_quant({"text_config": {"quantization_config": q}}) == want  # nested (Kimi-K2.5)


def test_hf_quant_config_alongside_the_config(tmp_path):
    cfg = {k: v for k, v in _raw("Llama-3.1-70B").items() if k not in ("name", "hf_id", "aliases", "source")}
    assert catalog.model_from_hf_config(cfg).quant_weight_dtype == ""
    f = tmp_path / "hf_quant_config.json"
    f.write_text(json.dumps({"producer": {"name": "modelopt"},
                             "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16}}))
    m = catalog.model_from_hf_config(cfg, name="x", hf_quant_config=f)
    assert (m.quant_weight_dtype, m.quant_scheme, m.quant_kv_dtype) == ("fp4", "nvfp4", "fp8")
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps(cfg))
    cat = Catalog()
    m = cat.load_model_file(cfg_file, name="my-llama-nvfp4", hf_quant_config=f)
    assert cat.model("my-llama-nvfp4") is m and m.quant_scheme == "nvfp4" and m.n_layers == 80
    m = catalog.model_from_hf_config(dict(cfg, hf_quant_config={"quantization": {"quant_algo": "FP8"}}))
    assert (m.quant_weight_dtype, m.quant_scheme, m.quant_kv_dtype) == ("fp8", "fp8_per_tensor", "")
    # MIXED_PRECISION: the narrowest format present is the checkpoint's default (experts in NVFP4, attention FP8)
    mixed = {"quantization": {"quant_algo": "MIXED_PRECISION", "kv_cache_quant_algo": "FP8", "quantized_layers": {
        "layers.0.self_attn.q_proj": {"quant_algo": "FP8"}, "layers.0.mlp.experts": {"quant_algo": "W4A16_NVFP4"}}}}
    assert from_hf_quant_config(mixed) == ("fp4", "nvfp4_w4a16", "fp8")
    # the shipped checkpoints carry theirs
    assert catalog.model("GLM-5-NVFP4").quant_scheme == "nvfp4" and catalog.model("GLM-5-FP8").quant_scheme == \
        "fp8_block"
    assert catalog.model("Llama-3.1-70B-FP8").quant_kv_dtype == "fp8"


@pytest.mark.parametrize("q,match", [
    ({"quant_method": "hqq"}, "quant_method 'hqq' cannot be costed"),
    ({"quant_method": "awq", "bits": 3}, "awq with bits=3"),
    ({"quant_method": "modelopt", "quant_algo": "FP6"}, "quant_algo 'FP6' cannot be costed"),
    ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 2, "type": "int"}}}},
     "num_bits=2"),
])
def test_unknown_quantization_is_an_error_naming_it(q, match):
    with pytest.raises(CatalogError, match=match):
        from_quantization_config(q)
    with pytest.raises(CatalogError, match="quant_algo 'INT3' cannot be costed"):
        from_hf_quant_config({"quantization": {"quant_algo": "INT3"}})


# ------------------------------------------------------------------------------------------ what cannot be costed
def test_architectures_that_cannot_be_costed_name_the_field():
    with pytest.raises(CatalogError, match="unsupported architecture 'RwkvForCausalLM'"):
        catalog.model_from_hf_config({"architectures": ["RwkvForCausalLM"], "model_type": "rwkv", "hidden_size": 2048})
    # Gemma 4 is read now: a truncated text_config names the field it lacks
    with pytest.raises(CatalogError, match="Gemma4ForConditionalGeneration lacks the required field "
                                           "'num_attention_heads'"):
        catalog.model_from_hf_config({"architectures": ["Gemma4ForConditionalGeneration"], "model_type": "gemma4",
                                      "text_config": {"model_type": "gemma4_text", "hidden_size": 2816}})
    nem = {k: v for k, v in _raw("Nemotron-H-56B").items() if k not in ("name", "hf_id", "aliases", "source")}
    with pytest.raises(CatalogError, match=r"hybrid_override_pattern has block kinds \['X'\]"):
        catalog.model_from_hf_config(dict(nem, hybrid_override_pattern="MX*-" * 2, num_hidden_layers=8))
    nano = {k: v for k, v in _raw("Nemotron-3-Nano-30B-A3B").items() if k not in ("name", "hf_id", "aliases", "source")}
    with pytest.raises(CatalogError, match=r"mixes MLP \('-'\) and MoE \('E'\) blocks"):
        catalog.model_from_hf_config(dict(nano, hybrid_override_pattern="ME*-" * 2, num_hidden_layers=8))
    with pytest.raises(CatalogError, match="3 MoE blocks for 2 mixer blocks"):
        catalog.model_from_hf_config(dict(nano, hybrid_override_pattern="MEEE*", num_hidden_layers=5))
    with pytest.raises(CatalogError, match="moe_latent_size=-4 must be a positive integer"):
        catalog.model_from_hf_config(dict(nano, moe_latent_size=-4))
    with pytest.raises(CatalogError, match=r"moe_latent=4096 needs an MoE model and 0 < moe_latent < hidden"):
        Catalog().register_model(dataclasses.replace(catalog.model("Nemotron-3-Super-120B-A12B-FP8"), name="wide",
                                                     hf_id="", aliases=(), moe_latent=4096))
    ultra = {k: v for k, v in _raw("Nemotron-3-Ultra-550B-A55B").items() if k not in ("name", "hf_id", "aliases")}
    with pytest.raises(CatalogError, match=r"layers_block_type has block kinds \['conv'\]"):
        catalog.model_from_hf_config(dict(ultra, layers_block_type=["mamba", "conv", "moe", "attention"]))
    with pytest.raises(CatalogError, match=r"field 'ffn' = 0 must be a positive integer \(0 only for an MoE model\)"):
        Catalog().register_model(dataclasses.replace(catalog.model("Nemotron-H-56B"), name="no-mlp", hf_id="",
                                                     aliases=(), ffn=0))
    with pytest.raises(CatalogError, match="lacks the required field 'hybrid_override_pattern'"):
        catalog.model_from_hf_config({k: v for k, v in nem.items() if k != "hybrid_override_pattern"})
    qwen = _raw("Qwen3.5-27B")
    tc = dict(qwen["text_config"])
    tc["layer_types"] = ["sliding_attention"] + tc["layer_types"][1:]
    with pytest.raises(CatalogError, match=r"layer_types has kinds \['sliding_attention'\] that cannot be costed"):
        catalog.model_from_hf_config(dict(qwen, text_config=tc))
    with pytest.raises(CatalogError, match="lacks the required field 'linear_num_value_heads'"):
        catalog.model_from_hf_config(dict(qwen, text_config={k: v for k, v in qwen["text_config"].items()
                                                             if k != "linear_num_value_heads"}))
    mini = _raw("MiniMax-M2.5")
    with pytest.raises(CatalogError, match="attn_type_list marks lightning"):
        catalog.model_from_hf_config(dict(mini, attn_type_list=[0, 1] * 31))
    # a record built by hand with a layer kind the cost model does not know
    bad = dataclasses.replace(catalog.model("Llama-3.1-8B"), n_linear_attn_layers=8, linear_attn_kind="rwkv7")
    with pytest.raises(CatalogError, match="linear_attn_kind='rwkv7' on 8 layers cannot be costed"):
        ModelShape.from_models([bad])
    with pytest.raises(CatalogError, match="linear_attn_kind='rwkv7'"):
        inference.estimate(bad, "H100", tp=1)
    dsa = dataclasses.replace(catalog.model("Llama-3.1-8B"), index_topk=2048, index_n_heads=32, index_head_dim=128)
    with pytest.raises(CatalogError, match="index_topk .* only costed on MLA models"):
        ModelShape.from_models([dsa])
    no_dims = dataclasses.replace(catalog.model("Llama-3.1-8B"), name="x", n_linear_attn_layers=8,
                                  linear_attn_kind="gdn")
    with pytest.raises(CatalogError, match="model 'x': linear_num_k_heads = 0 must be > 0 for linear attention"):
        inference.estimate(no_dims, "H100")
    cat = Catalog()
    for bad_model, match in [(no_dims, "linear_num_k_heads = 0"), (bad, "linear_attn_kind 'rwkv7'"),
                             (dsa, "index_topk=2048 .* needs an MLA model")]:
        with pytest.raises(CatalogError, match=match):
            cat.register_model(bad_model)
    assert cat.models() == []


@pytest.mark.parametrize("engine", ["roofline", None])
def test_every_catalog_model_is_costed_on_a_rack(engine):
    """Each shipped model (the aiconfigurator-core configs included: Qwen3-Coder, Qwen3-VL's language model, GLM-5.x,
    Kimi-K2.6/2.7, MiniMax-M2.7, Qwen3.6) gets a finite, positive TTFT and TPOT on the closed form and on the
    GPU's kernel profile; TP 8 x PP 4 on GB200 NVL72 holds the largest, TP 1 the ones whose heads TP 8 does not
    divide (Falcon-7B: 71)."""
    import numpy as np
    import pandas as pd

    from objectives import inference

    names = np.array(catalog.models(), dtype=object)
    # prompts of 1,792 tokens: Falcon's 2,048-token context holds them with their outputs
    r = inference.estimate(names, "GB200", tp=8, pp=4, batch_size=16, input_len=1792, output_len=256, engine=engine)
    heads = r["reason"].str.startswith("tp does not divide").to_numpy()
    # block-FP8 checkpoints whose 128-wide blocks TP 8 does not tile (R_BLOCK): TP 2 x EP 2 keeps whole experts
    blocks = (r["reason"] == REASONS[R_BLOCK]).to_numpy()
    assert set(names[blocks]) >= {"Qwen3-235B-A22B-FP8", "MiniMax-M2.5", "Step-3.7-Flash-FP8"}
    if heads.any() or blocks.any():
        r1 = inference.estimate(names[heads], "GB200", tp=1, batch_size=16, input_len=1792, output_len=256,
                                engine=engine)
        r2 = inference.estimate(names[blocks], "GB200", tp=2, pp=4, ep=2, batch_size=16, input_len=1792,
                                output_len=256, engine=engine)
        r = pd.concat([r[~heads & ~blocks], r1, r2], ignore_index=True)
    ok = r["fits"].astype(bool) & (r["tpot_ms"] > 0) & (r["ttft_ms"] > 0) & np.isfinite(r["tpot_ms"].astype(float))
    # a block-FP8 record whose experts are no whole number of blocks runs on no layout (a variant other tests
    # register, e.g. Nemotron-3-Nano's 1856-wide experts): refused by name everywhere
    never = (r["reason"] == REASONS[R_BLOCK]) & r["model"].map(lambda n: catalog.model(n).moe_ffn % 128 != 0)
    assert (ok | never).all(), r.loc[~ok, ["model", "reason"]]
    assert {"Qwen3-Coder-480B-A35B-Instruct", "GLM-5.1-FP8", "Kimi-K2.6-NVFP4", "Qwen3-VL-8B-Instruct"} <= set(names)


def test_pruned_blocks_without_attention_hold_no_kv_and_skip_its_all_reduce():
    """Llama-3.3-Nemotron-Super-49B (DeciLM): 31 of its 80 blocks have no attention ("no_op") and every block has
    its own MLP width. The 49 attention blocks hold the KV cache and the attention weights; a TP all-reduce follows
    each attention and each MLP: 49 + 80 = 129 per forward. Unsupported block kinds are refused by name."""
    m = catalog.model("Llama-3.3-Nemotron-Super-49B")
    assert (m.n_layers, m.n_ffn_only_layers, m.n_attention_layers) == (80, 31, 49)
    assert mm.kv_cache_bytes(m, 1000, "bf16") == pytest.approx(49 * 2 * 8 * 128 * 2 * 1000)
    raw = _raw("Llama-3.3-Nemotron-Super-49B")
    widths = [0 if b["ffn"].get("no_op") else -(-int(2 * b["ffn"]["ffn_mult"] * 8192 / 3) // 256) * 256
              for b in raw["block_configs"]]
    assert mm.dense_mlp_params_per_layer(m) * 80 == pytest.approx(3 * 8192 * sum(widths), rel=1e-4)
    lc = layer_costs(ModelShape.from_models([m]), 4.0)
    assert float(lc.n_allreduce) == 129
    assert float(lc.kv_elems_per_token) == pytest.approx(49 * 2 * 2 * 128)  # 8 KV heads over TP 4
    cfg = {k: v for k, v in raw.items() if k not in ("name", "hf_id", "aliases", "source", "copied_from")}
    blocks = [dict(b) for b in cfg["block_configs"]]
    blocks[3] = {**blocks[3], "attention": {**blocks[3]["attention"], "no_op": False, "replace_with_linear": True}}
    with pytest.raises(CatalogError, match="block 3 attention.replace_with_linear=True cannot be costed"):
        catalog.model_from_hf_config({**cfg, "block_configs": blocks}, name="nas-linear")
    blocks = [dict(b) for b in cfg["block_configs"]]
    blocks[0] = {**blocks[0], "attention": {**blocks[0]["attention"], "n_heads_in_group": 4}}
    with pytest.raises(CatalogError, match=r"KV-head groups \[4, 8\]"):
        catalog.model_from_hf_config({**cfg, "block_configs": blocks}, name="nas-groups")


# ------------------------------------------------------------------------------------------ per-kind attention shapes
def _cfg(name: str) -> dict:
    return {k: v for k, v in _raw(name).items() if k not in ("name", "hf_id", "aliases", "source", "copied_from")}


def test_mimo_v2_flash_window_layers_have_their_own_kv_heads_and_narrow_values():
    """MiMo-V2-Flash: 1 in hybrid_layer_pattern marks a 128-token window layer with 8 KV heads, 0 a full layer with
    4; queries and keys are 192 wide, values 128. Parameters, KV bytes and attention work follow each kind."""
    raw = _raw("MiMo-V2-Flash")
    m = catalog.model("XiaomiMiMo/MiMo-V2-Flash")
    n_sw = sum(raw["hybrid_layer_pattern"])
    assert (mm.n_sliding_layers(m), m.sliding_window, m.swa_n_kv_heads, m.head_dim, m.v_head_dim) == \
        (n_sw, 128, 8, 192, 128) == (39, 128, 8, 192, 128)
    assert (m.first_k_dense, mm.n_moe_layers(m), m.ffn, m.moe_ffn, m.shared_ffn) == (1, 47, 16384, 2048, 0)
    assert (m.quant_weight_dtype, m.quant_scheme, m.is_mla) == ("fp8", "fp8_block", False)
    # KV bytes by hand from the config: a key of head_dim and a value of v_head_dim per KV head and token
    h, nh, L = raw["hidden_size"], raw["num_attention_heads"], raw["num_hidden_layers"]
    full = raw["num_key_value_heads"] * (raw["head_dim"] + raw["v_head_dim"]) * 2            # bf16 bytes
    swa = raw["swa_num_key_value_heads"] * (raw["swa_head_dim"] + raw["swa_v_head_dim"]) * 2
    for ctx in (1, 100, 128, 10_000, 262_144):
        assert mm.kv_cache_bytes(m, ctx) == (L - n_sw) * full * ctx + n_sw * swa * min(ctx, 128)
    # attention projections by hand: q (192-wide heads), k, v (128-wide), o (from 128-wide heads)
    def attn(kv: int) -> int:
        return h * nh * 192 + h * kv * (192 + 128) + nh * 128 * h
    assert mm.attention_params_per_layer(m) == attn(4) and mm.attention_params_per_layer(m, sliding=True) == attn(8)
    assert mm.mixer_params(m) == (L - n_sw) * attn(4) + n_sw * attn(8)
    # the cost model's per-GPU view agrees with the catalog's counts on one GPU
    lc1 = layer_costs(ModelShape.from_models([m]), 1.0)
    assert lc1.dense_params + lc1.expert_params * m.n_experts + lc1.embed_params == \
        pytest.approx(mm.total_params(m), rel=1e-9)
    for ctx in (1, 5000, 300_000):
        assert memory.seq_cache_bytes_gpu(lc1, 2.0, 1.0, ctx) == pytest.approx(mm.sequence_cache_bytes(m, ctx))
    # ... and per GPU: TP 4 holds one full-layer KV head and two window-layer ones, TP 8 one of each
    for tp in (1.0, 4.0, 8.0):
        lc = layer_costs(ModelShape.from_models([m]), tp)
        assert lc.kv_elems_per_token == (L - n_sw) * np.ceil(4 / tp) * 320 + n_sw * np.ceil(8 / tp) * 320
        assert lc.win_kv_elems_per_token == n_sw * np.ceil(8 / tp) * 320
        assert lc.attn_flops_prefill == L * 2 * (nh / tp) * (192 + 128)  # QK^T over 192, PV over 128
        assert lc.attn_params == pytest.approx(((L - n_sw) * attn(4) + n_sw * attn(8)) / tp
                                               + h * (192 + 128) * ((L - n_sw) * (np.ceil(4 / tp) - 4 / tp)
                                                                    + n_sw * (np.ceil(8 / tp) - 8 / tp)))
    # SGLang pools MiMo-V2-Flash's window layers apart (its is_hybrid_swa_model list), not Step-3.7-Flash's
    assert ModelShape.from_models([m]).swa_pool == 1.0
    assert ModelShape.from_models([catalog.model("Step-3.7-Flash")]).swa_pool == 0.0


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "roofline"])
def test_window_layers_own_kv_heads_cost_where_tp_splits_them(engine):
    """Against the same model with the full layers' 4 KV heads on its window layers too: TP 4 holds two window-layer
    KV heads per GPU instead of one (slower decode at a long context, more KV bytes), TP 8 one either way (the same
    numbers exactly). Narrower values (128 instead of 192) decode faster."""
    m = catalog.model("MiMo-V2-Flash")
    same = dataclasses.replace(m, name="mimo-4kv", hf_id="", aliases=(), swa_n_kv_heads=0)
    wide_v = dataclasses.replace(m, name="mimo-v192", hf_id="", aliases=(), v_head_dim=0)
    kw = dict(gpu="H200", batch_size=64, input_len=8192, output_len=1024, engine=engine)
    tp4 = inference.estimate([m, same, wide_v], tp=4, **kw)
    tp8 = inference.estimate([m, same], tp=8, **kw)
    assert tp4["fits"].all() and tp8["fits"].all()
    assert tp4["tpot_ms"].iloc[0] > tp4["tpot_ms"].iloc[1] and tp4["tpot_ms"].iloc[2] > tp4["tpot_ms"].iloc[0]
    assert tp8["tpot_ms"].iloc[0] == tp8["tpot_ms"].iloc[1] and tp8["ttft_ms"].iloc[0] == tp8["ttft_ms"].iloc[1]
    lc4 = [layer_costs(ModelShape.from_models([x]), 4.0) for x in (m, same)]
    assert lc4[0].kv_elems_per_token - lc4[1].kv_elems_per_token == 39 * (2 - 1) * 320


def test_step_3_7_flash_dense_leading_layers_shared_expert_and_window():
    raw = _raw("Step-3.7-Flash")
    m = catalog.model("stepfun-ai/Step-3.7-Flash")
    n_sw = raw["layer_types"].count("sliding_attention")
    assert (mm.n_sliding_layers(m), m.sliding_window, m.swa_n_kv_heads) == (n_sw, 512, 0) == (33, 512, 0)
    assert (m.first_k_dense, mm.n_moe_layers(m), m.ffn, m.moe_ffn, m.n_shared_experts, m.shared_ffn) == \
        (3, 42, 11264, 1280, 1, 1280)
    L, kv, hd = raw["num_hidden_layers"], raw["num_key_value_heads"], raw["head_dim"]
    for ctx in (1, 512, 20_000):
        assert mm.kv_cache_bytes(m, ctx) == (L - n_sw) * 2 * kv * hd * 2 * ctx + n_sw * 2 * kv * hd * 2 * min(ctx, 512)
    fp8 = catalog.model("stepfun-ai/Step-3.7-Flash-FP8")
    assert (fp8.quant_weight_dtype, fp8.quant_scheme) == ("fp8", "fp8_block")
    assert dataclasses.replace(fp8, name=m.name, hf_id=m.hf_id, source=m.source, quant_weight_dtype="",
                               quant_scheme="", quant_method="") == m
    # Step-3.5-Flash's spellings read the same: KV groups, expert counts, the MoE layers listed, and layer_types
    # covering the three multi-token-prediction layers too
    cfg = _cfg("Step-3.7-Flash")
    alt = {k: v for k, v in cfg.items() if k not in ("num_key_value_heads", "num_experts", "num_experts_per_tok",
                                                     "first_k_dense_replace")}
    alt.update(num_attention_groups=8, moe_num_experts=288, moe_top_k=8,
               moe_layers_enum=",".join(str(i) for i in range(3, 45)),
               layer_types=cfg["layer_types"] + ["full_attention"] * 3)
    assert catalog.model_from_hf_config(alt, name=m.name) == catalog.model_from_hf_config(cfg, name=m.name)


def test_nemotron_3_5_lightning_reads_its_modelopt_mixed_precision_config():
    m = catalog.model("nvidia/NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4")
    # MIXED_PRECISION: W4A16_NVFP4 experts (the narrowest format present) beside FP8 Mamba projections, FP8 KV
    assert (m.quant_weight_dtype, m.quant_scheme, m.quant_kv_dtype) == ("fp4", "nvfp4_w4a16", "fp8")
    nano = catalog.model("Nemotron-3-Nano-30B-A3B")
    assert mm.total_params(m) == mm.total_params(nano) and mm.kv_cache_bytes(m, 4096) == mm.kv_cache_bytes(nano, 4096)


@pytest.mark.parametrize("engine", [None, "vllm"])
def test_new_aiconfigurator_models_run_through_the_estimator(engine):
    # (Step-3.7-Flash-FP8 at TP 2: its 1280-wide experts and shared expert over TP 8 are off the 128 block)
    ids = {"stepfun-ai/Step-3.7-Flash": 8, "stepfun-ai/Step-3.7-Flash-FP8": 2,
           "nvidia/NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4": 8, "XiaomiMiMo/MiMo-V2-Flash": 8}
    for i, tp in ids.items():
        df = inference.estimate(model=i, gpu="H200", tp=tp, batch_size=[1, 64], input_len=1024, output_len=1024,
                                engine=engine)
        assert df["fits"].all(), df["reason"].tolist()
        t = df[["ttft_ms", "tpot_ms"]].to_numpy(float)
        assert np.isfinite(t).all() and (t > 0).all()
        assert df["tpot_ms"].iloc[1] > df["tpot_ms"].iloc[0]


def test_per_kind_attention_fields_that_cannot_be_costed_name_the_field():
    mimo = _cfg("MiMo-V2-Flash")
    for key, val in (("swa_head_dim", 128), ("swa_v_head_dim", 192), ("swa_num_attention_heads", 32)):
        with pytest.raises(CatalogError, match=f"{key}={val} differs from the full-attention layers'"):
            catalog.model_from_hf_config(dict(mimo, **{key: val}))
    with pytest.raises(CatalogError, match="hybrid_layer_pattern must list 1 .* for each of the 48 layers"):
        catalog.model_from_hf_config(dict(mimo, hybrid_layer_pattern=mimo["hybrid_layer_pattern"][:-1]))
    with pytest.raises(CatalogError, match="hybrid_layer_pattern must list"):
        catalog.model_from_hf_config(dict(mimo, hybrid_layer_pattern=[2] * 48))
    with pytest.raises(CatalogError, match="moe_layer_freq is not a leading run of dense layers"):
        catalog.model_from_hf_config(dict(mimo, moe_layer_freq=[1, 0] + [1] * 46))
    with pytest.raises(CatalogError, match="lacks the required field 'hybrid_layer_pattern'"):
        catalog.model_from_hf_config({k: v for k, v in mimo.items() if k != "hybrid_layer_pattern"})
    with pytest.raises(CatalogError, match="not a multiple of the KV heads 6"):
        catalog.model_from_hf_config(dict(mimo, swa_num_key_value_heads=6))
    step = _cfg("Step-3.7-Flash")
    with pytest.raises(CatalogError, match="attention_other_setting gives the sliding layers num_attention_heads=96"):
        catalog.model_from_hf_config(dict(step, attention_other_setting={"num_attention_heads": 96,
                                                                         "num_attention_groups": 8, "head_dim": 128}))
    with pytest.raises(CatalogError, match=r"layer_types must list .* unknown kinds \['chunked_attention'\]"):
        catalog.model_from_hf_config(dict(step, layer_types=["chunked_attention"] + step["layer_types"][1:]))
    with pytest.raises(CatalogError, match="moe_layers_enum is not a leading run"):
        catalog.model_from_hf_config(dict(step, moe_layers_enum="3,5,6"))
    # a hand-built record: the window layers' own KV heads need window layers and must divide the query heads
    m = catalog.model("MiMo-V2-Flash")
    for bad in (dataclasses.replace(m, name="x", hf_id="", aliases=(), swa_n_kv_heads=3),
                dataclasses.replace(m, name="y", hf_id="", aliases=(), sliding_window=0)):
        with pytest.raises(CatalogError, match="swa_n_kv_heads=.* needs GQA sliding-window layers"):
            Catalog().register_model(bad)
    # the TP rule holds the window layers' KV heads to it too
    from objectives.inference.resolve import tp_invalid
    assert not tp_invalid(48, 4, 4) and tp_invalid(48, 4, 4, 0, 6) and not tp_invalid(48, 4, 4, 0, 8)


def test_gemma_4_full_and_window_layers_have_their_own_kv_heads_and_head_widths():
    """Gemma 4 26B-A4B: 5 full layers (every 6th) with 2 KV heads of global_head_dim 512 whose values are their keys
    (attention_k_eq_v: no v_proj), 25 window layers of 1024 tokens with 8 KV heads of 256; queries at each kind's
    head width. Every layer runs its 2112-wide GeGLU MLP beside 128 experts of 704 (top 8)."""
    raw = _raw("gemma-4-26B-A4B")["text_config"]
    m = catalog.model("google/gemma-4-26B-A4B")
    L, h, nh, V = raw["num_hidden_layers"], raw["hidden_size"], raw["num_attention_heads"], raw["vocab_size"]
    n_sw = raw["layer_types"].count("sliding_attention")
    assert (L, n_sw, raw["sliding_window"]) == (30, 25, 1024) and raw["attention_k_eq_v"]
    assert (m.n_kv_heads, m.head_dim, m.swa_n_kv_heads, m.swa_head_dim, m.k_eq_v, mm.n_sliding_layers(m)) == \
        (raw["num_global_key_value_heads"], raw["global_head_dim"], raw["num_key_value_heads"], raw["head_dim"],
         True, n_sw) == (2, 512, 8, 256, True, 25)
    assert (m.ffn, m.n_experts, m.top_k, m.moe_ffn, m.n_shared_experts, m.shared_ffn, mm.n_moe_layers(m)) == \
        (2112, 128, 8, 704, 1, 2112, 30)
    # KV bytes per token and layer by hand (bf16): a key and a value per KV head on both kinds (the full layers
    # cache their normed, rotated keys and their normed values apart although both come from k_proj)
    full = raw["num_global_key_value_heads"] * 2 * raw["global_head_dim"] * 2
    swa = raw["num_key_value_heads"] * 2 * raw["head_dim"] * 2
    assert (mm.kv_bytes_per_token_layer(m), mm.kv_bytes_per_token_layer(m, sliding=True)) == (full, swa) == \
        (4096, 8192)
    for ctx in (1, 1000, 1024, 4096, 262_144):
        assert mm.kv_cache_bytes(m, ctx) == (L - n_sw) * full * ctx + n_sw * swa * min(ctx, 1024)
    assert mm.kv_cache_bytes(m, 4096, "fp8") == mm.kv_cache_bytes(m, 4096) / 2
    # attention projections by hand: full layers q (16 x 512), k (2 x 512), no v, o (from 16 x 512); window layers
    # q (16 x 256), k and v (8 x 256 each), o (from 16 x 256)
    full_attn = h * nh * 512 + h * 2 * 512 + nh * 512 * h
    win_attn = h * nh * 256 + 2 * h * 8 * 256 + nh * 256 * h
    assert mm.attention_params_per_layer(m) == full_attn and mm.attention_params_per_layer(m, sliding=True) == \
        win_attn
    assert mm.mixer_params(m) == (L - n_sw) * full_attn + n_sw * win_attn
    mlp, expert, router = 3 * h * 2112, 3 * h * 704, h * 128
    assert mm.total_params(m) == mm.mixer_params(m) + L * (mlp + 128 * expert + router) + V * h  # tied head
    assert mm.active_params(m) == mm.mixer_params(m) + L * (mlp + 8 * expert + router) + V * h
    # the cost model's per-GPU view: the same KV and attention work per kind; its weights keep a value projection on
    # the full layers (vLLM and SGLang load k_proj into the value slot of their fused QKV)
    v_slot = (L - n_sw) * h * 2 * 512
    for tp in (1.0, 2.0, 4.0, 8.0):
        lc = layer_costs(ModelShape.from_models([m]), tp)
        kv_full, kv_win = np.ceil(2 / tp) * 1024, np.ceil(8 / tp) * 512
        assert lc.kv_elems_per_token == (L - n_sw) * kv_full + n_sw * kv_win
        assert lc.win_kv_elems_per_token == n_sw * kv_win
        assert lc.attn_flops_prefill == lc.attn_flops_decode == (L - n_sw) * 2 * (nh / tp) * 1024 + n_sw * 2 * (
            nh / tp) * 512
        assert lc.win_attn_flops_pair == n_sw * 2 * (nh / tp) * 512
        assert lc.attn_params == pytest.approx((mm.mixer_params(m) + v_slot) / tp + h * (
            (L - n_sw) * (np.ceil(2 / tp) - 2 / tp) * 1024 + n_sw * (np.ceil(8 / tp) - 8 / tp) * 512), rel=1e-12)
    lc1 = layer_costs(ModelShape.from_models([m]), 1.0)
    assert lc1.dense_params + lc1.expert_params * m.n_experts + lc1.embed_params == \
        pytest.approx(mm.total_params(m) + v_slot, rel=1e-12)
    for ctx in (1, 5000, 300_000):
        assert memory.seq_cache_bytes_gpu(lc1, 2.0, 1.0, ctx) == pytest.approx(mm.sequence_cache_bytes(m, ctx))
    # SGLang pools Gemma 4's window layers apart (is_hybrid_swa_model)
    assert ModelShape.from_models([m]).swa_pool == 1.0
    # the NVFP4 release: NVFP4 experts beside 16-bit attention, MLP and router, FP8 KV; the same shapes
    fp4 = catalog.model("nvidia/Gemma-4-26B-A4B-NVFP4")
    assert (fp4.quant_weight_dtype, fp4.quant_scheme, fp4.quant_kv_dtype) == ("fp4", "nvfp4", "fp8")
    assert dataclasses.replace(fp4, name=m.name, hf_id=m.hf_id, aliases=m.aliases, source=m.source,
                               quant_weight_dtype="", quant_scheme="", quant_method="", quant_kv_dtype="",
                               attn_16bit_weights=False, shared_16bit_share=0.0, attn_quant_shares=()) == m


def test_gemma_4_31b_reads_the_dense_shape_and_keeps_the_nvfp4_attention_in_16_bits():
    """Gemma 4 31B: dense (a 21504-wide MLP), 10 full layers of 4 KV heads x 512 (k_eq_v), 50 window layers of
    16 x 256. Its NVFP4 release excludes every layer's self_attn from NVFP4 (a dense model: unlike 4-bit MoE
    checkpoints the cost model cannot assume it), so those weights are held and streamed at 16 bits."""
    raw = _raw("Gemma-4-31B-IT-NVFP4")
    t = raw["text_config"]
    m, fp4 = catalog.model("google/gemma-4-31B-it"), catalog.model("nvidia/Gemma-4-31B-IT-NVFP4")
    L, h, nh, n_sw = t["num_hidden_layers"], t["hidden_size"], t["num_attention_heads"], 50
    assert t["layer_types"].count("sliding_attention") == n_sw and not t["enable_moe_block"]
    assert (m.n_kv_heads, m.head_dim, m.swa_n_kv_heads, m.swa_head_dim, m.k_eq_v, m.n_experts, m.ffn) == \
        (4, 512, 16, 256, True, 0, 21504)
    full_attn = h * nh * 512 + h * 4 * 512 + nh * 512 * h
    win_attn = h * nh * 256 + 2 * h * 16 * 256 + nh * 256 * h
    assert mm.total_params(m) == (L - n_sw) * full_attn + n_sw * win_attn + L * 3 * h * 21504 + t["vocab_size"] * h
    for ctx in (1, 1024, 100_000):
        assert mm.kv_cache_bytes(m, ctx) == (L - n_sw) * 4 * 1024 * 2 * ctx + n_sw * 16 * 512 * 2 * min(ctx, 1024)
    # the record is the NVFP4 config without its quantization: the same shapes, unquantized
    assert "quantization_config" not in _raw("gemma-4-31B-it") and "derived from" in _raw("gemma-4-31B-it")[
        "copied_from"]
    assert dataclasses.replace(fp4, name=m.name, hf_id=m.hf_id, aliases=m.aliases, source=m.source,
                               quant_weight_dtype="", quant_scheme="", quant_method="", quant_kv_dtype="",
                               attn_16bit_weights=False) == m
    assert (fp4.quant_weight_dtype, fp4.quant_kv_dtype, fp4.attn_16bit_weights) == ("fp4", "fp8", True)
    # read off the exclude list, not assumed: a dense NVFP4 checkpoint that quantizes its attention has no flag
    assert not catalog.model("nvidia/Qwen3.6-27B-NVFP4").attn_16bit_weights
    quant = dict(raw["hf_quant_config"])
    quant["quantization"] = dict(quant["quantization"], exclude_modules=[
        e for e in quant["quantization"]["exclude_modules"] if ".layers.7.self_attn" not in e])
    assert not catalog.model_from_hf_config(_cfg("Gemma-4-31B-IT-NVFP4"), hf_quant_config=quant).attn_16bit_weights
    # the 16-bit attention weights: 2 bytes instead of NVFP4's per parameter, in memory and in decode
    q4 = dataclasses.replace(fp4, name="g31-attn-fp4", hf_id="", aliases=(), attn_16bit_weights=False)
    df = inference.estimate([fp4, q4], gpu="B200", tp=1, batch_size=1, input_len=1024, output_len=1024)
    attn = mm.mixer_params(fp4) + (L - n_sw) * h * 4 * 512  # the engines' QKV with the value slot
    from objectives.catalog.types import DTYPE_BYTES
    assert (df["weights_gib"].iloc[0] - df["weights_gib"].iloc[1]) * 2**30 == pytest.approx(
        attn * (2.0 - DTYPE_BYTES["fp4"]), rel=1e-6)
    assert df["tpot_ms"].iloc[0] > 1.2 * df["tpot_ms"].iloc[1]
    # the flag costs nothing where the weights are 16-bit anyway, nor on MoE checkpoints (16-bit attention there
    # already)
    kw = dict(gpu="B200", tp=1, batch_size=[1, 64, 1, 64], input_len=1024, output_len=1024)
    a = inference.estimate([fp4, fp4, q4, q4], weight_dtype="bf16", **kw)
    assert a.iloc[:2][["ttft_ms", "tpot_ms", "weights_gib"]].to_numpy().tolist() == \
        a.iloc[2:][["ttft_ms", "tpot_ms", "weights_gib"]].to_numpy().tolist()
    moe = catalog.model("nvidia/Gemma-4-26B-A4B-NVFP4")
    moe_noflag = dataclasses.replace(moe, name="g26-noflag", hf_id="", aliases=(), attn_16bit_weights=False)
    b = inference.estimate([moe, moe, moe_noflag, moe_noflag], **kw)
    assert b.iloc[:2][["ttft_ms", "tpot_ms", "weights_gib"]].to_numpy().tolist() == \
        b.iloc[2:][["ttft_ms", "tpot_ms", "weights_gib"]].to_numpy().tolist()


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "roofline"])
def test_window_layers_own_head_width_costs_where_the_window_layers_are(engine):
    """Against the same model with the full layers' 512-wide heads on its window layers too (swa_head_dim 0): the
    256-wide window layers hold half the KV, half the projections and half the attention work per pair; a record
    that names the full layers' width as its window width is the same model, number for number."""
    m = catalog.model("gemma-4-31B-it")
    wide = dataclasses.replace(m, name="g31-wide", hf_id="", aliases=(), swa_head_dim=0)
    same = dataclasses.replace(m, name="g31-same", hf_id="", aliases=(), swa_head_dim=512)
    kw = dict(gpu="H200", tp=2, batch_size=[1, 16] * 3, input_len=8192, output_len=512, engine=engine)
    df = inference.estimate([m, m, wide, wide, same, same], **kw)
    assert df["fits"].all(), df["reason"].tolist()
    own, w, s = df.iloc[0:2], df.iloc[2:4], df.iloc[4:6]
    cols = ["ttft_ms", "tpot_ms", "weights_gib", "kv_cache_gib", "mem_per_gpu_gib"]
    assert w[cols].to_numpy().tolist() == s[cols].to_numpy().tolist()
    assert (own["ttft_ms"].to_numpy() < w["ttft_ms"].to_numpy()).all()
    assert (own["tpot_ms"].to_numpy() < w["tpot_ms"].to_numpy()).all()
    assert (own["kv_cache_gib"].to_numpy() < w["kv_cache_gib"].to_numpy()).all()
    # per GPU at TP 2: the window layers' 8 KV heads of 256 instead of 512 (keys and values), nothing on the full
    # layers; the projections differ by the window layers' q, k, v and o at 256 instead of 512
    lo, lw = (layer_costs(ModelShape.from_models([x]), 2.0) for x in (m, wide))
    assert lw.kv_elems_per_token - lo.kv_elems_per_token == 50 * 8 * (1024 - 512)
    assert lw.kv_elems_per_token - lw.win_kv_elems_per_token == lo.kv_elems_per_token - lo.win_kv_elems_per_token
    assert lw.attn_flops_prefill - lo.attn_flops_prefill == 50 * 2 * 16 * (1024 - 512)
    h = m.hidden
    assert lw.dense_params - lo.dense_params == pytest.approx(50 * (2 * h * 32 * 256 / 2 + h * 8 * 2 * 256))
    assert (lw.expert_params, lw.embed_params, lw.n_allreduce) == (lo.expert_params, lo.embed_params, lo.n_allreduce)


def test_gemma_4_fields_that_cannot_be_costed_name_the_field():
    g = _cfg("gemma-4-26B-A4B")
    t = g["text_config"]
    for key, val in (("hidden_size_per_layer_input", 256), ("num_kv_shared_layers", 10)):
        with pytest.raises(CatalogError, match=f"{key}={val} cannot be costed"):
            catalog.model_from_hf_config(dict(g, text_config=dict(t, **{key: val})))
    with pytest.raises(CatalogError, match="lacks the required field 'num_global_key_value_heads'"):
        catalog.model_from_hf_config(dict(g, text_config={k: v for k, v in t.items()
                                                          if k != "num_global_key_value_heads"}))
    with pytest.raises(CatalogError, match="lacks the required field 'layer_types'"):
        catalog.model_from_hf_config(dict(g, text_config={k: v for k, v in t.items() if k != "layer_types"}))
    with pytest.raises(CatalogError, match=r"layer_types must list .* for each of the 30 layers"):
        catalog.model_from_hf_config(dict(g, text_config=dict(t, layer_types=t["layer_types"][:-1])))
    with pytest.raises(CatalogError, match="not a multiple of the KV heads 3"):
        catalog.model_from_hf_config(dict(g, text_config=dict(t, num_global_key_value_heads=3)))
    with pytest.raises(CatalogError, match="lacks the required field 'top_k_experts'"):
        catalog.model_from_hf_config(dict(g, text_config=dict(t, top_k_experts=None)))
    # without attention_k_eq_v the full layers keep a value projection and the window layers' KV heads
    m = catalog.model_from_hf_config(dict(g, text_config=dict(t, attention_k_eq_v=False)))
    h = t["hidden_size"]
    assert (m.n_kv_heads, m.swa_n_kv_heads, m.head_dim, m.swa_head_dim, m.k_eq_v) == (8, 0, 512, 256, False)
    assert mm.attention_params_per_layer(m) == 2 * h * 16 * 512 + 2 * h * 8 * 512
    # use_double_wide_mlp widens only KV-shared layers (none here): no effect
    assert catalog.model_from_hf_config(dict(g, text_config=dict(t, use_double_wide_mlp=True))) == \
        catalog.model_from_hf_config(g)
    # hand-built records: the window layers' own head width needs window layers and values as wide as keys
    base = catalog.model("gemma-4-26B-A4B")
    for bad in (dataclasses.replace(base, name="x", hf_id="", aliases=(), sliding_window=0, swa_n_kv_heads=0),
                dataclasses.replace(base, name="y", hf_id="", aliases=(), v_head_dim=128)):
        with pytest.raises(CatalogError, match="swa_head_dim=256 .* needs GQA sliding-window layers"):
            Catalog().register_model(bad)
    # the TP rule: 16 query heads; the full layers' 2 KV heads are replicated above TP 2, the window layers' 8 split
    from spaces.parallelism import tp_ok
    assert [tp for tp in (1, 2, 4, 8, 16, 3) if tp_ok(base, tp)] == [1, 2, 4, 8, 16]


def _kimi_k3() -> tuple[dict, dict, dict]:
    """Kimi-K3's shipped config, its text_config and the text_config's linear_attn_config."""
    k = _cfg("Kimi-K3")
    return k, k["text_config"], k["text_config"]["linear_attn_config"]


def test_kimi_k3_kda_mla_and_latent_moe_counted_from_the_raw_config():
    """Kimi-K3 by hand from its config.json: 69 KDA layers (1-based kda_layers) beside 24 NoPE MLA layers with an
    output gate, one dense layer, then latent MoE (896 experts, top 16, at 3584 wide) with 2 shared experts at the
    hidden size; KDA state in FP32 (the engines' choice), conv windows in 16 bits; only the MLA layers cache KV."""
    k, t, la = _kimi_k3()
    m = catalog.model("moonshotai/Kimi-K3")
    assert m.name == "Kimi-K3" and m.multimodal and (m.quant_weight_dtype, m.quant_scheme) == ("fp4", "mxfp4")
    L, h, nh, hd = t["num_hidden_layers"], t["hidden_size"], la["num_heads"], la["head_dim"]
    n_kda, n_mla = len(la["kda_layers"]), len(la["full_attn_layers"])
    assert (L, n_kda, n_mla) == (93, 69, 24) and sorted(la["kda_layers"] + la["full_attn_layers"]) == \
        list(range(1, 94))
    assert (m.n_linear_attn_layers, m.linear_attn_kind, mm.n_attention_layers(m)) == (n_kda, "kda", n_mla)
    assert (m.moe_latent, m.attn_output_gate, m.attn_res_block_size) == (3584, True, 12)
    P, kern = nh * hd, la["short_conv_kernel_size"]
    # q, k, v and the full-rank output gate g_proj (4 P), beta (nh), f_a (hd), f_b hd x P, 3 convs, o_proj
    kda = h * 4 * P + h * (nh + hd) + hd * P + 3 * P * kern + P * h
    assert mm.linear_attn_params_per_layer(m) == kda
    qr, kvr, nope, rope, vd = (t[f] for f in ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                                              "v_head_dim"))
    H = t["num_attention_heads"]
    mla = h * qr + qr * H * (nope + rope) + h * (kvr + rope) + kvr * H * (nope + vd) + H * vd * h + h * H * vd
    assert mm.attention_params_per_layer(m) == mla
    E, top, f, lat, ns = (t[x] for x in ("num_experts", "num_experts_per_token", "moe_intermediate_size",
                                         "routed_expert_hidden_size", "num_shared_experts"))
    n_moe = L - t["first_k_dense_replace"]
    moe = h * E + 3 * lat * f * E + 3 * h * ns * f + 2 * h * lat
    dense = 3 * h * t["intermediate_size"]
    emb = 2 * t["vocab_size"] * h
    total = n_kda * kda + n_mla * mla + dense + n_moe * moe + emb
    assert mm.total_params(m) == total and round(total / 1e12, 2) == 2.78
    active = total - n_moe * 3 * lat * f * (E - top)
    assert mm.active_params(m) == active and round(active / 1e9) == 105
    # KV: 24 MLA layers x (512 + 64) latent elements; state: 69 x (96 x 128 x 128 FP32 + 3 x 3 x 12288 bf16)
    assert mm.kv_cache_bytes(m, 1000) == 1000 * n_mla * (kvr + rope) * 2 == 1000 * 27648
    state = n_kda * (nh * hd * hd * 4 + (kern - 1) * 3 * P * 2)
    assert mm.linear_state_bytes_per_seq(m) == state == 449_372_160
    assert mm.sequence_cache_bytes(m, 1000) == 1000 * 27648 + state
    lc = layer_costs(ModelShape.from_models([m]), 8.0)
    assert lc.state_bytes_per_seq == pytest.approx(state / 8)
    assert lc.kv_elems_per_token == n_mla * (kvr + rope)            # the latent is replicated on every rank
    assert lc.attn_res_bytes_per_token == L * 2 * 6 * h * 2


def test_kimi_k3_fields_that_cannot_be_costed_name_the_field():
    k, t, la = _kimi_k3()

    def read(**lin: object) -> object:
        return catalog.model_from_hf_config(dict(k, text_config=dict(t, linear_attn_config=dict(la, **lin))))
    with pytest.raises(CatalogError, match="use_full_rank_gate=False: only the full-rank KDA output gate"):
        read(use_full_rank_gate=False)
    with pytest.raises(CatalogError, match=r"linear_attn_config has keys \['kda_gate_rank'\] that cannot be costed"):
        read(kda_gate_rank=64)
    with pytest.raises(CatalogError, match="kda_layers .* and full_attn_layers .* must split the 93 layers"):
        read(kda_layers=la["kda_layers"][:-1])
    with pytest.raises(CatalogError, match=r"full_attn_layers must list distinct 1-based layers 1\.\.93"):
        read(full_attn_layers=[0] + la["full_attn_layers"][1:])
    with pytest.raises(CatalogError, match="lacks the required field 'num_heads'"):
        catalog.model_from_hf_config(dict(k, text_config=dict(t, linear_attn_config={
            x: v for x, v in la.items() if x != "num_heads"})))
    with pytest.raises(CatalogError, match="lacks the required field 'linear_attn_config'"):
        catalog.model_from_hf_config(dict(k, text_config={x: v for x, v in t.items() if x != "linear_attn_config"}))
    with pytest.raises(CatalogError, match="hidden_act='gelu' cannot be costed"):
        catalog.model_from_hf_config(dict(k, text_config=dict(t, hidden_act="gelu")))
    # the bounded decay and NoPE are elementwise: the same model
    assert read(gate_lower_bound=-3.0) == catalog.model_from_hf_config(k)
    assert catalog.model_from_hf_config(dict(k, text_config=dict(t, mla_use_nope=False))) == \
        catalog.model_from_hf_config(k)
    # without the MLA output gate: one hidden x heads x v_head projection less per MLA layer
    ng = catalog.model_from_hf_config(dict(k, text_config=dict(t, mla_use_output_gate=False)))
    full = catalog.model_from_hf_config(k)
    assert mm.attention_params_per_layer(full) - mm.attention_params_per_layer(ng) == 7168 * 96 * 128


@pytest.mark.parametrize("engine", [None, "vllm", "sglang", "trtllm", "roofline"])
def test_kimi_k3_kda_layers_are_costed_on_every_engine(engine):
    """KDA layers on the estimator: against the same model with its KDA layers as Gated DeltaNet of the same heads
    (scalar decay), more weights and (closed form) a slower decode step; engine rows read the profiles' KDA kernel
    tables at 12 heads per GPU (measured: "interpolated"). 16 B200s (TP 8 x PP 2) hold the 2.8T weights, 8 do
    not."""
    m = catalog.model("moonshotai/Kimi-K3")
    gdn = dataclasses.replace(m, name="k3-gdn", hf_id="", aliases=(), linear_attn_kind="gdn")
    assert mm.linear_attn_params_per_layer(m) - mm.linear_attn_params_per_layer(gdn) == \
        7168 * (128 - 96) + 128 * 96 * 128  # f_a, f_b for the per-head decay a; beta alike
    kw = dict(gpu="B200", batch_size=[1, 64], input_len=[1024, 32768], output_len=1024, engine=engine)
    r = inference.estimate([m, m], tp=8, pp=2, **kw)
    assert r["fits"].all(), r["reason"]
    assert ((r["ttft_ms"] > 0) & (r["tpot_ms"] > 0) & np.isfinite(r["tpot_ms"].astype(float))).all()
    # 64 prompts of 32,768 tokens: past the tokens the tables measured (`measured.beyond_reach`)
    assert list(r["source"]) == (["roofline"] * 2 if engine == "roofline" else ["interpolated", "extrapolated"])
    assert not inference.estimate(m, tp=8, **{**kw, "batch_size": 64, "input_len": 32768})["fits"].all()
    pair = inference.estimate([m, gdn], tp=8, pp=2, **{**kw, "batch_size": 64, "input_len": 32768})
    assert pair["weights_gib"].iloc[0] > pair["weights_gib"].iloc[1]
    if engine == "roofline":  # engine rows price each kind's recurrence from its own kernel table
        assert pair["tpot_ms"].iloc[0] > pair["tpot_ms"].iloc[1]


@pytest.mark.parametrize("engine", [None, "vllm", "sglang", "trtllm", "roofline"])
def test_nemotron_mamba2_layers_read_the_conv_tables_on_every_engine(engine):
    """Mamba-2 layers on the estimator: engine rows read TensorRT-LLM's Mamba-2 conv tables (SGLang's and vLLM's
    profiles carry them) at the conv channels one GPU holds, heads x head dim / TP + 2 x d_state per group (at
    least one group per GPU). Nemotron-H-56B (256 heads of 64, 8 groups of state 256) at TP 8 holds 2,048 + 512 =
    2,560 and Nemotron-3 Nano (64 heads of 64, 8 groups of 128) at TP 4 1,024 + 512 = 1,536, both inside the
    measured 1,536 .. 20,480 ("interpolated"); the Nano at TP 8 holds 512 + 256 = 768 and Nemotron-3 Super (128
    heads) 1,024 + 256 = 1,280: "extrapolated" (the Gated DeltaNet table that stood in before measured Super's 16
    heads per GPU). The batch of 64 prompts of 7,936 tokens (Nemotron-H-56B's context less the output) is past the
    tokens the tables measured either way."""
    assert [catalog.model(n).linear_head_k_dim for n in ("Nemotron-H-56B", "Nemotron-3-Nano-30B-A3B")] == [256, 128]
    kw = dict(gpu="B200", batch_size=[1, 64], input_len=[1024, 7936], output_len=256, engine=engine)
    inside = "roofline" if engine == "roofline" else "interpolated"
    outside = "roofline" if engine == "roofline" else "extrapolated"
    for model, tp, src in (("Nemotron-H-56B", 8, inside), ("Nemotron-3-Nano-30B-A3B", 4, inside),
                           ("Nemotron-3-Nano-30B-A3B", 8, outside), ("Nemotron-3-Super-120B-A12B-NVFP4", 8, outside)):
        r = inference.estimate(model, tp=tp, **kw)
        assert r["fits"].all(), r["reason"]
        assert ((r["ttft_ms"] > 0) & (r["tpot_ms"] > 0) & np.isfinite(r["tpot_ms"].astype(float))).all()
        assert list(r["source"]) == [src, outside], (model, tp)


def test_minimax_m3_reads_its_sparse_attention_and_counts_by_hand():
    """MiniMax-M3: GQA (64 query heads, 4 KV heads of 128), 3 leading dense layers of dense_intermediate_size, then
    MoE (128 experts, top 4, one shared expert); 57 layers of MiniMax sparse attention whose indexer (4 query heads
    and one cached key head of 128, no head-weight projection) picks 16 blocks of 128 tokens plus the local one."""
    raw = _raw("MiniMax-M3")
    sac = raw["sparse_attention_config"]
    m = catalog.model("MiniMaxAI/MiniMax-M3")
    L, h, nh, nkv, hd = (raw[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                          "num_key_value_heads", "head_dim"))
    n_sp = sum(sac["sparse_attention_freq"])
    k_dense = raw["moe_layer_freq"].index(1)
    assert (n_sp, k_dense, L) == (57, 3, 60)
    span = (sac["sparse_topk_blocks"] + sac["sparse_local_block"] + sac["sparse_init_block"]) * sac["sparse_block_size"]
    assert (m.index_topk, m.index_block, m.n_index_layers, m.index_n_heads, m.index_head_dim) == \
        (span, 128, n_sp, 4, 128) == (2176, 128, 57, 4, 128)
    assert (m.first_k_dense, mm.n_moe_layers(m), m.ffn, m.moe_ffn, m.shared_ffn, m.n_experts, m.top_k) == \
        (3, 57, 12288, 3072, 3072, 128, 4)
    # parameters by hand: attention every layer, the indexer (index_q h x 4 x 128, index_k h x 128) on the sparse
    # layers, 3 dense SwiGLU MLPs, 57 MoE layers (router, experts, shared expert), untied embedding and head
    attn = h * nh * hd + 2 * h * nkv * hd + nh * hd * h
    idx = h * sac["sparse_num_index_heads"] * sac["sparse_index_dim"] + h * sac["sparse_index_dim"]
    expert = 3 * h * raw["moe_intermediate_size"]
    shared = 3 * h * raw["shared_intermediate_size"]
    body = L * attn + n_sp * idx + k_dense * 3 * h * raw["dense_intermediate_size"]
    emb = 2 * raw["vocab_size"] * h
    n_e, top = raw["num_local_experts"], raw["num_experts_per_tok"]
    assert mm.total_params(m) == body + (L - k_dense) * (h * n_e + n_e * expert + shared) + emb
    assert mm.active_params(m) == body + (L - k_dense) * (h * n_e + top * expert + shared) + emb
    assert round(mm.total_params(m) / 1e9, 2) == 426.17 and round(mm.active_params(m) / 1e9, 2) == 25.96
    # KV bytes by hand: a key and a value per KV head on every layer, one index key on each sparse layer (bf16)
    per_tok = L * nkv * 2 * hd * 2 + n_sp * sac["sparse_index_dim"] * 2
    assert per_tok == 137_472
    for ctx in (1, 2176, 32_768, 1_048_576):
        assert mm.kv_cache_bytes(m, ctx) == per_tok * ctx
    # the cost model's per-GPU view: one GPU holds the catalog's counts; at TP 8 the 4 KV heads and the indexer's 4
    # query heads are replicated to one per GPU, its key head on every GPU
    lc1 = layer_costs(ModelShape.from_models([m]), 1.0)
    assert lc1.dense_params + lc1.expert_params * n_e + lc1.embed_params == pytest.approx(mm.total_params(m), rel=1e-12)
    for ctx in (1, 5000):
        assert memory.seq_cache_bytes_gpu(lc1, 2.0, 1.0, ctx) == pytest.approx(mm.sequence_cache_bytes(m, ctx))
    lc8 = layer_costs(ModelShape.from_models([m]), 8.0)
    assert lc8.kv_elems_per_token == L * 1 * 256 + n_sp * 128
    assert lc8.sparse_kv_elems_per_token == n_sp * 256 and lc8.sparse_topk == 2176
    assert lc8.attn_flops_decode == L * 2 * 8 * 256 + n_sp * 2 * 1 * 128
    assert lc8.sparse_attn_flops_pair == n_sp * 2 * 8 * 256
    assert lc8.attn_params == pytest.approx(L * (attn / 8 + h * 1 * 256 - h * nkv * 256 / 8) + n_sp * h * 2 * 128)
    # NVIDIA's NVFP4 release: the same language model, NVFP4 experts beside MXFP8 attention and shared experts; its
    # config declares no MTP module (the base checkpoint's one is not shipped there)
    q = catalog.model("nvidia/MiniMax-M3-NVFP4")
    assert (m.n_mtp_layers, q.n_mtp_layers) == (1, 0)
    assert dataclasses.replace(q, name=m.name, hf_id=m.hf_id, aliases=m.aliases, source=m.source,
                               architecture=m.architecture, quant_weight_dtype="", quant_scheme="", quant_method="",
                               dense_weight_dtype="", multimodal=False, attn_quant_shares=(), n_mtp_layers=1) == m
    assert (q.quant_weight_dtype, q.quant_scheme, q.dense_weight_dtype, q.multimodal) == ("fp4", "nvfp4", "fp8", True)


def test_minimax_m3_fields_that_cannot_be_costed_name_the_field():
    c = _cfg("MiniMax-M3")
    sac = c["sparse_attention_config"]
    L = c["num_hidden_layers"]

    def with_sac(**kw: object) -> dict:
        return dict(c, sparse_attention_config=dict(sac, **kw))
    with pytest.raises(CatalogError, match="sparse_score_type='mean' cannot be costed"):
        catalog.model_from_hf_config(with_sac(sparse_score_type="mean"))
    with pytest.raises(CatalogError, match="sparse_disable_index_value is 0 on a sparse layer"):
        catalog.model_from_hf_config(with_sac(sparse_disable_index_value=[0] * L))
    with pytest.raises(CatalogError, match="sparse_block_size and sparse_topk_blocks must be > 0"):
        catalog.model_from_hf_config(with_sac(sparse_topk_blocks=0))
    with pytest.raises(CatalogError, match="sparse_attention_freq has 59 entries for 60 layers"):
        catalog.model_from_hf_config(with_sac(sparse_attention_freq=sac["sparse_attention_freq"][1:]))
    with pytest.raises(CatalogError, match="moe_layer_freq is not a leading run of dense layers followed by MoE layers"):
        catalog.model_from_hf_config(dict(c, moe_layer_freq=[1, 0] * (L // 2)))
    with pytest.raises(CatalogError, match="attention_output_gate=true cannot be costed"):
        catalog.model_from_hf_config(dict(c, attention_output_gate=True))
    # every layer sparse (the freq list counted), and without sparse attention a plain GQA MoE
    assert catalog.model_from_hf_config(with_sac(sparse_attention_freq=[1] * L,
                                                 sparse_disable_index_value=[1] * L)).n_index_layers == L
    dense = catalog.model_from_hf_config(with_sac(use_sparse_attention=False))
    assert (dense.index_topk, dense.index_block, dense.index_n_heads) == (0, 0, 0)
    # hand-built records: MiniMax sparse attention needs a GQA model without windows and an indexer
    base = catalog.model("MiniMax-M3")
    for bad in (dataclasses.replace(base, name="x", hf_id="", aliases=(), sliding_window=128),
                dataclasses.replace(base, name="y", hf_id="", aliases=(), index_n_heads=0),
                dataclasses.replace(base, name="z", hf_id="", aliases=(), kv_lora_rank=512)):
        with pytest.raises(CatalogError, match="index_block=128 .MiniMax sparse attention. needs a GQA model"):
            Catalog().register_model(bad)


@pytest.mark.parametrize("engine", ["trtllm", "roofline"])
def test_minimax_m3_sparse_layers_bound_decode_attention_at_long_context(engine):
    """Against the same record with an unbounded span (every cached token attended, the indexer kept): weights and
    KV cache are the same number for number; a context inside the span costs the same (within the profile grid's
    interpolation); a 32K-token context decodes faster, as the 57 sparse layers read 2176 tokens' K and V, not 32K.
    (The closed form and the GQA tables at the bounded span; SGLang's and vLLM's profiles read MiniMax-M3's measured
    modules instead: tests/objectives/profiles/test_profiles.py::test_minimax_m3_attention_follows_its_module_table)"""
    m = catalog.model("MiniMax-M3")
    wide = dataclasses.replace(m, name="m3-unbounded", hf_id="", aliases=(), index_topk=2**30)
    kw = dict(gpu="H200", tp=8, batch_size=16, output_len=256, engine=engine)
    short = inference.estimate([m, wide], input_len=1024, **kw)
    long = inference.estimate([m, wide], input_len=32768, **kw)
    for df in (short, long):
        assert df["fits"].all(), df["reason"].tolist()
        cols = ["weights_gib", "kv_cache_gib", "mem_per_gpu_gib"]
        assert df[cols].iloc[0].tolist() == df[cols].iloc[1].tolist()
    assert short["tpot_ms"].iloc[0] == pytest.approx(short["tpot_ms"].iloc[1], rel=0.02)
    assert long["tpot_ms"].iloc[0] < 0.9 * long["tpot_ms"].iloc[1]
    assert long["ttft_ms"].iloc[0] < long["ttft_ms"].iloc[1]
    # the profile has no table for this kernel: never "interpolated"
    assert "interpolated" not in set(long["source"])
