"""How each engine sizes its KV-cache pool (objectives.inference.kv_pool), as seen through the cost models."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import catalog, inference
from objectives.inference import kv_pool
from objectives.inference.admission import SGLANG
from objectives.inference.efficiency import load_efficiency
from objectives.serving.scheduler import Scheduler

GIB = 2.0 ** 30
MIB = 2.0 ** 20


def _terms(sm: inference.StepModel) -> dict[str, float]:
    p = sm._p
    return {f: float(np.asarray(getattr(p, f))) for f in ("mem_gpu", "weights_gpu", "reserve_gpu", "act_tok_gpu",
                                                          "kv_tok_gpu")}


def test_sglang_reservation_follows_its_server_args_rule():
    """SGLang's default reservation outside mem_fraction_static (sglang/srt/server_args.py): 512 + 1.5 x chunk +
    2 x cuda_graph_max_bs + tp_size x pp / 8 x 1024 MiB, DP attention adding 3 (and 1.5 more above 300) x
    cuda_graph_max_bs x dp_size, at least 10 GiB on GPUs over 60 GiB."""
    h100 = 81559 * MIB
    # H100, TP 8: chunk 8192, cuda_graph_max_bs 512 -> 512 + 12288 + 1024 + 1024
    assert kv_pool.sglang_reserved_bytes(h100, 8, 1, 1) == pytest.approx(14848 * MIB)
    # TP 2: cuda_graph_max_bs 256 -> 512 + 12288 + 512 + 256
    assert kv_pool.sglang_reserved_bytes(h100, 2, 1, 1) == pytest.approx(13568 * MIB)
    # B200 (183,359 MiB): chunk 16384, bs 512 -> 512 + 24576 + 1024 + 1024 at TP 8
    assert kv_pool.sglang_reserved_bytes(183359 * MIB, 8, 1, 1) == pytest.approx(27136 * MIB)
    # DP attention 8 x TP 1 (SGLang's tp_size 8): + 3 x 512 x 8 + 1.5 x 512 x 8 (bs > 300)
    assert kv_pool.sglang_reserved_bytes(h100, 1, 1, 8) == pytest.approx((14848 + 12288 + 6144) * MIB)
    # a 48 GB card: chunk 4096, bs 32 at TP 1, no 10 GiB floor (60 GiB and below)
    assert kv_pool.sglang_reserved_bytes(48 * 1024 * MIB, 1, 1, 1) == pytest.approx((512 + 6144 + 64 + 128) * MIB)
    # a 24 GB card: chunk 2048 (1.5 x max(2048, 2048)), bs 24 at TP 1
    assert kv_pool.sglang_reserved_bytes(24 * 1024 * MIB, 1, 1, 1) == pytest.approx((512 + 3072 + 48 + 128) * MIB)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "roofline"])
def test_kv_capacity_is_the_engines_own_rule(engine):
    """vLLM: 0.9 of the device less weights, reserve and activations; SGLang: the device less its reservation,
    weights and reserve; TensorRT-LLM and the roofline: kv_mem_fraction of what weights, reserve and
    activations leave. The device is what the driver reports (81,559 MiB for an H100)."""
    mnt = 8192
    sm = inference.StepModel("Llama-3.1-70B", "H100", tp=4, weight_dtype="fp8", engine=engine, max_num_tokens=mnt)
    t = _terms(sm)
    assert t["mem_gpu"] == pytest.approx(81559 * MIB)
    act = t["act_tok_gpu"] * mnt
    if engine == "vllm":
        pool = 0.9 * t["mem_gpu"] - t["weights_gpu"] - t["reserve_gpu"] - act
    elif engine == "sglang":
        pool = t["mem_gpu"] - kv_pool.sglang_reserved_bytes(t["mem_gpu"], 4, 1, 1) - t["weights_gpu"] - t["reserve_gpu"]
    else:
        eff = load_efficiency()
        pool = eff["kv_mem_fraction"] * (eff["device_mem_usable"] * t["mem_gpu"] - t["weights_gpu"] - t["reserve_gpu"]
                                         - act)
    assert sm.kv_capacity_tokens == int(np.floor(pool / t["kv_tok_gpu"]))


def test_engine_memory_setting_is_read_in_the_engines_meaning():
    """`kv_capacity_at(u)`: vLLM's gpu_memory_utilization is a share of the whole device, TensorRT-LLM's
    kv_cache_free_gpu_memory_fraction a share of the memory left; at their defaults they give the model's capacity."""
    v = inference.StepModel("Llama-3.1-70B", "H100", tp=2, weight_dtype="fp8", engine="vllm")
    r = inference.StepModel("Llama-3.1-70B", "H100", tp=2, weight_dtype="fp8", engine="roofline")
    assert v.kv_capacity_at(0.9) == v.kv_capacity_tokens
    assert r.kv_capacity_at(load_efficiency()["kv_mem_fraction"]) == pytest.approx(r.kv_capacity_tokens, abs=1)
    tv, tr = _terms(v), _terms(r)
    # 10 points of the device are 8 GiB; 10 points of what is left are fewer
    drop_v = (v.kv_capacity_at(0.9) - v.kv_capacity_at(0.8)) * tv["kv_tok_gpu"]
    drop_r = (r.kv_capacity_at(0.9) - r.kv_capacity_at(0.8)) * tr["kv_tok_gpu"]
    assert drop_v == pytest.approx(0.1 * tv["mem_gpu"], rel=1e-3)
    assert drop_r < 0.6 * drop_v
    # the simulator's scheduler sizes the cache that way
    s = Scheduler(gpu_memory_utilization=0.8, kv_block_size=16)
    assert s.kv_blocks(v) == v.kv_capacity_at(0.8) // 16


