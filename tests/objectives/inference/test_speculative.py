"""Speculative decoding as a what-if knob (objectives.inference.speculative): the argument's rules, the pricing's
invariants in `estimate`, `max_throughput`, `StepModel` and the simulator, and the engine switches it makes."""
import importlib

import numpy as np
import pytest

from objectives import catalog, inference, serving
from objectives.inference import speculative
from objectives.inference.speculative import Speculative
from objectives.serving.scheduler import Scheduler

K = 3
ARGS = dict(input_len=1000, output_len=400)


def _tpot(model: str, gpu: str, spec, batch: int = 8, engine: str = "roofline", tp: int = 1) -> float:
    return float(inference.estimate(model, gpu, tp, batch_size=batch, engine=engine, speculative=spec,
                                    **ARGS).tpot_ms[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(acceptance=(1.2,)), "in \\[0, 1\\]"),
    (dict(acceptance=(-0.1,)), "in \\[0, 1\\]"),
    (dict(draft_tokens=0), "integer >= 1"),
    (dict(draft_tokens=2.0), "integer >= 1"),
    (dict(draft_tokens=3, acceptance=(0.5, 0.5)), "one rate or 3"),
    (dict(method="draft"), "one of"),
    (dict(draft_tokens=2, acceptance={0.5, 0.6}), "not set"),
    (dict(draft_tokens=2, acceptance=np.array([[0.5, 0.6]])), "not ndarray"),
])
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Speculative(**kwargs)


def test_expected_tokens_is_the_chain_sum_and_one_rate_fills_every_position():
    s = Speculative("eagle", 3, (0.8, 0.5, 0.25))
    assert s.expected_tokens == pytest.approx(1 + 0.8 + 0.4 + 0.1)
    assert Speculative("eagle", 3, (0.5,)).acceptance == (0.5, 0.5, 0.5)
    assert Speculative("eagle", 4, (1.0,)).expected_tokens == 5.0
    assert Speculative("eagle", 4, (0.0,)).expected_tokens == 1.0
    # a mapping of the fields (a study's JSON) reads the same
    assert speculative.as_speculative({"method": "eagle", "draft_tokens": 3, "acceptance": [0.8, 0.5, 0.25]}) == s
    with pytest.raises(ValueError, match="unknown keys"):
        speculative.as_speculative({"method": "eagle", "k": 3})
    with pytest.raises(TypeError):
        speculative.as_speculative(3)


def test_acceptance_takes_a_one_dimensional_array():
    assert Speculative("eagle", 2, np.array([0.8, 0.6])) == Speculative("eagle", 2, (0.8, 0.6))
    assert Speculative("eagle", 2, np.array([0.8])).acceptance == (0.8, 0.8)


def test_mtp_needs_the_config_s_mtp_module():
    """The MTP module count comes from config.json (`num_nextn_predict_layers`, Qwen3.5's `mtp_num_hidden_layers`);
    method "mtp" on a model without one is refused naming the fields, wherever the knob is taken."""
    assert catalog.model("DeepSeek-V3").n_mtp_layers == 1
    assert catalog.model("Qwen3.5-35B-A3B").n_mtp_layers == 1
    assert catalog.model("Llama-3.1-8B").n_mtp_layers == 0
    mtp = Speculative("mtp", 2, (0.7,))
    for call in (lambda: inference.estimate("Llama-3.1-8B", "H100", speculative=mtp),
                 lambda: inference.max_throughput("Llama-3.1-8B", "H100", speculative=mtp),
                 lambda: inference.StepModel("Llama-3.1-8B", "H100", speculative=mtp)):
        with pytest.raises(ValueError, match="num_nextn_predict_layers"):
            call()
    assert inference.estimate("DeepSeek-V3", "H200", 8, speculative=mtp).fits[0]
    # an EAGLE head runs on any model
    assert inference.estimate("Llama-3.1-8B", "H100", speculative=Speculative("eagle", 2, (0.7,))).fits[0]


def _row(frame, i):
    return frame.iloc[[i]].reset_index(drop=True)


