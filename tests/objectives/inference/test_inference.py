"""Tests of the analytical inference model: shapes, rules, bad input, invariants (hypothesis) of its closed form
(engine="roofline"; the default engine's measured profiles: test_measured.py and tests/objectives/profiles)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import catalog, inference
from objectives.inference.efficiency import default_efficiency

EFF = default_efficiency()  # tests do not depend on the fitted file
COLS = ["ttft_ms", "tpot_ms", "e2e_ms", "throughput_tok_s", "throughput_tok_s_per_gpu", "mem_per_gpu_gib", "fits",
        "usd_per_mtok", "joules_per_tok", "reason", "weights_gib", "kv_cache_gib", "n_gpus"]


def est(**kw):
    kw.setdefault("efficiency", EFF)
    kw.setdefault("engine", "roofline")
    return inference.estimate(**kw)


def test_columns_and_broadcasting():
    df = est(model="Llama-3.1-70B", gpu="H100", tp=np.array([2, 4, 8])[:, None], weight_dtype="fp8",
             batch_size=np.array([1, 16, 64])[None, :], input_len=1024, output_len=128)
    assert len(df) == 9
    for c in COLS + ["model", "gpu", "tp", "batch_size", "weight_dtype", "act_dtype", "kv_dtype"]:
        assert c in df.columns, c
    assert (df["act_dtype"].astype(str) == "fp8").all() and (df["kv_dtype"].astype(str) == "fp8").all()
    assert df["fits"].all() and (df["reason"] == "").all()
    assert np.allclose(df["e2e_ms"], df["ttft_ms"] + 127 * df["tpot_ms"])
    assert np.allclose(df["throughput_tok_s"], df["batch_size"] * 128 / df["e2e_ms"] * 1e3)
    assert np.allclose(df["throughput_tok_s_per_gpu"] * df["n_gpus"], df["throughput_tok_s"])


def test_arrays_of_names_and_records():
    g = catalog.gpu("H100-SXM-80GB")
    df = est(model=["Llama-3.1-8B", "Llama-3.1-70B"], gpu=[g, "A100-SXM-80GB"], tp=[1, 4])
    assert list(df["model"].astype(str)) == ["Llama-3.1-8B", "Llama-3.1-70B"]
    assert list(df["gpu"].astype(str)) == ["H100-SXM-80GB", "A100-SXM-80GB"]
    one = est(model="Llama-3.1-70B", gpu="A100-SXM-80GB", tp=4)
    assert np.isclose(one["tpot_ms"].iloc[0], df["tpot_ms"].iloc[1])


def test_default_precision_rules():
    df = est(model="Llama-3.1-8B", gpu=["A100-SXM-80GB", "H100", "A100-SXM-80GB"], weight_dtype=["fp8", "fp8", "int4"])
    assert list(df["act_dtype"].astype(str)) == ["bf16", "fp8", "bf16"]
    assert list(df["kv_dtype"].astype(str)) == ["bf16", "fp8", "bf16"]
    assert df["fits"].all()


def test_unsupported_precision_gives_reason_not_exception():
    df = est(model="Llama-3.1-8B", gpu=["A100-SXM-80GB", "H100"], weight_dtype="fp8", act_dtype="fp8")
    assert list(df["fits"]) == [False, True]
    assert "fp8" in df["reason"].iloc[0]
    fp4 = est(model="Llama-3.1-8B", gpu="H100", weight_dtype="fp4", act_dtype="fp4")
    assert not fp4["fits"].iloc[0] and "fp4" in fp4["reason"].iloc[0]


def test_tp_head_rule():
    # Llama-3.1-8B: 32 heads, 8 KV heads. tp=16 > kv heads: KV heads replicated (allowed); tp=3: not a divisor.
    df = est(model="Llama-3.1-8B", gpu="H100", tp=[3, 16])
    assert not df["fits"].iloc[0] and "heads" in df["reason"].iloc[0]
    assert df["reason"].iloc[1] == ""


def test_out_of_memory_reason():
    df = est(model="Llama-3.1-70B", gpu="H100", tp=1, weight_dtype="bf16")
    assert not df["fits"].iloc[0] and "fit" in df["reason"].iloc[0]
    assert df["mem_per_gpu_gib"].iloc[0] > catalog.gpu("H100").mem_gib


@pytest.mark.parametrize("kw", [dict(batch_size=0), dict(input_len=-5), dict(output_len=0), dict(tp=0),
                                dict(batch_size=[1, 0])])
def test_non_positive_sizes_raise(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        est(model="Llama-3.1-8B", gpu="H100", **kw)


def test_unknown_names_and_dtypes():
    with pytest.raises(catalog.CatalogError, match="H100"):
        est(model="Llama-3.1-8B", gpu="H1000-SXM")
    with pytest.raises(catalog.CatalogError):
        est(model="Llama-9-8B", gpu="H100")
    with pytest.raises(ValueError, match="known"):
        est(model="Llama-3.1-8B", gpu="H100", weight_dtype="fp7")
    # a dtype column (numpy or pandas) names the bad value plainly, with the valid ones, never numpy's repr
    valid = "known: fp32, tf32, bf16, fp16, fp8, int8, int4, fp4"
    for col in (np.array(["fp3"], dtype=object), pd.Series(["fp3"])):
        with pytest.raises(ValueError) as e:
            est(model="Llama-3.1-8B", gpu="H100", weight_dtype=col)
        assert str(e.value) == f"unknown weight_dtype 'fp3'; {valid}"
    with pytest.raises(ValueError) as e:
        est(model="Llama-3.1-8B", gpu=["H100", "H100"], kv_dtype=np.array(["fp8", "fp3"], dtype=object))
    assert str(e.value) == f"unknown kv_dtype 'fp3' in ['fp8', 'fp3']; {valid}"
    with pytest.raises(TypeError, match=r"got 2.0 in \[2.0, 'fp8'\]"):
        est(model="Llama-3.1-8B", gpu=["H100", "H100"], act_dtype=np.array([np.float64(2.0), "fp8"], dtype=object))


def test_max_throughput_picks_kv_bound_batch():
    mt = inference.max_throughput("Llama-3.1-70B", "H100", tp=[2, 4, 8], weight_dtype="fp8", input_len=2048,
                                  output_len=2048, max_batch_size=4096, efficiency=EFF)
    assert mt["fits"].all()
    assert (np.diff(mt["batch_size"]) > 0).all()  # more GPUs -> more KV room
    assert (mt["mem_per_gpu_gib"] <= catalog.gpu("H100").mem_gib).all()
    small = inference.max_throughput("Llama-3.1-8B", "H100", weight_dtype="fp8", input_len=128, output_len=128,
                                     max_batch_size=64, efficiency=EFF)
    assert small["batch_size"].iloc[0] == 64


def test_moe_and_mla_models_run():
    for name, tp in (("Mixtral-8x7B", 2), ("DeepSeek-V3", 8)):
        df = est(model=name, gpu="H200-SXM-141GB", tp=tp, weight_dtype="fp8", batch_size=[1, 256])
        assert (df["tpot_ms"] > 0).all()
        assert df["tpot_ms"].iloc[1] > df["tpot_ms"].iloc[0]  # more experts touched, more KV


@pytest.mark.parametrize("weight_dtype", ["fp4", "int4"])
def test_four_bit_moe_checkpoints_hold_their_attention_projections_in_16_bits(monkeypatch, weight_dtype):
    # Kimi-K2.5's NVFP4 and int4 releases leave every layer's self_attn unquantized (resolve.ATTN_16BIT_WEIGHTS):
    # its MLA projections (q_a and kv_a replicated per TP rank, the others split) weigh 2 bytes a parameter
    from objectives.catalog.types import DTYPE_BYTES
    from objectives.inference import resolve
    kw = dict(model="moonshotai/Kimi-K2.5", gpu="B200", tp=8, weight_dtype=weight_dtype, batch_size=8)
    held = est(**kw).iloc[0]
    monkeypatch.setattr(resolve, "_ATTN16_CODES", np.array([], dtype=int))
    all_4bit = est(**kw).iloc[0]
    h, nh, tp = 7168.0, 64.0, 8.0
    attn = 61 * (h * 1536 + 1536 * nh * 192 / tp + h * 576 + 512 * nh * 256 / tp + nh * 128 * h / tp)
    extra_gib = attn * (2.0 - DTYPE_BYTES[weight_dtype]) / 2**30
    assert held["weights_gib"] - all_4bit["weights_gib"] == pytest.approx(extra_gib, rel=1e-6)
    # the roofline streams those bytes every decode step
    assert held["tpot_ms"] > all_4bit["tpot_ms"]


def test_dense_four_bit_models_hold_their_attention_in_the_weight_format(monkeypatch):
    from objectives.inference import resolve
    kw = dict(model="Llama-3.1-70B", gpu="B200", tp=4, weight_dtype="fp4", batch_size=8)
    held = est(**kw).iloc[0]
    monkeypatch.setattr(resolve, "_ATTN16_CODES", np.array([], dtype=int))
    assert est(**kw).iloc[0]["weights_gib"] == held["weights_gib"]


def test_step_model_matches_estimate():
    sm = inference.StepModel("Llama-3.1-70B", "H100", tp=4, weight_dtype="fp8", efficiency=EFF, engine="roofline")
    B, isl, osl = 16, 1000, 200
    df = est(model="Llama-3.1-70B", gpu="H100", tp=4, weight_dtype="fp8", batch_size=B, input_len=isl,
             output_len=osl)
    pf = sm.time_ms(B * isl, B * isl * (isl + 1) / 2, 0, 0, n_prefill_seqs=B)
    dec = sm.time_ms(0, 0, B, B * (isl + osl / 2))
    assert np.isclose(pf, df["ttft_ms"].iloc[0], rtol=1e-9)
    assert np.isclose(dec, df["tpot_ms"].iloc[0], rtol=1e-9)
    arr = sm.time_ms(np.array([0, 512]), np.array([0, 512 * 256.5]), np.array([8, 8]), np.array([8000, 8000]))
    assert arr.shape == (2,) and arr[1] > arr[0]
    assert isinstance(sm.time_ms(0, 0, 8, 8000), float)
    assert sm.kv_capacity_tokens > 100_000 and sm.kv_bytes_per_token > 0 and sm.n_gpus == 4
    assert sm.power_w(1.0) == pytest.approx(4 * catalog.gpu("H100").tdp_w)


def test_step_model_rejects_invalid():
    with pytest.raises(ValueError, match="fp8"):
        inference.StepModel("Llama-3.1-8B", "A100-SXM-80GB", weight_dtype="fp8", act_dtype="fp8")
    with pytest.raises(ValueError, match="fit"):
        inference.StepModel("Llama-3.1-70B", "A100-SXM-80GB", tp=1, weight_dtype="bf16")


def test_energy_and_cost_consistent():
    df = est(model="Llama-3.1-8B", gpu="H100", batch_size=[1, 64])
    price = catalog.gpu("H100").price_usd_per_hour
    assert np.allclose(df["usd_per_mtok"], price / 3600 / df["throughput_tok_s"] * 1e6)
    assert (df["joules_per_tok"].iloc[1] < df["joules_per_tok"].iloc[0])
    cheap = est(model="Llama-3.1-8B", gpu="H100", prices={"H100-SXM-80GB": price / 2})
    assert np.isclose(cheap["usd_per_mtok"].iloc[0], df["usd_per_mtok"].iloc[0] / 2)


# ---------------------------------------------------------------- invariants (hypothesis)
models = st.sampled_from(["Llama-3.1-8B", "Llama-3.1-70B", "Llama-2-7B"])
gpus = st.sampled_from(["H100-SXM-80GB", "A100-SXM-80GB", "H200-SXM-141GB", "L40S"])
sizes = st.integers(1, 512)
lens = st.integers(1, 8192)


@settings(max_examples=25, deadline=None)
@given(models, gpus, sizes, lens, lens)
def test_more_tp_never_raises_memory(m, g, b, i, o):
    df = est(model=m, gpu=g, tp=[1, 2, 4, 8], batch_size=b, input_len=i, output_len=o)
    assert (np.diff(df["mem_per_gpu_gib"]) <= 1e-9).all()


@settings(max_examples=25, deadline=None)
@given(models, st.sampled_from(["H100-SXM-80GB", "H200-SXM-141GB", "L40S"]), sizes, lens, lens)
def test_fp8_never_slower_than_bf16(m, g, b, i, o):
    df = est(model=m, gpu=g, tp=8, weight_dtype=["bf16", "fp8"], batch_size=b, input_len=i, output_len=o)
    assert df["ttft_ms"].iloc[1] <= df["ttft_ms"].iloc[0] * (1 + 1e-9)
    assert df["tpot_ms"].iloc[1] <= df["tpot_ms"].iloc[0] * (1 + 1e-9)


@settings(max_examples=25, deadline=None)
@given(models, gpus, lens, lens)
def test_throughput_grows_with_batch_until_oom(m, g, i, o):
    b = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256])
    df = est(model=m, gpu=g, tp=8, batch_size=b, input_len=i, output_len=o)
    fit = df[df["fits"]]
    assert (np.diff(fit["throughput_tok_s"]) >= -1e-9 * fit["throughput_tok_s"].iloc[:-1].to_numpy()).all()


@settings(max_examples=25, deadline=None)
@given(models, gpus, st.integers(1, 64), st.integers(1, 4), lens, lens)
def test_fits_false_whenever_memory_exceeds(m, g, b, tpe, i, o):
    df = est(model=m, gpu=g, tp=2 ** tpe // 2 or 1, batch_size=b, input_len=i, output_len=o)
    cap = catalog.gpu(g).mem_gib
    assert not (df["fits"] & (df["mem_per_gpu_gib"] > cap)).any()


@settings(max_examples=25, deadline=None)
@given(models, gpus, sizes, st.integers(1, 4000))
def test_ttft_grows_with_input(m, g, b, i):
    df = est(model=m, gpu=g, tp=8, batch_size=b, input_len=[i, i + 1, 2 * i + 7], output_len=16)
    assert (np.diff(df["ttft_ms"]) > 0).all()


@settings(max_examples=25, deadline=None)
@given(models, sizes, lens, lens, st.sampled_from([1, 2, 4, 8]))
def test_larger_gpu_same_family_never_slower(m, b, i, o, tp):
    for small, big in (("H100-SXM-80GB", "H200-SXM-141GB"), ("A100-SXM-40GB", "A100-SXM-80GB")):
        df = est(model=m, gpu=[small, big], tp=tp, batch_size=b, input_len=i, output_len=o)
        assert df["ttft_ms"].iloc[1] <= df["ttft_ms"].iloc[0] * (1 + 1e-9)
        assert df["tpot_ms"].iloc[1] <= df["tpot_ms"].iloc[0] * (1 + 1e-9)
        assert df["throughput_tok_s"].iloc[1] >= df["throughput_tok_s"].iloc[0] * (1 - 1e-9)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 256), st.integers(1, 4096), st.integers(2, 1024))
def test_step_model_agrees_with_estimate_everywhere(b, i, o):
    sm = inference.StepModel("Llama-3.1-8B", "H100", tp=1, weight_dtype="fp8", efficiency=EFF, engine="roofline")
    df = est(model="Llama-3.1-8B", gpu="H100", weight_dtype="fp8", batch_size=b, input_len=i, output_len=o)
    assert np.isclose(sm.time_ms(b * i, b * i * (i + 1) / 2, 0, 0, n_prefill_seqs=b), df["ttft_ms"].iloc[0])
    assert np.isclose(sm.time_ms(0, 0, b, b * (i + o / 2)), df["tpot_ms"].iloc[0])


def test_large_sweeps_match_single_configurations():
    # above 4096 configurations the coefficients are computed per distinct configuration and gathered back
    rng = np.random.default_rng(1)
    n = 6000
    models = np.array(["Llama-3.1-8B", "Llama-3.1-70B"])[rng.integers(0, 2, n)]
    tp = np.array([2, 4, 8])[rng.integers(0, 3, n)]
    wd = np.array(["bf16", "fp8"])[rng.integers(0, 2, n)]
    b = rng.integers(1, 300, n)
    big = est(model=models, gpu="H100", tp=tp, weight_dtype=wd, batch_size=b, input_len=777, output_len=99)
    for i in (0, 17, 4321):
        one = est(model=models[i], gpu="H100", tp=int(tp[i]), weight_dtype=wd[i], batch_size=int(b[i]),
                  input_len=777, output_len=99)
        for col in ("ttft_ms", "tpot_ms", "mem_per_gpu_gib", "joules_per_tok", "usd_per_mtok"):
            assert np.isclose(big[col].iloc[i], one[col].iloc[0], rtol=1e-12), col
        assert big["reason"].iloc[i] == one["reason"].iloc[0]


def test_blocked_sweeps_match_single_configurations():
    # > BLOCK_ROWS rows: evaluated block by block from the distinct configurations; the same numbers as one by one,
    # also when the configuration arrays broadcast against per-row arrays of another shape
    from objectives.inference.estimate import BLOCK_ROWS
    rng = np.random.default_rng(2)
    n = BLOCK_ROWS + 5000
    tp = np.array([1, 2, 4, 8])[:, None]
    isl = rng.integers(1, 9000, n // 4 + 1)[None, :]
    osl = rng.integers(1, 3000, n // 4 + 1)[None, :]
    for fn, kw in ((inference.max_throughput, {}), (inference.estimate, dict(batch_size=37))):
        big = fn(model="Llama-3.1-70B", gpu="H100", tp=tp, weight_dtype="fp8",
                 input_len=isl, output_len=osl, efficiency=EFF, **kw)
        assert len(big) == 4 * isl.shape[1]
        for i in (0, 5, isl.shape[1] + 3, 3 * isl.shape[1] + isl.shape[1] - 1):
            r, c = divmod(i, isl.shape[1])
            one = fn(model="Llama-3.1-70B", gpu="H100", tp=int(tp[r, 0]), weight_dtype="fp8",
                     input_len=int(isl[0, c]), output_len=int(osl[0, c]), efficiency=EFF, **kw)
            for col in ("ttft_ms", "tpot_ms", "throughput_tok_s", "mem_per_gpu_gib", "batch_size", "joules_per_tok"):
                assert np.isclose(big[col].iloc[i], one[col].iloc[0], rtol=1e-12), (fn.__name__, col)
            assert big["tp"].iloc[i] == tp[r, 0] and big["fits"].iloc[i] == one["fits"].iloc[0]


def test_empty_arrays_give_zero_rows_and_shape_mismatch_names_arguments():
    df = est(model="Llama-3.1-8B", gpu="H100", batch_size=[])
    assert len(df) == 0 and set(COLS) <= set(df.columns)
    assert len(est(model="Llama-3.1-8B", gpu="H100", weight_dtype=[])) == 0
    assert len(inference.max_throughput("Llama-3.1-8B", "H100", tp=np.array([], dtype=int), efficiency=EFF)) == 0
    with pytest.raises(ValueError, match=r"tp \(3,\).*batch_size \(2,\)|broadcast"):
        est(model="Llama-3.1-8B", gpu="H100", tp=[1, 2, 4], batch_size=[1, 2])


@pytest.mark.parametrize("key,value,err", [
    ("weight_dtype", 39274, TypeError), ("weight_dtype", [1, "fp8"], TypeError), ("kv_dtype", True, TypeError),
    ("tp", 1.99e238, ValueError), ("tp", 10 ** 400, ValueError), ("batch_size", 2 ** 40, ValueError),
    ("input_len", float("nan"), ValueError), ("output_len", True, TypeError), ("batch_size", None, TypeError),
    ("batch_size", np.array(["4"]), TypeError), ("tp", np.array([1, None], dtype=object), TypeError),
    ("model", [["Llama-3.1-8B"], ["Llama-3.1-8B", "x"]], ValueError), ("dp", "2", TypeError),
    ("engine_profile", "fast", ValueError), ("engine_profile", 3, TypeError),
])
def test_bad_arguments_name_the_argument(key, value, err):
    import warnings
    kw = dict(model="Llama-3.1-8B", gpu="H100", batch_size=4, input_len=64, output_len=8)
    kw[key] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning may leak either
        with pytest.raises(err) as exc:
            est(**kw)
    assert key in str(exc.value) or repr(value) in str(exc.value), str(exc.value)


@pytest.mark.parametrize("key", ["weight_dtype", "act_dtype", "kv_dtype", "moe_act_dtype"])
@pytest.mark.parametrize("missing", [float("nan"), np.float64("nan"), pd.NA])
def test_a_missing_value_means_the_default_rule_as_a_scalar_as_in_an_array(key, missing):
    """pandas 3 keeps a None of a string column as NaN (``pd.DataFrame({"kv": ["fp8", None]}).kv.iloc[1]`` is nan): a
    row passed one value at a time must give what the column gives, where the argument takes None."""
    kw = dict(model="gpt-oss-120b", gpu="B200", batch_size=4, input_len=64, output_len=8)
    col = est(**kw, **{key: [None, missing]})
    one = est(**kw, **{key: missing})
    default = est(**kw)
    for r in (col.iloc[[0]], col.iloc[[1]], one):
        pd.testing.assert_frame_equal(r.reset_index(drop=True), default, check_exact=True)


def test_huge_but_valid_sizes_give_finite_results_or_fits_false():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = est(model="Llama-3.1-8B", gpu="H100", tp=[1, 2 ** 20], batch_size=2 ** 31 - 1, input_len=2 ** 31 - 1,
                 output_len=2 ** 31 - 1, dp=2 ** 20)
    assert not df["fits"].any() and (df["reason"].str.len() > 0).all()
    assert np.isfinite(df[["ttft_ms", "tpot_ms", "joules_per_tok", "usd_per_mtok"]].to_numpy(float)).all()


@pytest.mark.parametrize("isl,osl", [(128, 128), (1024, 64), (3000, 200)])
def test_max_throughput_ttft_matches_simulated_steady_state(isl, osl):
    """TTFT of the saturated steady state: the prefill-heavy iteration(s) carrying the prompt beside the running
    decodes (not the mean iteration); the discrete-event simulator is the reference (closed loop, clients = slots,
    after the start-up transient)."""
    from objectives import serving
    mbs = 64
    mt = inference.max_throughput("Llama-3.1-8B", "H100", weight_dtype="fp8", input_len=isl, output_len=osl,
                                  max_batch_size=mbs, max_num_tokens=8192, engine="roofline").iloc[0]
    assert mt["batch_size"] == mbs
    assert mt["ttft_ms"] > mt["tpot_ms"] * (osl / max(osl, mbs * (isl + osl) / 8192))  # > the mean iteration
    # exactly equal lengths (output_spread=0): the lockstep clients whose steady state the closed form prices
    wl = serving.Workload(concurrency=mbs, input_len=isl, output_len=osl, n_requests=mbs * 8, output_spread=0)
    r = serving.simulate_requests("Llama-3.1-8B", "H100", weight_dtype="fp8", workload=wl, engine="roofline",
                                  scheduler=serving.Scheduler(max_batch_size=mbs, max_num_tokens=8192))
    steady = r.iloc[3 * mbs:-mbs]
    assert mt["ttft_ms"] == pytest.approx(steady["ttft_ms"].mean(), rel=0.20)
    assert mt["tpot_ms"] == pytest.approx(steady["tpot_ms"].mean(), rel=0.15)


def test_max_throughput_concurrency_adds_the_wait_for_a_slot():
    kw = dict(model="Llama-3.1-8B", gpu="H100", weight_dtype="fp8", input_len=512, output_len=256, max_batch_size=64,
              efficiency=EFF)
    base = inference.max_throughput(**kw).iloc[0]
    same = inference.max_throughput(**kw, concurrency=64).iloc[0]
    more = inference.max_throughput(**kw, concurrency=[128, 256])
    fewer = inference.max_throughput(**kw, concurrency=16).iloc[0]
    assert same["ttft_ms"] == pytest.approx(base["ttft_ms"]) and same["batch_size"] == 64
    # Little's law: (C - N) / N residencies of waiting (less the host time, spent outside the queue) on top of the
    # prefill; a queued prompt is admitted as a slot frees, into its own iteration, not after a round of prompts
    # (`estimate.released_prompt_work`): the residency's GPU TTFT falls below the 64 clients' (host time in), and
    # the residency is the GPU's cycle either way (no host time in these factors), so its window holds more of the
    # others' prompts (`estimate.cycle_split`)
    res = more["e2e_ms"].to_numpy(float) / np.array([2.0, 4.0])
    assert res[0] == pytest.approx(res[1], rel=1e-12) and res[0] == pytest.approx(same["e2e_ms"], rel=1e-9)
    assert np.all(more["tpot_ms"].to_numpy(float) > same["tpot_ms"])
    gpu = res - 255 * more["tpot_ms"].to_numpy(float)
    assert gpu[0] == pytest.approx(gpu[1], rel=1e-9) and 0 < gpu[0] < base["ttft_ms"]
    np.testing.assert_allclose(more["ttft_ms"], gpu + np.array([1.0, 3.0]) * res, rtol=1e-9)
    assert fewer["batch_size"] == 16 and fewer["throughput_tok_s"] < base["throughput_tok_s"]
    two = inference.max_throughput(**kw, dp=2, concurrency=128).iloc[0]  # clients spread over the replicas
    assert two["batch_size"] == 64 and two["ttft_ms"] == pytest.approx(base["ttft_ms"])


def test_engine_profile_slows_decode_not_prefill():
    eff = default_efficiency()
    df = est(model="Llama-3.3-70B", gpu="H100", tp=4, batch_size=1, input_len=2048, output_len=2048,
             engine_profile=["standard", "baseline"], efficiency=eff)
    assert list(df["engine_profile"].astype(str)) == ["standard", "baseline"]
    assert df["tpot_ms"].iloc[1] > 1.3 * df["tpot_ms"].iloc[0]           # weight streaming at batch 1
    assert df["ttft_ms"].iloc[1] < 1.2 * df["ttft_ms"].iloc[0]           # compute-bound prefill barely moves
    sm = inference.StepModel("Llama-3.3-70B", "H100", tp=4, engine_profile="baseline", efficiency=eff,
                             engine="roofline")
    assert sm.time_ms(0, 0, 1, 3072) == pytest.approx(df["tpot_ms"].iloc[1])
    tuned = est(model="Llama-3.3-70B", gpu="H100", tp=4, batch_size=1, input_len=2048, output_len=2048,
                engine_profile="tuned", efficiency=eff)
    assert tuned["tpot_ms"].iloc[0] < df["tpot_ms"].iloc[0]             # less fixed time per step
    with pytest.raises(ValueError, match="engine_profile"):
        est(model="Llama-3.1-8B", gpu="H100", engine_profile="fast")


def test_blackwell_ultra_uses_blackwell_factors_explicitly():
    from objectives.inference.efficiency import FAMILIES, FAMILY_FALLBACK, load_efficiency
    assert FAMILY_FALLBACK["blackwell-ultra"] == "blackwell" and "blackwell-ultra" in FAMILIES
    eff = load_efficiency()
    for name in ("mem_eff", "attn_eff", "gemm_m_half"):
        assert eff[name]["blackwell-ultra"] == eff[name]["blackwell"], name
    assert eff["gemm_eff"]["blackwell-ultra"] == eff["gemm_eff"]["blackwell"]
    # same factors, B300's own datasheet (more memory, same-or-higher bandwidth): never slower than B200
    df = inference.estimate("Llama-3.1-70B", ["B200", "B300"], tp=4, weight_dtype="fp8", batch_size=64)
    assert df["tpot_ms"].iloc[1] <= df["tpot_ms"].iloc[0] * (1 + 1e-9)


def test_pipeline_iteration_that_finishes_a_prompt_lasts_its_pass_through_every_stage():
    from objectives.inference import StepModel
    one = StepModel("Llama-3.1-70B", "B200", tp=1, pp=1, weight_dtype="fp4")
    four = StepModel("Llama-3.1-70B", "B200", tp=1, pp=4, weight_dtype="fp4")
    alone = one.time_ms(2048, 2048 * 2049 / 2, 0, 0)
    # beside 16 decodes the pipeline rotates 4 micro-batches, but the prompt sits in one of them: its first token
    # cannot come sooner than the prompt's own pass (the loaded TTFT was half the idle prefill)
    loaded = four.time_ms(2048, 2048 * 2049 / 2, 16, 16 * 2000)
    assert loaded >= 0.95 * alone
    arr = four.time_ms(np.array([2048.0, 0.0]), np.array([2048 * 2049 / 2, 0.0]), np.array([16.0, 16.0]),
                       np.array([32000.0, 32000.0]))
    assert arr[0] == pytest.approx(loaded, rel=1e-6) and arr[1] < 0.5 * loaded


def test_max_throughput_times_are_max_throughputs_columns():
    from objectives.inference.estimate import max_throughput_times
    kw = dict(model="Llama-3.1-70B", gpu=np.array(["H100", "B200", "MI300X"], dtype=object)[:, None],
              tp=np.array([2, 4, 8])[:, None], input_len=2048, output_len=256, engine="vllm",
              max_batch_size=np.array([[1.0, 8.0, 64.0, 300.0]] * 3), concurrency=64)
    full = inference.max_throughput(**kw)
    times = max_throughput_times(**kw)
    assert set(times) == {"ttft_ms", "tpot_ms", "cycle_ms", "window_iters"} and len(times["tpot_ms"]) == len(full) == 12
    np.testing.assert_array_equal(times["ttft_ms"], full["ttft_ms"].to_numpy())
    np.testing.assert_array_equal(times["tpot_ms"], full["tpot_ms"].to_numpy())
    # where no client waits for a slot (64 slots) the cycle is the decode window of osl - 1 TPOTs and the TTFT's GPU
    # part before it (`estimate.cycle_split`; the TTFT also holds the host time); elsewhere (slots the KV cache
    # bounds) the requeue waits of the churn join the TPOT
    free = full["batch_size"].to_numpy() == 64
    window = 255.0 * times["tpot_ms"]
    assert free.sum() == 4 and np.all(times["cycle_ms"][free] > window[free])
    assert np.all(times["cycle_ms"][free] < window[free] + times["ttft_ms"][free])
    assert np.all(times["window_iters"] >= 1.0)
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        max_throughput_times(**kw, gpu_memory_utilization=1.5)


def test_an_engine_on_a_gpu_vendor_it_does_not_run_on_does_not_fit():
    r = inference.estimate(model="Llama-3.1-8B", gpu=["MI300X", "H100", "MI300X", "Gaudi3"],
                           engine=["trtllm", "trtllm", "vllm", "TensorRT-LLM"], batch_size=1, input_len=128,
                           output_len=16)
    assert list(r["fits"]) == [False, True, True, False]
    assert "does not run on this GPU's vendor" in str(r["reason"].iloc[0]) and r["reason"].iloc[1] == ""
    m = inference.max_throughput(model="Llama-3.1-8B", gpu="MI300X", engine="trtllm", input_len=128, output_len=16)
    assert not m["fits"].iloc[0]
