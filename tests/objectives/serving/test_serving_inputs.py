"""The capacity search, SLO specs, workloads and simulate's deployment arguments as a serving engineer writes them
(helper u14c's pass): a trace too short to measure a rate, an SLO mapping that mixes the mean's metric name with a
percentile's, a gap CV given to Poisson arrivals, disaggregated pools given to an aggregated run."""
from __future__ import annotations

import re

import numpy as np
import pytest

import objectives
from objectives import llm_serving_objective, serving
from objectives.serving import SLO, Trace, Workload
from objectives.serving.cli import main as capacity_main


def _short_trace(n: int) -> Trace:
    return Trace(np.arange(n) * 10.0, np.full(n, 400), np.full(n, 20), source=f"{n}-request trace")


def test_capacity_refuses_a_trace_too_short_to_measure_a_rate():
    # two requests replayed at any rate meet any SLO: the search climbed to 1.18e6 requests/s in 49 simulations
    with pytest.raises(ValueError, match=r"2-request trace.*2 requests.*at least 10"):
        serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 2000},
                         workload=Workload(trace=_short_trace(2)))
    # its lengths under a Poisson rate: the same two requests
    with pytest.raises(ValueError, match=r"2-request trace.*at least 10"):
        serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 2000},
                         workload=Workload(trace=_short_trace(2), rate=1.0))


def test_smallest_deployment_refuses_a_trace_too_short_to_measure_a_rate():
    import spaces

    obj = llm_serving_objective("Llama-3.1-8B", workload=Workload(trace=_short_trace(3)), slo={"ttft_ms_p99": 2000})
    space = spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=1)
    with pytest.raises(ValueError, match=r"3-request trace.*at least 10"):
        objectives.smallest_deployment(space, obj, 5.0)


def test_dse_capacity_says_the_trace_is_too_short(tmp_path, capsys):
    p = tmp_path / "two.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n0,400,20\n5,300,30\n")
    assert capacity_main(["Llama-3.1-8B", "--gpu", "H100", "--ttft-ms", "2000", "--trace", str(p)]) == 2
    err = capsys.readouterr().err
    assert "2 requests" in err and "at least 10" in err


def test_a_ten_request_trace_is_searched():
    r = serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 2000}, workload=Workload(trace=_short_trace(10)),
                         fidelity="analytical")
    assert 0 < r["capacity_req_s"] < 1e4


def test_slo_mapping_mixing_the_means_name_with_a_percentile_is_refused():
    # "ttft_ms" is the mean TTFT's metric (SLO.constraints names it so): beside "tpot_ms_p99" it was read as p99
    with pytest.raises(ValueError, match=re.escape("mixes statistics ['mean', 'p99']") + r".*percentile"):
        SLO.parse({"ttft_ms": 2000, "tpot_ms_p99": 200})
    # stated once with "percentile", bare keys take it; bare keys alone are means
    assert SLO.parse({"ttft_ms": 2000, "tpot_ms_p99": 200, "percentile": "p99"}) == \
        SLO(ttft_ms=2000, tpot_ms=200, percentile="p99")
    assert SLO.parse({"ttft_ms": 2000, "tpot_ms": 200}) == SLO(ttft_ms=2000, tpot_ms=200)
    assert SLO.parse({"e2e_ms_p50": 5000}).constraints == {"e2e_ms_p50": ("<=", 5000.0)}


@pytest.mark.parametrize("kw", [dict(rate=4.0), dict(rate=4.0, arrival="poisson"), dict(concurrency=8)])
def test_a_gap_cv_without_gamma_arrivals_is_refused(kw):
    # cv shapes gamma gaps only: Poisson arrivals (the default) ignored cv=3 without a word, in the API and in
    # `dse capacity --cv 3`
    with pytest.raises(ValueError, match=r"cv=3.*arrival='gamma'"):
        Workload(**kw, cv=3.0)
    assert Workload(rate=4.0, arrival="gamma", cv=3.0).variability()[0] == pytest.approx(9.0)


