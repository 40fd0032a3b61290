"""Static (request-level) batching as a scheduler policy: a batch is formed when the replica is idle, runs until
its last request finishes, and nobody joins meanwhile; and the space / objective knob that selects it."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives import serving
from objectives.serving import Scheduler, Workload, simulate_costs

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Affine:
    """Iteration time (ms) affine in the work of the iteration, the shape of StepModel's decode regime."""

    kv_bytes_per_token = 131072.0
    n_gpus = 1

    def __init__(self, kv_capacity_tokens: int = 400_000) -> None:
        self.kv_capacity_tokens = kv_capacity_tokens

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        return 5.0 + 0.02 * n_prefill_tokens + 1e-7 * prefill_attn_pairs + 0.02 * n_decode_seqs \
            + 1e-5 * decode_kv_tokens


def _trace(arrival_s, inp, out) -> Workload:
    return Workload(trace=pd.DataFrame({"arrival_s": arrival_s, "input_tokens": inp, "output_tokens": out}))


def test_a_later_arrival_waits_for_the_whole_static_batch():
    # A (long output) starts alone at t=0; B arrives 50 ms later with a short output
    w = _trace([0.0, 0.05], [200, 200], [300, 5])
    cont = simulate_costs(Affine(), workload=w, scheduler=Scheduler(), per_request=True)
    stat = simulate_costs(Affine(), workload=w, scheduler=Scheduler(batching="static"), per_request=True)
    a_fin = stat["finish_s"].iloc[0]
    assert stat["first_token_s"].iloc[1] >= a_fin                   # B's first token only after A is done
    assert stat["ttft_ms"].iloc[1] >= (a_fin - 0.05) * 1e3
    assert cont["first_token_s"].iloc[1] < 0.1 * cont["finish_s"].iloc[0]   # continuous: B joins at once
    assert cont["finish_s"].iloc[1] < cont["finish_s"].iloc[0]             # ... and leaves before A
    # A alone is unaffected by the policy until B would have joined: same first token
    assert stat["first_token_s"].iloc[0] == pytest.approx(cont["first_token_s"].iloc[0])


@FAST
@given(n=st.integers(1, 30), m=st.integers(1, 8), seed=st.integers(0, 10), chunked=st.booleans(),
       policy=st.sampled_from(["decode_priority", "prefill_first"]))
def test_static_batches_are_consecutive_groups_that_do_not_overlap(n, m, seed, chunked, policy):
    w = Workload(rate=math.inf, input_len=serving.Dist("uniform", low=1, high=300),
                 output_len=serving.Dist("uniform", low=1, high=60), n_requests=n, seed=seed)
    s = Scheduler(max_batch_size=m, max_num_tokens=512, chunked_prefill=chunked, policy=policy, batching="static")
    df = simulate_costs(Affine(), workload=w, scheduler=s, per_request=True)
    assert (df["tokens_emitted"] == df["output_tokens"]).all() and (df["preemptions"] == 0).all()
    groups = [df.iloc[g:g + m] for g in range(0, n, m)]                 # FIFO: batch g = requests g*m .. g*m+m-1
    for prev, nxt in zip(groups, groups[1:]):
        assert nxt["first_token_s"].min() >= prev["finish_s"].max() - 1e-12


def test_static_batch_is_limited_by_whole_sequences_in_the_kv_cache():
    # 4 requests of 1000 + 1000 tokens at t=0 and room for ~2 whole sequences: batches of two
    w = Workload(rate=math.inf, input_len=1000, output_len=1000, n_requests=4)
    df = simulate_costs(Affine(kv_capacity_tokens=4200), workload=w,
                        scheduler=Scheduler(batching="static", max_batch_size=64), per_request=True)
    assert df["first_token_s"].iloc[2] >= df["finish_s"].iloc[:2].max()
    assert df["first_token_s"].iloc[1] < df["finish_s"].iloc[0]
    assert (df["preemptions"] == 0).all()


def test_continuous_beats_static_on_mixed_lengths():
    w = Workload(rate=20.0, input_len=serving.Dist("uniform", low=50, high=500),
                 output_len=serving.Dist("lognormal", mean=150, std=200, max=2000), n_requests=400, seed=1)
    c = simulate_costs(Affine(), workload=w, scheduler=Scheduler(max_batch_size=32))
    s = simulate_costs(Affine(), workload=w, scheduler=Scheduler(max_batch_size=32, batching="static"))
    assert s["ttft_ms_p99"] > 2 * c["ttft_ms_p99"]
    assert s["e2e_ms_mean"] > c["e2e_ms_mean"]


def test_bad_batching_value_lists_the_valid_ones():
    with pytest.raises(ValueError, match="batching='dynamic': valid values are continuous, static"):
        Scheduler(batching="dynamic")
    with pytest.raises(TypeError, match="prefix_caching=1"):
        Scheduler(prefix_caching=1)


# ---- the space knob and the objective ------------------------------------------------------------------------------

