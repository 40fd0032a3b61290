"""The measured-profile curves (objectives.inference.measured): which kernel table each layer of a model reads."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from objectives import inference, profiles
from tests.helpers.profiles import slow_table

KIMI = dict(model="moonshotai/Kimi-K2.5", gpu="B200", tp=8, batch_size=8, input_len=1024, output_len=256,
            engine="vllm")


@pytest.mark.parametrize("weight_dtype", ["fp4", "int4"])
def test_four_bit_moe_checkpoints_run_their_attention_projections_in_16_bits(monkeypatch, weight_dtype):
    # the NVFP4 and int4 releases of Kimi-K2.5 leave every layer's self_attn unquantized: its five MLA projections
    # run the bf16 GEMM (at its full weight bytes), so slowing that table slows every layer's attention, not only
    # the LM head
    p = profiles.load("B200", "vllm")
    base = inference.estimate(**KIMI, weight_dtype=weight_dtype)["tpot_ms"].iloc[0]
    slow_table(monkeypatch, "gemm.bf16", 3.0)
    slow = inference.estimate(**KIMI, weight_dtype=weight_dtype)["tpot_ms"].iloc[0]
    bf16 = p.table("gemm.bf16")
    h, nh, tp, m = 7168.0, 64.0, 8.0, 8.0
    proj = sum(float(bf16(m, n, k)) for n, k in ((1536, h), (nh * 192 / tp, 1536), (576, h),
                                                  (nh * 256 / tp, 512), (h, nh * 128 / tp)))
    # 61 layers' projections at 3x: at least 2 x their time more (less the hidden launch floor), well beyond the
    # LM head's share
    assert slow - base > 0.5 * 2.0 * 61 * proj


def test_dense_four_bit_models_keep_their_attention_in_the_weight_format(monkeypatch):
    # the rule is for MoE checkpoints; a dense model's 4-bit projections stay on the fp4 GEMM: slowing the bf16
    # table moves only its LM head
    kw = dict(KIMI, model="Llama-3.1-70B", weight_dtype="fp4")
    base = inference.estimate(**kw)["tpot_ms"].iloc[0]
    slow_table(monkeypatch, "gemm.bf16", 3.0)
    slow = inference.estimate(**kw)["tpot_ms"].iloc[0]
    assert slow - base < 0.1 * base


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_engines_overlap_shared_experts_with_routed_ones_at_decode_batches(monkeypatch, engine):
    from objectives.inference import measured
    kw = dict(KIMI, weight_dtype="fp4", input_len=2048, engine=engine)
    overlapped = inference.estimate(**kw).iloc[0]
    monkeypatch.setattr(measured, "SHARED_EXPERT_STREAM_TOKENS", {})
    serial = inference.estimate(**kw).iloc[0]
    # decode (8 tokens per forward): each of the 60 MoE layers pays max(shared, routed) instead of their sum, so
    # the step loses the shared experts' two fp4 GEMMs (less the launch floor CUDA graphs hide, which leaves at
    # least a quarter of each kernel)
    fp4 = profiles.load("B200", engine).table("gemm.fp4")
    h, sh, tp = 7168.0, 2048.0, 8.0
    shared_ms = float(fp4(8.0, 2 * sh / tp, h) + fp4(8.0, h, sh / tp))
    assert serial["tpot_ms"] - overlapped["tpot_ms"] > 0.2 * 60 * shared_ms
    # a 2,048-token prompt is past the stream threshold: its prefill runs them one after the other
    assert overlapped["ttft_ms"] == pytest.approx(serial["ttft_ms"], rel=1e-9)


def test_trtllm_tp_groups_across_gb200_trays_run_its_own_all_reduce(monkeypatch):
    """GB200's tables stop at one 4-GPU tray; TP 8 spans two trays of one NVLink domain. TensorRT-LLM keeps its own
    (MNNVL) all-reduce there, so its 2 x 61 all-reduces per decode step extrapolate the custom all-reduce table
    (a few µs at one token), not NCCL's (tens of µs); vLLM, whose custom all-reduce is disabled across nodes,
    keeps NCCL's."""
    from objectives.inference import measured
    kw = dict(model="Kimi-K2.5", gpu="GB200", tp=8, ep=8, weight_dtype="fp4", batch_size=1, input_len=1024,
              output_len=256)
    own = {e: inference.estimate(**kw, engine=e).iloc[0]["tpot_ms"] for e in ("trtllm", "vllm")}
    monkeypatch.setattr(measured, "MNNVL_ALLREDUCE_ENGINES", ())
    nccl = {e: inference.estimate(**kw, engine=e).iloc[0]["tpot_ms"] for e in ("trtllm", "vllm")}
    prof = profiles.load("GB200", "trtllm")
    one = 7168.0  # one token's hidden state
    gap_ms = float(prof.table("comm.nccl_all_reduce")(4.0, one) - prof.table("comm.custom_allreduce")(4.0, one))
    assert nccl["trtllm"] - own["trtllm"] > 0.5 * 2 * 61 * gap_ms
    assert own["vllm"] == pytest.approx(nccl["vllm"], rel=1e-12)