def test_estimate_takes_one_speculative_value_per_row():
    """`speculative=` broadcasts like every other argument (ARCHITECTURE: "every argument may be an array"): each
    row of a mixed call is the call with that row's value alone, off (None, "off", NaN) and on, in every form."""
    import pandas as pd
    specs = [None, "mtp:3:0.8,0.6,0.4", Speculative("mtp", 1, (0.7,)), "off", "mtp:3:0.8,0.6,0.4",
             {"method": "eagle", "draft_tokens": 2, "acceptance": [0.7]}, float("nan")]
    batch = [8, 16, 32, 8, 64, 16, 4]
    mixed = inference.estimate("DeepSeek-V3", "H200", 8, batch_size=batch, engine="vllm", speculative=specs, **ARGS)
    assert len(mixed) == len(specs)
    for i, (s, b) in enumerate(zip(specs, batch)):
        one = inference.estimate("DeepSeek-V3", "H200", 8, batch_size=b, engine="vllm", speculative=s, **ARGS)
        pd.testing.assert_frame_equal(_row(mixed, i), one)
    # speculative decoding moved the rows it is on (the mixed call did not price every row alike)
    assert mixed.tpot_ms[3] != mixed.tpot_ms[1]
    # the only array: one row per value; a numpy array and a Series read the same
    two = inference.estimate("Llama-3.1-8B", "H100", speculative=[None, "eagle:2:0.7"], **ARGS)
    assert len(two) == 2 and two.tpot_ms[0] != two.tpot_ms[1]
    pd.testing.assert_frame_equal(_row(two, 1), inference.estimate("Llama-3.1-8B", "H100", speculative="eagle:2:0.7",
                                                                   **ARGS))
    for arr in (np.array([None, "eagle:2:0.7"], dtype=object), pd.Series([None, "eagle:2:0.7"])):
        pd.testing.assert_frame_equal(inference.estimate("Llama-3.1-8B", "H100", speculative=arr, **ARGS), two)


def test_max_throughput_takes_one_speculative_value_per_row_in_two_dimensions():
    """A column of values against a row of concurrencies: the rows in C order, each the scalar call's."""
    import pandas as pd
    specs = np.array([["mtp:2:0.8"], [None]], dtype=object)
    conc = [16, 64, 256]
    mixed = inference.max_throughput("DeepSeek-V3", "H200", 8, engine="sglang", concurrency=conc, speculative=specs,
                                     **ARGS)
    assert len(mixed) == 6
    for i, (s, c) in enumerate((s, c) for s in specs[:, 0] for c in conc):
        one = inference.max_throughput("DeepSeek-V3", "H200", 8, engine="sglang", concurrency=c, speculative=s,
                                       **ARGS)
        pd.testing.assert_frame_equal(_row(mixed, i), one)
    assert mixed.batch_size[2] == 48 < mixed.batch_size[5]   # SGLang's 48 only where speculative decoding is on


def test_nested_lists_and_categoricals_are_per_row_values_too():
    """A list of lists reads as the same 2-D array (not one entry a row of it), and a bare `pd.Categorical` as one
    value a row, as a Series of it does."""
    import pandas as pd
    conc = [16, 64, 256]
    kw = dict(engine="sglang", concurrency=conc, **ARGS)
    arr = inference.max_throughput("DeepSeek-V3", "H200", 8, speculative=np.array([["mtp:2:0.8"], [None]],
                                                                                   dtype=object), **kw)
    lst = inference.max_throughput("DeepSeek-V3", "H200", 8, speculative=[["mtp:2:0.8"], [None]], **kw)
    pd.testing.assert_frame_equal(lst, arr)
    cat = pd.Categorical(["mtp:2:0.8", "mtp:1:0.7"])
    by_cat = inference.estimate("DeepSeek-V3", "H200", 8, speculative=cat, **ARGS)
    by_series = inference.estimate("DeepSeek-V3", "H200", 8, speculative=pd.Series(cat), **ARGS)
    pd.testing.assert_frame_equal(by_cat, by_series)


def test_per_row_speculative_values_are_refused_by_name():
    with pytest.raises(ValueError, match="'mtp:x'"):
        inference.estimate("DeepSeek-V3", "H200", 8, speculative=[None, "mtp:x"])
    with pytest.raises(ValueError, match="num_nextn_predict_layers"):   # a model that cannot run one of them
        inference.estimate(["DeepSeek-V3", "Llama-3.1-8B"], "H200", 8, speculative=["mtp:1:0.7", "mtp:1:0.7"])
    with pytest.raises(ValueError, match="speculative \\(3,\\)"):
        inference.max_throughput("Llama-3.1-8B", "H100", concurrency=[1, 2], speculative=[None, None, None])
    with pytest.raises(TypeError, match="one per row"):
        inference.estimate("Llama-3.1-8B", "H100", speculative=[3])


