"""An expert-parallel load balancer (`eplb`): the knob's validation, the balanced-routing MoE tables the profile
builder keeps for it, and what the cost model reads with it (measured rows at ep > 1 only)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import inference, serving
from objectives.inference.resolve import flag
from objectives.profiles.build import MOE_SHAPE, moe_tables
from tests.conftest import full_profile

DSR1 = "nvidia/DeepSeek-R1-NVFP4"     # 256 routed experts, top-8, NVFP4 experts
QWEN = "Qwen/Qwen3-235B-A22B-FP8"     # 128 routed experts


def test_the_knob_takes_bools_and_names_anything_else():
    assert flag("eplb", True) == 1 and flag("eplb", False) == 0 and flag("eplb", np.True_) == 1
    assert flag("eplb", [True, False]).tolist() == [1, 0] and flag("eplb", 1) == 1
    # a missing entry (None / NaN) where the caller gives it a meaning (`serving.analytical.Deployments`)
    assert flag("eplb", np.array([True, None, 1.0, np.nan], dtype=object), missing=0).tolist() == [1, 0, 1, 0]
    for bad, err in (("yes", TypeError), (None, TypeError), (0.5, TypeError), (2, ValueError),
                     ([True, 2], ValueError), (["on"], TypeError)):
        with pytest.raises(err, match=r"^eplb must be True or False"):
            flag("eplb", bad)
    with pytest.raises(TypeError, match=r"^eplb must be True or False .*'on'"):
        inference.estimate(QWEN, "H200", tp=8, ep=8, eplb="on")


def _rows(ep: int, tp: int, dist: str, latency: float, dtype: str = "fp8") -> pd.DataFrame:
    t = np.array([1.0, 16.0, 256.0, 4096.0])
    shape = dict(zip(MOE_SHAPE, (4096, 1536, 8, 128, tp, ep)))
    return pd.DataFrame({"moe_dtype": dtype, "num_tokens": t, "distribution": dist, "latency": latency * t ** 0.5,
                         **shape})


def test_the_builder_keeps_balanced_rows_only_where_the_default_curve_is_the_skewed_one_at_wide_ep():
    newest = pd.concat([_rows(8, 1, "power_law_1.01", 1.0), _rows(8, 1, "balanced", 0.5),     # kept
                        _rows(2, 4, "power_law_1.01", 1.0), _rows(2, 4, "balanced", 0.5),     # expert TP: not
                        _rows(1, 1, "power_law_1.01", 1.0), _rows(1, 1, "balanced", 0.5),     # EP 1: not
                        _rows(4, 1, "balanced", 3.0),                                         # balanced only: not
                        # slower than the busiest rank of a skewed draw: not balanced (a grouped router's ties)
                        _rows(32, 1, "power_law_1.01", 1.0), _rows(32, 1, "balanced", 3.0)])
    older = pd.concat([_rows(8, 1, "balanced", 0.1),                                          # shadowed
                       _rows(16, 1, "power_law_1.01", 1.0), _rows(16, 1, "balanced", 0.25)])  # kept
    skewed, bal = moe_tables([newest, older]), moe_tables([newest, older], balanced=True)
    assert sorted(map(tuple, bal["fp8"][1].astype(int).tolist())) == [
        (4096, 1536, 8, 128, 1, 8), (4096, 1536, 8, 128, 1, 16)]
    table, keys = bal["fp8"]
    i = {int(k[-1]): n + 1.0 for n, k in enumerate(keys)}
    assert float(table(i[8], 256.0)) == pytest.approx(0.5 * 16.0, rel=1e-6)    # the newest file's balanced rows
    assert float(table(i[16], 256.0)) == pytest.approx(0.25 * 16.0, rel=1e-6)
    # the default tables are what they were: the skewed curve where measured, else the balanced one
    t2, k2 = skewed["fp8"]
    j = {tuple(int(x) for x in k[-2:]): n + 1.0 for n, k in enumerate(k2)}
    assert float(t2(j[(1, 8)], 256.0)) == pytest.approx(16.0, rel=1e-6)
    assert float(t2(j[(1, 32)], 256.0)) == pytest.approx(16.0, rel=1e-6)
    assert float(t2(j[(1, 4)], 256.0)) == pytest.approx(3.0 * 16.0, rel=1e-6)


def _family(h: int, f: int, lat: dict[tuple[int, str], float]) -> pd.DataFrame:
    """Rows of one fused-MoE family (fp8, top-8 of 256 experts) at EP 1 / 8 / 32: latency = lat[(ep, dist)] x T."""
    t = np.array([1.0, 64.0, 1024.0, 4096.0, 16384.0])
    return pd.concat([pd.DataFrame({"moe_dtype": "fp8_block", "hidden_size": h, "inter_size": f, "topk": 8,
                                    "num_experts": 256, "moe_tp_size": 1, "moe_ep_size": ep, "num_tokens": t,
                                    "distribution": dist, "latency": v * t})
                      for (ep, dist), v in lat.items()], ignore_index=True)


def test_a_grouped_gate_family_is_carried_to_wide_ep_by_a_plain_familys_scaling():
    from objectives.profiles.build import _ungrouped
    pl, bal = "power_law_1.01", "balanced"
    # DeepSeek-like family: its EP rows timed a rank holding several times its share (balanced slower than skewed)
    grouped = _family(7168, 2048, {(1, pl): 8.0, (8, pl): 4.0, (8, bal): 6.0, (32, pl): 3.0, (32, bal): 5.0})
    plain = _family(6144, 2048, {(1, pl): 6.0, (8, pl): 1.5, (8, bal): 1.2, (32, pl): 0.6, (32, bal): 0.3})
    far = _family(2048, 512, {(1, pl): 1.0, (8, pl): 0.5, (8, bal): 0.4})
    df = pd.concat([grouped, plain, far], ignore_index=True)
    rank = df["distribution"].map({pl: 0, bal: 1})
    out = _ungrouped(df.assign(_rank=rank))

    def lat(o: pd.DataFrame, h: int, ep: int, dist: str) -> float:
        r = o[(o["hidden_size"] == h) & (o["moe_ep_size"] == ep) & (o["distribution"] == dist)
              & (o["num_tokens"] == 4096.0)]
        assert len(r) == 1
        return float(r["latency"].iloc[0]) / 4096.0
    # EP 1 and the plain families untouched; the grouped family's EP e is its EP 1 time x the nearest plain
    # family's (by hidden x FFN) EP scaling, routing by routing, and never above what the table measured
    assert lat(out, 7168, 1, pl) == 8.0 and lat(out, 6144, 8, bal) == 1.2 and lat(out, 2048, 8, pl) == 0.5
    assert lat(out, 7168, 8, pl) == pytest.approx(8.0 * 1.5 / 6.0) and lat(out, 7168, 8, bal) == pytest.approx(1.6)
    assert lat(out, 7168, 32, pl) == pytest.approx(0.8) and lat(out, 7168, 32, bal) == pytest.approx(0.4)
    # a table where most families look grouped is left as measured (the table, not a gate)
    odd = pd.concat([grouped, _family(6144, 2048, {(1, pl): 6.0, (8, pl): 1.0, (8, bal): 2.0, (32, pl): 1.0,
                                                   (32, bal): 2.0})], ignore_index=True)
    assert _ungrouped(odd.assign(_rank=odd["distribution"].map({pl: 0, bal: 1}))).equals(
        odd.assign(_rank=odd["distribution"].map({pl: 0, bal: 1})))


def test_shipped_profiles_carry_deepseeks_grouped_gate_rows_and_keep_tensorrt_llms():
    # vLLM's and SGLang's collectors route DeepSeek-V3's block-FP8 layer through its grouped gate; TensorRT-LLM's
    # through a plain top-k. After the build the vLLM / SGLang EP 8 layer scales from EP 1 as the plain-routed
    # GLM-5-shaped family of the same table does, and its balanced curve is no slower than its skewed one
    from objectives import profiles
    tokens = 2.0 ** np.arange(10, 15)
    key = {ep: np.array([[7168, 2048, 8, 256, 1, ep]], dtype=float) for ep in (1, 8, 32)}
    ukey = {ep: np.array([[6144, 2048, 8, 256, 1, ep]], dtype=float) for ep in (1, 8, 32)}

    def ms(p, fam: str, k: np.ndarray) -> np.ndarray:
        i = p.shape_index(f"{fam}.fp8_block", k)[0]
        assert i > 0, (p.key, fam, k)
        return np.asarray(p.table(f"{fam}.fp8_block")(np.full_like(tokens, i), tokens), dtype=float)
    for gpu, engine in (("H200-SXM-141GB", "vllm"), ("H200-SXM-141GB", "sglang"), ("B200", "vllm")):
        p = profiles.load(gpu, engine)
        for ep in (8, 32):
            carried = ms(p, "moe", key[1]) * ms(p, "moe", ukey[ep]) / ms(p, "moe", ukey[1])
            assert np.allclose(ms(p, "moe", key[ep]), carried, rtol=1e-3)
            assert (ms(p, "moe_bal", key[ep]) <= ms(p, "moe", key[ep]) * (1 + 1e-6)).all()
    trt = profiles.load("B200", "trtllm")
    # and a balancer never leaves the layer slower than the skewed draw did, at any token count
    tokens = 2.0 ** np.arange(0, 15)
    for fmt in ("fp8_block", "nvfp4"):
        for ep in (8, 32, 64):
            k = np.array([[7168, 2048, 8, 256, 1, ep]], dtype=float)
            i, j = trt.shape_index(f"moe.{fmt}", k)[0], trt.shape_index(f"moe_bal.{fmt}", k)[0]
            assert i > 0 and j > 0
            skew = trt.table(f"moe.{fmt}")(np.full_like(tokens, i), tokens)
            bal = trt.table(f"moe_bal.{fmt}")(np.full_like(tokens, j), tokens)
            assert (bal <= skew * (1 + 1e-6)).all() and (ep == 8 or (bal < 0.8 * skew).any())


def test_full_tables_build_the_shipped_carried_rows():
    pytest.importorskip("aiconfigurator_core", reason="the profiles extra (aiconfigurator-core) is not installed")
    from objectives import profiles
    tokens = np.array([1.0, 64.0, 4096.0])
    # against the shipped copy (full=False): the default is built from the full tables where the package is installed
    full, small = full_profile("H200-SXM-141GB", "vllm"), profiles.load("H200-SXM-141GB", "vllm", full=False)
    for fam in ("moe", "moe_bal"):
        k = np.array([[7168, 2048, 8, 256, 1, 8]], dtype=float)
        a = full.table(f"{fam}.fp8_block")(np.full(3, full.shape_index(f"{fam}.fp8_block", k)[0]), tokens)
        b = small.table(f"{fam}.fp8_block")(np.full(3, small.shape_index(f"{fam}.fp8_block", k)[0]), tokens)
        assert np.allclose(a, b, rtol=1e-4)


def _tables(prof, shape: tuple) -> tuple[float, float]:
    """(skewed, balanced) fused-MoE ms of `shape` at 16,384 tokens in a shipped profile."""
    out = []
    for fam in ("moe", "moe_bal"):
        i = prof.shape_index(f"{fam}.nvfp4", np.array([shape], dtype=float))
        assert i[0] > 0, (prof.key, fam, shape)
        out.append(float(prof.table(f"{fam}.nvfp4")(float(i[0]), 16384.0)))
    return out[0], out[1]


def test_a_balanced_deployment_reads_the_balanced_tables_at_wide_ep_and_nothing_else_moves():
    from objectives import profiles
    kw = dict(tp=1, attn_dp=32, ep=32, batch_size=1, input_len=8192, output_len=256, engine="trtllm")
    r = inference.estimate(DSR1, "B200", eplb=[False, True], **kw)
    src = list(map(str, r["source"]))
    assert r["eplb"].tolist() == [False, True] and src[0] == src[1] != "roofline"
    skew, bal = _tables(profiles.load("B200", "trtllm"), (7168, 2048, 8, 256, 1, 32))
    # a prompt of 8k tokens on each of 32 ranks: 262k tokens at the experts, where the table's balanced layer is
    # the faster one; the prefill moves with it, in that direction
    ttft = r["ttft_ms"].to_numpy(float)
    assert (ttft[1] < ttft[0]) == (bal < skew)
    assert ttft[1] != ttft[0]
    # EP 1 (one GPU holds every expert), a dense model and the roofline (its experts are balanced already): no move
    for model, extra in ((DSR1, dict(tp=8, attn_dp=1, ep=1)), ("Llama-3.1-8B", dict(tp=1, attn_dp=1, ep=1))):
        a = inference.estimate(model, "B200", eplb=[False, True], batch_size=8, engine="vllm", **extra)
        assert a["ttft_ms"].iloc[0] == a["ttft_ms"].iloc[1] and a["tpot_ms"].iloc[0] == a["tpot_ms"].iloc[1]
    roof = inference.estimate(DSR1, "B200", eplb=[False, True], **{**kw, "engine": "roofline"})
    assert roof["ttft_ms"].iloc[0] == roof["ttft_ms"].iloc[1]


def test_an_ep_that_does_not_divide_the_experts_is_load_balanced_whatever_the_knob_says():
    r = inference.estimate(QWEN, "H200", tp=1, attn_dp=6, ep=6, eplb=False, engine="sglang")
    assert bool(r["eplb"].iloc[0])
    even = inference.estimate(QWEN, "H200", tp=1, attn_dp=8, ep=8, eplb=False, engine="sglang")
    assert not bool(even["eplb"].iloc[0])


def test_the_array_path_the_step_model_and_the_simulator_agree_on_the_knob():
    kw = dict(tp=1, attn_dp=8, ep=8, weight_dtype="fp8", engine="vllm")
    mt = inference.max_throughput(QWEN, "H200", input_len=2048, output_len=256, concurrency=64,
                                  eplb=[False, True], **kw)
    assert mt["eplb"].tolist() == [False, True]
    one = [inference.max_throughput(QWEN, "H200", input_len=2048, output_len=256, concurrency=64, eplb=b, **kw)
           for b in (False, True)]
    assert [float(x["tpot_ms"].iloc[0]) for x in one] == mt["tpot_ms"].tolist()
    steps = [inference.StepModel(QWEN, "H200", eplb=b, **kw).time_ms(8192, 8192 * 4096, 0, 0) for b in (False, True)]
    assert steps[0] != steps[1]
    w = serving.Workload(concurrency=16, input_len=2048, output_len=32, n_requests=32)
    sims = [serving.simulate(QWEN, "H200", workload=w, eplb=b, **kw)["ttft_ms_mean"] for b in (False, True)]
    assert np.isfinite(sims).all() and sims[0] != sims[1]


def _wideep(path, gains: dict[float, float], slots: int = 128) -> None:
    """A TensorRT-LLM wide-EP table (aiconfigurator-core's columns) at the `_rows` shape, EP 8: the skewed layer
    2 ms, the balancer's `gains[T]` x that; beside it rows the gain must not read (redundant slots at a tenth of
    the skewed layer, another power law)."""
    t = np.array(sorted(gains))
    base = dict(zip(MOE_SHAPE, (4096, 1536, 8, 128, 1, 8)), moe_dtype="fp8_block", num_slots=slots,
                kernel_source="wideep_compute_cutlass")
    pd.concat([pd.DataFrame({**base, "num_tokens": t, "distribution": "power_law_1.01", "latency": 2.0}),
               pd.DataFrame({**base, "num_tokens": t, "distribution": "power_law_1.01_eplb",
                             "latency": 2.0 * np.array([gains[x] for x in t])}),
               pd.DataFrame({**base, "num_tokens": t, "num_slots": slots + 32, "distribution": "power_law_1.01_eplb",
                             "latency": 0.2}),
               pd.DataFrame({**base, "num_tokens": t, "distribution": "power_law_1.2_eplb", "latency": 0.2})],
              ignore_index=True).to_parquet(path)


def test_tensorrt_llms_balanced_cells_are_the_skewed_ones_times_its_balancers_measured_gain(tmp_path):
    from objectives.profiles.build import balancer_gain, moe_tables_of
    t = np.array([1.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0])
    fused = pd.concat([pd.DataFrame({"moe_dtype": "fp8_block", "num_tokens": t, "distribution": dist, "latency": v,
                                     **dict(zip(MOE_SHAPE, (4096, 1536, 8, 128, 1, ep)))})
                       for ep in (8, 16) for dist, v in (("power_law_1.01", 1.0), ("balanced", 0.6))])
    rows = [fused.assign(_rank=fused["distribution"].map({"power_law_1.01": 0, "balanced": 1}))]
    _wideep(tmp_path / "w.parquet", {1.0: 0.2, 16.0: 0.2, 64.0: 0.9, 256.0: 0.7, 1024.0: 0.3, 4096.0: 0.8,
                                     16384.0: 1.3})
    gain = balancer_gain(tmp_path / "w.parquet")
    # only token counts whose picks outnumber the experts (16 x 8 = 128 do not), as many slots as experts, power
    # law 1.01; each ratio the running median of three neighbours
    assert gain["num_tokens"].tolist() == [64.0, 256.0, 1024.0, 4096.0, 16384.0]
    assert np.allclose(gain["gain"], [0.8, 0.7, 0.7, 0.8, 1.05])
    plain, bal = moe_tables_of(rows, balanced=True), moe_tables_of(rows, balanced=True, gain=gain)
    (tab, keys), (tab0, keys0) = bal["fp8_block"], plain["fp8_block"]
    assert np.array_equal(keys, keys0)
    i = {int(k[-1]): n + 1.0 for n, k in enumerate(keys)}
    got = tab(np.full_like(t, i[8]), t)
    # the skewed 1 ms x the gain, never below the even split (0.6) nor above the skew; no gain: the even split
    assert np.allclose(got, [0.6, 0.6, 0.8, 0.7, 0.7, 0.8, 1.0], rtol=1e-6)
    # EP 16, which the wide-EP table did not time, and the default tables are as without it
    assert np.allclose(tab(np.full_like(t, i[16]), t), tab0(np.full_like(t, i[16]), t), rtol=1e-12)
    assert np.allclose(tab0(np.full_like(t, i[8]), t), 0.6)
    # a table without the balancer's rows (RTX PRO 6000's) gains nothing
    _wideep(tmp_path / "v.parquet", {64.0: 0.5, 256.0: 0.5}, slots=96)
    assert balancer_gain(tmp_path / "v.parquet").empty


def test_shipped_tensorrt_llm_profiles_credit_the_balancer_what_it_achieved_not_an_even_split():
    # EP 256 of 256 experts: one expert a rank, nothing for the balancer to move (the even split was 0.3-0.8 x)
    from objectives import profiles
    tokens = 2.0 ** np.arange(6, 15)
    for gpu, fmt in (("H200-SXM-141GB", "fp8_block"), ("B200", "nvfp4"), ("GB200", "nvfp4")):
        p = profiles.load(gpu, "trtllm", full=False)
        k = np.array([[7168, 2048, 8, 256, 1, 256]], dtype=float)
        i, j = p.shape_index(f"moe.{fmt}", k)[0], p.shape_index(f"moe_bal.{fmt}", k)[0]
        assert i > 0 and j > 0
        skew = p.table(f"moe.{fmt}")(np.full_like(tokens, i), tokens)
        bal = p.table(f"moe_bal.{fmt}")(np.full_like(tokens, j), tokens)
        assert (bal >= 0.9 * skew).all() and (bal <= skew * (1 + 1e-6)).all(), (gpu, bal / skew)


def test_a_tensorrt_llm_balanced_deployment_is_slower_with_its_balancers_gain_than_with_an_even_split(monkeypatch):
    pytest.importorskip("aiconfigurator_core", reason="the profiles extra (aiconfigurator-core) is not installed")
    import functools

    from objectives.profiles import build
    from objectives.profiles import profile as profile_mod
    kw = dict(tp=1, attn_dp=32, ep=32, input_len=8192, output_len=1024, concurrency=64 * 32, engine="trtllm",
              eplb=[False, True])
    real = inference.max_throughput(DSR1, "GB200", **kw)
    # the even split's profile is built afresh in a cache of its own (`profiles.load`'s cache of resolved profiles,
    # `profile._load`: what the cost model calls, `measured.build_curves`), so the process-wide cache never holds
    # it and is not cleared (clearing it made every later test of the session build its profiles again)
    monkeypatch.setattr(build, "balancer_gain", lambda path: pd.DataFrame())   # today's even split
    # the on-disk cache of built groups (`profiles.cache`) is keyed on the builder's code, not on a patched function
    monkeypatch.setenv("DSE_CACHE_DIR", "off")
    monkeypatch.setattr(profile_mod, "_load", functools.lru_cache(maxsize=None)(profile_mod._load.__wrapped__))
    even = inference.max_throughput(DSR1, "GB200", **kw)
    # (the TPOT also holds the 32 ranks' lockstep waits for each other's prompt chunks, `estimate.rank_wait_s`,
    # which the balancer hardly shortens: a smaller share of it is the experts')
    for col, more in (("ttft_ms", 1.02), ("tpot_ms", 1.005)):
        a, b = real[col].to_numpy(float), even[col].to_numpy(float)
        assert a[0] == b[0]                       # no balancer: the skewed tables, untouched
        assert a[1] > b[1] * more and a[1] < a[0]  # the balancer gains, less than an even split would
