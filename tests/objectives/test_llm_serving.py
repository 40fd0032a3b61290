"""objectives.llm_serving: the LLM serving objective (analytical and simulated), its constraints, multi-fidelity."""
import math

import numpy as np
import pandas as pd
import pytest

import dse
import objectives
import spaces
from dse.objective import is_vectorized, objective_info
from objectives import catalog, inference, serving
from objectives.llm_serving import METRICS

MODEL = "Llama-3.1-70B"


def cfg(**kw):
    base = dict(gpu="H100-SXM-80GB", n_gpus=4, tp=4, pp=1, weight_dtype="fp8", act_dtype="fp8", kv_dtype="fp8",
                max_batch_size=64, max_num_tokens=8192, chunked_prefill=True)
    return {**base, **kw}


@pytest.fixture(scope="module")
def obj():
    return objectives.llm_serving_objective(MODEL)


@pytest.fixture(scope="module")
def flagship_sample():
    s = spaces.llm_serving(MODEL, ["H100", "H200", "A100", "L40S", "B200", "MI300X"], 8, input_len=2048,
                           modes=("agg", "disagg"))
    return s.sample(600, seed=3)


def test_marked_vectorized_with_provenance(obj):
    assert is_vectorized(obj)
    info = objective_info(obj)
    assert info["name"] == "llm_serving/analytical" and info["version"].startswith("2+data.") and info["vectorized"]
    assert obj.constraints == {"ttft_ms": ("<=", 2000.0), "tpot_ms": ("<=", 50.0), "fits": ("==", 1.0)}
    tight = objectives.llm_serving_objective(MODEL, slo={"ttft_ms": 500}, workload={"input_len": 512, "output_len": 64})
    assert tight.constraints == {"ttft_ms": ("<=", 500.0), "fits": ("==", 1.0)}
    assert tight.input_len == 512 and math.isinf(tight.workload.rate)


def test_metrics_columns_and_units(obj, flagship_sample):
    out = obj(flagship_sample)
    assert len(out) == len(flagship_sample)
    assert set(METRICS) - {"quality"} <= set(out.columns)
    fit = out["fits"] == 1
    assert fit.any() and (~fit).any()
    f = out[fit]
    assert np.isfinite(f[["ttft_ms", "tpot_ms", "tok_s_per_gpu", "usd_per_mtok", "joules_per_tok"]].to_numpy()).all()
    np.testing.assert_allclose(f["tok_s_per_user"], 1e3 / f["tpot_ms"])
    np.testing.assert_allclose(f["tok_s_per_gpu"] * f["n_gpus"], f["throughput_tok_s"])
    # cost = GPU-hour price x GPUs / throughput, whatever the serving mode
    price = catalog.gpu_table(flagship_sample.loc[fit, "gpu"].astype(str).to_numpy())["price_usd_per_hour"]
    np.testing.assert_allclose(f["usd_per_mtok"], price * f["n_gpus"] / 3600 / f["throughput_tok_s"] * 1e6, rtol=1e-9)
    assert (out.loc[~fit, "reason"] != "").all()


def test_batch_equals_row_by_row(obj, flagship_sample):
    sub = flagship_sample.head(40).reset_index(drop=True)
    whole = obj(sub)
    for i in range(0, 40, 7):
        one = obj(sub.iloc[[i]].reset_index(drop=True))
        pd.testing.assert_series_equal(one.iloc[0], whole.iloc[i], check_names=False)


def test_aggregated_chunked_is_the_inference_steady_state(obj):
    out = obj(pd.DataFrame([cfg()])).iloc[0]
    ref = inference.max_throughput(MODEL, "H100-SXM-80GB", tp=4, pp=1, weight_dtype="fp8", act_dtype="fp8",
                                   kv_dtype="fp8", input_len=2048, output_len=256, max_batch_size=64,
                                   max_num_tokens=8192).iloc[0]
    assert out["ttft_ms"] == pytest.approx(ref["ttft_ms"])
    assert out["tpot_ms"] == pytest.approx(ref["tpot_ms"])
    assert out["tok_s_per_gpu"] == pytest.approx(ref["throughput_tok_s_per_gpu"])
    assert out["batch_size"] == ref["batch_size"] == 64