@pytest.mark.parametrize("model, gpu, tp", [("Llama-3.1-8B", "H100", 1), ("DeepSeek-V3", "H200", 8)])
def test_no_acceptance_costs_the_drafts_and_full_acceptance_divides_the_step(model, gpu, tp):
    off = _tpot(model, gpu, None, tp=tp)
    none = _tpot(model, gpu, Speculative("eagle", K, (0.0,)), tp=tp)
    every = _tpot(model, gpu, Speculative("eagle", K, (1.0,)), tp=tp)
    # acceptance 0: one token per iteration, which now also verifies k + 1 tokens and runs k drafts
    sm = inference.StepModel(model, gpu, tp, engine="roofline")
    D, ctx = 8.0, ARGS["input_len"] + ARGS["output_len"] / 2
    drafts = K * speculative.draft_s(sm._c, sm._L, D, D * ctx, scalar=True) * 1e3
    assert drafts > 0
    assert none > off + drafts * 0.999
    # all accepted: the same iteration emits k + 1 tokens a sequence
    assert every == pytest.approx(none / (K + 1), rel=1e-9)
    assert every < off   # decode is memory-bound at batch 8: verifying 4 tokens costs far less than 4 steps


def test_memory_holds_the_draft_layer_and_the_cache_shrinks():
    spec = Speculative("mtp", K, (0.7,))
    off = inference.estimate("DeepSeek-V3", "H200", 8, batch_size=32, **ARGS)
    on = inference.estimate("DeepSeek-V3", "H200", 8, batch_size=32, speculative=spec, **ARGS)
    assert on.weights_gib[0] > off.weights_gib[0]
    assert on.kv_cache_gib[0] > off.kv_cache_gib[0]
    assert on.mem_per_gpu_gib[0] > off.mem_per_gpu_gib[0]
    # the prompt's forward is the same, plus the draft layer's prefill of it (one of the 61 layers' share)
    extend = on.ttft_ms[0] - off.ttft_ms[0]
    assert extend > 0
    assert extend / off.ttft_ms[0] == pytest.approx(1 / 61, rel=0.2)
    a = inference.StepModel("DeepSeek-V3", "H200", 8)
    b = inference.StepModel("DeepSeek-V3", "H200", 8, speculative=spec)
    assert b.kv_capacity_tokens < a.kv_capacity_tokens
    assert b.kv_bytes_per_token > a.kv_bytes_per_token


def test_measured_rows_stay_labelled_from_their_tables():
    """The verify reads the measured GEMM / attention tables at D (k + 1) tokens: a lookup like any other."""
    df = inference.estimate("Llama-3.1-8B", "H100", batch_size=[1, 8], engine="vllm",
                            speculative=Speculative("eagle", K, (0.7,)), **ARGS)
    assert set(df.source.astype(str)) <= {"interpolated", "extrapolated"}


def test_step_model_and_estimate_price_the_same_decode():
    """A pure decode iteration: the simulator's `StepModel.time_ms` (token time) equals `estimate`'s tpot at the
    same batch and mean context."""
    spec = Speculative("eagle", K, (0.8, 0.6, 0.4))
    for engine in ("roofline", "vllm"):
        sm = inference.StepModel("Llama-3.1-8B", "H100", engine=engine, speculative=spec)
        ctx = ARGS["input_len"] + ARGS["output_len"] / 2
        assert sm.time_ms(0, 0, 8, 8 * ctx) == pytest.approx(_tpot("Llama-3.1-8B", "H100", spec, 8, engine),
                                                             rel=1e-9)
        # scalar and array paths agree; a prefill-only iteration is unchanged
        assert float(sm.time_ms(np.array([0.0]), np.array([0.0]), np.array([8.0]), np.array([8 * ctx]))[0]) == \
            pytest.approx(sm.time_ms(0, 0, 8, 8 * ctx), rel=1e-12)
        # a prefill-only iteration: the target's prefill and the draft layer's prefill of the prompt beside it
        plain = inference.StepModel("Llama-3.1-8B", "H100", engine=engine)
        T, A = 2048, 2048 * 1024.5
        extend = 1e3 * speculative.draft_extend_s(sm._c, sm._L, T, A, 1.0, scalar=True)
        assert extend > 0
        assert sm.time_ms(T, A, 0, 0) == pytest.approx(plain.time_ms(T, A, 0, 0) + extend, rel=1e-12)


def test_simulator_follows_the_closed_form_on_a_steady_decode():
    spec = Speculative("eagle", K, (0.8, 0.6, 0.4))
    w = serving.Workload(concurrency=8, n_requests=64, input_len=1000, output_len=400, output_spread=0)
    off = serving.simulate("Llama-3.1-8B", "H100", workload=w, engine="vllm")
    on = serving.simulate("Llama-3.1-8B", "H100", workload=w, engine="vllm", speculative=spec)
    est = _tpot("Llama-3.1-8B", "H100", spec, 8, "vllm")
    assert on["tpot_ms_mean"] == pytest.approx(est, rel=0.15)
    assert on["tpot_ms_mean"] < off["tpot_ms_mean"]
    assert on["throughput_tok_s"] > off["throughput_tok_s"]