def test_dse_capacity_cv_without_gamma_is_refused(capsys):
    assert capacity_main(["Llama-3.1-8B", "--gpu", "H100", "--ttft-ms", "2000", "--cv", "3", "--analytical"]) == 2
    assert "arrival='gamma'" in capsys.readouterr().err


def test_simulate_refuses_pools_in_aggregated_mode_and_replicas_in_disaggregated_mode():
    w = Workload(rate=2.0, input_len=512, output_len=32, n_requests=20)
    # mode defaults to "agg": the H100 prefill pool was dropped without a word and 1 x H200 TP 1 simulated
    with pytest.raises(ValueError, match=r"prefill=.*decode=.*mode='disagg'"):
        serving.simulate("Llama-3.1-8B", "H200", workload=w, prefill=serving.Pool("H100", n_workers=2),
                         decode=serving.Pool("H200"))
    # disaggregated workers are counted per pool: dp=3 was ignored (one prefill + one decode worker ran)
    with pytest.raises(ValueError, match=r"dp=3.*n_workers"):
        serving.simulate("Llama-3.1-8B", "H200", workload=w, mode="disagg", dp=3, prefill=serving.Pool("H100"),
                         decode=serving.Pool("H200"))
    m = serving.simulate("Llama-3.1-8B", None, workload=w, mode="disagg", prefill=serving.Pool("H100"),
                         decode=serving.Pool("H200"))
    assert m["n_gpus"] == 2 and m["n_requests"] == 20


@pytest.mark.parametrize("slo", [SLO(), {}, {"ttft_ms_p99": float("inf")}])
def test_capacity_and_smallest_deployment_need_a_finite_bound(slo):
    # no bound: every rate "holds"; the search climbed to 1.1e6 requests/s in 55 simulations (`dse capacity`
    # refused it, the API did not), and smallest_deployment failed inside numpy ("zero-size array ...")
    import spaces

    with pytest.raises(ValueError, match=r"capacity needs an SLO with at least one finite bound.*ttft_ms"):
        serving.capacity("Llama-3.1-8B", "H100", slo=slo, n_requests=100)
    obj = llm_serving_objective("Llama-3.1-8B", workload=Workload(rate=4.0), slo=slo)
    with pytest.raises(ValueError, match=r"smallest_deployment needs an SLO with at least one finite bound"):
        objectives.smallest_deployment(spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=1), obj, 4.0)


@pytest.mark.parametrize("extra", [["--input-len", "100"], ["--output-len", "50"], ["--arrival", "gamma", "--cv", "3"]])
def test_dse_capacity_refuses_lengths_and_arrivals_beside_a_trace(tmp_path, capsys, extra):
    # the trace gives both: --input-len 100 beside --trace was dropped without a word
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{i},400,20\n" for i in range(12)))
    assert capacity_main(["Llama-3.1-8B", "--gpu", "H100", "--ttft-ms", "2000", "--trace", str(p), *extra,
                          "--analytical"]) == 2
    err = capsys.readouterr().err
    assert extra[0] in err and "--trace" in err


@pytest.mark.parametrize("extra", [["--tp", "4"], ["--weight-dtype", "fp8"], ["--engine", "sglang"],
                                   ["--max-batch-size", "64"], ["--gpu", "H200"]])
def test_dse_capacity_target_rate_refuses_the_deployment_flags_it_would_ignore(capsys, extra):
    # --target-rate searches the space's GPUs, parallelism, precision and batching: --tp 4 or --weight-dtype fp8
    # beside it were dropped without a word (the smallest deployment came out TP 1, bf16)
    assert capacity_main(["Llama-3.1-8B", "--ttft-ms", "2000", "--target-rate", "5", "--gpus", "H100", *extra]) == 2
    err = capsys.readouterr().err
    assert extra[0] in err and "--target-rate" in err