def test_concurrency_caps_the_batch_per_replica():
    o = objectives.llm_serving_objective(MODEL, workload=serving.Workload(concurrency=24, input_len=2048, output_len=256))
    out = o(pd.DataFrame([cfg(max_batch_size=256), cfg(max_batch_size=8)]))
    assert list(out["batch_size"]) == [24, 8]
    free = objectives.llm_serving_objective(MODEL)(pd.DataFrame([cfg(max_batch_size=256)]))
    assert free["batch_size"].iloc[0] > 24
    # fewer sequences in flight: faster tokens for each user, fewer tokens per GPU
    assert out["tpot_ms"].iloc[0] < free["tpot_ms"].iloc[0]
    assert out["tok_s_per_gpu"].iloc[0] < free["tok_s_per_gpu"].iloc[0]


def test_prefill_first_stalls_decodes(obj):
    both = obj(pd.DataFrame([cfg(chunked_prefill=True), cfg(chunked_prefill=False)]))
    # without chunking, each cycle adds ceil(N / k) prefill-only iterations during which decodes wait
    assert both["tpot_ms"].iloc[1] != pytest.approx(both["tpot_ms"].iloc[0])
    assert both["fits"].tolist() == [1.0, 1.0]


def test_disaggregated_pools_bound_the_rate(obj):
    rows = [cfg(gpu="H200-SXM-141GB", n_gpus=4, tp=1, dp=4, mode="disagg", prefill_replicas=p, chunked_prefill=None,
                max_batch_size=256) for p in (1, 2, 3)]
    out = obj(pd.DataFrame(rows))
    assert (out["fits"] == 1).all()
    t = out["throughput_tok_s"].to_numpy()
    # one decode replica (3 prefill) cannot beat the decode-pool capacity of one replica's steady state
    one_decode = obj(pd.DataFrame([cfg(gpu="H200-SXM-141GB", n_gpus=1, tp=1, max_batch_size=256)]))
    dec_only = inference.estimate(MODEL, "H200-SXM-141GB", tp=1, weight_dtype="fp8", act_dtype="fp8", kv_dtype="fp8",
                                  batch_size=out["batch_size"].iloc[2], input_len=2048, output_len=256)
    cap = out["batch_size"].iloc[2] / (255 * dec_only["tpot_ms"].iloc[0]) * 1e3 * 256
    assert t[2] <= cap * (1 + 1e-9)
    assert len(set(np.round(t, 6))) == 3 and one_decode["fits"].iloc[0] == 1


def test_bad_input():
    with pytest.raises(dse.ObjectiveError, match="fidelity"):
        objectives.llm_serving_objective(MODEL, fidelity="exact")
    with pytest.raises(dse.ObjectiveError, match="ttft_p99"):
        objectives.llm_serving_objective(MODEL, slo={"ttft_p99": 1})
    with pytest.raises(dse.ObjectiveError, match="defaults"):
        objectives.llm_serving_objective(MODEL, defaults={"gpus": "H100"})
    with pytest.raises(catalog.CatalogError):
        objectives.llm_serving_objective("Llama-9-70B")
    o = objectives.llm_serving_objective(MODEL)
    with pytest.raises(dse.ObjectiveError, match="'gpu'"):
        o(pd.DataFrame([{"tp": 4}]))
    with pytest.raises(dse.ObjectiveError, match="prefill_replicas"):
        o(pd.DataFrame([cfg(dp=2, mode="disagg", prefill_replicas=2)]))
    ok = objectives.llm_serving_objective(MODEL, defaults={"gpu": "H200"})(pd.DataFrame([{"tp": 4}]))
    assert ok["fits"].iloc[0] == 1


def test_quality_metric_of_the_weight_format(obj):
    out = obj(pd.DataFrame([cfg(weight_dtype="bf16", act_dtype="bf16", kv_dtype="bf16"), cfg()]))
    assert out["quality"].iloc[0] >= out["quality"].iloc[1]


def test_simulated_fidelity():
    sim = objectives.llm_serving_objective(MODEL, fidelity="simulated", n_requests=120)
    assert objective_info(sim)["name"] == "llm_serving/simulated"
    df = pd.DataFrame([cfg(), cfg(gpu="L40S", n_gpus=1, tp=1, weight_dtype="bf16", act_dtype="bf16")])
    out = sim(df)
    row = out.iloc[0]
    assert row["fits"] == 1 and 0 <= row["slo_attainment"] <= 1
    assert row["ttft_ms_p99"] >= row["ttft_ms"] > 0 and row["tpot_ms_p99"] >= row["tpot_ms"] * 0.999
    assert out["fits"].iloc[1] == 0 and np.isfinite(out["tpot_ms"].iloc[1])   # analytical values kept