def test_sglang_turns_its_overlap_scheduler_off_and_runs_48_requests():
    """SGLang `server_args._handle_speculative_decoding`: its first speculative worker turns the overlap scheduler
    off (the releases before 0.5.11, `profiles.SPEC_OVERLAP_SINCE`; the V2 workers, the default since, keep it),
    max running requests 48 where none is given; other engines keep their batch."""
    spec = Speculative("mtp", K, (0.7,))
    plain = inference.StepModel("DeepSeek-V3", "H200", 8, engine="sglang~=0.5.10")
    sm = inference.StepModel("DeepSeek-V3", "H200", 8, engine="sglang~=0.5.10", speculative=spec)
    assert plain.overlap_scheduler and not sm.overlap_scheduler
    assert inference.StepModel("DeepSeek-V3", "H200", 8, engine="sglang", speculative=spec).overlap_scheduler
    assert Scheduler().for_cost(sm).max_batch_size == speculative.SGLANG_MAX_RUNNING
    assert Scheduler().for_cost(plain).max_batch_size != speculative.SGLANG_MAX_RUNNING
    assert Scheduler(max_batch_size=64).for_cost(sm).max_batch_size == 64
    df = inference.max_throughput("DeepSeek-V3", "H200", 8, engine="sglang", concurrency=256, speculative=spec,
                                  **ARGS)
    assert df.batch_size[0] == speculative.SGLANG_MAX_RUNNING
    vllm = inference.max_throughput("DeepSeek-V3", "H200", 8, engine="vllm", concurrency=256, speculative=spec,
                                    **ARGS)
    assert vllm.batch_size[0] > speculative.SGLANG_MAX_RUNNING


@pytest.mark.parametrize("mode", ["agg", "disagg"])
def test_the_analytical_models_defaults_take_sglangs_48_as_the_simulator_does(mode):
    """`serving.Deployments.of` with the max sequences left to the engine: SGLang with speculative decoding runs at
    most 48 a server, 48 // attention-DP ranks a rank, in the replicas, the decode pool and the prefill pool at its
    own prefill_attn_dp, as `Scheduler.for_cost` gives the simulator's; a max_batch_size given, another engine or
    the knob off keep their budgets."""
    from objectives.serving.analytical import Deployments
    spec = Speculative("mtp", 2, (0.7,))
    dis = dict(mode="disagg", dp=2, prefill_replicas=1) if mode == "disagg" else {}
    d = Deployments.of(gpu="H200", tp=8, engine="sglang", attn_dp=[1, 4], prefill_attn_dp=[2, 8],
                       speculative=spec, **dis)
    assert list(d.max_batch_size) == [48, 12]
    assert list(d.prefill_max_batch_size) == [24, 6]
    for adp, pre_adp, mbs, pre in zip((1, 4), (2, 8), d.max_batch_size, d.prefill_max_batch_size):
        for a, want in ((adp, mbs), (pre_adp, pre)):
            sm = inference.StepModel("DeepSeek-V3", "H200", 8, engine="sglang", attn_dp=a, ep=8 * a,
                                     speculative=spec)
            assert Scheduler().for_cost(sm).max_batch_size == want     # the simulator's cap, rank by rank
    own = Deployments.of(gpu="H200", tp=8, engine="sglang", attn_dp=4, **dis)
    assert own.max_batch_size[0] == own.prefill_max_batch_size[0] > 48
    for kw in (dict(engine="vllm", speculative=spec), dict(engine="sglang", speculative=spec, max_batch_size=64),
               dict(engine="sglang", speculative=spec, max_batch_size=64, prefill_max_batch_size=96)):
        d = Deployments.of(gpu="H200", tp=8, attn_dp=4, **kw, **dis)
        assert d.max_batch_size[0] == kw.get("max_batch_size", own.max_batch_size[0] if kw["engine"] == "sglang"
                                             else Deployments.of(gpu="H200", engine="vllm").max_batch_size[0])
        assert d.prefill_max_batch_size[0] == kw.get("prefill_max_batch_size", d.max_batch_size[0])
    # only the max sequences left to the engine move: the same row with it given as 2048 keeps 2048
    given = Deployments.of(gpu="H200", tp=8, engine="sglang", speculative=spec, max_batch_size=2048, **dis)
    assert given.max_batch_size[0] == 2048


def test_the_analytical_closed_loop_follows_the_simulators_48_requests():
    """Closed loop beyond SGLang's 48 with speculative decoding: the analytical model's replica holds 48 (not the
    128 clients), and its TTFT carries the queue the simulator's 48 running requests build."""
    from objectives.serving.analytical import Deployments, ServingModel
    spec = Speculative("eagle", 2, (0.7,))
    w = serving.Workload(concurrency=128, input_len=1000, output_len=200, n_requests=400)
    ana = ServingModel("Llama-3.1-8B", w).evaluate(Deployments.of(gpu="H100", engine="sglang", speculative=spec))
    sim = serving.simulate("Llama-3.1-8B", "H100", workload=w, engine="sglang", speculative=spec)
    assert ana["batch_size"][0] == speculative.SGLANG_MAX_RUNNING
    assert float(ana["ttft_ms"][0]) == pytest.approx(sim["ttft_ms_mean"], rel=0.25)
    assert float(ana["tpot_ms"][0]) == pytest.approx(sim["tpot_ms_mean"], rel=0.25)