def test_dse_capacity_target_rate_searches_the_checkpoints_format_unless_told(monkeypatch, capsys):
    """`dse capacity --target-rate` searched every format (a bf16 checkpoint came back "weight_dtype fp4") and
    refused --weight-dtype, so the checkpoint's precision could not be kept: it searches the checkpoint's own
    formats by default (bf16 for an unquantized one, fp8 and w8a16 for an FP8 one), --formats names others, and
    --weight-dtype says to use --formats."""
    import importlib

    import pandas as pd

    cap_mod = importlib.import_module("objectives.serving.capacity")
    seen: dict = {}

    def fake(space, objective, rate, **kw):
        seen.update(space=space, **kw)
        return pd.Series({"gpu": "B200", "n_gpus": 2, "weight_dtype": "bf16", "fits": 1.0})
    monkeypatch.setattr(cap_mod, "smallest_deployment", fake)
    base = ["--ttft-ms", "2000", "--tpot-ms", "50", "--target-rate", "6", "--gpus", "H200,B200", "--max-gpus", "8"]
    for model, formats, want, said in (("meta-llama/Llama-3.3-70B-Instruct", [], {"bf16"}, "bf16"),
                                       ("Qwen/Qwen3-235B-A22B-FP8", [], {"fp8"}, "fp8, w8a16"),
                                       ("meta-llama/Llama-3.3-70B-Instruct", ["--formats", "fp8,bf16"],
                                        {"fp8", "bf16"}, "fp8, bf16")):
        assert capacity_main([model, *base, *formats]) == 0
        assert set(seen["space"].params["weight_dtype"].choices) == want, model
        assert seen["fidelity"] == "simulated"
        assert f"(simulated, formats {said}):" in capsys.readouterr().out
    # an FP8 checkpoint on a GPU without fp8 tensor cores runs it weight-only (w8a16)
    assert capacity_main(["Qwen/Qwen3-235B-A22B-FP8", *base[:-4], "--gpus", "A100,H200", "--max-gpus", "8"]) == 0
    assert "formats fp8, w8a16" in capsys.readouterr().out
    assert capacity_main(["Llama-3.1-8B", *base, "--formats", "fp9"]) == 2
    assert "--formats fp9: valid formats are bf16, fp8" in capsys.readouterr().err
    assert capacity_main(["Llama-3.1-8B", *base, "--weight-dtype", "bf16"]) == 2
    assert "(the weight formats searched: --formats)" in capsys.readouterr().err


def test_dse_capacity_target_rate_honours_analytical(monkeypatch, capsys):
    """--analytical beside --target-rate still simulated (and printed "(simulated)"): it takes the analytical
    model's smallest deployment (`smallest_deployment(fidelity="analytical")`), nothing simulated, and says so."""
    import spaces
    from objectives.llm_serving import LLMServingObjective

    real = LLMServingObjective.at_fidelity

    def no_simulation(self, fidelity, *a, **kw):
        assert fidelity != "simulated", "--analytical simulated"
        return real(self, fidelity, *a, **kw)
    monkeypatch.setattr(LLMServingObjective, "at_fidelity", no_simulation)
    assert capacity_main(["Llama-3.1-8B", "--ttft-ms", "2000", "--tpot-ms", "50", "--target-rate", "2", "--gpus",
                          "H100", "--max-gpus", "1", "--input-len", "512", "--output-len", "128",
                          "--analytical"]) == 0
    out = capsys.readouterr().out
    assert "(analytical, not confirmed in simulation, formats bf16)" in out and "weight_dtype" in out
    w = Workload(rate=2.0, input_len=512, output_len=128)
    obj = llm_serving_objective("Llama-3.1-8B", workload=w, slo=SLO(ttft_ms=2000, tpot_ms=50, percentile="p99"))
    space = spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=1, formats=["bf16"], input_len=512)
    row = objectives.smallest_deployment(space, obj, 2.0, fidelity="analytical")
    assert row["n_gpus"] == 1 and row["ttft_ms_p99"] <= 2000 and row["weight_dtype"] == "bf16"
    with pytest.raises(ValueError, match="fidelity='exact'"):
        objectives.smallest_deployment(space, obj, 2.0, fidelity="exact")


# ---- helper u14d's pass ------------------------------------------------------------------------------------------

AZURE_SAMPLE = serving.traces.sample_path("azure_conv_2023")