def test_study_and_multi_fidelity(tmp_path):
    space = spaces.llm_serving(MODEL, ["H100", "H200"], 4, formats=["fp8", "bf16"], kv_dtypes=["fp8"],
                               max_batch_sizes=(16, 64, 256), max_num_tokens=(8192,), chunked_prefill=(True,))
    obj = objectives.llm_serving_objective(MODEL, n_requests=100)
    study = dse.create_study("glue", space, {"tok_s_per_gpu": "max", "tok_s_per_user": "max"},
                             constraints=obj.constraints, storage=f"sqlite:///{tmp_path / 'g.db'}")
    study.optimize(obj, optimizer="grid", progress=False)
    front = study.pareto()
    assert len(front) >= 2
    assert study.meta["objective"]["name"] == "llm_serving/analytical"
    res = objectives.multi_fidelity(study, obj, top=4)
    assert len(res.simulated) == min(4, len(front))
    assert sorted(res.kept + res.dropped) == sorted(res.simulated["number"].astype(int))
    assert res.kept, "at least one re-simulated point stays non-dominated"
    assert set(res.errors) == {"tok_s_per_gpu", "tok_s_per_user", "ttft_ms", "tpot_ms"}
    assert (tmp_path / "glue-simulated.parquet").exists()
    back = pd.read_parquet(tmp_path / "glue-simulated.parquet")
    assert list(back["number"]) == list(res.simulated["number"])
    assert "re-simulated" in res.summary()


def test_closed_loop_queueing_wait_agrees_with_the_simulator():
    """More users than batch slots: the wait for a slot is part of TTFT (Little's law), as the simulator shows."""
    import pandas as pd

    from objectives import llm_serving_objective, serving

    rows = pd.DataFrame([dict(gpu="H200-SXM-141GB", n_gpus=1, tp=1, pp=1, weight_dtype="fp8", act_dtype="fp8",
                              kv_dtype="fp8", max_batch_size=mbs, max_num_tokens=8192, chunked_prefill=True)
                         for mbs in (8, 32)])
    ttfts = []
    for conc in (64, 256):
        w = serving.Workload(concurrency=conc, input_len=1024, output_len=128, n_requests=600)
        a = llm_serving_objective("Llama-3.1-8B", workload=w)(rows)["ttft_ms"].to_numpy()
        s = llm_serving_objective("Llama-3.1-8B", workload=w, fidelity="simulated")(rows)["ttft_ms"].to_numpy()
        assert (a > 1000).all()                       # queueing dominates: seconds, not one prefill
        assert ((a / s > 0.7) & (a / s < 1.4)).all(), (conc, a, s)
        ttfts.append(a)
    assert (ttfts[1] > 3 * ttfts[0]).all()            # four times the users, several times the wait


def test_confidence_constraints_in_a_confirmed_study():
    """constraints={"ttft_ms_p99": ("<=", b, 0.9)}: the objective makes bands at level 0.8, the study checks the
    _hi ends at both fidelities, and the confirmed front's simulated _hi ends meet the SLO."""
    space = spaces.llm_serving(MODEL, ["H100"], 4, formats=["fp8"], kv_dtypes=["fp8"], max_batch_sizes=(16, 64),
                               max_num_tokens=(8192,), chunked_prefill=(True,))
    cons = {"ttft_ms_p99": ("<=", 3000, 0.9), "tpot_ms_p99": ("<=", 100, 0.9)}
    obj = objectives.llm_serving_objective(MODEL, slo={"ttft_ms_p99": 3000, "tpot_ms_p99": 100}, constraints=cons,
                                           workload={"concurrency": 16, "input_len": 1024, "output_len": 64},
                                           n_requests=60)
    assert obj.interval == pytest.approx(0.8) and objective_info(obj)["band_level"] == pytest.approx(0.8)
    objs = {"tok_s_per_gpu": "max", "tok_s_per_user": "max"}
    ev = obj.confirming(objs)
    assert ev.constraints == {**{k: (op, float(b), c) for k, (op, b, c) in cons.items()}, "fits": ("==", 1.0)}
    assert ev.dse_band_level == pytest.approx(0.8)
    study = dse.create_study("conf", space, objs, constraints=obj.constraints, storage=":memory:")
    study.optimize(ev, optimizer="grid", batch_size=space.size, progress=False)
    t = study.trials
    assert (t["state"] == "complete").all() and {"ttft_ms_p99_hi", "tpot_ms_p99_hi"} <= set(t.columns)
    front = study.pareto()
    assert len(front) and (front["fidelity"] == "simulated").all()
    assert (front["ttft_ms_p99_hi"] <= 3000).all() and (front["tpot_ms_p99_hi"] <= 100).all()
    feasible = t["feasible"].astype(bool)
    assert (feasible == ((t["ttft_ms_p99_hi"] <= 3000) & (t["tpot_ms_p99_hi"] <= 100) & (t["fits"] == 1))).all()
    for reason in t["confirm_reason"][t["confirm_reason"] != ""]:
        assert reason.startswith("fits") or (reason.split(" = ")[0] in ("ttft_ms_p99_hi", "tpot_ms_p99_hi")
                                             and reason.endswith("(confidence 0.9)")), reason