def test_max_throughput_scales_with_the_accepted_tokens():
    off = inference.max_throughput("Llama-3.1-8B", "H100", concurrency=16, engine="vllm", **ARGS)
    on = [inference.max_throughput("Llama-3.1-8B", "H100", concurrency=16, engine="vllm",
                                   speculative=Speculative("eagle", K, (a,)), **ARGS) for a in (0.0, 0.5, 1.0)]
    tput = [float(d.throughput_tok_s[0]) for d in on]
    assert tput[0] < float(off.throughput_tok_s[0]) < tput[2]
    assert tput[0] < tput[1] < tput[2]


def test_max_throughput_memory_columns_hold_the_draft_layer():
    spec = Speculative("mtp", K, (0.7,))
    off = inference.max_throughput("DeepSeek-V3", "H200", 8, engine="vllm", concurrency=32, **ARGS)
    on = inference.max_throughput("DeepSeek-V3", "H200", 8, engine="vllm", concurrency=32, speculative=spec, **ARGS)
    assert on.batch_size[0] == off.batch_size[0] == 32
    assert on.weights_gib[0] > off.weights_gib[0]
    assert on.kv_cache_gib[0] > off.kv_cache_gib[0]


@pytest.mark.parametrize("engine, pp", [("roofline", 1), ("vllm", 1), ("roofline", 2)])
def test_breakdown_and_utilization_follow_the_knob(engine, pp):
    """`StepModel.breakdown` splits the token-time iteration `time_ms` prices (its components sum to it);
    `utilization` / `compute_fraction` of a pure decode are the speculative iteration's (`speculative_step_s`)."""
    from objectives.inference.estimate import speculative_step_s
    spec = Speculative("eagle", K, (0.8, 0.6, 0.4))
    sm = inference.StepModel("Llama-3.1-8B", "H100", 1, pp, engine=engine, speculative=spec)
    plain = inference.StepModel("Llama-3.1-8B", "H100", 1, pp, engine=engine)
    from objectives.inference.breakdown import COMPONENTS, SPEC_TERMS
    for w in [(0, 0, 8, 8 * 1200), (512, 512 * 800, 8, 8 * 1200), (2048, 2048 * 1024.5, 0, 0)]:
        bd = sm.breakdown(*w)
        assert list(bd) == list(COMPONENTS + SPEC_TERMS) == list(plain.breakdown(*w))
        assert sum(bd.values()) == pytest.approx(sm.time_ms(*w), rel=1e-9)
        assert plain.breakdown(*w)["draft"] == plain.breakdown(*w)["draft_prefill"] == 0.0
        # the draft layer's prompt prefill in its own column: the plain prompt's kernels unchanged beside it
        m = 1.0 if pp == 1 else float(np.minimum(pp, w[2] + (w[0] > 0)))
        extend = 1e3 * speculative.draft_extend_s(sm._c, sm._L, w[0] / m, w[1] / m, (w[0] > 0) / m, scalar=True)
        if w[2] == 0:   # no decodes: the plain iteration and the draft layer's prefill of the prompt beside it
            assert bd["draft"] == 0.0 and extend > 0 and bd["draft_prefill"] == pytest.approx(extend, rel=1e-12)
            assert {n: bd[n] for n in COMPONENTS} == pytest.approx(
                {n: plain.breakdown(*w)[n] for n in COMPONENTS}, rel=1e-12)
        else:
            assert bd != pytest.approx(plain.breakdown(*w), rel=1e-6)
            # the k draft forwards in `draft`, each `speculative.draft_s` at the micro-batch's rows, in token time
            draft = 1e3 * K * speculative.draft_s(sm._c, sm._L, w[2] / m, w[3] / m, scalar=True)
            E = 1.0 if w[0] > 0 else spec.expected_tokens       # a prompt-carrying iteration counts whole
            assert draft > 0 and bd["draft"] == pytest.approx(draft / E, rel=1e-12)
            assert bd["draft_prefill"] == pytest.approx(extend / E, rel=1e-12)
            assert (bd["draft_prefill"] > 0) == (w[0] > 0)
    if pp == 1:
        D, Kt = 8.0, 8.0 * 1200
        t, busy, comp = speculative_step_s(sm._p, D, Kt)
        assert sm.utilization(0, 0, D, Kt) == pytest.approx(float(busy / t), rel=1e-9)
        assert sm.compute_fraction(0, 0, D, Kt) == pytest.approx(float(comp / t), rel=1e-9)
        assert sm.compute_fraction(0, 0, D, Kt) > plain.compute_fraction(0, 0, D, Kt)  # k + 1 tokens a GEMM row