def test_trtllm_moe_with_ep_up_to_top_k_gathers_instead_of_all_to_all(monkeypatch):
    """TensorRT-LLM under attention DP with EP <= top-k (Kimi-K2.5: EP 4, top-8) runs all-gather + reduce-scatter
    around its experts, not DeepEP's all-to-all: an 8k-token prompt's 60 MoE layers cost NCCL's all-reduce of the
    gathered tokens instead of DeepEP's normal dispatch + combine (over a second per prompt less here)."""
    from objectives.inference import measured
    kw = dict(model="Kimi-K2.5", gpu="GB200", tp=1, ep=4, attn_dp=4, weight_dtype="fp4", batch_size=1,
              input_len=8192, output_len=1, moe_dp=1.0)
    gathered = {e: inference.estimate(**kw, engine=e).iloc[0]["ttft_ms"] for e in ("trtllm", "vllm")}
    monkeypatch.setattr(measured, "ALLGATHER_MOE_ENGINES", ())
    a2a = {e: inference.estimate(**kw, engine=e).iloc[0]["ttft_ms"] for e in ("trtllm", "vllm")}
    nccl = profiles.load("GB200", "trtllm").table("comm.nccl_all_reduce")
    saved = 60 * (1.5 - float(nccl(4.0, 8192 * 7168.0)))  # DeepEP normal at 8k tokens / rank: ~1.5 ms a layer
    assert a2a["trtllm"] - gathered["trtllm"] > 0.5 * saved
    assert gathered["vllm"] == pytest.approx(a2a["vllm"], rel=1e-12)


def test_a_batch_prices_each_configuration_as_it_would_be_alone():
    """Configurations sharing a model shape and layout share one profile lookup (build_curves): the batch, with
    repeats and rows differing only in batch size, matches each row estimated on its own."""
    gpu = ["H200-SXM-141GB", "H200-SXM-141GB", "B200", "H200-SXM-141GB", "MI300X", "B200", "H200-SXM-141GB"]
    tp = [8, 8, 4, 8, 8, 4, 2]
    engine = ["vllm", "vllm", "sglang", "trtllm", "vllm", "sglang", "roofline"]
    batch = [8, 64, 16, 8, 8, 16, 32]
    whole = inference.estimate("Llama-3.1-70B", gpu, tp, weight_dtype="fp8", batch_size=batch, input_len=2048,
                               output_len=256, engine=engine)
    assert list(whole["source"]) == ["interpolated"] * 4 + ["roofline", "interpolated", "roofline"]  # MI300X: none
    for i in range(len(gpu)):
        one = inference.estimate("Llama-3.1-70B", gpu[i], tp[i], weight_dtype="fp8", batch_size=batch[i],
                                 input_len=2048, output_len=256, engine=engine[i])
        for col in ("ttft_ms", "tpot_ms", "throughput_tok_s"):
            assert whole[col].iloc[i] == pytest.approx(one[col].iloc[0], rel=1e-12), (i, col)
        assert whole["source"].iloc[i] == one["source"].iloc[0]
    # the saturated steady state too: a row no profile costs (MI300X) keeps the closed form's exact formula beside
    # profiled rows (it read the closed form's sampled curve there, 1e-5 off its result alone)
    mt = inference.max_throughput("Llama-3.1-70B", gpu, tp, weight_dtype="fp8", input_len=2048, output_len=256,
                                  max_batch_size=batch, engine=engine)
    for i in range(len(gpu)):
        one = inference.max_throughput("Llama-3.1-70B", gpu[i], tp[i], weight_dtype="fp8", input_len=2048,
                                       output_len=256, max_batch_size=batch[i], engine=engine[i])
        for col in ("ttft_ms", "tpot_ms", "throughput_tok_s"):
            assert mt[col].iloc[i] == pytest.approx(one[col].iloc[0], rel=1e-12), (i, col)


