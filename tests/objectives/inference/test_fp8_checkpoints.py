"""FP8 checkpoints as the engines launch them (issue 13, twenty-ninth round).

1. The KV cache a trial does not name is what the engines' "auto" stores for the checkpoint: its FP8 KV scales
   (ModelOpt kv_cache_quant_algo FP8) make it fp8, a block-FP8 checkpoint without them (Qwen3-*-FP8, MiniMax-M2.5)
   keeps the model's 16-bit dtype; SGLang's DeepSeek sparse attention is fp8 on Blackwell, bf16 before.
2. A block-FP8 checkpoint (128 x 128 weight blocks) whose TP-sharded expert FFN or dense row-parallel input is not
   a whole number of blocks is refused (fits False, R_BLOCK), as vLLM, SGLang and TensorRT-LLM refuse it at load.
"""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spaces
from dse import SpaceError
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


def test_deploy_compares_the_prefill_kv_dtype_with_the_engines_kv_cache():
    """A disaggregated GLM-5-FP8 on B200 without kv_dtype stores SGLang's DSA cache, fp8 (vLLM's: the checkpoint's
    16 bits): a prefill_kv_dtype is held against that, after the engine's KV rule. `plan` had compared it with the
    engine-free bf16, refusing SGLang's valid fp8 pair and passing a bf16 prefill pool beside an fp8 decode pool."""
    cfg = {"gpu": "B200", "tp": 8, "ep": 8, "dp": 2, "mode": "disagg", "prefill_replicas": 1}
    wl = {"input_len": 1024, "output_len": 128}
    for engine, kv, other in (("sglang", "fp8", "bf16"), ("vllm", "bf16", "fp8")):
        assert _kv(model="GLM-5-FP8", gpu="B200", tp=8, ep=8, engine=engine) == [kv]
        d = deploy.commands({**cfg, "prefill_kv_dtype": kv}, engine=engine, model="GLM-5-FP8", workload=wl)
        assert d.config["kv_dtype"] == kv and not any("--kv-cache-dtype" in s.argv for s in d.servers)
        with pytest.raises(DeployError, match=f"prefill_kv_dtype='{other}' with kv_dtype='{kv}'"):
            deploy.commands({**cfg, "prefill_kv_dtype": other}, engine=engine, model="GLM-5-FP8", workload=wl)


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


#: a disaggregated space of QWEN on two GPUs whose prefill pool has a format of its own (the knobs the cases vary)
_POOLS = dict(max_gpus=16, modes=("disagg",), tp=[8], max_batch_sizes=[64], max_num_tokens=[8192],
              chunked_prefill=[True])


def _pool_problems(grid, engine_default: str = "roofline") -> list[str]:
    """`block_fp8_problem` of each pool of each row of a space's grid whose own weights are the checkpoint's fp8 (the
    decode pool's knobs, the prefill pool's own where it has them); the non-empty ones."""
    m = catalog.model(QWEN)
    out = []

    def get(r, name, base, default=1):
        v = r.get(name)
        if v is None or (isinstance(v, float) and v != v):
            v = r.get(base, default) if base else default
        return default if v is None or (isinstance(v, float) and v != v) else v
    for _, r in grid.iterrows():
        pools = [(r["weight_dtype"], r["gpu"], r["tp"], get(r, "attn_dp", None), get(r, "ep", None))]
        if r.get("mode") == "disagg":
            pools.append((get(r, "prefill_weight_dtype", "weight_dtype"), get(r, "prefill_gpu", "gpu"),
                          get(r, "prefill_tp", "tp"), get(r, "prefill_attn_dp", "attn_dp"),
                          get(r, "prefill_ep", "ep")))
        for w, gpu, tp, adp, ep in pools:
            if w == "fp8":
                why = block_fp8_problem(m, str(r.get("engine", engine_default)), catalog.gpu(gpu).family,
                                        int(tp), int(adp), int(ep))
                if why:
                    out.append(why)
    return out


def test_each_pool_guards_the_block_rule_on_its_own_weights():
    """A bf16 decode pool beside an fp8 prefill pool at TP 8 without EP: the prefill pool's 192-wide expert shards
    are refused (the rule once read the decode pool's weight_dtype and kept it, which `dse deploy` then refused);
    an fp8 decode pool no longer restricts a bf16 prefill pool (another checkpoint: no blocks), which keeps EP 1."""
    g = spaces.llm_serving(QWEN, ["H200-SXM-141GB"], formats=["bf16"], prefill_formats=["fp8"], prefill_tp=[4, 8],
                           engines=["vllm"], ep=[1, 8], **_POOLS).grid()
    assert len(g) and not _pool_problems(g)
    assert set(zip(g["prefill_tp"], g["ep"])) == {(8, 8)}           # vLLM: tp 4 and tp 8 at ep 1 refused
    g = spaces.llm_serving(QWEN, ["H200-SXM-141GB"], formats=["fp8"], prefill_formats=["bf16"], prefill_tp=[8],
                           engines=["vllm"], ep=[1, 8], prefill_ep=[1, 8], **_POOLS).grid()
    assert set(zip(g["ep"], g["prefill_ep"])) == {(8, 1), (8, 8)}     # the decode pool at ep 8 only
    for _, r in g.iterrows():     # dse deploy runs every pool of every trial
        deploy.commands(r.to_dict(), engine="vllm", model=QWEN, workload={"input_len": 1024, "output_len": 128})


@settings(max_examples=12, deadline=None)
@given(engines=st.sampled_from([None, ["vllm"], ["sglang"], ["vllm", "sglang", "trtllm"]]),
       formats=st.sampled_from([["fp8"], ["bf16"], ["fp8", "bf16"]]),
       prefill_formats=st.sampled_from([None, ["fp8"], ["bf16"], ["fp8", "bf16"]]),
       gpus=st.sampled_from([["H200-SXM-141GB"], ["B200"], ["H200-SXM-141GB", "B200"]]),
       prefill_tp=st.sampled_from([None, [4, 8], [2, 8]]), ep=st.sampled_from([[1, 8], [1, 2, 4, 8]]))
def test_the_space_yields_exactly_the_layouts_every_pool_runs(engines, formats, prefill_formats, gpus, prefill_tp,
                                                              ep):
    """Property: the space keeps every configuration whose pools all pass `block_fp8_problem` at their own
    weights (`dse deploy`'s check) and no other: its grid is the grid without the block rule less the rows
    some pool fails."""
    import spaces.llm as llm
    kw = dict(_POOLS, formats=formats, prefill_formats=prefill_formats, engines=engines, prefill_tp=prefill_tp,
              ep=ep, prefill_gpus=gpus)
    if prefill_formats is None and prefill_tp is None:
        kw["prefill_ep"] = ep                   # a prefill pool of its own all the same
    try:
        g = spaces.llm_serving(QWEN, gpus, **kw).grid()
    except SpaceError:
        g = None
    with mock.patch.object(llm, "_block_fp8_rules", lambda *a, **k: []):
        free = spaces.llm_serving(QWEN, gpus, **kw).grid()
    keep = [not _pool_problems(free.iloc[[i]]) for i in range(len(free))]
    want = free[keep].reset_index(drop=True)
    if g is None:
        assert not len(want)
        return
    cols = list(free.columns)
    assert g[cols].reset_index(drop=True).equals(want[cols].reset_index(drop=True))