# ------------------------------------------------------------------------------------------------ eplb
MOE = "Qwen/Qwen3-235B-A22B-FP8"


def moe_cfg(**kw):
    """Qwen3-235B (128 experts) on 8 H200s with vLLM's profile: 8 attention-DP ranks with EP 8 (wide EP), or on 4
    with TP 4 without EP (TP 8 would shard its 1536-wide block-FP8 experts 192 wide, off the 128 block)."""
    base = dict(gpu="H200-SXM-141GB", tp=1, attn_dp=8, ep=8, pp=1, weight_dtype="fp8", kv_dtype="fp8",
                engine="vllm", max_batch_size=64, max_num_tokens=8192, chunked_prefill=True)
    return {**base, **kw}


def test_eplb_prices_the_experts_balanced_where_ep_is_above_one():
    # 256 clients: 32 sequences per attention-DP rank of the EP 8 rows
    o = objectives.llm_serving_objective(MOE, workload={"concurrency": 256, "input_len": 1024, "output_len": 128})
    rows = pd.DataFrame([moe_cfg(eplb=False), moe_cfg(eplb=True),
                         moe_cfg(tp=4, attn_dp=1, ep=1, eplb=False), moe_cfg(tp=4, attn_dp=1, ep=1, eplb=True)])
    out = o(rows)
    assert (out["fits"] == 1).all()
    # EP 8: the measured balanced-routing MoE tables, a different TTFT and TPOT
    assert out["ttft_ms"].iloc[1] != pytest.approx(out["ttft_ms"].iloc[0], rel=1e-3)
    assert out["tpot_ms"].iloc[1] != pytest.approx(out["tpot_ms"].iloc[0], rel=1e-3)
    # EP 1 (TP experts): nothing to balance, every metric the same
    pd.testing.assert_series_equal(out.iloc[2], out.iloc[3], check_names=False)
    # the knob reaches the inference model's steady state as its own eplb argument
    for i, lb in ((0, False), (1, True)):
        ref = inference.max_throughput(MOE, "H200-SXM-141GB", tp=1, attn_dp=8, ep=8, weight_dtype="fp8",
                                       kv_dtype="fp8", engine="vllm", input_len=1024, output_len=128,
                                       max_batch_size=32, max_num_tokens=8192, eplb=lb).iloc[0]
        assert bool(ref["eplb"]) is lb
        # the ranks step in lockstep: the closed loop's TPOT holds the GPU's cycle (8 ranks x 32 sequences through
        # it) beyond the request's TTFT: the clients' split, `max_throughput(concurrency=)`'s
        # (`estimate.cycle_split`); the TTFT holds the round window's steps, which the other ranks' prompts fill
        # (`estimate.lockstep_round_s`), so the TPOT reads a little under the window without clients (58.4 against
        # 61.6 ms; the simulator's 61.2 ms, its TTFT 1533 ms against the model's 1772 ms)
        clients = inference.max_throughput(MOE, "H200-SXM-141GB", tp=1, attn_dp=8, ep=8, weight_dtype="fp8",
                                           kv_dtype="fp8", engine="vllm", input_len=1024, output_len=128,
                                           max_batch_size=32, max_num_tokens=8192, eplb=lb, concurrency=256).iloc[0]
        for key in ("ttft_ms", "tpot_ms"):
            assert out[key].iloc[i] == pytest.approx(clients[key], rel=1e-9), key
        assert 0.9 * ref["tpot_ms"] < out["tpot_ms"].iloc[i] < ref["tpot_ms"]
    # a missing knob (a space without it, or inactive) is the default: off, unless defaults= say otherwise
    plain = o(rows.drop(columns="eplb").iloc[:2])
    pd.testing.assert_frame_equal(plain, out.iloc[[0, 0]].reset_index(drop=True))
    on = objectives.llm_serving_objective(MOE, workload={"concurrency": 256, "input_len": 1024, "output_len": 128},
                                          defaults={"eplb": True})
    inactive = rows.iloc[:2].assign(eplb=[None, None])
    pd.testing.assert_frame_equal(on(inactive), out.iloc[[1, 1]].reset_index(drop=True))


