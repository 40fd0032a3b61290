"""Which modules a quantized checkpoint keeps out of its weight format (`catalog.quant.kept_16bit`), read off every
shipped config, and what the cost model makes of it (16-bit shared experts and dense MLPs)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from objectives import catalog, inference
from objectives.catalog import DATA_DIR
from objectives.catalog.quant import kept_16bit, module_excluded
from objectives.catalog.types import DTYPE_BYTES
from objectives.inference.ops import ModelShape, layer_costs


def test_patterns_match_as_the_engines_match_them():
    """compressed-tensors "re:" patterns are regexes matched from the name's start (vLLM's re.match), globs match
    the whole module path or a module holding it, plain names whole dotted segments."""
    kimi = ["lm_head", r"re:.*self_attn.*", r"re:.*shared_experts.*", r"re:.*mlp\.(gate|up|gate_up|down)_proj.*"]
    assert module_excluded("language_model.model.layers.0.mlp.down_proj", kimi)
    assert module_excluded("model.layers.7.mlp.shared_experts.gate_proj", kimi)
    assert module_excluded("model.layers.7.self_attn.kv_b_proj", kimi)
    assert not module_excluded("model.layers.7.mlp.experts.3.down_proj", kimi)  # routed experts: int4
    assert not module_excluded("model.layers.7.self_attn.o_proj", ["re:self_attn"])  # re.match: from the start
    # a glob naming a module keeps its projections out (gpt-oss); "path*" the module and its children (ModelOpt)
    assert module_excluded("model.layers.3.self_attn.o_proj", ["model.layers.*.self_attn"])
    assert module_excluded("model.layers.0.mlp.down_proj", ["model.layers.0*"])
    assert not module_excluded("model.layers.3.mlp.down_proj", ["model.layers.*.self_attn"])
    # plain names: whole segments, the router "gate" is not the MLP's gate_proj
    assert module_excluded("model.layers.3.mlp.gate", ["gate"])
    assert not module_excluded("model.layers.3.mlp.gate_proj", ["gate", "lm_head"])
    assert module_excluded("model.layers.3.mlp.shared_experts.up_proj", ["model.layers.3.mlp.shared_experts"])


def test_matcher_agrees_with_the_rule_it_speeds_up():
    """`module_excluded` looks up only the dotted runs as long as some plain name and keeps its glob's verdict per
    module path: the same answers as the rule written out (a plain name equal to any run of whole segments, a glob
    matching the module or a module holding it), on names asked twice and in any order."""
    import fnmatch
    import re

    pats = ["lm_head", "mlp.gate", "model.layers.2.self_attn.q_proj", "layers.5", "model.layers.1*",
            "*.shared_experts.*", "model.layers.?.mlp", r"re:.*indexer.*"]

    def rule(name: str) -> bool:
        if any(re.match(p[3:], name) for p in pats if p.startswith("re:")):
            return True
        parts = name.split(".")
        holders = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(h, p) for p in pats if "*" in p or "?" in p for h in holders):
            return True
        runs = {".".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)}
        return any(p in runs for p in pats if not p.startswith("re:") and "*" not in p and "?" not in p)

    names = [f"{pre}.{i}.{n}" for pre in ("model.layers", "language_model.model.layers") for i in range(12)
             for n in ("self_attn.q_proj", "self_attn.indexer.wk", "mlp.gate", "mlp.gate_proj", "mlp.down_proj",
                       "mlp.shared_experts.up_proj")] + ["lm_head", "model.lm_head.weight", "layers.5"]
    verdicts = [module_excluded(n, pats) for n in names + names[::-1]]
    assert verdicts == [rule(n) for n in names + names[::-1]]
    assert 0 < sum(verdicts) < len(verdicts)      # both answers occur


def test_kept_16bit_shares_per_layer_and_without_a_list():
    cfg = {"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4", "ignore": [
        "model.layers.0*", "model.layers.2.mlp.shared_experts*", "model.layers.3.mlp.shared_experts*"]}}
    share = kept_16bit(cfg, None, {"shared_experts": range(1, 5), "dense_mlp": [0], "attention": range(5)})
    assert share == {"shared_experts": 0.5, "dense_mlp": 1.0, "attention": 0.2}
    assert kept_16bit({"quantization_config": {"quant_method": "fp8"}}, None, {"dense_mlp": [0]}) == {"dense_mlp": 0.0}
    assert kept_16bit(cfg, None, {"dense_mlp": []}) == {"dense_mlp": 0.0}
    # the hf_quant_config's exclude_modules, not the config's, where one is given (as the engines read it)
    hfq = {"quantization": {"quant_algo": "NVFP4", "exclude_modules": ["model.layers.*.mlp*"]}}
    assert kept_16bit(cfg, hfq, {"dense_mlp": [0], "shared_experts": [1]}) == {"dense_mlp": 1.0,
                                                                                  "shared_experts": 1.0}


#: every shipped quantized checkpoint: (attention of every layer kept, share of the MoE layers' shared experts
#: kept, share of the dense-MLP layers kept), read by hand off its exclude / ignore list. Kimi's int4 and K2.6+
#: NVFP4, GLM-5.1+ NVFP4 (layers 0-2 whole, shared experts), Qwen3.5's NVFP4 (shared_expert), Gemma 4 26B (its
#: "mlp" beside the experts, recorded as the shared expert); gpt-oss's "model.layers.*.self_attn". GLM-5-NVFP4 and
#: Kimi-K2.5-NVFP4 list only attention; the FP8 releases only norms, routers and the head. DeepSeek-V4's NVFP4
#: keeps its non-expert weights in FP8 (`dense_weight_dtype`), not 16 bits; the hybrids (Qwen3.5, Nemotron-3)
#: exclude their softmax layers' attention but not every layer's
SHIPPED = {
    "DeepSeek-R1": (False, 0, 0), "DeepSeek-V3.2": (False, 0, 0), "DeepSeek-V3": (False, 0, 0),
    "DeepSeek-V4-Flash-FP8": (False, 0, 0), "DeepSeek-V4-Flash-NVFP4": (False, 0, 0),
    "DeepSeek-V4-Flash": (False, 0, 0), "DeepSeek-V4-Pro-FP8": (False, 0, 0), "DeepSeek-V4-Pro-NVFP4": (False, 0, 0),
    "DeepSeek-V4-Pro": (False, 0, 0),
    "GLM-5-FP8": (False, 0, 0), "GLM-5-NVFP4": (True, 0, 0), "GLM-5.1-FP8": (False, 0, 0),
    "GLM-5.1-NVFP4": (True, 1, 1), "GLM-5.2-FP8": (False, 0, 0), "GLM-5.2-NVFP4": (True, 1, 1),
    "GLM-5.3-FP8": (False, 0, 0), "GLM-5.3-NVFP4": (True, 1, 1),
    "Gemma-4-26B-A4B-NVFP4": (True, 1, 0), "Gemma-4-31B-IT-NVFP4": (True, 0, 0),
    "Kimi-K2-Thinking": (True, 1, 1), "Kimi-K2.5-NVFP4": (True, 0, 0), "Kimi-K2.5": (True, 1, 1),
    "Kimi-K2.6-NVFP4": (True, 1, 1), "Kimi-K2.7-Code-NVFP4": (True, 1, 1), "Kimi-K2": (False, 0, 0),
    "Kimi-K3": (True, 1, 1), "Llama-3.1-70B-FP8": (False, 0, 0), "MiMo-V2-Flash": (False, 0, 0),
    "MiniMax-M2.5-NVFP4": (True, 0, 0), "MiniMax-M2.5": (False, 0, 0), "MiniMax-M2.7-NVFP4": (True, 0, 0),
    "MiniMax-M2.7": (False, 0, 0), "MiniMax-M3-NVFP4": (False, 0, 0),
    "Nemotron-3-Nano-30B-A3B-NVFP4": (False, 0, 0), "Nemotron-3-Super-120B-A12B-FP8": (False, 0, 0),
    "Nemotron-3-Super-120B-A12B-NVFP4": (False, 0, 0), "Nemotron-3-Ultra-550B-A55B-FP8": (False, 0, 0),
    "Nemotron-3-Ultra-550B-A55B-NVFP4": (False, 0, 0), "Nemotron-3.5-Lightning-30B-A3B-NVFP4": (False, 0, 0),
    "Qwen3-235B-A22B-FP8": (False, 0, 0), "Qwen3.5-397B-A17B-NVFP4": (False, 1, 0),
    "Qwen3.6-27B-NVFP4": (False, 0, 0), "Qwen3.6-35B-A3B-NVFP4": (False, 0, 0), "Step-3.7-Flash-FP8": (False, 0, 0),
    "gpt-oss-120b": (True, 0, 0), "gpt-oss-20b": (True, 0, 0),
}


def test_every_shipped_quantized_checkpoint_reads_its_kept_modules():
    quantized = set()
    for path in sorted((DATA_DIR / "models").glob("*.json")):
        m = catalog.model_from_hf_config(path)
        if m.quant_weight_dtype:
            quantized.add(path.stem)
            assert (m.attn_16bit_weights, m.shared_16bit_share, m.dense_mlp_16bit_share) == SHIPPED[path.stem], \
                path.stem
        else:
            assert (m.attn_16bit_weights, m.shared_16bit_share, m.dense_mlp_16bit_share) == (False, 0.0, 0.0)
    assert quantized == set(SHIPPED)  # a new quantized config needs its line here


def test_kimi_int4_prices_shared_experts_and_dense_layer_at_16_bits():
    """Kimi-K2.5's int4 checkpoint served as shipped: its shared experts (60 MoE layers) and dense first layer's MLP
    are held at 2 bytes a weight instead of int4's 0.5, on every engine's path; served in another format (fp8: a
    requantization the list does not describe) they follow that format."""
    m = catalog.model("moonshotai/Kimi-K2.5")
    q = dataclasses.replace(m, name="k25-all-int4", hf_id="", aliases=(), shared_16bit_share=0.0,
                            dense_mlp_16bit_share=0.0)
    tp = 8
    lc = layer_costs(ModelShape.from_models([m]), float(tp))
    assert lc.shared_params == 60 * 3 * m.hidden * m.shared_ffn / tp
    assert lc.dense_mlp_params == 1 * 3 * m.hidden * m.ffn / tp
    extra = (lc.shared_params + lc.dense_mlp_params) * (2.0 - DTYPE_BYTES["int4"])
    for engine in ("vllm", "trtllm", "roofline"):
        kw = dict(gpu="H200", tp=tp, batch_size=[1, 64], input_len=2048, output_len=256, engine=engine)
        own, all4 = inference.estimate([m, m], **kw), inference.estimate([q, q], **kw)
        assert (own["weight_dtype"] == "int4").all()
        assert ((own["weights_gib"] - all4["weights_gib"]) * 2**30).to_numpy() == pytest.approx([extra] * 2,
                                                                                              rel=1e-9)
        # the step differs (16-bit GEMMs: other tables / rates, more bytes streamed)
        assert not np.allclose(own["ttft_ms"].to_numpy(), all4["ttft_ms"].to_numpy(), rtol=1e-6), engine
        fp8 = dict(kw, weight_dtype="fp8", gpu="B200")
        a, b = inference.estimate([m, m], **fp8), inference.estimate([q, q], **fp8)
        cols = ["ttft_ms", "tpot_ms", "weights_gib"]
        assert a[cols].to_numpy().tolist() == b[cols].to_numpy().tolist()


def test_4bit_moe_checkpoints_read_which_attention_they_quantize():
    """A 4-bit MoE checkpoint's attention is 16-bit unless its config stores it otherwise (`quant.stored_shares`):
    (softmax layers in the format, in FP8, linear layers in the format, in FP8), read off the configs by hand.
    Qwen3.6-35B-A3B-NVFP4's MIXED_PRECISION lists every attention and Gated DeltaNet projection in FP8;
    Nemotron-3-Nano's NVFP4 exclude list keeps its 6 attention layers and 6 of its 23 Mamba layers out (17 in
    NVFP4); Nemotron-3.5-Lightning's MIXED_PRECISION stores its Mamba layers in FP8 and excludes attention; GLM-5's
    exclude list keeps attention out; a bare quant_algo (Nemotron-3-Super's) says nothing."""
    got = {n: catalog.model(n).attn_quant_shares for n in (
        "Qwen3.6-35B-A3B-NVFP4", "Nemotron-3-Nano-30B-A3B-NVFP4", "Nemotron-3.5-Lightning-30B-A3B-NVFP4",
        "GLM-5-NVFP4", "Nemotron-3-Super-120B-A12B-NVFP4", "Qwen3.5-397B-A17B-NVFP4", "gpt-oss-120b")}
    assert got == {"Qwen3.6-35B-A3B-NVFP4": (0.0, 1.0, 0.0, 1.0),
                   "Nemotron-3-Nano-30B-A3B-NVFP4": (0.0, 0.0, 17 / 23, 0.0),
                   "Nemotron-3.5-Lightning-30B-A3B-NVFP4": (0.0, 0.0, 0.0, 1.0),
                   "GLM-5-NVFP4": (0.0,) * 4, "Nemotron-3-Super-120B-A12B-NVFP4": (),
                   "Qwen3.5-397B-A17B-NVFP4": (0.0,) * 4, "gpt-oss-120b": (0.0,) * 4}
    # dense checkpoints keep their own rule (`attn_16bit_weights`)
    assert catalog.model("nvidia/Qwen3.6-27B-NVFP4").attn_quant_shares == ()


@pytest.mark.parametrize("shares", [(0.5,), (0.0, 1.0, 0.0), (0.9, 0.9, 0.0, 0.0), (0.0, 0.0, 0.6, 0.6),
                                    (-0.1, 0.0, 0.0, 0.0), (0.0, 1.5, 0.0, 0.0), (0.0,) * 5])
def test_attn_quant_shares_checked_on_a_user_record(shares):
    """A user record's attn_quant_shares is () or four shares in 0-1, each pair summing to at most 1: a short tuple
    died in the cost model with a bare IndexError, a pair over 1 gave negative 16-bit parameters silently."""
    from objectives.catalog.errors import CatalogError
    m = dataclasses.replace(catalog.model("Qwen3.6-35B-A3B-NVFP4"), attn_quant_shares=shares)
    with pytest.raises(CatalogError, match=r"attn_quant_shares=.*\(\) or 4 shares in 0-1.*each pair summing to at "
                                           r"most 1"):
        inference.estimate(m, "B200", input_len=1024, output_len=128)
    ok = dataclasses.replace(m, attn_quant_shares=(0.5, 0.5, 0.25, 0.0))
    assert bool(inference.estimate(ok, "B200", input_len=1024, output_len=128)["fits"].iloc[0])


@pytest.mark.parametrize("engine", ["vllm", "roofline"])
def test_attention_a_4bit_moe_checkpoint_quantizes_is_priced_in_its_stored_format(engine):
    """Served in its own format, the attention a 4-bit MoE checkpoint's config stores in FP8 is held at 1 byte a
    weight and the Mamba layers it stores in NVFP4 at the format's bytes, instead of the engines' 16-bit rule (the
    record with no statement, `attn_quant_shares` ()); served in another format the statement does not apply."""
    kw = dict(gpu="B200", tp=1, batch_size=[1, 64], input_len=2048, output_len=256, engine=engine)
    for name, soft8, lin4, lin8 in (("Qwen3.6-35B-A3B-NVFP4", 1.0, 0.0, 1.0),
                                    ("Nemotron-3-Nano-30B-A3B-NVFP4", 0.0, 17 / 23, 0.0)):
        m = catalog.model(name)
        rule = dataclasses.replace(m, name=f"{name}-rule", hf_id="", aliases=(), attn_quant_shares=())
        lc = layer_costs(ModelShape.from_models([m]), 1.0)
        lin = m.n_linear_attn_layers * float(np.ravel(ModelShape.from_models([m]).lin_params)[0])
        soft = float(np.ravel(lc.attn_params)[0]) - lin
        saved = (soft * soft8 + lin * lin8) * (2.0 - 1.0) + lin * lin4 * (2.0 - DTYPE_BYTES["fp4"])
        own, r = inference.estimate([m, m], **kw), inference.estimate([rule, rule], **kw)
        assert ((r["weights_gib"] - own["weights_gib"]) * 2**30).to_numpy() == pytest.approx([saved] * 2, rel=1e-9)
        assert saved > 0.5 * 2**30
        # a decode of 64 sequences reads fewer bytes (at batch 1 an engine's FP8 GEMM table can be slower than bf16)
        assert own["tpot_ms"].iloc[1] < r["tpot_ms"].iloc[1], name
        a, b = (inference.estimate([x, x], **dict(kw, weight_dtype="fp8")) for x in (m, rule))
        cols = ["ttft_ms", "tpot_ms", "weights_gib"]
        assert a[cols].to_numpy().tolist() == b[cols].to_numpy().tolist()


def test_stored_shares_parent_module_and_an_int4_layer_in_an_fp4_checkpoint():
    """`quant.stored_shares` on a MIXED_PRECISION list: a layer whose parent module (`self_attn`) is listed takes
    its algorithm; a layer listed in INT4 in an fp4 checkpoint is neither in the format nor FP8 (counted 16-bit,
    the cost model's rule for what it does not price); an unlisted layer is 16-bit. An exclude list: the kept
    share 16-bit, the rest in the format (`kept_16bit`'s counts)."""
    from objectives.catalog.quant import stored_shares
    listed = {"model.layers.0.self_attn": {"quant_algo": "FP8"},
              "model.layers.1.self_attn.o_proj": {"quant_algo": "NVFP4"},
              "model.layers.2.self_attn.o_proj": {"quant_algo": "W4A16_AWQ"}}
    cfg = {"quantization_config": {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION",
                                   "quantized_layers": listed}}
    names = {"attention": ("self_attn.o_proj",)}
    got = stored_shares(cfg, None, {"attention": range(4)}, names, "fp4")
    assert got == {"attention": (0.25, 0.25)}
    assert stored_shares(cfg, None, {"attention": []}, names, "fp4") == {"attention": (0.0, 0.0)}
    excl = {"quantization_config": {"ignore": ["model.layers.0.self_attn"]}}
    assert stored_shares(excl, None, {"attention": range(4)}, names, "fp4") == {"attention": (0.75, 0.0)}
    assert stored_shares({"quantization_config": {"quant_algo": "NVFP4"}}, None, {"attention": range(4)}, names,
                         "fp4") is None


def test_fp8_attention_of_an_int4_moe_checkpoint_on_a_gpu_without_fp8():
    """Attention an int4 MoE checkpoint's config stores in FP8, on A100 (no FP8): the closed form computes those
    GEMMs weight-only at bf16 (`core`'s fp8_tput fallback: the prompt's time as at 16 bits) while streaming one byte
    a weight (a shorter TPOT); the measured curves read the 16-bit table for them where the profile holds no FP8
    GEMM (`measured._static_fp8_table` None: as 16-bit attention). On H100 both price the FP8 GEMMs faster."""
    base = catalog.model("Qwen3.6-35B-A3B-NVFP4")
    assert base.attn_quant_shares == (0.0, 1.0, 0.0, 1.0)
    i4 = dataclasses.replace(base, name="int4-fp8-attn", quant_weight_dtype="int4", quant_scheme="int4_awq")
    i16 = dataclasses.replace(i4, name="int4-16bit-attn", attn_quant_shares=(0.0,) * 4)

    def run(gpu: str, engine: str) -> tuple[np.ndarray, np.ndarray]:
        df = inference.estimate([i4, i16], gpu, batch_size=1, input_len=1024, output_len=128, engine=engine)
        assert df["weight_dtype"].astype(str).tolist() == ["int4", "int4"]
        return df["ttft_ms"].to_numpy(), df["tpot_ms"].to_numpy()

    ttft, tpot = run("A100", "roofline")
    assert ttft[0] == ttft[1] and tpot[0] < tpot[1]
    ttft, tpot = run("A100", "vllm")
    assert ttft[0] == ttft[1] and tpot[0] == tpot[1]
    for engine in ("roofline", "vllm"):
        ttft, tpot = run("H100", engine)
        assert ttft[0] < ttft[1] and tpot[0] < tpot[1], engine
