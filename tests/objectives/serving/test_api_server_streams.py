"""The API server's time per running stream before a request's first token (``Efficiency`` ``engine_stream_us``,
`inference.estimate.host_ttft_s`): the closed loop, its breakdown, the open loop and the simulator price it alike."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference
from objectives.inference.breakdown import served_breakdown
from objectives.inference.core import default_eff
from objectives.inference.efficiency import from_params
from objectives.serving.simulator import streams_at_first

MODEL, GPU = "Llama-3.1-8B", "H200"


def _with_stream(us: float):
    params = default_eff().params
    return from_params({**params, "engine_stream_us": {k: us for k in params["engine_stream_us"]}})


def test_the_closed_loop_ttft_grows_by_the_streams_at_the_scheduler_and_nothing_else_moves():
    args = dict(input_len=1024, output_len=256, concurrency=[4, 64, 256])
    a = inference.max_throughput(MODEL, GPU, **args, engine="vllm", efficiency=_with_stream(0.0))
    b = inference.max_throughput(MODEL, GPU, **args, engine="vllm", efficiency=_with_stream(500.0))
    # 0.5 ms per sequence the scheduler runs (its batch, at most the clients): more for more clients
    extra = (b["ttft_ms"] - a["ttft_ms"]).to_numpy(float)
    np.testing.assert_allclose(extra, 0.5 * a["batch_size"].to_numpy(float), rtol=1e-9)
    assert np.all(np.diff(extra) > 0)
    for col in ("tpot_ms", "throughput_tok_s", "batch_size"):
        np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float), rtol=1e-12, err_msg=col)
    # the roofline has no API server
    roof = [inference.max_throughput(MODEL, GPU, **args, engine="roofline", efficiency=_with_stream(us))["ttft_ms"]
            for us in (0.0, 500.0)]
    np.testing.assert_array_equal(roof[0].to_numpy(), roof[1].to_numpy())
    # the breakdown shows it in the front end, and its TTFT terms still sum to max_throughput's
    bd = served_breakdown(MODEL, GPU, **args, engine="vllm", efficiency=_with_stream(500.0))
    bd0 = served_breakdown(MODEL, GPU, **args, engine="vllm", efficiency=_with_stream(0.0))
    ttft, ttft0 = bd[bd["phase"] == "ttft"], bd0[bd0["phase"] == "ttft"]
    np.testing.assert_allclose(ttft["total_ms"].to_numpy(float), b["ttft_ms"].to_numpy(float), rtol=1e-9)
    front = ttft["front_end"].to_numpy(float) - ttft0["front_end"].to_numpy(float)
    np.testing.assert_allclose(front, extra, rtol=1e-9)


def test_streams_at_first_counts_a_replicas_streams_as_a_first_token_goes_out():
    first = np.array([0.0, 1.0, 2.0, 2.5, 5.0, np.nan, 1.5])
    finish = np.array([3.0, 4.0, 6.0, 7.0, 8.0, np.nan, 9.0])
    rep = np.array([0, 0, 0, 0, 0, 0, 1])
    # request 3 (first 2.5): 0, 1, 2 and itself stream; request 4 (first 5.0): 2, 3 and itself (0, 1 finished)
    np.testing.assert_array_equal(streams_at_first(first, finish, rep), [1, 2, 3, 4, 3, 0, 1])


def test_the_simulator_and_the_open_loop_charge_it_with_the_streams_running():
    from objectives import serving
    from objectives.serving.analytical import Deployments, ServingModel
    from objectives.serving.simulator import _build, _frame

    w = serving.Workload(rate=8.0, input_len=1024, output_len=256, n_requests=300)
    kw = dict(tp=1, weight_dtype="fp8", engine="vllm")

    def run(us: float):
        eng, reps = _build(MODEL, "H100-SXM-80GB", 1, 1, "fp8", None, None, w, None, "agg", 1, None, None, None,
                           "least_loaded", "vllm", profile=_with_stream(us))
        return _frame(eng, reps)
    a, b = run(0.0), run(1000.0)
    streams = streams_at_first(a["first_token_s"].to_numpy(), a["finish_s"].to_numpy(), a["replica"].to_numpy())
    # 1 ms per stream at the first token; the GPUs' schedule is the same, so the TPOT is too
    np.testing.assert_allclose((b["ttft_ms"] - a["ttft_ms"]).to_numpy(), streams, rtol=1e-9)
    np.testing.assert_allclose(b["tpot_ms"].to_numpy(), a["tpot_ms"].to_numpy(), rtol=1e-9)
    assert streams.mean() > 2.0
    one = Deployments.of(gpu="H100-SXM-80GB", **kw)
    m = {us: ServingModel(MODEL, w, efficiency=_with_stream(us)).evaluate(one).iloc[0] for us in (0.0, 1000.0)}
    # the open loop's mean occupancy against the simulated streams' mean: the same order
    assert m[1000.0]["ttft_ms"] - m[0.0]["ttft_ms"] == pytest.approx(streams.mean(), rel=0.5)
    assert m[1000.0]["tpot_ms"] == pytest.approx(m[0.0]["tpot_ms"], rel=1e-12)