@pytest.mark.parametrize("kw, named", [
    (dict(input_len=512), "input_len=512"), (dict(output_len=64), "output_len=64"),
    (dict(input_len=serving.Dist("uniform", low=100, high=200)), "input_len"),
    (dict(rate=4.0, output_len=64), "output_len=64")])
def test_lengths_beside_a_trace_are_refused(kw, named):
    # a trace gives every request's lengths: Workload(trace=t, input_len=512) simulated the trace's 1,155-token mean
    # prompts without a word (`dse capacity --trace --input-len` was refused, the API was not)
    with pytest.raises(ValueError, match=re.escape(named) + r".*trace.*lengths"):
        Workload(trace=AZURE_SAMPLE, **kw)


@pytest.mark.parametrize("kw, named", [
    (dict(arrival="gamma"), "arrival='gamma'"), (dict(arrival="gamma", cv=3.0), "arrival='gamma'")])
def test_an_arrival_process_beside_a_traces_own_arrivals_is_refused(kw, named):
    # the trace's own arrival times are replayed unless rate= or concurrency= is given: gamma gaps were dropped
    with pytest.raises(ValueError, match=re.escape(named) + r".*own arrival times.*rate="):
        Workload(trace=AZURE_SAMPLE, **kw)
    w = Workload(trace=AZURE_SAMPLE, rate=2.0, **kw)          # with a rate, the trace's lengths at gamma gaps
    assert w.variability()[0] == pytest.approx(kw.get("cv", 1.0) ** 2)


def test_an_arrival_process_in_a_closed_loop_is_refused():
    # clients of a closed loop send on completion: arrival='gamma' (with or without cv) shaped nothing
    with pytest.raises(ValueError, match=r"arrival='gamma'.*closed loop"):
        Workload(concurrency=8, arrival="gamma")
    with pytest.raises(ValueError, match=r"arrival='gamma'.*closed loop"):
        Workload(concurrency=8, arrival="gamma", cv=2.0)


def test_the_defaults_and_what_the_library_builds_stay_valid():
    t = serving.read_trace(AZURE_SAMPLE)
    assert Workload(trace=t).mean_lengths()[0] == pytest.approx(float(t.input_tokens.mean()))
    assert Workload(trace=t, concurrency=4).closed_loop
    from objectives.serving.capacity import _at_rate
    for w in (Workload(trace=t), Workload(trace=t, rate=3.0, arrival="gamma", cv=2.0), Workload(concurrency=4),
              Workload(rate=2.0, arrival="gamma", cv=2.0, input_len=300, output_len=30)):
        assert _at_rate(w, 5.0, 100).size == 100


def test_a_metric_bounded_twice_in_an_slo_mapping_is_refused():
    # {"ttft_ms_p99": 2000, "ttft_ms": 1000, "percentile": "p99"}: the later key silently replaced the earlier bound
    with pytest.raises(ValueError, match=r"ttft_ms.*bounded twice.*'ttft_ms_p99'.*'ttft_ms'"):
        SLO.parse({"ttft_ms_p99": 2000, "ttft_ms": 1000, "percentile": "p99"})
    with pytest.raises(ValueError, match=r"ttft_ms.*bounded twice"):
        SLO.parse({"ttft_ms_mean": 2000, "ttft_ms": 1000})
    assert SLO.parse({"ttft_ms_mean": 2000, "tpot_ms": 100}) == SLO(ttft_ms=2000, tpot_ms=100)


@pytest.mark.parametrize("gpu, tp, why", [("H100", 3, "tp does not divide the attention heads"),
                                          ("L40S", 1, "does not fit")])
def test_the_analytical_capacity_of_a_deployment_that_cannot_run_names_why(gpu, tp, why, capsys):
    # 70B bf16 on one L40S, or TP 3 over 64 heads: `dse capacity --analytical` printed "holds 0 requests/s" (a
    # deployment too slow for the SLO); the simulated search already refused it with the reason
    slo = {"ttft_ms_p99": 1000}
    with pytest.raises(ValueError, match=why):
        serving.capacity("Llama-3.1-70B", gpu, tp=tp, slo=slo, fidelity="analytical")
    assert capacity_main(["Llama-3.1-70B", "--gpu", gpu, "--tp", str(tp), "--ttft-ms", "1000", "--analytical"]) == 2
    assert why in capsys.readouterr().err
    tight = serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 1.0}, fidelity="analytical")
    assert tight["capacity_req_s"] == 0.0          # it runs, but no rate meets a 1 ms TTFT: 0 as before


