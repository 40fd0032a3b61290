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
    # (re-pinned in thirty-seventh round: a longer host time lets more of a closed-loop round's prompts reach the scheduler together (`lockstep.round_queue`'s lag), so the TTFT holds more of the same cycle: the TTFT grows by at least the stream time, the e2e by exactly it, the TPOT
    # does not grow)
    extra = (b["ttft_ms"] - a["ttft_ms"]).to_numpy(float)
    stream = 0.5 * a["batch_size"].to_numpy(float)
    assert np.all(extra >= stream * (1.0 - 1e-9))
    np.testing.assert_allclose((b["e2e_ms"] - a["e2e_ms"]).to_numpy(float), stream, rtol=1e-9)
    assert np.all(np.diff(extra) > 0)
    np.testing.assert_allclose(b["batch_size"].to_numpy(float), a["batch_size"].to_numpy(float), rtol=1e-12)
    assert np.all(b["tpot_ms"].to_numpy(float) <= a["tpot_ms"].to_numpy(float) * (1.0 + 1e-12))
    # ... and, the clients fewer than the slots, their cycle: they send their next requests that much later
    # (Little's law: conc = requests/s x e2e, `estimate.queue_waits`)
    np.testing.assert_allclose(b["throughput_tok_s"].to_numpy(float),
                               a["throughput_tok_s"].to_numpy(float) * a["e2e_ms"].to_numpy(float)
                               / b["e2e_ms"].to_numpy(float), rtol=1e-9)
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
    np.testing.assert_allclose(front, stream, rtol=1e-9)


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
    assert m[1000.0]["ttft_ms"] - m[0.0]["ttft_ms"] == pytest.approx(streams.mean(), rel=0.3)
    assert m[1000.0]["tpot_ms"] == pytest.approx(m[0.0]["tpot_ms"], rel=1e-12)


