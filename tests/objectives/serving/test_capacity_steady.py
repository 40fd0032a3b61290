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
from objectives.serving.capacity import meets
from objectives.serving.simulator import STEADY_RUNS, in_flight, steady_mask

MODEL, GPU = "Llama-3.1-8B", "H100"
SLO = serving.SLO(ttft_ms=1000, tpot_ms=25, percentile="p99")
LONG = serving.Workload(rate=1.0, input_len=512, output_len=1024)
PDD = dict(mode="disagg", prefill=serving.Pool(n_workers=1), decode=serving.Pool(n_workers=2))


def test_a_request_count_that_never_leaves_its_warm_up_is_refused_naming_the_minimum():
    with pytest.raises(ValueError, match=r"n_requests=500 is too few to measure 1 x H100 .* decode at .* req/s: "
                                         r"it holds \d+ requests in its batches there \(up to 512\).* give "
                                         r"n_requests >= (\d+)") as e:
        serving.capacity(MODEL, GPU, weight_dtype="fp8", slo=SLO, workload=LONG, n_requests=500, **PDD)
    need = int(str(e.value).rsplit(">= ", 1)[1])
    assert 500 < need <= STEADY_RUNS * 512
    # the aggregated search too (3 x 256 slots), and a tiny run that "held" a million requests/s
    with pytest.raises(ValueError, match=r"n_requests=100 is too few .* \(up to 768\)"):
        serving.capacity(MODEL, GPU, weight_dtype="fp8", slo=SLO, workload=LONG, n_requests=100, dp=3)


def test_the_default_request_count_rises_until_a_rate_is_measured_in_a_steady_state():
    r = serving.capacity(MODEL, GPU, weight_dtype="fp8", slo=SLO, workload=LONG, dp=3)
    assert r["n_requests"] > 1000 and r["metrics"]["n_requests"] == r["n_requests"]
    assert 0 < r["metrics"]["steady_requests"] < r["n_requests"]
    # 49.4 req/s (1.41 x the analytical model) from 1,000 requests before; 41.8 now, 36.6 from 5,000
    assert r["capacity_req_s"] < 1.25 * r["analytical_req_s"]


def test_a_run_without_a_steady_part_measures_nothing():
    """1P+2D at 154 req/s: 500 requests meet the SLO over the whole run, but the run holds about as many in its
    batches as it has requests: no steady part, NaN latencies, not held."""
    w = serving.Workload(rate=154.0, input_len=512, output_len=1024, n_requests=500)
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