def test_eplb_reaches_every_pool_and_the_simulator():
    # disaggregated: the prefill pool runs EP 8 over 8 attention-DP ranks, the decode pool TP 4 without EP (32
    # clients: the prefill pool, not the decode slots, sets the first token)
    dis = dict(mode="disagg", dp=2, prefill_replicas=1, tp=4, attn_dp=1, ep=1, prefill_gpu="H200-SXM-141GB",
               prefill_tp=1, prefill_ep=8, prefill_attn_dp=8, chunked_prefill=None)
    o = objectives.llm_serving_objective(MOE, workload={"concurrency": 32, "input_len": 1024, "output_len": 64})
    a = o(pd.DataFrame([moe_cfg(**dis, eplb=False), moe_cfg(**dis, eplb=True)]))
    assert (a["fits"] == 1).all() and a["ttft_ms"].iloc[1] != pytest.approx(a["ttft_ms"].iloc[0], rel=1e-3)
    # simulated fidelity: serving.simulate(..., eplb=) on every pool; EP 1 unchanged. 16 sequences per
    # attention-DP rank: the measured balanced and skewed MoE tables part from a few tokens per rank up
    w = {"concurrency": 128, "input_len": 1024, "output_len": 64, "n_requests": 128}
    sim = objectives.llm_serving_objective(MOE, workload=w, fidelity="simulated", n_requests=128)
    s = sim(pd.DataFrame([moe_cfg(eplb=False), moe_cfg(eplb=True), moe_cfg(tp=4, attn_dp=1, ep=1, eplb=False),
                          moe_cfg(tp=4, attn_dp=1, ep=1, eplb=True)]))
    assert (s["fits"] == 1).all()
    assert s["ttft_ms"].iloc[1] != pytest.approx(s["ttft_ms"].iloc[0], rel=1e-3)
    assert s["tpot_ms"].iloc[1] != pytest.approx(s["tpot_ms"].iloc[0], rel=1e-3)
    assert s["ttft_ms"].iloc[3] == s["ttft_ms"].iloc[2] and s["tpot_ms"].iloc[3] == s["tpot_ms"].iloc[2]
    ref = serving.simulate(MOE, "H200-SXM-141GB", tp=1, attn_dp=8, ep=8, weight_dtype="fp8", kv_dtype="fp8",
                           engine="vllm", eplb=True, scheduler=serving.Scheduler(max_batch_size=64, max_num_tokens=8192),
                           workload=serving.Workload(**w))
    assert s["tpot_ms"].iloc[1] == pytest.approx(ref["tpot_ms_mean"])


def test_a_bad_eplb_value_is_refused_by_name():
    o = objectives.llm_serving_objective(MOE)
    with pytest.raises(dse.ObjectiveError, match=r"eplb must be True or False .*got 'yes'"):
        o(pd.DataFrame([moe_cfg(eplb="yes")]))
    with pytest.raises(dse.ObjectiveError, match=r"eplb must be True or False .*got 2"):
        o(pd.DataFrame([moe_cfg(eplb=True), moe_cfg(eplb=2)]))
    with pytest.raises(dse.ObjectiveError, match=r"defaults eplb='on': must be True or False"):
        objectives.llm_serving_objective(MOE, defaults={"eplb": "on"})
    with pytest.raises(ValueError, match=r"eplb must be True or False .*got 'yes'"):
        serving.Deployments.of(gpu="H200", tp=8, eplb="yes")


