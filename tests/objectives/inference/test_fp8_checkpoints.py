"""FP8 checkpoints as the engines launch them (issue 13, twenty-ninth round).

1. The KV cache a trial does not name is what the engines' "auto" stores for the checkpoint: its FP8 KV scales
   (ModelOpt kv_cache_quant_algo FP8) make it fp8, a block-FP8 checkpoint without them (Qwen3-*-FP8, MiniMax-M2.5)
   keeps the model's 16-bit dtype; SGLang's DeepSeek sparse attention is fp8 on Blackwell, bf16 before.
2. A block-FP8 checkpoint (128 x 128 weight blocks) whose TP-sharded expert FFN or dense row-parallel input is not
   a whole number of blocks is refused (fits False, R_BLOCK), as vLLM, SGLang and TensorRT-LLM refuse it at load.
"""
from __future__ import annotations

import numpy as np
import pytest

import spaces
from objectives import catalog, deploy, inference
from objectives.deploy.flags import DeployError
from objectives.inference.resolve import R_BLOCK, REASONS, block_fp8_problem

QWEN = "Qwen/Qwen3-235B-A22B-FP8"          # block FP8, moe_intermediate_size 1536, no KV scales
LLAMA_FP8 = "nvidia/Llama-3.1-70B-Instruct-FP8"   # ModelOpt per-tensor FP8, kv_cache_quant_algo FP8
KW = dict(batch_size=4, input_len=512, output_len=32)


def _kv(**kw) -> list[str]:
    return list(inference.estimate(**{**KW, **kw})["kv_dtype"].astype(str))


def test_a_block_fp8_checkpoint_without_kv_scales_keeps_a_16_bit_kv_cache_on_every_engine():
    """vLLM `resolve_kv_cache_dtype_string`, SGLang `configure_kv_cache_dtype` and TensorRT-LLM's
    `KvCacheConfig.dtype` "auto" read the checkpoint's KV quantization; Qwen3-*-FP8 ships none."""
    assert catalog.model(QWEN).quant_kv_dtype == ""
    assert _kv(model=QWEN, gpu="H200-SXM-141GB", tp=4, engine=["vllm", "sglang", "trtllm", "roofline"]) == ["bf16"] * 4
    # the activations stay fp8: only the cache follows "auto"
    r = inference.estimate(model=QWEN, gpu="H200-SXM-141GB", tp=4, engine="vllm", **KW)
    assert r["act_dtype"].astype(str).iloc[0] == "fp8"


def test_a_checkpoint_with_fp8_kv_scales_keeps_an_fp8_kv_cache_and_a_named_one_wins():
    assert _kv(model=LLAMA_FP8, gpu="H100", tp=4, engine=["vllm", "sglang", "trtllm"]) == ["fp8"] * 3
    assert _kv(model=QWEN, gpu="H200-SXM-141GB", tp=4, engine="vllm", kv_dtype="fp8") == ["fp8"]
    assert _kv(model=LLAMA_FP8, gpu="H100", tp=4, engine="vllm", kv_dtype="bf16") == ["bf16"]


def test_the_16_bit_kv_cache_costs_what_its_bytes_cost():
    """The same FP8 checkpoint with a bf16 KV cache holds half the tokens in the same memory and reads twice the
    bytes per cached token: fewer clients fit, decode steps at long contexts are slower."""
    kw = dict(model=QWEN, gpu="H200-SXM-141GB", tp=4, engine="vllm", input_len=8192, output_len=256)
    auto = inference.max_throughput(**kw)
    fp8 = inference.max_throughput(**kw, kv_dtype="fp8")
    assert auto["kv_dtype"].astype(str).iloc[0] == "bf16"
    assert 0.45 < auto["batch_size"].iloc[0] / fp8["batch_size"].iloc[0] < 0.55


def test_weights_in_another_format_than_the_checkpoint_keep_the_activation_rule():
    """A 16-bit checkpoint at fp8 weights is served from a substitute (online or ModelOpt FP8): its KV follows the
    activations as before (what `dse deploy` launches with --kv-cache-dtype fp8)."""
    assert _kv(model="Llama-3.1-70B", gpu="H100", tp=4, weight_dtype="fp8", engine="vllm") == ["fp8"]
    assert _kv(model="Llama-3.1-70B", gpu="H100", tp=4, engine="vllm") == ["bf16"]


def test_an_mxfp4_checkpoint_keeps_a_16_bit_kv_cache_on_blackwell():
    """gpt-oss ships no KV scales: fp4 compute on Blackwell no longer implies an fp8 cache."""
    assert _kv(model="gpt-oss-120b", gpu="B200", tp=1, engine=["vllm", "sglang", "trtllm"]) == ["bf16"] * 3


def test_sglang_deepseek_sparse_attention_is_fp8_on_blackwell_and_bf16_before():
    """SGLang's `_set_default_nsa_kv_cache_dtype`: "auto" -> fp8_e4m3 at compute capability >= 10, bfloat16 below,
    whatever the checkpoint; vLLM keeps the checkpoint's "auto" (16 bits for GLM-5-FP8)."""
    kv = _kv(model="GLM-5-FP8", gpu=["B200", "H200-SXM-141GB", "B200"], tp=8, engine=["sglang", "sglang", "vllm"])
    assert kv == ["fp8", "bf16", "bf16"]
    # the NVFP4 checkpoint's FP8 KV scales do not hold on Hopper under SGLang (its DSA rule wins)
    assert _kv(model="GLM-5-NVFP4", gpu="H200-SXM-141GB", tp=8, engine=["sglang", "vllm"]) == ["bf16", "fp8"]