def test_a_reuse_block_shares_prepared_configurations_and_nothing_else(monkeypatch):
    from objectives.inference import core

    args = ("Llama-3.1-70B", "H200-SXM-141GB", 8)
    fast = core.default_eff()
    slow = inference.efficiency.from_params({**fast.params, "profile_layer_us": {"vllm": 200.0}})
    with core.reusing_prepared():
        first = core.prepare(*args, engine="vllm", eff=fast)
        assert core.prepare(*args, engine="vllm", eff=fast) is first
        assert core.prepare(*args, engine="vllm", eff=slow) is not first      # other factors
        assert core.prepare(*args, engine="sglang", eff=fast) is not first    # another engine
        assert core.prepare(*args, engine="vllm", eff=fast, prices={"H200-SXM-141GB": 9.0}) is not first
        t_fast = inference.estimate(*args, batch_size=8, engine="vllm", efficiency=fast)["tpot_ms"].iloc[0]
        t_slow = inference.estimate(*args, batch_size=8, engine="vllm", efficiency=slow)["tpot_ms"].iloc[0]
        assert t_slow > t_fast + 80 * 0.1  # 80 layers x ~190 us more
    assert core.prepare(*args, engine="vllm", eff=fast) is not first          # the block's memo is gone
    before = inference.estimate(*args, batch_size=8, engine="vllm")["tpot_ms"].iloc[0]
    slow_table(monkeypatch, "gemm.bf16", 3.0)   # tables changed between calls
    assert inference.estimate(*args, batch_size=8, engine="vllm")["tpot_ms"].iloc[0] > 1.5 * before


def test_a_reuse_block_gathers_a_sweeps_configurations_for_later_calls_on_some_of_them(monkeypatch):
    """Inside a reuse block, a call on configurations an earlier factorized sweep prepared (the serving model's
    searches ask for shrinking subsets of a study's grid) gathers their coefficients instead of computing them:
    the numbers of the subset computed alone, bit for bit. A configuration the sweep lacks is computed, and so is a
    call costed by the closed form alone (the sweep's roofline rows carry sampled curves that such a call has
    not: the simulator's step model reads curves where they exist)."""
    import pandas as pd

    from objectives.inference import core
    from objectives.inference.step import StepModel

    rng = np.random.default_rng(0)
    n = core._FACTORIZE_MIN
    gpu = np.array(["H100-SXM-80GB", "B200", "MI300X", "L40S"])[rng.integers(0, 4, n)]
    tp, w = rng.choice([1, 2, 4, 8], n), rng.choice(["bf16", "fp8"], n)
    mbs = rng.integers(1, 512, n)

    def mt(i: np.ndarray) -> pd.DataFrame:
        return inference.max_throughput("Llama-3.1-70B", gpu[i], tp[i], weight_dtype=w[i], input_len=2048,
                                        output_len=256, max_batch_size=mbs[i])
    sub = rng.choice(n, 300, replace=False)
    alone, step_alone = mt(sub), StepModel("Llama-3.1-70B", "MI300X", 2, weight_dtype="fp8")
    computed = []
    real = core._prepare
    monkeypatch.setattr(core, "_prepare", lambda *a, **k: computed.append(len(computed)) or real(*a, **k))
    with core.reusing_prepared():
        mt(np.arange(n))
        assert len(computed) == 1                        # the sweep: one call on its distinct configurations
        inside = mt(sub)
        assert len(computed) == 1                        # gathered
        pd.testing.assert_frame_equal(inside, alone, check_exact=True)
        inference.max_throughput("Llama-3.1-70B", "H200-SXM-141GB", 8, input_len=2048, output_len=256)
        assert len(computed) == 2                        # a GPU the sweep lacks
        step = StepModel("Llama-3.1-70B", "MI300X", 2, weight_dtype="fp8")
        assert len(computed) == 3 and step._c.curves is None is step_alone._c.curves   # the closed form alone
        assert step.time_ms(512, 512 * 256.5, 64, 64 * 2048.0) == step_alone.time_ms(512, 512 * 256.5, 64, 64 * 2048.0)


