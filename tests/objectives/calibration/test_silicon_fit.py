"""The silicon slice's engine-factor fit (objectives.calibration.silicon.fit_engine_factors)."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from objectives.calibration import silicon
from objectives.inference.efficiency import Efficiency, default_efficiency


@pytest.fixture(scope="module")
def rows():
    try:
        r, _ = silicon.load_rows()
    except FileNotFoundError:
        pytest.skip("the silicon measurements (../shared/calibration) are not in this checkout")
    agg = r[r["mode"] == "agg"]
    # two deployments of each engine's main model: a vLLM and an SGLang model, no TensorRT-LLM row
    return agg[agg["engine"].str.lower().isin(["vllm", "sglang"])].groupby("engine").head(2)


def test_each_engine_fits_its_own_launch_floor_and_an_engine_without_rows_gets_their_mean(rows):
    base = default_efficiency()
    params = copy.deepcopy(dict(base.params))
    params["profile_launch_us"] = {**params["profile_launch_us"], "vllm": 1.0, "sglang": 4.0, "trtllm": 2.5}
    eff, info = silicon.fit_engine_factors(rows, Efficiency(params, base.meta), max_nfev=1)
    floor = eff.params["profile_launch_us"]
    # one factor per engine present: they start apart and stay apart (a shared factor would tie them)
    assert "profile_launch_us.vllm" in info["names"] and "profile_launch_us.sglang" in info["names"]
    assert floor["sglang"] > 2.0 * floor["vllm"]
    # TensorRT-LLM has no row here: the geometric mean of the fitted engines, not its starting value
    assert floor["trtllm"] == pytest.approx(np.sqrt(floor["vllm"] * floor["sglang"]), rel=1e-9)


def test_an_engine_without_rows_gets_the_fitted_engines_mean_front_end_time(rows):
    base = default_efficiency()
    assert base.params["engine_ttft_ms"]["trtllm"] == 0.0
    eff, _ = silicon.fit_engine_factors(rows, Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    fe = eff.params["engine_ttft_ms"]
    # not its unfitted 0 ms (a claim that the engine has no front end), but the fitted engines' geometric mean
    assert fe["trtllm"] == pytest.approx(np.sqrt(fe["vllm"] * fe["sglang"]), rel=1e-9) and fe["trtllm"] > 0.1


def test_an_engine_seen_only_on_linear_or_sparse_attention_models_shares_the_api_server_time(rows):
    """The SGLang rows here are all of Qwen3.5 (Gated DeltaNet) and GLM-5 (DSA), models no other engine runs in
    the slice: their time before the first token cannot tell SGLang's API server from those models' own. SGLang's
    server time is tied to vLLM's (fitted on standard-attention models) and the rest is the linear-attention
    models' (attn_ttft_ms), so a standard model on SGLang does not pay it. The DSA models' is not fitted: their
    prompts run the measured sparse-attention prefill module."""
    special = silicon._special_attn(rows["model"].to_numpy(object))
    assert special[(rows["engine"].str.lower() == "sglang").to_numpy()].all()
    # the linear kind's time is a compile where the engine's FLA L2 norm specializes on the token count: the
    # SGLang Qwen3.5 rows pay it, GLM-5's (DSA) and the vLLM rows do not
    pays = silicon._compiles_prefill(rows)
    assert pays.any() and np.array_equal(pays, rows["model"].str.contains("Qwen3.5").to_numpy()
                                         & (rows["engine"].str.lower() == "sglang").to_numpy())
    assert not special[(rows["engine"].str.lower() == "vllm").to_numpy()].any()
    base = default_efficiency()
    eff, info = silicon.fit_engine_factors(rows, Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    fe, attn = eff.params["engine_ttft_ms"], eff.params["attn_ttft_ms"]
    assert "attn_ttft_ms.linear" in info["names"] and "attn_ttft_ms.sparse" not in info["names"]
    assert fe["sglang"] == fe["vllm"] and attn["linear"] > 0.0 and attn["sparse"] == 0.0
    # rows of the DSA model beside standard ones (no linear-attention model) fit no such time
    every, _ = silicon.load_rows()
    glm = every[every["model"].str.contains("GLM-5") & (every["mode"] == "agg")].head(2)
    assert len(glm)
    _, info3 = silicon.fit_engine_factors(pd.concat([rows[~special], glm]),
                                          Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    assert not any(n.startswith("attn_ttft_ms") for n in info3["names"])
    # rows of standard-attention models alone fit no such time and keep SGLang's server time its own
    std = rows[~special]
    assert len(std)
    _, info2 = silicon.fit_engine_factors(std, Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    assert not any(n.startswith("attn_ttft_ms") for n in info2["names"])


def test_a_fold_without_linear_attention_rows_prices_a_qwen35_prompt_with_the_sourced_compile(rows):
    """The fold that holds out Qwen3.5, the slice's only Gated DeltaNet model, has no row that identifies
    ``attn_ttft_ms["linear"]``: it keeps the default, the engine sources' compile time (~90-110 ms a compile:
    sgl-project/sglang#23448, #30403), so a held-out Qwen3.5 prompt on SGLang pays a compile instead of nothing
    (the default had been 0: held-out Qwen3.5 TTFT 61.6 %). Where rows pay it, the default is the fit's start and
    its log-prior's centre."""
    from objectives import inference

    base = default_efficiency()
    linear = base.params["attn_ttft_ms"]["linear"]
    assert 90.0 <= linear <= 110.0
    special = silicon._special_attn(rows["model"].to_numpy(object))
    std = rows[~special]
    assert len(std) and not silicon._compiles_prefill(std).any()
    eff, info = silicon.fit_engine_factors(std, Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    assert "attn_ttft_ms.linear" not in info["names"] and eff.params["attn_ttft_ms"]["linear"] == linear
    zero = Efficiency({**eff.params, "attn_ttft_ms": {**eff.params["attn_ttft_ms"], "linear": 0.0}}, eff.meta)

    def ttft(e: Efficiency) -> float:
        return float(inference.max_throughput("Qwen/Qwen3.5-397B-A17B", "B200", tp=8, weight_dtype="fp8",
                                              input_len=1024, output_len=256, concurrency=4, engine="sglang",
                                              efficiency=e)["ttft_ms"].iloc[0])
    assert ttft(eff) - ttft(zero) == pytest.approx(linear, rel=1e-6)
    # rows that pay it fit it from that default (one evaluation moves it little)
    _, info2 = silicon.fit_engine_factors(rows, Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    assert info2["x"][info2["names"].index("attn_ttft_ms.linear")] == pytest.approx(linear, rel=0.5)


def test_an_engine_without_disaggregated_rows_gets_the_fitted_kv_connector_latency():
    """SGLang has no disaggregated row: its KV connector's latency per request is the geometric mean of the
    engines that have them (here vLLM's), not its unfitted 0 ms."""
    try:
        r, _ = silicon.load_rows()
    except FileNotFoundError:
        pytest.skip("the silicon measurements (../shared/calibration) are not in this checkout")
    eng = r["engine"].str.lower()
    rows = pd.concat([r[(r["mode"] == "disagg") & (eng == "vllm")].head(4),
                      r[(r["mode"] == "agg") & (eng == "sglang")].head(2)])
    base = default_efficiency()
    assert base.params["engine_kv_ms"]["sglang"] == 0.0
    eff, info = silicon.fit_engine_factors(rows, Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    kv = eff.params["engine_kv_ms"]
    assert "engine_kv_ms.vllm" in info["names"] and "engine_kv_ms.sglang" not in info["names"]
    assert kv["sglang"] == pytest.approx(kv["vllm"], rel=1e-9) and kv["trtllm"] == pytest.approx(kv["vllm"], rel=1e-9)


def test_an_moe_layers_own_small_kernels_leave_dense_models_alone():
    """profile_moe_layer_us is paid by MoE layers only: a dense model's step does not move with it, an MoE
    model's grows by its MoE layers x the change; profile_layer_us is every layer's."""
    from objectives import catalog, inference
    from objectives.inference.core import default_eff

    base = default_eff()

    def tpot(model: str, **over: float) -> float:
        eff = Efficiency({**base.params, **over}, base.meta)
        return float(inference.estimate(model, "H200", tp=8, weight_dtype="fp8", batch_size=8, input_len=1024,
                                        output_len=256, engine="vllm", efficiency=eff)["tpot_ms"].iloc[0])
    dense, moe = "Llama-3.1-70B", "Qwen3-235B-A22B"
    lay, extra = base.params["profile_layer_us"], base.params["profile_moe_layer_us"]
    assert tpot(dense, profile_moe_layer_us=extra + 50.0) == pytest.approx(tpot(dense), rel=1e-9)
    more = {**lay, "vllm": lay["vllm"] + 50.0}
    m = catalog.model(moe)
    n_moe = m.n_layers - m.first_k_dense
    assert tpot(moe, profile_moe_layer_us=extra + 50.0) - tpot(moe) == pytest.approx(n_moe * 0.05, rel=1e-6)
    assert tpot(dense, profile_layer_us=more) - tpot(dense) == pytest.approx(80 * 0.05, rel=1e-6)
    # another engine's value leaves vLLM's step alone
    assert tpot(dense, profile_layer_us={**lay, "sglang": lay["sglang"] + 50.0}) == pytest.approx(tpot(dense))


def test_dense_anchors_pin_the_layer_time_and_moe_rows_alone_do_not_fit_it(rows):
    anchors = silicon.dense_anchors()
    if not len(anchors):
        pytest.skip("the published measurements (../shared/calibration) are not in this checkout")
    # the published dense decode steps: batch-1 inter-token latencies of tuned builds, dense models only
    assert set(anchors["metric"]) == {"itl_ms"} and set(anchors["engine_profile"]) == {"tuned"}
    assert (anchors["batch_size"] == 1).all() and not silicon._is_moe(anchors["model"].unique()).any()
    base = default_efficiency()
    layer = {e: 33.0 for e in ("vllm", "sglang", "trtllm")} | {"torch": 67.0}
    params = {**copy.deepcopy(dict(base.params)), "profile_layer_us": layer}
    # MoE rows alone see a layer's small kernels and an MoE layer's own together: only the MoE part is fitted
    eff, info = silicon.fit_engine_factors(rows, Efficiency(params, base.meta), max_nfev=1)
    assert "profile_moe_layer_us" in info["names"]
    assert not any(n.startswith("profile_layer_us") for n in info["names"])
    assert eff.params["profile_layer_us"] == layer
    # with the dense anchors both are fitted, one value shared by the engines; the PyTorch layer keeps its own
    eff, info = silicon.fit_engine_factors(rows, Efficiency(params, base.meta), max_nfev=1, anchors=anchors)
    assert {"profile_moe_layer_us", "profile_layer_us.vllm", "profile_layer_us.trtllm"} <= set(info["names"])
    fitted = eff.params["profile_layer_us"]
    assert fitted["vllm"] == fitted["sglang"] == fitted["trtllm"] and fitted["torch"] == 67.0


def test_the_simulator_replay_desynchronizes_clients_when_outputs_spread():
    """`simulated(..., output_spread=)`: with every length exactly the row's the C clients that start together
    prefill together each round (MiniMax-M2.5 on four B300s, vLLM, 8 clients, 1k / 1k: every prompt waits for the
    other seven's); with outputs spread (`serving.Workload`'s default +-2 %, or +-5 %) they drift apart and a
    prompt mostly runs beside decodes."""
    try:
        r, _ = silicon.load_rows()
    except FileNotFoundError:
        pytest.skip("the silicon measurements (../shared/calibration) are not in this checkout")
    one = r[(r["model"] == "MiniMaxAI/MiniMax-M2.5") & (r["gpu"] == "b300_sxm") & (r["tp"] == 4) & (r["moe_ep"] == 1)
            & (r["weight_dtype"] == "fp8") & (r["concurrency"] == 8) & (r["isl"] == 1024) & (r["osl"] == 1024)
            & (r["mode"] == "agg")].head(1)
    assert len(one) == 1
    fixed = silicon.simulated(one, output_spread=0.0).iloc[0]
    default = silicon.simulated(one).iloc[0]
    spread = silicon.simulated(one, output_spread=0.05).iloc[0]
    for s in (default, spread):
        assert s["ttft_pred"] < 0.75 * fixed["ttft_pred"]
        assert s["tpot_pred"] == pytest.approx(fixed["tpot_pred"], rel=0.05)
    for bad, err in ((-0.1, ValueError), (1.0, ValueError), (True, TypeError), ("0.05", TypeError)):
        with pytest.raises(err, match=r"output_spread="):
            silicon.simulated(one, output_spread=bad)
        with pytest.raises(ValueError, match=r"input_spread=.*\[0, 1\)"):
            silicon.simulated(one, input_spread=bad)
    # prompts spread too, behind an API server: each request's TTFT also waits its 5 ms there
    fe = silicon.simulated(one, output_spread=0.05, input_spread=0.05, frontend_ms=5.0).iloc[0]
    assert 0.9 * spread["ttft_pred"] < fe["ttft_pred"] < 1.5 * spread["ttft_pred"]
    with pytest.raises(ValueError, match="frontend_ms"):
        silicon.simulated(one, frontend_ms=-1.0)


def test_the_simulator_replay_on_sglang_is_the_closed_form_with_a_full_wave():
    """Under SGLang's prefill-first schedule exact-length closed-loop clients stay in full waves every round, so the
    replay's mean TTFT is the closed form's (`predict`) with the wave's share at 1: the two price the same prefill
    batches and per-request front-end time for the same deployment. That holds for a row measured on a
    block-scaled FP8 checkpoint (GLM-5 on eight B200s, ``fp8_block``), which the replay must run as
    `measurements.checkpoints` resolves it, as `predict` does. The shipped wave share (0.18) puts the closed form
    far below the replay: what separates them is the clients' synchronization alone."""
    from objectives.inference.core import default_eff

    try:
        r, _ = silicon.load_rows()
    except FileNotFoundError:
        pytest.skip("the silicon measurements (../shared/calibration) are not in this checkout")
    pick = r[(r["mode"] == "agg") & (r["engine"] == "sglang") & (r["isl"] == 8192) & (r["osl"] == 1024)
             & (((r["model"] == "zhipuai/GLM-5") & (r["gpu"] == "b200_sxm") & (r["moe_quant"] == "fp8_block")
                 & (r["concurrency"] == 32))
                | ((r["model"] == "Qwen/Qwen3.5-397B-A17B") & (r["gpu"] == "b200_sxm") & (r["tp"] == 4)
                   & (r["weight_quant"] == "nvfp4") & (r["concurrency"] == 16)))]
    pick = pick.drop_duplicates(["model", "concurrency"])
    assert len(pick) == 2
    base = default_eff()
    params = copy.deepcopy(dict(base.params))
    params["ttft_wave"] = {**params["ttft_wave"], "sglang": 1.0}
    full = silicon.predict(pick, Efficiency(params, base.meta))
    shipped = silicon.predict(pick)
    # every length exactly the row's, every wave arriving at once (no API server's hold): waves every round
    sim = silicon.simulated(pick, output_spread=0.0, frontend_ms=0.0)
    assert sim["ttft_pred"].to_numpy() == pytest.approx(full["ttft_pred"].to_numpy(), rel=2e-3)
    assert (sim["ttft_pred"] > 1.5 * shipped["ttft_pred"]).all()


def test_leave_one_gpu_out_predicts_each_gpu_with_a_fit_that_never_saw_it():
    """`leave_one_gpu_out`: each GPU's rows scored with the factors fitted on the other GPUs' rows alone (the
    check of whether a factor is GPU-specific), in the rows' own order, and each fold's factors reported."""
    try:
        r, _ = silicon.load_rows()
    except FileNotFoundError:
        pytest.skip("the silicon measurements (../shared/calibration) are not in this checkout")
    vllm = r[(r["mode"] == "agg") & (r["engine"].str.lower() == "vllm")
             & (r["model"] == "MiniMaxAI/MiniMax-M2.5")]
    rows = pd.concat([vllm[vllm["gpu"] == g].head(2) for g in ("b200_sxm", "h200_sxm")]).iloc[::-1]
    base = Efficiency(copy.deepcopy(dict(default_efficiency().params)), default_efficiency().meta)
    factors: dict = {}
    # 3 evaluations: a fold whose first trial step is rejected would stay at its starting point after 2
    lo = silicon.leave_one_gpu_out(rows, base, max_nfev=3, factors=factors)
    assert list(lo.index) == list(rows.index) and lo["tpot_pred"].notna().all()
    assert set(factors) == {"b200_sxm", "h200_sxm"}
    # the H200 rows are those of a fit on the B200 rows alone, and that fold's factors are what it reports
    eff, info = silicon.fit_engine_factors(rows[rows["gpu"] == "b200_sxm"], base, max_nfev=3)
    h200 = rows["gpu"] == "h200_sxm"
    np.testing.assert_allclose(lo.loc[h200, "tpot_pred"], silicon.scored(rows[h200], eff)["tpot_pred"], rtol=1e-9)
    assert factors["h200_sxm"] == pytest.approx(dict(zip(info["names"], info["x"])))
    # the two folds saw different rows: their fitted factors differ
    assert factors["h200_sxm"] != pytest.approx(factors["b200_sxm"])


def test_factor_shifts_lists_the_factors_a_fold_moves_past_the_threshold_either_way():
    fitted = {"a.vllm": 2.0, "b": 1.0, "c": 10.0}
    folds = {"h100_sxm": {"a.vllm": 2.1, "b": 0.5, "c": 10.0}, "b200_sxm": {"a.vllm": 2.0, "b": 1.05}}
    s = silicon.factor_shifts(folds, fitted)
    # b halves in one fold (a 2x move down counts as one up); a moves 5 % and c not at all: neither is listed
    assert list(s.index) == ["b"] and s.loc["b", "h100_sxm"] == pytest.approx(0.5)
    assert s.loc["b", "b200_sxm"] == pytest.approx(1.05)
    assert list(silicon.factor_shifts(folds, fitted, threshold=0.04).index) == ["a.vllm", "b"]
    # a factor one fold did not fit reads NaN in that column, not a shift
    assert np.isnan(silicon.factor_shifts({**folds, "gb200": {"c": 10.0}}, fitted).loc["b", "gb200"])


def _sweep(ttft_meas, tpot_meas, ttft_pred, tpot_pred, concurrency=(4, 16, 32, 64, 128)):
    return pd.DataFrame({"gpu": "b300_sxm", "isl": 1024, "concurrency": list(concurrency),
                         "ttft_ms": ttft_meas, "tpot_ms": tpot_meas, "ttft_pred": ttft_pred, "tpot_pred": tpot_pred})


def test_signed_by_gives_each_groups_median_log_ratio_with_its_sign():
    d = pd.concat([_sweep([100.0] * 5, [10.0] * 5, [200.0] * 5, [10.0] * 5).assign(gpu="a"),
                   _sweep([100.0] * 5, [10.0] * 5, [50.0] * 5, [5.0] * 5).assign(gpu="b")], ignore_index=True)
    d.loc[0, "ttft_pred"] = np.nan                              # one unpredicted row in group a
    s = silicon.signed_by(d, ["gpu"])
    assert s.loc["a", "ttft_log_ratio"] == pytest.approx(np.log(2.0), abs=1e-3)     # reads high
    assert s.loc["b", "ttft_log_ratio"] == pytest.approx(np.log(0.5), abs=1e-3)     # reads low
    assert s.loc["b", "tpot_log_ratio"] == pytest.approx(np.log(0.5), abs=1e-3)
    assert list(s["rows"]) == [5, 5]
    assert list(s["ttft_predicted"]) == [4, 5] and list(s["tpot_predicted"]) == [5, 5]


def test_load_slopes_fits_ttft_against_tpot_over_the_loaded_rows_of_each_sweep():
    tpot = np.array([5.0, 10.0, 15.0, 20.0, 30.0])
    # measured: 50 iterations of TPOT per TTFT past 16 clients; predicted: 10 plus a 250 ms constant. The C = 4 row
    # (off both lines) is left out of the fit
    d = _sweep(np.r_[999.0, 50.0 * tpot[1:]], tpot, np.r_[1.0, 250.0 + 10.0 * tpot[1:]], tpot)
    s = silicon.load_slopes(d, ["gpu", "isl"])
    assert len(s) == 1 and s.loc[0, "rows"] == 4
    assert s.loc[0, "slope_measured"] == pytest.approx(50.0)
    assert s.loc[0, "intercept_measured_ms"] == pytest.approx(0.0, abs=1e-6)
    assert s.loc[0, "slope_predicted"] == pytest.approx(10.0)
    assert s.loc[0, "intercept_predicted_ms"] == pytest.approx(250.0)
    # an unpredicted copy of a client count (listed first) does not hide its predicted one
    dup = pd.concat([d.iloc[[2]].assign(ttft_pred=np.nan), d], ignore_index=True)
    assert silicon.load_slopes(dup, ["gpu", "isl"]).loc[0, "rows"] == 4
    # a sweep of fewer than three loaded client counts has no line
    assert silicon.load_slopes(d[d["concurrency"] <= 32], ["gpu", "isl"]).empty


def test_length_pairs_compares_one_deployments_short_and_long_outputs_at_the_same_clients():
    base = dict(model="m", engine="vllm", engine_version="0.17.0", gpu="b200_sxm", mode="agg", tp=4, isl=1024)
    d = pd.DataFrame([
        {**base, "osl": 1024, "concurrency": 16, "tpot_ms": 11.0, "tpot_pred": 9.0},
        {**base, "osl": 8192, "concurrency": 16, "tpot_ms": 10.0, "tpot_pred": 10.0},
        # a copy of the short run that measured 13: the side's median, 12
        {**base, "osl": 1024, "concurrency": 16, "tpot_ms": 13.0, "tpot_pred": 9.0},
        # an unpredicted row does not count
        {**base, "osl": 8192, "concurrency": 16, "tpot_ms": 99.0, "tpot_pred": np.nan},
        # other clients, another release label or another TP: no partner, no pair
        {**base, "osl": 1024, "concurrency": 32, "tpot_ms": 14.0, "tpot_pred": 14.0},
        {**base, "osl": 8192, "concurrency": 16, "tpot_ms": 20.0, "tpot_pred": 20.0, "engine_version": "0.18.0"},
        {**base, "osl": 8192, "concurrency": 16, "tpot_ms": 10.0, "tpot_pred": 10.0, "tp": 8},
        # a disaggregated row is not a pair's side
        {**base, "osl": 1024, "concurrency": 16, "tpot_ms": 50.0, "tpot_pred": 50.0, "mode": "disagg"},
    ])
    p = silicon.length_pairs(d, "osl")
    assert len(p) == 1
    assert p.loc[0, "tpot_short"] == pytest.approx(12.0) and p.loc[0, "tpot_long"] == pytest.approx(10.0)
    assert p.loc[0, "measured"] == pytest.approx(0.2)      # the short outputs' TPOT 20 % above the long ones'
    assert p.loc[0, "predicted"] == pytest.approx(-0.1)    # the model reads it 10 % below
    # the prompt lengths' pairs: none here (every row has the same prompt)
    assert silicon.length_pairs(d, "isl").empty
    with pytest.raises(ValueError, match="vary"):
        silicon.length_pairs(d, "concurrency")


def test_the_api_servers_time_per_stream_is_not_fitted():
    """``engine_stream_us`` (`inference.estimate.host_ttft_s`) stays at its default 0: fitted, it did not carry
    from one model to another (leave-one-model-out TTFT 18.7 -> 30.3 %), so no factor group holds it."""
    for kw in (dict(engines=["sglang", "vllm"], agg=["vllm"], special_attn=True),
               dict(engines=["trtllm"], disagg=["trtllm"], agg=[]), dict(engines=["vllm"])):
        assert not any(p[0] == "engine_stream_us" for paths, _, _ in silicon._factor_specs(**kw) for p in paths)
    assert "engine_stream_us" in silicon.ENGINE_FACTOR_NAMES     # the fit file still holds the value it ran with
    assert default_efficiency().params["engine_stream_us"]["vllm"] == 0.0     # no claim until fitted
