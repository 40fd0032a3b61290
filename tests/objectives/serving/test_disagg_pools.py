"""Disaggregated (xPyD) deployments whose prefill and decode pools each choose their own EP and attention DP:
the simulator, the analytical serving model, the objective, the space and `dse deploy`."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import dse
import objectives
from objectives import serving
from objectives.serving.capacity import meets, steady_verdict

MOE = "Qwen3-30B-A3B"          # 128 experts, 32 heads, 4 KV heads
H200 = "H200-SXM-141GB"
#: prefill: 2 workers of TP 2 EP 2; decode: 1 worker of 4 attention-DP ranks x TP 1 with EP 4 (wide EP)
BASE = dict(gpu=H200, tp=1, pp=1, dp=3, ep=4, attn_dp=4, weight_dtype="fp8", kv_dtype="fp8", mode="disagg",
            prefill_replicas=2, max_batch_size=256, max_num_tokens=8192, chunked_prefill=True, prefill_gpu=H200,
            prefill_tp=2, prefill_ep=2, prefill_attn_dp=1)


def test_pool_ep_and_attn_dp_fields():
    p = serving.Pool(gpu="H200", tp=8, ep=8, n_workers=2)
    assert (p.ep, p.attn_dp, p.n_workers) == (8, None, 2)
    with pytest.raises(ValueError, match="Pool ep=0"):
        serving.Pool(ep=0)
    with pytest.raises(TypeError, match="Pool attn_dp=2.5"):
        serving.Pool(attn_dp=2.5)


def test_simulator_and_analytical_model_agree_on_per_pool_ep():
    """Tolerances (analytical vs simulated, 2,000 requests at 40 req/s): throughput 8 %, mean TPOT 10 %, mean TTFT
    10 %, p99 TTFT 35 %; measured 4.7-5.0 %, 0.7-1.2 %, 0.8-2.3 %, 2.7-7.1 % (the first token the decode worker's).
    The throughput gap is the finite run's: the simulator divides by the time to the last request's finish, the
    closed form gives the steady rate (7.6-8.0 % at 1,000 requests, 2.4-2.5 % at 4,000)."""
    w = serving.Workload(rate=40.0, input_len=2048, output_len=256)
    o = objectives.llm_serving_objective(MOE, workload=w, slo={"ttft_ms_p99": 2000, "tpot_ms_p99": 100},
                                         n_requests=2000)
    rows = pd.DataFrame([BASE, {**BASE, "prefill_tp": 4, "prefill_ep": 4},           # prefill TP 4 EP 4
                         {**BASE, "ep": 1, "prefill_ep": 1},                          # no EP: TP experts
                         {**BASE, "attn_dp": 1, "tp": 4, "ep": 4, "prefill_gpu": "H100-SXM-80GB"}])
    a, s = o(rows), o.at_fidelity("simulated")(rows)
    # GPUs per pool = workers x tp x pp x attn_dp: 2 x 2 + 1 x 4; 2 x 4 + 1 x 4; 2 x 2 + 1 x 4; 2 x 2 + 1 x 4
    assert a["n_gpus"].tolist() == s["n_gpus"].tolist() == [8, 12, 8, 8]
    assert (a["fits"] == 1).all() and (s["fits"] == 1).all()
    for col, tol in (("throughput_tok_s", 0.08), ("tpot_ms", 0.10), ("ttft_ms", 0.10), ("ttft_ms_p99", 0.35)):
        assert (np.abs(a[col] / s[col] - 1) < tol).all(), (col, a[col].tolist(), s[col].tolist())
    # the prefill pool's EP / TP are its own: TP 4 EP 4 prefills faster than TP 2 EP 2 (both fidelities) and the
    # decode pool is untouched; wide EP on the decode ranks decodes faster than TP experts
    assert a["ttft_ms"].iloc[1] < a["ttft_ms"].iloc[0] and s["ttft_ms"].iloc[1] < s["ttft_ms"].iloc[0]
    assert a["prefill_pool_req_s"].iloc[1] > a["prefill_pool_req_s"].iloc[0]
    assert a["decode_pool_req_s"].iloc[1] == pytest.approx(a["decode_pool_req_s"].iloc[0])
    assert a["tpot_ms"].iloc[0] < a["tpot_ms"].iloc[2] and s["tpot_ms"].iloc[0] < s["tpot_ms"].iloc[2]


@pytest.mark.parametrize("engine", ["roofline", "vllm"])
def test_wide_ep_decode_pool_of_a_large_moe(engine):
    """DeepSeek-V3 at 10 req/s: 2 prefill workers of TP 8 EP 8 and a wide-EP decode worker of 8 attention-DP ranks x
    TP 4 with EP 32 (vs a TP 8 EP 8 decode worker). Same tolerances as above; measured on the closed form:
    throughput 1.5 / 5.8 %, TPOT 0.2 / 1.2 %, TTFT mean 2.7 / 0.6 %, p99 13 / 10 %; on vLLM's tables 2.3 / 4.0,
    0.4 / 1.9, 2.9 / 1.4, 5.8 / 5.8 %. (vLLM's H200 profile once read an fp8-KV MLA decode table 4-7x its bf16
    one, and the TP 8 worker fell behind 10 req/s there.)"""
    w = serving.Workload(rate=10.0, input_len=2048, output_len=256)
    o = objectives.llm_serving_objective("DeepSeek-V3", workload=w, slo={"ttft_ms_p99": 2000, "tpot_ms_p99": 100},
                                         n_requests=1000)
    row = dict(gpu=H200, tp=4, attn_dp=8, ep=32, dp=3, mode="disagg", prefill_replicas=2, prefill_tp=8, prefill_ep=8,
               prefill_attn_dp=1, weight_dtype="fp8", kv_dtype="fp8", engine=engine)
    rows = pd.DataFrame([row, {**row, "attn_dp": 1, "tp": 8, "ep": 8}])
    a, s = o(rows), o.at_fidelity("simulated")(rows)
    assert a["n_gpus"].tolist() == s["n_gpus"].tolist() == [2 * 8 + 32, 2 * 8 + 8]
    # both decode pools keep up with the offered rate
    assert (a["decode_pool_req_s"] > 10.0).all()
    for col, tol in (("throughput_tok_s", 0.08), ("tpot_ms", 0.10), ("ttft_ms", 0.10), ("ttft_ms_p99", 0.35)):
        assert (np.abs(a[col] / s[col] - 1) < tol).all(), (col, a[col].tolist(), s[col].tolist())
    # the wide-EP decode pool holds several times the TP 8 one's requests/s and decodes faster
    assert a["decode_pool_req_s"].iloc[0] > 3 * a["decode_pool_req_s"].iloc[1]
    assert s["tpot_ms"].iloc[0] < 0.7 * s["tpot_ms"].iloc[1]


def test_simulate_pools_take_their_own_ep_and_attn_dp():
    w = serving.Workload(rate=20.0, input_len=1024, output_len=128, n_requests=300)
    kw = dict(weight_dtype="fp8", kv_dtype="fp8", mode="disagg", workload=w)
    m = serving.simulate(MOE, H200, tp=1, prefill=serving.Pool(tp=4, ep=4, n_workers=1),
                         decode=serving.Pool(attn_dp=4, ep=4, n_workers=2), **kw)
    assert m["n_gpus"] == 4 + 2 * 4
    # None fields inherit simulate's ep / attn_dp
    inherit = serving.simulate(MOE, H200, tp=1, ep=4, attn_dp=4, prefill=serving.Pool(tp=4, attn_dp=1, n_workers=1),
                               decode=serving.Pool(n_workers=2), **kw)
    assert inherit["n_gpus"] == m["n_gpus"]
    assert inherit["tpot_ms_mean"] == pytest.approx(m["tpot_ms_mean"])


def test_pools_that_name_their_gpus_need_no_gpu_argument():
    """`simulate` / `simulate_requests` / `capacity` of a disaggregated deployment whose pools both name their GPU
    take no ``gpu`` (the new user's call): the same run as any ``gpu`` the pools override; a pool left without one,
    or an aggregated deployment without one, is refused naming what to give."""
    import math
    w = serving.Workload(rate=8.0, input_len=1024, output_len=128, n_requests=120)
    pools = dict(mode="disagg", prefill=serving.Pool("H200", tp=2), decode=serving.Pool(gpu="H100", tp=1))
    bare = serving.simulate("Llama-3.1-8B", workload=w, **pools)
    named = serving.simulate("Llama-3.1-8B", "A100", workload=w, **pools)    # overridden by both pools
    assert bare.keys() == named.keys() and bare["n_gpus"] == 3
    assert all(bare[k] == named[k] or (isinstance(bare[k], float) and math.isnan(bare[k]) and math.isnan(named[k]))
               for k in bare)
    pd.testing.assert_frame_equal(serving.simulate_requests("Llama-3.1-8B", workload=w, **pools),
                                  serving.simulate_requests("Llama-3.1-8B", "A100", workload=w, **pools))
    slo = serving.SLO(ttft_ms=2000, tpot_ms=100, percentile="p99")
    cap = serving.capacity("Llama-3.1-8B", slo=slo, workload=w, fidelity="analytical", **pools)
    assert cap["capacity_req_s"] == serving.capacity("Llama-3.1-8B", "H100", slo=slo, workload=w,
                                                     fidelity="analytical", **pools)["capacity_req_s"] > 0
    with pytest.raises(ValueError, match="the prefill pool names no GPU type"):
        serving.simulate("Llama-3.1-8B", workload=w, mode="disagg", prefill=serving.Pool(tp=1),
                         decode=serving.Pool(gpu="H100"))
    with pytest.raises(ValueError, match="the prefill and decode pools name no GPU type"):
        serving.capacity("Llama-3.1-8B", slo=slo, workload=w, mode="disagg", prefill=serving.Pool(),
                         decode=serving.Pool())
    with pytest.raises(ValueError, match="give the deployment's GPU type"):
        serving.simulate("Llama-3.1-8B", workload=w)


def test_a_pool_with_ep_on_a_dense_model_is_refused():
    w = serving.Workload(rate=2.0, input_len=512, output_len=64, n_requests=50)
    # one rule and one message (inference.resolve.check_ep), the pool named in front of it
    with pytest.raises(ValueError, match=r"^prefill pool ep=2: expert parallelism needs a mixture-of-experts model; "
                                         r"Llama-3.1-8B is dense \(valid: ep=1\)$"):
        serving.simulate("Llama-3.1-8B", "H100", mode="disagg", prefill=serving.Pool(tp=2, ep=2),
                         decode=serving.Pool(), workload=w)
    bad_decode = (r"ep=8 must divide the tp x attn_dp = 2 x 2 = 4 GPUs it spreads the 128 experts of Qwen3-30B-A3B "
                  r"over, and be at most 128; valid ep: 1, 2, 4$")
    with pytest.raises(ValueError, match=r"^decode pool " + bad_decode):
        serving.simulate(MOE, H200, mode="disagg", prefill=serving.Pool(), decode=serving.Pool(tp=2, attn_dp=2, ep=8),
                         workload=w)
    # the same rule where it lives, the step model (an aggregated replica)
    with pytest.raises(ValueError, match=r"^StepModel\(Qwen3-30B-A3B on .* tp=2 .*\): " + bad_decode):
        serving.simulate(MOE, H200, tp=2, attn_dp=2, ep=8, workload=w)
    # the analytical model: not runnable, with the pool named in the reason
    o = objectives.llm_serving_objective("Llama-3.1-8B", workload=w)
    a = o(pd.DataFrame([dict(gpu="H100-SXM-80GB", tp=1, dp=2, mode="disagg", prefill_replicas=1, prefill_tp=2,
                             prefill_ep=2)]))
    assert a["fits"].iloc[0] == 0 and a["reason"].iloc[0].startswith("prefill pool: ep must divide")
    with pytest.raises(dse.ObjectiveError, match="prefill_attn_dp=0: must be an integer >= 1"):
        o(pd.DataFrame([dict(gpu="H100-SXM-80GB", dp=2, mode="disagg", prefill_replicas=1, prefill_attn_dp=0)]))


def test_space_gives_each_pool_its_own_ep_and_attn_dp():
    import spaces

    s = spaces.llm_serving(MOE, ["H200"], 8, modes=("agg", "disagg"), prefill_tp=[1, 2, 4], prefill_ep=[1, 2, 4],
                           attn_dp=[1, 2, 4], prefill_attn_dp=[1, 2], formats=["fp8"], kv_dtypes=["fp8"],
                           max_batch_sizes=(256,), max_num_tokens=(8192,), chunked_prefill=(True,))
    g = s.grid()
    dis, agg = g[g["mode"] == "disagg"], g[g["mode"] == "agg"]
    assert agg[["prefill_ep", "prefill_attn_dp"]].isna().all().all()
    assert ((dis["prefill_tp"] * dis["prefill_attn_dp"]) % dis["prefill_ep"] == 0).all()
    assert ((g["tp"] * g["attn_dp"]) % g["ep"] == 0).all() and (dis["prefill_ep"] != dis["ep"]).any()
    counted = dis["prefill_replicas"] * dis["prefill_tp"] * dis["prefill_attn_dp"] * dis["pp"] + \
        (dis["dp"] - dis["prefill_replicas"]) * dis["tp"] * dis["attn_dp"] * dis["pp"]
    assert (counted == dis["n_gpus"]).all()
    assert (agg["tp"] * agg["pp"] * agg["attn_dp"] == agg["n_gpus"]).all()
    m = objectives.llm_serving_objective(MOE, workload=serving.Workload(rate=20.0))(g)
    assert (m["fits"] == 1).all() and (m["n_gpus"].to_numpy() == g["n_gpus"].to_numpy()).all()


@pytest.mark.parametrize("model,kw,msg", [
    ("Llama-3.1-8B", dict(prefill_ep=[2]), r"prefill_ep=\[2\]: expert parallelism needs a mixture-of-experts model; "
                                           r"Llama-3.1-8B is dense"),
    # an EP size that does not divide the experts is allowed (redundant expert copies), one no worker's GPUs take
    # is not
    (MOE, dict(prefill_ep=[3]), r"prefill_ep=\[3\] divides no prefill worker's tp x attn_dp"),
    (MOE, dict(prefill_ep=[8], prefill_tp=[1, 2]), r"prefill_ep=\[8\] divides no prefill worker's tp x attn_dp"),
    (MOE, dict(prefill_attn_dp=[0]), r"prefill_attn_dp=\[0\]: \[0\] not allowed"),
    (MOE, dict(modes=("agg",), prefill_ep=[2]), r"add 'disagg' to modes"),
])
def test_space_refuses_per_pool_ep_every_trial_would_fail_on(model, kw, msg):
    import spaces

    kw = {"modes": ("disagg",), **kw}
    with pytest.raises(dse.SpaceError, match=msg):
        spaces.llm_serving(model, ["H200"], 8, **kw)


def test_deploy_spells_each_pools_ep_and_attention_dp():
    """A disaggregated MoE trial: prefill workers TP 8 EP 8, decode workers wide-EP (8 attention-DP ranks x TP 1,
    EP 8); each engine's flags for each pool, every one of them in the engine's shipped flag list."""
    import yaml

    from objectives import deploy
    from objectives.deploy.flags import DATA_DIR, DeployError

    cfg = {"gpu": "H200-SXM-141GB", "tp": 1, "attn_dp": 8, "ep": 8, "dp": 3, "mode": "disagg", "prefill_replicas": 1,
           "prefill_tp": 8, "prefill_ep": 8, "prefill_attn_dp": 1, "weight_dtype": "fp8", "kv_dtype": "fp8",
           "n_gpus": 24, "max_batch_size": 128}
    words = lambda c: " ".join(c.argv)  # noqa: E731
    for engine in deploy.ENGINES:
        d = deploy.commands(cfg, engine=engine, model="Qwen3-235B-A22B",
                            workload={"concurrency": 64, "input_len": 2048, "output_len": 256})
        assert [s.role for s in d.servers] == ["prefill", "decode", "decode"]
        assert d.check() == {}
        for c in d.servers:   # every --flag in the shipped flag list of its release, read from the JSON itself
            eng, ver = c.checked_against.split(" ", 1)
            flags = json.loads((DATA_DIR / f"{eng}-{ver}.json").read_text())["commands"][c.program]["flags"]
            known = lambda t: t in flags or (t.startswith("--no-") and flags.get("--" + t[5:], {}).get("negatable"))  # noqa: E731,B023
            assert [t for t in c.argv if t.startswith("--") and not known(t)] == [], c.shell()
        pre, dec = words(d.servers[0]), words(d.servers[1])
        assert all(s.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7" for s in d.servers)   # 8 GPUs each, own node
        assert (d.config["prefill_tp"], d.config["prefill_ep"], d.config["prefill_attn_dp"]) == (8, 8, 1)
        if engine == "vllm":
            assert "--tensor-parallel-size 8" in pre and "--enable-expert-parallel" in pre
            assert "--data-parallel-size" not in pre
            assert "--tensor-parallel-size 1" in dec and "--data-parallel-size 8" in dec
            assert "--enable-expert-parallel" in dec
        elif engine == "sglang":
            assert "--tp-size 8" in pre and "--ep-size 8" in pre and "--enable-dp-attention" not in pre
            assert "--tp-size 8" in dec and "--enable-dp-attention --dp-size 8" in dec and "--ep-size 8" in dec
        else:
            assert "--tp_size 8" in pre and "--ep_size 8" in pre and "--tp_size 8" in dec and "--ep_size 8" in dec
            assert "enable_attention_dp" not in yaml.safe_load(d.files["ctx_options.yaml"])
            assert yaml.safe_load(d.files["gen_options.yaml"])["enable_attention_dp"] is True
    with pytest.raises(DeployError, match="prefill_ep=2: expert parallelism needs a mixture-of-experts model"):
        deploy.commands({"gpu": "H100", "dp": 2, "mode": "disagg", "prefill_replicas": 1, "prefill_tp": 2,
                         "prefill_ep": 2}, engine="vllm", model="Llama-3.1-8B")
    with pytest.raises(DeployError, match=r"n_gpus=16 does not match the pools' GPUs: .* = 24"):
        deploy.commands({**cfg, "n_gpus": 16}, engine="sglang", model="Qwen3-235B-A22B")
    with pytest.raises(DeployError, match=r"vllm .* cannot run ep=4 with tp=8 x attn_dp=1"):
        deploy.commands({**cfg, "prefill_ep": 4}, engine="vllm", model="Qwen3-235B-A22B")


def _disagg_at(load: float, n_prefill: int) -> tuple[pd.Series, dict]:
    """Llama-3.1-8B fp8 on 3 H100 workers (n_prefill of them prefill), 1,000 requests at ``load`` x the analytical
    capacity of the deployment (the smaller pool's): the analytical row and the simulated metrics. The closed form
    (the queueing under test; the figures below are its)."""
    d = serving.Deployments.of(gpu="H100", tp=1, dp=3, mode="disagg", prefill_replicas=n_prefill, weight_dtype="fp8",
                               kv_dtype="fp8", max_batch_size=256, max_num_tokens=8192, engine="roofline")
    w1 = serving.Workload(rate=1.0, input_len=2048, output_len=256, n_requests=1000)
    cap = serving.ServingModel("Llama-3.1-8B", w1).evaluate(d).iloc[0]
    w = serving.Workload(rate=load * min(cap["prefill_pool_req_s"], cap["decode_pool_req_s"]), input_len=2048,
                         output_len=256, n_requests=1000)
    a = serving.ServingModel("Llama-3.1-8B", w).evaluate(d).iloc[0]
    s = serving.simulate("Llama-3.1-8B", "H100", weight_dtype="fp8", kv_dtype="fp8", workload=w, mode="disagg",
                         prefill=serving.Pool(n_workers=n_prefill), decode=serving.Pool(n_workers=3 - n_prefill),
                         scheduler=serving.Scheduler(max_batch_size=256, max_num_tokens=8192), engine="roofline")
    return a, s


@pytest.mark.parametrize("load", [0.5, 1.2, 2.0])
def test_an_overloaded_prefill_pool_queues_its_backlog_as_the_simulator_does(load):
    """The prefill pool (35 req/s) offered 0.5 / 1.2 / 2 x what it holds: the analytical TTFT is the run's queue
    (`run_wait`: the stationary M/D/1 wait bounded by what 1,000 requests build, plus their backlog past capacity).
    Measured, analytical / simulated mean TTFT: 46 / 55, 2,390 / 2,855, 7,107 / 7,378 ms (p99 143 / 162, 4,701 /
    5,395, 14,040 / 14,448); without the backlog the model read 14,168 ms at both overloads (the M/D/1 wait at its
    utilisation cap 0.999, whatever the rate or the run)."""
    a, s = _disagg_at(load, 1)
    assert a["ttft_ms"] == pytest.approx(s["ttft_ms_mean"], rel=0.25)
    assert a["ttft_ms_p99"] == pytest.approx(s["ttft_ms_p99"], rel=0.25)
    assert a["tpot_ms"] == pytest.approx(s["tpot_ms_mean"], rel=0.10)


def test_an_overloaded_decode_pool_queues_admission_as_the_simulator_does():
    """2 prefill + 1 decode workers at 2 x the decode pool's 46 req/s (and 1.3 x the prefill pool's 71): the prefill
    pool's backlog and the decode pool's (fed at the prefill pool's rate) are both in the TTFT, the first token being
    the decode worker's. Measured (analytical / simulated): TTFT 5,477 / 4,167 ms, TPOT 21.6 / 19.9 ms. With the
    first token from the prefill worker, the decode backlog was spread over the TPOT: TTFT 1,716 / 1,951 ms, TPOT
    36.2 / 28.3 ms; before that, 45 ms (no prefill backlog once the decode pool bound the rate) and 63.1 ms (the
    Erlang-C slot wait at its utilisation cap). The model's decode backlog stays ~30 % above the simulator's."""
    a, s = _disagg_at(2.0, 2)
    assert a["ttft_ms"] == pytest.approx(s["ttft_ms_mean"], rel=0.35)
    assert a["tpot_ms"] == pytest.approx(s["tpot_ms_mean"], rel=0.10)


def test_the_run_wait_is_bounded_by_the_run_and_grows_with_its_backlog():
    from objectives.serving.analytical import run_wait

    stationary = np.array([5.0, 1e9, 1e9])
    w = run_wait(stationary, 400.0, np.array([0.5, 1.0, 2.0]), np.array([1.0, 1.0, 1.0]))
    assert w[0] == 5.0                                              # a light queue: its stationary wait
    assert w[1] == pytest.approx(0.5319 * 20, rel=1e-3)             # at capacity: the run's random walk
    assert w[2] == pytest.approx(0.5 * 400 * 0.5)                   # past it: half the backlog n (1/X - 1/r)
    assert (run_wait(stationary, 400.0, np.array([0.5, 1.0, 2.0]), np.ones(3), "p99") >= w).all()


# ---- the closed loop of a disaggregated deployment (serving.analytical.disagg_closed_loop) ---------------------

def _closed_loop(conc, prefill_batch=1, decode_batch=256, prefill_ranks=1, decode_ranks=1, host=0.0, xfer=0.0,
                 wave=0.0):
    from objectives.serving.analytical import disagg_closed_loop
    kw = dict(model="Llama-3.1-8B", gpu=H200, tp=1, weight_dtype="fp8", kv_dtype="fp8")
    n = len(np.atleast_1d(conc))
    return disagg_closed_loop(kw, kw, np.full(n, 2048.0), np.full(n, 256.0), conc, prefill_ranks, decode_ranks,
                              prefill_batch, decode_batch, xfer, host_ms=host, wave=wave)


def test_closed_loop_couples_the_pools():
    """C clients: the deployment completes X = C / (TTFT + (O - 1) TPOT) requests, the decode pool's occupancy
    grows with C and so does its step."""
    conc = np.array([1.0, 8.0, 64.0])
    r = _closed_loop(conc)
    cycle = r["ttft_ms"] + 255.0 * r["tpot_ms"]
    assert np.allclose(r["req_per_ms"] * cycle, conc, rtol=1e-3)
    assert np.all(np.diff(r["occupancy"]) > 0) and np.all(np.diff(r["tpot_ms"]) > 0)
    assert np.all(r["occupancy"] <= conc)


def test_closed_loop_prefill_pool_at_capacity_queues_the_clients():
    """One prefill rank running one prompt at a time: many clients cannot push more requests through it than its
    capacity; the clients the decode pool does not hold wait in the prefill queue (TTFT grows, TPOT does not)."""
    r = _closed_loop(np.array([64.0, 512.0]), decode_batch=1024, decode_ranks=4)
    assert np.all(r["req_per_ms"] <= r["prefill_req_per_ms"] * (1 + 1e-9))
    assert r["req_per_ms"][1] >= 0.95 * r["prefill_req_per_ms"][1]
    assert r["ttft_ms"][1] > 5 * r["ttft_ms"][0]
    assert r["occupancy"][1] < 512.0 / 4


def test_closed_loop_decode_slots_cap_the_batch():
    """The decode pool's configured max batch caps its occupancy; the clients beyond it wait (in TTFT)."""
    small, big = (_closed_loop(np.array([256.0]), prefill_batch=8, prefill_ranks=4, decode_batch=b) for b in (8, 256))
    assert small["occupancy"][0] == 8 and big["occupancy"][0] > 8
    assert small["tpot_ms"][0] < big["tpot_ms"][0] and small["ttft_ms"][0] > 3 * big["ttft_ms"][0]
    assert small["req_per_ms"][0] * (small["ttft_ms"][0] + 255 * small["tpot_ms"][0]) == pytest.approx(256.0, 1e-3)


def test_closed_loop_first_token_from_the_decode_worker():
    """The decode worker emits the client's first token (the engines' P/D proxies): TTFT adds the handoff
    (`handoff_ms`), the TPOT is the decode step alone. A lone client finds its decode rank idle: the KV read and
    one iteration; 64 clients keep it busy: its iteration boundaries too."""
    from objectives.serving.analytical import handoff_ms
    for conc, xfer in ((1.0, 5.0), (64.0, 2.0)):
        r0, rx = (_closed_loop(np.array([conc]), host=20.0, xfer=x) for x in (0.0, xfer))
        step = rx["tpot_ms"][0]
        assert rx["tpot_ms"][0] == pytest.approx(r0["tpot_ms"][0], rel=0.02)
        if conc == 1.0:
            assert rx["ttft_ms"][0] - r0["ttft_ms"][0] == pytest.approx(xfer, rel=0.02)
            assert handoff_ms(step, xfer, 0.0) == pytest.approx(xfer + step)
        else:
            # a read shorter than half the step is done by the next boundary: the TTFT does not move
            assert xfer < 0.5 * step and rx["ttft_ms"][0] == pytest.approx(r0["ttft_ms"][0], rel=0.01)
            assert rx["ttft_ms"][0] > r0["ttft_ms"][0] - 1e-9 and r0["ttft_ms"][0] > 2.4 * step


def test_closed_loop_clients_in_phase_wait_for_their_group():
    """Clients that all wait as the start-up wave does (wave 1: every prompt arrives with the other C - 1) wait for
    the prompts ahead of them."""
    apart, phase = (_closed_loop(np.array([32.0]), prefill_batch=1, wave=w) for w in (0.0, 1.0))
    assert phase["ttft_ms"][0] > 2 * apart["ttft_ms"][0]


def test_closed_loop_start_up_wave_is_its_share_of_the_mean():
    """The run's first C prompts arrive together and are prefilled in rounds of prefill_ranks x prefill_batch, each
    waiting for half the wave's rounds beyond its own; `wave` is that wave's share of the mean TTFT, as in the
    aggregated closed form: 8 and 16 clients on 4 one-prompt ranks add wave x (C / 4 - 1) x t_k / 2 less wave x the
    steady wait (`prefill_wait_ms` without the wave; a wave of 1 + wave (C - 1) clients, the former reading, reached
    no second round here)."""
    from objectives.serving.analytical import prefill_estimates
    kw = dict(model="Llama-3.1-8B", gpu=H200, tp=1, weight_dtype="fp8", kv_dtype="fp8")
    t_k = prefill_estimates(kw, np.array([2048.0]), np.array([1.0]))["ttft_ms"].to_numpy()[1]
    for c in (4.0, 8.0, 16.0):
        r0, rw = (_closed_loop(np.array([c]), prefill_ranks=4, wave=w) for w in (0.0, 0.2))
        added = rw["ttft_ms"][0] - r0["ttft_ms"][0]
        start, steady = max(c / 4.0 - 1.0, 0.0) * 0.5 * t_k, r0["prefill_wait_ms"][0]
        # the later rounds' wait (`lockstep.round_queue`) is no longer small beside the wave: re-pinned on it
        assert steady > 0.0
        assert added == pytest.approx(0.2 * max(start - steady, 0.0), rel=0.1, abs=1e-6)
    # four clients on one rank of four prompts a step: one wave round, but its step holds all four prompts, not the
    # lone one the TTFT counts
    lone, full = prefill_estimates(kw, np.array([2048.0]), np.array([4.0]))["ttft_ms"].to_numpy()
    r0, rw = (_closed_loop(np.array([4.0]), prefill_batch=4, wave=w) for w in (0.0, 0.2))
    steady = r0["prefill_wait_ms"][0]
    assert full > 1.5 * lone and full - lone > steady
    assert rw["ttft_ms"][0] - r0["ttft_ms"][0] == pytest.approx(0.2 * (full - lone - steady), rel=0.1)


def test_closed_loop_lockstep_prefill_worker_holds_a_prompt_for_the_step_in_progress():
    """The later rounds (`lockstep.round_queue` on the clients' clock): four attention-DP ranks of one prefill worker
    step in lockstep, so a prompt reaching an idle rank while another rank's prompt runs waits for that step; the
    same four ranks as four workers of their own (the wave prefilled one prompt a step on each, which come back in
    its order as the step ends, only the outputs' drift at random) wait less. The pooled M/D/1 the form had before
    priced both alike (same ranks, same batch)."""
    from objectives.serving.analytical import disagg_closed_loop
    kw = dict(model=MOE, gpu=H200, tp=1, ep=4, weight_dtype="fp8", kv_dtype="fp8")
    conc = np.array([8.0, 16.0])
    one, four = (disagg_closed_loop({**kw, "attn_dp": a}, kw, np.full(2, 4096.0), np.full(2, 256.0), conc, 4.0, 4.0,
                                    1.0, 256.0, 0.0) for a in (4, 1))
    assert np.all(one["prefill_wait_ms"] > 1.2 * four["prefill_wait_ms"])
    assert np.all(four["prefill_wait_ms"] > 0.0)
    # at most the step in progress and the full steps queued ahead: well under the wave of C / 4 rounds
    assert np.all(one["prefill_wait_ms"] < conc / 4.0 * one["prefill_ms"] * 2.0)


def test_closed_loop_prefill_bound_root_keeps_the_clients():
    """Light and prefill-bound loads alike (one one-prompt prefill rank, 16 and 512 clients): the root is finite and
    the cycle C / X holds (the clients beyond what the pools serve wait in TTFT, `queue_ms`, ~0 at an interior root)."""
    r = _closed_loop(np.array([16.0, 512.0]), decode_batch=1024, decode_ranks=4, host=10.0, xfer=3.0)
    assert np.all(np.isfinite(r["ttft_ms"]))
    assert np.allclose(r["req_per_ms"] * (r["ttft_ms"] + 255.0 * r["tpot_ms"]), [16.0, 512.0], rtol=1e-3)
    assert r["queue_ms"][0] < 1e-6 * r["ttft_ms"][0]


def test_serving_model_closed_loop_disagg_keeps_the_clients():
    """`ServingModel.evaluate` under C closed-loop clients runs the disaggregated closed loop: what it serves is
    what C clients cycling through TTFT + (O - 1) TPOT can ask for (Little's law over the whole deployment)."""
    d = serving.Deployments.of(**BASE)
    for c in (8, 64, 512):
        w = serving.Workload(concurrency=c, input_len=2048, output_len=256)
        m = serving.ServingModel(MOE, w).evaluate(d).iloc[0]
        cycle_s = (m["ttft_ms"] + 255 * m["tpot_ms"]) / 1e3
        assert m["requests_per_s"] * cycle_s == pytest.approx(c, rel=1e-3)


def test_the_handoff_waits_for_the_decode_workers_iteration_boundaries():
    from objectives.serving.analytical import handoff_ms

    step = 10.0
    # an idle decode worker: the read, then the iteration that decodes the first token
    assert handoff_ms(step, 3.0, 0.0) == pytest.approx(13.0)
    # a busy one: half an iteration to the boundary that admits it and starts the read, the next boundary (a read
    # shorter than the iteration is done by then), the first token's iteration
    assert handoff_ms(step, 3.0, 1e3) == pytest.approx(25.0)
    # a long read: the read and half an iteration to the boundary after it
    assert handoff_ms(step, 100.0, 1e3) == pytest.approx(15.0 + 105.0)
    # continuous in the read time where the boundary switches
    assert handoff_ms(step, 5.0 - 1e-9, 1e3) == pytest.approx(handoff_ms(step, 5.0 + 1e-9, 1e3))


def test_the_simulated_handoff_at_an_idle_decode_worker_is_the_read_and_one_iteration():
    # a KV read of ~200 ms on a 1 GB/s link, one request at a time: the simulator's TTFT is the prefill and the
    # handoff the model prices for an idle worker (busy workers: the per-pool tests above, TTFT within 10 %)
    w_lo = serving.Workload(rate=0.05, input_len=3000, output_len=64, n_requests=40)
    # the closed form: no engine front end or KV connector latency on top (those: the test below)
    kw = dict(weight_dtype="fp8", kv_dtype="fp8", mode="disagg", kv_link_gbs=1.0, engine="roofline",
              prefill=serving.Pool(n_workers=1), decode=serving.Pool(n_workers=1))
    lo = serving.simulate_requests("Llama-3.1-8B", "H100", workload=w_lo, **kw)
    from objectives.inference import StepModel
    from objectives.serving.analytical import handoff_ms
    sm = StepModel("Llama-3.1-8B", "H100", weight_dtype="fp8", kv_dtype="fp8", engine="roofline")
    pre = sm.time_ms(3000, 3000 * 3001 / 2, 0, 0)
    step1 = sm.time_ms(0, 0, 1, 3001)
    xfer = float(lo["kv_transfer_ms"].iloc[0])
    assert xfer == pytest.approx(3000 * sm.kv_bytes_per_token / 1e9 * 1e3)
    assert lo["ttft_ms"].median() == pytest.approx(pre + handoff_ms(step1, xfer, 0.0), rel=0.02)


def test_tensorrt_llm_sends_the_prefill_token_as_its_decode_worker_admits_the_request(monkeypatch):
    """TensorRT-LLM's generation server returns the context server's token when it schedules the request after
    the KV read, ahead of that iteration's forward (`handoff.FIRST_TOKEN_AT_ADMISSION`); vLLM's decode server
    samples it in a forward. A lone client at an idle decode worker: the simulator's TTFT is one decode iteration
    (its TPOT) shorter than with the forward, the TPOT the same; the closed form's handoff one iteration shorter,
    idle or busy."""
    from objectives.serving import handoff

    assert handoff.first_token_forwards(["trtllm", "vllm", "sglang", None, "roofline"]).tolist() == [0, 1, 1, 1, 1]
    occ = np.array([0.0, 0.5, 3.0, 1e3])
    np.testing.assert_allclose(handoff.handoff_ms(10.0, 3.0, occ, 0.0), handoff.handoff_ms(10.0, 3.0, occ) - 10.0)
    w = serving.Workload(concurrency=1, input_len=1024, output_len=64, n_requests=8, output_spread=0.0)

    def run() -> dict:
        return serving.simulate("Llama-3.1-8B", "H100", weight_dtype="fp8", workload=w, engine="trtllm",
                                mode="disagg", prefill=serving.Pool(tp=1), decode=serving.Pool(tp=1))
    at_admit = run()
    monkeypatch.setattr(handoff, "FIRST_TOKEN_AT_ADMISSION", ())
    forward = run()
    step = forward["tpot_ms_mean"]
    assert at_admit["tpot_ms_mean"] == pytest.approx(step, rel=1e-3)
    assert forward["ttft_ms_mean"] - at_admit["ttft_ms_mean"] == pytest.approx(step, rel=0.02)


def test_the_engines_pd_front_end_and_kv_connector_in_both_fidelities(tmp_path):
    """vLLM's P/D proxy makes a request pass two API servers (its host time twice) and its KV connector may be
    slower than the link (`engine_kv_gbs`): the analytical model and the simulator both count them
    (`serving.handoff`), as the silicon slice's predictions do; without them they agree as before."""
    w = serving.Workload(rate=4.0, input_len=2048, output_len=128)
    row = dict(gpu=H200, tp=2, pp=1, dp=2, weight_dtype="fp8", kv_dtype="fp8", mode="disagg", prefill_replicas=1,
               max_batch_size=256, max_num_tokens=8192, chunked_prefill=True, engine="vllm")
    out = {}
    # "plain": no front-end time, a connector faster than the link (the link's) and without latency; "slow": 50 ms
    # of front end, 2 GB/s per GPU and 30 ms per request
    for name, front_ms, kv_gbs, kv_ms in (("plain", 1e-9, 1e9, 1e-9), ("slow", 50.0, 2.0, 30.0)):
        prof = tmp_path / f"{name}.json"
        prof.write_text(json.dumps({"format": "dse-calibrated-profile/1",
                                    "factors": {"engine_ttft_ms.vllm": front_ms, "engine_kv_gbs.vllm": kv_gbs,
                                                "engine_kv_ms.vllm": kv_ms}}))
        o = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, n_requests=400, profile=str(prof))
        rows = pd.DataFrame([row])
        out[name] = (o(rows).iloc[0], o.at_fidelity("simulated")(rows).iloc[0])
    from objectives.inference import StepModel
    kv_gpu = StepModel("Llama-3.1-8B", H200, tp=2, weight_dtype="fp8", kv_dtype="fp8").kv_bytes_per_token / 2
    read_ms = 2048 * kv_gpu / 2e9 * 1e3                                     # each GPU's shard at 2 GB/s
    for a, s in out.values():
        assert a["ttft_ms"] == pytest.approx(s["ttft_ms"], rel=0.10)
        assert a["tpot_ms"] == pytest.approx(s["tpot_ms"], rel=0.05)
    for k in (0, 1):
        extra = out["slow"][k]["ttft_ms"] - out["plain"][k]["ttft_ms"]
        # 2 x 50 ms of front end, and the read of a 2,048-token prompt: 30 ms + its bytes at 2 GB/s (plus the
        # boundary after it)
        assert extra == pytest.approx(100.0 + 30.0 + read_ms, rel=0.15), (k, extra, read_ms)


def test_engine_terms_of_a_factorized_batch_follow_each_rows_gpu():
    """4,400 deployments (prepared per distinct configuration): each row's resolved engine, host time and P/D
    passes are its own GPU's (the engine names were gathered twice and every row read vLLM)."""
    from objectives.inference.core import default_eff
    from objectives.serving.handoff import front_end, host_ms

    gpus = np.array(["H100-SXM-80GB", "MI300X", "B200", "L40S"] * 1100, dtype=object)
    kw = dict(model="Llama-3.1-8B", gpu=gpus, tp=np.ones(len(gpus), dtype=int), engine=None)
    eff = default_eff()
    front, _, engines, _ = front_end(kw, len(gpus), eff)
    assert engines[:4].tolist() == ["vllm", "roofline", "vllm", "vllm"]
    assert (engines.reshape(-1, 4) == engines[:4]).all()
    host, _ = host_ms(kw, len(gpus), eff)
    vllm_ms = eff.params["engine_ttft_ms"]["vllm"]
    np.testing.assert_allclose(host.reshape(-1, 4), [[vllm_ms, 0.0, vllm_ms, vllm_ms]] * 1100)
    np.testing.assert_allclose(front, host * np.where(engines == "vllm", 2.0, 1.0))


def test_eplb_balances_every_pool_of_the_analytical_model_and_its_capacity():
    """``eplb`` (an expert-parallel load balancer) reaches each pool's iteration costs: a prefill pool of EP 8 over
    8 attention-DP ranks changes TTFT, a decode pool of TP 8 without EP nothing; aggregated EP 8 changes the
    capacity (`ServingModel.capacity` and `serving.capacity(..., eplb=)`)."""
    moe = "Qwen3-235B-A22B"
    w = serving.Workload(rate=2.0, input_len=1024, output_len=128, n_requests=200)
    sm = serving.ServingModel(moe, w)
    dis = dict(gpu=H200, tp=8, ep=1, dp=2, mode="disagg", prefill_replicas=1, prefill_tp=1, prefill_ep=8,
               prefill_attn_dp=8, weight_dtype="fp8", kv_dtype="fp8", engine="vllm")
    d = serving.Deployments.of(**dis, eplb=[False, True])
    assert d.eplb.tolist() == [False, True] and serving.Deployments.of(**dis).eplb.tolist() == [False]
    m = sm.evaluate(d)
    assert (m["fits"] == 1).all()
    assert m["ttft_ms"].iloc[1] != pytest.approx(m["ttft_ms"].iloc[0], rel=1e-3)
    assert m["tpot_ms"].iloc[1] == pytest.approx(m["tpot_ms"].iloc[0], rel=1e-9)        # the decode pool has no EP
    assert m["prefill_pool_req_s"].iloc[1] != pytest.approx(m["prefill_pool_req_s"].iloc[0], rel=1e-3)
    slo = serving.SLO(ttft_ms=2000, tpot_ms=100, percentile="p99")
    kw = dict(tp=1, attn_dp=8, ep=8, weight_dtype="fp8", kv_dtype="fp8", engine="vllm")
    agg = serving.Deployments.of(gpu=H200, **kw, eplb=[False, True])
    cap = sm.capacity(agg, slo, tol=0.02)
    assert np.isfinite(cap).all() and cap[0] > 0 and cap[1] != pytest.approx(cap[0], rel=1e-3)
    by = {lb: serving.capacity(moe, H200, tp=8, ep=8, weight_dtype="fp8", kv_dtype="fp8", engine="vllm", slo=slo,
                               workload=w, eplb=lb, fidelity="analytical")["capacity_req_s"] for lb in (False, True)}
    assert by[False] > 0 and by[True] != pytest.approx(by[False], rel=1e-3)
    with pytest.raises(ValueError, match=r"capacity eplb='on': must be True or False"):
        serving.capacity(moe, H200, tp=8, slo=slo, eplb="on")


def test_capacity_of_an_attention_dp_deployment_and_its_command(capsys):
    """`serving.capacity` and `dse capacity` take ``attn_dp`` as `simulate` does: a wide-EP replica (TP 1 x attention
    DP 8, EP 8) is the analytical model's own capacity of that layout, and EP 8 over a TP-1 replica without
    attention DP is refused naming the valid ep."""
    from objectives.serving.cli import main

    moe = "Qwen3-235B-A22B"
    w = serving.Workload(rate=1.0, input_len=1024, output_len=128, n_requests=200)
    slo = serving.SLO(ttft_ms=2000, tpot_ms=100, percentile="p99")
    kw = dict(tp=1, ep=8, weight_dtype="fp8", kv_dtype="fp8", engine="vllm")
    got = serving.capacity(moe, H200, attn_dp=8, slo=slo, workload=w, fidelity="analytical", n_requests=200, **kw)
    sm = serving.ServingModel(moe, serving.Workload(rate=1.0, input_len=1024, output_len=128, n_requests=200))
    own = serving.Scheduler().resolved("vllm", H200)     # capacity's default budgets: vLLM's own
    d = serving.Deployments.of(gpu=H200, attn_dp=8, max_batch_size=own.max_batch_size,
                               max_num_tokens=own.max_num_tokens, **kw)
    assert got["capacity_req_s"] > 0
    assert got["capacity_req_s"] == pytest.approx(float(sm.capacity(d, slo, tol=0.05)[0]), rel=1e-9)
    with pytest.raises(ValueError, match=r"ep=8 must divide the tp x attn_dp = 1 x 1 = 1 GPUs.*valid ep: 1"):
        serving.capacity(moe, H200, slo=slo, workload=w, fidelity="analytical", **kw)
    assert main([moe, "--gpu", H200, "--tp", "1", "--attn-dp", "8", "--ep", "8", "--weight-dtype", "fp8",
                 "--kv-dtype", "fp8", "--engine", "vllm", "--tpot-ms", "100", "--ttft-ms", "2000", "--input-len",
                 "1024", "--output-len", "128", "--analytical"]) == 0
    out = capsys.readouterr().out
    assert "8 x H200-SXM-141GB (1 replica of tp=1 pp=1 attn_dp=8 ep=8)" in out and f"holds {got['capacity_req_s']:.3g} requests/s" in out


# -- capacity of a disaggregated deployment (serving.capacity / dse capacity) ------------------------------------

DENSE, H100 = "Llama-3.1-8B", "H100-SXM-80GB"
#: short prompts, long outputs: one prefill worker serves ~136 req/s, each decode worker ~14 (analytical)
DECODE_HEAVY = serving.Workload(rate=1.0, input_len=512, output_len=1024)
TIGHT = serving.SLO(ttft_ms=1000, tpot_ms=25, percentile="p99")


def _disagg_capacity(n_decode: int, **kw):
    return serving.capacity(DENSE, H100, weight_dtype="fp8", kv_dtype="fp8", slo=TIGHT, workload=DECODE_HEAVY,
                            mode="disagg", prefill=serving.Pool(n_workers=1), decode=serving.Pool(n_workers=n_decode),
                            **{"scheduler": serving.Scheduler(max_batch_size=256, max_num_tokens=8192), **kw})


def test_disaggregated_capacity_rises_with_decode_workers_until_prefill_binds():
    """The analytical capacity of 1 prefill + N decode workers grows with N while the decode pool binds (below its
    rate), then stops at the prefill pool's rate; it is the objective's capacity_req_s of the same row."""
    got = {n: _disagg_capacity(n, fidelity="analytical", tol=0.02) for n in (1, 2, 4, 12, 24)}
    caps = [got[n]["capacity_req_s"] for n in (1, 2, 4, 12, 24)]
    pre = got[1]["prefill_pool_req_s"]
    assert all(r["prefill_pool_req_s"] == pytest.approx(pre) for r in got.values())     # the prefill pool unchanged
    assert caps[0] < caps[1] < caps[2] < caps[3]
    for n in (1, 2, 4):           # decode binds: capacity just under the decode pool's rate, in proportion to N
        assert got[n]["decode_pool_req_s"] < pre
        assert 0.9 * got[n]["decode_pool_req_s"] < got[n]["capacity_req_s"] <= got[n]["decode_pool_req_s"]
    assert caps[2] == pytest.approx(2 * caps[1], rel=0.05)
    for n in (12, 24):            # prefill binds: more decode workers add nothing
        assert got[n]["decode_pool_req_s"] > pre and 0.9 * pre < got[n]["capacity_req_s"] <= pre
    assert caps[4] == pytest.approx(caps[3], rel=1e-9)
    o = objectives.llm_serving_objective(DENSE, workload=DECODE_HEAVY, slo=TIGHT, capacity=True)
    row = pd.DataFrame([dict(gpu=H100, tp=1, pp=1, dp=3, weight_dtype="fp8", kv_dtype="fp8", mode="disagg",
                             prefill_replicas=1)])
    assert o(row)["capacity_req_s"].iloc[0] == pytest.approx(got[2]["capacity_req_s"], rel=1e-9)


def test_simulated_disaggregated_capacity_is_the_edge_of_the_slo_in_simulation():
    """The simulated capacity holds when its rate is simulated as the search measures it (the same pools, workload
    and requests, over the run's steady part, `steady_verdict`) and a rate 10 % above does not; near the
    analytical one."""
    r = _disagg_capacity(2)
    cap = r["capacity_req_s"]
    assert r["n_simulations"] >= 2 and meets(r["metrics"], TIGHT)
    assert 0.8 < cap / r["analytical_req_s"] < 1.4
    for f, ok in ((1.0, True), (1.1, False)):
        w = serving.Workload(rate=cap * f, input_len=512, output_len=1024, n_requests=r["n_requests"])
        m = serving.simulate(DENSE, H100, weight_dtype="fp8", kv_dtype="fp8", workload=w, mode="disagg",
                             prefill=serving.Pool(n_workers=1), decode=serving.Pool(n_workers=2), slo=TIGHT,
                             discard="steady")
        assert (steady_verdict(m, TIGHT) == "held") is ok, (f, m["ttft_ms_p99"], m["tpot_ms_p99"], m["steady_growth"])


def test_disaggregated_capacity_refuses_bad_pools_naming_them():
    with pytest.raises(ValueError, match=r"mode='disagg' needs decode workers: decode=None"):
        serving.capacity(DENSE, H100, slo=TIGHT, mode="disagg", prefill=serving.Pool())
    with pytest.raises(ValueError, match=r"needs prefill workers: prefill='H100'; pass prefill=serving.Pool"):
        serving.capacity(DENSE, H100, slo=TIGHT, mode="disagg", prefill="H100", decode=serving.Pool())
    with pytest.raises(ValueError, match=r"dp=2: a disaggregated deployment counts its workers per pool"):
        serving.capacity(DENSE, H100, slo=TIGHT, mode="disagg", dp=2, prefill=serving.Pool(), decode=serving.Pool())
    with pytest.raises(ValueError, match=r"pools of their own are for mode='disagg'"):
        serving.capacity(DENSE, H100, slo=TIGHT, decode=serving.Pool())
    with pytest.raises(ValueError, match=r"mode='dis': valid modes are agg, disagg"):
        serving.capacity(DENSE, H100, slo=TIGHT, mode="dis")
    with pytest.raises(ValueError, match=r"capacity pools' schedulers differ in chunked_prefill \(prefill True, "
                                         r"decode False\): the analytical model holds one value of each for both "
                                         r"pools; use fidelity='simulated'"):
        serving.capacity(DENSE, H100, slo=TIGHT, mode="disagg", prefill=serving.Pool(), fidelity="analytical",
                         decode=serving.Pool(scheduler=serving.Scheduler(chunked_prefill=False)))
    with pytest.raises(ValueError, match=r"capacity prefill pool: unknown kv_dtype 'int3'; known: fp32, .*fp8"):
        serving.capacity(DENSE, H100, slo=TIGHT, mode="disagg", prefill=serving.Pool(kv_dtype="int3"),
                         decode=serving.Pool())
    with pytest.raises(ValueError, match=r"capacity decode pool: unknown weight_dtype 'fp3'; known: "):
        serving.capacity(DENSE, H100, slo=TIGHT, mode="disagg", prefill=serving.Pool(),
                         decode=serving.Pool(weight_dtype="fp3"))
    with pytest.raises(ValueError, match=r"prefill pool ep=2:.*Llama-3.1-8B is dense \(valid: ep=1\)"):
        serving.capacity(DENSE, H100, slo=TIGHT, mode="disagg", prefill=serving.Pool(ep=2), decode=serving.Pool())
    with pytest.raises(ValueError, match=r"decode pool ep=3 .*valid ep: "):
        serving.capacity(MOE, H200, tp=4, slo=TIGHT, mode="disagg", prefill=serving.Pool(), decode=serving.Pool(ep=3))
    with pytest.raises(ValueError, match=r"Llama-3.1-70B on 1 x L40S \(1 worker of tp=1 pp=1\) prefill \+ 1 x L40S \(1 worker of tp=1 pp=1\) "
                                         r"decode does not run: does not fit"):
        serving.capacity("Llama-3.1-70B", "L40S", weight_dtype="bf16", slo=TIGHT, mode="disagg",
                         prefill=serving.Pool(), decode=serving.Pool(), fidelity="analytical")


def test_each_pool_has_its_own_pipeline_depth_and_dtypes():
    """A prefill pool of bf16 weights prefills slower than one of fp8 (the decode pool's rate unchanged); a PP-2
    prefill worker counts two GPUs and holds the same decode pool. Capacity's pools price as the objective's
    `Deployments` (prefill_pp / prefill_*_dtype; missing: the decode pool's, every existing row unchanged)."""
    def ana(prefill, n_decode=24):
        return serving.capacity(DENSE, H100, weight_dtype="fp8", slo=TIGHT, workload=DECODE_HEAVY, mode="disagg",
                                prefill=prefill, decode=serving.Pool(n_workers=n_decode), fidelity="analytical")
    fp8, bf16 = ana(serving.Pool(n_workers=1)), ana(serving.Pool(n_workers=1, weight_dtype="bf16"))
    assert bf16["prefill_pool_req_s"] < 0.9 * fp8["prefill_pool_req_s"]
    assert bf16["decode_pool_req_s"] == pytest.approx(fp8["decode_pool_req_s"], rel=1e-12)
    assert bf16["capacity_req_s"] < fp8["capacity_req_s"]                   # 24 decode workers: prefill binds
    sm = serving.ServingModel(DENSE, serving.Workload(rate=4.0, input_len=512, output_len=1024))
    d = serving.Deployments.of(gpu=H100, weight_dtype="fp8", mode="disagg", dp=3, prefill_replicas=1,
                               prefill_pp=[1, 2], prefill_weight_dtype=[None, "bf16"])
    same = serving.Deployments.of(gpu=H100, weight_dtype="fp8", mode="disagg", dp=3, prefill_replicas=1)
    ev, ev0 = sm.evaluate(d), sm.evaluate(same)
    assert list(ev["n_gpus"]) == [3.0, 4.0]
    assert ev.iloc[0].equals(ev0.iloc[0])               # the decode pool's pp and dtypes by default: unchanged
    assert ev["decode_pool_req_s"].iloc[1] == pytest.approx(ev0["decode_pool_req_s"].iloc[0], rel=1e-12)


def test_capacity_command_takes_disaggregated_pools(capsys):
    from objectives.serving.cli import main

    base = [DENSE, "--gpu", H100, "--weight-dtype", "fp8", "--kv-dtype", "fp8", "--ttft-ms", "1000", "--tpot-ms",
            "25", "--input-len", "512", "--output-len", "1024", "--analytical"]
    assert main([*base, "--mode", "disagg", "--decode-workers", "2"]) == 0
    out = capsys.readouterr().out
    cap = _disagg_capacity(2, fidelity="analytical", scheduler=serving.Scheduler())   # the engine's budgets
    assert f"1 x {H100} (1 worker of tp=1 pp=1) prefill + 2 x {H100} (2 workers of tp=1 pp=1) decode fp8: holds " \
           f"{cap['capacity_req_s']:.3g} requests/s" in out
    assert f"analytical pools: prefill {cap['prefill_pool_req_s']:.3g}, decode {cap['decode_pool_req_s']:.3g}" in out
    assert main([*base, "--prefill-tp", "2"]) == 2
    assert "--prefill-tp: pools are for --mode disagg" in capsys.readouterr().err
    # the prefill pool's own pipeline depth and dtypes (its KV cache the decode pool's: it moves as stored)
    assert main([*base, "--mode", "disagg", "--decode-workers", "2", "--prefill-pp", "2", "--prefill-weight-dtype",
                 "bf16", "--prefill-kv-dtype", "fp8"]) == 0
    own = serving.capacity(DENSE, H100, weight_dtype="fp8", kv_dtype="fp8", slo=TIGHT, workload=DECODE_HEAVY,
                           mode="disagg", prefill=serving.Pool(pp=2, weight_dtype="bf16", kv_dtype="fp8"),
                           decode=serving.Pool(n_workers=2), fidelity="analytical")
    assert f"2 x {H100} (1 worker of tp=1 pp=2) weight_dtype=bf16 kv_dtype=fp8 prefill + 2 x {H100} (2 workers of tp=1 pp=1) decode" in \
        (out := capsys.readouterr().out)
    assert f"analytical pools: prefill {own['prefill_pool_req_s']:.3g}" in out
    assert own["prefill_pool_req_s"] != cap["prefill_pool_req_s"]
    assert main([*base, "--mode", "disagg", "--prefill-kv-dtype", "bf16"]) == 2
    assert "the prefill pool stores its KV cache in bf16, the decode pool in fp8" in capsys.readouterr().err
    assert main([*base, "--mode", "disagg", "--prefill-act-dtype", "fp5"]) == 2
    assert "capacity prefill pool: unknown act_dtype 'fp5'; known: " in capsys.readouterr().err
    assert main([*base, "--prefill-pp", "2"]) == 2
    assert "--prefill-pp: pools are for --mode disagg" in capsys.readouterr().err
    assert main([*base, "--mode", "disagg", "--dp", "2"]) == 2
    assert "--dp 2: a disaggregated deployment counts its workers per pool" in capsys.readouterr().err
    assert main([*base[:1], "--target-rate", "5", "--gpus", H100, "--mode", "disagg", "--ttft-ms", "1000"]) == 2
    assert "--mode: --target-rate searches" in capsys.readouterr().err


def test_smallest_disaggregated_deployment_holds_the_rate_and_its_capacity_says_so(capsys):
    """`smallest_deployment` over a disaggregated space (and `dse capacity --target-rate --modes disagg`): the
    deployment found holds the rate in simulation, its analytical capacity (`serving.capacity` with its pools) is
    at least that rate, and one decode worker fewer is below it."""
    import spaces
    from objectives.serving.cli import main

    space = spaces.llm_serving(DENSE, [H100], max_gpus=4, modes=("disagg",), formats=("w8a16",), kv_dtypes=("fp8",),
                               max_batch_sizes=(256,), max_num_tokens=(2048,), input_len=512)
    w = serving.Workload(rate=30.0, input_len=512, output_len=1024, n_requests=1000)
    obj = objectives.llm_serving_objective(DENSE, workload=w, slo=TIGHT)
    row = objectives.smallest_deployment(space, obj, 30.0)
    assert row["mode"] == "disagg" and all(row[k] <= b for k, (_, b) in TIGHT.constraints.items())
    n_p, n_d = int(row["prefill_replicas"]), int(row["dp"] - row["prefill_replicas"])
    caps = [_disagg_capacity_of(row, n_p, n, fidelity="analytical")["capacity_req_s"] for n in (n_d - 1, n_d)]
    assert caps[0] < 30.0 <= caps[1] * 1.05, caps
    assert main([DENSE, "--target-rate", "30", "--gpus", H100, "--max-gpus", "4", "--modes", "disagg", "--ttft-ms",
                 "1000", "--tpot-ms", "25", "--percentile", "p99", "--input-len", "512", "--output-len", "1024"]) == 0
    out = capsys.readouterr().out
    assert "smallest deployment holding 30 requests/s" in out and "disagg" in out


def _disagg_capacity_of(row: pd.Series, n_prefill: int, n_decode: int, **kw):
    return serving.capacity(DENSE, row["gpu"], int(row["tp"]), weight_dtype=row["weight_dtype"],
                            kv_dtype=row["kv_dtype"], slo=TIGHT, workload=DECODE_HEAVY, mode="disagg",
                            scheduler=serving.Scheduler(max_num_tokens=int(row["max_num_tokens"])),
                            prefill=serving.Pool(gpu=row.get("prefill_gpu") or None, tp=_int(row.get("prefill_tp")),
                                                 n_workers=n_prefill),
                            decode=serving.Pool(n_workers=n_decode), **kw)


def _int(v):
    return None if v is None or pd.isna(v) else int(v)


def test_pools_with_no_network_between_them_say_why_they_do_not_fit():
    """An L40S box has no scale-out network in the catalog: its prefill pool cannot hand its KV to a decode pool on
    another system. The row is unfit with its reason (it was fits = 0 with an empty reason, at both fidelities)."""
    rows = pd.DataFrame([dict(gpu="H100-SXM-80GB", n_gpus=2, tp=1, pp=1, dp=2, weight_dtype="fp8", act_dtype="fp8",
                              kv_dtype="fp8", mode="disagg", prefill_replicas=1, prefill_gpu=g, prefill_tp=1,
                              max_batch_size=64, max_num_tokens=8192) for g in ("L40S", "H100-SXM-80GB")])
    w = serving.Workload(rate=4.0, input_len=1024, output_len=128)
    obj = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, slo={"ttft_ms_p99": 2000}, n_requests=200)
    for out in (obj(rows), obj.at_fidelity("simulated")(rows)):
        assert out["fits"].tolist() == [0.0, 1.0]
        assert out["reason"].iloc[1] == ""
        assert "L40S" in out["reason"].iloc[0] and "scale-out network" in out["reason"].iloc[0]


def test_a_roofline_prefill_pool_pays_the_engines_kv_connector_in_both_fidelities(monkeypatch):
    """The KV connector runs in both pools (one engine, e.g. vLLM's NixlConnector on either side) and its latency
    per request (``engine_kv_ms``) is the deployment's, whichever pool's GPU has no profile: an MI300X prefill pool
    (the roofline: no profile) handing its KV to an H100 decode pool (vLLM's profile) pays vLLM's connector, as an
    H100 prefill pool does (it paid none: TTFT 39 against 287 ms), in the analytical model and the simulator. The
    steps a busy vLLM decode worker takes to learn of a finished read (`handoff.kv_notice_steps`, +8 ms here) are
    left out: the roofline row has none, and they are tested in test_silicon_disagg.py."""
    import objectives.serving.handoff as handoff
    from objectives.inference.core import default_eff

    monkeypatch.setattr(handoff, "KV_NOTICE_ENGINES", ())

    w = serving.Workload(rate=2.0, input_len=2048, output_len=128)
    o = objectives.llm_serving_objective(DENSE, workload=w, n_requests=300)
    base = dict(gpu=H100, tp=1, pp=1, dp=2, weight_dtype="fp8", kv_dtype="fp8", mode="disagg", prefill_replicas=1,
                max_batch_size=256, max_num_tokens=8192, chunked_prefill=True, prefill_tp=1)
    rows = pd.DataFrame([{**base, "prefill_gpu": "MI300X"}, {**base, "prefill_gpu": "MI300X", "engine": "roofline"},
                         {**base, "prefill_gpu": "MI300X", "gpu": "MI300X", "dp": 2}])
    kv_ms = default_eff().params["engine_kv_ms"]["vllm"]
    for out in (o(rows), o.at_fidelity("simulated")(rows)):
        assert (out["fits"] == 1).all()
        # the same deployment priced on the roofline throughout pays no connector (no engine to read it from): the
        # auto-resolved one pays vLLM's on top of it (its decode steps are vLLM's, a few ms apart; measured
        # 179.2 / 178.9 ms against the connector's 180.7)
        assert out["ttft_ms"].iloc[0] - out["ttft_ms"].iloc[1] == pytest.approx(kv_ms, rel=0.05), \
            out["ttft_ms"].tolist()
        # both pools on the roofline: no engine anywhere, no connector latency
        assert out["ttft_ms"].iloc[2] < 0.5 * kv_ms


def test_capacity_takes_each_pools_own_scheduler_where_the_analytical_model_can():
    """A pool's own scheduler (`Pool(scheduler=)`, as `simulate` takes it) reaches capacity's simulations; the
    analytical model prices each pool's max_batch_size and max_num_tokens and the batch knobs it holds once for
    both pools (chunked_prefill, batching, prefix_caching) from the pools' schedulers where they agree, knobs it
    does not hold (the API server's frontend_ms, the policy where it is the engine's own) may differ per pool, and
    knobs held once that differ between the pools, or a policy it does not model at the analytical fidelity, are
    refused naming them."""
    small = serving.Scheduler(max_batch_size=16, max_num_tokens=2048)

    def ana(prefill, decode, **kw):
        return serving.capacity(DENSE, H100, weight_dtype="fp8", kv_dtype="fp8", slo=TIGHT, workload=DECODE_HEAVY,
                                mode="disagg", prefill=prefill, decode=decode, fidelity="analytical", **kw)
    own = ana(serving.Pool(scheduler=small), serving.Pool(n_workers=2, scheduler=small))
    given = ana(serving.Pool(), serving.Pool(n_workers=2), scheduler=small)
    plain = ana(serving.Pool(), serving.Pool(n_workers=2))
    assert own["capacity_req_s"] == given["capacity_req_s"]
    assert own["decode_pool_req_s"] == given["decode_pool_req_s"] < 0.5 * plain["decode_pool_req_s"]   # 16 slots
    # the front end's time is the simulator's (its own per pool), not a knob the analytical model holds
    front = ana(serving.Pool(scheduler=serving.Scheduler(frontend_ms=5.0)), serving.Pool(n_workers=2))
    assert front["capacity_req_s"] == plain["capacity_req_s"]
    with pytest.raises(ValueError, match=r"schedulers differ in prefix_caching \(prefill False, decode True\)"):
        ana(serving.Pool(scheduler=serving.Scheduler(prefix_caching=False)), serving.Pool())
    # the prefill pool's own token budget: 512-token prompts, 2 a prefill iteration instead of 16, the prefill pool
    # slower per prompt (0.91x); the decode pool unchanged
    tight = ana(serving.Pool(scheduler=serving.Scheduler(max_batch_size=256, max_num_tokens=1024)),
                serving.Pool(n_workers=2))
    assert tight["prefill_pool_req_s"] < 0.95 * plain["prefill_pool_req_s"]
    assert tight["decode_pool_req_s"] == plain["decode_pool_req_s"]
    with pytest.raises(ValueError, match=r"Deployments prefill_max_num_tokens=0: must be an integer >= 1"):
        serving.Deployments.of(gpu=H100, dp=2, mode="disagg", prefill_replicas=1, prefill_max_num_tokens=0)
    assert tight["decode_pool_req_s"] == plain["decode_pool_req_s"]
    with pytest.raises(ValueError, match=r"capacity prefill pool scheduler policy='prefill_first': the analytical "
                                         r"model models policy='decode_priority' here"):
        ana(serving.Pool(scheduler=serving.Scheduler(policy="prefill_first")), serving.Pool())


def test_capacity_prices_each_pools_own_batch_knobs():
    """Pools whose schedulers differ in their batch knobs (a decode pool of 8 slots beside a prefill pool of 256:
    TensorRT-LLM's disaggregated configs set each server's own) were refused, then simulated only, the analytical
    estimate pricing both with the decode pool's. The simulations run each pool's own and so does the analytical
    model now (`Deployments.prefill_max_batch_size` / ``prefill_max_num_tokens``): its prefill pool rate is priced
    (a prefill rank batching the prompts its own budget holds, not the decode rank's 8). The capacity is the decode
    pool's 8 slots', as where both pools have them, and far below the 256-slot deployment's."""
    few = serving.Scheduler(max_batch_size=8)
    mixed = serving.capacity(DENSE, H100, weight_dtype="fp8", kv_dtype="fp8", slo=TIGHT, workload=DECODE_HEAVY,
                             mode="disagg", prefill=serving.Pool(n_workers=1),
                             decode=serving.Pool(n_workers=2, scheduler=few), tol=0.1)
    both = _disagg_capacity(2, scheduler=few, tol=0.1)
    plain = _disagg_capacity(2, tol=0.1, fidelity="analytical")
    assert mixed["prefill_pool_req_s"] > both["prefill_pool_req_s"] > 0
    assert mixed["analytical_req_s"] == pytest.approx(both["analytical_req_s"], rel=0.05)
    assert mixed["analytical_req_s"] == pytest.approx(mixed["capacity_req_s"], rel=0.15)
    assert mixed["decode_pool_req_s"] == both["decode_pool_req_s"] < 0.2 * plain["decode_pool_req_s"]
    assert mixed["n_simulations"] >= 2
    assert mixed["capacity_req_s"] == pytest.approx(both["capacity_req_s"], rel=0.15)
    assert mixed["capacity_req_s"] < 0.3 * plain["capacity_req_s"]


@pytest.mark.parametrize("n_decode", [1, 2, 4])
def test_analytical_decode_slot_wait_follows_the_simulators_routing(n_decode):
    """A handoff goes to the least-loaded decode worker (the simulator's routing), so a request waits for a decode
    slot only when every worker's slots are taken: the analytical model took each worker's own Erlang C on a
    rounded-up occupancy, which put 1 / 2 / 4 decode workers of 8 slots at ~0.9 / 0.69 / 0.57 of the simulator's
    capacity (linear in the workers where pooling is not). The chance to wait is now the pool's and the occupancy
    Little's law's: within 10 % of the simulated capacity, and no longer linear in the decode workers (12 % above:
    the simulated search's own bracket, tol 0.05, read 1.111 for two workers after the thirty-fifth round's refit)."""
    few = serving.Scheduler(max_batch_size=8)
    sim = _disagg_capacity(n_decode, scheduler=few, tol=0.05)
    ratio = sim["analytical_req_s"] / sim["capacity_req_s"]
    assert 0.9 < ratio < 1.12, ratio
    if n_decode > 1:
        one = _disagg_capacity(1, scheduler=few, fidelity="analytical")
        assert sim["analytical_req_s"] > 1.2 * n_decode * one["capacity_req_s"]


def test_space_gives_the_prefill_pool_its_own_pipeline_depth_and_format():
    """`spaces.llm_serving(prefill_pp=, prefill_formats=)`: the prefill pool's PP and (weight, activation) format as
    search dimensions, counted in the pools' GPUs, priced by the objective (a bf16 prefill pool prefills slower, the
    decode pool unchanged) and launched by `dse deploy` (the prefill workers' own --pipeline-parallel-size and
    --quantization); what every trial would fail on is refused at space build."""
    import spaces
    from dse import SpaceError
    from objectives import deploy

    kw = dict(max_gpus=4, modes=("disagg",), formats=("fp8",), kv_dtypes=("fp8",), max_batch_sizes=(256,),
              max_num_tokens=(8192,), input_len=2048)
    space = spaces.llm_serving(DENSE, [H100], prefill_pp=[1, 2], prefill_formats=["fp8", "bf16"], **kw)
    g = space.grid()
    assert set(g["prefill_pp"]) == {1, 2} and set(g["prefill_weight_dtype"]) == {"fp8", "bf16"}
    assert set(zip(g["prefill_weight_dtype"], g["prefill_act_dtype"])) == {("fp8", "fp8"), ("bf16", "bf16")}
    assert (g["prefill_replicas"] * g["prefill_tp"] * g["prefill_pp"] + (g["dp"] - g["prefill_replicas"]) * g["tp"]
            * g["pp"] == g["n_gpus"]).all()
    one = g[(g["dp"] == 2) & (g["tp"] == 1) & (g["prefill_tp"] == 1) & (g["prefill_pp"] == 1)]
    assert len(one) == 2
    o = objectives.llm_serving_objective(DENSE, workload=serving.Workload(rate=4.0, input_len=2048, output_len=128),
                                         n_requests=200)
    ev = o(one.reset_index(drop=True)).set_axis(one["prefill_weight_dtype"].tolist())
    assert ev.loc["bf16", "prefill_pool_req_s"] < 0.8 * ev.loc["fp8", "prefill_pool_req_s"]
    assert ev.loc["bf16", "decode_pool_req_s"] == pytest.approx(ev.loc["fp8", "decode_pool_req_s"], rel=1e-12)
    deep = g[(g["prefill_pp"] == 2) & (g["prefill_weight_dtype"] == "fp8")].iloc[0]
    assert o(deep.to_frame().T.reset_index(drop=True))["n_gpus"].iloc[0] == deep["n_gpus"]
    # dse deploy: each pool's own PP and format
    row = {**one[one["prefill_weight_dtype"] == "bf16"].iloc[0].to_dict(), "prefill_pp": 2, "n_gpus": 3}
    d = deploy.commands(row, engine="vllm", model=DENSE)
    pre, dec = (" ".join(map(str, s.argv)) for s in d.servers)
    assert "--pipeline-parallel-size 2" in pre and "--quantization" not in pre
    assert "--pipeline-parallel-size 1" in dec and "--quantization fp8" in dec
    assert (d.config["prefill_pp"], d.config["prefill_weight_dtype"]) == (2, "bf16")
    from objectives.deploy.flags import DeployError
    with pytest.raises(DeployError, match=r"prefill_kv_dtype='bf16' with kv_dtype='fp8': .* both pools store one"):
        deploy.commands({**row, "prefill_kv_dtype": "bf16"}, engine="vllm", model=DENSE)
    with pytest.raises(DeployError, match=r"act_dtype='fp8' .*A100-SXM-80GB \(ampere\) has none"):
        deploy.commands({**row, "prefill_gpu": "A100-SXM-80GB", "prefill_weight_dtype": "fp8",
                         "prefill_act_dtype": "fp8"}, engine="vllm", model=DENSE)
    # the pools' degrees are each their own: a decode pool restricted to TP 4 / 8 and PP 1 beside a prefill pool of
    # TP 2 and PP 2 (the prefill TP / PP were refused unless among the decode pool's choices)
    own = spaces.llm_serving("Llama-3.1-70B", ["H200-SXM-141GB"], max_gpus=16, modes=("disagg",), tp=[4, 8], pp=[1],
                             prefill_gpus=["H100-SXM-80GB"], prefill_tp=[2], prefill_pp=[2], formats=("fp8",),
                             kv_dtypes=("fp8",), max_batch_sizes=(256,), max_num_tokens=(8192,)).grid()
    assert set(own["prefill_tp"]) == {2} and set(own["prefill_pp"]) == {2} and {4} <= set(own["tp"]) <= {4, 8}
    # refused at build: a PP the model cannot split into, a format no prefill GPU runs, pools for agg only
    with pytest.raises(SpaceError, match=r"prefill_pp=\[3\]: \[3\] not allowed \(must divide the 32 layers\); "
                                         r"valid up to max_gpus=4: \[1, 2, 4\]"):
        spaces.llm_serving(DENSE, [H100], prefill_pp=[3], **kw)
    with pytest.raises(SpaceError, match=r"prefill_gpus \['H100-SXM-80GB'\] run none of the formats \['fp4'\]"):
        spaces.llm_serving(DENSE, [H100], prefill_formats=["fp4"], **kw)
    with pytest.raises(SpaceError, match=r"prefill_pp / prefill_formats"):
        spaces.llm_serving(DENSE, [H100], prefill_pp=[2], max_gpus=4)


def test_both_pools_store_one_kv_dtype():
    """The prompt's KV moves from the prefill pool to the decode pool as stored, so one deployment stores it in one
    dtype (vLLM's NixlConnector refuses a peer whose cache_dtype differs): a prefill pool without a KV dtype of its
    own stores the decode pool's as resolved (an A100 prefill pool of fp8 weights computes in bf16 and, resolved on
    its own, stored bf16 KV beside an H100 decode pool's fp8), and pools given different ones do not run, in the
    analytical model, `serving.capacity` and `simulate`."""
    w = serving.Workload(rate=2.0, input_len=1024, output_len=64, n_requests=60)
    sm = serving.ServingModel(DENSE, w)
    pools = dict(gpu=H100, weight_dtype="fp8", mode="disagg", dp=2, prefill_replicas=1, prefill_gpu="A100-SXM-80GB")
    ev = sm.evaluate(serving.Deployments.of(**pools, kv_dtype=[None, "fp8", "fp8"],
                                            prefill_kv_dtype=[None, None, "bf16"]))
    assert ev["fits"].tolist() == [1.0, 1.0, 0.0]
    assert ev["ttft_ms"].iloc[0] == ev["ttft_ms"].iloc[1]
    assert ev["prefill_pool_req_s"].iloc[0] == ev["prefill_pool_req_s"].iloc[1]
    assert "prefill pool stores its KV cache in bf16, the decode pool in fp8" in ev["reason"].iloc[2]
    with pytest.raises(ValueError, match=r"prefill pool stores its KV cache in bf16, the decode pool in fp8"):
        serving.capacity(DENSE, H100, weight_dtype="fp8", kv_dtype="fp8", slo=TIGHT, mode="disagg",
                         prefill=serving.Pool(kv_dtype="bf16"), decode=serving.Pool(), fidelity="analytical")
    sim = dict(workload=w, mode="disagg", decode=serving.Pool(), weight_dtype="fp8")
    with pytest.raises(ValueError, match=r"prefill pool stores its KV cache in bf16, the decode pool in fp8"):
        serving.simulate(DENSE, H100, kv_dtype="fp8", prefill=serving.Pool(kv_dtype="bf16"), **sim)
    own = serving.simulate(DENSE, H100, prefill=serving.Pool(gpu="A100-SXM-80GB"), **sim)
    fp8 = serving.simulate(DENSE, H100, kv_dtype="fp8", prefill=serving.Pool(gpu="A100-SXM-80GB"), **sim)
    assert own["ttft_ms_mean"] == fp8["ttft_ms_mean"]


def test_target_rate_over_disaggregated_modes_lets_each_pool_choose_its_gpu_and_tp(monkeypatch, capsys):
    """`dse capacity --target-rate --gpus H100,H200 --modes disagg` searches prefill and decode pools each with its
    own GPU type and TP (as its help says: the space's ``prefill_gpus`` / ``prefill_tp``; it searched pools of one
    GPU type and TP), and the printed deployment names GPUs by their catalog names."""
    import importlib

    from objectives.serving.cli import main

    cap_mod = importlib.import_module("objectives.serving.capacity")    # the module (serving.capacity: its function)

    seen = {}

    def fake(space, objective, rate, **kw):
        seen["space"] = space
        return pd.Series({"mode": "disagg", "gpu": "H200-SXM-141GB", "n_gpus": 3, "tp": 1, "prefill_gpu": H100,
                          "prefill_tp": 1, "fits": 1.0})
    monkeypatch.setattr(cap_mod, "smallest_deployment", fake)
    assert main([DENSE, "--target-rate", "30", "--gpus", "H100,H200", "--max-gpus", "4", "--modes", "disagg",
                 "--ttft-ms", "1000", "--tpot-ms", "25", "--input-len", "512", "--output-len", "1024"]) == 0
    params = seen["space"].params
    assert set(params["prefill_gpu"].choices) == {H100, "H200-SXM-141GB"}
    assert set(params["prefill_tp"].choices) == set(params["tp"].choices)
    assert "prefill_gpu" in capsys.readouterr().out
    from objectives.serving.capacity import deployment_words
    assert deployment_words("H200", 1, 1, prefill=serving.Pool(gpu="H100"), decode=serving.Pool()) == \
        f"1 x {H100} (1 worker of tp=1 pp=1) prefill + 1 x H200-SXM-141GB (1 worker of tp=1 pp=1) decode"
    # the GPUs counted first, the replicas apart: a wide-EP replica is 8 GPUs, not "1 x H200" (it read as one)
    assert deployment_words("H200", 1, 1, dp=2, ep=8, attn_dp=8) == \
        "16 x H200-SXM-141GB (2 replicas of tp=1 pp=1 attn_dp=8 ep=8)"


def test_quality_of_a_disaggregated_deployment_is_its_lower_precision_pools():
    """The prefill pool computes the prompt's KV cache (and the decode pool every output token from it), so a
    deployment's quality proxy is the lower of its two pools' formats: an fp8 prefill pool beside a bf16 decode pool
    reads fp8's accuracy recovery, not bf16's (the objective read the decode pool's only)."""
    from objectives import accuracy

    o = objectives.llm_serving_objective(DENSE, workload=serving.Workload(rate=2.0, input_len=1024, output_len=64),
                                         n_requests=100)
    row = dict(gpu=H100, tp=1, pp=1, dp=2, mode="disagg", prefill_replicas=1, weight_dtype="bf16", act_dtype="bf16",
               kv_dtype="fp8", max_batch_size=64, max_num_tokens=8192)
    out = o(pd.DataFrame([{**row, "prefill_weight_dtype": "fp8", "prefill_act_dtype": "fp8"},
                          {**row, "prefill_weight_dtype": "bf16", "prefill_act_dtype": "bf16"}, row]))
    fp8, bf16 = accuracy.quality("fp8", "fp8", "fp8"), accuracy.quality("bf16", "bf16", "fp8")
    assert fp8 < bf16
    assert out["quality"].tolist() == [pytest.approx(fp8), pytest.approx(bf16), pytest.approx(bf16)]