def test_profiled_configurations_broadcast_over_a_grid_like_the_roofline():
    """Column and row vectors of configuration arguments (tp down, pp across) broadcast on the profile path too;
    each cell is the configuration estimated alone."""
    tp, pp = np.array([2, 4, 8])[:, None], np.array([1, 2])[None, :]
    grid = inference.estimate("Llama-3.1-70B", "H100-SXM-80GB", tp, pp, weight_dtype="fp8", batch_size=8,
                              engine="vllm")
    assert len(grid) == 6 and set(grid["source"]) == {"interpolated"}
    for i, (t, p) in enumerate([(t, p) for t in (2, 4, 8) for p in (1, 2)]):
        one = inference.estimate("Llama-3.1-70B", "H100-SXM-80GB", t, p, weight_dtype="fp8", batch_size=8,
                                 engine="vllm")
        assert grid["tpot_ms"].iloc[i] == pytest.approx(one["tpot_ms"].iloc[0], rel=1e-12), (t, p)


def test_the_kv_cache_admits_as_each_engine_schedules():
    """Under KV pressure (Llama-3.1-8B bf16 on one H100, 1k in, 8k out) the batch in flight follows the engine's
    admission policy: vLLM holds a running request's prompt and on average half its output, TensorRT-LLM and the
    roofline reserve the fitted share of the whole output; `engine_kv_reserve` sets it per engine."""
    from objectives.inference.core import default_eff
    from objectives.inference.efficiency import from_params

    base = default_eff()
    kw = dict(tp=1, weight_dtype="bf16", input_len=1024, output_len=8192, max_batch_size=4096)
    n = {e: float(inference.max_throughput("Llama-3.1-8B", "H100-SXM-80GB", engine=e, **kw)["batch_size"].iloc[0])
         for e in ("vllm", "trtllm", "roofline")}
    frac = float(base["kv_reserve_output_frac"])
    assert n["trtllm"] == n["roofline"]
    assert n["vllm"] / n["trtllm"] == pytest.approx((1024 + frac * 8192) / (1024 + 0.5 * 8192), rel=0.03)
    more = from_params({**base.params, "engine_kv_reserve": {"vllm": 0.25}}, base.meta)
    n25 = float(inference.max_throughput("Llama-3.1-8B", "H100-SXM-80GB", engine="vllm", efficiency=more,
                                         **kw)["batch_size"].iloc[0])
    assert n25 / n["vllm"] == pytest.approx((1024 + 0.5 * 8192) / (1024 + 0.25 * 8192), rel=0.03)
    # 64 closed-loop clients all run on vLLM (no queue: its TTFT stays a prefill's), not on TensorRT-LLM
    c = {e: inference.max_throughput("Llama-3.1-8B", "H100-SXM-80GB", engine=e, concurrency=64, **kw)
         for e in ("vllm", "trtllm")}
    assert float(c["vllm"]["batch_size"].iloc[0]) == 64 and float(c["trtllm"]["batch_size"].iloc[0]) < 64
    assert float(c["vllm"]["ttft_ms"].iloc[0]) < 0.05 * float(c["trtllm"]["ttft_ms"].iloc[0])


def _without_moe_cells(monkeypatch: pytest.MonkeyPatch, gpu: str, engine: str, table: str, eps: tuple) -> None:
    """The `gpu` / `engine` profile with the `table` cells measured at the EP sizes `eps` (expert TP 1) removed."""
    load = profiles.load

    def lacking(*a, **kw):
        p = load(*a, **kw)
        if p is None or p.system != profiles.system_of(gpu) or p.engine != engine:
            return p
        keys = p.keys[table].copy()
        keys[(keys[:, 4] == 1) & np.isin(keys[:, 5], eps), 5] = -1.0   # a shape no lookup asks for
        return dataclasses.replace(p, keys={**p.keys, table: keys})
    monkeypatch.setattr(profiles, "load", lacking)