def test_one_sglang_api_server_streams_every_attention_dp_ranks_sequences():
    """SGLang starts one TokenizerManager a server (``_launch_subprocesses``), vLLM one API server a data-parallel
    rank (``api_server_count``): at attn_dp = 2 SGLang's stream term counts both ranks' sequences, vLLM's one's,
    in the closed loop, the open loop and the simulator alike."""
    from objectives import serving
    from objectives.profiles import api_server_ranks
    from objectives.serving.analytical import Deployments, ServingModel
    from objectives.serving.simulator import _build, _frame

    np.testing.assert_array_equal(api_server_ranks(["sglang", "vllm", "trtllm", "SGLang==0.5.9"], 2), [2, 1, 2, 2])
    moe = dict(tp=1, attn_dp=2, ep=2)
    args = dict(input_len=1024, output_len=256, concurrency=[8, 64])
    for engine, ranks in (("sglang", 2), ("vllm", 1)):
        a, b = (inference.max_throughput("Qwen3-30B-A3B", "H200", **moe, **args, engine=engine,
                                         efficiency=_with_stream(us)) for us in (0.0, 500.0))
        # (at least: re-pinned in thirty-seventh round: a longer host time lets more of a closed-loop round's prompts reach the scheduler together (`lockstep.round_queue`'s lag), so the TTFT holds more of the same cycle)
        assert np.all((b["ttft_ms"] - a["ttft_ms"]).to_numpy(float)
                      >= 0.5 * ranks * a["batch_size"].to_numpy(float) * (1.0 - 1e-9)), engine
    # the simulator: one group of streams a replica (two ranks' requests), the open loop its rank's N twice
    w = serving.Workload(rate=16.0, input_len=512, output_len=128, n_requests=200)

    def run(us: float):
        eng, reps = _build("Qwen3-30B-A3B", "H200", 1, 1, None, None, None, w, None, "agg", 1, None, None, None,
                           "least_loaded", "sglang", ep=2, attn_dp=2, profile=_with_stream(us))
        return _frame(eng, reps)
    s0, s1 = run(0.0), run(1000.0)
    assert sorted(s0["replica"].unique()) == [0, 1]          # the replica's two ranks, one API server
    whole = streams_at_first(s0["first_token_s"].to_numpy(), s0["finish_s"].to_numpy(),
                             s0["replica"].to_numpy() // 2)
    np.testing.assert_allclose((s1["ttft_ms"] - s0["ttft_ms"]).to_numpy(), whole, rtol=1e-9)
    per_rank = streams_at_first(s0["first_token_s"].to_numpy(), s0["finish_s"].to_numpy(), s0["replica"].to_numpy())
    assert whole.mean() > 1.5 * per_rank.mean()
    one = Deployments.of(gpu="H200", engine="sglang", **moe)
    m = {us: ServingModel("Qwen3-30B-A3B", w, efficiency=_with_stream(us)).evaluate(one).iloc[0]
         for us in (0.0, 1000.0)}
    # the open loop counts every running sequence (prefilling ones too) where the simulator counts the streams
    assert m[1000.0]["ttft_ms"] - m[0.0]["ttft_ms"] == pytest.approx(whole.mean(), rel=0.3)


def test_with_more_clients_than_slots_the_three_models_spend_the_api_servers_streams_outside_the_queue():
    """The API server's time holds no GPU slot, and a client sends its next request once it has read the last token
    of its previous one: with 128 clients on 32 slots the 32 running streams' time (not 128's) is in the clients'
    cycle, spent outside the queue, so the TTFT, the TPOT and the throughput stay where the GPU's slots put them, in
    the closed form, the serving model's closed loop and the simulator. (Before the clients' cycle held it, the
    TTFT rose by it and the cycle exceeded what the throughput allows.)"""
    from objectives import serving
    from objectives.serving.analytical import Deployments, ServingModel
    from objectives.serving.scheduler import Scheduler

    m8 = "Llama-3.1-8B"
    a, b = (inference.max_throughput(m8, "H100", input_len=1024, output_len=256, concurrency=128,
                                     max_batch_size=32, engine="vllm", efficiency=_with_stream(us)).iloc[0]
            for us in (0.0, 1000.0))
    assert a["batch_size"] == 32
    for col in ("ttft_ms", "tpot_ms", "e2e_ms", "throughput_tok_s"):
        assert b[col] == pytest.approx(a[col], rel=1e-9), col
    # the streams' 32 ms are there, in the wait for a slot they shorten: the breakdown's front end against its queue
    bd = [served_breakdown(m8, "H100", input_len=1024, output_len=256, concurrency=128, max_batch_size=32,
                           engine="vllm", efficiency=_with_stream(us)) for us in (0.0, 1000.0)]
    ttft = [x[x["phase"] == "ttft"].iloc[0] for x in bd]
    assert ttft[1]["front_end"] - ttft[0]["front_end"] == pytest.approx(32.0, rel=1e-9)
    assert ttft[0]["queue"] - ttft[1]["queue"] == pytest.approx(32.0, rel=1e-9)
    w = serving.Workload(concurrency=128, input_len=1024, output_len=256, n_requests=600)
    d = Deployments.of(gpu="H100", engine="vllm", max_batch_size=32)
    m = [ServingModel(m8, w, efficiency=_with_stream(us)).evaluate(d).iloc[0] for us in (0.0, 1000.0)]
    assert m[1]["ttft_ms"] == pytest.approx(m[0]["ttft_ms"], rel=1e-6)
    assert m[1]["throughput_tok_s"] == pytest.approx(m[0]["throughput_tok_s"], rel=1e-6)
    s = [serving.simulate(m8, "H100", workload=w, engine="vllm", scheduler=Scheduler(max_batch_size=32),
                          profile=_with_stream(us)) for us in (0.0, 1000.0)]
    # the simulator's clients send the streams' time later, and their requests wait that much less for a slot
    assert abs(s[1]["ttft_ms_mean"] - s[0]["ttft_ms_mean"]) < 0.25 * 32.0
    assert s[1]["requests_per_s"] == pytest.approx(s[0]["requests_per_s"], rel=0.01)


def test_static_batching_prices_the_host_time_in_the_serving_model_as_the_simulator_does():
    from objectives import serving
    from objectives.serving.analytical import Deployments, ServingModel
    from objectives.serving.scheduler import Scheduler

    w = serving.Workload(rate=4.0, input_len=1024, output_len=256, n_requests=300)
    d = Deployments.of(gpu="H100", engine="vllm", batching="static", max_batch_size=16)
    m = [ServingModel(MODEL, w, efficiency=_with_stream(us)).evaluate(d).iloc[0] for us in (0.0, 1000.0)]
    s = [serving.simulate(MODEL, "H100", workload=w, engine="vllm",
                          scheduler=Scheduler(batching="static", max_batch_size=16), profile=_with_stream(us))
         for us in (0.0, 1000.0)]
    sim = s[1]["ttft_ms_mean"] - s[0]["ttft_ms_mean"]
    assert sim > 2.0
    # the serving model: 1 ms x its mean batch (the batch's streams as its first tokens go out)
    assert m[1]["ttft_ms"] - m[0]["ttft_ms"] == pytest.approx(m[0]["batch_size"], rel=1e-6)
    assert m[1]["ttft_ms"] - m[0]["ttft_ms"] == pytest.approx(sim, rel=0.15)
