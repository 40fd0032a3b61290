"""Prefix caching end to end: the analytical hit rate (`serving.prefix`) against the simulator's LRU cache, the
cached prefill's price, the knob in the analytical model, the objective (both fidelities), the space and deploy."""
from __future__ import annotations

import numpy as np
import pytest

import objectives
import spaces
from dse import ObjectiveError, SpaceError
from objectives import deploy, inference
from objectives.deploy import DeployError
from objectives.serving import Dist, Scheduler, Trace, Workload, simulate, simulate_costs, traces
from objectives.serving.analytical import Deployments, ServingModel, cached_prefill_ms
from objectives.serving.prefix import prefix_table


class Affine:
    """Iteration time (ms) affine in the iteration's work."""

    kv_bytes_per_token = 131072.0
    n_gpus = 1

    def __init__(self, kv_capacity_tokens: int) -> None:
        self.kv_capacity_tokens = kv_capacity_tokens

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        return 5.0 + 0.02 * n_prefill_tokens + 1e-7 * prefill_attn_pairs + 0.02 * n_decode_seqs \
            + 1e-5 * decode_kv_tokens


def _mooncake(n: int = 300, rate: float = 0.5) -> Workload:
    return Workload(trace=traces.load_sample("mooncake_conversation").head(n).to_rate(rate))


def _unhashed(w: Workload) -> Workload:
    """The same requests without their hash blocks (no prefix is known to be shared)."""
    t = w.trace
    assert isinstance(t, Trace)
    return Workload(trace=Trace(t.arrival_s, t.input_tokens, t.output_tokens))