@pytest.mark.parametrize("tp, lacking", [(1, (1.0,)), (2, (2.0,)), (2, (2.0, 4.0))])
def test_a_moe_cell_the_table_lacks_is_priced_at_its_measured_neighbour_not_the_closed_form(monkeypatch, tp,
                                                                                            lacking):
    # H200's TensorRT-LLM MXFP4 table measures gpt-oss-120b's experts at EP 1, 2, 4, ... (H100's lacks EP 1).
    # Without the cell the layer is read at twice the EP size (or, lacking that too, at half of it), and the row
    # says so; the balanced grouped-GEMM closed form put H100's EP 1 decode step at 0.6x the measured layer's
    args = dict(model="openai/gpt-oss-120b", gpu="H200", tp=tp, ep=tp, batch_size=[1, 16, 64], input_len=1024,
                output_len=1024, engine="trtllm")
    own = inference.estimate(**args)
    _without_moe_cells(monkeypatch, "H200-SXM-141GB", "trtllm", "moe.w4a16_mxfp4", lacking)
    near = inference.estimate(**args)
    assert set(own["source"].astype(str)) == {"interpolated"}
    assert set(near["source"].astype(str)) == {"extrapolated"}
    ratio = near["tpot_ms"].to_numpy() / own["tpot_ms"].to_numpy()
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio


def test_an_mla_model_is_bounded_by_its_own_attention_tables_not_the_gqa_ones():
    # DeepSeek-V3 at attention TP 1 runs 128 heads per GPU: inside the MLA tables (up to 128 heads), beyond the
    # GQA context table's 96, which its attention never reads (2 prompts per rank: the 8 ranks' 16,384 tokens stay
    # within the tokens the fused-MoE table measured)
    r = inference.estimate("deepseek-ai/DeepSeek-V3", "B200", tp=1, attn_dp=8, ep=8, weight_dtype="fp8",
                           batch_size=2, input_len=1024, output_len=1024, engine="vllm")
    assert str(r["source"].iloc[0]) == "interpolated"
    p = profiles.load("B200", "vllm")
    assert not p.table("context_attention.fp8").inside(1.0, 1024.0, 128.0)
    assert p.table("mla_context.fp8").inside(1.0, 1024.0, 128.0)


def test_a_block_fp8_checkpoint_reads_the_block_scaled_gemm_table_where_the_engine_measured_it(monkeypatch):
    # the same architecture in FP8: Qwen's block-scaled release, and the bf16 checkpoint quantized per tensor (one
    # KV cache for both: the block checkpoint's "auto" one is 16-bit, the substitute's fp8)
    kw = dict(gpu="H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", batch_size=1, input_len=1024, output_len=256)
    pair = ["Qwen/Qwen3-235B-A22B-FP8", "Qwen/Qwen3-235B-A22B"]

    def tpot(engine: str) -> np.ndarray:
        return inference.estimate(model=pair, engine=engine, **kw)["tpot_ms"].to_numpy()

    base = {e: tpot(e) for e in ("vllm", "sglang", "trtllm")}
    # vLLM's block table is a flat host-time floor: both checkpoints read its per-tensor table
    assert base["vllm"][0] == base["vllm"][1]
    # TensorRT-LLM's block-scaled GEMM at decode sizes is near its per-tensor one with a static activation scale
    # (`gemm.fp8_static`; its dynamic-scale `gemm.fp8` is ~7 us per GEMM above both)
    assert base["trtllm"][0] != base["trtllm"][1]
    assert abs(base["trtllm"][0] / base["trtllm"][1] - 1.0) < 0.05
    assert base["sglang"][0] != base["sglang"][1]
    # the block table is what moved: doubling it moves the block checkpoint alone
    slow_table(monkeypatch, "gemm.fp8_block", 2.0)
    for e in ("sglang", "trtllm"):
        now = tpot(e)
        assert now[0] > base[e][0] * 1.1 and now[1] == base[e][1], e
    assert np.array_equal(tpot("vllm"), base["vllm"])