@settings(max_examples=30, deadline=None)
@given(u=st.floats(0.5, 0.95), engine=st.sampled_from(["vllm", "sglang", "trtllm"]))
def test_more_memory_share_never_shrinks_the_cache(u, engine):
    sm = inference.StepModel("Qwen/Qwen3-30B-A3B", "H200", tp=1, weight_dtype="fp8", engine=engine)
    assert sm.kv_capacity_at(u) <= sm.kv_capacity_at(min(u + 0.04, 1.0))


def test_a_batch_beyond_vllms_share_does_not_fit_on_vllm():
    """A batch whose memory lies between vLLM's 0.9 of the device and the roofline's usable share of it fits the
    roofline's rule and not vLLM's."""
    mem = catalog.gpu("H100").mem_gib
    usable = load_efficiency()["device_mem_usable"] * mem
    assert usable > 0.9 * mem + 1.0
    b = np.arange(8, 2049, 8)
    kw = dict(tp=2, weight_dtype="fp8", batch_size=b, input_len=2048, output_len=256)
    roof = inference.estimate("Llama-3.1-70B", "H100", engine="roofline", **kw)
    vllm = inference.estimate("Llama-3.1-70B", "H100", engine="vllm", **kw)
    between = (roof["mem_per_gpu_gib"] > 0.9 * mem + 0.5) & (roof["mem_per_gpu_gib"] < usable - 0.5)
    assert between.any()
    assert roof["fits"][between].all() and not vllm["fits"][between].any()
    assert (vllm["fits"] <= roof["fits"]).all()


def test_window_bounded_layers_hold_at_most_their_window():
    """gpt-oss: half its layers attend a 128-token window, and the engines' hybrid KV managers free their blocks
    beyond it, so a long request holds about half the KV of every layer's full context: the batch the cache
    admits nearly doubles against counting every layer at full length; a model without windows is unchanged."""
    from objectives.inference import memory
    from objectives.inference.core import prepare

    p = prepare("openai/gpt-oss-120b", "H100", engine="vllm")
    share, window = float(np.asarray(p.kv_win_share)), float(np.asarray(p.window))
    assert window == 128 and share == pytest.approx(0.5)
    assert memory.held_tokens(9216.0, share, window) == pytest.approx(0.5 * 9216 + 0.5 * 128)
    r = inference.max_throughput("openai/gpt-oss-120b", "H100", input_len=8192, output_len=1024, engine="vllm")
    cap = inference.StepModel("openai/gpt-oss-120b", "H100", engine="vllm").kv_capacity_tokens
    per_seq = 8192 + 0.5 * 1024                                 # vLLM holds the prompt and half the output
    assert r["batch_size"].iloc[0] == np.floor(cap / (0.5 * per_seq + 0.5 * 128))
    assert r["batch_size"].iloc[0] > 1.9 * np.floor(cap / per_seq)
    dense = prepare("Llama-3.1-8B", "H100")
    assert float(np.asarray(dense.kv_win_share)) == 0.0
    assert memory.held_tokens(np.array([1.0, 5000.0]), 0.0, 0.0).tolist() == [1.0, 5000.0]


@settings(max_examples=50, deadline=None)
@given(ctx=st.floats(1.0, 1e6), share=st.floats(0.0, 1.0), window=st.sampled_from([0.0, 128.0, 4096.0]))
def test_held_tokens_never_exceed_the_context_and_grow_with_it(ctx, share, window):
    from objectives.inference import memory
    held = float(memory.held_tokens(ctx, share, window))
    assert held <= ctx * (1 + 1e-12)
    assert float(memory.held_tokens(ctx * 2, share, window)) >= held


