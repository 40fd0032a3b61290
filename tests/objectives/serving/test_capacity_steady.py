"""A simulated capacity is measured over a run's steady part, never over a run that ends in its warm-up.

Before: Llama-3.1-8B fp8 on H100, 1 prefill + 2 decode workers, 512 / 1024 tokens, p99 TTFT <= 1 s and TPOT <= 25
ms, ``n_requests=500`` "held" 154 req/s (analytical 25.6): every request fitted the 2 x 256 decode slots at once,
so no batch ever filled and no request queued; 100 requests "held" a million requests/s. The aggregated 3 x H100
held 49.4 req/s at the default 1,000 requests, 36.6 at 5,000 (analytical 35.0)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from objectives import serving
from objectives.serving.capacity import DEFAULT_TOL, meets, steady_verdict
from objectives.serving.simulator import STEADY_RUNS, in_flight, steady_growth, steady_mask

MODEL, GPU = "Llama-3.1-8B", "H100"
SLO = serving.SLO(ttft_ms=1000, tpot_ms=25, percentile="p99")
LONG = serving.Workload(rate=1.0, input_len=512, output_len=1024)
PDD = dict(mode="disagg", prefill=serving.Pool(n_workers=1), decode=serving.Pool(n_workers=2))
#: the budgets these runs were sized for (256 slots a replica: the simulator's former default, not vLLM's 1024)
BUDGETS = serving.Scheduler(max_batch_size=256, max_num_tokens=8192)


def test_a_request_count_that_never_leaves_its_warm_up_is_refused_naming_the_minimum():
    # the lowest rate that failed: its run had no steady part, or its batches still filled over it
    with pytest.raises(ValueError, match=r"n_requests=500 is too few to measure 1 x H100-SXM-80GB .* decode at .* "
                                         r"req/s: (it holds \d+ requests in its batches there \(up to 512\)|over the run's "
                                         r"steady part the requests in the system .* still grew by \d+ % of its "
                                         r"arrivals).* give n_requests >= (\d+)") as e:
        serving.capacity(MODEL, GPU, weight_dtype="fp8", slo=SLO, workload=LONG, n_requests=500, scheduler=BUDGETS,
                         **PDD)
    need = int(str(e.value).rsplit(">= ", 1)[1])
    assert 500 < need <= STEADY_RUNS * 512
    # the aggregated search too (3 x 256 slots), and a tiny run that "held" a million requests/s
    with pytest.raises(ValueError, match=r"n_requests=100 is too few to measure 3 x H100-SXM-80GB .* give "
                                         r"n_requests >= \d+"):
        serving.capacity(MODEL, GPU, weight_dtype="fp8", slo=SLO, workload=LONG, n_requests=100, dp=3,
                         scheduler=BUDGETS)


def test_the_default_request_count_rises_until_a_rate_is_measured_in_a_steady_state():
    r = serving.capacity(MODEL, GPU, weight_dtype="fp8", slo=SLO, workload=LONG, dp=3)
    assert r["n_requests"] > 1000 and r["metrics"]["n_requests"] == r["n_requests"]
    assert 0 < r["metrics"]["steady_requests"] < r["n_requests"]
    # 49.4 req/s (1.41 x the analytical model) from 1,000 requests before; 41.2 from 2,304 (its batches still
    # filling over the steady part), 36.0 from 5,000; now the long runs' 34.2 (analytical 34.4)
    assert r["capacity_req_s"] < 1.05 * r["analytical_req_s"]
    assert r["metrics"]["steady_growth"] <= DEFAULT_TOL


def test_a_rate_met_while_the_batches_still_fill_is_a_transient_that_a_longer_run_misses():
    """3 x H100 at 41 req/s (HEAD's default capacity): 2,304 requests meet the SLO over their steady part, but the
    requests in the system still climb towards the 768 slots there (no queue yet); 5,000 requests queue and miss."""
    def at(n):
        w = serving.Workload(rate=41.0, input_len=512, output_len=1024, n_requests=n)
        return serving.simulate(MODEL, GPU, weight_dtype="fp8", dp=3, workload=w, slo=SLO, discard="steady",
                                scheduler=BUDGETS)
    short, long = at(2304), at(5000)
    assert meets(short, SLO) and short["steady_growth"] > 0.15
    assert steady_verdict(short, SLO) == "growing"
    assert steady_verdict(long, SLO) == "missed" and long["ttft_ms_p99"] > 3 * SLO.ttft_ms


def test_steady_growth_reads_a_climb_and_not_a_stationary_systems_noise():
    rng = np.random.default_rng(0)
    arrival = np.sort(rng.uniform(0, 100, 2000))
    # each request stays 2 s: ~40 in the system, flat
    assert steady_growth(arrival, arrival + 2.0, None) == 0.0
    # stays grow with the run (a queue): the system holds 0.2 more per arrival at the end than at the start
    stay = 2.0 + 0.2 * np.arange(2000) / 20.0
    g = steady_growth(arrival, arrival + stay, None)
    assert 0.1 < g < 0.25
    keep = np.zeros(2000, dtype=bool)
    assert np.isnan(steady_growth(arrival, arrival + 2.0, keep))


def test_the_growth_check_is_for_stationary_arrivals_only():
    """A trace's own arrivals vary in rate (a storm late in the run raises the system with no overload): judged on
    the SLO alone."""
    m = {"steady_requests": 500, "ttft_ms_p99": 400.0, "tpot_ms_p99": 20.0, "steady_growth": 0.3}
    assert steady_verdict(m, SLO) == "growing"
    assert steady_verdict(m, SLO, stationary=False) == "held"
    assert steady_verdict({**m, "steady_growth": 0.0}, SLO) == "held"
    assert steady_verdict({**m, "ttft_ms_p99": 1500.0}, SLO) == "missed"
    assert steady_verdict({**m, "steady_requests": 0}, SLO) == "empty"


def test_a_run_without_a_steady_part_measures_nothing():
    """1P+2D at 150 req/s: 500 requests meet the SLO over the whole run, but the run holds about as many in its
    batches as it has requests: no steady part, NaN latencies, not held."""
    w = serving.Workload(rate=150.0, input_len=512, output_len=1024, n_requests=500)
    whole = serving.simulate(MODEL, GPU, weight_dtype="fp8", workload=w, slo=SLO, **PDD)
    steady = serving.simulate(MODEL, GPU, weight_dtype="fp8", workload=w, slo=SLO, discard="steady", **PDD)
    assert meets(whole, SLO) and not meets(steady, SLO)
    assert steady["steady_requests"] == 0 and STEADY_RUNS * steady["in_flight"] > 500
    assert math.isnan(steady["ttft_ms_p99"]) and math.isnan(steady["slo_attainment"])
    assert steady["throughput_tok_s"] == whole["throughput_tok_s"]          # whole-run figures stay


def test_discard_leaves_out_the_first_and_last_arrivals_from_the_latencies_and_attainment():
    w = serving.Workload(rate=8.0, input_len=512, output_len=64, n_requests=300)
    kw = dict(weight_dtype="fp8", workload=w)
    rows = serving.simulate_requests(MODEL, GPU, **kw)
    m = serving.simulate(MODEL, GPU, slo=serving.SLO(ttft_ms=60), discard=40, **kw)
    mid = rows.sort_values("arrival_s", kind="stable").iloc[40:260]
    assert m["ttft_ms_p99"] == pytest.approx(float(np.quantile(mid["ttft_ms"], 0.99)))
    assert m["tpot_ms_mean"] == pytest.approx(float(mid["tpot_ms"].mean()))
    assert m["slo_attainment"] == pytest.approx(float((mid["ttft_ms"] <= 60).mean()))
    assert m["n_requests"] == 300 and m["steady_requests"] == 220
    plain = serving.simulate(MODEL, GPU, **kw)
    assert "steady_requests" not in plain and plain["ttft_ms_p99"] == pytest.approx(
        float(np.quantile(rows["ttft_ms"], 0.99)))
    # "steady": the requests in the batches by Little's law (arrival rate x first token to finish)
    auto = serving.simulate(MODEL, GPU, discard="steady", **kw)
    lf = in_flight(rows["arrival_s"].to_numpy(), rows["first_token_s"].to_numpy(), rows["finish_s"].to_numpy())
    assert auto["in_flight"] == pytest.approx(lf) and auto["steady_requests"] == 300 - 2 * math.ceil(lf)
    with pytest.raises(ValueError, match="leaves none to measure"):
        steady_mask(np.arange(10.0), np.arange(10.0), np.arange(10.0), 5)
    with pytest.raises(ValueError, match="discard=-1"):
        steady_mask(np.arange(10.0), np.arange(10.0), np.arange(10.0), -1)