def test_deploy_launches_the_engines_auto_for_the_kv_cache_it_priced():
    """No --kv-cache-dtype where the priced cache is the engine's "auto"; the substitute checkpoint's fp8 cache is
    launched by name."""
    wl = {"input_len": 1024, "output_len": 128}
    for engine in ("vllm", "sglang"):
        d = deploy.commands({"gpu": "H200", "tp": 4}, engine=engine, model=QWEN, workload=wl)
        assert d.config["kv_dtype"] == "bf16" and not any("--kv-cache-dtype" in s.argv for s in d.servers)
        d = deploy.commands({"gpu": "B200", "tp": 8, "ep": 8}, engine=engine, model="GLM-5-FP8", workload=wl)
        priced = _kv(model="GLM-5-FP8", gpu="B200", tp=8, ep=8, engine=engine)
        assert not any("--kv-cache-dtype" in s.argv for s in d.servers), (engine, priced)
    d = deploy.commands({"gpu": "H100", "tp": 4, "weight_dtype": "fp8"}, engine="vllm", model="Llama-3.1-70B",
                        workload=wl)
    argv = d.servers[0].argv
    assert argv[argv.index("--kv-cache-dtype") + 1] == "fp8"


# ------------------------------------------------------------------------------------------ block-FP8 layouts
def _fit(**kw) -> tuple[list[bool], list[str]]:
    r = inference.estimate(**{**KW, **kw})
    return list(r["fits"]), list(r["reason"])


def test_an_expert_shard_off_the_128_block_is_refused_and_expert_parallelism_runs_it():
    """Qwen3-235B-A22B-FP8 at TP 8: 1536 / 8 = 192, vLLM's "The output_size of gate's and up's weight = 192 is not
    divisible by weight quantization block_n = 128"; EP 8 keeps whole experts, TP 4 shards 384 = 3 x 128."""
    fits, reason = _fit(model=QWEN, gpu="H200-SXM-141GB", tp=[8, 8, 4, 8], ep=[1, 8, 1, 2], engine="vllm")
    assert fits == [False, True, True, False]
    assert reason[0] == REASONS[R_BLOCK]
    # vLLM's layout rule (EP spans every rank) refuses ep 2 first; SGLang runs it (expert TP 4: 384 wide)
    fits, _ = _fit(model=QWEN, gpu="H200-SXM-141GB", tp=8, ep=[1, 2], engine="sglang")
    assert fits == [False, True]
    # attention DP multiplies the expert TP: tp 4 x attn_dp 2 without EP shards 192 again
    fits, _ = _fit(model=QWEN, gpu="H200-SXM-141GB", tp=4, attn_dp=2, engine="sglang")
    assert fits == [False]


def test_the_rule_holds_for_the_checkpoints_own_format_and_engines_only():
    """bf16 weights of the same model are another checkpoint (no blocks); SGLang's SM100 FlashInfer TRTLLM-gen MoE
    runner pads Qwen3-MoE's shards (not MiniMax-M2's); TensorRT-LLM and the roofline refuse."""
    fits, _ = _fit(model=QWEN, gpu="H200-SXM-141GB", tp=8, weight_dtype="bf16", engine="vllm")
    assert fits == [True]
    fits, _ = _fit(model=QWEN, gpu="B200", tp=8, engine=["sglang", "vllm", "trtllm", "roofline"])
    assert fits == [True, False, False, False]
    fits, _ = _fit(model="MiniMax-M2.5", gpu="B200", tp=8, engine=["sglang", "vllm"])
    assert fits == [False, False]


def test_a_dense_row_parallel_input_off_the_block_is_refused():
    """Step-3.7-Flash-FP8's shared expert (1280 wide) at TP 4 is 320 per GPU: its down projection's input is not a
    whole number of blocks whatever the EP (shared experts are split over tp)."""
    m = catalog.model("Step-3.7-Flash-FP8")
    fits, _ = _fit(model=m, gpu="B200", tp=4, ep=4, engine="vllm")
    assert fits == [False]
    why = block_fp8_problem(m, "vllm", "blackwell", 4, 1, 4)
    assert "320" in why and "tp=4" in why and "[1, 2]" in why
    assert block_fp8_problem(m, "vllm", "blackwell", 2, 1, 2) == ""


def test_deploy_refuses_the_layout_naming_the_shard_and_what_runs():
    with pytest.raises(DeployError, match=r"192.*not a multiple of 128.*ep=8.*\[1, 2, 3, 4, 6, 12\]"):
        deploy.commands({"gpu": "H200", "tp": 8}, engine="vllm", model=QWEN,
                        workload={"input_len": 1024, "output_len": 128})
    deploy.commands({"gpu": "H200", "tp": 8, "ep": 8}, engine="vllm", model=QWEN,
                    workload={"input_len": 1024, "output_len": 128})


def test_the_space_refuses_the_layouts_every_trial_would_fail_on():
    space = spaces.llm_serving(QWEN, gpus=["H200-SXM-141GB", "B200"], max_gpus=8, engines=["vllm", "sglang"])
    grid = space.grid()
    fp8 = grid[(grid["weight_dtype"] == "fp8") & (grid["tp"] == 8)]
    assert len(fp8) and not ((fp8["ep"] == 1) & ((fp8["engine"] == "vllm") | (fp8["gpu"] == "H200-SXM-141GB"))).any()
    # SGLang's padded runner on B200 keeps tp 8 without EP
    assert ((fp8["ep"] == 1) & (fp8["engine"] == "sglang") & (fp8["gpu"] == "B200")).any()
    r = inference.estimate(model=QWEN, gpu=fp8["gpu"].to_numpy(object), tp=8, ep=fp8["ep"].to_numpy(float),
                           engine=fp8["engine"].to_numpy(object), **KW)
    assert not np.isin(r["reason"].to_numpy(object), [REASONS[R_BLOCK]]).any()