def test_a_space_without_weight_dtype_costs_the_checkpoints_format():
    """A hand-built space with no weight_dtype column costs the checkpoint as it is (None: `inference.resolve`'s
    rule, as `inference.estimate`, `dse capacity` and `dse deploy` do): an FP8 checkpoint in fp8 (it was costed in
    bf16, twice its weights), at both fidelities; an explicit column and defaults= still win."""
    fp8 = "Llama-3.1-70B-FP8"
    w = {"concurrency": 16, "input_len": 1024, "output_len": 32, "n_requests": 32}
    base = {"gpu": "H200", "tp": 4, "max_batch_size": 16}
    for fidelity in ("analytical", "simulated"):
        o = objectives.llm_serving_objective(fp8, workload=w, fidelity=fidelity, n_requests=32)
        out = o(pd.DataFrame([base, {**base, "weight_dtype": "fp8"}, {**base, "weight_dtype": "bf16"}]))
        assert (out["fits"] == 1).all()
        cols = ["ttft_ms", "tpot_ms", "mem_per_gpu_gib"]
        np.testing.assert_array_equal(out[cols].iloc[0].to_numpy(), out[cols].iloc[1].to_numpy())
        assert out["mem_per_gpu_gib"].iloc[2] > out["mem_per_gpu_gib"].iloc[0] + 10, fidelity
    # the unquantized checkpoint: bf16, as before
    plain = objectives.llm_serving_objective(MODEL, workload=w)(pd.DataFrame([base, {**base, "weight_dtype": "bf16"}]))
    np.testing.assert_array_equal(plain["tpot_ms"].iloc[0], plain["tpot_ms"].iloc[1])
    # defaults= names a dtype for the missing column
    o = objectives.llm_serving_objective(fp8, workload=w, defaults={"weight_dtype": "bf16"})
    both = o(pd.DataFrame([base, {**base, "weight_dtype": "bf16"}]))
    np.testing.assert_array_equal(both["tpot_ms"].iloc[0], both["tpot_ms"].iloc[1])


def test_multi_fidelity_of_a_confirmed_study_compares_the_analytical_values(tmp_path):
    """A confirmed study stores its constrained metrics simulated (the analytical ones in ``<metric>_screen``):
    multi_fidelity's analytical front and its errors read the analytical values, not the simulated ones twice."""
    model = "Llama-3.1-8B"
    space = spaces.llm_serving(model, ["H100"], 2, formats=["fp8"], kv_dtypes=["fp8"], max_batch_sizes=(64,),
                               max_num_tokens=(8192,), chunked_prefill=(True,))
    obj = objectives.llm_serving_objective(model, workload=serving.Workload(rate=6.0, input_len=1024, output_len=128),
                                           slo={"ttft_ms_p99": 2000, "tpot_ms_p99": 100}, n_requests=300)
    goals = {"tok_s_per_gpu": "max", "tok_s_per_user": "max"}
    ev = obj.confirming(goals)
    study = dse.create_study("mfc", space, goals, constraints=ev.constraints, storage=f"sqlite:///{tmp_path / 'm.db'}")
    study.optimize(ev, optimizer="grid", batch_size=1000, progress=False)
    front = study.pareto()
    assert len(front) and (front["fidelity"] == "simulated").all()
    res = objectives.multi_fidelity(study, obj)
    for m in ("ttft_ms_p99", "tpot_ms_p99"):
        np.testing.assert_allclose(res.analytical[m], front[f"{m}_screen"])
        np.testing.assert_allclose(res.simulated[m], front[m])            # the same simulation, run again
        gap = np.median(np.abs(front[m] - front[f"{m}_screen"]) / front[m])
        assert gap > 0 and res.errors[m] == pytest.approx(gap)


def test_the_simulated_workload_keeps_the_output_spread():
    """The closed loop the simulated fidelity runs (a flood's users, or the study's closed loop sized to its
    n_requests) keeps the study workload's `output_spread`: exact lengths stay exact."""
    row = pd.Series({"batch_size": 6.0})
    for w in (serving.Workload(rate=math.inf, input_len=512, output_len=64, output_spread=0),
              serving.Workload(concurrency=8, input_len=512, output_len=64, output_spread=0)):
        obj = objectives.llm_serving_objective(MODEL, workload=w, fidelity="simulated", n_requests=40)
        got = obj._workload_for(row, 2)
        assert got.closed_loop and got.output_spread == 0.0 and (got.requests().output_tokens == 64).all()
    spread = objectives.llm_serving_objective(MODEL, workload=serving.Workload(rate=math.inf, output_len=64),
                                              fidelity="simulated", n_requests=40)._workload_for(row, 2)
    assert spread.concurrency == 12 and spread.output_spread == serving.Workload(concurrency=1).output_spread > 0