def test_space_knob_only_when_asked_for():
    import spaces
    from dse import SpaceError

    assert "batching" not in spaces.batching().names
    assert "batching" not in spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB"], 8).names
    sp = spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB"], 8, batching=("continuous", "static"))
    assert list(sp.params["batching"].choices) == ["continuous", "static"]
    both = spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB"], 8, batching=("continuous", "static"),
                              modes=("agg", "disagg"))
    assert both.params["batching"].when == "mode == 'agg'"
    with pytest.raises(SpaceError, match=r"\['dynamic'\] not allowed; valid policies: \['continuous', 'static'\]"):
        spaces.batching(batching=("continuous", "dynamic"))
    with pytest.raises(SpaceError, match="aggregated mode only"):
        spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB"], 8, batching=("static",), modes=("disagg",))


def test_chunked_prefill_is_a_knob_of_continuous_batching_only_in_a_space_with_both():
    """The analytical model prices a static batch's prefill alike with and without chunking, so a space of both
    policies held two trials of every static configuration (identical rows). chunked_prefill is now active only
    where batching == 'continuous' (agg mode), the static rows running the objective's default."""
    import objectives
    import spaces

    for modes in (("agg",), ("agg", "disagg")):
        sp = spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB"], 8, batching=("continuous", "static"), modes=modes,
                                max_batch_sizes=(64,), max_num_tokens=(8192,))
        assert sp.params["chunked_prefill"].when == "batching == 'continuous'"
        g = sp.grid()
        static = g["batching"] == "static"
        assert static.any() and g.loc[static, "chunked_prefill"].isna().all()
        assert set(g.loc[g["batching"] == "continuous", "chunked_prefill"]) == {True, False}
        assert not g.loc[static].drop(columns="chunked_prefill").astype(str).duplicated().any()
        if "mode" in g:
            assert g.loc[g["mode"] == "disagg", "chunked_prefill"].isna().all()
    # the static rows' metrics are those of the default (what the two trials both gave)
    row = dict(gpu="H100-SXM-80GB", tp=1, max_batch_size=64, batching="static")
    cfg = pd.DataFrame([{**row, "chunked_prefill": None}, {**row, "chunked_prefill": True},
                        {**row, "chunked_prefill": False}])
    m = objectives.llm_serving_objective("Llama-3.1-8B", workload=Workload(rate=2.0, input_len=512, output_len=64))(cfg)
    assert m["tpot_ms"].nunique() == 1 and m["ttft_ms"].nunique() == 1
    # one policy: the knob as before
    assert spaces.batching(batching=("static",)).params["chunked_prefill"].when is None


def test_objective_prices_static_batching_and_agrees_with_the_simulator():
    import objectives
    from dse import ObjectiveError

    w = Workload(concurrency=64, input_len=512, output_len=serving.Dist("lognormal", mean=200, std=250, max=2000),
                 n_requests=600)
    cfg = pd.DataFrame({"gpu": ["H100-SXM-80GB"] * 2, "tp": [1, 1], "max_batch_size": [64, 64],
                        "batching": ["continuous", "static"]})
    ana = objectives.llm_serving_objective("Llama-3.1-8B", workload=w)(cfg)
    sim = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, fidelity="simulated")(cfg)
    for m in (ana, sim):    # static waits for each batch's longest output: less throughput, longer TTFT
        assert m["throughput_tok_s"].iloc[1] < 0.8 * m["throughput_tok_s"].iloc[0]
        assert m["ttft_ms"].iloc[1] > 3 * m["ttft_ms"].iloc[0]
    for m, tol in (("throughput_tok_s", 0.15), ("ttft_ms", 0.2), ("tpot_ms", 0.25)):
        assert ana[m].iloc[1] == pytest.approx(sim[m].iloc[1], rel=tol), m
    with pytest.raises(ObjectiveError, match=r"batching \['dynamic'\] not allowed; valid: 'continuous', 'static'"):
        objectives.llm_serving_objective("Llama-3.1-8B")(cfg.assign(batching=["dynamic", "static"]))


def test_static_batching_under_a_request_rate_serves_at_most_that_rate_whatever_else_is_in_the_batch():
    """Open loop: a static-batching deployment serves at most the offered rate and, offered more than it holds,
    queues the run's backlog, as continuous batching does. Static rows evaluated beside continuous ones were not
    capped (Llama-3.1-8B fp8 H100 at 5 req/s, max batch 128: 5,483 tok/s analytical, 2,588 at batch 32, where the
    offered load is ~1,320 tok/s) and an overloaded one (max batch 8: it holds 907 tok/s) had a p90 TTFT of 1.0 s,
    where the simulator's run queues for 60 s."""
    import objectives

    w = Workload(rate=5.0, input_len=1024, output_len=serving.Dist("uniform", low=16, high=512), n_requests=600)
    cfg = pd.DataFrame({"gpu": ["H100-SXM-80GB"] * 4, "weight_dtype": ["fp8"] * 4, "kv_dtype": ["fp8"] * 4,
                        "max_batch_size": [128, 128, 32, 8], "batching": ["continuous", "static", "static", "static"]})
    o = objectives.llm_serving_objective("Llama-3.1-8B", workload=w,
                                         slo=serving.SLO(ttft_ms=2000, tpot_ms=100, percentile="p90"))
    mixed = o(cfg)
    alone = o(cfg.iloc[1:].reset_index(drop=True))
    pd.testing.assert_frame_equal(mixed.iloc[1:].reset_index(drop=True), alone)    # each row its own
    offered = 5.0 * o.output_len
    assert (mixed["throughput_tok_s"] <= offered * (1 + 1e-9)).all()
    assert mixed["requests_per_s"].max() <= 5.0 * (1 + 1e-9)
    sim = o.at_fidelity("simulated")(cfg.iloc[[3]])
    ratio = mixed["ttft_ms_p90"].iloc[3] / sim["ttft_ms_p90"].iloc[0]
    assert 0.5 < ratio < 2.0, (mixed["ttft_ms_p90"].iloc[3], sim["ttft_ms_p90"].iloc[0])
    assert mixed["throughput_tok_s"].iloc[3] == pytest.approx(sim["throughput_tok_s"].iloc[0], rel=0.15)