def test_mxfp4_experts_run_the_kernel_each_engine_defaults_to_on_blackwell(monkeypatch):
    # gpt-oss's checkpoint holds MXFP4 experts beside bf16 layers (aiconfigurator-core's rows label it
    # "w4a16_mxfp4": bf16 compute); on Blackwell TensorRT-LLM (W4A8_MXFP4_MXFP8) and SGLang (flashinfer_mxfp4)
    # quantize the experts' activations to MXFP8 all the same, vLLM keeps bf16, and on Hopper all keep bf16
    kw = dict(model="openai/gpt-oss-120b", tp=1, batch_size=[1, 64], input_len=1024, output_len=1024,
              act_dtype="bf16")

    def tpot(gpu: str, engine: str) -> np.ndarray:
        return inference.estimate(gpu=gpu, engine=engine, **kw)["tpot_ms"].to_numpy()

    cases = [("B200", "trtllm"), ("B200", "sglang"), ("B200", "vllm"), ("H200", "trtllm"), ("H200", "vllm")]
    base = {c: tpot(*c) for c in cases}
    slow_table(monkeypatch, "moe.w4a16_mxfp4", 3.0)   # the bf16-activation MXFP4 table 3x slower
    for c in cases:
        now = tpot(*c)
        if c in (("B200", "trtllm"), ("B200", "sglang")):
            assert np.array_equal(now, base[c]), c
        else:
            assert np.all(now > 1.3 * base[c]), c
    # TensorRT-LLM's own MXFP8 kernel, not the bf16 one its table also times (2-3x slower at decode batches)
    assert base[("B200", "trtllm")][1] < 1.2 * base[("B200", "sglang")][1]


def test_a_per_tensor_fp8_checkpoint_reads_tensorrt_llms_static_scale_gemm_and_a_per_channel_one_does_not(monkeypatch):
    # nvidia's ModelOpt FP8 (per tensor, static activation scale), the bf16 checkpoint served in FP8 (TensorRT-LLM
    # quantizes it with ModelOpt: static), Meta's FP8 (per-channel weights, activations scaled per token at run time)
    kw = dict(gpu="H200", tp=8, weight_dtype="fp8", batch_size=4, input_len=1024, output_len=256)
    models = ["nvidia/Llama-3.1-405B-Instruct-FP8", "Llama-3.1-405B", "meta-llama/Llama-3.1-405B-Instruct-FP8"]

    def tpot(engine: str) -> np.ndarray:
        return inference.estimate(model=models, engine=engine, **kw)["tpot_ms"].to_numpy()

    base = {e: tpot(e) for e in ("vllm", "trtllm")}
    assert base["trtllm"][0] == base["trtllm"][1] and base["trtllm"][0] < 0.9 * base["trtllm"][2]
    slow_table(monkeypatch, "gemm.fp8_static", 2.0)   # only TensorRT-LLM's per-tensor rows move
    now = tpot("trtllm")
    assert np.all(now[:2] > 1.1 * base["trtllm"][:2]) and now[2] == base["trtllm"][2]
    assert np.array_equal(tpot("vllm"), base["vllm"])


def _decode_gemm_ms(tp: int) -> float:
    """The decode step's GEMM part (ms) of Llama-3.1-70B NVFP4 on B200 under TensorRT-LLM, batch 4."""
    from objectives.inference.breakdown import breakdown
    r = breakdown("Llama-3.1-70B", "B200", tp=tp, weight_dtype="fp4", kv_dtype="fp8", batch_size=4,
                  input_len=1024, output_len=1024, engine="trtllm")
    return float(r.loc[r["phase"] == "decode", "gemm"].iloc[0])


def test_tensorrt_llm_nvfp4_gemms_fed_a_quantized_input_read_the_fused_table(monkeypatch):
    """TensorRT-LLM quantizes an NVFP4 GEMM's input in the kernel before it where it can: the fused all-reduce +
    RMSNorm kernel for QKV and gate / up (TP > 1 only), the attention kernel for O; down_proj's input (SwiGLU's
    16-bit output) is quantized apart. So at TP 8 three of a layer's four GEMMs read `gemm.fp4_fused`, at TP 1 one."""
    base = {tp: _decode_gemm_ms(tp) for tp in (1, 8)}
    with monkeypatch.context() as mp:
        slow_table(mp, "gemm.fp4_fused", 3.0)
        fused = {tp: _decode_gemm_ms(tp) - base[tp] for tp in (1, 8)}
    with monkeypatch.context() as mp:
        slow_table(mp, "gemm.fp4", 3.0)
        apart = {tp: _decode_gemm_ms(tp) - base[tp] for tp in (1, 8)}
    assert all(v > 0 for v in (*fused.values(), *apart.values())), (fused, apart)
    # TP 8: QKV, O and gate / up (the widest) on the fused table against down alone on the other
    assert fused[8] > 2.0 * apart[8], (fused, apart)
    # TP 1: only O (the smallest of the four) on the fused table
    assert fused[1] < 0.5 * apart[1], (fused, apart)