def test_the_memory_setting_hint_counts_the_draft_layer():
    """A replica with no room for its KV cache names the memory setting it fits from, the draft layer's weights
    and KV included: at that setting it runs."""
    import re
    spec = Speculative("mtp", K, (0.7,))
    needed = {}
    for s in (None, spec):
        with pytest.raises(ValueError, match="fits from mem_fraction_static") as e:
            inference.StepModel("Qwen3.5-35B-A3B", "H100", engine="sglang", speculative=s,
                                memory_setting=0.80)
        needed[s] = float(re.search(r"fits from mem_fraction_static ([0-9.]+)", str(e.value)).group(1))
    assert needed[spec] > needed[None]
    sm = inference.StepModel("Qwen3.5-35B-A3B", "H100", engine="sglang", speculative=spec,
                             memory_setting=needed[spec] + 0.001)
    assert sm.kv_capacity_tokens > 0


@pytest.mark.parametrize("pp", [1, 2, 4])
@pytest.mark.parametrize("on", [False, True])
def test_closed_form_and_step_model_split_a_pipeline_alike(pp, on):
    """`estimate.replica_time_s` and `StepModel.time_ms` (scalar and array) price the same decode iteration at every
    pp, speculative decoding on or off: the verify's k + 1 tokens a sequence stay in its micro-batch (the split is
    over sequences) and each micro-batch drafts its own D / m rows, the token time applied once."""
    est = importlib.import_module("objectives.inference.estimate")   # `inference.estimate` is the function
    spec = Speculative("mtp", K, (0.8, 0.6, 0.4)) if on else None
    sm = inference.StepModel("DeepSeek-V3", "H200", 8 // pp, pp=pp, engine="vllm", speculative=spec)
    for D in (1.0, 3.0, 32.0):
        Kd = D * 1500.0
        closed = 1e3 * float(est.replica_time_s(sm._p, 0.0, 0.0, D, Kd, D, D))
        assert sm.time_ms(0.0, 0.0, D, Kd) == pytest.approx(closed, rel=1e-9)
        arr = sm.time_ms(np.array([0.0]), np.array([0.0]), np.array([D]), np.array([Kd]))
        assert float(arr[0]) == pytest.approx(closed, rel=1e-9)
    if on:   # the drafts at pp > 1 are charged per micro-batch: cheaper than one draft over every sequence
        plain = inference.StepModel("DeepSeek-V3", "H200", 8 // pp, pp=pp, engine="vllm")
        drafts = K * 1e3 * speculative.draft_s(sm._c, sm._L, 32.0, 32.0 * 1500.0, scalar=True)
        full = sm.time_ms(0.0, 0.0, 32.0, 32.0 * 1500.0) * spec.expected_tokens
        assert full < plain.time_ms(0.0, 0.0, 128.0, 32.0 * 1500.0) + drafts * (1.0 if pp == 1 else 0.999)


def test_the_iteration_that_carries_a_prompt_lasts_a_full_speculative_step():
    """Closed form and simulator: an iteration with prompt tokens beside the decodes is a whole speculative
    iteration (its prompt's first token waits for all of it), a decode-only one 1 / E of it."""
    est = importlib.import_module("objectives.inference.estimate")   # `inference.estimate` is the function
    spec = Speculative("eagle", K, (0.8, 0.6, 0.4))
    sm = inference.StepModel("Llama-3.1-8B", "H100", engine="vllm", speculative=spec)
    T, A, D, Kd = 512.0, 512.0 * 256.5, 16.0, 16.0 * 1200.0
    full = 1e3 * float(est.speculative_full_s(sm._p, T, A, D, Kd, D + 1.0, D + 1.0))
    assert sm.time_ms(T, A, D, Kd) == pytest.approx(full, rel=1e-12)
    one = 1e3 * float(est.replica_time_s(sm._p, T, A, D, Kd, D + 1.0, D + 1.0, whole=True))
    assert one == pytest.approx(full, rel=1e-12)
    # a mean iteration's work (the prompts spread over every iteration) is the expectation: the prompt work and
    # its draft extend in full, the rest / E
    pre = 1e3 * float(est.replica_time_s(sm._p, T, A, 0.0, 0.0, 1.0, 1.0))   # with the draft extend
    mean = 1e3 * float(est.replica_time_s(sm._p, T, A, D, Kd, D + 1.0, D + 1.0))
    assert mean == pytest.approx(pre + (full - pre) / spec.expected_tokens, rel=1e-12)
    dec = 1e3 * float(est.speculative_full_s(sm._p, 0.0, 0.0, D, Kd, D, D))
    assert sm.time_ms(0.0, 0.0, D, Kd) == pytest.approx(dec / spec.expected_tokens, rel=1e-12)
    # the simulator's TTFT of a lone prompt grows by the draft extend, as the closed form's
    w = serving.Workload(concurrency=1, n_requests=4, input_len=1000, output_len=50, output_spread=0)
    args = dict(input_len=1000, output_len=50, engine="vllm", batch_size=1)
    sim = [serving.simulate("Llama-3.1-8B", "H100", workload=w, engine="vllm", speculative=s)["ttft_ms_mean"]
           for s in (None, spec)]
    closed_ttft = [float(inference.estimate("Llama-3.1-8B", "H100", speculative=s, **args).ttft_ms[0])
                   for s in (None, spec)]
    extend = 1e3 * speculative.draft_extend_s(sm._c, sm._L, 1000.0, 1000.0 * 500.5, 1.0, scalar=True)
    assert sim[1] - sim[0] == pytest.approx(extend, rel=1e-6)
    assert closed_ttft[1] - closed_ttft[0] == pytest.approx(extend, rel=1e-6)


def test_sglang_s_48_requests_are_shared_by_the_attention_dp_ranks():
    """SGLang's model runner gives each DP-attention rank max_running_requests // dp_size: 48 // 8 = 6."""
    spec = Speculative("mtp", K, (0.7,))
    kw = dict(engine="sglang", ep=8, input_len=1000, output_len=1000, concurrency=1024, speculative=spec)
    tp8 = inference.max_throughput("DeepSeek-V3", "H200", 8, attn_dp=1, **kw)
    adp = inference.max_throughput("DeepSeek-V3", "H200", 1, attn_dp=8, **kw)
    assert tp8.batch_size[0] == 48
    assert adp.batch_size[0] == 6
    sm = inference.StepModel("DeepSeek-V3", "H200", 1, ep=8, attn_dp=8, engine="sglang", speculative=spec)
    assert Scheduler().for_cost(sm).max_batch_size == 6


def test_max_throughput_and_estimate_agree_on_the_energy_a_token():
    """The same batch at the same throughput costs the same J / token: `max_throughput`'s busy and compute time
    come from the speculative iteration, as `estimate`'s do."""
    for a in (0.0, 0.9):
        spec = Speculative("eagle", K, (a,))
        kw = dict(engine="vllm", input_len=1000, output_len=500, speculative=spec)
        mt = inference.max_throughput("Llama-3.1-8B", "H100", max_batch_size=2, **kw)
        es = inference.estimate("Llama-3.1-8B", "H100", batch_size=2, **kw)
        assert mt.throughput_tok_s[0] == pytest.approx(es.throughput_tok_s[0], rel=0.02)
        assert mt.joules_per_tok[0] == pytest.approx(es.joules_per_tok[0], rel=0.02)


def test_max_throughput_holds_the_draft_tokens_a_sequence():
    """`max_throughput`'s KV a sequence counts the k draft tokens, as `estimate`'s `seq_tokens(isl + osl + k)`."""
    kw = dict(engine="vllm", input_len=1000, output_len=400, concurrency=32)
    off = inference.max_throughput("Llama-3.1-8B", "H100", **kw)
    on = inference.max_throughput("Llama-3.1-8B", "H100", speculative=Speculative("eagle", K, (0.7,)), **kw)
    sm = inference.StepModel("Llama-3.1-8B", "H100", engine="vllm", speculative=Speculative("eagle", K, (0.7,)))
    plain = inference.StepModel("Llama-3.1-8B", "H100", engine="vllm")
    per_tok = sm.kv_bytes_per_token / sm.n_gpus / 2**30
    per_tok_off = plain.kv_bytes_per_token / plain.n_gpus / 2**30
    seqs = on.batch_size[0]
    assert on.kv_cache_gib[0] / (seqs * per_tok) == pytest.approx(off.kv_cache_gib[0] / (seqs * per_tok_off) + K)


def test_the_simulator_reserves_the_draft_slots_a_decoding_sequence_holds():
    """Each sequence that decodes holds its k draft tokens' slots beside its context, from its admission, in the
    simulator as in the closed form (`speculative.draft_slots`, one rule): a cache that holds four whole requests
    of 1000 + 24 tokens without them preempts with speculative decoding on, not with it off, and one that also
    holds their draft slots (a block each) does not."""
    spec = Speculative("eagle", K, (0.7,))
    w = serving.Workload(input_len=1000, output_len=24, n_requests=16, concurrency=4, output_spread=0)

    def preemptions(cap: int, s: Speculative | None) -> float:
        return serving.simulate("Llama-3.1-8B", "H100", workload=w, engine="vllm", speculative=s,
                                scheduler=Scheduler(kv_capacity_tokens=cap))["preemptions"]
    assert preemptions(4 * 1024, None) == 0
    assert preemptions(4 * 1024, spec) > 0
    assert preemptions(4 * (1024 + 16), spec) == 0
    # the rule: k slots a request that decodes (none for one that only prefills, none off), in its own blocks as
    # the engines allocate them, ceil((context + k) / 16): a block more where they cross a block boundary (1024,
    # 2000), none where the context's last block has room (1000 + 3 within 63 blocks)
    sm = inference.StepModel("Llama-3.1-8B", "H100", engine="vllm", speculative=spec)
    plain = inference.StepModel("Llama-3.1-8B", "H100", engine="vllm")
    ctx, out = np.array([1024, 2000, 1001, 1000]), np.array([24, 1000, 1, 24])
    assert list(Scheduler().kv_extra_blocks(sm, ctx, out)) == [1, 1, 0, 0]
    assert Scheduler().kv_extra_blocks(sm, ctx) is None            # a prefill worker's requests
    assert Scheduler().kv_extra_blocks(plain, ctx, out) is None
    assert list(speculative.draft_slots(spec, out)) == [K, K, 0, K]
    p = speculative.with_speculative(inference.core.prepare("Llama-3.1-8B", "H100", engine="vllm"), spec)
    est = importlib.import_module("objectives.inference.estimate")
    per_seq = est.served_batch(p, 1000.0, 24.0, 256.0, 8192.0, kv=10_000.0)[3]
    assert float(per_seq) == pytest.approx(1000.0 + float(p.coeffs.kv_reserve) * 24.0 + K)


def test_the_disaggregated_prefill_pool_runs_the_draft_layer_over_each_prompt():
    """A disaggregated prefill worker runs the draft layer's prefill of each prompt (the drafts' hidden states and
    its KV for the decode worker), as an aggregated replica does: the closed form's prefill pool (`ServingModel.
    _prefill_kw`, `disagg_closed_loop`'s estimates) and the simulator's prefill pool price it, and the KV handed
    off a token is what the decode worker holds (with the draft layer's)."""
    from objectives.serving.analytical import Deployments, ServingModel, prefill_estimates
    from objectives.serving.simulator import _build
    spec = Speculative("eagle", K, (0.7,))
    # a whole context of 2,112 tokens fills 132 blocks: its 3 draft slots take a block more where it decodes
    w = serving.Workload(input_len=2000, output_len=112, n_requests=8, concurrency=2, output_spread=0)
    d = Deployments.of(gpu="H100_SXM", tp=1, dp=2, mode="disagg", prefill_replicas=1, engine="vllm",
                       speculative=spec)
    pkw = ServingModel("Llama-3.1-8B", w)._prefill_kw(d)
    assert pkw["speculative"] == spec
    on = float(prefill_estimates(pkw, 2000.0, 1.0)["ttft_ms"].iloc[0])
    off = float(prefill_estimates({**pkw, "speculative": None}, 2000.0, 1.0)["ttft_ms"].iloc[0])
    agg = [float(inference.estimate("Llama-3.1-8B", "H100", engine="vllm", batch_size=1, input_len=2000,
                                    output_len=1, speculative=s).ttft_ms[0]) for s in (None, spec)]
    assert on - off == pytest.approx(agg[1] - agg[0], rel=1e-9) and on > off
    eng, reps = _build("Llama-3.1-8B", "H100", 1, 1, None, None, None, w, None, "disagg", 1,
                       serving.Pool(n_workers=1), serving.Pool(n_workers=1), None, "least_loaded", engine="vllm",
                       speculative=spec)
    pre = next(r for r in reps if r.role == "prefill")
    dec = next(r for r in reps if r.role == "decode")
    sm = inference.StepModel("Llama-3.1-8B", "H100", engine="vllm", speculative=spec)
    extend = 1e3 * speculative.draft_extend_s(sm._c, sm._L, 2000.0, 2000.0 * 1000.5, 1.0, scalar=True)
    plain = inference.StepModel("Llama-3.1-8B", "H100", engine="vllm")
    assert pre.cost.time_ms(2000.0, 2000.0 * 1000.5, 0, 0) == pytest.approx(
        plain.time_ms(2000.0, 2000.0 * 1000.5, 0, 0) + extend, rel=1e-12)
    assert pre.cost.kv_bytes_per_token == dec.cost.kv_bytes_per_token > plain.kv_bytes_per_token
    assert pre.xb is None and dec.xb is not None     # the draft slots where the decodes run only