def test_sglang_pools_window_layers_apart_for_gpt_oss_only():
    """SGLang gives gpt-oss's window layers a pool of 0.8 tokens per full-pool token (swa_full_tokens_ratio), so a
    long request takes (0.5 + 0.8 x 0.5) of every layer's KV per token, against vLLM's 0.5 per token plus its window;
    Gemma 2, not one of SGLang's hybrid-SWA architectures, holds every layer in full there, and windows on vLLM."""
    from objectives.inference.core import prepare

    ctx = 9216.0
    sgl = prepare("openai/gpt-oss-120b", "H100", engine="sglang")
    vllm = prepare("openai/gpt-oss-120b", "H100", engine="vllm")
    assert float(sgl.seq_tokens(ctx)) == pytest.approx(0.9 * ctx)
    assert float(vllm.seq_tokens(ctx)) == pytest.approx(0.5 * ctx + 0.5 * 128)
    # a prompt shorter than the window: the window pool (0.8 of the full one) binds first
    assert float(sgl.seq_tokens(100.0)) == pytest.approx(0.9 * 100.0 / 0.8)
    g_sgl, g_vllm = prepare("gemma-2-9b", "H100", engine="sglang"), prepare("gemma-2-9b", "H100", engine="vllm")
    assert float(g_sgl.seq_tokens(ctx)) == pytest.approx(ctx)
    assert float(g_vllm.seq_tokens(ctx)) == pytest.approx(0.5 * ctx + 0.5 * 4096)
    r = inference.max_throughput("openai/gpt-oss-120b", "H100", input_len=8192, output_len=1024, engine="sglang")
    cap = inference.StepModel("openai/gpt-oss-120b", "H100", engine="sglang").kv_capacity_tokens
    assert r["batch_size"].iloc[0] == np.floor(cap / (0.9 * (8192 + 0.5 * 1024)))


def test_linear_layer_state_takes_capacity_per_sequence():
    """Qwen3.5's Gated-DeltaNet layers keep a constant fp32 state per sequence, taken from the same pool as the KV
    (a request of c tokens takes c + state), on every engine: fewer sequences fit than counting the KV alone."""
    from objectives.inference.core import prepare

    for engine in ("vllm", "sglang", "trtllm"):
        p = prepare("Qwen3.5-397B-A17B", "H200", tp=8, engine=engine)
        state = float(p.state_tok)
        bytes_per_seq = catalog.model_math.linear_state_bytes_per_seq(catalog.model("Qwen3.5-397B-A17B"))
        assert state * float(p.kv_tok_gpu) * 8 == pytest.approx(bytes_per_seq)   # per GPU: its TP 8 share
        assert state > 1000
        assert float(p.seq_tokens(2048.0)) == pytest.approx(2048 + state)
        kw = dict(tp=8, input_len=1024, output_len=1024, max_batch_size=100_000, engine=engine)
        n = inference.max_throughput("Qwen3.5-397B-A17B", "H200", **kw)["batch_size"].iloc[0]
        cap = inference.StepModel("Qwen3.5-397B-A17B", "H200", tp=8, engine=engine).kv_capacity_tokens
        if engine == "sglang":     # its new-token ratio (`inference.admission`), the last one finding 2,048 free
            ctx = float(SGLANG.steady_context(1024, 1024))
            assert n == np.floor((cap - 2048 - state) / (ctx + state)) + 1
            assert n < np.floor((cap - 2048) / ctx) + 1
            continue
        ctx = 1024 + float(np.asarray(p.coeffs.kv_reserve)) * 1024
        assert n == np.floor(cap / (ctx + state)) and n < np.floor(cap / ctx)
    assert float(prepare("Llama-3.1-8B", "H100").state_tok) == 0.0      # a plain transformer holds none


@settings(max_examples=60, deadline=None)
@given(ctx=st.floats(1.0, 1e6), share=st.floats(0.0, 1.0), window=st.sampled_from([0.0, 128.0, 4096.0]),
       state=st.sampled_from([0.0, 500.0, 40000.0]), sgl=st.booleans())
def test_seq_tokens_grow_with_context_at_their_slope(ctx, share, window, state, sgl):
    """Every layout: never less than the slope's share of the context (what the simulator counts per token), never
    shrinking as the context grows, and the state's constant on top."""
    held = float(kv_pool.seq_tokens(sgl, ctx, share, window, state))
    a = float(kv_pool.seq_slope(sgl, share, window))
    assert held >= a * ctx * (1 - 1e-12)
    assert float(kv_pool.seq_tokens(sgl, 2 * ctx, share, window, state)) >= held
    assert held >= state * (1 - 1e-12)