def test_dse_capacity_replays_a_length_only_trace_at_poisson_rates(tmp_path, capsys):
    # a Vidur length-only trace (no arrived_at): `dse capacity --trace` stopped at "give rate= (requests/s) or
    # concurrency= (users)", API words a command-line user cannot act on; the search sets the rate itself
    p = tmp_path / "lengths.csv"
    p.write_text("num_prefill_tokens,num_decode_tokens\n" + "".join(f"{300 + 7 * i},{20 + i % 9}\n" for i in range(60)))
    assert capacity_main(["Llama-3.1-8B", "--gpu", "H100", "--ttft-ms", "1000", "--trace", str(p), "--analytical"]) == 0
    out = capsys.readouterr().out
    assert "holds" in out and "lengths.csv" in out and "Poisson arrivals" in out
    api = serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 1000}, fidelity="analytical",
                           workload=Workload(trace=p, rate=1.0))
    assert f"{api['capacity_req_s']:.3g} requests/s" in out


def test_capacity_simulates_the_workloads_own_request_count():
    # Workload(rate=1, n_requests=800) searched with 1,000 requests a rate (capacity's own default) without a word
    w = Workload(rate=1.0, input_len=512, output_len=32, n_requests=800)
    r = serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 200}, workload=w)
    assert r["metrics"]["n_requests"] == 800 == r["n_requests"]
    assert serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 200}, workload=w,
                            n_requests=800)["capacity_req_s"] == r["capacity_req_s"]
    with pytest.raises(ValueError, match=r"n_requests=500.*n_requests=800"):
        serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 200}, workload=w, n_requests=500)
    plain = serving.capacity("Llama-3.1-8B", "H100", slo={"ttft_ms_p99": 200},
                             workload=Workload(rate=1.0, input_len=512, output_len=32))
    assert plain["metrics"]["n_requests"] == 1000              # the default where neither says


def test_simulate_takes_an_slo_mapping_as_capacity_does_and_refuses_a_bad_one_before_the_run():
    """`capacity(slo={"ttft_ms_p99": 500})` and the objective read an SLO mapping; `simulate` refused the same
    mapping ("slo must be a serving.SLO or None"), and only after running the whole simulation. It reads it
    (`SLO.parse`) to the same attainment as the `SLO`, and refuses an unknown key, listing the valid ones, before
    it runs anything."""
    import time

    w = Workload(rate=4.0, input_len=1024, output_len=128, n_requests=200)
    # a threshold some requests meet and some miss, whatever the fitted front-end time: the run's median TTFT
    mid = float(serving.simulate("Llama-3.1-8B", "H100", workload=w)["ttft_ms_p50"])
    by_map = serving.simulate("Llama-3.1-8B", "H100", workload=w, slo={"ttft_ms_p99": mid})
    by_slo = serving.simulate("Llama-3.1-8B", "H100", workload=w, slo=SLO(ttft_ms=mid, percentile="p99"))
    assert by_map["slo_attainment"] == by_slo["slo_attainment"] and 0 < by_map["slo_attainment"] < 1
    big = Workload(rate=4.0, input_len=1024, output_len=128, n_requests=20_000)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"slo key 'ttft_p99' is unknown; valid keys: ttft_ms, ttft_ms_p50"):
        serving.simulate("Llama-3.1-8B", "H100", workload=big, slo={"ttft_p99": 500})
    assert time.perf_counter() - t0 < 0.5          # (a 20,000-request run takes seconds)
    with pytest.raises(ValueError, match=r"slo must be a serving.SLO, a mapping .* or None, got 500"):
        serving.simulate("Llama-3.1-8B", "H100", workload=w, slo=500)