@pytest.mark.parametrize("rate, output_len", [(2.0, 256), (0.5, 256), (1.0, "lognormal")])
def test_static_batching_below_capacity_waits_for_the_batch_running_when_a_request_arrives(rate, output_len):
    """Open loop below capacity (helper u14d): a request that arrives while a static batch runs waits for its end.
    The analytical model had no wait there: Llama-3.1-8B H100, max batch 16, 2 req/s of 1024 / 256 tokens, TTFT
    258 ms mean and p99 (the saturated batch's prefill) against the simulator's 1,005 / 1,900 ms."""
    import objectives

    out = serving.Dist("lognormal", mean=256, std=256) if output_len == "lognormal" else output_len
    w = Workload(rate=rate, input_len=1024, output_len=out, n_requests=1000)
    cfg = pd.DataFrame({"gpu": ["H100-SXM-80GB"], "max_batch_size": [16], "batching": ["static"]})
    o = objectives.llm_serving_objective("Llama-3.1-8B", workload=w,
                                         slo=serving.SLO(ttft_ms=5000, tpot_ms=100, percentile="p99"))
    ana, sim = o(cfg).iloc[0], o.at_fidelity("simulated")(cfg).iloc[0]
    tol = 0.25 if output_len == "lognormal" else 0.12
    assert ana["ttft_ms"] == pytest.approx(sim["ttft_ms"], rel=tol)
    assert ana["ttft_ms_p99"] == pytest.approx(sim["ttft_ms_p99"], rel=0.1 if output_len == 256 else 0.45)
    assert ana["ttft_ms_p99"] > 1.5 * ana["ttft_ms"]            # the residual of a cycle, not the batch's prefill
    assert ana["tpot_ms"] == pytest.approx(sim["tpot_ms"], rel=0.05)


def test_capacity_command_takes_static_batching(capsys):
    """`dse capacity --batching static` is `serving.capacity` under Scheduler(batching="static") (the simulator's
    and the space's policy), printed as such; a bad value lists the valid ones, a disaggregated deployment (whose
    pools the model batches continuously) is refused with the reason, and --target-rate searches the space's
    static-batched deployments."""
    from objectives.serving.cli import main

    model, gpu = "Llama-3.1-8B", "H100-SXM-80GB"
    w = serving.Workload(rate=1.0, input_len=512, output_len=128)
    slo = serving.SLO(ttft_ms=2000, tpot_ms=50, percentile="p99")
    base = [model, "--gpu", gpu, "--weight-dtype", "fp8", "--kv-dtype", "fp8", "--ttft-ms", "2000", "--tpot-ms", "50",
            "--input-len", "512", "--output-len", "128", "--analytical"]
    kw = dict(weight_dtype="fp8", kv_dtype="fp8", slo=slo, workload=w, fidelity="analytical")
    static = serving.capacity(model, gpu, scheduler=serving.Scheduler(batching="static"), **kw)["capacity_req_s"]
    cont = serving.capacity(model, gpu, **kw)["capacity_req_s"]
    assert static < cont
    assert main([*base, "--batching", "static"]) == 0
    out = capsys.readouterr().out
    assert f"holds {static:.3g} requests/s" in out and "static batching" in out
    assert main(base) == 0
    assert f"holds {cont:.3g} requests/s" in capsys.readouterr().out
    assert main([*base, "--batching", "stat"]) == 2
    assert "--batching stat: valid values are continuous, static" in capsys.readouterr().err
    assert main([*base, "--batching", "static", "--mode", "disagg"]) == 2
    assert "batching 'static' is modelled in aggregated mode only" in capsys.readouterr().err
    assert main([model, "--target-rate", "2", "--gpus", gpu, "--max-gpus", "1", "--batching", "static",
                 "--ttft-ms", "2000", "--tpot-ms", "50", "--input-len", "512", "--output-len", "128",
                 "--n-requests", "400"]) == 0
    out = capsys.readouterr().out
    assert "smallest deployment holding 2 requests/s" in out and "static" in out