@pytest.mark.parametrize("kv", [150_000, 400_000, 2_000_000])
def test_analytical_hit_rate_is_the_simulators_lru_on_one_replica(kv):
    # the simulator holds max(1, kv_blocks * 16 // 512) hash blocks; the stack distances give the same hits
    w = _mooncake(600)
    m = simulate_costs(Affine(kv), workload=w, scheduler=Scheduler(kv_capacity_tokens=kv))
    tab = prefix_table(w)
    assert tab is not None
    ana = float(tab.hit_rate(np.array([(kv // 16) * 16 // 512]))[0])
    assert m["prefix_cache_hit_rate"] > 0.03
    assert ana == pytest.approx(m["prefix_cache_hit_rate"], abs=0.002)


def test_hit_rate_grows_with_the_cache_and_is_zero_without_hash_blocks():
    w = _mooncake(600)
    tab = prefix_table(w)
    assert tab is not None
    rates = tab.hit_rate(np.array([1, 100, 1_000, 10_000, 1e9]))
    assert np.all(np.diff(rates) >= 0) and rates[-1] > rates[0]
    assert 0.1 < rates[-1] < 0.3                      # an unbounded cache: every block seen before
    assert prefix_table(_unhashed(w)) is None
    with pytest.raises(ValueError, match="replicas=0"):
        prefix_table(w, 0)


def test_cached_prefill_prices_the_new_tokens_against_the_whole_prompt():
    d = Deployments.of(gpu=["H100", "H200"], tp=[1, 2], weight_dtype="fp8", engine=[None, "roofline"])
    kw = ServingModel("Llama-3.1-8B", Workload(rate=1.0))._kw(d)
    full = inference.estimate(**kw, batch_size=np.array([1.0, 4.0]), input_len=8192, output_len=1)["ttft_ms"]
    assert cached_prefill_ms(kw, np.array([1.0, 4.0]), 8192, 0.0) == pytest.approx(full.to_numpy(), rel=1e-12)
    half = cached_prefill_ms(kw, 1.0, 8192, 4096.0)
    whole = inference.estimate(**kw, batch_size=1, input_len=8192, output_len=1)["ttft_ms"].to_numpy()
    short = inference.estimate(**kw, batch_size=1, input_len=4096, output_len=1)["ttft_ms"].to_numpy()
    # fewer tokens than the whole prompt, more attention than a prompt of only the new tokens
    assert np.all(half < whole)
    assert np.all(half > short)
    # the simulator's iteration cost of the same chunk (its StepModel) prices the same work
    sm = inference.StepModel("Llama-3.1-8B", "H100", tp=1, weight_dtype="fp8")
    assert half[0] == pytest.approx(sm.time_ms(4096, 4096 * (8192 + 4096 + 1) / 2, 0, 0), rel=1e-9)


def test_analytical_knob_cuts_ttft_on_a_mooncake_trace_and_changes_nothing_without_hash_blocks():
    w = _mooncake(300)
    d = Deployments.of(gpu="H100", tp=1, weight_dtype="fp8", prefix_caching=[False, True])
    m = ServingModel("Llama-3.1-8B", w).evaluate(d)
    assert m["prefix_hit_rate"].tolist()[0] == 0.0 and m["prefix_hit_rate"].iloc[1] > 0.02
    assert m["ttft_ms"].iloc[1] < m["ttft_ms"].iloc[0]
    assert m["ttft_ms_p99"].iloc[1] < m["ttft_ms_p99"].iloc[0]
    plain = ServingModel("Llama-3.1-8B", _unhashed(w)).evaluate(d)
    assert plain["prefix_hit_rate"].tolist() == [0.0, 0.0]
    assert plain["ttft_ms"].iloc[0] == plain["ttft_ms"].iloc[1] == m["ttft_ms"].iloc[0]
    # a synthetic workload has no shared prefix either
    syn = ServingModel("Llama-3.1-8B", Workload(rate=2.0, input_len=2048, output_len=256)).evaluate(d)
    assert syn["prefix_hit_rate"].tolist() == [0.0, 0.0]
    assert syn["ttft_ms"].iloc[0] == syn["ttft_ms"].iloc[1]


@pytest.mark.parametrize("mode", ["agg", "disagg", "plain", "static"])
def test_every_serving_path_prices_the_cached_prefill(mode):
    w = _mooncake(200)
    kw = dict(gpu="H100", tp=1, weight_dtype="fp8", prefix_caching=[False, True])
    if mode == "disagg":
        kw.update(mode="disagg", dp=2, prefill_replicas=1)
    elif mode == "plain":
        kw.update(chunked_prefill=False, max_num_tokens=131072)
    elif mode == "static":
        kw.update(batching="static", max_num_tokens=131072)
    m = ServingModel("Llama-3.1-8B", w).evaluate(Deployments.of(**kw))
    assert m["prefix_hit_rate"].iloc[1] > 0.02
    assert m["ttft_ms"].iloc[1] < m["ttft_ms"].iloc[0]


def test_analytical_and_simulated_hit_rates_agree_with_a_real_step_model():
    # tolerance: 0.005 absolute on one replica (the only difference: blocks enter the cache at arrival here, at
    # the end of the prefill there)
    w = _mooncake(300)
    a = ServingModel("Llama-3.1-8B", w).evaluate(Deployments.of(gpu="H100", tp=1, weight_dtype="fp8"))
    s = simulate("Llama-3.1-8B", "H100", 1, weight_dtype="fp8", workload=w, scheduler=Scheduler.of_knobs())
    assert a["prefix_hit_rate"].iloc[0] == pytest.approx(s["prefix_cache_hit_rate"], abs=0.005)
    s_off = simulate("Llama-3.1-8B", "H100", 1, weight_dtype="fp8", workload=w,
                     scheduler=Scheduler.of_knobs(prefix_caching=False))
    assert s["ttft_ms_mean"] < s_off["ttft_ms_mean"]


def test_deployments_refuse_a_bad_prefix_caching_value():
    with pytest.raises(ValueError, match="prefix_caching"):
        Deployments.of(gpu="H100", prefix_caching="yes")
    assert Deployments.of(gpu="H100").prefix_caching.tolist() == [True]           # the engines' default
    assert Deployments.of(gpu="H100", prefix_caching=[None]).prefix_caching.tolist() == [True]


def test_objective_knob_and_metric_at_both_fidelities():
    import pandas as pd

    w = _mooncake(150)
    cfg = pd.DataFrame({"gpu": ["H100", "H100"], "tp": [1, 1], "weight_dtype": ["fp8", "fp8"],
                        "prefix_caching": [False, True]})
    for fidelity in ("analytical", "simulated"):
        obj = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, fidelity=fidelity)
        m = obj(cfg)
        assert m["prefix_hit_rate"].iloc[0] == 0.0 and m["prefix_hit_rate"].iloc[1] > 0.02, fidelity
        assert m["ttft_ms"].iloc[1] < m["ttft_ms"].iloc[0], fidelity
    # the knob's default is on (every engine's); a bad default is named
    obj = objectives.llm_serving_objective("Llama-3.1-8B", workload=w)
    assert obj(cfg[["gpu", "tp", "weight_dtype"]].head(1))["prefix_hit_rate"].iloc[0] > 0.02
    with pytest.raises(ObjectiveError, match="prefix_caching='on'"):
        objectives.llm_serving_objective("Llama-3.1-8B", workload=w, defaults={"prefix_caching": "on"})
    bad = cfg.assign(prefix_caching=["on", "off"])
    with pytest.raises(ObjectiveError, match="prefix_caching"):
        objectives.llm_serving_objective("Llama-3.1-8B", workload=w)(bad)


def test_space_knob_and_bad_values():
    s = spaces.llm_serving("Llama-3.1-8B", ["H100"], 2, prefix_caching=(False, True))
    assert list(s.params["prefix_caching"].choices) == [False, True]
    assert len(s.grid()) == 2 * len(spaces.llm_serving("Llama-3.1-8B", ["H100"], 2).grid())
    for bad in ((1, 0), (), True, ("yes",)):
        with pytest.raises(SpaceError, match="prefix_caching"):
            spaces.llm_serving("Llama-3.1-8B", ["H100"], 2, prefix_caching=bad)


@pytest.mark.parametrize("engine,flag", [("vllm", "--no-enable-prefix-caching"), ("sglang", "--disable-radix-cache")])
def test_deploy_turns_the_prefix_cache_off_with_each_engines_flag(engine, flag):
    on = deploy.commands({"gpu": "H100", "tp": 2}, engine=engine, model="Llama-3.1-8B")
    off = deploy.commands({"gpu": "H100", "tp": 2, "prefix_caching": False}, engine=engine, model="Llama-3.1-8B")
    assert flag in off.servers[0].argv and flag not in on.servers[0].argv
    assert not any("prefix" in a or "radix" in a for a in on.servers[0].argv)   # on: the engine's default
    assert off.check() == {} and on.check() == {}


def test_deploy_trtllm_block_reuse_and_bad_values():
    on = deploy.commands({"gpu": "H100", "tp": 2}, engine="trtllm", model="Llama-3.1-8B")
    off = deploy.commands({"gpu": "H100", "tp": 2, "prefix_caching": "false"}, engine="trtllm", model="Llama-3.1-8B")
    assert "enable_block_reuse" not in "".join(on.files.values())
    assert "enable_block_reuse: false" in "".join(off.files.values())
    d = deploy.commands({"gpu": "H100", "mode": "disagg", "dp": 2, "prefill_replicas": 1, "prefix_caching": False},
                        engine="sglang", model="Llama-3.1-8B")
    assert all("--disable-radix-cache" in s.argv for s in d.servers)
    with pytest.raises(DeployError, match="prefix_caching='maybe'"):
        deploy.commands({"gpu": "H100", "prefix_caching": "maybe"}, engine="vllm", model="Llama-3.1-8B")


# ---- a shared prefix stated by the workload (a system prompt) --------------------------------------------------

def test_shared_prefix_blocks_share_the_whole_blocks_of_the_prefix_only():
    from objectives.serving.workload import shared_prefix_blocks

    hid, off = shared_prefix_blocks(np.array([40, 20, 8]), 24, block_tokens=8)
    blocks = [hid[off[i]:off[i + 1]].tolist() for i in range(3)]
    assert [len(b) for b in blocks] == [5, 3, 1]
    # the 24 shared tokens are 3 whole blocks; a 20-token prompt holds 2 of them whole, its third block is its own
    assert blocks[0][:3] == [0, 1, 2] and blocks[1][:2] == [0, 1] and blocks[2] == [0]
    tails = blocks[0][3:] + blocks[1][2:]
    assert len(set(tails)) == len(tails) and not set(tails) & {0, 1, 2}


def test_shared_prefix_hit_rate_and_ttft_agree_with_the_simulator():
    w = Workload(rate=4.0, input_len=1024, output_len=128, n_requests=300, shared_prefix=512)
    sm = ServingModel("Llama-3.1-8B", w)
    d = Deployments.of(gpu="H100", tp=1, weight_dtype="fp8", prefix_caching=[False, True])
    a = sm.evaluate(d)
    sims = [simulate("Llama-3.1-8B", "H100", 1, weight_dtype="fp8", workload=w,
                     scheduler=Scheduler.of_knobs(prefix_caching=pc)) for pc in (False, True)]
    # every prompt after the first finds the 512 shared tokens: 0.5 of its prompt
    assert a["prefix_hit_rate"].iloc[1] == pytest.approx(0.5 * 299 / 300, abs=1e-3)
    assert a["prefix_hit_rate"].iloc[1] == pytest.approx(sims[1]["prefix_cache_hit_rate"], abs=0.005)
    # half the prompt cached: the prefill halves, the engine's front end (~35 ms of ~55, fitted) does not
    assert a["ttft_ms"].iloc[1] < 0.9 * a["ttft_ms"].iloc[0]
    assert sims[1]["ttft_ms_mean"] < 0.9 * sims[0]["ttft_ms_mean"]
    # tolerance: 10 % on the mean TTFT with caching (measured 2 % here)
    assert a["ttft_ms"].iloc[1] == pytest.approx(sims[1]["ttft_ms_mean"], rel=0.10)


def test_shared_prefix_bad_values_are_named():
    with pytest.raises(ValueError, match="shared_prefix=-1"):
        Workload(rate=1.0, shared_prefix=-1)
    with pytest.raises(TypeError, match="shared_prefix=1.5"):
        Workload(rate=1.0, shared_prefix=1.5)
    with pytest.raises(ValueError, match="carries hash ids"):
        Workload(trace=traces.load_sample("mooncake_conversation").head(10), shared_prefix=512)
    # a prefix longer than every prompt it is counted in (a typo: 20480 for 2048) was capped at the prompt silently
    with pytest.raises(ValueError, match=r"shared_prefix=2048 .*longest prompt.* 1024 tokens"):
        Workload(rate=1.0, input_len=1024, shared_prefix=2048)
    with pytest.raises(ValueError, match=r"shared_prefix=300 .*longest prompt.* 200 tokens"):
        Workload(trace=traces.Trace(np.array([0.0, 1.0]), [100, 200], [5, 5]), shared_prefix=300)
    with pytest.raises(ValueError, match=r"shared_prefix=600 .*longest prompt.* 500 tokens"):
        Workload(rate=1.0, input_len=Dist("uniform", low=100, high=900, max=500), shared_prefix=600)
    assert Workload(rate=1.0, input_len=1024, shared_prefix=1024).shared_prefix == 1024    # all of it, as written
    assert Workload(rate=1.0, input_len=Dist("normal", mean=512, std=256), shared_prefix=600).shared_prefix == 600


def test_objective_simulates_the_shared_prefix_it_was_given():
    import pandas as pd

    w = Workload(rate=4.0, input_len=1024, output_len=64, shared_prefix=512)   # n_requests from the objective
    cfg = pd.DataFrame({"gpu": ["H100"], "tp": [1], "weight_dtype": ["fp8"]})
    for fidelity in ("analytical", "simulated"):
        m = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, fidelity=fidelity, n_requests=200)(cfg)
        assert m["prefix_hit_rate"].iloc[0] == pytest.approx(0.5 * 199 / 200, abs=0.005), fidelity


def test_deploy_benchmark_sends_the_shared_prefix():
    w = Workload(rate=4.0, input_len=2048, output_len=256, shared_prefix=1024)
    v = deploy.commands({"gpu": "H100"}, engine="vllm", model="Llama-3.1-8B", workload=w).benchmark
    assert v is not None
    argv = list(v.argv)
    # vLLM's random dataset: prompt = one shared random prefix + --random-input-len tokens of its own
    assert argv[argv.index("--random-prefix-len") + 1] == "1024"
    assert argv[argv.index("--random-input-len") + 1] == "1024"
    s = deploy.commands({"gpu": "H100"}, engine="sglang", model="Llama-3.1-8B", workload=w)
    assert any("generated-shared-prefix" in n for n in s.notes)
    plain = deploy.commands({"gpu": "H100"}, engine="vllm", model="Llama-3.1-8B",
                            workload=Workload(rate=4.0, input_len=2048, output_len=256)).benchmark
    assert plain is not None and "--random-prefix-len" not in plain.argv
    with pytest.raises(DeployError, match="shared_prefix=-5"):
        deploy.commands({"gpu": "H100"}, engine="vllm", model="Llama-3.1-8B",
                        workload={"rate": 2.0, "shared_prefix": -5})


# ---- the CLI: `dse capacity` reaches the knob and the workload's shared prefix --------------------------------

def test_dse_capacity_takes_a_shared_prefix_and_turns_prefix_caching_off(capsys, monkeypatch):
    """`dse capacity --shared-prefix N` (every prompt starts with the same N tokens: `Workload.shared_prefix`) and
    `--no-prefix-caching` (`Scheduler.prefix_caching`, the engines' switch off) reach the capacity search, as
    `serving.capacity` computes it with those arguments; the smallest-deployment search hands the knob to the
    objective (defaults= prefix_caching) and the shared prefix to its workload."""
    import sys

    from objectives.serving import SLO, capacity
    from objectives.serving.cli import main

    capacity_module = sys.modules["objectives.serving.capacity"]   # the package's name `capacity` is the function

    args = ["Llama-3.1-8B", "--gpu", "H100", "--weight-dtype", "fp8", "--ttft-ms", "300", "--tpot-ms", "100",
            "--input-len", "4096", "--output-len", "64", "--analytical"]
    slo = SLO(ttft_ms=300, tpot_ms=100, percentile="p99")

    def want(shared: int, caching: bool) -> float:
        w = Workload(rate=1.0, input_len=4096, output_len=64, n_requests=1000, shared_prefix=shared)
        return capacity("Llama-3.1-8B", "H100", weight_dtype="fp8", slo=slo, workload=w, fidelity="analytical",
                        scheduler=Scheduler(prefix_caching=caching))["capacity_req_s"]

    got = {}
    for extra, key in (([], (0, True)), (["--shared-prefix", "3072"], (3072, True)),
                       (["--shared-prefix", "3072", "--no-prefix-caching"], (3072, False))):
        assert main([*args, *extra]) == 0
        out = capsys.readouterr().out
        got[key] = want(*key)
        assert f"holds {got[key]:.3g} requests/s" in out, (extra, out)
    # the shared prefix raises the capacity only with the cache on
    assert got[(3072, True)] > 1.2 * got[(0, True)]
    assert f"{got[(3072, False)]:.3g}" == f"{got[(0, True)]:.3g}"
    assert main([*args, "--shared-prefix", "-5"]) == 2
    assert "shared_prefix=-5" in capsys.readouterr().err

    seen = {}

    def fake_smallest(space, obj, rate, fidelity="simulated"):
        seen.update(defaults=dict(obj.defaults), shared=obj.workload.shared_prefix, fidelity=fidelity)
        import pandas as pd
        return pd.Series({"gpu": "H100", "n_gpus": 1})

    monkeypatch.setattr(capacity_module, "smallest_deployment", fake_smallest)
    assert main(["Llama-3.1-8B", "--target-rate", "4", "--gpus", "H100", "--max-gpus", "1", "--ttft-ms", "500",
                 "--shared-prefix", "1024", "--no-prefix-caching"]) == 0
    assert seen == {"defaults": {"prefix_caching": False}, "shared": 1024, "fidelity": "simulated"}


# ---- the steady state of cached prompts: the new tokens attend to the whole prompt, the decodes read it all -----

@pytest.mark.parametrize("engine", ["roofline", None])
def test_the_steady_state_of_cached_prompts_prices_the_whole_context(engine):
    """The steady state of requests whose prompts are 3/4 cached ran at a prompt of only its new tokens: their
    attention over the cached tokens and the decodes' reads of the cached KV went uncounted (iteration 16.0 ms,
    where the simulator's StepModel prices the same iteration's work at 27.2 ms: Llama-3.1-8B fp8 on an H100, 64
    users, 8,192-token prompts sharing 6,144). Each iteration of the steady state now carries that work: on the
    closed form (roofline) it is StepModel's iteration on the same chunk; on a measured profile (whose steady state
    splits prefill and decode iterations) it adds what StepModel adds; an uncached deployment is unchanged."""
    L, osl, mnt = 8192, 256, 8192
    w = Workload(concurrency=64, input_len=L, output_len=osl, n_requests=400, shared_prefix=6144)
    d = Deployments.of(gpu="H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", engine=engine, max_num_tokens=mnt,
                       prefix_caching=[False, True])
    m = ServingModel("Llama-3.1-8B", w).evaluate(d)
    sm = inference.StepModel("Llama-3.1-8B", "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", engine=engine)

    def iteration(i, hit, whole):
        """(the model's mean iteration, StepModel's on the same work: whole context or only the new tokens)"""
        N, new = m["batch_size"].iloc[i], L - hit
        n_it = max(osl, N * (new + osl) / mnt)
        T, D = N * new / n_it, N * (osl - 1) / n_it
        ctx = L if whole else new
        return m["tpot_ms"].iloc[i] * osl / n_it, sm.time_ms(T, T * (ctx + hit * whole + 1) / 2, D, D * (ctx + osl / 2))

    hit = min(round(m["prefix_hit_rate"].iloc[1] * L), L - 1)
    assert hit > 6000
    got, step = iteration(1, hit, True)
    got0, step0 = iteration(0, 0, True)
    _, step_new = iteration(1, hit, False)
    if engine == "roofline":
        assert got == pytest.approx(step, rel=2e-3)
        assert got0 == pytest.approx(step0, rel=2e-3)
    else:   # the measured profile's split iterations: what StepModel adds for the cached context, added
        N, new = m["batch_size"].iloc[1], L - hit
        # (at the workload's clients: the closed loop splits the cycle as they do, `estimate.cycle_split`)
        short = inference.max_throughput("Llama-3.1-8B", "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8",
                                         input_len=new, output_len=osl, max_batch_size=N, max_num_tokens=mnt,
                                         concurrency=64)
        as_new = short["tpot_ms"].iloc[0] * osl / max(osl, N * (new + osl) / mnt)
        assert step > 1.5 * step_new
        assert got - as_new == pytest.approx(step - step_new, rel=0.02)
    # the uncached row: what max_throughput gives for whole prompts at the same clients, unchanged
    mt = inference.max_throughput("Llama-3.1-8B", "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", engine=engine,
                                  input_len=L, output_len=osl, max_batch_size=m["batch_size"].iloc[0],
                                  max_num_tokens=mnt, concurrency=64)
    assert m["tpot_ms"].iloc[0] == pytest.approx(mt["tpot_ms"].iloc[0], rel=1e-12)
